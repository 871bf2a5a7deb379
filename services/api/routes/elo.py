"""Ratings: the leaderboard, the pairwise matrix, a run's Elo over training, and ad-hoc matches.

Reads come from `ratings` (a refit's output) and the `matches` log; POST /matches only queues batches for
the elo workers. Everything here goes through `services.elo.store`, which is torch-free.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.orm import Session

from envs_c.registry import ENVS
from services.api.auth import require_token
from services.api.deps import db
from services.common.models import Run
from services.elo import store

router = APIRouter(tags=["elo"])
UNPROCESSABLE = 422  # the constant's name differs between Starlette versions


def _two_player_env(env: str, loc: list[str]) -> str:
    if env not in ENVS:
        message = f"unknown environment {env!r}; known: {', '.join(sorted(ENVS))}"
    elif not store.is_game(env):
        games = sorted(name for name in ENVS if store.is_game(name))
        message = f"{env!r} is not a two-player environment; ratings exist for {', '.join(games)}"
    else:
        return env
    raise HTTPException(UNPROCESSABLE, [{"loc": loc, "msg": message, "type": "value_error"}])


@router.get("/leaderboard")
def get_leaderboard(
    env: Annotated[str, Query(max_length=64)], session: Session = Depends(db)
) -> dict[str, Any]:
    """Every rated player of `env`, strongest first, with 95% bootstrap intervals (random = 1000)."""
    return store.leaderboard(session, _two_player_env(env, ["query", "env"]))


@router.get("/leaderboard/{env}/matrix")
def get_matrix(env: str, session: Session = Depends(db)) -> dict[str, Any]:
    """Games and mean score (row against column, null without games), in leaderboard order."""
    return store.matrix(session, _two_player_env(env, ["path", "env"]))


@router.get("/runs/{run_id}/elo")
def get_run_elo(run_id: int, session: Session = Depends(db)) -> dict[str, Any]:
    """The rating of each of the run's checkpoints, by step."""
    if session.get(Run, run_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} does not exist")
    return store.run_elo(session, run_id)


class MatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    a: int | str = Field(description='a checkpoint id, or an anchor: "random" or "scripted"')
    b: int | str = Field(description='a checkpoint id, or an anchor: "random" or "scripted"')
    games: int = Field(ge=2, le=10_000, description="even: games are played in seat-swapped pairs")
    env: str | None = Field(None, max_length=64, description="needed only when both players are anchors")

    @field_validator("games")
    @classmethod
    def _even(cls, games: int) -> int:
        if games % 2:
            raise ValueError("games must be even (seat-swapped pairs)")
        return games


@router.post("/matches", status_code=status.HTTP_202_ACCEPTED, dependencies=[Depends(require_token)])
def post_matches(body: MatchCreate, session: Session = Depends(db)) -> dict[str, Any]:
    """Queue `games` games of a against b (batches for the elo workers); ratings refit when they end."""
    env = body.env
    if env is not None:
        _two_player_env(env, ["body", "env"])
    players = []
    for field in ("a", "b"):
        try:
            players.append(store.resolve(session, getattr(body, field), env))
        except store.PlayerError as e:
            detail = (
                str(e)
                if e.status == 404
                else [{"loc": ["body", field], "msg": str(e), "type": "value_error"}]
            )
            raise HTTPException(e.status, detail) from None
        env = env or players[-1].env
    a, b = players
    if a.env != b.env:
        raise HTTPException(
            UNPROCESSABLE,
            [{"loc": ["body", "b"], "msg": f"b plays {b.env!r}, a plays {a.env!r}", "type": "value_error"}],
        )
    if a.id == b.id:
        raise HTTPException(
            UNPROCESSABLE,
            [{"loc": ["body", "b"], "msg": "a player cannot play itself", "type": "value_error"}],
        )
    job, batches = store.create_job(session, a.env, [(a, b)], body.games)
    session.commit()
    store.enqueue(batches)
    return {
        "job_id": job.id,
        "env": a.env,
        "a": a.name,
        "b": b.name,
        "games": body.games,
        "batches": store.batch_summary(batches),
    }
