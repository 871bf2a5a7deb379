"""The sweep tick: fold finished runs into trials, early-stop laggards, keep `parallelism` in flight
while the budget lasts.

All state lives in the `sweeps`, `trials` and `runs` tables; the search model is rebuilt from them on
every tick (`ParetoSearch` suggests as a pure function of its observations and pending trials), so a
sweeper worker can die and restart at any moment without losing or duplicating a trial. A tick holds the
sweep row's lock (SELECT ... FOR UPDATE on PostgreSQL; SQLite serialises writers), so two trials finishing
at once cannot both suggest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from services.common.config import ConfigError, coerce_types, merge
from services.common.failures import FailureKind
from services.common.models import (
    Checkpoint,
    Metric,
    Run,
    RunStatus,
    Sweep,
    SweepStatus,
    Trial,
    TrialStatus,
    utcnow,
)
from services.common.ratings import checkpoint_rating
from services.common.runs import create_run, request_cancel
from services.sweeper.budget import run_cost
from services.sweeper.pareto import BudgetSpent, ParetoSearch
from services.sweeper.service import COST_PARAM, METRICS, trial_cost
from services.sweeper.space import Space


def search_for(session: Session, sweep: Sweep) -> ParetoSearch:
    """The search model rebuilt from the sweep's trials and runs: observed trials taught, in-flight ones
    pending, and what every run of the sweep has cost charged against its budget."""
    space = Space(sweep.space)
    cost_param = COST_PARAM if COST_PARAM in space.names else None
    # An early-stopped trial is learnt at the steps it reached, where its swept total_timesteps can say so.
    relocate = cost_param is not None and not space.params[space.index(cost_param)].is_categorical
    search = ParetoSearch(
        sweep.space,
        goal=sweep.goal,
        cost_param=cost_param,
        max_cost=sweep.max_cost,
        seed=sweep.seed,
        budget=sweep.budget,
    )
    unit, now = sweep.cost_unit, utcnow()
    # Charges come first, while nothing is pending, so that a charge never drops a trial in flight.
    # Runs no trial points at any more are attempts lost with their workers, each retried on a new run;
    # a run's own config holds the trial's swept values.
    current = [t.run_id for t in sweep.trials if t.run_id is not None]
    for run in session.scalars(select(Run).where(Run.sweep_id == sweep.id, Run.id.not_in(current))):
        search.forget(run.config, cost=run_cost(run, unit, now))
    for trial in sweep.trials:
        status = TrialStatus(trial.status)
        spent = run_cost(trial.run, unit, now) if trial.run is not None else 0.0
        if status.observed:
            cost = trial_cost(sweep, trial) or 0.0
            failed = status == TrialStatus.failed
            params = _where_stopped(trial) if relocate else trial.params
            search.observe(params, trial.score, cost if failed or cost > 0 else 1.0, failed=failed)
            if spent > cost:  # an early-stopped run trains on until its next heartbeat
                search.forget(trial.params, cost=spent - cost)
        elif status in (TrialStatus.cancelled, TrialStatus.lost):
            search.forget(trial.params, cost=spent)
    for trial in sweep.trials:
        if TrialStatus(trial.status).in_flight or _winding_down(trial):
            # A stopped run spends until its trainer notices, so its cost stays reserved until it ends.
            search.add_pending(trial.params, reserved=trial.reserved_cost)
    return search


def _where_stopped(trial: Trial) -> dict[str, Any]:
    """The params a trial is learnt at: an early-stopped one at the steps it reached. Learnt at its full
    total_timesteps, its partial cost would teach the cost model that long trials are cheap, and the search
    would reserve too little of the budget for them."""
    if trial.status != TrialStatus.early_stopped or not trial.cost_steps:
        return trial.params
    return merge(trial.params, {"train": {"total_timesteps": trial.cost_steps}})


def _winding_down(trial: Trial) -> bool:
    """A trial that is over (early-stopped) while its run still trains."""
    status = TrialStatus(trial.status)
    return not status.in_flight and trial.run is not None and not RunStatus(trial.run.status).finished


@dataclass
class Followups:
    """Messages a tick leaves to stage, so a worker never sees an uncommitted row."""

    ratings: list[int] = field(default_factory=list)  # checkpoints to rate (metric "elo")


def tick(session: Session, sweep_id: int) -> Followups:
    """Fold finished runs into their trials, early-stop laggards, and top up to `parallelism`."""
    sweep = session.scalars(
        select(Sweep)
        .where(Sweep.id == sweep_id)
        .with_for_update()
        .options(selectinload(Sweep.trials).selectinload(Trial.run))
    ).one_or_none()
    followups = Followups()
    if sweep is None or sweep.status != SweepStatus.running:
        return followups
    for trial in sweep.trials:
        if trial.status == TrialStatus.running and trial.run is not None:
            _settle(session, sweep, trial, trial.run, followups)
        elif trial.status == TrialStatus.rating:
            _read_rating(session, trial)

    search = search_for(session, sweep)
    if sweep.early_stopping and sweep.metric in METRICS:
        for trial in sweep.trials:
            if trial.status == TrialStatus.running and trial.run and trial.run.status == RunStatus.running:
                _maybe_stop_early(session, sweep, trial, trial.run, search)

    counted = [t for t in sweep.trials if TrialStatus(t.status).observed]
    in_flight = [t for t in sweep.trials if TrialStatus(t.status).in_flight]
    budget_spent = False
    while len(in_flight) < sweep.parallelism and len(counted) + len(in_flight) < sweep.max_runs:
        try:
            params, info = search.suggest()
        except BudgetSpent:
            # Nothing fits what is left. Trials in flight hold their upper-bound cost in reserve; when they
            # end, what they did not use may fit another trial, so only a sweep with none in flight ends.
            budget_spent = True
            break
        trial = _new_trial(session, sweep, params, info)
        if trial.run_id is not None:
            in_flight.append(trial)
        else:
            counted.append(trial)
            search.observe(params, None, 0.0, failed=True)  # no run: it cost nothing
    over = budget_spent or len(counted) >= sweep.max_runs
    # A run stopped early still spends until it ends; the sweep's spend is final only once it has.
    if over and not in_flight and not any(_winding_down(t) for t in sweep.trials):
        sweep.status = SweepStatus.finished
        sweep.finished_at = utcnow()
    return followups


def _new_trial(session: Session, sweep: Sweep, params: dict[str, Any], info: dict[str, Any]) -> Trial:
    number = len(sweep.trials) + 1
    params = coerce_types(sweep.env, params)
    trial = Trial(
        sweep=sweep,
        number=number,
        params=params,
        predicted_score=_finite(info.get("predicted_score")),
        predicted_cost=_finite(info.get("predicted_cost")),
        reserved_cost=_finite(info.get("reserved_cost")),
        proposal=info.get("proposal"),
    )
    session.add(trial)
    try:
        run = create_run(
            session,
            sweep.env,
            merge(sweep.overrides, params),
            seed=sweep.seed * 100_003 + number,
            tags=[f"sweep:{sweep.id}"],
        )
    except ConfigError as e:
        # The search proposed a combination the schema refuses (a batch too large, say): that is a property
        # of these hyperparameters, so the model learns it as a failure.
        trial.status = TrialStatus.failed
        trial.failure_reason = f"invalid configuration: {e}"
        trial.finished_at = utcnow()
        session.flush()
        return trial
    run.sweep_id = sweep.id
    trial.run_id = run.id
    session.flush()
    return trial


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def _settle(session: Session, sweep: Sweep, trial: Trial, run: Run, followups: Followups) -> None:
    """Move a trial on when its run has finished."""
    status = RunStatus(run.status)
    if not status.finished:
        return
    trial.cost_seconds, trial.cost_steps = run.cost_seconds, run.cost_steps
    trial.finished_at = utcnow()
    if status == RunStatus.succeeded and sweep.metric == "elo":
        # The score is the final checkpoint's rating against the anchor pool, read once the Elo service
        # has played and refit it; the trial stays in flight until then.
        final = _final_checkpoint(session, run.id)
        if final is None:
            trial.status = TrialStatus.failed
            trial.failure_reason = "no checkpoint to rate"
            return
        trial.status = TrialStatus.rating
        trial.finished_at = None
        _read_rating(session, trial)
        if trial.status == TrialStatus.rating:  # not rated yet (the trainer's own rating job may be running)
            followups.ratings.append(final)
        return
    if status == RunStatus.succeeded:
        trial.score = run.final_score if sweep.metric == "perf" else run.final_raw_score
        trial.status = TrialStatus.succeeded
        return
    if status == RunStatus.cancelled:
        trial.status = TrialStatus.cancelled
        return
    trial.failure_reason = run.failure_reason
    if run.failure_kind == FailureKind.worker_lost:
        # The infrastructure failed, not the hyperparameters: retry on a fresh run, teach the model nothing.
        if trial.retries < sweep.max_retries:
            retry = create_run(
                session,
                sweep.env,
                merge(sweep.overrides, trial.params),
                seed=run.seed,
                tags=[f"sweep:{sweep.id}"],
            )
            retry.sweep_id = sweep.id
            session.flush()
            trial.run_id, trial.run = retry.id, retry
            trial.retries += 1
            trial.status = TrialStatus.running
            trial.finished_at = None
            return
        trial.status = TrialStatus.lost
        return
    trial.status = TrialStatus.failed


def _final_checkpoint(session: Session, run_id: int) -> int | None:
    return session.scalar(
        select(Checkpoint.id).where(Checkpoint.run_id == run_id).order_by(Checkpoint.step.desc()).limit(1)
    )


def _read_rating(session: Session, trial: Trial) -> None:
    final = _final_checkpoint(session, trial.run_id) if trial.run_id else None
    rating = checkpoint_rating(session, final) if final is not None else None
    if rating is not None:
        trial.score = rating.elo
        trial.status = TrialStatus.succeeded
        trial.finished_at = utcnow()


def _latest(session: Session, run_id: int, key: str) -> float | None:
    return session.scalar(
        select(Metric.value)
        .where(Metric.run_id == run_id, Metric.key == key)
        .order_by(Metric.seq.desc())
        .limit(1)
    )


def _maybe_stop_early(session: Session, sweep: Sweep, trial: Trial, run: Run, search: ParetoSearch) -> None:
    score = _latest(session, run.id, METRICS[sweep.metric])
    budget: float | None  # None: a trial in seconds proposed without a cost prediction (not by the model)
    if sweep.cost_unit == "steps":
        cost, budget = float(run.progress_steps), float(run.total_timesteps)
    else:
        started = run.started_at
        if started is None:
            return
        if started.tzinfo is None:  # SQLite returns naive datetimes
            started = started.replace(tzinfo=utcnow().tzinfo)
        cost, budget = (utcnow() - started).total_seconds(), trial.predicted_cost
    if score is None or cost <= 0 or not search.should_stop(cost, score, budget):
        return
    request_cancel(session, run)
    trial.status = TrialStatus.early_stopped
    trial.score = score
    trial.failure_reason = f"early stopped at {cost:.4g} {sweep.cost_unit}: below the q=0.3 cost/score line"
    trial.cost_seconds = run.cost_seconds
    trial.cost_steps = run.progress_steps
    if sweep.cost_unit == "seconds":
        trial.cost_seconds = cost
    trial.finished_at = utcnow()
