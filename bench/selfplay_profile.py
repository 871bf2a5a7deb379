"""Where a self-play rollout's time goes, beside the bot-only run of the same game: the trainer's own
rollouts (CUDA graphs on a GPU), profiled by cProfile after a warm-up, and the functions that took most of
the host's time. Issue 16's speed goal (self-play at most 25% slower than bot-only) is measured end to end
by bench/selfplay_bench.py's cost part; this says why it is not met.

    python3 bench/selfplay_profile.py [env ...] [--device cuda] [--rollouts 20] [--top 18] [--mix JSON]

`--mix '{"mirror": 0, "past": 0, "bot": 1}'` plays the bot alone, so that on a CPU no opponent network
runs inside the environment's step and its time is the host's own work.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from selfplay_bench import MIX  # noqa: E402

from services.common.config import resolve  # noqa: E402
from services.trainer.loop import Discard, Trainer  # noqa: E402


def profile(env: str, mix: dict[str, float] | None, device: str, rollouts: int, top: int) -> None:
    overrides: dict[str, Any] = {"train": {"device": device}}
    if mix is not None:
        overrides["selfplay"] = mix
    config = resolve(env, overrides)
    with tempfile.TemporaryDirectory() as out, Trainer(env, config, 0, Path(out), Discard(), None) as trainer:
        for epoch in range(4 + rollouts):
            if epoch == 4:  # graphs captured, pool started: measure from here
                profiler, tick, steps = cProfile.Profile(), time.perf_counter(), trainer.step
                env_seconds = trainer.split.env
                profiler.enable()
            trainer.rollout()
            trainer.update()
            if mix is not None and epoch % 2 == 0:
                trainer.env.snapshot(trainer.step)
        profiler.disable()
        seconds = time.perf_counter() - tick
        split = trainer.split
        total = split.env + split.forward + split.copy + split.learn
        shares = " ".join(f"{k} {getattr(split, k) / total:.2f}" for k in ("env", "forward", "copy", "learn"))
        kind = f"self-play {mix}" if mix is not None else "bot-only"
        sps = (trainer.step - steps) / seconds
        env_ms = (split.env - env_seconds) / (rollouts * trainer.horizon) * 1e3
        print(f"\n== {env} {kind} on {device}: {sps:,.0f} SPS (profiled); split {shares}")
        print(f"env.step {env_ms:.3f} ms a step of {trainer.env.num_envs} games")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("envs", nargs="*", default=["connect4", "moba"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--rollouts", type=int, default=20)
    parser.add_argument("--top", type=int, default=18)
    parser.add_argument("--mix", type=json.loads, default=MIX, help="the self-play run's opponent shares")
    args = parser.parse_args()
    for env in args.envs:
        for mix in (None, args.mix):
            profile(env, mix, args.device, args.rollouts, args.top)


if __name__ == "__main__":
    main()
