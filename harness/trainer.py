"""The one trainer: an epoch loop that knows nothing about graphs, teachers or any track.

A *task* supplies the model, the batches of an epoch, the loss of a batch and a validation
function (the shape of minGPT's trainer); the trainer does the rest. One optimisation *step* takes
``grad_accum_steps`` micro-batches (the task's batches); per step, in this order::

    optimizer.zero_grad()
    for each of the step's micro-batches:              # DDP: no_sync() but for the last one
        loss, logs = task.training_step(batch, epoch)  # forward (bf16 autocast on CUDA)
        check loss is finite                           # NaN/inf stops the run, naming the step
        (loss / grad_accum_steps).backward()           # DDP: the last one averages over ranks
    clip_grad_norm_(grad_clip)
    set the learning rate of this step                 # warm-up, then constant or cosine
    optimizer.step()                                   # AdamW; 1-D parameters take no decay
    task.after_step(step)                              # optional (e.g. clamp a temperature)

and per epoch: ``task.validate(epoch)`` (rank 0, on the bare module, ``eval()`` and no gradients),
CSV + TensorBoard logs, an atomic ``last.pt`` checkpoint and ``best.pt`` when the monitored
validation metric improves; early stopping after ``patience`` epochs without improvement, or as
soon as ``floor_metric`` falls below ``floor``. When an epoch's batches do not divide into steps,
its last step takes the remaining micro-batches and its gradient is rescaled to their mean. To know
which micro-batch ends the epoch the trainer draws each batch from ``train_batches`` one batch
ahead of training on it.

**Optimiser and schedule.** AdamW with two parameter groups (:func:`param_groups`): parameters of
two or more dimensions decay; 1-D and scalar ones (biases, norm weights, a learnable temperature)
and those the model names in an optional ``no_weight_decay() -> set[str]`` (e.g. embeddings) do
not — nanoGPT's ``configure_optimizers`` and timm's ``no_weight_decay()``. The learning rate of
step ``s`` (counted from 0) is :func:`learning_rate`: linear warm-up over ``warmup_steps``, then
constant (``schedule="constant"``) or a cosine decay from ``lr`` towards ``min_lr`` over the rest
of the run (``schedule="cosine"``; total steps = ``epochs`` x steps per epoch, from the task's
``num_train_batches()``). It is a function of the step alone, checkpointed as ``lr_schedule``, so
a resumed run follows the same sequence.

**Distributed data parallel.** Launched by ``torchrun`` (``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` set),
:func:`init_distributed` joins the process group the nanoGPT way: backend NCCL on CUDA (one GPU
per local rank), gloo on CPU. Every rank builds the same model from the same seed; during
:meth:`Trainer.fit` the trainer wraps it in :class:`~torch.nn.parallel.DistributedDataParallel`
and sets ``task.model`` to the wrapper for training (the bare module while ``validate`` and
``after_step`` run, and after ``fit``), so the task's forward pass synchronises gradients (with
``static_graph`` every micro-batch synchronises; see :class:`TrainerConfig`). Each rank is seeded
with ``seed + rank`` and given its :class:`DistContext` through the task's ``set_dist(ctx)``: the task
yields only that rank's share of the epoch (the same number of batches on every rank). The batch
size is per rank, so one optimisation step sees ``world_size x grad_accum_steps`` micro-batches.
Rank 0 alone validates, decides "best" and "stop early" and broadcasts the decision, writes
checkpoints, ``metrics.csv`` and TensorBoard, logs at INFO and shows the progress bar (when stderr
is a terminal). ``train/*``
per-step figures are means over all ranks' micro-batches; ``epoch_summary`` values are sums over
ranks (counts), from which the task's ``derive_summary`` computes rates; ``samples`` counts the
epoch's samples over all ranks and ``samples/s`` divides them by the slowest rank's training
seconds. The caller destroys the process group (:func:`cleanup_distributed`) when it is done.

**Exact resume.** A checkpoint holds model, optimizer, the learning-rate schedule, epoch, step,
best metric and the epochs since it improved, the logged rows, and per rank the RNG states (Python,
NumPy global, torch CPU, CUDA when present) and the task's own training state
(``training_state()``, e.g. its generators). ``fit(resume=True)`` restores all of it from
``last.pt`` and continues with the next epoch: a run killed mid-epoch repeats that epoch from its
start and reaches the same weights, bit for bit, as an uninterrupted run with the same seed,
configuration and world size (with another world size or schedule the run continues, with a warning
that it is no longer the same run). Checkpoints are written through :mod:`harness.checkpoint`:
atomically (a crash leaves the previous file) with a SHA-256 beside each, verified on load; a
damaged file, or a ``last.pt`` holding another model's weights, is a
:class:`~harness.checkpoint.CheckpointError` naming it.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import random
import signal
import time
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from harness.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from harness.distributed import DistContext, cleanup_distributed, init_distributed
from harness.io import atomic_write_text
from harness.optim import LRSchedule, learning_rate, param_groups
from harness.precision import training_autocast

__all__ = ["CheckpointError", "DistContext", "LRSchedule", "Task", "Trainer", "TrainerConfig",
           "TrainSummary", "cleanup_distributed", "init_distributed", "learning_rate",
           "load_checkpoint", "param_groups", "seed_everything"]

log = logging.getLogger(__name__)

#: Test hook, for tests only: when set to ``N``, the training process sends itself SIGKILL right
#: after optimisation step ``N`` (global, counted from 1) — a reproducible ``kill -9`` mid-epoch.
KILL_AT_STEP_ENV = "HARNESS_TRAINER_TEST_KILL_AT_STEP"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Task(Protocol):
    """What a research track gives the trainer.

    Under DDP the trainer sets ``task.model`` to the ``DistributedDataParallel`` wrapper for
    ``train_batches`` and ``training_step`` (and to the bare module while ``validate`` and
    ``after_step`` run, and after :meth:`Trainer.fit`): call ``self.model`` for the training
    forward pass and gradients are averaged over ranks.
    """

    model: torch.nn.Module

    def train_batches(self, epoch: int) -> Iterable[Any]:
        """Batches of one epoch (the task decides sampling; epochs count from 0)."""

    def training_step(self, batch: Any, epoch: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss to minimise and extra scalars to log for one batch (one micro-batch)."""

    def validate(self, epoch: int) -> dict[str, float]:
        """Validation metrics after an epoch (keys without the ``val/`` prefix).

        Rank 0 only, with ``task.model`` the bare module in ``eval()`` mode under
        ``torch.no_grad()`` (training mode is restored afterwards); it must not communicate.
        """

    def state_extra(self) -> dict[str, Any]:
        """Anything besides the weights that a checkpoint needs to be usable (e.g. the vocabulary)."""

    # Optional hooks, looked up with getattr:
    #   set_dist(ctx: DistContext) -> None: called at the start of fit with this process's rank,
    #       world size and device; from then on train_batches yields only this rank's share of
    #       each epoch, the same number of batches on every rank. Required when world_size > 1.
    #   training_state() -> dict / load_training_state(state: dict) -> None: the task's own
    #       resumable state (its random generators), saved per rank in every checkpoint and
    #       restored on resume.
    #   epoch_summary(epoch: int) -> dict[str, float]: whole-epoch *counts* of this rank (e.g.
    #       program runs, cache hits); the trainer sums each key over ranks and logs the totals as
    #       ``train/<key>``. Every rank must return the same keys.
    #   derive_summary(totals: dict[str, float]) -> dict[str, float]: figures computed from the
    #       summed counts (e.g. a hit rate = hits / (hits + runs)), logged beside them.
    #   num_train_batches() -> int: batches per epoch on this rank (the progress bar's total, and
    #       the length of the cosine schedule, which requires it).
    #   batch_size(batch) -> int: samples in a batch, for ``samples`` and ``samples/s``; without
    #       it the trainer takes ``len(batch)``, right for a list of samples or a tensor whose
    #       first dimension is the batch, wrong for an ``(inputs, targets)`` tuple or a dict.
    #   after_step(step: int) -> None: called after every optimiser step (``step`` counted from 1)
    #       on every rank, with ``task.model`` the bare module, e.g. to clamp a parameter into a
    #       range (every rank applies the same clamp to the same values, so ranks stay equal).
    # And on the model (the bare module): no_weight_decay() -> set[str], names of parameters
    # (as in named_parameters()) that take no weight decay besides the 1-D ones.


@dataclass
class TrainerConfig:
    """Optimisation settings.

    Attributes:
        epochs: number of epochs.
        lr: AdamW learning rate (the peak of the schedule); weight_decay: AdamW weight decay of
            the parameters that decay (see :func:`param_groups`).
        monitor: validation metric that selects ``best.pt`` (a key of ``task.validate``; a
            validation without it is an error).
        mode: ``max`` or ``min`` for ``monitor``.
        grad_clip: max global gradient norm (0 = no clipping).
        grad_accum_steps: micro-batches (task batches) per optimisation step; each micro-batch's
            loss is divided by it, so a step's gradient is the mean over its micro-batches.
        schedule: ``constant`` or ``cosine``, after warm-up (see :func:`learning_rate`).
        warmup_steps: optimisation steps of linear warm-up from ``lr / warmup_steps`` to ``lr``.
        min_lr: the learning rate the cosine schedule ends at (ignored by ``constant``).
        patience: stop after this many epochs without improvement (0 = never stop early).
        floor_metric, floor: stop as soon as validation ``floor_metric`` falls below ``floor``
            (e.g. a fine-tuning run that must not lose the one-shot accuracy of its starting
            checkpoint; ``""`` = no floor). ``best.pt`` keeps the best epoch before that.
        seed: seed for every generator (rank ``r`` uses ``seed + r``).
        bf16: run the training step under bf16 autocast when the model is on CUDA.
        bf16_cpu: also on a CPU that computes bf16 natively (AVX512-BF16/AMX,
            :func:`harness.precision.bf16_supported`); elsewhere a CPU step stays fp32.
        static_graph: wrap the model with ``DistributedDataParallel(static_graph=True)``. A task
            may call the model several times before one backward (trajectory replay does) and some
            parameters may take no part in any step's loss (a feedback path never fed); measured
            with torch 2.13: plain DDP then fails ("Expected to have finished reduction"), and
            ``find_unused_parameters=True`` fails when a parameter used by an earlier call is
            unused by the last ("mark a variable ready only once"); ``static_graph`` handles both
            as long as the set of used parameters is the same in every step (DDP raises "training
            graph has changed" otherwise). torch's static graph fails an internal assertion when
            its first iteration runs under ``no_sync()``, so with ``static_graph`` every
            micro-batch synchronises its gradients (the same gradients, more communication).
            ``False``: plain DDP.

    Raises:
        ValueError: a setting out of its range (``mode``, ``schedule``, ``grad_accum_steps`` < 1,
            ``warmup_steps`` < 0, ``min_lr`` outside ``[0, lr]``).
    """

    epochs: int
    lr: float
    monitor: str
    mode: str
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    grad_accum_steps: int = 1
    schedule: str = "constant"
    warmup_steps: int = 0
    min_lr: float = 0.0
    patience: int = 0
    floor_metric: str = ""
    floor: float = -math.inf
    seed: int = 0
    bf16: bool = True
    bf16_cpu: bool = False
    static_graph: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {self.mode!r}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}")
        if self.grad_accum_steps < 1:
            raise ValueError(f"grad_accum_steps must be >= 1, got {self.grad_accum_steps}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"min_lr must be in [0, lr={self.lr}], got {self.min_lr}")


@dataclass
class TrainSummary:
    """Outcome of :meth:`Trainer.fit`: best checkpoint path, its metric and epoch, epochs run, wall seconds."""

    best_path: Path
    best_metric: float
    best_epoch: int
    epochs_run: int
    seconds: float


def _rng_state(device: torch.device) -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _with_last(items: Iterable[Any]) -> Iterator[tuple[Any, bool]]:
    """``(item, is_last)`` pairs, drawing one item ahead."""
    it = iter(items)
    try:
        prev = next(it)
    except StopIteration:
        return
    for item in it:
        yield prev, False
        prev = item
    yield prev, True


class Trainer:
    """Train ``task.model`` with AdamW, logging and atomic checkpoints in ``run_dir``.

    Args:
        task: the track's task (see :class:`Task`).
        cfg: optimisation settings.
        run_dir: output directory (``metrics.csv``, ``tb/``, ``last.pt``, ``best.pt``); rank 0 creates it.
        config: the resolved experiment configuration as a dict, stored in every checkpoint.
        dist_ctx: this process's place in the run; default :func:`init_distributed` on the device
            of the model's parameters.

    Raises:
        TypeError: more than one rank but the task has no ``set_dist`` (it could not shard its
            data), or a cosine schedule but no ``num_train_batches`` (its length is unknown).
        ValueError: the model's ``no_weight_decay()`` names an unknown parameter.
    """

    def __init__(self, task: Task, cfg: TrainerConfig, run_dir: str | Path, config: dict[str, Any],
                 dist_ctx: DistContext | None = None):
        self.task, self.cfg, self.config = task, cfg, config
        self.model = task.model  # the bare module: what checkpoints hold and validation runs
        self.dist = dist_ctx or init_distributed(next(self.model.parameters()).device)
        if self.dist.world_size > 1 and not hasattr(task, "set_dist"):
            raise TypeError(f"{type(task).__name__} has no set_dist(ctx): under DDP every rank "
                            "would train on the same samples; add it to shard the data by ctx.rank")
        if cfg.schedule == "cosine" and not hasattr(task, "num_train_batches"):
            raise TypeError(f"{type(task).__name__} has no num_train_batches(): the cosine "
                            "schedule needs the number of steps; add it or use schedule='constant'")
        self.run_dir = Path(run_dir)
        if self.dist.master:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.optimizer = torch.optim.AdamW(param_groups(self.model, cfg.weight_decay), lr=cfg.lr)
        self.schedule: LRSchedule | None = None  # set by fit (needs the task's shard size)
        self.rows: list[dict[str, Any]] = []
        self.step = 0
        self._ddp: torch.nn.Module | None = None

    def _better(self, value: float, best: float) -> bool:
        if math.isnan(value):
            return False
        return value > best if self.cfg.mode == "max" else value < best

    def _make_schedule(self) -> LRSchedule:
        """The run's schedule; ``total_steps`` is 0 for ``constant`` (which does not use it)."""
        cfg, total = self.cfg, 0
        if cfg.schedule == "cosine":
            total = cfg.epochs * -(-self.task.num_train_batches() // cfg.grad_accum_steps)
        return LRSchedule(cfg.schedule, cfg.lr, cfg.min_lr, cfg.warmup_steps, total)

    def _rank_state(self) -> dict[str, Any]:
        """This rank's RNG states and the task's training state (the per-rank part of a checkpoint)."""
        get = getattr(self.task, "training_state", None)
        return {"rng": _rng_state(self.dist.device), "task": get() if get is not None else None}

    def _gather(self, obj: Any) -> list[Any]:
        """``obj`` of every rank, in rank order (on every rank)."""
        if not self.dist.ddp:
            return [obj]
        out: list[Any] = [None] * self.dist.world_size
        dist.all_gather_object(out, obj)
        return out

    def _save(self, path: Path, ranks: list[dict], epoch: int, best: float, best_epoch: int,
              stale: int, metrics: dict) -> None:
        state = {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_schedule": asdict(self.schedule) if self.schedule is not None else None,
            "epoch": epoch,
            "step": self.step,
            "best_metric": best,
            "best_epoch": best_epoch,
            "stale": stale,
            "metrics": metrics,
            "config": self.config,
            "extra": self.task.state_extra(),
            "rows": self.rows,
            "world_size": self.dist.world_size,
            "rng": ranks[0]["rng"],  # rank 0's, kept at the top level for readers of format 1
            "ranks": ranks,
        }
        save_checkpoint(path, state)

    def _write_csv(self) -> None:
        keys: list[str] = []
        for row in self.rows:
            keys.extend(k for k in row if k not in keys)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.run_dir / "metrics.csv", out.getvalue())

    def _resume(self) -> tuple[int, float, int, int]:
        """Restore everything from ``last.pt``; return (start epoch, best, best epoch, stale)."""
        path = self.run_dir / "last.pt"
        ckpt = load_checkpoint(path, map_location=self.dist.device)
        load_weights(self.model, ckpt["model"], str(path))
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except ValueError as exc:  # parameter groups that do not match this model's
            raise CheckpointError(f"{path}: its optimizer state does not fit this model's parameter "
                               f"groups ({exc}); resume with the code and configuration the run "
                               "was started with") from exc
        saved = ckpt.get("lr_schedule")
        if saved != asdict(self.schedule) and self.dist.master:
            log.warning("%s was trained with the learning-rate schedule %s, this run has %s: the "
                        "run continues but is not the same run", path, saved, asdict(self.schedule))
        self.step, self.rows = ckpt["step"], ckpt["rows"]
        ranks = ckpt.get("ranks") or [{"rng": ckpt["rng"], "task": None}]
        if len(ranks) == self.dist.world_size:
            mine = ranks[self.dist.rank]
            _set_rng_state(mine["rng"], self.dist.device)
            load = getattr(self.task, "load_training_state", None)
            if load is not None and mine["task"] is not None:
                load(mine["task"])
        elif self.dist.master:
            log.warning("%s was written by %d rank(s), this run has %d: random states start afresh "
                        "from the seed, so the run continues but is not the same run", path,
                        len(ranks), self.dist.world_size)
        start = ckpt["epoch"] + 1
        stale = ckpt.get("stale", ckpt["epoch"] - ckpt["best_epoch"])
        if self.dist.master:
            log.info("resumed from %s at epoch %d (step %d)", path, start + 1, self.step)
        return start, ckpt["best_metric"], ckpt["best_epoch"], stale

    def fit(self, resume: bool = False) -> TrainSummary:
        """Run the epochs; return where the best checkpoint is (the same on every rank).

        Raises:
            RuntimeError: a non-finite loss (names epoch, step and rank), or no epoch with a
                finite validation metric.
            ValueError: the validation has no ``monitor`` (or ``floor_metric``) key.
            CheckpointError: ``resume`` with an unreadable ``last.pt``.
            FileNotFoundError: ``resume`` without ``last.pt``.
        """
        cfg, ctx, task = self.cfg, self.dist, self.task
        seed_everything(cfg.seed + ctx.rank)  # per-rank offset: dropout etc. differ across ranks
        if hasattr(task, "set_dist"):
            task.set_dist(ctx)
        self.schedule = self._make_schedule()
        best = -math.inf if cfg.mode == "max" else math.inf
        best_epoch, start_epoch, stale = -1, 0, 0
        if resume:
            start_epoch, best, best_epoch, stale = self._resume()
        writer = None
        if ctx.master:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.run_dir / "tb"))
        if ctx.ddp:
            ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            self._ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=ids, static_graph=cfg.static_graph)
            task.model = self._ddp
        autocast = training_autocast(ctx.device, cuda=cfg.bf16, cpu=cfg.bf16_cpu)
        kill_at = int(os.environ.get(KILL_AT_STEP_ENV, 0))
        t0 = time.perf_counter()
        epoch = start_epoch - 1
        try:
            for epoch in range(start_epoch, cfg.epochs):
                best, best_epoch, stale, stop = self._epoch(
                    epoch, writer, autocast, kill_at, best, best_epoch, stale)
                if stop:
                    break
        finally:
            task.model, self._ddp = self.model, None
            if writer is not None:
                writer.close()
        if best_epoch < 0:
            raise RuntimeError(
                f"no epoch produced a finite validation {cfg.monitor!r}; nothing to select"
            )
        return TrainSummary(self.run_dir / "best.pt", best, best_epoch, epoch + 1,
                            time.perf_counter() - t0)

    def _batch_size(self, batch: Any) -> int:
        hook = getattr(self.task, "batch_size", None)
        if hook is not None:
            return int(hook(batch))
        try:
            return len(batch)
        except TypeError:
            raise TypeError(f"{type(self.task).__name__}'s batches ({type(batch).__name__}) have "
                            "no len(); add a batch_size(batch) -> int hook to the task") from None

    def _train_step(self, k: int, logs: dict[str, float], writer: Any) -> None:
        """Clip, set the LR and take the optimiser step over ``k`` accumulated micro-batches."""
        cfg = self.cfg
        if k < cfg.grad_accum_steps:  # the epoch's short last step: gradient = mean over k
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.mul_(cfg.grad_accum_steps / k)
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        lr = learning_rate(self.schedule, self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.step += 1
        after = getattr(self.task, "after_step", None)
        if after is not None:
            wrapped, self.task.model = self.task.model, self.model  # the bare module's parameters
            try:
                after(self.step)
            finally:
                self.task.model = wrapped
        if writer is not None:
            for key, v in logs.items():
                writer.add_scalar(f"train/{key}", v / k, self.step)
            writer.add_scalar("train/lr", lr, self.step)

    def _epoch(self, epoch: int, writer: Any, autocast: Any, kill_at: int, best: float,
               best_epoch: int, stale: int) -> tuple[float, int, int, bool]:
        """Train one epoch, validate, log and checkpoint; return (best, best epoch, stale, stop)."""
        cfg, ctx, task = self.cfg, self.dist, self.task
        accum = cfg.grad_accum_steps
        task.model.train()
        t_epoch = time.perf_counter()
        sums: dict[str, float] = {}  # per micro-batch figures, summed over the epoch
        step_logs: dict[str, float] = {}  # the same, summed over the current step
        n = samples = k = 0  # micro-batches and samples of the epoch, micro-batches of the step
        total = getattr(task, "num_train_batches", None)
        bar = tqdm(_with_last(task.train_batches(epoch)), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   unit="batch", total=total() if total else None, leave=False,
                   dynamic_ncols=True, disable=None if ctx.master else True)
        for batch, last in bar:
            if k == 0:
                self.optimizer.zero_grad(set_to_none=True)
            k += 1
            sync = last or k == accum
            no_sync = self._ddp is not None and not sync and not cfg.static_graph
            with self._ddp.no_sync() if no_sync else nullcontext():
                # 1) forward + loss (the task may execute tests or gather across ranks here)
                with autocast:
                    loss, logs = task.training_step(batch, epoch)
                if not torch.isfinite(loss):
                    part = f", micro-batch {k}/{accum}" if accum > 1 else ""
                    raise RuntimeError(
                        f"non-finite loss {loss.item()} at epoch {epoch + 1}, step "
                        f"{self.step + 1}{part} (rank {ctx.rank}); lower the learning rate or "
                        "check the inputs of this batch"
                    )
                # 2) backward: gradients accumulate; DDP averages them over ranks when synced
                (loss / accum).backward()
            samples += self._batch_size(batch)
            for key, v in {"loss": loss.item(), **logs}.items():
                sums[key] = sums.get(key, 0.0) + v
                step_logs[key] = step_logs.get(key, 0.0) + v
            n += 1
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if sync:
                # 3) clip, learning rate, update, the task's after_step
                self._train_step(k, step_logs, writer)
                k, step_logs = 0, {}
                if self.step == kill_at:  # test hook (KILL_AT_STEP_ENV): simulate kill -9
                    os.kill(os.getpid(), signal.SIGKILL)
        train_s = time.perf_counter() - t_epoch
        summary = getattr(task, "epoch_summary", None)
        counts = summary(epoch) if summary is not None else {}
        # 4) figures of all ranks: micro-batch means over every rank, epoch counts summed
        per_rank = self._gather((sums, n, counts, samples, train_s))
        steps = sum(r[1] for r in per_rank)
        train = {k: sum(r[0].get(k, 0.0) for r in per_rank) / max(steps, 1) for k in sums}
        whole = {k: float(sum(r[2][k] for r in per_rank)) for k in counts}
        derive = getattr(task, "derive_summary", None)
        if derive is not None:
            whole.update(derive(dict(whole)))
        samples = sum(r[3] for r in per_rank)
        train_s = max(r[4] for r in per_rank)
        # 5) validation, best and early stopping: decided on rank 0, broadcast to every rank
        decision: list[Any] = [None]
        if ctx.master:
            decision = [self._decide(epoch, best, best_epoch, stale)]
        if ctx.ddp:
            dist.broadcast_object_list(decision, src=0)
        val, improved, best, best_epoch, stale = decision[0]
        row = {"epoch": epoch + 1, "step": self.step}
        row.update({f"train/{k}": v for k, v in train.items()})
        row.update({f"train/{k}": v for k, v in whole.items()})
        row.update({f"val/{k}": v for k, v in val.items()})
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        row["samples"] = samples
        row["samples/s"] = round(samples / max(train_s, 1e-9), 2)
        row["train_seconds"] = round(train_s, 2)
        row["epoch_seconds"] = round(time.perf_counter() - t_epoch, 2)
        self.rows.append(row)
        # 6) checkpoint: every rank's RNG/task state, written by rank 0 alone
        ranks = self._gather(self._rank_state())
        if ctx.master:
            for k, v in whole.items():
                writer.add_scalar(f"train/{k}", v, epoch + 1)
            writer.add_scalar("train/samples_per_s", row["samples/s"], epoch + 1)
            for k, v in val.items():
                writer.add_scalar(f"val/{k}", v, epoch + 1)
            self._write_csv()
            self._save(self.run_dir / "last.pt", ranks, epoch, best, best_epoch, stale, val)
            if improved:
                self._save(self.run_dir / "best.pt", ranks, epoch, best, best_epoch, stale, val)
            log.info(
                "epoch %d/%d  loss %.4f%s  val %s  %.1f samples/s  %.1f s%s", epoch + 1,
                cfg.epochs, row.get("train/loss", float("nan")),
                "".join(f"  {k}={v:.4g}" for k, v in whole.items()),
                "  ".join(f"{k}={v:.4f}" for k, v in val.items()), row["samples/s"],
                row["epoch_seconds"], "  (best)" if improved else "",
            )
        stop = bool(cfg.patience and stale >= cfg.patience)
        if stop and ctx.master:
            log.info("early stop: %s did not improve for %d epochs", cfg.monitor, stale)
        below = val[cfg.floor_metric] < cfg.floor if cfg.floor_metric else False
        if below and ctx.master:
            log.warning("early stop: %s = %.4f fell below its floor %.4f", cfg.floor_metric,
                        val[cfg.floor_metric], cfg.floor)
        return best, best_epoch, stale, stop or below

    def _validate(self, epoch: int) -> dict[str, float]:
        """``task.validate`` on the bare module, in eval mode, without gradients (rank 0)."""
        task, wrapped, was_training = self.task, self.task.model, self.model.training
        task.model = self.model  # never the DDP wrapper: its forward would communicate
        self.model.eval()
        try:
            with torch.no_grad():
                return task.validate(epoch)
        finally:
            task.model = wrapped
            self.model.train(was_training)

    def _decide(self, epoch: int, best: float, best_epoch: int,
                stale: int) -> tuple[dict[str, float], bool, float, int, int]:
        """Rank 0: validate and decide; return ``(val, improved, best, best_epoch, stale)``.

        Raises:
            ValueError: the validation has no ``monitor`` (or ``floor_metric``) key. (Under
                torchrun the other ranks are then stopped by torchrun.)
        """
        cfg = self.cfg
        val = self._validate(epoch)
        missing = [k for k in (cfg.monitor, cfg.floor_metric) if k and k not in val]
        if missing:
            raise ValueError(f"the validation of {type(self.task).__name__} has no {missing}, "
                             f"which the trainer monitors; it returned {sorted(val)}: set "
                             "monitor / floor_metric to one of these")
        metric = val[cfg.monitor]
        improved = self._better(metric, best)
        if improved:
            best, best_epoch, stale = metric, epoch, 0
        else:
            stale += 1
        return val, improved, best, best_epoch, stale
