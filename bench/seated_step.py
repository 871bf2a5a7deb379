"""Host time of one self-play environment step against a bot-only one, on the CPU (no network plays).

The bot-only batch has the bot inside the environment (opponent = 0); the self-play batch has both seats in
the action buffer (opponent = 1) behind `SelfPlayEnv`, with every game against the scripted bot, so that what
is timed is the environment and the seat bookkeeping around it, not a forward pass:

    .venv/bin/python bench/seated_step.py moba --envs 1024 --threads 2
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import envs_c
from services.common.config import SelfPlayConfig, resolve
from services.trainer.league import SelfPlayEnv
from services.trainer.policy import Policy


def per_step(step, actions: np.ndarray, steps: int) -> float:
    for _ in range(20):
        step(actions)
    started = time.perf_counter()
    for _ in range(steps):
        step(actions)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env", nargs="?", default="moba")
    parser.add_argument("--envs", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    config = resolve(args.env, {})
    bot_only = envs_c.make(args.env, args.envs, seed=0, num_threads=args.threads, **config.env)
    seated = envs_c.make(
        args.env, args.envs, seed=0, num_threads=args.threads, **{**config.env, "opponent": 1}
    )
    policy = Policy(seated.spec.observation_space.shape, seated.spec.to_dict()["action"], config.policy)
    selfplay = SelfPlayEnv(seated, policy, SelfPlayConfig(mirror=0.0, past=0.0, bot=1.0), torch.device("cpu"))
    bot_only.reset(0)
    selfplay.reset(0)
    rng = np.random.default_rng(0)
    rows = {}
    for name, env in (("bot_only", bot_only), ("selfplay", selfplay)):
        actions = np.ascontiguousarray(rng.integers(0, 3, size=env.actions.shape), dtype=env.actions.dtype)
        rows[name] = sorted(per_step(env.step, actions, args.steps) for _ in range(args.repeats))[
            args.repeats // 2
        ]
    learner_rows = selfplay.num_agents
    out = {
        "env": args.env,
        "envs": args.envs,
        "threads": args.threads,
        "bot_only_ms": rows["bot_only"] * 1e3,
        "selfplay_ms": rows["selfplay"] * 1e3,
        "learner_rows": learner_rows,
        "selfplay_over_bot_only": rows["selfplay"] / rows["bot_only"],
    }
    print(json.dumps(out))
    selfplay.close()
    bot_only.close()


if __name__ == "__main__":
    main()
