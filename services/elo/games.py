"""Which environments the Elo service rates, shared by the torch-free store and the match runner."""

from __future__ import annotations

from envs_c.registry import ENVS


def is_game(env: str) -> bool:
    """A two-player game: it has seats in the registry, whatever `opponent` a run trained with."""
    entry = ENVS.get(env)
    return entry is not None and entry.players is not None
