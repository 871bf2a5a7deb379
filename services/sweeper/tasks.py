"""Celery glue for sweeps: the tick task, and a periodic tick on the sweeper worker.

A tick follows every trial's end (the trainer sends it), and the sweeper worker also ticks every running
sweep periodically: that drives early stopping, picks up runs the reaper failed, and lets a restarted
sweeper worker carry on where the last one stopped. Run the sweeper queue with one worker process: ticks of
one sweep then never overlap, and on PostgreSQL the row lock guards against a second worker anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
from celery.signals import worker_process_init, worker_ready
from sqlalchemy import select

from services.common import outbox
from services.common.celery_app import ELO_RATE_TASK, SWEEP_TICK_TASK, app
from services.common.db import session_scope
from services.common.models import Sweep, SweepStatus
from services.sweeper.pareto import ParetoSearch
from services.sweeper.tick import tick

log = logging.getLogger(__name__)
TICK_SECONDS = 10.0


@app.task(name=SWEEP_TICK_TASK)
def tick_sweep(sweep_id: int) -> None:
    if _warming is not None:
        # Fits in two threads at once would race on torch's global thread count, which the search pins to
        # one so that a sweep rebuilt anywhere suggests the same next trial.
        _warming.join()
    with session_scope() as session:
        followups = tick(session, sweep_id)  # new trials' runs are staged with them
        for checkpoint_id in followups.ratings:
            outbox.stage(session, ELO_RATE_TASK, [checkpoint_id, sweep_id])
    outbox.publish()


def _ticker() -> None:
    while True:
        try:
            with session_scope() as session:
                running = session.scalars(select(Sweep.id).where(Sweep.status == SweepStatus.running)).all()
            for sweep_id in running:
                tick_sweep(sweep_id)
        except Exception:
            log.exception("periodic sweep tick failed; retrying")
        time.sleep(TICK_SECONDS)


def warm_up() -> float:
    """Fit the search's models once on a tiny problem, in seconds. A process's first fit pays for importing
    torch's optimizer machinery (torch.optim pulls in torch._dynamo) and gpytorch: 2 s on the 2-core dev
    machine, 5.6 s on a GPU machine's image, which the first trial to end would otherwise wait for."""
    started = time.perf_counter()
    search = ParetoSearch({"x": {"distribution": "uniform", "min": 0.0, "max": 1.0}}, cost_param=None)
    for x in np.linspace(0.05, 0.95, search.options.n_init):  # past the design: the models' turn
        search.observe({"x": float(x)}, score=float(x * (1 - x)), cost=1.0)
    search.suggest()
    return time.perf_counter() - started


def _warm_up_logged() -> None:
    try:
        log.info("sweeper warm-up: %.2f s", warm_up())
    except Exception:  # a tick will meet the same fault and report it with its sweep
        log.exception("sweeper warm-up failed")


_warming: threading.Thread | None = None


@worker_process_init.connect
def _start_warm_up(**_: Any) -> threading.Thread:
    """Each pool process ticks on its own, so each warms up, beside its start rather than in it: Celery
    kills a pool process that is not up within worker_proc_alive_timeout (4 s), and a first fit can take
    longer than that on a slow file system. A tick that comes meanwhile waits for it to end."""
    global _warming
    _warming = threading.Thread(target=_warm_up_logged, daemon=True, name="sweeper-warm-up")
    _warming.start()
    return _warming


@worker_ready.connect
def _start_ticker(**_: Any) -> None:
    threading.Thread(target=_ticker, daemon=True, name="sweep-ticker").start()
