"""CUDA graphs for the trainer's fixed-shape steps: one replay instead of dozens of kernel launches.

A small policy's acting step and minibatch update are each a few dozen tiny kernels, so on a GPU their
cost is the host launching them, not the device running them. Captured once, each becomes one launch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch


class Graphed:
    """Calls `fn` eagerly for its first `warmup` calls, then captures one call and replays it after.

    `fn` takes no arguments: it reads its inputs from tensors whose storage outlives the graph, updates
    state in place, and returns tensors that the next call overwrites, so callers copy out what they keep.
    Warm-up calls run on a side stream, as capture requires (lazily created handles and workspaces must
    exist before capture starts). With `enabled` false it is a plain call, which is what runs on a CPU.
    """

    def __init__(self, fn: Callable[[], Any], enabled: bool, warmup: int = 2) -> None:
        self.fn, self.enabled, self.warmup = fn, enabled, warmup
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.out: Any = None

    def __call__(self) -> Any:
        if not self.enabled:
            return self.fn()
        if self.graph is None:
            if self.calls < self.warmup:
                self.calls += 1
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    out = self.fn()
                torch.cuda.current_stream().wait_stream(side)
                return out
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.out = self.fn()
        self.graph.replay()
        return self.out


def pinned_zeros(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A zeroed page-locked array (numpy keeps the torch tensor that owns the memory alive): copies between
    it and the device are one DMA each, and the only host memory a captured graph may copy with."""
    return torch.zeros(shape, dtype=torch.from_numpy(np.empty(0, dtype)).dtype, pin_memory=True).numpy()
