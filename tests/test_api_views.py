"""What a researcher reads from the API besides launching runs: offline /docs, UTC timestamps, names and
notes, sorting, metric export at full resolution, checkpoint downloads and polling a match job."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import uuid

import pytest
from fastapi.testclient import TestClient

from services.common import artifacts
from services.common.db import session_scope
from services.common.metrics import MetricWriter
from services.common.models import Checkpoint, Run
from tests.helpers import AUTH, forget_settings


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def client(request, embedded, monkeypatch):
    """The API in-process on the embedded SQLite default, and on PostgreSQL (whose timestamps come back
    aware, in the session's time zone)."""
    from services.api.app import create_app

    if request.param == "postgresql":
        monkeypatch.setenv("SHOAL_DATABASE_URL", request.getfixturevalue("pg_url"))
        forget_settings()
    with TestClient(create_app()) as c:
        yield c


def new_run(client: TestClient, **body) -> dict:
    response = client.post("/runs", json={"env": "cartpole", **body}, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()


def test_docs_loads_only_assets_served_here(client):
    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text) + re.findall(
        r"""url: ?["']([^"']+)["']""", page.text
    )
    assert len(urls) >= 4, page.text  # css, favicon, js, openapi.json
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        assert client.get(url).status_code == 200, url
    assert "http://" not in page.text and "https://" not in page.text
    assert client.get("/docs/oauth2-redirect").status_code == 200
    assert client.get("/redoc").status_code == 404  # ReDoc needs a CDN: not offered


def test_timestamps_are_utc_with_a_zone_in_post_and_get(client):
    created = new_run(client)
    fetched = client.get(f"/runs/{created['id']}").json()
    listed = client.get("/runs").json()["items"][0]
    assert created["created_at"].endswith("Z"), created["created_at"]
    assert created["created_at"] == fetched["created_at"] == listed["created_at"]
    assert fetched["finished_at"] is None
    cancelled = client.post(f"/runs/{created['id']}/cancel", headers=AUTH).json()
    assert cancelled["finished_at"].endswith("Z")
    assert client.get(f"/runs/{created['id']}").json()["finished_at"] == cancelled["finished_at"]


def test_runs_have_names_and_notes_that_patch_changes(client):
    run = new_run(client, name="  baseline lr 3e-4 ", tags=["a", "b"])
    assert run["name"] == "baseline lr 3e-4" and run["notes"] is None
    patched = client.patch(f"/runs/{run['id']}", json={"notes": "diverges at 2M"}, headers=AUTH)
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "baseline lr 3e-4"  # left out: kept
    assert patched.json()["notes"] == "diverges at 2M"
    patched = client.patch(f"/runs/{run['id']}", json={"name": None, "tags": ["b", "c"]}, headers=AUTH).json()
    assert patched["name"] is None and patched["tags"] == ["b", "c"] and patched["notes"] == "diverges at 2M"
    assert client.get(f"/runs/{run['id']}").json()["tags"] == ["b", "c"]

    needle = f"needle-{uuid.uuid4().hex[:8]}"
    client.patch(f"/runs/{run['id']}", json={"name": needle}, headers=AUTH)
    found = client.get("/runs", params={"q": needle}).json()
    assert [r["id"] for r in found["items"]] == [run["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 129}, "name"),
        ({"tags": None}, "tags"),
        ({"tags": ["has space"]}, "tags"),
        ({"notes": 3}, "notes"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_patches_are_refused_naming_the_field(client, body, field):
    run = new_run(client)
    response = client.patch(f"/runs/{run['id']}", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert field in json.dumps(response.json()["detail"])


def test_patch_needs_the_token_and_an_existing_run(client):
    run = new_run(client)
    assert client.patch(f"/runs/{run['id']}", json={"name": "x"}).status_code == 401
    assert client.patch("/runs/999999", json={"name": "x"}, headers=AUTH).status_code == 404


def test_runs_sort_by_summary_fields_with_missing_values_last(client):
    tag = f"sort-{uuid.uuid4().hex[:8]}"
    ids = [new_run(client, seed=s, tags=[tag])["id"] for s in (5, 1, 3, 2)]

    def order(sort: str, field: str = "id") -> list:
        return [r[field] for r in client.get("/runs", params={"sort": sort, "tag": tag}).json()["items"]]

    with session_scope() as session:
        for run_id, score in zip(ids, (0.5, 0.9, None, 0.1), strict=True):
            session.get(Run, run_id).final_score = score
    assert order("-final_score") == [ids[1], ids[0], ids[3], ids[2]]
    assert order("final_score") == [ids[3], ids[0], ids[1], ids[2]]
    assert order("seed", "seed") == [1, 2, 3, 5]
    refused = client.get("/runs", params={"sort": "config"})
    assert refused.status_code == 422 and "sort" in json.dumps(refused.json()["detail"])


def test_runs_sort_by_a_config_value_across_pages(client):
    """The runs table's hyperparameter columns: the whole list is ordered, numbers by value (10 after 9),
    runs without the value last; a path that is not one is refused naming `sort`."""
    tag = f"cfg-{uuid.uuid4().hex[:8]}"
    rates = (0.003, 0.0001, 0.01, 0.0003, 0.001)
    ids = [new_run(client, hyperparameters={"train": {"learning_rate": x}}, tags=[tag])["id"] for x in rates]
    epochs = {ids[0]: 9, ids[1]: 10, ids[2]: 2}
    with session_scope() as session:
        for run_id, value in epochs.items():
            run = session.get(Run, run_id)
            run.config = {**run.config, "extra": {"epochs": value}}
        session.get(Run, ids[4]).config = {}

    def pages(sort: str) -> list[int]:
        out = []
        for offset in (0, 2, 4):
            params = {"sort": sort, "tag": tag, "limit": 2, "offset": offset}
            out += [r["id"] for r in client.get("/runs", params=params).json()["items"]]
        return out

    by_rate = [ids[1], ids[3], ids[0], ids[2], ids[4]]  # ascending, the run without a config last
    assert pages("config.train.learning_rate") == by_rate
    assert pages("-config.train.learning_rate") == [*by_rate[3::-1], ids[4]]
    assert pages("config.extra.epochs") == [ids[2], ids[0], ids[1], ids[4], ids[3]]
    for bad in ("config.", "config.train.lr;drop", "config.a.b.c.d.e", "-config"):
        refused = client.get("/runs", params={"sort": bad})
        assert refused.status_code == 422 and "sort" in json.dumps(refused.json()["detail"]), bad


def logged_run(client: TestClient, points: int = 25_000) -> tuple[int, dict[str, list]]:
    """A run with two keys at every step, a third every 10th step, and a NaN: what export must return."""
    run_id = new_run(client)["id"]
    writer = MetricWriter(run_id)
    logged: dict[str, list] = {"a": [], "b": [], "rare": []}
    for i in range(1, points + 1):
        values = {"a": i * 0.5, "b": math.nan if i == 7 else -i / 3}
        if i % 10 == 0:
            values["rare"] = i
        writer.append(i * 64, values, at=1_700_000_000 + i)
        for key, value in values.items():
            logged[key].append((i * 64, value))
    with session_scope() as session:
        writer.flush(session)
    return run_id, logged


def test_metrics_export_as_csv_has_every_point_one_row_per_step(client):
    run_id, logged = logged_run(client)
    response = client.get(f"/runs/{run_id}/metrics/export", params={"format": "csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="run-{run_id}-metrics.csv"' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["step", "time", "a", "b", "rare"]
    assert len(rows) - 1 == len(logged["a"])
    by_step = {int(r[0]): r for r in rows[1:]}
    for step, value in logged["a"]:
        assert float(by_step[step][2]) == value
    assert by_step[7 * 64][3] == ""  # NaN is stored as missing
    assert by_step[64][4] == "" and float(by_step[640][4]) == 10
    assert float(by_step[64][1]) == 1_700_000_001


def test_metrics_export_as_json_and_of_chosen_keys(client):
    run_id, _ = logged_run(client, points=300)
    response = client.get(f"/runs/{run_id}/metrics/export", params={"format": "json", "keys": "rare,a"})
    assert response.status_code == 200
    body = response.json()
    assert body["run_id"] == run_id and body["columns"] == ["step", "time", "rare", "a"]
    assert len(body["rows"]) == 300
    assert body["rows"][9] == [640, 1_700_000_010, 10, 5.0]
    assert body["rows"][0][2] is None

    bad = client.get(f"/runs/{run_id}/metrics/export", params={"keys": "a,nope"})
    assert bad.status_code == 422 and "nope" in bad.text and "keys" in bad.text
    bad = client.get(f"/runs/{run_id}/metrics/export", params={"format": "xlsx"})
    assert bad.status_code == 422 and "format" in bad.text
    assert client.get("/runs/999999/metrics/export").status_code == 404


def test_checkpoints_can_be_downloaded(client):
    run_id = new_run(client)["id"]
    stem = artifacts.run_dir(run_id) / "ckpt_00000000004096"
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".safetensors").write_bytes(b"weights")
    stem.with_suffix(".json").write_text('{"step": 4096}')
    with session_scope() as session:
        row = Checkpoint(
            run_id=run_id, step=4096, path=artifacts.relative(stem), env="cartpole", env_version="v",
            size_bytes=7, meta={},
        )  # fmt: skip
        session.add(row)
        session.flush()
        checkpoint_id = row.id
    listed = client.get(f"/runs/{run_id}").json()["checkpoints"][0]
    assert listed["download_url"] == f"/checkpoints/{checkpoint_id}/download"
    assert listed["created_at"].endswith("Z")
    weights = client.get(listed["download_url"])
    assert weights.status_code == 200 and weights.content == b"weights"
    assert "ckpt_00000000004096.safetensors" in weights.headers["content-disposition"]
    meta = client.get(listed["download_url"], params={"part": "meta"})
    assert meta.json() == {"step": 4096}
    assert client.get(listed["download_url"], params={"part": "trainer"}).status_code == 422
    stem.with_suffix(".safetensors").unlink()
    assert client.get(listed["download_url"]).status_code == 404
    assert client.get("/checkpoints/999999/download").status_code == 404


def test_a_match_job_can_be_polled(client):
    asked = client.post(
        "/matches", json={"a": "scripted", "b": "random", "env": "pong", "games": 8}, headers=AUTH
    )
    assert asked.status_code == 202, asked.text
    job = client.get(asked.json()["status_url"])
    assert job.status_code == 200, job.text
    job = job.json()
    # No elo worker runs here: the job stays queued, with its batches listed.
    assert job["job_id"] == asked.json()["job_id"] and job["status"] == "queued"
    assert job["games"] == 8 and job["games_played"] == 0 and job["score_a"] is None
    assert job["batches"] and all(b["a"] == "scripted" and b["b"] == "random" for b in job["batches"])
    assert job["created_at"].endswith("Z")
    assert client.get("/matches/999999").status_code == 404
