"""Cost-aware Pareto search over hyperparameters ("Protein" style), the sweeper's algorithm core.

Usage::

    s = ParetoSearch(space, goal="maximize", cost_param="train.total_timesteps", budget=3600.0, seed=0)
    params, info = s.suggest()              # may be called again before observing: parallel trials
    s.observe(params, score, cost)          # or failed=True for a hyperparameter failure (NaN, divergence)
    s.forget(params, cost=spent)            # infrastructure failure or cancellation: learn nothing
    s.should_stop(cost_so_far, score_so_far)

How a suggestion is made: first the centre (each parameter's "mean", the user's default; the middle of its
range where none is given), then a scrambled Sobol design in a box around the centre (``init_radius`` of
each range; while other trials are in flight, every second point spans the whole cube) with the cost
parameter held low, until enough trials succeeded; then two exact GPs (score,
log cost per unit of the cost parameter) score candidates drawn around the cost/score Pareto front and
around the best runs moved to lower cost. The
GPs see categorical parameters one-hot. The score GP models the scores through a fitted power warp
(Yeo-Johnson), not the scores themselves: sweep scores are skewed, a few peaks over a floor. A
candidate's weight is

    UCB(score) * [fits] * (1 - |target - predicted log cost| / range) * P(success) * spread

where UCB is taken on the warped scale and mapped back to score units, P(success) is a kernel estimate
from failed trials, and "spread" pushes away from pending trials (which are also fantasised into the
score GP at their predicted value), so parallel workers get distinct, non-crowding suggestions.

Cost targets and the budget: the target cycles through a shuffled bag over the upper part of the
reachable range of log cost. With a ``budget`` (total cost, in the unit of the observed costs) that range
ends at ``cost_growth`` times the cost committed so far (spent plus the trials in flight), and so does
every trial's predicted cost (while any candidate is that cheap), so the front grows from cheap to
expensive and there is a useful answer at every moment of the sweep. A candidate fits when its upper-bound
cost (mean + ``cost_margin`` standard deviations of the log-cost model, read at the dearer of its own
settings and the nearest ones seen) fits what is left once the trials in flight are reserved at theirs
(the larger of their bound when proposed and now); when nothing fits, ``suggest()`` raises
``BudgetSpent``. Costs come from ``observe`` and ``forget``; ``spent`` and ``remaining`` report them.

Rebuilding from a database: ``suggest()`` is a pure function of (space, options, seed, the *set* of
observations, the *set* of pending suggestions with what the budget reserved for each). Neither call order
nor any earlier fit matters: the random streams are keyed by the number of trials so far, GP fits start
from fixed hyperparameters, and data are sorted canonically before use. To rebuild, construct with the same
arguments, then ``observe()`` every finished trial and ``add_pending()`` every trial still running, with
its ``info["reserved_cost"]`` (any order), or round-trip
``state()`` / ``ParetoSearch.from_state()``. A rebuilt object gives the identical next suggestion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import yeojohnson

from services.sweeper.early_stop import below_line
from services.sweeper.front import GOALS, pareto_front
from services.sweeper.gp import GP, torch_threads
from services.sweeper.space import Space, SpaceError

SCORE_TRANSFORMS = ("minmax", "logit")


class BudgetSpent(RuntimeError):
    """No trial fits what is left of the sweep's budget: the sweep is over once its trials in flight end."""


FAILURE_MODELS = ("classifier", "impute", "both")
# The least spread of a trial's log cost the budget check assumes. The same run's wall time varies by several
# percent with machine load and its final evaluation; a GP fitted on a few smooth costs can claim far less.
COST_SD_FLOOR = 0.1
# The spread of log cost per unit of the cost parameter assumed before the trials can tell it (a factor of
# 1.6 per standard deviation): hidden size, epochs or minibatch size easily change the cost per step so much.
COST_SD_PRIOR = 0.5


@dataclass(frozen=True)
class _Obs:
    u: tuple[float, ...]
    score: float | None
    cost: float
    failed: bool


@dataclass(frozen=True)
class _Models:
    """Both GPs and what they were fitted on, for one set of observations (successes in canonical order)."""

    score_gp: GP
    cost_gp: GP  # of (log cost - log cost parameter - cost_mean) / cost_scale
    cost_mean: float
    cost_scale: float
    cost_calibration: float  # how much wider the cost GP's leave-one-out errors are than it claims, >= 1
    x: np.ndarray  # the successes in the cube
    y: np.ndarray  # their oriented scores, min-max scaled to [0, 1]
    log_cost: np.ndarray
    front: list[int]  # indices into x of the cost/score Pareto front
    warp: _Warp
    v_range: tuple[float, float]  # the oriented scores' range, to map predictions back
    f_fail: np.ndarray  # the failures' features


def _key(u: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in np.round(u, 9))


@dataclass(frozen=True)
class SearchOptions:
    """How `ParetoSearch` searches. Every default was chosen on the tuning half of bench/sweep_bench.py;
    BENCHMARKS.md ("Sweeps") has the figures behind each. The comments say why each holds in general."""

    # With a budget no trial may cost more than cost_growth times what the sweep has committed so far
    # (spent plus reserved): the doubling trick. The front grows from cheap to expensive, so the sweep has a
    # useful answer at every moment, and the dearest trials come last, when the model has learnt the most;
    # the cheapest to the dearest trial of a 3-decade range takes about log(1000)/log(1 + cost_growth) trials.
    cost_growth: float = 0.5
    # A trial counts at its upper-bound cost, mean + cost_margin standard deviations of the log-cost model,
    # when deciding whether it fits the budget: overrunning is worse than a little slack.
    cost_margin: float = 3.0
    # Trials before the GPs take over (the centre, then a Sobol design).
    n_init: int = 10
    # The initial design's share of the cost range, from its cheap end: the first trials are for learning.
    init_cost_span: float = 0.5
    # The initial design fills a box around the user's config, init_radius of each ordered range wide: a
    # sweep starts from a config that runs, and in 7-16 dimensions a design over the whole cube lands almost
    # every trial far below it. It is a bet that the config is reasonable (BENCHMARKS.md: what it costs when
    # the config is far from the optimum).
    init_radius: float = 0.25
    # A design trial proposed while others are in flight spans the whole cube every second time. A batch of
    # parallel trials is committed before any of it reports, so it hedges the bet on the config; one trial
    # at a time, the model phase follows the first results within a few trials and the box does better.
    parallel_hedge: bool = True
    score_transform: str = "minmax"
    # Failed trials teach a kernel classifier of P(success), and until impute_until successes they also
    # read as the worst score in the score GP, which steers its mean away while data is scarce.
    failure_model: str = "both"
    impute_until: int = 30
    # UCB's width, in warped-score standard deviations. Starting from the user's config, exploiting is cheap
    # and exploring is what finds the rest.
    explore: float = 2.0
    candidates: int = 256
    top_k: int = 5
    # Cost targets lie in the upper part of the reachable cost range (0.6-1.0, widened by expansion), where
    # final scores are made; one shuffled bag of cost_bag targets at a time.
    expansion: float = 0.1
    cost_bag: int = 6
    # Adam steps of each GP's fit from its fixed start (lengthscale 0.8, 1% noise, the data's variance). Fewer
    # for the score GP did better on the tuning half but lost a held-out family with heavy-tailed noise
    # (BENCHMARKS.md, "Sweeps"): a knob to study, with both at the steps the defaults were chosen with.
    score_fit_steps: int = 50
    cost_fit_steps: int = 50
    # The GPs fit on at most max_fit_points trials (the front, the best, then a random rest): exact GPs are
    # cubic in the points, and suggest() must stay under a second at 500 observations.
    max_fit_points: int = 96
    pareto_min_gain: float = 0.005
    # Pending trials push candidates away within this fraction of the score GP's lengthscales.
    spread: float = 0.3
    stop_quantile: float = 0.3
    stop_min_trials: int = 10
    stop_min_fraction: float = 0.25

    def __post_init__(self) -> None:
        if self.score_transform not in SCORE_TRANSFORMS:
            raise ValueError(f"score_transform must be one of {SCORE_TRANSFORMS}: {self.score_transform!r}")
        if self.failure_model not in FAILURE_MODELS:
            raise ValueError(f"failure_model must be one of {FAILURE_MODELS}: {self.failure_model!r}")

    @property
    def cost_targets(self) -> np.ndarray:
        return np.linspace(0.6, 1.0, self.cost_bag) * (1.0 + self.expansion)


class ParetoSearch:
    """Cost-aware Bayesian search; see the module docstring for the algorithm and the rebuild contract."""

    def __init__(
        self,
        space: Space | Mapping[str, Any],
        goal: str = "maximize",
        cost_param: str | None = "train.total_timesteps",
        max_cost: float | None = None,
        seed: int = 0,
        *,
        budget: float | None = None,
        options: SearchOptions = SearchOptions(),
    ) -> None:
        self.space = space if isinstance(space, Space) else Space(space)
        if goal not in GOALS:
            raise ValueError(f"goal must be one of {GOALS}, got {goal!r}")
        if budget is not None and not (math.isfinite(budget) and budget > 0):
            raise ValueError(f"budget must be a finite positive cost, got {budget!r}")
        self.cost_index = None if cost_param is None else self.space.index(cost_param)
        self.budget = None if budget is None else float(budget)
        self.goal, self.sign = goal, (1.0 if goal == "maximize" else -1.0)
        self.max_cost, self.seed = max_cost, int(seed)
        self.options = options
        self.cost_targets = options.cost_targets
        self._obs: list[_Obs] = []
        self._pending: list[tuple[float, ...]] = []
        # What the budget reserved for each trial in flight when it was proposed: held while it runs,
        # though the cost model, refitted on later trials, may come to expect less of it.
        self._held: dict[tuple[float, ...], float] = {}
        self._charged = 0.0
        self._models: tuple[int, _Models] | None = None

    # ----- bookkeeping -------------------------------------------------------------------------------

    def _u(self, params: Mapping[str, Any]) -> tuple[float, ...]:
        return _key(self.space.snap(self.space.normalize(params)))

    def add_pending(self, params: Mapping[str, Any], reserved: float | None = None) -> None:
        """Register a running trial (as after ``suggest()``); used when rebuilding from a database.
        ``reserved`` is what the budget reserved for it when it was proposed (``info["reserved_cost"]``)."""
        key = self._u(params)
        self._pending.append(key)
        if reserved is not None:
            self._held[key] = float(reserved)

    def _drop_pending(self, key: tuple[float, ...]) -> bool:
        if key not in self._pending:
            return False
        self._pending.remove(key)
        if key not in self._pending:
            self._held.pop(key, None)
        return True

    def forget(self, params: Mapping[str, Any], cost: float = 0.0) -> bool:
        """Drop a pending trial without learning from it (infrastructure failure, cancellation); its
        ``cost`` still counts against the budget. True if it was pending."""
        cost = float(cost)
        if not (math.isfinite(cost) and cost >= 0):
            raise ValueError(f"cost must be a finite non-negative number, got {cost!r}")
        self._charged += cost
        return self._drop_pending(self._u(params))

    def observe(
        self, params: Mapping[str, Any], score: float | None, cost: float, failed: bool = False
    ) -> None:
        """Record a finished trial; ``failed=True`` is a hyperparameter failure, its score may be None/NaN."""
        u = self._u(params)
        if not failed and (score is None or not math.isfinite(float(score))):
            raise ValueError(
                "a successful trial needs a finite score (pass failed=True for NaN/diverged runs)"
            )
        cost = float(cost)
        if not failed and not (math.isfinite(cost) and cost > 0):
            raise ValueError(f"cost must be a finite positive number, got {cost!r}")
        score_value = None if failed or score is None else float(score)
        self._obs.append(_Obs(u=u, score=score_value, cost=cost, failed=bool(failed)))
        self._drop_pending(u)

    def state(self) -> dict[str, Any]:
        """JSON-able observations and pending trials; ``from_state`` rebuilds an identical search."""
        return {
            "observations": [
                {
                    "params": self.space.unnormalize(np.array(o.u)),
                    "score": o.score,
                    "cost": o.cost,
                    "failed": o.failed,
                }
                for o in self._obs
            ],
            "pending": [
                {"params": self.space.unnormalize(np.array(u)), "reserved": self._held.get(u)}
                for u in self._pending
            ],
            "charged": self._charged,
        }

    @classmethod
    def from_state(
        cls, space: Space | Mapping[str, Any], state: Mapping[str, Any], **kwargs: Any
    ) -> ParetoSearch:
        search = cls(space, **kwargs)
        for o in state["observations"]:
            search.observe(o["params"], o["score"], o["cost"], failed=o["failed"])
        for p in state["pending"]:
            search.add_pending(p["params"], reserved=p["reserved"])
        search._charged = float(state["charged"])
        return search

    # ----- data views ---------------------------------------------------------------------------------

    def _successes(self) -> list[_Obs]:
        return sorted((o for o in self._obs if not o.failed), key=lambda o: (o.u, o.cost, o.score))

    def _failures(self) -> list[_Obs]:
        return sorted((o for o in self._obs if o.failed), key=lambda o: (o.u, o.cost))

    def _oriented(self, scores: np.ndarray) -> np.ndarray:
        """Scores mapped so that larger is better, in the space the score GP models."""
        if self.options.score_transform == "logit":
            p = np.clip(scores, 1e-6, 1 - 1e-6)
            scores = np.log(p / (1 - p))
        return self.sign * scores

    def _from_oriented(self, v: float) -> float:
        v = self.sign * v
        return float(1 / (1 + math.exp(-v))) if self.options.score_transform == "logit" else float(v)

    # ----- budget --------------------------------------------------------------------------------------

    @property
    def spent(self) -> float:
        """Cost of every finished trial, observed or forgotten."""
        return sum(o.cost for o in self._obs) + self._charged

    @property
    def remaining(self) -> float | None:
        """Budget left once the trials in flight are paid at their upper-bound cost; None without budget."""
        if self.budget is None:
            return None
        return self.budget - self.spent - self._reserved()

    def _reserved(self) -> float:
        if not self._pending:
            return 0.0
        keys = sorted(self._pending)
        upper = self._cost_upper(np.array(keys))
        now = np.zeros(len(keys)) if upper is None else upper
        return float(sum(max(float(u), self._held.get(k, 0.0)) for k, u in zip(keys, now, strict=True)))

    def _cost_offset(self, u: np.ndarray) -> np.ndarray:
        """log of the cost parameter's value: cost is close to proportional to it (steps, and seconds
        once start-up is paid), so the cost model learns the cost per unit of it, which is flat in the
        cost parameter and so extrapolates safely to budgets not tried yet."""
        u = np.atleast_2d(u)
        if self.cost_index is None:
            return np.zeros(len(u))
        p = self.space.params[self.cost_index]
        if p.is_categorical or p.min <= 0:
            return np.zeros(len(u))
        return np.log(p.unnormalize(u[:, self.cost_index]))

    def _cost_log(self, u: np.ndarray, cautious: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        """Mean and standard deviation of a trial's log cost (noise included); None before any cost is
        known. The GP once it is fitted; before that the median observed cost per unit of the cost
        parameter, with a wide spread. ``cautious`` (for the budget) never lets a falling cost fall past
        the settings seen."""
        u = np.atleast_2d(u)
        if len(self._successes()) >= 3:
            m = self._fit()
            inside, offset = self._cost_inputs(u, m.x)
            mu, sd = m.cost_gp.predict(self.space.features(inside))
            if cautious:
                # Past the trials seen in any setting, the cost is read at the edge too, and the dearer of
                # the two counts: a cost that falls towards an edge (more workers, a smaller net) may stop
                # falling past it, and a budget that trusts the trend is overrun.
                edge, ordered = inside.copy(), ~self.space.categorical
                seen = m.x[:, ordered]
                edge[:, ordered] = np.clip(inside[:, ordered], seen.min(0), seen.max(0))
                mu_edge, sd_edge = m.cost_gp.predict(self.space.features(edge))
                mu, sd = np.maximum(mu, mu_edge), np.maximum(sd, sd_edge)
            mean, scale = m.cost_mean, m.cost_scale
            noise = float(m.cost_gp.likelihood.noise.detach())
            # The GP's spread, widened by how much larger its leave-one-out errors are than it claims: a
            # cost that hinges on a few settings (hidden size, epochs) fools a GP fitted on few trials.
            # Until the trials outnumber the dimensions they cannot tell which settings drive the cost (a
            # design around the user's config barely moves them), so the spread is at least COST_SD_PRIOR;
            # then the spread of the observed costs per unit, shrinking as the trials outnumber them.
            n, d = len(m.x), self.space.feature_dim
            prior = (scale if n >= d else max(scale, COST_SD_PRIOR)) * math.sqrt(min(1.0, d / n))
            honest = scale * np.sqrt(sd**2 + noise) * m.cost_calibration
            sd_total = np.maximum(honest, max(prior, COST_SD_FLOOR))
            return mean + scale * mu + offset, sd_total
        known = [o for o in self._obs if o.cost > 0]
        if not known:
            return None
        base = [o for o in known if not o.failed] or known
        x = np.array([o.u for o in base])
        resid = np.log([o.cost for o in base]) - self._cost_offset(x)
        _, offset = self._cost_inputs(u, x)
        spread = max(COST_SD_PRIOR, float(resid.std()))
        return np.full(len(u), float(np.median(resid))) + offset, np.full(len(u), spread)

    def _cost_inputs(self, u: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where to read the cost per unit of the cost parameter, and the log of the units to scale it by.

        Outside the observed range of the cost parameter nothing is extrapolated. Longer runs keep the
        cost per unit at its edge value: start-up costs make it fall with length, and a falling trend
        carried on would promise long runs for less than they cost. Shorter runs are costed as the
        shortest observed one, since start-up costs can make a shorter run nearly as dear.
        """
        if self.cost_index is None:
            return u, self._cost_offset(u)
        c = self.cost_index
        lo, hi = observed[:, c].min(), observed[:, c].max()
        inside, scaled = u.copy(), u.copy()
        inside[:, c] = np.clip(u[:, c], lo, hi)
        scaled[:, c] = np.maximum(u[:, c], lo)
        return inside, self._cost_offset(scaled)

    def _cost_upper(self, u: np.ndarray) -> np.ndarray | None:
        """A trial's cost at its budget margin: what the budget reserves for it."""
        pred = self._cost_log(u, cautious=True)
        if pred is None:
            return None
        mu, sd = pred
        return np.exp(mu + self.options.cost_margin * sd)

    # ----- suggestion ----------------------------------------------------------------------------------

    def _rng(self, *stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, len(self._obs) + len(self._pending), *stream])

    def suggest(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Next trial's nested params and info (proposal, predicted score/cost); the trial becomes pending.

        Raises BudgetSpent when a budget was given and no trial fits what is left of it.
        """
        with torch_threads(1):
            u, info = self._suggest()
        key = _key(u)
        # Only a budget reserves: without one, the cost model need not be fitted for the design's trials.
        upper = None if self.budget is None else self._cost_upper(np.array(key)[None])
        info["reserved_cost"] = reserved = None if upper is None else float(upper[0])
        self._pending.append(key)
        if reserved is not None:
            self._held[key] = reserved
        # Built from the rounded point, so the params handed out are exactly those state() reports.
        return self.space.unnormalize(np.array(key)), info

    def _taken(self) -> set[tuple[float, ...]]:
        return {o.u for o in self._obs} | set(self._pending)

    def _suggest(self) -> tuple[np.ndarray, dict[str, Any]]:
        k = len(self._obs) + len(self._pending)
        if k < self.options.n_init or len(self._successes()) < 3:
            return self._initial(k)
        return self._model_based(k)

    def _near_centre(self, u: np.ndarray) -> np.ndarray:
        """u drawn towards the user's config by init_radius, a box inside the cube that holds the centre."""
        centre = self.space.centre()
        ordered = ~self.space.categorical
        if self.cost_index is not None:
            ordered[self.cost_index] = False  # the cost keeps its own low span (_hold_cost_low)
        u[..., ordered] = centre[ordered] + self.options.init_radius * (u[..., ordered] - centre[ordered])
        return u

    def _hold_cost_low(self, u: np.ndarray) -> np.ndarray:
        if self.cost_index is not None:
            c = self.cost_index
            u[..., c] = -1.0 + (u[..., c] + 1.0) * 0.5 * self.options.init_cost_span
        return u

    def _affordable(self, u: np.ndarray, info: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        """An initial-design point that fits the budget: as it is, else at the lowest cost, else none."""
        remaining = self.remaining
        if remaining is None:
            return u, info
        for candidate in (u, self._at_lowest_cost(u)):
            upper = self._cost_upper(candidate)
            if upper is None or upper[0] <= remaining:
                return candidate, info
        raise BudgetSpent(f"the cheapest trial does not fit the {remaining:.4g} left of the budget")

    def _at_lowest_cost(self, u: np.ndarray) -> np.ndarray:
        u = u.copy()
        if self.cost_index is not None:
            u[..., self.cost_index] = -1.0
        return self.space.snap(u)

    def _initial(self, k: int) -> tuple[np.ndarray, dict[str, Any]]:
        taken = self._taken()
        if k == 0:
            # The user's config as it is, at its own cost: the run they would launch anyway, and the most
            # informative single trial. Held at a low cost like the design after it, the search starts far
            # below what the user already knows works.
            u = self.space.centre()
            info = {"proposal": "centre", "predicted_score": None, "predicted_cost": None}
            return self._affordable(self.space.snap(u), info)
        engine = torch.quasirandom.SobolEngine(self.space.dim, scramble=True, seed=self.seed)
        engine.fast_forward(k)
        # Integer parameters can map distinct Sobol points onto one trial; walk on until it is new.
        for _ in range(64):
            u = engine.draw(1).double().numpy()[0] * 2.0 - 1.0
            if not (self.options.parallel_hedge and self._pending and k % 2 == 0):
                u = self._near_centre(u)
            u = self.space.snap(self._hold_cost_low(u))
            if _key(u) not in taken:
                info = {"proposal": "sobol", "predicted_score": None, "predicted_cost": None}
                return self._affordable(u, info)
        u = self.space.snap(self._rng(1).uniform(-1.0, 1.0, self.space.dim))
        return self._affordable(u, {"proposal": "random", "predicted_score": None, "predicted_cost": None})

    def _fit(self) -> _Models:
        """Fit both GPs on the observations; cached per observation count (a pure function of the data)."""
        n = len(self._obs)
        if self._models is not None and self._models[0] == n:
            return self._models[1]
        succ, fail = self._successes(), self._failures()
        x_s = np.array([o.u for o in succ])
        f_s = self.space.features(x_s)
        v = self._oriented(np.array([o.score for o in succ]))
        v_lo, v_hi = float(v.min()), float(v.max())
        y = (v - v_lo) / max(v_hi - v_lo, 1e-12)
        log_c = np.log(np.array([o.cost for o in succ]))
        resid = log_c - self._cost_offset(x_s)
        c_mean, c_scale = float(resid.mean()), float(resid.std()) or 1.0

        front = pareto_front(
            [(o.cost, float(s)) for o, s in zip(succ, y, strict=True)],
            "maximize",
            self.options.pareto_min_gain,
        )
        keep = self._subsample(len(succ), front, y)
        warp = _Warp(y)
        x_fit, y_fit = f_s[keep], warp.w[keep]
        opt = self.options
        impute = opt.failure_model in ("impute", "both") and fail and len(succ) < opt.impute_until
        if impute:
            # Failures read as the worst score seen, which steers the GP mean away while data is scarce.
            x_fit = np.vstack([x_fit, self.space.features(np.array([o.u for o in fail]))])
            y_fit = np.concatenate([y_fit, np.full(len(fail), warp.w.min())])
        score_gp = GP(x_fit, y_fit, steps=opt.score_fit_steps)
        cost_gp = GP(f_s[keep], (resid[keep] - c_mean) / c_scale, steps=opt.cost_fit_steps, linear=True)
        models = _Models(
            score_gp=score_gp,
            cost_gp=cost_gp,
            cost_mean=c_mean,
            cost_scale=c_scale,
            cost_calibration=max(1.0, cost_gp.loo_calibration()),
            x=x_s,
            y=y,
            log_cost=log_c,
            front=front,
            warp=warp,
            v_range=(v_lo, v_hi),
            f_fail=self.space.features(np.array([o.u for o in fail]).reshape(-1, self.space.dim)),
        )
        self._models = (n, models)
        return models

    def _subsample(self, n: int, front: list[int], y: np.ndarray) -> np.ndarray:
        """Indices to fit on: everything up to max_fit_points, else the front, the best and a random rest."""
        if n <= self.options.max_fit_points:
            return np.arange(n)
        must = set(front) | set(np.argsort(-y)[: self.options.top_k * 4].tolist())
        rest = np.array(sorted(set(range(n)) - must))
        room = max(self.options.max_fit_points - len(must), 0)
        picked = self._rng(2).choice(rest, size=min(room, len(rest)), replace=False)
        return np.array(sorted(must | set(picked.tolist())))

    def _candidates(self, m: _Models, rng: np.random.Generator) -> np.ndarray:
        x, y = m.x, m.y
        centres = [x[i] for i in m.front]
        for i in np.argsort(-y)[: self.options.top_k]:
            c = x[i].copy()
            if self.cost_index is not None:
                # The best runs, cheaper: the cheapest place to learn whether their settings still hold.
                c[self.cost_index] -= self.space.scales[self.cost_index]
            centres.append(c)
        # The runs that did best *for their cost* (largest residual over a least-squares line of score on
        # log cost): where score mostly grows with budget, the front and the top scores are just the longest
        # runs, whatever their settings; these are the settings worth carrying to other budgets.
        log_c = m.log_cost
        design = np.column_stack([np.ones_like(log_c), log_c])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        centres.extend(x[i] for i in np.argsort(-(y - design @ coef))[: self.options.top_k])
        centres_arr = np.clip(np.array(centres), -1.0, 1.0)
        n = self.options.candidates
        noise = rng.uniform(-1.0, 1.0, (len(centres_arr), n, self.space.dim)) * self.space.scales
        # Half the draws search the full scale, half refine locally: the GP argmax needs both.
        noise[:, n // 2 :] *= 0.2
        local = centres_arr[:, None, :] + noise
        if self.space.categorical.any():
            # Choices have no order, so a step moves to any other choice: half the broad draws and a
            # tenth of the refinements pick one at random, the rest keep their centre's.
            cat = self.space.categorical
            switch = (
                rng.uniform(size=(len(centres_arr), n, 1))
                < np.where(np.arange(n) < n // 2, 0.5, 0.1)[None, :, None]
            )
            fresh = rng.uniform(-1.0, 1.0, local.shape)
            local[..., cat] = np.where(switch, fresh, np.repeat(centres_arr[:, None, :], n, axis=1))[..., cat]
        if self.cost_index is not None:
            # Refinements take any budget and the cost target picks among them. Held near their centre's
            # budget, they lose to cruder candidates whenever the target lies elsewhere.
            local[:, n // 2 :, self.cost_index] = rng.uniform(-1.0, 1.0, (len(centres_arr), n - n // 2))
        local = local.reshape(-1, self.space.dim)
        broad = rng.uniform(-1.0, 1.0, (n, self.space.dim))
        cand = [local, broad]
        if self.budget is not None:
            # The centres at the lowest cost: late in a sweep, what is left may fit nothing dearer.
            cand.append(self._at_lowest_cost(centres_arr))
        return self.space.snap(np.vstack(cand))

    def _model_based(self, k: int) -> tuple[np.ndarray, dict[str, Any]]:
        m = self._fit()
        cand = self._candidates(m, self._rng(3))
        f_cand = self.space.features(cand)
        pending = np.array(sorted(self._pending)).reshape(-1, self.space.dim)
        f_pending = self.space.features(pending) if len(pending) else np.empty((0, self.space.feature_dim))
        mu, sd = self._predict_believing_pending(m.score_gp, f_cand, f_pending)
        cost_log = self._cost_log(cand)
        assert cost_log is not None  # the models are fitted, so costs are known
        log_mu, _ = cost_log
        pred_cost = np.exp(log_mu)
        feasible = self._feasible(cand, log_mu)
        target, closeness = self._cost_target(k, log_mu, feasible)

        lengthscales = np.clip(m.score_gp.lengthscales, 0.05, 1.0)
        weight = np.clip(m.warp.inverse(mu + self.options.explore * sd), 0.0, None)
        weight *= self._success_probability(f_cand, self.space.features(m.x), m.f_fail, lengthscales)
        if len(pending):
            weight *= self._spread(f_cand, f_pending, lengthscales)
        weight *= feasible
        ranked = weight * closeness
        if ranked.max() <= 0.0:
            ranked = weight if weight.max() > 0.0 else np.where(feasible, -pred_cost, -np.inf)
        taken = self._taken()
        for i in np.argsort(-ranked, kind="stable"):
            if _key(cand[i]) not in taken:
                break
        v_lo, v_hi = m.v_range
        info = {
            "proposal": "pareto",
            "predicted_score": self._from_oriented(v_lo + float(m.warp.inverse(mu[i])) * (v_hi - v_lo)),
            "predicted_cost": float(pred_cost[i]),
            "target_cost": float(math.exp(target)),
        }
        return cand[i], info

    @staticmethod
    def _predict_believing_pending(
        score_gp: GP, f_cand: np.ndarray, f_pending: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Kriging believer: pending trials count as observed at their predicted score, which removes their
        uncertainty bonus without refitting."""
        if len(f_pending):
            believed, _ = score_gp.predict(f_pending)
            score_gp.condition(f_pending, believed)
        try:
            return score_gp.predict(f_cand)
        finally:
            if len(f_pending):
                score_gp.condition(np.empty((0, f_pending.shape[1])), np.empty(0))

    def _feasible(self, cand: np.ndarray, log_mu: np.ndarray) -> np.ndarray:
        """Candidates under max_cost, fitting the budget at their upper-bound cost, within the growth cap."""
        feasible = np.ones(len(log_mu), dtype=bool)
        if self.max_cost is not None:
            feasible &= np.exp(log_mu) < self.max_cost
        remaining = self.remaining
        if remaining is not None and self.budget is not None:
            upper = self._cost_upper(cand)
            assert upper is not None  # the models are fitted, so costs are known
            feasible &= upper <= remaining
            if not feasible.any():
                raise BudgetSpent(f"no trial fits the {remaining:.4g} left of the budget")
            # The growth cap binds the trial, not only its target: a candidate far dearer than the target
            # can still win on score, and early in a sweep its cost is the model's least reliable guess.
            within_cap = log_mu <= math.log(self.options.cost_growth * (self.budget - remaining))
            if (feasible & within_cap).any():
                feasible &= within_cap
        return feasible

    def _cost_target(self, k: int, log_mu: np.ndarray, feasible: np.ndarray) -> tuple[float, np.ndarray]:
        """This trial's target log cost, from a shuffled bag over the reachable range, and each candidate's
        closeness to it (1 on target, 0 a whole range away)."""
        reachable = log_mu[feasible] if feasible.any() else log_mu
        lo, hi = float(reachable.min()), float(reachable.max())
        bag = k // len(self.cost_targets)
        ratio = np.random.default_rng([self.seed, bag, 4]).permutation(self.cost_targets)[
            k % len(self.cost_targets)
        ]
        # Targets over the reachable range of log cost (up to the dearest candidate, or to the budget's
        # growth cap): growing the observed range by 10% per bag takes dozens of trials to reach the
        # budgets where the final scores are made.
        target = lo + ratio * (hi - lo)
        return target, np.clip(1.0 - np.abs(target - log_mu) / max(hi - lo, 1e-9), 0.0, None)

    def _success_probability(
        self, cand: np.ndarray, x_ok: np.ndarray, x_fail: np.ndarray, lengthscales: np.ndarray
    ) -> np.ndarray:
        """Kernel estimate of P(success), shrunk to the overall success rate by one pseudo-trial."""
        if self.options.failure_model == "impute" or not len(x_fail):
            return np.ones(len(cand))
        overall = len(x_ok) / (len(x_ok) + len(x_fail))
        w_ok = _rbf(cand, x_ok, lengthscales).sum(1)
        w_fail = _rbf(cand, x_fail, lengthscales).sum(1)
        return (w_ok + overall) / (w_ok + w_fail + 1.0)

    def _spread(self, cand: np.ndarray, pending: np.ndarray, lengthscales: np.ndarray) -> np.ndarray:
        """Multiplier that is ~0 on a pending trial and ~1 a fraction of a lengthscale away."""
        return np.prod(1.0 - _rbf(cand, pending, lengthscales * self.options.spread), axis=1)

    # ----- early stopping ------------------------------------------------------------------------------

    def should_stop(self, cost_so_far: float, score_so_far: float, budget: float | None = None) -> bool:
        """Advice for a running trial: True when it trails finished trials at equal cost (see early_stop)."""
        if score_so_far is None or not math.isfinite(float(score_so_far)):
            return False
        succ = self._successes()
        return below_line(
            [o.cost for o in succ],
            self._oriented(np.array([o.score for o in succ])).tolist(),
            float(cost_so_far),
            float(self._oriented(np.array([float(score_so_far)]))[0]),
            q=self.options.stop_quantile,
            min_trials=self.options.stop_min_trials,
            budget=budget,
            min_fraction=self.options.stop_min_fraction,
        )


class _Warp:
    """Yeo-Johnson power warp of scores in [0, 1], its power fitted by maximum likelihood, standardised.

    Sweep scores are skewed (most trials near the floor, a few peaks), which a stationary GP fits with long
    lengthscales that flatten the peaks; the fitted power makes them close to normal. ``inverse`` is the
    exact inverse over the observed range and continues linearly past it with the slope at its ends: a
    strong power has a bounded range (its inverse runs off to infinity at a finite value), and an optimistic
    prediction above the best must read as a finite gain in score units.
    """

    def __init__(self, y: np.ndarray) -> None:
        y = np.asarray(y, dtype=float)
        if np.ptp(y) > 0:
            transformed, self.power = yeojohnson(y)
        else:  # one distinct score: nothing to fit
            transformed, self.power = y.copy(), 1.0
        self.mean = float(transformed.mean())
        self.sd = float(transformed.std()) or 1.0
        self.w = (transformed - self.mean) / self.sd
        self._lo, self._hi = float(self.w.min()), float(self.w.max())
        step = 1e-4 * max(self._hi - self._lo, 1e-6)
        self._lo_slope = (self._exact(self._lo + step) - self._exact(self._lo)) / step
        self._hi_slope = (self._exact(self._hi) - self._exact(self._hi - step)) / step

    def _exact(self, w: np.ndarray | float) -> np.ndarray:
        t = np.asarray(w, dtype=float) * self.sd + self.mean
        lam = self.power
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if abs(lam) < 1e-9:
                up = np.expm1(t)
            else:
                up = np.power(np.clip(lam * t + 1.0, 1e-300, None), 1.0 / lam) - 1.0
            if abs(lam - 2.0) < 1e-9:
                down = -np.expm1(-t)
            else:
                down = 1.0 - np.power(np.clip(1.0 - (2.0 - lam) * t, 1e-300, None), 1.0 / (2.0 - lam))
        return np.where(t >= 0, up, down)

    def inverse(self, w: np.ndarray | float) -> np.ndarray:
        """Scores (the units of ``y``) for warped values ``w``; monotone, exact at the observed pairs."""
        w = np.asarray(w, dtype=float)
        inside = self._exact(np.clip(w, self._lo, self._hi))
        below = self._exact(self._lo) + (w - self._lo) * self._lo_slope
        above = self._exact(self._hi) + (w - self._hi) * self._hi_slope
        return np.where(w < self._lo, below, np.where(w > self._hi, above, inside))


def _rbf(a: np.ndarray, b: np.ndarray, lengthscales: np.ndarray) -> np.ndarray:
    if not len(b):
        return np.zeros((len(a), 0))
    a, b = a / lengthscales, b / lengthscales
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.exp(-0.5 * np.clip(sq, 0.0, None))


__all__ = ["ParetoSearch", "SpaceError", "pareto_front"]
