"""Why a run ended without succeeding. Its own module so the trainer's pure core can name a failure
without importing the ORM."""

from __future__ import annotations

from enum import StrEnum


class FailureKind(StrEnum):
    """The kind of a run's failure, for code to branch on; `Run.failure_reason` says it for people."""

    nan_loss = "nan_loss"
    crash = "crash"
    worker_lost = "worker_lost"
    invalid_config = "invalid_config"
    cancelled = "cancelled"
