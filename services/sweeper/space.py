"""Hyperparameter search spaces: strict parsing and the map to the normalised cube [-1, 1]^d.

A space spec is a nested dict as it comes from TOML/JSON, sections nesting parameters::

    {"train": {"learning_rate": {"distribution": "log_normal", "min": 1e-5, "max": 1e-1, "scale": "auto"},
               "optimizer": {"distribution": "categorical", "choices": ["adam", "muon"]}}}

A categorical parameter takes one coordinate of the cube, cut into equal bins, one per choice, so candidates
are drawn and snapped like any other parameter; the GPs see it one-hot (``Space.features``), since its
choices have no order.

Every parameter is addressed by its dotted name (``train.learning_rate``). Names are kept sorted so that a
spec that went through a store which reorders keys (Postgres jsonb does) yields the same coordinates.

Validation is strict because a sweep that silently ignores a misspelt key runs hundreds of useless trials:
every problem raises :class:`SpaceError` naming the dotted parameter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

DISTRIBUTIONS = ("uniform", "int_uniform", "uniform_pow2", "log_normal", "logit_normal", "categorical")
REQUIRED_KEYS = frozenset({"distribution", "min", "max"})
# "mean" is the user's default; the first suggestion is built from it, as a free, informed start.
OPTIONAL_KEYS = frozenset({"scale", "mean"})
CATEGORICAL_KEYS = frozenset({"distribution", "choices", "mean"})
SPEC_KEYS = REQUIRED_KEYS | OPTIONAL_KEYS
AUTO_SCALE = 0.5
Choice = str | int | float | bool | None


class SpaceError(ValueError):
    """An invalid search space; the message names the dotted parameter at fault."""


def _number(name: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpaceError(f"{name}: '{key}' must be a finite number, got {value!r}")
    return float(value)


def _choice_key(value: Choice) -> tuple[bool, Choice]:
    # True == 1 in Python, but a user who lists both means two different choices.
    return isinstance(value, bool), value


def _value(p: Param, value: Any) -> Any:
    return value if p.is_categorical else _number(p.name, "value", value)


@dataclass(frozen=True)
class Param:
    """One swept hyperparameter; ``lo``/``hi`` are its bounds in the warped domain (log10, log2, ...).

    A categorical keeps its values in ``choices``; its ``min``/``max`` are the first and last choice index.
    """

    name: str
    distribution: str
    min: float
    max: float
    scale: float
    mean: Choice
    choices: tuple[Choice, ...] | None = None

    @property
    def is_integer(self) -> bool:
        return self.distribution in ("int_uniform", "uniform_pow2")

    @property
    def is_categorical(self) -> bool:
        return self.choices is not None

    def index_of(self, value: Choice) -> int:
        """The position of ``value`` among the choices; SpaceError naming the parameter if absent."""
        key = _choice_key(value)
        for i, choice in enumerate(self.choices or ()):
            if _choice_key(choice) == key:
                return i
        raise SpaceError(f"{self.name}: unknown choice {value!r}; expected one of {list(self.choices or ())}")

    def _bin(self, u: np.ndarray | float) -> np.ndarray:
        k = len(self.choices or ())
        return np.clip(np.floor((np.asarray(u, dtype=float) + 1.0) * 0.5 * k), 0, k - 1).astype(int)

    def _bin_centre(self, index: np.ndarray | int) -> np.ndarray:
        k = len(self.choices or ())
        return -1.0 + (2.0 * np.asarray(index, dtype=float) + 1.0) / k

    def _warp(self, x: np.ndarray | float) -> np.ndarray | float:
        if self.distribution == "log_normal":
            return np.log10(x)
        if self.distribution == "uniform_pow2":
            return np.log2(x)
        if self.distribution == "logit_normal":
            return np.log10(1.0 - np.asarray(x))
        return x

    def _unwarp(self, w: np.ndarray) -> np.ndarray:
        if self.distribution == "log_normal":
            return 10.0**w
        if self.distribution == "uniform_pow2":
            return 2.0 ** np.round(w)
        if self.distribution == "logit_normal":
            return 1.0 - 10.0**w
        if self.distribution == "int_uniform":
            return np.round(w)
        return w

    def _bounds(self) -> tuple[float, float]:
        if self.distribution == "uniform_pow2":
            # Only powers of two inside [min, max] are reachable, so the cube spans exactly those.
            return float(math.ceil(math.log2(self.min))), float(math.floor(math.log2(self.max)))
        if self.distribution == "int_uniform":
            return float(math.ceil(self.min)), float(math.floor(self.max))
        return float(self._warp(self.min)), float(self._warp(self.max))

    def normalize(self, x: Any) -> np.ndarray:
        """A choice of a categorical, or values (a number or an array) of a numeric parameter, in the cube."""
        if self.is_categorical:
            return self._bin_centre(self.index_of(x))
        lo, hi = self._bounds()
        w = np.asarray(self._warp(np.asarray(x, dtype=float)), dtype=float)
        return np.clip(2.0 * (w - lo) / (hi - lo) - 1.0, -1.0, 1.0)

    def unnormalize(self, u: np.ndarray | float) -> np.ndarray:
        lo, hi = self._bounds()
        w = lo + (np.clip(np.asarray(u, dtype=float), -1.0, 1.0) + 1.0) * 0.5 * (hi - lo)
        return np.clip(self._unwarp(w), self.min, self.max)

    def snap(self, u: np.ndarray) -> np.ndarray:
        """Coordinates moved onto the values they really run with (ints, powers of 2, a choice)."""
        if self.is_categorical:
            return self._bin_centre(self._bin(u))
        if self.is_integer:
            return self.normalize(self.unnormalize(u))
        return u

    def value(self, u: float) -> Choice:
        """A plain Python value, int for integer distributions, ready for JSON and for the trainer."""
        if self.choices is not None:
            return self.choices[int(self._bin(u))]
        v = float(self.unnormalize(u))
        return round(v) if self.is_integer else v


def _parse_categorical(name: str, spec: Mapping[str, Any]) -> Param:
    extra = sorted(set(spec.keys()) - CATEGORICAL_KEYS)
    if extra:
        raise SpaceError(
            f"{name}: unknown key(s) {', '.join(extra)} for a categorical; "
            f"allowed: {', '.join(sorted(CATEGORICAL_KEYS))}"
        )
    choices = spec.get("choices")
    if not isinstance(choices, list | tuple) or not choices:
        raise SpaceError(f"{name}: a categorical needs 'choices', a non-empty list, got {choices!r}")
    seen: set[tuple[bool, Choice]] = set()
    for choice in choices:
        finite = not isinstance(choice, float) or math.isfinite(choice)
        if not (choice is None or isinstance(choice, str | int | float)) or not finite:
            raise SpaceError(f"{name}: choices must be strings, numbers, booleans or null, got {choice!r}")
        if _choice_key(choice) in seen:
            raise SpaceError(f"{name}: choice {choice!r} is listed twice")
        seen.add(_choice_key(choice))
    param = Param(
        name=name,
        distribution="categorical",
        min=0.0,
        max=float(len(choices) - 1),
        scale=AUTO_SCALE,
        mean=None,
        choices=tuple(choices),
    )
    if "mean" not in spec:
        return param
    param.index_of(spec["mean"])  # an unknown default is refused by name
    return replace(param, mean=spec["mean"])


def _parse_param(name: str, spec: Mapping[str, Any]) -> Param:
    if spec.get("distribution") == "categorical":
        return _parse_categorical(name, spec)
    missing = sorted(REQUIRED_KEYS - spec.keys())
    if missing:
        raise SpaceError(f"{name}: missing key(s) {', '.join(missing)}")
    extra = sorted(set(spec.keys()) - SPEC_KEYS)
    if extra:
        raise SpaceError(
            f"{name}: unknown key(s) {', '.join(extra)}; allowed: {', '.join(sorted(SPEC_KEYS))}"
        )
    dist = spec["distribution"]
    if dist not in DISTRIBUTIONS:
        raise SpaceError(f"{name}: unknown distribution {dist!r}; expected one of {', '.join(DISTRIBUTIONS)}")
    lo, hi = _number(name, "min", spec["min"]), _number(name, "max", spec["max"])
    if lo >= hi:
        raise SpaceError(f"{name}: min ({lo:g}) must be < max ({hi:g})")
    if dist in ("log_normal", "uniform_pow2") and lo <= 0:
        raise SpaceError(f"{name}: {dist} needs min > 0, got {lo:g}")
    if dist == "logit_normal" and not (lo > 0 and hi < 1):
        raise SpaceError(f"{name}: logit_normal needs 0 < min < max < 1, got [{lo:g}, {hi:g}]")
    if dist == "uniform_pow2" and math.ceil(math.log2(lo)) >= math.floor(math.log2(hi)):
        raise SpaceError(f"{name}: uniform_pow2 needs at least two powers of 2 in [{lo:g}, {hi:g}]")
    if dist == "int_uniform" and math.ceil(lo) >= math.floor(hi):
        raise SpaceError(f"{name}: int_uniform needs at least two integers in [{lo:g}, {hi:g}]")
    raw_scale = spec.get("scale", "auto")
    scale = AUTO_SCALE if raw_scale == "auto" else _number(name, "scale", raw_scale)
    if scale <= 0:
        raise SpaceError(f"{name}: scale must be > 0 or 'auto', got {raw_scale!r}")
    mean = None
    if "mean" in spec:
        mean = _number(name, "mean", spec["mean"])
        if not lo <= mean <= hi:
            raise SpaceError(f"{name}: mean {mean:g} is outside [{lo:g}, {hi:g}]")
    return Param(name=name, distribution=dist, min=lo, max=hi, scale=scale, mean=mean)


def _walk(spec: Mapping[str, Any], prefix: str, out: list[Param]) -> None:
    for key, value in spec.items():
        if not isinstance(key, str) or not key or "." in key:
            raise SpaceError(f"{prefix}{key}: section and parameter names must be non-empty and dot-free")
        name = f"{prefix}{key}"
        if not isinstance(value, Mapping):
            raise SpaceError(f"{name}: expected a parameter spec or a section, got {value!r}")
        if (SPEC_KEYS | CATEGORICAL_KEYS) & value.keys():
            out.append(_parse_param(name, value))
        elif not value:
            raise SpaceError(f"{name}: empty section")
        else:
            _walk(value, f"{name}.", out)


class Space:
    """A validated search space; coordinates are the parameters in sorted dotted-name order."""

    def __init__(self, spec: Mapping[str, Any], known: set[str] | None = None) -> None:
        if not isinstance(spec, Mapping) or not spec:
            raise SpaceError("<space>: the search space must be a non-empty mapping of sections/parameters")
        params: list[Param] = []
        _walk(spec, "", params)
        if known is not None:
            for p in params:
                if p.name not in known:
                    raise SpaceError(f"{p.name}: not a parameter the environment/trainer knows")
        self.params: list[Param] = sorted(params, key=lambda p: p.name)
        self.names: list[str] = [p.name for p in self.params]
        self.scales = np.array([p.scale for p in self.params])
        # Where each parameter's columns sit in ``features``: one column, or one per choice.
        widths = [len(p.choices) if p.choices is not None else 1 for p in self.params]
        self.feature_slices = [slice(a, a + w) for a, w in zip(np.cumsum([0, *widths]), widths, strict=False)]
        self.feature_dim = int(sum(widths))
        self.categorical = np.array([p.is_categorical for p in self.params], dtype=bool)

    @property
    def dim(self) -> int:
        return len(self.params)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise SpaceError(f"{name}: not a parameter of this space") from None

    def flatten(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Nested params → {dotted name: value}; every swept parameter must be present."""
        flat: dict[str, Any] = {}
        for name in self.names:
            node: Any = params
            for part in name.split("."):
                if not isinstance(node, Mapping) or part not in node:
                    raise SpaceError(f"{name}: missing from the given parameters")
                node = node[part]
            flat[name] = node
        return flat

    def normalize(self, params: Mapping[str, Any]) -> np.ndarray:
        flat = self.flatten(params)
        return np.array([float(p.normalize(_value(p, flat[p.name]))) for p in self.params])

    def unnormalize(self, u: np.ndarray) -> dict[str, Any]:
        """A point of the cube → nested params, with ints for integer distributions."""
        nested: dict[str, Any] = {}
        for p, x in zip(self.params, np.asarray(u, dtype=float), strict=True):
            *sections, leaf = p.name.split(".")
            node = nested
            for s in sections:
                node = node.setdefault(s, {})
            node[leaf] = p.value(float(x))
        return nested

    def snap(self, u: np.ndarray) -> np.ndarray:
        """Round points of the cube onto the values they really run with (ints, powers of 2), batched."""
        u = np.clip(np.asarray(u, dtype=float), -1.0, 1.0)
        out = u.copy()
        for j, p in enumerate(self.params):
            out[..., j] = p.snap(u[..., j])
        return out

    def features(self, u: np.ndarray) -> np.ndarray:
        """Points of the cube as the GPs see them: categoricals one-hot, everything else as is."""
        u = np.atleast_2d(np.asarray(u, dtype=float))
        out = np.zeros((len(u), self.feature_dim))
        for j, (p, cols) in enumerate(zip(self.params, self.feature_slices, strict=True)):
            if p.is_categorical:
                out[np.arange(len(u)), cols.start + p._bin(u[:, j])] = 1.0
            else:
                out[:, cols.start] = u[:, j]
        return out

    def centre(self) -> np.ndarray:
        """The user's defaults ("mean") in the cube; the middle where none was given (a categorical's first
        choice)."""
        return np.array(
            [
                float(p.normalize(p.mean))
                if p.mean is not None
                else (float(p._bin_centre(0)) if p.is_categorical else 0.0)
                for p in self.params
            ]
        )
