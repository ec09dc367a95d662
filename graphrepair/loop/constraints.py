"""Constrained decoding: which leaf texts the refiner may write at each leaf.

Two constraints of Issue 21 ("A refiner that uses its tests"), both known without the reference:

* **grammar**: a corrupted leaf keeps its node in the AST, so its lexical category
  (:class:`~graphrepair.graphs.schema.LeafCategory`: identifier, keyword, operator, literal, ...)
  is known; the leaf may only take a text of that category (:func:`text_categories`). A masked
  operator is never filled with a name, a masked name never with ``)``.
* **identifier scope** (``identifiers: in_scope``): an identifier leaf may only take a name that
  appears in the current program (a visible identifier leaf), in its tests or setup code, among
  Python's builtins and the attributes of the builtin types, or among the exports of a standard
  module the program names (:data:`SCOPE_MODULES`). A name defined and used only at corrupted
  leaves is then out of reach: the constraint trades those for every other identifier, whose
  choice it narrows from thousands of vocabulary names to a few hundred.

:class:`OutputConstraint` turns both into a boolean mask over the vocabulary per leaf, applied to
the model's logits at training and at evaluation alike (:meth:`graphrepair.loop.refine.Refiner.logits`).
"""

from __future__ import annotations

import builtins
import functools
import importlib
import io
import keyword
import re
import tokenize
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import torch

from graphrepair.graphs.graph import kind_names
from graphrepair.graphs.schema import KEYWORDS, OPERATORS, PUNCTUATION, LeafCategory
from graphrepair.graphs.vocab import UNK, Vocabulary

__all__ = ["CATEGORIES", "SCOPE_MODULES", "OutputConstraint", "copy_columns", "copy_inputs",
           "leaf_categories", "scope_names", "text_categories"]

CATEGORIES = tuple(LeafCategory)
"""Category order of the masks' rows (:class:`~graphrepair.graphs.schema.LeafCategory`)."""
_INDEX = {c: i for i, c in enumerate(CATEGORIES)}
_IDENTIFIER = _INDEX[LeafCategory.IDENTIFIER]

SCOPE_MODULES = ("array", "bisect", "calendar", "cmath", "collections", "copy", "datetime",
                 "decimal", "fractions", "functools", "heapq", "itertools", "math", "operator",
                 "random", "re", "statistics", "string", "struct", "sys", "textwrap", "typing")
"""Standard modules whose exports are in scope when the program names the module (imported
once, here, in the evaluating process: these are side-effect-free to import)."""

_NUMBER = re.compile(r"[0-9.][0-9a-fA-FxXoObBjJeE_.+-]*")
_STRING = re.compile(r"[rRbBuUfF]{0,3}(['\"]).*", re.S)
_HARD_KEYWORDS = frozenset(keyword.kwlist)
_CONSTANTS = frozenset({"True", "False", "None"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def text_categories(text: str) -> frozenset[LeafCategory]:
    """The leaf categories a token with this text can have (one text may have several).

    ``print`` is an identifier (a call) or a keyword (Python 2's statement), ``match`` an
    identifier or a soft keyword, ``True`` a literal; a text no rule claims is ``other``.
    """
    out = set()
    if text.startswith("#"):
        out.add(LeafCategory.COMMENT)
    if text in KEYWORDS and text not in _CONSTANTS:  # tree-sitter: True/False/None are literals
        out.add(LeafCategory.KEYWORD)
    if text in OPERATORS:
        out.add(LeafCategory.OPERATOR)
    if text in PUNCTUATION or text.startswith("\\"):
        out.add(LeafCategory.PUNCTUATION)
    if text.isidentifier() and text not in _HARD_KEYWORDS:
        out.add(LeafCategory.IDENTIFIER)
    if text in _CONSTANTS or text == "..." or _NUMBER.fullmatch(text) \
            or _STRING.fullmatch(text):
        out.add(LeafCategory.LITERAL)
    return frozenset(out or {LeafCategory.OTHER})


@functools.lru_cache(maxsize=1)
def _category_by_kind() -> np.ndarray:
    """int64 ``[num kinds]``: row of :data:`CATEGORIES` of a leaf of each kind index."""
    return np.array([_INDEX[category] for _, category in kind_names()], dtype=np.int64)


def leaf_categories(graph) -> np.ndarray:
    """int64 ``[L]``: the :data:`CATEGORIES` row of each leaf of ``graph`` (a ProgramGraph)."""
    return _category_by_kind()[graph.kind_index()[graph.array("leaf_nodes")]]


@functools.lru_cache(maxsize=4096)
def _names_in_code(snippets: tuple[str, ...]) -> frozenset[str]:
    """The NAME tokens of some Python snippets (regex fallback for one that does not tokenize)."""
    names: set[str] = set()
    for code in snippets:
        try:
            names.update(tok.string for tok in tokenize.generate_tokens(io.StringIO(code).readline)
                         if tok.type == tokenize.NAME)
        except (tokenize.TokenError, SyntaxError, IndentationError):
            names.update(_NAME.findall(code))
    return frozenset(names)


@functools.lru_cache(maxsize=1)
def _builtin_names() -> frozenset[str]:
    """Builtins and the attributes of the builtin types (``append``, ``split``, ``items``, ...)."""
    names = set(dir(builtins))
    for t in (str, bytes, list, dict, set, frozenset, tuple, int, float, complex, bool, range,
              object, slice, type):
        names.update(dir(t))
    return frozenset(names)


@functools.cache
def _module_exports(module: str) -> frozenset[str]:
    return frozenset(dir(importlib.import_module(module)))


def scope_names(texts: Sequence[str | None], categories: np.ndarray, tests: Sequence[str],
                setup: str = "") -> frozenset[str]:
    """The names an identifier leaf may take under ``identifiers: in_scope`` (module docstring).

    Args:
        texts: the current leaf texts (``None`` = masked: not visible).
        categories: int64 ``[L]`` :data:`CATEGORIES` rows of the leaves (:func:`leaf_categories`).
        tests: the problem's test snippets; setup: its setup code.
    """
    visible = {t for t, c in zip(texts, categories) if c == _IDENTIFIER and t}
    names = visible | _names_in_code((*tests, setup)) | _builtin_names()
    for module in SCOPE_MODULES:
        if module in names:
            names |= _module_exports(module)
    return frozenset(names)


def copy_inputs(enc, editable: np.ndarray, texts: Sequence[str | None], leaf_ids: np.ndarray,
                vocab: Vocabulary, slots: int = 0) -> dict:
    """The inputs of the pointer model (:mod:`graphrepair.models.pointer_unet`) for one state.

    The pointer writes a name it copies as an *output column*: the name's vocabulary id, or, for
    an out-of-vocabulary name, an *extended id* ``len(vocab) + j`` (``j < slots``) that stands for
    ``names[j]`` of this state only (the per-program extended vocabulary of pointer-generator
    networks, See et al., ACL 2017).

    Args:
        enc: the encoded program (:class:`graphrepair.features.encoding.EncodedProgram`).
        editable: bool ``[L]`` leaves the repair may change.
        texts: ``[L]`` current leaf texts (``None``: masked).
        leaf_ids: int64 ``[L]`` the leaf ids the model reads (``MASK``, ``UNK`` or a text's id).
        vocab: the model's vocabulary.
        slots: extended ids available (0: only in-vocabulary names are copied).

    Returns:
        ``editable`` int64 ``[N]`` (1 on editable leaves); ``copy_source`` bool ``[N]``
        (identifier leaves whose text is visible: in the vocabulary and read as such, or out of it
        and among ``names``); ``copy_id`` int64 ``[N]`` (the output column of each source, 0
        elsewhere); ``test_names`` int64 ``[M]`` (the output columns of the distinct names of the
        tests and setup code that have one, ascending); ``names`` (the out-of-vocabulary names of
        the extended ids, in order: the visible identifier leaves' in leaf order, then the tests'
        in sorted order; at most ``slots``).
    """
    n, v = enc.num_nodes, len(vocab)
    editable_n = np.zeros(n, dtype=np.int64)
    editable_n[enc.leaf_nodes[editable]] = 1
    identifier = leaf_categories(enc.graph) == _IDENTIFIER
    visible = identifier & (leaf_ids > UNK)  # in-vocabulary texts read as such (not PAD/MASK/UNK)
    test_texts = sorted(_names_in_code((*enc.problem.tests, enc.problem.setup)))
    test_ids, _ = vocab.encode_texts(test_texts)
    names: dict[str, int] = {}
    if slots:
        oov_leaves = identifier & (leaf_ids == UNK)
        candidates = [t for t, o in zip(texts, oov_leaves) if o and t is not None
                      and vocab.leaf_id(t) == UNK]  # not a training-time UNK replacement
        candidates += [t for t, i in zip(test_texts, test_ids)
                       if i == UNK and not keyword.iskeyword(t)]  # names, not keywords
        for t in candidates:
            if t not in names and len(names) < slots:
                names[t] = v + len(names)
    copy_id = np.zeros(n, dtype=np.int64)
    copy_id[enc.leaf_nodes[visible]] = leaf_ids[visible]
    # names holds out-of-vocabulary texts only, so a leaf with one is read as UNK
    extended = np.array([t in names for t in texts], dtype=bool) & identifier
    copy_id[enc.leaf_nodes[extended]] = [names[t] for t, e in zip(texts, extended) if e]
    source = np.zeros(n, dtype=bool)
    source[enc.leaf_nodes[visible | extended]] = True
    test_cols = np.array([names.get(t, i) for t, i in zip(test_texts, test_ids)], dtype=np.int64)
    test_cols = np.unique(test_cols[test_cols != UNK])
    return {"editable": torch.from_numpy(editable_n), "copy_source": torch.from_numpy(source),
            "copy_id": torch.from_numpy(copy_id), "test_names": torch.from_numpy(test_cols),
            "names": tuple(names)}


def copy_columns(categories: np.ndarray, n_names: int, slots: int) -> np.ndarray:
    """bool ``[L, slots]``: the extended ids (:func:`copy_inputs`) each leaf may take.

    Extended id ``j`` stands for the j-th copyable out-of-vocabulary name of the program; only an
    identifier leaf may take it, and only if the program has ``j + 1`` such names.

    Args:
        categories: int64 ``[L]`` leaf categories (:func:`leaf_categories`).
        n_names: the program's copyable out-of-vocabulary names (<= ``slots``).
        slots: the model's extended ids.
    """
    out = np.zeros((len(categories), slots), dtype=bool)
    out[categories == _IDENTIFIER, :n_names] = True
    return out


class OutputConstraint:
    """Per-leaf masks over the vocabulary: grammar category and/or identifier scope.

    Args:
        vocab: the model's vocabulary (leaf ids only are ever allowed).
        grammar: restrict every leaf to texts of its category (:func:`text_categories`).
        identifiers: ``vocabulary`` (any identifier text of the vocabulary) or ``in_scope``
            (:func:`scope_names`).

    A leaf whose row would allow nothing (an identifier leaf none of whose in-scope names is in
    the vocabulary, an ``other`` leaf) falls back to every text of its category, then to every
    leaf text, so that the softmax stays defined.
    """

    def __init__(self, vocab: Vocabulary, *, grammar: bool = True,
                 identifiers: Literal["vocabulary", "in_scope"] = "vocabulary") -> None:
        if identifiers not in ("vocabulary", "in_scope"):
            raise ValueError(f"identifiers must be 'vocabulary' or 'in_scope', got {identifiers!r}")
        self.vocab, self.grammar, self.identifiers = vocab, grammar, identifiers
        writable = vocab.leaf_token_mask()  # (V,)
        rows = np.zeros((len(CATEGORIES), len(vocab)), dtype=bool)
        for i in np.flatnonzero(writable):
            for category in text_categories(vocab.text(int(i))):
                rows[_INDEX[category], i] = True
        if not grammar:
            rows[:] = writable
        rows[~rows.any(axis=1)] = writable  # a category without texts: anything
        self.category_rows = rows  # (C, V)
        self.writable = writable

    @property
    def active(self) -> bool:
        """Whether this constraint restricts anything beyond the vocabulary's leaf texts."""
        return self.grammar or self.identifiers == "in_scope"

    def scope_mask(self, texts: Sequence[str | None], categories: np.ndarray,
                   tests: Sequence[str], setup: str = "") -> np.ndarray:
        """bool ``[V]``: the identifier texts in scope (:func:`scope_names`) among the leaf texts."""
        mask = np.zeros(len(self.vocab), dtype=bool)
        ids, _ = self.vocab.encode_texts(scope_names(texts, categories, tests, setup))
        mask[ids] = True  # UNK included; it is not writable and falls out below
        return mask & self.writable & self.category_rows[_IDENTIFIER]

    def allowed(self, programs: Iterable[tuple[np.ndarray, Sequence[str | None], Sequence[str], str]]
                ) -> np.ndarray:
        """bool ``[sum L, V]``: the texts each leaf may take, programs concatenated in order.

        Args:
            programs: per program, (int64 ``[L]`` leaf categories, current leaf texts, tests,
                setup code).
        """
        blocks = []
        for categories, texts, tests, setup in programs:
            rows = self.category_rows[categories]  # (L, V) copy
            if self.identifiers == "in_scope":
                ident = categories == _IDENTIFIER
                if ident.any():
                    scope = self.scope_mask(texts, categories, tests, setup)
                    if scope.any():
                        rows[ident] &= scope
            blocks.append(rows)
        return np.concatenate(blocks) if blocks else np.zeros((0, len(self.vocab)), dtype=bool)

    def bias(self, programs, device: torch.device | str = "cpu") -> torch.Tensor:
        """float32 ``[sum L, V]``: 0 where :meth:`allowed`, ``-inf`` elsewhere (add to logits)."""
        allowed = torch.from_numpy(self.allowed(programs)).to(device)
        return torch.zeros(allowed.shape, device=device).masked_fill_(~allowed, float("-inf"))
