"""Exact ranks, metrics, baselines and the table of jepa.retrieval, on inputs with known answers."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.report import Estimate, markdown_table
from jepa.retrieval import (
    RetrievalResult,
    bm25_ranks,
    centre_and_normalise,
    code_tokens,
    evaluate_embeddings,
    exact_ranks,
    expected_random_metrics,
    random_baseline,
    rank_metrics,
    retrieval_table,
)


def _brute_ranks(q, c, targets):
    """Reference: every score in float64, 1 + #higher + 0.5 * #equal (target excluded)."""
    s = q.double() @ c.double().T  # [Q, N]
    true = s[torch.arange(len(q)), targets][:, None]
    return 1 + (s > true).sum(1) + 0.5 * ((s == true).sum(1) - 1)


# small integers: every product and sum is exact, so ties are ties in any arithmetic
CORPUS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [2.0, 0.0], [-1.0, 0.0]])
QUERIES = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
TARGETS = torch.tensor([0, 1, 1, 4, 0])
# scores of each query against rows 0..4, by hand:
#   [1, 0]  -> 1, 0, 1, 2, -1  true 1: row 3 higher, row 2 ties         -> 1 + 1 + 0.5 = 2.5
#   [0, 1]  -> 0, 1, 0, 0, 0   true 1: none higher                      -> 1
#   [1, 1]  -> 1, 1, 1, 2, -1  true 1: row 3 higher, rows 0 and 2 tie   -> 1 + 1 + 1 = 3
#   [-1, 0] -> -1, 0, -1, -2, 1 true 1: none higher                     -> 1
#   [0, -1] -> 0, -1, 0, 0, 0  true 0: rows 2, 3, 4 tie (row 0 itself not) -> 1 + 1.5 = 2.5
HAND_RANKS = [2.5, 1.0, 3.0, 1.0, 2.5]


@pytest.mark.parametrize("chunk,tile", [(512, None), (2, 2), (1, 1), (3, 4), (5, 5)])
def test_hand_computed_ranks_with_ties(chunk, tile):
    ranks = exact_ranks(QUERIES, CORPUS, TARGETS, chunk=chunk, tile=tile)
    assert ranks.dtype == torch.float64 and ranks.shape == (5,)
    assert ranks.tolist() == HAND_RANKS


def test_a_corpus_of_one_ranks_first():
    assert exact_ranks(torch.ones(3, 4), torch.ones(1, 4), torch.zeros(3, dtype=torch.long)).tolist() \
        == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("chunk,tile", [(5, 7), (16, 64), (37, None), (100, 300), (8, 301)])
def test_ranks_equal_brute_force_on_random_data(chunk, tile):
    gen = torch.Generator().manual_seed(0)
    c = centre_and_normalise(torch.randn(301, 24, generator=gen), None)
    c[150] = c[7]  # duplicates of targets, in other tiles (and in the overlap of the last tile)
    c[299] = c[7]
    c[298] = c[40]
    targets = torch.cat([torch.tensor([7, 150, 299, 40, 298]), torch.randint(0, 301, (32,), generator=gen)])
    q = centre_and_normalise(c[targets] + 0.7 * torch.randn(37, 24, generator=gen), None)
    q[0] = c[7]  # a query equal to its true row: rank 1 + 0.5 * 2 duplicates = 2
    ranks = exact_ranks(q, c, targets, chunk=chunk, tile=tile)
    assert torch.equal(ranks, _brute_ranks(q, c, targets))
    assert ranks[0] == 2.0
    assert (ranks > 1).any() and (ranks < 301).all()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 40), q=st.integers(1, 12), chunk=st.integers(1, 13),
       tile=st.integers(1, 45))
def test_ranks_are_invariant_to_the_order_of_the_corpus(seed, n, q, chunk, tile):
    gen = torch.Generator().manual_seed(seed)
    c = torch.randint(-2, 3, (n, 3), generator=gen).float()  # small integers: many exact ties
    queries = torch.randint(-2, 3, (q, 3), generator=gen).float()
    targets = torch.randint(0, n, (q,), generator=gen)
    perm = torch.randperm(n, generator=gen)
    inverse = torch.argsort(perm)
    ranks = exact_ranks(queries, c, targets, chunk=chunk, tile=tile)
    assert torch.equal(ranks, _brute_ranks(queries, c, targets))
    assert torch.equal(ranks, exact_ranks(queries, c[perm], inverse[targets], chunk=chunk, tile=tile))
    assert ((ranks >= 1) & (ranks <= n)).all() and torch.equal(ranks * 2, (ranks * 2).round())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_ranks_on_cuda_equal_cpu():
    gen = torch.Generator().manual_seed(0)
    c = centre_and_normalise(torch.randn(5000, 64, generator=gen), None)
    targets = torch.randint(0, 5000, (300,), generator=gen)
    q = centre_and_normalise(c[targets] + torch.randn(300, 64, generator=gen), None)
    assert torch.equal(exact_ranks(q, c, targets, device="cuda"), _brute_ranks(q, c, targets))


def test_centring_changes_cosines_as_expected():
    gen = torch.Generator().manual_seed(1)
    offset = 50 * torch.randn(16, generator=gen)  # a common offset: every raw cosine is near 1
    base_c = torch.randn(40, 16, generator=gen)
    base_q = base_c[:10] + 0.5 * torch.randn(10, 16, generator=gen)
    targets = torch.arange(10)
    raw = evaluate_embeddings(base_q + offset, base_c + offset, targets, mean=None)
    centred = evaluate_embeddings(base_q + offset, base_c + offset, targets, mean=offset)
    plain = evaluate_embeddings(base_q, base_c, targets, mean=None)
    assert raw.cosine.min() > 0.99  # the cone: cosine cannot tell functions apart
    assert torch.allclose(centred.cosine, plain.cosine, atol=1e-5)  # centring removes the offset
    expected = torch.nn.functional.cosine_similarity(base_q.double(), base_c[:10].double())
    assert torch.allclose(centred.cosine, expected, atol=1e-5)
    assert torch.equal(centred.ranks, plain.ranks)
    assert centred.cosine.max() < 0.99 and centred.cosine.mean() < raw.cosine.mean() - 0.1
    x = centre_and_normalise(base_c + offset, offset)
    assert x.dtype == torch.float32
    assert torch.allclose(x.norm(dim=1), torch.ones(40), atol=1e-6)
    assert torch.allclose(x, torch.nn.functional.normalize(base_c, dim=1), atol=1e-4)


def test_evaluate_embeddings_accepts_predictions_that_require_grad():
    pred = torch.randn(4, 8, requires_grad=True)
    result = evaluate_embeddings(pred * 2, torch.randn(20, 8), torch.tensor([0, 5, 9, 19]),
                                 mean=torch.zeros(8))
    assert (result.n_queries, result.n_corpus) == (4, 20)
    assert result.ranks.shape == result.cosine.shape == (4,)


def test_bad_inputs_say_what_was_found():
    c, q = torch.randn(10, 4), torch.randn(3, 4)
    with pytest.raises(ValueError, match="same width D"):
        exact_ranks(q, torch.randn(10, 5), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"0\.\.9: 1 do not"):
        exact_ranks(q, c, torch.tensor([0, 1, 10]))
    with pytest.raises(ValueError, match="one corpus row per query"):
        exact_ranks(q, c, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="integer row indices"):
        exact_ranks(q, c, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="2-D tensor"):
        exact_ranks(q[0], c, torch.tensor([0]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        exact_ranks(q, torch.cat([c[:9], torch.full((1, 4), math.nan)]), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="chunk and tile"):
        exact_ranks(q, c, torch.tensor([0, 1, 2]), chunk=0)
    with pytest.raises(ValueError, match=r"shape \[D\] = \[4\]"):
        centre_and_normalise(c, torch.zeros(5))
    with pytest.raises(ValueError, match="zero after centring"):
        centre_and_normalise(c, c[3])
    with pytest.raises(ValueError, match="same width D"):
        evaluate_embeddings(q, torch.randn(10, 5), torch.tensor([0, 1, 2]), mean=None)


def test_rank_metrics_from_known_ranks():
    ranks = torch.tensor([1.0, 1.5, 2.0, 5.0, 11.0])
    m = rank_metrics(ranks)
    assert m["rank@1"] == pytest.approx(1 / 5)  # 1.5 (a tie for first) is not a hit at 1
    assert m["rank@5"] == pytest.approx(4 / 5) and m["rank@10"] == pytest.approx(4 / 5)
    assert m["mrr"] == pytest.approx((1 + 1 / 1.5 + 1 / 2 + 1 / 5 + 1 / 11) / 5)
    assert m["mean_rank"] == pytest.approx(20.5 / 5) and m["median_rank"] == 2.0
    assert rank_metrics([3.0, 4.0], ks=(3,)) == {"rank@3": 0.5, "mrr": pytest.approx(7 / 24),
                                                 "mean_rank": 3.5, "median_rank": 3.5}
    with pytest.raises(ValueError, match=">= 1"):
        rank_metrics([0.5, 2.0])
    with pytest.raises(ValueError, match="no queries"):
        rank_metrics([])


def test_random_baseline_is_near_its_expectation():
    n = 50
    expected = expected_random_metrics(n)
    assert expected["rank@1"] == 1 / n and expected["rank@10"] == 10 / n
    assert expected["mrr"] == pytest.approx(sum(1 / r for r in range(1, n + 1)) / n)
    assert expected_random_metrics(4, ks=(1, 10)) == {"rank@1": 0.25, "rank@10": 1.0,
                                                      "mrr": pytest.approx(25 / 48),
                                                      "mean_rank": 2.5, "median_rank": 2.5}
    result = random_baseline(20_000, n, seed=3)
    assert result.ranks.min() >= 1 and result.ranks.max() <= n and result.cosine.isnan().all()
    m = result.metrics()
    for key in ("rank@1", "rank@5", "rank@10"):
        p = expected[key]
        assert abs(m[key] - p) < 5 * math.sqrt(p * (1 - p) / 20_000), key
    assert m["mrr"] == pytest.approx(expected["mrr"], abs=0.01)
    assert m["mean_rank"] == pytest.approx(25.5, abs=0.5) and math.isnan(m["cosine"])
    assert torch.equal(random_baseline(100, n, seed=3).ranks, random_baseline(100, n, seed=3).ranks)


def test_estimates_are_bootstrap_intervals_over_queries():
    gen = torch.Generator().manual_seed(2)
    c = torch.randn(200, 16, generator=gen)
    targets = torch.arange(100)
    result = evaluate_embeddings(c[:100] + 1.5 * torch.randn(100, 16, generator=gen), c, targets,
                                 mean=c.mean(0))
    est = result.estimates(n_resamples=300)
    m = result.metrics()
    assert set(est) == {"rank@1", "rank@5", "rank@10", "mrr", "cosine"}
    for key, e in est.items():
        assert isinstance(e, Estimate) and e.low <= e.value <= e.high, key
        assert e.value == pytest.approx(m[key])
    assert est == result.estimates(n_resamples=300)  # seeded: the same intervals again
    assert math.isnan(random_baseline(50, 10).estimates(n_resamples=100)["cosine"].value)


# Real functions (CPython's Lib/shlex.py, Lib/bisect.py, Lib/textwrap.py, Lib/heapq.py), split into
# signature and body as jepa.corpus does.
SIGNATURES = [
    'def quote(s):\n    """Return a shell-escaped version of the string *s*."""',
    "def insort_right(a, x, lo=0, hi=None, *, key=None):",
    "def indent(text, prefix, predicate=None):",
    "def heappushpop(heap, item):",
]
BODIES = [
    "    if not s:\n        return \"''\"\n    if _find_unsafe(s) is None:\n        return s\n"
    "    return \"'\" + s.replace(\"'\", \"'\\\"'\\\"'\") + \"'\"",
    "    if key is None:\n        lo = bisect_right(a, x, lo, hi)\n    else:\n"
    "        lo = bisect_right(a, key(x), lo, hi, key=key)\n    a.insert(lo, x)",
    "    prefixed_lines = []\n    if predicate is None:\n        predicate = str.strip\n"
    "    for line in text.splitlines(True):\n        if predicate(line):\n"
    "            prefixed_lines.append(prefix)\n        prefixed_lines.append(line)\n"
    "    return ''.join(prefixed_lines)",
    "    if heap and heap[0] < item:\n        item, heap[0] = heap[0], item\n"
    "        _siftup(heap, 0)\n    return item",
]


def test_code_tokens_split_camel_and_snake_case():
    assert code_tokens("def getHTTPResponse(max_len=10):") == ["def", "get", "http", "response",
                                                              "max", "len", "10"]
    assert code_tokens("XMLHttpRequest2 self.fooBar(x_1)") == ["xml", "http", "request2", "self",
                                                              "foo", "bar", "x", "1"]
    assert code_tokens("__init__ größe_Wert") == ["init", "größe", "wert"]
    assert code_tokens("  ( ) ") == []


def test_bm25_ranks_a_body_sharing_rare_identifiers_first():
    result = bm25_ranks(SIGNATURES, BODIES, torch.arange(4), chunk=3)
    assert result.ranks.tolist() == [1.0, 1.0, 1.0, 1.0]
    assert result.cosine.isnan().all() and (result.n_queries, result.n_corpus) == (4, 4)
    # a query with no token of the corpus ties every body: (N + 1) / 2
    assert bm25_ranks(["def zzz():"], BODIES, torch.tensor([2])).ranks.tolist() == [2.5]


def test_bm25_ranks_match_bm25s_scores():
    import bm25s

    queries = SIGNATURES + ["def f(heap, prefix):", "lo hi lo"]
    targets = torch.tensor([0, 1, 2, 3, 3, 1])
    index = bm25s.BM25()
    index.index([code_tokens(b) for b in BODIES], show_progress=False)
    expected = []
    for text, t in zip(queries, targets.tolist()):
        ids = [index.vocab_dict[w] for w in code_tokens(text) if w in index.vocab_dict]
        s = index.get_scores(ids) if ids else np.zeros(len(BODIES), dtype=np.float32)
        expected.append(1 + (s > s[t]).sum() + 0.5 * ((s == s[t]).sum() - 1))
    assert bm25_ranks(queries, BODIES, targets, chunk=4).ranks.tolist() == expected


def test_retrieval_table_renders():
    gen = torch.Generator().manual_seed(4)
    c = torch.randn(60, 8, generator=gen)
    rows = {"student": evaluate_embeddings(c[:30] + 0.5 * torch.randn(30, 8, generator=gen), c,
                                           torch.arange(30), mean=c.mean(0)),
            "BM25": bm25_ranks(SIGNATURES, BODIES, torch.arange(4)),
            "random": random_baseline(30, 60)}
    table = retrieval_table(rows, title="Test: 30 queries", caption="Exact ranks.", n_resamples=200)
    assert table.columns == ["method", "queries", "Rank@1", "Rank@5", "Rank@10", "MRR", "cosine"]
    md = markdown_table(table)
    assert md.startswith("### Test: 30 queries")
    assert "| method | queries | Rank@1 | Rank@5 | Rank@10 | MRR | cosine |" in md
    lines = {line.split(" | ")[0].strip("| "): line for line in md.splitlines() if line.startswith("| ")}
    assert "% [" in lines["student"] and lines["BM25"].endswith("| n/a |")
    assert lines["random"].split(" | ")[1] == "30"
    assert "Intervals: 95% CI [low, high], bootstrap over n=4/30 queries (percentile, 200 resamples, " \
           "seed 0)." in md
    assert md.rstrip().endswith("Exact ranks.")
    with pytest.raises(ValueError, match="at least one method"):
        retrieval_table({}, title="t", caption="c")
    assert isinstance(rows["random"], RetrievalResult)
