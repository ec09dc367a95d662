"""Iterative-refinement evaluation of a trained refiner, with real test execution, and its report.

Usage::

    python -m graphrepair.evaluate --checkpoint runs/3d-.../best.pt --corruption 0.2 0.5 0.75 [--iterations K]

For each corruption level the same seeded corrupted programs (identical for every model compared)
are refined for K iterations (DESIGN.md loop: predict -> decode -> run tests -> feedback), and the
four DESIGN.md metrics are recorded at every iteration. A *unigram* baseline row fills every mask
with the most frequent eligible leaf text of the training split and is evaluated on the same inputs,
its tests executed the same way. Output: ``report.json`` and ``report.md`` (+ a PNG plot) via
:mod:`harness.report`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

from graphrepair.config import ExperimentConfig
from graphrepair.dataset import PreparedData, fixed_states, prepare
from graphrepair.models import build_model, load_weights
from graphrepair.refine import METRICS, ProgramState, Refiner, refine, state_metrics
from graphrepair.vocab import Vocabulary
from harness.config import from_dict, to_dict
from harness.report import Table, line_plot, markdown_table, write_report
from harness.trainer import load_checkpoint

__all__ = ["evaluate", "evaluate_checkpoint", "main"]

log = logging.getLogger(__name__)


def _pct(level: float) -> str:
    return f"{level * 100:g}%"


def _pp(delta: float) -> str:
    return f"{delta * 100:+.1f} pp"


def evaluate(
    cfg: ExperimentConfig,
    model: torch.nn.Module,
    data: PreparedData,
    out_dir: str | Path,
    *,
    levels: list[float] | None = None,
    iterations: int | None = None,
    split: str | None = None,
    programs: int | None = None,
    checkpoint: str = "",
    device: str | torch.device = "cpu",
) -> tuple[dict, Path, Path, str]:
    """Evaluate ``model`` and write the report into ``out_dir``.

    Args:
        cfg: the experiment configuration the model was trained with (``eval`` gives defaults).
        model: the refiner (weights loaded).
        data: prepared programs encoded with the model's vocabulary.
        out_dir: where ``report.json``, ``report.md`` and ``refinement.png`` go.
        levels, iterations, split, programs: override ``cfg.eval``.
        checkpoint: path recorded in the report.
        device: where the model runs.

    Returns:
        (results dict, report.json path, report.md path, the summary table as Markdown).

    Raises:
        ValueError: an empty evaluation split or a level outside [0, 1].
    """
    ev = cfg.eval
    levels = list(levels if levels is not None else ev.corruption)
    iterations = iterations or ev.iterations
    split = split or ev.split
    n_programs = ev.programs if programs is None else programs
    pool = data.splits[split]
    if not pool:
        raise ValueError(f"the {split!r} split is empty; choose another --split")
    pool = pool[:n_programs] if n_programs else pool
    refiner = Refiner.from_config(model, data.vocab, cfg, device)
    t0 = time.perf_counter()
    per_level: dict[str, dict] = {}
    for level in levels:
        log.info("evaluating %d programs at %s corruption, %d iterations", len(pool), _pct(level), iterations)
        states = [s for _, s in fixed_states(pool, [level], len(pool), ev.seed, data.vocab)]
        baseline = [ProgramState.start(s.enc, s.masked, data.vocab) for s in states]
        runs0 = refiner.test_runs
        history = refine(refiner, states, iterations,
                         feedback_at_iteration0=cfg.feedback.feedback_at_iteration0, progress=True)
        for b in baseline:  # unigram: every mask -> the most frequent eligible training token
            b.texts = [data.unigram if t is None else t for t in b.texts]
        refiner.run_tests(baseline)
        for row in history:  # program runs counted from the start of this level
            row["test_runs"] -= runs0
        one, fin = history[0], history[-1]
        per_level[f"{level:g}"] = {
            "per_iteration": history,
            "one_shot": {k: one[k] for k in METRICS},
            "final": {k: fin[k] for k in METRICS},
            "improvement_pp": {k: (fin[k] - one[k]) * 100 for k in METRICS},
            "baselines": {"unigram": state_metrics(baseline)},
            "test_runs": refiner.test_runs - runs0,  # model iterations + unigram baseline
            "masked_leaves": int(sum(s.masked.sum() for s in states)),
        }
    results = {
        "checkpoint": checkpoint,
        "split": split,
        "dataset": cfg.data.dataset,
        "programs": len(pool),
        "iterations": iterations,
        "seed": ev.seed,
        "levels": per_level,
        "oov_rate": data.oov_rate,
        "skipped_programs": data.skipped,
        "near_duplicates_removed": data.near_duplicates_removed,
        "test_runs": refiner.test_runs,
        "cache_hits": refiner.cache_hits,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out_dir = Path(out_dir)
    tables = _tables(cfg, results)
    plot = "refinement.png"
    line_plot(
        out_dir / plot,
        {f"{k} @ {_pct(float(lv))}": [h[k] for h in r["per_iteration"]]
         for lv, r in per_level.items() for k in ("repair_accuracy", "pass_rate")},
        title=f"Exp {cfg.exp}: iterative refinement ({split}, n={len(pool)})",
        xlabel="iteration (0 = one-shot)", ylabel="fraction",
    )
    notes = [f"**{cfg.description}**" if cfg.description else "",
             f"Split `{split}` of {cfg.data.dataset}: {len(pool)} programs per level, "
             f"{iterations} iterations, corruption seed {ev.seed}; every number comes from "
             f"executing the programs' tests ({results['test_runs']} program runs, "
             f"{results['seconds']} s)."]
    json_path, md_path = write_report(
        out_dir, title=f"graphrepair evaluation — Exp {cfg.exp}", results=results, tables=tables,
        config=to_dict(cfg), notes=[n for n in notes if n], plots=[plot],
    )
    return results, json_path, md_path, markdown_table(tables[0])


def _tables(cfg: ExperimentConfig, results: dict) -> list[Table]:
    levels = results["levels"]
    cols = ["Model"]
    model_row: list = [f"Exp {cfg.exp}"]
    base_row: list = ["unigram baseline"]
    for lv, r in levels.items():
        p = _pct(float(lv))
        cols += [f"One-shot @ {p}", f"Iterative @ {p}", f"Improvement @ {p}"]
        model_row += [r["one_shot"]["repair_accuracy"], r["final"]["repair_accuracy"],
                      _pp(r["improvement_pp"]["repair_accuracy"] / 100)]
        u = r["baselines"]["unigram"]["repair_accuracy"]
        base_row += [u, u, _pp(0.0)]
    tables = [Table("Summary (repair_accuracy)", cols, [model_row, base_row],
                    caption="repair_accuracy = fraction of corrupted leaves restored to the reference token.")]
    rows = []
    for lv, r in levels.items():
        rows.append([_pct(float(lv)), r["one_shot"]["repair_accuracy"], r["final"]["repair_accuracy"],
                     _pp(r["improvement_pp"]["repair_accuracy"] / 100)])
    tables.append(Table("Iterative refinement", ["Corruption", "One-shot", "Final", "Improvement"], rows))
    for lv, r in levels.items():
        detail = [[f"iteration {i}"] + [h[k] for k in METRICS] + [int(h["test_runs"])]
                  for i, h in enumerate(r["per_iteration"])]
        detail.append(["unigram baseline"] + [r["baselines"]["unigram"][k] for k in METRICS] + ["-"])
        tables.append(Table(f"Corruption {_pct(float(lv))}: all metrics per iteration",
                            ["Row", *METRICS, "program runs so far"], detail))
    return tables


def load_for_eval(path: str | Path, data_dir: str | None = None, device: str = "cpu"):
    """Load a checkpoint: (config, model with weights, prepared data encoded with its vocabulary).

    Raises:
        FileNotFoundError / RuntimeError: missing or corrupt checkpoint (see
            :func:`harness.trainer.load_checkpoint`), or weights that do not fit the model its
            config describes (:func:`graphrepair.models.load_weights`).
    """
    ckpt = load_checkpoint(path)
    cfg = from_dict(ExperimentConfig, ckpt["config"])
    if data_dir:
        cfg.data.data_dir = data_dir
    vocab = Vocabulary.from_dict(ckpt["extra"]["vocab"])
    data = prepare(cfg, vocab=vocab)
    model = build_model(cfg, vocab)
    load_weights(model, ckpt["model"], str(path))
    return cfg, model.to(device), data


def evaluate_checkpoint(path: str | Path, out_dir: str | Path | None = None, *,
                        data_dir: str | None = None, device: str = "cpu", **kwargs):
    """Load ``path`` and :func:`evaluate` it; the report goes to ``out_dir`` (default: beside it)."""
    cfg, model, data = load_for_eval(path, data_dir, device)
    out = Path(out_dir) if out_dir else Path(path).parent / "eval"
    return evaluate(cfg, model, data, out, checkpoint=str(path), device=device, **kwargs)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (see module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m graphrepair.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True, help="a best.pt / last.pt written by graphrepair.train")
    ap.add_argument("--corruption", type=float, nargs="+", help="levels, e.g. 0.2 0.5 0.75")
    ap.add_argument("--iterations", type=int, help="refinement iterations K (iteration 0 included)")
    ap.add_argument("--split", choices=["val", "test"])
    ap.add_argument("--programs", type=int, help="at most this many programs per level (0 = all)")
    ap.add_argument("--data-dir", help="dataset directory (default: $GRAPHREPAIR_DATA or the cache)")
    ap.add_argument("--out", help="report directory (default: <checkpoint dir>/eval)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        _, json_path, md_path, table = evaluate_checkpoint(
            args.checkpoint, args.out, data_dir=args.data_dir, levels=args.corruption,
            iterations=args.iterations, split=args.split, programs=args.programs,
        )
    except (FileNotFoundError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table)
    print(f"report: {md_path}\n        {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
