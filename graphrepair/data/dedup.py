"""Near-duplicate programs: a hash of the normalised AST, and removal of duplicates across splits.

Two programs are *near-duplicates* when their tree-sitter trees are equal after normalisation:
identifiers renamed in order of first appearance (``v0``, ``v1``, ...), literals abstracted to
their node type (``<integer>``, ``<string>``, ...), comments and whitespace dropped. Such programs in
both the training and an evaluation split would let a model score by recall instead of repair, so
:func:`deduplicate_splits` removes them from the later split and reports how many it removed
(issue: "near-duplicates removed across splits").
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

from graphrepair.graphs.graph import LeafCategory, ProgramGraph

__all__ = ["deduplicate_splits", "normalized_hash"]

T = TypeVar("T")


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
        cat = graph.leaf_categories[i]
        if cat is LeafCategory.COMMENT:
            continue
        text = graph.leaf_texts[i]
        if cat is LeafCategory.IDENTIFIER:
            text = names.setdefault(text, f"v{len(names)}")
        elif cat is LeafCategory.LITERAL:
            text = f"<{node_type}>"
        parts.append(text)
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def deduplicate_splits(
    splits: dict[str, Sequence[tuple[T, ProgramGraph]]], order: Sequence[str] = ("train", "val", "test")
) -> tuple[dict[str, list[tuple[T, ProgramGraph]]], dict[str, int]]:
    """Remove from each split the programs that near-duplicate a program of an earlier split.

    Args:
        splits: split name -> [(item, graph), ...].
        order: priority; a program is kept in the first split (in this order) where it occurs.
            Duplicates *within* a split are kept (they only weight that split).

    Returns:
        (the filtered splits, number removed per split).
    """
    seen: set[str] = set()
    out: dict[str, list[tuple[T, ProgramGraph]]] = {}
    removed: dict[str, int] = {}
    for name in order:
        pairs = list(splits.get(name, ()))
        hashes = [normalized_hash(g) for _, g in pairs]
        out[name] = [pair for pair, h in zip(pairs, hashes) if h not in seen]
        removed[name] = len(pairs) - len(out[name])
        seen.update(hashes)
    return out, removed
