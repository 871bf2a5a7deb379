"""API tokens on PostgreSQL: scopes, ownership, revocation, rate and queue limits, the audit log; and the
read-side guards that came with them (/healthz, paged leaderboard, checkpoint files inside the store)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.api.ratelimit import RateLimiter
from tests.helpers import AUTH, make_token

RUN = {"env": "cartpole", "total_timesteps": 5000}


@pytest.fixture
def make_client(pg, monkeypatch) -> Iterator[Callable[..., TestClient]]:
    """An app on the test database with extra SHOAL_* settings (rate limits, read tokens)."""
    from services.api.app import create_app
    from services.common.settings import get_settings

    opened: list[TestClient] = []

    def make(**settings: str) -> TestClient:
        for key, value in settings.items():
            monkeypatch.setenv(f"SHOAL_{key.upper()}", value)
        get_settings.cache_clear()
        client = TestClient(create_app())
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def _revoke(token_id: int) -> None:
    from services.common import tokens
    from services.common.db import session_scope

    with session_scope() as session:
        tokens.revoke(session, tokens.find(session, str(token_id)))


def _write_operations(client: TestClient) -> list[tuple[str, str]]:
    paths = client.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), path.replace("{run_id}", "1").replace("{sweep_id}", "1"))
        for path, operations in paths.items()
        for method in operations
        if method != "get"
    ]


def test_the_cli_creates_lists_and_revokes_tokens_and_stores_only_a_hash(pg, capsys):
    from services.cli import main
    from services.common.db import session_scope
    from services.common.models import ApiToken

    assert main(["token", "create", "ci-bot", "--scope", "read"]) == 0
    secret = capsys.readouterr().out.splitlines()[-1]
    assert secret.startswith("shoal_") and len(secret) > 40
    with session_scope() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.name == "ci-bot")).one()
        assert secret not in json.dumps([row.name, row.scope, row.secret_sha256])
    assert main(["token", "list"]) == 0
    listing = capsys.readouterr().out
    assert "ci-bot" in listing and secret not in listing
    assert main(["token", "revoke", "ci-bot"]) == 0
    assert "revoked" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["token", "revoke", "nobody-has-this-name"])


def test_a_read_token_gets_403_on_every_write_operation(make_client):
    client = make_client()
    _, read = make_token("read")
    operations = _write_operations(client)
    assert len(operations) >= 7, operations
    for method, path in operations:
        response = client.request(method, path, json={}, headers=read)
        assert response.status_code == 403, (method, path, response.text)
        assert "scope read" in response.json()["detail"]


def test_a_revoked_token_gets_401_at_once(make_client):
    client = make_client()
    token_id, write = make_token("write")
    assert client.post("/runs", json=RUN, headers=write).status_code == 201
    _revoke(token_id)
    response = client.post("/runs", json=RUN, headers=write)
    assert response.status_code == 401, response.text
    assert "revoked" in response.json()["detail"]


def test_a_write_token_changes_only_what_it_created(make_client):
    from services.common.db import session_scope
    from services.common.models import Run, Sweep

    client = make_client()
    _, mine = make_token("write", "mine")
    _, theirs = make_token("write", "theirs")
    own = client.post("/runs", json=RUN, headers=mine).json()
    other = client.post("/runs", json=RUN, headers=theirs).json()
    by_admin = client.post("/runs", json=RUN, headers=AUTH).json()

    for run in (other, by_admin):
        response = client.post(f"/runs/{run['id']}/cancel", headers=mine)
        assert response.status_code == 403 and "not created by token 'mine'" in response.json()["detail"]
        assert client.patch(f"/runs/{run['id']}", json={"name": "x"}, headers=mine).status_code == 403
    assert client.patch(f"/runs/{own['id']}", json={"name": "mine"}, headers=mine).json()["name"] == "mine"
    assert client.post(f"/runs/{own['id']}/cancel", headers=mine).json()["status"] == "cancelled"
    assert client.post(f"/runs/{other['id']}/cancel", headers=AUTH).json()["status"] == "cancelled"

    sweep = client.post("/sweeps", json={"env": "cartpole", "max_runs": 2}, headers=mine)
    assert sweep.status_code == 201, sweep.text
    sweep_id = sweep.json()["id"]
    # A trial's run (created by the sweeper, no token) belongs to whoever created its sweep.
    with session_scope() as session:
        assert session.get(Sweep, sweep_id).created_by_token is not None
        trial_run = session.get(Run, by_admin["id"])
        trial_run.sweep_id = sweep_id
    assert client.post(f"/runs/{by_admin['id']}/cancel", headers=mine).status_code == 200
    assert client.post(f"/sweeps/{sweep_id}/stop", headers=theirs).status_code == 403
    assert client.post(f"/sweeps/{sweep_id}/stop", headers=mine).json()["status"] == "stopped"


def test_writes_over_a_tokens_rate_get_429_with_retry_after(make_client):
    client = make_client(write_rate="0.5", write_burst="2")
    _, write = make_token("write")
    codes = [client.post("/runs/999999/cancel", headers=write).status_code for _ in range(3)]
    assert codes == [404, 404, 429]
    limited = client.post("/runs/999999/cancel", headers=write)
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 2
    # Each token has its own bucket; admins have none.
    _, other = make_token("write")
    assert client.post("/runs/999999/cancel", headers=other).status_code == 404
    assert {client.post("/runs/999999/cancel", headers=AUTH).status_code for _ in range(5)} == {404}


def test_guessing_tokens_gets_429_while_valid_tokens_still_pass(make_client):
    client = make_client(auth_failures_per_minute="3")
    wrong = {"Authorization": "Bearer shoal_guess"}
    codes = [client.post("/runs", json=RUN, headers=wrong).status_code for _ in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    assert int(client.post("/runs", json=RUN, headers=wrong).headers["Retry-After"]) >= 1
    assert client.post("/runs", json=RUN, headers=AUTH).status_code == 201


def test_a_token_at_its_queued_run_cap_gets_429_until_one_leaves_the_queue(make_client):
    client = make_client(max_queued_runs_per_token="2")
    _, write = make_token("write")
    first, _ = (client.post("/runs", json=RUN, headers=write).json() for _ in range(2))
    capped = client.post("/runs", json=RUN, headers=write)
    assert capped.status_code == 429 and "2 queued runs" in capped.json()["detail"], capped.text
    assert capped.headers["Retry-After"]
    client.post(f"/runs/{first['id']}/cancel", headers=write)
    assert client.post("/runs", json=RUN, headers=write).status_code == 201


def test_the_audit_log_holds_each_write_that_took_effect(make_client):
    from services.common.db import session_scope
    from services.common.models import AuditEntry

    client = make_client()
    token_id, write = make_token("write", "auditor")
    _, read = make_token("read")
    run = client.post("/runs", json=RUN, headers=write).json()
    client.post(f"/runs/{run['id']}/cancel", headers=write)
    # Refused by the route, by the schema, or before either: nothing happened, nothing is recorded.
    assert client.post("/runs", json={"env": "nope"}, headers=write).status_code == 422
    assert client.post("/runs", json={"env": 5}, headers=write).status_code == 422
    assert client.post("/runs/" + "9" * 300 + "/cancel", headers=write).status_code == 422
    assert client.post("/runs/999999/cancel", headers=write).status_code == 404
    client.post("/runs", json=RUN, headers=read)  # 403
    client.post("/runs", json=RUN, headers=AUTH)
    with session_scope() as session:
        mine = session.scalars(
            select(AuditEntry).where(AuditEntry.token_id == token_id).order_by(AuditEntry.id)
        )
        assert [(e.actor, e.method, e.path) for e in mine] == [
            ("auditor", "POST", "/runs"),
            ("auditor", "POST", f"/runs/{run['id']}/cancel"),
        ]
        last = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).one()
        assert (last.actor, last.token_id, last.path) == ("bootstrap", None, "/runs")


def test_reads_can_require_a_token(make_client):
    client = make_client(read_requires_token="true")
    token_id, read = make_token("read")
    assert client.get("/runs").status_code == 401
    assert client.get("/envs").status_code == 401
    assert client.get("/runs", headers=read).status_code == 200
    assert client.get("/runs", headers=AUTH).status_code == 200
    # What a browser needs before it has a token, and the probes, stay public.
    for public in ("/", "/docs", "/openapi.json", "/healthz"):
        assert client.get(public).status_code in (200, 503), public
    _revoke(token_id)
    assert client.get("/runs", headers=read).status_code == 401


def test_healthz_counts_live_workers_by_their_beats_and_reports_low_disk(make_client):
    from services.common import workers
    from services.common.db import session_scope

    client = make_client(min_free_disk_mb=str(1 << 40))
    with session_scope() as session:
        workers.beat(session, "train-1@host", "train")
        workers.beat(session, "elo-2@host", "elo")
    body = client.get("/healthz").json()
    assert body["workers"]["train"] >= 1 and body["workers"]["elo"] >= 1
    assert "disk" in body["down"] and body["disk"] == "low" and body["disk_free_mb"] > 0


def test_the_leaderboard_is_paged_and_the_matrix_capped(make_client):
    import envs_c
    from services.common.db import session_scope
    from services.common.models import EloPlayer, EloRating, PlayerKind

    client = make_client()
    with session_scope() as session:
        for i in range(7):
            player = EloPlayer(
                env="pong",
                kind=PlayerKind.anchor,
                name=f"paged-{i}",
                label=f"paged {i}",
                env_version=envs_c.version("pong"),
            )
            session.add(player)
            session.flush()
            session.add(
                EloRating(env="pong", player_id=player.id, elo=1000 + i, lo=990 + i, hi=1010 + i, games=4)
            )
    page = client.get("/leaderboard", params={"env": "pong", "limit": 3, "offset": 2}).json()
    assert page["total"] >= 7 and page["limit"] == 3 and page["offset"] == 2
    assert len(page["players"]) == 3
    assert client.get("/leaderboard", params={"env": "pong", "limit": 501}).status_code == 422
    matrix = client.get("/leaderboard/pong/matrix", params={"limit": 4}).json()
    assert len(matrix["players"]) == 4 and len(matrix["games"]) == 4 and matrix["total"] >= 7
    assert client.get("/leaderboard/pong/matrix", params={"limit": 101}).status_code == 422


def test_a_checkpoint_file_linked_out_of_the_store_is_not_served(make_client, tmp_path):
    from services.common import artifacts
    from services.common.db import session_scope
    from services.common.models import Checkpoint

    client = make_client()
    run = client.post("/runs", json=RUN, headers=AUTH).json()
    stem = artifacts.run_dir(run["id"]) / "ckpt_1"
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".safetensors").write_bytes(b"weights")
    secret = tmp_path / "outside.json"
    secret.write_text('{"secret": true}')
    stem.with_suffix(".json").symlink_to(secret)
    with session_scope() as session:
        row = Checkpoint(
            run_id=run["id"],
            step=1,
            path=artifacts.relative(stem.with_suffix(".safetensors"))[: -len(".safetensors")],
            env="cartpole",
            env_version="x",
            size_bytes=7,
            meta={},
        )
        session.add(row)
        session.flush()
        checkpoint_id = row.id
    assert client.get(f"/checkpoints/{checkpoint_id}/download").content == b"weights"
    refused = client.get(f"/checkpoints/{checkpoint_id}/download", params={"part": "meta"})
    assert refused.status_code == 404 and "secret" not in refused.text and str(tmp_path) not in refused.text


def test_the_rate_limiter_refills_at_its_rate():
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=2, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0.0
    now[0] += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
