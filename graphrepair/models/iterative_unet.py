"""IterativeGraphUNet: a Graph U-Net refiner that reads test feedback as a per-node feature.

The model of Experiments 1, 2 and 4 of the Phase 1.5 record (``../shared/research/004_*.txt``):
the 6-feature variant of DESIGN.md, where the test outcome reaches the model as a per-node
``test_signal`` — the binary "covered by a failing test" signal (Exp 1, 2) or a Tarantula
suspiciousness score (Exp 4; Jones & Harrold, ASE 2005) — instead of the cross-attention of
:class:`graphrepair.models.guided_unet.GuidedIterativeGraphUNet`. Papers: Graph U-Nets (Gao & Ji,
ICML 2019, arXiv:1905.05178), Graph Attention Networks (Velickovic et al., ICLR 2018,
arXiv:1710.10903); the body is :class:`graphrepair.models.unet_body.GraphUNetBody`.

Node input::

    x0_v = E_tok(token_v) + E_prev(prev_token_v) + E_parent(parent_type_v) + E_depth(depth_v)
           + E_iter(iteration_v) + W_signal * test_signal_v
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from graphrepair.config import ExperimentConfig
from graphrepair.features.encoding import MAX_DEPTH, MAX_ITERATIONS, NUM_EDGE_TYPES
from graphrepair.features.variants import FeatureVariant
from graphrepair.models.registry import register
from graphrepair.models.unet_body import GraphUNetBody

__all__ = ["IterativeGraphUNet"]


@register
class IterativeGraphUNet(nn.Module):
    r"""Iterative refiner over program graphs with a per-node test signal (Exp 1, 2, 4).

    Args:
        vocab_size (int): size of the shared token/type vocabulary ``V``.
        hidden (int): hidden width ``H`` (default 256, as in the record).
        depth (int): number of top-k pooling levels (default 3).
        gat_heads (int): heads per GAT layer; ``hidden`` must be divisible by it.
        pool_ratio (float): fraction of nodes kept per pooling level.
        dropout (float): dropout probability.
        output_mask (Tensor, optional): bool ``[V]``; ids that may be predicted for a leaf
            (others get ``-inf`` logits).

    Shapes:
        - data.x: ``[N, 5]`` long: token_id, prev_token_id, parent_type, depth, iteration
          (:data:`graphrepair.features.variants.SIX_FEATURE_COLUMNS`)
        - data.test_signal: ``[N]`` float, the sixth feature (0 = no feedback)
        - data.edge_index: ``[2, E]``; data.edge_type: ``[E]``
        - data.leaf_mask: ``[N]`` bool
        - output: ``[L, V]`` logits for the ``L = leaf_mask.sum()`` leaves, in node order

    Raises:
        ValueError: if ``hidden`` is not divisible by ``gat_heads``.
    """

    name = "iterative_unet"
    variant = FeatureVariant.SIX

    @classmethod
    def from_config(cls, cfg: ExperimentConfig, vocab_size: int,
                    output_mask: Tensor) -> IterativeGraphUNet:
        """The model ``cfg.model`` describes; see the registry."""
        m = cfg.model
        return cls(vocab_size, hidden=m.hidden, depth=m.depth, gat_heads=m.gat_heads,
                   pool_ratio=m.pool_ratio, dropout=m.dropout, output_mask=output_mask)

    def __init__(
        self,
        vocab_size: int,
        hidden: int = 256,
        depth: int = 3,
        gat_heads: int = 4,
        pool_ratio: float = 0.5,
        dropout: float = 0.1,
        output_mask: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.vocab_size, self.hidden, self.depth = vocab_size, hidden, depth
        self.token_emb = nn.Embedding(vocab_size, hidden)
        self.prev_emb = nn.Embedding(vocab_size, hidden)
        self.parent_emb = nn.Embedding(vocab_size, hidden)
        self.depth_emb = nn.Embedding(MAX_DEPTH + 1, hidden)
        self.iter_emb = nn.Embedding(MAX_ITERATIONS + 1, hidden)
        self.signal_proj = nn.Linear(1, hidden)
        self.body = GraphUNetBody(hidden, depth, gat_heads, pool_ratio, dropout, NUM_EDGE_TYPES)
        self.head = nn.Linear(hidden, vocab_size)
        if output_mask is None:
            output_mask = torch.ones(vocab_size, dtype=torch.bool)
        self.register_buffer("output_bias", torch.where(output_mask, 0.0, float("-inf")))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every learnable parameter."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(vocab={self.vocab_size}, hidden={self.hidden}, "
                f"depth={self.depth}, pool_ratio={self.body.pool_ratio})")

    def forward(self, data) -> Tensor:
        """Return leaf logits ``[L, V]`` for a (batched) 6-feature ``Data``."""
        x_feat = data.x
        batch = data.batch if getattr(data, "batch", None) is not None \
            else x_feat.new_zeros(x_feat.size(0))
        signal = data.test_signal.to(self.signal_proj.weight.dtype).unsqueeze(-1)  # (N, 1)
        x0 = (
            self.token_emb(x_feat[:, 0])
            + self.prev_emb(x_feat[:, 1])
            + self.parent_emb(x_feat[:, 2])
            + self.depth_emb(x_feat[:, 3].clamp(max=MAX_DEPTH))
            + self.iter_emb(x_feat[:, 4].clamp(max=MAX_ITERATIONS))
            + self.signal_proj(signal)
        )  # (N, H)
        x = self.body(x0, data.edge_index, data.edge_type, batch)  # (N, H)
        return self.head(x[data.leaf_mask]) + self.output_bias  # (L, V)
