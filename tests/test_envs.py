"""The C environment suite against its contract: every registered environment, fast (no training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import envs_c
from envs_c.gif import record, write_gif
from envs_c.registry import ENVS

NAMES = envs_c.names()
GAMES = [n for n in NAMES if "opponent" in envs_c.make_spec(n).config]

# Settings that make episodes end within a short test while keeping each game's character.
SHORT = {
    "breakout": {"max_steps": 300},
    "pong": {"points": 2, "max_steps": 600},
    "snake": {"max_steps": 150, "goal": 5},
}


def random_actions(env: envs_c.VecEnv, rng: np.random.Generator) -> np.ndarray:
    space = env.spec.action_space
    if env.actions.dtype == np.float32:
        return rng.uniform(space.low[0], space.high[0], env.actions.shape).astype(np.float32)
    high = space.n if hasattr(space, "n") else space.nvec.max()
    return rng.integers(0, high, env.actions.shape).astype(np.int32)


def rollout(env: envs_c.VecEnv, steps: int, policy: str, seed: int = 0) -> dict[str, float]:
    """Mean of every log field over all episodes that ended, weighted by episode count."""
    rng = np.random.default_rng(seed)
    totals: dict[str, float] = {}
    episodes = 0.0
    for _ in range(steps):
        env.step(env.scripted_actions() if policy == "scripted" else random_actions(env, rng))
        log = env.log()
        if log:
            assert 0.0 <= log["perf"] <= 1.0, log
            for key, value in log.items():
                if key != "n":
                    totals[key] = totals.get(key, 0.0) + value * log["n"]
            episodes += log["n"]
    assert episodes > 0, f"{env.spec.name}: no episode ended in {steps} steps ({policy})"
    return {key: value / episodes for key, value in totals.items()} | {"n": episodes}


def in_bounds(env: envs_c.VecEnv, obs: np.ndarray) -> None:
    space = env.spec.observation_space
    assert obs.dtype == space.dtype and obs.shape == (env.num_agents, *space.shape)
    if obs.dtype.kind == "f":
        assert np.isfinite(obs).all(), f"{env.spec.name}: non-finite observation"
    assert (obs >= space.low).all() and (obs <= space.high).all(), (
        f"{env.spec.name}: observation outside [{space.low.min()}, {space.high.max()}]: "
        f"[{obs.min()}, {obs.max()}]"
    )


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_trajectory(name: str) -> None:
    a = envs_c.make(name, 4, seed=7)
    b = envs_c.make(name, 4, seed=7)
    c = envs_c.make(name, 4, seed=8)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(a.reset(), b.reset())
    differs = not np.array_equal(a.observations, c.reset())
    for _ in range(200):
        actions = random_actions(a, rng)
        oa, ra, ta, ua = (x.copy() for x in a.step(actions))
        ob, rb, tb, ub = b.step(actions)
        c.step(actions)
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(ta, tb)
        np.testing.assert_array_equal(ua, ub)
        differs |= not np.array_equal(oa, c.observations)
    assert differs, f"{name}: seeds 7 and 8 gave identical trajectories"
    # reset(seed) replays from the start.
    first = a.reset(seed=7).copy()
    np.testing.assert_array_equal(first, b.reset(seed=7))
    for env in (a, b, c):
        env.close()


@pytest.mark.parametrize("name", NAMES)
def test_threads_step_the_same_trajectory(name: str) -> None:
    one = envs_c.make(name, 6, seed=3)
    two = envs_c.make(name, 6, seed=3, num_threads=2)
    rng = np.random.default_rng(1)
    for _ in range(100):
        actions = random_actions(one, rng)
        o1 = one.step(actions)[0].copy()
        np.testing.assert_array_equal(o1, two.step(actions)[0])
    one.close()
    two.close()


@pytest.mark.parametrize("name", NAMES)
def test_bounds_and_perf(name: str) -> None:
    env = envs_c.make(name, 16, seed=1, **SHORT.get(name, {}))
    in_bounds(env, env.reset())
    rng = np.random.default_rng(2)
    episodes = 0.0
    for t in range(1500):
        policy_scripted = t % 2 == 0
        obs, rewards, terminals, truncations = env.step(
            env.scripted_actions() if policy_scripted else random_actions(env, rng)
        )
        in_bounds(env, obs)
        assert np.isfinite(rewards).all()
        assert set(np.unique(terminals)) <= {0, 1} and set(np.unique(truncations)) <= {0, 1}
        log = env.log()
        if log:
            episodes += log["n"]
            assert 0.0 <= log["perf"] <= 1.0
            assert list(log) == list(ENVS[name].log_fields)
    assert episodes > 0
    env.close()


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


@pytest.mark.parametrize("name", NAMES)
def test_invalid_actions_are_survived_and_counted(name: str) -> None:
    env = envs_c.make(name, 8, seed=2, **SHORT.get(name, {}))
    env.reset()
    rng = np.random.default_rng(3)
    shape = env.actions.shape
    for t in range(600):
        if env.actions.dtype == np.float32:
            bad = rng.choice(
                np.array([np.nan, np.inf, -np.inf, 1e30, -7.0, 3.0, 0.5], np.float32), size=shape
            )
            obs = env.step(bad)[0]
        else:
            pool = np.array([-1, -(2**31), 2**31 - 1, 1000, 64, 7, 0, 1], dtype=np.int64)
            bad = rng.choice(pool, size=shape)
            if t % 3 == 0:
                bad = bad * (2**40)  # int64 far outside int32: clipped, never wrapped into range
            obs = env.step(bad)[0]
        in_bounds(env, obs)
    # Run until episodes end, still with bad actions, so the count reaches the log.
    totals = 0.0
    for _ in range(3000):
        if env.actions.dtype == np.float32:
            env.step(np.full(shape, np.nan, np.float32))
        else:
            env.step(np.full(shape, -5, np.int32))
        log = env.log()
        if log:
            totals += log["invalid_actions"] * log["n"]
            if totals > 0:
                break
    assert totals > 0, f"{name}: invalid actions were not counted"
    env.close()


@pytest.mark.parametrize("name", NAMES)
def test_wrong_buffers_are_refused(name: str) -> None:
    env = envs_c.make(name, 4)
    shape = env.actions.shape
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros((shape[0] + 1, *shape[1:]), env.actions.dtype))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros((*shape, 2), env.actions.dtype))
    with pytest.raises(ValueError, match="dtype"):
        env.step(np.zeros(shape, bool))
    with pytest.raises(ValueError, match="dtype"):
        env.step(np.zeros(shape, complex))
    if env.actions.dtype != np.float32:
        with pytest.raises(ValueError, match="dtype"):
            env.step(np.zeros(shape, np.float32))
    env.close()
    with pytest.raises(RuntimeError):
        env.step()


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
