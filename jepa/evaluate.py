"""Retrieval evaluation of a trained student: ``python -m jepa.evaluate --checkpoint PATH [--out DIR]``.

For the val and the test split (test is the result; val chose the checkpoint) the student's
predicted embeddings are ranked exactly against the teacher body embeddings of every function of
every split, after centring with the training mean (:mod:`jepa.retrieval`), beside three baselines
on the same queries and corpus:

* **random**: a scorer that ranks the true body uniformly;
* **signature**: the teacher's own pooled signature state as the prediction (centred with the
  training *signature* mean, so that the two spaces' offsets do not decide the cosine);
* **BM25**: signature text against body text (bm25s, code-aware tokens).

Writes ``report.json``/``report.md`` through the shared reporter (the record's result table: val
and test cosine, Rank@1/5/10, MRR with 95 % bootstrap intervals over queries, and the record's
numbers) and ``predictions.safetensors``: per split the predictions ``[Q, D]``, the corpus row of
each query's true body and the training mean, with the corpus rows' function keys in the metadata,
so that anyone can recompute the ranks.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from harness.checkpoint import load_checkpoint, load_weights
from harness.cli import EXIT_OK, resolve_device, run_cli, setup_logging
from harness.config import from_dict
from harness.errors import InputError
from harness.report import Table, write_report
from jepa.config import ExperimentConfig
from jepa.corpus.build import SPLITS
from jepa.data import StudentData, load_student_data
from jepa.retrieval import (
    RetrievalResult,
    bm25_ranks,
    evaluate_embeddings,
    random_baseline,
    retrieval_table,
)
from jepa.task import StudentModel, build_model, predict

__all__ = ["RECORD", "evaluate_student", "main"]

logger = logging.getLogger(__name__)

RECORD = {
    "1_1": {"test rank@1": 0.0, "test rank@10": 0.0},
    "1_3": {"test rank@1": 0.0003, "test rank@10": 0.0024},
    "1_4": {"val rank@1": 0.0106, "test rank@1": 0.0138, "test rank@10": 0.0414},
    "2_1": {"val rank@10": 0.0364, "test rank@10": 0.0431},
    "2_2": {"val rank@10": 0.0420, "test rank@10": 0.0552},
    "3_0": {"val rank@1": 0.191, "val rank@10": 0.475},
}
"""The record's numbers (research/002, Phase 1 and 2; 3.0 from research/003), Qwen2.5-Coder-3B
layer 18 on 49,631 functions of 150 repositories (3.0: Qwen3-8B-Base)."""


def evaluate_student(cfg: ExperimentConfig, model: StudentModel, data: StudentData, out: Path, *,
                     device: torch.device | str = "cpu", checkpoint: str = "",
                     notes: Sequence[str] = ()) -> dict[str, Any]:
    """Evaluate ``model`` and its baselines on val and test and write the report into ``out``.

    Returns:
        ``results`` as written to ``report.json`` (per split and method: the metrics with
        their intervals).
    """
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    corpus = data.corpus
    corpus_keys = [k for s in SPLITS for k in data.splits[s].keys]
    corpus_bodies = [b for s in SPLITS for b in data.splits[s].bodies]
    sig_mean = data.splits["train"].signature.mean(0)
    results: dict[str, Any] = {}
    tables: list[Table] = []
    tensors: dict[str, torch.Tensor] = {"mean": data.mean.contiguous()}
    for split in ("val", "test"):
        part = data.splits[split]
        if len(part) == 0:
            continue
        targets = torch.arange(part.offset, part.offset + len(part))
        pred = predict(model, data, split, device=device)
        rows: dict[str, RetrievalResult] = {
            f"student ({cfg.student.name})": evaluate_embeddings(
                pred, corpus, targets, mean=data.mean, chunk=cfg.train.eval_chunk),
            "teacher signature → body": evaluate_embeddings(
                part.signature - sig_mean + data.mean, corpus, targets, mean=data.mean,
                chunk=cfg.train.eval_chunk),
            "BM25 signature text → body text": bm25_ranks(part.signatures, corpus_bodies, targets),
            "random": random_baseline(len(part), len(corpus), seed=cfg.train.seed),
        }
        results[split] = {name: {k: v.to_dict() if hasattr(v, "to_dict") else v
                                 for k, v in r.estimates(n_resamples=cfg.train.bootstrap).items()}
                          for name, r in rows.items()}
        tables.append(retrieval_table(
            rows, title=f"{'Test (the result)' if split == 'test' else 'Validation (chose the checkpoint)'}: "
                        f"{len(part):,} queries against {len(corpus):,} bodies",
            caption=f"Exact ranks of the true body among the teacher body embeddings of every "
                    f"function of every split, cosine after centring with the training mean "
                    f"({split} split).", n_resamples=cfg.train.bootstrap))
        tensors[f"{split}_predictions"] = pred.contiguous()
        tensors[f"{split}_targets"] = targets.contiguous()
    record = RECORD.get(cfg.exp.removesuffix("_cpu"))
    if record:
        tables.append(Table(title="The record (Qwen2.5-Coder-3B layer 18, 49,631 functions, 150 repositories)",
                            columns=list(record), rows=[[v for v in record.values()]],
                            caption="research/002 (3.0: research/003); another teacher and corpus, "
                                    "so differences are not this student's alone."))
    from safetensors.torch import save_file

    save_file(tensors, str(out / "predictions.safetensors"),
              metadata={"corpus_keys": json.dumps(corpus_keys), "state_set": data.spec.dirname if data.spec else ""})
    results["seconds"] = round(time.perf_counter() - start, 2)
    results["queries"] = {s: len(data.splits[s]) for s in ("val", "test")}
    results["corpus"] = len(corpus)
    write_report(out, title=f"jepa {cfg.exp}: retrieval of function bodies from signatures",
                 results=results, tables=tables, config={"exp": cfg.exp, "checkpoint": checkpoint},
                 notes=[f"Teacher {cfg.teacher.model} layer "
                        f"{data.spec.layer if data.spec else cfg.teacher.layer}; corpus "
                        f"{len(corpus):,} functions; student {cfg.student.name}, loss {cfg.loss.kind}.",
                        *notes])
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m jepa.evaluate``; returns the exit code."""
    import argparse

    from harness.cli import EXIT_CODES_HELP
    from jepa.prepare import data_dir

    ap = argparse.ArgumentParser(prog="python -m jepa.evaluate", description=__doc__.splitlines()[0],
                                 epilog=EXIT_CODES_HELP)
    ap.add_argument("--checkpoint", required=True, help="a student checkpoint (best.pt of a run)")
    ap.add_argument("--data-dir", help="the data directory of jepa.prepare (default: the experiment's)")
    ap.add_argument("--out", help="report directory (default: <run>/eval-<checkpoint name>)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    setup_logging()

    def run() -> int:
        path = Path(args.checkpoint)
        state = load_checkpoint(path)
        cfg = from_dict(ExperimentConfig, state["config"])
        out = Path(args.out) if args.out else path.parent / f"eval-{path.stem}"
        if (out / "report.json").exists():
            raise InputError(f"{out} already holds a report; give another --out")
        directory = data_dir(cfg.data or cfg.exp, args.data_dir)
        kind = cfg.student.name
        data = load_student_data(cfg, directory, signature_tokens=kind != "mlp", body_tokens=False)
        model = build_model(cfg, data.dim)
        load_weights(model, state["model"], str(path))
        device = resolve_device(args.device)
        evaluate_student(cfg, model.to(device), data, out, device=device, checkpoint=str(path))
        print((out / "report.md").read_text())
        return EXIT_OK

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
