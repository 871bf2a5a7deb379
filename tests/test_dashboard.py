"""The web dashboard in a real browser (Debian's headless Chromium driven by Playwright) against a real API
and train worker on the embedded platform.

Runs with set histories are inserted straight into the platform's SQLite database (a failed run among them),
so their curves are known; one real cartpole run checks that a running run's chart grows without a reload.
Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from services.common.db import session_scope
from services.common.metrics import MetricWriter
from services.common.models import RunStatus
from services.common.runs import create_run
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import CI, ROOT, TOKEN, Platform, wait_for

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
) -> int:
    """A finished run of cartpole with noisy, rising curves of `points` points per key."""
    url = platform.env["SHOAL_DATABASE_URL"]
    with session_scope(url) as session:
        run = create_run(session, "cartpole", overrides, seed=seed, tags=list(tags))
        run.status = status
        run.failure_reason = failure_reason
        run.progress_steps = run.total_timesteps = points * 2048
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
        writer.append(
            i * 2048,
            {
                "env/perf": perf,
                "env/score": 500 * perf,
                "SPS": 40_000 + rng.normal(0, 3000),
                "losses/policy": -0.01 + rng.normal(0, 0.01),
                "losses/value": 2.0 * (1 - progress) + abs(rng.normal(0, 0.3)),
            },
            at=t0 + i,
        )
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
        "other_version": insert_run(p, seed=4, env_version="0123456789abcdef"),
        "failed": insert_run(
            p,
            status=RunStatus.failed,
            points=150,
            seed=5,
            tags=("nan",),
            failure_reason="nan_loss at step 307200: losses/value is not finite",
        ),
    }


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
    open_page(page, f"/runs/{runs['done']}")
    for key in RUN_CHART_KEYS:
        wait_for_chart(page, key, 100)
        drawn = chart(page, key)
        # x, the smoothed value, and the min and max edges of the raw envelope.
        assert drawn["series"] == 4 and drawn["lines"] == 1, (key, drawn["series"])
        assert drawn["x"][-1] == 400 * 2048
    page.wait_for_function("performance.getEntriesByName('first-chart').length > 0")
    assert page.locator("[data-testid=hyperparameters]").inner_text().count("learning_rate") == 1
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
    page.get_by_test_id("group").select_option("seed")
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
    try:
        open_page(page, "/benchmarks")
        assert page.get_by_test_id("bench-table").locator("tbody tr").count() == 2
        page.wait_for_function("document.querySelector('[data-testid=bench-figure]')?.naturalWidth === 1")
    finally:
        (docs / "bench_train.csv").unlink()
        (docs / "bench_train.png").unlink()
    page.reload()
    page.wait_for_selector("h2")
    assert page.get_by_test_id("unavailable").count() == 0
    assert "No benchmark results yet" in page.inner_text("main")
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
