"""``python -m jepa.phase0``: prepare a small corpus with a tiny teacher, then the Phase 0 report."""

from __future__ import annotations

import json

from jepa import phase0, prepare
from tests.jepa.test_prepare import _repos


def _args(tmp_path, tiny_bert, src=None):
    src = src or _repos(tmp_path / "src", n=6)
    return ["--exp", "phase0", "--data-dir", str(tmp_path / "data"),
            "--set", "corpus.source=directory", "--set", f"corpus.directory={src}",
            "--set", "corpus.minimum=1", "--set", f"teacher.model={tiny_bert}",
            "--set", "teacher.layer=2", "--set", "teacher.dtype=float32",
            "--set", "phase0.folds=2", "--set", "phase0.knn_k=3", "--set", "phase0.bootstrap=50"]


def test_phase0_needs_the_prepared_states_then_writes_its_report(tmp_path, tiny_bert, capsys):
    args = _args(tmp_path, tiny_bert)
    out = tmp_path / "report"
    assert phase0.main([*args, "--out", str(out)]) == 2
    assert "python -m jepa.prepare --exp phase0" in capsys.readouterr().err

    assert prepare.main([*args, "--skip", "teacher"]) == 0
    assert phase0.main([*args, "--out", str(out)]) == 2  # corpus, but no teacher states
    assert "compute them with `python -m jepa.prepare --exp phase0`" in capsys.readouterr().err

    assert prepare.main(args) == 0
    assert "[teacher]" in capsys.readouterr().out
    assert phase0.main([*args, "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())["results"]
    assert report["functions"] == 12 and report["repositories"] == 6  # add, total: 2 kept per repository
    assert [r["layer"] for r in report["layer_selection"]] == [0, 1, 2, 3]  # the whole stack
    assert report["knn"]["n"] == 12 and report["knn"]["k"] == 3
    probes = {r["property"]: r for r in report["probes"]}
    assert probes["lines of code"]["available"] and probes["lines of code"]["n"] == 12
    assert not probes["churn"]["available"]  # no git history in these folders
    assert not probes["return type"]["available"]  # no annotated function among those kept
    md = (out / "report.md").read_text()
    assert "Layer selection (Phase 0.1)" in md and "Probes beside the record" in md
    assert (out / "layer_selection.png").stat().st_size > 0 and (out / "knn_similarity.png").is_file()
    assert phase0.main([*args, "--out", str(out)]) == 2  # a report is not overwritten
    assert "already holds a report" in capsys.readouterr().err


def test_churn_of_git_checkouts_reaches_the_index_and_the_probe(tmp_path, tiny_bert):
    import os
    import re
    import subprocess

    from jepa.store import CorpusIndex

    src = _repos(tmp_path / "src", n=6)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for r in range(6):  # repository r: r + 1 commits touching words.py
        repo = src / f"repo{r}"
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True, env=env)
        for c in range(r + 1):
            path = repo / "pkg" / "words.py"
            path.write_text(re.sub(r"(words.append\(.*\)).*", rf"\1  # edit {c}", path.read_text()))
            subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
            subprocess.run(["git", "commit", "-q", "-m", f"c{c}"], cwd=repo, check=True, env=env)
    args = _args(tmp_path, tiny_bert, src)
    assert prepare.main(args) == 0
    with CorpusIndex.open(tmp_path / "data" / "corpus.sqlite") as index:
        churn = {f.repository + ":" + f.qualname: c for s in ("train", "val", "test")
                 for f, c in zip(index.functions(s), index.churn(s))}
    # a line of `parse` is edited by every commit; `add` is only added by the first
    assert churn["repo3:parse"] == 4 == 3 + 1 and churn["repo3:Counter3.add"] == 1
    assert phase0.main([*args, "--out", str(tmp_path / "report")]) == 0
    probes = {r["property"]: r for r in json.loads((tmp_path / "report" / "report.json").read_text())
              ["results"]["probes"]}
    assert probes["churn"]["available"] and probes["churn"]["n"] == 12
