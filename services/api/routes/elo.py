"""Ratings: the leaderboard, the pairwise matrix, a run's Elo over training, and ad-hoc matches.

Reads come from `ratings` (a refit's output) and the `matches` log; POST /matches only queues batches for
the elo workers. Everything here goes through `services.elo.store`, which is torch-free.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from sqlalchemy.orm import Session

from envs_c.registry import ENVS, unknown_env
from services.api.auth import Writer, reader
from services.api.deps import JobId, Offset, RunId, db
from services.api.errors import NOT_FOUND, READ, WRITE, unprocessable
from services.common import outbox
from services.common.models import Run
from services.common.schemas import (
    LeaderboardOut,
    MatchCreate,
    MatchJobOut,
    MatchQueued,
    MatrixOut,
    RunEloOut,
)
from services.elo import store
from services.elo.games import is_game

router = APIRouter(tags=["elo"], dependencies=[Depends(reader)], responses=READ)


def _two_player_env(env: str, loc: list[str]) -> str:
    if env not in ENVS:
        raise unprocessable(loc, unknown_env(env))
    if not is_game(env):
        games = ", ".join(sorted(name for name in ENVS if is_game(name)))
        raise unprocessable(loc, f"{env!r} is not a two-player environment; ratings exist for {games}")
    return env


@router.get("/leaderboard", response_model=LeaderboardOut)
def get_leaderboard(
    env: Annotated[str, Query(max_length=64)],
    session: Session = Depends(db),
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """The rated players of `env`, strongest first, a page at a time, with 95% bootstrap intervals
    (random = 1000)."""
    return store.leaderboard(session, _two_player_env(env, ["query", "env"]), limit, offset)


@router.get("/leaderboard/{env}/matrix", response_model=MatrixOut)
def get_matrix(
    env: Annotated[str, Path(max_length=64)],
    session: Session = Depends(db),
    limit: Annotated[int, Query(ge=2, le=100, description="the strongest players it covers")] = 50,
) -> dict[str, Any]:
    """Games and mean score (row against column, null without games) between the `limit` strongest
    players, in leaderboard order."""
    return store.matrix(session, _two_player_env(env, ["path", "env"]), limit)


@router.get("/runs/{run_id}/elo", response_model=RunEloOut, responses=NOT_FOUND)
def get_run_elo(run_id: RunId, session: Session = Depends(db)) -> dict[str, Any]:
    """The rating of each of the run's checkpoints, by step."""
    if session.get(Run, run_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id} does not exist")
    return store.run_elo(session, run_id)


@router.post(
    "/matches",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MatchQueued,
    responses={**WRITE, **NOT_FOUND},
)
def post_matches(body: MatchCreate, _: Writer, session: Session = Depends(db)) -> dict[str, Any]:
    """Queue `games` games of a against b (batches for the elo workers); ratings refit when they end.
    Poll GET /matches/{job_id} (the answer's `status_url`) to see them played."""
    env = body.env
    if env is not None:
        _two_player_env(env, ["body", "env"])
    players = []
    for field in ("a", "b"):
        try:
            players.append(store.resolve(session, getattr(body, field), env))
        except store.NoSuchCheckpoint as e:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(e)) from None
        except store.PlayerError as e:
            raise unprocessable(["body", field], str(e)) from None
        env = env or players[-1].env
    a, b = players
    if a.env != b.env:
        raise unprocessable(["body", "b"], f"b plays {b.env!r}, a plays {a.env!r}")
    if a.id == b.id:
        raise unprocessable(["body", "b"], "a player cannot play itself")
    job, batches = store.create_job(session, a.env, [(a, b)], body.games)
    store.enqueue(session, batches)
    session.commit()
    outbox.publish(session)
    return {
        "job_id": job.id,
        "env": a.env,
        "a": a.name,
        "b": b.name,
        "games": body.games,
        "batches": store.batch_summary(batches),
        "status_url": f"/matches/{job.id}",
    }


@router.get("/matches/{job_id}", response_model=MatchJobOut, responses=NOT_FOUND)
def get_match_job(job_id: JobId, session: Session = Depends(db)) -> MatchJobOut:
    """Poll a POST /matches job: queued, running or finished, with its games played so far."""
    job = store.job_status(session, job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"match job {job_id} does not exist")
    return MatchJobOut(**job)
