"""Tests for harness.results: JSON round trips, errors that name what they found, no worker."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.results import OUTCOMES, ProgramResult, TestResult

REPO = Path(__file__).resolve().parents[2]

# MBPP task 17's verdicts, one failing.
RESULT = ProgramResult(tests=(TestResult("test_0", "passed", "", 0.001, (2, 3)),
                              TestResult("test_1", "failed", "AssertionError", 0.002, (2, 3))),
                       load_outcome="passed", load_message="", load_covered_lines=(1,),
                       stdout_tail="out\udcff", stderr_tail="err")

lines = st.lists(st.integers(1, 10**6), max_size=20).map(lambda xs: tuple(sorted(set(xs))))
test_results = st.builds(TestResult, name=st.text(max_size=20), outcome=st.sampled_from(OUTCOMES),
                         message=st.text(max_size=200),
                         duration_s=st.floats(0, 1e6, allow_nan=False), covered_lines=lines)
program_results = st.builds(ProgramResult, tests=st.lists(test_results, max_size=6).map(tuple),
                            load_outcome=st.sampled_from(OUTCOMES),
                            load_message=st.text(max_size=50), load_covered_lines=lines,
                            stdout_tail=st.text(max_size=50), stderr_tail=st.text(max_size=50))


@settings(max_examples=200, deadline=None)
@given(program_results)
def test_json_round_trip_is_exact(result):
    text = json.dumps(result.to_json())
    assert ProgramResult.from_json(json.loads(text)) == result


def test_json_layout():
    assert RESULT.to_json() == {
        "tests": [{"name": "test_0", "outcome": "passed", "message": "", "duration_s": 0.001,
                   "covered_lines": [2, 3]},
                  {"name": "test_1", "outcome": "failed", "message": "AssertionError",
                   "duration_s": 0.002, "covered_lines": [2, 3]}],
        "load": {"outcome": "passed", "message": "", "covered_lines": [1]},
        "stdout_tail": "out\udcff", "stderr_tail": "err"}
    # a harness.run --batch line reads back too: its "id" and "guarantees" are ignored
    line = {"id": 7, **RESULT.to_json(), "guarantees": {"network": True}}
    assert ProgramResult.from_json(line) == RESULT


@pytest.mark.parametrize("change, expected", [
    (lambda d: d.pop("load"), "program result: missing key 'load' (found ['stderr_tail', "
                              "'stdout_tail', 'tests'])"),
    (lambda d: d["tests"][1].update(outcome="wrong"),
     "test result: outcome must be one of ('passed', 'failed', 'error', 'timeout', 'crashed'), "
     "found 'wrong'"),
    (lambda d: d["load"].update(covered_lines="1,2"),
     "program result's load: covered_lines must be a list of line numbers, found '1,2'"),
    (lambda d: d.update(tests={}), "program result: tests must be a list, found dict"),
    (lambda d: d["tests"].append([1]), "test result: expected a JSON object, found list"),
])
def test_malformed_json_raises_value_error_saying_what_was_found(change, expected):
    data = RESULT.to_json()
    change(data)
    with pytest.raises(ValueError) as exc:
        ProgramResult.from_json(data)
    assert str(exc.value) == expected


def test_to_json_starts_no_worker_process():
    """It used to call harness.sandbox.guarantees(), which starts a sandbox worker (a zygote
    process) when none has run yet: serialising a cached result started one."""
    code = ("import os\n"
            "import harness.sandbox as sandbox\n"
            "from harness.sandbox import ProgramResult, TestResult\n"
            "r = ProgramResult((TestResult('t', 'passed', '', 0.0, (1,)),), 'passed', '', (1,))\n"
            "data = r.to_json()\n"
            "pid = os.getpid()\n"
            "with open(f'/proc/{pid}/task/{pid}/children') as f:\n"
            "    children = f.read().split()\n"
            "print(len(children), len(sandbox._POOL.idle) + len(sandbox._POOL.busy),\n"
            "      sorted(data))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split(" ", 2)[:2] == ["0", "0"]  # no child process, no pooled worker
    assert "guarantees" not in done.stdout


def test_results_module_does_not_import_the_sandbox():
    code = "import sys, harness.results\nprint('harness.sandbox' in sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "False", done.stderr[-2000:]


def test_sandbox_and_cache_use_the_one_results_module():
    import harness.cache
    import harness.sandbox

    assert harness.sandbox.ProgramResult is ProgramResult
    assert harness.sandbox.TestResult is TestResult
    assert harness.sandbox.OUTCOMES is OUTCOMES
    assert harness.cache.ProgramResult is ProgramResult
