"""Typed configuration of the jepa track (``configs/jepa/<exp>.yaml``, loaded by :mod:`harness.config`).

Sections: ``corpus`` (:class:`CorpusConfig`), ``teacher`` (:class:`TeacherConfig`), ``store``
(:class:`StoreConfig`), ``phase0`` (:class:`Phase0Config`), ``student`` (:class:`StudentConfig`),
``loss`` (:class:`LossConfig`) and ``train`` (:class:`TrainConfig`). Example::

    from harness.config import load_experiment
    cfg = load_experiment(ExperimentConfig, "configs/jepa", "phase0", ["corpus.cap=500"])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from harness.config import ConfigError, check_range

__all__ = ["CorpusConfig", "ExperimentConfig", "LossConfig", "Phase0Config", "StoreConfig",
           "StudentConfig", "TeacherConfig", "TrainConfig"]


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
        tokens: per-token states kept besides the mean-pooled ones: ``none``, ``signature`` (the
            inputs of token students, 1.2 onwards) or ``all`` (also body tokens up to
            ``teacher.max_body_tokens``, the token-level targets of 2.2).
        token_dtype: dtype of stored per-token states.
        shard_size: functions per shard file (the unit of resumption).
    """

    tokens: Literal["none", "signature", "all"] = "none"
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
class StudentConfig:
    """The student (:mod:`jepa.students`).

    Args:
        name: ``mlp`` (1.1), ``sig_predictor`` (1.2–1.4, 2.1, 3.0) or ``sig_predictor_v2`` (2.2).
        d_model, layers, heads, ffn, dropout: the transformer encoder (not the MLP).
        input_norm: LayerNorm on the teacher states before the input projection (3.0).
        decoder_blocks: cross-attention blocks of the body-token decoder (``sig_predictor_v2``).
    """

    name: Literal["mlp", "sig_predictor", "sig_predictor_v2"] = "sig_predictor"
    d_model: int = 512
    layers: int = 2
    heads: int = 8
    ffn: int = 2048
    dropout: float = 0.1
    input_norm: bool = False
    decoder_blocks: int = 2

    def __post_init__(self) -> None:
        for name in ("d_model", "layers", "heads", "ffn", "decoder_blocks"):
            check_range(name, getattr(self, name), low=1)
        check_range("dropout", self.dropout, low=0, high=1, high_open=True)


@dataclass
class LossConfig:
    """The training objective (:mod:`jepa.losses`).

    Args:
        kind: ``smooth_l1`` (1.1–1.3) or ``infonce`` (1.4 onwards).
        temperature: InfoNCE's initial temperature τ₀ (learnable, clamped to
            ``[min_temperature, max_temperature]``).
        token_weight: λ of the token-level SmoothL1 beside InfoNCE (2.2: 0.1; 0 = none).
        token_positions: the first body positions whose states the decoder predicts (2.2: up to
            256, ``teacher.max_body_tokens``; fewer is cheaper).
        hard_negatives: teacher-space neighbours from other repositories appended to each
            anchor's denominator (2.1; 0 = none).
        hard_threshold: cosine above which a neighbour is preferred as a hard negative.
        hard_warmup_epochs: epochs of plain InfoNCE before hard negatives are added.
    """

    kind: Literal["smooth_l1", "infonce"] = "infonce"
    temperature: float = 0.07
    min_temperature: float = 0.01
    max_temperature: float = 1.0
    token_weight: float = 0.0
    token_positions: int = 256
    hard_negatives: int = 0
    hard_threshold: float = 0.5
    hard_warmup_epochs: int = 0

    def __post_init__(self) -> None:
        check_range("temperature", self.temperature, low=self.min_temperature, high=self.max_temperature)
        check_range("min_temperature", self.min_temperature, low=0, low_open=True)
        check_range("token_weight", self.token_weight, low=0)
        check_range("token_positions", self.token_positions, low=1)
        check_range("hard_negatives", self.hard_negatives, low=0)
        check_range("hard_threshold", self.hard_threshold, low=-1, high=1)
        check_range("hard_warmup_epochs", self.hard_warmup_epochs, low=0)


@dataclass
class TrainConfig:
    """Optimisation and evaluation of a student (the record's settings by default).

    Args:
        epochs, batch_size (per rank), lr, weight_decay, grad_clip: AdamW training.
        warmup_epochs: linear warm-up, then cosine to ``min_lr_ratio × lr``.
        patience: epochs without a better ``val rank@10`` before stopping (0 = never).
        repositories: train on the functions of this many training repositories (the largest
            first; 1.2 used 9); 0 = all.
        max_train: at most this many training functions per epoch (first by function key;
            CPU presets); 0 = all.
        device: ``auto``, ``cpu``, ``cuda``.
        seed: seed of the weights and the batch order.
        eval_chunk: queries scored at once by the exact ranking.
        bootstrap: resamples of the 95 % intervals of the final report.
        bf16: bf16 autocast of the training step on CUDA and on a CPU that computes bf16
            natively (AVX512-BF16/AMX; :func:`harness.precision.bf16_supported`). The InfoNCE
            logits and the losses stay float32.
        group_by_length: batch signatures of similar token counts together (the transformer
            students pad a batch to its longest signature): each epoch's shuffled order is cut
            into windows of 50 global batches, each window sorted by length and cut into batches,
            and the batches shuffled (``group_by_length`` of Hugging Face's Trainer). Less padding,
            but a batch's in-batch negatives then have similar lengths. Off in the record's
            settings.
    """

    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    warmup_epochs: int = 5
    min_lr_ratio: float = 0.01
    patience: int = 15
    repositories: int = 0
    max_train: int = 0
    device: str = "auto"
    seed: int = 0
    eval_chunk: int = 512
    bootstrap: int = 2000
    bf16: bool = True
    group_by_length: bool = False

    def __post_init__(self) -> None:
        check_range("epochs", self.epochs, low=1)
        check_range("batch_size", self.batch_size, low=2)
        check_range("lr", self.lr, low=0, low_open=True)
        check_range("weight_decay", self.weight_decay, low=0)
        check_range("grad_clip", self.grad_clip, low=0)
        check_range("warmup_epochs", self.warmup_epochs, low=0)
        check_range("min_lr_ratio", self.min_lr_ratio, low=0, high=1)
        check_range("patience", self.patience, low=0)
        check_range("repositories", self.repositories, low=0)
        check_range("max_train", self.max_train, low=0)
        check_range("eval_chunk", self.eval_chunk, low=1)
        check_range("bootstrap", self.bootstrap, low=0)


@dataclass
class ExperimentConfig:
    """One jepa experiment: a ``description``, its sections, and ``data``: the name of its data
    directory under ``$JEPA_DATA`` (experiments on the same corpus share one; default the id)."""

    exp: str = ""
    description: str = ""
    data: str = ""
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    phase0: Phase0Config = field(default_factory=Phase0Config)
    student: StudentConfig = field(default_factory=StudentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run_root: str = "runs"
