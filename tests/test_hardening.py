"""Hardening on PostgreSQL: bounded input (never 500), a pool that queues bursts, an outbox that loses no
task while the broker is down, fenced worker writes, and failures that keep their progress."""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from tests.helpers import (
    AUTH,
    CLOSED_BROKER,
    Platform,
    configure_in_process,
    forget_settings,
    free_port,
    platform_env,
)


@pytest.fixture
def client(pg) -> Iterator[TestClient]:
    from services.api.app import create_app

    with TestClient(create_app()) as c:
        yield c


# ---- input bounds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/runs/2147483648"),
        ("GET", "/runs/2147483648/elo"),
        ("GET", "/runs/2147483648/metrics"),
        ("GET", "/sweeps/2147483648"),
        ("POST", "/runs/18788795080157/cancel"),
        ("POST", "/sweeps/2147483648/stop"),
        ("GET", "/runs?offset=9223372036854775808"),
        ("GET", "/runs?env=%00"),
        ("GET", "/runs?tag=a%00"),
        ("GET", "/runs?q=%00"),
        ("GET", "/runs/1/metrics?keys=%00"),
        ("GET", "/leaderboard/%00/matrix"),
        ("GET", "/runs/0"),
    ],
)
def test_ids_offsets_and_nul_bytes_out_of_range_are_422_naming_the_problem(client, method, path):
    response = client.request(method, path, headers=AUTH)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "NUL" in detail[0]["msg"] or "than or equal" in detail[0]["msg"]


def test_a_checkpoint_id_beyond_int4_is_not_found_or_refused(client):
    as_text = client.post("/matches", json={"a": "99999999999", "b": "random", "games": 2}, headers=AUTH)
    assert as_text.status_code == 404, as_text.text
    as_int = client.post("/matches", json={"a": 99999999999, "b": "random", "games": 2}, headers=AUTH)
    assert as_int.status_code == 422, as_int.text


# ---- saturation and outages -----------------------------------------------------------------------------


def test_a_request_that_cannot_get_a_connection_in_time_is_503_with_retry_after(pg, monkeypatch):
    import anyio

    from services.api.app import create_app
    from services.common.settings import get_settings

    monkeypatch.setenv("SHOAL_API_DB_WAIT", "0.2")
    get_settings.cache_clear()
    app = create_app()
    app.state.db_gate = anyio.Semaphore(0)  # every connection busy
    with TestClient(app) as c:
        response = c.get("/runs")
        assert c.get("/envs").status_code == 200  # what needs no database still answers
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"


def test_writes_queue_behind_their_own_gate_while_reads_go_on(pg, monkeypatch):
    """A burst of writes holds at most api_write_concurrency admissions: with every write slot busy, reads
    are still served and a write waits its turn (here past api_db_wait: 503 with Retry-After)."""
    import anyio

    from services.api.app import create_app
    from services.common.settings import get_settings

    monkeypatch.setenv("SHOAL_API_DB_WAIT", "0.2")
    get_settings.cache_clear()
    app = create_app()
    app.state.write_gate = anyio.Semaphore(0)  # every write slot busy
    with TestClient(app) as c:
        write = c.post("/runs", json={"env": "cartpole"}, headers=AUTH)
        read = c.get("/runs", headers=AUTH)
    assert write.status_code == 503 and write.headers["Retry-After"] == "1"
    assert read.status_code == 200


def test_an_unreachable_database_is_503_not_500(tmp_path, monkeypatch):
    from services.api.app import create_app

    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none"
    configure_in_process(monkeypatch, tmp_path, dead, CLOSED_BROKER.format(port=free_port()))
    try:
        with TestClient(create_app()) as c:
            response = c.get("/runs")
            health = c.get("/healthz")
    finally:
        forget_settings()
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    # /healthz names what is down without the error's text (hosts, ports).
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "unhealthy" and body["down"] == ["database", "broker"]
    assert body["database"] == body["broker"] == "unavailable" and body["workers"] is None
    assert "127.0.0.1" not in health.text


async def _burst(base: str, clients: int, seconds: float) -> tuple[list[int], list[float]]:
    codes: list[int] = []
    latencies: list[float] = []
    until = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:

        async def one() -> None:
            while time.monotonic() < until:
                began = time.monotonic()
                codes.append((await http.get("/runs")).status_code)
                latencies.append(time.monotonic() - began)

        await asyncio.gather(*(one() for _ in range(clients)))
    return codes, latencies


def test_a_burst_beyond_the_pool_queues_instead_of_stalling(pg_url, redis_url, tmp_path):
    """60 clients against a pool of 4: before the admission gate, threads waiting for a connection starved
    the requests holding one of a thread to finish on, and everyone waited for the pool's 30 s timeout."""
    env = platform_env(tmp_path, pg_url, redis_url, SHOAL_DB_POOL_SIZE="2", SHOAL_DB_MAX_OVERFLOW="2")
    with Platform(env, tmp_path).running() as platform:
        codes, latencies = asyncio.run(_burst(platform.url, clients=60, seconds=4))
        began = time.monotonic()
        health = httpx.get(f"{platform.url}/healthz", timeout=30)
        health_seconds = time.monotonic() - began
    assert codes and set(codes) == {200}, {c: codes.count(c) for c in set(codes)}
    assert max(latencies) < 10, max(latencies)
    assert health.status_code == 200 and health_seconds < 5


# ---- the outbox -----------------------------------------------------------------------------------------


def _queued_messages(redis_url: str, queue: str) -> list[str]:
    import json

    import redis

    client = redis.Redis.from_url(redis_url)
    return [json.loads(m)["headers"]["task"] for m in client.lrange(queue, 0, -1)]


def test_work_accepted_while_the_broker_is_down_is_sent_when_it_is_back(
    client, redis_url, monkeypatch, tmp_path
):
    from services.common import celery_app, outbox
    from services.common.db import session_scope
    from services.common.models import OutboxMessage, Run

    began = time.monotonic()
    run = client.post("/runs", json={"env": "cartpole"}, headers=AUTH)
    match = client.post(
        "/matches", json={"a": "random", "b": "scripted", "games": 2, "env": "connect4"}, headers=AUTH
    )
    assert time.monotonic() - began < 10  # one quick try each, not seconds of retries
    assert run.status_code == 201, run.text
    assert match.status_code == 202, match.text
    with session_scope() as session:
        staged = session.scalars(select(OutboxMessage.task).order_by(OutboxMessage.id)).all()
        assert session.get(Run, run.json()["id"]).status == "queued"
    assert staged[-2:] == ["shoal.train", "shoal.elo.play"]

    import redis

    redis.Redis.from_url(redis_url).flushdb()
    monkeypatch.setenv("SHOAL_BROKER_URL", redis_url)
    from services.common.settings import get_settings

    get_settings.cache_clear()
    monkeypatch.setattr(celery_app, "app", celery_app.make_app())
    assert outbox.publish() >= 2
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    assert "shoal.train" in _queued_messages(redis_url, "train")
    assert "shoal.elo.play" in _queued_messages(redis_url, "elo")


def test_a_run_left_queued_past_its_task_is_enqueued_again(pg):
    from datetime import timedelta

    from services.common.db import session_scope
    from services.common.models import OutboxMessage, Run, utcnow
    from services.common.runs import create_run, resend_lost

    with session_scope() as session:
        fresh = create_run(session, "cartpole").id
        lost = create_run(session, "cartpole").id
        session.execute(update(Run).where(Run.id == lost).values(queued_at=utcnow() - timedelta(hours=1)))
        session.execute(OutboxMessage.__table__.delete())
    with session_scope() as session:
        resent = resend_lost(session, after_seconds=600)
        assert lost in resent and fresh not in resent
        assert session.scalars(select(OutboxMessage.args)).all() == [[run_id] for run_id in resent]
    with session_scope() as session:  # sent again only after another timeout
        assert lost not in resend_lost(session, after_seconds=600)


# ---- fencing and honest failures -------------------------------------------------------------------------


def _claimed(owner: str) -> int:
    from services.common.db import session_scope
    from services.common.runs import claim, create_run

    with session_scope() as session:
        run_id = create_run(session, "cartpole").id
    with session_scope() as session:
        assert claim(session, run_id, owner)
    return run_id


def test_a_worker_that_lost_its_run_writes_nothing_more_and_no_point_is_duplicated(pg):
    from services.common.config import resolve
    from services.common.db import session_scope
    from services.common.metrics import MetricWriter
    from services.common.models import Metric, Run
    from services.common.runs import LostRun, claim, reap_stale
    from services.trainer.tasks import DatabaseSink

    run_id = _claimed("old")
    config = resolve("cartpole", {})
    old = DatabaseSink(run_id, "old", config, MetricWriter(run_id))
    for step in (100, 200, 300):
        old.metrics(step, {"SPS": float(step)})
    # The old worker is paused past the heartbeat timeout; the reaper requeues, a new worker claims.
    with session_scope() as session:
        session.execute(update(Run).where(Run.id == run_id).values(heartbeat_at=None))
        assert reap_stale(session, timeout_seconds=60, max_attempts=3) == [run_id]
    with session_scope() as session:
        assert claim(session, run_id, "new")
        writer = MetricWriter(run_id)
        writer.resume(session, after_step=300)  # its checkpoint
    new = DatabaseSink(run_id, "new", config, writer)
    new.metrics(400, {"SPS": 400.0})
    with pytest.raises(LostRun):
        old.metrics(500, {"SPS": 500.0})  # resumed: its next write is refused, and it stops
    new.metrics(600, {"SPS": 600.0})
    with session_scope() as session:
        rows = session.execute(
            select(Metric.seq, Metric.step).where(Metric.run_id == run_id).order_by(Metric.seq)
        ).all()
    assert [tuple(r) for r in rows] == [(0, 100), (1, 200), (2, 300), (3, 400), (4, 600)]


def test_the_database_refuses_a_second_point_at_an_ordinal(pg):
    from sqlalchemy.exc import IntegrityError

    from services.common.db import session_scope
    from services.common.models import Metric

    run_id = _claimed("w")
    with session_scope() as session:
        session.add(Metric(run_id=run_id, key="SPS", step=1, seq=0, time=0.0, value=1.0))
    with pytest.raises(IntegrityError), session_scope() as session:
        session.add(Metric(run_id=run_id, key="SPS", step=2, seq=0, time=0.0, value=2.0))


def test_metrics_written_during_a_database_blip_are_kept(pg, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from services.common.config import resolve
    from services.common.db import session_scope
    from services.common.metrics import MetricWriter
    from services.common.models import Metric
    from services.trainer import tasks

    run_id = _claimed("w")
    sink = tasks.DatabaseSink(run_id, "w", resolve("cartpole", {}), MetricWriter(run_id))
    real, failures = tasks.session_scope, iter([True, True])

    def flaky():
        if next(failures, False):
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        return real()

    monkeypatch.setattr(tasks, "session_scope", flaky)
    sink.metrics(10, {"SPS": 1.0, "agent_steps": 10.0})
    with session_scope() as session:
        keys = session.scalars(select(Metric.key).where(Metric.run_id == run_id).order_by(Metric.key)).all()
    assert keys == ["SPS", "agent_steps"]


def test_a_run_that_fails_keeps_its_progress_and_says_disk_full(pg, monkeypatch):
    from services.common.db import session_scope
    from services.common.models import Run
    from services.trainer import tasks

    def full_disk(env, config, seed, out_dir, sink, **_):
        sink.metrics(4096, {"agent_steps": 4096.0})
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tasks, "train", full_disk)
    with session_scope() as session:
        from services.common.runs import create_run

        run_id = create_run(session, "cartpole").id
    tasks.train_run(run_id)
    with session_scope() as session:
        run = session.get(Run, run_id)
        assert (run.status, run.progress_steps) == ("failed", 4096)
        assert run.failure_reason == "disk full at step 4096"


def test_a_chunked_body_over_the_limit_is_413_not_400(client):
    def body() -> Iterator[bytes]:  # no Content-Length: the limit is found while reading
        yield b'{"env": "' + b"x" * (1 << 20)
        yield b'"}'

    response = client.post("/runs", content=body(), headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 413, response.text


def test_only_the_allowed_hosts_are_answered(pg, monkeypatch):
    from services.api.app import create_app
    from services.common.settings import get_settings

    monkeypatch.setenv("SHOAL_ALLOWED_HOSTS", '["shoal.test"]')
    get_settings.cache_clear()
    with TestClient(create_app(), base_url="http://shoal.test") as c:
        assert c.get("/envs").status_code == 200
        assert c.get("/envs", headers={"Host": "evil.example"}).status_code == 400


def test_every_task_but_training_has_a_time_limit():
    import importlib

    from services.common.celery_app import QUEUE_MODULES, REAP_TASK, TRAIN_TASK, app

    for modules in QUEUE_MODULES.values():  # registers every task
        for module in modules:
            importlib.import_module(module)

    tasks = {name: task for name, task in app.tasks.items() if name.startswith("shoal.")}
    unlimited = [n for n, t in tasks.items() if n not in (TRAIN_TASK, REAP_TASK) and not t.time_limit]
    assert len(tasks) > 2 and unlimited == []


def test_sweeps_are_listed_a_page_at_a_time(client):
    for _ in range(3):
        assert client.post("/sweeps", json={"env": "cartpole"}, headers=AUTH).status_code == 201
    page = client.get("/sweeps", params={"limit": 2, "offset": 1}).json()
    assert len(page["items"]) == 2 and page["total"] >= 3 and (page["limit"], page["offset"]) == (2, 1)
    assert client.get("/sweeps", params={"limit": 10_000}).status_code == 422
