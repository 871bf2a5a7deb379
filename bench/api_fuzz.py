"""Fuzzing the live API from its own OpenAPI document (issue 20's goal: 0 server errors over at least 50,000
requests across schemathesis' coverage, fuzzing and stateful phases), on real PostgreSQL and Redis.

    .venv/bin/python bench/api_fuzz.py [--max-examples 100] [--seeds 5] [--workers 2]

Creates a fresh PostgreSQL database and a Redis index of its own (as bench/api_load.py does), starts
`shoal api` with its access log on, and runs `schemathesis run` as an anonymous client, with a read token
and with the admin token, --seeds times each (schemathesis stops an operation once its examples run out,
so more seeds reach more requests than more examples do). Every run covers every phase with the checks
`not_a_server_error` and `status_code_conformance` (every status answered is documented). Requests are
counted from the API's own access log: what the server answered, whatever schemathesis retried or skipped.
Prints a JSON line per run (requests, status codes, server errors, exit code), then the totals.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_load import REDIS_URL, ROOT, TOKEN, create_database, drop_database, start_api

ACCESS = re.compile(r'"[A-Z]+ \S+ HTTP/[\d.]+" (\d{3})')


def read_token(url: str) -> str:
    created = subprocess.run(
        [sys.executable, "-m", "services.cli", "token", "create", "fuzz-read", "--scope", "read"],
        env={**os.environ, "SHOAL_DATABASE_URL": url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return created.stdout.strip().splitlines()[-1]


def statuses(log: Path) -> Counter:
    return Counter(m.group(1) for m in ACCESS.finditer(log.read_text(errors="replace")))


def failures(output: str) -> list[str]:
    """What schemathesis reports under FAILURES: each failing operation, check and reproduction."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if "FAILURES" in line), len(lines))
    end = next((i for i, line in enumerate(lines) if "SUMMARY" in line and i > start), len(lines))
    return [line for line in lines[start:end] if line.strip()][:200]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=100, help="schemathesis' examples per operation")
    parser.add_argument("--workers", type=int, default=2, help="schemathesis' concurrent workers")
    parser.add_argument("--seeds", type=int, default=5, help="runs per identity, seeds 0..N-1")
    args = parser.parse_args()
    redis.Redis.from_url(REDIS_URL).flushdb()
    name, url = create_database()
    api = None
    try:
        with tempfile.TemporaryDirectory(prefix="shoal-fuzz-") as scratch:
            workdir = Path(scratch)
            api, base = start_api(url, workdir, workers=1, cache_seconds=1.0, quiet=False)
            identities = {"anonymous": None, "read": read_token(url), "admin": TOKEN}
            result: dict = {"max_examples": args.max_examples, "runs": {}}
            log = workdir / "api.log"
            for (who, token), seed in itertools.product(identities.items(), range(args.seeds)):
                before = statuses(log)
                started = time.monotonic()
                command = [
                    sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json",
                    "--phases", "examples,coverage,fuzzing,stateful",
                    "--checks", "not_a_server_error,status_code_conformance",
                    "--max-examples", str(args.max_examples),
                    "--workers", str(args.workers),
                    "--seed", str(seed),
                    "--continue-on-failure",
                    "--request-timeout", "30",
                ]  # fmt: skip
                if token:
                    command += ["--header", f"Authorization: Bearer {token}"]
                done = subprocess.run(command, capture_output=True, text=True, cwd=workdir)
                codes = statuses(log) - before
                result["runs"][f"{who} seed {seed}"] = {
                    "exit": done.returncode,
                    "seconds": round(time.monotonic() - started, 1),
                    "requests": sum(codes.values()),
                    "server_errors": sum(n for code, n in codes.items() if code.startswith("5")),
                    "codes": dict(sorted(codes.items())),
                    "failures": failures(done.stdout),
                }
                run = result["runs"][f"{who} seed {seed}"]
                print(json.dumps({f"{who} seed {seed}": {k: v for k, v in run.items() if k != "failures"}}))
            runs = result["runs"].values()
            result["requests"] = sum(r["requests"] for r in runs)
            result["server_errors"] = sum(r["server_errors"] for r in runs)
            print(json.dumps(result, indent=1))
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=30)
        drop_database(name)
        redis.Redis.from_url(REDIS_URL).flushdb()


if __name__ == "__main__":
    main()
