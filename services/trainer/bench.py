"""`shoal bench train`: train every environment with its defaults and put them all on one 0..1 plot.

Each environment trains under a wall-clock budget. The curve is the training-time perf (episodes finished
in each logging window), as PufferLib reports it; "solved" is the first uptime at which that curve reaches
the environment's threshold. The clean end-of-training evaluation is reported beside it: a run still
training when its budget runs out stops there and is evaluated as it stands (a cancelled run used to
report no evaluation at all, which read as an evaluation that counted nothing).
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import envs_c
from services.common.config import resolve
from services.trainer.loop import Interrupt, train


@dataclass
class CurveSink:
    budget_seconds: float
    started: float = field(default_factory=time.perf_counter)
    points: list[tuple[float, float, float, float]] = field(default_factory=list)  # uptime, steps, perf, sps

    def metrics(self, step: int, values: dict[str, float]) -> None:
        if "env/perf" in values:
            self.points.append((values["uptime"], float(step), values["env/perf"], values["SPS"]))

    def checkpoint(self, step: int, stem: Path, size_bytes: int, meta: dict[str, Any]) -> None:
        pass

    def interrupt(self) -> Interrupt:
        return "stop" if time.perf_counter() - self.started > self.budget_seconds else None


@dataclass
class EnvResult:
    env: str
    solved_threshold: float
    seconds_to_solved: float | None
    steps_to_solved: float | None
    final_perf: float | None
    steps: int
    seconds: float
    median_sps: float
    curve: list[tuple[float, float, float, float]]


def run_env(
    env: str, seed: int, budget_seconds: float, out_dir: Path, overrides: dict | None = None
) -> EnvResult:
    config = resolve(env, overrides or {})
    threshold = envs_c.make_spec(env, **config.env).solved
    sink = CurveSink(budget_seconds)
    # Rows four times a second: GPU runs solve in a few seconds, and a row per second would round
    # every time-to-solved up by as much as a second.
    result = train(env, config, seed, out_dir / f"{env}-{seed}", sink, flush_seconds=0.25)
    solved = next(((t, s) for t, s, perf, _ in sink.points if perf >= threshold), (None, None))
    rates = sorted(p[3] for p in sink.points[1:]) or [0.0]
    return EnvResult(
        env,
        threshold,
        solved[0],
        solved[1],
        result.final_score,
        result.steps,
        result.seconds,
        rates[len(rates) // 2],
        sink.points,
    )


def write_outputs(results: list[EnvResult], budget_seconds: float, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "bench_train_curves.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["env", "uptime", "agent_steps", "perf", "sps"])
        for r in results:
            writer.writerows([r.env, *point] for point in r.curve)
    with (out / "bench_train.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "env",
                "solved_threshold",
                "seconds_to_solved",
                "steps_to_solved",
                "final_eval_perf",
                "steps",
                "seconds",
                "median_sps",
            ]
        )
        for r in results:
            writer.writerow(
                [
                    r.env,
                    r.solved_threshold,
                    _fmt(r.seconds_to_solved),
                    _fmt(r.steps_to_solved),
                    _fmt(r.final_perf),
                    r.steps,
                    f"{r.seconds:.1f}",
                    f"{r.median_sps:.0f}",
                ]
            )
    _figure(results, budget_seconds, out / "bench_train.png")


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _figure(results: list[EnvResult], budget_seconds: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (per_env, combined) = plt.subplots(1, 2, figsize=(13, 4.8))
    for r in results:
        if r.curve:
            steps = [p[1] for p in r.curve]
            per_env.plot(steps, [p[2] for p in r.curve], label=r.env)
    per_env.set(
        xscale="log", ylim=(0, 1.02), xlabel="agent steps", ylabel="perf (0..1)", title="every environment"
    )
    per_env.legend(fontsize=8)
    grid = np.linspace(0, 1, 101)
    curves = []
    for r in results:
        if r.curve:
            fractions = np.array([p[0] for p in r.curve]) / budget_seconds
            perf = np.array([p[2] for p in r.curve])
            # Carry the last value forward: an environment that finished early keeps its final perf.
            index = np.searchsorted(fractions, grid, side="right") - 1
            curves.append(np.where(index >= 0, perf[np.clip(index, 0, None)], 0.0))
    if curves:
        combined.plot(grid, np.mean(curves, axis=0), color="black")
    combined.set(
        ylim=(0, 1.02),
        xlabel="fraction of the time budget",
        ylabel="mean perf",
        title=f"all {len(curves)} environments combined",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(results: list[EnvResult]) -> str:
    lines = [
        "| env | solved at | time to solved (s) | steps to solved | final eval perf | median SPS |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.env} | {r.solved_threshold} | {_fmt(r.seconds_to_solved) or 'not solved'} | "
            f"{_fmt(r.steps_to_solved) or '-'} | {_fmt(r.final_perf) or '-'} | {r.median_sps:,.0f} |"
        )
    return "\n".join(lines)
