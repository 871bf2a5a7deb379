"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StringConstraints

MAX_RUNS = 10_000  # the most trials one sweep may run
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


class SweepCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    env: str = Field(max_length=64)
    space: dict[str, Any] | None = Field(
        None, description="default: the [sweep] section of configs/<env>.toml"
    )
    hyperparameters: dict[str, Any] = Field(default_factory=dict, description="fixed values every trial uses")
    metric: Literal["perf", "score", "elo"] = Field(
        "perf", description="elo: the final checkpoint's rating against the anchor pool (two-player envs)"
    )
    goal: Literal["maximize", "minimize"] = "maximize"
    max_runs: int | None = Field(
        None,
        ge=1,
        le=MAX_RUNS,
        description=f"default 20, or {MAX_RUNS} with a budget: the budget ends the sweep",
    )
    parallelism: int = Field(2, ge=1, le=256)
    max_cost: float | None = Field(None, gt=0)
    cost_unit: Literal["seconds", "steps"] = Field(
        "seconds", description="what a trial costs: worker-seconds of training, or agent steps"
    )
    # Strict: a JSON true must not pass as a budget of 1.
    budget: StrictFloat | str | None = Field(
        None,
        description="the sweep's total cost in cost_unit: a number, a duration ('600s', '10min', '2h') or "
        "steps ('5e8 steps', '500M steps'); none: max_runs alone ends the sweep",
    )
    seed: int = Field(0, ge=0, le=2**31)
    max_retries: int = Field(2, ge=0, le=10, description="re-runs of a trial whose worker was lost")
    early_stopping: bool = True


class Promote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trial_id: int
    total_timesteps: int = Field(gt=0, le=10**12)


class TrialOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    number: int
    run_id: int | None
    params: dict[str, Any]
    status: str
    score: float | None
    cost_seconds: float | None
    cost_steps: int | None
    failure_reason: str | None
    predicted_score: float | None
    predicted_cost: float | None
    reason: str | None
    retries: int


class BestTrial(BaseModel):
    trial_id: int
    run_id: int | None
    score: float


class SweepSummary(BaseModel):
    id: int
    env: str
    status: str
    metric: str
    goal: str
    cost_unit: str
    max_runs: int
    parallelism: int
    budget: float | None
    budget_used: float = Field(description="cost of the finished runs plus the progress of those in flight")
    budget_left: float | None
    created_at: datetime
    trials_finished: int
    trials_running: int
    best: BestTrial | None


class SweepDetail(BaseModel):
    id: int
    env: str
    status: str
    metric: str
    goal: str
    cost_unit: str
    max_runs: int
    parallelism: int
    max_cost: float | None
    budget: float | None
    budget_used: float = Field(description="cost of the finished runs plus the progress of those in flight")
    budget_left: float | None
    space: dict[str, Any]
    hyperparameters: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None
    trials: list[TrialOut]
    pareto: list[int]
    best: BestTrial | None


class SweepPage(BaseModel):
    items: list[SweepSummary]
