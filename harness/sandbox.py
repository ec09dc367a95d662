"""Run a Python program's unit tests in a child process, with per-test outcome and coverage.

A *program* is a source text; *setup* is code executed after it in the same global namespace
(MBPP ``test_setup_code``, HumanEval's check harness); each *test* is a snippet executed after that
in the same namespace, and passes when it raises nothing (see DESIGN.md, "Problem"). For every test
the sandbox returns an outcome (one of :data:`OUTCOMES`), a message, its wall-clock duration and
the set of *program* lines it executed (coverage.py's C tracer, one line set per test). Setup
and test lines are never counted: they are compiled under the pseudo-filenames ``<setup>`` /
``<test_i>``.

How a program is run:

* Each concurrent worker is a pre-started *zygote* (``_sandbox_child.py``, started once per worker
  and reused): it loads coverage.py's C tracer (the extension module alone, a smaller process to
  fork), starts it (measuring only the fixed path of ``program.py``), and enters, once, a user
  namespace (when not run as root, so that an ordinary user gets the same protections), a
  network namespace with no interface up, a PID namespace of which it is PID 1 (at most 512
  pids, Linux >= 6.14) and a private mount namespace in which every mount is read-only except
  its own temporary directory (a 256 MiB tmpfs); it drops every capability and sets
  no_new_privs. The kernel features actually obtained are reported by :func:`guarantees`.
* For every program the zygote writes ``program.py`` into a fresh, empty directory and forks a
  *runner* (no new interpreter, no new import; the zygote's job loop is the C extension
  ``harness._zygote`` where it can be, see :func:`job_loop`): the runner takes stdin =
  /dev/null, the stdout/stderr pipes the caller keeps per zygote (only their last 4 KiB are kept;
  the caller reads them empty after the zygote reports the job's end, when nothing of the job is
  left to write) and the zygote's HMAC-authenticated result pipe, closes every other descriptor,
  sets ``RLIMIT_AS`` (``memory_mb``; never below what the
  interpreter already maps plus 128 MiB), ``RLIMIT_CPU`` and no core dumps, and runs program,
  setup and tests in one namespace with the tracer running only while user code runs (one line
  set per test). The environment is the fixed minimal one of ``_ENV`` (``PATH=/usr/bin:/bin``,
  ``LANG=C.UTF-8``, ``PYTHONHASHSEED=0``, ``COVERAGE_CORE=ctrace``, ``PYTHONDONTWRITEBYTECODE=1``,
  ``HOME`` = the program's directory); nothing of the caller's environment reaches it.
* Loading and every test get a wall-clock limit of ``timeout_s``: the runner's own alarm stops a
  test that runs over (outcome ``timeout``, its covered lines kept, the remaining tests continue
  in a fresh runner); one that ignores the alarm is killed by the caller at most 0.25 s later;
  a runner that dies without reporting (``os._exit``, a signal, a segfault, a resource limit)
  makes the running test ``crashed``; a record that fails the HMAC is
  ``crashed`` too. The runner is then killed and the remaining tests continue in a fresh runner
  that loads the program again. When a runner ends, the zygote kills every other process in its
  PID namespace (also ones that called ``setsid``) and empties the program's directory.
* Exit statuses are never trusted: a test passes only through an authenticated ``passed`` record.

What it protects against: the mistakes and accidents of model-written programs and the attacks
listed in ``tests/harness/test_sandbox_adversarial.py`` (infinite loops, fork and memory bombs,
output floods, forged verdicts, killing the caller, escaping the process group, writing outside
the program's directory, opening network connections). What it does NOT protect against: it is
not a VM. The program runs on the host kernel (a kernel exploit escapes it), can *read* every
file the user can (the file system is read-only, not hidden), shares the machine's CPU and memory
bandwidth with other jobs, and a program that deliberately inspects the runner's frames or memory
(``sys._getframe``, traceback frames, ``gc``, ``ctypes``) can find the HMAC key of its run or rebind
the runner's functions, and so forge verdicts. Use a VM or a container when running code from
untrusted people.

The result types and their JSON form live in :mod:`harness.results` (re-exported here); the
design, the throughput benchmark (``benchmarks/sandbox_throughput.py``) and its measurement
history are in ``docs/sandbox.md``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import marshal
import os
import resource
import select
import shutil
import signal
import site
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import EnvironmentProblem
from harness.results import OUTCOMES, ProgramResult, TestResult

if TYPE_CHECKING:
    from harness.cache import ResultCache

__all__ = ["OUTCOMES", "Job", "ProgramResult", "SandboxStartError", "TestResult", "guarantees",
           "harness_version", "job_loop", "run_batch", "run_tests", "shutdown"]

log = logging.getLogger(__name__)

_CHILD_SCRIPT = str(Path(__file__).with_name("_sandbox_child.py"))
_CHILD_CODE_FILE = "zygote.code"  # in a worker's directory: _sandbox_child.py compiled (marshal)
# The worker's start: run the compiled _sandbox_child.py as __main__, as ``python FILE`` would
# (same sys.argv positions, sys.path[0] and __file__), but without compiling it from source in
# the worker: the compiler's freed memory would stay in the worker as scattered heap that every
# fork per program copies (page tables) and every runner's exit tears down.
_CHILD_BOOT = (
    "import marshal, sys\n"
    f"sys.path[0] = {str(Path(_CHILD_SCRIPT).parent)!r}\n"
    f"with open(sys.argv[2] + '/{_CHILD_CODE_FILE}', 'rb') as _f:\n"
    "    _code = marshal.load(_f)\n"
    f"__file__ = {_CHILD_SCRIPT!r}\n"
    "del _f, marshal\n"
    "exec(_code, globals())\n")
_TAIL_BYTES = 4096
_MIN_MEMORY_MB = 256
_STARTUP_LIMIT_S = 30.0  # interpreter + coverage import; generous for a loaded machine
_EXIT_GRACE_S = 2.0  # waiting for a worker's answer after a job ended or was killed
_KILL_GRACE_S = 0.25  # at most this long past a phase's limit before the runner is killed
_READ_CHUNK = 65536
_MAX_RECORD_BYTES = 64 << 20
_MAX_TIMEOUT_S = 86400.0
_INTERPRETER_HEADROOM = 128 << 20  # bytes above what the worker maps before the program runs
_MAX_IDLE = 16
_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
        "COVERAGE_CORE": "ctrace", "PYTHONDONTWRITEBYTECODE": "1"}


def _zygote_only_env() -> dict[str, str]:
    """Variables for the zygote only, which removes them before any program runs.

    ``LD_BIND_NOW``: the dynamic linker binds every symbol at start, so no runner writes (and
    copies) a page of a library's symbol table. ``SANDBOX_SITE_PACKAGES``: this environment's
    site-packages folders; the zygote runs without ``site`` (``-S``) and puts them on its
    ``sys.path`` itself (see ``_sandbox_child._site_without_hooks``).
    """
    folders = site.getsitepackages() if hasattr(site, "getsitepackages") else []
    return {"LD_BIND_NOW": "1", "SANDBOX_SITE_PACKAGES": os.pathsep.join(folders)}


@dataclass(frozen=True)
class Job:
    """One program to run in :func:`run_batch`.

    Attributes:
        id: Caller's identifier (e.g. an MBPP task id), carried through untouched.
        program: Program source.
        tests: Test snippets (a list is accepted and stored as a tuple).
        setup: Setup code executed after the program, before the tests.
        timeout_s: This job's per-phase wall-clock limit in seconds (``None`` = the batch's
            ``timeout_s``), e.g. a problem's limit derived from its reference's running time.
        budget_s: This job's time budget in seconds (``None`` = the batch's ``budget_s``), as
            in :func:`run_tests`.
    """

    id: str
    program: str
    tests: tuple[str, ...]
    setup: str = ""
    timeout_s: float | None = None
    budget_s: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tests", tuple(self.tests))


def _child_code() -> bytes:
    """``_sandbox_child.py`` compiled as the worker's ``python -S`` would (no -O), marshalled;
    compiled once per process."""
    global _CHILD_MARSHAL
    if _CHILD_MARSHAL is None:
        source = Path(_CHILD_SCRIPT).read_bytes()
        _CHILD_MARSHAL = marshal.dumps(compile(source, _CHILD_SCRIPT, "exec", dont_inherit=True,
                                               optimize=0))
    return _CHILD_MARSHAL


_CHILD_MARSHAL: bytes | None = None


def harness_version() -> str:
    """Short hash of the sandbox's own source (``sandbox.py``, ``_sandbox_child.py`` and the
    result format, ``results.py``): results from other versions are not comparable."""
    global _VERSION
    if _VERSION is None:
        digest = hashlib.sha256()
        for path in (Path(__file__), Path(_CHILD_SCRIPT), Path(__file__).with_name("results.py")):
            digest.update(path.read_bytes())
        _VERSION = digest.hexdigest()[:16]
    return _VERSION


_VERSION: str | None = None


def guarantees() -> dict[str, bool]:
    """Say which protections the sandbox enforces on this machine (True) and which it does not.

    The kernel features are probed once per process by the first sandbox worker (a *zygote*,
    see the module docstring); the answer is cached. Starts a worker when none has run yet.

    Raises:
        SandboxStartError: no worker could be started to probe the machine.

    Returns:
        ``time_limit`` (per-test and load wall-clock limits), ``cpu_time_limit``
        (``RLIMIT_CPU``), ``memory_limit`` (``RLIMIT_AS``), ``process_cleanup`` (programs run
        in the worker's own PID namespace; when a run ends every process it started is killed,
        also ones that called ``setsid``), ``fork_bomb_contained`` (at most 512 pids per
        program, via the per-namespace ``pid_max`` of Linux >= 6.14), ``network`` (a network
        namespace with no interface up), ``filesystem`` (every mount read-only except the
        program's temporary directory, in a private mount namespace), ``disk_quota`` (that
        directory is a private 256 MiB tmpfs: a program writing more gets ``ENOSPC``),
        ``privileges_dropped``
        (all capabilities dropped, no_new_privs), ``environment`` (minimal, fixed environment),
        ``stdin_closed``, ``output_capped`` (4 KiB tails), ``unforgeable_verdicts`` (results
        are HMAC-authenticated with a per-run key; the runner's own code runs with the original
        builtins and calls only references saved before the program runs; the caller never
        trusts an exit status — this holds against blind attacks and rebound builtins, not
        against a program that walks the runner's frames or reads its memory).

        The namespace-based entries need either root or unprivileged user namespaces (the
        worker enters one first when not root; ``/proc/sys/user/max_user_namespaces`` > 0 and,
        on Debian/Ubuntu kernels, ``kernel.unprivileged_userns_clone`` = 1 or no AppArmor
        restriction); ``fork_bomb_contained`` needs Linux >= 6.14 (per-namespace ``pid_max``).
    """
    global _GUARANTEES
    if _GUARANTEES is None:
        zygote = _POOL.acquire()
        _POOL.release(zygote)
        f = zygote.features
        _GUARANTEES = {
            "time_limit": True, "cpu_time_limit": True, "memory_limit": True,
            "process_cleanup": f["pid_namespace"], "fork_bomb_contained": f["pid_limit"],
            "network": f["network_namespace"], "filesystem": f["filesystem"],
            "disk_quota": f["filesystem"] and f.get("tmpfs", False),
            "privileges_dropped": f["capabilities_dropped"], "environment": True,
            "stdin_closed": True, "output_capped": True, "unforgeable_verdicts": True}
    return dict(_GUARANTEES)


_GUARANTEES: dict[str, bool] | None = None


def job_loop() -> str:
    """Which loop the sandbox workers serve jobs with on this machine.

    Returns:
        ``"c"``: the compiled extension ``harness._zygote`` (built by ``pip install``; used where
        the worker is PID 1 of its own PID namespace), or ``"python"``: the same loop in Python
        (no C compiler at install time, or no PID namespace; the same guarantees, somewhat more
        CPU per program). Starts a worker if none is running.
    """
    zygote = _POOL.acquire()
    _POOL.release(zygote)
    return zygote.job_loop


@dataclass
class _Tail:
    """Keeps the last ``_TAIL_BYTES`` bytes written to it."""

    data: bytearray = field(default_factory=bytearray)

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > _TAIL_BYTES:
            del self.data[:-_TAIL_BYTES]

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        log.warning(message)


def _above_stdio(fd: int) -> int:
    """``fd``, or a copy of it numbered 3 or more when it is 0, 1 or 2 (a caller that closed its
    stdin gets 0 from ``os.pipe``; passed to the worker it would clash with its stdin)."""
    if fd > 2:
        return fd
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return moved


class SandboxStartError(EnvironmentProblem):
    """No sandbox worker could be started (the machine, not the program: too few file
    descriptors or processes, no interpreter, coverage.py's C tracer missing, a worker that did
    not say hello in time). ``python -m harness.run`` exits 3 on it."""


class _ZygoteLost(RuntimeError):
    """The zygote stopped answering or died; the pool replaces it."""


class _Zygote:
    """One pre-started worker process (``_sandbox_child.py``) that forks a runner per program."""

    def __init__(self, user_namespace: bool = False, python_only: bool = False) -> None:
        """Start the worker; ``user_namespace`` makes it enter a user namespace even as root
        (it always does when not run as root); ``python_only`` makes it do without its C
        extension (``harness._zygote``: job loop, limits, builtins' version tag) where it could
        use it, as on a machine without a C compiler (for tests of the Python fallbacks)."""
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # The result, stdout and stderr pipes of every runner of this zygote (the zygote holds
        # the write ends; after each job the caller reads them empty, see _run_child).
        self.pipes = [(r, _above_stdio(w)) for r, w in (os.pipe() for _ in range(3))]
        theirs = socket.socket(fileno=_above_stdio(theirs.detach()))
        self.result_r, self.out_r, self.err_r = (r for r, _ in self.pipes)
        for r, _ in self.pipes:
            os.set_blocking(r, False)
        # One poller for every job: the result pipe, stdout, stderr, then the control socket.
        self.poller = select.poll()  # not select.select: it fails for descriptors >= 1024
        for fd in (self.result_r, self.out_r, self.err_r, self.sock.fileno()):
            self.poller.register(fd, select.POLLIN)
        self.sock_poller = select.poll()  # the control socket alone (see message)
        self.sock_poller.register(self.sock, select.POLLIN)
        write_ends = [w for _, w in self.pipes]
        self.errors = tempfile.TemporaryFile()
        self.buffer = b""
        self.healthy = True
        _sweep_stale_directories()
        self.base = tempfile.mkdtemp(prefix=_BASE_PREFIX)
        self.owner = os.open(self.base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self.owner, fcntl.LOCK_EX)  # held while this caller lives (see the sweep)
        os.chmod(self.base, 0o755)  # noqa: S103 - the program's directory lives inside
        try:
            with open(os.path.join(self.base, _CHILD_CODE_FILE), "wb") as f:
                f.write(_child_code())
            self.proc = subprocess.Popen(
                [sys.executable, "-S", "-s", "-B", "-c", _CHILD_BOOT, str(theirs.fileno()),
                 self.base, *map(str, write_ends), *(["--user-namespace"] if user_namespace else []),
                 *(["--python-only"] if python_only else [])],
                cwd="/", env={**_ENV, **_zygote_only_env()}, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=self.errors,
                pass_fds=(theirs.fileno(), *write_ends), start_new_session=True)
        except BaseException:
            self.sock.close()
            self.errors.close()
            for r, _ in self.pipes:
                os.close(r)
            os.close(self.owner)
            _remove_tree(self.base)
            raise
        finally:
            theirs.close()
            for w in write_ends:
                os.close(w)
        hello = self.message(_STARTUP_LIMIT_S)
        with contextlib.suppress(OSError):  # read by now (or the worker failed to start)
            os.unlink(os.path.join(self.base, _CHILD_CODE_FILE))
        if hello is None or "hello" not in hello:
            self.close()
            raise SandboxStartError(f"sandbox worker failed to start (got {hello!r}); its "
                                    f"stderr: {self.stderr()[-1000:]}")
        self.features: dict[str, bool] = hello["hello"]
        self.job_loop: str = hello["job_loop"]  # "c" (harness._zygote) or "python"
        if self.job_loop == "python" and self.features["pid_namespace"] and not python_only:
            _warn_once("the sandbox's C job loop (harness._zygote) is not built, so workers "
                       "serve jobs with the slower Python loop; install a C compiler and "
                       "reinstall (pip install -e .) to build it")
        self.vm_bytes: int = hello["vm_bytes"]
        self.as_hard: int = hello["as_hard"]

    def stderr(self) -> str:
        try:
            self.errors.seek(0)
            return self.errors.read().decode("utf-8", errors="replace")
        except (OSError, ValueError):
            return ""

    def message(self, timeout_s: float, final: bool = True, readable: bool = False) -> dict | None:
        """Next JSON line from the zygote, or None on timeout / EOF.

        EOF makes the zygote unhealthy; so does a timeout when ``final``. ``readable``: the
        socket is known to have data (or EOF), so the first read does not wait for it.
        """
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if readable:
                readable = False
            elif remaining <= 0 or not self.sock_poller.poll(remaining * 1e3):
                self.healthy = self.healthy and not final
                return None
            try:
                chunk = self.sock.recv(_READ_CHUNK)
            except OSError:  # e.g. reset by a worker that died with a job unread
                chunk = b""
            if not chunk:
                self.healthy = False
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def send_job(self, program: str, job: dict) -> None:
        """Send one job: ``J``, the program's and the job JSON's lengths, the program (UTF-8;
        undecodable bytes kept as surrogate escapes), the JSON."""
        text = program.encode("utf-8", "surrogateescape")
        body = json.dumps(job).encode()
        try:
            self.sock.sendall(b"J" + struct.pack("!II", len(text), len(body)) + text + body)
        except OSError as exc:
            self.healthy = False
            raise _ZygoteLost(f"sandbox worker is gone ({exc})") from exc

    def kill_job(self) -> None:
        try:
            self.sock.sendall(b"K")
        except OSError:
            self.healthy = False

    def close(self) -> None:
        """Stop the zygote (closing its socket ends it and any job it runs); wait for it."""
        self.healthy = False
        self.sock.close()
        try:
            self.proc.wait(_EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.errors.close()
        for r, _ in self.pipes:
            os.close(r)
        os.close(self.owner)
        _remove_tree(self.base)


_BASE_PREFIX = "sandbox-zygote-"  # a worker's directory, locked (flock) by its caller while used
_STALE_AFTER_S = 60.0  # younger unlocked directories may be a caller's between mkdtemp and flock
_SWEPT = False


def _sweep_stale_directories() -> None:
    """Once per process: remove this user's worker directories whose caller is gone (a caller
    killed with SIGKILL cannot remove its own; they hold only empty folders). A directory is
    stale when nobody holds the lock on it (which works across PID namespaces) and it has not
    changed for ``_STALE_AFTER_S`` (so that a caller starting at the same moment, between making
    its directory and locking it, keeps it)."""
    global _SWEPT
    if _SWEPT:
        return
    _SWEPT = True
    folder = tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(folder) if n.startswith(_BASE_PREFIX)]
    except OSError:
        return
    for name in names:
        path = os.path.join(folder, name)
        try:
            info = os.lstat(path)
            if info.st_uid != os.getuid() or time.time() - info.st_mtime < _STALE_AFTER_S:
                continue
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue  # another user's, or removed meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # its caller is alive
        finally:
            os.close(fd)
        _remove_tree(path)


def _remove_tree(path: str) -> None:
    """Remove a worker's directory, also entries a program made unreadable."""
    def unlock(func, target, _exc_info) -> None:
        os.chmod(os.path.dirname(target), 0o700)
        if os.path.isdir(target) and not os.path.islink(target):
            os.chmod(target, 0o700)
        func(target)

    if not os.path.lexists(path):
        return
    try:
        shutil.rmtree(path, onerror=unlock)
    except OSError as exc:
        log.warning("could not remove sandbox directory %s: %s", path, exc)


class _Pool:
    """Idle zygotes shared by all calls in this process; started on demand, closed at exit."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: list[_Zygote] = []
        self.busy: set[_Zygote] = set()

    def acquire(self) -> _Zygote:
        with self.lock:
            while self.idle:
                zygote = self.idle.pop()
                if zygote.healthy and zygote.proc.poll() is None:
                    self.busy.add(zygote)
                    return zygote
                zygote.close()
        try:
            zygote = _Zygote()
        except OSError as exc:  # descriptors, processes, memory or the temporary folder
            raise SandboxStartError(f"sandbox worker could not be started: {exc}") from exc
        with self.lock:
            self.busy.add(zygote)
        return zygote

    def release(self, zygote: _Zygote) -> None:
        with self.lock:
            self.busy.discard(zygote)
        if zygote.healthy:  # acquire checks that it is still alive
            with self.lock:
                if len(self.idle) < _MAX_IDLE:
                    self.idle.append(zygote)
                    return
        zygote.close()

    def close_all(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for zygote in idle:
            zygote.close()


_POOL = _Pool()


def shutdown() -> None:
    """Stop the idle sandbox workers now (also done at interpreter exit; the next call restarts)."""
    _POOL.close_all()


def _forget_pool_after_fork() -> None:
    # A forked copy of the caller must not talk to (or stop) its parent's zygotes.
    global _POOL
    _POOL = _Pool()


atexit.register(shutdown)
os.register_at_fork(after_in_child=_forget_pool_after_fork)


@dataclass
class _ChildRun:
    """What one runner reported before it finished, timed out or died."""

    load: dict | None = None
    results: dict[int, dict] = field(default_factory=dict)
    first: int = 0  # index of the first test this runner runs
    n_tests: int = 0
    running: int | None = None  # index of the test running now (the one after the last record)
    running_since: float = 0.0
    done: bool = False
    next_test: int = 0  # from ``done`` (sent after a timeout): where a fresh runner must go on
    timed_out: bool = False
    protocol_error: str = ""
    returncode: int | None = None
    ready: bool = False
    lost: str = ""  # why the zygote had to be replaced


def _exit_reason(run: _ChildRun) -> str:
    if run.lost:
        return run.lost
    if run.returncode is None:
        return "sandbox process ended without reporting (killed or failed to set up)"
    if run.returncode < 0:
        try:
            name = signal.Signals(-run.returncode).name
        except ValueError:
            name = "unknown signal"
        return f"child process killed by signal {name} ({-run.returncode})"
    return f"child process exited with code {run.returncode}"


def _run_child(zygote: _Zygote, program: str, tests: Sequence[str], setup: str, start: int,
               timeout_s: float, memory_bytes: int, out: _Tail, err: _Tail) -> _ChildRun:
    """Run tests ``start..`` in one fresh runner forked by ``zygote``; return what it reported."""
    key = os.urandom(32)
    job = {"setup": setup, "tests": list(tests), "start": start,
           "timeout_s": timeout_s, "memory_bytes": memory_bytes, "key": key.hex()}
    run = _ChildRun(first=start, n_tests=len(tests))
    try:
        zygote.send_job(program, job)
    except _ZygoteLost as exc:
        run.lost = str(exc)
        return run
    tails = {zygote.out_r: out, zygote.err_r: err}
    replied = _read_records(run, zygote, tails, _RecordMac(key), timeout_s)
    if run.timed_out or run.protocol_error:
        zygote.kill_job()
    # After ``done`` or the runner's death, init reports at once; otherwise kill it.
    reply = zygote.message(_EXIT_GRACE_S, final=False, readable=replied)
    if reply is None and zygote.healthy:
        zygote.kill_job()
        reply = zygote.message(_EXIT_GRACE_S)
    if reply is None:
        run.lost = run.lost or "sandbox worker stopped answering; replaced"
    else:
        status = reply.get("exit")
        run.returncode = None if status is None else os.waitstatus_to_exitcode(status)
        # Every process of the job has ended: what is left in the pipes is this job's.
        _drain(zygote, tails)
    return run


def _read_records(run: _ChildRun, zygote: _Zygote, tails: dict[int, _Tail], mac: _RecordMac,
                  timeout_s: float) -> bool:
    """Read authenticated records and output until ``done``, the zygote's reply (the runner
    has ended), a bad record or a deadline. ``tails``: stdout's and stderr's read ends with
    their tails. True when it stopped at the zygote's reply (the socket has data)."""
    result_fd = zygote.result_r
    buffer = b""
    deadline = time.monotonic() + _STARTUP_LIMIT_S
    while not run.done:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            run.timed_out = True
            return False
        for fd, _ in zygote.poller.poll(min(remaining, 3600.0) * 1e3):
            if fd == result_fd:
                try:
                    chunk = os.read(fd, _READ_CHUNK)
                except BlockingIOError:
                    continue
                buffer += chunk
                if len(buffer) > _MAX_RECORD_BYTES:
                    run.protocol_error = "malformed record from child: record too long"
                    return False
                buffer, ok = _take_records(run, buffer, mac)
                if not ok:
                    return False
                # Every complete record moves the deadline: each phase gets timeout_s, and the
                # runner a short grace to stop the program itself (keeping its covered lines).
                if b"\n" in chunk and run.ready:
                    deadline = time.monotonic() + timeout_s + _grace(timeout_s)
                    if run.running is not None:
                        deadline = run.running_since + timeout_s + _grace(timeout_s)
            elif fd in tails:
                try:
                    tails[fd].add(os.read(fd, _READ_CHUNK))  # once: a program may print on
                except BlockingIOError:
                    continue
            else:  # the zygote's reply: the runner has ended
                _take_records(run, buffer + _read_all(result_fd), mac)
                return True
    return False


def _take_records(run: _ChildRun, data: bytes, mac: _RecordMac) -> tuple[bytes, bool]:
    """Apply the complete records in ``data``: (the incomplete rest, False after a bad one)."""
    *lines, rest = data.split(b"\n")
    for line in lines:
        try:
            _handle_record(run, mac.verify(line))
        except (ValueError, KeyError, TypeError) as exc:
            run.protocol_error = f"malformed or unauthenticated record from child: {exc}"
            return rest, False
    return rest, True


def _read_all(fd: int) -> bytes:
    """What a non-blocking pipe holds now (b"" when nothing); only for pipes whose writers have
    all ended (else a program that prints without end would keep this reading, and a short
    read would not mean the end)."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, _READ_CHUNK)
        except BlockingIOError:
            break
        chunks.append(chunk)
        if len(chunk) < _READ_CHUNK:  # the pipe is empty, and nobody can write to it any more
            break
    return b"".join(chunks)


def _grace(timeout_s: float) -> float:
    """Seconds the caller waits past ``timeout_s`` before it kills a runner (its own alarm stops
    the program at ``timeout_s``; only a program that ignores it costs the grace as well)."""
    return min(_KILL_GRACE_S, 0.1 * timeout_s)


_IPAD = bytes(x ^ 0x36 for x in range(256))  # RFC 2104 inner and outer pads, as translations
_OPAD = bytes(x ^ 0x5C for x in range(256))
_scan_json = json.JSONDecoder().scan_once  # (str, index) -> (value, end), in C


class _RecordMac:
    """Checks the records of one runner: ``<HMAC-SHA256 hex of body> <JSON object>`` (RFC 2104,
    the key's inner and outer hash states prepared once per job, as the runner's ``_Pipe``)."""

    def __init__(self, key: bytes) -> None:
        block = key.ljust(64, b"\0")  # keys are 32 bytes, shorter than SHA-256's block
        self.inner = hashlib.sha256(block.translate(_IPAD))
        self.outer = hashlib.sha256(block.translate(_OPAD))

    def verify(self, line: bytes) -> dict:
        """The record in ``line``. Raises ValueError (bad MAC or JSON) or TypeError (not an
        object)."""
        mac, _, body = line.partition(b" ")
        inner, outer = self.inner.copy(), self.outer.copy()
        inner.update(body)
        outer.update(inner.digest())
        if not hmac.compare_digest(mac, outer.hexdigest().encode()):
            raise ValueError("bad HMAC (not written by the sandbox runner)")
        text = body.decode("utf-8")
        try:
            record, end = _scan_json(text, 0)
        except StopIteration as exc:
            raise ValueError(f"record is not JSON (at character {exc.value})") from None
        if end != len(text):
            raise ValueError("extra data after the record")
        if not isinstance(record, dict):
            raise TypeError("record is not an object")
        return record


def _handle_record(run: _ChildRun, record: dict) -> None:
    """Apply one record. The runner starts each test right after the previous record (``load``
    or the previous ``result``), so the test running now is known without a record of its own."""
    kind = record["kind"]
    if kind == "ready":
        run.ready = True
    elif kind == "load":
        run.load = record
        if record["outcome"] == "passed":
            _now_running(run, run.first)
    elif kind == "result":
        i = int(record["i"])
        run.results[i] = record
        _now_running(run, i + 1)
    elif kind == "done":
        run.done = True
        run.running = None
        run.next_test = int(record["next"])
    else:
        raise ValueError(f"unknown record kind {kind!r}")


def _now_running(run: _ChildRun, i: int) -> None:
    run.running = i if i < run.n_tests else None
    run.running_since = time.monotonic()


def _drain(zygote: _Zygote, tails: dict[int, _Tail]) -> None:
    """Read the zygote's pipes empty after a job (what is left in the result pipe is not read
    any more); stdout and stderr into their tails. Only pipes that have data are read."""
    for fd, _ in zygote.poller.poll(0):
        if fd == zygote.result_r:
            _read_all(fd)
        elif fd in tails:
            tails[fd].add(_read_all(fd))


def _failure_reason(run: _ChildRun, timeout_s: float, err: _Tail) -> tuple[str, str]:
    """Outcome and message for the phase a runner did not finish."""
    if run.protocol_error:
        return "crashed", run.protocol_error
    if run.timed_out:
        if not run.ready:
            return "crashed", (f"sandbox child did not start within {_STARTUP_LIMIT_S:g} s; "
                               f"stderr: {err.text()[-500:]}")
        return "timeout", f"timed out after {timeout_s:g} s (wall clock); processes killed"
    reason = _exit_reason(run)
    if not run.ready:
        return "crashed", f"sandbox child failed to start ({reason}); stderr: {err.text()[-500:]}"
    return "crashed", reason


def _test_result(name: str, record: dict) -> TestResult:
    """The verdict in a runner's ``result`` record (``{"kind", "i", "outcome", ...}``)."""
    return TestResult.from_json({**record, "name": name})


def _check_limits(timeout_s: float, memory_mb: int) -> None:
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float):
        raise ValueError(f"timeout_s must be a number of seconds, got {timeout_s!r}")
    if not 0 < timeout_s <= _MAX_TIMEOUT_S:
        raise ValueError(f"timeout_s must be > 0 and <= {_MAX_TIMEOUT_S:g} seconds, "
                         f"got {timeout_s!r}")
    if isinstance(memory_mb, bool) or not isinstance(memory_mb, int):
        raise ValueError(f"memory_mb must be an integer number of MiB, got {memory_mb!r}")
    if memory_mb < _MIN_MEMORY_MB:
        raise ValueError(f"memory_mb must be >= {_MIN_MEMORY_MB} MiB (the interpreter and "
                         f"coverage need it), got {memory_mb}")


def _memory_bytes(memory_mb: int, zygote: _Zygote) -> int:
    """The address-space limit: never below what the worker itself already maps, plus room."""
    wanted = max(memory_mb * 1024 * 1024, zygote.vm_bytes + _INTERPRETER_HEADROOM)
    if zygote.as_hard not in (resource.RLIM_INFINITY, -1):
        wanted = min(wanted, zygote.as_hard)
    return min(wanted, 1 << 62)


def run_tests(program: str, tests: Sequence[str], setup: str = "", *, timeout_s: float = 5.0,
              memory_mb: int = 2048, test_names: Sequence[str] | None = None,
              budget_s: float | None = None) -> ProgramResult:
    """Run ``tests`` against ``program`` in a sandboxed process.

    Args:
        program: Program source; its lines are the only ones whose coverage is recorded.
        tests: Test snippets, each executed in the program's global namespace.
        setup: Code executed after the program and before the tests (not measured).
        timeout_s: Wall-clock limit in seconds for loading program + setup, and for each test
            (the CPU-time limit of a runner is this times the number of its tests plus one).
        memory_mb: Address-space limit of the runner in MiB (at least 256; raised to what the
            interpreter itself maps when that is more).
        test_names: Names for the tests (default ``test_0``, ``test_1``, ...).
        budget_s: Time budget of the whole program in seconds (``None`` = none): once this much
            wall-clock time has passed, no fresh runner is started for the remaining tests
            (after a test that timed out or crashed); they are settled as ``timeout`` with the
            message "not run: ...". A program whose tests all loop then costs about
            ``budget_s + timeout_s`` instead of ``timeout_s`` per test.

    Returns:
        A :class:`ProgramResult` with one :class:`TestResult` per test, in order. Failures of the
        program (exceptions, timeouts, crashes) are reported in it, never raised.

    Raises:
        ValueError: If ``timeout_s`` is not in (0, 86400], ``memory_mb`` is not an integer
            >= 256, an argument has the wrong type, or the number of ``test_names`` differs
            from the number of tests.
        SandboxStartError: If no sandbox worker can be started at all (a ``RuntimeError``).
    """
    if not isinstance(program, str) or not isinstance(setup, str):
        raise ValueError(f"program and setup must be str, got {type(program).__name__} and "
                         f"{type(setup).__name__}; decode bytes first (errors='surrogateescape' "
                         "keeps undecodable bytes)")
    tests = list(tests)
    if not all(isinstance(t, str) for t in tests):
        raise ValueError("every test must be a str")
    names = [f"test_{i}" for i in range(len(tests))] if test_names is None else list(test_names)
    if len(names) != len(tests):
        raise ValueError(f"got {len(names)} test_names for {len(tests)} tests; pass one name "
                         "per test or none")
    _check_limits(timeout_s, memory_mb)
    if budget_s is not None:
        _check_limits(budget_s, memory_mb)
    deadline = None if budget_s is None else time.monotonic() + budget_s
    out, err = _Tail(), _Tail()
    verdicts: list[TestResult | None] = [None] * len(tests)
    load: tuple[str, str, tuple[int, ...]] | None = None
    start = 0
    zygote = _POOL.acquire()
    try:
        for _ in range(len(tests) + 1):  # every runner settles >= 1 test or ends the run
            if start and deadline is not None and time.monotonic() > deadline:
                for i in range(start, len(tests)):
                    verdicts[i] = TestResult(names[i], "timeout", f"not run: the program used its "
                                             f"time budget of {budget_s:g} s", 0.0)
                break
            if not zygote.healthy:
                _POOL.release(zygote)  # closes it
                zygote = _POOL.acquire()
            run = _run_child(zygote, program, tests, setup, start, timeout_s,
                             _memory_bytes(memory_mb, zygote), out, err)
            for i, record in run.results.items():
                if start <= i < len(tests):
                    verdicts[i] = _test_result(names[i], record)
            if run.load is None or run.load["outcome"] != "passed":
                if run.load is not None:
                    outcome, message = run.load["outcome"], run.load["message"]
                else:
                    outcome, message = _failure_reason(run, timeout_s, err)
                if load is None:
                    covered = tuple(run.load["covered_lines"]) if run.load else ()
                    load = (outcome, message, covered)
                else:  # loaded before, failed in a fresh runner: settle the remaining tests
                    message = f"program failed to load again in a fresh child: {message}"
                for i in range(start, len(tests)):
                    verdicts[i] = TestResult(names[i], outcome, message, 0.0)
                break
            if load is None:
                load = ("passed", "", tuple(run.load["covered_lines"]))
            if run.done:
                if run.next_test >= len(tests):
                    break
                start = max(run.next_test, start + 1)  # the runner stopped a test that timed out
                continue
            if run.running is None:  # ended after its last result (the normal end of a runner)
                break
            # The runner stopped inside (or between) tests: settle that test, go on in a new one.
            outcome, message = _failure_reason(run, timeout_s, err)
            stuck, duration = run.running, time.monotonic() - run.running_since
            verdicts[stuck] = TestResult(names[stuck], outcome, message, duration)
            start = stuck + 1
            if start >= len(tests):
                break
    finally:
        _POOL.release(zygote)
    assert load is not None and all(v is not None for v in verdicts), "unsettled test"
    return ProgramResult(tests=tuple(verdicts), load_outcome=load[0], load_message=load[1],
                         load_covered_lines=load[2], stdout_tail=out.text(),
                         stderr_tail=err.text())


def run_batch(jobs: Sequence[Job], *, workers: int = 2, timeout_s: float = 5.0,
              memory_mb: int = 2048, progress: bool = False,
              cache: ResultCache | None = None, budget_s: float | None = None) -> list[ProgramResult]:
    """Run many programs, ``workers`` at a time (one pre-started sandbox worker each).

    Args:
        jobs: Programs with their tests and setup.
        workers: Number of programs run concurrently (threads, each driving one zygote).
        timeout_s: Per-phase wall-clock limit in seconds, as in :func:`run_tests`, for the jobs
            without their own ``timeout_s``.
        memory_mb: Address-space limit per program in MiB.
        progress: Show a tqdm progress bar on stderr.
        cache: A :class:`harness.cache.ResultCache`; jobs found in it are not run, new results
            are stored in it.
        budget_s: Time budget per program, as in :func:`run_tests`, for the jobs without their
            own ``budget_s``.

    Returns:
        One :class:`ProgramResult` per job, in the order of ``jobs``.

    Raises:
        ValueError: If ``workers`` < 1, or as :func:`run_tests`.
        SandboxStartError: If no sandbox worker can be started (the first job's error stops
            the batch).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    _check_limits(timeout_s, memory_mb)
    jobs = list(jobs)
    limits = [timeout_s if job.timeout_s is None else job.timeout_s for job in jobs]
    budgets = [budget_s if job.budget_s is None else job.budget_s for job in jobs]
    for limit in set(limits) | {b for b in budgets if b is not None}:
        _check_limits(limit, memory_mb)
    results: list[ProgramResult | None] = [None] * len(jobs)
    keys: list[str | None] = [None] * len(jobs)
    todo: list[int] = []
    first_of: dict[str, int] = {}  # identical jobs in one batch run once (with a cache)
    for i, job in enumerate(jobs):
        if cache is not None:
            keys[i] = cache.key(job.program, job.tests, job.setup, timeout_s=limits[i],
                                memory_mb=memory_mb, budget_s=budgets[i])
            if keys[i] in first_of:
                continue
            first_of[keys[i]] = i
            results[i] = cache.get(keys[i])
        if results[i] is None:
            todo.append(i)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="sandbox",
                   unit="program", file=sys.stderr)

    # ``workers`` threads take the next job in turn (no future or queue per job: the threads
    # wake only for their own runners' records).
    pending = iter(todo)
    lock = threading.Lock()
    failures: list[BaseException] = []

    def work() -> None:
        while not failures:
            with lock:
                i = next(pending, None)
            if i is None:
                return
            job = jobs[i]
            try:
                results[i] = run_tests(job.program, job.tests, job.setup, timeout_s=limits[i],
                                       memory_mb=memory_mb, budget_s=budgets[i])
                if cache is not None:
                    cache.put(keys[i], results[i])
            except BaseException as exc:  # noqa: B036 - re-raised in the calling thread
                failures.append(exc)
                return
            if bar is not None:
                bar.update(1)

    threads = [threading.Thread(target=work, name=f"sandbox-batch-{n}", daemon=True)
               for n in range(min(workers, len(todo)))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    except BaseException as exc:  # e.g. KeyboardInterrupt: the threads start no further job
        failures.append(exc)
        raise
    finally:
        if bar is not None:
            bar.close()
    if failures:
        raise failures[0]
    for i, key in enumerate(keys):
        if results[i] is None:  # a duplicate of an earlier job in this batch
            results[i] = results[first_of[key]]
    return results  # type: ignore[return-value]

