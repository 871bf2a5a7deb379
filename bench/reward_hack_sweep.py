"""Does a sweep on Elo rank a reward hack below the default? (issue 16)

A fresh platform (`shoal up` on the embedded database and broker, in a scratch directory), then one
`POST /sweeps` on moba with `metric: "elo"` over three categorical reward coefficients, each a choice
between the default's value and the hack's of bench/selfplay_bench.py (kills 0.1 or 3, damage 0.1 or 0.5,
objective 1 or 0.05). With max_runs 8 and parallelism 1 the sweep runs every combination once (the sweeper
never proposes a config twice). Every trial is a bot-only run against the weakest bot at moba's CPU
config, with no early stopping, so each is judged on its final checkpoint's rating alone; reward settings
are not rules of the game (`game = false`), so all of them are rated in one pool.

Prints, per trial: its coefficients, the shaped return and training perf of its last metric rows, the
end-of-run eval perf, its sweep score (the Elo its final checkpoint had when the trial was observed) and
that checkpoint's rating on the leaderboard at the end, with the interval; then where the default and
the full hack rank.

    .venv/bin/python bench/reward_hack_sweep.py [--steps 3000000] [--out bench/data/reward_hack_sweep.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from gpu_sweep import Platform  # noqa: E402
from selfplay_bench import CPU  # noqa: E402

DEFAULT = {"reward_kill": 0.1, "reward_damage": 0.1, "reward_objective": 1.0}
HACK = {"reward_kill": 3.0, "reward_damage": 0.5, "reward_objective": 0.05}


def sweep_body(steps: int) -> dict[str, Any]:
    space = {
        "env": {
            name: {"distribution": "categorical", "choices": [DEFAULT[name], HACK[name]]} for name in DEFAULT
        }
    }
    train = {**CPU["train"], "total_timesteps": steps, "checkpoint_interval": 100_000}
    return {
        "env": "moba",
        "metric": "elo",
        "space": space,
        "hyperparameters": {"train": train, "policy": CPU["policy"], "env": {"bot": 0, **DEFAULT}},
        "max_runs": 8,
        "parallelism": 1,
        "early_stopping": False,
    }


def last_rows(platform: Platform, run_id: int, keys: list[str]) -> dict[str, float]:
    """The mean of each key over its last three points."""
    series = platform.get(f"/runs/{run_id}/metrics?keys={','.join(keys)}")["series"]
    return {
        key: sum(values[-3:]) / len(values[-3:])
        for key in keys
        if (values := [v for v in series.get(key, {}).get("value", []) if v is not None])
    }


def measure(steps: int, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home:
        platform = Platform(Path(home))
        try:
            platform.start(timeout=120)
            started = time.monotonic()
            sweep = platform.request("/sweeps", sweep_body(steps))
            while time.monotonic() - started < timeout:
                sweep = platform.get(f"/sweeps/{sweep['id']}")
                if sweep["status"] in ("finished", "failed", "stopped"):
                    break
                time.sleep(5)
            else:
                raise RuntimeError(f"the sweep did not finish within {timeout:.0f}s: {sweep['status']}")
            board = platform.get("/leaderboard?env=moba&limit=100")
            trials = []
            for trial in sweep["trials"]:
                run = platform.get(f"/runs/{trial['run_id']}")
                final = run["checkpoints"][-1]["id"] if run["checkpoints"] else None
                rated = next((p for p in board["players"] if p["checkpoint_id"] == final), None)
                rows = last_rows(platform, run["id"], ["env/episode_return", "env/perf", "env/kills"])
                trials.append(
                    {
                        "number": trial["number"],
                        "params": trial["params"],
                        "status": trial["status"],
                        "score": trial["score"],
                        "eval_perf": run["final_score"],
                        "shaped_return": rows.get("env/episode_return"),
                        "train_perf": rows.get("env/perf"),
                        "kills": rows.get("env/kills"),
                        "elo": rated and {k: rated[k] for k in ("elo", "lo", "hi", "games")},
                    }
                )
            anchors = {p["id"]: p["elo"] for p in board["players"] if p["kind"] == "anchor"}
            return {
                "steps": steps,
                "sweep_seconds": time.monotonic() - started,
                "trials": trials,
                "anchors": anchors,
            }
        finally:
            platform.stop()


def coefficients(params: dict[str, Any]) -> dict[str, float]:
    return {name: params["env"][name] for name in DEFAULT}


def number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(data: dict[str, Any]) -> str:
    trials = sorted(data["trials"], key=lambda t: -(t["score"] if t["score"] is not None else -1e9))
    lines = [
        "| rank | kill | damage | objective | shaped return | train perf | eval perf | sweep score (Elo) "
        "| leaderboard Elo (95% interval) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rank, t in enumerate(trials, 1):
        c, elo = coefficients(t["params"]), t["elo"]
        board = f"{elo['elo']:.0f} ({elo['lo']:.0f} to {elo['hi']:.0f})" if elo else "-"
        cells = [rank, c["reward_kill"], c["reward_damage"], c["reward_objective"]]
        cells += [number(t[key], 2) for key in ("shaped_return", "train_perf", "eval_perf")]
        cells += [number(t["score"], 0) if t["score"] is not None else t["status"], board]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    rank_of = {json.dumps(coefficients(t["params"]), sort_keys=True): r for r, t in enumerate(trials, 1)}
    default = rank_of.get(json.dumps(DEFAULT, sort_keys=True))
    hack = rank_of.get(json.dumps(HACK, sort_keys=True))
    lines.append(f"\ndefault ranks {default} of {len(trials)}, the full hack {hack}")
    lines.append(f"anchors: {data['anchors']}; the sweep took {data['sweep_seconds']:.0f} s")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3_000_000, help="total_timesteps of every trial")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds the sweep may take")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    data = measure(args.steps, args.timeout)
    if args.out:
        args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(report(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
