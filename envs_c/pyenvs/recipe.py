"""How to construct one Python environment, as plain picklable data that travels to worker processes."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

# pygame (classic-control and PettingZoo rendering) prints a banner on import and wants a display.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

# A PettingZoo id names a module under pettingzoo when it starts with one of its families.
PETTINGZOO_FAMILIES = ("atari", "butterfly", "classic", "mpe", "sisl")


@dataclass(frozen=True)
class Recipe:
    """`family`: "gymnasium" (one agent), "parallel" (a PettingZoo ParallelEnv, one row per agent) or
    "game" (a two-player turn-based PettingZoo AEC game). `target` is the Gymnasium id or the module."""

    env_id: str
    family: str
    target: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    # Episode returns mapped to perf 0 and perf 1 (linear, clipped); None for games (perf is the result).
    perf_low: float | None = None
    perf_high: float | None = None

    def construct(self) -> Any:
        """A fresh environment, drawing rgb_array frames when it can (rendering costs nothing until asked)."""
        kwargs = dict(self.kwargs)
        if self.family == "gymnasium":
            import gymnasium

            env = gymnasium.make(self.target, disable_env_checker=True, **kwargs)
            if "rgb_array" in env.metadata.get("render_modes", ()) and "render_mode" not in kwargs:
                env.close()
                env = gymnasium.make(self.target, disable_env_checker=True, render_mode="rgb_array", **kwargs)
            return env
        module = pettingzoo_module(self.target)
        make = module.parallel_env if self.family == "parallel" else module.env
        raw = getattr(module, "raw_env", None)
        if "rgb_array" in getattr(raw, "metadata", {}).get("render_modes", ()):
            kwargs.setdefault("render_mode", "rgb_array")
        return make(**kwargs)


def pettingzoo_module(target: str) -> ModuleType:
    """`classic.connect_four_v3` is pettingzoo.classic.connect_four_v3; anything else is imported as named."""
    first = target.split(".", 1)[0]
    return importlib.import_module(f"pettingzoo.{target}" if first in PETTINGZOO_FAMILIES else target)
