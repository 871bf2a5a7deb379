"""Muon for the hidden weight matrices and Adam for everything else, as one optimizer.

One optimizer (rather than a Muon and an Adam side by side) keeps the trainer state a single state dict,
which is what checkpoints save and resume. Muon follows Keller Jordan's reference: Nesterov momentum, then
five Newton-Schulz iterations that push the update towards the nearest semi-orthogonal matrix, scaled to
Adam's typical update RMS (0.2 * sqrt(max(rows, cols))) so one learning rate serves both groups.
"""

from __future__ import annotations

import torch
from torch import nn


def orthogonalise(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximately U V^T of g's SVD, by a quintic Newton-Schulz iteration (float32: small matrices)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g / (g.norm() + 1e-7)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def _is_hidden_matrix(name: str, p: nn.Parameter) -> bool:
    # The action and value heads map features to outputs of very different scale: Adam suits them better.
    return p.ndim >= 2 and not name.startswith(("actor.", "critic."))


class MuonWithAdam(torch.optim.Optimizer):
    def __init__(
        self,
        model: nn.Module,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        muon_momentum: float = 0.95,
    ):
        named = list(model.named_parameters())
        groups = [
            {"params": [p for n, p in named if _is_hidden_matrix(n, p)], "muon": True},
            {"params": [p for n, p in named if not _is_hidden_matrix(n, p)], "muon": False},
        ]
        defaults = {"lr": lr, "betas": betas, "eps": eps, "momentum": muon_momentum}
        super().__init__([g for g in groups if g["params"]], defaults)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr = group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if group["muon"]:
                    self._muon(p, p.grad, state, lr, group["momentum"])
                else:
                    beta1, beta2 = group["betas"]
                    self._adam(p, state, lr, beta1, beta2, group["eps"])
        return None

    @staticmethod
    def _muon(p: torch.Tensor, grad: torch.Tensor, state: dict, lr: float, momentum: float) -> None:
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p)
        buf = state["momentum_buffer"]
        buf.lerp_(grad, 1 - momentum)
        g = grad.lerp(buf, momentum).flatten(1)  # Nesterov; conv kernels as (out, in*k*k)
        scale = 0.2 * max(g.shape) ** 0.5
        p.add_(orthogonalise(g).view_as(p), alpha=-lr * scale)

    @staticmethod
    def _adam(p: torch.Tensor, state: dict, lr: float, beta1: float, beta2: float, eps: float) -> None:
        if "exp_avg" not in state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        state["exp_avg"].lerp_(p.grad, 1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
        denom = (state["exp_avg_sq"] / (1 - beta2**t)).sqrt_().add_(eps)
        p.addcdiv_(state["exp_avg"], denom, value=-lr / (1 - beta1**t))
