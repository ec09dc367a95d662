"""The Graph U-Net body shared by the refiners: GAT layers around top-k pooling and unpooling.

Papers: Graph U-Nets (Gao & Ji, ICML 2019, arXiv:1905.05178) for the gPool (top-k) / gUnpool
encoder-decoder with skip connections; Graph Attention Networks (Velickovic et al., ICLR 2018,
arXiv:1710.10903) for the message passing, with the edge type as an edge feature.

Level ``l`` of the encoder pools the graph with :class:`torch_geometric.nn.TopKPooling` (ratio
``pool_ratio``) and applies a GAT layer; the decoder scatters the pooled nodes back
(``up[perm] = x``), adds the skip connection of the same level and applies another GAT layer. Each
of the ``2 * depth + 1`` GAT layers is ``x <- LayerNorm(x + Dropout(ReLU(GAT(x))))``, followed by an
optional per-layer hook (the cross-attention of :class:`GuidedIterativeGraphUNet`). PyG's
adjacency augmentation (``A^2`` in :class:`torch_geometric.nn.GraphUNet`) is deliberately not used:
DESIGN.md measured it as ~4x per training step on CPU for ~300-node graphs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATConv, TopKPooling

__all__ = ["GraphUNetBody"]

#: ``hook(x [N, H], batch [N], layer) -> x [N, H]`` applied after every GAT layer.
LayerHook = Callable[[Tensor, Tensor, int], Tensor]


class GraphUNetBody(nn.Module):
    """Encoder-decoder of GAT layers around top-k pooling (see the module docstring).

    Args:
        hidden (int): node width ``H``; must be divisible by ``gat_heads``.
        depth (int): number of pooling levels (the record: 3).
        gat_heads (int): heads per GAT layer (their outputs are concatenated to ``H``).
        pool_ratio (float): fraction of nodes kept by each pooling level.
        dropout (float): dropout probability (GAT attention and layer outputs).
        num_edge_types (int): number of edge types; each gets a learned ``H // 4`` edge feature.

    Shapes:
        - x: ``[N, H]`` initial node states
        - edge_index: ``[2, E]``; edge_type: ``[E]`` long
        - batch: ``[N]`` graph index of each node
        - output: ``[N, H]`` node states at the input resolution

    Raises:
        ValueError: if ``hidden`` is not divisible by ``gat_heads``.
    """

    def __init__(self, hidden: int, depth: int, gat_heads: int, pool_ratio: float,
                 dropout: float, num_edge_types: int) -> None:
        super().__init__()
        if hidden % gat_heads:
            raise ValueError(f"hidden={hidden} must be divisible by gat_heads={gat_heads}")
        self.hidden, self.depth, self.pool_ratio = hidden, depth, pool_ratio
        self.edge_emb = nn.Embedding(num_edge_types, hidden // 4)

        def gat() -> GATConv:
            return GATConv(hidden, hidden // gat_heads, heads=gat_heads, edge_dim=hidden // 4,
                           dropout=dropout, add_self_loops=True)

        self.down_convs = nn.ModuleList([gat() for _ in range(depth + 1)])
        self.pools = nn.ModuleList([TopKPooling(hidden, ratio=pool_ratio) for _ in range(depth)])
        self.up_convs = nn.ModuleList([gat() for _ in range(depth)])
        self.norms = nn.ModuleList([nn.LayerNorm(hidden) for _ in range(self.num_layers)])
        self.dropout = nn.Dropout(dropout)

    @property
    def num_layers(self) -> int:
        """Number of GAT layers (and hook calls): ``2 * depth + 1``."""
        return 2 * self.depth + 1

    def reset_parameters(self) -> None:
        """Re-initialise every learnable parameter."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(hidden={self.hidden}, depth={self.depth}, "
                f"pool_ratio={self.pool_ratio})")

    def forward(self, x: Tensor, edge_index: Tensor, edge_type: Tensor, batch: Tensor,
                hook: LayerHook | None = None) -> Tensor:
        """Node states ``[N, H]`` after the encoder and decoder (``hook`` after every layer)."""
        layer = 0

        def block(conv: GATConv, x: Tensor, edge_index: Tensor, edge_attr: Tensor,
                  batch: Tensor) -> Tensor:
            nonlocal layer
            x = self.norms[layer](x + self.dropout(torch.relu(conv(x, edge_index, edge_attr))))
            if hook is not None:
                x = hook(x, batch, layer)
            layer += 1
            return x

        edge_attr = self.edge_emb(edge_type)  # (E, H/4)
        x = block(self.down_convs[0], x, edge_index, edge_attr, batch)
        skips = []
        for level in range(self.depth):
            skip = (x, edge_index, edge_attr, batch)
            x, edge_index, edge_attr, batch, perm, _ = self.pools[level](
                x, edge_index, edge_attr, batch)
            skips.append((*skip, perm))
            x = block(self.down_convs[level + 1], x, edge_index, edge_attr, batch)
        for level in reversed(range(self.depth)):
            skip_x, edge_index, edge_attr, batch, perm = skips[level]
            up = torch.zeros_like(skip_x)
            up[perm] = x  # unpool: pooled nodes go back to their positions
            x = block(self.up_convs[level], skip_x + up, edge_index, edge_attr, batch)
        return x
