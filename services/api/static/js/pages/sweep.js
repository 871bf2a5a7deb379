// #/sweeps/{id}: the budget used and left, cost vs score with the Pareto front (coloured by trial order),
// parallel coordinates of the hyperparameters, a rough parameter importance, the trials, and promoting a
// trial into a long run. Costs are in the sweep's cost unit (worker-seconds or agent steps).
import { api } from "../api.js";
import { badge, cost, duration, flatten, h, num, param, progress, steps, svg, table, unavailable, viridis } from "../ui.js";

const INITIAL = new Set(["centre", "sobol", "random"]);
const PREDICTED = "Predicted score · cost: the model's forecast when it proposed the trial. Predictions start with the " +
  "first model-based trial: the first 10 trials are the initial design (your config, then space-filling Sobol points), " +
  "and the model also waits for 3 successful trials.";

export default async function sweepPage(root, ctx) {
  const id = Number(ctx.args[0]);
  const body = h("div");
  const message = h("div");
  const promoteSteps = h("input", { type: "number", min: "1", step: "1", size: 14, "data-testid": "promote-steps" });
  root.append(h("h1", {}, `Sweep #${id}`), message, body);

  let selected = null; // trial id highlighted from the scatter
  async function load() {
    let sweep;
    try {
      sweep = await api(`/sweeps/${id}`, { signal: ctx.signal });
    } catch (e) {
      if (!e.aborted) body.replaceChildren(unavailable(`sweep #${id}`, e));
      return false;
    }
    if (!promoteSteps.value) promoteSteps.value = String(defaultPromoteSteps(sweep.trials));
    render(sweep);
    return sweep.status === "running";
  }

  function render(sweep) {
    const maximize = sweep.goal !== "minimize";
    const trials = [...sweep.trials].sort((a, b) => a.number - b.number);
    const failed = trials.filter((t) => t.status === "failed").length;
    const unit = sweep.cost_unit;
    body.replaceChildren(
      h("div", { class: "panel row" },
        badge(sweep.status), h("span", {}, `${sweep.env}`), h("span", {}, `${sweep.goal} ${sweep.metric}`),
        h("span", { class: "muted" }, `${trials.length} / ${sweep.max_runs} trials, ${sweep.parallelism} at a time`),
        sweep.max_cost ? h("span", { class: "muted" }, `max cost ${cost(sweep.max_cost, unit)}`) : "",
        sweep.budget == null ? h("span", { class: "muted" }, `${cost(sweep.budget_used, unit)} used, no budget`) : "",
        sweep.best ? h("span", {}, "best ", h("strong", {}, num(sweep.best.score)), sweep.best.run_id ? h("a", { href: `#/runs/${sweep.best.run_id}` }, ` run #${sweep.best.run_id}`) : "") : ""),
      sweep.budget == null ? "" : budgetBar(sweep),
      failed ? h("div", { class: "banner bad" }, `${failed} failed trial${failed > 1 ? "s" : ""} (red × on the plot, reasons in the table)`) : "",
      h("div", { class: "cols" },
        h("div", { class: "panel" }, h("h2", {}, "Cost vs score"), scatter(trials, sweep.pareto || [], maximize, unit, (t) => { selected = t.id; render(sweep); })),
        h("div", { class: "panel" }, h("h2", {}, "Parameter importance"), importance(trials))),
      h("div", { class: "panel" }, h("h2", {}, "Parallel coordinates"), parallel(trials, maximize, Math.max(480, body.clientWidth - 30))),
      h("h2", {}, "Trials"),
      trials.some((t) => t.predicted_score != null) ? "" : h("div", { class: "muted", "data-testid": "predicted-note", style: { marginBottom: "6px" } }, PREDICTED),
      h("div", { class: "row", style: { marginBottom: "6px" } }, "Promote with total_timesteps", promoteSteps,
        h("span", { class: "muted" }, "creates a new run with the trial's exact hyperparameters")),
      trialsTable(trials, sweep));
    body.querySelector("tr.selected")?.scrollIntoView({ block: "nearest" });
  }

  function trialsTable(trials, sweep) {
    const pareto = new Set(sweep.pareto || []);
    return h("div", { "data-testid": "trials" }, table([
      { label: "#", value: (t) => String(t.number) },
      { label: "status", value: (t) => h("span", {}, badge(t.status), t.failure_reason ? h("div", { class: "reason" }, t.failure_reason) : "") },
      { label: "score", class: "num", value: (t) => h("span", {}, num(t.score), pareto.has(t.id) ? h("span", { title: "on the Pareto front" }, " ◆") : "") },
      { label: "cost", class: "num", value: (t) => {
        const held = t.reserved_cost != null ? `the budget held ${cost(t.reserved_cost, sweep.cost_unit)} for it while it ran` : "";
        return t.cost_seconds == null && t.cost_steps == null && t.reserved_cost != null
          ? h("span", { class: "muted", title: held, "data-testid": "reserved" }, `reserved ${cost(t.reserved_cost, sweep.cost_unit)}`)
          : h("span", { title: held }, `${duration(t.cost_seconds)} · ${steps(t.cost_steps)}`);
      } },
      { label: "predicted", class: "num", title: PREDICTED, value: (t) => t.predicted_score != null
        ? `${num(t.predicted_score)} · ${cost(t.predicted_cost, sweep.cost_unit)}`
        : h("span", { class: "muted", title: PREDICTED }, INITIAL.has(t.reason) ? "– initial design" : "–") },
      { label: "params", value: (t) => h("span", { class: "mono" }, flatten(t.params).map(([k, v]) => `${k.split(".").pop()}=${param(v)}`).join("  ")) },
      { label: "why", value: (t) => h("span", { class: "muted" }, t.reason || "") },
      { label: "run", value: (t) => t.run_id ? h("a", { href: `#/runs/${t.run_id}` }, `#${t.run_id}`) : "–" },
      { label: "", value: (t) => t.status === "succeeded"
        ? h("button", { "data-testid": "promote", onclick: () => promote(t) }, "promote") : "" },
    ], trials, (t) => ({ class: [t.status === "failed" ? "failed" : "", t.id === selected ? "selected" : ""].join(" "), "data-trial": t.id })));
  }

  async function promote(trial) {
    const total = Number(promoteSteps.value);
    if (!(total > 0)) return message.replaceChildren(h("div", { class: "banner bad" }, "Set total_timesteps first."));
    try {
      const run = await api(`/sweeps/${id}/promote`, { method: "POST", body: { trial_id: trial.id, total_timesteps: Math.round(total) }, signal: ctx.signal });
      location.hash = `#/runs/${run.id}`;
    } catch (e) {
      if (!e.aborted) message.replaceChildren(h("div", { class: "banner bad", "data-testid": "promote-error" },
        `promote trial ${trial.number}: ${e.message}${e.status === 401 ? " (paste the token from `shoal up` above)" : ""}`));
    }
  }

  if (await load()) ctx.every(5000, load);
}

/** 10x the longest trial, at one significant digit: a long run is what promotion is for. */
function defaultPromoteSteps(trials) {
  const longest = Math.max(0, ...trials.map((t) => t.cost_steps || 0));
  if (!longest) return 10_000_000;
  const target = longest * 10;
  const unit = 10 ** Math.floor(Math.log10(target));
  return Math.round(target / unit) * unit;
}

/** The budget as a bar: used (finished trials, and the progress of those in flight) and left. */
function budgetBar(sweep) {
  const unit = sweep.cost_unit;
  const bar = progress(sweep.budget_used, sweep.budget, `${num((100 * sweep.budget_used) / sweep.budget)}% used`);
  bar.classList.add("wide");
  return h("div", { class: "panel row", "data-testid": "budget", dataset: { used: sweep.budget_used, budget: sweep.budget, unit } },
    h("strong", {}, "Budget"), bar,
    h("span", { "data-testid": "budget-used" }, `${cost(sweep.budget_used, unit)} used`),
    h("span", { class: "muted", "data-testid": "budget-left" }, `${cost(sweep.budget_left, unit)} left of ${cost(sweep.budget, unit)}`));
}

// ---- plots ----------------------------------------------------------------------------------------------

/** A linear or (for wide positive ranges such as learning rates) logarithmic scale onto [a, b]. */
function scale(values, a, b) {
  const finite = values.filter((v) => Number.isFinite(v));
  let lo = Math.min(...finite), hi = Math.max(...finite);
  const log = lo > 0 && hi / lo >= 20;
  const f = log ? Math.log10 : (v) => v;
  if (!finite.length) (lo = 0), (hi = 1);
  let flo = f(lo), fhi = f(hi);
  if (flo === fhi) (flo -= 0.5), (fhi += 0.5);
  const map = (v) => a + ((f(v) - flo) / (fhi - flo)) * (b - a);
  map.log = log;
  // Log axes get a tick per decade; linear ones are ticked by the caller (ticksOf).
  map.ticks = log ? Array.from({ length: Math.floor(fhi) - Math.ceil(flo) + 1 }, (_, i) => 10 ** (Math.ceil(flo) + i)) : [];
  return map;
}

function scatter(trials, pareto, maximize, unit, onPick) {
  const W = 560, H = 320, L = 56, R = 14, T = 10, B = 40;
  const costOf = (t) => (unit === "steps" ? t.cost_steps : t.cost_seconds);
  const scored = trials.filter((t) => t.score != null && costOf(t) != null);
  const failed = trials.filter((t) => t.status === "failed" && costOf(t) != null);
  if (!scored.length && !failed.length) return h("div", { class: "unavailable" }, "No trial has finished yet.");
  const x = scale([...scored, ...failed].map(costOf), L, W - R);
  const y = scale(scored.length ? scored.map((t) => t.score) : [0, 1], H - B, T);
  const last = Math.max(1, ...trials.map((t) => t.number));
  const byId = new Map(trials.map((t) => [t.id, t]));
  const front = pareto.map((id) => byId.get(id)).filter((t) => t && t.score != null && costOf(t) != null);
  // The front as a staircase: each point holds its score until the next, costlier one improves on it.
  let path = "";
  front.forEach((t, i) => {
    path += i ? ` H${x(costOf(t))} V${y(t.score)}` : `M${x(costOf(t))} ${y(t.score)}`;
  });
  if (front.length) path += ` H${W - R}`;
  return h("div", {},
    svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, "data-testid": "scatter" },
      axes(x, y, W, H, L, R, T, B, `cost (${unit})`, "score"),
      path ? svg("path", { d: path, fill: "none", stroke: "#c62828", "stroke-width": 1.5, "stroke-dasharray": "4 3", "data-testid": "pareto" }) : null,
      scored.map((t) => svg("circle", {
        cx: x(costOf(t)), cy: y(t.score), r: pareto.includes(t.id) ? 6 : 4.5,
        fill: viridis((t.number - 1) / Math.max(1, last - 1)), stroke: pareto.includes(t.id) ? "#c62828" : "#fff", "stroke-width": 1.5,
        style: "cursor:pointer", "data-trial": t.id, "data-cost": costOf(t), onclick: () => onPick(t),
      }, svg("title", {}, `trial ${t.number}: score ${num(t.score)}, cost ${cost(costOf(t), unit)}`))),
      failed.map((t) => svg("text", { x: x(costOf(t)), y: H - B - 4, "text-anchor": "middle", style: "fill:#c62828;font-weight:700" }, "×",
        svg("title", {}, `trial ${t.number} failed: ${t.failure_reason || "?"}`)))),
    h("div", { class: "muted" }, "colour: trial order, ", swatch(0), " first → ", swatch(1), " last; dashed red: Pareto front",
      maximize ? "" : " (lower is better)"),
  );
}

function swatch(t) {
  return h("span", { style: { display: "inline-block", width: "10px", height: "10px", background: viridis(t), verticalAlign: "middle" } });
}

function axes(x, y, W, H, L, R, T, B, xLabel, yLabel) {
  // Three significant digits with k/M/B: ticks of a step axis (9.16k ... 10.8k) must differ.
  const fmt = (v) => {
    if (Math.abs(v) < 0.01 && v !== 0) return v.toExponential(0);
    const [unit, size] = [["B", 1e9], ["M", 1e6], ["k", 1e3]].find(([, s]) => Math.abs(v) >= s) || ["", 1];
    return `${+(v / size).toPrecision(3)}${unit}`;
  };
  const xt = x.log ? x.ticks : ticksOf(x, L, W - R);
  const yt = y.log ? y.ticks : ticksOf(y, H - B, T);
  return svg("g", { class: "axis" },
    svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B }), svg("line", { x1: L, y1: T, x2: L, y2: H - B }),
    xt.map((v) => svg("text", { x: x(v), y: H - B + 14, "text-anchor": "middle" }, String(fmt(v)))),
    yt.map((v) => svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, String(fmt(v)))),
    svg("text", { x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle" }, xLabel),
    svg("text", { x: 12, y: (T + H - B) / 2, transform: `rotate(-90 12 ${(T + H - B) / 2})`, "text-anchor": "middle" }, yLabel));
}

/** Five evenly spaced values across a linear scale's range, found by inverting it. */
function ticksOf(map, a, b) {
  const v0 = invert(map, a), v1 = invert(map, b);
  return [0, 0.25, 0.5, 0.75, 1].map((s) => v0 + s * (v1 - v0));
}

function invert(map, px) {
  const p0 = map(0), p1 = map(1);
  return (px - p0) / (p1 - p0);
}

/** Parallel coordinates as wide as their card (`width`), every label inside the drawing. */
function parallel(trials, maximize, width) {
  const rows = trials.map((t) => ({ t, params: new Map(flatten(t.params)) }));
  const names = [...new Set(rows.flatMap((r) => [...r.params.keys()]))].sort();
  if (!names.length) return h("div", { class: "unavailable" }, "No trial parameters yet.");
  const axesNames = [...names, "score"];
  const W = Math.max(width, axesNames.length * 110), H = 300, T = 28, B = 24, L = 60, R = 60;
  const last = axesNames.length - 1;
  // Value labels sit right of their axis, except on the last one, where they sit left (inside the card).
  const side = (i) => (i === last ? { dx: -4, anchor: "end" } : { dx: 4, anchor: "start" });
  const label = (name) => {
    const text = name.split(".").pop();
    return text.length > 18 ? `${text.slice(0, 17)}…` : text;
  };
  const xAt = (i) => L + (i * (W - L - R)) / Math.max(1, axesNames.length - 1);
  const value = (r, name) => (name === "score" ? r.t.score : r.params.get(name));
  const scales = axesNames.map((name) => {
    const values = rows.map((r) => value(r, name)).filter((v) => v !== undefined && v !== null);
    if (values.every((v) => typeof v === "number")) return { numeric: true, map: scale(values, H - B, T) };
    const levels = [...new Set(values.map(String))].sort();
    return { numeric: false, levels, map: (v) => H - B - ((levels.indexOf(String(v)) + 0.5) / levels.length) * (H - B - T) };
  });
  const scores = rows.map((r) => r.t.score).filter((s) => s != null);
  const lo = Math.min(...scores), hi = Math.max(...scores);
  const quality = (s) => (hi === lo ? 1 : maximize ? (s - lo) / (hi - lo) : (hi - s) / (hi - lo));
  // Better trials drawn last, on top.
  const order = [...rows].sort((a, b) => (a.t.score == null ? -1 : b.t.score == null ? 1 : quality(a.t.score) - quality(b.t.score)));
  return svg("svg", { class: "fit", width: W, height: H, viewBox: `0 0 ${W} ${H}`, "data-testid": "parallel" },
    order.map((r) => {
      const pts = axesNames.map((name, i) => {
        const v = value(r, name);
        return v === undefined || v === null ? null : `${xAt(i)},${scales[i].map(v)}`;
      }).filter(Boolean);
      const bad = r.t.score == null;
      return svg("polyline", { points: pts.join(" "), fill: "none",
        stroke: bad ? "#c62828" : viridis(quality(r.t.score)), "stroke-opacity": bad ? 0.35 : 0.85, "stroke-width": bad ? 1 : 1.6,
        "stroke-dasharray": bad ? "3 3" : null }, svg("title", {}, `trial ${r.t.number}: ${bad ? r.t.status : num(r.t.score)}`));
    }),
    axesNames.map((name, i) => svg("g", { class: "axis" },
      svg("line", { x1: xAt(i), y1: T, x2: xAt(i), y2: H - B }),
      svg("text", { x: xAt(i), y: T - 10, "text-anchor": i === 0 ? "start" : i === last ? "end" : "middle", dx: i === 0 ? -8 : i === last ? 8 : 0, style: "font-weight:600" }, label(name), svg("title", {}, name)),
      scales[i].numeric
        ? [svg("text", { x: xAt(i) + side(i).dx, y: T + 4, "text-anchor": side(i).anchor }, param(invertScale(scales[i].map, T))),
          svg("text", { x: xAt(i) + side(i).dx, y: H - B, "text-anchor": side(i).anchor }, param(invertScale(scales[i].map, H - B)))]
        : scales[i].levels.map((lvl) => svg("text", { x: xAt(i) + side(i).dx, y: scales[i].map(lvl) + 4, "text-anchor": side(i).anchor }, lvl)),
      scales[i].numeric && scales[i].map.log ? svg("text", { x: xAt(i), y: H - 6, "text-anchor": "middle", class: "muted" }, "log") : null)));
}

/** The value a numeric scale puts at pixel `px` (for the axis end labels). */
function invertScale(map, px) {
  const f = map.log ? Math.log10 : (v) => v;
  const g = map.log ? (v) => 10 ** v : (v) => v;
  // Two probes give the affine map in f-space: px = a + b * f(v).
  const v1 = map.log ? 1 : 0, v2 = map.log ? 10 : 1;
  const p1 = map(v1), p2 = map(v2);
  const b = (p2 - p1) / (f(v2) - f(v1));
  return g(f(v1) + (px - p1) / b);
}

/** |Spearman rank correlation| of each numeric parameter with the score: a rough, honest importance. */
function importance(trials) {
  const scored = trials.filter((t) => t.score != null);
  if (scored.length < 4) return h("div", { class: "unavailable" }, "Needs at least 4 scored trials.");
  const params = scored.map((t) => new Map(flatten(t.params)));
  const names = [...new Set(params.flatMap((p) => [...p.keys()]))].sort();
  const scoreRanks = ranks(scored.map((t) => t.score));
  const rows = names.map((name) => {
    const values = params.map((p) => p.get(name));
    if (!values.every((v) => typeof v === "number")) return { name, rho: null };
    return { name, rho: pearson(ranks(values), scoreRanks) };
  }).sort((a, b) => Math.abs(b.rho ?? 0) - Math.abs(a.rho ?? 0));
  return h("div", { "data-testid": "importance" },
    rows.map(({ name, rho }) => h("div", { class: "row", style: { gap: "8px" } },
      h("span", { class: "mono", style: { width: "220px", overflow: "hidden", textOverflow: "ellipsis" }, title: name }, name),
      h("span", { style: { display: "inline-block", height: "10px", width: `${Math.round(Math.abs(rho ?? 0) * 200)}px`, background: (rho ?? 0) >= 0 ? "#2762c9" : "#d1495b" } }),
      h("span", { class: "muted" }, rho === null ? "not numeric" : `ρ = ${rho.toFixed(2)}`))),
    h("div", { class: "muted", style: { marginTop: "6px" } }, "Rank correlation with the score over the scored trials (blue: higher is higher)."));
}

function ranks(values) {
  const order = values.map((v, i) => [v, i]).sort((a, b) => a[0] - b[0]);
  const out = new Array(values.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
    for (let k = i; k <= j; k++) out[order[k][1]] = (i + j) / 2; // ties share their mean rank
    i = j + 1;
  }
  return out;
}

function pearson(a, b) {
  const n = a.length, ma = a.reduce((s, v) => s + v, 0) / n, mb = b.reduce((s, v) => s + v, 0) / n;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) (sab += (a[i] - ma) * (b[i] - mb)), (saa += (a[i] - ma) ** 2), (sbb += (b[i] - mb) ** 2);
  return saa && sbb ? sab / Math.sqrt(saa * sbb) : 0;
}
