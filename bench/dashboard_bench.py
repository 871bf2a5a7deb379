"""How fast the dashboard is on big runs: metric reads through a real API process, and first chart paint.

    .venv/bin/python bench/dashboard_bench.py [--runs 10] [--points 1000000] [--requests 200]

Creates a fresh PostgreSQL database (SHOAL_BENCH_DATABASE_URL names the server's admin database), fills
`--runs` runs with `--points` points of env/perf each (plus four 10k-point series, so the run page has
several charts), with their rollups, by COPY. Then, through a uvicorn API process:
- GET /runs/{id}/metrics downsampled to <= 2000 points, p50/p95 over `--requests` requests (goal p95 under
  100 ms), for the 1M-point series raw, smoothed, and for all of a run's charts at once (the run page's ask);
- the run page's first chart paint in headless Chromium, from navigation start to the first uPlot draw
  with data (a `performance.mark`), with a fresh browser context (cold cache) per load (goal < 1 s).
Prints a markdown table; the database is dropped afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.common.metrics import FANOUT, LEVELS, MetricWriter  # noqa: E402
from tests.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

ADMIN_URL = os.environ.get(
    "SHOAL_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SMALL_KEYS = ("env/score", "SPS", "losses/policy", "losses/value")
SMALL_POINTS = 10_000


# ---- data -----------------------------------------------------------------------------------------------


def series_rows(
    run_id: int, key: str, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple]]:
    """Steps, times and values of a noisy learning curve, and its rollup rows as MetricWriter makes them."""
    steps = (np.arange(1, n + 1, dtype=np.int64)) * 2048
    times = 1.7e9 + np.arange(n, dtype=np.float64) * 0.05
    progress = np.arange(n) / n
    values = np.minimum(1.0, 1.2 * progress) * 0.9 + rng.normal(0, 0.08, n)
    rollups = []
    for level in range(1, LEVELS + 1):
        width = FANOUT**level
        spans = n // width
        if not spans:
            break
        block = values[: spans * width].reshape(spans, width)
        ends = np.arange(1, spans + 1) * width - 1
        for seq, mean, low, high in zip(
            ends, block.mean(axis=1), block.min(axis=1), block.max(axis=1), strict=True
        ):
            rollups.append(
                (run_id, key, level, int(seq), int(steps[seq]), float(times[seq]), width, mean, low, high)
            )
    return steps, times, values, rollups


def copy_rows(cursor, table: str, columns: str, lines: str) -> None:
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        copy.write(lines)


def load_run(url: str, run_id: int, points: int, rng: np.random.Generator) -> None:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn, conn.cursor() as cur:
        for key, n in [("env/perf", points), *((k, SMALL_POINTS) for k in SMALL_KEYS)]:
            steps, times, values, rollups = series_rows(run_id, key, n, rng)
            buffer = io.StringIO()
            for begin in range(0, n, 200_000):
                end = min(n, begin + 200_000)
                seqs = np.arange(begin, end)
                buffer.write(
                    "".join(
                        f"{run_id}\t{key}\t{s}\t{q}\t{t!r}\t{v!r}\n"
                        for s, q, t, v in zip(
                            steps[begin:end].tolist(),
                            seqs.tolist(),
                            times[begin:end].tolist(),
                            values[begin:end].tolist(),
                            strict=True,
                        )
                    )
                )
            copy_rows(cur, "metrics", "run_id, key, step, seq, time, value", buffer.getvalue())
            copy_rows(
                cur,
                "metric_rollups",
                "run_id, key, level, seq, step, time, count, mean, min, max",
                "".join("\t".join(map(str, r)) + "\n" for r in rollups),
            )
        cur.execute(
            "UPDATE runs SET metric_keys = %s, status = 'succeeded', progress_steps = %s WHERE id = %s",
            (psycopg.types.json.Json(sorted(["env/perf", *SMALL_KEYS])), points * 2048, run_id),
        )
        conn.commit()


def check_rollups_match_the_writer() -> None:
    """The bulk loader's rollups must be exactly what MetricWriter would have written."""
    rng = np.random.default_rng(7)
    steps, times, values, rollups = series_rows(1, "k", 5000, rng)
    writer = MetricWriter(1)
    for s, t, v in zip(steps.tolist(), times.tolist(), values.tolist(), strict=True):
        writer.append(s, {"k": v}, at=t)
    expected = [
        (1, "k", r["level"], r["seq"], r["step"], r["time"], r["count"], r["mean"], r["min"], r["max"])
        for r in writer.rollups
    ]
    key = lambda r: (r[2], r[3])  # noqa: E731
    for ours, theirs in zip(sorted(rollups, key=key), sorted(expected, key=key), strict=True):
        assert ours[:7] == theirs[:7] and np.allclose(ours[7:], theirs[7:]), (ours, theirs)


# ---- measurement ----------------------------------------------------------------------------------------


def start_api(url: str, workdir: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "SHOAL_DATABASE_URL": url, "PYTHONPATH": str(ROOT), "SHOAL_API_TOKEN": "bench"}
    log = open(workdir / "api.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "api", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/runs?limit=1", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError((workdir / "api.log").read_text()[-2000:])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def latencies(base: str, run_ids: list[int], requests: int, params: dict) -> tuple[list[float], int, int]:
    """Milliseconds per request, sequential on one keep-alive connection; and points and bytes of one."""
    with httpx.Client(base_url=base, timeout=30) as client:
        for run_id in run_ids:  # warm-up: connections, caches, PostgreSQL buffers
            client.get(f"/runs/{run_id}/metrics", params=params).raise_for_status()
        out = []
        for i in range(requests):
            started = time.perf_counter()
            response = client.get(f"/runs/{run_ids[i % len(run_ids)]}/metrics", params=params)
            out.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
        series = response.json()["series"]
        points = max(len(s["step"]) for s in series.values())
        return out, points, len(response.content)


def first_paints(base: str, run_ids: list[int]) -> list[float]:
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for run_id in run_ids:
            context = browser.new_context(viewport={"width": 1440, "height": 1000})
            page = context.new_page()
            page.goto(f"{base}/#/runs/{run_id}")
            page.wait_for_function("performance.getEntriesByName('first-chart').length > 0", timeout=30_000)
            out.append(page.evaluate("performance.getEntriesByName('first-chart')[0].startTime"))
            context.close()
        browser.close()
    return out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    args = parser.parse_args()

    check_rollups_match_the_writer()
    name = f"shoal_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    env = {**os.environ, "SHOAL_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-m", "services.cli", "migrate"], env=env, check=True, capture_output=True
    )
    api = None
    try:
        os.environ["SHOAL_DATABASE_URL"] = url
        from services.common.db import session_scope
        from services.common.runs import create_run

        with session_scope(url) as session:
            run_ids = [create_run(session, "cartpole", seed=i, tags=["bench"]).id for i in range(args.runs)]
        started = time.perf_counter()
        rng = np.random.default_rng(0)
        for run_id in run_ids:
            load_run(url, run_id, args.points, rng)
        load_seconds = time.perf_counter() - started
        engine = create_engine(url)
        with engine.connect() as c:
            c.execute(text("ANALYZE"))
            total = c.execute(text("SELECT count(*) FROM metrics")).scalar()
        engine.dispose()
        print(f"loaded {total:,} metric points into {name} in {load_seconds:.0f}s", flush=True)

        with tempfile.TemporaryDirectory() as tmp:
            api, base = start_api(url, Path(tmp))
            perf = {"keys": "env/perf", "max_points": 2000}
            page = {"keys": ",".join(["env/perf", *SMALL_KEYS]), "max_points": 2000, "smoothing": 0.6}
            cases = [
                (f"env/perf ({args.points:,} points), raw", perf),
                (f"env/perf ({args.points:,} points), smoothing 0.6", {**perf, "smoothing": 0.6}),
                ("run page: 5 series, smoothing 0.6", page),
            ]
            rows = []
            for label, params in cases:
                ms, points, size = latencies(base, run_ids, args.requests, params)
                rows.append((label, len(ms), pct(ms, 50), pct(ms, 95), max(ms), points, size))
            paints = first_paints(base, run_ids)
            api.terminate()
            api.wait(timeout=20)
            api = None

        cpu = _cpu_model()
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"\n{args.runs} runs x {args.points:,} points of env/perf "
            f"(+{len(SMALL_KEYS)} x {SMALL_POINTS:,}), PostgreSQL, one uvicorn worker; "
            f"{os.cpu_count()} CPUs ({cpu}), load average {load}\n"
        )
        header = ["GET /runs/{id}/metrics, max_points=2000", "requests", "p50 ms", "p95 ms", "max ms"]
        print(f"| {' | '.join(header)} | points/series | bytes |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for label, n, p50, p95, worst, points, size in rows:
            print(f"| {label} | {n} | {p50:.1f} | {p95:.1f} | {worst:.1f} | {points} | {size:,} |")
        print("\n| run page, headless Chromium, cold cache | loads | p50 ms | max ms |")
        print("|---|---:|---:|---:|")
        print(f"| first chart paint | {len(paints)} | {statistics.median(paints):.0f} | {max(paints):.0f} |")
        goal = rows[0][3] < 100 and rows[2][3] < 100 and max(paints) < 1000
        print(f"\ngoals (p95 < 100 ms, first paint < 1 s): {'met' if goal else 'MISSED'}")
        return 0
    finally:
        if api is not None:
            api.kill()
        if args.keep:
            print(f"kept database: {url}")
        else:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
