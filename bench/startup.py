"""Seconds from the command to a solved policy, and where they go (issue 17, part 1).

Each repeat is a fresh Python process that does what `shoal train ENV` does, in the CLI's order, with a
clock mark between the phases: interpreter start, the CLI's imports, the configuration, torch, the trainer's
imports, loading the compiled environment (a cache hit: this script builds it first), the CUDA context, the
trainer's set-up (environments, policy, optimizer, buffers), the first environment step, CUDA-graph warm-up
and capture, then training until the training-window perf reaches the threshold. The run stops there, so
it ends with no checkpoint or evaluation. Wall times count from just before the child process is spawned,
as a stopwatch would. The phases do not overlap and sum to the total.

    python3 bench/startup.py --device cpu --env breakout --repeats 3 --max-train-seconds 20
    python3 bench/startup.py --device cuda --env pong --repeats 3 --json out.json

Trainer phases are timed by wrapping the trainer's own methods in the child, so the code timed is the
code `shoal train` runs; rows are flushed every `--flush-seconds` (0.25, as `shoal bench train` does:
the CLI's 1 s would round the time to solved up by as much as a second).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# The phases in order; each is the time from the previous mark to its own.
PHASES = (
    ("interpreter", "interpreter start"),
    ("import_cli", "import services.cli"),
    ("config", "configuration (registry, pydantic)"),
    ("import_torch", "import torch"),
    ("import_trainer", "import trainer (loop, policy, ...)"),
    ("extension", "load compiled environment (cache hit)"),
    ("cuda_context", "CUDA context"),
    ("environments", "allocate: environments"),
    ("policy", "allocate: policy, spec, seed"),
    ("optimizer", "allocate: optimizer"),
    ("buffers", "allocate: rollout buffers, first reset"),
    ("first_step", "first step (first act + env step)"),
    ("graph_warmup", "CUDA-graph warm-up (eager calls)"),
    ("graph_capture", "CUDA-graph capture"),
    ("training", "training to the threshold"),
)


# --- the child: one cold `shoal train`, timed --------------------------------------------------------------


def child(args: argparse.Namespace) -> dict[str, Any]:
    spawned = args.spawned_at
    marks: dict[str, float] = {"interpreter": time.monotonic()}
    sys.path.insert(0, str(ROOT))
    import services.cli  # noqa: F401  (the entry point's own imports)

    marks["import_cli"] = time.monotonic()
    from services.common.config import resolve

    overrides: dict[str, Any] = {"train": {"device": args.device}}
    if args.total_timesteps:
        overrides["train"]["total_timesteps"] = args.total_timesteps
    config = resolve(args.env, overrides)
    marks["config"] = time.monotonic()
    import torch

    marks["import_torch"] = time.monotonic()
    from envs_c import build
    from envs_c.vector import VecEnv
    from services.trainer import loop
    from services.trainer.graphs import Graphed

    marks["import_trainer"] = time.monotonic()
    build.load(args.env)
    marks["extension"] = time.monotonic()

    spans: dict[str, float] = {}  # seconds inside each wrapped trainer method
    graph_calls: list[tuple[str, float, float]] = []  # (warmup | capture, start, end) before capture
    first_step_end: list[float] = []

    def timed(owner: Any, name: str, label: str) -> None:
        real = getattr(owner, name)

        def wrapper(*a: Any, **k: Any) -> Any:
            tick = time.monotonic()
            try:
                return real(*a, **k)
            finally:
                spans[label] = spans.get(label, 0.0) + time.monotonic() - tick

        setattr(owner, name, wrapper)

    timed(loop.Trainer, "_start_cuda", "cuda_context")
    timed(loop.Trainer, "_open_env", "environments")
    timed(loop, "make_optimizer", "optimizer")
    timed(loop.Trainer, "_allocate", "buffers")
    real_init, real_call, real_step = loop.Trainer.__init__, Graphed.__call__, VecEnv.step

    def init(self: Any, *a: Any, **k: Any) -> None:
        real_init(self, *a, **k)
        marks["ready"] = time.monotonic()

    def call(self: Graphed) -> Any:
        if not self.enabled or self.graph is not None:
            return real_call(self)
        kind = "capture" if self.calls >= self.warmup else "warmup"
        tick = time.monotonic()
        out = real_call(self)
        graph_calls.append((kind, tick, time.monotonic()))
        return out

    def step(self: VecEnv, *a: Any, **k: Any) -> Any:
        out = real_step(self, *a, **k)
        if not first_step_end:
            first_step_end.append(time.monotonic())
        return out

    loop.Trainer.__init__, Graphed.__call__, VecEnv.step = init, call, step

    sink = StopAtThreshold(args.threshold, args.max_train_seconds)
    with tempfile.TemporaryDirectory(prefix="shoal-startup-") as out:
        loop.train(args.env, config, args.seed, Path(out), sink, flush_seconds=args.flush_seconds)
    end = sink.solved_at or time.monotonic()

    phases = {key: marks[key] - prev for key, prev in _pairs(spawned, marks)}
    inside = ("cuda_context", "environments", "optimizer", "buffers")  # timed within Trainer.__init__
    for key in inside:
        phases[key] = spans.get(key, 0.0)
    # The rest of the set-up: the spec, the policy and its move to the device, the seed, the threads.
    phases["policy"] = marks["ready"] - marks["extension"] - sum(phases[k] for k in inside)
    stepped = first_step_end[0] if first_step_end else end
    phases["first_step"] = stepped - marks["ready"]
    # Calls before the first step ends are part of it (the acting step's first, eager call).
    phases["graph_warmup"] = sum(e - s for kind, s, e in graph_calls if kind == "warmup" and s >= stepped)
    phases["graph_capture"] = sum(e - s for kind, s, e in graph_calls if kind == "capture")
    phases["training"] = end - stepped - phases["graph_warmup"] - phases["graph_capture"]
    return {
        "env": args.env,
        "device": args.device,
        "phases": phases,
        "total": end - spawned,
        "solved": sink.solved_at is not None,
        "perf": sink.perf,
        "steps": sink.steps,
        "sps": sink.sps,
        "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
    }


def _pairs(spawned: float, marks: dict[str, float]) -> list[tuple[str, float]]:
    """Each early phase with the mark before it."""
    order = ["interpreter", "import_cli", "config", "import_torch", "import_trainer", "extension"]
    return [(key, spawned if i == 0 else marks[order[i - 1]]) for i, key in enumerate(order)]


class StopAtThreshold:
    """A sink that notes when the training-window perf first reaches `threshold`, then stops the run;
    it also stops after `max_seconds` of training (a CPU does not solve breakout in minutes), counted from
    the loop's first question, so a slow start-up still gets its training time."""

    def __init__(self, threshold: float, max_seconds: float):
        self.threshold, self.max_seconds = threshold, max_seconds
        self.started: float | None = None
        self.solved_at: float | None = None
        self.perf, self.steps, self.sps = 0.0, 0, 0.0

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.steps, self.sps = step, values.get("SPS", self.sps)
        if "env/perf" in values:  # rows where no episode ended carry no perf
            self.perf = values["env/perf"]
            if self.perf >= self.threshold and self.solved_at is None:
                self.solved_at = time.monotonic()

    def checkpoint(self, step: int, stem: Path, size_bytes: int, meta: dict[str, Any]) -> None:
        pass

    def interrupt(self) -> str | None:
        now = time.monotonic()
        self.started = self.started or now
        done = self.solved_at is not None or now - self.started > self.max_seconds
        return "cancel" if done else None


# --- the parent: repeats, medians, the table ----------------------------------------------------------------


def run_once(args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *_child_args(args)]
    spawned = time.monotonic()
    proc = subprocess.run(
        [*cmd, "--spawned-at", repr(spawned)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _child_args(args: argparse.Namespace) -> list[str]:
    out = ["--env", args.env, "--device", args.device, "--seed", str(args.seed)]
    out += ["--threshold", str(args.threshold), "--max-train-seconds", str(args.max_train_seconds)]
    out += ["--flush-seconds", str(args.flush_seconds), "--total-timesteps", str(args.total_timesteps)]
    return out


def table(runs: list[dict[str, Any]]) -> str:
    """Markdown: one row per phase with each repeat and the median; the total last."""
    head = "| phase | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " | median |"
    lines = [head, "|---" * (len(runs) + 2) + "|"]
    for key, label in PHASES:
        values = [r["phases"][key] for r in runs]
        cells = " | ".join(f"{v:.3f}" for v in values)
        lines.append(f"| {label} | {cells} | {statistics.median(values):.3f} |")
    totals = [r["total"] for r in runs]
    lines.append(
        "| **total, process start to threshold** | "
        + " | ".join(f"{r['total']:.2f}" + ("" if r["solved"] else " (not reached)") for r in runs)
        + f" | **{statistics.median(totals):.2f}** |"
    )
    start_up = [r["total"] - r["phases"]["training"] for r in runs]
    lines.append(
        "| start-up (all but training) | "
        + " | ".join(f"{s:.2f}" for s in start_up)
        + f" | {statistics.median(start_up):.2f} |"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="breakout")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threshold", type=float, default=0.9, help="training-window perf taken as solved")
    parser.add_argument("--max-train-seconds", type=float, default=60.0, help="stop training after this long")
    parser.add_argument("--flush-seconds", type=float, default=0.25, help="metric rows this often")
    parser.add_argument("--total-timesteps", type=int, default=0, help="override the config's (0: keep it)")
    parser.add_argument("--json", type=Path, help="also write every repeat here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--spawned-at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return 0

    sys.path.insert(0, str(ROOT))
    from envs_c import build

    build.load(args.env)  # compiled once here, so every child times a cache hit
    # One untimed import of torch first, so the first child does not pay for a cold page cache alone.
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    runs = []
    for i in range(args.repeats):
        runs.append(run_once(args))
        r = runs[-1]
        print(
            f"run {i + 1}: {r['total']:.2f} s to perf {r['perf']:.3f} "
            f"({'solved' if r['solved'] else 'not reached'}), {r['steps']:,} steps, {r['sps']:,.0f} SPS",
            flush=True,
        )
    gpu = runs[0]["gpu"]
    # The load average says how far other work on the machine inflates the figures.
    host = f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    print(f"\n{args.env} on {args.device}{f' ({gpu})' if gpu else ''}, {host}, threshold {args.threshold}\n")
    print(table(runs))
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
