"""Iterative-refinement evaluation of a trained refiner, with real test execution, and its report.

For each seed ``s`` (0-based) and corruption level the same corrupted programs are refined for K
iterations (DESIGN.md loop: predict -> decode -> run tests -> feedback). The corruption seed is
``eval.seed + s``, and a program's mask depends only on (corruption seed, task id, level)
(:func:`graphrepair.data.dataset.fixed_states`), so every model evaluated with the same seeds sees
the same inputs and rows are comparable across runs. On the same inputs, the baselines of
:mod:`graphrepair.evaluation.report` (feedback zeroed, feedback shuffled across programs, search
with the model's budget of test executions, unigram, copy) are evaluated the same way, tests
executed. Numbers are means with a Student-t 95% CI over seeds.

Resumable: each finished (seed, level) is written atomically to ``<out>/partial/`` with a
fingerprint of the model weights, vocabulary, settings and inputs; a rerun with the same
fingerprint skips it (a different fingerprint is recomputed, with a warning). Output:
``report.json``, ``report.md`` and PNG plots via :mod:`harness.report`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

import torch

from graphrepair.config import ExperimentConfig
from graphrepair.data.dataset import (
    HELDOUT_SPLITS,
    PreparedData,
    add_heldout_split,
    fixed_states,
    prepare,
)
from graphrepair.data.dedup import EXACT, SIMILAR
from graphrepair.data.problems import DataError
from graphrepair.evaluation.report import report_plots, report_tables, summarize
from graphrepair.feedback.informativeness import feedback_informativeness
from graphrepair.loop.refine import ProgramState, Refiner, in_vocab_ceiling, refine, state_metrics
from graphrepair.loop.search import SEARCH_FORMULA, SEARCH_TOP_K, search
from graphrepair.models import from_checkpoint
from harness import runs
from harness.config import describe, to_dict
from harness.report import markdown_table, write_report

__all__ = ["evaluate", "evaluate_checkpoint", "find_checkpoint", "load_for_eval", "run_unit"]

log = logging.getLogger(__name__)

RESULTS_SCHEMA = "graphrepair.evaluate/6"
"""Version of ``results``; part of every unit's fingerprint, so a change recomputes old units
(4: the refinement update rule compares texts and never changes an UNK input leaf; units carry
``in_vocab_ceiling``; 5: units carry ``feedback``; 6: units carry the ``feedback_shuffled`` and
``search`` baselines and ``per_program.program_runs``)."""


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
    seeds: int | None = None,
    feedback_zeroed: bool | None = None,
    feedback_shuffled: bool | None = None,
    search_baseline: bool | None = None,
    checkpoint: str = "",
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[dict, Path, Path, str]:
    """Evaluate ``model`` over seeds and levels, resumably, and write the report into ``out_dir``.

    Args:
        cfg: the experiment configuration the model was trained with (``eval`` gives defaults).
        model: the refiner (weights loaded).
        data: prepared programs encoded with the model's vocabulary; a held-out split
            (``humaneval``) missing from it is added (:func:`~graphrepair.data.dataset.add_heldout_split`).
        out_dir: where ``report.json``, ``report.md``, the PNGs and ``partial/`` go.
        levels, iterations, split, programs, seeds, feedback_zeroed, feedback_shuffled: override
            ``cfg.eval``; search_baseline overrides ``cfg.eval.search``.
        checkpoint: path recorded in the report; its directory's ``metrics.csv`` (if any) gives
            the training-curve plot.
        device: where the model runs.
        progress: tqdm bars over (seed, level) units and iterations, shown when stderr is a
            terminal.

    Returns:
        (results dict, report.json path, report.md path, the summary table as Markdown).

    Raises:
        ValueError: an empty split, an unknown split, ``seeds < 1`` or a level outside [0, 1].
    """
    from tqdm.auto import tqdm

    ev = cfg.eval
    levels = [float(lv) for lv in (levels if levels is not None else ev.corruption)]
    iterations = iterations or ev.iterations
    split = split or ev.split
    n_seeds = ev.seeds if seeds is None else seeds
    zeroed = ev.feedback_zeroed if feedback_zeroed is None else feedback_zeroed
    baselines = {"feedback_zeroed": zeroed,
                 "feedback_shuffled": ev.feedback_shuffled if feedback_shuffled is None else feedback_shuffled,
                 "search_baseline": ev.search if search_baseline is None else search_baseline}
    n_programs = ev.programs if programs is None else programs
    if n_seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {n_seeds}")
    if any(not 0.0 <= lv <= 1.0 for lv in levels):
        raise ValueError(f"corruption levels must lie in [0, 1], got {levels}")
    if split not in data.splits and split in HELDOUT_SPLITS:
        add_heldout_split(cfg, data, split)
    if not data.splits.get(split):
        raise DataError(f"the {split!r} split is empty or unknown (have {sorted(data.splits)}); "
                         f"choose another --split")
    pool = data.splits[split]
    pool = pool[:n_programs] if n_programs else pool
    refiner = Refiner.from_config(model, data.vocab, cfg, device)
    base_fp = _fingerprint(model, data.vocab, cfg, split, pool, iterations, baselines)
    partial = runs.UnitStore(Path(out_dir) / "partial")
    t0 = time.perf_counter()
    units, resumed = [], 0
    todo = [(s, lv) for s in range(n_seeds) for lv in levels]
    for s, level in tqdm(todo, desc="evaluate", unit="level", disable=None if progress else True):
        name = f"seed{ev.seed + s}-level{level:g}"
        fp = f"{base_fp}:{ev.seed + s}:{level!r}"
        unit = partial.load(name, fp)
        if unit is None:
            log.info("seed %d, %g%% corruption: %d programs, %d iterations", ev.seed + s, level * 100,
                     len(pool), iterations)
            unit = run_unit(refiner, cfg, data, pool, level, ev.seed + s, iterations,
                            **baselines, progress=progress)
            unit = partial.save(name, fp, unit)
        else:
            resumed += 1
        units.append(unit)
    if resumed:
        log.info("resumed: %d of %d (seed, level) results read from %s", resumed, len(todo),
                 partial.directory)
    results = {
        "schema": RESULTS_SCHEMA,
        "checkpoint": checkpoint,
        "split": split,
        "dataset": split if split in HELDOUT_SPLITS else cfg.data.dataset,
        "trained_on": cfg.data.dataset,
        "programs": len(pool),
        "inputs_id": _inputs_id(split, pool, levels, [ev.seed + s for s in range(n_seeds)], iterations),
        "iterations": iterations,
        "seed": ev.seed,
        "n_seeds": n_seeds,
        "corruption_seeds": [ev.seed + s for s in range(n_seeds)],
        "levels": summarize(units),
        "oov_rate": data.oov_rate,
        "unknown_leaves": {k: r.num_unknown for k, r in data.unknown.items()},
        "skipped_programs": data.skipped,
        "near_duplicates_removed": data.near_duplicates_removed,
        "near_duplicates_by_kind": data.near_duplicates_by_kind,
        "test_runs": refiner.test_runs,
        "cache_hits": refiner.cache_hits,
        "resumed_units": resumed,
        "seconds": round(time.perf_counter() - t0, 1),
        "compute_seconds": round(sum(u["seconds"] for u in units), 1),
    }
    out_dir = Path(out_dir)
    tables = report_tables(cfg.exp, results)
    metrics_csv = Path(checkpoint).parent / "metrics.csv" if checkpoint else None
    plots = report_plots(out_dir, cfg.exp, results, metrics_csv)
    json_path, md_path = write_report(
        out_dir, title=f"graphrepair evaluation — Exp {cfg.exp}", results=results, tables=tables,
        config=to_dict(cfg), notes=_notes(cfg, results, data), plots=plots,
    )
    return results, json_path, md_path, markdown_table(tables[0])


def run_unit(refiner: Refiner, cfg: ExperimentConfig, data: PreparedData, pool: list, level: float,
             corruption_seed: int, iterations: int, *, feedback_zeroed: bool = True,
             feedback_shuffled: bool = True, search_baseline: bool = True,
             progress: bool = False) -> dict:
    """Every method on one seed's corrupted programs at one level (tests really executed).

    Methods (:data:`graphrepair.evaluation.report.BASELINES`): ``model`` (K iterations with its
    own test feedback); ``feedback_zeroed`` (the same loop, empty feedback); ``feedback_shuffled``
    (the same loop, each program reading another program's test result, donors drawn with seed
    ``corruption_seed``: :func:`graphrepair.feedback.shuffle.shuffle_feedback`); ``search`` (no
    learned refinement: :func:`graphrepair.loop.search.search` from the model's one-shot program,
    per program at most the executions the model's refinement used, its row ``k`` at the model's
    cost after iteration ``k``); ``unigram``; ``copy``.

    Args:
        refiner: the model, vocabulary and sandbox settings.
        cfg: the experiment configuration (``feedback.feedback_at_iteration0``).
        data: prepared programs (vocabulary, unigram text).
        pool: the encoded programs evaluated.
        level: corruption level in [0, 1]; corruption_seed: its seed; iterations: K (>= 1).
        feedback_zeroed, feedback_shuffled, search_baseline: evaluate these baselines.
        progress: tqdm bars over iterations.

    Returns:
        ``{"level", "corruption_seed", "programs", "masked_leaves", "seconds", "methods": {name:
        per-iteration rows}, "in_vocab_ceiling": ..., "feedback": ..., "per_program": ...}``;
        rows hold the four metrics and ``program_runs`` (cumulative; K rows for the model, the
        feedback ablations and search, one for unigram and copy); ``in_vocab_ceiling`` is
        :func:`~graphrepair.loop.refine.in_vocab_ceiling` of the corrupted programs (the best
        repair_accuracy, token_accuracy and exact_match a vocabulary-only model can reach);
        ``feedback`` is :func:`~graphrepair.feedback.informativeness.feedback_informativeness` of
        the model's programs after its one-shot prediction (do their tests disagree, where does
        Tarantula rank the faulty lines). ``per_program`` keeps each program's outcome, for paired
        comparisons of methods on the same programs (:mod:`graphrepair.evaluation.report`):
        ``{"task_ids": [n], "masked": [n] corrupted leaves, "leaves": [n], "methods": {name:
        {"one_shot" | "final": {"restored": [n] corrupted leaves back to the reference,
        "correct": [n] leaves equal to the reference, "exact": [n] 0/1, "passed": [n] 0/1}}},
        "program_runs": {name: [n] programs evaluated per program, cache hits included}}``, in
        pool order (one-shot = after iteration 0, or the search's start, which is the model's
        one-shot; unigram and copy have one iteration).
    """
    t0 = time.perf_counter()
    states = [s for _, s in fixed_states(pool, [level], len(pool), corruption_seed, data.vocab)]
    fb0 = cfg.feedback.feedback_at_iteration0

    def fresh() -> list[ProgramState]:
        return [ProgramState.start(s.enc, s.masked, data.vocab) for s in states]

    def outcome(s: ProgramState) -> tuple[int, int, int, int]:  # restored, correct, exact, passed
        ok = s.correct()
        return int(ok[s.masked].sum()), int(ok.sum()), int(ok.all()), int(s.passed)

    def outcomes(per_state: list[tuple[int, int, int, int]]) -> dict[str, list[int]]:
        return dict(zip(("restored", "correct", "exact", "passed"), map(list, zip(*per_state))))

    informativeness: dict[str, dict] = {}
    model_runs: list[list[int]] = []  # per iteration: each program's executions so far (model)
    one_shot_states: list[ProgramState] = []  # the model's programs after iteration 0

    def refined(group: list[ProgramState], track: bool = False, **kwargs) -> tuple[list[dict], dict]:
        one_shot: list[tuple[int, int, int, int]] = []

        def after(k: int, states: list[ProgramState]) -> None:
            if k == 0:
                one_shot.extend(outcome(s) for s in states)
                informativeness.setdefault("one_shot", feedback_informativeness(states))
            if track:
                model_runs.append([s.runs for s in states])
                if k == 0:
                    one_shot_states.extend(dataclasses.replace(s, texts=list(s.texts)) for s in states)

        rows = refine(refiner, group, iterations, progress=progress, after_iteration=after, **kwargs)
        return rows, {"one_shot": outcomes(one_shot), "final": outcomes([outcome(s) for s in group])}

    methods, per_method, runs = {}, {}, {}
    methods["model"], per_method["model"] = refined(states, track=True, feedback_at_iteration0=fb0)
    runs["model"] = [s.runs for s in states]
    if feedback_zeroed:
        group = fresh()
        methods["feedback_zeroed"], per_method["feedback_zeroed"] = refined(group, with_feedback=False)
        runs["feedback_zeroed"] = [s.runs for s in group]
    if feedback_shuffled:
        group = fresh()
        methods["feedback_shuffled"], per_method["feedback_shuffled"] = refined(
            group, feedback_at_iteration0=fb0, shuffle_seed=corruption_seed)
        runs["feedback_shuffled"] = [s.runs for s in group]
    if search_baseline:
        methods["search"], per_method["search"], runs["search"] = _search(
            refiner, fresh(), one_shot_states, model_runs, fb0, outcome, outcomes)
    copy, unigram = fresh(), fresh()
    for b in unigram:  # every mask -> the most frequent eligible training token
        b.texts = [data.unigram if t is None else t for t in b.texts]
    for name, group in (("unigram", unigram), ("copy", copy)):
        refiner.run_tests(group)
        methods[name] = [state_metrics(group) | {"program_runs": float(len(group))}]
        once = outcomes([outcome(s) for s in group])
        per_method[name] = {"one_shot": once, "final": once}
        runs[name] = [s.runs for s in group]
    for rows in methods.values():
        for row in rows:
            row.pop("test_runs", None)  # cache-dependent; program_runs is the method's cost
    per_program = {"task_ids": [s.enc.problem.task_id for s in states],
                   "masked": [int(s.masked.sum()) for s in states],
                   "leaves": [len(s.texts) for s in states], "methods": per_method,
                   "program_runs": runs}
    return {"level": level, "corruption_seed": corruption_seed, "programs": len(states),
            "masked_leaves": int(sum(s.masked.sum() for s in states)),
            "seconds": round(time.perf_counter() - t0, 2), "methods": methods,
            "in_vocab_ceiling": in_vocab_ceiling(states), "feedback": informativeness.get("one_shot"),
            "per_program": per_program}


def _search(refiner: Refiner, corrupted: list[ProgramState], one_shot: list[ProgramState],
            model_runs: list[list[int]], fb0: bool, outcome, outcomes) -> tuple[list[dict], dict, list[int]]:
    """The search baseline's rows, per-program outcomes and executions (:func:`run_unit`).

    ``corrupted``: fresh corrupted states (the iteration-0 input, for the alternatives);
    ``one_shot``: the model's states after iteration 0; ``model_runs``: per iteration, the
    model's executions of each program so far (row ``k``'s budgets).
    """
    if fb0:  # the iteration-0 input reads the corrupted program's feedback (the model's own run)
        refiner.run_tests(corrupted)
    top_k = min(SEARCH_TOP_K, int(refiner.vocab.leaf_token_mask().sum()))
    options = refiner.top_k(corrupted, with_feedback=fb0, k=top_k)
    budgets = [list(b) for b in zip(*model_runs)]  # per program, per iteration
    rows, used = search(refiner, one_shot, options, budgets)
    history = [state_metrics(r) | {"program_runs": float(sum(min(b[k], u) for b, u in zip(budgets, used)))}
               for k, r in enumerate(rows)]
    per = {"one_shot": outcomes([outcome(s) for s in rows[0]]),
           "final": outcomes([outcome(s) for s in rows[-1]])}
    return history, per, used


def _fingerprint(model, vocab, cfg, split, pool, iterations, baselines: dict[str, bool]) -> str:
    """Fingerprint of everything a (seed, level) result depends on, except the seed and level."""
    settings = {"vocab": vocab.to_dict(), "feedback": to_dict(cfg.feedback), "eligible": cfg.corruption.eligible,
                "decoding": to_dict(cfg.decoding),
                "timeout_s": cfg.sandbox.timeout_s, "memory_mb": cfg.sandbox.memory_mb,
                "budget_s": cfg.sandbox.budget_s,
                "max_tests": cfg.data.max_tests, "max_iteration": cfg.train.trajectory_iterations,
                "model": to_dict(cfg.model), "split": split, "tasks": [e.problem.task_id for e in pool],
                "iterations": iterations, **baselines, "search_top_k": SEARCH_TOP_K,
                "search_formula": SEARCH_FORMULA, "schema": RESULTS_SCHEMA}
    return runs.fingerprint(settings, model.state_dict())


def _inputs_id(split, pool, levels, seeds, iterations) -> str:
    """Short hash of the evaluation inputs: equal ids = the same corrupted programs."""
    key = json.dumps([split, [e.problem.task_id for e in pool], levels, seeds, iterations])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _notes(cfg: ExperimentConfig, results: dict, data: PreparedData) -> list[str]:
    split = results["split"]
    where = (f"Held-out dataset `{split}`" if split in HELDOUT_SPLITS
             else f"Split `{split}` of {results['dataset']}")
    notes = [f"**{describe(cfg)}**" if cfg.description else "",
             f"{where}: {results['programs']} programs per level, "
             f"{results['iterations']} iterations, corruption seeds {results['corruption_seeds']} "
             f"(seed s corrupts with eval.seed + s; inputs id `{results['inputs_id']}`); every "
             f"number comes from executing the programs' tests. Evaluation time "
             f"{results['compute_seconds']} s (sum over the (seed, level) results); this invocation: "
             f"{results['seconds']} s wall, {results['test_runs']} programs executed, "
             f"{results['cache_hits']} cache hits"
             + (f", {results['resumed_units']} (seed, level) results resumed from partial/" if
                results["resumed_units"] else "") + "."]
    d = cfg.decoding
    notes.append(f"Decoding (`decoding`, :mod:`graphrepair.loop.refine`): policy `{d.policy}`"
                 + (f" ({d.candidates} candidates of the model's top-{d.top_k} per program and "
                    f"iteration)" if d.policy == "verify" else "")
                 + (f" (re-mask order `{d.remask}`, forbid previous {d.forbid_previous})"
                    if d.policy == "mask_predict" else "")
                 + f"; grammar constraint {d.grammar}; identifiers `{d.identifiers}`.")
    if split in HELDOUT_SPLITS:
        notes.append(
            f"Trained on {cfg.data.dataset}, evaluated on `{split}`: "
            f"{_removed_text(data, cfg, split)} near-duplicates of training programs removed, "
            f"{data.skipped.get(split, 0)} over {cfg.data.max_nodes} nodes left out; encoded with the "
            f"training vocabulary: OOV rate {data.oov_rate.get(split, 0.0):.1%} "
            f"({results['unknown_leaves'].get(split, 0)} unknown leaf tokens -> UNK).")
    return [n for n in notes if n]


def _removed_text(data: PreparedData, cfg: ExperimentConfig, split: str) -> str:
    """The programs of ``split`` removed as near-duplicates, in all and per criterion."""
    kinds = data.near_duplicates_by_kind.get(split, {})
    text = str(data.near_duplicates_removed.get(split, 0))
    if not kinds or cfg.data.near_duplicate_similarity is None:
        return text
    return (f"{text} ({kinds.get(EXACT, 0)} equal normalised AST, {kinds.get(SIMILAR, 0)} "
            f"normalised token similarity >= {cfg.data.near_duplicate_similarity:g})")


def find_checkpoint(exp: str, runs_root: str | Path = "runs") -> Path:
    """The newest ``<runs_root>/<exp>-*/best.pt`` (:func:`harness.runs.find_checkpoint`).

    Raises:
        FileNotFoundError: none exists; the message lists the runs found and how to train one.
    """
    try:
        return runs.find_checkpoint(runs_root, exp)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{exc}; train it first: python -m graphrepair.train --exp {exp}") from None


def load_for_eval(path: str | Path, data_dir: str | None = None, device: str = "cpu",
                  dataset: str | None = None, max_tests: int | None = None,
                  overrides: tuple[str, ...] | list[str] = ()):
    """Load a checkpoint: (config, model with weights, prepared data encoded with its vocabulary).

    Args:
        path: the checkpoint.
        data_dir: the dataset directory (default: the run's).
        device: where the model goes.
        dataset: evaluate on this dataset's splits instead of the run's (e.g. ``mbpp_plus`` for a
            model trained on ``mbpp``: MBPP+ problems fall in the split of their MBPP originals,
            so its test split holds the MBPP+ versions of MBPP test problems, each with ~100 tests).
        max_tests: run and feed back at most this many tests per program instead of the run's
            ``data.max_tests`` (EvalPlus problems list the original tests' inputs first, so
            ``dataset="mbpp_plus", max_tests=3`` gives MBPP's own tests on the same programs).
        overrides: ``--set`` overrides of the ``decoding`` section (how predictions become texts).

    Raises:
        harness.config.ConfigError: an override outside ``decoding``, or a bad key or value.
        FileNotFoundError: no such checkpoint, or a dataset file is missing.
        harness.checkpoint.CheckpointError: a damaged checkpoint or weights that do not fit
            (:func:`graphrepair.models.from_checkpoint`).
    """
    loaded = from_checkpoint(path, device=device, overrides=overrides)
    cfg = loaded.config
    if data_dir:
        cfg.data.data_dir = data_dir
    if dataset:
        cfg.data.dataset = dataset
    if max_tests is not None:
        if max_tests < 1:
            raise DataError(f"max_tests must be >= 1, got {max_tests}")
        cfg.data.max_tests = max_tests
    data = prepare(cfg, vocab=loaded.vocab)
    return cfg, loaded.model, data


def evaluate_checkpoint(path: str | Path, out_dir: str | Path | None = None, *,
                        data_dir: str | None = None, device: str = "cpu", dataset: str | None = None,
                        max_tests: int | None = None, overrides: tuple[str, ...] | list[str] = (),
                        **kwargs):
    """Load ``path`` (:func:`load_for_eval`) and :func:`evaluate` it; the report goes to
    ``out_dir`` (default: beside it)."""
    cfg, model, data = load_for_eval(path, data_dir, device, dataset, max_tests, overrides)
    out = Path(out_dir) if out_dir else Path(path).parent / "eval"
    return evaluate(cfg, model, data, out, checkpoint=str(path), device=device, **kwargs)
