// #/runs: every run with its status; failed runs in red with their reason; filters, search and cancel; columns
// sort by a click on their header; the hyperparameters that differ between the listed runs get a column each.
import { api, envs } from "../api.js";
import { badge, duration, flatten, h, num, param, progress, steps, table, tags, unavailable, when } from "../ui.js";

const STATUSES = ["", "queued", "running", "succeeded", "failed", "cancelled"];
const PAGE = 50;
const MAX_CONFIG_COLUMNS = 8;

export default async function runsPage(root, ctx) {
  const page = {
    ctx,
    filters: {
      env: ctx.params.get("env") || "",
      status: ctx.params.get("status") || "",
      tag: ctx.params.get("tag") || "",
      q: ctx.params.get("q") || "",
      sort: ctx.params.get("sort") || "",
      offset: Number(ctx.params.get("offset") || 0),
    },
    selected: new Set(),
    list: h("div", { "data-testid": "runs-table" }),
    message: h("div"),
    loading: null,
  };
  page.update = (patch) => update(page, patch);
  page.load = () => load(page);
  page.compareButton = h("button", { class: "primary", disabled: true, "data-testid": "compare-selected",
    onclick: () => (location.hash = `#/compare?ids=${[...page.selected].join(",")}`) }, "Compare selected");

  root.append(
    h("h1", {}, "Runs"),
    h("div", { class: "row panel" }, ...filterControls(page), h("span", { class: "grow" }), page.compareButton),
    page.message, page.list);

  await page.load();
  // Statuses and progress move on their own; a light refresh keeps the list honest.
  ctx.every(5000, page.load);
}

/** The env, status and tag filters and the search box; each change reloads the list. */
function filterControls({ filters, update }) {
  const envSelect = h("select", { "data-testid": "filter-env", onchange: () => update({ env: envSelect.value }) },
    h("option", { value: "" }, "all envs"));
  if (filters.env) envSelect.append(h("option", { value: filters.env, selected: true }, filters.env));
  envs().then((specs) => {
    for (const { name } of specs) if (name !== filters.env) envSelect.append(h("option", { value: name }, name));
  }).catch(() => {}); // the filter still works with the env typed in the URL

  const statusSelect = h("select", { "data-testid": "filter-status", onchange: () => update({ status: statusSelect.value }) },
    STATUSES.map((s) => h("option", { value: s, selected: s === filters.status }, s || "any status")));
  const tagInput = h("input", { placeholder: "tag", value: filters.tag, size: 12, "data-testid": "filter-tag",
    onchange: () => update({ tag: tagInput.value.trim() }) });
  let typing;
  const search = h("input", { type: "search", placeholder: "search name, env, tag, failure reason", value: filters.q, size: 32,
    "data-testid": "search", oninput: () => { clearTimeout(typing); typing = setTimeout(() => update({ q: search.value.trim() }), 250); } });
  return [envSelect, statusSelect, tagInput, search];
}

function update(page, patch) {
  Object.assign(page.filters, { offset: 0 }, patch);
  // Keep the filters in the address (shareable) without a hashchange, which would rebuild the page.
  const query = new URLSearchParams(Object.entries(page.filters).filter(([, v]) => v));
  history.replaceState(null, "", `#/runs${query.size ? `?${query}` : ""}`);
  page.load();
}

async function cancel(page, run) {
  try {
    await api(`/runs/${run.id}/cancel`, { method: "POST", signal: page.ctx.signal });
    page.message.replaceChildren();
    page.load();
  } catch (e) {
    if (!e.aborted) page.message.replaceChildren(h("div", { class: "banner bad" }, `cancel #${run.id}: ${e.message}${e.status === 401 ? " (paste the token from `shoal up` above)" : ""}`));
  }
}

function toggle({ selected, compareButton }, id, on) {
  on ? selected.add(id) : selected.delete(id);
  compareButton.disabled = selected.size < 1;
  compareButton.textContent = `Compare selected${selected.size ? ` (${selected.size})` : ""}`;
}

// Every column with a `sort` orders the whole list on the server: a summary field, or a hyperparameter of
// the resolved config by its path ("config.train.gamma").
const columns = (page, configKeys) => [
  { label: "", value: (r) => h("input", { type: "checkbox", checked: page.selected.has(r.id), onchange: (e) => toggle(page, r.id, e.target.checked) }) },
  { label: "run", sort: "id", value: (r) => h("span", {}, h("a", { href: `#/runs/${r.id}` }, `#${r.id}`)) },
  { label: "name", sort: "name", value: (r) => r.name ? h("a", { href: `#/runs/${r.id}`, "data-testid": "run-name", title: r.notes || "" }, r.name) : "" },
  { label: "env", sort: "env", value: (r) => r.env },
  { label: "status", sort: "status", value: (r) => h("span", {}, badge(r.status),
    r.failure_reason ? h("div", { class: "reason", "data-testid": "failure-reason" }, r.failure_reason) : null) },
  { label: "tags", value: (r) => h("span", {}, tags(r.tags)) },
  { label: "progress", sort: "progress_steps", value: (r) => h("span", {}, progress(r.progress_steps, r.total_timesteps), " ", h("span", { class: "muted" }, steps(r.progress_steps))) },
  { label: "score", sort: "final_score", class: "num", title: "final_score: the clean evaluation at the end", value: (r) => num(r.final_score) },
  ...configKeys.map((key) => ({
    label: key.split(".").pop(), sort: `config.${key}`, class: "num mono hp", title: `${key} (resolved config)`,
    value: (r) => {
      const v = configValue(r, key);
      return v === undefined ? "–" : param(v);
    },
  })),
  { label: "seed", sort: "seed", class: "num", value: (r) => String(r.seed) },
  { label: "cost", sort: "cost_seconds", class: "num", value: (r) => duration(r.cost_seconds) },
  { label: "created", sort: "created_at", value: (r) => h("span", { title: r.created_at }, when(r.created_at)) },
  { label: "", value: (r) => (r.status === "running" || r.status === "queued")
    ? h("button", { class: "danger", "data-testid": "cancel", onclick: () => cancel(page, r) }, "cancel") : "" },
];

function onSort({ filters, update }, key) {
  // First click: descending for numbers people rank (score, progress...), ascending for names.
  const ascendingFirst = ["name", "env", "status"].includes(key);
  const next = filters.sort === key ? `-${key}` : filters.sort === `-${key}` ? key : ascendingFirst ? key : `-${key}`;
  update({ sort: next });
}

async function load(page) {
  const { filters, list } = page;
  const params = { ...filters, limit: PAGE };
  const mine = (page.loading = api("/runs", { params, signal: page.ctx.signal }));
  let answer;
  try {
    answer = await mine;
  } catch (e) {
    if (!e.aborted) list.replaceChildren(unavailable("runs", e));
    return;
  }
  if (mine !== page.loading) return; // a newer filter change already answered
  if (!answer.items.length) {
    list.replaceChildren(h("div", { class: "unavailable" }, answer.total ? "No runs on this page." : "No runs match. Start one with `shoal up --demo` or POST /runs."));
    return;
  }
  const failed = answer.items.filter((r) => r.status === "failed").length;
  list.replaceChildren(
    failed ? h("div", { class: "banner bad", "data-testid": "failed-summary" }, `${failed} failed run${failed > 1 ? "s" : ""} on this page`) : "",
    table(columns(page, differing(answer.items)), answer.items, (r) => ({ class: r.status === "failed" ? "failed" : "", "data-run": r.id }),
      { current: filters.sort || "-id", onSort: (key) => onSort(page, key) }),
    pager(page, answer));
}

function pager(page, answer) {
  const to = Math.min(answer.offset + answer.items.length, answer.total);
  const go = (offset) => { page.filters.offset = offset; page.load(); };
  return h("div", { class: "row", style: { marginTop: "8px" } },
    h("span", { class: "muted" }, `${answer.offset + 1}–${to} of ${answer.total}`),
    h("button", { disabled: answer.offset === 0, onclick: () => go(Math.max(0, answer.offset - PAGE)) }, "‹ newer"),
    h("button", { disabled: to >= answer.total, onclick: () => go(answer.offset + PAGE) }, "older ›"));
}

function configValue(run, key) {
  let v = run.config;
  for (const part of key.split(".")) v = v?.[part];
  return v;
}

/** The resolved hyperparameters whose values differ between the runs: what a column is worth showing for
 *  (at most MAX_CONFIG_COLUMNS, the user's overrides first). */
function differing(runs) {
  const values = new Map();
  for (const r of runs) for (const [k, v] of flatten(r.config)) {
    if (!values.has(k)) values.set(k, new Set());
    values.get(k).add(JSON.stringify(v));
  }
  const overridden = new Set(runs.flatMap((r) => flatten(r.overrides).map(([k]) => k)));
  return [...values.entries()].filter(([k, set]) => set.size > 1 || (runs.length > 1 && runs.some((r) => configValue(r, k) === undefined)))
    .map(([k]) => k)
    .sort((a, b) => (overridden.has(b) - overridden.has(a)) || a.localeCompare(b))
    .slice(0, MAX_CONFIG_COLUMNS);
}
