"""The two kinds of error a command-line user can act on, shared by every entry point.

:class:`InputError` is the user's input (exit code 2); :class:`EnvironmentProblem` is the machine
(exit code 3). They and the exit codes live in this dependency-free module so that light tools (``harness.run``, the
sandbox) and heavy ones (the trainer's entry points, :mod:`harness.cli`) raise the same types.
"""

from __future__ import annotations

__all__ = ["EXIT_BAD_INPUT", "EXIT_ENVIRONMENT", "EXIT_FAILED", "EXIT_OK", "EnvironmentProblem",
           "InputError"]

#: Exit codes of every entry point: success, a failed outcome, bad input, the environment.
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_ENVIRONMENT = 0, 1, 2, 3


class InputError(ValueError):
    """Bad input a user can fix: a missing or malformed file, an absurd option value (exit 2)."""


class EnvironmentProblem(RuntimeError):
    """The machine cannot run the command as asked: no CUDA, a sandbox that cannot start (exit 3)."""
