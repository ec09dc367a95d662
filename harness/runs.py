"""Run directories, checkpoint lookup and resumable evaluation units: the run machinery of both tracks.

A *run directory* (``runs/<exp>-<UTC time>/`` by default) holds one training run: ``config.yaml``
(the resolved configuration), ``run.json`` (command line, git commit, every resume),
``metrics.csv``, ``tb/``, ``last.pt`` / ``best.pt`` with their ``.sha256`` and ``eval/``. Rules,
so that nothing already computed is lost:

* :func:`claim_run_dir` refuses a directory that already holds a run unless the user resumes it
  (``--resume``) or replaces it (``--force``, logged); it refuses a non-empty directory that holds
  no run at all. It is called after the configuration was validated, and creates nothing itself:
  a run directory appears only once the run really starts.
* a resumed run keeps its configuration; :func:`resume_config` reads it and lets only the keys
  that extend a run (more epochs, more patience) through, and :func:`record_resume` appends each
  resume to ``run.json`` (and writes the extended ``config.yaml``).

:class:`UnitStore` keeps the finished *units* of a long evaluation (one JSON file each, written
atomically, tagged with a :func:`fingerprint` of everything the unit depends on), so that an
interrupted evaluation continues where it stopped and a changed input is recomputed, never reused.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from harness.config import (
    ConfigError,
    from_dict,
    git_commit,
    parse_override,
    read_config,
    to_dict,
    write_config,
)
from harness.io import atomic_write_json

if TYPE_CHECKING:
    import torch

__all__ = ["RUN_FILES", "RunDirError", "UnitStore", "claim_run_dir", "find_checkpoint",
           "fingerprint", "holds_run", "record_resume", "resume_config", "resume_overrides",
           "timestamped_run_dir"]

log = logging.getLogger(__name__)
C = TypeVar("C")

#: Files whose presence makes a directory a run directory.
RUN_FILES = ("config.yaml", "run.json", "metrics.csv", "last.pt", "best.pt")


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (holds a run, is not a run, is not empty)."""


def timestamped_run_dir(run_root: str | os.PathLike, exp: str,
                        now: _dt.datetime | None = None) -> Path:
    """``<run_root>/<exp>-<YYYYmmdd-HHMMSS>`` in UTC (``now`` defaults to the current time)."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return Path(run_root) / f"{exp}-{now.strftime('%Y%m%d-%H%M%S')}"


def holds_run(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds (part of) a run: any of :data:`RUN_FILES` in it."""
    path = Path(path)
    return any((path / name).exists() for name in RUN_FILES)


def claim_run_dir(path: str | os.PathLike, *, resume: bool = False, force: bool = False) -> Path:
    """Check that a run may be written to ``path``; with ``force`` remove the run it holds.

    Args:
        path: the run directory.
        resume: the run in ``path`` is continued: it must hold ``last.pt``.
        force: a run already in ``path`` is deleted (with a WARNING) and replaced.

    Returns:
        ``path`` as a :class:`~pathlib.Path` (not created).

    Raises:
        RunDirError: ``path`` holds a run and neither ``resume`` nor ``force`` was given; ``path``
            is a non-empty directory without a run (never deleted, even with ``force``);
            ``resume`` and ``force`` together.
        FileNotFoundError: ``resume`` but ``path`` has no ``last.pt``.
    """
    path = Path(path)
    if resume and force:
        raise RunDirError("--resume continues a run and --force replaces it: give one of them")
    if resume:
        if not (path / "last.pt").is_file():
            raise FileNotFoundError(
                f"cannot resume {path}: {path / 'last.pt'} does not exist (the run never finished "
                "an epoch, or this is not a run directory); start it again with --force")
        return path
    if path.exists() and not path.is_dir():
        raise RunDirError(f"run directory {path} exists and is not a directory")
    if holds_run(path):
        if not force:
            raise RunDirError(
                f"{path} already holds a run ({', '.join(n for n in RUN_FILES if (path / n).exists())}); "
                f"continue it with --resume {path}, replace it with --force, or choose another "
                "--run-dir")
        log.warning("--force: deleting the run in %s (its checkpoints, metrics and reports) to "
                    "start a new one there", path)
        shutil.rmtree(path)
    elif path.is_dir() and any(path.iterdir()):
        raise RunDirError(f"{path} is not empty and holds no run: choose a new or empty --run-dir "
                          "(nothing there is deleted, not even with --force)")
    return path


def resume_config(run_dir: str | os.PathLike, cls: type[C], overrides: Sequence[str],
                  extendable: Iterable[str]) -> tuple[C, dict[str, Any]]:
    """The configuration a resumed run continues with: ``run_dir/config.yaml`` read as ``cls``,
    with the ``--set`` overrides that extend a run applied (:func:`resume_overrides`).

    Returns:
        (configuration, ``{dotted key: new value}`` of the overrides applied).

    Raises:
        ConfigError: an unreadable or invalid ``config.yaml``; an override a resume may not change;
            a new value out of range.
    """
    path = Path(run_dir) / "config.yaml"
    data = to_dict(read_config(cls, path))
    changes = dict(resume_overrides(overrides, extendable))
    for key, value in changes.items():
        *sections, name = key.split(".")
        node = data
        for section in sections:
            node = node[section]
        node[name] = value
    return from_dict(cls, data), changes


def resume_overrides(overrides: Sequence[str], extendable: Iterable[str]) -> list[tuple[str, Any]]:
    """Check the ``--set`` overrides given with ``--resume``: only keys that extend a run pass.

    Args:
        overrides: ``key=value`` strings.
        extendable: the dotted keys a resumed run may change (e.g. ``train.epochs``).

    Returns:
        ``(dotted key, value)`` per override, in order.

    Raises:
        ConfigError: a malformed override, or a key that is not extendable (the message says why a
            resumed run keeps its configuration and which keys may change).
    """
    allowed = sorted(extendable)
    out = []
    for text in overrides:
        path, value = parse_override(text)
        key = ".".join(path)
        if key not in allowed:
            raise ConfigError(
                f"--set {key} cannot change a resumed run: it continues with the configuration it "
                f"was started with (its config.yaml); only {', '.join(allowed)} extend a run. To "
                "change anything else, start a new run")
        out.append((key, value))
    return out


def record_resume(run_dir: str | os.PathLike, argv: Sequence[str], changes: Mapping[str, Any],
                  cfg: Any = None) -> None:
    """Append a resume (time, command line, git commit, changed keys) to ``run_dir/run.json``;
    with ``changes``, also rewrite ``run_dir/config.yaml`` from ``cfg`` (the extended run's)."""
    if changes and cfg is not None:
        write_config(cfg, Path(run_dir) / "config.yaml")
    path = Path(run_dir) / "run.json"
    meta = json.loads(path.read_text()) if path.is_file() else {}
    meta.setdefault("resumes", []).append({
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": list(argv), "git_commit": git_commit(), "changed": dict(changes)})
    atomic_write_json(path, meta)


def find_checkpoint(runs_root: str | os.PathLike = "runs", exp: str | None = None,
                    name: str = "best.pt") -> Path:
    """The newest (by modification time) ``name`` of experiment ``exp``'s runs, or of any run.

    With ``exp`` the runs are ``<runs_root>/<exp>-*/``; without it, every ``<runs_root>/**/name``.

    Raises:
        FileNotFoundError: none exists; the message lists the runs that have one.
    """
    root = Path(runs_root)
    pattern = f"{exp}-*/{name}" if exp else f"**/{name}"
    found = sorted(root.glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        have = sorted(str(p.parent.relative_to(root)) for p in root.glob(f"**/{name}"))
        what = f"{root}/{exp}-*/{name}" if exp else f"{name} under {root}"
        raise FileNotFoundError(f"no {what}; runs with a {name}: {have or 'none'}")
    return found[-1]


def fingerprint(settings: Any, tensors: Mapping[str, torch.Tensor] | None = None) -> str:
    """Short hex SHA-256 of JSON-able ``settings`` and (optionally) the bytes of ``tensors``.

    Args:
        settings: anything ``json.dumps(..., sort_keys=True, default=str)`` accepts.
        tensors: e.g. a model's ``state_dict()``; names and exact bytes are hashed.

    Returns:
        32 hex characters.
    """
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted((tensors or {}).items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


class UnitStore:
    """Finished units of a resumable computation, one JSON file each in ``directory``.

    Args:
        directory: where ``<name>.json`` files go (created on the first save).
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)

    def path(self, name: str) -> Path:
        """The file of unit ``name``."""
        return self.directory / f"{name}.json"

    def load(self, name: str, fp: str) -> dict | None:
        """Unit ``name`` if it was saved with fingerprint ``fp``; ``None`` (with a WARNING for a
        different fingerprint or an unreadable file) when it must be computed."""
        path = self.path(name)
        if not path.is_file():
            return None
        try:
            unit = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("%s is unreadable (%s): recomputing it", path, exc)
            return None
        if not isinstance(unit, dict) or unit.get("fingerprint") != fp:
            log.warning("%s was computed from other inputs (model, data or settings): "
                        "recomputing it", path)
            return None
        return unit

    def save(self, name: str, fp: str, unit: dict) -> dict:
        """Write ``unit`` (a JSON-able dict) with ``fingerprint = fp`` atomically; return it."""
        unit = {**unit, "fingerprint": fp}
        atomic_write_json(self.path(name), unit)
        return unit
