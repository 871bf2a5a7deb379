// #/runs/{id}[?keys=a,b&log=c]: status (and why it failed), name and notes, a chart for every logged metric
// (the picker chooses which; the layout and log axes stay in the URL), Elo, replay, hyperparameters,
// checkpoints with download links, and the metrics as CSV or JSON.
import { api, envs } from "../api.js";
import { chartControls, keysParam, lineChart, metricPicker, orderKeys, prefs, setRouteParam, smoothingParam, startTime, xOf } from "../charts.js";
import { badge, duration, flatten, h, kvTable, num, progress, steps, table, tags, unavailable, when } from "../ui.js";

const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const MAX_POINTS = 2000;
const FIRST = "env/perf";

export default async function runPage(root, ctx) {
  const id = Number(ctx.args[0]);
  const metricsOf = (keys) => api(`/runs/${id}/metrics`, {
    params: { keys: keys.join(","), max_points: MAX_POINTS, smoothing: smoothingParam() }, signal: ctx.signal });
  const chosen = keysParam(ctx.params);
  // The first chart is what the eye waits for: its series is asked for alongside the run, not after it.
  const firstSeries = !chosen || chosen.includes(FIRST) ? metricsOf([FIRST]).catch(() => null) : null;
  let run;
  try {
    run = await api(`/runs/${id}`, { signal: ctx.signal });
  } catch (e) {
    if (!e.aborted) root.append(unavailable(`run #${id}`, e));
    return;
  }

  // Which keys are charted: those in the URL, else every key the run logged (new keys join while it runs).
  const selected = new Set(chosen ?? orderKeys(run.metric_keys));
  const logKeys = new Set(keysParam(ctx.params, "log") ?? []);
  let followNew = chosen === null;
  let knownKeys = orderKeys(run.metric_keys);

  const header = h("div");
  const grid = h("div", { class: "charts", "data-testid": "charts" });
  const liveNote = h("span", { class: "muted", "data-testid": "live" });
  const eloSection = h("div");
  const replaySection = h("div");
  const checkpoints = h("div");
  const charts = new Map(); // metric key -> chart
  let xMode = prefs().x;

  const picker = metricPicker(knownKeys, selected, () => {
    followNew = false;
    setRouteParam("keys", orderKeys([...selected]).join(","));
    layout();
    refreshMetrics();
  });

  root.append(
    header,
    h("div", { class: "row export", "data-testid": "export" }, h("span", { class: "muted" }, "download metrics (every point):"),
      h("a", { href: `/runs/${id}/metrics/export?format=csv`, download: `run-${id}-metrics.csv`, "data-testid": "export-csv" }, "CSV"),
      h("a", { href: `/runs/${id}/metrics/export?format=json`, download: `run-${id}-metrics.json`, "data-testid": "export-json" }, "JSON")),
    picker,
    chartControls(() => {
      // The x axis changes the charts' axes, so they are rebuilt; smoothing only needs new data.
      if (prefs().x !== xMode) {
        xMode = prefs().x;
        for (const chart of charts.values()) chart.destroy();
        charts.clear();
      }
      refreshMetrics();
    }),
    liveNote, grid, eloSection,
    h("div", { class: "cols" },
      h("div", {}, notesPanel(), h("h2", {}, "Hyperparameters"), hyperparameters(run)),
      h("div", {}, replaySection, h("h2", {}, "Checkpoints"), checkpoints)));

  function renderHeader() {
    const active = !FINISHED.has(run.status);
    header.replaceChildren(
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

  function writeError(what, e) {
    return `${what}: ${e.message}${e.status === 401 ? " (paste the token from `shoal up` above)" : ""}`;
  }

  async function cancel() {
    try {
      run = await api(`/runs/${id}/cancel`, { method: "POST", signal: ctx.signal });
      renderHeader();
    } catch (e) {
      if (!e.aborted) header.append(h("div", { class: "banner bad" }, writeError("cancel", e)));
    }
  }

  /** The run's name and notes, saved with PATCH /runs/{id}. */
  function notesPanel() {
    const name = h("input", { value: run.name || "", placeholder: "a name for this run", size: 32, maxlength: 128, "data-testid": "name-input" });
    const notes = h("textarea", { rows: 3, placeholder: "notes: what you tried, what you saw", "data-testid": "notes-input" });
    notes.value = run.notes || "";
    const said = h("span", { class: "muted", "data-testid": "notes-status" });
    const save = async () => {
      try {
        run = await api(`/runs/${id}`, { method: "PATCH", body: { name: name.value.trim() || null, notes: notes.value || null }, signal: ctx.signal });
        said.textContent = "saved";
        renderHeader();
      } catch (e) {
        if (!e.aborted) said.textContent = writeError("save", e);
      }
    };
    return h("div", {}, h("h2", {}, "Name and notes"),
      h("div", { class: "panel notes" }, name, notes,
        h("div", { class: "row" }, h("button", { class: "primary", "data-testid": "save-notes", onclick: save }, "save"), said)));
  }

  /** Charts for the selected keys, in reading order; charts of unselected keys go. */
  function layout() {
    const wanted = orderKeys(knownKeys.filter((k) => selected.has(k)));
    for (const [key, chart] of charts) {
      if (!selected.has(key)) {
        chart.destroy();
        charts.delete(key);
      }
    }
    for (const key of wanted) if (charts.has(key)) grid.append(charts.get(key).box);
    if (!wanted.length) {
      grid.replaceChildren(h("div", { class: "unavailable", "data-testid": "no-charts" },
        knownKeys.length ? "No metric chosen: pick some under Metrics above."
          : FINISHED.has(run.status) ? "This run logged no metrics." : "Waiting for the first metrics…"));
    } else {
      grid.querySelector("[data-testid=no-charts]")?.remove();
    }
    return wanted;
  }

  function chartFor(key) {
    if (!charts.has(key)) {
      charts.set(key, lineChart(grid, {
        name: key, title: key, xMode, log: logKeys.has(key),
        lines: [{ label: key, color: "#2762c9", band: true }],
        onLog: (on) => {
          on ? logKeys.add(key) : logKeys.delete(key);
          setRouteParam("log", logKeys.size ? [...logKeys].join(",") : null);
        },
      }));
    }
    return charts.get(key);
  }

  /** Fetch (or take the prefetched answer for) `keys` and draw them; new keys get a chart. */
  async function refreshMetrics(keys = layout(), pending = null) {
    if (!keys.length) return;
    let data;
    try {
      data = (await pending) || (await metricsOf(keys));
    } catch (e) {
      if (!e.aborted) liveNote.textContent = `metrics: ${e.message}`;
      return;
    }
    if (!ctx.alive) return;
    t0 = Math.min(t0, startTime(data.series));
    for (const key of keys) {
      const series = data.series[key];
      if (!series || !selected.has(key)) continue;
      chartFor(key).setData(xOf(series, xMode, t0), [series]);
    }
    layout();
  }
  let t0 = Infinity; // the wall-time axis starts at the run's first logged point

  function noteNewKeys() {
    const next = orderKeys(run.metric_keys);
    if (next.length === knownKeys.length) return;
    for (const key of next) if (followNew && !knownKeys.includes(key)) selected.add(key);
    knownKeys = next;
    picker.setKeys(knownKeys);
  }

  function renderCheckpoints() {
    checkpoints.replaceChildren(run.checkpoints.length
      ? h("div", { "data-testid": "checkpoints" }, table([
        { label: "id", value: (c) => String(c.id) },
        { label: "step", class: "num", value: (c) => num(c.step) },
        { label: "size", class: "num", value: (c) => `${(c.size_bytes / 1024).toFixed(0)} KiB` },
        { label: "env version", value: (c) => h("span", { class: "mono" }, c.env_version) },
        { label: "saved", value: (c) => h("span", { title: c.created_at }, when(c.created_at)) },
        { label: "download", value: (c) => h("span", {},
          h("a", { href: c.download_url, download: "", "data-testid": "checkpoint-download" }, "weights"), " · ",
          h("a", { href: `${c.download_url}?part=meta`, download: "" }, "meta")) },
      ], [...run.checkpoints].reverse()))
      : h("div", { class: "muted" }, "No checkpoint yet."));
  }

  let replayUrl = null;
  async function refreshReplay() {
    try {
      const { url } = await api(`/runs/${id}/replay`, { signal: ctx.signal });
      if (url === replayUrl) return;
      replayUrl = url;
      replaySection.replaceChildren(url
        ? h("div", {}, h("h2", {}, "Replay of the latest checkpoint"), h("img", { class: "replay", src: url, alt: `replay of run ${id}`, "data-testid": "replay" }))
        : "");
    } catch {
      /* no replay is the common case; nothing to show */
    }
  }

  // Elo only means something for environments with seats to play; other envs skip the request.
  let eloChart = null;
  async function refreshElo() {
    let twoPlayer = true;
    try {
      twoPlayer = !!(await envs()).find((e) => e.name === run.env)?.players;
    } catch {
      /* unknown: ask the Elo endpoint anyway */
    }
    if (!twoPlayer) return;
    let elo;
    try {
      elo = await api(`/runs/${id}/elo`, { signal: ctx.signal });
    } catch (e) {
      if (!e.aborted) eloSection.replaceChildren(h("h2", {}, "Elo over training"), unavailable("Elo", e));
      return;
    }
    if (!elo.points?.length) return;
    const points = elo.points;
    if (!eloChart) {
      const box = h("div", { class: "charts" });
      eloSection.replaceChildren(h("h2", {}, "Elo over training"), box);
      // The x axis spans the run's steps: one checkpoint is a point at its step, not a line to 2x.
      const end = Math.max(run.total_timesteps, ...points.map((p) => p.step));
      eloChart = lineChart(box, { name: "elo", title: "Elo of this run's checkpoints (interval band)", xRange: [0, end], sync: "elo",
        lines: [{ label: "elo", color: "#6a4fb3", band: true }] });
    }
    eloChart.setData(points.map((p) => p.step), [{ value: points.map((p) => p.elo), min: points.map((p) => p.lo), max: points.map((p) => p.hi) }]);
  }

  renderHeader();
  renderCheckpoints();
  const keys = layout();
  if (keys[0] === FIRST && firstSeries) {
    await refreshMetrics([FIRST], firstSeries);
    await refreshMetrics(keys.slice(1));
  } else {
    await refreshMetrics(keys);
  }
  refreshReplay();
  refreshElo();

  // Live: while the run is queued or running, poll every 2 s; the charts get new data in place.
  if (!FINISHED.has(run.status)) {
    liveNote.textContent = "live: updating every 2 s";
    ctx.every(2000, async () => {
      try {
        run = await api(`/runs/${id}`, { signal: ctx.signal });
      } catch (e) {
        if (!e.aborted) liveNote.textContent = `live update failed (${e.message}); retrying`;
        return true;
      }
      renderHeader();
      renderCheckpoints();
      noteNewKeys();
      await refreshMetrics();
      refreshReplay();
      if (FINISHED.has(run.status)) {
        liveNote.textContent = `finished: ${run.status}`;
        refreshElo();
        return false;
      }
      return true;
    });
  }
}

/** The resolved config with the user's overrides marked, so "what did I change" is visible at a glance. */
function hyperparameters(run) {
  const overridden = new Set(flatten(run.overrides).map(([k]) => k));
  return h("div", { class: "panel", "data-testid": "hyperparameters" },
    kvTable(flatten(run.config), overridden));
}
