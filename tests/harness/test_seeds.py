"""harness.seeds: a seed group directory is claimed like a run directory, written once training
starts, removed again when its first seed fails before writing anything, and read back checked."""

import logging

import pytest

from harness.runs import RunDirError
from harness.seeds import (
    SEEDS_FILE,
    claim_seed_group,
    is_seed_group,
    read_seed_group,
    run_seeds,
    seed_group_runs,
    seed_values,
)


def _train(seed, run_dir):
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(f"train:\n  seed: {seed}\n")
    return seed * 10


def test_one_run_per_seed_in_order_and_the_group_file(tmp_path):
    group = tmp_path / "3d-group"
    assert seed_values(5, 3) == [5, 6, 7]
    assert run_seeds(group, "3d", [5, 6, 7], _train, argv=["train", "--seeds", "3"]) == [50, 60, 70]
    meta = read_seed_group(group)
    assert meta["exp"] == "3d" and meta["seeds"] == [5, 6, 7] and meta["argv"][-1] == "3"
    assert seed_group_runs(group) == [group / "seed5", group / "seed6", group / "seed7"]
    assert (group / "seed6" / "config.yaml").read_text() == "train:\n  seed: 6\n"


def test_a_group_is_refused_unless_replaced_and_a_foreign_directory_never(tmp_path, caplog):
    group = tmp_path / "g"
    run_seeds(group, "3d", [0], _train)
    with pytest.raises(RunDirError, match=r"already holds a seed group .*--resume .*/seed<S>.*--force"):
        claim_seed_group(group)
    with caplog.at_level(logging.WARNING):
        assert claim_seed_group(group, force=True) == group
    assert not group.exists() and "deleting the seed group" in caplog.text
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(RunDirError, match="not empty and holds no run"):
        claim_seed_group(tmp_path / "notes", force=True)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="--seeds must be >= 1, got 0"):
        seed_values(0, 0)


def test_a_first_seed_failing_before_its_run_leaves_nothing_a_later_one_leaves_the_group(tmp_path):
    def missing_data(seed, run_dir):
        raise FileNotFoundError("mbpp.jsonl")

    group = tmp_path / "g"
    with pytest.raises(FileNotFoundError):
        run_seeds(group, "3d", [0, 1], missing_data)
    assert not group.exists()

    def second_fails(seed, run_dir):
        if seed == 1:
            raise RuntimeError("NaN loss")
        return _train(seed, run_dir)

    with pytest.raises(RuntimeError):
        run_seeds(group, "3d", [0, 1], second_fails)
    assert is_seed_group(group) and (group / "seed0" / "config.yaml").is_file()


@pytest.mark.parametrize("content", ["{", '{"seeds": [0, 1], "runs": ["seed0"]}', '{"seeds": [0], "runs": ["../x"]}',
                                     '{"seeds": [], "runs": []}'])
def test_a_damaged_group_file_is_a_message_naming_it(tmp_path, content):
    (tmp_path / SEEDS_FILE).write_text(content)
    with pytest.raises(ValueError, match=str(tmp_path / SEEDS_FILE)):
        read_seed_group(tmp_path)


def test_a_directory_without_the_group_file_is_not_a_group(tmp_path):
    assert not is_seed_group(tmp_path)
    with pytest.raises(FileNotFoundError, match="is not a seed group"):
        read_seed_group(tmp_path)
