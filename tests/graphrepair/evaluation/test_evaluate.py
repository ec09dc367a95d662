"""graphrepair.evaluate / compare on real MBPP and HumanEval programs with a tiny trained checkpoint."""

import json
import os
import time

import pytest

import graphrepair.evaluation.evaluate as ev
from graphrepair.compare import compare
from graphrepair.compare import main as compare_main
from graphrepair.config import load_config
from graphrepair.data.dataset import add_heldout_split
from graphrepair.evaluate import main as evaluate_main
from graphrepair.loop.refine import Refiner, refine
from graphrepair.train import run
from tests.graphrepair.conftest import data_dir

TINY = [
    "data.train_samples=8", "data.val_samples=4", "train.batch_size=4", "train.epochs=1",
    "train.trajectory_iterations=2", "model.hidden=32", "model.depth=2", "model.gat_heads=2",
    "model.attention_heads=2", "eval.split=val", "sandbox.timeout_s=5",
]
FAST = dict(levels=[0.2, 0.5], iterations=2, programs=3, split="val", progress=False)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """(cfg, model, data, checkpoint) of a tiny 3d checkpoint trained for two steps (no evaluation)."""
    run_dir = tmp_path_factory.mktemp("run")
    run(load_config("3d", TINY + [f"data.data_dir={data_dir()}"]), run_dir, do_eval=False, argv=["t"])
    return (*ev.load_for_eval(run_dir / "best.pt", data_dir()), str(run_dir / "best.pt"))


@pytest.fixture(scope="module")
def two_seeds(loaded, tmp_path_factory):
    cfg, model, data, ckpt = loaded
    out = tmp_path_factory.mktemp("eval2")
    results = ev.evaluate(cfg, model, data, out, seeds=2, checkpoint=ckpt, **FAST)[0]
    return out, results


def test_seeds_give_means_with_ci_and_every_baseline(two_seeds):
    out, res = two_seeds
    assert res["n_seeds"] == 2 and res["corruption_seeds"] == [1234, 1235]
    half = res["levels"]["0.5"]
    assert set(half["baselines"]) == {"feedback_zeroed", "feedback_shuffled", "search", "unigram", "copy"}
    units = [json.loads((out / "partial" / f"seed{s}-level0.5.json").read_text()) for s in (1234, 1235)]
    for m in ("repair_accuracy", "pass_rate"):  # the mean of the two seeds' finals
        finals = [u["methods"]["model"][-1][m] for u in units]
        assert half["final"][m] == pytest.approx(sum(finals) / 2)
        # Student t, df=1: 12.706 * |a - b| / 2
        assert half["ci95"]["final"][m] == pytest.approx(12.706 * abs(finals[0] - finals[1]) / 2, rel=1e-4)
    copy = half["baselines"]["copy"]["final"]
    assert copy["repair_accuracy"] == 0.0 and copy["pass_rate"] == 0.0 and 0 < copy["token_accuracy"] < 1
    assert len(half["per_iteration"]) == 2 and half["program_runs"] >= 2 * 3
    for u in units:  # no method writes a text outside the vocabulary: none beats the ceiling
        ceiling = u["in_vocab_ceiling"]
        assert 0 < ceiling["repair_accuracy"] <= 1 and 0 <= ceiling["exact_match"] <= 1
        for rows in u["methods"].values():
            for row in rows:
                assert row["repair_accuracy"] <= ceiling["repair_accuracy"]
                assert row["token_accuracy"] <= ceiling["token_accuracy"]
                assert row["exact_match"] <= ceiling["exact_match"]
    assert half["in_vocab_ceiling"]["repair_accuracy"] == pytest.approx(
        sum(u["in_vocab_ceiling"]["repair_accuracy"] for u in units) / 2)
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == 1 and report["results"]["schema"] == ev.RESULTS_SCHEMA
    assert report["git_commit"] and "python" in report["machine"] and report["config"]["exp"] == "3d"
    md = (out / "report.md").read_text()
    assert "| Model | One-shot @ 20% | Iterative @ 20% | One-shot @ 50% | Iterative @ 50% |" in md
    assert "| Corruption | One-shot | Final | Improvement | In-vocabulary ceiling |" in md
    assert "feedback zeroed" in md and "| in-vocabulary ceiling |" in md
    assert "Student t over n=2 seeds" in md
    # test feedback after the one-shot prediction: the units' shares, their mean in the report
    for u in units:
        fb = u["feedback"]
        assert fb["programs"] == u["programs"] and 0 <= fb["mixed"] <= fb["some_pass"] <= 1
        assert fb["localizable"] <= fb["programs"]
    assert half["feedback"]["loads"] == pytest.approx(sum(u["feedback"]["loads"] for u in units) / 2)
    assert "## Test feedback after the one-shot prediction" in md and "| Tests disagree |" in md
    for png in ("refinement.png", "pass_rate.png", "training_curves.png"):
        assert (out / png).stat().st_size > 1000


def test_one_seed_has_no_interval_and_says_n1(loaded, tmp_path):
    cfg, model, data, _ = loaded
    res = ev.evaluate(cfg, model, data, tmp_path, seeds=1, feedback_zeroed=False, **FAST)[0]
    lv = res["levels"]["0.2"]
    assert lv["ci95"]["final"]["repair_accuracy"] is None and "feedback_zeroed" not in lv["baselines"]
    assert "n=1 seed: no confidence interval" in (tmp_path / "report.md").read_text()


def test_interrupted_evaluation_resumes_with_identical_numbers(loaded, two_seeds, tmp_path, monkeypatch,
                                                                 caplog):
    cfg, model, data, _ = loaded
    real, calls = ev.run_unit, []

    def crash_after_first(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt("interrupted")
        calls.append(args[4:6])
        return real(*args, **kwargs)

    monkeypatch.setattr(ev, "run_unit", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        ev.evaluate(cfg, model, data, tmp_path, seeds=2, **FAST)
    assert [p.name for p in (tmp_path / "partial").iterdir()] == ["seed1234-level0.2.json"]

    def counting(*args, **kwargs):
        calls.append(args[4:6])
        return real(*args, **kwargs)

    monkeypatch.setattr(ev, "run_unit", counting)
    res = ev.evaluate(cfg, model, data, tmp_path, seeds=2, **FAST)[0]
    assert calls == [(0.2, 1234), (0.5, 1234), (0.2, 1235), (0.5, 1235)]  # the first not redone
    assert res["resumed_units"] == 1
    assert res["levels"] == two_seeds[1]["levels"]  # identical to the uninterrupted evaluation
    # results written for other settings (here: 1 iteration) are recomputed, with a warning
    calls.clear()
    ev.evaluate(cfg, model, data, tmp_path, seeds=1, **(FAST | {"iterations": 1}))
    assert len(calls) == 2 and "computed from other inputs" in caplog.text


def test_units_of_an_older_schema_are_recomputed_with_the_new_baselines(loaded, tmp_path, monkeypatch,
                                                                        caplog):
    """partial/ written by evaluate/5 (no feedback_shuffled, no search) is not resumed."""
    cfg, model, data, _ = loaded
    fast = FAST | {"levels": [0.2], "seeds": 1}
    real = ev.run_unit

    def old_unit(*args, **kwargs):
        unit = real(*args, **kwargs)
        for name in ("feedback_shuffled", "search"):
            del unit["methods"][name], unit["per_program"]["methods"][name]
        return unit

    monkeypatch.setattr(ev, "RESULTS_SCHEMA", "graphrepair.evaluate/5")
    monkeypatch.setattr(ev, "run_unit", old_unit)
    old = ev.evaluate(cfg, model, data, tmp_path, **fast)[0]
    assert set(old["levels"]["0.2"]["baselines"]) == {"feedback_zeroed", "unigram", "copy"}
    monkeypatch.undo()
    new = ev.evaluate(cfg, model, data, tmp_path, **fast)[0]
    assert new["resumed_units"] == 0 and "computed from other inputs" in caplog.text
    assert {"feedback_shuffled", "search"} <= set(new["levels"]["0.2"]["baselines"])
    off = ev.evaluate(cfg, model, data, tmp_path / "off", feedback_shuffled=False, search_baseline=False,
                      **fast)[0]
    assert set(off["levels"]["0.2"]["baselines"]) == {"feedback_zeroed", "unigram", "copy"}
    assert "| same model, feedback shuffled across programs | n/a |" in (tmp_path / "off" / "report.md").read_text()


def test_feedback_zeroed_gives_the_model_no_feedback_at_any_iteration(loaded, monkeypatch):
    cfg, model, data, _ = loaded
    refiner = Refiner.from_config(model, data.vocab, cfg)
    seen = []
    real = refiner.batch
    monkeypatch.setattr(refiner, "batch", lambda states, with_feedback: seen.append(with_feedback)
                        or real(states, with_feedback))
    from graphrepair.data.dataset import fixed_states

    def states():
        return [s for _, s in fixed_states(data.splits["val"][:3], [0.75], 3, 1, data.vocab)]

    refine(refiner, states(), 3, with_feedback=False, feedback_at_iteration0=True)
    assert seen and not any(seen)
    seen.clear()
    refine(refiner, states(), 3)
    assert seen[0] is False and all(seen[1:])  # Exp 3c rule: none at iteration 0 only


def test_humaneval_is_a_held_out_split_with_the_training_vocabulary(loaded, tmp_path):
    cfg, model, data, _ = loaded
    res = ev.evaluate(cfg, model, data, tmp_path, levels=[0.2], iterations=1, programs=3,
                      split="humaneval", seeds=1, progress=False)[0]
    n = len(data.splits["humaneval"])
    assert n + data.skipped["humaneval"] + data.near_duplicates_removed["humaneval"] == 164
    assert res["dataset"] == "humaneval" and res["trained_on"] == "mbpp" and res["programs"] == 3
    assert all(e.problem.task_id.startswith("humaneval/") for e in data.splits["humaneval"])
    # a vocabulary from 8 MBPP programs misses many HumanEval tokens, and says so
    assert res["unknown_leaves"]["humaneval"] > 0 and 0 < res["oov_rate"]["humaneval"] < 1
    md = (tmp_path / "report.md").read_text()
    assert "Held-out dataset `humaneval`" in md and "near-duplicates of training programs removed" in md
    humaneval_cfg = load_config("3d", [f"data.data_dir={data_dir()}", "data.dataset=humaneval"])
    with pytest.raises(ValueError, match="not held out"):
        add_heldout_split(humaneval_cfg, data, "humaneval")


def test_exp_picks_the_newest_run_or_lists_what_exists(tmp_path, capsys):
    for name, age in (("3d-20250101-000000", 100), ("3d-20250102-000000", 10), ("3d_cpu-1", 0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "best.pt").write_bytes(b"x")
        os.utime(tmp_path / name / "best.pt", (time.time() - age,) * 2)
    assert ev.find_checkpoint("3d", tmp_path) == tmp_path / "3d-20250102-000000" / "best.pt"
    assert evaluate_main(["--exp", "4", "--runs-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no " in err and "4-*/best.pt" in err and "3d_cpu-1" in err


def test_compare_tabulates_runs_with_baselines(two_seeds, loaded, tmp_path, capsys):
    out, res = two_seeds
    md_path, png, md = compare([out, out / "report.json"], tmp_path, aggregate=False)  # a row per run
    assert ("| Experiment | Model | Seeds (training × corruption) | One-shot @ 20% | Iterative @ 20% | "
            "One-shot @ 50% | Iterative @ 50% |") in md
    assert "Pass @ 50% (one-shot → final)" in md and "Exp 3d: unigram baseline" in md
    assert "Exp 3d (#2): same model, feedback zeroed" in md and "WARNING" not in md_path.read_text()
    assert png.stat().st_size > 1000
    one = res["levels"]["0.5"]
    assert f"{one['one_shot']['repair_accuracy'] * 100:.1f}%" in md
    assert compare_main([str(tmp_path / "missing-run")]) == 2
    err = capsys.readouterr().err
    assert "missing-run" in err and "has no evaluation report" in err and "graphrepair.evaluate" in err


def test_compare_refuses_a_report_without_confidence_intervals(two_seeds, tmp_path):
    """A report.json of an older evaluate (no ci95) gets an error that says how to redo it."""
    report = json.loads((two_seeds[0] / "report.json").read_text())
    for level in report["results"]["levels"].values():
        del level["ci95"]
    old = tmp_path / "old-run" / "eval"
    old.mkdir(parents=True)
    (old / "report.json").write_text(json.dumps(report))
    with pytest.raises(ValueError, match=r"older graphrepair.evaluate.*--checkpoint .*old-run/best.pt"):
        compare([tmp_path / "old-run"], tmp_path)


def test_compare_warns_when_inputs_differ(two_seeds, loaded, tmp_path):
    cfg, model, data, _ = loaded
    other = tmp_path / "other"
    ev.evaluate(cfg, model, data, other, seeds=1, feedback_zeroed=False, **FAST)
    md_path, _, md = compare([two_seeds[0], other], tmp_path)
    assert "WARNING: the runs were evaluated on different inputs" in md_path.read_text()
    # the model and five baselines per run (the other's feedback zeroed: n/a), each run's ceiling
    assert md.count("| Exp 3d") == 6 + 6 + 2 and md.count(": in-vocabulary ceiling |") == 2
    assert "| Exp 3d (#2): same model, feedback zeroed | guided_unet | 1 × 1 | n/a | n/a |" in md
