"""GuidedIterativeGraphUNet on real MBPP graphs: shapes, backward, batching, the feedback path."""

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from graphrepair.features.encoding import EncodedProgram, Feedback, make_data
from graphrepair.graphs.graph import ProgramGraph
from graphrepair.graphs.vocab import Vocabulary
from graphrepair.models.guided_unet import GuidedIterativeGraphUNet

ELIGIBLE = ["identifier", "operator", "keyword", "literal"]


@pytest.fixture(scope="module")
def encoded(mbpp):
    probs = [mbpp[f"mbpp/{i}"] for i in (2, 3, 4, 17)]
    graphs = [ProgramGraph.from_source(p.source) for p in probs]
    vocab = Vocabulary.build(graphs)
    return vocab, [EncodedProgram.build(p, g, vocab, ELIGIBLE) for p, g in zip(probs, graphs)]


def _data(enc, feedback=None, iteration=0):
    return make_data(enc, enc.orig_ids, enc.orig_ids, iteration, feedback or Feedback.empty())


def _feedback(enc, outcome):
    nodes = np.arange(0, enc.num_nodes, 2)
    trace = np.stack([np.zeros_like(nodes), nodes])
    return Feedback(np.array([outcome]), trace, outcome == 0)


def test_repr_shapes_and_backward(encoded):
    vocab, encs = encoded
    model = GuidedIterativeGraphUNet(len(vocab), hidden=32, depth=2, gat_heads=2, attention_heads=2)
    assert repr(model).startswith("GuidedIterativeGraphUNet(vocab=")
    batch = Batch.from_data_list([_data(e, _feedback(e, 1), 1) for e in encs], follow_batch=["test_outcome"])
    out = model(batch)
    assert out.shape == (sum(len(e.orig_texts) for e in encs), len(vocab))
    out.logsumexp(-1).sum().backward()
    assert model.token_emb.weight.grad is not None and model.null_test.grad is not None


def test_batched_equals_single_in_eval_mode(encoded):
    vocab, encs = encoded
    torch.manual_seed(0)
    model = GuidedIterativeGraphUNet(len(vocab), hidden=32, depth=2, gat_heads=2, attention_heads=2).eval()
    datas = [_data(e, _feedback(e, i % 2), 1) for i, e in enumerate(encs)]
    together = model(Batch.from_data_list(datas, follow_batch=["test_outcome"]))
    alone = torch.cat([model(Batch.from_data_list([d], follow_batch=["test_outcome"])) for d in datas])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)


def test_feedback_changes_output_only_with_guidance(encoded):
    vocab, encs = encoded
    enc = encs[0]
    torch.manual_seed(0)
    guided = GuidedIterativeGraphUNet(len(vocab), hidden=32, depth=2, gat_heads=2, attention_heads=2).eval()
    plain = GuidedIterativeGraphUNet(len(vocab), hidden=32, depth=2, gat_heads=2, attention_heads=2,
                                     use_test_guidance=False).eval()
    assert sum(p.numel() for p in plain.parameters()) < sum(p.numel() for p in guided.parameters())

    def run(model, fb):
        return model(Batch.from_data_list([_data(enc, fb, 1)], follow_batch=["test_outcome"]))

    assert not torch.allclose(run(guided, None), run(guided, _feedback(enc, 1)))
    torch.testing.assert_close(run(plain, None), run(plain, _feedback(enc, 1)))


def test_output_mask_blocks_ids(encoded):
    vocab, encs = encoded
    mask = torch.ones(len(vocab), dtype=torch.bool)
    mask[:3] = False
    model = GuidedIterativeGraphUNet(len(vocab), hidden=16, depth=1, gat_heads=2, attention_heads=2,
                                     output_mask=mask).eval()
    out = model(Batch.from_data_list([_data(encs[0])], follow_batch=["test_outcome"]))
    assert torch.isinf(out[:, :3]).all() and torch.isfinite(out[:, 3:]).all()


def test_hidden_must_divide_heads():
    with pytest.raises(ValueError, match="divisible"):
        GuidedIterativeGraphUNet(10, hidden=30, gat_heads=4)
