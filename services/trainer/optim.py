"""The trainer's optimizers: Adam, and Muon for the hidden weight matrices with Adam for the rest.

They are not `torch.optim` optimizers: constructing one of those imports `torch._dynamo` (its
`add_param_group` is wrapped to disable compilation), which took 4.4 s of a 10.8 s cold start on an H200
and 0.85 s of 2.15 s on a CPU, although nothing here is compiled. They keep torch.optim's state-dict
layout (moments by parameter index, hyperparameters by group), so checkpoints load either way, and Adam
runs torch's fused kernel, the one `torch.optim.Adam(fused=True)` runs, on CPU and CUDA alike.

A learning rate may be a device tensor: a CUDA graph that captured the step then reads the annealed rate
on every replay. The step counters live on the parameters' device for the same reason.

Muon follows Keller Jordan's reference: Nesterov momentum, then five Newton-Schulz iterations that push
the update towards the nearest semi-orthogonal matrix, scaled to Adam's typical update RMS
(0.2 * sqrt(max(rows, cols))) so one learning rate serves both groups. It is one optimizer with Adam (rather
than a Muon and an Adam side by side), so that the trainer state stays a single state dict.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


class Optimizer(ABC):
    """Parameter groups (dicts with "params" and hyperparameters) and per-parameter state."""

    def __init__(self, groups: list[dict[str, Any]]) -> None:
        self.param_groups = [g for g in groups if g["params"]]
        self.state: dict[torch.Tensor, dict[str, Any]] = {}

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    def set_learning_rate(self, lr: float) -> None:
        for group in self.param_groups:
            _set_rate(group, lr)

    def zero_grad(self) -> None:
        for p in self._params():
            p.grad = None

    @abstractmethod
    def step(self) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        index = {p: i for i, p in enumerate(self._params())}
        return {
            "state": {index[p]: dict(values) for p, values in self.state.items()},
            "param_groups": [
                {**{k: v for k, v in g.items() if k != "params"}, "params": [index[p] for p in g["params"]]}
                for g in self.param_groups
            ],
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Moments onto each parameter's device; the saved groups' hyperparameters, of those this optimizer
        has. The learning rate keeps its form (a tensor stays the same tensor) and takes the saved value."""
        params = self._params()
        sizes = [len(g["params"]) for g in saved["param_groups"]]
        if sizes != [len(g["params"]) for g in self.param_groups]:
            raise ValueError(f"optimizer state for parameter groups of {sizes}, not this policy's")
        for group, values in zip(self.param_groups, saved["param_groups"], strict=True):
            for name, value in values.items():
                if name == "lr":
                    _set_rate(group, float(value))
                elif name in group and name != "params":
                    group[name] = tuple(value) if isinstance(value, list) else value
        self.state = {}
        for index, values in saved["state"].items():
            p = params[int(index)]
            # Copies: the saved state may be another optimizer's live tensors.
            moved = {k: v.to(p.device, copy=True) if torch.is_tensor(v) else v for k, v in values.items()}
            if "step" in moved:  # torch.optim keeps it as a tensor on the host unless fused
                moved["step"] = torch.as_tensor(moved["step"], dtype=torch.float32, device=p.device)
            self.state[p] = moved


def _set_rate(group: dict[str, Any], lr: float) -> None:
    if torch.is_tensor(group["lr"]):
        group["lr"].fill_(lr)
    else:
        group["lr"] = lr


def _adam(state: dict[torch.Tensor, dict[str, Any]], group: dict[str, Any]) -> None:
    """One fused Adam update of the group's parameters that have a gradient."""
    params = [p for p in group["params"] if p.grad is not None]
    if not params:
        return
    for p in params:
        if p not in state:
            state[p] = {
                "step": torch.zeros((), dtype=torch.float32, device=p.device),
                "exp_avg": torch.zeros_like(p),
                "exp_avg_sq": torch.zeros_like(p),
            }
    values = [state[p] for p in params]
    steps = [v["step"] for v in values]
    torch._foreach_add_(steps, 1)
    beta1, beta2 = group["betas"]
    torch._fused_adam_(
        params,
        [p.grad for p in params],
        [v["exp_avg"] for v in values],
        [v["exp_avg_sq"] for v in values],
        [],
        steps,
        amsgrad=False,
        lr=group["lr"],
        beta1=beta1,
        beta2=beta2,
        weight_decay=0.0,
        eps=group["eps"],
        maximize=False,
        grad_scale=None,
        found_inf=None,
    )


class Adam(Optimizer):
    def __init__(
        self,
        params: Iterable[nn.Parameter],
        lr: float | torch.Tensor,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__([{"params": list(params), "lr": lr, "betas": betas, "eps": eps}])

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            _adam(self.state, group)


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


class MuonWithAdam(Optimizer):
    def __init__(
        self,
        model: nn.Module,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        muon_momentum: float = 0.95,
    ) -> None:
        named = list(model.named_parameters())
        hyper = {"lr": lr, "betas": betas, "eps": eps, "momentum": muon_momentum}
        super().__init__(
            [
                {"params": [p for n, p in named if _is_hidden_matrix(n, p)], "muon": True, **hyper},
                {"params": [p for n, p in named if not _is_hidden_matrix(n, p)], "muon": False, **hyper},
            ]
        )

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            if not group["muon"]:
                _adam(self.state, group)
                continue
            for p in group["params"]:
                if p.grad is not None:
                    self._muon(p, p.grad, self.state.setdefault(p, {}), group["lr"], group["momentum"])

    @staticmethod
    def _muon(p: torch.Tensor, grad: torch.Tensor, state: dict, lr: float, momentum: float) -> None:
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p)
        buf = state["momentum_buffer"]
        buf.lerp_(grad, 1 - momentum)
        g = grad.lerp(buf, momentum).flatten(1)  # Nesterov; conv kernels as (out, in*k*k)
        scale = 0.2 * max(g.shape) ** 0.5
        p.add_(orthogonalise(g).view_as(p), alpha=-lr * scale)
