"""The training task: trajectory replay, pipelined half-batches, per-epoch figures."""

import copy

import numpy as np
import torch

from graphrepair.config import load_config
from graphrepair.data.dataset import prepare
from graphrepair.loop.refine import Refiner
from graphrepair.loop.training import RefinementTask
from graphrepair.models import build_model
from tests.graphrepair.conftest import data_dir

TINY = ["data.train_samples=6", "data.val_samples=2", "train.batch_size=6", "train.epochs=2",
        "train.trajectory_iterations=3", "model.hidden=32", "model.depth=2", "model.gat_heads=2",
        "model.attention_heads=2", "model.dropout=0.0", "sandbox.timeout_s=5"]


def replay(pipeline: bool, state_dict=None):
    """Loss, final leaf texts and program runs of one training step on the same six programs."""
    cfg = load_config("3d", TINY + [f"data.data_dir={data_dir()}", f"train.pipeline={pipeline}"])
    data = prepare(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, data.vocab)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    task = RefinementTask(cfg, data, model, Refiner.from_config(model, data.vocab, cfg))
    states = next(iter(task.train_batches(1)))
    loss, logs = task.training_step(states, 1)
    return loss, [list(s.texts) for s in states], logs, copy.deepcopy(model.state_dict()), task


def test_pipelined_halves_give_the_loss_and_trajectories_of_the_whole_batch():
    loss_a, texts_a, logs_a, weights, _ = replay(pipeline=False)
    loss_b, texts_b, logs_b, _, task = replay(pipeline=True, state_dict=weights)
    assert torch.isfinite(loss_a) and loss_a.requires_grad
    assert torch.allclose(loss_a, loss_b, rtol=1e-4), (loss_a.item(), loss_b.item())
    assert texts_a == texts_b  # the same model/ground-truth choices, the same programs
    assert logs_a["test_runs"] == logs_b["test_runs"] >= 1  # iterations 1 and 2 were executed
    summary = task.epoch_summary(1)  # counts, which the trainer sums over ranks
    assert summary["program_runs"] == logs_b["test_runs"]
    summary.update(task.derive_summary(summary))
    assert 0.0 <= summary["cache_hit_rate"] < 1.0
    loss_b.backward()  # gradients flow through both halves
    grads = [p.grad for p in task.model.parameters() if p.grad is not None]
    assert grads and all(np.isfinite(g.numpy()).all() for g in grads)


def test_a_training_step_with_failure_details_reads_real_failures():
    cfg = load_config("3d_failures", TINY + [f"data.data_dir={data_dir()}"])
    data = prepare(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, data.vocab)
    task = RefinementTask(cfg, data, model, Refiner.from_config(model, data.vocab, cfg))
    states = next(iter(task.train_batches(1)))
    loss, _ = task.training_step(states, 1)
    loss.backward()
    assert torch.isfinite(loss)
    # the corrupted programs failed their tests: their records name exceptions
    assert any((s.feedback.exception > 0).any() for s in states)
    assert model.exception_emb.weight.grad is not None
    assert model.exception_emb.weight.grad.abs().sum() > 0
