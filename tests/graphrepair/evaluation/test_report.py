"""graphrepair.evaluation.report: pooling programs over seeds, paired model-vs-baseline differences
with bootstrap CIs, and the tables that show them (hand-made units, checked by hand)."""

import copy

import pytest

import harness.plots as plots
from graphrepair.evaluation.report import (
    BASELINES,
    METHOD_LABELS,
    paired_differences,
    report_plots,
    report_tables,
    summarize,
)
from harness.report import markdown_table
from tests.graphrepair.evaluation import synthetic


def test_programs_are_pooled_over_seeds():
    pooled = summarize(synthetic.units())["0.2"]["per_program"]
    assert pooled["task_ids"] == synthetic.TASKS and pooled["seeds"] == 2
    assert pooled["masked"] == [8, 4, 12] and pooled["leaves"] == [40, 20, 60]
    final = pooled["methods"]["model"]["final"]
    assert final["restored"] == [8, 3, 11] and final["passed"] == [2, 1, 2] and final["exact"] == [2, 1, 1]
    assert pooled["methods"]["model"]["one_shot"]["restored"] == [5, 3, 7]


def test_paired_differences_by_hand():
    level = summarize(synthetic.units())["0.2"]
    d = level["paired"]
    # final repair_accuracy: model 22/24 restored, feedback zeroed 15/24 (pooled over both seeds)
    fz = d["feedback_zeroed"]["final"]["repair_accuracy"]
    assert fz["value"] == pytest.approx(7 / 24)
    # every program gains 0 .. 3/8: any resample's pooled difference lies there
    assert 0 <= fz["low"] <= fz["value"] <= fz["high"] <= 3 / 8
    # pass_rate: per program the share of seeds passing, model (1, .5, 1) vs zeroed (0, .5, 0)
    assert d["feedback_zeroed"]["final"]["pass_rate"]["value"] == pytest.approx(2 / 3)
    # one-shot: the same prediction with and without feedback (no feedback at iteration 0)
    assert d["feedback_zeroed"]["one_shot"]["repair_accuracy"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    # copy restores nothing: the difference is the model's own pooled repair_accuracy
    assert d["copy"]["final"]["repair_accuracy"]["value"] == pytest.approx(22 / 24)
    assert set(d) == {"feedback_zeroed", "unigram", "copy"}
    again = paired_differences(level["per_program"])
    assert again == d  # a fixed bootstrap seed: the same report every time


def test_report_has_the_paired_table_beside_the_seed_tables():
    res = synthetic.results()
    md = "\n".join(markdown_table(t) for t in report_tables("3d", res))
    assert "### Model vs baselines (paired bootstrap over programs)" in md
    assert ("| Corruption | Baseline | repair_accuracy one-shot | repair_accuracy final | "
            "pass_rate one-shot | pass_rate final |") in md
    assert "| 20% | same model, feedback zeroed | +0.0 pp [+0.0, +0.0] | +29.2 pp [" in md
    assert "Intervals: 95% CI [low, high], paired bootstrap over n=3 programs" in md
    assert "over the 2 seeds" in md
    # every seed table says which interval it shows, in one place
    assert md.count("Intervals: mean ± 95% CI, Student t over n=2 seeds.") == 4 + 2  # + 2 levels


def test_units_from_an_older_evaluate_have_no_paired_difference():
    old = copy.deepcopy(synthetic.units())
    for u in old[2:]:  # the 50% units, resumed from partial/ written before per_program
        del u["per_program"]
    res = synthetic.results(old)
    assert res["levels"]["0.5"]["per_program"] is None and res["levels"]["0.5"]["paired"] is None
    md = "\n".join(markdown_table(t) for t in report_tables("3d", res))
    assert "No per-program outcomes at 50%" in md and "evaluate again" in md
    assert "| 50% | same model" not in md and "| 20% | same model" in md
    for u in old[:2]:
        del u["per_program"]
    tables = report_tables("3d", synthetic.results(old))
    assert not any("paired" in t.title for t in tables)


def test_pooling_refuses_seeds_over_different_programs():
    us = copy.deepcopy(synthetic.units()[:2])
    us[1]["per_program"]["task_ids"] = ["mbpp/11", "mbpp/12", "mbpp/99"]
    with pytest.raises(ValueError, match="seeds 1234 and 1235 were evaluated on different programs"):
        summarize(us)


def test_plots_spell_out_their_labels(tmp_path, monkeypatch):
    labels, real = [], plots._save

    def keep(fig, path, **kw):
        labels.extend(line.get_label() for ax in fig.axes for line in ax.get_lines())
        return real(fig, path, **kw)

    monkeypatch.setattr(plots, "_save", keep)
    names = report_plots(tmp_path, "3d", synthetic.results(), None)
    assert names == ["refinement.png", "pass_rate.png"]
    assert "20% feedback zeroed" in labels and not any("fb0" in lab for lab in labels)
    labels.clear()
    report_plots(tmp_path, "3d", synthetic.results(synthetic.new_units()), None)
    assert {"50% feedback shuffled", "50% search"} <= set(labels)


def with_ceilings():
    """The synthetic units with an in-vocabulary ceiling per seed (20%: 3/4 and 7/8 reachable)."""
    us = copy.deepcopy(synthetic.units())
    values = {1234: (0.75, 0.9, 2 / 3), 1235: (0.875, 0.95, 1 / 3)}
    for u in us:
        ra, ta, em = values[u["corruption_seed"]]
        u["in_vocab_ceiling"] = {"repair_accuracy": ra, "token_accuracy": ta, "exact_match": em}
    return us


def test_in_vocab_ceiling_is_averaged_over_seeds_and_shown_beside_every_result(tmp_path):
    import json

    res = synthetic.results(with_ceilings())
    level = res["levels"]["0.2"]
    assert level["in_vocab_ceiling"]["repair_accuracy"] == pytest.approx(0.8125)
    assert level["in_vocab_ceiling"]["exact_match"] == pytest.approx(0.5)
    # Student t, df=1: 12.706 * |a - b| / 2
    assert level["ci95"]["in_vocab_ceiling"]["repair_accuracy"] == pytest.approx(12.706 * 0.125 / 2, rel=1e-4)
    ra, em = "81.2% ± 79.4", "50.0% ± 211.8"
    md = "\n".join(markdown_table(t) for t in report_tables("3d", res))
    assert f"| in-vocabulary ceiling | {ra} | {ra} | " in md  # summary: one-shot and iterative @ 20%
    assert "| Corruption | One-shot | Final | Improvement | In-vocabulary ceiling |" in md
    assert md.count(f" | {ra} |\n") >= 2  # the model's and the feedback-zeroed refinement tables
    assert "| Improvement | In-vocabulary ceiling (exact repair) |" in md
    assert f"pp | {em} | " in md  # pass_rate table: beside the model's improvement
    assert f"| in-vocabulary ceiling | {ra} | 92.5% ± 31.8 | {em} | {em} | - |" in md  # per-level table
    path = synthetic.write(tmp_path, us=with_ceilings())
    saved = json.loads(path.read_text())["results"]["levels"]["0.5"]["in_vocab_ceiling"]
    assert saved == pytest.approx({"repair_accuracy": 0.8125, "token_accuracy": 0.925, "exact_match": 0.5})


def test_units_without_a_ceiling_show_na():
    res = synthetic.results()
    assert res["levels"]["0.2"]["in_vocab_ceiling"] is None
    md = "\n".join(markdown_table(t) for t in report_tables("3d", res))
    assert "| in-vocabulary ceiling | n/a | n/a | n/a | n/a |" in md


SHUFFLED, SEARCH = METHOD_LABELS["feedback_shuffled"], METHOD_LABELS["search"]


def test_shuffled_feedback_and_search_are_rows_of_every_table():
    res = synthetic.results(synthetic.new_units())
    level = res["levels"]["0.2"]
    assert list(level["baselines"]) == list(BASELINES)
    # search starts from the model's one-shot program: no one-shot difference
    d = level["paired"]["search"]
    assert d["one_shot"]["repair_accuracy"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    # final: model 22/24 restored leaves, search 8 + 3 + 7 = 18/24; passing: (1, .5, 1) vs (1, .5, 0)
    assert d["final"]["repair_accuracy"]["value"] == pytest.approx(4 / 24)
    assert d["final"]["pass_rate"]["value"] == pytest.approx(1 / 3)
    assert level["baselines"]["search"]["improvement_pp"]["repair_accuracy"] == pytest.approx(12.5)
    md = "\n".join(markdown_table(t) for t in report_tables("3d", res))
    for label in (SHUFFLED, SEARCH):
        assert f"| {label} | 62.5% ± 158.8 |" in md  # summary
        assert f"| 20% | {label} | +0.0 pp [+0.0, +0.0] |" in md  # paired model vs baseline
        assert f"| {label}, iteration 1 |" in md  # per-level detail
        assert f"| {label} (final) |" in md  # functional repair column
    assert "### Iterative refinement, feedback shuffled across programs" in md
    assert "### Iterative refinement, search with the model's test executions" in md
    assert "| 20% | 62.5% ± 158.8 | 75.0% ± 105.9 | +12.5 ± 52.9 pp | n/a |" in md  # search's own table
    assert "Not evaluated in this run" not in md


def test_a_report_without_shuffled_feedback_or_search_shows_na():
    """Units of an older evaluate (schema 5) render, the new baselines as n/a."""
    res = synthetic.results()
    assert set(res["levels"]["0.2"]["baselines"]) == {"feedback_zeroed", "unigram", "copy"}
    md = "\n".join(markdown_table(t) for t in report_tables("3d", res))
    for label in (SHUFFLED, SEARCH):
        assert f"| {label} | n/a | n/a | n/a | n/a |" in md
        assert f"| {label} (final) |" in md and f"| 20% | {label} |" not in md
    assert "| 16.7% ± 211.8 | n/a | n/a | 0.0% ± 0.0 |" in md  # their pass_rate columns
    assert f"Not evaluated in this run: {SHUFFLED}, {SEARCH}." in md
    assert "Iterative refinement, feedback shuffled" not in md


def test_a_level_whose_seeds_differ_in_baselines_keeps_the_common_ones():
    us = synthetic.new_units()
    us[1] = synthetic.units()[1]  # seed 1235 at 20% from an older evaluate
    level = summarize(us)["0.2"]
    assert set(level["baselines"]) == {"feedback_zeroed", "unigram", "copy"}
    assert set(level["per_program"]["methods"]) == {"model", "feedback_zeroed", "unigram", "copy"}
