"""PPO pieces against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from services.common.config import PolicyConfig
from services.trainer.policy import Policy
from services.trainer.ppo import advantages, explained_variance, ppo_loss


def test_advantages_match_a_hand_computed_example():
    # One env, three steps, the episode ends after step 1 (so step 2 begins a new episode).
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [1.5]])
    dones = torch.tensor([[0.0], [0.0], [1.0]])
    gamma, lam = 0.9, 0.8
    adv = advantages(
        rewards,
        values,
        dones,
        next_value=torch.tensor([2.0]),
        next_done=torch.tensor([0.0]),
        gamma=gamma,
        lam=lam,
    )
    d2 = 3.0 + gamma * 2.0 - 1.5
    d1 = 2.0 - 1.0  # terminal: no bootstrap, no trace across the boundary
    d0 = 1.0 + gamma * 1.0 - 0.5
    expected = torch.tensor([[d0 + gamma * lam * d1], [d1], [d2]])
    assert torch.allclose(adv, expected)


def test_vtrace_weights_clip_large_ratios():
    rewards = torch.ones(2, 1)
    values = torch.zeros(2, 1)
    dones = torch.zeros(2, 1)
    kwargs = dict(next_value=torch.zeros(1), next_done=torch.zeros(1), gamma=1.0, lam=1.0)
    plain = advantages(rewards, values, dones, **kwargs)
    clipped = advantages(rewards, values, dones, ratio=torch.full((2, 1), 5.0), **kwargs)
    halved = advantages(rewards, values, dones, ratio=torch.full((2, 1), 0.5), **kwargs)
    assert torch.allclose(plain, clipped)  # ratios above the clip act as 1
    assert torch.allclose(halved, torch.tensor([[0.5 + 0.5 * 0.5], [0.5]]))


def _loss(new_logp, adv, clip=0.2):
    n = len(adv)
    zeros = torch.zeros(n)
    return ppo_loss(new_logp, zeros, adv, zeros, zeros, zeros, zeros, clip, 0.5, 0.0, 0.0)


def test_policy_loss_rewards_raising_good_actions():
    adv = torch.tensor([1.0])
    up = _loss(torch.tensor([0.1]), adv).policy
    down = _loss(torch.tensor([-0.1]), adv).policy
    assert up < down  # the loss is minimised, so more probability on a good action lowers it


def test_ratio_is_clipped_beyond_the_trust_region():
    adv = torch.tensor([1.0])
    far = torch.tensor([1.0], requires_grad=True)  # ratio e^1 >> 1.2
    terms = _loss(far, adv)
    terms.policy.backward()
    assert torch.isclose(terms.policy, torch.tensor(-1.2))
    assert far.grad.abs().item() == 0.0
    assert terms.clipfrac.item() == 1.0


def test_value_loss_clipping_takes_the_pessimistic_branch():
    returns = torch.tensor([1.0])
    old = torch.tensor([0.0])
    new = torch.tensor([0.5])
    zero = torch.zeros(1)
    clipped = ppo_loss(zero, zero, zero, new, old, returns, zero, 0.2, 1.0, 0.2, 0.0)
    # the clipped prediction (0.2) is further from the return than the new one, so it sets the loss
    assert torch.isclose(clipped.value, torch.tensor(0.5 * 0.8**2))


def test_entropy_bonus_lowers_the_loss():
    zero = torch.zeros(1)
    low = ppo_loss(zero, zero, zero, zero, zero, zero, torch.tensor([0.1]), 0.2, 0.5, 0.0, 0.1).total
    high = ppo_loss(zero, zero, zero, zero, zero, zero, torch.tensor([1.0]), 0.2, 0.5, 0.0, 0.1).total
    assert high < low


def test_explained_variance():
    target = torch.tensor([1.0, 2.0, 3.0])
    assert explained_variance(target, target) == 1.0
    assert explained_variance(torch.zeros(3) + 2.0, target) == 0.0


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="the fused LSTM step runs on CUDA only")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("recurrent", ["lstm", "gru"])
def test_the_learner_replays_the_recurrent_state_the_actor_had(recurrent, device):
    """PPO's ratio starts at 1 only if the learner's pass over a segment gives the actor's outputs: the same
    recurrent state, reset where an episode began (as the acting loop resets it after a done)."""
    torch.manual_seed(0)
    policy = Policy((6,), {"kind": "discrete", "n": 3}, PolicyConfig(recurrent=recurrent, hidden_size=16))
    policy.to(device)
    steps, batch = 12, 5
    obs = torch.randn(steps, batch, 6, device=device)
    starts = (torch.rand(steps, batch, device=device) < 0.2).float()
    start_state = tuple(torch.randn(batch, 16, device=device) for _ in policy.initial_state(batch, device))
    state, acted = start_state, []
    for t in range(steps):
        state = tuple(s * (1.0 - starts[t]).unsqueeze(-1) for s in state)
        params, value, state = policy(obs[t], state)
        acted.append((params, value))
    params, values = policy.forward_sequence(obs, starts, start_state)
    torch.testing.assert_close(params, torch.stack([p for p, _ in acted]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(values, torch.stack([v for _, v in acted]), rtol=1e-5, atol=1e-6)


def test_sampled_actions_follow_each_heads_softmax_independently() -> None:
    policy = Policy((3,), {"kind": "multidiscrete", "nvec": [3, 2]}, PolicyConfig())
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.5, -0.5]]).expand(200_000, 5)
    generator = torch.Generator().manual_seed(0)
    actions = policy.sample(logits, generator=generator)
    assert actions.shape == (200_000, 2)
    for head, (start, n) in enumerate(((0, 3), (3, 2))):
        counts = torch.bincount(actions[:, head], minlength=n).double() / len(actions)
        torch.testing.assert_close(
            counts, torch.softmax(logits[0, start : start + n].double(), 0), atol=4e-3, rtol=0
        )
    # The heads draw independent noise: their joint frequencies are the product of the marginals.
    joint = (actions[:, 0] == 0) & (actions[:, 1] == 0)
    marginal = ((actions[:, 0] == 0).double().mean() * (actions[:, 1] == 0).double().mean()).item()
    assert joint.double().mean().item() == pytest.approx(marginal, abs=4e-3)
    assert torch.equal(policy.sample(logits[:2], deterministic=True), torch.tensor([[0, 0], [0, 0]]))
