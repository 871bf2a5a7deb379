"""Bad input to POST /runs is answered 4xx with a message naming the field, and nothing is written."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tests.helpers import AUTH, TOKEN


@pytest.fixture
def client(embedded):
    from services.api.app import create_app

    with TestClient(create_app()) as c:
        yield c


def run_count(client: TestClient) -> int:
    return client.get("/runs").json()["total"]


CASES = [
    ("unknown env", {"env": "chess"}, 422, "env", "unknown environment"),
    (
        "unknown hyperparameter",
        {"env": "cartpole", "hyperparameters": {"train": {"learning_rat": 0.1}}},
        422,
        "learning_rat",
        "unknown key",
    ),
    ("unknown section", {"env": "cartpole", "hyperparameters": {"optim": {}}}, 422, "optim", "unknown key"),
    (
        "unknown env setting",
        {"env": "cartpole", "hyperparameters": {"env": {"gravity": 3}}},
        422,
        "env",
        "unknown setting",
    ),
    (
        "wrong type",
        {"env": "cartpole", "hyperparameters": {"train": {"learning_rate": "fast"}}},
        422,
        "learning_rate",
        "number",
    ),
    (
        "wrong type of timesteps",
        {"env": "cartpole", "total_timesteps": "many"},
        422,
        "total_timesteps",
        "integer",
    ),
    ("zero timesteps", {"env": "cartpole", "total_timesteps": 0}, 422, "total_timesteps", "greater than 0"),
    (
        "negative timesteps",
        {"env": "cartpole", "total_timesteps": -5},
        422,
        "total_timesteps",
        "greater than 0",
    ),
    (
        "absurd num_envs",
        {"env": "cartpole", "hyperparameters": {"train": {"num_envs": 10**9}}},
        422,
        "num_envs",
        "less than or equal",
    ),
    (
        "absurd hidden size",
        {"env": "cartpole", "hyperparameters": {"policy": {"hidden_size": 10**6}}},
        422,
        "hidden_size",
        "less than or equal",
    ),
    (
        "absurd batch",
        {"env": "cartpole", "hyperparameters": {"train": {"num_envs": 1 << 20, "num_steps": 8192}}},
        422,
        "train",
        "exceeds",
    ),
    (
        "bptt horizon not dividing the rollout",
        {"env": "cartpole", "hyperparameters": {"train": {"num_steps": 64, "bptt_horizon": 24}}},
        422,
        "bptt_horizon",
        "must divide num_steps",
    ),
    (
        "env setting out of range",
        {"env": "cartpole", "hyperparameters": {"env": {"max_steps": -1}}},
        422,
        "env",
        "outside",
    ),
    ("unknown top-level field", {"env": "cartpole", "priority": 3}, 422, "priority", "Extra inputs"),
    ("bad tag", {"env": "cartpole", "tags": ["has space"]}, 422, "tags", "pattern"),
]


@pytest.mark.parametrize(("case", "body", "code", "field", "reason"), CASES, ids=[c[0] for c in CASES])
def test_bad_run_is_refused_naming_the_field(client, case, body, code, field, reason):
    before = run_count(client)
    response = client.post("/runs", json=body, headers=AUTH)
    assert response.status_code == code, response.text
    detail = response.json()["detail"]
    text = json.dumps(detail)
    assert field in text, f"{case}: the field is not named in {text}"
    assert reason.lower() in text.lower(), f"{case}: the reason is missing from {text}"
    assert run_count(client) == before


def test_huge_body_is_refused(client):
    before = run_count(client)
    body = json.dumps(
        {"env": "cartpole", "tags": ["x"], "hyperparameters": {"env": {"pad": "x" * (10 << 20)}}}
    )
    response = client.post("/runs", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert "exceeds" in response.json()["detail"]
    assert run_count(client) == before


@pytest.mark.parametrize("path", ["/runs", "/sweeps", "/matches"])
@pytest.mark.parametrize(
    "body", [b"\x80\x81 not utf-8", b'{"env": "cartpole"'], ids=["not utf-8", "not json"]
)
def test_a_body_that_is_not_json_is_refused_naming_the_body(client, path, body):
    before = run_count(client)
    response = client.post(path, content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][0] == "body"
    assert run_count(client) == before


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}],
    ids=["missing", "wrong", "no scheme"],
)
def test_writes_need_the_token(client, headers):
    before = run_count(client)
    response = client.post("/runs", json={"env": "cartpole"}, headers=headers)
    assert response.status_code == 401
    assert "token" in response.json()["detail"]
    assert client.post("/runs/1/cancel", headers=headers).status_code == 401
    assert run_count(client) == before


def test_valid_run_is_created_queued_with_resolved_config(client):
    response = client.post(
        "/runs",
        json={
            "env": "cartpole",
            "total_timesteps": 5000,
            "seed": 3,
            "tags": ["a", "b"],
            "hyperparameters": {"train": {"learning_rate": 0.001}},
        },
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["status"] == "queued"
    assert run["config"]["train"]["learning_rate"] == 0.001
    assert run["config"]["train"]["total_timesteps"] == 5000
    assert run["overrides"] == {"train": {"learning_rate": 0.001, "total_timesteps": 5000}}
    assert run["tags"] == ["a", "b"]
    assert client.get("/runs", params={"tag": "a"}).json()["total"] == 1
    assert client.get("/runs", params={"tag": "zzz"}).json()["total"] == 0
    assert client.get("/runs", params={"status": "queued", "env": "cartpole"}).json()["total"] == 1
    assert client.get("/runs", params={"status": "bogus"}).status_code == 422
    assert client.get("/runs/99999").status_code == 404


def test_cancelling_a_queued_run_is_immediate_and_no_worker_trains_it(client, monkeypatch):
    from services.common import artifacts
    from services.common.db import session_scope
    from services.common.runs import resend_lost
    from services.trainer import tasks

    run = client.post("/runs", json={"env": "cartpole"}, headers=AUTH).json()
    cancelled = client.post(f"/runs/{run['id']}/cancel", headers=AUTH).json()
    assert cancelled["status"] == "cancelled"

    def train(*args, **kwargs):
        raise AssertionError("a worker trained a run cancelled while queued")

    # Its task is already with the broker: the worker that receives it skips the run, and the reaper,
    # which sends the task again for runs queued too long (a broker that lost it), passes over it.
    monkeypatch.setattr(tasks, "train", train)
    tasks.train_run(run["id"])
    with session_scope() as session:
        assert resend_lost(session, after_seconds=0) == []
    after = client.get(f"/runs/{run['id']}").json()
    assert after["status"] == "cancelled" and after["failure_kind"] == "cancelled"
    assert after["attempts"] == 0 and after["started_at"] is None and after["progress_steps"] == 0
    assert after["metric_keys"] == [] and after["checkpoints"] == []
    assert not artifacts.run_dir(run["id"]).exists()


def test_envs_lists_specs_and_defaults(client):
    envs = {e["name"]: e for e in client.get("/envs").json()}
    assert envs["cartpole"]["observation"]["shape"] == [4]
    assert envs["cartpole"]["action"] == {"kind": "discrete", "n": 2}
    assert envs["cartpole"]["defaults"]["train"]["total_timesteps"] > 0
    assert envs["cartpole"]["version"]


def test_healthz_and_docs(client):
    health = client.get("/healthz")
    # No worker runs in this test: the API serves (200), and says which queues have no live worker.
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert health.json()["down"] == ["workers:train", "workers:sweeper", "workers:elo"]
    assert client.get("/docs").status_code == 200
    assert "/runs" in client.get("/openapi.json").json()["paths"]


def test_minibatch_is_checked_against_agents_not_environments(embedded):
    from services.common.config import ConfigError, resolve

    # 4 snake arenas of 16 snakes x 8 steps = 512 samples per batch, not 32.
    config = resolve(
        "snake", {"train": {"num_envs": 4, "num_steps": 8, "minibatch_size": 512}, "env": {"num_snakes": 16}}
    )
    assert config.train.minibatch_size == 512
    with pytest.raises(ConfigError, match="exceeds the batch"):
        resolve(
            "snake",
            {"train": {"num_envs": 4, "num_steps": 8, "minibatch_size": 513}, "env": {"num_snakes": 16}},
        )


# ---- sweeps: budgets and categorical parameters -----------------------------------------------------------

TIMESTEPS = {"distribution": "log_normal", "min": 20_000, "max": 400_000}
LEARNING_RATE = {"distribution": "log_normal", "min": 1e-4, "max": 1e-2}


def optimizer(**spec) -> dict:
    return {"train": {"learning_rate": LEARNING_RATE, "optimizer": {"distribution": "categorical", **spec}}}


SWEEP_CASES = [
    (
        "budget below the cheapest trial",
        {"cost_unit": "steps", "budget": "10k steps", "space": {"train": {"total_timesteps": TIMESTEPS}}},
        "budget",
        "less than the cheapest trial: 20,000 steps",
    ),
    (
        "budget below the fixed total_timesteps",
        {
            "cost_unit": "steps",
            "budget": 40_000,
            "space": {"train": {"learning_rate": LEARNING_RATE}},
            "hyperparameters": {"train": {"total_timesteps": 50_000}},
        },
        "budget",
        "less than the cheapest trial: 50,000 steps",
    ),
    ("budget in steps, cost in seconds", {"budget": "5e8 steps"}, "budget", "cost_unit is seconds"),
    ("budget in seconds, cost in steps", {"cost_unit": "steps", "budget": "2h"}, "budget", "unit is steps"),
    ("zero budget", {"budget": 0}, "budget", "positive"),
    ("negative budget", {"budget": "-10min"}, "budget", "positive"),
    ("unknown budget unit", {"budget": "10 fortnights"}, "budget", "unknown unit"),
    ("boolean budget", {"budget": True}, "budget", "valid number"),
    ("no choices", {"space": optimizer(choices=[])}, "train.optimizer", "non-empty"),
    ("duplicated choice", {"space": optimizer(choices=["adam", "adam"])}, "train.optimizer", "twice"),
    (
        "unknown choice as the mean",
        {"space": optimizer(choices=["adam", "muon"], mean="sgd")},
        "train.optimizer",
        "unknown choice 'sgd'",
    ),
    (
        "a fraction for an integer",
        {"space": {"policy": {"hidden_size": {"distribution": "categorical", "choices": [64, 96.5]}}}},
        "policy.hidden_size: choice 96.5",
        "would run as 96",
    ),
    (
        "a choice the run schema refuses",
        {"space": optimizer(choices=["adam", "muon", "sgd"])},
        "train.optimizer: choice 'sgd'",
        "'adam' or 'muon'",
    ),
]


def sweep_count(client: TestClient) -> int:
    return len(client.get("/sweeps").json()["items"])


def refused(client: TestClient, **post) -> str:
    before = sweep_count(client)
    response = client.post("/sweeps", headers={**AUTH, "Content-Type": "application/json"}, **post)
    assert response.status_code == 422, response.text
    assert sweep_count(client) == before, "a refused sweep was written"
    return json.dumps(response.json()["detail"])


@pytest.mark.parametrize(("case", "body", "named", "reason"), SWEEP_CASES, ids=[c[0] for c in SWEEP_CASES])
def test_bad_sweep_is_refused_naming_the_field(client, case, body, named, reason):
    detail = refused(client, json={"env": "cartpole", **body})
    field = "budget" if "budget" in body else "space"
    assert json.loads(detail)[0]["loc"][:2] == ["body", field], f"{case}: {detail}"
    assert named in detail, f"{case}: {named!r} is not named in {detail}"
    assert reason.lower() in detail.lower(), f"{case}: the reason is missing from {detail}"


def test_a_non_finite_budget_is_refused(client):
    # JSON has no infinity, but Python's parser reads an overflowing literal as one.
    detail = refused(client, content=b'{"env": "cartpole", "budget": 1e400}')
    assert "budget" in detail and "finite" in detail


def test_a_sweep_stores_its_budget_and_centres_a_categorical_on_the_config(client):
    space = {"train": {"total_timesteps": TIMESTEPS, **optimizer(choices=["muon", "adam"])["train"]}}
    response = client.post(
        "/sweeps",
        json={"env": "cartpole", "cost_unit": "steps", "budget": "1.5M steps", "space": space},
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    sweep = response.json()
    assert (sweep["budget"], sweep["budget_used"], sweep["budget_left"]) == (1.5e6, 0.0, 1.5e6)
    assert sweep["max_runs"] == 10_000, "with a budget, the budget ends the sweep"
    assert sweep["space"]["train"]["optimizer"]["mean"] == "adam", "configs/cartpole.toml trains with adam"
    (summary,) = client.get("/sweeps").json()["items"]
    assert (summary["cost_unit"], summary["budget"], summary["budget_used"]) == ("steps", 1.5e6, 0.0)
    unbounded = client.post("/sweeps", json={"env": "cartpole"}, headers=AUTH).json()
    assert (unbounded["budget"], unbounded["budget_left"], unbounded["max_runs"]) == (None, None, 20)
