"""From a program graph, its current leaf texts and real test results to a PyG ``Data`` object.

This module implements the 5-feature variant of DESIGN.md ("Node features") used by Experiments 3,
3b, 3c and 3d: ``x = [token_id, prev_token_id, depth, sibling_index, iteration]`` per node, and the
test feedback as separate records, one per test: its index, its outcome, its *execution trace* =
the graph nodes whose line the test executed (line granularity; the lines executed while loading
the program count for every test or for none, ``load_lines`` of :func:`feedback_from_result`), and
what its failure said (:mod:`graphrepair.feedback.failures`): the exception type, the nodes on the
program line it was raised at, and for a failed comparison the types of the actual and expected
values. A program that does not load (syntax or import error) gives every test an ``error``
outcome whose trace is the parse-error region (tree-sitter ERROR/MISSING lines of the current
source) or, failing that, the line named in the error message.

The 6-feature variant (Experiments 1, 2, 4) and the :class:`~graphrepair.features.variants.FeatureVariant`
switch between the two live in :mod:`graphrepair.features.variants`. ``EncodedProgram.build`` and
``make_data`` are the data-preparation hot path (``benchmarks/graph_build.py``): they work on whole
numpy arrays and build ``Data`` objects without PyG's per-attribute bookkeeping (:func:`new_data`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch_geometric.data import Data

from graphrepair.data.problems import Problem
from graphrepair.feedback.failures import Failure, parse_failure
from graphrepair.feedback.spectrum import check_load_lines, error_region
from graphrepair.graphs.graph import EdgeType, LeafCategory, ProgramGraph, kind_names
from graphrepair.graphs.vocab import MASK, PAD, UNK, Vocabulary
from harness.sandbox import OUTCOMES, ProgramResult

__all__ = [
    "MASK_TEXT",
    "MAX_DEPTH",
    "MAX_ITERATIONS",
    "MAX_SIBLING",
    "NUM_EDGE_TYPES",
    "NUM_OUTCOMES",
    "EncodedProgram",
    "Feedback",
    "RefinementData",
    "feedback_from_result",
    "make_data",
    "new_data",
]

MAX_DEPTH = 63  # deeper nodes share the last depth embedding
MAX_SIBLING = 63
MAX_ITERATIONS = 15
NUM_EDGE_TYPES = len(EdgeType)  # edge-type embeddings a model needs (graphrepair.graphs.graph.EdgeType)
NUM_OUTCOMES = len(OUTCOMES)
OUTCOME_ID = {name: i for i, name in enumerate(OUTCOMES)}
#: Text written into the source for a leaf that is still masked. ``$`` is not valid Python outside a
#: string, so a program with a mask left in it never loads and fails its tests honestly (``<mask>``
#: would not do: ``4<mask>a`` parses as the comparison ``4 < mask > a``).
MASK_TEXT = "$mask$"
_NO_TESTS = torch.zeros(0, dtype=torch.int64)  # test_outcome / test_position without feedback
_NO_TRACE = torch.zeros((2, 0), dtype=torch.int64)  # trace_index / raise_index without feedback
_CATEGORY_VALUES = frozenset(c.value for c in LeafCategory)


@dataclass
class EncodedProgram:
    """A problem's graph with every array that does not change during refinement (built once).

    The arrays are numpy (or torch for the edges) and are *shared* by every ``Data`` made from
    the program (``make_data`` wraps them without copying; ``Batch`` copies when it collates), so
    treat them as read-only.

    Attributes:
        problem: the source problem (reference program and tests).
        graph: its :class:`ProgramGraph`.
        type_ids: int64 ``[N]`` vocabulary id of each node's token (leaves: original text id).
        orig_texts: the reference leaf texts ``[L]``.
        orig_ids: int64 ``[L]`` vocabulary ids of the reference leaf texts (UNK when OOV).
        leaf_nodes: int64 ``[L]`` node index of each leaf.
        first_leaf: int64 ``[N]`` index of each node's first leaf in source order (every node has
            one: a node is a leaf or has children, so the entry is never -1 for a built program).
        eligible: bool ``[L]`` leaves whose category may be corrupted.
        edge_index: int64 ``[2, E]``; edge_type: int64 ``[E]``.
        depth, sibling: int64 ``[N]``.
        parent_type: int64 ``[N]`` vocabulary id of each node's parent's type (``PAD`` for the
            root); the 6-feature variant's ``parent_type``.
        leaf_mask: bool ``[N]``, True at leaf tokens.
        target: int64 ``[L]`` training targets: ``orig_ids`` with -100 where the reference text is
            out of vocabulary (UNK references are not learnable).
        num_unknown: leaves of the reference program whose text the vocabulary maps to UNK.
    """

    problem: Problem
    graph: ProgramGraph
    type_ids: np.ndarray
    orig_texts: list[str]
    orig_ids: np.ndarray
    leaf_nodes: np.ndarray
    first_leaf: np.ndarray
    eligible: np.ndarray
    edge_index: torch.Tensor
    edge_type: torch.Tensor
    depth: np.ndarray
    sibling: np.ndarray
    parent_type: np.ndarray
    leaf_mask: np.ndarray
    target: np.ndarray
    num_unknown: int = 0

    @classmethod
    def build(
        cls,
        problem: Problem,
        graph: ProgramGraph,
        vocab: Vocabulary,
        eligible: Sequence[str],
        same_identifier_edges: bool = False,
    ) -> EncodedProgram:
        """Encode ``graph`` with ``vocab``; ``eligible`` names the corruptible leaf categories.

        Args:
            problem: the problem whose reference program ``graph`` is.
            graph: ``ProgramGraph.from_source(problem.source)``.
            vocab: the vocabulary (from the training split).
            eligible: :class:`LeafCategory` values that corruption may mask.
            same_identifier_edges: add :attr:`EdgeType.SAME_IDENTIFIER` edges (off by default, as
                in the record's experiments). They are computed from the *reference* program's
                texts and fixed for every corrupted state of it, so they tell the model which
                masked identifiers share a name: an oracle hint, for ablations that want one,
                not a fair input for repair.

        Raises:
            ValueError: if a category name in ``eligible`` is unknown.
        """
        eligible_set = _eligible_set(eligible)
        type_ids, num_unknown = vocab.encode_graph(graph)
        leaf_nodes = graph.array("leaf_nodes")
        n = len(type_ids)
        parent_type = type_ids[graph.array("parent")]  # parent[0] = -1 reads the last entry; fixed just below
        parent_type[0] = PAD
        edge_index, edge_type = graph.edges(same_identifier=same_identifier_edges)
        leaf_mask = np.zeros(n, dtype=bool)
        leaf_mask[leaf_nodes] = True
        orig_ids = type_ids[leaf_nodes]
        target = orig_ids.copy()
        if num_unknown:
            target[orig_ids == UNK] = -100
        return cls(
            problem=problem,
            graph=graph,
            type_ids=type_ids,
            orig_texts=list(graph.leaf_texts),
            orig_ids=orig_ids,
            leaf_nodes=leaf_nodes,
            first_leaf=graph.first_leaf(),
            # A leaf's category is fixed by its kind: one gather through a per-kind table.
            eligible=_eligible_by_kind(eligible_set)[graph.kind_index()[leaf_nodes]],
            edge_index=torch.from_numpy(edge_index),
            edge_type=torch.from_numpy(edge_type),
            depth=graph.array("depth"),
            sibling=graph.array("sibling_index"),
            parent_type=parent_type,
            leaf_mask=leaf_mask,
            target=target,
            num_unknown=num_unknown,
        )

    @functools.cached_property
    def gap_newlines(self) -> np.ndarray:
        """int64 ``[L+1]`` newlines in each inter-leaf gap (computed on first use)."""
        return np.array([g.count("\n") for g in self.graph.gaps], dtype=np.int64)

    @property
    def num_nodes(self) -> int:
        """Number of graph nodes ``N``."""
        return len(self.type_ids)

    def source(self, texts: Sequence[str | None]) -> str:
        """Program source with the given leaf texts (``None`` = still masked, written as :data:`MASK_TEXT`)."""
        return self.graph.to_source([MASK_TEXT if t is None else t for t in texts])

    def leaf_ids(self, texts: Sequence[str | None], vocab: Vocabulary) -> np.ndarray:
        """int64 ``[L]`` ids of the current leaf texts; masked leaves get MASK."""
        return np.array([MASK if t is None else vocab.leaf_id(t) for t in texts], dtype=np.int64)

    def node_lines(self, texts: Sequence[str | None]) -> np.ndarray:
        """int64 ``[N]`` 1-based line of each node in the source written with ``texts`` (-1 if no leaf)."""
        text_nl = np.array([0 if t is None else t.count("\n") for t in texts], dtype=np.int64)
        # line of leaf i = 1 + newlines in gaps[0..i] + texts[0..i-1]
        before = np.cumsum(self.gap_newlines[:-1]) + np.concatenate([[0], np.cumsum(text_nl)[:-1]])
        leaf_line = 1 + before
        lines = np.where(self.first_leaf >= 0, leaf_line[np.maximum(self.first_leaf, 0)], -1)
        return lines


@dataclass
class Feedback:
    """Per-test feedback records of one program state.

    Attributes:
        outcome: int64 ``[T]`` index into :data:`harness.sandbox.OUTCOMES`.
        trace_index: int64 ``[2, C]`` (test, node) pairs: the nodes each test executed.
        all_passed: whether every test passed.
        exception: int64 ``[T]`` index into
            :data:`graphrepair.feedback.failures.EXCEPTION_TYPES` (``None``: all 0, "none").
        actual_type, expected_type: int64 ``[T]`` indices into
            :data:`graphrepair.feedback.failures.VALUE_TYPES` of a failed comparison's values
            (``None``: all 0, "unknown").
        raise_index: int64 ``[2, R]`` (test, node) pairs: the nodes on the program line each
            test's exception was raised at (``None``: no pair).
        failures: the parsed :class:`~graphrepair.feedback.failures.Failure` of each test, with
            the bounded reprs the tensors leave out (``()`` when not parsed).
        position: int64 ``[T]`` each record's index among the program's tests (``None``:
            ``0 .. T-1``; :meth:`select` keeps the original indices).
    """

    outcome: np.ndarray
    trace_index: np.ndarray
    all_passed: bool
    exception: np.ndarray | None = None
    actual_type: np.ndarray | None = None
    expected_type: np.ndarray | None = None
    raise_index: np.ndarray | None = None
    failures: tuple[Failure, ...] = ()
    position: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.outcome)
        if self.position is None:
            self.position = np.arange(n, dtype=np.int64)
        elif len(self.position) != n:
            raise ValueError(f"Feedback.position has {len(self.position)} entries for {n} tests")
        for name in ("exception", "actual_type", "expected_type"):
            value = getattr(self, name)
            if value is None:
                setattr(self, name, np.zeros(n, np.int64))
            elif len(value) != n:
                raise ValueError(f"Feedback.{name} has {len(value)} entries for {n} tests")
        if self.raise_index is None:
            self.raise_index = np.zeros((2, 0), np.int64)

    def select(self, max_records: int) -> Feedback:
        """At most ``max_records`` records: the failing tests first, then the passing ones, each in
        test order (0: all). The records keep their order and :attr:`position`; the
        (test, node) pairs of the tests left out are dropped.

        Raises:
            ValueError: ``max_records`` < 0.
        """
        if max_records < 0:
            raise ValueError(f"max_records must be >= 0, got {max_records}")
        n = len(self.outcome)
        if not max_records or n <= max_records:
            return self
        failing = self.outcome != OUTCOME_ID["passed"]
        keep = np.sort(np.concatenate([np.flatnonzero(failing), np.flatnonzero(~failing)])[:max_records])
        new_row = np.full(n, -1, dtype=np.int64)
        new_row[keep] = np.arange(len(keep))

        def pairs(index: np.ndarray) -> np.ndarray:
            rows = new_row[index[0]]
            return np.stack([rows[rows >= 0], index[1][rows >= 0]])

        return Feedback(
            self.outcome[keep], pairs(self.trace_index), self.all_passed,
            exception=self.exception[keep], actual_type=self.actual_type[keep],
            expected_type=self.expected_type[keep], raise_index=pairs(self.raise_index),
            failures=tuple(self.failures[i] for i in keep) if self.failures else (),
            position=self.position[keep])

    @classmethod
    def empty(cls) -> Feedback:
        """No feedback (iteration 0 under the Exp 3c rule)."""
        return cls(np.zeros(0, np.int64), np.zeros((2, 0), np.int64), False)


def feedback_from_result(
    enc: EncodedProgram, texts: Sequence[str | None], result: ProgramResult, max_tests: int,
    *, load_lines: str = "every_test", max_records: int = 0,
) -> Feedback:
    """Turn a sandbox result for the program written with ``texts`` into feedback records.

    Args:
        enc: the encoded program.
        texts: the leaf texts the program was written with (``None`` = masked).
        result: :func:`harness.sandbox.run_tests` result of that program, whose tests are the
            first ones of ``enc.problem.tests`` (their texts give MBPP's expected values).
        max_tests: keep at most this many tests (the first ones).
        load_lines: whether the lines executed while loading belong to ``every_test``'s trace
            (default: the rule the existing experiments were trained with) or to ``no_test``'s
            (:data:`graphrepair.feedback.spectrum.LOAD_LINES`).
        max_records: keep at most this many records, failing tests first (:meth:`Feedback.select`;
            0: all).

    Raises:
        ValueError: an unknown ``load_lines``, ``max_records`` < 0.
    """
    check_load_lines(load_lines)
    node_lines = enc.node_lines(texts)
    tests = result.tests[:max_tests]
    outcome = np.array([OUTCOME_ID[t.outcome] for t in tests], dtype=np.int64)
    if result.load_outcome != "passed":
        region = np.array(error_region(enc.source(texts), result.load_message), dtype=np.int64)
        covered = [region] * len(tests)
    else:
        per_test = [np.asarray(t.covered_lines, dtype=np.int64) for t in tests]
        if load_lines == "every_test":
            load = np.asarray(result.load_covered_lines, dtype=np.int64)
            per_test = [np.union1d(load, lines) for lines in per_test]
        covered = per_test
    trace = _pairs([np.flatnonzero(np.isin(node_lines, lines)) for lines in covered])
    texts_of_tests = enc.problem.tests
    num_lines = int(node_lines.max()) if len(node_lines) else None  # the last line with a token
    failures = tuple(parse_failure(t.outcome, t.message, num_lines=num_lines,
                                   test=texts_of_tests[i] if i < len(texts_of_tests) else None)
                     for i, t in enumerate(tests))
    raised = _pairs([np.zeros(0, np.int64) if f.line is None else np.flatnonzero(node_lines == f.line)
                     for f in failures])
    return Feedback(
        outcome, trace, bool(result.all_passed),
        exception=np.array([f.exception_id for f in failures], dtype=np.int64),
        actual_type=np.array([f.actual_type_id for f in failures], dtype=np.int64),
        expected_type=np.array([f.expected_type_id for f in failures], dtype=np.int64),
        raise_index=raised, failures=failures).select(max_records)


def _pairs(nodes_per_test: Sequence[np.ndarray]) -> np.ndarray:
    """int64 ``[2, C]`` (test, node) pairs from each test's node indices."""
    if not nodes_per_test:
        return np.zeros((2, 0), np.int64)
    rows = [np.full(len(nodes), i, dtype=np.int64) for i, nodes in enumerate(nodes_per_test)]
    return np.stack([np.concatenate(rows), np.concatenate(nodes_per_test).astype(np.int64)])


class RefinementData(Data):
    """``Data`` whose ``trace_index`` and ``raise_index`` rows are offset by tests (row 0) and nodes (row 1) when batched."""

    def __inc__(self, key, value, *args, **kwargs):  # noqa: D105
        if key in ("trace_index", "raise_index"):
            return torch.tensor([[self.test_outcome.numel()], [self.num_nodes]])
        return super().__inc__(key, value, *args, **kwargs)


def new_data(cls: type[Data], **attrs) -> Data:
    """``cls(**attrs)`` without PyG's per-attribute ``__setattr__`` (~3 us each; hot path).

    Equivalent for a fresh object whose attributes are all non-``None`` and none of which is a
    ``Data`` property with a setter other than ``num_nodes`` (which PyG stores under that key
    too); ``tests/graphrepair/test_features.py`` checks the equivalence against ``cls(**attrs)``.
    """
    data = cls()
    data._store._mapping.update(attrs)
    return data


def make_data(
    enc: EncodedProgram,
    cur_ids: np.ndarray,
    prev_ids: np.ndarray,
    iteration: int,
    feedback: Feedback,
) -> RefinementData:
    """Build the model input of one program state (5-feature variant).

    Args:
        enc: the encoded program.
        cur_ids: int64 ``[L]`` current leaf token ids.
        prev_ids: int64 ``[L]`` leaf token ids at the previous iteration (= ``cur_ids`` at iteration 0).
        iteration: refinement iteration (0 = one-shot).
        feedback: the feedback records (``Feedback.empty()`` for none).

    Returns:
        RefinementData with ``x [N, 5]`` int64 (token_id, prev_token_id, depth, sibling_index,
        iteration), ``edge_index [2, E]``, ``edge_type [E]``, ``leaf_mask [N]``,
        ``y [L]`` (reference ids; -100 where the reference text is out of vocabulary),
        ``test_outcome [T]``, ``test_position [T]`` (not called *index*: PyG would offset it by the
        node count when batching), ``trace_index [2, C]``, ``test_exception [T]``,
        ``test_actual_type [T]``, ``test_expected_type [T]`` and ``raise_index [2, R]`` (see
        :class:`Feedback`).
    """
    n = enc.num_nodes
    x = np.empty((n, 5), dtype=np.int64)
    token, previous, depth, sibling, iterations = x.T  # column views (faster to fill than x[:, k])
    token[:] = enc.type_ids
    previous[:] = enc.type_ids
    token[enc.leaf_nodes] = cur_ids
    previous[enc.leaf_nodes] = prev_ids
    depth[:] = enc.depth
    sibling[:] = enc.sibling
    iterations[:] = iteration
    num_tests = len(feedback.outcome)
    if num_tests:
        outcome = torch.from_numpy(feedback.outcome)
        position = torch.from_numpy(feedback.position)
        trace = torch.from_numpy(feedback.trace_index)
        exception = torch.from_numpy(feedback.exception)
        actual = torch.from_numpy(feedback.actual_type)
        expected = torch.from_numpy(feedback.expected_type)
        raised = torch.from_numpy(feedback.raise_index)
    else:  # no feedback (iteration 0): shared empty tensors, which nothing can write into
        outcome = position = exception = actual = expected = _NO_TESTS
        trace = raised = _NO_TRACE
    return new_data(
        RefinementData,
        x=torch.from_numpy(x),
        edge_index=enc.edge_index,
        edge_type=enc.edge_type,
        leaf_mask=torch.from_numpy(enc.leaf_mask),
        y=torch.from_numpy(enc.target),
        test_outcome=outcome,
        test_position=position,
        trace_index=trace,
        test_exception=exception,
        test_actual_type=actual,
        test_expected_type=expected,
        raise_index=raised,
        num_nodes=n,
    )


@functools.lru_cache(maxsize=16)
def _eligible_by_kind(eligible_set: frozenset[str]) -> np.ndarray:
    """bool ``[num kinds]``: whether a leaf of each kind index (:func:`kind_names`) is eligible."""
    return np.array([category.value in eligible_set for _, category in kind_names()], dtype=bool)


def _eligible_set(eligible: Sequence[str]) -> frozenset[str]:
    """``eligible`` as a set of :class:`LeafCategory` values.

    Raises:
        ValueError: if a name is not a :class:`LeafCategory` value.
    """
    valid = _CATEGORY_VALUES
    unknown = sorted(set(eligible) - valid)
    if unknown:
        raise ValueError(f"unknown leaf categories {unknown}; valid: {sorted(valid)}")
    return frozenset(eligible)
