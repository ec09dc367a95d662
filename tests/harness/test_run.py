"""Tests for the harness.run CLI (single and batch mode)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.run import main

REPO = Path(__file__).resolve().parents[2]

# MBPP task 17.
PROGRAM = "def square_perimeter(a):\r\n  perimeter=4*a\r\n  return perimeter"
TESTS = "assert square_perimeter(10)==40\nassert square_perimeter(5)==20\nassert square_perimeter(4)==16\n"


def write(tmp_path, program=PROGRAM, tests=TESTS):
    (tmp_path / "PROGRAM.py").write_text(program)
    (tmp_path / "TESTS.py").write_text(tests)
    return str(tmp_path / "PROGRAM.py"), str(tmp_path / "TESTS.py")


def test_json_output_schema_and_exit_code(tmp_path, capsys):
    code = main([*write(tmp_path), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert set(data) == {"tests", "load", "guarantees"}
    assert data["load"] == {"outcome": "passed", "message": "", "covered_lines": [1]}
    assert [(t["name"], t["outcome"], t["covered_lines"]) for t in data["tests"]] == [
        ("test_0", "passed", [2, 3]), ("test_1", "passed", [2, 3]), ("test_2", "passed", [2, 3])]


def test_human_output_and_failing_exit_code(tmp_path, capsys):
    tests = TESTS + "assert square_perimeter(1)==5\nsquare_perimeter(None)\n"
    code = main(list(write(tmp_path, tests=tests)))
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[0].startswith("passed   test_0 ") and "lines=2,3" in out[0]
    assert out[3].startswith("failed   test_3 ") and out[3].endswith("AssertionError")
    assert out[4].startswith("error    test_4 ") and "TypeError" in out[4]
    assert out[-1] == "3 passed, 1 failed, 1 error"


def test_missing_file_and_unparsable_tests_exit_2(tmp_path, caplog):
    program, tests = write(tmp_path, tests="assert (\n")
    assert main([program, str(tmp_path / "nope.py")]) == 2
    assert "cannot read" in caplog.text and "nope.py" in caplog.text
    assert main([program, tests]) == 2
    assert "does not parse: line 1" in caplog.text


def test_usage_errors_exit_2(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "PROGRAM.py")])
    assert exc.value.code == 2


def test_batch_mode_prints_results_in_input_order(tmp_path, capsys):
    jobs = [{"id": "ok", "program": PROGRAM, "tests": ["assert square_perimeter(1) == 4"]},
            {"id": 7, "program": "def f(:", "tests": ["f()"], "setup": ""},
            {"id": "fail", "program": PROGRAM, "tests": ["assert square_perimeter(1) == 5"],
             "setup": "import math"}]
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    assert main(["--batch", str(path), "--workers", "2"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["id"] for line in lines] == ["ok", 7, "fail"]
    assert [line["tests"][0]["outcome"] for line in lines] == ["passed", "error", "failed"]
    assert lines[1]["load"]["outcome"] == "error"
    assert set(lines[0]) == {"id", "tests", "load", "guarantees"}


@pytest.mark.parametrize("bad, expected", [
    ("{not json", "not valid JSON"),
    ('{"id": 1, "program": ""}', "missing key(s) ['tests']"),
    ('{"id": 1, "program": "", "tests": "assert True"}', "'tests' must be a list of strings"),
])
def test_batch_malformed_line_names_file_and_line(tmp_path, caplog, bad, expected):
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"id": 0, "program": "", "tests": []}\n' + bad + "\n")
    assert main(["--batch", str(path)]) == 2
    assert f"{path}:2: " in caplog.text and expected in caplog.text


def test_module_entry_point_end_to_end(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness.run", *write(tmp_path), "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["load"]["outcome"] == "passed"
