"""The PPO training loop, readable top to bottom: rollout, advantages, update, log, checkpoint, evaluate.

It knows nothing of databases or queues. Whoever runs it passes a `Sink`, which receives metric rows and
checkpoints and says whether the run was cancelled; the CLI prints, the Celery task writes to the database.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

import envs_c
from services.common.config import RunConfig
from services.trainer import checkpoint as ckpt
from services.trainer.policy import Policy
from services.trainer.ppo import advantages, explained_variance, ppo_loss

Interrupt = Literal["cancel", "preempt"] | None


class Sink(Protocol):
    def metrics(self, step: int, values: dict[str, float]) -> None: ...
    def checkpoint(self, step: int, stem: Path, size_bytes: int, meta: dict[str, Any]) -> None: ...

    def interrupt(self) -> Interrupt:
        """ "cancel" stops the run for good; "preempt" (the worker is shutting down) stops it after a
        checkpoint, so that another worker can resume it."""


@dataclass
class Result:
    status: str  # succeeded | failed | cancelled | preempted
    steps: int
    seconds: float
    failure_reason: str | None = None
    final_score: float | None = None
    final_raw_score: float | None = None
    last_checkpoint: Path | None = None


@dataclass
class _Window:
    """Episode statistics accumulated between two metric rows, weighted by episodes."""

    sums: dict[str, float] = field(default_factory=dict)
    episodes: float = 0.0

    def add(self, log: dict[str, float]) -> None:
        n = log.get("n", 0.0)
        for key, value in log.items():
            if key != "n":
                self.sums[key] = self.sums.get(key, 0.0) + value * n
        self.episodes += n

    def drain(self) -> dict[str, float]:
        out = {f"env/{k}": v / self.episodes for k, v in self.sums.items()} if self.episodes else {}
        if self.episodes:
            out["env/episodes"] = self.episodes
        self.sums, self.episodes = {}, 0.0
        return out


class NonFinite(Exception):
    def __init__(self, step: int, what: str):
        super().__init__(f"nan_loss at step {step}: {what} is not finite")
        self.step = step


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def checkpoint_stem(out_dir: Path, step: int) -> Path:
    return out_dir / f"ckpt_{step:014d}"


def train(
    env_name: str,
    config: RunConfig,
    seed: int,
    out_dir: Path,
    sink: Sink,
    resume: Path | None = None,
    flush_seconds: float = 1.0,
) -> Result:
    tc = config.train
    device = pick_device(tc.device)
    if tc.torch_threads:
        torch.set_num_threads(tc.torch_threads)
    torch.manual_seed(seed)

    env = envs_c.make(env_name, tc.num_envs, seed=seed, num_threads=tc.num_threads, **config.env)
    spec = env.spec.to_dict()
    policy = Policy(env.spec.observation_space.shape, spec["action"], config.policy).to(device)
    optimizer = _optimizer(policy, tc)

    step, epoch, elapsed_before = 0, 0, 0.0
    if resume is not None:
        restored, _ = ckpt.load_policy(resume, env_name, env.spec.version, device=str(device))
        policy.load_state_dict(restored.state_dict())
        counters = ckpt.load_trainer_state(resume, optimizer)
        step, epoch, elapsed_before = counters["step"], counters["epoch"], counters["seconds"]

    meta_base = {
        "env": env_name,
        "env_version": env.spec.version,
        "env_config": config.env,
        "env_spec": spec,
        "hyperparameters": config.model_dump(),
        "seed": seed,
    }
    agents, horizon = env.num_agents, tc.num_steps
    batch = agents * horizon
    total_epochs = max(1, math.ceil(tc.total_timesteps / batch))
    obs_dtype = torch.uint8 if env.observations.dtype == np.uint8 else torch.float32
    obs_buf = torch.zeros((horizon, agents, *env.observations.shape[1:]), dtype=obs_dtype, device=device)
    act_shape = (horizon, agents, *env.actions.shape[1:])
    act_buf = torch.zeros(act_shape, dtype=torch.float32 if not policy.nvec else torch.long, device=device)
    logp_buf = torch.zeros((horizon, agents), device=device)
    rew_buf = torch.zeros((horizon, agents), device=device)
    done_buf = torch.zeros((horizon, agents), device=device)
    val_buf = torch.zeros((horizon, agents), device=device)

    # Reseeding by epoch makes a resumed run continue on fresh episodes rather than replaying old ones.
    next_obs = _to_device(env.reset(seed + 7919 * epoch), obs_dtype, device)
    next_done = torch.zeros(agents, device=device)
    state = policy.initial_state(agents, device)

    window = _Window()
    timers = dict.fromkeys(("env", "forward", "copy", "learn"), 0.0)
    start = time.perf_counter()
    last_flush, last_flush_step = start, step
    last_checkpoint: Path | None = resume
    saved_step = step
    losses: dict[str, float] = {}

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - start

    def save(at_step: int) -> Path:
        nonlocal saved_step
        saved_step = at_step
        stem = checkpoint_stem(out_dir, at_step)
        meta = {**meta_base, "step": at_step, "epoch": epoch}
        size = ckpt.save_policy(stem, policy, meta)
        ckpt.save_trainer_state(stem, optimizer, {"step": at_step, "epoch": epoch, "seconds": elapsed()})
        sink.checkpoint(at_step, stem, size, meta)
        return stem

    try:
        while step < tc.total_timesteps:
            interrupt = sink.interrupt()
            if interrupt == "cancel":
                env.close()
                return Result("cancelled", step, elapsed(), last_checkpoint=last_checkpoint)
            if interrupt == "preempt":
                env.close()
                if step > saved_step:
                    last_checkpoint = save(step)
                return Result("preempted", step, elapsed(), last_checkpoint=last_checkpoint)
            if tc.anneal_lr:
                for group in optimizer.param_groups:
                    group["lr"] = tc.learning_rate * max(0.0, 1.0 - epoch / total_epochs)

            initial_state = state
            for t in range(horizon):
                tick = time.perf_counter()
                obs_buf[t] = next_obs
                done_buf[t] = next_done
                with torch.no_grad():
                    params, value, state = policy(next_obs, state)
                    action = policy.sample(params)
                    logp, _ = policy.log_prob_entropy(params, action)
                    env_action = policy.env_actions(action).cpu().numpy()
                act_buf[t], logp_buf[t], val_buf[t] = action, logp, value
                tock = time.perf_counter()
                timers["forward"] += tock - tick
                obs, rewards, terminals, truncations = env.step(env_action)
                tick = time.perf_counter()
                timers["env"] += tick - tock
                next_obs = _to_device(obs, obs_dtype, device)
                rew = torch.from_numpy(rewards).to(device)
                rew_buf[t] = rew.clamp(-tc.reward_clamp, tc.reward_clamp) if tc.reward_clamp else rew
                next_done = torch.from_numpy(terminals | truncations).to(device).float()
                if state is not None:
                    keep = (1.0 - next_done).unsqueeze(-1)
                    state = tuple(s * keep for s in state)
                timers["copy"] += time.perf_counter() - tick
            step += batch
            epoch += 1
            window.add(env.log())

            tick = time.perf_counter()
            if policy.obs_norm is not None:
                policy.obs_norm.update(obs_buf.flatten(0, 1).flatten(1).float())
            losses = _update(
                policy,
                optimizer,
                tc,
                obs_buf,
                act_buf,
                logp_buf,
                rew_buf,
                done_buf,
                val_buf,
                next_obs,
                next_done,
                state,
                initial_state,
                step,
            )
            timers["learn"] += time.perf_counter() - tick

            now = time.perf_counter()
            if now - last_flush >= flush_seconds or step >= tc.total_timesteps:
                busy = sum(timers.values()) or 1.0
                row = {
                    "SPS": (step - last_flush_step) / max(now - last_flush, 1e-9),
                    "agent_steps": float(step),
                    "uptime": elapsed(),
                    "epoch": float(epoch),
                    **window.drain(),
                    **{f"losses/{k}": v for k, v in losses.items()},
                    **{f"performance/{k}": v / busy for k, v in timers.items()},
                    "performance/learning_rate": optimizer.param_groups[0]["lr"],
                }
                sink.metrics(step, row)
                timers = dict.fromkeys(timers, 0.0)
                last_flush, last_flush_step = now, step
            if epoch % tc.checkpoint_interval == 0 and step < tc.total_timesteps:
                last_checkpoint = save(step)
    except NonFinite as e:
        env.close()
        return Result("failed", e.step, elapsed(), failure_reason=str(e), last_checkpoint=last_checkpoint)
    env.close()

    if step > saved_step:
        last_checkpoint = save(step)
    score, raw = evaluate(policy, env_name, config, seed, device)
    sink.metrics(step, {"eval/perf": score, "eval/score": raw})
    return Result(
        "succeeded", step, elapsed(), final_score=score, final_raw_score=raw, last_checkpoint=last_checkpoint
    )


def _optimizer(policy: Policy, tc) -> torch.optim.Optimizer:
    return torch.optim.Adam(policy.parameters(), lr=tc.learning_rate, eps=tc.adam_eps)


def _to_device(array: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    tensor = torch.from_numpy(array)
    if device.type == "cuda":
        return tensor.to(device, non_blocking=False).to(dtype)
    return tensor.to(dtype).clone()


def _update(
    policy,
    optimizer,
    tc,
    obs_buf,
    act_buf,
    logp_buf,
    rew_buf,
    done_buf,
    val_buf,
    next_obs,
    next_done,
    state,
    initial_state,
    step,
) -> dict[str, float]:
    horizon, agents = rew_buf.shape
    with torch.no_grad():
        _, next_value, _ = policy(next_obs, state)
        adv = advantages(rew_buf, val_buf, done_buf, next_value, next_done, tc.gamma, tc.gae_lambda)
        returns = adv + val_buf

    # Minibatches are whole agent columns, so a recurrent core sees each sequence in order.
    columns = max(1, tc.minibatch_size // horizon)
    stats: dict[str, list[float]] = {k: [] for k in ("policy", "value", "entropy", "approx_kl", "clipfrac")}
    for _ in range(tc.update_epochs):
        order = torch.randperm(agents, device=rew_buf.device)
        for begin in range(0, agents, columns):
            idx = order[begin : begin + columns]
            mb_state = None if initial_state is None else tuple(s[idx] for s in initial_state)
            params, values = policy.forward_sequence(obs_buf[:, idx], done_buf[:, idx], mb_state)
            new_logp, entropy = policy.log_prob_entropy(params, act_buf[:, idx])
            mb_old_logp = logp_buf[:, idx]
            mb_adv = adv[:, idx]
            if tc.vtrace:
                with torch.no_grad():
                    ratio = (new_logp - mb_old_logp).exp()
                    mb_adv = advantages(
                        rew_buf[:, idx],
                        val_buf[:, idx],
                        done_buf[:, idx],
                        next_value[idx],
                        next_done[idx],
                        tc.gamma,
                        tc.gae_lambda,
                        ratio,
                        tc.vtrace_rho_clip,
                        tc.vtrace_c_clip,
                    )
            if tc.norm_adv:
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
            terms = ppo_loss(
                new_logp,
                mb_old_logp,
                mb_adv,
                values,
                val_buf[:, idx],
                returns[:, idx],
                entropy,
                tc.clip_coef,
                tc.vf_coef,
                tc.vf_clip_coef,
                tc.ent_coef,
            )
            if not torch.isfinite(terms.total):
                raise NonFinite(step, "loss")
            optimizer.zero_grad()
            terms.total.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), tc.max_grad_norm)
            if not torch.isfinite(grad_norm):
                raise NonFinite(step, "gradient")
            optimizer.step()
            for key in stats:
                stats[key].append(float(getattr(terms, key).detach()))
    out = {k: float(np.mean(v)) for k, v in stats.items()}
    out["explained_variance"] = explained_variance(val_buf.flatten(), returns.flatten())
    return out


@torch.no_grad()
def evaluate(
    policy: Policy,
    env_name: str,
    config: RunConfig,
    seed: int,
    device: torch.device,
    max_steps: int = 100_000,
) -> tuple[float, float]:
    """One clean episode per environment with the final policy; mean perf and mean raw score.

    Counting exactly one episode per environment avoids the bias of a step-limited window, which
    over-samples short episodes.
    """
    episodes = config.train.eval_episodes
    env = envs_c.make(env_name, episodes, seed=seed + 1_000_003, **config.env)
    try:
        obs = env.reset()
        state = policy.initial_state(env.num_agents, device)
        dtype = torch.uint8 if obs.dtype == np.uint8 else torch.float32
        finished: dict[int, dict[str, float]] = {}
        for _ in range(max_steps):
            params, _, state = policy(_to_device(obs, dtype, device), state)
            action = policy.sample(params, deterministic=config.train.eval_deterministic)
            obs, _, terminals, truncations = env.step(policy.env_actions(action).cpu().numpy())
            done = (terminals | truncations).reshape(env.num_envs, -1).any(1)
            for i in np.flatnonzero(done):
                if i not in finished:
                    finished[int(i)] = env.env_log(int(i))
            if len(finished) == env.num_envs:
                break
            if state is not None:
                keep = (
                    torch.from_numpy(~(terminals | truncations).astype(bool)).to(device).float().unsqueeze(-1)
                )
                state = tuple(s * keep for s in state)
        logs = [log for log in finished.values() if log]
        if not logs:
            return 0.0, 0.0
        return float(np.mean([log["perf"] for log in logs])), float(np.mean([log["score"] for log in logs]))
    finally:
        env.close()
