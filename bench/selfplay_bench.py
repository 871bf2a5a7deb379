"""Self-play and the team game (issue 16): environment speed, self-play's cost, Elo over a self-play run, a
reward hack that Elo exposes, and the GPU goals (learning, ratings, head to head, speed).

    .venv/bin/python bench/selfplay_bench.py [env] [cost] [curve] [hack] [--out bench/data/selfplay.json]
    python3 bench/selfplay_bench.py learn ratings h2h cost --device cuda --out $OUT/selfplay_gpu.json
        (on a GPU machine: bench/selfplay_device.sh)

Parts that ignore --device (moba's CPU config):
  env    moba's agent-steps/s on one core (num_threads=1, 4096 agents, random actions): team 1 played by
         the C bot (opponent=0, 3 agents per game) and both teams from the action buffer (opponent=1, 6).
  curve  a self-play run of moba's CPU config, a checkpoint every `--every` epochs, then every checkpoint
         and both anchors rated in one round robin (Bradley-Terry, bootstrap intervals): does the last
         checkpoint's interval lie above the first's?
  hack   two bot-only runs against bot 0, the default shaping and kills worth far more than objectives,
         then their final checkpoints rated with the anchors: shaped return, perf and Elo side by side.

Parts that follow --device: with cuda, an environment's GPU defaults (configs/<env>.toml) with
train.device=cuda; with cpu, stand-ins sized for the dev machine (CPU_CONFIGS), to try the parts at tiny
budgets. Their training runs stop at a wall-clock budget the way a time-limited run stops (the sink's
interrupt says "stop"; the final checkpoint and the clean evaluation still follow), or at the config's
total_timesteps if that comes first; each run's record says which (`stopped_by`).
  learn    moba by self-play (configs/moba.toml plus the [selfplay] defaults, mirror 0.5, past 0.3, bot 0.2)
           for --learn-seconds, start-up included, a checkpoint every --learn-every epochs, then the clean
           end-of-run evaluation against the strongest bot over eval_episodes games (256 in moba.toml).
           The learning goal: >= 0.9.
  ratings  up to --rate-checkpoints of learn's checkpoints, evenly spread from the first to the final, and
           both anchors in one round robin (--games per pair): does the last one's interval lie above the
           first's?
  h2h      for each of --h2h-envs, a self-play run and a bot-only run of the same budget (--h2h-seconds
           each, the same config), then their final checkpoints head to head over --h2h-games games with
           seats swapped in pairs: the self-play run's score (goal >= 0.6). With --h2h-reuse-learn, moba's
           self-play side is learn's run and the bot-only run gets learn's budget.
  cost     training SPS of bot-only against self-play (the mix above) on the same game and device, for each
           of --cost-envs and every game h2h trained (goal: <= 25% slower on a GPU): from h2h's two runs
           where this process trained them, else two runs of --cost-steps (default 1.5M on the CPU, the
           config's on a GPU), each capped at --cost-seconds (default 20 on a GPU).

Every part checks the seconds left before --deadline (env DEADLINE, default 570, counted from this
process's start), shrinks its budgets or stops early to fit, and the results are rewritten to --out (JSON)
and --table (text) after every figure, so a run that is killed keeps what it had measured. Every metric
row of a run of the --device parts goes to <--logs>/selfplay_<run>.jsonl as it comes.

Training runs use `services.trainer.loop.train` as a worker does, torch on one thread. Ratings and matches
use the Elo service's match runner and fit (`services.elo.match.play`, `services.elo.rating.fit_ratings`)
in process, on the CPU, without the database. The dev machine is shared: read the load line it prints.
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
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

T0 = time.perf_counter()  # the deadline counts from here, imports included

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import envs_c  # noqa: E402
from services.common.config import RunConfig, merge, resolve  # noqa: E402
from services.elo.match import Player, load_player, play  # noqa: E402
from services.elo.rating import fit_ratings  # noqa: E402
from services.trainer.loop import Result, train  # noqa: E402

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
# The --device cpu stand-ins of the GPU configs; with cuda the GPU defaults of configs/<env>.toml are used.
CPU_CONFIGS = {
    "moba": CPU,
    "connect4": {
        "train": {
            "num_envs": 256,
            "num_threads": 1,
            "num_steps": 16,
            "minibatch_size": 4096,
            "device": "cpu",
            "torch_threads": 1,
            "eval_episodes": 64,
        },
        "policy": {"hidden_size": 128},
    },
}
GPU = {"train": {"device": "cuda"}}
MIX = {"mirror": 0.5, "past": 0.3, "bot": 0.2}  # SelfPlayConfig's defaults
# Seconds a training run needs beyond its wall budget (the final checkpoint, the evaluation; the start-up
# is inside the budget), and seconds for a 400-game match on the CPU, per environment: generous guesses,
# used only to decide what still fits before the deadline.
AFTER_TRAINING = {"moba": 15.0, "connect4": 8.0}
MATCH_SECONDS = {"moba": 20.0, "connect4": 5.0}
MIN_WALL = 3.0  # a training budget below this is not worth starting


class Collect:
    """A Sink that keeps every metric row and checkpoint stem in memory. With `wall`, it ends training
    ("stop", as a time budget does) once `wall` seconds have passed since it was made; with `log`, it
    appends every metric row to that file as a JSON line."""

    def __init__(self, wall: float | None = None, log: Path | None = None) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []
        self.checkpoints: list[tuple[int, Path]] = []
        self.wall = wall
        self.log = log
        self.started = time.perf_counter()
        if log is not None:
            log.write_text("")

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.rows.append((step, values))
        if self.log is not None:
            with self.log.open("a") as f:
                f.write(json.dumps({"step": step, **values}) + "\n")

    def checkpoint(self, step: int, stem: Path, size_bytes: int, meta: dict[str, Any]) -> None:
        self.checkpoints.append((step, stem))

    def interrupt(self) -> str | None:
        if self.wall is not None and time.perf_counter() - self.started > self.wall:
            return "stop"
        return None


class Clock:
    """The seconds left before `deadline` seconds after this process started."""

    def __init__(self, deadline: float) -> None:
        self.end = T0 + deadline

    def left(self) -> float:
        return self.end - time.perf_counter()


def configure(env: str, device: str, overrides: dict[str, Any]) -> RunConfig:
    return resolve(env, merge(CPU_CONFIGS[env] if device == "cpu" else GPU, overrides))


def run(overrides: dict[str, Any], out_dir: Path, seed: int = 0) -> tuple[Result, Collect]:
    """A run of moba's CPU config with `overrides`, to its total_timesteps (curve and hack)."""
    sink = Collect()
    result = train("moba", configure("moba", "cpu", overrides), seed, out_dir, sink, flush_seconds=2.0)
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


def sps_of(sink: Collect) -> float | None:
    """Median SPS over the metric rows, the first (start-up) left out while there are others."""
    values = [row["SPS"] for _, row in sink.rows if "SPS" in row]
    return statistics.median(values[1:] or values) if values else None


def play_pairs(
    env: str,
    players: dict[str, Player],
    games: int,
    pairs: list[tuple[str, str]],
    clock: Clock | None = None,
    margin: float = 0.0,
) -> tuple[list[tuple[str, str, float]], int]:
    """`games` games for every pair, in order, until `clock` has `margin` seconds left; the match log and
    the number of pairs played."""
    log = []
    for seed, (a, b) in enumerate(pairs):
        if clock is not None and clock.left() < margin:
            return log, seed
        for r in play(env, players[a], players[b], games, seed=seed):
            log.append((a, b, r.score_a))
    return log, len(pairs)


def fit(log: list[tuple[str, str, float]]) -> dict[str, dict[str, float]]:
    """Ratings with 95% intervals (200 bootstrap rounds), random pinned at 1000."""
    ratings = fit_ratings(log, anchor="random", bootstrap=200)
    return {name: {"elo": r.elo, "lo": r.lo, "hi": r.hi, "games": r.games} for name, r in ratings.items()}


def rate(players: dict[str, Player], games: int, pairs: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
    """Play `games` games for every pair of moba and fit the ratings, random pinned at 1000."""
    return fit(play_pairs("moba", players, games, pairs)[0])


def checkpoint_player(stem: Path, env: str = "moba") -> Player:
    """A checkpoint as the Elo runner loads it, at the env version it was trained on: other work in the
    tree may touch the shared C headers while a run trains, which changes the version but not the game."""
    version = json.loads(stem.with_suffix(".json").read_text())["env_version"]
    return load_player(stem, env, env_version=version)


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


# The parts that follow --device.


class Report:
    """The results so far: `data` is rewritten to `path` (JSON) and its table to `table` on every save."""

    def __init__(self, path: Path, table_path: Path | None) -> None:
        self.path, self.table_path = path, table_path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def section(self, *keys: str) -> dict[str, Any]:
        """The (new, empty) dict at data[k1][k2]..., for a part to fill and save as it goes."""
        node = self.data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = {}
        return node[keys[-1]]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        tmp.replace(self.path)
        if self.table_path is not None:
            self.table_path.write_text(table(self.data) + "\n")


@dataclass
class Trained:
    """A training run of the --device parts, and what it cost."""

    env: str
    config: RunConfig
    result: Result
    sink: Collect
    wall: float  # the budget it was given, start-up included
    seconds: float  # from the sink's creation to the evaluation's end

    def summary(self) -> dict[str, Any]:
        rows = [row for _, row in self.sink.rows]
        # The evaluation's row: the set-up, the final checkpoint's and the evaluation's seconds.
        end = next((r for r in rows if "eval/perf" in r), {})
        after = end.get("time/last_checkpoint", 0.0) + end.get("time/evaluation", 0.0)
        perf = [r["env/perf"] for r in rows if "env/perf" in r][-3:]
        bot = [r["league/winrate/bot"] for r in rows if "league/winrate/bot" in r][-3:]
        total = self.config.train.total_timesteps
        return {
            "env": self.env,
            "selfplay": self.config.selfplay.model_dump() if self.config.selfplay else None,
            "status": self.result.status,
            "failure": self.result.failure_reason,
            "budget_seconds": round(self.wall, 1),
            "total_timesteps": total,
            "stopped_by": "steps" if self.result.steps >= total else "wall",
            "steps": self.result.steps,
            "seconds": self.seconds,  # all of it: set-up, training, final checkpoint, evaluation
            "setup_seconds": end.get("time/setup"),
            "train_seconds": self.result.seconds - after,
            "eval_seconds": end.get("time/evaluation"),
            "sps": sps_of(self.sink),
            "eval_perf": self.result.final_score,
            "eval_games": self.config.train.eval_episodes,
            "train_perf_last3": statistics.mean(perf) if perf else None,
            "winrate_bot_last3": statistics.mean(bot) if bot else None,
            "checkpoints": len(self.sink.checkpoints),
        }

    def curve(self, points: int = 40) -> list[list[float | None]]:
        """[uptime, steps, training perf, win rate against the bot] for up to `points` rows."""
        rows = [row for _, row in self.sink.rows if "SPS" in row]
        keep = rows[:: max(1, len(rows) // points)] + rows[-1:]
        return [
            [row["uptime"], row["agent_steps"], row.get("env/perf"), row.get("league/winrate/bot")]
            for row in keep
        ]


@dataclass
class Settings:
    """What every --device part shares: the device, the clock, where runs and logs go, the overrides."""

    device: str
    clock: Clock
    work: Path  # checkpoints, for the whole process
    logs: Path | None  # where every run's metric rows go, as JSON lines
    eval_episodes: int | None

    def train(
        self, name: str, env: str, selfplay: bool, wall: float, overrides: dict[str, Any] | None = None
    ) -> Trained:
        """One run of `env`'s config on the device, seed 0, bot-only or by self-play (MIX)."""
        extra = merge({"selfplay": MIX} if selfplay else {}, overrides or {})
        if self.eval_episodes is not None:
            extra = merge(extra, {"train": {"eval_episodes": self.eval_episodes}})
        config = configure(env, self.device, extra)
        sink = Collect(wall, self.logs / f"selfplay_{name}.jsonl" if self.logs else None)
        print(f"[{time.perf_counter() - T0:.0f}s] train {name}: {env}, budget {wall:.0f} s", flush=True)
        flush = 2.0 if self.device == "cpu" else 1.0
        result = train(env, config, 0, self.work / name, sink, flush_seconds=flush)
        return Trained(env, config, result, sink, wall, time.perf_counter() - sink.started)


def learn(s: Settings, out: dict[str, Any], save: Callable[[], None], args) -> Trained | None:
    wall = min(args.learn_seconds, s.clock.left() - AFTER_TRAINING["moba"] - 10)
    if wall < MIN_WALL:
        out["skipped"] = f"{s.clock.left():.0f} s left"
        return None
    overrides: dict[str, Any] = {"train": {"checkpoint_interval": args.learn_every}}
    if args.learn_steps:
        overrides["train"]["total_timesteps"] = args.learn_steps
    trained = s.train("learn", "moba", True, wall, overrides)
    out.update(trained.summary())
    out["curve"] = trained.curve()
    out["met"] = enough(
        out, trained.config.train.eval_episodes, 200, (trained.result.final_score or 0) >= 0.9
    )
    save()
    return trained


def enough(out: dict[str, Any], games: int, needed: int, met: bool) -> bool | None:
    """`met`, or None (with a note) where fewer games were played than the goal asks for."""
    if games >= needed:
        return met
    out["note"] = f"{games} games, the goal asks for {needed}: no verdict"
    return None


def spread(checkpoints: list[tuple[int, Path]], count: int) -> list[tuple[int, Path]]:
    """Up to `count` checkpoints evenly spread over the list, its first and last included."""
    if len(checkpoints) <= count:
        return list(checkpoints)
    picks = sorted({round(i * (len(checkpoints) - 1) / (count - 1)) for i in range(count)})
    return [checkpoints[i] for i in picks]


def ratings(
    s: Settings, out: dict[str, Any], save: Callable[[], None], learned: Trained | None, args
) -> None:
    if learned is None or len(learned.sink.checkpoints) < 2:
        out["skipped"] = "learn left fewer than two checkpoints"
        return
    chosen = spread(learned.sink.checkpoints, args.rate_checkpoints)
    names = [str(step) for step, _ in chosen]
    players = anchors() | {str(step): checkpoint_player(stem, "moba") for step, stem in chosen}
    # Pairs of the first or the last checkpoint first: the figure that matters if time runs out.
    pairs = sorted(itertools.combinations(players, 2), key=lambda p: not {names[0], names[-1]} & set(p))
    started = time.perf_counter()
    log, played = play_pairs("moba", players, args.games, pairs, s.clock, margin=5.0)
    fitted = fit(log) if log else {}
    first, last = fitted.get(names[0]), fitted.get(names[-1])
    out.update(
        {
            "checkpoints": len(learned.sink.checkpoints),
            "rated": names,
            "games_per_pair": args.games,
            "pairs_played": played,
            "pairs": len(pairs),
            "seconds": time.perf_counter() - started,
            "ratings": fitted,
            "first": first,
            "last": last,
            "rises": bool(first and last and last["lo"] > first["hi"]),
        }
    )
    save()


def head_to_head(
    s: Settings, env: str, out: dict[str, Any], save: Callable[[], None], runs: dict[str, Trained], args
) -> None:
    """A self-play run and a bot-only run of the same budget, then their final checkpoints head to head."""
    reuse = env == "moba" and args.h2h_reuse_learn and "learn" in runs
    budget = runs["learn"].wall if reuse else args.h2h_seconds[env]
    runs_left = 1 if reuse else 2
    after = AFTER_TRAINING[env] * runs_left + MATCH_SECONDS[env]
    wall = min(budget, (s.clock.left() - after) / runs_left)
    if reuse and wall < budget:
        out["skipped"] = f"{s.clock.left():.0f} s left: too few for a bot-only run of learn's {budget:.0f} s"
        return
    if wall < MIN_WALL:
        out["skipped"] = f"{s.clock.left():.0f} s left"
        return
    out["budget"] = "the same wall-clock seconds (start-up included) or the config's total_timesteps"
    selfplay = runs["learn"] if reuse else s.train(f"{env}_selfplay", env, True, wall)
    runs[f"{env}_selfplay"] = selfplay
    out["selfplay"] = selfplay.summary() | ({"run": "learn"} if reuse else {})
    save()
    if s.clock.left() < wall + AFTER_TRAINING[env] + MATCH_SECONDS[env]:
        out["skipped"] = f"{s.clock.left():.0f} s left: too few for the bot-only run"
        return
    bot_only = s.train(f"{env}_bot_only", env, False, wall)
    runs[f"{env}_bot_only"] = bot_only
    out["bot_only"] = bot_only.summary()
    save()
    stops = {selfplay.summary()["stopped_by"], bot_only.summary()["stopped_by"]}
    out["same"] = "steps" if stops == {"steps"} else "wall time" if stops == {"wall"} else "neither (mixed)"
    a = checkpoint_player(selfplay.result.last_checkpoint, env)
    b = checkpoint_player(bot_only.result.last_checkpoint, env)
    started = time.perf_counter()
    results = play(env, a, b, args.h2h_games, seed=16)
    scores = [r.score_a for r in results]
    out["match"] = {
        "games": len(results),
        "score": statistics.mean(scores),
        "wins": scores.count(1.0),
        "draws": scores.count(0.5),
        "losses": scores.count(0.0),
        "timeouts": sum(r.timeout for r in results),
        "seconds": time.perf_counter() - started,
    }
    out["met"] = enough(out, len(results), 400, out["match"]["score"] >= 0.6)
    save()


def cost(
    s: Settings, env: str, out: dict[str, Any], save: Callable[[], None], runs: dict[str, Trained], args
) -> None:
    """Bot-only against self-play SPS: h2h's runs of `env` if there are both, else two runs of their own."""
    pair = runs.get(f"{env}_bot_only"), runs.get(f"{env}_selfplay")
    if None in pair:
        wall = min(args.cost_seconds, (s.clock.left() - 2 * AFTER_TRAINING[env]) / 2)
        if wall < MIN_WALL:
            out["skipped"] = f"{s.clock.left():.0f} s left"
            return
        overrides: dict[str, Any] = {"train": {"checkpoint_interval": 100_000, "eval_episodes": 8}}
        if args.cost_steps:
            overrides["train"]["total_timesteps"] = args.cost_steps
        pair = tuple(
            s.train(f"{env}_cost_{name}", env, name == "selfplay", wall, overrides)
            for name in ("bot_only", "selfplay")
        )
        out["source"] = "two runs of their own"
    else:
        out["source"] = "h2h's runs"
    bot_only, selfplay = (run.summary() for run in pair)
    out.update(
        {
            "bot_only": bot_only["sps"],
            "selfplay": selfplay["sps"],
            "budget_seconds": bot_only["budget_seconds"],
        }
    )
    out["steps"] = {"bot_only": bot_only["steps"], "selfplay": selfplay["steps"]}
    if out["bot_only"] and out["selfplay"]:
        out["slowdown"] = 1.0 - out["selfplay"] / out["bot_only"]
        out["met"] = out["slowdown"] <= 0.25
    save()


# The table printed at the end (and rewritten to --table as figures come).


def _num(value: Any, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def _verdict(section: dict[str, Any]) -> str:
    if "error" in section:
        return "ERROR"
    if "skipped" in section and "met" not in section:
        return "skipped"
    if section.get("met") is None:
        return "too few games" if "note" in section else "-"
    return "MET" if section["met"] else "not met"


def _elo(rating: dict[str, float] | None) -> str:
    return "-" if not rating else f"{rating['elo']:.0f} [{rating['lo']:.0f}, {rating['hi']:.0f}]"


def _rows(data: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(goal, figure, value, target, verdict) for every figure of the --device parts in `data`."""
    rows = []
    if (learned := data.get("learn")) is not None:
        figure = f"moba self-play, {_num(learned.get('budget_seconds'), '.0f')} s: eval perf vs bot 2"
        figure += f" over {learned.get('eval_games', '-')} games"
        rows.append(("learning", figure, _num(learned.get("eval_perf")), ">= 0.90", _verdict(learned)))
        if "steps" in learned:
            figure = f"  {learned['steps']:,} steps (stopped by {learned['stopped_by']}): setup "
            figure += f"{_num(learned['setup_seconds'], '.1f')} s, train {learned['train_seconds']:.1f} s, "
            figure += f"eval {_num(learned['eval_seconds'], '.1f')} s; SPS"
            rows.append(("", figure, _num(learned["sps"], ",.0f"), "", ""))
    if (rated := data.get("ratings")) is not None:
        names = rated.get("rated") or ["-"]
        figure = f"Elo [95%] step {names[0]}: {_elo(rated.get('first'))}, step {names[-1]}: "
        figure += f"{_elo(rated.get('last'))}; {rated.get('pairs_played', '-')}/{rated.get('pairs', '-')}"
        figure += f" pairs x {rated.get('games_per_pair', '-')} games"
        verdict = _verdict(rated | ({"met": rated["rises"]} if "rises" in rated else {}))
        rows.append(("ratings", figure, str(rated.get("rises", "-")), "last above first", verdict))
    for env, h2h in (data.get("h2h") or {}).items():
        match = h2h.get("match") or {}
        sides = [h2h.get("selfplay") or {}, h2h.get("bot_only") or {}]
        figure = f"{env}: self-play vs bot-only, {_num(sides[0].get('budget_seconds'), '.0f')} s each"
        figure += f" (same {h2h.get('same', '-')}), {match.get('games', '-')} games"
        rows.append(("self-play worth", figure, _num(match.get("score")), ">= 0.60", _verdict(h2h)))
        steps = " / ".join(f"{side['steps']:,}" if "steps" in side else "-" for side in sides)
        evals = " / ".join(_num(side.get("eval_perf")) for side in sides)
        rows.append(("", f"  steps {steps}, eval perf vs bot {evals}", "", "", ""))
    for env, c in (data.get("cost") or {}).items():
        if not isinstance(c, dict):  # the first CPU bench's figure: {bot_only, selfplay, slowdown}
            continue
        figure = f"{env}: SPS bot-only {_num(c.get('bot_only'), ',.0f')}, self-play "
        figure += f"{_num(c.get('selfplay'), ',.0f')} ({c.get('source', '-')})"
        rows.append(("speed", figure, _num(c.get("slowdown"), ".1%"), "<= 25% slower", _verdict(c)))
    return rows


def _errors(data: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """The last line of every error in the --device parts' sections."""
    sections = [data.get("learn"), data.get("ratings")]
    sections += [*(data.get("h2h") or {}).values(), *(data.get("cost") or {}).values()]
    errors = [section["error"] for section in sections if isinstance(section, dict) and "error" in section]
    return [("error", error.strip().splitlines()[-1][:120], "", "", "") for error in errors]


def table(data: dict[str, Any]) -> str:
    head = f"issue 16 on {data.get('device', '?')} ({data.get('torch', '?')})"
    rows = [("goal", "figure", "value", "goal", "verdict"), *_rows(data), *_errors(data)]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [head] + [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)


def pairs_of(text: str) -> dict[str, float]:
    """ "connect4:20,moba:60" -> {"connect4": 20.0, "moba": 60.0}."""
    return {key: float(value) for key, value in (item.split(":") for item in text.split(","))}


def device_parts(parts: list[str], args, report: Report) -> None:
    """learn, ratings, h2h and cost, each guarded: an error is recorded and the next part runs."""
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings(args.device, Clock(args.deadline), Path(tmp), args.logs, args.eval_episodes)
        runs: dict[str, Trained] = {}
        for part in parts:
            print(f"[{time.perf_counter() - T0:.0f}s] {part}, {s.clock.left():.0f} s left", flush=True)
            if part == "learn":
                out = report.section("learn")
                trained = guarded(out, lambda out=out: learn(s, out, report.save, args))
                if trained is not None:
                    runs["learn"] = trained
            elif part == "ratings":
                out = report.section("ratings")
                guarded(out, lambda out=out: ratings(s, out, report.save, runs.get("learn"), args))
            elif part in ("h2h", "cost"):
                report.section(part)
                envs = args.h2h_envs if part == "h2h" else args.cost_envs
                if part == "cost":  # the games h2h trained both ways come free
                    envs = [key.removesuffix("_bot_only") for key in runs if key.endswith("_bot_only")] + envs
                for env in dict.fromkeys(envs):
                    out = report.section(part, env)
                    job = head_to_head if part == "h2h" else cost
                    guarded(out, lambda out=out, env=env, job=job: job(s, env, out, report.save, runs, args))
            report.save()


def guarded(out: dict[str, Any], job: Callable[[], Any]) -> Any:
    """job(), or None with its error recorded in `out` (the next part still runs)."""
    try:
        return job()
    except Exception:
        out["error"] = traceback.format_exc(limit=6)
        print(out["error"], flush=True)
        return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("parts", nargs="*", default=["env", "cost", "curve", "hack"])
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="for learn, ratings, h2h, cost"
    )
    parser.add_argument("--deadline", type=float, default=float(os.environ.get("DEADLINE", 570)))
    parser.add_argument("--cost-steps", type=int, help="per run (CPU default 1.5M; cuda: the config's)")
    parser.add_argument(
        "--cost-seconds", type=float, help="per run (default: 20 on cuda; none but the deadline on the CPU)"
    )
    parser.add_argument("--cost-envs", type=lambda text: text.split(","), default=["moba"])
    parser.add_argument("--curve-steps", type=int, default=12_000_000)
    parser.add_argument("--every", type=int, default=120, help="epochs between the curve run's checkpoints")
    parser.add_argument("--hack-steps", type=int, default=3_000_000)
    parser.add_argument("--games", type=int, default=64, help="games per pair when rating")
    parser.add_argument(
        "--learn-seconds", type=float, default=200.0, help="learn's budget, start-up included"
    )
    parser.add_argument("--learn-steps", type=int, help="learn's total_timesteps (default: moba.toml's)")
    parser.add_argument("--learn-every", type=int, default=50, help="epochs between learn's checkpoints")
    parser.add_argument("--rate-checkpoints", type=int, default=6)
    parser.add_argument("--h2h-envs", type=lambda text: text.split(","), default=["connect4", "moba"])
    parser.add_argument("--h2h-seconds", type=pairs_of, default=pairs_of("connect4:20,moba:60"))
    parser.add_argument("--h2h-games", type=int, default=400)
    parser.add_argument("--h2h-reuse-learn", action="store_true", help="moba's self-play side is learn's run")
    parser.add_argument("--eval-episodes", type=int, help="every --device run's evaluation (default: config)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--table", type=Path, help="the summary table, rewritten as figures come")
    parser.add_argument("--logs", type=Path, help="a directory for every run's metric rows (JSON lines)")
    args = parser.parse_args()
    if args.out is None:
        name = "selfplay.json" if args.device == "cpu" else "selfplay_gpu.json"
        args.out = Path(os.environ["OUT"]) / name if "OUT" in os.environ else ROOT / "bench" / "data" / name
    if args.device == "cpu":  # the first CPU bench's budget: 1.5M steps a run
        args.cost_steps = args.cost_steps or 1_500_000
        args.cost_seconds = args.cost_seconds or float("inf")
    else:
        args.cost_seconds = args.cost_seconds or 20.0
    torch.set_num_threads(1)
    print(f"load: {os.getloadavg()}, cores: {os.cpu_count()}", flush=True)
    report = Report(args.out, args.table)
    report.data["device"] = (
        torch.cuda.get_device_name(0) if args.device == "cuda" else f"cpu x{os.cpu_count()}"
    )
    report.data["torch"] = torch.__version__
    device_parts_named = {"learn", "ratings", "h2h", "cost"}
    jobs = {
        "env": lambda: env_sps(),
        "curve": lambda: curve(args.curve_steps, args.every, args.games),
        "hack": lambda: hack(args.hack_steps, args.games),
    }
    for part in args.parts:
        if part in device_parts_named:
            continue
        started = time.perf_counter()
        report.data[part] = jobs[part]()
        report.data[part]["load"] = os.getloadavg()[0]
        print(
            part,
            f"({time.perf_counter() - started:.0f} s):",
            json.dumps(report.data[part], indent=1),
            flush=True,
        )
        report.save()
    device_parts([part for part in args.parts if part in device_parts_named], args, report)
    report.save()
    print(table(report.data), flush=True)


if __name__ == "__main__":
    main()
