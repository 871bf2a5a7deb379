"""Opponent selection and game prioritisation for new checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from services.elo.matchmaking import games_needed, pick_opponents, prioritise
from services.elo.rating import Rating


def rated(elo: float, halfwidth: float = 50.0) -> Rating:
    return Rating(elo=elo, lo=elo - halfwidth, hi=elo + halfwidth, games=10, wins=5, draws=0, losses=5)


# Checkpoints c0..c19 at 1000, 1050, ..., 1950, plus the two anchors.
POOL = {f"c{i}": rated(1000 + 50 * i) for i in range(20)}
POOL |= {"random": rated(1000, 0), "scripted": rated(1300)}
ANCHORS = ["scripted", "random"]


def test_new_player_meets_anchors_predecessor_nearest_and_random() -> None:
    ratings = {**POOL, "new": rated(1520)}
    opponents = pick_opponents(
        "new", ratings, anchors=ANCHORS, predecessor="c2", rng=np.random.default_rng(0)
    )
    assert opponents[:3] == ["scripted", "random", "c2"]
    assert opponents[3:7] == ["c10", "c11", "c9", "c12"]  # nearest to 1520 by distance
    assert len(opponents) == 9
    assert len(set(opponents)) == len(opponents)
    assert "new" not in opponents


def test_nearby_anchor_does_not_cost_a_neighbour() -> None:
    ratings = {**POOL, "new": rated(1300)}
    opponents = pick_opponents(
        "new", ratings, anchors=ANCHORS, predecessor=None, n_random=0, rng=np.random.default_rng(0)
    )
    assert opponents == ["scripted", "random", "c6", "c5", "c7", "c4"]


def test_unrated_player_is_placed_at_its_predecessor() -> None:
    opponents = pick_opponents(
        "new", POOL, anchors=[], predecessor="c15", k_nearest=2, n_random=0, rng=np.random.default_rng(0)
    )
    assert opponents == ["c15", "c14", "c16"]


def test_small_pool_returns_everyone_else_once() -> None:
    ratings = {"a": rated(1000), "b": rated(1100), "new": rated(1050)}
    opponents = pick_opponents(
        "new", ratings, anchors=["a", "new"], predecessor="a", rng=np.random.default_rng(1)
    )
    assert sorted(opponents) == ["a", "b"]


def test_random_opponents_are_reproducible_from_the_rng() -> None:
    def pick(seed: int) -> list:
        return pick_opponents("c0", POOL, anchors=ANCHORS, predecessor=None, rng=np.random.default_rng(seed))

    assert pick(3) == pick(3)
    assert len({tuple(pick(seed)) for seed in range(10)}) > 1


def test_prioritise_puts_unrated_then_widest_intervals_first() -> None:
    ratings = {"narrow": rated(1000, 10), "wide": rated(1000, 200), "mid": rated(1000, 60)}
    assert prioritise(["narrow", "mid", "fresh", "wide"], ratings) == ["fresh", "wide", "mid", "narrow"]


def test_games_needed_follows_680_over_sqrt_n() -> None:
    assert games_needed(68) == 100
    assert games_needed(34) == 400
    assert games_needed(100) == 47
    with pytest.raises(ValueError):
        games_needed(0)
