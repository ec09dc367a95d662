"""Problems -> split -> graphs -> vocabulary -> encoded programs, for one experiment configuration.

The split is by problem (:func:`graphrepair.data.problems.split_problems`); the vocabulary is built from the
training split only and reused, unchanged, when a checkpoint is evaluated. Programs whose graph has
more than ``data.max_nodes`` nodes are left out and counted.

Val and test programs that near-duplicate a program of an earlier split are removed
(``data.dedup``, ``data.near_duplicate_similarity``; :mod:`graphrepair.data.dedup`), counted per
split and criterion, and each removal is listed with the program it duplicates
(:meth:`PreparedData.summary`, the run's ``data.json``). The removal decides which programs are
evaluated; the graph cache's encoded entries are keyed by every split's task ids
(:meth:`graphrepair.graphs.cache.GraphCache.encoded`), so a changed removal is a cache miss.

A *held-out* split from another dataset (``humaneval`` for a model trained on MBPP) is built only
when asked (:func:`add_heldout_split`, or ``prepare(..., extra_splits=("humaneval",))``): encoded
with the training vocabulary (its unknown leaves counted), near-duplicates of training programs
removed (counted).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from graphrepair.config import ExperimentConfig
from graphrepair.data.corruption import corrupt, corruption_rng
from graphrepair.data.dedup import KINDS, Deduplicated, deduplicate_splits, normalized_hash
from graphrepair.data.problems import (
    SPLIT_LIKE,
    DataError,
    load_problems,
    split_like,
    split_problems,
)
from graphrepair.features.encoding import EncodedProgram
from graphrepair.graphs.cache import GraphCache
from graphrepair.graphs.vocab import UnknownReport, Vocabulary
from graphrepair.loop.refine import ProgramState

__all__ = ["HELDOUT_SPLITS", "PreparedData", "add_heldout_split", "draw_training_problems",
           "duplication", "fixed_states", "prepare"]

HELDOUT_SPLITS = ("humaneval",)  # split name = dataset name (graphrepair.data.problems.DATASETS)

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
            of an earlier split, by either criterion (see :mod:`graphrepair.data.dedup`).
        near_duplicates_by_kind: the same per split and criterion: ``{split: {"normalised_ast":
            n, "token_similarity": m}}``.
        near_duplicates: one record per removed program: ``{"task_id", "split", "kind",
            "duplicates": task id of the earlier program, "duplicates_split", "similarity"}``.
        unigram: most frequent eligible leaf text of the training split (the unigram baseline's guess).
        unknown: held-out splits' :class:`~graphrepair.graphs.vocab.UnknownReport` (leaves mapped to UNK).
    """

    vocab: Vocabulary
    splits: dict[str, list[EncodedProgram]]
    oov_rate: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    near_duplicates_removed: dict[str, int] = field(default_factory=dict)
    unigram: str = ""
    unknown: dict[str, UnknownReport] = field(default_factory=dict)
    near_duplicates_by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    near_duplicates: list[dict] = field(default_factory=list)

    def record_removals(self, dedup: Deduplicated) -> None:
        """Add the counts and records of ``dedup`` (its items are problems) for each of its splits."""
        for name, counts in dedup.removed_by_kind().items():
            self.near_duplicates_by_kind[name] = counts
            self.near_duplicates_removed[name] = sum(counts.values())
        self.near_duplicates += [
            {"task_id": r.item.task_id, "split": r.split, "kind": r.kind,
             "duplicates": r.match.task_id, "duplicates_split": r.match_split,
             "similarity": round(r.similarity, 4)} for r in dedup.removals]

    def summary(self) -> dict:
        """Split sizes, OOV rates, removed programs and vocabulary size (for the run's metadata)."""
        return {
            "programs": {k: len(v) for k, v in self.splits.items()},
            "vocabulary_size": len(self.vocab),
            "oov_rate": self.oov_rate,
            "skipped_over_max_nodes": self.skipped,
            "near_duplicates_removed": self.near_duplicates_removed,
            "near_duplicates_by_kind": self.near_duplicates_by_kind,
            "near_duplicates": self.near_duplicates,
        }


def prepare(
    cfg: ExperimentConfig,
    vocab: Vocabulary | None = None,
    graph_cache: GraphCache | None = None,
    extra_splits: tuple[str, ...] = (),
) -> PreparedData:
    """Load, split, parse and encode the configured dataset.

    Args:
        cfg: the experiment configuration (``data`` and ``corruption`` sections are used).
        vocab: an existing vocabulary (from a checkpoint); ``None`` builds one from the training split.
        graph_cache: where graphs and encoded arrays are cached; ``None`` =
            :meth:`GraphCache.default` (``$GRAPHREPAIR_GRAPH_CACHE`` or ``~/.cache/graphrepair/graphs``).
        extra_splits: held-out splits from other datasets to add (:func:`add_heldout_split`).

    Raises:
        FileNotFoundError / ValueError: from the dataset loaders (missing or malformed files), or
            from :func:`add_heldout_split`.
    """
    problems = load_problems(cfg.data.dataset, cfg.data.data_dir)
    fractions, seed = tuple(cfg.data.split_fractions), cfg.data.split_seed
    if cfg.data.dataset in SPLIT_LIKE:  # MBPP+ problems go where their MBPP originals go
        original = load_problems(SPLIT_LIKE[cfg.data.dataset], cfg.data.data_dir)
        split = split_like(problems, split_problems(original, fractions, seed=seed))
    else:
        split = split_problems(problems, fractions, seed=seed)
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
    dedup = Deduplicated({name: list(pairs) for name, pairs in graphs.items()})
    if cfg.data.dedup:
        dedup = deduplicate_splits(graphs, similarity=cfg.data.near_duplicate_similarity)
    graphs = dedup.splits
    if vocab is None:
        vocab = Vocabulary.build((g for _, g in graphs["train"]), min_freq=cfg.data.vocab_min_freq)
    splits = cache.encoded(graphs, vocab, cfg.corruption.eligible)
    oov = {name: vocab.oov_rate(g for _, g in pairs) for name, pairs in graphs.items()}
    counts = Counter(
        t for enc in splits["train"] for t, e in zip(enc.orig_texts, enc.eligible) if e
    )
    unigram = counts.most_common(1)[0][0] if counts else ""
    data = PreparedData(vocab, splits, oov, skipped, unigram=unigram)
    data.record_removals(dedup)
    log.info(
        "data %s: %s programs (skipped > %d nodes: %s; near-duplicates of an earlier split "
        "removed: %s), vocabulary %d, OOV %s",
        cfg.data.dataset, {k: len(v) for k, v in splits.items()}, cfg.data.max_nodes, skipped,
        _removal_text(data.near_duplicates_by_kind, cfg), len(vocab),
        {k: f"{v:.1%}" for k, v in oov.items()},
    )
    for name in extra_splits:
        add_heldout_split(cfg, data, name, cache)
    return data


def add_heldout_split(
    cfg: ExperimentConfig, data: PreparedData, name: str = "humaneval",
    graph_cache: GraphCache | None = None,
) -> list[EncodedProgram]:
    """Add all problems of dataset ``name`` to ``data.splits[name]`` as a cross-dataset split.

    The programs are parsed, left out above ``data.max_nodes`` nodes (``data.skipped``), stripped
    of near-duplicates of ``data``'s *training* programs (:mod:`graphrepair.data.dedup`;
    ``data.near_duplicates_removed``) and encoded with ``data.vocab`` unchanged: their OOV rate
    goes to ``data.oov_rate`` and the unknown leaf texts to ``data.unknown`` (both logged).

    Args:
        cfg: the experiment configuration (``data.data_dir``, ``data.max_nodes``,
            ``corruption.eligible``).
        data: prepared data of the training dataset; modified in place.
        name: a dataset of :data:`HELDOUT_SPLITS`.
        graph_cache: as in :func:`prepare`.

    Returns:
        The encoded programs of the new split.

    Raises:
        ValueError: ``name`` is not a held-out dataset, or it is the training dataset itself.
        FileNotFoundError: the dataset file is missing (see :func:`graphrepair.data.problems.ensure_file`).
    """
    if name not in HELDOUT_SPLITS:
        raise DataError(f"unknown held-out split {name!r}; valid: {', '.join(HELDOUT_SPLITS)}")
    if cfg.data.dataset == name:
        raise DataError(f"the model was trained on {name!r}: it is not held out; use --split val|test")
    problems = load_problems(name, cfg.data.data_dir)
    cache = graph_cache if graph_cache is not None else GraphCache.default()
    pairs = [(p, g) for p, g in zip(problems, cache.graphs([p.source for p in problems]))
             if g.num_nodes <= cfg.data.max_nodes]
    data.skipped[name] = len(problems) - len(pairs)
    train = [(enc.problem, enc.graph) for enc in data.splits["train"]]
    dedup = deduplicate_splits({"train": train, name: pairs}, order=("train", name),
                               similarity=cfg.data.near_duplicate_similarity)
    data.record_removals(dedup)
    kept = dedup.splits
    graphs = [g for _, g in kept[name]]
    data.unknown[name] = data.vocab.apply(graphs, label=f"held-out split {name}")[1]
    data.oov_rate[name] = data.unknown[name].rate
    data.splits[name] = cache.encoded({name: kept[name]}, data.vocab, cfg.corruption.eligible)[name]
    log.info("held-out split %s: %d of %d problems (%d over %d nodes; near-duplicates of "
             "training programs removed: %s), OOV %.1f%%", name, len(data.splits[name]), len(problems),
             data.skipped[name], cfg.data.max_nodes,
             _removal_text({name: data.near_duplicates_by_kind[name]}, cfg), data.oov_rate[name] * 100)
    return data.splits[name]


def _removal_text(by_kind: dict[str, dict[str, int]], cfg: ExperimentConfig) -> str:
    """Per split except train: ``"<split> <removed by equal normalised AST> + <removed by token
    similarity>"``, then what the two numbers are."""
    if not cfg.data.dedup:
        return "none (data.dedup is off)"
    splits = {k: v for k, v in by_kind.items() if k != "train"}
    threshold = cfg.data.near_duplicate_similarity
    if threshold is None:
        return ", ".join(f"{k} {v[KINDS[0]]}" for k, v in splits.items()) + " (equal normalised AST)"
    return (", ".join(f"{k} {v[KINDS[0]]} + {v[KINDS[1]]}" for k, v in splits.items())
            + f" (equal normalised AST + normalised token similarity >= {threshold:g})")


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
