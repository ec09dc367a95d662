"""Hand-made (seed, level) units in the format of ``graphrepair.evaluation.evaluate.run_unit``.

Small enough to check every aggregate by hand; the units a real model produces are tested in
``test_per_program.py``.
"""

import copy

from graphrepair.evaluation.report import report_tables, summarize
from harness.report import write_report

TASKS = ["mbpp/11", "mbpp/12", "mbpp/14"]
MASKED = [4, 2, 6]  # corrupted leaves per program
LEAVES = [20, 10, 30]


def outcomes(restored, passed):
    """Per-program outcome lists; a program is exact when every corrupted leaf is restored."""
    exact = [int(r == m) for r, m in zip(restored, MASKED)]
    correct = [n - m + r for n, m, r in zip(LEAVES, MASKED, restored)]
    return {"restored": list(restored), "correct": correct, "exact": exact, "passed": list(passed)}


def row(o, runs):
    n = len(o["passed"])
    return {"repair_accuracy": sum(o["restored"]) / sum(MASKED),
            "token_accuracy": sum(o["correct"]) / sum(LEAVES), "exact_match": sum(o["exact"]) / n,
            "pass_rate": sum(o["passed"]) / n, "program_runs": float(runs)}


def unit(seed, level, model, zeroed, unigram, copy=((0, 0, 0), (0, 0, 0))):
    """One unit; ``model``/``zeroed`` = ((restored, passed) at one-shot, (restored, passed) final),
    ``unigram``/``copy`` = (restored, passed)."""
    per = {"model": {"one_shot": outcomes(*model[0]), "final": outcomes(*model[1])},
           "feedback_zeroed": {"one_shot": outcomes(*zeroed[0]), "final": outcomes(*zeroed[1])}}
    for name, (r, p) in (("unigram", unigram), ("copy", copy)):
        per[name] = {"one_shot": outcomes(r, p), "final": outcomes(r, p)}
    methods = {m: [row(per[m]["one_shot"], 3), row(per[m]["final"], 5)] for m in ("model", "feedback_zeroed")}
    methods |= {m: [row(per[m]["final"], 3)] for m in ("unigram", "copy")}
    return {"level": level, "corruption_seed": seed, "programs": 3, "masked_leaves": sum(MASKED),
            "seconds": 0.1, "methods": methods,
            "per_program": {"task_ids": TASKS, "masked": MASKED, "leaves": LEAVES, "methods": per}}


def units():
    """Two seeds at 20% and one level 50%: the model beats feedback zeroed on programs 0 and 2."""
    return [
        unit(1234, 0.2, model=(((2, 1, 3), (0, 0, 0)), ((4, 1, 5), (1, 0, 1))),
             zeroed=(((2, 1, 3), (0, 0, 0)), ((2, 1, 3), (0, 0, 0))), unigram=((1, 0, 1), (0, 0, 0))),
        unit(1235, 0.2, model=(((3, 2, 4), (0, 1, 0)), ((4, 2, 6), (1, 1, 1))),
             zeroed=(((3, 2, 4), (0, 1, 0)), ((3, 2, 4), (0, 1, 0))), unigram=((0, 1, 1), (0, 0, 0))),
        unit(1234, 0.5, model=(((1, 0, 2), (0, 0, 0)), ((2, 0, 2), (0, 0, 0))),
             zeroed=(((1, 0, 2), (0, 0, 0)), ((1, 0, 2), (0, 0, 0))), unigram=((0, 0, 1), (0, 0, 0))),
        unit(1235, 0.5, model=(((1, 1, 2), (0, 0, 0)), ((1, 1, 3), (0, 0, 0))),
             zeroed=(((1, 1, 2), (0, 0, 0)), ((1, 1, 2), (0, 0, 0))), unigram=((0, 0, 0), (0, 0, 0))),
    ]


def results(us=None, inputs_id="abc"):
    """The ``results`` of report.json that evaluate would write for ``us`` (default :func:`units`)."""
    us = units() if us is None else us
    return {"schema": "graphrepair.evaluate/3", "split": "val", "programs": 3, "inputs_id": inputs_id,
            "iterations": 2, "n_seeds": 2, "corruption_seeds": [1234, 1235], "levels": summarize(us)}


def new_units():
    """:func:`units` with the baselines of schema 6: feedback shuffled (here with the outcomes of
    feedback zeroed) and search (the model's one-shot, then program 0 fully repaired and passing)."""
    out = copy.deepcopy(units())
    for u in out:
        per = u["per_program"]["methods"]
        per["feedback_shuffled"] = copy.deepcopy(per["feedback_zeroed"])
        u["methods"]["feedback_shuffled"] = copy.deepcopy(u["methods"]["feedback_zeroed"])
        one = per["model"]["one_shot"]
        final = outcomes([MASKED[0], *one["restored"][1:]], [1, *one["passed"][1:]])
        per["search"] = {"one_shot": copy.deepcopy(one), "final": final}
        u["methods"]["search"] = [row(one, 3), row(final, 5)]
    return out


def other_seed_units():
    """:func:`units` of a second training seed: the model's one-shot at 20% restores one leaf of
    program 2 fewer for each corruption seed (5/12 and 8/12 instead of 6/12 and 9/12)."""
    us = units()
    us[0] = unit(1234, 0.2, model=(((2, 1, 2), (0, 0, 0)), ((4, 1, 5), (1, 0, 1))),
                 zeroed=(((2, 1, 3), (0, 0, 0)), ((2, 1, 3), (0, 0, 0))), unigram=((1, 0, 1), (0, 0, 0)))
    us[1] = unit(1235, 0.2, model=(((3, 2, 3), (0, 1, 0)), ((4, 2, 6), (1, 1, 1))),
                 zeroed=(((3, 2, 4), (0, 1, 0)), ((3, 2, 4), (0, 1, 0))), unigram=((0, 1, 1), (0, 0, 0)))
    return us


def write(out_dir, exp="3d", us=None, inputs_id="abc", train_seed=None, hidden=None, eval_cfg=None):
    """Write a report.json + report.md as evaluate does; returns the report.json path.

    ``train_seed`` / ``hidden`` / ``eval_cfg``: put ``train.seed`` / ``model.hidden`` / an
    ``eval`` section into the configuration."""
    res = results(us, inputs_id)
    config = {"exp": exp, "model": {"name": "GuidedIterativeGraphUNet", "use_test_guidance": True}}
    if train_seed is not None:
        config["train"] = {"seed": train_seed}
    if hidden is not None:
        config["model"]["hidden"] = hidden
    if eval_cfg is not None:
        config["eval"] = eval_cfg
    return write_report(out_dir, title=f"Exp {exp}", results=res, tables=report_tables(exp, res),
                        config=config)[0]
