"""What each C environment is, as plain data, and where environments are found.

An environment is a C header plus a spec file, `NAME.env.toml`, beside it: its configuration fields, log
fields, observation and action spaces, and what `perf` means. The built-in games are defined exactly like
a user's environment; they are simply found first, in this package's directory. Further directories come
from SHOAL_ENV_PATH (separated like PATH), read on every look-up so the API and every worker see the same
environments, and a spec file edited on disk is picked up without a restart.

Python environments (`gymnasium:CartPole-v1`, `pettingzoo:classic.connect_four_v3`) are named by an id with a
colon; `lookup` and `ENVS[id]` resolve them through envs_c.pyenvs (SHOAL_PYTHON_ENVS first) into a
definition that reads like an EnvDef. They are not listed when the catalog is iterated: ids are open-ended.

Stdlib only: the C driver generator imports this module as a plain file before anything is installed. The
cffi builder generates declarations from these specs and cffi then checks them against the C structs, so a
field that differs between C and spec fails the build with the compiler's message instead of corrupting
memory.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Kwargs = Mapping[str, Any]

HERE = Path(__file__).resolve().parent
SUFFIX = ".env.toml"
BUILT_IN = "built-in"
COMMON_LOG = ("perf", "score", "episode_return", "episode_length")
OBS_DTYPES = ("float32", "uint8", "int8")
# Training defaults a spec may carry, shaped like configs/<env>.toml; they are not part of the version.
DEFAULT_TABLES = ("train", "policy", "sweep")
NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
C_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True)
class Param:
    """One configuration field of an environment, written into its C struct before init."""

    name: str
    ctype: str  # "int" or "float": the C field type
    default: float
    low: float
    high: float
    doc: str
    # False for a setting that leaves the game's rules alone: reward shaping, the built-in bot's strength.
    # Checkpoints trained with different values still play each other, under the default.
    game: bool = True

    def coerce(self, env: str, value: Any) -> int | float:
        """Check a user value against type and bounds; errors name the environment and the field."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{env}.{self.name}: expected a number, got {value!r}")
        if self.ctype == "int" and float(value) != int(value):
            raise ValueError(f"{env}.{self.name}: expected an integer, got {value!r}")
        if not self.low <= value <= self.high:
            raise ValueError(f"{env}.{self.name}: {value!r} is outside [{self.low}, {self.high}]")
        return int(value) if self.ctype == "int" else float(value)


@dataclass(frozen=True)
class Action:
    """One agent's action space: kind is discrete (nvec has one entry), multidiscrete or continuous."""

    kind: str
    nvec: tuple[int, ...] = ()
    low: float = -1.0
    high: float = 1.0
    size: int = 1

    @property
    def width(self) -> int:
        """Columns of the action buffer per agent."""
        return len(self.nvec) if self.kind != "continuous" else self.size

    @property
    def dtype(self) -> str:
        return "float32" if self.kind == "continuous" else "int32"


@dataclass(frozen=True, kw_only=True)
class Definition:
    """What every environment definition, C (EnvDef) or Python (PyEnvDef), tells the rest of shoal; its
    settings are validated by name against its params."""

    name: str
    obs_shape: tuple[int, ...]
    obs_dtype: str
    obs_low: float
    obs_high: float
    action: Action
    perf: str
    solved: float
    log_fields: tuple[str, ...]
    params: tuple[Param, ...] = ()
    agents_per_env: Callable[[Kwargs], int] = field(default=lambda kw: 1)
    # For games: the agent indices within one environment that each player controls.
    players: Callable[[Kwargs], tuple[tuple[int, ...], ...]] | None = None
    # Where it was found: "built-in", or the path of its spec file.
    source: str = BUILT_IN
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def config(self, kwargs: Kwargs) -> dict[str, int | float]:
        """Defaults overlaid with validated user kwargs; unknown names are refused."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            raise ValueError(f"{self.name}: unknown setting {unknown[0]!r}; known: {sorted(known) or 'none'}")
        return {name: p.coerce(self.name, kwargs.get(name, p.default)) for name, p in known.items()}

    def game_config(self, kwargs: Kwargs) -> dict[str, int | float]:
        """The settings that define the game itself (the `game = false` ones left out), for deciding
        whether two agents played the same game; unknown names are refused."""
        config = self.config(kwargs)
        return {p.name: config[p.name] for p in self.params if p.game}


@dataclass(frozen=True, kw_only=True)
class EnvDef(Definition):
    """A C environment: its header, the struct and Log struct it defines, and where it was found."""

    header: str
    struct: str
    log_struct: str
    # The directory holding its header and spec.
    directory: Path = HERE
    # Headers besides env.h and `header` whose content is part of the environment (its own includes).
    includes: tuple[str, ...] = ()
    # The spec's semantic content (training defaults left out), hashed into the version.
    canonical: str = ""

    @property
    def sources(self) -> tuple[Path, ...]:
        """The files the compiled environment is made from, in a fixed order."""
        return (HERE / "env.h", *(self.directory / h for h in (self.header, *self.includes)))

    def version(self) -> str:
        """Hash of what the environment is: the contract header, its own headers and its spec. A checkpoint
        carries it, and one trained on another version is refused."""
        digest = hashlib.sha256()
        for path in self.sources:
            digest.update(path.read_bytes())
        digest.update(self.canonical.encode())
        return digest.hexdigest()[:16]


class SpecError(ValueError):
    """A spec file that cannot define an environment; the message names the file and the key."""


def read_spec_table(path: Path) -> dict[str, Any]:
    """The TOML table of a spec file (C or Python); SpecError names the file if it cannot be read."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SpecError(f"{path}: {e}") from None


def _take(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = ...):
    if key not in table:
        if default is ...:
            raise SpecError(f"{where}: missing key {key!r}")
        return default
    value = table.pop(key)
    number = kind in (float, (int, float))
    if (isinstance(value, bool) and kind is not bool) or (number and not isinstance(value, int | float)):
        raise SpecError(f"{where}: {key} = {value!r} is not a number")
    if not number and not isinstance(value, kind):
        raise SpecError(f"{where}: {key} = {value!r} should be a {getattr(kind, '__name__', kind)}")
    return value


def _done(table: dict[str, Any], where: str) -> None:
    if table:
        raise SpecError(f"{where}: unknown key {sorted(table)[0]!r}")


def _ident(value: str, where: str, pattern: re.Pattern = C_IDENT_RE) -> str:
    if not pattern.fullmatch(value):
        raise SpecError(f"{where}: {value!r} is not a valid name ({pattern.pattern})")
    return value


def _param(name: str, raw: Any, where: str) -> Param:
    where = f"{where} [params.{name}]"
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: should be a table")
    table = dict(raw)
    ctype = _take(table, "type", str, where)
    if ctype not in ("int", "float"):
        raise SpecError(f"{where}: type = {ctype!r} should be 'int' or 'float'")
    low, high = _take(table, "low", float, where), _take(table, "high", float, where)
    default = _take(table, "default", float, where)
    doc = _take(table, "doc", str, where, "")
    game = _take(table, "game", bool, where, True)
    _done(table, where)
    if not all(math.isfinite(x) for x in (low, high, default)) or not low <= default <= high:
        raise SpecError(f"{where}: needs finite low <= default <= high, got {low}, {default}, {high}")
    if ctype == "int" and any(float(x) != int(x) or abs(x) > 2**31 - 1 for x in (low, high, default)):
        raise SpecError(f"{where}: an int parameter needs int32 bounds and default")
    return Param(_ident(name, where), ctype, default, low, high, doc, game)


def _action(raw: Any, where: str) -> Action:
    where = f"{where} [action]"
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: missing or not a table")
    table = dict(raw)
    kind = _take(table, "kind", str, where)
    if kind == "discrete":
        n = _take(table, "n", int, where)
        out = Action("discrete", (n,))
    elif kind == "multidiscrete":
        nvec = _take(table, "nvec", list, where)
        if not nvec or not all(isinstance(n, int) and not isinstance(n, bool) for n in nvec):
            raise SpecError(f"{where}: nvec should be a non-empty list of integers")
        out = Action("multidiscrete", tuple(nvec))
    elif kind == "continuous":
        low, high = _take(table, "low", float, where), _take(table, "high", float, where)
        out = Action("continuous", low=float(low), high=float(high), size=_take(table, "size", int, where))
        if not (math.isfinite(low) and math.isfinite(high) and low < high) or not 1 <= out.size <= 4096:
            raise SpecError(f"{where}: needs finite low < high and 1 <= size <= 4096")
    else:
        raise SpecError(f"{where}: kind = {kind!r} should be discrete, multidiscrete or continuous")
    _done(table, where)
    if any(not 1 <= n <= 1 << 20 for n in out.nvec):
        raise SpecError(f"{where}: every action count must be in [1, {1 << 20}]")
    return out


def _agents(raw: Any, players: int, params: tuple[Param, ...], where: str):
    """agents: a number, or the name of an int parameter. A game (players = 2) seats its agents itself; its
    `agents`, if any, names the int parameter that gives the agents per seat (a team game's team size)."""
    by_name = {p.name: p for p in params}
    if players == 2:
        switch = by_name.get("opponent")
        team = by_name.get(raw) if isinstance(raw, str) else None
        if (
            switch is None
            or (switch.ctype, switch.low, switch.high) != ("int", 0, 1)
            or (raw is not None and (team is None or team.ctype != "int" or team.low < 1))
        ):
            raise SpecError(
                f"{where}: a two-player game (players = 2) needs an int parameter 'opponent' in [0, 1] "
                "(0: a built-in bot plays seat 1, 1: both seats read the action buffer), and 'agents' "
                "either absent (one agent per seat) or the name of an int parameter >= 1 (agents per seat)"
            )

        def per_seat(kw: Kwargs) -> int:
            return 1 if raw is None else int(kw[raw])

        def seats(kw: Kwargs) -> tuple[tuple[int, ...], ...]:
            n = per_seat(kw)
            return (tuple(range(n)), tuple(range(n, 2 * n))) if kw["opponent"] else (tuple(range(n)),)

        return (lambda kw: per_seat(kw) * (2 if kw["opponent"] else 1)), seats
    if players != 1:
        raise SpecError(f"{where}: players = {players!r}; 1, or 2 for a two-player game")
    if raw is None or (isinstance(raw, int) and not isinstance(raw, bool) and 1 <= raw <= 1 << 16):
        fixed = 1 if raw is None else raw
        return (lambda kw: fixed), None
    if isinstance(raw, str) and raw in by_name and by_name[raw].ctype == "int" and by_name[raw].low >= 1:
        return (lambda kw: int(kw[raw])), None
    raise SpecError(
        f"{where}: agents = {raw!r} should be a positive number or an int parameter's name (>= 1)"
    )


def _log_fields(raw: list, where: str) -> tuple[str, ...]:
    log_fields = tuple(raw)
    for key in log_fields:
        _ident(str(key), f"{where}: log field")
    if (
        log_fields[: len(COMMON_LOG)] != COMMON_LOG
        or log_fields[-1:] != ("n",)
        or len(set(log_fields)) != len(log_fields)
    ):
        raise SpecError(f"{where}: log must start with {list(COMMON_LOG)}, end with 'n' and not repeat")
    return log_fields


def _observation(obs: dict, where: str) -> tuple[tuple[int, ...], str, float, float]:
    """The [observation] table's shape, dtype, low and high, checked."""
    ow = f"{where} [observation]"
    shape = tuple(_take(obs, "shape", list, ow))
    dtype = _take(obs, "dtype", str, ow)
    low, high = float(_take(obs, "low", float, ow)), float(_take(obs, "high", float, ow))
    _done(obs, ow)
    if not shape or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape):
        raise SpecError(f"{ow}: shape should be a non-empty list of positive integers")
    if math.prod(shape) > 1 << 24 or dtype not in OBS_DTYPES or not low <= high:
        raise SpecError(f"{ow}: needs prod(shape) <= 2^24, dtype in {OBS_DTYPES} and low <= high")
    return shape, dtype, low, high


def parse_spec(path: Path, source: str | None = None) -> EnvDef:
    """Read and validate one `NAME.env.toml`; raises SpecError naming the file and the offending key."""
    name = path.name[: -len(SUFFIX)]
    where = str(path)
    raw = read_spec_table(path)
    _ident(name, f"{where}: environment name", NAME_RE)
    defaults = {key: raw.pop(key) for key in DEFAULT_TABLES if key in raw}
    canonical = json.dumps(raw, sort_keys=True, default=str)
    table = dict(raw)
    header = _take(table, "header", str, where, f"{name}.h")
    includes = tuple(_take(table, "includes", list, where, []))
    struct = _ident(_take(table, "struct", str, where), f"{where}: struct")
    log_struct = _ident(_take(table, "log_struct", str, where), f"{where}: log_struct")
    log_fields = _log_fields(_take(table, "log", list, where), where)
    perf = _take(table, "perf", str, where)
    solved = float(_take(table, "solved", float, where))
    if not 0 < solved <= 1 or not perf.strip():
        raise SpecError(f"{where}: needs a description in perf and 0 < solved <= 1")
    raw_params = _take(table, "params", dict, where, {})
    params = tuple(_param(key, value, where) for key, value in raw_params.items())
    agents, players = _agents(
        table.pop("agents", None), _take(table, "players", int, where, 1), params, where
    )
    shape, dtype, low, high = _observation(dict(_take(table, "observation", dict, where)), where)
    action = _action(table.pop("action", None), where)
    _done(table, where)
    for rel in (header, *includes):
        if not isinstance(rel, str) or Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise SpecError(f"{where}: header and includes must be paths inside {path.parent}")
    return EnvDef(
        name=name,
        header=header,
        struct=struct,
        log_struct=log_struct,
        log_fields=log_fields,
        obs_shape=shape,
        obs_dtype=dtype,
        obs_low=low,
        obs_high=high,
        action=action,
        perf=perf,
        solved=solved,
        params=params,
        agents_per_env=agents,
        players=players,
        directory=path.parent.resolve(),
        source=source or str(path.resolve()),
        includes=includes,
        canonical=canonical,
        defaults=defaults,
    )


def env_path() -> list[Path]:
    """The directories searched after the built-ins, from SHOAL_ENV_PATH."""
    return [Path(p).expanduser() for p in os.environ.get("SHOAL_ENV_PATH", "").split(os.pathsep) if p]


class Catalog(Mapping[str, EnvDef]):
    """Every valid environment by name: the built-ins, then each SHOAL_ENV_PATH directory.

    The listing is rebuilt when the path or a spec file changes (a directory scan and a stat per spec, cheap
    next to anything that looks an environment up). Specs that do not parse, and names defined twice,
    are kept out and reported in `problems`, so one broken file never hides the other environments.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._envs: dict[str, EnvDef] = {}
        self._problems: dict[str, str] = {}
        self._parsed: dict[tuple, EnvDef | str] = {}

    def _scan(self) -> list[tuple[Path, str | None, os.stat_result]]:
        found = []
        for directory, source in [(HERE, BUILT_IN), *((d, None) for d in env_path())]:
            try:
                entries = sorted(p for p in directory.iterdir() if p.name.endswith(SUFFIX))
            except OSError:
                continue  # a path entry that does not exist is not an error, as with PATH
            found += [(p, source, p.stat()) for p in entries]
        return found

    def _refresh(self) -> None:
        scan = self._scan()
        key = tuple((str(p), s.st_mtime_ns, s.st_size) for p, _, s in scan)
        if key == self._key:
            return
        envs: dict[str, EnvDef] = {}
        problems: dict[str, str] = {}
        where: dict[str, str] = {}
        for (path, source, _), file_key in zip(scan, key, strict=True):
            name = path.name[: -len(SUFFIX)]
            if file_key not in self._parsed:
                try:
                    self._parsed[file_key] = parse_spec(path, source)
                except SpecError as e:
                    self._parsed[file_key] = str(e)
            parsed = self._parsed[file_key]
            if name in where:
                problems[name] = f"{name} is defined twice: {where[name]} and {path.resolve()}"
                if where[name] != BUILT_IN:  # ambiguous between two user directories: neither is used
                    envs.pop(name, None)
                continue
            where[name] = BUILT_IN if source == BUILT_IN else str(path.resolve())
            if isinstance(parsed, str):
                problems[name] = parsed
            else:
                envs[name] = parsed
        self._parsed = {k: self._parsed[k] for k in key}
        self._envs, self._problems, self._key = envs, problems, key

    def __getitem__(self, name: str) -> EnvDef:
        if ":" in name:  # a Python environment's id: resolved (allowlist first) on demand, never listed
            try:
                return _python(name)
            except ValueError:
                raise KeyError(name) from None
        self._refresh()
        return self._envs[name]

    def __iter__(self) -> Iterator[str]:
        self._refresh()
        return iter(list(self._envs))

    def __len__(self) -> int:
        self._refresh()
        return len(self._envs)

    def problems(self) -> dict[str, str]:
        """Names that are on the path but unusable, with why: a spec that does not parse, a clash."""
        self._refresh()
        return dict(self._problems)


ENVS = Catalog()


def unknown_env(name: str) -> str:
    """What every caller says of a name that no environment on the path has."""
    return f"unknown environment {name!r}; known: {', '.join(sorted(ENVS))}"


def _python(name: str) -> EnvDef:
    # Imported here: this module must load as a plain file, before the package (and gymnasium) is there.
    from envs_c.pyenvs.definition import resolve

    return resolve(name)  # type: ignore[return-value]  # a PyEnvDef reads like an EnvDef


def lookup(name: str) -> EnvDef:
    """The environment called `name`; the ValueError says why not (unknown, broken spec, defined twice,
    a Python environment not on SHOAL_PYTHON_ENVS)."""
    if ":" in name:
        return _python(name)
    try:
        return ENVS[name]
    except KeyError:
        problem = ENVS.problems().get(name)
        if problem is not None:
            raise ValueError(problem) from None
        raise ValueError(unknown_env(name)) from None
