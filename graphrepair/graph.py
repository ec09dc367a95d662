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

Line numbers are 1-based and count lines the way Python's compiler (and so coverage.py) does:
``"\\r\\n"``, a lone ``"\\r"`` and ``"\\n"`` each end a line.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum

import numpy as np

__all__ = ["EdgeType", "LeafCategory", "ProgramGraph"]


class LeafCategory(str, Enum):
    """Lexical category of a leaf token, used to choose which leaves a corruption may mask.

    The mapping is decided by the leaf's node type (for anonymous nodes the type is the token's
    text, e.g. ``"+"``; a ``MISSING`` node keeps the type of the token it stands for), in order:

    1. ``IDENTIFIER``: type ``identifier``.
    2. ``LITERAL``: types ``string`` (a whole string, f-strings included; each part of an implicitly
       concatenated string is its own leaf), ``integer``, ``float``, ``true``, ``false``, ``none``,
       ``ellipsis``.
    3. ``COMMENT``: type ``comment``.
    4. ``OTHER``: type ``ERROR`` (text tree-sitter could not place) and named leaves not listed here
       (e.g. an empty ``block`` produced by error recovery, or an empty ``module``).
    5. ``KEYWORD``: anonymous leaves in :data:`KEYWORDS` (Python 3.12's ``keyword.kwlist`` and
       ``keyword.softkwlist`` fixed here so that the mapping does not depend on the running Python,
       plus ``print`` and ``exec``, which tree-sitter-python parses as Python 2 statement keywords).
    6. ``OPERATOR``: anonymous leaves in :data:`OPERATORS` (arithmetic, bitwise, comparison,
       assignment and augmented assignment, ``->``, ``:=``, ``<>``, ``!``). ``*``, ``**`` and ``@``
       count as operators wherever they appear (unpacking, ``keyword_separator``, decorators).
    7. ``PUNCTUATION``: anonymous leaves in :data:`PUNCTUATION` (``( ) [ ] { } , : . ;`` and the
       backquote) and the named leaf ``line_continuation`` (a backslash before a newline).
    8. ``OTHER``: anything else.
    """

    IDENTIFIER = "identifier"
    KEYWORD = "keyword"
    OPERATOR = "operator"
    PUNCTUATION = "punctuation"
    LITERAL = "literal"
    COMMENT = "comment"
    OTHER = "other"


class EdgeType(IntEnum):
    """Typed edges of a :class:`ProgramGraph` (see :meth:`ProgramGraph.edges`)."""

    PARENT_TO_CHILD = 0
    CHILD_TO_PARENT = 1
    NEXT_TOKEN = 2
    NEXT_SIBLING = 3


KEYWORDS = frozenset(
    "False None True and as assert async await break class continue def del elif else except "
    "finally for from global if import in is lambda nonlocal not or pass raise return try while "
    "with yield _ case match type print exec".split()
)
OPERATORS = frozenset(
    "+ - * / // % ** @ = += -= *= /= //= %= **= @= &= |= ^= >>= <<= == != <> < > <= >= << >> "
    "& | ^ ~ -> := !".split()
)
PUNCTUATION = frozenset("( ) [ ] { } , : . ; `".split())
LITERAL_TYPES = frozenset({"string", "integer", "float", "true", "false", "none", "ellipsis"})

_NAMED_CATEGORY = {
    "identifier": LeafCategory.IDENTIFIER,
    "comment": LeafCategory.COMMENT,
    "line_continuation": LeafCategory.PUNCTUATION,
    "ERROR": LeafCategory.OTHER,
    **{t: LeafCategory.LITERAL for t in LITERAL_TYPES},
}
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


def leaf_category(node_type: str, is_named: bool) -> LeafCategory:
    """Category of a leaf token from its node type (see :class:`LeafCategory` for the rules)."""
    if is_named:
        return _NAMED_CATEGORY.get(node_type, LeafCategory.OTHER)
    if node_type in KEYWORDS:
        return LeafCategory.KEYWORD
    if node_type in OPERATORS:
        return LeafCategory.OPERATOR
    if node_type in PUNCTUATION:
        return LeafCategory.PUNCTUATION
    return LeafCategory.OTHER


@functools.lru_cache(maxsize=1)
def _parser():
    """The tree-sitter-python parser, created on first use (no work at import time)."""
    import tree_sitter_python
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_python.language()))


@dataclass
class ProgramGraph:
    """A Python program as a tree-sitter graph whose leaf tokens reproduce the source exactly.

    Build one with :meth:`from_source`. All per-node lists are indexed by node (preorder, root 0);
    all per-leaf lists by leaf position (source order).

    Attributes:
        node_types: tree-sitter type of each node, ``[num_nodes]``; for anonymous nodes this is the
            token text (``"+"``, ``"def"``); ``MISSING`` nodes keep the type they stand for.
        parent: parent node index of each node, ``-1`` for the root, ``[num_nodes]``.
        depth: depth of each node, root 0, ``[num_nodes]``.
        sibling_index: position of each node among its parent's graph children (root 0).
        leaf_nodes: node index of each leaf token, ``[num_leaves]``, increasing.
        leaf_texts: source text of each leaf token (``""`` for ``MISSING`` nodes).
        leaf_categories: :class:`LeafCategory` of each leaf token.
        leaf_lines: 1-based ``(start_line, end_line)`` of each leaf token; ``end_line`` is the line
            of its last character (a ``line_continuation`` leaf, ``"\\\n"``, ends on its own
            line).
        node_lines: 1-based start line of each node, ``[num_nodes]``.
        gaps: ``num_leaves + 1`` strings; ``gaps[i]`` is the text before leaf ``i``, ``gaps[-1]``
            the text after the last leaf.
        error_lines: sorted 1-based lines spanned by ``ERROR`` nodes plus the lines of ``MISSING``
            nodes (including those inside strings); empty when the parse is clean.
    """

    node_types: list[str]
    parent: list[int]
    depth: list[int]
    sibling_index: list[int]
    leaf_nodes: list[int]
    leaf_texts: list[str]
    leaf_categories: list[LeafCategory]
    leaf_lines: list[tuple[int, int]]
    node_lines: list[int]
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
        tree = _parser().parse(data)
        # Python counts a lone "\r" as a line break; tree-sitter rows count only "\n". Use the rows
        # when they agree (no lone "\r"), else map byte offsets to lines ourselves.
        line_of = None
        if data.count(b"\r") != data.count(b"\r\n"):
            starts = [m.end() for m in _LINE_BREAK.finditer(data)]
            line_of = functools.partial(bisect.bisect_right, starts)

        node_types: list[str] = []
        parent: list[int] = []
        depth: list[int] = []
        sibling_index: list[int] = []
        node_lines: list[int] = []
        leaf_nodes: list[int] = []
        leaf_texts: list[str] = []
        leaf_categories: list[LeafCategory] = []
        leaf_lines: list[tuple[int, int]] = []
        gaps: list[str] = []
        error_spans: list[tuple[int, int]] = []  # (start_line, end_line) of ERROR/MISSING nodes

        ancestors = [-1]  # node indices of the current node's ancestors; ancestors[-1] = parent
        sibling = [0]  # sibling counter at each open level
        prev_end = 0
        cursor = tree.walk()
        while True:
            node = cursor.node
            i = len(node_types)
            ntype = node.type
            node_types.append(ntype)
            parent.append(ancestors[-1])
            depth.append(len(ancestors) - 1)
            sibling_index.append(sibling[-1])
            if line_of is None:
                line = node.start_point[0] + 1
            else:
                line = line_of(node.start_byte) + 1
            node_lines.append(line)
            if ntype == "ERROR":
                error_spans.append((line, _end_line(node, line, line_of)))
            if ntype != "string" and cursor.goto_first_child():
                ancestors.append(i)
                sibling.append(0)
                continue
            # A leaf token.
            start, end = node.start_byte, node.end_byte
            assert start >= prev_end, "tree-sitter leaves out of order"
            gaps.append(data[prev_end:start].decode("utf-8"))
            leaf_texts.append(data[start:end].decode("utf-8"))
            prev_end = end
            leaf_nodes.append(i)
            leaf_categories.append(leaf_category(ntype, node.is_named))
            leaf_lines.append((line, _end_line(node, line, line_of)))
            if node.is_missing:
                error_spans.append((line, line))
            elif ntype == "string" and node.has_error:
                error_spans.extend(_errors_inside(node, line_of))
            while not cursor.goto_next_sibling():
                if not cursor.goto_parent():
                    break
                ancestors.pop()
                sibling.pop()
            else:
                sibling[-1] += 1
                continue
            break
        gaps.append(data[prev_end:].decode("utf-8"))
        error_lines = sorted({ln for a, b in error_spans for ln in range(a, b + 1)})
        return cls(
            node_types=node_types,
            parent=parent,
            depth=depth,
            sibling_index=sibling_index,
            leaf_nodes=leaf_nodes,
            leaf_texts=leaf_texts,
            leaf_categories=leaf_categories,
            leaf_lines=leaf_lines,
            node_lines=node_lines,
            gaps=gaps,
            error_lines=error_lines,
        )

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
        return len(self.node_types)

    @property
    def num_leaves(self) -> int:
        """Number of leaf tokens."""
        return len(self.leaf_nodes)

    @property
    def has_error(self) -> bool:
        """Whether tree-sitter found a syntax error (an ``ERROR`` or ``MISSING`` node)."""
        return bool(self.error_lines)

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """Typed edges in PyG's layout.

        Parent→child and child→parent for every non-root node; next-sibling between consecutive
        graph children of a node; next-token from leaf ``i`` to leaf ``i + 1``. Edges are grouped
        by type in :class:`EdgeType` order.

        Returns:
            ``edge_index``: int64 ``[2, num_edges]`` (row 0 source, row 1 target) and
            ``edge_type``: int64 ``[num_edges]`` holding :class:`EdgeType` values.
        """
        parent = np.asarray(self.parent, dtype=np.int64)
        child = np.arange(1, len(parent), dtype=np.int64)  # every non-root node
        par = parent[1:]
        order = np.argsort(par, kind="stable")  # group children by parent, keep preorder
        grouped_parent, grouped_child = par[order], child[order]
        same = grouped_parent[1:] == grouped_parent[:-1]
        sib_src, sib_dst = grouped_child[:-1][same], grouped_child[1:][same]
        leaves = np.asarray(self.leaf_nodes, dtype=np.int64)
        tok_src, tok_dst = leaves[:-1], leaves[1:]
        src = np.concatenate([par, child, tok_src, sib_src])
        dst = np.concatenate([child, par, tok_dst, sib_dst])
        counts = [len(par), len(par), len(tok_src), len(sib_src)]
        edge_type = np.repeat(np.arange(4, dtype=np.int64), counts)
        return np.stack([src, dst]), edge_type

    def leaf_index_of_node(self) -> np.ndarray:
        """Leaf position of each node, or ``-1`` for interior nodes: int64 ``[num_nodes]``."""
        out = np.full(len(self.node_types), -1, dtype=np.int64)
        out[np.asarray(self.leaf_nodes, dtype=np.int64)] = np.arange(len(self.leaf_nodes))
        return out


def _end_line(node, start_line: int, line_of) -> int:
    """1-based line of the last byte of ``node`` (its start line when it is empty)."""
    if node.end_byte <= node.start_byte:
        return start_line
    if line_of is not None:
        return line_of(node.end_byte - 1) + 1
    row, column = node.end_point
    return row if column == 0 else row + 1


def _errors_inside(node, line_of) -> list[tuple[int, int]]:
    """Line spans of ERROR/MISSING nodes below ``node`` (a string leaf with errors inside)."""
    spans = []
    stack = list(node.children)
    while stack:
        n = stack.pop()
        if n.type == "ERROR" or n.is_missing:
            start = (n.start_point[0] if line_of is None else line_of(n.start_byte)) + 1
            spans.append((start, _end_line(n, start, line_of)))
        stack.extend(n.children)
    return spans
