"""Train one environment with its configs/<env>.toml defaults under a wall-clock cap, logging every metric
row as a JSON line, and print PufferLib-style figures: steady-state SPS and the first uptime at which the
training-time perf reaches a threshold.

    python bench/gpu_train.py ENV WALL_S OUT.jsonl [--threshold 0.9] [--seed 1] [--set train.device=cuda ...]

The numbers are read the way /work/shared/anchors/pufferlib3/analyze.py reads PufferLib's logs: steady SPS
is the median of the per-log SPS after 20% of the final steps, the last record excluded. Rows come four
times a second, so a time to threshold is known to a quarter of a second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

T_PROC = time.time()

from services.common.config import resolve  # noqa: E402
from services.trainer.loop import Interrupt, train  # noqa: E402


class JsonSink:
    def __init__(self, path: Path, wall: float):
        self.file = path.open("w")
        self.wall = wall
        self.started = time.perf_counter()
        self.rows: list[dict[str, float]] = []

    def metrics(self, step: int, values: dict[str, float]) -> None:
        row = {**values, "t_proc": time.time() - T_PROC}
        self.rows.append(row)
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()

    def checkpoint(self, step: int, stem: Path, size_bytes: int, meta: dict[str, Any]) -> None:
        pass

    def interrupt(self) -> Interrupt:
        return "cancel" if time.perf_counter() - self.started > self.wall else None


def summarise(env: str, rows: list[dict[str, float]], threshold: float) -> dict[str, Any]:
    train_rows = [r for r in rows if "SPS" in r]
    total = train_rows[-1]["agent_steps"] if train_rows else 0
    steady = [r["SPS"] for r in train_rows if r["agent_steps"] > 0.2 * total][:-1]
    first = next((r for r in train_rows if r.get("env/perf", -1) >= threshold), None)
    last = [r for r in train_rows if "env/perf" in r][-5:]
    split = {
        k: round(statistics.mean(r[k] for r in train_rows if k in r), 3)
        for k in ("performance/env", "performance/forward", "performance/copy", "performance/learn")
        if train_rows
    }
    evals = [r for r in rows if "eval/perf" in r]
    return {
        "env": env,
        "steps": int(total),
        "steady_sps": round(statistics.median(steady)) if steady else None,
        f"first_perf_{threshold}": first
        and {
            "uptime": round(first["uptime"], 2),
            "steps": int(first["agent_steps"]),
            "t_proc": round(first["t_proc"], 1),
        },
        "final5_perf": last and round(statistics.mean(r["env/perf"] for r in last), 3),
        "eval_perf": evals[-1]["eval/perf"] if evals else None,
        "split_mean": split,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("env")
    parser.add_argument("wall", type=float)
    parser.add_argument("out", type=Path)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], help="section.key=json-value")
    args = parser.parse_args()
    overrides: dict[str, dict[str, Any]] = {}
    for item in args.set:
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        overrides.setdefault(section, {})[name] = json.loads(value)
    config = resolve(args.env, overrides)
    sink = JsonSink(args.out, args.wall)
    with tempfile.TemporaryDirectory() as scratch:
        result = train(args.env, config, args.seed, Path(scratch), sink, flush_seconds=0.25)
    summary = summarise(args.env, sink.rows, args.threshold)
    summary["status"] = result.status
    sink.file.write(json.dumps({"summary": summary}) + "\n")
    print("SUMMARY " + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
