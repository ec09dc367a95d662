"""Zygote and per-program runner of ``harness.sandbox`` (internal; not imported by the parent).

Run as ``__main__``, never as part of the ``harness`` package::

    python -S -s -B _sandbox_child.py CONTROL_FD BASE_DIR RESULT_FD STDOUT_FD STDERR_FD
                                   [--user-namespace] [--python-only]

(``harness.sandbox`` starts it the same way from its compiled code, see ``_CHILD_BOOT`` there.)

The *zygote* loads coverage.py's C tracer once (``_LineTracer``), starts it (measuring only its
fixed program path ``<base>/run/program.py``), warms the tracer's per-file decisions and pauses
it, and enters its namespaces once (see ``_enter_namespaces``): a user namespace when not root
(or when ``--user-namespace`` is given), a network namespace, a PID namespace of which it is PID
1 (the launcher that started it stays outside and exits with it) with ``pid_max`` =
``_PID_MAX``, and a mount namespace in which every mount is read-only except the program
directory ``BASE_DIR/run`` (a private tmpfs of ``_TMPFS_BYTES``). It drops every capability,
says hello over the control socket and serves one job at a time. For every job it writes
``program.py`` and forks one *runner* (as PID 1 of its namespace with the loop of the C
extension ``harness._zygote`` when built, which touches far fewer pages of memory per job than a
Python loop; else with the same loop in Python, ``_serve``)::

    launcher ── zygote (PID 1 of its namespace) ── runner (one per program, or per restart)

* *runner* closes every descriptor but stdout/stderr and the result pipe (the write ends of the
  caller's three pipes of this zygote, lent to each runner in turn on 1, 2 and a high descriptor)
  and stdin (/dev/null), sets ``RLIMIT_AS``, ``RLIMIT_CPU`` and
  ``RLIMIT_CORE``, and runs the program, setup and tests, resuming the tracer only while user
  code runs; the lines traced during each test are that test's coverage. Its own code runs with
  the original builtins and calls only references saved before the program ran
  (``_BuiltinsGuard``); records are encoded and signed by C code (json's C encoder, SHA-256).
* When the runner ends (or the caller asks with ``K``), the zygote SIGKILLs every other process
  of its PID namespace (``kill(-1)`` from PID 1: also processes that called ``setsid``), reaps
  them and empties the program's directory before it reports ``{"exit": status}``: from then on
  nothing writes to the pipes, and the caller reads what is left in them as this job's.

Records go to the result pipe as ``<mac> <json>\\n``, where ``mac`` is an HMAC-SHA256 of the JSON
under the per-run key the caller sent with the job::

    {"kind": "ready"}
    {"kind": "load", "outcome", "message", "covered_lines"}
    {"kind": "result", "i", "outcome", "message", "duration_s", "covered_lines"}
    {"kind": "done", "next"}  (only after a test that timed out: the runner ends; ``next`` is
                              the test a fresh runner must go on with)

A test starts right after the record before it (``load``, or the previous ``result``), which is
how the caller knows which test was running when a runner dies or is killed.

Control protocol (``CONTROL_FD`` is an AF_UNIX stream socket). Caller to zygote: ``J``, the
program's and the job JSON's lengths (4-byte big-endian each), the program (UTF-8), the job JSON;
or ``K`` (kill the running job). Zygote to caller: one JSON line, ``{"hello": {features}}`` at
start (with ``"job_loop": "c" | "python"``) and ``{"exit": raw_wait_status | null}`` after
each job.
"""

import sys

# The script's own directory (harness/) must not be importable by the program under test.
if sys.path and sys.path[0]:
    del sys.path[0]


def _site_without_hooks() -> None:
    """What ``site`` gives a program, without running ``site``'s start-up (the interpreter runs
    with ``-S``): the caller's site-packages folders (``$SANDBOX_SITE_PACKAGES``, taken out of
    the environment) after the standard library on ``sys.path``, so third-party packages stay
    importable; and the builtins ``exit``, ``quit``, ``help``, ``copyright``, ``credits``,
    ``license``. Not done: ``.pth`` files (import hooks of editable installs and the like) and
    ``sitecustomize``; they import dozens of modules that every forked runner would copy again."""
    import os
    import site  # with -S importing it runs nothing

    for folder in os.environ.pop("SANDBOX_SITE_PACKAGES", "").split(os.pathsep):
        if folder and folder not in sys.path:
            sys.path.append(folder)
    site.setquit()
    site.setcopyright()
    site.sethelper()


_site_without_hooks()

import _collections_abc  # noqa: E402
import _json  # noqa: E402
import _signal  # noqa: E402
import functools  # noqa: E402
import gc  # noqa: E402
import importlib.machinery  # noqa: E402
import os  # noqa: E402
import stat  # noqa: E402
import time  # noqa: E402

# Imported for the programs, not for the zygote's own use. Every module the zygote holds is
# mapped into every runner, and unused memory slows every fork; but a module a program imports
# for itself costs that runner a cold import. These are the ones MBPP's reference programs import
# most (itertools is built in; docs/sandbox.md has the counts and the measurements). The
# zygote's own code needs neither json's nor signal's Python layer, traceback nor linecache.
_PRELOADED = ("collections", "heapq", "math", "re")
for _name in _PRELOADED:
    __import__(_name)

_MESSAGE_LINES = 15
_MESSAGE_CHARS = 2000
_HIGH_FD = 200
_PID_MAX = 512  # processes per program (minimum the kernel accepts is 301)
_WARM_RUNS = 64  # runs of the runner's per-test code in the zygote (see _warm_runner_code)
_WARM_TESTS = 128  # tests whose pseudo-file name the tracer has decided on before any fork
_TMPFS_BYTES = 256 << 20  # size of the program directory's tmpfs (bounds what a program writes)

try:  # SHA-256 without OpenSSL: one library less mapped into (and faulted in by) every runner
    from _sha256 import sha256 as _sha256  # CPython <= 3.11
except ImportError:
    try:
        from _sha2 import sha256 as _sha256  # CPython >= 3.12
    except ImportError:
        from hashlib import sha256 as _sha256


def _no_default(obj: object) -> object:
    raise TypeError(f"record field of type {type(obj).__name__} is not JSON")


# Saved before any program runs: a program that rebinds builtins or attributes of the modules it
# shares with the runner (os, stat, _signal, _json, ...) cannot change how its outcome is
# classified or what a record says. Records are encoded and authenticated by C code only (the
# json module's C encoder, SHA-256 objects): rebinding ``json.dumps``, ``json._default_encoder``
# or ``hmac`` internals reaches neither a record nor the key. Everything the runner calls while
# the program's builtins are in force (between _BuiltinsGuard.enter and .leave) is one of these.
_AssertionError = AssertionError
_BaseException = BaseException
_isinstance = isinstance
_exec = exec
_encode_json = _json.make_encoder(  # same text as json.dumps(record)
    None, _no_default, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True)


class _JSONContext:
    """The settings ``json.JSONDecoder()`` gives its C scanner (without json's Python layer)."""

    strict = True
    object_hook = object_pairs_hook = None
    parse_float, parse_int = float, int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"),
                      "NaN": float("nan")}.__getitem__


_scan_json = _json.make_scanner(_JSONContext())  # (str, index) -> (value, end), in C
_IPAD = bytes(x ^ 0x36 for x in range(256))  # RFC 2104 inner and outer pads, as translations
_OPAD = bytes(x ^ 0x5C for x in range(256))
_write = os.write
_exit = os._exit
_perf_counter = time.perf_counter
_open_fd, _read, _fstat, _close, _S_ISREG = os.open, os.read, os.fstat, os.close, stat.S_ISREG
_SOURCE_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO must not block the message
_setitimer = _signal.setitimer
# The C functions, not signal.signal/getsignal: those wrap every result in the signal module's
# enums, which for a Python handler means raising and catching a ValueError inside the enum
# machinery, costly the first time in a fresh runner (its pages are copied).
_set_handler, _get_handler = _signal.signal, _signal.getsignal
_SIGALRM, _SIGKILL, _ITIMER_REAL = _signal.SIGALRM, _signal.SIGKILL, _signal.ITIMER_REAL
_BUILTINS = __builtins__.__dict__ if hasattr(__builtins__, "__dict__") else __builtins__
_PRISTINE_BUILTINS = dict(_BUILTINS)

_CLONE_NEWNS, _CLONE_NEWPID, _CLONE_NEWNET = 0x00020000, 0x20000000, 0x40000000
_CLONE_NEWUSER = 0x10000000
_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x1000, 0x4000, 0x40000
_SYS_MOUNT_SETATTR, _AT_FDCWD, _AT_RECURSIVE, _MOUNT_ATTR_RDONLY = 442, -100, 0x8000, 0x1
_PR_SET_PDEATHSIG, _PR_CAPBSET_DROP, _PR_SET_CHILD_SUBREAPER, _PR_SET_NO_NEW_PRIVS = 1, 24, 36, 38


def _load_extension(folders: list[str], name: str, qualified: str):
    """The extension module ``name`` (``name`` + an extension suffix in one of ``folders``),
    loaded from its file alone (not through its package); None when there is none."""
    for folder in folders:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, name + suffix)
            if os.path.isfile(path):
                loader = importlib.machinery.ExtensionFileLoader(qualified, path)
                module = loader.create_module(
                    importlib.machinery.ModuleSpec(qualified, loader, origin=path))
                loader.exec_module(module)
                return module
    return None


# The C part of the zygote (harness/_zygote.c, built by ``pip install``): its job loop, the
# runner's limits, the builtins' version tag; or None (not built, or ``--python-only``, which
# tests the fallbacks), and then the same in Python (see _serve, _set_limits,
# _dict_version_reader).
_ZYGOTE_C = None if "--python-only" in sys.argv[6:] else _load_extension(
    [os.path.dirname(os.path.abspath(__file__))], "_zygote", "harness._zygote")


def _dict_version_reader(d: dict):
    """A function returning ``d``'s version tag (PEP 509: a new value after every change of
    ``d``), read from CPython's ``PyDictObject`` without touching ``d``'s keys or values; or a
    function returning a new object each call (so: "changed") where that tag is not there or does
    not change (other interpreters, CPython >= 3.14)."""
    if hasattr(_ZYGOTE_C, "dict_version"):  # the same tag, read in C (CPython < 3.12)
        return functools.partial(_ZYGOTE_C.dict_version, d)
    import ctypes  # only without the C extension (see _libc)

    if sys.implementation.name == "cpython" and ctypes.sizeof(ctypes.c_void_p) == 8:
        tag = ctypes.c_uint64.from_address(id(d) + 24)  # after ob_refcnt, ob_type, ma_used
        before = tag.value
        d["__sandbox_probe__"] = None
        changed = tag.value != before
        before = tag.value
        del d["__sandbox_probe__"]
        if changed and tag.value != before:
            return lambda: tag.value
    return object


_builtins_version = _dict_version_reader(_BUILTINS)


class _BuiltinsGuard:
    """The runner always sees the original builtins; the program sees its own, changes included.

    Around each run of user code (loading, each test): :meth:`enter` installs the program's
    builtins (once it has changed them), :meth:`leave` notices a change (the builtins dict's
    version tag, read without touching its values: no copy-on-write of the ~150 builtin objects
    in the common case of a program that leaves them alone), keeps the program's version and puts
    the originals back. So a program that replaces ``exec``, ``isinstance`` or
    ``AssertionError`` changes nothing the runner does, and its replacements stay in force for
    its own later tests, as in one ordinary process.
    """

    def __init__(self) -> None:
        self.program: dict | None = None  # the program's builtins, once it has changed them
        self.seen = _builtins_version()
        self.inside = False

    def enter(self) -> None:
        if self.program is not None:
            _BUILTINS.clear()
            _BUILTINS.update(self.program)
        self.seen = _builtins_version()
        self.inside = True

    def leave(self) -> None:
        """Put the original builtins back; a no-op when they already are (so it can be called
        again after an alarm that cut the first call short)."""
        if not self.inside:
            return
        if _builtins_version() != self.seen:
            self.program = _BUILTINS.copy()
        if self.program is not None:
            _BUILTINS.clear()
            _BUILTINS.update(_PRISTINE_BUILTINS)
        self.inside = False


def _load_ctracer() -> tuple[type, type]:
    """coverage.py's C tracer (``CTracer``, ``CFileDisposition``), loaded from its extension
    module alone: importing the whole ``coverage`` package would map much more into the zygote,
    which every fork per program then copies (page tables) and faults in again.

    Raises:
        RuntimeError: coverage.py or its compiled tracer is not installed.
    """
    # the top-level package's spec (the zygote has no import hooks: see _site_without_hooks);
    # finding it does not import coverage
    spec = importlib.machinery.PathFinder.find_spec("coverage")
    folders = list(spec.submodule_search_locations or []) if spec else []
    module = _load_extension(folders, "tracer", "coverage.tracer")
    if module is None:
        raise RuntimeError("coverage.py's C tracer (coverage/tracer*.so) is not installed; "
                           "install coverage from a binary wheel: "
                           "pip install --force-reinstall coverage")
    return module.CTracer, module.CFileDisposition


class _LineTracer:
    """coverage.py's C tracer, set up as its ``Collector`` does, recording the executed lines of
    one file: ``data[program_path]`` is the set of line numbers (other files are not traced).

    ``start()``/``stop()`` resume and pause it (the per-file decisions stay cached).
    """

    def __init__(self, program_path: str) -> None:
        ctracer, disposition = _load_ctracer()

        def should_trace(filename: str, _frame: object) -> object:
            disp = disposition()
            disp.original_filename = disp.canonical_filename = filename
            disp.trace = filename == program_path
            disp.source_filename = filename if disp.trace else None
            disp.reason = "" if disp.trace else "not the program"
            disp.file_tracer = None
            disp.has_dynamic_filename = False
            return disp

        self.path = program_path
        self.data: dict[str, set[int]] = {}  # {program_path: lines}: the tracer adds to the set
        t = self.tracer = ctracer()
        t.data = self.data
        t.lock_data = t.unlock_data = lambda: None
        t.trace_arcs = False
        t.should_trace = should_trace
        t.should_trace_cache = {}
        t.warn = lambda *args, **kwargs: None
        for name, value in (("concur_id_func", None), ("file_tracers", {}), ("threading", None),
                            ("check_include", None), ("should_start_context", None),
                            ("switch_context", None), ("disable_plugin", lambda *a: None)):
            if hasattr(t, name):
                setattr(t, name, value)
        self.start, self.stop = t.start, t.stop

    def take(self) -> list[int]:
        """Program lines executed since the last call (only the program file is traced)."""
        traced = self.data.get(self.path)
        if not traced:
            return []
        lines = sorted(traced)
        traced.clear()  # in place, as coverage itself does: the tracer keeps the set
        # Coverage may record line 0 for a module entry; only real (1-based) lines count.
        return lines if lines[0] > 0 else [n for n in lines if n > 0]


# System calls the os module lacks: through the C extension, else through ctypes, loaded only
# then (ctypes, libffi and struct add memory regions to every runner's fork and exit).
_LIBC = None


def _libc():
    """libc through ctypes (the fallback without the C extension)."""
    global _LIBC
    if _LIBC is None:
        import ctypes

        _LIBC = ctypes.CDLL(None, use_errno=True)
        _LIBC.syscall.restype = ctypes.c_long
    return _LIBC


def _check(ret: int, what: str) -> int:
    """``ret`` of a libc call through ctypes; OSError with its errno when it is -1."""
    if ret == -1:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _unshare(flags: int) -> None:
    if _ZYGOTE_C is not None:
        return _ZYGOTE_C.unshare(flags)
    import ctypes

    _check(_libc().unshare(ctypes.c_int(flags)), "unshare")


def _mount_setattr(path: str, attr_set: int, attr_clr: int, recursive: bool) -> None:
    if _ZYGOTE_C is not None:
        return _ZYGOTE_C.mount_setattr(path, attr_set, attr_clr, recursive)
    import ctypes

    class MountAttr(ctypes.Structure):  # struct mount_attr
        _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                    ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]

    attr = MountAttr(attr_set, attr_clr, 0, 0)
    _check(_libc().syscall(ctypes.c_long(_SYS_MOUNT_SETATTR), ctypes.c_int(_AT_FDCWD),
                           path.encode(), ctypes.c_uint(_AT_RECURSIVE if recursive else 0),
                           ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))),
           "mount_setattr")


def _mount(source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    if _ZYGOTE_C is not None:
        return _ZYGOTE_C.mount(source, target, fstype, flags, data)
    import ctypes

    def enc(s: str | None) -> bytes | None:
        return None if s is None else s.encode()

    _check(_libc().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags),
                         enc(data)), "mount")


def _prctl(option: int, arg: int) -> int:
    """prctl(2) with one argument; OSError on failure."""
    if _ZYGOTE_C is not None:
        return _ZYGOTE_C.prctl(option, arg)
    import ctypes

    return _check(_libc().prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0),
                                ctypes.c_ulong(0), ctypes.c_ulong(0)), "prctl")


def _capset_none() -> None:
    """Clear this process's effective, permitted and inheritable capabilities."""
    if _ZYGOTE_C is not None:
        return _ZYGOTE_C.capset_none()
    import ctypes

    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()
    _check(_libc().capset(header, data), "capset")


def _address_space_limit() -> int:
    """The hard ``RLIMIT_AS`` in bytes, -1 when unlimited."""
    if _ZYGOTE_C is not None:
        return _ZYGOTE_C.address_space_limit()
    import resource

    return resource.getrlimit(resource.RLIMIT_AS)[1]


def _limit_pids() -> None:
    """In init of a new PID namespace: allow at most ``_PID_MAX`` pids in it (Linux >= 6.14)."""
    with open("/proc/sys/kernel/pid_max", "w") as f:
        f.write(str(_PID_MAX))
    with open("/proc/sys/kernel/pid_max") as f:
        if int(f.read()) != _PID_MAX:
            raise OSError("pid_max is not per PID namespace here")


def _read_only_except(workdir: str) -> None:
    """New mount namespace: every mount read-only (recursively), ``workdir`` writable.

    ``workdir`` becomes a private tmpfs of ``_TMPFS_BYTES`` (no device files, no set-uid): what a
    program writes stays in memory, is bounded, and creating and removing its files costs no
    disk-filesystem work; a bind mount of the directory where tmpfs is refused. Being a mount
    point, the directory itself cannot be removed or renamed by the program, and its parent is
    read-only like everything else: nothing a program writes survives into the next program.
    """
    os.makedirs(workdir, 0o755, exist_ok=True)
    _unshare(_CLONE_NEWNS)
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    try:
        _mount("sandbox", workdir, "tmpfs", _MS_NOSUID | _MS_NODEV,
               f"size={_TMPFS_BYTES},mode=0755")
        _FEATURES["tmpfs"] = True
    except OSError:
        _mount(workdir, workdir, None, _MS_BIND)
    _mount_setattr("/", _MOUNT_ATTR_RDONLY, 0, recursive=True)
    _mount_setattr(workdir, 0, _MOUNT_ATTR_RDONLY, recursive=False)


def _drop_capabilities() -> None:
    """Drop every capability (bounding, effective, permitted, inheritable); no new privileges."""
    for cap in range(64):
        try:
            _prctl(_PR_CAPBSET_DROP, cap)
        except OSError:
            break  # EINVAL past the last capability this kernel knows (EPERM: none to drop)
    _capset_none()
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)


# ---------------------------------------------------------------------------------------------
# runner: runs in the forked grandchild


class _Pipe:
    """The authenticated result pipe of one run: records as ``<HMAC-SHA256 hex> <json>\\n``."""

    def __init__(self, fd: int, key: bytes) -> None:
        # HMAC (RFC 2104) with the key's inner and outer SHA-256 states prepared once: the same
        # value as ``hmac.new(key, body, hashlib.sha256)``, which the caller checks it with.
        if len(key) > 64:  # longer than SHA-256's block: hashed first
            key = _sha256(key).digest()
        block = key.ljust(64, b"\0")
        self.fd = fd
        self.inner, self.outer = _sha256(block.translate(_IPAD)), _sha256(block.translate(_OPAD))

    def mac(self, body: bytes) -> bytes:
        inner, outer = self.inner.copy(), self.outer.copy()
        inner.update(body)
        outer.update(inner.digest())
        return outer.hexdigest().encode()

    def send(self, record: dict) -> None:
        """Write one record (called with the original builtins in force, see _BuiltinsGuard)."""
        body = "".join(_encode_json(record, 0)).encode()
        _write_all(self.fd, self.mac(body) + b" " + body + b"\n")


_SOURCES: dict[str, str] = {}  # file name -> source of user code (see _register_source)
_LIBRARY_SOURCE_BYTES = 4 << 20  # a library's frame shows no line from a bigger file
_CAUSE = "The above exception was the direct cause of the following exception:"
_CONTEXT = "During handling of the above exception, another exception occurred:"


def _source(filename: str) -> str:
    """The text of ``filename``: user code's as registered, other files' read once (UTF-8, as
    nearly every library file is; PEP 263 coding cookies are not honoured); "" when it is not a
    regular file of at most ``_LIBRARY_SOURCE_BYTES`` (a code object's file name may be anything:
    a FIFO, ``/dev/zero``)."""
    text = _SOURCES.get(filename)
    if text is None:
        text = ""
        try:
            fd = _open_fd(filename, _SOURCE_FLAGS)
        except (OSError, ValueError):  # also a name with a NUL byte
            pass
        else:
            try:
                info = _fstat(fd)
                if _S_ISREG(info.st_mode) and info.st_size <= _LIBRARY_SOURCE_BYTES:
                    data = b""
                    while chunk := _read(fd, _LIBRARY_SOURCE_BYTES + 1 - len(data)):
                        data += chunk
                        if len(data) > _LIBRARY_SOURCE_BYTES:  # (it grew meanwhile)
                            data = b""
                            break
                    text = data.decode("utf-8", "replace")
            except OSError:
                pass
            finally:
                _close(fd)
        _SOURCES[filename] = text
    return text


def _frame_lines(tb) -> list[str]:
    """The ``Traceback (most recent call last):`` block of ``tb``: file, line and function of
    every frame that a message can show (this runner's own skipped), each with its source line
    (see :func:`_source`), without column carets."""
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    lines = ["Traceback (most recent call last):"] if tb is not None else []
    frames = []
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    # each frame is at least one line: only the last ones can show in a message (a RecursionError
    # has ~1000)
    for tb in frames[-_MESSAGE_LINES:]:
        code, lineno = tb.tb_frame.f_code, tb.tb_lineno or 0
        lines.append(f'  File "{code.co_filename}", line {lineno}, in {code.co_name}')
        if lineno > 0:  # split as compile() counts lines (CRLF, CR, LF), when a message needs it
            source = _source(code.co_filename).replace("\r\n", "\n").replace("\r", "\n")
            source = source.split("\n", lineno)
            text = source[lineno - 1] if lineno <= len(source) else ""
            if text.strip():
                lines.append("    " + text.strip())
    return lines


def _str(value: object, what: str, func=str) -> str:
    try:
        return func(value)
    except _BaseException:  # noqa: B036 - a hostile __str__ must not end the run
        return f"<{what} {func.__name__}() failed>"


def _exception_lines(exc: BaseException) -> str:
    """The exception's own lines, as ``traceback.format_exception_only`` writes them (CPython
    3.11): its type (module-qualified unless built in) and text, or a syntax error's file, line,
    source line, carets and message; then its ``__notes__``. Written here: importing
    ``traceback`` costs a runner a cold import, or the zygote its memory in every fork."""
    cls = type(exc)
    name, module = cls.__qualname__, cls.__module__
    if module not in ("__main__", "builtins"):
        name = f"{module if _isinstance(module, str) else '<unknown>'}.{name}"
    out = []
    if not _isinstance(exc, SyntaxError):
        text = _str(exc, "exception")
        out.append(f"{name}: {text}" if text else name)
    else:
        suffix = ""
        if exc.lineno is not None:
            out.append(f'  File "{exc.filename or "<string>"}", line {exc.lineno}')
        elif exc.filename is not None:
            suffix = f" ({exc.filename})"
        if exc.text is not None:
            rtext = exc.text.rstrip("\n")
            ltext = rtext.lstrip(" \n\f")
            spaces = len(rtext) - len(ltext)
            out.append(f"    {ltext}")
            if exc.offset is not None:
                offset = exc.offset
                end = exc.end_offset if exc.end_offset not in (None, 0) else offset
                if end in (offset, -1):
                    end = offset + 1
                column, end_column = offset - 1 - spaces, end - 1 - spaces
                if column >= 0:  # other whitespace (tabs) kept for alignment
                    pad = "".join(c if c.isspace() else " " for c in ltext[:column])
                    out.append(f"    {pad}{'^' * (end_column - column)}")
        out.append(f"{name}: {exc.msg or '<no detail available>'}{suffix}")
    notes = getattr(exc, "__notes__", None)
    if _isinstance(notes, _collections_abc.Sequence):
        out += [_str(note, "note") for note in notes]
    elif notes is not None:
        out.append(_str(notes, "__notes__", repr))
    return "\n".join(out)


def _format_error(exc: BaseException, program_path: str) -> str:
    """Last lines of the traceback, chained exceptions included; program paths shortened.

    The layout of ``traceback.format_exception`` without column carets or exception groups'
    members: frames by :func:`_frame_lines`, each exception's own lines by
    :func:`_exception_lines`. Not ``traceback.format_exception``: in a freshly forked runner its
    first message costs several times more, and its column carets import ``ast``; most programs
    a model writes fail (docs/sandbox.md).
    """
    try:
        chain, seen, e = [], set(), exc
        # the exception, then what it came from (at most as many as the message can show: a
        # hostile __cause__ property may return a new exception every time)
        while e is not None and id(e) not in seen and len(chain) < _MESSAGE_LINES:
            seen.add(id(e))
            chain.append(e)
            e = e.__cause__ if e.__cause__ is not None else (
                None if e.__suppress_context__ else e.__context__)
        lines = []
        for i in range(len(chain) - 1, -1, -1):  # oldest first, as Python prints them
            e = chain[i]
            lines += _frame_lines(e.__traceback__)
            lines += _exception_lines(e).splitlines()
            if i:
                lines += ["", _CAUSE if chain[i - 1].__cause__ is e else _CONTEXT, ""]
        text = "\n".join(lines[-_MESSAGE_LINES:]).replace(program_path, "program.py")
    except _BaseException as inner:  # noqa: B036 - a hostile __str__ must not end the run
        text = f"{type(exc).__name__} (message unavailable: {type(inner).__name__})"
    return text[-_MESSAGE_CHARS:]


class _Timeout(BaseException):  # noqa: N818 - internal signal, not an error class
    """Raised in the runner by its own wall-clock alarm at the end of a phase's time limit."""


def _on_alarm(_signum: int, _frame: object) -> None:
    raise _Timeout


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "passed"
    if _isinstance(exc, _Timeout):
        return "timeout"
    return "failed" if _isinstance(exc, _AssertionError) else "error"


def _run_user_code(codes: tuple, namespace: dict, tracer, timeout_s: float,
                   guard: _BuiltinsGuard) -> None:
    """Execute ``codes`` with the program's builtins, the tracer on and a wall-clock alarm of
    ``timeout_s``; the original builtins are back in force when it returns or raises.

    The alarm raises :class:`_Timeout` in the program, so that the lines it executed so far are
    kept; a program that ignores or catches it is killed by the caller a moment later instead.
    """
    if _get_handler(_SIGALRM) is not _on_alarm:  # (a system call, when a program changed it)
        _set_handler(_SIGALRM, _on_alarm)
    guard.enter()
    _setitimer(_ITIMER_REAL, timeout_s)
    tracer.start()
    try:
        for code in codes:
            _exec(code, namespace)
    finally:
        _setitimer(_ITIMER_REAL, 0)
        tracer.stop()
        guard.leave()


def _message(error: BaseException | None, program_path: str, timeout_s: float) -> str:
    if error is None:
        return ""
    if _isinstance(error, _Timeout):
        return (f"timed out after {timeout_s:g} s (wall clock); stopped in the program, lines "
                "executed so far kept")
    return _format_error(error, program_path)


def _register_source(filename: str, text: str) -> None:
    """Make user code's lines visible to messages (see _frame_lines): setup and tests have no
    file, and reading the program's back from disk would cost a runner more than keeping it."""
    _SOURCES[filename] = text


def _set_limits(job: dict) -> None:
    """Address space (none when 0), no core files, CPU seconds for the runner's phases."""
    memory = int(job["memory_bytes"])
    remaining = len(job["tests"]) - job["start"] + 1
    cpu = min(-int(-float(job["timeout_s"]) // 1) * remaining + 1, 10**7)  # ceil(timeout) * n + 1
    if _ZYGOTE_C is not None:  # in C: less time and fewer pages touched in a fresh runner
        _ZYGOTE_C.set_limits(memory, cpu)
        return
    import resource  # only without the C extension

    if memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))


def _runner(job: dict, pipe: _Pipe, program_path: str, lines: _LineTracer) -> None:
    """Become the program: descriptors, limits, privileges; then load and run the tests.

    The zygote has already put the caller's stdout/stderr pipes on descriptors 1 and 2 and the
    result pipe on ``_HIGH_FD`` (``pipe``); descriptor 0 is /dev/null (the zygote's own stdin,
    never read, so ``sys.stdin`` has nothing buffered). The tracer runs only while user code
    (program, setup, a test) executes: the runner's own work (records, HMACs, tracebacks) is not
    traced, which keeps a program's cost near its own.
    """
    if not _FEATURES.get("pid_namespace"):  # else the kernel kills it when the zygote (PID 1) dies
        _prctl(_PR_SET_PDEATHSIG, _SIGKILL)
    os.setsid()  # (the working directory is the program's, inherited from the zygote)
    os.closerange(3, _HIGH_FD)  # the zygote's own descriptors
    os.closerange(_HIGH_FD + 1, 1 << 16)
    _set_limits(job)
    pipe.send({"kind": "ready"})

    tracer, take_lines = lines, lines.take
    namespace = {"__name__": "program", "__file__": "program.py", "__builtins__": __builtins__}
    program, setup, tests = job["program"], job["setup"], job["tests"]
    _register_source(program_path, program)
    _register_source("<setup>", setup)
    guard = _BuiltinsGuard()
    error = None  # (nothing is traced yet: the zygote left no lines, the tracer is paused)
    timeout_s = float(job["timeout_s"])
    try:
        codes = compile(program, program_path, "exec"), compile(setup, "<setup>", "exec")
        _run_user_code(codes, namespace, tracer, timeout_s, guard)
    except _BaseException as exc:  # noqa: B036 - any failure of user code is a verdict
        error = exc
        guard.leave()  # again: an alarm at the very end may have cut the first call short
    covered = take_lines()
    message = _message(error, program_path, timeout_s)
    pipe.send({"kind": "load", "outcome": "passed" if error is None else _outcome(error),
               "message": message, "covered_lines": covered})
    if error is None:
        for i in range(job["start"], len(tests)):
            filename = f"<test_{i}>"
            _register_source(filename, tests[i])
            error = None  # (the previous phase's lines were taken, the tracer is paused)
            t0 = _perf_counter()
            try:  # a test that does not compile is an error of that test alone
                code = compile(tests[i], filename, "exec")
                t0 = _perf_counter()
                _run_user_code((code,), namespace, tracer, timeout_s, guard)
            except _BaseException as exc:  # noqa: B036 - any failure of user code is a verdict
                error = exc
                guard.leave()  # again: an alarm at the very end may have cut the first call short
            duration = _perf_counter() - t0
            covered = take_lines()
            message = _message(error, program_path, timeout_s)
            pipe.send({"kind": "result", "i": i, "outcome": _outcome(error),
                       "message": message, "duration_s": duration, "covered_lines": covered})
            if _isinstance(error, _Timeout):
                # The program was interrupted anywhere: go on in a fresh runner.
                pipe.send({"kind": "done", "next": i + 1})
                _exit(0)
    # No record for the end: the result of the last test is the last record, and the zygote's
    # exit reply, which follows at once, tells the caller the runner has ended.
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except _BaseException:  # noqa: B036, S110 - the program may have closed them; verdicts are sent
        pass


# ---------------------------------------------------------------------------------------------
# zygote


def _reap_all() -> None:
    """As PID 1 of the namespace (or a subreaper): kill and reap every other process (the
    Python loop's way; the C loop does the same in C)."""
    while True:
        if _FEATURES.get("pid_namespace"):
            try:
                os.kill(-1, _SIGKILL)  # from PID 1: every process in the namespace but us
            except ProcessLookupError:
                pass  # nobody left
        else:
            for pid in _children():
                try:
                    os.kill(pid, _SIGKILL)
                except ProcessLookupError:
                    pass  # ended meanwhile
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _children() -> list[int]:
    """Pids whose parent is this process (fallback without a PID namespace)."""
    me, found = os.getpid(), []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue  # ended while we looked
            if int(stat.rsplit(b")", 1)[1].split()[1]) == me:
                found.append(int(name))
    return found


def _serve(sock: int, pipes: list[int], workdir: str, tracer: _LineTracer) -> None:
    """Serve jobs until the caller closes the socket (or the program directory cannot be reset).

    ``pipes``: the write ends of the caller's result, stdout and stderr pipes. The zygote's own
    work per job is kept small: after every fork each page it writes costs it a page fault. As
    PID 1 of its PID namespace it runs the loop of the C extension ``harness._zygote`` (when
    built), which touches a few pages per job where this Python loop touches many; otherwise (no
    PID namespace, or no extension) the same loop in Python below.
    """
    program_path = os.path.join(workdir, "program.py")
    own = os.dup(1), os.dup(2)  # the zygote's stdout/stderr, lent to each runner
    if _job_loop() == "c":
        while True:
            got = _ZYGOTE_C.serve(sock, *pipes, *own, _HIGH_FD, workdir.encode(),
                                  program_path.encode())
            if got is None:
                return
            if _isinstance(got, tuple):  # in the runner just forked
                program, body = got
                job = _scan_json(body.decode("utf-8"), 0)[0]  # json's C scanner, no wrapper
                pipe = _Pipe(_HIGH_FD, bytes.fromhex(job.pop("key")))
                _run_forked(job, program.decode("utf-8", "surrogateescape"), pipe, program_path,
                            tracer)
            if not _finish_job(sock, workdir, program_path, None if got == -1 else got):
                return
    import select  # only here: every module the zygote imports is mapped into every runner

    poller = select.poll()  # the control socket, plus the runner's pidfd while one runs
    poller.register(sock, select.POLLIN)
    while True:
        got = _recv_job(sock)
        if got is None:
            return
        program, job = got
        _write_program(program_path, program)
        pid = _fork_runner(job, program, pipes, own, program_path, tracer)
        status = _watch(sock, poller, pid)
        _reap_all()
        if not _finish_job(sock, workdir, program_path, status):
            return


def _finish_job(sock: int, workdir: str, program_path: str, status: int | None) -> bool:
    """Empty the program's directory, then report the job's end (``status``: the runner's raw
    wait status, None when the caller had it killed). False when the directory could not be
    emptied: the zygote then stops serving, as the next program would find what is left."""
    if not _reset(workdir, program_path):
        return False
    _write_all(sock, b'{"exit": null}\n' if status is None else b'{"exit": %d}\n' % status)
    return True


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` (through ``_write``, saved before any program ran)."""
    while data:
        data = data[_write(fd, data):]


def _job_loop() -> str:
    """"c" where the C loop serves jobs (PID 1 of a PID namespace: ``kill(-1)`` reaches only the
    program's processes; the extension is built and ``--python-only`` not given), else
    "python"."""
    if _FEATURES.get("pid_namespace") and _ZYGOTE_C is not None:
        return "c"
    return "python"


def _write_program(path: str, data: bytes) -> None:
    """Write the program file with plain descriptors (a text file object touches more pages)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _fork_runner(job: dict, program: bytes, pipes: list[int], own: tuple[int, int],
                 program_path: str, tracer: _LineTracer) -> int:
    """Fork the runner of ``job``; its pid.

    Its descriptors are put in place here, before the fork (cheaper in the zygote than in every
    runner): the caller's stdout/stderr pipes on 1 and 2, the result pipe on ``_HIGH_FD``
    (``pipes`` = result, stdout, stderr write ends); the zygote's own stdout/stderr (``own``) are
    put back right after it.
    """
    result_w, out_w, err_w = pipes
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.dup2(result_w, _HIGH_FD)
    pipe = _Pipe(_HIGH_FD, bytes.fromhex(job.pop("key")))
    pid = os.fork()
    if pid == 0:
        _run_forked(job, program.decode("utf-8", "surrogateescape"), pipe, program_path,
                    tracer)
    os.dup2(own[0], 1)
    os.dup2(own[1], 2)
    os.close(_HIGH_FD)
    return pid


def _run_forked(job: dict, program: str, pipe: _Pipe, program_path: str, tracer: _LineTracer):
    """In a runner just forked: run the job and end the process (never returns)."""
    code = 1
    try:
        job["program"] = program
        _runner(job, pipe, program_path, tracer)
        code = 0
    finally:
        _exit(code)


def _reset(workdir: str, program_path: str) -> bool:
    """Leave ``workdir`` empty and as made; False when that failed.

    The common case costs an unlink, a listing and an lstat: the program left nothing but
    ``program.py`` and did not change the directory's mode. Otherwise everything in it is
    removed (also entries it made unwritable) and the mode is put back; the directory itself is
    kept when it is a mount point (see ``_read_only_except``) and made again when it is not.
    """
    try:
        os.unlink(program_path)
        if not os.listdir(workdir) and stat.S_IMODE(os.lstat(workdir).st_mode) == 0o755:
            return True
    except OSError:
        pass  # anything odd: the slow path below decides
    _remove(workdir)  # its contents; the directory too, unless it is a mount point
    try:
        os.makedirs(workdir, 0o755, exist_ok=True)
        os.chdir(workdir)  # the runners' working directory (it may have been made again)
        os.chmod(workdir, 0o755)
        return not os.listdir(workdir)
    except OSError:
        return False


def _remove(path: str) -> None:
    """Remove the program's directory, also entries it made unwritable (we have no caps); a
    mount point keeps the (emptied) directory."""
    def unlock(func, target, _exc_info) -> None:
        os.chmod(os.path.dirname(target) or ".", 0o700)
        if os.path.isdir(target) and not os.path.islink(target):
            os.chmod(target, 0o700)
        func(target)

    import shutil  # here, not at the top: fewer modules (bz2, lzma, ...) in every forked runner

    try:
        os.chmod(path, 0o700)  # its parent may be read-only: unlock() could not do this one
        shutil.rmtree(path, onerror=unlock)
    except OSError:
        pass  # the caller is told: the zygote stops serving when the directory is still there


def _watch(sock: int, poller, pid: int) -> int | None:
    """Wait for the runner to end; kill it when the caller asks. Its raw status, or None.

    ``poller`` holds the control socket; the runner's pidfd is added for the wait.
    """
    pidfd = os.pidfd_open(pid)
    poller.register(pidfd, 1)  # POLLIN
    killed = False
    try:
        while True:
            for fd, _ in poller.poll():
                if fd == pidfd:
                    _, status = os.waitpid(pid, 0)
                    return None if killed else status
                msg = os.read(sock, 1)
                if not msg:  # the caller is gone: end everything
                    os.kill(pid, _SIGKILL)
                    _reap_all()
                    os._exit(0)
                if not killed:
                    killed = True
                    os.kill(pid, _SIGKILL)
    finally:
        poller.unregister(pidfd)
        os.close(pidfd)


def _recv_job(sock: int) -> tuple[bytes, dict] | None:
    """Next job (program, job JSON), or None on EOF; skips a ``K`` that came after its job.
    The message: ``J``, two 4-byte big-endian lengths, the program, the job JSON."""
    data = b""
    while len(data) < 9:
        more = os.read(sock, 9 - len(data))
        if not more:
            return None
        data = (data + more).lstrip(b"K")  # kills that came after their job had ended
    program_len, job_len = int.from_bytes(data[1:5], "big"), int.from_bytes(data[5:9], "big")
    body = bytearray()
    while len(body) < program_len + job_len:
        chunk = os.read(sock, min(program_len + job_len - len(body), 1 << 20))
        if not chunk:
            return None
        body += chunk
    return bytes(body[:program_len]), _scan_json(body[program_len:].decode("utf-8"), 0)[0]


def _enter_user_namespace() -> None:
    """Become root of a new user namespace (this user's uid/gid mapped to 0), so that an
    unprivileged user may create the network, PID and mount namespaces below."""
    uid, gid = os.geteuid(), os.getegid()
    _unshare(_CLONE_NEWUSER)
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {gid} 1")


def _probe(fn) -> bool:
    """True when ``fn()`` succeeds in a forked child (kernel features differ per machine)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn()
            code = 0
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1] == 0


_FEATURES: dict[str, bool] = {}
_EMPTY_MAIN = type(sys)("__main__")


def _enter_namespaces(workdir: str) -> int | None:
    """Network + PID namespaces, limits and read-only mounts for this zygote, once.

    Returns None in the zygote (PID 1 of the new namespace, or this process when PID
    namespaces are unavailable); in the launcher that stays outside, never returns.
    """
    f = _FEATURES
    f.update(network_namespace=False, pid_namespace=False, pid_limit=False, filesystem=False,
             tmpfs=False, user_namespace=False, capabilities_dropped=_probe(_drop_capabilities))
    if os.geteuid() != 0 or "--user-namespace" in sys.argv[6:]:
        try:
            _enter_user_namespace()
            f["user_namespace"] = True
        except OSError:
            pass  # the namespaces below then need privileges this process may not have
    try:
        _unshare(_CLONE_NEWNET)
        f["network_namespace"] = True
    except OSError:
        pass  # reported as False by guarantees(): the program then has the host's network
    try:
        _unshare(_CLONE_NEWPID)
    except OSError:
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)  # fallback: orphans come to us and are killed
    else:
        pid = os.fork()
        if pid:  # launcher: wait for the zygote, exit with it
            _, status = os.waitpid(pid, 0)
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
        _prctl(_PR_SET_PDEATHSIG, _SIGKILL)
        f["pid_namespace"] = os.getpid() == 1
        try:
            _limit_pids()
            f["pid_limit"] = True
        except OSError:
            pass  # reported as False: fork bombs are then only ended by the time limits
    try:
        _read_only_except(workdir)
        f["filesystem"] = True
    except OSError:
        pass  # reported as False: the program can write wherever this user can
    return None


def main() -> None:
    """Enter namespaces, start the tracer, say hello, serve jobs until the socket closes."""
    # The control socket and the write ends of the caller's result, stdout and stderr pipes (lent
    # to each runner in turn, on _HIGH_FD, 1 and 2); none may stay on _HIGH_FD, which every job
    # overwrites.
    given = [int(sys.argv[1]), *map(int, sys.argv[3:6])]
    control, *pipes = [os.dup(fd) if fd == _HIGH_FD else fd for fd in given]
    if _HIGH_FD in given:
        os.close(_HIGH_FD)
    sock = control  # the control socket's descriptor (read and written with os.read/os.write)
    base = sys.argv[2]  # made (and removed at the end) by the caller
    workdir = os.path.join(base, "run")
    program_path = os.path.join(workdir, "program.py")
    os.environ["HOME"] = workdir
    os.environ.pop("LD_BIND_NOW", None)  # the zygote's only (see sandbox._zygote_only_env)
    try:
        _enter_namespaces(workdir)
        if _FEATURES["capabilities_dropped"]:
            _drop_capabilities()  # once, here: every runner inherits a capability-free zygote
        tracer = _LineTracer(program_path)
        tracer.start()
        # Warm the tracer's per-file decisions (a Python call each, cached by file name) for the
        # program path and the pseudo-files of setup and the first tests; then pause it: runners
        # trace only while user code runs (see _runner).
        os.makedirs(workdir, 0o755, exist_ok=True)  # made above unless no mount namespace
        with open(program_path, "w") as f:
            f.write("pass\n")
        for name in [program_path, "<setup>", *(f"<test_{i}>" for i in range(_WARM_TESTS))]:
            exec(compile("pass\n", name, "exec"), {})
        tracer.stop()
        _warm_runner_code(tracer, program_path)
        os.unlink(program_path)
        os.chdir(workdir)  # inherited by every runner
        # The runners' __main__ is an empty module: ``import __main__`` must not hand a program
        # this file's functions to rebind.
        sys.modules["__main__"] = _EMPTY_MAIN
        gc.freeze()  # fewer copy-on-write faults in the forked runners
        hello = {"hello": _FEATURES, "job_loop": _job_loop(), "vm_bytes": _vm_bytes(),
                 "as_hard": _address_space_limit()}
        _write_all(sock, ("".join(_encode_json(hello, 0)) + "\n").encode())
        _serve(sock, pipes, workdir, tracer)
    finally:
        _remove(workdir)


def _warm_runner_code(tracer: _LineTracer, program_path: str) -> None:
    """Run the runner's per-test code paths (tracer, builtins guard, records) a few dozen times.

    CPython 3.11's specializing interpreter rewrites a function's bytecode in place while it warms
    up; done here, in the zygote, a runner finds these functions already specialized and does not
    write into (and so copy) the pages of their code objects. Leaves no traced lines behind.
    """
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        namespace = {"__builtins__": __builtins__}
        code = compile("pass\n", "<test_0>", "exec")
        for _ in range(_WARM_RUNS):
            guard, pipe = _BuiltinsGuard(), _Pipe(null, b"warm")
            _register_source("<test_0>", "pass\n")
            tracer.take()
            _run_user_code((code,), namespace, tracer, 1.0, guard)
            pipe.send({"kind": "result", "i": 0, "outcome": _outcome(None),
                       "message": _message(None, program_path, 1.0), "duration_s": 0.0,
                       "covered_lines": tracer.take()})
    finally:
        os.close(null)


def _vm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


if __name__ == "__main__":
    main()
