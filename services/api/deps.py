"""Per-request dependencies: the database session behind an admission gate, and bounded ids."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import anyio
from fastapi import FastAPI, HTTPException, Path, Query, Request, status
from fastapi.concurrency import contextmanager_in_threadpool
from sqlalchemy.orm import Session

from services.common.db import pool_capacity, session_scope
from services.common.schemas import INT4_MAX
from services.common.settings import get_settings

RETRY_AFTER = "1"
# Every id in a path is a row id: out of range is a 422 naming the bound, never a database error.
RunId = Annotated[int, Path(ge=1, le=INT4_MAX, description="a run's id")]
SweepId = Annotated[int, Path(ge=1, le=INT4_MAX, description="a sweep's id")]
JobId = Annotated[int, Path(ge=1, le=INT4_MAX, description="a match job's id")]
# Offsets are bound to what a page can skip; PostgreSQL refuses OFFSET beyond int8.
Offset = Annotated[int, Query(ge=0, le=INT4_MAX)]


def install_gate(app: FastAPI) -> None:
    """One admission gate per application, as wide as the connection pool, and a narrower one that writes
    pass first (a bulkhead): a burst of writes queues behind it instead of taking the CPU and the
    connections that reads, most of them the dashboard's, need to stay fast."""
    app.state.db_gate = anyio.Semaphore(pool_capacity())
    app.state.write_gate = anyio.Semaphore(min(get_settings().api_write_concurrency, pool_capacity()))


@asynccontextmanager
async def admitted(request: Request) -> AsyncIterator[None]:
    """Hold one of the pool's connections' admissions, or answer 503 when none frees up in time.

    Sync endpoints run on a thread pool wider than the connection pool. Unbounded, the threads beyond the
    pool's size block waiting for a connection, while the requests that hold connections wait for a thread
    to serialize their response: everyone stalls until the pool's timeout. Waiting here costs no thread,
    and a request that cannot be admitted in time is told to retry (503) instead of failing (500).
    """
    gates: list[anyio.Semaphore] = [request.app.state.db_gate]
    if request.method not in ("GET", "HEAD"):
        gates.insert(0, request.app.state.write_gate)
    held: list[anyio.Semaphore] = []
    try:
        with anyio.move_on_after(get_settings().api_db_wait) as waited:
            for gate in gates:
                await gate.acquire()
                held.append(gate)
        if waited.cancelled_caught:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "the database is saturated; retry shortly",
                headers={"Retry-After": RETRY_AFTER},
            )
        yield
    finally:
        for gate in reversed(held):
            gate.release()


async def db(request: Request) -> AsyncIterator[Session]:
    """A session for one request, admitted only while the pool has a connection for it."""
    async with admitted(request), contextmanager_in_threadpool(session_scope()) as session:
        yield session
