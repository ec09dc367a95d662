"""The model registry: a model declares its name and feature variant; build_model / from_checkpoint."""

import pytest
import torch

from graphrepair.config import load_config
from graphrepair.features.variants import FeatureVariant
from graphrepair.graphs.graph import ProgramGraph
from graphrepair.graphs.vocab import Vocabulary
from graphrepair.models import build_model, model_names, model_variant, register
from graphrepair.models import registry as reg
from graphrepair.models.guided_unet import GuidedIterativeGraphUNet
from harness.config import ConfigError


@pytest.fixture
def vocab():
    return Vocabulary.build([ProgramGraph.from_source("def f(a):\n    return a + 1\n")])


def test_the_refiners_are_registered_with_their_variants():
    assert model_names() == ["guided_unet", "iterative_unet", "pointer_unet"]
    assert model_variant("pointer_unet") is FeatureVariant.FIVE
    assert model_variant("guided_unet") is FeatureVariant.FIVE
    assert model_variant("iterative_unet") is FeatureVariant.SIX


def test_unknown_names_list_the_registered_models():
    with pytest.raises(ConfigError, match=r"unknown model 'transformer'; registered: \['guided_unet'"):
        model_variant("transformer")


def test_a_new_model_is_one_class_and_a_config(vocab, monkeypatch):
    monkeypatch.setattr(reg, "_MODELS", dict(reg._MODELS))  # leave the real registry as it was

    @register
    class Bag(torch.nn.Module):
        """Bag of tokens: the smallest refiner (test only)."""

        name = "bag"
        variant = FeatureVariant.SIX

        @classmethod
        def from_config(cls, cfg, vocab_size, output_mask):
            return cls(vocab_size, cfg.model.hidden, output_mask)

        def __init__(self, vocab_size, hidden, output_mask):
            super().__init__()
            self.emb = torch.nn.Embedding(vocab_size, hidden)
            self.register_buffer("mask", output_mask)

    model = build_model(load_config("1", ["model.name=bag", "model.hidden=8"]), vocab)
    assert isinstance(model, Bag) and model.emb.weight.shape == (len(vocab), 8)
    assert not model.mask[:3].any()  # PAD, MASK, UNK are never predicted
    assert "bag" in model_names() and model_variant("bag") is FeatureVariant.SIX


def test_registration_checks_the_declaration(monkeypatch):
    monkeypatch.setattr(reg, "_MODELS", dict(reg._MODELS))

    class Nameless(torch.nn.Module):
        variant = FeatureVariant.FIVE

        @classmethod
        def from_config(cls, cfg, vocab_size, output_mask):
            return cls()

    with pytest.raises(TypeError, match="has no 'name'"):
        register(Nameless)
    Nameless.name = "guided_unet"
    with pytest.raises(ValueError, match="taken by GuidedIterativeGraphUNet"):
        register(Nameless)
    Nameless.name, Nameless.variant = "other", "five"
    with pytest.raises(TypeError, match="must be a FeatureVariant"):
        register(Nameless)


def test_build_model_reads_the_config(vocab):
    cfg = load_config("3d", ["model.hidden=16", "model.gat_heads=2", "model.attention_heads=2",
                             "model.depth=1"])
    model = build_model(cfg, vocab)
    assert isinstance(model, GuidedIterativeGraphUNet) and model.hidden == 16
