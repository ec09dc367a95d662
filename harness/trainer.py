"""The one trainer: an epoch loop that knows nothing about graphs or teachers.

A *task* supplies the model, the batches of an epoch, the loss of a batch and a validation
function (the shape of minGPT's trainer); the trainer does the rest, in this order per step::

    loss, logs = task.training_step(batch, epoch)   # forward (bf16 autocast on CUDA)
    check loss is finite                             # NaN/inf stops the run, naming the step
    loss.backward()                                  # DDP: gradients averaged over ranks here
    clip_grad_norm_; optimizer.step(); scheduler.step()

and per epoch: ``task.validate(epoch)``, CSV + TensorBoard logs, an atomic ``last.pt`` checkpoint and
``best.pt`` when the monitored validation metric improves; early stopping after ``patience`` epochs
without improvement.

**Distributed data parallel.** Launched by ``torchrun`` (``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` set),
:func:`init_distributed` joins the process group the nanoGPT way: backend NCCL on CUDA (one GPU
per local rank), gloo on CPU. Every rank builds the same model from the same seed; during
:meth:`Trainer.fit` the trainer wraps it in :class:`~torch.nn.parallel.DistributedDataParallel`
and sets ``task.model`` to the wrapper (restored afterwards), so the task's forward pass
synchronises gradients. Each rank is seeded with ``seed + rank`` and told its rank through the
task's ``set_rank(rank, world_size)``: the task yields only that rank's share of the epoch (the
same number of batches on every rank). The batch size is per rank, so one optimisation step sees
``world_size`` times as many samples. Rank 0 alone validates, decides "best" and "stop early" and
broadcasts the decision, writes checkpoints, ``metrics.csv`` and TensorBoard, logs at INFO and
shows the progress bar. ``train/*`` figures are means over all ranks. The caller destroys the
process group (:func:`cleanup_distributed`) when it is done.

**Exact resume.** A checkpoint holds model, optimizer, scheduler, epoch, step, best metric and
the epochs since it improved, the logged rows, and per rank the RNG states (Python, NumPy global,
torch CPU, CUDA when present) and the task's own training state (``training_state()``, e.g. its
generators). ``fit(resume=True)`` restores all of it from ``last.pt`` and continues with the next
epoch: a run killed mid-epoch repeats that epoch from its start and reaches the same weights as an
uninterrupted run with the same seed and world size (with another world size the run continues, with
a warning that it is no longer the same run). Checkpoints are written atomically (a crash leaves the
previous file), and :func:`load_checkpoint` turns an unreadable file into an error naming it.
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
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from harness.distributed import DistContext, cleanup_distributed, init_distributed
from harness.io import atomic_write, atomic_write_text

__all__ = ["CheckpointError", "DistContext", "Task", "Trainer", "TrainerConfig", "TrainSummary",
           "cleanup_distributed", "init_distributed", "load_checkpoint", "seed_everything"]

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = 1

#: Test hook, for tests only: when set to ``N``, the training process sends itself SIGKILL right
#: after optimisation step ``N`` (global, counted from 1) — a reproducible ``kill -9`` mid-epoch.
KILL_AT_STEP_ENV = "HARNESS_TRAINER_TEST_KILL_AT_STEP"


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used (unreadable, truncated, or not written by :class:`Trainer`)."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Task(Protocol):
    """What a research track gives the trainer.

    Under DDP the trainer sets ``task.model`` to the ``DistributedDataParallel`` wrapper for the
    duration of :meth:`Trainer.fit` (restoring the bare module afterwards): call ``self.model`` for
    the training forward pass and gradients are averaged over ranks.
    """

    model: torch.nn.Module

    def train_batches(self, epoch: int) -> Iterable[Any]:
        """Batches of one epoch (the task decides sampling; epochs count from 0)."""

    def training_step(self, batch: Any, epoch: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss to minimise and extra scalars to log for one batch."""

    def validate(self, epoch: int) -> dict[str, float]:
        """Validation metrics after an epoch (keys without the ``val/`` prefix); rank 0 only."""

    def state_extra(self) -> dict[str, Any]:
        """Anything besides the weights that a checkpoint needs to be usable (e.g. the vocabulary)."""

    # Optional hooks, looked up with getattr:
    #   set_rank(rank, world_size): from then on train_batches yields only this rank's share of
    #       each epoch, the same number of batches on every rank. Required when world_size > 1.
    #   training_state() -> dict / load_training_state(state): the task's own resumable state
    #       (its random generators), saved per rank in every checkpoint and restored on resume.
    #   epoch_summary(epoch) -> dict[str, float]: whole-epoch training figures (e.g. a cache hit
    #       rate) logged as ``train/<key>`` beside the per-step means.
    #   num_train_batches() -> int: batches per epoch on this rank (the progress bar's total,
    #       so that it shows an ETA).


@dataclass
class TrainerConfig:
    """Optimisation settings.

    Attributes:
        epochs: number of epochs.
        lr: AdamW learning rate; weight_decay: AdamW weight decay.
        grad_clip: max global gradient norm (0 = no clipping).
        monitor: validation metric that selects ``best.pt`` (a key of ``task.validate``).
        mode: ``max`` or ``min`` for ``monitor``.
        patience: stop after this many epochs without improvement (0 = never stop early).
        floor_metric, floor: stop as soon as validation ``floor_metric`` falls below ``floor``
            (e.g. a fine-tuning run that must not lose the one-shot accuracy of its starting
            checkpoint; ``""`` = no floor). ``best.pt`` keeps the best epoch before that.
        seed: seed for every generator (rank ``r`` uses ``seed + r``).
        bf16: run the training step under bf16 autocast when the model is on CUDA (ignored on CPU).
        static_graph: wrap the model with ``DistributedDataParallel(static_graph=True)``. A task
            may call the model several times before one backward (trajectory replay does) and some
            parameters may take no part in any step's loss (a feedback path never fed); measured
            with torch 2.13: plain DDP then fails ("Expected to have finished reduction"), and
            ``find_unused_parameters=True`` fails when a parameter used by an earlier call is
            unused by the last ("mark a variable ready only once"); ``static_graph`` handles both
            as long as the set of used parameters is the same in every step (DDP raises "training
            graph has changed" otherwise). ``False``: plain DDP.
    """

    epochs: int
    lr: float
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    monitor: str = "loss"
    mode: str = "max"
    patience: int = 0
    floor_metric: str = ""
    floor: float = -math.inf
    seed: int = 0
    bf16: bool = True
    static_graph: bool = True


@dataclass
class TrainSummary:
    """Outcome of :meth:`Trainer.fit`: best checkpoint path, its metric and epoch, epochs run, wall seconds."""

    best_path: Path
    best_metric: float
    best_epoch: int
    epochs_run: int
    seconds: float


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :class:`Trainer`.

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointError: the file is not a readable checkpoint of this format (truncated, corrupt,
            or written by something else); the message says which file and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises several types for corrupt zips/pickles
        raise CheckpointError(
            f"checkpoint {path} could not be read ({type(exc).__name__}: {exc}); it is corrupt or "
            "truncated (the trainer writes checkpoints atomically, so it was damaged afterwards: "
            "an incomplete copy, a full disk) — use another checkpoint of the run (best.pt / "
            "last.pt; to resume from best.pt, copy it over last.pt) or train again"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a trainer checkpoint of format {CHECKPOINT_FORMAT} "
            f"(found {type(ckpt).__name__} with format {getattr(ckpt, 'get', lambda k: None)('format')})"
        )
    return ckpt


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


class Trainer:
    """Train ``task.model`` with AdamW, logging and atomic checkpoints in ``run_dir``.

    Args:
        task: the track's task (see :class:`Task`).
        cfg: optimisation settings.
        run_dir: output directory (``metrics.csv``, ``tb/``, ``last.pt``, ``best.pt``); rank 0 creates it.
        config: the resolved experiment configuration as a dict, stored in every checkpoint.
        dist_ctx: this process's place in the run; default :func:`init_distributed` on the device
            of the model's parameters.
        scheduler: optional ``optimizer -> LR scheduler`` factory; the scheduler is stepped after
            every optimisation step and checkpointed.

    Raises:
        ValueError: ``cfg.mode`` is not ``max``/``min``.
        TypeError: more than one rank but the task has no ``set_rank`` (it could not shard its data).
    """

    def __init__(self, task: Task, cfg: TrainerConfig, run_dir: str | Path, config: dict[str, Any],
                 dist_ctx: DistContext | None = None,
                 scheduler: Callable[[torch.optim.Optimizer], Any] | None = None):
        if cfg.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {cfg.mode!r}")
        self.task, self.cfg, self.config = task, cfg, config
        self.model = task.model  # the bare module: what checkpoints hold
        self.dist = dist_ctx or init_distributed(next(self.model.parameters()).device)
        if self.dist.world_size > 1 and not hasattr(task, "set_rank"):
            raise TypeError(f"{type(task).__name__} has no set_rank(rank, world_size): under DDP "
                            "every rank would train on the same samples; add it to shard the data")
        self.run_dir = Path(run_dir)
        if self.dist.master:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.scheduler = scheduler(self.optimizer) if scheduler is not None else None
        self.rows: list[dict[str, Any]] = []
        self.step = 0

    def _better(self, value: float, best: float) -> bool:
        if math.isnan(value):
            return False
        return value > best if self.cfg.mode == "max" else value < best

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
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
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
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write(path, lambda f: f.write(buf.getbuffer()))

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
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None:
            if ckpt.get("scheduler") is None:
                raise RuntimeError(f"{path} holds no scheduler state but this run has a scheduler; "
                                   "resume with the configuration the run was started with")
            self.scheduler.load_state_dict(ckpt["scheduler"])
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
            RuntimeError: a non-finite loss (names epoch, step and rank), or no epoch with a finite
                validation metric.
            CheckpointError: ``resume`` with an unreadable ``last.pt``.
            FileNotFoundError: ``resume`` without ``last.pt``.
        """
        cfg, ctx, task = self.cfg, self.dist, self.task
        seed_everything(cfg.seed + ctx.rank)  # per-rank offset: dropout etc. differ across ranks
        if hasattr(task, "set_rank"):
            task.set_rank(ctx.rank, ctx.world_size)
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
            task.model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=ids, static_graph=cfg.static_graph)
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16)
                    if cfg.bf16 and ctx.device.type == "cuda" else nullcontext())
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
            task.model = self.model
            if writer is not None:
                writer.close()
        if best_epoch < 0:
            raise RuntimeError(
                f"no epoch produced a finite validation {cfg.monitor!r}; nothing to select"
            )
        return TrainSummary(self.run_dir / "best.pt", best, best_epoch, epoch + 1,
                            time.perf_counter() - t0)

    def _epoch(self, epoch: int, writer: Any, autocast: Any, kill_at: int, best: float,
               best_epoch: int, stale: int) -> tuple[float, int, int, bool]:
        """Train one epoch, validate, log and checkpoint; return (best, best epoch, stale, stop)."""
        cfg, ctx, task = self.cfg, self.dist, self.task
        task.model.train()
        t_epoch = time.perf_counter()
        sums: dict[str, float] = {}
        n = 0
        total = getattr(task, "num_train_batches", None)
        bar = tqdm(task.train_batches(epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                   total=total() if total else None, leave=False, dynamic_ncols=True,
                   disable=not ctx.master)
        for batch in bar:
            # 1) forward + loss (the task may execute tests here)
            with autocast:
                loss, logs = task.training_step(batch, epoch)
            if not torch.isfinite(loss):
                raise RuntimeError(
                    f"non-finite loss {loss.item()} at epoch {epoch + 1}, step {self.step + 1} "
                    f"(rank {ctx.rank}); lower train.lr or check the inputs of this batch"
                )
            # 2) backward (DDP all-reduces gradients), clip, update
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            self.step += 1
            if self.step == kill_at:  # test hook (KILL_AT_STEP_ENV): simulate kill -9 mid-epoch
                os.kill(os.getpid(), signal.SIGKILL)
            logs = {"loss": loss.item(), **logs}
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v
                if writer is not None:
                    writer.add_scalar(f"train/{k}", v, self.step)
            n += 1
            bar.set_postfix(loss=f"{logs['loss']:.3f}")
        train_s = time.perf_counter() - t_epoch
        summary = getattr(task, "epoch_summary", None)
        whole = summary(epoch) if summary is not None else {}
        # 3) figures of all ranks: per-step means over every rank's steps, epoch summaries averaged
        per_rank = self._gather((sums, n, whole))
        steps = sum(r[1] for r in per_rank)
        train = {k: sum(r[0].get(k, 0.0) for r in per_rank) / max(steps, 1) for k in sums}
        whole = {k: sum(r[2][k] for r in per_rank) / len(per_rank) for k in whole}
        # 4) validation, best and early stopping: decided on rank 0, broadcast to every rank
        decision: list[Any] = [None]
        if ctx.master:
            val = task.validate(epoch)
            metric = val.get(cfg.monitor, float("nan"))
            improved = self._better(metric, best)
            if improved:
                best, best_epoch, stale = metric, epoch, 0
            else:
                stale += 1
            decision = [(val, improved, best, best_epoch, stale)]
        if ctx.ddp:
            dist.broadcast_object_list(decision, src=0)
        val, improved, best, best_epoch, stale = decision[0]
        row = {"epoch": epoch + 1, "step": self.step}
        row.update({f"train/{k}": v for k, v in train.items()})
        row.update({f"train/{k}": v for k, v in whole.items()})
        row.update({f"val/{k}": v for k, v in val.items()})
        row["train_seconds"] = round(train_s, 2)
        row["epoch_seconds"] = round(time.perf_counter() - t_epoch, 2)
        self.rows.append(row)
        # 5) checkpoint: every rank's RNG/task state, written by rank 0 alone
        ranks = self._gather(self._rank_state())
        if ctx.master:
            for k, v in whole.items():
                writer.add_scalar(f"train/{k}", v, epoch + 1)
            for k, v in val.items():
                writer.add_scalar(f"val/{k}", v, epoch + 1)
            self._write_csv()
            self._save(self.run_dir / "last.pt", ranks, epoch, best, best_epoch, stale, val)
            if improved:
                self._save(self.run_dir / "best.pt", ranks, epoch, best, best_epoch, stale, val)
            log.info(
                "epoch %d/%d  loss %.4f%s  val %s  %.1f s%s", epoch + 1, cfg.epochs,
                row.get("train/loss", float("nan")),
                "".join(f"  {k}={v:.4g}" for k, v in whole.items()),
                "  ".join(f"{k}={v:.4f}" for k, v in val.items()), row["epoch_seconds"],
                "  (best)" if improved else "",
            )
        stop = bool(cfg.patience and stale >= cfg.patience)
        if stop and ctx.master:
            log.info("early stop: %s did not improve for %d epochs", cfg.monitor, stale)
        below = val.get(cfg.floor_metric, math.inf) < cfg.floor if cfg.floor_metric else False
        if below and ctx.master:
            log.warning("early stop: %s = %.4f fell below its floor %.4f", cfg.floor_metric,
                        val[cfg.floor_metric], cfg.floor)
        return best, best_epoch, stale, stop or below
