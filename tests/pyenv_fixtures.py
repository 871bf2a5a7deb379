"""Small Python environments for tests/test_python_envs.py, importable by the environment worker processes.

Importing this module registers Gymnasium ids, so `gymnasium:tests.pyenv_fixtures:Dict-v0` names one (when
SHOAL_PYTHON_ENVS allows it). With SHOAL_TEST_IMPORT_MARKER set, an import writes that file: a test shows
that an id off the allowlist never imports its module.
"""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium
import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

if os.environ.get("SHOAL_TEST_IMPORT_MARKER"):
    Path(os.environ["SHOAL_TEST_IMPORT_MARKER"]).write_text("imported")


class DictEnv(gymnasium.Env):
    """A Dict observation (a Box and a Discrete, nested with a Tuple) and a MultiDiscrete action.

    The episode lasts `length` steps; the reward is 1 when the action equals the target in the observation,
    so a policy that reads its flattened observation can score `length` per episode."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, length: int = 5, render_mode: str | None = None):
        self.length = length
        self.render_mode = render_mode
        self.observation_space = spaces.Dict(
            {
                "target": spaces.Tuple((spaces.Discrete(3), spaces.Discrete(4))),
                "time": spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32),
            }
        )
        self.action_space = spaces.MultiDiscrete([3, 4])

    def _obs(self) -> dict:
        return {
            "target": tuple(int(x) for x in self.target),
            "time": np.array([self.t / self.length], np.float32),
        }

    def reset(self, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        self.target = self.np_random.integers(0, [3, 4])
        return self._obs(), {}

    def step(self, action):
        assert self.action_space.contains(np.asarray(action)), action
        reward = float(np.array_equal(np.asarray(action), self.target))
        self.t += 1
        self.target = self.np_random.integers(0, [3, 4])
        return self._obs(), reward, False, self.t >= self.length, {}

    def render(self):
        return np.full((8, 8, 3), 40 * self.t, dtype=np.uint8)


class RaisingEnv(gymnasium.Env):
    """Raises inside step after `after` steps, as a buggy user environment would."""

    def __init__(self, after: int = 3):
        self.after = after
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)

    def reset(self, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        if self.t > self.after:
            raise ValueError(f"the pole fell through the floor at step {self.t}")
        return np.zeros(2, np.float32), 0.0, False, False, {}


class Crowd(ParallelEnv):
    """A PettingZoo ParallelEnv: three agents, each rewarded for choosing its own index; `agent_2` leaves
    after one step, so some rows end before the episode does."""

    metadata = {"name": "crowd_v0", "render_modes": []}

    def __init__(self, length: int = 4):
        self.length = length
        self.possible_agents = ["agent_0", "agent_1", "agent_2"]

    def observation_space(self, agent: str) -> spaces.Space:
        return spaces.Box(0.0, 10.0, shape=(2,), dtype=np.float32)

    def action_space(self, agent: str) -> spaces.Space:
        return spaces.Discrete(3)

    def _obs(self) -> dict:
        return {a: np.array([self.possible_agents.index(a), self.t], np.float32) for a in self.agents}

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.agents = list(self.possible_agents)
        self.t = 0
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions: dict):
        assert set(actions) == set(self.agents), (actions, self.agents)
        self.t += 1
        rewards = {a: float(actions[a] == self.possible_agents.index(a)) for a in self.agents}
        over = self.t >= self.length
        terminations = {a: over or a == "agent_2" for a in self.agents}
        truncations = dict.fromkeys(self.agents, False)
        obs = self._obs()
        self.agents = [a for a in self.agents if not terminations[a]]
        return obs, rewards, terminations, truncations, {a: {} for a in obs}


def parallel_env(**kwargs) -> Crowd:
    return Crowd(**kwargs)


gymnasium.register("Dict-v0", entry_point=DictEnv, reward_threshold=5.0)
gymnasium.register("Raising-v0", entry_point=RaisingEnv)
gymnasium.register("NoThreshold-v0", entry_point=RaisingEnv, kwargs={"after": 10**9})
