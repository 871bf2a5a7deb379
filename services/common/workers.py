"""Worker liveness: every worker process beats into `worker_beats`; /healthz counts the fresh beats.

A beat is a row per Celery node (`queue-pid@host`, the name `shoal worker` gives it), refreshed by a
daemon thread, so a train worker whose solo pool is busy training still beats, and the count works on the
embedded broker, which cannot broadcast a ping.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

from celery.signals import worker_ready
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from services.common.db import affected, session_scope
from services.common.models import WorkerBeat, utcnow

log = logging.getLogger(__name__)
BEAT_SECONDS = 5.0
# A worker is live while its last beat is this recent: three missed beats, not one slow commit.
FRESH = timedelta(seconds=3 * BEAT_SECONDS)
FORGET = timedelta(days=1)  # rows of workers gone this long are deleted


def beat(session: Session, name: str, queue: str) -> None:
    now = utcnow()
    if not affected(session, update(WorkerBeat).where(WorkerBeat.name == name).values(beat_at=now)):
        session.add(WorkerBeat(name=name, queue=queue, beat_at=now))
    session.execute(delete(WorkerBeat).where(WorkerBeat.beat_at < now - FORGET))


def live(session: Session, queues: tuple[str, ...]) -> dict[str, int]:
    """Live workers per queue, every queue named (0 where none beats)."""
    rows = session.execute(
        select(WorkerBeat.queue, func.count())
        .where(WorkerBeat.beat_at >= utcnow() - FRESH)
        .group_by(WorkerBeat.queue)
    ).all()
    counts = dict(rows)
    return {queue: counts.get(queue, 0) for queue in queues}


def _beat_forever(name: str, queue: str) -> None:
    while True:
        try:
            with session_scope() as session:
                beat(session, name, queue)
        except Exception as e:  # an outage: /healthz shows the worker missing until the database is back
            log.warning("worker beat: %s: %s", type(e).__name__, e)
        time.sleep(BEAT_SECONDS)


@worker_ready.connect
def _start_beating(sender: Any = None, **_: Any) -> None:
    name = sender.hostname  # "<queue>-<pid>@<host>" (services/cli.py cmd_worker)
    queue = name.split("@", 1)[0].rsplit("-", 1)[0]
    threading.Thread(target=_beat_forever, args=(name, queue), daemon=True, name="worker-beat").start()
