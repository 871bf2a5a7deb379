"""The Celery app shared by every service: queues, routing and delivery guarantees.

Task modules are imported by the worker that serves their queue (see `QUEUE_MODULES`), never here, so
the API can enqueue work by task name without importing torch.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, bootsteps

from services.common.settings import get_settings

# The embedded broker is polled: each hop of a sweep (a trial ends, the sweeper ticks, the next trial
# starts) waits for its worker's next poll, so kombu's one second would idle a GPU for about a second per
# trial. A query every 0.1 s per worker costs nothing beside training. (kombu's SQL transport hands every
# transport option to SQLAlchemy's create_engine, so the interval is set on the consumer's transport.)
EMBEDDED_POLL_SECONDS = 0.1


class _PollEmbeddedBrokerOften(bootsteps.StartStopStep):
    requires = {"celery.worker.consumer.connection:Connection"}

    def start(self, consumer: Any) -> None:
        transport = consumer.connection.transport
        if transport.driver_type == "sql":
            transport.polling_interval = EMBEDDED_POLL_SECONDS


QUEUE_MODULES = {
    "train": ["services.trainer.tasks"],
    "sweeper": ["services.sweeper.tasks"],
    "elo": ["services.elo.tasks"],
}

TRAIN_TASK = "shoal.train"
REAP_TASK = "shoal.reap"
# Elo: rate a new checkpoint, play one batch of games, refit an environment's ratings; and on the same CPU
# workers, record a finished run's replay GIF.
ELO_RATE_TASK = "shoal.elo.rate"
ELO_PLAY_TASK = "shoal.elo.play"
ELO_REFIT_TASK = "shoal.elo.refit"
REPLAY_TASK = "shoal.elo.replay"
SWEEP_TICK_TASK = "shoal.sweeper.tick"


def make_app() -> Celery:
    settings = get_settings()
    app = Celery("shoal", broker=settings.broker_url)
    app.conf.update(
        task_routes={
            "shoal.train": {"queue": "train"},
            "shoal.reap": {"queue": "train"},
            "shoal.sweeper.*": {"queue": "sweeper"},
            "shoal.elo.*": {"queue": "elo"},
        },
        task_default_queue="train",
        # Seconds (soft, then hard) before a task is stopped: a hostile checkpoint (huge shapes) or a stuck
        # fit must not hold an elo or sweeper worker for good. The soft limit raises inside the task, which
        # records the batch as failed. Training has none: a run is stopped by cancellation and heartbeats.
        task_annotations={
            ELO_PLAY_TASK: {"soft_time_limit": 300, "time_limit": 330},
            ELO_RATE_TASK: {"soft_time_limit": 120, "time_limit": 150},
            ELO_REFIT_TASK: {"soft_time_limit": 1800, "time_limit": 1860},
            REPLAY_TASK: {"soft_time_limit": 120, "time_limit": 150},
            SWEEP_TICK_TASK: {"soft_time_limit": 600, "time_limit": 660},
        },
        task_ignore_result=True,
        # A training run must survive its worker: acknowledge only once it ends, and hand the message back
        # if the worker process dies. Duplicate deliveries are harmless: a run is claimed in the database.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        # Redis hands an unacknowledged message to another worker after the visibility timeout. The
        # heartbeat reaper recovers runs that were started; this recovers a run whose message a worker
        # received and died holding, before it claimed it (the run is still queued, nobody else has its
        # message). A long run's own message is handed out again too, and that delivery finds it claimed.
        broker_transport_options={
            "visibility_timeout": settings.broker_visibility_timeout,
            "unacked_restore_interval": 10,
            "unacked_restore_throttle": 1,
            # A broker host that drops packets must fail a connection in seconds, not the OS's minutes.
            "socket_connect_timeout": 5,
        }
        if settings.broker_url.startswith("redis")
        else {},
        worker_hijack_root_logger=False,
    )
    app.steps["consumer"].add(_PollEmbeddedBrokerOften)
    return app


app = make_app()
