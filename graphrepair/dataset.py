"""Problems -> split -> graphs -> vocabulary -> encoded programs, for one experiment configuration.

The split is by problem (:func:`graphrepair.data.split_problems`); the vocabulary is built from the
training split only and reused, unchanged, when a checkpoint is evaluated. Programs whose graph has
more than ``data.max_nodes`` nodes are left out and counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from graphrepair.config import ExperimentConfig
from graphrepair.corruption import corrupt, corruption_rng
from graphrepair.data import load_problems, split_problems
from graphrepair.dedup import deduplicate_splits, normalized_hash
from graphrepair.features import EncodedProgram
from graphrepair.graph_cache import GraphCache
from graphrepair.refine import ProgramState
from graphrepair.vocab import Vocabulary

__all__ = ["PreparedData", "draw_training_problems", "fixed_states", "duplication", "prepare"]

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """Encoded programs of every split with the vocabulary they were encoded with.

    Attributes:
        vocab: the vocabulary (from the training split).
        splits: ``{"train"|"val"|"test": [EncodedProgram, ...]}``.
        oov_rate: fraction of leaf tokens mapped to UNK, per split.
        skipped: programs left out per split (graph larger than ``max_nodes``).
        near_duplicates_removed: programs removed per split because they near-duplicate a program
            of an earlier split (see :mod:`graphrepair.dedup`).
        unigram: most frequent eligible leaf text of the training split (the unigram baseline's guess).
    """

    vocab: Vocabulary
    splits: dict[str, list[EncodedProgram]]
    oov_rate: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    near_duplicates_removed: dict[str, int] = field(default_factory=dict)
    unigram: str = ""

    def summary(self) -> dict:
        """Split sizes, OOV rates, removed programs and vocabulary size (for the run's metadata)."""
        return {
            "programs": {k: len(v) for k, v in self.splits.items()},
            "vocabulary_size": len(self.vocab),
            "oov_rate": self.oov_rate,
            "skipped_over_max_nodes": self.skipped,
            "near_duplicates_removed": self.near_duplicates_removed,
        }


def prepare(
    cfg: ExperimentConfig, vocab: Vocabulary | None = None, graph_cache: GraphCache | None = None
) -> PreparedData:
    """Load, split, parse and encode the configured dataset.

    Args:
        cfg: the experiment configuration (``data`` and ``corruption`` sections are used).
        vocab: an existing vocabulary (from a checkpoint); ``None`` builds one from the training split.
        graph_cache: where graphs and encoded arrays are cached; ``None`` =
            :meth:`GraphCache.default` (``$GRAPHREPAIR_GRAPH_CACHE`` or ``~/.cache/graphrepair/graphs``).

    Raises:
        FileNotFoundError / ValueError: from the dataset loaders (missing or malformed files).
    """
    problems = load_problems(cfg.data.dataset, cfg.data.data_dir)
    split = split_problems(problems, tuple(cfg.data.split_fractions), seed=cfg.data.split_seed)
    cache = graph_cache if graph_cache is not None else GraphCache.default()
    graph_of = dict(zip([id(p) for p in problems], cache.graphs([p.source for p in problems])))
    graphs: dict[str, list[tuple]] = {}
    skipped: dict[str, int] = {}
    for name, probs in split.items():
        kept = []
        for p in probs:
            g = graph_of[id(p)]
            if g.num_nodes <= cfg.data.max_nodes:
                kept.append((p, g))
        graphs[name] = kept
        skipped[name] = len(probs) - len(kept)
    removed = {name: 0 for name in graphs}
    if cfg.data.dedup:
        graphs, removed = deduplicate_splits(graphs)
    if vocab is None:
        vocab = Vocabulary.build((g for _, g in graphs["train"]), min_freq=cfg.data.vocab_min_freq)
    splits = cache.encoded(graphs, vocab, cfg.corruption.eligible)
    oov = {name: vocab.oov_rate(g for _, g in pairs) for name, pairs in graphs.items()}
    counts = Counter(
        t for enc in splits["train"] for t, e in zip(enc.orig_texts, enc.eligible) if e
    )
    unigram = counts.most_common(1)[0][0] if counts else ""
    log.info(
        "data %s: %s programs (skipped > %d nodes: %s; near-duplicates of an earlier split "
        "removed: %s), vocabulary %d, OOV %s",
        cfg.data.dataset, {k: len(v) for k, v in splits.items()}, cfg.data.max_nodes, skipped,
        removed, len(vocab), {k: f"{v:.1%}" for k, v in oov.items()},
    )
    return PreparedData(vocab, splits, oov, skipped, removed, unigram)


def fixed_states(
    programs: list[EncodedProgram],
    rates: list[float],
    n: int,
    seed: int,
    vocab: Vocabulary,
) -> list[tuple[float, ProgramState]]:
    """``n`` reproducible corrupted samples cycling through ``programs`` and ``rates``.

    Sample ``i`` uses program ``i % len(programs)`` and rate ``rates[i % len(rates)]``; its mask
    depends only on (seed, task_id, rate, draw), so every model sees the same inputs.
    """
    out = []
    for i in range(n):
        enc = programs[i % len(programs)]
        rate = rates[i % len(rates)]
        rng = corruption_rng(seed, enc.problem.task_id, rate, draw=i // len(programs))
        out.append((rate, ProgramState.start(enc, corrupt(enc.eligible, rate, rng), vocab)))
    return out


def draw_training_problems(n_problems: int, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the problems behind ``n_samples`` training samples.

    Without replacement while ``n_samples <= n_problems``; otherwise whole permutations are
    concatenated, so every problem is used equally often (within one).
    """
    reps = -(-n_samples // n_problems)  # ceil
    if reps == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([rng.permutation(n_problems) for _ in range(reps)])[:n_samples]


def duplication(programs: list[EncodedProgram], picks: np.ndarray) -> dict[str, float]:
    """Unique normalised programs among the drawn samples and the duplication rate (1 - unique/n)."""
    hashes = {normalized_hash(programs[int(i)].graph) for i in picks}
    n = len(picks)
    return {"samples": n, "unique_programs": len(hashes),
            "duplication_rate": 1 - len(hashes) / n if n else 0.0}
