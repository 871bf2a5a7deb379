"""The headless match runner: anchors, seat-swapped pairs, timeouts, refusals, determinism."""

from __future__ import annotations

import pytest

import envs_c
from services.elo.match import Player, Refused, load_player, pair_seeds, play
from tests.helpers import make_checkpoint

RANDOM, SCRIPTED = Player("random"), Player("scripted")


@pytest.mark.parametrize("env", ["pong", "connect4"])
def test_scripted_beats_random_clearly(env):
    results = play(env, SCRIPTED, RANDOM, 40, seed=3)
    assert len(results) == 40
    assert sum(r.score_a for r in results) >= 36, results
    assert not any(r.timeout for r in results)
    assert all(r.steps > 0 for r in results)


def test_pairs_share_a_seed_with_seats_swapped():
    results = play("connect4", RANDOM, SCRIPTED, 10, seed=11)
    first, second = results[:5], results[5:]
    assert [r.seat_a for r in first] == [0] * 5 and [r.seat_a for r in second] == [1] * 5
    assert [r.seed for r in first] == [r.seed for r in second] == pair_seeds(11, 5)
    assert len(set(pair_seeds(11, 5))) == 5


def test_a_pair_starts_from_the_same_position():
    # Pong serves at random: the recorded pair seed must reproduce the start of both games of the pair.
    seed = pair_seeds(5, 2)[1]
    replay = envs_c.make("pong", 1, seed=seed, opponent=1).observations.copy()
    vec = envs_c.make("pong", 4, seed=5, opponent=1)
    for game in range(4):
        vec.reset_env(game, pair_seeds(5, 2)[game % 2])
    assert (vec.observations[2:4] == replay).all() and (vec.observations[6:8] == replay).all()


def test_deterministic_given_the_seed_and_different_across_seeds(tmp_path):
    stem = make_checkpoint(tmp_path, "connect4", recurrent="lstm")
    player = load_player(stem, "connect4")
    one = play("connect4", player, RANDOM, 8, seed=1)
    assert play("connect4", player, RANDOM, 8, seed=1) == one
    assert play("connect4", player, RANDOM, 8, seed=2) != one


def test_stalled_games_time_out_as_draws():
    # Scripted pong paddles return every ball: pong's own step limit truncates, which is a timeout too.
    results = play("pong", SCRIPTED, SCRIPTED, 4, seed=0, env_config={"max_steps": 50})
    assert all(r.timeout and r.score_a == 0.5 and r.steps == 50 for r in results)
    ours = play("connect4", RANDOM, SCRIPTED, 4, seed=0, max_steps=3)
    assert all(r.timeout and r.score_a == 0.5 and r.steps == 3 for r in ours)


def test_a_checkpoint_trained_against_the_bot_plays_a_seat(tmp_path):
    stem = make_checkpoint(tmp_path, "pong", opponent=0)
    player = load_player(stem, "pong")
    assert player.kind == "checkpoint"
    results = play("pong", player, RANDOM, 6, seed=0, env_config={"points": 2})
    assert len(results) == 6 and {r.seat_a for r in results} == {0, 1}


def test_corrupted_checkpoint_is_refused_with_the_reason(tmp_path):
    stem = make_checkpoint(tmp_path, "pong")
    stem.with_suffix(".safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(Refused, match="cannot load weights"):
        load_player(stem, "pong")
    with pytest.raises(Refused, match="missing"):
        load_player(tmp_path / "nowhere", "pong")


def test_checkpoint_of_another_env_is_refused(tmp_path):
    stem = make_checkpoint(tmp_path, "connect4")
    with pytest.raises(Refused, match="for env 'connect4', not 'pong'"):
        load_player(stem, "pong")
    with pytest.raises(Refused, match="not a two-player environment"):
        load_player(make_checkpoint(tmp_path, "cartpole", name="cp"), "cartpole")


def test_checkpoint_of_another_env_version_is_refused(tmp_path):
    stem = make_checkpoint(tmp_path, "pong")
    with pytest.raises(Refused, match="env version"):
        load_player(stem, "pong", env_version="0" * 16)


def test_checkpoints_with_different_game_settings_are_refused(tmp_path):
    a = load_player(make_checkpoint(tmp_path, "pong", name="a", frameskip=4), "pong")
    b = load_player(make_checkpoint(tmp_path, "pong", name="b", frameskip=2), "pong")
    with pytest.raises(Refused, match="frameskip"):
        play("pong", a, b, 2, seed=0)


def test_checkpoints_that_differ_only_in_shaping_or_bot_strength_meet(tmp_path):
    # Reward shaping and the training bot's level are not rules of the game: two moba runs trained with
    # different values are rated in one pool, and the scripted anchor stays the default (strongest) bot.
    hacked = make_checkpoint(tmp_path, "moba", name="a", reward_kill=5.0, reward_objective=0.0, bot=0)
    plain = make_checkpoint(tmp_path, "moba", name="b")
    a, b = load_player(hacked, "moba"), load_player(plain, "moba")
    config = {"max_steps": 60}
    assert len(play("moba", a, b, 4, seed=0, env_config=config)) == 4
    assert play("moba", a, SCRIPTED, 4, seed=1, env_config=config) == play(
        "moba", b, SCRIPTED, 4, seed=1, env_config=config
    )


def test_team_games_of_different_team_sizes_are_refused(tmp_path):
    a = load_player(make_checkpoint(tmp_path, "moba", name="a", team_size=3), "moba")
    b = load_player(make_checkpoint(tmp_path, "moba", name="b", team_size=4), "moba")
    with pytest.raises(Refused, match="team_size"):
        play("moba", a, b, 2, seed=0)


def test_games_must_be_even():
    with pytest.raises(ValueError, match="even"):
        play("pong", RANDOM, SCRIPTED, 3, seed=0)
