"""run_unit keeps each program's outcome, and those outcomes add up to the metric rows it reports
(one-shot and final, every method) on real MBPP programs with a tiny trained checkpoint."""

import dataclasses
import json

import pytest

import graphrepair.evaluation.evaluate as ev
from graphrepair.compare import compare
from graphrepair.config import load_config
from graphrepair.loop.refine import Refiner
from graphrepair.train import run
from tests.graphrepair.conftest import data_dir

TINY = [
    "data.train_samples=8", "data.val_samples=4", "train.batch_size=4", "train.epochs=1",
    "train.trajectory_iterations=2", "model.hidden=32", "model.depth=2", "model.gat_heads=2",
    "model.attention_heads=2", "eval.split=val", "sandbox.timeout_s=5",
]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """(cfg, model, data, checkpoint) of a tiny 3d checkpoint trained for two steps."""
    run_dir = tmp_path_factory.mktemp("run")
    run(load_config("3d", TINY + [f"data.data_dir={data_dir()}"]), run_dir, do_eval=False, argv=["t"])
    return (*ev.load_for_eval(run_dir / "best.pt", data_dir()), str(run_dir / "best.pt"))


def _metrics(o, masked, leaves):
    n = len(o["passed"])
    return {"repair_accuracy": sum(o["restored"]) / sum(masked), "token_accuracy": sum(o["correct"]) / sum(leaves),
            "exact_match": sum(o["exact"]) / n, "pass_rate": sum(o["passed"]) / n}


@pytest.mark.parametrize("feedback_at_iteration0", [False, True])
def test_per_program_outcomes_add_up_to_the_reported_rows(loaded, feedback_at_iteration0):
    cfg, model, data, _ = loaded
    cfg = dataclasses.replace(cfg, feedback=dataclasses.replace(
        cfg.feedback, feedback_at_iteration0=feedback_at_iteration0))
    pool = data.splits["val"][:3]
    unit = ev.run_unit(Refiner.from_config(model, data.vocab, cfg), cfg, data, pool, 0.75, 1234, 3)
    per = unit["per_program"]
    assert per["task_ids"] == [e.problem.task_id for e in pool]
    assert sum(per["masked"]) == unit["masked_leaves"] and all(m > 0 for m in per["masked"])
    assert set(per["methods"]) == set(unit["methods"]) == set(per["program_runs"]) == {
        "model", "feedback_zeroed", "feedback_shuffled", "search", "unigram", "copy"}
    for method, rows in unit["methods"].items():
        assert len(rows) == (1 if method in ("unigram", "copy") else 3), method
        for stage, row in (("one_shot", rows[0]), ("final", rows[-1])):
            got = _metrics(per["methods"][method][stage], per["masked"], per["leaves"])
            assert got == pytest.approx({m: row[m] for m in got}), (method, stage)
        assert sum(per["program_runs"][method]) == rows[-1]["program_runs"], method
    assert sum(per["methods"]["model"]["one_shot"]["restored"]) > 0  # the check is not vacuous
    # search: the model's one-shot program, then never more executions than the model per program,
    # at no row more than the model had used by then, and never fewer programs passing
    model, search = unit["methods"]["model"], unit["methods"]["search"]
    assert per["methods"]["search"]["one_shot"] == per["methods"]["model"]["one_shot"]
    assert all(s <= m for s, m in zip(per["program_runs"]["search"], per["program_runs"]["model"]))
    assert all(s["program_runs"] <= m["program_runs"] for s, m in zip(search, model))
    assert all(f >= o for f, o in zip(per["methods"]["search"]["final"]["passed"],
                                      per["methods"]["model"]["one_shot"]["passed"]))
    assert all(later["pass_rate"] >= row["pass_rate"] for row, later in zip(search, search[1:]))
    assert search[-1]["program_runs"] > search[0]["program_runs"]  # it did search
    assert json.loads(json.dumps(unit)) == unit  # what partial/ stores


def test_report_json_carries_outcomes_for_compare(loaded, tmp_path):
    cfg, model, data, ckpt = loaded
    res = ev.evaluate(cfg, model, data, tmp_path / "eval", levels=[0.5], iterations=2, programs=3,
                      split="val", seeds=1, progress=False)[0]
    level = json.loads((tmp_path / "eval" / "report.json").read_text())["results"]["levels"]["0.5"]
    assert level["per_program"] == json.loads(json.dumps(res["levels"]["0.5"]["per_program"]))
    assert set(level["paired"]) == {"feedback_zeroed", "feedback_shuffled", "search", "unigram", "copy"}
    md = (tmp_path / "eval" / "report.md").read_text()
    assert "Model vs baselines (paired bootstrap over programs)" in md and "n=3 programs" in md
    for label in ("same model, feedback shuffled across programs", "search with the model's test executions"):
        assert f"| 50% | {label} | " in md and f"| {label}, iteration 1 |" in md
    text = compare([tmp_path, tmp_path / "eval" / "report.json"], tmp_path / "out",
                   aggregate=False)[0].read_text()  # a row per run: the run against itself
    assert "| Exp 3d (#2) − Exp 3d | 50% | +0.0 pp [+0.0, +0.0] |" in text  # a run against itself
    assert "| Exp 3d: search with the model's test executions | - | 1 × 1 |" in text
    assert "| Exp 3d (#2): same model, feedback shuffled across programs | 50% |" in text  # improvement
