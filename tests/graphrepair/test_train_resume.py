"""Exact resume: a run killed mid-epoch and resumed reaches the weights of an uninterrupted run."""

import os
import subprocess
import sys

import pytest
import torch

from graphrepair.config import load_config
from graphrepair.train import main as train_main
from graphrepair.train import run
from harness.trainer import KILL_AT_STEP_ENV, CheckpointError, load_checkpoint
from tests.graphrepair.conftest import data_dir
from tests.graphrepair.test_end_to_end import TINY

# 8 samples / batch 4 = 2 steps per epoch; dropout on, so the torch generator matters too
SETTINGS = TINY + ["train.epochs=3", "model.dropout=0.1", "sandbox.workers=1"]


def train_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m graphrepair.train ARGS`` in a fresh process (what a user restarts after a crash)."""
    return subprocess.run([sys.executable, "-m", "graphrepair.train", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_killed_run_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    cfg = load_config("3d", SETTINGS + [f"data.data_dir={data_dir()}"])
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run(cfg, straight, do_eval=False, argv=["test"])

    sets = [a for s in SETTINGS for a in ("--set", s)]
    # SIGKILL right after step 3 = the first of epoch 2's two steps (the last.pt of epoch 1 stays)
    first = train_cli("--exp", "3d", *sets, "--data-dir", data_dir(), "--run-dir", str(killed),
                      "--no-eval", env={KILL_AT_STEP_ENV: "3"})
    assert first.returncode == -9, first.stderr[-2000:]
    interrupted = load_checkpoint(killed / "last.pt")
    assert (interrupted["epoch"], interrupted["step"]) == (0, 2)
    assert len((killed / "metrics.csv").read_text().splitlines()) == 2  # header + epoch 1

    second = train_cli("--resume", str(killed), "--no-eval")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resumed from" in second.stderr and "at epoch 2" in second.stderr

    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(killed / "last.pt")
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"]) == (2, 6)
    assert a["model"].keys() == b["model"].keys()
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), f"{name} differs after resume"
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert [r["train/loss"] for r in a["rows"]] == [r["train/loss"] for r in b["rows"]]
    assert a["ranks"][0]["task"]["rng"] == b["ranks"][0]["task"]["rng"]
    csv_rows = (killed / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in csv_rows[1:]] == ["1", "2", "3"]


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_resume_from_a_damaged_last_checkpoint_is_a_clear_error(tmp_path, damage, capsys):
    """A damaged last.pt stops the resume (exit 2) with an error naming the file and what to do."""
    cfg = load_config("3d", TINY + [f"data.data_dir={data_dir()}", "sandbox.workers=1"])
    run(cfg, tmp_path, do_eval=False, argv=["test"])
    last = tmp_path / "last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x00garbage" * 64)
    with pytest.raises(CheckpointError, match="is damaged: its SHA-256"):
        load_checkpoint(last)
    capsys.readouterr()
    assert train_main(["--resume", str(tmp_path), "--no-eval"]) == 2
    err = capsys.readouterr().err
    assert str(last) in err and "is damaged" in err and "copy it and its .sha256 over last.pt" in err
    (tmp_path / "last.pt.sha256").unlink()  # a checkpoint without its digest is still read
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(last)


def test_resume_without_a_checkpoint_names_the_missing_file(tmp_path, capsys):
    cfg = load_config("3d", TINY + [f"data.data_dir={data_dir()}"])
    from harness.config import save_resolved

    save_resolved(cfg, tmp_path, ["test"])
    assert train_main(["--resume", str(tmp_path), "--no-eval"]) == 2
    assert str(tmp_path / "last.pt") in capsys.readouterr().err
