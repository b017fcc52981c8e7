// GeoMELT Search page: plain JS over the STAC API (/collections, /search) and Leaflet.
// Every request goes to URLs relative to the page, so the page works behind a proxy prefix.
(function () {
  "use strict";

  const API = new URL("./", window.location.href.replace(/\/app\/?(\?.*)?(#.*)?$/, "/"));
  const params = new URLSearchParams(window.location.search);
  // Results per page: ?limit=N (1-100), default 20; more come with "Load more" (token paging).
  const PAGE_SIZE = Math.min(100, Math.max(1, parseInt(params.get("limit"), 10) || 20));

  const $ = (id) => document.getElementById(id);
  const form = $("search-form");
  const input = $("q");
  const statusBox = $("status");
  const list = $("results");
  const moreButton = $("more");
  const dateFrom = $("date-from");
  const dateTo = $("date-to");
  const useView = $("use-view");
  const drawButton = $("draw-button");
  const clearArea = $("clear-area");
  const searchHere = $("search-here");
  const drawHint = $("draw-hint");
  const similarBox = $("similar");

  const map = L.map("map", { zoomControl: true, worldCopyJump: true, minZoom: 2 }).setView([20, 0], 2);
  // A basemap only when one is configured (?tiles=https://.../{z}/{x}/{y}.png): none is
  // reachable offline, and the page must not call out to third parties by itself.
  const tileUrl = params.get("tiles");
  if (tileUrl) {
    L.tileLayer(tileUrl, { maxZoom: 20, attribution: params.get("attribution") || "" }).addTo(map);
  }
  const coverageLayer = L.layerGroup().addTo(map);
  const thumbLayer = L.layerGroup().addTo(map);
  const footprintLayer = L.layerGroup().addTo(map);
  const pinLayer = L.layerGroup().addTo(map);
  let drawnArea = null; // L.Rectangle set by "Draw area"

  const state = {
    similarTo: null,
    next: null,
    features: [],
    layers: new Map(), // item id -> {footprint, card}
    requestSerial: 0,
  };

  // ---------------------------------------------------------------- filters and requests

  function datetimeParam() {
    const from = dateFrom.value, to = dateTo.value;
    if (!from && !to) return null;
    if (from && to && from > to) throw new Error("The start date is after the end date.");
    return `${from ? from + "T00:00:00Z" : ".."}/${to ? to + "T23:59:59Z" : ".."}`;
  }

  function bboxParam() {
    let bounds = null;
    if (drawnArea) bounds = drawnArea.getBounds();
    else if (useView.checked) bounds = map.getBounds();
    if (!bounds) return null;
    const west = bounds.getWest(), east = bounds.getEast();
    if (east - west >= 360) return null; // the whole world: no spatial filter
    const wrap = (x) => ((((x + 180) % 360) + 360) % 360) - 180;
    const clampLat = (y) => Math.max(-90, Math.min(90, y));
    const w = wrap(west), e = wrap(east);
    return [w, clampLat(bounds.getSouth()), e === -180 ? 180 : e, clampLat(bounds.getNorth())]
      .map((v) => v.toFixed(6)).join(",");
  }

  function searchUrl() {
    const query = new URLSearchParams();
    const text = input.value.trim();
    if (text) query.set("q", text);
    if (state.similarTo) query.set("similar_to", state.similarTo);
    const bbox = bboxParam();
    if (bbox) query.set("bbox", bbox);
    const datetime = datetimeParam();
    if (datetime) query.set("datetime", datetime);
    query.set("limit", String(PAGE_SIZE));
    return new URL("search?" + query.toString(), API).toString();
  }

  async function fetchJson(url) {
    const response = await fetch(url, { headers: { Accept: "application/geo+json, application/json" } });
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) {
      const description = body && (body.description || body.detail);
      throw new Error(description || `The server answered ${response.status} ${response.statusText}.`);
    }
    return { body, response };
  }

  // ---------------------------------------------------------------- rendering

  function setStatus(text, kind) {
    statusBox.className = "status" + (kind ? " " + kind : "");
    statusBox.textContent = text;
  }

  function clearResults() {
    list.replaceChildren();
    footprintLayer.clearLayers();
    thumbLayer.clearLayers();
    pinLayer.clearLayers();
    state.layers.clear();
    state.features = [];
    state.next = null;
    moreButton.hidden = true;
  }

  function itemHref(feature) {
    const self = (feature.links || []).find((link) => link.rel === "self");
    return self ? self.href : null;
  }

  function formatDate(properties) {
    const day = (value) => {
      const date = new Date(value);
      return Number.isNaN(date.getTime()) ? String(value) : date.toISOString().slice(0, 10);
    };
    const start = properties.start_datetime, end = properties.end_datetime;
    if (start && end) return `${day(start).slice(0, 4)}–${day(end).slice(0, 4)}`;
    if (properties.datetime) return day(properties.datetime);
    return start ? `from ${day(start)}` : end ? `until ${day(end)}` : "date unknown";
  }

  function featureBounds(feature) {
    const b = feature.bbox;
    if (Array.isArray(b) && b.length >= 4) {
      const half = b.length / 2;
      return L.latLngBounds([b[1], b[0]], [b[half + 1], b[half]]);
    }
    return L.geoJSON(feature).getBounds();
  }

  function highlight(id, on) {
    const entry = state.layers.get(id);
    if (!entry) return;
    entry.card.classList.toggle("hover", on);
    entry.footprint.setStyle(on ? { color: "#ff7a00", weight: 3, fillOpacity: 0.08 }
                                : { color: "#1f6feb", weight: 1.5, fillOpacity: 0.02 });
    const pin = entry.pin.getElement();
    if (pin) pin.classList.toggle("hover", on);
    if (on) { entry.footprint.bringToFront(); entry.pin.setZIndexOffset(1000); }
    else entry.pin.setZIndexOffset(0);
  }

  function select(id, zoom) {
    for (const [other, entry] of state.layers) entry.card.classList.toggle("selected", other === id);
    const entry = state.layers.get(id);
    if (!entry) return;
    if (zoom) map.flyToBounds(entry.bounds, { maxZoom: 18, duration: 0.6, padding: [40, 40] });
    entry.card.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  function button(label, title, onClick) {
    const element = document.createElement("button");
    element.type = "button";
    element.textContent = label;
    element.title = title;
    element.addEventListener("click", (event) => { event.stopPropagation(); onClick(); });
    return element;
  }

  function renderFeature(feature, position) {
    const properties = feature.properties || {};
    const thumbnail = (feature.assets || {}).thumbnail;
    const bounds = featureBounds(feature);

    const card = document.createElement("li");
    card.className = "result";
    card.dataset.id = feature.id;

    const image = document.createElement("img");
    image.className = "thumb";
    image.alt = properties.caption || feature.id;
    image.loading = "lazy";
    if (thumbnail) image.src = thumbnail.href;

    const body = document.createElement("div");
    body.className = "body";
    const caption = document.createElement("p");
    caption.className = "caption";
    caption.textContent = properties.caption || "(no caption)";
    const meta = document.createElement("div");
    meta.className = "meta";
    const rank = document.createElement("span");
    rank.className = "rank";
    rank.textContent = `#${properties["search:rank"] || position}`;
    meta.append(rank);
    if (typeof properties["search:score"] === "number") {
      const score = document.createElement("span");
      score.className = "score";
      score.title = "search:score (higher is better)";
      score.textContent = `score ${properties["search:score"].toFixed(4)}`;
      meta.append(score);
    }
    const when = document.createElement("span");
    when.textContent = formatDate(properties);
    const where = document.createElement("span");
    where.textContent = feature.collection || "";
    meta.append(when, where);

    const actions = document.createElement("div");
    actions.className = "actions";
    actions.append(
      button("Zoom", "Zoom the map to this chip", () => select(feature.id, true)),
      button("More like this", "Find chips similar to this one (similar_to)", () => moreLikeThis(feature.id)),
    );
    const href = itemHref(feature);
    if (href) {
      const link = document.createElement("a");
      link.href = href;
      link.target = "_blank";
      link.rel = "noopener";
      link.textContent = "STAC item";
      link.title = "This chip as a STAC Item (JSON)";
      link.addEventListener("click", (event) => event.stopPropagation());
      actions.append(link);
    }
    body.append(caption, meta, actions);
    card.append(image, body);
    card.addEventListener("click", () => select(feature.id, true));
    card.addEventListener("mouseenter", () => highlight(feature.id, true));
    card.addEventListener("mouseleave", () => highlight(feature.id, false));
    list.append(card);

    if (thumbnail) {
      L.imageOverlay(thumbnail.href, bounds, { opacity: 0.92, interactive: false }).addTo(thumbLayer);
    }
    const footprint = L.geoJSON(feature.geometry, {
      style: { color: "#1f6feb", weight: 1.5, fillOpacity: 0.02 },
    }).addTo(footprintLayer);
    footprint.bindTooltip(properties.caption || feature.id, { sticky: true });
    // A numbered pin per result: footprints of small chips vanish at low zoom.
    const pin = L.marker(bounds.getCenter(), {
      icon: L.divIcon({ className: "rank-pin", html: `<span>${position}</span>`, iconSize: [24, 24] }),
      title: properties.caption || feature.id,
      riseOnHover: true,
    }).addTo(pinLayer);
    for (const layer of [footprint, pin]) {
      layer.on("click", () => select(feature.id, false));
      layer.on("mouseover", () => highlight(feature.id, true));
      layer.on("mouseout", () => highlight(feature.id, false));
    }
    state.layers.set(feature.id, { footprint, pin, card, bounds });
  }

  function render(body, append) {
    const features = body.features || [];
    const start = state.features.length;
    state.features.push(...features);
    features.forEach((feature, index) => renderFeature(feature, start + index + 1));
    const next = (body.links || []).find((link) => link.rel === "next");
    state.next = next ? next.href : null;
    moreButton.hidden = !state.next;
    if (!append && features.length === 0) {
      setStatus("No chips match. Try zooming out, widening the dates, or another phrase.", "empty");
      return;
    }
    const info = body["search:info"];
    const ranked = input.value.trim() || state.similarTo;
    const parts = [`${state.features.length} result${state.features.length === 1 ? "" : "s"}`];
    if (typeof body.numberMatched === "number") parts[0] += ` of ${body.numberMatched}`;
    parts.push(ranked ? "ranked by relevance" : "newest first");
    if (info && info.strategy) parts.push(`${info.strategy} search`);
    setStatus(parts.join(" · "));
  }

  // ---------------------------------------------------------------- actions

  async function runSearch() {
    const serial = ++state.requestSerial;
    searchHere.hidden = true;
    let url;
    try {
      url = searchUrl();
    } catch (error) {
      clearResults();
      setStatus(error.message, "error");
      return;
    }
    setStatus("Searching…");
    document.body.setAttribute("aria-busy", "true");
    try {
      const { body } = await fetchJson(url);
      if (serial !== state.requestSerial) return; // a newer search superseded this one
      clearResults();
      render(body, false);
    } catch (error) {
      if (serial !== state.requestSerial) return;
      clearResults();
      setStatus(`Search failed: ${error.message}`, "error");
    } finally {
      if (serial === state.requestSerial) document.body.removeAttribute("aria-busy");
    }
  }

  async function loadMore() {
    if (!state.next) return;
    moreButton.disabled = true;
    try {
      const { body } = await fetchJson(state.next);
      render(body, true);
    } catch (error) {
      setStatus(`Loading more failed: ${error.message}`, "error");
    } finally {
      moreButton.disabled = false;
    }
  }

  function moreLikeThis(id) {
    state.similarTo = id;
    $("similar-id").textContent = id;
    similarBox.hidden = false;
    runSearch();
  }

  // ---------------------------------------------------------------- drawing a rectangle

  let drawing = false;
  let drawStart = null;
  let drawPreview = null;

  function setDrawing(on) {
    drawing = on;
    drawButton.classList.toggle("active", on);
    drawHint.hidden = !on;
    document.body.classList.toggle("drawing", on);
    if (on) map.dragging.disable(); else map.dragging.enable();
    if (!on && drawPreview) { map.removeLayer(drawPreview); drawPreview = null; }
    drawStart = null;
  }

  map.on("mousedown", (event) => {
    if (!drawing) return;
    drawStart = event.latlng;
    drawPreview = L.rectangle(L.latLngBounds(drawStart, drawStart), {
      color: "#ff7a00", weight: 2, dashArray: "6 4", fillOpacity: 0.05, interactive: false,
    }).addTo(map);
  });
  map.on("mousemove", (event) => {
    if (drawing && drawStart && drawPreview) drawPreview.setBounds(L.latLngBounds(drawStart, event.latlng));
  });
  map.on("mouseup", (event) => {
    if (!drawing || !drawStart) return;
    const bounds = L.latLngBounds(drawStart, event.latlng);
    const tiny = map.latLngToContainerPoint(bounds.getNorthWest())
      .distanceTo(map.latLngToContainerPoint(bounds.getSouthEast())) < 6;
    setDrawing(false);
    if (tiny) return;
    if (drawnArea) map.removeLayer(drawnArea);
    drawnArea = L.rectangle(bounds, {
      color: "#ff7a00", weight: 2, dashArray: "6 4", fillOpacity: 0.04, interactive: false,
    }).addTo(map);
    clearArea.hidden = false;
    useView.disabled = true;
    runSearch();
  });
  drawButton.addEventListener("click", () => setDrawing(!drawing));
  document.addEventListener("keydown", (event) => { if (event.key === "Escape" && drawing) setDrawing(false); });
  clearArea.addEventListener("click", () => {
    if (drawnArea) map.removeLayer(drawnArea);
    drawnArea = null;
    clearArea.hidden = true;
    useView.disabled = false;
    runSearch();
  });

  // ---------------------------------------------------------------- wiring

  form.addEventListener("submit", (event) => { event.preventDefault(); runSearch(); });
  moreButton.addEventListener("click", loadMore);
  $("similar-clear").addEventListener("click", () => {
    state.similarTo = null;
    similarBox.hidden = true;
    runSearch();
  });
  dateFrom.addEventListener("change", runSearch);
  dateTo.addEventListener("change", runSearch);
  useView.addEventListener("change", runSearch);
  searchHere.addEventListener("click", runSearch);
  // Moving the map does not re-run the search by itself (zooming to a result would reshuffle
  // the list); it offers to.
  map.on("moveend", () => {
    if (useView.checked && !drawnArea && state.requestSerial > 0) searchHere.hidden = false;
  });

  async function showCoverage() {
    // Collections' extents: where there is data at all, and the first view.
    let bounds = null;
    try {
      const { body } = await fetchJson(new URL("collections", API).toString());
      for (const collection of body.collections || []) {
        const box = (((collection.extent || {}).spatial || {}).bbox || [])[0];
        if (!box || box.length < 4) continue;
        const b = L.latLngBounds([box[1], box[0]], [box[3], box[2]]);
        bounds = bounds ? bounds.extend(b) : L.latLngBounds(b.getSouthWest(), b.getNorthEast());
        L.rectangle(b, { color: "#5d6b7a", weight: 1, dashArray: "4 4", fill: false, interactive: false })
          .addTo(coverageLayer);
      }
      const landing = (await fetchJson(API.toString())).body;
      const model = landing.semantic_search && landing.semantic_search.model;
      if (model) $("model-label").textContent = `model ${model}`;
    } catch (error) {
      setStatus(`Could not load the collections: ${error.message}`, "error");
    }
    if (bounds && bounds.isValid()) map.fitBounds(bounds, { padding: [30, 30] });
  }

  input.value = params.get("q") || "";
  showCoverage().then(runSearch);
})();
