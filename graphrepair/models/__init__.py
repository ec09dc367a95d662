"""Refiner models (one per module), :func:`build_model` from a config, and the features each reads."""

from __future__ import annotations

import torch

from graphrepair.config import ExperimentConfig
from graphrepair.models.guided_unet import GuidedIterativeGraphUNet
from graphrepair.models.iterative_unet import IterativeGraphUNet
from graphrepair.variants import FeatureVariant
from graphrepair.vocab import SPECIAL_TOKENS, Vocabulary

__all__ = ["MODELS", "GuidedIterativeGraphUNet", "IterativeGraphUNet", "build_model",
           "model_variant"]

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
