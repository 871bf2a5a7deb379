"""The Elo service's database side: players, match jobs and batches, the match log, refits, read models.

Torch-free on purpose (numpy, SQLAlchemy, the env registry): the API serves the leaderboard and enqueues
matches through this module, and must never import torch. The games themselves are played by
`services.elo.tasks` with `services.elo.match`.

Decisions:

* **Player ids.** A player is known to the API by its `name`: the anchor's name ("random", "scripted"),
  or the checkpoint id as a string. That is also what POST /matches accepts, and it survives the
  checkpoint row being deleted by retention (its games stay in the log, it just cannot play any more).
* **Anchor.** The uniform-random policy is pinned at 1000. It is the same player in every environment
  and never changes, whereas the scripted bot's strength moves with its settings (connect4's search
  depth) and with every improvement to its C code, which would silently shift every rating. The scripted
  bot is still in every new checkpoint's opponent pool, as the strong end of the comparison graph.
* **Env versions.** A refit uses only the matches of the environment's current version: after the C
  source changes, old checkpoints are refused by `load_policy` and their games were a different game.
* **Completion without a result backend.** A job (a checkpoint's rating, a POST /matches) counts its
  batches down in one atomic UPDATE ... RETURNING; the batch that brings it to zero triggers the refit.
  A batch moves out of `queued` at most once (a conditional UPDATE), so a redelivered task is not
  counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

import envs_c
from services.common import artifacts, outbox
from services.common.celery_app import ELO_PLAY_TASK
from services.common.db import affected
from services.common.models import (
    BatchStatus,
    Checkpoint,
    EloPlayer,
    EloRating,
    Match,
    MatchBatch,
    MatchJob,
    PlayerKind,
    RatingFit,
    utcnow,
)
from services.common.schemas import INT4_MAX
from services.elo.games import is_game
from services.elo.matchmaking import pick_opponents
from services.elo.rating import Rating, fit_ratings
from services.elo.seeds import derive

ANCHOR = "random"
ANCHOR_RATING = 1000.0
ANCHOR_LABELS = {"random": "random policy", "scripted": "scripted bot"}
# The most games one batch (one task) plays: larger requests are split so that several workers share them.
BATCH_GAMES = 128


class PlayerError(ValueError):
    """A player reference that cannot be used."""


class NoSuchCheckpoint(PlayerError):
    """A player reference to a checkpoint that does not exist."""


# ---- players -----------------------------------------------------------------------------------------


def _dialect(session: Session):
    return postgresql if session.get_bind().dialect.name == "postgresql" else sqlite


def _get_or_create(session: Session, env: str, name: str, **fields: Any) -> EloPlayer:
    query = select(EloPlayer).where(EloPlayer.env == env, EloPlayer.name == name)
    found = session.scalar(query)
    if found is not None:
        return found
    # Two workers may create the same player at once: ON CONFLICT DO NOTHING waits for the other insert
    # and yields to it, where a plain INSERT would abort this whole transaction.
    session.execute(
        _dialect(session)
        .insert(EloPlayer)
        .values(env=env, name=name, created_at=utcnow(), **fields)
        .on_conflict_do_nothing(index_elements=["env", "name"])
    )
    return session.scalars(query).one()


def anchor(session: Session, env: str, name: str) -> EloPlayer:
    return _get_or_create(
        session,
        env,
        name,
        kind=PlayerKind.anchor,
        label=ANCHOR_LABELS[name],
        env_version=envs_c.version(env),
    )


def checkpoint_player(session: Session, checkpoint: Checkpoint) -> EloPlayer:
    return _get_or_create(
        session,
        checkpoint.env,
        str(checkpoint.id),
        kind=PlayerKind.checkpoint,
        label=f"run {checkpoint.run_id} @ {checkpoint.step:,}",
        checkpoint_id=checkpoint.id,
        run_id=checkpoint.run_id,
        step=checkpoint.step,
        env_version=checkpoint.env_version,
    )


def resolve(session: Session, ref: int | str, env: str | None) -> EloPlayer:
    """A POST /matches player: an anchor name (needs `env`) or a checkpoint id."""
    if isinstance(ref, str) and ref in ANCHOR_LABELS:
        if env is None:
            raise PlayerError(f"anchor {ref!r} needs an env")
        return anchor(session, env, ref)
    try:
        checkpoint_id = int(ref)
    except (TypeError, ValueError):
        raise PlayerError(
            f"{ref!r} is neither a checkpoint id nor an anchor ({', '.join(ANCHOR_LABELS)})"
        ) from None
    checkpoint = session.get(Checkpoint, checkpoint_id) if 1 <= checkpoint_id <= INT4_MAX else None
    if checkpoint is None:
        raise NoSuchCheckpoint(f"checkpoint {checkpoint_id} does not exist")
    if env is not None and checkpoint.env != env:
        raise PlayerError(f"checkpoint {checkpoint_id} is for {checkpoint.env!r}, not {env!r}")
    if not is_game(checkpoint.env):
        raise PlayerError(f"checkpoint {checkpoint_id} is for {checkpoint.env!r}, not a two-player game")
    player = checkpoint_player(session, checkpoint)
    if player.refused:
        raise PlayerError(f"checkpoint {checkpoint_id} was refused: {player.refused}")
    return player


def playable(session: Session, env: str) -> list[EloPlayer]:
    """Players that can still play: anchors, and checkpoints that exist, load, and match the env now."""
    version = envs_c.version(env)
    return list(
        session.scalars(
            select(EloPlayer).where(
                EloPlayer.env == env,
                # Anchors play every version of the game; a checkpoint only the one it was trained on.
                (EloPlayer.kind == PlayerKind.anchor)
                | (
                    EloPlayer.checkpoint_id.is_not(None)
                    & EloPlayer.refused.is_(None)
                    & (EloPlayer.env_version == version)
                ),
            )
        )
    )


def stored_ratings(session: Session, env: str) -> dict[int, Rating]:
    rows = session.scalars(select(EloRating).where(EloRating.env == env))
    return {r.player_id: Rating(r.elo, r.lo, r.hi, r.games, 0, 0, 0) for r in rows}


# ---- jobs and batches --------------------------------------------------------------------------------


def chunks(games: int, size: int = BATCH_GAMES) -> list[int]:
    """Split `games` (even) into batches of at most `size`, each even so seats stay paired."""
    out = [size] * (games // size)
    if games % size:
        out.append(games % size)
    return out


def create_job(
    session: Session,
    env: str,
    pairs: Sequence[tuple[EloPlayer, EloPlayer]],
    games: int,
    *,
    player: EloPlayer | None = None,
    then_tick_sweep: int | None = None,
) -> tuple[MatchJob, list[MatchBatch]]:
    """A job of `games` games for each pair, split into batches; the caller `enqueue`s them, then commits."""
    if games < 2 or games % 2:
        raise ValueError(f"games must be even and at least 2, got {games}")
    job = MatchJob(
        env=env, player_id=player.id if player else None, pending=0, then_tick_sweep=then_tick_sweep
    )
    session.add(job)
    session.flush()
    batches = []
    for a, b in pairs:
        for index, size in enumerate(chunks(games)):
            (seed,) = derive(job.id, a.id, b.id, index)
            batches.append(
                MatchBatch(job_id=job.id, env=env, player_a=a.id, player_b=b.id, games=size, seed=seed)
            )
    job.pending = len(batches)
    session.add_all(batches)
    session.flush()
    return job, batches


def enqueue(session: Session, batches: Iterable[MatchBatch]) -> None:
    """Stage a play task per batch; sent once the caller commits and publishes."""
    for batch in batches:
        outbox.stage(session, ELO_PLAY_TASK, [batch.id])


def predecessor(session: Session, player: EloPlayer) -> EloPlayer | None:
    """The player of the previous checkpoint of the same run, if it was rated."""
    if player.run_id is None or player.step is None:
        return None
    return session.scalar(
        select(EloPlayer)
        .where(
            EloPlayer.env == player.env,
            EloPlayer.run_id == player.run_id,
            EloPlayer.step < player.step,
            EloPlayer.kind == PlayerKind.checkpoint,
        )
        .order_by(EloPlayer.step.desc())
        .limit(1)
    )


def plan_rating(
    session: Session, checkpoint_id: int, games: int, *, then_tick_sweep: int | None = None
) -> tuple[MatchJob, list[MatchBatch]] | str:
    """The job that rates a checkpoint, or why there is none (the caller logs it and still ticks the sweep).

    Opponents: both anchors, the run's previous checkpoint, the 4 nearest-rated
    playable players and 2 random ones; the new checkpoint is player A in every batch.
    """
    checkpoint = session.get(Checkpoint, checkpoint_id)
    if checkpoint is None:
        return f"checkpoint {checkpoint_id} does not exist (deleted by retention?)"
    if not is_game(checkpoint.env):
        return f"checkpoint {checkpoint_id} is for {checkpoint.env!r}, not a two-player game"
    env = checkpoint.env
    anchors = [anchor(session, env, name) for name in ANCHOR_LABELS]
    player = checkpoint_player(session, checkpoint)
    if player.refused:
        return f"checkpoint {checkpoint_id} was refused: {player.refused}"
    pool = {p.id: p for p in playable(session, env)}
    ratings = {pid: r for pid, r in stored_ratings(session, env).items() if pid in pool}
    before = predecessor(session, player)
    chosen = pick_opponents(
        player.id,
        ratings,
        anchors=[a.id for a in anchors],
        predecessor=before.id if before is not None and before.id in pool else None,
        rng=np.random.default_rng(derive(checkpoint_id)[0]),
    )
    opponents = [pool[pid] for pid in chosen if pid in pool]
    return create_job(
        session, env, [(player, o) for o in opponents], games, player=player, then_tick_sweep=then_tick_sweep
    )


@dataclass(frozen=True)
class BatchWork:
    """What a play task needs, read in one short transaction: sources are anchor names or stems."""

    batch_id: int
    job_id: int
    env: str
    games: int
    seed: int
    player_a: int
    player_b: int
    source_a: str
    source_b: str
    refused: tuple[str | None, str | None]  # a player already known to be unusable, with the reason


def _source(session: Session, player: EloPlayer) -> tuple[str, str | None]:
    if player.kind == PlayerKind.anchor:
        return player.name, None
    if player.refused:
        return "", player.refused
    checkpoint = session.get(Checkpoint, player.checkpoint_id) if player.checkpoint_id else None
    if checkpoint is None:
        return "", f"checkpoint {player.name} was deleted"
    try:
        return str(artifacts.absolute(checkpoint.path)), None
    except ValueError as e:
        return "", str(e)


def claim_batch(session: Session, batch_id: int) -> BatchWork | None:
    """The batch's work, or None if it is not queued any more (a redelivered task)."""
    batch = session.get(MatchBatch, batch_id)
    if batch is None or batch.status != BatchStatus.queued:
        return None
    a, b = session.get_one(EloPlayer, batch.player_a), session.get_one(EloPlayer, batch.player_b)
    (source_a, refused_a), (source_b, refused_b) = _source(session, a), _source(session, b)
    return BatchWork(
        batch.id, batch.job_id, batch.env, batch.games, batch.seed, a.id, b.id, source_a, source_b,
        (refused_a, refused_b),
    )  # fmt: skip


def record_batch(
    session: Session,
    work: BatchWork,
    status: BatchStatus,
    *,
    games: Sequence[Any] = (),
    reason: str | None = None,
    refused_player: int | None = None,
    seconds: float | None = None,
    code_version: str = "",
) -> MatchJob | None:
    """Append the batch's games (objects with score_a, seat_a, seed, steps, timeout) and count it down.

    Returns the job if this batch completed it (the caller then triggers the refit), else None; a batch
    already recorded (a duplicate delivery) changes nothing.
    """
    now = utcnow()
    moved = affected(
        session,
        update(MatchBatch)
        .where(MatchBatch.id == work.batch_id, MatchBatch.status == BatchStatus.queued)
        .values(status=status, reason=reason, seconds=seconds, finished_at=now),
    )
    if moved != 1:
        return None
    if games:
        _insert_games(session, work, games, code_version, now)
    if refused_player is not None:
        session.execute(
            update(EloPlayer)
            .where(EloPlayer.id == refused_player, EloPlayer.refused.is_(None))
            .values(refused=reason)
        )
    # One atomic decrement: concurrent batches serialise on the job row, so exactly one sees zero.
    pending = session.execute(
        update(MatchJob)
        .where(MatchJob.id == work.job_id)
        .values(pending=MatchJob.pending - 1)
        .returning(MatchJob.pending)
    ).scalar_one()
    if pending > 0:
        return None
    job = session.get_one(MatchJob, work.job_id)
    job.finished_at = now
    return job


def _insert_games(
    session: Session, work: BatchWork, games: Sequence[Any], code_version: str, now: datetime
) -> None:
    version = envs_c.version(work.env)
    session.execute(
        insert(Match),
        [
            {
                "env": work.env,
                "player_a": work.player_a,
                "player_b": work.player_b,
                "seat_a": g.seat_a,
                "seed": g.seed,
                "score_a": g.score_a,
                "steps": g.steps,
                "timeout": g.timeout,
                "env_version": version,
                "code_version": code_version,
                "batch_id": work.batch_id,
                "created_at": now,
            }
            for g in games
        ],
    )


# ---- refit -------------------------------------------------------------------------------------------


def refit(session: Session, env: str, bootstrap: int = 200, seed: int = 0) -> dict[int, Rating] | None:
    """Fit every match of the env's current version, anchored on random at 1000; replace `ratings`.

    Refits of one env take turns on its `rating_fits` row. One that finds every match already covered by
    the last fit returns None without fitting: whoever queued it finished its games before that fit read
    the log, so its games are in the ratings already.
    """
    random_player = anchor(session, env, ANCHOR)
    version = envs_c.version(env)
    session.execute(
        _dialect(session)
        .insert(RatingFit)
        .values(env=env, env_version=version, through_match_id=0)
        .on_conflict_do_nothing(index_elements=["env"])
    )
    fit = session.scalars(select(RatingFit).where(RatingFit.env == env).with_for_update()).one()
    current = (Match.env == env) & (Match.env_version == version)
    newest = session.scalar(select(func.max(Match.id)).where(current)) or 0
    if fit.fitted_at is not None and fit.env_version == version and fit.through_match_id >= newest:
        return None
    rows = session.execute(
        select(Match.player_a, Match.player_b, Match.score_a, func.count())
        .where(current, Match.id <= newest)
        .group_by(Match.player_a, Match.player_b, Match.score_a)
    ).all()
    matches = [(a, b, float(score)) for a, b, score, n in rows for _ in range(n)]
    # The players of these matches are player row ids.
    ratings = cast(
        dict[int, Rating],
        fit_ratings(
            matches, anchor=random_player.id, anchor_rating=ANCHOR_RATING, bootstrap=bootstrap, seed=seed
        ),
    )
    now = utcnow()
    values = [
        {
            "env": env,
            "player_id": pid,
            "elo": r.elo,
            "lo": r.lo,
            "hi": r.hi,
            "games": r.games,
            "fitted_at": now,
        }
        for pid, r in sorted(ratings.items())  # a fixed order: concurrent refits lock rows alike
    ]
    statement = _dialect(session).insert(EloRating).values(values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["env", "player_id"],
            set_={k: statement.excluded[k] for k in ("elo", "lo", "hi", "games", "fitted_at")},
        )
    )
    session.execute(delete(EloRating).where(EloRating.env == env, EloRating.player_id.not_in(list(ratings))))
    fit.env_version, fit.through_match_id, fit.fitted_at = version, newest, now
    return ratings


# ---- read models (the API's contracts) ---------------------------------------------------------------


def _public(player: EloPlayer, rating: EloRating) -> dict[str, Any]:
    checkpoint = player.kind == PlayerKind.checkpoint
    return {
        "id": player.name,
        "kind": player.kind,
        "label": player.label,
        "checkpoint_id": int(player.name) if checkpoint else None,
        "run_id": player.run_id,
        "step": player.step,
        "elo": rating.elo,
        "lo": rating.lo,
        "hi": rating.hi,
        "games": rating.games,
    }


def _board(session: Session, env: str, limit: int, offset: int = 0) -> list[tuple[EloPlayer, EloRating]]:
    return list(
        session.execute(
            select(EloPlayer, EloRating)
            .join(EloRating, EloRating.player_id == EloPlayer.id)
            .where(EloRating.env == env)
            .order_by(EloRating.elo.desc(), EloPlayer.id)
            .limit(limit)
            .offset(offset)
        ).all()
    )


def _rated(session: Session, env: str) -> int:
    return session.scalar(select(func.count()).select_from(EloRating).where(EloRating.env == env)) or 0


def leaderboard(session: Session, env: str, limit: int, offset: int = 0) -> dict[str, Any]:
    """A page of the rated players, strongest first, and how many there are."""
    players = [_public(p, r) for p, r in _board(session, env, limit, offset)]
    page = {"total": _rated(session, env), "limit": limit, "offset": offset}
    return {"env": env, "anchor": ANCHOR, "players": players, **page}


def matrix(session: Session, env: str, limit: int) -> dict[str, Any]:
    """Games and mean score of row against column over the current version's matches, between the `limit`
    strongest players (leaderboard order): the matrix grows as the square of the players."""
    board = [p for p, _ in _board(session, env, limit)]
    index = {p.id: i for i, p in enumerate(board)}
    n = len(board)
    games = np.zeros((n, n), dtype=np.int64)
    points = np.zeros((n, n))
    rows = session.execute(
        select(Match.player_a, Match.player_b, func.count(), func.sum(Match.score_a))
        .where(
            Match.env == env,
            Match.env_version == envs_c.version(env),
            Match.player_a.in_(list(index)),
            Match.player_b.in_(list(index)),
        )
        .group_by(Match.player_a, Match.player_b)
    ).all()
    for a, b, count, score in rows:
        if a in index and b in index:
            i, j = index[a], index[b]
            games[i, j] += count
            games[j, i] += count
            points[i, j] += float(score)
            points[j, i] += count - float(score)
    mean = [[float(points[i, j] / games[i, j]) if games[i, j] else None for j in range(n)] for i in range(n)]
    return {
        "players": [p.name for p in board],
        "labels": [p.label for p in board],
        "games": games.tolist(),
        "score": mean,
        "total": _rated(session, env),
    }


def run_elo(session: Session, run_id: int) -> dict[str, Any]:
    rows = session.execute(
        select(EloPlayer, EloRating)
        .join(EloRating, EloRating.player_id == EloPlayer.id)
        .where(EloPlayer.run_id == run_id, EloPlayer.kind == PlayerKind.checkpoint)
        .order_by(EloPlayer.step)
    ).all()
    points = [
        {"step": p.step, "checkpoint_id": int(p.name), "elo": r.elo, "lo": r.lo, "hi": r.hi, "games": r.games}
        for p, r in rows
    ]
    return {"run_id": run_id, "points": points}


def batch_summary(batches: Iterable[MatchBatch]) -> list[dict[str, Any]]:
    return [{"id": b.id, "games": b.games, "seed": b.seed} for b in batches]


def job_status(session: Session, job_id: int) -> dict[str, Any] | None:
    """A match job's progress for GET /matches/{job_id}: its batches, the games played so far and the
    first player's mean score over them; None if there is no such job."""
    job = session.get(MatchJob, job_id)
    if job is None:
        return None
    batches = session.scalars(
        select(MatchBatch).where(MatchBatch.job_id == job_id).order_by(MatchBatch.id)
    ).all()
    ids = {b.player_a for b in batches} | {b.player_b for b in batches}
    names = dict(session.execute(select(EloPlayer.id, EloPlayer.name).where(EloPlayer.id.in_(ids))).all())
    played, score = session.execute(
        select(func.count(Match.id), func.sum(Match.score_a))
        .join(MatchBatch, Match.batch_id == MatchBatch.id)
        .where(MatchBatch.job_id == job_id)
    ).one()
    done = sum(b.status != BatchStatus.queued for b in batches)
    status = "finished" if job.finished_at is not None else "running" if done else "queued"
    return {
        "job_id": job.id,
        "env": job.env,
        "status": status,
        "batches_pending": len(batches) - done,
        "games": sum(b.games for b in batches),
        "games_played": int(played or 0),
        "score_a": float(score) / played if played else None,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "batches": [
            {
                "id": b.id,
                "a": names.get(b.player_a, "?"),
                "b": names.get(b.player_b, "?"),
                "games": b.games,
                "seed": b.seed,
                "status": b.status,
                "reason": b.reason,
                "seconds": b.seconds,
            }
            for b in batches
        ],
    }
