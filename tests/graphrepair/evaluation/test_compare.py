"""graphrepair.compare: malformed reports are one line on stderr naming the file (exit 2); runs on
the same inputs get paired differences against the first; labels spelled out (hand-made reports)."""

import copy
import json

import pytest

import graphrepair.evaluation.compare as cmp
from graphrepair.compare import compare, main
from tests.graphrepair.evaluation import synthetic


@pytest.fixture
def report(tmp_path):
    """A well-formed report.json (written by harness.report.write_report, as evaluate does)."""
    return synthetic.write(tmp_path / "run" / "eval")


def _break(report, how):
    data = json.loads(report.read_text())
    how(data)
    report.write_text(json.dumps(data))


def _levels(data):
    return data["results"]["levels"]


MALFORMED = {
    "not JSON": (lambda p: p.write_text('{"results": {'), "is not JSON (Expecting property name"),
    "not text": (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe"), "is not a text file"),
    "a list": (lambda p: p.write_text("[1, 2]"), "is not a graphrepair evaluation report (no results.levels)"),
    "no levels": (lambda p: p.write_text('{"results": {"levels": {}}}'), "no results.levels"),
    "no ci95": (lambda p: _break(p, lambda d: _levels(d)["0.2"].pop("ci95")),
                "older graphrepair.evaluate (no confidence intervals)"),
    "baseline without a final pass_rate": (
        lambda p: _break(p, lambda d: _levels(d)["0.5"]["baselines"]["unigram"]["final"].pop("pass_rate")),
        "results.levels['0.5'].baselines.unigram.final has no 'pass_rate'"),
    "a string for a number": (
        lambda p: _break(p, lambda d: _levels(d)["0.2"]["one_shot"].update(repair_accuracy="high")),
        "results.levels['0.2'].one_shot.repair_accuracy is 'high', not a number"),
    "a level that is not a number": (
        lambda p: _break(p, lambda d: _levels(d).update(twenty=_levels(d)["0.2"])),
        "results.levels['twenty'] is not a corruption level"),
    "no config": (lambda p: _break(p, lambda d: d.pop("config")), "config is missing or not an object"),
    "no split": (lambda p: _break(p, lambda d: d["results"].pop("split")), "results.split is missing"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_report_is_one_line_naming_the_file(report, case, capsys, tmp_path):
    damage, expected = MALFORMED[case]
    damage(report)
    assert main([str(tmp_path / "run"), "--out", str(tmp_path / "out")]) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"error: {report}") and expected in err
    assert err.count("\n") == 1 and "Traceback" not in err and not out
    assert not (tmp_path / "out" / "comparison.md").exists()


def test_malformed_fields_say_how_to_redo_the_report(report, capsys, tmp_path):
    MALFORMED["no config"][0](report)
    assert main([str(report)]) == 2
    assert f"python -m graphrepair.evaluate --checkpoint {tmp_path / 'run'}/best.pt" in capsys.readouterr().err


def test_unreadable_paths_are_named(tmp_path, capsys):
    (tmp_path / "odd" / "report.json").mkdir(parents=True)  # a directory where the file should be
    assert main([str(tmp_path / "odd" / "report.json")]) == 2
    err = capsys.readouterr().err
    assert f"run '{tmp_path / 'odd' / 'report.json'}' has no evaluation report" in err and err.count("\n") == 1


def test_runs_on_the_same_inputs_get_paired_differences_against_the_first(report, tmp_path):
    worse = copy.deepcopy(synthetic.units())
    for u in worse:  # Exp 3c: the model's final outcomes are those of feedback zeroed
        u["per_program"]["methods"]["model"]["final"] = u["per_program"]["methods"]["feedback_zeroed"]["final"]
        u["methods"]["model"][-1] = u["methods"]["feedback_zeroed"][-1]
    other = synthetic.write(tmp_path / "3c", exp="3c", us=worse)
    md_path, _, md = compare([report, other], tmp_path / "out")
    text = md_path.read_text()
    assert "### Paired differences against Exp 3d (same inputs)" in text
    # final repair_accuracy at 20%: 15/24 - 22/24 restored leaves pooled over programs and seeds
    assert "| Exp 3c − Exp 3d | 20% | +0.0 pp [+0.0, +0.0] | -29.2 pp [" in text
    assert "paired bootstrap over n=3 programs" in text
    # each model minus its own baselines: 3d's final beats its feedback-zeroed run, 3c's equals it
    vs = text.split("### Model vs its baselines after the last iteration")[1]
    zeroed = "same model, feedback zeroed"
    assert f"| Exp 3d − {zeroed} | 20% | +29.2 pp [" in vs
    assert f"| Exp 3c − {zeroed} | 20% | +0.0 pp [+0.0, +0.0] |" in vs
    assert "Intervals: mean ± 95% CI, Student t over n=2 corruption seeds." in md  # the Full Comparison's CIs


def test_reports_without_outcomes_or_on_other_inputs_are_named(report, tmp_path):
    old = copy.deepcopy(synthetic.units())
    for u in old:
        del u["per_program"]
    older = synthetic.write(tmp_path / "old", exp="3c", us=old)
    elsewhere = synthetic.write(tmp_path / "other", exp="4", inputs_id="xyz")
    md_path, _, md = compare([report, older, elsewhere], tmp_path / "out")
    text = md_path.read_text()
    assert f"{older} has no per-program outcomes" in text and "evaluate it again" in text
    assert "Exp 4 was evaluated on other inputs than Exp 3d" in text and "WARNING" in text
    assert "Paired differences" not in text and "| Exp 3c |" in md


def test_bar_labels_are_spelled_out(report, tmp_path, monkeypatch):
    seen = {}
    real = cmp.grouped_bar_plot

    def keep(path, panels, **kw):
        seen.update(panels=panels, hlines=kw["hlines"])
        return real(path, panels, **kw)

    monkeypatch.setattr(cmp, "grouped_bar_plot", keep)
    compare([report], tmp_path / "out")
    assert set(seen["panels"]["20%"]) == {"Exp 3d", "Exp 3d, feedback zeroed"}
    assert set(seen["hlines"]["20%"]) == {"unigram baseline (Exp 3d)"}
