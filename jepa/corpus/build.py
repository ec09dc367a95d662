"""Filter, de-duplicate and split functions by repository (``DESIGN.md``, jepa *Corpus*).

Steps, in order (:func:`build_corpus`):

1. **Order.** Functions are sorted by (repository, path, start line, qualified name); every later
   "first" refers to this order, so the result does not depend on the order of the input.
2. **Filter.** A function is kept when its body has at least ``min_body_lines`` non-blank,
   non-comment lines (:func:`jepa.corpus.properties.body_lines`) and at most ``max_body_tokens``
   tokens, where tokens are the body's whitespace-separated words (``len(body.split())``; cheap,
   teacher-independent, roughly 1-2 subword tokens each).
3. **De-duplicate.** Bodies are compared after whitespace normalisation (every run of whitespace
   becomes one space, ends stripped); of identical bodies only the first is kept, across and within
   repositories, *before* the split, so no body appears in two splits (nor twice in one).
4. **Split by repository.** Repositories are ordered by SHA-256 of ``"{seed}:{name}"``; each in turn
   goes to the split whose function count is furthest below its target
   (``fraction × total functions``; ties go to the earlier split: train, val, test). A repository
   never straddles two splits. With few or very unequal repositories a split can miss its fraction
   or stay empty; :meth:`Corpus.summary` shows the result.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from jepa.corpus.extract import Function

__all__ = ["SPLITS", "Corpus", "build_corpus", "normalise_body", "split_repositories"]

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")


def normalise_body(body: str) -> str:
    """``body`` with every whitespace run replaced by one space and the ends stripped."""
    return " ".join(body.split())


@dataclass
class Corpus:
    """The de-duplicated functions and their repository split.

    Args:
        functions: kept functions, in (repository, path, start line, qualname) order.
        split_of: repository -> ``"train"`` / ``"val"`` / ``"test"``.
        filtered_short: functions removed for fewer than ``min_body_lines`` body lines.
        filtered_long: functions removed for more than ``max_body_tokens`` body tokens.
        duplicates_within: duplicates removed whose kept copy is in the same repository.
        duplicates_across: duplicates removed whose kept copy is in another repository.
    """

    functions: list[Function]
    split_of: dict[str, str]
    filtered_short: int = 0
    filtered_long: int = 0
    duplicates_within: int = 0
    duplicates_across: int = 0
    _by_split: dict[str, list[Function]] = field(default_factory=dict, repr=False)

    @property
    def duplicates_removed(self) -> int:
        """All duplicates removed (within + across repositories)."""
        return self.duplicates_within + self.duplicates_across

    def split(self, name: str) -> list[Function]:
        """The functions of split ``name`` (``"train"``, ``"val"`` or ``"test"``).

        Raises:
            ValueError: an unknown split name.
        """
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {list(SPLITS)}")
        if not self._by_split:
            self._by_split = {s: [] for s in SPLITS}
            for f in self.functions:
                self._by_split[self.split_of[f.repository]].append(f)
        return self._by_split[name]

    def counts(self) -> dict[str, dict[str, int]]:
        """Per split: ``{"repositories": n, "functions": m}``."""
        repos = Counter(self.split_of.values())
        return {s: {"repositories": repos.get(s, 0), "functions": len(self.split(s))} for s in SPLITS}

    def summary(self) -> dict:
        """Counts for a log line or a JSON report (:func:`harness.io.atomic_write_json`)."""
        return {"functions": len(self.functions), "repositories": len(self.split_of),
                "splits": self.counts(), "filtered_short": self.filtered_short,
                "filtered_long": self.filtered_long, "duplicates_removed": self.duplicates_removed,
                "duplicates_within": self.duplicates_within,
                "duplicates_across": self.duplicates_across}


def split_repositories(sizes: dict[str, int], fractions: Sequence[float] = (0.8, 0.1, 0.1),
                       seed: int = 0) -> dict[str, str]:
    """Assign each repository to a split, greedily toward the function fractions (module docstring, step 4).

    Args:
        sizes: repository -> number of functions.
        fractions: target fractions of functions for train, val, test; they must sum to 1.
        seed: changes the repository order, hence the assignment.

    Raises:
        ValueError: not three fractions, a negative one, or a sum other than 1.
    """
    if len(fractions) != len(SPLITS) or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {list(fractions)}")
    total = sum(sizes.values())
    order = sorted(sizes, key=lambda r: (hashlib.sha256(f"{seed}:{r}".encode()).hexdigest(), r))
    filled = [0] * len(SPLITS)
    assignment = {}
    for repo in order:
        deficits = [fractions[i] * total - filled[i] for i in range(len(SPLITS))]
        best = max(range(len(SPLITS)), key=lambda i: (deficits[i], -i))
        assignment[repo] = SPLITS[best]
        filled[best] += sizes[repo]
    return assignment


def build_corpus(functions: Iterable[Function], *, min_body_lines: int = 1,
                 max_body_tokens: int | None = None, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                 seed: int = 0) -> Corpus:
    """Filter, de-duplicate and split ``functions`` (module docstring, steps 1-4).

    Args:
        functions: extracted functions (e.g. :attr:`jepa.corpus.sources.SourceReport.functions`).
        min_body_lines: fewest non-blank, non-comment body lines kept.
        max_body_tokens: most whitespace-separated body words kept (``None`` = no limit).
        fractions: train/val/test fractions of functions.
        seed: seed of the repository order of the split.

    Returns:
        The :class:`Corpus`.
    """
    ordered = sorted(functions, key=lambda f: (f.repository, f.path, f.start_line, f.qualname))
    kept: list[Function] = []
    first_repo: dict[str, str] = {}
    corpus = Corpus(functions=kept, split_of={})
    for f in ordered:
        if f.properties.body_lines < min_body_lines:
            corpus.filtered_short += 1
            continue
        if max_body_tokens is not None and len(f.body.split()) > max_body_tokens:
            corpus.filtered_long += 1
            continue
        key = normalise_body(f.body)
        owner = first_repo.get(key)
        if owner is None:
            first_repo[key] = f.repository
            kept.append(f)
        elif owner == f.repository:
            corpus.duplicates_within += 1
        else:
            corpus.duplicates_across += 1
    sizes = Counter(f.repository for f in kept)
    corpus.split_of = split_repositories(dict(sizes), fractions, seed)
    logger.info("corpus: %s", corpus.summary())
    return corpus
