"""The common command line of both tracks' entry points: flags, logging, devices, exit codes.

Every entry point (``graphrepair.train``, ``graphrepair.evaluate``, ``jepa.train``, ...) builds its
parser with :func:`experiment_parser` (``--exp``, ``--set``, ``--run-dir``, ``--resume``,
``--force``, ``--data-dir``), calls :func:`setup_logging` once, and returns the value of
:func:`run_cli` as its exit code:

=====  ==========================================================================================
code   meaning
=====  ==========================================================================================
0      success
1      the command ran but its outcome failed (a program not repaired, a test failed)
2      bad input: unknown experiment, bad ``--set``, a run directory that already holds a run, a
       missing or damaged file (dataset, checkpoint), a malformed report — one ``error:`` line
3      the environment cannot run it: CUDA asked for but not available, the sandbox cannot start
=====  ==========================================================================================

Progress bars (tqdm) are shown on rank 0 only and turn themselves off when stderr is not a
terminal (tqdm's ``disable=None``), so logs of batch jobs stay readable.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from harness.checkpoint import CheckpointError
from harness.config import ConfigError, available_experiments
from harness.errors import (
    EXIT_BAD_INPUT,
    EXIT_ENVIRONMENT,
    EXIT_FAILED,
    EXIT_OK,
    EnvironmentProblem,
    InputError,
)
from harness.runs import RunDirError

if TYPE_CHECKING:  # torch only where a device is resolved: light commands start fast
    import torch

__all__ = ["EXIT_BAD_INPUT", "EXIT_ENVIRONMENT", "EXIT_FAILED", "EXIT_OK", "EnvironmentProblem",
           "InputError", "experiment_parser", "is_master", "resolve_device", "run_cli",
           "setup_logging"]

EXIT_CODES_HELP = ("exit codes: 0 success, 1 the outcome failed, 2 bad input (one 'error:' line), "
                   "3 the environment cannot run it (no CUDA, the sandbox cannot start)")


#: Exceptions that are the user's input, shown as one ``error:`` line with exit code 2.
BAD_INPUT = (InputError, ConfigError, RunDirError, CheckpointError, FileNotFoundError)


def is_master() -> bool:
    """Whether this process is rank 0 of its run (``RANK`` unset, as without torchrun, counts as 0)."""
    return int(os.environ.get("RANK", 0)) == 0


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr as plain messages: ``level`` on rank 0, WARNING on the other ranks.

    Call once at the start of an entry point; it does nothing when the root logger already has
    handlers (an application or a test harness embedding the entry point configured them).
    """
    logging.basicConfig(level=level if is_master() else logging.WARNING, format="%(message)s")


def resolve_device(name: str | torch.device) -> torch.device:
    """The torch device ``name`` means: ``auto`` = CUDA when available, else CPU.

    Raises:
        EnvironmentProblem: CUDA was asked for (``cuda``, ``cuda:N``) but is not available, or
            ``cuda:N`` names a GPU that is not visible.
        InputError: ``name`` is not ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """
    import torch

    text = str(name)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError as exc:
        raise InputError(f"unknown device {text!r}: use auto, cpu, cuda or cuda:N") from exc
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"unknown device {text!r}: use auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise EnvironmentProblem(
                f"device {text!r} was asked for but CUDA is not available here (torch "
                f"{torch.__version__}, {'a CPU build' if torch.version.cuda is None else 'no GPU visible'}); "
                "use device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise EnvironmentProblem(f"device {text!r}: only {torch.cuda.device_count()} GPU(s) "
                                     "are visible")
    return device


def experiment_parser(prog: str, description: str, config_dir: str | os.PathLike, *,
                      run_dir: bool = True) -> argparse.ArgumentParser:
    """An argument parser with the common experiment flags.

    Args:
        prog: e.g. ``"python -m graphrepair.train"``.
        description: the first line of ``--help``.
        config_dir: where ``--exp`` ids live (listed in ``--help``).
        run_dir: add ``--run-dir``, ``--resume`` and ``--force`` (training entry points).
    """
    exps = ", ".join(available_experiments(config_dir)) or "none"
    ap = argparse.ArgumentParser(prog=prog, description=description, epilog=EXIT_CODES_HELP)
    where = Path(config_dir)
    ap.add_argument("--exp", help=f"experiment id (a file stem in {where.parent.name}/{where.name}/): "
                                  f"{exps}")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. --set train.lr=1e-4 (repeatable); with "
                         "--resume only the keys that extend a run")
    ap.add_argument("--data-dir", help="dataset directory (default: the track's environment "
                                       "variable or cache)")
    if run_dir:
        ap.add_argument("--run-dir", help="output directory (default: <run_root>/<exp>-<UTC time>); "
                                          "refused if it already holds a run")
        ap.add_argument("--resume", metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its last.pt")
        ap.add_argument("--force", action="store_true",
                        help="replace the run already in --run-dir (deletes it)")
    return ap


def run_cli(main: Callable[[], int], *, master: bool | None = None) -> int:
    """Call ``main()`` and turn the user's errors into one ``error:`` line and an exit code.

    :data:`BAD_INPUT` errors give 2, :class:`EnvironmentProblem` 3; anything else keeps its
    traceback (a bug, not the user's input). Only rank 0 prints.

    Returns:
        ``main()``'s exit code, or 2 / 3.
    """
    master = is_master() if master is None else master
    try:
        return main()
    except BAD_INPUT as exc:
        if master:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except EnvironmentProblem as exc:
        if master:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
