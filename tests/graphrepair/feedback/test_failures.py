"""Tests for graphrepair.feedback.failures: real sandbox messages read on the caller's side."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from graphrepair.data.evalplus import CHECK_SOURCE
from graphrepair.feedback.failures import (
    EXCEPTION_TYPES,
    MAX_REPR_CHARS,
    MAX_TYPE_CHARS,
    VALUE_TYPES,
    Failure,
    expected_from_test,
    parse_failure,
    result_failures,
)
from harness.results import OUTCOMES
from harness.sandbox import run_tests

PROGRAM = """import math

def f(x):
    y = x + 1
    return undefined_name + y

def g(x):
    return [1, 2][x]

def h(n):
    return h(n + 1)

def spin():
    while True:
        pass

def k(x):
    return x * 2

def u(x):
    if x:
        z = 1
    return z

def chained():
    try:
        return 1 / 0
    except ZeroDivisionError:
        return missing
"""

#: (test, exception, raising line, expected type, expected repr)
CASES = [
    ("assert f(1) == 3", "NameError", 5, None, None),
    ("assert g(5) == 1", "IndexError", 8, None, None),
    ("assert h(0) == 1", "RecursionError", 10, None, None),  # CPython raises it at the `def`
    ("assert k(2) == (5, 'a')", "AssertionError", None, "tuple", "(5, 'a')"),  # in test code
    ("assert k(None) == 1", "TypeError", 18, "int", None),
    ("assert u(0) == 1", "NameError", 23, None, None),  # UnboundLocalError
    ("assert chained() == 1", "NameError", 29, None, None),  # the final exception of the chain
    ("{}['x']", "KeyError", None, None, None),
    ("import json; json.loads('{')", "other", None, None, None),  # json.decoder.JSONDecodeError
    ("raise StopIteration", "other", None, None, None),
    ("assert k(2) == 5, 'custom text'", "AssertionError", None, "int", "5"),
    ("import os; os._exit(3)", "crashed", None, None, None),
    ("spin()", "timeout", None, None, None),
]


@pytest.fixture(scope="module")
def failures():
    tests = [c[0] for c in CASES]
    result = run_tests(PROGRAM, tests, timeout_s=1.0)
    return result, result_failures(result, tests, num_lines=PROGRAM.count("\n") + 1)


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c[0] for c in CASES])
def test_real_messages_give_type_line_and_expected_value(failures, i):
    result, found = failures
    _, exception, line, expected_type, expected = CASES[i]
    got = found[i]
    assert (got.exception, got.line) == (exception, line), result.tests[i].message
    if expected_type is not None and exception != "TypeError":
        assert (got.expected_type, got.expected) == (expected_type, expected)
        assert got.actual_type is None and got.actual is None  # MBPP's message holds no value
    if exception in ("timeout", "crashed"):
        assert got == Failure(exception)
    if exception == "TypeError":  # raised in the program: no value is read, even from the test
        assert got.expected_type is None


def test_passed_test_is_none():
    result = run_tests("def k(x):\n    return x\n", ["assert k(1) == 1"], timeout_s=2)
    assert result_failures(result) == [Failure()]
    assert Failure().exception_id == 0 and Failure().actual_type_id == 0


def test_evalplus_comparison_gives_actual_and_expected_types_and_reprs():
    setup = f"_EVALPLUS_MODE = ''\n_EVALPLUS_ATOL = 0\n{CHECK_SOURCE}"
    program = "def halve(x):\n    return x // 2\n"
    tests = ["_evalplus_check(halve, (3,), 1.5)", "_evalplus_check(halve, ('ab',), [1])"]
    result = run_tests(program, tests, setup, timeout_s=2)
    first, second = result_failures(result, tests, num_lines=2)
    assert first == Failure("AssertionError", None, "int", "1", "float", "1.5")
    assert (first.actual_type_id, first.expected_type_id) == (VALUE_TYPES.index("int"),
                                                              VALUE_TYPES.index("float"))
    # 'ab' // 2 raises in the program, on line 2: an error, not a comparison
    assert (second.exception, second.line, second.actual_type) == ("TypeError", 2, None)


def test_load_errors_name_their_line_for_every_test():
    syntax = run_tests("def f(x):\n    return x +\n", ["f(1)", "f(2)"], timeout_s=2)
    assert result_failures(syntax, num_lines=3) == [Failure("SyntaxError", 2)] * 2
    missing = run_tests("x = 1\nimport no_such_module\n", ["x"], timeout_s=2)
    assert result_failures(missing) == [Failure("ImportError", 2)]  # ModuleNotFoundError


def test_everything_is_bounded():
    # a comparison text with a 1500-character repr (within the sandbox's 2000) and a program
    # raising on a line the caller says does not exist
    tests = ["raise AssertionError('actual int: ' + '9' * 1500 + '\\nexpected int: 1')",
             "raise AssertionError('actual ' + 'T' * 100 + ': 1\\nexpected int: 1')",
             "assert f() == 1"]
    result = run_tests("def f():\n    return 1 / 0\n", tests, timeout_s=2)
    bounded, long_type, beyond = result_failures(result, tests, num_lines=1)
    assert bounded.actual == "9" * MAX_REPR_CHARS and bounded.expected == "1"
    assert long_type.actual_type is None and len("T" * 100) > MAX_TYPE_CHARS
    assert (beyond.exception, beyond.line) == ("ZeroDivisionError", None)  # line 2 > num_lines
    assert parse_failure("error", result.tests[2].message).line == 2  # without the bound


def test_values_come_only_from_a_comparison_raised_outside_the_program():
    program = "def f():\n    raise AssertionError('actual int: 1\\nexpected int: 2')\n"
    result = run_tests(program, ["f()"], timeout_s=2)
    assert result_failures(result, ["f()"]) == [Failure("AssertionError", 2)]


def test_expected_from_test_reads_literals_only():
    assert expected_from_test("assert f(1) == [1, (2, 'x')]") == ("list", "[1, (2, 'x')]")
    assert expected_from_test("assert f(1)==None") == ("NoneType", "None")
    assert expected_from_test("assert f(1) == g(2)") is None  # not a literal: nothing is run
    assert expected_from_test("assert f(1) != 2") is None
    assert expected_from_test("assert math.isclose(f(1), 2.0)") is None
    assert expected_from_test("f(1)") is None and expected_from_test("assert (") is None
    assert expected_from_test("assert f() == '" + "x" * 20_000 + "'") is None
    assert len(expected_from_test("assert f() == '" + "x" * 1_000 + "'")[1]) == MAX_REPR_CHARS


def test_unknown_outcome_is_rejected():
    with pytest.raises(ValueError, match="outcome must be one of"):
        parse_failure("exploded", "")


@given(st.sampled_from(OUTCOMES), st.text(max_size=3000), st.integers(1, 50))
def test_any_message_parses_into_the_vocabulary_within_bounds(outcome, message, num_lines):
    got = parse_failure(outcome, message, num_lines=num_lines)
    assert got.exception in EXCEPTION_TYPES
    assert got.line is None or 1 <= got.line <= num_lines
    for name in (got.actual_type, got.expected_type):
        assert name is None or len(name) <= MAX_TYPE_CHARS
    for text in (got.actual, got.expected):
        assert text is None or len(text) <= MAX_REPR_CHARS
    assert 0 <= got.actual_type_id < len(VALUE_TYPES)


@given(st.sampled_from(["NameError", "TypeError", "re.error", "Foo", "AssertionError"]),
       st.integers(1, 40), st.text(alphabet=st.characters(blacklist_characters="\n"), max_size=40))
def test_forged_traceback_lines_stay_claims(name, line, text):
    message = (f'Traceback (most recent call last):\n  File "<test_0>", line 1, in <module>\n'
               f'    f()\n  File "program.py", line {line}, in f\n    x\n{name}: {text}')
    got = parse_failure("error", message, num_lines=20)
    assert got.line == (line if line <= 20 else None)
    expected = name if name in ("NameError", "TypeError") else "other"
    assert got.exception == expected
