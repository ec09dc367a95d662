"""The training and evaluation commands never lose work and answer bad input with a message.

Each test reproduces a defect found by using the tools (issue 17, part 6) on today's code.
"""

import json
import shutil

import pytest
import torch
import yaml

from graphrepair.config import ExperimentConfig, load_config
from graphrepair.evaluate import main as evaluate_main
from graphrepair.graphs.vocab import Vocabulary
from graphrepair.models import build_model
from graphrepair.train import main as train_main
from harness.checkpoint import load_checkpoint, save_checkpoint
from harness.config import from_dict, to_dict
from tests.graphrepair.conftest import data_dir
from tests.graphrepair.test_end_to_end import TINY

SETS = [a for s in TINY + ["sandbox.workers=1"] for a in ("--set", s)]
RUN_FILES = ("best.pt", "last.pt", "metrics.csv", "config.yaml", "eval/report.json", "eval/report.md")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished, evaluated one-epoch run (never modified: tests copy it)."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    assert train_main(["--exp", "3d", *SETS, "--data-dir", data_dir(), "--run-dir", str(run_dir)]) == 0
    return run_dir


def _copy(run_dir, tmp_path):
    return shutil.copytree(run_dir, tmp_path / "run")


def _snapshot(run_dir):
    return {name: (run_dir / name).read_bytes() for name in RUN_FILES}


def test_train_refuses_a_run_dir_that_holds_a_run_and_force_replaces_it(finished, tmp_path, capsys, caplog):
    run_dir = _copy(finished, tmp_path)
    before = _snapshot(run_dir)
    capsys.readouterr()
    args = ["--exp", "3d", *SETS, "--data-dir", data_dir(), "--run-dir", str(run_dir), "--no-eval"]
    assert train_main(args) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--force" in err
    assert _snapshot(run_dir) == before  # best.pt, last.pt, metrics and the report untouched
    assert train_main([*args, "--force"]) == 0
    assert "--force: deleting the run" in caplog.text
    assert not (run_dir / "eval").exists()  # the old report described another model: gone


def test_resume_with_more_epochs_extends_the_run_and_records_it(finished, tmp_path, capsys):
    run_dir = _copy(finished, tmp_path)
    assert train_main(["--resume", str(run_dir), "--set", "train.epochs=2", "--no-eval"]) == 0
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 3  # header + 2 epochs
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 1
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["epochs"] == 2
    resumes = json.loads((run_dir / "run.json").read_text())["resumes"]
    assert resumes[-1]["changed"] == {"train.epochs": 2}
    capsys.readouterr()
    assert train_main(["--resume", str(run_dir), "--set", "model.hidden=64"]) == 2
    assert "--set model.hidden cannot change a resumed run" in capsys.readouterr().err
    assert train_main(["--resume", str(run_dir), "--exp", "3d"]) == 2
    assert "drop --exp and --run-dir" in capsys.readouterr().err


def test_resume_with_another_models_last_pt_is_a_message(finished, tmp_path, capsys):
    run_dir = _copy(finished, tmp_path)
    ckpt = load_checkpoint(run_dir / "last.pt")
    other = from_dict(ExperimentConfig, ckpt["config"])
    other.model.hidden = 16
    ckpt["model"] = build_model(other, Vocabulary.from_dict(ckpt["extra"]["vocab"])).state_dict()
    ckpt["config"] = to_dict(other)  # a consistent checkpoint, of another model
    save_checkpoint(run_dir / "last.pt", ckpt)
    capsys.readouterr()
    assert train_main(["--resume", str(run_dir), "--set", "train.epochs=2", "--no-eval"]) == 2
    err = capsys.readouterr().err
    assert "do not fit GuidedIterativeGraphUNet" in err and "last.pt" in err


def test_evaluate_rejects_out_of_range_options(finished, capsys):
    best = str(finished / "best.pt")
    for flags, message in ((["--programs", "-85"], "--programs must be >= 0"),
                           (["--iterations", "0"], "--iterations must be >= 1"),
                           (["--seeds", "0"], "--seeds must be >= 1"),
                           (["--max-tests", "0"], "--max-tests must be >= 1"),
                           (["--corruption", "1.5"], "--corruption levels must lie in [0, 1]")):
        assert evaluate_main(["--checkpoint", best, *flags]) == 2
        assert message in capsys.readouterr().err


def test_a_one_off_evaluation_gets_its_own_directory(finished, tmp_path, capsys):
    run_dir = _copy(finished, tmp_path)
    main_report = (run_dir / "eval" / "report.json").read_bytes()
    assert evaluate_main(["--checkpoint", str(run_dir / "best.pt"), "--split", "val",
                          "--programs", "3", "--iterations", "1", "--corruption", "0.2",
                          "--max-tests", "2", "--data-dir", data_dir()]) == 0
    own = run_dir / "eval-max_tests_2-split_val-programs_3-levels_0.2-iterations_1"
    report = json.loads((own / "report.json").read_text())
    assert report["results"]["programs"] == 3 and report["config"]["data"]["max_tests"] == 2
    assert (run_dir / "eval" / "report.json").read_bytes() == main_report


def test_evaluate_decodes_another_way_with_set_and_refuses_other_sections(finished, tmp_path, capsys):
    run_dir = _copy(finished, tmp_path)
    best = str(run_dir / "best.pt")
    assert evaluate_main(["--checkpoint", best, "--set", "train.epochs=3"]) == 2
    assert "only ['decoding'] may be changed" in capsys.readouterr().err
    assert evaluate_main(["--checkpoint", best, "--set", "decoding.policy=guess"]) == 2
    assert evaluate_main(["--checkpoint", best, "--split", "val", "--programs", "3", "--iterations",
                          "2", "--corruption", "0.5", "--no-search", "--data-dir", data_dir(),
                          "--set", "decoding.grammar=true", "--set",
                          "decoding.policy=mask_predict"]) == 0
    own = run_dir / ("eval-split_val-programs_3-levels_0.5-iterations_2-no_search-grammar_true-"
                     "policy_mask_predict")
    report = json.loads((own / "report.json").read_text())
    assert report["config"]["decoding"]["grammar"] is True
    assert "policy `mask_predict`" in (own / "report.md").read_text()


def test_a_checkpoint_with_flipped_bytes_is_refused(finished, tmp_path, capsys):
    run_dir = _copy(finished, tmp_path)
    best = run_dir / "best.pt"
    data = bytearray(best.read_bytes())
    data[len(data) // 2] ^= 0x01
    best.write_bytes(bytes(data))
    assert evaluate_main(["--checkpoint", str(best), "--data-dir", data_dir(),
                          "--out", str(tmp_path / "eval")]) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {best} is damaged" in err
    assert not (tmp_path / "eval").exists()


def test_a_dataset_with_the_wrong_sha256_is_a_message_in_train(tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(data_dir(), data)
    mbpp = data / "mbpp.jsonl"
    mbpp.write_bytes(mbpp.read_bytes().replace(b"def ", b"def  ", 1))
    code = train_main(["--exp", "3d", *SETS, "--data-dir", str(data), "--run-dir",
                       str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{mbpp} has SHA-256" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("setting, message", [
    ("data.dataset=mbppp", "data.dataset: expected one of ['mbpp', 'sanitized-mbpp', 'humaneval', 'mbpp_plus'"),
    ("train.trajectory_iterations=0", "train.trajectory_iterations must be in [1, inf), got 0"),
    ("train.lr=-1e-3", "train.lr must be in (0, inf), got -0.001"),
    ("data.train_samples=0", "data.train_samples must be in [1, inf)"),
    ("corruption.rates=[0.5, 1.2]", "corruption.rates must be in (0, 1], got 1.2"),
    ("sandbox.timeout_s=0", "sandbox.timeout_s must be in (0, 86400]"),
    ("train.device=gpu", "train.device must be auto, cpu, cuda or cuda:N"),
    ("model.name=transformer", "unknown model 'transformer'; registered: ['guided_unet', 'iterative_unet', 'pointer_unet']"),
])
def test_bad_settings_are_messages_before_any_directory_is_written(setting, message, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert train_main(["--exp", "3d", "--set", setting, "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not run_dir.exists()


def test_cuda_without_cuda_is_an_environment_error(finished, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert train_main(["--exp", "3d", "--set", "train.device=cuda", "--run-dir",
                       str(tmp_path / "run")]) == 3
    assert "CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert evaluate_main(["--checkpoint", str(finished / "best.pt"), "--device", "cuda"]) == 3
    assert "CUDA is not available" in capsys.readouterr().err


def test_scientific_notation_in_set():
    assert load_config("3d", ["train.lr=1e-4"]).train.lr == 1e-4
