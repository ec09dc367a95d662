"""``python -m jepa.train`` end to end on a tiny corpus and teacher: every experiment family in a
short ``--set`` version, its report, predictions that recompute the reported ranks, resume."""

from __future__ import annotations

import json

import pytest

from jepa import compare, evaluate, prepare, train
from tests.jepa.test_prepare import _repos

SHORT = ["--set", "train.epochs=2", "--set", "train.batch_size=4", "--set", "train.warmup_epochs=1",
         "--set", "train.bootstrap=50", "--set", "train.device=cpu", "--set", "student.d_model=32",
         "--set", "student.ffn=64", "--set", "student.heads=4", "--set", "student.layers=1"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tiny_bert):
    """A 10-repository corpus with per-token states of every part, from the tiny BERT teacher."""
    root = tmp_path_factory.mktemp("jepa-train")
    src = _repos(root / "src", n=10)
    data = ["--data-dir", str(root / "data"), "--set", "corpus.source=directory",
            "--set", f"corpus.directory={src}", "--set", "corpus.minimum=1",
            "--set", f"teacher.model={tiny_bert}", "--set", "teacher.layer=2",
            "--set", "teacher.dtype=float32"]
    assert prepare.main(["--exp", "2_2", *data]) == 0  # store.tokens: all serves every experiment
    return root, data


@pytest.mark.parametrize("exp", ["1_1", "1_2", "1_4", "2_1", "2_2"])
def test_each_experiment_family_trains_and_reports(prepared, exp, capsys):
    root, data = prepared
    run_dir = root / f"run-{exp}"
    extra = ["--set", "loss.hard_negatives=2"] if exp == "2_1" else []
    extra += ["--set", "train.repositories=3"] if exp == "1_2" else []
    extra += ["--set", "train.group_by_length=true"] if exp == "1_4" else []
    assert train.main(["--exp", exp, *data, *SHORT, *extra, "--run-dir", str(run_dir)]) == 0
    assert "Test (the result)" in capsys.readouterr().out
    for name in ("config.yaml", "run.json", "metrics.csv", "best.pt", "best.pt.sha256",
                 "eval/report.md", "eval/report.json", "eval/predictions.safetensors"):
        assert (run_dir / name).is_file(), name
    results = json.loads((run_dir / "eval" / "report.json").read_text())["results"]
    student = next(k for k in results["test"] if k.startswith("student"))
    assert {"random", "teacher signature → body", "BM25 signature text → body text"} <= set(results["test"])
    # anyone can recompute the ranks from the saved predictions and the corpus keys
    from safetensors import safe_open

    from harness.config import load_experiment
    from jepa.config import ExperimentConfig
    from jepa.data import load_student_data
    from jepa.retrieval import evaluate_embeddings, rank_metrics

    with safe_open(run_dir / "eval" / "predictions.safetensors", "pt") as f:
        pred, targets, mean = f.get_tensor("test_predictions"), f.get_tensor("test_targets"), f.get_tensor("mean")
        keys = json.loads(f.metadata()["corpus_keys"])
    cfg = load_experiment(ExperimentConfig, prepare.CONFIG_DIR, exp, [a for a in data if "=" in a])
    loaded = load_student_data(cfg, root / "data", signature_tokens=False, body_tokens=False)
    assert keys == [k for s in ("train", "val", "test") for k in loaded.splits[s].keys]
    again = rank_metrics(evaluate_embeddings(pred, loaded.corpus, targets, mean=mean).ranks)
    assert again["rank@1"] == pytest.approx(results["test"][student]["rank@1"]["value"])


def test_resume_extends_a_finished_run_and_compare_tabulates_runs(prepared, capsys):
    root, data = prepared
    run_dir = root / "run-resume"
    assert train.main(["--exp", "1_4", *data, *SHORT, "--set", "train.epochs=1",
                       "--run-dir", str(run_dir)]) == 0
    assert train.main(["--exp", "1_4", *data, *SHORT, "--run-dir", str(run_dir)]) == 2  # not replaced
    assert "already holds a run" in capsys.readouterr().err
    assert train.main(["--resume", str(run_dir), "--set", "train.epochs=2", *data[:2]]) == 0
    assert len((run_dir / "metrics.csv").read_text().strip().splitlines()) == 1 + 2
    other = root / "run-1_1"
    if not (other / "eval").is_dir():
        assert train.main(["--exp", "1_1", *data, *SHORT, "--run-dir", str(other)]) == 0
    capsys.readouterr()
    again = root / "eval-again"  # jepa.evaluate reproduces the run's own test figures
    assert evaluate.main(["--checkpoint", str(run_dir / "best.pt"), "--data-dir", data[1],
                          "--out", str(again)]) == 0
    def student(path):
        return next(v for k, v in json.loads(path.read_text())["results"]["test"].items()
                    if k.startswith("student"))

    assert student(again / "report.json") == student(run_dir / "eval" / "report.json")
    assert evaluate.main(["--checkpoint", str(run_dir / "best.pt"), "--data-dir", data[1],
                          "--out", str(again)]) == 2  # a report is not overwritten
    capsys.readouterr()
    assert compare.main([str(run_dir), str(other), "--out", str(root / "cmp")]) == 0
    out = capsys.readouterr().out
    assert "1_4" in out and "1_1" in out and "Baselines" in out


def test_prepare_of_a_signature_experiment_reuses_the_set_with_every_part(prepared, capsys):
    root, data = prepared
    assert prepare.main(["--exp", "1_4", *data]) == 0
    assert "[teacher] cached" in capsys.readouterr().out
    assert len(list((root / "data" / "states").iterdir())) == 1  # nothing computed again


def test_missing_states_name_the_prepare_command(tmp_path, capsys):
    assert train.main(["--exp", "1_4", "--data-dir", str(tmp_path / "none"), *SHORT,
                       "--run-dir", str(tmp_path / "run")]) == 2
    assert "python -m jepa.prepare --exp 1_4" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_3_0_runs_with_a_causal_teacher(tmp_path, tiny_qwen2, capsys):
    """3.0's short version: a causal teacher (tiny Qwen2) read once over [signature ; body], the
    student with an input LayerNorm, trained and evaluated end to end."""
    src = _repos(tmp_path / "src", n=10)
    data = ["--data-dir", str(tmp_path / "data"), "--set", "corpus.source=directory",
            "--set", f"corpus.directory={src}", "--set", "corpus.minimum=1",
            "--set", f"teacher.model={tiny_qwen2}", "--set", "teacher.layer=2",
            "--set", "teacher.dtype=float32"]
    assert prepare.main(["--exp", "3_0", *data]) == 0
    run_dir = tmp_path / "run"
    assert train.main(["--exp", "3_0", *data, *SHORT, "--run-dir", str(run_dir)]) == 0
    assert "Test (the result)" in capsys.readouterr().out
    import yaml

    assert yaml.safe_load((run_dir / "config.yaml").read_text())["student"]["input_norm"] is True
    report = json.loads((run_dir / "eval" / "report.json").read_text())
    assert "teacher signature → body" in report["results"]["test"]
