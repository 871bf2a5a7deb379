"""A sweep's budget as users write it, and what a run has cost so far (pure functions, no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common.config import ConfigError
from services.common.models import Run, RunStatus
from services.sweeper.budget import parse_budget, run_cost

READ = [
    (600, "seconds", 600.0),
    (2.5e6, "steps", 2.5e6),
    ("600", "seconds", 600.0),
    ("600", "steps", 600.0),
    ("600s", "seconds", 600.0),
    ("90 sec", "seconds", 90.0),
    ("10min", "seconds", 600.0),
    ("1.5 hours", "seconds", 5400.0),
    ("2h", "seconds", 7200.0),
    ("1d", "seconds", 86400.0),
    ("5e8 steps", "steps", 5e8),
    ("500M steps", "steps", 5e8),
    ("500m steps", "steps", 5e8),
    ("250k steps", "steps", 2.5e5),
    ("2B steps", "steps", 2e9),
    ("1 step", "steps", 1.0),
]


@pytest.mark.parametrize(("budget", "unit", "amount"), READ, ids=[f"{b!r}-{u}" for b, u, _ in READ])
def test_a_budget_is_read_in_the_sweeps_cost_unit(budget, unit, amount):
    assert parse_budget(budget, unit) == pytest.approx(amount)


REFUSED = [
    ("5e8 steps", "seconds", "is in steps but the sweep's cost_unit is seconds"),
    ("10min", "steps", "is in seconds but the sweep's cost_unit is steps"),
    (0, "seconds", "positive"),
    ("0 steps", "steps", "positive"),
    (-3.0, "steps", "positive"),
    ("-2h", "seconds", "positive"),
    (float("inf"), "seconds", "finite"),
    (float("nan"), "steps", "finite"),
    ("1e400s", "seconds", "finite"),
    ("10m", "seconds", "unknown unit 'm'"),  # minutes or millions? Refused rather than guessed.
    ("500M", "steps", "unknown unit 'M'"),
    ("lots", "seconds", "cannot read"),
    ("", "seconds", "cannot read"),
    ("2 h 30 min", "seconds", "unknown unit"),
]


@pytest.mark.parametrize(("budget", "unit", "reason"), REFUSED, ids=[f"{b!r}-{u}" for b, u, _ in REFUSED])
def test_a_bad_budget_is_refused_naming_the_field_and_why(budget, unit, reason):
    with pytest.raises(ConfigError) as refused:
        parse_budget(budget, unit)
    assert refused.value.field == "budget"
    assert reason in refused.value.message


NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def run(status: RunStatus, **fields) -> Run:
    return Run(status=status, progress_steps=fields.pop("progress_steps", 0), **fields)


def test_a_finished_run_costs_what_its_trainer_recorded():
    done = run(RunStatus.succeeded, cost_steps=40_960, cost_seconds=12.5, progress_steps=40_960)
    assert run_cost(done, "steps", NOW) == 40_960
    assert run_cost(done, "seconds", NOW) == 12.5


def test_a_run_in_flight_costs_its_progress():
    started = NOW - timedelta(seconds=30)
    training = run(RunStatus.running, progress_steps=8192, started_at=started, heartbeat_at=NOW)
    assert run_cost(training, "steps", NOW) == 8192
    assert run_cost(training, "seconds", NOW) == 30.0
    queued = run(RunStatus.queued)
    assert run_cost(queued, "steps", NOW) == 0.0 and run_cost(queued, "seconds", NOW) == 0.0


def test_a_run_lost_with_its_worker_costs_its_progress_up_to_its_last_heartbeat():
    # The reaper records no cost; SQLite hands back naive datetimes.
    started = (NOW - timedelta(seconds=50)).replace(tzinfo=None)
    beat = started + timedelta(seconds=20)
    lost = run(RunStatus.failed, progress_steps=20_480, started_at=started, heartbeat_at=beat)
    assert run_cost(lost, "steps", NOW) == 20_480
    assert run_cost(lost, "seconds", NOW) == 20.0
