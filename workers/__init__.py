"""Ingestion: STAC polling, chipping, captioning and embedding, the job queue."""
