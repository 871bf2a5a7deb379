"""Trials per GPU-hour through the platform (issue 17, part 2): a sweep of short breakout trials through
`POST /sweeps`, once per trainer count, on one machine.

For each count N in --trainers, a fresh platform (`shoal up` with SHOAL_TRAIN_WORKERS=N, so N trainer
processes share the GPU; "Nmps" also sets SHOAL_GPU_MPS, so that they share it through NVIDIA MPS) runs
one sweep of --trials trials at parallelism N: five PPO parameters around
configs/breakout.toml, every trial --steps agent steps and no early stopping, so that every trial trains
as long. Per trial, from the API:
- training: the trainer's own clock at its last training row (`uptime`): the first step to the last update,
  CUDA-graph capture included;
- overhead: everything else between the moment a trial's slot came free (the previous trial in flight
  ended, or the sweep was created) and its run's end: the sweeper's tick, the queue, the claim, set-up,
  the final checkpoint and evaluation, the result written;
- trials per GPU-hour: trials over the sweep's wall clock, first trial queued to last trial ended.
GPU use is sampled from nvidia-smi every half second while the sweep runs. Then --repeat-alone trials of
the sweep are trained again one at a time on the same platform, with the same configuration and seed, and
their final scores are compared with the sweep's.

    python3 bench/trial_throughput.py --trainers 1,4 --trials 32 --out $OUT/throughput.json   # on a GPU
    .venv/bin/python bench/trial_throughput.py --device cpu --trainers 1,2 --trials 4 --steps 200000 \
        --num-envs 256 --repeat-alone 1                                                        # smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_sweep import PPO_SPACE, Platform

SWEPT = ("learning_rate", "ent_coef", "gamma", "gae_lambda", "clip_coef")
ENDED = ("succeeded", "failed", "early_stopped", "lost", "cancelled")


class Stopped(Exception):
    """SIGTERM (a device call's time limit): the count in progress reports the trials that ended."""


def _stop(*_: object) -> None:
    raise Stopped("stopped by SIGTERM")


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class GpuSampler:
    """nvidia-smi's utilization (percent of time a kernel ran) and memory in use, every half second."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, float]] = []
        self.proc: subprocess.Popen | None = None
        self.thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
        with contextlib.suppress(OSError):
            self.proc = subprocess.Popen([*query, "-lms", "500"], stdout=subprocess.PIPE, text=True)
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                util, memory = (float(x) for x in line.split(",")[:2])
                self.rows.append((util, memory))

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()

    def summary(self) -> dict[str, float | None]:
        if not self.rows:
            return {"gpu_util_mean": None, "gpu_memory_max_mib": None}
        return {
            "gpu_util_mean": round(statistics.mean(u for u, _ in self.rows), 1),
            "gpu_memory_max_mib": max(m for _, m in self.rows),
        }


def sweep_body(args: argparse.Namespace, trainers: int) -> dict[str, Any]:
    from services.common.config import env_defaults

    defaults = env_defaults("breakout")["train"]
    space = {name: {**PPO_SPACE[name], "mean": float(defaults[name]), "scale": "auto"} for name in SWEPT}
    train: dict[str, Any] = {"total_timesteps": args.steps, "device": args.device}
    if args.num_envs:
        train.update(num_envs=args.num_envs, minibatch_size=min(16384, args.num_envs * 16))
    return {
        "env": "breakout",
        "space": {"train": space},
        "hyperparameters": {"train": train},
        "metric": "perf",
        "max_runs": args.trials,
        "parallelism": trainers,
        "early_stopping": False,
        "seed": args.seed,
    }


def wait_for(platform: Platform, path: str, done: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = platform.get(path)
        if done(value):
            return value
        time.sleep(0.5)
    raise TimeoutError(f"{path} did not finish within {timeout:.0f}s")


SPLIT = ("time/setup", "time/last_checkpoint", "time/evaluation")


def trainer_seconds(platform: Platform, run_id: int) -> dict[str, float | None]:
    """The trainer's own clock: training (its last `uptime`) and the set-up, last checkpoint and evaluation
    it reports with the evaluation's row."""
    keys = ",".join(("uptime", *SPLIT))
    series = platform.get(f"/runs/{run_id}/metrics?keys={keys}&max_points=20000")["series"]
    last = {k: (series.get(k) or {}).get("max", [None])[-1] for k in ("uptime", *SPLIT)}
    return {"training": last.pop("uptime"), **{k.split("/")[1]: v for k, v in last.items()}}


def trial_rows(platform: Platform, sweep: dict[str, Any], created: float) -> list[dict[str, Any]]:
    runs = [platform.get(f"/runs/{t['run_id']}") for t in sweep["trials"] if t.get("run_id")]
    ends = sorted(seconds(r["finished_at"]) for r in runs if r.get("finished_at"))
    rows = []
    for run in runs:
        queued = seconds(run["created_at"])
        # The slot this trial took came free when the last trial to end before it was queued ended.
        freed = max([created, *(e for e in ends if e <= queued)])
        end = seconds(run["finished_at"]) if run.get("finished_at") else None
        clock = trainer_seconds(platform, run["id"])
        train = clock["training"]
        rows.append(
            {
                "run_id": run["id"],
                "status": run["status"],
                "seed": run["seed"],
                "config": {k: run["config"][k] for k in ("train", "policy", "env")},
                "final_score": run["final_score"],
                "queued": queued - created,
                "claimed": seconds(run["started_at"]) - created if run.get("started_at") else None,
                "ended": end - created if end else None,
                **clock,
                "overhead": end - freed - train if end and train is not None else None,
            }
        )
    return rows


def fresh_servers(args: argparse.Namespace, spec: str, trainers: int) -> tuple[str | None, str | None]:
    """With --postgres and --redis: a new database and an emptied Redis database for this count."""
    if not args.postgres:
        return None, None
    import psycopg
    import redis

    name = f"throughput_{spec}_{os.getpid()}"
    with psycopg.connect(args.postgres.replace("+psycopg", "") + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    broker = f"{args.redis}/{trainers % 16}"
    redis.Redis.from_url(broker).flushdb()
    return f"{args.postgres}/{name}", broker


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(args: argparse.Namespace, spec: str, scratch: Path) -> dict[str, Any]:
    trainers = int(spec.removesuffix("mps"))
    database_url, broker_url = fresh_servers(args, spec, trainers)
    env = {"SHOAL_TRAIN_WORKERS": str(trainers), "SHOAL_GPU_MPS": str(spec.endswith("mps")).lower()}
    platform = Platform(scratch / f"trainers-{spec}", env, database_url, broker_url)
    result: dict[str, Any] = {"trainers": spec, "database": (database_url or "sqlite").split(":")[0]}
    try:
        platform.start(timeout=120)
        # Every worker up (the API answers first): their start-up is the platform's, not a trial's.
        wait_for(platform, "/healthz", lambda h: h["status"] == "ok", 120)
        with GpuSampler() as gpu:
            created = time.time()
            sweep = platform.request("/sweeps", sweep_body(args, trainers))
            try:
                sweep = wait_for(
                    platform,
                    f"/sweeps/{sweep['id']}",
                    lambda s: s["status"] != "running" and all(t["status"] in ENDED for t in s["trials"]),
                    args.timeout,
                )
            except (Stopped, TimeoutError) as e:  # report the trials that ended
                result["incomplete"] = str(e) or "stopped"
                sweep = platform.get(f"/sweeps/{sweep['id']}")
        rows = trial_rows(platform, sweep, created)
        result.update(gpu.summary())
        ended = [r for r in rows if r["ended"] is not None]
        wall = max(r["ended"] for r in ended) - min(r["queued"] for r in rows)
        overheads = [r["overhead"] for r in ended if r["overhead"] is not None]
        trainings = [r["training"] for r in ended if r["training"] is not None]
        result.update(
            trials=len(rows),
            succeeded=sum(r["status"] == "succeeded" for r in rows),
            wall_seconds=round(wall, 1),
            trials_per_gpu_hour=round(len(ended) * 3600 / wall, 1),
            overhead_median=round(statistics.median(overheads), 2),
            overhead_p95=round(percentile(overheads, 0.95), 2),
            training_median=round(statistics.median(trainings), 2),
            # Inside the overhead: what the trainer spends on a run besides training, medians.
            trainer_split={
                k: round(statistics.median(v), 3)
                for k in ("setup", "last_checkpoint", "evaluation")
                if (v := [r[k] for r in ended if r.get(k) is not None])
            },
            rows=rows,
        )
        alone = []
        repeats = 0 if "incomplete" in result else args.repeat_alone
        for row in [r for r in rows if r["status"] == "succeeded"][:repeats]:
            run = platform.request(
                "/runs", {"env": "breakout", "hyperparameters": row["config"], "seed": row["seed"]}
            )
            run = wait_for(platform, f"/runs/{run['id']}", lambda r: r["status"] in ENDED, args.timeout)
            alone.append({"run_id": row["run_id"], "sweep": row["final_score"], "alone": run["final_score"]})
        result["alone"] = alone
    finally:
        platform.stop()
    return result


def report(results: list[dict[str, Any]]) -> str:
    lines = [
        "| trainers | trials | wall s | trials per GPU-hour | overhead median / p95 s | training median s "
        "| in the overhead: set-up / last checkpoint / evaluation s | GPU util % | GPU memory MiB "
        "| alone = sweep | database |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "trials" not in r:
            lines.append(f"| {r['trainers']} | failed: {r.get('error')} |")
            continue
        same = sum(a["alone"] == a["sweep"] for a in r["alone"])
        note = f" ({r['incomplete']})" if "incomplete" in r else ""
        lines.append(
            f"| {r['trainers']} | {r['succeeded']}/{r['trials']} | {r['wall_seconds']} | "
            f"{r['trials_per_gpu_hour']} | {r['overhead_median']} / {r['overhead_p95']} | "
            f"{r['training_median']} | {' / '.join(str(v) for v in r['trainer_split'].values()) or '-'} | "
            f"{r['gpu_util_mean']} | {r['gpu_memory_max_mib']} | "
            f"{same}/{len(r['alone'])} | {r['database']}{note} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--trainers",
        default="1,4",
        help="trainer processes per run of the bench, e.g. 1,4,4mps (4 through MPS)",
    )
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--steps", type=float, default=60e6, help="agent steps per trial")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--num-envs", type=int, default=0, help="override the config's (0: keep it)")
    parser.add_argument("--repeat-alone", type=int, default=4, help="trials trained again one at a time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=900, help="seconds one sweep may take")
    parser.add_argument("--postgres", help="a PostgreSQL server, postgresql+psycopg://user@host:port")
    parser.add_argument("--redis", help="a Redis server for the broker, redis://host:port (with --postgres)")
    parser.add_argument("--scratch", type=Path, help="keep the platforms' files (logs, databases) here")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.steps = int(args.steps)
    signal.signal(signal.SIGTERM, _stop)
    results = []
    with contextlib.ExitStack() as stack:
        scratch = args.scratch or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="shoal-tt-")))
        for trainers in args.trainers.split(","):
            try:
                results.append(measure(args, trainers, scratch))
            except Exception as e:  # one count that breaks still lets the others report
                detail = e.read().decode(errors="replace") if isinstance(e, urllib.error.HTTPError) else ""
                results.append({"trainers": trainers, "error": f"{type(e).__name__}: {e} {detail}"})
            print(report(results[-1:]).splitlines()[-1], flush=True)
            if args.out:
                args.out.write_text(json.dumps(results, indent=1))
            if "incomplete" in results[-1] or "Stopped" in results[-1].get("error", ""):
                break
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
