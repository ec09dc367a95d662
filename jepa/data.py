"""What a student trains and is evaluated on: the corpus with its teacher states, per split.

:func:`load_student_data` reads the corpus index and a state set written by ``python -m
jepa.prepare`` (the teacher is never run here) into :class:`StudentData`:

* inputs: mean-pooled signature states ``[N, D]`` (the MLP) or per-token signature states
  (transformer students), as stored (raw teacher states);
* targets: mean-pooled body states centred with the *training* mean and L2-normalised
  (``DESIGN.md``: "Targets are centred with the training mean and L2-normalised"); for 2.2 also
  per-token body states, centred with the training mean over body tokens and L2-normalised;
* the retrieval corpus: the body states of every function of every split (rows: train, then val,
  then test), which evaluation centres with the same training mean;
* ``body_ids``: one integer per distinct whitespace-normalised body, so that identical bodies are
  never each other's negatives (the corpus is already de-duplicated; the ids make it a guarantee).

:func:`collate` pads a batch of token sequences: ``[B, T, D]`` plus a ``[B, T]`` mask.
"""

from __future__ import annotations

import glob
import json
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from jepa.config import ExperimentConfig
from jepa.corpus.build import SPLITS, normalise_body
from jepa.store import CorpusIndex, StateSpec, StateStore, StoreError, function_key

__all__ = ["Split", "StudentData", "collate", "find_state_set", "load_student_data"]

logger = logging.getLogger(__name__)


@dataclass
class Split:
    """One split's functions and teacher states (rows in corpus order).

    Attributes:
        name: ``train``, ``val`` or ``test``.
        keys: function keys (:func:`jepa.store.function_key`).
        repositories, qualnames, signatures, bodies: per function.
        signature: ``[N, D]`` float32 raw pooled signature states.
        body: ``[N, D]`` float32 raw pooled body states.
        body_ids: ``[N]`` int64 id of the normalised body (equal = identical bodies).
        signature_tokens: N tensors ``[T_i, D]`` or ``None``.
        body_tokens: N tensors ``[P_i, D]`` or ``None``.
        offset: the row of the first function in :attr:`StudentData.corpus`.
    """

    name: str
    keys: list[str]
    repositories: list[str]
    qualnames: list[str]
    signatures: list[str]
    bodies: list[str]
    signature: torch.Tensor
    body: torch.Tensor
    body_ids: torch.Tensor
    signature_tokens: list[torch.Tensor] | None = None
    body_tokens: list[torch.Tensor] | None = None
    offset: int = 0

    def __len__(self) -> int:
        return len(self.keys)


@dataclass
class StudentData:
    """Every split, the training means and the retrieval corpus.

    Attributes:
        splits: ``train``/``val``/``test`` -> :class:`Split`.
        mean: ``[D]`` mean of the training bodies' pooled states.
        token_mean: ``[D]`` mean of the training body tokens' states (``None`` without them).
        spec: the state set read.
    """

    splits: dict[str, Split]
    mean: torch.Tensor
    token_mean: torch.Tensor | None = None
    spec: StateSpec | None = None
    _corpus: torch.Tensor | None = field(default=None, repr=False)

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def corpus(self) -> torch.Tensor:
        """``[N_all, D]`` raw pooled body states of every split (train, val, test rows)."""
        if self._corpus is None:
            self._corpus = torch.cat([self.splits[s].body for s in SPLITS])
        return self._corpus

    def targets(self, split: str, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Centred, L2-normalised pooled body targets ``[n, D]`` of ``split`` (``rows`` of it)."""
        body = self.splits[split].body if rows is None else self.splits[split].body[rows]
        return torch.nn.functional.normalize(body - self.mean, dim=-1)

    def token_targets(self, split: str, rows: Sequence[int], max_tokens: int
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded centred, L2-normalised body-token targets ``[B, P, D]`` and mask ``[B, P]``."""
        seqs = [self.splits[split].body_tokens[i][:max_tokens].float() - self.token_mean for i in rows]
        tokens, mask = collate(seqs)
        return torch.nn.functional.normalize(tokens, dim=-1) * mask[..., None], mask


def collate(seqs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad ``B`` sequences ``[T_i, D]`` to ``[B, T_max, D]`` float32 with a ``[B, T_max]``
    bool mask (True = real)."""
    width = max(len(s) for s in seqs)
    out = torch.zeros((len(seqs), width, seqs[0].shape[-1]), dtype=torch.float32)
    mask = torch.zeros((len(seqs), width), dtype=torch.bool)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s.float()
        mask[i, :len(s)] = True
    return out, mask


def find_state_set(cfg: ExperimentConfig, directory: Path, parts: Sequence[str] = ()) -> StateSpec:
    """The spec of a state set under ``directory/states`` for the experiment's teacher reading
    (model, layer — a known teacher's default when ``teacher.layer`` is unset —, token limits)
    that keeps per-token states of ``parts``; the smallest such set.

    Raises:
        StoreError: none, naming the ``jepa.prepare`` command that computes it.
    """
    from jepa.teacher.known import KNOWN_TEACHERS

    t = cfg.teacher
    known = KNOWN_TEACHERS.get(t.model.lower())
    layer = t.layer if t.layer is not None else (known.layer if known else None)
    found = []
    for index in sorted(glob.glob(str(directory / "states" / "*" / "index.sqlite"))):
        try:
            with sqlite3.connect(f"file:{index}?mode=ro", uri=True) as db:
                meta = json.loads(dict(db.execute("SELECT key, value FROM meta"))["spec"])
        except (sqlite3.Error, KeyError, ValueError):
            continue
        meta["tokens"] = {False: "none", True: "all"}.get(meta.get("tokens"), meta.get("tokens"))
        spec = StateSpec(**meta)
        if (spec.model == t.model and (layer is None or spec.layer == layer)
                and spec.max_signature_tokens == t.max_signature_tokens
                and spec.max_body_tokens == t.max_body_tokens and set(parts) <= set(spec.token_parts)):
            found.append(spec)
    if not found:
        raise StoreError(f"no teacher states of {t.model} layer {layer} with per-token states of "
                         f"{list(parts) or 'no part'} under {directory / 'states'}; compute them with "
                         f"`python -m jepa.prepare --exp {cfg.exp}`")
    return min(found, key=lambda s: len(s.token_parts))


def load_student_data(cfg: ExperimentConfig, directory: Path, *, signature_tokens: bool,
                      body_tokens: bool) -> StudentData:
    """Read the corpus and its teacher states (see the module docstring).

    Args:
        cfg: the experiment (its ``teacher`` reading and ``train.repositories``).
        directory: the data directory of ``jepa.prepare``.
        signature_tokens: read per-token signature states (transformer students).
        body_tokens: read per-token body states (token-level targets, 2.2).

    Raises:
        StoreError: no corpus index or no matching state set (the message names the command).
    """
    index_path = directory / "corpus.sqlite"
    if not index_path.is_file():
        raise StoreError(f"no corpus index at {index_path}; build the data with "
                         f"`python -m jepa.prepare --exp {cfg.exp}`")
    parts = [p for p, need in (("signature", signature_tokens), ("body", body_tokens)) if need]
    spec = find_state_set(cfg, directory, parts)
    splits: dict[str, Split] = {}
    ids: dict[str, int] = {}
    offset = 0
    with CorpusIndex.open(index_path, exp=cfg.exp) as index, \
            StateStore.open(directory / "states", spec, create=False,
                            rebuild=f"python -m jepa.prepare --exp {cfg.exp}") as store:
        for name in SPLITS:
            functions = index.functions(name)
            keys = [function_key(f.signature, f.body) for f in functions]
            states = store.read(keys, tokens=parts)
            body_ids = torch.tensor([ids.setdefault(normalise_body(f.body), len(ids)) for f in functions],
                                    dtype=torch.long)
            splits[name] = Split(
                name=name, keys=keys, repositories=[f.repository for f in functions],
                qualnames=[f.qualname for f in functions], signatures=[f.signature for f in functions],
                bodies=[f.body for f in functions], signature=states["signature"],
                body=states["body"], body_ids=body_ids,
                signature_tokens=states.get("signature_tokens"), body_tokens=states.get("body_tokens"),
                offset=offset)
            offset += len(functions)
    train = splits["train"]
    if len(train) == 0:
        raise StoreError(f"the corpus at {index_path} has no training functions")
    token_mean = None
    if body_tokens:
        total = torch.zeros(train.body.shape[1], dtype=torch.float64)
        count = 0
        for t in train.body_tokens:
            total += t.double().sum(0)
            count += len(t)
        token_mean = (total / max(count, 1)).float()
    logger.info("student data: %s functions (train %d, val %d, test %d), D=%d, state set %s",
                f"{offset:,}", len(train), len(splits["val"]), len(splits["test"]),
                train.body.shape[1], spec.dirname)
    return StudentData(splits=splits, mean=train.body.mean(0), token_mean=token_mean, spec=spec)
