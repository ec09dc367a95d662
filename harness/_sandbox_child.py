"""Child-process runner of ``harness.sandbox`` (internal; not imported by the parent).

Run as a plain file, never as part of the ``harness`` package::

    python -s -B _sandbox_child.py RESULT_FD JOB_JSON_PATH MEMORY_MB

``JOB_JSON_PATH`` holds ``{"program_path", "setup", "tests", "start"}``; the program source is
read from ``program_path`` (already written by the parent). Records go to the result pipe as one
JSON object per line, in this order::

    {"kind": "ready"}                                  # interpreter + coverage are up
    {"kind": "load", "outcome", "message", "covered_lines"}
    {"kind": "start", "i"}                             # before test i
    {"kind": "result", "i", "outcome", "message", "duration_s", "covered_lines"}
    {"kind": "done"}

Only the program file is measured by coverage; each test runs under its own dynamic context
``test_<i>`` and loading under ``load``, so covered lines are attributed per test.
"""

import sys

# The script's own directory (harness/) must not be importable by the program under test.
if sys.path and sys.path[0]:
    del sys.path[0]

import fcntl  # noqa: E402
import json  # noqa: E402
import linecache  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

_MESSAGE_LINES = 15
_MESSAGE_CHARS = 2000
_HIGH_FD = 200


def _open_result_pipe(fd: int) -> int:
    """Move the result pipe to a high, close-on-exec descriptor and close the original number."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _HIGH_FD)
    os.close(fd)
    return high


def _send(fd: int, record: dict) -> None:
    data = (json.dumps(record) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


def _format_error(exc: BaseException, program_path: str) -> str:
    """Last lines of the traceback without this runner's frames; program paths shortened."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    lines = "".join(traceback.format_exception(type(exc), exc, tb)).rstrip("\n").splitlines()
    text = "\n".join(lines[-_MESSAGE_LINES:]).replace(program_path, "program.py")
    return text[-_MESSAGE_CHARS:]


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "passed"
    return "failed" if isinstance(exc, AssertionError) else "error"


def _register_source(filename: str, text: str) -> None:
    """Make snippet source visible to tracebacks (they have no file on disk)."""
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)


def main() -> None:
    """Load the program and setup, run the tests from ``start`` on, report over the pipe."""
    fd = _open_result_pipe(int(sys.argv[1]))
    with open(sys.argv[2], encoding="utf-8") as f:
        job = json.load(f)
    os.unlink(sys.argv[2])
    memory_bytes = int(sys.argv[3]) * 1024 * 1024
    program_path = job["program_path"]

    import warnings

    import coverage

    # Measurement notes ("no data collected" for an empty program) are not the program's stderr.
    warnings.filterwarnings("ignore", category=coverage.exceptions.CoverageWarning)
    cov = coverage.Coverage(data_file=None, include=[program_path], config_file=False)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _send(fd, {"kind": "ready"})

    def lines_of(context: str) -> list[int]:
        by_line = cov.get_data().contexts_by_lineno(program_path)
        # Coverage may record line 0 for a module entry; only real (1-based) lines count.
        return sorted(n for n, contexts in by_line.items() if n > 0 and context in contexts)

    namespace = {"__name__": "program", "__file__": "program.py", "__builtins__": __builtins__}
    with open(program_path, encoding="utf-8") as f:
        program = f.read()
    _register_source("<setup>", job["setup"])
    error = None
    cov.start()
    cov.switch_context("load")
    try:
        exec(compile(program, program_path, "exec"), namespace)
        exec(compile(job["setup"], "<setup>", "exec"), namespace)
    except BaseException as exc:  # noqa: B036 - any failure of user code is a verdict
        error = exc
    cov.switch_context("between")
    message = "" if error is None else _format_error(error, program_path)
    outcome = "passed" if error is None else "error"
    _send(fd, {"kind": "load", "outcome": outcome, "message": message,
               "covered_lines": lines_of("load")})
    if error is None:
        for i in range(job["start"], len(job["tests"])):
            filename = f"<test_{i}>"
            _register_source(filename, job["tests"][i])
            _send(fd, {"kind": "start", "i": i})
            error = None
            cov.switch_context(f"test_{i}")
            t0 = time.perf_counter()
            try:
                exec(compile(job["tests"][i], filename, "exec"), namespace)
            except BaseException as exc:  # noqa: B036 - any failure of user code is a verdict
                error = exc
            duration = time.perf_counter() - t0
            cov.switch_context("between")
            _send(fd, {"kind": "result", "i": i, "outcome": _outcome(error),
                       "message": "" if error is None else _format_error(error, program_path),
                       "duration_s": duration, "covered_lines": lines_of(f"test_{i}")})
    cov.stop()
    _send(fd, {"kind": "done"})
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip atexit handlers and non-daemon threads the program may have left behind.
    os._exit(0)


if __name__ == "__main__":
    main()
