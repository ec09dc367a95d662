"""Near-duplicate programs across splits: equal normalised ASTs, or similar normalised token sequences.

A program of an evaluation split that (nearly) copies a training program lets a model score by
recall instead of repair, so :func:`deduplicate_splits` removes it from the later split and
reports what it removed. Two criteria, applied in this order:

1. **Normalised AST** (``"normalised_ast"``): the tree-sitter trees are equal after
   normalisation (:func:`normalized_hash`): identifiers renamed in order of first appearance
   (``v0``, ``v1``, ...), literals abstracted to their node type (``<integer>``, ``<string>``,
   ...), comments and whitespace dropped.
2. **Token similarity** (``"token_similarity"``, when a threshold is given): the *normalised token
   sequences* (:func:`normalized_tokens`: the leaf tokens in source order, normalised as above)
   are at least ``threshold`` similar (:func:`token_similarity`, difflib's Ratcliff/Obershelp
   ratio ``2 M / (|a| + |b|)``).

Why identifiers are normalised for the similarity too: a copied solution with its variables
renamed is as much a copy as the original, and the exact criterion already treats renaming as no
change, so the similarity measures the edits that remain (a changed operator, an extra statement).
Numbering by first appearance has one weakness: a new identifier that appears early renumbers
every identifier first seen after it, which lowers the similarity; the criterion errs on the side
of keeping a program. Builtins and library names (``len``, ``math``) are identifiers too and are
renamed like any other.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from graphrepair.graphs.graph import LeafCategory, ProgramGraph

__all__ = ["EXACT", "KINDS", "SIMILAR", "Deduplicated", "Removal", "deduplicate_splits",
           "most_similar", "normalized_hash", "normalized_tokens", "token_similarity"]

T = TypeVar("T")

EXACT = "normalised_ast"
"""Kind of a removal by equal normalised ASTs (:func:`normalized_hash`)."""
SIMILAR = "token_similarity"
"""Kind of a removal by normalised token sequences at least the threshold similar (:func:`token_similarity`)."""
KINDS = (EXACT, SIMILAR)


def _normalized_leaf(graph: ProgramGraph, i: int, node_type: str, names: dict[str, str]) -> str | None:
    """Leaf ``i`` normalised (identifier -> ``v<k>``, literal -> ``<type>``), ``None`` for a comment."""
    cat = graph.leaf_categories[i]
    if cat is LeafCategory.COMMENT:
        return None
    if cat is LeafCategory.IDENTIFIER:
        return names.setdefault(graph.leaf_texts[i], f"v{len(names)}")
    if cat is LeafCategory.LITERAL:
        return f"<{node_type}>"
    return graph.leaf_texts[i]


def normalized_hash(graph: ProgramGraph) -> str:
    """SHA-256 (hex) of the graph's preorder node types and normalised leaf tokens.

    Leaves: identifiers -> ``v<k>`` by order of first appearance; literals -> ``<type>``; comments
    are skipped; every other leaf keeps its text. Interior nodes contribute their type.
    """
    names: dict[str, str] = {}
    leaf_at = {node: i for i, node in enumerate(graph.leaf_nodes)}
    parts: list[str] = []
    for node, node_type in enumerate(graph.node_types):
        i = leaf_at.get(node)
        if i is None:
            parts.append(node_type)
            continue
        text = _normalized_leaf(graph, i, node_type, names)
        if text is not None:
            parts.append(text)
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def normalized_tokens(graph: ProgramGraph) -> list[str]:
    """The leaf tokens in source order, normalised as in :func:`normalized_hash` (no interior nodes).

    ``x = len(y)  # n`` -> ``["v0", "=", "v1", "(", "v2", ")"]``; ``return 2`` ->
    ``["return", "<integer>"]``.

    Returns:
        ``[num_leaves - num_comments]`` token strings.
    """
    names: dict[str, str] = {}
    types = graph.node_types
    out = []
    for i, node in enumerate(graph.leaf_nodes):
        text = _normalized_leaf(graph, i, types[node], names)
        if text is not None:
            out.append(text)
    return out


def token_similarity(a: Sequence[str], b: Sequence[str]) -> float:
    """Similarity of two token sequences: ``difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()``.

    ``2 M / (|a| + |b|)``, where ``M`` is the number of tokens in the matching blocks that
    Ratcliff/Obershelp pattern matching finds (the longest common contiguous block, then
    recursively the same left and right of it); 1.0 for equal sequences (two empty ones
    included), 0.0 for sequences without a common token. ``autojunk=False``: every token counts,
    however frequent (difflib's default would ignore frequent tokens of sequences of 200 or more).
    The value can depend on the order of ``a`` and ``b`` when several longest blocks tie;
    :func:`deduplicate_splits` passes the earlier split's program first.
    """
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def most_similar(b: Sequence[str], candidates: Sequence[Sequence[str]], threshold: float) -> tuple[int, float] | None:
    """The candidate most similar to ``b`` if that similarity is at least ``threshold``.

    Computes :func:`token_similarity` ``(candidate, b)`` only for the candidates whose cheap upper
    bounds (difflib's ``real_quick_ratio``, from the lengths: ``2 min(|a|, |b|) / (|a| + |b|)``, and
    ``quick_ratio``, from the token counts) reach the threshold and the best similarity so far,
    so the result is the same as computing every ratio.

    Args:
        b: the token sequence looked up.
        candidates: token sequences to compare with.
        threshold: in (0, 1].

    Returns:
        ``(index of the most similar candidate, its similarity)`` (the first of equally similar
        ones), or ``None`` when no candidate reaches ``threshold``.
    """
    matcher = difflib.SequenceMatcher(None, autojunk=False)
    matcher.set_seq2(b)  # difflib caches its index of the second sequence
    best, best_index = threshold, None
    for i, a in enumerate(candidates):
        matcher.set_seq1(a)
        bound = best if best_index is None else best + 1e-12  # a tie does not replace the first
        if matcher.real_quick_ratio() < bound or matcher.quick_ratio() < bound:
            continue
        ratio = matcher.ratio()
        if ratio >= bound:
            best, best_index = ratio, i
    return None if best_index is None else (best_index, best)


@dataclass(frozen=True)
class Removal(Generic[T]):
    """One program removed from a split, and the earlier program it duplicates.

    Attributes:
        split: the split it was removed from.
        item: its item (e.g. a :class:`~graphrepair.data.problems.Problem`).
        kind: :data:`EXACT` or :data:`SIMILAR`.
        match_split: the earlier split of the program it duplicates.
        match: that program's item (for :data:`SIMILAR`, the most similar one).
        similarity: :func:`token_similarity` of the two normalised token sequences (1.0 for
            :data:`EXACT`, whose token sequences are equal).
    """

    split: str
    item: T
    kind: str
    match_split: str
    match: T
    similarity: float


@dataclass
class Deduplicated(Generic[T]):
    """What :func:`deduplicate_splits` kept and removed.

    Attributes:
        splits: split name -> the kept ``[(item, graph), ...]``, in input order.
        removals: every removed program, split by split in input order.
    """

    splits: dict[str, list[tuple[T, ProgramGraph]]]
    removals: list[Removal[T]] = field(default_factory=list)

    def removed(self, kind: str | None = None) -> dict[str, int]:
        """Programs removed per split (every split of :attr:`splits`, 0 included), of one kind or all."""
        counts = {name: 0 for name in self.splits}
        for r in self.removals:
            if kind is None or r.kind == kind:
                counts[r.split] += 1
        return counts

    def removed_by_kind(self) -> dict[str, dict[str, int]]:
        """``{split: {"normalised_ast": n, "token_similarity": m}}`` for every split."""
        by_kind = {kind: self.removed(kind) for kind in KINDS}
        return {name: {kind: by_kind[kind][name] for kind in KINDS} for name in self.splits}


def deduplicate_splits(
    splits: dict[str, Sequence[tuple[T, ProgramGraph]]],
    order: Sequence[str] = ("train", "val", "test"),
    *,
    similarity: float | None = None,
) -> Deduplicated[T]:
    """Remove from each split the programs that near-duplicate a program of an earlier split.

    A program of split ``order[k]`` is compared with every program of ``order[:k]`` (all of them,
    removed ones included): it is removed when its :func:`normalized_hash` equals one of theirs
    (:data:`EXACT`), or else, with ``similarity``, when its :func:`normalized_tokens` are at least
    ``similarity`` similar to one of theirs (:data:`SIMILAR`, :func:`most_similar`). The first
    split in ``order`` is never filtered; duplicates *within* a split are kept (they only weight
    that split).

    Args:
        splits: split name -> [(item, graph), ...].
        order: priority; a program is kept in the first split (in this order) where it occurs.
            Splits not in ``order`` are left out of the result.
        similarity: token-similarity threshold in (0, 1]; ``None``: the normalised-AST criterion only.

    Returns:
        The kept programs of each split in ``order`` and the removals (:class:`Deduplicated`).

    Raises:
        ValueError: ``similarity`` outside (0, 1].
    """
    if similarity is not None and not 0.0 < similarity <= 1.0:
        raise ValueError(f"the near-duplicate similarity threshold must lie in (0, 1], got {similarity}")
    seen: dict[str, tuple[str, T]] = {}  # normalised-AST hash -> its first program (split, item)
    earlier: list[tuple[str, T]] = []
    earlier_tokens: list[list[str]] = []
    out = Deduplicated[T]({})
    for name in order:
        pairs = list(splits.get(name, ()))
        kept = []
        hashes, tokens = [], []
        for item, graph in pairs:
            h = normalized_hash(graph)
            toks = normalized_tokens(graph) if similarity is not None else []
            hashes.append(h)
            tokens.append(toks)
            if h in seen:
                out.removals.append(Removal(name, item, EXACT, *seen[h], 1.0))
                continue
            hit = None if similarity is None else most_similar(toks, earlier_tokens, similarity)
            if hit is not None:
                out.removals.append(Removal(name, item, SIMILAR, *earlier[hit[0]], hit[1]))
                continue
            kept.append((item, graph))
        out.splits[name] = kept
        for (item, _), h, toks in zip(pairs, hashes, tokens):
            seen.setdefault(h, (name, item))
            earlier.append((name, item))
            earlier_tokens.append(toks)
    return out
