"""The sweep benchmark's task families are sound, and a sweep runs end to end under its budget."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from sweep_bench import metrics, sweep
from sweep_tasks import COST_PARAM, FAMILIES, HELD_OUT, TUNING


def test_split_is_fixed_and_complete() -> None:
    assert set(TUNING) | set(HELD_OUT) == set(FAMILIES)
    assert not set(TUNING) & set(HELD_OUT)
    assert len(FAMILIES) >= 10


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family(name: str) -> None:
    family = FAMILIES[name]
    ok, why = family.available
    if not ok:
        pytest.skip(why)
    space = family.space
    assert 3 <= space.dim <= 16
    assert all(p.mean is not None for p in space.params), "every parameter needs the user's default"
    # The centre is a valid point that round-trips through the space.
    centre = family.params(family.centre())
    assert np.allclose(space.normalize(centre), family.centre())
    rng = np.random.default_rng(0)
    u = space.snap(rng.uniform(-1.0, 1.0, (2000, space.dim)))
    value, pfail = family.true(u)
    assert np.all(np.where(pfail < 1.0, value, 0.0) <= family.optimum + 1e-9)
    assert np.all(family.cost(u) > 0)
    assert family.reference["cheapest"] > 0
    assert 20 <= family.budget_runs <= 200
    p = space.params[space.index(COST_PARAM)]
    assert p.distribution == "log_normal" and 0.99 <= np.log10(p.max / p.min) <= 3.01
    t = family.evaluate(centre, rng)
    assert t.cost > 0 and (t.failed or t.score is not None)


@pytest.mark.parametrize("parallel", [1, 4])
def test_random_sweep_stays_under_budget(parallel: int) -> None:
    family = FAMILIES["tiny_3d"]
    h = sweep(family, "random", seed=0, parallel=parallel, max_trials=60)
    spent = sum(t["cost"] for t in h["trials"])
    assert 0 < spent <= family.budget
    m = metrics(family, h)
    assert 0.0 < m["final"] <= 1.0 and 0.0 <= m["auc"] <= m["final"]
    assert m["used"] <= 1.0
