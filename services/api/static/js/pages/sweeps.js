// #/sweeps: every sweep with its progress, what it has spent of its budget, and its best trial.
import { api } from "../api.js";
import { badge, cost, h, num, progress, table, unavailable, when } from "../ui.js";

export default async function sweepsPage(root, ctx) {
  root.append(h("h1", {}, "Sweeps"));
  const body = h("div", { "data-testid": "sweeps-table" });
  root.append(body);

  async function load() {
    let answer;
    try {
      answer = await api("/sweeps", { signal: ctx.signal });
    } catch (e) {
      if (!e.aborted) body.replaceChildren(unavailable("sweeps", e));
      return false;
    }
    if (!answer.items.length) {
      body.replaceChildren(h("div", { class: "unavailable" }, "No sweeps yet."));
      return true;
    }
    body.replaceChildren(table([
      { label: "sweep", value: (s) => h("a", { href: `#/sweeps/${s.id}` }, `#${s.id}`) },
      { label: "env", value: (s) => s.env },
      { label: "status", value: (s) => badge(s.status) },
      { label: "objective", value: (s) => `${s.goal} ${s.metric}` },
      { label: "trials", class: "num", value: (s) => `${s.trials_finished} / ${s.max_runs}` },
      { label: "running", class: "num", value: (s) => `${s.trials_running} of ${s.parallelism}` },
      { label: "budget used", value: (s) => h("span", { "data-testid": "budget-used" }, s.budget == null
        ? cost(s.budget_used, s.cost_unit)
        : [progress(s.budget_used, s.budget, `${cost(s.budget_left, s.cost_unit)} left`), ` ${cost(s.budget_used, s.cost_unit)} / ${cost(s.budget, s.cost_unit)}`]) },
      { label: "best", value: (s) => s.best
        ? h("span", {}, h("strong", {}, num(s.best.score)), " ", s.best.run_id ? h("a", { href: `#/runs/${s.best.run_id}` }, `run #${s.best.run_id}`) : "")
        : "–" },
      { label: "created", value: (s) => when(s.created_at) },
    ], answer.items));
    return answer.items.some((s) => s.status === "running");
  }

  if (await load()) ctx.every(5000, load);
}
