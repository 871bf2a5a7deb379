"""Celery glue for training: claim a run, train it with a database sink, record the outcome.

A heartbeat thread keeps the run's liveness and cancellation flag current independently of how long an
epoch takes. A reaper, run periodically by every train worker, requeues runs whose worker went silent; the
redelivered run resumes from its latest checkpoint and trainer state.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from celery.signals import worker_ready, worker_shutting_down
from sqlalchemy import select

from envs_c.registry import ENVS
from services.common import artifacts
from services.common.celery_app import ELO_RATE_TASK, REAP_TASK, SWEEP_TICK_TASK, TRAIN_TASK, app
from services.common.config import RunConfig
from services.common.db import session_scope
from services.common.metrics import MetricWriter
from services.common.models import Checkpoint, Run, RunStatus
from services.common.runs import claim, enqueue, finish, heartbeat, reap_stale, requeue
from services.common.settings import get_settings
from services.trainer import checkpoint as ckpt
from services.trainer.loop import Interrupt, Result, train
from services.trainer.replay import replay_gif

log = logging.getLogger(__name__)
WORKER = f"{socket.gethostname()}:{os.getpid()}"
# Set when the worker is asked to stop (SIGTERM, Ctrl-C): the running trainer checkpoints and requeues.
SHUTTING_DOWN = threading.Event()


@worker_shutting_down.connect
def _preempt(**_: Any) -> None:
    SHUTTING_DOWN.set()


class DatabaseSink:
    """Metric rows go to the database in one batch per flush; checkpoints get a row and retention."""

    def __init__(self, run_id: int, config: RunConfig, writer: MetricWriter):
        self.run_id = run_id
        self.config = config
        self.writer = writer
        self.cancel_requested = threading.Event()
        self.latest_step = 0

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.latest_step = step
        self.writer.append(step, values)
        with session_scope() as session:
            self.writer.flush(session)

    def checkpoint(self, step: int, stem: Path, size_bytes: int, meta: dict[str, Any]) -> None:
        tc = self.config.train
        with session_scope() as session:
            row = Checkpoint(
                run_id=self.run_id,
                step=step,
                path=artifacts.relative(stem),
                env=meta["env"],
                env_version=meta["env_version"],
                size_bytes=size_bytes,
                meta=meta,
            )
            session.add(row)
            session.flush()
            checkpoint_id = row.id
            rows = session.scalars(select(Checkpoint).where(Checkpoint.run_id == self.run_id)).all()
            keep = ckpt.retained([r.step for r in rows], tc.keep_last, tc.keep_every)
            for row in rows:
                if row.step not in keep:
                    ckpt.delete(artifacts.absolute(row.path))
                    session.delete(row)
        # Every checkpoint of a two-player game is rated as it is saved (Elo over training). Sent after the
        # commit so the elo worker finds the row; by name, so the trainer never imports the elo service.
        # The registry's seats decide, not this run's `opponent`: a run trained against the bot still
        # yields a policy that can take a seat.
        if ENVS[meta["env"]].players is not None:
            app.send_task(ELO_RATE_TASK, args=[checkpoint_id])

    def interrupt(self) -> Interrupt:
        if self.cancel_requested.is_set():
            return "cancel"
        if SHUTTING_DOWN.is_set():
            return "preempt"
        return None


class Heartbeat(threading.Thread):
    def __init__(self, run_id: int, sink: DatabaseSink, period: float):
        super().__init__(daemon=True, name=f"heartbeat-{run_id}")
        self.run_id = run_id
        self.sink = sink
        self.period = period
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.period):
            try:
                with session_scope() as session:
                    if heartbeat(session, self.run_id, WORKER, self.sink.latest_step):
                        self.sink.cancel_requested.set()
            except Exception:
                log.exception("heartbeat for run %s failed; retrying", self.run_id)


def _latest_resumable(session, run_id: int) -> Checkpoint | None:
    rows = session.scalars(
        select(Checkpoint).where(Checkpoint.run_id == run_id).order_by(Checkpoint.step.desc())
    ).all()
    for row in rows:
        stem = artifacts.absolute(row.path)
        if stem.with_suffix(".trainer.json").exists() and stem.with_suffix(".json").exists():
            return row
    return None


@app.task(name=TRAIN_TASK, acks_late=True, reject_on_worker_lost=True)
def train_run(run_id: int) -> None:
    settings = get_settings()
    with session_scope() as session:
        if not claim(session, run_id, WORKER):
            log.info("run %s is not claimable (taken, finished or cancelled); skipping", run_id)
            return
        run = session.get(Run, run_id)
        env, seed, config = run.env, run.seed, RunConfig.model_validate(run.config)
        resume_row = _latest_resumable(session, run_id)
        resume = artifacts.absolute(resume_row.path) if resume_row else None
        writer = MetricWriter(run_id)
        writer.resume(session, after_step=resume_row.step if resume_row else -1)

    sink = DatabaseSink(run_id, config, writer)
    # A one-second beat keeps cancellation prompt; it is one small UPDATE per run per second.
    beat = Heartbeat(run_id, sink, period=min(1.0, settings.heartbeat_timeout / 4))
    beat.start()
    started = time.perf_counter()
    try:
        result = train(
            env,
            config,
            seed,
            artifacts.run_dir(run_id),
            sink,
            resume=resume,
            flush_seconds=settings.metrics_flush_seconds,
        )
    except Exception as e:  # the run records why it failed; the worker lives on for the next run
        log.exception("run %s crashed", run_id)
        result = Result(
            "failed", 0, time.perf_counter() - started, failure_reason=f"exception: {type(e).__name__}: {e}"
        )
    finally:
        beat.done.set()
        beat.join()
    if result.status == "preempted":
        with session_scope() as session:
            requeued = requeue(session, run_id, WORKER)
        if requeued:
            log.warning("run %s preempted at step %s; requeued to resume from there", run_id, result.steps)
            enqueue(run_id)
        return
    with session_scope() as session:
        sweep_id = session.scalar(select(Run.sweep_id).where(Run.id == run_id))
        finish(
            session,
            run_id,
            WORKER,
            RunStatus(result.status),
            failure_reason=result.failure_reason,
            final_score=result.final_score,
            final_raw_score=result.final_raw_score,
            cost_seconds=result.seconds,
            cost_steps=result.steps,
            progress_steps=result.steps,
        )
    if result.status == "succeeded" and result.last_checkpoint is not None:
        try:
            replay_gif(result.last_checkpoint, artifacts.run_dir(run_id) / "replay.gif")
        except Exception:  # a replay is a convenience; the run has already succeeded
            log.exception("run %s: could not record the replay GIF", run_id)
    if sweep_id is not None:
        app.send_task(SWEEP_TICK_TASK, args=[sweep_id])


@app.task(name=REAP_TASK)
def reap() -> list[int]:
    settings = get_settings()
    with session_scope() as session:
        requeued = reap_stale(session, settings.heartbeat_timeout, settings.max_attempts)
    for run_id in requeued:
        log.warning("run %s lost its worker; requeued", run_id)
        enqueue(run_id)
    return requeued


def _reaper_loop(period: float) -> None:
    while True:
        try:
            reap()
        except Exception:
            log.exception("reaper pass failed; retrying")
        time.sleep(period)


@worker_ready.connect
def _start_reaper(**_: Any) -> None:
    period = max(1.0, get_settings().heartbeat_timeout / 3)
    threading.Thread(target=_reaper_loop, args=(period,), daemon=True, name="reaper").start()
