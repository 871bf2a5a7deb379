// #/benchmarks: the training benchmark's figure and its time-to-solved table (written by bench/).
import { api } from "../api.js";
import { h, num, table, unavailable } from "../ui.js";

export default async function benchmarksPage(root, ctx) {
  root.append(h("h1", {}, "Benchmarks"));
  const [figure, rows] = await Promise.all([
    api("/benchmarks/figure", { signal: ctx.signal }).catch((e) => e),
    api("/benchmarks", { signal: ctx.signal }).catch((e) => e),
  ]);
  if (!ctx.alive) return;
  root.append(
    figure instanceof Error ? unavailable("benchmark figure", figure)
      : figure.url ? h("div", { class: "panel" }, h("img", { src: figure.url, alt: "training benchmark", style: { maxWidth: "100%" }, "data-testid": "bench-figure" }))
        : h("div", { class: "unavailable" }, "No benchmark figure yet (docs/bench_train.png is written by the training benchmark)."),
    h("h2", {}, "Time to solved"),
    rows instanceof Error ? unavailable("benchmark table", rows)
      : rows.length ? h("div", { "data-testid": "bench-table" }, table(Object.keys(rows[0]).map((k) => ({
        label: k.replace(/_/g, " ").replace(/\bsps\b/i, "SPS"), title: k, class: typeof rows[0][k] === "number" ? "num" : "", value: (r) => (typeof r[k] === "number" ? num(r[k]) : r[k] ?? "–"),
      })), rows))
        : h("div", { class: "unavailable" }, "No benchmark results yet (docs/bench_train.csv)."));
}
