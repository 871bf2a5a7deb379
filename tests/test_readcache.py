"""The API's read cache: many anonymous viewers of one page cost one query a TTL; a writer reading with its
token sees its own writes at once."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, update

from services.common.db import session_scope
from services.common.models import Run
from tests.helpers import AUTH, forget_settings

TTL = 0.5


def _app(monkeypatch, pg_url: str, **env: str):
    from services.api.app import create_app

    monkeypatch.setenv("SHOAL_DATABASE_URL", pg_url)
    monkeypatch.setenv("SHOAL_API_READ_CACHE_SECONDS", str(TTL))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    forget_settings()
    return create_app()


@pytest.fixture
def client(embedded, monkeypatch, pg_url, redis_url):
    monkeypatch.setenv("SHOAL_BROKER_URL", redis_url)
    with TestClient(_app(monkeypatch, pg_url)) as c:
        yield c


def _new_run(client: TestClient, name: str) -> int:
    response = client.post("/runs", json={"env": "cartpole", "name": name}, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _rename_behind_the_api(run_id: int, name: str) -> None:
    """A change the API does not see happen, as a worker's progress is."""
    with session_scope() as session:
        session.execute(update(Run).where(Run.id == run_id).values(name=name))


@pytest.mark.services
def test_anonymous_reads_share_an_answer_until_it_expires(client):
    run_id = _new_run(client, "before")
    first = client.get(f"/runs/{run_id}")
    assert first.json()["name"] == "before" and "x-cache" not in first.headers
    _rename_behind_the_api(run_id, "after")
    again = client.get(f"/runs/{run_id}")
    assert again.headers["x-cache"] == "hit" and again.json() == first.json()
    # Whoever asks for a fresh answer, or shows a token, is never served from the cache.
    assert client.get(f"/runs/{run_id}", headers={"Cache-Control": "no-cache"}).json()["name"] == "after"
    assert client.get(f"/runs/{run_id}", headers=AUTH).json()["name"] == "after"
    time.sleep(TTL + 0.1)
    expired = client.get(f"/runs/{run_id}")
    assert "x-cache" not in expired.headers and expired.json()["name"] == "after"


@pytest.mark.services
def test_a_writer_reading_with_its_token_sees_its_writes_at_once(client):
    run_id = _new_run(client, "first")
    assert client.get("/runs").json()["items"][0]["id"] == run_id
    second = _new_run(client, "second")
    assert [r["id"] for r in client.get("/runs", headers=AUTH).json()["items"][:2]] == [second, run_id]
    assert client.post(f"/runs/{second}/cancel", headers=AUTH).status_code == 200
    assert client.get(f"/runs/{second}", headers=AUTH).json()["status"] == "cancelled"
    # Anonymous viewers share one answer a TTL, writes or not: theirs is at most that old.
    cached = client.get("/runs")
    assert cached.headers["x-cache"] == "hit" and cached.json()["items"][0]["id"] == run_id
    time.sleep(TTL + 0.1)
    assert client.get("/runs").json()["items"][0]["id"] == second


@pytest.mark.services
def test_errors_are_not_cached(client):
    missing = client.get("/runs/999999")
    assert missing.status_code == 404
    assert "x-cache" not in client.get("/runs/999999").headers


@pytest.mark.services
def test_concurrent_misses_ask_the_database_once(client):
    run_id = _new_run(client, "crowd")
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_):
        if "FROM runs" in statement:
            statements.append(statement)

    async def crowd() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await asyncio.gather(*(http.get(f"/runs/{run_id}") for _ in range(40)))

    event.listen(Engine, "before_cursor_execute", count)
    try:
        answers = asyncio.run(crowd())
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert {r.status_code for r in answers} == {200}
    assert len({r.content for r in answers}) == 1
    assert sum(r.headers.get("x-cache") == "hit" for r in answers) == 39
    assert len(statements) == 1, statements


@pytest.mark.services
def test_off_when_reads_need_a_token(embedded, monkeypatch, pg_url, redis_url):
    monkeypatch.setenv("SHOAL_BROKER_URL", redis_url)
    app = _app(monkeypatch, pg_url, SHOAL_READ_REQUIRES_TOKEN="true")
    with TestClient(app) as client:
        run_id = _new_run(client, "private")
        assert client.get(f"/runs/{run_id}", headers=AUTH).status_code == 200
        assert client.get(f"/runs/{run_id}").status_code == 401
        assert client.get(f"/runs/{run_id}").status_code == 401
