"""A random policy's mean episode return, the zero of perf for a Gymnasium environment with a
reward_threshold. Measured once per environment version and cached beside the compiled environments."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from envs_c.pyenvs.recipe import Recipe

EPISODES = 100
MAX_STEPS = 200_000  # an environment whose episodes never end stops the measurement here
SEED = 20_240_915


def cache_dir() -> Path:
    from envs_c.build import cache_dir as env_cache

    return env_cache() / "random_returns"


def random_return(recipe: Recipe, version: str) -> float:
    """The mean return of uniform random actions over EPISODES episodes, from the cache when measured."""
    path = cache_dir() / f"{version}.json"
    try:
        return float(json.loads(path.read_text())["random_return"])
    except (OSError, ValueError, KeyError):
        pass
    value = measure(recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole then renamed, so a concurrent reader sees the old state or the new one, never half.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump({"env": recipe.env_id, "random_return": value, "episodes": EPISODES}, f)
    os.replace(tmp, path)
    return value


def measure(recipe: Recipe) -> float:
    env = recipe.construct()
    try:
        env.action_space.seed(SEED)
        returns: list[float] = []
        total, steps = 0.0, 0
        env.reset(seed=SEED)
        while len(returns) < EPISODES and steps < MAX_STEPS:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            steps += 1
            if terminated or truncated:
                returns.append(total)
                total = 0.0
                env.reset()
        return float(np.mean(returns)) if returns else total
    finally:
        env.close()
