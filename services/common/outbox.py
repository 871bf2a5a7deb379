"""A transactional outbox: tasks are staged in the transaction that creates their work, and sent after.

`stage` adds a row beside the run, batch or checkpoint that needs the task, so both commit or neither
does. `publish` then sends what is staged and deletes what the broker took; it never raises, so a broker
that is down delays work and never fails the request or the training step that created it. Every worker
process runs a relay that sends whatever is left every few seconds. A message sent twice (the broker took
it, the delete did not commit) is harmless: every task first claims its row conditionally.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery.signals import worker_ready
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.common import celery_app
from services.common.db import session_scope
from services.common.models import OutboxMessage

log = logging.getLogger(__name__)
RELAY_SECONDS = 2.0
BATCH = 500


def stage(session: Session, task: str, args: list[Any]) -> None:
    """Record `task(*args)` to be sent once the caller's transaction commits."""
    session.add(OutboxMessage(task=task, args=args))


def deliver(session: Session, limit: int = BATCH) -> int:
    """Send up to `limit` staged tasks, oldest first, and commit; stops at the first the broker refuses.
    Returns how many were sent. Rows another relay is sending are skipped (PostgreSQL)."""
    rows = session.scalars(
        select(OutboxMessage).order_by(OutboxMessage.id).limit(limit).with_for_update(skip_locked=True)
    ).all()
    sent: list[int] = []
    try:
        if rows:
            # One try, no retries: the relay is the retry, and a request must not wait on a dead broker
            # (a plain send_task retries connecting for seconds). Connections come from the app's pool:
            # opening one per request cost more CPU than the rest of POST /runs.
            with celery_app.app.pool.acquire(block=True) as connection:
                try:
                    connection.ensure_connection(max_retries=0)
                    for row in rows:
                        celery_app.app.send_task(row.task, args=row.args, connection=connection, retry=False)
                        sent.append(row.id)
                except Exception:
                    connection.collect()  # a broken connection goes back to the pool closed, and reconnects
                    raise
    finally:
        if sent:
            session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(sent)))
        session.commit()
    return len(sent)


def publish(session: Session | None = None) -> int:
    """`deliver`, logging instead of raising: what is not sent now stays staged for the relay."""
    try:
        if session is not None:
            return deliver(session)
        with session_scope() as own:
            return deliver(own)
    except Exception as e:
        log.warning("outbox: not sent now, the relay will retry: %s: %s", type(e).__name__, e)
        if session is not None:
            session.rollback()
        return 0


def _relay(period: float) -> None:
    while True:
        time.sleep(period)
        while publish() == BATCH:
            pass


@worker_ready.connect
def _start_relay(**_: Any) -> None:
    threading.Thread(target=_relay, args=(RELAY_SECONDS,), daemon=True, name="outbox-relay").start()
