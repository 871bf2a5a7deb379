"""shoal.client.Client against a live server: the embedded platform's API and its train, sweeper and elo
workers as real processes. Launch, follow, name and cancel runs; read metrics as DataFrames and as lists;
sweep and promote; play and poll matches; typed errors carrying the API's message."""

from __future__ import annotations

import csv
import sys

import pandas as pd
import pytest

from shoal.client import AuthError, Client, InvalidRequest, NotFound, Unavailable
from tests.helpers import Platform, free_port, wait_for

SMALL = {"train": {"num_envs": 8, "num_steps": 64, "minibatch_size": 256, "eval_episodes": 4}}


@pytest.fixture(scope="module")
def client(embedded_platform: Platform) -> Client:
    return Client(embedded_platform.url, token=embedded_platform.env["SHOAL_API_TOKEN"])


@pytest.fixture(scope="module")
def finished_run(client: Client) -> dict:
    run = client.create_run(
        "cartpole", SMALL, total_timesteps=8192, seed=3, tags=["client"], name="from-python"
    )
    states = list(client.follow(run["id"], every=0.5, timeout=240))
    assert states[-1]["status"] == "succeeded", states[-1]
    assert states[-1]["progress_steps"] >= 8192 and "env/perf" in states[-1]
    return client.run(run["id"])


def test_errors_are_typed_and_carry_the_apis_message(client: Client, embedded_platform: Platform) -> None:
    with pytest.raises(AuthError, match="token"):
        Client(embedded_platform.url, token="wrong").create_run("cartpole")
    with pytest.raises(InvalidRequest) as refused:
        client.create_run("cartpole", {"train": {"learning_rat": 0.1}})
    assert "learning_rat" in str(refused.value) and refused.value.status == 422
    assert refused.value.errors[0]["loc"][-1] == "learning_rat"
    with pytest.raises(NotFound, match="run 987654 does not exist"):
        client.run(987654)
    with pytest.raises(InvalidRequest, match="not a two-player environment"):
        client.leaderboard("cartpole")
    with pytest.raises(Unavailable):
        Client(f"http://127.0.0.1:{free_port()}", timeout=2).envs()


def test_a_run_is_launched_followed_named_and_read_back(client: Client, finished_run: dict) -> None:
    run_id = finished_run["id"]
    assert finished_run["name"] == "from-python" and finished_run["tags"] == ["client"]
    assert finished_run["created_at"].endswith("Z")
    named = client.update_run(run_id, notes="first try from a notebook")
    assert named["notes"] == "first try from a notebook" and named["name"] == "from-python"
    assert [r["id"] for r in client.runs(q="from-python")] == [run_id]

    frame = client.metrics(run_id)
    assert isinstance(frame, pd.DataFrame) and frame.index.name == "step"
    assert {"env/perf", "SPS"} <= set(frame.columns) and len(frame) > 0
    plain = client.metrics(run_id, ["SPS"], as_frame=False)
    assert list(plain) == ["SPS"] and len(plain["SPS"]["step"]) == len(plain["SPS"]["value"]) > 0

    history = client.history(run_id)
    assert list(history.columns[:2]) == ["step", "time"] and history["step"].is_monotonic_increasing
    rows = client.history(run_id, ["SPS"], as_frame=False)
    assert rows and set(rows[0]) == {"step", "time", "SPS"}


def test_without_pandas_metrics_come_as_plain_lists(
    client: Client, finished_run: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pandas is an optional extra: where it is missing the default is plain lists, and asking for a
    frame says what to install."""
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now raises ImportError
    plain = client.metrics(finished_run["id"], ["SPS"])
    assert list(plain) == ["SPS"] and len(plain["SPS"]["step"]) > 0
    assert isinstance(client.history(finished_run["id"], ["SPS"]), list)
    with pytest.raises(ImportError, match=r"pip install 'shoal\[client\]'"):
        client.metrics(finished_run["id"], ["SPS"], as_frame=True)


def test_metrics_and_checkpoints_download_to_files(client: Client, finished_run: dict, tmp_path) -> None:
    path = client.export_metrics(finished_run["id"], tmp_path / "m.csv")
    header = next(csv.reader(path.open()))
    assert header[:2] == ["step", "time"] and "SPS" in header
    checkpoint = finished_run["checkpoints"][-1]
    weights = client.download_checkpoint(checkpoint["id"], tmp_path / "w.safetensors")
    assert weights.stat().st_size == checkpoint["size_bytes"]
    meta = client.download_checkpoint(checkpoint["id"], tmp_path / "w.json", part="meta")
    assert '"env"' in meta.read_text()


def test_a_run_can_be_cancelled(client: Client) -> None:
    run = client.create_run("cartpole", total_timesteps=10**9, tags=["client-cancel"])
    client.cancel(run["id"])
    assert client.wait(run["id"], timeout=120, every=0.5)["status"] == "cancelled"


def test_a_sweep_is_started_read_and_promoted(client: Client) -> None:
    sweep = client.create_sweep(
        "cartpole",
        max_runs=2,
        parallelism=2,
        early_stopping=False,
        hyperparameters={**SMALL, "train": {**SMALL["train"], "total_timesteps": 8192}},
        space={"train": {"learning_rate": {"distribution": "log_normal", "min": 1e-3, "max": 3e-3}}},
    )
    done = client.wait_sweep(sweep["id"], timeout=300, every=1.0)
    assert done["status"] == "finished"
    trials = client.trials(sweep["id"])
    assert isinstance(trials, pd.DataFrame) and "train.learning_rate" in trials.columns and len(trials) == 2
    plain = client.trials(sweep["id"], as_frame=False)
    best = done["best"]
    promoted = client.promote(sweep["id"], best["trial_id"], total_timesteps=4096)
    assert promoted["total_timesteps"] == 4096 and promoted["status"] in ("queued", "running")
    trial = next(t for t in plain if t["id"] == best["trial_id"])
    rate = promoted["config"]["train"]["learning_rate"]
    assert rate == pytest.approx(trial["params"]["train"]["learning_rate"])
    client.cancel(promoted["id"])


def test_matches_are_played_and_polled_and_the_leaderboard_read(client: Client) -> None:
    job = client.play("scripted", "random", games=8, env="pong")
    assert client.match_job(job["job_id"])["status"] in ("queued", "running", "finished")
    played = client.wait_match_job(job["job_id"], timeout=180)
    assert played["games_played"] == 8 and 0.0 <= played["score_a"] <= 1.0
    # The ratings refit follows the job's last batch within seconds.
    board = wait_for(lambda: client.leaderboard("pong", as_frame=False), 120, 1.0, "pong ratings")
    assert {"random", "scripted"} <= {p["id"] for p in board}
    assert isinstance(client.leaderboard("pong"), pd.DataFrame)
    (second,) = client.leaderboard("pong", limit=1, offset=1, as_frame=False)
    assert second == board[1]
