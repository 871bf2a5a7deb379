"""Metric series: batched writes with rollups, and downsampled reads that keep min and max.

A series is the points of one (run, key), ordered by step. Each point gets an ordinal `seq`. Every 4**level
points (level 1..LEVELS) the writer also stores a rollup row: count, mean, min and max of that span. A read
of N points at max_points M uses the coarsest level that still has at least M rows, plus the raw tail
after its last rollup, so its cost is bounded by about 4*M rows whatever N is.

Smoothing (a debiased EMA) runs over those finest buckets before they are merged down to M, so what the
dashboard draws does not depend on how many points were merged into one pixel; min and max stay raw.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from services.common.models import Metric, MetricRollup, Run

LEVELS = 8
FANOUT = 4


@dataclass
class _Span:
    count: int = 0
    total: float = 0.0
    finite: int = 0
    low: float = math.inf
    high: float = -math.inf

    def add(self, value: float | None) -> None:
        self.count += 1
        if value is not None:
            self.finite += 1
            self.total += value
            self.low = min(self.low, value)
            self.high = max(self.high, value)

    def row(self) -> dict[str, float | int | None]:
        has = self.finite > 0
        return {
            "count": self.count,
            "mean": self.total / self.finite if has else None,
            "min": self.low if has else None,
            "max": self.high if has else None,
        }


@dataclass
class _Series:
    seq: int = 0
    last_step: int = -1
    spans: list[_Span] = field(default_factory=lambda: [_Span() for _ in range(LEVELS)])


def _clean(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


class MetricWriter:
    """Buffers the points of one run and writes them, with their rollups, in one transaction per flush.

    Steps must grow within a series; a point at a step not beyond the series' last is dropped, which is
    what makes a redelivered run unable to write the same step twice.
    """

    def __init__(self, run_id: int):
        self.run_id = run_id
        self.series: dict[str, _Series] = {}
        self.points: list[dict] = []
        self.rollups: list[dict] = []
        self.known_keys = 0

    def append(self, step: int, values: dict[str, float], at: float | None = None) -> None:
        at = time.time() if at is None else at
        for key, raw in values.items():
            series = self.series.setdefault(key, _Series())
            if step <= series.last_step:
                continue
            value = _clean(raw)
            self.points.append(
                {
                    "run_id": self.run_id,
                    "key": key,
                    "step": step,
                    "seq": series.seq,
                    "time": at,
                    "value": value,
                }
            )
            for level, span in enumerate(series.spans, start=1):
                span.add(value)
                if (series.seq + 1) % FANOUT**level == 0:
                    self.rollups.append(
                        {
                            "run_id": self.run_id,
                            "key": key,
                            "level": level,
                            "seq": series.seq,
                            "step": step,
                            "time": at,
                            **span.row(),
                        }
                    )
                    series.spans[level - 1] = _Span()
            series.seq += 1
            series.last_step = step

    def flush(self, session: Session) -> int:
        """Write buffered points; returns how many. The caller commits."""
        written = len(self.points)
        if len(self.series) != self.known_keys:
            session.execute(update(Run).where(Run.id == self.run_id).values(metric_keys=sorted(self.series)))
            self.known_keys = len(self.series)
        for model, rows in ((Metric, self.points), (MetricRollup, self.rollups)):
            for begin in range(0, len(rows), 5000):
                session.execute(_insert_ignoring_duplicates(session, model), rows[begin : begin + 5000])
        self.points, self.rollups = [], []
        return written

    def resume(self, session: Session, after_step: int) -> None:
        """Drop whatever the run logged beyond `after_step` (the checkpoint it resumes from) and rebuild the
        writer's state from what remains, so resumed points continue each series without gaps or repeats."""
        session.execute(delete(Metric).where(Metric.run_id == self.run_id, Metric.step > after_step))
        session.execute(
            delete(MetricRollup).where(MetricRollup.run_id == self.run_id, MetricRollup.step > after_step)
        )
        self.series = {}
        self.known_keys = 0
        counts = session.execute(
            select(Metric.key, func.max(Metric.seq), func.max(Metric.step))
            .where(Metric.run_id == self.run_id)
            .group_by(Metric.key)
        ).all()
        widest = FANOUT**LEVELS
        for key, max_seq, max_step in counts:
            series = self.series[key] = _Series(seq=max_seq + 1, last_step=max_step)
            # Replay the points of the unfinished spans so the next rollups cover them too.
            begin = (series.seq // widest) * widest
            values = session.scalars(
                select(Metric.value)
                .where(Metric.run_id == self.run_id, Metric.key == key, Metric.seq >= begin)
                .order_by(Metric.seq)
            ).all()
            for offset, value in enumerate(values):
                seq = begin + offset
                for level, span in enumerate(series.spans, start=1):
                    if seq >= (series.seq // FANOUT**level) * FANOUT**level:
                        span.add(value)


def _insert_ignoring_duplicates(session: Session, model):
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(model).on_conflict_do_nothing()


def read_series(
    session: Session, run_id: int, key: str, max_points: int, smoothing: float = 0.0
) -> dict[str, list]:
    """At most `max_points` buckets of one series: last step and time, mean, min, max and point count.

    `smoothing` (0 <= s < 1, 0 is off) replaces the means by their debiased EMA, see `_smooth`.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    last = session.execute(
        select(Metric.seq)
        .where(Metric.run_id == run_id, Metric.key == key)
        .order_by(Metric.seq.desc())
        .limit(1)
    ).scalar()
    if last is None:
        return {"step": [], "time": [], "value": [], "min": [], "max": [], "count": []}
    total = last + 1
    level = 0
    while level < LEVELS and total // FANOUT ** (level + 1) >= max_points:
        level += 1

    columns: list[tuple] = []
    tail_from = 0
    if level > 0:
        rows = session.execute(
            select(
                MetricRollup.seq,
                MetricRollup.step,
                MetricRollup.time,
                MetricRollup.count,
                MetricRollup.mean,
                MetricRollup.min,
                MetricRollup.max,
            )
            .where(MetricRollup.run_id == run_id, MetricRollup.key == key, MetricRollup.level == level)
            .order_by(MetricRollup.seq)
        ).all()
        columns.extend(rows)
        tail_from = rows[-1][0] + 1 if rows else 0
    tail = session.execute(
        select(Metric.seq, Metric.step, Metric.time, Metric.value)
        .where(Metric.run_id == run_id, Metric.key == key, Metric.seq >= tail_from)
        .order_by(Metric.seq)
    ).all()
    columns.extend((seq, step, t, 1, v, v, v) for seq, step, t, v in tail)
    if smoothing > 0.0:
        columns = _smooth(columns, smoothing)
    return _merge(columns, max_points)


def _smooth(rows: list[tuple], smoothing: float) -> list[tuple]:
    """A debiased exponential moving average of the bucket means (TensorBoard's smoothing weight s: each
    point keeps s of the running average and adds 1 - s of itself).

    A bucket of n points with mean m moves the average as n points all equal to m would:
    ema <- s**n * ema + (1 - s**n) * m. That is exact when the points inside a bucket are equal; otherwise
    it ignores their order inside the bucket, a lag of at most one bucket (4**level points). Debiasing
    divides by 1 - s**N, N the points averaged so far, so the first points are not pulled towards 0.
    Buckets with no finite value stay gaps and do not move the average. Min and max are left raw: the
    envelope shows what really happened around the smoothed line.
    """
    out: list[tuple] = []
    ema, seen = 0.0, 0
    for seq, step, at, count, mean, low, high in rows:
        if mean is None:
            out.append((seq, step, at, count, None, low, high))
            continue
        decay = smoothing**count
        ema = decay * ema + (1.0 - decay) * mean
        seen += count
        out.append((seq, step, at, count, ema / (1.0 - smoothing**seen), low, high))
    return out


def _merge(rows: list[tuple], max_points: int) -> dict[str, list]:
    """Group consecutive buckets so at most max_points remain; means are weighted by finite counts."""
    _, step, at, count, mean, low, high = (np.array(c, dtype=object) for c in zip(*rows, strict=True))
    finite = np.array([m is not None for m in mean])
    mean_f = np.where(finite, mean, 0.0).astype(float)
    weight = np.where(finite, count, 0).astype(float)
    low_f = np.where(finite, low, np.inf).astype(float)
    high_f = np.where(finite, high, -np.inf).astype(float)
    size = math.ceil(len(rows) / max_points)
    starts = np.arange(0, len(rows), size)
    ends = np.minimum(starts + size, len(rows)) - 1
    w = np.add.reduceat(weight, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        merged_mean = np.add.reduceat(mean_f * weight, starts) / w
    merged_low = np.minimum.reduceat(low_f, starts)
    merged_high = np.maximum.reduceat(high_f, starts)
    valid = w > 0

    def col(values: np.ndarray) -> list:
        return [float(v) if ok else None for v, ok in zip(values, valid, strict=True)]

    return {
        "step": [int(s) for s in step[ends]],
        "time": [float(t) for t in at[ends]],
        "value": col(merged_mean),
        "min": col(merged_low),
        "max": col(merged_high),
        "count": [int(c) for c in np.add.reduceat(count.astype(int), starts)],
    }
