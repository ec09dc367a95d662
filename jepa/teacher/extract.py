"""Compute teacher states of a corpus into the state store, resumably and across ranks.

The plan (:func:`plan_shards`) depends only on the functions asked for: their distinct
:func:`~jepa.store.states.function_key` values ordered by text length (then key) and cut into
shards of ``shard_size``. A shard already in the store is skipped, so a run killed at any moment
(``kill -9`` included) continues where it stopped when started again, and computes exactly the
shards an uninterrupted run would: the result is the same, bit for bit. Under torchrun rank ``r``
of ``w`` computes the shards ``r, r + w, r + 2w, ...`` of the plan.

Length order makes the batches inside a shard nearly free of padding (the teacher sorts by token
length again within the shard).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from jepa.corpus.extract import Function
from jepa.store.states import StateSpec, StateStore, function_key
from jepa.teacher.model import Teacher

__all__ = ["extract_states", "plan_shards", "state_spec"]

logger = logging.getLogger(__name__)


def state_spec(teacher: Teacher, *, max_signature_tokens: int, max_body_tokens: int,
               tokens: str = "none", token_dtype: str = "bfloat16") -> StateSpec:
    """The :class:`StateSpec` of ``teacher`` reading with these limits."""
    return StateSpec(model=teacher.name, weights=teacher.weights_sha256, layer=teacher.layer,
                     kind=teacher.kind, compute_dtype=str(teacher.dtype).removeprefix("torch."),
                     max_signature_tokens=max_signature_tokens, max_body_tokens=max_body_tokens,
                     tokens=tokens, token_dtype=token_dtype)


def plan_shards(functions: Sequence[Function], shard_size: int) -> list[list[Function]]:
    """The shards to compute: distinct functions (by key) ordered by ``(len(signature) +
    len(body), key)``, cut into consecutive groups of ``shard_size``.

    Raises:
        ValueError: ``shard_size`` < 1.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    unique = {function_key(f.signature, f.body): f for f in functions}
    order = sorted(unique, key=lambda k: (len(unique[k].signature) + len(unique[k].body), k))
    return [[unique[k] for k in order[i:i + shard_size]] for i in range(0, len(order), shard_size)]


def extract_states(teacher: Teacher, functions: Sequence[Function], store: StateStore, *,
                   shard_size: int = 512, batch_size: int = 32, rank: int = 0, world_size: int = 1,
                   progress: bool = True) -> dict[str, Any]:
    """Compute the states of ``functions`` that ``store`` lacks (this rank's share of the plan).

    Args:
        teacher: the loaded teacher; its reading must match ``store.spec``.
        functions: the functions (e.g. every split of a corpus).
        store: the state set written to.
        shard_size: functions per shard.
        batch_size: sequences per forward pass.
        rank, world_size: this process's share (torchrun).
        progress: show a tqdm bar in functions/s.

    Returns:
        ``functions`` (distinct), ``shards`` (planned), ``computed`` and ``reused`` (functions of
        this rank's shards), ``seconds`` and ``functions_per_s`` (of the computed ones).

    Raises:
        ValueError: ``store.spec`` is not this teacher's reading.
    """
    from tqdm import tqdm

    spec = store.spec
    if (spec.model, spec.layer, spec.kind) != (teacher.name, teacher.layer, teacher.kind):
        raise ValueError(f"store {store.directory} holds {spec.model} layer {spec.layer}, "
                         f"not {teacher.name} layer {teacher.layer}")
    plan = plan_shards(functions, shard_size)
    mine = plan[rank::world_size]
    todo = [s for s in mine if not store.has_shard(store.shard_name(
        [function_key(f.signature, f.body) for f in s]))]
    reused = sum(len(s) for s in mine) - sum(len(s) for s in todo)
    total = sum(len(s) for s in todo)
    start = time.perf_counter()
    with tqdm(total=total, unit="fn", desc=f"teacher states (rank {rank})" if world_size > 1
              else "teacher states", disable=not progress or total == 0, dynamic_ncols=True) as bar:
        for shard in todo:
            t0 = time.perf_counter()
            states = teacher.encode([f.signature for f in shard], [f.body for f in shard],
                                    batch_size=batch_size, tokens=bool(spec.token_parts),
                                    max_signature_tokens=spec.max_signature_tokens,
                                    max_body_tokens=spec.max_body_tokens, progress=bar.update)
            store.write_shard([function_key(f.signature, f.body) for f in shard], states,
                              seconds=time.perf_counter() - t0)
    seconds = time.perf_counter() - start
    summary = {"functions": sum(len(s) for s in plan), "shards": len(plan), "computed": total,
               "reused": reused, "seconds": round(seconds, 2),
               "functions_per_s": round(total / seconds, 1) if total and seconds > 0 else None}
    logger.info("teacher states: %d computed (%.1f functions/s), %d reused, store %s",
                total, summary["functions_per_s"] or 0.0, reused, store.directory)
    return summary
