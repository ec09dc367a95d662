"""The trained refiner as the repair loop's proposer: checkpoint loading and masked-leaf refills.

:class:`ModelProposer` implements :class:`graphrepair.repair.loop.Proposer` with a checkpoint of
``graphrepair.train``; :func:`load_proposer` loads one without preparing a dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from graphrepair.config import ExperimentConfig
from graphrepair.data.problems import Problem
from graphrepair.features.encoding import EncodedProgram, feedback_from_result
from graphrepair.features.variants import FeatureVariant
from graphrepair.graphs.graph import ProgramGraph
from graphrepair.graphs.vocab import UNK, Vocabulary
from graphrepair.loop.refine import ProgramState, Refiner, signal_from_result
from graphrepair.models import from_checkpoint
from harness.sandbox import ProgramResult

__all__ = ["ModelProposer", "load_proposer"]


class ModelProposer:
    """Refills masked leaves with a trained refiner's distribution over leaf texts.

    The masked program is given to the model as a fresh iteration-0 state (what it was trained to
    fill; the masked leaves are its editable ones), with the current program's test feedback only
    when its experiment gave feedback at iteration 0 (``feedback.feedback_at_iteration0``; the Exp
    3c rule says no). The experiment's decoding constraints apply (``decoding.grammar``,
    ``decoding.identifiers``: :meth:`graphrepair.loop.refine.Refiner.logits`).

    Args:
        model: the refiner (see :func:`graphrepair.models.build_model`).
        vocab: its vocabulary; cfg: its experiment configuration.
        top_k: texts proposed per masked leaf (besides its current text).
        device: where the model runs.
    """

    def __init__(self, model: torch.nn.Module, vocab: Vocabulary, cfg: ExperimentConfig, top_k: int = 10,
                 device: str = "cpu") -> None:
        self.model, self.vocab, self.cfg, self.top_k = model, vocab, cfg, top_k
        self.refiner = Refiner.from_config(model, vocab, cfg, device=device)

    def maskable(self, graph: ProgramGraph) -> np.ndarray:
        """Eligible categories of the experiment, texts in the vocabulary, no line break."""
        eligible = set(self.cfg.corruption.eligible)
        return np.array([c.value in eligible and self.vocab.leaf_id(t) != UNK and "\n" not in t
                         and "\r" not in t for t, c in zip(graph.leaf_texts, graph.leaf_categories)],
                        dtype=bool)

    @torch.no_grad()
    def propose(self, problem: Problem, graph: ProgramGraph, masks: Sequence[np.ndarray],
                result: ProgramResult, batch_size: int = 16) -> list[list[dict[str, float]]]:
        """Top-``k`` texts and log-probabilities per masked leaf, plus its current text's.

        The masked programs (one per mask) go through the model in batches of ``batch_size``.
        Only leaf texts are proposed: an id that is not one (``UNK``, ``MASK``, a node type) is
        dropped from the top ``k`` even if a model gave it a finite logit. Proposals are texts;
        :func:`graphrepair.repair.loop.candidate_edits` never counts the current text as a change.
        """
        enc = EncodedProgram.build(problem, graph, self.vocab, self.cfg.corruption.eligible)
        fb = self.cfg.feedback.feedback_at_iteration0
        states = []
        for masked in masks:
            state = ProgramState.start(enc, masked, self.vocab)
            if fb and self.refiner.variant is FeatureVariant.SIX:
                state.signal = signal_from_result(enc, enc.orig_texts, result, self.refiner.signal)
            elif fb:
                state.feedback = feedback_from_result(enc, enc.orig_texts, result,
                                                      self.refiner.max_tests,
                                                      load_lines=self.refiner.load_lines,
                                                      max_records=self.refiner.max_records)
            states.append(state)
        self.model.eval()
        out = []
        n_leaves = len(enc.orig_texts)
        for start in range(0, len(states), batch_size):
            chunk = states[start : start + batch_size]
            batch = self.refiner.batch(chunk, with_feedback=fb)
            logits = self.refiner.logits(chunk, batch)  # (B*L, V), the experiment's decoding constraints
            logp = torch.log_softmax(logits, dim=-1).view(len(chunk), n_leaves, -1)  # (B, L, V)
            for b, masked in enumerate(masks[start : start + batch_size]):
                idx = np.flatnonzero(masked)
                rows = logp[b, torch.as_tensor(idx, dtype=torch.long)]  # (M, V)
                values, ids = rows.topk(min(self.top_k, rows.shape[1]), dim=-1)  # (M, k)
                per_leaf = []
                for r, i in enumerate(idx):
                    opts = {self.refiner.text(chunk[b], j): v
                            for j, v in zip(ids[r].tolist(), values[r].tolist())
                            if self.refiner.writable(chunk[b], j)}
                    cur = enc.orig_texts[i]
                    opts.setdefault(cur, float(rows[r, self.vocab.leaf_id(cur)]))
                    per_leaf.append(opts)
                out.append(per_leaf)
        return out


def load_proposer(path: str | Path, device: str = "cpu", top_k: int = 10) -> ModelProposer:
    """A :class:`ModelProposer` from a checkpoint of ``graphrepair.train`` (no dataset needed).

    Raises:
        FileNotFoundError: no such file.
        harness.checkpoint.CheckpointError: a damaged checkpoint or weights that do not fit
            (:func:`graphrepair.models.from_checkpoint`).
    """
    loaded = from_checkpoint(path, device=device)
    return ModelProposer(loaded.model, loaded.vocab, loaded.config, top_k=top_k, device=device)
