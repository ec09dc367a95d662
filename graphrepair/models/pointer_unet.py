"""PointerGraphUNet: the guided Graph U-Net with a pointer (copy) head and an ``editable`` feature.

Beyond the record (Issue 21, experiments ``5*``). Two additions to
:class:`~graphrepair.models.guided_unet.GuidedIterativeGraphUNet`:

* **editable**: a node feature, 1 on the leaves the repair may change (the corrupted leaves; at
  :mod:`graphrepair.repair` time the localized ones), fixed along a trajectory, so the model
  still knows which leaves were corrupted once they have been filled (``prev_token`` forgets
  after one unchanged iteration);
* **a pointer over the names in context** (pointer-generator, See et al., ACL 2017; the
  variable-misuse pointers of Vasic et al., ICLR 2019): every leaf attends over the visible
  identifier leaves of its program (their final node states) and the names its tests use (their
  token embeddings plus a learned "from the tests" vector), and mixes the copy distribution with
  the vocabulary softmax through a learned gate::

      p(v | l) = g_l · softmax(W h_l)_v + (1 - g_l) · Σ_{c : id(c) = v} softmax_c(q_l · k_c / √H)
      g_l = σ(w · h_l + b);  q_l = W_q h_l;  k_c = W_k h_c (a leaf) or W_k (E[id(c)] + e_test)

  A name is copied onto its vocabulary id (so copying and generating the same name add up); a
  leaf whose program offers no candidate has ``g_l = 1``. An out-of-vocabulary name (read as
  ``UNK``) is copied onto an *extended id* ``V + j``, one of ``copy_slots`` output columns that
  stand for the j-th out-of-vocabulary name of this program
  (:func:`graphrepair.loop.constraints.copy_inputs`), so the model can write names it has never
  seen in training; a test's out-of-vocabulary name is keyed by the ``UNK`` embedding.

The output is ``log p`` ``[L, V + copy_slots]`` (log-probabilities, ``-inf``-like ``log 1e-30``
where ``p = 0``): downstream code treats it as logits, and the softmax of log-probabilities is
the distribution itself. The extended columns add no parameters, so ``copy_slots`` can be changed
for a trained model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import to_dense_batch

from graphrepair.config import ExperimentConfig
from graphrepair.features.variants import FeatureVariant
from graphrepair.graphs.vocab import UNK
from graphrepair.models.guided_unet import GuidedIterativeGraphUNet
from graphrepair.models.registry import register

__all__ = ["PointerGraphUNet"]

_TINY = 1e-30  # floor of p before the log: keeps log-probabilities and their gradients finite


@register
class PointerGraphUNet(GuidedIterativeGraphUNet):
    r"""Guided Graph U-Net + ``editable`` feature + pointer over names in context (module docstring).

    Args:
        vocab_size, hidden, depth, gat_heads, attention_heads, pool_ratio, dropout,
            use_test_guidance, max_tests, failure_details, output_mask: as
            :class:`~graphrepair.models.guided_unet.GuidedIterativeGraphUNet`.
        copy (bool): build the pointer head (``False``: the ablation "copy off").
        editable_feature (bool): embed ``data.editable``.
        copy_slots (int): extended ids for out-of-vocabulary names (0: copy in-vocabulary names
            only; ignored without ``copy``).

    Shapes (besides the parent's):
        - data.editable: ``[N]`` long, 1 on editable leaves
        - data.copy_source: ``[N]`` bool, visible identifier leaves (copy candidates)
        - data.copy_id: ``[N]`` long, each candidate's output column (vocabulary or extended id)
        - data.test_names / data.test_names_batch: ``[M]`` long output columns of the names in
          each program's tests, and their graph
        - output: ``[L, V + copy_slots]`` log-probabilities (``copy_slots`` 0 without ``copy``)
    """

    name = "pointer_unet"
    variant = FeatureVariant.FIVE
    reads_copy_inputs = True  # Refiner.batch adds editable / copy_source / copy_id / test_names

    @classmethod
    def from_config(cls, cfg: ExperimentConfig, vocab_size: int, output_mask: Tensor) -> PointerGraphUNet:
        """The model ``cfg.model`` describes (``max_tests`` from ``cfg.data``); see the registry."""
        m = cfg.model
        return cls(vocab_size, hidden=m.hidden, depth=m.depth, gat_heads=m.gat_heads,
                   attention_heads=m.attention_heads, pool_ratio=m.pool_ratio, dropout=m.dropout,
                   use_test_guidance=m.use_test_guidance, max_tests=cfg.data.max_tests,
                   failure_details=m.failure_details, output_mask=output_mask, copy=m.copy,
                   editable_feature=m.editable_feature, copy_slots=cfg.decoding.copy_slots)

    def __init__(self, vocab_size: int, *args, copy: bool = True, editable_feature: bool = True,
                 copy_slots: int = 0, **kwargs) -> None:
        if copy_slots < 0:
            raise ValueError(f"copy_slots must be >= 0, got {copy_slots}")
        self.copy, self.editable_feature = copy, editable_feature
        self.copy_slots = copy_slots if copy else 0
        super().__init__(vocab_size, *args, **kwargs)
        h = self.hidden
        if editable_feature:
            self.editable_emb = nn.Embedding(2, h)
        if copy:
            self.query = nn.Linear(h, h)
            self.key = nn.Linear(h, h)
            self.gate = nn.Linear(h, 1)
            self.test_name_vec = nn.Parameter(torch.zeros(h))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every learnable parameter."""
        super().reset_parameters()
        if getattr(self, "copy", False) and hasattr(self, "test_name_vec"):
            nn.init.normal_(self.test_name_vec, std=0.02)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", copy={self.copy}, editable_feature={self.editable_feature}, copy_slots={self.copy_slots})"

    def input_embedding(self, data) -> Tensor:
        """The parent's input embedding plus the ``editable`` embedding ``[N, H]``."""
        x0 = super().input_embedding(data)
        if self.editable_feature:
            if "editable" not in data:
                raise ValueError("pointer_unet reads data.editable: build batches with "
                                 "graphrepair.loop.refine.Refiner.batch")
            x0 = x0 + self.editable_emb(data.editable)
        return x0

    def forward(self, data) -> Tensor:
        """Return leaf log-probabilities ``[L, V + copy_slots]`` for a (batched) ``Data``."""
        x, batch = self.node_states(data)
        leaf_x = x[data.leaf_mask]  # (L, H)
        logits = (self.head(leaf_x) + self.output_bias).float()  # (L, V)
        if not self.copy:
            return logits
        num_graphs = int(batch.max()) + 1 if batch.numel() else 1
        src = data.copy_source.nonzero().squeeze(1)  # (S,) candidate leaves
        keys = [self.key(x[src])]
        ids, owner = [data.copy_id[src]], [batch[src]]
        vocab_size = logits.shape[1]
        if data.test_names.numel():
            token = data.test_names.masked_fill(data.test_names >= vocab_size, UNK)
            keys.append(self.key(self.token_emb(token) + self.test_name_vec))
            ids.append(data.test_names)
            owner.append(data.test_names_batch)
        owner_all = torch.cat(owner)
        order = torch.argsort(owner_all, stable=True)  # to_dense_batch needs graphs in order
        keys_d, has = to_dense_batch(torch.cat(keys).float()[order], owner_all[order],
                                     batch_size=num_graphs, fill_value=0.0)  # (B, C, H), (B, C)
        ids_d, _ = to_dense_batch(torch.cat(ids)[order], owner_all[order], batch_size=num_graphs,
                                  fill_value=0)  # (B, C)
        leaf_batch = batch[data.leaf_mask]  # (L,)
        q, leaf_mask = to_dense_batch(self.query(leaf_x).float(), leaf_batch, batch_size=num_graphs)
        scores = torch.bmm(q, keys_d.transpose(1, 2)) / math.sqrt(self.hidden)  # (B, Lmax, C)
        scores = scores.masked_fill(~has.unsqueeze(1), float("-inf"))[leaf_mask]  # (L, C)
        any_cand = has.any(dim=1)[leaf_batch]  # (L,)
        attn = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # rows without candidates: 0
        gate = torch.sigmoid(self.gate(leaf_x).float())  # (L, 1)
        gate = torch.where(any_cand.unsqueeze(1), gate, torch.ones_like(gate))
        p = F.pad(gate * torch.softmax(logits, dim=-1), (0, self.copy_slots))  # (L, V + S)
        p = p.scatter_add(1, ids_d[leaf_batch], (1 - gate) * attn)
        return torch.log(p.clamp_min(_TINY)) + F.pad(self.output_bias, (0, self.copy_slots))
