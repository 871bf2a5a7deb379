"""The `make up` path: `shoal up --demo` on the embedded default, with no PostgreSQL or Redis."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, free_port

pytestmark = pytest.mark.slow


def test_shoal_up_demo_trains_cartpole_on_the_embedded_default(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    env["PYTHONPATH"] = str(ROOT)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "up", "--demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 240
    try:
        for line in process.stdout:
            lines.append(line)
            if "demo: finished" in line or time.monotonic() > deadline:
                break
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    output = "".join(lines)
    assert f"dashboard: http://127.0.0.1:{port}/" in output, output[-3000:]
    finished = re.search(r"demo: finished (\w+): final perf ([\d.]+)", output)
    assert finished, output[-3000:]
    assert finished.group(1) == "succeeded"
    assert float(finished.group(2)) >= 0.9
    assert (tmp_path / ".shoal" / "shoal.db").exists()
    assert list((tmp_path / ".shoal" / "artifacts" / "runs").glob("*/ckpt_*.safetensors"))
