"""Train a refiner for one experiment, then evaluate its best checkpoint.

Usage::

    python -m graphrepair.train --exp 3d [--set train.epochs=10 --set data.train_samples=200 ...]
                                [--data-dir DIR] [--run-dir DIR [--force]] [--no-eval]
    python -m graphrepair.train --resume RUN_DIR [--set train.epochs=N] [--set train.patience=N]
    python -m graphrepair.train --exp 3d --seeds N [...]       # N runs, train.seed + 0..N-1
    torchrun --standalone --nproc_per_node=N -m graphrepair.train --exp 3d [...]   # DDP, N ranks

Writes ``runs/<exp>-<UTC time>/`` (or ``--run-dir``): ``config.yaml`` (resolved), ``run.json``
(command line, git commit, resumes), ``data.json``, ``metrics.csv``, ``tb/`` (TensorBoard),
``last.pt`` and ``best.pt`` (each with its ``.sha256``) and ``eval/report.{json,md}``.

Nothing is written before the configuration, the device and the model name were checked; a
``--run-dir`` that already holds a run is refused unless ``--force`` replaces it (see
:func:`harness.runs.claim_run_dir`). ``--resume RUN_DIR`` continues an interrupted run from
``last.pt``, exactly where its last finished epoch left it, with the configuration it was started
with; ``--set train.epochs=N`` / ``train.patience=N`` extend it (recorded in ``run.json`` and
``config.yaml``), any other key is an error.

``--seeds N`` trains N runs of the configuration one after the other, run ``k`` with training seed
``train.seed + k``, each an ordinary run directory inside one *seed group* directory
(``<run_root>/<exp>-<UTC time>/seed<S>/``, or ``--run-dir GROUP``; layout, ``seeds.json`` and how
to continue an interrupted group: :mod:`harness.seeds`). The evaluation inputs do not depend on the
training seed, so every seed is evaluated on the same corrupted programs. At the end the group is
tabulated (``GROUP/comparison.md``: mean ± Student-t 95% CI over the training seeds, see
:mod:`graphrepair.evaluation.compare`). ``--force`` replaces a group in ``--run-dir``.

Under torchrun (see :mod:`harness.trainer`) every rank loads the data and trains on its share of
each epoch's samples (``data.train_samples`` is per epoch over all ranks, ``train.batch_size`` per
rank, each rank with its own sandbox workers); rank 0 picks the run directory name (broadcast to
the others), prints, writes every file and runs the final evaluation.

Exit codes (:mod:`harness.cli`): 0 trained (and evaluated), 2 bad input (configuration, run
directory, dataset, checkpoint), 3 the environment (CUDA asked for but not available).
"""

from __future__ import annotations

import copy
import logging
import os
import sys
from pathlib import Path

import numpy as np
import torch.distributed as dist

from graphrepair.config import CONFIG_DIR, ExperimentConfig, load_config
from graphrepair.data.dataset import draw_training_problems, duplication, prepare
from graphrepair.evaluation.compare import compare
from graphrepair.evaluation.evaluate import evaluate, find_checkpoint
from graphrepair.graphs.vocab import Vocabulary
from graphrepair.loop.refine import Refiner
from graphrepair.loop.training import RefinementTask
from graphrepair.models import build_model, from_checkpoint
from graphrepair.models.registry import model_class
from harness import runs
from harness.checkpoint import load_checkpoint, load_weights
from harness.cli import experiment_parser, is_master, resolve_device, run_cli, setup_logging
from harness.config import ConfigError, describe, save_resolved, to_dict
from harness.io import atomic_write_json
from harness.seeds import claim_seed_group, run_seeds, seed_values
from harness.trainer import (
    Trainer,
    TrainerConfig,
    cleanup_distributed,
    init_distributed,
    seed_everything,
)

__all__ = ["EXTENDABLE", "main", "resolve_checkpoint", "resolve_run", "run", "with_seed"]

log = logging.getLogger("graphrepair.train")

#: Configuration keys a resumed run may change (``--resume RUN_DIR --set train.epochs=N``).
EXTENDABLE = ("train.epochs", "train.patience")
MONITOR = {"one_shot": "repair_accuracy", "final": "final_repair_accuracy"}
"""The validation metric that picks best.pt, per ``train.select_on``."""


def resolve_checkpoint(spec: str, run_root: str | os.PathLike) -> Path:
    """The checkpoint ``spec`` names: a path, or ``latest:<exp>`` (newest ``<exp>-*/best.pt``).

    Raises:
        FileNotFoundError: no such file, or no finished run of ``<exp>`` under ``run_root``; the
            message says which command trains one.
    """
    if spec.startswith("latest:"):
        return find_checkpoint(spec.split(":", 1)[1], run_root)
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (train.init_checkpoint)")
    return path


def resolve_run(exp: str | None, overrides: list[str], *, run_dir: str | None = None,
                resume: str | None = None, force: bool = False, data_dir: str | None = None,
                master: bool = True, seeds: int | None = None) -> tuple[ExperimentConfig, Path, dict]:
    """The checked configuration and run directory of a training command; nothing is written.

    Args:
        exp, overrides: ``--exp`` and ``--set`` (with ``resume``: only :data:`EXTENDABLE` keys).
        run_dir, resume, force: ``--run-dir``, ``--resume``, ``--force``.
        data_dir: ``--data-dir`` (not part of the run: it may differ on resume).
        master: rank 0 (only it deletes a run replaced with ``force``).
        seeds: ``--seeds``: the directory is a seed group (:func:`harness.seeds.claim_seed_group`).

    Returns:
        (configuration, run or seed group directory, the keys a resume changed with their new values).

    Raises:
        ConfigError: no ``--exp``; ``--exp``/``--run-dir``/``--seeds`` given with ``--resume``; an
            override a resume may not change; an invalid configuration or value; an unknown
            model; ``seeds < 1``.
        harness.runs.RunDirError: the directory holds a run or a seed group (no ``--force``), or
            is not empty.
        FileNotFoundError: ``--resume`` of a directory without ``last.pt``.
        harness.cli.EnvironmentProblem: ``train.device`` is CUDA without CUDA.
    """
    changes: dict = {}
    if seeds is not None and seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if resume:
        if exp or run_dir:
            raise ConfigError(f"--resume {resume} continues the run in that directory with its own "
                              "experiment and configuration: drop --exp and --run-dir")
        if seeds is not None:
            raise ConfigError("--seeds starts a new seed group; a seed group's runs are resumed one "
                              "by one: --resume GROUP/seed<S>, without --seeds")
        path = runs.claim_run_dir(resume, resume=True)
        cfg, changes = runs.resume_config(path, ExperimentConfig, overrides, EXTENDABLE)
    else:
        if not exp:
            raise ConfigError("--exp is required (or --resume RUN_DIR); run with --help for the "
                              "list of experiments")
        cfg = load_config(exp, overrides)
        path = Path(run_dir) if run_dir else runs.timestamped_run_dir(cfg.run_root, cfg.exp)
        if master or not force:
            if seeds is None:
                runs.claim_run_dir(path, force=force)
            else:
                claim_seed_group(path, force=force)
    if data_dir:
        cfg.data.data_dir = data_dir
    model_class(cfg.model.name)
    resolve_device(cfg.train.device)
    return cfg, path, changes


def _record(cfg: ExperimentConfig, run_dir: Path, resume: bool, changes: dict, argv: list[str]) -> None:
    """Rank 0: write config.yaml + run.json (a new run) or record the resume (extended keys)."""
    if not resume:
        save_resolved(cfg, run_dir, argv)
        return
    if changes:
        log.info("resume extends the run: %s", ", ".join(f"{k}={v}" for k, v in changes.items()))
    runs.record_resume(run_dir, argv, changes, cfg)


def run(cfg: ExperimentConfig, run_dir: Path, *, resume: bool = False, do_eval: bool = True,
        argv: list[str] | None = None, changes: dict | None = None) -> dict:
    """Train (and evaluate) ``cfg`` in ``run_dir``; return a summary dict with paths and the table.

    The caller has checked ``run_dir`` (:func:`resolve_run`). Under torchrun every rank calls this
    with the same ``run_dir``; rank 0 alone writes files and evaluates (the other ranks return
    without ``table``/``report_*``).

    Raises:
        FileNotFoundError / graphrepair.data.problems.DataError: a dataset file is missing or
            damaged (before anything is written).
        harness.checkpoint.CheckpointError: a damaged ``last.pt`` or ``init_checkpoint``, or one
            holding another model's weights.
    """
    ctx = init_distributed(cfg.train.device)
    device = ctx.device
    seed_everything(cfg.train.seed)  # the same initial weights on every rank
    vocab = init = None
    if cfg.train.init_checkpoint:
        init = from_checkpoint(resolve_checkpoint(cfg.train.init_checkpoint, cfg.run_root))
        vocab = init.vocab
        log.info("initialising from %s (its weights and vocabulary)", init.path)
    if resume:
        # the vocabulary only; the trainer loads the weights (and says when they do not fit)
        vocab = Vocabulary.from_dict(load_checkpoint(run_dir / "last.pt")["extra"]["vocab"])
    data = prepare(cfg, vocab=vocab)  # first: a missing dataset must not leave a run directory
    if ctx.master:
        _record(cfg, run_dir, resume, changes or {}, argv or sys.argv)
        dup = duplication(data.splits["train"], draw_training_problems(
            len(data.splits["train"]), cfg.data.train_samples, np.random.default_rng(0)))
        if dup["duplication_rate"] > 0:
            log.warning(
                "DUPLICATION: %d training samples per epoch come from %d distinct programs "
                "(duplication rate %.1f%%); fresh corruptions each epoch", dup["samples"],
                dup["unique_programs"], 100 * dup["duplication_rate"],
            )
        atomic_write_json(run_dir / "data.json", {**data.summary(), "training_samples": dup})
    model = build_model(cfg, data.vocab)
    if init is not None:
        load_weights(model, init.model.state_dict(), str(init.path))  # a message if they differ
    model = model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("model %r: %s parameters, device %s", model, f"{n_params:,}", device)
    refiner = Refiner.from_config(model, data.vocab, cfg, device)
    task = RefinementTask(cfg, data, model, refiner)
    floor = -float("inf")
    if cfg.train.floor_metric:
        start = task.validate(-1)  # the starting weights (deterministic: the same on every rank)
        if cfg.train.floor_metric not in start:
            raise ConfigError(f"train.floor_metric {cfg.train.floor_metric!r} is not a validation "
                              f"metric; valid: {sorted(start)}")
        floor = start[cfg.train.floor_metric] - cfg.train.floor_margin
        log.info("guard: stop when %s falls below %.4f (starting weights: %.4f, margin %.4f)",
                 cfg.train.floor_metric, floor, start[cfg.train.floor_metric],
                 cfg.train.floor_margin)
    tcfg = TrainerConfig(
        epochs=cfg.train.epochs, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay,
        grad_clip=cfg.train.grad_clip, monitor=MONITOR[cfg.train.select_on], mode="max",
        patience=cfg.train.patience, floor_metric=cfg.train.floor_metric, floor=floor,
        seed=cfg.train.seed, bf16=cfg.train.bf16, static_graph=cfg.train.static_graph,
        grad_accum_steps=cfg.train.grad_accum_steps, schedule=cfg.train.schedule,
        warmup_steps=cfg.train.warmup_steps, min_lr=cfg.train.min_lr,
    )
    trainer = Trainer(task, tcfg, run_dir, to_dict(cfg), dist_ctx=ctx)
    summary = trainer.fit(resume=resume)
    program_runs = sum(float(r.get("train/program_runs", 0)) for r in trainer.rows)
    log.info("training done in %.0f s: best val %s %.1f%% at epoch %d; %d programs "
             "executed over all ranks and epochs", summary.seconds, MONITOR[cfg.train.select_on],
             summary.best_metric * 100, summary.best_epoch + 1, program_runs)
    out = {"run_dir": str(run_dir), "best": str(summary.best_path), "params": n_params,
           "train_seconds": summary.seconds}
    if do_eval and ctx.master:
        model.load_state_dict(load_checkpoint(summary.best_path)["model"])
        results, json_path, md_path, table = evaluate(
            cfg, model, data, run_dir / "eval", checkpoint=str(summary.best_path), device=device
        )
        out.update(report_md=str(md_path), report_json=str(json_path), table=table,
                   eval_seconds=results["seconds"])
    return out


def with_seed(cfg: ExperimentConfig, seed: int) -> ExperimentConfig:
    """A copy of ``cfg`` with ``train.seed = seed`` (one run of a seed group)."""
    out = copy.deepcopy(cfg)
    out.train.seed = seed
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (see module docstring). Returns the process exit code."""
    ap = experiment_parser("python -m graphrepair.train",
                           "Train a graphrepair refiner and evaluate its best checkpoint.", CONFIG_DIR)
    ap.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    ap.add_argument("--seeds", type=int, metavar="N",
                    help="train N runs, with training seeds train.seed + 0..N-1, one after the other "
                         "in one directory (<run_root>/<exp>-<UTC time>/seed<S>/, or --run-dir), "
                         "and tabulate them: mean and 95%% CI over the seeds")
    args = ap.parse_args(argv)
    setup_logging()
    command = sys.argv if argv is None else ["graphrepair.train", *argv]
    return run_cli(lambda: _main(args, command))


def _main(args, command: list[str]) -> int:
    master = is_master()
    cfg, run_dir, changes = resolve_run(
        args.exp, args.overrides, run_dir=args.run_dir, resume=args.resume, force=args.force,
        data_dir=args.data_dir, master=master, seeds=args.seeds)
    try:
        ctx = init_distributed(cfg.train.device)
        if ctx.ddp:  # the name is stamped with rank 0's clock: every rank must use rank 0's
            name = [str(run_dir)]
            dist.broadcast_object_list(name, src=0)
            run_dir = Path(name[0])
        if ctx.master:
            print(f"experiment {cfg.exp}: {describe(cfg)}")
            print(f"{'seed group' if args.seeds else 'run'} directory: {run_dir}")
        if args.seeds:
            return _train_seeds(cfg, run_dir, args.seeds, do_eval=not args.no_eval, argv=command,
                                master=ctx.master)
        out = run(cfg, run_dir, resume=bool(args.resume), do_eval=not args.no_eval, argv=command,
                  changes=changes)
    finally:
        cleanup_distributed()
    if not ctx.master:
        return 0
    if "table" in out:
        print()
        print(out["table"])
        print(f"report: {out['report_md']}\n        {out['report_json']}")
    print(f"best checkpoint: {out['best']}")
    return 0


def _train_seeds(cfg: ExperimentConfig, group: Path, n: int, *, do_eval: bool, argv: list[str],
                 master: bool) -> int:
    """``--seeds N``: one run per training seed in ``group``, then the group's comparison table."""
    seeds = seed_values(cfg.train.seed, n)
    outs = run_seeds(group, cfg.exp, seeds,
                     lambda seed, run_dir: run(with_seed(cfg, seed), run_dir, do_eval=do_eval, argv=argv),
                     argv=argv, master=master)
    if not master:
        return 0
    for seed, out in zip(seeds, outs):
        print(f"train.seed={seed}: best checkpoint {out['best']}")
    if do_eval:
        md_path, _, md = compare([group], group)
        print()
        print(md)
        print(f"comparison of the {n} seeds: {md_path}")
    else:
        print(f"evaluate each seed, then compare them: python -m graphrepair.compare {group}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
