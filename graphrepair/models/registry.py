"""The model registry: every refiner declares its name and feature variant; models are built here.

A refiner class registers itself with :func:`register` and provides::

    name: str                          # model.name in a config, e.g. "guided_unet"
    variant: FeatureVariant            # the node features it reads (5 + per-test records, or 6)
    @classmethod
    def from_config(cls, cfg: ExperimentConfig, vocab_size: int, output_mask: Tensor) -> Module

:func:`build_model` (a new model for a config and vocabulary) and :func:`from_checkpoint` (a trained
model with its configuration and vocabulary) are the only ways in. Every module of
:mod:`graphrepair.models` is imported on the first lookup, so adding a model is one new file in
``graphrepair/models/`` and one config in ``configs/graphrepair/``.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from graphrepair.config import ExperimentConfig
from graphrepair.features.variants import FeatureVariant
from graphrepair.graphs.vocab import SPECIAL_TOKENS, Vocabulary
from harness.checkpoint import CheckpointError, load_model
from harness.config import ConfigError, apply_overrides

__all__ = ["LoadedRefiner", "build_model", "from_checkpoint", "model_class", "model_names",
           "model_variant", "register"]

_MODELS: dict[str, type[torch.nn.Module]] = {}
_discovered = False


def register(cls: type[torch.nn.Module]) -> type[torch.nn.Module]:
    """Class decorator: make ``cls`` available as ``model.name = cls.name``.

    Raises:
        TypeError: ``cls`` lacks ``name``, ``variant`` or ``from_config``.
        ValueError: another class already registered that name.
    """
    for attr in ("name", "variant", "from_config"):
        if not hasattr(cls, attr):
            raise TypeError(f"{cls.__name__} cannot be registered: it has no {attr!r}")
    if not isinstance(cls.variant, FeatureVariant):
        raise TypeError(f"{cls.__name__}.variant must be a FeatureVariant, got {cls.variant!r}")
    other = _MODELS.get(cls.name)
    if other is not None and other.__qualname__ != cls.__qualname__:
        raise ValueError(f"model name {cls.name!r} is taken by {other.__qualname__}")
    _MODELS[cls.name] = cls
    return cls


def _discover() -> None:
    """Import every module of :mod:`graphrepair.models` once (each registers its models)."""
    global _discovered
    if _discovered:
        return
    package = Path(__file__).resolve().parent
    for info in pkgutil.iter_modules([str(package)]):
        importlib.import_module(f"graphrepair.models.{info.name}")
    _discovered = True


def model_names() -> list[str]:
    """Registered model names, sorted."""
    _discover()
    return sorted(_MODELS)


def model_class(name: str) -> type[torch.nn.Module]:
    """The class registered as ``name``.

    Raises:
        ConfigError: an unknown name (the message lists the registered ones).
    """
    _discover()
    if name not in _MODELS:
        raise ConfigError(f"model.name: unknown model {name!r}; registered: {model_names()}")
    return _MODELS[name]


def model_variant(name: str) -> FeatureVariant:
    """The feature variant model ``name`` reads. Raises ConfigError for an unknown name."""
    return model_class(name).variant


def build_model(cfg: ExperimentConfig, vocab: Vocabulary) -> torch.nn.Module:
    """A new model ``cfg.model.name`` for ``vocab``; its leaf outputs exclude the special tokens.

    Raises:
        ConfigError: an unknown model name.
    """
    output_mask = torch.as_tensor(vocab.leaf_token_mask(), dtype=torch.bool).clone()  # (V,)
    output_mask[: len(SPECIAL_TOKENS)] = False
    return model_class(cfg.model.name).from_config(cfg, len(vocab), output_mask)


@dataclass
class LoadedRefiner:
    """A trained refiner as :func:`from_checkpoint` returns it.

    Attributes:
        path: the checkpoint file.
        config: the experiment configuration it was trained with.
        vocab: its vocabulary.
        model: the model with its weights, in ``eval()`` mode, on the requested device.
        checkpoint: the whole checkpoint dict (epoch, step, metrics, ...).
    """

    path: Path
    config: ExperimentConfig
    vocab: Vocabulary
    model: torch.nn.Module
    checkpoint: dict[str, Any]


def from_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu",
                    overrides: Sequence[str] = ()) -> LoadedRefiner:
    """Load a checkpoint of ``graphrepair.train``: configuration, vocabulary and model with weights.

    Args:
        path: the checkpoint file; device: where the model goes.
        overrides: ``KEY=VALUE`` overrides of the saved configuration's ``decoding`` section,
            applied before the model is built (``decoding.copy_slots`` sizes the pointer model's
            output; :func:`harness.config.apply_overrides`).

    Raises:
        harness.config.ConfigError: an override outside ``decoding``, or a bad key or value.
        FileNotFoundError: no such file.
        harness.checkpoint.CheckpointError: a damaged file (SHA-256 mismatch, truncated), not a
            graphrepair checkpoint (no vocabulary), or weights that do not fit the model its
            configuration describes (the message names the tensors).
    """
    vocabs: list[Vocabulary] = []
    configs: list[ExperimentConfig] = []

    def build(cfg: ExperimentConfig, extra: dict[str, Any]) -> torch.nn.Module:
        if "vocab" not in extra:
            raise CheckpointError(f"{path} holds no vocabulary: it is not a checkpoint of "
                                  "graphrepair.train")
        vocabs.append(Vocabulary.from_dict(extra["vocab"]))
        configs.append(apply_overrides(cfg, overrides, sections=("decoding",)))
        try:
            return build_model(configs[0], vocabs[0])
        except ConfigError as exc:
            raise CheckpointError(f"{path}: {exc}") from exc

    loaded = load_model(path, ExperimentConfig, build, device=device)
    return LoadedRefiner(loaded.path, configs[0], vocabs[0], loaded.model, loaded.checkpoint)
