"""Bad input to POST /runs is answered 4xx with a message naming the field, and nothing is written."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tests.conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


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


def test_cancelling_a_queued_run_is_immediate(client):
    run = client.post("/runs", json={"env": "cartpole"}, headers=AUTH).json()
    cancelled = client.post(f"/runs/{run['id']}/cancel", headers=AUTH).json()
    assert cancelled["status"] == "cancelled"


def test_envs_lists_specs_and_defaults(client):
    envs = {e["name"]: e for e in client.get("/envs").json()}
    assert envs["cartpole"]["observation"]["shape"] == [4]
    assert envs["cartpole"]["action"] == {"kind": "discrete", "n": 2}
    assert envs["cartpole"]["defaults"]["train"]["total_timesteps"] > 0
    assert envs["cartpole"]["version"]


def test_healthz_and_docs(client):
    assert client.get("/healthz").json()["status"] == "ok"
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
