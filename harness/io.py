"""Atomic file writes: a file is either its old content or its complete new content, never half.

Every artefact a run produces (config, checkpoints, reports, logs' summaries) goes through these
helpers so that a run killed at any moment loses nothing already computed.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_json", "atomic_write_text", "file_sha256"]


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    The file gets the mode an ordinary ``open(path, "w")`` would give it: a new file
    ``0o666 & ~umask`` (the kernel applies the umask and any default ACL), a replaced file the
    mode the old one had (an executable stays executable, a private file stays private).

    Raises:
        OSError: when the directory is not writable; the old file is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        old_mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        old_mode = None
    fd, tmp = _create_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            if old_mode is not None:
                os.fchmod(f.fileno(), old_mode)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _create_beside(path: Path) -> tuple[int, str]:
    """A new, empty temporary file in ``path``'s directory, opened for writing: ``(fd, name)``.

    Created with mode ``0o666`` like any file ``open`` makes, so the umask applies (``mkstemp``
    would make it ``0o600`` whatever the umask).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path} after 100 tries")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``path``."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (keys in insertion order) to ``path``."""
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of the file at ``path``, read ``chunk`` bytes at a time.

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
