"""The vertical slice on real PostgreSQL, Redis and Celery worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from sqlalchemy import create_engine, text

from services.trainer.checkpoint import load_policy
from tests.helpers import END_STATES, wait_for, wait_for_run

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_cartpole_run_succeeds_with_live_metrics_and_a_safe_checkpoint(services_platform):
    platform = services_platform
    with platform.client() as client:
        started = time.monotonic()
        run = client.post("/runs", json={"env": "cartpole", "seed": 1, "tags": ["e2e"]})
        assert run.status_code == 201, run.text
        run_id = run.json()["id"]

        seen_while_running: set[float] = set()
        while True:
            state = client.get(f"/runs/{run_id}").json()
            if state["status"] == "running":
                series = client.get(f"/runs/{run_id}/metrics", params={"keys": "SPS,env/perf"}).json()[
                    "series"
                ]
                seen_while_running.update(series.get("SPS", {}).get("time", []))
            if state["status"] in END_STATES:
                break
            assert time.monotonic() - started < 180, "run did not finish within 3 minutes"
            time.sleep(0.5)

        assert state["status"] == "succeeded", state
        assert state["final_score"] >= 0.9
        assert state["cost_seconds"] > 0 and state["cost_steps"] >= state["total_timesteps"]
        assert len(seen_while_running) >= 3, f"only {len(seen_while_running)} timestamps while running"

        after = client.get(f"/runs/{run_id}/metrics", params={"max_points": 50}).json()["series"]
        assert {"SPS", "agent_steps", "env/perf", "losses/entropy", "eval/perf"} <= set(after)
        assert len(set(after["SPS"]["time"])) >= 3
        assert len(after["SPS"]["step"]) <= 50

        detail = client.get(f"/runs/{run_id}").json()
        assert detail["checkpoints"], "no checkpoint recorded"
        last = detail["checkpoints"][-1]
        stem = platform.workdir / "artifacts" / last["path"]
        policy, meta = load_policy(stem, env="cartpole", env_version=detail["env_version"])
        assert meta["step"] == last["step"] and meta["env"] == "cartpole"
        params, _, _ = policy(torch.zeros(3, 4))
        assert policy.sample(params, deterministic=True).shape == (3,)


def test_cancel_stops_a_running_run_within_5_seconds(services_platform):
    with services_platform.client() as client:
        run_id = client.post("/runs", json={"env": "cartpole", "total_timesteps": 50_000_000}).json()["id"]
        wait_for(
            lambda: client.get(f"/runs/{run_id}").json()["progress_steps"] > 0, 60, what="the run to start"
        )
        asked = time.monotonic()
        assert client.post(f"/runs/{run_id}/cancel").status_code == 200
        wait_for(
            lambda: client.get(f"/runs/{run_id}").json()["status"] == "cancelled", 5, 0.1, "cancellation"
        )
        assert time.monotonic() - asked < 5


def _post_checkpointed_run(client, total_timesteps: int, seed: int, checkpoint_interval: int) -> int:
    """A cartpole run that saves a checkpoint every `checkpoint_interval` updates; its id."""
    body = {
        "env": "cartpole",
        "total_timesteps": total_timesteps,
        "seed": seed,
        "hyperparameters": {"train": {"checkpoint_interval": checkpoint_interval}},
    }
    return client.post("/runs", json=body).json()["id"]


def test_a_killed_worker_loses_nothing(services_platform, pg_url):
    platform = services_platform
    with platform.client() as client:
        run_id = _post_checkpointed_run(client, 400_000, seed=2, checkpoint_interval=20)
        wait_for(
            lambda: len(client.get(f"/runs/{run_id}").json()["checkpoints"]) >= 1, 120, what="a checkpoint"
        )
        time.sleep(1.5)
        for worker in platform.live_workers():
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        killed_at = client.get(f"/runs/{run_id}").json()
        killed_time = time.time()
        assert killed_at["status"] == "running"
        saved_step = killed_at["checkpoints"][-1]["step"]

        platform.start_worker()
        final = wait_for_run(client, run_id, 180, "the resumed run to finish")
        assert final["status"] == "succeeded", final
        assert final["attempts"] == 2
        assert final["cost_steps"] >= 400_000

    engine = create_engine(pg_url)
    with engine.connect() as c:
        duplicates = c.execute(
            text(
                "SELECT key, step, count(*) FROM metrics WHERE run_id = :r "
                "GROUP BY key, step HAVING count(*) > 1"
            ),
            {"r": run_id},
        ).all()
        gaps = c.execute(
            text("SELECT key FROM metrics WHERE run_id = :r GROUP BY key HAVING max(seq) + 1 <> count(*)"),
            {"r": run_id},
        ).all()
        steps = [
            s
            for (s,) in c.execute(
                text("SELECT step FROM metrics WHERE run_id = :r AND key = 'agent_steps' ORDER BY seq"),
                {"r": run_id},
            )
        ]
        # Resumed, not restarted: the points logged before the kill, up to the checkpoint, were kept.
        kept = c.execute(
            text(
                "SELECT count(*) FROM metrics WHERE run_id = :r AND key = 'agent_steps' "
                "AND time < :t AND step <= :s"
            ),
            {"r": run_id, "t": killed_time, "s": saved_step},
        ).scalar()
    engine.dispose()
    assert duplicates == []
    assert gaps == []
    assert steps == sorted(steps) and steps[-1] >= 400_000
    assert kept > 0


def test_sigterm_checkpoints_and_requeues_the_run_for_another_worker(services_platform):
    platform = services_platform
    with platform.client() as client:
        run_id = _post_checkpointed_run(client, 600_000, seed=3, checkpoint_interval=1000)
        wait_for(
            lambda: client.get(f"/runs/{run_id}").json()["progress_steps"] > 50_000, 120, what="progress"
        )
        workers = platform.live_workers()
        for worker in workers:
            os.kill(worker.pid, signal.SIGTERM)
        for worker in workers:
            assert worker.wait(timeout=60) == 0, "the worker should exit cleanly after requeueing"
        preempted = client.get(f"/runs/{run_id}").json()
        assert preempted["status"] == "queued"
        assert preempted["checkpoints"], "no checkpoint was written on SIGTERM"
        saved = preempted["checkpoints"][-1]["step"]
        assert saved > 50_000

        platform.start_worker()
        final = wait_for_run(client, run_id, 180, "the requeued run to finish")
        assert final["status"] == "succeeded", final
        assert final["attempts"] == 1, "a clean preemption must not use up an attempt"
        assert final["cost_steps"] >= 600_000


# Receives the next message of the train queue, as a worker's consumer does, prints the task and its
# arguments, then exits without acknowledging it or closing the connection: a worker killed between
# receiving a run and claiming it.
DYING_CONSUMER = """
import json, os, sys, time
from kombu import Connection
with Connection(sys.argv[1]) as conn:
    deadline = time.time() + 30
    while (message := conn.default_channel.basic_get("train", no_ack=False)) is None:
        assert time.time() < deadline, "no message in the train queue"
        time.sleep(0.1)
    print(json.dumps([message.headers["task"], message.decode()[0]]), flush=True)
    os._exit(0)
"""


def test_a_run_received_by_a_worker_that_died_before_starting_it_is_delivered_again(services_platform):
    # Its run is still queued and never had a heartbeat, so the reaper cannot see it: only the broker's
    # visibility timeout hands the message to another worker.
    platform = services_platform
    workers = platform.live_workers()
    for worker in workers:
        os.kill(worker.pid, signal.SIGTERM)
    for worker in workers:
        worker.wait(timeout=60)
    with platform.client() as client:
        run_id = client.post("/runs", json={"env": "cartpole", "total_timesteps": 20_000}).json()["id"]
        taken = subprocess.run(
            [sys.executable, "-c", DYING_CONSUMER, platform.env["SHOAL_BROKER_URL"]],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert json.loads(taken.stdout) == ["shoal.train", [run_id]]
        assert client.get(f"/runs/{run_id}").json()["status"] == "queued"

        platform.start_worker()
        final = wait_for_run(client, run_id, 120, "the run whose message was lost with its worker")
        assert final["status"] == "succeeded", final
        assert final["attempts"] == 1
