"""Watch a checkpoint play: a GIF drawn by the environment's own headless renderer.

Curves hide bugs that one look at the agent reveals (a paddle that never moves, a snake circling forever).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import envs_c
from envs_c.gif import record, write_gif
from services.trainer.checkpoint import load_policy


def checkpoint_stem(path: Path) -> Path:
    """Accept a checkpoint's stem or either of its files."""
    for suffix in (".trainer.safetensors", ".trainer.json", ".safetensors", ".json"):
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path


@torch.no_grad()
def replay_gif(checkpoint: Path, out: Path, frames: int = 300, fps: float = 30.0, seed: int = 0) -> Path:
    """Play the checkpoint's greedy policy in one environment (a game's other seat is the built-in bot if
    it was trained against it) and write `frames` rendered frames to `out`."""
    policy, meta = load_policy(checkpoint_stem(checkpoint))
    env = envs_c.make(meta["env"], 1, seed=seed, **meta.get("env_config", {}))
    try:
        env.reset()
        state = policy.initial_state(env.num_agents, "cpu")

        def act(obs: np.ndarray) -> np.ndarray:
            nonlocal state
            params, _, state = policy(torch.from_numpy(obs), state)
            if state is not None:
                done = torch.from_numpy((env.terminals | env.truncations).astype(np.float32)).unsqueeze(-1)
                state = tuple(s * (1 - done) for s in state)
            return policy.env_actions(policy.sample(params, deterministic=True)).numpy()

        return write_gif(record(env, act, frames), out, fps)
    finally:
        env.close()
