"""Program graphs: a Python program's tree-sitter tree as a graph with an exact source round trip.

The graph follows ``DESIGN.md`` ("graphrepair: terms and semantics", *Graph*): every
tree-sitter-python node (named and anonymous) is a graph node, numbered in preorder with the root
(``module``) as node 0. A *leaf token* is a node without children, except that a whole ``string``
node (with its ``string_start``, ``string_content``, ``escape_sequence``, ``interpolation`` and
``string_end`` parts) is one leaf token whose descendants are not graph nodes. Comments and
``line_continuation`` are leaves too. ``MISSING`` nodes (inserted by tree-sitter's error recovery)
are zero-width leaves whose text is ``""``. A ``line_continuation`` leaf's text is the backslash
*and* the line break after it, as tree-sitter lexes it. The text between consecutive leaf tokens (whitespace,
newlines, and any bytes tree-sitter assigns to no leaf) is kept in :attr:`ProgramGraph.gaps`, so
``ProgramGraph.from_source(s).to_source() == s`` for every ``str`` ``s`` that can be encoded as
UTF-8, with or without syntax errors.

The schema (:class:`NodeKind`, :class:`LeafCategory`, :class:`EdgeType`) is defined in
:mod:`graphrepair.graphs.schema` and re-exported here. :meth:`ProgramGraph.from_source` is the first step
of data preparation's hot path: one Python-level step per tree-sitter node, everything else
(types, categories, lines, texts) derived afterwards in bulk.

Line numbers are 1-based and count lines the way Python's compiler (and so coverage.py) does:
``"\\r\\n"``, a lone ``"\\r"`` and ``"\\n"`` each end a line.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from graphrepair.graphs.schema import (
    KEYWORDS,
    LITERAL_TYPES,
    OPERATORS,
    PUNCTUATION,
    EdgeType,
    LeafCategory,
    NodeKind,
    leaf_category,
)

__all__ = [
    "KEYWORDS",
    "LITERAL_TYPES",
    "OPERATORS",
    "PUNCTUATION",
    "EdgeType",
    "LeafCategory",
    "NodeKind",
    "ProgramGraph",
    "kind_names",
    "leaf_category",
]
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


@functools.lru_cache(maxsize=1)
def _parser():
    """The tree-sitter-python parser, created on first use (no work at import time)."""
    import tree_sitter_python
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_python.language()))


_INT_LISTS = frozenset({"kind_ids", "parent", "depth", "sibling_index", "leaf_nodes", "node_lines"})
_ERROR_KIND = 65535  # tree-sitter's kind_id of ERROR nodes (ts_builtin_sym_error)
_EDGE_TYPES = np.arange(len(EdgeType), dtype=np.int64)  # edge-type values, in order


@functools.lru_cache(maxsize=1)
def _tables() -> tuple:
    """The parser; per tree-sitter ``kind_id``, the node type and leaf category; the string kinds.

    A node's ``kind_id`` (its symbol, or its alias) fixes both its ``type`` and whether it is
    named, so both are looked up once per kind instead of once per node.
    """
    parser = _parser()
    language = parser.language
    ids = [*range(language.node_kind_count), _ERROR_KIND]
    kind_type = {k: language.node_kind_for_id(k) for k in ids}
    kind_category = {k: leaf_category(kind_type[k], language.node_kind_is_named(k)) for k in ids}
    string_kinds = frozenset(k for k in ids if kind_type[k] == "string")
    return parser, kind_type, kind_category, string_kinds


@functools.lru_cache(maxsize=1)
def kind_names() -> tuple[tuple[str, LeafCategory], ...]:
    """``(node type, leaf category)`` of every tree-sitter-python kind, indexed by kind index.

    The kind index of a node is its tree-sitter ``kind_id``, except that ``ERROR`` nodes (kind id
    65535) get the last index, ``len(kind_names()) - 1``; :meth:`ProgramGraph.kind_index` gives
    it per node. Lets per-node lookups (vocabulary ids, eligibility) be one numpy gather through a
    table built once per kind instead of one dict lookup per node. The category is what
    :func:`leaf_category` says for a leaf token of that kind.
    """
    _, kind_type, kind_category, _ = _tables()
    return tuple((kind_type[k], kind_category[k]) for k in kind_type)  # ERROR was inserted last


@dataclass
class ProgramGraph:
    """A Python program as a tree-sitter graph whose leaf tokens reproduce the source exactly.

    Build one with :meth:`from_source`. All per-node lists are indexed by node (preorder, root 0);
    all per-leaf lists by leaf position (source order). :attr:`node_types`,
    :attr:`leaf_categories` and :attr:`leaf_lines` are derived from the fields on first use (the
    data-preparation hot path does not need them).

    Attributes:
        kind_ids: tree-sitter ``kind_id`` of each node, ``[num_nodes]`` (it fixes the node type and
            its leaf category; ``ERROR`` nodes have 65535).
        parent: parent node index of each node, ``-1`` for the root, ``[num_nodes]``.
        depth: depth of each node, root 0, ``[num_nodes]``.
        sibling_index: position of each node among its parent's graph children (root 0).
        leaf_nodes: node index of each leaf token, ``[num_leaves]``, increasing.
        leaf_texts: source text of each leaf token (``""`` for ``MISSING`` nodes).
        node_lines: 1-based start line of each node, ``[num_nodes]``.
        leaf_end_lines: 1-based line of the last character of each leaf token, ``[num_leaves]``
            (a ``line_continuation`` leaf, ``"\\\n"``, ends on its own line; an empty leaf ends
            on the line it starts on).
        gaps: ``num_leaves + 1`` strings; ``gaps[i]`` is the text before leaf ``i``, ``gaps[-1]``
            the text after the last leaf.
        error_lines: sorted 1-based lines spanned by ``ERROR`` nodes plus the lines of ``MISSING``
            nodes (including those inside strings); empty when the parse is clean.
    """

    kind_ids: list[int]
    parent: list[int]
    depth: list[int]
    sibling_index: list[int]
    leaf_nodes: list[int]
    leaf_texts: list[str]
    node_lines: list[int]
    leaf_end_lines: list[int]
    gaps: list[str]
    error_lines: list[int]

    @classmethod
    def from_source(cls, source: str) -> ProgramGraph:
        """Parse ``source`` with tree-sitter-python and build its graph.

        Args:
            source: Python source text; any string, syntax errors included.

        Returns:
            The graph; ``graph.to_source() == source``.

        Raises:
            TypeError: if ``source`` is not a ``str``.
            UnicodeEncodeError: if ``source`` holds lone surrogates (not encodable as UTF-8).
        """
        if not isinstance(source, str):
            raise TypeError(f"source must be str, got {type(source).__name__}")
        data = source.encode("utf-8")
        parser, _, _, string_kinds = _tables()
        tree = parser.parse(data)
        # Only the per-node facts tree-sitter alone knows are collected in this loop, with as few
        # Python-level steps per node as possible (it is the hot path of data preparation); types,
        # categories, lines, texts and gaps are derived afterwards in bulk. ``check`` skips every
        # ERROR/MISSING test for clean parses.
        check = tree.root_node.has_error
        kinds: list[int] = []  # tree-sitter kind_id of each node
        parent: list[int] = []
        depth: list[int] = []
        sibling_index: list[int] = []
        node_start: list[int] = []  # byte offset of each node
        leaf_nodes: list[int] = []
        leaf_end: list[int] = []  # byte offset just after each leaf
        error_bytes: list[tuple[int, int]] = []  # byte spans of ERROR nodes and MISSING leaves
        string_errors: list = []  # string leaves with errors inside (rare)

        # Bound methods: one attribute lookup per list instead of one per node.
        add_kind, add_parent, add_depth = kinds.append, parent.append, depth.append
        add_sibling, add_start = sibling_index.append, node_start.append
        add_leaf, add_end = leaf_nodes.append, leaf_end.append
        # The current node's index, parent, depth and sibling index; going up restores the
        # parent's own parent and sibling index from the lists already built (no stacks).
        i = d = s = 0
        par = -1
        cursor = tree.walk()
        first_child, next_sibling, up = cursor.goto_first_child, cursor.goto_next_sibling, cursor.goto_parent
        while True:
            node = cursor.node
            kind = node.kind_id
            start = node.start_byte
            add_kind(kind)
            add_parent(par)
            add_depth(d)
            add_sibling(s)
            add_start(start)
            if check and kind == _ERROR_KIND:
                error_bytes.append((start, node.end_byte))
            if first_child():
                if kind not in string_kinds:
                    par = i
                    i += 1
                    d += 1
                    s = 0
                    continue
                up()  # a string is one leaf token: back out of its parts
            # A leaf token.
            add_leaf(i)
            end = node.end_byte
            add_end(end)
            if check:
                if end == start and node.is_missing:
                    error_bytes.append((start, start))
                elif kind in string_kinds and node.has_error:
                    string_errors.append(node)
            i += 1
            while not next_sibling():
                if not up():
                    break
                s = sibling_index[par]
                par = parent[par]
                d -= 1
            else:
                s += 1
                continue
            break

        # Byte offsets -> 1-based lines. ``last`` holds -1 and then the offset of the last byte of
        # every line break (Python's: "\r\n", "\r", "\n"), so the line of byte ``b`` is #(last < b).
        # Without a lone "\r" (the usual case, CRLF included) every break ends with a "\n".
        last = [-1]
        if data.count(b"\r") == data.count(b"\r\n"):
            k = data.find(b"\n")
            while k >= 0:
                last.append(k)
                k = data.find(b"\n", k + 1)
        else:
            last.extend(m.end() - 1 for m in _LINE_BREAK.finditer(data))
        n = len(kinds)
        leaves = np.fromiter(leaf_nodes, np.int64, len(leaf_nodes))
        # One search for node starts and leaf ends, each leaf end moved to the leaf's last byte
        # (its start when the leaf is empty). (A node's start is not always its first leaf's:
        # a ``block`` starts before the hidden newline/indent tokens that precede its first child.)
        pos = np.fromiter(node_start + leaf_end, np.int64, n + len(leaf_end))
        start_bytes = pos[leaves]
        last_byte = pos[n:]
        last_byte -= 1
        np.maximum(last_byte, start_bytes, out=last_byte)
        lines = np.searchsorted(last, pos).tolist()
        node_lines = lines[:n]

        leaf_start = start_bytes.tolist()  # byte offset of each leaf
        if not all(map(operator.le, leaf_end, leaf_start[1:])):
            raise AssertionError("tree-sitter leaves out of order")

        # Leaf texts and the gaps between them, sliced from ``source`` directly when byte and
        # character offsets coincide (ASCII), else decoded from ``data``.
        bounds = [*leaf_start, len(data)]
        ends = [0, *leaf_end]
        if len(data) == len(source):
            leaf_texts = [source[a:b] for a, b in zip(leaf_start, leaf_end)]
            gaps = [source[a:b] for a, b in zip(ends, bounds)]
        else:
            leaf_texts = [data[a:b].decode("utf-8") for a, b in zip(leaf_start, leaf_end)]
            gaps = [data[a:b].decode("utf-8") for a, b in zip(ends, bounds)]

        error_lines: list[int] = []
        if error_bytes or string_errors:
            spans = [(_line(last, a), _line(last, max(b - 1, a))) for a, b in error_bytes]
            for node in string_errors:
                spans.extend(_errors_inside(node, last))
            error_lines = sorted({ln for a, b in spans for ln in range(a, b + 1)})
        graph = cls(
            kind_ids=kinds,
            parent=parent,
            depth=depth,
            sibling_index=sibling_index,
            leaf_nodes=leaf_nodes,
            leaf_texts=leaf_texts,
            node_lines=node_lines,
            leaf_end_lines=lines[n:],
            gaps=gaps,
            error_lines=error_lines,
        )
        graph.__dict__["_arrays"] = {"leaf_nodes": leaves}
        return graph

    @functools.cached_property
    def node_types(self) -> list[str]:
        """tree-sitter type of each node, ``[num_nodes]``; for anonymous nodes the token text
        (``"+"``, ``"def"``); ``MISSING`` nodes keep the type they stand for."""
        kind_type = _tables()[1]
        return list(map(kind_type.__getitem__, self.kind_ids))

    @functools.cached_property
    def leaf_categories(self) -> list[LeafCategory]:
        """:class:`LeafCategory` of each leaf token, ``[num_leaves]``."""
        kind_category, kinds = _tables()[2], self.kind_ids
        return list(map(kind_category.__getitem__, map(kinds.__getitem__, self.leaf_nodes)))

    @functools.cached_property
    def leaf_lines(self) -> list[tuple[int, int]]:
        """1-based ``(start_line, end_line)`` of each leaf token, ``[num_leaves]``
        (:attr:`node_lines` of the leaf, :attr:`leaf_end_lines`)."""
        starts = map(self.node_lines.__getitem__, self.leaf_nodes)
        return list(zip(starts, self.leaf_end_lines))

    def array(self, name: str) -> np.ndarray:
        """The int list attribute ``name`` as an int64 array, converted once and memoised.

        For ``kind_ids``, ``parent``, ``depth``, ``sibling_index``, ``leaf_nodes`` and
        ``node_lines``. A graph is treated as immutable: the memo is not refreshed if a list is
        changed in place. Do not write into the returned array.

        Raises:
            ValueError: if ``name`` is not one of those attributes.
        """
        arrays = self.__dict__.setdefault("_arrays", {})  # (inline, not _memo: the hot path)
        out = arrays.get(name)
        if out is None:
            if name not in _INT_LISTS:
                raise ValueError(f"ProgramGraph.array: {name!r} is not one of {sorted(_INT_LISTS)}")
            values = getattr(self, name)
            out = arrays[name] = np.fromiter(values, np.int64, len(values))
        return out

    def first_leaf(self) -> np.ndarray:
        """Leaf position of each node's first leaf token in source order: int64 ``[num_nodes]``.

        A leaf's own position at a leaf token; every node has one (a node without children is a
        leaf). Memoised; do not write into it.
        """
        # In preorder the first leaf at or after node i lies in i's subtree (i is a leaf, or its
        # first child follows it, down to a leaf), so it is i's first leaf.
        return self._memo("first_leaf", lambda: np.searchsorted(
            self.array("leaf_nodes"), np.arange(len(self.kind_ids), dtype=np.int64)))

    def kind_index(self) -> np.ndarray:
        """Kind index of each node (:func:`kind_names`): int64 ``[num_nodes]``, memoised.

        Equal to :attr:`kind_ids` except at ``ERROR`` nodes, which get ``len(kind_names()) - 1``.
        """
        return self._memo(
            "kind_index", lambda: np.minimum(self.array("kind_ids"), len(kind_names()) - 1))

    def _memo(self, name: str, compute) -> np.ndarray:
        """``compute()``, computed once per graph and kept in the (unpickled) array memo."""
        arrays = self.__dict__.setdefault("_arrays", {})
        out = arrays.get(name)
        if out is None:
            out = arrays[name] = compute()
        return out

    def __getstate__(self) -> dict:
        """Pickle the fields only (memoised arrays and derived lists are rebuilt on demand)."""
        return {f.name: self.__dict__[f.name] for f in dataclasses.fields(self)}

    def to_source(self, leaf_texts: Sequence[str] | None = None) -> str:
        """The program's source text, optionally with other leaf texts.

        Args:
            leaf_texts: replacement text for every leaf token (``num_leaves`` strings), e.g. a
                model's predictions; ``None`` uses the graph's own texts.

        Returns:
            ``gaps[0] + texts[0] + gaps[1] + ... + texts[-1] + gaps[-1]``.

        Raises:
            ValueError: if ``leaf_texts`` does not have exactly ``num_leaves`` entries.
        """
        texts = self.leaf_texts if leaf_texts is None else list(leaf_texts)
        if len(texts) != len(self.leaf_texts):
            raise ValueError(
                f"to_source needs {len(self.leaf_texts)} leaf texts (one per leaf token), "
                f"got {len(texts)}"
            )
        parts = [""] * (2 * len(texts) + 1)
        parts[0::2] = self.gaps
        parts[1::2] = texts
        return "".join(parts)

    @property
    def num_nodes(self) -> int:
        """Number of graph nodes (interior nodes and leaf tokens)."""
        return len(self.kind_ids)

    @property
    def num_leaves(self) -> int:
        """Number of leaf tokens."""
        return len(self.leaf_nodes)

    @property
    def has_error(self) -> bool:
        """Whether tree-sitter found a syntax error (an ``ERROR`` or ``MISSING`` node)."""
        return bool(self.error_lines)

    def edges(self, same_identifier: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Typed edges in PyG's layout (see :class:`EdgeType` for what each type means).

        Parent→child and child→parent for every non-root node; next-sibling between consecutive
        graph children of a node; next-token from leaf ``i`` to leaf ``i + 1``; with
        ``same_identifier``, identifier leaf → next identifier leaf with the same text. Edges are
        grouped by type in :class:`EdgeType` order. Within a type: parent→child and child→parent
        edges follow the child's preorder; next-token and same-identifier edges the later leaf's;
        next-sibling edges are grouped by parent (parents in preorder), in order within a parent.

        Args:
            same_identifier: also emit :attr:`EdgeType.SAME_IDENTIFIER` edges.

        Returns:
            ``edge_index``: int64 ``[2, num_edges]`` (row 0 source, row 1 target) and
            ``edge_type``: int64 ``[num_edges]`` holding :class:`EdgeType` values.
        """
        n = len(self.parent)
        par = self.array("parent")[1:]
        child = np.arange(1, n, dtype=np.int64)  # every non-root node
        # A node with sibling index s > 0 follows the child of its parent with index s - 1: in
        # preorder that is the latest earlier node with the same parent. Group nodes by parent
        # (stable, so preorder is kept inside a group); consecutive nodes of a group are siblings.
        order = np.argsort(par, kind="stable")
        grouped = par[order]
        same = grouped[1:] == grouped[:-1]
        order += 1  # positions in ``par`` -> node indices (``par[k]`` is node k + 1's parent)
        sib_src, sib_dst = order[:-1][same], order[1:][same]
        leaves = self.array("leaf_nodes")
        parts_src = [par, child, leaves[:-1], sib_src]
        parts_dst = [child, par, leaves[1:], sib_dst]
        if same_identifier:
            id_src, id_dst = self._same_identifier_pairs()
            parts_src.append(id_src)
            parts_dst.append(id_dst)
        counts = [len(p) for p in parts_src]
        edge_type = np.repeat(_EDGE_TYPES[: len(counts)], counts)
        # Both rows in one concatenation: the sources, then the targets.
        edge_index = np.concatenate(parts_src + parts_dst).reshape(2, len(edge_type))
        return edge_index, edge_type

    def _same_identifier_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Node pairs (identifier leaf, next identifier leaf with the same text), int64 ``[k]``."""
        last: dict[str, int] = {}
        src: list[int] = []
        dst: list[int] = []
        identifier = LeafCategory.IDENTIFIER
        for node, text, cat in zip(self.leaf_nodes, self.leaf_texts, self.leaf_categories):
            if cat is identifier and text:  # a MISSING identifier ("") names nothing
                prev = last.get(text)
                if prev is not None:
                    src.append(prev)
                    dst.append(node)
                last[text] = node
        return np.array(src, dtype=np.int64), np.array(dst, dtype=np.int64)

    def node_kinds(self) -> np.ndarray:
        """:class:`NodeKind` of each node: uint8 ``[num_nodes]`` (``TOKEN`` at leaf tokens)."""
        kinds = np.full(len(self.kind_ids), NodeKind.INTERIOR, dtype=np.uint8)
        kinds[self.leaf_nodes] = NodeKind.TOKEN
        return kinds

    def leaf_index_of_node(self) -> np.ndarray:
        """Leaf position of each node, or ``-1`` for interior nodes: int64 ``[num_nodes]``."""
        out = np.full(len(self.kind_ids), -1, dtype=np.int64)
        out[self.array("leaf_nodes")] = np.arange(len(self.leaf_nodes))
        return out


def _line(last: list[int], byte: int) -> int:
    """1-based line of byte offset ``byte``; ``last``: -1, then the last byte of each line break."""
    return bisect.bisect_left(last, byte)


def _errors_inside(node, last: list[int]) -> list[tuple[int, int]]:
    """Line spans of ERROR/MISSING nodes below ``node`` (a string leaf with errors inside)."""
    spans = []
    stack = list(node.children)
    while stack:
        n = stack.pop()
        if n.type == "ERROR" or n.is_missing:
            start = _line(last, n.start_byte)
            spans.append((start, _line(last, max(n.end_byte - 1, n.start_byte))))
        stack.extend(n.children)
    return spans
