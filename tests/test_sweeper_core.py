"""Unit tests of the sweeper's algorithm core: spaces, Pareto front, ParetoSearch, early stopping."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from scipy.stats import skew

from services.sweeper.gp import GP
from services.sweeper.pareto import BudgetSpent, ParetoSearch, SearchOptions, _Warp, pareto_front
from services.sweeper.space import Space, SpaceError

SPEC = {
    "train": {
        "learning_rate": {"distribution": "log_normal", "min": 1e-5, "max": 1e-1, "scale": "auto"},
        "total_timesteps": {"distribution": "log_normal", "min": 5e4, "max": 1e6, "scale": "auto"},
        "batch_size": {"distribution": "uniform_pow2", "min": 64, "max": 4096, "scale": 0.3},
        "update_epochs": {"distribution": "int_uniform", "min": 1, "max": 8},
        "gamma": {"distribution": "logit_normal", "min": 0.9, "max": 0.9999},
    },
    "env": {"frameskip": {"distribution": "uniform", "min": 1.0, "max": 8.0}},
}


def objective(params: dict, goal: str = "maximize") -> tuple[float, float]:
    """Smooth test task: best learning rate 10^-3.5, score grows with log timesteps."""
    t = params["train"]
    score = -((math.log10(t["learning_rate"]) + 3.5) ** 2) + 0.5 * math.log10(t["total_timesteps"])
    score -= 0.05 * (t["update_epochs"] - 4) ** 2
    return (score if goal == "maximize" else -score), float(t["total_timesteps"])


def run_trials(search: ParetoSearch, n: int, goal: str = "maximize") -> None:
    for _ in range(n):
        params, _ = search.suggest()
        search.observe(params, *objective(params, goal))


# ----- spaces ---------------------------------------------------------------------------------------------


def test_space_round_trip_and_types() -> None:
    space = Space(SPEC)
    assert space.names == sorted(space.names) and space.dim == 6
    rng = np.random.default_rng(0)
    for _ in range(50):
        params = space.unnormalize(rng.uniform(-1, 1, space.dim))
        assert isinstance(params["train"]["update_epochs"], int)
        bs = params["train"]["batch_size"]
        assert isinstance(bs, int) and bs & (bs - 1) == 0 and 64 <= bs <= 4096
        assert 0.9 <= params["train"]["gamma"] <= 0.9999
        again = space.unnormalize(space.normalize(params))
        for name, value in space.flatten(params).items():
            assert space.flatten(again)[name] == pytest.approx(value, rel=1e-9)
    assert space.unnormalize(-np.ones(space.dim))["train"]["learning_rate"] == pytest.approx(1e-5)
    assert space.unnormalize(np.ones(space.dim))["train"]["gamma"] == pytest.approx(0.9999)
    # log10 scale: the middle of the cube is the geometric middle.
    assert space.unnormalize(np.zeros(space.dim))["train"]["learning_rate"] == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"distribution": "normal", "min": 0, "max": 1}, "unknown distribution"),
        ({"distribution": "uniform", "min": 1, "max": 1}, "min"),
        ({"distribution": "log_normal", "min": 0, "max": 1}, "min > 0"),
        ({"distribution": "logit_normal", "min": 0.5, "max": 1.0}, "0 < min < max < 1"),
        ({"distribution": "uniform", "min": 0}, "missing key"),
        ({"distribution": "uniform", "min": 0, "max": 1, "sigma": 2}, "unknown key"),
        ({"distribution": "uniform", "min": 0, "max": "1"}, "finite number"),
        ({"distribution": "uniform", "min": 0, "max": 1, "scale": -1}, "scale"),
        ({"distribution": "categorical", "choices": []}, "non-empty list"),
        ({"distribution": "categorical"}, "needs 'choices'"),
        ({"distribution": "categorical", "choices": ["adam", "muon", "adam"]}, "'adam' is listed twice"),
        ({"distribution": "categorical", "choices": ["adam", "muon"], "mean": "sgd"}, "unknown choice 'sgd'"),
        ({"distribution": "categorical", "choices": ["adam", "muon"], "min": 0}, "unknown key"),
        ({"distribution": "categorical", "choices": [[1], 2]}, "strings, numbers"),
    ],
)
def test_space_validation_names_the_parameter(spec: dict, fragment: str) -> None:
    with pytest.raises(SpaceError, match=fragment) as err:
        Space({"train": {"ent_coef": spec}})
    assert "train.ent_coef" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_space_rejects_unknown_parameters() -> None:
    with pytest.raises(SpaceError, match=r"env\.frameskip"):
        Space(SPEC, known={f"train.{k}" for k in SPEC["train"]})
    Space(SPEC, known={f"train.{k}" for k in SPEC["train"]} | {"env.frameskip"})


def test_space_accepts_mean_and_starts_there() -> None:
    spec = {"train": {**SPEC["train"], "learning_rate": {**SPEC["train"]["learning_rate"], "mean": 3e-4}}}
    params, info = ParetoSearch(spec).suggest()
    assert info["proposal"] == "centre"
    assert params["train"]["learning_rate"] == pytest.approx(3e-4)


CATEGORICAL_SPEC = {
    "train": {
        "learning_rate": SPEC["train"]["learning_rate"],
        "total_timesteps": SPEC["train"]["total_timesteps"],
        "update_epochs": SPEC["train"]["update_epochs"],
        "optimizer": {"distribution": "categorical", "choices": ["adam", "muon", "sgd"], "mean": "muon"},
    },
    "policy": {"recurrent": {"distribution": "categorical", "choices": [False, True, 0]}},
}


def test_categorical_values_round_trip_and_map_one_hot() -> None:
    space = Space(CATEGORICAL_SPEC)
    params = space.unnormalize(space.centre())
    assert params["train"]["optimizer"] == "muon"  # the given default
    assert params["policy"]["recurrent"] is False  # the first choice without one
    seen = set()
    rng = np.random.default_rng(0)
    for u in rng.uniform(-1, 1, (200, space.dim)):
        p = space.unnormalize(u)
        seen.add((p["train"]["optimizer"], repr(p["policy"]["recurrent"])))
        assert space.unnormalize(space.normalize(p)) == p
    assert len(seen) == 9  # every combination is reachable, and True is not confused with 1 or 0
    features = space.features(space.normalize(params))
    assert features.shape == (1, 3 + 1 + 3 + 1 + 1)  # recurrent, learning_rate, optimizer, timesteps, epochs
    assert features[0, :3].tolist() == [1, 0, 0] and features[0, 4:7].tolist() == [0, 1, 0]
    with pytest.raises(SpaceError, match=r"train\.optimizer: unknown choice 'rmsprop'"):
        space.normalize({**params, "train": {**params["train"], "optimizer": "rmsprop"}})


def test_categorical_search_finds_the_best_choice() -> None:
    quality = {"adam": 0.0, "muon": -0.5, "sgd": -2.0}
    search = ParetoSearch(CATEGORICAL_SPEC, seed=0)
    for _ in range(30):
        params, _ = search.suggest()
        score, cost = objective(params)
        search.observe(params, score + quality[params["train"]["optimizer"]], cost)
    late = [o["params"]["train"]["optimizer"] for o in search.state()["observations"][15:]]
    assert late.count("adam") > len(late) / 2


# ----- budgets --------------------------------------------------------------------------------------------


def _budget_sweep(search: ParetoSearch, budget: float, parallel: int) -> tuple[list[float], float]:
    """Runs trials, ``parallel`` at a time, until the search says the budget is spent; cost = timesteps plus
    a start-up of 2e4 and 5% noise. Returns the costs in start order and the cost started beyond budget."""
    rng = np.random.default_rng(0)
    running: list[tuple[dict, float, float]] = []
    costs: list[float] = []
    overrun = 0.0
    while True:
        while len(running) < parallel:
            try:
                params, _ = search.suggest()
            except BudgetSpent:
                break
            score, steps = objective(params)
            cost = (steps + 2e4) * math.exp(rng.normal(0, 0.05))
            overrun = max(overrun, sum(costs) + cost - budget)
            costs.append(cost)
            running.append((params, score, cost))
        if not running:
            return costs, overrun
        params, score, cost = running.pop(0)
        search.observe(params, score, cost)


@pytest.mark.parametrize("parallel", [1, 4])
def test_a_budget_is_spent_nearly_whole_and_never_overrun(parallel: int) -> None:
    budget = 40 * 2.4e5  # about 40 runs at the middle of the timesteps range (plus start-up)
    search = ParetoSearch(SPEC, seed=0, budget=budget)
    costs, overrun = _budget_sweep(search, budget, parallel)
    assert overrun <= 0.0
    assert sum(costs) >= 0.95 * budget
    assert search.spent == pytest.approx(sum(costs)) and search.remaining == pytest.approx(
        budget - sum(costs)
    )
    # The front grows from cheap to expensive: no trial costs more than the sweep had spent before it
    # (with what was in flight), so the dearest one comes late, and the first ones are cheap.
    spent_before = np.cumsum([0.0, *costs[:-1]])
    assert spent_before[int(np.argmax(costs))] > 0.3 * budget
    assert all(c <= spent_before[i] for i, c in enumerate(costs) if i >= 10)
    assert max(costs[:10]) < 0.1 * budget


def test_a_trial_in_flight_is_reserved_its_cost_where_a_falling_cost_stops_falling() -> None:
    # Cost per step falls with the workers up to the machine's 4 cores and is flat past them. Seen only
    # up to 4, the trend promises 16 workers for less than 4 cost; the budget must not believe it.
    space = {
        "env": {"num_workers": {"distribution": "int_uniform", "min": 1, "max": 16, "mean": 2}},
        "train": {
            "total_timesteps": {"distribution": "log_normal", "min": 1e5, "max": 1e7, "mean": 1e6},
            "learning_rate": {"distribution": "log_normal", "min": 1e-4, "max": 1e-2, "mean": 1e-3},
        },
    }

    def run(workers: int, steps: float, lr: float = 1e-3) -> dict:
        return {"env": {"num_workers": workers}, "train": {"total_timesteps": steps, "learning_rate": lr}}

    def cost(params: dict) -> float:
        workers = min(params["env"]["num_workers"], 4)
        return params["train"]["total_timesteps"] * (0.3 + 2.0 / math.sqrt(workers)) / 1e5

    search = ParetoSearch(space, seed=0, budget=1e4)
    for workers in (1, 2, 3, 4):
        for steps in (1e5, 3e5, 1e6):
            for lr in (5e-4, 2e-3):
                search.observe(
                    run(workers, steps, lr), score=0.1 * workers, cost=cost(run(workers, steps, lr))
                )
    for workers in (4, 8, 16):
        search.add_pending(run(workers, 1e6))
        reserved = search.budget - search.spent - search.remaining
        assert reserved >= cost(run(workers, 1e6)), workers
        search.forget(run(workers, 1e6))


def test_a_sweep_without_a_budget_fits_no_model_for_its_design_trials() -> None:
    # The design's trials are drawn, not modelled; only a budget needs their costs predicted. Fitting the
    # models anyway cost every tick of a budgetless sweep 0.1 s (up to 0.8 s on a busy GPU machine), which
    # a sweep of short trials waits for between each trial and the next.
    search = ParetoSearch(SPEC, seed=0)
    for _ in range(search.options.n_init - 1):
        params, info = search.suggest()
        assert info["proposal"] in ("centre", "sobol") and info["reserved_cost"] is None
        search.observe(params, *objective(params))
    assert search._models is None
    run_trials(search, 2)  # the models' turn
    assert search._models is not None


def test_a_trial_in_flight_stays_reserved_what_it_was_when_the_model_later_expects_less() -> None:
    # Trials in flight are reserved when proposed; a cost model refitted on cheaper trials must not hand
    # that reservation back to the next proposals while the trial still runs, nor after a rebuild.
    budget = 1e8
    search = ParetoSearch(SPEC, seed=0, budget=budget)
    run_trials(search, 12)
    params, info = search.suggest()
    held = info["reserved_cost"]
    assert held > 0
    for other in [search.suggest()[0] for _ in range(4)]:
        score, _ = objective(other)
        search.observe(other, score, cost=1e3)  # far cheaper than the model expected
    reserved = budget - search.spent - search.remaining
    assert reserved == pytest.approx(held)  # the model now expects half: the reservation holds
    rebuilt = ParetoSearch.from_state(SPEC, search.state(), seed=0, budget=budget)
    assert rebuilt.remaining == pytest.approx(search.remaining)
    search.observe(params, *objective(params))
    assert search.state()["pending"] == [] and search.remaining == pytest.approx(budget - search.spent)


def test_a_budget_below_the_cheapest_trial_proposes_nothing_after_the_first_cost() -> None:
    search = ParetoSearch(SPEC, seed=0, budget=1.2e5)
    params, _ = search.suggest()
    search.observe(params, *objective(params))
    with pytest.raises(BudgetSpent):
        search.suggest()
    assert search.state()["pending"] == []


def test_forgotten_trials_count_against_the_budget_and_survive_a_rebuild() -> None:
    search = ParetoSearch(SPEC, seed=0, budget=1e7)
    lost, _ = search.suggest()
    assert search.forget(lost, cost=3e6)
    assert search.spent == 3e6 and search.remaining == 7e6
    assert ParetoSearch.from_state(SPEC, search.state(), seed=0, budget=1e7).remaining == 7e6
    with pytest.raises(ValueError, match="budget"):
        ParetoSearch(SPEC, budget=0.0)


def test_search_options_are_one_validated_frozen_value() -> None:
    with pytest.raises(ValueError, match="score_transform"):
        SearchOptions(score_transform="rank")
    with pytest.raises(ValueError, match="failure_model"):
        SearchOptions(failure_model="ignore")
    options = SearchOptions(n_init=4)
    with pytest.raises(AttributeError):
        options.n_init = 5  # type: ignore[misc]
    search = ParetoSearch(SPEC, seed=0, options=options)
    proposals = []
    for _ in range(6):
        params, info = search.suggest()
        proposals.append(info["proposal"])
        search.observe(params, float(params["train"]["learning_rate"]), 1.0)
    assert proposals[:4] == ["centre", "sobol", "sobol", "sobol"] and set(proposals[4:]) == {"pareto"}


# ----- Pareto front ---------------------------------------------------------------------------------------


def test_pareto_front_hand_made() -> None:
    points = [(10, 0.5), (1, 0.1), (5, 0.4), (3, 0.05), (5, 0.3), (20, 0.5), (2, None), (30, 0.9)]
    assert pareto_front(points) == [1, 2, 0, 7]
    assert pareto_front(points, goal="minimize") == [1, 3]
    # A margin prunes the tail that buys little for much more cost.
    assert pareto_front([(1, 0.5), (2, 0.8), (50, 0.81)], min_gain=0.05) == [0, 1]
    assert pareto_front([]) == []


# ----- ParetoSearch ---------------------------------------------------------------------------------------


def test_parallel_suggestions_are_distinct_and_spread() -> None:
    search = ParetoSearch(SPEC, seed=1)
    run_trials(search, 12)
    batch = [search.suggest()[0] for _ in range(8)]
    u = np.array([search.space.normalize(p) for p in batch])
    assert len({tuple(np.round(r, 9)) for r in u}) == 8
    gaps = [np.linalg.norm(u[i] - u[j]) for i in range(8) for j in range(i)]
    assert min(gaps) > 0.05
    # Before any observation too (Sobol phase).
    fresh = ParetoSearch(SPEC, seed=1)
    first = [fresh.suggest()[0] for _ in range(8)]
    assert len({str(p) for p in first}) == 8


def test_score_warp_is_monotone_and_maps_back() -> None:
    # Skewed scores, as in a sweep: most trials near the floor, one peak, ties.
    y = np.array([0.0, 0.02, 0.02, 0.05, 0.1, 0.4, 1.0])
    warp = _Warp(y)
    assert np.all(np.diff(warp.w[np.argsort(y, kind="stable")]) >= 0)
    assert warp.w[1] == warp.w[2]  # ties stay ties
    assert warp.w.mean() == pytest.approx(0.0) and warp.w.std() == pytest.approx(1.0)
    # Less skewed than the scores: the fitted power pulls the floor apart and the peak in.
    assert abs(skew(warp.w)) < abs(skew(y)) / 2
    assert warp.inverse(warp.w) == pytest.approx(y, abs=1e-9)  # exact at the observed pairs
    grid = np.linspace(-4.0, 4.0, 81)
    back = warp.inverse(grid)
    assert np.all(np.diff(back) > 0)  # strictly monotone, also past the observed range
    assert back[-1] > 1.0 and back[0] < 0.0  # optimism above the best still reads as a gain


def test_constant_scores_warp_without_error() -> None:
    warp = _Warp(np.full(4, 0.3))
    assert np.all(np.isfinite(warp.w)) and warp.inverse(warp.w) == pytest.approx([0.3] * 4)


def test_predicted_score_is_in_score_units() -> None:
    search = ParetoSearch(SPEC, seed=4)
    run_trials(search, 20)
    scores = [o["score"] for o in search.state()["observations"]]
    params, info = search.suggest()
    assert info["proposal"] == "pareto"
    spread = max(scores) - min(scores)
    assert min(scores) - spread < info["predicted_score"] < max(scores) + spread
    # and close to what the objective gives there (the test task is smooth)
    assert abs(info["predicted_score"] - objective(params)[0]) < 0.5 * spread


def test_gp_extrapolates_a_trend_only_when_linear() -> None:
    # The cost GP (linear) keeps a trend going towards budgets not tried yet; the score GP falls back to
    # its mean, with a wide interval, instead of promising ever more along one direction.
    x = np.linspace(-1.0, 0.0, 12)[:, None]
    y = 2.0 * x[:, 0]
    far = np.array([[1.0]])
    trend_mean, trend_sd = GP(x, y, linear=True).predict(far)
    flat = GP(x, y)
    flat_mean, flat_sd = flat.predict(far)
    assert trend_mean[0] == pytest.approx(2.0, abs=0.1) and trend_sd[0] < 0.2
    assert flat_mean[0] < 1.0 and flat_sd[0] > 0.5
    assert not any("linear" in name for name, _ in flat.model.named_parameters())


def test_observe_and_forget_clear_pending() -> None:
    search = ParetoSearch(SPEC, seed=0)
    a, _ = search.suggest()
    b, _ = search.suggest()
    assert search.forget(a) and not search.forget(a)
    search.observe(b, *objective(b))
    assert search.state()["pending"] == []


def test_rebuild_by_replay_gives_the_same_next_suggestion() -> None:
    original = ParetoSearch(SPEC, seed=7)
    run_trials(original, 12)
    running = [original.suggest()[0] for _ in range(3)]
    original.observe(running[1], *objective(running[1]))
    next_original, _ = original.suggest()

    # Rebuilt from what a database holds, in another order, without ever having fitted.
    state = original.state()
    rebuilt = ParetoSearch(SPEC, seed=7)
    for o in reversed(state["observations"]):
        rebuilt.observe(o["params"], o["score"], o["cost"], failed=o["failed"])
    for p in state["pending"]:
        if p["params"] != next_original:
            rebuilt.add_pending(p["params"], reserved=p["reserved"])
    assert rebuilt.suggest()[0] == next_original

    other = ParetoSearch.from_state(SPEC, state, seed=7)
    assert other.state() == state
    assert ParetoSearch.from_state(SPEC, state, seed=8).suggest()[0] != other.suggest()[0]


def test_failures_steer_away() -> None:
    # Learning rates above 1e-2 diverge; a search that learns this should rarely go back there.
    search = ParetoSearch(SPEC, seed=3)
    late_failures = 0
    for i in range(30):
        params, _ = search.suggest()
        if params["train"]["learning_rate"] > 1e-2:
            search.observe(params, None, 1000.0, failed=True)
            late_failures += i >= 15
        else:
            search.observe(params, *objective(params))
    assert late_failures <= 2


def test_minimize_finds_low_values() -> None:
    search = ParetoSearch(SPEC, goal="minimize", seed=2)
    run_trials(search, 25, goal="minimize")
    best = min(o["score"] for o in search.state()["observations"])
    first = min(o["score"] for o in search.state()["observations"][:10])
    assert best < first
    _, info = search.suggest()
    assert info["proposal"] == "pareto" and info["predicted_score"] < 0


def test_suggest_restores_torch_threads() -> None:
    before = torch.get_num_threads()
    search = ParetoSearch(SPEC, seed=0)
    run_trials(search, 11)
    assert torch.get_num_threads() == before


def test_should_stop() -> None:
    search = ParetoSearch(SPEC, seed=0)
    assert not search.should_stop(1e5, -100.0)  # no data yet
    rng = np.random.default_rng(0)
    for _ in range(20):
        params = search.space.unnormalize(rng.uniform(-1, 1, search.space.dim))
        cost = float(rng.uniform(1e4, 1e6))
        search.observe(params, math.log(cost) + rng.normal(0, 0.1), cost)
    assert search.should_stop(5e5, 0.0)
    assert not search.should_stop(5e5, 20.0)
    assert not search.should_stop(1e3, 0.0)  # cheaper than anything seen: no evidence yet
    assert not search.should_stop(5e5, 0.0, budget=1e7)  # under the minimum fraction of its budget
    assert not search.should_stop(5e5, float("nan"))


def test_suggest_latency_at_500_observations() -> None:
    search = ParetoSearch(SPEC, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(500):
        params = search.space.unnormalize(rng.uniform(-1, 1, search.space.dim))
        search.observe(params, *objective(params))
    t0 = time.perf_counter()
    search.suggest()
    assert time.perf_counter() - t0 < 3.0


def test_a_sweeper_process_warms_up_beside_its_start_not_in_it(monkeypatch) -> None:
    # Celery kills a pool process that has not reported up within 4 s (worker_proc_alive_timeout), and a
    # first model fit took 5.6 s on a GPU machine's image: warming up inside the start would kill every
    # sweeper process before it took a tick.
    import threading

    from services.sweeper import tasks

    release = threading.Event()
    monkeypatch.setattr(tasks, "warm_up", lambda: float(release.wait(30)))
    monkeypatch.setattr(tasks, "_warming", None)
    started = time.perf_counter()
    thread = tasks._start_warm_up()
    assert time.perf_counter() - started < 1.0 and thread.is_alive()
    release.set()
    thread.join(5)
    assert not thread.is_alive()
    monkeypatch.undo()
    assert tasks.warm_up() > 0  # the real one fits a model
