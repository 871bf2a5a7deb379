"""Environment specs as Gymnasium spaces, plus the version hash that travels with checkpoints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces

from envs_c.registry import EnvDef, lookup


@dataclass(frozen=True)
class EnvSpec:
    name: str
    config: dict[str, int | float]
    observation_space: spaces.Box
    action_space: spaces.Discrete | spaces.MultiDiscrete | spaces.Box
    agents_per_env: int
    players: tuple[tuple[int, ...], ...] | None
    perf: str
    solved: float
    version: str
    definition: EnvDef = field(repr=False, compare=False)  # or a PyEnvDef, which reads the same

    @property
    def source(self) -> str:
        """Where the environment comes from: "built-in", or the path of its spec file."""
        return self.definition.source

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description, stored in checkpoint metadata and served by GET /envs."""
        obs = self.observation_space
        act = self.action_space
        if isinstance(act, spaces.Discrete):
            action = {"kind": "discrete", "n": int(act.n)}
        elif isinstance(act, spaces.MultiDiscrete):
            action = {"kind": "multidiscrete", "nvec": [int(n) for n in act.nvec]}
        else:
            action = {
                "kind": "continuous",
                "shape": list(act.shape),
                "low": float(act.low.min()),
                "high": float(act.high.max()),
            }
        return {
            "name": self.name,
            "config": self.config,
            "observation": {
                "shape": list(obs.shape),
                "dtype": str(obs.dtype),
                "low": _finite_or_none(obs.low.min()),
                "high": _finite_or_none(obs.high.max()),
            },
            "action": action,
            "agents_per_env": self.agents_per_env,
            "players": [list(p) for p in self.players] if self.players else None,
            "perf": self.perf,
            "solved": self.solved,
            "version": self.version,
            "source": self.source,
        }


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def version(name: str) -> str:
    """Hash of the environment's headers and spec (read now: a user may have edited them since)."""
    return lookup(name).version()


def make_spec(name: str, **kwargs: Any) -> EnvSpec:
    env = lookup(name)
    config = env.config(kwargs)
    act = env.action
    action_space: spaces.Discrete | spaces.MultiDiscrete | spaces.Box
    if act.kind == "discrete":
        action_space = spaces.Discrete(act.nvec[0])
    elif act.kind == "multidiscrete":
        action_space = spaces.MultiDiscrete(np.array(act.nvec))
    else:
        action_space = spaces.Box(act.low, act.high, shape=(act.size,), dtype=np.float32)
    return EnvSpec(
        name=name,
        config=config,
        observation_space=spaces.Box(
            env.obs_low, env.obs_high, shape=env.obs_shape, dtype=np.dtype(env.obs_dtype)
        ),
        action_space=action_space,
        agents_per_env=env.agents_per_env(config),
        players=env.players(config) if env.players else None,
        perf=env.perf,
        solved=env.solved,
        version=env.version(),
        definition=env,
    )
