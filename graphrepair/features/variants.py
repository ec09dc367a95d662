"""The two node-feature variants of DESIGN.md ("Node features") as PyG ``Data``, selectable by name.

* :attr:`FeatureVariant.FIVE` (Experiments 3, 3b, 3c, 3d): :func:`graphrepair.features.encoding.make_data`;
  ``x = [token_id, prev_token_id, depth, sibling_index, iteration]`` and per-test feedback records
  for cross-attention.
* :attr:`FeatureVariant.SIX` (Experiments 1, 2, 4): :func:`make_signal_data`; the six features
  ``token_id, prev_token_id, parent_type, depth, iteration, test_signal``. Five are integer ids
  (embedding indices) and one is a real-valued fault-localisation score, so they are kept in two
  tensors rather than one float matrix that would round ids above 2**24: ``x`` int64
  ``[N, 5]`` holds ``[token_id, prev_token_id, parent_type, depth, iteration]`` (in this order) and
  ``test_signal`` float32 ``[N]`` the sixth feature. A model concatenates the embeddings of the
  ``x`` columns with ``test_signal`` (or a projection of it).

``test_signal`` is given by the caller, one score per node: the binary "covered by a failing
test" signal or a spectrum formula such as Tarantula (Jones & Harrold, ASE 2005), computed by the
fault-localisation code from real per-test coverage; this module only packages it (zeros = no
feedback, e.g. iteration 0 under the Exp 3c rule).
"""

from __future__ import annotations

from enum import Enum

import numpy as np
import torch
from torch_geometric.data import Data

from graphrepair.features.encoding import EncodedProgram, Feedback, make_data, new_data

__all__ = ["SIX_FEATURE_COLUMNS", "FeatureVariant", "make_signal_data", "make_variant_data"]

#: Columns of ``x`` in the 6-feature variant (the sixth feature is the ``test_signal`` attribute).
SIX_FEATURE_COLUMNS = ("token_id", "prev_token_id", "parent_type", "depth", "iteration")


class FeatureVariant(str, Enum):
    """Which node features a model reads (a config value: ``"five"`` or ``"six"``).

    Attributes:
        FIVE: token_id, prev_token_id, depth, sibling_index, iteration + per-test records
            (Exp 3, 3b, 3c, 3d); :func:`graphrepair.features.encoding.make_data`.
        SIX: token_id, prev_token_id, parent_type, depth, iteration + a per-node ``test_signal``
            (Exp 1, 2, 4); :func:`make_signal_data`.
    """

    FIVE = "five"
    SIX = "six"


def make_signal_data(
    enc: EncodedProgram,
    cur_ids: np.ndarray,
    prev_ids: np.ndarray,
    iteration: int,
    test_signal: np.ndarray | None = None,
) -> Data:
    """Build the 6-feature model input of one program state.

    Args:
        enc: the encoded program.
        cur_ids: int64 ``[L]`` current leaf token ids.
        prev_ids: int64 ``[L]`` leaf token ids at the previous iteration (= ``cur_ids`` at
            iteration 0).
        iteration: refinement iteration (0 = one-shot).
        test_signal: float ``[N]`` per-node fault-localisation score (binary failing-coverage
            signal or a Tarantula-style suspiciousness, conventionally in [0, 1]); ``None`` = zeros.

    Returns:
        ``Data`` with ``x [N, 5]`` int64 (:data:`SIX_FEATURE_COLUMNS`), ``test_signal [N]``
        float32, ``edge_index [2, E]``, ``edge_type [E]``, ``leaf_mask [N]`` bool and ``y [L]``
        (reference ids; -100 where the reference text is out of vocabulary).

    Raises:
        ValueError: if ``test_signal`` does not hold exactly one finite value per node.
    """
    n = enc.num_nodes
    if test_signal is None:
        signal = np.zeros(n, dtype=np.float32)
    else:
        signal = np.asarray(test_signal, dtype=np.float32)
        if signal.shape != (n,):
            raise ValueError(
                f"test_signal must have shape ({n},) (one score per graph node), got {signal.shape}"
            )
        if not np.isfinite(signal).all():
            raise ValueError("test_signal holds NaN or infinite values; give finite scores")
    x = np.empty((n, 5), dtype=np.int64)
    x[:, 0] = enc.type_ids
    x[:, 1] = enc.type_ids
    x[enc.leaf_nodes, 0] = cur_ids
    x[enc.leaf_nodes, 1] = prev_ids
    x[:, 2] = enc.parent_type
    x[:, 3] = enc.depth
    x[:, 4] = iteration
    return new_data(
        Data,
        x=torch.from_numpy(x),
        test_signal=torch.from_numpy(signal),
        edge_index=enc.edge_index,
        edge_type=enc.edge_type,
        leaf_mask=torch.from_numpy(enc.leaf_mask),
        y=torch.from_numpy(enc.target),
        num_nodes=n,
    )


def make_variant_data(
    variant: FeatureVariant | str,
    enc: EncodedProgram,
    cur_ids: np.ndarray,
    prev_ids: np.ndarray,
    iteration: int,
    feedback: Feedback | None = None,
    test_signal: np.ndarray | None = None,
) -> Data:
    """Model input of one program state in the configured feature variant.

    Args:
        variant: :class:`FeatureVariant` or its value (``"five"``/``"six"``).
        enc, cur_ids, prev_ids, iteration: as in :func:`make_signal_data`.
        feedback: per-test records (5-feature variant); ``None`` = ``Feedback.empty()``.
        test_signal: per-node scores ``[N]`` (6-feature variant); ``None`` = zeros.

    Raises:
        ValueError: unknown variant, or feedback given to the variant that does not read it.
    """
    variant = FeatureVariant(variant)
    if variant is FeatureVariant.FIVE:
        if test_signal is not None:
            raise ValueError("the 5-feature variant takes per-test feedback, not a test_signal")
        return make_data(enc, cur_ids, prev_ids, iteration, feedback or Feedback.empty())
    if feedback is not None:
        raise ValueError("the 6-feature variant takes a per-node test_signal, not per-test feedback")
    return make_signal_data(enc, cur_ids, prev_ids, iteration, test_signal)
