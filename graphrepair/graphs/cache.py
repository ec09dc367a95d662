"""On-disk cache of a dataset's program graphs and encoded arrays (reused across runs).

Two kinds of entries, each one file named by the SHA-256 of everything its content depends on:

* ``graphs-<key>.bin``: the :class:`~graphrepair.graphs.graph.ProgramGraph` of every source text, keyed
  by the source texts (in order) and :func:`code_version`.
* ``encoded-<key>.bin``: the arrays of every :class:`~graphrepair.features.encoding.EncodedProgram` of the
  splits, keyed by the splits' task ids and source texts, the vocabulary
  (:meth:`~graphrepair.graphs.vocab.Vocabulary.to_dict`), the eligible categories, the edge options and
  :func:`code_version`. A changed vocabulary is a different key, so it misses.

:func:`code_version` hashes the source files of the modules that produce graphs and encodings
plus the tree-sitter versions, so editing that code invalidates every entry without a manual bump.

A file is ``MAGIC`` + SHA-256 of the payload + the payload (a pickle), written atomically
(:func:`harness.io.atomic_write`). A file whose magic or checksum is wrong, or that does not
unpickle (truncated, overwritten, written by other code), is reported with a WARNING naming the
file and the reason, rebuilt and rewritten; it never fails silently and is never trusted. The
files are pickles: point the cache only at a directory that you alone write to.

The directory is ``$GRAPHREPAIR_GRAPH_CACHE`` when set (``off``, ``0``, ``none`` or an empty value
disable the cache) and ``~/.cache/graphrepair/graphs`` otherwise. Nothing is ever evicted; delete
the directory to reclaim the space (MBPP: about 3 MiB of graphs and 3 MiB per vocabulary).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import logging
import os
import pickle
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from graphrepair.data.problems import Problem
from graphrepair.features.encoding import EncodedProgram
from graphrepair.graphs.graph import ProgramGraph
from graphrepair.graphs.vocab import Vocabulary
from harness.io import atomic_write

__all__ = ["CACHE_ENV", "GraphCache", "code_version", "default_cache_dir"]

log = logging.getLogger(__name__)

CACHE_ENV = "GRAPHREPAIR_GRAPH_CACHE"
_MAGIC = b"GRAPHREPAIR-GRAPH-CACHE-1\n"
_DISABLED = {"", "0", "off", "none", "false"}
_CODE_MODULES = ("graphs/graph.py", "graphs/schema.py", "features/encoding.py", "graphs/vocab.py",
                 "graphs/cache.py")
# EncodedProgram fields rebuilt from the problem and graph instead of being stored.
_NOT_STORED = {"problem", "graph", "orig_texts"}


def default_cache_dir() -> Path | None:
    """The cache directory from ``$GRAPHREPAIR_GRAPH_CACHE`` (``None`` = disabled), else the default."""
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return None if env.strip().lower() in _DISABLED else Path(env).expanduser()
    return Path.home() / ".cache" / "graphrepair" / "graphs"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """SHA-256 (hex) of the graph/encoding modules' source files and the tree-sitter versions."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent.parent  # graphrepair/
    for name in _CODE_MODULES:
        h.update(name.encode() + b"\0" + (here / name).read_bytes() + b"\0")
    for dist in ("tree-sitter", "tree-sitter-python", "numpy"):
        h.update(f"{dist}=={metadata.version(dist)}\0".encode())
    return h.hexdigest()


def _key(kind: str, parts: Sequence[Any]) -> str:
    """Hex SHA-256 of ``kind``, :func:`code_version` and ``parts`` (str, bytes or JSON-able)."""
    h = hashlib.sha256(f"{kind}\0{code_version()}\0".encode())
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


class GraphCache:
    """Graphs and encoded programs of a dataset, cached as files under ``directory``.

    Args:
        directory: where the files live (created on first write); ``None`` disables the cache
            (everything is built, nothing is read or written).

    Attributes:
        hits, misses, rebuilt: entries read from disk, built because absent, and built because
            the file was corrupt (counted in ``misses`` too), since construction.
    """

    def __init__(self, directory: str | os.PathLike | None) -> None:
        self.directory = None if directory is None else Path(directory)
        self.hits = self.misses = self.rebuilt = 0

    @classmethod
    def default(cls) -> GraphCache:
        """The cache at :func:`default_cache_dir` (disabled when the environment says so)."""
        return cls(default_cache_dir())

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(directory={str(self.directory)!r}, hits={self.hits}, "
            f"misses={self.misses}, rebuilt={self.rebuilt})"
        )

    def graphs(self, sources: Sequence[str]) -> list[ProgramGraph]:
        """``[ProgramGraph.from_source(s) for s in sources]``, from the cache when it has them."""
        key = _key("graphs", sources)
        return self._get("graphs", key, lambda: [ProgramGraph.from_source(s) for s in sources])

    def encoded(
        self,
        splits: dict[str, list[tuple[Problem, ProgramGraph]]],
        vocab: Vocabulary,
        eligible: Sequence[str],
        same_identifier_edges: bool = False,
    ) -> dict[str, list[EncodedProgram]]:
        """:meth:`EncodedProgram.build` of every (problem, graph) of every split, cached.

        Args:
            splits: ``{split name: [(problem, graph), ...]}``; each graph must be the graph of its
                problem's source (as :meth:`graphs` gives it).
            vocab: the vocabulary to encode with (part of the key).
            eligible: corruptible leaf categories (part of the key).
            same_identifier_edges: see :meth:`EncodedProgram.build` (part of the key).

        Returns:
            ``{split name: [EncodedProgram, ...]}`` in the order of ``splits``.
        """
        parts: list[Any] = [json.dumps(vocab.to_dict()), json.dumps(sorted(eligible)),
                            same_identifier_edges]
        for name, pairs in splits.items():
            parts.append(f"split:{name}:{len(pairs)}")
            for p, _ in pairs:
                parts.extend((p.task_id, p.source))

        def build() -> dict[str, list[dict]]:
            return {
                name: [
                    _to_arrays(EncodedProgram.build(p, g, vocab, eligible, same_identifier_edges))
                    for p, g in pairs
                ]
                for name, pairs in splits.items()
            }

        stored = self._get("encoded", _key("encoded", parts), build)
        return {
            name: [_from_arrays(p, g, a) for (p, g), a in zip(pairs, stored[name], strict=True)]
            for name, pairs in splits.items()
        }

    def _get(self, kind: str, key: str, build: Callable[[], Any]) -> Any:
        """Read the entry ``kind-key`` or build, write and return it."""
        if self.directory is None:
            return build()
        path = self.directory / f"{kind}-{key}.bin"
        if path.exists():
            try:
                value = _read(path)
            except (ValueError, pickle.UnpicklingError, EOFError, AttributeError, ImportError,
                    IndexError, TypeError, OSError) as exc:
                self.rebuilt += 1
                log.warning("graph cache file %s is unusable (%s: %s); rebuilding it",
                            path, type(exc).__name__, exc)
            else:
                self.hits += 1
                log.info("graph cache hit: %s", path)
                return value
        self.misses += 1
        value = build()
        try:
            atomic_write(path, lambda f: _write(f, value))
        except OSError as exc:  # the result is still correct; say that it was not kept
            log.warning("graph cache: could not write %s (%s); continuing without caching", path, exc)
        else:
            log.info("graph cache miss: built and wrote %s", path)
        return value


def _write(f: io.BufferedIOBase, value: Any) -> None:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(_MAGIC + hashlib.sha256(payload).digest() + payload)


def _read(path: Path) -> Any:
    """Unpickle a cache file after checking its magic and checksum.

    Raises:
        ValueError: wrong magic (not a cache file) or checksum mismatch (truncated or damaged).
    """
    data = path.read_bytes()
    if not data.startswith(_MAGIC):
        raise ValueError("not a graph cache file (bad header)")
    start = len(_MAGIC) + 32
    digest, payload = data[len(_MAGIC) : start], data[start:]
    if len(digest) != 32 or hashlib.sha256(payload).digest() != digest:
        raise ValueError(f"checksum mismatch ({len(data)} bytes; truncated or damaged)")
    return pickle.loads(payload)


def _to_arrays(enc: EncodedProgram) -> dict[str, Any]:
    """The stored fields of ``enc`` (numpy arrays and ints)."""
    out = {}
    for f in dataclasses.fields(enc):
        if f.name not in _NOT_STORED:
            value = getattr(enc, f.name)
            out[f.name] = value.numpy() if isinstance(value, torch.Tensor) else value
    return out


def _from_arrays(problem: Problem, graph: ProgramGraph, arrays: dict[str, Any]) -> EncodedProgram:
    """Inverse of :func:`_to_arrays` given the program's problem and graph."""
    values = {
        k: torch.from_numpy(v) if k in ("edge_index", "edge_type") else v
        for k, v in arrays.items()
    }
    return EncodedProgram(problem=problem, graph=graph, orig_texts=list(graph.leaf_texts), **values)
