"""Make sure PostgreSQL and Redis answer on loopback before the tests run.

Starts them when they are installed but stopped; otherwise says what is missing. It never fails itself:
the tests decide (with CI=true a missing server fails them; elsewhere they are skipped with this reason).
"""

from __future__ import annotations

import glob
import shutil
import socket
import subprocess
import time

SERVERS = {
    "PostgreSQL": (5432, "apt-get install postgresql  (or set SHOAL_TEST_DATABASE_URL)"),
    "Redis": (6379, "apt-get install redis-server  (or set SHOAL_TEST_REDIS_URL)"),
}


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def start(name: str) -> None:
    if name == "PostgreSQL" and shutil.which("pg_ctlcluster"):
        for version in sorted(glob.glob("/etc/postgresql/*")):
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version.rsplit("/", 1)[1], "main", "start"],
                check=False,
            )
    elif name == "Redis" and shutil.which("redis-server"):
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            check=False,
        )


def main() -> None:
    for name, (port, hint) in SERVERS.items():
        if answers(port):
            print(f"{name}: answering on 127.0.0.1:{port}")
            continue
        start(name)
        for _ in range(20):
            if answers(port):
                break
            time.sleep(0.5)
        if answers(port):
            print(f"{name}: started on 127.0.0.1:{port}")
        else:
            print(
                f"{name}: NOT available on 127.0.0.1:{port}; integration tests needing it will fail under "
                f"CI=true and be skipped otherwise. To install: {hint}"
            )


if __name__ == "__main__":
    main()
