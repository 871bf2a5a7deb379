from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

import envs_c
from envs_c.pyenvs.definition import spec_problems
from envs_c.registry import ENVS
from services.api.auth import reader
from services.api.errors import responses
from services.common.config import resolve

router = APIRouter(tags=["envs"], dependencies=[Depends(reader)], responses=responses(401, 429, 503))


@router.get("/envs")
def list_envs() -> list[dict[str, Any]]:
    """Every environment with its spec, its source ("built-in", the path of its spec file, or "gymnasium" /
    "pettingzoo") and the training defaults a run starts from; then the ones that cannot be used, each with
    `error` saying why (a spec that does not parse, a name defined twice, a Python environment that cannot
    be constructed or has no perf). Nothing is compiled here. The Python environments listed are the plain
    ids on SHOAL_PYTHON_ENVS and those with a spec file; any other id its patterns allow can be run too."""
    out = []
    for name in envs_c.names():
        spec = envs_c.make_spec(name).to_dict()
        out.append({**spec, "defaults": resolve(name).model_dump()})
    problems = {**ENVS.problems(), **spec_problems()}
    for name in envs_c.python_names():
        try:
            spec = envs_c.make_spec(name).to_dict()
        except ValueError as e:
            problems[name] = str(e)
            continue
        out.append({**spec, "defaults": resolve(name).model_dump()})
    for name, problem in sorted(problems.items()):
        out.append({"name": name, "source": None, "error": problem})
    return out
