"""Sweeps in the database, as the API sees them: creation, stop, promotion, best trial, Pareto front.

Nothing here imports torch (the API must not); the model-driven tick lives in `services.sweeper.tick`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, load_only, raiseload

from envs_c.registry import ENVS
from services.common.config import ConfigError, coerce_types, default_space, known_parameters, merge, resolve
from services.common.models import (
    Run,
    Sweep,
    SweepStatus,
    Trial,
    TrialStatus,
    utcnow,
)
from services.common.runs import create_run, request_cancel
from services.common.schemas import MAX_RUNS, SweepCreate
from services.sweeper.budget import parse_budget, run_cost
from services.sweeper.front import pareto_front
from services.sweeper.space import Space, SpaceError

COST_PARAM = "train.total_timesteps"
METRICS = {"perf": "env/perf", "score": "env/score"}
DEFAULT_MAX_RUNS = 20


def create_sweep(session: Session, request: SweepCreate) -> Sweep:
    """Validate and insert a sweep; raises ConfigError naming the field. The caller commits, then ticks.

    `budget` is the sweep's total cost in `cost_unit` (a number, or a string with its unit: "2h",
    "500M steps"). `max_runs` defaults to DEFAULT_MAX_RUNS without a budget; with one, the budget alone
    ends the sweep (up to MAX_RUNS trials).
    """
    env, space, overrides, metric = request.env, request.space, request.hyperparameters, request.metric
    budget, cost_unit, max_runs = request.budget, request.cost_unit, request.max_runs
    config = resolve(env, overrides)  # an unknown env or a bad fixed hyperparameter fails here, by name
    if metric not in (*METRICS, "elo"):
        raise ConfigError("metric", f"must be one of {sorted((*METRICS, 'elo'))}, got {metric!r}")
    if metric == "elo" and ENVS[env].players is None:
        raise ConfigError("metric", f"elo needs a two-player environment; {env} is single-player")
    if space is None:
        space = default_space(env)
        if space is None:
            raise ConfigError("space", f"{env} has no default sweep space in configs/{env}.toml; give one")
    try:
        parsed = Space(space, known=known_parameters(env))
    except SpaceError as e:
        raise ConfigError("space", str(e)) from None
    _check_runs(env, parsed, overrides)
    amount = None if budget is None else parse_budget(budget, cost_unit)
    if amount is not None and cost_unit == "steps":
        cheapest = _cheapest_steps(parsed, config.train.total_timesteps)
        if amount < cheapest:
            raise ConfigError(
                "budget",
                f"{amount:,.0f} steps is less than the cheapest trial: {cheapest:,} steps "
                f"(the smallest {COST_PARAM} the sweep allows)",
            )
    # In seconds, a trial's cost is wall time on whatever worker takes it (its hardware, its load), and
    # before a first trial has run nothing bounds it from below: only > 0 can be checked here. The search
    # learns the cost of trials from the first ones and stops suggesting once none fits what is left.
    if max_runs is None:
        max_runs = DEFAULT_MAX_RUNS if amount is None else MAX_RUNS
    run = {**config.model_dump(), "env": ENVS[env].config(config.env)}  # the run its trials start from
    sweep = Sweep(
        env=env,
        space=centred_on(space, parsed, parsed.flatten(run)),
        overrides=overrides,
        metric=metric,
        goal=request.goal,
        cost_unit=cost_unit,
        budget=amount,
        max_runs=max_runs,
        parallelism=request.parallelism,
        max_cost=request.max_cost,
        seed=request.seed,
        max_retries=request.max_retries,
        early_stopping=request.early_stopping,
    )
    session.add(sweep)
    session.flush()
    return sweep


def _check_runs(env: str, parsed: Space, overrides: dict[str, Any]) -> None:
    """Refuse a space that yields invalid runs, or every trial (of some choice) would fail at birth: each
    choice of each categorical (the others at the centre), then the centre and the corners of the cube."""

    def check(u: np.ndarray, what: str) -> dict[str, Any]:
        point = coerce_types(env, parsed.unnormalize(u))
        try:
            resolve(env, merge(overrides, point))
        except ConfigError as e:
            raise ConfigError("space", f"{what} yields invalid runs, e.g. {point}: {e}") from None
        return point

    for j, p in enumerate(parsed.params):
        for choice in p.choices or ():
            u = np.zeros(parsed.dim)
            u[j] = float(p.normalize(choice))
            runs_as = parsed.flatten(check(u, f"{p.name}: choice {choice!r}"))[p.name]
            # A fraction on an integer field is rounded, and trials would come back with a value that is
            # none of the choices.
            if runs_as != choice:
                raise ConfigError("space", f"{p.name}: choice {choice!r} would run as {runs_as!r}")
    for corner in (0.0, -1.0, 1.0):
        check(np.full(parsed.dim, corner), "the space")


def _cheapest_steps(parsed: Space, fixed: int) -> int:
    """The fewest steps a trial can be asked to train: the smallest total_timesteps the space allows, or
    the fixed one when it is not swept. (A run rounds it up to whole batches, so it costs at least this.)"""
    if COST_PARAM not in parsed.names:
        return fixed
    p = parsed.params[parsed.index(COST_PARAM)]
    if p.choices is not None:  # numbers: the run schema refused any other choice of total_timesteps
        return min(round(float(c)) for c in p.choices if c is not None)
    return round(float(p.unnormalize(-1.0)))


def centred_on(space: dict[str, Any], parsed: Space, values: dict[str, Any]) -> dict[str, Any]:
    """The space with each parameter that has no "mean" centred on the config's value, where in range
    (for a categorical: where it is one of the choices).

    The search starts from the run the user would launch anyway: its first trial is that config (at a low
    cost), where a start without centres spends it on the middle of every range.
    """
    out = copy.deepcopy(space)
    for p in parsed.params:
        if p.mean is not None:
            continue
        value = values[p.name]
        if p.choices is not None:
            try:
                mean = p.choices[p.index_of(value)]
            except SpaceError:
                continue
        else:
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if not numeric or not p.min <= value <= p.max:
                continue
            mean = float(value)
        node = out
        for part in p.name.split(".")[:-1]:
            node = node[part]
        node[p.name.split(".")[-1]]["mean"] = mean
    return out


def stop(session: Session, sweep: Sweep) -> None:
    """Stop suggesting and cancel the trials in flight."""
    if sweep.status != SweepStatus.running:
        return
    sweep.status = SweepStatus.stopped
    sweep.finished_at = utcnow()
    for trial in sweep.trials:
        if TrialStatus(trial.status).in_flight:
            if trial.run is not None:
                request_cancel(session, trial.run)
            trial.status = TrialStatus.cancelled
            trial.finished_at = utcnow()


def promote(session: Session, sweep: Sweep, trial_id: int, total_timesteps: int) -> Run:
    """A new run with the trial's exact hyperparameters (every value and sign kept) and a longer budget."""
    trial = next((t for t in sweep.trials if t.id == trial_id), None)
    if trial is None:
        raise LookupError(f"trial {trial_id} is not part of sweep {sweep.id}")
    if trial.run is None:
        raise ConfigError("trial_id", f"trial {trial_id} has no run to copy")
    overrides = merge(trial.run.overrides, {"train": {"total_timesteps": total_timesteps}})
    run = create_run(
        session,
        sweep.env,
        overrides,
        seed=trial.run.seed,
        tags=["promoted", f"sweep:{sweep.id}", f"trial:{trial.id}"],
    )
    run.promoted_from = trial.id
    session.flush()
    return run


def trial_cost(sweep: Sweep, trial: Trial) -> float | None:
    return trial.cost_steps if sweep.cost_unit == "steps" else trial.cost_seconds


def budget_used(session: Session, sweeps: Sequence[Sweep]) -> dict[int, float]:
    """What each sweep has spent, in its cost unit: the cost of every run it launched (finished, lost
    with its worker and retried, or in flight). One query over the runs' cost columns, nothing else, so
    listing sweeps stays cheap."""
    units = {sweep.id: sweep.cost_unit for sweep in sweeps}
    used = dict.fromkeys(units, 0.0)
    if not units:
        return used
    runs = session.scalars(
        select(Run)
        .where(Run.sweep_id.in_(units))
        .options(
            load_only(
                Run.sweep_id,
                Run.status,
                Run.cost_steps,
                Run.cost_seconds,
                Run.progress_steps,
                Run.started_at,
                Run.heartbeat_at,
            ),
            raiseload(Run.tags),
        )
    )
    now = utcnow()
    for run in runs:
        assert run.sweep_id is not None, "selected by sweep"
        used[run.sweep_id] += run_cost(run, units[run.sweep_id], now)
    return used


def pareto_trials(sweep: Sweep) -> list[int]:
    """Ids of the succeeded trials on the cost/score Pareto front, in cost order."""
    done = [
        (t, cost)
        for t in sweep.trials
        if t.status == TrialStatus.succeeded and (cost := trial_cost(sweep, t))
    ]
    front = pareto_front([(cost, t.score) for t, cost in done], goal=sweep.goal)
    return [done[i][0].id for i in front]


def best_trial(sweep: Sweep) -> Trial | None:
    scores = {t: t.score for t in sweep.trials if t.status == TrialStatus.succeeded and t.score is not None}
    if not scores:
        return None
    return (max if sweep.goal == "maximize" else min)(scores, key=scores.__getitem__)
