"""Python environments (issue 15, parts 3-4): Gymnasium ids and PettingZoo modules on worker processes over
shared memory, behind the VecEnv contract of the C environments; SHOAL_PYTHON_ENVS; perf; games rated by
the Elo match runner. Everything runs for real: worker processes, Gymnasium, PettingZoo.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

import envs_c
from envs_c.pyenvs import allowlist, baseline, worker
from envs_c.pyenvs.vector import PythonEnvError
from envs_c.registry import ENVS, lookup
from envs_c.vector import allocate_seats

CARTPOLE = "gymnasium:CartPole-v1"
C4 = "pettingzoo:classic.connect_four_v3"
FIXTURES = "gymnasium:tests.pyenv_fixtures"


@pytest.fixture
def fixtures_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test environments allowed and on the path (a spec directory of their own), a private cache."""
    patterns = f"{allowlist.DEFAULT},{FIXTURES}:*,pettingzoo:tests.pyenv_fixtures"
    monkeypatch.setenv("SHOAL_PYTHON_ENVS", patterns)
    monkeypatch.setenv("SHOAL_ENV_PATH", str(tmp_path))
    monkeypatch.setenv("SHOAL_ENV_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_allowlist_patterns_never_reach_past_a_colon() -> None:
    among = ["gymnasium:CartPole-v*", "pettingzoo:classic.*", "gymnasium:mypkg.envs:*"]
    assert allowlist.allowed("gymnasium:CartPole-v1", among)
    assert allowlist.allowed("pettingzoo:classic.tictactoe_v3", among)
    assert allowlist.allowed("gymnasium:mypkg.envs:Maze-v0", among)
    for refused in (
        "gymnasium:CartPole-v1:os",
        "gymnasium:os:CartPole-v1",
        "pettingzoo:classic:x",
        "gymnasium:Acrobot-v1",
    ):
        assert not allowlist.allowed(refused, among), refused
    assert allowlist.allowed(CARTPOLE) and allowlist.allowed(C4)  # the default


def test_an_id_off_the_allowlist_is_refused_before_its_module_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "imported"
    monkeypatch.setenv("SHOAL_TEST_IMPORT_MARKER", str(marker))
    sys.modules.pop("tests.pyenv_fixtures", None)
    with pytest.raises(ValueError, match="SHOAL_PYTHON_ENVS"):
        lookup(f"{FIXTURES}:Dict-v0")
    assert f"{FIXTURES}:Dict-v0" not in ENVS
    with pytest.raises(ValueError, match="SHOAL_PYTHON_ENVS"):
        envs_c.make(f"{FIXTURES}:Dict-v0", 1)
    assert not marker.exists() and "tests.pyenv_fixtures" not in sys.modules
    # The API's 422 carries the same message (services/common/config.py turns it into UnknownEnv).
    from services.common.config import UnknownEnv, resolve

    with pytest.raises(UnknownEnv, match="SHOAL_PYTHON_ENVS"):
        resolve("pettingzoo:tests.pyenv_fixtures")
    monkeypatch.setenv("SHOAL_PYTHON_ENVS", f"{FIXTURES}:*")
    assert lookup(f"{FIXTURES}:Dict-v0").name == f"{FIXTURES}:Dict-v0"
    assert marker.exists()
    with pytest.raises(ValueError, match="SHOAL_PYTHON_ENVS"):
        lookup(CARTPOLE)  # no longer on the list


def test_gymnasium_env_honours_the_vecenv_contract(fixtures_allowed: Path) -> None:
    with envs_c.make(CARTPOLE, 6, seed=3, num_threads=2) as env:
        spec = env.spec.to_dict()
        assert spec["action"] == {"kind": "discrete", "n": 2} and spec["source"] == "gymnasium"
        assert env.observations.shape == (6, 4) and env.observations.dtype == np.float32
        assert env.actions.shape == (6,) and env.actions.dtype == np.int32
        first = env.reset(7).copy()
        again = env.reset(7).copy()
        assert np.array_equal(first, again) and not np.array_equal(first[0], first[1])
        env.reset_env(4, 11)
        with envs_c.make(CARTPOLE, 1, seed=11) as single:
            assert np.array_equal(env.observations[4], single.observations[0])
        rng = np.random.default_rng(0)
        episodes = 0.0
        for _ in range(300):
            obs, rewards, terminals, truncations = env.step(rng.integers(0, 2, 6))
            assert obs is env.observations and rewards.dtype == np.float32
            episodes += float(terminals.sum() + truncations.sum())
        log = env.log()
        assert log["n"] == episodes and 0.0 <= log["perf"] <= 1.0
        assert set(log) == {"perf", "score", "episode_return", "episode_length", "invalid_actions", "n"}
        assert env.log() == {}  # read and cleared, as in C
        assert env.scripted_actions().shape == (6,)
        assert env.render(5).shape == (400, 600, 3)
        env.step(np.full(6, 99))  # out of range: clamped and counted, like C
        env.step(np.full(6, 99))
    with pytest.raises(RuntimeError, match="after close"):
        env.step()


def test_workers_do_not_change_the_trajectory(fixtures_allowed: Path) -> None:
    """One worker or three, the same seed and actions give the same observations, rewards, terminals and
    truncations step by step."""
    actions = np.random.default_rng(1).integers(0, 2, (200, 5))
    buffers = ("observations", "rewards", "terminals", "truncations")
    with (
        envs_c.make(CARTPOLE, 5, seed=9, num_threads=1) as one,
        envs_c.make(CARTPOLE, 5, seed=9, num_threads=3) as three,
    ):
        assert np.array_equal(one.reset(9), three.reset(9))
        ended = 0
        for t, a in enumerate(actions):
            stepped = one.step(a), three.step(a)
            for what, x, y in zip(buffers, *stepped, strict=True):
                assert np.array_equal(x, y), f"{what} differ at step {t}"
            ended += int(stepped[0][2].sum())
    assert ended > 0, "no episode ended: the terminals compared were all zero"


STEPPING = {
    "pipes": {"spin": False},
    "counters": {"spin": True},
    "counters, parent blocking at once": {"spin": True, "parent_spin_seconds": 0.0},
}


def _stepping(monkeypatch: pytest.MonkeyPatch, spin: bool, parent_spin_seconds: float | None = None) -> None:
    """Steps through the pipes or the shared counters, whatever this machine's cores would choose; with
    `parent_spin_seconds` 0 the parent blocks on the pipes at once, for the workers' notes to wake it."""
    monkeypatch.setattr(worker, "spins", lambda workers: spin)
    if parent_spin_seconds is not None:
        monkeypatch.setattr(worker, "SPIN_SECONDS", parent_spin_seconds)


@pytest.mark.parametrize("stepping", STEPPING.values(), ids=STEPPING.keys())
def test_steps_through_counters_match_steps_through_pipes(
    fixtures_allowed: Path, monkeypatch: pytest.MonkeyPatch, stepping: dict
) -> None:
    """The same seed and actions give the same trajectory however the parent and its three workers meet,
    across pauses long enough for every side to block, and with commands by pipe in between."""
    actions = np.random.default_rng(2).integers(0, 2, (120, 5))
    buffers = ("observations", "rewards", "terminals", "truncations")
    with envs_c.make(CARTPOLE, 5, seed=4, num_threads=1) as reference:
        expected = [tuple(x.copy() for x in reference.step(a)) for a in actions]
    _stepping(monkeypatch, **stepping)
    with envs_c.make(CARTPOLE, 5, seed=4, num_threads=3) as env:
        for t, a in enumerate(actions):
            if t % 40 == 39:
                time.sleep(0.02)  # past SPIN_SECONDS: the workers block on their pipes and need waking
                assert env.scripted_actions().shape == (5,)
            for what, x, y in zip(buffers, env.step(a), expected[t], strict=True):
                assert np.array_equal(x, y), f"{what} differ at step {t}"


@pytest.mark.parametrize("stepping", STEPPING.values(), ids=STEPPING.keys())
def test_a_worker_that_dies_fails_the_step_instead_of_hanging_it(
    fixtures_allowed: Path, monkeypatch: pytest.MonkeyPatch, stepping: dict
) -> None:
    _stepping(monkeypatch, **stepping)
    with envs_c.make(CARTPOLE, 4, seed=0, num_threads=2) as env:
        env.step(np.zeros(4, np.int64))
        env._procs[1].kill()
        env._procs[1].join(5.0)
        with pytest.raises(PythonEnvError, match="exited"):
            env.step(np.zeros(4, np.int64))


def test_dict_and_tuple_observations_flatten_and_multidiscrete_actions_work(fixtures_allowed: Path) -> None:
    name = f"{FIXTURES}:Dict-v0"
    (fixtures_allowed / "dict.pyenv.toml").write_text(f'id = "{name}"\nreturns = [0, 5]\n')
    with envs_c.make(name, 4, seed=0, num_threads=2) as env:
        # Tuple(Discrete(3), Discrete(4)) one-hot (7) + Box(1): 8 floats; MultiDiscrete([3, 4]).
        assert env.observations.shape == (4, 8)
        assert env.spec.to_dict()["action"] == {"kind": "multidiscrete", "nvec": [3, 4]}
        assert env.actions.shape == (4, 2)
        for _ in range(10):  # read the one-hot target back: every step is rewarded
            obs = env.observations
            env.step(np.stack([obs[:, :3].argmax(1), obs[:, 3:7].argmax(1)], 1))
        log = env.log()
        assert log["n"] == 8 and log["episode_return"] == 5.0 and log["perf"] == 1.0
        env.step(np.full((4, 2), -5))  # out of range: clamped, counted, never reaches the environment
        for _ in range(4):
            env.step(np.zeros((4, 2), np.int32))
        assert env.log()["invalid_actions"] == 2.0
        assert env.render(0).shape == (8, 8, 3)


def test_pettingzoo_parallel_env_gets_one_row_per_agent(fixtures_allowed: Path) -> None:
    name = "pettingzoo:tests.pyenv_fixtures"
    with pytest.raises(ValueError, match="no reward_threshold"):
        lookup(name)
    (fixtures_allowed / "crowd.pyenv.toml").write_text(
        f'id = "{name}"\nreturns = [0, 4]\nperf = "mean choices of its own index"\n[make]\nlength = 4\n'
    )
    with envs_c.make(name, 2, seed=0, num_threads=2) as env:
        assert env.num_agents == 6 and env.spec.agents_per_env == 3
        done_rows = []
        for _ in range(4):
            _, _, terminals, _ = env.step(np.tile([0, 1, 2], 2))
            done_rows.append(terminals.copy())
        assert done_rows[0].tolist() == [0, 0, 1] * 2  # agent_2 leaves after one step
        assert done_rows[3].tolist() == [1, 1, 1] * 2  # the episode ends for every row
        log = env.log()
        assert log["n"] == 2 and log["episode_return"] == pytest.approx(3.0)  # (4 + 4 + 1) / 3
        assert log["perf"] == pytest.approx(0.75)


def test_perf_from_reward_threshold_measures_the_random_return_once(
    fixtures_allowed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    definition = lookup(CARTPOLE)
    assert definition.returns == (None, 475.0) and "reward_threshold 475" in definition.perf
    value = baseline.random_return(definition.recipe, definition.version())
    assert 15 < value < 35  # CartPole's random policy survives ~22 steps

    def never(_):
        raise AssertionError("measured again instead of read from the cache")

    monkeypatch.setattr(baseline, "measure", never)
    assert baseline.random_return(definition.recipe, definition.version()) == value
    with pytest.raises(ValueError, match=r"no reward_threshold.*spec file"):
        lookup(f"{FIXTURES}:NoThreshold-v0")
    with pytest.raises(ValueError, match="no reward_threshold"):
        lookup("gymnasium:Pendulum-v1")
    (fixtures_allowed / "pendulum.pyenv.toml").write_text(
        'id = "gymnasium:Pendulum-v1"\nreturns = [-1400, -200]\nsolved = 0.9\n'
        "[train]\nlearning_rate = 0.001\n"
    )
    pendulum = lookup("gymnasium:Pendulum-v1")
    assert pendulum.returns == (-1400.0, -200.0) and pendulum.solved == 0.9
    assert pendulum.source == str(fixtures_allowed / "pendulum.pyenv.toml")
    from services.common.config import resolve

    assert resolve("gymnasium:Pendulum-v1").train.learning_rate == 0.001
    with envs_c.make("gymnasium:Pendulum-v1", 2) as env:
        assert env.spec.to_dict()["action"]["kind"] == "continuous"
        for _ in range(200):
            env.step(np.full((2, 1), np.nan, np.float32))  # NaN becomes 0 and is counted
        log = env.log()
        assert log["n"] == 2 and log["invalid_actions"] == 200 and 0.0 <= log["perf"] <= 1.0
    (fixtures_allowed / "again.pyenv.toml").write_text('id = "gymnasium:Pendulum-v1"\nreturns = [0, 1]\n')
    with pytest.raises(ValueError, match="two spec files"):
        lookup("gymnasium:Pendulum-v1")


@pytest.mark.parametrize("stepping", STEPPING.values(), ids=STEPPING.keys())
def test_an_exception_in_step_names_its_last_line_and_the_worker_lives(
    fixtures_allowed: Path, monkeypatch: pytest.MonkeyPatch, stepping: dict
) -> None:
    name = f"{FIXTURES}:Raising-v0"
    (fixtures_allowed / "raising.pyenv.toml").write_text(f'id = "{name}"\nreturns = [0, 1]\n')
    _stepping(monkeypatch, **stepping)
    with envs_c.make(name, 2, seed=0) as env:
        env.step(np.zeros(2, np.int32))
        env.step(np.zeros(2, np.int32))
        env.step(np.zeros(2, np.int32))
        with pytest.raises(PythonEnvError, match=r"ValueError: the pole fell through the floor at step 4$"):
            env.step(np.zeros(2, np.int32))
        env.reset(1)  # the worker process still answers
        env.step(np.zeros(2, np.int32))


def test_two_player_game_against_the_bot_and_in_mirror_mode(fixtures_allowed: Path) -> None:
    definition = lookup(C4)
    assert definition.players is not None and [p.name for p in definition.params] == ["opponent"]
    with envs_c.make(C4, 8, seed=0, num_threads=2) as env:
        assert env.num_agents == 8 and env.spec.players == ((0,),)
        assert env.observations.shape == (8, 91) and env.observations.dtype == np.uint8
        for _ in range(200):
            env.step(env.scripted_actions())  # random legal moves: no invalid action
        log = env.log()
        assert log["n"] > 8 and log["invalid_actions"] == 0 and 0.2 < log["perf"] < 0.8
        assert log["perf"] == pytest.approx(log["wins"] + 0.5 * log["draws"])
    with envs_c.make(C4, 4, seed=0, opponent=1) as env:
        assert env.num_agents == 8 and env.spec.players == ((0,), (1,))
        for _ in range(30):
            _, rewards, terminals, _ = env.step(np.full(8, 3))  # column 3 until it is full: illegal
            assert (terminals[0::2] == terminals[1::2]).all()  # both seats end together
            assert (rewards[0::2] == -rewards[1::2]).all()  # zero-sum
        assert env.log()["invalid_actions"] > 0
    # Self-play's seated step, as on the C environments: the learner's seat and the other one change every
    # game, the bot's games take its moves, the others the network's.
    with envs_c.make(C4, 4, seed=0, opponent=1) as env:
        seats = allocate_seats(env)
        seats.seat[:] = [0, 1, 0, 1]
        seats.bot[:] = [1, 0, 0, 1]
        advance = env.seated(seats)
        env.reset(0)
        advance(False)
        rng, games = np.random.default_rng(0), 0
        for _ in range(60):
            before = seats.seat.astype(int).copy()
            seats.actions[:] = rng.integers(0, 7, 4)
            seats.their_actions[:] = rng.integers(0, 7, 4)
            advance(True)
            np.testing.assert_array_equal(env.actions[np.arange(4) * 2 + before], seats.actions)
            network = seats.bot == 0
            np.testing.assert_array_equal(
                env.actions[(np.arange(4) * 2 + 1 - before)[network]], seats.their_actions[network]
            )
            ended = seats.ended.astype(bool)
            assert (seats.seat == np.where(ended, 1 - before, before)).all()
            mine = np.arange(4) * 2 + seats.seat
            np.testing.assert_array_equal(seats.observations, env.observations[mine])
            np.testing.assert_array_equal(
                seats.their_observations, env.observations[np.arange(4) * 2 + 1 - seats.seat]
            )
            games += int(ended.sum())
        assert games >= 4


def test_a_pettingzoo_game_checkpoint_plays_rated_matches(fixtures_allowed: Path, tmp_path: Path) -> None:
    """Training against the bot, then the Elo match runner with the checkpoint in both seats (no special
    case: services/elo/match.py drives the Python batch like a C one)."""
    from services.common.config import resolve
    from services.elo import match
    from services.trainer import loop
    from tests.helpers import Recorder

    config = resolve(
        "pettingzoo:classic.tictactoe_v3",
        {
            "train": {
                "total_timesteps": 4096,
                "num_envs": 8,
                "num_steps": 32,
                "minibatch_size": 128,
                "eval_episodes": 8,
            }
        },
    )
    result = loop.train("pettingzoo:classic.tictactoe_v3", config, 0, tmp_path / "out", Recorder())
    assert result.status == "succeeded" and 0.0 <= result.final_score <= 1.0, result
    player = match.load_player(result.last_checkpoint, "pettingzoo:classic.tictactoe_v3")
    for anchor in ("random", "scripted"):
        results = match.play("pettingzoo:classic.tictactoe_v3", player, match.Player(anchor), 8, seed=5)
        assert len(results) == 8 and all(r.score_a in (0.0, 0.5, 1.0) for r in results)
        assert {r.seat_a for r in results} == {0, 1} and not any(r.timeout for r in results)
    again = match.play("pettingzoo:classic.tictactoe_v3", player, match.Player("scripted"), 8, seed=5)
    assert again == match.play("pettingzoo:classic.tictactoe_v3", player, match.Player("scripted"), 8, seed=5)


def test_replay_gif_of_a_gymnasium_checkpoint(fixtures_allowed: Path, tmp_path: Path) -> None:
    from services.common.config import resolve
    from services.trainer import loop
    from services.trainer.replay import replay_gif
    from tests.helpers import Recorder

    config = resolve(
        CARTPOLE,
        {
            "train": {
                "total_timesteps": 2048,
                "num_envs": 8,
                "num_steps": 32,
                "minibatch_size": 128,
                "eval_episodes": 4,
            }
        },
    )
    result = loop.train(CARTPOLE, config, 0, tmp_path / "out", Recorder())
    assert result.status == "succeeded", result
    gif = replay_gif(result.last_checkpoint, tmp_path / "replay.gif", frames=20)
    assert gif.stat().st_size > 1000


def _step_once(_: int) -> tuple[int, ...]:
    with envs_c.make(CARTPOLE, 4, num_threads=2) as env:
        env.step(np.zeros(4, np.int32))
        return env.observations.shape


def test_python_envs_run_in_a_celery_prefork_pool_child() -> None:
    """The Elo worker plays matches in billiard's pool: a daemonic process, forked from one (this test's)
    that has already started the forkserver, with an authkey of billiard's type. Twice, so a second batch
    reuses the child's own server."""
    import billiard

    envs_c.make(CARTPOLE, 1).close()  # this process has a forkserver before the pool forks
    with billiard.Pool(1) as pool:
        assert pool.map(_step_once, [0, 1]) == [(4, 4), (4, 4)]
