"""UNK and the vocabulary: the update rule compares texts and leaves UNK inputs alone, training's UNK
replacement, ``data.vocab_min_freq``, and the in-vocabulary ceiling (issue 20)."""

import math

import numpy as np
import pytest
import torch

from graphrepair.config import load_config
from graphrepair.data.corruption import corrupt, unk_replacement
from graphrepair.data.dataset import prepare
from graphrepair.features.encoding import MASK_TEXT, EncodedProgram
from graphrepair.graphs.graph import ProgramGraph
from graphrepair.graphs.vocab import MASK, UNK, Vocabulary
from graphrepair.loop.refine import ProgramState, Refiner, in_vocab_ceiling, state_metrics
from graphrepair.loop.training import RefinementTask
from graphrepair.models import build_model
from harness.config import ConfigError
from tests.graphrepair.conftest import data_dir

ELIGIBLE = ["identifier", "operator", "keyword", "literal"]
# mbpp/17's leaves: def square_perimeter ( a ) : perimeter = 4 * a return perimeter
OOV_UNCORRUPTED, OOV_REFERENCE = 1, 8  # "square_perimeter" and "4" are left out of the vocabulary


class ConstantModel(torch.nn.Module):
    """Gives every leaf the same confident argmax ``token``."""

    def __init__(self, vocab_size: int, token: int, margin: float = 20.0) -> None:
        super().__init__()
        self.vocab_size, self.token, self.margin = vocab_size, token, margin

    def forward(self, data):
        logits = torch.zeros(int(data.leaf_mask.sum()), self.vocab_size)
        logits[:, self.token] = self.margin
        return logits


class ReferenceModel(torch.nn.Module):
    """Predicts each leaf's reference id, and UNK where the reference is out of vocabulary (a model
    without the output mask of the real ones, so that it can put its argmax on UNK)."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, data):
        target = torch.where(data.y == -100, UNK, data.y)  # (L,)
        logits = torch.zeros(len(target), self.vocab_size)
        logits[torch.arange(len(target)), target] = 20.0
        return logits


@pytest.fixture()
def oov(mbpp):
    """mbpp/17 encoded with a vocabulary that lacks "square_perimeter" and "4"."""
    p = mbpp["mbpp/17"]
    g = ProgramGraph.from_source(p.source)
    full = Vocabulary.build([g])
    vocab = Vocabulary(full.node_types, [t for t in full.leaf_texts if t not in ("square_perimeter", "4")])
    enc = EncodedProgram.build(p, g, vocab, ELIGIBLE)
    assert enc.orig_ids[OOV_UNCORRUPTED] == UNK and enc.orig_ids[OOV_REFERENCE] == UNK
    return vocab, enc


def leaves(n, *idx):
    mask = np.zeros(n, dtype=bool)
    mask[list(idx)] = True
    return mask


def test_an_oov_uncorrupted_leaf_is_never_changed_and_decodes_as_it_was(oov):
    vocab, enc = oov
    n = len(enc.orig_texts)
    state = ProgramState.start(enc, leaves(n, 6, 3), vocab)
    refiner = Refiner(ConstantModel(len(vocab), vocab.leaf_id("a")), vocab, min_confidence=0.5)
    for _ in range(3):  # iteration 0 fills the masks, iterations 1-2 rewrite every leaf it reads
        [(pred, conf)] = refiner.predict([state], with_feedback=False)
        refiner.apply(state, pred, conf)
    # the model confidently "disagrees" with the UNK it reads at leaf 1, and must not act on it
    assert state.texts[OOV_UNCORRUPTED] == "square_perimeter"
    assert state.texts[OOV_REFERENCE] == "4"  # uncorrupted here, out of vocabulary too
    assert set(state.texts) - {"square_perimeter", "4"} == {"a"}  # every other leaf was rewritten
    assert state.source().startswith("a square_perimeter")
    assert state.source() == enc.graph.to_source(state.texts)  # byte-for-byte with the kept text


def test_a_leaf_that_training_reads_as_unk_is_frozen_too(oov):
    vocab, enc = oov
    n = len(enc.orig_texts)
    state = ProgramState.start(enc, leaves(n, 6), vocab, unk_input=leaves(n, 3, 6 + 1))
    refiner = Refiner(ConstantModel(len(vocab), vocab.leaf_id("a")), vocab, min_confidence=0.0)
    ids = refiner.input_ids(state)
    assert ids[3] == UNK and ids[7] == UNK and ids[6] == MASK  # the text of leaf 3/7 is in vocab
    for _ in range(2):
        [(pred, conf)] = refiner.predict([state], with_feedback=False)
        refiner.apply(state, pred, conf)
    assert state.texts[3] == "a" == enc.orig_texts[3] and state.texts[7] == "="  # unchanged
    assert state.texts[9] == "a" != enc.orig_texts[9] and state.texts[6] == "a"


def test_unk_predictions_are_never_applied_and_equal_texts_are_no_change(oov):
    vocab, enc = oov
    n = len(enc.orig_texts)
    masked = leaves(n, 6, OOV_REFERENCE)  # "perimeter" (learnable) and "4" (reference out of vocab)
    state = ProgramState.start(enc, masked, vocab)
    refiner = Refiner(ReferenceModel(len(vocab)), vocab, min_confidence=0.0)
    [(pred, conf)] = refiner.predict([state], with_feedback=False)
    assert pred[OOV_REFERENCE] == UNK and pred[OOV_UNCORRUPTED] == UNK
    assert refiner.changes(state, pred, conf).tolist() == [6]  # the UNK argmax is not written
    refiner.apply(state, pred, conf)
    assert state.texts[6] == "perimeter" and state.texts[OOV_REFERENCE] is None  # still masked
    assert "<unk>" not in state.source() and MASK_TEXT in state.source()
    # iteration 1, threshold 0: every prediction equals the leaf's text or is UNK -> nothing changes
    [(pred, conf)] = refiner.predict([state], with_feedback=False)
    assert refiner.changes(state, pred, conf).size == 0
    before = list(state.texts)
    refiner.apply(state, pred, conf)
    assert state.texts == before and state.iteration == 2
    # the best a vocabulary-only model can do is exactly what it did
    metrics, ceiling = state_metrics([state]), in_vocab_ceiling([state])
    assert metrics["repair_accuracy"] == ceiling["repair_accuracy"] == 0.5
    assert metrics["exact_match"] == ceiling["exact_match"] == 0.0


def test_in_vocab_ceiling_by_hand(oov):
    vocab, enc = oov
    n = len(enc.orig_texts)  # 13 leaves
    states = [ProgramState.start(enc, leaves(n, 6, OOV_REFERENCE), vocab),  # 1 of 2 reachable
              ProgramState.start(enc, leaves(n, 3, 10), vocab),  # 2 of 2
              ProgramState.start(enc, leaves(n), vocab)]  # nothing corrupted
    ceiling = in_vocab_ceiling(states)
    assert ceiling["repair_accuracy"] == pytest.approx(3 / 4)
    assert ceiling["token_accuracy"] == pytest.approx(38 / 39)
    assert ceiling["exact_match"] == pytest.approx(2 / 3)
    assert math.isnan(in_vocab_ceiling(states[2:])["repair_accuracy"])


def test_unk_replacement_draws_uncorrupted_leaves_at_the_rate():
    rng = np.random.default_rng(0)
    masked = rng.random(200_000) < 0.3
    drawn = unk_replacement(masked, 0.02, rng)
    assert not (drawn & masked).any()
    assert drawn[~masked].mean() == pytest.approx(0.02, abs=0.002)
    assert not unk_replacement(masked, 0.0, rng).any()
    state = rng.bit_generator.state
    unk_replacement(masked, 0.0, rng)
    assert rng.bit_generator.state == state  # rate 0 draws nothing: old runs' streams are unchanged
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        unk_replacement(masked, 1.5, rng)


def test_config_default_is_off_and_the_range_is_checked():
    assert load_config("3d").train.unk_replacement == 0.0
    assert load_config("3d", ["train.unk_replacement=0.02"]).train.unk_replacement == 0.02
    with pytest.raises(ConfigError, match="unk_replacement"):
        load_config("3d", ["train.unk_replacement=1.0"])


TINY = ["data.train_samples=32", "data.val_samples=2", "train.batch_size=32", "train.epochs=2",
        "train.trajectory_iterations=1", "model.hidden=16", "model.depth=1", "model.gat_heads=1",
        "model.attention_heads=1", "model.dropout=0.0"]


@pytest.fixture(scope="module")
def data():
    return prepare(load_config("3d", TINY + [f"data.data_dir={data_dir()}"]))


def task(data, rate: float) -> RefinementTask:
    cfg = load_config("3d", TINY + [f"data.data_dir={data_dir()}", f"train.unk_replacement={rate}"])
    torch.manual_seed(0)
    model = build_model(cfg, data.vocab)
    return RefinementTask(cfg, data, model, Refiner.from_config(model, data.vocab, cfg))


def test_training_inputs_carry_unk_at_the_rate_with_real_targets(data):
    assert data.oov_rate["train"] == 0.0  # min_freq 1: no real UNK in training, the reason for the option
    plain = next(iter(task(data, 0.0).train_batches(1)))
    noisy_task = task(data, 0.1)
    noisy = next(iter(noisy_task.train_batches(1)))
    assert all(s.unk_input is None for s in plain)
    # the option adds input noise and leaves the corruption as it was
    assert all((a.masked == b.masked).all() for a, b in zip(plain, noisy))
    drawn = np.concatenate([s.unk_input for s in noisy])
    masked = np.concatenate([s.masked for s in noisy])
    assert not (drawn & masked).any()
    assert (~masked).sum() > 500 and drawn[~masked].mean() == pytest.approx(0.1, abs=0.035)
    batch = noisy_task.refiner.batch(noisy, with_feedback=False)
    tokens = batch.x[batch.leaf_mask, 0].numpy()  # (L,) token_id of every leaf
    assert ((tokens == UNK) == drawn).all() and ((tokens == MASK) == masked).all()
    targets = batch.y.numpy()
    real = np.concatenate([s.enc.orig_ids for s in noisy])
    assert (targets[drawn] == real[drawn]).all() and (targets[drawn] >= 3).all()  # real tokens


def test_unk_embedding_gets_gradient_only_with_replacement(data):
    grads = {}
    for rate in (0.0, 0.1):
        t = task(data, rate)
        states = next(iter(t.train_batches(1)))
        loss, _ = t.training_step(states, 1)  # one iteration: no test is executed
        loss.backward()
        grads[rate] = t.model.token_emb.weight.grad[UNK].abs().sum().item()
    assert grads[0.0] == 0.0 and grads[0.1] > 0.0


def test_vocab_min_freq_two_gives_real_unks_whose_targets_are_ignored(data):
    cfg = load_config("3d", TINY + [f"data.data_dir={data_dir()}", "data.vocab_min_freq=2"])
    rare = prepare(cfg)
    assert len(rare.vocab) < len(data.vocab) and rare.oov_rate["train"] > 0.0
    enc = next(e for e in rare.splits["train"] if e.num_unknown)
    assert ((enc.orig_ids == UNK) == (enc.target == -100)).all()
    state = ProgramState.start(enc, corrupt(enc.eligible, 0.0, np.random.default_rng(0)), rare.vocab)
    ids = Refiner(ConstantModel(len(rare.vocab), 3), rare.vocab).input_ids(state)
    assert (ids == UNK).sum() == enc.num_unknown
