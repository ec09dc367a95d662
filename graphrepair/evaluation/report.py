"""Aggregation over seeds, tables and plots of an iterative-refinement evaluation.

:mod:`graphrepair.evaluation.evaluate` produces one *unit* per (seed, corruption level): the per-iteration
metric rows of every method on the same corrupted inputs. This module turns the units into the
``results`` of ``report.json`` (means with Student-t 95% CIs over seeds, :func:`summarize`), the
tables of the Phase 1.5 record (:func:`report_tables`) and the PNG plots (:func:`report_plots`).

Methods (every table carries all four, DESIGN.md "Metrics"):

* ``model``: the refiner with real test feedback, K iterations;
* ``feedback_zeroed``: the same model and loop with empty feedback at every iteration;
* ``unigram``: every mask filled with the most frequent eligible leaf text of the training split;
* ``copy``: the corrupted program as given (masks left in; repair_accuracy 0 by definition, its
  token_accuracy is the share of leaves left intact).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from graphrepair.loop.refine import METRICS
from harness.report import Table, ci_cell, line_plot, mean_ci, training_curves

__all__ = ["BASELINES", "METHOD_LABELS", "iterative_cell", "level_label", "method_summary", "report_plots",
           "report_tables", "summarize"]

BASELINES = ("feedback_zeroed", "unigram", "copy")
METHOD_LABELS = {"feedback_zeroed": "same model, feedback zeroed", "unigram": "unigram baseline",
                 "copy": "copy baseline (corrupted input)"}


def level_label(level: float | str) -> str:
    """A corruption level as shown in tables: ``0.2`` or ``"0.2"`` -> ``"20%"``."""
    return f"{float(level) * 100:g}%"


def method_summary(histories: Sequence[Sequence[dict[str, float]]]) -> dict:
    """Mean and 95% CI over seeds of one method's per-iteration rows.

    Args:
        histories: one list of per-iteration rows per seed (equal lengths), each row with the
            :data:`~graphrepair.loop.refine.METRICS` and ``program_runs`` (cumulative within the seed).

    Returns:
        ``per_iteration`` (means per iteration), ``one_shot`` / ``final`` (means of the first / last
        row), ``improvement_pp`` (mean over seeds of final - one_shot, in percentage points; paired
        per seed), ``ci95`` (the same keys as half-widths, ``None`` with one seed) and
        ``program_runs`` (programs evaluated, summed over seeds).
    """
    n_iter = len(histories[0])
    assert all(len(h) == n_iter for h in histories), "seeds with different iteration counts"
    per_iter, per_iter_ci = [], []
    for k in range(n_iter):
        stats = {m: mean_ci([h[k][m] for h in histories]) for m in (*METRICS, "program_runs")}
        per_iter.append({m: s[0] for m, s in stats.items()})
        per_iter_ci.append({m: s[1] for m, s in stats.items() if m != "program_runs"})
    gain = {m: mean_ci([(h[-1][m] - h[0][m]) * 100 for h in histories]) for m in METRICS}
    return {
        "per_iteration": per_iter,
        "one_shot": {m: per_iter[0][m] for m in METRICS},
        "final": {m: per_iter[-1][m] for m in METRICS},
        "improvement_pp": {m: g[0] for m, g in gain.items()},
        "ci95": {"one_shot": per_iter_ci[0], "final": per_iter_ci[-1],
                 "improvement_pp": {m: g[1] for m, g in gain.items()}, "per_iteration": per_iter_ci},
        "program_runs": int(sum(h[-1]["program_runs"] for h in histories)),
    }


def summarize(units: Sequence[dict]) -> dict[str, dict]:
    """Per corruption level (key ``f"{level:g}"``): the model's summary plus ``baselines``.

    Args:
        units: the (seed, level) results of :func:`graphrepair.evaluation.evaluate.run_unit`.

    Returns:
        ``{level: {<method_summary of model>, "baselines": {name: method_summary},
        "test_runs": programs evaluated over all methods and seeds, "masked_leaves": per seed,
        "corruption_seeds": [...], "n_seeds": n}}`` in the order levels first appear.
    """
    levels: dict[str, list[dict]] = {}
    for u in units:
        levels.setdefault(f"{u['level']:g}", []).append(u)
    out = {}
    for lv, us in levels.items():
        us = sorted(us, key=lambda u: u["corruption_seed"])
        entry = method_summary([u["methods"]["model"] for u in us])
        entry["baselines"] = {b: method_summary([u["methods"][b] for u in us])
                              for b in BASELINES if b in us[0]["methods"]}
        entry["test_runs"] = entry["program_runs"] + sum(
            b["program_runs"] for b in entry["baselines"].values())
        entry["masked_leaves"] = us[0]["masked_leaves"]
        entry["corruption_seeds"] = [u["corruption_seed"] for u in us]
        entry["n_seeds"] = len(us)
        out[lv] = entry
    return out


def iterative_cell(s: dict, metric: str) -> str:
    """``"final ± CI (+gain pp)"`` of a :func:`method_summary` (the record's "Iterative @" cell)."""
    final = ci_cell(s["final"][metric], s["ci95"]["final"][metric])
    gain = s["improvement_pp"][metric]
    return final if final == "n/a" or gain is None else f"{final} ({gain:+.1f} pp)"


def _cells(s: dict, metric: str) -> list[str]:
    ci = s["ci95"]
    gain = ci_cell(s["improvement_pp"][metric], ci["improvement_pp"][metric], percent=False, signed=True)
    return [ci_cell(s["one_shot"][metric], ci["one_shot"][metric]),
            ci_cell(s["final"][metric], ci["final"][metric]),
            gain if gain == "n/a" else f"{gain} pp"]


def report_tables(exp: str, results: dict) -> list[Table]:
    """The record's tables: summary across levels, per-level one-shot/final/improvement, all metrics.

    Cells are ``mean ± 95% CI half-width`` over seeds (percent / percentage points); with one seed
    the ``±`` part is absent.
    """
    levels = results["levels"]
    n = results["n_seeds"]
    ci_note = (f"mean ± 95% CI (Student t over n={n} seeds)" if n > 1
               else "n=1 seed: no confidence interval")
    rows_of = {"model": (f"Exp {exp}", None)} | {b: (METHOD_LABELS[b], b) for b in BASELINES}
    cols, rows = ["Model"], {k: [label] for k, (label, _) in rows_of.items()}
    for lv, r in levels.items():
        p = level_label(lv)
        cols += [f"One-shot @ {p}", f"Iterative @ {p}"]
        for key, (_, base) in rows_of.items():
            s = r if base is None else r["baselines"].get(base)
            rows[key] += ([ci_cell(s["one_shot"]["repair_accuracy"], s["ci95"]["one_shot"]["repair_accuracy"]),
                           iterative_cell(s, "repair_accuracy")] if s else ["n/a"] * 2)
    tables = [Table(f"Summary (repair_accuracy; {ci_note})", cols,
                    [v for k, v in rows.items() if k == "model" or k in next(iter(levels.values()))["baselines"]],
                    caption="repair_accuracy = fraction of corrupted leaves restored to the reference "
                            "token. Iterative = after the last iteration (in brackets: its improvement "
                            "over one-shot, percentage points; CI in the per-level tables).")]
    head = ["Corruption", "One-shot", "Final", "Improvement"]
    tables.append(Table("Iterative refinement", head,
                        [[level_label(lv), *_cells(r, "repair_accuracy")] for lv, r in levels.items()],
                        caption=f"Exp {exp}, repair_accuracy; {ci_note}."))
    if all("feedback_zeroed" in r["baselines"] for r in levels.values()):
        tables.append(Table("Iterative refinement, feedback zeroed", head,
                            [[level_label(lv), *_cells(r["baselines"]["feedback_zeroed"], "repair_accuracy")]
                             for lv, r in levels.items()],
                            caption="The same model and loop given empty test feedback at every "
                                    "iteration: what the model does without the test signal."))
    tables.append(Table("Functional repair (pass_rate: programs whose tests all pass)",
                        ["Corruption", "One-shot", "Final", "Improvement",
                         *[f"{METHOD_LABELS[b]} (final)" for b in BASELINES], "Program runs"],
                        [[level_label(lv), *_cells(r, "pass_rate"),
                          *[ci_cell(r["baselines"][b]["final"]["pass_rate"],
                                    r["baselines"][b]["ci95"]["final"]["pass_rate"])
                            if b in r["baselines"] else "n/a" for b in BASELINES],
                          r["test_runs"]] for lv, r in levels.items()],
                        caption="Program runs: programs evaluated in the sandbox over all methods and "
                                "seeds (cache hits included)."))
    for lv, r in levels.items():
        detail = [[f"iteration {i}", *[ci_cell(h[m], c[m]) for m in METRICS], f"{h['program_runs']:.0f}"]
                  for i, (h, c) in enumerate(zip(r["per_iteration"], r["ci95"]["per_iteration"]))]
        for b, s in r["baselines"].items():
            label = METHOD_LABELS[b]
            its = list(enumerate(zip(s["per_iteration"], s["ci95"]["per_iteration"])))
            detail += [[f"{label}" + (f", iteration {i}" if len(its) > 1 else ""),
                        *[ci_cell(h[m], c[m]) for m in METRICS], f"{h['program_runs']:.0f}"]
                       for i, (h, c) in its]
        tables.append(Table(
            f"Corruption {level_label(lv)}: all metrics per iteration", ["Row", *METRICS, "program runs so far"],
            detail, caption=f"{r['masked_leaves']} masked leaves per seed; pass_rate = fraction of "
                            f"programs whose tests already pass; program runs per seed (mean); {ci_note}."))
    return tables


def report_plots(out_dir: Path, exp: str, results: dict, metrics_csv: Path | None) -> list[str]:
    """Write ``refinement.png``, ``pass_rate.png`` (metric against iteration per level, model solid,
    feedback zeroed dashed in the same colour, 95% CI bands) and ``training_curves.png`` when ``metrics_csv`` exists.

    Returns:
        The PNG file names written into ``out_dir``.
    """
    names = []
    title = f"Exp {exp} on {results['split']} (n={results['programs']} programs, {results['n_seeds']} seeds)"
    for metric, name in (("repair_accuracy", "refinement.png"), ("pass_rate", "pass_rate.png")):
        series, errors, styles, colors = {}, {}, {}, {}
        for lv, r in results["levels"].items():
            for label, s, style in (("", r, "-"), (" feedback zeroed", r["baselines"].get("feedback_zeroed"), "--")):
                if s is None:
                    continue
                key = f"{level_label(lv)}{label}"
                series[key] = [h[metric] for h in s["per_iteration"]]
                errors[key] = [c[metric] for c in s["ci95"]["per_iteration"]]
                styles[key] = style
                colors[key] = lv  # a level's model and feedback-zeroed lines share a colour
        line_plot(out_dir / name, series, errors=errors, styles=styles, colors=colors, title=f"{metric}: {title}",
                  xlabel="iteration (0 = one-shot)", ylabel=metric)
        names.append(name)
    if metrics_csv is not None and metrics_csv.is_file():
        training_curves(metrics_csv, out_dir / "training_curves.png", title=f"Exp {exp}: training")
        names.append("training_curves.png")
    return names
