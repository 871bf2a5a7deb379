"""Outages on real processes: PostgreSQL or Redis cut off for seconds in the middle of a run.

Each server is reached through a TCP proxy that the test cuts (every connection closed, the port refusing
new ones, as with a stopped server) and restores. A run rides through: it succeeds in its first attempt,
its metric series has no gap and no repeat, and the API answers 503 meanwhile, never 500.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.helpers import Platform, free_port, platform_env, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow]
OUTAGE_SECONDS = 8


class Proxy:
    """Forwards 127.0.0.1:`port` to `target`; `cut()` drops everything until `restore()`."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = free_port()
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            doomed = [self.listener, *self.sockets]
            self.sockets.clear()
        for s in doomed:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _via(url: str, proxy: Proxy) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    return parts._replace(netloc=netloc).geturl()


def _idle(pg_url: str) -> None:
    """Other tests of the session leave runs queued and tasks staged; this worker must not take them."""
    engine = create_engine(pg_url)
    with engine.begin() as c:
        c.execute(text("DELETE FROM outbox"))
        c.execute(text("UPDATE runs SET status = 'cancelled' WHERE status = 'queued'"))
    engine.dispose()


@pytest.fixture
def cut_off(pg_url: str, redis_url: str, tmp_path) -> Iterator[tuple[Platform, Proxy, Proxy]]:
    """API and a train worker reaching PostgreSQL and Redis only through proxies."""
    _idle(pg_url)
    pg, rd = urlsplit(pg_url), urlsplit(redis_url)
    pg_proxy, redis_proxy = Proxy((pg.hostname, pg.port)), Proxy((rd.hostname, rd.port))
    env = platform_env(
        tmp_path,
        _via(pg_url, pg_proxy),
        _via(redis_url, redis_proxy),
        SHOAL_HEARTBEAT_TIMEOUT="20",
        SHOAL_BROKER_VISIBILITY_TIMEOUT="60",
    )
    try:
        with Platform(env, tmp_path).running("train") as platform:
            yield platform, pg_proxy, redis_proxy
    finally:
        pg_proxy.cut()
        redis_proxy.cut()


def _outage_during_a_run(platform: Platform, proxy: Proxy, env: str, steps: int) -> tuple[dict, set[int]]:
    codes: set[int] = set()
    with platform.client() as client:
        run = client.post("/runs", json={"env": env, "total_timesteps": steps})
        assert run.status_code == 201, run.text
        run_id = run.json()["id"]
        wait_for(
            lambda: client.get(f"/runs/{run_id}").json()["progress_steps"] > 0,
            180,
            what="the run to make progress",
        )
        proxy.cut()
        until = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < until:
            with contextlib.suppress(httpx.HTTPError):
                codes.add(client.get("/runs", timeout=15).status_code)
            time.sleep(0.5)
        proxy.restore()
        state = wait_for(
            lambda: (r := client.get(f"/runs/{run_id}").json())["status"] in ("succeeded", "failed") and r,
            300,
            what="the run to end",
        )
    return state, codes


def _series_is_whole(pg_url: str, run_id: int) -> None:
    engine = create_engine(pg_url)
    with engine.connect() as c:
        rows = c.execute(
            text("SELECT key, count(*), max(seq) FROM metrics WHERE run_id = :r GROUP BY key"), {"r": run_id}
        ).all()
    engine.dispose()
    assert rows
    for key, count, top in rows:
        assert count == top + 1, f"{key}: {count} points for ordinals 0..{top}"


def test_a_database_outage_costs_a_run_no_attempt(cut_off, pg_url):
    platform, pg_proxy, _ = cut_off
    state, codes = _outage_during_a_run(platform, pg_proxy, "cartpole", 600_000)
    assert state["status"] == "succeeded", state
    assert state["attempts"] == 1
    assert 500 not in codes and 503 in codes, codes
    _series_is_whole(pg_url, state["id"])


def test_a_broker_outage_costs_a_run_no_attempt_and_loses_no_rating(cut_off, pg_url):
    platform, _, redis_proxy = cut_off
    state, codes = _outage_during_a_run(platform, redis_proxy, "connect4", 300_000)
    assert state["status"] == "succeeded", state
    assert state["attempts"] == 1
    assert 500 not in codes
    _series_is_whole(pg_url, state["id"])
    # Every checkpoint's rating task was sent in the end, outage or not: nothing is left staged.
    engine = create_engine(pg_url)

    def drained() -> bool:
        with engine.connect() as c:
            return c.execute(text("SELECT count(*) FROM outbox")).scalar() == 0

    try:
        wait_for(drained, 30, what="the outbox to drain")
    finally:
        engine.dispose()
