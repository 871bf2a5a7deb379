"""Actor-critic policies: an encoder (MLP or conv), an optional LSTM/GRU core, and an action head.

Everything a checkpoint needs to rebuild the network lives in `Policy.describe()`; the weights, including
the observation normaliser's running statistics (registered buffers), live in the state dict.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from services.common.config import PolicyConfig

State = tuple[torch.Tensor, ...] | None


class ObsNorm(nn.Module):
    """Running mean/variance of observations, kept as buffers so they travel with the weights."""

    # Buffers: declared, since nn.Module types attributes it registers as Tensor | Module.
    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, size: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("var", torch.ones(size))
        self.register_buffer("count", torch.tensor(1e-4))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        # In place: a captured acting step reads these buffers at fixed addresses.
        batch_mean = x.mean(0)
        batch_var = x.var(0, unbiased=False)
        n = x.shape[0]
        total = self.count + n
        delta = batch_mean - self.mean
        self.var.mul_(self.count).add_(batch_var * n + delta**2 * self.count * n / total).div_(total)
        self.mean.add_(delta * n / total)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + 1e-8)).clamp(-10, 10)


def _layer(module: nn.Module, gain: float = math.sqrt(2)) -> nn.Module:
    for p in module.parameters():
        if p.dim() >= 2:
            nn.init.orthogonal_(p, gain)
        else:
            nn.init.zeros_(p)
    return module


class Policy(nn.Module):
    # Continuous actions' bounds, registered as buffers (nn.Module types those as Tensor | Module).
    action_low: torch.Tensor
    action_high: torch.Tensor

    def __init__(self, obs_shape: tuple[int, ...], action: dict[str, Any], config: PolicyConfig):
        super().__init__()
        self.obs_shape = tuple(obs_shape)
        self.action = action
        self.config = config
        hidden = config.hidden_size
        obs_size = int(np.prod(obs_shape))

        encoder = config.encoder
        if encoder == "auto":
            encoder = "conv" if len(obs_shape) >= 2 and min(obs_shape[-2:]) >= 5 else "mlp"
        self.encoder_kind = encoder
        self.obs_norm = ObsNorm(obs_size) if config.obs_norm else None

        if encoder == "conv":
            if len(obs_shape) not in (2, 3):
                raise ValueError(f"policy.encoder: conv needs a 2-D or 3-D observation, got {obs_shape}")
            channels = 1 if len(obs_shape) == 2 else obs_shape[0]
            conv = nn.Sequential(
                _layer(nn.Conv2d(channels, 32, 3, padding=1)),
                nn.ReLU(),
                _layer(nn.Conv2d(32, 64, 3, stride=2, padding=1)),
                nn.ReLU(),
                nn.Flatten(),
            )
            with torch.no_grad():
                flat = conv(torch.zeros(1, channels, *obs_shape[-2:])).shape[1]
            self.encoder = nn.Sequential(conv, _layer(nn.Linear(flat, hidden)), nn.ReLU())
        else:
            layers: list[nn.Module] = []
            width = obs_size
            for _ in range(config.num_layers):
                layers += [_layer(nn.Linear(width, hidden)), nn.Tanh()]
                width = hidden
            self.encoder = nn.Sequential(*layers)

        self.core: nn.Module | None = None
        if config.recurrent == "lstm":
            self.core = nn.LSTMCell(hidden, hidden)
        elif config.recurrent == "gru":
            self.core = nn.GRUCell(hidden, hidden)

        kind = action["kind"]
        if kind == "discrete":
            self.nvec = [int(action["n"])]
        elif kind == "multidiscrete":
            self.nvec = [int(n) for n in action["nvec"]]
        else:
            self.nvec = []
        if kind == "continuous":
            size = int(np.prod(action["shape"]))
            self.actor = _layer(nn.Linear(hidden, size), 0.01)
            self.log_std = nn.Parameter(torch.full((size,), -0.5))
            self.register_buffer("action_low", torch.tensor(float(action["low"])))
            self.register_buffer("action_high", torch.tensor(float(action["high"])))
        else:
            self.actor = _layer(nn.Linear(hidden, sum(self.nvec)), 0.01)
        self.critic = _layer(nn.Linear(hidden, 1), 1.0)

    def describe(self) -> dict[str, Any]:
        """What `Policy.from_description` needs to rebuild this network."""
        return {
            "class": "Policy",
            "obs_shape": list(self.obs_shape),
            "action": self.action,
            "config": self.config.model_dump(),
        }

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> Policy:
        if description.get("class") != "Policy":
            raise ValueError(f"unknown policy class {description.get('class')!r}")
        return cls(
            tuple(description["obs_shape"]), description["action"], PolicyConfig(**description["config"])
        )

    def initial_state(self, batch: int, device: torch.device | str) -> State:
        if self.core is None:
            return None
        h = torch.zeros(batch, self.config.hidden_size, device=device)
        return (h, torch.zeros_like(h)) if isinstance(self.core, nn.LSTMCell) else (h,)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float()
        if self.obs_norm is not None:
            x = self.obs_norm(x.flatten(1)).view_as(x)
        if self.encoder_kind == "conv":
            if x.dim() == 3:
                x = x.unsqueeze(1)
            return self.encoder(x)
        return self.encoder(x.flatten(1))

    def _step_core(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        if self.core is None:
            return x, None
        if isinstance(self.core, nn.LSTMCell):
            h, c = self.core(x, state)
            return h, (h, c)
        assert state is not None, "a GRU steps from initial_state(), never from None"
        h = self.core(x, state[0])
        return h, (h,)

    def forward(self, obs: torch.Tensor, state: State = None) -> tuple[torch.Tensor, torch.Tensor, State]:
        """One step for a batch: action-distribution parameters, value, next recurrent state."""
        x, state = self._step_core(self.encode(obs), state)
        return self.actor(x), self.critic(x).squeeze(-1), state

    def forward_sequence(
        self, obs: torch.Tensor, starts: torch.Tensor, state: State
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters and values for a [T, B] rollout; `starts[t]` marks steps that begin an episode,
        where the recurrent state is reset, exactly as it was while acting."""
        steps, batch = obs.shape[:2]
        x = self.encode(obs.reshape(steps * batch, *obs.shape[2:]))
        if self.core is None:
            return self.actor(x).view(steps, batch, -1), self.critic(x).view(steps, batch)
        assert state is not None, "a recurrent core starts from the rollout's state and carries one"
        keep = (1.0 - starts).unsqueeze(-1)
        x = x.view(steps, batch, -1)
        if isinstance(self.core, nn.LSTMCell) and x.is_cuda:
            h = self._lstm_sequence_cuda(x, keep, state)
        else:
            outputs = []
            for t in range(steps):
                assert state is not None, "the core carries its state through the segment"
                out, state = self._step_core(x[t], tuple(s * keep[t] for s in state))
                outputs.append(out)
            h = torch.stack(outputs)
        return self.actor(h), self.critic(h).squeeze(-1)

    def _lstm_sequence_cuda(
        self, x: torch.Tensor, keep: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        """The LSTM core over a [T, B, H] segment on CUDA, equal to stepping `nn.LSTMCell`. Learning is
        bound by the T sequential steps' kernels, so the input half of every step's gates is one product
        over the whole segment, and each step keeps the recurrent product and one fused kernel for the
        gate arithmetic (the op `nn.LSTMCell` itself runs there). On the CPU the cell's own step is faster."""
        core = self.core
        assert isinstance(core, nn.LSTMCell)
        input_gates = torch.nn.functional.linear(x, core.weight_ih)
        h, c = state
        outputs = []
        for t in range(x.shape[0]):
            h, c = h * keep[t], c * keep[t]
            # Not in torch's stubs; it has autograd.
            h, c, _ = torch.ops.aten._thnn_fused_lstm_cell(
                input_gates[t], h @ core.weight_hh.t(), c, core.bias_ih, core.bias_hh
            )
            outputs.append(h)
        return torch.stack(outputs)

    # Action distributions, written out rather than via torch.distributions to keep the hot path lean.

    def sample(
        self, params: torch.Tensor, deterministic: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Actions from the distributions `params`; the noise comes from `generator` (default: torch's
        global one)."""
        if not self.nvec:
            if deterministic:
                return params
            noise = torch.randn(params.shape, dtype=params.dtype, device=params.device, generator=generator)
            return params + noise * self.log_std.exp()
        if not deterministic:
            # Gumbel-max for every head at once: argmax(logits - log E), E ~ Exp(1), is a sample of
            # softmax(logits) (-log E is Gumbel noise). Three kernels for all heads, where each head drew and
            # transformed its own noise: sampling is on the critical path of every step, and of self-play's
            # opponents. exponential_ never draws 0, so the log is finite.
            race = torch.empty_like(params).exponential_(generator=generator)
            params = params - race.log_()
        actions = [logits.argmax(-1) for logits in params.split(self.nvec, dim=-1)]
        return (
            actions[0]
            if len(actions) == 1 and self.action["kind"] == "discrete"
            else torch.stack(actions, -1)
        )

    def log_prob_entropy(
        self, params: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.nvec:
            std = self.log_std.exp()
            logp = -(((actions - params) / std) ** 2) / 2 - self.log_std - math.log(math.sqrt(2 * math.pi))
            entropy = (0.5 + 0.5 * math.log(2 * math.pi) + self.log_std).sum().expand(params.shape[:-1])
            return logp.sum(-1), entropy
        if self.action["kind"] == "discrete":
            actions = actions.unsqueeze(-1)
        logp_total = torch.zeros(params.shape[:-1], device=params.device)
        entropy_total = torch.zeros_like(logp_total)
        for i, logits in enumerate(params.split(self.nvec, dim=-1)):
            logp = torch.log_softmax(logits, -1)
            logp_total = logp_total + logp.gather(-1, actions[..., i : i + 1].long()).squeeze(-1)
            entropy_total = entropy_total - (logp.exp() * logp).sum(-1)
        return logp_total, entropy_total

    def env_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Actions as the environment buffer takes them: continuous ones clipped to the bounds."""
        if not self.nvec:
            return actions.clamp(self.action_low, self.action_high)
        return actions.int()
