"""The SQLite index of the corpus (``DESIGN.md``, jepa *Corpus*).

One SQLite file (``corpus.sqlite`` in the experiment's data directory, written by
``python -m jepa.prepare``) holds the de-duplicated, split corpus:

* ``repositories``: ``name`` (primary key), ``split`` (train/val/test), ``source`` (``installed`` /
  ``directory``), ``version`` (the distribution's version, ``NULL`` when unknown).
* ``functions``: ``id`` (0, 1, ... in the corpus order of :func:`jepa.corpus.build.build_corpus`),
  ``repository``, ``path``, ``qualname``, ``signature``, ``separator``, ``body``,
  ``enclosing_class``, ``start_line``, ``end_line``, ``is_async``, the static properties
  (``body_lines``, ``complexity``, ``n_params``, ``return_kind``, ``has_docstring``) and
  ``text_sha256`` (hex SHA-256 of the UTF-8 text ``signature + separator + body``) and ``churn``
  (commits that touched the function's lines, :mod:`jepa.corpus.churn`; ``NULL`` without git).
* ``meta``: ``key`` -> JSON ``value``: ``schema_version``, ``exp``, ``config`` (the corpus
  configuration as canonical JSON, compared to decide whether a stored index is still valid),
  ``counts`` (duplicates removed, filtered, skipped files, dropped repositories, ...).

Teacher states live apart, in :mod:`jepa.store.states`, keyed by the function's text
(:func:`jepa.store.states.function_key`), so that one set of states serves every corpus that
holds the function.

Writing is atomic (:meth:`CorpusIndex.write`): the database is built in a temporary file beside
the target and renamed over it at the end, so a killed or failed build leaves the old index (or
none), never half of one. Reading (:meth:`CorpusIndex.open`) checks that the file is a complete
SQLite database of this schema version and raises :class:`StoreError`, naming the file and the
command that rebuilds it, otherwise.

Example::

    CorpusIndex.write(path, corpus, config=to_dict(cfg.corpus), exp="phase0")
    with CorpusIndex.open(path, exp="phase0") as index:
        train = index.functions("train")
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import InputError
from jepa.corpus.build import SPLITS, Corpus
from jepa.corpus.extract import Function
from jepa.corpus.properties import StaticProperties

__all__ = ["SCHEMA_VERSION", "CorpusIndex", "StoreError", "config_json", "rebuild_command",
           "text_sha256"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""Version of the tables below; an index of another version is refused (rebuild it)."""

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE repositories (
    name TEXT PRIMARY KEY, split TEXT NOT NULL CHECK (split IN ('train', 'val', 'test')),
    source TEXT NOT NULL, version TEXT);
CREATE TABLE functions (
    id INTEGER PRIMARY KEY, repository TEXT NOT NULL REFERENCES repositories(name),
    path TEXT NOT NULL, qualname TEXT NOT NULL, signature TEXT NOT NULL, separator TEXT NOT NULL,
    body TEXT NOT NULL, enclosing_class TEXT, start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL, is_async INTEGER NOT NULL, body_lines INTEGER NOT NULL,
    complexity INTEGER NOT NULL, n_params INTEGER NOT NULL, return_kind TEXT NOT NULL,
    has_docstring INTEGER NOT NULL, text_sha256 TEXT NOT NULL, churn INTEGER);
CREATE INDEX functions_repository ON functions(repository);
"""

_COLUMNS = ("id", "repository", "path", "qualname", "signature", "separator", "body",
            "enclosing_class", "start_line", "end_line", "is_async", "body_lines", "complexity",
            "n_params", "return_kind", "has_docstring", "text_sha256", "churn")


class StoreError(InputError):
    """A store file that cannot be used: missing, truncated, corrupt, or of another schema (exit 2)."""


def rebuild_command(exp: str | None) -> str:
    """The command that rebuilds the index of experiment ``exp`` (``ID`` when unknown)."""
    return f"python -m jepa.prepare --exp {exp or 'ID'} --force"


def config_json(config: Mapping[str, Any]) -> str:
    """Canonical JSON of a configuration section (sorted keys): equal configurations, equal text."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def text_sha256(function: Function) -> str:
    """Hex SHA-256 of the function's UTF-8 text ``signature + separator + body``."""
    return hashlib.sha256(function.text.encode("utf-8")).hexdigest()


def _function_row(i: int, f: Function, churn: int | None = None) -> tuple:
    p = f.properties
    return (i, f.repository, f.path, f.qualname, f.signature, f.separator, f.body,
            f.enclosing_class, f.start_line, f.end_line, int(f.is_async), p.body_lines,
            p.complexity, p.n_params, p.return_kind, int(p.has_docstring), text_sha256(f), churn)


def _function_from_row(row: sqlite3.Row) -> Function:
    return Function(
        repository=row["repository"], path=row["path"], qualname=row["qualname"],
        signature=row["signature"], separator=row["separator"], body=row["body"],
        enclosing_class=row["enclosing_class"], start_line=row["start_line"],
        end_line=row["end_line"], is_async=bool(row["is_async"]),
        properties=StaticProperties(body_lines=row["body_lines"], complexity=row["complexity"],
                                    n_params=row["n_params"], return_kind=row["return_kind"],
                                    has_docstring=bool(row["has_docstring"])))


class CorpusIndex:
    """A read-only view of one corpus index file; build one with :meth:`write`, read it with :meth:`open`.

    Args:
        path: the SQLite file.
        connection: an open connection to it (made by :meth:`open`).
        exp: the experiment id, for error messages.
    """

    def __init__(self, path: Path, connection: sqlite3.Connection, exp: str | None = None) -> None:
        self.path = path
        self.exp = exp
        self._db = connection
        self._db.row_factory = sqlite3.Row

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def __enter__(self) -> CorpusIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    # ------------------------------------------------------------------ writing
    @staticmethod
    def write(path: str | os.PathLike, corpus: Corpus, *, config: Mapping[str, Any],
              exp: str = "", counts: Mapping[str, Any] | None = None, source: str = "",
              versions: Mapping[str, str] | None = None,
              churn: Sequence[int | None] | None = None) -> Path:
        """Write ``corpus`` to a new index at ``path`` atomically (temporary file, then rename).

        Args:
            path: the index file; replaced if it exists.
            corpus: the built corpus (:func:`jepa.corpus.build.build_corpus`).
            config: the corpus configuration (plain dict), stored as :func:`config_json`.
            exp: the experiment id, stored and used in error messages.
            counts: extra counts to store (skipped files, dropped repositories, seconds, ...);
                the corpus' own counts (:meth:`Corpus.summary`) are always stored.
            source: the source kind of every repository (``installed`` / ``directory``).
            versions: repository -> version, when known.
            churn: per function of ``corpus.functions``, the commits that touched its lines
                (:mod:`jepa.corpus.churn`), ``None`` where unknown; ``None``: unknown for all.

        Returns:
            ``path``. On any failure the temporary file is removed and ``path`` is untouched.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = str(path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp"))
        versions = versions or {}
        try:
            db = sqlite3.connect(tmp)
            try:
                db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + _SCHEMA)
                with db:
                    meta = {"schema_version": json.dumps(SCHEMA_VERSION), "exp": json.dumps(exp),
                            "config": config_json(config),
                            "counts": json.dumps({**corpus.summary(), **dict(counts or {})})}
                    db.executemany("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
                    db.executemany("INSERT INTO repositories VALUES (?, ?, ?, ?)",
                                   [(r, s, source, versions.get(r))
                                    for r, s in sorted(corpus.split_of.items())])
                    db.executemany(f"INSERT INTO functions VALUES ({', '.join('?' * len(_COLUMNS))})",
                                   (_function_row(i, f, churn[i] if churn else None)
                                    for i, f in enumerate(corpus.functions)))
            finally:
                db.close()
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            for leftover in (tmp, tmp + "-journal"):
                Path(leftover).unlink(missing_ok=True)
            raise
        logger.info("wrote %s: %d functions, %d repositories", path, len(corpus.functions),
                    len(corpus.split_of))
        return path

    # ------------------------------------------------------------------ reading
    @classmethod
    def open(cls, path: str | os.PathLike, *, exp: str | None = None) -> CorpusIndex:
        """Open the index at ``path`` read-only after checking it.

        Checks: the file exists, is an SQLite database whose size matches its page count (not
        truncated), has the tables of this schema and ``schema_version`` == :data:`SCHEMA_VERSION`.

        Args:
            path: the index file.
            exp: the experiment id named in the rebuild command of an error (``ID`` if ``None``).

        Raises:
            StoreError: any check fails; the message names the file and the rebuild command.
        """
        path = Path(path)

        def fail(what: str) -> StoreError:
            return StoreError(f"corpus index {path}: {what}; rebuild it with "
                              f"`{rebuild_command(exp)}`")

        if not path.is_file():
            raise fail("no such file")
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise fail(f"cannot be opened ({exc})") from exc
        try:
            page_size = db.execute("PRAGMA page_size").fetchone()[0]
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            size = path.stat().st_size
            if size != page_size * pages or pages == 0:
                raise fail(f"truncated or damaged: {size} bytes, the database header says "
                           f"{pages} pages of {page_size} bytes")
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"meta", "repositories", "functions"} <= tables:
                raise fail(f"not a corpus index (tables {sorted(tables)})")
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = json.loads(row[0]) if row else None
            if version != SCHEMA_VERSION:
                raise fail(f"schema version {version}, this code reads version {SCHEMA_VERSION}")
            n = db.execute("SELECT COUNT(*) FROM functions").fetchone()[0]
            stored = json.loads(db.execute("SELECT value FROM meta WHERE key='counts'").fetchone()[0])
            if n != stored.get("functions"):
                raise fail(f"{n} function rows, its meta table says {stored.get('functions')}")
        except sqlite3.Error as exc:
            db.close()
            raise fail(f"not a readable SQLite database ({exc})") from exc
        except (StoreError, ValueError, TypeError) as exc:
            db.close()
            if isinstance(exc, StoreError):
                raise
            raise fail(f"damaged meta table ({exc})") from exc
        return cls(path, db, exp)

    def meta(self) -> dict[str, Any]:
        """The meta table: ``schema_version``, ``exp``, ``config`` (a dict), ``counts`` (a dict)."""
        return {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    def stored_config_json(self) -> str:
        """The stored corpus configuration as canonical JSON (:func:`config_json`)."""
        return self._db.execute("SELECT value FROM meta WHERE key='config'").fetchone()[0]

    def counts(self) -> dict[str, dict[str, int]]:
        """Per split: ``{"repositories": n, "functions": m}`` (every split present, zeros included)."""
        out = {s: {"repositories": 0, "functions": 0} for s in SPLITS}
        for split, n in self._db.execute("SELECT split, COUNT(*) FROM repositories GROUP BY split"):
            out[split]["repositories"] = n
        for split, n in self._db.execute(
                "SELECT r.split, COUNT(*) FROM functions f JOIN repositories r "
                "ON f.repository = r.name GROUP BY r.split"):
            out[split]["functions"] = n
        return out

    def repositories(self) -> list[dict[str, Any]]:
        """Every repository: ``{"name", "split", "source", "version"}``, by name."""
        return [dict(r) for r in self._db.execute("SELECT * FROM repositories ORDER BY name")]

    def functions(self, split: str) -> list[Function]:
        """The functions of ``split``, in corpus order (equal to :meth:`Corpus.split`).

        Raises:
            ValueError: an unknown split name.
        """
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
        rows = self._db.execute(
            "SELECT f.* FROM functions f JOIN repositories r ON f.repository = r.name "
            "WHERE r.split = ? ORDER BY f.id", (split,))
        return [_function_from_row(r) for r in rows]

    def churn(self, split: str) -> list[int | None]:
        """Churn of the functions of ``split`` in the order of :meth:`functions` (``None`` where
        the source has no git history)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
        rows = self._db.execute(
            "SELECT f.churn FROM functions f JOIN repositories r ON f.repository = r.name "
            "WHERE r.split = ? ORDER BY f.id", (split,))
        return [r[0] for r in rows]
