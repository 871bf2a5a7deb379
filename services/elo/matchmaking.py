"""Who a checkpoint should play, and who needs games most.

A game is most informative between near-equal players (its variance p(1-p) peaks at
p = 0.5), so a new checkpoint mostly meets its nearest-rated neighbours. The anchors
and its predecessor keep the comparison graph connected and give the "progress
within a run" comparison; a few random opponents guard against the pool splitting
into clusters that only ever play among themselves.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Iterable, Mapping
from typing import TypeVar

import numpy as np

from services.elo.rating import Rating

# A player: any hashable id (the service's are player row ids, the tests' names).
P = TypeVar("P", bound=Hashable)

# Near p = 0.5 one game's score has sd 0.5 and d(Elo)/dp = 1600 / ln 10, so the
# 95% half-width of a pairwise difference after n games is 1.96 * 0.5 * 695 / sqrt(n).
HALFWIDTH_ONE_GAME_ELO = 680.0


def pick_opponents(
    new_player: P,
    ratings: Mapping[P, Rating],
    *,
    anchors: Iterable[P],
    predecessor: P | None,
    k_nearest: int = 4,
    n_random: int = 2,
    rng: np.random.Generator,
) -> list[P]:
    """Opponents for ``new_player``: anchors, predecessor, nearest-rated, random.

    Returned in that order without duplicates and never ``new_player`` itself. The
    ``k_nearest`` and ``n_random`` picks are drawn from players not already chosen, so
    that an anchor that happens to be near does not cost a neighbour. An unrated new
    player is placed at its predecessor's rating (a checkpoint is most likely close
    to the one before it), else at the median rating.
    """
    chosen: list[P] = []
    for player in [*anchors, predecessor]:
        if player is not None and player != new_player and player not in chosen:
            chosen.append(player)

    if new_player in ratings:
        centre = ratings[new_player].elo
    elif predecessor is not None and predecessor in ratings:
        centre = ratings[predecessor].elo
    elif ratings:
        centre = statistics.median(r.elo for r in ratings.values())
    else:
        return chosen

    pool = [p for p in ratings if p != new_player and p not in chosen]
    pool.sort(key=lambda p: abs(ratings[p].elo - centre))  # stable: ties keep order
    chosen += pool[:k_nearest]
    rest = pool[k_nearest:]
    picks = rng.choice(len(rest), size=min(n_random, len(rest)), replace=False)
    chosen += [rest[i] for i in sorted(picks)]
    return chosen


def prioritise(players: Iterable[P], ratings: Mapping[P, Rating]) -> list[P]:
    """Players ordered by how much they need games: widest 95% interval first.

    Players without a rating come first of all (their interval is unbounded); ties
    keep the input order.
    """

    def width(player: P) -> float:
        rating = ratings.get(player)
        return math.inf if rating is None else rating.hi - rating.lo

    return sorted(players, key=width, reverse=True)


def games_needed(target_halfwidth_elo: float) -> int:
    """Games between two near-equal players for a 95% half-width of the target.

    From the rule half-width ≈ 680 / sqrt(n): ±68 Elo takes 100 games, ±34 takes 400.
    """
    if target_halfwidth_elo <= 0:
        raise ValueError("target_halfwidth_elo must be positive")
    exact = (HALFWIDTH_ONE_GAME_ELO / target_halfwidth_elo) ** 2
    return math.ceil(round(exact, 9))  # round first: 68 Elo must give 100, not 101
