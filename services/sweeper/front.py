"""The cost/score Pareto front, on its own: pure Python, so the API can show it without importing torch."""

from __future__ import annotations

import math
from collections.abc import Sequence

GOALS = ("maximize", "minimize")


def pareto_front(
    points: Sequence[tuple[float, float | None]], goal: str = "maximize", min_gain: float = 0.0
) -> list[int]:
    """Indices of the cost/score Pareto front, cheapest first.

    ``points`` are (cost, score) pairs; points with a missing or non-finite score or cost are ignored. Walking
    up in cost, a point is kept only if its score beats the last kept one by more than ``min_gain`` (an
    absolute margin; 0 keeps every strict improvement). A positive margin prunes the expensive tail where each
    extra point buys almost nothing for much more cost.
    """
    if goal not in GOALS:
        raise ValueError(f"goal must be one of {GOALS}, got {goal!r}")
    sign = 1.0 if goal == "maximize" else -1.0
    valid = [
        (float(c), sign * float(s), i)
        for i, (c, s) in enumerate(points)
        if s is not None and math.isfinite(float(s)) and c is not None and math.isfinite(float(c))
    ]
    # Among equal costs the best score comes first, so the others can never count as an improvement.
    valid.sort(key=lambda t: (t[0], -t[1], t[2]))
    front: list[int] = []
    best = -math.inf
    for _, s, i in valid:
        if s > best + (min_gain if front else 0.0):
            front.append(i)
            best = s
    return front
