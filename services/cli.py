"""The `shoal` command: up, api, worker, train, replay, bench, migrate, token, env."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from services import env_cli
from services.common.settings import HOME, get_settings

QUEUES = ("train", "sweeper", "elo")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Every command, each with the function that runs it as its `run` default."""
    parser = argparse.ArgumentParser(prog="shoal", description="RL experiment platform")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_platform_commands(commands)
    _add_token_command(commands)
    _add_export_command(commands)
    _add_training_commands(commands)
    env = env_cli.add_parser(commands)
    env.set_defaults(run=lambda args: env_cli.run(args, env))
    return parser


def _add_platform_commands(commands: argparse._SubParsersAction) -> None:
    up = commands.add_parser("up", help="start the API and one worker per queue on this machine")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--demo", action="store_true", help="launch a cartpole run and follow it")
    up.set_defaults(run=cmd_up)

    api = commands.add_parser("api", help="serve the HTTP API and dashboard")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--quiet", action="store_true", help="no access-log line per request")
    api.add_argument(
        "--workers",
        type=_at_least_one,
        help="API processes on the one port (default: SHOAL_API_WORKERS, else 1)",
    )
    api.set_defaults(run=cmd_api)

    worker = commands.add_parser("worker", help="run a Celery worker for one queue")
    worker.add_argument("--queue", choices=QUEUES, required=True)
    worker.add_argument(
        "--concurrency",
        type=_at_least_one,
        help="tasks at once: trainer processes for train (default: SHOAL_TRAIN_WORKERS), else threads of "
        "the pool (default 1)",
    )
    worker.add_argument("--quiet", action="store_true", help="no banner, no root warning")
    worker.set_defaults(run=cmd_worker)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.set_defaults(run=lambda args: cmd_migrate())


def _add_token_command(commands: argparse._SubParsersAction) -> None:
    token = commands.add_parser("token", help="API tokens: create, list, revoke (on the database directly)")
    token_actions = token.add_subparsers(dest="action", required=True)
    token_create = token_actions.add_parser("create", help="a new token; its secret is printed once")
    token_create.add_argument("name", help="who or what holds it; the audit log names it")
    token_create.add_argument("--scope", choices=("read", "write", "admin"), default="write")
    token_actions.add_parser("list", help="every token, revoked ones too (never their secrets)")
    token_revoke = token_actions.add_parser("revoke", help="refuse a token from its next request on")
    token_revoke.add_argument("token", help="its id or name")
    token.set_defaults(run=lambda args: cmd_token(args, token))


def _add_export_command(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help="a run's metrics in another tool's format")
    export_kinds = export.add_subparsers(dest="kind", required=True)
    export_tb = export_kinds.add_parser(
        "tensorboard", help="TensorBoard event files, one directory per run (tensorboard --logdir DIR)"
    )
    export_tb.add_argument("run_ids", nargs="+", type=int, metavar="RUN_ID")
    export_tb.add_argument("dir", help="where run-<id>/ directories are written")
    export_tb.add_argument("--url", default=os.environ.get("SHOAL_URL", "http://127.0.0.1:8000"))
    export_tb.set_defaults(run=cmd_export_tensorboard)


def _add_training_commands(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train one environment here, no services needed")
    train.add_argument("env")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", type=Path, default=None, help="checkpoint directory")
    _add_config_options(train)
    train.set_defaults(run=lambda args: cmd_train(args, train))

    replay = commands.add_parser("replay", help="record a checkpoint playing, as a GIF")
    replay.add_argument(
        "checkpoint", type=Path, help="a checkpoint's .safetensors or .json file, or its stem"
    )
    replay.add_argument("--gif", type=Path, required=True, help="output file")
    replay.add_argument("--frames", type=int, default=300)
    replay.add_argument("--fps", type=float, default=30.0)
    replay.add_argument("--seed", type=int, default=0)
    replay.set_defaults(run=lambda args: cmd_replay(args, replay))

    bench = commands.add_parser("bench", help="benchmarks whose numbers go into BENCHMARKS.md")
    bench_kinds = bench.add_subparsers(dest="bench", required=True)
    bench_train = bench_kinds.add_parser("train", help="train every environment with its defaults")
    bench_train.add_argument("--envs", default="all", help="comma-separated names, or all")
    bench_train.add_argument(
        "--budget-seconds", type=float, default=300.0, help="wall-clock cap per environment"
    )
    bench_train.add_argument("--seed", type=int, default=1)
    bench_train.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None)
    bench_train.add_argument("--out", type=Path, default=Path("docs"), help="figure and CSV directory")
    bench_train.set_defaults(run=lambda args: cmd_bench_train(args, bench_train))


def cmd_migrate() -> int:
    from services.common.migrate import upgrade

    upgrade()
    print(f"database schema is up to date ({_redacted(get_settings().database_url)})")
    return 0


def cmd_token(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from services.common import tokens
    from services.common.db import session_scope
    from services.common.models import Scope

    with session_scope() as session:
        if args.action == "create":
            if not 1 <= len(args.name) <= 64:
                parser.error("name: 1 to 64 characters")
            token, secret = tokens.create(session, args.name, Scope(args.scope))
            print(f"token {token.id} ({token.name}, scope {token.scope}); its secret, shown only now:")
            print(secret)
        elif args.action == "list":
            print(f"{'id':>4}  {'scope':<6} {'created':<20} {'revoked':<20} name")
            for t in tokens.listing(session):
                revoked = t.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if t.revoked_at else "-"
                created = t.created_at.strftime("%Y-%m-%d %H:%M:%S")
                print(f"{t.id:>4}  {t.scope:<6} {created:<20} {revoked:<20} {t.name}")
        else:
            try:
                token = tokens.find(session, args.token)
            except LookupError as e:
                parser.error(f"token: {e}")
            tokens.revoke(session, token)
            print(f"token {token.id} ({token.name}) is revoked")
    return 0


def cmd_export_tensorboard(args: argparse.Namespace) -> int:
    from services.client import Client, ShoalError
    from services.tensorboard import export_runs

    try:
        done = export_runs(Client(args.url), args.run_ids, args.dir)
    except ShoalError as e:
        print(f"shoal export: {e}", file=sys.stderr)
        return 1
    for run_id, path, events in done:
        print(f"run {run_id}: {events:,} steps -> {path}")
    print(f"view them with: tensorboard --logdir {args.dir}")
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    # `shoal up` runs it quiet: an open dashboard polls every 2 s, a line each would flood the terminal.
    from services.common.settings import get_settings

    workers = args.workers if args.workers is not None else get_settings().api_workers
    uvicorn.run(
        "services.api.app:app",
        host=args.host,
        port=args.port,
        log_level="info",
        access_log=not args.quiet,
        workers=workers,
    )
    return 0


def visible_gpus() -> list[str]:
    """The GPUs this machine's processes may use, as CUDA_VISIBLE_DEVICES names them (asked of nvidia-smi,
    not torch: a supervisor that imports torch would hold a CUDA context of its own)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


@dataclass(frozen=True)
class TrainerSlot:
    """What one of several trainer processes on a machine may use: the GPU it is pinned to (None: every
    GPU it sees) and its share of the CPU cores (None: all), which its environment threads then fill."""

    gpu: str | None
    cpus: frozenset[int] | None


def trainer_slots(count: int, gpus: list[str], cpus: list[int]) -> list[TrainerSlot]:
    """`count` trainers: round-robin over several GPUs (on one they share it), and disjoint runs of
    cores, so that trainers sharing a machine do not oversubscribe its CPUs with environment threads."""
    share = len(cpus) // count if count > 1 else 0
    return [
        TrainerSlot(
            gpus[i % len(gpus)] if len(gpus) > 1 else None,
            frozenset(sorted(cpus)[i * share : (i + 1) * share]) if share else None,
        )
        for i in range(count)
    ]


@contextmanager
def gpu_sharing(count: int, env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The environment `count` trainers start with. With SHOAL_GPU_MPS and several trainers, an NVIDIA MPS
    control daemon of their own runs while they do (its pipe and log in a private directory, so it neither
    needs root nor meets another deployment's daemon), and their kernels share the GPU's SMs at once rather
    than in turns: small policies leave most SMs idle, and time-slicing then only adds context switches."""
    if count < 2 or not get_settings().gpu_mps:
        yield env
        return
    control = shutil.which("nvidia-cuda-mps-control")
    if control is None:
        raise SystemExit(
            "SHOAL_GPU_MPS is set but nvidia-cuda-mps-control is not on PATH: it comes with NVIDIA's driver "
            "utilities; install them or unset SHOAL_GPU_MPS"
        )
    root = Path(tempfile.mkdtemp(prefix="shoal-mps-"))
    shared = {
        **env,
        "CUDA_MPS_PIPE_DIRECTORY": str(root / "pipe"),
        "CUDA_MPS_LOG_DIRECTORY": str(root / "log"),
    }
    for folder in ("pipe", "log"):
        (root / folder).mkdir()
    started = subprocess.run([control, "-d"], env=shared, capture_output=True, text=True, timeout=60)
    if started.returncode:
        shutil.rmtree(root, ignore_errors=True)
        raise SystemExit(
            f"SHOAL_GPU_MPS: `{control} -d` failed: {(started.stderr or started.stdout).strip()}"
        )
    try:
        yield shared
    finally:
        subprocess.run([control], input="quit\n", env=shared, capture_output=True, text=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _start_trainers(count: int, quiet: bool, env: dict[str, str]) -> list[subprocess.Popen]:
    command = [sys.executable, "-m", "services.cli", "worker", "--queue", "train", "--concurrency", "1"]
    command += ["--quiet"] if quiet else []
    # One trainer takes the machine as it is: no GPU query or core split at start-up.
    gpus = visible_gpus() if count > 1 else []
    cpus = sorted(os.sched_getaffinity(0)) if count > 1 and hasattr(os, "sched_getaffinity") else []
    children = []
    for slot in trainer_slots(count, gpus, cpus):
        child = subprocess.Popen(
            command, env=env if slot.gpu is None else {**env, "CUDA_VISIBLE_DEVICES": slot.gpu}
        )
        if slot.cpus:
            # Before the trainer starts its environment threads, which inherit the set.
            os.sched_setaffinity(child.pid, slot.cpus)
        children.append(child)
    return children


def _supervise(
    children: list[subprocess.Popen], first: Callable[[], None] | None = None, grace: float | None = 20
) -> int:
    """Run `first`, then wait until one child exits (1) or this process is asked to stop (0); then stop
    them all, also when `first` fails, killing what is left after `grace` seconds (None: wait for them)."""

    def stop(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        if first is not None:
            first()
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("a shoal process exited; stopping the others", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = None if grace is None else time.monotonic() + grace
        for child in children:
            try:
                child.wait(timeout=None if deadline is None else max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()


def cmd_worker(args: argparse.Namespace) -> int:
    if args.queue == "train":
        count = args.concurrency or get_settings().train_workers
        if count > 1:
            # One run per process keeps a run's CUDA context, memory and failure its own: N trainers
            # share a GPU as N processes, each with the solo pool below.
            # Stopped (SIGTERM), each trainer checkpoints and requeues its run, for as long as the
            # orchestrator's grace period allows: nothing here cuts that short.
            with gpu_sharing(count, dict(os.environ)) as env:
                return _supervise(_start_trainers(count, args.quiet, env), grace=None)
    import importlib

    from services.common import workers  # noqa: F401  (its worker_ready hook starts the liveness beat)
    from services.common.celery_app import QUEUE_MODULES, app

    for module in QUEUE_MODULES[args.queue]:
        importlib.import_module(module)
    if args.queue == "train":
        import torch

        if torch.cuda.is_available():
            from services.trainer.warmup import warm_up

            warm_up("cuda")
    # Training runs one job per process (per GPU); the solo pool also makes a killed worker lose its job
    # visibly, which the reaper then requeues.
    pool = ["--pool", "solo"] if args.queue == "train" else ["--concurrency", str(args.concurrency or 1)]
    quiet = []
    if args.quiet:
        import warnings

        from celery.exceptions import SecurityWarning

        # One machine, one user (often root in a container): the banner and the root warning, three times
        # over, would bury the URLs `shoal up` prints.
        warnings.filterwarnings("ignore", category=SecurityWarning)
        quiet = ["--quiet"]
    app.worker_main(
        [
            *quiet,
            "worker",
            "-Q",
            args.queue,
            "-n",
            f"{args.queue}-{os.getpid()}@%h",
            "--loglevel",
            "INFO",
            *pool,
        ]
    )
    return 0


# ---- shoal up ---------------------------------------------------------------------------------------------


def _token() -> str:
    settings = get_settings()
    if settings.api_token:
        return settings.api_token
    path = HOME / "api_token"
    if not path.exists():
        HOME.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def cmd_up(args: argparse.Namespace) -> int:
    token = _token()
    env = {**os.environ, "SHOAL_API_TOKEN": token, "PYTHONUNBUFFERED": "1"}
    cmd_migrate()
    shoal = [sys.executable, "-m", "services.cli"]
    api = [*shoal, "api", "--host", args.host, "--port", str(args.port), "--quiet"]
    base = f"http://{args.host}:{args.port}"
    trainers = get_settings().train_workers
    with gpu_sharing(trainers, env) as trainer_env:
        children = [subprocess.Popen(api, env=env)]
        children += _start_trainers(trainers, True, trainer_env)
        children += [
            subprocess.Popen([*shoal, "worker", "--queue", q, "--quiet"], env=env)
            for q in QUEUES
            if q != "train"
        ]

        def ready() -> None:
            _wait_healthy(base, children)
            print(
                f"\nshoal is up.\n  dashboard: {base}/\n  API docs:  {base}/docs\n  token:     {token}"
                f"  (also in {HOME / 'api_token'})\nCtrl-C stops everything.\n",
                flush=True,
            )
            if args.demo:
                _demo(base, token)

        return _supervise(children, ready)


def _request(url: str, token: str | None = None, body: dict | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _wait_healthy(base: str, children: list[subprocess.Popen], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            raise SystemExit("a shoal process exited during start-up; see its output above")
        try:
            # 200 ("ok", or "degraded" while the workers start up): the API serves.
            if _request(f"{base}/healthz")["status"] in ("ok", "degraded"):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"the API did not become healthy within {timeout:.0f}s")


def _demo(base: str, token: str) -> None:
    run = _request(f"{base}/runs", token, {"env": "cartpole", "tags": ["demo"]})
    print(f"demo: cartpole run {run['id']} queued; follow it at {base}/#/runs/{run['id']}", flush=True)
    while True:
        time.sleep(2)
        run = _request(f"{base}/runs/{run['id']}")
        # The last batch may overshoot the target by part of a rollout: never print more than 100%.
        done = min(1.0, run["progress_steps"] / max(1, run["total_timesteps"]))
        print(
            f"demo: run {run['id']} {run['status']:<9} {done:6.1%} of {run['total_timesteps']:,} steps",
            flush=True,
        )
        if run["status"] in ("succeeded", "failed", "cancelled"):
            print(
                f"demo: finished {run['status']}: final perf {run['final_score']} "
                f"in {run['cost_seconds'] or 0:.1f}s {run['failure_reason'] or ''}",
                flush=True,
            )
            return


# ---- shoal train ------------------------------------------------------------------------------------------


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per field of the train and policy sections, e.g. --learning-rate, --hidden-size."""
    from services.common.config import PolicyConfig, TrainConfig

    for section, model in (("train", TrainConfig), ("policy", PolicyConfig)):
        group = parser.add_argument_group(section)
        for name, field in model.model_fields.items():
            option = "--" + name.replace("_", "-")
            dest = f"{section}.{name}"
            annotation = field.annotation
            if annotation is bool:
                group.add_argument(option, dest=dest, action=argparse.BooleanOptionalAction, default=None)
                continue
            choices = get_args(annotation) if get_origin(annotation) is Literal else None
            kind = int if annotation is int else float if annotation in (float, float | None) else str
            group.add_argument(
                option,
                dest=dest,
                type=kind,
                choices=choices,
                default=None,
                metavar=name.upper(),
                help=field.description,
            )
    parser.add_argument(
        "--env-config",
        type=json.loads,
        default=None,
        metavar="JSON",
        help="environment settings, e.g. '{\"max_steps\": 200}'",
    )


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dest, value in vars(args).items():
        if "." in dest and value is not None:
            section, name = dest.split(".", 1)
            out.setdefault(section, {})[name] = value
    if args.env_config:
        out["env"] = args.env_config
    return out


def cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from services.common.config import ConfigError, UnknownEnv, resolve

    try:
        config = resolve(args.env, _overrides(args))
    except UnknownEnv as e:
        parser.error(e.message)
    except ConfigError as e:
        option = (
            "--env-config" if e.field.startswith("env") else "--" + e.field.split(".")[-1].replace("_", "-")
        )
        parser.error(f"{option}: {e.message}")

    from envs_c.build import EnvBuildError
    from services.trainer.loop import train
    from services.trainer.progress import ProgressTable

    out = args.out or HOME / "local" / f"{args.env}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        result = train(args.env, config, args.seed, out, ProgressTable(args.env))
    except EnvBuildError as e:  # the compiler's message, whole: `shoal env check` shows it too
        print(e, file=sys.stderr)
        return 1
    print(
        f"\n{result.status}: {result.steps:,} steps in {result.seconds:.1f}s"
        + (
            f", eval perf {result.final_score:.3f} (score {result.final_raw_score:.2f})"
            if result.final_score is not None
            else ""
        )
        + (f" ({result.failure_reason})" if result.failure_reason else "")
        + (f"\ncheckpoint: {result.last_checkpoint}" if result.last_checkpoint else "")
    )
    return 0 if result.status == "succeeded" else 1


def cmd_replay(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from services.trainer.checkpoint import CheckpointError
    from services.trainer.replay import replay_gif

    if args.frames < 1:
        parser.error("--frames: must be at least 1")
    try:
        path = replay_gif(args.checkpoint, args.gif, args.frames, args.fps, args.seed)
    except (CheckpointError, ValueError) as e:
        parser.error(f"checkpoint: {e}")
    print(f"wrote {path} ({args.frames} frames)")
    return 0


def cmd_bench_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import tempfile

    import envs_c
    from envs_c.registry import unknown_env
    from services.trainer.bench import markdown, run_env, write_outputs

    names = envs_c.names() if args.envs == "all" else [n for n in args.envs.split(",") if n]
    unknown = sorted(set(names) - set(envs_c.names()))
    if unknown:
        parser.error(f"--envs: {unknown_env(unknown[0])}")
    overrides = {"train": {"device": args.device}} if args.device else {}
    results = []
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as scratch:
        for name in names:
            result = run_env(name, args.seed, args.budget_seconds, Path(scratch), overrides)
            print(
                f"{name}: solved after {result.seconds_to_solved}s, final eval perf {result.final_perf}, "
                f"median SPS {result.median_sps:,.0f}",
                flush=True,
            )
            results.append(result)
    write_outputs(results, args.budget_seconds, args.out)
    print(markdown(results))
    written = ", ".join(
        str(args.out / name) for name in ("bench_train.png", "bench_train.csv", "bench_train_curves.csv")
    )
    print(f"\nwrote {written}")
    return 0


def _redacted(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


if __name__ == "__main__":
    sys.exit(main())
