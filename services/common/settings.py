"""Every setting shoal reads, from SHOAL_* environment variables, in one place.

The defaults give the embedded platform: a SQLite file and a broker that needs no server, both under
./.shoal/. Setting SHOAL_DATABASE_URL and SHOAL_BROKER_URL moves the same code onto PostgreSQL and Redis.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from envs_c.pyenvs.allowlist import DEFAULT as DEFAULT_PYTHON_ENVS

HOME = Path(".shoal")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOAL_", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{HOME / 'shoal.db'}",
        description="SQLAlchemy URL; postgresql+psycopg://... for PostgreSQL",
    )
    broker_url: str = Field(
        default=f"sqla+sqlite:///{HOME / 'broker.db'}",
        description="Celery broker; redis://host:6379/0 for Redis",
    )
    artifacts: Path = Field(default=HOME / "artifacts", description="checkpoint and replay store")
    api_token: str | None = Field(
        default=None,
        description="the bootstrap admin bearer token; more tokens come from `shoal token create`",
    )
    read_requires_token: bool = Field(
        default=False,
        description="whether reads (GET) need a token of any scope; writes always need write or admin",
    )
    write_rate: float = Field(
        default=5.0,
        gt=0,
        le=10_000,
        description="writes per second a write token may sustain (per API process)",
    )
    write_burst: int = Field(
        default=60,
        ge=1,
        le=100_000,
        description="writes a write token may make at once before write_rate binds",
    )
    auth_failures_per_minute: int = Field(
        default=60,
        ge=1,
        le=1_000_000,
        description="requests with a missing or wrong token one client address may make per minute (per API "
        "process) before they get 429 instead of 401; requests with a valid token are never counted",
    )
    max_queued_runs_per_token: int = Field(
        default=100,
        ge=1,
        le=1_000_000,
        description="queued runs a write token may have; beyond, POST /runs is 429",
    )
    min_free_disk_mb: int = Field(
        default=1024,
        ge=0,
        description="free space under the artifact store below which /healthz reports disk low",
    )
    heartbeat_timeout: float = Field(
        default=60.0, gt=0, description="seconds without a heartbeat before a run is presumed lost"
    )
    max_attempts: int = Field(default=3, ge=1, description="deliveries of a run before it fails for good")
    broker_visibility_timeout: float = Field(
        default=300.0,
        gt=0,
        description="seconds before Redis hands a received, unacknowledged message to another worker "
        "(one killed between receiving a run and starting it)",
    )
    allowed_hosts: list[str] = Field(
        default=["*"],
        description='Host headers the API answers, a JSON list such as ["shoal.example.org"]; others get 400',
    )
    db_pool_size: int = Field(default=10, ge=1, le=1000, description="connections each process keeps open")
    db_max_overflow: int = Field(
        default=5, ge=0, le=1000, description="connections opened beyond db_pool_size under load, then closed"
    )
    api_db_wait: float = Field(
        default=10.0,
        gt=0,
        description="seconds an API request waits for a database connection before it is answered 503",
    )
    api_write_concurrency: int = Field(
        default=4,
        ge=1,
        le=1000,
        description="writes one API process serves at once; more wait their turn (up to api_db_wait), so "
        "that a burst of writes cannot slow the reads down",
    )
    api_read_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="seconds an API process reuses its answer to an anonymous GET for every client asking "
        "the same URL (0: off; off too when reads need a token); its own writes clear it at once",
    )
    api_workers: int = Field(
        default=1, ge=1, le=64, description="API processes `shoal api` starts (uvicorn workers, one port)"
    )
    train_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="trainer processes `shoal up` and `shoal worker --queue train` start on one machine, "
        "each training one run at a time; they share its GPU, or take its GPUs in turn",
    )
    gpu_mps: bool = Field(
        default=False,
        description="trainers sharing a GPU (SHOAL_TRAIN_WORKERS > 1) run their kernels side by side "
        "through an NVIDIA MPS daemon that `shoal worker --queue train` and `shoal up` start for them, "
        "instead of taking turns on the GPU (CUDA_MPS_ACTIVE_THREAD_PERCENTAGE in their environment caps "
        "each one's SM share)",
    )
    outage_tolerance: float = Field(
        default=60.0,
        gt=0,
        description="seconds a worker retries an unreachable database before it gives up on a run",
    )
    requeue_queued_after: float = Field(
        default=600.0,
        gt=0,
        description="seconds a run may stay queued after its task was sent before the task is sent again "
        "(a broker that restarted empty lost it)",
    )
    metrics_flush_seconds: float = Field(default=1.0, gt=0, description="trainer metric flush period")
    elo_games: int = Field(
        default=64, ge=2, le=10_000, description="games a new checkpoint plays against each opponent (even)"
    )
    docs_dir: Path | None = Field(
        default=None,
        description="bench results the dashboard shows (bench_train.csv/.png); default <repo>/docs",
    )
    python_envs: str = Field(
        default=DEFAULT_PYTHON_ENVS,
        description="Python environments runs may use: comma-separated id patterns ('*' matches within one "
        "':'-separated part), e.g. gymnasium:CartPole-v1,pettingzoo:classic.*. An id that matches none is "
        "refused (422) before anything it names is imported; envs_c reads the variable itself",
    )
    elo_bootstrap: int = Field(default=200, ge=0, le=10_000, description="bootstrap rounds of a rating refit")

    @property
    def embedded(self) -> bool:
        return self.database_url.startswith("sqlite")


@cache
def get_settings() -> Settings:
    return Settings()
