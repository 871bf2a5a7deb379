"""Self-play for two-player games: who sits in the opponent's seat, and the environment the learner sees.

`League` is the bookkeeping, numpy only: the opponent kinds (the learner itself, snapshots of this run, the
scripted bot), prioritised fictitious self-play over the snapshots and the learner's results against every
member. `SelfPlayEnv` wraps a game created with both seats reading the action buffer and shows the training
loop only the learner's seat (seat 0), with the VecEnv interface the loop already uses; every step it fills
the other seat with one batched forward pass per member present, on the learner's device.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from envs_c.vector import VecEnv
from services.common.config import SelfPlayConfig
from services.trainer.policy import Policy

MIRROR, BOT, FIRST_SNAPSHOT = 0, 1, 2


class League:
    """Members are codes: MIRROR, BOT, and FIRST_SNAPSHOT + k for snapshot slot k."""

    def __init__(self, config: SelfPlayConfig, seed: int = 0):
        self.config = config
        self.rng = np.random.default_rng(seed)
        size = FIRST_SNAPSHOT + config.pool_size
        self.steps = np.full(config.pool_size, -1, dtype=np.int64)  # the snapshot in each slot, -1: empty
        # The learner's results (win 1, draw 0.5) against each member: all along, and since the last metrics.
        self.points = np.zeros(size)
        self.games = np.zeros(size)
        self.window_points = np.zeros(size)
        self.window_games = np.zeros(size)
        self._next_slot = 0

    @property
    def snapshots(self) -> np.ndarray:
        """The slots holding a snapshot."""
        return np.flatnonzero(self.steps >= 0)

    def snapshot_weights(self) -> np.ndarray:
        """Prioritised fictitious self-play: a snapshot is drawn in proportion to (1 - x)^p, where x is the
        learner's win rate against it (a Beta(1, 1) prior, so a new snapshot starts at 0.5): the snapshots
        that still beat the learner are played most, the ones it has mastered hardly at all."""
        codes = FIRST_SNAPSHOT + self.snapshots
        rate = (self.points[codes] + 1.0) / (self.games[codes] + 2.0)
        weights = (1.0 - rate) ** self.config.pfsp_power
        return weights / weights.sum() if weights.sum() > 0 else np.full(len(codes), 1.0 / len(codes))

    def sample(self, n: int) -> np.ndarray:
        """Opponents for n games; a draw of `past` falls back to the mirror while the pool is empty."""
        c = self.config
        kinds = self.rng.choice(3, size=n, p=[c.mirror, c.bot, c.past])
        out = np.where(kinds == 1, BOT, MIRROR)
        past = np.flatnonzero(kinds == 2)
        slots = self.snapshots
        if len(past) and len(slots):
            out[past] = FIRST_SNAPSHOT + self.rng.choice(slots, size=len(past), p=self.snapshot_weights())
        return out

    def add_snapshot(self, step: int) -> int:
        """Take a slot for the snapshot at `step`, the oldest one's once the pool is full; returns it."""
        slot = self._next_slot
        self._next_slot = (slot + 1) % len(self.steps)
        self.steps[slot] = step
        code = FIRST_SNAPSHOT + slot
        self.points[code] = self.games[code] = self.window_points[code] = self.window_games[code] = 0.0
        return slot

    def record(self, codes: np.ndarray, results: np.ndarray) -> None:
        """The learner's results (1 win, 0.5 draw, 0 loss) of finished games against members `codes`."""
        for totals in ((self.points, self.games), (self.window_points, self.window_games)):
            np.add.at(totals[0], codes, results)
            np.add.at(totals[1], codes, 1.0)

    def metrics(self) -> dict[str, float]:
        """The pool and the learner's win rate against each member over the games since the last call."""
        out = {"league/pool_size": float(len(self.snapshots))}
        names = {MIRROR: "mirror", BOT: "bot"}
        names |= {FIRST_SNAPSHOT + int(k): f"step_{int(self.steps[k])}" for k in self.snapshots}
        for code, name in names.items():
            if self.window_games[code]:
                out[f"league/winrate/{name}"] = float(self.window_points[code] / self.window_games[code])
                out[f"league/games/{name}"] = float(self.window_games[code])
        past = FIRST_SNAPSHOT + self.snapshots
        if self.window_games[past].sum():
            out["league/winrate/past"] = float(self.window_points[past].sum() / self.window_games[past].sum())
        self.window_points[:] = 0.0
        self.window_games[:] = 0.0
        return out


class SelfPlayEnv:
    """The learner's seat of a two-player game; the other seat is played by the league's members.

    `env` must have both seats reading the action buffer (opponent = 1). Its buffers hold every seat; this
    object's `observations`, `actions`, `rewards`, `terminals` and `truncations` hold the learner's rows
    only, so the trainer's rollout and update see nothing of the opponents.
    """

    def __init__(
        self,
        env: VecEnv,
        learner: Policy,
        config: SelfPlayConfig,
        device: torch.device,
        seed: int = 0,
        allocate: Callable[[tuple[int, ...], np.dtype], np.ndarray] | None = None,
    ):
        players = env.spec.players
        if players is None or len(players) != 2:
            raise ValueError(f"{env.spec.name}: self-play needs both seats in the action buffer (opponent=1)")
        self.env, self.spec, self.learner, self.device = env, env.spec, learner, device
        self.league = League(config, seed)
        self.num_envs = env.num_envs
        per_env = env.spec.agents_per_env
        base = np.arange(env.num_envs)[:, None] * per_env
        self._mine = (base + np.array(players[0])).ravel()
        self._theirs = (base + np.array(players[1])).ravel()
        self._seat = len(players[1])  # opponent rows per environment
        self.num_agents = len(self._mine)
        alloc = allocate or (lambda shape, dtype: np.zeros(shape, dtype))
        self.observations = alloc((self.num_agents, *env.observations.shape[1:]), env.observations.dtype)
        self.actions = alloc((self.num_agents, *env.actions.shape[1:]), env.actions.dtype)
        self.rewards = alloc((self.num_agents,), env.rewards.dtype)
        self.terminals = alloc((self.num_agents,), env.terminals.dtype)
        self.truncations = alloc((self.num_agents,), env.truncations.dtype)
        self._result = (self.observations, self.rewards, self.terminals, self.truncations)
        self.opponent = self.league.sample(env.num_envs)  # per environment, a member code
        self._snapshots = [copy.deepcopy(learner).requires_grad_(False) for _ in range(config.pool_size)]
        self._sums: dict[str, float] = {}
        self._episodes = 0.0
        self._obs_dtype = torch.uint8 if env.observations.dtype == np.uint8 else torch.float32

    def snapshot(self, step: int) -> None:
        """Freeze the learner's current weights into the pool as the snapshot of `step`."""
        slot = self.league.add_snapshot(step)
        self._snapshots[slot].load_state_dict(self.learner.state_dict())

    def reset(self, seed: int | None = None) -> np.ndarray:
        self.env.reset(seed)
        self._gather()
        return self.observations

    def _gather(self) -> None:
        env = self.env
        full = (env.observations, env.rewards, env.terminals, env.truncations)
        for mine, theirs in zip(self._result, full, strict=True):
            np.take(theirs, self._mine, axis=0, out=mine)

    @torch.no_grad()
    def _opponent_actions(self) -> np.ndarray:
        """One forward pass per member present, over all the environments it plays in."""
        rows_of = np.repeat(self.opponent, self._seat)  # the member of every opponent row
        out = np.zeros((len(self._theirs), *self.env.actions.shape[1:]), self.env.actions.dtype)
        if (rows_of == BOT).any():
            out[rows_of == BOT] = self.env.scripted_actions()[self._theirs[rows_of == BOT]]
        networked = rows_of != BOT
        if not networked.any():
            return out
        for code in np.unique(rows_of[networked]):
            policy = self.learner if code == MIRROR else self._snapshots[code - FIRST_SNAPSHOT]
            pick = rows_of == code
            obs = torch.from_numpy(self.env.observations[self._theirs[pick]]).to(self.device)
            params, _, _ = policy(obs.to(self._obs_dtype))
            out[pick] = policy.env_actions(policy.sample(params)).cpu().numpy()
        return out

    def step(self, actions: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step with the learner's `actions` (None: already written into `self.actions`)."""
        if actions is not None:
            np.copyto(self.actions, actions, casting="unsafe")
        full = self.env.actions
        full[self._mine] = self.actions
        full[self._theirs] = self._opponent_actions()
        self.env.step()
        self._gather()
        first = self.num_agents // self.num_envs  # every agent of a game ends with it: read its first row
        ended = np.flatnonzero(self.terminals[::first] | self.truncations[::first])
        if len(ended):
            self._finish(ended)
        return self._result

    def _finish(self, ended: np.ndarray) -> None:
        """Record the games that ended against their members and draw the next opponents."""
        results = np.zeros(len(ended))
        for j, i in enumerate(ended):
            log = self.env.env_log(int(i))
            n = log.pop("n", 0.0)
            for key, value in log.items():
                self._sums[key] = self._sums.get(key, 0.0) + value * n
            self._episodes += n
            results[j] = log.get("perf", 0.5)
        self.league.record(self.opponent[ended], results)
        self.opponent[ended] = self.league.sample(len(ended))

    def log(self) -> dict[str, float]:
        """Like VecEnv.log, for the learner's seat (perf is its result against the mix of opponents)."""
        if not self._episodes:
            return {}
        out = {key: value / self._episodes for key, value in self._sums.items()}
        out["n"] = self._episodes
        self._sums, self._episodes = {}, 0.0
        return out

    def metrics(self) -> dict[str, float]:
        return self.league.metrics()

    def close(self) -> None:
        self.env.close()
