"""Checkpoint files for download: the weights (.safetensors) or the JSON metadata beside them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from services.api.deps import db
from services.common import artifacts
from services.common.models import Checkpoint
from services.common.schemas import INT4_MAX

router = APIRouter(prefix="/checkpoints", tags=["checkpoints"])
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
    path = artifacts.absolute(checkpoint.path)
    path = path.with_name(path.name + SUFFIX[part])
    if not path.is_file():
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"checkpoint {checkpoint_id}'s {part} file is gone from the store"
        )
    return FileResponse(path, filename=f"run{checkpoint.run_id}_{path.name}")
