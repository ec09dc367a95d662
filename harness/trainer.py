"""The one trainer: an epoch loop that knows nothing about graphs or teachers.

A *task* supplies the model, the batches of an epoch, the loss of a batch and a validation
function (the shape of minGPT's trainer); the trainer does the rest, in this order per step::

    loss, logs = task.training_step(batch, epoch)   # forward (the task may run tests, etc.)
    check loss is finite                             # NaN/inf stops the run, naming the step
    loss.backward(); clip_grad_norm_; optimizer.step()

and per epoch: ``task.validate(epoch)``, CSV + TensorBoard logs, an atomic ``last.pt`` checkpoint and
``best.pt`` when the monitored validation metric improves; early stopping after ``patience`` epochs
without improvement. ``resume=True`` restores model, optimizer, epoch, best metric and RNG states
from ``last.pt`` and continues with the next epoch.

This first version runs in one process. Multi-process DDP (torchrun, gloo/NCCL, per-rank shards) is
the next step of this module and is not implemented yet.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from harness.io import atomic_write, atomic_write_text

__all__ = ["Task", "Trainer", "TrainerConfig", "TrainSummary", "load_checkpoint", "seed_everything"]

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = 1


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Task(Protocol):
    """What a research track gives the trainer."""

    model: torch.nn.Module

    def train_batches(self, epoch: int) -> Iterable[Any]:
        """Batches of one epoch (the task decides sampling; epochs count from 0)."""

    def training_step(self, batch: Any, epoch: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss to minimise and extra scalars to log for one batch."""

    def validate(self, epoch: int) -> dict[str, float]:
        """Validation metrics after an epoch (keys without the ``val/`` prefix)."""

    def state_extra(self) -> dict[str, Any]:
        """Anything besides the weights that a checkpoint needs to be usable (e.g. the vocabulary)."""

    # Optional: ``epoch_summary(epoch) -> dict[str, float]``, whole-epoch training figures (e.g.
    # a cache hit rate) logged as ``train/<key>`` beside the per-step means.


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
        seed: seed for every generator.
    """

    epochs: int
    lr: float
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    monitor: str = "loss"
    mode: str = "max"
    patience: int = 0
    seed: int = 0


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
        RuntimeError: the file is not a readable checkpoint of this format (truncated, corrupt, or
            written by something else); the message says which file and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises several types for corrupt zips/pickles
        raise RuntimeError(
            f"checkpoint {path} could not be read ({type(exc).__name__}: {exc}); it is corrupt or "
            "truncated — use another checkpoint of the run (last.pt / best.pt) or retrain"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise RuntimeError(
            f"{path} is not a trainer checkpoint of format {CHECKPOINT_FORMAT} "
            f"(found {type(ckpt).__name__} with format {getattr(ckpt, 'get', lambda k: None)('format')})"
        )
    return ckpt


class Trainer:
    """Train ``task.model`` with AdamW, logging and atomic checkpoints in ``run_dir``.

    Args:
        task: the track's task (see :class:`Task`).
        cfg: optimisation settings.
        run_dir: output directory (``metrics.csv``, ``tb/``, ``last.pt``, ``best.pt``).
        config: the resolved experiment configuration as a dict, stored in every checkpoint.
    """

    def __init__(self, task: Task, cfg: TrainerConfig, run_dir: str | Path, config: dict[str, Any]):
        if cfg.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {cfg.mode!r}")
        self.task, self.cfg, self.config = task, cfg, config
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.optimizer = torch.optim.AdamW(
            task.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.rows: list[dict[str, Any]] = []
        self.step = 0

    def _better(self, value: float, best: float) -> bool:
        if math.isnan(value):
            return False
        return value > best if self.cfg.mode == "max" else value < best

    def _save(self, path: Path, epoch: int, best: float, best_epoch: int, metrics: dict) -> None:
        state = {
            "format": CHECKPOINT_FORMAT,
            "model": self.task.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": epoch,
            "step": self.step,
            "best_metric": best,
            "best_epoch": best_epoch,
            "metrics": metrics,
            "config": self.config,
            "extra": self.task.state_extra(),
            "rows": self.rows,
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
            },
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

    def fit(self, resume: bool = False) -> TrainSummary:
        """Run the epochs; return where the best checkpoint is.

        Raises:
            RuntimeError: a non-finite loss (names epoch and step), or ``resume`` without ``last.pt``.
        """
        from torch.utils.tensorboard import SummaryWriter

        cfg, model = self.cfg, self.task.model
        seed_everything(cfg.seed)
        best = -math.inf if cfg.mode == "max" else math.inf
        best_epoch, start_epoch = -1, 0
        if resume:
            ckpt = load_checkpoint(self.run_dir / "last.pt")
            model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            best, best_epoch = ckpt["best_metric"], ckpt["best_epoch"]
            start_epoch, self.step, self.rows = ckpt["epoch"] + 1, ckpt["step"], ckpt["rows"]
            random.setstate(ckpt["rng"]["python"])
            np.random.set_state(ckpt["rng"]["numpy"])
            torch.set_rng_state(ckpt["rng"]["torch"])
            log.info("resumed from %s at epoch %d", self.run_dir / "last.pt", start_epoch)
        writer = SummaryWriter(str(self.run_dir / "tb"))
        t0 = time.perf_counter()
        stale = 0
        epoch = start_epoch - 1
        for epoch in range(start_epoch, cfg.epochs):
            model.train()
            t_epoch = time.perf_counter()
            sums: dict[str, float] = {}
            n = 0
            bar = tqdm(self.task.train_batches(epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       unit="batch", leave=False, dynamic_ncols=True)
            for batch in bar:
                # 1) forward + loss (the task may execute tests here)
                loss, logs = self.task.training_step(batch, epoch)
                if not torch.isfinite(loss):
                    raise RuntimeError(
                        f"non-finite loss {loss.item()} at epoch {epoch}, step {self.step}; "
                        "lower train.lr or check the inputs of this batch"
                    )
                # 2) backward, clip, update
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                self.optimizer.step()
                self.step += 1
                logs = {"loss": loss.item(), **logs}
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v
                    writer.add_scalar(f"train/{k}", v, self.step)
                n += 1
                bar.set_postfix(loss=f"{logs['loss']:.3f}")
            train_s = time.perf_counter() - t_epoch
            summary = getattr(self.task, "epoch_summary", None)
            whole = summary(epoch) if summary is not None else {}
            val = self.task.validate(epoch)
            row = {"epoch": epoch + 1, "step": self.step}
            row.update({f"train/{k}": v / max(n, 1) for k, v in sums.items()})
            row.update({f"train/{k}": v for k, v in whole.items()})
            for k, v in whole.items():
                writer.add_scalar(f"train/{k}", v, epoch + 1)
            row.update({f"val/{k}": v for k, v in val.items()})
            row["train_seconds"] = round(train_s, 2)
            row["epoch_seconds"] = round(time.perf_counter() - t_epoch, 2)
            self.rows.append(row)
            for k, v in val.items():
                writer.add_scalar(f"val/{k}", v, epoch + 1)
            metric = val.get(cfg.monitor, float("nan"))
            improved = self._better(metric, best)
            if improved:
                best, best_epoch, stale = metric, epoch, 0
            else:
                stale += 1
            self._write_csv()
            self._save(self.run_dir / "last.pt", epoch, best, best_epoch, val)
            if improved:
                self._save(self.run_dir / "best.pt", epoch, best, best_epoch, val)
            log.info(
                "epoch %d/%d  loss %.4f%s  val %s  %.1f s%s", epoch + 1, cfg.epochs,
                row.get("train/loss", float("nan")),
                "".join(f"  {k}={v:.4g}" for k, v in whole.items()),
                "  ".join(f"{k}={v:.4f}" for k, v in val.items()), row["epoch_seconds"],
                "  (best)" if improved else "",
            )
            if cfg.patience and stale >= cfg.patience:
                log.info("early stop: %s did not improve for %d epochs", cfg.monitor, stale)
                break
        writer.close()
        if best_epoch < 0:
            raise RuntimeError(
                f"no epoch produced a finite validation {cfg.monitor!r}; nothing to select"
            )
        return TrainSummary(self.run_dir / "best.pt", best, best_epoch, epoch + 1,
                            time.perf_counter() - t0)
