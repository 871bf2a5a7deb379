"""Which Python environments a deployment allows: SHOAL_PYTHON_ENVS, a comma-separated list of id patterns.

An id names code to import (`gymnasium:pkg.module:Env-v0` imports `pkg.module`), so nothing that names a
module is imported before its id matches a pattern here. In a pattern `*` matches any run of characters
except `:`, so `gymnasium:CartPole-v*` can never admit `gymnasium:CartPole-v1:os` (an import of `os`); a
pattern allows module prefixes only by spelling the colon (`gymnasium:mypkg.envs:*`).
"""

from __future__ import annotations

import os
import re

# Gymnasium's classic-control environments and PettingZoo's classic games (turn-based board and card
# games, all under pettingzoo.classic, so this pattern cannot reach outside that package).
DEFAULT = ",".join(
    [
        "gymnasium:CartPole-v0",
        "gymnasium:CartPole-v1",
        "gymnasium:Acrobot-v1",
        "gymnasium:MountainCar-v0",
        "gymnasium:MountainCarContinuous-v0",
        "gymnasium:Pendulum-v1",
        "pettingzoo:classic.*",
    ]
)
VARIABLE = "SHOAL_PYTHON_ENVS"


def patterns() -> list[str]:
    """The patterns in force, read now (so the API and each worker see the deployment's setting)."""
    return [p.strip() for p in os.environ.get(VARIABLE, DEFAULT).split(",") if p.strip()]


def allowed(env_id: str, among: list[str] | None = None) -> bool:
    """Whether `env_id` matches one of the patterns (`among`, default the setting's)."""
    return any(_compile(p).fullmatch(env_id) for p in (patterns() if among is None else among))


def concrete_ids() -> list[str]:
    """The patterns that name one environment each (no wildcard), as GET /envs lists them."""
    return [p for p in patterns() if "*" not in p and "?" not in p]


def _compile(pattern: str) -> re.Pattern[str]:
    out = []
    for char in pattern:
        out.append("[^:]*" if char == "*" else "[^:]" if char == "?" else re.escape(char))
    return re.compile("".join(out))
