"""The Phase 1.5 experiments as configs: the record's settings, and tiny end-to-end runs."""

import json

import pytest

from graphrepair.config import CONFIG_DIR, load_config
from graphrepair.train import resolve_checkpoint, run
from harness.config import available_experiments
from harness.trainer import load_checkpoint
from tests.graphrepair.conftest import data_dir

# exp -> (model, feature signal, feedback at iteration 0, train/val samples, test weight)
RECORD = {
    "1": ("iterative_unet", "binary", True, (80, 10), 9.0),
    "2": ("iterative_unet", "binary", True, (80, 10), 4.0),
    "3": ("guided_unet", None, True, (80, 10), 0.0),
    "3b": ("guided_unet", None, True, (80, 10), 0.0),
    "3c": ("guided_unet", None, False, (80, 10), 0.0),
    "3d": ("guided_unet", None, False, (1000, 200), 0.0),
    "4": ("iterative_unet", "tarantula", True, (1000, 200), 9.0),
}

TINY = ["data.train_samples=8", "data.val_samples=4", "train.batch_size=4", "train.epochs=1",
        "train.trajectory_iterations=2", "model.hidden=32", "model.depth=2", "model.gat_heads=2",
        "model.attention_heads=2", "eval.programs=4", "eval.iterations=2", "eval.split=val",
        "sandbox.timeout_s=5"]


def test_every_record_experiment_has_a_config_with_the_record_settings():
    assert set(RECORD) <= set(available_experiments(CONFIG_DIR))
    for exp, (model, signal, fb0, samples, weight) in RECORD.items():
        cfg = load_config(exp)
        assert cfg.model.name == model, exp
        if signal is not None:
            assert cfg.feedback.signal == signal, exp
        assert cfg.feedback.feedback_at_iteration0 is fb0, exp
        assert (cfg.data.train_samples, cfg.data.val_samples) == samples, exp
        assert cfg.train.test_weight == weight, exp
        assert cfg.train.epochs == (30 if exp == "2" else 50), exp
        assert (cfg.model.hidden, cfg.model.depth) == (256, 3), exp
        assert cfg.eval.corruption == [0.2, 0.5, 0.75], exp
    assert load_config("3b").model.use_test_guidance is False
    assert load_config("3").model.use_test_guidance is True


@pytest.mark.parametrize("exp", ["1", "4"])
def test_six_feature_experiments_train_and_evaluate_end_to_end(exp, tmp_path):
    cfg = load_config(exp, TINY + [f"data.data_dir={data_dir()}"])
    out = run(cfg, tmp_path / exp, argv=["test"])
    report = json.loads((tmp_path / exp / "eval" / "report.json").read_text())
    assert report["config"]["model"]["name"] == "iterative_unet"
    assert out["params"] > 0 and "One-shot @ 20%" in out["table"]


def test_exp2_fine_tunes_exp1s_latest_checkpoint_under_a_one_shot_floor(tmp_path, caplog):
    root = tmp_path / "runs"
    with pytest.raises(FileNotFoundError, match="train it first: python -m graphrepair.train --exp 1"):
        resolve_checkpoint("latest:1", root)
    exp1 = load_config("1", TINY + [f"data.data_dir={data_dir()}", f"run_root={root}"])
    run(exp1, root / "1-first", do_eval=False, argv=["test"])
    start = load_checkpoint(root / "1-first" / "best.pt")
    cfg = load_config("2", TINY + [f"data.data_dir={data_dir()}", f"run_root={root}",
                                   "train.epochs=2", "train.floor_margin=-1.0"])
    assert (cfg.train.lr, cfg.train.test_weight, cfg.train.init_checkpoint) == (1e-4, 4.0, "latest:1")
    assert resolve_checkpoint("latest:1", root) == root / "1-first" / "best.pt"
    with caplog.at_level("INFO"):
        out = run(cfg, root / "2-fine", do_eval=False, argv=["test"])
    # a floor above any accuracy (margin -1): the guard stops the run after its first epoch
    assert "initialising from" in caplog.text and "fell below its floor" in caplog.text
    tuned = load_checkpoint(out["best"])
    assert tuned["epoch"] == 0 and tuned["extra"]["vocab"] == start["extra"]["vocab"]
    assert tuned["config"]["train"]["init_checkpoint"] == "latest:1"


def test_descriptions_follow_the_resolved_configuration():
    """A preset's description said "4 epochs" after --set train.epochs=3; it names the values now."""
    from harness.config import describe

    text = describe(load_config("3d_cpu", ["train.epochs=3", "eval.programs=20"]))
    assert "3 epochs" in text and "4 epochs" not in text and "20 test programs" in text
    for exp in available_experiments(CONFIG_DIR):
        assert "{" not in describe(load_config(exp)), exp


@pytest.mark.parametrize("exp,base", [("3d_plus", "3d"), ("4_plus", "4"), ("3d_plus_cpu", "3d_cpu")])
def test_mbpp_plus_experiments_change_only_the_dataset(exp, base):
    from harness.config import to_dict

    plus, original = to_dict(load_config(exp)), to_dict(load_config(base))
    assert plus["data"].pop("dataset") == "mbpp_plus" and original["data"].pop("dataset") == "mbpp"
    for cfg in (plus, original):
        cfg.pop("description"), cfg.pop("exp", None)
    assert plus == original


@pytest.mark.parametrize("exp,base,changes", [
    ("3d_failures", "3d", {("model", "failure_details"): True,
                           ("feedback", "load_lines"): "no_test"}),
    ("3d_plus_failures", "3d_plus", {("model", "failure_details"): True,
                                     ("feedback", "load_lines"): "no_test"}),
    ("4_plus_failures", "4_plus", {("feedback", "load_lines"): "no_test",
                                   ("feedback", "raise_signal"): 0.5}),
])
def test_failure_detail_experiments_change_only_the_feedback(exp, base, changes):
    from harness.config import to_dict

    new, old = to_dict(load_config(exp)), to_dict(load_config(base))
    for (section, key), value in changes.items():
        assert new[section].pop(key) == value and old[section].pop(key) != value
    for cfg in (new, old):
        cfg.pop("description"), cfg.pop("exp", None)
    assert new == old
    # the record's experiments keep the record's feedback
    for exp in RECORD:
        cfg = load_config(exp)
        assert not cfg.model.failure_details and cfg.feedback.load_lines == "every_test"
        assert cfg.feedback.raise_signal == 0.0


def test_exp5_changes_the_model_decoding_and_selection_of_3d_plus():
    from harness.config import to_dict

    new, old = to_dict(load_config("5")), to_dict(load_config("3d_plus_failures"))
    assert new["model"].pop("name") == "pointer_unet" and old["model"].pop("name") == "guided_unet"
    assert new["model"].pop("failure_details") is False
    old["model"].pop("failure_details")
    assert new.pop("decoding") == {"grammar": True, "identifiers": "in_scope", "policy": "verify",
                                   "remask": "both", "forbid_previous": False, "candidates": 8,
                                   "top_k": 5, "copy_slots": 32}
    assert old.pop("decoding")["policy"] == "edit"
    assert (new["train"].pop("trajectory_iterations"), new["eval"].pop("iterations")) == (5, 5)
    assert new["train"].pop("select_on") == "final" and old["train"].pop("select_on") == "one_shot"
    for cfg in (new, old):
        cfg.pop("description"), cfg.pop("exp", None)
        cfg["train"].pop("trajectory_iterations", None), cfg["eval"].pop("iterations", None)
    assert new == old


@pytest.mark.parametrize("policy", ["verify", "mask_predict"])
def test_exp5_trains_selects_on_the_final_metric_and_evaluates_end_to_end(policy, tmp_path):
    cfg = load_config("5", TINY + [f"data.data_dir={data_dir()}", "data.dataset=mbpp",
                                   "data.max_tests=3", f"decoding.policy={policy}",
                                   "decoding.candidates=2", "train.loss_leaves=corrupted"])
    out = run(cfg, tmp_path / "5", argv=["test"])
    ckpt = load_checkpoint(tmp_path / "5" / "best.pt")
    assert "final_repair_accuracy" in ckpt["metrics"] and ckpt["best_metric"] == pytest.approx(
        ckpt["metrics"]["final_repair_accuracy"])
    report = json.loads((tmp_path / "5" / "eval" / "report.json").read_text())
    assert report["config"]["model"]["name"] == "pointer_unet"
    model = report["results"]["levels"]["0.2"]
    runs = model["program_runs"]
    assert "search" in model["baselines"] and model["baselines"]["search"]["program_runs"] <= runs
    assert out["params"] > 0
