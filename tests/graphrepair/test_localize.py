"""End-to-end tests of the graphrepair.localize CLI on real MBPP programs with injected faults."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from graphrepair.graphs.graph import ProgramGraph
from graphrepair.localize import main

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path, program: str | bytes, tests: str | bytes):
    paths = tmp_path / "PROGRAM.py", tmp_path / "TESTS.py"
    for path, text in zip(paths, (program, tests)):
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return [str(p) for p in paths]


def mutate(source: str, old: str, new: str) -> str:
    assert source.count(old) == 1, f"{old!r} must occur once in the reference"
    return source.replace(old, new)


def test_json_on_mbpp_17_with_a_fault(tmp_path, mbpp, capsys):
    problem = mbpp["mbpp/17"]  # square_perimeter; a*a is right only for a = 4
    program = mutate(problem.source, "perimeter=4*a", "perimeter=a*a")
    argv = [*write(tmp_path, program, "\n".join(problem.tests)), "--json", "--timeout", "2"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["formula"] == "tarantula"
    assert report["tests"] == {"passed": 1, "failed": 2}
    # Every test runs lines 2 and 3: they tie at (2/2) / (2/2 + 1/1). Line 1 (def) runs only
    # while loading: covered by no test, it scores 0 and ranks after them.
    assert [row["line"] for row in report["lines"]] == [2, 3, 1]
    for row in report["lines"][:2]:
        assert row == {"line": row["line"], "score": 0.5, "failed": 2, "passed": 1,
                       "rank_best": 1, "rank_avg": 1.5, "rank_worst": 2}
    assert report["lines"][2] == {"line": 1, "score": 0.0, "failed": 0, "passed": 0,
                                  "rank_best": 3, "rank_avg": 3.0, "rank_worst": 3}
    # Counted for every test, line 1 joins the tie and the faulty line 2 falls half a rank.
    assert main([*argv, "--load-lines", "every_test"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [row["line"] for row in report["lines"]] == [1, 2, 3]
    for row in report["lines"]:
        assert row == {"line": row["line"], "score": 0.5, "failed": 2, "passed": 1,
                       "rank_best": 1, "rank_avg": 2.0, "rank_worst": 3}


@pytest.mark.parametrize("formula, top", [("tarantula", 1.0), ("ochiai", 1.0), ("dstar", 5.0),
                                          ("binary", 1.0)])
def test_json_ranks_the_faulty_branch_first_on_mbpp_3(tmp_path, mbpp, capsys, formula, top):
    problem = mbpp["mbpp/3"]  # is_not_prime; the fault is inside the loop's if (line 6)
    program = mutate(problem.source, "result = True", "result = False")
    assert main([*write(tmp_path, program, "\n".join(problem.tests)), "--json",
                 "--formula", formula, "--timeout", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tests"] == {"passed": 1, "failed": 2}  # is_not_prime(2) never enters the loop
    lines = report["lines"]
    # lines 1 and 2 (import, def) run only while loading: covered by no test, they score 0
    assert [row["line"] for row in lines] == ([3, 4, 5, 6, 7, 1, 2] if formula == "binary"
                                              else [5, 6, 3, 4, 7, 1, 2])
    assert {row["line"] for row in lines} == {1, 2, 3, 4, 5, 6, 7}  # every executed line
    scores = [row["score"] for row in lines]
    assert scores == sorted(scores, reverse=True)
    faulty = next(row for row in lines if row["line"] == 6)
    assert (faulty["failed"], faulty["passed"], faulty["score"]) == (2, 0, top)
    assert faulty["rank_best"] == 1


def test_human_output_lists_lines_most_suspicious_first(tmp_path, mbpp, capsys):
    problem = mbpp["mbpp/3"]
    program = mutate(problem.source, "result = True", "result = False")
    assert main([*write(tmp_path, program, "\n".join(problem.tests)), "--timeout", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "tarantula: 1 passed, 2 failing (2 failed)"
    rows = [line.split() for line in out[2:]]
    assert [row[:2] for row in rows[:2]] == [["1-2", "5"], ["1-2", "6"]]
    assert [row[:2] for row in rows[-2:]] == [["6-7", "1"], ["6-7", "2"]]  # import, def
    assert rows[1][5:] == ["result", "=", "False"]  # the line's own text
    assert len(rows) == 7


def test_program_that_does_not_parse_is_scored_on_its_error_region(tmp_path, mbpp, capsys):
    problem = mbpp["mbpp/17"]
    program = mutate(problem.source, "perimeter=4*a", "perimeter=4*a)")
    assert ProgramGraph.from_source(program).error_lines == [2]
    argv = write(tmp_path, program, "\n".join(problem.tests))
    assert main([*argv, "--json", "--formula", "ochiai", "--timeout", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tests"] == {"passed": 0, "failed": 3}
    assert report["lines"] == [{"line": 2, "score": 1.0, "failed": 3, "passed": 0,
                                "rank_best": 1, "rank_avg": 1.0, "rank_worst": 1}]


def test_module_entry_point_runs(tmp_path, mbpp):
    problem = mbpp["mbpp/17"]
    program = mutate(problem.source, "perimeter=4*a", "perimeter=a*a")
    argv = write(tmp_path, program, "\n".join(problem.tests))
    proc = subprocess.run([sys.executable, "-m", "graphrepair.localize", *argv, "--json",
                           "--formula", "dstar"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["formula"] == "dstar"


@pytest.mark.parametrize("program, tests, extra, expected", [
    (None, "assert True\n", [], "cannot read"),
    (b"x = 1\n", b"assert x == 1\n\xff\n", [], "is not valid UTF-8 (byte 0xff"),
    (b"x = '\xe9'\n", b"assert x\n", [], "is not valid UTF-8 (byte 0xe9"),
    ("  \n", "assert True\n", [], "is empty"),
    ("x = 1\n", "assert (\n", [], "does not parse: line 1"),
    ("x = 1\n", "# nothing\n", [], "no tests found"),
    ("x = 1\n", "assert x\n", ["--timeout", "0"], "timeout_s must be > 0"),
    ("x = 1\n", "assert x\n", ["--star", "0"], "--star must be finite and > 0"),
])
def test_bad_input_exits_2_with_one_clear_line(tmp_path, caplog, program, tests, extra,
                                               expected):
    paths = write(tmp_path, program or "", tests)
    if program is None:
        paths[0] = str(tmp_path / "missing.py")
    assert main([*paths, *extra]) == 2
    assert expected in caplog.text
    assert "Traceback" not in caplog.text


def test_unknown_formula_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*write(tmp_path, "x = 1\n", "assert x\n"), "--formula", "jaccard"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'jaccard'" in err and "tarantula" in err
