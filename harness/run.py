"""Command line over :mod:`harness.sandbox`: run a program's tests with per-test coverage.

Usage::

    python -m harness.run PROGRAM.py TESTS.py [--timeout S] [--memory-mb M] [--json]
    python -m harness.run --batch JOBS.jsonl [--workers N] [--timeout S] [--memory-mb M]
                          [--cache PATH] [--progress auto|always|never]

Single mode prints one line per test (outcome, name, duration in ms, covered program lines, first
line of the message) and a summary, or with ``--json`` the result as one JSON object. TESTS.py is
read with :func:`harness.sandbox.parse_tests_file` (pytest-style ``def test*`` functions, or one
test per top-level statement). Exit code: 0 if every test passed, 1 otherwise, 2 on bad input.

Batch mode reads one job per line, ``{"id", "program", "tests": [...], "setup"}`` (``setup``
optional), and prints one line per job in input order: ``{"id": ..., **result.to_json()}``. Exit
code: 0 when every job ran (whatever its verdicts; they are in the output), 2 on bad input.
A tqdm progress bar goes to stderr for long batches; ``--cache`` reuses results across runs.

Bad input never produces a traceback: a missing or unreadable file, a TESTS.py or JOBS.jsonl that
is not UTF-8 or does not parse, a TESTS.py without tests, or absurd limits (``--timeout`` not in
(0, 86400], ``--memory-mb`` below 256, ``--workers`` below 1) print one error line and exit 2. A
PROGRAM.py that is not valid UTF-8 or does not compile is a verdict (load ``error``), not an
input error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path

from harness.sandbox import OUTCOMES, Job, ProgramResult, parse_tests_file, run_batch, run_tests

log = logging.getLogger("harness.run")


class InputError(Exception):
    """Bad command-line input (missing file, unparsable TESTS.py, malformed JOBS.jsonl)."""


def read_text(path: str, *, lenient: bool = False) -> str:
    """Text of the file at ``path`` for a command-line tool (also used by ``graphrepair.localize``).

    With ``lenient`` undecodable bytes are kept as surrogates (``errors="surrogateescape"``): a
    candidate program that is not valid UTF-8 then gets a load ``error`` verdict, as Python
    itself would refuse it, instead of stopping the run.

    Raises:
        InputError: if it cannot be read or (unless ``lenient``) is not UTF-8; the message names
            the file and, for bad UTF-8, the offending byte and its offset.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if lenient:
            return data.decode("utf-8", errors="surrogateescape")
        raise InputError(f"{path} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset "
                         f"{exc.start}); save it as UTF-8") from exc


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


def _load_jobs(path: str) -> list[Job]:
    """Parse JOBS.jsonl; raise InputError naming the file and line of the first bad line."""
    jobs = []
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
        jobs.append(Job(id=record["id"], program=record["program"], tests=tests, setup=setup))
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.run", description=__doc__.split("\n")[0])
    p.add_argument("program", nargs="?", help="program source file (PROGRAM.py)")
    p.add_argument("tests", nargs="?", help="tests file (TESTS.py)")
    p.add_argument("--batch", metavar="JOBS.jsonl", help="run one job per JSON line")
    p.add_argument("--workers", type=int, default=2, help="concurrent programs (batch; default 2)")
    p.add_argument("--timeout", type=float, default=5.0,
                   help="wall-clock limit per test and for loading, in s (default 5)")
    p.add_argument("--memory-mb", type=int, default=2048,
                   help="address-space limit of the child in MiB (default 2048)")
    p.add_argument("--json", action="store_true", help="print the result as JSON (single mode)")
    p.add_argument("--cache", metavar="PATH",
                   help="batch: SQLite results cache (harness.cache); reused across runs")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="batch: tqdm progress bar on stderr (auto: when stderr is a terminal "
                        "and there are more than 20 jobs)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI.

    Args:
        argv: Arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        Exit code: 0 all passed (single mode) or batch completed, 1 some test did not pass,
        2 usage or input error, 3 the sandbox could not start.
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
        if args.batch is not None:
            jobs = _load_jobs(args.batch)
            progress = (args.progress == "always"
                        or (args.progress == "auto" and sys.stderr.isatty() and len(jobs) > 20))
            cache = None
            if args.cache:
                from harness.cache import ResultCache

                cache = ResultCache(args.cache)
            t0 = time.perf_counter()
            results = run_batch(jobs, workers=args.workers, timeout_s=args.timeout,
                                memory_mb=args.memory_mb, progress=progress, cache=cache)
            elapsed = time.perf_counter() - t0
            for job, result in zip(jobs, results, strict=True):
                print(json.dumps({"id": job.id, **result.to_json()}))
            log.info("%d jobs in %.1f s, %d with all tests passed%s", len(jobs), elapsed,
                     sum(r.all_passed for r in results),
                     f"; cache: {cache.hits} hits, {cache.misses} misses" if cache else "")
            return 0
        program = read_text(args.program, lenient=True)
        setup, tests, names = read_tests(args.tests)
        result = run_tests(program, tests, setup, timeout_s=args.timeout,
                           memory_mb=args.memory_mb, test_names=names)
    except (InputError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    except RuntimeError as exc:  # the sandbox itself could not start (not the input's fault)
        log.error("sandbox failure: %s", exc)
        return 3
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        _print_human(result)
    return 0 if result.all_passed else 1


if __name__ == "__main__":
    sys.exit(main())
