"""Tiny randomly initialised teachers saved as local model directories (session-scoped).

Both use the tokenizer of the packaged all-MiniLM-L6-v2 (a real WordPiece tokenizer, offline);
the causal one has the Qwen2 architecture, the code path of Qwen2.5-Coder and Qwen3.
"""

from __future__ import annotations

import pytest
import torch


def _save_tiny(path, config_cls, **kw):
    from transformers import AutoModel, AutoTokenizer

    from jepa.teacher.known import KNOWN_TEACHERS, resolve_teacher

    source = resolve_teacher(KNOWN_TEACHERS["all-minilm-l6-v2"].name).source
    tokenizer = AutoTokenizer.from_pretrained(source)
    torch.manual_seed(0)
    model = AutoModel.from_config(config_cls(vocab_size=tokenizer.vocab_size, **kw))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory):
    """A local directory holding a 4-layer Qwen2 (D = 32) with random weights."""
    from transformers import Qwen2Config

    return _save_tiny(tmp_path_factory.mktemp("tiny-qwen2"), Qwen2Config, hidden_size=32,
                      intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=512)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A local directory holding a 3-layer BERT (D = 32) with random weights."""
    from transformers import BertConfig

    return _save_tiny(tmp_path_factory.mktemp("tiny-bert"), BertConfig, hidden_size=32,
                      intermediate_size=64, num_hidden_layers=3, num_attention_heads=4)
