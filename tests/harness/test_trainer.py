"""The generic trainer on a toy task: exact resume (scheduler, patience, task generator), NaN stop."""

import math

import numpy as np
import pytest
import torch

from harness.trainer import DistContext, Trainer, TrainerConfig, load_checkpoint


class Toy:
    """Noisy linear regression with dropout: uses the torch, NumPy-global and its own generators."""

    def __init__(self, val_losses=None, nan_at=None):
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.2),
                                         torch.nn.Linear(8, 1))
        self.rng = np.random.default_rng(0)
        self.val_losses, self.nan_at, self.calls = val_losses, nan_at, 0

    def train_batches(self, epoch):
        for _ in range(3):
            x = torch.from_numpy(self.rng.normal(size=(5, 4))).float()  # (B, 4)
            yield x, x.sum(1, keepdim=True) + float(np.random.normal())  # (B, 1)

    def training_step(self, batch, epoch):
        self.calls += 1
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.model(x), y)
        if self.calls == self.nan_at:
            loss = loss * float("nan")
        return loss, {}

    def validate(self, epoch):
        if self.val_losses is not None:
            return {"loss": self.val_losses[epoch]}
        return {"loss": float(sum(p.detach().abs().sum() for p in self.model.parameters()))}

    def state_extra(self):
        return {}

    def training_state(self):
        return {"rng": self.rng.bit_generator.state}

    def load_training_state(self, state):
        self.rng.bit_generator.state = state["rng"]


def trainer(task, run_dir, epochs, **kw):
    cfg = TrainerConfig(epochs=epochs, lr=1e-2, monitor="loss", mode="min", seed=3, **kw)
    sched = lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)  # noqa: E731
    return Trainer(task, cfg, run_dir, {"toy": True}, dist_ctx=DistContext(), scheduler=sched)


def test_stopped_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    straight = trainer(Toy(), tmp_path / "a", 4)
    straight.fit()
    trainer(Toy(), tmp_path / "b", 2).fit()  # "killed" after epoch 2
    resumed = trainer(Toy(), tmp_path / "b", 4)
    summary = resumed.fit(resume=True)
    assert summary.epochs_run == 4
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert a["step"] == b["step"] == 12
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 12
    assert resumed.optimizer.param_groups[0]["lr"] == straight.optimizer.param_groups[0]["lr"]
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert [r["train/loss"] for r in a["rows"]] == [r["train/loss"] for r in b["rows"]]


def test_patience_counts_across_a_resume(tmp_path):
    val = [1.0, 2.0, 2.0, 2.0, 2.0]  # best at epoch 1, never better: patience 2 stops after 3
    assert trainer(Toy(val), tmp_path / "a", 5, patience=2).fit().epochs_run == 3
    trainer(Toy(val), tmp_path / "b", 2, patience=2).fit()
    summary = trainer(Toy(val), tmp_path / "b", 5, patience=2).fit(resume=True)
    assert summary.epochs_run == 3 and summary.best_epoch == 0


def test_non_finite_loss_stops_the_run_naming_epoch_and_step(tmp_path):
    with pytest.raises(RuntimeError, match=r"non-finite loss nan at epoch 2, step 5 \(rank 0\)"):
        trainer(Toy(nan_at=5), tmp_path, 3).fit()
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 3  # epoch 1's checkpoint survives


def test_several_ranks_need_a_task_that_shards_its_data(tmp_path):
    with pytest.raises(TypeError, match="set_rank"):
        Trainer(Toy(), TrainerConfig(epochs=1, lr=1e-2), tmp_path, {},
                dist_ctx=DistContext(rank=0, world_size=2))
    assert math.isfinite(trainer(Toy(), tmp_path, 1).fit().best_metric)


def test_a_metric_below_its_floor_stops_the_run_and_keeps_the_best_epoch(tmp_path, caplog):
    val = [0.70, 0.72, 0.66, 0.71, 0.73]  # an accuracy: epoch 3 falls below the floor 0.68

    def run(run_dir, **kw):
        cfg = TrainerConfig(epochs=5, lr=1e-2, monitor="loss", mode="max", seed=3, **kw)
        return Trainer(Toy(val), cfg, run_dir, {}, dist_ctx=DistContext()).fit()

    summary = run(tmp_path / "a", floor_metric="loss", floor=0.68)
    assert summary.epochs_run == 3 and summary.best_epoch == 1 and summary.best_metric == 0.72
    assert "fell below its floor 0.6800" in caplog.text
    assert run(tmp_path / "b").epochs_run == 5  # no floor: every epoch
