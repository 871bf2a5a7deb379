"""The live progress table `shoal train` prints: one row per metric flush, a header now and then."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

COLUMNS = (
    ("steps", "agent_steps", "{:>12,.0f}"),
    ("SPS", "SPS", "{:>9,.0f}"),
    ("uptime", "uptime", "{:>7.1f}"),
    ("perf", "env/perf", "{:>6.3f}"),
    ("score", "env/score", "{:>8.2f}"),
    ("len", "env/episode_length", "{:>7.1f}"),
    ("pg", "losses/policy", "{:>7.3f}"),
    ("vf", "losses/value", "{:>8.3f}"),
    ("ent", "losses/entropy", "{:>6.3f}"),
    ("kl", "losses/approx_kl", "{:>7.4f}"),
    ("clip", "losses/clipfrac", "{:>5.2f}"),
    ("ev", "losses/explained_variance", "{:>6.2f}"),
)


class ProgressTable:
    """A `Sink` for local training: prints rows, keeps checkpoints on disk, is never cancelled."""

    def __init__(self, env: str, out=sys.stdout):
        self.env = env
        self.out = out
        self.rows = 0

    def metrics(self, step: int, values: dict[str, float]) -> None:
        if "agent_steps" not in values:
            return
        if self.rows % 20 == 0:
            header = " ".join(f"{name:>{len(fmt.format(0))}}" for name, _, fmt in COLUMNS)
            print(f"{self.env}\n{header}", file=self.out)
        cells = []
        for _, key, fmt in COLUMNS:
            width = len(fmt.format(0))
            value = values.get(key)
            cells.append(fmt.format(value) if value is not None else " " * (width - 1) + "-")
        print(" ".join(cells), file=self.out, flush=True)
        self.rows += 1

    def checkpoint(self, step: int, stem: Path, size_bytes: int, meta: dict[str, Any]) -> None:
        pass

    def interrupt(self) -> None:
        return None
