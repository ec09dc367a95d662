"""What a test's failure said: exception type, raising program line, compared values.

The sandbox (:mod:`harness.sandbox`) reports each test as an outcome (authenticated) and a
message: the last lines of the traceback, program frames shown as ``"program.py", line N``
(:class:`harness.results.TestResult`). This module reads those messages *on the caller's side*:
nothing of what runs inside the sandbox changes, and a message is never trusted beyond what it
says. The program under repair can write anything into an exception's text, so every field is a
claim, checked against a closed vocabulary or a bound:

* ``exception``: one of :data:`EXCEPTION_TYPES`. ``passed`` -> ``none``, ``timeout`` ->
  ``timeout``, ``crashed`` -> ``crashed`` and ``failed`` -> ``AssertionError`` come from the
  outcome alone (the sandbox says ``failed`` exactly for an ``AssertionError``). For ``error`` the
  name in the message's final exception line is looked up: a built-in name of the vocabulary, or
  one of its subclasses in :data:`ALIASES` (``UnboundLocalError`` -> ``NameError``,
  ``ModuleNotFoundError`` -> ``ImportError``, ``IndentationError`` / ``TabError`` ->
  ``SyntaxError``); any other name, a module-qualified one (``re.error``), or none that can be
  read (a message cut by the sandbox's bound) -> ``other``.
* ``line``: the *deepest* ``"program.py", line N`` frame of the final exception's traceback (for
  a ``SyntaxError``, the line its header names); ``None`` when the exception was raised in test or
  setup code only, for ``timeout`` / ``crashed`` / ``passed``, and for a line outside
  ``1 .. num_lines`` when the program's line count is given. A ``RecursionError`` names the
  ``def`` line of the function whose call overflowed (that is where CPython raises it).
* ``actual`` / ``expected`` (types and reprs): for an ``AssertionError`` raised outside the program
  whose text is ``actual <type>: <repr>\\nexpected <type>: <repr>`` (the EvalPlus comparison,
  :data:`graphrepair.data.evalplus.CHECK_SOURCE`). For a plain MBPP test ``assert <expr> ==
  <literal>`` the message holds no value; the *expected* value is then read from the test's own
  text with :func:`ast.literal_eval` (no code runs), the actual one stays unknown.

Bounds: type names at most :data:`MAX_TYPE_CHARS` characters of ``[A-Za-z0-9_.]`` (others: no
type), reprs at most :data:`MAX_REPR_CHARS` characters (cut), test texts longer than
:data:`MAX_TEST_CHARS` are not parsed. Value types map to the ids of :data:`VALUE_TYPES` for the
models (``unknown`` for none, ``other`` for a name outside the list).

Example (a program whose line 5 reads an undefined name)::

    result = run_tests(program, ["assert f(1) == 3"])
    failure = parse_failure(result.tests[0].outcome, result.tests[0].message)
    failure.exception, failure.line      # ("NameError", 5)
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from harness.results import OUTCOMES, ProgramResult

__all__ = ["ALIASES", "EXCEPTION_ID", "EXCEPTION_TYPES", "MAX_REPR_CHARS", "MAX_TEST_CHARS",
           "MAX_TYPE_CHARS", "VALUE_TYPES", "VALUE_TYPE_ID", "Failure", "expected_from_test",
           "parse_failure", "result_failures"]

#: The exception vocabulary; index 0 (``none``) is a passed test. The nine built-in names are the
#: exceptions corrupted MBPP programs raise most; ``timeout`` and ``crashed`` mirror the outcomes.
EXCEPTION_TYPES = ("none", "AssertionError", "NameError", "TypeError", "ValueError", "IndexError",
                   "KeyError", "AttributeError", "ZeroDivisionError", "RecursionError",
                   "SyntaxError", "ImportError", "timeout", "crashed", "other")
EXCEPTION_ID = {name: i for i, name in enumerate(EXCEPTION_TYPES)}
#: Built-in subclasses read as their vocabulary parent.
ALIASES = {"UnboundLocalError": "NameError", "ModuleNotFoundError": "ImportError",
           "IndentationError": "SyntaxError", "TabError": "SyntaxError"}
#: Value types of a failed comparison; index 0 (``unknown``) = no value read.
VALUE_TYPES = ("unknown", "NoneType", "bool", "int", "float", "complex", "str", "bytes", "list",
               "tuple", "dict", "set", "frozenset", "other")
VALUE_TYPE_ID = {name: i for i, name in enumerate(VALUE_TYPES)}
MAX_REPR_CHARS = 200  # as EvalPlus's check writes them (``%.200r``)
MAX_TYPE_CHARS = 64
MAX_TEST_CHARS = 1 << 14

_FRAME = re.compile(r'  File "(?P<file>[^"\n]*)", line (?P<line>\d{1,9})(?:, in .*)?')
_HEADER = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_.]*)(?::(?: (?P<text>.*))?)?")
_TYPE = re.compile(rf"[A-Za-z_][A-Za-z0-9_.]{{0,{MAX_TYPE_CHARS - 1}}}")
_PROGRAM = "program.py"


@dataclass(frozen=True)
class Failure:
    """What one test's verdict says about its failure (see the module docstring).

    Attributes:
        exception: one of :data:`EXCEPTION_TYPES`.
        line: 1-based program line the exception was raised at, or ``None``.
        actual_type, expected_type: type names of the compared values (at most
            :data:`MAX_TYPE_CHARS` characters), or ``None`` when not known.
        actual, expected: their reprs (at most :data:`MAX_REPR_CHARS` characters), or ``None``.
    """

    exception: str = "none"
    line: int | None = None
    actual_type: str | None = None
    actual: str | None = None
    expected_type: str | None = None
    expected: str | None = None

    @property
    def exception_id(self) -> int:
        """Index of :attr:`exception` in :data:`EXCEPTION_TYPES`."""
        return EXCEPTION_ID[self.exception]

    @property
    def actual_type_id(self) -> int:
        """Index of :attr:`actual_type` in :data:`VALUE_TYPES` (0 = unknown, ``other`` = unlisted)."""
        return _type_id(self.actual_type)

    @property
    def expected_type_id(self) -> int:
        """Index of :attr:`expected_type` in :data:`VALUE_TYPES`."""
        return _type_id(self.expected_type)


def _type_id(name: str | None) -> int:
    if name is None:
        return 0
    return VALUE_TYPE_ID.get(name, VALUE_TYPE_ID["other"])


def _final_exception(lines: list[str]) -> tuple[list[tuple[str, int]], int | None]:
    """Frames ``[(file, line), ...]`` of the final exception's traceback (outermost first) and
    the index of its header line (``None`` when no frame is visible or no header follows)."""
    last = None
    for i, text in enumerate(lines):
        if _FRAME.fullmatch(text):
            last = i
    if last is None:
        return [], None
    header = last + 1
    while header < len(lines) and lines[header].startswith("    "):  # source line, carets
        header += 1
    frames, i = [], last
    while i >= 0:  # back to the start of this traceback block
        match = _FRAME.fullmatch(lines[i])
        if match:
            frames.append((match["file"], int(match["line"])))
        elif not lines[i].startswith("    "):
            break
        i -= 1
    frames.reverse()
    return frames, header if header < len(lines) else None


def _bounded_type(text: str) -> str | None:
    return text if _TYPE.fullmatch(text) else None


def _comparison(text: str) -> tuple[str | None, str | None, str | None, str | None]:
    """``(actual_type, actual, expected_type, expected)`` of an ``actual T: R\\nexpected T: R``
    text (the actual repr may hold newlines, the expected one, a reference output, does not)."""
    none = (None, None, None, None)
    if not text.startswith("actual "):
        return none
    cut = text.rfind("\nexpected ")
    if cut < 0:
        return none
    actual, expected = text[len("actual "):cut], text[cut + len("\nexpected "):]
    a_type, sep_a, a_repr = actual.partition(": ")
    e_type, sep_e, e_repr = expected.partition(": ")
    a_type, e_type = _bounded_type(a_type), _bounded_type(e_type)
    if not (sep_a and sep_e and a_type and e_type):
        return none
    return a_type, a_repr[:MAX_REPR_CHARS], e_type, e_repr.split("\n", 1)[0][:MAX_REPR_CHARS]


@functools.lru_cache(maxsize=4096)
def expected_from_test(test: str) -> tuple[str, str] | None:
    """``(type name, repr)`` of ``y`` in a test ``assert <expr> == y`` whose ``y`` is a literal.

    Read with :func:`ast.parse` and :func:`ast.literal_eval`: nothing of the test is executed.

    Args:
        test: a test snippet (e.g. MBPP's ``assert similar_elements((3, 4), (5, 4)) == (4,)``).

    Returns:
        The literal's type name and its repr (at most :data:`MAX_REPR_CHARS` characters), or
        ``None`` when the test is not one such ``assert`` statement, is longer than
        :data:`MAX_TEST_CHARS` characters, or its right-hand side is not a literal.
    """
    if len(test) > MAX_TEST_CHARS:
        return None
    try:
        tree = ast.parse(test)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        return None
    check = tree.body[0].test
    if not (isinstance(check, ast.Compare) and len(check.ops) == 1
            and isinstance(check.ops[0], ast.Eq)):
        return None
    try:
        value = ast.literal_eval(check.comparators[0])
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int over Python's digit limit
        return None
    return type(value).__name__, text[:MAX_REPR_CHARS]


def parse_failure(outcome: str, message: str, *, test: str | None = None,
                  num_lines: int | None = None) -> Failure:
    """Read one test's verdict (see the module docstring for every rule).

    Args:
        outcome: the test's outcome, one of :data:`harness.results.OUTCOMES`.
        message: its message (:attr:`harness.results.TestResult.message`).
        test: the test's source text, to read an MBPP expected value from (``None``: not read).
        num_lines: the program's number of lines; a raising line outside ``1 .. num_lines`` is
            dropped (``None``: no upper bound).

    Returns:
        The :class:`Failure`; ``Failure()`` (exception ``none``) for a passed test.

    Raises:
        ValueError: ``outcome`` is not one of :data:`harness.results.OUTCOMES`.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    if outcome == "passed":
        return Failure()
    if outcome in ("timeout", "crashed"):
        return Failure(outcome)
    lines = message.split("\n")
    frames, header = _final_exception(lines)
    program = [n for f, n in frames if f == _PROGRAM]
    line = program[-1] if program else None
    if line is not None and not (1 <= line and (num_lines is None or line <= num_lines)):
        line = None
    match = _HEADER.fullmatch(lines[header]) if header is not None else None
    name = ALIASES.get(match["name"], match["name"]) if match else None
    if outcome == "failed":
        exception = "AssertionError"
    else:
        exception = name if name in EXCEPTION_ID and name not in (
            "none", "AssertionError", "timeout", "crashed", "other") else "other"
    if exception != "AssertionError" or (frames and frames[-1][0] == _PROGRAM):
        return Failure(exception, line)  # values come only from a comparison outside the program
    if match and match["name"] == "AssertionError" and match["text"] is not None:
        text = "\n".join([match["text"], *lines[header + 1:]])
        a_type, actual, e_type, expected = _comparison(text)
        if a_type is not None:
            return Failure(exception, line, a_type, actual, e_type, expected)
    found = expected_from_test(test) if test is not None else None
    if found is not None:
        return Failure(exception, line, expected_type=found[0], expected=found[1])
    return Failure(exception, line)


def result_failures(result: ProgramResult, tests: Sequence[str] | None = None,
                    num_lines: int | None = None) -> list[Failure]:
    """:func:`parse_failure` of every test of ``result``, in order.

    A program that did not load gives every test its load outcome and message
    (:class:`harness.results.ProgramResult`), so each reads as the load error.

    Args:
        result: a sandbox result.
        tests: the tests' source texts, aligned with ``result.tests`` (``None``: no expected
            values read from tests).
        num_lines: the program's number of lines (see :func:`parse_failure`).

    Raises:
        ValueError: ``tests`` is given with fewer entries than ``result.tests``.
    """
    if tests is not None and len(tests) < len(result.tests):
        raise ValueError(f"got {len(tests)} test texts for {len(result.tests)} test results; "
                         "pass the tests that were run, in order")
    return [parse_failure(t.outcome, t.message, test=None if tests is None else tests[i],
                          num_lines=num_lines) for i, t in enumerate(result.tests)]
