"""Batch Bradley-Terry ratings against synthetic players of known strength."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy.stats import spearmanr

from services.elo.rating import Rating, expected_score, fit_ratings, win_matrix


def simulate(
    rng: np.random.Generator, true_elo: dict[str, float], n_games: int, draw_rate: float = 0.3
) -> list[tuple[str, str, float]]:
    """Games between random pairs whose expected score follows Bradley-Terry exactly.

    A draw happens with probability ``draw_rate * 2 * min(p, 1 - p)``; the win
    probability is lowered by half of that so the expected score stays ``p``.
    """
    names = list(true_elo)
    matches = []
    for _ in range(n_games):
        a, b = rng.choice(len(names), size=2, replace=False)
        pa, pb = names[a], names[b]
        p = expected_score(true_elo[pa], true_elo[pb])
        p_draw = draw_rate * 2 * min(p, 1 - p)
        u = rng.random()
        score = 0.5 if u < p_draw else 1.0 if u < p_draw + p - p_draw / 2 else 0.0
        matches.append((pa, pb, score))
    return matches


def spread_players(n: int = 20, low: float = 1000.0, high: float = 1800.0) -> dict[str, float]:
    return {f"p{i:02d}": low + (high - low) * i / (n - 1) for i in range(n)}


def test_expected_score_is_elo_logistic() -> None:
    assert expected_score(1500, 1500) == 0.5
    assert expected_score(1400, 1000) == pytest.approx(10 / 11)
    assert expected_score(1000, 1400) + expected_score(1400, 1000) == pytest.approx(1.0)


def test_win_matrix_counts_wins_and_draws_per_pair() -> None:
    table = win_matrix([("a", "b", 1), ("b", "a", 1), ("a", "b", 0.5), ("c", "a", 0)], players=["z"])
    assert table.players == ("a", "b", "c", "z")
    np.testing.assert_array_equal(table.wins, [[0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert table.draws[0, 1] == table.draws[1, 0] == 1
    assert table.games[0, 1] == 3
    assert table.score[0, 1] == 1.5


def test_recovers_order_of_known_strengths() -> None:
    true_elo = spread_players()
    matches = simulate(np.random.default_rng(7), true_elo, 2000)
    ratings = fit_ratings(matches, anchor="p00", anchor_rating=1000.0, bootstrap=0)
    names = list(true_elo)
    rho = spearmanr([true_elo[p] for p in names], [ratings[p].elo for p in names]).statistic
    assert rho >= 0.95
    assert sum(r.games for r in ratings.values()) == 2 * len(matches)


def test_bootstrap_intervals_cover_true_differences_to_anchor() -> None:
    true_elo = spread_players()
    rng = np.random.default_rng(2024)
    covered = total = 0
    for sim in range(50):
        matches = simulate(rng, true_elo, 2000)
        ratings = fit_ratings(matches, anchor="p00", anchor_rating=1000.0, bootstrap=100, seed=sim)
        for player, truth in true_elo.items():
            if player != "p00":
                total += 1
                covered += ratings[player].lo <= truth <= ratings[player].hi
    assert 0.90 <= covered / total <= 0.99


def test_shuffled_log_gives_identical_ratings() -> None:
    matches = simulate(np.random.default_rng(3), spread_players(8), 300)
    shuffled = matches.copy()
    random.Random(0).shuffle(shuffled)
    assert fit_ratings(matches, anchor="p00", bootstrap=50, seed=5) == fit_ratings(
        shuffled, anchor="p00", bootstrap=50, seed=5
    )


def test_same_seed_same_intervals_other_seed_differs() -> None:
    matches = simulate(np.random.default_rng(4), spread_players(6), 300)
    first = fit_ratings(matches, anchor="p00", bootstrap=50, seed=1)
    assert first == fit_ratings(matches, anchor="p00", bootstrap=50, seed=1)
    assert first != fit_ratings(matches, anchor="p00", bootstrap=50, seed=2)


def test_always_losing_and_always_winning_players_stay_finite_and_extreme() -> None:
    true_elo = spread_players(6)
    matches = simulate(np.random.default_rng(5), true_elo, 600)
    for opponent in true_elo:
        matches += [("loser", opponent, 0)] * 5 + [("winner", opponent, 1)] * 5
    ratings = fit_ratings(matches, anchor="p00", bootstrap=50)
    others = [r.elo for p, r in ratings.items() if p not in ("loser", "winner")]
    for rating in ratings.values():
        assert all(map(math.isfinite, (rating.elo, rating.lo, rating.hi)))
    assert ratings["loser"].elo < min(others)
    assert ratings["winner"].elo > max(others)
    assert (ratings["loser"].losses, ratings["winner"].wins) == (30, 30)
    order = list(ratings)
    assert (order[0], order[-1]) == ("winner", "loser")


def test_anchor_is_pinned_exactly() -> None:
    matches = simulate(np.random.default_rng(6), spread_players(6), 300)
    ratings = fit_ratings(matches, anchor="p03", anchor_rating=1234.5, bootstrap=50)
    assert ratings["p03"] == Rating(
        elo=1234.5,
        lo=1234.5,
        hi=1234.5,
        games=ratings["p03"].games,
        wins=ratings["p03"].wins,
        draws=ratings["p03"].draws,
        losses=ratings["p03"].losses,
    )


def test_anchor_without_games_appears_pinned() -> None:
    ratings = fit_ratings([("a", "b", 1), ("b", "a", 0.5)], anchor="random", bootstrap=20)
    assert ratings["random"] == Rating(1000.0, 1000.0, 1000.0, games=0, wins=0, draws=0, losses=0)
    assert set(ratings) == {"a", "b", "random"}


def test_changing_anchor_shifts_all_ratings_rigidly() -> None:
    matches = simulate(np.random.default_rng(8), spread_players(8), 400)
    by_low = fit_ratings(matches, anchor="p00", bootstrap=0)
    by_high = fit_ratings(matches, anchor="p07", bootstrap=0)
    shift = by_low["p07"].elo - 1000.0
    for player in by_low:
        assert by_high[player].elo + shift == pytest.approx(by_low[player].elo, abs=1e-6)


def test_players_disconnected_from_anchor_are_finite() -> None:
    matches = simulate(np.random.default_rng(9), spread_players(5), 200)
    matches += [("x", "y", 1)] * 6 + [("x", "y", 0)] * 2
    ratings = fit_ratings(matches, anchor="p00", bootstrap=30)
    assert all(math.isfinite(ratings[p].lo) and math.isfinite(ratings[p].hi) for p in ("x", "y"))
    assert ratings["x"].elo > ratings["y"].elo


def test_bootstrap_zero_means_no_interval() -> None:
    matches = simulate(np.random.default_rng(10), spread_players(4), 100)
    for rating in fit_ratings(matches, anchor="p00", bootstrap=0).values():
        assert rating.lo == rating.elo == rating.hi


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (("a", "b", 0.7), "match 2: score_a"),
        (("a", "b", "1"), "match 2: score_a"),
        (("a", "b", float("nan")), "match 2: score_a"),
        (("a", "a", 1), "match 2: player 'a' plays against itself"),
        (("a", "b"), "match 2: expected"),
    ],
)
def test_invalid_matches_are_rejected_with_their_index(bad: tuple, message: str) -> None:
    matches = [("a", "b", 1), ("b", "c", 0.5), bad]
    with pytest.raises(ValueError, match=message):
        fit_ratings(matches, anchor="a", bootstrap=0)
