"""Several training seeds of one experiment: a *seed group* directory with one run per seed.

``--seeds N`` (``python -m graphrepair.train --exp 3d --seeds 3``) trains N runs of one
configuration, one after the other, that differ only in the training seed: run ``k`` uses
``train.seed + k`` (k = 0..N-1). They go into one seed group directory::

    <run_root>/<exp>-<UTC time>/        (or --run-dir)
        seeds.json                      {"exp", "seeds": [s, ...], "runs": ["seed<s>", ...],
                                         "argv", "git_commit", "created"}
        seed<s>/ ...                    one ordinary run directory per seed (its config.yaml
                                        holds its own train.seed)

A seed's directory is named by the training seed itself (``seed0``, ``seed1``, ... for the default
``train.seed: 0``), as evaluation names its units by the corruption seed. Each is an ordinary run
directory: ``--resume GROUP/seed<s>`` continues an interrupted seed, and a seed that never started
is trained on its own with ``--set train.seed=<s> --run-dir GROUP/seed<s>``. A comparison reads the
group through :func:`seed_group_runs` and aggregates its runs into one row (mean and Student-t 95%
CI over the training seeds; :func:`harness.stats.mean_ci`).

Like a run directory (:mod:`harness.runs`), a group is created only once training really starts:
:func:`claim_seed_group` checks and creates nothing, and :func:`run_seeds` removes ``seeds.json``
again when the first seed fails before its run directory was written (a missing dataset).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from harness.config import git_commit
from harness.io import atomic_write_json
from harness.runs import RunDirError, claim_run_dir, holds_run

__all__ = ["SEEDS_FILE", "claim_seed_group", "is_seed_group", "read_seed_group", "run_seeds",
           "seed_group_runs", "seed_run_name", "seed_values", "write_seed_group"]

log = logging.getLogger(__name__)
T = TypeVar("T")

SEEDS_FILE = "seeds.json"
"""The file that makes a directory a seed group."""


def seed_values(base: int, n: int) -> list[int]:
    """The training seeds of ``n`` runs: ``[base, base + 1, ..., base + n - 1]``.

    Raises:
        ValueError: ``n < 1``.
    """
    if n < 1:
        raise ValueError(f"--seeds must be >= 1, got {n}")
    return [base + k for k in range(n)]


def seed_run_name(seed: int) -> str:
    """The run directory name of training seed ``seed`` inside its group: ``seed<seed>``."""
    return f"seed{seed}"


def is_seed_group(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a seed group directory (holds :data:`SEEDS_FILE`)."""
    return (Path(path) / SEEDS_FILE).is_file()


def claim_seed_group(path: str | os.PathLike, *, force: bool = False) -> Path:
    """Check that a seed group may be written to ``path``; with ``force`` remove what it holds.

    Args:
        path: the group directory.
        force: a seed group (or a single run) already in ``path`` is deleted, with a WARNING.

    Returns:
        ``path`` as a :class:`~pathlib.Path` (not created).

    Raises:
        RunDirError: ``path`` holds a seed group or a run and ``force`` was not given; ``path`` is
            a non-empty directory holding neither (never deleted), or not a directory.
    """
    path = Path(path)
    if is_seed_group(path):
        if not force:
            raise RunDirError(
                f"{path} already holds a seed group ({SEEDS_FILE}); continue one of its seeds with "
                f"--resume {path}/seed<S>, replace the whole group with --force, or choose another "
                "--run-dir")
        log.warning("--force: deleting the seed group in %s (every seed's run) to start a new one",
                    path)
        shutil.rmtree(path)
        return path
    return claim_run_dir(path, force=force)  # a single run there, a non-empty or a bad directory


def write_seed_group(path: str | os.PathLike, exp: str, seeds: Sequence[int],
                     argv: Sequence[str]) -> Path:
    """Write ``path/seeds.json`` atomically (creating ``path``); returns the file's path."""
    meta = {"exp": exp, "seeds": list(seeds), "runs": [seed_run_name(s) for s in seeds],
            "argv": list(argv), "git_commit": git_commit(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    return atomic_write_json(Path(path) / SEEDS_FILE, meta)


def read_seed_group(path: str | os.PathLike) -> dict:
    """The checked ``seeds.json`` of group ``path``.

    Returns:
        ``{"exp": str, "seeds": [int], "runs": [str], ...}`` (``runs[k]`` is the directory of
        ``seeds[k]``).

    Raises:
        FileNotFoundError: ``path`` is not a seed group.
        ValueError: the file is not JSON, or lacks ``seeds``/``runs`` of equal lengths (the
            message names the file).
    """
    file = Path(path) / SEEDS_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{path} is not a seed group (no {SEEDS_FILE})")
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{file} is not JSON ({exc}); it should be written by --seeds") from None
    seeds, runs = (meta.get("seeds"), meta.get("runs")) if isinstance(meta, dict) else (None, None)
    if not (isinstance(seeds, list) and isinstance(runs, list) and len(seeds) == len(runs) and seeds
            and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
            and all(isinstance(r, str) and r and "/" not in r and r not in (".", "..") for r in runs)):
        raise ValueError(f"{file} is malformed: expected non-empty 'seeds' (integers) and 'runs' "
                         f"(directory names) of equal lengths")
    return meta


def seed_group_runs(path: str | os.PathLike) -> list[Path]:
    """The run directories of group ``path``, in the order of its seeds (:func:`read_seed_group`)."""
    return [Path(path) / name for name in read_seed_group(path)["runs"]]


def run_seeds(group: str | os.PathLike, exp: str, seeds: Sequence[int],
              train_one: Callable[[int, Path], T], *, argv: Sequence[str] = (),
              master: bool = True) -> list[T]:
    """Train one run per seed, one after the other, in ``group/seed<s>``; return their results.

    Rank 0 (``master``) writes ``seeds.json`` first. When the first seed fails before its run
    directory holds anything (e.g. a missing dataset), ``seeds.json`` and the then empty group
    directory are removed again and the error is raised; a later failure leaves the group as it
    is (the finished seeds stay; see the module docstring for continuing it).

    Args:
        group: the group directory, checked by :func:`claim_seed_group`.
        exp: the experiment id (recorded).
        seeds: the training seeds (:func:`seed_values`).
        train_one: ``train_one(seed, run_dir)`` trains (and evaluates) one run.
        argv: the command line (recorded).
        master: whether this process writes (rank 0).

    Returns:
        ``[train_one(s, group / seed_run_name(s)) for s in seeds]``.
    """
    group = Path(group)
    if master:
        write_seed_group(group, exp, seeds, argv)
    results: list[T] = []
    for k, seed in enumerate(seeds):
        run_dir = group / seed_run_name(seed)
        if master:
            log.info("seed %d of %d: train.seed=%d in %s", k + 1, len(seeds), seed, run_dir)
        try:
            results.append(train_one(seed, run_dir))
        except BaseException:
            if master and k == 0 and not holds_run(run_dir):
                (group / SEEDS_FILE).unlink(missing_ok=True)
                if run_dir.is_dir() and not any(run_dir.iterdir()):
                    run_dir.rmdir()
                if not any(group.iterdir()):
                    group.rmdir()
            raise
    return results
