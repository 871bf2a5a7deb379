// #/runs/{id}: status (and why it failed), live curves with envelope, Elo, replay, hyperparameters, checkpoints.
import { api, envs } from "../api.js";
import { chartControls, chartKeys, lineChart, prefs, smoothingParam, startTime, xOf } from "../charts.js";
import { badge, duration, flatten, h, kvTable, num, progress, steps, table, tags, unavailable, when } from "../ui.js";

const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const MAX_POINTS = 2000;
const FIRST = "env/perf";

export default async function runPage(root, ctx) {
  const id = Number(ctx.args[0]);
  const metricsOf = (keys) => api(`/runs/${id}/metrics`, {
    params: { keys: keys.join(","), max_points: MAX_POINTS, smoothing: smoothingParam() }, signal: ctx.signal });
  // The first chart is what the eye waits for: its series is asked for alongside the run, not after it.
  const firstSeries = metricsOf([FIRST]).catch(() => null);
  let run;
  try {
    run = await api(`/runs/${id}`, { signal: ctx.signal });
  } catch (e) {
    if (!e.aborted) root.append(unavailable(`run #${id}`, e));
    return;
  }

  const header = h("div");
  const grid = h("div", { class: "charts", "data-testid": "charts" });
  const liveNote = h("span", { class: "muted", "data-testid": "live" });
  const eloSection = h("div");
  const replaySection = h("div");
  const checkpoints = h("div");
  const charts = new Map(); // metric key -> chart
  let xMode = prefs().x;

  root.append(
    header,
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
      h("div", {}, h("h2", {}, "Hyperparameters"), hyperparameters(run)),
      h("div", {}, replaySection, h("h2", {}, "Checkpoints"), checkpoints)));

  function renderHeader() {
    const active = !FINISHED.has(run.status);
    header.replaceChildren(
      h("h1", {}, `Run #${run.id}`, h("span", { class: "mono" }, run.env), badge(run.status), ...tags(run.tags),
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
        h("span", { class: "muted" }, `created ${when(run.created_at)}`),
        h("span", { class: "muted mono", title: "environment code version" }, `env ${run.env_version}`)));
  }

  async function cancel() {
    try {
      run = await api(`/runs/${id}/cancel`, { method: "POST", signal: ctx.signal });
      renderHeader();
    } catch (e) {
      if (!e.aborted) header.append(h("div", { class: "banner bad" }, `cancel: ${e.message}${e.status === 401 ? " (paste the token from `shoal up` above)" : ""}`));
    }
  }

  /** Fetch (or take the prefetched answer for) `keys` and draw them; new keys get a chart. */
  async function refreshMetrics(keys = chartKeys(run.metric_keys), pending = null) {
    if (!keys.length) {
      if (!charts.size) grid.replaceChildren(h("div", { class: "unavailable" }, FINISHED.has(run.status) ? "This run logged no metrics." : "Waiting for the first metrics…"));
      return;
    }
    let data;
    try {
      data = (await pending) || (await metricsOf(keys));
    } catch (e) {
      if (!e.aborted) liveNote.textContent = `metrics: ${e.message}`;
      return;
    }
    if (!charts.size) grid.replaceChildren();
    t0 = Math.min(t0, startTime(data.series));
    for (const key of keys) {
      const series = data.series[key];
      if (!series) continue;
      if (!charts.has(key)) charts.set(key, lineChart(grid, { name: key, title: key, xMode, lines: [{ label: key, color: "#2762c9", band: true }] }));
      charts.get(key).setData(xOf(series, xMode, t0), [series]);
    }
  }
  let t0 = Infinity; // the wall-time axis starts at the run's first logged point

  function renderCheckpoints() {
    checkpoints.replaceChildren(run.checkpoints.length
      ? table([
        { label: "id", value: (c) => String(c.id) },
        { label: "step", class: "num", value: (c) => num(c.step) },
        { label: "size", class: "num", value: (c) => `${(c.size_bytes / 1024).toFixed(0)} KiB` },
        { label: "env version", value: (c) => h("span", { class: "mono" }, c.env_version) },
        { label: "saved", value: (c) => when(c.created_at) },
        { label: "path", value: (c) => h("span", { class: "mono muted" }, c.path) },
      ], [...run.checkpoints].reverse())
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
    if (!eloChart) {
      const box = h("div", { class: "charts" });
      eloSection.replaceChildren(h("h2", {}, "Elo over training"), box);
      eloChart = lineChart(box, { name: "elo", title: "Elo of this run's checkpoints (interval band)", lines: [{ label: "elo", color: "#6a4fb3", band: true }] });
    }
    const points = elo.points;
    eloChart.setData(points.map((p) => p.step), [{ value: points.map((p) => p.elo), min: points.map((p) => p.lo), max: points.map((p) => p.hi) }]);
  }

  renderHeader();
  renderCheckpoints();
  const keys = chartKeys(run.metric_keys);
  if (keys[0] === FIRST) {
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
