"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/=+-]+$")]


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    env: str = Field(max_length=64)
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict, description='sections "train", "policy" and "env", as in configs/<env>.toml'
    )
    total_timesteps: int | None = Field(None, gt=0, le=10**12)
    seed: int = Field(0, ge=0, le=2**62)
    tags: list[Tag] = Field(default_factory=list, max_length=32)


class CheckpointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    step: int
    path: str
    env_version: str
    size_bytes: int
    created_at: datetime


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    env: str
    env_version: str
    status: str
    config: dict[str, Any]
    overrides: dict[str, Any]
    total_timesteps: int
    seed: int
    tags: list[str]
    failure_reason: str | None
    final_score: float | None
    final_raw_score: float | None
    cost_seconds: float | None
    cost_steps: int | None
    progress_steps: int
    attempts: int
    metric_keys: list[str]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None

    @classmethod
    def of(cls, run: Any) -> RunOut:
        data = {name: getattr(run, name) for name in cls.model_fields if name != "tags"}
        return cls(**data, tags=[t.tag for t in run.tags])


class RunDetail(RunOut):
    checkpoints: list[CheckpointOut]

    @classmethod
    def of(cls, run: Any) -> RunDetail:
        base = RunOut.of(run).model_dump()
        return cls(**base, checkpoints=[CheckpointOut.model_validate(c) for c in run.checkpoints])


class RunPage(BaseModel):
    items: list[RunOut]
    total: int
    limit: int
    offset: int


class Series(BaseModel):
    step: list[int]
    time: list[float]
    value: list[float | None]
    min: list[float | None]
    max: list[float | None]
    count: list[int]


class MetricsOut(BaseModel):
    run_id: int
    max_points: int
    series: dict[str, Series]
