"""How fast the dashboard is on big runs: metric reads through a real API process, and first chart paint.

    .venv/bin/python bench/dashboard_bench.py [--runs 10] [--points 1000000] [--charts 12] [--big 1]
                                              [--requests 200] [--loads 1]

Creates a fresh PostgreSQL database (SHOAL_BENCH_DATABASE_URL names the server's admin database), fills
`--runs` runs with `--charts` metric keys each (so the run page draws that many charts): the first `--big`
keys (env/perf first) with `--points` points, the others with 10k, with their rollups, by COPY. Then,
through a uvicorn API process:
- GET /runs/{id}/metrics downsampled to <= 2000 points, p50/p95 over `--requests` requests (goal p95 under
  100 ms for the 1M-point series), for that series raw, smoothed, and for all of a run's charts at once (the
  run page's second request, after env/perf alone);
- the run page in headless Chromium (`--loads` times per run), with a fresh browser context (cold cache)
  per load, from navigation start to the first uPlot draw with data (a `performance.mark`, goal < 1 s)
  and to every chart drawn. At 1440 px the page asks for PAGE_POINTS points per series (two per pixel of
  a chart), which the latency table also measures.
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
from tests.helpers import free_port  # noqa: E402

ADMIN_URL = os.environ.get(
    "SHOAL_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
# The keys a PPO run logs, in the order the run page draws them (env/perf first).
KEYS = (
    "env/perf", "env/score", "SPS", "env/episode_length", "env/episode_return",
    "losses/approx_kl", "losses/clipfrac", "losses/entropy", "losses/explained_variance",
    "losses/policy", "losses/value", "performance/learning_rate",
)  # fmt: skip
SMALL_POINTS = 10_000
PAGE_POINTS = 944  # what run.js's maxPoints() asks for at a 1440 px wide viewport, DPR 1


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


def load_run(url: str, run_id: int, sizes: dict[str, int], rng: np.random.Generator) -> None:
    """`sizes`: points per metric key."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn, conn.cursor() as cur:
        for key, n in sizes.items():
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
            (psycopg.types.json.Json(sorted(sizes)), max(sizes.values()) * 2048, run_id),
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
    env = {**os.environ, "SHOAL_DATABASE_URL": url, "PYTHONPATH": str(ROOT), "SHOAL_API_TOKEN": "bench"}
    return launch_api(env, workdir, "/runs?limit=1")


def launch_api(env: dict[str, str], workdir: Path, probe: str, *args: str) -> tuple[subprocess.Popen, str]:
    """`shoal api` with `env` and the further `args` on a free port, its output in workdir/api.log: the
    process and its base URL once GET `probe` answers 200. After 60 s without, the process is killed and the
    error carries the end of its log."""
    port = free_port()
    log = open(workdir / "api.log", "wb")  # noqa: SIM115 (kept open for the child's lifetime)
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "api", "--port", str(port), *args],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}{probe}", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError((workdir / "api.log").read_text()[-2000:])


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


# Every chart of the page has its data (uPlot has drawn it by the time this runs: drawing is synchronous).
ALL_DRAWN = """(n) => { const c = window.shoal?.charts;
  return c && c.size >= n && [...c.values()].every((u) => u.data[0].length > 0) && performance.now(); }"""


def page_loads(
    base: str, run_ids: list[int], charts: int, loads: int
) -> tuple[list[float], list[float], list[str]]:
    """Per load: ms from navigation start to the first chart painted, and to all `charts` charts drawn;
    and the console errors of all loads (there should be none)."""
    from playwright.sync_api import sync_playwright

    first, every, errors = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for run_id in [r for r in run_ids for _ in range(loads)]:
            context = browser.new_context(viewport={"width": 1440, "height": 1000})
            page = context.new_page()
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: _check_points(r.url, errors))
            page.goto(f"{base}/#/runs/{run_id}")
            done = page.wait_for_function(ALL_DRAWN, arg=charts, timeout=30_000, polling="raf")
            every.append(done.json_value())
            first.append(page.evaluate("performance.getEntriesByName('first-chart')[0].startTime"))
            context.close()
        browser.close()
    return first, every, errors


def _check_points(url: str, errors: list[str]) -> None:
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    if parts.path.endswith("/metrics"):
        asked = parse_qs(parts.query).get("max_points", ["?"])[0]
        if asked != str(PAGE_POINTS):
            errors.append(f"the page asked for max_points={asked}, not PAGE_POINTS={PAGE_POINTS}")


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
    parser.add_argument("--charts", type=int, default=12, help=f"metric keys per run, at most {len(KEYS)}")
    parser.add_argument("--loads", type=int, default=1, help="run page loads per run")
    parser.add_argument("--big", type=int, default=1, help="how many of them have --points points")
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
        keys = KEYS[: args.charts]
        sizes = {k: args.points if i < args.big else SMALL_POINTS for i, k in enumerate(keys)}
        for run_id in run_ids:
            load_run(url, run_id, sizes, rng)
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
            page = {"keys": ",".join(keys), "max_points": 2000, "smoothing": 0.6}
            cases = [
                (f"env/perf ({args.points:,} points), raw", perf),
                (f"env/perf ({args.points:,} points), smoothing 0.6", {**perf, "smoothing": 0.6}),
                (f"run page: {len(keys)} series, smoothing 0.6", page),
                (
                    f"run page: {len(keys)} series, smoothing 0.6, max_points={PAGE_POINTS}",
                    {**page, "max_points": PAGE_POINTS},
                ),
                (
                    f"env/perf, smoothing 0.6, max_points={PAGE_POINTS}",
                    {**perf, "smoothing": 0.6, "max_points": PAGE_POINTS},
                ),
            ]
            rows = []
            for label, params in cases:
                ms, points, size = latencies(base, run_ids, args.requests, params)
                rows.append((label, len(ms), pct(ms, 50), pct(ms, 95), max(ms), points, size))
            paints, drawn, console_errors = page_loads(base, run_ids, len(keys), args.loads)
            api.terminate()
            api.wait(timeout=20)
            api = None

        cpu = _cpu_model()
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"\n{args.runs} runs x {len(keys)} keys: {min(args.big, len(keys))} x {args.points:,} points "
            f"+ {max(0, len(keys) - args.big)} x {SMALL_POINTS:,}, PostgreSQL, one uvicorn worker; "
            f"{os.cpu_count()} CPUs ({cpu}), load average {load}\n"
        )
        header = [
            "GET /runs/{id}/metrics (max_points=2000 unless said)",
            "requests",
            "p50 ms",
            "p95 ms",
            "max ms",
        ]
        print(f"| {' | '.join(header)} | points/series | bytes |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for label, n, p50, p95, worst, points, size in rows:
            print(f"| {label} | {n} | {p50:.1f} | {p95:.1f} | {worst:.1f} | {points} | {size:,} |")
        print("\n| run page, headless Chromium, cold cache | loads | p50 ms | max ms |")
        print("|---|---:|---:|---:|")
        print(f"| first chart paint | {len(paints)} | {statistics.median(paints):.0f} | {max(paints):.0f} |")
        every = f"all {len(keys)} charts drawn"
        print(f"| {every} | {len(drawn)} | {statistics.median(drawn):.0f} | {max(drawn):.0f} |")
        # Issue 18's goals: the 1M-point series' p95 < 100 ms, the first chart paint < 1 s with 12 charts.
        goal = rows[0][3] < 100 and rows[1][3] < 100 and max(paints) < 1000
        print(f"\nconsole errors on the run pages: {len(console_errors)} {console_errors[:3]}")
        verdict = "met" if goal else "MISSED"
        print(
            f"\ngoals (1M-point series p95 < 100 ms, first chart paint < 1 s): {verdict}; "
            f"the run page's {len(keys)}-series request: p95 {rows[3][3]:.0f} ms"
        )
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
