"""jepa.store.states: round trips, content addresses, and errors that name the file and the fix."""

from __future__ import annotations

import sqlite3

import pytest
import torch

from jepa.store import StateSpec, StateStore, StoreError, function_key
from jepa.teacher.model import States

D = 8


def _spec(**kw):
    base = dict(model="tiny", weights="abc", layer=2, kind="bidirectional", compute_dtype="float32",
                max_signature_tokens=16, max_body_tokens=32)
    return StateSpec(**{**base, **kw})


def _states(n, seed, tokens=False):
    g = torch.Generator().manual_seed(seed)
    sl = torch.randint(1, 5, (n,), generator=g)
    bl = torch.randint(1, 7, (n,), generator=g)
    return States(signature=torch.randn(n, D, generator=g), body=torch.randn(n, D, generator=g),
                  signature_length=sl, body_length=bl,
                  signature_tokens=[torch.randn(int(t), D, generator=g) for t in sl] if tokens else None,
                  body_tokens=[torch.randn(int(t), D, generator=g) for t in bl] if tokens else None)


def _keys(prefix, n):
    return [function_key(f"def {prefix}{i}():", f"\n    return {i}") for i in range(n)]


def test_round_trip_across_shards_in_any_order(tmp_path):
    store = StateStore.open(tmp_path, _spec(tokens="all"))
    ka, kb = _keys("a", 5), _keys("b", 3)
    sa, sb = _states(5, 0, tokens=True), _states(3, 1, tokens=True)
    store.write_shard(ka, sa)
    store.write_shard(kb, sb)
    assert len(store) == 8 and store.num_shards() == 2 and store.missing(ka + ["x"]) == ["x"]
    order = [kb[2], ka[0], ka[4], kb[0]]
    got = store.read(order, tokens=True)
    expect_sig = torch.stack([sb.signature[2], sa.signature[0], sa.signature[4], sb.signature[0]])
    assert torch.equal(got["signature"], expect_sig)
    assert got["body_length"].tolist() == [int(sb.body_length[2]), int(sa.body_length[0]),
                                           int(sa.body_length[4]), int(sb.body_length[0])]
    torch.testing.assert_close(got["body_tokens"][1], sa.body_tokens[0].to(torch.bfloat16))
    assert got["signature_tokens"][0].dtype == torch.bfloat16


def test_pooled_only_store_refuses_token_reads_and_needs_no_tokens(tmp_path):
    store = StateStore.open(tmp_path, _spec())
    store.write_shard(_keys("a", 2), _states(2, 0))
    with pytest.raises(ValueError, match=r"per-token states of \[\] only"):
        store.read(_keys("a", 2), tokens=True)
    with pytest.raises(ValueError, match="2 keys but states of 3"):
        store.write_shard(_keys("a", 2), _states(3, 0))


def test_the_shard_name_is_a_content_address(tmp_path):
    a = StateStore.open(tmp_path / "a", _spec())
    b = StateStore.open(tmp_path / "b", _spec())
    keys = _keys("a", 4)
    assert a.write_shard(keys, _states(4, 0)) == b.write_shard(keys, _states(4, 0))
    assert a.shard_name(keys) != a.shard_name(keys[::-1])
    assert StateStore.open(tmp_path / "c", _spec(layer=3)).shard_name(keys) != a.shard_name(keys)
    assert _spec().dirname.startswith("tiny-layer2-") and _spec().dirname != _spec(layer=3).dirname


def test_a_missing_function_names_the_store_and_the_command(tmp_path):
    store = StateStore.open(tmp_path, _spec(), rebuild="python -m jepa.prepare --exp phase0")
    with pytest.raises(StoreError, match=r"1 of 1 functions have no teacher states.*"
                                         r"`python -m jepa\.prepare --exp phase0`"):
        store.read(_keys("a", 1))


def test_a_truncated_or_altered_shard_is_an_error_and_is_recomputed_after_drop(tmp_path):
    store = StateStore.open(tmp_path, _spec(), rebuild="python -m jepa.prepare --exp phase0")
    keys = _keys("a", 4)
    path = store.shard_path(store.write_shard(keys, _states(4, 0)))
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(StoreError) as err:
        store.read(keys)
    assert str(path) in str(err.value) and "truncated" in str(err.value)
    assert "python -m jepa.prepare --exp phase0" in str(err.value)
    flipped = bytearray(blob)
    flipped[-1] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(StoreError, match="SHA-256"):
        store.read(keys)
    assert store.drop_damaged() == [str(path)]
    assert store.missing(keys) == keys and store.num_shards() == 0
    store.write_shard(keys, _states(4, 0))
    assert torch.equal(store.read(keys)["body"], _states(4, 0).body)


def test_a_corrupt_or_foreign_index_is_refused(tmp_path):
    spec = _spec()
    StateStore.open(tmp_path, spec).close()
    index = tmp_path / spec.dirname / "index.sqlite"
    with sqlite3.connect(index) as db:
        db.execute("UPDATE meta SET value = '{}' WHERE key = 'spec'")
    with pytest.raises(StoreError, match="written for format 1 and spec {}"):
        StateStore.open(tmp_path, spec)
    index.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError) as err:
        StateStore.open(tmp_path, spec)
    assert str(index) in str(err.value) and "--force" in str(err.value)


def test_opening_without_create_names_the_command_that_computes_the_states(tmp_path):
    with pytest.raises(StoreError, match="compute them with `python -m jepa.prepare --exp X`"):
        StateStore.open(tmp_path, _spec(), create=False, rebuild="python -m jepa.prepare --exp X --force")
    assert not (tmp_path / _spec().dirname).exists()


def test_a_signature_only_store_keeps_signature_tokens_and_refuses_body_tokens(tmp_path):
    store = StateStore.open(tmp_path, _spec(tokens="signature"))
    keys, states = _keys("a", 3), _states(3, 0, tokens=True)
    store.write_shard(keys, states)
    got = store.read(keys, tokens=True)
    assert set(got) == {"signature", "body", "signature_length", "body_length", "signature_tokens"}
    torch.testing.assert_close(got["signature_tokens"][2], states.signature_tokens[2].to(torch.bfloat16))
    with pytest.raises(ValueError, match=r"not \['body'\]"):
        store.read(keys, tokens=["body"])
    # none/all keep the directory names state sets had before the signature mode existed
    assert '"tokens":false' in _spec().canonical() and '"tokens":true' in _spec(tokens="all").canonical()
    with pytest.raises(ValueError, match="tokens must be one of"):
        _spec(tokens="bodies")
