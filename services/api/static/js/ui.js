// Small DOM and formatting helpers shared by the pages.

/** h("a", {href: "#/runs", class: "x", onclick}, "text", child) builds an element. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  el.append(...children.flat().filter((c) => c !== undefined && c !== null && c !== false));
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  el.append(...children.flat().filter((c) => c !== undefined && c !== null));
  return el;
}

export function badge(status) {
  return h("span", { class: `badge ${status}`, "data-testid": "status" }, status === "failed" ? "✖ failed" : status);
}

export function tags(list) {
  return (list || []).map((t) => h("span", { class: "tag" }, t));
}

/** The message shown where a section's data could not be loaded (an endpoint not built yet, a 404). */
export function unavailable(what, error) {
  const why = error?.status === 404 ? "not available on this server yet" : error?.message || "unavailable";
  return h("div", { class: "unavailable", "data-testid": "unavailable" }, `${what}: ${why}`);
}

export function num(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value) && Math.abs(value) < 1e15) return value.toLocaleString("en-US");
  const a = Math.abs(value);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return value.toExponential(2);
  return value.toLocaleString("en-US", { maximumSignificantDigits: digits + 1 });
}

export function steps(value) {
  if (value === null || value === undefined) return "–";
  for (const [unit, size] of [["B", 1e9], ["M", 1e6], ["k", 1e3]]) {
    if (Math.abs(value) >= size) return `${+(value / size).toFixed(value >= 10 * size ? 0 : 1)}${unit}`;
  }
  return String(value);
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  const ago = (Date.now() - d.getTime()) / 1000;
  if (ago < 90) return `${Math.max(0, Math.round(ago))}s ago`;
  if (ago < 5400) return `${Math.round(ago / 60)}m ago`;
  if (ago < 36 * 3600) return `${Math.round(ago / 3600)}h ago`;
  return d.toISOString().slice(0, 16).replace("T", " ");
}

/** A sweep's cost in its unit: worker-seconds as a duration, or agent steps. */
export function cost(value, unit) {
  if (value === null || value === undefined) return "–";
  return unit === "steps" ? `${steps(value)} steps` : duration(value);
}

/** A hyperparameter's value for people: numbers to 4 significant digits (no float noise such as
 *  0.9799999999845258), a categorical's choice as it is. */
export function param(value) {
  return typeof value === "number" ? num(value) : String(value);
}

export function progress(done, total, title = `${steps(done)} / ${steps(total)} steps`) {
  const share = total ? Math.min(1, done / total) : 0;
  return h("span", { class: "progress", title },
    h("div", { style: { width: `${(share * 100).toFixed(1)}%` } }));
}

/** {"train": {"lr": 1}} -> [["train.lr", 1]], so nested configs fit in tables and axes. */
export function flatten(obj, prefix = "") {
  const out = [];
  for (const [k, v] of Object.entries(obj || {})) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v)) out.push(...flatten(v, path));
    else out.push([path, v]);
  }
  return out;
}

/** A key/value grid; keys in `highlight` (a Set) are marked as the user's overrides. */
export function kvTable(pairs, highlight = new Set()) {
  return h("div", { class: "kv mono" },
    pairs.flatMap(([k, v]) => [
      h("span", { class: highlight.has(k) ? "override" : "muted" }, k),
      h("span", {}, typeof v === "object" ? JSON.stringify(v) : String(v)),
    ]));
}

/**
 * A table from column specs [{label, value: row => node|string, class, sort, title}] and rows. With
 * `sorting` ({current: "-score", onSort(key)}), a column with a `sort` key gets a clickable header that
 * shows the direction (▲ ascending, ▼ descending).
 */
export function table(columns, rows, rowProps = () => ({}), sorting = null) {
  const head = (c) => {
    if (!sorting || !c.sort) return h("th", { class: c.class, title: c.title }, c.label);
    const dir = sorting.current === c.sort ? "▲" : sorting.current === `-${c.sort}` ? "▼" : "";
    return h("th", { class: `${c.class || ""} sortable${dir ? " sorted" : ""}`, title: c.title || `sort by ${c.label}`,
      "data-sort": c.sort, onclick: () => sorting.onSort(c.sort) }, c.label, dir ? ` ${dir}` : "");
  };
  return h("table", {},
    h("thead", {}, h("tr", {}, columns.map(head))),
    h("tbody", {}, rows.map((row) => h("tr", rowProps(row), columns.map((c) => {
      const v = c.value(row);
      return h("td", { class: c.class }, v instanceof Node ? v : v ?? "–");
    })))));
}

// Trial order and ratings are coloured on viridis, readable in greyscale and by the colour-blind.
const VIRIDIS = ["#440154", "#482878", "#3e4a89", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"];
export function viridis(t) {
  const x = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  return mix(VIRIDIS[i], VIRIDIS[i + 1], x - i);
}

function mix(a, b, t) {
  const pa = [1, 3, 5].map((i) => parseInt(a.slice(i, i + 2), 16));
  const pb = [1, 3, 5].map((i) => parseInt(b.slice(i, i + 2), 16));
  return `rgb(${pa.map((v, i) => Math.round(v + (pb[i] - v) * t)).join(",")})`;
}

/** Red (0) – white (0.5) – blue (1), for win rates. */
export function diverging(t) {
  return t < 0.5 ? mix("#c62828", "#ffffff", t * 2) : mix("#ffffff", "#2762c9", (t - 0.5) * 2);
}

export const PALETTE = ["#2762c9", "#d1495b", "#1d8a4b", "#edae49", "#6a4fb3", "#00798c", "#a05195", "#8b5a2b", "#30638e", "#e07a5f"];
