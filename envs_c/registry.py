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
            raise ValueError(f"{self.name}: unknown setting {unknown[0]!r}; known: {sorted(known) or 'none'}")
        return {name: p.coerce(self.name, kwargs.get(name, p.default)) for name, p in known.items()}


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


def _two_seats(kw: Kwargs) -> int:
    return 2 if kw["opponent"] else 1


def _seats(kw: Kwargs) -> tuple[tuple[int, ...], ...]:
    return ((0,), (1,)) if kw["opponent"] else ((0,),)


OPPONENT = Param(
    "opponent", "int", 0, 0, 1, "0: a built-in bot plays seat 1; 1: both seats read the action buffer"
)
GAME_LOG = (*COMMON_LOG, "wins", "draws", "invalid_actions", "n")

register(
    EnvDef(
        name="squared",
        header="squared.h",
        struct="Squared",
        log_struct="SquaredLog",
        log_fields=(*COMMON_LOG, "reached", "invalid_actions", "n"),
        obs_shape=(121,),
        obs_dtype="uint8",
        obs_low=0,
        obs_high=2,
        action=Action("discrete", (5,)),
        perf="shortest path length / steps taken when the target is reached, 0 on timeout",
        solved=0.9,
        params=(Param("max_steps", "int", 40, 1, 100_000, "steps before truncation"),),
    )
)

register(
    EnvDef(
        name="breakout",
        header="breakout.h",
        struct="Breakout",
        log_struct="BreakoutLog",
        log_fields=(*COMMON_LOG, "balls_lost", "invalid_actions", "n"),
        obs_shape=(102,),
        obs_dtype="float32",
        obs_low=-1,
        obs_high=1,
        action=Action("discrete", (3,)),
        perf="bricks cleared / 96 (score / max score) when the episode ends",
        solved=0.9,
        params=(
            Param("frameskip", "int", 4, 1, 64, "frames per agent step (the action repeats)"),
            Param("max_steps", "int", 4000, 1, 1_000_000, "agent steps before truncation"),
        ),
    )
)

register(
    EnvDef(
        name="pong",
        header="pong.h",
        struct="Pong",
        log_struct="PongLog",
        log_fields=(*COMMON_LOG, "wins", "hits", "invalid_actions", "n"),
        obs_shape=(8,),
        obs_dtype="float32",
        obs_low=-1,
        obs_high=1,
        action=Action("discrete", (3,)),
        perf=(
            "share of the game's points won by seat 0 (rally win rate against the bot, or seat 0's in "
            "self-play); the game win rate is logged as wins"
        ),
        solved=0.8,
        params=(
            OPPONENT,
            Param("frameskip", "int", 4, 1, 64, "frames per agent step (the action repeats)"),
            Param("points", "int", 11, 1, 1000, "points that win the game (one episode)"),
            Param("max_steps", "int", 5000, 1, 1_000_000, "agent steps before truncation"),
        ),
        agents_per_env=_two_seats,
        players=_seats,
    )
)

register(
    EnvDef(
        name="connect4",
        header="connect4.h",
        struct="Connect4",
        log_struct="Connect4Log",
        log_fields=GAME_LOG,
        obs_shape=(43,),
        obs_dtype="float32",
        obs_low=-1,
        obs_high=1,
        action=Action("discrete", (7,)),
        perf="seat 0's result: 1 win, 0.5 draw, 0 loss (win rate against the depth-d negamax bot)",
        solved=0.85,
        params=(
            OPPONENT,
            Param("depth", "int", 3, 1, 8, "plies searched by the negamax bot and the scripted policy"),
        ),
        agents_per_env=_two_seats,
        players=_seats,
    )
)

register(
    EnvDef(
        name="snake",
        header="snake.h",
        struct="Snake",
        log_struct="SnakeLog",
        log_fields=(*COMMON_LOG, "deaths", "invalid_actions", "n"),
        obs_shape=(11, 11),
        obs_dtype="int8",
        obs_low=0,
        obs_high=3,
        action=Action("discrete", (4,)),
        perf="min(1, food eaten in one life / goal)",
        solved=0.7,
        params=(
            Param("width", "int", 48, 4, 128, "arena width in cells"),
            Param("height", "int", 48, 4, 128, "arena height in cells"),
            Param("num_snakes", "int", 16, 1, 4096, "snakes (agents) sharing one arena"),
            Param("num_food", "int", 48, 1, 8192, "food items kept in the arena"),
            Param("max_length", "int", 128, 2, 4096, "longest a snake grows"),
            Param("max_steps", "int", 1000, 1, 1_000_000, "steps per life before truncation"),
            Param("goal", "int", 20, 1, 100_000, "food in one life that counts as perf 1"),
        ),
        agents_per_env=lambda kw: int(kw["num_snakes"]),
    )
)

register(
    EnvDef(
        name="reversi",
        header="reversi.h",
        struct="Reversi",
        log_struct="ReversiLog",
        log_fields=GAME_LOG,
        obs_shape=(129,),
        obs_dtype="float32",
        obs_low=-1,
        obs_high=1,
        action=Action("discrete", (64,)),
        perf="seat 0's result: 1 win, 0.5 draw, 0 loss (win rate against the positional bot)",
        solved=0.85,
        params=(OPPONENT,),
        agents_per_env=_two_seats,
        players=_seats,
    )
)

register(
    EnvDef(
        name="navigate",
        header="navigate.h",
        struct="Navigate",
        log_struct="NavigateLog",
        log_fields=(*COMMON_LOG, "reached", "invalid_actions", "n"),
        obs_shape=(8,),
        obs_dtype="float32",
        obs_low=-1,
        obs_high=1,
        action=Action("continuous", low=-1.0, high=1.0, size=2),
        perf="1 - 0.5 * steps / max_steps when the target is reached (faster is better), 0 on timeout",
        solved=0.8,
        params=(Param("max_steps", "int", 200, 1, 100_000, "steps before truncation"),),
    )
)
