"""The trainer: failure on non-finite losses, resume, checkpoints, defaults, and solving on CPU."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

import envs_c
from services.common.config import ConfigError, resolve
from services.trainer import checkpoint as ckpt
from services.trainer import loop
from services.trainer.policy import Policy
from tests.helpers import Recorder, small


def test_non_finite_loss_fails_the_run_at_its_step_and_keeps_the_last_good_checkpoint(embedded, monkeypatch):
    from services.common.db import session_scope
    from services.common.models import Checkpoint, Run
    from services.common.runs import create_run
    from services.trainer import tasks

    real_loss = loop.ppo_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        terms = real_loss(*args, **kwargs)
        if calls["n"] > 40:  # after a few epochs and at least one checkpoint
            terms.total = terms.total * float("nan")
        return terms

    monkeypatch.setattr(loop, "ppo_loss", poisoned)
    with session_scope() as session:
        run_id = create_run(
            session, "cartpole", {"train": {"checkpoint_interval": 2}}, total_timesteps=100_000
        ).id
    tasks.train_run(run_id)
    with session_scope() as session:
        run = session.get(Run, run_id)
        checkpoints = session.query(Checkpoint).filter_by(run_id=run_id).all()
        assert run.status == "failed"
        assert run.failure_reason.startswith("nan_loss at step ")
        failed_at = int(run.failure_reason.split("step ")[1].split(":")[0])
        assert 0 < failed_at < 100_000
        assert checkpoints and all(c.step < failed_at for c in checkpoints)
        policy, _ = ckpt.load_policy(Path(embedded) / "artifacts" / checkpoints[-1].path, env="cartpole")
        assert all(torch.isfinite(p).all() for p in policy.parameters())


def test_resume_continues_from_the_saved_step_to_exactly_the_budget(tmp_path):
    config = small()
    first = Recorder(stop_after_checkpoints=2)
    interrupted = loop.train("cartpole", config, 0, tmp_path, first)
    assert interrupted.status == "cancelled"
    saved_step = first.checkpoints[-1][0]
    assert saved_step == 4 * 2048

    second = Recorder()
    resumed = loop.train("cartpole", config, 0, tmp_path, second, resume=first.checkpoints[-1][1])
    assert resumed.status == "succeeded"
    assert resumed.steps == config.train.total_timesteps
    assert min(step for step, _ in second.rows) > saved_step
    epochs = [values["epoch"] for _, values in second.rows if "epoch" in values]
    assert epochs[-1] == 8


def test_a_checkpoint_round_trip_reproduces_the_same_actions(tmp_path):
    result = loop.train("cartpole", small(total_timesteps=4096), 0, tmp_path, Recorder())
    original, meta = ckpt.load_policy(
        result.last_checkpoint, env="cartpole", env_version=envs_c.version("cartpole")
    )
    again, _ = ckpt.load_policy(result.last_checkpoint)
    obs = torch.randn(256, 4)
    with torch.no_grad():
        a = original.sample(original(obs)[0], deterministic=True)
        b = again.sample(again(obs)[0], deterministic=True)
    assert torch.equal(a, b)
    assert meta["env_spec"]["observation"]["shape"] == [4]
    assert meta["hyperparameters"]["train"]["total_timesteps"] == 4096


def test_checkpoints_of_another_env_version_or_with_corrupt_weights_are_refused(tmp_path):
    result = loop.train("cartpole", small(total_timesteps=2048), 0, tmp_path, Recorder())
    stem = result.last_checkpoint
    with pytest.raises(ckpt.CheckpointError, match="not 'pong'"):
        ckpt.load_policy(stem, env="pong")
    with pytest.raises(ckpt.CheckpointError, match="version"):
        ckpt.load_policy(stem, env="cartpole", env_version="0000")
    stem.with_suffix(".safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ckpt.CheckpointError, match="cannot load weights"):
        ckpt.load_policy(stem)
    stem.with_suffix(".json").write_text("{not json")
    with pytest.raises(ckpt.CheckpointError, match="not valid JSON"):
        ckpt.load_policy(stem)


def test_retention_keeps_the_last_n_and_every_mth():
    assert ckpt.retained([10, 20, 30, 40, 50, 60], keep_last=2, keep_every=3) == {30, 50, 60}
    assert ckpt.retained([10, 20], keep_last=5, keep_every=0) == {10, 20}


@pytest.mark.parametrize("env", envs_c.names())
def test_every_environment_has_defaults_that_parse(env):
    config = resolve(env)
    assert config.train.total_timesteps > 0
    spec = envs_c.make_spec(env, **config.env)
    assert 0 < spec.solved <= 1


@pytest.mark.slow
@pytest.mark.parametrize("env", ["cartpole", "squared", "navigate"])
def test_defaults_solve_on_cpu_in_under_two_minutes(env, tmp_path):
    started = time.monotonic()
    result = loop.train(env, resolve(env), 1, tmp_path, Recorder())
    elapsed = time.monotonic() - started
    assert result.status == "succeeded"
    assert result.final_score >= envs_c.make_spec(env).solved, result
    assert elapsed < 120


def test_evaluation_of_an_arena_counts_every_agents_first_life_not_the_first_death():
    """Snake's arenas hold 16 snakes; reading an arena's log at its first death scored the unluckiest."""
    config = resolve("snake", {"train": {"eval_episodes": 8}, "env": {"goal": 2}})
    env = envs_c.make("snake", 8, seed=5 + 1_000_003, **config.env)
    torch.manual_seed(0)
    policy = Policy(env.spec.observation_space.shape, env.spec.to_dict()["action"], config.policy)
    # The reference: each snake's first life, followed through its rewards (+1 per food).
    torch.manual_seed(123)
    obs = env.reset()
    food = torch.zeros(env.num_agents)
    first_life_perf = torch.full((env.num_agents,), -1.0)
    while (first_life_perf < 0).any():
        with torch.no_grad():
            params, _, _ = policy(torch.from_numpy(obs), None)
            action = policy.sample(params, deterministic=config.train.eval_deterministic)
        obs, reward, terminals, truncations = env.step(policy.env_actions(action).numpy())
        alive = first_life_perf < 0
        food += alive * torch.from_numpy(reward > 0)
        ended = alive & torch.from_numpy((terminals | truncations).astype(bool))
        first_life_perf[ended] = (food[ended] / 2).clamp(max=1.0)
    env.close()
    expected = float(first_life_perf.mean())
    assert expected > 0.2

    torch.manual_seed(123)
    perf, _ = loop.evaluate(policy, "snake", config, 5, torch.device("cpu"))
    assert perf == pytest.approx(expected, abs=0.03)


def test_an_evaluation_that_sees_no_episode_end_fails_the_run_with_the_reason(tmp_path, monkeypatch):
    """It used to score 0.0, which reads as a policy that lost, not as an evaluation that counted nothing."""
    config = small()
    torch.manual_seed(0)
    policy = Policy((4,), envs_c.make_spec("cartpole").to_dict()["action"], config.policy)
    # A cartpole episode lasts at least a handful of steps, so none ends within two.
    with pytest.raises(loop.EvaluationError, match=r"no episode of cartpole ended within 2 steps"):
        loop.evaluate(policy, "cartpole", config, 0, torch.device("cpu"), max_steps=2)

    real = loop.evaluate
    monkeypatch.setattr(loop, "evaluate", lambda *args: real(*args, max_steps=2))
    result = loop.train("cartpole", config, 1, tmp_path, Recorder())
    assert (result.status, result.failure_kind) == ("failed", "crash")
    assert result.failure_reason.startswith("evaluation: no episode of cartpole ended")
    assert result.final_score is None and result.last_checkpoint is not None


def test_a_bench_run_stopped_by_its_budget_is_still_evaluated(tmp_path):
    """`shoal bench train` once reported snake's final eval as empty: its budget cancelled the run, and a
    cancelled run has no evaluation. The budget now stops training and the evaluation follows."""
    from services.trainer.bench import run_env

    overrides = {"train": {"total_timesteps": 10**9, "num_envs": 16, "num_steps": 128, "eval_episodes": 4}}
    result = run_env("cartpole", 1, 0.5, tmp_path, overrides)
    assert result.final_perf is not None and 0.0 <= result.final_perf <= 1.0
    assert result.steps < 10**9


def test_a_finished_run_reports_what_it_cost_beside_training(tmp_path):
    sink = Recorder()
    started = time.perf_counter()
    result = loop.train("cartpole", small(), 0, tmp_path, sink)
    wall = time.perf_counter() - started
    assert result.status == "succeeded"
    step, last = sink.rows[-1]
    assert step == result.steps and "eval/perf" in last
    spent = [last["time/setup"], last["time/last_checkpoint"], last["time/evaluation"]]
    assert all(seconds >= 0 for seconds in spent)
    assert last["time/evaluation"] > 0  # it stepped episodes to their end
    assert sum(spent) + sink.rows[-2][1]["uptime"] <= wall


def test_warm_up_trains_and_leaves_nothing_behind(tmp_path, monkeypatch):
    """A trainer's start-up warm-up runs a real tiny training and keeps none of it; a fault in it is
    reported, not raised, so the worker still takes runs."""
    from services.trainer import warmup

    monkeypatch.setattr(warmup.tempfile, "tempdir", str(tmp_path))
    assert warmup.warm_up("cpu").startswith("warm-up on cpu: succeeded in ")
    assert not list(tmp_path.iterdir())
    assert "failed: " in warmup.warm_up("no-such-device")


def test_a_python_env_on_a_gpu_leaves_the_trainer_a_core_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # With a core to spare per worker, a Python env's workers step through shared counters, not pipes.
    monkeypatch.setattr(loop, "available_cores", lambda: 16)
    assert loop._env_threads("gymnasium:CartPole-v1", torch.device("cuda")) == 15
    assert loop._env_threads("gymnasium:CartPole-v1", torch.device("cpu")) == 16
    assert loop._env_threads("breakout", torch.device("cuda")) == 16
    monkeypatch.setattr(loop, "available_cores", lambda: 1)
    assert loop._env_threads("gymnasium:CartPole-v1", torch.device("cuda")) == 1


@pytest.mark.parametrize("bptt", [0, 8])
def test_each_learning_segment_starts_from_the_state_it_was_acted_from(bptt, tmp_path):
    """With `bptt_horizon` the learner cuts each agent's rollout into segments; replaying a segment from its
    stored state must give the log-probabilities and values the policy acted with, or the first update's
    importance ratios are not 1."""
    config = resolve(
        "cartpole",
        {
            "train": {"num_envs": 16, "num_steps": 32, "bptt_horizon": bptt, "device": "cpu"},
            "policy": {"recurrent": "lstm", "hidden_size": 16},
        },
    )
    with loop.Trainer("cartpole", config, 3, tmp_path, loop.Discard(), None) as trainer:
        trainer.rollout()
        buf = trainer.buf
        assert buf.segment == (bptt or 32)
        assert 0 < buf.done.sum() < buf.done.numel(), "episodes must end inside segments for this to test"
        idx = torch.arange(buf.learning_columns).flip(0)
        rows = buf.column_rows(idx)
        state = tuple(s.flatten(0, 1)[idx] for s in buf.start_state)
        with torch.no_grad():
            params, values = trainer.policy.forward_sequence(
                buf.columns(buf.obs, rows), buf.columns(buf.done, rows), state
            )
            logp, _ = trainer.policy.log_prob_entropy(params, buf.columns(buf.act, rows))
        torch.testing.assert_close(logp, buf.columns(buf.logp, rows))
        torch.testing.assert_close(values, buf.columns(buf.val, rows))
        assert rows.shape == (buf.segment, buf.learning_columns)
        assert sorted(rows.flatten().tolist()) == list(range(32 * 16)), "every step is learnt exactly once"


@pytest.mark.parametrize("vtrace", [False, True])
def test_a_recurrent_run_with_short_segments_trains(vtrace, tmp_path):
    config = resolve(
        "cartpole",
        {
            "train": {
                "total_timesteps": 8192,
                "num_envs": 16,
                "num_steps": 64,
                "bptt_horizon": 16,
                "vtrace": vtrace,
            },
            "policy": {"recurrent": "lstm"},
        },
    )
    config.train.device = "cpu"
    result = loop.train("cartpole", config, 0, tmp_path, Recorder())
    assert result.status == "succeeded" and result.steps == 8192


def test_a_bptt_horizon_that_does_not_divide_the_rollout_is_refused():
    with pytest.raises(ConfigError, match=r"train\.bptt_horizon: 24 must divide num_steps \(64\)"):
        resolve("cartpole", {"train": {"num_steps": 64, "bptt_horizon": 24}})


def test_a_segment_bootstraps_from_the_step_after_it():
    # V-trace recomputes advantages per learning column; a segment that ends inside the rollout must
    # bootstrap from the value (and the done flag) of the next segment's first step, the last one from
    # the step after the rollout.
    horizon, agents, segment = 12, 5, 4
    policy = Policy((3,), {"kind": "discrete", "n": 2}, resolve("cartpole").policy)
    buf = loop._Buffers.allocate(
        policy, torch.zeros(agents, 3), torch.zeros(agents, dtype=torch.int32), horizon, "cpu", segment
    )
    buf.val.copy_(torch.arange(horizon * agents, dtype=torch.float32).view(horizon, agents))
    buf.next_value.copy_(torch.full((agents,), -1.0))
    columns = torch.arange(horizon // segment * agents)
    following = buf.segment_next(buf.val, buf.next_value)[columns]
    for column, value in zip(columns.tolist(), following.tolist(), strict=True):
        seg, agent = divmod(column, agents)
        after = (seg + 1) * segment
        assert value == (buf.val[after, agent].item() if after < horizon else -1.0)
    # and within a segment the column's last step is the one just before it
    last = buf.columns(buf.val, buf.column_rows(columns))[-1]
    inside = following >= 0
    torch.testing.assert_close(last[inside] + agents, following[inside])
