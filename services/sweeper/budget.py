"""A sweep's budget: what the user writes ("2h", "500M steps") and what a run has cost so far.

Torch-free, for the API: the budget's *use* by the search lives in `ParetoSearch` (pareto.py).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from services.common.config import ConfigError
from services.common.models import Run, RunStatus

SECONDS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
}
# "M" is only a multiplier next to "steps": on its own, "10m" could as well be minutes.
STEP_MULTIPLIERS = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}
_AMOUNT = re.compile(
    r"^\s*(?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*(?P<unit>.*?)\s*$", re.IGNORECASE
)
_STEPS = re.compile(r"^(?P<multiplier>[kmbg]?)\s*steps?$", re.IGNORECASE)
FORMS = "a number in the cost_unit, a duration ('600s', '10min', '2h') or steps ('5e8 steps', '500M steps')"


def parse_budget(budget: float | str, cost_unit: str) -> float:
    """The budget in `cost_unit`; raises ConfigError("budget", why) for an unreadable, non-positive or
    non-finite amount, or one in the other unit (steps for a sweep that counts seconds, or the reverse)."""
    amount, unit = _read(budget) if isinstance(budget, str) else (float(budget), None)
    unit = unit or cost_unit
    if not math.isfinite(amount) or amount <= 0:
        raise ConfigError("budget", f"must be a positive, finite amount, got {budget!r}")
    if unit != cost_unit:
        raise ConfigError(
            "budget",
            f"{budget!r} is in {unit} but the sweep's cost_unit is {cost_unit}: "
            f"give the budget in {cost_unit} or set cost_unit to {unit}",
        )
    return amount


def _read(text: str) -> tuple[float, str | None]:
    """(amount, unit) of a budget string; a bare number has no unit of its own (None: the cost_unit's)."""
    match = _AMOUNT.match(text)
    if match is None:
        raise ConfigError("budget", f"cannot read {text!r}; expected {FORMS}")
    number, unit = float(match["number"]), match["unit"]
    if not unit:
        return number, None
    if unit.lower() in SECONDS:
        return number * SECONDS[unit.lower()], "seconds"
    steps = _STEPS.match(unit)
    if steps is not None:
        return number * STEP_MULTIPLIERS[steps["multiplier"].lower()], "steps"
    raise ConfigError("budget", f"unknown unit {unit!r} in {text!r}; expected {FORMS}")


def run_cost(run: Run, cost_unit: str, now: datetime) -> float:
    """What a run has cost so far in `cost_unit`. A finished run's cost is what its trainer recorded; a
    run still training has cost its progress (steps done, or seconds since it started); a run the reaper
    failed or requeued for a lost worker recorded no cost, and counts its progress up to its last heartbeat.
    """
    if cost_unit == "steps":
        return float(run.cost_steps if run.cost_steps is not None else run.progress_steps or 0)
    if run.cost_seconds is not None:
        return float(run.cost_seconds)
    if run.started_at is None:  # never claimed by a worker: nothing spent
        return 0.0
    end = now if run.status == RunStatus.running else run.heartbeat_at or run.started_at
    return max(0.0, (_aware(end) - _aware(run.started_at)).total_seconds())


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes (stored as UTC); PostgreSQL returns aware ones.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
