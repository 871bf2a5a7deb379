"""The API under concurrent load: issue 20's mix of reads and writes, on real PostgreSQL and Redis.

    .venv/bin/python bench/api_load.py [--clients 200] [--seconds 30] [--workers 2] [--cache-seconds 1]

Creates a fresh PostgreSQL database (SHOAL_BENCH_DATABASE_URL names the server's admin database) and uses
a Redis index of its own (SHOAL_BENCH_REDIS_URL, flushed before and after), starts `shoal api` with
`--workers` processes, and fills it: 60 runs through POST /runs, one run with a 1M-point `env/perf`
series (bulk-loaded as bench/dashboard_bench.py does), and a pong leaderboard fitted from 400 games. Then
`--clients` concurrent clients each loop over the mix for `--seconds`:

- GET /runs (the runs table's first page, 50 runs);
- GET /runs/{id}/metrics of the 1M-point series, downsampled as the run page asks (944 points);
- GET /leaderboard?env=pong;
- every `--write-every`th request (10 by default) a write: POST /runs, then POST /runs/{id}/cancel (so
  the queued cap never binds).

One more client polls /healthz once a second. Prints latency percentiles and status codes per request kind
as JSON. Reads are anonymous, as the dashboard's are; `--cache-seconds 0` turns the API's read cache off.
The one bench token may write at 1,000 per second (SHOAL_WRITE_RATE): the goal is about reads under a mix
of writes, not about the rate limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import redis
from sqlalchemy import create_engine, insert, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from dashboard_bench import ADMIN_URL, PAGE_POINTS, launch_api, load_run  # noqa: E402

REDIS_URL = os.environ.get("SHOAL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
TOKEN = "bench"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---- setup ----------------------------------------------------------------------------------------------


def create_database() -> tuple[str, str]:
    name = f"shoal_load_{uuid.uuid4().hex[:8]}"
    with create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT").connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    env = {**os.environ, "SHOAL_DATABASE_URL": url}
    subprocess.run([sys.executable, "-m", "services.cli", "migrate"], env=env, check=True, cwd=ROOT)
    return name, url


def drop_database(name: str) -> None:
    with create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT").connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def start_api(
    url: str, workdir: Path, workers: int, cache_seconds: float, quiet: bool = True
) -> tuple[subprocess.Popen, str]:
    env = {
        **os.environ,
        "SHOAL_DATABASE_URL": url,
        "SHOAL_BROKER_URL": REDIS_URL,
        "SHOAL_API_TOKEN": TOKEN,
        "SHOAL_WRITE_RATE": "1000",
        "SHOAL_WRITE_BURST": "1000",
        "SHOAL_API_READ_CACHE_SECONDS": str(cache_seconds),
        "SHOAL_ARTIFACTS": str(workdir / "artifacts"),
        "PYTHONPATH": str(ROOT),
    }
    return launch_api(env, workdir, "/healthz", *(["--quiet"] if quiet else []), "--workers", str(workers))


def seed(base: str, url: str) -> int:
    """Runs, a 1M-point series and a leaderboard; the id of the run with the big series."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=base, timeout=30, headers=headers) as http:
        ids = [
            http.post("/runs", json={"env": "cartpole", "name": f"seed {i}", "tags": [f"t{i % 5}"]})
            .raise_for_status()
            .json()["id"]
            for i in range(60)
        ]
    big = ids[-1]
    load_run(url, big, {"env/perf": 1_000_000, "env/score": 10_000, "SPS": 10_000}, np.random.default_rng(0))
    seed_leaderboard(url)
    return big


def seed_leaderboard(url: str) -> None:
    os.environ["SHOAL_DATABASE_URL"] = url
    import envs_c
    from services.common.db import session_scope
    from services.common.models import Match
    from services.elo import store
    from services.elo.match import code_version

    rng = np.random.default_rng(1)
    with session_scope(url) as session:
        random_player, scripted = (
            store.anchor(session, "pong", "random"),
            store.anchor(session, "pong", "scripted"),
        )
        now = datetime.now(UTC)
        rows = [
            {
                "env": "pong",
                "player_a": scripted.id,
                "player_b": random_player.id,
                "seat_a": i % 2,
                "seed": i,
                "score_a": float(rng.random() < 0.9),
                "steps": 500,
                "timeout": False,
                "env_version": envs_c.version("pong"),
                "code_version": code_version(),
                "batch_id": None,
                "created_at": now,
            }
            for i in range(400)
        ]
        session.execute(insert(Match), rows)
        session.flush()
        store.refit(session, "pong", bootstrap=200)


# ---- load -----------------------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams. httpx costs a few milliseconds of CPU a
    request, so 200 httpx clients on the API's own two cores measure mostly the client."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: dict | None = None, token: str = "") -> tuple:
        """(status, JSON body or None)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        payload = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", f"Content-Length: {len(payload)}"]
        if body is not None:
            head.append("Content-Type: application/json")
        if token:
            head.append(f"Authorization: Bearer {token}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        try:
            status_line, *lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines if ": " in line)
            if headers.get("transfer-encoding") == "chunked":
                content = b""
                while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
                    content += (await self.reader.readexactly(size + 2))[:-2]
                await self.reader.readuntil(b"\r\n")
            else:
                content = await self.reader.readexactly(int(headers.get("content-length", 0)))
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            raise
        if headers.get("connection") == "close":
            await self.close()
        status = int(status_line.split(" ", 2)[1])
        is_json = headers.get("content-type", "").startswith("application/json")
        return status, json.loads(content) if is_json and method == "POST" else None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def client(base: str, big: int, write_every: int, until: float, out: dict, codes: dict) -> None:
    reads = [
        ("runs", "/runs"),
        ("metrics", f"/runs/{big}/metrics?keys=env/perf&max_points={PAGE_POINTS}"),
        ("leaderboard", "/leaderboard?env=pong"),
    ]
    host, port = base.removeprefix("http://").split(":")
    connection = Connection(host, int(port))
    i = 0
    while time.monotonic() < until:
        i += 1
        began = time.monotonic()
        try:
            if write_every and i % write_every == 0:
                kind = "write"
                status, created = await connection.request("POST", "/runs", {"env": "cartpole"}, TOKEN)
                if status == 201:
                    path = f"/runs/{created['id']}/cancel"
                    status, _ = await connection.request("POST", path, {}, TOKEN)
            else:
                kind, path = reads[i % len(reads)]
                status, _ = await connection.request("GET", path)
        except (OSError, asyncio.IncompleteReadError) as e:
            status = type(e).__name__
        out[kind].append(time.monotonic() - began)
        codes[kind][status] += 1
    await connection.close()


async def health(base: str, until: float, out: dict, codes: dict) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        while time.monotonic() < until:
            began = time.monotonic()
            try:
                status = (await http.get("/healthz")).status_code
            except httpx.HTTPError as e:
                status = type(e).__name__
            out["healthz"].append(time.monotonic() - began)
            codes["healthz"][status] += 1
            await asyncio.sleep(1.0)


async def load(base: str, big: int, clients: int, seconds: float, write_every: int) -> dict:
    latencies: dict[str, list[float]] = defaultdict(list)
    codes: dict[str, Counter] = defaultdict(Counter)
    until = time.monotonic() + seconds
    await asyncio.gather(
        *(client(base, big, write_every, until, latencies, codes) for _ in range(clients)),
        health(base, until, latencies, codes),
    )
    reads = [v for k in ("runs", "metrics", "leaderboard") for v in latencies[k]]
    summary = {
        kind: {
            "requests": len(values),
            "codes": {str(c): n for c, n in codes[kind].items()},
            "p50_ms": round(1000 * percentile(values, 0.5), 1),
            "p95_ms": round(1000 * percentile(values, 0.95), 1),
            "max_ms": round(1000 * max(values, default=float("nan")), 1),
        }
        for kind, values in [*latencies.items(), ("reads", reads)]
    }
    summary["errors"] = sum(
        n for kind in codes for c, n in codes[kind].items() if not (isinstance(c, int) and c < 400)
    )
    summary["requests_per_s"] = round(sum(len(v) for v in latencies.values()) / seconds, 1)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2, help="API processes (shoal api --workers)")
    parser.add_argument("--cache-seconds", type=float, default=1.0, help="SHOAL_API_READ_CACHE_SECONDS")
    parser.add_argument(
        "--write-every", type=int, default=10, help="each client's every Nth request is a write (0: none)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    redis.Redis.from_url(REDIS_URL).flushdb()
    name, url = create_database()
    with tempfile.TemporaryDirectory() as tmp:
        process, base = start_api(url, Path(tmp), args.workers, args.cache_seconds)
        try:
            big = seed(base, url)
            result = asyncio.run(load(base, big, args.clients, args.seconds, args.write_every))
        finally:
            process.terminate()
            process.wait(timeout=30)
            redis.Redis.from_url(REDIS_URL).flushdb()
            if not args.keep:
                drop_database(name)
    settings = {
        k: getattr(args, k) for k in ("clients", "seconds", "workers", "cache_seconds", "write_every")
    }
    print(json.dumps({**settings, "load_average": os.getloadavg()[0], **result}, indent=1))


if __name__ == "__main__":
    main()
