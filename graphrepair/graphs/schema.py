"""The program-graph schema: node kinds, leaf-token categories and typed edges (DESIGN.md "Graph").

These enums name every kind of thing a :class:`graphrepair.graphs.graph.ProgramGraph` holds, in the
spirit of python-graphs' schema: a node is an interior tree-sitter node or a leaf token
(:class:`NodeKind`); a leaf token has a lexical :class:`LeafCategory` (which decides whether a
corruption may mask it); an edge has an :class:`EdgeType`. :mod:`graphrepair.graphs.graph` re-exports
them, so ``from graphrepair.graphs.graph import EdgeType`` keeps working.
"""

from __future__ import annotations

from enum import Enum, IntEnum

__all__ = [
    "KEYWORDS",
    "LITERAL_TYPES",
    "OPERATORS",
    "PUNCTUATION",
    "EdgeType",
    "LeafCategory",
    "NodeKind",
    "leaf_category",
]


class NodeKind(IntEnum):
    """Kind of a graph node (see :meth:`graphrepair.graphs.graph.ProgramGraph.node_kinds`).

    Attributes:
        INTERIOR: a tree-sitter node with graph children (``module``, ``call``, ...). Its
            vocabulary id is that of its type, ``"<type:NAME>"``.
        TOKEN: a leaf token: a node without children, or a whole ``string`` node (whose parts are
            not graph nodes). Its vocabulary id is that of its source text; corruption masks and
            the model predicts only these.
    """

    INTERIOR = 0
    TOKEN = 1


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
    """Typed edges of a :class:`~graphrepair.graphs.graph.ProgramGraph` (see its ``edges`` method).

    Every edge is directed, from ``edge_index[0]`` to ``edge_index[1]``:

    Attributes:
        PARENT_TO_CHILD: from each interior node to each of its graph children (AST structure).
        CHILD_TO_PARENT: the reverse of every ``PARENT_TO_CHILD`` edge, so that messages flow up.
        NEXT_TOKEN: from leaf token ``i`` to leaf token ``i + 1`` in source order (the token
            sequence; comments and ``line_continuation`` leaves included).
        NEXT_SIBLING: from each node to the next graph child of the same parent.
        SAME_IDENTIFIER: opt-in (``edges(same_identifier=True)``), "DFG-lite": from each
            ``identifier`` leaf to the next ``identifier`` leaf, in source order, with exactly the
            same text. A purely lexical approximation of def-use chains (no scopes, no attributes
            vs. variables distinction), in the spirit of the ``LAST_LEXICAL_USE`` edges of
            Allamanis et al., "Learning to Represent Programs with Graphs" (ICLR 2018).
    """

    PARENT_TO_CHILD = 0
    CHILD_TO_PARENT = 1
    NEXT_TOKEN = 2
    NEXT_SIBLING = 3
    SAME_IDENTIFIER = 4


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
