"""Tests for harness.cache: keys, round trips, counters, SQLite persistence across processes."""

import multiprocessing

from harness.cache import ResultCache
from harness.sandbox import Job, ProgramResult, TestResult, run_batch

# MBPP task 17.
PROGRAM = "def square_perimeter(a):\r\n  perimeter=4*a\r\n  return perimeter"
TESTS = ["assert square_perimeter(10)==40", "assert square_perimeter(5)==21"]

RESULT = ProgramResult(tests=(TestResult("test_0", "passed", "", 0.001, (2, 3)),
                              TestResult("test_1", "failed", "AssertionError", 0.002, (2, 3))),
                       load_outcome="passed", load_message="", load_covered_lines=(1,),
                       stdout_tail="out\udcff", stderr_tail="err")


def key(**overrides):
    args = {"program": PROGRAM, "tests": TESTS, "setup": "", "timeout_s": 5.0,
            "memory_mb": 2048}
    args.update(overrides)
    return ResultCache.key(args.pop("program"), args.pop("tests"), args.pop("setup"), **args)


def test_key_changes_with_every_input():
    base = key()
    assert key() == base and len(base) == 64
    others = [key(program=PROGRAM + " "), key(tests=TESTS[:1]), key(setup="import math"),
              key(timeout_s=1.0), key(memory_mb=1024), key(test_names=["a", "b"])]
    assert len({base, *others}) == 1 + len(others)


def test_memory_cache_counts_hits_and_misses():
    cache = ResultCache()
    assert cache.get(key()) is None
    cache.put(key(), RESULT)
    assert cache.get(key()) == RESULT
    assert (cache.hits, cache.misses) == (1, 1)
    assert cache.stats() == {"hits": 1, "misses": 1, "entries_in_memory": 1}
    assert "hits=1" in repr(cache)


def _put_from_child(directory, k, barrier, rounds):
    for r in range(rounds):
        barrier.wait(30)  # every process opens the same new file at the same moment
        cache = ResultCache(directory / f"round{r}" / "cache.sqlite")
        cache.put(k, RESULT)
        cache.close()


def test_sqlite_cache_round_trips_across_processes(tmp_path):
    # Several processes creating one new cache file at once: SQLite's switch to WAL answered
    # "database is locked" without waiting (it failed a CI run); opening is serialised now.
    ctx, k, rounds = multiprocessing.get_context("spawn"), key(), 12
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_put_from_child, args=(tmp_path, k, barrier, rounds))
             for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    for r in range(rounds):
        cache = ResultCache(tmp_path / f"round{r}" / "cache.sqlite")
        assert cache.get(k) == RESULT  # exact round trip, undecodable output bytes included
        assert cache.hits == 1
        cache.close()


def test_run_batch_uses_the_cache_and_runs_duplicates_once(tmp_path):
    cache = ResultCache(tmp_path / "cache.sqlite")
    jobs = [Job("a", PROGRAM, TESTS), Job("b", PROGRAM, TESTS), Job("c", PROGRAM, TESTS[:1])]
    first = run_batch(jobs, cache=cache, timeout_s=2.0)
    assert [r.n_passed for r in first] == [1, 1, 1]
    assert (cache.hits, cache.misses) == (0, 2)  # "b" is the same job as "a"
    second = run_batch(jobs, cache=ResultCache(tmp_path / "cache.sqlite"), timeout_s=2.0)
    assert second == first
    third = run_batch(jobs, cache=cache, timeout_s=3.0)  # other limits: other keys
    assert [r.n_passed for r in third] == [1, 1, 1] and cache.misses == 4


def test_disk_records_are_the_results_modules_json(tmp_path):
    import json
    import sqlite3

    cache = ResultCache(tmp_path / "cache.sqlite")
    cache.put(key(), RESULT)
    cache.close()
    with sqlite3.connect(tmp_path / "cache.sqlite") as conn:
        (text,) = conn.execute("SELECT value FROM results").fetchone()
    assert json.loads(text) == RESULT.to_json()
