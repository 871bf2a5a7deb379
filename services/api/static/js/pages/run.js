// #/runs/{id}[?keys=a,b&log=c]: status (and why it failed), name and notes, a chart for every logged metric
// (the picker chooses which; the layout and log axes stay in the URL), Elo, replay, hyperparameters,
// checkpoints with download links, and the metrics as CSV or JSON.
//
// The page is a handful of sections, each built from the shared `page` ({ id, ctx, run, note }) and each with
// a `refresh()`; runPage lays them out and `follow` refreshes them while the run is live.
import { api, downloadLink, envs, imageSource } from "../api.js";
import { chartControls, keysParam, lineChart, metricPicker, orderKeys, prefs, setRouteParam, smoothingParam, startTime, xOf } from "../charts.js";
import { badge, duration, flatten, h, kvTable, num, progress, steps, table, tags, unavailable, when } from "../ui.js";

const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const MAX_POINTS = 2000;
const MIN_POINTS = 500;
const FIRST = "env/perf";

export default async function runPage(root, ctx) {
  const id = Number(ctx.args[0]);
  const chosen = keysParam(ctx.params);
  // The first chart is what the eye waits for: its series is asked for alongside the run, not after it.
  const firstSeries = !chosen || chosen.includes(FIRST) ? metricsOf(id, ctx, [FIRST]).catch(() => null) : null;
  const page = { id, ctx, run: null, note: h("span", { class: "muted", "data-testid": "live" }) };
  try {
    page.run = await api(`/runs/${id}`, { signal: ctx.signal });
  } catch (e) {
    if (!e.aborted) root.append(unavailable(`run #${id}`, e));
    return;
  }

  const sections = {
    header: headerSection(page),
    metrics: new MetricCharts(page, chosen),
    checkpoints: checkpointsSection(page),
    replay: replaySection(page),
    elo: eloSection(page),
  };
  page.changed = () => sections.header.refresh();
  root.append(
    sections.header.el,
    exportLinks(id),
    ...sections.metrics.els,
    sections.elo.el,
    h("div", { class: "cols" },
      h("div", {}, notesPanel(page), h("h2", {}, "Hyperparameters"), hyperparameters(page.run)),
      h("div", {}, sections.replay.el, h("h2", {}, "Checkpoints"), sections.checkpoints.el)));

  sections.header.refresh();
  sections.checkpoints.refresh();
  await sections.metrics.load(firstSeries);
  sections.replay.refresh();
  sections.elo.refresh();
  if (!FINISHED.has(page.run.status)) follow(page, sections);
}

/** Live: while the run is queued or running, poll every 2 s; every section updates in place. */
function follow(page, sections) {
  page.note.textContent = "live: updating every 2 s";
  let polls = 0;
  page.ctx.every(2000, async () => {
    try {
      page.run = await api(`/runs/${page.id}`, { signal: page.ctx.signal });
    } catch (e) {
      if (!e.aborted) page.note.textContent = `live update failed (${e.message}); retrying`;
      return true;
    }
    sections.header.refresh();
    sections.checkpoints.refresh();
    sections.metrics.noteNewKeys();
    await sections.metrics.refresh();
    sections.replay.refresh();
    // Checkpoints are rated while the run trains, so the Elo curve grows too; every 10 s is plenty.
    if (++polls % 5 === 0) sections.elo.refresh();
    if (FINISHED.has(page.run.status)) {
      page.note.textContent = `finished: ${page.run.status}`;
      sections.elo.refresh();
      return false;
    }
    return true;
  });
}

function metricsOf(id, ctx, keys) {
  return api(`/runs/${id}/metrics`, {
    params: { keys: keys.join(","), max_points: maxPoints(), smoothing: smoothingParam() }, signal: ctx.signal });
}

/** Points per series to ask for: two per device pixel of a chart's width, between 500 and 2000. Each
 *  bucket keeps its min and max (the band), so more points would not show; fewer bytes draw sooner on long
 *  runs. Charts are at least 440 px wide, 12 px apart (app.css's .charts grid). */
function maxPoints() {
  const width = document.getElementById("view")?.clientWidth || innerWidth;
  const columns = Math.max(1, Math.floor((width + 12) / 452));
  const chart = (width - 12 * (columns - 1)) / columns;
  return Math.max(MIN_POINTS, Math.min(MAX_POINTS, Math.ceil(2 * chart * devicePixelRatio)));
}

function writeError(what, e) {
  return `${what}: ${e.message}${e.status === 401 ? " (paste the token from `shoal up` above)" : ""}`;
}

/** Title, status, failure reason, progress and the run's facts; a cancel button while it is active. */
function headerSection(page) {
  const el = h("div");
  async function cancel() {
    try {
      page.run = await api(`/runs/${page.id}/cancel`, { method: "POST", signal: page.ctx.signal });
      refresh();
    } catch (e) {
      if (!e.aborted) el.append(h("div", { class: "banner bad" }, writeError("cancel", e)));
    }
  }
  function refresh() {
    const run = page.run;
    const active = !FINISHED.has(run.status);
    el.replaceChildren(
      h("h1", {}, `Run #${run.id}`, run.name ? h("span", { "data-testid": "run-name" }, run.name) : "",
        h("span", { class: "mono" }, run.env), badge(run.status), ...tags(run.tags),
        active ? h("button", { class: "danger", "data-testid": "cancel", onclick: cancel }, "cancel") : ""),
      run.status === "failed"
        ? h("div", { class: "banner bad", "data-testid": "failure-banner" },
          h("strong", {}, "Failed: "), h("span", { class: "reason", "data-testid": "failure-reason" }, run.failure_reason || "no reason recorded"))
        : "",
      h("div", { class: "panel row" },
        h("span", {}, progress(run.progress_steps, run.total_timesteps), ` ${steps(run.progress_steps)} / ${steps(run.total_timesteps)} steps`),
        h("span", {}, "score ", h("strong", {}, num(run.final_score))),
        h("span", { class: "muted" }, `seed ${run.seed}`),
        h("span", { class: "muted" }, `cost ${duration(run.cost_seconds)}`),
        h("span", { class: "muted" }, `attempts ${run.attempts}`),
        h("span", { class: "muted", title: run.created_at }, `created ${when(run.created_at)}`),
        run.sweep_id ? h("a", { href: `#/sweeps/${run.sweep_id}` }, `sweep #${run.sweep_id}`) : "",
        h("span", { class: "muted mono", title: "environment code version" }, `env ${run.env_version}`)));
  }
  return { el, refresh };
}

function exportLinks(id) {
  return h("div", { class: "row export", "data-testid": "export" }, h("span", { class: "muted" }, "download metrics (every point):"),
    downloadLink(`/runs/${id}/metrics/export?format=csv`, `run-${id}-metrics.csv`, { "data-testid": "export-csv" }, "CSV"),
    downloadLink(`/runs/${id}/metrics/export?format=json`, `run-${id}-metrics.json`, { "data-testid": "export-json" }, "JSON"),
    h("span", { class: "muted", title: "writes TensorBoard event files through this API; then tensorboard --logdir tb" },
      "· TensorBoard: ", h("code", { "data-testid": "export-tensorboard" }, tensorboardCommand(id))));
}

/** The command that writes this run's metrics as TensorBoard event files, through this server. */
function tensorboardCommand(id) {
  const url = location.origin === "http://127.0.0.1:8000" ? "" : ` --url ${location.origin}`;
  return `shoal export tensorboard ${id} tb${url}`;
}

/** The run's name and notes, saved with PATCH /runs/{id}. */
function notesPanel(page) {
  const name = h("input", { value: page.run.name || "", placeholder: "a name for this run", size: 32, maxlength: 128, "data-testid": "name-input" });
  const notes = h("textarea", { rows: 3, placeholder: "notes: what you tried, what you saw", "data-testid": "notes-input" });
  notes.value = page.run.notes || "";
  const said = h("span", { class: "muted", "data-testid": "notes-status" });
  const save = async () => {
    try {
      page.run = await api(`/runs/${page.id}`, { method: "PATCH", body: { name: name.value.trim() || null, notes: notes.value || null }, signal: page.ctx.signal });
      said.textContent = "saved";
      page.changed();
    } catch (e) {
      if (!e.aborted) said.textContent = writeError("save", e);
    }
  };
  return h("div", {}, h("h2", {}, "Name and notes"),
    h("div", { class: "panel notes" }, name, notes,
      h("div", { class: "row" }, h("button", { class: "primary", "data-testid": "save-notes", onclick: save }, "save"), said)));
}

/** A chart per selected metric key. Which keys: those in the URL, else every key the run logged (new keys
 *  join while it runs, until the user picks). */
class MetricCharts {
  constructor(page, chosen) {
    this.page = page;
    this.selected = new Set(chosen ?? orderKeys(page.run.metric_keys));
    this.logKeys = new Set(keysParam(page.ctx.params, "log") ?? []);
    this.followNew = chosen === null;
    this.knownKeys = orderKeys(page.run.metric_keys);
    this.charts = new Map(); // metric key -> chart
    this.xMode = prefs().x;
    this.t0 = Infinity; // the wall-time axis starts at the run's first logged point
    this.grid = h("div", { class: "charts", "data-testid": "charts" });
    this.picker = metricPicker(this.knownKeys, this.selected, () => {
      this.followNew = false;
      setRouteParam("keys", orderKeys([...this.selected]).join(","));
      this.layout();
      this.refresh();
    });
    const controls = chartControls(() => {
      // The x axis changes the charts' axes, so they are rebuilt; smoothing only needs new data.
      if (prefs().x !== this.xMode) {
        this.xMode = prefs().x;
        for (const chart of this.charts.values()) chart.destroy();
        this.charts.clear();
      }
      this.refresh();
    });
    this.els = [this.picker, controls, page.note, this.grid];
  }

  /** The first draw: the prefetched first series (if any) before the rest. */
  async load(firstSeries) {
    const keys = this.layout();
    if (keys[0] === FIRST && firstSeries) {
      await this.refresh([FIRST], firstSeries);
      await this.refresh(keys.slice(1));
    } else {
      await this.refresh(keys);
    }
  }

  /** Charts for the selected keys, in reading order; charts of unselected keys go. */
  layout() {
    const wanted = orderKeys(this.knownKeys.filter((k) => this.selected.has(k)));
    for (const [key, chart] of this.charts) {
      if (!this.selected.has(key)) {
        chart.destroy();
        this.charts.delete(key);
      }
    }
    for (const key of wanted) if (this.charts.has(key)) this.grid.append(this.charts.get(key).box);
    if (!wanted.length) {
      this.grid.replaceChildren(h("div", { class: "unavailable", "data-testid": "no-charts" },
        this.knownKeys.length ? "No metric chosen: pick some under Metrics above."
          : FINISHED.has(this.page.run.status) ? "This run logged no metrics." : "Waiting for the first metrics…"));
    } else {
      this.grid.querySelector("[data-testid=no-charts]")?.remove();
    }
    return wanted;
  }

  chartFor(key) {
    if (!this.charts.has(key)) {
      this.charts.set(key, lineChart(this.grid, {
        name: key, title: key, xMode: this.xMode, log: this.logKeys.has(key),
        lines: [{ label: key, color: "#2762c9", band: true }],
        onLog: (on) => {
          on ? this.logKeys.add(key) : this.logKeys.delete(key);
          setRouteParam("log", this.logKeys.size ? [...this.logKeys].join(",") : null);
        },
      }));
    }
    return this.charts.get(key);
  }

  /** Fetch (or take the prefetched answer for) `keys` and draw them; new keys get a chart. */
  async refresh(keys = this.layout(), pending = null) {
    if (!keys.length) return;
    const { id, ctx } = this.page;
    let data;
    try {
      data = (await pending) || (await metricsOf(id, ctx, keys));
    } catch (e) {
      if (!e.aborted) this.page.note.textContent = `metrics: ${e.message}`;
      return;
    }
    if (!ctx.alive) return;
    this.t0 = Math.min(this.t0, startTime(data.series));
    for (const key of keys) {
      const series = data.series[key];
      if (!series || !this.selected.has(key)) continue;
      this.chartFor(key).setData(xOf(series, this.xMode, this.t0), [series]);
    }
    this.layout();
  }

  noteNewKeys() {
    const next = orderKeys(this.page.run.metric_keys);
    if (next.length === this.knownKeys.length) return;
    for (const key of next) if (this.followNew && !this.knownKeys.includes(key)) this.selected.add(key);
    this.knownKeys = next;
    this.picker.setKeys(this.knownKeys);
  }
}

function checkpointsSection(page) {
  const el = h("div");
  function refresh() {
    const { checkpoints } = page.run;
    el.replaceChildren(checkpoints.length
      ? h("div", { "data-testid": "checkpoints" }, table([
        { label: "id", value: (c) => String(c.id) },
        { label: "step", class: "num", value: (c) => num(c.step) },
        { label: "size", class: "num", value: (c) => `${(c.size_bytes / 1024).toFixed(0)} KiB` },
        { label: "env version", value: (c) => h("span", { class: "mono" }, c.env_version) },
        { label: "saved", value: (c) => h("span", { title: c.created_at }, when(c.created_at)) },
        { label: "download", value: (c) => h("span", {},
          downloadLink(c.download_url, "", { "data-testid": "checkpoint-download" }, "weights"), " · ",
          downloadLink(`${c.download_url}?part=meta`, "", {}, "meta")) },
      ], [...checkpoints].reverse()))
      : h("div", { class: "muted" }, "No checkpoint yet."));
  }
  return { el, refresh };
}

function replaySection(page) {
  const el = h("div");
  let shown = null;
  async function refresh() {
    try {
      const { url } = await api(`/runs/${page.id}/replay`, { signal: page.ctx.signal });
      if (url === shown) return;
      shown = url;
      const src = await imageSource(url);
      el.replaceChildren(src
        ? h("div", {}, h("h2", {}, "Replay of the latest checkpoint"), h("img", { class: "replay", src, alt: `replay of run ${page.id}`, "data-testid": "replay" }))
        : "");
    } catch {
      /* no replay is the common case; nothing to show */
    }
  }
  return { el, refresh };
}

/** Elo over training. It only means something for environments with seats to play; other envs skip the request. */
function eloSection(page) {
  const el = h("div");
  let chart = null;
  async function refresh() {
    let twoPlayer = true;
    try {
      twoPlayer = !!(await envs()).find((e) => e.name === page.run.env)?.players;
    } catch {
      /* unknown: ask the Elo endpoint anyway */
    }
    if (!twoPlayer) return;
    let elo;
    try {
      elo = await api(`/runs/${page.id}/elo`, { signal: page.ctx.signal });
    } catch (e) {
      if (!e.aborted) el.replaceChildren(h("h2", {}, "Elo over training"), unavailable("Elo", e));
      return;
    }
    if (!elo.points?.length) return;
    const points = elo.points;
    if (!chart) {
      const box = h("div", { class: "charts" });
      el.replaceChildren(h("h2", {}, "Elo over training"), box);
      // The x axis spans the run's steps: one checkpoint is a point at its step, not a line to 2x.
      const end = Math.max(page.run.total_timesteps, ...points.map((p) => p.step));
      chart = lineChart(box, { name: "elo", title: "Elo of this run's checkpoints (interval band)", xRange: [0, end], sync: "elo",
        lines: [{ label: "elo", color: "#6a4fb3", band: true }] });
    }
    chart.setData(points.map((p) => p.step), [{ value: points.map((p) => p.elo), min: points.map((p) => p.lo), max: points.map((p) => p.hi) }]);
  }
  return { el, refresh };
}

/** The resolved config with the user's overrides marked, so "what did I change" is visible at a glance. */
function hyperparameters(run) {
  const overridden = new Set(flatten(run.overrides).map(([k]) => k));
  return h("div", { class: "panel", "data-testid": "hyperparameters" },
    kvTable(flatten(run.config), overridden));
}
