"""The vector environment: numpy buffers shared zero-copy with one batched C loop."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Self

import numpy as np

from envs_c.build import load
from envs_c.spec import EnvSpec, make_spec

MAX_AGENTS = 1 << 22


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity where the platform has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def count_agents(num_envs: Any, num_threads: Any, agents_per_env: int) -> int:
    """The agents of a batch of `num_envs` environments; ValueError naming the count that is not a positive
    integer, or a batch past MAX_AGENTS."""
    for option, value in (("num_envs", num_envs), ("num_threads", num_threads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{option} must be a positive integer, got {value!r}")
    agents = num_envs * agents_per_env
    if agents > MAX_AGENTS:
        raise ValueError(f"num_envs={num_envs} gives {agents} agents; at most {MAX_AGENTS}")
    return agents


def log_means(fields: Sequence[str], totals: np.ndarray) -> dict[str, float]:
    """A summed Log (`totals`, a value per name in `fields`, episodes last) as per-episode averages, with
    n the number of episodes; {} if none ended."""
    episodes = float(totals[-1])
    if episodes == 0:
        return {}
    out = {key: float(v) / episodes for key, v in zip(fields[:-1], totals[:-1], strict=True)}
    out["n"] = episodes
    return out


def env_indices(envs: Sequence[int] | np.ndarray, num_envs: int, what: str) -> np.ndarray:
    """`envs` as int32 indices of a batch of `num_envs`; ValueError naming `what` for one out of range (the
    C loops index with them unchecked)."""
    index = np.asarray(envs).reshape(-1)
    if len(index) and (index.dtype.kind not in "iu" or index.min() < 0 or index.max() >= num_envs):
        raise ValueError(f"{what}: env indices must be integers in [0, {num_envs})")
    return np.ascontiguousarray(index, dtype=np.int32)


@dataclass(eq=False)
class Seats:
    """Self-play's view of a batch of two-player games: the learner's rows and the other seat's, `seat_agents`
    per environment in environment order, and per environment the learner's seat, whether the scripted bot
    plays the other seat, the learner's return in the game under way and whether the last step ended its game.
    `seated` steps a batch through it."""

    seat: np.ndarray  # uint8 (num_envs,)
    bot: np.ndarray  # uint8 (num_envs,)
    actions: np.ndarray  # the learner's, like the batch's actions
    their_actions: np.ndarray
    observations: np.ndarray  # the learner's, like the batch's observations
    their_observations: np.ndarray
    rewards: np.ndarray  # float32, the learner's
    terminals: np.ndarray  # uint8
    truncations: np.ndarray  # uint8
    returns: np.ndarray  # float64 (num_envs,)
    ended: np.ndarray  # uint8 (num_envs,)


def seat_rows(spec: EnvSpec) -> np.ndarray:
    """A two-player game's seats as int32 rows of its environment, (2, agents per seat); ValueError for an
    environment without two seats of equal size."""
    players = spec.players
    if players is None or len(players) != 2 or len(players[0]) != len(players[1]):
        raise ValueError(
            f"{spec.name}: self-play needs two seats of equal size in the action buffer (opponent=1)"
        )
    rows = np.array(players, dtype=np.int32)
    if rows.min() < 0 or rows.max() >= spec.agents_per_env or len(np.unique(rows)) != rows.size:
        raise ValueError(f"{spec.name}: its seats must be distinct agents in [0, {spec.agents_per_env})")
    return rows


# The Seats buffers that hold one value per environment, with their dtypes; the others hold seat rows.
_PER_ENV = {"seat": np.uint8, "bot": np.uint8, "returns": np.float64, "ended": np.uint8}
# The seat-row buffers shaped like one of the batch's own; the rest are like the batch's buffer of their name.
_LIKE = {
    "actions": "actions",
    "their_actions": "actions",
    "observations": "observations",
    "their_observations": "observations",
}


def _seat_layout(env: VecEnvBase) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Every Seats buffer's shape and dtype for `env`'s batch; ValueError for a game without two seats."""
    rows = env.num_envs * seat_rows(env.spec).shape[1]
    layout: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    for field in fields(Seats):
        if field.name in _PER_ENV:
            layout[field.name] = (env.num_envs,), np.dtype(_PER_ENV[field.name])
        else:
            like = getattr(env, _LIKE.get(field.name, field.name))
            layout[field.name] = (rows, *like.shape[1:]), like.dtype
    return layout


def allocate_seats(
    env: VecEnvBase,
    mine: Callable[[tuple[int, ...], np.dtype], np.ndarray] | None = None,
    theirs: Callable[[tuple[int, ...], np.dtype], np.ndarray] | None = None,
) -> Seats:
    """Zeroed Seats for `env`'s batch: the learner's rows from `mine(shape, dtype)`, the other seat's from
    `theirs` (a trainer passes page-locked allocators), the per-environment values from np.zeros."""
    alloc = {"their_actions": theirs, "their_observations": theirs}
    buffers = {}
    for name, (shape, dtype) in _seat_layout(env).items():
        make = np.zeros if name in _PER_ENV else (alloc.get(name, mine) or np.zeros)
        buffers[name] = make(shape, dtype)
    return Seats(**buffers)


def check_seats(env: VecEnvBase, seats: Seats) -> None:
    """The C step trusts every size: refuse a buffer of another shape or dtype, naming it."""
    for name, (shape, dtype) in _seat_layout(env).items():
        a = getattr(seats, name)
        if not (type(a) is np.ndarray and a.shape == shape and a.dtype == dtype and a.flags.c_contiguous):
            raise ValueError(f"seats.{name} must be a C-contiguous {dtype} array of shape {shape}")
        if not a.flags.writeable:
            raise ValueError(f"seats.{name} must be writeable")


class VecEnvBase:
    """What the C environments' VecEnv and the Python environments' PyVecEnv (envs_c/pyenvs/vector.py)
    share: the constructor's arguments and their checks, and closing by leaving the `with` block or when
    collected while still open."""

    _closed: bool
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    truncations: np.ndarray

    def __init__(
        self,
        name: str,
        num_envs: int,
        seed: int = 0,
        num_threads: int = 1,
        allocate: Callable[[tuple[int, ...], np.dtype], np.ndarray] | None = None,
        **kwargs: Any,
    ):
        """`allocate(shape, dtype)` returns a zeroed C-contiguous array for each shared buffer (default
        np.zeros): a trainer passes one that hands out page-locked memory, so the C loop writes straight
        into memory the GPU can copy from asynchronously."""
        self.spec: EnvSpec = make_spec(name, **kwargs)
        self._name = name
        self.num_envs = num_envs
        self.num_agents = count_agents(num_envs, num_threads, self.spec.agents_per_env)
        self.seed = int(seed)
        self.log_fields = self.spec.definition.log_fields
        self._int_actions = self.spec.definition.action.kind != "continuous"
        self._open(min(num_threads, num_envs), allocate)

    def _open(self, threads: int, allocate: Callable[[tuple[int, ...], np.dtype], np.ndarray] | None) -> None:
        """Start the batch's environments, stepped by `threads` threads or processes (at most one each)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __del__(self) -> None:
        if getattr(self, "_closed", True) is False:
            self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VecEnv(VecEnvBase):
    """`num_envs` copies of one C environment stepped together.

    Every buffer has `num_agents` rows. `step` returns views of the shared buffers: they are overwritten by
    the next step, so copy what must outlive it. With `num_threads > 1` the batch is split into contiguous
    shards stepped by a persistent C thread pool (envs_c/pool.h): one cffi call per step, which releases the
    GIL once, instead of a Python executor whose per-step overhead outweighs a step of cheap environments.
    """

    def _open(self, threads: int, allocate: Callable[[tuple[int, ...], np.dtype], np.ndarray] | None) -> None:
        name, num_envs, env = self._name, self.num_envs, self.spec.definition
        module = load(name)  # compiled on first use; EnvBuildError carries the compiler's message
        ffi, lib = module.ffi, module.lib
        self._ffi = ffi
        self._action_width = env.action.width

        obs = self.spec.observation_space
        self._allocate(_checked(allocate) if allocate is not None else _zeros)
        self._envs = ffi.new(f"{env.struct}[]", num_envs)
        for i in range(num_envs):
            for key, value in self.spec.config.items():
                setattr(self._envs[i], key, value)
        ops = ("vec_init", "vec_reset", "vec_step", "vec_log", "vec_log_some", "vec_close", "render")
        self._fn = {op: getattr(lib, f"{name}_{op}") for op in ops}
        self._check_sizes(lib, obs)
        self._init_c(ffi)
        self._render_shape = (
            getattr(lib, f"{name.upper()}_RENDER_H"),
            getattr(lib, f"{name.upper()}_RENDER_W"),
            3,
        )
        self._actions_ptr = ffi.from_buffer(self.actions)
        self._start_stepping(ffi, lib, threads)
        self._closed = False

    def _allocate(self, alloc: Callable[[tuple[int, ...], np.dtype], np.ndarray]) -> None:
        """The buffers the C code writes into and reads from, shared with the caller."""
        env, obs = self.spec.definition, self.spec.observation_space
        self.observations = alloc((self.num_agents, *obs.shape), np.dtype(obs.dtype))
        action_shape = (
            (self.num_agents,) if env.action.kind == "discrete" else (self.num_agents, env.action.width)
        )
        self.actions = alloc(action_shape, np.dtype(env.action.dtype))
        self.rewards = alloc((self.num_agents,), np.dtype(np.float32))
        self.terminals = alloc((self.num_agents,), np.dtype(np.uint8))
        self.truncations = alloc((self.num_agents,), np.dtype(np.uint8))
        self._log = np.zeros(len(env.log_fields), dtype=np.float32)

    def _init_c(self, ffi: Any) -> None:
        status = self._fn["vec_init"](
            self._envs,
            self.num_envs,
            self.spec.agents_per_env,
            int(np.prod(self.spec.observation_space.shape)),
            self._action_width,
            ffi.from_buffer(self.observations),
            ffi.from_buffer(self.actions),
            ffi.from_buffer("float[]", self.rewards),
            ffi.from_buffer("uint8_t[]", self.terminals),
            ffi.from_buffer("uint8_t[]", self.truncations),
            self.seed & 0xFFFFFFFFFFFFFFFF,
        )
        if status != 0:  # _check_sizes passed for environment 0: another one differs
            raise RuntimeError(f"{self._name}: the C environments of one batch disagree about buffer sizes")

    def _start_stepping(self, ffi: Any, lib: Any, threads: int) -> None:
        """The C step call and its arguments: one environment loop, or a thread pool over shards."""
        name, num_envs = self._name, self.num_envs
        self._pool = None
        if threads > 1:
            pool = lib.shoal_pool_new(threads)
            if pool == ffi.NULL:
                raise RuntimeError(f"could not start {threads} threads")
            self._pool = ffi.gc(pool, lib.shoal_pool_free)
            self._step_any = ffi.addressof(lib, f"{name}_vec_step_any")
        self._pool_step = lib.shoal_pool_step
        self._scripted_some = ffi.addressof(lib, f"{name}_vec_scripted_some")
        self._pool_run = lib.shoal_pool_run
        self._seats_fn = ffi.addressof(lib, f"{name}_vec_seats")
        self._all = np.arange(num_envs, dtype=np.int32)
        self._from_buffer = ffi.from_buffer
        self._act_dtype = self.actions.dtype
        self._act_shape = self.actions.shape
        self._result = (self.observations, self.rewards, self.terminals, self.truncations)
        # The arguments of the C step call: its signature depends on whether a pool steps the shards.
        self._step_args: tuple[Any, ...]
        if self._pool is None:
            self._step_call, self._step_args = self._fn["vec_step"], (self._envs, 0, num_envs)
        else:
            self._step_call = lib.shoal_pool_run
            self._step_args = (self._pool, self._step_any, self._envs, num_envs)
        self._row_bytes = self.actions.nbytes // num_envs
        self._copy_step_args: tuple[Any, ...] = (
            self._pool if self._pool is not None else ffi.NULL,
            ffi.addressof(lib, f"{name}_vec_step_any"),
            self._envs,
            num_envs,
            self._actions_ptr,
        )

    def _check_sizes(self, lib: Any, obs: Any) -> None:
        """Compare what the C code will write (configured environment 0) with the buffers the spec sized,
        so a spec that disagrees with its header fails here, naming the size, not later out of bounds."""
        sizes = self._ffi.new("int[5]")
        getattr(lib, f"{self._name}_vec_sizes")(self._envs, sizes)
        agents, obs_size, act_size, obs_bytes, act_bytes = sizes
        expected = (
            ("agents per environment", agents, self.spec.agents_per_env),
            ("observation size", obs_size, int(np.prod(obs.shape))),
            ("action width", act_size, self._action_width),
            ("observation element bytes", obs_bytes, self.observations.itemsize),
            ("action element bytes", act_bytes, self.actions.itemsize),
        )
        for what, got, want in expected:
            if got != want:
                raise RuntimeError(
                    f"{self._name}: the C code reports {what} {got}, its spec file gives {want} "
                    f"({self.spec.source})"
                )

    def _check_open(self, what: str) -> None:
        # C state is freed by close (snake's arenas, say): touching it afterwards must fail in Python.
        if self._closed:
            raise RuntimeError(f"{self._name}: {what} after close")

    def reset(self, seed: int | None = None) -> np.ndarray:
        self._check_open("reset")
        if seed is not None:
            self.seed = int(seed)
        self._fn["vec_reset"](self._envs, self.num_envs, self.seed & 0xFFFFFFFFFFFFFFFF)
        return self.observations

    def reset_env(self, index: int, seed: int) -> None:
        """Restart environment `index` alone, exactly as environment 0 of a one-env VecEnv seeded with
        `seed` starts: lets paired games (a rated match with seats swapped) begin from the same position."""
        self._check_open("reset_env")
        if not 0 <= index < self.num_envs:
            raise ValueError(f"env index must be in [0, {self.num_envs}), got {index}")
        self._fn["vec_reset"](self._envs + index, 1, int(seed) & 0xFFFFFFFFFFFFFFFF)

    def step(self, actions: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Write `actions` into the action buffer (None: it was already written in place) and step.

        This is the hot path. The common case (a C-contiguous ndarray of the right dtype and shape) is one
        cffi call that copies the rows in C and steps, on the thread pool when there is one: each thread
        copies the rows of the environments it steps. Everything else goes through `_write_actions`, which
        converts or refuses, and then steps.
        """
        if self._closed:
            raise RuntimeError(f"{self._name}: step after close")
        if actions is None or actions is self.actions:
            self._step_call(*self._step_args)
        elif (
            type(actions) is np.ndarray
            and actions.dtype == self._act_dtype
            and actions.shape == self._act_shape
            and actions.flags.c_contiguous
            and actions.base is not self.actions
        ):
            self._pool_step(*self._copy_step_args, self._from_buffer(actions), self._row_bytes)
        else:
            self._write_actions(actions)
            self._step_call(*self._step_args)
        return self._result

    def _write_actions(self, actions: Any) -> None:
        write_actions(self._name, self.actions, actions, self._int_actions)

    def scripted_actions(self, envs: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """The C heuristic policy's actions for the current state of environments `envs` (all of them by
        default), their agents' rows in that order, typed like `actions`; computed on the thread pool.

        Games write a move for every seat (the seat not to move gets 0); callers take the rows they need.
        """
        self._check_open("scripted_actions")
        index = self._all if envs is None else env_indices(envs, self.num_envs, "scripted_actions")
        out = np.zeros((len(index) * self.spec.agents_per_env, *self.actions.shape[1:]), self.actions.dtype)
        ffi = self._ffi
        job = ffi.new("ShoalSubset*", {"envs": self._envs, "index": ffi.from_buffer("int32_t[]", index)})
        job.out = ffi.from_buffer(out)
        pool = self._pool if self._pool is not None else ffi.NULL
        self._pool_step(pool, self._scripted_some, job, len(index), ffi.NULL, ffi.NULL, 0)
        return out

    def seated(self, seats: Seats) -> _SeatedStep:
        """Self-play's step through `seats` (ValueError for a buffer of another shape or dtype, or a game
        without two seats): `advance(True)` writes the learner's actions, the other seat's (or, where
        `seats.bot`, the scripted bot's moves) and steps; `advance(False)` only reads, after a reset. Either
        then fills the learner's results and both seats' observations, and where a game ended swaps its
        seats, so the next game is seen from the other seat. One C pass per environment on the pool."""
        check_seats(self, seats)
        ffi, rows = self._ffi, seat_rows(self.spec)
        buffers = {
            f.name: ffi.from_buffer(_SEAT_CTYPES.get(f.name, "char[]"), getattr(seats, f.name))
            for f in fields(Seats)
        }
        job = ffi.new(
            "ShoalSeats*",
            {
                **buffers,
                "envs": self._envs,
                "seat_agents": rows.shape[1],
                "seat_rows": ffi.from_buffer("int32_t[]", rows),
                "obs_bytes": self.observations[:1].nbytes,
                "act_bytes": self.actions[:1].nbytes,
            },
        )
        return _SeatedStep(self, job, (seats, rows))

    def log(self) -> dict[str, float]:
        """Averages of every Log field over the episodes that ended since the last call; {} if none."""
        self._check_open("log")
        self._fn["vec_log"](self._envs, self.num_envs, self._ffi.from_buffer("float[]", self._log))
        return log_means(self.log_fields, self._log)

    def env_logs(self, envs: Sequence[int] | np.ndarray) -> np.ndarray:
        """The Log totals of each of environments `envs` since its last read, one row each (the fields of
        `log_fields`, n last), cleared as `log` clears them."""
        self._check_open("env_logs")
        index = env_indices(envs, self.num_envs, "env_logs")
        out = np.zeros((len(index), len(self.log_fields)), np.float32)
        ffi = self._ffi
        self._fn["vec_log_some"](
            self._envs, ffi.from_buffer("int32_t[]", index), len(index), ffi.from_buffer("float[]", out)
        )
        return out

    def env_log(self, index: int) -> dict[str, float]:
        """Like `log`, for environment `index` alone: lets an evaluation count exactly one episode per
        environment instead of over-sampling the environments whose episodes are short."""
        return log_means(self.log_fields, self.env_logs([index])[0])

    def render(self, index: int = 0) -> np.ndarray:
        """An RGB frame (H, W, 3) of environment `index`, drawn headless into a uint8 buffer."""
        self._check_open("render")
        if not 0 <= index < self.num_envs:
            raise ValueError(f"render index must be in [0, {self.num_envs}), got {index}")
        frame = np.zeros(self._render_shape, dtype=np.uint8)
        ffi = self._ffi
        self._fn["render"](ffi.addressof(self._envs[index]), ffi.from_buffer("uint8_t[]", frame))
        return frame

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._step_call, self._step_args = self._after_close, ()
        self._copy_step_args = ()
        if self._pool is not None:
            self._ffi.release(self._pool)  # runs shoal_pool_free now, once
            self._pool = None
        self._fn["vec_close"](self._envs, self.num_envs)

    def _after_close(self) -> None:
        raise RuntimeError(f"{self._name}: step after close")


# The ShoalSeats fields typed other than char*.
_SEAT_CTYPES = {
    "seat": "uint8_t[]",
    "bot": "uint8_t[]",
    "rewards": "float[]",
    "terminals": "uint8_t[]",
    "truncations": "uint8_t[]",
    "returns": "double[]",
    "ended": "uint8_t[]",
}


class _SeatedStep:
    """`VecEnv.seated`'s step: one C call on the batch's pool, holding the arrays its job points into."""

    def __init__(self, env: VecEnv, job: Any, arrays: tuple[Any, ...]):
        self._env, self._job, self._arrays = env, job, arrays
        self._run, self._fn = env._pool_run, env._seats_fn

    def __call__(self, step: bool) -> None:
        env = self._env
        env._check_open("a seated step")
        self._job.step = step
        self._run(env._pool if env._pool is not None else env._ffi.NULL, self._fn, self._job, env.num_envs)


def write_actions(name: str, buffer: np.ndarray, actions: Any, integer: bool) -> None:
    """Copy `actions` into the action buffer. The environment validates values; here only shape and kind
    are checked.

    Discrete actions take any integer dtype (wider ones are clipped to int32 first, so a huge value stays
    out of range and is counted instead of wrapping into range); continuous ones take any real dtype.
    Anything else is refused, as is a wrong shape.
    """
    if type(actions) is not np.ndarray:
        actions = np.asarray(actions)
    if actions.shape != buffer.shape:
        raise ValueError(f"{name}: actions must have shape {buffer.shape}, got {actions.shape}")
    dtype = actions.dtype
    if dtype == buffer.dtype:
        np.copyto(buffer, actions)
    elif integer and dtype.kind in "iu":
        if dtype.itemsize >= 4:
            actions = np.clip(actions, _INT32_MIN, _INT32_MAX)
        np.copyto(buffer, actions, casting="unsafe")
    elif not integer and dtype.kind in "fiu":
        np.copyto(buffer, actions, casting="unsafe")
    else:
        kind = "an integer" if integer else "a real"
        raise ValueError(f"{name}: actions must have {kind} dtype like {buffer.dtype}, got {dtype}")


def _zeros(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


def _checked(
    allocate: Callable[[tuple[int, ...], np.dtype], np.ndarray],
) -> Callable[[tuple[int, ...], np.dtype], np.ndarray]:
    """The C side trusts these buffers' sizes: refuse anything but a zeroed array of exactly the ask."""

    def alloc(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        out = allocate(shape, dtype)
        if (
            type(out) is not np.ndarray
            or out.shape != shape
            or out.dtype != dtype
            or not out.flags.c_contiguous
            or not out.flags.writeable
        ):
            raise ValueError(f"allocate{shape, dtype} must return a writeable C-contiguous array of that")
        out.fill(0)
        return out

    return alloc


_INT32_MIN = np.iinfo(np.int32).min
_INT32_MAX = np.iinfo(np.int32).max
