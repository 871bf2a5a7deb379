"""Engine and sessions, the same code for SQLite (embedded) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Engine, Executable, create_engine, event, text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from services.common.settings import get_settings

log = logging.getLogger(__name__)
T = TypeVar("T")


def normalise_url(url: str) -> str:
    """postgresql:// means psycopg 3 here; SQLAlchemy would otherwise pick psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@cache
def get_engine(url: str | None = None) -> Engine:
    url = normalise_url(url or get_settings().database_url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    settings = get_settings()
    return create_engine(
        url, pool_pre_ping=True, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow
    )


def pool_capacity() -> int:
    """Connections one process may hold at once: the API admits that many database requests at a time."""
    settings = get_settings()
    return settings.db_pool_size + settings.db_max_overflow


@cache
def _health_engine(url: str) -> Engine:
    # Apart from the request pool, so /healthz answers while every pooled connection is busy; small and
    # quick to give up, so a dead server is reported within seconds and probes cannot exhaust the server.
    connect_args = {} if url.startswith("sqlite") else {"connect_timeout": 3}
    return create_engine(url, pool_size=1, max_overflow=2, pool_timeout=3, connect_args=connect_args)


def _sqlite_pragmas(connection, _record) -> None:
    # WAL lets the API read while a trainer writes; foreign keys are off by default in SQLite.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@cache
def _sessions(url: str | None) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = _sessions(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def affected(session: Session, statement: Executable) -> int:
    """How many rows an UPDATE or DELETE matched. Session.execute is typed as returning any Result; for
    these statements it is a CursorResult, which has the count."""
    return cast(CursorResult[Any], session.execute(statement)).rowcount


TRANSIENT = (OperationalError, InterfaceError, PoolTimeout)


def retrying(fn: Callable[[], T], what: str, tolerance: float | None = None) -> T:
    """`fn()`, called again with backoff while the database is unreachable, for up to `tolerance` seconds
    (SHOAL_OUTAGE_TOLERANCE by default): a restart or a network blip must not end a run. `fn` opens its
    own transaction, so each try starts clean."""
    deadline = time.monotonic() + (get_settings().outage_tolerance if tolerance is None else tolerance)
    delay = 0.25
    while True:
        try:
            return fn()
        except TRANSIENT as e:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s: database unavailable (%s); retrying in %.2fs", what, type(e).__name__, delay)
            time.sleep(delay)
            delay = min(2 * delay, 5.0)


def health_engine(url: str | None = None) -> Engine:
    """The engine health checks use: PostgreSQL's own small pool, SQLite's only engine."""
    url = normalise_url(url or get_settings().database_url)
    return get_engine(url) if url.startswith("sqlite") else _health_engine(url)


def ping(url: str | None = None) -> None:
    with health_engine(url).connect() as connection:
        connection.execute(text("SELECT 1"))
