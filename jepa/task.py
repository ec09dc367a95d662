"""Training a student with the shared trainer (:class:`harness.trainer.Trainer`).

* :class:`StudentModel`: the student and its objective in one module, so that InfoNCE's learnable
  temperature sits inside the DDP-wrapped module (gradients averaged over ranks, the same value
  on every rank) and takes no weight decay (:meth:`StudentModel.no_weight_decay`).
* :class:`StudentTask`: the :class:`harness.trainer.Task` — batches of training functions
  (each rank its slice of every global batch), the loss of a batch, validation by exact retrieval
  on the val split against the corpus of every split (``val rank@10`` selects the checkpoint and
  stops the run after ``train.patience`` epochs without improvement), and the temperature clamp
  after every optimiser step.
* :func:`predict`: a student's embeddings of a split's functions (evaluation).

The batch order is a pure function of (``train.seed``, epoch), so a resumed run replays it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from harness.config import ConfigError
from harness.distributed import DistContext
from jepa.config import ExperimentConfig
from jepa.data import StudentData, collate
from jepa.losses import InfoNCE, smooth_l1, token_smooth_l1
from jepa.negatives import HardNegatives
from jepa.retrieval import evaluate_embeddings
from jepa.students import build_student

__all__ = ["StudentModel", "StudentTask", "build_model", "group_by_length", "predict", "training_rows"]

logger = logging.getLogger(__name__)


class StudentModel(nn.Module):
    """A student and its objective (see the module docstring).

    Args:
        student: a module of :mod:`jepa.students`.
        objective: :class:`jepa.losses.InfoNCE`, or ``None`` for SmoothL1 to the pooled target.
        token_weight: λ of the token-level SmoothL1 (students with a body-token decoder).
    """

    def __init__(self, student: nn.Module, objective: InfoNCE | None, token_weight: float = 0.0) -> None:
        super().__init__()
        self.student = student
        self.objective = objective
        self.token_weight = token_weight

    def no_weight_decay(self) -> set[str]:
        """The temperature takes no weight decay."""
        return {"objective.log_temperature"} if self.objective is not None else set()

    def embed(self, inputs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Predicted body embeddings ``[B, D]`` of signature inputs (pooled ``[B, D]`` or tokens
        ``[B, T, D]`` with ``mask [B, T]``)."""
        if getattr(self.student, "input_kind", "tokens") == "pooled":
            return self.student(inputs)
        out = self.student(inputs, mask)
        return out[0] if isinstance(out, tuple) else out

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None, targets: torch.Tensor,
                body_ids: torch.Tensor, hard: torch.Tensor | None = None,
                hard_mask: torch.Tensor | None = None, body_targets: torch.Tensor | None = None,
                body_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of one batch and scalars to log.

        Shapes:
            inputs: ``[B, D]`` or ``[B, T, D]``; mask ``[B, T]``; targets ``[B, D]`` (centred,
            normalised); body_ids ``[B]``; hard ``[B, H, D]`` and hard_mask ``[B, H]``;
            body_targets ``[B, P, D]`` and body_mask ``[B, P]``.
        """
        stats: dict[str, float] = {}
        token_pred = None
        if body_targets is not None and self.token_weight > 0:
            pred, token_pred = self.student(inputs, mask, body_targets.shape[1], body_mask)
        else:
            pred = self.embed(inputs, mask)
        if self.objective is None:
            loss = smooth_l1(pred, targets)
        else:
            loss, info = self.objective(pred, targets, body_ids, hard, hard_mask)
            stats.update({k: float(v) for k, v in info.items()})
        if token_pred is not None:
            token_loss = token_smooth_l1(token_pred, body_targets, body_mask)
            stats["token_loss"] = float(token_loss.detach())
            loss = loss + self.token_weight * token_loss
        stats["cosine"] = float(nn.functional.cosine_similarity(pred.detach(), targets, dim=-1).mean())
        return loss, stats


def build_model(cfg: ExperimentConfig, dim: int) -> StudentModel:
    """The experiment's :class:`StudentModel` for teacher states of dimension ``dim``."""
    s, lo = cfg.student, cfg.loss
    options: dict[str, Any] = {}
    if s.name != "mlp":
        options = dict(d_model=s.d_model, layers=s.layers, heads=s.heads, ffn=s.ffn,
                       dropout=s.dropout, input_norm=s.input_norm)
    if s.name == "sig_predictor_v2":
        options.update(max_body_tokens=cfg.teacher.max_body_tokens, decoder_blocks=s.decoder_blocks)
    if s.name == "sig_predictor_v2" and lo.token_weight <= 0:
        raise ConfigError("student sig_predictor_v2 trains its body-token decoder only with "
                          "loss.token_weight > 0 (2.2 uses 0.1); use sig_predictor otherwise")
    student = build_student(s.name, dim, **options)
    objective = (InfoNCE(temperature=lo.temperature, min_temperature=lo.min_temperature,
                         max_temperature=lo.max_temperature) if lo.kind == "infonce" else None)
    return StudentModel(student, objective, token_weight=lo.token_weight)


def training_rows(cfg: ExperimentConfig, data: StudentData) -> torch.Tensor:
    """The training functions used: those of the ``train.repositories`` largest training
    repositories (all when 0), then at most ``train.max_train`` (first by function key)."""
    train = data.splits["train"]
    rows = list(range(len(train)))
    if cfg.train.repositories:
        sizes: dict[str, int] = {}
        for r in train.repositories:
            sizes[r] = sizes.get(r, 0) + 1
        keep = set(sorted(sizes, key=lambda r: (-sizes[r], r))[:cfg.train.repositories])
        rows = [i for i in rows if train.repositories[i] in keep]
    if cfg.train.max_train and len(rows) > cfg.train.max_train:
        rows = sorted(sorted(rows, key=lambda i: train.keys[i])[:cfg.train.max_train])
    return torch.tensor(rows, dtype=torch.long)


def group_by_length(order: torch.Tensor, lengths: torch.Tensor, batch: int,
                     g: torch.Generator, window: int = 50) -> torch.Tensor:
    """``order`` (a multiple of ``batch`` rows) regrouped so that each run of ``batch`` rows has
    similar ``lengths``: windows of ``window`` batches are sorted by length (longest first) and cut
    into batches, and the batches are shuffled with ``g``. The same rows, in another order."""
    chunks = []
    for start in range(0, len(order), window * batch):
        part = order[start:start + window * batch]
        chunks.append(part[torch.argsort(lengths[part], descending=True, stable=True)])
    batches = torch.cat(chunks).view(-1, batch)
    return batches[torch.randperm(len(batches), generator=g)].reshape(-1)


def _inputs(data: StudentData, split: str, rows: torch.Tensor, tokens: bool
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    part = data.splits[split]
    if not tokens:
        return part.signature[rows], None
    return collate([part.signature_tokens[i] for i in rows.tolist()])


@torch.no_grad()
def predict(model: StudentModel, data: StudentData, split: str, *, batch_size: int = 256,
            device: torch.device | str = "cpu") -> torch.Tensor:
    """Predicted body embeddings ``[N, D]`` (float32, CPU) of every function of ``split``."""
    was = model.training
    model.eval()
    tokens = getattr(model.student, "input_kind", "tokens") == "tokens"
    n = len(data.splits[split])
    out = []
    for start in range(0, n, batch_size):
        rows = torch.arange(start, min(start + batch_size, n))
        inputs, mask = _inputs(data, split, rows, tokens)
        out.append(model.embed(inputs.to(device), None if mask is None else mask.to(device)).float().cpu())
    model.train(was)
    return torch.cat(out) if out else torch.zeros((0, data.dim))


class StudentTask:
    """The :class:`harness.trainer.Task` of a student (see the module docstring).

    Args:
        cfg: the experiment.
        data: :func:`jepa.data.load_student_data`'s output.
        model: the :class:`StudentModel` (on ``device``).
        device: where batches go.
        hard_negatives: each training function's hard negatives among the training functions
            (:func:`jepa.negatives.mine_hard_negatives`), or ``None``.
    """

    def __init__(self, cfg: ExperimentConfig, data: StudentData, model: StudentModel,
                 device: torch.device, hard_negatives: HardNegatives | None = None) -> None:
        self.cfg, self.data, self.model, self.device = cfg, data, model, device
        self.bare = model
        self.rows = training_rows(cfg, data)
        self.hard = hard_negatives
        self.train_targets = data.targets("train") if hard_negatives is not None else None
        self.tokens = getattr(model.student, "input_kind", "tokens") == "tokens"
        tokens = data.splits["train"].signature_tokens
        self._lengths = (torch.tensor([len(t) for t in tokens], dtype=torch.long)
                         if self.tokens and tokens is not None else None)
        self.ctx = DistContext(device=device)
        self.samples = 0

    def set_dist(self, ctx: DistContext) -> None:
        self.ctx = ctx

    def _global_batch(self) -> int:
        return self.cfg.train.batch_size * self.ctx.world_size

    def num_train_batches(self) -> int:
        return max(1, len(self.rows) // self._global_batch())

    def train_batches(self, epoch: int) -> Iterator[torch.Tensor]:
        self.samples = 0
        g = torch.Generator().manual_seed(self.cfg.train.seed * 100_003 + epoch)
        order = self.rows[torch.randperm(len(self.rows), generator=g)]
        b, gb = self.cfg.train.batch_size, self._global_batch()
        n = self.num_train_batches()
        if self.cfg.train.group_by_length and self.tokens and len(order) >= n * gb:
            order = group_by_length(order[:n * gb], self._lengths, gb, g)
        for start in range(0, n * gb, gb):
            yield order[start + self.ctx.rank * b: start + (self.ctx.rank + 1) * b]

    def batch_size(self, batch: torch.Tensor) -> int:
        return len(batch)

    def training_step(self, rows: torch.Tensor, epoch: int) -> tuple[torch.Tensor, dict[str, float]]:
        data, dev = self.data, self.device
        inputs, mask = _inputs(data, "train", rows, self.tokens)
        targets = data.targets("train", rows)
        hard = hard_mask = None
        lo = self.cfg.loss
        if self.hard is not None and epoch >= lo.hard_warmup_epochs:
            hard, hard_mask = self.hard.lookup(rows, self.train_targets)  # [B, H, D], [B, H]
            hard, hard_mask = hard.to(dev), hard_mask.to(dev)
        body_targets = body_mask = None
        if lo.token_weight > 0:
            body_targets, body_mask = data.token_targets(
                "train", rows.tolist(), min(lo.token_positions, self.cfg.teacher.max_body_tokens))
            body_targets, body_mask = body_targets.to(dev), body_mask.to(dev)
        self.samples += len(rows)
        return self.model(inputs.to(dev), None if mask is None else mask.to(dev), targets.to(dev),
                          data.splits["train"].body_ids[rows].to(dev), hard, hard_mask,
                          body_targets, body_mask)

    def after_step(self, step: int) -> None:
        if self.bare.objective is not None:
            self.bare.objective.clamp_()

    def validate(self, epoch: int) -> dict[str, float]:
        val = self.data.splits["val"]
        if len(val) == 0:
            return {"rank@10": 0.0}
        pred = predict(self.model, self.data, "val", device=self.device)
        targets = torch.arange(val.offset, val.offset + len(val))
        result = evaluate_embeddings(pred, self.data.corpus, targets, mean=self.data.mean,
                                     chunk=self.cfg.train.eval_chunk)
        out = dict(result.metrics())
        out["cosine"] = float(result.cosine.mean())
        if self.bare.objective is not None:
            out["temperature"] = float(self.bare.objective.log_temperature.exp())
        return out

    def epoch_summary(self, epoch: int) -> dict[str, float]:
        return {"samples": float(self.samples)}

    def state_extra(self) -> dict[str, Any]:
        return {"mean": self.data.mean.tolist(), "dim": self.data.dim,
                "state_set": self.data.spec.dirname if self.data.spec else ""}
