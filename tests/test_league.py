"""Self-play: the league's bookkeeping (pure), the learner-seat environment, and a short self-play run."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

import envs_c
from services.common.config import ConfigError, SelfPlayConfig, resolve
from services.trainer import checkpoint as ckpt
from services.trainer.league import (
    BOT,
    FIRST_SNAPSHOT,
    MIRROR,
    League,
    SelfPlayEnv,
    play_members,
    play_pool,
    stack_pool,
)
from services.trainer.loop import train
from services.trainer.policy import Policy
from tests.helpers import favouring


def _league(**kw: float) -> League:
    return League(SelfPlayConfig(**{"mirror": 0.0, "past": 1.0, "bot": 0.0, "pool_size": 4, **kw}), seed=0)


def test_mix_must_sum_to_one() -> None:
    with pytest.raises(ConfigError) as e:
        resolve("moba", {"selfplay": {"mirror": 0.5, "past": 0.3, "bot": 0.3}})
    assert e.value.field == "selfplay" and "sum to 1" in e.value.message


def test_single_player_env_is_refused() -> None:
    with pytest.raises(ConfigError) as e:
        resolve("cartpole", {"selfplay": {}})
    assert e.value.field == "selfplay" and "single-player" in e.value.message


def test_recurrent_policy_is_refused() -> None:
    with pytest.raises(ConfigError, match="feed-forward"):
        resolve("pong", {"selfplay": {}, "policy": {"recurrent": "lstm"}})


def test_empty_pool_falls_back_to_the_mirror() -> None:
    league = _league()
    assert (league.sample(100) == MIRROR).all()
    league = League(SelfPlayConfig(mirror=0.0, past=0.0, bot=1.0), seed=0)
    assert (league.sample(10) == BOT).all()


def test_mix_shares_are_respected() -> None:
    league = League(SelfPlayConfig(mirror=0.5, past=0.25, bot=0.25, pool_size=2), seed=1)
    league.add_snapshot(10)
    codes = league.sample(20_000)
    assert np.mean(codes == MIRROR) == pytest.approx(0.5, abs=0.02)
    assert np.mean(codes == BOT) == pytest.approx(0.25, abs=0.02)
    assert np.mean(codes == FIRST_SNAPSHOT) == pytest.approx(0.25, abs=0.02)


def test_pfsp_prefers_the_snapshots_that_beat_the_learner() -> None:
    league = _league(pfsp_power=2.0)
    strong, weak = league.add_snapshot(100), league.add_snapshot(200)
    league.record(np.full(50, FIRST_SNAPSHOT + strong), np.zeros(50))  # the learner lost every game
    league.record(np.full(50, FIRST_SNAPSHOT + weak), np.ones(50))  # and won every game
    weights = dict(zip(league.snapshots.tolist(), league.snapshot_weights(), strict=True))
    assert weights[strong] > 0.99 and weights[weak] < 0.01
    codes = league.sample(1000)
    assert np.mean(codes == FIRST_SNAPSHOT + strong) > 0.95


def test_pool_evicts_the_oldest_and_resets_its_record() -> None:
    league = _league(pool_size=2)
    first = league.add_snapshot(1)
    league.record(np.array([FIRST_SNAPSHOT + first]), np.array([1.0]))
    league.add_snapshot(2)
    assert league.add_snapshot(3) == first
    assert sorted(league.steps.tolist()) == [2, 3] and league.games[FIRST_SNAPSHOT + first] == 0


def test_metrics_report_the_pool_and_win_rates_once() -> None:
    league = _league()
    slot = league.add_snapshot(7)
    league.record(np.array([MIRROR, MIRROR, BOT, FIRST_SNAPSHOT + slot]), np.array([1.0, 0.0, 0.5, 1.0]))
    out = league.metrics()
    assert out["league/pool_size"] == 1.0
    assert out["league/winrate/mirror"] == 0.5 and out["league/winrate/bot"] == 0.5
    assert out["league/winrate/step_7"] == 1.0 and out["league/winrate/past"] == 1.0
    assert "league/winrate/mirror" not in league.metrics()


def _learner_rows(env: envs_c.VecEnv, buffer: np.ndarray, seats: np.ndarray) -> np.ndarray:
    """The rows of `buffer` (one per agent of `env`) that belong to the learner's seat in each game."""
    per_seat = len(env.spec.players[0])
    games = buffer.reshape(env.num_envs, 2, per_seat, *buffer.shape[1:])
    return games[np.arange(env.num_envs), seats].reshape(env.num_envs * per_seat, *buffer.shape[1:])


@pytest.mark.parametrize("name", ["moba", "pong", "connect4"])
def test_selfplay_env_shows_the_learner_seat_only(name: str) -> None:
    env = envs_c.make(name, 6, seed=3, opponent=1)
    policy = Policy(env.spec.observation_space.shape, env.spec.to_dict()["action"], resolve(name).policy)
    wrapped = SelfPlayEnv(env, policy, SelfPlayConfig(mirror=0.4, past=0.3, bot=0.3), torch.device("cpu"))
    seat = len(env.spec.players[0])
    assert wrapped.num_agents == 6 * seat and wrapped.observations.shape[0] == 6 * seat
    assert wrapped.seat.tolist() == [0, 1, 0, 1, 0, 1]  # both seats from the start
    np.testing.assert_array_equal(wrapped.reset(3), _learner_rows(env, env.observations, wrapped.seat))
    wrapped.snapshot(0)
    rng = np.random.default_rng(0)
    games, swapped = 0.0, 0
    for _ in range(1500):
        seats, bots = wrapped.seat.copy(), wrapped.opponent == BOT
        # The other seat: the bot's moves for the position it faces (the bots read no randomness), or the
        # network member's actions, launched after the last step.
        theirs = np.where(
            np.repeat(bots, seat).reshape(-1, *([1] * (env.actions.ndim - 1))),
            _learner_rows(env, env.scripted_actions(), 1 - seats),
            wrapped._their_actions,
        )
        actions = rng.integers(0, 3, size=wrapped.actions.shape).astype(wrapped.actions.dtype)
        wrapped.step(actions)
        np.testing.assert_array_equal(_learner_rows(env, env.actions, seats), actions)
        np.testing.assert_array_equal(_learner_rows(env, env.actions, 1 - seats), theirs)
        # After a game ends the learner plays the next one from the other seat, and sees it from there.
        swapped += int((wrapped.seat != seats).sum())
        np.testing.assert_array_equal(
            wrapped.observations, _learner_rows(env, env.observations, wrapped.seat)
        )
        log = wrapped.log()
        games += log.get("n", 0.0)
        assert not log or 0.0 <= log["perf"] <= 1.0
    assert games >= 6 and swapped == games
    assert wrapped.league.games.sum() == games
    wrapped.close()


@pytest.mark.parametrize("name", ["connect4", "moba"])
def test_each_opponent_row_is_played_by_its_own_member_on_either_path(name: str) -> None:
    # The GPU path plays the learner on every row and every snapshot on the snapshots' rows, padded to a
    # fixed length (one captured graph, the pool as one batched pass), and keeps each row's own move; the
    # CPU path runs each member on its rows. Members that always play a fixed, different move tell them
    # apart; loading a snapshot after the pool is stacked must reach both paths.
    spec = envs_c.make_spec(name, opponent=1).to_dict()
    env = envs_c.make(name, 2, seed=0, opponent=1)
    learner = favouring(Policy(env.spec.observation_space.shape, spec["action"], resolve(name).policy), 0)
    snapshots = [copy.deepcopy(learner).requires_grad_(False) for _ in range(2)]
    stacked = stack_pool(snapshots)
    for k, snapshot in enumerate(snapshots):
        snapshot.load_state_dict(favouring(learner, k + 1).state_dict())
    rows = 64
    codes = torch.from_numpy(np.random.default_rng(0).choice([MIRROR, BOT, 2, 3], size=rows))
    obs = torch.from_numpy(np.random.default_rng(1).random((rows, *env.observations.shape[1:]))).to(
        torch.from_numpy(env.observations).dtype
    )
    held = torch.nonzero(codes >= 2).squeeze(1)
    past_rows = torch.cat((held.flip(0), torch.full((5,), rows)))  # any order, then the padding
    expected = {MIRROR: 0, BOT: -1, 2: 1, 3: 2}
    want = torch.tensor([expected[int(c)] for c in codes], dtype=torch.int32)
    with torch.no_grad():
        for pooled in (False, True):
            untouched = torch.full((rows, *env.actions.shape[1:]), -1, dtype=torch.int32)
            if pooled:
                out = play_pool(learner, stacked, obs, codes, past_rows, untouched)
            else:
                out = play_members(learner, snapshots, obs, codes, untouched)
            torch.testing.assert_close(out, want.view(-1, *([1] * (out.dim() - 1))).expand_as(out))
        # The mirror is the learner as it is now: an update after stacking reaches the pooled pass.
        learner.load_state_dict(favouring(learner, 2).state_dict())
        out = play_pool(learner, stacked, obs, codes, past_rows, torch.full_like(untouched, -1))
        assert (out[codes == MIRROR] == 2).all() and (out[codes == 2] == 1).all()
    env.close()


def test_the_learner_result_is_its_own_from_either_seat() -> None:
    # connect4 against the bot in every game: the bot wins nearly all of them, from either seat, so the
    # learner's perf must be near 0 whichever seat it played (seat 0's view would read ~0.5).
    env = envs_c.make("connect4", 8, seed=1, opponent=1)
    policy = Policy(
        env.spec.observation_space.shape, env.spec.to_dict()["action"], resolve("connect4").policy
    )
    wrapped = SelfPlayEnv(env, policy, SelfPlayConfig(mirror=0.0, past=0.0, bot=1.0), torch.device("cpu"))
    wrapped.reset(1)
    rng = np.random.default_rng(1)
    sums, n = 0.0, 0.0
    for _ in range(400):
        wrapped.step(rng.integers(0, 7, size=wrapped.actions.shape))
        log = wrapped.log()
        sums, n = sums + log.get("perf", 0.0) * log.get("n", 0.0), n + log.get("n", 0.0)
    assert n >= 40 and sums / n < 0.1
    assert wrapped.league.games[BOT] == n
    wrapped.close()


def test_selfplay_run_trains_and_logs_the_league(tmp_path: Path) -> None:
    rows: list[dict[str, float]] = []

    class Sink:
        def metrics(self, step: int, values: dict[str, float]) -> None:
            rows.append(values)

        def checkpoint(self, *args: object) -> None:
            pass

        def interrupt(self) -> None:
            return None

    config = resolve(
        "moba",
        {
            "train": {
                "total_timesteps": 60_000,
                "num_envs": 16,
                "num_steps": 64,
                "minibatch_size": 1024,
                "device": "cpu",
                "eval_episodes": 4,
                "checkpoint_interval": 1000,
            },
            "policy": {"hidden_size": 32},
            "env": {"max_steps": 100},
            "selfplay": {"mirror": 0.4, "past": 0.4, "bot": 0.2, "snapshot_interval": 5},
        },
    )
    assert config.env["opponent"] == 0  # the evaluation plays the bot
    result = train("moba", config, 0, tmp_path, Sink(), flush_seconds=0.0)
    assert result.status == "succeeded" and result.final_score is not None
    assert any(row.get("league/pool_size", 0) >= 2 for row in rows)
    assert any("league/winrate/bot" in row for row in rows)
    assert any("env/perf" in row for row in rows)


def test_elo_results_weigh_in_pfsp() -> None:
    league = _league(pfsp_power=2.0)
    beaten, feared = league.add_snapshot(100), league.add_snapshot(200)
    league.set_elo_results({("step", 100): (40.0, 40.0), ("step", 200): (0.0, 40.0), ("step", 999): (1, 1)})
    weights = dict(zip(league.snapshots.tolist(), league.snapshot_weights(), strict=True))
    assert weights[feared] > 0.99 and weights[beaten] < 0.01
    assert league.metrics()["league/pool_size"] == 2.0


def _moba_learner() -> Policy:
    spec = envs_c.make_spec("moba", opponent=1)
    return Policy(spec.observation_space.shape, spec.to_dict()["action"], resolve("moba").policy)


def test_the_pool_survives_a_resume(tmp_path: Path) -> None:
    config = SelfPlayConfig(pool_size=4)
    learner = _moba_learner()
    env = SelfPlayEnv(
        envs_c.make("moba", 2, opponent=1), learner, config, torch.device("cpu"), pool_dir=tmp_path
    )
    saved = {}
    for step in (10, 20, 30):
        with torch.no_grad():
            next(learner.parameters()).add_(1.0)
        env.snapshot(step)
        saved[step] = next(learner.parameters()).clone()
        if step == 20:  # the checkpoint the run resumes from; the snapshot at 30 came after it
            ckpt.save_policy(tmp_path / "ckpt_20", learner, {"env": "moba", "step": 20})
    env.close()
    resumed = SelfPlayEnv(
        envs_c.make("moba", 2, opponent=1),
        _moba_learner(),
        config,
        torch.device("cpu"),
        pool_dir=tmp_path,
        resume=tmp_path / "ckpt_20",
    )
    assert sorted(resumed.league.steps[resumed.league.snapshots].tolist()) == [10, 20]
    assert sorted(p.name for p in tmp_path.glob("step_*")) == [
        "step_00000000000010.safetensors",
        "step_00000000000020.safetensors",
    ]
    for slot in resumed.league.snapshots:
        step = int(resumed.league.steps[slot])
        assert torch.equal(next(resumed._snapshots[slot].parameters()), saved[step])
    resumed.close()
