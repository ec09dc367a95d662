"""Command line over :mod:`harness.sandbox`: run a program's tests with per-test coverage.

Usage::

    python -m harness.run PROGRAM.py TESTS.py [--timeout S] [--memory-mb M] [--json]
    python -m harness.run --batch JOBS.jsonl [--workers N] [--timeout S] [--memory-mb M]
                          [--cache PATH] [--progress auto|always|never]

    --timeout S         wall-clock limit for loading program + setup and for each test, in s
                        (default 5; must be in (0, 86400])
    --memory-mb M       address-space limit of each runner process in MiB (default 2048; at least
                        256, raised to what the interpreter itself maps when that is more)
    --json              single mode: print the result as one JSON object
    --batch JOBS.jsonl  run one job per line of JOBS.jsonl instead of PROGRAM.py TESTS.py
    --workers N         batch: programs run at the same time, one sandbox worker each (default 2)
    --cache PATH        batch: SQLite file of results (harness.cache.ResultCache, created when
                        missing): a job already in it is not run again; reused across runs and
                        processes; keyed by program, tests, setup, limits and sandbox version
    --progress WHEN     batch: tqdm progress bar on stderr: auto (default; when stderr is a
                        terminal and there are more than 20 jobs), always, never

Single mode prints one line per test (outcome, name, duration in ms, covered program lines, last
line of the message) and a summary, or with ``--json`` one JSON object: the result
(:meth:`harness.results.ProgramResult.to_json`: ``tests``, ``load``, ``stdout_tail``,
``stderr_tail``) and ``guarantees`` (:func:`harness.sandbox.guarantees`: the protections in
force on this machine). TESTS.py is split by :func:`parse_tests_file` (pytest-style ``def test*``
functions, or one test per top-level statement). PROGRAM.py must be UTF-8: a file that is not is
bad input (exit 2, as for ``graphrepair.localize`` and ``graphrepair.repair``); one that does not
compile is a verdict (load ``error``).

Batch mode reads one job per line, ``{"id", "program", "tests": [...], "setup"}`` (``setup``
optional; blank lines skipped; every ``id`` different), and prints one line per job in input
order: ``{"id": ..., **result.to_json(), "guarantees": {...}}``. A job's program is JSON text; one
holding surrogate escapes of undecodable bytes (``\\udc80``-``\\udcff``, as Python's
``surrogateescape`` writes them) gets a load ``error`` verdict, like a candidate program that
Python itself would refuse, so one bad candidate does not stop a batch; any other lone surrogate
is bad input. A result taken from ``--cache`` was computed under the guarantees of the run that
stored it.

Exit codes::

    0  ok: single mode, every test passed; batch mode, every job ran (verdicts in the output)
    1  a failed outcome (single mode): some test failed, raised, timed out or crashed, or the
       program did not load
    2  bad input: usage; a missing or unreadable file; PROGRAM.py, TESTS.py or JOBS.jsonl not
       UTF-8; a TESTS.py that does not parse or holds no test; a malformed JOBS.jsonl line or a
       duplicated job id; a --cache file that cannot be opened; --timeout not in (0, 86400],
       --memory-mb below 256, --workers below 1. One error line on stderr, no traceback
    3  environment: the sandbox could not start (no worker process: too few file descriptors
       or processes, coverage.py's C tracer missing, a worker that did not answer in time)
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import sqlite3
import sys
import time
from collections import Counter
from pathlib import Path

from harness.errors import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, InputError
from harness.sandbox import (
    OUTCOMES,
    Job,
    ProgramResult,
    SandboxStartError,
    guarantees,
    run_batch,
    run_tests,
)

log = logging.getLogger("harness.run")


def read_text(path: str) -> str:
    """Text of the UTF-8 file at ``path`` for a command-line tool (also used by
    ``graphrepair.localize`` and ``graphrepair.repair``).

    Raises:
        InputError: if it cannot be read or is not UTF-8; the message names the file and, for
            bad UTF-8, the offending byte and its offset.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset "
                         f"{exc.start}); save it as UTF-8") from exc


def parse_tests_file(text: str) -> tuple[str, list[str], list[str]]:
    """Split a TESTS.py file into setup code, test snippets and test names.

    Two layouts are understood:

    * pytest style: the file has top-level ``def test*`` functions (pytest's naming rule). Then
      setup is the whole file, tests are ``["test_x()", ...]`` and names ``["test_x", ...]``.
    * statement style (MBPP ``test_list``): every top-level statement is one test, named
      ``test_0``, ``test_1``, ...; top-level ``import`` / ``from ... import`` statements go to
      setup instead (in order).

    Args:
        text: Content of the TESTS.py file.

    Returns:
        ``(setup, tests, names)``.

    Raises:
        ValueError: If the file does not parse (the message names the line).
    """
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise ValueError(f"TESTS.py does not parse: line {exc.lineno}: {exc.msg}") from exc
    functions = [node.name for node in tree.body
                 if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                 and node.name.startswith("test")]
    if functions:
        return text, [f"{name}()" for name in functions], functions
    lines = text.splitlines(True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line.encode("utf-8")))
    data = text.encode("utf-8")
    setup, tests = [], []
    for node in tree.body:
        first = min([node, *getattr(node, "decorator_list", [])], key=lambda n: n.lineno)
        begin = offsets[first.lineno - 1] + first.col_offset
        end = offsets[node.end_lineno - 1] + node.end_col_offset
        segment = data[begin:end].decode("utf-8")
        (setup if isinstance(node, ast.Import | ast.ImportFrom) else tests).append(segment)
    setup_text = "\n".join(setup) + ("\n" if setup else "")
    return setup_text, tests, [f"test_{i}" for i in range(len(tests))]


def read_tests(path: str) -> tuple[str, list[str], list[str]]:
    """Setup, test snippets and names of a TESTS.py file (:func:`parse_tests_file`'s layouts).

    Raises:
        InputError: the file cannot be read, is not UTF-8, does not parse (the message names the
            line) or holds no test.
    """
    try:
        setup, tests, names = parse_tests_file(read_text(path))
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from exc
    if not tests:
        raise InputError(f"{path}: no tests found (expected top-level statements, one test "
                         "each, or top-level def test_* functions)")
    return setup, tests, names


def _lone_surrogate(text: str) -> int | None:
    """Index of the first character of ``text`` that no UTF-8 encoding can carry (a lone
    surrogate other than the ``surrogateescape`` range U+DC80..U+DCFF), or None."""
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def _load_jobs(path: str) -> list[Job]:
    """Parse JOBS.jsonl; raise InputError naming the file and line of the first bad line, or
    every duplicated job id with its lines."""
    jobs = []
    lines_of: dict[str, list[int]] = {}  # job id as canonical JSON -> its line numbers
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise InputError(f"{where}: expected a JSON object, found {type(record).__name__}")
        missing = [key for key in ("id", "program", "tests") if key not in record]
        if missing:
            raise InputError(f"{where}: missing key(s) {missing}; each line needs "
                             '{"id", "program", "tests": [...], "setup" (optional)}')
        tests, setup = record["tests"], record.get("setup", "")
        if not isinstance(record["program"], str) or not isinstance(setup, str):
            raise InputError(f"{where}: 'program' and 'setup' must be strings")
        if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
            raise InputError(f"{where}: 'tests' must be a list of strings")
        bad = _lone_surrogate(record["program"])
        if bad is not None:
            raise InputError(f"{where}: 'program' holds a lone surrogate "
                             f"U+{ord(record['program'][bad]):04X} at character {bad}, which is "
                             r"not text (undecodable bytes are written \udc80-\udcff)")
        lines_of.setdefault(json.dumps(record["id"], sort_keys=True), []).append(lineno)
        jobs.append(Job(id=record["id"], program=record["program"], tests=tests, setup=setup))
    duplicates = [f"{job_id} on lines {', '.join(map(str, lines))}"
                  for job_id, lines in lines_of.items() if len(lines) > 1]
    if duplicates:
        raise InputError(f"{path}: duplicate job id(s): {'; '.join(duplicates)}; every job needs "
                         "its own id (it labels the job's output line)")
    return jobs


def _summary(result: ProgramResult) -> str:
    counts = Counter(t.outcome for t in result.tests)
    parts = [f"{counts[o]} {o}" for o in OUTCOMES if counts[o] or o in ("passed", "failed")]
    if result.load_outcome != "passed":
        parts.append(f"(program load: {result.load_outcome})")
    return ", ".join(parts)


def _print_human(result: ProgramResult) -> None:
    for t in result.tests:
        first = t.message.strip().splitlines()[-1] if t.message.strip() else ""
        lines = ",".join(map(str, t.covered_lines)) or "-"
        print(f"{t.outcome:<8} {t.name}  {t.duration_s * 1e3:.1f} ms  lines={lines}  {first}")
    if result.load_outcome != "passed":
        print(f"program load {result.load_outcome}:\n{result.load_message}")
    print(_summary(result))


def _exit_codes() -> str:
    """The module docstring's exit-code table (the ``--help`` epilog)."""
    block = __doc__.split("Exit codes::\n\n", 1)[1]
    return "exit codes:\n" + block.rstrip()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.run",
                                description="Run a program's tests in the sandbox, with per-test "
                                            "outcome and coverage.",
                                epilog=_exit_codes(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("program", nargs="?", help="program source file (PROGRAM.py, UTF-8)")
    p.add_argument("tests", nargs="?", help="tests file (TESTS.py)")
    p.add_argument("--batch", metavar="JOBS.jsonl",
                   help='run one job per JSON line: {"id", "program", "tests": [...], "setup"}')
    p.add_argument("--workers", type=int, default=2, metavar="N",
                   help="batch: programs run at the same time (default 2)")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="wall-clock limit per test and for loading, in s (default 5)")
    p.add_argument("--memory-mb", type=int, default=2048, metavar="M",
                   help="address-space limit of each runner in MiB (default 2048, at least 256)")
    p.add_argument("--json", action="store_true", help="single mode: print the result as JSON")
    p.add_argument("--cache", metavar="PATH",
                   help="batch: SQLite results cache (harness.cache); reused across runs")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   metavar="WHEN", help="batch: tqdm progress bar on stderr: auto (default; when "
                   "stderr is a terminal and there are more than 20 jobs), always or never")
    return p


def _open_cache(path: str):
    """The :class:`harness.cache.ResultCache` at ``path``; InputError when it cannot be opened."""
    from harness.cache import ResultCache

    try:
        return ResultCache(path)
    except (OSError, sqlite3.Error) as exc:
        raise InputError(f"cannot open the cache {path}: {exc}") from exc


def _run_batch(args: argparse.Namespace) -> int:
    jobs = _load_jobs(args.batch)
    progress = (args.progress == "always"
                or (args.progress == "auto" and sys.stderr.isatty() and len(jobs) > 20))
    cache = _open_cache(args.cache) if args.cache else None
    t0 = time.perf_counter()
    results = run_batch(jobs, workers=args.workers, timeout_s=args.timeout,
                        memory_mb=args.memory_mb, progress=progress, cache=cache)
    elapsed = time.perf_counter() - t0
    in_force = guarantees() if jobs else {}
    for job, result in zip(jobs, results, strict=True):
        print(json.dumps({"id": job.id, **result.to_json(), "guarantees": in_force}))
    log.info("%d jobs in %.1f s, %d with all tests passed%s", len(jobs), elapsed,
             sum(r.all_passed for r in results),
             f"; cache: {cache.hits} hits, {cache.misses} misses" if cache else "")
    return 0


def _run_single(args: argparse.Namespace) -> int:
    program = read_text(args.program)
    setup, tests, names = read_tests(args.tests)
    result = run_tests(program, tests, setup, timeout_s=args.timeout, memory_mb=args.memory_mb,
                       test_names=names)
    if args.json:
        print(json.dumps({**result.to_json(), "guarantees": guarantees()}))
    else:
        _print_human(result)
    return 0 if result.all_passed else 1


def main(argv: list[str] | None = None) -> int:
    """Run the CLI.

    Args:
        argv: Arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        Exit code (the module docstring's table): 0 all passed (single mode) or every job ran
        (batch), 1 some test did not pass (single mode), 2 usage or input error (argparse's
        usage errors exit 2 through ``SystemExit``), 3 the sandbox could not start.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = _parser()
    args = parser.parse_args(argv)
    single = args.program is not None or args.tests is not None
    if args.batch is not None and single:
        parser.error("give either PROGRAM.py TESTS.py or --batch JOBS.jsonl, not both")
    if args.batch is None and (args.program is None or args.tests is None):
        parser.error("need PROGRAM.py and TESTS.py (or --batch JOBS.jsonl)")
    try:
        return _run_batch(args) if args.batch is not None else _run_single(args)
    except (InputError, ValueError) as exc:
        log.error("%s", exc)
        return EXIT_BAD_INPUT
    except SandboxStartError as exc:  # the machine, not the input
        log.error("the sandbox could not start: %s", exc)
        return EXIT_ENVIRONMENT


if __name__ == "__main__":
    sys.exit(main())
