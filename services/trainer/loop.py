"""The PPO training loop, readable top to bottom: rollout, advantages, update, log, checkpoint, evaluate.

It knows nothing of databases or queues. Whoever runs it passes a `Sink`, which receives metric rows and
checkpoints and says whether the run was cancelled; the CLI prints, the Celery task writes to the database.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

import envs_c
from envs_c.vector import available_cores
from services.common.config import RunConfig
from services.common.failures import FailureKind
from services.trainer import checkpoint as ckpt
from services.trainer.graphs import Graphed, pinned_zeros
from services.trainer.league import LeagueLink, SelfPlayEnv
from services.trainer.optim import Adam, MuonWithAdam, Optimizer
from services.trainer.policy import Policy, State
from services.trainer.ppo import advantages, explained_variance, ppo_loss

Interrupt = Literal["cancel", "preempt", "stop"] | None


class Sink(Protocol):
    def metrics(self, step: int, values: dict[str, float]) -> None: ...
    def checkpoint(self, step: int, stem: Path, size_bytes: int, meta: dict[str, Any]) -> None: ...

    def interrupt(self) -> Interrupt:
        """ "cancel" stops the run for good; "preempt" (the worker is shutting down) stops it after a
        checkpoint, so that another worker can resume it; "stop" ends training early as if it were done
        (a time budget): the final checkpoint and the evaluation still follow."""


class Discard:
    """A sink that keeps nothing: for training that is not a run (a warm-up, a profile)."""

    def metrics(self, step: int, values: dict[str, float]) -> None:
        pass

    def checkpoint(self, step: int, stem: Path, size_bytes: int, meta: dict[str, Any]) -> None:
        pass

    def interrupt(self) -> Interrupt:
        return None


@dataclass
class Result:
    status: str  # succeeded | failed | cancelled | preempted
    steps: int
    seconds: float
    failure_kind: FailureKind | None = None
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


class EvaluationError(Exception):
    """The final evaluation saw no episode end, so it has no figure to give."""


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
    league: LeagueLink | None = None,
) -> Result:
    """PPO until `config.train.total_timesteps`, one epoch per pass: anneal, rollout, update, log, save.

    `league` gives a self-play run the Elo service's results against its past checkpoints."""
    tc = config.train
    with Trainer(env_name, config, seed, out_dir, sink, resume, league) as trainer:
        try:
            while trainer.step < tc.total_timesteps:
                interrupt = sink.interrupt()
                if interrupt == "stop":
                    break
                if interrupt is not None:
                    return trainer.interrupted(interrupt)
                trainer.anneal_learning_rate()
                trainer.rollout()
                trainer.update()
                trainer.log(flush_seconds)
                if trainer.epoch % tc.checkpoint_interval == 0 and trainer.step < tc.total_timesteps:
                    trainer.save()
                env = trainer.env
                if isinstance(env, SelfPlayEnv) and trainer.epoch % env.config.snapshot_interval == 0:
                    env.snapshot(trainer.step)
        except NonFinite as e:
            return trainer.failed(FailureKind.nan_loss, e, e.step)
    return trainer.finish()


class Trainer:
    """One run's training state: the environment (closed when the `with` block ends), the policy and its
    optimizer, the rollout buffers and the counters. `train` drives it one epoch at a time."""

    def __init__(
        self,
        env_name: str,
        config: RunConfig,
        seed: int,
        out_dir: Path,
        sink: Sink,
        resume: Path | None,
        league: LeagueLink | None = None,
    ):
        self.created = time.perf_counter()
        self.env_name, self.config, self.seed, self.out_dir, self.sink = env_name, config, seed, out_dir, sink
        self.tc = tc = config.train
        self.device = pick_device(tc.device)
        if self.device.type == "cuda":
            self._start_cuda()
        if tc.torch_threads:
            torch.set_num_threads(tc.torch_threads)
        torch.manual_seed(seed)
        # On a GPU the C loop writes straight into page-locked memory, so every host<->device copy below is
        # one asynchronous DMA with no staging copy and no host wait.
        self.allocate = pinned_zeros if self.device.type == "cuda" else None
        self.spec = envs_c.make_spec(env_name, **config.env).to_dict()  # the learner's seat, as evaluated
        # With self-play, the learner's seat of the game (set below).
        self.env: envs_c.VecEnv | SelfPlayEnv = self._open_env()
        try:
            self.policy = Policy(self.env.spec.observation_space.shape, self.spec["action"], config.policy)
            self.policy.to(self.device)
            self.graphs = self.device.type == "cuda" and tc.cuda_graphs
            if config.selfplay is not None:
                # From here on the loop sees the learner's seat only; the league plays the other one.
                self.env = SelfPlayEnv(
                    self.env,
                    self.policy,
                    config.selfplay,
                    self.device,
                    seed,
                    self.allocate,
                    graphs=self.graphs,
                    pool_dir=out_dir / "pool",
                    resume=resume,
                    link=league,
                )
            self.optimizer = make_optimizer(self.policy, tc, self.graphs)
            self._restore(resume)
            self._allocate()
        except BaseException:
            self.env.close()
            raise

    def _start_cuda(self) -> None:
        """The CUDA context, created before anything else: a device that cannot start fails the run before
        thousands of environments are built, and the start-up profile (bench/startup.py) times it alone."""
        torch.zeros(1, device=self.device)

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.env.close()

    def _open_env(self) -> envs_c.VecEnv:
        """The C environments; with self-play, both seats read the action buffer."""
        config = self.config
        return envs_c.make(
            self.env_name,
            self.tc.num_envs,
            seed=self.seed,
            num_threads=self.tc.num_threads or _env_threads(self.env_name, self.device),
            allocate=self.allocate,
            **(config.env if config.selfplay is None else {**config.env, "opponent": 1}),
        )

    def _restore(self, resume: Path | None) -> None:
        """The counters, and with `resume` the weights and optimizer state of that checkpoint."""
        self.step, self.epoch, self.elapsed_before = 0, 0, 0.0
        self.last_checkpoint = resume
        if resume is not None:
            restored, _ = ckpt.load_policy(
                resume, self.env_name, self.env.spec.version, device=str(self.device)
            )
            self.policy.load_state_dict(restored.state_dict())
            counters = ckpt.load_trainer_state(resume, self.optimizer)
            self.step, self.epoch = counters["step"], counters["epoch"]
            self.elapsed_before = counters["seconds"]
        self.saved_step = self.step

    def _allocate(self) -> None:
        """The rollout buffers, the captured steps, and the first observation."""
        tc, env, policy, device = self.tc, self.env, self.policy, self.device
        self.agents, self.horizon = env.num_agents, tc.num_steps
        self.batch = self.agents * self.horizon
        self.total_epochs = max(1, math.ceil(tc.total_timesteps / self.batch))

        # Host views of the environment's shared buffers (pinned on a GPU run). Observations keep their
        # dtype on the device (uint8 boards stay a quarter of the bytes); the policy casts them to float.
        host_obs = torch.from_numpy(env.observations)
        host_act = torch.from_numpy(env.actions)
        host_rew = torch.from_numpy(env.rewards)
        self.done_array = (pinned_zeros if device.type == "cuda" else np.zeros)(
            (self.agents,), np.dtype(np.uint8)
        )
        host_done = torch.from_numpy(self.done_array)
        self.buf = buf = _Buffers.allocate(policy, host_obs, host_act, self.horizon, device, tc.bptt_horizon)

        # Reseeding by epoch makes a resumed run continue on fresh episodes rather than replaying old ones.
        env.reset(self.seed + 7919 * self.epoch)
        buf.next_obs.copy_(host_obs, non_blocking=True)

        self.act = Graphed(partial(_act, policy, buf, host_act), self.graphs)
        self.observe = Graphed(
            partial(_observe, buf, host_obs, host_rew, host_done, tc.reward_clamp), self.graphs
        )
        self.prepare = Graphed(partial(_prepare, policy, buf, tc), self.graphs)
        self.columns = max(1, tc.minibatch_size // buf.segment)
        self.mb_index = torch.zeros(self.columns, dtype=torch.long, device=device)
        # Capturing the optimizer step needs Adam's capturable mode; Muon runs eagerly. A last, smaller
        # minibatch (agents not a multiple of the columns) runs eagerly too.
        self.minibatch = Graphed(
            partial(_minibatch, policy, self.optimizer, tc, buf, self.mb_index),
            self.graphs and isinstance(self.optimizer, Adam),
        )

        self.window = _Window()
        self.split = _Split(device)
        self.stats = _Stats(device)
        self.start = time.perf_counter()
        self.last_flush, self.last_flush_step = self.start, self.step

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.start

    def anneal_learning_rate(self) -> None:
        if self.tc.anneal_lr:
            self.optimizer.set_learning_rate(
                self.tc.learning_rate * max(0.0, 1.0 - self.epoch / self.total_epochs)
            )

    def rollout(self) -> None:
        """`horizon` steps of every agent into the buffers. Per step the host replays the acting graph
        (forward, sampling, storing, the actions' copy into the environment's buffer), waits for the actions,
        steps the C environments, and replays the observing graph (the results' upload), which is queued
        behind and not waited on."""
        env, split = self.env, self.split
        self.buf.begin_rollout()
        for _ in range(self.horizon):
            tick = time.perf_counter()
            self.act()
            split.wait()  # the actions are on the host from here on
            tock = time.perf_counter()
            split.forward += tock - tick
            env.step()  # reads the action buffer written above in place
            tick = time.perf_counter()
            split.env += tick - tock
            # The env's buffers are only rewritten by the next env.step, which comes after the next
            # wait, by which time these copies (queued before it on the same stream) are done.
            np.bitwise_or(env.terminals, env.truncations, out=self.done_array)
            split.copy_begins()
            self.observe()
            split.copy_ends()
            split.copy += time.perf_counter() - tick
        self.step += self.batch
        self.epoch += 1
        self.window.add(env.log())

    def update(self) -> None:
        """Advantages, then `update_epochs` passes of minibatch PPO over the rollout; raises `NonFinite`."""
        tick = time.perf_counter()
        policy, buf, stats, columns = self.policy, self.buf, self.stats, self.columns
        if isinstance(self.env, SelfPlayEnv):
            self.env.settle()
        if policy.obs_norm is not None:
            policy.obs_norm.update(buf.obs.flatten(0, 1).flatten(1).float())
        stats.add_explained_variance(self.prepare())
        # Minibatches are whole columns (one agent's segment), so a recurrent core sees each in order.
        total = buf.learning_columns
        for _ in range(self.tc.update_epochs):
            order = torch.randperm(total, device=self.device)
            for begin in range(0, total, columns):
                if begin + columns <= total:
                    self.mb_index.copy_(order[begin : begin + columns])
                    stats.add(self.minibatch())
                else:
                    stats.add(_minibatch(policy, self.optimizer, self.tc, buf, order[begin:]))
        # The one read per update: it fails the run at this step, before any checkpoint of
        # non-finite weights, and it drains the queue so the learn time is the update's own. The
        # next action read would wait for the update anyway, so this costs no throughput.
        if not stats.finite():
            raise NonFinite(self.step, stats.what_is_not_finite())
        self.split.learn += time.perf_counter() - tick
        self.split.settle()

    def log(self, flush_seconds: float) -> None:
        """A metric row every `flush_seconds`, and one at the end."""
        now = time.perf_counter()
        if now - self.last_flush < flush_seconds and self.step < self.tc.total_timesteps:
            return
        row = {
            "SPS": (self.step - self.last_flush_step) / max(now - self.last_flush, 1e-9),
            "agent_steps": float(self.step),
            "uptime": self.elapsed(),
            "epoch": float(self.epoch),
            **self.window.drain(),
            **{f"losses/{k}": v for k, v in self.stats.drain().items()},
            **{f"performance/{k}": v for k, v in self.split.drain().items()},
            "performance/learning_rate": float(self.optimizer.param_groups[0]["lr"]),
            **(self.env.metrics() if isinstance(self.env, SelfPlayEnv) else {}),
        }
        self.sink.metrics(self.step, row)
        self.last_flush, self.last_flush_step = now, self.step

    def save(self) -> None:
        """A checkpoint of the current step: weights and metadata, plus the trainer state to resume from."""
        stem = checkpoint_stem(self.out_dir, self.step)
        meta = {
            "env": self.env_name,
            "env_version": self.env.spec.version,
            "env_config": self.config.env,
            "env_spec": self.spec,
            "hyperparameters": self.config.model_dump(),
            "seed": self.seed,
            "step": self.step,
            "epoch": self.epoch,
        }
        size = ckpt.save_policy(stem, self.policy, meta)
        ckpt.save_trainer_state(
            stem, self.optimizer, {"step": self.step, "epoch": self.epoch, "seconds": self.elapsed()}
        )
        self.sink.checkpoint(self.step, stem, size, meta)
        self.saved_step, self.last_checkpoint = self.step, stem

    def interrupted(self, interrupt: Interrupt) -> Result:
        """A cancelled run stops as it is; a preempted one checkpoints first, for another worker to resume."""
        if interrupt == "cancel":
            return Result(
                "cancelled",
                self.step,
                self.elapsed(),
                failure_kind=FailureKind.cancelled,
                last_checkpoint=self.last_checkpoint,
            )
        if self.step > self.saved_step:
            self.save()
        return Result("preempted", self.step, self.elapsed(), last_checkpoint=self.last_checkpoint)

    def failed(self, kind: FailureKind, error: Exception, step: int | None = None) -> Result:
        """The Result of a run that failed with `error` at `step` (default: the steps trained so far)."""
        return Result(
            "failed",
            self.step if step is None else step,
            self.elapsed(),
            failure_kind=kind,
            failure_reason=str(error),
            last_checkpoint=self.last_checkpoint,
        )

    def finish(self) -> Result:
        """The final checkpoint and the clean evaluation; call after the training environment is closed.
        Their seconds and the set-up's go out with the evaluation's row: what a run costs beside training."""
        trained = time.perf_counter()
        if self.step > self.saved_step:
            self.save()
        saved = time.perf_counter()
        try:
            score, raw = evaluate(self.policy, self.env_name, self.config, self.seed, self.device)
        except EvaluationError as e:
            # The weights are saved above; the run fails because its score would be a made-up number.
            return self.failed(FailureKind.crash, e)
        seconds = {
            "time/setup": self.start - self.created,
            "time/last_checkpoint": saved - trained,
            "time/evaluation": time.perf_counter() - saved,
        }
        self.sink.metrics(self.step, {"eval/perf": score, "eval/score": raw, **seconds})
        return Result(
            "succeeded",
            self.step,
            self.elapsed(),
            final_score=score,
            final_raw_score=raw,
            last_checkpoint=self.last_checkpoint,
        )


def make_optimizer(policy: Policy, tc, graphs: bool = False) -> Optimizer:
    """Adam over every parameter, or Muon for the hidden weight matrices and Adam for the rest, in one
    optimizer, so that a checkpoint's trainer state stays a single state dict.

    With `graphs`, Adam's learning rate is a device tensor, so that a captured step reads the annealed
    rate on every replay instead of the value it had at capture."""
    kwargs = {"lr": tc.learning_rate, "betas": (tc.adam_beta1, tc.adam_beta2), "eps": tc.adam_eps}
    if tc.optimizer == "muon":
        return MuonWithAdam(policy, muon_momentum=tc.muon_momentum, **kwargs)
    if graphs:
        kwargs["lr"] = torch.tensor(tc.learning_rate, device=next(policy.parameters()).device)
    return Adam(policy.parameters(), **kwargs)


def _env_threads(env_name: str, device: torch.device) -> int:
    """What `num_threads = 0` means: a thread per core, except that a Python environment's worker processes
    in a GPU run leave a core to the trainer, whose own torch threads are idle there, so that they can step
    through shared counters instead of pipes (envs_c.pyenvs.worker.spins)."""
    cores = available_cores()
    return max(1, cores - 1) if ":" in env_name and device.type == "cuda" else cores


class _Split:
    """Where the wall-clock time goes: env, forward, copy and learn, as fractions at each log.

    On the CPU every phase runs synchronously and host clocks tell the whole story. On a GPU the
    forward pass and the copies are queued asynchronously and the host waits only once per step, for
    the actions, so that wait holds the device time of the copies queued before it. CUDA events around
    the copies measure that device time; it is read once per update (after its sync, when every event
    has completed) and moved from forward to copy.
    """

    def __init__(self, device: torch.device):
        self.env = self.forward = self.copy = self.learn = 0.0
        self.cuda = device.type == "cuda"
        self._pairs: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._spare: list[torch.cuda.Event] = []
        self._done = torch.cuda.Event() if self.cuda else None
        # Events record on this stream by name: asking torch for the current stream costs tens of
        # microseconds of device lookups, three times a step.
        self._stream = torch.cuda.current_stream(device) if self.cuda else None

    def _event(self) -> torch.cuda.Event:
        event = self._spare.pop() if self._spare else torch.cuda.Event(enable_timing=True)
        event.record(self._stream)
        return event

    def copy_begins(self) -> None:
        if self.cuda:
            self._begin = self._event()

    def copy_ends(self) -> None:
        if self.cuda:
            self._pairs.append((self._begin, self._event()))

    def wait(self) -> None:
        if self._done is not None:  # on CUDA
            self._done.record(self._stream)
            self._done.synchronize()

    def settle(self) -> None:
        """Move the copies' device time out of forward; call only after a sync."""
        if not self._pairs:
            return
        device_copy = sum(a.elapsed_time(b) for a, b in self._pairs) / 1000.0
        moved = min(device_copy, self.forward)
        self.forward -= moved
        self.copy += moved
        self._spare.extend(event for pair in self._pairs for event in pair)
        self._pairs.clear()

    def drain(self) -> dict[str, float]:
        busy = (self.env + self.forward + self.copy + self.learn) or 1.0
        out = {k: getattr(self, k) / busy for k in ("env", "forward", "copy", "learn")}
        self.env = self.forward = self.copy = self.learn = 0.0
        return out


_STAT_NAMES = ("policy", "value", "entropy", "approx_kl", "clipfrac", "total", "grad_norm")


class _Stats:
    """Loss statistics summed on the device and read once per log, not once per minibatch: each read
    of a device scalar stalls the host until the GPU's queue drains."""

    def __init__(self, device: torch.device):
        self.sums = torch.zeros(len(_STAT_NAMES), device=device)
        self.count = 0
        self.ev_sum = torch.zeros((), device=device)
        self.updates = 0

    @staticmethod
    def vector(terms, grad_norm: torch.Tensor) -> torch.Tensor:
        parts = [getattr(terms, k) for k in _STAT_NAMES[:-2]] + [terms.total, grad_norm]
        return torch.stack([p.detach().float() for p in parts])

    def add(self, vector: torch.Tensor) -> None:
        self.sums += vector
        self.count += 1

    def add_explained_variance(self, value: torch.Tensor) -> None:
        self.ev_sum += value
        self.updates += 1

    def finite(self) -> bool:
        return bool(torch.isfinite(self.sums[-2:]).all())

    def what_is_not_finite(self) -> str:
        return "loss" if not torch.isfinite(self.sums[-2]) else "gradient"

    def drain(self) -> dict[str, float]:
        if not self.count:
            return {}
        values = (self.sums / self.count).tolist()
        out = dict(zip(_STAT_NAMES, values, strict=True))
        out["explained_variance"] = float(self.ev_sum) / max(self.updates, 1)
        self.sums.zero_()
        self.ev_sum.zero_()
        self.count = self.updates = 0
        return out


@dataclass
class _Buffers:
    """The rollout and everything the captured steps read: device tensors allocated once, so that their
    addresses stay valid for CUDA graph replays."""

    obs: torch.Tensor
    act: torch.Tensor
    logp: torch.Tensor
    rew: torch.Tensor
    done: torch.Tensor
    val: torch.Tensor
    adv: torch.Tensor
    ret: torch.Tensor
    next_obs: torch.Tensor
    next_done: torch.Tensor
    done_u8: torch.Tensor  # the done flags as the environment gives them, before the cast
    next_value: torch.Tensor
    state: State
    start_state: State  # the state each learning segment was acted from: [segments, agents, hidden]
    t: torch.Tensor  # the rollout step being filled, on the device so a captured step can advance it
    segment: int  # steps per learning segment: the rollout is `horizon / segment` segments per agent

    @classmethod
    def allocate(
        cls,
        policy: Policy,
        host_obs: torch.Tensor,
        host_act: torch.Tensor,
        horizon: int,
        device: torch.device,
        segment: int = 0,
    ) -> _Buffers:
        """`segment` (a divisor of `horizon`; 0: the whole horizon) is how many steps a recurrent core
        learns through, each segment starting from the state it was acted from."""
        agents = host_obs.shape[0]
        segment = segment or horizon

        def steps() -> torch.Tensor:
            return torch.zeros((horizon, agents), device=device)

        state = policy.initial_state(agents, device)
        return cls(
            obs=torch.zeros((horizon, *host_obs.shape), dtype=host_obs.dtype, device=device),
            act=torch.zeros(
                (horizon, *host_act.shape), dtype=torch.long if policy.nvec else torch.float32, device=device
            ),
            logp=steps(),
            rew=steps(),
            done=steps(),
            val=steps(),
            adv=steps(),
            ret=steps(),
            next_obs=torch.zeros(host_obs.shape, dtype=host_obs.dtype, device=device),
            next_done=torch.zeros(agents, device=device),
            done_u8=torch.zeros(agents, dtype=torch.uint8, device=device),
            next_value=torch.zeros(agents, device=device),
            state=state,
            start_state=None
            if state is None
            else tuple(s.new_zeros(horizon // segment, *s.shape) for s in state),
            t=torch.zeros(1, dtype=torch.long, device=device),
            segment=segment,
        )

    def begin_rollout(self) -> None:
        self.t.zero_()

    @property
    def learning_columns(self) -> int:
        """The (segment, agent) columns a minibatch draws from: agents x horizon / segment."""
        horizon, agents = self.obs.shape[:2]
        return horizon // self.segment * agents

    @staticmethod
    def columns(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The learning columns whose `rows` `column_rows` gave, of a [horizon, agents, ...] rollout
        tensor, as [segment, columns, ...]."""
        return x.flatten(0, 1)[rows]

    def column_rows(self, idx: torch.Tensor) -> torch.Tensor:
        """Row indices into a flattened [horizon * agents] rollout for the columns `idx`: column c is the
        agent c % agents over the steps of segment c // agents."""
        agents = self.obs.shape[1]
        first_row = (idx // agents) * self.segment * agents + idx % agents
        steps = torch.arange(self.segment, device=idx.device).unsqueeze(1) * agents
        return first_row.unsqueeze(0) + steps

    def segment_next(self, step_tensor: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        """Per learning column, the value of `step_tensor` at the step after its segment: the next
        segment's first step, or `after` (the step after the rollout) for the last segment."""
        return torch.cat((step_tensor[self.segment :: self.segment], after.unsqueeze(0))).flatten()


@torch.no_grad()
def _act(policy: Policy, buf: _Buffers, host_act: torch.Tensor) -> None:
    """One acting step on `buf.next_obs`, stored into the rollout at step `buf.t`, which then advances;
    the recurrent state advances in place, and the actions go to the environment's buffer `host_act`."""
    if buf.state is not None and buf.start_state is not None:  # both, with a recurrent core
        # A segment's first step keeps the state it is acted from; the learner starts that segment there.
        slot = torch.div(buf.t, buf.segment, rounding_mode="floor")
        begins = (buf.t % buf.segment == 0).view(1, 1, 1)
        for kept, current in zip(buf.start_state, buf.state, strict=True):
            kept.index_copy_(0, slot, torch.where(begins, current, kept.index_select(0, slot)))
    params, value, state = policy(buf.next_obs, buf.state)
    action = policy.sample(params)
    logp, _ = policy.log_prob_entropy(params, action)
    for rollout, now in (
        (buf.obs, buf.next_obs),
        (buf.done, buf.next_done),
        (buf.act, action),
        (buf.logp, logp),
        (buf.val, value),
    ):
        rollout.index_copy_(0, buf.t, now.unsqueeze(0).to(rollout.dtype))
    buf.t.add_(1)
    if state is not None and buf.state is not None:  # both, with a recurrent core
        for current, new in zip(buf.state, state, strict=True):
            current.copy_(new)
    host_act.copy_(policy.env_actions(action), non_blocking=True)


@torch.no_grad()
def _observe(
    buf: _Buffers,
    host_obs: torch.Tensor,
    host_rew: torch.Tensor,
    host_done: torch.Tensor,
    reward_clamp: float | None,
) -> None:
    """The environment's step into the device buffers: the next observation, the reward of the step just
    acted (at `buf.t - 1`) and the done flags; the recurrent state restarts where an episode ended."""
    buf.next_obs.copy_(host_obs, non_blocking=True)
    buf.done_u8.copy_(host_done, non_blocking=True)
    buf.next_done.copy_(buf.done_u8)
    reward = host_rew.to(buf.rew.device, non_blocking=True)
    if reward_clamp:
        reward = reward.clamp(-reward_clamp, reward_clamp)
    buf.rew.index_copy_(0, buf.t - 1, reward.unsqueeze(0))
    if buf.state is not None:
        keep = (1.0 - buf.next_done).unsqueeze(-1)
        for s in buf.state:
            s.mul_(keep)


@torch.no_grad()
def _prepare(policy: Policy, buf: _Buffers, tc) -> torch.Tensor:
    """Advantages and returns of the finished rollout into `buf`; returns the value explained variance."""
    _, next_value, _ = policy(buf.next_obs, buf.state)
    buf.next_value.copy_(next_value)
    buf.adv.copy_(
        advantages(buf.rew, buf.val, buf.done, buf.next_value, buf.next_done, tc.gamma, tc.gae_lambda)
    )
    torch.add(buf.adv, buf.val, out=buf.ret)
    return explained_variance(buf.val.flatten(), buf.ret.flatten())


def _minibatch(policy: Policy, optimizer: Optimizer, tc, buf: _Buffers, idx: torch.Tensor) -> torch.Tensor:
    """One PPO step on the learning columns `idx` (see `_Buffers.column_rows`); returns the loss
    statistics as one device vector."""
    rows = buf.column_rows(idx)
    mb_state = None if buf.start_state is None else tuple(s.flatten(0, 1)[idx] for s in buf.start_state)
    mb_starts = buf.columns(buf.done, rows)
    params, values = policy.forward_sequence(buf.columns(buf.obs, rows), mb_starts, mb_state)
    new_logp, entropy = policy.log_prob_entropy(params, buf.columns(buf.act, rows))
    mb_old_logp = buf.columns(buf.logp, rows)
    mb_adv = buf.columns(buf.adv, rows)
    if tc.vtrace:
        with torch.no_grad():
            ratio = (new_logp - mb_old_logp).exp()
            mb_adv = advantages(
                buf.columns(buf.rew, rows),
                buf.columns(buf.val, rows),
                mb_starts,
                buf.segment_next(buf.val, buf.next_value)[idx],
                buf.segment_next(buf.done, buf.next_done)[idx],
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
        buf.columns(buf.val, rows),
        buf.columns(buf.ret, rows),
        entropy,
        tc.clip_coef,
        tc.vf_coef,
        tc.vf_clip_coef,
        tc.ent_coef,
    )
    optimizer.zero_grad()
    terms.total.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), tc.max_grad_norm)
    optimizer.step()
    return _Stats.vector(terms, grad_norm)


@torch.no_grad()
def evaluate(
    policy: Policy,
    env_name: str,
    config: RunConfig,
    seed: int,
    device: torch.device,
    max_steps: int = 100_000,
) -> tuple[float, float]:
    """The first episode of every agent with the final policy; mean perf and mean raw score.

    Counting exactly one episode per agent avoids the bias of a step-limited window, which over-samples
    short episodes. Environments log per environment, not per agent, so a step's log is read as soon as an
    agent finishes, and kept only when every agent that finished on that step was on its first episode
    (in an arena of many agents, the early deaths must not stand for the whole arena).

    It steps until every agent has finished an episode or `max_steps` have passed; agents still on their
    first episode then are left out. Raises `EvaluationError` when no episode was counted at all: a score
    of 0 would read as a policy that failed, not as an evaluation that saw nothing.

    Episodes run one step at a time for thousands of steps, so on a GPU each step is one captured graph
    (upload, forward, sampling, actions back into the environment's page-locked buffer) and one wait, as
    in training: eager launches made this the largest per-trial cost of a sweep of short runs.
    """
    on_gpu = device.type == "cuda"
    env = envs_c.make(
        env_name,
        config.train.eval_episodes,
        seed=seed + 1_000_003,
        allocate=pinned_zeros if on_gpu else None,
        **config.env,
    )
    try:
        env.reset()
        per_env = env.num_agents // env.num_envs
        done = (pinned_zeros if on_gpu else np.zeros)((env.num_agents,), np.dtype(np.uint8))
        act = Graphed(
            partial(
                _act_to_evaluate,
                policy,
                _EvalBuffers.allocate(policy, env, device),
                torch.from_numpy(env.observations),
                torch.from_numpy(done),
                torch.from_numpy(env.actions),
                config.train.eval_deterministic,
            ),
            on_gpu and config.train.cuda_graphs,
        )
        stream = torch.cuda.current_stream(device) if on_gpu else None
        finished = np.zeros(env.num_agents, dtype=bool)
        totals = {"perf": 0.0, "score": 0.0, "n": 0.0}
        for _ in range(max_steps):
            act()
            if stream is not None:
                stream.synchronize()  # the actions are in env.actions from here on
            env.step()
            np.bitwise_or(env.terminals, env.truncations, out=done)
            if not done.any():
                continue
            for i in np.unique(np.flatnonzero(done) // per_env):
                agents = np.flatnonzero(done[i * per_env : (i + 1) * per_env]) + i * per_env
                log = env.env_log(int(i))
                if log and not finished[agents].any():
                    for key in ("perf", "score"):
                        totals[key] += log[key] * log["n"]
                    totals["n"] += log["n"]
                finished[agents] = True
            if finished.all():
                break
        if not totals["n"]:
            raise EvaluationError(
                f"evaluation: no episode of {env_name} ended within {max_steps:,} steps "
                f"({env.num_agents} agents in {env.num_envs} environments)"
            )
        return totals["perf"] / totals["n"], totals["score"] / totals["n"]
    finally:
        env.close()


@dataclass
class _EvalBuffers:
    """What the evaluation's acting step reads and updates in place (stable addresses for graph replays)."""

    obs: torch.Tensor
    done: torch.Tensor
    state: State

    @classmethod
    def allocate(cls, policy: Policy, env: envs_c.VecEnv, device: torch.device) -> _EvalBuffers:
        obs = torch.from_numpy(env.observations)
        return cls(
            obs=torch.zeros(obs.shape, dtype=obs.dtype, device=device),
            done=torch.zeros(env.num_agents, dtype=torch.uint8, device=device),
            state=policy.initial_state(env.num_agents, device),
        )


@torch.no_grad()
def _act_to_evaluate(
    policy: Policy,
    buf: _EvalBuffers,
    host_obs: torch.Tensor,
    host_done: torch.Tensor,
    host_act: torch.Tensor,
    deterministic: bool,
) -> None:
    """One evaluation step: the observation up, the recurrent state restarted where the last step ended an
    episode, the policy's actions down into the environment's action buffer `host_act`."""
    buf.obs.copy_(host_obs, non_blocking=True)
    if buf.state is not None:
        buf.done.copy_(host_done, non_blocking=True)
        keep = (1 - buf.done).unsqueeze(-1)
        for s in buf.state:
            s.mul_(keep)
    params, _, state = policy(buf.obs, buf.state)
    if state is not None and buf.state is not None:  # both, with a recurrent core
        for current, new in zip(buf.state, state, strict=True):
            current.copy_(new)
    host_act.copy_(policy.env_actions(policy.sample(params, deterministic=deterministic)), non_blocking=True)
