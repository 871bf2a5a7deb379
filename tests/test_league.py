"""Self-play: the league's bookkeeping (pure), the learner-seat environment, and a short self-play run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import envs_c
from services.common.config import ConfigError, SelfPlayConfig, resolve
from services.trainer.league import BOT, FIRST_SNAPSHOT, MIRROR, League, SelfPlayEnv
from services.trainer.loop import train
from services.trainer.policy import Policy


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


@pytest.mark.parametrize("name", ["moba", "pong", "connect4"])
def test_selfplay_env_shows_the_learner_seat_only(name: str) -> None:
    env = envs_c.make(name, 6, seed=3, opponent=1)
    policy = Policy(env.spec.observation_space.shape, env.spec.to_dict()["action"], resolve(name).policy)
    wrapped = SelfPlayEnv(env, policy, SelfPlayConfig(mirror=0.4, past=0.3, bot=0.3), torch.device("cpu"))
    seat = len(env.spec.players[0])
    assert wrapped.num_agents == 6 * seat and wrapped.observations.shape[0] == 6 * seat
    np.testing.assert_array_equal(
        wrapped.reset(3),
        env.observations.reshape(6, -1, *env.observations.shape[1:])[:, :seat].reshape(
            wrapped.observations.shape
        ),
    )
    wrapped.snapshot(0)
    rng = np.random.default_rng(0)
    games = 0.0
    for _ in range(1500):
        actions = rng.integers(0, 3, size=wrapped.actions.shape).astype(wrapped.actions.dtype)
        wrapped.step(actions)
        mine = env.actions.reshape(6, -1, *env.actions.shape[1:])[:, :seat]
        np.testing.assert_array_equal(mine.reshape(actions.shape), actions)
        log = wrapped.log()
        games += log.get("n", 0.0)
        assert not log or 0.0 <= log["perf"] <= 1.0
    assert games >= 6
    assert wrapped.league.games.sum() == games
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
