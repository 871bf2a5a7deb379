"""The FastAPI application: routes, error shapes and request guards."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from services.api.routes import dashboard, elo, envs, health, runs, sweeps
from services.common.config import ConfigError, RunConfig, UnknownEnv

MAX_BODY_BYTES = 1 << 20


class BodyLimit:
    """Refuse bodies over MAX_BODY_BYTES with 413, whether or not Content-Length announces them."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return await _too_large(send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY_BYTES:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _BodyTooLarge:
            await _too_large(send)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send) -> None:
    response = JSONResponse(
        {"detail": f"request body exceeds {MAX_BODY_BYTES} bytes"}, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    )
    await send(
        {"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers}
    )
    await send({"type": "http.response.body", "body": response.body})


def _loc(e: ConfigError) -> list[str]:
    """Where a ConfigError points in the request body: a run configuration's field sits under
    "hyperparameters"; a request's own fields (a sweep's "space" or "budget") at the top."""
    if isinstance(e, UnknownEnv):
        return ["body", "env"]
    path = e.field.split(".")
    if path[0] in RunConfig.model_fields or path[0] == "config":
        return ["body", "hyperparameters", *path]
    return ["body", *path]


def create_app() -> FastAPI:
    app = FastAPI(title="shoal", version="0.1.0", description="RL experiment platform")

    @app.exception_handler(ConfigError)
    async def config_error(_: Request, e: ConfigError) -> JSONResponse:
        return JSONResponse(
            {"detail": [{"loc": _loc(e), "msg": e.message, "type": "value_error"}]},
            status.HTTP_422_UNPROCESSABLE_ENTITY,
        )

    for module in (runs, sweeps, envs, health, elo, dashboard):
        app.include_router(module.router)
    dashboard.mount_static(app)
    app.add_middleware(BodyLimit)
    return app


app = create_app()
