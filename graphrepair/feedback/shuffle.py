"""Test feedback of another program: the *feedback-shuffled* baseline of DESIGN.md ("Metrics").

The question it answers: does *where* the tests failed matter to a refiner, or only that feedback
is present? At every iteration each program being refined reads the test result of another
program of the batch (:func:`feedback_donors`: a seeded derangement), laid onto its own lines by
relative position (:func:`transplant_result`), and the usual feedback (per-test records or the
per-node signal) is computed from it on the program's own graph
(:meth:`graphrepair.loop.refine.Refiner.give_feedback`). What the donor's result says stays the
donor's: the number of tests, their outcomes and messages, which tests covered the same lines,
and how much of the program each test covered; only *where* it points is unrelated to where this
program is wrong. The program's own tests still run on its own code and decide freezing and every
metric (:func:`graphrepair.loop.refine.refine`, ``shuffle_seed``).

Line mapping. Line ``l`` of a program of ``n`` lines stands for the interval ``[(l - 1)/n, l/n)``
of the program's height; line ``m`` of the receiving program (``n'`` lines) is covered by a donor
test when its interval overlaps the interval of a line the test covered (:func:`map_lines`). Equal
lengths give the identity; every covered donor line covers at least one receiving line, and the
covered share of the program is kept up to rounding at the ends of covered runs. The alternative,
the donor's outcomes with the receiving program's own coverage, was rejected: where every test
fails (most corrupted MBPP programs, with three tests) it equals the program's own feedback, and
its coverage still says where the program's own execution went.

A donor whose program did not load has every test failing on its parse-error region
(:func:`graphrepair.feedback.spectrum.error_region` of the donor's source); that region is mapped
like any covered line, so the receiver reads it as the donor's tests did.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from graphrepair.feedback.spectrum import error_region
from harness.sandbox import ProgramResult

if TYPE_CHECKING:  # the loop imports this module
    from graphrepair.loop.refine import ProgramState, Refiner

__all__ = ["derangement", "feedback_donors", "line_count", "map_lines", "shuffle_feedback",
           "transplant_result"]


def line_count(source: str) -> int:
    """Lines of ``source`` as its line numbers count them (a final newline ends the last line),
    at least 1."""
    return max(1, source.count("\n") + (not source.endswith("\n")))


def map_lines(lines: Sequence[int] | np.ndarray, n_from: int, n_to: int) -> np.ndarray:
    """Lines of a program of ``n_from`` lines mapped onto one of ``n_to`` lines by relative position.

    Line ``m`` of the target is in the result when ``[(m - 1)/n_to, m/n_to)`` overlaps
    ``[(l - 1)/n_from, l/n_from)`` for some ``l`` in ``lines`` (exact integer arithmetic).

    Args:
        lines: 1-based lines of the source program; values outside ``[1, n_from]`` are clipped
            into it (a traceback may name the line after the last).
        n_from: lines of the source program (>= 1); n_to: lines of the target program (>= 1).

    Returns:
        int64 ``[M]`` sorted distinct 1-based lines in ``[1, n_to]``; empty iff ``lines`` is.

    Raises:
        ValueError: ``n_from`` or ``n_to`` < 1.
    """
    if n_from < 1 or n_to < 1:
        raise ValueError(f"line counts must be >= 1, got n_from={n_from}, n_to={n_to}")
    src = np.clip(np.asarray(lines, dtype=np.int64).reshape(-1), 1, n_from)
    if not len(src):
        return np.zeros(0, dtype=np.int64)
    lo = (src - 1) * n_to // n_from + 1  # first target line whose interval reaches past (l-1)/n_from
    hi = -((-src * n_to) // n_from)  # ceil(l * n_to / n_from): the last one starting before l/n_from
    return np.unique(np.concatenate([np.arange(a, b + 1, dtype=np.int64) for a, b in zip(lo, hi)]))


_PROGRAM_LINE = re.compile(r'("program\.py", line )(\d+)')


def transplant_result(donor: ProgramResult, donor_source: str, n_lines: int) -> ProgramResult:
    """The donor's test result laid onto a program of ``n_lines`` lines (module docstring).

    Args:
        donor: the sandbox result of ``donor_source``.
        donor_source: the program that produced ``donor`` (its line count, and its parse-error
            region when it did not load).
        n_lines: lines of the receiving program (:func:`line_count` of its current source).

    Returns:
        A result that loaded (``load_outcome`` ``"passed"``): the donor's tests with their names,
        outcomes, messages and durations, their covered lines, the load-time lines and the
        program lines their messages name (``"program.py", line N``: where an exception was
        raised) mapped with :func:`map_lines`. For a donor that did not load, every test keeps its (failing) outcome
        and message and covers the mapped parse-error region, no load-time lines: the feedback
        computed from it equals the one a program that does not load gets, at mapped lines.
    """
    n_from = line_count(donor_source)

    def move(lines: Sequence[int]) -> tuple[int, ...]:
        return tuple(map_lines(lines, n_from, n_lines).tolist())

    def message(text: str) -> str:  # the lines a traceback names, mapped the same way
        return _PROGRAM_LINE.sub(lambda m: f'{m.group(1)}{move([int(m.group(2))])[0]}', text)

    if donor.load_outcome != "passed":
        region = move(error_region(donor_source, donor.load_message))
        tests = tuple(dataclasses.replace(t, covered_lines=region, message=message(t.message))
                      for t in donor.tests)
        load: tuple[int, ...] = ()
    else:
        tests = tuple(dataclasses.replace(t, covered_lines=move(t.covered_lines),
                                          message=message(t.message)) for t in donor.tests)
        load = move(donor.load_covered_lines)
    return ProgramResult(tests=tests, load_outcome="passed", load_message="", load_covered_lines=load,
                         stdout_tail=donor.stdout_tail, stderr_tail=donor.stderr_tail)


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random permutation of ``range(n)`` without a fixed point (rejection sampling;
    about e ≈ 2.7 draws on average).

    Returns:
        int64 ``[n]`` with ``p[i] != i`` for every ``i``.

    Raises:
        ValueError: ``n`` < 2 (no derangement exists).
    """
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 elements, got {n}")
    identity = np.arange(n)
    while True:
        p = rng.permutation(n)
        if (p != identity).all():
            return p.astype(np.int64)


def feedback_donors(active: Sequence[int], n: int, rng: np.random.Generator) -> np.ndarray:
    """Whose test result each program being refined reads.

    Args:
        active: distinct indices into a batch of ``n`` programs: the programs refined at this
            iteration (those whose tests do not all pass yet).
        n: programs in the batch.
        rng: the generator the choice is drawn from (seed it per iteration for reproducibility).

    Returns:
        int64 ``[len(active)]`` donor indices into the batch, never the receiver's own:

        * two or more active programs: a uniformly random derangement of them (:func:`derangement`):
          every active program reads another active program's result, so the results read at an
          iteration are those the model would read with its own feedback, permuted;
        * one active program in a batch of two or more: a uniformly random other program of the
          batch (its tests all pass by then);
        * a batch of one: ``-1``, no other program (the receiver gets no feedback).

    Raises:
        ValueError: ``active`` holds a duplicate or an index outside ``[0, n)``.
    """
    act = np.asarray(active, dtype=np.int64).reshape(-1)
    if len(set(act.tolist())) != len(act) or ((act < 0) | (act >= n)).any():
        raise ValueError(f"active must hold distinct indices in [0, {n}), got {act.tolist()}")
    if len(act) >= 2:
        return act[derangement(len(act), rng)]
    if len(act) == 1 and n >= 2:
        others = np.delete(np.arange(n, dtype=np.int64), act[0])
        return others[rng.integers(len(others))].reshape(1)
    return np.full(len(act), -1, dtype=np.int64)


def shuffle_feedback(refiner: Refiner, states: Sequence[ProgramState], active: Sequence[ProgramState],
                     rng: np.random.Generator) -> np.ndarray:
    """Give each state of ``active`` the feedback of its donor's last test result.

    Donors are drawn with :func:`feedback_donors` over ``states`` (the batch); each receiver's
    ``feedback``/``signal`` is set with ``refiner.give_feedback`` from :func:`transplant_result` of
    the donor's ``result`` and current source (the program that produced it). Results, texts and
    everything the metrics read are left alone.

    Args:
        refiner: the refiner whose feedback variant is used.
        states: the batch; every state has a ``result``.
        active: the states refined at this iteration (a subset of ``states``, in any order).
        rng: the generator of this iteration's donors.

    Returns:
        int64 ``[len(active)]``: each active state's donor, as an index into ``states`` (``-1`` =
        none, a batch of one).

    Raises:
        ValueError: a state of ``active`` is not in ``states``, or a donor has no result yet.
    """
    position = {id(s): i for i, s in enumerate(states)}
    try:
        receivers = [position[id(s)] for s in active]
    except KeyError:
        raise ValueError("every active state must belong to the batch `states`") from None
    donors = feedback_donors(receivers, len(states), rng)
    for i, d in zip(receivers, donors.tolist()):
        if d < 0:
            refiner.give_feedback(states[i], None)
            continue
        donor = states[d]
        if donor.result is None:
            raise ValueError(f"{donor.enc.problem.task_id}: no test result to give as feedback; run "
                             f"the batch's programs first")
        moved = transplant_result(donor.result, donor.source(), line_count(states[i].source()))
        refiner.give_feedback(states[i], moved)
    return donors
