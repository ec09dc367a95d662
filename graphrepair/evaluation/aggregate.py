"""Evaluation reports of several runs: grouped by experiment, aggregated over training seeds, paired.

:mod:`graphrepair.evaluation.compare` tabulates *rows*; a row is one run's ``report.json`` or, when
several runs are the same experiment with different training seeds, their aggregate:

* **Grouping** (:func:`group_reports`): two reports are runs of the same experiment when their
  resolved configurations are equal except for :data:`IGNORED_KEYS` (``train.seed``, where files
  and workers live, which baselines were evaluated), and they were evaluated on the same inputs (``results.inputs_id``: the
  split, programs, corruption levels and seeds, iterations). Reports that differ in anything else
  are separate rows (:func:`config_differences` says in what); two reports of one experiment with
  the same ``train.seed`` are an error, since a seed counted twice would narrow the interval.
* **Aggregation over training seeds** (:func:`aggregate_reports`): every number of a row of T >= 2
  runs is the mean over the T runs of each run's value (itself a mean over its corruption seeds,
  the same ones for every run), with a Student-t 95% CI over the T runs
  (:func:`graphrepair.evaluation.report.method_summary`, :func:`harness.stats.mean_ci`): the
  variance over training seeds, with the corruption seeds held fixed. A row of one run keeps its
  report's numbers (CI over its corruption seeds).
* **Paired differences over programs**: a row's per-program outcomes are summed over its runs
  (:func:`pool_runs`), so that a bootstrap resample draws whole programs with every run's and every
  corruption seed's outcome of them; :func:`paired_between` gives row A minus row B on the same
  programs and masks, :func:`paired_improvement` a row's final minus its one-shot value, both with
  a paired-bootstrap 95% CI over programs (:func:`harness.stats.paired_bootstrap_ci`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from graphrepair.evaluation.report import (
    BASELINES,
    PAIRED_METRICS,
    method_summary,
    paired_estimate,
    program_rates,
)

__all__ = ["IGNORED_KEYS", "STAGES", "aggregate_reports", "config_differences", "flatten",
           "group_reports", "paired_between", "paired_improvement", "pool_runs", "train_seed"]

IGNORED_KEYS = ("train.seed", "run_root", "description", "data.data_dir", "sandbox.workers",
                "sandbox.cache", "eval.feedback_zeroed", "eval.feedback_shuffled", "eval.search")
"""Configuration keys in which runs of one experiment may differ: the training seed, where files
and sandbox workers live, and which baselines were evaluated (no effect on the numbers: a row
keeps the baselines every one of its runs has, :func:`aggregate_reports`)."""
STAGES = ("one_shot", "final")


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested configuration as ``{"section.key": value}`` (lists and scalars are leaves)."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def train_seed(report: dict) -> Any:
    """The report's ``config.train.seed`` (``None`` when absent)."""
    train = report["config"].get("train")
    return train.get("seed") if isinstance(train, dict) else None


def _experiment_key(report: dict) -> str:
    cfg = {k: v for k, v in flatten(report["config"]).items() if k not in IGNORED_KEYS}
    return json.dumps([cfg, report["results"].get("inputs_id"), report["results"]["split"]],
                      sort_keys=True, default=str)


def config_differences(a: dict, b: dict) -> list[str]:
    """What separates two reports that are not one experiment: ``["model.hidden: 32 vs 64", ...]``
    over the configuration keys outside :data:`IGNORED_KEYS`, then the evaluation inputs."""
    fa, fb = flatten(a["config"]), flatten(b["config"])
    out = [f"{k}: {fa.get(k, '(absent)')!r} vs {fb.get(k, '(absent)')!r}" for k in sorted(set(fa) | set(fb))
           if k not in IGNORED_KEYS and fa.get(k) != fb.get(k)]
    ra, rb = a["results"], b["results"]
    if (ra.get("inputs_id"), ra["split"]) != (rb.get("inputs_id"), rb["split"]):
        out.append(f"evaluation inputs: split {ra['split']!r}, inputs id {ra.get('inputs_id')} vs "
                   f"split {rb['split']!r}, inputs id {rb.get('inputs_id')}")
    return out


def group_reports(reports: Sequence[dict], *, aggregate: bool = True) -> list[list[dict]]:
    """The reports of each row: runs of one experiment together (see the module docstring).

    Args:
        reports: loaded ``report.json`` dicts (:func:`graphrepair.evaluation.compare.load_report`,
            with ``_path``).
        aggregate: ``False``: every report is its own row.

    Returns:
        Rows in the order of their first report; a row's reports in order of ``train.seed``.

    Raises:
        ValueError: two reports of one experiment with the same ``train.seed`` (or the same file
            twice); the message names both files.
    """
    if not aggregate:
        return [[r] for r in reports]
    rows: dict[str, list[dict]] = {}
    for rep in reports:
        row = rows.setdefault(_experiment_key(rep), [])
        twin = next((r for r in row if train_seed(r) == train_seed(rep)), None)
        if twin is not None:
            same = twin["_path"] == rep["_path"]
            raise ValueError(
                f"{rep['_path']} " + ("is given twice" if same else
                                      f"and {twin['_path']} are the same experiment with the same "
                                      f"train.seed {train_seed(rep)}")
                + ": a mean over training seeds counts each seed once; give each run once (to "
                  "tabulate every run as its own row, use --per-run)")
        row.append(rep)
    return [sorted(row, key=_seed_order) for row in rows.values()]


def _seed_order(report: dict) -> tuple[bool, int]:
    seed = train_seed(report)
    return (not isinstance(seed, int), seed if isinstance(seed, int) else 0)


def _numbers(rows: Sequence[dict]) -> list[dict]:
    """Per-iteration rows with JSON nulls (NaN written by the reporter) back as NaN."""
    return [{k: float("nan") if v is None else v for k, v in row.items()} for row in rows]


def _seed_summary(summaries: Sequence[dict]) -> dict:
    """:func:`method_summary` over runs: each run's per-iteration means are one 'seed'."""
    lengths = {len(s["per_iteration"]) for s in summaries}
    if len(lengths) != 1:
        raise ValueError(f"runs with different iteration counts {sorted(lengths)}")
    out = method_summary([_numbers(s["per_iteration"]) for s in summaries])
    out["program_runs"] = int(sum(s.get("program_runs", 0) for s in summaries))
    return _nan_to_none(out)


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


def pool_runs(pooled: Sequence[dict | None]) -> dict | None:
    """Per-program outcomes of one level summed over runs evaluated on the same inputs.

    Args:
        pooled: each run's ``per_program`` of the level
            (:func:`graphrepair.evaluation.report.pool_programs`), or ``None`` (an older report).

    Returns:
        The same structure with every count summed over the runs, ``seeds`` = the number of
        (run, corruption seed) pairs and ``runs`` = the number of runs; methods missing from a run
        are left out. ``None`` when a run has no per-program outcomes.

    Raises:
        ValueError: runs over different programs or masks.
    """
    if not pooled or any(p is None for p in pooled):
        return None
    first = pooled[0]
    for p in pooled[1:]:
        if p["task_ids"] != first["task_ids"] or p["masked"] != first["masked"]:
            raise ValueError("runs of one row were evaluated on different programs or masks")

    def total(values: list[list[int]]) -> list[int]:
        return [sum(v) for v in zip(*values)]

    methods = {m: {st: {k: total([p["methods"][m][st][k] for p in pooled]) for k in first["methods"][m][st]}
                   for st in STAGES}
               for m in first["methods"] if all(m in p["methods"] for p in pooled)}
    return {"task_ids": list(first["task_ids"]), "masked": total([p["masked"] for p in pooled]),
            "leaves": total([p["leaves"] for p in pooled]), "seeds": sum(p["seeds"] for p in pooled),
            "runs": sum(p.get("runs", 1) for p in pooled), "methods": methods}


def aggregate_reports(reports: Sequence[dict]) -> dict:
    """One row from the reports of :func:`group_reports`: a report-like dict.

    Returns:
        ``{"config", "results", "_path", "_paths", "train_seeds"}``; ``results`` has ``split``,
        ``inputs_id``, ``programs``, ``n_seeds`` (corruption seeds per run), ``n_runs`` and
        ``levels``: per level the :func:`method_summary` keys over the runs (means, ``ci95``
        half-widths over the runs), ``baselines`` (those every run has), ``per_program``
        (:func:`pool_runs`) and ``in_vocab_ceiling`` (the first run's: it depends only on the
        inputs and the vocabulary, which the runs share). One report is returned as it is (plus the keys above), its CIs
        over corruption seeds.

    Raises:
        ValueError: the runs' levels or iteration counts differ, or their per-program outcomes do
            not line up (the message names the files).
    """
    first = reports[0]
    row = {"_path": first["_path"], "_paths": [r["_path"] for r in reports],
           "train_seeds": [train_seed(r) for r in reports]}
    if len(reports) == 1:
        return {**first, **row, "results": {**first["results"], "n_runs": 1}}
    levels = [list(r["results"]["levels"]) for r in reports]
    try:
        if any(lv != levels[0] for lv in levels):
            raise ValueError(f"runs with different corruption levels {levels}")
        out_levels = {}
        for lv in levels[0]:
            entries = [r["results"]["levels"][lv] for r in reports]
            entry = _seed_summary(entries)
            entry["baselines"] = {b: _seed_summary([e["baselines"][b] for e in entries])
                                  for b in BASELINES if all(b in e.get("baselines", {}) for e in entries)}
            entry["per_program"] = pool_runs([e.get("per_program") for e in entries])
            # the same inputs and vocabulary in every run: the first run's ceiling holds for all
            entry["in_vocab_ceiling"] = entries[0].get("in_vocab_ceiling")
            if entry["in_vocab_ceiling"] is not None:
                entry["ci95"]["in_vocab_ceiling"] = entries[0]["ci95"].get("in_vocab_ceiling", {})
            out_levels[lv] = entry
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"the runs {', '.join(row['_paths'])} cannot be aggregated "
                         f"({type(exc).__name__}: {exc}); evaluate them again with the same "
                         f"options") from None
    res = first["results"]
    results = {"split": res["split"], "inputs_id": res.get("inputs_id"), "programs": res.get("programs"),
               "n_seeds": int(res.get("n_seeds", 1)), "corruption_seeds": res.get("corruption_seeds"),
               "n_runs": len(reports), "levels": out_levels}
    return {"config": first["config"], "results": results, **row}


def _check_inputs(a: dict, b: dict) -> None:
    """ValueError unless ``a`` and ``b`` (pooled) hold the same programs with the same masks."""
    if a["task_ids"] != b["task_ids"]:
        raise ValueError("other programs")
    if any(ma * b["seeds"] != mb * a["seeds"] for ma, mb in zip(a["masked"], b["masked"])):
        raise ValueError("other masks")


def paired_between(a: dict, b: dict, a_method: str = "model", b_method: str = "model") -> dict:
    """``a``'s ``a_method`` minus ``b``'s ``b_method`` on the same programs (paired bootstrap).

    Each row's per-program values come from its own counts (:func:`program_rates`); the programs'
    weights are ``a``'s (``b``'s are proportional: the same masks, maybe another number of runs).

    Args:
        a, b: :func:`pool_runs` (or :func:`pool_programs`) of one level of two rows.
        a_method, b_method: the methods compared (``model``, or a baseline).

    Returns:
        ``{"one_shot" | "final": {metric: {"value", "low", "high"}}}`` for the
        :data:`~graphrepair.evaluation.report.PAIRED_METRICS`: fractions (x100 = percentage
        points); identical rows give ``0`` with bounds ``[0, 0]``.

    Raises:
        ValueError: ``a`` and ``b`` hold other programs, or other masks.
    """
    _check_inputs(a, b)
    out = {}
    for stage in STAGES:
        out[stage] = {}
        for metric in PAIRED_METRICS:
            x, w = program_rates(a, a["methods"][a_method][stage], metric)
            y, _ = program_rates(b, b["methods"][b_method][stage], metric)
            out[stage][metric] = paired_estimate(x, w, y)
    return out


def paired_improvement(pooled: dict, method: str = "model") -> dict:
    """``method``'s final minus one-shot value on the same programs (paired bootstrap).

    Returns:
        ``{metric: {"value", "low", "high"}}`` for the
        :data:`~graphrepair.evaluation.report.PAIRED_METRICS`, fractions.
    """
    counts = pooled["methods"][method]
    out = {}
    for metric in PAIRED_METRICS:
        final, w = program_rates(pooled, counts["final"], metric)
        out[metric] = paired_estimate(final, w, program_rates(pooled, counts["one_shot"], metric)[0])
    return out
