"""PointerGraphUNet: log-probabilities, the pointer onto names in context, the editable feature,
batching, and training through the refiner."""

import dataclasses

import numpy as np
import pytest
import torch

from graphrepair.data.corruption import corrupt, corruption_rng
from graphrepair.features.encoding import EncodedProgram
from graphrepair.graphs.graph import ProgramGraph
from graphrepair.graphs.vocab import Vocabulary
from graphrepair.loop.refine import ProgramState, Refiner
from graphrepair.models.pointer_unet import PointerGraphUNet

ELIGIBLE = ["identifier", "operator", "keyword", "literal"]


@pytest.fixture(scope="module")
def setup(mbpp):
    probs = [mbpp[f"mbpp/{i}"] for i in (2, 3, 4, 17)]
    graphs = [ProgramGraph.from_source(p.source) for p in probs]
    vocab = Vocabulary.build(graphs)
    encs = [EncodedProgram.build(p, g, vocab, ELIGIBLE) for p, g in zip(probs, graphs)]
    states = [ProgramState.start(e, corrupt(e.eligible, 0.5, corruption_rng(0, e.problem.task_id, 0.5)),
                                 vocab) for e in encs]
    return vocab, states


def _model(vocab, **kwargs):
    torch.manual_seed(0)
    return PointerGraphUNet(len(vocab), hidden=32, depth=2, gat_heads=2, attention_heads=2,
                            dropout=0.0, **kwargs)


def test_output_is_a_log_distribution_with_gradients(setup):
    vocab, states = setup
    model = _model(vocab)
    refiner = Refiner(model, vocab)
    batch = refiner.batch(states, with_feedback=False)
    out = model(batch)
    assert out.shape == (sum(len(s.texts) for s in states), len(vocab))
    torch.testing.assert_close(out.logsumexp(-1), torch.zeros(len(out)), atol=1e-4, rtol=0)
    loss = torch.nn.functional.cross_entropy(out, batch.y, ignore_index=-100)
    loss.backward()
    for p in (model.query.weight, model.key.weight, model.gate.weight, model.test_name_vec,
              model.editable_emb.weight):
        assert p.grad is not None and torch.isfinite(p.grad).all()


def test_the_pointer_puts_mass_only_on_names_in_context(setup):
    vocab, states = setup
    model = _model(vocab)
    with torch.no_grad():
        model.gate.bias.fill_(-30.0)  # gate ~ 0: copy only
    refiner = Refiner(model, vocab)
    batch = refiner.batch(states[:1], with_feedback=False)
    probs = model.eval()(batch).exp()  # (L, V)
    s = states[0]
    names = set(batch.x[batch.copy_source, 0].tolist()) | set(batch.test_names.tolist())
    assert names  # visible identifiers and the tests' names
    support = set(torch.nonzero(probs.sum(0) > 1e-6).squeeze(1).tolist())
    assert support <= names
    # the tests call the function: its name is a candidate even where every use is masked
    assert vocab.leaf_id(s.enc.problem.tests[0].split("(")[0].split()[-1]) in names


def test_copy_off_and_editable_off_change_the_model(setup):
    vocab, states = setup
    refiner = Refiner(_model(vocab), vocab)
    batch = refiner.batch(states, with_feedback=False)
    plain = _model(vocab, copy=False, editable_feature=False).eval()
    assert not hasattr(plain, "query") and not hasattr(plain, "editable_emb")
    out = plain(batch)
    assert out.shape[1] == len(vocab)
    assert batch.editable.sum() == sum(int(s.masked.sum()) for s in states)
    with_edit = _model(vocab, copy=False).eval()
    flipped = batch.clone()
    flipped.editable = torch.zeros_like(batch.editable)
    assert not torch.allclose(with_edit(batch), with_edit(flipped))


def test_batched_equals_single_in_eval_mode(setup):
    vocab, states = setup
    model = _model(vocab).eval()
    refiner = Refiner(model, vocab)
    together = model(refiner.batch(states, False))
    alone = torch.cat([model(refiner.batch([s], False)) for s in states])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)


def test_predictions_are_leaf_texts(setup):
    vocab, states = setup
    refiner = Refiner(_model(vocab), vocab)
    fresh = [ProgramState.start(s.enc, s.masked, vocab) for s in states]
    for s, (pred, conf) in zip(fresh, refiner.predict(fresh, with_feedback=False)):
        assert vocab.leaf_token_mask()[pred].all() and np.isfinite(conf).all()
        refiner.apply(s, pred, conf)
        assert all(t is not None for t in s.texts)


@pytest.fixture(scope="module")
def oov(mbpp):
    """mbpp/2 under a vocabulary of three other programs: its names are out of the vocabulary.
    One use of ``test_tup1`` is masked; the name stays visible as a parameter."""
    vocab = Vocabulary.build([ProgramGraph.from_source(mbpp[f"mbpp/{i}"].source) for i in (3, 4, 17)])
    p = mbpp["mbpp/2"]
    enc = EncodedProgram.build(p, ProgramGraph.from_source(p.source), vocab, ELIGIBLE)
    leaf = [i for i, t in enumerate(enc.orig_texts) if t == "test_tup1"][1]
    masked = np.zeros(len(enc.orig_texts), dtype=bool)
    masked[leaf] = True
    return vocab, ProgramState.start(enc, masked, vocab), leaf


def test_out_of_vocabulary_names_in_context_get_extended_ids(oov):
    vocab, state, leaf = oov
    v = len(vocab)
    refiner = Refiner(_model(vocab, copy_slots=8), vocab)
    batch = refiner.batch([state], with_feedback=False)
    # visible out-of-vocabulary identifiers in leaf order (the tests add no other)
    assert state.copy_names == ("similar_elements", "test_tup1", "test_tup2", "res", "tuple", "set")
    assert int(batch.y[leaf]) == v + 1  # the masked reference is learnable: copy the parameter
    assert set(batch.copy_id[batch.copy_source].tolist()) >= {v + j for j in range(6)}
    assert v in batch.test_names.tolist()  # the tests call similar_elements
    out = refiner.model.eval()(batch)
    assert out.shape == (len(state.texts), v + 8)
    torch.testing.assert_close(out.logsumexp(-1), torch.zeros(len(out)), atol=1e-4, rtol=0)
    logits = refiner.logits([state], batch)
    identifier = np.array([c.value == "identifier" for c in state.enc.graph.leaf_categories])
    assert torch.isfinite(logits[identifier][:, v:v + 6]).all()
    assert torch.isinf(logits[~identifier][:, v:]).all()  # only identifiers take copied names
    assert torch.isinf(logits[:, v + 6:]).all()  # slots without a name are never written
    with torch.no_grad():
        refiner.model.gate.bias.fill_(-30.0)  # copy only
        probs = refiner.model(batch).exp()
    assert probs[leaf, v + 1] > 0


def test_without_slots_out_of_vocabulary_references_stay_out_of_the_loss(oov):
    vocab, state, leaf = oov
    refiner = Refiner(_model(vocab), vocab)  # copy_slots 0
    batch = refiner.batch([dataclasses.replace(state, texts=list(state.texts))], False)
    assert int(batch.y[leaf]) == -100 and refiner.model(batch).shape[1] == len(vocab)


def test_the_pointer_learns_to_write_an_out_of_vocabulary_name(oov):
    vocab, state, leaf = oov
    model = _model(vocab, copy_slots=8)
    refiner = Refiner(model, vocab)
    optim = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        batch = refiner.batch([state], with_feedback=False)
        loss = torch.nn.functional.cross_entropy(refiner.logits([state], batch)[[leaf]],
                                                 batch.y[[leaf]])
        optim.zero_grad()
        loss.backward()
        optim.step()
    s = dataclasses.replace(state, texts=list(state.texts))
    (pred, conf), = refiner.predict([s], with_feedback=False)
    assert int(pred[leaf]) == len(vocab) + 1
    refiner.apply(s, pred, conf)
    assert s.texts[leaf] == "test_tup1" and s.correct().all()
    with pytest.raises(IndexError, match="extended id"):
        refiner.text(s, len(vocab) + 6)


def test_a_checkpoint_decodes_with_or_without_copy_slots(setup, tmp_path):
    from graphrepair.config import load_config
    from graphrepair.models import build_model, from_checkpoint
    from harness.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
    from harness.config import ConfigError, to_dict

    vocab, _ = setup
    cfg = load_config("5", ["model.hidden=16", "model.gat_heads=2", "model.attention_heads=2",
                            "model.depth=1"])
    model = build_model(cfg, vocab)
    assert model.copy_slots == cfg.decoding.copy_slots == 32
    path = save_checkpoint(tmp_path / "5.pt", {"format": CHECKPOINT_FORMAT, "config": to_dict(cfg),
                                               "model": model.state_dict(),
                                               "extra": {"vocab": vocab.to_dict()}})
    assert from_checkpoint(path).model.copy_slots == 32
    loaded = from_checkpoint(path, overrides=["decoding.copy_slots=0"])
    assert loaded.model.copy_slots == 0 and loaded.config.decoding.copy_slots == 0
    for k, v in model.state_dict().items():  # the same weights: the slots add no parameters
        torch.testing.assert_close(loaded.model.state_dict()[k], v)
    with pytest.raises(ConfigError, match="copy_slots"):
        from_checkpoint(path, overrides=["decoding.copy_slots=-1"])
    with pytest.raises(ConfigError):
        from_checkpoint(path, overrides=["model.hidden=8"])  # only decoding may change
