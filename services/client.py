"""A Python client for the shoal API, importable as `shoal.client` (this module, re-exported there).

    from shoal.client import Client
    shoal = Client("http://127.0.0.1:8000", token="...")     # token: SHOAL_API_TOKEN or .shoal/api_token
    run = shoal.create_run("cartpole", {"train": {"learning_rate": 3e-4}}, total_timesteps=200_000)
    for state in shoal.follow(run["id"]):                     # every 2 s until the run ends
        print(state["status"], state["progress_steps"], state.get("env/perf"))
    df = shoal.metrics(run["id"])                             # a DataFrame with pandas, else plain lists

Standard library only (urllib), so it installs anywhere; pandas is an optional extra (`shoal[client]`).
Every error the API answers is raised as a typed ShoalError carrying the API's message.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

FINISHED = ("succeeded", "failed", "cancelled")


class ShoalError(Exception):
    """An error answered by the API (or no answer at all: status 0). `detail` is the API's own."""

    def __init__(self, status: int, message: str, detail: Any = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail


class AuthError(ShoalError):
    """401/403: a write without the right bearer token."""


class NotFound(ShoalError):
    """404: no such run, sweep, checkpoint or job."""


class InvalidRequest(ShoalError):
    """400/413/422: the request was refused; `errors` lists {loc, msg} naming each offending field."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.detail if isinstance(self.detail, list) else []


class Unavailable(ShoalError):
    """No answer (connection refused, timeout) or 503: retry later."""


class ServerError(ShoalError):
    """Any other 5xx."""


def _error_for(status: int, message: str, detail: Any) -> ShoalError:
    if status in (401, 403):
        return AuthError(status, message, detail)
    if status == 404:
        return NotFound(status, message, detail)
    if status in (400, 409, 413, 422):
        return InvalidRequest(status, message, detail)
    if status in (0, 502, 503, 504):
        return Unavailable(status, message, detail)
    return ServerError(status, message, detail)


def _describe(detail: Any) -> str:
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg', d)}"
            if isinstance(d, dict)
            else str(d)
            for d in detail
        )
    return str(detail)


def _default_token() -> str | None:
    token = os.environ.get("SHOAL_API_TOKEN")
    if token:
        return token
    path = Path(os.environ.get("SHOAL_HOME", ".shoal")) / "api_token"
    return path.read_text().strip() if path.is_file() else None


def _pandas(as_frame: bool | None):
    """pandas when wanted and installed; None for plain lists. as_frame=True without pandas is an error."""
    if as_frame is False:
        return None
    try:
        import pandas
    except ImportError:
        if as_frame:
            raise ImportError("as_frame=True needs pandas: pip install 'shoal[client]'") from None
        return None
    return pandas


class Client:
    """The shoal API over HTTP. Reads need no token; writes need the server's SHOAL_API_TOKEN."""

    def __init__(self, url: str = "http://127.0.0.1:8000", token: str | None = None, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.token = token if token is not None else _default_token()
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # ---- transport ---------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None, params: dict | None = None) -> bytes:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        url = f"{self.url}{path}" + (f"?{urllib.parse.urlencode(query, doseq=True)}" if query else "")
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            # On reads too: a read with a token is never served from the API's shared cache, so a script
            # sees its own writes at once, and reads work where they need a token.
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                detail = json.loads(raw).get("detail")
            except (ValueError, AttributeError):
                detail = raw.decode(errors="replace")[:500]
            message = f"{method} {path}: {e.code} {_describe(detail) if detail else e.reason}"
            raise _error_for(e.code, message, detail) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            raise Unavailable(0, f"{method} {path}: no answer from {self.url} ({reason})") from None

    def _json(self, method: str, path: str, body: Any = None, params: dict | None = None) -> Any:
        raw = self._request(method, path, body, params)
        return json.loads(raw) if raw else None

    # ---- runs --------------------------------------------------------------------------------------------

    def create_run(
        self,
        env: str,
        hyperparameters: dict[str, Any] | None = None,
        *,
        total_timesteps: int | None = None,
        seed: int = 0,
        tags: Sequence[str] = (),
        name: str | None = None,
        notes: str | None = None,
    ) -> dict[str, Any]:
        """Launch a run; `hyperparameters` has the sections "train", "policy" and "env"."""
        body = {
            "env": env,
            "hyperparameters": hyperparameters or {},
            "total_timesteps": total_timesteps,
            "seed": seed,
            "tags": list(tags),
            "name": name,
            "notes": notes,
        }
        return self._json("POST", "/runs", {k: v for k, v in body.items() if v is not None})

    def run(self, run_id: int) -> dict[str, Any]:
        return self._json("GET", f"/runs/{run_id}")

    def runs(
        self,
        *,
        env: str | None = None,
        status: str | None = None,
        tag: str | None = None,
        q: str | None = None,
        sort: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """One page of runs, newest first unless `sort` names a field ("-final_score", "created_at", ...) or
        a value of the resolved config ("config.train.gamma")."""
        params = {
            "env": env,
            "status": status,
            "tag": tag,
            "q": q,
            "sort": sort,
            "limit": limit,
            "offset": offset,
        }
        return self._json("GET", "/runs", params=params)["items"]

    def update_run(self, run_id: int, **fields: Any) -> dict[str, Any]:
        """Set a run's `name`, `notes` or `tags` (None clears a name or notes)."""
        return self._json("PATCH", f"/runs/{run_id}", fields)

    def cancel(self, run_id: int) -> dict[str, Any]:
        return self._json("POST", f"/runs/{run_id}/cancel")

    def wait(self, run_id: int, timeout: float | None = None, every: float = 2.0) -> dict[str, Any]:
        """The run once it has finished (succeeded, failed or cancelled); TimeoutError after `timeout` s."""
        for state in self.follow(run_id, keys=(), every=every, timeout=timeout):
            if state["status"] in FINISHED:
                return self.run(run_id)
        raise AssertionError("unreachable")  # follow() ends only on a finished run or a timeout

    def follow(
        self,
        run_id: int,
        keys: Sequence[str] = ("env/perf", "env/score", "SPS"),
        every: float = 2.0,
        timeout: float | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield the run's status, progress and the latest value of `keys` every `every` seconds, ending
        with the state in which it finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            state = {
                k: run[k] for k in ("id", "status", "progress_steps", "total_timesteps", "failure_reason")
            }
            wanted = [k for k in keys if k in run["metric_keys"]]
            if wanted:
                series = self._json(
                    "GET", f"/runs/{run_id}/metrics", params={"keys": ",".join(wanted), "max_points": 2000}
                )["series"]
                for key, s in series.items():
                    values = [v for v in s["value"] if v is not None]
                    state[key] = values[-1] if values else None
            yield state
            if run["status"] in FINISHED:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} is still {run['status']} after {timeout} s")
            time.sleep(every)

    def metrics(
        self,
        run_id: int,
        keys: Sequence[str] | None = None,
        *,
        max_points: int = 2000,
        smoothing: float = 0.0,
        as_frame: bool | None = None,
    ):
        """Downsampled series (each bucket's mean, min and max over its points), as the dashboard draws.

        With pandas: a DataFrame indexed by step with one column per key (the bucket means). Without, or
        with as_frame=False: {key: {"step": [...], "time": [...], "value": [...], "min", "max", "count"}}.
        """
        params: dict[str, Any] = {"max_points": max_points, "smoothing": smoothing}
        if keys:
            params["keys"] = ",".join(keys)
        series = self._json("GET", f"/runs/{run_id}/metrics", params=params)["series"]
        pandas = _pandas(as_frame)
        if pandas is None:
            return series
        columns = {
            key: pandas.Series(s["value"], index=s["step"], dtype="float64") for key, s in series.items()
        }
        frame = pandas.DataFrame(columns)
        frame.index.name = "step"
        return frame

    def history(self, run_id: int, keys: Sequence[str] | None = None, *, as_frame: bool | None = None):
        """Every logged point at full resolution, one row per step (columns step, time and each key).

        With pandas: a DataFrame; without, or with as_frame=False: a list of dicts, one per step.
        """
        params = {"format": "json", "keys": ",".join(keys) if keys else None}
        table = self._json("GET", f"/runs/{run_id}/metrics/export", params=params)
        pandas = _pandas(as_frame)
        if pandas is None:
            return [dict(zip(table["columns"], row, strict=True)) for row in table["rows"]]
        return pandas.DataFrame(table["rows"], columns=table["columns"], dtype="float64").astype(
            {"step": "int64"}
        )

    def export_metrics(self, run_id: int, path: str | os.PathLike, format: str = "csv") -> Path:
        """Write the run's full-resolution metrics to `path` as CSV or JSON; returns the path."""
        data = self._request("GET", f"/runs/{run_id}/metrics/export", params={"format": format})
        out = Path(path)
        out.write_bytes(data)
        return out

    def download_checkpoint(self, checkpoint_id: int, path: str | os.PathLike, part: str = "weights") -> Path:
        """Save a checkpoint's weights (.safetensors) or, with part="meta", its JSON metadata."""
        data = self._request("GET", f"/checkpoints/{checkpoint_id}/download", params={"part": part})
        out = Path(path)
        out.write_bytes(data)
        return out

    # ---- sweeps ------------------------------------------------------------------------------------------

    def create_sweep(self, env: str, **fields: Any) -> dict[str, Any]:
        """Start a sweep: space, hyperparameters, metric, goal, budget, cost_unit, max_runs, parallelism...
        (the fields of POST /sweeps)."""
        return self._json("POST", "/sweeps", {"env": env, **fields})

    def sweep(self, sweep_id: int) -> dict[str, Any]:
        return self._json("GET", f"/sweeps/{sweep_id}")

    def sweeps(self) -> list[dict[str, Any]]:
        return self._json("GET", "/sweeps")["items"]

    def trials(self, sweep_id: int, *, as_frame: bool | None = None):
        """A sweep's trials; with pandas a DataFrame with one column per swept parameter ("train.gamma")."""
        trials = self.sweep(sweep_id)["trials"]
        pandas = _pandas(as_frame)
        if pandas is None:
            return trials
        rows = []
        for t in trials:
            row = {k: v for k, v in t.items() if k != "params"}
            row.update(_flatten(t["params"]))
            rows.append(row)
        return pandas.DataFrame(rows).set_index("number") if rows else pandas.DataFrame()

    def promote(self, sweep_id: int, trial_id: int, total_timesteps: int) -> dict[str, Any]:
        """A new run with the trial's exact hyperparameters, trained for `total_timesteps`."""
        body = {"trial_id": trial_id, "total_timesteps": total_timesteps}
        return self._json("POST", f"/sweeps/{sweep_id}/promote", body)

    def stop_sweep(self, sweep_id: int) -> dict[str, Any]:
        return self._json("POST", f"/sweeps/{sweep_id}/stop")

    def wait_sweep(self, sweep_id: int, timeout: float | None = None, every: float = 5.0) -> dict[str, Any]:
        """The sweep once it is no longer running; TimeoutError after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (sweep := self.sweep(sweep_id))["status"] == "running":
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"sweep {sweep_id} is still running after {timeout} s")
            time.sleep(every)
        return sweep

    # ---- ratings -----------------------------------------------------------------------------------------

    def leaderboard(self, env: str, *, limit: int = 100, offset: int = 0, as_frame: bool | None = None):
        """Rated players of a two-player env, strongest first (elo, lo, hi, games, run_id, step): one page
        of `limit` (at most 500) from `offset`."""
        params = {"env": env, "limit": limit, "offset": offset}
        players = self._json("GET", "/leaderboard", params=params)["players"]
        pandas = _pandas(as_frame)
        return players if pandas is None else pandas.DataFrame(players)

    def matrix(self, env: str) -> dict[str, Any]:
        return self._json("GET", f"/leaderboard/{urllib.parse.quote(env, safe='')}/matrix")

    def play(self, a: int | str, b: int | str, games: int, env: str | None = None) -> dict[str, Any]:
        """Queue `games` (even) games of a against b: checkpoint ids, or the anchors "random"/"scripted"
        (then `env` too). Returns the job; poll it with match_job() or wait_match_job()."""
        body = {"a": a, "b": b, "games": games, **({"env": env} if env else {})}
        return self._json("POST", "/matches", body)

    def match_job(self, job_id: int) -> dict[str, Any]:
        return self._json("GET", f"/matches/{job_id}")

    def wait_match_job(self, job_id: int, timeout: float | None = None, every: float = 1.0) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (job := self.match_job(job_id))["status"] != "finished":
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"match job {job_id} is still {job['status']} after {timeout} s")
            time.sleep(every)
        return job

    # ---- the rest ----------------------------------------------------------------------------------------

    def envs(self) -> list[dict[str, Any]]:
        return self._json("GET", "/envs")

    def health(self) -> dict[str, Any]:
        """The database's and broker's liveness; raises Unavailable when either is down (503)."""
        return self._json("GET", "/healthz")


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(_flatten(value, path))
        else:
            out[path] = value
    return out


__all__ = [
    "AuthError",
    "Client",
    "InvalidRequest",
    "NotFound",
    "ServerError",
    "ShoalError",
    "Unavailable",
]
