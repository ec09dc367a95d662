"""GuidedIterativeGraphUNet on real MBPP graphs: shapes, backward, batching, the feedback path,
failure details and loading checkpoints written without them."""

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from graphrepair.features.encoding import EncodedProgram, Feedback, make_data
from graphrepair.feedback.failures import EXCEPTION_TYPES, VALUE_TYPES
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


# --- failure details (exception type, raising line, value types) ------------------------------

def _failure_feedback(enc, exception, line_nodes):
    """One failing test that raised ``exception`` on the line of ``line_nodes``."""
    fb = _feedback(enc, 1)
    return Feedback(fb.outcome, fb.trace_index, False, exception=np.array([exception]),
                    actual_type=np.array([VALUE_TYPES.index("int")]),
                    expected_type=np.array([VALUE_TYPES.index("float")]),
                    raise_index=np.stack([np.zeros_like(line_nodes), line_nodes]))


def _details_model(vocab, **kwargs):
    return GuidedIterativeGraphUNet(len(vocab), hidden=32, depth=2, gat_heads=2,
                                    attention_heads=2, failure_details=True, **kwargs)


def test_failure_details_repr_shapes_and_backward(encoded):
    vocab, encs = encoded
    model = _details_model(vocab)
    assert repr(model) == (f"GuidedIterativeGraphUNet(vocab={len(vocab)}, hidden=32, depth=2, "
                           "pool_ratio=0.5, test_guidance=True, failure_details=True)")
    name = EXCEPTION_TYPES.index("NameError")
    datas = [_data(e, _failure_feedback(e, name, np.arange(3, 6)), 1) for e in encs]
    out = model(Batch.from_data_list(datas, follow_batch=["test_outcome"]))
    assert out.shape == (sum(len(e.orig_texts) for e in encs), len(vocab))
    out.logsumexp(-1).sum().backward()
    for p in (model.exception_emb.weight, model.actual_type_emb.weight, model.raise_proj.weight,
              model.raised_mark.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_failure_details_change_the_output_and_batch_like_single_graphs(encoded):
    vocab, encs = encoded
    enc = encs[0]
    torch.manual_seed(0)
    model = _details_model(vocab).eval()

    def run(fb):
        return model(Batch.from_data_list([_data(enc, fb, 1)], follow_batch=["test_outcome"]))

    name, key = EXCEPTION_TYPES.index("NameError"), EXCEPTION_TYPES.index("KeyError")
    base = run(_failure_feedback(enc, name, np.arange(3, 6)))
    assert not torch.allclose(base, run(_failure_feedback(enc, key, np.arange(3, 6))))
    assert not torch.allclose(base, run(_failure_feedback(enc, name, np.arange(7, 9))))
    # raise_index rows are offset per graph when batched, as trace_index's
    datas = [_data(e, _failure_feedback(e, name, np.arange(i, i + 3)), 1) for i, e in enumerate(encs)]
    together = model(Batch.from_data_list(datas, follow_batch=["test_outcome"]))
    alone = torch.cat([model(Batch.from_data_list([d], follow_batch=["test_outcome"])) for d in datas])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)
    # without feedback (iteration 0) there is nothing to add
    assert torch.isfinite(run(None)).all()
    bare = _data(enc, _failure_feedback(enc, name, np.arange(3)), 1)
    del bare.raise_index  # an input built by hand, without the details
    with pytest.raises(ValueError, match="build it with graphrepair.features.encoding.make_data"):
        model(Batch.from_data_list([bare], follow_batch=["test_outcome"]))


def test_a_model_without_failure_details_keeps_its_old_weights_and_loads_old_checkpoints(
        encoded, tmp_path):
    from graphrepair.config import load_config
    from graphrepair.models import build_model, from_checkpoint
    from harness.checkpoint import CHECKPOINT_FORMAT, CheckpointError, save_checkpoint
    from harness.config import to_dict

    vocab, encs = encoded
    tiny = ["model.hidden=16", "model.gat_heads=2", "model.attention_heads=2", "model.depth=1"]
    old = build_model(load_config("3d", tiny), vocab)
    assert not old.failure_details and not any("exception" in k for k in old.state_dict())
    config = to_dict(load_config("3d", tiny))
    del config["model"]["failure_details"]  # a checkpoint written before the key existed
    del config["feedback"]["load_lines"], config["feedback"]["raise_signal"]
    path = save_checkpoint(tmp_path / "old.pt", {"format": CHECKPOINT_FORMAT, "config": config,
                                                 "model": old.state_dict(),
                                                 "extra": {"vocab": vocab.to_dict()}})
    loaded = from_checkpoint(path)
    assert not loaded.model.failure_details and loaded.config.feedback.load_lines == "every_test"
    for k, v in old.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[k], v)
    out = loaded.model(Batch.from_data_list([_data(encs[0], _failure_feedback(encs[0], 2, np.arange(3)), 1)],
                                            follow_batch=["test_outcome"]))
    assert out.shape[0] == len(encs[0].orig_texts)
    # the same weights under a config that asks for the details do not fit: a clear error
    config["model"]["failure_details"] = True
    save_checkpoint(tmp_path / "mixed.pt", {"format": CHECKPOINT_FORMAT, "config": config,
                                            "model": old.state_dict(),
                                            "extra": {"vocab": vocab.to_dict()}})
    with pytest.raises(CheckpointError, match="tensors missing"):
        from_checkpoint(tmp_path / "mixed.pt")
    new = build_model(load_config("3d_failures", tiny), vocab)
    assert new.failure_details and "exception_emb.weight" in new.state_dict()
