"""Fixtures: real PostgreSQL, Redis, API and worker processes, or the embedded default in a temp dir.

Integration tests that need PostgreSQL or Redis fail when the server is missing under CI=true and are
skipped with the reason otherwise. What tests import by name (polling, the platform's processes, the token)
is in tests/helpers.py.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    CI,
    CLOSED_BROKER,
    ROOT,
    Platform,
    configure_in_process,
    forget_settings,
    free_port,
    platform_env,
)

PG_ADMIN_URL = os.environ.get(
    "SHOAL_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("SHOAL_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def _missing(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({error}); run `make services` or see tests/ensure_services.py"
    if CI:
        pytest.fail(message)
    pytest.skip(message)


@contextlib.contextmanager
def _fresh_database() -> Iterator[str]:
    """A new PostgreSQL database with the schema migrated, dropped on exit."""
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
    try:
        yield url
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _flushed_redis(index: int) -> str:
    import redis

    url = f"{REDIS_URL}/{index}"
    try:
        redis.Redis.from_url(url, socket_timeout=2).flushdb()
    except Exception as e:
        _missing("Redis", e)
    return url


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database with the schema migrated, one per test module and dropped afterwards, so
    that the runs one module leaves queued (a fuzzer's, a closed broker's) never reach another's workers."""
    with _fresh_database() as url:
        yield url


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A Redis database of its own (a random index, flushed before and after the module) so that neither
    parallel sessions nor consecutive modules share queues."""
    url = _flushed_redis(random.randint(1, 15))
    yield url
    _flushed_redis(int(url.rsplit("/", 1)[1]))


@pytest.fixture(scope="module")
def services_platform(pg_url: str, redis_url: str, tmp_path_factory) -> Iterator[Platform]:
    """PostgreSQL + Redis + API + one train worker; short heartbeat and visibility timeouts (lost workers)."""
    tmp = tmp_path_factory.mktemp("platform")
    env = platform_env(
        tmp, pg_url, redis_url, SHOAL_HEARTBEAT_TIMEOUT="4", SHOAL_BROKER_VISIBILITY_TIMEOUT="10"
    )
    with Platform(env, tmp).running("train") as platform:
        yield platform


@pytest.fixture
def pg(pg_url: str, tmp_path, monkeypatch) -> Iterator[str]:
    """In-process settings on the test PostgreSQL database, with a broker on a closed port."""
    configure_in_process(monkeypatch, tmp_path, pg_url, CLOSED_BROKER.format(port=free_port()))
    yield pg_url
    forget_settings()


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """In-process settings for the embedded default (SQLite, SQL broker) in a temp dir, schema migrated."""
    from services.common import settings
    from services.common.celery_app import app
    from services.common.migrate import upgrade

    for key, value in platform_env(
        tmp_path, f"sqlite:///{tmp_path}/shoal.db", f"sqla+sqlite:///{tmp_path}/broker.db"
    ).items():
        if key.startswith("SHOAL_"):
            monkeypatch.setenv(key, value)
    # In-process tests play the workers themselves and read their changes at once: no read cache here
    # (tests/test_readcache.py turns it on; the platform tests' processes keep the default).
    monkeypatch.setenv("SHOAL_API_READ_CACHE_SECONDS", "0")
    forget_settings()
    previous_broker = app.conf.broker_url
    app.conf.broker_url = settings.get_settings().broker_url
    upgrade()
    yield tmp_path
    app.conf.broker_url = previous_broker
    forget_settings()


@pytest.fixture(scope="module")
def embedded_platform(tmp_path_factory) -> Iterator[Platform]:
    """API + one train worker as real processes on the embedded default (SQLite, SQL broker) in a temp dir:
    no PostgreSQL or Redis needed. Metrics flush every 0.5 s so live views have something to show quickly;
    SHOAL_DOCS_DIR points the benchmark pages at <tmp>/docs."""
    tmp = tmp_path_factory.mktemp("embedded")
    env = platform_env(
        tmp,
        f"sqlite:///{tmp}/shoal.db",
        f"sqla+sqlite:///{tmp}/broker.db",
        SHOAL_METRICS_FLUSH_SECONDS="0.5",
        SHOAL_DOCS_DIR=str(tmp / "docs"),
    )
    subprocess.run(
        [sys.executable, "-m", "services.cli", "migrate"], env=env, check=True, cwd=tmp, capture_output=True
    )
    with Platform(env, tmp).running("train", "sweeper", "elo") as platform:
        yield platform


@pytest.fixture
def elo_platform(embedded, monkeypatch):
    """The embedded database with Celery's send_task captured; `drain()` runs what was sent (the runs that
    hold the checkpoints are never trained: their train tasks are dropped)."""
    from fastapi.testclient import TestClient

    from services.common.celery_app import ELO_PLAY_TASK, ELO_RATE_TASK, ELO_REFIT_TASK, TRAIN_TASK, app
    from services.elo import tasks

    sent: deque = deque()
    monkeypatch.setattr(app, "send_task", lambda name, args=(), **_: sent.append((name, list(args))))
    handlers = {ELO_RATE_TASK: tasks.rate, ELO_PLAY_TASK: tasks.play_batch, ELO_REFIT_TASK: tasks.refit}

    def drain() -> list[tuple[str, list]]:
        done = []
        while sent:
            name, args = sent.popleft()
            if name == TRAIN_TASK:
                continue
            done.append((name, args))
            if name in handlers:
                handlers[name](*args)
        return done

    from services.api.app import create_app

    with TestClient(create_app()) as client:
        yield client, drain, sent


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed test that ran against live processes carries the tail of their logs: a hang seen only in
    CI is then diagnosable from CI's output."""
    report = yield
    if report.failed and call.when == "call":
        platforms = [v for v in getattr(item, "funcargs", {}).values() if isinstance(v, Platform)]
        for platform in platforms:
            for log in sorted(platform.workdir.glob("*.log")):
                tail = log.read_text(errors="replace")[-4000:]
                report.sections.append((f"{log.name} (last 4000 characters)", tail))
    return report
