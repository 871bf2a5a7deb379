"""A worker process: steps a contiguous range of a batch's Python environments in shared memory.

The parent writes the actions into the shared buffers and sends each worker one short message per step; the
worker steps its environments, whose adapters write their rows in place, and answers with one message: empty
when all went well, else the last line of the exception (the parent raises it). So a step costs one message
each way per worker, however many environments it holds. An exception in an environment does not end the
worker; the parent decides (it closes the batch, and the run fails with that line).

With a core to spare for every process (`spins`), steps skip the pipe: a cheap environment steps in
microseconds, and waking a process blocked on a pipe takes tens. The parent counts steps in a shared row per
worker and the worker answers in the same row; each side watches the other's counter for `SPIN_SECONDS`
before it blocks on the pipe, and says so in the row, so the other side knows to send a wake-up byte.
Every other command, and the text of a step's exception, still goes through the pipe.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import platform
import struct
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection

import numpy as np

from envs_c.pyenvs.adapters import ADAPTERS, Adapter, Rows
from envs_c.pyenvs.recipe import Recipe
from envs_c.vector import available_cores

# Commands: one byte, then packed arguments.
STEP, RESET, RESET_ENV, SCRIPTED, RENDER, CLOSE = b"s", b"r", b"e", b"p", b"v", b"q"
OK = b""
FAILED = b"E"

# A worker's row of the shared "sync" buffer. A step's number is STEP_SEQ; the worker writes it to DONE_SEQ
# when the step is done, and first to FAILED_SEQ when it raised (its text follows on the pipe).
STEP_SEQ, DONE_SEQ, FAILED_SEQ, WORKER_ASLEEP, PARENT_ASLEEP = range(5)
SYNC_WIDTH = 8  # int64s per row: a 64-byte cache line each, so no two processes write the same line
SPIN_SECONDS = 0.002  # how long a side watches the counters before it blocks; longer gaps cost a wake-up
POLL_SECONDS = 0.005  # while blocked, how often the counters are read again (a wake-up can be missed)
PIPE_TURNS = 32  # while spinning, how many turns pass between looks at the pipe (about 50 us)
WAKE = b"w"  # to a worker blocked on its pipe: a step has started
STEPPED = b"d"  # to a parent blocked on the pipes: a step has ended


def spins(workers: int) -> bool:
    """Whether a batch of `workers` processes steps through the shared counters: only with a core for each
    of them and the parent (spinning processes that share cores slow each other down), and only on x86,
    whose stores other cores see in order (the rows are written before the counter that says so)."""
    return platform.machine() in ("x86_64", "AMD64") and workers + 1 <= available_cores()


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
    conn: Connection,
    layout: Layout,
    recipe: Recipe,
    opponent: int,
    start: int,
    end: int,
    per_env: int,
    slot: int,
    spin: bool,
) -> None:
    """The worker's main loop, for environments [start, end) of the batch (`per_env` rows each); `slot` is
    its row of the sync buffer, which it watches for steps when `spin`."""
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
    sync = buffers["sync"][slot]
    while True:
        try:
            message = _next(conn, sync) if spin else conn.recv_bytes()
        except EOFError:  # the parent went away
            break
        if message is None:  # a step through the counters
            _step_counted(conn, sync, adapters, start)
            continue
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


def _next(conn: Connection, sync: np.ndarray) -> bytes | None:
    """None when the parent's step counter moves past the last step answered, else the next message."""
    answered = sync[DONE_SEQ]
    deadline = time.perf_counter() + SPIN_SECONDS
    turns = 0
    while True:
        if sync[STEP_SEQ] != answered:
            return None
        turns += 1
        if time.perf_counter() < deadline:
            os.sched_yield()  # a process waiting for this core (the parent, another job) gets it first
            # The other commands still come by pipe, but looking costs several times a turn of this loop,
            # and a step noticed a turn late is that much slower: the pipe is read every PIPE_TURNS turns.
            if turns % PIPE_TURNS:
                continue
            ready = conn.poll(0)
        else:
            sync[WORKER_ASLEEP] = 1
            ready = sync[STEP_SEQ] == answered and conn.poll(POLL_SECONDS)
            sync[WORKER_ASLEEP] = 0
        if ready:
            message = conn.recv_bytes()
            if message != WAKE:
                return message


def _step_counted(conn: Connection, sync: np.ndarray, adapters: list[Adapter], start: int) -> None:
    seq = sync[STEP_SEQ]
    try:
        _run(STEP, b"", adapters, start)
    except Exception as e:
        conn.send_bytes(FAILED + _last_line(e))
        sync[FAILED_SEQ] = seq
    sync[DONE_SEQ] = seq
    if sync[PARENT_ASLEEP]:
        conn.send_bytes(STEPPED)


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
