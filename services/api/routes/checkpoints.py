"""Checkpoint files for download: the weights (.safetensors) or the JSON metadata beside them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from services.api.auth import reader
from services.api.deps import db
from services.api.errors import NOT_FOUND, READ
from services.common import artifacts
from services.common.models import Checkpoint
from services.common.schemas import INT4_MAX

router = APIRouter(
    prefix="/checkpoints",
    tags=["checkpoints"],
    dependencies=[Depends(reader)],
    responses={**READ, **NOT_FOUND},
)
SUFFIX = {"weights": ".safetensors", "meta": ".json"}


@router.get("/{checkpoint_id}/download", response_class=FileResponse)
def download(
    checkpoint_id: Annotated[int, Path(ge=1, le=INT4_MAX)],
    session: Session = Depends(db),
    part: Annotated[str, Query(pattern="^(weights|meta)$", description="weights or meta")] = "weights",
) -> FileResponse:
    """What `shoal replay` and the Elo workers load: `ckpt_<step>.safetensors`, or its `.json`."""
    checkpoint = session.get(Checkpoint, checkpoint_id)
    if checkpoint is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"checkpoint {checkpoint_id} does not exist")
    try:
        # The file itself is resolved, not only its stem: a .json symlinked out of the store is refused.
        path = artifacts.absolute(checkpoint.path + SUFFIX[part])
    except ValueError:
        path = None
    if path is None or not path.is_file():
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"checkpoint {checkpoint_id}'s {part} file is gone from the store"
        )
    return FileResponse(path, filename=f"run{checkpoint.run_id}_{path.name}")
