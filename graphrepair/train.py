"""Train a refiner for one experiment, then evaluate its best checkpoint.

Usage::

    python -m graphrepair.train --exp 3d [--set train.epochs=10 --set data.train_samples=200 ...]
                                [--data-dir DIR] [--run-dir DIR] [--resume RUN_DIR] [--no-eval]
    torchrun --standalone --nproc_per_node=N -m graphrepair.train --exp 3d [...]   # DDP, N ranks

Writes ``runs/<exp>-<UTC time>/``: ``config.yaml`` (resolved), ``run.json`` (command line, git
commit), ``metrics.csv``, ``tb/`` (TensorBoard), ``last.pt``, ``best.pt`` and ``eval/report.{json,md}``.

Under torchrun (see :mod:`harness.trainer`) every rank loads the data and trains on its share of
each epoch's samples (``data.train_samples`` is per epoch over all ranks, ``train.batch_size`` per
rank, each rank with its own sandbox workers); rank 0 picks the run directory name (broadcast to
the others), prints, writes every file and runs the final evaluation. An interrupted run continues
with ``--resume RUN_DIR`` (from ``last.pt``, exactly where its last finished epoch left it).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import os
import sys
from pathlib import Path

import numpy as np
import torch.distributed as dist
import yaml

from graphrepair.config import ExperimentConfig, load_config
from graphrepair.data.dataset import draw_training_problems, duplication, prepare
from graphrepair.evaluation.evaluate import evaluate, find_checkpoint
from graphrepair.graphs.vocab import Vocabulary
from graphrepair.loop.refine import Refiner
from graphrepair.loop.training import RefinementTask
from graphrepair.models import build_model, load_weights
from harness.config import ConfigError, available_experiments, from_dict, save_resolved, to_dict
from harness.io import atomic_write_json
from harness.trainer import (
    CheckpointError,
    Trainer,
    TrainerConfig,
    cleanup_distributed,
    init_distributed,
    load_checkpoint,
    seed_everything,
)

__all__ = ["main", "resolve_checkpoint", "run"]

log = logging.getLogger("graphrepair.train")


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


def run(cfg: ExperimentConfig, run_dir: Path, *, resume: bool = False, do_eval: bool = True,
        argv: list[str] | None = None) -> dict:
    """Train (and evaluate) ``cfg`` in ``run_dir``; return a summary dict with paths and the table.

    Under torchrun every rank calls this with the same ``run_dir``; rank 0 alone writes files and
    evaluates (the other ranks return without ``table``/``report_*``).
    """
    ctx = init_distributed(cfg.train.device)
    device = ctx.device
    seed_everything(cfg.train.seed)  # the same initial weights on every rank
    vocab = init = None
    if cfg.train.init_checkpoint:
        init_path = resolve_checkpoint(cfg.train.init_checkpoint, cfg.run_root)
        init = (init_path, load_checkpoint(init_path))
        vocab = Vocabulary.from_dict(init[1]["extra"]["vocab"])
        log.info("initialising from %s (its weights and vocabulary)", init_path)
    if resume:
        vocab = Vocabulary.from_dict(load_checkpoint(run_dir / "last.pt")["extra"]["vocab"])
    data = prepare(cfg, vocab=vocab)  # first: a missing dataset must not leave a run directory
    if ctx.master:
        save_resolved(cfg, run_dir, argv or sys.argv)
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
        load_weights(model, init[1]["model"], str(init[0]))
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
        grad_clip=cfg.train.grad_clip, monitor="repair_accuracy", mode="max",
        patience=cfg.train.patience, floor_metric=cfg.train.floor_metric, floor=floor,
        seed=cfg.train.seed, bf16=cfg.train.bf16,
    )
    summary = Trainer(task, tcfg, run_dir, to_dict(cfg), dist_ctx=ctx).fit(resume=resume)
    log.info(
        "training done in %.0f s: best val repair_accuracy %.1f%% at epoch %d; %d program runs "
        "(%d cache hits)", summary.seconds, summary.best_metric * 100, summary.best_epoch + 1,
        refiner.test_runs, refiner.cache_hits,
    )
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


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (see module docstring). Returns the process exit code."""
    ap = argparse.ArgumentParser(prog="python -m graphrepair.train",
                                 description="Train a graphrepair refiner and evaluate it.")
    ap.add_argument("--exp", help="experiment id, a file stem in configs/graphrepair/")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. --set train.epochs=2 (repeatable)")
    ap.add_argument("--data-dir", help="dataset directory (default: $GRAPHREPAIR_DATA or the cache)")
    ap.add_argument("--run-dir", help="output directory (default: runs/<exp>-<UTC time>)")
    ap.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from last.pt")
    ap.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    args = ap.parse_args(argv)
    master = int(os.environ.get("RANK", 0)) == 0  # torchrun's rank; only rank 0 logs at INFO/prints
    logging.basicConfig(level=logging.INFO if master else logging.WARNING, format="%(message)s")
    try:
        if args.resume:
            run_dir = Path(args.resume)
            cfg = from_dict(ExperimentConfig, yaml.safe_load((run_dir / "config.yaml").read_text()))
        else:
            if not args.exp:
                from graphrepair.config import CONFIG_DIR

                ap.error(f"--exp is required; available: {available_experiments(CONFIG_DIR)}")
            cfg = load_config(args.exp, args.overrides)
            stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
            run_dir = Path(args.run_dir or Path(cfg.run_root) / f"{cfg.exp}-{stamp}")
        if args.data_dir:
            cfg.data.data_dir = args.data_dir
    except (ConfigError, OSError) as exc:
        if master:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        ctx = init_distributed(cfg.train.device)
        if ctx.ddp:  # the name is stamped with rank 0's clock: every rank must use rank 0's
            name = [str(run_dir)]
            dist.broadcast_object_list(name, src=0)
            run_dir = Path(name[0])
        if ctx.master:
            print(f"experiment {cfg.exp}: {cfg.description}")
            print(f"run directory: {run_dir}")
        try:
            out = run(cfg, run_dir, resume=bool(args.resume), do_eval=not args.no_eval,
                      argv=sys.argv if argv is None else ["graphrepair.train", *argv])
        # user-fixable (missing data or checkpoint, bad config, damaged checkpoint): a message;
        # anything else keeps its traceback
        except (FileNotFoundError, ConfigError, CheckpointError) as exc:
            if ctx.master:
                print(f"error: {exc}", file=sys.stderr)
            return 2
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


if __name__ == "__main__":
    raise SystemExit(main())
