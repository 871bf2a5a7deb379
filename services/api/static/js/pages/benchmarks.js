// #/benchmarks: the training benchmark's figure and its time-to-solved table (written by bench/), with the
// hardware, date and command they come from.
import { api, imageSource } from "../api.js";
import { h, num, table, unavailable } from "../ui.js";

export default async function benchmarksPage(root, ctx) {
  root.append(h("h1", {}, "Benchmarks"));
  const [figure, rows] = await Promise.all([
    api("/benchmarks/figure", { signal: ctx.signal }).catch((e) => e),
    api("/benchmarks", { signal: ctx.signal }).catch((e) => e),
  ]);
  const src = figure instanceof Error ? "" : await imageSource(figure.url).catch(() => "");
  if (!ctx.alive) return;
  root.append(
    figure instanceof Error ? "" : measured(figure.measured),
    figure instanceof Error ? unavailable("benchmark figure", figure)
      : src ? h("div", { class: "panel" }, h("img", { src, alt: "training benchmark", style: { maxWidth: "100%" }, "data-testid": "bench-figure" }))
        : h("div", { class: "unavailable" }, "No benchmark figure yet (docs/bench_train.png is written by the training benchmark)."),
    h("h2", {}, "Time to solved"),
    rows instanceof Error ? unavailable("benchmark table", rows)
      : rows.length ? h("div", { "data-testid": "bench-table" }, table(Object.keys(rows[0]).map((k) => ({
        label: k.replace(/_/g, " ").replace(/\bsps\b/i, "SPS"), title: k, class: typeof rows[0][k] === "number" ? "num" : "", value: (r) => (typeof r[k] === "number" ? num(r[k]) : r[k] ?? "–"),
      })), rows))
        : h("div", { class: "unavailable" }, "No benchmark results yet (docs/bench_train.csv)."));
}

/** "Measured on <hardware>, <date>, with <command>": figures mean little without where and when. */
function measured(info) {
  if (!info?.hardware && !info?.date) {
    return h("div", { class: "muted", "data-testid": "bench-measured" },
      "Where and when these were measured is not recorded (docs/bench_train.json).");
  }
  return h("div", { class: "panel", "data-testid": "bench-measured" }, "Measured on ",
    h("strong", { "data-testid": "bench-hardware" }, info.hardware || "unrecorded hardware"), ", ",
    h("strong", { "data-testid": "bench-date" }, info.date || "an unrecorded date"),
    info.command ? h("span", {}, ", with ", h("code", {}, info.command)) : "", ".");
}
