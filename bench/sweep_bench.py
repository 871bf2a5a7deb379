"""Benchmark the sweeper against random search, Optuna TPE and PufferLib 3.0's Protein on synthetic RL sweeps.

Each task imitates a PPO sweep over 9 parameters (one of them ``train.total_timesteps``, which drives the
cost): the score grows with timesteps (saturating linearly, logarithmically, or as a "percentile" metric
near 1 where 0.99 → 0.999 matters), the best learning rate moves with batch size and with timesteps, scores
are noisy, and high learning rates with small batches diverge (the trial fails, at a third of its cost).

Metrics per (task, method), over seeds, judged on the noise-free score of each suggested trial:
- cost to target: cumulative cost (in suggestion order) until a trial reaches 95% of the task's maximum
  (for the percentile task: 95% of the maximal -log10(1 - score)); "—" when not reached in the trial budget;
- AUC: mean over a fixed log-cost grid of the best-so-far score / task maximum;
- best at 10M: best score / task maximum once 1e7 of cumulative cost is spent (a fixed sweep budget,
  about 5-10 full-length runs; "median best" is the same after all trials, whatever they cost);
- front: the cost/score Pareto front of the trials (best score among trials of cost ≤ c), averaged over a
  log grid of single-trial costs c across the reachable range: a cost-aware sweeper should find good
  settings at every budget, not only at the largest;
- duplicates: fraction of suggestions equal to an earlier one of the same run;
- latency: median suggest() time during the runs, and at 500 observations.

Every method starts from the same defaults (the middle of each range), as a shoal sweep starts from the
user's config. Protein runs in its own virtualenv (default /tmp/pufvenv, see
shared/anchors/pufferlib3/README.md) through this same file in ``--worker`` mode; it takes 6-16 s per
suggestion on dev, so its runs were measured on a device machine's CPUs (bench/protein_device.sh) and are
kept in bench/data/protein_histories.tgz. ``--save DIR`` keeps every run's history and reuses those found,
so the full table needs no Protein venv:

    .venv/bin/python bench/sweep_bench.py --quick
    mkdir -p /tmp/sweeps && tar xzf bench/data/protein_histories.tgz -C /tmp/sweeps
    .venv/bin/python bench/sweep_bench.py --seeds 30 --trials 48 --save /tmp/sweeps
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.sweeper.space import Space  # noqa: E402

SPACE_SPEC: dict[str, Any] = {
    "train": {
        "learning_rate": {"distribution": "log_normal", "min": 1e-5, "max": 1e-1, "scale": "auto"},
        "total_timesteps": {"distribution": "log_normal", "min": 5e4, "max": 2e6, "scale": "auto"},
        "batch_size": {"distribution": "uniform_pow2", "min": 1024, "max": 65536, "scale": "auto"},
        "update_epochs": {"distribution": "int_uniform", "min": 1, "max": 8, "scale": "auto"},
        "gamma": {"distribution": "logit_normal", "min": 0.9, "max": 0.9999, "scale": "auto"},
        "gae_lambda": {"distribution": "logit_normal", "min": 0.8, "max": 0.99, "scale": "auto"},
        "ent_coef": {"distribution": "log_normal", "min": 1e-5, "max": 1e-1, "scale": "auto"},
        "clip_coef": {"distribution": "uniform", "min": 0.05, "max": 0.5, "scale": "auto"},
        "hidden": {"distribution": "uniform_pow2", "min": 32, "max": 512, "scale": "auto"},
    }
}
# Every method starts from the same defaults, the middle of each range (a real sweep's centre is the
# user's config): ours and Protein read "mean", TPE has it enqueued as its first trial.
for _spec in SPACE_SPEC["train"].values():
    _spec["mean"] = Space({"p": dict(_spec)}).params[0].value(0.0)
SPACE = Space(SPACE_SPEC)
T_MAX = 2e6
TASKS = ("linear", "log", "percentile")
PERCENTILE_DECADES = 3.0


def _u(params: dict[str, Any]) -> dict[str, float]:
    return {n.split(".")[1]: float(v) for n, v in zip(SPACE.names, SPACE.normalize(params), strict=True)}


def quality(u: dict[str, float]) -> float:
    """In (0, 1]; 1 only where all the interacting optima line up."""
    opt_lr = -0.1 + 0.35 * u["batch_size"] - 0.25 * u["total_timesteps"]
    opt_gamma = 0.3 + 0.3 * u["total_timesteps"]
    opt_ent = -0.3 + 0.2 * u["hidden"]
    opt_epochs = 0.2 - 0.3 * u["learning_rate"]
    d = 0.3 * (
        3.0 * (u["learning_rate"] - opt_lr) ** 2
        + 2.0 * (u["gamma"] - opt_gamma) ** 2
        + 1.5 * (u["batch_size"] - 0.3) ** 2
        + 1.0 * (u["ent_coef"] - opt_ent) ** 2
        + 0.8 * (u["update_epochs"] - opt_epochs) ** 2
        + 0.4 * (u["gae_lambda"] - 0.5) ** 2
        + 0.3 * (u["clip_coef"] + 0.2) ** 2
        + 0.2 * (u["hidden"] - 0.4) ** 2
    )
    return math.exp(-d)


def evaluate(task: str, params: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """One synthetic trial: observed score (None if failed), its noise-free value as progress, cost."""
    u = _u(params)
    t = float(params["train"]["total_timesteps"])
    frac = (u["total_timesteps"] + 1.0) / 2.0
    cost = (
        t
        * (0.6 + 0.2 * (u["hidden"] + 1.0))
        * (1.0 + 0.1 * u["update_epochs"])
        * math.exp(rng.normal(0, 0.05))
    )
    if u["learning_rate"] > 0.5 and u["batch_size"] < -0.2:
        return {"score": None, "progress": 0.0, "cost": cost / 3.0, "failed": True}
    q = quality(u)
    if task == "linear":
        true = q * min(1.0, t / (0.3 * T_MAX))
        score, progress = true + rng.normal(0, 0.01), true
    elif task == "log":
        true = q * (0.4 + 0.6 * frac)
        score, progress = true + rng.normal(0, 0.01), true
    else:
        decades = PERCENTILE_DECADES * q * (0.4 + 0.6 * frac)
        score = 1.0 - 10.0 ** -(decades + rng.normal(0, 0.03))
        progress = decades / PERCENTILE_DECADES
    return {"score": float(score), "progress": float(progress), "cost": float(cost), "failed": False}


# ----- methods ---------------------------------------------------------------------------------------------


class Ours:
    def __init__(self, task: str, seed: int, **options: Any) -> None:
        from services.sweeper.pareto import ParetoSearch

        transform = "logit" if task == "percentile" else "minmax"
        self.search = ParetoSearch(SPACE, seed=seed, score_transform=transform, **options)

    def ask(self) -> dict[str, Any]:
        return self.search.suggest()[0]

    def tell(self, params: dict[str, Any], r: dict[str, Any]) -> None:
        self.search.observe(params, r["score"], r["cost"], failed=r["failed"])


class RandomSearch:
    def __init__(self, task: str, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def ask(self) -> dict[str, Any]:
        return SPACE.unnormalize(self.rng.uniform(-1, 1, SPACE.dim))

    def tell(self, params: dict[str, Any], r: dict[str, Any]) -> None:
        pass


class TPE:
    """Optuna TPE on the same normalised coordinates; constant liar for the parallel batches."""

    def __init__(self, task: str, seed: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self.study.enqueue_trial(dict(zip(SPACE.names, SPACE.centre().tolist(), strict=True)))
        self.trials: dict[str, Any] = {}

    def ask(self) -> dict[str, Any]:
        trial = self.study.ask()
        u = np.array([trial.suggest_float(n, -1.0, 1.0) for n in SPACE.names])
        params = SPACE.unnormalize(u)
        self.trials[json.dumps(params, sort_keys=True)] = trial
        return params

    def tell(self, params: dict[str, Any], r: dict[str, Any]) -> None:
        import optuna

        trial = self.trials.pop(json.dumps(params, sort_keys=True))
        if r["failed"]:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, r["score"])


class Protein:
    """PufferLib 3.0's Protein as shipped; it has no failure input, so failures are told as score 0."""

    def __init__(self, task: str, seed: int) -> None:
        import pufferlib.sweep
        import torch

        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        # In our coordinates' (sorted) order, which Protein's own vectors follow.
        train = {name: dict(SPACE_SPEC["train"][name]) for name in sorted(SPACE_SPEC["train"])}
        config = {"method": "Protein", "metric": "score", "goal": "maximize", "train": train}
        self.protein = pufferlib.sweep.Protein(config, max_suggestion_cost=1e12)
        self.fill = {"train": {p.name.split(".")[1]: 0.0 for p in SPACE.params}}

    def ask(self) -> dict[str, Any]:
        sys.stdout = sys.stderr  # Protein prints each prediction; keep stdout for the JSON result.
        try:
            params, _ = self.protein.suggest(copy.deepcopy(self.fill))
        finally:
            sys.stdout = sys.__stdout__
        return {"train": {k: float(v) for k, v in params["train"].items()}}

    def tell(self, params: dict[str, Any], r: dict[str, Any]) -> None:
        score = 0.0 if r["failed"] else r["score"]
        self.protein.observe(params, score, r["cost"], is_failure=r["failed"])


METHODS: dict[str, Callable[..., Any]] = {
    "ours": Ours,
    "random": RandomSearch,
    "tpe": TPE,
    "protein": Protein,
}


# ----- runs and metrics ----------------------------------------------------------------------------------


def run(
    method: str, task: str, seed: int, trials: int, parallel: int, options: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Batches of ``parallel`` asks then as many tells; returns one record per trial in suggestion order."""
    driver = METHODS[method](task, seed, **(options or {}))
    rng = np.random.default_rng([seed, TASKS.index(task), 7])
    history: list[dict[str, Any]] = []
    while len(history) < trials:
        batch = []
        for _ in range(min(parallel, trials - len(history))):
            t0 = time.perf_counter()
            params = driver.ask()
            batch.append((params, time.perf_counter() - t0))
        for params, latency in batch:
            r = evaluate(task, params, rng)
            driver.tell(params, r)
            key = json.dumps({k: round(float(v), 6) for k, v in params["train"].items()}, sort_keys=True)
            history.append({**r, "latency": latency, "key": key})
    return history


def latency_at(method: str, options: dict[str, Any], n_obs: int = 500, repeats: int = 3) -> float:
    """Median suggest() time after n_obs random observations (of the log task)."""
    driver = METHODS[method]("log", 0, **options)
    rng = np.random.default_rng(123)
    for _ in range(n_obs):
        params = SPACE.unnormalize(rng.uniform(-1, 1, SPACE.dim))
        if method == "tpe":
            params = driver.ask()
        driver.tell(params, evaluate("log", params, rng))
    times = []
    for _ in range(repeats):
        # One more observation each time, so that a model refit is part of what is timed.
        params = driver.ask()
        driver.tell(params, evaluate("log", params, rng))
        t0 = time.perf_counter()
        driver.ask()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def metrics(history: list[dict[str, Any]]) -> dict[str, float]:
    costs = np.cumsum([h["cost"] for h in history])
    progress = np.maximum.accumulate([h["progress"] for h in history])
    hit = np.nonzero(progress >= 0.95)[0]
    grid = np.logspace(5, 7.5, 60)
    idx = np.searchsorted(costs, grid, side="right") - 1
    best_on_grid = np.where(idx >= 0, progress[np.clip(idx, 0, None)], 0.0)
    keys = [h["key"] for h in history]
    at_budget = np.searchsorted(costs, 1e7, side="right") - 1
    own_cost = np.array([h["cost"] for h in history])
    own_progress = np.array([h["progress"] for h in history])
    front = [own_progress[own_cost <= c].max(initial=0.0) for c in np.logspace(4.5, 6.6, 40)]
    return {
        "best_10m": float(progress[at_budget]) if at_budget >= 0 else 0.0,
        "front": float(np.mean(front)),
        "cost_to_target": float(costs[hit[0]]) if len(hit) else math.inf,
        "auc": float(best_on_grid.mean()),
        "dups": 1.0 - len(set(keys)) / len(keys),
        "latency": float(np.median([h["latency"] for h in history])),
        "best": float(progress[-1]),
    }


def saved(args: argparse.Namespace, method: str, task: str, seed: int, parallel: int) -> Path | None:
    """Where ``--save`` keeps one run's history; a run found there is read back instead of run again."""
    if args.save is None:
        return None
    return args.save / f"{method}_{task}_p{parallel}_s{seed}_t{args.trials}.json"


def histories(args: argparse.Namespace, method: str, parallel: int) -> list[tuple[str, int, Any]]:
    """Every (task, seed) run of one method, from ``--save`` where it is there."""
    done, todo = [], []
    for seed in range(args.seeds):
        for task in args.tasks:
            path = saved(args, method, task, seed, parallel)
            if path is not None and path.exists():
                done.append((task, seed, json.loads(path.read_text())))
            else:
                todo.append((task, seed))

    def keep(task: str, seed: int, history: Any) -> tuple[str, int, Any]:
        path = saved(args, method, task, seed, parallel)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(history))
        return task, seed, history

    if method == "protein" and todo and not os.path.exists(args.protein_python):
        print(f"Protein: {len(todo)} runs not measured ({args.protein_python} is missing)", file=sys.stderr)
        todo = []
    if method == "protein":
        budget = args.protein_budget_s / len(args.parallel)
        fresh = protein_histories(args, todo, parallel, time.time() + budget)
        return done + [keep(*f) for f in fresh]
    opts = args.ours_options if method == "ours" else {}
    return done + [keep(t, s, run(method, t, s, args.trials, parallel, opts)) for t, s in todo]


def protein_histories(
    args: argparse.Namespace, runs: list[tuple[str, int]], parallel: int, deadline: float
) -> list[tuple[str, int, Any]]:
    """Protein runs in its own venv, one worker process per (task, seed), `--protein-jobs` at a time (one
    torch thread each), until the deadline; runs that miss it are left out and counted as missing."""

    def one(task: str, seed: int) -> tuple[str, int, Any] | None:
        left = deadline - time.time()
        if left < 30:
            return None
        cmd = [args.protein_python, str(Path(__file__).resolve()), "--worker", "protein", "--task", task]
        cmd += ["--seed", str(seed), "--trials", str(args.trials), "--parallel", str(parallel)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        try:
            res = subprocess.run(
                cmd, capture_output=True, text=True, timeout=left, cwd="/tmp", check=True, env=env
            )
            return task, seed, json.loads(res.stdout.strip().splitlines()[-1])
        except (subprocess.SubprocessError, json.JSONDecodeError, IndexError) as e:
            print(f"protein {task} seed {seed} (parallel {parallel}): {type(e).__name__}", file=sys.stderr)
            return None

    # Seed-major (as ``histories`` lists them), so that a deadline leaves every task with its first seeds
    # rather than one task with all.
    with ThreadPoolExecutor(max_workers=args.protein_jobs) as pool:
        done = list(pool.map(lambda run: one(*run), runs))
    return [d for d in done if d is not None]


def fmt_cost(values: list[float], n: int) -> str:
    med = float(np.median(values)) if values else math.inf
    reached = sum(math.isfinite(v) for v in values)
    cell = "—" if not math.isfinite(med) else f"{med / 1e6:.2f}M"
    return f"{cell} ({reached}/{n})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 seeds, 24 trials, no Protein")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--trials", type=int, default=48)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument(
        "--methods", nargs="+", default=["ours", "random", "tpe", "protein"], choices=list(METHODS)
    )
    ap.add_argument("--parallel", nargs="+", type=int, default=[1, 8])
    ap.add_argument(
        "--ours-options", type=json.loads, default={}, help='ParetoSearch options, e.g. {"explore": 1}'
    )
    ap.add_argument("--protein-python", default="/tmp/pufvenv/bin/python")
    ap.add_argument("--protein-jobs", type=int, default=1, help="Protein worker processes at once")
    ap.add_argument(
        "--protein-budget-s", type=float, default=600.0, help="wall-clock cap for all Protein runs"
    )
    ap.add_argument(
        "--save",
        type=Path,
        help="keep each run's history here as JSON and reuse those found (one folder per method version)",
    )
    ap.add_argument("--no-latency", action="store_true", help="skip the suggest timing at 500 observations")
    ap.add_argument("--worker", choices=list(METHODS), help=argparse.SUPPRESS)
    ap.add_argument("--task", choices=TASKS, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        history = run(args.worker, args.task, args.seed, args.trials, args.parallel[0])
        print(json.dumps(history))
        return
    if args.quick:
        args.seeds, args.trials = 2, 24
        args.methods = [m for m in args.methods if m != "protein"]

    rows = []
    for parallel in args.parallel:
        for method in args.methods:
            t0 = time.time()
            done = histories(args, method, parallel)
            for task in args.tasks:
                ms = [metrics(h) for t, _, h in done if t == task]
                if not ms:
                    continue
                rows.append(
                    {
                        "task": task,
                        "parallel": parallel,
                        "method": method,
                        "n": len(ms),
                        "cost": fmt_cost([m["cost_to_target"] for m in ms], len(ms)),
                        "auc": float(np.mean([m["auc"] for m in ms])),
                        "best": float(np.median([m["best"] for m in ms])),
                        "best_10m": float(np.median([m["best_10m"] for m in ms])),
                        "front": float(np.mean([m["front"] for m in ms])),
                        "dups": float(np.mean([m["dups"] for m in ms])),
                        "latency": float(np.median([m["latency"] for m in ms])),
                    }
                )
            print(f"# {method} parallel={parallel}: {time.time() - t0:.0f}s", file=sys.stderr, flush=True)

    lat500 = {
        m: latency_at(m, args.ours_options if m == "ours" else {})
        for m in args.methods
        if m != "protein" and not args.no_latency
    }
    print(f"\n{args.seeds} seeds, {args.trials} trials per run; cost: median cumulative cost to 95% of max")
    print("(runs reaching it / runs)\n")
    cols = [
        "task",
        "par",
        "method",
        "seeds",
        "cost to 95%",
        "AUC",
        "median best",
        "best at 10M",
        "front",
        "dup frac",
        "suggest med (s)",
    ]
    print("| " + " | ".join([*cols, "@500 obs (s)"]) + " |")
    print("|" + "---|" * (len(cols) + 1))
    for r in sorted(rows, key=lambda r: (TASKS.index(r["task"]), r["parallel"])):
        l500 = f"{lat500[r['method']]:.3f}" if r["method"] in lat500 else "n/m"
        print(
            f"| {r['task']} | {r['parallel']} | {r['method']} | {r['n']} | {r['cost']} | {r['auc']:.3f} | "
            f"{r['best']:.3f} | {r['best_10m']:.3f} | {r['front']:.3f} | {r['dups']:.3f} | "
            f"{r['latency']:.3f} | {l500} |"
        )


if __name__ == "__main__":
    main()
