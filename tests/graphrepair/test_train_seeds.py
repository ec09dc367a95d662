"""train --seeds N: N tiny runs with training seeds train.seed + k in one seed group, evaluated on
the same inputs and tabulated as one row; bad combinations are messages before anything is written."""

import json

import pytest
import torch
import yaml

from graphrepair.train import main as train_main
from harness.checkpoint import load_checkpoint
from tests.graphrepair.conftest import data_dir
from tests.graphrepair.test_end_to_end import TINY

SETS = [a for s in TINY + ["sandbox.workers=1", "train.seed=3", "eval.corruption=[0.5]", "eval.programs=3",
                           "eval.feedback_zeroed=false"] for a in ("--set", s)]


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    group = tmp_path_factory.mktemp("seeds") / "group"
    assert train_main(["--exp", "3d", *SETS, "--data-dir", data_dir(), "--run-dir", str(group),
                       "--seeds", "2"]) == 0
    return group


def test_two_seeds_are_two_runs_with_their_own_seed_and_weights(group):
    meta = json.loads((group / "seeds.json").read_text())
    assert meta["exp"] == "3d" and meta["seeds"] == [3, 4] and meta["runs"] == ["seed3", "seed4"]
    configs = [yaml.safe_load((group / name / "config.yaml").read_text()) for name in meta["runs"]]
    assert [c["train"]["seed"] for c in configs] == [3, 4]
    assert configs[0] | {"train": None} == configs[1] | {"train": None}  # nothing else differs
    weights = [load_checkpoint(group / name / "best.pt")["model"] for name in meta["runs"]]
    assert not torch.equal(weights[0]["token_emb.weight"], weights[1]["token_emb.weight"])
    reports = [json.loads((group / name / "eval" / "report.json").read_text()) for name in meta["runs"]]
    assert reports[0]["results"]["inputs_id"] == reports[1]["results"]["inputs_id"]  # the same inputs


def test_the_group_is_tabulated_as_one_row_over_both_seeds(group):
    text = (group / "comparison.md").read_text()
    assert "| Exp 3d | guided_unet | 2 × 1 |" in text
    assert "Student t over n=2 training seeds" in text and "train.seed 3, 4" in text


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0"], "--seeds must be >= 1, got 0"),
    (["--resume", "somewhere", "--seeds", "2"], "a seed group's runs are resumed one by one"),
])
def test_bad_seed_options_are_messages(args, message, capsys):
    assert train_main((["--exp", "3d"] if "--resume" not in args else []) + args) == 2
    assert message in capsys.readouterr().err


def test_a_group_directory_is_refused_and_a_missing_dataset_leaves_none(group, tmp_path, capsys):
    assert train_main(["--exp", "3d", *SETS, "--run-dir", str(group), "--seeds", "2"]) == 2
    assert "already holds a seed group" in capsys.readouterr().err
    empty, new = tmp_path / "no-data", tmp_path / "new"
    empty.mkdir()
    assert train_main(["--exp", "3d", "--data-dir", str(empty), "--run-dir", str(new), "--seeds", "2"]) == 2
    assert "mbpp.jsonl" in capsys.readouterr().err and not new.exists()
