"""Sweeps in the database, as the API sees them: creation, stop, promotion, best trial, Pareto front.

Nothing here imports torch (the API must not); the model-driven tick lives in `services.sweeper.tick`.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

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
from services.sweeper.front import pareto_front
from services.sweeper.space import Space, SpaceError

COST_PARAM = "train.total_timesteps"
METRICS = {"perf": "env/perf", "score": "env/score"}


def create_sweep(
    session: Session,
    env: str,
    space: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
    metric: str = "perf",
    goal: str = "maximize",
    max_runs: int = 20,
    parallelism: int = 2,
    max_cost: float | None = None,
    cost_unit: str = "seconds",
    seed: int = 0,
    max_retries: int = 2,
    early_stopping: bool = True,
) -> Sweep:
    """Validate and insert a sweep; raises ConfigError naming the field. The caller commits, then ticks."""
    config = resolve(env, base or {})  # an unknown env or a bad fixed hyperparameter fails here, by name
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
    # The centre and the corners of the space must make valid runs, or every trial would fail at birth.
    for u in (0.0, -1.0, 1.0):
        point = coerce_types(env, parsed.unnormalize(np.full(parsed.dim, u)))
        try:
            resolve(env, merge(base or {}, point))
        except ConfigError as e:
            raise ConfigError("space", f"the space yields invalid runs, e.g. {point}: {e}") from None
    run = {**config.model_dump(), "env": ENVS[env].config(config.env)}  # the run its trials start from
    sweep = Sweep(
        env=env,
        space=centred_on(space, parsed, parsed.flatten(run)),
        base=base or {},
        metric=metric,
        goal=goal,
        cost_unit=cost_unit,
        max_runs=max_runs,
        parallelism=parallelism,
        max_cost=max_cost,
        seed=seed,
        max_retries=max_retries,
        early_stopping=early_stopping,
    )
    session.add(sweep)
    session.flush()
    return sweep


def centred_on(space: dict[str, Any], parsed: Space, values: dict[str, Any]) -> dict[str, Any]:
    """The space with each parameter that has no "mean" centred on the config's value, where in range.

    The search starts from the run the user would launch anyway: its first trial is that config (at a low
    cost), where a start without centres spends it on the middle of every range.
    """
    out = copy.deepcopy(space)
    for p in parsed.params:
        value = values[p.name]
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if p.mean is not None or not numeric or not p.min <= value <= p.max:
            continue
        node = out
        for part in p.name.split(".")[:-1]:
            node = node[part]
        node[p.name.split(".")[-1]]["mean"] = float(value)
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


def pareto_trials(sweep: Sweep) -> list[int]:
    """Ids of the succeeded trials on the cost/score Pareto front, in cost order."""
    done = [t for t in sweep.trials if t.status == TrialStatus.succeeded and trial_cost(sweep, t)]
    points = [(trial_cost(sweep, t), t.score) for t in done]
    front = pareto_front(points, goal=sweep.goal)
    return [done[i].id for i in front]


def best_trial(sweep: Sweep) -> Trial | None:
    done = [t for t in sweep.trials if t.status == TrialStatus.succeeded and t.score is not None]
    if not done:
        return None
    return (max if sweep.goal == "maximize" else min)(done, key=lambda t: t.score)
