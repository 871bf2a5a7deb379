// #/compare?ids=1,2,3[&group=tag|config][&keys=a,b][&log=c]: runs overlaid, or grouped by their resolved config
// (or tags) with a mean and a min..max band, any logged metric (the picker; layout and log axes in the URL),
// and a loud warning when the runs are not comparable (another env version or other env/reward parameters).
import { api } from "../api.js";
import { chartControls, keysParam, lineChart, metricPicker, orderKeys, prefs, setRouteParam, smoothingParam, startTime, xOf } from "../charts.js";
import { PALETTE, badge, flatten, h, num, table, unavailable } from "../ui.js";

const DEFAULT_KEYS = (keys) => keys.filter((k) => ["env/perf", "env/score", "SPS"].includes(k) || k.startsWith("losses/"));
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const GRID = 400; // points per group mean: finer than any chart is wide

export default async function comparePage(root, ctx) {
  const ids = (ctx.params.get("ids") || "").split(",").map(Number).filter((n) => n > 0);
  let group = ctx.params.get("group") || "none";
  if (group === "seed") group = "config"; // the old name of the same grouping
  root.append(h("h1", {}, "Compare runs"));
  if (!ids.length) {
    const input = h("input", { placeholder: "run ids, e.g. 3,4,5", size: 30 });
    root.append(h("div", { class: "panel row" }, "Tick runs on the Runs page, or type their ids:", input,
      h("button", { class: "primary", onclick: () => (location.hash = `#/compare?ids=${input.value.replace(/\s/g, "")}`) }, "compare")));
    return;
  }

  const loaded = await Promise.all(ids.map((id) => api(`/runs/${id}`, { signal: ctx.signal }).catch((e) => ({ id, error: e }))));
  if (!ctx.alive) return;
  const runs = loaded.filter((r) => !r.error);
  for (const r of loaded.filter((r) => r.error)) root.append(unavailable(`run #${r.id}`, r.error));
  if (!runs.length) return;

  const groupSelect = h("select", { "data-testid": "group", onchange: () => {
    group = groupSelect.value;
    setRouteParam("group", group !== "none" ? group : null);
    draw();
  } },
  [["none", "each run"], ["config", "group runs with the same resolved config (seeds)"], ["tag", "group by tags"]].map(([v, label]) =>
    h("option", { value: v, selected: v === group }, label)));

  // Every key any of the runs logged can be charted; perf, score, SPS and the losses by default.
  const allKeys = orderKeys(runs.flatMap((r) => r.metric_keys));
  const selected = new Set(keysParam(ctx.params) ?? DEFAULT_KEYS(allKeys));
  const logKeys = new Set(keysParam(ctx.params, "log") ?? []);
  const picker = metricPicker(allKeys, selected, () => {
    setRouteParam("keys", orderKeys([...selected]).join(","));
    rebuild();
  });

  const grid = h("div", { class: "charts", "data-testid": "charts" });
  const runsTable = h("div", { "data-testid": "compare-runs" });
  root.append(
    comparability(runs),
    h("div", { class: "row" }, h("label", {}, "lines: ", groupSelect)),
    picker,
    chartControls(rebuild),
    grid,
    h("h2", {}, "Runs"),
    runsTable,
    differences(runs));

  /** The runs with the colour of the line each is drawn in: its own, or its group's. */
  function renderTable(lines) {
    const colour = new Map(lines.flatMap((l, i) => l.runs.map((r) => [r.id, PALETTE[i % PALETTE.length]])));
    const label = new Map(lines.flatMap((l) => l.runs.map((r) => [r.id, l.label])));
    runsTable.replaceChildren(table([
      { label: "", value: (r) => h("span", { class: "swatch", "data-run": r.id, title: label.get(r.id), style: { color: colour.get(r.id) } }, "■") },
      { label: "run", value: (r) => h("a", { href: `#/runs/${r.id}` }, `#${r.id}`) },
      { label: "name", value: (r) => r.name || "" },
      { label: "env", value: (r) => r.env },
      { label: "status", value: (r) => h("span", {}, badge(r.status), r.failure_reason ? h("div", { class: "reason" }, r.failure_reason) : "") },
      { label: "seed", class: "num", value: (r) => String(r.seed) },
      { label: "score", class: "num", value: (r) => num(r.final_score) },
      { label: "tags", value: (r) => r.tags.join(", ") },
    ], runs, (r) => ({ class: r.status === "failed" ? "failed" : "" })));
  }

  let charts = [];
  let metrics = new Map(); // run id -> {series}

  async function fetchMetrics() {
    const answers = await Promise.all(runs.map((r) =>
      api(`/runs/${r.id}/metrics`, { params: { keys: keysOf(r).join(","), max_points: 1000, smoothing: smoothingParam() }, signal: ctx.signal })
        .catch(() => ({ run_id: r.id, series: {} }))));
    metrics = new Map(answers.map((a) => [a.run_id, a.series]));
  }

  /** The chosen keys this run logged (the metrics endpoint takes at most 64 at once). */
  const keysOf = (r) => orderKeys([...selected]).filter((k) => r.metric_keys.includes(k)).slice(0, 64);

  function draw() {
    for (const c of charts) c.destroy();
    charts = [];
    grid.replaceChildren();
    const xMode = prefs().x;
    const lines = linesFor(runs, group);
    renderTable(lines);
    for (const key of orderKeys([...selected])) {
      if (!runs.some((r) => metrics.get(r.id)?.[key]?.step.length)) continue;
      const chart = lineChart(grid, { name: `compare:${key}`, title: key, xMode, log: logKeys.has(key),
        onLog: (on) => {
          on ? logKeys.add(key) : logKeys.delete(key);
          setRouteParam("log", logKeys.size ? [...logKeys].join(",") : null);
        },
        lines: lines.map((l, i) => ({ label: l.label, color: PALETTE[i % PALETTE.length], band: l.runs.length > 1, spanGaps: true })) });
      chart.setTables(lines.map((l) => table_(l.runs, key, xMode)));
      charts.push(chart);
    }
    if (!charts.length) {
      grid.replaceChildren(h("div", { class: "unavailable" }, selected.size
        ? "These runs have no points of the chosen metrics yet." : "No metric chosen: pick some under Metrics above."));
    }
  }

  /** One line's points: the run's own series, or the mean of a group's runs with their min..max. */
  function table_(members, key, xMode) {
    const tables = members.map((r) => {
      const series = metrics.get(r.id)?.[key] || { step: [], time: [], value: [] };
      return { x: xOf(series, xMode, startTime(metrics.get(r.id) || {})), y: series.value };
    });
    if (members.length === 1) return { x: tables[0].x, value: tables[0].y };
    return aggregate(tables);
  }

  async function rebuild() {
    await fetchMetrics();
    if (ctx.alive) draw();
  }

  await rebuild();
  if (runs.some((r) => !FINISHED.has(r.status))) ctx.every(3000, async () => { await rebuild(); return true; });
}

/** The lines to draw: one per run, or one per group of runs. */
function linesFor(runs, group) {
  if (group === "none") return runs.map((r) => ({ label: `#${r.id}${r.name ? ` ${r.name}` : r.tags.length ? ` ${r.tags.join(",")}` : ""}`, runs: [r] }));
  const groups = new Map();
  for (const r of runs) {
    // "config" groups runs that differ only in their seed: same env, version and resolved config (how a
    // setting was given, as an override or a default, does not matter).
    const key = group === "tag" ? r.tags.join(",") || "(untagged)" : JSON.stringify([r.env, r.env_version, sorted(r.config)]);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(r);
  }
  return [...groups.entries()].map(([key, members]) => ({
    label: `${group === "tag" ? key : `#${members.map((m) => m.id).join(",#")}`} (n=${members.length})`,
    runs: members,
  }));
}

function sorted(obj) {
  return Object.fromEntries(flatten(obj).sort(([a], [b]) => a.localeCompare(b)));
}

/** Mean and min..max of several curves, each linearly interpolated on a common x grid inside its own range. */
function aggregate(tables) {
  const xs = tables.flatMap((t) => t.x);
  if (!xs.length) return { x: [], value: [], min: [], max: [] };
  const lo = Math.min(...xs), hi = Math.max(...xs);
  const x = Array.from({ length: GRID }, (_, i) => lo + ((hi - lo) * i) / (GRID - 1));
  const value = [], min = [], max = [];
  for (const at of x) {
    const ys = tables.map((t) => interpolate(t.x, t.y, at)).filter((y) => y !== null);
    value.push(ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : null);
    min.push(ys.length ? Math.min(...ys) : null);
    max.push(ys.length ? Math.max(...ys) : null);
  }
  return { x, value, min, max };
}

function interpolate(x, y, at) {
  if (!x.length || at < x[0] || at > x[x.length - 1]) return null;
  let lo = 0, hi = x.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    x[mid] <= at ? (lo = mid) : (hi = mid);
  }
  if (y[lo] === null || y[hi] === null) return y[lo] ?? y[hi] ?? null;
  return x[hi] === x[lo] ? y[lo] : y[lo] + ((y[hi] - y[lo]) * (at - x[lo])) / (x[hi] - x[lo]);
}

/** Warnings for curves that should not be compared silently: other envs, env versions or env parameters. */
function comparability(runs) {
  const problems = [];
  const envNames = new Set(runs.map((r) => r.env));
  if (envNames.size > 1) problems.push(`different environments: ${[...envNames].join(", ")}`);
  const versions = byValue(runs, (r) => r.env_version);
  if (versions.size > 1) problems.push(`different env_version: ${describe(versions)} (the environment's code changed between these runs)`);
  const envParams = new Set(runs.flatMap((r) => flatten(r.config.env).map(([k]) => k)));
  for (const key of envParams) {
    const values = byValue(runs, (r) => JSON.stringify(flatten(r.config.env).find(([k]) => k === key)?.[1] ?? null));
    if (values.size > 1) problems.push(`env parameter ${key} differs: ${describe(values)}`);
  }
  if (!problems.length) return h("div", { class: "banner info", "data-testid": "comparable" }, `${runs.length} runs on the same environment version and env parameters.`);
  return h("div", { class: "banner warn", "data-testid": "compare-warning" },
    h("strong", {}, "⚠ These curves may not be comparable:"), h("ul", {}, problems.map((p) => h("li", {}, p))));
}

function byValue(runs, of) {
  const out = new Map();
  for (const r of runs) {
    const v = of(r);
    if (!out.has(v)) out.set(v, []);
    out.get(v).push(`#${r.id}`);
  }
  return out;
}

const describe = (values) => [...values.entries()].map(([v, ids]) => `${v} (${ids.join(", ")})`).join(" vs ");

/** Every resolved setting that differs between the runs: what the comparison is really about. */
function differences(runs) {
  const configs = runs.map((r) => new Map(flatten(r.config)));
  const keys = [...new Set(configs.flatMap((c) => [...c.keys()]))].sort();
  const differ = keys.filter((k) => new Set(configs.map((c) => JSON.stringify(c.get(k)))).size > 1);
  if (!differ.length) return h("div", { class: "muted" }, "The runs' resolved configs are identical (seeds aside).");
  return h("div", {}, h("h2", {}, "Settings that differ"),
    table([{ label: "setting", value: (k) => h("span", { class: "mono" }, k) },
      ...runs.map((r, i) => ({ label: `#${r.id}`, class: "mono", value: (k) => JSON.stringify(configs[i].get(k) ?? null) }))], differ));
}
