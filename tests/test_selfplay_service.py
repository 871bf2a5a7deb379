"""Self-play against the platform's database: bad self-play requests are 422s naming the field, a pool may
name checkpoints of other runs, and the league reads the Elo service's match log."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

import envs_c
from services.common import artifacts
from services.common.config import PolicyConfig, SelfPlayConfig
from services.common.db import session_scope
from services.common.models import Checkpoint, EloPlayer, Match, PlayerKind, Run, RunStatus
from services.trainer import checkpoint as ckpt
from services.trainer.league import FIRST_SNAPSHOT, SelfPlayEnv
from services.trainer.league_db import DatabaseLeagueLink
from services.trainer.policy import Policy
from tests.helpers import AUTH


@pytest.fixture
def client(embedded):
    from services.api.app import create_app

    with TestClient(create_app()) as c:
        yield c


def _checkpoint(env: str, step: int = 1000, run_id: int | None = None) -> tuple[int, int]:
    """A run of `env` with one checkpoint row; returns (run id, checkpoint id)."""
    with session_scope() as session:
        if run_id is None:
            run = Run(
                env=env,
                env_version=envs_c.version(env),
                status=RunStatus.succeeded,
                config={},
                overrides={},
                total_timesteps=step,
            )
            session.add(run)
            session.flush()
            run_id = run.id
        row = Checkpoint(
            run_id=run_id,
            step=step,
            path=f"runs/{run_id}/ckpt_{step:014d}",
            env=env,
            env_version=envs_c.version(env),
            size_bytes=1,
            meta={},
        )
        session.add(row)
        session.flush()
        return run_id, row.id


def _post(client: TestClient, env: str, hyperparameters: dict) -> tuple[int, list]:
    r = client.post("/runs", json={"env": env, "hyperparameters": hyperparameters}, headers=AUTH)
    return r.status_code, r.json().get("detail")


def test_a_mix_that_does_not_sum_to_one_is_refused(client) -> None:
    code, detail = _post(client, "moba", {"selfplay": {"mirror": 0.5, "past": 0.5, "bot": 0.5}})
    assert code == 422 and detail[0]["loc"] == ["body", "hyperparameters", "selfplay"]
    assert "sum to 1" in detail[0]["msg"]


def test_a_pool_naming_a_checkpoint_of_another_env_is_refused(client) -> None:
    _, pong = _checkpoint("pong")
    code, detail = _post(client, "moba", {"selfplay": {"pool": [pong]}})
    assert code == 422 and detail[0]["loc"] == ["body", "hyperparameters", "selfplay", "pool", "0"]
    assert f"checkpoint {pong} is a pong checkpoint, not moba" in detail[0]["msg"]
    code, detail = _post(client, "moba", {"selfplay": {"pool": [pong + 100]}})
    assert code == 422 and "does not exist" in detail[0]["msg"]


def test_a_pool_of_the_same_game_is_accepted(client) -> None:
    _, moba = _checkpoint("moba")
    r = client.post(
        "/runs", json={"env": "moba", "hyperparameters": {"selfplay": {"pool": [moba]}}}, headers=AUTH
    )
    assert r.status_code == 201 and r.json()["config"]["selfplay"]["pool"] == [moba]


def test_a_team_size_out_of_bounds_is_refused(client) -> None:
    code, detail = _post(client, "moba", {"env": {"team_size": 6}, "selfplay": {}})
    assert code == 422 and detail[0]["loc"] == ["body", "hyperparameters", "env"]
    assert "team_size" in detail[0]["msg"] and "outside [3" in detail[0]["msg"]


def test_selfplay_for_a_single_player_env_is_refused(client) -> None:
    code, detail = _post(client, "cartpole", {"selfplay": {}})
    assert code == 422 and detail[0]["loc"] == ["body", "hyperparameters", "selfplay"]
    assert "single-player" in detail[0]["msg"]


def _player(session, env: str, name: str, run_id: int | None = None, step: int | None = None) -> int:
    player = EloPlayer(
        env=env,
        kind=PlayerKind.checkpoint if run_id is not None else PlayerKind.anchor,
        name=name,
        label=name,
        run_id=run_id,
        step=step,
        env_version=envs_c.version(env),
    )
    session.add(player)
    session.flush()
    return player.id


def _games(session, env: str, a: int, b: int, scores: list[float]) -> None:
    for seat, score in enumerate(scores):
        session.add(
            Match(
                env=env,
                player_a=a,
                player_b=b,
                seat_a=seat % 2,
                seed=seat,
                score_a=score,
                steps=10,
                env_version=envs_c.version(env),
                code_version="test",
            )
        )


def test_the_league_reads_the_learner_results_from_the_match_log(embedded: Path) -> None:
    run_id, first = _checkpoint("moba", step=100)
    _, second = _checkpoint("moba", step=200, run_id=run_id)
    _, third = _checkpoint("moba", step=300, run_id=run_id)
    _, other = _checkpoint("moba", step=500)
    link = DatabaseLeagueLink(run_id, "moba")
    assert link.results([("step", 100)]) == {}  # nothing rated yet
    with session_scope() as session:
        p100 = _player(session, "moba", str(first), run_id, 100)
        p200 = _player(session, "moba", str(second), run_id, 200)
        _player(session, "moba", str(third), run_id, 300)  # newest, but has not played: not the stand-in
        p_other = _player(session, "moba", str(other), run_id + 1, 500)
        scripted = _player(session, "moba", "scripted")
        _games(session, "moba", p200, p100, [1.0, 1.0, 0.5, 0.0])  # the learner (step 200) as a
        _games(session, "moba", p_other, p200, [1.0, 1.0])  # and as b
        _games(session, "moba", p200, scripted, [0.0])
    results = link.results([("step", 100), ("step", 200), ("checkpoint", other), ("step", 300)])
    assert results == {("step", 100): (2.5, 4.0), ("checkpoint", other): (0.0, 2.0)}
    names = [path.name for path in link.members([other, first])]
    assert names == ["ckpt_00000000000500", "ckpt_00000000000100"]


def test_a_pool_checkpoint_of_another_run_sits_in_the_pool_all_run(embedded: Path) -> None:
    # A moba checkpoint of another run, trained with other shaping: it plays in the pool from the start.
    spec = envs_c.make_spec("moba", reward_kill=2.0)
    trained = Policy(spec.observation_space.shape, spec.to_dict()["action"], PolicyConfig(hidden_size=32))
    run_id, checkpoint_id = _checkpoint("moba", step=700)
    meta = {"env": "moba", "env_version": spec.version, "env_config": spec.config, "env_spec": spec.to_dict()}
    ckpt.save_policy(artifacts.root() / f"runs/{run_id}/ckpt_{700:014d}", trained, meta)
    learner = Policy(spec.observation_space.shape, spec.to_dict()["action"], PolicyConfig(hidden_size=32))
    config = SelfPlayConfig(mirror=0.0, past=1.0, bot=0.0, pool_size=2, pool=[checkpoint_id])
    env = SelfPlayEnv(
        envs_c.make("moba", 4, opponent=1),
        learner,
        config,
        torch.device("cpu"),
        link=DatabaseLeagueLink(run_id + 1, "moba"),
    )
    assert env.league.keys[0] == ("checkpoint", checkpoint_id)
    assert (env.opponent == FIRST_SNAPSHOT).all()  # the only member of the pool so far
    for name, weight in trained.state_dict().items():
        assert torch.equal(env._snapshots[0].state_dict()[name], weight)
    env.snapshot(10)
    env.snapshot(20)
    env.snapshot(30)  # the snapshots take turns in their slots; the named checkpoint stays
    assert env.league.keys == [("checkpoint", checkpoint_id), ("step", 30), ("step", 20)]
    env.close()
