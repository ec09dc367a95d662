"""Typed configuration of the jepa track (``configs/jepa/<exp>.yaml``, loaded by :mod:`harness.config`).

Only the corpus section exists so far; the teacher, store and student sections come with their
issues. Example::

    from harness.config import load_experiment
    cfg = load_experiment(ExperimentConfig, "configs/jepa", "phase0", ["corpus.cap=500"])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from harness.config import ConfigError, check_range

__all__ = ["CorpusConfig", "ExperimentConfig"]


@dataclass
class CorpusConfig:
    """Where functions come from and how they are filtered and split (:mod:`jepa.corpus`).

    Args:
        source: ``"installed"`` (the environment's distributions) or ``"directory"`` (checkouts).
        directory: the folder of checkouts; required when ``source`` is ``"directory"``.
        cap: most functions per repository (chosen by hash, :func:`jepa.corpus.sources.cap_repository`).
        minimum: repositories with fewer functions (before the cap) are dropped.
        min_body_lines: fewest non-blank, non-comment body lines.
        max_body_tokens: most whitespace-separated words in a body.
        fractions: train/val/test fractions of functions (sum 1).
        seed: seed of the repository split.
    """

    source: Literal["installed", "directory"] = "installed"
    directory: str = ""
    cap: int = 2000
    minimum: int = 50
    min_body_lines: int = 2
    max_body_tokens: int = 512
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0

    def __post_init__(self) -> None:
        check_range("cap", self.cap, low=1)
        check_range("minimum", self.minimum, low=0)
        check_range("min_body_lines", self.min_body_lines, low=0)
        check_range("max_body_tokens", self.max_body_tokens, low=1)
        for name, value in zip(("train", "val", "test"), self.fractions):
            check_range(f"fractions.{name}", value, low=0, high=1)
        if len(self.fractions) != 3 or abs(sum(self.fractions) - 1) > 1e-6:
            raise ConfigError(f"fractions must be three numbers (train, val, test) summing to 1, "
                              f"got {list(self.fractions)}")
        if self.source == "directory" and not self.directory:
            raise ConfigError("directory must name a folder of checkouts when source is 'directory'")


@dataclass
class ExperimentConfig:
    """One jepa experiment: a ``description`` and its sections (so far: ``corpus``)."""

    exp: str = ""
    description: str = ""
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
