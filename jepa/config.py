"""Typed configuration of the jepa track (``configs/jepa/<exp>.yaml``, loaded by :mod:`harness.config`).

Sections: ``corpus`` (:class:`CorpusConfig`), ``teacher`` (:class:`TeacherConfig`), ``store``
(:class:`StoreConfig`) and ``phase0`` (:class:`Phase0Config`); the student sections come with
their issue. Example::

    from harness.config import load_experiment
    cfg = load_experiment(ExperimentConfig, "configs/jepa", "phase0", ["corpus.cap=500"])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from harness.config import ConfigError, check_range

__all__ = ["CorpusConfig", "ExperimentConfig", "Phase0Config", "StoreConfig", "TeacherConfig"]


@dataclass
class CorpusConfig:
    """Where functions come from and how they are filtered and split (:mod:`jepa.corpus`).

    Args:
        source: ``"installed"`` (the environment's distributions), ``"directory"`` (checkouts) or
            ``"pypi"`` (a pinned list of PyPI distributions, :mod:`jepa.corpus.pypi`).
        directory: the folder of checkouts; required when ``source`` is ``"directory"``.
        packages: the pinned list (``name==version`` entries), relative to ``configs/jepa/`` or
            absolute; required when ``source`` is ``"pypi"``.
        cap: most functions per repository (chosen by hash, :func:`jepa.corpus.sources.cap_repository`).
        minimum: repositories with fewer functions (before the cap) are dropped.
        min_body_lines: fewest non-blank, non-comment body lines.
        max_body_tokens: most whitespace-separated words in a body.
        fractions: train/val/test fractions of functions (sum 1).
        seed: seed of the repository split.
    """

    source: Literal["installed", "directory", "pypi"] = "installed"
    directory: str = ""
    packages: str = ""
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
        if self.source == "pypi" and not self.packages:
            raise ConfigError("packages must name a pinned list (e.g. corpus/pypi100.yaml, relative "
                              "to configs/jepa/) when source is 'pypi'")


@dataclass
class TeacherConfig:
    """The frozen teacher and how it reads functions (:mod:`jepa.teacher`).

    Args:
        model: a known teacher (:data:`jepa.teacher.known.KNOWN_TEACHERS`: ``all-minilm-l6-v2``,
            ``smollm2-135m-instruct``, ``qwen2.5-coder-3b``, ``qwen3-8b-base``), a local model
            directory, or a Hugging Face hub id in the local cache.
        layer: the layer read, ``hidden_states[layer]`` (0 = embeddings); ``None``: the known
            teacher's default (MiniLM 3 of 6).
        kind: ``auto`` (from the model type), ``causal`` or ``bidirectional``.
        dtype: ``auto`` (bf16 where the device computes it natively, else float32), ``bfloat16``,
            ``float16``, ``float32``.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``.
        gguf_file: a GGUF weight file inside a local ``model`` directory.
        sha256: the expected SHA-256 of the weight file of a local ``model`` directory.
        revision: a hub revision.
        max_signature_tokens: tokens kept of a signature.
        max_body_tokens: tokens kept of a body.
        batch_size: sequences per forward pass (length-sorted).
    """

    model: str = "all-minilm-l6-v2"
    layer: int | None = None
    kind: Literal["auto", "causal", "bidirectional"] = "auto"
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    device: str = "auto"
    gguf_file: str = ""
    sha256: str = ""
    revision: str = ""
    max_signature_tokens: int = 128
    max_body_tokens: int = 256
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.layer is not None:
            check_range("layer", self.layer, low=0)
        check_range("max_signature_tokens", self.max_signature_tokens, low=4)
        check_range("max_body_tokens", self.max_body_tokens, low=4)
        check_range("batch_size", self.batch_size, low=1)


@dataclass
class StoreConfig:
    """What the state store keeps (:mod:`jepa.store.states`).

    Args:
        tokens: keep per-token states (signature tokens; body tokens up to
            ``teacher.max_body_tokens``) besides the mean-pooled ones; students that read tokens
            need them.
        token_dtype: dtype of stored per-token states.
        shard_size: functions per shard file (the unit of resumption).
    """

    tokens: bool = False
    token_dtype: Literal["bfloat16", "float16"] = "bfloat16"
    shard_size: int = 512

    def __post_init__(self) -> None:
        check_range("shard_size", self.shard_size, low=1)


@dataclass
class Phase0Config:
    """Teacher validation, ``python -m jepa.phase0`` (the record's Phase 0).

    Args:
        layer_sample: functions (the first by function key, all splits) whose body states are read
            at every layer for layer selection (0.1).
        knn_k: neighbours per function in the KNN retrieval over all functions (0.2).
        examples: cross-repository pairs shown in the report (0.2).
        probe_sample: functions (first by function key) used by the linear probes (0.3); 0 = all.
        folds: repository-grouped cross-validation folds of the probes.
        bootstrap: resamples for the probes' 95% intervals (0 = none).
    """

    layer_sample: int = 2000
    knn_k: int = 10
    examples: int = 12
    probe_sample: int = 10000
    folds: int = 5
    bootstrap: int = 2000

    def __post_init__(self) -> None:
        check_range("layer_sample", self.layer_sample, low=2)
        check_range("knn_k", self.knn_k, low=1)
        check_range("examples", self.examples, low=0)
        check_range("probe_sample", self.probe_sample, low=0)
        check_range("folds", self.folds, low=2)
        check_range("bootstrap", self.bootstrap, low=0)


@dataclass
class ExperimentConfig:
    """One jepa experiment: a ``description`` and its sections."""

    exp: str = ""
    description: str = ""
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    phase0: Phase0Config = field(default_factory=Phase0Config)
