"""The team game (envs_c/moba.h) beyond the contract checks of tests/test_envs.py: seats and team sizes,
graded bots, a fair mirror, and reward coefficients that do what they say."""

from __future__ import annotations

import numpy as np
import pytest

import envs_c
from envs_c import checks
from envs_c.checks import random_actions, rollout

REWARDS_OFF = dict.fromkeys(
    ("reward_win", "reward_kill", "reward_death", "reward_damage", "reward_objective"), 0.0
)


@pytest.mark.parametrize("team_size", [3, 4, 5])
def test_seats_follow_the_team_size(team_size: int) -> None:
    bot = envs_c.make("moba", 2, team_size=team_size)
    duel = envs_c.make("moba", 2, team_size=team_size, opponent=1)
    assert bot.num_agents == 2 * team_size and bot.spec.players == (tuple(range(team_size)),)
    seats = (tuple(range(team_size)), tuple(range(team_size, 2 * team_size)))
    assert duel.num_agents == 4 * team_size and duel.spec.players == seats
    assert duel.actions.shape == (4 * team_size, 2) and duel.scripted_actions().shape == duel.actions.shape
    bot.close()
    duel.close()


@pytest.mark.parametrize("team_size", [2, 6])
def test_team_size_out_of_bounds_is_refused(team_size: int) -> None:
    with pytest.raises(ValueError, match="team_size"):
        envs_c.make("moba", 2, team_size=team_size)


@pytest.mark.parametrize("settings", [{"team_size": 5}, {"team_size": 4, "opponent": 1}])
def test_contract_holds_for_other_seatings(settings: dict[str, int]) -> None:
    checks.same_seed_same_trajectory("moba", settings)
    checks.survives_hostile_actions("moba", settings)
    checks.perf_in_unit_interval("moba", settings)


def test_bots_are_graded() -> None:
    """The strongest bot's play, as team 0, beats the weakest bot nearly always and the strongest about
    evenly; random play beats none."""
    perf = {}
    for bot in (0, 2):
        env = envs_c.make("moba", 32, seed=3, bot=bot)
        perf[bot] = rollout(env, 1200, "scripted")["perf"]
        env.close()
    env = envs_c.make("moba", 32, seed=3, bot=0)
    random_perf = rollout(env, 1200, "random")["perf"]
    env.close()
    assert perf[0] >= 0.9 and perf[2] <= 0.75 and perf[0] - perf[2] >= 0.25, perf
    assert random_perf <= 0.1


def test_mirror_is_fair() -> None:
    """The same policy on both teams wins about half the games: team 1 sees the same world reflected."""
    env = envs_c.make("moba", 64, seed=13, opponent=1)
    result = rollout(env, 1600, "scripted")
    env.close()
    assert result["n"] >= 200 and 0.38 <= result["perf"] <= 0.62, result


def test_mirror_observations_match() -> None:
    """At the start, team 1's slot k sees what team 0's slot k would see from a reflected spawn; the parts
    that do not depend on where the hero spawned (time, slot, structures' health) are equal."""
    env = envs_c.make("moba", 1, seed=5, opponent=1)
    obs = env.reset()
    team0, team1 = obs[:3], obs[3:]
    np.testing.assert_array_equal(team0[:, 2:12], team1[:, 2:12])
    structures = slice(93 - 40, 93)
    np.testing.assert_array_equal(team0[:, structures][:, 3::5], team1[:, structures][:, 3::5])
    env.close()


def test_kill_reward_is_paid_per_kill() -> None:
    """With every coefficient but reward_kill at zero, team 0's return is exactly its kills."""
    env = envs_c.make("moba", 16, seed=2, bot=0, max_steps=200, **{**REWARDS_OFF, "reward_kill": 1.0})
    result = rollout(env, 1000, "scripted")
    env.close()
    assert result["kills"] > 1.0
    assert result["episode_return"] * 3 == pytest.approx(result["kills"], rel=1e-5)


def test_win_reward_is_zero_sum_and_terminal() -> None:
    env = envs_c.make("moba", 8, seed=4, opponent=1, max_steps=60, **{**REWARDS_OFF, "reward_win": 2.0})
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(200):
        _, rewards, terminals, truncations = env.step(random_actions(env, rng))
        teams = rewards.reshape(8, 2, 3)
        np.testing.assert_array_equal(teams[:, 0], -teams[:, 1])
        assert not truncations.any()
        assert set(np.abs(rewards[terminals == 1]).tolist()) <= {0.0, 2.0}
        assert not rewards[terminals == 0].any()
        ended += int(terminals.reshape(8, 6)[:, 0].sum())
    assert ended >= 8 * 3
    env.close()


def test_non_finite_coefficients_are_refused() -> None:
    with pytest.raises(ValueError, match="reward_kill"):
        envs_c.make("moba", 2, reward_kill=float("nan"))
    with pytest.raises(ValueError, match="reward_win"):
        envs_c.make("moba", 2, reward_win=1e9)
