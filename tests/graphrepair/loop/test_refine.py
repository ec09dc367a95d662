"""The refinement loop's rules: update policy, ground-truth steps, metrics, iteration saturation."""

import math

import numpy as np
import pytest
import torch

from graphrepair.data.corruption import corrupt, corruption_rng
from graphrepair.features.encoding import EncodedProgram
from graphrepair.graphs.graph import ProgramGraph
from graphrepair.graphs.vocab import Vocabulary
from graphrepair.loop.refine import ProgramState, Refiner, refine, state_metrics

ELIGIBLE = ["identifier", "operator", "keyword", "literal"]


class ConstantModel(torch.nn.Module):
    """Predicts the same token id for every leaf with the given logit margin."""

    def __init__(self, vocab_size: int, token: int, margin: float) -> None:
        super().__init__()
        self.vocab_size, self.token, self.margin = vocab_size, token, margin

    def forward(self, data):
        logits = torch.zeros(int(data.leaf_mask.sum()), self.vocab_size)
        logits[:, self.token] = self.margin
        return logits


@pytest.fixture()
def setup(mbpp):
    p = mbpp["mbpp/17"]
    g = ProgramGraph.from_source(p.source)
    vocab = Vocabulary.build([g])
    enc = EncodedProgram.build(p, g, vocab, ELIGIBLE)
    masked = corrupt(enc.eligible, 0.5, corruption_rng(0, p.task_id, 0.5))
    return vocab, enc, masked


def test_iteration_zero_fills_only_masks_then_threshold_decides(setup):
    vocab, enc, masked = setup
    token = vocab.leaf_id("perimeter")
    state = ProgramState.start(enc, masked, vocab)
    refiner = Refiner(ConstantModel(len(vocab), token, 20.0), vocab, min_confidence=0.99)
    [(pred, conf)] = refiner.predict([state], with_feedback=False)
    refiner.apply(state, pred, conf)
    assert [t for t, m in zip(state.texts, masked) if m] == ["perimeter"] * int(masked.sum())
    assert [t for t, m in zip(state.texts, masked) if not m] == [
        t for t, m in zip(enc.orig_texts, masked) if not m]
    # iteration 1: confident enough -> every leaf becomes "perimeter"
    refiner.apply(state, pred, conf)
    assert set(state.texts) == {"perimeter"} and state.iteration == 2
    # a less confident model changes nothing at iteration >= 1
    state2 = ProgramState.start(enc, masked, vocab)
    timid = Refiner(ConstantModel(len(vocab), token, 1.0), vocab, min_confidence=0.99)
    [(pred, conf)] = timid.predict([state2], with_feedback=False)
    timid.apply(state2, pred, conf)
    before = list(state2.texts)
    timid.apply(state2, pred, conf)
    assert state2.texts == before


def test_ground_truth_step_fixes_half_of_the_wrong_leaves(setup):
    vocab, enc, masked = setup
    state = ProgramState.start(enc, masked, vocab)
    wrong = int((~state.correct()).sum())
    Refiner(ConstantModel(len(vocab), 3, 1.0), vocab).ground_truth_step(state, np.random.default_rng(0))
    assert int((~state.correct()).sum()) == wrong - max(1, wrong // 2)


def test_metrics_on_reference_and_masked_states(setup):
    vocab, enc, masked = setup
    clean = ProgramState.start(enc, np.zeros_like(masked), vocab)
    m = state_metrics([clean])
    assert math.isnan(m["repair_accuracy"]) and m["token_accuracy"] == 1.0 and m["exact_match"] == 1.0
    broken = ProgramState.start(enc, masked, vocab)
    m = state_metrics([broken, clean])
    assert m["repair_accuracy"] == 0.0 and m["exact_match"] == 0.5 and m["pass_rate"] == 0.0


def test_iteration_feature_saturates_at_the_last_trained_iteration(setup):
    vocab, enc, masked = setup
    state = ProgramState.start(enc, masked, vocab)
    state.iteration = 7
    batch = Refiner(ConstantModel(len(vocab), 3, 1.0), vocab, max_iteration=2).batch([state], False)
    assert (batch.x[:, 4] == 2).all()


def test_refine_runs_real_tests_and_freezes_passing_programs(setup):
    vocab, enc, _ = setup
    clean = ProgramState.start(enc, np.zeros(len(enc.orig_texts), bool), vocab)
    refiner = Refiner(ConstantModel(len(vocab), vocab.leaf_id("perimeter"), 20.0), vocab,
                      min_confidence=0.0)
    history = refine(refiner, [clean], iterations=3)
    # the reference passes at iteration 0, so the (destructive) model is never applied again
    assert [h["pass_rate"] for h in history] == [1.0, 1.0, 1.0]
    assert clean.texts == enc.orig_texts and refiner.test_runs == 1


def test_sandbox_workers_default_divides_the_cores_among_torchrun_processes(setup, monkeypatch):
    import os

    from graphrepair.config import load_config

    vocab, _, _ = setup
    cfg = load_config("3d", ["sandbox.workers=0"])
    model = ConstantModel(len(vocab), 3, 1.0)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert Refiner.from_config(model, vocab, cfg).workers == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert Refiner.from_config(model, vocab, cfg).workers == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert Refiner.from_config(model, vocab, cfg).workers == 1
    assert Refiner.from_config(model, vocab, load_config("3d", ["sandbox.workers=3"])).workers == 3


def test_feedback_settings_come_from_the_config(setup):
    from graphrepair.config import load_config

    vocab, _, _ = setup
    model = ConstantModel(len(vocab), 3, 1.0)
    old = Refiner.from_config(model, vocab, load_config("3d"))
    assert (old.load_lines, old.raise_signal) == ("every_test", 0.0)  # the record's rule
    new = Refiner.from_config(model, vocab, load_config("4_plus_failures"))
    assert (new.load_lines, new.raise_signal) == ("no_test", 0.5)
    assert Refiner.from_config(model, vocab, load_config("3d_failures")).load_lines == "no_test"
    with pytest.raises(ValueError, match="raise_signal must be in"):
        Refiner(model, vocab, raise_signal=1.5)


# line 2 raises ZeroDivisionError for f(0); f(5) returns 3, not 4 (an AssertionError in the test)
DIVIDE = "def f(x):\n    y = 10 // x\n    return y + 1\n"
DIVIDE_TESTS = ("assert f(1) == 11", "assert f(2) == 6", "assert f(0) == 1", "assert f(5) == 4")


@pytest.mark.parametrize("load_lines, weight, expected", [
    # F = 2, P = 2. Tarantula: line 1 (def) 0 or, for every test, (2/2) / (2/2 + 2/2) = 1/2;
    # line 2 (2, 2): 1/2; line 3 (1, 2): (1/2) / (1/2 + 1) = 1/3. Raising share: line 2 1/2.
    ("no_test", 0.0, [0, 1 / 2, 1 / 3]),
    ("every_test", 0.0, [1 / 2, 1 / 2, 1 / 3]),
    ("no_test", 0.5, [0, 0.5 * 1 / 2 + 0.5 * 1 / 2, 0.5 * 1 / 3]),
    ("every_test", 1.0, [0, 1 / 2, 0]),
])
def test_raising_lines_mix_into_the_six_feature_signal(load_lines, weight, expected):
    from graphrepair.data.problems import Problem
    from graphrepair.loop.refine import signal_from_result
    from harness.sandbox import run_tests

    g = ProgramGraph.from_source(DIVIDE)
    enc = EncodedProgram.build(Problem("t/1", DIVIDE, DIVIDE_TESTS), g, Vocabulary.build([g]),
                               ELIGIBLE)
    result = run_tests(DIVIDE, DIVIDE_TESTS, timeout_s=5)
    assert [t.outcome for t in result.tests] == ["passed", "passed", "error", "failed"]
    signal = signal_from_result(enc, enc.orig_texts, result, "tarantula", load_lines=load_lines,
                                raise_weight=weight)
    lines = enc.node_lines(enc.orig_texts)
    for line, value in enumerate(expected, start=1):
        assert signal[lines == line] == pytest.approx(value)
