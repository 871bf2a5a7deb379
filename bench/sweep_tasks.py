"""Synthetic sweep task families for bench/sweep_bench.py: imitations of RL hyperparameter sweeps, pure numpy.

Each family is a search space (in services/sweeper/space.py's format, every parameter with a "mean": the
user's default config, which every method starts from and which is deliberately not the optimum) and an
objective. A trial at ``params`` costs about ``total_timesteps x unit_cost(params)`` plus a small fixed
overhead (start-up, evaluation), with 5% noise, and returns an observed score (None when it failed), its
cost, and the noise-free "true" value it is judged on. The families were made to differ from each other:
cost ranges of 1 to 3 decades, budgets of 20 to 200 median runs, 3 to 16 dimensions (some irrelevant, one
only moving the cost), NaN cliffs that still cost compute, long runs that collapse, integer/power-of-two/
categorical spaces with plateaus, Student-t noise, regime changes where cheap runs point the wrong way, and
scores near 1 judged in "nines" (-log10(1 - score)).

The objective functions work on batches (dicts of arrays), so that the optimum of each family (dense random
search, then a local hill-climb from the best points) takes a fraction of a second; it is computed on first
use and cached per process.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from services.sweeper.space import Space, SpaceError

COST_PARAM = "train.total_timesteps"
COST_NOISE = 0.05


@dataclass(frozen=True)
class Batch:
    """Points of a family's space, as arrays by leaf name: raw values ``v`` and cube coordinates ``u``."""

    v: dict[str, np.ndarray]
    u: dict[str, np.ndarray]
    s: np.ndarray  # position of total_timesteps in its log range, 0..1
    t: np.ndarray  # total_timesteps / its maximum


@dataclass(frozen=True)
class Trial:
    score: float | None
    cost: float
    failed: bool
    true: float  # noise-free judged value; 0 for a failed trial


@dataclass(eq=False)
class Family:
    """One task family; ``value(batch) -> (true value >= 0, failure probability)`` and ``unit_cost(batch)``
    (cost per timestep) are vectorised over the batch."""

    name: str
    doc: str
    spec: dict[str, Any]
    value: Callable[[Batch], tuple[np.ndarray, np.ndarray]]
    unit_cost: Callable[[Batch], np.ndarray]
    budget_runs: float
    noise: float = 0.02
    heavy_tail: bool = False  # Student-t noise with 2 degrees of freedom instead of normal
    nines: bool = False  # observed score is 1 - 10**-(value + noise): value is in nines
    fail_cost: tuple[float, float] = (1 / 3, 1 / 3)  # fraction of its cost a failed trial still spends
    overhead: float = 0.02  # fixed cost per trial, as a fraction of a median run's
    traits: tuple[str, ...] = field(default=())

    # ----- the space ---------------------------------------------------------------------------------

    @cached_property
    def space(self) -> Space:
        """Raises SpaceError where services/sweeper/space.py lacks a distribution the family uses."""
        return Space(self.spec)

    @property
    def available(self) -> tuple[bool, str]:
        try:
            _ = self.space
        except SpaceError as e:
            return False, f"{self.name}: its space is not supported here ({e})"
        return True, ""

    @property
    def has_categorical(self) -> bool:
        return any(p.get("distribution") == "categorical" for p in _leaves(self.spec))

    def batch(self, u: np.ndarray) -> Batch:
        u = self.space.snap(np.atleast_2d(np.asarray(u, dtype=float)))
        v: dict[str, np.ndarray] = {}
        un: dict[str, np.ndarray] = {}
        for j, p in enumerate(self.space.params):
            leaf = p.name.rsplit(".", 1)[-1]
            if p.is_categorical:
                k = len(p.choices or ())
                idx = np.clip(np.floor((u[:, j] + 1.0) * 0.5 * k), 0, k - 1).astype(int)
                v[leaf] = np.array(p.choices, dtype=object)[idx]
            else:
                v[leaf] = p.unnormalize(u[:, j])
            un[leaf] = u[:, j]
        s = (un["total_timesteps"] + 1.0) / 2.0
        t_max = self.space.params[self.space.index(COST_PARAM)].max
        return Batch(v=v, u=un, s=s, t=v["total_timesteps"] / t_max)

    def cube(self, params: dict[str, Any]) -> np.ndarray:
        return self.space.snap(self.space.normalize(params))

    def params(self, u: np.ndarray) -> dict[str, Any]:
        return self.space.unnormalize(u)

    # ----- cost and value ----------------------------------------------------------------------------

    @cached_property
    def _overhead_abs(self) -> float:
        return self.overhead * float(self._run_cost(self.median_point())[0])

    def _run_cost(self, u: np.ndarray) -> np.ndarray:
        b = self.batch(u)
        return b.v["total_timesteps"] * self.unit_cost(b)

    def cost(self, u: np.ndarray) -> np.ndarray:
        """Noise-free cost of full (not failed) trials at cube points ``u``."""
        return self._run_cost(u) + self._overhead_abs

    def true(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free judged value and failure probability at cube points ``u``."""
        value, pfail = self.value(self.batch(u))
        return np.maximum(value, 0.0), np.clip(pfail, 0.0, 1.0)

    def evaluate(self, params: dict[str, Any], rng: np.random.Generator) -> Trial:
        """One trial. Always draws the same four numbers, so a seed's noise does not depend on outcomes."""
        u = self.cube(params)[None]
        value, pfail = (float(a[0]) for a in self.true(u))
        cost = float(self._run_cost(u)[0]) * math.exp(rng.normal(0.0, COST_NOISE)) + self._overhead_abs
        fail_draw, frac_draw = rng.random(), rng.random()
        noise = self.noise * float(rng.standard_t(2) if self.heavy_tail else rng.normal())
        if fail_draw < pfail:
            lo, hi = self.fail_cost
            return Trial(score=None, cost=cost * (lo + (hi - lo) * frac_draw), failed=True, true=0.0)
        score = 1.0 - 10.0 ** -(value + noise) if self.nines else value + noise
        return Trial(score=float(score), cost=cost, failed=False, true=value)

    # ----- reference points --------------------------------------------------------------------------

    def centre(self) -> np.ndarray:
        return self.space.snap(self.space.centre())

    def median_point(self) -> np.ndarray:
        """The centre at the geometric middle of the timesteps range: the "median run"."""
        u = self.space.centre()
        u[self.space.index(COST_PARAM)] = 0.0
        return self.space.snap(u)[None]

    @cached_property
    def median_cost(self) -> float:
        return float(self.cost(self.median_point())[0])

    @property
    def budget(self) -> float:
        return self.budget_runs * self.median_cost

    @cached_property
    def reference(self) -> dict[str, float]:
        """Optimum true value (dense random search + hill-climb), the cheapest and dearest trial's cost."""
        rng = np.random.default_rng(12345)
        d, ci = self.space.dim, self.space.index(COST_PARAM)
        u = np.vstack([self.centre()[None], rng.uniform(-1.0, 1.0, (60_000, d))])
        u = self.space.snap(u)
        value, pfail = self.true(u)
        value = np.where(pfail < 1.0, value, -np.inf)
        starts = u[np.argsort(-value)[:12]]
        best_v = np.sort(value)[::-1][:12]
        for sigma in np.geomspace(0.4, 0.002, 30):
            step = rng.normal(0.0, sigma, (len(starts), 160, d))
            # Coordinate moves too: categoricals and integers only change by whole steps.
            mask = rng.random((len(starts), 160, d)) < np.clip(3.0 / d, 0.2, 1.0)
            cand = self.space.snap(np.clip(starts[:, None, :] + step * mask, -1, 1).reshape(-1, d))
            v, pf = self.true(cand)
            v = np.where(pf < 1.0, v, -np.inf).reshape(len(starts), -1)
            j = np.argmax(v, axis=1)
            better = v[np.arange(len(starts)), j] > best_v
            starts[better] = cand.reshape(len(starts), -1, d)[np.arange(len(starts)), j][better]
            best_v = np.maximum(best_v, v[np.arange(len(starts)), j])
        lo = u.copy()
        lo[:, ci] = -1.0
        hi = u.copy()
        hi[:, ci] = 1.0
        return {
            "optimum": float(best_v.max()),
            "argmax": starts[int(np.argmax(best_v))].tolist(),
            "cheapest": float(self.cost(self.space.snap(lo)).min()) * math.exp(-2 * COST_NOISE),
            "dearest": float(self.cost(self.space.snap(hi)).max()) * math.exp(2 * COST_NOISE),
        }

    @property
    def optimum(self) -> float:
        return self.reference["optimum"]


def _leaves(spec: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for v in spec.values():
        if isinstance(v, dict) and "distribution" in v:
            out.append(v)
        elif isinstance(v, dict):
            out.extend(_leaves(v))
    return out


# ----- spec helpers ----------------------------------------------------------------------------------------


def _p(dist: str, lo: float, hi: float, mean: float) -> dict[str, Any]:
    return {"distribution": dist, "min": lo, "max": hi, "mean": mean, "scale": "auto"}


def log(lo: float, hi: float, mean: float) -> dict[str, Any]:
    return _p("log_normal", lo, hi, mean)


def uni(lo: float, hi: float, mean: float) -> dict[str, Any]:
    return _p("uniform", lo, hi, mean)


def integer(lo: int, hi: int, mean: int) -> dict[str, Any]:
    return _p("int_uniform", lo, hi, mean)


def pow2(lo: int, hi: int, mean: int) -> dict[str, Any]:
    return _p("uniform_pow2", lo, hi, mean)


def logit(lo: float, hi: float, mean: float) -> dict[str, Any]:
    return _p("logit_normal", lo, hi, mean)


def cat(choices: list[Any], mean: Any) -> dict[str, Any]:
    return {"distribution": "categorical", "choices": choices, "mean": mean}


def steps(lo: float, hi: float) -> dict[str, Any]:
    """total_timesteps, with the user's default at the geometric middle of its range."""
    return log(lo, hi, math.sqrt(lo * hi))


def _sig(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _learned(t: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Fraction of the asymptote reached after a fraction ``t`` of the longest run, time constant ``tau``."""
    return 1.0 - np.exp(-t / tau)


def _eq(b: Batch, name: str, choice: Any) -> np.ndarray:
    return (b.v[name] == choice).astype(float)


def _none(b: Batch) -> np.ndarray:
    return np.zeros_like(b.s)


# ----- the families --------------------------------------------------------------------------------------


def _ppo_classic(b: Batch) -> tuple[np.ndarray, np.ndarray]:
    u = b.u
    # Short runs want a larger learning rate, and larger batches tolerate one: the optimum moves with both.
    opt_lr = 0.1 + 0.35 * u["batch_size"] - 0.4 * b.s
    d = (
        3.0 * (u["learning_rate"] - opt_lr) ** 2
        + 2.0 * (u["gamma"] - 0.5) ** 2
        + 1.5 * (u["batch_size"] - 0.3) ** 2
        + 1.0 * (u["ent_coef"] + 0.3) ** 2
        + 0.8 * (u["update_epochs"] - 0.2 + 0.3 * u["learning_rate"]) ** 2
        + 0.4 * (u["gae_lambda"] - 0.5) ** 2
        + 0.3 * (u["clip_coef"] + 0.2) ** 2
        + 0.2 * (u["hidden_size"] - 0.4) ** 2
    )
    tau = 0.12 * 10.0 ** (-0.5 * u["learning_rate"])
    value = np.exp(-0.5 * d) * _learned(b.t, tau)
    fail = (u["learning_rate"] > 0.5) & (u["batch_size"] < -0.2)
    return value, fail.astype(float)


def _ppo_classic_cost(b: Batch) -> np.ndarray:
    return (0.6 + 0.2 * (b.u["hidden_size"] + 1.0)) * (1.0 + 0.1 * b.u["update_epochs"])


def _nines_percentile(b: Batch) -> tuple[np.ndarray, np.ndarray]:
    u = b.u
    opt_lr = 0.2 - 0.3 * b.s
    d = (
        2.0 * (u["learning_rate"] - opt_lr) ** 2
        + 1.5 * (u["gamma"] - 0.6) ** 2
        + 1.0 * (u["ent_coef"] + 0.5) ** 2
        + 0.5 * (u["hidden_size"] - 0.2) ** 2
        + 0.7 * (u["batch_size"] + 0.2) ** 2
    )
    # Nines grow with log timesteps; the best configs reach 4 (score 0.9999).
    return 4.0 * np.exp(-0.6 * d) * (0.25 + 0.75 * b.s**1.5), _none(b)


def _nines_cost(b: Batch) -> np.ndarray:
    return 0.5 + 0.5 * (b.v["hidden_size"] / 128.0) ** 0.5


def _integer_plateau(b: Batch) -> tuple[np.ndarray, np.ndarray]:
    u = b.u
    opt_lr = (
        0.5 * _eq(b, "optimizer", "muon")
        + 0.0 * _eq(b, "optimizer", "adam")
        + 0.8 * _eq(b, "optimizer", "sgd")
    )
    d = (
        0.8 * (u["num_envs"] - 0.4) ** 2
        + 0.8 * (u["horizon"] - 0.1) ** 2
        + 0.6 * (u["minibatches"] + 0.3) ** 2
        + 0.6 * (u["update_epochs"] + 0.1) ** 2
        + 0.5 * (u["hidden_size"] - 0.3) ** 2
        + 0.4 * (u["num_layers"] - 0.33) ** 2
        + 1.5 * (u["learning_rate"] - opt_lr) ** 2
    )
    act = (
        0.85 * _eq(b, "activation", "relu")
        + _eq(b, "activation", "tanh")
        + 0.92 * _eq(b, "activation", "gelu")
    )
    opt = 0.9 * _eq(b, "optimizer", "adam") + 0.6 * _eq(b, "optimizer", "sgd") + _eq(b, "optimizer", "muon")
    deep = b.v["num_layers"] >= 3
    norm = np.where(_eq(b, "layer_norm", "on") > 0, 1.0, np.where(deep, 0.7, 0.9))
    q = np.exp(-d) * act * opt * norm
    # Plateaus: the score moves in steps of 1/12 (a solved level, a discrete reward), flat in between.
    value = np.floor(q * 12.0) / 12.0 * _learned(b.t, 0.25)
    fail = (_eq(b, "optimizer", "muon") > 0) & (b.v["minibatches"] >= 32) & (u["learning_rate"] > 0.6)
    return value, fail.astype(float)


def _integer_cost(b: Batch) -> np.ndarray:
    net = (b.v["hidden_size"] / 128.0) ** 0.7 * b.v["num_layers"] / 2.0
    return (0.5 + 0.5 * net) * (0.6 + 0.1 * b.v["update_epochs"])


def _deceptive(b: Batch) -> tuple[np.ndarray, np.ndarray]:
    u = b.u
    # Fast learners (high lr, small net, short horizon) win the cheap runs; the asymptote wants the opposite.
    d_fast = (u["learning_rate"] - 0.6) ** 2 + (u["hidden_size"] + 0.6) ** 2 + (u["gamma"] + 0.5) ** 2
    d_long = (
        1.5 * ((u["learning_rate"] + 0.4) ** 2 + (u["hidden_size"] - 0.6) ** 2 + (u["gamma"] - 0.7) ** 2)
        + 0.5 * (u["ent_coef"] - 0.2) ** 2
        + 0.3 * (u["update_epochs"] + 0.3) ** 2
    )
    asymptote = 0.3 + 0.7 * np.exp(-d_long)
    tau = 0.003 * np.exp(1.1 * d_fast)
    return asymptote * _learned(b.t, tau), _none(b)


def _deceptive_cost(b: Batch) -> np.ndarray:
    return (0.4 + b.v["hidden_size"] / 256.0) * (0.7 + 0.075 * b.v["update_epochs"])


def _cost_hidden(b: Batch) -> tuple[np.ndarray, np.ndarray]:
    u = b.u
    d = (
        2.0 * (u["learning_rate"] - 0.1) ** 2
        + 1.0 * (u["batch_size"] - 0.2) ** 2
        + 0.8 * (u["update_epochs"] + 0.2) ** 2
        + 0.6 * (u["gamma"] - 0.4) ** 2
        + 0.5 * (u["ent_coef"] + 0.4) ** 2
        + 0.3 * (u["clip_coef"] - 0.1) ** 2
        + 0.2 * (u["num_layers"] + 0.3) ** 2
    )
    # Big networks are worth it only at the top of the timesteps range: they learn slower and end higher.
    capacity = 0.65 + 0.35 * _sig(3.0 * (u["hidden_size"] - 0.2))
    tau = 0.12 * (1.0 + 0.8 * (u["hidden_size"] + 1.0))
    value = np.exp(-d) * capacity * _learned(b.t, tau)
    # Small batches with a high learning rate collapse in the last part of long runs.
    unstable = _sig(5.0 * (u["learning_rate"] - u["batch_size"] - 0.3))
    value *= 1.0 - 0.7 * unstable * np.clip((b.s - 0.6) / 0.4, 0.0, 1.0)
    fail = (b.v["update_epochs"] > 12) & (u["clip_coef"] > 0.4)
    return value, fail.astype(float)


def _cost_hidden_cost(b: Batch) -> np.ndarray:
    return (0.4 + 0.6 * (b.v["hidden_size"] / 256.0) ** 0.6 * np.sqrt(b.v["num_layers"])) * (
        0.5 + b.v["update_epochs"] / 8.0
    )


def _sparse(b: Batch) -> tuple[np.ndarray, np.ndarray]:
    u = b.u
    opt_lr = -0.2 + 0.3 * u["batch_size"]
    d = 1.2 * (
        (u["learning_rate"] - opt_lr) ** 2
        + 0.8 * (u["gamma"] - 0.55) ** 2
        + 0.6 * (u["gae_lambda"] - 0.3) ** 2
        + 0.5 * (u["ent_coef"] + 0.6) ** 2
        + 0.4 * (u["batch_size"] + 0.1) ** 2
    )
    return np.exp(-d) * _learned(b.t, 0.08 * 10.0 ** (-0.3 * u["learning_rate"])), _none(b)


def _sparse_cost(b: Batch) -> np.ndarray:
    # num_workers only changes the cost (wall time), never the score.
    return 0.3 + 2.0 / np.sqrt(b.v["num_workers"])


def _poor_default(b: Batch) -> tuple[np.ndarray, np.ndarray]:
    u = b.u
    # The user's config sits far from the optimum in six settings at once (about 0.08 of it): the search
    # must leave the config's neighbourhood. The learning rate's NaN cliff lies just past its optimum.
    d = (
        2.5 * (u["learning_rate"] - 0.65) ** 2
        + 1.5 * (u["gamma"] + 0.55) ** 2
        + 1.2 * (u["ent_coef"] - 0.6) ** 2
        + 0.8 * (u["clip_coef"] + 0.5) ** 2
        + 0.8 * (u["batch_size"] - 0.5) ** 2
        + 0.5 * (u["update_epochs"] + 0.5) ** 2
        + 0.2 * u["hidden_size"] ** 2
        + 0.2 * u["gae_lambda"] ** 2
    )
    value = np.exp(-d) * _learned(b.t, 0.1)
    fail = (u["learning_rate"] > 0.85) & (u["clip_coef"] > -0.2)
    return value, fail.astype(float)


def _poor_default_cost(b: Batch) -> np.ndarray:
    return (0.5 + b.v["hidden_size"] / 256.0) * (0.6 + 0.1 * b.v["update_epochs"])


def _noisy_small(b: Batch) -> tuple[np.ndarray, np.ndarray]:
    u = b.u
    # Few settings, loud heavy-tailed noise: a model that trusts every score chases outliers. A diverging
    # corner (high learning rate with a long horizon) fails, often late; the optimum lies near its edge.
    opt_lr = 0.35 - 0.25 * b.s
    d = (
        4.0 * (u["learning_rate"] - opt_lr) ** 2
        + 2.0 * (u["gamma"] - 0.3) ** 2
        + 0.6 * (u["hidden_size"] + 0.3) ** 2
    )
    value = np.exp(-d) * _learned(b.t, 0.2 * 10.0 ** (-0.3 * u["learning_rate"]))
    fail = _sig(12.0 * (u["learning_rate"] + 0.5 * u["gamma"] - 0.7))
    return value, fail


def _noisy_small_cost(b: Batch) -> np.ndarray:
    return 0.7 + 0.3 * (b.v["hidden_size"] / 64.0) ** 0.5


def _collapse(b: Batch) -> tuple[np.ndarray, np.ndarray]:
    u = b.u
    cosine, linear = _eq(b, "anneal_lr", "cosine"), _eq(b, "anneal_lr", "linear")
    opt_lr = 0.3 * cosine + 0.1 * linear - 0.2 * (1.0 - cosine - linear)
    d = (
        2.0 * (u["learning_rate"] - opt_lr) ** 2
        + 1.0 * (u["batch_size"] - 0.2) ** 2
        + 0.8 * (u["update_epochs"] - 0.3) ** 2
        + 0.8 * (u["gamma"] - 0.5) ** 2
        + 0.5 * (u["ent_coef"] + 0.2) ** 2
        + 0.3 * (u["hidden_size"] - 0.2) ** 2
    )
    value = np.exp(-d) * _learned(b.t, 0.1 * 10.0 ** (-0.4 * u["learning_rate"]))
    # Without annealing, a high learning rate unlearns late in long runs; linear annealing halves that.
    risk = _sig(6.0 * (u["learning_rate"] + 0.3)) * (1.0 - cosine) * (1.0 - 0.5 * linear)
    value *= 1.0 - 0.85 * risk * np.clip((b.s - 0.5) / 0.5, 0.0, 1.0) ** 2
    return value, _none(b)


def _collapse_cost(b: Batch) -> np.ndarray:
    return (0.5 + 0.5 * (b.v["hidden_size"] / 128.0) ** 0.5) * (0.6 + 0.1 * b.v["update_epochs"])


def _tiny(b: Batch) -> tuple[np.ndarray, np.ndarray]:
    u = b.u
    # A sharp optimum just below a cliff: past it the run goes NaN at the very end, costing it all.
    value = np.exp(-(6.0 * (u["learning_rate"] - 0.45) ** 2 + 3.0 * (u["ent_coef"] + 0.2) ** 2))
    value = value * _learned(b.t, 0.3)
    return value, (u["learning_rate"] > 0.55).astype(float)


def _tiny_cost(b: Batch) -> np.ndarray:
    return np.ones_like(b.s)


def _wide(b: Batch) -> tuple[np.ndarray, np.ndarray]:
    u = b.u
    d = 1.5 * (
        (u["learning_rate"] - 0.2 + 0.2 * b.s) ** 2
        + 0.8 * (u["gamma"] - 0.6) ** 2
        + 0.6 * (u["gae_lambda"] - 0.4) ** 2
        + 0.6 * (u["batch_size"] + 0.3) ** 2
        + 0.4 * (u["hidden_size"] - 0.5) ** 2
        + 0.4 * (u["update_epochs"] + 0.4) ** 2
    )
    return np.exp(-d) * _learned(b.t, 0.1), _none(b)


def _wide_cost(b: Batch) -> np.ndarray:
    return (0.5 + 0.5 * (b.v["hidden_size"] / 128.0) ** 0.6) * (0.6 + 0.1 * b.v["update_epochs"])


def _cliffs(b: Batch) -> tuple[np.ndarray, np.ndarray]:
    u = b.u
    d = (
        2.0 * (u["learning_rate"] - 0.5) ** 2
        + 1.0 * (u["update_epochs"] - 0.5) ** 2
        + 1.0 * (u["clip_coef"] - 0.5) ** 2
        + 0.8 * (u["ent_coef"] + 0.3) ** 2
        + 0.8 * (u["gamma"] - 0.6) ** 2
        + 0.5 * (u["gae_lambda"] - 0.6) ** 2
        + 0.3 * (u["hidden_size"] - 0.3) ** 2
    )
    value = np.exp(-0.5 * d) * _learned(b.t, 0.15)
    # Three NaN cliffs with the optimum close to the first: too much update, too little entropy with a
    # wide clip, and a soft one (half the runs) for very long horizons.
    hard = (u["learning_rate"] + 0.5 * u["update_epochs"] > 0.8) | (
        (u["clip_coef"] > 0.6) & (u["ent_coef"] < -0.4)
    )
    soft = (u["gamma"] > 0.8) & (u["gae_lambda"] > 0.8)
    return value, np.maximum(hard.astype(float), 0.5 * soft)


def _cliffs_cost(b: Batch) -> np.ndarray:
    return (0.6 + 0.2 * (b.u["hidden_size"] + 1.0)) * (0.7 + 0.3 * (b.u["update_epochs"] + 1.0))


def _optimizer(b: Batch) -> tuple[np.ndarray, np.ndarray]:
    u = b.u
    adam, sgd = _eq(b, "optimizer", "adam"), _eq(b, "optimizer", "sgd")
    muon, rms = _eq(b, "optimizer", "muon"), _eq(b, "optimizer", "rmsprop")
    opt_lr = -0.2 * adam + 0.6 * sgd + 0.3 * muon - 0.4 * rms
    d = (
        3.0 * (u["learning_rate"] - opt_lr) ** 2
        + 1.0 * (u["momentum"] - 0.4 - 0.3 * sgd) ** 2
        + 0.5 * (u["weight_decay"] + 0.3) ** 2
        + 0.8 * (u["batch_size"] - 0.1) ** 2
        + 0.3 * (u["hidden_size"] - 0.3) ** 2
    )
    # Muon ends highest but learns slowest; SGD is slow and low; RMSprop unlearns in long runs.
    asym = 0.85 * adam + 0.7 * sgd + 1.0 * muon + 0.9 * rms
    tau = 0.03 * adam + 0.1 * sgd + 0.12 * muon + 0.03 * rms
    value = np.exp(-d) * asym * _learned(b.t, tau)
    value *= 1.0 - 0.6 * rms * np.clip((b.s - 0.5) / 0.5, 0.0, 1.0)
    return value, ((muon > 0) & (u["batch_size"] < -0.3)).astype(float)


def _optimizer_cost(b: Batch) -> np.ndarray:
    extra = 1.0 + 0.3 * _eq(b, "optimizer", "muon")  # orthogonalisation is not free
    return (0.5 + 0.5 * (b.v["hidden_size"] / 128.0) ** 0.6) * extra


def _nines_deceptive(b: Batch) -> tuple[np.ndarray, np.ndarray]:
    u = b.u
    d_fast = (u["learning_rate"] - 0.5) ** 2 + (u["gamma"] + 0.6) ** 2 + 0.5 * (u["update_epochs"] - 0.5) ** 2
    d_long = 1.5 * ((u["learning_rate"] + 0.3) ** 2 + (u["gamma"] - 0.6) ** 2) + 0.5 * (
        (u["update_epochs"] + 0.2) ** 2 + (u["batch_size"] - 0.3) ** 2 + (u["ent_coef"] + 0.5) ** 2
    )
    asymptote = 0.25 + 0.75 * np.exp(-d_long)
    tau = 0.01 * np.exp(1.2 * d_fast)
    return 5.0 * asymptote * _learned(b.t, tau), _none(b)


def _nines_deceptive_cost(b: Batch) -> np.ndarray:
    return (0.7 + 0.3 * (b.v["hidden_size"] / 64.0) ** 0.5) * (0.7 + 0.075 * b.v["update_epochs"])


PPO = {
    "learning_rate": log(1e-5, 1e-1, 1e-3),
    "gamma": logit(0.9, 0.9999, 0.99),
    "gae_lambda": logit(0.8, 0.99, 0.95),
    "ent_coef": log(1e-5, 1e-1, 1e-3),
    "clip_coef": uni(0.05, 0.5, 0.2),
}


def _ppo(*names: str) -> dict[str, Any]:
    """The parameters `names` of PPO, in that order."""
    return {name: PPO[name] for name in names}


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            "ppo_classic",
            "9-d PPO sweep, 2 decades; best lr moves with batch and timesteps; high lr + small batch: NaN",
            {
                "train": {
                    **PPO,
                    "total_timesteps": steps(2e5, 2e7),
                    "batch_size": pow2(1024, 65536, 8192),
                    "update_epochs": integer(1, 8, 4),
                },
                "policy": {"hidden_size": pow2(32, 512, 64)},
            },
            _ppo_classic,
            _ppo_classic_cost,
            budget_runs=60,
            traits=("failures", "regime"),
        ),
        Family(
            "nines_percentile",
            "7-d, 3 decades, score near 1 judged in nines (up to 4); one irrelevant parameter",
            {
                "train": {
                    **_ppo("learning_rate", "gamma", "ent_coef"),
                    "vf_coef": uni(0.1, 2.0, 0.5),
                    "total_timesteps": steps(1e4, 1e7),
                    "batch_size": pow2(512, 32768, 4096),
                },
                "policy": {"hidden_size": pow2(32, 512, 128)},
            },
            _nines_percentile,
            _nines_cost,
            budget_runs=150,
            noise=0.05,
            nines=True,
            traits=("nines", "irrelevant"),
        ),
        Family(
            "integer_plateau",
            "12-d, mostly integers/powers of 2/categoricals, quantised (plateau) score, Student-t noise",
            {
                "train": {
                    "learning_rate": log(1e-4, 1e-2, 1e-3),
                    "total_timesteps": steps(1e6, 3e7),
                    "num_envs": pow2(8, 512, 64),
                    "horizon": pow2(16, 512, 64),
                    "minibatches": pow2(1, 32, 4),
                    "update_epochs": integer(1, 10, 4),
                    "optimizer": cat(["adam", "sgd", "muon"], "adam"),
                },
                "policy": {
                    "hidden_size": pow2(16, 1024, 128),
                    "num_layers": integer(1, 4, 2),
                    "activation": cat(["relu", "tanh", "gelu"], "relu"),
                    "layer_norm": cat(["off", "on"], "off"),
                },
                "env": {"frame_skip": integer(1, 8, 4)},
            },
            _integer_plateau,
            _integer_cost,
            budget_runs=100,
            noise=0.02,
            heavy_tail=True,
            traits=("integers", "categorical", "plateaus", "heavy-tail", "irrelevant"),
        ),
        Family(
            "deceptive_regime",
            "7-d, 3 decades: fast learners win cheap runs, the opposite settings win long ones",
            {
                "train": {
                    **_ppo("learning_rate", "gamma", "ent_coef", "clip_coef"),
                    "total_timesteps": steps(1e4, 1e7),
                    "update_epochs": integer(1, 8, 4),
                },
                "policy": {"hidden_size": pow2(16, 1024, 128)},
            },
            _deceptive,
            _deceptive_cost,
            budget_runs=120,
            traits=("regime", "irrelevant"),
        ),
        Family(
            "cost_hidden",
            "10-d, 1 decade; cost grows with hidden/layers/epochs, big nets pay only long; late collapse",
            {
                "train": {
                    **PPO,
                    "total_timesteps": steps(1e6, 1e7),
                    "batch_size": pow2(1024, 65536, 8192),
                    "update_epochs": integer(1, 16, 4),
                },
                "policy": {"hidden_size": pow2(32, 2048, 128), "num_layers": integer(1, 4, 2)},
            },
            _cost_hidden,
            _cost_hidden_cost,
            budget_runs=25,
            noise=0.015,
            fail_cost=(0.5, 0.5),
            traits=("collapse", "failures", "cost-params"),
        ),
        Family(
            "sparse_15d",
            "15-d, 5 relevant, one parameter (num_workers) moving only the cost; 2.5 decades",
            {
                "train": {
                    **PPO,
                    "total_timesteps": steps(4e4, 1.2e7),
                    "batch_size": pow2(1024, 65536, 8192),
                    "vf_coef": uni(0.1, 2.0, 0.5),
                    "max_grad_norm": log(0.1, 10.0, 0.5),
                    "adam_eps": log(1e-8, 1e-4, 1e-5),
                    "adam_beta1": logit(0.5, 0.99, 0.9),
                    "update_epochs": integer(1, 8, 4),
                },
                "policy": {"hidden_size": pow2(32, 512, 128), "init_scale": uni(0.1, 2.0, 1.0)},
                "env": {"num_workers": integer(1, 16, 4)},
            },
            _sparse,
            _sparse_cost,
            budget_runs=150,
            noise=0.03,
            traits=("irrelevant", "cost-params"),
        ),
        Family(
            "poor_default",
            "9-d, 2 decades; the config is far from the optimum in six settings; a NaN cliff past it",
            {
                "train": {
                    **PPO,
                    "total_timesteps": steps(1e5, 1e7),
                    "batch_size": pow2(1024, 32768, 4096),
                    "update_epochs": integer(1, 8, 4),
                },
                "policy": {"hidden_size": pow2(32, 512, 128)},
            },
            _poor_default,
            _poor_default_cost,
            budget_runs=80,
            traits=("poor-config", "failures"),
        ),
        Family(
            "noisy_small",
            "4-d, 1.5 decades, small budget; loud Student-t noise; a failing corner beside the optimum",
            {
                "train": {**_ppo("learning_rate", "gamma"), "total_timesteps": steps(5e5, 1.5e7)},
                "policy": {"hidden_size": pow2(16, 256, 64)},
            },
            _noisy_small,
            _noisy_small_cost,
            budget_runs=30,
            noise=0.05,
            heavy_tail=True,
            fail_cost=(0.3, 1.0),
            traits=("failures", "heavy-tail", "small"),
        ),
        Family(
            "collapse_long",
            "8-d, 2 decades; without lr annealing long runs unlearn (score falls at the top of the range)",
            {
                "train": {
                    **_ppo("learning_rate", "gamma", "ent_coef"),
                    "anneal_lr": cat(["none", "linear", "cosine"], "none"),
                    "total_timesteps": steps(1e5, 1e7),
                    "batch_size": pow2(1024, 65536, 8192),
                    "update_epochs": integer(1, 8, 4),
                },
                "policy": {"hidden_size": pow2(32, 512, 128)},
            },
            _collapse,
            _collapse_cost,
            budget_runs=40,
            traits=("collapse", "categorical"),
        ),
        Family(
            "tiny_3d",
            "3-d, 1 decade, small budget; sharp optimum next to a NaN cliff costing the whole run; t noise",
            {
                "train": {
                    **_ppo("learning_rate", "ent_coef"),
                    "total_timesteps": steps(1e6, 1e7),
                }
            },
            _tiny,
            _tiny_cost,
            budget_runs=20,
            noise=0.03,
            heavy_tail=True,
            fail_cost=(1.0, 1.0),
            traits=("failures", "heavy-tail", "small"),
        ),
        Family(
            "wide_16d",
            "16-d, 6 relevant, large budget; 2 decades",
            {
                "train": {
                    **PPO,
                    "total_timesteps": steps(1e5, 1e7),
                    "batch_size": pow2(1024, 65536, 8192),
                    "update_epochs": integer(1, 8, 4),
                    "vf_coef": uni(0.1, 2.0, 0.5),
                    "max_grad_norm": log(0.1, 10.0, 0.5),
                    "adam_eps": log(1e-8, 1e-4, 1e-5),
                    "target_kl": log(1e-3, 1.0, 0.1),
                    "reward_scale": log(0.01, 10.0, 1.0),
                },
                "policy": {"hidden_size": pow2(32, 1024, 128), "init_scale": uni(0.1, 2.0, 1.0)},
                "env": {"frame_stack": integer(1, 4, 1)},
            },
            _wide,
            _wide_cost,
            budget_runs=200,
            traits=("irrelevant", "high-dim"),
        ),
        Family(
            "nan_cliffs",
            "8-d, 2 decades; three failure regions (one soft), optimum by a cliff; NaN at a random point",
            {
                "train": {
                    **PPO,
                    "total_timesteps": steps(2e5, 2e7),
                    "update_epochs": integer(1, 16, 4),
                },
                "policy": {"hidden_size": pow2(32, 512, 64)},
            },
            _cliffs,
            _cliffs_cost,
            budget_runs=60,
            fail_cost=(0.1, 1.0),
            traits=("failures",),
        ),
        Family(
            "optimizer_choice",
            "7-d, 2.5 decades; the optimizer choice sets the best lr; muon wins long but fails small batches",
            {
                "train": {
                    "optimizer": cat(["adam", "sgd", "muon", "rmsprop"], "adam"),
                    "learning_rate": log(1e-5, 1.0, 1e-3),
                    "momentum": logit(0.5, 0.999, 0.9),
                    "weight_decay": log(1e-6, 1e-1, 1e-4),
                    "total_timesteps": steps(3e4, 1e7),
                    "batch_size": pow2(256, 32768, 2048),
                },
                "policy": {"hidden_size": pow2(32, 1024, 128)},
            },
            _optimizer,
            _optimizer_cost,
            budget_runs=80,
            fail_cost=(0.2, 0.2),
            traits=("categorical", "regime", "collapse", "failures"),
        ),
        Family(
            "nines_deceptive",
            "9-d, 2 decades, judged in nines (up to 5); cheap runs favour the wrong lr/gamma; t noise",
            {
                "train": {
                    **PPO,
                    "total_timesteps": steps(1e5, 1e7),
                    "batch_size": pow2(1024, 65536, 8192),
                    "update_epochs": integer(1, 8, 4),
                },
                "policy": {"hidden_size": pow2(32, 512, 64)},
            },
            _nines_deceptive,
            _nines_deceptive_cost,
            budget_runs=100,
            noise=0.03,
            heavy_tail=True,
            nines=True,
            traits=("nines", "regime", "heavy-tail", "irrelevant"),
        ),
    ]
}

# The split was fixed before any tuning of the sweeper on these families, with each hard trait (failures,
# collapse, categoricals, heavy tails, regime changes, nines, irrelevant dimensions) on both sides.
# poor_default joined the tuning half later (session 7), when the held-out half showed a weakness the tuning
# half could not: no tuning family had a config far from its optimum. noisy_small joined it in session 15
# for the same reason: the held-out tiny_3d showed that how the score GP treats loud heavy-tailed noise in
# few dimensions decides a sweep, and no tuning family had it. The held-out half is unchanged.
TUNING = (
    "ppo_classic",
    "nines_percentile",
    "integer_plateau",
    "deceptive_regime",
    "cost_hidden",
    "sparse_15d",
    "poor_default",
    "noisy_small",
)
HELD_OUT = ("collapse_long", "tiny_3d", "wide_16d", "nan_cliffs", "optimizer_choice", "nines_deceptive")
assert set(TUNING) | set(HELD_OUT) == set(FAMILIES) and not set(TUNING) & set(HELD_OUT)
# Each family's noise stream in bench/sweep_bench.py: its place in this list, the first twelve families
# sorted by name and every later one appended, so that adding a family changes no other family's draws and
# stored histories (Protein's) stay comparable with new runs.
LATER = ("poor_default", "noisy_small")
STREAMS = {name: i for i, name in enumerate([*sorted(set(FAMILIES) - set(LATER)), *LATER])}
assert set(STREAMS) == set(FAMILIES)


def describe() -> str:
    """A markdown table of the families: dimensions, cost decades, budget, centre and random values."""
    rows = [
        "| family | half | dims | decades | budget (median runs) | centre / opt (mid, top steps) | "
        "best of 50 random / opt | fail frac | traits |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, f in FAMILIES.items():
        ok, why = f.available
        if not ok:
            rows.append(f"| {name} | | | | | | | | {why} |")
            continue
        rng = np.random.default_rng(0)
        p = f.space.params[f.space.index(COST_PARAM)]
        u = f.space.snap(rng.uniform(-1, 1, (5000, f.space.dim)))
        v, pf = f.true(u)
        v = np.where(pf >= 0.5, 0.0, v)
        best50 = np.median(v.reshape(100, 50).max(1))
        centre = f.true(f.centre()[None])[0][0]
        top = f.centre()
        top[f.space.index(COST_PARAM)] = 1.0
        centre_top = f.true(top[None])[0][0]
        half = "tuning" if name in TUNING else "held-out"
        rows.append(
            f"| {name} | {half} | {f.space.dim} | {math.log10(p.max / p.min):.1f} | {f.budget_runs:g} | "
            f"{centre / f.optimum:.2f}, {centre_top / f.optimum:.2f} | {best50 / f.optimum:.2f} | "
            f"{float(np.mean(pf)):.2f} | "
            f"{', '.join(f.traits)} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(describe())
