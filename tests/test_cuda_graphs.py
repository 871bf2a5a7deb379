"""CUDA-graph replays of the trainer's steps do what the eager steps do. These need a GPU, so they run on
the lent device (`python3 -m pytest tests/test_cuda_graphs.py`, as bench/gpu_variants.sh does), not in CI."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

import envs_c
from services.common.config import PolicyConfig, SelfPlayConfig, resolve
from services.trainer import loop
from services.trainer.graphs import Graphed
from services.trainer.league import FIRST_SNAPSHOT, MIRROR, SelfPlayEnv
from services.trainer.policy import Policy
from tests.helpers import favouring

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")

CUDA = torch.device("cuda")


class Quiet:
    def metrics(self, step, values):
        self.last = values

    def checkpoint(self, step, stem, size_bytes, meta):
        pass

    def interrupt(self):
        return None


def _setup(recurrent: str, seed: int, segment: int = 0):
    config = resolve("cartpole", {"train": {"num_envs": 64, "num_steps": 32, "minibatch_size": 512}})
    config.policy.recurrent = recurrent
    env = envs_c.make("cartpole", 64, seed=0)
    torch.manual_seed(seed)
    policy = Policy(env.spec.observation_space.shape, env.spec.to_dict()["action"], config.policy).to(CUDA)
    host_obs, host_act = torch.from_numpy(env.observations), torch.from_numpy(env.actions)
    buf = loop._Buffers.allocate(policy, host_obs, host_act, 32, CUDA, segment)
    generator = torch.Generator(device=CUDA).manual_seed(1)
    buf.obs.copy_(torch.randn(buf.obs.shape, device=CUDA, generator=generator))
    buf.act.copy_(torch.randint(0, 2, buf.act.shape, device=CUDA, generator=generator))
    buf.logp.fill_(-0.69)
    buf.rew.copy_(torch.rand(buf.rew.shape, device=CUDA, generator=generator))
    buf.done.copy_((torch.rand(buf.done.shape, device=CUDA, generator=generator) < 0.05).float())
    env.close()
    return config.train, policy, buf


@pytest.mark.parametrize(("recurrent", "segment"), [("none", 0), ("lstm", 0), ("lstm", 8)])
def test_graphed_updates_match_eager_updates(recurrent, segment):
    tc, eager_policy, eager_buf = _setup(recurrent, seed=3, segment=segment)
    _, graph_policy, graph_buf = _setup(recurrent, seed=3, segment=segment)
    spread = 32 // (segment or 32)  # columns from every segment
    eager_opt = loop.make_optimizer(eager_policy, tc, graphs=True)
    graph_opt = loop.make_optimizer(graph_policy, tc, graphs=True)
    index = torch.zeros(16, dtype=torch.long, device=CUDA)
    prepare = Graphed(lambda: loop._prepare(graph_policy, graph_buf, tc), enabled=True)
    step = Graphed(lambda: loop._minibatch(graph_policy, graph_opt, tc, graph_buf, index), enabled=True)
    for update in range(3):  # warm-up, warm-up, capture and replay
        eager_opt.set_learning_rate(0.003 / (update + 1))
        graph_opt.set_learning_rate(0.003 / (update + 1))
        loop._prepare(eager_policy, eager_buf, tc)
        prepare()
        for begin in (0, 16, 32, 48):
            columns = torch.arange(begin, begin + 16, device=CUDA).flip(0) * spread
            eager_stats = loop._minibatch(eager_policy, eager_opt, tc, eager_buf, columns)
            index.copy_(columns)
            graph_stats = step()
            torch.testing.assert_close(graph_stats, eager_stats, rtol=1e-4, atol=1e-5)
    assert graph_opt.state[next(graph_policy.parameters())]["step"].item() == 12
    for eager_param, graph_param in zip(eager_policy.parameters(), graph_policy.parameters(), strict=True):
        torch.testing.assert_close(graph_param, eager_param, rtol=1e-4, atol=1e-5)


def test_graphed_acting_stores_each_step_samples_fresh_actions_and_advances_the_state():
    _, policy, buf = _setup("lstm", seed=4, segment=2)
    host_act = torch.zeros(64, dtype=torch.int32, pin_memory=True)
    act = Graphed(lambda: loop._act(policy, buf, host_act), enabled=True)
    buf.begin_rollout()
    buf.next_obs.copy_(buf.obs[5])
    acted_from = []
    for t in range(6):  # the last four are replays
        before = tuple(s.clone() for s in buf.state)
        acted_from.append(before)
        act()
        torch.cuda.synchronize()
        assert int(buf.t) == t + 1
        action = buf.act[t]
        assert torch.equal(host_act, action.int().cpu())
        with torch.no_grad():
            params, expected_value, expected_state = policy(buf.next_obs, before)
            expected_logp, _ = policy.log_prob_entropy(params, action)
        torch.testing.assert_close(buf.logp[t], expected_logp)
        torch.testing.assert_close(buf.val[t], expected_value)
        torch.testing.assert_close(buf.obs[t], buf.next_obs)
        for current, expected in zip(buf.state, expected_state, strict=True):
            torch.testing.assert_close(current, expected)
    assert not torch.equal(buf.act[5], buf.act[4]), "a replay must draw new random numbers"
    for segment in range(3):  # each segment keeps the state of its first step, not of a later one
        for kept, expected in zip(buf.start_state, acted_from[2 * segment], strict=True):
            torch.testing.assert_close(kept[segment], expected)


def test_graphed_observing_stores_the_reward_at_the_step_just_acted_and_restarts_ended_states():
    _, _, buf = _setup("lstm", seed=5)
    host_obs = torch.randn(buf.next_obs.shape, pin_memory=True)
    host_rew = torch.zeros(64, pin_memory=True)
    host_done = torch.zeros(64, dtype=torch.uint8, pin_memory=True)
    observe = Graphed(lambda: loop._observe(buf, host_obs, host_rew, host_done, 1.0), enabled=True)
    buf.begin_rollout()
    for t in range(5):
        buf.t.add_(1)  # as the acting step would
        for s in buf.state:
            s.fill_(1.0)
        host_rew.copy_(torch.linspace(-3, 3, 64) * (t + 1))
        host_done.copy_(torch.arange(64) % 5 == t)
        host_obs.normal_()
        observe()
        torch.cuda.synchronize()
        torch.testing.assert_close(buf.rew[t].cpu(), host_rew.clamp(-1, 1))
        torch.testing.assert_close(buf.next_obs.cpu(), host_obs)
        assert torch.equal(buf.next_done.cpu(), host_done.float())
        assert torch.equal(buf.state[0][:, 0].cpu(), 1.0 - host_done.float())


def test_a_cpu_checkpoint_resumes_on_the_gpu_with_graphs(tmp_path: Path):
    config = resolve(
        "cartpole",
        {"train": {"total_timesteps": 4 * 1024, "num_envs": 16, "num_steps": 64, "checkpoint_interval": 2}},
    )
    config.train.device = "cpu"
    first = loop.train("cartpole", config, 0, tmp_path, Quiet())
    assert first.status == "succeeded"
    gpu = copy.deepcopy(config)
    gpu.train.device = "cuda"
    gpu.train.total_timesteps = 12 * 1024
    resumed = loop.train("cartpole", gpu, 0, tmp_path / "gpu", Quiet(), resume=first.last_checkpoint)
    assert resumed.status == "succeeded" and resumed.steps == 12 * 1024


def test_cartpole_learns_on_the_gpu_with_graphs(tmp_path: Path):
    config = resolve("cartpole", {"train": {"device": "cuda", "total_timesteps": 200_000}})
    sink = Quiet()
    result = loop.train("cartpole", config, 0, tmp_path, sink)
    assert result.status == "succeeded"
    assert result.final_score >= 0.5


@pytest.mark.parametrize("past_later", [None, 1.0])
def test_graphed_selfplay_opponents_play_their_own_members_moves(past_later):
    # Every opponent row is played by one captured graph (the learner on every row, the snapshots on the
    # rows they hold) that keeps each row's own move. Members that always play one column (the learner 0,
    # the two snapshots 1 and 2) show which one played. With `past_later` the mix changes halfway so that
    # the snapshots hold more rows than the play was captured for: it must grow and play them all.
    env = envs_c.make("connect4", 64, seed=0, opponent=1)
    learner = Policy(env.spec.observation_space.shape, env.spec.to_dict()["action"], PolicyConfig()).to(CUDA)
    wrapped = SelfPlayEnv(env, learner, SelfPlayConfig(mirror=0.4, past=0.6, bot=0.0), CUDA, graphs=True)
    capacity = len(wrapped._past_rows)
    for column in (1, 2, 0):
        learner.load_state_dict(favouring(learner, column).state_dict())
        if column:
            wrapped.snapshot(column)
    wrapped.reset(0)
    plays = {MIRROR: 0, FIRST_SNAPSHOT: 1, FIRST_SNAPSHOT + 1: 2}
    seen: set[int] = set()
    for step in range(120 if past_later else 60):  # games end and draw their next opponents from the pool
        if past_later and step == 40:
            wrapped.league.config = SelfPlayConfig(mirror=1.0 - past_later, past=past_later, bot=0.0)
        codes, seats = wrapped.opponent.copy(), wrapped.seat.copy()
        wrapped.step(np.zeros_like(wrapped.actions))
        theirs = env.actions.reshape(env.num_envs, 2)[np.arange(env.num_envs), 1 - seats]
        np.testing.assert_array_equal(theirs, [plays[int(c)] for c in codes])
        seen |= {int(c) for c in codes}
    assert seen == set(plays)
    if past_later:
        assert (wrapped.opponent >= FIRST_SNAPSHOT).sum() > capacity, "the test must overflow the capture"
    wrapped.close()


def test_graphed_selfplay_opponents_read_the_weights_they_were_launched_with():
    # The opponents play on their own stream. An update queued after `settle` must wait for a play launched
    # before it, however long that play takes, and the next play must see the new weights.
    env = envs_c.make("connect4", 256, seed=0, opponent=1)
    learner = Policy(env.spec.observation_space.shape, env.spec.to_dict()["action"], PolicyConfig()).to(CUDA)
    wrapped = SelfPlayEnv(env, learner, SelfPlayConfig(mirror=1.0, past=0.0, bot=0.0), CUDA, graphs=True)
    weights = {column: favouring(learner, column).state_dict() for column in (1, 2)}
    learner.load_state_dict(weights[1])
    wrapped.reset(0)
    for _ in range(4):  # past the graph's warm-up, so the plays below are the captured one's
        wrapped.step(np.zeros_like(wrapped.actions))
    played = 1
    for column in (2, 1, 2):
        with torch.cuda.stream(wrapped._stream):
            torch.cuda._sleep(50_000_000)  # the play this step launches now waits behind a long kernel
        wrapped.step(np.zeros_like(wrapped.actions))
        wrapped.settle()
        learner.load_state_dict(weights[column])  # the update, queued on the learner's stream
        seats = wrapped.seat.copy()
        wrapped.step(np.zeros_like(wrapped.actions))
        theirs = env.actions.reshape(env.num_envs, 2)[np.arange(env.num_envs), 1 - seats]
        np.testing.assert_array_equal(theirs, played)
        played = column
    wrapped.close()


@pytest.mark.parametrize("recurrent", ["none", "lstm"])
def test_graphed_evaluation_scores_what_the_eager_evaluation_scores(recurrent):
    config = resolve("cartpole", {"train": {"eval_episodes": 16}})
    config.policy.recurrent = recurrent
    env = envs_c.make("cartpole", 1)
    torch.manual_seed(0)
    policy = Policy(env.spec.observation_space.shape, env.spec.to_dict()["action"], config.policy).to(CUDA)
    env.close()
    eager = copy.deepcopy(config)
    eager.train.cuda_graphs = False
    graphed = loop.evaluate(policy, "cartpole", config, 3, CUDA)
    assert graphed == loop.evaluate(policy, "cartpole", eager, 3, CUDA)
    assert graphed == loop.evaluate(policy, "cartpole", config, 3, CUDA)  # a second capture, same episodes
