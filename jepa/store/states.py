"""Teacher states on disk: content-addressed safetensors shards and their SQLite index.

A *state set* is everything one teacher reading produces (:class:`StateSpec`: model, weight hash
or revision, layer, kind, compute dtype, token limits, whether per-token states are kept). It
lives in its own directory ``<root>/<model>-layer<i>-<key>/`` (``key`` = the first 16 hex digits
of the SHA-256 of the spec's canonical JSON):

* ``shards/<name>.safetensors``: the states of up to ``shard_size`` functions. Tensors:
  ``signature`` and ``body`` ``[n, D]`` float32 (mean-pooled; float32 so that ranks are not
  decided by rounding), ``signature_length`` and ``body_length`` ``[n]`` int32; with per-token
  states also ``signature_tokens`` ``[sum T, D]`` and ``signature_offsets`` ``[n + 1]`` int64
  (function i owns rows ``offsets[i]:offsets[i+1]``), the same for ``body``, in the store dtype
  (bf16 or fp16). The safetensors metadata ``jepa`` holds JSON of the format, the spec key and the
  function keys in row order. Equal inputs give equal bytes.
  ``name`` is the SHA-256 of the spec key and the function keys: the same functions read by the
  same teacher give the same shard name, whoever computes them.
* ``index.sqlite``: ``meta`` (the spec), ``shards`` (name, file SHA-256, bytes, rows) and
  ``rows`` (function key -> shard, row). A shard is written atomically (temporary file, fsync,
  rename) *before* its rows are committed in one transaction, so a process killed at any moment
  leaves only complete shards in the index; a shard file without rows is an orphan that the next
  run rewrites.

A function is keyed by :func:`function_key` (SHA-256 of its signature and body), not by its corpus
id: corpora that share functions share states.

Example::

    store = StateStore.open(root, spec)
    store.write_shard(keys, states)                 # states: jepa.teacher.model.States
    pooled = store.read(keys)                       # {"signature": [N, D], "body": [N, D], ...}
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from harness.io import atomic_write, file_sha256
from jepa.store.corpus import StoreError

__all__ = ["POOLED", "STATES_FORMAT", "TOKEN_PARTS", "StateSpec", "StateStore", "function_key"]

logger = logging.getLogger(__name__)

STATES_FORMAT = 1
"""Version of the shard and index layout; a state set of another version is refused."""

POOLED = ("signature", "body", "signature_length", "body_length")
"""The tensors of every shard (per-token tensors come in addition)."""

TOKEN_PARTS: dict[str, tuple[str, ...]] = {"none": (), "signature": ("signature",),
                                           "all": ("signature", "body")}
"""``store.tokens`` -> the parts whose per-token states a shard holds."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shards (
    name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, bytes INTEGER NOT NULL, rows INTEGER NOT NULL,
    seconds REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rows (
    key TEXT PRIMARY KEY, shard TEXT NOT NULL REFERENCES shards(name), row INTEGER NOT NULL);
"""


def function_key(signature: str, body: str) -> str:
    """Hex SHA-256 of ``signature``, a NUL byte and ``body`` (UTF-8): what a teacher reads."""
    return hashlib.sha256(signature.encode("utf-8") + b"\0" + body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StateSpec:
    """What determines a state set; equal specs share a directory.

    Args:
        model: the teacher's name, directory or hub id.
        weights: the SHA-256 of its weight file, or its hub revision (``""`` if unknown).
        layer: the layer read (``hidden_states[layer]``).
        kind: ``causal`` or ``bidirectional``.
        compute_dtype: the dtype the teacher ran in (``bfloat16``, ``float32``, ...).
        max_signature_tokens, max_body_tokens: tokens kept per part.
        tokens: which per-token states are stored: ``none``, ``signature`` (the student's inputs)
            or ``all`` (signature and body tokens, for token-level targets).
        token_dtype: the dtype of stored per-token states (``bfloat16`` or ``float16``).
    """

    model: str
    weights: str
    layer: int
    kind: str
    compute_dtype: str
    max_signature_tokens: int
    max_body_tokens: int
    tokens: str = "none"
    token_dtype: str = "bfloat16"

    def __post_init__(self) -> None:
        if self.tokens not in TOKEN_PARTS:
            raise ValueError(f"tokens must be one of {list(TOKEN_PARTS)}, got {self.tokens!r}")

    @property
    def token_parts(self) -> tuple[str, ...]:
        """The parts whose per-token states are stored: ``()``, ``("signature",)`` or both."""
        return TOKEN_PARTS[self.tokens]

    def canonical(self) -> str:
        """Canonical JSON of the spec (sorted keys; ``tokens`` none/all written as false/true, as
        state sets were keyed before the signature-only mode existed)."""
        fields = asdict(self)
        fields["tokens"] = {"none": False, "all": True}.get(self.tokens, self.tokens)
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    @property
    def key(self) -> str:
        """First 16 hex digits of the SHA-256 of :meth:`canonical`."""
        return hashlib.sha256(self.canonical().encode()).hexdigest()[:16]

    @property
    def dirname(self) -> str:
        """``<model>-layer<i>-<key>``, the model reduced to ``[A-Za-z0-9._-]``."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(self.model).name or self.model).strip("_")
        return f"{slug}-layer{self.layer}-{self.key}"



class StateStore:
    """One state set: its shard directory and index (see the module docstring).

    Build with :meth:`open`. Safe to share between processes (torchrun ranks write different
    shards; SQLite serialises the index writes).

    Args:
        directory: the state set's directory.
        spec: its :class:`StateSpec`.
        connection: an open connection to ``index.sqlite``.
        rebuild: the command that rebuilds the states, named in errors.
    """

    def __init__(self, directory: Path, spec: StateSpec, connection: sqlite3.Connection,
                 rebuild: str) -> None:
        self.directory = directory
        self.spec = spec
        self.rebuild = rebuild
        self._db = connection

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.directory)!r}, shards={self.num_shards()}, rows={len(self)})"

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the index connection."""
        self._db.close()

    def _fail(self, what: str) -> StoreError:
        return StoreError(f"{what}; rebuild the teacher states with `{self.rebuild}`")

    @classmethod
    def open(cls, root: str | os.PathLike, spec: StateSpec, *, create: bool = True,
             rebuild: str = "python -m jepa.prepare --exp ID --force") -> StateStore:
        """Open (or create) the state set of ``spec`` under ``root``.

        Args:
            root: the folder holding state sets (``<data directory>/states``).
            spec: the teacher reading.
            create: create the directory and index when absent (else :class:`StoreError`).
            rebuild: the command named in error messages.

        Raises:
            StoreError: no state set (``create=False``), an index that is not a readable SQLite
                database, or one written for another spec or format.
        """
        directory = Path(root) / spec.dirname
        path = directory / "index.sqlite"
        if not path.is_file() and not create:
            raise StoreError(f"no teacher states at {directory}; compute them with "
                             f"`{rebuild.replace(' --force', '')}`")
        (directory / "shards").mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(path, timeout=120, isolation_level=None)
            db.execute("PRAGMA busy_timeout = 120000")
            db.executescript(_SCHEMA)
            stored = dict(db.execute("SELECT key, value FROM meta"))
            if not stored:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)",
                               [("format", str(STATES_FORMAT)), ("spec", spec.canonical())])
                db.execute("COMMIT")
                stored = dict(db.execute("SELECT key, value FROM meta"))
        except sqlite3.Error as exc:
            raise StoreError(f"teacher-state index {path} is not a readable SQLite database "
                             f"({exc}); delete {directory} and rebuild with `{rebuild}`") from exc
        store = cls(directory, spec, db, rebuild)
        if stored.get("format") != str(STATES_FORMAT) or stored.get("spec") != spec.canonical():
            db.close()
            raise store._fail(f"teacher-state index {path} was written for format "
                              f"{stored.get('format')} and spec {stored.get('spec')}, not this one")
        return store

    # ------------------------------------------------------------------ index queries
    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]

    def num_shards(self) -> int:
        """Shards recorded in the index."""
        return self._db.execute("SELECT COUNT(*) FROM shards").fetchone()[0]

    def has_shard(self, name: str) -> bool:
        """Whether shard ``name`` is complete (recorded in the index)."""
        return self._db.execute("SELECT 1 FROM shards WHERE name = ?", (name,)).fetchone() is not None

    def missing(self, keys: Sequence[str]) -> list[str]:
        """The keys of ``keys`` that have no states, in order."""
        have = set()
        for i in range(0, len(keys), 900):
            chunk = list(keys[i:i + 900])
            have.update(r[0] for r in self._db.execute(
                f"SELECT key FROM rows WHERE key IN ({','.join('?' * len(chunk))})", chunk))
        return [k for k in keys if k not in have]

    def shard_path(self, name: str) -> Path:
        """The file of shard ``name``."""
        return self.directory / "shards" / f"{name}.safetensors"

    def shard_name(self, keys: Sequence[str]) -> str:
        """The content address of a shard holding ``keys`` in this order."""
        return hashlib.sha256("\n".join([self.spec.key, *keys]).encode()).hexdigest()[:32]

    # ------------------------------------------------------------------ writing
    def write_shard(self, keys: Sequence[str], states: Any, *, seconds: float = 0.0) -> str:
        """Write the states of ``keys`` as one shard and record it; returns its name.

        Args:
            keys: the functions' :func:`function_key` values, in the order of ``states``.
            states: a :class:`jepa.teacher.model.States` of ``len(keys)`` functions (per-token
                states required when the spec keeps them).
            seconds: the time spent computing them (recorded).

        Raises:
            ValueError: sizes disagree, or per-token states are missing.
        """
        n = len(keys)
        if states.signature.shape[0] != n or states.body.shape[0] != n:
            raise ValueError(f"{n} keys but states of {states.signature.shape[0]} functions")
        tensors = {"signature": states.signature.float().contiguous(),
                   "body": states.body.float().contiguous(),
                   "signature_length": states.signature_length.to(torch.int32),
                   "body_length": states.body_length.to(torch.int32)}
        if self.spec.token_parts:
            dtype = getattr(torch, self.spec.token_dtype)
            for part in self.spec.token_parts:
                seq = getattr(states, f"{part}_tokens")
                if seq is None or len(seq) != n:
                    raise ValueError(f"the spec keeps per-token states but {part}_tokens is missing")
                lengths = torch.tensor([0] + [t.shape[0] for t in seq], dtype=torch.int64)
                tensors[f"{part}_offsets"] = lengths.cumsum(0)
                tensors[f"{part}_tokens"] = torch.cat(list(seq)).to(dtype).contiguous()
        from safetensors.torch import save

        name = self.shard_name(keys)
        # one metadata entry: safetensors writes several in hash order, which would change the bytes
        about = json.dumps({"format": STATES_FORMAT, "spec": self.spec.key, "keys": list(keys)},
                           sort_keys=True)
        blob = save(tensors, metadata={"jepa": about})
        path = atomic_write(self.shard_path(name), lambda f: f.write(blob))
        digest = hashlib.sha256(blob).hexdigest()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("INSERT OR REPLACE INTO shards VALUES (?, ?, ?, ?, ?)",
                             (name, digest, path.stat().st_size, n, seconds))
            self._db.executemany("INSERT OR REPLACE INTO rows VALUES (?, ?, ?)",
                                 [(k, name, i) for i, k in enumerate(keys)])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return name

    # ------------------------------------------------------------------ reading
    def _locate(self, keys: Sequence[str]) -> dict[str, list[tuple[int, int]]]:
        """shard -> [(position in keys, row in shard)]; :class:`StoreError` for missing keys."""
        where: dict[str, tuple[str, int]] = {}
        for i in range(0, len(keys), 900):
            chunk = list(keys[i:i + 900])
            for k, shard, row in self._db.execute(
                    f"SELECT key, shard, row FROM rows WHERE key IN ({','.join('?' * len(chunk))})", chunk):
                where[k] = (shard, row)
        missing = [k for k in keys if k not in where]
        if missing:
            raise self._fail(f"{len(missing)} of {len(keys)} functions have no teacher states in "
                             f"{self.directory} (first key {missing[0]})")
        by_shard: dict[str, list[tuple[int, int]]] = {}
        for pos, k in enumerate(keys):
            shard, row = where[k]
            by_shard.setdefault(shard, []).append((pos, row))
        return by_shard

    def _load(self, name: str, verify: bool) -> Mapping[str, torch.Tensor]:
        from safetensors.torch import load

        path = self.shard_path(name)
        digest, size = self._db.execute("SELECT sha256, bytes FROM shards WHERE name = ?",
                                        (name,)).fetchone()
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise self._fail(f"teacher-state shard {path} is missing") from None
        if len(blob) != size:
            raise self._fail(f"teacher-state shard {path} is truncated or damaged: {len(blob)} "
                             f"bytes, the index says {size}")
        if verify and hashlib.sha256(blob).hexdigest() != digest:
            raise self._fail(f"teacher-state shard {path} does not have the SHA-256 its index "
                             f"records ({digest})")
        try:
            return load(blob)
        except Exception as exc:  # safetensors raises its own error types
            raise self._fail(f"teacher-state shard {path} cannot be read ({exc})") from exc

    def read(self, keys: Sequence[str], *, tokens: bool | Sequence[str] = False,
             verify: bool = True) -> dict[str, Any]:
        """The states of ``keys``, in order.

        Args:
            keys: :func:`function_key` values.
            tokens: also return per-token states: ``True`` = every part the spec keeps, or the
                parts to read (``["signature"]``).
            verify: check every shard's SHA-256 against the index.

        Returns:
            ``signature``, ``body``: ``[N, D]`` float32; ``signature_length``, ``body_length``:
            ``[N]`` int64; with ``tokens``: ``signature_tokens``, ``body_tokens``: lists of N
            tensors ``[T_i, D]`` in the store dtype.

        Raises:
            StoreError: a key without states, a missing, truncated or altered shard (the
                message names the file and the rebuild command).
            ValueError: ``tokens`` asked of a store without per-token states.
        """
        parts = tuple(self.spec.token_parts if tokens is True else (tokens or ()))
        if (tokens is True and not parts) or not set(parts) <= set(self.spec.token_parts):
            raise ValueError(f"{self.directory} keeps per-token states of {list(self.spec.token_parts)} "
                             f"only, not {list(parts)} (store.tokens={self.spec.tokens})")
        n = len(keys)
        out: dict[str, Any] = {}
        token_parts: dict[str, list[Any]] = {part: [None] * n for part in parts}
        for name, pairs in self._locate(keys).items():
            shard = self._load(name, verify)
            pos = torch.tensor([p for p, _ in pairs])
            rows = torch.tensor([r for _, r in pairs])
            for field in POOLED:
                t = shard[field]
                if field not in out:
                    out[field] = torch.zeros((n, *t.shape[1:]), dtype=t.dtype)
                out[field][pos] = t[rows]
            if parts:
                for part in token_parts:
                    flat, offsets = shard[f"{part}_tokens"], shard[f"{part}_offsets"]
                    for p, r in pairs:
                        # a copy: a view would keep the whole shard (other parts too) in memory
                        token_parts[part][p] = flat[offsets[r]:offsets[r + 1]].clone()
        for field in ("signature_length", "body_length"):
            if field in out:
                out[field] = out[field].long()
        out.update({f"{part}_tokens": seq for part, seq in token_parts.items()})
        return out

    def verify(self) -> list[str]:
        """Check every recorded shard (present, size, SHA-256); returns the damaged shard paths."""
        bad = []
        for name, digest, size in self._db.execute("SELECT name, sha256, bytes FROM shards").fetchall():
            path = self.shard_path(name)
            if not path.is_file() or path.stat().st_size != size or file_sha256(path) != digest:
                bad.append(str(path))
        return bad

    def drop_damaged(self) -> list[str]:
        """Forget every damaged shard (:meth:`verify`) so that the next extraction recomputes it;
        returns their paths."""
        bad = self.verify()
        if bad:
            names = [Path(p).name.removesuffix(".safetensors") for p in bad]
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM rows WHERE shard = ?", [(n,) for n in names])
            self._db.executemany("DELETE FROM shards WHERE name = ?", [(n,) for n in names])
            self._db.execute("COMMIT")
            for path in bad:
                logger.warning("teacher-state shard %s is damaged; it will be recomputed", path)
        return bad

    def summary(self) -> dict[str, Any]:
        """Rows, shards, bytes on disk and compute seconds of the state set."""
        shards, size, seconds = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0), COALESCE(SUM(seconds), 0) FROM shards").fetchone()
        return {"directory": str(self.directory), "spec": json.loads(self.spec.canonical()),
                "functions": len(self), "shards": shards, "bytes": size,
                "compute_seconds": round(seconds, 2)}
