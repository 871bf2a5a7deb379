"""Bearer tokens: who a request acts as, what its scope lets it do, and the audit entry of each write.

Writes need a `write` or `admin` token (`SHOAL_API_TOKEN` is the bootstrap admin); reads are public unless
`SHOAL_READ_REQUIRES_TOKEN` is set. Tokens are looked up on every request, so a revoked one is refused at
once. A write token is rate limited (429 with Retry-After), capped in queued runs, and changes only the
runs and sweeps it created.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from services.api.deps import admitted, db
from services.api.ratelimit import RateLimiter
from services.common import tokens
from services.common.db import session_scope
from services.common.models import AuditEntry, Scope
from services.common.settings import get_settings
from services.common.tokens import Principal

bearer = HTTPBearer(auto_error=False, description="a token of `shoal token create`, or SHOAL_API_TOKEN")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def install_limits(app: FastAPI) -> None:
    settings = get_settings()
    app.state.write_limiter = RateLimiter(settings.write_rate, settings.write_burst)
    per_minute = settings.auth_failures_per_minute
    app.state.auth_failures = RateLimiter(per_minute / 60, per_minute)


def _authenticate(
    request: Request, session: Session, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    principal = None
    if credentials is not None:
        principal = tokens.authenticate(session, credentials.credentials.strip(), get_settings().api_token)
    if principal is None:
        # Guessing tokens costs a client its 401s: past its budget of failures it is only told to wait.
        address = request.client.host if request.client else ""
        wait = request.app.state.auth_failures.take(address)
        if wait:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                "too many requests with a missing or wrong token from this address",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing, wrong or revoked bearer token in the Authorization header",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


def writer(request: Request, credentials: Credentials, session: Session = Depends(db)) -> Principal:
    """A write or admin token, within its rate; the write's audit entry joins the route's transaction."""
    principal = _authenticate(request, session, credentials)
    if not principal.scope.can_write:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"token {principal.name!r} has scope read: no writes")
    if principal.scope is Scope.write:
        wait = request.app.state.write_limiter.take(principal.token_id)
        if wait:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"token {principal.name!r} is over its write rate ({get_settings().write_rate:g}/s)",
                headers={"Retry-After": str(math.ceil(wait))},
            )
    session.add(
        AuditEntry(
            token_id=principal.token_id, actor=principal.name, method=request.method, path=request.url.path
        )
    )
    return principal


Writer = Annotated[Principal, Depends(writer)]


def run_creator(principal: Writer, session: Session = Depends(db)) -> Principal:
    """A writer that may queue one more run: a write token holds at most SHOAL_MAX_QUEUED_RUNS_PER_TOKEN."""
    cap, token_id = get_settings().max_queued_runs_per_token, principal.token_id
    if principal.scope is not Scope.write or token_id is None:  # admins are not capped
        return principal
    if tokens.queued_runs(session, token_id) >= cap:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"token {principal.name!r} has {cap} queued runs, its cap; retry when some have started",
            headers={"Retry-After": "30"},
        )
    return principal


RunCreator = Annotated[Principal, Depends(run_creator)]


def require_owner(principal: Principal, what: str, *owners: int | None) -> None:
    """403 unless the principal may change `what` (an admin, or the token that created it)."""
    if not principal.may_change(*owners):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"{what} was not created by token {principal.name!r}")


async def reader(request: Request, credentials: Credentials) -> None:
    """With SHOAL_READ_REQUIRES_TOKEN, any valid token (read, write or admin); otherwise nothing: reads that
    need no database (GET /envs) stay free of it."""
    if not get_settings().read_requires_token:
        return
    async with admitted(request):
        await run_in_threadpool(_check_reader, request, credentials)


def _check_reader(request: Request, credentials: HTTPAuthorizationCredentials | None) -> None:
    with session_scope() as session:
        _authenticate(request, session, credentials)
