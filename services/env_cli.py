"""`shoal env ...`: scaffold, check, list and build environments (built-in and on SHOAL_ENV_PATH)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    env = commands.add_parser("env", help="create, check, list and build environments")
    kinds = env.add_subparsers(dest="env_command", required=True)

    new = kinds.add_parser("new", help="scaffold a working C environment: NAME.h and NAME.env.toml")
    new.add_argument("name")
    new.add_argument(
        "--players",
        type=int,
        choices=(1, 2),
        default=1,
        help="1: a single-agent game (walk to a goal); 2: a two-player game (one-pile Nim) with a scripted "
        "bot in seat 1, ready for self-play and Elo ratings",
    )
    new.add_argument(
        "--dir", type=Path, default=None, help="where to write (default: first SHOAL_ENV_PATH entry, or .)"
    )

    check = kinds.add_parser("check", help="run the environment contract checks and print a pass/fail table")
    check.add_argument("name")
    check.add_argument(
        "--set", dest="settings", action="append", default=[], metavar="KEY=VALUE", help="an env setting"
    )
    check.add_argument("--asan-steps", type=int, default=100_000, help="steps of the sanitizer build")

    kinds.add_parser("list", help="every environment with its source, and the ones that cannot be used")

    build = kinds.add_parser("build", help="compile into the cache now (default: every environment)")
    build.add_argument("names", nargs="*")
    return env


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.env_command == "new":
        return _new(args, parser)
    if args.env_command == "check":
        return _check(args, parser)
    if args.env_command == "list":
        return _list()
    return _build(args)


def _new(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from envs_c.registry import ENVS, env_path
    from envs_c.scaffold import scaffold

    if args.name in ENVS or args.name in ENVS.problems():
        parser.error(f"an environment called {args.name!r} already exists: pick another name")
    directory = args.dir or (env_path() or [Path.cwd()])[0]
    try:
        files = scaffold(args.name, directory, args.players)
    except (ValueError, FileExistsError) as e:
        parser.error(str(e))
    for path in files:
        print(f"wrote {path}")
    on_path = any(directory.resolve() == d.resolve() for d in env_path())
    if not on_path:
        joined = os.pathsep.join([str(directory.resolve()), *map(str, env_path())])
        print(f"add its directory to the path: export SHOAL_ENV_PATH={joined}")
    print(f"then: shoal env check {args.name} && shoal train {args.name}")
    return 0


def _settings(pairs: list[str], parser: argparse.ArgumentParser) -> dict[str, float]:
    out: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or number is None:
            parser.error(f"--set: expected KEY=NUMBER, got {pair!r}")
        out[key] = int(number) if number.is_integer() else number
    return out


def _check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from envs_c import checks

    try:
        outcomes = checks.run(args.name, _settings(args.settings, parser), asan_steps=args.asan_steps)
    except ValueError as e:  # unknown environment, a broken spec, a bad setting
        print(f"{args.name}: FAIL\n{e}")
        return 1
    print(checks.table(outcomes))
    failed = [o.check for o in outcomes if o.ok is not True]
    print(f"\n{args.name}: " + (f"FAIL ({', '.join(failed)})" if failed else "all checks pass"))
    return 1 if failed else 0


def _list() -> int:
    import envs_c
    from envs_c.registry import ENVS

    for name in envs_c.names():
        print(f"{name:<16} {ENVS[name].source}")
    for name, problem in sorted(ENVS.problems().items()):
        print(f"{name:<16} UNUSABLE: {problem}")
    return 0


def _build(args: argparse.Namespace) -> int:
    import envs_c
    from envs_c.build import EnvBuildError, cache_dir, load

    status = 0
    for name in args.names or envs_c.names():
        started = time.perf_counter()
        try:
            load(name)
        except (EnvBuildError, ValueError) as e:
            print(f"{name}: FAILED\n{e}")
            status = 1
            continue
        print(f"{name}: ready in {time.perf_counter() - started:.2f}s")
    print(f"cache: {cache_dir()}")
    return status
