"""The trainer's optimizers: Adam's updates are torch.optim's fused Adam's, and training never pays for
torch._dynamo's import (seconds of every cold start)."""

from __future__ import annotations

import subprocess
import sys

import torch

from services.trainer.optim import Adam, MuonWithAdam
from tests.helpers import ROOT


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))


def _train(model: torch.nn.Module, optimizer, steps: int) -> None:
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        optimizer.zero_grad()
        (model(x) ** 2).mean().backward()
        optimizer.step()


def test_adam_updates_as_torch_fused_adam_bit_for_bit_and_resumes_from_its_state():
    ours, theirs = _model(), _model()
    hyper = {"lr": 3e-3, "betas": (0.9, 0.99), "eps": 1e-5}
    ours_opt = Adam(ours.parameters(), **hyper)
    theirs_opt = torch.optim.Adam(theirs.parameters(), fused=True, **hyper)
    _train(ours, ours_opt, 10)
    _train(theirs, theirs_opt, 10)
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters(), strict=True))

    # A checkpoint written by torch.optim.Adam (shoal before its own optimizer) resumes exactly.
    resumed = _model()
    resumed.load_state_dict(theirs.state_dict())
    resumed_opt = Adam(resumed.parameters(), lr=1.0)
    resumed_opt.load_state_dict(theirs_opt.state_dict())
    assert resumed_opt.param_groups[0]["lr"] == 3e-3
    _train(resumed, resumed_opt, 5)
    _train(theirs, theirs_opt, 5)
    assert all(torch.equal(a, b) for a, b in zip(resumed.parameters(), theirs.parameters(), strict=True))


def test_muon_state_round_trips_through_its_state_dict():
    model = _model()
    optimizer = MuonWithAdam(model, lr=1e-3)
    _train(model, optimizer, 3)
    copy = _model()
    copy.load_state_dict(model.state_dict())
    copy_opt = MuonWithAdam(copy, lr=1e-3)
    copy_opt.load_state_dict(optimizer.state_dict())
    _train(model, optimizer, 3)
    _train(copy, copy_opt, 3)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), copy.parameters(), strict=True))


def test_a_whole_training_run_never_imports_torch_dynamo():
    # torch.optim's optimizers import torch._dynamo when built: 4.4 s of a 10.8 s cold start on an H200.
    script = (
        "import sys, tempfile\n"
        "from pathlib import Path\n"
        "from services.common.config import resolve\n"
        "from services.trainer import loop\n"
        "from tests.helpers import Recorder, small\n"
        "with tempfile.TemporaryDirectory() as d:\n"
        "    result = loop.train('cartpole', small(total_timesteps=4096), 0, Path(d), Recorder())\n"
        "assert result.status == 'succeeded', result\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
