"""GuidedIterativeGraphUNet: a Graph U-Net of GAT layers whose nodes cross-attend to per-test feedback.

Papers: Graph U-Nets (Gao & Ji, ICML 2019, arXiv:1905.05178) for the top-k pool / unpool
encoder-decoder; Graph Attention Networks (Velickovic et al., ICLR 2018, arXiv:1710.10903) for the
message passing; scaled dot-product multi-head attention (Vaswani et al., 2017) for the node -> test
cross-attention of the Phase 1.5 record's Experiment 3 (``../shared/research/004_*.txt``).

The graph part is :class:`graphrepair.models.unet_body.GraphUNetBody` (top-k pool / unpool
encoder-decoder of GAT layers). After *every* GAT layer the nodes of each graph attend to the
embeddings of that graph's tests::

    h_v <- LayerNorm(h_v + MHA(q = h_v, k = v = [null; e_1 .. e_T]))

where ``e_t = MLP(Emb_index(t) + Emb_outcome(o_t) + mean_{v in trace(t)} x0_v)`` and ``null`` is a
learned token that stands for "no feedback" (iteration 0 under the Exp 3c rule, programs without
tests), so attention never sees an empty key set.

With ``failure_details`` the records also say what each failure said
(:mod:`graphrepair.feedback.failures`): the exception type ``x_t``, the nodes ``raise(t)`` on the
program line the exception was raised at, and a failed comparison's value types ``a_t``
(actual) and ``b_t`` (expected)::

    e_t = MLP(... + Emb_exc(x_t) + Emb_actual(a_t) + Emb_expected(b_t)
              + W_raise · mean_{v in raise(t)} x0_v)
    x0_v <- x0_v + r_v · w_raised,   r_v = |{t : v in raise(t)}| / T   (the "raised here" mark)

(``W_raise`` and ``w_raised`` without bias: a test that names no program line, and a node on no
raising line, add nothing.)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter, to_dense_batch

from graphrepair.config import ExperimentConfig
from graphrepair.features.encoding import (
    MAX_DEPTH,
    MAX_ITERATIONS,
    MAX_SIBLING,
    NUM_EDGE_TYPES,
    NUM_OUTCOMES,
)
from graphrepair.features.variants import FeatureVariant
from graphrepair.feedback.failures import EXCEPTION_TYPES, VALUE_TYPES
from graphrepair.models.registry import register
from graphrepair.models.unet_body import GraphUNetBody

__all__ = ["GuidedIterativeGraphUNet"]


class _FeedbackCrossAttention(nn.Module):
    """Nodes attend to their own graph's test embeddings (plus a learned null token).

    Shapes:
        x: [N, H] node states; batch: [N] graph of each node;
        tests: [B, T+1, H] dense test embeddings (position 0 = null token);
        test_mask: [B, T+1] True where a key is padding.
    """

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, batch: Tensor, tests: Tensor, test_mask: Tensor) -> Tensor:
        dense, node_mask = to_dense_batch(x, batch, batch_size=tests.size(0))  # (B, Nmax, H)
        out, _ = self.attn(dense, tests, tests, key_padding_mask=test_mask, need_weights=False)
        return self.norm(x + self.dropout(out[node_mask]))  # back to (N, H)


@register
class GuidedIterativeGraphUNet(nn.Module):
    r"""Iterative refiner over program graphs with cross-attention to test feedback (Exp 3/3b/3c/3d).

    Input is the 5-feature variant of DESIGN.md (token_id, prev_token_id, depth, sibling_index,
    iteration) plus per-test feedback records; output is one row of logits over the vocabulary per
    *leaf* node.

    Args:
        vocab_size (int): size of the shared token/type vocabulary ``V``.
        hidden (int): hidden width ``H`` (default 256, as in the record).
        depth (int): number of top-k pooling levels (default 3).
        gat_heads (int): heads per GAT layer; ``hidden`` must be divisible by it.
        attention_heads (int): heads of the node -> test cross-attention (default 4).
        pool_ratio (float): fraction of nodes kept per pooling level.
        dropout (float): dropout probability.
        use_test_guidance (bool): ``False`` builds no feedback path at all (Exp 3b ablation).
        max_tests (int): test indices >= this share the last index embedding.
        failure_details (bool): embed what each failure said (exception type, raising line,
            value types; module docstring). Default ``False``: the model of the existing
            experiments, whose checkpoints hold no such weights.
        output_mask (Tensor, optional): bool ``[V]``; ids that may be predicted for a leaf
            (others get ``-inf`` logits).

    Shapes:
        - data.x: ``[N, 5]`` long
        - data.edge_index: ``[2, E]``; data.edge_type: ``[E]``
        - data.leaf_mask: ``[N]`` bool
        - data.test_outcome / data.test_position: ``[T]`` long; data.test_outcome_batch: ``[T]``
        - data.trace_index: ``[2, C]`` (test, node) pairs
        - data.test_exception / data.test_actual_type / data.test_expected_type: ``[T]`` long and
          data.raise_index: ``[2, R]`` (test, node) pairs (read with ``failure_details`` only)
        - output: ``[L, V]`` logits for the ``L = leaf_mask.sum()`` leaves, in node order
    """

    name = "guided_unet"
    variant = FeatureVariant.FIVE

    @classmethod
    def from_config(cls, cfg: ExperimentConfig, vocab_size: int,
                    output_mask: Tensor) -> GuidedIterativeGraphUNet:
        """The model ``cfg.model`` describes (``max_tests`` from ``cfg.data``); see the registry."""
        m = cfg.model
        return cls(vocab_size, hidden=m.hidden, depth=m.depth, gat_heads=m.gat_heads,
                   attention_heads=m.attention_heads, pool_ratio=m.pool_ratio, dropout=m.dropout,
                   use_test_guidance=m.use_test_guidance, max_tests=cfg.data.max_tests,
                   failure_details=m.failure_details, output_mask=output_mask)

    def __init__(
        self,
        vocab_size: int,
        hidden: int = 256,
        depth: int = 3,
        gat_heads: int = 4,
        attention_heads: int = 4,
        pool_ratio: float = 0.5,
        dropout: float = 0.1,
        use_test_guidance: bool = True,
        max_tests: int = 100,
        failure_details: bool = False,
        output_mask: Tensor | None = None,
    ) -> None:
        super().__init__()
        if hidden % gat_heads or hidden % attention_heads:
            raise ValueError(
                f"hidden={hidden} must be divisible by gat_heads={gat_heads} and "
                f"attention_heads={attention_heads}"
            )
        self.vocab_size, self.hidden, self.depth = vocab_size, hidden, depth
        self.pool_ratio, self.use_test_guidance, self.max_tests = pool_ratio, use_test_guidance, max_tests
        self.failure_details = failure_details and use_test_guidance
        self.token_emb = nn.Embedding(vocab_size, hidden)
        self.prev_emb = nn.Embedding(vocab_size, hidden)
        self.depth_emb = nn.Embedding(MAX_DEPTH + 1, hidden)
        self.sibling_emb = nn.Embedding(MAX_SIBLING + 1, hidden)
        self.iter_emb = nn.Embedding(MAX_ITERATIONS + 1, hidden)
        self.body = GraphUNetBody(hidden, depth, gat_heads, pool_ratio, dropout, NUM_EDGE_TYPES)
        n_layers = self.body.num_layers
        if use_test_guidance:
            self.test_index_emb = nn.Embedding(max_tests, hidden)
            self.test_outcome_emb = nn.Embedding(NUM_OUTCOMES, hidden)
            self.test_mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))
            self.null_test = nn.Parameter(torch.zeros(1, 1, hidden))
            self.cross = nn.ModuleList(
                [_FeedbackCrossAttention(hidden, attention_heads, dropout) for _ in range(n_layers)]
            )
        if self.failure_details:
            self.exception_emb = nn.Embedding(len(EXCEPTION_TYPES), hidden)
            self.actual_type_emb = nn.Embedding(len(VALUE_TYPES), hidden)
            self.expected_type_emb = nn.Embedding(len(VALUE_TYPES), hidden)
            self.raise_proj = nn.Linear(hidden, hidden, bias=False)
            self.raised_mark = nn.Linear(1, hidden, bias=False)
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
        if self.use_test_guidance:
            nn.init.normal_(self.null_test, std=0.02)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(vocab={self.vocab_size}, hidden={self.hidden}, "
            f"depth={self.depth}, pool_ratio={self.pool_ratio}, "
            f"test_guidance={self.use_test_guidance}, failure_details={self.failure_details})"
        )

    def _encode_tests(self, data, x0: Tensor, num_graphs: int) -> tuple[Tensor, Tensor]:
        """Dense test embeddings ``[B, T+1, H]`` (null token first) and their padding mask ``[B, T+1]``."""
        n_tests = data.test_outcome.numel()
        if self.failure_details and "raise_index" not in data:
            raise ValueError("this model reads failure details (failure_details=True), but the "
                             "input has no raise_index / test_exception: build it with "
                             "graphrepair.features.encoding.make_data")
        if n_tests:
            test_idx, node_idx = data.trace_index  # (C,), (C,)
            trace = scatter(x0[node_idx], test_idx, dim=0, dim_size=n_tests, reduce="mean")
            emb = (
                self.test_index_emb(data.test_position.clamp(max=self.max_tests - 1))
                + self.test_outcome_emb(data.test_outcome)
                + trace
            )
            if self.failure_details:
                raise_test, raise_node = data.raise_index  # (R,), (R,)
                raised = scatter(x0[raise_node], raise_test, dim=0, dim_size=n_tests,
                                 reduce="mean")  # (T, H); 0 for a test raising on no line
                emb = (emb + self.exception_emb(data.test_exception)
                       + self.actual_type_emb(data.test_actual_type)
                       + self.expected_type_emb(data.test_expected_type)
                       + self.raise_proj(raised))
            emb = self.test_mlp(emb)  # (T, H)
            dense, mask = to_dense_batch(emb, data.test_outcome_batch, batch_size=num_graphs)
        else:
            dense = x0.new_zeros(num_graphs, 0, self.hidden)
            mask = torch.zeros(num_graphs, 0, dtype=torch.bool, device=x0.device)
        null = self.null_test.expand(num_graphs, 1, self.hidden)
        keys = torch.cat([null, dense], dim=1)  # (B, T+1, H)
        pad = torch.cat([torch.zeros(num_graphs, 1, dtype=torch.bool, device=x0.device), ~mask], 1)
        return keys, pad

    @staticmethod
    def _raised_fraction(data, batch: Tensor, num_graphs: int) -> Tensor:
        """``[N, 1]``: per node, the fraction of its graph's tests that raised on its line."""
        n = batch.numel()
        _, node_idx = data.raise_index  # (R,): one entry per (test, node on its raising line)
        count = torch.zeros(n, device=batch.device).index_add_(
            0, node_idx, torch.ones_like(node_idx, dtype=torch.float32))  # (N,)
        tests = torch.bincount(data.test_outcome_batch, minlength=num_graphs) \
            if data.test_outcome.numel() else torch.zeros(num_graphs, dtype=torch.long,
                                                          device=batch.device)  # (B,)
        return (count / tests[batch].clamp(min=1)).unsqueeze(-1)  # (N, 1)

    def forward(self, data) -> Tensor:
        """Return leaf logits ``[L, V]`` for a (batched) :class:`torch_geometric.data.Data`."""
        x, _ = self.node_states(data)
        return self.head(x[data.leaf_mask]) + self.output_bias  # (L, V)

    def input_embedding(self, data) -> Tensor:
        """``[N, H]``: the sum of the node features' embeddings (before any feedback)."""
        x_feat = data.x
        return (
            self.token_emb(x_feat[:, 0])
            + self.prev_emb(x_feat[:, 1])
            + self.depth_emb(x_feat[:, 2].clamp(max=MAX_DEPTH))
            + self.sibling_emb(x_feat[:, 3].clamp(max=MAX_SIBLING))
            + self.iter_emb(x_feat[:, 4].clamp(max=MAX_ITERATIONS))
        )  # (N, H)

    def node_states(self, data) -> tuple[Tensor, Tensor]:
        """Final node states ``[N, H]`` and the graph of each node ``[N]``."""
        x_feat = data.x
        batch = data.batch if getattr(data, "batch", None) is not None else x_feat.new_zeros(x_feat.size(0))
        num_graphs = int(batch.max()) + 1 if batch.numel() else 1
        x0 = self.input_embedding(data)  # (N, H)
        hook = None
        if self.use_test_guidance:
            keys, pad = self._encode_tests(data, x0, num_graphs)
            if self.failure_details:
                fraction = self._raised_fraction(data, batch, num_graphs)  # (N, 1)
                x0 = x0 + self.raised_mark(fraction.to(self.raised_mark.weight.dtype))

            def hook(x: Tensor, batch: Tensor, layer: int) -> Tensor:
                return self.cross[layer](x, batch, keys, pad)

        return self.body(x0, data.edge_index, data.edge_type, batch, hook), batch  # (N, H), (N,)
