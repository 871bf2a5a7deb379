"""Celery glue for ratings (queue "elo"): rate a new checkpoint, play one batch, refit an environment.

    rate(checkpoint_id, sweep)  -> a job of batches, one `play` task each, on the queue
    play(batch_id)              -> games appended to `matches`; the job's last batch sends `refit`
    refit(env, job_id)          -> `ratings` replaced from the whole log; then a tick of the job's sweep
    replay(run_id, checkpoint)  -> the run's replay GIF: checkpoint playback on the same CPU workers

Each batch is its own task, so adding elo workers adds matches per second. Every worker process plays on
one CPU thread (`torch.set_num_threads(1)`): the policies are small, the games are many, and processes
scale where threads inside one small forward pass do not.

A refused player (corrupt checkpoint, another environment, a deleted file) refuses only its batch, with
the reason recorded on the batch and on the player, and it is not picked again; the other batches go on.
"""

from __future__ import annotations

import logging
import time

import torch
from sqlalchemy.orm import Session

from services.common import artifacts, outbox
from services.common.celery_app import (
    ELO_PLAY_TASK,
    ELO_RATE_TASK,
    ELO_REFIT_TASK,
    REPLAY_TASK,
    SWEEP_TICK_TASK,
    app,
)
from services.common.db import session_scope
from services.common.models import BatchStatus, MatchBatch, MatchJob
from services.common.settings import get_settings
from services.elo import store
from services.elo.match import Refused, code_version, load_player, play
from services.trainer.replay import replay_gif

log = logging.getLogger(__name__)
torch.set_num_threads(1)


def _stage_tick(session: Session, sweep_id: int | None) -> None:
    if sweep_id is not None:
        outbox.stage(session, SWEEP_TICK_TASK, [sweep_id])


@app.task(name=ELO_RATE_TASK, acks_late=True)
def rate(checkpoint_id: int, then_tick_sweep: int | None = None, games: int | None = None) -> int | None:
    """Pick the new checkpoint's opponents and queue its batches; returns the job id. With
    `then_tick_sweep`, that sweep is ticked once the rating is known (or known not to come)."""
    games = games or get_settings().elo_games
    games += games % 2  # seats are paired
    batches: list[MatchBatch]
    with session_scope() as session:
        plan = store.plan_rating(session, checkpoint_id, games, then_tick_sweep=then_tick_sweep)
        if isinstance(plan, str):
            job_id, batches = None, []
            _stage_tick(session, then_tick_sweep)  # the sweep waiting must not wait forever
        else:
            job, batches = plan
            job_id = job.id
            store.enqueue(session, batches)
    outbox.publish()
    if isinstance(plan, str):
        log.warning("not rating checkpoint %s: %s", checkpoint_id, plan)
        return None
    log.info(
        "rating checkpoint %s: job %s, %d batches of %d games", checkpoint_id, job_id, len(batches), games
    )
    return job_id


@app.task(name=ELO_PLAY_TASK, acks_late=True)
def play_batch(batch_id: int) -> str | None:
    """Play one batch and record it; the job's last batch triggers the refit. Returns the status."""
    with session_scope() as session:
        work = store.claim_batch(session, batch_id)
    if work is None:
        log.info("batch %s is not queued (already played?); skipping", batch_id)
        return None
    started = time.perf_counter()
    results, status, reason, refused_player = [], BatchStatus.played, None, None
    try:
        for side, refused in zip("ab", work.refused, strict=True):
            if refused:
                raise Refused(refused, side)
        a = _load(work.source_a, work.env, "a")
        b = _load(work.source_b, work.env, "b")
        results = play(work.env, a, b, work.games, work.seed)
    except Refused as e:
        status, reason = BatchStatus.refused, e.reason
        refused_player = {"a": work.player_a, "b": work.player_b}.get(e.side or "")
        log.warning("batch %s refused: %s", batch_id, e.reason)
    except Exception as e:  # the runner crashed: record it and let the job complete without this batch
        status, reason = BatchStatus.failed, f"exception: {type(e).__name__}: {e}"
        log.exception("batch %s failed", batch_id)
    with session_scope() as session:
        finished = store.record_batch(
            session,
            work,
            status,
            games=results,
            reason=reason,
            refused_player=refused_player,
            seconds=time.perf_counter() - started,
            code_version=code_version(),
        )
        if finished is not None:
            outbox.stage(session, ELO_REFIT_TASK, [work.env, work.job_id])
    if finished is not None:
        outbox.publish()
    return str(status)


def _load(source: str, env: str, side: str):
    try:
        return load_player(source, env, within=artifacts.root())
    except Refused as e:
        raise Refused(e.reason, side) from None


@app.task(name=ELO_REFIT_TASK, acks_late=True)
def refit(env: str, job_id: int | None = None) -> int | None:
    """Refit the env's ratings from the whole log, then tick the job's sweep if it has one.

    Returns the number of players rated, or None when an earlier refit had already covered every game."""
    started = time.perf_counter()
    with session_scope() as session:
        ratings = store.refit(session, env, bootstrap=get_settings().elo_bootstrap)
        job = session.get(MatchJob, job_id) if job_id is not None else None
        sweep_id = job.then_tick_sweep if job is not None else None
        _stage_tick(session, sweep_id)
    if ratings is None:
        log.info("refit %s: skipped, the last fit already covers every game", env)
    else:
        log.info("refit %s: %d players in %.2fs", env, len(ratings), time.perf_counter() - started)
    if sweep_id is not None:
        outbox.publish()
    return None if ratings is None else len(ratings)


@app.task(name=REPLAY_TASK, acks_late=True)
def replay(run_id: int, checkpoint: str) -> None:
    """The GIF of a finished run's last checkpoint playing, for its page. Recorded here rather than by the
    trainer, which would hold its GPU idle meanwhile: the next run starts as soon as the last one ends."""
    try:
        replay_gif(artifacts.absolute(checkpoint), artifacts.run_dir(run_id) / "replay.gif")
    except Exception:  # a replay is a convenience; the run has already succeeded
        log.exception("run %s: could not record the replay GIF", run_id)
