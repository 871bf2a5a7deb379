"""What the API answers when its input or its backing services fail: 4xx for bad input, 503 for outages.

A client is never answered 500 for something it can fix (its input) or wait out (the database or the
broker being unreachable or saturated).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from kombu.exceptions import OperationalError as BrokerError
from pydantic import BaseModel
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.api.deps import RETRY_AFTER

log = logging.getLogger(__name__)
# By number: the constant's name differs between Starlette versions (and the old one warns on every 422).
UNPROCESSABLE = 422


class Problem(BaseModel):
    detail: Any


WHY = {
    401: "no token, or a wrong or revoked one (reads only when SHOAL_READ_REQUIRES_TOKEN is set)",
    403: "a read token, or a write token changing what another token created",
    404: "no such row or file",
    413: "the body is over 1 MiB",
    429: "over the token's write rate or queued-run cap, or too many requests with a wrong token from the "
    "address; retry after Retry-After seconds",
    503: "the database or the broker is unavailable or saturated; retry after Retry-After seconds",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error statuses an operation can answer, for the OpenAPI document (FastAPI documents 422)."""
    return {code: {"model": Problem, "description": WHY[code]} for code in codes}


# What every write can answer besides its own 404: the guards of services/api/auth.py and the body limit.
WRITE = responses(401, 403, 413, 429, 503)
READ = responses(401, 429, 503)
NOT_FOUND = responses(404)


def field_errors(loc: list[str], msg: str) -> list[dict[str, object]]:
    """A 422's detail naming the field at fault, in the shape of FastAPI's own validation errors."""
    return [{"loc": loc, "msg": msg, "type": "value_error"}]


def unprocessable(loc: list[str], msg: str) -> HTTPException:
    """The 422 a route raises for input the schema let through but the route refuses."""
    return HTTPException(UNPROCESSABLE, field_errors(loc, msg))


def _unavailable(what: str) -> JSONResponse:
    return JSONResponse(
        {"detail": f"the {what} is unavailable; retry shortly"},
        status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": RETRY_AFTER},
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> Response:
        # shoal raises no 400: FastAPI does, for a JSON body it cannot even decode (bytes that are not
        # UTF-8), where undecodable JSON text gets its 422. Both are a client's malformed body.
        if e.status_code == status.HTTP_400_BAD_REQUEST:
            detail = field_errors(["body"], "the body is not JSON: it could not be decoded as UTF-8")
            return JSONResponse({"detail": detail}, UNPROCESSABLE)
        return await http_exception_handler(request, e)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeout)
    async def database_down(request: Request, e: Exception) -> JSONResponse:
        log.warning("%s %s: database unavailable: %s", request.method, request.url.path, type(e).__name__)
        return _unavailable("database")

    @app.exception_handler(BrokerError)
    async def broker_down(request: Request, e: Exception) -> JSONResponse:
        log.warning("%s %s: broker unavailable: %s", request.method, request.url.path, type(e).__name__)
        return _unavailable("broker")

    @app.exception_handler(DataError)
    async def data_error(request: Request, e: DataError) -> JSONResponse:
        # The schema bounds every field it knows; this is the backstop for a value the database still
        # refuses (out of range, invalid text). The database's own message names no field a client knows.
        log.warning("%s %s: refused by the database: %s", request.method, request.url.path, e.orig)
        detail = field_errors(["request"], "a value is out of range or invalid")
        return JSONResponse({"detail": detail}, UNPROCESSABLE)


class NoNulBytes:
    """Refuse NUL bytes in the path or the query string with 422: PostgreSQL text cannot hold them."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            where = "path" if "\x00" in scope["path"] else None
            if b"%00" in scope.get("query_string", b""):
                where = "query"
            if where:
                response = JSONResponse(
                    {"detail": field_errors([where], "NUL bytes are not allowed")}, UNPROCESSABLE
                )
                return await response(scope, receive, send)
        return await self.app(scope, receive, send)
