"""`shoal.client.Client`: the Python client of the shoal API (implemented in services/client.py)."""

from services.client import (
    AuthError,
    Client,
    InvalidRequest,
    NotFound,
    ServerError,
    ShoalError,
    Unavailable,
)

__all__ = [
    "AuthError",
    "Client",
    "InvalidRequest",
    "NotFound",
    "ServerError",
    "ShoalError",
    "Unavailable",
]
