"""Environment specs as Gymnasium spaces, plus the version hash that travels with checkpoints."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from envs_c.registry import ENVS, EnvDef

HERE = Path(__file__).resolve().parent


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
        }


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


@cache
def version(name: str) -> str:
    """Hash of the C sources an environment is compiled from: the contract header and its own."""
    env = ENVS[name]
    digest = hashlib.sha256()
    for header in ("env.h", env.header):
        digest.update((HERE / header).read_bytes())
    return digest.hexdigest()[:16]


def lookup(name: str) -> EnvDef:
    try:
        return ENVS[name]
    except KeyError:
        raise ValueError(f"unknown environment {name!r}; known: {', '.join(sorted(ENVS))}") from None


def make_spec(name: str, **kwargs: Any) -> EnvSpec:
    env = lookup(name)
    config = env.config(kwargs)
    act = env.action
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
        version=version(name),
    )
