"""Self-play and the team game on the CPU (issue 16): environment speed, self-play's cost, Elo over a
self-play run, and a reward hack that Elo exposes.

    .venv/bin/python bench/selfplay_bench.py [env] [cost] [curve] [hack] [--out bench/data/selfplay.json]

  env    moba's agent-steps/s on one core (num_threads=1, 4096 agents, random actions): team 1 played by
         the C bot (opponent=0, 3 agents per game) and both teams from the action buffer (opponent=1, 6).
  cost   training SPS of a bot-only run against a self-play run (mirror 0.5, past 0.3, bot 0.2), the same
         CPU config and budget; the ratio is the cost of self-play (the issue's goal is <= 25% on a GPU).
  curve  a self-play run of moba's CPU config, a checkpoint every `--every` epochs, then every checkpoint
         and both anchors rated in one round robin (Bradley-Terry, bootstrap intervals): does the last
         checkpoint's interval lie above the first's?
  hack   two bot-only runs against bot 0, the default shaping and kills worth far more than objectives,
         then their final checkpoints rated with the anchors: shaped return, perf and Elo side by side.

Training runs use `services.trainer.loop.train` as a worker does, torch on one thread. Ratings use the Elo
service's match runner and fit (`services.elo.match.play`, `services.elo.rating.fit_ratings`) in process,
without the database. The machine is shared: read the load line it prints.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import envs_c  # noqa: E402
from services.common.config import merge, resolve  # noqa: E402
from services.elo.match import Player, load_player, play  # noqa: E402
from services.elo.rating import fit_ratings  # noqa: E402
from services.trainer.loop import train  # noqa: E402

# moba's CPU config (configs/moba.toml's comment): 64 games of 3 against 3, 64 steps, one torch thread.
CPU = {
    "train": {
        "num_envs": 64,
        "num_threads": 1,
        "num_steps": 64,
        "minibatch_size": 4096,
        "device": "cpu",
        "torch_threads": 1,
        "eval_episodes": 128,
    },
    "policy": {"hidden_size": 128},
}
MIX = {"mirror": 0.5, "past": 0.3, "bot": 0.2}


class Collect:
    """A Sink that keeps every metric row and checkpoint stem in memory."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []
        self.checkpoints: list[tuple[int, Path]] = []

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.rows.append((step, values))

    def checkpoint(self, step: int, stem: Path, size_bytes: int, meta: dict[str, Any]) -> None:
        self.checkpoints.append((step, stem))

    def interrupt(self) -> None:
        return None


def run(overrides: dict[str, Any], out_dir: Path, seed: int = 0) -> tuple[Any, Collect]:
    sink = Collect()
    config = resolve("moba", merge(CPU, overrides))
    result = train("moba", config, seed, out_dir, sink, flush_seconds=2.0)
    return result, sink


def env_sps(seconds: float = 3.0) -> dict[str, float]:
    out = {}
    for opponent in (0, 1):
        per_game = 3 * (1 + opponent)
        vec = envs_c.make("moba", 4096 // per_game, seed=0, num_threads=1, opponent=opponent)
        rng = np.random.default_rng(0)
        cache = [rng.integers(0, [5, 4], size=vec.actions.shape, dtype=np.int32) for _ in range(256)]
        for i in range(200):
            vec.step(cache[i % 256])
        best = 0.0
        for _ in range(3):
            steps, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds / 3:
                vec.step(cache[steps % 256])
                steps += 1
            best = max(best, steps * vec.num_agents / (time.perf_counter() - started))
        vec.close()
        out[f"opponent={opponent}"] = best
    return out


def sps_of(sink: Collect) -> float:
    """Median SPS over the metric rows, the first (start-up) left out."""
    values = [row["SPS"] for _, row in sink.rows[1:] if "SPS" in row]
    return statistics.median(values)


def cost(steps: int) -> dict[str, float]:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in (("bot_only", {}), ("selfplay", {"selfplay": MIX})):
            budget = {"train": {"total_timesteps": steps, "checkpoint_interval": 100_000, "eval_episodes": 8}}
            _, sink = run(merge(budget, extra), Path(tmp) / name)
            out[name] = sps_of(sink)
    out["slowdown"] = 1.0 - out["selfplay"] / out["bot_only"]
    return out


def rate(players: dict[str, Player], games: int, pairs: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
    """Play `games` games for every pair and fit the ratings, random pinned at 1000."""
    log = []
    for seed, (a, b) in enumerate(pairs):
        for r in play("moba", players[a], players[b], games, seed=seed):
            log.append((a, b, r.score_a))
    ratings = fit_ratings(log, anchor="random", bootstrap=200)
    return {name: {"elo": r.elo, "lo": r.lo, "hi": r.hi, "games": r.games} for name, r in ratings.items()}


def checkpoint_player(stem: Path) -> Player:
    """A checkpoint as the Elo runner loads it, at the env version it was trained on: other work in the
    tree may touch the shared C headers while a run trains, which changes the version but not moba."""
    version = json.loads(stem.with_suffix(".json").read_text())["env_version"]
    return load_player(stem, "moba", env_version=version)


def anchors() -> dict[str, Player]:
    return {"random": Player("random"), "scripted": Player("scripted")}


def curve(steps: int, every: int, games: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        overrides = {
            "train": {"total_timesteps": steps, "checkpoint_interval": every},
            "selfplay": {**MIX, "snapshot_interval": 20},
        }
        started = time.perf_counter()
        result, sink = run(overrides, Path(tmp))
        seconds = time.perf_counter() - started
        players = anchors()
        for step, stem in sink.checkpoints:
            players[str(step)] = checkpoint_player(stem)
        names = list(players)
        started = time.perf_counter()
        ratings = rate(players, games, list(itertools.combinations(names, 2)))
        rating_seconds = time.perf_counter() - started
    steps_rated = [name for name in names if name not in ("random", "scripted")]
    first, last = ratings[steps_rated[0]], ratings[steps_rated[-1]]
    return {
        "train_seconds": seconds,
        "rating_seconds": rating_seconds,
        "eval_perf": result.final_score,
        "ratings": ratings,
        "order": names,
        "rises": last["lo"] > first["hi"],
        "winrate_bot": [
            (step, row["league/winrate/bot"]) for step, row in sink.rows if "league/winrate/bot" in row
        ],
    }


def hack(steps: int, games: int) -> dict[str, Any]:
    settings = {
        "default": {"bot": 0},
        "kills": {"bot": 0, "reward_kill": 3.0, "reward_damage": 0.5, "reward_objective": 0.05},
    }
    out: dict[str, Any] = {}
    players = anchors()
    with tempfile.TemporaryDirectory() as tmp:
        for name, env in settings.items():
            overrides = {"train": {"total_timesteps": steps, "checkpoint_interval": 100_000}, "env": env}
            result, sink = run(overrides, Path(tmp) / name)
            tail = [row for _, row in sink.rows if "env/episode_return" in row][-3:]
            out[name] = {
                "env": env,
                "shaped_return": statistics.mean(row["env/episode_return"] for row in tail),
                "train_perf": statistics.mean(row["env/perf"] for row in tail),
                "kills": statistics.mean(row["env/kills"] for row in tail),
                "eval_perf": result.final_score,
            }
            players[name] = checkpoint_player(sink.checkpoints[-1][1])
        ratings = rate(players, games, list(itertools.combinations(players, 2)))
    for name in settings:
        out[name]["elo"] = ratings[name]
    out["anchors"] = {name: ratings[name] for name in ("random", "scripted")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("parts", nargs="*", default=["env", "cost", "curve", "hack"])
    parser.add_argument("--cost-steps", type=int, default=1_500_000)
    parser.add_argument("--curve-steps", type=int, default=12_000_000)
    parser.add_argument("--every", type=int, default=120, help="epochs between the curve run's checkpoints")
    parser.add_argument("--hack-steps", type=int, default=3_000_000)
    parser.add_argument("--games", type=int, default=64, help="games per pair when rating")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "data" / "selfplay.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load: {os.getloadavg()}, cores: {os.cpu_count()}", flush=True)
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    jobs = {
        "env": lambda: env_sps(),
        "cost": lambda: cost(args.cost_steps),
        "curve": lambda: curve(args.curve_steps, args.every, args.games),
        "hack": lambda: hack(args.hack_steps, args.games),
    }
    for part in args.parts:
        started = time.perf_counter()
        results[part] = jobs[part]()
        results[part]["load"] = os.getloadavg()[0]
        print(
            part, f"({time.perf_counter() - started:.0f} s):", json.dumps(results[part], indent=1), flush=True
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
