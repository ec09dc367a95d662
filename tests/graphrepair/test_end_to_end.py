"""End to end on real MBPP programs: train two steps, checkpoint, evaluate with real test runs."""

import argparse
import csv
import json

import numpy as np
import pytest
import torch

from graphrepair.config import load_config
from graphrepair.evaluate import main as evaluate_main
from graphrepair.evaluate import report_dir
from graphrepair.evaluation.evaluate import evaluate_checkpoint
from graphrepair.features.encoding import EncodedProgram, feedback_from_result
from graphrepair.graphs.graph import ProgramGraph
from graphrepair.graphs.vocab import Vocabulary
from graphrepair.train import main as train_main
from graphrepair.train import run
from harness.sandbox import OUTCOMES, run_tests
from harness.trainer import load_checkpoint
from tests.graphrepair.conftest import data_dir

TINY = [
    "data.train_samples=8", "data.val_samples=4", "train.batch_size=4", "train.epochs=1",
    "train.trajectory_iterations=2", "model.hidden=32", "model.depth=2", "model.gat_heads=2",
    "model.attention_heads=2", "eval.programs=4", "eval.iterations=2", "eval.split=val",
    "sandbox.timeout_s=5",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cfg = load_config("3d", TINY + [f"data.data_dir={data_dir()}", "eval.corruption=[0.0, 0.5]"])
    run_dir = tmp_path_factory.mktemp("run")
    out = run(cfg, run_dir, argv=["test"])
    return run_dir, out


def test_training_writes_a_loadable_checkpoint_and_logs(trained):
    run_dir, out = trained
    ckpt = load_checkpoint(run_dir / "best.pt")
    assert ckpt["step"] == 2  # 8 samples / batch 4 = two optimisation steps
    assert ckpt["config"]["exp"] == "3d" and ckpt["config"]["model"]["hidden"] == 32
    vocab = Vocabulary.from_dict(ckpt["extra"]["vocab"])
    assert len(vocab) == ckpt["model"]["token_emb.weight"].shape[0]
    assert (run_dir / "config.yaml").is_file() and (run_dir / "run.json").is_file()
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2 and "val/repair_accuracy" in rows[0]
    epoch = next(csv.DictReader(rows))
    # 8 trajectories of 2 iterations: the second iteration's programs were really executed
    assert 1 <= float(epoch["train/program_runs"]) <= 8
    assert 0.0 <= float(epoch["train/cache_hit_rate"]) < 1.0
    assert any((run_dir / "tb").iterdir())
    meta = json.loads((run_dir / "data.json").read_text())
    assert meta["training_samples"]["samples"] == 8 and meta["training_samples"]["unique_programs"] <= 8
    assert set(meta["near_duplicates_removed"]) == {"train", "val", "test"}
    assert meta["near_duplicates_removed"]["train"] == 0
    by_kind = meta["near_duplicates_by_kind"]  # MBPP's default split: both criteria remove programs
    assert by_kind["test"]["normalised_ast"] > 0 and by_kind["test"]["token_similarity"] > 0
    assert all(sum(by_kind[s].values()) == meta["near_duplicates_removed"][s] for s in by_kind)
    assert len(meta["near_duplicates"]) == sum(meta["near_duplicates_removed"].values())


def test_report_schema_and_numbers_come_from_test_runs(trained):
    run_dir, out = trained
    report = json.loads((run_dir / "eval" / "report.json").read_text())
    assert report["schema_version"] == 1 and report["config"]["exp"] == "3d"
    res = report["results"]
    assert set(res["levels"]) == {"0", "0.5"}
    clean = res["levels"]["0"]
    # unmodified reference programs: nothing masked, all tests really pass
    assert clean["one_shot"]["pass_rate"] == 1.0 and clean["one_shot"]["exact_match"] == 1.0
    assert clean["baselines"]["unigram"]["final"]["pass_rate"] == 1.0
    assert clean["test_runs"] >= res["programs"]
    half = res["levels"]["0.5"]
    assert len(half["per_iteration"]) == 2 and half["masked_leaves"] > 0
    for row in half["per_iteration"]:
        for k in ("repair_accuracy", "token_accuracy", "exact_match", "pass_rate"):
            assert 0.0 <= row[k] <= 1.0
    assert half["one_shot"]["pass_rate"] < 1.0  # half the eligible tokens masked by a 2-step model
    md = (run_dir / "eval" / "report.md").read_text()
    assert "| Corruption | One-shot | Final | Improvement |" in md and "unigram baseline" in md
    assert (run_dir / "eval" / "refinement.png").stat().st_size > 1000


def test_evaluate_cli_on_checkpoint(trained, tmp_path, capsys):
    run_dir, _ = trained
    code = evaluate_main(["--checkpoint", str(run_dir / "best.pt"), "--corruption", "0.2",
                          "--iterations", "1", "--programs", "3", "--split", "val",
                          "--data-dir", data_dir(), "--out", str(tmp_path)])
    assert code == 0
    assert "One-shot @ 20%" in capsys.readouterr().out
    assert json.loads((tmp_path / "report.json").read_text())["results"]["programs"] == 3
    baselines = json.loads((tmp_path / "report.json").read_text())["results"]["levels"]["0.2"]["baselines"]
    assert {"feedback_shuffled", "search"} <= set(baselines)
    code = evaluate_main(["--checkpoint", str(run_dir / "best.pt"), "--corruption", "0.2",
                          "--iterations", "1", "--programs", "2", "--split", "val", "--no-search",
                          "--no-feedback-shuffled", "--data-dir", data_dir(), "--out", str(tmp_path / "off")])
    assert code == 0
    baselines = json.loads((tmp_path / "off" / "report.json").read_text())["results"]["levels"]["0.2"]["baselines"]
    assert set(baselines) == {"feedback_zeroed", "unigram", "copy"}
    args = argparse.Namespace(out=None, dataset=None, max_tests=None, split=None, programs=None, corruption=None,
                              iterations=None, seeds=None, no_feedback_zeroed=False,
                              no_feedback_shuffled=True, no_search=True, set=None)
    assert report_dir(run_dir / "best.pt", args) == run_dir / "eval-no_feedback_shuffled-no_search"


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="corrupt or truncated"):
        evaluate_checkpoint(bad)


def test_checkpoint_of_another_model_or_vocabulary_is_a_clear_error(trained, tmp_path, capsys):
    run_dir, _ = trained
    ckpt = load_checkpoint(run_dir / "best.pt")
    ckpt["model"]["token_emb.weight"] = ckpt["model"]["token_emb.weight"][:-5]  # other vocabulary
    del ckpt["model"]["head.bias"]
    other = tmp_path / "other.pt"
    torch.save(ckpt, other)
    code = evaluate_main(["--checkpoint", str(other), "--data-dir", data_dir(),
                          "--out", str(tmp_path / "eval")])
    err = capsys.readouterr().err
    assert code == 2
    assert "do not fit GuidedIterativeGraphUNet" in err and "head.bias" in err
    assert "token_emb.weight" in err and "retrain" in err
    assert not (tmp_path / "eval").exists()


def test_unknown_experiment_lists_valid_ones(capsys):
    assert train_main(["--exp", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown experiment id 'nope'" in err and "3d" in err


def test_unknown_override_key_is_an_error(capsys):
    assert train_main(["--exp", "3d", "--set", "train.epochz=3"]) == 2
    assert "epochz" in capsys.readouterr().err


def test_feedback_marks_nodes_executed_by_failing_tests(mbpp):
    """A real one-token bug: the failing test's trace covers the buggy line, outcomes are real."""
    p = mbpp["mbpp/17"]  # square_perimeter(a): perimeter = 4 * a
    g = ProgramGraph.from_source(p.source)
    vocab = Vocabulary.build([g])
    enc = EncodedProgram.build(p, g, vocab, ["operator", "literal"])
    texts = ["3" if t == "4" else t for t in enc.orig_texts]  # 4*a -> 3*a
    result = run_tests(enc.source(texts), p.tests, p.setup, timeout_s=5)
    fb = feedback_from_result(enc, texts, result, max_tests=100)
    assert [OUTCOMES[o] for o in fb.outcome] == ["failed"] * len(p.tests) and not fb.all_passed
    buggy_leaf = texts.index("3")
    buggy_node = enc.leaf_nodes[buggy_leaf]
    for t in range(len(p.tests)):
        assert buggy_node in fb.trace_index[1][fb.trace_index[0] == t]
    fixed = feedback_from_result(enc, enc.orig_texts,
                                 run_tests(p.source, p.tests, p.setup, timeout_s=5), 100)
    assert fixed.all_passed and (np.array(fixed.outcome) == OUTCOMES.index("passed")).all()


def test_unparsable_program_feedback_points_at_the_error_region(mbpp):
    p = mbpp["mbpp/17"]
    g = ProgramGraph.from_source(p.source)
    enc = EncodedProgram.build(p, g, Vocabulary.build([g]), ["operator"])
    texts = [None if t == "*" else t for t in enc.orig_texts]  # a mask left in: does not parse
    result = run_tests(enc.source(texts), p.tests, p.setup, timeout_s=5)
    assert result.load_outcome == "error"
    fb = feedback_from_result(enc, texts, result, max_tests=100)
    assert (np.array(fb.outcome) == OUTCOMES.index("error")).all()
    lines = enc.node_lines(texts)
    star_line = lines[enc.leaf_nodes[enc.orig_texts.index("*")]]
    assert set(lines[fb.trace_index[1]]) == {star_line}
    assert torch.is_tensor(torch.as_tensor(fb.trace_index))


def test_missing_dataset_is_a_clear_error_and_leaves_no_run_directory(tmp_path, capsys):
    empty, run_dir = tmp_path / "no-data", tmp_path / "run"
    empty.mkdir()
    code = train_main(["--exp", "3d", "--data-dir", str(empty), "--run-dir", str(run_dir)])
    assert code == 2
    err = capsys.readouterr().err
    assert "mbpp.jsonl" in err and str(empty) in err and "GRAPHREPAIR_DATA" in err
    assert not run_dir.exists()
