"""Elo as a sweep metric: a trial's score is its final checkpoint's rating, computed before it is observed.

Runs in-process on the embedded database with Celery messages captured and executed inline (training,
rating, refits and sweep ticks), so the whole chain is exercised without a broker.
"""

from __future__ import annotations

import pytest

from services.common.celery_app import SWEEP_TICK_TASK, TRAIN_TASK
from services.common.db import session_scope
from services.common.models import Trial
from tests.helpers import AUTH

SPACE = {
    "train": {"total_timesteps": {"distribution": "log_normal", "min": 2048, "max": 4096, "scale": "auto"}}
}
BASE = {
    "train": {
        "num_envs": 8,
        "num_steps": 128,
        "minibatch_size": 512,
        "eval_episodes": 4,
        "checkpoint_interval": 1000,
    }
}


# The team game, trained by self-play, with the kill reward swept: trials with different shaping are
# rated in one pool (reward coefficients are not rules of the game).
MOBA = {
    "space": {**SPACE, "env": {"reward_kill": {"distribution": "uniform", "min": 0.0, "max": 3.0}}},
    "hyperparameters": {**BASE, "env": {"max_steps": 100}, "selfplay": {}},
}


@pytest.mark.parametrize(
    "env, request_", [("connect4", {"space": SPACE, "hyperparameters": BASE}), ("moba", MOBA)]
)
def test_an_elo_sweep_scores_trials_by_their_final_checkpoints_rating(
    elo_platform,
    monkeypatch,
    env,
    request_,
):
    client, drain, sent = elo_platform
    monkeypatch.setenv("SHOAL_ELO_GAMES", "8")
    monkeypatch.setenv("SHOAL_ELO_BOOTSTRAP", "20")
    from services.common.settings import get_settings
    from services.sweeper.tasks import tick_sweep
    from services.trainer.tasks import train_run

    get_settings.cache_clear()
    extra = {SWEEP_TICK_TASK: tick_sweep, TRAIN_TASK: train_run}
    response = client.post(
        "/sweeps",
        json={
            "env": env,
            "metric": "elo",
            **request_,
            "max_runs": 2,
            "parallelism": 2,
        },
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    sweep_id = response.json()["id"]

    for _ in range(20):  # drain() runs elo tasks; run the rest here until nothing is left
        pending = list(sent)
        sent.clear()
        for name, args in pending:
            if name in extra:
                extra[name](*args)
            else:
                sent.append((name, args))
                drain()
        if not sent and client.get(f"/sweeps/{sweep_id}").json()["status"] == "finished":
            break

    sweep = client.get(f"/sweeps/{sweep_id}").json()
    assert sweep["status"] == "finished", sweep
    assert [t["status"] for t in sweep["trials"]] == ["succeeded", "succeeded"]
    for trial in sweep["trials"]:
        elo = client.get(f"/runs/{trial['run_id']}/elo").json()["points"]
        assert elo, "the trial's checkpoint was not rated"
        # Later refits move ratings a little; the trial keeps the rating it was observed with.
        latest = elo[-1]
        assert abs(trial["score"] - latest["elo"]) <= latest["hi"] - latest["lo"]
    with session_scope() as session:
        assert session.query(Trial).count() == 2


def test_elo_needs_a_two_player_environment(elo_platform):
    client, _, _ = elo_platform
    response = client.post("/sweeps", json={"env": "cartpole", "metric": "elo"}, headers=AUTH)
    assert response.status_code == 422
    assert "two-player" in response.text and "metric" in response.text
