/* Small SVG charts for flor ui: line charts and scatter plots, no dependencies. */
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2b6cb0", "#dd6b20", "#2f855a", "#c53030", "#6b46c1", "#b7791f",
    "#0987a0", "#d53f8c", "#4a5568", "#38a169", "#9c4221", "#553c9a"];

  function svg(tag, attrs) {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    return el;
  }

  function niceTicks(lo, hi, count) {
    if (!(hi > lo)) { hi = lo + 1; lo = lo - 1; }
    const raw = (hi - lo) / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toPrecision(12));
    return ticks;
  }

  function fmt(v) {
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a >= 1e5 || a < 1e-3) return v.toExponential(1);
    return String(+v.toPrecision(4));
  }

  function extent(values) {
    let lo = Infinity, hi = -Infinity;
    for (const v of values) if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
    if (lo === Infinity) return [0, 1];
    if (lo === hi) return [lo - Math.abs(lo || 1) * 0.05, hi + Math.abs(hi || 1) * 0.05];
    return [lo, hi];
  }

  function padded([lo, hi]) {  // room around scatter points, so none sits on an axis
    const room = (hi - lo) * 0.06;
    return [lo - room, hi + room];
  }

  function frame(opts, xs, ys) {
    const W = opts.width || 420, H = opts.height || 220, M = { l: 56, r: 12, t: 8, b: 34 };
    const root = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img" });
    const pad = opts.padded ? padded : (e) => e;
    const [x0, x1] = pad(extent(xs)), [y0, y1] = pad(extent(ys));
    const sx = (v) => M.l + ((v - x0) / (x1 - x0 || 1)) * (W - M.l - M.r);
    const sy = (v) => H - M.b - ((v - y0) / (y1 - y0 || 1)) * (H - M.t - M.b);
    const axis = svg("g", { class: "axis", "font-size": 10, fill: "#718096" });
    for (const t of niceTicks(y0, y1, 4)) {
      axis.appendChild(svg("line", { x1: M.l, x2: W - M.r, y1: sy(t), y2: sy(t), stroke: "#edf2f7" }));
      const label = svg("text", { x: M.l - 4, y: sy(t) + 3, "text-anchor": "end" });
      label.textContent = fmt(t); axis.appendChild(label);
    }
    for (const t of niceTicks(x0, x1, 5)) {
      const label = svg("text", { x: sx(t), y: H - M.b + 13, "text-anchor": "middle" });
      label.textContent = fmt(t); axis.appendChild(label);
    }
    axis.appendChild(svg("line", { x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b, stroke: "#a0aec0" }));
    axis.appendChild(svg("line", { x1: M.l, x2: M.l, y1: M.t, y2: H - M.b, stroke: "#a0aec0" }));
    const xl = svg("text", { x: (M.l + W - M.r) / 2, y: H - 4, "text-anchor": "middle" });
    xl.textContent = opts.xLabel || ""; axis.appendChild(xl);
    const yl = svg("text", { x: 10, y: (M.t + H - M.b) / 2, "text-anchor": "middle",
      transform: `rotate(-90 10 ${(M.t + H - M.b) / 2})` });
    yl.textContent = opts.yLabel || ""; axis.appendChild(yl);
    root.appendChild(axis);
    return { root, sx, sy };
  }

  function card(opts, body, legendItems) {
    const div = document.createElement("div");
    div.className = "card chart";
    if (opts.id) div.dataset.chart = opts.id;
    const title = document.createElement("div");
    title.className = "title"; title.textContent = opts.title || "";
    div.appendChild(title);
    div.appendChild(body);
    if (legendItems && legendItems.length > 1) {
      const legend = document.createElement("div");
      legend.className = "legend";
      for (const [label, color] of legendItems) {
        const item = document.createElement("span");
        const swatch = document.createElement("i");
        swatch.style.background = color;
        item.appendChild(swatch); item.appendChild(document.createTextNode(label));
        legend.appendChild(item);
      }
      div.appendChild(legend);
    }
    if (opts.note) {
      const note = document.createElement("div");
      note.className = "note"; note.textContent = opts.note;
      div.appendChild(note);
    }
    return div;
  }

  /* series: [{label, x: [...], y: [...]}] drawn as lines (a dot where there is one point). */
  function line(series, opts) {
    const xs = series.flatMap((s) => s.x), ys = series.flatMap((s) => s.y);
    const { root, sx, sy } = frame(opts, xs, ys);
    const legend = [];
    series.forEach((s, i) => {
      const color = PALETTE[i % PALETTE.length];
      legend.push([s.label, color]);
      if (s.x.length === 1) {
        root.appendChild(svg("circle", { cx: sx(s.x[0]), cy: sy(s.y[0]), r: 3, fill: color }));
        return;
      }
      let d = "";
      for (let k = 0; k < s.x.length; k++) {
        if (!Number.isFinite(s.y[k])) continue;
        d += (d ? "L" : "M") + sx(s.x[k]).toFixed(1) + "," + sy(s.y[k]).toFixed(1);
      }
      root.appendChild(svg("path", { d, fill: "none", stroke: color, "stroke-width": 1.4,
        class: "series", "data-label": s.label }));
    });
    return card(opts, root, legend);
  }

  /* points: [{x, y, group, label}] coloured by group. */
  function scatter(points, opts) {
    const { root, sx, sy } = frame({ ...opts, padded: true }, points.map((p) => p.x), points.map((p) => p.y));
    const groups = [...new Set(points.map((p) => p.group))];
    for (const p of points) {
      if (!Number.isFinite(p.x) || !Number.isFinite(p.y)) continue;
      const color = PALETTE[groups.indexOf(p.group) % PALETTE.length];
      const dot = svg("circle", { cx: sx(p.x), cy: sy(p.y), r: 4, fill: color, "fill-opacity": 0.8,
        class: "point" });
      const tip = svg("title", {}); tip.textContent = p.label; dot.appendChild(tip);
      root.appendChild(dot);
    }
    return card(opts, root, groups.map((g, i) => [g, PALETTE[i % PALETTE.length]]));
  }

  window.FlorCharts = { line, scatter, PALETTE };
})();
