"""Students (jepa.students): repr, shapes, padding invariance, the V2 decoder, backward, registry."""

import pytest
import torch

from jepa.students import (
    STUDENTS,
    MLPStudent,
    SigPredictor,
    SigPredictorV2,
    build_student,
    student_names,
)

D = 16


def _tokens(lengths, t=None, seed=0):
    """Random signature states ``[B, T, D]`` and the mask of ``lengths`` real tokens per row."""
    g = torch.Generator().manual_seed(seed)
    t = t or max(lengths)
    x = torch.randn(len(lengths), t, D, generator=g)
    mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    return x, mask


def _small(cls, **kw):
    torch.manual_seed(0)
    return cls(D, d_model=32, layers=2, heads=4, ffn=64, **kw)


def _count(model):
    return sum(p.numel() for p in model.parameters())


def test_mlp_repr_shape_backward():
    torch.manual_seed(0)
    model = MLPStudent(D, hidden=(32, 8, 32))
    assert repr(model) == "MLPStudent(16, hidden=(32, 8, 32), dropout=0.1)"
    assert model.input_kind == "pooled" and not model.predicts_body_tokens
    out = model(torch.randn(5, D))
    assert out.shape == (5, D)
    out.square().sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match=r"signature must be \[B, 16\]"):
        model(torch.randn(5, 3, D))


def test_record_parameter_counts():
    # the record's figures at the Qwen2.5-Coder-3B width D = 2048 (001_*.txt, 000_*.txt)
    assert _count(MLPStudent(2048)) == 5_252_608
    assert _count(SigPredictor(2048)) == 8_404_480


def test_sig_predictor_repr_shape_backward():
    model = _small(SigPredictor)
    assert repr(model) == ("SigPredictor(16, d_model=32, layers=2, heads=4, ffn=64, dropout=0.1, "
                           "input_norm=False)")
    assert model.input_kind == "tokens" and not model.predicts_body_tokens
    x, mask = _tokens([3, 1, 5])
    out = model(x, mask)
    assert out.shape == (3, D)
    out.square().sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    # the encoder layers start different (nn.TransformerEncoder deep-copies its layer)
    w0, w1 = (layer.linear1.weight for layer in model.encoder.layers)
    assert not torch.equal(w0, w1)


@pytest.mark.parametrize("input_norm", [False, True])
def test_padding_does_not_change_the_output(input_norm):
    model = _small(SigPredictor, input_norm=input_norm).eval()
    x, mask = _tokens([3, 1, 5])
    with torch.no_grad():
        out = model(x, mask)
        # 4 more padding positions holding garbage, and a row's own padding changed too
        big = torch.cat([x, 100 * torch.randn(3, 4, D)], dim=1)
        big[1, 1:5] = -50.0
        big_mask = torch.cat([mask, torch.zeros(3, 4, dtype=torch.bool)], dim=1)
        padded = model(big, big_mask)
        alone = torch.cat([model(x[i:i + 1, :n], mask[i:i + 1, :n]) for i, n in enumerate([3, 1, 5])])
    torch.testing.assert_close(padded, out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone, out, atol=1e-5, rtol=1e-5)


def test_token_inputs_are_checked():
    model = _small(SigPredictor)
    x, mask = _tokens([2, 2])
    with pytest.raises(ValueError, match="have no real token"):
        model(x, torch.zeros_like(mask))
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        model(x, mask.long())
    with pytest.raises(ValueError, match=r"tokens must be \[B, T, 16\]"):
        model(x[..., :8], mask)
    with pytest.raises(ValueError, match="divisible"):
        SigPredictor(D, d_model=30, heads=4)


def test_v2_decoder_path():
    model = _small(SigPredictorV2, max_body_tokens=12, decoder_blocks=1)
    assert repr(model) == ("SigPredictorV2(16, d_model=32, layers=2, heads=4, ffn=64, dropout=0.1, "
                           "input_norm=False, max_body_tokens=12, decoder_blocks=1)")
    assert model.input_kind == "tokens" and model.predicts_body_tokens
    x, mask = _tokens([3, 1, 5])
    pooled, body = model(x, mask)
    assert pooled.shape == (3, D) and body is None
    pooled, body = model(x, mask, body_length=7)
    assert pooled.shape == (3, D) and body.shape == (3, 7, D)
    (pooled.square().sum() + body.square().sum()).backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match=r"body_length must lie in 1\.\.12"):
        model(x, mask, body_length=13)
    model.eval()
    with torch.no_grad():  # evaluation: the pooled output equals SigPredictor's arithmetic
        assert torch.equal(model(x, mask)[0], SigPredictor.forward(model, x, mask))


def test_v2_body_mask_keeps_padded_queries_out():
    model = _small(SigPredictorV2, max_body_tokens=12).eval()
    x, mask = _tokens([3, 1, 5])
    body_mask = torch.arange(9)[None, :] < torch.tensor([4, 2, 9])[:, None]  # (3, 9)
    with torch.no_grad():
        _, body = model(x, mask, 9, body_mask)
        _, short = model(x[:2], mask[:2], 4, body_mask[:2, :4])  # rows 0, 1 need only 4 queries
        _, padded = model(x, mask, 7)  # without a mask every query sees the others
    torch.testing.assert_close(short[0], body[0, :4], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(short[1, :2], body[1, :2], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(padded[0, :4], body[0, :4], atol=1e-4)
    with pytest.raises(ValueError, match="body_mask was given without body_length"):
        model(x, mask, None, body_mask)


def test_registry():
    assert student_names() == ["mlp", "sig_predictor", "sig_predictor_v2"]
    assert STUDENTS["sig_predictor_v2"] is SigPredictorV2
    model = build_student("sig_predictor", D, d_model=32, heads=4, ffn=64, input_norm=True)
    assert isinstance(model, SigPredictor) and model.input_norm
    with pytest.raises(ValueError, match=r"unknown student 'transformer'; registered: \['mlp', "):
        build_student("transformer", D)
    with pytest.raises(ValueError, match=r"student 'mlp': .*d_model.*takes the options \['hidden', "
                                         r"'dropout'\]"):
        build_student("mlp", D, d_model=32)


def test_group_by_length_keeps_the_rows_and_cuts_the_padding():
    from jepa.task import group_by_length

    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(5, 128, (1000,), generator=g)
    order = torch.randperm(1000, generator=g)[:960]
    grouped = group_by_length(order, lengths, 32, torch.Generator().manual_seed(1), window=10)
    assert sorted(grouped.tolist()) == sorted(order.tolist())  # the same rows, once each
    padded = lambda o: int(lengths[o].view(-1, 32).max(1).values.sum())  # noqa: E731
    assert padded(grouped) < 0.75 * padded(order)
    # windows: every batch's rows come from one window of 10 batches of the shuffled order
    window_of = {int(r): i // 320 for i, r in enumerate(order)}
    for batch in grouped.view(-1, 32):
        assert len({window_of[int(r)] for r in batch}) == 1
    # the same generator state gives the same order (every DDP rank cuts the same batches)
    again = group_by_length(order, lengths, 32, torch.Generator().manual_seed(1), window=10)
    assert torch.equal(grouped, again)
