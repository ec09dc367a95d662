"""Teacher validation (the record's Phase 0): ``python -m jepa.phase0 --exp phase0 [--out DIR]``.

Reads the corpus index and the teacher states that ``python -m jepa.prepare --exp ID`` wrote and
answers three questions about the teacher's body embeddings (``DESIGN.md``, jepa; the record is
``research/002``, "Phase 0"):

1. **Layer selection** (0.1): for ``phase0.layer_sample`` functions the body is read at every
   layer ``0..L`` (one pass of the whole stack); per layer the mean pairwise cosine (raw and
   centred), the anisotropy and the effective rank (:mod:`jepa.geometry`), with a plot. The record
   found mid-depth layers of base models best.
2. **KNN retrieval** (0.2): every function's ``phase0.knn_k`` nearest bodies (FAISS, cosine after
   centring with the training mean) at the configured layer: how often the nearest body is in
   another repository against the chance rate, the similarity distributions of same- and
   cross-repository neighbours, and the most similar cross-repository pairs as examples.
3. **Linear probes** (0.3): ridge R² for lines of code, cyclomatic complexity and churn (where the
   corpus has git history), logistic balanced accuracy for the return-annotation class, each with
   repository-grouped ``phase0.folds``-fold cross-validation and against a length-only baseline
   (:mod:`jepa.probes`), beside the record's values (Qwen2.5-Coder-3B layer 18).

Writes ``report.json``, ``report.md`` and the PNG plots through the shared reporter into ``--out``
(default ``runs/<exp>-phase0-<UTC time>``); a directory that already holds a report is refused
unless ``--force``.

Exit codes (:mod:`harness.cli`): 0 done; 2 bad input (unknown experiment, no corpus index or
teacher states: the message names the ``jepa.prepare`` command); 3 environment (a teacher package
missing).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.cli import EXIT_OK, experiment_parser, resolve_device, run_cli, setup_logging
from harness.config import load_experiment, to_dict
from harness.errors import InputError
from harness.report import COSINE, NUMBER, PERCENT, Table, write_report
from harness.runs import timestamped_run_dir
from jepa.config import ExperimentConfig
from jepa.corpus.build import SPLITS
from jepa.corpus.extract import Function
from jepa.data import find_state_set
from jepa.prepare import CONFIG_DIR, CORPUS_INDEX, STATES, data_dir
from jepa.store import CorpusIndex, StateStore, StoreError, function_key
from jepa.teacher.model import Teacher

__all__ = ["RECORD", "main", "run_phase0"]

logger = logging.getLogger(__name__)

RECORD = {"lines of code": 0.79, "cyclomatic complexity": 0.73, "churn": 0.76, "return type": 0.94}
"""The record's Phase 0.3 values (Qwen2.5-Coder-3B base, layer 18, research/002): R², R², R², BAcc."""


def _first_by_key(functions: Sequence[Function], keys: Sequence[str], n: int) -> list[int]:
    """Indices of the ``n`` functions with the smallest keys (all when ``n`` is 0 or too large):
    a sample that depends only on the functions, not on their order."""
    order = sorted(range(len(functions)), key=lambda i: keys[i])
    return sorted(order[:n] if 0 < n < len(order) else order)


def _layer_selection(cfg: ExperimentConfig, functions: list[Function], keys: list[str],
                     out: Path) -> tuple[list[dict[str, Any]], str]:
    from jepa.geometry import layer_selection, plot_layer_selection

    chosen = _first_by_key(functions, keys, cfg.phase0.layer_sample)
    whole = Teacher.load(cfg.teacher.model, layer=-1, kind=cfg.teacher.kind, dtype=cfg.teacher.dtype,
                         device=resolve_device(cfg.teacher.device), gguf_file=cfg.teacher.gguf_file,
                         sha256=cfg.teacher.sha256, revision=cfg.teacher.revision or None)
    start = time.perf_counter()
    _, body = whole.encode_layers([functions[i].signature for i in chosen],
                                  [functions[i].body for i in chosen],
                                  batch_size=cfg.teacher.batch_size,
                                  max_signature_tokens=cfg.teacher.max_signature_tokens,
                                  max_body_tokens=cfg.teacher.max_body_tokens)
    logger.info("layer selection: %d functions x %d layers in %.1f s", len(chosen), body.shape[0],
                time.perf_counter() - start)
    rows = layer_selection({i: body[i].numpy() for i in range(body.shape[0])})
    plot = "layer_selection.png"
    plot_layer_selection(rows, out / plot, title=f"{whole.name}: body embeddings per layer "
                                                 f"({len(chosen):,} functions)")
    return rows, plot


def run_phase0(cfg: ExperimentConfig, directory: Path, out: Path) -> dict[str, Any]:
    """Run the three analyses on the prepared data in ``directory`` and write the report to ``out``.

    Returns:
        The ``results`` written to ``report.json``.

    Raises:
        StoreError: no corpus index or no teacher states (the message names the command).
    """
    from jepa.geometry import knn, plot_similarity_distribution
    from jepa.probes import probe_table, run_probes

    p = cfg.phase0
    index_path = directory / CORPUS_INDEX
    if not index_path.is_file():
        raise StoreError(f"no corpus index at {index_path}; build it and the teacher states with "
                         f"`python -m jepa.prepare --exp {cfg.exp}`")
    with CorpusIndex.open(index_path, exp=cfg.exp) as index:
        by_split = {s: index.functions(s) for s in SPLITS}
        churn_all = [c for s in SPLITS for c in index.churn(s)]
    functions = [f for s in SPLITS for f in by_split[s]]
    split_of = [s for s in SPLITS for _ in by_split[s]]
    keys = [function_key(f.signature, f.body) for f in functions]
    repos = [f.repository for f in functions]
    out.mkdir(parents=True, exist_ok=True)

    # states of the configured layer, from the store (the teacher is not loaded for them)
    spec = find_state_set(cfg, directory)
    with StateStore.open(directory / STATES, spec, create=False,
                         rebuild=f"python -m jepa.prepare --exp {cfg.exp}") as store:
        states = store.read(keys)

    # 0.1 layer selection (a pass of the whole stack over a sample)
    layer_rows, layer_plot = _layer_selection(cfg, functions, keys, out)
    body = states["body"].numpy()
    train = np.array([s == "train" for s in split_of])
    centre = body[train].mean(0) if train.any() else body.mean(0)

    # 0.2 KNN retrieval over every function
    start = time.perf_counter()
    result = knn(body, repos, k=min(p.knn_k, len(functions) - 1), centre=centre)
    logger.info("knn: %d functions in %.1f s", len(functions), time.perf_counter() - start)
    knn_plot = "knn_similarity.png"
    plot_similarity_distribution(result, out / knn_plot,
                                 title=f"{spec.model} layer {spec.layer}: nearest-neighbour cosine")
    pairs = result.top_cross_pairs(p.examples, max_similarity=0.9999)

    # 0.3 probes on a sample
    chosen = _first_by_key(functions, keys, p.probe_sample)
    fs = [functions[i] for i in chosen]
    churn = [churn_all[i] for i in chosen]
    targets = {
        "lines of code": ("regression", [f.properties.body_lines for f in fs]),
        "cyclomatic complexity": ("regression", [f.properties.complexity for f in fs]),
        "churn": ("regression", churn),
        # the class of the annotation: functions without one ("none") are left out
        "return type": ("classification", [None if f.properties.return_kind == "none"
                                           else f.properties.return_kind for f in fs]),
    }
    start = time.perf_counter()
    probes = run_probes(body[chosen], targets, states["body_length"].numpy()[chosen],
                        [repos[i] for i in chosen], folds=p.folds, n_resamples=p.bootstrap)
    logger.info("probes: %d functions in %.1f s", len(chosen), time.perf_counter() - start)

    # the report
    source = f"{len(functions):,} functions of {len(set(repos)):,} repositories ({cfg.corpus.source} source)"
    knn_summary = result.summary()
    tables = [
        Table(title="Layer selection (Phase 0.1)",
              columns=["layer", "mean cosine", "mean cosine (centred)", "anisotropy",
                       "effective rank", "of max"],
              rows=[[f"{r['layer']}" + (" (read)" if r["layer"] == spec.layer else ""),
                     r["mean_cosine"], r["mean_cosine_centred"], r["anisotropy"],
                     f"{r['effective_rank']:.1f}", r["effective_rank_fraction"]] for r in layer_rows],
              fmt=NUMBER, formats={"mean cosine": COSINE, "mean cosine (centred)": COSINE},
              caption=f"Mean-pooled body states of {layer_rows[0]['n']:,} functions at every layer "
                      f"(hidden_states[i]). Anisotropy: the first principal component's share of the "
                      f"variance; effective rank: exp of the entropy of the normalised singular "
                      f"values (Roy & Vetterli 2007), and its fraction of min(N-1, D)."),
        Table(title="KNN retrieval over body embeddings (Phase 0.2)",
              columns=["functions", "k", "top-1 in another repository", "same-repository precision@1",
                       f"same-repository precision@{result.k}", "chance same-repository rate",
                       "median cosine, same repo", "median cosine, other repo"],
              rows=[[f"{result.n:,}", f"{result.k}", knn_summary["top1_cross_share"],
                     knn_summary["same_repository_precision_at_1"],
                     knn_summary[f"same_repository_precision_at_{result.k}"],
                     knn_summary["random_same_repository_rate"],
                     f"{result.similarity_quantiles()['same']['q50']:.3f}",
                     f"{result.similarity_quantiles()['cross']['q50']:.3f}"]],
              fmt=PERCENT,
              caption=f"{source}; exact cosine (FAISS IndexFlatIP) after centring with the training "
                      f"mean, layer {spec.layer}. Chance: the share of same-repository pairs among "
                      f"all pairs."),
        Table(title="Most similar cross-repository pairs (examples)",
              columns=["cosine", "function", "nearest function in another repository"],
              rows=[[f"{s:.3f}", f"{repos[i]}: {functions[i].qualname}",
                     f"{repos[j]}: {functions[j].qualname}"] for i, j, s in pairs],
              fmt=NUMBER, caption="Exact duplicates (cosine > 0.9999) left out."),
        probe_table(probes),
        Table(title="Probes beside the record",
              columns=["property", "metric", "this teacher", "length baseline", "record (Qwen2.5-Coder-3B L18)"],
              rows=[[r.property, r.metric, r.probe if r.available else "n/a",
                     r.baseline if r.available else "n/a", f"{RECORD[r.property]:.2f}"] for r in probes],
              fmt=NUMBER,
              caption="Return type: the class of the return annotation, over annotated functions "
                      "only. The record does not say whether its R² is of raw counts or log "
                      "counts, nor whether its folds were grouped by repository; ours are log1p "
                      "and grouped."),
    ]
    results = {
        "teacher": f"{spec.model} layer {spec.layer} ({spec.kind}, {spec.compute_dtype})", "functions": len(functions), "repositories": len(set(repos)),
        "layer_selection": layer_rows, "knn": knn_summary,
        "knn_examples": [{"cosine": float(s), "a": f"{repos[i]}:{functions[i].qualname}",
                          "b": f"{repos[j]}:{functions[j].qualname}"} for i, j, s in pairs],
        "probes": [r.to_dict() for r in probes], "record": RECORD,
    }
    write_report(out, title=f"Phase 0: teacher validation ({cfg.exp}, {spec.model} layer {spec.layer})",
                 results=results, tables=tables, config=to_dict(cfg), plots=[layer_plot, knn_plot],
                 notes=[f"{source}. Teacher {spec.model} layer {spec.layer} ({spec.kind}, "
                        f"{spec.compute_dtype}), states {spec.dirname}."])
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m jepa.phase0``; returns the exit code."""
    ap = experiment_parser("python -m jepa.phase0", "Phase 0: validate the teacher (layers, KNN, probes).",
                           CONFIG_DIR, run_dir=False)
    ap.add_argument("--out", help="report directory (default runs/<exp>-phase0-<UTC time>)")
    ap.add_argument("--force", action="store_true", help="overwrite a report already in --out")
    args = ap.parse_args(argv)
    setup_logging()

    def run() -> int:
        if not args.exp:
            raise InputError("--exp is required (see --help for the experiment ids)")
        cfg = load_experiment(ExperimentConfig, CONFIG_DIR, args.exp, args.overrides)
        out = Path(args.out) if args.out else timestamped_run_dir("runs", f"{cfg.exp}-phase0")
        if (out / "report.json").exists() and not args.force:
            raise InputError(f"{out} already holds a report; give another --out or --force")
        run_phase0(cfg, data_dir(cfg.data or cfg.exp, args.data_dir), out)
        print((out / "report.md").read_text())
        print(f"report: {out / 'report.md'}")
        return EXIT_OK

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
