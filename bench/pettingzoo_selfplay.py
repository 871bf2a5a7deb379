"""A PettingZoo game trained three ways, then rated: against its built-in bot, in pure mirror self-play,
and against a league (mirror, past checkpoints and the bot), on CPU.

    .venv/bin/python bench/pettingzoo_selfplay.py [--env pettingzoo:classic.tictactoe_v3] [--steps 300000]
        [--games 200] [--seed 1]

Each run uses the game's spec defaults (envs_c/pyenvs/specs/) with `total_timesteps` set to --steps and its
`selfplay` mix; its last checkpoint then plays --games rated games (half in each seat) through the Elo
service's match runner against the `random` and `scripted` anchors. Prints one JSON line per run: wall
time, the clean evaluation's perf and the mean score per anchor and seat (1 win, 0.5 draw, 0 loss).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MIXES = {
    "bot": None,
    "mirror": {"mirror": 1.0, "past": 0.0, "bot": 0.0},
    "league": {"mirror": 0.5, "past": 0.3, "bot": 0.2},
}


def rate(env: str, checkpoint: Path, games: int, seed: int) -> dict[str, dict[str, float]]:
    from services.elo import match

    player = match.load_player(checkpoint, env)
    scores = {}
    for anchor in ("random", "scripted"):
        results = match.play(env, player, match.Player(anchor), games, seed=seed)
        by_seat = {s: [r.score_a for r in results if r.seat_a == s] for s in (0, 1)}
        scores[anchor] = {
            "mean": round(sum(r.score_a for r in results) / len(results), 3),
            **{f"seat{s}": round(sum(v) / len(v), 3) for s, v in by_seat.items()},
        }
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="pettingzoo:classic.tictactoe_v3")
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--games", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mixes", default=",".join(MIXES), help=f"of {', '.join(MIXES)}")
    args = parser.parse_args()

    from services.common.config import resolve
    from services.trainer.loop import Discard, train

    with tempfile.TemporaryDirectory() as scratch:
        for name in args.mixes.split(","):
            mix = MIXES[name]
            overrides = {"train": {"total_timesteps": args.steps}, **({"selfplay": mix} if mix else {})}
            began = time.monotonic()
            result = train(args.env, resolve(args.env, overrides), args.seed, Path(scratch) / name, Discard())
            seconds = time.monotonic() - began
            row = {"mix": name, "status": result.status, "steps": result.steps, "seconds": round(seconds, 1)}
            row["eval_perf"] = result.final_score
            if result.last_checkpoint is not None:
                row["rated"] = rate(args.env, result.last_checkpoint, args.games, seed=7)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
