"""Verdicts of the sandbox: :class:`TestResult`, :class:`ProgramResult` and their JSON form.

:func:`harness.sandbox.run_tests` returns these types, :class:`harness.cache.ResultCache` stores
them and ``python -m harness.run`` prints them; this module alone turns them into JSON-able dicts
and back, so the command line's output and the cache's records are one format. It imports
nothing of the sandbox: building, serialising or reading a result never starts a worker process.

The JSON form of a :class:`ProgramResult` (:meth:`ProgramResult.to_json`)::

    {"tests": [{"name", "outcome", "message", "duration_s", "covered_lines": [int, ...]}, ...],
     "load": {"outcome", "message", "covered_lines": [int, ...]},
     "stdout_tail": str, "stderr_tail": str}

Which protections were in force is a property of the machine, not of a result: see
:func:`harness.sandbox.guarantees` (``python -m harness.run`` adds it to its output).

Example::

    data = result.to_json()                     # plain dicts, lists, str, float, int
    assert ProgramResult.from_json(json.loads(json.dumps(data))) == result
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["OUTCOMES", "ProgramResult", "TestResult"]

OUTCOMES = ("passed", "failed", "error", "timeout", "crashed")


def _field(data: Mapping[str, Any], key: str, what: str) -> Any:
    """``data[key]``; ValueError naming ``what`` and the keys found when it is missing."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{what}: expected a JSON object, found {type(data).__name__}")
    try:
        return data[key]
    except KeyError:
        raise ValueError(f"{what}: missing key {key!r} (found {sorted(data)})") from None


def _outcome(value: Any, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"{what}: outcome must be one of {allowed}, found {value!r}")
    return value


def _lines(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not all(
            isinstance(n, int) and not isinstance(n, bool) for n in value):
        raise ValueError(f"{what}: covered_lines must be a list of line numbers, found {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class TestResult:
    """Verdict of one test.

    Attributes:
        name: Test name, e.g. ``"test_0"`` or the ``test_*`` function name.
        outcome: One of :data:`OUTCOMES`: ``passed`` (raised nothing), ``failed``
            (``AssertionError``), ``error`` (any other ``BaseException``, including
            ``SystemExit``), ``timeout`` (ran over the wall-clock limit), ``crashed`` (the child
            process died while it ran).
        message: ``""`` when passed; otherwise the last 15 lines of the traceback (program
            frames shown as ``"program.py", line N``; every frame's source line, chained
            exceptions, no column carets) or the reason, at most ~2000 characters.
        duration_s: Wall-clock duration of the test in seconds (for timeout/crashed: measured by
            the caller from the test's start).
        covered_lines: Sorted 1-based program lines executed while this test ran (not while the
            program was loaded). For ``timeout``: the lines executed until the runner's own
            alarm stopped the program at the limit (empty when the program ignored the alarm
            and had to be killed); empty for ``crashed`` (the data died with the process).
    """

    __test__ = False  # not a pytest class

    name: str
    outcome: str
    message: str
    duration_s: float
    covered_lines: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """``{"name", "outcome", "message", "duration_s", "covered_lines": [...]}``."""
        return {"name": self.name, "outcome": self.outcome, "message": self.message,
                "duration_s": self.duration_s, "covered_lines": list(self.covered_lines)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TestResult:
        """The inverse of :meth:`to_json` (other keys of ``data`` are ignored).

        Raises:
            ValueError: a key is missing, the outcome is not one of :data:`OUTCOMES`, or
                ``covered_lines`` is not a list of integers.
        """
        what = "test result"
        return cls(name=str(_field(data, "name", what)),
                   outcome=_outcome(_field(data, "outcome", what), OUTCOMES, what),
                   message=str(_field(data, "message", what)),
                   duration_s=float(_field(data, "duration_s", what)),
                   covered_lines=_lines(_field(data, "covered_lines", what), what))


@dataclass(frozen=True)
class ProgramResult:
    """Verdicts of all tests of one program, in the order the tests were given.

    Attributes:
        tests: One :class:`TestResult` per test.
        load_outcome: ``"passed"`` when program and setup executed without error; else
            ``"failed"`` (they raised ``AssertionError``), ``"error"`` (any other exception,
            e.g. ``SyntaxError``), ``"timeout"`` or ``"crashed"``. When
            it is not ``"passed"`` no test was run and every test carries this outcome and
            :attr:`load_message`.
        load_message: ``""`` or the reason the load failed.
        load_covered_lines: Program lines executed while loading (module level, ``def`` lines,
            and anything the setup code called).
        stdout_tail: The last 4 KiB of the program's stdout (over all its processes).
        stderr_tail: The last 4 KiB of its stderr.
    """

    tests: tuple[TestResult, ...]
    load_outcome: str
    load_message: str
    load_covered_lines: tuple[int, ...] = ()
    stdout_tail: str = ""
    stderr_tail: str = ""

    @property
    def all_passed(self) -> bool:
        """True iff there is at least one test and every test passed."""
        return bool(self.tests) and all(t.outcome == "passed" for t in self.tests)

    @property
    def n_passed(self) -> int:
        """Number of passed tests."""
        return sum(t.outcome == "passed" for t in self.tests)

    def to_json(self) -> dict[str, Any]:
        """The result as plain dicts and lists (the module docstring's layout); starts nothing."""
        return {"tests": [t.to_json() for t in self.tests],
                "load": {"outcome": self.load_outcome, "message": self.load_message,
                         "covered_lines": list(self.load_covered_lines)},
                "stdout_tail": self.stdout_tail, "stderr_tail": self.stderr_tail}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProgramResult:
        """The inverse of :meth:`to_json`: ``from_json(r.to_json()) == r``.

        Other keys of ``data`` (such as the ``"id"`` and ``"guarantees"`` of a
        ``python -m harness.run --batch`` line) are ignored.

        Raises:
            ValueError: a key is missing or a value is malformed (the message says which).
        """
        tests = _field(data, "tests", "program result")
        if not isinstance(tests, list | tuple):
            raise ValueError(f"program result: tests must be a list, found {type(tests).__name__}")
        load = _field(data, "load", "program result")
        what = "program result's load"
        return cls(tests=tuple(TestResult.from_json(t) for t in tests),
                   load_outcome=_outcome(_field(load, "outcome", what), OUTCOMES, what),
                   load_message=str(_field(load, "message", what)),
                   load_covered_lines=_lines(_field(load, "covered_lines", what), what),
                   stdout_tail=str(_field(data, "stdout_tail", "program result")),
                   stderr_tail=str(_field(data, "stderr_tail", "program result")))
