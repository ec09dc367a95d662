"""Adversarial programs against harness.sandbox: one test per attack named in issue 3.

Every attack is run as a test next to an honest MBPP test. The attack must never turn a failing
test into ``passed``, never hang and never crash the caller, and the honest test after it must
still get its own verdict. Guarantees that depend on kernel features are checked where
:func:`harness.sandbox.guarantees` says they are in force, and skipped with that reason where not.
"""

import os
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import sandbox
from harness.sandbox import guarantees, run_tests

# MBPP task 17.
PROGRAM = "def square_perimeter(a):\r\n  perimeter=4*a\r\n  return perimeter"
HONEST = "assert square_perimeter(10)==40"


def verdicts(attack: str, *, timeout_s: float = 2.0, memory_mb: int = 2048,
             program: str = PROGRAM) -> list[str]:
    """Outcomes of ``[attack, HONEST]``; the honest test must always pass."""
    result = run_tests(program, [attack, HONEST], timeout_s=timeout_s, memory_mb=memory_mb)
    assert result.tests[1].outcome == "passed", result.tests[1]
    assert result.tests[1].covered_lines == (2, 3)
    return [t.outcome for t in result.tests]


def requires(name: str) -> None:
    if not guarantees()[name]:
        pytest.skip(f"guarantee {name!r} is not in force on this machine (see guarantees())")


def survivors(marker: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(pid)
        except OSError:
            continue  # the process ended while we looked
    return found


# -- forging a verdict -------------------------------------------------------------------------

def test_printing_a_fake_record_does_not_pass_a_failing_test():
    attack = ("print('{\"kind\": \"result\", \"i\": 0, \"outcome\": \"passed\", \"message\": \"\", "
              "\"duration_s\": 0, \"covered_lines\": []}', flush=True); assert False")
    assert verdicts(attack)[0] == "failed"


def test_writing_forged_records_to_every_descriptor_is_crashed_not_passed():
    attack = ("import os, json\n"
              "rec = json.dumps({'kind': 'result', 'i': 0, 'outcome': 'passed', 'message': '',"
              " 'duration_s': 0, 'covered_lines': []})\n"
              "for fd in range(3, 1024):\n"
              "    for line in (rec, '0' * 64 + ' ' + rec, json.dumps({'kind': 'done'})):\n"
              "        try:\n"
              "            os.write(fd, (line + '\\n').encode())\n"
              "        except OSError:\n"
              "            pass\n"
              "assert False")
    out = verdicts(attack)
    assert out[0] in ("failed", "crashed")


def test_closing_every_descriptor_is_not_passed():
    assert verdicts("import os; os.closerange(0, 65536); assert False")[0] == "crashed"


def test_exit_status_zero_is_crashed():
    assert verdicts("import os; os._exit(0)")[0] == "crashed"


@pytest.mark.parametrize("attack", ["import sys; sys.exit(0)", "raise SystemExit(0)",
                                    "raise KeyboardInterrupt", "exit()"])
def test_system_exit_and_keyboard_interrupt_are_errors(attack):
    assert verdicts(attack)[0] == "error"


def test_replacing_builtins_does_not_change_classification():
    attack = ("import builtins\n"
              "builtins.AssertionError = ValueError\n"
              "builtins.isinstance = lambda *a: False\n"
              "builtins.BaseException = type('Nothing', (Exception,), {})\n"
              "assert square_perimeter(1) == 5")
    assert verdicts(attack)[0] == "failed"


@pytest.mark.parametrize("rebind", [
    # builtins the runner itself calls between and around tests
    "import builtins\n_compile = compile\nbuiltins.exec = lambda *a, **k: None",
    "import builtins\n_compile = compile\n"
    "builtins.compile = lambda s, f, m, *a, **k: _compile('pass', f, m)",
    "import builtins\nbuiltins.range = lambda *a: iter(())",
    "import builtins\nbuiltins.len = lambda *a: 0",
    # the json module's default encoder rewrites every result record as passed
    "import json\n"
    "class E(json.JSONEncoder):\n"
    "    def encode(self, o):\n"
    "        if isinstance(o, dict) and o.get('kind') == 'result':\n"
    "            o = dict(o, outcome='passed')\n"
    "        return json.JSONEncoder.encode(self, o)\n"
    "json._default_encoder = E()\n"
    "json.dumps = lambda o, **k: E().encode(o)",
    # hmac and hashlib would hand the key and body to the program, which could sign forgeries
    "import hmac, hashlib\n"
    "hmac.digest = hmac.new = hashlib.sha256 = lambda *a, **k: 1 / 0",
    # the runner's own module, had it stayed reachable as __main__
    "import __main__\n"
    "__main__._outcome = lambda e: 'passed'\n"
    "__main__._isinstance = lambda *a: False",
])
def test_program_rebinding_what_the_runner_uses_cannot_pass_a_failing_test(rebind):
    program = PROGRAM + "\r\n" + rebind.replace("\n", "\r\n") + "\r\n"
    assert verdicts("assert square_perimeter(1) == 5", program=program)[0] == "failed"


def test_program_keeps_its_own_changes_to_builtins_across_its_tests():
    program = "import builtins\nbuiltins.answer = 42\nbuiltins.len = lambda x: 7\n"
    result = run_tests(program, ["assert answer == 42 and len([]) == 7",
                                 "builtins.answer = 43", "assert answer == 43"], timeout_s=2)
    assert [t.outcome for t in result.tests] == ["passed", "passed", "passed"]


def test_hostile_exception_message_is_still_an_error():
    attack = ("class E(Exception):\n"
              "    def __str__(self):\n"
              "        raise RuntimeError('no message for you')\n"
              "raise E()")
    assert verdicts(attack)[0] == "error"


def test_endless_exception_chain_is_still_an_error_with_a_message():
    # every read of __cause__ makes a new exception: a chain without end, as the message sees it
    attack = ("class E(Exception):\n"
              "    @property\n"
              "    def __cause__(self):\n"
              "        return E('again')\n"
              "raise E('first')")
    result = run_tests(attack, ["pass"], timeout_s=2.0)
    assert result.load_outcome == "error" and result.load_message.endswith("E: first")


@pytest.mark.parametrize("filename", ["fifo", "/dev/zero", "/proc/self/fd/0", "/"])
def test_a_frame_in_a_file_that_never_ends_is_still_an_error_with_a_message(filename):
    # a code object's file name is whatever the program compiled it with; reading a FIFO for the
    # message's source line would block forever, /dev/zero would never end
    attack = ("import os\n"
              "os.mkfifo('fifo')\n"
              f"exec(compile('1 / 0', {filename!r}, 'exec'))")
    result = run_tests(attack, ["pass"], timeout_s=2.0)
    assert result.load_outcome == "error", result.load_message
    assert result.load_message.endswith("ZeroDivisionError: division by zero")


# -- the caller and the worker -----------------------------------------------------------------

@pytest.mark.parametrize("attack", ["import os, signal; os.kill(os.getppid(), signal.SIGKILL)",
                                    "import os, signal; os.kill(1, signal.SIGKILL)",
                                    "import os, signal; os.kill(-1, signal.SIGKILL)",
                                    "import os, signal; os.killpg(0, signal.SIGKILL)"])
def test_killing_the_parent_never_kills_the_caller(attack):
    out = verdicts(attack + "\nassert False")
    assert out[0] in ("failed", "error", "crashed")  # error: nobody else to signal
    assert run_tests(PROGRAM, [HONEST]).all_passed  # the caller and its workers still work


def test_a_worker_killed_during_a_run_is_replaced():
    run_tests(PROGRAM, [HONEST])  # make sure an idle worker exists

    def kill_workers():
        for zygote in list(sandbox._POOL.busy):
            zygote.proc.kill()

    timer = threading.Timer(0.5, kill_workers)
    timer.start()
    try:
        result = run_tests(PROGRAM, ["import time; time.sleep(3)", HONEST], timeout_s=5)
    finally:
        timer.join()
    assert [t.outcome for t in result.tests] == ["crashed", "passed"]
    assert run_tests(PROGRAM, [HONEST]).all_passed


def test_ignoring_signals_still_times_out():
    attack = ("import signal\n"
              "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU):\n"
              "    signal.signal(s, signal.SIG_IGN)\n"
              "while True:\n"
              "    pass")
    assert verdicts(attack, timeout_s=0.5)[0] == "timeout"


def test_ctypes_segfault_is_crashed():
    assert verdicts("import ctypes; ctypes.string_at(0)")[0] == "crashed"


def test_c_stack_overflow_is_crashed_not_passed():
    attack = ("import sys\n"
              "sys.setrecursionlimit(10 ** 8)\n"
              "def f(n):\n"
              "    return list(map(f, [n + 1]))  # every level also recurses in C\n"
              "f(0)")
    assert verdicts(attack, timeout_s=5)[0] in ("crashed", "error")


# -- resources ---------------------------------------------------------------------------------

def test_fork_bomb_is_contained_and_nothing_survives():
    requires("fork_bomb_contained")
    marker = uuid.uuid4().hex
    attack = ("import os, time\n"
              f"os.environ['BOMB'] = '{marker}'\n"
              "while True:\n"
              "    try:\n"
              "        os.fork()\n"
              "    except OSError:\n"
              "        time.sleep(0.01)\n")
    t0 = time.monotonic()
    assert verdicts(attack, timeout_s=0.5)[0] == "timeout"
    assert time.monotonic() - t0 < 10


def test_memory_bomb_ends_quickly_as_error_or_crash():
    t0 = time.monotonic()
    attack = "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 * 1024))"
    assert verdicts(attack, memory_mb=512)[0] in ("error", "crashed")
    assert time.monotonic() - t0 < 10


def test_cpu_time_is_limited_too():
    attack = ("import resource\n"
              "soft, hard = resource.getrlimit(resource.RLIMIT_CPU)\n"
              "assert soft != resource.RLIM_INFINITY and soft <= 5, soft")
    assert verdicts(attack, timeout_s=1)[0] == "passed"


def test_memory_limit_never_below_what_the_interpreter_needs():
    # The smallest accepted limit still runs a real program and its tests.
    assert verdicts("import json, re, collections; assert True", memory_mb=256)[0] == "passed"


def test_processes_that_start_a_new_session_do_not_survive():
    marker = uuid.uuid4().hex
    attack = ("import os, subprocess\n"
              f"subprocess.Popen(['setsid', 'sleep', '300', '{marker}'], start_new_session=True)\n"
              "if os.fork() == 0:\n"
              "    os.setsid()\n"
              "    if os.fork() == 0:\n"
              f"        os.execvp('sleep', ['sleep', '301', '{marker}'])\n"
              "    os._exit(0)\n")
    verdicts(attack)
    assert survivors(marker) == []


def test_output_flood_costs_at_most_the_time_limit():
    t0 = time.monotonic()
    result = run_tests(PROGRAM, ["while True:\n    print('x' * 10000)", HONEST], timeout_s=1)
    assert [t.outcome for t in result.tests] == ["timeout", "passed"]
    assert len(result.stdout_tail) <= 4096 and time.monotonic() - t0 < 8


# -- isolation ---------------------------------------------------------------------------------

def test_no_network():
    requires("network")
    attack = ("import socket\n"
              "for host in ('1.1.1.1', '127.0.0.1'):\n"
              "    try:\n"
              "        socket.create_connection((host, 80), timeout=1).close()\n"
              "    except OSError:\n"
              "        continue\n"
              "    raise AssertionError('connected to ' + host)")
    assert verdicts(attack)[0] == "passed"


def test_writes_and_deletions_outside_the_program_directory_fail(tmp_path):
    requires("filesystem")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    attack = ("import os\n"
              "open('mine.txt', 'w').write('ok')  # its own directory is writable\n"
              f"for act in (lambda: open('{tmp_path}/new.txt', 'w'),\n"
              f"            lambda: os.remove('{victim}'),\n"
              "            lambda: open('/tmp/sandbox-escape', 'w')):\n"
              "    try:\n"
              "        act()\n"
              "    except OSError:\n"
              "        continue\n"
              "    raise AssertionError('wrote outside')")
    assert verdicts(attack)[0] == "passed"
    assert victim.read_text() == "keep" and not (tmp_path / "new.txt").exists()


def test_an_unremovable_directory_does_not_break_the_next_program():
    attack = "import os\nos.mkdir('d')\nopen('d/f', 'w').close()\nos.chmod('d', 0)\nos.chmod('.', 0o500)"
    assert verdicts(attack)[0] == "passed"
    check = "import os; assert os.listdir('.') == ['program.py'], os.listdir('.')"
    assert run_tests(PROGRAM, [check]).all_passed


# -- generated programs vs. a reference in-process execution ---------------------------------

STATEMENTS = {"pass": "passed", "assert f(2) == 8": "passed", "assert f(2) == 9": "failed",
              "f(None)": "error", "raise KeyError(1)": "error", "1 / 0": "error",
              "while True:\n    pass": "timeout"}


def reference(tests: list[str]) -> list[str]:
    """In-process verdicts; a looping statement cannot run here, so it is taken as timeout."""
    out = []
    namespace: dict = {}
    exec(PROGRAM.replace("square_perimeter", "f"), namespace)
    for test in tests:
        if test.startswith("while True"):
            out.append("timeout")
            continue
        try:
            exec(test, namespace)
            out.append("passed")
        except AssertionError:
            out.append("failed")
        except Exception:
            out.append("error")
    return out


@settings(max_examples=12, deadline=None)
@given(st.lists(st.sampled_from(sorted(STATEMENTS)), min_size=1, max_size=5).filter(
    lambda tests: sum(t.startswith("while") for t in tests) <= 1))
def test_generated_programs_match_in_process_reference(tests):
    result = run_tests(PROGRAM.replace("square_perimeter", "f"), tests, timeout_s=0.3)
    assert [t.outcome for t in result.tests] == reference(tests)


@pytest.mark.parametrize("writer", [
    # next to its directory: the parent must be as read-only as everything else
    "for target in ('../leak', '../run2'):\n"
    "    try:\n"
    "        open(target, 'w').write('secret')\n"
    "    except OSError:\n"
    "        pass\n",
    # inside it, locked: entries it made unreadable and a changed mode of the directory
    "import os\n"
    "os.makedirs('d/e'); open('d/e/f', 'w').write('secret')\n"
    "os.chmod('d/e', 0); os.chmod('d', 0); os.chmod('.', 0o700)\n",
])
def test_nothing_a_program_writes_reaches_the_next_program(writer):
    requires("filesystem")
    reader = ("import os, stat\n"
              "assert os.listdir('..') == ['run'], os.listdir('..')\n"
              "assert os.listdir('.') == ['program.py'], os.listdir('.')\n"
              "assert stat.S_IMODE(os.stat('.').st_mode) == 0o755\n")
    results = sandbox.run_batch([sandbox.Job("w", writer, ("assert True",)),
                                 sandbox.Job("r", reader, ("assert True",))], workers=1)
    assert [r.load_outcome for r in results] == ["passed", "passed"], results[1].load_message


def test_a_program_cannot_fill_the_disk():
    requires("disk_quota")
    attack = ("chunk = b'x' * (1 << 20)\n"
              "with open('fill.bin', 'wb') as f:\n"
              "    for _ in range(300):  # 300 MiB > the 256 MiB tmpfs\n"
              "        f.write(chunk)\n")
    result = sandbox.run_tests(attack, ["assert True"], timeout_s=10)
    assert result.load_outcome == "error"
    assert "No space left on device" in result.load_message
    assert [t.outcome for t in result.tests] == ["error"]
    assert sandbox.run_tests("open('ok.bin', 'wb').write(b'x' * (8 << 20))",
                             ["assert open('ok.bin', 'rb').read(1) == b'x'"]).all_passed


# -- unprivileged users ------------------------------------------------------------------------

def test_a_user_namespace_worker_keeps_every_guarantee_and_verdict():
    """What an ordinary (non-root) user gets: the worker enters a user namespace first."""
    worker = sandbox._Zygote(user_namespace=True)
    assert worker.features["user_namespace"]
    as_root = sandbox._POOL.acquire()
    sandbox._POOL.release(as_root)
    for name in ("network_namespace", "pid_namespace", "pid_limit", "filesystem", "tmpfs",
                 "capabilities_dropped"):
        assert worker.features[name] == as_root.features[name], name
    sandbox._POOL.idle.append(worker)  # the next call takes it (last in, first out)
    attack = ("import os, socket\n"
              "try:\n"
              "    open('/tmp/sandbox-escape', 'w')\n"
              "except OSError:\n"
              "    pass\n"
              "else:\n"
              "    raise AssertionError('wrote outside')\n"
              "assert os.getuid() == 0 and os.listdir('.') == ['program.py']\n"
              "socket.create_connection(('127.0.0.1', 80), timeout=1)")
    result = run_tests(PROGRAM, [attack, HONEST, "assert False"])
    assert [t.outcome for t in result.tests] == ["error", "passed", "failed"]
    assert "OSError" in result.tests[0].message  # the connection, not the checks before it
    assert sandbox._POOL.idle[-1] is worker and worker.healthy  # it ran them and is back


# -- both job loops of the worker --------------------------------------------------------------

@pytest.mark.parametrize("python_only", [False, True], ids=["c_loop", "python_only"])
def test_each_job_loop_settles_every_outcome_and_leaves_nothing_behind(python_only):
    """The worker serves jobs with the C loop of ``harness._zygote`` where it can, else with its
    Python loop (no PID namespace, or the extension not built: then the runner's limits and the
    builtins guard are Python too); both must keep every promise."""
    requires("process_cleanup")
    worker = sandbox._Zygote(python_only=python_only)
    try:
        if not python_only and worker.job_loop != "c":
            assert not worker.features["pid_namespace"] or not any(
                name.startswith("_zygote.") and name.endswith(".so")
                for name in os.listdir(os.path.dirname(sandbox.__file__)))
            pytest.skip("the C job loop is not in use here (harness._zygote not built: "
                        "pip install -e .; or no PID namespace)")
        assert worker.job_loop == ("python" if python_only else "c")
        sandbox._POOL.idle.append(worker)  # each call below takes it (last in, first out)
        marker = uuid.uuid4().hex
        result = run_tests(PROGRAM, [
            HONEST, "assert False", "raise ValueError('boom')",
            "import sys; print('to stdout'); print('to stderr', file=sys.stderr)",
            "import os, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            f"    os.execvp('sleep', ['sleep', '300', '{marker}'])\n",
            "open('left-behind', 'w').write('x'); import os; os.chmod('.', 0o700)"])
        assert [t.outcome for t in result.tests] == ["passed", "failed", "error", "passed",
                                                     "passed", "passed"]
        assert "boom" in result.tests[2].message
        assert "to stdout" in result.stdout_tail and "to stderr" in result.stderr_tail
        assert survivors(marker) == []
        # a program that ignores its alarm is killed on the caller's request (``K``)
        stuck = run_tests(PROGRAM, ["import signal\nsignal.signal(signal.SIGALRM, lambda *a: 0)\n"
                                    "while True:\n    pass", HONEST], timeout_s=0.5)
        assert [t.outcome for t in stuck.tests] == ["timeout", "passed"]
        fresh = run_tests(PROGRAM, ["import os; assert os.listdir('.') == ['program.py']",
                                    "import os, stat\n"
                                    "assert stat.S_IMODE(os.stat('.').st_mode) == 0o755"])
        assert fresh.all_passed, fresh.tests
        # the runner's limits and its builtins guard (C, or Python without the extension)
        limited = run_tests(PROGRAM, ["x = bytearray(3 * 1024 ** 3)", HONEST], memory_mb=512)
        assert [t.outcome for t in limited.tests] == ["error", "passed"]
        guarded = run_tests(PROGRAM, ["import builtins; builtins.sorted = lambda *a, **k: []",
                                      HONEST])
        assert guarded.all_passed and guarded.tests[1].covered_lines == (2, 3)
        assert sandbox._POOL.idle[-1] is worker and worker.healthy  # it ran them all
    finally:
        if worker in sandbox._POOL.idle:
            sandbox._POOL.idle.remove(worker)
        worker.close()


def test_caller_with_more_than_1024_open_descriptors():
    """A trainer with many open files gets descriptors >= 1024 for its workers' sockets and
    pipes, which select.select cannot wait on (ValueError); every wait must work there."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < 1200")
    wanted = soft if soft == resource.RLIM_INFINITY else max(soft, 1200)
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    sandbox.shutdown()  # the next call starts a worker whose descriptors are all >= 1100
    try:
        result = run_tests(PROGRAM, [HONEST, "assert False", "import time; time.sleep(5)"],
                           timeout_s=0.5)
        assert [t.outcome for t in result.tests] == ["passed", "failed", "timeout"]
    finally:
        sandbox.shutdown()
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_directories_left_by_a_killed_caller_are_removed_by_the_next_one(tmp_path):
    """A caller killed with SIGKILL cannot remove its workers' directories; the next caller
    that starts a worker removes those whose caller is gone (and only those)."""
    script = ("import os, signal, sys\n"
              "from harness.sandbox import run_tests\n"
              "assert run_tests('x = 1', ['assert x == 1']).all_passed\n"
              "print(os.listdir(os.environ['TMPDIR']), flush=True)\n"
              "{}\n")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    root = os.path.dirname(os.path.dirname(sandbox.__file__))

    def caller(last_line: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", script.format(last_line)], env=env,
                              cwd=root, capture_output=True, text=True, timeout=120)

    killed = caller("os.kill(os.getpid(), signal.SIGKILL)")
    left = [n for n in os.listdir(tmp_path) if n.startswith("sandbox-zygote-")]
    assert killed.returncode == -9 and len(left) == 1, (killed.stdout, killed.stderr[-1000:])
    fresh = tmp_path / "sandbox-zygote-fresh"  # unlocked, but made a moment ago: kept
    fresh.mkdir()
    past = time.time() - 2 * sandbox._STALE_AFTER_S
    os.utime(tmp_path / left[0], (past, past))  # the killed caller's: old enough to be removed
    # a second caller that is alive while a third one starts keeps its directory
    alive = subprocess.Popen([sys.executable, "-c", script.format("sys.stdin.read()")], env=env,
                             cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    seen = alive.stdout.readline()
    assert left[0] not in seen and "sandbox-zygote-fresh" in seen  # swept by the second caller
    fresh.rmdir()
    mine = [n for n in os.listdir(tmp_path) if n.startswith("sandbox-zygote-")]
    assert len(mine) == 1
    os.utime(tmp_path / mine[0], (past, past))  # old, but its caller holds the lock: kept
    third = caller("pass")
    assert third.returncode == 0, third.stderr[-1000:]
    assert os.path.isdir(tmp_path / mine[0])
    alive.stdin.close()
    assert alive.wait(60) == 0
    assert not [n for n in os.listdir(tmp_path) if n.startswith("sandbox-zygote-")]


def test_a_worker_that_dies_with_a_job_unread_gives_a_verdict_not_an_exception():
    """A worker that dies before reading its job resets the socket (ECONNRESET, not EOF): the
    caller reports the program as crashed and goes on with a new worker."""
    worker = sandbox._Zygote()
    launcher = worker.proc.pid
    with open(f"/proc/{launcher}/task/{launcher}/children") as f:
        zygote = int(f.read().split()[0])
    os.kill(zygote, signal.SIGSTOP)  # it cannot read the job that comes next
    sandbox._POOL.idle.append(worker)  # the next call takes it (last in, first out)
    timer = threading.Timer(0.5, worker.proc.kill)  # the launcher; the zygote dies with it
    timer.start()
    try:
        result = run_tests(PROGRAM, [HONEST])
    finally:
        timer.join()
    assert [t.outcome for t in result.tests] == ["crashed"]
    assert not worker.healthy and worker not in sandbox._POOL.idle
    assert run_tests(PROGRAM, [HONEST]).all_passed
