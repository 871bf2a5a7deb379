"""Reads of the Elo service's ratings for other services (the sweeper's "Elo as a sweep metric"), so they
depend on the tables, not on the Elo service's code."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.models import EloPlayer, EloRating, PlayerKind


def checkpoint_rating(session: Session, checkpoint_id: int) -> EloRating | None:
    """The current rating of a checkpoint (elo, lo, hi, games), or None if it has none yet."""
    return session.execute(
        select(EloRating)
        .join(EloPlayer, EloRating.player_id == EloPlayer.id)
        .where(EloPlayer.kind == PlayerKind.checkpoint, EloPlayer.name == str(checkpoint_id))
    ).scalar_one_or_none()
