"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StringConstraints,
    computed_field,
    field_validator,
)

from services.common.failures import FailureKind

MAX_RUNS = 10_000  # the most trials one sweep may run
# Row ids are PostgreSQL `integer`: a larger id names no row, and must be refused before it reaches SQL.
INT4_MAX = 2**31 - 1
RowId = Annotated[int, Field(ge=1, le=INT4_MAX)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/=+-]+$")]
RunName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Notes = Annotated[str, StringConstraints(max_length=10_000)]


def _utc(value: datetime) -> datetime:
    """Every timestamp the API returns is UTC and says so ("...Z"): SQLite hands back naive datetimes,
    PostgreSQL aware ones in the session's time zone."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    env: str = Field(max_length=64)
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict, description='sections "train", "policy" and "env", as in configs/<env>.toml'
    )
    total_timesteps: int | None = Field(None, gt=0, le=10**12)
    seed: int = Field(0, ge=0, le=2**62)
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    name: RunName | None = Field(None, description="a label for people; need not be unique")
    notes: Notes | None = None


class RunUpdate(BaseModel):
    """PATCH /runs/{id}: the fields given are replaced (null clears a name or notes); the rest are kept."""

    model_config = ConfigDict(extra="forbid")

    name: RunName | None = None
    notes: Notes | None = None
    tags: list[Tag] | None = Field(None, max_length=32, description="replaces the run's tags")

    @field_validator("tags")
    @classmethod
    def _tags_not_null(cls, tags: list[str] | None) -> list[str]:
        if tags is None:
            raise ValueError("tags cannot be null; send [] to remove every tag")
        return tags


RUN_SORTS = (
    "id",
    "created_at",
    "name",
    "env",
    "status",
    "seed",
    "final_score",
    "cost_seconds",
    "cost_steps",
    "progress_steps",
    "total_timesteps",
)
# A summary field, or a value of the resolved config by its dotted path ("config.train.gamma"), the
# hyperparameter columns of the dashboard's runs table; descending with a leading "-".
RUN_SORT_PATTERN = rf"^-?(?:{'|'.join(RUN_SORTS)}|config(?:\.[A-Za-z_][A-Za-z0-9_]{{0,63}}){{1,4}})$"
RunSort = Annotated[str, StringConstraints(pattern=RUN_SORT_PATTERN)]


class CheckpointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    step: int
    path: str
    env_version: str
    size_bytes: int
    created_at: UtcDatetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def download_url(self) -> str:
        """The weights (.safetensors); `?part=meta` gives the JSON metadata."""
        return f"/checkpoints/{self.id}/download"


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
    name: str | None
    notes: str | None
    sweep_id: int | None
    failure_kind: FailureKind | None
    failure_reason: str | None
    final_score: float | None
    final_raw_score: float | None
    cost_seconds: float | None
    cost_steps: int | None
    progress_steps: int
    attempts: int
    metric_keys: list[str]
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    heartbeat_at: UtcDatetime | None

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

    trial_id: RowId
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
    reserved_cost: float | None = Field(description="what the budget holds for the trial while it runs")
    # Published as "reason" (the API's name); the trial's `proposal` inside.
    reason: str | None = Field(validation_alias="proposal", description="how the search proposed the trial")
    retries: int


class BestTrial(BaseModel):
    trial_id: int
    run_id: int | None
    score: float


class SweepSummary(BaseModel):
    """A sweep as GET /sweeps lists it; SweepDetail adds its space, trials and front."""

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
    created_at: UtcDatetime
    best: BestTrial | None
    trials_finished: int
    trials_running: int


class SweepDetail(SweepSummary):
    max_cost: float | None
    space: dict[str, Any]
    hyperparameters: dict[str, Any]
    finished_at: UtcDatetime | None
    trials: list[TrialOut]
    pareto: list[int]


class SweepPage(BaseModel):
    items: list[SweepSummary]
    total: int
    limit: int
    offset: int


class MatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    a: RowId | str = Field(description='a checkpoint id, or an anchor: "random" or "scripted"')
    b: RowId | str = Field(description='a checkpoint id, or an anchor: "random" or "scripted"')
    games: int = Field(ge=2, le=10_000, description="even: games are played in seat-swapped pairs")
    env: str | None = Field(None, max_length=64, description="needed only when both players are anchors")

    @field_validator("games")
    @classmethod
    def _even(cls, games: int) -> int:
        if games % 2:
            raise ValueError("games must be even (seat-swapped pairs)")
        return games


class RatedPlayer(BaseModel):
    id: str = Field(description="the checkpoint's id, or the anchor's name")
    kind: Literal["checkpoint", "anchor"]
    label: str
    checkpoint_id: int | None
    run_id: int | None
    step: int | None
    elo: float
    lo: float = Field(description="the 95% bootstrap interval's lower end")
    hi: float
    games: int


class LeaderboardOut(BaseModel):
    env: str
    anchor: str = Field(description="the player pinned at 1000")
    players: list[RatedPlayer] = Field(description="strongest first, a page of them")
    total: int = Field(description="rated players of the env")
    limit: int
    offset: int


class MatrixOut(BaseModel):
    """Row against column, in leaderboard order."""

    players: list[str]
    labels: list[str]
    games: list[list[int]]
    score: list[list[float | None]] = Field(description="row's mean score against column; null without games")
    total: int = Field(description="rated players of the env; the matrix holds the `limit` strongest")


class EloPoint(BaseModel):
    step: int
    checkpoint_id: int
    elo: float
    lo: float
    hi: float
    games: int


class RunEloOut(BaseModel):
    run_id: int
    points: list[EloPoint] = Field(description="one per rated checkpoint, by step")


class QueuedBatch(BaseModel):
    id: int
    games: int
    seed: int


class MatchQueued(BaseModel):
    """A POST /matches answer: the job to poll at `status_url`."""

    job_id: int
    env: str
    a: str
    b: str
    games: int
    batches: list[QueuedBatch]
    status_url: str


class MatchBatchOut(BaseModel):
    id: int
    a: str
    b: str
    games: int
    seed: int
    status: Literal["queued", "played", "refused", "failed"]
    reason: str | None
    seconds: float | None


class MatchJobOut(BaseModel):
    """A POST /matches job as GET /matches/{job_id} reports it while the elo workers play it."""

    job_id: int
    env: str
    status: Literal["queued", "running", "finished"] = Field(
        description="queued: no batch played yet; finished: every batch played, refused or failed (the "
        "ratings refit follows within seconds)"
    )
    batches_pending: int
    games: int = Field(description="games asked for, over all batches")
    games_played: int
    score_a: float | None = Field(
        description="a's mean score over the games played (1 win, 0.5 draw, 0 loss); null before any"
    )
    created_at: UtcDatetime
    finished_at: UtcDatetime | None
    batches: list[MatchBatchOut]
