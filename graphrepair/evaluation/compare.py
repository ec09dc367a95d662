"""One table across experiments: the "Full Comparison" table of the Phase 1.5 record, with baselines.

:func:`compare` reads the ``report.json`` of each run (:func:`load_report`: a run directory, its
``eval/`` directory, or the file itself; a seed group directory of ``train --seeds`` stands for its
runs, :mod:`harness.seeds`) and writes ``comparison.md`` and ``comparison.png`` into an output
directory. Runs of one experiment that differ only in ``train.seed`` and were evaluated on the same
inputs are one row (:mod:`graphrepair.evaluation.aggregate`; ``aggregate=False`` / ``--per-run``
keeps every run its own row); runs that differ in anything else are separate rows, and rows of one
experiment id say in what they differ.

* "Full Comparison": one row per experiment and, under it, one per baseline (feedback zeroed,
  feedback shuffled, search, unigram, copy: :data:`graphrepair.evaluation.report.BASELINES`, those
  that at least one compared run has; a row whose runs lack it, e.g. a report of an older
  evaluate, shows "n/a") (Experiment | Model | Seeds
  (training × corruption) | One-shot @ 20% | Iterative @ 20% | ... | Pass @ 20% (one-shot → final)
  ...), repair_accuracy mean ± 95% CI: Student t over the training seeds for a row of several runs
  (each run's value a mean over its corruption seeds, the same for every run), over the corruption
  seeds for a row of one run; and each run's in-vocabulary ceiling (when its report has one);
* "Paired differences against <first row>": every later row evaluated on the same inputs (the
  report's ``inputs_id``: split, programs, corruption levels and seeds, iterations) minus the first,
  per level, with a paired-bootstrap 95% CI over programs
  (:func:`graphrepair.evaluation.aggregate.paired_between`);
* "Improvement over one-shot": each row's final minus one-shot value of the model and of each
  baseline with iterations (feedback zeroed, feedback shuffled, search) on the same programs, with
  a paired-bootstrap 95% CI over programs
  (:func:`graphrepair.evaluation.aggregate.paired_improvement`);
* "Model vs its baselines after the last iteration": each row's model minus its feedback-zeroed,
  feedback-shuffled and search baselines at the last iteration, paired over programs
  (:func:`graphrepair.evaluation.report.paired_differences`): does the model beat the same model
  fed no or another program's feedback, and the search with its test executions?
* ``comparison.png``: grouped bars of one-shot and final repair_accuracy per level for each
  experiment and its feedback-zeroed baseline (95% CI error bars where there are several seeds),
  the unigram baseline as a dashed line.

The paired tables pool a row's per-program outcomes over its runs and corruption seeds; they need
the per-program outcomes that reports carry since evaluate kept them, and a report without them is
named with "evaluate again".

Runs evaluated on different inputs are still tabulated, with a warning in the file: their rows are
not comparable.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from graphrepair.evaluation.aggregate import (
    aggregate_reports,
    config_differences,
    group_reports,
    paired_between,
    paired_improvement,
)
from graphrepair.evaluation.report import (
    BASELINES,
    CEILING_LABEL,
    DIFFERENCE,
    METHOD_LABELS,
    PAIRED_METRICS,
    REFINED_BASELINES,
    ceiling_cell,
    iterative_cell,
    level_label,
    paired_differences,
)
from harness.io import atomic_write_text
from harness.report import Estimate, Interval, Table, ci_cell, grouped_bar_plot, markdown_table
from harness.seeds import is_seed_group, read_seed_group

__all__ = ["compare", "expand_runs", "load_report"]

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


def _experiment_labels(rows: Sequence[dict]) -> tuple[list[str], list[str]]:
    """Row labels (``Exp 3d``, ``Exp 3d (#2)`` for a second row of the same id) and notes saying
    in what such a row differs from the first row of its id."""
    labels, notes, first = [], [], {}
    for i, row in enumerate(rows):
        exp = f"Exp {row['config'].get('exp', '?')}"
        if exp in first:  # the same experiment id, another configuration or other inputs
            j = first[exp]
            label = f"{exp} (#{i + 1})"
            diffs = config_differences(rows[j], row)
            shown = "; ".join(diffs[:6]) + (f"; ... ({len(diffs)} in all)" if len(diffs) > 6 else "")
            notes.append(f"{label} is not aggregated with {labels[j]}: "
                         + (f"it differs in {shown}." if diffs else "the same configuration and "
                            "inputs (tabulated per run)."))
        else:
            first[exp], label = i, exp
        labels.append(label)
    return labels, notes


def _seeds_cell(row: dict) -> str:
    """``"3 × 2"``: training seeds (runs) × corruption seeds per run."""
    return f"{row['results'].get('n_runs', 1)} × {int(row['results'].get('n_seeds', 1))}"


def _interval(rows: Sequence[dict]) -> Interval:
    """The Full Comparison's interval: over training seeds where a row has several runs, else over
    the corruption seeds of its one run."""
    runs = [r["results"].get("n_runs", 1) for r in rows]
    if all(n == 1 for n in runs):
        return Interval.student_t([int(r["results"].get("n_seeds", 1)) for r in rows], "corruption seeds")
    ns = [n if n > 1 else int(r["results"].get("n_seeds", 1)) for n, r in zip(runs, rows)]
    over = "training seeds" if all(n > 1 for n in runs) else \
        "training seeds (a row of one run: its corruption seeds)"
    return Interval.student_t(ns, over)


def expand_runs(runs: Sequence[str | Path]) -> list[Path]:
    """``runs`` with every seed group directory replaced by its runs, in seed order
    (:func:`harness.seeds.read_seed_group`).

    Raises:
        FileNotFoundError: a seed group's run has no directory (the message says how to train it).
        ValueError: a malformed ``seeds.json``.
    """
    out = []
    for run in map(Path, runs):
        if not is_seed_group(run):
            out.append(run)
            continue
        meta = read_seed_group(run)
        for seed, name in zip(meta["seeds"], meta["runs"]):
            if not (run / name).is_dir():
                raise FileNotFoundError(
                    f"seed group {run}: {run / name} does not exist (the group was interrupted before "
                    f"this seed); train it with --exp {meta.get('exp', '<ID>')} --set "
                    f"train.seed={seed} --run-dir {run / name}, or pass the group's finished runs "
                    f"one by one")
            out.append(run / name)
    return out


def _no_outcomes(row: dict, label: str, lv: str) -> str:
    return (f"{label} at {level_label(lv)}: {', '.join(row['_paths'])} has no per-program outcomes "
            f"(written by an older graphrepair.evaluate); evaluate it again for a paired difference.")


def _malformed(row: dict, lv: str, exc: Exception) -> ValueError:
    return ValueError(f"{', '.join(row['_paths'])}: malformed per_program at level {lv} "
                      f"({type(exc).__name__}: {exc}); {_evaluate_again(Path(row['_path']))}")


def _estimate(d: dict) -> Estimate:
    return Estimate(_nan(d["value"]), low=d["low"], high=d["high"])


def _paired_against_first(rows: Sequence[dict], labels: Sequence[str]) -> tuple[Table | None, list[str]]:
    """Later rows on the first row's inputs minus the first row, per level; notes on rows left out."""
    first, notes = rows[0], []
    out = []
    for row, label in zip(rows[1:], labels[1:]):
        if row["results"].get("inputs_id") != first["results"].get("inputs_id"):
            notes.append(f"{label} was evaluated on other inputs than {labels[0]}: no paired difference.")
            continue
        for lv, r in row["results"]["levels"].items():
            ours, theirs = (first["results"]["levels"].get(lv) or {}).get("per_program"), r.get("per_program")
            if not ours or not theirs:
                notes.append(_no_outcomes(row if not theirs else first, label, lv))
                continue
            try:
                d = paired_between(theirs, ours)
            except ValueError as exc:
                if str(exc) not in ("other programs", "other masks"):
                    raise _malformed(row, lv, exc) from None
                notes.append(f"{label} at {level_label(lv)}: {exc} than {labels[0]}.")
                continue
            except (KeyError, TypeError) as exc:  # re-raised with the files named
                raise _malformed(row, lv, exc) from None
            out.append([f"{label} − {labels[0]}", level_label(lv),
                        *[_estimate(d[stage][m]) for m in PAIRED_METRICS for stage in ("one_shot", "final")]])
    if not out:
        return None, notes
    cols = ["Rows", "Corruption", *[f"{m} {stage}" for m in PAIRED_METRICS for stage in ("one-shot", "final")]]
    return Table(f"Paired differences against {labels[0]} (same inputs)", cols, out,
                 caption="Model minus model on the same corrupted programs, in percentage points "
                         "(> 0: the later row is better); a row of several runs pools their outcomes "
                         "per program.", fmt=DIFFERENCE,
                 interval=Interval.bootstrap(first["results"].get("programs") or len(ours["task_ids"]),
                                             "programs", paired=True)), notes


def _pooled_levels(rows: Sequence[dict], labels: Sequence[str]):
    """``(row, label, level, pooled per-program outcomes)`` of every level that has outcomes."""
    for row, label in zip(rows, labels):
        for lv, r in row["results"]["levels"].items():
            if r.get("per_program"):
                yield row, label, lv, r["per_program"]


def _paired_rows(rows: Sequence[dict], labels: Sequence[str], cells) -> tuple[list[list], int]:
    """Table rows ``cells(label, level, pooled)`` over :func:`_pooled_levels`, and the largest
    number of programs (for the bootstrap caption); malformed outcomes name their files."""
    out, n = [], 0
    for row, label, lv, pooled in _pooled_levels(rows, labels):
        n = max(n, len(pooled["task_ids"]))
        try:
            out += cells(label, level_label(lv), pooled)
        except (KeyError, TypeError, ValueError) as exc:
            raise _malformed(row, lv, exc) from None
    return out, n


def _improvements(rows: Sequence[dict], labels: Sequence[str]) -> Table | None:
    """Final minus one-shot of each row's model and feedback-zeroed baseline, paired over programs."""
    def cells(label: str, level: str, pooled: dict) -> list[list]:
        out = []
        for method in ("model", *REFINED_BASELINES):
            if method in pooled.get("methods", {}):
                d = paired_improvement(pooled, method)
                name = label if method == "model" else f"{label}: {METHOD_LABELS[method]}"
                out.append([name, level, *[_estimate(d[m]) for m in PAIRED_METRICS]])
        return out

    out, n = _paired_rows(rows, labels, cells)
    if not out:
        return None
    return Table("Improvement over one-shot (paired bootstrap over programs)",
                 ["Row", "Corruption", *[f"{m} final − one-shot" for m in PAIRED_METRICS]], out,
                 caption="The last iteration minus iteration 0 of the same row on the same "
                         "corrupted programs, in percentage points; a row of several runs pools "
                         "their outcomes per program.", fmt=DIFFERENCE,
                 interval=Interval.bootstrap(n, "programs", paired=True))


def _model_vs_baselines(rows: Sequence[dict], labels: Sequence[str]) -> Table | None:
    """Final value of each row's model minus each of its refined baselines, paired over programs."""
    def cells(label: str, level: str, pooled: dict) -> list[list]:
        if "model" not in pooled.get("methods", {}):
            return []
        diffs = paired_differences(pooled)
        return [[f"{label} − {METHOD_LABELS[method]}", level,
                 *[_estimate(diffs[method]["final"][m]) for m in PAIRED_METRICS]]
                for method in REFINED_BASELINES if method in diffs]

    out, n = _paired_rows(rows, labels, cells)
    if not out:
        return None
    return Table("Model vs its baselines after the last iteration (paired bootstrap over programs)",
                 ["Rows", "Corruption", *[f"{m} final" for m in PAIRED_METRICS]], out,
                 caption="The model minus the same model with feedback zeroed or shuffled, and minus "
                         "the search baseline with its test executions, on the same corrupted "
                         "programs, in percentage points (> 0: the model is better); a row of "
                         "several runs pools their outcomes per program.", fmt=DIFFERENCE,
                 interval=Interval.bootstrap(n, "programs", paired=True))


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def compare(runs: Sequence[str | Path], out_dir: str | Path = ".", *,
            aggregate: bool = True) -> tuple[Path, Path, str]:
    """Tabulate and plot the evaluation reports of ``runs`` (see module docstring).

    Args:
        runs: run directories, evaluation directories, ``report.json`` files or seed groups.
        out_dir: where ``comparison.md`` and ``comparison.png`` go.
        aggregate: runs of one experiment with different training seeds become one row
            (:func:`graphrepair.evaluation.aggregate.group_reports`); ``False``: one row per run.

    Returns:
        (path of comparison.md, path of comparison.png, the Full Comparison table as Markdown).

    Raises:
        FileNotFoundError / OSError / ValueError: see :func:`load_report` and :func:`expand_runs`;
            ``runs`` empty; two runs of one experiment with the same ``train.seed`` (with
            ``aggregate``); runs of one experiment whose levels or outcomes do not line up.
    """
    if not runs:
        raise ValueError("give at least one run directory")
    reports = [load_report(r) for r in expand_runs(runs)]
    reports = [aggregate_reports(g) for g in group_reports(reports, aggregate=aggregate)]
    levels = list(dict.fromkeys(lv for r in reports for lv in r["results"]["levels"]))
    labels, label_notes = _experiment_labels(reports)
    cols = ["Experiment", "Model", "Seeds (training × corruption)"]
    for lv in levels:
        cols += [f"One-shot @ {level_label(lv)}", f"Iterative @ {level_label(lv)}"]
    cols += [f"Pass @ {level_label(lv)} (one-shot → final)" for lv in levels]
    rows, panels, hlines = [], {level_label(lv): {} for lv in levels}, {level_label(lv): {} for lv in levels}
    shown = [b for b in BASELINES if any(b in r.get("baselines", {}) for rep in reports
                                         for r in rep["results"]["levels"].values())]
    for rep, exp in zip(reports, labels):
        cfg, res = rep["config"], rep["results"]
        for method in ("model", *shown):
            label = exp if method == "model" else f"{exp}: {METHOD_LABELS[method]}"
            same_model = method in ("model", "feedback_zeroed", "feedback_shuffled")
            row = [label, _model_name(cfg) if same_model else "-", _seeds_cell(rep)]
            pass_cells = []
            for lv in levels:
                r = res["levels"].get(lv)
                s = None if r is None else (r if method == "model" else r.get("baselines", {}).get(method))
                if s is None:
                    row += ["n/a", "n/a"]
                    pass_cells.append("n/a")
                    continue
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
            rows.append(row + pass_cells)
        found = [res["levels"].get(lv) for lv in levels]
        if any(r is not None and r.get("in_vocab_ceiling") is not None for r in found):
            rows.append([f"{exp}: {CEILING_LABEL}", "-", "-",
                         *[ceiling_cell(r, "repair_accuracy") if r else "n/a" for r in found for _ in (0, 1)],
                         *[ceiling_cell(r, "pass_rate") if r else "n/a" for r in found]])
    ids = {r["results"].get("inputs_id") for r in reports}
    notes = ["Runs: " + "; ".join(
                 f"{label}: {r['_path']}" if len(r["_paths"]) == 1 else
                 f"{label}: train.seed {', '.join(map(str, r['train_seeds']))} ({', '.join(r['_paths'])})"
                 for r, label in zip(reports, labels)) + ".",
             "Cells: repair_accuracy; Iterative = after the last iteration (improvement over "
             "one-shot in percentage points); Pass = pass_rate. Seeds: runs with different "
             "training seeds (train.seed) × corruption seeds of each run's evaluation. "
             "In-vocabulary ceiling: the best repair_accuracy (and, under Pass, exact repair) any "
             "model that writes only vocabulary texts can reach on the run's corrupted programs. "
             "n/a: not evaluated (a level the run lacks, or a baseline it was not evaluated with, "
             "e.g. in a report of an older graphrepair.evaluate).",
             *label_notes]
    if len(ids) > 1:
        notes.append(f"WARNING: the runs were evaluated on different inputs (inputs ids {sorted(map(str, ids))}): "
                     "their rows are not comparable.")
    table = Table("Full Comparison", cols, rows,
                  caption=f"Split(s): {sorted({r['results']['split'] for r in reports})}.",
                  interval=_interval(reports))
    md = markdown_table(table)
    paired, paired_notes = _paired_against_first(reports, labels)
    notes += paired_notes
    extra = [t for t in (paired, _improvements(reports, labels), _model_vs_baselines(reports, labels))
             if t is not None]
    out_dir = Path(out_dir)
    md_path = atomic_write_text(out_dir / "comparison.md", "# graphrepair comparison\n\n"
                                + "\n\n".join(notes) + "\n\n" + md
                                + "".join("\n" + markdown_table(t) for t in extra))
    png = grouped_bar_plot(out_dir / "comparison.png", {k: v for k, v in panels.items() if v},
                           title="repair_accuracy: one-shot vs final per corruption level",
                           ylabel="repair_accuracy", hlines=hlines)
    return md_path, png, md
