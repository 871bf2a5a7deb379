"""Per-request dependencies."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy.orm import Session

from services.common.db import session_scope


def db() -> Iterator[Session]:
    with session_scope() as session:
        yield session
