"""The generic trainer on a toy task: exact resume (schedule, accumulation, patience, task generator),
NaN stop, parameter groups, the learning-rate schedule, the task's hooks and throughput."""

import math

import numpy as np
import pytest
import torch

from harness.trainer import (
    DistContext,
    LRSchedule,
    Trainer,
    TrainerConfig,
    learning_rate,
    load_checkpoint,
    param_groups,
)


class Crash(Exception):
    """Raised by ``Toy.after_step`` to stop a run mid-epoch, as a kill would."""


class Toy:
    """Noisy linear regression with dropout: uses the torch, NumPy-global and its own generators."""

    def __init__(self, val_losses=None, nan_at=None, crash_at=None):
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.2),
                                         torch.nn.Linear(8, 1))
        self.rng = np.random.default_rng(0)
        self.val_losses, self.nan_at, self.crash_at, self.calls = val_losses, nan_at, crash_at, 0
        self.lrs: list[float] = []  # learning rate of every optimiser step, from after_step
        self.seen: list[tuple] = []  # (model.training, grad enabled, model) inside validate

    def train_batches(self, epoch):
        for _ in range(3):
            x = torch.from_numpy(self.rng.normal(size=(5, 4))).float()  # (B, 4)
            yield x, x.sum(1, keepdim=True) + float(np.random.normal())  # (B, 1)

    def num_train_batches(self):
        return 3

    def batch_size(self, batch):
        return len(batch[0])

    def training_step(self, batch, epoch):
        self.calls += 1
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.model(x), y)
        if self.calls == self.nan_at:
            loss = loss * float("nan")
        return loss, {"training": float(self.model.training)}

    def after_step(self, step):
        if hasattr(self, "trainer"):
            self.lrs.append(self.trainer.optimizer.param_groups[0]["lr"])
        if step == self.crash_at:
            raise Crash(step)

    def validate(self, epoch):
        self.seen.append((self.model.training, torch.is_grad_enabled(), self.model))
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
    task.trainer = Trainer(task, cfg, run_dir, {"toy": True}, dist_ctx=DistContext())
    return task.trainer


def test_stopped_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    """Cosine schedule with warm-up, 2 micro-batches per step: 3 batches = steps of 2 and 1."""
    kw = dict(schedule="cosine", warmup_steps=3, min_lr=1e-3, grad_accum_steps=2,
              weight_decay=0.1)
    straight = trainer(Toy(), tmp_path / "a", 4, **kw)
    straight.fit()
    crashing = Toy(crash_at=5)  # mid epoch 3: last.pt holds epoch 2 (step 4)
    with pytest.raises(Crash):
        trainer(crashing, tmp_path / "b", 4, **kw).fit()
    assert load_checkpoint(tmp_path / "b" / "last.pt")["step"] == 4
    resumed_task = Toy()
    summary = trainer(resumed_task, tmp_path / "b", 4, **kw).fit(resume=True)
    assert summary.epochs_run == 4
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert a["step"] == b["step"] == 8
    assert a["lr_schedule"] == b["lr_schedule"] == {
        "schedule": "cosine", "lr": 1e-2, "min_lr": 1e-3, "warmup_steps": 3, "total_steps": 8}
    assert crashing.lrs[:4] + resumed_task.lrs == straight.task.lrs  # the same LR sequence
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert [r["train/loss"] for r in a["rows"]] == [r["train/loss"] for r in b["rows"]]


def test_patience_counts_across_a_resume(tmp_path, caplog):
    val = [1.0, 2.0, 2.0, 2.0, 2.0]  # best at epoch 1, never better: patience 2 stops after 3
    assert trainer(Toy(val), tmp_path / "a", 5, patience=2).fit().epochs_run == 3
    trainer(Toy(val), tmp_path / "b", 2, patience=2).fit()
    summary = trainer(Toy(val), tmp_path / "b", 5, patience=2).fit(resume=True)
    assert summary.epochs_run == 3 and summary.best_epoch == 0
    assert "not the same run" not in caplog.text  # more epochs: the constant schedule is unchanged


def test_non_finite_loss_stops_the_run_naming_epoch_and_step(tmp_path):
    with pytest.raises(RuntimeError, match=r"non-finite loss nan at epoch 2, step 5 \(rank 0\); "
                                           r"lower the learning rate"):
        trainer(Toy(nan_at=5), tmp_path / "a", 3).fit()
    assert load_checkpoint(tmp_path / "a" / "last.pt")["step"] == 3  # epoch 1's checkpoint survives
    # with accumulation the step counts optimiser steps: call 5 = epoch 2's 2nd micro-batch
    with pytest.raises(RuntimeError, match=r"epoch 2, step 3, micro-batch 2/2 \(rank 0\)"):
        trainer(Toy(nan_at=5), tmp_path / "b", 3, grad_accum_steps=2).fit()


def test_several_ranks_need_a_task_that_shards_its_data(tmp_path):
    cfg = TrainerConfig(epochs=1, lr=1e-2, monitor="loss", mode="min")
    with pytest.raises(TypeError, match=r"set_dist\(ctx\)"):
        Trainer(Toy(), cfg, tmp_path, {}, dist_ctx=DistContext(rank=0, world_size=2))
    assert math.isfinite(trainer(Toy(), tmp_path, 1).fit().best_metric)


def test_monitor_and_mode_are_required_and_checked(tmp_path):
    with pytest.raises(TypeError, match="monitor"):
        TrainerConfig(epochs=1, lr=1e-2)
    with pytest.raises(ValueError, match="mode must be 'max' or 'min', got 'up'"):
        TrainerConfig(epochs=1, lr=1e-2, monitor="loss", mode="up")
    with pytest.raises(ValueError, match="schedule must be 'constant' or 'cosine'"):
        TrainerConfig(epochs=1, lr=1e-2, monitor="loss", mode="min", schedule="linear")
    assert TrainerConfig(epochs=1, lr=1e-2, monitor="loss", mode="min").static_graph is False
    cfg = TrainerConfig(epochs=1, lr=1e-2, monitor="accuracy", mode="max")
    with pytest.raises(ValueError, match=r"has no \['accuracy'\].*it returned \['loss'\]"):
        Trainer(Toy(), cfg, tmp_path, {}, dist_ctx=DistContext()).fit()


def test_a_metric_below_its_floor_stops_the_run_and_keeps_the_best_epoch(tmp_path, caplog):
    val = [0.70, 0.72, 0.66, 0.71, 0.73]  # an accuracy: epoch 3 falls below the floor 0.68

    def run(run_dir, **kw):
        cfg = TrainerConfig(epochs=5, lr=1e-2, monitor="loss", mode="max", seed=3, **kw)
        return Trainer(Toy(val), cfg, run_dir, {}, dist_ctx=DistContext()).fit()

    summary = run(tmp_path / "a", floor_metric="loss", floor=0.68)
    assert summary.epochs_run == 3 and summary.best_epoch == 1 and summary.best_metric == 0.72
    assert "fell below its floor 0.6800" in caplog.text
    assert run(tmp_path / "b").epochs_run == 5  # no floor: every epoch


class Tagged(torch.nn.Module):
    """Every kind of parameter: a 2-D weight, a bias, a norm, an embedding it names, a scalar."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.proj = torch.nn.Linear(4, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.log_temperature = torch.nn.Parameter(torch.tensor(math.log(0.07)))
        self.frozen = torch.nn.Parameter(torch.ones(2, 2), requires_grad=False)

    def no_weight_decay(self):
        return {"embed.weight"}


def test_parameter_groups_exclude_1d_parameters_and_the_ones_the_model_names():
    model = Tagged()
    groups = {g["name"]: g for g in param_groups(model, 0.1)}
    names = {id(p): n for n, p in model.named_parameters()}
    assert [names[id(p)] for p in groups["decay"]["params"]] == ["proj.weight"]
    assert sorted(names[id(p)] for p in groups["no_decay"]["params"]) == [
        "embed.weight", "log_temperature", "norm.bias", "norm.weight", "proj.bias"]
    assert groups["decay"]["weight_decay"] == 0.1 and groups["no_decay"]["weight_decay"] == 0.0
    model.no_weight_decay = lambda: {"embed.wieght"}
    with pytest.raises(ValueError, match=r"names \['embed.wieght'\], which are not parameters"):
        param_groups(model, 0.1)
    # without gradients, AdamW's decoupled decay alone moves a decaying weight, not the others
    model = Tagged()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(param_groups(model, 0.5), lr=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) == (name != "proj.weight"), name


def test_learning_rate_warms_up_then_decays_to_its_floor():
    s = LRSchedule("cosine", lr=1.0, min_lr=0.1, warmup_steps=4, total_steps=14)
    lrs = [learning_rate(s, i) for i in range(16)]
    assert lrs[:5] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert lrs[9] == pytest.approx(0.55) and lrs[14] == lrs[15] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(lrs[4:14], lrs[5:15]))  # strictly decreasing after warm-up
    c = LRSchedule("constant", lr=1.0, min_lr=0.0, warmup_steps=2, total_steps=0)
    assert [learning_rate(c, i) for i in range(4)] == [0.5, 1.0, 1.0, 1.0]


def test_the_trainer_applies_the_schedule_at_every_step(tmp_path):
    task = Toy()
    trainer(task, tmp_path, 3, schedule="cosine", warmup_steps=2, min_lr=1e-4).fit()
    s = LRSchedule("cosine", 1e-2, 1e-4, 2, total_steps=9)  # 3 epochs x 3 batches
    assert task.lrs == [learning_rate(s, i) for i in range(9)]
    with pytest.raises(TypeError, match="cosine schedule needs the number of steps"):
        trainer(Fixed([]), tmp_path / "c", 1, schedule="cosine")  # no num_train_batches()


class Fixed:
    """Linear regression on fixed batches, without randomness: accumulation must not change it."""

    def __init__(self, batches):
        torch.manual_seed(0)
        self.model = torch.nn.Linear(3, 1)
        self.batches = batches

    def train_batches(self, epoch):
        return iter(self.batches)

    def training_step(self, batch, epoch):
        return torch.nn.functional.mse_loss(self.model(batch[:, :3]), batch[:, 3:]), {}

    def validate(self, epoch):
        return {"loss": 0.0}

    def state_extra(self):
        return {}


def test_accumulated_micro_batches_give_the_step_of_the_whole_batch(tmp_path):
    data = torch.randn(15, 4, generator=torch.Generator().manual_seed(1))
    whole = Fixed([data[:10], data[10:]])  # steps over 10 and 5 samples
    micro = Fixed([data[:5], data[5:10], data[10:]])  # 2 + 1 micro-batches of 5 (short last step)

    def fit(task, run_dir, accum):
        cfg = TrainerConfig(epochs=2, lr=0.1, monitor="loss", mode="min", grad_clip=0.5,
                            grad_accum_steps=accum, weight_decay=0.1)
        t = Trainer(task, cfg, run_dir, {}, dist_ctx=DistContext())
        t.fit()
        return t

    a, b = fit(whole, tmp_path / "a", 1), fit(micro, tmp_path / "b", 2)
    assert a.step == b.step == 4
    for pa, pb in zip(whole.model.parameters(), micro.model.parameters()):
        torch.testing.assert_close(pa, pb)
    assert b.rows[-1]["samples"] == 15  # len(batch) of a tensor batch: its first dimension


def test_validation_runs_in_eval_mode_without_gradients_and_training_resumes(tmp_path):
    task = Toy()
    t = trainer(task, tmp_path, 2)
    t.fit()
    assert task.seen == [(False, False, task.model)] * 2
    assert t.rows[1]["train/training"] == 1.0  # epoch 2 trained in training mode again
    assert task.model.training


def test_rows_count_samples_and_throughput(tmp_path):
    t = trainer(Toy(), tmp_path, 2)
    t.fit()
    for row in t.rows:
        assert row["samples"] == 15  # 3 batches of 5 (the task's batch_size hook)
        assert row["samples/s"] > 0
        assert row["lr"] == 1e-2
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"samples", "samples/s", "lr"} <= set(header)

    class Opaque(Fixed):
        def train_batches(self, epoch):
            return (iter([b]) for b in self.batches)  # batches without len()

        def training_step(self, batch, epoch):
            return super().training_step(next(batch), epoch)

    with pytest.raises(TypeError, match=r"no len\(\); add a batch_size\(batch\) -> int hook"):
        trainer(Opaque([torch.zeros(2, 4)]), tmp_path / "o", 1).fit()


def test_epoch_summary_counts_are_logged_with_derived_rates(tmp_path):
    class Counting(Toy):
        def epoch_summary(self, epoch):
            return {"hits": 3.0, "misses": 1.0}

        def derive_summary(self, totals):
            return {"hit_rate": totals["hits"] / (totals["hits"] + totals["misses"])}

    t = trainer(Counting(), tmp_path, 1)
    t.fit()
    row = t.rows[0]
    assert (row["train/hits"], row["train/misses"], row["train/hit_rate"]) == (3.0, 1.0, 0.75)
