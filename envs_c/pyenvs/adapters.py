"""One Python environment behind the C contract: it reads its action rows from shared buffers and writes its
observation, reward and done rows and its Log there, resetting itself in place when an episode ends (so the
observation written then is the next episode's first, as a C environment's is).

Three kinds: a Gymnasium environment (one row), a PettingZoo ParallelEnv (one row per agent) and a
two-player turn-based PettingZoo game (one row per seat it controls: the learner's, or both in mirror mode).
Observations are flattened (Dict, Tuple, Discrete...) into one row; actions are validated like C validates
them: out of range is clamped and counted in the Log's invalid_actions, NaN becomes 0, an illegal move in a
game becomes a random legal one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from envs_c.pyenvs.recipe import Recipe

COMMON_LOG = ("perf", "score", "episode_return", "episode_length")
SINGLE_LOG = (*COMMON_LOG, "invalid_actions", "n")
GAME_LOG = (*COMMON_LOG, "wins", "draws", "invalid_actions", "n")


@dataclass
class Rows:
    """An environment's rows of the shared buffers (views), and its Log row."""

    obs: np.ndarray  # (agents, obs_size)
    actions: np.ndarray  # (agents,) or (agents, width)
    rewards: np.ndarray
    terminals: np.ndarray
    truncations: np.ndarray
    log: np.ndarray  # (log fields,)
    scripted: np.ndarray  # like actions: where scripted_actions() writes


def obs_dtype(space: spaces.Box) -> np.dtype:
    """The buffer dtype for a flattened observation: a byte type when every value fits one, else float32."""
    kind, low, high = space.dtype.kind, float(np.min(space.low)), float(np.max(space.high))
    if kind in "biu" and low >= 0 and high <= 255:
        return np.dtype(np.uint8)
    if kind in "iu" and low >= -128 and high <= 127:
        return np.dtype(np.int8)
    return np.dtype(np.float32)


class Flattener:
    """`write(obs, out)` puts one observation of `space` into a flat row (Box fast path, gymnasium's flatten
    otherwise). Flattener and ActionReader bind the method for their space once: a Python environment
    steps in a few microseconds, and dispatching on the space every step (or through `__call__`) costs a
    tenth of that."""

    def __init__(self, space: spaces.Space):
        self.space = space
        self.box = isinstance(space, spaces.Box)
        vector = isinstance(space, spaces.Box) and len(space.shape) == 1  # already the row's shape
        self.write = self._assign if vector else self._flatten

    @staticmethod
    def _assign(obs: Any, out: np.ndarray) -> None:
        out[...] = obs  # casts as copyto(casting="unsafe") does, in a third of its time

    def _flatten(self, obs: Any, out: np.ndarray) -> None:
        # flatten() gives an array for every space it can flatten (dicts and tuples of boxes included).
        flat = np.asarray(obs).reshape(-1) if self.box else np.asarray(spaces.flatten(self.space, obs))
        np.copyto(out, flat, casting="unsafe")


class ActionReader:
    """`read(actions, agent)`: (action, invalid count) of row `agent` of `actions`, as the environment
    expects it, after the checks C would make."""

    start: int | np.ndarray  # the first action: one number (Discrete) or one per coordinate
    high: np.ndarray

    def __init__(self, space: spaces.Space):
        self.space = space
        if isinstance(space, spaces.Discrete):
            self.kind, self.n, self.start = "discrete", int(space.n), int(space.start)
        elif isinstance(space, spaces.MultiDiscrete):
            self.kind, self.high = "multi", space.nvec.reshape(-1).astype(np.int64) - 1
            self.start, self.shape = space.start.reshape(-1).astype(np.int64), space.nvec.shape
        elif isinstance(space, spaces.MultiBinary):
            self.kind, self.shape = "multi", space.shape
            self.high = np.ones(int(np.prod(space.shape)), np.int64)
            self.start = np.zeros_like(self.high)
        elif isinstance(space, spaces.Box):
            self.kind, self.shape = "box", space.shape
            self.low, self.high = space.low.reshape(-1), space.high.reshape(-1)
        else:
            raise ValueError(f"unsupported action space {space}")
        self.read = {"discrete": self._discrete, "multi": self._multi, "box": self._box}[self.kind]

    def _discrete(self, actions: np.ndarray, agent: int) -> tuple[int, int]:
        a = actions.item(agent)  # a Python int: indexing a numpy scalar and converting it costs twice
        if 0 <= a < self.n:
            return a + self.start, 0
        return min(max(a, 0), self.n - 1) + self.start, 1

    def _multi(self, actions: np.ndarray, agent: int) -> tuple[np.ndarray, int]:
        raw = actions[agent].astype(np.int64)
        bad = int(((raw < 0) | (raw > self.high)).sum())
        out = (np.clip(raw, 0, self.high) + self.start).reshape(self.shape)
        return (out.astype(self.space.dtype) if bad or out.dtype != self.space.dtype else out), bad

    def _box(self, actions: np.ndarray, agent: int) -> tuple[np.ndarray, int]:
        raw = actions[agent].astype(self.space.dtype)
        nan = np.isnan(raw)
        clipped = np.clip(np.where(nan, 0, raw), self.low, self.high)
        bad = int(nan.sum() + (clipped != np.where(nan, 0, raw)).sum())
        return clipped.reshape(self.shape), bad


def perf_of(episode_return: float, low: float, high: float) -> float:
    return float(min(1.0, max(0.0, (episode_return - low) / (high - low))))


class GymnasiumAdapter:
    """A Gymnasium environment: one row."""

    agents = 1

    def __init__(self, recipe: Recipe, rows: Rows, opponent: int = 0):
        self.env = recipe.construct()
        self.rows = rows
        # vector.py sets the bounds from the spec's returns, which every environment but a game has.
        assert recipe.perf_low is not None and recipe.perf_high is not None
        self.low, self.high = recipe.perf_low, recipe.perf_high
        self.write = Flattener(self.env.observation_space).write
        self.actions = ActionReader(self.env.action_space)
        self.read = self.actions.read
        self.obs_row = rows.obs[0]  # a view made once, not every step

    def reset(self, seed: int) -> None:
        self.env.action_space.seed(seed)
        obs, _ = self.env.reset(seed=seed)
        self._begin(obs)

    def _begin(self, obs: Any) -> None:
        self.ret, self.length, self.invalid = 0.0, 0, 0
        self.write(obs, self.obs_row)

    def step(self) -> None:
        rows = self.rows
        action, invalid = self.read(rows.actions, 0)
        obs, reward, terminated, truncated, _ = self.env.step(action)
        self.ret += float(reward)
        self.length += 1
        self.invalid += invalid
        rows.rewards[0] = reward
        rows.terminals[0] = terminated
        rows.truncations[0] = truncated
        if terminated or truncated:
            perf = perf_of(self.ret, self.low, self.high)
            rows.log += (perf, self.ret, self.ret, self.length, self.invalid, 1.0)
            obs, _ = self.env.reset()
            self._begin(obs)
            return
        self.write(obs, self.obs_row)

    def scripted(self) -> None:
        """A random action: Gymnasium environments bring no heuristic of their own."""
        self.rows.scripted[0] = np.asarray(self.env.action_space.sample()).reshape(
            self.rows.scripted[0].shape
        ) - (self.actions.start if self.actions.kind != "box" else 0)

    def render(self) -> np.ndarray:
        return self.env.render()

    def close(self) -> None:
        self.env.close()


class ParallelAdapter:
    """A PettingZoo ParallelEnv: one row per possible agent. An agent that is done before the others gets
    zero observations and rewards until the episode ends; the episode's perf maps the agents' mean return."""

    def __init__(self, recipe: Recipe, rows: Rows, opponent: int = 0):
        self.env = recipe.construct()
        self.rows = rows
        self.names = list(self.env.possible_agents)
        self.agents = len(self.names)
        # vector.py sets the bounds from the spec's returns, which every environment but a game has.
        assert recipe.perf_low is not None and recipe.perf_high is not None
        self.low, self.high = recipe.perf_low, recipe.perf_high
        self.write = Flattener(self.env.observation_space(self.names[0])).write
        self.read = ActionReader(self.env.action_space(self.names[0])).read

    def reset(self, seed: int) -> None:
        for i, name in enumerate(self.names):
            self.env.action_space(name).seed(seed + i)
        obs, _ = self.env.reset(seed=seed)
        self._begin(obs)

    def _begin(self, obs: dict[str, Any]) -> None:
        self.returns = np.zeros(self.agents)
        self.length, self.invalid = 0, 0
        self._observe(obs)

    def _observe(self, obs: dict[str, Any]) -> None:
        for i, name in enumerate(self.names):
            if name in obs:
                self.write(obs[name], self.rows.obs[i])
            else:
                self.rows.obs[i] = 0

    def step(self) -> None:
        rows, live = self.rows, set(self.env.agents)
        actions = {}
        for i, name in enumerate(self.names):
            if name in live:
                actions[name], invalid = self.read(rows.actions, i)
                self.invalid += invalid
        obs, rewards, terminations, truncations, _ = self.env.step(actions)
        self.length += 1
        for i, name in enumerate(self.names):
            rows.rewards[i] = rewards.get(name, 0.0)
            rows.terminals[i] = terminations.get(name, False)
            rows.truncations[i] = truncations.get(name, False)
        self.returns += rows.rewards
        if self.env.agents:
            self._observe(obs)
            return
        mean = float(self.returns.mean())
        rows.log += np.array((perf_of(mean, self.low, self.high), mean, mean, self.length, self.invalid, 1.0))
        ended = rows.terminals | rows.truncations
        rows.terminals[~ended.astype(bool)] = 1  # agents that ended earlier: the episode is over for all
        obs, _ = self.env.reset()
        self._begin(obs)

    def scripted(self) -> None:
        for i, name in enumerate(self.names):
            self.rows.scripted[i] = np.asarray(self.env.action_space(name).sample()).reshape(
                self.rows.scripted[i].shape
            )

    def render(self) -> np.ndarray:
        return self.env.render()

    def close(self) -> None:
        self.env.close()


class TurnGameAdapter:
    """A two-player turn-based PettingZoo game. Seat 0 is the first player to move.

    opponent=1 (mirror): two rows, both seats read the action buffer; only the seat to move acts, the other's
    action is ignored. opponent=0: one row, the learner; a random legal-move bot plays the other side, and
    the learner takes the first or second player at random each game, so it learns both. The Log is seat 0's
    (the learner's against the bot): perf and wins count 1 for a win and draws 0.5 in perf.
    """

    def __init__(self, recipe: Recipe, rows: Rows, opponent: int = 0):
        self.env = recipe.construct()
        self.rows = rows
        self.mirror = bool(opponent)
        self.seats = list(self.env.possible_agents)
        if len(self.seats) != 2:
            raise ValueError(f"{recipe.env_id}: a turn-based game needs two players, has {self.seats}")
        self.agents = 2 if self.mirror else 1
        self.write = Flattener(self.env.observation_space(self.seats[0])).write
        self.n = int(self.env.action_space(self.seats[0]).n)
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.env.reset(seed=seed)
        self._begin()

    def _begin(self) -> None:
        self.row_agents = self.seats if self.mirror else [self.seats[int(self.rng.integers(2))]]
        self.returns = dict.fromkeys(self.seats, 0.0)
        self.step_rewards = dict.fromkeys(self.seats, 0.0)
        self.moves, self.invalid = 0, 0
        if not self.mirror:
            self._bot_moves()
        self._observe()

    def _over(self) -> bool:
        env = self.env
        return not env.agents or any(env.terminations.values()) or any(env.truncations.values())

    def _mask(self, agent: str) -> np.ndarray | None:
        obs = self.env.observe(agent)
        return np.asarray(obs["action_mask"]) if isinstance(obs, dict) and "action_mask" in obs else None

    def _legal_moves(self, agent: str) -> np.ndarray:
        mask = self._mask(agent)
        return np.arange(self.n) if mask is None else np.flatnonzero(mask)

    def _random_move(self, agent: str) -> int:
        legal = self._legal_moves(agent)
        return int(self.rng.choice(legal)) if len(legal) else 0

    def _play(self, move: int) -> None:
        self.env.step(move)
        self.moves += 1
        for agent, reward in self.env.rewards.items():
            self.step_rewards[agent] += float(reward)
            self.returns[agent] += float(reward)

    def _bot_moves(self) -> None:
        while not self._over() and self.env.agent_selection != self.row_agents[0]:
            self._play(self._random_move(self.env.agent_selection))

    def _observe(self) -> None:
        for row, agent in enumerate(self.row_agents):
            self.write(self.env.observe(agent), self.rows.obs[row])

    def step(self) -> None:
        rows, mover = self.rows, self.env.agent_selection
        raw = int(rows.actions[self.row_agents.index(mover)])
        legal = self._legal_moves(mover)
        if raw in legal:
            move = raw
        else:
            self.invalid += 1
            move = int(self.rng.choice(legal)) if len(legal) else 0
        self.step_rewards = dict.fromkeys(self.seats, 0.0)
        self._play(move)
        if not self.mirror:
            self._bot_moves()
        for row, agent in enumerate(self.row_agents):
            rows.rewards[row] = self.step_rewards[agent]
        over = self._over()
        truncated = over and not any(self.env.terminations.values())
        rows.terminals[:] = over and not truncated
        rows.truncations[:] = truncated
        if not over:
            self._observe()
            return
        result = self.returns[self.row_agents[0]]
        win, draw = float(result > 0), float(result == 0)
        perf = win + 0.5 * draw
        rows.log += (perf, perf, result, self.moves, win, draw, self.invalid, 1.0)
        self.env.reset(seed=int(self.rng.integers(2**31)))
        self._begin()

    def scripted(self) -> None:
        """A random legal move for the seat to move (the other seat's row gets 0)."""
        mover = self.env.agent_selection
        for row, agent in enumerate(self.row_agents):
            self.rows.scripted[row] = self._random_move(agent) if agent == mover else 0

    def render(self) -> np.ndarray:
        return self.env.render()

    def close(self) -> None:
        self.env.close()


Adapter = GymnasiumAdapter | ParallelAdapter | TurnGameAdapter
ADAPTERS: dict[str, type[Adapter]] = {
    "gymnasium": GymnasiumAdapter,
    "parallel": ParallelAdapter,
    "game": TurnGameAdapter,
}
