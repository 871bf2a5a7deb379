from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from services.api.auth import RunCreator, Writer, reader, require_owner
from services.api.deps import Offset, SweepId, db
from services.api.errors import NOT_FOUND, READ, WRITE
from services.common import outbox
from services.common.celery_app import SWEEP_TICK_TASK
from services.common.models import Sweep, Trial, TrialStatus
from services.common.schemas import (
    BestTrial,
    Promote,
    RunDetail,
    SweepCreate,
    SweepDetail,
    SweepPage,
    SweepSummary,
    TrialOut,
)
from services.sweeper.service import best_trial, budget_used, create_sweep, pareto_trials, promote, stop

router = APIRouter(prefix="/sweeps", tags=["sweeps"], dependencies=[Depends(reader)], responses=READ)


def _get(session: Session, sweep_id: int) -> Sweep:
    sweep = session.scalars(
        select(Sweep).where(Sweep.id == sweep_id).options(selectinload(Sweep.trials).selectinload(Trial.run))
    ).one_or_none()
    if sweep is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"sweep {sweep_id} does not exist")
    return sweep


def _best(sweep: Sweep) -> BestTrial | None:
    trial = best_trial(sweep)
    return BestTrial(trial_id=trial.id, run_id=trial.run_id, score=trial.score) if trial else None


def _summary(sweep: Sweep, used: float) -> dict[str, Any]:
    """The fields of SweepSummary, which SweepDetail extends."""
    statuses = [TrialStatus(t.status) for t in sweep.trials]
    return {
        "id": sweep.id,
        "env": sweep.env,
        "status": sweep.status,
        "metric": sweep.metric,
        "goal": sweep.goal,
        "cost_unit": sweep.cost_unit,
        "max_runs": sweep.max_runs,
        "parallelism": sweep.parallelism,
        "budget": sweep.budget,
        "budget_used": used,
        "budget_left": None if sweep.budget is None else max(0.0, sweep.budget - used),
        "created_at": sweep.created_at,
        "best": _best(sweep),
        "trials_finished": sum(s.observed for s in statuses),
        "trials_running": sum(s.in_flight for s in statuses),
    }


def _detail(session: Session, sweep: Sweep) -> SweepDetail:
    return SweepDetail(
        **_summary(sweep, budget_used(session, [sweep])[sweep.id]),
        max_cost=sweep.max_cost,
        space=sweep.space,
        hyperparameters=sweep.overrides,
        finished_at=sweep.finished_at,
        trials=[TrialOut.model_validate(t) for t in sweep.trials],
        pareto=pareto_trials(sweep),
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SweepDetail, responses=WRITE)
def post_sweep(body: SweepCreate, principal: Writer, session: Session = Depends(db)) -> SweepDetail:
    sweep = create_sweep(session, body)
    sweep.created_by_token = principal.token_id
    outbox.stage(session, SWEEP_TICK_TASK, [sweep.id])
    session.commit()
    outbox.publish(session)
    return _detail(session, _get(session, sweep.id))


@router.get("", response_model=SweepPage)
def list_sweeps(
    session: Session = Depends(db),
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> SweepPage:
    """Newest first, a page at a time: each sweep loads its trials."""
    total = session.scalar(select(func.count()).select_from(Sweep))
    sweeps = session.scalars(
        select(Sweep)
        .options(selectinload(Sweep.trials))
        .order_by(Sweep.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    used = budget_used(session, sweeps)
    items = [SweepSummary(**_summary(sweep, used[sweep.id])) for sweep in sweeps]
    return SweepPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/{sweep_id}", response_model=SweepDetail, responses=NOT_FOUND)
def get_sweep(sweep_id: SweepId, session: Session = Depends(db)) -> SweepDetail:
    return _detail(session, _get(session, sweep_id))


@router.post("/{sweep_id}/stop", response_model=SweepDetail, responses={**WRITE, **NOT_FOUND})
def stop_sweep(sweep_id: SweepId, principal: Writer, session: Session = Depends(db)) -> SweepDetail:
    sweep = _get(session, sweep_id)
    require_owner(principal, f"sweep {sweep_id}", sweep.created_by_token)
    stop(session, sweep)
    session.commit()
    return _detail(session, sweep)


@router.post(
    "/{sweep_id}/promote",
    status_code=status.HTTP_201_CREATED,
    response_model=RunDetail,
    responses={**WRITE, **NOT_FOUND},
)
def promote_trial(
    sweep_id: SweepId, body: Promote, principal: RunCreator, session: Session = Depends(db)
) -> RunDetail:
    """A new run, owned by the promoting token, with the trial's exact hyperparameters."""
    sweep = _get(session, sweep_id)
    try:
        run = promote(session, sweep, body.trial_id, body.total_timesteps)
    except LookupError as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(e)) from None
    run.created_by_token = principal.token_id
    session.commit()
    outbox.publish(session)
    session.refresh(run)
    return RunDetail.of(run)
