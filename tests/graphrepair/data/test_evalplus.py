"""EvalPlus suites (graphrepair.data.evalplus): reading the files, values as source text, EvalPlus's
comparison in the sandbox, tests built from reference outputs, and the MBPP-like split."""

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphrepair.data import evalplus
from graphrepair.data.evalplus import (
    CHECK_SOURCE,
    EvalPlusTask,
    build_problems,
    mbpp_argument_types,
    oracle_mode,
    read_tasks,
    reference_outputs,
    task_tests,
    to_source,
)
from graphrepair.data.problems import DataError, Problem, load_mbpp, split_like, split_problems
from harness.sandbox import run_tests
from tests.graphrepair.conftest import data_dir

MBPP_PLUS = Path(data_dir()) / "MbppPlus.jsonl"

# ---------------------------------------------------------------- the files


def test_mbpp_plus_file_reads_with_typed_inputs():
    tasks = {t.task_id: t for t in read_tasks(MBPP_PLUS, "mbpp")}
    assert len(tasks) == 399
    inputs = [len(t.inputs) for t in tasks.values()]
    assert 108 <= sum(inputs) / len(inputs) <= 109 and min(inputs) == 3 and max(inputs) == 150
    two = tasks["Mbpp/2"]
    assert two.entry_point == "similar_elements" and two.n_base == 3
    assert two.inputs[0] == ((3, 4, 5, 6), (5, 7, 4, 10))  # JSON lists back to the tuples it takes
    assert not two.program.lstrip().startswith("'''")  # the program is the solution, not the prompt
    assert len(tasks["Mbpp/793"].inputs) == tasks["Mbpp/793"].n_base  # plus_input stored as {}
    assert sum(t.atol > 0 for t in tasks.values()) == 16


def test_argument_types_of_special_problems():
    assert mbpp_argument_types(124, [1, "(1+2j)"]) == [1.0, 1 + 2j]
    assert mbpp_argument_types(115, [[[1, 2], []]]) == [[{1, 2}, {}]]
    assert mbpp_argument_types(580, [[1, [2, [3]]]]) == [(1, (2, (3,)))]
    assert mbpp_argument_types(722, [{"a": [1, 2]}, 3]) == [{"a": (1, 2)}, 3]
    assert mbpp_argument_types(3, [[1, 2]]) == [[1, 2]]  # no conversion for the others


def test_malformed_records_name_file_and_line(tmp_path):
    good = {"task_id": "Mbpp/3", "prompt": "", "entry_point": "f", "canonical_solution": "",
            "base_input": [[1]], "plus_input": [], "atol": 0}
    for bad, message in (({**good, "base_input": 5}, "lists of argument lists"),
                         ({**good, "atol": -1}, "'atol' should be a number"),
                         ({**good, "task_id": "Mbpp/x"}, "should end in /<number>"),
                         ({**good, "task_id": "Mbpp/2"}, "do not have the shape"),
                         ({k: v for k, v in good.items() if k != "entry_point"}, "missing key")):
        path = tmp_path / "bad.jsonl"
        path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
        with pytest.raises(DataError, match=message) as info:
            read_tasks(path, "mbpp")
        assert f"{path}, line 2" in str(info.value)


# ---------------------------------------------------------------- values as source text

_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
            | st.text(max_size=5) | st.binary(max_size=5)
            | st.complex_numbers(allow_nan=False, allow_infinity=False))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                       | st.tuples(inner) | st.tuples(inner, inner)
                       | st.dictionaries(st.text(max_size=3), inner, max_size=3)
                       | st.frozensets(st.integers(), max_size=3) | st.sets(st.text(max_size=2), max_size=3),
                       max_leaves=10)


@settings(max_examples=200, deadline=None)
@given(_values)
def test_to_source_round_trips(value):
    back = eval(to_source(value))  # noqa: S307
    assert evalplus._same(back, value)


def test_to_source_refuses_other_types():
    with pytest.raises(TypeError, match="cannot write a object"):
        to_source(object())
    assert to_source(float("-inf")) == "float('-inf')" and to_source((1,)) == "(1,)"


# ---------------------------------------------------------------- the comparison


def _check(mode: str, atol: float, out: object, expected: object, args: tuple = ()) -> str | None:
    """Run ``_evalplus_check`` as a test does; the AssertionError's text, or None when it passes."""
    ns: dict = {}
    exec(f"_EVALPLUS_MODE = {mode!r}\n_EVALPLUS_ATOL = {atol!r}\n{CHECK_SOURCE}", ns)  # noqa: S102
    try:
        ns["_evalplus_check"](lambda *a: out, args, expected)
    except AssertionError as exc:
        return str(exc)
    return None


def test_comparison_follows_evalplus():
    assert _check("exact", 0, (4, 5), (4, 5)) is None
    assert "actual list: [4, 5]\nexpected tuple: (4, 5)" == _check("exact", 0, [4, 5], (4, 5))
    assert _check("exact", 0, 0.1 + 0.2, 0.3) is None  # floats: atol 1e-6 even when the file says 0
    assert _check("exact", 0, 0.3001, 0.3) is not None
    assert _check("exact", 1e-4, [1.00005, 2.0], [1.0, 2.0]) is None
    assert _check("exact", 1e-4, (1.00005, 2.0), [1.0, 2.0]) is not None  # the types must agree
    assert _check("exact", 1e-4, [1.0], [1.0, 2.0]) is not None
    assert _check("set", 0, (5, 4), (4, 5)) is None and _check("set", 0, (4,), (4, 5)) is not None
    assert _check("not_none", 0, object(), True) is None and _check("not_none", 0, None, True)
    assert _check("zero_also", 0, 0, 7) is None and _check("zero_also", 0, 1, 7) is not None
    assert _check("any", 0, "whatever", 1) is None
    assert _check("poly_root", 1e-6, 1.0, None, ([-1.0, 1.0],)) is None  # x - 1 = 0 at x = 1
    assert _check("poly_root", 1e-6, 2.0, None, ([-1.0, 1.0],)) is not None
    assert _check("digit_distance", 0, 5, 3, (123, 45)) is None  # 123 vs 045: 1 + 2 + 2
    long = _check("exact", 0, "x" * 1000, "y")
    assert len(long) < 500  # bounded reprs


def test_special_oracles_by_name():
    assert oracle_mode("mbpp", "similar_elements") == "set"
    assert oracle_mode("mbpp", "check_str") == "not_none"
    assert oracle_mode("humaneval", "find_zero") == "poly_root"
    assert oracle_mode("humaneval", "similar_elements") == "exact"
    assert oracle_mode("mbpp", "add") == "exact"


# ---------------------------------------------------------------- tests from reference outputs

TASK = EvalPlusTask(
    task_id="Mbpp/9001", entry_point="halve", n_base=2, atol=0.0, flavour="mbpp",
    program="def halve(x):\n    if x == 7:\n        raise ValueError(x)\n    return x / 2\n",
    inputs=((4,), (7,), (3,), (10**5000,)))


def test_reference_outputs_run_in_a_separate_process():
    outputs = reference_outputs(TASK)
    assert outputs[0] == (True, 2.0) and outputs[2] == (True, 1.5)
    assert outputs[1] == (False, "ValueError")
    assert outputs[3][0] is False  # 10**5000 / 2 overflows a float


def test_tests_are_named_by_input_and_pass_on_the_reference():
    tests, names, setup = task_tests(TASK, [(True, 2.0), (False, "ValueError"), (True, 1.5),
                                            (True, 10**5000)])
    assert names == ["base_0", "plus_0"]  # input 1 failed; input 3's output has too many digits
    assert tests[0] == "_evalplus_check(halve, (4,), 2.0)"
    result = run_tests(TASK.program, tests, setup)
    assert [t.outcome for t in result.tests] == ["passed", "passed"]
    wrong = run_tests(TASK.program.replace("x / 2", "x // 2"), tests, setup)
    assert wrong.tests[1].outcome == "failed"
    assert "actual int: 1\nexpected float: 1.5" in wrong.tests[1].message


def test_build_problems_keeps_what_the_reference_passes_in_the_sandbox():
    flaky = EvalPlusTask(task_id="Mbpp/9002", entry_point="now", n_base=1, atol=0.0,
                         flavour="mbpp", inputs=((),),
                         program="import random\ndef now():\n    return random.random()\n")
    slow = EvalPlusTask(task_id="Mbpp/9003", entry_point="spin", n_base=1, atol=0.0,
                        flavour="mbpp", inputs=((300_000,), (1,)),
                        program="def spin(n):\n    t = 0\n    for i in range(n):\n        t += i\n    return t\n")
    problems, summary = build_problems([TASK, flaky, slow], "mbpp_plus", progress=False)
    assert [p.task_id for p in problems] == ["mbpp_plus/Mbpp/9001", "mbpp_plus/Mbpp/9003"]
    assert summary["problems_without_tests"] == 1 and summary["failed_in_sandbox"] == 1
    halve, spin = problems
    assert halve.test_names == ("base_0", "plus_0") and halve.split_key == "mbpp/9001"
    assert halve.timeout_s == evalplus.TIME_LIMIT_FLOOR_S
    assert spin.timeout_s >= evalplus.TIME_LIMIT_FLOOR_S
    assert summary["inputs"] == 7 and summary["tests"] == 4 and summary["reference_failed"] == 2


def test_real_mbpp_plus_problems_pass_their_own_tests():
    tasks = {t.task_id: t for t in read_tasks(MBPP_PLUS, "mbpp")}
    chosen = [tasks[i] for i in ("Mbpp/2", "Mbpp/82", "Mbpp/124")]  # set oracle, atol, complex args
    problems, summary = build_problems(chosen, "mbpp_plus", progress=False)
    assert len(problems) == 3 and summary["failed_in_sandbox"] == 0
    assert summary["tests"] >= 0.95 * summary["inputs"]
    assert problems[0].test_names[:3] == ("base_0", "base_1", "base_2")


@pytest.mark.parametrize("name, mean", [("HumanEvalPlus.jsonl.gz", (757, 758)),
                                        ("HumanEvalPlus-Mini.jsonl.gz", (16, 17))])
def test_real_humaneval_plus_files_read_and_their_problems_pass_their_own_tests(name, mean):
    tasks = {t.task_id: t for t in read_tasks(Path(data_dir()) / name, "humaneval")}
    assert len(tasks) == 164
    inputs = [len(t.inputs) for t in tasks.values()]
    assert mean[0] <= sum(inputs) / len(inputs) <= mean[1]
    zero = tasks["HumanEval/0"]
    assert zero.entry_point == "has_close_elements" and zero.n_base == 7
    assert zero.program.startswith("from typing import List")  # prompt + canonical solution
    # a float tolerance (HumanEval/2), the special oracle of HumanEval/32 (find_zero), strings
    chosen = [dataclasses.replace(tasks[i], inputs=tasks[i].inputs[:tasks[i].n_base + 5])
              for i in ("HumanEval/2", "HumanEval/32", "HumanEval/16")]  # a few inputs: quick
    problems, summary = build_problems(chosen, "humaneval_plus", progress=False)
    assert [p.task_id for p in problems] == [f"humaneval_plus/HumanEval/{i}" for i in (2, 32, 16)]
    assert summary["failed_in_sandbox"] == 0 and summary["tests"] >= 0.95 * summary["inputs"]
    for p in problems:
        result = run_tests(p.source, p.tests, p.setup, timeout_s=p.timeout_s)
        assert result.all_passed, p.task_id


# ---------------------------------------------------------------- splits


def test_mbpp_plus_falls_in_the_split_of_its_mbpp_original():
    mbpp = split_problems(load_mbpp(data_dir()))
    plus = [Problem(task_id=f"mbpp_plus/Mbpp/{n}", source="", tests=(), split_key=f"mbpp/{n}")
            for n in (2, 3, 4, 11, 12, 14, 16, 17)]
    split = split_like(plus, mbpp)
    where = {p.task_id: name for name, ps in mbpp.items() for p in ps}
    for name, ps in split.items():
        for p in ps:
            assert where[p.split_key] == name
    with pytest.raises(DataError, match="in no split"):
        split_like([Problem(task_id="x", source="", tests=(), split_key="mbpp/99999")], mbpp)
    # without split_like, the split hashes split_key: HumanEval+ falls where HumanEval does
    same = split_problems([Problem(task_id=f"a/{i}", source="", tests=(), split_key=f"k{i}") for i in range(30)])
    again = split_problems([Problem(task_id=f"k{i}", source="", tests=()) for i in range(30)])
    assert [p.split_key for p in same["test"]] == [p.task_id for p in again["test"]]


def test_a_counter_output_is_written_as_the_dict_it_equals():
    from collections import Counter

    assert eval(to_source(Counter("abca"))) == {"a": 2, "b": 1, "c": 1}  # noqa: S307
    assert evalplus._same({"a": 2}, Counter({"a": 2}))
