"""PPO's pieces as pure tensor functions: advantages and the clipped loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch


def advantages(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    next_value: torch.Tensor,
    next_done: torch.Tensor,
    gamma: float,
    lam: float,
    ratio: torch.Tensor | None = None,
    rho_clip: float = 1.0,
    c_clip: float = 1.0,
) -> torch.Tensor:
    """Generalised advantage estimates over a [T, B] rollout.

    `dones[t]` marks that the observation at step t began a new episode, so the value at t must not
    bootstrap into step t-1. With `ratio` (pi/mu for the stored actions) the TD errors and the trace are
    weighted by clipped importance ratios, V-trace style, which keeps later update epochs honest when the
    policy has drifted from the one that collected the data.
    """
    # Everything but the recursion is computed for all steps at once; the loop is one fused
    # multiply-add per step, so a GPU rollout of T steps costs T small launches, not 8T.
    not_done = 1.0 - torch.cat([dones[1:], next_done.unsqueeze(0)])
    following = torch.cat([values[1:], next_value.unsqueeze(0)])
    delta = rewards + gamma * following * not_done - values
    trace = gamma * lam * not_done
    if ratio is not None:
        delta = delta * ratio.clamp(max=rho_clip)
        trace = trace * ratio.clamp(max=c_clip)
    out = torch.empty_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        last = torch.addcmul(delta[t], trace[t], last, out=out[t])
    return out


@dataclass
class LossTerms:
    total: torch.Tensor
    policy: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor
    approx_kl: torch.Tensor
    clipfrac: torch.Tensor


def ppo_loss(
    new_logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    new_value: torch.Tensor,
    old_value: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    clip_coef: float,
    vf_coef: float,
    vf_clip_coef: float,
    ent_coef: float,
) -> LossTerms:
    """The clipped surrogate, a clipped value loss (vf_clip_coef 0 turns its clipping off), and the
    entropy bonus. The loss is minimised, so the policy term is the negated surrogate."""
    log_ratio = new_logp - old_logp
    ratio = log_ratio.exp()
    surrogate = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()
    if vf_clip_coef > 0:
        clipped = old_value + (new_value - old_value).clamp(-vf_clip_coef, vf_clip_coef)
        value_loss = 0.5 * torch.max((new_value - returns) ** 2, (clipped - returns) ** 2).mean()
    else:
        value_loss = 0.5 * ((new_value - returns) ** 2).mean()
    entropy_mean = entropy.mean()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clipfrac = ((ratio - 1).abs() > clip_coef).float().mean()
    total = surrogate + vf_coef * value_loss - ent_coef * entropy_mean
    return LossTerms(total, surrogate, value_loss, entropy_mean, approx_kl, clipfrac)


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - Var(target - predicted) / Var(target), NaN when the target is constant; a device scalar, so
    the trainer can average it without a host read per update."""
    var = target.var()
    ev = 1 - (target - predicted).var() / var
    return torch.where(var == 0, torch.full_like(ev, float("nan")), ev)
