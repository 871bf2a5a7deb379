"""Checkpoints: safetensors weights plus JSON metadata, written atomically; nothing is ever unpickled.

A checkpoint `<dir>/<stem>` is the pair `<stem>.safetensors` + `<stem>.json`. The JSON is written last, so
its presence marks a complete checkpoint. Trainer state (optimizer moments, counters, RNG) is a separate
pair `<stem>.trainer.safetensors` + `<stem>.trainer.json`, needed only to resume training.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from envs_c.spec import make_spec
from services.trainer.optim import Optimizer
from services.trainer.policy import Policy

FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with the reason."""


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json(path: Path, data: dict[str, Any]) -> None:
    _atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=1, sort_keys=True)))


def save_policy(stem: Path, policy: Policy, meta: dict[str, Any]) -> int:
    """Write weights then metadata; returns the size in bytes of the weights."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    weights = stem.with_suffix(".safetensors")
    _atomic_write(weights, lambda tmp: save_file(tensors, tmp))
    _write_json(stem.with_suffix(".json"), {"format": FORMAT, "policy": policy.describe(), **meta})
    return weights.stat().st_size


# Metadata fields and their types: anything else is refused before an environment or a policy is built.
META_TYPES: dict[str, type | tuple[type, ...]] = {
    "env": str,
    "env_version": str,
    "env_config": dict,
    "env_spec": dict,
    "policy": dict,
}
MAX_META_BYTES = 1 << 20


def _opened(path: Path, within: Path | None) -> Path:
    """The real file behind `path`; with `within`, it must lie inside that directory, so a checkpoint
    file that is a symlink out of the artifact store is refused. Messages name files, not server paths."""
    real = path.resolve()
    if within is not None and not real.is_relative_to(within.resolve()):
        raise CheckpointError(f"{path.name} lies outside the artifact store")
    return real


def read_meta(stem: Path, within: Path | None = None) -> dict[str, Any]:
    path = stem.with_suffix(".json")
    real = _opened(path, within)
    try:
        if real.stat().st_size > MAX_META_BYTES:
            raise CheckpointError(f"{path.name} is larger than {MAX_META_BYTES} bytes")
        meta = json.loads(real.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path.name} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path.name} is not valid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path.name}: metadata is a {type(meta).__name__}, not an object")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path.name}: unsupported checkpoint format {meta.get('format')!r}")
    for field, kind in META_TYPES.items():
        if field in meta and not isinstance(meta[field], kind):
            raise CheckpointError(f"{path.name}: {field} is a {type(meta[field]).__name__}")
    return meta


def load_policy(
    stem: Path,
    env: str | None = None,
    env_version: str | None = None,
    device: str = "cpu",
    within: Path | None = None,
) -> tuple[Policy, dict[str, Any]]:
    """Rebuild a policy; refuses a checkpoint made for another environment, version or spec, or (with
    `within`) one whose files lie outside that directory. The network must fit the environment's spec
    before it is built, so a forged description cannot make a huge one."""
    meta = read_meta(stem, within)
    if env is not None and meta.get("env") != env:
        raise CheckpointError(f"checkpoint is for env {meta.get('env')!r}, not {env!r}")
    if env_version is not None and meta.get("env_version") != env_version:
        raise CheckpointError(
            f"checkpoint env version {meta.get('env_version')} differs from {env_version}: "
            "the environment's C source changed since it was saved"
        )
    current = check_spec(meta)
    description = meta.get("policy") or {}
    if description.get("obs_shape") != current["observation"]["shape"]:
        raise CheckpointError(
            f"policy observation shape {description.get('obs_shape')} differs from the environment's "
            f"{current['observation']['shape']}"
        )
    if description.get("action") != current["action"]:
        raise CheckpointError(f"policy action {description.get('action')} differs from the environment's")
    weights = _opened(stem.with_suffix(".safetensors"), within)
    try:
        policy = Policy.from_description(description)
        policy.load_state_dict(load_file(str(weights)))
    except FileNotFoundError:
        raise CheckpointError(f"{weights.name} is missing") from None
    except (SafetensorError, KeyError, RuntimeError, ValueError, TypeError) as e:
        raise CheckpointError(f"{stem.name}: cannot load weights: {e}") from None
    return policy.to(device).eval(), meta


def check_spec(meta: dict[str, Any]) -> dict[str, Any]:
    """The observation and action spec stored with the checkpoint must match the environment's now;
    returns the environment's spec."""
    try:
        current = make_spec(meta["env"], **meta.get("env_config", {})).to_dict()
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint names an unusable environment: {e}") from None
    saved = meta.get("env_spec", {})
    for field in ("observation", "action", "agents_per_env"):
        if saved.get(field) != current[field]:
            raise CheckpointError(
                f"checkpoint {field} spec {saved.get(field)} differs from the environment's {current[field]}"
            )
    return current


def save_trainer_state(stem: Path, optimizer: Optimizer, counters: dict[str, Any]) -> None:
    """Optimizer moments and torch's RNG as tensors; param groups and counters as JSON."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    scalars: dict[str, Any] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"opt.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    _atomic_write(stem.with_suffix(".trainer.safetensors"), lambda tmp: save_file(tensors, tmp))
    _write_json(
        stem.with_suffix(".trainer.json"),
        {
            # Under CUDA graphs the learning rate is a device tensor; JSON takes the number.
            "param_groups": [
                {k: float(v) if torch.is_tensor(v) else v for k, v in group.items()}
                for group in state["param_groups"]
            ],
            "scalars": scalars,
            "counters": counters,
        },
    )


def load_trainer_state(stem: Path, optimizer: Optimizer) -> dict[str, Any]:
    """Restore optimizer and RNG; returns the counters saved beside them."""
    try:
        info = json.loads(stem.with_suffix(".trainer.json").read_text())
        tensors = load_file(str(stem.with_suffix(".trainer.safetensors")))
    except (FileNotFoundError, json.JSONDecodeError, SafetensorError) as e:
        raise CheckpointError(f"{stem}: trainer state unusable: {e}") from None
    state: dict[int, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        if key.startswith("opt."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = tensor
    for key, value in info["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    except ValueError as e:
        raise CheckpointError(f"{stem}: trainer state unusable: {e}") from None
    torch.set_rng_state(tensors["rng.torch"])
    return info["counters"]


def retained(steps: list[int], keep_last: int, keep_every: int) -> set[int]:
    """Which checkpoint steps a retention policy keeps: the last N, plus every M-th in save order."""
    ordered = sorted(steps)
    keep = set(ordered[-keep_last:])
    if keep_every > 0:
        keep.update(step for i, step in enumerate(ordered, start=1) if i % keep_every == 0)
    return keep


def delete(stem: Path) -> None:
    for suffix in (".json", ".safetensors", ".trainer.json", ".trainer.safetensors"):
        stem.with_suffix(suffix).unlink(missing_ok=True)
