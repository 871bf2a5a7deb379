"""A sweep starts from the run its user would launch: the config's values centre the search space.

Runs in-process on the embedded database with Celery messages captured (nothing trains here).
"""

from __future__ import annotations

import pytest

from services.common.celery_app import TRAIN_TASK
from tests.helpers import AUTH


def test_the_first_trial_is_the_config_and_the_space_shows_its_centre(elo_platform):
    client, _, sent = elo_platform
    from services.sweeper.tasks import tick_sweep

    given_mean = {"distribution": "uniform_pow2", "min": 16, "max": 128, "scale": "auto", "mean": 32}
    response = client.post(
        "/sweeps",
        json={
            "env": "cartpole",
            "space": {
                "train": {
                    "total_timesteps": {"distribution": "log_normal", "min": 20_000, "max": 400_000},
                    "learning_rate": {"distribution": "log_normal", "min": 1e-4, "max": 3e-2},
                    "gamma": {"distribution": "logit_normal", "min": 0.9, "max": 0.999},
                    "clip_coef": {"distribution": "uniform", "min": 0.3, "max": 0.5},
                },
                "policy": {"hidden_size": given_mean},
            },
            "hyperparameters": {"train": {"learning_rate": 0.001}},
            "parallelism": 1,
        },
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    sweep_id = response.json()["id"]
    space = client.get(f"/sweeps/{sweep_id}").json()["space"]
    # configs/cartpole.toml has gamma 0.98; the sweep's fixed hyperparameters override its learning rate.
    assert space["train"]["gamma"]["mean"] == 0.98
    assert space["train"]["learning_rate"]["mean"] == 0.001
    assert space["policy"]["hidden_size"]["mean"] == 32, "a mean the user gave is kept"
    assert "mean" not in space["train"]["clip_coef"], "the default 0.2 is out of range: no centre"

    tick_sweep(sweep_id)
    trial = client.get(f"/sweeps/{sweep_id}").json()["trials"][0]
    assert trial["reason"] == "centre"
    assert trial["params"]["train"]["gamma"] == pytest.approx(0.98)
    assert trial["params"]["train"]["learning_rate"] == pytest.approx(0.001)
    assert trial["params"]["policy"]["hidden_size"] == 32
    assert trial["params"]["train"]["clip_coef"] == pytest.approx(0.4)
    # The config as it is, at its own cost: its 400k steps, the top of the range.
    assert trial["params"]["train"]["total_timesteps"] == 400_000
    assert [name for name, _ in sent].count(TRAIN_TASK) == 1, "parallelism 1: one trial in flight"
