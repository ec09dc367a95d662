"""Aggregation over seeds and programs, tables and plots of an iterative-refinement evaluation.

:mod:`graphrepair.evaluation.evaluate` produces one *unit* per (seed, corruption level): the per-iteration
metric rows of every method on the same corrupted inputs, and each program's outcome. This module
turns the units into the ``results`` of ``report.json`` (:func:`summarize`), the tables of the
Phase 1.5 record (:func:`report_tables`) and the PNG plots (:func:`report_plots`).

Two sources of variance are reported separately (DESIGN.md "Metrics"):

* over corruption seeds: means with Student-t 95% CIs (:func:`method_summary`), in every table;
* over programs: the model minus each baseline on the same programs, with a paired-bootstrap 95%
  CI (:func:`paired_differences`; the table "Model vs baselines (paired bootstrap over
  programs)"). A program's outcomes are pooled over the seeds before resampling, so a resample
  draws whole programs (every seed's corruption of them), for both rows alike.

Methods (every table carries all six, DESIGN.md "Metrics"; a baseline a run did not evaluate, e.g.
a report written before it existed, shows "n/a"):

* ``model``: the refiner with real test feedback, K iterations;
* ``feedback_zeroed``: the same model and loop with empty feedback at every iteration;
* ``feedback_shuffled``: the same model and loop, each program reading another program's test
  feedback mapped onto its own lines (:mod:`graphrepair.feedback.shuffle`): does *where* the tests
  failed matter, or only that feedback is present?
* ``search``: no learned refinement: the model's one-shot program, then its one-shot alternatives
  tried one leaf at a time where Tarantula points, keeping a candidate that passes more tests,
  with per program the test executions the model's refinement used (:mod:`graphrepair.loop.search`;
  its iteration ``k`` row is at the model's cost after iteration ``k``);
* ``unigram``: every mask filled with the most frequent eligible leaf text of the training split;
* ``copy``: the corrupted program as given (masks left in; repair_accuracy 0 by definition, its
  token_accuracy is the share of leaves left intact).

Beside them every table shows the *in-vocabulary ceiling* (DESIGN.md "Graph"): the best
repair_accuracy, token_accuracy and exact_match any model that writes only vocabulary texts can
reach on the same corrupted programs (:func:`~graphrepair.loop.refine.in_vocab_ceiling`); the
exact_match ceiling is shown beside pass_rate as the ceiling of exact repair.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from graphrepair.loop.refine import CEILING_METRICS, METRICS
from graphrepair.loop.search import SEARCH_TOP_K
from harness.report import (
    Estimate,
    Format,
    Interval,
    Table,
    ci_cell,
    line_plot,
    mean_ci,
    paired_bootstrap_ci,
    training_curves,
)

__all__ = ["BASELINES", "CEILING_LABEL", "DIFFERENCE", "METHOD_LABELS", "PAIRED_METRICS",
           "REFINED_BASELINES", "ceiling_cell", "ceiling_summary", "feedback_summary", "iterative_cell", "level_label", "method_summary",
           "paired_differences", "paired_estimate", "pool_programs", "program_rates", "report_plots",
           "report_tables", "summarize"]

BASELINES = ("feedback_zeroed", "feedback_shuffled", "search", "unigram", "copy")
METHOD_LABELS = {"feedback_zeroed": "same model, feedback zeroed",
                 "feedback_shuffled": "same model, feedback shuffled across programs",
                 "search": "search with the model's test executions", "unigram": "unigram baseline",
                 "copy": "copy baseline (corrupted input)"}
REFINED_BASELINES = ("feedback_zeroed", "feedback_shuffled", "search")
"""The baselines with one row per iteration (the others have one row)."""
_BASELINE_CAPTIONS = {
    "feedback_zeroed": "The same model and loop given empty test feedback at every iteration: what "
                       "the model does without the test signal.",
    "feedback_shuffled": "The same model and loop, each program given the test feedback of another "
                         "program of the batch (a seeded derangement per iteration) mapped onto its "
                         "lines by relative position; its own tests decide freezing and metrics. "
                         "Against the model: whether *where* the tests failed matters.",
    "search": f"No learned refinement: from the model's one-shot program, the model's one-shot "
              f"top-{SEARCH_TOP_K} texts tried one corrupted leaf at a time, most Tarantula-suspicious "
              "line first, keeping a program that passes more tests; per program at most the test executions "
              "the model's refinement used (Final), iteration k = the model's cost after its "
              "iteration k. One-shot = the model's one-shot."}
_TITLES = {"feedback_zeroed": "feedback zeroed", "feedback_shuffled": "feedback shuffled across programs",
           "search": "search with the model's test executions"}
_PLOT_STYLES = {"feedback_zeroed": ("feedback zeroed", "--"), "feedback_shuffled": ("feedback shuffled", ":"),
                "search": ("search", "-.")}
_NOT_EVALUATED = "n/a: a baseline the run did not evaluate (switched off, or a report of an older evaluate)."
CEILING_LABEL = "in-vocabulary ceiling"
DIFFERENCE = Format(scale=100.0, decimals=1, unit=" pp", signed=True)
"""Table format of a difference of two fractions, in percentage points: ``0.0194 -> "+1.9 pp"``."""


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


def ceiling_summary(units: Sequence[dict]) -> tuple[dict[str, float], dict[str, float | None]] | None:
    """Mean and 95% CI half-width over seeds of the units' ``in_vocab_ceiling``.

    Args:
        units: the (seed, level) results of one level.

    Returns:
        ``({metric: mean}, {metric: half-width or None})`` over
        :data:`~graphrepair.loop.refine.CEILING_METRICS` (fractions); ``None`` when a unit has no
        ``in_vocab_ceiling`` (written by an older evaluate).
    """
    if not units or any(u.get("in_vocab_ceiling") is None for u in units):
        return None
    stats = {m: mean_ci([u["in_vocab_ceiling"][m] for u in units]) for m in CEILING_METRICS}
    return {m: v[0] for m, v in stats.items()}, {m: v[1] for m, v in stats.items()}


FEEDBACK_FIELDS = ("loads", "some_pass", "mixed", "faulty_rank", "faulty_top1", "executed_lines")
"""The informativeness figures of :func:`~graphrepair.feedback.informativeness.feedback_informativeness`
averaged over seeds."""


def feedback_summary(units: Sequence[dict]) -> dict[str, float] | None:
    """Mean over seeds of the units' ``feedback`` (:data:`FEEDBACK_FIELDS`; a figure a seed lacks,
    ``None``, is left out of its mean), or ``None`` when a unit has none (an older evaluate)."""
    if not units or any(u.get("feedback") is None for u in units):
        return None
    out = {}
    for f in FEEDBACK_FIELDS:
        values = [u["feedback"][f] for u in units if u["feedback"][f] is not None]
        out[f] = sum(values) / len(values) if values else None
    out["localizable"] = sum(u["feedback"]["localizable"] for u in units) / len(units)
    return out


def ceiling_cell(level: dict, metric: str) -> str:
    """The table cell of one level's in-vocabulary ceiling of ``metric`` (``"n/a"`` when absent).

    ``pass_rate`` shows the ceiling of exact repair (``exact_match``).
    """
    ceiling = level.get("in_vocab_ceiling")
    if ceiling is None:
        return "n/a"
    metric = "exact_match" if metric == "pass_rate" else metric
    return ci_cell(ceiling[metric], level["ci95"].get("in_vocab_ceiling", {}).get(metric))


PAIRED_METRICS = ("repair_accuracy", "pass_rate")
"""The metrics of the paired model-vs-baseline table (all four are in ``results``)."""

# per-program counts behind each metric: (numerator, weight); weight "seeds" = the number of seeds
_METRIC_PARTS = {"repair_accuracy": ("restored", "masked"), "token_accuracy": ("correct", "leaves"),
                 "exact_match": ("exact", "seeds"), "pass_rate": ("passed", "seeds")}


def pool_programs(units: Sequence[dict]) -> dict | None:
    """Each program's outcomes summed over the seeds of one level's ``units``.

    Args:
        units: the (seed, level) results of one level, each with ``per_program`` (see
            :func:`graphrepair.evaluation.evaluate.run_unit`) over the same programs.

    Returns:
        ``{"task_ids": [n], "masked": [n], "leaves": [n], "seeds": S, "methods": {name:
        {"one_shot" | "final": {"restored", "correct", "exact", "passed": [n] sums over the S
        seeds}}}}``; ``None`` when a unit has no ``per_program`` (written by an older evaluate).

    Raises:
        ValueError: units over different programs.
    """
    if not units or any("per_program" not in u for u in units):
        return None
    first = units[0]["per_program"]
    for u in units[1:]:
        if u["per_program"]["task_ids"] != first["task_ids"]:
            raise ValueError(f"seeds {units[0]['corruption_seed']} and {u['corruption_seed']} were "
                             f"evaluated on different programs; they cannot be pooled per program")

    def total(get) -> list[int]:
        return [sum(vals) for vals in zip(*(get(u["per_program"]) for u in units))]

    methods = {m: {stage: {k: total(lambda p, m=m, st=stage, k=k: p["methods"][m][st][k])
                           for k in first["methods"][m][stage]}
                   for stage in ("one_shot", "final")}
               for m in first["methods"] if all(m in u["per_program"]["methods"] for u in units)}
    return {"task_ids": list(first["task_ids"]), "masked": total(lambda p: p["masked"]),
            "leaves": total(lambda p: p["leaves"]), "seeds": len(units), "methods": methods}


def paired_differences(pooled: dict, method: str = "model") -> dict[str, dict]:
    """``method`` minus each other method on the same programs, with paired-bootstrap 95% CIs.

    Each metric is the one of :func:`~graphrepair.loop.refine.state_metrics` computed over the
    programs of all seeds: repair_accuracy = restored / corrupted leaves summed over programs
    (a program weighs by its corrupted leaves), token_accuracy likewise over all leaves,
    exact_match and pass_rate = mean over programs of the share of seeds. Programs are resampled
    with :func:`harness.report.paired_bootstrap_ci` (its default resamples, method and seed).

    Args:
        pooled: :func:`pool_programs` of one level.
        method: the row the others are subtracted from.

    Returns:
        ``{other: {"one_shot" | "final": {metric: {"value", "low", "high"}}}}``: fractions (the
        difference of two fractions; x100 = percentage points); bounds ``None`` with one program.
    """
    ours = pooled["methods"][method]
    out = {}
    for other, theirs in pooled["methods"].items():
        if other == method:
            continue
        out[other] = {stage: {metric: paired_estimate(*program_rates(pooled, ours[stage], metric),
                                                      program_rates(pooled, theirs[stage], metric)[0])
                              for metric in _METRIC_PARTS}
                      for stage in ("one_shot", "final")}
    return out


def program_rates(pooled: dict, counts: dict, metric: str) -> tuple[list[float], list[float]]:
    """Each program's value of ``metric`` and its weight, as :func:`paired_differences` uses them.

    Args:
        pooled: :func:`pool_programs` of one level (or the same pooled over several runs, with
            ``seeds`` = the number of (run, corruption seed) pairs).
        counts: one method's outcomes at one stage, ``pooled["methods"][name][stage]``.
        metric: one of :data:`~graphrepair.loop.refine.METRICS`.

    Returns:
        ``([n] values, [n] weights)``: repair_accuracy = restored / corrupted leaves with weight
        the corrupted leaves; token_accuracy likewise over all leaves; exact_match and pass_rate =
        the share of seeds, with weight the number of seeds. The weighted mean of the values is
        the metric over all programs and seeds.
    """
    num, den = _METRIC_PARTS[metric]
    weights = [pooled["seeds"]] * len(pooled["task_ids"]) if den == "seeds" else pooled[den]
    return [c / w if w else 0.0 for c, w in zip(counts[num], weights)], list(weights)


def paired_estimate(a: list[float], w: list[float], b: list[float]) -> dict:
    """``{"value", "low", "high"}`` of the weighted mean of ``a - b`` with its paired-bootstrap 95%
    CI (:func:`harness.report.paired_bootstrap_ci`); value NaN and no bounds when every weight is 0."""
    if not any(w):  # e.g. repair_accuracy at corruption 0: nothing corrupted, no value
        return {"value": float("nan"), "low": None, "high": None}
    return paired_bootstrap_ci(a, b, weights=w).to_dict()


def summarize(units: Sequence[dict]) -> dict[str, dict]:
    """Per corruption level (key ``f"{level:g}"``): the model's summary plus ``baselines``.

    Args:
        units: the (seed, level) results of :func:`graphrepair.evaluation.evaluate.run_unit`.

    Returns:
        ``{level: {<method_summary of model>, "baselines": {name: method_summary},
        "test_runs": programs evaluated over all methods and seeds, "masked_leaves": per seed,
        "corruption_seeds": [...], "n_seeds": n, "in_vocab_ceiling": {metric: mean over seeds},
        "per_program": pool_programs(...), "paired": paired_differences(...)}}`` in the order
        levels first appear, with the ceiling's CI half-widths in ``ci95["in_vocab_ceiling"]``
        (:func:`ceiling_summary`); ``per_program`` and ``paired`` are ``None`` for units written
        before evaluate kept per-program outcomes, ``in_vocab_ceiling`` for units written before
        it computed the ceiling.
    """
    levels: dict[str, list[dict]] = {}
    for u in units:
        levels.setdefault(f"{u['level']:g}", []).append(u)
    out = {}
    for lv, us in levels.items():
        us = sorted(us, key=lambda u: u["corruption_seed"])
        entry = method_summary([u["methods"]["model"] for u in us])
        entry["baselines"] = {b: method_summary([u["methods"][b] for u in us])
                              for b in BASELINES if all(b in u["methods"] for u in us)}
        entry["test_runs"] = entry["program_runs"] + sum(
            b["program_runs"] for b in entry["baselines"].values())
        entry["masked_leaves"] = us[0]["masked_leaves"]
        entry["corruption_seeds"] = [u["corruption_seed"] for u in us]
        entry["n_seeds"] = len(us)
        ceiling = ceiling_summary(us)
        entry["in_vocab_ceiling"] = None if ceiling is None else ceiling[0]
        if ceiling is not None:
            entry["ci95"]["in_vocab_ceiling"] = ceiling[1]
        entry["feedback"] = feedback_summary(us)
        entry["per_program"] = pool_programs(us)
        entry["paired"] = None if entry["per_program"] is None else paired_differences(entry["per_program"])
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
    """The record's tables: summary across levels, per-level one-shot/final/improvement, all metrics,
    and the model against each baseline on the same programs.

    Cells are ``mean ± 95% CI half-width`` over seeds (percent / percentage points; with one seed
    the ``±`` part is absent), except in "Model vs baselines", where they are differences in
    percentage points with a paired-bootstrap 95% CI over programs; each table says which
    (:class:`harness.report.Interval`).
    """
    levels = results["levels"]
    seeds = Interval.student_t(results["n_seeds"])
    rows_of = {"model": (f"Exp {exp}", None)} | {b: (METHOD_LABELS[b], b) for b in BASELINES}
    cols, rows = ["Model"], {k: [label] for k, (label, _) in rows_of.items()}
    for lv, r in levels.items():
        p = level_label(lv)
        cols += [f"One-shot @ {p}", f"Iterative @ {p}"]
        for key, (_, base) in rows_of.items():
            s = r if base is None else r["baselines"].get(base)
            rows[key] += ([ci_cell(s["one_shot"]["repair_accuracy"], s["ci95"]["one_shot"]["repair_accuracy"]),
                           iterative_cell(s, "repair_accuracy")] if s else ["n/a"] * 2)
    summary_rows = list(rows.values())
    summary_rows.append([CEILING_LABEL, *[cell for r in levels.values()
                                          for cell in [ceiling_cell(r, "repair_accuracy")] * 2]])
    tables = [Table("Summary (repair_accuracy)", cols, summary_rows,
                    caption="repair_accuracy = fraction of corrupted leaves restored to the reference "
                            "token. Iterative = after the last iteration (in brackets: its improvement "
                            "over one-shot, percentage points; CI in the per-level tables). "
                            + _CEILING_NOTE + " " + _NOT_EVALUATED, interval=seeds)]
    head = ["Corruption", "One-shot", "Final", "Improvement", "In-vocabulary ceiling"]
    tables.append(Table("Iterative refinement", head,
                        [[level_label(lv), *_cells(r, "repair_accuracy"), ceiling_cell(r, "repair_accuracy")]
                         for lv, r in levels.items()],
                        caption=f"Exp {exp}, repair_accuracy. " + _CEILING_NOTE, interval=seeds))
    for b in REFINED_BASELINES:
        if all(b in r["baselines"] for r in levels.values()):
            tables.append(Table(f"Iterative refinement, {_TITLES[b]}", head,
                                [[level_label(lv), *_cells(r["baselines"][b], "repair_accuracy"),
                                  ceiling_cell(r, "repair_accuracy")] for lv, r in levels.items()],
                                caption=_BASELINE_CAPTIONS[b], interval=seeds))
    tables.append(Table("Functional repair (pass_rate: programs whose tests all pass)",
                        ["Corruption", "One-shot", "Final", "Improvement", "In-vocabulary ceiling (exact repair)",
                         *[f"{METHOD_LABELS[b]} (final)" for b in BASELINES], "Program runs"],
                        [[level_label(lv), *_cells(r, "pass_rate"), ceiling_cell(r, "pass_rate"),
                          *[ci_cell(r["baselines"][b]["final"]["pass_rate"],
                                    r["baselines"][b]["ci95"]["final"]["pass_rate"])
                            if b in r["baselines"] else "n/a" for b in BASELINES],
                          r["test_runs"]] for lv, r in levels.items()],
                        caption="Program runs: programs evaluated in the sandbox over all methods and "
                                "seeds (cache hits included). In-vocabulary ceiling (exact repair): the "
                                "share of programs whose corrupted leaves all have reference texts in "
                                "the vocabulary, the most any vocabulary-only model can repair exactly; "
                                "pass_rate can exceed it only with a program that differs from the "
                                "reference and still passes. " + _NOT_EVALUATED, interval=seeds))
    paired = _paired_table(exp, results)
    if paired is not None:
        tables.append(paired)
    if all(r.get("feedback") for r in levels.values()):
        tables.append(_feedback_table(levels))
    for lv, r in levels.items():
        detail = [[f"iteration {i}", *[ci_cell(h[m], c[m]) for m in METRICS], f"{h['program_runs']:.0f}"]
                  for i, (h, c) in enumerate(zip(r["per_iteration"], r["ci95"]["per_iteration"]))]
        for b, s in r["baselines"].items():
            label = METHOD_LABELS[b]
            its = list(enumerate(zip(s["per_iteration"], s["ci95"]["per_iteration"])))
            detail += [[f"{label}" + (f", iteration {i}" if len(its) > 1 else ""),
                        *[ci_cell(h[m], c[m]) for m in METRICS], f"{h['program_runs']:.0f}"]
                       for i, (h, c) in its]
        detail.append([CEILING_LABEL, *[ceiling_cell(r, m) for m in METRICS], "-"])
        tables.append(Table(
            f"Corruption {level_label(lv)}: all metrics per iteration", ["Row", *METRICS, "program runs so far"],
            detail, caption=f"{r['masked_leaves']} masked leaves per seed; pass_rate = fraction of "
                            f"programs whose tests already pass; program runs per seed (mean). "
                            f"{_CEILING_NOTE} Its pass_rate cell is the ceiling of exact repair "
                            f"(= its exact_match).",
            interval=seeds))
    return tables


_CEILING_NOTE = ("In-vocabulary ceiling: the best value any model that writes only vocabulary texts "
                 "can reach on the same corrupted programs (a corrupted leaf whose reference text is "
                 "out of the vocabulary cannot be restored).")


def _feedback_table(levels: dict) -> Table:
    """"Test feedback after the one-shot prediction" (:func:`feedback_summary` of every level)."""
    def cell(x: float | None) -> float:
        return float("nan") if x is None else x  # NaN shows as "n/a"

    rows = [[level_label(lv), *[cell(f[k]) for k in ("loads", "some_pass", "mixed", "localizable",
                                                    "faulty_rank", "faulty_top1", "executed_lines")]]
            for lv, f in ((lv, r["feedback"]) for lv, r in levels.items())]
    return Table("Test feedback after the one-shot prediction",
                 ["Corruption", "Programs that load", "≥ 1 test passes", "Tests disagree",
                  "Localizable programs", "Tarantula rank of a faulty line", "Faulty line first",
                  "Lines ranked"], rows,
                 caption="The model's programs after iteration 0, means over seeds. Tests disagree: at "
                         "least one test passes and one does not (without that, every executed line "
                         "ties under Tarantula). Over localizable programs (they load, some corrupted "
                         "leaf is still wrong, some test does not pass): the best average rank (1 = "
                         "most suspicious, ties averaged) of a line holding a wrong leaf among the "
                         "executed lines, and the chance that such a line comes first under random "
                         "tie-breaking. Lines run only while the program loads count as covered by no "
                         "test (reports written before issue 20 counted them for every test, which "
                         "ranks faulty lines lower).",
                 formats={c: "{:.1f}" for c in ("Localizable programs", "Tarantula rank of a faulty line",
                                               "Lines ranked")})


def _paired_table(exp: str, results: dict) -> Table | None:
    """"Model vs baselines (paired bootstrap over programs)", or None when no level has outcomes."""
    levels = results["levels"]
    if not any(r.get("paired") for r in levels.values()):
        return None
    cols = ["Corruption", "Baseline", *[f"{m} {stage}" for m in PAIRED_METRICS
                                         for stage in ("one-shot", "final")]]
    rows, missing, absent = [], [], []
    for lv, r in levels.items():
        if not r.get("paired"):
            missing.append(level_label(lv))
            continue
        for b in BASELINES:
            d = r["paired"].get(b)
            if d is None:
                absent += [] if METHOD_LABELS[b] in absent else [METHOD_LABELS[b]]
            else:
                rows.append([level_label(lv), METHOD_LABELS[b],
                             *[Estimate(**_nan_if_none(d[stage][m])) for m in PAIRED_METRICS
                               for stage in ("one_shot", "final")]])
    seeds = results["n_seeds"]
    caption = (f"Exp {exp} minus each baseline on the same corrupted programs, in percentage points "
               f"(> 0: the model is better); one-shot = after iteration 0, final = after the last. "
               f"repair_accuracy pools corrupted leaves over programs"
               + (f" and over the {seeds} seeds (a resampled program brings every seed's corruption "
                  f"of it; the pooled value can differ slightly from the seed tables' mean of "
                  f"per-seed values)" if seeds > 1 else "") + ". The search baseline starts from the "
               "model's one-shot program (one-shot difference 0).")
    if absent:
        caption += f" Not evaluated in this run: {', '.join(absent)}."
    if missing:
        caption += (f" No per-program outcomes at {', '.join(missing)} (results resumed from an older "
                    f"evaluate): evaluate again to get them.")
    return Table("Model vs baselines (paired bootstrap over programs)", cols, rows, caption=caption,
                 fmt=DIFFERENCE, interval=Interval.bootstrap(results["programs"], "programs", paired=True))


def _nan_if_none(d: dict) -> dict:
    return {"value": float("nan") if d["value"] is None else d["value"], "low": d["low"], "high": d["high"]}


def report_plots(out_dir: Path, exp: str, results: dict, metrics_csv: Path | None) -> list[str]:
    """Write ``refinement.png``, ``pass_rate.png`` (metric against iteration per level, model solid,
    in the same colour feedback zeroed dashed, feedback shuffled dotted and search dash-dotted,
    95% CI bands) and ``training_curves.png`` when ``metrics_csv`` exists.

    Returns:
        The PNG file names written into ``out_dir``.
    """
    names = []
    title = f"Exp {exp} on {results['split']} (n={results['programs']} programs, {results['n_seeds']} seeds)"
    for metric, name in (("repair_accuracy", "refinement.png"), ("pass_rate", "pass_rate.png")):
        series, errors, styles, colors = {}, {}, {}, {}
        for lv, r in results["levels"].items():
            for label, s, style in (("", r, "-"), *((f" {name}", r["baselines"].get(b), ls)
                                                    for b, (name, ls) in _PLOT_STYLES.items())):
                if s is None:
                    continue
                key = f"{level_label(lv)}{label}"
                series[key] = [h[metric] for h in s["per_iteration"]]
                errors[key] = [c[metric] for c in s["ci95"]["per_iteration"]]
                styles[key] = style
                colors[key] = lv  # a level's model and its baselines share a colour
        line_plot(out_dir / name, series, errors=errors, styles=styles, colors=colors, title=f"{metric}: {title}",
                  xlabel="iteration (0 = one-shot)", ylabel=metric)
        names.append(name)
    if metrics_csv is not None and metrics_csv.is_file():
        training_curves(metrics_csv, out_dir / "training_curves.png", title=f"Exp {exp}: training")
        names.append("training_curves.png")
    return names
