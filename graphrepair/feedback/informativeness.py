"""How much test feedback can say about a program: do its tests disagree, and do they point at the
wrong lines?

Spectrum-based fault localization (Jones & Harrold, ASE 2005) needs passing *and* failing tests:
when every test fails, every executed line has the same Tarantula score and the spectrum reduces
to "was executed". :func:`feedback_informativeness` measures this on refinement states whose
programs were run (e.g. after the one-shot prediction): the share of programs that load, that pass
at least one test, whose tests disagree (at least one passes and one fails), and where Tarantula
ranks the *faulty* lines — the lines holding a corrupted leaf the program still gets wrong.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graphrepair.feedback.spectrum import line_spectrum, ranks, score

__all__ = ["feedback_informativeness"]


def feedback_informativeness(states: Sequence, formula: str = "tarantula", *,
                             load_lines: str = "no_test") -> dict[str, float]:
    """Informativeness of the test results of ``states`` (each with ``result`` set).

    Args:
        states: :class:`graphrepair.loop.refine.ProgramState` objects whose programs were run.
        formula: the suspiciousness formula (a key of
            :data:`graphrepair.feedback.spectrum.FORMULAS`).
        load_lines: treatment of the lines executed while loading
            (:data:`graphrepair.feedback.spectrum.LOAD_LINES`; default ``no_test``, as
            :func:`~graphrepair.feedback.spectrum.line_spectrum`'s). Load-only lines stay among
            the executed lines either way.

    Returns:
        Fractions of the ``programs`` (all in [0, 1]): ``loads`` (the program loaded),
        ``some_pass`` (at least one test passed), ``mixed`` (at least one test passed and one did
        not); and over the ``localizable`` programs (loaded, some leaf still wrong, some test not
        passing): ``faulty_rank`` (mean over programs of the best average rank, 1 = most
        suspicious, ties averaged, of a faulty line among the executed lines; faulty lines that
        were never executed rank after all of them), ``faulty_top1`` (the chance that a faulty
        line comes first when ties are broken at random, averaged over programs) and
        ``executed_lines`` (mean number of lines ranked). ``None`` where a denominator is 0
        (JSON-safe, unlike NaN).

    Raises:
        ValueError: a state without a result, or an unknown ``load_lines``.
    """
    n = len(states)
    loads = some = mixed = 0
    ranked, top1, executed = [], [], []
    for s in states:
        r = s.result
        if r is None:
            raise ValueError(f"{s.enc.problem.task_id}: no test result; run the program first")
        passed = np.array([t.outcome == "passed" for t in r.tests], dtype=bool)
        loads += r.load_outcome == "passed"
        some += bool(passed.any())
        mixed += bool(passed.any() and not passed.all())
        wrong = s.masked & ~s.correct()
        if r.load_outcome != "passed" or not wrong.any() or passed.all():
            continue
        lines = s.enc.node_lines(s.texts)[s.enc.leaf_nodes[wrong]]
        spectrum = line_spectrum(r, s.source(), load_lines=load_lines)
        scores = score(spectrum, formula)
        e = len(spectrum.elements)
        faulty = np.flatnonzero(np.isin(spectrum.elements, lines))  # executed faulty lines
        if len(faulty):
            ranked.append(float(ranks(scores).average[faulty].min()))
            first = np.flatnonzero(scores == scores.max())  # a random tie order puts one first
            top1.append(np.isin(first, faulty).sum() / len(first))
        else:
            ranked.append(float(e + 1))
            top1.append(0.0)
        executed.append(e)
    return {"programs": n, "loads": loads / n if n else None, "some_pass": some / n if n else None,
            "mixed": mixed / n if n else None, "localizable": len(ranked),
            "faulty_rank": float(np.mean(ranked)) if ranked else None,
            "faulty_top1": float(np.mean(top1)) if top1 else None,
            "executed_lines": float(np.mean(executed)) if executed else None}
