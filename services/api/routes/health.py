"""GET /healthz: what is down, by name, never by error text (the answer is public; errors name hosts)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from services.common import celery_app, workers
from services.common.db import health_engine, ping
from services.common.settings import get_settings

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
QUEUES = tuple(celery_app.QUEUE_MODULES)


def _free_mb(path: Path) -> int:
    """Free space on the file system that holds `path` (its nearest existing ancestor, before first use)."""
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free >> 20


def _check(what: str, probe) -> tuple[str, Any]:
    try:
        return "ok", probe()
    except Exception as e:
        log.warning("healthz: %s unavailable: %s: %s", what, type(e).__name__, e)
        return "unavailable", None


def _broker() -> None:
    with celery_app.app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=2)


def _workers() -> dict[str, int]:
    # On the health pool, like the ping: a saturated request pool must not delay the answer.
    with Session(health_engine()) as session:
        return workers.live(session, QUEUES)


@router.get(
    "/healthz",
    responses={503: {"description": "the database or the broker is unavailable: the API cannot take work"}},
)
def healthz() -> JSONResponse:
    """200 while the API can serve: `ok`, or `degraded` with `down` naming a queue without a live worker
    or an artifact store short of space; 503 (`unhealthy`) when the database or the broker does not
    answer. Why goes to the log only."""
    settings = get_settings()
    database, _ = _check("database", ping)
    broker, _ = _check("broker", _broker)
    live = _check("workers", _workers)[1] if database == "ok" else None
    free_mb = _check("disk", lambda: _free_mb(settings.artifacts))[1]
    disk = "unavailable" if free_mb is None else "low" if free_mb < settings.min_free_disk_mb else "ok"

    down = [name for name, state in (("database", database), ("broker", broker)) if state != "ok"]
    serving = not down
    down += [f"workers:{queue}" for queue, n in (live or {}).items() if n == 0]
    down += ["disk"] if disk != "ok" else []
    status = "unhealthy" if not serving else "degraded" if down else "ok"
    body = {
        "status": status,
        "down": down,
        "database": database,
        "broker": broker,
        "workers": live,
        "disk": disk,
        "disk_free_mb": free_mb,
    }
    return JSONResponse(body, status_code=200 if serving else 503)
