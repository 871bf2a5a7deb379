// Line charts on uPlot (vendored, global `uPlot`), the x-axis / smoothing controls they share, and the metric
// picker. Axes are sized to their labels (never clipped) and abbreviate (355k, 12.5M); a chart can switch to a
// log scale; legends show each line's latest value until hovered; the crosshair is synced across charts, and so
// is the x zoom (drag across any chart; double-click or "reset zoom" undoes it).
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
    h("span", { class: "muted" }, "band: min/max of the raw points in each pixel · drag across a chart to zoom every chart, double-click to reset"));
}

// ---- number formats -------------------------------------------------------------------------------------

const UNITS = [["T", 1e12], ["B", 1e9], ["M", 1e6], ["k", 1e3]];

/** Digits after the point that `x` needs (0.25 -> 2, 2.5 -> 1, 3 -> 0), at most 6. */
function decimalsOf(x) {
  if (!Number.isFinite(x) || x === 0) return 0;
  const text = Math.abs(x).toPrecision(6).replace(/0+$/, "").replace(/\.$/, "");
  const dot = text.indexOf(".");
  return dot < 0 ? 0 : Math.min(6, text.length - dot - 1);
}

/**
 * Axis tick labels with k/M/B/T: one unit for the whole axis (the largest tick's), and as many decimals as
 * the tick increment needs, so neighbouring ticks never read the same (2.5M, 5M, 7.5M; 9.16k, 9.18k).
 */
export function tickLabels(ticks, incr) {
  // No increment (log axes, whose ticks are decades): each label on its own.
  if (!incr) return ticks.map((v) => (v == null ? "" : short(v)));
  const top = Math.max(0, ...ticks.filter(Number.isFinite).map(Math.abs));
  if (top !== 0 && top < 1e-3) return ticks.map((v) => (v === 0 ? "0" : v.toExponential(1)));
  const [unit, size] = UNITS.find(([, s]) => top >= s) || ["", 1];
  const decimals = decimalsOf(incr / size);
  return ticks.map((v) => (v == null ? "" : v === 0 ? "0" : `${(v / size).toFixed(decimals).replace(/^-(0\.?0*)$/, "$1")}${unit}`));
}

/** One value for people: 3-4 significant digits with k/M/B (355k, 1.25M), small numbers in full. */
export function short(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1e4) {
    const [unit, size] = UNITS.find(([, s]) => a >= s);
    return `${+(v / size).toPrecision(3)}${unit}`;
  }
  return num(v, 3);
}

// ---- charts ---------------------------------------------------------------------------------------------

function alpha(color, a) {
  if (color.startsWith("#")) {
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
    return `rgba(${r},${g},${b},${a})`;
  }
  return color.replace("rgb(", "rgba(").replace(")", `,${a})`);
}

/** Marks the first paint of a chart that has data: the dashboard's "it appeared" moment. */
function markFirstPaint(u) {
  if (u.data[0]?.length && !performance.getEntriesByName("first-chart").length) performance.mark("first-chart");
}

/** An axis as wide as its longest tick label: uPlot's fixed width cut "355,000" to "55,000". */
function fitLabels(self, values, axisIdx, cycleNum) {
  const axis = self.axes[axisIdx];
  if (cycleNum > 1) return axis._size;
  let size = axis.ticks.size + axis.gap + 8;
  const longest = (values || []).reduce((a, v) => (String(v).length > a.length ? String(v) : a), "");
  if (longest) {
    self.ctx.font = axis.font[0];
    size += self.ctx.measureText(longest).width / devicePixelRatio;
  }
  return Math.ceil(size);
}

/** Room between x ticks: the width of the widest label plus a gap, so labels never run together. */
function xSpace(self, axisIdx, scaleMin, scaleMax) {
  const labels = tickLabels([scaleMin, scaleMax, (scaleMin + scaleMax) / 2], (scaleMax - scaleMin) / 7);
  const widest = Math.max(...labels.map((l) => l.length));
  return Math.max(50, widest * 7 + 24);
}

/** The x range of the data; one point alone sits inside [0, x] instead of uPlot's [0, 2x] (uPlot widens a
 *  single x before asking, so the data is looked at here). */
function xAuto(u, min, max) {
  const xs = u.data?.[0];
  if (xs?.length === 1 && xs[0] != null) return xs[0] > 0 ? [0, xs[0] * 1.02] : [xs[0] - 1, xs[0] + 1];
  if (min == null || max == null) return [0, 1];
  return min === max ? [min - 1, max + 1] : [min, max];
}

// ---- x zoom, shared by the charts of one sync group ------------------------------------------------------

const zoomGroups = new Map(); // sync key -> { range: [min, max] | null, members: Set<{ box, apply }> }

/** The zoom group `key`, with the charts of pages no longer shown dropped (a new page starts unzoomed). */
function zoomGroup(key) {
  let group = zoomGroups.get(key);
  if (!group) zoomGroups.set(key, (group = { range: null, members: new Set() }));
  for (const m of group.members) if (!m.box.isConnected) group.members.delete(m);
  if (!group.members.size) group.range = null;
  return group;
}

/** Zoom every chart of group `key` to the x range [min, max]; null resets them to their full range. */
export function zoomX(key, range) {
  const group = zoomGroup(key);
  group.range = range && range[1] > range[0] ? [range[0], range[1]] : null;
  for (const m of group.members) m.apply(group.range);
}

/** A drag across the plot: the x range it covers, or null for a click. */
function selectedRange(u) {
  const { left, width } = u.select;
  if (width < 3) return null;
  return [u.posToVal(left, "x"), u.posToVal(left + width, "x")];
}

/** Appends each line's series (and, for a band, its min and max edges) to `series`; returns the bands. */
function lineSeries(lines, series, legendValue) {
  const bands = [];
  for (const line of lines) {
    const at = series.length;
    series.push({ label: line.label, stroke: line.color, width: 1.5, spanGaps: !!line.spanGaps, points: { size: 6, fill: line.color }, value: legendValue });
    if (line.band) {
      const edge = { stroke: alpha(line.color, 0.3), width: 0.5, spanGaps: !!line.spanGaps, points: { show: false }, value: legendValue };
      series.push({ ...edge, label: "min" }, { ...edge, label: "max" });
      bands.push({ series: [at + 2, at + 1], fill: alpha(line.color, 0.14) });
    }
  }
  return bands;
}

/** The y scale of a log chart over `columns` (x first): log where every value is positive, else asinh. */
function logScale(columns) {
  // Log needs positive values; losses and advantages go negative, so those get a symmetric log (asinh).
  const values = columns.slice(1).flat().filter((v) => v != null);
  if (values.every((v) => v > 0)) return { distr: 3, log: 10 };
  // Linear within a tenth of the typical magnitude, logarithmic beyond it.
  const sizes = values.map(Math.abs).filter((v) => v > 0).sort((a, b) => a - b);
  return { distr: 4, asinh: sizes.length ? Math.max(1e-12, sizes[sizes.length >> 1] / 10) : 1 };
}

/**
 * A chart titled `title` in `parent` with one line per entry of `lines` ({label, color, band}); a line with
 * band: true is drawn with a shaded min..max envelope. Feed it with setData(x, [{value, min, max}, ...]) or
 * setTables. Options: xMode ("step" | "time"), log (start on a log scale), onLog(on) (the toggle was
 * clicked), xRange ([min, max] for the x axis, e.g. [0, total steps]), sync (the group whose crosshair and x zoom it shares).
 * One closure on purpose (about 110 lines): build, feed and zoom share the chart's state.
 */
export function lineChart(parent, { name, title, xMode = "step", lines, height = 220, log = false, onLog, xRange, sync = "shoal" }) {
  const zoomKey = `${sync}:${xMode}`;
  const resetButton = h("button", { class: "chip zoom-reset", "data-testid": "zoom-reset", title: "show the whole x range on every chart",
    onclick: () => zoomX(zoomKey, null) }, "reset zoom");
  const logButton = h("button", { class: "chip", "data-testid": "log-toggle", title: "logarithmic y axis (symmetric log when values go to zero or below)",
    onclick: () => {
      setLog(!log);
      onLog?.(log);
    } }, "log y");
  const box = h("div", { class: "chart", "data-chart": name, "data-lines": String(lines.length) },
    h("div", { class: "chart-head" }, h("span", { class: "title", title }, title), resetButton, logButton));
  parent.append(box);
  const xfmt = xMode === "time" ? duration : short;
  let columns = [[], ...lines.flatMap((l) => (l.band ? [[], [], []] : [[]]))];
  const latest = []; // per series index: the last non-null value, shown in the legend until hovered

  const series = [{ label: xMode === "time" ? "wall time" : "step", value: (_u, v, _si, idx) => {
    const shown = idx == null ? columns[0][columns[0].length - 1] : v;
    return shown == null ? "–" : xfmt(shown);
  } }];
  const bands = lineSeries(lines, series, (_u, v, si, idx) => {
    const shown = idx == null ? latest[si] : v;
    return shown == null ? "–" : num(shown, 4);
  });
  const width = () => Math.max(240, box.clientWidth - 18);

  let u = null;
  function build() {
    u?.destroy();
    u = new uPlot({
      width: width(), height, series, bands,
      scales: {
        // Zoomed, the x range is the one asked for; otherwise xRange, or the data's.
        x: { time: false, range: (self, min, max) => (zoomGroup(zoomKey).range ? [min, max] : xRange || xAuto(self, min, max)) },
        y: log ? logScale(columns) : { auto: true },
      },
      axes: [
        { space: xSpace, size: 40, values: (_u, ticks, _a, _s, incr) => (xMode === "time" ? ticks.map(duration) : tickLabels(ticks, incr)) },
        { size: fitLabels, values: (_u, ticks, _a, _s, incr) => tickLabels(ticks, log ? 0 : incr) },
      ],
      cursor: {
        // The drag selects; setSelect below zooms the whole group to it, and a double-click resets the group.
        drag: { x: true, y: false, setScale: false },
        sync: { key: zoomKey },
        bind: { dblclick: () => () => void zoomX(zoomKey, null) },
      },
      hooks: { draw: [markFirstPaint], setSelect: [onSelect] },
    }, columns, box);
    charts.set(name, u);
    const range = zoomGroup(zoomKey).range;
    if (range) showZoom(range);
    box.classList.toggle("log", log);
    logButton.classList.toggle("on", log);
  }

  function onSelect(self) {
    const range = selectedRange(self);
    if (!range) return;
    self.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    zoomX(zoomKey, range);
  }

  /** Show `range` of x (null: the data's full range, or xRange). */
  function showZoom(range) {
    box.classList.toggle("zoomed", !!range);
    if (range) u.setScale("x", { min: range[0], max: range[1] });
    else if (u.data[0]?.length) u.setData(u.data, true);
  }

  function setLog(on) {
    if (on === log) return;
    log = on;
    build();
  }

  function feed(data) {
    columns = data;
    latest.length = 0;
    data.forEach((col, si) => {
      if (si === 0) return;
      for (let i = col.length - 1; i >= 0; i--) if (col[i] != null) return void (latest[si] = col[i]);
    });
    // A log scale's kind (log or symmetric log) depends on the data's sign, so it is rebuilt, not updated.
    // Zoomed: new points arrive without the x axis jumping back to the full range.
    const range = zoomGroup(zoomKey).range;
    if (log) build();
    else u.setData(data, !range);
    if (range) showZoom(range);
    u.setLegend({ idx: u.cursor.idx ?? null });
  }

  build();
  const member = { box, apply: showZoom };
  zoomGroup(zoomKey).members.add(member);
  // Follow the grid's column width (window resizes, the sidebar of a narrow screen).
  const resize = new ResizeObserver(() => u.width !== width() && u.setSize({ width: width(), height }));
  resize.observe(box);
  return {
    box,
    get u() { return u; },
    get log() { return log; },
    setLog,
    /** x: numbers ascending; each line: {value, min, max} arrays as long as x. */
    setData(x, data) {
      const cols = [x];
      data.forEach((d, i) => {
        cols.push(d.value);
        if (lines[i].band) cols.push(d.min, d.max);
      });
      feed(cols);
    },
    /** Several lines with different x values: joined on the union of x (gaps are spanned). */
    setTables(tables) {
      feed(uPlot.join(tables.map(({ x, value, min, max }, i) => (lines[i].band ? [x, value, min, max] : [x, value]))));
    },
    destroy() {
      resize.disconnect();
      zoomGroups.get(zoomKey)?.members.delete(member);
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

// ---- which metrics are charted ----------------------------------------------------------------------------

const FIRST = ["env/perf", "env/score", "SPS"];

/** Every metric key in the order practitioners read them: perf, score and SPS, the rest of env/, losses/,
 *  then everything else by section. */
export function orderKeys(metricKeys) {
  const keys = [...new Set(metricKeys || [])];
  const rank = (k) => {
    const first = FIRST.indexOf(k);
    if (first >= 0) return [0, first, ""];
    if (k.startsWith("env/")) return [1, 0, k];
    if (k.startsWith("losses/")) return [2, 0, k];
    return [3, 0, k];
  };
  return keys.sort((a, b) => {
    const [ra, rb] = [rank(a), rank(b)];
    return ra[0] - rb[0] || ra[1] - rb[1] || ra[2].localeCompare(rb[2]);
  });
}

/** The keys charted by default: all of them (a run logs a few dozen at most). */
export const chartKeys = orderKeys;

/** Comma-separated keys from the URL (null when absent: the default layout). */
export function keysParam(params, name = "keys") {
  const raw = params.get(name);
  return raw === null ? null : raw.split(",").filter(Boolean);
}

/** Update one query parameter of the current hash route without a hashchange (which would rebuild the page). */
export function setRouteParam(name, value) {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query);
  if (value === null || value === undefined) params.delete(name);
  else params.set(name, value);
  const text = params.toString().replace(/%2F/g, "/").replace(/%2C/g, ",");
  history.replaceState(null, "", `#${path}${text ? `?${text}` : ""}`);
}

/**
 * A panel listing every metric key, grouped by section (the part before "/"), each with a checkbox.
 * `selected` is a Set that the picker edits; `onChange` is called after each change.
 */
export function metricPicker(allKeys, selected, onChange) {
  const list = h("div", { class: "picker-groups" });
  const count = h("span", { class: "muted" });
  const filter = h("input", { type: "search", placeholder: "filter keys", size: 18, "data-testid": "metric-filter", oninput: () => render() });
  let keys = orderKeys(allKeys);

  function render() {
    const needle = filter.value.trim().toLowerCase();
    const groups = new Map();
    for (const key of keys) {
      if (needle && !key.toLowerCase().includes(needle)) continue;
      const section = key.includes("/") ? key.split("/")[0] : "other";
      if (!groups.has(section)) groups.set(section, []);
      groups.get(section).push(key);
    }
    list.replaceChildren(...[...groups.entries()].map(([section, members]) => h("div", { class: "picker-group" },
      h("div", { class: "picker-section" }, section),
      members.map((key) => h("label", { class: "picker-key mono", title: key },
        h("input", { type: "checkbox", checked: selected.has(key), "data-key": key, onchange: (e) => {
          e.target.checked ? selected.add(key) : selected.delete(key);
          changed();
        } }),
        key.includes("/") ? key.slice(key.indexOf("/") + 1) : key)))));
    count.textContent = `${[...selected].filter((k) => keys.includes(k)).length} of ${keys.length} charted`;
  }

  function changed() {
    render();
    onChange();
  }

  const details = h("details", { class: "panel picker", "data-testid": "metric-picker" },
    h("summary", {}, h("strong", {}, "Metrics"), " ", count),
    h("div", { class: "row", style: { margin: "6px 0" } }, filter,
      h("button", { "data-testid": "metric-all", onclick: () => { keys.forEach((k) => selected.add(k)); changed(); } }, "all"),
      h("button", { "data-testid": "metric-none", onclick: () => { selected.clear(); changed(); } }, "none")),
    list);
  render();
  return Object.assign(details, {
    /** New keys appeared (a live run logs a key for the first time). */
    setKeys(next) {
      keys = orderKeys(next);
      render();
    },
  });
}
