"""Tests for the harness.run CLI (single and batch mode, exit codes) and TESTS.py parsing."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.run import main, parse_tests_file
from harness.sandbox import run_tests
from tests.harness import test_sandbox

REPO = Path(__file__).resolve().parents[2]

# MBPP task 17.
PROGRAM = "def square_perimeter(a):\r\n  perimeter=4*a\r\n  return perimeter"
TESTS = "assert square_perimeter(10)==40\nassert square_perimeter(5)==20\nassert square_perimeter(4)==16\n"

WOODALL = test_sandbox.WOODALL  # MBPP task 20: branches, so tests cover different lines


def write(tmp_path, program=PROGRAM, tests=TESTS):
    (tmp_path / "PROGRAM.py").write_text(program)
    (tmp_path / "TESTS.py").write_text(tests)
    return str(tmp_path / "PROGRAM.py"), str(tmp_path / "TESTS.py")


def test_json_output_schema_and_exit_code(tmp_path, capsys):
    code = main([*write(tmp_path), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert set(data) == {"tests", "load", "stdout_tail", "stderr_tail", "guarantees"}
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
    assert set(lines[0]) == {"id", "tests", "load", "stdout_tail", "stderr_tail", "guarantees"}


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


def test_non_utf8_program_exits_2_naming_the_file_byte_and_offset(tmp_path, capsys, caplog):
    """As graphrepair.localize and graphrepair.repair do (it used to run, every test failing
    with a UnicodeEncodeError)."""
    program, tests = write(tmp_path)
    Path(program).write_bytes(b"def square_perimeter(a):\n  return 4*a  # \xff\xfe\n")
    with caplog.at_level(logging.INFO, logger="harness.run"):
        assert main([program, tests, "--json"]) == 2
    assert capsys.readouterr().out == ""
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [f"{program} is not valid UTF-8 (byte 0xff at offset 41); save it as UTF-8"]


def test_batch_program_with_escaped_bytes_is_a_verdict_other_lone_surrogates_exit_2(
        tmp_path, capsys, caplog):
    """Batch mode: undecodable bytes (surrogateescape) give a load error verdict, as in
    run_tests; a lone surrogate no encoding carries is bad input naming its line."""
    path = tmp_path / "jobs.jsonl"
    good = {"id": "ok", "program": PROGRAM, "tests": ["assert square_perimeter(1) == 4"]}
    escaped = {"id": "bytes", "program": "x = 1  # \udcff\n", "tests": ["assert x == 1"]}
    path.write_text(json.dumps(good) + "\n" + json.dumps(escaped) + "\n")
    assert main(["--batch", str(path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["tests"][0]["outcome"] for line in lines] == ["passed", "error"]
    assert "surrogates not allowed" in lines[1]["load"]["message"]
    lone = {"id": "lone", "program": "x = 1  # \ud800\n", "tests": ["assert x == 1"]}
    path.write_text(json.dumps(good) + "\n" + json.dumps(lone) + "\n")
    assert main(["--batch", str(path)]) == 2
    assert capsys.readouterr().out == ""
    assert f"{path}:2: 'program' holds a lone surrogate U+D800 at character 9" in caplog.text


def test_batch_duplicate_ids_exit_2_naming_each_id_and_its_lines(tmp_path, capsys, caplog):
    path = tmp_path / "jobs.jsonl"
    ids = ["a", 7, "b", "a", "7", 7, "a"]  # 7 and "7" are different ids
    path.write_text("".join(json.dumps({"id": i, "program": PROGRAM, "tests": ["pass"]}) + "\n"
                            for i in ids))
    assert main(["--batch", str(path)]) == 2
    assert capsys.readouterr().out == ""  # nothing ran
    assert (f'{path}: duplicate job id(s): "a" on lines 1, 4, 7; 7 on lines 2, 6; every job '
            "needs its own id") in caplog.text


def test_batch_cache_that_cannot_be_opened_exits_2(tmp_path, caplog):
    path = tmp_path / "jobs.jsonl"
    path.write_text(json.dumps({"id": 0, "program": PROGRAM, "tests": ["pass"]}) + "\n")
    (tmp_path / "dir.sqlite").mkdir()
    assert main(["--batch", str(path), "--cache", str(tmp_path / "dir.sqlite")]) == 2
    assert f"cannot open the cache {tmp_path / 'dir.sqlite'}" in caplog.text


def _few_descriptors() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (9, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


def test_sandbox_that_cannot_start_exits_3_with_one_error_line(tmp_path):
    """Too few file descriptors for a worker: exit 3 (environment), not a traceback and 1 (the
    code of a failing test), as before."""
    proc = subprocess.run([sys.executable, "-m", "harness.run", *write(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=60,
                          preexec_fn=_few_descriptors)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("ERROR harness.run: the sandbox could not start: sandbox "
                                  "worker could not be started: [Errno 24] Too many open files")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_help_documents_every_flag_and_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--batch", "--workers", "--timeout", "--memory-mb", "--json", "--cache",
                 "--progress"):
        assert flag in text
    assert "exit codes:" in text
    for code in ("0  ok:", "1  a failed outcome", "2  bad input:", "3  environment:"):
        assert code in text
    import harness.run

    for flag in ("--memory-mb M", "--cache PATH", "--progress WHEN"):
        assert flag in harness.run.__doc__


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


def test_parse_tests_file_statement_mode():
    text = ("import math\n"
            "from collections import Counter\n"
            "assert math.sqrt(4) == 2\n"
            "assert Counter('aab') == {\n"
            "    'a': 2, 'b': 1}\n"
            "x = 1; assert x == 1\n")
    setup, tests, names = parse_tests_file(text)
    assert setup == "import math\nfrom collections import Counter\n"
    assert tests == ["assert math.sqrt(4) == 2", "assert Counter('aab') == {\n    'a': 2, 'b': 1}",
                     "x = 1", "assert x == 1"]
    assert names == ["test_0", "test_1", "test_2", "test_3"]


def test_parse_tests_file_function_mode():
    text = ("import pytest\n\n"
            "def helper():\n    return 1\n\n"
            "def test_one():\n    assert helper() == 1\n\n"
            "def test_two():\n    assert False\n")
    setup, tests, names = parse_tests_file(text)
    assert setup == text
    assert tests == ["test_one()", "test_two()"]
    assert names == ["test_one", "test_two"]


def test_parse_tests_file_function_mode_runs_end_to_end():
    setup, tests, names = parse_tests_file(
        "def test_pass():\n    assert is_woodall(1)\n\ndef test_fail():\n    assert is_woodall(2)\n")
    result = run_tests(WOODALL, tests, setup, test_names=names)
    assert [(t.name, t.outcome) for t in result.tests] == [("test_pass", "passed"),
                                                          ("test_fail", "failed")]
    assert result.tests[0].covered_lines == (2, 4, 5)
    assert 'File "<setup>", line 5, in test_fail' in result.tests[1].message


def test_parse_tests_file_syntax_error_names_the_line():
    with pytest.raises(ValueError, match="line 2"):
        parse_tests_file("assert True\nassert (\n")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(-10**6, 10**6), st.sampled_from(["==", "!=", "<"])),
                max_size=8))
def test_parse_tests_file_statement_mode_round_trips(asserts):
    lines = [f"assert {n} {op} 0" for n, op in asserts]
    setup, tests, names = parse_tests_file("\n".join(lines) + "\n")
    assert setup == "" and tests == lines and len(names) == len(lines)
