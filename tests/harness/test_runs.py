"""harness.runs: run directories that never lose work, resume overrides, checkpoint lookup, units."""

import json
import logging
import os
import time

import pytest
import torch

from harness.config import ConfigError
from harness.runs import (
    RunDirError,
    UnitStore,
    claim_run_dir,
    find_checkpoint,
    fingerprint,
    record_resume,
    resume_config,
    resume_overrides,
    timestamped_run_dir,
)


def _finished_run(path):
    path.mkdir(parents=True)
    for name in ("config.yaml", "run.json", "metrics.csv", "last.pt", "best.pt"):
        (path / name).write_text(name)
    return path


def test_a_directory_holding_a_run_is_refused_unless_resumed_or_replaced(tmp_path, caplog):
    run = _finished_run(tmp_path / "run")
    with pytest.raises(RunDirError, match=r"already holds a run .*--resume .*--force"):
        claim_run_dir(run)
    assert (run / "best.pt").read_text() == "best.pt"  # untouched
    assert claim_run_dir(run, resume=True) == run
    with caplog.at_level(logging.WARNING):
        assert claim_run_dir(run, force=True) == run
    assert not run.exists() and "--force: deleting the run" in caplog.text
    assert claim_run_dir(tmp_path / "new") == tmp_path / "new"
    assert not (tmp_path / "new").exists()  # nothing is created before the run starts


def test_a_non_empty_directory_without_a_run_is_never_deleted(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    for force in (False, True):
        with pytest.raises(RunDirError, match="holds no run"):
            claim_run_dir(tmp_path, force=force)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    assert claim_run_dir(tmp_path / "empty") == tmp_path / "empty"


def test_resume_needs_last_pt_and_excludes_force(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"last\.pt does not exist"):
        claim_run_dir(tmp_path, resume=True)
    with pytest.raises(RunDirError, match="give one of them"):
        claim_run_dir(tmp_path, resume=True, force=True)


def test_only_keys_that_extend_a_run_may_change_on_resume():
    ok = resume_overrides(["train.epochs=8", "train.patience=3"], {"train.epochs", "train.patience"})
    assert ok == [("train.epochs", 8), ("train.patience", 3)]
    with pytest.raises(ConfigError, match=r"--set model\.hidden cannot change a resumed run.*"
                                          r"only train\.epochs, train\.patience extend"):
        resume_overrides(["train.epochs=8", "model.hidden=64"], {"train.epochs", "train.patience"})


def test_record_resume_appends_to_run_json(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"argv": ["first"]}))
    record_resume(tmp_path, ["again"], {"train.epochs": 8})
    record_resume(tmp_path, ["third"], {})
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["argv"] == ["first"]
    assert [r["argv"] for r in meta["resumes"]] == [["again"], ["third"]]
    assert meta["resumes"][0]["changed"] == {"train.epochs": 8}


def test_find_checkpoint_newest_of_an_experiment_or_of_any_run(tmp_path):
    for name, age in (("3d-1", 100), ("3d-2", 10), ("3d_cpu-1", 0), ("other/deep", 50)):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "best.pt").write_bytes(b"x")
        os.utime(tmp_path / name / "best.pt", (time.time() - age,) * 2)
    assert find_checkpoint(tmp_path, "3d") == tmp_path / "3d-2" / "best.pt"
    assert find_checkpoint(tmp_path) == tmp_path / "3d_cpu-1" / "best.pt"
    with pytest.raises(FileNotFoundError, match=r"4-\*/best\.pt.*3d_cpu-1"):
        find_checkpoint(tmp_path, "4")
    with pytest.raises(FileNotFoundError, match="none"):
        find_checkpoint(tmp_path / "empty")


def test_timestamped_run_dir_names():
    import datetime as dt

    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert timestamped_run_dir("runs", "3d", now).as_posix() == "runs/3d-20260102-030405"


def test_units_are_reused_only_with_their_fingerprint(tmp_path, caplog):
    store = UnitStore(tmp_path / "partial")
    assert store.load("a", "fp1") is None
    store.save("a", "fp1", {"x": 1})
    assert store.load("a", "fp1") == {"x": 1, "fingerprint": "fp1"}
    with caplog.at_level(logging.WARNING):
        assert store.load("a", "fp2") is None
    assert "computed from other inputs" in caplog.text
    store.path("b").write_text("{truncated")
    assert store.load("b", "fp1") is None and "unreadable" in caplog.text


def test_fingerprint_depends_on_every_tensor_byte_and_setting():
    w = {"w": torch.zeros(3)}
    base = fingerprint({"k": 1}, w)
    assert base == fingerprint({"k": 1}, {"w": torch.zeros(3)})
    assert base != fingerprint({"k": 2}, w)
    assert base != fingerprint({"k": 1}, {"w": torch.tensor([0.0, 0.0, 1e-30])})
    assert len(base) == 32


def test_resume_config_reads_the_run_and_applies_only_extending_keys(tmp_path):
    from dataclasses import dataclass, field

    from harness.config import write_config

    @dataclass
    class Train:
        epochs: int = 1
        lr: float = 0.1

    @dataclass
    class Cfg:
        train: Train = field(default_factory=Train)

    write_config(Cfg(Train(epochs=3)), tmp_path / "config.yaml")
    cfg, changes = resume_config(tmp_path, Cfg, ["train.epochs=5"], {"train.epochs"})
    assert cfg == Cfg(Train(epochs=5)) and changes == {"train.epochs": 5}
    with pytest.raises(ConfigError, match="cannot change a resumed run"):
        resume_config(tmp_path, Cfg, ["train.lr=1"], {"train.epochs"})
    (tmp_path / "config.yaml").write_text("train: [not, a, section")
    with pytest.raises(ConfigError, match=r"cannot read .*config\.yaml"):
        resume_config(tmp_path, Cfg, [], {"train.epochs"})
