"""Match throughput of the Elo runner: games/s and agent-steps/s per CPU core, and with 2 workers.

    .venv/bin/python bench/elo_bench.py [--envs pong,connect4] [--games 128] [--seconds 6]
        [--checkpoints pong=STEM_A,STEM_B ...]

Players: two small policies (MLP 2 x 64, the default network) sampling their actions, as the elo
workers play them. Untrained ones unless `--checkpoints` names two trained checkpoints for an env;
trained pong players rally for much longer, so their games/s is far lower at a similar agent-steps/s.

For every environment, each measurement in its own process pinned with taskset, torch on one thread:
  (1) one worker on core 0: batches of `--games` games (one VecEnv, opponent=1) back to back;
  (2) two workers at once on cores 0 and 1, what two elo worker processes do: the aggregate rate and
      the speed-up over (1).
games/s counts finished games; agent-steps/s counts the steps of those games times two seats (steps an
environment takes after its game ended, while it waits for the slowest game of its batch, are not
counted). Per CPU-second figures divide by the process's own CPU time: what one free core would do,
whatever else the shared machine runs; the CPU share says how much of a core one worker actually got.
Each figure is the median of 3 runs. The machine is shared: read the load line it prints.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def child(env: str, games: int, seconds: float, stems: list[str]) -> dict[str, float]:
    """Runs inside a pinned process: play batches for `seconds` and count."""
    import torch

    torch.set_num_threads(1)
    from services.elo.match import load_player, play

    a, b = (load_player(stem, env) for stem in stems)
    play(env, a, b, games, seed=0)  # warm-up: imports, allocations
    played = steps = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    seed = 1
    while time.perf_counter() - started < seconds:
        results = play(env, a, b, games, seed=seed)
        played += len(results)
        steps += sum(r.steps for r in results)
        seed += 1
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "games_per_s": played / elapsed,
        "agent_steps_per_s": 2 * steps / elapsed,
        "games_per_cpu_s": played / cpu,
        "agent_steps_per_cpu_s": 2 * steps / cpu,
        "cpu_share": cpu / elapsed,
    }


def untrained(env: str, directory: Path) -> list[str]:
    import torch

    import envs_c
    from services.common.config import PolicyConfig
    from services.trainer.checkpoint import save_policy
    from services.trainer.policy import Policy

    spec = envs_c.make_spec(env)
    stems = []
    for index in range(2):
        torch.manual_seed(index)
        policy = Policy(spec.observation_space.shape, spec.to_dict()["action"], PolicyConfig())
        stem = directory / f"{env}-{index}"
        meta = {
            "env": env,
            "env_version": spec.version,
            "env_config": spec.config,
            "env_spec": spec.to_dict(),
        }
        save_policy(stem, policy, meta)
        stems.append(str(stem))
    return stems


def launch(core: int, env: str, games: int, seconds: float, stems: list[str]) -> subprocess.Popen:
    command = [
        "taskset", "-c", str(core), sys.executable, __file__, "--child", env,
        "--games", str(games), "--seconds", str(seconds), "--stems", ",".join(stems),
    ]  # fmt: skip
    env_vars = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env_vars, cwd=ROOT)


def collect(processes: list[subprocess.Popen]) -> list[dict[str, float]]:
    out = []
    for process in processes:
        stdout, _ = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"benchmark child failed ({process.returncode})")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def measure(env: str, games: int, seconds: float, stems: list[str], repeats: int = 3) -> dict[str, float]:
    one, two = [], []
    for _ in range(repeats):
        one.append(collect([launch(0, env, games, seconds, stems)])[0])
        pair = collect([launch(core, env, games, seconds, stems) for core in (0, 1)])
        two.append({k: sum(r[k] for r in pair) for k in ("games_per_s", "agent_steps_per_s", "cpu_share")})
    median = statistics.median
    return {
        "games_1": median(r["games_per_s"] for r in one),
        "steps_1": median(r["agent_steps_per_s"] for r in one),
        "games_2": median(r["games_per_s"] for r in two),
        "games_cpu": median(r["games_per_cpu_s"] for r in one),
        "steps_cpu": median(r["agent_steps_per_cpu_s"] for r in one),
        "cpu_share": median(r["cpu_share"] for r in one),
        "cpu_share_2": median(r["cpu_share"] for r in two),
        "steps_2": median(r["agent_steps_per_s"] for r in two),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--envs", default="pong,connect4")
    parser.add_argument("--games", type=int, default=128, help="games per batch (one VecEnv)")
    parser.add_argument("--seconds", type=float, default=6.0, help="timed seconds per run")
    parser.add_argument("--checkpoints", action="append", default=[], metavar="ENV=STEM_A,STEM_B")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--stems", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.games, args.seconds, args.stems.split(","))))
        return

    trained = dict(item.split("=", 1) for item in args.checkpoints)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="elo-bench-") as scratch:
        for env in [e for e in args.envs.split(",") if e]:
            stems = trained[env].split(",") if env in trained else untrained(env, Path(scratch))
            kind = "trained" if env in trained else "untrained"
            result = measure(env, args.games, args.seconds, stems)
            rows.append((env, kind, result))
            print(f"{env} ({kind}): {result}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    header = (
        "| env | players | games/batch | games/s, 1 worker | agent-steps/s, 1 worker | games/s, 2 workers "
        "| agent-steps/s, 2 workers | speed-up | cores got (1 worker; 2 workers) | speed-up per core got "
        "| games per CPU-s | agent-steps per CPU-s |"
    )
    print(header)
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for env, kind, r in rows:
        speedup = r["games_2"] / r["games_1"]
        per_core = (r["games_2"] / r["cpu_share_2"]) / (r["games_1"] / r["cpu_share"])
        print(
            f"| {env} | 2 x MLP 64, {kind} | {args.games} | {r['games_1']:,.0f} | {r['steps_1']:,.0f} "
            f"| {r['games_2']:,.0f} | {r['steps_2']:,.0f} | {speedup:.2f}x "
            f"| {r['cpu_share']:.2f}; {r['cpu_share_2']:.2f} | {per_core:.2f}x "
            f"| {r['games_cpu']:,.0f} | {r['steps_cpu']:,.0f} |"
        )


if __name__ == "__main__":
    main()
