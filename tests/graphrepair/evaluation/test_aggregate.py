"""Runs of one experiment over training seeds: grouped into one row, mean ± Student-t CI over the
seeds equal to the hand-computed values, per-program outcomes pooled for paired bootstrap CIs
(hand-made reports of :mod:`tests.graphrepair.evaluation.synthetic`)."""

import json

import pytest

from graphrepair.compare import main
from graphrepair.evaluation.aggregate import (
    aggregate_reports,
    group_reports,
    paired_between,
    paired_improvement,
    pool_runs,
)
from graphrepair.evaluation.compare import compare, load_report
from graphrepair.evaluation.report import METHOD_LABELS
from harness.seeds import write_seed_group
from tests.graphrepair.evaluation import synthetic

T_975_DF1 = 12.7062047  # Student t, two-sided 95%, 1 degree of freedom (the published table)


@pytest.fixture
def seeds(tmp_path):
    """Exp 3d with train.seed 0 and 1 on the same inputs; the one-shot differs at 20%."""
    return [load_report(synthetic.write(tmp_path / "seed0" / "eval", train_seed=0)),
            load_report(synthetic.write(tmp_path / "seed1" / "eval", train_seed=1,
                                        us=synthetic.other_seed_units()))]


def test_two_seeds_are_one_row_with_the_hand_computed_mean_and_t_interval(seeds):
    [group] = group_reports(seeds[::-1])
    assert [r["config"]["train"]["seed"] for r in group] == [0, 1]  # ordered by seed
    row = aggregate_reports(group)
    assert row["train_seeds"] == [0, 1] and row["results"]["n_runs"] == 2 and row["results"]["n_seeds"] == 2
    s = row["results"]["levels"]["0.2"]
    # run means over the corruption seeds: (6/12 + 9/12) / 2 and (5/12 + 8/12) / 2
    a, b = (6 / 12 + 9 / 12) / 2, (5 / 12 + 8 / 12) / 2
    assert s["one_shot"]["repair_accuracy"] == pytest.approx((a + b) / 2)
    # t_{0.975, 1} * sd / sqrt(2) with sd = |a - b| / sqrt(2)
    assert s["ci95"]["one_shot"]["repair_accuracy"] == pytest.approx(T_975_DF1 * abs(a - b) / 2)
    assert s["final"]["repair_accuracy"] == pytest.approx((22 / 24 + 22 / 24) / 2)
    assert s["ci95"]["final"]["repair_accuracy"] == pytest.approx(0.0)
    assert s["improvement_pp"]["repair_accuracy"] == pytest.approx(100 * ((22 / 24 - a) + (22 / 24 - b)) / 2)
    assert s["baselines"]["unigram"]["final"]["repair_accuracy"] == pytest.approx(4 / 24)
    # per-program outcomes pooled over both runs and both corruption seeds
    pooled = s["per_program"]
    assert pooled["seeds"] == 4 and pooled["runs"] == 2 and pooled["masked"] == [16, 8, 24]
    assert pooled["methods"]["model"]["one_shot"]["restored"] == [10, 6, 12]


def test_the_comparison_table_shows_the_row_its_seeds_and_the_paired_improvement(seeds, tmp_path):
    md_path, _, md = compare([tmp_path / "seed0", tmp_path / "seed1"], tmp_path / "out")
    assert "| Exp 3d | GuidedIterativeGraphUNet | 2 × 2 | 58.3% ± 52.9 |" in md
    assert md.count("| Exp 3d") == 4  # the model and three baselines: one row, not two
    assert "Intervals: mean ± 95% CI, Student t over n=2 training seeds." in md
    text = md_path.read_text()
    assert f"Exp 3d: train.seed 0, 1 ({tmp_path / 'seed0'}/eval/report.json" in text
    # final - one-shot pooled over runs and seeds: (44 - 28) restored of 48 corrupted leaves
    assert "| Exp 3d | 20% | +33.3 pp [" in text


def test_a_seed_group_directory_stands_for_its_runs(seeds, tmp_path, capsys):
    write_seed_group(tmp_path, "3d", [0, 1], ["test"])
    assert main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert "| Exp 3d | GuidedIterativeGraphUNet | 2 × 2 | 58.3% ± 52.9 |" in capsys.readouterr().out
    write_seed_group(tmp_path, "3d", [0, 1, 2], ["test"])  # seed 2 never started
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'seed2'} does not exist" in err and "--exp 3d --set train.seed=2 --run-dir" in err


def test_the_same_seed_twice_is_an_error_naming_both_files_unless_per_run(seeds, tmp_path, capsys):
    twin = synthetic.write(tmp_path / "again" / "eval", train_seed=0)
    assert main([str(tmp_path / "seed0"), str(tmp_path / "again"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{twin} and {tmp_path / 'seed0'}/eval/report.json are the same experiment with the same " \
           "train.seed 0" in err and "--per-run" in err and err.count("\n") == 1
    assert main([str(tmp_path / "seed0"), str(tmp_path / "seed0")]) == 2
    assert "is given twice" in capsys.readouterr().err
    assert main([str(tmp_path / "seed0"), str(tmp_path / "again"), "--out", str(tmp_path), "--per-run"]) == 0
    text = (tmp_path / "comparison.md").read_text()
    assert "| Exp 3d (#2) |" in text and "Exp 3d (#2) is not aggregated with Exp 3d: the same configuration" in text


def test_runs_of_other_configurations_or_inputs_are_separate_rows_saying_why(tmp_path):
    runs = [synthetic.write(tmp_path / "a" / "eval", train_seed=0, hidden=32),
            synthetic.write(tmp_path / "b" / "eval", train_seed=1, hidden=64),
            synthetic.write(tmp_path / "c" / "eval", train_seed=2, hidden=32, inputs_id="xyz")]
    md_path, _, md = compare(runs, tmp_path / "out")
    assert "| Exp 3d | GuidedIterativeGraphUNet | 1 × 2 |" in md
    assert "| Exp 3d (#2) |" in md and "| Exp 3d (#3) |" in md
    text = md_path.read_text()
    assert "Exp 3d (#2) is not aggregated with Exp 3d: it differs in model.hidden: 32 vs 64." in text
    assert "Exp 3d (#3) is not aggregated with Exp 3d: it differs in evaluation inputs" in text


def test_the_paired_interval_of_identical_rows_is_zero(seeds, tmp_path):
    pooled = seeds[0]["results"]["levels"]["0.2"]["per_program"]
    zero = {"value": 0.0, "low": 0.0, "high": 0.0}
    assert paired_between(pooled, pooled) == {st: {"repair_accuracy": zero, "pass_rate": zero}
                                              for st in ("one_shot", "final")}
    other = synthetic.write(tmp_path / "3c" / "eval", exp="3c", train_seed=0)
    text = compare([tmp_path / "seed0", other], tmp_path / "out")[0].read_text()
    assert "| Exp 3c − Exp 3d | 20% | " + " | ".join(["+0.0 pp [+0.0, +0.0]"] * 4) + " |" in text


def test_rows_of_different_run_counts_are_paired_per_program(seeds, tmp_path):
    group = pool_runs([r["results"]["levels"]["0.2"]["per_program"] for r in seeds])
    single = seeds[0]["results"]["levels"]["0.2"]["per_program"]
    d = paired_between(single, group)  # 15/24 - 28/48 one-shot, equal finals
    assert d["one_shot"]["repair_accuracy"]["value"] == pytest.approx(15 / 24 - 28 / 48)
    assert d["final"]["repair_accuracy"] == {"value": pytest.approx(0.0), "low": 0.0, "high": 0.0}
    assert paired_improvement(group)["repair_accuracy"]["value"] == pytest.approx(16 / 48)
    shifted = json.loads(json.dumps(single))
    shifted["masked"][0] += 1
    with pytest.raises(ValueError, match="other masks"):
        paired_between(shifted, group)


def test_runs_with_and_without_the_new_baselines(tmp_path):
    """A report of an older evaluate (no feedback_shuffled / search) beside a new one: per run,
    its rows show n/a; as training seeds of one experiment, the row keeps the common baselines."""
    shuffled, search = METHOD_LABELS["feedback_shuffled"], METHOD_LABELS["search"]
    new = synthetic.write(tmp_path / "s0" / "eval", train_seed=0, us=synthetic.new_units(),
                          eval_cfg={"feedback_zeroed": True, "feedback_shuffled": True, "search": True})
    old = synthetic.write(tmp_path / "s1" / "eval", train_seed=1, eval_cfg={"feedback_zeroed": True})
    md_path, _, md = compare([new, old], tmp_path / "per-run", aggregate=False)
    assert f"| Exp 3d: {search} | - | 1 × 2 | 62.5% ± 158.8 | 75.0% ± 105.9 (+12.5 pp) |" in md
    assert f"| Exp 3d (#2): {search} | - | 1 × 2 | n/a | n/a | n/a | n/a | n/a | n/a |" in md
    assert (f"| Exp 3d (#2): {shuffled} | GuidedIterativeGraphUNet | 1 × 2 | n/a | n/a | n/a | n/a "
            f"| n/a | n/a |") in md
    text = md_path.read_text()
    assert f"| Exp 3d: {search} | 20% | +12.5 pp [" in text  # its improvement over one-shot
    assert f"| Exp 3d (#2): {search} |" not in text.split("Improvement over one-shot")[1]
    # training seeds of one experiment (which baselines ran is no difference): one row, common baselines
    [group] = group_reports([load_report(new), load_report(old)])
    row = aggregate_reports(group)
    assert set(row["results"]["levels"]["0.2"]["baselines"]) == {"feedback_zeroed", "unigram", "copy"}
    assert set(row["results"]["levels"]["0.2"]["per_program"]["methods"]) == {
        "model", "feedback_zeroed", "unigram", "copy"}
    md = compare([new, old], tmp_path / "aggregated")[2]
    assert "| Exp 3d | GuidedIterativeGraphUNet | 2 × 2 |" in md and search not in md
