"""One table across experiments: the "Full Comparison" table of the Phase 1.5 record, with baselines.

Usage::

    python -m graphrepair.compare RUN_DIR [RUN_DIR ...] [--out DIR]

Each ``RUN_DIR`` is a training run directory (its ``eval/report.json`` is read), an evaluation
directory holding ``report.json``, or a ``report.json`` itself. Writes ``comparison.md`` (one row per
experiment and one per baseline: Experiment | Model | One-shot @ 20% | Iterative @ 20% | ... plus
pass_rate columns) and ``comparison.png`` (grouped bars of one-shot and final repair_accuracy per
level, 95% CI error bars, the unigram baseline as a dashed line) into ``--out`` (default: the
current directory). Runs evaluated on different inputs (split, programs, seeds, iterations: the
report's ``inputs_id``) are still tabulated, with a warning in the file: their rows are not
comparable.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from graphrepair.evaluation.report import BASELINES, METHOD_LABELS, iterative_cell, level_label
from harness.io import atomic_write_text
from harness.report import Table, ci_cell, grouped_bar_plot, markdown_table

__all__ = ["compare", "load_report", "main"]

log = logging.getLogger(__name__)


def load_report(run: str | Path) -> dict:
    """The graphrepair ``report.json`` of ``run`` (run dir, eval dir, or the file itself).

    Raises:
        FileNotFoundError: no report there; the message names the paths tried and how to make one.
        ValueError: a report that is not a graphrepair evaluation report, or one written by an
            older version without confidence intervals (the message says how to redo it).
    """
    run = Path(run)
    tried = [run] if run.suffix == ".json" else [run / "eval" / "report.json", run / "report.json"]
    for path in tried:
        if path.is_file():
            report = json.loads(path.read_text())
            levels = report.get("results", {}).get("levels")
            if not isinstance(levels, dict):
                raise ValueError(f"{path} is not a graphrepair evaluation report (no results.levels)")
            if any("ci95" not in r for r in levels.values()):
                raise ValueError(
                    f"{path} was written by an older graphrepair.evaluate (no confidence intervals); "
                    f"evaluate the run again: python -m graphrepair.evaluate --checkpoint "
                    f"{path.parent.parent if path.parent.name == 'eval' else path.parent}/best.pt")
            report["_path"] = str(path)
            return report
    raise FileNotFoundError(
        f"run {str(run)!r} has no evaluation report (looked for {', '.join(map(str, tried))}); "
        f"evaluate it first: python -m graphrepair.evaluate --checkpoint {run}/best.pt")


def _model_name(cfg: dict) -> str:
    model = cfg.get("model", {})
    name = model.get("name", "?")
    if "use_test_guidance" in model:
        name += "" if model["use_test_guidance"] else " (no cross-attn)"
    return name


def compare(runs: Sequence[str | Path], out_dir: str | Path = ".") -> tuple[Path, Path, str]:
    """Tabulate and plot the evaluation reports of ``runs`` (see module docstring).

    Returns:
        (path of comparison.md, path of comparison.png, the table as Markdown).

    Raises:
        FileNotFoundError / ValueError: see :func:`load_report`; ``runs`` empty.
    """
    if not runs:
        raise ValueError("give at least one run directory")
    reports = [load_report(r) for r in runs]
    levels = list(dict.fromkeys(lv for r in reports for lv in r["results"]["levels"]))
    cols = ["Experiment", "Model"]
    for lv in levels:
        cols += [f"One-shot @ {level_label(lv)}", f"Iterative @ {level_label(lv)}"]
    cols += [f"Pass @ {level_label(lv)} (one-shot → final)" for lv in levels]
    rows, panels, hlines = [], {level_label(lv): {} for lv in levels}, {level_label(lv): {} for lv in levels}
    seen: set[str] = set()
    for i, rep in enumerate(reports):
        cfg, res = rep["config"], rep["results"]
        exp = f"Exp {cfg.get('exp', '?')}"
        exp = exp if exp not in seen else f"{exp} (#{i + 1})"  # the same experiment twice
        seen.add(exp)
        for method in ("model", *BASELINES):
            label = exp if method == "model" else f"{exp}: {METHOD_LABELS[method]}"
            row = [label, _model_name(cfg) if method in ("model", "feedback_zeroed") else "-"]
            pass_cells = []
            present = False
            for lv in levels:
                r = res["levels"].get(lv)
                s = None if r is None else (r if method == "model" else r["baselines"].get(method))
                if s is None:
                    row += ["n/a", "n/a"]
                    pass_cells.append("n/a")
                    continue
                present = True
                row += [ci_cell(s["one_shot"]["repair_accuracy"], s["ci95"]["one_shot"]["repair_accuracy"]),
                        iterative_cell(s, "repair_accuracy")]
                pass_cells.append(f"{ci_cell(s['one_shot']['pass_rate'], None)} → "
                                  f"{ci_cell(s['final']['pass_rate'], None)}")
                if method in ("model", "feedback_zeroed"):
                    name = exp if method == "model" else f"{exp} fb0"
                    panels[level_label(lv)][name] = {
                        "one-shot": (s["one_shot"]["repair_accuracy"], s["ci95"]["one_shot"]["repair_accuracy"]),
                        "final": (s["final"]["repair_accuracy"], s["ci95"]["final"]["repair_accuracy"])}
                elif method == "unigram":
                    hlines[level_label(lv)][f"unigram ({exp})"] = s["final"]["repair_accuracy"]
            if present:
                rows.append(row + pass_cells)
    ids = {r["results"].get("inputs_id") for r in reports}
    notes = [f"Runs: {', '.join(r['_path'] for r in reports)}.",
             "Cells: repair_accuracy mean ± 95% CI over seeds (none with n=1); Iterative = after the "
             "last iteration (improvement over one-shot in percentage points); Pass = pass_rate."]
    if len(ids) > 1:
        notes.append(f"WARNING: the runs were evaluated on different inputs (inputs ids {sorted(map(str, ids))}): "
                     "their rows are not comparable.")
    seeds = sorted({r["results"].get("n_seeds", 1) for r in reports})
    table = Table("Full Comparison", cols, rows,
                  caption=f"Split(s): {sorted({r['results']['split'] for r in reports})}; seeds: {seeds}.")
    md = markdown_table(table)
    out_dir = Path(out_dir)
    md_path = atomic_write_text(out_dir / "comparison.md", "# graphrepair comparison\n\n"
                                + "\n\n".join(notes) + "\n\n" + md)
    png = grouped_bar_plot(out_dir / "comparison.png", {k: v for k, v in panels.items() if v},
                           title="repair_accuracy: one-shot vs final per corruption level",
                           ylabel="repair_accuracy", hlines=hlines)
    return md_path, png, md


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (see module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m graphrepair.compare", description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (or report.json files)")
    ap.add_argument("--out", default=".", help="where comparison.md and comparison.png go (default: .)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        md_path, png, md = compare(args.runs, args.out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(md)
    print(f"comparison: {md_path}\n            {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
