"""One table across experiments: the "Full Comparison" table of the Phase 1.5 record, with baselines.

:func:`compare` reads the ``report.json`` of each run (:func:`load_report`: a run directory, its
``eval/`` directory, or the file itself) and writes ``comparison.md`` and ``comparison.png`` into
an output directory:

* "Full Comparison": one row per experiment and one per baseline (Experiment | Model | One-shot @
  20% | Iterative @ 20% | ... | Pass @ 20% (one-shot → final) ...), repair_accuracy mean ± 95% CI
  over seeds, and each run's in-vocabulary ceiling (when its report has one);
* "Paired differences against <first run>": every later run evaluated on the same inputs (the
  report's ``inputs_id``: split, programs, corruption seeds, iterations) minus the first, per level,
  with a paired-bootstrap 95% CI over programs (:func:`graphrepair.evaluation.report.paired_differences`).
  It needs the per-program outcomes that reports carry since evaluate kept them; a report without
  them is named with "evaluate again";
* ``comparison.png``: grouped bars of one-shot and final repair_accuracy per level for each
  experiment and its feedback-zeroed baseline (95% CI error bars where there are several seeds),
  the unigram baseline as a dashed line.

Runs evaluated on different inputs are still tabulated, with a warning in the file: their rows are
not comparable.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from graphrepair.evaluation.report import (
    BASELINES,
    CEILING_LABEL,
    DIFFERENCE,
    METHOD_LABELS,
    PAIRED_METRICS,
    ceiling_cell,
    iterative_cell,
    level_label,
    paired_differences,
)
from harness.io import atomic_write_text
from harness.report import Estimate, Interval, Table, ci_cell, grouped_bar_plot, markdown_table

__all__ = ["compare", "load_report"]

log = logging.getLogger(__name__)

# (path inside a method summary, must be a number or null) for every number compare shows
_METHOD_NUMBERS = (("one_shot", "repair_accuracy"), ("one_shot", "pass_rate"), ("final", "repair_accuracy"),
                   ("final", "pass_rate"), ("ci95", "one_shot", "repair_accuracy"),
                   ("ci95", "final", "repair_accuracy"), ("improvement_pp", "repair_accuracy"))


def _evaluate_again(path: Path) -> str:
    run = path.parent.parent if path.parent.name == "eval" else path.parent
    return f"evaluate the run again: python -m graphrepair.evaluate --checkpoint {run}/best.pt"


def _read_json(path: Path) -> object:
    """The parsed file; every failure is a ValueError/OSError whose message names ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not a text file (byte {exc.start} is not UTF-8); expected the "
                         f"report.json written by python -m graphrepair.evaluate") from None
    except OSError as exc:
        raise OSError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                         f"expected the report.json written by python -m graphrepair.evaluate") from None


def _check_report(report: object, path: Path) -> None:
    """Raise ValueError naming ``path`` and the first missing or mistyped field compare needs."""
    results = report.get("results") if isinstance(report, dict) else None
    levels = results.get("levels") if isinstance(results, dict) else None
    if not isinstance(levels, dict) or not levels:
        raise ValueError(f"{path} is not a graphrepair evaluation report (no results.levels)")
    if any(isinstance(r, dict) and "ci95" not in r for r in levels.values()):
        raise ValueError(f"{path} was written by an older graphrepair.evaluate (no confidence "
                         f"intervals); {_evaluate_again(path)}")

    def bad(where: str, what: str) -> ValueError:
        return ValueError(f"{path} is a malformed graphrepair evaluation report: {where} {what}; "
                          f"{_evaluate_again(path)}")

    if not isinstance(report.get("config"), dict):
        raise bad("config", "is missing or not an object")
    if not isinstance(report["config"].get("model", {}), dict):
        raise bad("config.model", "is not an object")
    if not isinstance(results.get("split"), str):
        raise bad("results.split", "is missing or not a string")
    for lv, r in levels.items():
        where = f"results.levels[{lv!r}]"
        try:
            float(lv)
        except ValueError:
            raise bad(where, "is not a corruption level (a number such as '0.2')") from None
        if not isinstance(r, dict):
            raise bad(where, "is not an object")
        if not isinstance(r.get("baselines", {}), dict):
            raise bad(f"{where}.baselines", "is not an object")
        for name, s in [("", r), *((f".baselines.{b}", r["baselines"][b]) for b in BASELINES
                                   if b in r.get("baselines", {}))]:
            for keys in _METHOD_NUMBERS:
                obj, trail = s, where + name
                for k in keys:
                    if not isinstance(obj, dict) or k not in obj:
                        raise bad(trail, f"has no {k!r}")
                    obj, trail = obj[k], f"{trail}.{k}"
                if obj is not None and (isinstance(obj, bool) or not isinstance(obj, (int, float))):
                    raise bad(trail, f"is {obj!r}, not a number")


def load_report(run: str | Path) -> dict:
    """The graphrepair ``report.json`` of ``run`` (run dir, eval dir, or the file itself), checked.

    Every error message names the file.

    Raises:
        FileNotFoundError: no report there; the message names the paths tried and how to make one.
        OSError: the file cannot be read.
        ValueError: a file that is not UTF-8 JSON, not a graphrepair evaluation report, one written
            by an older version without confidence intervals, or one missing a field compare shows
            (the message says which, and how to redo it).
    """
    run = Path(run)
    tried = [run] if run.suffix == ".json" else [run / "eval" / "report.json", run / "report.json"]
    for path in tried:
        if path.is_file():
            report = _read_json(path)
            _check_report(report, path)
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


def _experiment_labels(reports: Sequence[dict]) -> list[str]:
    labels, seen = [], set()
    for i, rep in enumerate(reports):
        exp = f"Exp {rep['config'].get('exp', '?')}"
        exp = exp if exp not in seen else f"{exp} (#{i + 1})"  # the same experiment twice
        seen.add(exp)
        labels.append(exp)
    return labels


def _paired_against_first(reports: Sequence[dict], labels: Sequence[str]) -> tuple[Table | None, list[str]]:
    """Later runs on the first run's inputs minus the first run, per level; notes on runs left out."""
    first, notes = reports[0], []
    rows = []
    for rep, label in zip(reports[1:], labels[1:]):
        if rep["results"].get("inputs_id") != first["results"].get("inputs_id"):
            notes.append(f"{label} was evaluated on other inputs than {labels[0]}: no paired difference.")
            continue
        for lv, r in rep["results"]["levels"].items():
            ours, theirs = (first["results"]["levels"].get(lv) or {}).get("per_program"), r.get("per_program")
            if not ours or not theirs:
                missing = rep["_path"] if not theirs else first["_path"]
                notes.append(f"{label} at {level_label(lv)}: {missing} has no per-program outcomes "
                             f"(written by an older graphrepair.evaluate); evaluate it again for a "
                             f"paired difference.")
                continue
            if ours["task_ids"] != theirs["task_ids"] or ours["masked"] != theirs["masked"]:
                notes.append(f"{label} at {level_label(lv)}: other programs or masks than {labels[0]}.")
                continue
            try:
                pooled = dict(ours, methods={"first": ours["methods"]["model"], "this": theirs["methods"]["model"]})
                d = paired_differences(pooled, "this")["first"]
            except (KeyError, TypeError, ValueError) as exc:  # re-raised with the files named
                raise ValueError(f"{rep['_path']} or {first['_path']}: malformed per_program at level "
                                 f"{lv} ({type(exc).__name__}: {exc}); {_evaluate_again(Path(rep['_path']))}") from None
            rows.append([f"{label} − {labels[0]}", level_label(lv),
                         *[Estimate(_nan(d[stage][m]["value"]), low=d[stage][m]["low"], high=d[stage][m]["high"])
                           for m in PAIRED_METRICS for stage in ("one_shot", "final")]])
    if not rows:
        return None, notes
    cols = ["Runs", "Corruption", *[f"{m} {stage}" for m in PAIRED_METRICS for stage in ("one-shot", "final")]]
    return Table(f"Paired differences against {labels[0]} (same inputs)", cols, rows,
                 caption="Model minus model on the same corrupted programs, in percentage points "
                         "(> 0: the later run is better).", fmt=DIFFERENCE,
                 interval=Interval.bootstrap(first["results"].get("programs", len(ours["task_ids"])),
                                             "programs", paired=True)), notes


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def compare(runs: Sequence[str | Path], out_dir: str | Path = ".") -> tuple[Path, Path, str]:
    """Tabulate and plot the evaluation reports of ``runs`` (see module docstring).

    Returns:
        (path of comparison.md, path of comparison.png, the Full Comparison table as Markdown).

    Raises:
        FileNotFoundError / OSError / ValueError: see :func:`load_report`; ``runs`` empty.
    """
    if not runs:
        raise ValueError("give at least one run directory")
    reports = [load_report(r) for r in runs]
    levels = list(dict.fromkeys(lv for r in reports for lv in r["results"]["levels"]))
    labels = _experiment_labels(reports)
    cols = ["Experiment", "Model"]
    for lv in levels:
        cols += [f"One-shot @ {level_label(lv)}", f"Iterative @ {level_label(lv)}"]
    cols += [f"Pass @ {level_label(lv)} (one-shot → final)" for lv in levels]
    rows, panels, hlines = [], {level_label(lv): {} for lv in levels}, {level_label(lv): {} for lv in levels}
    for rep, exp in zip(reports, labels):
        cfg, res = rep["config"], rep["results"]
        for method in ("model", *BASELINES):
            label = exp if method == "model" else f"{exp}: {METHOD_LABELS[method]}"
            row = [label, _model_name(cfg) if method in ("model", "feedback_zeroed") else "-"]
            pass_cells = []
            present = False
            for lv in levels:
                r = res["levels"].get(lv)
                s = None if r is None else (r if method == "model" else r.get("baselines", {}).get(method))
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
                    name = exp if method == "model" else f"{exp}, feedback zeroed"
                    panels[level_label(lv)][name] = {
                        "one-shot": (s["one_shot"]["repair_accuracy"], s["ci95"]["one_shot"]["repair_accuracy"]),
                        "final": (s["final"]["repair_accuracy"], s["ci95"]["final"]["repair_accuracy"])}
                elif method == "unigram":
                    hlines[level_label(lv)][f"unigram baseline ({exp})"] = s["final"]["repair_accuracy"]
            if present:
                rows.append(row + pass_cells)
        found = [res["levels"].get(lv) for lv in levels]
        if any(r is not None and r.get("in_vocab_ceiling") is not None for r in found):
            rows.append([f"{exp}: {CEILING_LABEL}", "-",
                         *[ceiling_cell(r, "repair_accuracy") if r else "n/a" for r in found for _ in (0, 1)],
                         *[ceiling_cell(r, "pass_rate") if r else "n/a" for r in found]])
    ids = {r["results"].get("inputs_id") for r in reports}
    notes = [f"Runs: {', '.join(r['_path'] for r in reports)}.",
             "Cells: repair_accuracy; Iterative = after the last iteration (improvement over "
             "one-shot in percentage points); Pass = pass_rate. In-vocabulary ceiling: the best "
             "repair_accuracy (and, under Pass, exact repair) any model that writes only vocabulary "
             "texts can reach on the run's corrupted programs."]
    if len(ids) > 1:
        notes.append(f"WARNING: the runs were evaluated on different inputs (inputs ids {sorted(map(str, ids))}): "
                     "their rows are not comparable.")
    seeds = [int(r["results"].get("n_seeds", 1)) for r in reports]
    table = Table("Full Comparison", cols, rows,
                  caption=f"Split(s): {sorted({r['results']['split'] for r in reports})}; seeds: {sorted(set(seeds))}.",
                  interval=Interval.student_t(seeds))
    md = markdown_table(table)
    paired, paired_notes = _paired_against_first(reports, labels)
    notes += paired_notes
    out_dir = Path(out_dir)
    md_path = atomic_write_text(out_dir / "comparison.md", "# graphrepair comparison\n\n"
                                + "\n\n".join(notes) + "\n\n" + md
                                + ("" if paired is None else "\n" + markdown_table(paired)))
    png = grouped_bar_plot(out_dir / "comparison.png", {k: v for k, v in panels.items() if v},
                           title="repair_accuracy: one-shot vs final per corruption level",
                           ylabel="repair_accuracy", hlines=hlines)
    return md_path, png, md
