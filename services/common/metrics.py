"""Metric series: batched writes with rollups, and downsampled reads that keep min and max.

A series is the points of one (run, key), ordered by step. Each point gets an ordinal `seq`. Every 4**level
points (level 1..LEVELS) the writer also stores a rollup row: count, mean, min and max of that span. A read
of N points at max_points M uses the coarsest level that still has at least M rows, plus the raw tail
after its last rollup, so its cost is bounded by about 4*M rows whatever N is.

Smoothing (a debiased EMA) runs over those finest buckets before they are merged down to M, so what the
dashboard draws does not depend on how many points were merged into one pixel; min and max stay raw.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
from sqlalchemy import (
    CompoundSelect,
    Connection,
    Dialect,
    and_,
    bindparam,
    delete,
    func,
    literal_column,
    or_,
    select,
    union_all,
    update,
)
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

    def restore(self, points: list[dict], rollups: list[dict]) -> None:
        """Put the buffers back as they were before a flush whose transaction did not commit, so the next
        flush writes them again (with the series' keys). Should part of it have landed, writing a point
        twice is harmless: inserts skip rows that exist."""
        self.points, self.rollups = points, rollups
        self.known_keys = 0

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


# A read is one statement, built once with bound parameters (and compiled once per dialect, see _fetch):
# on a busy machine each round trip to the database costs milliseconds of scheduling, more than the rows.
_SERIES = (MetricRollup.run_id == bindparam("run_id"), MetricRollup.key == bindparam("key"))
# The level to read is the coarsest with at least max_points rollups: level l has total // 4**l of them, so
# it qualifies exactly when its max_points-th rollup, at seq max_points * 4**l - 1, exists. Eight primary
# key lookups instead of counting the series.
_LEVEL = (
    select(func.coalesce(func.max(MetricRollup.level), 0))
    .where(
        *_SERIES,
        or_(
            *(
                and_(MetricRollup.level == level, MetricRollup.seq == bindparam(f"full_{level}"))
                for level in range(1, LEVELS + 1)
            )
        ),
    )
    .scalar_subquery()
)
_AT_LEVEL = (*_SERIES, MetricRollup.level == _LEVEL)
# The rollups of that level, then the raw points after the last of them (all points at level 0).
_BUCKETS: CompoundSelect[*tuple[Any, ...]] = union_all(
    select(
        MetricRollup.seq,
        MetricRollup.step,
        MetricRollup.time,
        MetricRollup.count,
        MetricRollup.mean,
        MetricRollup.min,
        MetricRollup.max,
    ).where(*_AT_LEVEL),
    select(
        Metric.seq, Metric.step, Metric.time, literal_column("1"), Metric.value, Metric.value, Metric.value
    ).where(
        Metric.run_id == bindparam("run_id"),
        Metric.key == bindparam("key"),
        Metric.seq
        > select(func.coalesce(func.max(MetricRollup.seq), -1)).where(*_AT_LEVEL).scalar_subquery(),
    ),
).order_by("seq")


def read_series(
    session: Session, run_id: int, key: str, max_points: int, smoothing: float = 0.0
) -> dict[str, list]:
    """At most `max_points` buckets of one series: last step and time, mean, min, max and point count.

    `smoothing` (0 <= s < 1, 0 is off) replaces the means by their debiased EMA, see `_smooth`.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    full = {f"full_{level}": max_points * FANOUT**level - 1 for level in range(1, LEVELS + 1)}
    rows = _fetch(session.connection(), _BUCKETS, run_id=run_id, key=key, **full)
    if not rows:
        return {"step": [], "time": [], "value": [], "min": [], "max": [], "count": []}
    buckets = _columns(rows)
    if smoothing > 0.0:
        buckets[4] = _smooth(buckets[3], buckets[4], smoothing)
    return _merge(buckets, max_points)


def _fetch(
    connection: Connection, statement: CompoundSelect[*tuple[Any, ...]], **params: object
) -> list[tuple]:
    """The statement's rows as plain tuples.

    On PostgreSQL through psycopg the rows come over the binary protocol, on the session's own connection
    (same transaction), from SQL compiled once: parsing thousands of floats from text, building Row
    objects and compiling the statement each took more CPU time than the rest of a read.
    Elsewhere (SQLite) the Core result is cheap enough.
    """
    dialect = connection.dialect
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        sql, defaults = _compiled(statement, dialect)
        driver = connection.connection.driver_connection
        assert driver is not None, "a connection checked out of the pool has its driver's"
        with driver.cursor(binary=True) as cursor:
            cursor.execute(sql, {**defaults, **params})
            return cursor.fetchall()
    return [tuple(row) for row in connection.execute(statement, params)]


@cache
def _compiled(statement: CompoundSelect[*tuple[Any, ...]], dialect: Dialect) -> tuple[str, dict]:
    compiled = statement.compile(dialect=dialect)
    return str(compiled), dict(compiled.params)


def _columns(rows: list) -> np.ndarray:
    """Rows of numbers (None for SQL NULL) as one float64 array per column, NULL becoming NaN. Steps and
    counts are exact in float64 up to 2**53."""
    return np.array(rows, dtype=np.float64).T


def _smooth(count: np.ndarray, mean: np.ndarray, smoothing: float) -> np.ndarray:
    """A debiased exponential moving average of the bucket means (TensorBoard's smoothing weight s: each
    point keeps s of the running average and adds 1 - s of itself).

    A bucket of n points with mean m moves the average as n points all equal to m would:
    ema <- s**n * ema + (1 - s**n) * m. That is exact when the points inside a bucket are equal; otherwise
    it ignores their order inside the bucket, a lag of at most one bucket (4**level points). Debiasing
    divides by 1 - s**N, N the points averaged so far, so the first points are not pulled towards 0.
    Buckets with no finite value (NaN) stay gaps and do not move the average. Min and max are left raw:
    the envelope shows what really happened around the smoothed line.
    """
    out = np.full_like(mean, np.nan)
    ema, seen = 0.0, 0.0
    # A plain loop over Python floats: the recurrence is sequential, and a few thousand buckets take ~1 ms.
    for i, (n, m) in enumerate(zip(count.tolist(), mean.tolist(), strict=True)):
        if m != m:  # NaN
            continue
        decay = smoothing**n
        ema = decay * ema + (1.0 - decay) * m
        seen += n
        out[i] = ema / (1.0 - smoothing**seen)
    return out


def _merge(buckets: np.ndarray, max_points: int) -> dict[str, list]:
    """Group consecutive buckets so at most max_points remain; means are weighted by point counts.

    `buckets` holds the columns seq, step, time, count, mean, min, max; NaN marks a bucket with no finite
    value, and becomes None (JSON null) in the answer.
    """
    _, step, at, count, mean, low, high = buckets
    n = len(step)
    finite = ~np.isnan(mean)
    weight = np.where(finite, count, 0.0)
    size = math.ceil(n / max_points)
    starts = np.arange(0, n, size)
    ends = np.minimum(starts + size, n) - 1
    w = np.add.reduceat(weight, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        merged_mean = np.add.reduceat(np.where(finite, mean * weight, 0.0), starts) / w
    merged_low = np.minimum.reduceat(np.where(np.isnan(low), np.inf, low), starts)
    merged_high = np.maximum.reduceat(np.where(np.isnan(high), -np.inf, high), starts)
    valid = w > 0

    def col(values: np.ndarray) -> list:
        return [v if ok else None for v, ok in zip(values.tolist(), valid.tolist(), strict=True)]

    return {
        "step": step[ends].astype(np.int64).tolist(),
        "time": at[ends].tolist(),
        "value": col(merged_mean),
        "min": col(merged_low),
        "max": col(merged_high),
        "count": np.add.reduceat(count, starts).astype(np.int64).tolist(),
    }


# ---- export: every raw point, one row per step -------------------------------------------------------------

EXPORT_CHUNK = 10_000


def _points(session: Session, run_id: int, key: str) -> Iterator[tuple[int, float, float | None]]:
    """One series' raw points in step order, read in keyset pages along the primary key (run, key, step)."""
    after = -1
    while True:
        rows = session.execute(
            select(Metric.step, Metric.time, Metric.value)
            .where(Metric.run_id == run_id, Metric.key == key, Metric.step > after)
            .order_by(Metric.step)
            .limit(EXPORT_CHUNK)
        ).all()
        yield from rows
        if len(rows) < EXPORT_CHUNK:
            return
        after = rows[-1][0]


def _tagged(points: Iterator[tuple], column: int) -> Iterator[tuple[int, int, float, float | None]]:
    for step, at, value in points:
        yield step, column, at, value


def export_rows(
    session: Session, run_id: int, keys: list[str]
) -> Iterator[tuple[int, float, list[float | None]]]:
    """Every logged point of `keys` at full resolution, merged by step: (step, time, [value per key]);
    a key not logged at a step, or logged as NaN/inf, is None there. Memory stays bounded by the keys
    times one page, whatever the run's length."""
    merged = heapq.merge(*(_tagged(_points(session, run_id, key), column) for column, key in enumerate(keys)))
    current, at = None, 0.0
    values: list[float | None] = [None] * len(keys)
    for step, column, time_, value in merged:
        if step != current:
            if current is not None:
                yield current, at, values
            current, at, values = step, time_, [None] * len(keys)
        values[column] = value
        at = max(at, time_)
    if current is not None:
        yield current, at, values
