"""Tests for harness.sandbox: verdicts, per-test coverage, limits, recovery, start failures."""

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

import harness
from harness.sandbox import (
    OUTCOMES,
    Job,
    ProgramResult,
    SandboxStartError,
    TestResult,
    guarantees,
    run_batch,
    run_tests,
)

# MBPP task 2 (CRLF line endings as in mbpp.jsonl).
SIMILAR = ("def similar_elements(test_tup1, test_tup2):\r\n"
           "  res = tuple(set(test_tup1) & set(test_tup2))\r\n"
           "  return (res) ")
SIMILAR_TESTS = ["assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)",
                 "assert similar_elements((1, 2, 3, 4),(5, 4, 3, 7)) == (3, 4)",
                 "assert similar_elements((11, 12, 14, 13),(17, 15, 14, 13)) == (13, 14)"]

# MBPP task 20: branches, so tests cover different lines.
WOODALL = ("def is_woodall(x): \r\n"        # 1
           "\tif (x % 2 == 0): \r\n"        # 2
           "\t\treturn False\r\n"           # 3
           "\tif (x == 1): \r\n"            # 4
           "\t\treturn True\r\n"            # 5
           "\tx = x + 1 \r\n"               # 6
           "\tp = 0\r\n"                    # 7
           "\twhile (x % 2 == 0): \r\n"     # 8
           "\t\tx = x/2\r\n"                # 9
           "\t\tp = p + 1\r\n"              # 10
           "\t\tif (p == x): \r\n"          # 11
           "\t\t\treturn True\r\n"          # 12
           "\treturn False")                # 13

# MBPP task 3.
NOT_PRIME = ("import math\r\n"
             "def is_not_prime(n):\r\n"
             "    result = False\r\n"
             "    for i in range(2,int(math.sqrt(n)) + 1):\r\n"
             "        if n % i == 0:\r\n"
             "            result = True\r\n"
             "    return result")


def outcomes(result: ProgramResult) -> list[str]:
    return [t.outcome for t in result.tests]


def test_mbpp_similar_elements_all_pass():
    result = run_tests(SIMILAR, SIMILAR_TESTS)
    assert outcomes(result) == ["passed"] * 3
    assert result.all_passed and result.n_passed == 3
    assert result.load_outcome == "passed" and result.load_message == ""
    assert result.load_covered_lines == (1,)
    assert [t.covered_lines for t in result.tests] == [(2, 3)] * 3
    assert [t.name for t in result.tests] == ["test_0", "test_1", "test_2"]
    assert all(t.message == "" and 0 <= t.duration_s < 1 for t in result.tests)


def test_each_test_covers_only_the_lines_it_executed():
    tests = ["assert is_woodall(383) == True", "assert is_woodall(254) == False",
             "assert is_woodall(1) == True", "assert is_woodall(5) == False"]
    result = run_tests(WOODALL, tests)
    assert result.all_passed
    assert result.load_covered_lines == (1,)
    assert [t.covered_lines for t in result.tests] == [
        (2, 4, 6, 7, 8, 9, 10, 11, 12), (2, 3), (2, 4, 5), (2, 4, 6, 7, 8, 9, 10, 11, 13)]


def test_failed_and_error_are_classified_with_program_line_numbers():
    tests = ["assert is_not_prime(2) == False", "assert is_not_prime(10) == False",
             "is_not_prime('x')"]
    result = run_tests(NOT_PRIME, tests)
    assert outcomes(result) == ["passed", "failed", "error"]
    assert result.load_covered_lines == (1, 2)
    assert result.tests[0].covered_lines == (3, 4, 7)
    assert result.tests[1].covered_lines == (3, 4, 5, 6, 7)
    failed, error = result.tests[1].message, result.tests[2].message
    assert failed.endswith("AssertionError")
    assert "assert is_not_prime(10) == False" in failed  # the test's source is shown
    assert 'File "program.py", line 4, in is_not_prime' in error
    assert error.splitlines()[-1].startswith("TypeError")
    assert "_sandbox_child" not in failed + error
    assert not result.all_passed and result.n_passed == 1


def test_error_messages_give_every_frame_its_source_line_and_chained_exceptions():
    program = "import json\r\ndef f(a):\r\n    return a[0] + a[3]\r\n"  # CRLF, as in MBPP
    tests = ["f([1])",
             "try:\n    f([])\nexcept IndexError as e:\n    raise ValueError('bad') from e",
             "try:\n    f([])\nexcept IndexError:\n    1 / 0",
             "json.loads('x')",
             "import sys\nassert 'ast' not in sys.modules"]
    result = run_tests(program, tests)
    index, cause, context, library = (t.message for t in result.tests[:4])
    assert index.splitlines() == [
        "Traceback (most recent call last):",
        '  File "<test_0>", line 1, in <module>', "    f([1])",
        '  File "program.py", line 3, in f', "    return a[0] + a[3]",
        "IndexError: list index out of range"]  # no column carets
    assert "The above exception was the direct cause of the following exception:" in cause
    assert cause.index("IndexError") < cause.index("ValueError: bad")
    assert "During handling of the above exception, another exception occurred:" in context
    assert context.endswith("ZeroDivisionError: division by zero")
    assert "raise JSONDecodeError" in library  # a library frame's line, read from its file
    assert library.splitlines()[-1].startswith("json.decoder.JSONDecodeError")
    # carets would need ``ast``, imported cold in every failing program's fresh runner
    assert result.tests[4].outcome == "passed", result.tests[4].message


def test_a_recursion_error_message_is_its_last_frames():
    # ~1000 frames; only the last ones are written (each is at least one of the 15 lines)
    result = run_tests("def f(n):\n    return f(n + 1)\n", ["f(0)"])
    lines = result.tests[0].message.splitlines()
    assert len(lines) == 15 and lines[-1] == "RecursionError: maximum recursion depth exceeded"
    assert lines[-3:-1] == ['  File "program.py", line 1, in f', "    def f(n):"]
    assert lines[:-3] == ['  File "program.py", line 2, in f', "    return f(n + 1)"] * 6


def test_setup_runs_before_tests_and_its_lines_never_count():
    setup = "EXPECTED = (4, 5)\nWARM = similar_elements((1,), (1,))\n"
    tests = ["assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == EXPECTED",
             "assert WARM == (1,)"]
    result = run_tests(SIMILAR, tests, setup)
    assert result.all_passed
    assert result.load_covered_lines == (1, 2, 3)  # setup called into the program
    assert [t.covered_lines for t in result.tests] == [(2, 3), ()]


def test_timeout_is_reported_and_later_tests_still_run():
    tests = ["assert is_woodall(1) == True", "while True: pass", "assert is_woodall(254) == False"]
    result = run_tests(WOODALL, tests, timeout_s=1.0)
    assert outcomes(result) == ["passed", "timeout", "passed"]
    stuck = result.tests[1]
    assert 1.0 <= stuck.duration_s < 5.0
    assert "timed out after 1 s" in stuck.message
    assert stuck.covered_lines == ()
    assert result.tests[2].covered_lines == (2, 3)  # measured in the fresh child


def test_a_time_budget_stops_a_program_that_loops_on_every_test():
    tests = ["assert is_woodall(1) == True"] + ["while True: pass"] * 6
    start = time.monotonic()
    result = run_tests(WOODALL, tests, timeout_s=0.5, budget_s=1.2)
    assert time.monotonic() - start < 4.0  # ~budget + one timeout, not 6 timeouts
    got = outcomes(result)
    assert got[0] == "passed" and set(got[1:]) == {"timeout"}
    skipped = [t for t in result.tests if t.message.startswith("not run: the program used its time budget of 1.2 s")]
    assert 2 <= len(skipped) <= 4 and all(t.duration_s == 0.0 for t in skipped)
    # per job, in a batch: the job's own limit and budget win over the batch's
    fast = run_batch([Job("a", WOODALL, tests[:3], timeout_s=0.3, budget_s=0.2)], timeout_s=5.0)[0]
    assert [t.outcome for t in fast.tests] == ["passed", "timeout", "timeout"]
    assert fast.tests[2].message.startswith("not run") and fast.tests[1].duration_s < 2.0


SPIN = ("def spin(n):\n"       # 1
        "    i = 0\n"            # 2
        "    while n > 0:\n"     # 3
        "        i += 1\n"       # 4
        "    return i\n")        # 5


def test_lines_executed_before_a_timeout_are_kept():
    result = run_tests(SPIN, ["spin(1)", "assert spin(0) == 0"], timeout_s=0.5)
    assert outcomes(result) == ["timeout", "passed"]
    assert result.tests[0].covered_lines == (2, 3, 4)  # where it looped: feedback for a repair
    assert 0.5 <= result.tests[0].duration_s < 2.0
    assert "lines executed so far kept" in result.tests[0].message
    assert result.tests[1].covered_lines == (2, 3, 5)


def test_a_program_that_swallows_the_timeout_is_killed_just_after_its_limit():
    swallow = ("import time\n"
               "while True:\n"
               "    try:\n"
               "        spin(1)\n"
               "    except BaseException:\n"
               "        pass\n")
    t0 = time.monotonic()
    result = run_tests(SPIN, [swallow, "assert spin(0) == 0"], timeout_s=0.5)
    assert outcomes(result) == ["timeout", "passed"]
    assert result.tests[0].covered_lines == ()  # killed: its lines died with it
    assert time.monotonic() - t0 < 3.0


def test_program_that_hangs_while_loading_times_out_every_test():
    result = run_tests("while True:\n    pass\n", ["assert True", "assert True"], timeout_s=0.5)
    assert result.load_outcome == "timeout"
    assert outcomes(result) == ["timeout", "timeout"]
    assert all("timed out" in t.message for t in result.tests)


def test_crashes_are_reported_and_later_tests_still_run():
    tests = ["import os; os._exit(3)", "assert is_woodall(1) == True",
             "import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "assert is_woodall(2) == False"]
    result = run_tests(WOODALL, tests)
    assert outcomes(result) == ["crashed", "passed", "crashed", "passed"]
    assert result.tests[0].message == "child process exited with code 3"
    assert result.tests[2].message == "child process killed by signal SIGKILL (9)"
    assert result.tests[3].covered_lines == (2, 3)


def test_syntax_error_in_program_makes_every_test_error_with_its_message():
    program = "def f(x):\n    return x +\n"
    result = run_tests(program, ["assert f(1) == 2", "assert f(2) == 3"])
    assert result.load_outcome == "error"
    assert 'File "program.py", line 2' in result.load_message
    assert "SyntaxError" in result.load_message
    assert outcomes(result) == ["error", "error"]
    assert all(t.message == result.load_message and t.covered_lines == () for t in result.tests)


def test_syntax_error_in_a_test_is_an_error_of_that_test_alone():
    result = run_tests(SIMILAR, [SIMILAR_TESTS[0], "assert similar_elements((1,), (1,)) ==",
                                 SIMILAR_TESTS[1]])
    assert outcomes(result) == ["passed", "error", "passed"]
    assert 'File "<test_1>", line 1' in result.tests[1].message
    assert "SyntaxError" in result.tests[1].message
    assert result.tests[1].covered_lines == ()


def test_exception_while_loading_setup_is_a_load_error():
    result = run_tests(SIMILAR, ["assert True"], setup="raise RuntimeError('bad setup')")
    assert result.load_outcome == "error"
    assert result.load_message.endswith("RuntimeError: bad setup")
    assert outcomes(result) == ["error"]


@pytest.mark.parametrize("test", ["import sys; sys.exit(0)", "raise KeyboardInterrupt",
                                  "raise SystemExit"])
def test_base_exceptions_in_a_test_are_errors_not_passes(test):
    result = run_tests(SIMILAR, [test, SIMILAR_TESTS[0]])
    assert outcomes(result) == ["error", "passed"]


def test_output_is_captured_capped_and_does_not_disturb_verdicts():
    program = "print('loading')\n" + SIMILAR
    tests = ["print('in test 0'); " + SIMILAR_TESTS[0],
             "import sys; sys.stdout.write('x' * 10_000_000 + 'END'); sys.stderr.write('oops')",
             SIMILAR_TESTS[1]]
    result = run_tests(program, tests)
    assert result.all_passed
    assert len(result.stdout_tail) == 4096 and result.stdout_tail.endswith("xxxEND")
    assert result.stderr_tail == "oops"
    small = run_tests(program, tests[:1])
    assert small.stdout_tail == "loading\nin test 0\n"


def test_child_runs_in_a_minimal_fixed_environment():
    tests = ["import os; assert set(os.environ) <= {'PATH', 'HOME', 'LANG', 'PYTHONHASHSEED', "
             "'COVERAGE_CORE', 'PYTHONDONTWRITEBYTECODE', 'LC_CTYPE'}, sorted(os.environ)",
             "import os; assert os.getcwd() == os.environ['HOME'] and os.listdir('.') == "
             "['program.py'], os.listdir('.')",
             "import sys; assert sys.stdin.read() == ''",
             "print(hash('graphrepair'))"]
    first = run_tests(SIMILAR, tests)
    assert first.all_passed, [t.message for t in first.tests]
    assert run_tests(SIMILAR, tests).stdout_tail == first.stdout_tail  # PYTHONHASHSEED=0


def test_no_process_survives_a_run():
    marker = uuid.uuid4().hex
    tests = [f"import subprocess; subprocess.Popen(['sleep', '300', '{marker}'])",
             f"import subprocess; subprocess.Popen(['sleep', '301', '{marker}']); "
             "import os; os._exit(0)"]
    result = run_tests(SIMILAR, tests)
    assert outcomes(result) == ["passed", "crashed"]
    survivors = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    survivors.append(pid)
        except OSError:
            continue  # the process ended while we looked
    assert survivors == []


def test_memory_limit_turns_a_huge_allocation_into_an_error():
    result = run_tests(SIMILAR, ["x = bytearray(3 * 1024 ** 3)", SIMILAR_TESTS[0]], memory_mb=512)
    assert outcomes(result) == ["error", "passed"]
    assert result.tests[0].message.endswith("MemoryError")


def test_forged_garbage_on_the_result_pipe_does_not_crash_the_caller():
    tests = ["import os\nfor fd in range(3, 1024):\n    try:\n        os.write(fd, b'{not json\\n')\n"
             "    except OSError:\n        pass", SIMILAR_TESTS[0]]
    result = run_tests(SIMILAR, tests)
    assert outcomes(result) == ["crashed", "passed"]
    assert "unauthenticated record" in result.tests[0].message


def test_names_and_json_schema():
    result = run_tests(SIMILAR, SIMILAR_TESTS[:2], test_names=["first", "second"])
    data = json.loads(json.dumps(result.to_json()))
    assert set(data) == {"tests", "load", "stdout_tail", "stderr_tail"}
    assert data["load"] == {"outcome": "passed", "message": "", "covered_lines": [1]}
    assert [t["name"] for t in data["tests"]] == ["first", "second"]
    assert set(data["tests"][0]) == {"name", "outcome", "message", "duration_s", "covered_lines"}
    assert data["tests"][0]["covered_lines"] == [2, 3]
    assert ProgramResult.from_json(data) == result


def test_guarantees_are_honest():
    g = guarantees()
    assert set(g) == {"time_limit", "cpu_time_limit", "memory_limit", "process_cleanup",
                      "fork_bomb_contained", "network", "filesystem", "disk_quota", "privileges_dropped",
                      "environment", "stdin_closed", "output_capped", "unforgeable_verdicts"}
    assert all(isinstance(v, bool) for v in g.values())
    assert g["time_limit"] and g["unforgeable_verdicts"] and g["environment"]


def test_bad_arguments_raise_value_errors_that_say_what_was_found():
    with pytest.raises(ValueError, match="got 1 test_names for 2 tests"):
        run_tests(SIMILAR, ["pass", "pass"], test_names=["a"])
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        run_tests(SIMILAR, ["pass"], timeout_s=0)
    with pytest.raises(ValueError, match="memory_mb must be >= 256"):
        run_tests(SIMILAR, ["pass"], memory_mb=64)


def test_zero_tests_is_not_all_passed():
    result = run_tests(SIMILAR, [])
    assert result.tests == () and result.load_outcome == "passed" and not result.all_passed


def test_run_batch_keeps_input_order():
    jobs = [Job(id=str(i), program=f"def f():\n    return {i}\n",
                tests=[f"assert f() == {i}", "assert f() == 2"]) for i in range(5)]
    results = run_batch(jobs, workers=2)
    assert [r.n_passed for r in results] == [1, 1, 2, 1, 1]
    assert [outcomes(r)[1] for r in results] == ["failed", "failed", "passed", "failed", "failed"]
    assert Job("x", "", ["a"]).tests == ("a",)


def test_run_batch_stops_and_raises_when_a_job_raises(monkeypatch):
    import harness.sandbox as sandbox

    ran = []

    def fake_run_tests(program, tests, setup, **_):
        ran.append(program)
        if program == "boom":
            raise RuntimeError("no sandbox worker")
        time.sleep(0.05)
        return sandbox.ProgramResult((), "passed", "", ())

    monkeypatch.setattr(sandbox, "run_tests", fake_run_tests)
    jobs = [Job(str(i), "boom" if i == 1 else f"p{i}", ["t"]) for i in range(40)]
    with pytest.raises(RuntimeError, match="no sandbox worker"):
        run_batch(jobs, workers=2)
    assert len(ran) < 10  # the other thread starts no new job after the failure


def test_record_mac_accepts_only_authentic_json_objects():
    import hashlib
    import hmac

    from harness.sandbox import _RecordMac

    key = os.urandom(32)
    mac = _RecordMac(key)

    def line(body: bytes, k: bytes = key) -> bytes:
        return hmac.new(k, body, hashlib.sha256).hexdigest().encode() + b" " + body

    body = json.dumps({"kind": "result", "i": 0, "covered_lines": [1, 2]}).encode()
    assert mac.verify(line(body)) == {"kind": "result", "i": 0, "covered_lines": [1, 2]}
    with pytest.raises(ValueError, match="HMAC"):
        mac.verify(line(body, os.urandom(32)))
    with pytest.raises(ValueError, match="HMAC"):
        mac.verify(line(body)[:-1] + b"]")
    with pytest.raises(ValueError, match="not JSON"):
        mac.verify(line(b'{"kind": '))
    with pytest.raises(ValueError, match="extra data"):
        mac.verify(line(body + b" {}"))
    with pytest.raises(TypeError, match="not an object"):
        mac.verify(line(b"[1, 2]"))


def test_result_types_are_frozen_and_outcomes_fixed():
    assert OUTCOMES == ("passed", "failed", "error", "timeout", "crashed")
    t = TestResult("t", "passed", "", 0.0, (1,))
    with pytest.raises(AttributeError):
        t.outcome = "failed"


def test_a_worker_that_cannot_start_raises_sandbox_start_error():
    """Too few file descriptors for a worker's pipes: a SandboxStartError (a RuntimeError) that
    says why, not the bare OSError it was before."""
    code = ("import resource\n"
            "from harness.sandbox import SandboxStartError, run_tests\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (9, resource.getrlimit("
            "resource.RLIMIT_NOFILE)[1]))\n"
            "try:\n"
            "    run_tests('x = 1', ['assert x == 1'])\n"
            "except SandboxStartError as exc:\n"
            "    print(type(exc).__name__, isinstance(exc, RuntimeError), exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=os.path.dirname(os.path.dirname(harness.__file__)))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("SandboxStartError True sandbox worker could not be started")
    assert "Too many open files" in done.stdout
    assert issubclass(SandboxStartError, RuntimeError)


def _sandbox_child_module() -> dict:
    """The runner's module (``_sandbox_child.py``, a plain script) loaded without running main.

    Loading it deletes ``sys.path[0]`` (the runner hides its own folder from programs): the
    test process's ``sys.path`` is put back, else a few loads empty it and later imports fail.
    """
    import runpy
    from pathlib import Path

    import harness.sandbox

    saved = list(sys.path)
    try:
        return runpy.run_path(str(Path(harness.sandbox.__file__).with_name("_sandbox_child.py")),
                              run_name="sandbox_child_under_test")
    finally:
        sys.path[:] = saved


def test_runner_record_mac_is_stdlib_hmac_sha256():
    """The runner's C-only HMAC and JSON encoding give what the caller checks: hmac + json.dumps."""
    import hashlib
    import hmac

    child = _sandbox_child_module()
    record = {"kind": "result", "i": 2, "outcome": "failed", "message": 'a"b\nc\u00e9\ud83d\ude00',
              "duration_s": 0.00123, "covered_lines": [1, 2, 30]}
    body = "".join(child["_encode_json"](record, 0)).encode()
    assert body == json.dumps(record).encode()
    for key in (b"", bytes(range(32)), b"k" * 64, b"x" * 65, os.urandom(100)):
        expected = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
        assert child["_Pipe"](-1, key).mac(body) == expected


def _raised(source: str) -> BaseException:
    try:
        exec(compile(source, "<case>", "exec"), {"__name__": "program"})
    except BaseException as exc:  # noqa: B036 - the cases raise KeyboardInterrupt too
        return exc
    raise AssertionError(f"{source!r} raised nothing")


EXCEPTION_CASES = [
    "raise ValueError('bad')", "raise ValueError()", "raise KeyError('k')",
    "raise KeyboardInterrupt", "raise ExceptionGroup('two', [ValueError(1), KeyError(2)])",
    "class E(Exception): pass\nraise E('defined by the program: module-qualified')",
    "class E(Exception): pass\nE.__module__ = None\nraise E('module not a str')",
    "class E(Exception):\n    def __str__(self): raise RuntimeError\nraise E()",
    "e = ValueError('x'); e.add_note('one\\ntwo'); e.add_note('three'); raise e",
    "class N:\n    def __str__(self): raise RuntimeError\n"
    "e = ValueError('x'); e.__notes__ = ['ok', N()]; raise e",
    "e = ValueError('x'); e.__notes__ = 5; raise e",
    "e = ValueError('x'); e.__notes__ = 'a string is a sequence'; raise e",
    "compile('x = (', '<test_0>', 'exec')", "compile('if 1:\\n\\tx = = 1', 'p.py', 'exec')",
    "compile('  f(a for a in b, c)', 'p.py', 'exec')", "compile('def f(:', 'p.py', 'exec')",
    "compile('if 1:\\nx = 1', 'p.py', 'exec')", "raise SyntaxError('no location')",
    "raise SyntaxError('file only', ('f.py', None, None, None))",
    "raise SyntaxError('end -1', ('f.py', 3, 2, '  abc\\n', 3, -1))",
    "raise SyntaxError('before the text', ('f.py', 3, 1, '    abc', 3, 2))",
    "raise IndentationError('ind', ('f.py', 1, 5, 'x\\ty  z', 1, 8))",
]


@pytest.mark.parametrize("source", EXCEPTION_CASES)
def test_exception_lines_are_those_of_traceback_format_exception_only(source):
    """The runner writes an exception's own lines itself (importing traceback in a runner is
    costly, docs/sandbox.md); they must be the standard library's, line for line."""
    import traceback

    exc = _raised(source)
    expected = "".join(traceback.format_exception_only(type(exc), exc)).splitlines()
    assert _sandbox_child_module()["_exception_lines"](exc).splitlines() == expected


def test_builtins_guard_keeps_the_programs_changes_apart_and_leave_is_idempotent():
    import builtins

    guard = _sandbox_child_module()["_BuiltinsGuard"]()
    original_len = builtins.len
    try:
        guard.enter()
        builtins.len = lambda x: 7  # the program's change
        guard.leave()
        assert builtins.len is original_len  # the runner sees the original
        guard.leave()  # a second call (after an alarm cut the first short) changes nothing
        assert builtins.len is original_len
        guard.enter()
        assert builtins.len([]) == 7  # the program's change is back for its next test
        guard.leave()
        assert builtins.len is original_len
    finally:
        builtins.len = original_len


def test_a_caller_without_stdin_and_stdout_still_gets_its_verdicts():
    """A daemonised caller may have closed descriptors 0 and 1: the worker's socket and pipes
    then get those numbers, which must not clash with the worker's own stdin and stdout."""
    code = ("import os\n"
            "report = os.dup(1)\n"
            "os.close(0)\n"
            "os.close(1)\n"
            "from harness.sandbox import run_tests\n"
            "r = run_tests('def f():\\n    return 1', ['assert f() == 1', 'assert f() == 2',\n"
            "              'print(\"out\")'])\n"
            "os.write(report, repr(([t.outcome for t in r.tests], r.stdout_tail)).encode())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=os.path.dirname(os.path.dirname(harness.__file__)))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "(['passed', 'failed', 'passed'], 'out\\n')"
