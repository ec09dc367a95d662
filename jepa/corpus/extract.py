"""Extract every Python function of a source file with tree-sitter (``DESIGN.md``, jepa *Corpus*).

A *function* is a ``def`` or ``async def`` anywhere in the file: module level, methods (also of
nested classes), functions nested in functions, defs under ``if``/``try``/``with``/``match``.
Lambdas are not functions here.

Each :class:`Function` splits its source text (from the first decorator, or ``def``/``async``, to
the end of its body) into three exact parts::

    text == function.signature + function.separator + function.body

* ``signature``: the decorators, the header up to and including the ``:`` after the parameters and
  return annotation, and, when the body starts with a docstring, everything up to the end of that
  docstring statement (comments between header and docstring included).
* ``separator``: the maximal run of whitespace (``str.isspace``) that follows the signature; always
  whitespace only, possibly empty (``def f(): pass`` gives ``" "``).
* ``body``: the rest, from the first non-whitespace character after the signature to the end of
  the function. It starts with a comment when a comment follows the header or docstring.

A docstring is a first statement (comments aside) that is a plain string literal or a concatenation
of them; an f-string is not a docstring, as in Python.

Qualified names follow Python's ``__qualname__``: ``Class.method``, ``Outer.Inner.method``,
``outer.<locals>.inner``, ``f.<locals>.C.m``. ``enclosing_class`` is the qualified name of the class
whose body defines the function directly (a method), else ``None`` (also for a function nested in a
method). Lines are 1-based; ``end_line`` is the line of the function's last character.

A file that is not UTF-8 or that tree-sitter does not parse cleanly (``root_node.has_error``) yields
no functions and a :class:`SkippedFile` naming the reason; it is never an exception.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from jepa.corpus.properties import (
    DECISION_TYPES,
    StaticProperties,
    body_lines,
    count_parameters,
    return_kind,
)

__all__ = ["Function", "SkippedFile", "extract_functions"]

logger = logging.getLogger(__name__)

# nodes whose children may hold (other) definitions: statements and clauses, never expressions
_CONTAINERS = ("module", "block")
_NOT_CONTAINERS = frozenset({
    "expression_statement", "return_statement", "import_statement", "import_from_statement",
    "assert_statement", "pass_statement", "break_statement", "continue_statement", "raise_statement",
    "delete_statement", "global_statement", "nonlocal_statement", "print_statement",
    "exec_statement", "type_alias_statement", "future_import_statement", "for_in_clause",
    "if_clause",
})


@dataclass(frozen=True)
class Function:
    """One Python function, its text split into signature and body (see the module docstring).

    Args:
        repository: the repository (or distribution) the file belongs to.
        path: the file's path inside the repository, ``/``-separated.
        qualname: qualified name as Python's ``__qualname__`` spells it.
        signature: decorators + ``def`` header + docstring (if any).
        separator: the whitespace between signature and body.
        body: the rest of the function.
        enclosing_class: qualified name of the class defining it directly, or ``None``.
        start_line: 1-based line of the first decorator or of ``def``/``async``.
        end_line: 1-based line of the function's last character.
        is_async: an ``async def``.
        properties: the static properties (:mod:`jepa.corpus.properties`).
    """

    repository: str
    path: str
    qualname: str
    signature: str
    separator: str
    body: str
    enclosing_class: str | None
    start_line: int
    end_line: int
    is_async: bool
    properties: StaticProperties

    @property
    def text(self) -> str:
        """The function's exact source text."""
        return self.signature + self.separator + self.body


@dataclass(frozen=True)
class SkippedFile:
    """A file that yielded no functions, and why (``"not UTF-8: ..."``, ``"syntax error at line N"``, ...)."""

    repository: str
    path: str
    reason: str


@functools.lru_cache(maxsize=1)
def _tools():
    """Parser and decision-point query, created on first use (no work at import time)."""
    import tree_sitter_python
    from tree_sitter import Language, Parser, Query

    language = Language(tree_sitter_python.language())
    query = Query(language, "[" + " ".join(f"({t})" for t in DECISION_TYPES) + "] @decision")
    return Parser(language), query


def _first_error_line(node) -> int:
    """1-based line of the first ERROR or MISSING node below ``node`` (which ``has_error``)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if n.is_error or n.is_missing:
            return n.start_point.row + 1
        stack.extend(c for c in reversed(n.children) if c.has_error)
    return node.start_point.row + 1


def _is_docstring(statement) -> bool:
    if statement.type != "expression_statement" or statement.named_child_count != 1:
        return False
    expr = statement.named_children[0]
    strings = expr.named_children if expr.type == "concatenated_string" else [expr]
    if expr.type not in ("string", "concatenated_string"):
        return False
    for s in strings:
        if s.type != "string" or any(c.type == "interpolation" for c in s.children):
            return False
        start = s.children[0].text.decode("utf-8") if s.children else ""
        if "f" in start.lower():
            return False
    return True


def extract_functions(source: bytes | str, *, repository: str = "", path: str = ""
                      ) -> tuple[list[Function], SkippedFile | None]:
    """Extract every function of one Python source file, in source order.

    Args:
        source: the file's bytes (decoded as strict UTF-8) or text.
        repository: recorded in each :class:`Function` and :class:`SkippedFile`.
        path: recorded likewise.

    Returns:
        ``(functions, None)``, or ``([], SkippedFile)`` when the file is not UTF-8 or does not parse.
    """
    if isinstance(source, str):
        try:
            data = source.encode("utf-8")
        except UnicodeEncodeError as exc:
            return [], SkippedFile(repository, path, f"not encodable as UTF-8: {exc.reason}")
    else:
        data = bytes(source)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return [], SkippedFile(repository, path, f"not UTF-8: byte {exc.start}: {exc.reason}")
    parser, query = _tools()
    tree = parser.parse(data)
    root = tree.root_node
    if root.has_error:
        return [], SkippedFile(repository, path, f"syntax error at line {_first_error_line(root)}")

    found = []  # (outer node, function_definition node, qualname, enclosing class, decorators)
    stack = [(root, "", None)]
    while stack:
        node, prefix, cls = stack.pop()
        for child in node.children:
            outer, definition, decorators = child, child, ()
            if child.type == "decorated_definition":
                definition = child.child_by_field_name("definition")
                decorators = [c for c in child.children if c.type == "decorator"]
            if definition.type == "function_definition":
                name = definition.child_by_field_name("name").text.decode("utf-8")
                found.append((outer, definition, prefix + name, cls, decorators))
                stack.append((definition.child_by_field_name("body"), f"{prefix}{name}.<locals>.", None))
            elif definition.type == "class_definition":
                name = definition.child_by_field_name("name").text.decode("utf-8")
                stack.append((definition.child_by_field_name("body"), f"{prefix}{name}.", prefix + name))
            elif child.type in _CONTAINERS or (
                    child.type.endswith(("_statement", "_clause")) and child.type not in _NOT_CONTAINERS):
                stack.append((child, prefix, cls))
    found.sort(key=lambda f: f[0].start_byte)
    complexity = _complexities(query, root, [f[1].child_by_field_name("body") for f in found])
    return [_function(data, *f, complexity=c, repository=repository, path=path)
            for f, c in zip(found, complexity)], None


def _complexities(query, root, blocks) -> list[int]:
    """1 + decision points inside each body block, not inside a nested one (blocks in source order)."""
    from tree_sitter import QueryCursor

    counts = [1] * len(blocks)
    if not blocks:
        return counts
    decisions = sorted(n.start_byte for n in QueryCursor(query).captures(root).get("decision", []))
    events = sorted([(b.start_byte, 0, i) for i, b in enumerate(blocks)] + [(d, 1, -1) for d in decisions])
    open_blocks: list[int] = []  # indices of the blocks containing the current position, innermost last
    for pos, kind, index in events:
        while open_blocks and blocks[open_blocks[-1]].end_byte <= pos:
            open_blocks.pop()
        if kind == 0:
            open_blocks.append(index)
        elif open_blocks:
            counts[open_blocks[-1]] += 1
    return counts


def _function(data: bytes, outer, definition, qualname, cls, decorators, *, complexity, repository,
              path) -> Function:
    block = definition.child_by_field_name("body")
    statements = [c for c in block.children if c.type != "comment"]
    docstring = statements[0] if statements and _is_docstring(statements[0]) else None
    if docstring is not None:
        sig_end = docstring.end_byte
    else:  # the ':' that ends the header is the last child before the body block
        sig_end = max(c.end_byte for c in definition.children
                      if c.end_byte <= block.start_byte and c.type != "comment")
    signature = data[outer.start_byte:sig_end].decode("utf-8")
    rest = data[sig_end:definition.end_byte].decode("utf-8")
    body = rest.lstrip()
    separator = rest[:len(rest) - len(body)]
    return_type = definition.child_by_field_name("return_type")
    is_static = any(d.text.decode("utf-8").strip() in ("@staticmethod", "@builtins.staticmethod")
                    for d in decorators)
    properties = StaticProperties(
        body_lines=body_lines(body),
        complexity=complexity,
        n_params=count_parameters(definition.child_by_field_name("parameters"),
                                  is_method=cls is not None, is_static=is_static),
        return_kind=return_kind(return_type.text.decode("utf-8") if return_type is not None else None),
        has_docstring=docstring is not None,
    )
    return Function(
        repository=repository, path=path, qualname=qualname, signature=signature,
        separator=separator, body=body, enclosing_class=cls,
        start_line=outer.start_point.row + 1, end_line=definition.end_point.row + 1,
        is_async=any(c.type == "async" for c in definition.children), properties=properties,
    )
