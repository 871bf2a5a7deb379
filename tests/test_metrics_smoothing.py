"""Server-side smoothing: a debiased EMA over the finest buckets read, before downsampling, envelope raw."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fastapi.testclient import TestClient

from services.common.db import session_scope
from services.common.metrics import MetricWriter, read_series
from services.common.runs import create_run


@pytest.fixture
def run_id(embedded) -> int:
    with session_scope() as session:
        return create_run(session, "cartpole").id


def write(run_id: int, values: list[float]) -> None:
    writer = MetricWriter(run_id)
    for i, v in enumerate(values):
        writer.append(i + 1, {"loss": v}, at=float(i))
    with session_scope() as session:
        writer.flush(session)


def read(run_id: int, max_points: int, smoothing: float) -> dict:
    with session_scope() as session:
        return read_series(session, run_id, "loss", max_points, smoothing)


def pointwise_ema(values: list[float], s: float) -> np.ndarray:
    """The reference: TensorBoard's debiased EMA, one point at a time."""
    out, ema = [], 0.0
    for n, v in enumerate(values, start=1):
        ema = s * ema + (1 - s) * v
        out.append(ema / (1 - s**n))
    return np.array(out)


def test_off_is_the_raw_series(run_id):
    write(run_id, [math.sin(i) for i in range(300)])
    assert read(run_id, 1000, 0.0) == read(run_id, 1000, 0.0)
    raw = read(run_id, 1000, 0.0)
    assert raw["value"] == raw["min"] == raw["max"]


def test_raw_points_match_the_pointwise_debiased_ema(run_id):
    rng = np.random.default_rng(0)
    values = list(rng.normal(5.0, 1.0, 200))
    series = read_after(run_id, values, 1000, 0.9)
    np.testing.assert_allclose(series["value"], pointwise_ema(values, 0.9), rtol=1e-12)
    # Debiased: the first point is itself, not pulled towards 0.
    assert series["value"][0] == pytest.approx(values[0])
    # The envelope stays raw.
    assert series["min"] == series["max"] == pytest.approx(values)


def read_after(run_id: int, values: list[float], max_points: int, smoothing: float) -> dict:
    write(run_id, values)
    return read(run_id, max_points, smoothing)


@pytest.mark.parametrize(("max_points", "width"), [(1024, 4), (256, 16)])
def test_rollup_buckets_are_exact_when_their_points_are_equal(run_id, max_points, width):
    # 4096 points, constant within blocks of 16: every rollup bucket read (4 or 16 points wide) holds equal
    # values, and max_points is chosen so that the read needs no further merge (one bucket per point drawn).
    rng = np.random.default_rng(1)
    blocks = rng.normal(0.0, 1.0, 4096 // 16)
    values = [float(blocks[i // 16]) for i in range(4096)]
    series = read_after(run_id, values, max_points, 0.99)
    assert len(series["value"]) == 4096 // width
    expected = pointwise_ema(values, 0.99)[width - 1 :: width]
    np.testing.assert_allclose(series["value"], expected, rtol=1e-9)


def test_smoothing_happens_before_downsampling(run_id):
    # A ramp of slope 0.001 per point under +-1 alternating noise, 20,000 points read as <= 100. An EMA with
    # s = 0.99 spans ~100 points, so applied to the points it lags the ramp by ~0.1. Applied after merging
    # (200 points per bucket) it would span ~20,000 points and lag by ~20: the line would sit near 0.
    values = [i / 1000 + (1 if i % 2 else -1) for i in range(20_000)]
    series = read_after(run_id, values, 100, 0.99)
    assert len(series["value"]) <= 100
    assert series["value"][-1] == pytest.approx(19.999 - 0.099, abs=0.3)
    # The envelope is the raw noise, untouched by smoothing.
    assert max(series["max"]) == pytest.approx(max(values)) and min(series["min"]) == pytest.approx(
        min(values)
    )


def test_gaps_stay_gaps_and_do_not_move_the_average(run_id):
    series = read_after(run_id, [1.0, 1.0, float("nan"), 3.0], 100, 0.5)
    assert series["value"][2] is None
    # After the gap the EMA continues from the three finite points: 1, 1, 3.
    assert series["value"][3] == pytest.approx(pointwise_ema([1.0, 1.0, 3.0], 0.5)[-1])


def test_the_api_validates_and_applies_smoothing(run_id):
    from services.api.app import create_app

    write(run_id, [float(i % 2) for i in range(50)])
    client = TestClient(create_app())
    assert client.get(f"/runs/{run_id}/metrics", params={"smoothing": 1}).status_code == 422
    assert client.get(f"/runs/{run_id}/metrics", params={"smoothing": -0.1}).status_code == 422
    raw = client.get(f"/runs/{run_id}/metrics", params={"keys": "loss"}).json()["series"]["loss"]
    smooth = client.get(f"/runs/{run_id}/metrics", params={"keys": "loss", "smoothing": 0.9}).json()
    assert smooth["series"]["loss"]["value"] != raw["value"]
    assert smooth["series"]["loss"]["min"] == raw["min"]


@pytest.mark.parametrize("points", [199, 200, 799, 800, 801, 3200, 12_850])
def test_reads_use_the_coarsest_level_with_at_least_max_points_rollups(run_id, points):
    # The level is found in SQL (does rollup number max_points exist?); it must agree with its definition.
    max_points = 50
    level = 0
    while points // 4 ** (level + 1) >= max_points:
        level += 1
    buckets = points // 4**level + points % 4**level  # rollups of that level, then the raw tail
    series = read_after(run_id, [float(i) for i in range(points)], max_points, 0.0)
    assert len(series["step"]) == math.ceil(buckets / math.ceil(buckets / max_points))
    assert sum(series["count"]) == points and series["step"][-1] == points
