"""What each C environment is, as plain data.

This module is the single source of truth about the environments: their configuration fields, log fields,
observation and action shapes, and what `perf` means. The cffi builder reads it (stdlib only, so the build
needs nothing installed) to generate declarations, and cffi then checks them against the C structs, so a
field that differs between C and Python fails the build instead of corrupting memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Kwargs = Mapping[str, Any]


@dataclass(frozen=True)
class Param:
    """One configuration field of an environment, written into its C struct before init."""

    name: str
    ctype: str  # "int" or "float": the C field type
    default: float
    low: float
    high: float
    doc: str

    def coerce(self, env: str, value: Any) -> int | float:
        """Check a user value against type and bounds; errors name the environment and the field."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{env}.{self.name}: expected a number, got {value!r}")
        if self.ctype == "int" and float(value) != int(value):
            raise ValueError(f"{env}.{self.name}: expected an integer, got {value!r}")
        if not self.low <= value <= self.high:
            raise ValueError(f"{env}.{self.name}: {value!r} is outside [{self.low}, {self.high}]")
        return int(value) if self.ctype == "int" else float(value)


@dataclass(frozen=True)
class Action:
    """One agent's action space: kind is discrete (nvec has one entry), multidiscrete or continuous."""

    kind: str
    nvec: tuple[int, ...] = ()
    low: float = -1.0
    high: float = 1.0
    size: int = 1

    @property
    def width(self) -> int:
        """Columns of the action buffer per agent."""
        return len(self.nvec) if self.kind != "continuous" else self.size

    @property
    def dtype(self) -> str:
        return "float32" if self.kind == "continuous" else "int32"


@dataclass(frozen=True)
class EnvDef:
    name: str
    header: str
    struct: str
    log_struct: str
    log_fields: tuple[str, ...]
    obs_shape: tuple[int, ...]
    obs_dtype: str
    obs_low: float
    obs_high: float
    action: Action
    perf: str
    solved: float
    params: tuple[Param, ...] = ()
    agents_per_env: Callable[[Kwargs], int] = field(default=lambda kw: 1)
    # For games: the agent indices within one environment that each player controls.
    players: Callable[[Kwargs], tuple[tuple[int, ...], ...]] | None = None

    def config(self, kwargs: Kwargs) -> dict[str, int | float]:
        """Defaults overlaid with validated user kwargs; unknown names are refused."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            raise ValueError(
                f"{self.name}: unknown setting {unknown[0]!r}; known: {sorted(known) or 'none'}"
            )
        return {
            name: p.coerce(self.name, kwargs.get(name, p.default)) for name, p in known.items()
        }


COMMON_LOG = ("perf", "score", "episode_return", "episode_length")

ENVS: dict[str, EnvDef] = {}


def register(env: EnvDef) -> None:
    if env.log_fields[: len(COMMON_LOG)] != COMMON_LOG or env.log_fields[-1] != "n":
        raise ValueError(f"{env.name}: log fields must start with {COMMON_LOG} and end with 'n'")
    ENVS[env.name] = env


register(
    EnvDef(
        name="cartpole",
        header="cartpole.h",
        struct="CartPole",
        log_struct="CartPoleLog",
        log_fields=(*COMMON_LOG, "invalid_actions", "n"),
        obs_shape=(4,),
        obs_dtype="float32",
        obs_low=-float("inf"),
        obs_high=float("inf"),
        action=Action("discrete", (2,)),
        perf="episode length / max_steps: 1 means the pole stayed up for the whole episode",
        solved=0.95,
        params=(Param("max_steps", "int", 500, 1, 100_000, "steps before truncation"),),
    )
)
