"""Sweeps through the API with real sweeper and trainer workers on PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from services.sweeper.front import pareto_front
from tests.helpers import END_STATES, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow]

SPACE = {
    "train": {
        "total_timesteps": {"distribution": "log_normal", "min": 150_000, "max": 400_000, "scale": "auto"},
        "learning_rate": {"distribution": "log_normal", "min": 0.0008, "max": 0.004, "scale": "auto"},
        "num_envs": {"distribution": "uniform_pow2", "min": 8, "max": 32, "scale": "auto"},
    }
}
BASE = {"train": {"gamma": 0.98, "eval_episodes": 16}}


@pytest.fixture(scope="module")
def sweep_platform(services_platform):
    services_platform.start_worker("sweeper")
    services_platform.start_worker("train")  # two trainers: parallelism 2
    return services_platform


def create_sweep(client, **body) -> int:
    """POST /sweeps for a cartpole sweep with `body`; the new sweep's id."""
    created = client.post("/sweeps", json={"env": "cartpole", **body})
    assert created.status_code == 201, created.text
    return created.json()["id"]


def wait_finished(client, sweep_id: int, timeout: float, what: str = "the sweep to finish") -> dict:
    """The sweep as the API shows it once finished."""
    return wait_for(
        lambda: (s := client.get(f"/sweeps/{sweep_id}").json())["status"] == "finished" and s,
        timeout,
        2,
        what,
    )


def check_consistent(sweep: dict, max_runs: int) -> None:
    trials = sweep["trials"]
    assert sweep["status"] == "finished"
    assert len(trials) == max_runs, [t["status"] for t in trials]
    assert sorted(t["number"] for t in trials) == list(range(1, max_runs + 1))
    assert len({json.dumps(t["params"], sort_keys=True) for t in trials}) == max_runs, "duplicate suggestions"
    assert len({t["run_id"] for t in trials}) == max_runs
    assert all(t["status"] in ("succeeded", "failed", "early_stopped") for t in trials)
    done = [t for t in trials if t["status"] == "succeeded"]
    front = pareto_front([(t["cost_seconds"], t["score"]) for t in done])
    assert sweep["pareto"] == [done[i]["id"] for i in front]
    best = max(done, key=lambda t: t["score"])
    assert sweep["best"]["trial_id"] == best["id"]
    # Every trial off the front is dominated: some front trial costs no more and scores at least as well.
    front_trials = [t for t in done if t["id"] in sweep["pareto"]]
    for trial in done:
        if trial["id"] not in sweep["pareto"]:
            assert any(
                f["cost_seconds"] <= trial["cost_seconds"] and f["score"] >= trial["score"]
                for f in front_trials
            ), trial


def test_a_sweep_finds_a_solving_trial_and_promotes_it_exactly(sweep_platform):
    with sweep_platform.client() as client:
        sweep_id = create_sweep(client, space=SPACE, hyperparameters=BASE, max_runs=12, parallelism=2, seed=1)
        in_flight_seen = wait_for(
            lambda: (
                (s := client.get(f"/sweeps/{sweep_id}").json())
                and sum(t["status"] == "running" for t in s["trials"]) == 2
            ),
            60,
            what="two trials in flight",
        )
        assert in_flight_seen
        sweep = wait_finished(client, sweep_id, 900)
        check_consistent(sweep, 12)
        assert sweep["best"]["score"] >= 0.95, "no trial reached cartpole's solved threshold"
        assert any(t["predicted_score"] is not None for t in sweep["trials"]), "no model-based suggestion"

        best = sweep["best"]
        trial_run = client.get(f"/runs/{best['run_id']}").json()
        promoted = client.post(
            f"/sweeps/{sweep_id}/promote", json={"trial_id": best["trial_id"], "total_timesteps": 50_000}
        )
        assert promoted.status_code == 201, promoted.text
        run = promoted.json()
        expected = {
            **trial_run["config"],
            "train": {**trial_run["config"]["train"], "total_timesteps": 50_000},
        }
        assert run["config"] == expected, "promotion must copy every hyperparameter exactly"
        assert "promoted" in run["tags"]
        client.post(f"/runs/{run['id']}/cancel")


def test_a_sweep_survives_killed_sweeper_and_trainer_workers(sweep_platform):
    platform = sweep_platform
    with platform.client() as client:
        sweep_id = create_sweep(
            client, space=SPACE, hyperparameters=BASE, max_runs=6, parallelism=2, seed=7, early_stopping=False
        )
        wait_for(
            lambda: any(
                t["status"] == "succeeded" for t in client.get(f"/sweeps/{sweep_id}").json()["trials"]
            ),
            300,
            what="a first finished trial",
        )

        def training() -> int:
            # A trial is "running" from its run's creation; the run itself is "running" once a trainer has
            # claimed it, so that killing a trainer kills a run rather than a message it had not started.
            trials = client.get(f"/sweeps/{sweep_id}").json()["trials"]
            runs = [client.get(f"/runs/{t['run_id']}").json() for t in trials if t["status"] == "running"]
            return sum(r["status"] == "running" for r in runs)

        wait_for(lambda: training() == 2, 60, what="two trials training")
        alive = platform.live_workers()
        sweeper = next(p for p in alive if "sweeper" in str(p.args))
        trainer = next(p for p in alive if "train" in str(p.args))
        for process in (sweeper, trainer):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        time.sleep(2)
        platform.start_worker("sweeper")
        platform.start_worker("train")
        sweep = wait_finished(client, sweep_id, 900, "the sweep to finish after the crash")
        check_consistent(sweep, 6)
        assert all(t["status"] == "succeeded" for t in sweep["trials"]), (
            "an infrastructure failure reached the model"
        )
        attempts = [client.get(f"/runs/{t['run_id']}").json()["attempts"] for t in sweep["trials"]]
        assert max(attempts) >= 2, "the killed trainer's run should have been redelivered"


def test_a_step_budget_ends_the_sweep_once_spent_and_never_overruns(sweep_platform):
    budget = 400_000
    with sweep_platform.client() as client:
        steps = {"distribution": "log_normal", "min": 20_000, "max": 80_000}
        sweep_id = create_sweep(
            client,
            space={"train": {"total_timesteps": steps, "learning_rate": SPACE["train"]["learning_rate"]}},
            hyperparameters=BASE,
            cost_unit="steps",
            budget="400k steps",
            parallelism=2,
            seed=5,
        )
        seen = []  # what the API said was used while the sweep ran: it never exceeds the budget
        sweep = wait_for(
            lambda: (
                (s := client.get(f"/sweeps/{sweep_id}").json())
                and not seen.append(s["budget_used"])
                and s["status"] == "finished"
                and s
            ),
            600,
            2,
            "the budget to be spent",
        )
        runs = [client.get(f"/runs/{t['run_id']}").json() for t in sweep["trials"] if t["run_id"]]
        summary = next(s for s in client.get("/sweeps").json()["items"] if s["id"] == sweep_id)

    assert sweep["budget"] == budget and sweep["max_runs"] == 10_000, "the budget alone ends this sweep"
    assert all(r["status"] in END_STATES for r in runs), "a run outlived its sweep"
    # Every step any trial trained counts, early-stopped runs' last epochs included.
    assert sweep["budget_used"] == sum(r["cost_steps"] for r in runs)
    assert 0.9 * budget <= sweep["budget_used"] <= budget, sweep["budget_used"]
    assert max(seen) <= budget
    assert sweep["budget_left"] == budget - sweep["budget_used"]
    assert (summary["cost_unit"], summary["budget_used"]) == ("steps", sweep["budget_used"])
    assert len(sweep["trials"]) >= 6, "the budget pays for several trials of 20k to 80k steps"
    # Each trial shows what the budget held for it while it ran: at least its predicted cost.
    # What the budget held for each trial while it ran: nothing for the first two, proposed before any
    # cost was known; at least its predicted cost once the search predicts one.
    trials = sorted(sweep["trials"], key=lambda t: t["number"])
    assert all(t["reserved_cost"] > 0 for t in trials[2:]), trials
    assert all(t["reserved_cost"] >= t["predicted_cost"] for t in trials if t["predicted_cost"]), trials


def test_a_categorical_parameter_reaches_the_trials_runs(sweep_platform):
    choices = ["adam", "muon"]
    with sweep_platform.client() as client:
        optimizer = {"distribution": "categorical", "choices": choices}
        sweep_id = create_sweep(
            client,
            space={"train": {"optimizer": optimizer, "learning_rate": SPACE["train"]["learning_rate"]}},
            hyperparameters={"train": {**BASE["train"], "total_timesteps": 16_384}},
            max_runs=4,
            parallelism=2,
            early_stopping=False,
        )
        sweep = wait_finished(client, sweep_id, 300)
        runs = {t["id"]: client.get(f"/runs/{t['run_id']}").json() for t in sweep["trials"]}

    assert sweep["space"]["train"]["optimizer"]["mean"] == "adam", "centred on configs/cartpole.toml"
    assert sweep["trials"][0]["params"]["train"]["optimizer"] == "adam", "the first trial is the config"
    for trial in sweep["trials"]:
        assert trial["status"] == "succeeded", trial
        assert runs[trial["id"]]["config"]["train"]["optimizer"] == trial["params"]["train"]["optimizer"]
    assert {t["params"]["train"]["optimizer"] for t in sweep["trials"]} == set(choices)
