/* flor ui: a hash-routed page over the JSON API in /api/. Every value reaches the page
   through textContent; only the server's highlighted code (escaped there) is HTML. */
"use strict";
(function () {
  const main = document.getElementById("main");
  const TOKEN = document.querySelector('meta[name="flor-token"]').content;
  const state = { info: null, runs: { where: "", sort: "started", desc: true, offset: 0,
    projid: "", hidden: new Set(), selected: new Set() } };

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  async function api(path, options) {
    const response = await fetch("/api/" + path, options);
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  function show(...children) { main.replaceChildren(...children.flat().filter((c) => c && c !== true)); }
  function fail(error) { return h("div", { class: "error", role: "alert" }, String(error.message || error)); }
  function cell(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(+value.toPrecision(6));
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }
  function when(seconds) { return seconds ? new Date(seconds * 1000).toLocaleString() : ""; }
  function bytes(n) {
    const units = ["B", "KB", "MB", "GB"]; let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return i ? n.toFixed(1) + " " + units[i] : n + " B";
  }
  function runLink(id) { return h("a", { href: "#/run/" + id, class: "runlink" }, id.slice(0, 10)); }
  function table(head, rows, attrs) {
    return h("table", attrs || {}, h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", { class: typeof c === "number" ? "num" : null },
        c instanceof Node ? c : cell(c)))))));
  }
  function emptyStore() {
    return h("div", { class: "empty" }, h("h1", {}, "No runs yet"),
      h("p", {}, "This store has no recorded runs. Instrument a script and run it from your git repository:"),
      h("pre", {}, "import flor\n\nlr = flor.arg(\"lr\", 1e-3)\nwith flor.checkpointing(model=net, optimizer=opt):\n" +
        "    for epoch in flor.loop(\"epoch\", range(10)):\n        ...\n        flor.log(\"loss\", loss)\n\n" +
        "$ python train.py --kwargs lr=5e-4"),
      h("p", {}, "Then reload this page."));
  }

  // -- Runs --------------------------------------------------------------------------------

  const LABELS = { run_id: "run", projid: "project", filename: "script", tstamp: "tstamp",
    status: "status", version: "version", duration_s: "duration (s)", checkpoint_bytes: "checkpoints" };
  function label(column) { return LABELS[column] || column.replace(/^args\./, "").replace(/^values\./, ""); }
  function valueOf(row, column) {
    if (column.startsWith("args.")) return row.args[column.slice(5)];
    if (column.startsWith("values.")) return row.values[column.slice(7)];
    return row[column];
  }

  let runsShown = 0;
  async function pageRuns() {
    const s = state.runs;
    const shown = ++runsShown;
    const hash = location.hash;
    const params = new URLSearchParams({ where: s.where, sort: s.sort, desc: s.desc ? "1" : "0",
      offset: String(s.offset), limit: "100", projid: s.projid });
    const where = h("input", { type: "text", class: "where", id: "where", value: s.where,
      placeholder: "filter, e.g.  acc > 0.9 and lr < 0.01", "aria-label": "filter runs" });
    where.addEventListener("keydown", (e) => { if (e.key === "Enter") { s.where = where.value; s.offset = 0; route(); } });
    let data;
    try { data = await api("runs?" + params); } catch (e) {
      show(h("h1", {}, "Runs"), h("div", { class: "toolbar" }, where), fail(e)); return;
    }
    if ((await loadInfo()).empty) { show(emptyStore()); return; }
    const columns = data.columns.filter((c) => !s.hidden.has(c));
    const picker = h("div", { class: "picker" });
    const menu = h("div", { class: "menu", hidden: true, id: "column-menu" },
      data.columns.map((c) => h("label", {}, h("input", { type: "checkbox", checked: !s.hidden.has(c), "data-column": c,
        onchange: (e) => { if (e.target.checked) s.hidden.delete(c); else s.hidden.add(c); route(); } }), " " + label(c))));
    picker.append(h("button", { class: "plain", id: "columns", onclick: () => { menu.hidden = !menu.hidden; } }, "Columns"), menu);
    const compare = h("button", { id: "compare", disabled: s.selected.size < 2,
      onclick: () => { location.hash = "#/compare/" + [...s.selected].join(","); } }, `Compare (${s.selected.size})`);
    const projects = data.projects.length > 1 ? h("select", { id: "project", onchange: (e) => { s.projid = e.target.value; s.offset = 0; route(); } },
      h("option", { value: "" }, "all projects"), data.projects.map((p) => h("option", { value: p, selected: p === s.projid }, p))) : null;
    const head = h("tr", {}, h("th", {}, ""), columns.map((c) => h("th", {
      class: "sortable" + (s.sort === c ? (s.desc ? " sorted-desc" : " sorted-asc") : ""), "data-column": c,
      onclick: () => { if (s.sort === c) s.desc = !s.desc; else { s.sort = c; s.desc = false; } s.offset = 0; route(); } }, label(c))));
    const body = h("tbody", {});
    const grouped = data.projects.length > 1 && !s.projid;
    const rows = grouped ? [...data.rows].sort((a, b) => a.projid < b.projid ? -1 : a.projid > b.projid ? 1 : 0) : data.rows;
    let group = null;
    for (const row of rows) {
      if (grouped && row.projid !== group) {
        group = row.projid;
        body.appendChild(h("tr", { class: "group" }, h("td", { colspan: columns.length + 1 }, "project " + group)));
      }
      const box = h("input", { type: "checkbox", "aria-label": "select " + row.run_id, checked: s.selected.has(row.run_id),
        onchange: (e) => { if (e.target.checked) s.selected.add(row.run_id); else s.selected.delete(row.run_id);
          compare.disabled = s.selected.size < 2; compare.textContent = `Compare (${s.selected.size})`; } });
      body.appendChild(h("tr", { "data-run": row.run_id }, h("td", {}, box), columns.map((c) => {
        const v = valueOf(row, c);
        if (c === "run_id") return h("td", {}, runLink(v));
        if (c === "checkpoint_bytes") return h("td", { class: "num" }, bytes(v));
        if (c === "status") return h("td", { class: v === "finished" ? "good" : v === "running" ? "" : "bad" }, v);
        return h("td", { class: typeof v === "number" ? "num" : null }, cell(v));
      })));
    }
    const last = Math.min(data.offset + data.rows.length, data.total);
    const pager = h("div", { class: "toolbar" },
      h("button", { class: "plain", disabled: s.offset === 0, onclick: () => { s.offset = Math.max(0, s.offset - 100); route(); } }, "Previous"),
      h("span", { id: "count" }, `${data.total ? data.offset + 1 : 0}–${last} of ${data.total} runs`),
      h("button", { class: "plain", disabled: last >= data.total, onclick: () => { s.offset += 100; route(); } }, "Next"));
    show(h("h1", {}, "Runs"),
      h("div", { class: "toolbar" }, where, h("button", { onclick: () => { s.where = where.value; s.offset = 0; route(); } }, "Filter"),
        projects, picker, compare),
      h("table", { id: "runs" }, h("thead", {}, head), body), pager);
    if (!data.complete) {  // a first page, sent before every run's values were read
      api("runs?" + params + "&complete=1").then((full) => {
        const same = JSON.stringify(full.columns) === JSON.stringify(data.columns);
        if (!same && shown === runsShown && location.hash === hash) route();
      }, () => {});
    }
  }

  // -- Run ---------------------------------------------------------------------------------

  async function curves(runIds, names, container, points) {
    for (const n of names) {
      const results = await Promise.all(runIds.map((id) =>
        api(`runs/${id}/series?` + new URLSearchParams({ name: n.name, points: String(points || 1200) }))));
      const present = results.filter((r) => r.y.length);
      if (!present.length) continue;
      const axes = Object.keys(present[0].x);
      let axis = axes[axes.length - 1];
      const slot = h("div", {});
      const draw = () => {
        const series = present.map((r) => ({ label: r.run_id.slice(0, 10) + (r.replayed ? " (replayed)" : ""),
          x: r.x[axis] || r.x.index, y: r.y }));
        const notes = present.filter((r) => r.downsampled).map((r) => "downsampled on the server: " + r.downsampled);
        const chart = FlorCharts.line(series, { title: n.name, id: n.name, xLabel: axis, yLabel: n.name,
          note: notes[0] || "" });
        if (axes.length > 1) {
          chart.appendChild(h("div", {}, "x axis: ", axes.map((a) => h("button", { class: a === axis ? "" : "plain",
            onclick: () => { axis = a; draw(); } }, a))));
        }
        slot.replaceChildren(chart);
      };
      draw();
      container.appendChild(slot);
    }
  }

  async function pageRun(id) {
    let d;
    try { d = await api("runs/" + encodeURIComponent(id)); } catch (e) { show(fail(e)); return; }
    const r = d.run;
    const looped = d.names.filter((n) => n.loops.length);
    const code = h("div", {}, h("span", { class: "muted" }, "loading code…"));
    const charts = h("div", { class: "grid", id: "curves" });
    show(h("h1", {}, `Run ${r.run_id} `, h("a", { href: "#/lineage/" + encodeURIComponent(r.run_id), id: "lineage-link",
      class: "muted" }, "lineage")),
      h("table", { class: "kv" }, h("tbody", {}, [["script", r.filename], ["status", r.status], ["started", when(r.started)],
        ["duration (s)", r.duration_s], ["version", d.version || "(no snapshot)"], ["argv", (r.argv || []).join(" ")],
        ["host", r.host], ["mode", r.mode + (r.replay_of ? " of " + r.replay_of : "")]]
        .map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, cell(v)))))),
      h("h2", {}, "Arguments"), table(["name", "value"], Object.entries(r.args)),
      h("h2", {}, "Final values"), table(["name", "value", "logged at", "values", "source"],
        d.names.map((n) => [n.name, n.final, n.loops.join(" / ") || "top level", n.count,
          n.recorded ? (n.replayed ? "recorded + replayed" : "recorded") : "replayed"]), { id: "final-values" }),
      h("h2", {}, "Curves"), looped.length ? charts : h("p", { class: "muted" }, "No values logged inside loops."),
      h("h2", {}, "Checkpoints"), d.checkpoints.length ? table(["iteration", "object", "bytes", "seconds"],
        d.checkpoints.map((c) => [c.iteration, c.object, bytes(c.bytes), c.seconds])) : h("p", { class: "muted" }, "No checkpoints."),
      h("h2", {}, "Replays that added values"), d.replays.length ? table(["replay task", "status", "started", "values added"],
        d.replays.map((t) => [t.replay_id, t.status, when(t.started), Object.entries(t.values).map(([k, v]) => `${k}: ${v}`).join(", ")]),
        { id: "replays" }) : h("p", { class: "muted" }, "None yet."),
      h("h2", {}, "Git"), table(["field", "value"], [["snapshot", d.git.snapshot], ["base commit", d.git.base_commit],
        ["branch", d.git.branch], ["base message", d.git.base_message]].filter((kv) => kv[1])),
      h("h2", {}, "Code snapshot"), code);
    if (!d.git.snapshot) code.replaceChildren(h("p", { class: "muted", id: "no-code" }, "No code snapshot: the run was recorded outside a git repository."));
    else if (d.git.missing !== false) {
      code.replaceChildren(h("p", { class: "muted", id: "no-code" }, `Snapshot ${d.git.snapshot.slice(0, 10)} is not in the ` +
        "repository flor ui serves: start flor ui inside the project's repository to see the code."));
    } else loadCode(r.run_id, null, d.git.files || [], code);
    try { await curves([r.run_id], looped, charts); } catch (e) { charts.appendChild(fail(e)); }
    charts.dataset.ready = "1";
  }

  async function loadCode(runId, path, files, container) {
    let f;
    try { f = await api(`runs/${runId}/file?` + new URLSearchParams(path ? { path } : {})); } catch (e) {
      container.replaceChildren(fail(e)); return;
    }
    const picker = files.length > 1 ? h("select", { id: "file", onchange: (e) => loadCode(runId, e.target.value, files, container) },
      files.map((p) => h("option", { value: p, selected: p === f.path }, p))) : h("span", {}, f.path);
    const pre = h("pre", { class: "code", id: "code" });
    const lines = f.html || f.text.split("\n");
    lines.forEach((line, i) => {
      const row = h("div", {}, h("span", { class: "ln" }, String(i + 1)));
      const text = h("span", {});
      if (f.html) text.innerHTML = line; else text.textContent = line;  // html: escaped by the server
      row.appendChild(text); pre.appendChild(row);
    });
    container.replaceChildren(h("div", { class: "toolbar" }, picker, h("span", { class: "muted" }, "at " + f.commit.slice(0, 10))), pre);
  }

  function diffView(text, id) {
    const pre = h("pre", { class: "diff", id });
    for (const line of text.split("\n")) {
      const kind = line.startsWith("diff --git") ? "file" : line.startsWith("@@") ? "hunk" :
        line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : null;
      pre.appendChild(kind ? h("span", { class: kind }, line) : document.createTextNode(line + "\n"));
    }
    return pre;
  }

  // -- Compare -----------------------------------------------------------------------------

  async function pageCompare(ids) {
    let d;
    try { d = await api("compare?" + new URLSearchParams({ runs: ids })); } catch (e) { show(fail(e)); return; }
    const charts = h("div", { class: "grid", id: "curves" });
    show(h("h1", {}, "Compare " + d.runs.length + " runs"),
      table(["run", "script", "version", "status"], d.runs.map((r) => [runLink(r.run_id), r.filename, (r.snapshot || "").slice(0, 10), r.status])),
      h("h2", {}, "Arguments"),
      h("table", { id: "args-diff" }, h("thead", {}, h("tr", {}, h("th", {}, "name"), d.runs.map((r) => h("th", {}, r.run_id.slice(0, 10))))),
        h("tbody", {}, d.args.map((a) => h("tr", { class: a.differs ? "differs" : null },
          h("td", {}, a.name + (a.differs ? " ≠" : "")), a.values.map((v) => h("td", { class: a.differs ? "bad" : null }, cell(v))))))),
      h("h2", {}, "Curves"), charts,
      h("h2", {}, "Code diff between snapshots"),
      d.diffs.map((x) => h("div", { class: "codediff" }, h("p", {}, `${x.base.slice(0, 10)} → ${x.other.slice(0, 10)}: `,
        h("span", { class: "muted" }, x.note || "")), x.diff ? diffView(x.diff, "diff-" + x.other) : null)));
    try { await curves(d.runs.map((r) => r.run_id), d.names.filter((n) => n.loops.length), charts); } catch (e) { charts.appendChild(fail(e)); }
    charts.dataset.ready = "1";
  }

  // -- SQL ---------------------------------------------------------------------------------

  async function pageSql() {
    const box = h("textarea", { id: "sql", rows: 5, cols: 100, spellcheck: "false" },
      sessionStorage.getItem("flor.sql") || "SELECT name, COUNT(*) AS n FROM logs GROUP BY name ORDER BY n DESC");
    const out = h("div", { id: "sql-result" });
    const run = async () => {
      sessionStorage.setItem("flor.sql", box.value);
      out.replaceChildren(h("span", { class: "muted" }, "running…"));
      try {
        const d = await api("sql?" + new URLSearchParams({ q: box.value }));
        out.replaceChildren(h("p", {}, `${d.total} rows` + (d.truncated ? ` (first ${d.rows.length} shown)` : ""), " ",
          h("a", { id: "csv", href: "/api/sql.csv?" + new URLSearchParams({ q: box.value }), download: "flor-query.csv" }, "Download CSV")),
          table(d.columns, d.rows, { id: "sql-table" }));
      } catch (e) { out.replaceChildren(fail(e)); }
    };
    show(h("h1", {}, "SQL"), h("p", { class: "muted" }, "Read-only, with the same guard as flor query. Tables: runs, loops, logs, checkpoints, commits, artifacts, events (lineage), curves (long curves summarized)."),
      box, h("div", { class: "toolbar" }, h("button", { id: "run-sql", onclick: run }, "Run")), out);
  }

  // -- Versions ----------------------------------------------------------------------------

  async function pageVersions() {
    let d;
    try { d = await api("versions"); } catch (e) { show(fail(e)); return; }
    if (!d.scripts.length) { show(emptyStore()); return; }
    const version = (v) => h("div", { class: "version", "data-version": v.snapshot },
      h("strong", {}, v.snapshot ? v.snapshot.slice(0, 10) : "(no snapshot)"), " ",
      h("span", { class: "muted" }, when(v.first) +
        (v.change.first ? " · first version" : ` · +${v.change.added} −${v.change.removed} lines`)),
      h("div", {}, v.runs.map((r) => h("a", { class: "chip " + r.status, href: "#/run/" + r.run_id,
        title: JSON.stringify(r.args) }, r.run_id.slice(0, 8))),
        v.more ? h("span", { class: "muted" }, ` and ${v.more} more runs`) : null));
    show(h("h1", {}, "Versions"), d.scripts.map((s) => h("section", { class: "script" },
      h("h2", {}, s.filename), h("div", { class: "timeline" }, s.versions.map(version)))));
  }

  // -- Parameters vs metrics ---------------------------------------------------------------

  async function pageParams() {
    let d;
    try { d = await api("params"); } catch (e) { show(fail(e)); return; }
    if (!d.run_ids.length) { show(emptyStore()); return; }
    if (!d.params.length || !d.metrics.length) {
      show(h("h1", {}, "Parameters vs metrics"), h("p", {}, "Runs need flor.arg parameters and numeric values to compare.")); return;
    }
    const first = d.varying[0] || d.params[0];  // a parameter every run shares moves nothing
    const px = h("select", { id: "param" }, d.params.map((p) => h("option", { value: p, selected: p === first }, p)));
    const my = h("select", { id: "metric" }, d.metrics.map((m) => h("option", { value: m }, m)));
    const slot = h("div", { id: "scatter" });
    const draw = () => {
      const p = px.value, m = my.value, xs = d.args[p], ys = d.values[m];
      const categories = [...new Set(xs.filter((v) => typeof v === "string"))].sort();
      const points = [];
      d.run_ids.forEach((id, i) => {
        if (xs[i] === null || xs[i] === undefined || typeof ys[i] !== "number") return;
        points.push({ x: typeof xs[i] === "string" ? categories.indexOf(xs[i]) : Number(xs[i]), y: ys[i],
          group: d.versions[i] || "unversioned", label: `${id.slice(0, 10)}  ${p}=${cell(xs[i])}  ${m}=${cell(ys[i])}` });
      });
      slot.replaceChildren(FlorCharts.scatter(points, { title: `${m} by ${p} (last value per run, colour: code version)`,
        xLabel: p + (categories.length ? " (" + categories.join(", ") + ")" : ""), yLabel: m, width: 640, height: 360 }));
    };
    px.addEventListener("change", draw); my.addEventListener("change", draw);
    show(h("h1", {}, "Parameters vs metrics"), h("div", { class: "toolbar" }, "parameter ", px, " metric ", my), slot);
    draw();
  }

  // -- Hindsight ---------------------------------------------------------------------------

  async function pageHindsight(script) {
    show(h("h1", {}, "Hindsight"), h("p", { class: "muted", id: "hindsight-loading" }, "Propagating the newest statements into past versions…"));
    let d;
    try { d = await api("hindsight?" + new URLSearchParams(script ? { script } : {})); } catch (e) { show(h("h1", {}, "Hindsight"), fail(e)); return; }
    if (!d.script) { show(emptyStore()); return; }
    const picker = h("select", { id: "script", onchange: (e) => { location.hash = "#/hindsight/" + encodeURIComponent(e.target.value); } },
      d.scripts.map((s) => h("option", { value: s, selected: s === d.script }, s)));
    const missing = d.names.filter((n) => n.lacking.length);
    const parts = [h("h1", {}, "Hindsight"), h("div", { class: "toolbar" }, "script ", picker),
      h("h2", {}, "flor.log statements of the newest " + d.script),
      table(["name", "past runs lacking it"], d.names.map((n) => [n.name, n.lacking.length]), { id: "hindsight-names" })];
    if (!missing.length) {
      parts.push(h("p", { id: "nothing" }, "Every past run already has every statement of the newest script."));
      show(...parts); return;
    }
    parts.push(h("h2", {}, "Propagation into each past version"),
      h("table", { id: "propagation" }, h("thead", {}, h("tr", {}, ["version", "placed", "already there", "declined (why)", "diff"].map((c) => h("th", {}, c)))),
        h("tbody", {}, d.versions.map((v) => {
          const diff = v.diff ? diffView(v.diff) : null;
          if (diff) diff.hidden = true;
          return h("tr", {}, h("td", {}, v.label || v.commit.slice(0, 10)), h("td", {}, (v.inserted || []).length),
            h("td", {}, (v.present || []).length), h("td", { class: (v.declined || []).length || v.error ? "bad" : null },
              v.error || (v.declined || []).join("; ")),
            h("td", {}, diff ? [h("button", { class: "plain", onclick: () => { diff.hidden = !diff.hidden; } }, "show"), diff] : ""));
        }))));
    const plan = d.plan;
    parts.push(h("h2", {}, "Replay plan"));
    if (plan.error) parts.push(fail(new Error(plan.error)));
    else {
      parts.push(h("p", { id: "estimate" }, `${plan.runs.length} runs, ${plan.tasks} tasks, estimated ${plan.estimate_s} s for `,
        h("code", {}, plan.names.join(", "))),
        table(["run", "version", "strategy", "names", "iterations", "checkpoints", "tasks", "estimate (s)", "note"],
          plan.runs.map((r) => [runLink(r.run_id), r.version, r.strategy, r.names, r.iterations, r.checkpoints, r.tasks, r.estimate_s, r.note]),
          { id: "plan" }));
      if (state.info.allow_replay && plan.tasks) {
        const status = h("div", { id: "replay-status" });
        const button = h("button", { id: "replay", onclick: () => startReplay(plan, button, status) }, "Replay now");
        parts.push(button, status);
      } else if (plan.tasks) {
        parts.push(h("p", { class: "muted" }, "Start flor ui --allow-replay to run it from here, or run: flor replay " + plan.names.join(" ")));
      }
    }
    show(...parts);
  }

  async function startReplay(plan, button, status) {
    button.disabled = true;
    let job;
    try {
      job = await api("replay", { method: "POST", headers: { "Content-Type": "application/json", "X-Flor-Token": TOKEN },
        body: JSON.stringify({ names: plan.names, runs: plan.runs.map((r) => r.run_id) }) });
    } catch (e) { status.replaceChildren(fail(e)); button.disabled = false; return; }
    const bar = h("progress", { max: 1, value: 0 });
    const text = h("span", { id: "replay-text" }, "planning…");
    status.replaceChildren(bar, " ", text);
    while (job.state === "planning" || job.state === "running") {
      await new Promise((resolve) => setTimeout(resolve, 500));
      try { job = await api("replay/" + job.job_id); } catch (e) {  // e.g. the server stopped
        text.textContent = ""; status.appendChild(fail(e)); button.disabled = false; return;
      }
      bar.max = Math.max(1, job.tasks); bar.value = job.tasks_ended;
      text.textContent = `${job.state}: ${job.tasks_ended}/${job.tasks} tasks, ${job.values_written} values, ${job.elapsed_s} s`;
    }
    status.dataset.state = job.state;
    text.textContent = job.message;
    if (job.failed_tasks.length) status.appendChild(h("pre", {}, job.failed_tasks.map((f) => f.tail).join("\n\n")));
    if (job.declined.length) status.appendChild(h("pre", {}, job.declined.map((d) => `run ${d.run_id}: nothing stored, ${d.reason}`).join("\n")));
    const charts = h("div", { class: "grid", id: "replayed-curves" });
    status.appendChild(h("h2", {}, "New values"));
    status.appendChild(charts);
    const runs = plan.runs.filter((r) => r.tasks).map((r) => r.run_id);
    await curves(runs, plan.names.map((n) => ({ name: n })), charts);
    charts.dataset.ready = "1";
  }

  // -- Lineage -----------------------------------------------------------------------------

  const SVG = "http://www.w3.org/2000/svg";
  function svgEl(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
    for (const child of children) el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    return el;
  }
  function clip(text, n) { return text.length > n ? "…" + text.slice(text.length - n + 1) : text; }
  function lineageHash(target, direction, depth) {
    return "#/lineage/" + [target, direction, depth].map(encodeURIComponent).join("/");
  }

  async function pageLineage(target, direction, depth) {
    direction = direction || "both"; depth = depth || "all";
    const box = h("input", { type: "text", id: "lineage-target", class: "where", value: target,
      placeholder: "data/train.csv, model.pt@latest, PATH@DIGEST or a run id", "aria-label": "lineage target" });
    const way = h("select", { id: "lineage-direction", "aria-label": "direction" },
      ["both", "upstream", "downstream"].map((d) => h("option", { value: d, selected: d === direction }, d)));
    const far = h("select", { id: "lineage-depth", "aria-label": "depth" },
      ["all", "1", "2", "3", "5", "10"].map((d) => h("option", { value: d, selected: d === depth }, d === "all" ? "any depth" : `depth ${d}`)));
    const go = () => { if (box.value.trim()) location.hash = lineageHash(box.value.trim(), way.value, far.value); };
    box.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
    const form = h("div", { class: "toolbar" }, box, way, far, h("button", { id: "lineage-show", onclick: go }, "Show"));
    if (!target) {
      show(h("h1", {}, "Lineage"), form, h("p", { class: "muted", id: "lineage-hint" },
        "The runs and files around a target: a path the scripts read or wrote with flor.input / flor.output " +
        "(data/train.csv), its newest content (model.pt@latest), one content (PATH@DIGEST), or a run id."));
      return;
    }
    let d;
    try {
      d = await api("lineage?" + new URLSearchParams({ target, direction, depth }));
    } catch (e) { show(h("h1", {}, "Lineage"), form, fail(e)); return; }
    const byId = new Map(d.nodes.map((n) => [n.id, n]));
    const detail = h("div", { id: "lineage-detail" }, h("p", { class: "muted" }, "Click a file to see its paths, digest and size; a run opens its page."));
    show(h("h1", {}, "Lineage of " + target), form,
      h("p", { class: "muted" }, `${d.nodes.filter((n) => n.kind === "run").length} runs, ` +
        `${d.nodes.filter((n) => n.kind === "artifact").length} artifacts, ${d.edges.length} edges (${direction}, ` +
        (d.depth === null ? "any depth" : "depth " + d.depth) + "); dashed: a content later replaced in its run."),
      h("div", { class: "lineage-scroll" }, lineageSvg(d, byId, detail)), detail,
      h("h2", {}, "Edges"), table(["from", "to", "role", "path", "status"], d.edges.map((e) =>
        [nodeName(byId.get(e.source)), nodeName(byId.get(e.target)), e.role, e.path, e.status]), { id: "lineage-edges" }));
  }

  function nodeName(n) {
    return n.kind === "run" ? runLink(n.run_id) : `${n.paths[0] || "?"} @${n.digest.slice(0, 12)}`;
  }

  function lineageSvg(d, byId, detail) {
    const W = 200, H = 44, GAP_X = 60, GAP_Y = 16, PAD = 12;
    const layers = [...new Set(d.nodes.map((n) => n.layer))].sort((a, b) => a - b);
    const place = new Map();
    let tallest = 0;
    layers.forEach((layer, col) => {
      const here = d.nodes.filter((n) => n.layer === layer);
      here.forEach((n, row) => place.set(n.id, { x: PAD + col * (W + GAP_X), y: PAD + row * (H + GAP_Y) }));
      tallest = Math.max(tallest, here.length);
    });
    const width = PAD * 2 + layers.length * W + (layers.length - 1) * GAP_X;
    const height = PAD * 2 + tallest * H + Math.max(0, tallest - 1) * GAP_Y;
    const root = svgEl("svg", { id: "lineage-graph", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": "lineage graph" });
    root.appendChild(svgEl("defs", {}, svgEl("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, svgEl("path", { d: "M0,0 L10,5 L0,10 z", fill: "#718096" }))));
    for (const e of d.edges) {
      const a = place.get(e.source), b = place.get(e.target);
      if (!a || !b) continue;
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, bend = Math.max(40, Math.abs(x2 - x1) / 2);
      root.appendChild(svgEl("path", { class: "edge " + e.role + (e.status === "ok" ? "" : " replaced"),
        d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)",
        "data-source": e.source, "data-target": e.target }, svgEl("title", {}, `${e.role}: ${e.path} (${e.status})`)));
    }
    for (const n of d.nodes) {
      const p = place.get(n.id);
      const isRoot = d.roots.includes(n.id);
      const shape = svgEl("rect", { x: p.x, y: p.y, width: W, height: H, rx: n.kind === "run" ? 4 : 12 });
      const first = n.kind === "run" ? `run ${n.run_id.slice(0, 10)} · ${n.status}` : clip(n.paths.join(", ") || "?", 28);
      const second = n.kind === "run" ? clip(n.filename, 20) + " · code " + ((n.snapshot || "").slice(0, 8) || "none")
        : `@${n.digest.slice(0, 12)} · ${n.type} ${bytes(n.bytes || 0)}` + (n.blob ? " · kept" : "");
      const group = svgEl("g", { class: "node " + n.kind + (isRoot ? " root" : ""), "data-id": n.id, "data-layer": n.layer },
        svgEl("title", {}, n.kind === "run" ? `run ${n.run_id} ${n.filename}` : n.paths.join("\n")), shape,
        svgEl("text", { x: p.x + 8, y: p.y + 18 }, first), svgEl("text", { x: p.x + 8, y: p.y + 35, class: "sub" }, second));
      if (n.kind === "run") {
        root.appendChild(svgEl("a", { href: "#/run/" + n.run_id, class: "runnode" }, group));
      } else {
        group.addEventListener("click", () => detail.replaceChildren(artifactDetail(n)));
        root.appendChild(group);
      }
    }
    return root;
  }

  function artifactDetail(n) {
    const at = `${n.paths[0]}@${n.digest}`;
    return h("div", { class: "card", "data-digest": n.digest },
      table(["field", "value"], [["paths", n.paths.join(", ")], ["digest", n.digest], ["type", n.type],
        ["size", `${bytes(n.bytes || 0)} (${n.bytes} bytes)`], ["files", n.files], ["kept", n.blob ? "yes: flor checkout " + at : "no"]],
      { class: "kv", id: "artifact-detail" }),
      h("a", { href: lineageHash(at, "both", "all"), id: "artifact-lineage" }, "lineage of this content"));
  }

  // -- router ------------------------------------------------------------------------------

  let infoAsked = null;
  function loadInfo() {
    if (!infoAsked) {
      infoAsked = api("info").then((info) => {
        state.info = info;
        document.getElementById("store").textContent = info.store;
        return info;
      }, (e) => { infoAsked = null; throw e; });
      infoAsked.catch(() => {});  // a failure shows where it is awaited, not as an unhandled rejection
    }
    return infoAsked;
  }

  async function route() {
    const [page, arg, ...more] = location.hash.replace(/^#\/?/, "").split("/");
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === (page || "runs"));
    main.dataset.page = page || "runs";
    main.dataset.ready = "";
    try {
      const info = loadInfo();  // asked for at once, awaited where needed: the runs page asks for its rows meanwhile
      if (page && page !== "runs") await info;
      const target = decodeURIComponent(arg || "");
      if (page === "run") await pageRun(target);
      else if (page === "compare") await pageCompare(target);
      else if (page === "sql") await pageSql();
      else if (page === "versions") await pageVersions();
      else if (page === "params") await pageParams();
      else if (page === "hindsight") await pageHindsight(target);
      else if (page === "lineage") await pageLineage(target, ...more.map(decodeURIComponent));
      else await pageRuns();
    } catch (e) { show(fail(e)); }
    main.dataset.ready = "1";
  }

  window.addEventListener("hashchange", route);
  route();
})();
