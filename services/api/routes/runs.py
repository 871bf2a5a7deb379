from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from services.api.auth import require_token
from services.api.deps import db
from services.common.metrics import read_series
from services.common.models import Run, RunStatus, RunTag
from services.common.runs import create_run, enqueue, request_cancel
from services.common.schemas import MetricsOut, RunCreate, RunDetail, RunOut, RunPage

router = APIRouter(prefix="/runs", tags=["runs"])


def _get(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id, options=[selectinload(Run.checkpoints)])
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} does not exist")
    return run


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=RunDetail, dependencies=[Depends(require_token)]
)
def post_run(body: RunCreate, session: Session = Depends(db)) -> RunDetail:
    run = create_run(session, body.env, body.hyperparameters, body.total_timesteps, body.seed, body.tags)
    session.commit()
    enqueue(run.id)
    return RunDetail.of(_get(session, run.id))


@router.get("", response_model=RunPage)
def list_runs(
    session: Session = Depends(db),
    status_: Annotated[RunStatus | None, Query(alias="status")] = None,
    env: str | None = None,
    tag: str | None = None,
    q: Annotated[str | None, Query(max_length=100, description="matches env, tag or failure reason")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> RunPage:
    query = select(Run)
    if status_ is not None:
        query = query.where(Run.status == status_)
    if env is not None:
        query = query.where(Run.env == env)
    if tag is not None:
        query = query.where(Run.id.in_(select(RunTag.run_id).where(RunTag.tag == tag)))
    if q:
        like = f"%{q}%"
        query = query.where(
            Run.env.ilike(like)
            | Run.failure_reason.ilike(like)
            | Run.id.in_(select(RunTag.run_id).where(RunTag.tag.ilike(like)))
        )
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    runs = session.scalars(query.order_by(Run.id.desc()).limit(limit).offset(offset)).all()
    return RunPage(items=[RunOut.of(r) for r in runs], total=total, limit=limit, offset=offset)


@router.get("/{run_id}", response_model=RunDetail)
def get_run(run_id: int, session: Session = Depends(db)) -> RunDetail:
    return RunDetail.of(_get(session, run_id))


@router.get("/{run_id}/metrics", response_model=MetricsOut)
def get_metrics(
    run_id: int,
    session: Session = Depends(db),
    keys: Annotated[
        str | None, Query(description="comma-separated; all of the run's keys if omitted")
    ] = None,
    max_points: Annotated[int, Query(ge=2, le=20_000)] = 2000,
    smoothing: Annotated[
        float, Query(ge=0, lt=1, description="debiased EMA weight applied before downsampling; 0 is off")
    ] = 0.0,
) -> MetricsOut:
    # Only the keys, not the Run (whose tags load with it): polled every 2 s by every open run page.
    metric_keys = session.scalar(select(Run.metric_keys).where(Run.id == run_id))
    if metric_keys is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} does not exist")
    wanted = [k for k in keys.split(",") if k] if keys else list(metric_keys)
    series = {key: read_series(session, run_id, key, max_points, smoothing) for key in wanted[:64]}
    return MetricsOut(run_id=run_id, max_points=max_points, series=series)


@router.post("/{run_id}/cancel", response_model=RunDetail, dependencies=[Depends(require_token)])
def cancel_run(run_id: int, session: Session = Depends(db)) -> RunDetail:
    run = _get(session, run_id)
    request_cancel(session, run)
    session.commit()
    return RunDetail.of(run)
