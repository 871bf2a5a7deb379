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
    failure_reason: Mapped[str | None] = mapped_column(Text)
    final_score: Mapped[float | None] = mapped_column(Float)
    final_raw_score: Mapped[float | None] = mapped_column(Float)
    cost_seconds: Mapped[float | None] = mapped_column(Float)
    cost_steps: Mapped[int | None] = mapped_column(BigInteger)
    progress_steps: Mapped[int] = mapped_column(BigInteger, default=0)
    metric_keys: Mapped[list[Any]] = mapped_column(default=list)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]

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

    __table_args__ = (Index("ix_metrics_series_seq", "run_id", "key", "seq"),)


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
