"""SQLAlchemy models: the platform's whole state lives in these tables."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    env: Mapped[str] = mapped_column(String(64), index=True)
    env_version: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.queued, index=True)
    # The fully resolved configuration ({"train": ..., "env": ..., "policy": ...}) the trainer runs with,
    # and the user's overrides alone, so curves can be compared by what actually differed.
    config: Mapped[dict[str, Any]]
    overrides: Mapped[dict[str, Any]]
    total_timesteps: Mapped[int] = mapped_column(BigInteger)
    seed: Mapped[int] = mapped_column(BigInteger, default=0)
    # A label and free text for people (PATCH /runs/{id}); neither changes what the run does.
    name: Mapped[str | None] = mapped_column(String(128))
    notes: Mapped[str | None] = mapped_column(Text)
    failure_kind: Mapped[str | None] = mapped_column(String(16))  # a FailureKind
    failure_reason: Mapped[str | None] = mapped_column(Text)
    final_score: Mapped[float | None] = mapped_column(Float)
    final_raw_score: Mapped[float | None] = mapped_column(Float)
    cost_seconds: Mapped[float | None] = mapped_column(Float)
    cost_steps: Mapped[int | None] = mapped_column(BigInteger)
    progress_steps: Mapped[int] = mapped_column(BigInteger, default=0)
    metric_keys: Mapped[list[Any]] = mapped_column(default=list)
    sweep_id: Mapped[int | None] = mapped_column(ForeignKey("sweeps.id", ondelete="SET NULL"), index=True)
    # The sweep trial whose hyperparameters this run was promoted from, copied verbatim. A plain id, not a
    # foreign key: trials already reference runs, and a cycle would complicate every migration.
    promoted_from: Mapped[int | None] = mapped_column(Integer, index=True)
    # The API token that created it (None: the bootstrap admin, or a sweep's trial); a write token changes
    # only what it created.
    created_by_token: Mapped[int | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="SET NULL"), index=True
    )
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    # When its train message was last staged: a run still queued long after has lost its message (a broker
    # restarted empty) and is enqueued again.
    queued_at: Mapped[datetime | None]

    tags: Mapped[list[RunTag]] = relationship(
        back_populates="run", cascade="all, delete-orphan", lazy="selectin", order_by="RunTag.tag"
    )
    checkpoints: Mapped[list[Checkpoint]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="Checkpoint.step"
    )

    __table_args__ = (Index("ix_runs_created", "created_at"),)


class RunTag(Base):
    __tablename__ = "run_tags"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    run: Mapped[Run] = relationship(back_populates="tags")


class Metric(Base):
    """One logged point. `seq` is the point's ordinal within its (run, key) series; rollups hang off it."""

    __tablename__ = "metrics"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(96), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    time: Mapped[float] = mapped_column(Float)
    value: Mapped[float | None] = mapped_column(Float)

    # Unique: a worker that lost the run cannot add a second point at an ordinal the new owner wrote.
    __table_args__ = (Index("ux_metrics_series_seq", "run_id", "key", "seq", unique=True),)


class MetricRollup(Base):
    """Summary of the 4**level points of a series ending at ordinal `seq` (inclusive).

    Reading a series of N points at max_points M touches at most about 4*M rollup rows of the level where
    N / 4**level first drops below 4*M, instead of all N points, whatever N is.
    """

    __tablename__ = "metric_rollups"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(96), primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger)
    time: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer)
    mean: Mapped[float | None] = mapped_column(Float)
    min: Mapped[float | None] = mapped_column(Float)
    max: Mapped[float | None] = mapped_column(Float)


class Checkpoint(Base):
    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(String(512))
    env: Mapped[str] = mapped_column(String(64))
    env_version: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    meta: Mapped[dict[str, Any]]

    run: Mapped[Run] = relationship(back_populates="checkpoints")

    __table_args__ = (Index("ux_checkpoints_run_step", "run_id", "step", unique=True),)


class OutboxMessage(Base):
    """A task to send, written in the transaction that made it necessary and deleted once the broker has
    it: a broker that is down when a run is created delays the run, it never loses it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(64))
    args: Mapped[list[Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Scope(StrEnum):
    read = "read"
    write = "write"  # creates runs, sweeps and matches; changes only what it created
    admin = "admin"  # changes anything

    @property
    def can_write(self) -> bool:
        return self is not Scope.read


class ApiToken(Base):
    """A bearer token of `shoal token create`. Only the SHA-256 of its secret is kept: the secret is shown
    once, and a copy of the database authenticates nobody. Revoked tokens stay, so the audit log and the
    runs they created keep naming them."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(8))  # a Scope
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class AuditEntry(Base):
    """One write that took effect: written in the write's own transaction, so a refused or failed request
    leaves no entry and an accepted one always has its entry."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id", ondelete="SET NULL"), index=True)
    # The token's name at the time ("bootstrap" for SHOAL_API_TOKEN).
    actor: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(255))


class WorkerBeat(Base):
    """A worker process's last sign of life, refreshed every few seconds by a thread of its own, so /healthz
    can count live workers per queue on any broker (the embedded one cannot broadcast a ping) and a train
    worker busy in its solo pool still counts."""

    __tablename__ = "worker_beats"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)  # the Celery node, queue-pid@host
    queue: Mapped[str] = mapped_column(String(16))
    beat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class SweepStatus(StrEnum):
    running = "running"
    finished = "finished"
    stopped = "stopped"


class TrialStatus(StrEnum):
    running = "running"  # its run is queued or training
    rating = "rating"  # finished training, waiting for its Elo rating (metric "elo")
    succeeded = "succeeded"
    failed = "failed"  # a hyperparameter failure (NaN, crash): the model learns to avoid it
    early_stopped = "early_stopped"
    lost = "lost"  # infrastructure failure after all retries: the model learns nothing
    cancelled = "cancelled"

    @property
    def in_flight(self) -> bool:
        return self in (TrialStatus.running, TrialStatus.rating)

    @property
    def observed(self) -> bool:
        """Whether the search model learns from this trial."""
        return self in (TrialStatus.succeeded, TrialStatus.failed, TrialStatus.early_stopped)


class Sweep(Base):
    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    env: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default=SweepStatus.running, index=True)
    space: Mapped[dict[str, Any]]
    # The fixed overrides of the env's defaults every trial starts from (the API's "hyperparameters"); the
    # swept values are merged over them.
    overrides: Mapped[dict[str, Any]]
    metric: Mapped[str] = mapped_column(String(32))
    goal: Mapped[str] = mapped_column(String(16))
    cost_unit: Mapped[str] = mapped_column(String(16))
    max_runs: Mapped[int] = mapped_column(Integer)
    parallelism: Mapped[int] = mapped_column(Integer)
    max_cost: Mapped[float | None] = mapped_column(Float)
    # The sweep's total cost in `cost_unit`; None: only max_runs ends it.
    budget: Mapped[float | None] = mapped_column(Float)
    max_retries: Mapped[int] = mapped_column(Integer, default=2)
    early_stopping: Mapped[bool] = mapped_column(Boolean, default=True)
    seed: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by_token: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    trials: Mapped[list[Trial]] = relationship(
        back_populates="sweep", cascade="all, delete-orphan", order_by="Trial.number"
    )


class Trial(Base):
    __tablename__ = "trials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    params: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default=TrialStatus.running)
    score: Mapped[float | None] = mapped_column(Float)
    cost_seconds: Mapped[float | None] = mapped_column(Float)
    cost_steps: Mapped[int | None] = mapped_column(BigInteger)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    predicted_score: Mapped[float | None] = mapped_column(Float)
    predicted_cost: Mapped[float | None] = mapped_column(Float)
    # What the budget reserved for the trial when it was proposed (its upper-bound cost), held while it runs.
    reserved_cost: Mapped[float | None] = mapped_column(Float)
    # How the search proposed the trial (centre, sobol, random, pareto); why it failed is failure_reason.
    proposal: Mapped[str | None] = mapped_column(String(64))
    retries: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    sweep: Mapped[Sweep] = relationship(back_populates="trials")
    run: Mapped[Run | None] = relationship(foreign_keys=[run_id])

    __table_args__ = (Index("ux_trials_sweep_number", "sweep_id", "number", unique=True),)


# ---- Elo ratings (services/elo) -------------------------------------------------------------------------
# `matches` is the append-only source of truth; `ratings` is a view derived from it by a refit. Jobs and
# batches are the work queue's bookkeeping: a batch is one `shoal.elo.play` task, and a job counts its
# batches down so that the last one to finish triggers the refit (the embedded broker has no result
# backend, so a Celery chord is not an option).


class PlayerKind(StrEnum):
    checkpoint = "checkpoint"
    anchor = "anchor"


class BatchStatus(StrEnum):
    queued = "queued"
    played = "played"
    refused = "refused"  # a player cannot play (corrupt checkpoint, other env...): see `reason`
    failed = "failed"  # the runner crashed: see `reason`


class EloPlayer(Base):
    """One rated player of an environment: a checkpoint, or an anchor ("random", "scripted")."""

    __tablename__ = "players"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    env: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    # A stable key ("random", "checkpoint-17"); `label` is for people ("run 3 @ 40,960").
    name: Mapped[str] = mapped_column(String(128))
    label: Mapped[str] = mapped_column(String(255))
    checkpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("checkpoints.id", ondelete="SET NULL"), index=True
    )
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), index=True)
    step: Mapped[int | None] = mapped_column(BigInteger)
    env_version: Mapped[str] = mapped_column(String(32))
    # Why this player can no longer play (its checkpoint was refused); its past games still count.
    refused: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ux_players_env_name", "env", "name", unique=True),)


class MatchJob(Base):
    """A set of batches (a checkpoint's rating, a POST /matches) whose completion triggers one refit."""

    __tablename__ = "match_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    env: Mapped[str] = mapped_column(String(64))
    player_id: Mapped[int | None] = mapped_column(ForeignKey("players.id", ondelete="SET NULL"))
    pending: Mapped[int] = mapped_column(Integer)
    # The sweep to tick once the job's refit is done (the sweeper's "Elo as a sweep metric").
    then_tick_sweep: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class MatchBatch(Base):
    """G games of A against B, played by one task; a refused batch records why (the failure log)."""

    __tablename__ = "match_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("match_jobs.id", ondelete="CASCADE"), index=True)
    env: Mapped[str] = mapped_column(String(64))
    player_a: Mapped[int] = mapped_column(ForeignKey("players.id", ondelete="CASCADE"))
    player_b: Mapped[int] = mapped_column(ForeignKey("players.id", ondelete="CASCADE"))
    games: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=BatchStatus.queued, index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class Match(Base):
    """One game, append-only: who played which seat on which seed, and how it ended."""

    __tablename__ = "matches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    env: Mapped[str] = mapped_column(String(64), index=True)
    player_a: Mapped[int] = mapped_column(ForeignKey("players.id", ondelete="CASCADE"), index=True)
    player_b: Mapped[int] = mapped_column(ForeignKey("players.id", ondelete="CASCADE"), index=True)
    seat_a: Mapped[int] = mapped_column(SmallInteger)
    seed: Mapped[int] = mapped_column(BigInteger)
    score_a: Mapped[float] = mapped_column(Float)  # 1 A won, 0.5 draw or timeout, 0 A lost
    steps: Mapped[int] = mapped_column(Integer)
    timeout: Mapped[bool] = mapped_column(Boolean, default=False)
    env_version: Mapped[str] = mapped_column(String(32))
    code_version: Mapped[str] = mapped_column(String(32))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("match_batches.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RatingFit(Base):
    """An env's last refit: the newest match it covered, so that a queued refit with nothing new to fit (a
    burst of jobs finishing together) is skipped instead of repeating the whole bootstrap."""

    __tablename__ = "rating_fits"

    env: Mapped[str] = mapped_column(String(64), primary_key=True)
    env_version: Mapped[str] = mapped_column(String(32))
    through_match_id: Mapped[int] = mapped_column(BigInteger, default=0)
    fitted_at: Mapped[datetime | None] = mapped_column(default=None)


class EloRating(Base):
    """A player's fitted rating with its 95% bootstrap interval, replaced by every refit of its env."""

    __tablename__ = "ratings"

    env: Mapped[str] = mapped_column(String(64), primary_key=True)
    player_id: Mapped[int] = mapped_column(ForeignKey("players.id", ondelete="CASCADE"), primary_key=True)
    elo: Mapped[float] = mapped_column(Float)
    lo: Mapped[float] = mapped_column(Float)
    hi: Mapped[float] = mapped_column(Float)
    games: Mapped[int] = mapped_column(Integer)
    fitted_at: Mapped[datetime] = mapped_column(default=utcnow)
