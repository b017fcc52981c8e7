"""GeoMELT: the BEiT-3-style multiway encoder that captions images and embeds images and text."""
