"""A real sweep on one GPU: shoal's own platform against PufferLib 3.0's Protein, same space, same budget.

Issue 14 part 4. Both methods tune breakout (configs/breakout.toml) over the same space, `total_timesteps`
and seven PPO parameters, each centred on the config, for the same budget of training seconds (the
trainer's own clock, `cost_seconds`: the training loop, the last checkpoint and the final evaluation; not
process start-up or the queues), one trial at a time, on the same machine:

- **ours**: the platform as `shoal up` starts it (embedded: SQLite + the SQLAlchemy broker, in a scratch
  directory), API, train worker and sweeper worker; the sweep is a `POST /sweeps`, followed through
  `GET /sweeps/{id}`. With the sweep's `budget` field (cost units) the sweeper stops by itself; without it
  (older API: 422 on `budget`) the sweep gets `max_runs` and is stopped from here once the budget is spent.
- **protein**: `pufferlib.sweep.Protein` as shipped, in its own process (PufferLib wants gymnasium 0.29,
  shoal 1.x), asked for one configuration at a time; each is trained in this process by the same trainer
  the worker runs (`services.trainer.loop.train`), and its final eval perf and cost are observed back.
  Its `max_suggestion_cost` is the budget left; a suggestion predicted not to fit ends the sweep.

The same hard rule holds for both: a trial still training when the budget is spent is cut there (its
partial cost counts, it has no score). Every trial is written to --out as it finishes (JSON), and the
tables are printed at the end, also after a timeout or a signal.

    python3 bench/gpu_sweep.py --budget 180 --out $OUT/gpu_sweep.json         # on the device
    .venv/bin/python bench/gpu_sweep.py --small --device cpu --budget 30       # a CPU smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ENV = "breakout"
THRESHOLD = 0.9
FINISHED = ("succeeded", "failed", "early_stopped", "lost", "cancelled")

# Bounds around configs/breakout.toml; the means are the config's values (filled in by space()), except
# total_timesteps, whose centre is below the config's 60M so that the first trials are cheap.
PPO_SPACE: dict[str, dict[str, Any]] = {
    "learning_rate": {"distribution": "log_normal", "min": 3e-4, "max": 3e-2},
    "ent_coef": {"distribution": "log_normal", "min": 1e-4, "max": 3e-2},
    "gamma": {"distribution": "logit_normal", "min": 0.95, "max": 0.9995},
    "gae_lambda": {"distribution": "logit_normal", "min": 0.8, "max": 0.99},
    "clip_coef": {"distribution": "uniform", "min": 0.05, "max": 0.5},
    "vf_coef": {"distribution": "uniform", "min": 0.25, "max": 2.0},
    "update_epochs": {"distribution": "int_uniform", "min": 1, "max": 4},
    "minibatch_size": {"distribution": "uniform_pow2", "min": 4096, "max": 65536},
}


def space(args: argparse.Namespace) -> dict[str, Any]:
    """The shared space, every parameter with an explicit mean (Protein needs one) and scale auto.

    --centre config: the means are configs/breakout.toml's, a config that solves breakout by itself (both
    methods then solve it with their first trial). --centre generic: the trainer's generic defaults
    (TrainConfig's fields, no tuning for breakout), so the search has to find a solving config."""
    from services.common.config import TrainConfig, env_defaults

    if args.centre == "config":
        defaults = env_defaults(ENV)["train"]
    else:
        defaults = {name: field.default for name, field in TrainConfig.model_fields.items()}
    train: dict[str, Any] = {
        "total_timesteps": {
            "distribution": "log_normal",
            "min": args.steps_min,
            "max": args.steps_max,
            "mean": args.steps_mean,
        }
    }
    for name, spec in PPO_SPACE.items():
        spec = dict(spec)
        if args.small and name == "minibatch_size":
            spec.update(min=1024, max=16384)
        mean = float(defaults[name])
        spec["mean"] = min(max(mean, spec["min"]), spec["max"])
        train[name] = spec
    for spec in train.values():
        spec["scale"] = "auto"
    return {"train": train}


def fixed(args: argparse.Namespace) -> dict[str, Any]:
    """Hyperparameters every trial of both methods shares (the sweep's `hyperparameters`)."""
    train: dict[str, Any] = {"device": args.device}
    if args.small:  # a CPU smoke test: a few hundred agents, one update thread
        train.update(num_envs=256, num_threads=1, eval_episodes=16)
    return {"train": train}


# ---- shared bookkeeping -------------------------------------------------------------------------------


class Recorder:
    """Every trial of every method, written to JSON after each change, so a timeout loses nothing."""

    def __init__(self, path: Path, meta: dict[str, Any]):
        self.path = path
        self.data: dict[str, Any] = {"meta": meta, "methods": {}}

    def method(self, name: str) -> dict[str, Any]:
        return self.data["methods"].setdefault(name, {"trials": [], "notes": []})

    def note(self, name: str, text: str) -> None:
        log(f"[{name}] {text}")
        self.method(name)["notes"].append(text)
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        tmp.replace(self.path)


T0 = time.monotonic()


def log(text: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {text}", flush=True)


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Non-dominated (cost, perf) points, cheapest first: each costs more and scores higher than the last."""
    front: list[tuple[float, float]] = []
    for cost, perf in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or perf > front[-1][1]:
            front.append((cost, perf))
    return front


def summarize(method: dict[str, Any], budget: float) -> dict[str, Any]:
    trials = method["trials"]
    scored = [t for t in trials if t.get("eval_perf") is not None]
    first = next((t for t in trials if (t.get("eval_perf") or 0.0) >= THRESHOLD), None)
    used = sum(t.get("cost_seconds") or 0.0 for t in trials)
    statuses: dict[str, int] = {}
    for t in trials:
        statuses[t["status"]] = statuses.get(t["status"], 0) + 1
    best = max(scored, key=lambda t: t["eval_perf"], default=None)
    return {
        "best_eval_perf": best["eval_perf"] if best else None,
        "best_trial": best["number"] if best else None,
        "best_params": best["params"] if best else None,
        "gpu_s_to_threshold": first["cumulative_cost"] if first else None,
        "trials": len(trials),
        "statuses": statuses,
        "budget_used": used,
        "budget": budget,
        "front": pareto([(t["cost_seconds"], t["eval_perf"]) for t in scored if t.get("cost_seconds")]),
        "wall_seconds": method.get("wall_seconds"),
        "suggest_median_s": method.get("suggest_median_s"),
    }


def tables(rec: Recorder) -> str:
    budget = rec.data["meta"]["budget"]
    summaries = {name: summarize(m, budget) for name, m in rec.data["methods"].items()}
    out = [
        f"\n### breakout sweep, {budget:g} s of training per method ({rec.data['meta']['device']})\n",
        f"| method | best final eval perf | GPU s to first eval ≥ {THRESHOLD} | trials (by status) "
        "| budget used (s) | wall (s) | suggest median (s) |",
        "|---|---|---|---|---|---|---|",
    ]

    def fmt(v: Any, spec: str = ".3f") -> str:
        return "-" if v is None else format(v, spec)

    for name, s in summaries.items():
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(s["statuses"].items()))
        out.append(
            f"| {name} | {fmt(s['best_eval_perf'])} (trial {s['best_trial']}) | "
            f"{fmt(s['gpu_s_to_threshold'], '.1f')} | {s['trials']} ({statuses}) | "
            f"{s['budget_used']:.1f} / {budget:g} | {fmt(s['wall_seconds'], '.0f')} | "
            f"{fmt(s['suggest_median_s'], '.2f')} |"
        )
    for name, s in summaries.items():
        front = ", ".join(f"({c:.1f} s, {p:.3f})" for c, p in s["front"])
        out.append(f"\n**{name}** cost/perf Pareto front: {front or '-'}")
        if s["best_params"]:
            out.append(f"best params: {json.dumps(s['best_params'])}")
    for name, m in rec.data["methods"].items():
        out.append(f"\n**{name}** trials (cumulative s at the end of each):\n")
        out.append(
            "| # | status | steps | cost s | cum s | eval perf | lr | ent | gamma | lambda | clip | vf "
            "| epochs | minibatch |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for t in m["trials"]:
            p = t["params"].get("train", {})
            out.append(
                f"| {t['number']} | {t['status']} | {p.get('total_timesteps', 0) / 1e6:.2f}M | "
                f"{fmt(t.get('cost_seconds'), '.2f')} | {fmt(t.get('cumulative_cost'), '.1f')} | "
                f"{fmt(t.get('eval_perf'))} | {fmt(p.get('learning_rate'), '.2e')} | "
                f"{fmt(p.get('ent_coef'), '.1e')} | {fmt(p.get('gamma'), '.4f')} | "
                f"{fmt(p.get('gae_lambda'), '.3f')} | {fmt(p.get('clip_coef'), '.2f')} | "
                f"{fmt(p.get('vf_coef'), '.2f')} | {p.get('update_epochs')} | {p.get('minibatch_size')} |"
            )
    return "\n".join(out)


# ---- ours: the platform -------------------------------------------------------------------------------


class Platform:
    """`shoal up` of this checkout in a scratch directory, on a free loopback port, in its own process group
    (killed whole at the end); on the embedded SQLite database and broker unless given the URLs of others.
    `env` is added to this process's environment."""

    def __init__(
        self,
        home: Path,
        env: dict[str, str] | None = None,
        database_url: str | None = None,
        broker_url: str | None = None,
    ):
        self.home = home
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.base = f"http://127.0.0.1:{s.getsockname()[1]}"
        self.token = secrets.token_urlsafe(24)
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        self.env = {
            **os.environ,
            **(env or {}),
            "PYTHONPATH": path,
            "SHOAL_API_TOKEN": self.token,
            "SHOAL_DATABASE_URL": database_url or f"sqlite:///{home / 'shoal.db'}",
            "SHOAL_BROKER_URL": broker_url or f"sqla+sqlite:///{home / 'broker.db'}",
            "SHOAL_ARTIFACTS": str(home / "artifacts"),
            "PYTHONUNBUFFERED": "1",
        }
        self.log_path = home / "platform.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "services.cli", "up", "--port", self.base.rsplit(":", 1)[1]]
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.home,
            env=self.env,
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"shoal up exited with {self.proc.returncode}; see {self.log_path}")
            with contextlib.suppress(OSError, ValueError):
                if "shoal is up" in self.log_path.read_text():
                    return
            time.sleep(0.5)
        raise RuntimeError(f"shoal up was not healthy within {timeout:.0f}s; see {self.log_path}")

    def request(self, path: str, body: dict | None = None, timeout: float = 15) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method="POST" if data else "GET")
        req.add_header("Content-Type", "application/json")
        req.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return json.loads(response.read())

    def get(self, path: str) -> Any:
        return self.request(path)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # shoal up and its workers; they checkpoint and go
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever of the group is left
        self.proc = None


def run_ours(args: argparse.Namespace, rec: Recorder, wall_cap: float) -> None:
    m = rec.method("ours")
    started = time.monotonic()
    deadline = started + wall_cap
    home = Path(tempfile.mkdtemp(prefix="shoal-sweep-", dir=args.scratch))
    platform = Platform(home)
    m["platform_log"] = str(platform.log_path)
    try:
        platform.start(timeout=min(120.0, wall_cap))
        rec.note("ours", f"platform up in {time.monotonic() - started:.1f}s ({home})")
        body = {
            "env": ENV,
            "space": space(args),
            "hyperparameters": fixed(args),
            "metric": "perf",
            "goal": "maximize",
            "max_runs": args.max_runs,
            "parallelism": 1,
            "cost_unit": "seconds",
            "seed": args.seed,
            "budget": args.budget,
        }
        m["request"] = body
        try:
            sweep = platform.request("/sweeps", body)
            m["budget_field"] = True
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            if e.code != 422 or "budget" not in detail:
                raise RuntimeError(f"POST /sweeps: {e.code} {detail}") from None
            rec.note("ours", f"the API has no sweep budget yet ({detail[:200]}); max_runs + a stop from here")
            body.pop("budget")
            sweep = platform.request("/sweeps", body)
            m["budget_field"] = False
        sweep_id = sweep["id"]
        m["sweep_id"] = sweep_id
        m["space_centred"] = sweep["space"]
        rec.note("ours", f"sweep {sweep_id} created")
        follow_ours(args, rec, platform, sweep_id, deadline)
    except Exception as e:  # a broken platform still reports what it had
        rec.note("ours", f"error: {type(e).__name__}: {e}")
    finally:
        m["wall_seconds"] = time.monotonic() - started
        with contextlib.suppress(Exception):
            m["sweep"] = platform.get(f"/sweeps/{m['sweep_id']}") if "sweep_id" in m else None
        platform.stop()
        rec.save()


def follow_ours(
    args: argparse.Namespace, rec: Recorder, platform: Platform, sweep_id: int, deadline: float
) -> None:
    m = rec.method("ours")
    seen: dict[int, dict[str, Any]] = {}  # trial id -> its record, once finished
    cancelled: set[int] = set()  # runs cancelled here
    stopping = False
    phase_start = time.monotonic()
    while True:
        try:
            sweep = platform.get(f"/sweeps/{sweep_id}")
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            log(f"[ours] GET /sweeps/{sweep_id}: {e}; retrying")
            if time.monotonic() > deadline + 30:
                raise
            time.sleep(1.0)
            continue
        trials = sorted(sweep["trials"], key=lambda t: t["number"])
        for t in trials:
            if t["status"] in FINISHED and t["id"] not in seen:
                seen[t["id"]] = record_ours_trial(platform, t, time.monotonic() - phase_start)
                m["trials"] = sorted(seen.values(), key=lambda r: r["number"])
                _cumulate(m["trials"])
                last = seen[t["id"]]
                log(
                    f"[ours] trial {last['number']} {last['status']}: {last['steps'] / 1e6:.2f}M steps, "
                    f"{last['cost_seconds'] or 0:.2f}s, eval {last['eval_perf']}, "
                    f"spent {last['cumulative_cost']:.1f}/{args.budget:g}s"
                )
                rec.save()
        if sweep["status"] != "running":
            # A stop cancels the trial in flight; wait for its run to end so that its cost is counted. A
            # trial left "running" in an ended sweep (a tick that raced the stop: seen on SQLite) has its
            # run cancelled here, and is recorded from the run.
            pending = [t for t in trials if t["id"] not in seen]
            for t in pending:
                if t["run_id"] is None:
                    continue
                run = _get_quiet(platform, f"/runs/{t['run_id']}")
                if run.get("status") in RUN_ENDED:
                    seen[t["id"]] = record_ours_trial(
                        platform, {**t, "status": f"orphan-{run['status']}"}, time.monotonic() - phase_start
                    )
                    m["trials"] = sorted(seen.values(), key=lambda r: r["number"])
                    _cumulate(m["trials"])
                    rec.note(
                        "ours", f"trial {t['number']} was started after the stop; its run {run['status']}"
                    )
                elif t["run_id"] not in cancelled:
                    platform.request(f"/runs/{t['run_id']}/cancel", {})
                    cancelled.add(t["run_id"])
            if len(seen) == len(trials) or time.monotonic() > deadline + 20:
                break
            time.sleep(0.5)
            continue
        spent = sum(r["cost_seconds"] or 0.0 for r in seen.values())
        running = [t for t in trials if t["status"] == "running" and t["run_id"] is not None]
        # The trial in flight on the trainer's own clock (its `uptime` metric, written once a second), so
        # that worker start-up and CUDA set-up, which no trial's cost includes, are not charged either.
        # A run that has ended before its trial is settled counts its recorded cost.
        in_flight = 0.0
        for t in running:
            run = _get_quiet(platform, f"/runs/{t['run_id']}")
            if run.get("status") in RUN_ENDED:
                in_flight += run.get("cost_seconds") or 0.0
                continue
            with contextlib.suppress(Exception):
                series = platform.get(f"/runs/{t['run_id']}/metrics?keys=uptime&max_points=2")["series"]
                uptime = series.get("uptime") or {}
                if uptime.get("max"):
                    in_flight += uptime["max"][-1] + max(0.0, time.time() - uptime["time"][-1])
        over_budget = spent + in_flight >= args.budget - args.cut_lead
        if not stopping and (over_budget or time.monotonic() > deadline):
            why = "budget spent" if over_budget else "wall-clock cap"
            rec.note(
                "ours", f"stopping sweep {sweep_id}: {why} (spent {spent:.1f}s + {in_flight:.1f}s in flight)"
            )
            platform.request(f"/sweeps/{sweep_id}/stop", {})
            stopping = True
        time.sleep(args.poll)


RUN_ENDED = ("succeeded", "failed", "cancelled")


def _get_quiet(platform: Platform, path: str) -> dict[str, Any]:
    try:
        return platform.get(path)
    except Exception:
        return {}


def record_ours_trial(platform: Platform, t: dict[str, Any], wall: float) -> dict[str, Any]:
    run: dict[str, Any] = {}
    if t["run_id"] is not None:
        # A stopped sweep's cancelled trial has no cost of its own: its run has it once it has ended.
        for _ in range(40):
            with contextlib.suppress(Exception):
                run = platform.get(f"/runs/{t['run_id']}")
            if run.get("status") in RUN_ENDED:
                break
            time.sleep(0.5)
    cost = t["cost_seconds"] if t["cost_seconds"] is not None else run.get("cost_seconds")
    return {
        "number": t["number"],
        "trial_id": t["id"],
        "run_id": t["run_id"],
        "status": t["status"],
        "params": t["params"],
        "eval_perf": run.get("final_score") if run.get("status") == "succeeded" else None,
        "sweep_score": t["score"],
        "cost_seconds": cost,
        "steps": run.get("progress_steps") or t.get("cost_steps") or 0,
        "predicted_score": t.get("predicted_score"),
        "predicted_cost": t.get("predicted_cost"),
        "reason": t.get("reason"),
        "failure_reason": t.get("failure_reason") or run.get("failure_reason"),
        "run_status": run.get("status"),
        "wall_at_finish": wall,
    }


def _cumulate(trials: list[dict[str, Any]]) -> None:
    total = 0.0
    for t in trials:
        total += t.get("cost_seconds") or 0.0
        t["cumulative_cost"] = total


# ---- protein: PufferLib 3.0's Protein in its own process ------------------------------------------------


class ProteinClient:
    """Talks JSON lines to `gpu_sweep.py --protein-server`, run with PufferLib's site on PYTHONPATH."""

    def __init__(self, args: argparse.Namespace, sweep_space: dict[str, Any]):
        env = dict(os.environ)
        env["PYTHONPATH"] = args.protein_pythonpath
        cwd = Path(tempfile.mkdtemp(prefix="protein-", dir=args.scratch))  # pufferlib links ./resources
        spec = json.dumps({"space": sweep_space, "seed": args.seed})
        self.stderr = (cwd / "protein.stderr").open("w")
        self.proc = subprocess.Popen(
            [args.protein_python, str(Path(__file__).resolve()), "--protein-server", spec],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            start_new_session=True,
        )
        self.stderr_path = cwd / "protein.stderr"
        self.call({"op": "ping"}, timeout=120)

    def call(self, message: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        import select

        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"Protein did not answer {message['op']} within {timeout:.0f}s")
        line = self.proc.stdout.readline()
        if not line:
            tail = self.stderr_path.read_text()[-2000:]
            raise RuntimeError(f"Protein exited ({self.proc.poll()}): {tail}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"Protein: {reply['error']}")
        return reply

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.stderr.close()


def protein_server(spec_json: str) -> int:
    """The Protein side: suggest / observe on stdin and stdout, one JSON object a line."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr  # Protein prints its predictions; keep the protocol's stream clean
    spec = json.loads(spec_json)
    import numpy as np
    import pufferlib.sweep
    import torch

    # One thread: the GP fits are latency-bound, and more threads made each suggestion 2-6x slower on dev.
    torch.set_num_threads(int(os.environ.get("PROTEIN_THREADS", "1")))
    random.seed(spec["seed"])
    np.random.seed(spec["seed"])
    torch.manual_seed(spec["seed"])
    config = {"method": "Protein", "metric": "perf", "goal": "maximize", **spec["space"]}
    protein = pufferlib.sweep.Protein(config)
    fill = {section: dict.fromkeys(params, 0.0) for section, params in spec["space"].items()}
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            if msg["op"] == "ping":
                reply: dict[str, Any] = {"ok": True}
            elif msg["op"] == "suggest":
                protein.max_suggestion_cost = msg.get("max_cost") or protein.max_suggestion_cost
                tick = time.perf_counter()
                params, info = protein.suggest(copy.deepcopy(fill))
                reply = {
                    "params": _plain(params),
                    "info": _plain(info),
                    "seconds": time.perf_counter() - tick,
                }
            elif msg["op"] == "observe":
                protein.observe(msg["params"], msg["score"], msg["cost"], is_failure=msg["failed"])
                reply = {"ok": True}
            else:
                reply = {"error": f"unknown op {msg['op']!r}"}
        except Exception as e:
            reply = {"error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "item"):
        return value.item()
    return value


class BudgetSink:
    """The trainer's sink for an in-process trial: keeps the last metrics, and cancels the trial once it
    has trained `allowed` seconds by the trainer's own clock (its `uptime` metric, as the platform's trial
    is judged) or once the wall clock passes `deadline`."""

    def __init__(self, allowed: float, deadline: float):
        self.started = time.monotonic()
        self.allowed = allowed
        self.deadline = deadline
        self.last: dict[str, float] = {}
        self.uptime_at: tuple[float, float] | None = None  # (uptime, monotonic time it was reported)

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.last.update(values)
        if "uptime" in values:
            self.uptime_at = (values["uptime"], time.monotonic())

    def checkpoint(self, step: int, stem: Path, size_bytes: int, meta: dict[str, Any]) -> None:
        pass

    def interrupt(self) -> str | None:
        now = time.monotonic()
        trained = self.uptime_at[0] + now - self.uptime_at[1] if self.uptime_at else 0.0
        return "cancel" if trained >= self.allowed or now >= self.deadline else None


def run_protein(args: argparse.Namespace, rec: Recorder, wall_cap: float) -> None:
    from services.common.config import coerce_types, merge, resolve
    from services.trainer.loop import train

    m = rec.method("protein")
    started = time.monotonic()
    deadline = started + wall_cap
    suggest_times: list[float] = []
    client = None
    try:
        client = ProteinClient(args, space(args))
        rec.note("protein", f"Protein up in {time.monotonic() - started:.1f}s")
        spent, number = 0.0, 0
        while True:
            left = args.budget - spent
            if left <= args.min_trial:
                rec.note("protein", f"budget spent ({spent:.1f}s)")
                break
            if time.monotonic() > deadline:
                rec.note("protein", f"wall-clock cap reached (spent {spent:.1f}s)")
                break
            reply = client.call({"op": "suggest", "max_cost": left})
            suggest_times.append(reply["seconds"])
            suggested, info = reply["params"], reply["info"]
            predicted = info.get("cost")
            if predicted is not None and predicted > left:
                rec.note("protein", f"next suggestion predicted {predicted:.1f}s > {left:.1f}s left: done")
                break
            if deadline - time.monotonic() < args.min_trial + 2.0:
                rec.note("protein", f"wall-clock cap reached while suggesting (spent {spent:.1f}s)")
                break
            number += 1
            params = coerce_types(ENV, suggested)
            seed = args.seed * 100_003 + number  # as the platform seeds its sweep trials
            out_dir = Path(tempfile.mkdtemp(prefix=f"protein-trial{number}-", dir=args.scratch))
            sink = BudgetSink(left, deadline)
            try:  # an invalid combination fails as the platform fails it: a failed trial
                result = train(ENV, resolve(ENV, merge(fixed(args), params)), seed, out_dir, sink)
                status, cost, steps = result.status, result.seconds, result.steps
                perf, why = result.final_score, result.failure_reason
            except Exception as e:  # a crash is the configuration's failure, as on a worker
                status, cost, steps, perf = "failed", time.monotonic() - sink.started, 0, None
                why = f"exception: {type(e).__name__}: {e}"
            finally:
                shutil.rmtree(out_dir, ignore_errors=True)
            spent += cost
            if status == "cancelled":
                status = "cut"  # the budget (or the wall-clock cap) ran out mid-trial
            m["trials"].append(
                {
                    "number": number,
                    "status": status,
                    "params": params,
                    "eval_perf": perf,
                    "cost_seconds": cost,
                    "cumulative_cost": spent,
                    "steps": steps,
                    "predicted_score": info.get("score"),
                    "predicted_cost": predicted,
                    "failure_reason": why,
                    "suggest_seconds": reply["seconds"],
                    "train_perf": sink.last.get("env/perf"),
                    "wall_at_finish": time.monotonic() - started,
                }
            )
            log(
                f"[protein] trial {number} {status}: {steps / 1e6:.2f}M steps, {cost:.2f}s, eval {perf}, "
                f"spent {spent:.1f}/{args.budget:g}s (suggest {reply['seconds']:.1f}s)"
            )
            rec.save()
            if status == "cut":
                break
            # What Protein is told: the final eval perf, or 0 for a failure (it has no failure input).
            score = perf if status == "succeeded" and perf is not None else 0.0
            client.call(
                {
                    "op": "observe",
                    "params": suggested,
                    "score": score,
                    "cost": max(cost, 1e-3),
                    "failed": status != "succeeded",
                }
            )
    except Exception as e:
        rec.note("protein", f"error: {type(e).__name__}: {e}")
    finally:
        m["wall_seconds"] = time.monotonic() - started
        m["suggest_median_s"] = statistics.median(suggest_times) if suggest_times else None
        m["suggest_seconds"] = suggest_times
        if client is not None:
            client.close()
        rec.save()


# ---- main ---------------------------------------------------------------------------------------------


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--protein-server":
        return protein_server(sys.argv[2])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--budget",
        type=float,
        default=float(os.environ.get("SWEEP_BUDGET", 180)),
        help="training seconds per method (env SWEEP_BUDGET)",
    )
    ap.add_argument("--methods", default="ours,protein", help="comma-separated, run in this order")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu", "auto"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--wall",
        type=float,
        default=float(os.environ.get("SWEEP_WALL", 1e9)),
        help="wall-clock seconds this script may take in all (env SWEEP_WALL)",
    )
    ap.add_argument(
        "--centre",
        default=os.environ.get("SWEEP_CENTRE", "generic"),
        choices=("generic", "config"),
        help="the space's means: the trainer's generic defaults or configs/breakout.toml (env SWEEP_CENTRE)",
    )
    ap.add_argument("--steps-min", type=float, default=5e6)
    ap.add_argument("--steps-max", type=float, default=1.2e8)
    ap.add_argument("--steps-mean", type=float, default=3e7)
    ap.add_argument("--small", action="store_true", help="CPU smoke test: 256 agents, 5e4..4e5 steps")
    ap.add_argument("--max-runs", type=int, default=500, help="ours: the sweep's max_runs")
    ap.add_argument(
        "--cut-lead",
        type=float,
        default=1.0,
        help="ours: stop the sweep this much before the budget (a cancel reaches the trainer on its "
        "next one-second heartbeat)",
    )
    ap.add_argument("--min-trial", type=float, default=1.0, help="protein: no trial with less budget left")
    ap.add_argument("--poll", type=float, default=0.5)
    ap.add_argument("--protein-python", default=sys.executable)
    ap.add_argument(
        "--protein-pythonpath",
        default=os.environ.get("PROTEIN_PYTHONPATH", ""),
        help="PufferLib's site dir and source tree (env PROTEIN_PYTHONPATH)",
    )
    ap.add_argument("--scratch", default=None, help="where the platform and trials write (default: /tmp)")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp")) / "gpu_sweep.json")
    args = ap.parse_args()
    if args.small:
        args.steps_min, args.steps_max = min(args.steps_min, 5e4), min(args.steps_max, 4e5)
        args.steps_mean = min(args.steps_mean, 1e5)
    args.steps_mean = min(max(args.steps_mean, args.steps_min), args.steps_max)
    sys.path.insert(0, str(ROOT))

    methods = [m for m in args.methods.split(",") if m]
    meta = {
        "budget": args.budget,
        "device": _device_name(args.device),
        "env": ENV,
        "methods": methods,
        "seed": args.seed,
        "space": space(args),
        "fixed": fixed(args),
        "started": datetime.now(UTC).isoformat(),
    }
    rec = Recorder(args.out, meta)
    rec.save()

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        for i, method in enumerate(methods):
            left = args.wall - (time.monotonic() - T0) - 25  # 25 s to stop the platform and report
            cap = left / (len(methods) - i)
            log(f"{method}: budget {args.budget:g}s of training, wall-clock cap {cap:.0f}s")
            (run_ours if method == "ours" else run_protein)(args, rec, cap)
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); reporting what there is")
    finally:
        rec.data["meta"]["wall_seconds"] = time.monotonic() - T0
        rec.data["summary"] = {n: summarize(m, args.budget) for n, m in rec.data["methods"].items()}
        rec.save()
        print(tables(rec), flush=True)
        print(f"\nwrote {args.out}", flush=True)
    return 0


def _device_name(device: str) -> str:
    import torch

    if device != "cpu" and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, {os.cpu_count()} CPUs"
    return f"CPU, {os.cpu_count()} CPUs"


if __name__ == "__main__":
    sys.exit(main())
