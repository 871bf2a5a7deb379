"""A worker process: steps a contiguous range of a batch's Python environments in shared memory.

The parent writes the actions into the shared buffers and sends each worker one short message per step; the
worker steps its environments, whose adapters write their rows in place, and answers with one message: empty
when all went well, else the last line of the exception (the parent raises it). So a step costs one message
each way per worker, however many environments it holds. An exception in an environment does not end the
worker; the parent decides (it closes the batch, and the run fails with that line).
"""

from __future__ import annotations

import contextlib
import mmap
import pickle
import struct
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection

import numpy as np

from envs_c.pyenvs.adapters import ADAPTERS, Adapter, Rows
from envs_c.pyenvs.recipe import Recipe

# Commands: one byte, then packed arguments.
STEP, RESET, RESET_ENV, SCRIPTED, RENDER, CLOSE = b"s", b"r", b"e", b"p", b"v", b"q"
OK = b""
FAILED = b"E"


@dataclass(frozen=True)
class Layout:
    """Where each buffer sits in the shared file: (offset, shape, dtype) by name."""

    path: str
    size: int
    buffers: tuple[tuple[str, int, tuple[int, ...], str], ...]

    def views(self, memory: mmap.mmap) -> dict[str, np.ndarray]:
        return {
            name: np.ndarray(shape, np.dtype(dtype), buffer=memory, offset=offset)
            for name, offset, shape, dtype in self.buffers
        }


def env_seed(seed: int, index: int) -> int:
    """Environment `index`'s seed in a batch seeded with `seed` (index 0 gets the same as a batch of one)."""
    state = np.random.SeedSequence([int(seed) & (2**64 - 1), index]).generate_state(1, np.uint32)
    return int(state[0])


def serve(
    conn: Connection, layout: Layout, recipe: Recipe, opponent: int, start: int, end: int, per_env: int
) -> None:
    """The worker's main loop, for environments [start, end) of the batch (`per_env` rows each)."""
    with open(layout.path, "r+b") as f:
        memory = mmap.mmap(f.fileno(), layout.size)
    buffers = layout.views(memory)
    adapters: list[Adapter] = []
    try:
        for i in range(start, end):
            rows = slice(i * per_env, (i + 1) * per_env)
            views = Rows(
                obs=buffers["observations"][rows].reshape(per_env, -1),
                actions=buffers["actions"][rows],
                rewards=buffers["rewards"][rows],
                terminals=buffers["terminals"][rows],
                truncations=buffers["truncations"][rows],
                log=buffers["logs"][i],
                scripted=buffers["scripted"][rows],
            )
            adapters.append(ADAPTERS[recipe.family](recipe, views, opponent))
    except Exception as e:
        conn.send_bytes(FAILED + _last_line(e))
        return
    conn.send_bytes(OK)
    while True:
        try:
            message = conn.recv_bytes()
        except EOFError:  # the parent went away
            break
        command, args = message[:1], message[1:]
        if command == CLOSE:
            break
        try:
            reply = _run(command, args, adapters, start)
        except Exception as e:
            reply = FAILED + _last_line(e)
        conn.send_bytes(reply)
    for adapter in adapters:
        with contextlib.suppress(Exception):  # closing is best effort: the process ends next
            adapter.close()


def _run(command: bytes, args: bytes, adapters: list[Adapter], start: int) -> bytes:
    if command == STEP:
        for adapter in adapters:
            adapter.step()
    elif command == RESET:
        (seed,) = struct.unpack("<Q", args)
        for i, adapter in enumerate(adapters):
            adapter.reset(env_seed(seed, start + i))
    elif command == RESET_ENV:
        index, seed = struct.unpack("<qQ", args)
        adapters[index - start].reset(env_seed(seed, 0))
    elif command == SCRIPTED:
        for adapter in adapters:
            adapter.scripted()
    elif command == RENDER:
        (index,) = struct.unpack("<q", args)
        frame = np.ascontiguousarray(adapters[index - start].render(), dtype=np.uint8)
        return pickle.dumps(frame)
    else:
        raise ValueError(f"unknown command {command!r}")
    return OK


def _last_line(e: BaseException) -> bytes:
    """The exception's last line, as a traceback ends: 'ValueError: bad action'."""
    return traceback.format_exception_only(type(e), e)[-1].strip().encode("utf-8", "replace")
