"""The artifact store: a directory (or a shared volume) holding checkpoints and replays."""

from __future__ import annotations

from pathlib import Path

from services.common.settings import get_settings


def root() -> Path:
    return get_settings().artifacts.resolve()


def run_dir(run_id: int) -> Path:
    return root() / "runs" / str(run_id)


def relative(path: Path) -> str:
    """How the database refers to an artifact: relative to the store, so the store can move."""
    return str(path.resolve().relative_to(root()))


def absolute(stored: str) -> Path:
    """The file for a stored reference; refuses references that would escape the store."""
    path = (root() / stored).resolve()
    if not path.is_relative_to(root()):
        raise ValueError(f"artifact path {stored!r} escapes the artifact store")
    return path
