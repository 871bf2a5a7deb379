"""The training configuration schema and the per-environment defaults in configs/<env>.toml.

A run's configuration has three sections: `train` (PPO), `policy` (network) and `env` (the C environment's
own settings, validated by the environment registry). Unknown keys are refused with their dotted name, so
a typo or a stale key from an older schema fails at submission instead of silently running defaults.
A user environment (SHOAL_ENV_PATH) carries its defaults in the [train], [policy] and [sweep] tables of its
spec file instead of a file here.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from envs_c.registry import ENVS, lookup

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
MAX_BATCH = 1 << 24


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, validate_default=True)


class TrainConfig(Strict):
    total_timesteps: int = Field(500_000, gt=0, le=10**12)
    num_envs: int = Field(64, ge=1, le=1 << 20)
    num_threads: int = Field(
        1,
        ge=0,
        le=256,
        description="threads (a Python env: worker processes) stepping env shards; 0: one per CPU core "
        "available (a Python env on a GPU: one fewer)",
    )
    num_steps: int = Field(64, ge=1, le=8192, description="rollout horizon per update")
    minibatch_size: int = Field(1024, ge=1, le=MAX_BATCH)
    bptt_horizon: int = Field(
        0,
        ge=0,
        le=8192,
        description="steps a recurrent policy learns through: each agent's rollout is cut into segments "
        "this long, each learnt from the state it was acted from (0: the whole rollout, num_steps)",
    )
    update_epochs: int = Field(4, ge=1, le=64)
    learning_rate: float = Field(3e-3, gt=0, le=1)
    anneal_lr: bool = True
    optimizer: Literal["adam", "muon"] = Field(
        "adam", description="muon: Muon for hidden weight matrices, Adam for the rest"
    )
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    adam_beta2: float = Field(0.999, ge=0, lt=1)
    adam_eps: float = Field(1e-5, gt=0, le=1)
    muon_momentum: float = Field(0.95, ge=0, lt=1)
    gamma: float = Field(0.99, gt=0, le=1)
    gae_lambda: float = Field(0.95, ge=0, le=1)
    vtrace: bool = Field(False, description="clip importance weights in the advantage (V-trace-like)")
    vtrace_rho_clip: float = Field(1.0, gt=0, le=100)
    vtrace_c_clip: float = Field(1.0, gt=0, le=100)
    clip_coef: float = Field(0.2, gt=0, le=10)
    vf_coef: float = Field(0.5, ge=0, le=100)
    vf_clip_coef: float = Field(0.2, ge=0, le=100)
    ent_coef: float = Field(0.01, ge=0, le=10)
    max_grad_norm: float = Field(0.5, gt=0, le=1000)
    norm_adv: bool = True
    reward_clamp: float | None = Field(None, gt=0, description="clamp rewards to [-x, x]")
    checkpoint_interval: int = Field(50, ge=1, description="epochs between checkpoints")
    keep_last: int = Field(3, ge=1, le=1000, description="checkpoints kept: the last N ...")
    keep_every: int = Field(0, ge=0, description="... plus every M-th (0: none)")
    eval_episodes: int = Field(
        64,
        ge=1,
        le=100_000,
        description="environments in the final evaluation; every agent's first episode counts",
    )
    eval_deterministic: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cuda_graphs: bool = Field(
        True, description="on a GPU, replay the acting step and the Adam minibatch update as CUDA graphs"
    )
    torch_threads: int = Field(
        1,
        ge=0,
        le=256,
        description="CPU threads for torch; small nets run fastest on one (0: torch's default)",
    )

    @model_validator(mode="after")
    def _batch_fits(self) -> TrainConfig:
        batch = self.num_envs * self.num_steps
        if batch > MAX_BATCH:
            raise ValueError(f"num_envs * num_steps = {batch} exceeds {MAX_BATCH}")
        return self


class PolicyConfig(Strict):
    encoder: Literal["auto", "mlp", "conv"] = "auto"
    hidden_size: int = Field(64, ge=4, le=4096)
    num_layers: int = Field(2, ge=1, le=8)
    recurrent: Literal["none", "lstm", "gru"] = "none"
    obs_norm: bool = False


class SelfPlayConfig(Strict):
    """Who fills the opponent seat of a two-player game, as shares of the environments: the learner itself
    (mirror), snapshots of this run (past, sampled by prioritised fictitious self-play) and the scripted bot.
    Each environment draws its opponent again when a game ends; only the learner's seat trains."""

    mirror: float = Field(0.5, ge=0, le=1)
    past: float = Field(0.3, ge=0, le=1)
    bot: float = Field(0.2, ge=0, le=1)
    pool_size: int = Field(8, ge=1, le=64, description="snapshots kept; the oldest goes first")
    snapshot_interval: int = Field(20, ge=1, le=100_000, description="epochs between snapshots")
    pfsp_power: float = Field(
        2.0, ge=0, le=16, description="a snapshot's weight is (1 - the learner's win rate against it)^p"
    )
    pool: list[int] = Field(
        [], max_length=16, description="checkpoint ids (of this environment) that stay in the pool all run"
    )

    @model_validator(mode="after")
    def _shares_sum_to_one(self) -> SelfPlayConfig:
        total = self.mirror + self.past + self.bot
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"mirror + past + bot must sum to 1, got {total:g}")
        return self


class RunConfig(Strict):
    train: TrainConfig = TrainConfig()
    policy: PolicyConfig = PolicyConfig()
    env: dict[str, Any] = {}
    selfplay: SelfPlayConfig | None = None


class ConfigError(ValueError):
    """A configuration problem; `field` is the dotted path of the offending key."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnknownEnv(ConfigError):
    """An environment that is not on the path, or is but cannot be used (`why` says which)."""

    def __init__(self, why: str):
        super().__init__("env", why)


@cache
def _config_file(env: str) -> dict[str, Any]:
    path = CONFIG_DIR / f"{env}.toml"
    if not path.exists():
        return {}
    with path.open("rb") as f:
        return tomllib.load(f)


def env_defaults(env: str) -> dict[str, Any]:
    """configs/<env>.toml as a dict, else the defaults in the environment's spec file (or {})."""
    definition = ENVS.get(env)
    return _config_file(env) or (dict(definition.defaults) if definition is not None else {})


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve(env: str, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Defaults of `env` overlaid with `overrides`, validated; raises ConfigError naming the field."""
    try:
        definition = lookup(env)
    except ValueError as e:
        raise UnknownEnv(str(e)) from None
    defaults = {k: v for k, v in env_defaults(env).items() if k in RunConfig.model_fields}
    raw = merge(defaults, overrides or {})
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "config"
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(field, message) from None
    try:
        config.env = definition.config(config.env)
    except ValueError as e:
        raise ConfigError("env", str(e)) from None
    if config.selfplay is not None:
        if definition.players is None:
            raise ConfigError("selfplay", f"{env} is a single-player environment: there is no seat to fill")
        if config.policy.recurrent != "none":
            raise ConfigError("selfplay", "self-play needs a feed-forward policy (policy.recurrent = none)")
    # The batch is agents x steps; an environment can hold many agents (snake's arenas, two-seat games).
    agents = config.train.num_envs * definition.agents_per_env(config.env)
    batch = agents * config.train.num_steps
    if batch > MAX_BATCH:
        raise ConfigError("train.num_envs", f"{agents} agents x {config.train.num_steps} steps is too large")
    if config.train.minibatch_size > batch:
        raise ConfigError(
            "train.minibatch_size", f"{config.train.minibatch_size} exceeds the batch ({batch})"
        )
    segment, steps = config.train.bptt_horizon, config.train.num_steps
    if segment and steps % segment:
        raise ConfigError(
            "train.bptt_horizon",
            f"{segment} must divide num_steps ({steps}): the rollout is cut into segments of that many steps",
        )
    return config


def known_parameters(env: str) -> set[str]:
    """Every dotted name a sweep may vary for `env`: train.*, policy.* and the environment's settings."""
    names = {f"train.{name}" for name in TrainConfig.model_fields}
    names |= {f"policy.{name}" for name in PolicyConfig.model_fields}
    return names | {f"env.{p.name}" for p in ENVS[env].params}


def default_space(env: str) -> dict[str, Any] | None:
    """The sweep space in configs/<env>.toml ([sweep.train.learning_rate] ...), if it has one."""
    return env_defaults(env).get("sweep")


def coerce_types(env: str, params: dict[str, Any]) -> dict[str, Any]:
    """Round swept values that land on integer fields (a log-normal `total_timesteps`, say), so a sweep's
    continuous search space maps onto the schema's types; everything else passes through unchanged."""
    integer = {f"train.{n}" for n, f in TrainConfig.model_fields.items() if f.annotation is int}
    integer |= {f"policy.{n}" for n, f in PolicyConfig.model_fields.items() if f.annotation is int}
    integer |= {f"env.{p.name}" for p in ENVS[env].params if p.ctype == "int"}
    out: dict[str, Any] = {}
    for section, values in params.items():
        if not isinstance(values, dict):
            out[section] = values
            continue
        out[section] = {
            name: round(value) if f"{section}.{name}" in integer and isinstance(value, float) else value
            for name, value in values.items()
        }
    return out
