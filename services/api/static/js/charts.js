// Line charts on uPlot (vendored, global `uPlot`), and the x-axis / smoothing controls they share.
import { duration, h, num } from "./ui.js";

// Every live chart by name, for debugging from the console and for the browser tests.
export const charts = new Map();
window.shoal = Object.assign(window.shoal || {}, { charts });

// ---- preferences shared by the run and compare pages, kept across reloads ----------------------------

const PREFS = "shoal.chartPrefs";
const DEFAULTS = { x: "step", smoothingOn: true, smoothing: 0.6 };

export function prefs() {
  try {
    return { ...DEFAULTS, ...JSON.parse(localStorage.getItem(PREFS) || "{}") };
  } catch {
    return { ...DEFAULTS };
  }
}

/** The EMA weight to ask the server for (smoothing runs server-side, before downsampling). */
export function smoothingParam() {
  const p = prefs();
  return p.smoothingOn ? p.smoothing : 0;
}

/** X-axis and smoothing controls; `onChange` is called after a change is saved. */
export function chartControls(onChange) {
  const p = prefs();
  const save = (patch) => {
    localStorage.setItem(PREFS, JSON.stringify({ ...prefs(), ...patch }));
    onChange();
  };
  const shown = h("span", { class: "mono" }, p.smoothing.toFixed(2));
  const slider = h("input", {
    type: "range", min: "0", max: "0.99", step: "0.01", value: String(p.smoothing),
    "data-testid": "smoothing", disabled: !p.smoothingOn,
    oninput: () => (shown.textContent = Number(slider.value).toFixed(2)),
    onchange: () => save({ smoothing: Number(slider.value) }),
  });
  const toggle = h("input", {
    type: "checkbox", checked: p.smoothingOn, "data-testid": "smoothing-toggle",
    onchange: () => {
      slider.disabled = !toggle.checked;
      save({ smoothingOn: toggle.checked });
    },
  });
  const axis = h("select", { "data-testid": "x-axis", onchange: () => save({ x: axis.value }) },
    h("option", { value: "step", selected: p.x === "step" }, "agent steps"),
    h("option", { value: "time", selected: p.x === "time" }, "wall time"));
  return h("div", { class: "controls" },
    h("label", {}, "x axis", axis),
    h("label", { title: "Debiased EMA, computed on the server over the full-resolution points before downsampling" },
      toggle, "smoothing", slider, shown),
    h("span", { class: "muted" }, "band: min/max of the raw points in each pixel"));
}

// ---- charts ---------------------------------------------------------------------------------------------

function alpha(color, a) {
  if (color.startsWith("#")) {
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
    return `rgba(${r},${g},${b},${a})`;
  }
  return color.replace("rgb(", "rgba(").replace(")", `,${a})`);
}

const fmtValue = (_u, v) => (v === null || v === undefined ? "–" : num(v, 4));

/** Marks the first paint of a chart that has data: the dashboard's "it appeared" moment. */
function markFirstPaint(u) {
  if (u.data[0]?.length && !performance.getEntriesByName("first-chart").length) performance.mark("first-chart");
}

/**
 * A chart titled `title` in `parent` with one line per entry of `lines` ({label, color, band}); a line with
 * band: true is drawn with a shaded min..max envelope. Feed it with setData(x, [{value, min, max}, ...]).
 */
export function lineChart(parent, { name, title, xMode = "step", lines, height = 220 }) {
  const box = h("div", { class: "chart", "data-chart": name, "data-lines": String(lines.length) },
    h("div", { class: "title" }, title));
  parent.append(box);
  const xfmt = xMode === "time" ? duration : (v) => num(v, 3);
  const series = [{ label: xMode === "time" ? "wall time" : "step", value: (_u, v) => (v == null ? "–" : xfmt(v)) }];
  const bands = [];
  for (const line of lines) {
    const at = series.length;
    series.push({ label: line.label, stroke: line.color, width: 1.5, spanGaps: !!line.spanGaps, points: { show: false }, value: fmtValue });
    if (line.band) {
      const edge = { stroke: alpha(line.color, 0.3), width: 0.5, spanGaps: !!line.spanGaps, points: { show: false }, value: fmtValue };
      series.push({ ...edge, label: "min" }, { ...edge, label: "max" });
      bands.push({ series: [at + 2, at + 1], fill: alpha(line.color, 0.14) });
    }
  }
  const width = () => Math.max(240, box.clientWidth - 18);
  const u = new uPlot({
    width: width(), height, series, bands,
    scales: { x: { time: false } },
    axes: [
      { values: (_u, ticks) => ticks.map(xfmt) },
      { size: 60, values: (_u, ticks) => ticks.map((t) => num(t, 2)) },
    ],
    cursor: { drag: { x: true, y: false } },
    hooks: { draw: [markFirstPaint] },
  }, [[], ...series.slice(1).map(() => [])], box);
  // Follow the grid's column width (window resizes, the sidebar of a narrow screen).
  const resize = new ResizeObserver(() => u.width !== width() && u.setSize({ width: width(), height }));
  resize.observe(box);
  charts.set(name, u);
  return {
    box,
    u,
    /** x: numbers ascending; each line: {value, min, max} arrays as long as x. */
    setData(x, data) {
      const columns = [x];
      data.forEach((d, i) => {
        columns.push(d.value);
        if (lines[i].band) columns.push(d.min, d.max);
      });
      u.setData(columns);
    },
    /** Several lines with different x values: joined on the union of x (gaps are spanned). */
    setTables(tables) {
      const joined = uPlot.join(tables.map(({ x, value, min, max }, i) =>
        lines[i].band ? [x, value, min, max] : [x, value]));
      u.setData(joined);
    },
    destroy() {
      resize.disconnect();
      u.destroy();
      box.remove();
      if (charts.get(name) === u) charts.delete(name);
    },
  };
}

/** The x column of a series from the API: agent steps, or seconds since `t0` (wall time). */
export function xOf(series, xMode, t0) {
  return xMode === "time" ? series.time.map((t) => t - t0) : series.step;
}

/** The earliest timestamp over a run's series, the zero of its wall-time axis. */
export function startTime(seriesByKey) {
  let t0 = Infinity;
  for (const s of Object.values(seriesByKey)) if (s.time.length) t0 = Math.min(t0, s.time[0]);
  return Number.isFinite(t0) ? t0 : 0;
}

/** Which of a run's metric keys get a chart, in the order practitioners read them. */
export function chartKeys(metricKeys) {
  const have = new Set(metricKeys || []);
  const first = ["env/perf", "env/score", "SPS"].filter((k) => have.has(k));
  const losses = [...have].filter((k) => k.startsWith("losses/")).sort();
  return [...first, ...losses];
}
