"""Seeds derived from integers (ids, a match seed), the one way the Elo service makes them."""

from __future__ import annotations

import numpy as np


def derive(*parts: int, count: int = 1) -> list[int]:
    """`count` 63-bit seeds (they fit a signed BIGINT column) drawn from `parts`; the same parts give the
    same seeds, and any change to a part gives unrelated ones."""
    state = np.random.SeedSequence([p & (2**64 - 1) for p in parts]).generate_state(count, np.uint64)
    return [int(s) >> 1 for s in state]
