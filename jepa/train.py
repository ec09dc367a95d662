"""Train a student for one experiment, then evaluate its best checkpoint on val and test.

Usage::

    python -m jepa.prepare --exp 2_2          # once: corpus + teacher states (never run again here)
    python -m jepa.train --exp 2_2 [--set train.epochs=10 ...] [--data-dir DIR] [--run-dir DIR [--force]]
    python -m jepa.train --resume RUN_DIR [--set train.epochs=N] [--set train.patience=N]
    torchrun --standalone --nproc_per_node=N -m jepa.train --exp 2_2 [...]   # DDP, N ranks

Writes ``runs/<exp>-<UTC time>/`` (or ``--run-dir``): ``config.yaml``, ``run.json``,
``metrics.csv``, ``tb/``, ``last.pt``/``best.pt`` (each with its ``.sha256``) and ``eval/``
(:func:`jepa.evaluate.evaluate_student`: ``report.{json,md}`` and ``predictions.safetensors``).
The checkpoint is chosen by val Rank@10 (``train.patience`` epochs without improvement stop the
run); test is evaluated once, at the end.

Under torchrun every rank reads the states and trains on its slice of each global batch of
``train.batch_size × N`` functions; InfoNCE gathers the targets of all ranks, so each anchor has
``batch_size × N − 1`` in-batch negatives (plus its hard negatives). Rank 0 writes and evaluates.

Exit codes (:mod:`harness.cli`): 0 trained and evaluated, 2 bad input (configuration, run
directory, no prepared data: the message names the ``jepa.prepare`` command), 3 environment.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import torch.distributed as dist

from harness import runs
from harness.checkpoint import load_checkpoint
from harness.cli import experiment_parser, is_master, resolve_device, run_cli, setup_logging
from harness.config import ConfigError, describe, load_experiment, save_resolved, to_dict
from harness.trainer import (
    Trainer,
    TrainerConfig,
    cleanup_distributed,
    init_distributed,
    seed_everything,
)
from jepa.config import ExperimentConfig
from jepa.data import load_student_data
from jepa.evaluate import evaluate_student
from jepa.prepare import CONFIG_DIR, data_dir
from jepa.task import StudentTask, build_model

__all__ = ["EXTENDABLE", "main", "train"]

log = logging.getLogger("jepa.train")

EXTENDABLE = ("train.epochs", "train.patience")


def train(cfg: ExperimentConfig, run_dir: Path, directory: Path, *, resume: bool = False,
          argv: list[str] | None = None, changes: dict | None = None) -> dict:
    """Train ``cfg`` into ``run_dir`` from the prepared data in ``directory``, then evaluate.

    Returns:
        ``run_dir``, ``best`` (checkpoint path), ``params``, ``train_seconds`` and, on rank 0,
        ``report_md`` and ``results``.
    """
    ctx = init_distributed(cfg.train.device)
    seed_everything(cfg.train.seed)
    tokens = cfg.student.name != "mlp"
    data = load_student_data(cfg, directory, signature_tokens=tokens,
                             body_tokens=cfg.loss.token_weight > 0)
    if ctx.master:
        if resume:
            runs.record_resume(run_dir, argv or sys.argv, changes or {}, cfg)
        else:
            save_resolved(cfg, run_dir, argv or sys.argv)
    model = build_model(cfg, data.dim).to(ctx.device)
    n_params = sum(p.numel() for p in model.parameters())
    hard = None
    if cfg.loss.hard_negatives:
        from jepa.negatives import mine_hard_negatives

        hard = mine_hard_negatives(data.targets("train"), data.splits["train"].repositories,
                                   k=cfg.loss.hard_negatives, threshold=cfg.loss.hard_threshold,
                                   body_keys=data.splits["train"].body_ids.numpy())
        log.info("hard negatives: %s", hard.summary())
    task = StudentTask(cfg, data, model, ctx.device, hard_negatives=hard)
    log.info("student %s: %s parameters; %d training functions, %d val, %d test; device %s",
             cfg.student.name, f"{n_params:,}", len(task.rows), len(data.splits["val"]),
             len(data.splits["test"]), ctx.device)
    steps = task.num_train_batches()
    t = cfg.train
    tcfg = TrainerConfig(epochs=t.epochs, lr=t.lr, weight_decay=t.weight_decay, grad_clip=t.grad_clip,
                         monitor="rank@10", mode="max", patience=t.patience, seed=t.seed, bf16=t.bf16, bf16_cpu=t.bf16,
                         schedule="cosine", warmup_steps=t.warmup_epochs * steps,
                         min_lr=t.lr * t.min_lr_ratio)
    trainer = Trainer(task, tcfg, run_dir, to_dict(cfg), dist_ctx=ctx)
    summary = trainer.fit(resume=resume)
    log.info("training done in %.0f s: best val rank@10 %.2f%% at epoch %d", summary.seconds,
             100 * summary.best_metric, summary.best_epoch + 1)
    out = {"run_dir": str(run_dir), "best": str(summary.best_path), "params": n_params,
           "train_seconds": summary.seconds}
    if ctx.master:
        model.load_state_dict(load_checkpoint(summary.best_path)["model"])
        results = evaluate_student(
            cfg, model, data, run_dir / "eval", device=ctx.device, checkpoint=str(summary.best_path),
            notes=[f"Trained {summary.epochs_run} epochs in {summary.seconds:.0f} s; best val "
                   f"Rank@10 at epoch {summary.best_epoch + 1}; {len(task.rows):,} training "
                   f"functions; {n_params:,} parameters."])
        out.update(report_md=str(run_dir / "eval" / "report.md"), results=results)
    return out


def _resolve(args) -> tuple[ExperimentConfig, Path, dict]:
    changes: dict = {}
    if args.resume:
        if args.exp or args.run_dir:
            raise ConfigError(f"--resume {args.resume} continues that run with its own configuration: "
                              "drop --exp and --run-dir")
        path = runs.claim_run_dir(args.resume, resume=True)
        cfg, changes = runs.resume_config(path, ExperimentConfig, args.overrides, EXTENDABLE)
        return cfg, path, changes
    if not args.exp:
        raise ConfigError("--exp is required (or --resume RUN_DIR); see --help for the experiments")
    cfg = load_experiment(ExperimentConfig, CONFIG_DIR, args.exp, args.overrides)
    path = Path(args.run_dir) if args.run_dir else runs.timestamped_run_dir(cfg.run_root, cfg.exp)
    if is_master() or not args.force:
        runs.claim_run_dir(path, force=args.force)
    resolve_device(cfg.train.device)
    return cfg, path, changes


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (see the module docstring); returns the exit code."""
    ap = experiment_parser("python -m jepa.train", "Train a jepa student and evaluate its best checkpoint.",
                           CONFIG_DIR)
    args = ap.parse_args(argv)
    setup_logging()
    command = sys.argv if argv is None else ["jepa.train", *argv]

    def run() -> int:
        cfg, run_dir, changes = _resolve(args)
        try:
            ctx = init_distributed(cfg.train.device)
            if ctx.ddp:  # every rank uses rank 0's (time-stamped) run directory
                name = [str(run_dir)]
                dist.broadcast_object_list(name, src=0)
                run_dir = Path(name[0])
            if ctx.master:
                print(f"experiment {cfg.exp}: {describe(cfg)}")
                print(f"run directory: {run_dir}")
            out = train(cfg, run_dir, data_dir(cfg.data or cfg.exp, args.data_dir),
                        resume=bool(args.resume), argv=command, changes=changes)
        finally:
            cleanup_distributed()
        if ctx.master:
            print()
            print(Path(out["report_md"]).read_text())
            print(f"report: {out['report_md']}")
        return 0

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
