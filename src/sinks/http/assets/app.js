// drsnd's page: one EventSource on /events, per-stream state kept here,
// only the selected stream's charts drawn (a grid of tiles for the rest),
// redrawn at most once per animation frame. The event stream is focused on
// the selected stream: the others' frames come without thresholds and
// spectrum, so their heatmap fills from the moment they are selected.
"use strict";
const WINDOW_S = 600;            // state band and trends: the last 10 minutes
const HEAT_COLS = 300;           // heatmap: the last 300 frames shown
const COLORS = { healthy: "#2e9e5b", fault: "#d6453d", anomaly: "#c2410c", suspect: "#b08900", uncertain: "#d9a323", "no-signal": "#6b7785", starting: "#3d5a80", learning: "#5a6fb0" };
const SERIES = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac", "#86bcb6", "#d37295"];

const streams = new Map();       // name -> stream state
let hello = null, selected = null, dirty = true, lastStatus = null;
let source = null, lastId = 0;   // the event stream, and the last id it gave
const el = (id) => document.getElementById(id);

function stream(name) {
  let s = streams.get(name);
  if (!s) {
    s = { name, state: "starting", since: 0, bands: [], events: [], t: [], probs: [], rms: [], peak: [],
          vel: [], zone: null, taus: [], spectrum: null, label: "", confidence: 0, tile: null };
    streams.set(name, s);
    const tile = document.createElement("div");
    tile.className = "tile";
    tile.dataset.stream = name;
    tile.innerHTML = '<div class="name"></div><div class="st"></div><div class="lb dim"></div>';
    tile.querySelector(".name").textContent = name;
    tile.onclick = () => select(name);
    el("tiles").appendChild(tile);
    s.tile = tile;
    if (!selected) select(name);
  }
  return s;
}

function kind(state) { return state && state.state ? state.state : "starting"; }
function describe(state) { return state.class ? state.state + " (" + state.class + ")" : kind(state); }

// `source`: who named a fault's family (the verdict; events carry it).
function setState(s, state, since, source) {
  const k = kind(state);
  s.state = k; s.stateText = describe(state) + (source ? " · named by " + source : ""); s.since = since;
  const last = s.bands[s.bands.length - 1];
  if (!last || last.kind !== k) s.bands.push({ kind: k, from: since || Date.now() / 1000 });
  s.tile.dataset.state = k;
  s.tile.querySelector(".st").textContent = s.stateText;
  dirty = true;
}

function onHello(h) {
  hello = h;
  el("model").textContent = h.model.name + " " + h.model.version + " (" + h.model.sha256.slice(0, 12) + ")";
  for (const info of h.streams) setState(stream(info.name), info.machine, info.machine_since);
}

function onFrame(f) {
  const s = stream(f.stream);
  s.t.push(f.time); s.probs.push(f.probs); s.rms.push(f.rms); s.peak.push(f.peak);
  // Velocity and zone: streams whose source names its units (null while the window fills).
  s.vel.push(f.velocity_rms_mm_s ?? null);
  if (f.iso_zone) s.zone = f.iso_zone;
  if (f.thresholds) { s.taus.push(f.thresholds); if (s.taus.length > HEAT_COLS) s.taus.shift(); }
  if (f.spectrum_db) s.spectrum = f.spectrum_db;
  s.label = f.label; s.confidence = f.confidence;
  const cut = f.time - WINDOW_S;
  while (s.t.length && s.t[0] < cut) { s.t.shift(); s.probs.shift(); s.rms.shift(); s.peak.shift(); s.vel.shift(); }
  const v = f.velocity_rms_mm_s;
  // A family head's verdict first (the machine state follows it), the fine class after.
  const fam = f.family ? f.family + " " + (100 * f.family_confidence).toFixed(0) + " % · " : "";
  s.tile.querySelector(".lb").textContent = fam + f.label + " " + (100 * f.confidence).toFixed(0) + " %" +
    (v != null ? " · " + v.toFixed(1) + " mm/s " + f.iso_zone : "") + beside(f);
  if (s.name === selected) dirty = true;
}

// The other analyses beside the network's verdict, as `drsnd watch` shows them.
function beside(f) {
  let out = "";
  if (f.anomaly != null) out += " · anomaly " + f.anomaly.toFixed(2);
  else if (f.learning != null) out += " · learning " + (100 * f.learning).toFixed(0) + " %";
  if (f.envelope && f.envelope.family !== "none") out += " · envelope " + f.envelope.family;
  if (f.denoise && f.denoise.snr_db != null) out += " · in-SNR " + f.denoise.snr_db.toFixed(1) + " dB";
  return out;
}

function onEvent(e) {
  const s = stream(e.stream);
  s.events.push(e);
  // Zone and trend events are not the machine's state; the tile shows the zone from frames.
  if (e.to.state === "steady" || e.to.state === "degrading") { if (typeof historyView !== "undefined") historyView.load(); return; }
  if (e.to.state !== "iso-zone") setState(s, e.to, e.since, e.evidence.family_source);
}

function onStatus(st) {
  lastStatus = st;
  el("clients").textContent = st.clients.length + " socket subscriber(s), up " + Math.round(st.uptime_s) + " s";
  if (typeof historyView !== "undefined") historyView.status(st);
  dirty = true;
}

function select(name) {
  const changed = selected !== name;
  selected = name;
  if (changed && source) connect();
  for (const s of streams.values()) s.tile.classList.toggle("sel", s.name === name);
  if (changed && typeof historyView !== "undefined") historyView.select(name);
  charts.reset();
  dirty = true;
}

// Charts (uPlot for time series, plain canvas for the band and the heatmap).
const charts = {
  probs: null, rms: null, spec: null, vel: null,
  reset() { for (const k of ["probs", "rms", "spec", "vel"]) { if (this[k]) this[k].destroy(); this[k] = null; } },
  width(id) { return Math.max(200, el(id).clientWidth || 600); },
  ensure(s) {
    const classes = hello ? hello.model.classes.map((c) => c.id) : [];
    if (!this.probs) {
      const series = [{}].concat(classes.map((c, i) => ({ label: c, stroke: SERIES[i % SERIES.length], width: 1 })));
      this.probs = new uPlot({ width: this.width("probs"), height: 180, series, scales: { y: { range: [0, 1] } },
        axes: [{ stroke: "#8a96a3" }, { stroke: "#8a96a3" }] }, [[]].concat(classes.map(() => [])), el("probs"));
    }
    if (!this.rms) {
      this.rms = new uPlot({ width: this.width("rms"), height: 160,
        series: [{}, { label: "RMS", stroke: "#4e79a7" }, { label: "peak", stroke: "#f28e2b" }],
        axes: [{ stroke: "#8a96a3" }, { stroke: "#8a96a3" }] }, [[], [], []], el("rms"));
    }
    const hasVel = s.vel.some((v) => v != null);
    el("velpanel").hidden = !hasVel;
    if (!this.vel && hasVel) {
      this.vel = new uPlot({ width: this.width("vel"), height: 140,
        series: [{}, { label: "mm/s", stroke: "#edc948", width: 1.5 }],
        axes: [{ stroke: "#8a96a3" }, { stroke: "#8a96a3" }] }, [[], []], el("vel"));
    }
    if (!this.spec && s.spectrum && hello) {
      const nyq = hello.model.sample_rate / 2, n = s.spectrum.length;
      this.freqs = s.spectrum.map((_, i) => (i + 0.5) * nyq / n);
      this.spec = new uPlot({ width: this.width("spectrum"), height: 160, scales: { x: { time: false } },
        series: [{ label: "Hz" }, { label: "dB", stroke: "#76b7b2" }],
        axes: [{ stroke: "#8a96a3" }, { stroke: "#8a96a3" }] }, [this.freqs, s.spectrum], el("spectrum"));
    }
  },
};

function drawBand(s) {
  const c = el("band"), g = c.getContext("2d");
  c.width = c.clientWidth || 1000;
  const now = Date.now() / 1000, t0 = now - WINDOW_S, w = c.width, h = c.height;
  const x = (t) => Math.max(0, Math.min(w, (t - t0) / WINDOW_S * w));
  g.fillStyle = "#0b0f13"; g.fillRect(0, 0, w, h);
  s.bands.forEach((b, i) => {
    const end = i + 1 < s.bands.length ? s.bands[i + 1].from : now;
    g.fillStyle = COLORS[b.kind] || "#444"; g.fillRect(x(b.from), 6, Math.max(1, x(end) - x(b.from)), h - 12);
  });
  g.fillStyle = "#fff";
  for (const e of s.events) { const ex = x(e.since); if (ex > 0) g.fillRect(ex - 1, 0, 2, h); }
  c.dataset.lastState = s.bands.length ? s.bands[s.bands.length - 1].kind : "starting";
  el("since").textContent = s.stateText + (s.since ? " since " + new Date(s.since * 1000).toLocaleTimeString() : "");
}

el("band").onclick = (ev) => {
  const s = streams.get(selected); if (!s) return;
  const c = el("band"), r = c.getBoundingClientRect();
  const t = Date.now() / 1000 - WINDOW_S + (ev.clientX - r.left) / r.width * WINDOW_S;
  let best = null;
  for (const e of s.events) if (!best || Math.abs(e.since - t) < Math.abs(best.since - t)) best = e;
  el("evidence").textContent = best ? JSON.stringify(best, null, 1) : "no event";
};

function drawHeatmap(s) {
  const c = el("heatmap"), g = c.getContext("2d");
  const rows = s.taus.length ? s.taus[0].reduce((n, u) => n + u.length, 0) : 1;
  c.width = HEAT_COLS; c.height = rows;
  const img = g.createImageData(HEAT_COLS, rows);
  const max = s.taus.length ? s.taus[0].map((_, u) => Math.max(1e-9, ...s.taus.map((f) => Math.max(...f[u])))) : [];
  const off = HEAT_COLS - s.taus.length;
  s.taus.forEach((frame, col) => {
    let row = 0;
    frame.forEach((unit, u) => unit.forEach((tau) => {
      const v = Math.min(1, tau / max[u]), i = 4 * (row * HEAT_COLS + off + col);
      img.data[i] = 255 * Math.min(1, 2 * v); img.data[i + 1] = 255 * Math.max(0, 2 * v - 1) * 0.9 + 30 * v;
      img.data[i + 2] = 90 * (1 - v) + 40; img.data[i + 3] = 255; row++;
    }));
  });
  g.putImageData(img, 0, 0);
}

function drawCounters(s) {
  const st = lastStatus && lastStatus.streams.find((x) => x.name === s.name);
  const rows = st ? [["frames", st.frames], ["captured samples", st.captured_samples], ["overrun samples", st.overrun_samples],
    ["gap samples", st.gap_samples], ["dropped frames", st.dropped_frames], ["non-finite frames", st.nonfinite_frames],
    ["clipped frames", st.clipped_frames], ["latency mean / max ms", st.latency_ms_mean.toFixed(2) + " / " + st.latency_ms_max.toFixed(2)],
    ["source", st.source_state]] : [];
  if (hello) rows.push(["model", hello.model.name + " " + hello.model.version + " " + hello.model.sha256.slice(0, 16)]);
  if (hello && hello.denoiser) rows.push(["denoiser", hello.denoiser.name + " " + hello.denoiser.version + " " + hello.denoiser.sha256.slice(0, 16)]);
  if (lastStatus) rows.push(["subscribers", lastStatus.clients.length]);
  el("counters").innerHTML = "";
  for (const [k, v] of rows) {
    const tr = document.createElement("tr");
    tr.innerHTML = "<td class=dim></td><td></td>";
    tr.children[0].textContent = k; tr.children[1].textContent = v;
    el("counters").appendChild(tr);
  }
}

function draw() {
  requestAnimationFrame(draw);
  const s = streams.get(selected);
  if (!dirty || !s) return;
  dirty = false;
  el("title").firstChild.textContent = s.name + ": machine state, last 10 minutes ";
  drawBand(s);
  charts.ensure(s);
  const cols = s.probs.length ? s.probs[0].map((_, k) => s.probs.map((p) => p[k])) : [];
  charts.probs.setData([s.t.slice()].concat(cols.length ? cols : charts.probs.series.slice(1).map(() => [])));
  charts.rms.setData([s.t.slice(), s.rms.slice(), s.peak.slice()]);
  if (charts.vel) charts.vel.setData([s.t.slice(), s.vel.slice()]);
  el("zone").textContent = s.zone ? s.zone : "";
  if (charts.spec && s.spectrum) charts.spec.setData([charts.freqs, s.spectrum]);
  drawHeatmap(s);
  drawCounters(s);
}

// A new connection per focus; `after` asks for the events missed meanwhile.
function connect() {
  if (source) source.close();
  const q = new URLSearchParams();
  if (selected) q.set("focus", selected);
  if (lastId) q.set("after", String(lastId));
  const es = new EventSource("/events" + (q.size ? "?" + q : ""));
  source = es;
  es.onopen = () => { el("conn").textContent = "live"; el("conn").className = "dim"; };
  es.onerror = () => { el("conn").textContent = "reconnecting…"; el("conn").className = "down"; };
  es.onmessage = (m) => {
    if (es !== source) return;
    if (m.lastEventId) lastId = Math.max(lastId, Number(m.lastEventId));
    const v = JSON.parse(m.data);
    if (v.type === "frame") onFrame(v);
    else if (v.type === "event") onEvent(v);
    else if (v.type === "status") onStatus(v);
    else if (v.type === "hello") onHello(v);
    document.body.dataset.ready = "1";
  };
}

// After `load`: an event stream opened before it keeps a page "loading" for good.
window.addEventListener("load", () => setTimeout(connect, 0));
requestAnimationFrame(draw);
setInterval(() => { dirty = true; }, 1000);   // the band moves with time
