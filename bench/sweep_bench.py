"""Generalisation benchmark of the sweeper: ours against random search, Optuna TPE/GP and Protein.

The task families live in bench/sweep_tasks.py: a tuning half, on which the sweeper may be tuned, and a
held-out half, fixed before any tuning, that tells whether what was tuned generalises. Each sweep runs
with P simulated asynchronous workers: a trial holds a slot for as long as it costs; when one finishes, the
method is told and asked for the next. The budget is the cumulative cost of every trial started, a fixed
number of median runs per family. A budget-unaware method (every anchor) whose proposal does not fit what
is left (budget - cost of finished and in-flight trials) gets no more proposals; the sweep ends once its
trials in flight finish. Ours is given the budget and says when nothing fits (BudgetSpent): as in the
sweeper's tick, it is asked again when a trial in flight ends, and the sweep ends when it says so with none
in flight. A proposal of ours that does not fit anyway counts as a budget violation and ends the sweep as
for the anchors. At most ``--max-trials`` trials.

Metrics per (family, method, P), judged on the noise-free true value of each finished trial (failed
trials count nothing), normalised by the family's optimum:
- final: best true value at the end of the sweep (median over seeds);
- AUC: mean over a log grid of consumed cost (from the cheapest trial's cost to the budget) of the best
  so far (mean over seeds); with P workers the consumed cost at time t is the busy time of all slots;
- front: the cost/score Pareto front of finished trials (best value among trials costing <= c), averaged
  over a log grid of single-trial costs c across the reachable range (mean over seeds; normalised by the
  optimum, not by the best achievable at c, so cheap grid points cap it below 1);
- used: fraction of the budget spent; viol: budget violations (ours only); dup: fraction of proposals equal
  to an earlier one of the same sweep; latency: median suggest() time, and ours at 500 observations.

Protein (PufferLib 3.0) runs in its own virtualenv (default /tmp/pufvenv, see
shared/anchors/pufferlib3/README.md) through this file in ``--worker`` mode, on a device machine's CPUs
(bench/protein_device.sh); its histories are reused through ``--save``. It has no categoricals, so it
skips the families with one.

    .venv/bin/python bench/sweep_bench.py --quick
    mkdir -p /tmp/sweeps && tar xzf bench/data/protein_histories.tgz -C /tmp/sweeps
    .venv/bin/python bench/sweep_bench.py --seeds 4 --save /tmp/sweeps
"""

from __future__ import annotations

import argparse
import copy
import heapq
import json
import math
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sweep_tasks import COST_PARAM, FAMILIES, HELD_OUT, STREAMS, TUNING, Family  # noqa: E402

METHODS = ("ours", "random", "tpe", "gp", "protein")
ANCHORS = ("random", "tpe", "gp", "protein")


class Stop(Exception):
    """The method has nothing more to propose (ours: its budget is spent)."""


# ----- methods: one tiny ask/tell adapter each -------------------------------------------------------------


class Ours:
    budget_aware = True

    def __init__(self, family: Family, seed: int, budget: float, **options: Any) -> None:
        from services.sweeper.pareto import ParetoSearch, SearchOptions

        options = {"score_transform": "logit" if family.nines else "minmax", **options}
        self.search = ParetoSearch(
            family.space,
            goal="maximize",
            cost_param=COST_PARAM,
            seed=seed,
            budget=budget,
            options=SearchOptions(**options),
        )

    def ask(self) -> dict[str, Any]:
        from services.sweeper.pareto import BudgetSpent

        try:
            return self.search.suggest()[0]
        except BudgetSpent as e:
            raise Stop from e

    def tell(self, params: dict[str, Any], score: float | None, cost: float, failed: bool) -> None:
        self.search.observe(params, score, cost, failed=failed)


class RandomSearch:
    budget_aware = False

    def __init__(self, family: Family, seed: int, budget: float) -> None:
        self.family, self.rng, self.first = family, np.random.default_rng([seed, 99]), True

    def ask(self) -> dict[str, Any]:
        if self.first:
            self.first = False
            return self.family.params(self.family.centre())
        return self.family.params(self.rng.uniform(-1.0, 1.0, self.family.space.dim))

    def tell(self, params: dict[str, Any], score: float | None, cost: float, failed: bool) -> None:
        pass


class OptunaSearch:
    """Optuna with default sampler settings, ask/tell, the centre enqueued first. Powers of two are searched
    as integer exponents and logit_normal parameters as log10(1 - x), the warps our space uses."""

    budget_aware = False

    def __init__(self, family: Family, seed: int, budget: float, sampler: str = "tpe") -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        samplers = {"tpe": optuna.samplers.TPESampler, "gp": optuna.samplers.GPSampler}
        self.study = optuna.create_study(direction="maximize", sampler=samplers[sampler](seed=seed))
        self.space = family.space
        centre = self.space.unnormalize(family.centre())
        self.study.enqueue_trial(
            {
                p.name: self._to_optuna(p, v)
                for p, v in zip(self.space.params, self._flat(centre), strict=True)
            }
        )
        self.trials: dict[str, list[Any]] = {}

    def _flat(self, params: dict[str, Any]) -> list[Any]:
        flat = self.space.flatten(params)
        return [flat[n] for n in self.space.names]

    @staticmethod
    def _to_optuna(p: Any, v: Any) -> Any:
        if p.distribution == "uniform_pow2":
            return round(math.log2(v))
        if p.distribution == "logit_normal":
            return math.log10(1.0 - v)
        return v

    def _suggest(self, trial: Any, p: Any) -> Any:
        d = p.distribution
        if d == "categorical":
            return trial.suggest_categorical(p.name, list(p.choices))
        if d == "int_uniform":
            return trial.suggest_int(p.name, math.ceil(p.min), math.floor(p.max))
        if d == "uniform_pow2":
            return 2 ** trial.suggest_int(p.name, math.ceil(math.log2(p.min)), math.floor(math.log2(p.max)))
        if d == "log_normal":
            return trial.suggest_float(p.name, p.min, p.max, log=True)
        if d == "logit_normal":
            lo, hi = sorted((math.log10(1.0 - p.max), math.log10(1.0 - p.min)))
            return 1.0 - 10.0 ** trial.suggest_float(p.name, lo, hi)
        return trial.suggest_float(p.name, p.min, p.max)

    def ask(self) -> dict[str, Any]:
        trial = self.study.ask()
        nested: dict[str, Any] = {}
        for p in self.space.params:
            *sections, leaf = p.name.split(".")
            node = nested
            for s in sections:
                node = node.setdefault(s, {})
            node[leaf] = self._suggest(trial, p)
        self.trials.setdefault(_key(nested), []).append(trial)
        return nested

    def tell(self, params: dict[str, Any], score: float | None, cost: float, failed: bool) -> None:
        import optuna

        trial = self.trials[_key(params)].pop(0)
        if failed:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, score)


class Protein:
    """PufferLib 3.0's Protein as shipped; it has no failure input, so failures are told as score 0."""

    budget_aware = False

    def __init__(self, family: Family, seed: int, budget: float) -> None:
        import pufferlib.sweep
        import torch

        if family.has_categorical:
            raise ValueError(f"Protein has no categorical parameters ({family.name})")
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        config: dict[str, Any] = {"method": "Protein", "metric": "score", "goal": "maximize"}
        # Sections and parameters in sorted order, which our coordinates and Protein's vectors follow.
        for section in sorted(family.spec):
            config[section] = {k: dict(family.spec[section][k]) for k in sorted(family.spec[section])}
        self.protein = pufferlib.sweep.Protein(config, max_suggestion_cost=1e15)
        self.fill = {s: {k: 0.0 for k in family.spec[s]} for s in family.spec}
        self.space = family.space

    def ask(self) -> dict[str, Any]:
        sys.stdout = sys.stderr  # Protein prints each prediction; keep stdout for the JSON result.
        try:
            params, _ = self.protein.suggest(copy.deepcopy(self.fill))
        finally:
            sys.stdout = sys.__stdout__
        # Protein hands out floats; snap them onto what the space runs (ints, powers of 2).
        return self.space.unnormalize(self.space.snap(self.space.normalize(params)))

    def tell(self, params: dict[str, Any], score: float | None, cost: float, failed: bool) -> None:
        self.protein.observe(params, 0.0 if failed else score, cost, is_failure=failed)


def make(method: str, family: Family, seed: int, budget: float, options: dict[str, Any] | None = None) -> Any:
    if method == "ours":
        return Ours(family, seed, budget, **(options or {}))
    if method == "random":
        return RandomSearch(family, seed, budget)
    if method in ("tpe", "gp"):
        return OptunaSearch(family, seed, budget, sampler=method)
    if method == "protein":
        return Protein(family, seed, budget)
    raise ValueError(method)


def _key(params: dict[str, Any]) -> str:
    def rounded(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: rounded(v) for k, v in x.items()}
        return float(f"{x:.6g}") if isinstance(x, float) else x

    return json.dumps(rounded(params), sort_keys=True)


# ----- the simulated sweep ---------------------------------------------------------------------------------


def sweep(
    family: Family,
    method: str,
    seed: int,
    parallel: int,
    max_trials: int = 500,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One sweep with ``parallel`` asynchronous workers; deterministic per seed. Returns its history."""
    budget = family.budget
    driver = make(method, family, seed, budget, options)
    # The objective's noise: one stream per (family, seed), drawn in start order.
    rng = np.random.default_rng([seed, STREAMS[family.name], 7])
    trials: list[dict[str, Any]] = []
    running: list[tuple[float, int]] = []  # (finish time, trial index)
    committed, clock, stopped, violations, note = 0.0, 0.0, False, 0, ""

    def start() -> bool:
        """Starts one trial; False when the method has nothing that fits now."""
        nonlocal committed, stopped, violations, note
        t0 = time.perf_counter()
        try:
            params = driver.ask()
        except Stop as e:
            # As the sweeper's tick does: with trials in flight, ask again when one ends (its real cost
            # may leave room that its reservation did not); with none, the sweep is over.
            note = str(e.__cause__ or e)
            stopped = not running
            return False
        latency = time.perf_counter() - t0
        trial = family.evaluate(params, rng)
        if trial.cost > budget - committed:
            # Does not fit what is left: not run, and the method gets no more proposals.
            stopped = True
            violations += method == "ours"
            if method == "ours":
                driver.search.forget(params)
                print(
                    f"budget violation: {family.name} seed {seed} P={parallel}: a trial costing "
                    f"{trial.cost:.4g} proposed with {budget - committed:.4g} left",
                    file=sys.stderr,
                )
            return False
        committed += trial.cost
        trials.append(
            {
                "key": _key(params),
                "start": clock,
                "end": clock + trial.cost,
                "cost": trial.cost,
                "true": trial.true,
                "score": trial.score,
                "failed": trial.failed,
                "latency": latency,
                "params": params,
            }
        )
        heapq.heappush(running, (clock + trial.cost, len(trials) - 1))
        return True

    def fill() -> None:
        while not stopped and len(running) < parallel and len(trials) < max_trials and start():
            pass

    fill()
    while running:
        clock, i = heapq.heappop(running)
        t = trials[i]
        driver.tell(t["params"], t["score"], t["cost"], t["failed"])
        fill()
    for t in trials:
        del t["params"]
    return {
        "family": family.name,
        "method": method,
        "seed": seed,
        "parallel": parallel,
        "budget": budget,
        "violations": violations,
        "note": note,
        "trials": trials,
    }


# ----- metrics ---------------------------------------------------------------------------------------------


def metrics(family: Family, h: dict[str, Any]) -> dict[str, float]:
    ref, budget = family.reference, h["budget"]
    opt = ref["optimum"]
    trials = h["trials"]
    if not trials:
        return {"final": 0.0, "auc": 0.0, "front": 0.0, "used": 0.0, "dups": 0.0, "latency": math.nan}
    start = np.array([t["start"] for t in trials])
    cost = np.array([t["cost"] for t in trials])
    end = start + cost
    true = np.array([0.0 if t["failed"] else t["true"] for t in trials]) / opt
    order = np.argsort(end, kind="stable")
    # Compute consumed by the time each trial finishes: the busy time of every slot so far.
    consumed = np.array([np.clip(end[i] - start, 0.0, cost).sum() for i in order])
    best = np.maximum.accumulate(true[order])
    grid = np.geomspace(ref["cheapest"], budget, 60)
    idx = np.searchsorted(consumed, grid, side="right") - 1
    auc = float(np.where(idx >= 0, best[np.clip(idx, 0, None)], 0.0).mean())
    cgrid = np.geomspace(ref["cheapest"], ref["dearest"], 40)
    front = float(np.mean([true[cost <= c].max(initial=0.0) for c in cgrid]))
    keys = [t["key"] for t in trials]
    return {
        "final": float(best[-1]),
        "auc": auc,
        "front": front,
        "used": float(cost.sum() / budget),
        "dups": 1.0 - len(set(keys)) / len(keys),
        "latency": float(np.median([t["latency"] for t in trials])),
        "trials": float(len(trials)),
    }


def latency_at(n_obs: int = 500, repeats: int = 3, options: dict[str, Any] | None = None) -> float:
    """Ours: median suggest() time after n_obs random observations of ppo_classic (no budget)."""
    from services.sweeper.pareto import ParetoSearch, SearchOptions

    family = FAMILIES["ppo_classic"]
    options = SearchOptions(**(options or {}))
    search = ParetoSearch(family.space, seed=0, cost_param=COST_PARAM, options=options)
    rng = np.random.default_rng(123)
    for _ in range(n_obs):
        params = family.params(rng.uniform(-1, 1, family.space.dim))
        t = family.evaluate(params, rng)
        search.observe(params, t.score, t.cost, failed=t.failed)
    times = []
    for _ in range(repeats):
        # One more observation each time, so that a model refit is part of what is timed.
        params, _ = search.suggest()
        t = family.evaluate(params, rng)
        search.observe(params, t.score, t.cost, failed=t.failed)
        t0 = time.perf_counter()
        search.suggest()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


# ----- running many sweeps ---------------------------------------------------------------------------------

Job = tuple[str, str, int, int]  # family, method, parallel, seed


def saved(args: argparse.Namespace, job: Job) -> Path | None:
    if args.save is None:
        return None
    family, method, parallel, seed = job
    return args.save / f"{method}_{family}_p{parallel}_s{seed}.json"


def _init_worker() -> None:
    # One thread per process: --jobs processes share the machine's cores.
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def _run_job(job: Job, max_trials: int, options: dict[str, Any]) -> dict[str, Any]:
    family, method, parallel, seed = job
    t0 = time.time()
    h = sweep(FAMILIES[family], method, seed, parallel, max_trials, options if method == "ours" else None)
    h["wall_s"] = time.time() - t0
    return h


def run_all(args: argparse.Namespace, jobs: list[Job]) -> dict[Job, dict[str, Any]]:
    out: dict[Job, dict[str, Any]] = {}
    todo: list[Job] = []
    for job in jobs:
        path = saved(args, job)
        reuse = job[1] != "ours" or args.reuse_ours
        if path is not None and path.exists() and reuse:
            out[job] = json.loads(path.read_text())
        else:
            todo.append(job)
    protein = [j for j in todo if j[1] == "protein"]
    todo = [j for j in todo if j[1] != "protein"]

    def keep(job: Job, h: dict[str, Any]) -> None:
        out[job] = h
        path = saved(args, job)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(h))

    t0 = time.time()
    # Warm every family's optimum before forking, so that each worker does not compute it again.
    for f in {j[0] for j in todo}:
        FAMILIES[f].reference  # noqa: B018
    # The slowest sweeps (GP sampler, parallel ours) first, so that the pool ends together.
    todo.sort(key=lambda j: (-{"gp": 3, "ours": 2, "tpe": 1}.get(j[1], 0), j))
    if args.jobs <= 1:
        for job in todo:
            keep(job, _run_job(job, args.max_trials, args.ours_kw))
    else:
        with ProcessPoolExecutor(max_workers=args.jobs, initializer=_init_worker) as pool:
            futures = {job: pool.submit(_run_job, job, args.max_trials, args.ours_kw) for job in todo}
            for n, (job, fut) in enumerate(futures.items()):
                keep(job, fut.result())
                if args.verbose:
                    print(f"# {n + 1}/{len(todo)} {job} {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    if protein:
        for job, h in protein_histories(args, protein):
            keep(job, h)
    return out


def protein_histories(args: argparse.Namespace, jobs: list[Job]) -> list[tuple[Job, dict[str, Any]]]:
    """Protein in its own venv, one worker process per sweep, ``--protein-jobs`` at a time (one torch
    thread each), until ``--protein-budget-s``; sweeps that miss it are left out and counted as missing."""
    jobs = [j for j in jobs if not FAMILIES[j[0]].has_categorical]
    if not os.path.exists(args.protein_python):
        print(f"Protein: {len(jobs)} sweeps not run ({args.protein_python} is missing)", file=sys.stderr)
        return []
    deadline = time.time() + args.protein_budget_s

    def one(job: Job) -> tuple[Job, dict[str, Any]] | None:
        left = deadline - time.time()
        if left < 30:
            return None
        family, _, parallel, seed = job
        cmd = [
            args.protein_python,
            str(Path(__file__).resolve()),
            "--worker",
            "protein",
            "--families",
            family,
        ]
        cmd += ["--seed", str(seed), "--parallel", str(parallel), "--max-trials", str(args.max_trials)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        try:
            res = subprocess.run(
                cmd, capture_output=True, text=True, timeout=left, cwd="/tmp", check=True, env=env
            )
            return job, json.loads(res.stdout.strip().splitlines()[-1])
        except (subprocess.SubprocessError, json.JSONDecodeError, IndexError) as e:
            print(f"protein {job}: {type(e).__name__}", file=sys.stderr)
            return None

    # Seed-major, so that a deadline leaves every family with its first seeds rather than one with all.
    jobs.sort(key=lambda j: (j[3], j[2], j[0]))
    with ThreadPoolExecutor(max_workers=args.protein_jobs) as pool:
        done = list(pool.map(one, jobs))
    return [d for d in done if d is not None]


# ----- tables ----------------------------------------------------------------------------------------------


def report(args: argparse.Namespace, results: dict[Job, dict[str, Any]], families: list[str]) -> str:
    lines: list[str] = []
    methods = args.methods
    per: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    viol: dict[tuple[str, str, int], int] = {}
    for (family, method, parallel, _), h in results.items():
        per.setdefault((family, method, parallel), []).append(metrics(FAMILIES[family], h))
        viol[(family, method, parallel)] = viol.get((family, method, parallel), 0) + h["violations"]
    if "protein" in methods and not any(j[1] == "protein" for j in results):
        lines.append("> Protein: no histories found (run bench/protein_device.sh); its cells are empty.\n")

    def cell(family: str, method: str, parallel: int, key: str, agg: Any) -> str:
        ms = per.get((family, method, parallel))
        return f"{agg([m[key] for m in ms]):.3f}" if ms else ""

    halves = [("tuning", TUNING), ("held-out", HELD_OUT)]
    for parallel in args.parallel:
        for half, names in halves:
            rows = [f for f in names if f in families]
            if not rows:
                continue
            lines.append(
                f"\n**{half}, P={parallel}**: final best / optimum (median over seeds) · "
                "AUC (mean over seeds)\n"
            )
            lines.append("| family | " + " | ".join(methods) + " | ours: front · used · viol · dup |")
            lines.append("|---|" + "---|" * (len(methods) + 1))
            for f in rows:
                cells = [
                    f"{cell(f, m, parallel, 'final', np.median)} · {cell(f, m, parallel, 'auc', np.mean)}"
                    if (f, m, parallel) in per
                    else ""
                    for m in methods
                ]
                extra = ""
                if (f, "ours", parallel) in per:
                    extra = (
                        f"{cell(f, 'ours', parallel, 'front', np.mean)} · "
                        f"{cell(f, 'ours', parallel, 'used', np.mean)} · {viol[(f, 'ours', parallel)]} · "
                        f"{cell(f, 'ours', parallel, 'dups', np.mean)}"
                    )
                lines.append(f"| {f} | " + " | ".join(cells) + f" | {extra} |")
    lines.append(
        "\n**Summary**: mean AUC · median final best (median over families of the per-family median),"
    )
    lines.append(
        "front (mean), budget used (mean), duplicates (mean), median suggest() time; trails: families"
    )
    lines.append("where ours' final best is more than 0.05 below the best anchor's\n")
    lines.append("| half | P | method | AUC | final | front | used | dup | suggest (s) | trails |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for parallel in args.parallel:
        for half, names in halves:
            rows = [f for f in names if f in families]
            for m in methods:
                ms = [per[(f, m, parallel)] for f in rows if (f, m, parallel) in per]
                if not ms:
                    continue
                auc = np.mean([np.mean([x["auc"] for x in fm]) for fm in ms])
                final = np.median([np.median([x["final"] for x in fm]) for fm in ms])
                front = np.mean([np.mean([x["front"] for x in fm]) for fm in ms])
                used = np.mean([np.mean([x["used"] for x in fm]) for fm in ms])
                dups = np.mean([np.mean([x["dups"] for x in fm]) for fm in ms])
                lat = np.median([x["latency"] for fm in ms for x in fm])
                trails = ""
                if m == "ours":
                    n = 0
                    for f in rows:
                        if (f, "ours", parallel) not in per:
                            continue
                        ours = np.median([x["final"] for x in per[(f, "ours", parallel)]])
                        anchors = [
                            np.median([x["final"] for x in per[(f, a, parallel)]])
                            for a in ANCHORS
                            if (f, a, parallel) in per
                        ]
                        n += bool(anchors) and ours < max(anchors) - 0.05
                    trails = f"{n}/{len(ms)}"
                lines.append(
                    f"| {half} | {parallel} | {m} | {auc:.3f} | {final:.3f} | {front:.3f} | {used:.2f} | "
                    f"{dups:.3f} | {lat:.3f} | {trails} |"
                )
    return "\n".join(lines)


def parse_families(text: str) -> list[str]:
    if text == "tuning":
        return list(TUNING)
    if text == "held_out":
        return list(HELD_OUT)
    if text == "all":
        return list(TUNING + HELD_OUT)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown families {unknown}; known: {sorted(FAMILIES)}")
    return names


def parse_kw(text: str) -> dict[str, Any]:
    """``key=value,...``; values read as JSON where they parse (numbers, true, "strings"), else strings."""
    out: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", type=parse_families, default=parse_families("all"))
    ap.add_argument(
        "--methods", type=lambda s: s.split(","), default=["ours", "random", "tpe", "gp", "protein"]
    )
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--parallel", type=lambda s: [int(p) for p in s.split(",")], default=[1, 8])
    ap.add_argument("--jobs", type=int, default=2, help="processes running sweeps at once")
    ap.add_argument("--max-trials", type=int, default=500)
    ap.add_argument("--quick", action="store_true", help="2 seeds, no GP sampler nor Protein: a smoke test")
    ap.add_argument(
        "--ours-kw", type=parse_kw, default={}, help="SearchOptions fields, e.g. explore=1,top_k=3"
    )
    ap.add_argument("--save", type=Path, help="keep each sweep's history here as JSON and reuse those found")
    ap.add_argument("--reuse-ours", action="store_true", help="reuse saved histories of ours too")
    ap.add_argument("--protein-python", default="/tmp/pufvenv/bin/python")
    ap.add_argument("--protein-jobs", type=int, default=1, help="Protein worker processes at once")
    ap.add_argument(
        "--protein-budget-s", type=float, default=600.0, help="wall-clock cap for all Protein runs"
    )
    ap.add_argument("--no-latency", action="store_true", help="skip the suggest timing at 500 observations")
    ap.add_argument("--describe", action="store_true", help="print the families table and exit")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    bad = [m for m in args.methods if m not in METHODS]
    if bad:
        ap.error(f"unknown methods {bad}; known: {list(METHODS)}")

    if args.worker:
        h = sweep(FAMILIES[args.families[0]], args.worker, args.seed, args.parallel[0], args.max_trials)
        print(json.dumps(h))
        return
    if args.describe:
        from sweep_tasks import describe

        print(describe())
        return
    if args.quick:
        args.seeds = 2
        args.methods = [m for m in args.methods if m not in ("gp", "protein")]
    families = []
    for f in args.families:
        ok, why = FAMILIES[f].available
        if ok:
            families.append(f)
        else:
            print(f"skipped: {why}", file=sys.stderr)
    jobs = [
        (f, m, p, s) for f in families for m in args.methods for p in args.parallel for s in range(args.seeds)
    ]
    t0 = time.time()
    results = run_all(args, jobs)
    wall = sum(h.get("wall_s", 0.0) for h in results.values())
    print(
        f"# {len(results)} sweeps, {time.time() - t0:.0f}s wall ({wall:.0f}s of sweep time)", file=sys.stderr
    )
    print(
        f"{args.seeds} seeds; P = {args.parallel}; budgets in median runs per family (bench/sweep_tasks.py)\n"
    )
    print(report(args, results, families))
    if "ours" in args.methods and not args.no_latency:
        print(f"\nours: median suggest() at 500 observations: {latency_at(options=args.ours_kw):.3f}s")


if __name__ == "__main__":
    main()
