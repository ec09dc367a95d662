"""DDP: a 2-process torchrun run on CPU (gloo), per-rank data shards, and its exact resume."""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from graphrepair.config import load_config
from graphrepair.data.dataset import prepare
from graphrepair.loop.refine import Refiner
from graphrepair.loop.training import RefinementTask
from graphrepair.models import build_model
from harness.trainer import KILL_AT_STEP_ENV, DistContext, load_checkpoint
from tests.graphrepair.conftest import data_dir
from tests.graphrepair.test_end_to_end import TINY

TORCHRUN = Path(sys.executable).with_name("torchrun")


def torchrun(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=2 -m graphrepair.train ARGS`` (gloo on this CPU)."""
    cmd = [str(TORCHRUN) if TORCHRUN.exists() else shutil.which("torchrun"), "--standalone",
           "--nproc_per_node=2", "-m", "graphrepair.train", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def sets(settings: list[str]) -> list[str]:
    return ["--data-dir", data_dir(), *[a for s in settings for a in ("--set", s)]]


def test_each_rank_gets_a_disjoint_equal_share_of_the_epoch():
    """The ranks' shards partition the single-process epoch (same samples, same corruptions)."""
    cfg = load_config("3d", TINY + [f"data.data_dir={data_dir()}", "data.train_samples=9",
                                    "train.batch_size=2"])
    data = prepare(cfg)
    model = build_model(cfg, data.vocab)
    task = RefinementTask(cfg, data, model, Refiner.from_config(model, data.vocab, cfg))

    def epoch(rank: int, world: int) -> list[list[tuple]]:
        task.set_dist(DistContext(rank=rank, world_size=world))
        batches = [[(s.enc.problem.task_id, tuple(s.masked)) for s in b] for b in task.train_batches(1)]
        assert len(batches) == task.num_train_batches()  # the progress bar's total
        return batches

    whole = [s for b in epoch(0, 1) for s in b]
    assert len(whole) == 9
    shards = [epoch(r, 2) for r in range(2)]
    assert [len(b) for b in shards[0]] == [len(b) for b in shards[1]] == [2, 2]  # 9 // 2 = 4 each
    flat = [[s for b in shard for s in b] for shard in shards]
    assert flat[0] == whole[0:8:2] and flat[1] == whole[1:8:2]
    task.set_dist(DistContext(rank=1, world_size=2))
    rng1 = task.training_state()["rng"]
    task.set_dist(DistContext(rank=0, world_size=2))
    assert task.training_state()["rng"] != rng1  # per-rank scheduled-sampling streams
    with pytest.raises(ValueError, match="rank must be in"):
        task.set_dist(DistContext(rank=2, world_size=2))


@pytest.mark.slow
def test_two_process_torchrun_run_on_cpu(tmp_path):
    run_dir = tmp_path / "run"
    out = torchrun("--exp", "3d", *sets(TINY + ["train.epochs=2", "sandbox.workers=1"]),
                   "--run-dir", str(run_dir), "--no-eval")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("run directory:") == 1  # rank 0 alone prints
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == ["best.pt", "best.pt.sha256", "config.yaml", "data.json", "last.pt",
                     "last.pt.sha256", "metrics.csv", "run.json", "tb"]
    assert len(list((run_dir / "tb").iterdir())) == 1  # one TensorBoard writer (rank 0)
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[:2] for r in rows[1:]] == [["1", "1"], ["2", "2"]]
    for row in csv.DictReader(rows):
        # one step per rank per epoch: the programs executed over both ranks are the sum of each
        # rank's step count (train/test_runs is the mean over the two ranks' steps), not rank 0's
        assert float(row["train/program_runs"]) == 2 * float(row["train/test_runs"]) > 0
    ckpt = load_checkpoint(run_dir / "last.pt")
    # 8 samples per epoch, batch 4 per rank: one step per epoch on each of 2 ranks (2 alone)
    assert ckpt["step"] == 2 and ckpt["world_size"] == 2 and len(ckpt["ranks"]) == 2
    r0, r1 = (r["rng"]["torch"] for r in ckpt["ranks"])
    assert not torch.equal(r0, r1)  # per-rank seeds


@pytest.mark.slow
def test_killed_two_process_run_resumes_to_the_same_weights(tmp_path):
    settings = TINY + ["train.epochs=2", "data.train_samples=16", "sandbox.workers=1"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert torchrun("--exp", "3d", *sets(settings), "--run-dir", str(straight),
                    "--no-eval").returncode == 0
    # two steps per epoch per rank: both ranks SIGKILL themselves after step 3 (mid epoch 2)
    out = torchrun("--exp", "3d", *sets(settings), "--run-dir", str(killed), "--no-eval",
                   env={KILL_AT_STEP_ENV: "3"})
    assert out.returncode != 0 and load_checkpoint(killed / "last.pt")["step"] == 2
    out = torchrun("--resume", str(killed), "--no-eval")
    assert out.returncode == 0, out.stderr[-3000:]
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(killed / "last.pt")
    assert a["step"] == b["step"] == 4
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), f"{name} differs after resume"
