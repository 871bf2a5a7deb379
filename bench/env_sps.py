"""Environment-only throughput: agent-steps per second per CPU core, 4096 agents, random actions.

    .venv/bin/python bench/env_sps.py [ENV ...] [--seconds 1.0] [--puffer-python /tmp/pufvenv-env/bin/python]

For every environment it measures, each in its own process pinned with taskset:
  (a) envs_c from Python on core 0: 1024 pre-generated random action arrays, VecEnv.step(actions[i]) timed;
  (b) the plain C driver (envs_c/driver.c) on core 0: the same loop and action cache with no Python,
      compiled with the flags envs_c/build.py and Python's sysconfig use for the extension;
  (c) as (a) with num_threads=2 on cores 0-1;
  (d) PufferLib 3.0's environment of the same name on core 0 (its own Python step), through
      /work/shared/anchors/pufferlib3/bench_env.py, when --puffer-python is given.
Each figure is the median of 3 timed runs (after 200 warm-up steps and a 0.5 s calibration), like the
anchor's bench. It prints a markdown table beside the anchor figures of the README and checks the goals
(a) >= 0.95 (b), (a) >= 1.0 (d), (c) >= 1.8 (a). The machine is shared: read the load line it prints.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANCHOR_BENCH = Path("/work/shared/anchors/pufferlib3/bench_env.py")
AGENTS = 4096
CACHE = 1024
# PufferLib 3.0 figures from /work/shared/anchors/pufferlib3/README.md (one core, 4096 agents).
ANCHOR = {
    "breakout": 3.69e6,
    "pong": 6.23e6,
    "connect4": 35.7e3,
    "snake": 3.29e6,
    "cartpole": 27.1e6,
    "squared": 69.4e6,
}
PUFFER_ENVS = ("breakout", "pong", "connect4", "snake", "cartpole")


def worker(name: str, threads: int, seconds: float) -> dict[str, object]:
    """Runs inside the pinned child process: time VecEnv.step from Python."""
    import numpy as np

    import envs_c

    spec = envs_c.make_spec(name)
    num_envs = max(1, AGENTS // spec.agents_per_env)
    env = envs_c.make(name, num_envs, seed=0, num_threads=threads)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    shape = (CACHE, *env.actions.shape)
    if env.actions.dtype == np.float32:
        acts = rng.uniform(-1, 1, shape).astype(np.float32)
    else:
        acts = rng.integers(0, spec.action_space.n, shape).astype(np.int32)
    step = env.step
    for i in range(200):
        step(acts[i % CACHE])
    t = time.perf_counter()
    k = 0
    while time.perf_counter() - t < 0.5:
        step(acts[k % CACHE])
        k += 1
    steps = int(seconds / ((time.perf_counter() - t) / k) * 1.1) + 1
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(steps):
            step(acts[i % CACHE])
        runs.append(env.num_agents * steps / (time.perf_counter() - t0))
    env.close()
    return {
        "env": name,
        "num_agents": env.num_agents,
        "sps_runs": runs,
        "sps_median": statistics.median(runs),
    }


def build_driver(out_dir: Path) -> Path:
    from envs_c import cdriver
    from envs_c.build import CFLAGS  # the flags of the cffi extension
    from envs_c.registry import ENVS

    (out_dir / "driver_envs.h").write_text(cdriver.source())
    exe = out_dir / "env_driver"
    py_flags = (sysconfig.get_config_var("CFLAGS") or "").split() + (
        sysconfig.get_config_var("CCSHARED") or ""
    ).split()
    cc = (sysconfig.get_config_var("CC") or "cc").split()
    cmd = [
        *cc,
        *py_flags,
        *CFLAGS,
        *(f"-I{d}" for d in cdriver.include_dirs(ENVS.values())),
        f"-I{out_dir}",
        str(ROOT / "envs_c" / "driver.c"),
        "-o",
        str(exe),
        "-lm",
        "-pthread",
    ]
    subprocess.run(cmd, check=True)
    print(f"driver flags: {' '.join(cmd[1:-6])}", file=sys.stderr)
    return exe


def pinned(cores: str, cmd: list[str], cwd: Path | None = None, seconds: float = 1.0) -> str:
    # MIN_S is the anchor bench's seconds per timed run.
    env = dict(os.environ, OMP_NUM_THREADS="1", MIN_S=str(seconds))
    proc = subprocess.run(["taskset", "-c", cores, *cmd], capture_output=True, text=True, cwd=cwd, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def measure_python(name: str, threads: int, cores: str, seconds: float) -> float:
    out = pinned(
        cores,
        [sys.executable, __file__, "--worker", name, "--threads", str(threads), "--seconds", str(seconds)],
    )
    return float(json.loads(out.strip().splitlines()[-1])["sps_median"])


def measure_c(exe: Path, name: str, seconds: float) -> float:
    out = pinned("0", [str(exe), name, "--agents", str(AGENTS), "--seconds", str(seconds)])
    return float(json.loads(out.strip().splitlines()[-1])["sps_median"])


def measure_puffer(python: str, name: str, seconds: float) -> float | None:
    # PufferLib's import creates a `resources` symlink in the cwd: run it from a scratch directory.
    with tempfile.TemporaryDirectory() as scratch:
        out = pinned("0", [python, str(ANCHOR_BENCH), name], cwd=Path(scratch), seconds=seconds)
    row = json.loads(out.strip().splitlines()[-1])
    return float(row["sps_median"]) if "sps_median" in row else None


def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.1f} K"


def ratio(x: float | None, y: float | None, goal: float) -> str:
    if x is None or y is None or y == 0:
        return "-"
    r = x / y
    return f"{r:.2f} {'ok' if r >= goal else 'MISS'}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("envs", nargs="*")
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per timed run (3 runs each)")
    parser.add_argument("--puffer-python", default=None, help="python of a venv with pufferlib 3.0 built")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.threads, args.seconds)))
        return

    import envs_c

    names = args.envs or envs_c.names()
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min average, {os.cpu_count()} CPUs)", file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_driver(Path(tmp))
        for name in names:
            a = measure_python(name, 1, "0", args.seconds)
            b = measure_c(exe, name, args.seconds)
            c = measure_python(name, 2, "0,1", args.seconds)
            d = None
            if args.puffer_python and name in PUFFER_ENVS:
                d = measure_puffer(args.puffer_python, name, args.seconds)
            rows.append((name, a, b, c, d))
            print(
                f"{name}: a={fmt(a)} b={fmt(b)} c={fmt(c)} d={fmt(d)} load={os.getloadavg()[0]:.2f}",
                file=sys.stderr,
            )
    print(f"load after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print()
    print(
        "| env | (a) envs_c Python, 1 core | (b) C driver, 1 core | (c) envs_c, 2 threads | "
        "(d) PufferLib 3.0 here | PufferLib README | (a)/(b) ≥ 0.95 | (a)/(d) ≥ 1.0 | (c)/(a) ≥ 1.8 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, a, b, c, d in rows:
        print(
            f"| {name} | {fmt(a)} | {fmt(b)} | {fmt(c)} | {fmt(d)} | {fmt(ANCHOR.get(name))} | "
            f"{ratio(a, b, 0.95)} | {ratio(a, d, 1.0)} | {ratio(c, a, 1.8)} |"
        )


if __name__ == "__main__":
    main()
