"""The two kinds of error a command-line user can act on, shared by every entry point.

:class:`InputError` is the user's input (exit code 2); :class:`EnvironmentProblem` is the machine
(exit code 3). They live in this dependency-free module so that light tools (``harness.run``, the
sandbox) and heavy ones (the trainer's entry points, :mod:`harness.cli`) raise the same types.
"""

from __future__ import annotations

__all__ = ["EnvironmentProblem", "InputError"]


class InputError(ValueError):
    """Bad input a user can fix: a missing or malformed file, an absurd option value (exit 2)."""


class EnvironmentProblem(RuntimeError):
    """The machine cannot run the command as asked: no CUDA, a sandbox that cannot start (exit 3)."""
