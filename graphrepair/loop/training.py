"""Trajectory replay with scheduled sampling and real test feedback: the graphrepair training task.

One training batch is a list of freshly corrupted programs. For ``t = 0 .. T-1``
(``train.trajectory_iterations``)::

    feedback(t)   none at t = 0 (Exp 3c rule) else the real outcomes + coverage of the current program
    logits(t)     = model(graph(t), feedback(t))                    # (L, V), with gradients
    loss         += CE(logits(t), reference leaves) weighted 1 + test_weight * signal
    next state    = model's own prediction with probability p (scheduled sampling), else a
                    ground-truth step that fixes half of the currently wrong leaves
    run the tests of the new program in the sandbox                  # real execution, cached

``p`` rises linearly from ``scheduled_sampling_warmup`` (first epoch) to ``scheduled_sampling_max``
(last epoch). The loss is averaged over the T iterations. The logits are the refiner's
(:meth:`graphrepair.loop.refine.Refiner.logits`: constrained as at evaluation; a reference the
constraint rules out is left out of the loss); under the ``mask_predict`` policy each state is
re-masked before iterations t >= 1 as at evaluation, and ``train.loss_leaves: corrupted`` limits
the loss to the corrupted (editable) leaves. With ``train.unk_replacement`` > 0 each
uncorrupted leaf of a trajectory is read as ``UNK`` with that probability, at every iteration
(:func:`graphrepair.data.corruption.unk_replacement`; the leaf's text and target are unchanged, and
the update rule never changes a leaf read as ``UNK``, as for an out-of-vocabulary leaf at evaluation). Validation is the one-shot
``repair_accuracy`` on fixed corrupted validation programs (no test execution needed at iteration 0)
or, with ``train.select_on: final``, the repair_accuracy after the evaluation's iterations.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from graphrepair.config import ExperimentConfig
from graphrepair.data.corruption import corrupt, corruption_rng, unk_replacement
from graphrepair.data.dataset import PreparedData, draw_training_problems, fixed_states
from graphrepair.loop.curriculum import sample_rate
from graphrepair.loop.refine import (
    ProgramState,
    Refiner,
    refine,
    split_predictions,
    state_metrics,
)
from harness.distributed import DistContext
from harness.sandbox import OUTCOMES

__all__ = ["RefinementTask"]

PASSED = OUTCOMES.index("passed")


class RefinementTask:
    """The :class:`harness.trainer.Task` of graphrepair experiments.

    Args:
        cfg: the experiment configuration.
        data: prepared programs and vocabulary.
        model: the refiner model.
        refiner: the :class:`Refiner` wrapping ``model`` (sandbox settings, test cache).
    """

    def __init__(self, cfg: ExperimentConfig, data: PreparedData, model: torch.nn.Module,
                 refiner: Refiner) -> None:
        self.cfg, self.data, self.model, self.refiner = cfg, data, model, refiner
        self.rank, self.world_size = 0, 1
        self.rng = np.random.default_rng(cfg.train.seed)  # scheduled-sampling / ground-truth draws
        self._epoch_start = (0, 0)  # refiner (cache_hits, test_runs) when the epoch began
        # One thread runs the sandbox for one half-batch at a time (see training_step).
        self._tests = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trajectory-tests")
        if not data.splits["train"]:
            raise ValueError("the training split is empty: check data.dataset and data.split_fractions")
        self.val_states = fixed_states(
            data.splits["val"], cfg.corruption.rates, cfg.data.val_samples, cfg.train.seed + 1,
            data.vocab,
        )

    def epoch_summary(self, epoch: int) -> dict[str, float]:
        """This rank's counts of the epoch: programs executed and program runs the cache served.

        The trainer sums them over ranks and passes the totals to :meth:`derive_summary`.
        """
        hits = self.refiner.cache_hits - self._epoch_start[0]
        runs = self.refiner.test_runs - self._epoch_start[1]
        return {"program_runs": float(runs), "cache_hits": float(hits)}

    @staticmethod
    def derive_summary(totals: dict[str, float]) -> dict[str, float]:
        """``cache_hit_rate``: the share of program runs the cache served, from the summed counts."""
        hits, runs = totals["cache_hits"], totals["program_runs"]
        return {"cache_hit_rate": hits / (hits + runs) if hits + runs else 0.0}

    def state_extra(self) -> dict:
        """The vocabulary travels with every checkpoint."""
        return {"vocab": self.data.vocab.to_dict()}

    def set_dist(self, ctx: DistContext) -> None:
        """Train on rank ``ctx.rank``'s share of every epoch from now on (see :meth:`train_batches`).

        The scheduled-sampling generator is reseeded per rank (rank 0 keeps the single-process
        stream, seeded by ``train.seed``; rank ``r`` > 0 uses ``[train.seed, r]``).

        Raises:
            ValueError: ``rank`` is not in ``[0, world_size)``, or an epoch's ``data.train_samples``
                cannot give every rank at least one sample.
        """
        rank, world_size = ctx.rank, ctx.world_size
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        if self.cfg.data.train_samples < world_size:
            raise ValueError(f"data.train_samples={self.cfg.data.train_samples} is fewer than the "
                             f"{world_size} ranks; raise it or start fewer processes")
        self.rank, self.world_size = rank, world_size
        seed = self.cfg.train.seed
        self.rng = np.random.default_rng(seed if rank == 0 else [seed, rank])

    def training_state(self) -> dict:
        """The scheduled-sampling generator's state (checkpointed per rank for an exact resume)."""
        return {"rng": self.rng.bit_generator.state}

    def load_training_state(self, state: dict) -> None:
        """Restore what :meth:`training_state` returned."""
        self.rng.bit_generator.state = state["rng"]

    def p_model(self, epoch: int) -> float:
        """Scheduled-sampling probability of following the model's own prediction at ``epoch``."""
        t = self.cfg.train
        frac = epoch / max(t.epochs - 1, 1)
        return t.scheduled_sampling_warmup + frac * (t.scheduled_sampling_max - t.scheduled_sampling_warmup)

    def num_train_batches(self) -> int:
        """Batches per epoch on this rank (what :meth:`train_batches` yields)."""
        per_rank = self.cfg.data.train_samples // self.world_size
        return -(-per_rank // self.cfg.train.batch_size)

    def train_batches(self, epoch: int) -> Iterator[list[ProgramState]]:
        """``train_samples`` programs (see :func:`draw_training_problems`), freshly corrupted, in batches.

        The epoch's samples (problem, corruption rate, corruption draw) come from a generator
        seeded by ``[train.seed, epoch]``, identical on every rank; a sample's mask and its UNK
        replacement (``train.unk_replacement``) come from its own
        :func:`~graphrepair.data.corruption.corruption_rng`. After :meth:`set_dist` this rank
        takes samples ``rank, rank + world_size, ...`` of the first ``world_size * (train_samples //
        world_size)`` (so every rank runs the same number of batches; the last
        ``train_samples % world_size`` samples of the epoch are dropped), in batches of
        ``train.batch_size`` per rank. With one rank: all samples, in order.
        """
        cfg, train = self.cfg, self.data.splits["train"]
        self._epoch_start = (self.refiner.cache_hits, self.refiner.test_runs)
        rng = np.random.default_rng([cfg.train.seed, epoch])
        picks = draw_training_problems(len(train), cfg.data.train_samples, rng)
        samples = []  # (problem index, rate, corruption draw) of the whole epoch, drawn in order
        for i in picks:
            rate = sample_rate(cfg.corruption.rates, epoch, cfg.train.epochs,
                               curriculum=cfg.corruption.curriculum,
                               fraction=cfg.corruption.curriculum_fraction, rng=rng)
            samples.append((int(i), rate, int(rng.integers(1 << 30))))
        per_rank = len(samples) // self.world_size
        mine = samples[self.rank : per_rank * self.world_size : self.world_size]
        for start in range(0, len(mine), cfg.train.batch_size):
            batch = []
            for i, rate, draw in mine[start : start + cfg.train.batch_size]:
                enc = train[i]
                rng = corruption_rng(cfg.train.seed, enc.problem.task_id, rate, draw=draw)
                masked = corrupt(enc.eligible, rate, rng)
                unk = unk_replacement(masked, cfg.train.unk_replacement, rng) \
                    if cfg.train.unk_replacement else None
                batch.append(ProgramState.start(enc, masked, self.data.vocab, unk_input=unk))
            yield batch

    def training_step(self, states: list[ProgramState], epoch: int) -> tuple[torch.Tensor, dict]:
        """Replay one trajectory per state; return the mean loss over iterations.

        With ``train.pipeline`` the batch is replayed as two interleaved halves: while the model
        computes one half's iteration, the sandbox executes the other half's programs (in a
        background thread driving the sandbox workers), so the model waits on tests only when it
        needs their feedback. The loss is the same as for the whole batch at once.
        """
        cfg, refiner = self.cfg, self.refiner
        p_model = self.p_model(epoch)
        runs_before = refiner.test_runs
        iterations = cfg.train.trajectory_iterations
        half = (len(states) + 1) // 2
        groups = [states[:half], states[half:]] if cfg.train.pipeline and len(states) > 1 \
            else [states]
        pending: list[Future | None] = [None] * len(groups)
        total = torch.zeros((), device=refiner.device)
        for t in range(iterations):
            with_feedback = t > 0 or cfg.feedback.feedback_at_iteration0
            loss_sum = torch.zeros((), device=refiner.device)
            n_valid = torch.zeros((), device=refiner.device)
            for g, group in enumerate(groups):
                if t == 0 and with_feedback:
                    refiner.run_tests(group)
                if pending[g] is not None:
                    pending[g].result()  # this half's feedback (re-raises a sandbox error)
                    pending[g] = None
                if t and refiner.policy == "mask_predict":
                    for s in group:  # the evaluation's step: re-mask the least trusted leaves
                        refiner.remask(s, t, iterations)
                batch = refiner.batch(group, with_feedback)
                logits = refiner.logits(group, batch, self.model)  # (L, V), constrained as at evaluation
                target = _reachable(logits, batch.y)  # (L,)
                per_leaf = F.cross_entropy(logits, target, ignore_index=-100,
                                           reduction="none")  # (L,)
                weight = torch.ones_like(per_leaf)
                if cfg.train.test_weight and with_feedback:
                    weight = weight + cfg.train.test_weight * _failing_signal(batch)
                valid = (target != -100).float()
                if cfg.train.loss_leaves == "corrupted":
                    valid = valid * torch.as_tensor(np.concatenate([s.masked for s in group]),
                                                    dtype=valid.dtype, device=valid.device)
                loss_sum = loss_sum + (per_leaf * weight * valid).sum()
                n_valid = n_valid + valid.sum()
                if t == iterations - 1:
                    continue
                # move this half one step forward (no gradients through the choice), then
                # execute its new programs while the model works on the other half
                preds = split_predictions(logits.detach(), [len(s.texts) for s in group])
                for s, (pred, conf) in zip(group, preds):
                    if self.rng.random() < p_model:
                        refiner.apply(s, pred, conf)
                    else:
                        refiner.ground_truth_step(s, self.rng)
                pending[g] = self._tests.submit(refiner.run_tests, group)
            total = total + loss_sum / n_valid.clamp(min=1)
        return total / iterations, {
            "p_model": p_model,
            "test_runs": float(refiner.test_runs - runs_before),
        }

    def validate(self, epoch: int) -> dict[str, float]:
        """Repair/token accuracy on the fixed validation samples, overall and per rate.

        One-shot (no test runs); with ``train.select_on: final`` also ``final_repair_accuracy``
        and ``final_pass_rate`` (overall and ``final_repair_accuracy@<rate>``) after
        ``eval.iterations`` iterations of :func:`~graphrepair.loop.refine.refine` with real tests.
        """
        cfg = self.cfg
        states = [s for _, s in self.val_states]
        fresh = [ProgramState.start(s.enc, s.masked, self.data.vocab) for s in states]
        preds = self.refiner.predict(fresh, with_feedback=cfg.feedback.feedback_at_iteration0)
        for s, (pred, conf) in zip(fresh, preds):
            self.refiner.apply(s, pred, conf)
        out = {k: v for k, v in state_metrics(fresh).items() if k != "pass_rate"}
        out |= self._per_rate(fresh, "repair_accuracy@")
        if cfg.train.select_on == "final":
            final = [ProgramState.start(s.enc, s.masked, self.data.vocab) for s in states]
            refine(self.refiner, final, cfg.eval.iterations,
                   feedback_at_iteration0=cfg.feedback.feedback_at_iteration0)
            metrics = state_metrics(final)
            out["final_repair_accuracy"] = metrics["repair_accuracy"]
            out["final_pass_rate"] = metrics["pass_rate"]
            out |= self._per_rate(final, "final_repair_accuracy@")
        return out

    def _per_rate(self, states: list[ProgramState], prefix: str) -> dict[str, float]:
        """repair_accuracy of the validation states of each corruption rate."""
        out = {}
        for rate in self.cfg.corruption.rates:
            sub = [s for (r, _), s in zip(self.val_states, states) if r == rate]
            out[f"{prefix}{int(round(rate * 100))}"] = state_metrics(sub)["repair_accuracy"]
        return out


def _reachable(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``target`` ``[L]`` with -100 where the constrained ``logits`` ``[L, V]`` rule the reference out.

    A reference the constraint forbids (an identifier out of scope) cannot be predicted; its
    cross-entropy would be infinite, so it is left out of the loss like an out-of-vocabulary one.
    """
    known = target != -100
    ok = torch.isfinite(logits.gather(1, target.clamp(min=0).unsqueeze(1)).squeeze(1))
    return torch.where(known & ~ok, torch.full_like(target, -100), target)


def _failing_signal(batch) -> torch.Tensor:
    """The loss-weighting signal per leaf ``[L]``.

    6-feature batches: the ``test_signal`` the model reads (binary or a spectrum score);
    5-feature batches: 1 when a failing (non-passed) test executed the node.
    """
    if getattr(batch, "test_signal", None) is not None:
        return batch.test_signal[batch.leaf_mask].float()
    failing = batch.test_outcome != PASSED  # (T,)
    test_idx, node_idx = batch.trace_index
    signal = torch.zeros(batch.num_nodes, device=batch.x.device)
    signal[node_idx[failing[test_idx]]] = 1.0
    return signal[batch.leaf_mask]
