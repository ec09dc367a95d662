"""Refiner models (one per module), :func:`build_model` from a config, and the features each reads."""

from __future__ import annotations

import torch

from graphrepair.config import ExperimentConfig
from graphrepair.features.variants import FeatureVariant
from graphrepair.graphs.vocab import SPECIAL_TOKENS, Vocabulary
from graphrepair.models.guided_unet import GuidedIterativeGraphUNet
from graphrepair.models.iterative_unet import IterativeGraphUNet
from harness.trainer import CheckpointError

__all__ = ["MODELS", "GuidedIterativeGraphUNet", "IterativeGraphUNet", "build_model",
           "load_weights", "model_variant"]

#: Model name (``model.name`` in a config) -> the node-feature variant it reads.
MODELS = {"guided_unet": FeatureVariant.FIVE, "iterative_unet": FeatureVariant.SIX}


def model_variant(name: str) -> FeatureVariant:
    """The feature variant model ``name`` reads (5 features + per-test records, or 6 features).

    Raises:
        ValueError: an unknown model name (lists the valid ones).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid: {sorted(MODELS)}")
    return MODELS[name]


def build_model(cfg: ExperimentConfig, vocab: Vocabulary) -> torch.nn.Module:
    """The model named by ``cfg.model.name``; leaf outputs are restricted to leaf texts (no specials).

    Raises:
        ValueError: an unknown model name (lists the valid ones).
    """
    output_mask = torch.as_tensor(vocab.leaf_token_mask(), dtype=torch.bool).clone()
    output_mask[: len(SPECIAL_TOKENS)] = False
    m = cfg.model
    model_variant(m.name)  # validates the name
    if m.name == "iterative_unet":
        return IterativeGraphUNet(
            len(vocab), hidden=m.hidden, depth=m.depth, gat_heads=m.gat_heads,
            pool_ratio=m.pool_ratio, dropout=m.dropout, output_mask=output_mask,
        )
    return GuidedIterativeGraphUNet(
        len(vocab), hidden=m.hidden, depth=m.depth, gat_heads=m.gat_heads,
        attention_heads=m.attention_heads, pool_ratio=m.pool_ratio, dropout=m.dropout,
        use_test_guidance=m.use_test_guidance, max_tests=cfg.data.max_tests,
        output_mask=output_mask,
    )


def load_weights(model: torch.nn.Module, state: dict, source: str) -> None:
    """Load a checkpoint's ``state`` into ``model``, or say plainly why it does not fit.

    Args:
        model: the model built from the checkpoint's own config and vocabulary.
        state: the checkpoint's ``"model"`` state dict.
        source: where the weights come from (shown in the error), e.g. the checkpoint path.

    Raises:
        harness.trainer.CheckpointError: the weights belong to another model, another vocabulary
            size or another version of this code; the message names the first differing tensors
            and what to do.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensors missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[:3]})")
        if shapes:
            parts.append(f"{len(shapes)} with other shapes (e.g. {shapes[:2]})")
        raise CheckpointError(
            f"the weights in {source} do not fit {model!r}: {'; '.join(parts)}. The checkpoint "
            "was written for another model or vocabulary, or by another version of this code "
            "(its run.json names the git commit): evaluate it with that commit, or retrain")
    model.load_state_dict(state)
