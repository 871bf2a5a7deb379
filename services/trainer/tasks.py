"""Celery glue for training: claim a run, train it with a database sink, record the outcome.

A heartbeat thread keeps the run's liveness and cancellation flag current independently of how long an
epoch takes. A reaper, run periodically by every train worker, requeues runs whose worker went silent; the
redelivered run resumes from its latest checkpoint and trainer state.

Each attempt owns the run under a token of its own (`runs.worker`). Every write of the attempt (metrics,
checkpoints, the outcome) is fenced by it, so a worker that was paused past its heartbeat timeout and then
resumed stops at its next write instead of writing over the attempt that took its run over. Database
outages up to SHOAL_OUTAGE_TOLERANCE are waited out, and tasks the run sends go through the outbox, so
neither a database nor a broker blip costs an attempt.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

from celery.signals import worker_ready, worker_shutting_down
from pydantic import ValidationError
from sqlalchemy import select

from envs_c.registry import ENVS
from services.common import artifacts, outbox
from services.common.celery_app import ELO_RATE_TASK, REAP_TASK, REPLAY_TASK, SWEEP_TICK_TASK, TRAIN_TASK, app
from services.common.config import ConfigError, RunConfig
from services.common.db import retrying, session_scope
from services.common.failures import FailureKind
from services.common.metrics import MetricWriter
from services.common.models import Checkpoint, Run, RunStatus
from services.common.runs import (
    LostRun,
    claim,
    fence,
    finish,
    keep_alive,
    reap_stale,
    requeue,
    resend_lost,
)
from services.common.settings import get_settings
from services.trainer import checkpoint as ckpt
from services.trainer.league_db import DatabaseLeagueLink
from services.trainer.loop import Interrupt, Result, train

log = logging.getLogger(__name__)
WORKER = f"{socket.gethostname()}:{os.getpid()}"
# Set when the worker is asked to stop (SIGTERM, Ctrl-C): the running trainer checkpoints and requeues.
SHUTTING_DOWN = threading.Event()


@worker_shutting_down.connect
def _preempt(**_: Any) -> None:
    SHUTTING_DOWN.set()


class DatabaseSink:
    """Metric rows go to the database in one batch per flush; checkpoints get a row and retention. Each
    write is fenced by the attempt's owner token, and retried while the database is unreachable."""

    def __init__(self, run_id: int, owner: str, config: RunConfig, writer: MetricWriter):
        self.run_id = run_id
        self.owner = owner
        self.config = config
        self.writer = writer
        self.cancel_requested = threading.Event()
        self.latest_step = 0

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.latest_step = step
        self.writer.append(step, values)
        retrying(self._flush, f"run {self.run_id}: metrics")

    def _flush(self) -> None:
        # Nothing is appended between here and a failure: the buffers as they are now are what to retry.
        points, rollups = self.writer.points, self.writer.rollups
        try:
            with session_scope() as session:
                fence(session, self.run_id, self.owner)
                self.writer.flush(session)
        except Exception:
            self.writer.restore(points, rollups)
            raise

    def checkpoint(self, step: int, stem: Path, size_bytes: int, meta: dict[str, Any]) -> None:
        retrying(lambda: self._checkpoint(step, stem, size_bytes, meta), f"run {self.run_id}: checkpoint")
        # Never raises and never retries: with the broker down, the worker's relay sends it later.
        outbox.publish()

    def _checkpoint(self, step: int, stem: Path, size_bytes: int, meta: dict[str, Any]) -> None:
        tc = self.config.train
        with session_scope() as session:
            fence(session, self.run_id, self.owner)
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
            # Every checkpoint of a two-player game is rated as it is saved (Elo over training), by task
            # name, so the trainer never imports the elo service. The registry's seats decide, not this
            # run's `opponent`: a run trained against the bot still yields a policy that can take a seat.
            if ENVS[meta["env"]].players is not None:
                outbox.stage(session, ELO_RATE_TASK, [checkpoint_id])

    def interrupt(self) -> Interrupt:
        if self.cancel_requested.is_set():
            return "cancel"
        if SHUTTING_DOWN.is_set():
            return "preempt"
        return None


class Heartbeat(threading.Thread):
    """Beats for the attempt; a beat that finds the run taken away or cancelled stops the loop."""

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
                    if not keep_alive(session, self.run_id, self.sink.owner, self.sink.latest_step):
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


def _claim(run_id: int, owner: str) -> tuple[Run, Checkpoint | None, MetricWriter] | None:
    with session_scope() as session:
        if not claim(session, run_id, owner):
            return None
        run = session.get_one(Run, run_id)
        resume_row = _latest_resumable(session, run_id)
        writer = MetricWriter(run_id)
        writer.resume(session, after_step=resume_row.step if resume_row else -1)
        return run, resume_row, writer


def _failure(e: Exception, step: int) -> tuple[FailureKind, str]:
    """The kind and the words of an exception that ended a run."""
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return FailureKind.crash, f"disk full at step {step}"
    kind = FailureKind.invalid_config if isinstance(e, ConfigError | ValidationError) else FailureKind.crash
    return kind, f"exception: {type(e).__name__}: {e}"


@app.task(name=TRAIN_TASK, acks_late=True, reject_on_worker_lost=True)
def train_run(run_id: int) -> None:
    settings = get_settings()
    # This attempt's token: a later attempt of the same run, even in this process, owns it under another.
    owner = f"{WORKER}/{secrets.token_hex(4)}"
    claimed = retrying(lambda: _claim(run_id, owner), f"run {run_id}: claim")
    if claimed is None:
        log.info("run %s is not claimable (taken, finished or cancelled); skipping", run_id)
        return
    run, resume_row, writer = claimed
    config = RunConfig.model_validate(run.config)
    sink = DatabaseSink(run_id, owner, config, writer)
    sink.latest_step = resume_row.step if resume_row else 0
    # A one-second beat keeps cancellation prompt; it is one small UPDATE per run per second.
    beat = Heartbeat(run_id, sink, period=min(1.0, settings.heartbeat_timeout / 4))
    beat.start()
    started = time.perf_counter()
    try:
        result = train(
            run.env,
            config,
            run.seed,
            artifacts.run_dir(run_id),
            sink,
            resume=artifacts.absolute(resume_row.path) if resume_row else None,
            flush_seconds=settings.metrics_flush_seconds,
            league=DatabaseLeagueLink(run_id, run.env) if config.selfplay is not None else None,
        )
    except LostRun as e:
        log.warning("run %s: %s; this worker stops without writing anything more", run_id, e)
        return
    except Exception as e:  # the run records why it failed; the worker lives on for the next run
        log.exception("run %s crashed", run_id)
        # The progress made stays recorded, and so do the checkpoints to resume from.
        kind, reason = _failure(e, sink.latest_step)
        result = Result("failed", sink.latest_step, time.perf_counter() - started, kind, reason)
    finally:
        beat.done.set()
        beat.join()
    if result.status == "preempted":
        if retrying(lambda: _requeue(run_id, owner), f"run {run_id}: requeue"):
            log.warning("run %s preempted at step %s; requeued to resume from there", run_id, result.steps)
            outbox.publish()
        return
    retrying(lambda: _finish(run_id, owner, result), f"run {run_id}: finish")
    outbox.publish()


def _requeue(run_id: int, owner: str) -> bool:
    with session_scope() as session:
        return requeue(session, run_id, owner)


def _finish(run_id: int, owner: str, result: Result) -> None:
    with session_scope() as session:
        finished = finish(
            session,
            run_id,
            owner,
            RunStatus(result.status),
            failure_kind=result.failure_kind,
            failure_reason=result.failure_reason,
            final_score=result.final_score,
            final_raw_score=result.final_raw_score,
            cost_seconds=result.seconds,
            cost_steps=result.steps,
            progress_steps=result.steps,
        )
        sweep_id = session.scalar(select(Run.sweep_id).where(Run.id == run_id))
        if finished and sweep_id is not None:
            outbox.stage(session, SWEEP_TICK_TASK, [sweep_id])
        if finished and result.status == "succeeded" and result.last_checkpoint is not None:
            outbox.stage(session, REPLAY_TASK, [run_id, artifacts.relative(result.last_checkpoint)])


@app.task(name=REAP_TASK)
def reap() -> list[int]:
    """Requeue runs whose worker went silent, and send again the task of runs queued for too long."""
    settings = get_settings()
    with session_scope() as session:
        requeued = reap_stale(session, settings.heartbeat_timeout, settings.max_attempts)
        resent = resend_lost(session, settings.requeue_queued_after)
    for run_id in requeued:
        log.warning("run %s lost its worker; requeued", run_id)
    for run_id in resent:
        log.warning("run %s stayed queued past its task; the task is sent again", run_id)
    outbox.publish()
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
