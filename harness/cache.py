"""Cache of sandbox results, in memory and optionally on disk (SQLite), with hit/miss counters.

A result is keyed by a SHA-256 of (program, tests, test names, setup, ``timeout_s``,
``memory_mb``, ``budget_s``, harness version); the harness version is a hash of the sandbox's own source
(``sandbox.py``, ``_sandbox_child.py`` and the result format, ``results.py``), so any change to
how programs are run or stored invalidates old entries. A result is stored as the JSON text of
:meth:`harness.results.ProgramResult.to_json` (output tails included) and read back with
``from_json``. Every outcome is cached, ``timeout`` included: a program that timed out on a loaded
machine stays timed out for that key (use a fresh cache, or a larger ``timeout_s``, to re-run).

The on-disk store is one SQLite file in WAL mode with a busy timeout, so several processes (DDP
ranks, data-loader workers, concurrent trainers) can read and write it at once. Opening it is
serialised through an ``flock`` on a sidecar ``<path>.lock`` file: SQLite answers "database is
locked" at once, without waiting for its busy timeout, when two connections switch a new file to
WAL at the same moment. A process that forks reopens the connection in the child.

Example::

    cache = ResultCache("runs/sandbox-cache.sqlite")
    results = run_batch(jobs, cache=cache)
    print(cache.hits, cache.misses)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from harness.results import ProgramResult
from harness.sandbox import harness_version

_BUSY_TIMEOUT_MS = 60_000


class ResultCache:
    """Sandbox results by job key; thread-safe; process-safe on disk.

    Args:
        path: SQLite file to persist results in (created with its parent directory), or
            ``None`` for a cache that lives in memory only.

    Attributes:
        hits: Number of :meth:`get` calls that found a result.
        misses: Number of :meth:`get` calls that did not.
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.hits = 0
        self.misses = 0
        self._memory: dict[str, ProgramResult] = {}
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        if self.path is not None:
            self._connect()

    def __repr__(self) -> str:
        return (f"ResultCache(path={None if self.path is None else str(self.path)!r}, "
                f"entries_in_memory={len(self._memory)}, hits={self.hits}, misses={self.misses})")

    @staticmethod
    def key(program: str, tests: Sequence[str], setup: str = "", *, timeout_s: float,
            memory_mb: int, test_names: Sequence[str] | None = None,
            budget_s: float | None = None) -> str:
        """Hex SHA-256 of everything that determines a result (see the module docstring)."""
        payload = json.dumps([harness_version(), program, list(tests),
                              None if test_names is None else list(test_names), setup,
                              float(timeout_s), int(memory_mb),
                              None if budget_s is None else float(budget_s)], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8", errors="surrogatepass")).hexdigest()

    def get(self, key: str) -> ProgramResult | None:
        """The cached result for ``key`` (memory first, then disk), or None; counts hit/miss."""
        with self._lock:
            result = self._memory.get(key)
            if result is None and self.path is not None:
                row = self._connection().execute(
                    "SELECT value FROM results WHERE key = ?", (key,)).fetchone()
                if row is not None:
                    result = self._memory[key] = ProgramResult.from_json(json.loads(row[0]))
            if result is None:
                self.misses += 1
            else:
                self.hits += 1
            return result

    def put(self, key: str, result: ProgramResult) -> None:
        """Store ``result`` under ``key`` (in memory, and on disk when the cache has a path)."""
        with self._lock:
            self._memory[key] = result
            if self.path is not None:
                conn = self._connection()
                with conn:
                    conn.execute("INSERT OR REPLACE INTO results (key, value) VALUES (?, ?)",
                                 (key, json.dumps(result.to_json())))

    def stats(self) -> dict[str, int]:
        """``{"hits", "misses", "entries_in_memory"}`` for logging."""
        return {"hits": self.hits, "misses": self.misses, "entries_in_memory": len(self._memory)}

    def close(self) -> None:
        """Close the SQLite connection (the in-memory entries stay usable)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            self._connect()
        assert self._conn is not None
        return self._conn

    def _connect(self) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000,
                                   check_same_thread=False, isolation_level=None)
            try:
                conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT)")
            except BaseException:
                conn.close()
                raise
        finally:
            os.close(lock_fd)  # releases the flock
        conn.isolation_level = ""  # ``with conn:`` wraps each put in a transaction
        self._conn, self._pid = conn, os.getpid()
