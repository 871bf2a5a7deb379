"""Self-play for two-player games: who sits in the opponent's seat, and the environment the learner sees.

`League` is the bookkeeping, numpy only: the opponent kinds (the learner itself, snapshots of this run and
checkpoints the config names, the scripted bot), prioritised fictitious self-play over the pool and the
learner's results against every member. `SelfPlayEnv` wraps a game created with both seats reading the
action buffer and shows the training loop only the learner's seat, with the VecEnv interface the loop
already uses; every step it fills the other seat on the learner's device, launched right after the
environment step (on a GPU in one captured graph: the learner on every row, the snapshots as one batched
pass over the rows they hold) and collected by the next step. The learner changes seat every game, so it
learns to move second in the board games too.

Snapshots are written to `pool_dir` as they are taken, so a run resumed from a checkpoint gets back the pool
it had at that checkpoint. A `LeagueLink` (the worker's database glue) supplies the Elo service's results
of the learner against pool members and the stems of the checkpoints the config names.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.func import functional_call, vmap

from envs_c.vector import VecEnv, allocate_seats, seat_rows
from services.common.config import SelfPlayConfig
from services.trainer import checkpoint as ckpt
from services.trainer.graphs import Graphed, pinned_zeros
from services.trainer.policy import Policy

MIRROR, BOT, FIRST_SNAPSHOT = 0, 1, 2
# A pool member as the Elo service knows it: ("step", n) is this run's checkpoint at step n, ("checkpoint",
# id) a checkpoint the config names.
Key = tuple[str, int]


class LeagueLink(Protocol):
    """What the league reads from outside the trainer (the worker implements it over the database)."""

    def results(self, keys: Sequence[Key]) -> dict[Key, tuple[float, float]]:
        """The learner's (points, games) against each member in the Elo service's match log, the learner
        being this run's newest rated checkpoint; members without games are left out."""

    def members(self, checkpoint_ids: Sequence[int]) -> list[Path]:
        """The checkpoint stems of `checkpoint_ids`, in order."""


class League:
    """Members are codes: MIRROR, BOT, and FIRST_SNAPSHOT + k for pool slot k. The first `fixed` slots hold
    the checkpoints the config names, for the whole run; the snapshots of this run take turns in the rest."""

    def __init__(self, config: SelfPlayConfig, seed: int = 0, fixed: int = 0):
        self.config = config
        self.rng = np.random.default_rng(seed)
        self.fixed = fixed
        slots = fixed + config.pool_size
        size = FIRST_SNAPSHOT + slots
        self.keys: list[Key | None] = [None] * slots  # who holds each slot, None: empty
        # The learner's results (win 1, draw 0.5) against each member: all along, and since the last metrics.
        self.points = np.zeros(size)
        self.games = np.zeros(size)
        self.window_points = np.zeros(size)
        self.window_games = np.zeros(size)
        # The same from the Elo service's match log, replaced whenever it is read.
        self.elo_points = np.zeros(size)
        self.elo_games = np.zeros(size)
        self.next_slot = fixed  # the slot the next snapshot takes

    @property
    def steps(self) -> np.ndarray:
        """The step of the snapshot in each slot, -1 for an empty slot or a named checkpoint."""
        return np.array([k[1] if k is not None and k[0] == "step" else -1 for k in self.keys], dtype=np.int64)

    @property
    def snapshots(self) -> np.ndarray:
        """The slots holding a member."""
        return np.array([k for k, key in enumerate(self.keys) if key is not None], dtype=np.int64)

    def snapshot_weights(self) -> np.ndarray:
        """Prioritised fictitious self-play: a member is drawn in proportion to (1 - x)^p, where x is the
        learner's win rate against it, over its games here and in the Elo service's log (a Beta(1, 1)
        prior, so a new member starts at 0.5): the members that still beat the learner are played most,
        the ones it has mastered hardly at all."""
        codes = FIRST_SNAPSHOT + self.snapshots
        points = self.points[codes] + self.elo_points[codes]
        rate = (points + 1.0) / (self.games[codes] + self.elo_games[codes] + 2.0)
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

    def add_fixed(self, checkpoint_id: int) -> int:
        """Put a named checkpoint in the next fixed slot; returns it."""
        slot = next(k for k in range(self.fixed) if self.keys[k] is None)
        self.keys[slot] = ("checkpoint", checkpoint_id)
        return slot

    def add_snapshot(self, step: int) -> int:
        """Take a slot for the snapshot at `step`, the oldest one's once the pool is full; returns it."""
        slot = self.next_slot
        self.next_slot = self.fixed + (slot - self.fixed + 1) % self.config.pool_size
        self.keys[slot] = ("step", step)
        code = FIRST_SNAPSHOT + slot
        for totals in (self.points, self.games, self.window_points, self.window_games):
            totals[code] = 0.0
        self.elo_points[code] = self.elo_games[code] = 0.0
        return slot

    def record(self, codes: np.ndarray, results: np.ndarray) -> None:
        """The learner's results (1 win, 0.5 draw, 0 loss) of finished games against members `codes`."""
        for totals in ((self.points, self.games), (self.window_points, self.window_games)):
            np.add.at(totals[0], codes, results)
            np.add.at(totals[1], codes, 1.0)

    def set_elo_results(self, results: dict[Key, tuple[float, float]]) -> None:
        """The learner's (points, games) against members in the Elo service's log (keys not in the pool
        are ignored; members missing from `results` have none)."""
        self.elo_points[:] = self.elo_games[:] = 0.0
        for slot, key in enumerate(self.keys):
            if key in results:
                self.elo_points[FIRST_SNAPSHOT + slot], self.elo_games[FIRST_SNAPSHOT + slot] = results[key]

    def metrics(self) -> dict[str, float]:
        """The pool and the learner's win rate against each member over the games since the last call."""
        out = {"league/pool_size": float(len(self.snapshots))}
        names = {MIRROR: "mirror", BOT: "bot"}
        names |= {FIRST_SNAPSHOT + int(k): "{}_{}".format(*self.keys[k]) for k in self.snapshots}
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


def play_members(
    learner: Policy,
    snapshots: Sequence[Policy],
    obs: torch.Tensor,
    codes: torch.Tensor,
    out: torch.Tensor,
) -> torch.Tensor:
    """Environment actions for rows `obs` into `out` (returned), row i sampled from the member whose code is
    `codes[i]` (MIRROR: the learner, FIRST_SNAPSHOT + k: `snapshots[k]`); rows of any other code (the
    bot's) are left as they are. Each member present runs on its own rows only: the cheaper choice where
    nothing is captured. Self-play policies are feed-forward (the config refuses recurrent ones)."""
    for code, policy in enumerate([learner, None, *snapshots]):
        rows = (codes == code).nonzero().squeeze(1)
        if policy is not None and len(rows):
            out[rows] = _member_actions(policy, obs[rows]).to(out.dtype)
    return out


def play_pool(
    learner: Policy,
    stacked: dict[str, torch.Tensor],
    obs: torch.Tensor,
    codes: torch.Tensor,
    past_rows: torch.Tensor,
    out: torch.Tensor,
) -> torch.Tensor:
    """`play_members` as one fixed-shape computation that a CUDA graph replays whatever the mix. The learner
    plays every row (the mirror holds half of them by default), and every snapshot plays the rows
    `past_rows`: the rows any snapshot holds, padded to a fixed length with the row count, as one batched
    pass over `stacked` (`stack_pool`), so the launches do not grow with the pool. Each row keeps its own
    member's move; the bot's rows keep `out`'s."""
    rows = obs.shape[0]
    per_row = (-1, *([1] * (out.dim() - 1)))
    mirror = _member_actions(learner, obs).to(out.dtype)
    moves = torch.where(codes.view(per_row) == MIRROR, mirror, out)
    padded_obs = torch.cat((obs, obs[:1]))[past_rows]  # the padding reads row 0, and its moves go nowhere
    acting = _Acting(learner)
    play = vmap(lambda state: functional_call(acting, state, (padded_obs,)), randomness="different")
    played = play(stacked)
    padded_codes = torch.cat((codes, codes.new_full((1,), FIRST_SNAPSHOT)))[past_rows]
    member = (padded_codes - FIRST_SNAPSHOT).clamp(min=0).view(1, *per_row).expand(1, *played.shape[1:])
    chosen = played.gather(0, member).squeeze(0).to(out.dtype)
    moves = torch.cat((moves, moves[:1]))
    moves.index_put_((past_rows,), chosen)  # the padding's rows all land on the extra last row
    return moves[:rows]


def stack_pool(snapshots: Sequence[Policy]) -> dict[str, torch.Tensor]:
    """The snapshots' parameters and buffers stacked, one tensor per name (named as `_Acting` sees them),
    each snapshot's own tensors made views of its slot: loading weights into a snapshot updates what
    `play_pool` reads, with no copy to keep in step."""
    named = [dict([*policy.named_parameters(), *policy.named_buffers()]) for policy in snapshots]
    stacked = {name: torch.stack([tensors[name].detach() for tensors in named]) for name in named[0]}
    for k, tensors in enumerate(named):
        for name, tensor in tensors.items():
            tensor.data = stacked[name][k]
    return {f"policy.{name}": tensor for name, tensor in stacked.items()}


class _Acting(nn.Module):
    """A policy's environment actions as a module's forward, for torch.func to call with other weights."""

    def __init__(self, policy: Policy):
        super().__init__()
        self.policy = policy

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return _member_actions(self.policy, obs)


def _member_actions(policy: Policy, obs: torch.Tensor) -> torch.Tensor:
    # The actor alone: an opponent's value is never used, and self-play policies have no recurrent core.
    return policy.env_actions(policy.sample(policy.actor(policy.encode(obs))))


class SelfPlayEnv:
    """The learner's seat of a two-player game; the other seat is played by the league's members.

    `env` must have both seats reading the action buffer (opponent = 1). Its buffers hold every seat; this
    object's `observations`, `actions`, `rewards`, `terminals` and `truncations` hold the learner's rows
    only, so the trainer's rollout and update see nothing of the opponents. The learner takes seat 0 in
    the even environments and seat 1 in the odd ones to begin with, and changes seat after every game.
    """

    def __init__(
        self,
        env: VecEnv,
        learner: Policy,
        config: SelfPlayConfig,
        device: torch.device,
        seed: int = 0,
        allocate: Callable[[tuple[int, ...], np.dtype], np.ndarray] | None = None,
        *,
        graphs: bool = False,
        pool_dir: Path | None = None,
        resume: Path | None = None,
        link: LeagueLink | None = None,
    ):
        rows = seat_rows(env.spec)  # ValueError unless both seats read the action buffer
        if config.pool and link is None:
            raise ValueError(
                "selfplay.pool names checkpoints, which only a worker with the database can load"
            )
        self.env, self.spec, self.learner, self.device = env, env.spec, learner, device
        self.config, self.link, self.pool_dir = config, link, pool_dir
        self.league = League(config, seed, fixed=len(config.pool))
        self.num_envs = env.num_envs
        self._seat = rows.shape[1]  # agents per seat
        self.num_agents = self.num_envs * self._seat
        # The opponents' rows are page-locked with graphs: their captured play copies them asynchronously.
        seats = allocate_seats(env, allocate, pinned_zeros if graphs else allocate)
        self._seats, self.seat = seats, seats.seat
        self.observations, self.actions = seats.observations, seats.actions
        self.rewards, self.terminals, self.truncations = seats.rewards, seats.terminals, seats.truncations
        self._result = (self.observations, self.rewards, self.terminals, self.truncations)
        self.seat[:] = np.arange(self.num_envs) % 2
        self._snapshots = [
            copy.deepcopy(learner).requires_grad_(False) for _ in range(self.league.fixed + config.pool_size)
        ]
        self._allocate_opponents(allocate, graphs)
        fields = env.log_fields[:-1]  # n last
        self._fields = {name: k for k, name in enumerate(fields)}
        # Perf and the return are the learner's own in either seat; the environment's other fields are
        # seat 0's view, so they count only the games the learner played in seat 0.
        self._seat_free = np.isin(fields, ("perf", "episode_return", "episode_length"))
        self._sums = np.zeros(len(fields))
        self._counts = np.zeros(len(fields))
        self._episodes = 0.0
        self._load_fixed()
        self._restore_pool(ckpt.read_meta(resume)["step"] if resume is not None else 0)
        self._read_elo()
        self.opponent = self.league.sample(env.num_envs)  # per environment, a member code
        seats.bot[:] = self.opponent == BOT
        self._their_codes.reshape(self.num_envs, self._seat)[:] = self.opponent[:, None]
        if graphs:
            self._gather_past_rows()
        self._advance = env.seated(seats)

    def _allocate_opponents(
        self, alloc: Callable[[tuple[int, ...], np.dtype], np.ndarray] | None, graphs: bool
    ) -> None:
        """The member playing each opponent row (page-locked with `graphs`) and, with `graphs`, the captured
        step that plays them (`play_pool`, the pool stacked for it)."""
        alloc = pinned_zeros if graphs else (alloc or np.zeros)
        self._their_obs, self._their_actions = self._seats.their_observations, self._seats.their_actions
        self._their_codes = alloc((self.num_agents,), np.dtype(np.int64))
        self._graphed = graphs
        if graphs:
            self._pool = stack_pool(self._snapshots)
            self._device_obs = torch.empty_like(torch.from_numpy(self._their_obs), device=self.device)
            self._device_codes = torch.empty_like(torch.from_numpy(self._their_codes), device=self.device)
            # The snapshots play the rows the past share holds, about `past` of them: room for the
            # binomial draw's four standard deviations, grown (and the play captured again) if ever short.
            past, envs = self.config.past, self.num_envs
            likely = past * envs + 4.0 * math.sqrt(envs * past * (1.0 - past)) + 1.0
            self._size_past_rows(min(envs, math.ceil(likely)) * self._seat)
            # The opponents play on a stream of their own, beside the learner's next forward pass. Both
            # streams are held by name and switched with set_stream: torch's current-stream lookups and
            # stream contexts cost tens of microseconds each, every step.
            self._main = torch.cuda.current_stream(self.device)
            self._stream = torch.cuda.Stream(self.device)
            self._weights = torch.cuda.Event()
            self._ready = torch.cuda.Event()

    def _size_past_rows(self, capacity: int) -> None:
        """Room for `capacity` snapshot rows in the captured play, captured again at its next call."""
        self._past_rows = pinned_zeros((capacity,), np.dtype(np.int64))
        self._device_past_rows = torch.empty(capacity, dtype=torch.long, device=self.device)
        self._play_all = Graphed(self._play_captured, True)

    def _gather_past_rows(self) -> None:
        """The rows the snapshots hold now into the captured play's list, padded with the row count."""
        rows = np.flatnonzero(self._their_codes >= FIRST_SNAPSHOT)
        if len(rows) > len(self._past_rows):
            self._size_past_rows(min(self.num_agents, math.ceil(1.25 * len(rows))))
        self._past_rows[: len(rows)] = rows
        self._past_rows[len(rows) :] = self.num_agents

    def _play_captured(self) -> None:
        self._device_obs.copy_(torch.from_numpy(self._their_obs), non_blocking=True)
        self._device_codes.copy_(torch.from_numpy(self._their_codes), non_blocking=True)
        self._device_past_rows.copy_(torch.from_numpy(self._past_rows), non_blocking=True)
        host = torch.from_numpy(self._their_actions)
        out = torch.zeros_like(host, device=self.device)
        out = play_pool(
            self.learner, self._pool, self._device_obs, self._device_codes, self._device_past_rows, out
        )
        host.copy_(out, non_blocking=True)

    @torch.no_grad()
    def _play_opponents(self) -> None:
        """Start the networks' actions for the state the environments now show; `step` collects them (the
        bot's moves are computed in the step itself). With graphs they are queued on the opponents' stream;
        without, the members play now."""
        if self._graphed:
            self._weights.record(self._main)  # the weights the last update wrote
            self._stream.wait_event(self._weights)
            torch.cuda.set_stream(self._stream)
            try:
                self._play_all()
                self._ready.record(self._stream)
            finally:
                torch.cuda.set_stream(self._main)
        else:
            obs, codes, out = (
                torch.from_numpy(a).to(self.device)
                for a in (self._their_obs, self._their_codes, self._their_actions)
            )
            out = play_members(self.learner, self._snapshots, obs, codes, out)
            self._their_actions[:] = out.cpu().numpy()

    def settle(self) -> None:
        """Hold the device's work queued from here on (an update, a snapshot) until the opponents' last play,
        which reads the learner's weights, is done."""
        if self._graphed:
            self._main.wait_event(self._ready)

    def _load_fixed(self) -> None:
        if not self.config.pool:
            return
        if self.link is None:
            raise ValueError("selfplay.pool names checkpoints, which only a league link can find")
        stems = self.link.members(self.config.pool)
        for checkpoint_id, stem in zip(self.config.pool, stems, strict=True):
            policy, _ = ckpt.load_policy(stem, self.spec.name, self.spec.version, device=str(self.device))
            slot = self.league.add_fixed(checkpoint_id)
            self._snapshots[slot].load_state_dict(policy.state_dict())

    def _restore_pool(self, step: int) -> None:
        """Reload the snapshots this run had taken by `step`; drop any taken after it (by an attempt that
        was lost before its next checkpoint), which the resumed run never reached."""
        if self.pool_dir is None:
            return
        self.pool_dir.mkdir(parents=True, exist_ok=True)
        files = sorted(self.pool_dir.glob("step_*.safetensors"))
        kept = [f for f in files if int(f.stem.split("_")[1]) <= step][-self.config.pool_size :]
        for path in files:
            if path not in kept:
                path.unlink()
        for path in kept:
            slot = self.league.add_snapshot(int(path.stem.split("_")[1]))
            self._snapshots[slot].load_state_dict(load_file(str(path), device=str(self.device)))

    def _read_elo(self) -> None:
        if self.link is not None:
            keys = [key for key in self.league.keys if key is not None]
            self.league.set_elo_results(self.link.results(keys))

    def snapshot(self, step: int) -> None:
        """Freeze the learner's current weights into the pool as the snapshot of `step` (and on disk, with
        a pool_dir), and read the Elo service's results against the pool again."""
        evicted = self.league.keys[self.league.next_slot]
        slot = self.league.add_snapshot(step)
        self._snapshots[slot].load_state_dict(self.learner.state_dict())
        if self.pool_dir is not None:
            state = {k: v.detach().contiguous() for k, v in self.learner.state_dict().items()}
            path = self.pool_dir / f"step_{step:014d}.safetensors"
            save_file(state, str(path.with_suffix(".tmp")))
            path.with_suffix(".tmp").replace(path)
            if evicted is not None:
                (self.pool_dir / f"step_{evicted[1]:014d}.safetensors").unlink(missing_ok=True)
        self._read_elo()

    def reset(self, seed: int | None = None) -> np.ndarray:
        self.env.reset(seed)
        self._seats.returns[:] = 0.0
        self._advance(False)
        self._play_opponents()
        return self.observations

    def step(self, actions: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step with the learner's `actions` (None: already written into `self.actions`)."""
        if actions is not None:
            np.copyto(self.actions, actions, casting="unsafe")
        if self._graphed:
            self._ready.synchronize()
        self._advance(True)
        ended = np.flatnonzero(self._seats.ended)
        if len(ended):
            self._finish(ended)
        self._play_opponents()
        return self._result

    def _finish(self, ended: np.ndarray) -> None:
        """Record the games that ended against their members and draw the next opponents (the step has
        swapped their seats and shows the learner the new game from its new seat).

        The environment logs seat 0's view: perf is flipped for a learner in seat 1, the return is the
        learner's own, and the environment's other fields are averaged over the games it played in seat 0.
        """
        totals = self.env.env_logs(ended).astype(np.float64)
        games, totals = totals[:, -1], totals[:, :-1]
        perf, ret = self._fields["perf"], self._fields["episode_return"]
        seat0 = np.divide(totals[:, perf], games, out=np.full(len(ended), 0.5), where=games > 0)
        first = self.seat[ended] == 1  # the learner played seat 0 in the game that ended
        results = np.where(first, seat0, 1.0 - seat0)
        totals[:, perf] = results * games
        returns = self._seats.returns
        totals[:, ret] = returns[ended] * games
        counted = first[:, None] | self._seat_free[None, :]
        self._sums += np.where(counted, totals, 0.0).sum(0)
        self._counts += np.where(counted, games[:, None], 0.0).sum(0)
        self._episodes += games.sum()
        self.league.record(self.opponent[ended], results)
        returns[ended] = 0.0
        self.opponent[ended] = self.league.sample(len(ended))
        self._seats.bot[ended] = self.opponent[ended] == BOT
        self._their_codes.reshape(self.num_envs, self._seat)[ended] = self.opponent[ended, None]
        if self._graphed:
            self._gather_past_rows()

    def log(self) -> dict[str, float]:
        """Like VecEnv.log, for the learner's seat (perf is its result against the mix of opponents)."""
        if not self._episodes:
            return {}
        out = {
            key: float(self._sums[k] / self._counts[k]) for key, k in self._fields.items() if self._counts[k]
        }
        out["n"] = self._episodes
        self._sums[:] = self._counts[:] = 0.0
        self._episodes = 0.0
        return out

    def metrics(self) -> dict[str, float]:
        return self.league.metrics()

    def close(self) -> None:
        if self._graphed:
            self._ready.synchronize()  # the last play writes into host buffers that go with this object
        self.env.close()
