"""Early-stopping advice: is a running trial below what finished trials had reached at the same cost?

The reference line is a q-quantile regression, score ≈ A + B·log(cost), over finished successful trials,
solved exactly as a linear programme (the pinball loss is piecewise linear). A low quantile (0.3) only
stops clearly bad runs, and runs are never stopped before their cost reaches the cheapest finished trial:
the line says nothing outside the costs it was fitted on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linprog


def quantile_line(costs: Sequence[float], scores: Sequence[float], q: float = 0.3) -> tuple[float, float]:
    """(A, B) minimising the pinball loss of score - (A + B·log cost) at quantile q."""
    x = np.log(np.asarray(costs, dtype=float))
    y = np.asarray(scores, dtype=float)
    n = len(y)
    # Variables: A, B (free), then the positive and negative parts of each residual.
    c = np.concatenate([[0.0, 0.0], np.full(n, q), np.full(n, 1.0 - q)])
    a_eq = np.hstack([np.ones((n, 1)), x[:, None], np.eye(n), -np.eye(n)])
    bounds = [(None, None), (None, None)] + [(0, None)] * (2 * n)
    res = linprog(c, A_eq=a_eq, b_eq=y, bounds=bounds, method="highs")
    if not res.success:
        raise RuntimeError(f"quantile regression failed: {res.message}")
    return float(res.x[0]), float(res.x[1])


def below_line(
    costs: Sequence[float],
    scores: Sequence[float],
    cost_so_far: float,
    score_so_far: float,
    *,
    q: float = 0.3,
    min_trials: int = 10,
    budget: float | None = None,
    min_fraction: float = 0.25,
) -> bool:
    """True when a run at (cost_so_far, score_so_far) sits below the q-line of finished (costs, scores).

    Scores must already be oriented so that larger is better. ``budget`` is the run's planned cost; when
    known, no run is stopped before ``min_fraction`` of it.
    """
    if len(costs) < min_trials or not np.isfinite(score_so_far) or cost_so_far <= 0:
        return False
    if budget is not None and cost_so_far < min_fraction * budget:
        return False
    if cost_so_far < min(costs):
        return False
    a, b = quantile_line(costs, scores, q)
    return bool(score_so_far < a + b * np.log(cost_so_far))
