"""Hostile checkpoints are refused quickly, with a reason that names no server path, and never crash."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from services.elo.match import Refused, load_player
from tests.helpers import make_checkpoint

ENV = "connect4"


def _meta(stem: Path) -> dict:
    return json.loads(stem.with_suffix(".json").read_text())


def _write_meta(stem: Path, meta) -> None:
    stem.with_suffix(".json").write_text(json.dumps(meta))


def _symlinked_meta_outside(stem: Path, outside: Path) -> None:
    outside.write_text(stem.with_suffix(".json").read_text())
    stem.with_suffix(".json").unlink()
    stem.with_suffix(".json").symlink_to(outside)


def _symlinked_weights_outside(stem: Path, outside: Path) -> None:
    weights = stem.with_suffix(".safetensors")
    outside.write_bytes(weights.read_bytes())
    weights.unlink()
    weights.symlink_to(outside)


def _huge_policy(stem: Path, _: Path) -> None:
    meta = _meta(stem)
    meta["policy"]["obs_shape"] = [60000]
    meta["policy"]["config"]["hidden_size"] = 4096
    _write_meta(stem, meta)


def _truncated_weights(stem: Path, _: Path) -> None:
    weights = stem.with_suffix(".safetensors")
    weights.write_bytes(weights.read_bytes()[:100])


HOSTILE: dict[str, Callable[[Path, Path], None]] = {
    "metadata is a list": lambda stem, _: _write_meta(stem, []),
    "env_config is a list": lambda stem, _: _write_meta(stem, {**_meta(stem), "env_config": [1]}),
    "env is a number": lambda stem, _: _write_meta(stem, {**_meta(stem), "env": 7}),
    "policy is a string": lambda stem, _: _write_meta(stem, {**_meta(stem), "policy": "x"}),
    "metadata symlinked out of the store": _symlinked_meta_outside,
    "weights symlinked out of the store": _symlinked_weights_outside,
    "a huge network": _huge_policy,
    "truncated weights": _truncated_weights,
    "weights missing": lambda stem, _: stem.with_suffix(".safetensors").unlink(),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_hostile_checkpoint_is_refused_quickly_naming_no_server_path(tmp_path, kind):
    store = tmp_path / "store"
    stem = make_checkpoint(store / "runs" / "1", ENV, name="ckpt_1")
    HOSTILE[kind](stem, tmp_path / "outside")
    began = time.monotonic()
    with pytest.raises(Refused) as refused:
        load_player(str(stem), ENV, within=store)
    assert time.monotonic() - began < 1.0
    assert str(tmp_path) not in str(refused.value), refused.value


def test_the_same_checkpoint_untouched_loads(tmp_path):
    store = tmp_path / "store"
    stem = make_checkpoint(store / "runs" / "1", ENV, name="ckpt_1")
    assert load_player(str(stem), ENV, within=store).policy is not None


def test_replay_of_a_checkpoint_with_a_list_for_metadata_says_why_without_a_traceback(tmp_path):
    stem = make_checkpoint(tmp_path, ENV, name="ckpt_1")
    _write_meta(stem, [])
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "replay", str(stem), "--gif", str(tmp_path / "out.gif")],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "metadata is a list" in result.stderr
