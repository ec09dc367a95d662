"""The trainer under DDP: a contrastive task on 2 gloo processes (torchrun), the jepa 1.4 recipe.

InfoNCE over negatives gathered from both ranks with the gradient-correct
``torch.distributed.nn.functional.all_gather``, a learnable temperature (τ = 0.07 at the start,
its log inside the DDP-wrapped module, no weight decay, clamped in ``after_step``), 2 micro-batches
per step and a cosine schedule with warm-up. It proves: the loss falls; the temperature is the same
on both ranks after every step; the 2-rank run takes the steps of a 1-process run on the same
global batches (the gather's gradient is right); ``epoch_summary`` counts are summed over ranks;
validation runs on the bare module (the model has a buffer, which a DDP forward would broadcast);
and a run killed with SIGKILL mid-epoch resumes to the same weights, bit for bit.

Run by the tests below as ``torchrun --nproc_per_node=2 -m tests.harness.test_trainer_ddp RUN_DIR
... [--kill-at N] [--resume]`` (one start-up for several runs: torchrun takes seconds to start).
"""

import argparse
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.distributed.nn.functional import all_gather

from harness.trainer import (
    KILL_AT_STEP_ENV,
    DistContext,
    Trainer,
    TrainerConfig,
    cleanup_distributed,
    init_distributed,
    load_checkpoint,
)

TORCHRUN = Path(sys.executable).with_name("torchrun")
PAIRS, DIM, GLOBAL_BATCH = 64, 8, 8  # training pairs, input width, pairs per micro-batch (all ranks)
TAU0, TAU_MIN, TAU_MAX = 0.07, 0.05, 1.0  # initial temperature and its clamp


class PairEncoder(torch.nn.Module):
    """Two linear towers and a temperature τ = exp(log_temperature) (CLIP's parameterisation).

    Shapes:
        x, y: [B, DIM] -> q, k: [B, 16] (unit norm), τ: scalar.
    """

    def __init__(self) -> None:
        super().__init__()
        self.query = torch.nn.Linear(DIM, 16)
        self.key = torch.nn.Linear(DIM, 16)
        self.log_temperature = torch.nn.Parameter(torch.tensor(math.log(TAU0)))
        self.register_buffer("forward_calls", torch.zeros((), dtype=torch.long))

    def forward(self, x, y):
        if self.training:
            self.forward_calls += 1
        q = F.normalize(self.query(x), dim=-1)  # (B, 16)
        k = F.normalize(self.key(y), dim=-1)  # (B, 16)
        return q, k, self.log_temperature.exp()


class Contrastive:
    """InfoNCE on pairs (x, y = x W + noise); rank r takes slice r of every global micro-batch."""

    def __init__(self, record_dir: Path | None = None) -> None:
        torch.manual_seed(0)
        self.model = self.encoder = PairEncoder()  # encoder: the bare module, even under DDP
        g = torch.Generator().manual_seed(0)
        w = torch.randn(DIM, DIM, generator=g)
        self.x = torch.randn(PAIRS + 32, DIM, generator=g)  # (N, DIM); the last 32 validate
        self.y = self.x @ w + 0.3 * torch.randn(PAIRS + 32, DIM, generator=g)
        self.ctx, self.record_dir, self.pairs, self.trainer = DistContext(), record_dir, 0, None

    def set_dist(self, ctx: DistContext) -> None:
        self.ctx = ctx

    def num_train_batches(self) -> int:
        return PAIRS // GLOBAL_BATCH

    def train_batches(self, epoch: int):
        self.pairs = 0
        perm = torch.randperm(PAIRS, generator=torch.Generator().manual_seed(epoch))  # all ranks
        per_rank = GLOBAL_BATCH // self.ctx.world_size
        for start in range(0, PAIRS, GLOBAL_BATCH):
            yield perm[start + self.ctx.rank * per_rank : start + (self.ctx.rank + 1) * per_rank]

    def training_step(self, idx: torch.Tensor, epoch: int):
        q, k, tau = self.model(self.x[idx], self.y[idx])  # (B, 16), (B, 16), ()
        if self.ctx.world_size > 1:
            k = torch.cat(all_gather(k))  # (world * B, 16)
        logits = q @ k.T / tau  # (B, world * B)
        labels = self.ctx.rank * len(idx) + torch.arange(len(idx))
        self.pairs += len(idx)
        return F.cross_entropy(logits, labels), {"temperature": tau.item()}

    def after_step(self, step: int) -> None:
        assert self.model is self.encoder  # the bare module, not the DDP wrapper
        with torch.no_grad():
            self.model.log_temperature.clamp_(math.log(TAU_MIN), math.log(TAU_MAX))
        if self.record_dir is not None:
            lr = self.trainer.optimizer.param_groups[0]["lr"]
            with open(self.record_dir / f"rank{self.ctx.rank}.txt", "a") as f:
                f.write(f"{step} {lr!r} {self.encoder.log_temperature.item().hex()}\n")

    def epoch_summary(self, epoch: int) -> dict[str, float]:
        return {"pairs": float(self.pairs)}

    def derive_summary(self, totals: dict[str, float]) -> dict[str, float]:
        return {"pairs_per_rank": totals["pairs"] / self.ctx.world_size}

    def validate(self, epoch: int) -> dict[str, float]:
        # the trainer's guarantees: the bare module, eval mode, no gradients
        assert self.model is self.encoder and not self.model.training
        assert not torch.is_grad_enabled()
        q, k, tau = self.model(self.x[PAIRS:], self.y[PAIRS:])  # (32, 16), (32, 16), ()
        logits = q @ k.T / tau  # (32, 32)
        labels = torch.arange(len(q))
        return {"loss": F.cross_entropy(logits, labels).item(),
                "top1": (logits.argmax(1) == labels).float().mean().item()}

    def state_extra(self) -> dict:
        return {}


def config() -> TrainerConfig:
    return TrainerConfig(epochs=3, lr=0.05, monitor="loss", mode="min", weight_decay=0.1,
                         grad_accum_steps=2, schedule="cosine", warmup_steps=2, min_lr=0.005)


def main(argv: list[str]) -> None:
    """Train into each RUN_DIR in turn (2 ranks under torchrun, or 1 process).

    Every rank appends ``step lr log_temperature`` after every step to ``RUN_DIR.records/rank<r>.txt``.
    ``--kill-at N`` sends the last run SIGKILL after step N; ``--resume`` resumes every run.
    """
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--kill-at", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    ctx = init_distributed("cpu")
    try:
        for i, run_dir in enumerate(args.run_dirs):
            if args.kill_at and i == len(args.run_dirs) - 1:
                os.environ[KILL_AT_STEP_ENV] = str(args.kill_at)
            task = Contrastive(records_of(run_dir))
            records_of(run_dir).mkdir(exist_ok=True)
            task.trainer = Trainer(task, config(), run_dir, {"test": "contrastive"}, dist_ctx=ctx)
            task.trainer.fit(resume=args.resume)
    finally:
        cleanup_distributed()


def records_of(run_dir: Path) -> Path:
    return run_dir.with_name(run_dir.name + ".records")


def torchrun(*args: str) -> subprocess.CompletedProcess:
    cmd = [str(TORCHRUN) if TORCHRUN.exists() else shutil.which("torchrun"), "--standalone",
           "--nproc_per_node=2", "-m", "tests.harness.test_trainer_ddp", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2],
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def records(run_dir: Path, rank: int) -> list[list[str]]:
    """``[step, lr, log_temperature as float.hex()]`` per step of ``rank``, in the order run."""
    text = (records_of(run_dir) / f"rank{rank}.txt").read_text()
    return [line.split() for line in text.splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """An uninterrupted 2-rank run, then one killed after step 6 (mid epoch 2): their run dirs."""
    root = tmp_path_factory.mktemp("ddp")
    straight, killed = root / "straight", root / "killed"
    out = torchrun(str(straight), str(killed), "--kill-at", "6")
    assert out.returncode != 0 and load_checkpoint(straight / "last.pt")["step"] == 12, \
        out.stderr[-3000:]
    return straight, killed


@pytest.mark.slow
def test_contrastive_training_on_two_ranks(runs, tmp_path):
    run_dir = runs[0]
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "best.pt", "best.pt.sha256", "last.pt", "last.pt.sha256", "metrics.csv", "tb"]
    ckpt = load_checkpoint(run_dir / "last.pt")
    rows = ckpt["rows"]
    assert ckpt["step"] == 12  # 3 epochs x 8 micro-batches / 2 per step
    assert rows[-1]["train/loss"] < 0.8 * rows[0]["train/loss"]
    assert rows[-1]["val/loss"] < rows[0]["val/loss"]
    for row in rows:  # counts summed over ranks (each rank saw 32 pairs), rates derived from them
        assert (row["train/pairs"], row["train/pairs_per_rank"]) == (64.0, 32.0)
        assert row["samples"] == 64 and row["samples/s"] > 0
    assert ckpt["model"]["forward_calls"] == 24  # the buffer counted training forwards only
    # the temperature (and the LR) after every step, bit for bit the same on both ranks
    r0, r1 = records(run_dir, 0), records(run_dir, 1)
    assert [int(r[0]) for r in r0] == list(range(1, 13)) and r0 == r1
    taus = [math.exp(float.fromhex(r[2])) for r in r0]
    assert all(TAU_MIN - 1e-9 <= t <= TAU_MAX for t in taus)
    lrs = [float(r[1]) for r in r0]
    assert lrs[:2] == [0.025, 0.05] and lrs[-1] < lrs[2]  # warm-up, then cosine decay
    # the same global batches in one process: the same steps (the gathered negatives' gradient)
    main([str(tmp_path / "run")])
    single = load_checkpoint(tmp_path / "run" / "last.pt")
    for name, tensor in ckpt["model"].items():
        torch.testing.assert_close(tensor, single["model"][name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.slow
def test_killed_two_rank_run_resumes_bit_exactly(runs):
    straight, run_dir = runs
    # 4 steps per epoch: both ranks sent themselves SIGKILL after step 6 (mid epoch 2)
    assert load_checkpoint(run_dir / "last.pt")["step"] == 4
    out = torchrun(str(run_dir), "--resume")
    assert out.returncode == 0, out.stderr[-3000:]
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(run_dir / "last.pt")
    assert a["step"] == b["step"] == 12
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), f"{name} differs after resume"
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert [r["train/loss"] for r in a["rows"]] == [r["train/loss"] for r in b["rows"]]
    # steps 5-6 ran twice (before the kill and after the resume), with the same LR and τ
    for rank in (0, 1):
        after = {int(r[0]): r for r in records(run_dir, rank)}
        assert [after[s] for s in range(1, 13)] == records(straight, rank)
        assert records(run_dir, rank)[4:6] == records(run_dir, rank)[6:8]


if __name__ == "__main__":
    main(sys.argv[1:])
