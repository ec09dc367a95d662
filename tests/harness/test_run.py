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


def test_non_utf8_program_is_a_load_error_verdict(tmp_path, capsys):
    program, tests = write(tmp_path)
    Path(program).write_bytes(b"def square_perimeter(a):\n  return 4*a  # \xff\xfe\n")
    assert main([program, tests, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["load"]["outcome"] == "error"
    assert "utf-8" in data["load"]["message"].lower()
    assert {t["outcome"] for t in data["tests"]} == {"error"}


def test_non_utf8_tests_file_and_jobs_file_exit_2(tmp_path, caplog):
    program, tests = write(tmp_path)
    Path(tests).write_bytes(b"assert 1 == 1  # \xff\n")
    assert main([program, tests]) == 2
    assert "is not valid UTF-8 (byte 0xff at offset 17)" in caplog.text
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_bytes(b'{"id": 1, "program": "\xff", "tests": []}\n')
    assert main(["--batch", str(jobs)]) == 2


def test_empty_program_and_empty_tests(tmp_path, capsys, caplog):
    program, tests = write(tmp_path, program="", tests="")
    assert main([program, tests]) == 2
    assert "no tests found" in caplog.text
    program, tests = write(tmp_path, program="", tests="assert square_perimeter(1) == 4\n")
    assert main([program, tests, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["load"]["outcome"] == "passed"
    assert data["tests"][0]["outcome"] == "error"
    assert "NameError: name 'square_perimeter' is not defined" in data["tests"][0]["message"]


@pytest.mark.parametrize("flags, expected", [
    (["--timeout", "0"], "timeout_s must be > 0"), (["--timeout", "-1"], "timeout_s must be > 0"),
    (["--timeout", "nan"], "timeout_s must be > 0"), (["--timeout", "1e9"], "<= 86400"),
    (["--memory-mb", "0"], "memory_mb must be >= 256"),
    (["--memory-mb", "-5"], "memory_mb must be >= 256"),
])
def test_absurd_limits_exit_2_with_a_message(tmp_path, caplog, flags, expected):
    assert main([*write(tmp_path), *flags]) == 2
    assert expected in caplog.text


def test_huge_memory_limit_is_accepted(tmp_path):
    assert main([*write(tmp_path), "--memory-mb", str(10 ** 9)]) == 0


def test_batch_absurd_workers_and_directory_input_exit_2(tmp_path, caplog):
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"id": 0, "program": "", "tests": ["assert True"]}\n')
    assert main(["--batch", str(path), "--workers", "0"]) == 2
    assert "workers must be an integer >= 1" in caplog.text
    assert main(["--batch", str(tmp_path)]) == 2
    assert "cannot read" in caplog.text


def test_batch_progress_bar_and_cache(tmp_path, capsys):
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps({"id": i, "program": PROGRAM,
                                        "tests": [f"assert square_perimeter({i}) == {4 * i}"]})
                            + "\n" for i in range(3)))
    cache = str(tmp_path / "cache.sqlite")
    assert main(["--batch", str(path), "--progress", "always", "--cache", cache]) == 0
    captured = capsys.readouterr()
    assert "sandbox: 100%" in captured.err and "3/3" in captured.err
    assert [json.loads(line)["tests"][0]["outcome"] for line in captured.out.splitlines()] == [
        "passed"] * 3
    assert main(["--batch", str(path), "--progress", "never", "--cache", cache]) == 0
    assert "sandbox:" not in capsys.readouterr().err
