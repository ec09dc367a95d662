"""Corpus source (c): a pinned list of PyPI distributions, downloaded once with pip (``DESIGN.md``, jepa *Corpus*).

A *pinned list* is a YAML file (``configs/jepa/corpus/pypi100.yaml``)::

    # why these distributions (a comment, or the criteria key)
    criteria: "well-known, permissively licensed, mostly pure-Python"
    packages:
      - attrs==23.2.0
      - requests==2.32.3

Every entry is exactly ``name==version`` (no ranges, extras or markers); a distribution named twice
(in any spelling) is an error. :func:`read_pins` names the file, line and entry of a bad one.

:func:`download` fetches each pin with ``python -m pip download --no-deps`` into
``<cache>/files/``, once: ``<cache>/manifest.json`` records per pin the file name, its SHA-256 and
its size, and a later call with every file present runs no pip (it re-hashes the files and refuses
a mismatch). pip is asked for ``--platform any --implementation py --abi none --python-version
3.11``, so it takes the release's pure-Python wheel (``py3-none-any``) when there is one and its
sdist otherwise -- the same file on every machine, whatever its platform or Python.

:func:`archive_functions` reads the ``.py`` files straight from the archives (wheel = zip, sdist =
``.tar.gz`` or ``.zip``), without extracting them to disk: one *repository* per distribution, named
by its normalised name (PEP 503, as the installed source names them), file paths relative to the
archive root -- a wheel's as they are, an sdist's with its top folder (``name-version/``) stripped.
Everything the archive ships is kept (tests, docs, examples included, as the other sources keep
what a distribution or checkout holds), except paths through a directory named in
:data:`jepa.corpus.sources.SKIPPED_DIRS`. Files that are not UTF-8 or do not parse are skipped and
reported, and the per-repository cap and minimum apply, exactly as in the other sources (the same
:func:`jepa.corpus.sources._collect`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.errors import EnvironmentProblem, InputError
from harness.io import atomic_write_json, file_sha256
from jepa.corpus.sources import SKIPPED_DIRS, SourceReport, _collect, _normalise

__all__ = ["TARGET_PYTHON", "Archive", "Pin", "archive_files", "archive_functions", "download",
           "parse_pins", "pypi_functions", "read_pins"]

logger = logging.getLogger(__name__)

TARGET_PYTHON = "3.11"
"""The Python version pip selects files for (fixed, so the chosen file does not depend on the machine)."""

MANIFEST = "manifest.json"

# PEP 508 names; versions: a digit first, then PEP 440 characters (no spaces, operators or markers)
_PIN = re.compile(r"([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)==([0-9][A-Za-z0-9.+!_-]*)")
_REPOSITORY_CONSTRAINTS = Path(__file__).resolve().parents[2] / "constraints.txt"


@dataclass(frozen=True)
class Pin:
    """One ``name==version`` entry; ``repository`` is the normalised name (PEP 503)."""

    name: str
    version: str

    @property
    def repository(self) -> str:
        """The normalised distribution name, which names the corpus repository."""
        return _normalise(self.name)

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Archive:
    """A downloaded distribution file of a :class:`Pin`.

    Args:
        pin: what was asked for.
        path: the file in the cache (a ``.whl``, ``.tar.gz`` or ``.zip``).
        sha256: hex SHA-256 of the file.
        size: bytes.
    """

    pin: Pin
    path: Path
    sha256: str
    size: int

    def record(self) -> dict[str, str | int]:
        """What the store records: ``{"pin", "file", "sha256", "bytes"}``."""
        return {"pin": str(self.pin), "file": self.path.name, "sha256": self.sha256,
                "bytes": self.size}


def parse_pins(entries: Sequence[str], where: Sequence[str] | None = None) -> list[Pin]:
    """Parse ``name==version`` strings.

    Args:
        entries: the strings.
        where: per entry, where it came from for error messages (default ``pins[i]``).

    Raises:
        InputError: an entry that is not exactly ``name==version`` or a name given twice; the
            message names where, the entry and the expected form.
    """
    where = list(where) if where is not None else [f"pins[{i}]" for i in range(len(entries))]
    pins: list[Pin] = []
    seen: dict[str, str] = {}
    for entry, place in zip(entries, where, strict=True):
        match = _PIN.fullmatch(entry.strip())
        if match is None:
            raise InputError(f"{place}: {entry!r} is not a pin; write exactly name==version "
                             "(e.g. requests==2.32.3: no ranges, extras, markers or comments)")
        pin = Pin(*match.groups())
        if pin.repository in seen:
            raise InputError(f"{place}: {entry!r} names {pin.repository} again "
                             f"(first at {seen[pin.repository]}); keep one pin per distribution")
        seen[pin.repository] = place
        pins.append(pin)
    return pins


def read_pins(path: str | os.PathLike) -> list[Pin]:
    """Read a pinned list (module docstring): the top-level keys ``packages`` and ``criteria``.

    Raises:
        InputError: the file is missing or not YAML, has other top-level keys, no ``packages``
            list, or a bad entry (the message names the file and line).
    """
    path = Path(path)
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read the pinned list {path} ({exc})") from exc
    if not isinstance(root, yaml.MappingNode):
        raise InputError(f"{path}: expected a mapping with 'packages' (and 'criteria') at the top level")
    sections = {key.value: value for key, value in root.value}
    unknown = sorted(set(sections) - {"packages", "criteria"})
    if unknown:
        raise InputError(f"{path}: unknown key(s) {unknown}; valid keys: ['criteria', 'packages']")
    packages = sections.get("packages")
    if not isinstance(packages, yaml.SequenceNode) or not packages.value:
        raise InputError(f"{path}: 'packages' must be a non-empty list of name==version entries")
    places = [f"{path}:{node.start_mark.line + 1}" for node in packages.value]
    for node, place in zip(packages.value, places):
        if not isinstance(node, yaml.ScalarNode):
            raise InputError(f"{place}: expected a name==version string, found a {node.id}")
    return parse_pins([node.value for node in packages.value], places)



def _pip_download(pin: Pin, dest: Path) -> None:
    """Run ``pip download`` for one pin into the empty folder ``dest``.

    Raises:
        EnvironmentProblem: pip failed (no network, or no such release); the message names the
            pin and ends with pip's last lines of output.
    """
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input",
               "--disable-pip-version-check", "--progress-bar", "off", "--dest", str(dest),
               "--platform", "any", "--implementation", "py", "--abi", "none",
               "--python-version", TARGET_PYTHON, str(pin)]
    if _REPOSITORY_CONSTRAINTS.is_file():  # as every pip call of this repository; no-op for pins
        command[4:4] = ["-c", str(_REPOSITORY_CONSTRAINTS)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise EnvironmentProblem(f"pip could not download {pin} (exit {done.returncode}); check that "
                                 f"this release exists and the package index is reachable:\n{tail}")


def _load_manifest(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is damaged ({exc}); delete it (the files are fetched again)") from exc


def download(pins: Sequence[Pin], cache_dir: str | os.PathLike) -> list[Archive]:
    """Download each pin once into ``<cache_dir>/files/`` and return the archives, in ``pins`` order.

    A pin recorded in ``<cache_dir>/manifest.json`` whose file is present is not downloaded again;
    its file is re-hashed and must match the record. The manifest (``{"files": {pin: {"file",
    "sha256", "bytes"}}}``) is rewritten atomically after each download, so an interrupted run keeps
    what it fetched.

    Raises:
        EnvironmentProblem: pip failed for a pin (see :func:`_pip_download`).
        InputError: a cached file whose SHA-256 differs from the manifest (the message says which
            file to delete), or a damaged manifest.
        RuntimeError: pip reported success but left no file, or several.
    """
    cache = Path(cache_dir)
    files, manifest_path = cache / "files", cache / MANIFEST
    files.mkdir(parents=True, exist_ok=True)
    manifest = _load_manifest(manifest_path)
    archives, fetched, start = [], 0, time.perf_counter()
    for pin in pins:
        record = manifest.get(str(pin))
        if record is None or not (files / record["file"]).is_file():
            with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
                _pip_download(pin, Path(tmp))
                got = sorted(Path(tmp).iterdir())
                if len(got) != 1:
                    raise RuntimeError(f"pip download {pin} left {len(got)} files, expected 1: "
                                       f"{[p.name for p in got]}")
                record = {"file": got[0].name, "sha256": file_sha256(got[0]), "bytes": got[0].stat().st_size}
                shutil.move(str(got[0]), files / record["file"])
            manifest[str(pin)] = record
            atomic_write_json(manifest_path, {"files": manifest})
            fetched += 1
            logger.info("downloaded %s: %s (%.1f MiB)", pin, record["file"], record["bytes"] / 2**20)
        path = files / record["file"]
        digest = file_sha256(path)
        if digest != record["sha256"]:
            raise InputError(f"{path} has SHA-256 {digest}, but {manifest_path} records "
                             f"{record['sha256']} for {pin}; delete the file to fetch it again")
        archives.append(Archive(pin, path, digest, path.stat().st_size))
    logger.info("%d distributions, %d downloaded now, in %.1f s", len(archives), fetched,
                time.perf_counter() - start)
    return archives


def archive_files(path: str | os.PathLike) -> list[tuple[str, bytes]]:
    """The ``.py`` files of a wheel or sdist as (relative path, bytes), sorted by path.

    Paths are those inside the archive, an sdist's (``.tar.gz``/``.tar.bz2``/``.zip`` not named
    ``.whl``) without its top folder; paths through :data:`SKIPPED_DIRS` are left out.

    Raises:
        InputError: not a readable ``.whl``, ``.zip`` or ``.tar.*`` archive.
    """
    path = Path(path)
    wheel = path.name.endswith(".whl")
    out: dict[str, bytes] = {}
    try:
        if wheel or path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if not info.is_dir() and info.filename.endswith(".py"):
                        out[info.filename] = archive.read(info)
        elif ".tar" in path.name:
            with tarfile.open(path, "r:*") as archive:
                for member in archive:
                    if member.isfile() and member.name.endswith(".py"):
                        out[member.name] = archive.extractfile(member).read()
        else:
            raise InputError(f"{path}: not a wheel (.whl) or sdist (.tar.gz, .zip)")
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise InputError(f"{path}: not a readable archive ({exc}); delete it to fetch it again") from exc
    files = []
    for name, data in out.items():
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if not wheel:
            parts = parts[1:]  # name-version/
        if parts and not SKIPPED_DIRS.intersection(parts[:-1]):
            files.append(("/".join(parts), data))
    return sorted(files)


def archive_functions(archives: Sequence[Archive], *, cap: int | None = None,
                      minimum: int = 0) -> SourceReport:
    """Functions of downloaded archives, one repository per distribution, in sorted name order.

    Args:
        archives: from :func:`download`.
        cap: most functions kept per distribution (``None`` = no cap).
        minimum: distributions with fewer functions are dropped (and counted).

    Raises:
        InputError: an unreadable archive.
    """
    ordered = sorted(archives, key=lambda a: a.pin.repository)
    return _collect(((a.pin.repository, archive_files(a.path)) for a in ordered), cap, minimum)


def pypi_functions(pins: str | os.PathLike | Sequence[str | Pin], cache_dir: str | os.PathLike, *,
                   cap: int | None = None, minimum: int = 0) -> tuple[SourceReport, list[Archive]]:
    """Download (once) and extract a pinned list: :func:`download`, then :func:`archive_functions`.

    Args:
        pins: a pinned-list file, or ``name==version`` strings / :class:`Pin` objects.
        cache_dir: the download cache (``files/`` and ``manifest.json``).
        cap: most functions kept per distribution (``None`` = no cap).
        minimum: distributions with fewer functions are dropped (and counted).

    Returns:
        The :class:`SourceReport` and the archives read (record them: :meth:`Archive.record`).

    Raises:
        InputError: a bad pinned list or a damaged cache file.
        EnvironmentProblem: pip could not download a pin.
    """
    pins = read_pins(pins) if isinstance(pins, (str, os.PathLike)) else parse_pins([str(p) for p in pins])
    archives = download(pins, cache_dir)
    return archive_functions(archives, cap=cap, minimum=minimum), archives
