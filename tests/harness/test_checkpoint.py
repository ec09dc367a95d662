"""harness.checkpoint: a SHA-256 beside every checkpoint, verified loads, weights that must fit."""

import hashlib
import logging

import pytest
import torch

from harness.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    digest_path,
    load_checkpoint,
    load_model,
    load_weights,
    save_checkpoint,
)


def _state(model):
    return {"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "config": {},
            "extra": {"width": 4}}


def test_save_writes_the_digest_and_load_verifies_it(tmp_path):
    model = torch.nn.Linear(4, 2)
    path = save_checkpoint(tmp_path / "best.pt", _state(model))
    digest = digest_path(path).read_text()
    assert digest == f"{hashlib.sha256(path.read_bytes()).hexdigest()}  best.pt\n"  # sha256sum -c format
    assert torch.equal(load_checkpoint(path)["model"]["weight"], model.weight)


def test_flipped_bytes_are_an_error_naming_the_file(tmp_path):
    path = save_checkpoint(tmp_path / "best.pt", _state(torch.nn.Linear(4, 2)))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a byte in the middle of the weights: still unpickles
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"checkpoint {path} is damaged: its SHA-256"):
        load_checkpoint(path)


def test_a_checkpoint_without_digest_loads_with_a_warning(tmp_path, caplog):
    path = save_checkpoint(tmp_path / "best.pt", _state(torch.nn.Linear(4, 2)))
    digest_path(path).unlink()
    with caplog.at_level(logging.WARNING):
        assert load_checkpoint(path)["format"] == CHECKPOINT_FORMAT
    assert "unverified" in caplog.text


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "x.pt")
    torch.save({"something": 1}, tmp_path / "y.pt")
    with pytest.raises(CheckpointError, match="not a trainer checkpoint"):
        load_checkpoint(tmp_path / "y.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_weights_of_another_model_are_named(tmp_path):
    with pytest.raises(CheckpointError, match=r"do not fit Linear: .*weight: checkpoint \(2, 4\) vs model \(3, 4\)"):
        load_weights(torch.nn.Linear(4, 3), torch.nn.Linear(4, 2).state_dict(), "src.pt")
    with pytest.raises(CheckpointError, match="tensors missing"):
        load_weights(torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Linear(2, 2)),
                     {"0.weight": torch.zeros(2, 4), "0.bias": torch.zeros(2)}, "src.pt")


def test_load_model_returns_config_extra_and_model_in_eval_mode(tmp_path):
    from dataclasses import dataclass

    @dataclass
    class Cfg:
        width: int = 2

    model = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Dropout(0.5))
    state = {**_state(model), "config": {"width": 2}}
    path = save_checkpoint(tmp_path / "best.pt", state)
    loaded = load_model(path, Cfg, lambda cfg, extra: torch.nn.Sequential(
        torch.nn.Linear(extra["width"], cfg.width), torch.nn.Dropout(0.5)))
    assert loaded.config == Cfg(2) and loaded.extra == {"width": 4}
    assert not loaded.model.training
    assert torch.equal(loaded.model[0].weight, model[0].weight)
    bad = save_checkpoint(tmp_path / "bad.pt", {**state, "config": {"depth": 3}})
    with pytest.raises(CheckpointError, match="not valid for this version"):
        load_model(bad, Cfg, lambda cfg, extra: model)
