"""Hard negatives for InfoNCE from teacher-space neighbours, covering every training anchor (Exp 2.1).

The record's Exp 2.1 (``../shared/research/003_*.txt``) appended LLM-judged hard negatives (teacher
cosine ≥ 0.80) to the InfoNCE denominator and got a null result. Its own diagnosis, first cause:
the pairs came from an older 28,400-function KNN run, so only 17,540 of 42,047 training anchors
(~42%) had any hard negative and the loss landscape differed from batch to batch; it also
collected the *union* of a batch's hard negatives, which diluted them. Here every training anchor
gets exactly ``k`` hard negatives of its own (100% coverage), mined from the same teacher body
embeddings the student is trained on:

* neighbours by cosine (FAISS ``IndexFlatIP`` on the L2-normalised rows; exact);
* only from **other repositories** (same-repository neighbours are the bulk of a function's
  nearest neighbours, and the split is by repository), never the anchor's own body or an
  identical one (equal ``body_keys``, or cosine ≥ ``max_similarity``: an identical target vector
  is a false negative that InfoNCE could never separate);
* those at cosine ≥ ``threshold`` come first; when an anchor has fewer than ``k`` such neighbours
  the nearest ones below it fill the rest, and the summary says how often that happened.

The search asks FAISS for ``k' = 4 (k + 1)`` neighbours and doubles ``k'`` for the anchors still
short of ``k`` eligible ones until they have ``k`` or every other row has been seen (``k' = N``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["HardNegatives", "mine_hard_negatives"]


@dataclass(frozen=True, eq=False)
class HardNegatives:
    """The hard negatives of every training anchor (from :func:`mine_hard_negatives`).

    Row indices refer to the rows of the ``body`` matrix that was mined (the training functions,
    in that order).

    Attributes:
        ids: ``[N, k]`` int64 neighbour rows, most similar first; ``-1`` where an anchor has fewer
            than ``k`` eligible neighbours at all (only in tiny corpora).
        similarities: ``[N, k]`` float32 cosines; NaN where ``ids`` is ``-1``.
        mask: ``[N, k]`` bool, ``ids >= 0``.
        above: ``[N, k]`` bool, a real neighbour at cosine ≥ ``threshold`` (the others filled in).
        threshold: the preferred minimum cosine.
        searched_k: the largest ``k'`` FAISS was asked for.
    """

    ids: np.ndarray
    similarities: np.ndarray
    mask: np.ndarray
    above: np.ndarray
    threshold: float
    searched_k: int

    def __repr__(self) -> str:
        s = self.summary()
        return (f"HardNegatives(n={s['anchors']}, k={s['k']}, threshold={self.threshold}, "
                f"coverage={s['coverage']:.3f}, coverage_above_any={s['coverage_above_any']:.3f})")

    @property
    def n(self) -> int:
        """Number of anchors."""
        return int(self.ids.shape[0])

    @property
    def k(self) -> int:
        """Hard negatives per anchor."""
        return int(self.ids.shape[1])

    def summary(self) -> dict[str, float | int]:
        """Coverage and similarity figures for the run's report.

        Keys: ``anchors``, ``k``, ``threshold``; ``coverage`` / ``coverage_full`` (share of anchors
        with ≥ 1 / all ``k`` hard negatives); ``coverage_above_any`` / ``coverage_above_all``
        (share with ≥ 1 / all ``k`` at cosine ≥ threshold: the record's 2.1 covered 42% with
        ≥ 1); ``filled_slots`` (share of the ``N k`` slots filled below the threshold);
        ``mean_similarity`` and ``mean_similarity_above`` (over real neighbours); ``searched_k``.
        """
        real = self.similarities[self.mask].astype(np.float64)
        above = self.similarities[self.above].astype(np.float64)
        return {
            "anchors": self.n, "k": self.k, "threshold": self.threshold,
            "coverage": float(self.mask.any(axis=1).mean()),
            "coverage_full": float(self.mask.all(axis=1).mean()),
            "coverage_above_any": float(self.above.any(axis=1).mean()),
            "coverage_above_all": float(self.above.all(axis=1).mean()),
            "filled_slots": float((self.mask & ~self.above).mean()),
            "mean_similarity": float(real.mean()) if len(real) else float("nan"),
            "mean_similarity_above": float(above.mean()) if len(above) else float("nan"),
            "searched_k": self.searched_k,
        }

    def lookup(self, rows: Tensor, body: Tensor) -> tuple[Tensor, Tensor]:
        """The hard-negative vectors and mask of a batch of anchors, for :class:`~jepa.losses.InfoNCE`.

        Args:
            rows: ``[B]`` int64 anchor rows (indices into the mined ``body`` matrix).
            body: ``[N, D]`` the body embeddings that were mined (any device).

        Returns:
            ``(hard_negatives [B, k, D], hard_mask [B, k] bool)`` on ``body``'s device (missing
            neighbours are zero vectors with mask False).
        """
        rows = rows.to("cpu", torch.long)
        ids = torch.from_numpy(self.ids[rows.numpy()])  # (B, k)
        mask = torch.from_numpy(self.mask[rows.numpy()])  # (B, k)
        vectors = body[ids.clamp(min=0).to(body.device)]  # (B, k, D)
        mask = mask.to(body.device)
        return vectors * mask.unsqueeze(-1).to(vectors.dtype), mask


def mine_hard_negatives(body: Tensor | np.ndarray, repositories: Sequence[str], *, k: int = 8,
                        threshold: float = 0.5, body_keys: Sequence[int] | np.ndarray | None = None,
                        max_similarity: float = 1.0 - 1e-6) -> HardNegatives:
    """The ``k`` most similar bodies from other repositories for every anchor (module docstring).

    Args:
        body: ``[N, D]`` teacher body embeddings of the *training* functions, centred with the
            training mean and L2-normalised by the data pipeline (rows are normalised again here,
            which changes nothing for unit rows; centring is the caller's).
        repositories: ``[N]`` repository of each row.
        k: hard negatives per anchor, ≥ 1.
        threshold: preferred minimum cosine; nearer neighbours come first anyway, so this only
            decides what the summary counts as "above" and what as filled in.
        body_keys: ``[N]`` optional body ids (equal = identical body); such pairs are excluded.
        max_similarity: neighbours at cosine ≥ this count as identical and are excluded.

    Returns:
        A :class:`HardNegatives`.

    Raises:
        ValueError: bad shapes, NaN/inf, zero rows, ``k < 1``, or a single repository (no anchor
            could get a negative from another one).
    """
    from jepa.faiss_loader import import_faiss

    faiss = import_faiss()

    x = body.detach().cpu().float().numpy() if isinstance(body, Tensor) else np.asarray(body)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"body must be [N, D] with N >= 2, got shape {x.shape}")
    x = np.array(x, dtype=np.float32)  # a copy: normalised in place
    n, d = x.shape
    if not np.isfinite(x).all():
        raise ValueError("body contains NaN or inf")
    repos = np.asarray([str(r) for r in repositories], dtype=object)
    if len(repos) != n:
        raise ValueError(f"repositories has {len(repos)} entries for {n} bodies; give one per row")
    _, repo_ids = np.unique(repos, return_inverse=True)
    if repo_ids.max() == 0:
        raise ValueError(f"all {n} bodies are from one repository ({repos[0]!r}); hard negatives "
                         "come from other repositories")
    keys = None if body_keys is None else np.asarray(body_keys).reshape(-1)
    if keys is not None and len(keys) != n:
        raise ValueError(f"body_keys has {len(keys)} entries for {n} bodies; give one per row")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    norms = np.linalg.norm(x, axis=1)
    if (norms == 0).any():
        raise ValueError(f"{int((norms == 0).sum())} bodies have zero norm (first rows "
                         f"{np.flatnonzero(norms == 0)[:5].tolist()}); they have no direction")
    x /= norms[:, None]
    index = faiss.IndexFlatIP(d)
    index.add(x)

    ids = np.full((n, k), -1, dtype=np.int64)
    sims = np.full((n, k), np.nan, dtype=np.float32)
    todo = np.arange(n)
    kk = min(n, 4 * (k + 1))
    while True:
        s, nb = index.search(x[todo], kk)  # (M, kk) each, most similar first
        safe = np.maximum(nb, 0)  # FAISS pads with -1 when kk exceeds what it can return
        ok = (nb >= 0) & (nb != todo[:, None]) & (repo_ids[safe] != repo_ids[todo][:, None])
        ok &= s < max_similarity
        if keys is not None:
            ok &= keys[safe] != keys[todo][:, None]
        found = ok.sum(axis=1)
        # eligible neighbours first, in FAISS's order (stable sort keeps the similarity ranking)
        order = np.argsort(~ok, axis=1, kind="stable")[:, :k]
        take = np.take_along_axis(ok, order, axis=1)  # (M, min(kk, k))
        width = take.shape[1]
        ids[todo, :width] = np.where(take, np.take_along_axis(nb, order, axis=1), -1)
        sims[todo, :width] = np.where(take, np.take_along_axis(s, order, axis=1), np.nan)
        short = found < k
        if not short.any() or kk >= n:
            break
        todo, kk = todo[short], min(n, 2 * kk)
    mask = ids >= 0
    sims = np.where(mask, np.clip(sims, -1.0, 1.0), np.nan).astype(np.float32)
    above = mask & (np.nan_to_num(sims, nan=-np.inf) >= threshold)
    return HardNegatives(ids=ids, similarities=sims, mask=mask, above=above,
                         threshold=float(threshold), searched_k=int(kk))
