"""PointerGraphUNet: log-probabilities, the pointer onto names in context, the editable feature,
batching, and training through the refiner."""

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
