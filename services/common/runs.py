"""A run's life in the database: created queued, claimed by one worker, heartbeating, finished.

Every transition is a conditional UPDATE, so two workers that receive the same run (a redelivered
message, a reaper racing a slow worker) cannot both train it, and a finished run never changes again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

import envs_c
from services.common.celery_app import TRAIN_TASK
from services.common.config import ConfigError, resolve
from services.common.db import affected
from services.common.failures import FailureKind
from services.common.models import Checkpoint, Run, RunStatus, RunTag, utcnow
from services.common.outbox import stage


def create_run(
    session: Session,
    env: str,
    overrides: dict[str, Any] | None = None,
    total_timesteps: int | None = None,
    seed: int = 0,
    tags: list[str] | None = None,
    *,
    name: str | None = None,
    notes: str | None = None,
    created_by: int | None = None,
) -> Run:
    """Validate and insert a queued run (raises ConfigError naming the field) and stage its train task.
    The caller commits, then publishes: a worker never sees a run id that is not yet committed, and a
    committed run always has its task staged."""
    overrides = dict(overrides or {})
    if total_timesteps is not None:
        overrides = {**overrides, "train": {**overrides.get("train", {}), "total_timesteps": total_timesteps}}
    config = resolve(env, overrides)
    if config.selfplay is not None:
        check_pool(session, env, config.selfplay.pool)
    run = Run(
        env=env,
        env_version=envs_c.version(env),
        status=RunStatus.queued,
        config=config.model_dump(),
        overrides=overrides,
        total_timesteps=config.train.total_timesteps,
        seed=seed,
        tags=[RunTag(tag=t) for t in sorted(set(tags or []))],
        name=name,
        notes=notes,
        created_by_token=created_by,
    )
    session.add(run)
    session.flush()
    enqueue(session, run.id)
    return run


def check_pool(session: Session, env: str, pool: list[int]) -> None:
    """Every checkpoint a self-play pool names must exist and be a checkpoint of `env` at its current
    version; raises ConfigError naming `selfplay.pool`."""
    found = {c.id: c for c in session.scalars(select(Checkpoint).where(Checkpoint.id.in_(pool)))}
    version = envs_c.version(env)
    for i, checkpoint_id in enumerate(pool):
        ckpt, field = found.get(checkpoint_id), f"selfplay.pool.{i}"
        if ckpt is None:
            raise ConfigError(field, f"checkpoint {checkpoint_id} does not exist")
        if ckpt.env != env:
            raise ConfigError(field, f"checkpoint {checkpoint_id} is a {ckpt.env} checkpoint, not {env}")
        if ckpt.env_version != version:
            raise ConfigError(field, f"checkpoint {checkpoint_id} was trained on an older version of {env}")


def describe(session: Session, run: Run, fields: dict[str, Any]) -> None:
    """Replace what people say about a run (name, notes, tags), whatever its status; the caller commits."""
    for field in ("name", "notes"):
        if field in fields:
            setattr(run, field, fields[field])
    if "tags" in fields:
        wanted = set(fields["tags"])
        run.tags = [t for t in run.tags if t.tag in wanted] + [
            RunTag(tag=t) for t in sorted(wanted - {t.tag for t in run.tags})
        ]
        session.flush()


def enqueue(session: Session, run_id: int) -> None:
    """Stage the run's train task; it is sent once the caller commits and publishes (see `outbox`)."""
    stage(session, TRAIN_TASK, [run_id])
    session.execute(update(Run).where(Run.id == run_id).values(queued_at=utcnow()))


class LostRun(Exception):
    """The run was taken over (reaped and claimed again) or finished: this worker must stop writing."""


def fence(session: Session, run_id: int, worker: str) -> None:
    """Lock the run for the rest of the caller's transaction if `worker` still owns it, else raise LostRun.

    Worker-side writes (metrics, checkpoints) call this first in their transaction: the row lock holds a
    reaper or a new claim back until they commit, so a write never lands after another worker took over.
    """
    owned = affected(
        session,
        update(Run)
        .where(Run.id == run_id, Run.worker == worker, Run.status == RunStatus.running)
        .values(heartbeat_at=utcnow()),
    )
    if owned != 1:
        raise LostRun(f"run {run_id} is no longer owned by {worker}")


def claim(session: Session, run_id: int, worker: str) -> bool:
    """Take a queued run for this worker; False if someone else has it or it is finished/cancelled."""
    now = utcnow()
    matched = affected(
        session,
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.queued, Run.cancel_requested.is_(False))
        .values(
            status=RunStatus.running,
            worker=worker,
            heartbeat_at=now,
            attempts=Run.attempts + 1,
            started_at=func.coalesce(Run.started_at, now),
        ),
    )
    if matched == 1:
        return True
    session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.queued, Run.cancel_requested.is_(True))
        .values(status=RunStatus.cancelled, failure_kind=FailureKind.cancelled, finished_at=now)
    )
    return False


def keep_alive(session: Session, run_id: int, worker: str, progress_steps: int | None = None) -> bool:
    """Refresh the heartbeat; returns whether the run goes on (False: cancellation was requested, or
    another worker has it now)."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if progress_steps is not None:
        values["progress_steps"] = progress_steps
    matched = affected(
        session,
        update(Run)
        .where(Run.id == run_id, Run.worker == worker, Run.status == RunStatus.running)
        .values(**values),
    )
    if matched == 0:
        return False
    return not session.scalar(select(Run.cancel_requested).where(Run.id == run_id))


def finish(session: Session, run_id: int, worker: str, status: RunStatus, **fields: Any) -> bool:
    """Record the outcome, only if this worker still owns the running run."""
    matched = affected(
        session,
        update(Run)
        .where(Run.id == run_id, Run.worker == worker, Run.status == RunStatus.running)
        .values(status=status, finished_at=utcnow(), **fields),
    )
    return matched == 1


def requeue(session: Session, run_id: int, worker: str) -> bool:
    """Hand a preempted run back to the queue, its task staged (the caller commits and publishes). The
    attempt is not counted: the worker stopped cleanly after a checkpoint, the run did nothing wrong."""
    matched = affected(
        session,
        update(Run)
        .where(Run.id == run_id, Run.worker == worker, Run.status == RunStatus.running)
        .values(status=RunStatus.queued, worker=None, attempts=Run.attempts - 1),
    )
    if matched != 1:
        return False
    enqueue(session, run_id)
    return True


def request_cancel(session: Session, run: Run) -> None:
    """A queued run is cancelled at once; a running one stops at its trainer's next heartbeat."""
    if RunStatus(run.status).finished:
        return
    run.cancel_requested = True
    if run.status == RunStatus.queued:
        run.status = RunStatus.cancelled
        run.failure_kind = FailureKind.cancelled
        run.finished_at = utcnow()


def reap_stale(session: Session, timeout_seconds: float, max_attempts: int) -> list[int]:
    """Running runs whose heartbeat went stale lost their worker: requeue them (their tasks are staged;
    the caller commits and publishes), or fail them once they have used up their attempts."""
    cutoff = utcnow() - timedelta(seconds=timeout_seconds)
    stale = and_(Run.status == RunStatus.running, or_(Run.heartbeat_at < cutoff, Run.heartbeat_at.is_(None)))
    session.execute(
        update(Run)
        .where(stale, Run.attempts >= max_attempts)
        .values(
            status=RunStatus.failed,
            finished_at=utcnow(),
            failure_kind=FailureKind.worker_lost,
            failure_reason=f"worker lost: no heartbeat for {timeout_seconds:g}s, {max_attempts} attempts",
        )
    )
    requeued = session.scalars(
        update(Run)
        .where(stale, Run.attempts < max_attempts)
        .values(status=RunStatus.queued, worker=None)
        .returning(Run.id)
    ).all()
    for run_id in requeued:
        enqueue(session, run_id)
    return list(requeued)


def resend_lost(session: Session, after_seconds: float) -> list[int]:
    """Stage the train task again for runs queued longer than `after_seconds` since their last one: a
    broker that restarted empty lost it. A duplicate is harmless, `claim` lets one delivery through."""
    cutoff = utcnow() - timedelta(seconds=after_seconds)
    lost = session.scalars(
        select(Run.id).where(
            Run.status == RunStatus.queued, func.coalesce(Run.queued_at, Run.created_at) < cutoff
        )
    ).all()
    for run_id in lost:
        enqueue(session, run_id)
    return list(lost)
