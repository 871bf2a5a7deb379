from __future__ import annotations

from typing import Any

from fastapi import APIRouter

import envs_c
from services.common.config import resolve

router = APIRouter(tags=["envs"])


@router.get("/envs")
def list_envs() -> list[dict[str, Any]]:
    """Every environment with its spec and the training defaults a run starts from."""
    out = []
    for name in envs_c.names():
        spec = envs_c.make_spec(name).to_dict()
        out.append({**spec, "defaults": resolve(name).model_dump()})
    return out
