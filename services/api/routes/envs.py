from __future__ import annotations

from typing import Any

from fastapi import APIRouter

import envs_c
from envs_c.registry import ENVS
from services.common.config import resolve

router = APIRouter(tags=["envs"])


@router.get("/envs")
def list_envs() -> list[dict[str, Any]]:
    """Every environment with its spec, its source ("built-in" or the path of its spec file) and the
    training defaults a run starts from; then the ones on SHOAL_ENV_PATH that cannot be used, each with
    `error` saying why (a spec that does not parse, a name defined twice). Nothing is compiled here."""
    out = []
    for name in envs_c.names():
        spec = envs_c.make_spec(name).to_dict()
        out.append({**spec, "defaults": resolve(name).model_dump()})
    for name, problem in sorted(ENVS.problems().items()):
        out.append({"name": name, "source": None, "error": problem})
    return out
