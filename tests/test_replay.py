"""`shoal replay` records a checkpoint playing: every requested frame is there, and the picture moves."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image, ImageSequence

from services.common.config import resolve
from services.trainer import loop
from tests.helpers import ROOT, Recorder


def test_replay_writes_a_gif_of_the_policy_playing(tmp_path):
    config = resolve(
        "breakout",
        {
            "train": {
                "total_timesteps": 2048,
                "num_envs": 8,
                "num_steps": 256,
                "minibatch_size": 512,
                "eval_episodes": 2,
            }
        },
    )
    result = loop.train("breakout", config, 0, tmp_path / "ckpt", Recorder())
    out = tmp_path / "replay.gif"
    frames, fps = 90, 25.0
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "replay",
            str(result.last_checkpoint.with_suffix(".safetensors")),
            "--gif",
            str(out),
            "--frames",
            str(frames),
            "--fps",
            str(fps),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    gif = Image.open(out)
    images = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)]
    durations = [f.info["duration"] for f in ImageSequence.Iterator(Image.open(out))]
    # GIF writers merge identical consecutive frames into one longer frame; the total time is what counts.
    assert sum(durations) == frames * 40
    assert len(images) > 10
    assert any(not np.array_equal(images[0], image) for image in images[1:])


def test_replay_refuses_a_missing_checkpoint_by_name(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "replay",
            str(tmp_path / "nope.json"),
            "--gif",
            str(tmp_path / "x.gif"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "checkpoint:" in done.stderr and "missing" in done.stderr
