"""Bring your own environment (issue 15): the speed figures of BENCHMARKS.md.

    python bench/byoe_bench.py [--seconds 2] [--rounds 5] [--envs 16] [--workers 2]

1. A user C environment's first use (compile into an empty cache) and a cache hit (a fresh process loading
   it).
2. The same environment built in and on SHOAL_ENV_PATH, same process, rounds interleaved: agent-steps/s.
   The user copy is the built-in cartpole with its names changed (`mycart`), so only where it is found
   differs.
3. Python vectorisation: gymnasium:CartPole-v1 on shoal's worker processes against Gymnasium's
   AsyncVectorEnv (one process per environment, it cannot hold more) and SyncVectorEnv (in-process), same
   number of environments, random actions, rounds interleaved; the best round of each is reported.
   With --puffer-python (an interpreter with PufferLib 3.0 installed by ../shared/anchors/pufferlib3's
   recipe, plus cffi, pycparser and pydantic so that shoal imports there too), PufferLib's Multiprocessing
   backend joins each round with the same number of worker processes (zero-copy, batch = all environments,
   synchronous like ours), and so does shoal under that interpreter: PufferLib 3.0 pins gymnasium 0.29.1,
   whose CartPole steps in about half the time of the 1.x release shoal installs, so only that pair steps
   the same environment.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def user_copy(directory: Path) -> str:
    """envs_c/cartpole.{h,env.toml} renamed to `mycart` in `directory`."""
    for suffix in (".h", ".env.toml"):
        text = (ROOT / "envs_c" / f"cartpole{suffix}").read_text()
        for old, new in (("cartpole", "mycart"), ("CARTPOLE", "MYCART"), ("Cartpole", "Mycart")):
            text = text.replace(old, new)
        (directory / f"mycart{suffix}").write_text(text)
    return "mycart"


def compile_times(directory: Path) -> dict[str, float]:
    env = {**os.environ, "SHOAL_ENV_PATH": str(directory), "SHOAL_ENV_CACHE": str(directory / "cache")}
    code = (
        "import time, envs_c.build as b; t = time.perf_counter(); b.load('mycart'); "
        "print(time.perf_counter() - t)"
    )
    out = {}
    for label in ("first_use_s", "cache_hit_s"):
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        out[label] = float(proc.stdout.strip())
        out[label.replace("_s", "_process_s")] = time.perf_counter() - started
    return out


def c_speed(seconds: float, rounds: int) -> dict[str, float]:
    from envs_c.checks import agent_steps_per_second

    best = {"built-in cartpole": [], "user mycart": []}
    for _ in range(rounds):
        best["built-in cartpole"].append(agent_steps_per_second("cartpole", seconds=seconds))
        best["user mycart"].append(agent_steps_per_second("mycart", seconds=seconds))
    out = {k: float(np.median(v)) for k, v in best.items()}
    out["ratio"] = out["user mycart"] / out["built-in cartpole"]
    return out


def _time_steps(step, actions: np.ndarray, seconds: float) -> float:
    for i in range(20):
        step(actions[i % len(actions)])
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step(actions[steps % len(actions)])
        steps += 1
    return steps * actions.shape[1] / (time.perf_counter() - started)


ANCHOR = """
import sys, time
import gymnasium, numpy as np

which, num_envs, workers, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])


def puffer():
    import pufferlib.emulation, pufferlib.vector

    def creator(buf=None, seed=0):
        return pufferlib.emulation.GymnasiumPufferEnv(
            env_creator=lambda: gymnasium.make("CartPole-v1"), buf=buf, seed=seed
        )

    env = pufferlib.vector.make(
        creator, backend=pufferlib.vector.Multiprocessing, num_envs=num_envs, num_workers=workers,
        batch_size=num_envs, overwork=True,
    )
    env.async_reset(0)
    env.recv()

    def step(actions):
        env.send(actions)
        env.recv()

    return step, env.close


def shoal():
    import envs_c

    env = envs_c.make("gymnasium:CartPole-v1", num_envs, seed=0, num_threads=workers)
    env.reset(0)
    return env.step, env.close


if __name__ == "__main__":
    step, close = {"puffer": puffer, "shoal": shoal}[which]()
    actions = np.random.default_rng(0).integers(0, 2, (256, num_envs)).astype(np.int32)
    for i in range(20):
        step(actions[i % 256])
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step(actions[steps % 256])
        steps += 1
    print(steps * num_envs / (time.perf_counter() - started))
    close()
"""


def anchor_speed(python: str, which: str, num_envs: int, workers: int, seconds: float) -> float:
    """agent-steps/s of `which` (puffer or shoal) under the interpreter `python`: this one, or PufferLib's,
    so that both step the same Gymnasium release's CartPole (PufferLib 3.0 pins gymnasium 0.29.1, whose
    CartPole steps faster than the 1.x shoal installs)."""
    with tempfile.TemporaryDirectory() as tmp:  # importing pufferlib drops a `resources` link in the cwd
        script = Path(tmp) / "anchor_bench.py"
        script.write_text(ANCHOR)
        proc = subprocess.run(
            [python, str(script), which, str(num_envs), str(workers), str(seconds)],
            cwd=tmp,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
            capture_output=True,
            text=True,
            check=True,
        )
    return float(proc.stdout.strip().splitlines()[-1])


def gymnasium_version(python: str) -> str:
    code = "import gymnasium; print(gymnasium.__version__)"
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def python_speed(
    num_envs: int, workers: int, seconds: float, rounds: int, puffer: str | None = None
) -> dict[str, float]:
    import gymnasium

    actions = np.random.default_rng(0).integers(0, 2, (256, num_envs)).astype(np.int32)
    results: dict[str, list[float]] = {}

    def gymnasium_vector(cls: type[gymnasium.vector.VectorEnv]) -> float:
        env = cls([lambda: gymnasium.make("CartPole-v1")] * num_envs)
        env.reset(seed=0)
        try:
            return _time_steps(env.step, actions, seconds)
        finally:
            env.close()

    runners = {
        f"shoal, {workers} worker processes, gymnasium {gymnasium.__version__}": lambda: anchor_speed(
            sys.executable, "shoal", num_envs, workers, seconds
        ),
        f"gymnasium AsyncVectorEnv, {num_envs} processes": lambda: gymnasium_vector(
            gymnasium.vector.AsyncVectorEnv
        ),
        "gymnasium SyncVectorEnv, in-process": lambda: gymnasium_vector(gymnasium.vector.SyncVectorEnv),
    }
    if puffer:
        version = gymnasium_version(puffer)
        runners[f"PufferLib 3.0 Multiprocessing, {workers} workers, gymnasium {version}"] = lambda: (
            anchor_speed(puffer, "puffer", num_envs, workers, seconds)
        )
        runners[f"shoal, {workers} worker processes, gymnasium {version}"] = lambda: anchor_speed(
            puffer, "shoal", num_envs, workers, seconds
        )
    for _ in range(rounds):
        for label, run in runners.items():
            results.setdefault(label, []).append(run())
    return {label: max(values) for label, values in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--envs", type=int, default=16, help="environments in the Python batches")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (cores)")
    parser.add_argument("--puffer-python", help="an interpreter with PufferLib 3.0 (see the docstring)")
    args = parser.parse_args()
    report: dict[str, object] = {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="shoal-byoe-") as tmp:
        directory = Path(tmp)
        user_copy(directory)
        report["compile"] = compile_times(directory)
        os.environ["SHOAL_ENV_PATH"] = str(directory)
        os.environ["SHOAL_ENV_CACHE"] = str(directory / "cache")
        report["c_agent_steps_per_s"] = c_speed(args.seconds, args.rounds)
    for num_envs in sorted({args.workers, args.envs}):
        report[f"python_agent_steps_per_s_{num_envs}_envs"] = python_speed(
            num_envs, args.workers, args.seconds, args.rounds, args.puffer_python
        )
    report["load_after"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
