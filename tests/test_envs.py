"""The C environment suite against its contract: every registered environment, fast (no training).

The contract checks live in envs_c/checks.py, which `shoal env check` runs on users' environments too;
the tests here add what only the built-in games promise (a scripted policy that beats random, seats).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import envs_c
from envs_c import checks
from envs_c.checks import random_actions, rollout
from envs_c.gif import record, write_gif
from envs_c.vector import Seats, allocate_seats

NAMES = envs_c.names()
# Duels: one agent per seat (the team game, moba, has its own tests in tests/test_moba.py).
GAMES = [
    n for n in NAMES if "opponent" in envs_c.make_spec(n).config and envs_c.make_spec(n).agents_per_env == 1
]

# Settings that make episodes end within a short test while keeping each game's character.
SHORT = {
    "breakout": {"max_steps": 300},
    "pong": {"points": 2, "max_steps": 600},
    "snake": {"max_steps": 150, "goal": 5},
}


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_trajectory(name: str) -> None:
    checks.same_seed_same_trajectory(name)


@pytest.mark.parametrize("name", NAMES)
def test_bounds_and_perf(name: str) -> None:
    checks.perf_in_unit_interval(name, SHORT.get(name, {}))


@pytest.mark.parametrize("name", NAMES)
def test_invalid_actions_are_survived_and_counted(name: str) -> None:
    assert "counted" in checks.survives_hostile_actions(name, SHORT.get(name, {}))


@pytest.mark.parametrize("name", NAMES)
def test_spaces_match_buffers(name: str) -> None:
    checks.spaces_match_buffers(name, SHORT.get(name, {}))
    env = envs_c.make(name, 4)
    shape = env.actions.shape
    with pytest.raises(ValueError, match="dtype"):
        env.step(np.zeros(shape, complex))
    if env.actions.dtype != np.float32:
        with pytest.raises(ValueError, match="dtype"):
            env.step(np.zeros(shape, np.float32))
    env.close()
    with pytest.raises(RuntimeError):
        env.step()


@pytest.mark.parametrize("name", NAMES)
def test_scripted_beats_random(name: str) -> None:
    kwargs = SHORT.get(name, {})
    steps = 600
    random_env = envs_c.make(name, 16, seed=5, **kwargs)
    scripted_env = envs_c.make(name, 16, seed=5, **kwargs)
    random_perf = rollout(random_env, steps, "random")["perf"]
    scripted_perf = rollout(scripted_env, steps, "scripted")["perf"]
    # A clear margin: breakout's short test episodes cap what even a good policy clears at about a quarter.
    assert scripted_perf >= max(random_perf + 0.15, 2.0 * random_perf), (
        f"{name}: scripted {scripted_perf:.3f} vs random {random_perf:.3f}"
    )
    random_env.close()
    scripted_env.close()


@pytest.mark.parametrize("name", GAMES)
def test_two_player_flag(name: str) -> None:
    bot = envs_c.make(name, 3, **SHORT.get(name, {}))
    duel = envs_c.make(name, 3, opponent=1, **SHORT.get(name, {}))
    assert bot.spec.agents_per_env == 1 and bot.num_agents == 3 and bot.spec.players == ((0,),)
    assert duel.spec.agents_per_env == 2 and duel.num_agents == 6 and duel.spec.players == ((0,), (1,))
    # Self-play is zero-sum per seat, and the scripted policy fills both seats' rows.
    assert duel.scripted_actions().shape == duel.actions.shape
    rng = np.random.default_rng(0)
    seat0 = 0.0
    for _ in range(400):
        _, rewards, terminals, _ = duel.step(random_actions(duel, rng))
        pairs = rewards.reshape(3, 2)
        np.testing.assert_array_equal(pairs[:, 0], -pairs[:, 1])
        np.testing.assert_array_equal(terminals.reshape(3, 2)[:, 0], terminals.reshape(3, 2)[:, 1])
        seat0 += float(pairs[:, 0].sum())
    log = duel.log()
    assert log and 0.0 <= log["perf"] <= 1.0
    bot.close()
    duel.close()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown"):
        envs_c.make("pong", 2, speed=3)
    with pytest.raises(ValueError, match="outside"):
        envs_c.make("connect4", 2, depth=99)
    with pytest.raises(ValueError, match="unknown environment"):
        envs_c.make("tetris", 2)
    with pytest.raises(ValueError):
        envs_c.make("cartpole", 0)


@pytest.mark.parametrize("name", NAMES)
def test_log_empty_until_an_episode_ends(name: str) -> None:
    env = envs_c.make(name, 4)
    env.reset()
    assert env.log() == {}
    env.step(env.scripted_actions())
    if not (env.terminals.any() or env.truncations.any()):
        assert env.log() == {}
    env.close()


@pytest.mark.parametrize("name", NAMES)
def test_render_changes(name: str) -> None:
    env = envs_c.make(name, 2, seed=4)
    env.reset()
    first = env.render(0)
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    changed = False
    for _ in range(30):
        env.step(env.scripted_actions())
        frame = env.render(0)
        assert frame.shape == first.shape
        changed |= not np.array_equal(frame, first)
    assert changed, f"{name}: frames never changed"
    with pytest.raises(ValueError):
        env.render(2)
    env.close()


@pytest.mark.parametrize("name", NAMES)
def test_spec(name: str) -> None:
    spec = envs_c.make_spec(name)
    d = spec.to_dict()
    assert d["name"] == name and d["perf"] and 0 < d["solved"] <= 1 and len(d["version"]) == 16
    env = envs_c.make(name, 3)
    assert env.scripted_actions().shape == env.actions.shape
    assert env.scripted_actions().dtype == env.actions.dtype
    assert env.spec.action_space.contains(env.scripted_actions()[0])
    env.close()


@pytest.mark.parametrize("name", NAMES)
def test_gymnasium_adapter(name: str) -> None:
    env = envs_c.gymnasium_env(name, 3, seed=1)
    obs, info = env.reset(seed=1)
    assert isinstance(info, dict)
    assert env.num_envs == env.env.num_agents
    assert env.observation_space.shape == (env.num_envs, *env.single_observation_space.shape)
    assert obs.shape == env.observation_space.shape and obs.dtype == env.single_observation_space.dtype
    assert env.observation_space.contains(obs)
    for _ in range(20):
        actions = env.action_space.sample()
        obs, rewards, terminated, truncated, info = env.step(actions)
        assert obs.shape == env.observation_space.shape and env.observation_space.contains(obs)
        assert rewards.shape == (env.num_envs,) and terminated.dtype == bool and truncated.dtype == bool
    assert env.render().ndim == 3
    env.close()


def test_gif(tmp_path: Path) -> None:
    env = envs_c.make("pong", 2)
    env.reset()
    frames = record(env, lambda obs: env.scripted_actions(), 12)
    assert len(frames) == 12
    path = write_gif(frames, tmp_path / "pong.gif", fps=25)
    from PIL import Image

    with Image.open(path) as image:
        assert image.n_frames >= 2 and image.size == (frames[0].shape[1], frames[0].shape[0])
    with pytest.raises(ValueError):
        write_gif([], tmp_path / "none.gif", fps=10)
    env.close()


def test_scripted_actions_and_logs_of_a_subset_are_those_environments_rows() -> None:
    env = envs_c.make("connect4", 6, seed=2, num_threads=2, opponent=1)
    env.reset(2)
    every = env.scripted_actions().reshape(6, 2)
    np.testing.assert_array_equal(env.scripted_actions([4, 1]), every[[4, 1]].ravel())
    for _ in range(60):
        env.step(env.scripted_actions())
    logs = env.env_logs([0, 3])
    assert logs.shape == (2, len(env.log_fields)) and (logs[:, -1] >= 1).all()
    assert (env.env_logs([0, 3]) == 0).all()  # read once, then cleared
    for bad in ([6], [-1], [0.5]):
        with pytest.raises(ValueError, match="env indices must be integers in"):
            env.env_logs(bad)
    env.close()


def _seats(env: envs_c.VecEnv) -> Seats:
    seats = allocate_seats(env)
    seats.seat[:] = np.arange(env.num_envs) % 2
    seats.bot[:] = np.arange(env.num_envs) % 3 == 0
    return seats


def test_the_seated_step_on_the_pool_plays_exactly_as_on_one_thread() -> None:
    runs = []
    for threads in (1, 2):
        env = envs_c.make("moba", 12, seed=0, num_threads=threads, opponent=1)
        seats = _seats(env)
        advance = env.seated(seats)
        env.reset(0)
        advance(False)
        rng, trace = np.random.default_rng(0), []
        for _ in range(300):
            seats.actions[:] = rng.integers(0, 3, size=seats.actions.shape)
            seats.their_actions[:] = rng.integers(0, 3, size=seats.their_actions.shape)
            advance(True)
            trace.append([a.copy() for a in (seats.observations, seats.their_observations, seats.rewards)])
            trace[-1] += [seats.seat.copy(), seats.ended.copy(), seats.returns.copy()]
        assert sum(t[4].sum() for t in trace) > 0  # games ended and seats swapped
        runs.append(trace)
        env.close()
    for one, two in zip(*runs, strict=True):
        for a, b in zip(one, two, strict=True):
            np.testing.assert_array_equal(a, b)


def test_the_seated_step_refuses_buffers_it_would_overrun_and_games_without_two_seats() -> None:
    env = envs_c.make("moba", 4, seed=0, opponent=1)
    seats = _seats(env)
    seats.their_observations = seats.their_observations[:-1]
    with pytest.raises(ValueError, match=r"seats\.their_observations must be"):
        env.seated(seats)
    seats = _seats(env)
    seats.returns = seats.returns.astype(np.float32)
    with pytest.raises(ValueError, match=r"seats\.returns must be a C-contiguous float64"):
        env.seated(seats)
    advance = env.seated(_seats(env))
    env.close()
    with pytest.raises(RuntimeError, match="after close"):
        advance(True)
    with envs_c.make("moba", 4, seed=0, opponent=0) as single, pytest.raises(ValueError, match="two seats"):
        single.seated(_seats(env))
