"""Container health probes: `python -m services.common.probe api|worker --queue Q`; exit 0 when healthy.

Docker Compose healthchecks and Kubernetes exec probes run these inside the container they check, so they
use only what every image has (the standard library, Celery, SQLAlchemy) and never import torch.

- `api`: GET /healthz on this container (the API's own check of the database and the broker).
- `worker --queue Q`: finds this container's `shoal worker --queue Q` process and pings exactly that Celery
  node (`Q-<pid>@<hostname>`, the name `shoal worker` gives it) through the broker. A train worker runs
  its job in the solo pool, so it cannot answer a ping while it trains; it then counts as healthy when the
  database holds a running run owned by it (`<hostname>:<pid>`) with a fresh heartbeat.
"""

from __future__ import annotations

import argparse
import itertools
import socket
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

QUEUES = ("train", "sweeper", "elo")


def check_api(url: str, timeout: float) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200, f"{url}: {response.status}"
    except urllib.error.HTTPError as e:  # 503 names the failing dependency in its body
        return False, f"{url}: {e.code} {e.read()[:300].decode(errors='replace')}"
    except (urllib.error.URLError, OSError) as e:
        return False, f"{url}: {e}"


def worker_pids(queue: str, proc: Path = Path("/proc")) -> list[int]:
    """Processes here whose command line is `... shoal worker ... --queue QUEUE` (or `services.cli`)."""
    commands: dict[int, list[str]] = {}
    for entry in proc.glob("[0-9]*"):
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # the process ended while we looked
            continue
        for i, arg in enumerate(argv[:-1]):
            if (arg.endswith("/shoal") or arg in ("shoal", "services.cli")) and argv[i + 1] == "worker":
                rest = argv[i + 2 :]
                if any(a == "--queue" and b == queue for a, b in itertools.pairwise(rest)) or (
                    f"--queue={queue}" in rest
                ):
                    commands[int(entry.name)] = argv
                break
    # A prefork pool's children share their parent's command line; the node is the parent. Trainers that
    # `shoal worker --queue train --concurrency N` starts are nodes of their own, with a command of their own.
    return sorted(pid for pid, argv in commands.items() if commands.get(_parent(proc, pid) or -1) != argv)


def _parent(proc: Path, pid: int) -> int | None:
    try:  # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after its ")"
        return int((proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def busy_training(worker: str) -> str | None:
    """The running run that this train worker owns with a fresh heartbeat, if any."""
    from sqlalchemy import select

    from services.common.db import session_scope
    from services.common.models import Run, RunStatus
    from services.common.settings import get_settings

    cutoff = datetime.now(UTC) - timedelta(seconds=get_settings().heartbeat_timeout)
    with session_scope() as session:
        run_id = session.scalar(
            select(Run.id).where(
                Run.status == RunStatus.running,
                # An attempt's owner token is "<host:pid>/<random>" (services/trainer/tasks.py).
                Run.worker.startswith(f"{worker}/", autoescape=True),
                Run.heartbeat_at >= cutoff,
            )
        )
    return None if run_id is None else f"run {run_id}"


def check_worker(queue: str, timeout: float) -> tuple[bool, str]:
    pids = worker_pids(queue)
    if not pids:
        return False, f"no `shoal worker --queue {queue}` process in this container"
    from services.common.celery_app import app

    host = socket.gethostname()
    nodes = [f"{queue}-{pid}@{host}" for pid in pids]
    try:
        replies = app.control.ping(destination=nodes, timeout=timeout)
    except Exception as e:  # the broker is unreachable
        return False, f"broker: {type(e).__name__}: {e}"
    answered = {name for reply in replies for name in reply}
    if answered:
        return True, f"{', '.join(sorted(answered))} answered"
    if queue == "train":
        for pid in pids:
            try:
                run = busy_training(f"{host}:{pid}")
            except Exception as e:
                return False, f"{nodes} did not answer and the database check failed: {e}"
            if run:
                return True, f"{queue}-{pid}@{host} is training {run} (fresh heartbeat)"
    return False, f"{', '.join(nodes)} did not answer a ping within {timeout:g}s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.common.probe", description=__doc__)
    kinds = parser.add_subparsers(dest="kind", required=True)
    api = kinds.add_parser("api", help="GET /healthz on this container")
    api.add_argument("--url", default="http://127.0.0.1:8000/healthz")
    worker = kinds.add_parser("worker", help="ping this container's Celery worker")
    worker.add_argument("--queue", choices=QUEUES, required=True)
    for kind in (api, worker):
        kind.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer")
    args = parser.parse_args(argv)

    if args.kind == "api":
        ok, detail = check_api(args.url, args.timeout)
    else:
        ok, detail = check_worker(args.queue, args.timeout)
    print(("healthy: " if ok else "unhealthy: ") + detail)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
