"""Metric series: downsampled reads keep spikes, cover the whole run, and resumes never repeat a step."""

from __future__ import annotations

import math

import pytest

from services.common.db import session_scope
from services.common.metrics import MetricWriter, read_series
from services.common.runs import create_run


@pytest.fixture
def run_id(embedded) -> int:
    with session_scope() as session:
        return create_run(session, "cartpole").id


def write(
    run_id: int, steps, value=lambda s: math.sin(s / 1000), writer: MetricWriter | None = None
) -> MetricWriter:
    writer = writer or MetricWriter(run_id)
    for step in steps:
        writer.append(step, {"loss": value(step), "const": 1.0}, at=float(step))
    with session_scope() as session:
        writer.flush(session)
    return writer


def read(run_id: int, key: str, max_points: int) -> dict:
    with session_scope() as session:
        return read_series(session, run_id, key, max_points)


def test_short_series_come_back_whole(run_id):
    write(run_id, range(1, 101))
    series = read(run_id, "loss", 2000)
    assert series["step"] == list(range(1, 101))
    assert series["value"] == series["min"] == series["max"]


@pytest.mark.parametrize("points", [5_000, 70_001])
def test_long_series_are_bounded_and_keep_their_extremes(run_id, points):
    spike_at = points // 3
    write(run_id, range(1, points + 1), value=lambda s: 50.0 if s == spike_at else (-9.0 if s == 7 else 0.5))
    series = read(run_id, "loss", 500)
    assert 250 <= len(series["step"]) <= 500
    assert max(series["max"]) == 50.0 and min(series["min"]) == -9.0
    assert series["step"][-1] == points, "the latest point must be visible"
    assert sum(series["count"]) == points
    assert all(lo <= v <= hi for lo, v, hi in zip(series["min"], series["value"], series["max"], strict=True))
    const = read(run_id, "const", 500)
    assert all(v == pytest.approx(1.0) for v in const["value"])


def test_non_finite_values_are_kept_as_gaps(run_id):
    write(run_id, range(1, 11), value=lambda s: float("nan") if s == 5 else 1.0)
    series = read(run_id, "loss", 100)
    assert series["value"][4] is None and series["value"][5] == 1.0


def test_resume_drops_points_after_the_checkpoint_and_continues_without_repeats(run_id):
    write(run_id, range(1, 20_001))
    writer = MetricWriter(run_id)
    with session_scope() as session:
        writer.resume(session, after_step=12_345)
    write(run_id, range(12_346, 30_001), writer=writer)
    with session_scope() as session:
        from sqlalchemy import func, select

        from services.common.models import Metric

        count, distinct, top = session.execute(
            select(func.count(), func.count(func.distinct(Metric.step)), func.max(Metric.seq)).where(
                Metric.run_id == run_id, Metric.key == "loss"
            )
        ).one()
    assert count == distinct == 30_000 and top == 29_999
    series = read(run_id, "loss", 300)
    assert sum(series["count"]) == 30_000
    steps = series["step"]
    assert steps == sorted(steps)


def test_steps_that_do_not_advance_are_ignored(run_id):
    writer = write(run_id, [10, 20])
    write(run_id, [20, 15, 30], writer=writer)
    assert read(run_id, "loss", 100)["step"] == [10, 20, 30]
