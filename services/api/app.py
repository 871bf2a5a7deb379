"""The FastAPI application: routes, error shapes and request guards."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware

from services.api import auth, deps, errors
from services.api.readcache import ReadCache
from services.api.routes import checkpoints, dashboard, elo, envs, health, runs, sweeps
from services.common.config import ConfigError, RunConfig, UnknownEnv
from services.common.settings import get_settings

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
        seen, refused = 0, False

        async def counted():
            # Answer 413 here and tell the app the client left: an exception raised into the app's body
            # parsing would come back as its own 400.
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY_BYTES and not refused:
                refused = True
                await _too_large(send)
            return {"type": "http.disconnect"} if refused else message

        async def unless_refused(message):
            if not refused:
                await send(message)

        await self.app(scope, counted, unless_refused)


async def _too_large(send) -> None:
    response = JSONResponse({"detail": f"request body exceeds {MAX_BODY_BYTES} bytes"}, 413)
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
    # /docs is served by the dashboard router from vendored assets (offline); ReDoc would need a CDN.
    app = FastAPI(
        title="shoal",
        version="0.1.0",
        description="RL experiment platform",
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(ConfigError)
    async def config_error(_: Request, e: ConfigError) -> JSONResponse:
        return JSONResponse({"detail": errors.field_errors(_loc(e), e.message)}, errors.UNPROCESSABLE)

    for module in (runs, sweeps, envs, health, elo, checkpoints, dashboard):
        app.include_router(module.router)
    dashboard.mount_static(app)
    errors.install(app)
    deps.install_gate(app)
    auth.install_limits(app)
    settings = get_settings()
    app.add_middleware(
        ReadCache, ttl=settings.api_read_cache_seconds, enabled=not settings.read_requires_token
    )
    app.add_middleware(BodyLimit)
    app.add_middleware(errors.NoNulBytes)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    return app


app = create_app()
