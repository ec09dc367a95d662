"""The iterative refinement loop of DESIGN.md: predict -> decode -> run tests -> feedback -> repeat.

:class:`ProgramState` is one corrupted program as it is being repaired; :class:`Refiner` owns the
model, the vocabulary and the sandbox settings and moves a list of states forward one iteration at a
time. Training (:mod:`graphrepair.loop.training`) replays the same steps with scheduled sampling;
evaluation (:mod:`graphrepair.evaluation.evaluate`) runs them for K iterations.

Update policy (documented choice, configurable through ``feedback.min_confidence`` and
``decoding``; :meth:`Refiner.changes`):

* iteration 0 fills every MASK with the model's argmax over leaf texts;
* ``edit`` (the record's rule): iteration k >= 1 changes a leaf when the *text* of its argmax
  differs from the leaf's current text *and* its probability is at least ``min_confidence``;
* ``mask_predict``: before iteration k >= 1 the least trusted corrupted leaves are masked again
  (:meth:`Refiner.remask`) and the iteration fills them, nothing else;
* ``verify``: iteration k >= 1 executes several of the model's proposals per program and keeps the
  one that passes the most tests (:meth:`Refiner.verify_step`): the tests as a verifier;
* programs whose tests all pass are frozen.

The texts a leaf may take can be constrained by its grammatical category and the names in scope
(:mod:`graphrepair.loop.constraints`, :meth:`Refiner.logits`).

Texts are compared, not ids, and the vocabulary's limits are respected:

* an argmax that is not a leaf text (``UNK``, ``MASK``, ``PAD``, a node type; the models' output
  mask already rules them out) is never applied: a leaf still masked stays masked;
* a leaf whose *input* is ``UNK`` (its text is out of the vocabulary, or training replaced it by
  ``UNK``, :attr:`ProgramState.unk_input`) is never changed at iterations >= 1: the model cannot
  see its text nor write it back, so "the prediction differs" says nothing about it. Within the
  corruption protocol such a leaf is always an uncorrupted reference leaf (predictions are in the
  vocabulary), i.e. correct.

A leaf the rule does not change keeps its exact text, so :meth:`ProgramState.source` writes an
out-of-vocabulary leaf back as it was.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch_geometric.data import Batch

from graphrepair.config import ExperimentConfig
from graphrepair.features.encoding import EncodedProgram, Feedback, feedback_from_result, make_data
from graphrepair.features.variants import FeatureVariant, make_signal_data
from graphrepair.feedback.failures import result_failures
from graphrepair.feedback.shuffle import shuffle_feedback
from graphrepair.feedback.spectrum import (
    FORMULAS,
    check_load_lines,
    line_spectrum,
    node_scores,
    score,
)
from graphrepair.graphs.vocab import MASK, UNK, Vocabulary
from graphrepair.loop.constraints import (
    OutputConstraint,
    copy_columns,
    copy_inputs,
    leaf_categories,
)
from graphrepair.models import model_variant
from harness.cache import ResultCache
from harness.distributed import local_world_size
from harness.sandbox import Job, ProgramResult, run_batch

__all__ = ["CEILING_METRICS", "METRICS", "POLICIES", "REMASK_ORDERS", "ProgramState", "Refiner",
           "in_vocab_ceiling", "leaf_suspiciousness", "refine", "signal_from_result",
           "split_predictions", "state_metrics"]

METRICS = ("repair_accuracy", "token_accuracy", "exact_match", "pass_rate")
POLICIES = ("edit", "mask_predict", "verify")
"""Update rules of iterations >= 1 (:class:`Refiner`, ``decoding.policy``)."""
REMASK_ORDERS = ("confidence", "spectrum", "both")
"""Orders in which ``mask_predict`` re-masks corrupted leaves (:meth:`Refiner.remask`)."""


@dataclass
class ProgramState:
    """One program under repair.

    Attributes:
        enc: the encoded reference program.
        masked: bool ``[L]`` leaves corrupted at the start (the denominator of repair_accuracy).
        texts: current leaf texts; ``None`` = still masked.
        prev_ids: int64 ``[L]`` leaf ids at the previous iteration.
        iteration: iterations completed so far.
        result: sandbox result of the current program (``None`` before the first run).
        feedback: per-test feedback records given to the model at the next iteration (5-feature
            variant).
        signal: float32 ``[N]`` per-node test signal given to the model at the next iteration
            (6-feature variant; ``None`` before the first run).
        unk_input: bool ``[L]`` leaves the model reads as ``UNK`` whatever their text (training's
            UNK replacement, :func:`graphrepair.data.corruption.unk_replacement`); ``None`` = none.
            Their texts and loss targets are unchanged.
        runs: times this state's programs were evaluated by :meth:`Refiner.run_tests` (cache hits
            included: the per-program cost that ``program_runs`` of :func:`refine` sums).
        confidence: float32 ``[L]`` the model's probability of each leaf's current text when it
            wrote it (1 for leaves the input gave, 0 while masked); what ``mask_predict`` re-masks
            by.
        forbid: int64 ``[L]`` per leaf a token id its next prediction may not take (-1: none);
            set by :meth:`Refiner.remask` with ``forbid_previous``, cleared by the prediction.
        tried: the sources the ``verify`` policy has executed for this program (never twice).
        copy_names: the out-of-vocabulary names the pointer model could copy at the last
            :meth:`Refiner.batch` of this state; output column ``len(vocab) + j`` writes
            ``copy_names[j]`` (:meth:`Refiner.text`).
    """

    enc: EncodedProgram
    masked: np.ndarray
    texts: list[str | None]
    prev_ids: np.ndarray
    iteration: int = 0
    result: ProgramResult | None = None
    feedback: Feedback = field(default_factory=Feedback.empty)
    signal: np.ndarray | None = None
    unk_input: np.ndarray | None = None
    runs: int = 0
    confidence: np.ndarray | None = None
    forbid: np.ndarray | None = None
    tried: set[str] = field(default_factory=set)
    copy_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.confidence is None:
            self.confidence = np.array([0.0 if t is None else 1.0 for t in self.texts], np.float32)

    @classmethod
    def start(cls, enc: EncodedProgram, masked: np.ndarray, vocab: Vocabulary,
              unk_input: np.ndarray | None = None) -> ProgramState:
        """The corrupted program: leaves in ``masked`` become MASK, the others keep their text.

        Args:
            enc: the encoded reference program.
            masked: bool ``[L]`` the corrupted leaves.
            vocab: the model's vocabulary.
            unk_input: bool ``[L]`` uncorrupted leaves the model is to read as ``UNK`` (training
                noise, see :attr:`unk_input`); ``None`` = none.

        Raises:
            ValueError: ``masked`` or ``unk_input`` does not hold one entry per leaf, or
                ``unk_input`` marks a corrupted leaf.
        """
        n = len(enc.orig_texts)
        if len(masked) != n or (unk_input is not None and len(unk_input) != n):
            raise ValueError(f"masked ({len(masked)}) and unk_input "
                             f"({None if unk_input is None else len(unk_input)}) need one entry per "
                             f"leaf ({n})")
        if unk_input is not None and (unk_input & masked).any():
            raise ValueError("unk_input marks corrupted leaves; UNK replacement is for uncorrupted "
                             "leaves only (graphrepair.data.corruption.unk_replacement)")
        texts = [None if m else t for t, m in zip(enc.orig_texts, masked)]
        return cls(enc, masked, texts, enc.leaf_ids(texts, vocab), unk_input=unk_input)

    def source(self) -> str:
        """Current program source."""
        return self.enc.source(self.texts)

    def correct(self) -> np.ndarray:
        """bool ``[L]``: current leaf text equals the reference text."""
        return np.array([t == o for t, o in zip(self.texts, self.enc.orig_texts)], dtype=bool)

    @property
    def passed(self) -> bool:
        """Whether the current program's tests all passed at the last run."""
        return self.result is not None and self.result.all_passed


def state_metrics(states: Sequence[ProgramState]) -> dict[str, float]:
    """The four DESIGN.md metrics over ``states`` (micro-averaged over leaves; fractions in [0, 1]).

    ``repair_accuracy``: corrupted leaves whose current text equals the reference (NaN if none was
    corrupted); ``token_accuracy``: the same over all leaves; ``exact_match``: programs whose source
    equals the reference; ``pass_rate``: programs whose tests all passed at their last run.
    """
    n_masked = n_masked_ok = n_leaves = n_ok = exact = passed = 0
    for s in states:
        ok = s.correct()
        n_masked += int(s.masked.sum())
        n_masked_ok += int(ok[s.masked].sum())
        n_leaves += len(ok)
        n_ok += int(ok.sum())
        exact += int(ok.all())
        passed += int(s.passed)
    n = max(len(states), 1)
    return {
        "repair_accuracy": n_masked_ok / n_masked if n_masked else float("nan"),
        "token_accuracy": n_ok / max(n_leaves, 1),
        "exact_match": exact / n,
        "pass_rate": passed / n,
    }


CEILING_METRICS = ("repair_accuracy", "token_accuracy", "exact_match")
"""The metrics :func:`in_vocab_ceiling` bounds (``exact_match``'s bound is also pass_rate's, see there)."""


def in_vocab_ceiling(states: Sequence[ProgramState]) -> dict[str, float]:
    """The best metrics a model that writes only vocabulary texts can reach on ``states``.

    A corrupted leaf whose reference text is out of the vocabulary (it encodes as ``UNK``) can
    never be restored; every other leaf can (uncorrupted leaves are never changed by such a
    model's update rule if they are out of vocabulary, see the module docstring). Fractions in
    [0, 1], over the same denominators as :func:`state_metrics`:

    * ``repair_accuracy``: corrupted leaves whose reference text is in the vocabulary / corrupted
      leaves (NaN if none was corrupted);
    * ``token_accuracy``: leaves other than out-of-vocabulary corrupted ones / leaves;
    * ``exact_match``: programs whose corrupted leaves all have in-vocabulary reference texts /
      programs (a program with no corrupted leaf counts as reachable). This is the ceiling of
      exact repair; ``pass_rate`` can exceed it only through a program that differs from the
      reference and still passes its tests.

    Depends only on the corrupted inputs and the vocabulary, not on the model.
    """
    n_masked = n_known = n_leaves = n_lost = reachable = 0
    for s in states:
        lost = int((s.masked & (s.enc.orig_ids == UNK)).sum())  # corrupted, reference OOV
        masked = int(s.masked.sum())
        n_masked += masked
        n_known += masked - lost
        n_leaves += len(s.texts)
        n_lost += lost
        reachable += int(lost == 0)
    return {
        "repair_accuracy": n_known / n_masked if n_masked else float("nan"),
        "token_accuracy": (n_leaves - n_lost) / max(n_leaves, 1),
        "exact_match": reachable / max(len(states), 1),
    }


class Refiner:
    """Runs refinement iterations of a model over program states, with real test execution.

    Args:
        model: a refiner returning leaf logits ``[L, V]`` for a batch (see
            :class:`graphrepair.models.guided_unet.GuidedIterativeGraphUNet`), or ``[L, V + S]``
            for a model with ``copy_slots`` = S extended ids
            (:class:`graphrepair.models.pointer_unet.PointerGraphUNet`).
        vocab: the vocabulary the model was trained with.
        timeout_s: per-test limit in seconds (a problem's own ``timeout_s`` wins); memory_mb:
            per-program limit in MiB; workers: concurrent sandbox processes.
        budget_s: time budget of one program's tests in seconds (``None`` = none;
            :func:`harness.sandbox.run_tests`).
        max_tests: tests per program run and fed back to the model.
        max_records: per-test records the model reads per program, failing tests first
            (``feedback.max_records``; 0: one per test run).
        min_confidence: policy threshold for iterations >= 1 (see module docstring).
        max_iteration: the iteration feature given to the model saturates here. Set it to the last
            iteration seen in training (``train.trajectory_iterations - 1``): later iterations would
            otherwise read an embedding that was never trained.
        device: where the model runs.
        variant: the model's node features (:class:`graphrepair.features.variants.FeatureVariant`):
            ``five`` feeds per-test records, ``six`` a per-node test signal.
        signal: the 6-feature variant's per-node signal: a formula of
            :data:`graphrepair.feedback.spectrum.FORMULAS` (``binary`` for Exp 1/2, ``tarantula`` Exp 4).
        load_lines: the treatment of the lines executed while loading in the feedback
            (:data:`graphrepair.feedback.spectrum.LOAD_LINES`; ``feedback.load_lines``); default
            ``every_test``, the rule of the record's experiments.
        raise_signal: weight of the raising line in the 6-feature signal
            (:func:`signal_from_result`; ``feedback.raise_signal``), in [0, 1].
        constraint: which texts each leaf may take
            (:class:`graphrepair.loop.constraints.OutputConstraint`; ``None``: any leaf text).
            Applied by :meth:`logits`, so to predictions, top-k alternatives and training alike.
        policy: the update rule of iterations >= 1 (``decoding.policy``): ``edit`` (module
            docstring), ``mask_predict`` (:meth:`remask` before the prediction, then only the
            re-masked leaves are filled) or ``verify`` (:meth:`verify_step`).
        remask: ``mask_predict``'s order: ``confidence``, ``spectrum`` or ``both``
            (:meth:`remask`).
        forbid_previous: a leaf re-masked in a failing program may not take its previous text.
        candidates: programs the ``verify`` policy executes per program and iteration >= 1
            (:meth:`verify_step`); top_k: alternatives per leaf it draws them from.
        cache: the sandbox result cache (:class:`harness.cache.ResultCache`); default: a new
            in-memory one. Pass one with a path to reuse results across runs and processes.

    Attributes:
        cache: the result cache; its ``hits``/``misses`` counters are the figures below.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        vocab: Vocabulary,
        *,
        timeout_s: float = 3.0,
        memory_mb: int = 2048,
        workers: int = 2,
        budget_s: float | None = None,
        max_tests: int = 100,
        max_records: int = 0,
        min_confidence: float = 0.5,
        max_iteration: int = 15,
        device: torch.device | str = "cpu",
        variant: FeatureVariant | str = FeatureVariant.FIVE,
        signal: str = "binary",
        cache: ResultCache | None = None,
        load_lines: str = "every_test",
        raise_signal: float = 0.0,
        constraint: OutputConstraint | None = None,
        policy: str = "edit",
        remask: str = "both",
        forbid_previous: bool = False,
        candidates: int = 8,
        top_k: int = 5,
    ) -> None:
        self.model, self.vocab = model, vocab
        self.timeout_s, self.memory_mb, self.workers = timeout_s, memory_mb, workers
        self.budget_s = budget_s
        self.max_tests, self.min_confidence = max_tests, min_confidence
        if max_records < 0:
            raise ValueError(f"max_records must be >= 0, got {max_records}")
        self.max_records = max_records
        self.max_iteration = max_iteration
        self.device = torch.device(device)
        self.variant = FeatureVariant(variant)
        if signal not in FORMULAS:
            raise ValueError(f"unknown test signal {signal!r}; valid: {sorted(FORMULAS)}")
        self.signal = signal
        check_load_lines(load_lines)
        if not 0 <= raise_signal <= 1:
            raise ValueError(f"raise_signal must be in [0, 1], got {raise_signal!r}")
        self.load_lines, self.raise_signal = load_lines, raise_signal
        self.cache = ResultCache() if cache is None else cache
        # the pointer model's extra inputs (pointer_unet.reads_copy_inputs), built only for it
        self._copy_inputs = bool(getattr(model, "reads_copy_inputs", False))
        self.copy_slots = int(getattr(model, "copy_slots", 0))  # extended ids V .. V + S - 1
        # bool (V + S,): ids the update rule may write (extended ids: where a state has a name)
        self._is_leaf_text = np.concatenate([vocab.leaf_token_mask(),
                                             np.ones(self.copy_slots, dtype=bool)])
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}; valid: {list(POLICIES)}")
        if remask not in REMASK_ORDERS:
            raise ValueError(f"unknown remask order {remask!r}; valid: {list(REMASK_ORDERS)}")
        self.constraint = constraint if constraint is not None and constraint.active else None
        self.policy, self.remask_order, self.forbid_previous = policy, remask, forbid_previous
        if candidates < 1 or top_k < 1:
            raise ValueError(f"candidates ({candidates}) and top_k ({top_k}) must be >= 1")
        self.candidates, self.verify_top_k = candidates, top_k

    @property
    def test_runs(self) -> int:
        """Programs actually executed so far (cache misses; a program repeated within one call
        of :meth:`run_tests` runs once and counts once)."""
        return self.cache.misses

    @property
    def cache_hits(self) -> int:
        """Program runs served from the cache so far."""
        return self.cache.hits

    @classmethod
    def from_config(cls, model: torch.nn.Module, vocab: Vocabulary, cfg: ExperimentConfig,
                    device: torch.device | str = "cpu") -> Refiner:
        """A refiner with the sandbox, feedback and iteration settings of experiment ``cfg``.

        ``sandbox.workers: 0`` means one sandbox worker per CPU core *of this process's share*:
        under torchrun the cores are divided among the processes of the machine.
        """
        return cls(
            model, vocab, timeout_s=cfg.sandbox.timeout_s, memory_mb=cfg.sandbox.memory_mb,
            workers=cfg.sandbox.workers or max(1, (os.cpu_count() or 1) // local_world_size()),
            budget_s=cfg.sandbox.budget_s or None, max_tests=cfg.data.max_tests,
            max_records=cfg.feedback.max_records,
            min_confidence=cfg.feedback.min_confidence,
            max_iteration=cfg.train.trajectory_iterations - 1, device=device,
            variant=model_variant(cfg.model.name), signal=cfg.feedback.signal,
            cache=ResultCache(cfg.sandbox.cache or None), load_lines=cfg.feedback.load_lines,
            raise_signal=cfg.feedback.raise_signal,
            constraint=OutputConstraint(vocab, grammar=cfg.decoding.grammar,
                                        identifiers=cfg.decoding.identifiers),
            policy=cfg.decoding.policy, remask=cfg.decoding.remask,
            forbid_previous=cfg.decoding.forbid_previous, candidates=cfg.decoding.candidates,
            top_k=cfg.decoding.top_k,
        )

    # -- model side -------------------------------------------------------------------------
    def batch(self, states: Sequence[ProgramState], with_feedback: bool) -> Batch:
        """Collate the states' current graphs (and feedback when ``with_feedback``) into one batch."""
        data = []
        for s in states:
            cur = self.input_ids(s)
            prev = cur if s.iteration == 0 else s.prev_ids
            iteration = min(s.iteration, self.max_iteration)
            if self.variant is FeatureVariant.SIX:
                signal = s.signal if with_feedback else None
                data.append(make_signal_data(s.enc, cur, prev, iteration, signal))
            else:
                fb = s.feedback if with_feedback else Feedback.empty()
                d = make_data(s.enc, cur, prev, iteration, fb)
                if self._copy_inputs:
                    inputs = copy_inputs(s.enc, s.masked, s.texts, cur, self.vocab, self.copy_slots)
                    s.copy_names = inputs.pop("names")
                    for key, value in inputs.items():
                        setattr(d, key, value)
                    if s.copy_names:  # an out-of-vocabulary reference the pointer can copy
                        column = {t: len(self.vocab) + j for j, t in enumerate(s.copy_names)}
                        d.y = torch.tensor([column.get(t, y) for t, y in
                                            zip(s.enc.orig_texts, d.y.tolist())], dtype=torch.long)
                data.append(d)
        follow = None
        if self.variant is FeatureVariant.FIVE:
            follow = ["test_outcome", "test_names"] if self._copy_inputs else ["test_outcome"]
        return Batch.from_data_list(data, follow_batch=follow).to(self.device)

    def logits(self, states: Sequence[ProgramState], batch: Batch,
               model: torch.nn.Module | None = None) -> torch.Tensor:
        """float32 ``[sum L, V + S]``: the model's leaf logits for ``batch`` (made from ``states``
        by :meth:`batch`), ``-inf`` where :attr:`constraint` or a state's ``forbid`` rules a text
        out. An extended id ``V + j`` (S = :attr:`copy_slots`) is allowed only at identifier
        leaves of a state with at least ``j + 1`` :attr:`ProgramState.copy_names`.

        Gradients flow as through the model: training calls this with ``model`` = its
        (possibly DistributedDataParallel-wrapped) module; default :attr:`model`.
        """
        out = (model or self.model)(batch).float()  # (L_total, V + S)
        forbid = [s.forbid for s in states]
        if self.constraint is None and not self.copy_slots and all(f is None for f in forbid):
            return out
        if self.constraint is not None:
            bias = self.constraint.bias(
                ((leaf_categories(s.enc.graph), s.texts, s.enc.problem.tests, s.enc.problem.setup)
                 for s in states), device=out.device)
        else:
            bias = torch.zeros((out.shape[0], len(self.vocab)), device=out.device)
        if self.copy_slots:
            extended = [copy_columns(leaf_categories(s.enc.graph), len(s.copy_names),
                                     self.copy_slots) for s in states]
            extended = torch.as_tensor(np.concatenate(extended), device=out.device)
            bias = torch.cat([bias, torch.where(extended, 0.0, float("-inf"))], dim=1)
        rows, cols, begin = [], [], 0
        for s, f in zip(states, forbid):
            if f is not None:
                leaves = np.flatnonzero(f >= 0)
                rows.append(begin + leaves)
                cols.append(f[leaves])
            begin += len(s.texts)
        if rows:
            r = torch.as_tensor(np.concatenate(rows), device=out.device)
            c = torch.as_tensor(np.concatenate(cols), device=out.device)
            allowed = torch.isfinite(bias[r] + out[r]).sum(dim=1)  # texts left per forbidding row
            keep = allowed > 1  # never forbid a row's only text
            bias[r[keep], c[keep]] = float("-inf")
        return out + bias

    @torch.no_grad()
    def predict(
        self, states: Sequence[ProgramState], with_feedback: bool, batch_size: int = 32
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per state: (argmax leaf ids ``[L]``, their probabilities ``[L]``), in eval mode."""
        was_training = self.model.training
        self.model.eval()
        out: list[tuple[np.ndarray, np.ndarray]] = []
        for start in range(0, len(states), batch_size):
            chunk = states[start : start + batch_size]
            logits = self.logits(chunk, self.batch(chunk, with_feedback))  # (L_total, V)
            out.extend(split_predictions(logits, [len(s.texts) for s in chunk]))
        self.model.train(was_training)
        return out

    @torch.no_grad()
    def top_k(self, states: Sequence[ProgramState], with_feedback: bool, k: int,
              batch_size: int = 32) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per state: the ``k`` most probable leaf texts of every leaf, in eval mode.

        Only ids the update rule may write count (:meth:`changes`: leaf texts, never ``UNK``,
        ``MASK``, ``PAD`` or a node type); probabilities are the model's softmax over the whole
        vocabulary, so a row sums to at most 1.

        Args:
            states: the program states (their current inputs, as :meth:`predict` reads them).
            with_feedback: give the model the states' feedback.
            k: texts per leaf (>= 1; at most the number of leaf texts of the vocabulary).
            batch_size: states per forward pass.

        Returns:
            Per state: (int64 ``[L, k]`` token ids, float32 ``[L, k]`` their probabilities), each
            row in decreasing probability.

        Raises:
            ValueError: ``k`` < 1 or more than the vocabulary's leaf texts.
        """
        n_texts = int(self._is_leaf_text.sum())
        if not 1 <= k <= n_texts:
            raise ValueError(f"k must lie in [1, {n_texts}] (the vocabulary's leaf texts), got {k}")
        was_training = self.model.training
        self.model.eval()
        writable = torch.as_tensor(self._is_leaf_text, device=self.device)  # (V,)
        out: list[tuple[np.ndarray, np.ndarray]] = []
        for start in range(0, len(states), batch_size):
            chunk = states[start : start + batch_size]
            probs = torch.softmax(self.logits(chunk, self.batch(chunk, with_feedback)), dim=-1)  # (L_total, V)
            probs = probs.masked_fill(~writable, -1.0)  # below every probability: never in the top k
            values, ids = probs.topk(k, dim=-1)  # (L_total, k)
            ids_np, values_np = ids.cpu().numpy(), values.cpu().numpy()
            begin = 0
            for s in chunk:
                end = begin + len(s.texts)
                out.append((ids_np[begin:end], values_np[begin:end]))
                begin = end
        self.model.train(was_training)
        return out

    def text(self, state: ProgramState, idx: int) -> str:
        """The text output column ``idx`` writes in ``state``: the vocabulary's token, or for an
        extended id ``V + j`` the name ``state.copy_names[j]``.

        Raises:
            IndexError: ``idx`` names no token of the vocabulary and no name of ``state``.
        """
        idx, v = int(idx), len(self.vocab)
        if idx < v:
            return self.vocab.text(idx)
        if idx - v >= len(state.copy_names):
            raise IndexError(f"extended id {idx} but the state has {len(state.copy_names)} "
                             f"copyable out-of-vocabulary names")
        return state.copy_names[idx - v]

    def writable(self, state: ProgramState, idx: int) -> bool:
        """Whether output column ``idx`` is a text the update rule may write in ``state``: a leaf
        text of the vocabulary (never ``UNK``, ``MASK``, ``PAD`` or a node type) or an extended id
        with a name (:meth:`text`)."""
        idx, v = int(idx), len(self.vocab)
        return bool(self._is_leaf_text[idx]) if idx < v else idx - v < len(state.copy_names)

    def input_ids(self, state: ProgramState) -> np.ndarray:
        """int64 ``[L]``: the leaf ids the model reads for ``state``'s current texts.

        ``MASK`` for masked leaves, ``UNK`` for texts out of the vocabulary and for the leaves of
        :attr:`ProgramState.unk_input`, the text's id otherwise.
        """
        ids = state.enc.leaf_ids(state.texts, self.vocab)
        if state.unk_input is not None:
            ids[state.unk_input & (ids != MASK)] = UNK
        return ids

    def changes(self, state: ProgramState, pred: np.ndarray, conf: np.ndarray) -> np.ndarray:
        """The leaves the update rule (module docstring) changes, given the model's prediction.

        Args:
            state: the program state the prediction was made for.
            pred: int64 ``[L]`` argmax token ids; conf: float ``[L]`` their probabilities.

        Returns:
            int64 ``[C]`` leaf indices, ascending; each gets ``text(state, pred[i])``, a leaf text
            that differs from its current text (or fills a masked leaf).

        Raises:
            ValueError: ``pred`` or ``conf`` does not hold one entry per leaf.
        """
        n = len(state.texts)
        if len(pred) != n or len(conf) != n:
            raise ValueError(f"prediction for {len(pred)} leaves and confidence for {len(conf)}, "
                             f"but the program has {n} leaves")
        cur = self.input_ids(state)  # (L,)
        pred = np.asarray(pred, dtype=np.int64)
        is_text = self._is_leaf_text[pred]  # UNK, MASK, PAD and node types are never written
        fill = is_text & (cur == MASK)  # a masked leaf is filled whatever the confidence
        if state.iteration == 0 or self.policy == "mask_predict":
            return np.flatnonzero(fill)
        # an UNK input is frozen: the model cannot reproduce the text it cannot see
        candidates = np.flatnonzero(is_text & (cur != MASK) & (cur != UNK)
                                    & (np.asarray(conf) >= self.min_confidence))
        edits = [i for i in candidates if self.text(state, pred[i]) != state.texts[i]]
        return np.union1d(np.flatnonzero(fill), np.asarray(edits, dtype=np.int64))

    def apply(self, state: ProgramState, pred: np.ndarray, conf: np.ndarray) -> None:
        """Move ``state`` one iteration forward with the model's prediction (:meth:`changes`)."""
        self._set(state, self.input_ids(state), self.changes(state, pred, conf), pred, conf)

    def ground_truth_step(self, state: ProgramState, rng: np.random.Generator) -> None:
        """Move ``state`` forward by fixing half (at least one) of its currently wrong leaves."""
        cur = self.input_ids(state)
        wrong = np.flatnonzero(~state.correct())
        fix = rng.choice(wrong, size=max(1, len(wrong) // 2), replace=False) if len(wrong) else wrong
        state.prev_ids = cur
        for i in fix:
            state.texts[i] = state.enc.orig_texts[i]
        state.confidence = state.confidence.copy()
        state.confidence[fix] = 1.0
        state.forbid = None
        state.iteration += 1

    def _set(self, state: ProgramState, cur: np.ndarray, idx: np.ndarray, pred: np.ndarray,
             conf: np.ndarray | None = None) -> None:
        state.prev_ids = cur
        for i in idx:
            state.texts[i] = self.text(state, pred[i])
        if conf is not None and len(idx):
            state.confidence = state.confidence.copy()  # copies of a state share their arrays
            state.confidence[idx] = np.asarray(conf, dtype=np.float32)[idx]
        state.forbid = None
        state.iteration += 1

    def remask(self, state: ProgramState, k: int, iterations: int) -> np.ndarray:
        """``mask_predict``'s step before iteration ``k``: re-mask the least trusted corrupted leaves.

        ``n_k = floor(|E| · (K - k) / K)`` of the corrupted leaves ``E`` (``state.masked``; the
        leaves the repair may edit) become masked again, K = ``iterations`` (the linear schedule
        of mask-predict, Ghazvininejad et al., EMNLP 2019), chosen by :attr:`remask_order`:
        lowest ``confidence``; most suspicious by the ``spectrum`` (Tarantula of the leaf's line
        in the current program's test result, :func:`leaf_suspiciousness`); or ``both``, highest
        ``(1 - confidence) + suspiciousness``; ties by leaf order. With ``forbid_previous`` and a
        failing program, each re-masked leaf may not take its previous text at the next
        prediction. A program that passes, or ``k`` < 1, is left alone.

        Returns:
            int64 ``[n_k]`` the leaves re-masked, ascending.

        Raises:
            ValueError: ``k`` outside ``[0, iterations)``.
        """
        if not 0 <= k < iterations:
            raise ValueError(f"iteration {k} outside [0, {iterations})")
        editable = np.flatnonzero(state.masked)
        n = len(editable) * (iterations - k) // iterations
        if k == 0 or n == 0 or state.passed:
            return np.zeros(0, dtype=np.int64)
        doubt = np.zeros(len(editable))
        if self.remask_order in ("confidence", "both"):
            doubt += 1.0 - state.confidence[editable]
        if self.remask_order in ("spectrum", "both") and state.result is not None:
            doubt += leaf_suspiciousness(state)[editable]
        chosen = np.sort(editable[np.argsort(-doubt, kind="stable")[:n]])
        if self.forbid_previous and state.result is not None:
            state.forbid = np.full(len(state.texts), -1, dtype=np.int64)
            state.forbid[chosen] = self.input_ids(state)[chosen]
        for i in chosen:
            state.texts[i] = None
        state.confidence = state.confidence.copy()
        state.confidence[chosen] = 0.0
        return chosen

    def verify_step(self, states: Sequence[ProgramState], with_feedback: bool) -> None:
        """One iteration (k >= 1) of the ``verify`` policy: the tests choose among the model's proposals.

        Per program, up to :attr:`candidates` programs are executed, none executed before for it
        (:attr:`ProgramState.tried`):

        1. the model's *proposal*: every corrupted leaf set to its argmax given the current
           program and its feedback (a multi-leaf edit);
        2. a *mask-predict* proposal: the half of the corrupted leaves the model is least sure of
           (lowest top-1 probability minus the leaf's suspiciousness) masked and predicted again
           with the rest of the program fixed (one more forward pass);
        3. single-leaf edits: a corrupted leaf set to one of its :attr:`verify_top_k` most
           probable texts, in decreasing ``p(text) · (0.1 + suspiciousness of the leaf)``
           (Tarantula in the current result, :func:`leaf_suspiciousness`; 0.1 keeps leaves on
           lines no failing test ran in reach).

        The candidate passing the most tests (then: one that loads; then the earlier) replaces
        the program if it passes more tests than the program, or as many and the program does
        not load while it does. ``runs`` grows by the candidates executed, so the search
        baseline of :func:`refine`'s callers gets the same budget per program.
        """
        options = self.top_k(states, with_feedback, k=self.verify_top_k)
        suspicious = [leaf_suspiciousness(s) if s.result is not None else np.zeros(len(s.texts))
                      for s in states]
        remasked = []  # 2.: the least sure half of the corrupted leaves masked again
        for s, (_, probs), susp in zip(states, options, suspicious):
            editable = np.flatnonzero(s.masked)
            order = editable[np.argsort(probs[editable, 0] - susp[editable], kind="stable")]
            copy = dataclasses.replace(s, texts=list(s.texts), forbid=None)
            for leaf in order[: max(1, len(editable) // 2) if len(editable) else 0]:
                copy.texts[leaf] = None
            remasked.append(copy)
        for copy, (pred, _) in zip(remasked, self.predict(remasked, with_feedback)):
            for leaf, text in enumerate(copy.texts):
                if text is None and self._is_leaf_text[pred[leaf]]:
                    copy.texts[leaf] = self.text(copy, pred[leaf])
        jobs: list[tuple[int, ProgramState]] = []
        for i, (s, (ids, probs)) in enumerate(zip(states, options)):
            s.tried.add(s.source())
            editable = np.flatnonzero(s.masked)
            proposal = list(s.texts)
            for leaf in editable:
                proposal[leaf] = self.text(s, ids[leaf, 0])
            doubt = 0.1 + suspicious[i]
            edits = sorted(((-float(probs[leaf, j] * doubt[leaf]), int(leaf), j)
                            for leaf in editable for j in range(ids.shape[1]) if probs[leaf, j] > 0),
                           key=lambda e: e)
            chosen: list[list[str | None]] = []
            for texts in _with_edits(proposal, remasked[i].texts, s.texts, edits,
                                     [[self.text(s, j) for j in row] for row in ids.tolist()]):
                source = s.enc.source(texts)
                if source in s.tried:
                    continue
                s.tried.add(source)
                chosen.append(texts)
                if len(chosen) == self.candidates:
                    break
            jobs += [(i, dataclasses.replace(s, texts=t, result=None, runs=0)) for t in chosen]
        if jobs:
            self.run_tests([c for _, c in jobs])
        best: dict[int, ProgramState] = {}
        for i, cand in jobs:
            states[i].runs += 1
            if i not in best or _better(cand.result, best[i].result):
                best[i] = cand
        for i, s in enumerate(states):
            s.prev_ids = self.input_ids(s)
            s.forbid = None
            s.iteration += 1
            cand = best.get(i)
            if cand is not None and (s.result is None or _better(cand.result, s.result)):
                s.texts, s.result = cand.texts, cand.result
                s.feedback, s.signal = cand.feedback, cand.signal

    # -- test side --------------------------------------------------------------------------
    def run_tests(self, states: Sequence[ProgramState], progress: bool = False) -> None:
        """Execute each state's program with its tests (through :attr:`cache`); set result + feedback."""
        jobs = [Job(id=s.enc.problem.task_id, program=s.source(),
                    tests=tuple(s.enc.problem.tests[: self.max_tests]), setup=s.enc.problem.setup,
                    timeout_s=s.enc.problem.timeout_s)
                for s in states]
        results = run_batch(jobs, workers=self.workers, timeout_s=self.timeout_s, budget_s=self.budget_s,
                            memory_mb=self.memory_mb, progress=progress, cache=self.cache)
        for s, result in zip(states, results, strict=True):
            s.result = result
            s.runs += 1
            self.give_feedback(s, result)

    def give_feedback(self, state: ProgramState, result: ProgramResult | None) -> None:
        """Set the feedback the model reads at ``state``'s next iteration from ``result``.

        :attr:`ProgramState.signal` (6-feature variant) or :attr:`ProgramState.feedback`
        (5-feature) is computed from ``result`` as if it were the result of ``state``'s current
        program (its lines are read on ``state``'s current source); ``state.result`` is left
        alone. :meth:`run_tests` gives each state its own result; the *feedback-shuffled*
        baseline (:func:`refine`) another program's, mapped onto this one
        (:func:`graphrepair.feedback.shuffle.transplant_result`). ``None`` = no feedback (a zero
        signal, no records).
        """
        if result is None:
            state.signal, state.feedback = None, Feedback.empty()
        elif self.variant is FeatureVariant.SIX:
            state.signal = signal_from_result(state.enc, state.texts, result, self.signal,
                                              load_lines=self.load_lines,
                                              raise_weight=self.raise_signal)
        else:
            state.feedback = feedback_from_result(state.enc, state.texts, result, self.max_tests,
                                                  load_lines=self.load_lines,
                                                  max_records=self.max_records)


def signal_from_result(enc: EncodedProgram, texts: Sequence[str | None], result: ProgramResult,
                       formula: str, *, load_lines: str = "every_test",
                       raise_weight: float = 0.0) -> np.ndarray:
    """The 6-feature variant's per-node test signal of one program state.

    The spectrum of every executed line (:func:`graphrepair.feedback.spectrum.line_spectrum`: failed /
    passed tests covering it; for a program that did not load, the parse-error region) scored
    with ``formula`` and given to the nodes on that line; nodes on other lines get 0. With
    ``raise_weight`` ``w`` > 0 and a program that loaded, the raising lines
    (:mod:`graphrepair.feedback.failures`) are mixed in::

        signal_v = (1 - w) · score_v + w · r_v,   r_v = |{failing t raised on v's line}| / F

    A program that did not load keeps its error-region signal alone.

    Args:
        enc: the encoded program; texts: the leaf texts the program was written with.
        result: the sandbox result of that program.
        formula: a key of :data:`graphrepair.feedback.spectrum.FORMULAS`.
        load_lines: treatment of the lines executed while loading
            (:data:`graphrepair.feedback.spectrum.LOAD_LINES`); default ``every_test``, the rule
            of the record's experiments.
        raise_weight: ``w`` in [0, 1].

    Returns:
        float32 ``[N]`` (binary: 0/1 and Tarantula, Ochiai: in [0, 1], before mixing with ``w``;
        the mix stays in [0, 1] for them).

    Raises:
        ValueError: an unknown ``load_lines`` or formula, or ``raise_weight`` outside [0, 1].
    """
    if not 0 <= raise_weight <= 1:
        raise ValueError(f"raise_weight must be in [0, 1], got {raise_weight!r}")
    spectrum = line_spectrum(result, enc.source(texts), load_lines=load_lines)
    scores = score(spectrum, formula)
    node_lines = enc.node_lines(texts)
    signal = node_scores(spectrum.elements, scores, node_lines)
    if raise_weight == 0 or result.load_outcome != "passed" or spectrum.total_failed == 0:
        return signal
    raised = [f.line for f, t in zip(result_failures(result), result.tests)
              if t.outcome != "passed" and f.line is not None]
    lines, counts = np.unique(np.asarray(raised, dtype=np.int64), return_counts=True)
    share = node_scores(lines, counts / spectrum.total_failed, node_lines)  # (N,)
    return ((1 - raise_weight) * signal + raise_weight * share).astype(np.float32)


def _better(a: ProgramResult, b: ProgramResult) -> bool:
    """Whether result ``a`` beats ``b``: more tests passed, or as many and ``a`` loads while ``b`` does not."""
    return (a.n_passed, a.load_outcome == "passed") > (b.n_passed, b.load_outcome == "passed")


def _with_edits(proposal, remasked, texts, edits, options):
    """The ``verify`` candidates in order: the proposal, the mask-predict proposal, then each
    single-leaf edit of ``texts`` (``options[leaf][j]``: the j-th alternative text of a leaf)."""
    yield proposal
    if all(t is not None for t in remasked):
        yield remasked
    for _, leaf, j in edits:
        text = options[leaf][j]
        if text != texts[leaf]:
            out = list(texts)
            out[leaf] = text
            yield out


def leaf_suspiciousness(state: ProgramState, formula: str = "tarantula") -> np.ndarray:
    """float32 ``[L]``: each leaf's suspiciousness in ``state``'s last test result.

    The spectrum score (``formula``, :data:`graphrepair.feedback.spectrum.FORMULAS`) of the
    leaf's line in :func:`graphrepair.feedback.spectrum.line_spectrum` of the current source (a
    program that does not load blames its parse-error region); 0 on lines no test executed.

    Raises:
        ValueError: ``state`` has no test result.
    """
    if state.result is None:
        raise ValueError(f"{state.enc.problem.task_id}: no test result to localize with; run it first")
    spectrum = line_spectrum(state.result, state.source())
    return node_scores(spectrum.elements, score(spectrum, formula),
                       state.enc.node_lines(state.texts))[state.enc.leaf_nodes]


def split_predictions(logits: torch.Tensor, sizes: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split batched leaf logits ``[sum(sizes), V]`` into per-program (argmax ``[L]``, prob ``[L]``)."""
    probs = torch.softmax(logits, dim=-1)
    conf, pred = probs.max(dim=-1)
    pred_np, conf_np = pred.cpu().numpy(), conf.cpu().numpy()
    out, start = [], 0
    for n in sizes:
        out.append((pred_np[start : start + n], conf_np[start : start + n]))
        start += n
    return out


def refine(
    refiner: Refiner,
    states: Sequence[ProgramState],
    iterations: int,
    *,
    feedback_at_iteration0: bool = False,
    with_feedback: bool = True,
    shuffle_seed: int | None = None,
    progress: bool = False,
    after_iteration: Callable[[int, Sequence[ProgramState]], None] | None = None,
) -> list[dict[str, float]]:
    """Run the iterative loop for ``iterations`` iterations (iteration 0 = one-shot) on ``states``.

    After every iteration the programs are executed in the sandbox and the metrics of
    :func:`state_metrics` are recorded over *all* states (programs that already pass are frozen and
    keep their last state). Under the ``mask_predict`` policy each active program is re-masked
    (:meth:`Refiner.remask`) before iterations k >= 1. Stops early when every program passes (later entries repeat the last).

    Args:
        refiner: the model, vocabulary and sandbox settings.
        states: the corrupted programs; moved forward in place.
        iterations: K, iteration 0 included (>= 1).
        feedback_at_iteration0: run the corrupted programs' tests first and give that feedback to
            iteration 0 (off by the Exp 3c rule).
        with_feedback: ``False`` = the *feedback-zeroed* ablation: the same loop (tests still run,
            passing programs still freeze, metrics the same) but the model is given empty feedback
            (no per-test records / a zero per-node signal) at every iteration; it isolates what
            test feedback adds.
        shuffle_seed: not ``None`` = the *feedback-shuffled* ablation: the same loop, but
            whenever the model is given feedback, each program refined at iteration ``k`` reads
            the last test result of another program of ``states`` mapped onto its own lines
            (:func:`graphrepair.feedback.shuffle.shuffle_feedback`; donors drawn from
            ``numpy.random.default_rng([shuffle_seed, k])``, so the same states and seed give the
            same donors). Tests still run on each program's own code, and freezing and metrics
            read its own results; it isolates what the *location* of the feedback adds.
        progress: show a tqdm bar over iterations.
        after_iteration: called as ``after_iteration(k, states)`` once iteration ``k``'s programs
            were executed (e.g. to keep each program's one-shot outcome).

    Returns:
        One metrics dict per iteration, each with the four metrics plus ``test_runs`` (cumulative
        programs executed by ``refiner`` since it was made, cache misses only) and ``program_runs``
        (programs evaluated since this call started, cache hits included: the method's cost,
        independent of what a cache already held).

    Raises:
        ValueError: ``iterations < 1``.
    """
    from tqdm.auto import tqdm

    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    history: list[dict[str, float]] = []
    feedback_at_iteration0 = feedback_at_iteration0 and with_feedback
    evaluated0 = refiner.test_runs + refiner.cache_hits
    if feedback_at_iteration0:
        refiner.run_tests(states)
    bar = tqdm(range(iterations), desc="refine", unit="iter", leave=False, disable=None if progress else True)
    for k in bar:
        active = [s for s in states if not s.passed] if k else list(states)
        if active:
            feedback = with_feedback and (k > 0 or feedback_at_iteration0)
            if k and refiner.policy == "mask_predict":
                for s in active:
                    refiner.remask(s, k, iterations)
            if feedback and shuffle_seed is not None:
                shuffle_feedback(refiner, states, active, np.random.default_rng([shuffle_seed, k]))
            if k and refiner.policy == "verify":
                refiner.verify_step(active, with_feedback=feedback)
            else:
                preds = refiner.predict(active, with_feedback=feedback)
                for s, (pred, conf) in zip(active, preds):
                    refiner.apply(s, pred, conf)
                refiner.run_tests(active)
        if after_iteration is not None:
            after_iteration(k, states)
        row = state_metrics(states)
        row["test_runs"] = float(refiner.test_runs)
        row["program_runs"] = float(refiner.test_runs + refiner.cache_hits - evaluated0)
        history.append(row)
    return history
