"""The web dashboard in a real browser (Debian's headless Chromium driven by Playwright) against a real API
and train worker on the embedded platform.

Runs with set histories are inserted straight into the platform's SQLite database (a failed run among them),
so their curves are known; one real cartpole run checks that a running run's chart grows without a reload.
Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from services.common.db import session_scope
from services.common.metrics import MetricWriter
from services.common.models import RunStatus
from services.common.runs import create_run
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.helpers import CI, ROOT, TOKEN, Platform, wait_for

ARTIFACTS = ROOT / "test-artifacts"
RUN_CHART_KEYS = ["env/perf", "env/score", "SPS", "losses/policy", "losses/value"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: run `make browsers` (apt-get install chromium)"
        if CI:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Console:
    """Console errors and uncaught exceptions of one page."""

    seen: list[tuple[str, str]] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.seen.append((message.text, message.location.get("url", "")))

    def on_error(self, error: Exception) -> None:
        self.seen.append((f"uncaught: {error}", ""))

    def on_request(self, origin: str, url: str) -> None:
        """The dashboard and /docs must work offline: any request to another host is an error."""
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and f"{parts.scheme}://{parts.netloc}" != origin:
            self.seen.append((f"request to another host: {url}", url))

    @property
    def errors(self) -> list[tuple[str, str]]:
        return list(self.seen)


@pytest.fixture
def page(browser: Browser, embedded_platform: Platform, request) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, base_url=embedded_platform.url)
    # The token field's storage, as if the user had pasted the token `shoal up` printed.
    context.add_init_script(f"localStorage.setItem('shoal.token', {TOKEN!r})")
    page = context.new_page()
    console = Console()
    page.on("console", console.on_console)
    page.on("pageerror", console.on_error)
    page.on("request", lambda r: console.on_request(embedded_platform.url, r.url))
    page.console = console  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        try:
            page.screenshot(path=ARTIFACTS / f"dashboard-{request.node.name}.png", full_page=True)
        finally:
            context.close()


def no_console_errors(page: Page) -> None:
    errors = page.console.errors  # type: ignore[attr-defined]
    assert not errors, f"console errors: {errors}"


def open_page(page: Page, route: str) -> None:
    page.goto(f"/#{route}")
    page.wait_for_load_state("networkidle")


# ---- runs with known histories, inserted into the platform's database ------------------------------------


def insert_run(
    platform: Platform,
    *,
    status: RunStatus = RunStatus.succeeded,
    points: int = 400,
    seed: int = 0,
    tags: tuple[str, ...] = (),
    overrides: dict | None = None,
    env_version: str | None = None,
    failure_reason: str | None = None,
    step_size: int = 2048,
    sps: float = 40_000,
    extra_keys: bool = False,
    name: str | None = None,
) -> int:
    """A finished run of cartpole with noisy, rising curves of `points` points per key (`step_size` steps
    apart); `extra_keys` adds keys beyond perf, score, SPS and losses, one of them logged only once."""
    url = platform.env["SHOAL_DATABASE_URL"]
    with session_scope(url) as session:
        run = create_run(session, "cartpole", overrides, seed=seed, tags=list(tags))
        run.status = status
        run.failure_reason = failure_reason
        run.progress_steps = run.total_timesteps = points * step_size
        run.name = name
        if status == RunStatus.succeeded:
            run.final_score = 0.97
        if env_version:
            run.env_version = env_version
        run_id = run.id
    rng = np.random.default_rng(seed + run_id)
    writer = MetricWriter(run_id)
    t0 = time.time() - points
    for i in range(1, points + 1):
        progress = i / points
        perf = min(1.0, progress * 1.2) * 0.9 + rng.normal(0, 0.08)
        values = {
            "env/perf": perf,
            "env/score": 500 * perf,
            "SPS": sps + rng.normal(0, sps / 13),
            "losses/policy": -0.01 + rng.normal(0, 0.01),
            "losses/value": 2.0 * (1 - progress) + abs(rng.normal(0, 0.3)),
        }
        if extra_keys:
            values["env/episode_length"] = 20 + 480 * progress
            values["performance/learning_rate"] = 3e-4 * (1 - progress) + 1e-6
            if i == points // 2:
                values["custom/once"] = 42.0
        writer.append(i * step_size, values, at=t0 + i)
    with session_scope(url) as session:
        writer.flush(session)
    return run_id


@pytest.fixture(scope="module")
def runs(embedded_platform: Platform) -> dict[str, int]:
    p = embedded_platform
    return {
        "done": insert_run(p, seed=1, tags=("baseline",)),
        "done_seed2": insert_run(p, seed=2, tags=("baseline",)),
        "other_env_params": insert_run(p, seed=3, overrides={"env": {"max_steps": 400}}),
        # cartpole's default spelled out as an override: the same resolved config as "done".
        "default_spelled_out": insert_run(p, seed=8, overrides={"env": {"max_steps": 500}}),
        "other_version": insert_run(p, seed=4, env_version="0123456789abcdef"),
        # 20M steps at 355k SPS: the labels that used to be clipped ("55,000") or to collide.
        "long": insert_run(p, seed=6, step_size=50_000, sps=355_000, extra_keys=True, name="long-run"),
        "failed": insert_run(
            p,
            status=RunStatus.failed,
            points=150,
            seed=5,
            tags=("nan",),
            failure_reason="nan_loss at step 307200: losses/value is not finite",
        ),
    }


@pytest.fixture(scope="module")
def million(embedded_platform: Platform) -> int:
    """A finished run whose env/perf has 1,000,000 points (SPS every 1,000th), written as a trainer does."""
    url = embedded_platform.env["SHOAL_DATABASE_URL"]
    with session_scope(url) as session:
        run = create_run(session, "cartpole", None, seed=9, tags=["million"])
        run.status, run.final_score = RunStatus.succeeded, 0.95
        run.progress_steps = run.total_timesteps = 1_000_000 * 64
        run_id = run.id
    rng = np.random.default_rng(9)
    perf = np.clip(np.linspace(0.0, 1.0, 1_000_000) + rng.normal(0, 0.05, 1_000_000), 0, 1).tolist()
    writer = MetricWriter(run_id)
    for i, value in enumerate(perf, start=1):
        writer.append(i * 64, {"env/perf": value} if i % 1000 else {"env/perf": value, "SPS": 2e6}, at=i)
    with session_scope(url) as session:
        writer.flush(session)
    return run_id


def chart(page: Page, name: str) -> dict:
    return page.evaluate(
        """(name) => { const u = shoal.charts.get(name);
             return u && {series: u.series.length, lines: Number(u.root.parentElement.dataset.lines),
                           x: Array.from(u.data[0]), y: Array.from(u.data[1] || [])}; }""",
        name,
    )


def wait_for_chart(page: Page, name: str, min_points: int = 1, timeout: float = 15_000) -> None:
    page.wait_for_function(
        "([name, n]) => { const u = window.shoal?.charts.get(name); return u && u.data[0].length >= n; }",
        arg=[name, min_points],
        timeout=timeout,
    )


# ---- tests -----------------------------------------------------------------------------------------------


def test_every_page_loads_without_console_errors(
    page: Page, runs: dict[str, int], sweep: dict, ratings: dict
) -> None:
    ids = f"{runs['done']},{runs['other_env_params']}"
    for route, expect in [
        ("/runs", "[data-testid=runs-table] table"),
        (f"/runs/{runs['done']}", "[data-chart='env/perf']"),
        (f"/compare?ids={ids}", "[data-chart='compare:env/perf']"),
        ("/compare", "h1"),
        ("/sweeps", "[data-testid=sweeps-table] > *"),
        (f"/sweeps/{sweep['id']}", "[data-testid=scatter]"),
        ("/leaderboard?env=pong", "[data-testid=ratings] > *"),
        ("/leaderboard?env=connect4", "main h1"),
        ("/benchmarks", "h2"),
    ]:
        open_page(page, route)
        page.wait_for_selector(expect, timeout=10_000)
        assert "No page at" not in page.inner_text("main")
        ARTIFACTS.mkdir(exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", route.lower()).strip("-")
        page.screenshot(path=ARTIFACTS / f"dashboard-page-{slug}.png", full_page=True)
    no_console_errors(page)


def test_run_page_draws_each_curve_with_its_envelope(page: Page, runs: dict[str, int]) -> None:
    asked = []  # max_points of each metrics request
    page.on("request", lambda r: asked.extend(re.findall(r"/metrics\?.*max_points=(\d+)", r.url)))
    open_page(page, f"/runs/{runs['done']}")
    for key in RUN_CHART_KEYS:
        wait_for_chart(page, key, 100)
        drawn = chart(page, key)
        # x, the smoothed value, and the min and max edges of the raw envelope.
        assert drawn["series"] == 4 and drawn["lines"] == 1, (key, drawn["series"])
        assert drawn["x"][-1] == 400 * 2048
    page.wait_for_function("performance.getEntriesByName('first-chart').length > 0")
    # Two points per pixel of a chart (three 472 px columns at 1440 px), not a flat 2000 per series.
    assert asked and set(asked) == {"944"}, asked
    assert page.locator("[data-testid=hyperparameters]").inner_text().count("learning_rate") == 1
    no_console_errors(page)


def test_a_million_point_run_draws_on_the_run_and_compare_pages_without_errors(
    page: Page, runs: dict[str, int], million: int
) -> None:
    open_page(page, f"/runs/{million}")
    wait_for_chart(page, "env/perf", 400, timeout=30_000)
    drawn = chart(page, "env/perf")
    # Downsampled to two points per pixel, and the curve still ends at the run's last step.
    assert 400 <= len(drawn["x"]) <= 944 and drawn["x"][-1] == 1_000_000 * 64
    wait_for_chart(page, "SPS", 400)
    open_page(page, f"/compare?ids={million},{runs['done']}")
    wait_for_chart(page, "compare:env/perf", 100, timeout=30_000)
    assert chart(page, "compare:env/perf")["series"] == 3
    no_console_errors(page)


def test_smoothing_toggle_changes_the_drawn_data(page: Page, runs: dict[str, int]) -> None:
    open_page(page, f"/runs/{runs['done']}")
    wait_for_chart(page, "env/perf", 400)
    smoothed = chart(page, "env/perf")["y"]

    page.get_by_test_id("smoothing-toggle").uncheck()
    page.wait_for_function(
        "(before) => shoal.charts.get('env/perf').data[1][5] !== before", arg=smoothed[5], timeout=10_000
    )
    raw = chart(page, "env/perf")["y"]
    assert raw != smoothed
    # Smoothing must calm the noise: the raw curve's point-to-point wiggle is several times larger.
    assert np.abs(np.diff(raw)).mean() > 2 * np.abs(np.diff(smoothed)).mean()

    page.get_by_test_id("smoothing-toggle").check()
    page.wait_for_function(
        "(before) => shoal.charts.get('env/perf').data[1][5] === before", arg=smoothed[5], timeout=10_000
    )

    # Wall time on the x axis: seconds from the run's first point (1 s apart in the inserted history).
    page.get_by_test_id("x-axis").select_option("time")
    page.wait_for_function("shoal.charts.get('env/perf')?.data[0][0] === 0", timeout=10_000)
    assert chart(page, "env/perf")["x"][-1] == pytest.approx(399, abs=1e-6)
    no_console_errors(page)


def test_failed_runs_show_their_reason(page: Page, runs: dict[str, int]) -> None:
    reason = "nan_loss at step 307200"
    open_page(page, "/runs")
    row = page.locator(f"tr[data-run='{runs['failed']}']")
    assert "failed" in (row.get_attribute("class") or "")
    assert reason in row.get_by_test_id("failure-reason").inner_text()
    assert page.get_by_test_id("failed-summary").is_visible()

    page.get_by_test_id("filter-status").select_option("failed")
    page.wait_for_function("document.querySelectorAll('tr[data-run]').length === 1")
    assert "status=failed" in page.url

    open_page(page, f"/runs/{runs['failed']}")
    assert reason in page.get_by_test_id("failure-banner").inner_text()
    wait_for_chart(page, "env/perf", 150)
    no_console_errors(page)


def test_compare_overlays_groups_and_warns_about_incomparable_runs(page: Page, runs: dict[str, int]) -> None:
    same = f"{runs['done']},{runs['done_seed2']}"
    open_page(page, f"/compare?ids={same}")
    wait_for_chart(page, "compare:env/perf", 100)
    assert page.get_by_test_id("comparable").is_visible()
    assert not page.get_by_test_id("compare-warning").count()
    assert chart(page, "compare:env/perf")["series"] == 3  # x and one line per run

    # The two seeds of one config as a group: one mean line with its min..max band.
    page.get_by_test_id("group").select_option("config")
    page.wait_for_function("shoal.charts.get('compare:env/perf')?.series.length === 4")
    assert chart(page, "compare:env/perf")["lines"] == 1

    open_page(page, f"/compare?ids={runs['done']},{runs['other_env_params']}")
    warning = page.get_by_test_id("compare-warning").inner_text()
    assert "max_steps" in warning and "500" in warning and "400" in warning

    open_page(page, f"/compare?ids={runs['done']},{runs['other_version']}")
    assert "env_version" in page.get_by_test_id("compare-warning").inner_text()
    no_console_errors(page)


def test_a_running_runs_chart_grows_without_a_reload_and_can_be_cancelled(
    page: Page, embedded_platform: Platform
) -> None:
    with embedded_platform.client() as client:
        created = client.post(
            "/runs", json={"env": "cartpole", "total_timesteps": 50_000_000, "tags": ["live"]}
        )
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]

    open_page(page, f"/runs/{run_id}")
    page.evaluate("window.__notReloaded = true")
    wait_for_chart(page, "SPS", 2, timeout=120_000)
    first = len(chart(page, "SPS")["x"])
    wait_for_chart(page, "SPS", first + 3, timeout=30_000)
    assert page.evaluate("window.__notReloaded") is True
    assert "live" in page.get_by_test_id("live").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-run-live.png", full_page=True)

    page.get_by_test_id("cancel").click()
    page.wait_for_selector("h1 .badge.cancelled", timeout=15_000)
    no_console_errors(page)


PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_benchmarks_page_shows_the_figure_and_the_time_to_solved_table(
    page: Page, embedded_platform: Platform
) -> None:
    docs = Path(embedded_platform.env["SHOAL_DOCS_DIR"])
    docs.mkdir(exist_ok=True)
    (docs / "bench_train.csv").write_text("env,solved_at_steps,seconds\ncartpole,300000,18.5\npong,,\n")
    (docs / "bench_train.png").write_bytes(PNG_1X1)
    measured = {"hardware": "one NVIDIA H200", "date": "2026-11-21", "command": "shoal bench train"}
    (docs / "bench_train.json").write_text(json.dumps(measured))
    try:
        open_page(page, "/benchmarks")
        assert page.get_by_test_id("bench-table").locator("tbody tr").count() == 2
        page.wait_for_function("document.querySelector('[data-testid=bench-figure]')?.naturalWidth === 1")
        # Where and when: the hardware and the date of the figures, and the command that made them.
        assert page.get_by_test_id("bench-hardware").inner_text() == "one NVIDIA H200"
        assert page.get_by_test_id("bench-date").inner_text() == "2026-11-21"
        assert "shoal bench train" in page.get_by_test_id("bench-measured").inner_text()
        # Table headers read as words, not snake_case.
        headers = page.get_by_test_id("bench-table").locator("th").all_text_contents()
        assert "solved at steps" in headers and not any("_" in t for t in headers), headers
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "dashboard-benchmarks.png", full_page=True)
    finally:
        for name in ("bench_train.csv", "bench_train.png", "bench_train.json"):
            (docs / name).unlink()
    page.reload()
    page.wait_for_selector("h2")
    assert page.get_by_test_id("unavailable").count() == 0
    assert "No benchmark results yet" in page.inner_text("main")
    assert "not recorded" in page.get_by_test_id("bench-measured").inner_text()
    no_console_errors(page)


# ---- sweeps and leaderboard on real data: a sweep run by the sweeper, matches played by an elo worker ----


@pytest.fixture(scope="module")
def sweep(embedded_platform: Platform) -> dict:
    """A finished 3-trial cartpole sweep with a budget in steps, run by the platform's sweeper and train
    workers; its gamma draws values with float noise (logit-normal), its optimizer is a categorical."""
    body = {
        "env": "cartpole",
        "max_runs": 3,
        "parallelism": 1,
        "seed": 3,
        "early_stopping": False,
        "cost_unit": "steps",
        "budget": "200k steps",
        "space": {"train": {
            "learning_rate": {"distribution": "log_normal", "min": 1e-3, "max": 3e-3, "scale": "auto"},
            "total_timesteps": {"distribution": "log_normal", "min": 8192, "max": 24576, "scale": "auto"},
            "gamma": {"distribution": "logit_normal", "min": 0.95, "max": 0.99},
            "optimizer": {"distribution": "categorical", "choices": ["adam", "muon"]},
        }},
        "hyperparameters": {"train": {"eval_episodes": 8}},
    }  # fmt: skip
    with embedded_platform.client() as client:
        created = client.post("/sweeps", json=body)
        assert created.status_code == 201, created.text
        sweep_id = created.json()["id"]
        return wait_for(
            lambda: (s := client.get(f"/sweeps/{sweep_id}").json())["status"] == "finished" and s,
            300, 1.0, "the sweep to finish",
        )  # fmt: skip


@pytest.fixture(scope="module")
def ratings(embedded_platform: Platform) -> dict:
    """Pong's scripted bot against the random anchor, played and rated by the platform's elo worker."""
    with embedded_platform.client() as client:
        asked = client.post("/matches", json={"a": "scripted", "b": "random", "env": "pong", "games": 16})
        assert asked.status_code == 202, asked.text
        return wait_for(
            lambda: (b := client.get("/leaderboard", params={"env": "pong"}).json())["players"]
            and all(p["games"] > 0 for p in b["players"]) and b,
            180, 1.0, "pong ratings",
        )  # fmt: skip


def test_sweep_page_draws_the_pareto_scatter_parallel_coordinates_and_promotes(
    page: Page, embedded_platform: Platform, sweep: dict
) -> None:
    succeeded = [t for t in sweep["trials"] if t["status"] == "succeeded"]
    assert succeeded, sweep
    open_page(page, f"/sweeps/{sweep['id']}")
    scatter = page.get_by_test_id("scatter")
    scatter.wait_for()
    assert scatter.locator("circle").count() == len(succeeded)
    assert scatter.get_by_test_id("pareto").count() == 1
    assert page.get_by_test_id("parallel").locator("polyline").count() == len(sweep["trials"])
    assert page.get_by_test_id("trials").locator("tbody tr").count() == len(sweep["trials"])

    # Costs in the sweep's unit: the scatter places trials by their steps, and the budget bar counts them.
    assert "cost (steps)" in scatter.text_content()
    drawn = {
        int(c.get_attribute("data-trial")): float(c.get_attribute("data-cost"))
        for c in scatter.locator("circle").all()
    }
    assert drawn == {t["id"]: t["cost_steps"] for t in succeeded}
    budget = page.get_by_test_id("budget")
    assert (
        float(budget.get_attribute("data-used"))
        == sweep["budget_used"]
        == sum(t["cost_steps"] for t in sweep["trials"])
    )
    assert float(budget.get_attribute("data-budget")) == sweep["budget"] == 200_000
    assert "k steps used" in budget.get_by_test_id("budget-used").inner_text()
    assert "k steps left of 200k steps" in budget.get_by_test_id("budget-left").inner_text()
    share = budget.locator(".progress > div").evaluate("e => parseFloat(e.style.width)")
    assert share == pytest.approx(100 * sweep["budget_used"] / 200_000, abs=0.1)

    # What the budget held for each trial proposed once costs were known, on its cost cell.
    held = [t for t in sweep["trials"] if t["reserved_cost"]]
    assert held, sweep["trials"]
    for t in held:
        cell = page.locator(f"tr[data-trial='{t['id']}'] span[title^='the budget held']")
        assert "k steps for it while it ran" in cell.get_attribute("title")

    # Parameters to 4 significant digits (gamma's draws carry float noise), a categorical as its choice.
    params = page.get_by_test_id("trials").inner_text()
    decimals = re.findall(r"=(\d[\d,]*\.\d+)", params)
    assert decimals and all(len(re.sub(r"^[0.]+|[.,]", "", d)) <= 4 for d in decimals), params
    assert all(f"optimizer={t['params']['train']['optimizer']}" in params for t in sweep["trials"])
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-sweep.png", full_page=True)

    best = sweep["best"]
    page.get_by_test_id("promote-steps").fill("5000")
    page.locator(f"tr[data-trial='{best['trial_id']}']").get_by_test_id("promote").click()
    page.wait_for_url(re.compile(r"#/runs/\d+$"), timeout=15_000)
    run_id = int(page.url.rsplit("/", 1)[1])
    with embedded_platform.client() as client:
        run = client.get(f"/runs/{run_id}").json()
        trial_run = client.get(f"/runs/{best['run_id']}").json()
        client.post(f"/runs/{run_id}/cancel")
    assert run["total_timesteps"] == 5000
    expected = {**trial_run["config"], "train": {**trial_run["config"]["train"], "total_timesteps": 5000}}
    assert run["config"] == expected
    no_console_errors(page)


def test_leaderboard_draws_ratings_with_intervals_and_the_win_rate_matrix(page: Page, ratings: dict) -> None:
    players = len(ratings["players"])
    open_page(page, "/leaderboard?env=pong")
    table = page.get_by_test_id("ratings")
    table.locator("tbody tr").first.wait_for()
    assert table.locator("tbody tr").count() == players
    assert table.locator("svg line").count() == players  # one interval bar per player
    assert page.get_by_test_id("heatmap-win-rate").locator("rect").count() == players * players
    assert page.get_by_test_id("heatmap-games").locator("rect").count() == players * players
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-leaderboard.png", full_page=True)
    no_console_errors(page)


def test_sweeps_list_shows_the_budget_used(page: Page, sweep: dict) -> None:
    open_page(page, "/sweeps")
    row = page.locator(
        "[data-testid=sweeps-table] tbody tr", has=page.locator(f"a[href='#/sweeps/{sweep['id']}']")
    )
    used = row.get_by_test_id("budget-used")
    assert used.inner_text().strip().endswith("steps / 200k steps"), used.inner_text()
    assert used.locator(".progress").count() == 1
    no_console_errors(page)


# ---- issue 18: offline docs, readable axes, every metric, export, sortable runs, names and notes -----------


def test_docs_render_offline(page: Page) -> None:
    """Swagger UI comes from the API itself: the page fixture fails on a request to any other host."""
    page.goto("/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
    page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)
    assert page.locator(".swagger-ui .opblock").count() > 10
    assert "shoal" in page.locator(".swagger-ui .info .title").inner_text()
    no_console_errors(page)


AXES = """(name) => {
  const u = shoal.charts.get(name), dpr = devicePixelRatio, ctx = u.ctx;
  const width = (axis, text) => { ctx.font = axis.font[0]; return ctx.measureText(text).width / dpr; };
  const [xa, ya] = u.axes;
  const y = ya._values.filter((v) => v != null);
  const x = xa._splits.map((v, i) => [u.valToPos(v, "x"), xa._values[i]])
    .filter(([, t]) => t != null && t !== "")
    .map(([at, t]) => ({ text: t, left: at - width(xa, t) / 2, right: at + width(xa, t) / 2 }));
  return { y, yNeed: Math.max(...y.map((t) => width(ya, t))) + ya.ticks.size + ya.gap, ySize: ya._size,
           x, plotLeft: u.bbox.left / dpr, plotWidth: u.bbox.width / dpr, chartWidth: u.width };
}"""


@pytest.mark.parametrize("viewport", [(1400, 900), (1024, 768)], ids=["1400x900", "1024x768"])
def test_axis_labels_are_abbreviated_never_clipped_and_never_overlap(
    page: Page, runs: dict[str, int], viewport: tuple[int, int]
) -> None:
    page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
    open_page(page, f"/runs/{runs['long']}")
    for key in ("SPS", "env/perf", "losses/policy", "performance/learning_rate", "env/episode_length"):
        wait_for_chart(page, key, 100)
    page.wait_for_timeout(300)  # the ResizeObserver settles the widths
    for key in ("SPS", "env/perf", "losses/policy", "performance/learning_rate", "env/episode_length"):
        assert_axes_readable(page, key)
    no_console_errors(page)


def assert_axes_readable(page: Page, name: str) -> None:
    """The chart's y labels fit their axis and differ; its x labels (steps of the long run) stay inside
    the chart, 4 px apart at least, in millions; SPS reads 355k, not 355,000 cut to 55,000."""
    axes = page.evaluate(AXES, name)
    assert axes["yNeed"] <= axes["ySize"] + 0.5, (name, axes["y"], axes["yNeed"], axes["ySize"])
    shown = [t for t in axes["y"] if t]  # a log axis leaves its minor ticks unlabelled
    assert len(set(shown)) == len(shown), (name, axes["y"])  # neighbours never read the same
    boxes = axes["x"]
    assert len(boxes) >= 2, (name, boxes)
    for a, b in itertools.pairwise(boxes):
        assert a["right"] + 4 <= b["left"], (name, a, b)
    assert boxes[0]["left"] >= -axes["plotLeft"]
    assert boxes[-1]["right"] <= axes["chartWidth"] - axes["plotLeft"]
    assert all(re.fullmatch(r"[\d.]+M|0", b["text"]) for b in boxes), boxes  # 5M, 10M, 12.5M
    if name.endswith("SPS"):
        assert all(t[-1] in "kM" or t == "0" for t in shown), axes["y"]


def test_legends_show_the_latest_value_and_single_points_are_drawn(page: Page, runs: dict[str, int]) -> None:
    open_page(page, f"/runs/{runs['long']}")
    wait_for_chart(page, "env/episode_length", 100)
    shown = page.locator("[data-chart='env/episode_length'] .u-legend tr.u-series").nth(1).locator(".u-value")
    assert shown.inner_text() not in ("\u2013", "")  # an en dash: no value
    last = chart(page, "env/episode_length")["y"][-1]
    assert float(shown.inner_text().replace(",", "")) == pytest.approx(last, rel=1e-3)

    # A key logged once: its point is drawn, on an x axis that ends near its step (not at twice it).
    wait_for_chart(page, "custom/once", 1)
    drawn = page.evaluate(
        """() => { const u = shoal.charts.get("custom/once"), x = u.data[0][0], y = u.data[1][0];
             const cx = Math.round(u.valToPos(x, "x", true)), cy = Math.round(u.valToPos(y, "y", true));
             const px = u.ctx.getImageData(cx - 3, cy - 3, 7, 7).data;
             let ink = 0; for (let i = 3; i < px.length; i += 4) ink = Math.max(ink, px[i]);
             return { x, max: u.scales.x.max, min: u.scales.x.min, ink }; }"""
    )
    assert drawn["min"] >= 0 and drawn["x"] <= drawn["max"] <= drawn["x"] * 1.05, drawn
    assert drawn["ink"] > 0, drawn
    no_console_errors(page)


def test_crosshair_is_synced_across_charts(page: Page, runs: dict[str, int]) -> None:
    open_page(page, f"/runs/{runs['done']}")
    wait_for_chart(page, "env/perf", 100)
    wait_for_chart(page, "SPS", 100)
    page.locator("[data-chart='env/perf'] .u-over").hover()
    page.wait_for_function("shoal.charts.get('SPS').cursor.idx != null", timeout=5_000)
    perf, sps = page.evaluate("['env/perf', 'SPS'].map((k) => shoal.charts.get(k).cursor.idx)")
    assert perf == sps
    no_console_errors(page)


def test_every_key_can_be_charted_and_the_layout_lives_in_the_url(page: Page, runs: dict[str, int]) -> None:
    open_page(page, f"/runs/{runs['long']}")
    keys = [*RUN_CHART_KEYS, "env/episode_length", "performance/learning_rate", "custom/once"]
    for key in keys:
        wait_for_chart(page, key, 1)
    picker = page.get_by_test_id("metric-picker")
    picker.locator("summary").click()
    assert picker.locator("input[data-key]").count() == len(keys)
    picker.locator("input[data-key='performance/learning_rate']").uncheck()
    page.wait_for_function("!shoal.charts.has('performance/learning_rate')")
    assert "keys=" in page.url and "performance/learning_rate" not in page.url

    page.locator("[data-chart='SPS'] [data-testid=log-toggle]").click()
    page.locator("[data-chart='losses/policy'] [data-testid=log-toggle]").click()
    assert re.search(r"log=SPS,losses/policy|log=losses/policy,SPS", page.url), page.url
    assert page.evaluate("shoal.charts.get('SPS').scales.y.distr") == 3
    assert page.evaluate("shoal.charts.get('losses/policy').scales.y.distr") == 4  # negative: symlog

    page.reload()
    page.wait_for_load_state("networkidle")
    wait_for_chart(page, "SPS", 100)
    assert page.evaluate("shoal.charts.has('performance/learning_rate')") is False
    assert page.evaluate("shoal.charts.get('SPS').scales.y.distr") == 3
    no_console_errors(page)


def test_compare_charts_any_key_and_keeps_its_layout_and_labels(page: Page, runs: dict[str, int]) -> None:
    open_page(page, f"/compare?ids={runs['long']},{runs['done']}")
    wait_for_chart(page, "compare:env/perf", 100)
    assert not page.evaluate("shoal.charts.has('compare:env/episode_length')")  # not a default chart
    picker = page.get_by_test_id("metric-picker")
    picker.locator("summary").click()
    picker.locator("input[data-key='env/episode_length']").check()
    picker.locator("input[data-key='losses/value']").uncheck()
    wait_for_chart(page, "compare:env/episode_length", 100)
    page.locator("[data-chart='compare:SPS'] [data-testid=log-toggle]").click()
    assert "env/episode_length" in page.url and "log=SPS" in page.url, page.url

    page.reload()
    page.wait_for_load_state("networkidle")
    wait_for_chart(page, "compare:env/episode_length", 100)
    assert not page.evaluate("shoal.charts.has('compare:losses/value')")
    assert page.evaluate("shoal.charts.get('compare:SPS').scales.y.distr") == 3
    # The long run's 355k SPS over 20M steps, at both sizes the run page is checked at.
    for width, height in ((1400, 900), (1024, 768)):
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(300)  # the ResizeObserver settles the widths
        for key in ("compare:SPS", "compare:env/perf"):
            assert_axes_readable(page, key)
    no_console_errors(page)


def test_runs_table_sorts_and_shows_hyperparameters_names_and_notes(
    page: Page, embedded_platform: Platform, runs: dict[str, int]
) -> None:
    open_page(page, f"/runs/{runs['done_seed2']}")
    page.get_by_test_id("name-input").fill("seed two")
    page.get_by_test_id("notes-input").fill("the second seed of the baseline")
    page.get_by_test_id("save-notes").click()
    page.wait_for_function("document.querySelector('[data-testid=notes-status]').textContent === 'saved'")
    assert page.get_by_test_id("run-name").inner_text() == "seed two"

    open_page(page, "/runs")
    row = page.locator(f"tr[data-run='{runs['done_seed2']}']")
    assert row.get_by_test_id("run-name").inner_text() == "seed two"
    # env.max_steps differs between the listed runs: it gets a column.
    assert page.locator("th[data-sort='config.env.max_steps']").count() == 1

    page.locator("th[data-sort='seed']").click()
    page.wait_for_function("location.hash.includes('sort=-seed')")
    page.wait_for_function("document.querySelector('th.sorted')?.dataset.sort === 'seed'")
    with embedded_platform.client() as client:
        listed = client.get("/runs", params={"sort": "-seed", "limit": 50}).json()["items"]
    expected = [r["id"] for r in listed]
    shown = [int(r.get_attribute("data-run")) for r in page.locator("tr[data-run]").all()]
    assert shown == expected

    # A hyperparameter orders the whole list, on the server: descending on the first click, ascending on
    # the second.
    for sort in ("-config.env.max_steps", "config.env.max_steps"):
        page.locator("th[data-sort='config.env.max_steps']").click()
        page.wait_for_function(f"new URLSearchParams(location.hash.split('?')[1]).get('sort') === '{sort}'")
        with embedded_platform.client() as client:
            listed = client.get("/runs", params={"sort": sort, "limit": 50}).json()["items"]
        expected = [str(r["id"]) for r in listed]
        # The table re-renders after its fetch, a moment after the hash changes: wait for the order itself.
        page.wait_for_function(
            "expected => JSON.stringify([...document.querySelectorAll('tr[data-run]')]"
            ".map(r => r.dataset.run)) === JSON.stringify(expected)",
            arg=expected,
        )
        first = listed[0]["id"]
        assert (first == runs["other_env_params"]) == (sort == "config.env.max_steps"), sort
    no_console_errors(page)


def test_metrics_and_checkpoints_can_be_downloaded(
    page: Page, embedded_platform: Platform, runs: dict[str, int]
) -> None:
    open_page(page, f"/runs/{runs['done']}")
    href = page.get_by_test_id("export-csv").get_attribute("href")
    exported = page.request.get(href)
    assert exported.ok
    rows = list(csv.reader(io.StringIO(exported.text())))
    assert rows[0][:2] == ["step", "time"] and "SPS" in rows[0] and "losses/value" in rows[0]
    assert len(rows) == 401
    as_json = page.request.get(page.get_by_test_id("export-json").get_attribute("href")).json()
    assert len(as_json["rows"]) == 400
    # A click sends the stored token (a plain link would not), so downloads work where reads need one.
    with page.expect_request("**/metrics/export?format=csv") as sent, page.expect_download() as saved:
        page.get_by_test_id("export-csv").click()
    assert sent.value.headers.get("authorization") == f"Bearer {TOKEN}"
    assert saved.value.suggested_filename == f"run-{runs['done']}-metrics.csv"
    assert Path(saved.value.path()).read_text() == exported.text()
    # TensorBoard: the command to run, pointed at this server.
    command = page.get_by_test_id("export-tensorboard").inner_text()
    assert command.startswith(f"shoal export tensorboard {runs['done']} ")
    assert (
        command.endswith(f"--url {embedded_platform.url}") or embedded_platform.url == "http://127.0.0.1:8000"
    )
    no_console_errors(page)


def test_compare_charts_losses_and_group_colours_match_the_swatches(page: Page, runs: dict[str, int]) -> None:
    ids = f"{runs['done']},{runs['done_seed2']},{runs['default_spelled_out']},{runs['other_env_params']}"
    open_page(page, f"/compare?ids={ids}&group=config")
    wait_for_chart(page, "compare:losses/value", 10)
    # The two seeds and the run that spells the default out are one config; the other is another.
    assert chart(page, "compare:losses/value")["lines"] == 2
    colours = page.evaluate(
        """() => { const u = shoal.charts.get('compare:env/perf');
             const hex = (c) => '#' + c.match(/\\d+/g).slice(0, 3)
               .map((v) => Number(v).toString(16).padStart(2, '0')).join('');
             const strokes = u.series.slice(1).filter((s) => s.label !== 'min' && s.label !== 'max')
               .map((s) => s._stroke);
             const swatches = [...document.querySelectorAll('.swatch')]
               .map((e) => [Number(e.dataset.run), hex(getComputedStyle(e).color)]);
             return { strokes, swatches }; }"""
    )
    by_run = dict(colours["swatches"])
    same = (by_run[runs[name]] for name in ("done", "done_seed2", "default_spelled_out"))
    assert len(set(same)) == 1 and by_run[runs["done"]] == colours["strokes"][0]
    assert by_run[runs["other_env_params"]] == colours["strokes"][1] != colours["strokes"][0]
    no_console_errors(page)


def test_sweep_parallel_coordinates_fill_their_card_with_every_label_inside(page: Page, sweep: dict) -> None:
    open_page(page, f"/sweeps/{sweep['id']}")
    page.get_by_test_id("parallel").wait_for()
    fit = page.evaluate(
        """() => { const svg = document.querySelector('[data-testid=parallel]'), card = svg.parentElement;
             const box = svg.getBoundingClientRect(), inner = card.clientWidth - 28;
             const out = [...svg.querySelectorAll('text')].map((t) => t.getBoundingClientRect())
               .filter((r) => r.left < box.left - 0.5 || r.right > box.right + 0.5
                 || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5);
             return { width: box.width, inner, outside: out.length }; }"""
    )
    assert fit["width"] >= 0.95 * fit["inner"], fit
    assert fit["outside"] == 0, fit
    assert "Predictions start" in page.get_by_test_id("predicted-note").inner_text()
    no_console_errors(page)


X_RANGES = "(keys) => keys.map((k) => { const x = shoal.charts.get(k).scales.x; return [x.min, x.max]; })"


def drag_across(page: Page, chart_name: str, start: float, end: float) -> None:
    """Drag across the plot of a chart from `start` to `end` (fractions of its width)."""
    box = page.locator(f"[data-chart='{chart_name}'] .u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + start * box["width"], y)
    page.mouse.down()
    page.mouse.move(box["x"] + end * box["width"], y, steps=6)
    page.mouse.up()


def test_drag_zooms_every_chart_to_one_x_range_and_reset_restores_it(
    page: Page, runs: dict[str, int]
) -> None:
    open_page(page, f"/runs/{runs['done']}")
    for key in RUN_CHART_KEYS:
        wait_for_chart(page, key, 100)
    full = page.evaluate(X_RANGES, RUN_CHART_KEYS)
    assert page.get_by_test_id("zoom-reset").first.is_hidden()

    drag_across(page, "env/perf", 0.25, 0.5)
    page.wait_for_function(
        "(max) => shoal.charts.get('SPS').scales.x.max < max", arg=full[0][1] * 0.9, timeout=5_000
    )
    zoomed = page.evaluate(X_RANGES, RUN_CHART_KEYS)
    assert all(r == zoomed[0] for r in zoomed), zoomed  # every chart shows the same x range
    lo, hi = full[0]
    assert zoomed[0][0] == pytest.approx(lo + 0.25 * (hi - lo), rel=0.05)
    assert zoomed[0][1] == pytest.approx(lo + 0.5 * (hi - lo), rel=0.05)
    reset = page.locator("[data-chart='SPS'] [data-testid=zoom-reset]")
    assert reset.is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-run-zoomed.png", full_page=True)

    # New data (smoothing off) keeps the zoom; resetting on any chart resets them all.
    page.get_by_test_id("smoothing-toggle").uncheck()
    page.wait_for_timeout(500)
    assert page.evaluate(X_RANGES, RUN_CHART_KEYS) == zoomed
    reset.click()
    page.wait_for_function("(max) => shoal.charts.get('env/perf').scales.x.max === max", arg=full[0][1])
    assert page.evaluate(X_RANGES, RUN_CHART_KEYS) == full
    assert reset.is_hidden()

    # A double-click on a plot resets too.
    drag_across(page, "losses/value", 0.1, 0.3)
    page.wait_for_function("(max) => shoal.charts.get('SPS').scales.x.max < max", arg=full[0][1] * 0.5)
    page.locator("[data-chart='SPS'] .u-over").dblclick()
    page.wait_for_function("(max) => shoal.charts.get('env/perf').scales.x.max === max", arg=full[0][1])
    assert page.evaluate(X_RANGES, RUN_CHART_KEYS) == full
    no_console_errors(page)


def test_tensorboard_export_writes_every_point_as_event_files(
    embedded_platform: Platform, runs: dict[str, int], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`shoal export tensorboard RUN_ID... DIR`: one event file per run, read back record by record (the
    CRC-32C of each is checked), holding every logged point at its step."""
    from services.cli import main
    from services.tensorboard import read_events

    ids = [runs["done"], runs["long"]]
    assert main(["export", "tensorboard", *map(str, ids), str(tmp_path), "--url", embedded_platform.url]) == 0
    assert "tensorboard --logdir" in capsys.readouterr().out
    with embedded_platform.client() as client:
        for run_id in ids:
            table = client.get(f"/runs/{run_id}/metrics/export", params={"format": "json"}).json()
            name = "run-long-run" if run_id == runs["long"] else "run"
            (path,) = (tmp_path / name.replace("run", f"run-{run_id}", 1)).glob("events.out.tfevents.*")
            events = read_events(path)
            assert events[0]["file_version"] == "brain.Event:2"
            assert [e["step"] for e in events[1:]] == [row[0] for row in table["rows"]]
            for event, row in zip(events[1:], table["rows"], strict=True):
                assert event["wall_time"] == pytest.approx(row[1])
                expected = {k: v for k, v in zip(table["columns"][2:], row[2:], strict=True) if v is not None}
                assert event["values"] == pytest.approx(expected, rel=1e-6)  # float32 in the file
    assert "custom/once" in {k for e in read_events(path)[1:] for k in e.get("values", {})}
