from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.common import celery_app
from services.common.db import ping

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> JSONResponse:
    """200 when the database and the broker answer; 503 naming what does not. Why it does not goes to the
    log only: the answer is public, and error text names hosts and ports."""
    checks: dict[str, str] = {}
    try:
        ping()
        checks["database"] = "ok"
    except Exception as e:
        log.warning("healthz: database unavailable: %s: %s", type(e).__name__, e)
        checks["database"] = "unavailable"
    try:
        with celery_app.app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as e:
        log.warning("healthz: broker unavailable: %s: %s", type(e).__name__, e)
        checks["broker"] = "unavailable"
    healthy = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unhealthy", **checks}, status_code=200 if healthy else 503
    )
