"""API tokens: created by `shoal token create`, checked by the API on every request that needs one.

A token is `shoal_<random>`; the database keeps only its SHA-256, so the secret is shown once and a copy of
the database authenticates nobody. `SHOAL_API_TOKEN`, when set, is the bootstrap admin: it needs no row,
so a fresh deployment can act (and create the other tokens) before any exists.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.common.models import ApiToken, Run, RunStatus, Scope, Sweep, utcnow

PREFIX = "shoal_"
BOOTSTRAP = "bootstrap"


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a token row (`token_id`), or the bootstrap admin (`token_id` None)."""

    token_id: int | None
    name: str
    scope: Scope

    def may_change(self, *owners: int | None) -> bool:
        """An admin changes anything; a write token what one of `owners` (token ids) says it created."""
        return self.scope is Scope.admin or (self.token_id is not None and self.token_id in owners)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(session: Session, name: str, scope: Scope) -> tuple[ApiToken, str]:
    """A new token row and its secret, which nothing stores: the caller shows it once."""
    secret = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name=name, scope=scope, secret_sha256=digest(secret))
    session.add(token)
    session.flush()
    return token, secret


def find(session: Session, ref: str) -> ApiToken:
    """A token by id or by name; LookupError when none or several match."""
    query = select(ApiToken).where(ApiToken.id == int(ref)) if ref.isdigit() else None
    if query is None:
        query = select(ApiToken).where(ApiToken.name == ref)
    found = session.scalars(query).all()
    if len(found) != 1:
        several = f"{len(found)} tokens are named {ref!r}; use its id"
        raise LookupError(several if found else f"no token {ref!r}")
    return found[0]


def listing(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke(session: Session, token: ApiToken) -> None:
    """From the next request on, the token is refused (401): the API looks tokens up on every request."""
    if token.revoked_at is None:
        token.revoked_at = utcnow()


def authenticate(session: Session, secret: str, bootstrap: str | None) -> Principal | None:
    """Who `secret` belongs to, or None for an unknown or revoked token."""
    if bootstrap and secrets.compare_digest(secret.encode(), bootstrap.encode()):
        return Principal(None, BOOTSTRAP, Scope.admin)
    if not secret.startswith(PREFIX):
        return None
    token = session.scalars(
        select(ApiToken).where(ApiToken.secret_sha256 == digest(secret), ApiToken.revoked_at.is_(None))
    ).one_or_none()
    return None if token is None else Principal(token.id, token.name, Scope(token.scope))


def run_owners(session: Session, run: Run) -> tuple[int | None, int | None]:
    """The tokens that may change a run besides admins: its creator and, for a trial, its sweep's creator."""
    sweep_owner = None
    if run.sweep_id is not None:
        sweep_owner = session.scalar(select(Sweep.created_by_token).where(Sweep.id == run.sweep_id))
    return run.created_by_token, sweep_owner


def queued_runs(session: Session, token_id: int) -> int:
    count = select(func.count()).where(Run.created_by_token == token_id, Run.status == RunStatus.queued)
    return session.scalar(count) or 0
