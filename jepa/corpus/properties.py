"""Static properties of an extracted function, computed from its text and tree-sitter tree.

* **Body lines** (:func:`body_lines`): lines of the *body* text (after the docstring) that are
  neither blank nor only a comment (first non-blank character ``#``). The rule is textual: lines
  inside a multi-line string literal count like any other line.
* **Cyclomatic complexity** (McCabe 1976, "A Complexity Measure", IEEE TSE 2(4)): ``1 +`` the number
  of decision points in the function's body, i.e. tree-sitter-python nodes of the types in
  :data:`DECISION_TYPES`: ``if`` and each ``elif``; ``for`` (also ``async for``) and ``while``; each
  ``except`` / ``except*`` clause; each boolean operator ``and`` / ``or`` (``a and b or c`` counts
  2); each conditional expression ``x if c else y``; each comprehension ``for`` and ``if`` clause;
  each ``case`` of a ``match``. ``else``, ``finally``, ``with``, ``assert`` and ``return`` are not
  decisions. A decision point belongs to the innermost function whose body *block* contains it: the
  decisions of a nested function's body are that function's, not its parent's, while a nested
  function's decorators and parameter defaults (evaluated by the parent) and lambdas count for the
  enclosing function.
* **Parameters** (:func:`count_parameters`): every entry of the parameter list, including ``*args``
  and ``**kwargs`` but not the bare ``*`` and ``/`` separators; for a *method* (a function defined
  directly in a class body) that is not decorated ``@staticmethod``, the first parameter (``self``,
  ``cls`` or whatever it is called) is not counted.
* **Return kind** (:func:`return_kind`): the return annotation reduced to the vocabulary
  :data:`RETURN_KINDS`.
* **Docstring**: whether the body starts with a docstring (see :mod:`jepa.corpus.extract`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "DECISION_TYPES",
    "RETURN_KINDS",
    "StaticProperties",
    "body_lines",
    "count_parameters",
    "return_kind",
]

DECISION_TYPES: tuple[str, ...] = (
    "if_statement", "elif_clause", "for_statement", "while_statement", "except_clause",
    "boolean_operator", "conditional_expression", "for_in_clause",
    "if_clause", "case_clause",
)
"""tree-sitter-python node types that each add one to the cyclomatic complexity."""

RETURN_KINDS: tuple[str, ...] = (
    "none", "None", "bool", "int", "float", "str", "bytes", "list", "dict", "tuple", "set",
    "Optional", "other",
)
"""Return-annotation classes: ``none`` = no annotation, ``None`` = annotated ``-> None``,
``Optional`` = ``Optional[X]`` / ``X | None`` / ``None | X``, ``other`` = anything else."""

_SEPARATORS = frozenset({"(", ")", ",", "keyword_separator", "positional_separator", "comment"})
_GENERIC = {"List": "list", "Dict": "dict", "Tuple": "tuple", "Set": "set"}
_QUALIFIER = re.compile(r"^(?:typing|t|builtins)\.")


@dataclass(frozen=True)
class StaticProperties:
    """Static properties of one function (see the module docstring for each definition).

    Args:
        body_lines: non-blank, non-comment lines of the body (docstring excluded).
        complexity: McCabe cyclomatic complexity, ``>= 1``.
        n_params: number of parameters (``self``/``cls`` of methods excluded).
        return_kind: one of :data:`RETURN_KINDS`.
        has_docstring: whether the body starts with a docstring.
    """

    body_lines: int
    complexity: int
    n_params: int
    return_kind: str
    has_docstring: bool


def body_lines(body: str) -> int:
    """Number of lines of ``body`` that are neither blank nor comment-only."""
    return sum(1 for line in body.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def count_parameters(parameters, *, is_method: bool, is_static: bool) -> int:
    """Count the entries of a tree-sitter ``parameters`` node.

    Args:
        parameters: the ``parameters`` node of a ``function_definition``.
        is_method: the function is defined directly in a class body.
        is_static: the function is decorated ``@staticmethod``.

    Returns:
        The number of parameters, without ``*``/``/`` separators and without the first parameter
        of a non-static method.
    """
    entries = [c for c in parameters.children if c.type not in _SEPARATORS]
    if is_method and not is_static and entries and entries[0].type in (
            "identifier", "typed_parameter", "default_parameter", "typed_default_parameter"):
        entries = entries[1:]
    return len(entries)


def _top_level_union(text: str) -> list[str]:
    """Split ``text`` at the ``|`` signs outside brackets (``list[int | str] | None`` -> 2 parts)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def return_kind(annotation: str | None) -> str:
    """Reduce a return annotation's source text to one of :data:`RETURN_KINDS`.

    Quotes of a forward reference and ``typing.``/``t.``/``builtins.`` prefixes are dropped;
    subscripts are ignored (``list[int]`` and ``List[int]`` are both ``list``).

    Example: ``return_kind(None) == "none"``, ``return_kind("'int | None'") == "Optional"``.
    """
    if annotation is None:
        return "none"
    text = annotation.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1].strip()
    text = _QUALIFIER.sub("", text)
    parts = _top_level_union(text)
    if len(parts) > 1:
        return "Optional" if len(parts) == 2 and "None" in parts else "other"
    base = text.split("[", 1)[0].strip()
    base = _QUALIFIER.sub("", base)
    if base == "Optional":
        return "Optional"
    base = _GENERIC.get(base, base)
    return base if base in RETURN_KINDS and base not in ("none", "Optional", "other") else "other"
