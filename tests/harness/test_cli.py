"""harness.cli: devices, exit codes and the common flags."""

import pytest
import torch

from harness.checkpoint import CheckpointError
from harness.cli import (
    EXIT_BAD_INPUT,
    EXIT_ENVIRONMENT,
    EnvironmentProblem,
    InputError,
    experiment_parser,
    resolve_device,
    run_cli,
)
from harness.config import ConfigError
from harness.runs import RunDirError


def test_cuda_without_cuda_says_so(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(EnvironmentProblem, match="CUDA is not available here"):
        resolve_device("cuda")
    with pytest.raises(EnvironmentProblem, match="CUDA is not available here"):
        resolve_device("cuda:1")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="unknown device 'tpu'"):
        resolve_device("tpu")


@pytest.mark.parametrize("exc, code", [
    (InputError("x"), EXIT_BAD_INPUT), (ConfigError("x"), EXIT_BAD_INPUT),
    (RunDirError("x"), EXIT_BAD_INPUT), (CheckpointError("x"), EXIT_BAD_INPUT),
    (FileNotFoundError("x"), EXIT_BAD_INPUT), (EnvironmentProblem("x"), EXIT_ENVIRONMENT)])
def test_user_errors_become_one_line_and_an_exit_code(exc, code, capsys):
    def main():
        raise exc

    assert run_cli(main) == code
    assert capsys.readouterr().err == "error: x\n"
    assert run_cli(main, master=False) == code
    assert capsys.readouterr().err == ""  # other ranks stay quiet


def test_a_bug_keeps_its_traceback():
    def main():
        raise KeyError("bug")

    with pytest.raises(KeyError):
        run_cli(main)


def test_experiment_parser_has_the_common_flags(tmp_path):
    (tmp_path / "a.yaml").write_text("{}")
    ap = experiment_parser("prog", "desc", tmp_path)
    args = ap.parse_args(["--exp", "a", "--set", "x.y=1", "--set", "x.z=2", "--run-dir", "r",
                          "--force", "--data-dir", "d"])
    assert (args.exp, args.overrides, args.run_dir, args.force, args.data_dir, args.resume) == \
        ("a", ["x.y=1", "x.z=2"], "r", True, "d", None)
    assert "a" in ap.format_help() and "exit codes" in ap.format_help()
    assert not hasattr(experiment_parser("p", "d", tmp_path, run_dir=False).parse_args([]), "force")
