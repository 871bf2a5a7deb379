"""The contract every environment must pass, built-in or a user's: `shoal env check` and tests/test_envs.py
run these same functions.

Each check takes an environment name and its settings, returns a one-line detail on success and raises
CheckFailed, whose message says what broke, otherwise. They raise rather than assert so that `python -O`
cannot turn them off.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from envs_c import cdriver
from envs_c.build import EnvBuildError, cache_dir, load, module_key
from envs_c.registry import HERE, lookup
from envs_c.vector import VecEnv

Settings = Mapping[str, Any]


class CheckFailed(AssertionError):
    """An environment that breaks its contract; the message names the environment and what went wrong."""


def expect(ok: bool, message: str) -> None:
    if not ok:
        raise CheckFailed(message)


def random_actions(env: VecEnv, rng: np.random.Generator) -> np.ndarray:
    """Uniform valid actions, shaped and typed like the action buffer."""
    space = env.spec.action_space
    if isinstance(space, spaces.Box):
        return rng.uniform(space.low[0], space.high[0], env.actions.shape).astype(np.float32)
    high = space.n if isinstance(space, spaces.Discrete) else space.nvec.max()
    return rng.integers(0, high, env.actions.shape).astype(np.int32)


def hostile_actions(env: VecEnv, rng: np.random.Generator, t: int) -> np.ndarray:
    """Out-of-range, extreme and (continuous) NaN/inf actions; every third batch as int64 far outside int32,
    which must be clipped, never wrapped back into range."""
    shape = env.actions.shape
    if env.actions.dtype == np.float32:
        pool = np.array([np.nan, np.inf, -np.inf, 1e30, -7.0, 3.0, 0.5], np.float32)
        return rng.choice(pool, size=shape)
    bad = rng.choice(np.array([-1, -(2**31), 2**31 - 1, 1000, 64, 7, 0, 1], dtype=np.int64), size=shape)
    return bad * (2**40) if t % 3 == 0 else bad


def in_bounds(env: VecEnv, obs: np.ndarray) -> None:
    """Observations of the spec's dtype, shape and range, finite."""
    space, name = env.spec.observation_space, env.spec.name
    expect(
        obs.dtype == space.dtype and obs.shape == (env.num_agents, *space.shape),
        f"{name}: observations are {obs.dtype}{obs.shape}, spec says {space.dtype}{space.shape}",
    )
    if obs.dtype.kind == "f":
        expect(bool(np.isfinite(obs).all()), f"{name}: non-finite observation")
    expect(
        bool((obs >= space.low).all() and (obs <= space.high).all()),
        f"{name}: observation outside [{space.low.min()}, {space.high.max()}]: [{obs.min()}, {obs.max()}]",
    )


def rollout(env: VecEnv, steps: int, policy: str, seed: int = 0) -> dict[str, float]:
    """Mean of every log field over all episodes that ended, weighted by episode count."""
    rng = np.random.default_rng(seed)
    totals: dict[str, float] = {}
    episodes = 0.0
    for _ in range(steps):
        env.step(env.scripted_actions() if policy == "scripted" else random_actions(env, rng))
        log = env.log()
        if log:
            expect(0.0 <= log["perf"] <= 1.0, f"{env.spec.name}: perf {log['perf']} outside [0, 1]")
            for key, value in log.items():
                if key != "n":
                    totals[key] = totals.get(key, 0.0) + value * log["n"]
            episodes += log["n"]
    expect(episodes > 0, f"{env.spec.name}: no episode ended in {steps} steps ({policy})")
    return {key: value / episodes for key, value in totals.items()} | {"n": episodes}


def _same(a: np.ndarray, b: np.ndarray, message: str) -> None:
    expect(a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f")), message)


def builds(name: str, settings: Settings | None = None) -> str:
    """Compiles against its spec (or is in the cache) and loads."""
    env = lookup(name)
    started = time.perf_counter()
    load(name)
    return f"{time.perf_counter() - started:.2f}s, {cache_dir() / module_key(env)}"


def spaces_match_buffers(name: str, settings: Settings | None = None) -> str:
    """Buffers sized and typed by the spec, scripted actions inside the action space, the spec's log fields
    in order, and wrongly shaped or typed actions refused."""
    env = VecEnv(name, 3, seed=0, **(settings or {}))
    try:
        spec = env.spec
        in_bounds(env, env.reset())
        expect(
            env.rewards.shape == env.terminals.shape == env.truncations.shape == (env.num_agents,),
            f"{name}: reward/terminal/truncation buffers are not one row per agent",
        )
        scripted = env.scripted_actions()
        expect(
            scripted.shape == env.actions.shape and scripted.dtype == env.actions.dtype,
            f"{name}: scripted actions are {scripted.dtype}{scripted.shape}, not like the action buffer",
        )
        expect(
            all(spec.action_space.contains(row) for row in scripted),
            f"{name}: the scripted policy writes actions outside {spec.action_space}",
        )
        shape = env.actions.shape
        for bad, kind in (
            (np.zeros((shape[0] + 1, *shape[1:]), env.actions.dtype), "shape"),
            (np.zeros((*shape, 2), env.actions.dtype), "shape"),
            (np.zeros(shape, bool), "dtype"),
        ):
            try:
                env.step(bad)
            except ValueError as e:
                expect(kind in str(e), f"{name}: a wrong action {kind} was refused for another reason: {e}")
            else:
                raise CheckFailed(f"{name}: actions of the wrong {kind} were accepted")
        fields = _first_log(env, np.random.default_rng(0))
        expect(
            list(fields) == list(spec.definition.log_fields),
            f"{name}: log fields {list(fields)} differ from the spec's {list(spec.definition.log_fields)}",
        )
        return (
            f"obs {spec.observation_space.dtype}{list(spec.observation_space.shape)}, "
            f"action {spec.to_dict()['action']['kind']}, {spec.agents_per_env} agent(s) per env"
        )
    finally:
        env.close()


def _first_log(env: VecEnv, rng: np.random.Generator, max_steps: int = 20_000) -> dict[str, float]:
    for _ in range(max_steps):
        env.step(random_actions(env, rng))
        log = env.log()
        if log:
            return log
    raise CheckFailed(f"{env.spec.name}: no episode ended in {max_steps} random steps")


def same_seed_same_trajectory(name: str, settings: Settings | None = None, steps: int = 200) -> str:
    """Same seed, same trajectory (also when stepped on two threads, and after reset(seed)); another seed
    gives another one. The scripted policy reads the state only, not the action buffer (self-play writes
    the bot's moves straight into it)."""
    kw = dict(settings or {})
    a, b, c = (
        VecEnv(name, 4, seed=7, **kw),
        VecEnv(name, 4, seed=7, num_threads=2, **kw),
        VecEnv(name, 4, 8, **kw),
    )
    try:
        rng = np.random.default_rng(0)
        _same(a.reset(), b.reset(), f"{name}: two resets with seed 7 differ")
        differs = not np.array_equal(a.observations, c.reset())
        for t in range(steps):
            if t % 10 == 0:
                a.actions[:] = 0
                b.actions[:] = hostile_actions(b, rng, 1)  # a batch of values the buffer's type holds
                _same(
                    a.scripted_actions(),
                    b.scripted_actions(),
                    f"{name}: the scripted policy's moves depend on the action buffer at step {t}; it must "
                    "read the state only (self-play writes the bot's moves into that buffer)",
                )
            actions = random_actions(a, rng)
            oa, ra, ta, ua = (x.copy() for x in a.step(actions))
            ob, rb, tb, ub = b.step(actions)
            c.step(actions)
            for x, y, what in (
                (oa, ob, "observations"),
                (ra, rb, "rewards"),
                (ta, tb, "terminals"),
                (ua, ub, "truncations"),
            ):
                _same(x, y, f"{name}: {what} differ at step {t} between two runs with seed 7")
            differs |= not np.array_equal(oa, c.observations)
        expect(differs, f"{name}: seeds 7 and 8 gave identical trajectories")
        first = a.reset(seed=7).copy()
        _same(first, b.reset(seed=7), f"{name}: reset(seed=7) does not replay the start")
        return f"{steps} steps, 1 and 2 threads, scripted moves from the state alone"
    finally:
        for env in (a, b, c):
            env.close()


def survives_hostile_actions(name: str, settings: Settings | None = None, steps: int = 600) -> str:
    """Out-of-range, extreme and NaN actions keep observations in bounds; counted when the spec logs
    invalid_actions."""
    env = VecEnv(name, 8, seed=2, **(settings or {}))
    try:
        env.reset()
        rng = np.random.default_rng(3)
        for t in range(steps):
            in_bounds(env, env.step(hostile_actions(env, rng, t))[0])
        if "invalid_actions" not in env.spec.definition.log_fields:
            return f"{steps} steps in bounds (the spec logs no invalid_actions to count them)"
        constant = np.full(
            env.actions.shape, np.nan if env.actions.dtype == np.float32 else -5, env.actions.dtype
        )
        counted = 0.0
        for _ in range(20_000):
            env.step(constant)
            log = env.log()
            counted += log.get("invalid_actions", 0.0) * log.get("n", 0.0)
            if counted > 0:
                return f"{steps} steps in bounds, invalid actions counted"
        raise CheckFailed(f"{name}: invalid actions were not counted in the log's invalid_actions")
    finally:
        env.close()


def perf_in_unit_interval(name: str, settings: Settings | None = None, steps: int = 1500) -> str:
    """perf in [0, 1] for every logged batch of episodes, under random and scripted play, with finite
    rewards and 0/1 terminals and truncations."""
    env = VecEnv(name, 16, seed=1, **(settings or {}))
    try:
        in_bounds(env, env.reset())
        rng = np.random.default_rng(2)
        episodes, low, high = 0.0, 1.0, 0.0
        t = 0
        while t < steps or (episodes == 0 and t < 20 * steps):
            scripted = t % 2 == 0
            obs, rewards, terminals, truncations = env.step(
                env.scripted_actions() if scripted else random_actions(env, rng)
            )
            in_bounds(env, obs)
            expect(bool(np.isfinite(rewards).all()), f"{name}: non-finite reward at step {t}")
            expect(
                bool((terminals <= 1).all() and (truncations <= 1).all()),
                f"{name}: terminals and truncations must be 0 or 1",
            )
            log = env.log()
            if log:
                episodes += log["n"]
                expect(0.0 <= log["perf"] <= 1.0, f"{name}: perf {log['perf']:.4g} outside [0, 1]")
                low, high = min(low, log["perf"]), max(high, log["perf"])
            t += 1
        expect(episodes > 0, f"{name}: no episode ended in {t} steps")
        return f"{episodes:.0f} episodes, mean perf per batch in [{low:.3f}, {high:.3f}]"
    finally:
        env.close()


def sanitized(name: str, settings: Settings | None = None, steps: int = 100_000, envs: int = 2) -> str:
    """The plain C driver under AddressSanitizer and UBSan: random, out-of-range, extreme and NaN actions,
    the scripted policy, log, render and reset, for `steps` vector steps (both seat modes of a game)."""
    env = lookup(name)
    cc = os.environ.get("CC", "cc")
    sets = [f"--set={k}={v}" for k, v in (settings or {}).items()]
    modes: list[list[str]] = [[]]
    if env.players is not None and "opponent" not in (settings or {}):
        modes.append(["--set=opponent=1"])
    with tempfile.TemporaryDirectory(prefix="shoal-asan-") as tmp:
        work = Path(tmp)
        (work / "driver_envs.h").write_text(cdriver.source([env]))
        exe = work / "driver"
        cmd = [
            *cc.split(),
            "-O1",
            "-g",
            "-std=c11",
            "-Wall",
            "-fno-omit-frame-pointer",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            *(f"-I{d}" for d in cdriver.include_dirs([env])),
            f"-I{work}",
            str(HERE / "driver.c"),
            "-o",
            str(exe),
            "-lm",
            "-pthread",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise CheckFailed(f"{name}: the sanitizer build does not compile:\n{proc.stderr.strip()}")
        run_env = dict(
            os.environ,
            ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:exitcode=86",
            UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87",
        )
        for mode in modes:
            args = [
                str(exe),
                name,
                "--asan",
                "--steps",
                str(steps),
                "--envs",
                str(envs),
                *_split(sets + mode),
            ]
            proc = subprocess.run(args, capture_output=True, text=True, env=run_env)
            if proc.returncode != 0:
                report = (proc.stderr or proc.stdout).strip()
                raise CheckFailed(
                    f"{name}: sanitizer report (exit {proc.returncode}) {' '.join(mode)}:\n{report}"
                )
    return f"{steps} steps x {len(modes)} seat mode(s), clean"


def _split(sets: list[str]) -> list[str]:
    """--set=k=v -> --set k=v, the driver's syntax."""
    out = []
    for item in sets:
        out += ["--set", item.split("=", 1)[1]]
    return out


def agent_steps_per_second(name: str, settings: Settings | None = None, seconds: float = 1.0) -> float:
    """Agent steps per second on one core through VecEnv.step, the trainer's path, with random actions."""
    spec_agents = VecEnv(name, 1, **(settings or {})).num_agents
    env = VecEnv(name, max(1, 4096 // spec_agents), seed=0, **(settings or {}))
    try:
        rng = np.random.default_rng(0)
        cache = [random_actions(env, rng) for _ in range(64)]
        for i in range(20):
            env.step(cache[i % 64])
        steps, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            for i in range(16):
                env.step(cache[(steps + i) % 64])
            steps += 16
        return env.num_agents * steps / (time.perf_counter() - started)
    finally:
        env.close()


def speed(name: str, settings: Settings | None = None) -> str:
    """Agent-steps/s per core (informative: it fails only if the environment cannot be stepped)."""
    return f"{agent_steps_per_second(name, settings) / 1e6:.2f}M agent-steps/s on one core"


@dataclass(frozen=True)
class Outcome:
    check: str
    ok: bool | None  # None: not run, because building failed
    detail: str
    seconds: float


Check = Callable[..., str]


def contract(asan_steps: int) -> list[tuple[str, Check]]:
    """The checks in the order `shoal env check` runs them."""
    return [
        ("compiles and loads", builds),
        ("spaces match buffers", spaces_match_buffers),
        ("determinism per seed", same_seed_same_trajectory),
        ("hostile, out-of-range and NaN actions", survives_hostile_actions),
        ("perf within [0, 1]", perf_in_unit_interval),
        (f"ASan/UBSan build, {asan_steps:g} steps", lambda n, s: sanitized(n, s, steps=asan_steps)),
        ("agent-steps/s per core", speed),
    ]


def run(name: str, settings: Settings | None = None, asan_steps: int = 100_000) -> list[Outcome]:
    """Every check, in order; when the environment does not build, the rest are reported as not run."""
    lookup(name).config(settings or {})  # unknown or out-of-range settings fail before anything runs
    out: list[Outcome] = []
    built = True
    for title, check in contract(asan_steps):
        if not built:
            out.append(Outcome(title, None, "not run: the environment does not build", 0.0))
            continue
        started = time.perf_counter()
        try:
            detail, ok = check(name, settings or {}), True
        except (CheckFailed, EnvBuildError, RuntimeError, ValueError) as e:
            detail, ok = str(e), False
            if check is builds:
                built = False
        out.append(Outcome(title, ok, detail, time.perf_counter() - started))
    return out


def table(outcomes: list[Outcome]) -> str:
    """A pass/fail table, one line per check; failures' full messages follow it."""
    width = max(len(o.check) for o in outcomes)
    lines = [f"{'check':<{width}}  result  time    detail"]
    for o in outcomes:
        result = "pass" if o.ok else ("FAIL" if o.ok is False else "-")
        first = o.detail.splitlines()[0] if o.detail else ""
        lines.append(f"{o.check:<{width}}  {result:<6}  {o.seconds:5.1f}s  {first[:100]}")
    for o in outcomes:
        if o.ok is False and (len(o.detail.splitlines()) > 1 or len(o.detail) > 100):
            lines += ["", f"--- {o.check} ---", o.detail]
    return "\n".join(lines)
