"""Environments from outside the package (issue 15): scaffolded, found on SHOAL_ENV_PATH, compiled on first
use into a content-hashed cache, checked, trained, and refused with the compiler's message when broken.

Every test compiles for real, into a private cache (SHOAL_ENV_CACHE) so the first use is a cache miss.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import envs_c
from envs_c import build, checks
from envs_c.registry import ENVS, lookup
from envs_c.scaffold import scaffold
from tests.helpers import ROOT, Platform, platform_env, wait_for_run


@pytest.fixture
def user_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scaffolded environment `walker` in its own directory on the path, with an empty cache."""
    directory = tmp_path / "envs"
    scaffold("walker", directory)
    monkeypatch.setenv("SHOAL_ENV_PATH", str(directory))
    monkeypatch.setenv("SHOAL_ENV_CACHE", str(tmp_path / "cache"))
    return directory


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


def test_scaffold_is_found_and_passes_every_check(user_env: Path) -> None:
    assert "walker" in envs_c.names() and lookup("walker").source == str(user_env / "walker.env.toml")
    outcomes = checks.run("walker", asan_steps=100_000)
    assert all(o.ok for o in outcomes), checks.table(outcomes)
    assert [o.check for o in outcomes][-1] == "agent-steps/s per core"


def test_scaffold_trains_on_cpu(user_env: Path, tmp_path: Path) -> None:
    from services.common.config import resolve
    from services.trainer import loop
    from tests.helpers import Recorder

    config = resolve(
        "walker", {"train": {"total_timesteps": 4096, "num_envs": 16, "num_steps": 32, "minibatch_size": 256}}
    )
    assert config.train.learning_rate == 0.005  # the spec's [train] table is the environment's defaults
    sink = Recorder()
    result = loop.train("walker", config, 0, tmp_path / "out", sink)
    assert result.status == "succeeded" and result.steps >= 4096, result
    assert result.final_score is not None and 0.0 <= result.final_score <= 1.0
    meta = result.last_checkpoint.with_suffix(".json").read_text()
    assert lookup("walker").version() in meta


@pytest.fixture
def user_game(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scaffolded two-player game `duel` (`shoal env new duel --players 2`) on the path, empty cache."""
    directory = tmp_path / "games"
    scaffold("duel", directory, players=2)
    monkeypatch.setenv("SHOAL_ENV_PATH", str(directory))
    monkeypatch.setenv("SHOAL_ENV_CACHE", str(tmp_path / "cache"))
    return directory


def test_two_player_scaffold_is_a_game_and_passes_every_check_in_both_seat_modes(user_game: Path) -> None:
    from services.elo.games import is_game

    assert is_game("duel")  # what self-play, the Elo service and the trainer's rating hook look for
    assert envs_c.make_spec("duel").players == ((0,),)
    assert envs_c.make_spec("duel", opponent=1).players == ((0,), (1,))
    outcomes = checks.run("duel", asan_steps=100_000)  # the sanitizer build runs both seat modes
    assert all(o.ok for o in outcomes), checks.table(outcomes)
    outcomes = checks.run("duel", {"opponent": 1}, asan_steps=1000)
    assert all(o.ok for o in outcomes), checks.table(outcomes)


def test_two_player_scaffold_beats_its_bot_and_takes_a_seat_in_rated_matches(
    user_game: Path, tmp_path: Path
) -> None:
    """The spec's training defaults, cut to 65k steps (about 1 s here; 200k by default): the bar is the
    spec's solved threshold, 0.9, against a bot that a random policy beats in 4% of games and that draws
    level with itself. The run's usual result is 1.0 from about 30k steps on."""
    from services.common.config import resolve
    from services.elo.match import Player, load_player, play
    from services.trainer import loop
    from services.trainer.replay import replay_gif
    from tests.helpers import Recorder

    env = envs_c.make("duel", 256, seed=0)
    assert checks.rollout(env, 400, "random")["perf"] < 0.1
    env.close()
    config = resolve("duel", {"train": {"total_timesteps": 65_536, "device": "cpu"}})
    assert config.env["opponent"] == 0 and config.train.gamma == 0.99  # the spec's defaults
    result = loop.train("duel", config, 0, tmp_path / "out", Recorder())
    assert result.status == "succeeded" and (result.final_score or 0.0) >= 0.9, result
    # The checkpoint, trained against the bot in seat 0, plays either seat of a rated match (opponent = 1).
    player = load_player(result.last_checkpoint, "duel")
    games = play("duel", player, Player("scripted"), 40, seed=1)
    assert {g.seat_a for g in games} == {0, 1} and not any(g.timeout for g in games)
    assert sum(g.score_a for g in games) / len(games) >= 0.9, games
    gif = replay_gif(result.last_checkpoint, tmp_path / "duel.gif", frames=10)
    assert gif.stat().st_size > 0


def test_two_player_scaffold_trains_in_self_play(user_game: Path, tmp_path: Path) -> None:
    from services.common.config import resolve
    from services.trainer import loop
    from tests.helpers import Recorder

    config = resolve(
        "duel",
        {
            "train": {"total_timesteps": 16_384, "device": "cpu", "eval_episodes": 16},
            "selfplay": {"mirror": 0.5, "past": 0.3, "bot": 0.2, "snapshot_interval": 2},
        },
    )
    sink = Recorder()
    result = loop.train("duel", config, 0, tmp_path / "out", sink)
    assert result.status == "succeeded" and result.final_score is not None
    assert any("league/winrate/bot" in row for _, row in sink.rows)


def test_a_header_that_does_not_compile_fails_with_the_compilers_message(user_env: Path, capsys) -> None:
    from services.cli import main

    _edit(user_env / "walker.h", "env->tick += 1;", "env->tick += 1")
    with pytest.raises(build.EnvBuildError, match=r"walker\.h:\d+:\d+: error: expected ';'"):
        envs_c.make("walker", 2)
    assert main(["env", "check", "walker"]) == 1
    out = capsys.readouterr().out
    assert "compiles and loads" in out and "FAIL" in out and "error: expected ';'" in out
    assert "not run: the environment does not build" in out
    # Fixed, it builds: a failure is never cached.
    _edit(user_env / "walker.h", "env->tick += 1\n", "env->tick += 1;\n")
    envs_c.make("walker", 2).close()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('[params.size]\ntype = "int"', '[params.size]\ntype = "float"', "incompatible pointer type"),
        ('"invalid_actions", "n"', '"invalid_actions", "bonus", "n"', "has no member named 'bonus'"),
        ('dtype = "float32"', 'dtype = "uint8"', "incompatible pointer type"),
    ],
)
def test_a_spec_that_disagrees_with_the_struct_is_a_build_error(user_env: Path, old, new, message) -> None:
    _edit(user_env / "walker.env.toml", old, new)
    with pytest.raises(build.EnvBuildError) as e:
        envs_c.make("walker", 2)
    assert message in str(e.value), str(e.value)


def test_a_spec_with_the_wrong_observation_size_names_it(user_env: Path) -> None:
    _edit(user_env / "walker.env.toml", "shape = [4]", "shape = [5]")
    with pytest.raises(RuntimeError, match="observation size 4, its spec file gives 5"):
        envs_c.make("walker", 2)


def test_spec_errors_and_duplicate_names_are_reported_not_fatal(
    user_env: Path, tmp_path, monkeypatch
) -> None:
    other = tmp_path / "other"
    scaffold("walker", other)
    scaffold("cartpole_copy", other)
    (other / "cartpole_copy.env.toml").rename(other / "cartpole.env.toml")
    (other / "typo.env.toml").write_text('struct = "Typo"\nsolvd = 0.5\n')
    monkeypatch.setenv("SHOAL_ENV_PATH", os.pathsep.join([str(user_env), str(other), str(tmp_path / "gone")]))
    problems = ENVS.problems()
    assert "walker" not in ENVS and "defined twice" in problems["walker"]
    assert str(user_env / "walker.env.toml") in problems["walker"] and str(other) in problems["walker"]
    assert lookup("cartpole").source == "built-in" and "built-in" in problems["cartpole"]
    assert "typo.env.toml" in problems["typo"]
    with pytest.raises(ValueError, match="defined twice"):
        envs_c.make_spec("walker")
    assert {"squared", "snake"} <= set(envs_c.names())  # the others are unaffected


def test_version_is_the_content_hash_and_follows_edits(user_env: Path) -> None:
    before = envs_c.version("walker")
    _edit(user_env / "walker.env.toml", "solved = 0.9", "solved = 0.9  # a comment changes nothing")
    assert envs_c.version("walker") == before
    _edit(user_env / "walker.env.toml", "learning_rate = 0.005", "learning_rate = 0.004")
    assert envs_c.version("walker") == before  # training defaults are not the environment
    _edit(user_env / "walker.h", "reward = 0.1f *", "reward = 0.2f *")
    after = envs_c.version("walker")
    assert after != before and envs_c.make_spec("walker").version == after
    env = envs_c.make("walker", 2)  # a new module, loaded beside the old one
    assert build.module_key(lookup("walker")) in {p.name.split(".")[0] for p in build.cache_dir().iterdir()}
    env.close()


def _load(name: str) -> str:
    module = build.load(name)
    return module.__file__


def test_concurrent_first_use_builds_once_and_never_corrupts_the_cache(user_env: Path) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(6) as pool:
        files = pool.map(_load, ["walker"] * 6)
    assert len(set(files)) == 1
    cache = build.cache_dir()
    built = [p for p in cache.iterdir() if p.name.endswith(".so")]
    assert len(built) == 1 and not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temp dirs
    # A process that finds the module in the cache loads it without compiling.
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import envs_c.build as b; b.load('walker')"],
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert time.perf_counter() - started < 10


def test_env_new_refuses_taken_and_invalid_names(user_env: Path, capsys) -> None:
    from services.cli import main

    for name in ("walker", "cartpole", "Bad-Name"):
        with pytest.raises(SystemExit):
            main(["env", "new", name, "--dir", str(user_env)])
    assert main(["env", "list"]) == 0
    assert str(user_env / "walker.env.toml") in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["env", "new", "trio", "--players", "3", "--dir", str(user_env)])
    with pytest.raises(ValueError, match="players = 3"):
        scaffold("trio", user_env, players=3)


def test_env_new_players_2_writes_a_game_and_the_default_stays_single_agent(user_env: Path) -> None:
    from services.cli import main

    assert main(["env", "new", "duel", "--players", "2", "--dir", str(user_env)]) == 0
    assert lookup("duel").players is not None and lookup("walker").players is None
    assert "\nplayers = 2\n" in (user_env / "duel.env.toml").read_text()
    assert "SHOAL_ZERO_SUM_RESULT" in (user_env / "duel.h").read_text()


def test_user_env_trains_through_the_api_and_a_broken_one_fails_the_run(tmp_path: Path) -> None:
    """API and a train worker as real processes (embedded default) that find environments on the path."""
    envs = tmp_path / "envs"
    scaffold("walker", envs)
    scaffold("broken", envs)
    _edit(envs / "broken.h", "env->tick += 1;", "env->tick += 1")
    env = platform_env(
        tmp_path,
        f"sqlite:///{tmp_path}/shoal.db",
        f"sqla+sqlite:///{tmp_path}/broker.db",
        SHOAL_ENV_PATH=str(envs),
        SHOAL_ENV_CACHE=str(tmp_path / "cache"),
    )
    subprocess.run([sys.executable, "-m", "services.cli", "migrate"], env=env, check=True, cwd=tmp_path)
    with Platform(env, tmp_path).running("train") as platform, platform.client() as client:
        listed = {e["name"]: e for e in client.get("/envs").json()}
        assert listed["walker"]["source"] == str(envs / "walker.env.toml")
        assert listed["cartpole"]["source"] == "built-in"
        assert listed["walker"]["defaults"]["train"]["learning_rate"] == 0.005
        small = {"train": {"num_envs": 16, "num_steps": 32, "minibatch_size": 256, "eval_episodes": 8}}
        bad = client.post("/runs", json={"env": "broken", "total_timesteps": 2048, "hyperparameters": small})
        assert bad.status_code in (200, 201), bad.text
        failed = wait_for_run(client, bad.json()["id"], 180, "the broken run to fail")
        assert failed["status"] == "failed" and "error: expected ';'" in failed["failure_reason"], failed
        good = client.post("/runs", json={"env": "walker", "total_timesteps": 4096, "hyperparameters": small})
        done = wait_for_run(client, good.json()["id"], 240, "the walker run to finish")
        assert done["status"] == "succeeded", done  # the same worker, after the failed build
        assert done["env_version"] == envs_c.registry.parse_spec(envs / "walker.env.toml").version()


def test_the_tutorials_environment_passes_every_check(tmp_path: Path, monkeypatch) -> None:
    """docs/envs.md's `coins`, copied out of its code blocks, as a reader would."""
    text = (ROOT / "docs" / "envs.md").read_text()
    (header,) = re.findall(r"```c\n(.*?)```", text, re.S)
    spec = re.findall(r"```toml\n(.*?)```", text, re.S)[0]
    (tmp_path / "coins.h").write_text(header)
    (tmp_path / "coins.env.toml").write_text(spec)
    monkeypatch.setenv("SHOAL_ENV_PATH", str(tmp_path))
    monkeypatch.setenv("SHOAL_ENV_CACHE", str(tmp_path / "cache"))
    outcomes = checks.run("coins", asan_steps=20_000)
    assert all(o.ok for o in outcomes), checks.table(outcomes)
    scripted = checks.rollout(envs_c.make("coins", 16, seed=1), 400, "scripted")["perf"]
    random = checks.rollout(envs_c.make("coins", 16, seed=1), 400, "random")["perf"]
    assert scripted > 0.95 and random < 0.8, (scripted, random)


def test_env_check_catches_an_out_of_bounds_write_under_asan(user_env: Path, capsys) -> None:
    """One byte past an environment's row: inside the batch's buffers for every environment but the last,
    and within the allocator's slack after the last, so Python does not crash; the sanitizer build, whose
    buffers end exactly, reports the write and its line."""
    from services.cli import main

    _edit(
        user_env / "walker.h",
        "    SHOAL_STEP_RESULT(env, 0, reward, reached, timed_out);\n",
        "    SHOAL_STEP_RESULT(env, 0, reward, reached, timed_out);\n"
        "    env->truncations[1] = 0; /* the bug */\n",
    )
    assert main(["env", "check", "walker"]) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("ASan/UBSan build"))
    assert "FAIL" in row, out
    assert "AddressSanitizer: heap-buffer-overflow" in out and "WRITE of size 1" in out
    assert re.search(r"walker_step .*walker\.h:\d+", out), out  # the report points at the line
    # With two threads the stray byte can also race the next shard's own write: determinism may fail too.
    assert re.search(r"walker: FAIL \(.*ASan/UBSan build, 100000 steps\)", out), out


def test_env_check_refuses_a_scripted_policy_that_reads_the_action_buffer(user_env: Path) -> None:
    # Self-play's step has the scripted policy write the bot's moves into the action buffer itself, so a
    # policy that reads that buffer would play its own last output back.
    _edit(
        user_env / "walker.h",
        "int x = env->gx - env->ax",
        "int x = env->gx - env->ax + 9 * (env->actions[0] != 0)",
    )
    with pytest.raises(checks.CheckFailed, match="depend on the action buffer"):
        checks.same_seed_same_trajectory("walker")
