"""One-line mutants of real MBPP programs: sites per kind, single-token changes, verified failures."""

from __future__ import annotations

import ast
import warnings
from collections import Counter

import pytest

from graphrepair.graphs.graph import ProgramGraph
from graphrepair.repair.mutants import (
    COMPARISON_SWAPS,
    KINDS,
    OPERATOR_SWAPS,
    Mutation,
    apply_mutation,
    make_mutants,
    mutations,
)
from harness.sandbox import run_tests


def sites(source: str) -> dict[str, set[tuple]]:
    return {k: {(m.line, m.original, m.replacement) for m in v}
            for k, v in mutations(source).items()}


def test_sites_of_each_kind_on_mbpp_3(mbpp):
    # import math / def is_not_prime(n): result = False / for i in range(2,int(math.sqrt(n)) + 1):
    #     if n % i == 0: result = True / return result
    s = sites(mbpp["mbpp/3"].source)
    assert s["operator"] == {(4, "+", "-"), (5, "%", "//")}
    assert s["comparison"] == {(5, "==", "!=")}
    assert s["off_by_one"] == {(4, "2", "1"), (4, "2", "3"), (4, "1", "0"), (4, "1", "2"),
                               (5, "0", "1")}
    # locals are n, result, i; `math` (a global) and `sqrt` (an attribute) are never sites
    assert s["wrong_variable"] == {(4, "n", "i"), (4, "n", "result"), (5, "n", "i"),
                                   (5, "n", "result"), (5, "i", "n"), (5, "i", "result"),
                                   (7, "result", "i"), (7, "result", "n")}


def test_comprehension_variables_and_unary_minus_are_not_sites(mbpp):
    # mbpp/413: result = [x[n] for x in list1]; return result. `x` lives in the comprehension.
    s = sites(mbpp["mbpp/413"].source)
    assert s["wrong_variable"] == {(3, "result", "list1"), (3, "result", "n")}
    assert sites("def f(a):\n    return -a * 2\n")["operator"] == {(2, "*", "/"), (2, "*", "+")}


@pytest.mark.parametrize("task", [f"mbpp/{i}" for i in range(2, 60, 3)])
def test_every_mutation_changes_exactly_one_token_and_compiles(mbpp, task):
    source = mbpp[task].source
    ref = ProgramGraph.from_source(source)
    for kind, muts in mutations(source).items():
        for m in muts:
            assert m.kind == kind and m.original != m.replacement
            if kind == "operator":
                assert m.replacement in OPERATOR_SWAPS[m.original]
            if kind == "comparison":
                assert m.replacement in COMPARISON_SWAPS[m.original]
            mutant = apply_mutation(source, m)
            with warnings.catch_warnings():  # MBPP task 44's own invalid escape '\w'
                warnings.simplefilter("ignore", DeprecationWarning)
                compile(mutant, "program.py", "exec")
            g = ProgramGraph.from_source(mutant)
            diff = [i for i, (a, b) in enumerate(zip(ref.leaf_texts, g.leaf_texts)) if a != b]
            assert len(g.leaf_texts) == len(ref.leaf_texts) and diff == [m.leaf]
            assert ref.leaf_lines[m.leaf][0] == m.line


def test_apply_mutation_rejects_a_mutation_of_another_program(mbpp):
    with pytest.raises(ValueError, match="belongs to another program"):
        apply_mutation(mbpp["mbpp/17"].source, Mutation("operator", 0, 1, "+", "-"))


def test_make_mutants_is_seeded_spread_and_every_mutant_really_fails(mbpp):
    pool = [mbpp[f"mbpp/{i}"] for i in range(2, 42)]
    mutants = make_mutants(pool, 8, seed=3, timeout_s=2.0)
    assert Counter(m.kind for m in mutants) == {k: 2 for k in KINDS}
    assert [m.task_id for m in make_mutants(pool, 8, seed=3, timeout_s=2.0)] == \
        [m.task_id for m in mutants]
    assert [m.task_id for m in make_mutants(pool, 8, seed=4, timeout_s=2.0)] != \
        [m.task_id for m in mutants]
    for kind in KINDS:  # at most one mutant per program and kind while programs remain
        refs = [m.reference.task_id for m in mutants if m.kind == kind]
        assert len(set(refs)) == len(refs)
    for m in mutants:
        assert m.source == apply_mutation(m.reference.source, m.mutation)
        assert m.problem().source == m.source and m.problem().tests == m.reference.tests
        ast.parse(m.source)
        result = run_tests(m.source, m.reference.tests, m.reference.setup, timeout_s=2.0)
        assert not result.all_passed
        assert len(result.tests) - result.n_passed == m.failing >= 1


def test_make_mutants_drops_references_that_fail_and_validates_arguments(mbpp):
    broken = mbpp["mbpp/17"]
    broken = type(broken)(broken.task_id, broken.source.replace("4*a", "a*a"), broken.tests)
    assert make_mutants([broken], 4, seed=0, timeout_s=2.0) == []
    with pytest.raises(ValueError, match="kinds"):
        make_mutants([broken], 4, kinds=["typo"])
