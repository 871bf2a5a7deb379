from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import StreamingResponse
from sqlalchemy import ColumnElement, cast, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, selectinload

from services.api.auth import RunCreator, Writer, reader, require_owner
from services.api.deps import Offset, RunId, db
from services.api.errors import NOT_FOUND, READ, WRITE, unprocessable
from services.common import outbox, tokens
from services.common.db import session_scope
from services.common.metrics import export_rows, read_series
from services.common.models import Run, RunStatus, RunTag
from services.common.runs import create_run, describe, request_cancel
from services.common.schemas import MetricsOut, RunCreate, RunDetail, RunOut, RunPage, RunSort, RunUpdate

router = APIRouter(prefix="/runs", tags=["runs"], dependencies=[Depends(reader)], responses=READ)


def _get(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id, options=[selectinload(Run.checkpoints)])
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} does not exist")
    return run


@router.post("", status_code=status.HTTP_201_CREATED, response_model=RunDetail, responses=WRITE)
def post_run(body: RunCreate, principal: RunCreator, session: Session = Depends(db)) -> RunDetail:
    run = create_run(
        session,
        body.env,
        body.hyperparameters,
        body.total_timesteps,
        body.seed,
        body.tags,
        name=body.name,
        notes=body.notes,
        created_by=principal.token_id,
    )
    session.commit()
    outbox.publish(session)
    return RunDetail.of(_get(session, run.id))


@router.get("", response_model=RunPage)
def list_runs(
    session: Session = Depends(db),
    status_: Annotated[RunStatus | None, Query(alias="status")] = None,
    env: str | None = None,
    tag: str | None = None,
    q: Annotated[
        str | None, Query(max_length=100, description="matches name, env, tag or failure reason")
    ] = None,
    sort: Annotated[
        RunSort, Query(description="a field, descending with a leading '-'; runs without a value last")
    ] = "-id",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
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
            | Run.name.ilike(like)
            | Run.failure_reason.ilike(like)
            | Run.id.in_(select(RunTag.run_id).where(RunTag.tag.ilike(like)))
        )
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    field = sort.lstrip("-")
    if field.startswith("config."):
        column = config_value(session, field.split(".")[1:])
    else:
        column = getattr(Run, field)
    order = (column.desc() if sort.startswith("-") else column.asc()).nulls_last()
    runs = session.scalars(query.order_by(order, Run.id.desc()).limit(limit).offset(offset)).all()
    return RunPage(items=[RunOut.of(r) for r in runs], total=total, limit=limit, offset=offset)


def config_value(session: Session, path: list[str]) -> ColumnElement[Any]:
    """The resolved config's value at `path`, as the database orders it: numbers by value, and runs that do
    not have it as NULL. PostgreSQL orders jsonb (its json has no ordering); SQLite's json_extract gives
    plain SQL values."""
    if session.get_bind().dialect.name == "postgresql":
        return func.jsonb_extract_path(cast(Run.config, JSONB), *path)
    return func.json_extract(Run.config, "$." + ".".join(f'"{key}"' for key in path))


@router.get("/{run_id}", response_model=RunDetail, responses=NOT_FOUND)
def get_run(run_id: RunId, session: Session = Depends(db)) -> RunDetail:
    return RunDetail.of(_get(session, run_id))


@router.get("/{run_id}/metrics", response_model=MetricsOut, responses=NOT_FOUND)
def get_metrics(
    run_id: RunId,
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


@router.post("/{run_id}/cancel", response_model=RunDetail, responses={**WRITE, **NOT_FOUND})
def cancel_run(run_id: RunId, principal: Writer, session: Session = Depends(db)) -> RunDetail:
    run = _get(session, run_id)
    require_owner(principal, f"run {run_id}", *tokens.run_owners(session, run))
    request_cancel(session, run)
    session.commit()
    return RunDetail.of(run)


@router.patch("/{run_id}", response_model=RunDetail, responses={**WRITE, **NOT_FOUND})
def patch_run(run_id: RunId, body: RunUpdate, principal: Writer, session: Session = Depends(db)) -> RunDetail:
    """Name a run, write its notes or replace its tags; fields left out are kept, null clears."""
    run = _get(session, run_id)
    require_owner(principal, f"run {run_id}", *tokens.run_owners(session, run))
    describe(session, run, body.model_dump(include=body.model_fields_set))
    session.commit()
    return RunDetail.of(_get(session, run_id))


@router.get("/{run_id}/metrics/export", response_class=StreamingResponse, responses=NOT_FOUND)
def export_metrics(
    run_id: RunId,
    session: Session = Depends(db),
    format: Annotated[str, Query(pattern="^(csv|json)$", description="csv or json")] = "csv",
    keys: Annotated[
        str | None, Query(description="comma-separated; all of the run's keys if omitted")
    ] = None,
) -> StreamingResponse:
    """Every logged point at full resolution, one row per step: `step,time,<key>...` (time in Unix
    seconds, empty where a key was not logged or not finite). JSON has the same `columns` and `rows`."""
    metric_keys = session.scalar(select(Run.metric_keys).where(Run.id == run_id))
    if metric_keys is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} does not exist")
    wanted = [k for k in keys.split(",") if k] if keys else list(metric_keys)
    unknown = [k for k in wanted if k not in metric_keys]
    if unknown:
        raise unprocessable(["query", "keys"], f"run {run_id} logged no {unknown}")
    columns = ["step", "time", *wanted]
    body = _csv(run_id, wanted, columns) if format == "csv" else _json(run_id, wanted, columns)
    return StreamingResponse(
        body,
        media_type="text/csv" if format == "csv" else "application/json",
        headers={"Content-Disposition": f'attachment; filename="run-{run_id}-metrics.{format}"'},
    )


def _rows(run_id: int, keys: list[str]) -> Iterator[tuple]:
    # Its own session: the response streams after the request's session has gone back to the pool.
    with session_scope() as session:
        yield from export_rows(session, run_id, keys)


def _csv(run_id: int, keys: list[str], columns: list[str]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for n, (step, at, values) in enumerate(_rows(run_id, keys), start=1):
        writer.writerow([step, at, *("" if v is None else v for v in values)])
        if n % 2000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _json(run_id: int, keys: list[str], columns: list[str]) -> Iterator[str]:
    yield f'{{"run_id": {run_id}, "columns": {json.dumps(columns)}, "rows": ['
    chunk, first = [], True
    for step, at, values in _rows(run_id, keys):
        chunk.append(json.dumps([step, at, *values]))
        if len(chunk) == 2000:
            yield ("" if first else ",") + ",".join(chunk)
            chunk, first = [], False
    if chunk:
        yield ("" if first else ",") + ",".join(chunk)
    yield "]}"
