"""Animated GIFs of a VecEnv: `shoal replay CHECKPOINT --gif out.gif` records with these."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from envs_c.vector import VecEnv


def write_gif(frames: Sequence[np.ndarray], path: str | Path, fps: float = 30.0) -> Path:
    """Write (H, W, 3) uint8 frames as a looping GIF; returns the path written."""
    from PIL import Image  # the trainer extra provides Pillow; envs_c itself does not need it

    if len(frames) == 0:
        raise ValueError("write_gif: no frames")
    if not 0 < fps <= 100:
        raise ValueError(f"write_gif: fps must be in (0, 100], got {fps}")
    images = []
    for i, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"write_gif: frame {i} must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
        images.append(Image.fromarray(frame, "RGB"))
    path = Path(path)
    # GIF delays are whole hundredths of a second; Pillow takes milliseconds.
    duration = max(20, round(1000.0 / fps / 10.0) * 10)
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=0, optimize=False)
    return path


def record(
    env: VecEnv, act: Callable[[np.ndarray], np.ndarray], num_frames: int, index: int = 0
) -> list[np.ndarray]:
    """Step `env` with `act(obs) -> actions` (rows for every agent) and render environment `index` each step.

    The first frame is the state before any step. The caller owns `env` (reset it first if needed).
    """
    if num_frames < 1:
        raise ValueError(f"record: num_frames must be positive, got {num_frames}")
    frames = [env.render(index)]
    obs = env.observations
    for _ in range(num_frames - 1):
        obs, _, _, _ = env.step(act(obs))
        frames.append(env.render(index))
    return frames
