"""The vector environment: numpy buffers shared zero-copy with one batched C loop."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from envs_c._binding import ffi, lib
from envs_c.registry import ENVS
from envs_c.spec import EnvSpec, make_spec

MAX_AGENTS = 1 << 22


class VecEnv:
    """`num_envs` copies of one C environment stepped together.

    Every buffer has `num_agents` rows. `step` returns views of the shared buffers: they are overwritten by
    the next step, so copy what must outlive it. With `num_threads > 1` the batch is split into contiguous
    shards stepped on threads; cffi releases the GIL around each C call.
    """

    def __init__(self, name: str, num_envs: int, seed: int = 0, num_threads: int = 1, **kwargs: Any):
        self.spec: EnvSpec = make_spec(name, **kwargs)
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
        self.num_envs = num_envs
        self.num_agents = num_envs * self.spec.agents_per_env
        if self.num_agents > MAX_AGENTS:
            raise ValueError(f"num_envs={num_envs} gives {self.num_agents} agents; at most {MAX_AGENTS}")
        self.seed = int(seed)
        env = ENVS[name]
        self._name = name
        self._log_fields = env.log_fields
        self._action_width = env.action.width

        obs = self.spec.observation_space
        self.observations = np.zeros((self.num_agents, *obs.shape), dtype=obs.dtype)
        action_shape = (self.num_agents,) if env.action.kind == "discrete" else (self.num_agents, env.action.width)
        self.actions = np.zeros(action_shape, dtype=env.action.dtype)
        self.rewards = np.zeros(self.num_agents, dtype=np.float32)
        self.terminals = np.zeros(self.num_agents, dtype=np.uint8)
        self.truncations = np.zeros(self.num_agents, dtype=np.uint8)
        self._log = np.zeros(len(env.log_fields), dtype=np.float32)

        self._envs = ffi.new(f"{env.struct}[]", num_envs)
        for i in range(num_envs):
            for key, value in self.spec.config.items():
                setattr(self._envs[i], key, value)
        self._fn = {op: getattr(lib, f"{name}_{op}") for op in ("vec_init", "vec_reset", "vec_step", "vec_log", "vec_close", "render")}
        status = self._fn["vec_init"](
            self._envs,
            num_envs,
            self.spec.agents_per_env,
            int(np.prod(obs.shape)),
            self._action_width,
            ffi.from_buffer(self.observations),
            ffi.from_buffer(self.actions),
            ffi.from_buffer("float[]", self.rewards),
            ffi.from_buffer("uint8_t[]", self.terminals),
            ffi.from_buffer("uint8_t[]", self.truncations),
            self.seed & 0xFFFFFFFFFFFFFFFF,
        )
        if status != 0:
            raise RuntimeError(f"{name}: the C environment disagrees with its registry entry about buffer sizes")
        self._render_shape = (getattr(lib, f"{name.upper()}_RENDER_H"), getattr(lib, f"{name.upper()}_RENDER_W"), 3)
        self._shards = _shards(num_envs, num_threads)
        self._pool = ThreadPoolExecutor(len(self._shards)) if len(self._shards) > 1 else None
        self._closed = False

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self.seed = int(seed)
        self._fn["vec_reset"](self._envs, self.num_envs, self.seed & 0xFFFFFFFFFFFFFFFF)
        return self.observations

    def step(self, actions: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Write `actions` into the action buffer (None: it was already written in place) and step."""
        if actions is not None and actions is not self.actions:
            self._write_actions(actions)
        step = self._fn["vec_step"]
        if self._pool is None:
            step(self._envs, 0, self.num_envs)
        else:
            list(self._pool.map(lambda shard: step(self._envs, *shard), self._shards))
        return self.observations, self.rewards, self.terminals, self.truncations

    def _write_actions(self, actions: Any) -> None:
        actions = np.asarray(actions)
        if actions.shape != self.actions.shape:
            raise ValueError(f"{self._name}: actions must have shape {self.actions.shape}, got {actions.shape}")
        try:
            np.copyto(self.actions, actions, casting="same_kind")
        except TypeError:
            raise ValueError(
                f"{self._name}: actions must be {self.actions.dtype}-compatible, got {actions.dtype}"
            ) from None

    def log(self) -> dict[str, float]:
        """Averages of every Log field over the episodes that ended since the last call; {} if none."""
        self._fn["vec_log"](self._envs, self.num_envs, ffi.from_buffer("float[]", self._log))
        episodes = float(self._log[-1])
        if episodes == 0:
            return {}
        out = {key: float(v) / episodes for key, v in zip(self._log_fields[:-1], self._log[:-1], strict=True)}
        out["n"] = episodes
        return out

    def render(self, index: int = 0) -> np.ndarray:
        """An RGB frame (H, W, 3) of environment `index`, drawn headless into a uint8 buffer."""
        if not 0 <= index < self.num_envs:
            raise ValueError(f"render index must be in [0, {self.num_envs}), got {index}")
        frame = np.zeros(self._render_shape, dtype=np.uint8)
        self._fn["render"](ffi.addressof(self._envs[index]), ffi.from_buffer("uint8_t[]", frame))
        return frame

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._fn["vec_close"](self._envs, self.num_envs)
        if self._pool is not None:
            self._pool.shutdown()

    def __enter__(self) -> VecEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shards(num_envs: int, num_threads: int) -> list[tuple[int, int]]:
    bounds = np.linspace(0, num_envs, min(num_threads, num_envs) + 1).astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
