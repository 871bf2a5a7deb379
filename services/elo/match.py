"""The headless match runner: two players, G games, one vectorized C environment (pure: no DB, no Celery).

A player is a checkpoint (loaded with safetensors through the trainer's `load_policy`, which refuses
another environment, another env version or a spec that no longer matches) or one of two anchors:

* ``"random"``: a uniform random action every step (for board games an illegal pick is replaced by the
  C environment with the nearest legal move, as for any player);
* ``"scripted"``: the environment's built-in bot, through ``VecEnv.scripted_actions()``.

How a batch is played:

* **One vector, both seats.** The environment runs with ``opponent=1`` (both seats read the action
  buffer), G copies in one ``VecEnv``. Each player does one forward pass per step over all of its seats,
  so inference is batched across every concurrent game.
* **Pairs with swapped seats on the same start.** Games ``p`` and ``p + G/2`` form a pair: player A sits
  in seat 0 in the first and seat 1 in the second, and both environments are reset from the same pair
  seed, so the pair starts from the same position (pong's serve, connect4's and reversi's are fixed).
  The pair seed is what a match row records: ``VecEnv(env, 1, seed=pair_seed, opponent=1)`` replays its
  start. Rows of one pair therefore share a seed.
* **Exactly one episode per environment.** The first time environment i ends, its result is read from
  ``env_log(i)`` (which then holds exactly that episode); what the environment plays after its automatic
  reset is ignored. Every game starts from ``policy.initial_state``, so recurrent state never leaks
  between games or players.
* **Stalled games.** A game that has not ended by a terminal after ``max_steps`` steps, or that the
  environment truncates on its own step limit (pong's ``max_steps``), is recorded with ``timeout=True``
  and counts as a **draw** (score 0.5): it is evidence that neither side could win in time, and
  dropping it would bias ratings towards players that win quickly.
* **Determinism.** Checkpoints sample their actions (``deterministic=False``, the default) through a
  ``torch.Generator`` seeded from the match seed, and the random anchor uses a numpy generator seeded
  from it too, so a batch replays exactly given the seed (with torch on one thread). Sampling is the
  better default for rating: connect4 and reversi start from a fixed position, so two deterministic
  policies replay the same game in every pair, and the rating would rest on two games repeated G/2
  times. ``deterministic=True`` (argmax) is available for inspection.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

import envs_c
from envs_c.registry import ENVS
from services.elo.games import is_game
from services.elo.seeds import derive
from services.trainer import policy as policy_module
from services.trainer.checkpoint import CheckpointError, load_policy
from services.trainer.policy import Policy

ANCHORS = ("random", "scripted")


class Refused(ValueError):
    """A match that cannot be played, with the reason; ``side`` is "a", "b" or None (both / neither)."""

    def __init__(self, reason: str, side: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.side = side


@dataclass(frozen=True)
class Player:
    """Who sits at a seat: an anchor (policy is None) or a loaded checkpoint."""

    name: str
    policy: Policy | None = None
    env_config: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "checkpoint" if self.policy is not None else self.name


@dataclass(frozen=True)
class GameResult:
    score_a: float  # 1 A won, 0.5 draw or timeout, 0 A lost
    seat_a: int
    seed: int  # the pair seed: both games of a pair carry it
    steps: int
    timeout: bool


def load_player(
    source: str | Path, env: str, env_version: str | None = None, within: Path | None = None
) -> Player:
    """An anchor name or a checkpoint stem; raises `Refused` with the reason if it cannot play `env`
    (or, with `within`, if its files lie outside that directory)."""
    if isinstance(source, str) and source in ANCHORS:
        return Player(source)
    if not is_game(env):
        raise Refused(f"{env!r} is not a two-player environment")
    stem = Path(source)
    try:
        policy, meta = load_policy(
            stem, env=env, env_version=env_version or envs_c.version(env), within=within
        )
    except CheckpointError as e:
        raise Refused(str(e)) from None
    config = dict(meta.get("env_config") or {})
    # A checkpoint trained against the bot (opponent=0) has one agent per env in its spec; what must
    # match for it to sit at a seat is what one seat sees and does, not the number of agents.
    try:
        seat = envs_c.make_spec(env, **{**config, "opponent": 1}).to_dict()
    except ValueError as e:
        raise Refused(f"{stem.name}: unusable env config: {e}") from None
    saved = meta.get("env_spec") or {}
    for part in ("observation", "action"):
        if saved.get(part) != seat[part]:
            raise Refused(f"{stem.name}: {part} spec {saved.get(part)} differs from a seat's {seat[part]}")
    policy.requires_grad_(False)
    return Player(str(stem.name), policy, config)


def match_config(env: str, a: Player, b: Player) -> dict[str, Any]:
    """The environment settings a match is played with: the checkpoints' game settings, opponent=1.

    Two checkpoints trained under different rules (pong's frameskip, moba's team size) would not play the
    same game, so that is refused rather than silently favouring one of them. Settings the spec marks
    `game = false` (reward shaping, the bot's strength) take their defaults: they do not change what a
    match is, and the scripted anchor must be one player, not a different bot per opponent.
    """
    definition = ENVS[env]
    configs = [
        {k: v for k, v in definition.game_config(p.env_config).items() if k != "opponent"}
        for p in (a, b)
        if p.policy is not None
    ]
    if len(configs) == 2 and configs[0] != configs[1]:
        diff = sorted(k for k in configs[0] if configs[0][k] != configs[1][k])
        raise Refused(
            f"the checkpoints were trained with different {env} settings ({', '.join(diff)}): "
            f"{configs[0]} vs {configs[1]}"
        )
    return {**(configs[0] if configs else {}), "opponent": 1}


def pair_seeds(seed: int, pairs: int) -> list[int]:
    """One seed per pair, derived from the match seed."""
    return derive(int(seed), 0x5E1F, count=pairs)


@cache
def code_version() -> str:
    """Hash of the code that decides a match's outcome, recorded per match: this package, and the policy
    module as imported (wherever it lives)."""
    sources = [(path.name, path.read_text()) for path in sorted(Path(__file__).parent.glob("*.py"))]
    sources.append((policy_module.__name__, inspect.getsource(policy_module)))
    digest = hashlib.sha256()
    for name, text in sources:
        digest.update(name.encode())
        digest.update(text.encode())
    return digest.hexdigest()[:16]


class _Seat:
    """One player's view of the batch: its rows of the agent buffers, its recurrent state."""

    def __init__(
        self, player: Player, rows: np.ndarray, generator: torch.Generator, rng: np.random.Generator
    ):
        self.player = player
        self.rows = rows
        self.generator = generator
        self.rng = rng
        self.state = player.policy.initial_state(len(rows), "cpu") if player.policy is not None else None

    def act(self, vec: envs_c.VecEnv, scripted: np.ndarray | None, deterministic: bool) -> np.ndarray:
        if self.player.name == "scripted" and self.player.policy is None:
            assert scripted is not None, "the match computes the bot's actions when a seat is the bot's"
            return scripted[self.rows]
        if self.player.policy is None:  # random
            space = vec.spec.action_space
            if isinstance(space, spaces.Discrete):
                return self.rng.integers(0, space.n, size=len(self.rows), dtype=np.int32)
            assert isinstance(space, spaces.MultiDiscrete), "games have discrete actions"
            return self.rng.integers(0, space.nvec, size=(len(self.rows), len(space.nvec)), dtype=np.int32)
        policy = self.player.policy
        obs = torch.from_numpy(vec.observations[self.rows])
        params, _, self.state = policy(obs, self.state)
        # The batch's own generator, not torch's global one, so that a batch replays exactly.
        deterministic = deterministic or not policy.nvec
        actions = policy.sample(params, deterministic=deterministic, generator=self.generator)
        return policy.env_actions(actions).numpy()


@torch.inference_mode()
def play(
    env: str,
    a: Player,
    b: Player,
    games: int,
    seed: int,
    *,
    max_steps: int = 10_000,
    deterministic: bool = False,
    env_config: dict[str, Any] | None = None,
) -> list[GameResult]:
    """Play `games` (even) games of A against B, half with A in seat 0; one result per game.

    `env_config` overrides settings (e.g. a short pong for tests); raises `Refused` if the match cannot
    be played. Results are in game order: pairs are (p, p + games/2).
    """
    _check_match(env, a, b, games, max_steps)
    config = {**match_config(env, a, b), **(env_config or {}), "opponent": 1}
    half = games // 2
    seeds = pair_seeds(seed, half)
    vec = envs_c.make(env, games, seed=seed, **config)
    try:
        players = vec.spec.players
        if players is None or len(players) != 2 or len(players[0]) != len(players[1]):
            raise Refused(f"{env} with {config} does not seat two players of equal size")
        for game in range(games):
            vec.reset_env(game, seeds[game % half])
        # Game g holds agents g * per_env + players[seat]; A sits in seat 0 in the first half.
        per_env = vec.spec.agents_per_env
        game_ids = np.arange(games)
        seat_a = (game_ids >= half).astype(np.int64)
        seat_rows = np.array(players)  # (2, agents per seat)
        rows_a = (per_env * game_ids[:, None] + seat_rows[seat_a]).ravel()
        rows_b = (per_env * game_ids[:, None] + seat_rows[1 - seat_a]).ravel()
        generator = torch.Generator().manual_seed(int(seed) & (2**63 - 1))
        rng = np.random.default_rng([int(seed) & (2**64 - 1), 1])
        seats = [_Seat(a, rows_a, generator, rng), _Seat(b, rows_b, generator, rng)]
        return _play_out(vec, seats, seat_a, seeds, max_steps, deterministic)
    finally:
        vec.close()


def _check_match(env: str, a: Player, b: Player, games: int, max_steps: int) -> None:
    if not is_game(env):
        raise Refused(f"{env!r} is not a two-player environment")
    if games < 2 or games % 2:
        raise ValueError(f"games must be an even number >= 2, got {games}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be positive, got {max_steps}")
    if ENVS[env].action.kind == "continuous" and "random" in (a.name, b.name):
        raise Refused(f"the random anchor needs a discrete action space; {env} has none")


def _play_out(
    vec: envs_c.VecEnv,
    seats: list[_Seat],
    seat_a: np.ndarray,
    seeds: list[int],
    max_steps: int,
    deterministic: bool,
) -> list[GameResult]:
    """Step every game to its end (or max_steps, a flagged draw); one result per game, in game order."""
    games, half, per_env = len(seat_a), len(seeds), vec.spec.agents_per_env
    need_scripted = any(s.player.policy is None and s.player.name == "scripted" for s in seats)
    done = np.zeros(games, dtype=bool)
    results: dict[int, GameResult] = {}
    actions = np.zeros_like(vec.actions)
    for step in range(1, max_steps + 1):
        scripted = vec.scripted_actions() if need_scripted else None
        for s in seats:
            actions[s.rows] = s.act(vec, scripted, deterministic)
        _, _, terminals, truncations = vec.step(actions)
        ended = (terminals | truncations).reshape(games, per_env).any(1) & ~done
        for g in np.flatnonzero(ended):
            results[int(g)] = _outcome(vec, int(g), int(seat_a[g]), seeds[g % half], step)
        done |= ended
        if done.all():
            break
    for g in np.flatnonzero(~done):
        results[int(g)] = GameResult(0.5, int(seat_a[g]), seeds[g % half], max_steps, True)
    return [results[g] for g in range(games)]


def _outcome(vec: envs_c.VecEnv, game: int, seat_a: int, seed: int, steps: int) -> GameResult:
    log = vec.env_log(game)
    if log.get("n") != 1.0:  # env_log must hold exactly the first episode of this environment
        raise RuntimeError(f"game {game}: expected one finished episode in its log, got {log}")
    first = vec.spec.agents_per_env * game
    truncated = bool(vec.truncations[first]) and not bool(vec.terminals[first])
    if truncated:  # the environment's own step limit: a timeout like ours
        return GameResult(0.5, seat_a, seed, steps, True)
    # Seat 0's result: pong logs wins in {0, 1}; the board games log wins and draws.
    seat0 = log["wins"] + 0.5 * log.get("draws", 0.0)
    if seat0 not in (0.0, 0.5, 1.0):
        raise RuntimeError(f"game {game}: seat 0's result {seat0} is not a win, draw or loss")
    return GameResult(seat0 if seat_a == 0 else 1.0 - seat0, seat_a, seed, steps, False)
