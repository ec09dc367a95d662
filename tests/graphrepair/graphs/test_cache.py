"""graphrepair.graphs.cache: hits give identical arrays, a new vocabulary misses, damage is rebuilt."""

import dataclasses
import logging

import numpy as np
import torch

from graphrepair.config import load_config
from graphrepair.data.dataset import prepare
from graphrepair.features.encoding import EncodedProgram
from graphrepair.graphs.cache import CACHE_ENV, GraphCache, code_version, default_cache_dir
from graphrepair.graphs.graph import ProgramGraph
from graphrepair.graphs.vocab import Vocabulary
from tests.graphrepair.conftest import data_dir

ELIGIBLE = ["identifier", "operator", "keyword", "literal"]


def _problems(mbpp, n=40):
    return [mbpp[f"mbpp/{i}"] for i in range(2, 2 + n)]


def _splits(probs, graphs):
    pairs = list(zip(probs, graphs))
    return {"train": pairs[:30], "test": pairs[30:]}


def assert_same_encoded(a: EncodedProgram, b: EncodedProgram) -> None:
    assert a.problem == b.problem and a.graph == b.graph and a.orig_texts == b.orig_texts
    for f in dataclasses.fields(EncodedProgram):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), f.name
        elif isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and torch.equal(x, y), f.name


def test_second_load_hits_with_identical_arrays(tmp_path, mbpp):
    probs = _problems(mbpp)
    sources = [p.source for p in probs]
    first = GraphCache(tmp_path)
    graphs = first.graphs(sources)
    assert (first.hits, first.misses) == (0, 1)
    assert graphs == [ProgramGraph.from_source(s) for s in sources]
    vocab = Vocabulary.build(g for _, g in _splits(probs, graphs)["train"])
    built = first.encoded(_splits(probs, graphs), vocab, ELIGIBLE)

    second = GraphCache(tmp_path)
    graphs2 = second.graphs(sources)
    assert graphs2 == graphs and graphs2 is not graphs
    cached = second.encoded(_splits(probs, graphs2), vocab, ELIGIBLE)
    assert (second.hits, second.misses, second.rebuilt) == (2, 0, 0)
    for name in ("train", "test"):
        assert len(cached[name]) == len(built[name])
        for a, b in zip(cached[name], built[name], strict=True):
            assert_same_encoded(a, b)
            assert_same_encoded(a, EncodedProgram.build(b.problem, b.graph, vocab, ELIGIBLE))
    assert len(list(tmp_path.iterdir())) == 2 and "hits=2" in repr(second)


def test_changed_vocabulary_or_sources_miss(tmp_path, mbpp):
    probs = _problems(mbpp)
    cache = GraphCache(tmp_path)
    graphs = cache.graphs([p.source for p in probs])
    splits = _splits(probs, graphs)
    vocab = Vocabulary.build(g for _, g in splits["train"])
    cache.encoded(splits, vocab, ELIGIBLE)
    smaller = Vocabulary.build((g for _, g in splits["train"]), min_freq=2)
    cache.encoded(splits, smaller, ELIGIBLE)  # another vocabulary: a miss
    cache.encoded(splits, vocab, ["identifier"])  # other eligible categories: a miss
    cache.encoded(splits, vocab, ELIGIBLE)  # the first again: a hit
    assert (cache.hits, cache.misses) == (1, 4)
    cache.graphs([p.source for p in probs[:-1]])  # other sources: a miss
    assert cache.misses == 5
    assert len(code_version()) == 64


def test_damaged_files_are_rebuilt_with_a_warning(tmp_path, mbpp, caplog):
    sources = [p.source for p in _problems(mbpp)]
    expected = GraphCache(tmp_path).graphs(sources)
    (path,) = tmp_path.iterdir()
    good = path.read_bytes()
    for damage in (good[: len(good) // 2], b"not a cache file", good[:-1] + bytes([good[-1] ^ 1])):
        path.write_bytes(damage)
        cache = GraphCache(tmp_path)
        with caplog.at_level(logging.WARNING, logger="graphrepair.graphs.cache"):
            caplog.clear()
            assert cache.graphs(sources) == expected
        assert (cache.hits, cache.misses, cache.rebuilt) == (0, 1, 1)
        assert any(str(path) in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)
        assert path.read_bytes() == good  # rewritten, and the next load hits
        again = GraphCache(tmp_path)
        again.graphs(sources)
        assert again.hits == 1


def test_disabled_cache_and_environment(tmp_path, monkeypatch, mbpp):
    for off in ("off", "0", ""):
        monkeypatch.setenv(CACHE_ENV, off)
        assert default_cache_dir() is None and GraphCache.default().directory is None
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    disabled = GraphCache(None)
    disabled.graphs([p.source for p in _problems(mbpp, 3)])
    assert (disabled.hits, disabled.misses) == (0, 0) and not (tmp_path / "c").exists()


def test_prepare_reuses_the_cache(tmp_path):
    cfg = load_config("3d", [f"data.data_dir={data_dir()}"])
    first_cache, second_cache = GraphCache(tmp_path), GraphCache(tmp_path)
    first = prepare(cfg, graph_cache=first_cache)
    second = prepare(cfg, graph_cache=second_cache)
    assert (first_cache.misses, second_cache.hits, second_cache.misses) == (2, 2, 0)
    assert second.summary() == first.summary() and second.vocab == first.vocab
    for name in first.splits:
        for a, b in zip(first.splits[name], second.splits[name], strict=True):
            assert_same_encoded(a, b)
    # A checkpoint's (here: smaller) vocabulary misses the encoded entry but reuses the graphs.
    third_cache = GraphCache(tmp_path)
    small = Vocabulary(first.vocab.node_types, first.vocab.leaf_texts[:50])
    third = prepare(cfg, vocab=small, graph_cache=third_cache)
    assert (third_cache.hits, third_cache.misses) == (1, 1)
    assert third.oov_rate["train"] > first.oov_rate["train"]
    # Another near-duplicate threshold removes other val/test programs: the encoded entry is keyed
    # by every split's task ids, so it misses (the graphs are the same and hit).
    fourth_cache = GraphCache(tmp_path)
    strict = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, near_duplicate_similarity=None))
    fourth = prepare(strict, graph_cache=fourth_cache)
    assert (fourth_cache.hits, fourth_cache.misses) == (1, 1)
    assert len(fourth.splits["test"]) > len(first.splits["test"])
    assert [e.problem.task_id for e in fourth.splits["train"]] == [e.problem.task_id for e in first.splits["train"]]
