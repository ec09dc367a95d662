"""Where corpus functions come from: installed distributions, or a directory of checkouts.

(The third source, a pinned list of PyPI distributions, is :mod:`jepa.corpus.pypi`; it reads
archives through the same :func:`_collect`.)

* :func:`installed_functions`: one *repository* per installed distribution (``importlib.metadata``),
  named by its normalised distribution name (PEP 503: lower case, runs of ``-_.`` as ``-``); its
  files are the ``.py`` entries of ``dist.files`` (the RECORD), in sorted order. A distribution
  found twice on the path is taken once (the first found).
* :func:`directory_functions`: each immediate subdirectory of a folder is one repository, named by
  the subdirectory; its files are the ``.py`` files below it, walked in sorted order, skipping
  directories named in :data:`SKIPPED_DIRS` and any directory holding a ``pyvenv.cfg`` (a virtual
  environment).

Every source leaves out files under a vendored folder (:data:`VENDORED_DIRS`: copies of other
projects, which would otherwise be counted under the project that ships them). All apply the same
per-repository limits (:func:`cap_repository`): a repository with more than
``cap`` functions keeps the ``cap`` whose SHA-256 of ``"path::qualname"`` is smallest (deterministic,
independent of file order), and a repository with fewer than ``minimum`` functions (before
capping) is dropped and counted in :attr:`SourceReport.dropped_repositories`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jepa.corpus.extract import Function, SkippedFile, extract_functions

__all__ = ["installed_search_path",
    "SKIPPED_DIRS",
    "VENDORED_DIRS",
    "SourceReport",
    "cap_repository",
    "directory_functions",
    "installed_functions",
]

logger = logging.getLogger(__name__)

SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", "site-packages", "node_modules",
                          "venv", ".venv", "env", ".env", ".tox", ".nox"})
"""Directory names never entered by :func:`directory_functions`."""

VENDORED_DIRS = frozenset({"_vendor", "vendor", "_vendored", "vendored", "extern", "_extern"})
"""Folders holding copies of other projects (pip's ``_vendor`` holds requests, rich, urllib3, ...);
files under them are left out by every source, so a function belongs to the project that wrote it."""


@dataclass
class SourceReport:
    """What a source yielded, and what it left out.

    Args:
        functions: the kept functions, repository by repository, in (path, line) order.
        skipped: files that yielded no functions (not UTF-8, syntax error, unreadable).
        dropped_repositories: repository -> its function count, for those below the minimum.
        capped_repositories: repository -> its function count before capping, for those above the cap.
        files: number of ``.py`` files read.
    """

    functions: list[Function] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    dropped_repositories: dict[str, int] = field(default_factory=dict)
    capped_repositories: dict[str, int] = field(default_factory=dict)
    files: int = 0

    def summary(self) -> dict:
        """Counts for a log line or a JSON report."""
        return {"functions": len(self.functions),
                "repositories": len({f.repository for f in self.functions}),
                "files": self.files, "skipped_files": len(self.skipped),
                "dropped_repositories": dict(self.dropped_repositories),
                "capped_repositories": dict(self.capped_repositories)}


def _order_key(function: Function) -> str:
    return hashlib.sha256(f"{function.path}::{function.qualname}".encode()).hexdigest()


def cap_repository(functions: Sequence[Function], cap: int | None) -> list[Function]:
    """Keep at most ``cap`` functions (``None`` = all): those with the smallest SHA-256 of ``path::qualname``.

    The kept functions are returned in (path, start line) order.
    """
    kept = list(functions) if cap is None or len(functions) <= cap else \
        sorted(functions, key=_order_key)[:cap]
    return sorted(kept, key=lambda f: (f.path, f.start_line, f.qualname))


def _collect(repositories: Iterable[tuple[str, Iterable[tuple[str, Path | bytes]]]],
             cap: int | None, minimum: int) -> SourceReport:
    """Extract every (repository, files) pair and apply the cap and minimum.

    Each file is (relative path, the file on disk or its bytes, as read from an archive).
    """
    if cap is not None and cap < 1:
        raise ValueError(f"cap must be >= 1 or None, got {cap}")
    report = SourceReport()
    for repository, files in repositories:
        functions = []
        for rel, full in files:
            if VENDORED_DIRS.intersection(Path(rel).parts[:-1]):
                continue
            report.files += 1
            try:
                data = full if isinstance(full, bytes) else full.read_bytes()
            except OSError as exc:
                report.skipped.append(SkippedFile(repository, rel, f"unreadable: {exc}"))
                continue
            found, skipped = extract_functions(data, repository=repository, path=rel)
            if skipped is not None:
                logger.debug("skipped %s/%s: %s", repository, rel, skipped.reason)
                report.skipped.append(skipped)
            functions.extend(found)
        if len(functions) < minimum:
            report.dropped_repositories[repository] = len(functions)
            continue
        if cap is not None and len(functions) > cap:
            report.capped_repositories[repository] = len(functions)
        report.functions.extend(cap_repository(functions, cap))
    logger.info("%d functions from %d files; %d files skipped, %d repositories below the minimum",
                len(report.functions), report.files, len(report.skipped),
                len(report.dropped_repositories))
    return report


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_search_path() -> list[str]:
    """``sys.path`` without the working directory (``""`` or its absolute path).

    ``python -m`` puts the working directory first on ``sys.path``; a checkout holding an
    ``*.egg-info`` (this one does) would then add or shadow a distribution, so the installed corpus
    would depend on where the command is run. Searching this path instead makes it the same from
    every directory.
    """
    cwd = os.path.realpath(os.getcwd())
    return [p for p in sys.path if p and os.path.realpath(p) != cwd]


def installed_functions(*, cap: int | None = None, minimum: int = 0,
                        names: Sequence[str] | None = None,
                        path: Sequence[str] | None = None) -> SourceReport:
    """Functions of the installed distributions, one repository per distribution.

    Args:
        cap: most functions kept per distribution (``None`` = no cap).
        minimum: distributions with fewer functions are dropped (and counted).
        names: only these distributions (any spelling of the name); ``None`` = all.
        path: directories to search (default :func:`installed_search_path`: ``sys.path`` without
            the working directory, so the corpus is the same from every directory).

    Returns:
        A :class:`SourceReport`; repositories in sorted name order.

    Raises:
        ValueError: a name in ``names`` that is not installed (the message lists the installed ones).
    """
    from importlib import metadata

    dists = {}
    search = list(path) if path is not None else installed_search_path()
    for dist in metadata.distributions(path=search):
        name = _normalise(dist.metadata["Name"] or "")
        if name and name not in dists:
            dists[name] = dist
    if names is not None:
        wanted = [_normalise(n) for n in names]
        missing = sorted(set(wanted) - set(dists))
        if missing:
            raise ValueError(f"distributions {missing} are not installed; installed: {sorted(dists)}")
        dists = {n: dists[n] for n in wanted}

    def files(dist) -> list[tuple[str, Path]]:
        entries = sorted(str(f) for f in (dist.files or []) if str(f).endswith(".py"))
        return [(rel, Path(dist.locate_file(rel))) for rel in entries]

    return _collect(((name, files(dists[name])) for name in sorted(dists)), cap, minimum)


def _python_files(root: Path) -> list[tuple[str, Path]]:
    out = []
    for directory, subdirs, filenames in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIPPED_DIRS
                            and not (Path(directory) / d / "pyvenv.cfg").is_file())
        out.extend((Path(directory, f).relative_to(root).as_posix(), Path(directory, f))
                   for f in sorted(filenames) if f.endswith(".py"))
    return out


def directory_functions(directory: str | os.PathLike, *, cap: int | None = None,
                        minimum: int = 0) -> SourceReport:
    """Functions of a directory of repository checkouts, one repository per immediate subdirectory.

    Args:
        directory: the folder holding the checkouts.
        cap: most functions kept per repository (``None`` = no cap).
        minimum: repositories with fewer functions are dropped (and counted).

    Raises:
        ValueError: ``directory`` is not a directory.
    """
    root = Path(directory)
    if not root.is_dir():
        raise ValueError(f"corpus directory {root} does not exist or is not a directory; "
                         "give a folder whose subdirectories are repository checkouts")
    repos = sorted(p for p in root.iterdir() if p.is_dir() and p.name not in SKIPPED_DIRS)
    return _collect(((p.name, _python_files(p)) for p in repos), cap, minimum)
