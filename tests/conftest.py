"""Fixtures: real PostgreSQL, Redis, API and worker processes, or the embedded default in a temp dir.

Integration tests that need PostgreSQL or Redis fail when the server is missing under CI=true and are
skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_URL = os.environ.get(
    "SHOAL_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("SHOAL_TEST_REDIS_URL", "redis://127.0.0.1:6379")
TOKEN = "test-token-" + uuid.uuid4().hex[:8]


def _missing(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({error}); run `make services` or see tests/ensure_services.py"
    if CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database with the schema migrated; dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"shoal_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as e:
        _missing("PostgreSQL", e)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    subprocess.run(
        [sys.executable, "-m", "services.cli", "migrate"],
        env={**os.environ, "SHOAL_DATABASE_URL": url},
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    yield url
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis database of its own (a random index, flushed) so parallel sessions do not share queues."""
    import redis

    url = f"{REDIS_URL}/{random.randint(1, 15)}"
    try:
        client = redis.Redis.from_url(url, socket_timeout=2)
        client.flushdb()
    except Exception as e:
        _missing("Redis", e)
    return url


def wait_for(predicate, timeout: float, every: float = 0.5, what: str = "condition"):
    """Poll `predicate` until it returns something truthy (and return that), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_for_run(client, run_id: int, timeout: float, what: str) -> dict:
    """The run as the API shows it once it has succeeded or failed."""
    return wait_for(
        lambda: (r := client.get(f"/runs/{run_id}").json())["status"] in ("succeeded", "failed") and r,
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


def _platform_env(tmp: Path, database_url: str, broker_url: str, **extra: str) -> dict[str, str]:
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


@pytest.fixture(scope="module")
def services_platform(pg_url: str, redis_url: str, tmp_path_factory) -> Iterator[Platform]:
    """PostgreSQL + Redis + API + one train worker; short heartbeat and visibility timeouts (lost workers)."""
    tmp = tmp_path_factory.mktemp("platform")
    env = _platform_env(
        tmp, pg_url, redis_url, SHOAL_HEARTBEAT_TIMEOUT="4", SHOAL_BROKER_VISIBILITY_TIMEOUT="10"
    )
    platform = Platform(env, tmp)
    try:
        platform.start_api()
        platform.start_worker()
        yield platform
    finally:
        platform.stop()


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """In-process settings for the embedded default (SQLite, SQL broker) in a temp dir, schema migrated."""
    from services.common import db, settings
    from services.common.celery_app import app
    from services.common.migrate import upgrade

    for key, value in _platform_env(
        tmp_path, f"sqlite:///{tmp_path}/shoal.db", f"sqla+sqlite:///{tmp_path}/broker.db"
    ).items():
        if key.startswith("SHOAL_"):
            monkeypatch.setenv(key, value)
    caches = (settings.get_settings, db.get_engine, db._sessions)
    for cached in caches:
        cached.cache_clear()
    previous_broker = app.conf.broker_url
    app.conf.broker_url = settings.get_settings().broker_url
    upgrade()
    yield tmp_path
    app.conf.broker_url = previous_broker
    for cached in caches:
        cached.cache_clear()


@pytest.fixture(scope="module")
def embedded_platform(tmp_path_factory) -> Iterator[Platform]:
    """API + one train worker as real processes on the embedded default (SQLite, SQL broker) in a temp dir:
    no PostgreSQL or Redis needed. Metrics flush every 0.5 s so live views have something to show quickly;
    SHOAL_DOCS_DIR points the benchmark pages at <tmp>/docs."""
    tmp = tmp_path_factory.mktemp("embedded")
    env = _platform_env(
        tmp,
        f"sqlite:///{tmp}/shoal.db",
        f"sqla+sqlite:///{tmp}/broker.db",
        SHOAL_METRICS_FLUSH_SECONDS="0.5",
        SHOAL_DOCS_DIR=str(tmp / "docs"),
    )
    subprocess.run(
        [sys.executable, "-m", "services.cli", "migrate"], env=env, check=True, cwd=tmp, capture_output=True
    )
    platform = Platform(env, tmp)
    try:
        platform.start_api()
        for queue in ("train", "sweeper", "elo"):
            platform.start_worker(queue)
        yield platform
    finally:
        platform.stop()
