"""The web dashboard: its page and static assets, and the few files it shows (replays, benchmark results).

The dashboard is plain JS modules and a vendored uPlot under services/api/static/, served by the API
itself: no CDN and no build step, so it works offline and from an installed wheel.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, status
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from services.api.auth import reader
from services.api.deps import RunId
from services.api.errors import responses
from services.common import artifacts
from services.common.settings import get_settings

STATIC = Path(__file__).resolve().parents[1] / "static"
REPO = Path(__file__).resolve().parents[3]

router = APIRouter(tags=["dashboard"])


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


SWAGGER = "/static/vendor/swagger-ui"


@router.get("/docs", include_in_schema=False)
def swagger_ui() -> HTMLResponse:
    """Swagger UI from the vendored copy under static/vendor/swagger-ui: FastAPI's default page loads it
    from a CDN, and is blank offline. The online validator badge is off for the same reason."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="shoal API",
        swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
        oauth2_redirect_url="/docs/oauth2-redirect",
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
    )


@router.get("/docs/oauth2-redirect", include_in_schema=False)
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


def docs_dir() -> Path:
    """Where `bench/` writes its results; SHOAL_DOCS_DIR points elsewhere (tests, deployed images)."""
    return get_settings().docs_dir or REPO / "docs"


def _versioned(url: str, path: Path | None) -> str | None:
    """The URL with the file's mtime as a cache buster, or None when the file is absent. The dashboard asks
    for this first, so an absent file never costs it a 404 (which browsers log as a console error)."""
    if path is None:
        return None
    try:
        return f"{url}?v={path.stat().st_mtime_ns}"
    except FileNotFoundError:
        return None


def _file(path: Path | None, media_type: str, what: str) -> FileResponse:
    if path is None or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {what}")
    # Revalidate every time: the trainer rewrites the replay for each newer checkpoint.
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "no-cache"})


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def _replay_path(run_id: int) -> Path | None:
    try:
        return artifacts.absolute(f"runs/{run_id}/replay.gif")
    except ValueError:  # resolved out of the artifact store (a symlink): no replay to serve
        return None


# The page, its assets and /docs stay public; what they show is a read like any other.
READ = [Depends(reader)]
FILE = responses(401, 404, 429, 503)


@router.get("/runs/{run_id}/replay.gif", response_class=FileResponse, dependencies=READ, responses=FILE)
def replay_gif(run_id: RunId) -> FileResponse:
    """The replay GIF the trainer renders from the run's latest checkpoint; 404 until there is one."""
    return _file(_replay_path(run_id), "image/gif", f"replay for run {run_id}")


@router.get("/runs/{run_id}/replay", dependencies=READ, responses=FILE)
def replay_info(run_id: RunId) -> dict[str, str | None]:
    return {"url": _versioned(f"/runs/{run_id}/replay.gif", _replay_path(run_id))}


@router.get("/benchmarks", dependencies=READ, responses=FILE)
def benchmarks() -> list[dict[str, Any]]:
    """The rows of docs/bench_train.csv (time to solved per environment); [] when it is absent."""
    path = docs_dir() / "bench_train.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [{k: _number(v) for k, v in row.items() if k} for row in csv.DictReader(f)]


@router.get("/benchmarks/figure.png", response_class=FileResponse, dependencies=READ, responses=FILE)
def benchmarks_figure() -> FileResponse:
    return _file(docs_dir() / "bench_train.png", "image/png", "benchmark figure (run bench/ first)")


@router.get("/benchmarks/figure", dependencies=READ, responses=FILE)
def benchmarks_figure_info() -> dict[str, Any]:
    """The figure's URL, and where and when the figure and table were measured (docs/bench_train.json:
    hardware, date, command); `measured` is null when that file is absent or unreadable."""
    return {
        "url": _versioned("/benchmarks/figure.png", docs_dir() / "bench_train.png"),
        "measured": _measured(docs_dir() / "bench_train.json"),
    }


def _measured(path: Path) -> dict[str, str] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return {k: str(data[k]) for k in ("hardware", "date", "command") if data.get(k) is not None}


def _number(text: str | None) -> Any:
    """CSV cells as numbers where they are numbers, so the table can sort and align them."""
    if text is None or text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
