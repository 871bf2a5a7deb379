"""Python environments behind the VecEnv contract: worker processes stepping into shared memory.

The batch's buffers (observations, actions, rewards, done flags, per-environment Logs) live in one shared
file mapped by the parent and every worker. Environment i's rows are i * agents_per_env onwards, as in a C
batch. A step is: the actions are in the shared buffer, one message to each worker, one answer from each
(or, with a core to spare for every process, a counter in shared memory each way: envs_c.pyenvs.worker).
Each worker steps a contiguous share of the environments, so a step costs two messages per worker, not per
environment. The trainer, the evaluation, replays and the Elo match runner see the same attributes and
methods as envs_c.vector.VecEnv and need no special case.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import multiprocessing.forkserver
import os
import pickle
import struct
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

from envs_c.pyenvs import worker
from envs_c.pyenvs.baseline import random_return
from envs_c.pyenvs.definition import PyEnvDef
from envs_c.vector import (
    Seats,
    VecEnvBase,
    _checked,
    check_seats,
    env_indices,
    log_means,
    seat_rows,
    write_actions,
)

ALIGN = 64
START_TIMEOUT = 120.0  # seconds a worker may take to import and construct its environments


class PythonEnvError(RuntimeError):
    """An exception raised by a Python environment in a worker; the message ends with its last line."""


def _context() -> multiprocessing.context.ForkServerContext:
    # forkserver: workers fork from a clean server process, not from a trainer that holds threads (torch's,
    # the heartbeat's) and a CUDA context, which a plain fork may deadlock on; forking from the server is
    # far quicker than spawning a fresh interpreter per worker.
    ctx = multiprocessing.get_context("forkserver")
    assert isinstance(ctx, multiprocessing.context.ForkServerContext)
    ctx.set_forkserver_preload(["envs_c.pyenvs.worker"])
    return ctx


def _forget_inherited_forkserver() -> None:
    """In a process forked from one that started the forkserver (a Celery pool child, a test's fork), the
    server's bookkeeping is inherited but the server is not this process's child: multiprocessing would fail
    to check on it (ChildProcessError). Forget it, so this process starts a server of its own."""
    # The server's private state, which typeshed does not describe: hence Any.
    server: Any = multiprocessing.forkserver._forkserver
    if server._forkserver_alive_fd is not None:
        with contextlib.suppress(OSError):
            os.close(server._forkserver_alive_fd)  # our copy would keep the parent's server alive
    server._forkserver_pid = server._forkserver_address = server._forkserver_alive_fd = None


os.register_at_fork(after_in_child=_forget_inherited_forkserver)


def _start(proc: multiprocessing.process.BaseProcess) -> None:
    """Start a worker, also from a task of Celery's prefork pool (the Elo worker). There the current process
    is billiard's: daemonic, so multiprocessing refuses to start children lest they outlive it (ours cannot:
    each exits when its pipe to us closes, and close() joins them), and holding an authkey of billiard's
    type, which multiprocessing will not pickle for the forkserver. Both are set aside while it starts."""
    # Private multiprocessing state, which typeshed does not describe: hence Any.
    mp_process: Any = multiprocessing.process
    config = mp_process.current_process()._config
    saved = dict(config)
    config.pop("daemon", None)
    config["authkey"] = mp_process.AuthenticationString(bytes(saved["authkey"]))
    proc.authkey = bytes(saved["authkey"])  # its copy of the config, taken when it was made
    try:
        proc.start()
    finally:
        config.clear()
        config.update(saved)


def _shared_dir() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _with_perf_range(name: str, definition: PyEnvDef) -> Any:
    """The workers' recipe with the returns that map to perf 0 and 1; a random policy's return, measured,
    where the low end is not given."""
    recipe = definition.recipe
    if definition.returns is None:
        return recipe
    low, high = definition.returns
    if low is None:
        low = random_return(recipe, definition.version())
        if low >= high:
            raise ValueError(f"{name}: a random policy's return {low:g} already reaches {high:g}")
    return replace(recipe, perf_low=low, perf_high=high)


class PyVecEnv(VecEnvBase):
    """`num_envs` copies of one Python environment on `num_threads` worker processes (at most one per
    environment). Buffers, methods and semantics are those of envs_c.VecEnv."""

    def _open(self, threads: int, allocate: Callable[[tuple[int, ...], np.dtype], np.ndarray] | None) -> None:
        definition = self.spec.definition
        assert isinstance(definition, PyEnvDef), "make_spec of a Python env's id describes it with one"
        self.per_env = self.spec.agents_per_env
        self._closed = True
        self._conns: list[Connection] = []
        self._procs: list[multiprocessing.process.BaseProcess] = []

        recipe = _with_perf_range(self._name, definition)
        shapes = {**self._shapes(definition), "sync": ((threads, worker.SYNC_WIDTH), np.dtype(np.int64))}
        self._spin = worker.spins(threads)
        self._steps = 0
        layout, self._memory = _map(shapes)
        try:
            self._shared = shared = layout.views(self._memory)
            self._logs = shared["logs"]
            # Column views made once: slicing a column anew costs more than the step's other bookkeeping.
            self._sync_columns = [shared["sync"][:, column] for column in range(worker.SYNC_WIDTH)]
            self._copy = allocate is not None
            if allocate is not None:
                alloc = _checked(allocate)
                keys = ("observations", "actions", "rewards", "terminals", "truncations")
                shared = {**shared, **{key: alloc(*shapes[key]) for key in keys}}
            self.observations = shared["observations"]
            self.actions = shared["actions"]
            self.rewards = shared["rewards"]
            self.terminals = shared["terminals"]
            self.truncations = shared["truncations"]
            self._result = (self.observations, self.rewards, self.terminals, self.truncations)
            self._start(layout, recipe, int(self.spec.config.get("opponent", 0)), threads)
        finally:
            os.unlink(layout.path)  # the workers have mapped it (or failed): nothing else needs the name
        self.reset(self.seed)

    def _shapes(self, definition: PyEnvDef) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Every shared buffer's shape and dtype, by name."""
        obs, action, n = self.spec.observation_space, definition.action, self.num_agents
        action_shape = (n,) if action.kind == "discrete" else (n, action.width)
        return {
            "observations": ((n, *obs.shape), np.dtype(obs.dtype)),
            "actions": (action_shape, np.dtype(action.dtype)),
            "rewards": ((n,), np.dtype(np.float32)),
            "terminals": ((n,), np.dtype(np.uint8)),
            "truncations": ((n,), np.dtype(np.uint8)),
            "logs": ((self.num_envs, len(self.log_fields)), np.dtype(np.float32)),
            "scripted": (action_shape, np.dtype(action.dtype)),
        }

    def _start(self, layout: worker.Layout, recipe: Any, opponent: int, workers: int) -> None:
        ctx = _context()
        bounds = np.linspace(0, self.num_envs, workers + 1).round().astype(int)
        self._bounds = bounds
        for slot, (start, end) in enumerate(itertools.pairwise(bounds)):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=worker.serve,
                args=(child, layout, recipe, opponent, int(start), int(end), self.per_env, slot, self._spin),
                daemon=True,
                name=f"shoal-env-{self._name}-{start}",
            )
            _start(proc)
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        self._closed = False
        errors = []
        for k, conn in enumerate(self._conns):
            if not conn.poll(START_TIMEOUT):
                errors.append(f"worker {k} did not start within {START_TIMEOUT:g}s")
                continue
            errors += self._errors([k])
        if errors:
            self.close()
            raise PythonEnvError(f"{self._name}: could not start its environments: {errors[0]}")

    def _errors(self, workers: Sequence[int]) -> list[str]:
        errors = []
        for k in workers:
            try:
                reply = self._reply(k)
            except (EOFError, OSError):
                self._procs[k].join(1.0)
                errors.append(f"worker process exited (code {self._procs[k].exitcode})")
                continue
            if reply[:1] == worker.FAILED:
                errors.append(reply[1:].decode("utf-8", "replace"))
        return errors

    def _reply(self, k: int) -> bytes:
        """Worker k's next answer on its pipe, the notes of counted steps left out."""
        while (reply := self._conns[k].recv_bytes()) == worker.STEPPED:
            pass
        return reply

    def _step_counted(self) -> None:
        """A step through the shared counters (worker.spins): start every worker's, then watch for their
        answers, blocking on the pipes once `SPIN_SECONDS` have passed. The rows are read as Python lists:
        at a few workers that is several times quicker than numpy's reductions, a step's main cost here."""
        if self._closed:
            raise RuntimeError(f"{self._name}: step after close")
        self._steps += 1
        columns, seq = self._sync_columns, self._steps
        columns[worker.STEP_SEQ].fill(seq)
        for k, asleep in enumerate(columns[worker.WORKER_ASLEEP].tolist()):
            if asleep:
                with contextlib.suppress(OSError):  # a worker that exited: waiting on its pipe says so
                    self._conns[k].send_bytes(worker.WAKE)
        done, finished = columns[worker.DONE_SEQ], [seq] * len(self._conns)
        failures: dict[int, str] = {}
        deadline = time.perf_counter() + worker.SPIN_SECONDS
        while (answers := done.tolist()) != finished:
            if time.perf_counter() < deadline:
                os.sched_yield()  # a worker waiting for this core gets it first
                continue
            busy = [k for k, answer in enumerate(answers) if answer != seq]
            columns[worker.PARENT_ASLEEP].fill(1)
            ready = set(wait([self._conns[k] for k in busy], worker.POLL_SECONDS))
            columns[worker.PARENT_ASLEEP].fill(0)
            for k in (k for k in busy if self._conns[k] in ready):
                try:
                    note = self._conns[k].recv_bytes()
                except (EOFError, OSError):
                    self._procs[k].join(1.0)
                    gone = f"a worker process exited during step (code {self._procs[k].exitcode})"
                    raise PythonEnvError(f"{self._name}: {gone}") from None
                if note[:1] == worker.FAILED:
                    failures[k] = note[1:].decode("utf-8", "replace")
        failed = columns[worker.FAILED_SEQ].tolist()
        if seq in failed:
            k = failed.index(seq)
            text = failures.get(k) or self._reply(k)[1:].decode("utf-8", "replace")
            raise PythonEnvError(f"{self._name} raised in step: {text}")

    def _command(self, message: bytes, what: str) -> None:
        """Send `message` to every worker, wait for all of them, raise the first failure."""
        if self._closed:
            raise RuntimeError(f"{self._name}: {what} after close")
        for conn in self._conns:
            with contextlib.suppress(OSError):  # a worker that exited: reading its answer says so
                conn.send_bytes(message)
        errors = self._errors(range(len(self._conns)))
        if errors:
            raise PythonEnvError(f"{self._name} raised in {what}: {errors[0]}")

    def _publish(self) -> None:
        if self._copy:
            for key in ("observations", "rewards", "terminals", "truncations"):
                np.copyto(getattr(self, key), self._shared[key])

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self.seed = int(seed)
        self._command(worker.RESET + struct.pack("<Q", self.seed & 0xFFFFFFFFFFFFFFFF), "reset")
        self._publish()
        return self.observations

    def _worker_of(self, index: int, what: str) -> int:
        if not 0 <= index < self.num_envs:
            raise ValueError(f"{what} index must be in [0, {self.num_envs}), got {index}")
        return int(np.searchsorted(self._bounds, index, side="right")) - 1

    def _one(self, index: int, message: bytes, what: str) -> bytes:
        if self._closed:
            raise RuntimeError(f"{self._name}: {what} after close")
        k = self._worker_of(index, what)
        try:
            self._conns[k].send_bytes(message)
            reply = self._reply(k)
        except (EOFError, OSError):
            raise PythonEnvError(f"{self._name}: its worker process exited during {what}") from None
        if reply[:1] == worker.FAILED:
            raise PythonEnvError(f"{self._name} raised in {what}: {reply[1:].decode('utf-8', 'replace')}")
        return reply

    def reset_env(self, index: int, seed: int) -> None:
        """Restart environment `index` alone, exactly as environment 0 of a one-env batch seeded `seed`."""
        self._one(
            index, worker.RESET_ENV + struct.pack("<qQ", index, int(seed) & 0xFFFFFFFFFFFFFFFF), "reset_env"
        )
        self._publish()

    def step(self, actions: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Write `actions` (None: already written in place into `actions`) and step every environment."""
        if actions is not None and actions is not self.actions:
            write_actions(self._name, self.actions, actions, self._int_actions)
        if self._copy:
            np.copyto(self._shared["actions"], self.actions)
        if self._spin:
            self._step_counted()
        else:
            self._command(worker.STEP, "step")
        self._publish()
        return self._result

    def scripted_actions(self, envs: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """A random action per agent (a random legal move for the seat to move in a game), for the agents of
        environments `envs` in that order (all of them by default)."""
        self._command(worker.SCRIPTED, "scripted_actions")
        rows = self._shared["scripted"].reshape(self.num_envs, -1, *self.actions.shape[1:])
        if envs is None:
            return rows.reshape(self.actions.shape).copy()
        return rows[env_indices(envs, self.num_envs, "scripted_actions")].reshape(-1, *self.actions.shape[1:])

    def seated(self, seats: Seats) -> Callable[[bool], None]:
        """Self-play's step through `seats`, as the C environments' VecEnv.seated does it, in numpy."""
        check_seats(self, seats)
        rows = seat_rows(self.spec).astype(np.int64)
        per_seat, per_env = rows.shape[1], self.spec.agents_per_env
        base = np.arange(self.num_envs)[:, None] * per_env

        def advance(step: bool) -> None:
            if step:
                bots = np.flatnonzero(seats.bot)
                if len(bots):  # the bot's moves first, in every row of its games, the seats' rows over them
                    self.actions[(base[bots] + np.arange(per_env)).ravel()] = self.scripted_actions(bots)
                seat = seats.seat.astype(np.int64)
                others = np.flatnonzero(seats.bot == 0)
                theirs = seats.their_actions.reshape(self.num_envs, per_seat, *self.actions.shape[1:])
                self.actions[(base[others] + rows[1 - seat[others]]).ravel()] = theirs[others].reshape(
                    -1, *self.actions.shape[1:]
                )
                self.actions[(base + rows[seat]).ravel()] = seats.actions
                self.step()
            mine = (base + rows[seats.seat.astype(np.int64)]).ravel()
            for key in ("rewards", "terminals", "truncations"):
                np.take(getattr(self, key), mine, out=getattr(seats, key))
            if step:
                seats.returns += seats.rewards.reshape(self.num_envs, per_seat).mean(1)
                over = seats.terminals[::per_seat] | seats.truncations[::per_seat]
                seats.seat[:] = np.where(over, 1 - seats.seat, seats.seat)
                seats.ended[:] = over
            else:
                seats.ended[:] = 0
            seat = seats.seat.astype(np.int64)
            np.take(self.observations, (base + rows[seat]).ravel(), axis=0, out=seats.observations)
            np.take(self.observations, (base + rows[1 - seat]).ravel(), axis=0, out=seats.their_observations)

        return advance

    def log(self) -> dict[str, float]:
        """Averages of every Log field over the episodes that ended since the last call; {} if none."""
        if self._closed:
            raise RuntimeError(f"{self._name}: log after close")
        # Workers write the Logs only while stepping, and nothing steps between two commands.
        totals = self._logs.sum(axis=0, dtype=np.float64)
        self._logs[:] = 0
        return log_means(self.log_fields, totals)

    def env_logs(self, envs: Sequence[int] | np.ndarray) -> np.ndarray:
        """The Log totals of each of environments `envs` since its last read, one row each (the fields of
        `log_fields`, n last), cleared as `log` clears them."""
        if self._closed:
            raise RuntimeError(f"{self._name}: env_logs after close")
        index = env_indices(envs, self.num_envs, "env_logs")
        out = self._logs[index]
        self._logs[index] = 0
        return out

    def env_log(self, index: int) -> dict[str, float]:
        """Like `log`, for environment `index` alone."""
        return log_means(self.log_fields, self.env_logs([index])[0])

    def render(self, index: int = 0) -> np.ndarray:
        """An RGB frame (H, W, 3) of environment `index`, drawn by the environment's rgb_array renderer."""
        frame = pickle.loads(self._one(index, worker.RENDER + struct.pack("<q", index), "render"))
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise PythonEnvError(f"{self._name}: render gave an array of shape {frame.shape}, not (H, W, 3)")
        return frame

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for conn in self._conns:
            with contextlib.suppress(OSError):  # a worker that already exited
                conn.send_bytes(worker.CLOSE)
        for proc in self._procs:
            proc.join(5.0)
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)
        for conn in self._conns:
            conn.close()


def _map(shapes: dict[str, tuple[tuple[int, ...], np.dtype]]) -> tuple[worker.Layout, Any]:
    """One zeroed shared file holding every buffer, 64-byte aligned; its path goes to the workers."""
    import mmap

    buffers, offset = [], 0
    for name, (shape, dtype) in shapes.items():
        buffers.append((name, offset, tuple(int(n) for n in shape), np.dtype(dtype).str))
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        offset += -(-size // ALIGN) * ALIGN
    size = max(offset, ALIGN)
    fd, path = tempfile.mkstemp(prefix="shoal-env-", dir=_shared_dir())
    try:
        os.ftruncate(fd, size)
        memory = mmap.mmap(fd, size)
    finally:
        os.close(fd)
    return worker.Layout(path, size, tuple(buffers)), memory
