"""Throughput of ``harness.sandbox.run_batch`` on real MBPP programs vs. a naive baseline.

The baseline runs one ``python -c`` subprocess per program executing program + setup + tests
with no coverage, no per-test verdicts and no limits (what a minimal harness would do), with the
same number of concurrent workers. Also measures the fixed cost of one sandbox child (interpreter
start + coverage import + protocol) on an empty program.

Usage::

    python benchmarks/sandbox_throughput.py [--n 100] [--workers 2] [--data DIR]

``--data`` defaults to ``$GRAPHREPAIR_DATA`` or ``../shared/data`` (must hold ``mbpp.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.sandbox import Job, run_batch, run_tests  # noqa: E402


def load_mbpp(data_dir: Path, n: int) -> list[Job]:
    """First ``n`` MBPP problems (file order) as sandbox jobs."""
    path = data_dir / "mbpp.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; pass --data or set GRAPHREPAIR_DATA")
    jobs = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            jobs.append(Job(str(d["task_id"]), d["code"], d["test_list"], d["test_setup_code"]))
            if len(jobs) == n:
                break
    return jobs


def naive(job: Job, timeout_s: float) -> bool:
    """Run program + setup + tests in one ``python -c``; True when it exits 0."""
    code = "\n".join([job.program, job.setup, *job.tests])
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def seconds(fn, repeats: int) -> float:
    """Mean wall-clock seconds of ``fn()`` over ``repeats`` calls (after one warm-up)."""
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    """Measure and print child cost, sandbox and baseline throughput (programs/s) and ratio."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100, help="number of MBPP problems (default 100)")
    p.add_argument("--workers", type=int, default=2, help="concurrent programs (default 2)")
    p.add_argument("--timeout", type=float, default=5.0, help="per-test limit in s (default 5)")
    p.add_argument("--data", type=Path,
                   default=Path(os.environ.get("GRAPHREPAIR_DATA", "../shared/data")))
    args = p.parse_args()
    jobs = load_mbpp(args.data, args.n)

    bare = seconds(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), 10)
    cov = seconds(lambda: subprocess.run([sys.executable, "-c", "import coverage"], check=True), 10)
    child = seconds(lambda: run_tests("", []), 10)
    print(f"python start: {bare * 1e3:.0f} ms | + import coverage: {cov * 1e3:.0f} ms | "
          f"one sandbox child, empty program: {child * 1e3:.0f} ms")

    t0 = time.perf_counter()
    results = run_batch(jobs, workers=args.workers, timeout_s=args.timeout)
    sandbox_s = time.perf_counter() - t0
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        t0 = time.perf_counter()
        naive_ok = list(pool.map(lambda j: naive(j, args.timeout * max(1, len(j.tests))), jobs))
        naive_s = time.perf_counter() - t0

    n_tests = sum(len(j.tests) for j in jobs)
    sandbox_rate, naive_rate = len(jobs) / sandbox_s, len(jobs) / naive_s
    print(f"{len(jobs)} MBPP programs, {n_tests} tests, {args.workers} workers")
    print(f"sandbox run_batch: {sandbox_rate:.1f} programs/s ({sandbox_s:.2f} s), "
          f"{sum(r.all_passed for r in results)} all-passed")
    print(f"naive python -c:   {naive_rate:.1f} programs/s ({naive_s:.2f} s), "
          f"{sum(naive_ok)} exited 0")
    print(f"ratio sandbox/naive: {sandbox_rate / naive_rate:.2f}x")


if __name__ == "__main__":
    main()
