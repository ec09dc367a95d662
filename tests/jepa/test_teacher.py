"""jepa.teacher: truncation equals hidden_states[i], no body leaks into the inputs, hashes checked."""

from __future__ import annotations

import pytest
import torch

from harness.errors import EnvironmentProblem
from harness.io import file_sha256
from jepa.teacher import known
from jepa.teacher.known import TeacherError, check_sha256, resolve_teacher
from jepa.teacher.model import Teacher, truncate

SIGNATURES = ['def add(x, y):\n    """Add two numbers."""',
              "async def fetch(url: str, *, retries: int = 3) -> bytes:",
              "@staticmethod\ndef parse(text):"]
BODIES = ["\n    total = x + y\n    return total",
          "\n    for _ in range(retries):\n        data = await get(url)\n        if data:\n"
          "            return data\n    raise IOError(url)",
          "\n    return [line.split('=') for line in text.splitlines()]"]


def _full_hidden(path, ids):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(path).eval()
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids),
                     output_hidden_states=True).hidden_states


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_qwen2"])
def test_truncated_stack_equals_hidden_states_of_the_full_model(fixture, request):
    from transformers import AutoModel

    path = request.getfixturevalue(fixture)
    ids = torch.randint(5, 1000, (2, 9), generator=torch.Generator().manual_seed(1))
    hidden = _full_hidden(path, ids)
    n = len(hidden) - 1
    for layer in range(n + 1):
        model = truncate(AutoModel.from_pretrained(path).eval(), layer)
        assert model.config.num_hidden_layers == layer
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
        torch.testing.assert_close(out, hidden[layer], rtol=0, atol=1e-6)
        blocks = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
        assert max(len(b) for b in blocks) == layer  # the blocks above were removed


def test_truncate_rejects_a_layer_outside_the_stack(tiny_bert):
    from transformers import AutoModel

    with pytest.raises(TeacherError, match=r"0\.\.3"):
        truncate(AutoModel.from_pretrained(tiny_bert), 4)


def test_minilm_default_teacher_reads_layer_3_as_the_full_model_does():
    teacher = Teacher.load("all-minilm-l6-v2", dtype="float32")
    assert (teacher.kind, teacher.layer, teacher.dim) == ("bidirectional", 3, 384)
    assert teacher.weights_sha256 == known.KNOWN_TEACHERS["all-minilm-l6-v2"].sha256
    states = teacher.encode(SIGNATURES, BODIES, tokens=True)
    assert states.signature.shape == states.body.shape == (3, 384)
    # the body alone with [CLS]/[SEP], through the full 6-layer model
    tok = teacher.tokenizer
    ids = torch.tensor([tok(BODIES[1])["input_ids"]])
    hidden = _full_hidden(resolve_teacher("all-minilm-l6-v2").source, ids)
    torch.testing.assert_close(states.body[1], hidden[3][0].mean(0), rtol=0, atol=1e-5)
    assert states.body_length[1] == ids.shape[1] == states.body_tokens[1].shape[0]


def test_length_sorted_batches_give_the_states_of_one_function_alone():
    teacher = Teacher.load("all-minilm-l6-v2", dtype="float32")
    together = teacher.encode(SIGNATURES, BODIES, batch_size=2)
    for i in range(3):
        alone = teacher.encode(SIGNATURES[i:i + 1], BODIES[i:i + 1])
        torch.testing.assert_close(together.body[i], alone.body[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(together.signature[i], alone.signature[0], rtol=0, atol=1e-5)


def _leakage(teacher):
    body = "\n    total = x + y\n    return total"
    changed = "\n    total = x - y\n    return total"  # one body token differs
    a = teacher.encode(SIGNATURES[:1], [body], tokens=True)
    b = teacher.encode(SIGNATURES[:1], [changed], tokens=True)
    assert torch.equal(a.signature, b.signature)
    assert torch.equal(a.signature_tokens[0], b.signature_tokens[0])
    assert not torch.equal(a.body, b.body)
    return a


def test_changing_a_body_token_leaves_the_inputs_bit_identical_bidirectional():
    _leakage(Teacher.load("all-minilm-l6-v2", dtype="float32"))


def test_changing_a_body_token_leaves_the_inputs_bit_identical_causal(tiny_qwen2):
    teacher = Teacher.load(str(tiny_qwen2), layer=2, dtype="float32")
    assert teacher.kind == "causal"
    a = _leakage(teacher)
    # signature then body positions of one sequence: prefix + sig + body, prefix excluded
    sig = teacher.tokenize(SIGNATURES[:1], 128)[0]
    assert a.signature_length[0] == len(sig)


def test_causal_states_are_positions_of_one_concatenated_sequence(tiny_qwen2):
    teacher = Teacher.load(str(tiny_qwen2), layer=3, dtype="float32")
    states = teacher.encode(SIGNATURES, BODIES, tokens=True)
    for i in range(3):
        seq = teacher._prefix + teacher.tokenize([SIGNATURES[i]], 128)[0] + teacher.tokenize([BODIES[i]], 256)[0]
        hidden = _full_hidden(tiny_qwen2, torch.tensor([seq]))[3][0]
        p, s = len(teacher._prefix), int(states.signature_length[i])
        torch.testing.assert_close(states.signature_tokens[i], hidden[p:p + s], rtol=0, atol=1e-5)
        torch.testing.assert_close(states.body_tokens[i], hidden[p + s:], rtol=0, atol=1e-5)


def test_body_and_signature_are_truncated_to_their_limits():
    teacher = Teacher.load("all-minilm-l6-v2", dtype="float32")
    long_body = "\n" + "\n".join(f"    x{i} = {i}" for i in range(200))
    states = teacher.encode(SIGNATURES[:1], [long_body], max_signature_tokens=8, max_body_tokens=16)
    assert (int(states.signature_length[0]), int(states.body_length[0])) == (8, 16)


def test_a_weight_file_of_another_hash_is_refused_naming_file_and_hash(tiny_bert, tmp_path):
    weights = next(tiny_bert.glob("*.safetensors"))
    good = check_sha256(weights, file_sha256(weights))
    bad = "0" * 64
    with pytest.raises(TeacherError) as err:
        Teacher.load(str(tiny_bert), layer=1, sha256=bad)
    assert str(weights) in str(err.value) and bad in str(err.value) and good in str(err.value)
    with pytest.raises(TeacherError, match="does not exist"):
        check_sha256(tmp_path / "missing.safetensors", bad)


def test_a_known_teacher_whose_package_is_missing_names_its_install_command(monkeypatch):
    monkeypatch.setattr(known.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EnvironmentProblem, match="make teacher-smollm2"):
        resolve_teacher("smollm2-135m-instruct")


def test_a_hub_id_that_is_not_cached_is_an_environment_problem(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EnvironmentProblem, match="huggingface-cli download Qwen/Qwen3-8B-Base"):
        Teacher.load("qwen3-8b-base")


def test_layer_is_required_for_an_unknown_model(tiny_bert):
    with pytest.raises(TeacherError, match="teacher.layer is required"):
        Teacher.load(str(tiny_bert))


def test_encode_layers_pools_every_hidden_state_as_encode_does_at_each_layer(tiny_qwen2):
    full = Teacher.load(str(tiny_qwen2), layer=-1, dtype="float32")
    assert full.layer == 4
    sig, body = full.encode_layers(SIGNATURES, BODIES, batch_size=2)
    assert sig.shape == body.shape == (5, 3, 32)
    for layer in (0, 2, 4):
        one = Teacher.load(str(tiny_qwen2), layer=layer, dtype="float32").encode(SIGNATURES, BODIES)
        torch.testing.assert_close(body[layer], one.body, rtol=0, atol=1e-5)
        torch.testing.assert_close(sig[layer], one.signature, rtol=0, atol=1e-5)
