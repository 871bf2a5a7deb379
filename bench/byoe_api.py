"""Bring your own environment (issue 15), end to end: the tutorial's environment trained through the API.

    python bench/byoe_api.py [--port 8765] [--timeout 900]

As a reader of docs/envs.md would: its `coins` header and spec are copied out of the tutorial's code blocks
into a temporary directory outside the repository, `shoal up` starts the whole platform there with that
directory on SHOAL_ENV_PATH (on the embedded default, or on the PostgreSQL and Redis that SHOAL_DATABASE_URL
and SHOAL_BROKER_URL name), and `POST /runs` trains `coins` with its spec's defaults.
Prints one JSON line: the run's status, steps, final eval perf against the spec's `solved`, the seconds from
the POST to the end of the run, and the replay GIF's size (checked to be a GIF).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tutorial_env(directory: Path) -> float:
    """coins.h and coins.env.toml from docs/envs.md into `directory`; returns the spec's solved threshold."""
    text = (ROOT / "docs" / "envs.md").read_text()
    (header,) = re.findall(r"```c\n(.*?)```", text, re.S)
    spec = re.findall(r"```toml\n(.*?)```", text, re.S)[0]
    (directory / "coins.h").write_text(header)
    (directory / "coins.env.toml").write_text(spec)
    return float(tomllib.loads(spec)["solved"])


def call(base: str, token: str, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shoal-byoe-") as tmp:
        work, envs = Path(tmp), Path(tmp) / "envs"
        envs.mkdir()
        solved = tutorial_env(envs)
        env = {**os.environ, "SHOAL_ENV_PATH": str(envs), "SHOAL_ENV_CACHE": str(work / "cache")}
        shoal = Path(sys.executable).with_name("shoal")
        log = (work / "up.log").open("w")
        up = subprocess.Popen(
            [str(shoal), "up", "--port", str(args.port)],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{args.port}"
        try:
            token_file = work / ".shoal" / "api_token"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if token_file.exists() and call(base, "", "GET", "/healthz")[0] == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.5)
            token = token_file.read_text().strip()
            status, body = call(base, token, "POST", "/runs", {"env": "coins"})
            assert status == 201, body
            run_id, started = json.loads(body)["id"], time.monotonic()
            while time.monotonic() - started < args.timeout:
                run = json.loads(call(base, token, "GET", f"/runs/{run_id}")[1])
                if run["status"] in ("succeeded", "failed", "cancelled"):
                    break
                time.sleep(2.0)
            seconds = time.monotonic() - started
            gif_status, gif = 0, b""
            for _ in range(30):  # the GIF is rendered from the last checkpoint, just after the run ends
                gif_status, gif = call(base, token, "GET", f"/runs/{run_id}/replay.gif")
                if gif_status == 200:
                    break
                time.sleep(1.0)
            print(
                json.dumps(
                    {
                        "env": "coins",
                        "status": run["status"],
                        "steps": run.get("progress_steps"),
                        "final_eval_perf": run.get("final_score"),
                        "solved_threshold": solved,
                        "solved": (run.get("final_score") or 0.0) >= solved,
                        "seconds_post_to_end": round(seconds, 1),
                        "replay_gif_bytes": len(gif) if gif_status == 200 and gif[:4] == b"GIF8" else None,
                    }
                )
            )
        finally:
            os.killpg(up.pid, signal.SIGINT)
            try:
                up.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
            log.close()


if __name__ == "__main__":
    main()
