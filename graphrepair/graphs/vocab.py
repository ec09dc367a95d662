"""Token vocabulary over program graphs: special ids, interior node types, leaf-token texts.

One id space (``DESIGN.md``, *Graph*): ``PAD``, ``MASK``, ``UNK``; then the interior node types
seen in the graphs it was built from, stored as ``"<type:NAME>"`` so they never collide with leaf
texts; then leaf-token texts. Build it from the training split only; texts seen fewer than
``min_freq`` times (or cut by ``max_size``) map to ``UNK``.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from graphrepair.graphs.graph import ProgramGraph, kind_names

__all__ = ["MASK", "PAD", "SPECIAL_TOKENS", "UNK", "UnknownReport", "Vocabulary"]

log = logging.getLogger(__name__)

PAD, MASK, UNK = 0, 1, 2
SPECIAL_TOKENS = ("<pad>", "<mask>", "<unk>")
_TYPE_PREFIX, _TYPE_SUFFIX = "<type:", ">"
_FORMAT_VERSION = 1


class _UnkDict(dict):
    """A ``dict`` whose ``d[key]`` is ``UNK`` for a missing key (nothing is inserted).

    ``map(d.__getitem__, keys)`` then runs entirely in C: the encoding hot path.
    """

    def __missing__(self, key: str) -> int:
        return UNK


@dataclass
class UnknownReport:
    """Leaf tokens a vocabulary maps to ``UNK`` over a set of programs.

    Attributes:
        num_programs: programs looked at.
        num_leaves: leaf tokens in them.
        num_unknown: leaf tokens whose text is not in the vocabulary (they encode as ``UNK``).
        programs_with_unknown: programs with at least one such leaf.
        most_common: the most frequent unknown texts with their counts, most frequent first.
    """

    num_programs: int
    num_leaves: int
    num_unknown: int
    programs_with_unknown: int
    most_common: list[tuple[str, int]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """``num_unknown / num_leaves`` (0.0 when there are no leaves): the OOV rate."""
        return self.num_unknown / self.num_leaves if self.num_leaves else 0.0

    def __str__(self) -> str:
        return (
            f"{self.num_unknown} of {self.num_leaves} leaf tokens unknown -> UNK "
            f"({self.rate:.2%}; in {self.programs_with_unknown} of {self.num_programs} programs)"
            + (f"; most common: {self.most_common[:5]}" if self.most_common else "")
        )


def _ranked(counts: Counter, min_freq: int) -> list[str]:
    """Keys with count >= ``min_freq``, by count descending, then text."""
    return sorted((k for k, c in counts.items() if c >= min_freq), key=lambda k: (-counts[k], k))


class Vocabulary:
    """Maps node types and leaf texts to integer ids (see the module docstring for the layout).

    Args:
        node_types: interior node types (without the ``<type:...>`` wrapper), in id order.
        leaf_texts: leaf-token texts, in id order.

    Raises:
        ValueError: if a node type or a leaf text repeats.
    """

    def __init__(self, node_types: Iterable[str], leaf_texts: Iterable[str]) -> None:
        self.node_types = list(node_types)
        self.leaf_texts = list(leaf_texts)
        first_leaf = len(SPECIAL_TOKENS) + len(self.node_types)
        self._type_to_id = _UnkDict((t, len(SPECIAL_TOKENS) + i) for i, t in enumerate(self.node_types))
        self._leaf_to_id = _UnkDict((t, first_leaf + i) for i, t in enumerate(self.leaf_texts))
        if len(self._type_to_id) != len(self.node_types):
            raise ValueError("Vocabulary: repeated node type")
        if len(self._leaf_to_id) != len(self.leaf_texts):
            raise ValueError("Vocabulary: repeated leaf text")
        self._tokens = (
            list(SPECIAL_TOKENS)
            + [f"{_TYPE_PREFIX}{t}{_TYPE_SUFFIX}" for t in self.node_types]
            + self.leaf_texts
        )

    @classmethod
    def build(
        cls, graphs: Iterable[ProgramGraph], min_freq: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """Count node types and leaf texts over ``graphs`` (the training split only).

        Every interior node type seen is kept. Leaf texts seen at least ``min_freq`` times are
        kept, most frequent first (ties by text), so the order is deterministic.

        Args:
            graphs: program graphs of the training split.
            min_freq: minimum count for a leaf text to get its own id.
            max_size: cap on ``len(vocab)`` (specials and node types included); the rarest leaf
                texts are dropped. ``None``: no cap.

        Raises:
            ValueError: ``min_freq < 1``, or ``max_size`` leaves no room for the specials and the
                node types.
        """
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        type_counts: Counter = Counter()
        leaf_counts: Counter = Counter()
        for g in graphs:
            leaf_counts.update(g.leaf_texts)
            is_leaf = set(g.leaf_nodes)
            type_counts.update(t for i, t in enumerate(g.node_types) if i not in is_leaf)
        node_types = _ranked(type_counts, 1)
        leaf_texts = _ranked(leaf_counts, min_freq)
        if max_size is not None:
            room = max_size - len(SPECIAL_TOKENS) - len(node_types)
            if room < 0:
                raise ValueError(
                    f"max_size={max_size} is smaller than the {len(SPECIAL_TOKENS)} special "
                    f"tokens plus {len(node_types)} node types"
                )
            leaf_texts = leaf_texts[:room]
        return cls(node_types, leaf_texts)

    def __len__(self) -> int:
        """Number of ids (specials + node types + leaf texts)."""
        return len(self._tokens)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={len(self)}, node_types={len(self.node_types)}, "
            f"leaf_texts={len(self.leaf_texts)})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self.node_types == other.node_types and self.leaf_texts == other.leaf_texts

    def leaf_id(self, text: str) -> int:
        """Id of a leaf text; ``UNK`` when it is not in the vocabulary."""
        return self._leaf_to_id.get(text, UNK)

    def type_id(self, node_type: str) -> int:
        """Id of an interior node type (plain name, e.g. ``"call"``); ``UNK`` when unknown."""
        return self._type_to_id.get(node_type, UNK)

    def text(self, idx: int) -> str:
        """The token of an id: the leaf text, ``"<type:NAME>"`` for node types, or a special.

        Raises:
            IndexError: ``idx`` is outside ``[0, len(self))``.
        """
        if not 0 <= idx < len(self._tokens):
            raise IndexError(f"token id {idx} outside [0, {len(self._tokens)})")
        return self._tokens[idx]

    @functools.cached_property
    def _kind_type_ids(self) -> np.ndarray:
        """int64 ``[num kinds]``: :meth:`type_id` of the node type of each kind (:func:`kind_names`)."""
        return np.array([self._type_to_id.get(t, UNK) for t, _ in kind_names()], dtype=np.int64)

    def encode_graph(self, g: ProgramGraph) -> tuple[np.ndarray, int]:
        """Token id of every node of ``g``.

        Returns:
            ``ids``: int64 ``[num_nodes]``; leaves get :meth:`leaf_id` of their text, interior
            nodes :meth:`type_id` of their type. And the number of leaves mapped to ``UNK``.
        """
        # Node type ids by kind (a node's kind fixes its type): one gather through a per-kind table.
        # Leaf kinds map to whatever; their ids are overwritten below.
        ids = self._kind_type_ids[g.kind_index()]
        leaf_ids = list(map(self._leaf_to_id.__getitem__, g.leaf_texts))
        ids[g.array("leaf_nodes")] = leaf_ids
        return ids, leaf_ids.count(UNK)

    def encode_texts(self, texts: Iterable[str]) -> tuple[np.ndarray, int]:
        """Leaf ids of ``texts``: int64 ``[len(texts)]`` (``UNK`` when unknown) and the UNK count."""
        ids = list(map(self._leaf_to_id.__getitem__, texts))
        return np.array(ids, dtype=np.int64), ids.count(UNK)

    def unknown_report(self, graphs: Iterable[ProgramGraph], top: int = 10) -> UnknownReport:
        """How many leaf tokens of ``graphs`` this vocabulary maps to ``UNK``, and which texts.

        Use it when a vocabulary (e.g. a checkpoint's) is applied to programs it was not built
        from: unknown texts silently become ``UNK`` in :meth:`encode_graph`, this says how many.

        Args:
            graphs: the program graphs the vocabulary is applied to.
            top: how many of the most frequent unknown texts to list.

        Returns:
            The counts; :meth:`UnknownReport.rate` equals :meth:`oov_rate` of the same graphs.
        """
        unknown: Counter = Counter()
        total = programs = affected = 0
        known = self._leaf_to_id
        for g in graphs:
            missing = [t for t in g.leaf_texts if t not in known]
            programs += 1
            total += len(g.leaf_texts)
            affected += bool(missing)
            unknown.update(missing)
        return UnknownReport(
            num_programs=programs,
            num_leaves=total,
            num_unknown=sum(unknown.values()),
            programs_with_unknown=affected,
            most_common=unknown.most_common(top),
        )

    def apply(
        self, graphs: Sequence[ProgramGraph], label: str = "programs"
    ) -> tuple[list[np.ndarray], UnknownReport]:
        """Encode ``graphs`` with this vocabulary and log how many leaves became ``UNK``.

        Args:
            graphs: program graphs to encode (e.g. new programs given to a trained checkpoint).
            label: what ``graphs`` are, for the log line (``"test split"``).

        Returns:
            The :meth:`encode_graph` ids of each graph (int64 ``[num_nodes]``) and the
            :class:`UnknownReport`; the report is logged at INFO (WARNING when any leaf is
            unknown).
        """
        ids = [self.encode_graph(g)[0] for g in graphs]
        report = self.unknown_report(graphs)
        level = logging.WARNING if report.num_unknown else logging.INFO
        log.log(level, "vocabulary applied to %s: %s", label, report)
        return ids, report

    def oov_rate(self, graphs: Iterable[ProgramGraph]) -> float:
        """Fraction of leaf tokens of ``graphs`` that map to ``UNK`` (0.0 when there are none)."""
        total = unknown = 0
        for g in graphs:
            total += len(g.leaf_texts)
            unknown += sum(t not in self._leaf_to_id for t in g.leaf_texts)
        return unknown / total if total else 0.0

    def leaf_token_mask(self) -> np.ndarray:
        """Bool ``[len(self)]``: True for ids that are leaf texts (to restrict output logits)."""
        mask = np.zeros(len(self), dtype=bool)
        mask[len(SPECIAL_TOKENS) + len(self.node_types) :] = True
        return mask

    def to_dict(self) -> dict:
        """JSON-serialisable form; :meth:`from_dict` restores an equal vocabulary."""
        return {
            "version": _FORMAT_VERSION,
            "special_tokens": list(SPECIAL_TOKENS),
            "node_types": list(self.node_types),
            "leaf_texts": list(self.leaf_texts),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Vocabulary:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: unknown format version, different special tokens, or missing keys.
        """
        if d.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"vocabulary format version {d.get('version')!r}, expected {_FORMAT_VERSION}"
            )
        if tuple(d.get("special_tokens", ())) != SPECIAL_TOKENS:
            raise ValueError(
                f"vocabulary special tokens {d.get('special_tokens')!r}, expected {SPECIAL_TOKENS}"
            )
        missing = {"node_types", "leaf_texts"} - set(d)
        if missing:
            raise ValueError(f"vocabulary dict lacks {sorted(missing)}")
        return cls(d["node_types"], d["leaf_texts"])
