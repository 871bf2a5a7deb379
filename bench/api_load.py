"""Concurrent clients against a running API: latency percentiles and errors per path, and /healthz meanwhile.

    python bench/api_load.py http://127.0.0.1:8000 --clients 60 --seconds 10 --path /runs

Each client loops over its requests until the time is up; one more client polls /healthz once a second.
Only loopback or the project's own test hosts are targets (the loop is bounded in time).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

import httpx


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def client(http: httpx.AsyncClient, paths: list[str], until: float, out: list, codes: Counter) -> None:
    i = 0
    while time.monotonic() < until:
        path = paths[i % len(paths)]
        i += 1
        began = time.monotonic()
        try:
            status = (await http.get(path)).status_code
        except httpx.HTTPError as e:
            status = type(e).__name__
        out.append(time.monotonic() - began)
        codes[status] += 1


async def health(http: httpx.AsyncClient, until: float, out: list, codes: Counter) -> None:
    while time.monotonic() < until:
        began = time.monotonic()
        try:
            status = (await http.get("/healthz")).status_code
        except httpx.HTTPError as e:
            status = type(e).__name__
        out.append(time.monotonic() - began)
        codes[status] += 1
        await asyncio.sleep(1.0)


async def main(base: str, clients: int, seconds: float, paths: list[str]) -> dict:
    limits = httpx.Limits(max_connections=clients + 1, max_keepalive_connections=clients + 1)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        until = time.monotonic() + seconds
        latencies: list[float] = []
        codes: Counter = Counter()
        health_latencies: list[float] = []
        health_codes: Counter = Counter()
        await asyncio.gather(
            *(client(http, paths, until, latencies, codes) for _ in range(clients)),
            health(http, until, health_latencies, health_codes),
        )
    return {
        "requests": len(latencies),
        "codes": dict(codes),
        "p50_ms": round(1000 * percentile(latencies, 0.5), 1),
        "p95_ms": round(1000 * percentile(latencies, 0.95), 1),
        "max_ms": round(1000 * max(latencies, default=float("nan")), 1),
        "healthz_codes": dict(health_codes),
        "healthz_max_ms": round(1000 * max(health_latencies, default=float("nan")), 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the API's URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--path", action="append", help="GET path, repeatable (default /runs)")
    args = parser.parse_args()
    print(asyncio.run(main(args.base, args.clients, args.seconds, args.path or ["/runs"])))
