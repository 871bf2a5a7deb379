"""What a Python environment is, as the registry describes environments: spaces, agents, seats, perf.

A Python environment is named by its id: `gymnasium:CartPole-v1` (any Gymnasium id, a `module:Env-v0` one
included) or `pettingzoo:classic.connect_four_v3` (a PettingZoo module: its ParallelEnv, or a two-player
turn-based AEC game). Nothing is imported before the id matches SHOAL_PYTHON_ENVS. Resolving an allowed id
constructs the environment once in this process to read its spaces, and is cached.

An optional spec file, `*.pyenv.toml` (shipped ones in envs_c/pyenvs/specs/, users' on SHOAL_ENV_PATH),
adds what the environment cannot say itself: how its return maps to perf, constructor arguments, training
defaults. See docs/envs.md.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from envs_c.pyenvs import allowlist
from envs_c.pyenvs.adapters import GAME_LOG, SINGLE_LOG, obs_dtype
from envs_c.pyenvs.recipe import Recipe, pettingzoo_module
from envs_c.registry import Action, Definition, Kwargs, Param, SpecError, env_path, read_spec_table

HERE = Path(__file__).resolve().parent
SPEC_SUFFIX = ".pyenv.toml"
ID_RE = re.compile(r"(gymnasium|pettingzoo):[A-Za-z0-9_][A-Za-z0-9_./:-]{0,52}")
SPEC_KEYS = ("id", "perf", "returns", "solved", "make", "train", "policy", "sweep")
GAME_SOLVED = 0.9
OPPONENT = Param(
    "opponent", "int", 0, 0, 1, "0: a random legal-move bot plays the other side; 1: both seats read actions"
)


def is_python_id(name: str) -> bool:
    return ":" in name


@dataclass(frozen=True)
class SpecFile:
    """A `*.pyenv.toml`: what shoal needs to know about a Python environment beyond its spaces."""

    path: Path
    env_id: str
    perf: str | None
    returns: tuple[float, float] | None
    solved: float | None
    make: Mapping[str, Any]
    defaults: Mapping[str, Any]
    canonical: str


@dataclass(frozen=True, kw_only=True)
class PyEnvDef(Definition):
    """A Python environment, shaped like registry.EnvDef where the rest of shoal reads one."""

    recipe: Recipe
    # Episode return at perf 0 and 1: given by a spec file, or (None, reward_threshold) where the random
    # policy's return is measured on first use (envs_c.pyenvs.baseline).
    returns: tuple[float | None, float] | None = None
    digest: str = ""

    def version(self) -> str:
        return self.digest


def parse_spec_file(path: Path) -> SpecFile:
    """Read one `*.pyenv.toml`; SpecError names the file and the key."""
    where = str(path)
    raw = read_spec_table(path)
    unknown = sorted(set(raw) - set(SPEC_KEYS))
    if unknown:
        raise SpecError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(SPEC_KEYS)}")
    env_id = raw.get("id")
    if not isinstance(env_id, str) or not ID_RE.fullmatch(env_id):
        raise SpecError(f"{where}: id = {env_id!r} should be 'gymnasium:<id>' or 'pettingzoo:<module>'")
    perf = raw.get("perf")
    if perf is not None and (not isinstance(perf, str) or not perf.strip()):
        raise SpecError(f"{where}: perf should describe what perf means, in words")
    returns = raw.get("returns")
    if returns is not None:
        if (
            not isinstance(returns, list)
            or len(returns) != 2
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in returns)
            or not all(math.isfinite(x) for x in returns)
            or returns[0] == returns[1]
        ):
            raise SpecError(f"{where}: returns should be [return at perf 0, return at perf 1], two numbers")
        returns = (float(returns[0]), float(returns[1]))
    solved = raw.get("solved")
    if solved is not None and (
        isinstance(solved, bool) or not isinstance(solved, int | float) or not 0 < solved <= 1
    ):
        raise SpecError(f"{where}: solved should be a perf in (0, 1]")
    make = raw.get("make", {})
    if not isinstance(make, dict):
        raise SpecError(f"{where}: [make] should be a table of constructor arguments")
    defaults: dict[str, Any] = {key: raw[key] for key in ("train", "policy", "sweep") if key in raw}
    semantic = {k: v for k, v in raw.items() if k not in defaults}
    return SpecFile(
        path=path.resolve(),
        env_id=env_id,
        perf=perf,
        returns=returns,
        solved=None if solved is None else float(solved),
        make=make,
        defaults=defaults,
        canonical=json.dumps(semantic, sort_keys=True, default=str),
    )


_parsed: dict[tuple, SpecFile | str] = {}


def _scan() -> list[tuple[Path, SpecFile | str]]:
    """Every `*.pyenv.toml`, shipped then on SHOAL_ENV_PATH, parsed or its error (cached by mtime, size)."""
    found = []
    for directory in [HERE / "specs", *env_path()]:
        try:
            paths = sorted(p for p in directory.iterdir() if p.name.endswith(SPEC_SUFFIX))
        except OSError:
            continue
        for path in paths:
            stat = path.stat()
            key = (str(path), stat.st_mtime_ns, stat.st_size)
            if key not in _parsed:
                try:
                    _parsed[key] = parse_spec_file(path)
                except SpecError as e:
                    _parsed[key] = str(e)
            found.append((path, _parsed[key]))
    return found


def spec_file_for(env_id: str) -> SpecFile | None:
    """The one spec file for `env_id`, if any; two are an error naming both."""
    mine = [f for _, f in _scan() if isinstance(f, SpecFile) and f.env_id == env_id]
    if len(mine) > 1:
        raise ValueError(
            f"{env_id} is described by two spec files: {' and '.join(str(f.path) for f in mine)}"
        )
    return mine[0] if mine else None


def spec_problems() -> dict[str, str]:
    """Spec files that do not parse, by file name, with the error (GET /envs lists them)."""
    return {path.name: f for path, f in _scan() if isinstance(f, str)}


def python_names() -> list[str]:
    """The Python environments to list: the allowlist's plain ids, and the allowed ids of spec files."""
    ids = set(allowlist.concrete_ids())
    ids |= {f.env_id for _, f in _scan() if isinstance(f, SpecFile) and allowlist.allowed(f.env_id)}
    return sorted(ids)


_resolved: dict[tuple, PyEnvDef] = {}


def resolve(env_id: str) -> PyEnvDef:
    """The definition of an allowed Python environment; ValueError says why not (malformed, not allowed,
    not installed, unsupported spaces, no way to compute perf)."""
    if not ID_RE.fullmatch(env_id):
        raise ValueError(
            f"unknown environment {env_id!r}: a Python environment is 'gymnasium:<Gymnasium id>' or "
            "'pettingzoo:<module>' (letters, digits and _ . / : -)"
        )
    if not allowlist.allowed(env_id):
        raise ValueError(
            f"{env_id} is not allowed on this deployment: SHOAL_PYTHON_ENVS ({allowlist.VARIABLE}="
            f"{','.join(allowlist.patterns())!r}) lists the Python environments that may be used"
        )
    spec = spec_file_for(env_id)
    key = (env_id, spec and (spec.path, spec.canonical, str(spec.defaults)))
    if key not in _resolved:
        try:
            _resolved[key] = _probe(env_id, spec)
        except ValueError:
            raise  # already says which environment and why
        except Exception as e:  # an import error, a constructor that raises: say which environment
            raise ValueError(f"{env_id}: cannot be constructed: {type(e).__name__}: {e}") from None
    return _resolved[key]


def _probe(env_id: str, spec: SpecFile | None) -> PyEnvDef:
    family_name = env_id.split(":", 1)[0]
    kwargs = tuple(sorted((spec.make if spec else {}).items()))
    probed = _construct(env_id, kwargs)
    flat = spaces.flatten_space(probed.obs_space)
    if not isinstance(flat, spaces.Box):
        raise ValueError(f"{env_id}: observation space {probed.obs_space} cannot be flattened into one array")
    game = probed.recipe.family == "game"
    perf, solved, returns = _perf_meaning(env_id, spec, game, probed.threshold)
    digest = hashlib.sha256()
    for part in (env_id, repr(kwargs), _version(probed.package), spec.canonical if spec else ""):
        digest.update(part.encode())
    for path in (probed.code, HERE / "adapters.py"):
        if path is not None:
            digest.update(Path(path).read_bytes())
    count = probed.agents
    return PyEnvDef(
        name=env_id,
        recipe=probed.recipe,
        obs_shape=flat.shape,
        obs_dtype=obs_dtype(flat).name,
        obs_low=float(np.min(flat.low)),
        obs_high=float(np.max(flat.high)),
        action=_action(env_id, probed.act_space),
        perf=perf,
        solved=solved,
        log_fields=GAME_LOG if game else SINGLE_LOG,
        params=(OPPONENT,) if game else (),
        agents_per_env=_seat_rows if game else (lambda kw: count),
        players=_seats if game else None,
        # A shipped spec file only adds defaults: the source is the package; a user's is its path.
        source=str(spec.path) if spec and spec.path.parent != HERE / "specs" else family_name,
        defaults=dict(spec.defaults) if spec else {},
        returns=returns,
        digest=digest.hexdigest()[:16],
    )


@dataclass(frozen=True)
class _Probed:
    """What one constructed copy of an environment tells: its spaces, agents, and where its code lives."""

    recipe: Recipe
    obs_space: Any
    act_space: Any
    agents: int
    threshold: float | None
    code: str | None
    package: str


def _construct(env_id: str, kwargs: tuple[tuple[str, Any], ...]) -> _Probed:
    family_name, target = env_id.split(":", 1)
    if family_name == "gymnasium":
        recipe = Recipe(env_id, "gymnasium", target, kwargs)
        env = recipe.construct()
        try:
            threshold = env.spec.reward_threshold if env.spec is not None else None
            code = inspect.getsourcefile(type(env.unwrapped))
            return _Probed(recipe, env.observation_space, env.action_space, 1, threshold, code, "gymnasium")
        finally:
            env.close()
    module = pettingzoo_module(target)
    family = "parallel" if hasattr(module, "parallel_env") else "game"
    recipe = Recipe(env_id, family, target, kwargs)
    env = recipe.construct()
    try:
        agents = list(env.possible_agents)
        obs_space, act_space = env.observation_space(agents[0]), env.action_space(agents[0])
        for other in agents[1:]:
            if env.observation_space(other) != obs_space or env.action_space(other) != act_space:
                raise ValueError(f"{env_id}: its agents' spaces differ; shoal needs one policy's shapes")
    finally:
        env.close()
    if family == "game" and (len(agents) != 2 or not isinstance(act_space, spaces.Discrete)):
        raise ValueError(f"{env_id}: a turn-based game needs two players and a discrete action")
    return _Probed(recipe, obs_space, act_space, len(agents), None, module.__file__, "pettingzoo")


def _perf_meaning(
    env_id: str, spec: SpecFile | None, game: bool, threshold: float | None
) -> tuple[str, float, tuple[float | None, float] | None]:
    """What perf means, the perf counted as solved, and the returns mapped to perf 0 and 1 (the low end
    None where a random policy's return is to be measured)."""
    returns: tuple[float | None, float] | None = None
    if game:
        perf = (
            "the learner's result: 1 win, 0.5 draw, 0 loss (against a random legal-move bot; seat 0's in "
            "mirror mode)"
        )
        solved = GAME_SOLVED
    elif spec is not None and spec.returns is not None:
        returns = spec.returns
        perf = spec.perf or f"episode return mapped linearly from {returns[0]:g} (0) to {returns[1]:g} (1)"
        solved = 1.0
    elif threshold is not None:
        returns = (None, float(threshold))
        perf = (
            f"episode return normalised between a random policy's (measured once, cached) and the "
            f"reward_threshold {threshold:g}"
        )
        solved = 1.0
    else:
        raise ValueError(
            f"{env_id} has no reward_threshold, so shoal cannot say what perf means: give the returns that "
            f"map to perf 0 and 1 in a spec file (*.pyenv.toml on SHOAL_ENV_PATH, see docs/envs.md)"
        )
    if spec is not None and spec.solved is not None:
        solved = spec.solved
    if spec is not None and spec.perf is not None and game:
        perf = spec.perf
    return perf, solved, returns


def _seat_rows(kw: Kwargs) -> int:
    return 2 if kw["opponent"] else 1


def _seats(kw: Kwargs) -> tuple[tuple[int, ...], ...]:
    """Mirror mode seats the first player in row 0 and the second in row 1; against the bot, row 0 is the
    learner."""
    return ((0,), (1,)) if kw["opponent"] else ((0,),)


def _action(env_id: str, space: spaces.Space) -> Action:
    if isinstance(space, spaces.Discrete):
        return Action("discrete", (int(space.n),))
    if isinstance(space, spaces.MultiDiscrete):
        return Action("multidiscrete", tuple(int(n) for n in space.nvec.reshape(-1)))
    if isinstance(space, spaces.MultiBinary):
        return Action("multidiscrete", (2,) * int(np.prod(space.shape)))
    if isinstance(space, spaces.Box) and np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)):
        size = int(np.prod(space.shape))
        return Action("continuous", low=float(space.low.min()), high=float(space.high.max()), size=size)
    raise ValueError(
        f"{env_id}: action space {space} is not supported (Discrete, MultiDiscrete, "
        "MultiBinary or a bounded Box)"
    )


def _version(package: str) -> str:
    try:
        return f"{package}=={importlib.metadata.version(package)} python {sys.version_info[:2]}"
    except importlib.metadata.PackageNotFoundError:
        return package
