// GeoMELT Search page: plain JS over the STAC API (/collections, /search), change search
// (/changes, /cells/{id}) and Leaflet.
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
  const similarInView = $("similar-in-view");
  const changesForm = $("changes-form");
  const changeInput = $("change-q");
  const timelineBox = $("timeline");

  const map = L.map("map", { zoomControl: true, worldCopyJump: true, minZoom: 2 }).setView([20, 0], 2);
  // Coastlines and borders (Natural Earth, served by the API) in a pane under the tiles (200)
  // and the overlays (400): a configured basemap covers them, chips are drawn over both.
  map.createPane("context").style.zIndex = 150;
  const contextOptions = {
    pane: "context",
    renderer: L.svg({ pane: "context", padding: 0.5 }),
    interactive: false,
    style: { color: "#8796a8", weight: 0.8, fillColor: "#f4f1e8", fillOpacity: 1 },
  };
  const worldContext = L.geoJSON(null, contextOptions).addTo(map);
  const viewContext = L.geoJSON(null, contextOptions);
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
    mode: "search", // or "changes"
    similarTo: null,
    searchedView: null, // the map bounds the last search used, for "Search this area"
    spread: false, // a cluster of pins is spread out
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
    else bounds = map.getBounds();
    if (!bounds) return null;
    const west = bounds.getWest(), east = bounds.getEast();
    if (east - west >= 360) return null; // the whole world: no spatial filter
    const wrap = (x) => ((((x + 180) % 360) + 360) % 360) - 180;
    const clampLat = (y) => Math.max(-90, Math.min(90, y));
    const w = wrap(west), e = wrap(east);
    return [w, clampLat(bounds.getSouth()), e === -180 ? 180 : e, clampLat(bounds.getNorth())]
      .map((v) => v.toFixed(6)).join(",");
  }

  // Whether the visible map is the search area: "more like this" searches the whole archive
  // unless "only this view" is ticked; a drawn rectangle wins over the view.
  function areaFollowsView() {
    if (drawnArea) return false;
    if (state.mode === "changes") return true;
    return state.similarTo ? similarInView.checked : useView.checked;
  }

  function searchUrl() {
    const query = new URLSearchParams();
    const text = input.value.trim();
    if (text) query.set("q", text);
    if (state.similarTo) query.set("similar_to", state.similarTo);
    const bbox = drawnArea || areaFollowsView() ? bboxParam() : null;
    if (bbox) query.set("bbox", bbox);
    const datetime = datetimeParam();
    if (datetime) query.set("datetime", datetime);
    query.set("limit", String(PAGE_SIZE));
    return new URL("search?" + query.toString(), API).toString();
  }

  function rangeParam(name, fromInput, toInput) {
    const from = fromInput.value, to = toInput.value;
    if (!from && !to) throw new Error(`${name}: give a date range (from, to or both).`);
    if (from && to && from > to) throw new Error(`${name}: the start date is after the end date.`);
    return `${from || ".."}/${to || ".."}`;
  }

  function changesUrl() {
    const query = new URLSearchParams();
    query.set("bbox", bboxParam() || "-180,-90,180,90"); // change search needs a region
    query.set("before", rangeParam("Before", $("before-from"), $("before-to")));
    query.set("after", rangeParam("After", $("after-from"), $("after-to")));
    const text = changeInput.value.trim();
    if (text) query.set("q", text);
    query.set("limit", String(PAGE_SIZE));
    return new URL("changes?" + query.toString(), API).toString();
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
    state.spread = false;
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
    addMapEntry(feature.id, position, footprint, card, bounds, properties.caption || feature.id);
  }

  // A numbered pin per result (footprints of small chips vanish at low zoom), grouped by
  // regroup() when pins overlap.
  function addMapEntry(id, position, footprint, card, bounds, title) {
    const centre = bounds.getCenter();
    const pin = L.marker(centre, {
      icon: L.divIcon({ className: "rank-pin", html: `<span>${position}</span>`, iconSize: [24, 24] }),
      title,
      riseOnHover: true,
    });
    for (const layer of [footprint, pin]) {
      layer.on("click", () => select(id, false));
      layer.on("mouseover", () => highlight(id, true));
      layer.on("mouseout", () => highlight(id, false));
    }
    state.layers.set(id, { footprint, pin, card, bounds, centre, position });
  }

  // ---------------------------------------------------------------- change mode

  function chipFigure(chip, label) {
    const figure = document.createElement("figure");
    figure.className = "chip " + label.toLowerCase();
    const image = document.createElement("img");
    image.className = "thumb";
    image.alt = `${label}: ${chip.caption || chip.id}`;
    image.loading = "lazy";
    if (chip.thumbnail) image.src = chip.thumbnail;
    const text = document.createElement("figcaption");
    const when = document.createElement("b");
    when.textContent = `${label} · ${formatDate(chip)}`;
    const caption = document.createElement("span");
    caption.className = "caption";
    caption.textContent = chip.caption || "(no caption)";
    text.append(when, caption);
    figure.append(image, text);
    return figure;
  }

  // One changed cell: the before and after chips side by side, the change score, the timeline.
  function renderChange(feature, position) {
    const properties = feature.properties || {};
    const bounds = featureBounds(feature);
    const card = document.createElement("li");
    card.className = "result change";
    card.dataset.id = feature.id;

    const pair = document.createElement("div");
    pair.className = "pair";
    pair.append(chipFigure(properties.before || {}, "Before"), chipFigure(properties.after || {}, "After"));

    const meta = document.createElement("div");
    meta.className = "meta";
    const rank = document.createElement("span");
    rank.className = "rank";
    rank.textContent = `#${properties["change:rank"] || position}`;
    const score = document.createElement("span");
    score.className = "score";
    score.title = "change:score (higher = more change)";
    score.textContent = `change ${Number(properties["change:score"]).toFixed(4)}`;
    const cell = document.createElement("span");
    cell.className = "cell-id";
    cell.textContent = feature.id;
    meta.append(rank, score, cell);

    const actions = document.createElement("div");
    actions.className = "actions";
    const timeline = (feature.links || []).find((link) => link.rel === "timeline");
    actions.append(button("Zoom", "Zoom the map to this cell", () => select(feature.id, true)));
    if (timeline) {
      actions.append(button("Timeline", "Every acquisition of this cell in date order",
        () => showTimeline(feature.id, timeline.href)));
    }
    card.append(pair, meta, actions);
    card.addEventListener("click", () => select(feature.id, true));
    card.addEventListener("mouseenter", () => highlight(feature.id, true));
    card.addEventListener("mouseleave", () => highlight(feature.id, false));
    list.append(card);

    // The map shows the after chip; pointing at the before one shows it in its place, so the
    // two dates can be compared on the ground.
    const before = properties.before || {}, after = properties.after || {};
    if (after.thumbnail) {
      const overlay = L.imageOverlay(after.thumbnail, bounds, { opacity: 0.92, interactive: false })
        .addTo(thumbLayer);
      const beforeFigure = pair.querySelector(".chip.before");
      if (before.thumbnail) {
        beforeFigure.title = "Shown on the map while the pointer is here";
        beforeFigure.addEventListener("mouseenter", () => overlay.setUrl(before.thumbnail));
        beforeFigure.addEventListener("mouseleave", () => overlay.setUrl(after.thumbnail));
      }
    }
    const footprint = L.geoJSON(feature.geometry, {
      style: { color: "#1f6feb", weight: 1.5, fillOpacity: 0.02 },
    }).addTo(footprintLayer);
    footprint.bindTooltip(`${feature.id}: change ${score.textContent.split(" ")[1]}`, { sticky: true });
    addMapEntry(feature.id, position, footprint, card, bounds, feature.id);
  }

  function renderChangeStatus(body, append, count) {
    if (!append && count === 0) {
      setStatus("No cell of this area was seen in both ranges. Widen the area or the dates.", "empty");
      return;
    }
    const parts = [`${state.features.length} cell${state.features.length === 1 ? "" : "s"}`];
    if (typeof body.numberMatched === "number") parts[0] += ` of ${body.numberMatched}`;
    const text = changeInput.value.trim();
    parts.push(text ? `ranked by how much more they match "${text}" after` : "ranked by change");
    setStatus(parts.join(" · "));
  }

  async function showTimeline(cellId, href) {
    const items = $("timeline-list");
    $("timeline-cell").textContent = cellId;
    items.replaceChildren();
    timelineBox.hidden = false;
    try {
      const { body } = await fetchJson(href);
      (body.timeline || []).forEach((chip, index) => {
        const entry = document.createElement("li");
        entry.dataset.id = chip.id;
        entry.append(chipFigure(chip, `#${index + 1}`));
        items.append(entry);
      });
      timelineBox.scrollIntoView({ block: "nearest", behavior: "smooth" });
    } catch (error) {
      setStatus(`Could not load the timeline: ${error.message}`, "error");
    }
  }

  function setMode(mode) {
    if (mode === state.mode) return;
    state.mode = mode;
    for (const [name, element] of [["search", $("mode-search")], ["changes", $("mode-changes")]]) {
      element.classList.toggle("active", name === mode);
      element.setAttribute("aria-pressed", String(name === mode));
    }
    form.hidden = mode !== "search";
    changesForm.hidden = mode !== "changes";
    timelineBox.hidden = true;
    state.requestSerial++; // a search in flight belongs to the other mode
    document.body.removeAttribute("aria-busy");
    clearResults();
    searchHere.hidden = true;
    state.searchedView = null;
    if (mode === "search") runSearch();
    else setStatus("Choose two date ranges, then Find changes.");
  }

  // ---------------------------------------------------------------- clusters of pins

  // Pins closer than this (px) are one cluster: chips of one site overlap at low zoom, and
  // ranks 2-5 would hide under rank 1.
  const CLUSTER_PX = 26;

  function regroup() {
    pinLayer.clearLayers();
    state.spread = false;
    const groups = [];
    for (const entry of state.layers.values()) { // in rank order
      const point = map.latLngToLayerPoint(entry.centre);
      let group = groups.find((g) => g.point.distanceTo(point) < CLUSTER_PX);
      if (!group) {
        group = { point, centre: entry.centre, members: [] };
        groups.push(group);
      }
      group.members.push(entry);
    }
    for (const group of groups) {
      if (group.members.length === 1) {
        const entry = group.members[0];
        entry.pin.setLatLng(entry.centre);
        pinLayer.addLayer(entry.pin);
        continue;
      }
      const ranks = group.members.map((entry) => entry.position);
      const cluster = L.marker(group.centre, {
        icon: L.divIcon({
          className: "cluster-pin",
          html: `<span>${ranks.length}</span>`,
          iconSize: [32, 32],
        }),
        title: `Results ${ranks.join(", ")}: click to spread them out`,
        riseOnHover: true,
      });
      cluster.on("click", () => spread(group, cluster));
      pinLayer.addLayer(cluster);
    }
  }

  // Spreads a cluster's pins on a circle around it (with legs to the spot), so every rank
  // can be hovered and clicked; a click on the map or a zoom folds them back.
  function spread(group, cluster) {
    pinLayer.removeLayer(cluster);
    const centre = map.latLngToLayerPoint(group.centre);
    const count = group.members.length;
    const radius = Math.max(32, (count * 30) / (2 * Math.PI)); // ~30 px between pins
    group.members.forEach((entry, index) => {
      const angle = (2 * Math.PI * index) / count - Math.PI / 2;
      const at = map.layerPointToLatLng(centre.add(L.point(Math.cos(angle) * radius, Math.sin(angle) * radius)));
      L.polyline([group.centre, at], {
        color: "#1f6feb", weight: 1.5, opacity: 0.7, interactive: false, className: "spider-leg",
      }).addTo(pinLayer);
      entry.pin.setLatLng(at);
      pinLayer.addLayer(entry.pin);
    });
    state.spread = true;
  }

  function render(body, append) {
    const features = body.features || [];
    const start = state.features.length;
    state.features.push(...features);
    const draw = state.mode === "changes" ? renderChange : renderFeature;
    features.forEach((feature, index) => draw(feature, start + index + 1));
    regroup();
    const next = (body.links || []).find((link) => link.rel === "next");
    state.next = next ? next.href : null;
    moreButton.hidden = !state.next;
    if (state.mode === "changes") {
      renderChangeStatus(body, append, features.length);
      return;
    }
    if (!append && features.length === 0) {
      setStatus("No chips match. Try zooming out, widening the dates, or another phrase.", "empty");
      return;
    }
    const info = body["search:info"];
    const ranked = input.value.trim() || state.similarTo;
    const parts = [`${state.features.length} result${state.features.length === 1 ? "" : "s"}`];
    if (typeof body.numberMatched === "number") parts[0] += ` of ${body.numberMatched}`;
    parts.push(ranked ? "ranked by relevance" : "newest first");
    if (state.similarTo && !drawnArea && !similarInView.checked) parts.push("whole archive");
    if (info && info.strategy) parts.push(`${info.strategy} search`);
    setStatus(parts.join(" · "));
  }

  // ---------------------------------------------------------------- actions

  async function runSearch() {
    const serial = ++state.requestSerial;
    searchHere.hidden = true;
    state.searchedView = map.getBounds();
    let url;
    try {
      url = state.mode === "changes" ? changesUrl() : searchUrl();
    } catch (error) {
      clearResults();
      setStatus(error.message, "error");
      return;
    }
    setStatus(state.mode === "changes" ? "Comparing the two ranges…" : "Searching…");
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
      const mode = state.mode;
      const { body } = await fetchJson(state.next);
      if (mode === state.mode) render(body, true);
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
  changesForm.addEventListener("submit", (event) => { event.preventDefault(); runSearch(); });
  $("mode-search").addEventListener("click", () => setMode("search"));
  $("mode-changes").addEventListener("click", () => setMode("changes"));
  $("timeline-close").addEventListener("click", () => { timelineBox.hidden = true; });
  moreButton.addEventListener("click", loadMore);
  $("similar-clear").addEventListener("click", () => {
    state.similarTo = null;
    similarBox.hidden = true;
    runSearch();
  });
  dateFrom.addEventListener("change", runSearch);
  dateTo.addEventListener("change", runSearch);
  useView.addEventListener("change", runSearch);
  searchHere.addEventListener("click", () => {
    if (state.mode === "search" && state.similarTo) similarInView.checked = true;
    runSearch();
  });
  similarInView.addEventListener("change", runSearch);
  // Moving the map does not re-run the search by itself (zooming to a result would reshuffle
  // the list); it offers to, once the view differs from the one searched.
  map.on("moveend", () => {
    const searched = state.searchedView;
    if (!searched || !areaFollowsView()) return;
    const view = map.getBounds();
    const margin = 0.01 * Math.max(view.getEast() - view.getWest(), view.getNorth() - view.getSouth());
    if (!view.equals(searched, margin)) searchHere.hidden = false;
  });
  map.on("zoomend", regroup);
  map.on("click", () => { if (state.spread) regroup(); });
  map.on("moveend", loadViewContext);

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
    // Not animated: the first search must see the final view (and "Search this area" must
    // not appear for a move that was not the user's).
    if (bounds && bounds.isValid()) map.fitBounds(bounds, { padding: [30, 30], animate: false });
  }

  // ---------------------------------------------------------------- geographic context

  async function loadWorldContext() {
    try {
      const { body } = await fetchJson(new URL("app/context.geojson", API).toString());
      worldContext.addData(body);
    } catch (error) {
      setStatus(`Could not load the coastlines: ${error.message}`, "error");
    }
  }

  // Zoomed in, the world outlines are too coarse: the view's own outlines at full detail.
  const DETAIL_ZOOM = 5;
  let contextSerial = 0;
  async function loadViewContext() {
    const serial = ++contextSerial;
    if (map.getZoom() < DETAIL_ZOOM) {
      map.removeLayer(viewContext);
      if (!map.hasLayer(worldContext)) worldContext.addTo(map);
      return;
    }
    const view = map.getBounds().pad(0.25);
    const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
    const box = [
      clamp(view.getWest(), -180, 179), clamp(view.getSouth(), -90, 89),
      clamp(view.getEast(), -179, 180), clamp(view.getNorth(), -89, 90),
    ];
    if (box[2] - box[0] > 60 || box[3] - box[1] > 60 || box[0] >= box[2]) return;
    const url = new URL("app/context.geojson", API);
    url.searchParams.set("bbox", box.map((v) => v.toFixed(4)).join(","));
    try {
      const { body } = await fetchJson(url.toString());
      if (serial !== contextSerial) return;
      viewContext.clearLayers().addData(body).addTo(map);
      map.removeLayer(worldContext);
    } catch (_) {
      // The world outlines stay: coarse context beats none.
    }
  }

  input.value = params.get("q") || "";
  loadWorldContext();
  showCoverage().then(runSearch);
})();
