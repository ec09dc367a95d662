"""Losses (jepa.losses): InfoNCE against a hand-written cross-entropy, its masks, hard negatives and
temperature; the token SmoothL1; and InfoNCE on 2 gloo ranks against one process.

The 2-rank part starts 2 processes (``torch.multiprocessing`` with ``spawn``, gloo, a file
rendezvous under ``tmp_path``): every rank computes InfoNCE on its half of a fixed global batch
inside DDP, takes an SGD step on the temperature and clamps it, and saves what it saw; the test
compares that with one process. ``spawn``, not ``fork``: a child forked from the pytest process
inherits locks held by its other threads (OpenMP, gloo and TensorBoard threads of earlier tests)
and waited on one of them forever in 2 of about 7 full runs of the suite on the 2-core machine.
"""

import math
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from harness.optim import param_groups
from jepa.losses import InfoNCE, gather_with_grad, smooth_l1, token_smooth_l1

D, B = 6, 4  # width, anchors per rank (2 ranks)
KEYS = [0, 1, 1, 3, 4, 0, 5, 3]  # identical bodies: 1~2 (rank 0), 0~5 and 3~7 (across ranks)
LR, TAU_MIN, TAU_MAX = 5.0, 0.05, 0.09  # an SGD step large enough that the clamp acts


def reference(pred, targets, keys, rows, tau, hard=None, hard_mask=None):
    """InfoNCE written out per anchor: mean over ``rows`` of ``-log softmax`` over its candidates.

    Anchor ``a`` (a global row) is scored against every target ``j`` with ``j == a`` or
    ``keys[j] != keys[a]``, then its own hard negatives (where ``hard_mask``), cosine / ``tau``.
    """
    losses = []
    for i, a in enumerate(rows):
        p = pred[i] / pred[i].norm()
        cand = [targets[j] for j in range(len(targets)) if j == a or keys[j] != keys[a]]
        pos = [j for j in range(len(targets)) if j == a or keys[j] != keys[a]].index(a)
        if hard is not None:
            cand += [hard[i, h] for h in range(hard.shape[1]) if hard_mask is None or hard_mask[i, h]]
        logits = torch.stack([p @ c / c.norm() for c in cand]) / tau
        losses.append(-(logits[pos] - torch.logsumexp(logits, 0)))
    return torch.stack(losses).mean()


def batch(seed=0):
    """A global batch of 8: predictions, targets (identical bodies share one target), keys, hard
    negatives ``[8, 3, D]`` with mask ``[8, 3]``."""
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(8, D, generator=g, dtype=torch.float64)
    target = torch.randn(8, D, generator=g, dtype=torch.float64)
    target[2], target[5], target[7] = target[1], target[0], target[3]
    hard = torch.randn(8, 3, D, generator=g, dtype=torch.float64)
    hard_mask = torch.rand(8, 3, generator=g) < 0.7
    return pred, target, torch.tensor(KEYS), hard, hard_mask


def test_infonce_equals_hand_computed_cross_entropy():
    pred = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 1.0]])
    target = torch.tensor([[3.0, 1.0, 0.0], [0.0, 1.0, -1.0], [1.0, 0.0, 1.0]])
    loss, stats = InfoNCE()(pred, target, torch.tensor([7, 8, 9]))
    # by hand: cosines of unit rows, / 0.07, cross-entropy with the diagonal as the labels
    p = pred / pred.norm(dim=1, keepdim=True)
    t = target / target.norm(dim=1, keepdim=True)
    logits = (p @ t.T) / 0.07
    expected = -sum(logits[i, i] - torch.logsumexp(logits[i], 0) for i in range(3)) / 3
    torch.testing.assert_close(loss, expected)
    assert math.isclose(stats["temperature"], 0.07, rel_tol=1e-6)
    assert stats["negatives"] == 2.0
    assert stats["accuracy"] == pytest.approx((logits.argmax(1) == torch.arange(3)).float().mean())


def test_identical_bodies_are_never_negatives():
    pred, target, keys, _, _ = batch()
    pred, target = pred.float(), target.float()
    crit = InfoNCE()
    loss, stats = crit(pred, target, keys)
    torch.testing.assert_close(loss, reference(pred, target, keys, range(8), 0.07).float())
    # the same as removing the column by hand: anchor 1 loses column 2, anchor 2 column 1, ...
    logits = F.normalize(pred, dim=1) @ F.normalize(target, dim=1).T / 0.07
    dropped = {0: [5], 1: [2], 2: [1], 3: [7], 5: [0], 7: [3]}
    per_anchor = []
    for i in range(8):
        keep = [j for j in range(8) if j not in dropped.get(i, [])]
        row = logits[i, keep]
        per_anchor.append(torch.logsumexp(row, 0) - logits[i, i])
    torch.testing.assert_close(loss, torch.stack(per_anchor).mean())
    assert stats["negatives"] == (8 * 7 - 6) / 8
    distinct, _ = crit(pred, target, torch.arange(8))
    assert distinct > loss  # the identical targets were the hardest "negatives"


def test_hard_negatives_add_columns():
    pred, target, keys, hard, hard_mask = (x.float() if x.is_floating_point() else x
                                           for x in batch())
    crit = InfoNCE()
    base, base_stats = crit(pred, target, keys)
    loss, stats = crit(pred, target, keys, hard, hard_mask)
    torch.testing.assert_close(
        loss, reference(pred, target, keys, range(8), 0.07, hard, hard_mask).float())
    assert loss > base
    assert stats["negatives"] == base_stats["negatives"] + hard_mask.sum().item() / 8
    assert stats["accuracy"] == base_stats["accuracy"]  # in-batch candidates only
    every, _ = crit(pred, target, keys, hard)  # no mask: all 3 columns count
    torch.testing.assert_close(every, reference(pred, target, keys, range(8), 0.07, hard).float())
    none, _ = crit(pred, target, keys, hard, torch.zeros_like(hard_mask))
    torch.testing.assert_close(none, base)
    with pytest.raises(ValueError, match=r"hard_negatives must be \[8, H, 6\]"):
        crit(pred, target, keys, hard[:, :, :4])
    with pytest.raises(ValueError, match="body_keys must be an int64 tensor of shape"):
        crit(pred, target, keys.float())


def test_temperature_gradient_clamp_and_no_weight_decay():
    crit = InfoNCE()
    assert repr(crit) == "InfoNCE(temperature=0.07, min_temperature=0.01, max_temperature=1.0)"
    assert crit.no_weight_decay() == {"log_temperature"}
    groups = {g["name"]: g["params"] for g in param_groups(crit, 0.1)}
    assert list(groups) == ["no_decay"] and groups["no_decay"][0] is crit.log_temperature
    pred, target, keys, _, _ = batch()
    loss, _ = crit(pred.float(), target.float(), keys)
    loss.backward()
    assert crit.log_temperature.grad is not None and crit.log_temperature.grad != 0
    with torch.no_grad():
        crit.log_temperature.fill_(math.log(5.0))
    crit.clamp_()
    assert crit.temperature == pytest.approx(1.0)
    with torch.no_grad():
        crit.log_temperature.fill_(math.log(1e-4))
    crit.clamp_()
    assert crit.temperature == pytest.approx(0.01)
    crit.reset_parameters()
    assert crit.temperature == pytest.approx(0.07)
    with pytest.raises(ValueError, match="min_temperature <= temperature"):
        InfoNCE(temperature=2.0)


def test_token_smooth_l1_ignores_padding():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 5, D, generator=g), torch.randn(2, 5, D, generator=g)
    mask = torch.tensor([[True, True, True, False, False], [True, False, False, False, False]])
    loss = token_smooth_l1(pred, target, mask)
    real = torch.cat([pred[0, :3], pred[1, :1]]), torch.cat([target[0, :3], target[1, :1]])
    torch.testing.assert_close(loss, F.smooth_l1_loss(*real))
    garbage = pred.clone()
    garbage[~mask] = 1e3
    torch.testing.assert_close(token_smooth_l1(garbage, target, mask), loss)
    with pytest.raises(ValueError, match="no real body token"):
        token_smooth_l1(pred, target, torch.zeros_like(mask))
    assert smooth_l1(pred[:, 0], target[:, 0]) == F.smooth_l1_loss(pred[:, 0], target[:, 0])
    with pytest.raises(ValueError, match=r"pred and target must both be \[B, D\]"):
        smooth_l1(pred, target)


def test_gather_without_a_process_group_is_the_identity():
    x = torch.randn(3, D)
    assert gather_with_grad(x) is x


# ---------------------------------------------------------------- 2 ranks (spawned, gloo)

def _rank_main(rank: int, out_dir: str, init_file: str) -> None:
    """One rank: InfoNCE inside DDP on rows ``rank*B .. rank*B + B``, then an uneven batch."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    out_dir = Path(out_dir)
    try:
        pred, target, keys, hard, hard_mask = batch()
        rows = slice(rank * B, (rank + 1) * B)
        p = pred[rows].clone().requires_grad_()
        t = target[rows].clone().requires_grad_()
        gathered = gather_with_grad(t)
        crit = InfoNCE(temperature=0.07, min_temperature=TAU_MIN, max_temperature=TAU_MAX).double()
        ddp = DistributedDataParallel(crit)  # kept alive: its reducer syncs in backward
        loss, stats = ddp(p, t, keys[rows], hard[rows], hard_mask[rows])
        loss.backward()  # DDP averages the temperature's gradient over the ranks
        torch.optim.SGD(crit.parameters(), lr=LR).step()
        stepped = crit.log_temperature.detach().clone()
        crit.clamp_()
        # uneven: rank 0 holds global rows 0-2, rank 1 rows 3-4
        uneven = slice(0, 3) if rank == 0 else slice(3, 5)
        u_loss, u_stats = InfoNCE().double()(pred[uneven], target[uneven], keys[uneven])
        torch.save({"gathered": gathered.detach(), "loss": loss.detach(), "stats": stats,
                    "pred_grad": p.grad, "target_grad": t.grad,
                    "tau_grad": crit.log_temperature.grad, "stepped": stepped,
                    "clamped": crit.log_temperature.detach().clone(),
                    "uneven_loss": u_loss, "uneven_gathered": gather_with_grad(target[uneven])},
                   out_dir / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """What each of the 2 ranks saved: ``[rank0, rank1]``."""
    out_dir = tmp_path_factory.mktemp("infonce_ddp")
    ctx = mp.start_processes(_rank_main, args=(str(out_dir), str(out_dir / "rendezvous")),
                             nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=1):  # raises with the rank's traceback if one fails
        if time.monotonic() > deadline:
            for proc in ctx.processes:
                proc.kill()
            pytest.fail("the 2 ranks did not finish within 120 s")
    return [torch.load(out_dir / f"rank{r}.pt") for r in (0, 1)]


def test_infonce_on_two_ranks_matches_one_process(two_ranks):
    pred, target, keys, hard, hard_mask = batch()
    # the gathered negatives: both ranks' targets, in rank order
    for saved in two_ranks:
        torch.testing.assert_close(saved["gathered"], target, rtol=0, atol=0)
    # each rank's loss: its anchors against the global batch, as one process computes it
    P, T = pred.clone().requires_grad_(), target.clone().requires_grad_()
    total = 0
    for r, saved in enumerate(two_ranks):
        rows = slice(r * B, (r + 1) * B)
        expected = reference(P[rows], T, keys, range(r * B, (r + 1) * B), 0.07, hard[rows],
                             hard_mask[rows])
        torch.testing.assert_close(saved["loss"], expected.detach())
        assert saved["stats"]["negatives"] == pytest.approx(
            7 - (keys[rows, None] == keys[None, :]).sum(1).sub(1).double().mean().item()
            + hard_mask[rows].sum().item() / B)
        total = total + expected
    # gradients: pred's are local; target's come back through the gather summed over ranks
    total.backward()
    for r, saved in enumerate(two_ranks):
        rows = slice(r * B, (r + 1) * B)
        torch.testing.assert_close(saved["pred_grad"], P.grad[rows])
        torch.testing.assert_close(saved["target_grad"], T.grad[rows])
    # one process on the global batch: the mean loss, and the same temperature step and clamp
    crit = InfoNCE(temperature=0.07, min_temperature=TAU_MIN, max_temperature=TAU_MAX).double()
    loss, _ = crit(pred, target, keys, hard, hard_mask)
    torch.testing.assert_close(loss, (two_ranks[0]["loss"] + two_ranks[1]["loss"]) / 2)
    loss.backward()
    torch.optim.SGD(crit.parameters(), lr=LR).step()
    a, b = two_ranks
    assert torch.equal(a["tau_grad"], b["tau_grad"]) and torch.equal(a["clamped"], b["clamped"])
    torch.testing.assert_close(a["tau_grad"], crit.log_temperature.grad)
    torch.testing.assert_close(a["stepped"], crit.log_temperature.detach())
    crit.clamp_()
    torch.testing.assert_close(a["clamped"], crit.log_temperature.detach())
    assert a["clamped"].item() in (pytest.approx(math.log(TAU_MIN)), pytest.approx(math.log(TAU_MAX)))
    # ranks of different batch sizes (3 and 2): padded for the collective, trimmed after
    for r, rows in enumerate((range(0, 3), range(3, 5))):
        saved = two_ranks[r]
        torch.testing.assert_close(saved["uneven_gathered"], target[:5], rtol=0, atol=0)
        expected = reference(pred[rows.start:rows.stop], target[:5], keys[:5], rows, 0.07)
        torch.testing.assert_close(saved["uneven_loss"], expected)
