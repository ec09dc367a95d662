"""IterativeGraphUNet (6 features + per-node test signal) on real MBPP graphs, and its wiring."""

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from graphrepair.config import load_config
from graphrepair.features.encoding import EncodedProgram
from graphrepair.features.variants import FeatureVariant, make_signal_data
from graphrepair.graphs.graph import ProgramGraph
from graphrepair.graphs.vocab import Vocabulary
from graphrepair.loop.refine import ProgramState, Refiner, signal_from_result
from graphrepair.models import build_model, model_variant
from graphrepair.models.iterative_unet import IterativeGraphUNet
from harness.sandbox import run_tests

ELIGIBLE = ["identifier", "operator", "keyword", "literal"]


@pytest.fixture(scope="module")
def encoded(mbpp):
    probs = [mbpp[f"mbpp/{i}"] for i in (2, 3, 4, 17)]
    graphs = [ProgramGraph.from_source(p.source) for p in probs]
    vocab = Vocabulary.build(graphs)
    return vocab, [EncodedProgram.build(p, g, vocab, ELIGIBLE) for p, g in zip(probs, graphs)]


def _data(enc, signal=None, iteration=1):
    return make_signal_data(enc, enc.orig_ids, enc.orig_ids, iteration, signal)


def test_repr_shapes_backward_and_batching(encoded):
    vocab, encs = encoded
    torch.manual_seed(0)
    model = IterativeGraphUNet(len(vocab), hidden=32, depth=2, gat_heads=2)
    assert repr(model) == f"IterativeGraphUNet(vocab={len(vocab)}, hidden=32, depth=2, pool_ratio=0.5)"
    datas = [_data(e, np.linspace(0, 1, e.num_nodes, dtype=np.float32)) for e in encs]
    out = model(Batch.from_data_list(datas))
    assert out.shape == (sum(len(e.orig_texts) for e in encs), len(vocab))
    out.logsumexp(-1).sum().backward()
    assert model.signal_proj.weight.grad is not None and model.parent_emb.weight.grad is not None
    model.eval()
    together = model(Batch.from_data_list(datas))
    alone = torch.cat([model(Batch.from_data_list([d])) for d in datas])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)


def test_the_test_signal_reaches_the_output(encoded):
    vocab, encs = encoded
    enc = encs[1]
    torch.manual_seed(0)
    model = IterativeGraphUNet(len(vocab), hidden=32, depth=2, gat_heads=2).eval()
    zero = model(Batch.from_data_list([_data(enc)]))
    ones = model(Batch.from_data_list([_data(enc, np.ones(enc.num_nodes, np.float32))]))
    assert not torch.allclose(zero, ones)


def test_hidden_must_divide_heads():
    with pytest.raises(ValueError, match="divisible"):
        IterativeGraphUNet(10, hidden=30, gat_heads=4)


def test_models_and_their_feature_variants():
    assert model_variant("iterative_unet") is FeatureVariant.SIX
    assert model_variant("guided_unet") is FeatureVariant.FIVE
    assert model_variant("pointer_unet") is FeatureVariant.FIVE
    with pytest.raises(ValueError, match="registered: \\['guided_unet', 'iterative_unet', 'pointer_unet'\\]"):
        model_variant("transformer")


def test_signal_of_a_real_failing_program_marks_the_lines_failing_tests_ran(encoded, mbpp):
    vocab, encs = encoded
    enc = encs[3]  # mbpp/17: def square_perimeter(a): perimeter=4*a; return perimeter
    texts = list(enc.orig_texts)
    texts[texts.index("4")] = "5"  # a wrong literal on line 2: every test fails
    source = enc.source(texts)
    result = run_tests(source, enc.problem.tests, enc.problem.setup, timeout_s=5)
    assert result.n_passed == 0
    node_lines = enc.node_lines(texts)
    for formula in ("binary", "tarantula"):
        signal = signal_from_result(enc, texts, result, formula)
        assert signal.shape == (enc.num_nodes,) and signal.dtype == np.float32
        # all tests fail and execute lines 1-3: those nodes score 1, nodes on no line score 0
        assert set(np.unique(signal[node_lines >= 1])) == {1.0}
        assert (signal[node_lines < 1] == 0).all()
    result_ok = run_tests(enc.problem.source, enc.problem.tests, enc.problem.setup, timeout_s=5)
    assert (signal_from_result(enc, enc.orig_texts, result_ok, "tarantula") == 0).all()  # F = 0


def test_refiner_feeds_the_configured_signal_to_a_six_feature_model(encoded):
    vocab, encs = encoded
    cfg = load_config("4", ["model.hidden=32", "model.depth=2", "model.gat_heads=2"])
    model = build_model(cfg, vocab)
    assert isinstance(model, IterativeGraphUNet)
    refiner = Refiner.from_config(model, vocab, cfg)
    assert refiner.variant is FeatureVariant.SIX and refiner.signal == "tarantula"
    state = ProgramState.start(encs[3], encs[3].eligible.copy(), vocab)
    refiner.run_tests([state])
    assert state.signal is not None and state.signal.shape == (encs[3].num_nodes,)
    with_fb, without = refiner.batch([state], True), refiner.batch([state], False)
    assert torch.equal(with_fb.test_signal, torch.from_numpy(state.signal))
    assert not without.test_signal.any()  # feedback withheld: zeros
    with pytest.raises(ValueError, match="unknown test signal"):
        Refiner(model, vocab, variant="six", signal="jaccard")
