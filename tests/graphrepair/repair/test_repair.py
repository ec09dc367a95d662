"""The repair loop and ``python -m graphrepair.repair`` on real MBPP programs with one-line bugs.

Loop behaviour is isolated with deterministic proposers (an oracle that knows the reference
program, one that never helps); the model path and the CLI's checkpoint handling use a tiny
checkpoint trained here (two optimisation steps).
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

import graphrepair.repair.cli as cli
from graphrepair.config import load_config
from graphrepair.graphs.graph import LeafCategory, ProgramGraph
from graphrepair.graphs.vocab import SPECIAL_TOKENS
from graphrepair.repair.loop import candidate_edits, line_groups, repair
from graphrepair.repair.mutants import Mutation, apply_mutation
from graphrepair.repair.proposer import ModelProposer, load_proposer
from graphrepair.train import run
from harness.sandbox import run_tests
from tests.graphrepair.conftest import data_dir

TINY = [
    "data.train_samples=8", "data.val_samples=4", "train.batch_size=4", "train.epochs=1",
    "train.trajectory_iterations=2", "model.hidden=32", "model.depth=2", "model.gat_heads=2",
    "model.attention_heads=2", "sandbox.timeout_s=5",
]
MAIN = ("import math\r\ndef is_not_prime(n):\r\n    result = False\r\n"
        "    for i in range(2,int(math.sqrt(n)) + 1):\r\n")


class Maskable:
    """Identifiers, operators, keywords and literals, single-line (what the model may mask)."""

    def maskable(self, graph):
        cats = {LeafCategory.IDENTIFIER, LeafCategory.OPERATOR, LeafCategory.KEYWORD,
                LeafCategory.LITERAL}
        return np.array([c in cats and "\n" not in t
                         for t, c in zip(graph.leaf_texts, graph.leaf_categories)], dtype=bool)


class Oracle(Maskable):
    """Proposes the reference text of every masked leaf (one-token mutants keep the leaves)."""

    def __init__(self, reference: str) -> None:
        self.ref = ProgramGraph.from_source(reference).leaf_texts
        self.calls = 0

    def propose(self, problem, graph, masks, result):
        self.calls += 1
        assert len(graph.leaf_texts) == len(self.ref)
        return [[{self.ref[i]: 0.0, graph.leaf_texts[i]: -5.0} for i in np.flatnonzero(m)]
                for m in masks]


class Useless(Maskable):
    """Renames any identifier to an undefined name (the program then always fails)."""

    def propose(self, problem, graph, masks, result):
        return [[{graph.leaf_texts[i]: 0.0, f"undefined_{i}": -1.0, f"missing_{i}": -2.0}
                 for i in np.flatnonzero(m)] for m in masks]


def mutant(mbpp, task: str, leaf: int, original: str, replacement: str):
    problem = mbpp[task]
    line = ProgramGraph.from_source(problem.source).leaf_lines[leaf][0]
    buggy = apply_mutation(problem.source, Mutation("x", leaf, line, original, replacement))
    return problem, type(problem)(task, buggy, problem.tests, problem.setup), line


# -- pieces ------------------------------------------------------------------------------------
def test_candidate_edits_order_single_changes_first_by_gain():
    current = ["<", "n"]
    options = [{"<": -1.0, "<=": -0.5, ">": -3.0}, {"n": -0.1, "i": -0.2}]
    edits = candidate_edits(current, options, max_changes=2)
    assert [e[2] for e in edits[:3]] == [((0, "<="),), ((1, "i"),), ((0, ">"),)]
    assert edits[0][1] == pytest.approx(0.5) and edits[1][1] == pytest.approx(-0.1)
    assert all(n == 2 for n, _, _ in edits[3:]) and len(edits) == 5  # 2 x 1 pairs of leaves
    assert candidate_edits(current, options, max_changes=1)[-1][2] == ((0, ">"),)


def test_line_groups_put_the_faulty_branch_first(mbpp):
    problem = mbpp["mbpp/3"]
    buggy = problem.source.replace("result = True", "result = False")
    result = run_tests(buggy, problem.tests, timeout_s=5)
    groups = line_groups(result, buggy, "ochiai", [1, 2, 3, 4, 5, 6, 7])
    # line 6 (the fault) and 5 (its if) are covered only by failing tests; `def` (2) and the
    # import (1) run only while loading: covered by no test, they score 0 and come last
    assert groups == [[5, 6], [3, 4, 7], [1, 2]]


# -- the loop ----------------------------------------------------------------------------------
@pytest.mark.parametrize("task, leaf, original, replacement", [
    ("mbpp/42", 24, ">", ">="),  # comparison
    ("mbpp/3", 33, "%", "//"),  # operator
    ("mbpp/3", 28, "1", "2"),    # off by one
    ("mbpp/17", 9, "*", "+"),    # operator
    ("mbpp/413", 21, "result", "n"),  # wrong variable
])
def test_an_oracle_repairs_a_one_line_mutant_in_one_iteration(mbpp, task, leaf, original,
                                                              replacement):
    problem, buggy, line = mutant(mbpp, task, leaf, original, replacement)
    out = repair(buggy, Oracle(problem.source), iterations=5, timeout_s=5)
    assert out.repaired and out.source == problem.source and out.original == buggy.source
    assert len(out.iterations) == 1 and out.test_runs == 2
    it = out.iterations[0]
    assert it.passed == it.total == len(problem.tests) and it.changed_lines == [line]
    assert line in it.masked_lines
    assert out.initial.n_passed < len(problem.tests)


def test_a_useless_proposer_spends_the_budget_and_repairs_nothing(mbpp):
    problem, buggy, _ = mutant(mbpp, "mbpp/3", 33, "%", "//")
    out = repair(buggy, Useless(), iterations=4, timeout_s=5)
    assert not out.repaired and out.source == buggy.source
    assert len(out.iterations) == 4 and out.test_runs == 5
    assert [it.iteration for it in out.iterations] == [1, 2, 3, 4]
    assert all(it.passed < it.total for it in out.iterations)
    # line 5 alone is run only by failing tests (line 6 never runs); 2 tries per line, then widen
    assert [it.masked_lines for it in out.iterations[:3]] == [[5], [5], [3, 4, 7]]


def test_a_program_that_already_passes_needs_zero_iterations(mbpp):
    problem = mbpp["mbpp/17"]
    out = repair(problem, Useless(), iterations=3, timeout_s=5)
    assert out.repaired and out.iterations == [] and out.test_runs == 1
    assert out.source == problem.source


def test_a_candidate_that_passes_more_tests_moves_the_search(mbpp):
    # Two faults: the oracle fixes one per masked line; the partial fix becomes the current
    # program and the search localizes again from its own failing tests.
    problem = mbpp["mbpp/3"]
    buggy = problem.source.replace("range(2,", "range(3,").replace("n % i == 0", "n // i == 0")
    b = type(problem)("two", buggy, problem.tests)
    out = repair(b, Oracle(problem.source), iterations=6, timeout_s=5)
    assert out.repaired and out.source == problem.source
    assert len(out.iterations) == 2
    assert out.iterations[0].passed > out.initial.n_passed


def test_bad_arguments_are_value_errors(mbpp):
    with pytest.raises(ValueError, match="formula"):
        repair(mbpp["mbpp/17"], Useless(), formula="binary")
    with pytest.raises(ValueError, match="iterations"):
        repair(mbpp["mbpp/17"], Useless(), iterations=0)


# -- model and CLI -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    cfg = load_config("3d", TINY + [f"data.data_dir={data_dir()}"])
    run_dir = tmp_path_factory.mktemp("run")
    run(cfg, run_dir, do_eval=False, argv=["test"])
    return run_dir / "best.pt"


def test_model_proposer_gives_log_probabilities_batched_as_one_by_one(checkpoint, mbpp):
    proposer = load_proposer(checkpoint)
    problem = mbpp["mbpp/3"]
    graph = ProgramGraph.from_source(problem.source)
    result = run_tests(problem.source, problem.tests, timeout_s=5)
    maskable = proposer.maskable(graph)
    lines = np.array([a for a, _ in graph.leaf_lines])
    masks = [maskable & (lines == ln) for ln in (3, 4, 5, 6)]
    together = proposer.propose(problem, graph, masks, result, batch_size=4)
    alone = [proposer.propose(problem, graph, [m], result, batch_size=1)[0] for m in masks]
    assert [len(p) for p in together] == [int(m.sum()) for m in masks]
    for a, b in zip(together, alone):
        for oa, ob in zip(a, b):
            assert oa.keys() == ob.keys()
            assert np.allclose(list(oa.values()), list(ob.values()), atol=1e-5)
    for per_leaf, m in zip(together, masks):
        for opts, i in zip(per_leaf, np.flatnonzero(m)):
            assert graph.leaf_texts[i] in opts and all(v <= 0 for v in opts.values())
            assert len(opts) >= proposer.top_k


def write(tmp_path, program: str, tests: str):
    paths = tmp_path / "PROGRAM.py", tmp_path / "TESTS.py"
    for path, text in zip(paths, (program, tests)):
        path.write_bytes(text.encode("utf-8"))
    return [str(p) for p in paths]


def test_cli_json_with_the_newest_checkpoint_under_runs(checkpoint, mbpp, tmp_path, monkeypatch,
                                                        capsys):
    _, buggy, _ = mutant(mbpp, "mbpp/3", 33, "%", "//")
    args = write(tmp_path, buggy.source, "\n".join(buggy.tests))
    for name, age in (("old", 100), ("new", 0)):
        (tmp_path / "runs" / name).mkdir(parents=True)
        target = tmp_path / "runs" / name / "best.pt"
        shutil.copy(checkpoint, target)
        os.utime(target, (1e9 - age, 1e9 - age))
    monkeypatch.chdir(tmp_path)
    code = cli.main([*args, "--json", "--iterations", "3", "--timeout", "5"])
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"repaired", "source", "checkpoint", "formula", "test_runs", "initial",
                           "iterations"}
    assert report["checkpoint"].endswith(os.path.join("runs", "new", "best.pt"))
    assert code == (0 if report["repaired"] else 1)
    assert report["initial"] == {"passed": 1, "total": 3}
    assert 1 <= len(report["iterations"]) <= 3
    assert report["test_runs"] == 1 + len(report["iterations"])
    for i, it in enumerate(report["iterations"], 1):
        assert set(it) == {"iteration", "passed", "total", "masked_lines", "changed_lines"}
        assert it["iteration"] == i and it["total"] == 3 and it["masked_lines"]
        assert set(it["changed_lines"]) <= set(it["masked_lines"])
    assert report["repaired"] or report["source"] == buggy.source
    assert (tmp_path / "PROGRAM.py").read_bytes() == buggy.source.encode()  # never modified


def test_cli_human_output_shows_the_diff_and_writes_out(mbpp, tmp_path, monkeypatch, capsys):
    problem, buggy, _ = mutant(mbpp, "mbpp/3", 28, "1", "2")
    monkeypatch.setattr(cli, "load_proposer", lambda path: Oracle(problem.source))
    args = write(tmp_path, buggy.source, "\n".join(buggy.tests))
    out_path = tmp_path / "fixed" / "PROGRAM.py"
    code = cli.main([*args, "--checkpoint", "given.pt", "--timeout", "5", "--out", str(out_path)])
    text = capsys.readouterr().out
    assert code == 0
    assert "checkpoint: given.pt (given)" in text and "iteration 1: 3/3 passed" in text
    assert "--- a/PROGRAM.py\n+++ b/PROGRAM.py\n" in text
    assert "-    for i in range(2,int(math.sqrt(n)) + 2):" in text
    assert "+    for i in range(2,int(math.sqrt(n)) + 1):" in text
    assert out_path.read_bytes() == problem.source.encode()
    assert (tmp_path / "PROGRAM.py").read_bytes() == buggy.source.encode()


def test_cli_not_repaired_exits_1_and_writes_nothing(mbpp, tmp_path, monkeypatch, capsys):
    _, buggy, _ = mutant(mbpp, "mbpp/3", 33, "%", "//")
    monkeypatch.setattr(cli, "load_proposer", lambda path: Useless())
    args = write(tmp_path, buggy.source, "\n".join(buggy.tests))
    code = cli.main([*args, "--checkpoint", "x.pt", "--iterations", "2", "--timeout", "5",
                     "--out", str(tmp_path / "out.py"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and not report["repaired"] and len(report["iterations"]) == 2
    assert report["source"] == buggy.source and not (tmp_path / "out.py").exists()


def test_cli_already_passing_says_so(mbpp, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "load_proposer", lambda path: Useless())
    problem = mbpp["mbpp/17"]
    code = cli.main([*write(tmp_path, problem.source, "\n".join(problem.tests)),
                     "--checkpoint", "x.pt", "--timeout", "5"])
    assert code == 0 and "nothing to repair (0 iterations)" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--iterations", "0"], "--iterations must be >= 1"),
    (["--checkpoint", "missing.pt"], "checkpoint missing.pt does not exist"),
    ([], "no runs/**/best.pt found"),
])
def test_cli_bad_input_exits_2(mbpp, tmp_path, monkeypatch, caplog, extra, message):
    problem = mbpp["mbpp/17"]
    args = write(tmp_path, problem.source, "\n".join(problem.tests))
    monkeypatch.chdir(tmp_path)  # no runs/ here
    assert cli.main([*args, *extra]) == 2
    assert message in caplog.text and "Traceback" not in caplog.text
    if not extra:
        assert "python -m graphrepair.train" in caplog.text


def test_cli_missing_file_empty_program_and_unknown_formula_exit_2(mbpp, tmp_path, capsys,
                                                                   caplog):
    problem = mbpp["mbpp/17"]
    program, tests = write(tmp_path, problem.source, "\n".join(problem.tests))
    assert cli.main([str(tmp_path / "nope.py"), tests, "--checkpoint", "x.pt"]) == 2
    assert "cannot read" in caplog.text and "nope.py" in caplog.text
    (tmp_path / "empty.py").write_text("\n")
    assert cli.main([str(tmp_path / "empty.py"), tests, "--checkpoint", "x.pt"]) == 2
    assert "nothing to repair" in caplog.text
    (tmp_path / "no_tests.py").write_text("import math\n")
    assert cli.main([program, str(tmp_path / "no_tests.py"), "--checkpoint", "x.pt"]) == 2
    assert "no tests found" in caplog.text
    with pytest.raises(SystemExit) as exc:
        cli.main([program, tests, "--formula", "binary"])
    assert exc.value.code == 2 and "invalid choice: 'binary'" in capsys.readouterr().err


def test_model_proposer_never_proposes_unk_or_another_special(checkpoint, mbpp):
    trained = load_proposer(checkpoint)
    vocab = trained.vocab

    class SpecialsFirst(torch.nn.Module):  # no output mask: PAD, MASK, UNK top, then leaf texts
        def forward(self, data):
            logits = torch.zeros(int(data.leaf_mask.sum()), len(vocab))
            logits[:, torch.as_tensor(vocab.leaf_token_mask())] = 5.0
            logits[:, :3] = 10.0
            return logits

    proposer = ModelProposer(SpecialsFirst(), vocab, trained.cfg, top_k=5)
    problem = mbpp["mbpp/3"]
    graph = ProgramGraph.from_source(problem.source)
    result = run_tests(problem.source, problem.tests, timeout_s=5)
    [per_leaf] = proposer.propose(problem, graph, [proposer.maskable(graph)], result)
    assert per_leaf and all(not set(opts) & set(SPECIAL_TOKENS) for opts in per_leaf)
    assert all(len(opts) >= 2 for opts in per_leaf)  # the leaf texts among the top 5, and the current one
