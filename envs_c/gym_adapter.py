"""A thin adapter from VecEnv to Gymnasium's vector-env API, for tools that expect Gymnasium.

Every agent is one Gymnasium sub-environment, so `num_envs` here is the VecEnv's `num_agents`. Episodes
reset inside the step that ends them (Gymnasium's SAME_STEP autoreset mode): the observation returned with
terminated/truncated already belongs to the next episode. Arrays are copies, as Gymnasium callers expect.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs_c.vector import VecEnv


class GymnasiumVecEnv(VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": ["rgb_array"]}

    def __init__(self, name: str, num_envs: int, seed: int = 0, **kwargs: Any):
        self.env = VecEnv(name, num_envs, seed=seed, **kwargs)
        self.num_envs = self.env.num_agents
        self.single_observation_space = self.env.spec.observation_space
        self.single_action_space = self.env.spec.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.render_mode = "rgb_array"

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            self.single_action_space.seed(seed)
            self.action_space.seed(seed)
        return self.env.reset(seed).copy(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, rewards, terminals, truncations = self.env.step(actions)
        info: dict[str, Any] = {}
        log = self.env.log()
        if log:
            info["log"] = log
        return obs.copy(), rewards.copy(), terminals.astype(bool), truncations.astype(bool), info

    # The first environment's frame, where Gymnasium's signature has a tuple of every sub-environment's.
    def render(self) -> np.ndarray:  # type: ignore[override]
        return self.env.render(0)

    def close_extras(self, **kwargs: Any) -> None:
        self.env.close()
