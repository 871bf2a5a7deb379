"""A trainer process's warm-up: a few updates of a tiny run on its GPU before it takes the first real run.

A fresh process pays once for the CUDA context, the cuBLAS handle, loading each kernel on its first call
(CUDA loads modules lazily), the graph pools and torch's own first-call caches: on an H100 the first
breakout trial of a worker took 2.3 s longer than the next ones (bench/data/throughput_h100.json). Paid
here, at start-up, no run waits for it and no sweep's cost model sees it as that run's cost.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from services.common.config import resolve
from services.trainer.loop import Discard, train

log = logging.getLogger(__name__)
# Two updates with CUDA graphs and a short evaluation: every kernel family a PPO run calls, in seconds.
WARM_UP = {
    "train": {
        "num_envs": 256,
        "num_steps": 32,
        "minibatch_size": 4096,
        "total_timesteps": 2 * 256 * 32,
        "eval_episodes": 4,
    }
}


def warm_up(device: str, env: str = "cartpole") -> str:
    """Train `env` for two updates on `device` in a scratch directory. Its outcome, for the log: a warm-up
    that fails costs only the speed it was for, so the worker takes runs either way."""
    started = time.perf_counter()
    try:
        config = resolve(env, {"train": {**WARM_UP["train"], "device": device}})
        with tempfile.TemporaryDirectory(prefix="shoal-warm-up-") as scratch:
            outcome = train(env, config, 0, Path(scratch), Discard()).status
    except Exception as e:  # the worker's runs will meet the same fault and record it
        outcome = f"failed: {e}"
    outcome = f"warm-up on {device}: {outcome} in {time.perf_counter() - started:.2f} s"
    log.info(outcome)
    return outcome
