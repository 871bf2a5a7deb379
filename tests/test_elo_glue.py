"""The elo glue in-process on the embedded database: rate -> play batches -> refit -> API reads.

Celery messages are captured and run inline, so these tests need no broker or worker; the real
processes on PostgreSQL and Redis are exercised by tests/test_elo_service.py.
"""

from __future__ import annotations

import sys

import pytest

from services.common.celery_app import ELO_PLAY_TASK, ELO_RATE_TASK, ELO_REFIT_TASK
from services.common.db import session_scope
from tests.helpers import AUTH, make_checkpoint


def add_checkpoints(env: str, steps: list[int], **config) -> tuple[int, list[int]]:
    """A run with untrained checkpoints saved in the artifact store; returns (run id, checkpoint ids)."""
    from services.common import artifacts
    from services.common.models import Checkpoint
    from services.common.runs import create_run

    with session_scope() as session:
        run = create_run(session, env, {"env": config} if config else {})
        ids = []
        for step in steps:
            stem = make_checkpoint(artifacts.run_dir(run.id), env, name=f"ckpt_{step}", **config)
            row = Checkpoint(
                run_id=run.id, step=step, path=artifacts.relative(stem), env=env,
                env_version=run.env_version, size_bytes=1, meta={},
            )  # fmt: skip
            session.add(row)
            session.flush()
            ids.append(row.id)
        return run.id, ids


def test_rating_a_checkpoint_plays_the_anchors_and_serves_the_leaderboard(elo_platform, monkeypatch):
    client, drain, sent = elo_platform
    monkeypatch.setenv("SHOAL_ELO_GAMES", "8")
    from services.common.settings import get_settings

    get_settings.cache_clear()
    run_id, (first, second) = add_checkpoints("connect4", [100, 200])
    sent.append((ELO_RATE_TASK, [first]))
    sent.append((ELO_RATE_TASK, [second, 7]))
    done = drain()
    names = [name for name, _ in done]
    # first: random, scripted; second: random, scripted, its predecessor (first).
    assert names.count(ELO_PLAY_TASK) == 5 and names.count(ELO_REFIT_TASK) == 2
    assert done[-1] == ("shoal.sweeper.tick", [7])

    board = client.get("/leaderboard", params={"env": "connect4"}).json()
    assert board["env"] == "connect4" and board["anchor"] == "random"
    ids = [p["id"] for p in board["players"]]
    assert set(ids) == {"random", "scripted", str(first), str(second)}
    assert [p["elo"] for p in board["players"]] == sorted((p["elo"] for p in board["players"]), reverse=True)
    random_row = next(p for p in board["players"] if p["id"] == "random")
    assert (
        random_row["elo"] == 1000 and random_row["kind"] == "anchor" and random_row["checkpoint_id"] is None
    )
    row = next(p for p in board["players"] if p["id"] == str(first))
    assert row == {
        **row, "kind": "checkpoint", "checkpoint_id": first, "run_id": run_id, "step": 100, "games": 24,
    }  # fmt: skip
    assert row["lo"] <= row["elo"] <= row["hi"]
    scripted = next(p for p in board["players"] if p["id"] == "scripted")
    assert scripted["elo"] > row["elo"], "the negamax bot must beat an untrained policy"

    matrix = client.get("/leaderboard/connect4/matrix").json()
    assert matrix["players"] == ids and len(matrix["labels"]) == 4
    i, j = ids.index(str(first)), ids.index("random")
    assert matrix["games"][i][j] == matrix["games"][j][i] == 8
    assert matrix["score"][i][j] + matrix["score"][j][i] == pytest.approx(1.0)
    assert matrix["score"][i][i] is None

    elo = client.get(f"/runs/{run_id}/elo").json()
    assert elo["run_id"] == run_id
    assert [(p["step"], p["checkpoint_id"]) for p in elo["points"]] == [(100, first), (200, second)]
    assert client.get("/runs/999/elo").status_code == 404

    from services.common.ratings import checkpoint_rating

    with session_scope() as session:
        assert checkpoint_rating(session, second).elo == next(
            p["elo"] for p in elo["points"] if p["step"] == 200
        )
        assert checkpoint_rating(session, 999) is None


def test_a_corrupt_checkpoint_is_refused_with_a_reason_and_the_rest_goes_on(elo_platform):
    client, drain, _ = elo_platform
    from services.common import artifacts
    from services.common.models import Checkpoint, EloPlayer, MatchBatch

    _, (good, bad) = add_checkpoints("pong", [1, 2], points=1)
    with session_scope() as session:
        stem = artifacts.absolute(session.get(Checkpoint, bad).path)
    stem.with_suffix(".safetensors").write_bytes(b"not safetensors")

    reply = client.post("/matches", json={"a": good, "b": bad, "games": 4}, headers=AUTH)
    assert reply.status_code == 202, reply.text
    reply = client.post("/matches", json={"a": good, "b": "random", "games": 4}, headers=AUTH)
    assert reply.status_code == 202 and reply.json()["a"] == str(good) and reply.json()["b"] == "random"
    drain()
    with session_scope() as session:
        batches = session.query(MatchBatch).order_by(MatchBatch.id).all()
        assert [b.status for b in batches] == ["refused", "played"]
        assert "cannot load weights" in batches[0].reason
        refused = session.query(EloPlayer).filter_by(name=str(bad)).one()
        assert "cannot load weights" in refused.refused
    players = {p["id"]: p for p in client.get("/leaderboard", params={"env": "pong"}).json()["players"]}
    assert players[str(good)]["games"] == 4 and str(bad) not in players

    again = client.post("/matches", json={"a": bad, "b": "random", "games": 4}, headers=AUTH)
    assert again.status_code == 422 and "refused" in again.text


def test_a_checkpoint_of_a_single_player_env_is_not_rated(elo_platform):
    _, drain, sent = elo_platform
    _, (checkpoint,) = add_checkpoints("cartpole", [1])
    sent.append((ELO_RATE_TASK, [checkpoint, 1]))
    assert drain() == [
        (ELO_RATE_TASK, [checkpoint, 1]),
        ("shoal.sweeper.tick", [1]),
    ]


@pytest.mark.parametrize(
    ("body", "code", "where"),
    [
        ({"a": "random", "b": "scripted", "games": 4}, 422, "env"),
        ({"a": "random", "b": "scripted", "games": 4, "env": "cartpole"}, 422, "two-player"),
        ({"a": "random", "b": "scripted", "games": 3, "env": "pong"}, 422, "even"),
        ({"a": "random", "b": "scripted", "games": 20_000, "env": "pong"}, 422, "games"),
        ({"a": "random", "b": "random", "games": 4, "env": "pong"}, 422, "itself"),
        ({"a": 12345, "b": "random", "games": 4}, 404, "checkpoint 12345 does not exist"),
        (
            {"a": "best", "b": "random", "games": 4, "env": "pong"},
            422,
            "neither a checkpoint id nor an anchor",
        ),
    ],
)
def test_post_matches_validates(elo_platform, body, code, where):
    client, _, sent = elo_platform
    reply = client.post("/matches", json=body, headers=AUTH)
    assert reply.status_code == code and where in reply.text, reply.text
    assert not sent


def test_post_matches_needs_a_token_and_splits_large_requests(elo_platform):
    client, _, sent = elo_platform
    body = {"a": "random", "b": "scripted", "games": 300, "env": "pong"}
    assert client.post("/matches", json=body).status_code == 401
    reply = client.post("/matches", json=body, headers=AUTH).json()
    assert [b["games"] for b in reply["batches"]] == [128, 128, 44] and len(sent) == 3


def test_leaderboard_refuses_unknown_and_single_player_envs(elo_platform):
    client, _, _ = elo_platform
    for env in ("chess", "cartpole"):
        reply = client.get("/leaderboard", params={"env": env})
        assert reply.status_code == 422 and reply.json()["detail"][0]["loc"] == ["query", "env"]
    assert client.get("/leaderboard/cartpole/matrix").status_code == 422
    assert client.get("/leaderboard", params={"env": "reversi"}).json() == {
        "env": "reversi", "anchor": "random", "players": [], "total": 0, "limit": 100, "offset": 0,
    }  # fmt: skip


def test_the_api_does_not_import_torch():
    import subprocess

    code = "import sys, services.api.app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(
    ("env", "config", "rated"),
    [("pong", {}, True), ("connect4", {"opponent": 1}, True), ("cartpole", {}, False)],
)
def test_the_trainer_asks_for_a_rating_of_two_player_checkpoints(elo_platform, env, config, rated):
    # Pong trained against its bot (opponent=0) has one agent per env, but its policy can take a seat.
    from services.common import artifacts
    from services.common.config import resolve
    from services.common.runs import claim
    from services.trainer.tasks import DatabaseSink

    _, _, sent = elo_platform
    run_id, _ = add_checkpoints(env, [], **config)
    with session_scope() as session:
        assert claim(session, run_id, "worker-1")
    stem = make_checkpoint(artifacts.run_dir(run_id), env, name="ckpt_5", **config)
    sink = DatabaseSink(run_id, "worker-1", resolve(env, {"env": config}), writer=None)
    sink.checkpoint(5, stem, 1, {"env": env, "env_version": "v"})
    assert [m for m in sent if m[0] == ELO_RATE_TASK] == ([(ELO_RATE_TASK, [1])] if rated else [])


def _add_games(session, env: str, a: int, b: int, scores: list[float]) -> None:
    import envs_c
    from services.common.models import Match

    version = envs_c.version(env)
    fields = {"env": env, "steps": 10, "env_version": version, "code_version": "test"}
    session.add_all(
        Match(player_a=a, player_b=b, seat_a=i % 2, seed=i, score_a=score, **fields)
        for i, score in enumerate(scores)
    )


def test_a_refit_with_no_new_games_is_skipped_and_new_games_are_fitted(elo_platform):
    from services.common.models import EloRating
    from services.elo import store, tasks

    with session_scope() as session:
        random = store.anchor(session, "pong", "random")
        scripted = store.anchor(session, "pong", "scripted")
        _add_games(session, "pong", scripted.id, random.id, [1.0] * 9 + [0.0])
        ids = (random.id, scripted.id)
    assert tasks.refit("pong") == 2
    with session_scope() as session:
        first = {r.player_id: (r.elo, r.games) for r in session.query(EloRating)}
    assert tasks.refit("pong") is None, "nothing new: the bootstrap must not run again"
    with session_scope() as session:
        _add_games(session, "pong", ids[1], ids[0], [1.0] * 10)
    assert tasks.refit("pong") == 2
    with session_scope() as session:
        second = {r.player_id: (r.elo, r.games) for r in session.query(EloRating)}
    assert first[ids[1]][1] == 10 and second[ids[1]][1] == 20
    assert second[ids[1]][0] > first[ids[1]][0]


def test_concurrent_refits_of_one_env_take_turns_and_the_second_is_skipped(pg_url):
    """On PostgreSQL, two refits queued by jobs that finished together: one fits, the other waits for it and
    finds nothing left to fit."""
    import threading

    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    from services.elo import store

    make_session = sessionmaker(create_engine(pg_url))
    with make_session.begin() as session:
        random = store.anchor(session, "reversi", "random")
        scripted = store.anchor(session, "reversi", "scripted")
        _add_games(session, "reversi", scripted.id, random.id, [1.0] * 30 + [0.5] * 2)
    results: list = []
    barrier = threading.Barrier(2)

    def refit() -> None:
        barrier.wait()
        with make_session.begin() as session:
            results.append(store.refit(session, "reversi", bootstrap=400))

    threads = [threading.Thread(target=refit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(r is None for r in results) == [False, True]
