// The history panel (with [history]): the selected stream's stored 10 s
// rows from /api/history over a chosen span (zoom by dragging across the
// chart: the zoomed range is fetched at its own finer step), velocity with
// the ISO zone bands behind it, the anomaly score against its alarm limit,
// and the stored events as markers (click one for its evidence).
"use strict";
const ZONE_FILL = ["rgba(46,158,91,0.13)", "rgba(160,190,60,0.13)", "rgba(217,163,35,0.15)", "rgba(214,69,61,0.17)"];
const EVENT_COLOR = { trend: "#d6453d", "iso-zone": "#d9a323", machine: "#dde3ea" };

const historyView = {
  span: 86400, range: null, data: null, plot: null, stream: null, loading: false,

  select(name) { this.stream = name; this.range = null; this.load(); },

  async load() {
    const name = this.stream;
    if (!name || this.loading) return;
    const to = this.range ? this.range[1] : Date.now() / 1000;
    const from = this.range ? this.range[0] : to - this.span;
    const q = new URLSearchParams({ stream: name, from: from.toFixed(0), to: to.toFixed(0) });
    this.loading = true;
    let r = null;
    try { r = await fetch("/api/history?" + q); } catch (e) { r = null; }
    this.loading = false;
    if (!r || name !== this.stream) return;
    if (r.status === 404) { el("histpanel").hidden = true; return; }
    if (!r.ok) { el("histinfo").textContent = "history: " + (await r.text()); return; }
    this.data = await r.json();
    el("histpanel").hidden = false;
    this.draw();
  },

  columns() {
    const rows = this.data.rows;
    const t = rows.map((r) => r.t + r.step / 2);
    const hasVel = rows.some((r) => r.velocity != null);
    const level = hasVel ? rows.map((r) => r.velocity) : rows.map((r) => r.rms);
    return { t, hasVel, level, anomaly: rows.map((r) => r.anomaly_median), max: rows.map((r) => r.anomaly_max) };
  },

  draw() {
    const d = this.data, c = this.columns();
    if (this.plot) { this.plot.destroy(); this.plot = null; }
    const self = this;
    const opts = {
      width: Math.max(300, el("hist").clientWidth || 800), height: 220,
      scales: { x: { time: true }, a: { range: (u, lo, hi) => [0, Math.max(1.2, hi || 0)] } },
      series: [{}, { label: c.hasVel ? "velocity mm/s" : "RMS", stroke: "#edc948", width: 1.5, scale: "v" },
        { label: "anomaly (median)", stroke: "#e15759", width: 1.5, scale: "a" },
        { label: "anomaly (max)", stroke: "rgba(225,87,89,0.4)", width: 1, scale: "a" }],
      axes: [{ stroke: "#8a96a3" }, { stroke: "#8a96a3", scale: "v" },
        { stroke: "#e15759", scale: "a", side: 1, grid: { show: false } }],
      cursor: { drag: { x: true, y: false } },
      hooks: {
        drawClear: [(u) => self.drawZones(u, c.hasVel)],
        draw: [(u) => self.drawEvents(u)],
        setSelect: [(u) => {
          if (u.select.width < 5) return;
          const a = u.posToVal(u.select.left, "x"), b = u.posToVal(u.select.left + u.select.width, "x");
          self.range = [a, b]; self.load();
        }],
      },
    };
    this.plot = new uPlot(opts, [c.t, c.level, c.anomaly, c.max], el("hist"));
    // uPlot swallows `click` on its overlay (drag-zoom): a press and
    // release in one place is the click.
    let down = null;
    this.plot.over.addEventListener("mousedown", (ev) => { down = ev.clientX; });
    this.plot.over.addEventListener("mouseup", (ev) => { if (down != null && Math.abs(ev.clientX - down) < 4) this.clicked(ev); down = null; });
    const span = (d.to - d.from) / 3600;
    el("histinfo").textContent = d.rows.length + " rows at " + d.step + " s over " +
      (span >= 48 ? (span / 24).toFixed(0) + " days" : span.toFixed(1) + " h") + ", " + d.events.length + " events" +
      (this.range ? " (zoomed: pick a span to go back)" : "");
    document.body.dataset.history = "drawn";
    document.body.dataset.historyRows = String(d.rows.length);
  },

  // ISO 20816 zones behind the velocity: A to D from the configured limits.
  drawZones(u, hasVel) {
    if (!hasVel || !this.data.iso_zones) return;
    const g = u.ctx, z = [0].concat(this.data.iso_zones, [Infinity]);
    const { left, top, width, height } = u.bbox;
    for (let i = 0; i < 4; i++) {
      const y0 = Math.min(top + height, Math.max(top, u.valToPos(z[i], "v", true)));
      const y1 = Math.min(top + height, Math.max(top, u.valToPos(Math.min(z[i + 1], u.scales.v.max), "v", true)));
      if (y0 > y1) { g.fillStyle = ZONE_FILL[i]; g.fillRect(left, y1, width, y0 - y1); }
    }
    g.save(); g.strokeStyle = "rgba(225,87,89,0.6)"; g.setLineDash([4, 4]);
    const ya = u.valToPos(1.0, "a", true); g.beginPath(); g.moveTo(left, ya); g.lineTo(left + width, ya); g.stroke(); g.restore();
  },

  drawEvents(u) {
    const g = u.ctx, { top, height } = u.bbox;
    let shown = 0;
    for (const e of this.data.events) {
      const x = u.valToPos(e.t, "x", true);
      if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
      g.fillStyle = EVENT_COLOR[e.kind] || "#dde3ea"; g.fillRect(x - 1, top, 2, height); shown++;
    }
    document.body.dataset.historyEvents = String(shown);
  },

  clicked(ev) {
    const u = this.plot, x = ev.clientX - u.over.getBoundingClientRect().left, t = u.posToVal(x, "x");
    let best = null;
    for (const e of this.data.events) if (!best || Math.abs(e.t - t) < Math.abs(best.t - t)) best = e;
    const near = best && Math.abs(u.valToPos(best.t, "x") - x) < 8;
    if (near) el("evidence").textContent = (best.snapshot ? "snapshot: " + best.snapshot + "\n" : "") + JSON.stringify(best.event, null, 1);
  },

  // The trend as the daemon last judged it (status), under the chart.
  status(st) {
    const s = st.streams.find((x) => x.name === this.stream), t = s && s.trend, out = el("trend");
    if (!t) { out.textContent = ""; out.className = "dim"; return; }
    const eta = t.eta_h == null ? "not rising" : t.eta_h === 0 ? "at the alarm limit" : "alarm limit in about " + t.eta_h.toFixed(1) + " h";
    out.textContent = (t.degrading ? "degrading: " : "steady: ") + "anomaly level " + t.level.toFixed(3) +
      " (normal " + t.reference.toFixed(3) + "), " + eta;
    out.className = t.degrading ? "degrading" : "dim";
  },
};

for (const b of document.querySelectorAll("#histspans button")) {
  b.onclick = () => {
    historyView.span = Number(b.dataset.span); historyView.range = null;
    for (const o of document.querySelectorAll("#histspans button")) o.classList.toggle("sel", o === b);
    historyView.load();
  };
  if (Number(b.dataset.span) === historyView.span) b.classList.add("sel");
}
// New rows are written once a minute: follow them unless zoomed.
setInterval(() => { if (!historyView.range) historyView.load(); }, 60000);
