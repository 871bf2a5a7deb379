"""Bearer-token authentication for writes."""

from __future__ import annotations

import secrets

from fastapi import Header, HTTPException, status

from services.common.settings import get_settings


def require_token(authorization: str | None = Header(default=None)) -> None:
    """Writes need `Authorization: Bearer <SHOAL_API_TOKEN>`; with no token configured, writes are closed."""
    expected = get_settings().api_token
    if not expected:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "writes are disabled: the server has no SHOAL_API_TOKEN"
        )
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong bearer token in the Authorization header",
            headers={"WWW-Authenticate": "Bearer"},
        )
