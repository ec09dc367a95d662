"""Refiner models (one per module) and :func:`build_model`, which builds one from a config."""

from __future__ import annotations

import torch

from graphrepair.config import ExperimentConfig
from graphrepair.models.guided_unet import GuidedIterativeGraphUNet
from graphrepair.vocab import SPECIAL_TOKENS, Vocabulary

__all__ = ["GuidedIterativeGraphUNet", "build_model"]


def build_model(cfg: ExperimentConfig, vocab: Vocabulary) -> torch.nn.Module:
    """The model named by ``cfg.model.name``; leaf outputs are restricted to leaf texts (no specials).

    Raises:
        ValueError: an unknown model name (lists the valid ones).
    """
    output_mask = torch.as_tensor(vocab.leaf_token_mask(), dtype=torch.bool).clone()
    output_mask[: len(SPECIAL_TOKENS)] = False
    m = cfg.model
    if m.name == "guided_unet":
        return GuidedIterativeGraphUNet(
            len(vocab), hidden=m.hidden, depth=m.depth, gat_heads=m.gat_heads,
            attention_heads=m.attention_heads, pool_ratio=m.pool_ratio, dropout=m.dropout,
            use_test_guidance=m.use_test_guidance, max_tests=cfg.data.max_tests,
            output_mask=output_mask,
        )
    raise ValueError(f"unknown model {m.name!r}; valid: ['guided_unet']")
