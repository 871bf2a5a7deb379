"""Bring your own environment (issue 15) on real PostgreSQL, Redis and worker processes: a user C environment
on SHOAL_ENV_PATH and Python environments listed by GET /envs and trained through POST /runs; a name
defined twice, an id off SHOAL_PYTHON_ENVS and a Python environment that raises in step each get a clear
error, nothing half-written, and the worker keeps serving; a PettingZoo game's checkpoint is rated.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from envs_c.pyenvs import allowlist
from envs_c.scaffold import scaffold
from tests.helpers import Platform, platform_env, wait_for, wait_for_run

pytestmark = [pytest.mark.services, pytest.mark.slow]

SMALL = {"num_envs": 8, "num_steps": 32, "minibatch_size": 128, "eval_episodes": 8}
RAISING = "gymnasium:tests.pyenv_fixtures:Raising-v0"


@pytest.fixture(scope="module")
def platform(pg_url: str, redis_url: str, tmp_path_factory) -> Iterator[Platform]:
    tmp = tmp_path_factory.mktemp("byoe")
    envs = tmp / "envs"
    scaffold("walker", envs)
    (envs / "raising.pyenv.toml").write_text(f'id = "{RAISING}"\nreturns = [0, 1]\n')
    (envs / "typo.pyenv.toml").write_text('id = "gymnasium:CartPole-v1"\nreturn = [0, 1]\n')
    twice = tmp / "twice"
    for directory in (envs, twice):
        scaffold("twin", directory)
    env = platform_env(
        tmp,
        pg_url,
        redis_url,
        SHOAL_ENV_PATH=f"{envs}:{twice}",
        SHOAL_ENV_CACHE=str(tmp / "cache"),
        SHOAL_PYTHON_ENVS=f"{allowlist.DEFAULT},gymnasium:tests.pyenv_fixtures:*",
    )
    with Platform(env, tmp).running("train") as platform:
        yield platform


def _runs(client) -> int:
    return client.get("/runs").json()["total"]


def test_user_and_python_envs_are_listed_and_bad_names_refused(platform: Platform) -> None:
    with platform.client() as client:
        listed = {e["name"]: e for e in client.get("/envs").json()}
        assert listed["walker"]["source"].endswith("envs/walker.env.toml")
        assert listed["gymnasium:CartPole-v1"]["source"] == "gymnasium"
        assert listed["gymnasium:CartPole-v1"]["defaults"]["train"]["gamma"] == 0.98
        assert listed["pettingzoo:classic.connect_four_v3"]["players"] == [[0]]
        assert (
            "defined twice" in listed["twin"]["error"]
            and "no reward_threshold" in listed["gymnasium:Pendulum-v1"]["error"]
        )
        before = _runs(client)
        for env, message in [
            ("gymnasium:MountainCar-v0:os", "SHOAL_PYTHON_ENVS"),
            ("pettingzoo:butterfly.pistonball_v6", "SHOAL_PYTHON_ENVS"),
            ("twin", "twin is defined twice"),
        ]:
            response = client.post("/runs", json={"env": env, "total_timesteps": 1024})
            assert response.status_code == 422, response.text
            assert message in response.text and response.json()["detail"][0]["loc"] == ["body", "env"]
        assert _runs(client) == before  # nothing written


def test_user_c_env_trains_through_the_api(platform: Platform) -> None:
    with platform.client() as client:
        run = client.post(
            "/runs", json={"env": "walker", "total_timesteps": 4096, "hyperparameters": {"train": SMALL}}
        )
        assert run.status_code == 201, run.text
        done = wait_for_run(client, run.json()["id"], 240, "the walker run")
        assert done["status"] == "succeeded" and 0.0 <= done["final_score"] <= 1.0, done


def test_python_env_that_raises_fails_its_run_and_the_worker_serves_the_next(platform: Platform) -> None:
    with platform.client() as client:
        bad = client.post(
            "/runs", json={"env": RAISING, "total_timesteps": 4096, "hyperparameters": {"train": SMALL}}
        )
        assert bad.status_code == 201, bad.text
        failed = wait_for_run(client, bad.json()["id"], 180, "the raising run to fail")
        assert failed["status"] == "failed", failed
        assert failed["failure_reason"].endswith("ValueError: the pole fell through the floor at step 4"), (
            failed
        )
        good = client.post(
            "/runs",
            json={
                "env": "gymnasium:CartPole-v1",
                "total_timesteps": 8192,
                "hyperparameters": {"train": SMALL},
            },
        )
        done = wait_for_run(client, good.json()["id"], 240, "the CartPole run")
        assert done["status"] == "succeeded" and done["final_score"] is not None, done
        assert client.get(f"/runs/{done['id']}/metrics", params={"keys": "env/perf"}).json()


def test_pettingzoo_game_checkpoint_is_rated_on_the_leaderboard(platform: Platform) -> None:
    platform.start_worker("elo")
    env = "pettingzoo:classic.connect_four_v3"
    with platform.client() as client:
        run = client.post(
            "/runs",
            json={
                "env": env,
                "total_timesteps": 4096,
                "hyperparameters": {"train": {**SMALL, "checkpoint_interval": 8}},
            },
        )
        assert run.status_code == 201, run.text
        done = wait_for_run(client, run.json()["id"], 240, "the connect four run")
        assert done["status"] == "succeeded", done
        ids = {str(c["id"]) for c in done["checkpoints"]}

        def rated() -> bool:
            board = client.get("/leaderboard", params={"env": env}).json()
            return ids <= {p["id"] for p in board.get("players", [])}

        wait_for(rated, 300, 2.0, "the checkpoints on the leaderboard")
        board = client.get("/leaderboard", params={"env": env}).json()
        assert {"random", "scripted"} <= {p["id"] for p in board["players"]}
