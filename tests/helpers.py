"""Helpers the tests share: paths, the API token, polling, the platform as real processes, in-process
settings, extra API tokens, a recording trainer sink, small configs and checkpoints.

Fixtures live in conftest.py and tests receive them as arguments; everything a test imports by name comes
from here, so no test imports conftest (which pytest loads itself, under a module name of its choosing).
"""

from __future__ import annotations

import copy
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TOKEN = "test-token-" + uuid.uuid4().hex[:8]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# A Redis broker URL on a port where nothing listens: format it with a free port.
CLOSED_BROKER = "redis://127.0.0.1:{port}/0"
# Where a run stops changing: a run in any other status is still queued or running.
END_STATES = ("succeeded", "failed", "cancelled")

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, every: float = 0.5, what: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy (and return that), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_for_run(client: httpx.Client, run_id: int, timeout: float, what: str) -> dict[str, Any]:
    """The run as the API shows it once it has ended: succeeded, failed or cancelled."""
    return wait_for(
        lambda: (r := client.get(f"/runs/{run_id}").json())["status"] in END_STATES and r,
        timeout,
        what=what,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Platform:
    """API and workers as real processes sharing one database, broker and artifact store."""

    env: dict[str, str]
    workdir: Path
    url: str = ""
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.env['SHOAL_API_TOKEN']}"}

    def spawn(self, *args: str, log: str) -> subprocess.Popen:
        out = open(self.workdir / log, "ab")  # noqa: SIM115 (kept open for the child's lifetime)
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args],
            env=self.env,
            cwd=self.workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def start_api(self) -> None:
        port = free_port()
        self.spawn("api", "--port", str(port), log="api.log")
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"API did not start: {(self.workdir / 'api.log').read_text()[-2000:]}")

    def start_worker(self, queue: str = "train") -> subprocess.Popen:
        return self.spawn("worker", "--queue", queue, log=f"worker-{queue}.log")

    def live_workers(self) -> list[subprocess.Popen]:
        return [p for p in self.processes if "worker" in str(p.args) and p.poll() is None]

    @contextmanager
    def running(self, *queues: str) -> Iterator[Platform]:
        """The API and a worker for each of `queues` while the block runs; every process stops after it."""
        try:
            self.start_api()
            for queue in queues:
                self.start_worker(queue)
            yield self
        finally:
            self.stop()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def platform_env(tmp: Path, database_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    """The environment of the platform's processes: one database, broker and artifact store under `tmp`."""
    return {
        **os.environ,
        "SHOAL_DATABASE_URL": database_url,
        "SHOAL_BROKER_URL": broker_url,
        "SHOAL_ARTIFACTS": str(tmp / "artifacts"),
        "SHOAL_API_TOKEN": TOKEN,
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def forget_settings() -> None:
    """Drop the process's cached settings, engine and sessions, so the next use reads the environment."""
    from services.common import db, settings

    for cached in (settings.get_settings, db.get_engine, db._sessions):
        cached.cache_clear()


def configure_in_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, broker_url: str
) -> None:
    """In-process settings on the given database and broker, with a Celery app that uses that broker."""
    from services.common import celery_app

    for key, value in platform_env(tmp_path, database_url, broker_url).items():
        if key.startswith("SHOAL_"):
            monkeypatch.setenv(key, value)
    forget_settings()
    monkeypatch.setattr(celery_app, "app", celery_app.make_app())


def make_token(scope: str, name: str | None = None) -> tuple[int, dict[str, str]]:
    """A new API token of `scope` in the configured database: its id and the headers that present it."""
    from services.common import tokens
    from services.common.db import session_scope
    from services.common.models import Scope

    with session_scope() as session:
        token, secret = tokens.create(session, name or f"{scope}-test", Scope(scope))
        return token.id, {"Authorization": f"Bearer {secret}"}


def favouring(policy: Any, column: int) -> Any:
    """A copy of `policy` (a trainer Policy with discrete actions) that plays `column` in every action
    dimension whatever it sees: tells apart which member of a self-play pool made a move."""
    import torch  # here, not at the top: most tests that use this module never touch a policy

    member = copy.deepcopy(policy)
    with torch.no_grad():
        member.actor.weight.zero_()
        member.actor.bias.fill_(-100.0)
        start = 0
        for n in member.nvec:
            member.actor.bias[start + column] = 100.0
            start += n
    return member


class Recorder:
    """A trainer sink that keeps everything and can cancel after some checkpoints (a simulated kill)."""

    def __init__(self, stop_after_checkpoints: int | None = None):
        self.rows: list[tuple[int, dict]] = []
        self.checkpoints: list[tuple[int, Path]] = []
        self.stop_after = stop_after_checkpoints

    def metrics(self, step, values):
        self.rows.append((step, values))

    def checkpoint(self, step, stem, size_bytes, meta):
        self.checkpoints.append((step, stem))

    def interrupt(self):
        if self.stop_after is not None and len(self.checkpoints) >= self.stop_after:
            return "cancel"
        return None


def small(env: str = "cartpole", **train) -> Any:
    """The config of a short training run of `env` (16 updates of 16 x 128 steps), with `train` overrides."""
    from services.common.config import resolve

    return resolve(
        env,
        {
            "train": {
                "total_timesteps": 8 * 2048,
                "num_envs": 16,
                "num_steps": 128,
                "checkpoint_interval": 2,
                "eval_episodes": 4,
                **train,
            }
        },
    )


def make_checkpoint(directory: Path, env: str, name: str = "ckpt", recurrent: str = "none", **config) -> Path:
    """An untrained policy saved the way the trainer saves one (opponent=0 unless told otherwise)."""
    import torch

    import envs_c
    from services.common.config import PolicyConfig
    from services.trainer.checkpoint import save_policy
    from services.trainer.policy import Policy

    spec = envs_c.make_spec(env, **config)
    torch.manual_seed(0)
    policy = Policy(spec.observation_space.shape, spec.to_dict()["action"], PolicyConfig(recurrent=recurrent))
    stem = directory / name
    meta = {
        "env": env,
        "env_version": spec.version,
        "env_config": spec.config,
        "env_spec": spec.to_dict(),
        "step": 0,
    }
    save_policy(stem, policy, meta)
    return stem
