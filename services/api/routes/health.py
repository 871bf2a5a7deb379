from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.common.celery_app import app as celery
from services.common.db import ping

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> JSONResponse:
    """200 when the database and the broker answer; 503 naming what does not."""
    checks: dict[str, str] = {}
    try:
        ping()
        checks["database"] = "ok"
    except Exception as e:
        checks["database"] = f"error: {type(e).__name__}: {e}"[:300]
    try:
        with celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as e:
        checks["broker"] = f"error: {type(e).__name__}: {e}"[:300]
    healthy = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unhealthy", **checks}, status_code=200 if healthy else 503
    )
