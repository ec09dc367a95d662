"""Prepare an experiment's data: ``python -m jepa.prepare --exp ID [--set K=V ...] [--data-dir DIR] [--force]``.

Stages run in order (:data:`STAGES`), each a function ``stage(cfg, data_dir, force, dist) -> summary``
that skips itself when its output is already there and built from the same configuration:

1. ``corpus``: extract the functions of ``corpus.source`` (the installed distributions found on
   :func:`installed_search_path`, i.e. ``sys.path`` without the working directory, the
   checkouts in ``corpus.directory`` (with each function's churn, :mod:`jepa.corpus.churn`, in
   the checkouts that are git repositories), or the pinned list ``corpus.packages`` of PyPI
   distributions, downloaded once into ``$JEPA_PYPI_CACHE`` (else ``<data directory>/pypi/``; data
   directories of the same list can share one) with each file's SHA-256
   recorded in the index's counts as ``pypi_files``), filter, de-duplicate and split them
   (:func:`jepa.corpus.build.build_corpus`), and write ``corpus.sqlite``
   (:class:`jepa.store.CorpusIndex`) and its summary ``corpus.json`` into the data directory.
   An index built from the same corpus configuration is kept ("cached"); one built from another
   configuration is refused (exit 2) unless ``--force`` rebuilds it.

2. ``teacher``: load the teacher (``teacher`` section, :mod:`jepa.teacher`), compute the states
   of every function of every split that the state store lacks (:mod:`jepa.teacher.extract`),
   into ``states/<model>-layer<i>-<key>/`` (:mod:`jepa.store.states`), and write ``states.json``.
   Resumable: a killed run continues where it stopped; damaged shards are recomputed; ``--force``
   starts the state set over. Under ``torchrun --nproc_per_node=N`` rank 0 builds the corpus and
   every rank computes its share of the shards.

``--skip STAGE`` leaves a stage out (e.g. ``--skip teacher`` builds the corpus alone).

The data directory is ``--data-dir`` if given, else ``$JEPA_DATA/<exp>`` when the environment
variable ``JEPA_DATA`` is set, else ``~/.cache/jepa/<exp>``.

Exit codes (:mod:`harness.cli`): 0 done (or cached), 2 bad input (unknown experiment, bad
``--set``, an index of another configuration without ``--force``, a damaged index without
``--force``).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.cli import EXIT_OK, experiment_parser, resolve_device, run_cli, setup_logging
from harness.config import load_experiment, to_dict
from harness.distributed import DistContext, cleanup_distributed, init_distributed
from harness.errors import InputError
from harness.io import atomic_write_json, file_sha256
from jepa.config import ExperimentConfig
from jepa.corpus.build import SPLITS, build_corpus
from jepa.corpus.churn import function_churn, is_git_checkout
from jepa.corpus.extract import Function
from jepa.corpus.pypi import archive_functions, download, read_pins
from jepa.corpus.sources import directory_functions, installed_functions, installed_search_path
from jepa.store import (
    CorpusIndex,
    StateSpec,
    StateStore,
    StoreError,
    config_json,
    function_key,
    rebuild_command,
)
from jepa.store.states import TOKEN_PARTS
from jepa.teacher.extract import extract_states, state_spec
from jepa.teacher.model import Teacher

__all__ = ["CONFIG_DIR", "STAGES", "corpus_stage", "data_dir", "experiment_spec",
           "format_corpus_summary", "format_teacher_summary", "load_teacher", "main", "open_states",
           "teacher_stage"]

logger = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "jepa"
"""Where ``--exp`` ids live."""

CORPUS_INDEX, CORPUS_SUMMARY = "corpus.sqlite", "corpus.json"
STATES, STATES_SUMMARY = "states", "states.json"


def data_dir(exp: str, given: str | os.PathLike | None = None) -> Path:
    """The data directory: ``given``, else ``$JEPA_DATA/<exp>``, else ``~/.cache/jepa/<exp>``
    (``exp``: the experiment's ``data`` name, else its id)."""
    if given:
        return Path(given).expanduser()
    root = os.environ.get("JEPA_DATA")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "jepa") / exp


def _installed_versions(path: Sequence[str]) -> dict[str, str]:
    """Normalised distribution name -> version, first found on ``path`` (as the source takes it)."""
    import re
    from importlib import metadata

    out: dict[str, str] = {}
    for dist in metadata.distributions(path=list(path)):
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
        if name and name not in out:
            out[name] = dist.version
    return out


def _config_difference(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


def corpus_stage(cfg: ExperimentConfig, directory: Path, force: bool = False) -> dict[str, Any]:
    """Build ``corpus.sqlite`` and ``corpus.json`` in ``directory``, or keep the cached ones.

    Args:
        cfg: the experiment configuration (its ``corpus`` section is used).
        directory: the data directory.
        force: rebuild even when an index of the same configuration, another configuration or a
            damaged index is there.

    Returns:
        The summary (as written to ``corpus.json``) with ``"cached": True/False``.

    Raises:
        InputError: an index built from another corpus configuration, without ``force``.
        StoreError: a damaged index, without ``force``.
        InputError: ``corpus.directory`` is not a folder (directory source); a bad pinned list or
            a damaged download cache (pypi source).
        EnvironmentProblem: pip could not download a pin (pypi source).
    """
    c = cfg.corpus
    config = to_dict(c)
    if c.source == "pypi":  # an edited list is another corpus, even under the same file name
        config["packages_sha256"] = file_sha256(CONFIG_DIR / c.packages)
    index_path, summary_path = directory / CORPUS_INDEX, directory / CORPUS_SUMMARY
    if index_path.exists() and not force:
        with CorpusIndex.open(index_path, exp=cfg.exp) as index:
            stored = index.stored_config_json()
            meta = index.meta()
        if stored != config_json(config):
            raise InputError(
                f"{index_path} was built from another corpus configuration "
                f"({_config_difference(meta['config'], config)}); rebuild it with "
                f"`{rebuild_command(cfg.exp)}` (add your --set options), or give another --data-dir")
        logger.info("corpus: cached, %s holds this configuration", index_path)
        summary = {"exp": cfg.exp, "config": config, **meta["counts"], "index": str(index_path)}
        if not summary_path.is_file():
            atomic_write_json(summary_path, summary)
        return {**summary, "cached": True}

    start = time.perf_counter()
    extra: dict[str, Any] = {}
    if c.source == "installed":
        path = installed_search_path()
        report = installed_functions(cap=c.cap, minimum=c.minimum, path=path)
        versions = _installed_versions(path)
    elif c.source == "directory":
        try:
            report = directory_functions(c.directory, cap=c.cap, minimum=c.minimum)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        versions = {}
    else:  # pypi
        t0 = time.perf_counter()
        cache = Path(os.environ.get("JEPA_PYPI_CACHE") or directory / "pypi")  # shareable
        archives = download(read_pins(CONFIG_DIR / c.packages), cache)
        extra["download_seconds"] = round(time.perf_counter() - t0, 2)
        report = archive_functions(archives, cap=c.cap, minimum=c.minimum)
        versions = {a.pin.repository: a.pin.version for a in archives}
        extra["pypi_files"] = {a.pin.repository: a.record() for a in archives}
    corpus = build_corpus(report.functions, min_body_lines=c.min_body_lines,
                          max_body_tokens=c.max_body_tokens, fractions=c.fractions, seed=c.seed)
    counts = {"files": report.files, "skipped_files": len(report.skipped),
              "dropped_repositories": dict(report.dropped_repositories),
              "capped_repositories": dict(report.capped_repositories),
              "extracted_functions": len(report.functions),
              # extraction + build (downloads apart)
              "seconds": round(time.perf_counter() - start - extra.get("download_seconds", 0), 2),
              **extra}
    churn = _churn(Path(c.directory), corpus.functions) if c.source == "directory" else None
    if churn is not None:
        counts["churn_functions"] = sum(x is not None for x in churn)
    CorpusIndex.write(index_path, corpus, config=config, exp=cfg.exp, counts=counts,
                      source=c.source, versions={r: versions[r] for r in corpus.split_of if r in versions},
                      churn=churn)
    summary = {"exp": cfg.exp, "config": config, **corpus.summary(), **counts,
               "total_seconds": round(time.perf_counter() - start, 2), "index": str(index_path)}
    atomic_write_json(summary_path, summary)
    return {**summary, "cached": False}


def _churn(root: Path, functions: Sequence[Function]) -> list[int | None]:
    """Churn of every function (:func:`jepa.corpus.churn.function_churn`), one git checkout per
    repository folder of ``root``; ``None`` for repositories without git history."""
    by_repo: dict[str, list[int]] = {}
    for i, f in enumerate(functions):
        by_repo.setdefault(f.repository, []).append(i)
    out: list[int | None] = [None] * len(functions)
    for repo, rows in by_repo.items():
        if is_git_checkout(root / repo):
            start = time.perf_counter()
            for i, value in zip(rows, function_churn(root / repo, [functions[i] for i in rows])):
                out[i] = value
            logger.info("churn of %s: %d functions in %.1f s", repo, len(rows), time.perf_counter() - start)
    return out


def format_corpus_summary(summary: dict[str, Any]) -> str:
    """A plain-text table of a corpus summary: per split repositories and functions, then the counts."""
    lines = [f"{'split':<8}{'repositories':>14}{'functions':>12}"]
    for s in SPLITS:
        row = summary["splits"][s]
        lines.append(f"{s:<8}{row['repositories']:>14,}{row['functions']:>12,}")
    lines.append(f"{'total':<8}{summary['repositories']:>14,}{summary['functions']:>12,}")
    lines += [
        f"duplicates removed {summary['duplicates_removed']:,} "
        f"(within {summary['duplicates_within']:,}, across {summary['duplicates_across']:,})",
        f"filtered {summary['filtered_short'] + summary['filtered_long']:,} "
        f"(short {summary['filtered_short']:,}, long {summary['filtered_long']:,})",
        f"skipped files {summary.get('skipped_files', 0):,} of {summary.get('files', 0):,}; "
        f"dropped repositories {len(summary.get('dropped_repositories', {})):,}",
        (f"cached (built earlier in {summary.get('seconds', 0):.1f} s)" if summary.get("cached")
         else f"time {summary['total_seconds']:.1f} s (extract + build {summary['seconds']:.1f} s"
              + (f", download {summary['download_seconds']:.1f} s" if "download_seconds" in summary
                 else "") + ")"),
        f"index {summary['index']}",
    ]
    return "\n".join(lines)


def load_teacher(cfg: ExperimentConfig, device: str | None = None) -> Teacher:
    """The experiment's teacher (:class:`jepa.teacher.model.Teacher`), on ``device`` or
    ``teacher.device``."""
    t = cfg.teacher
    return Teacher.load(t.model, layer=t.layer, kind=t.kind, dtype=t.dtype,
                        device=resolve_device(device or t.device), gguf_file=t.gguf_file,
                        sha256=t.sha256, revision=t.revision or None)


def experiment_spec(cfg: ExperimentConfig, teacher: Teacher) -> StateSpec:
    """The :class:`StateSpec` of the experiment's teacher reading (``teacher`` and ``store``)."""
    return state_spec(teacher, max_signature_tokens=cfg.teacher.max_signature_tokens,
                      max_body_tokens=cfg.teacher.max_body_tokens, tokens=cfg.store.tokens,
                      token_dtype=cfg.store.token_dtype)


def open_states(cfg: ExperimentConfig, directory: Path, teacher: Teacher, *,
                create: bool = False) -> StateStore:
    """The state set of the experiment's teacher reading under ``directory/states``.

    Raises:
        StoreError: no such state set (``create=False``) or a damaged index.
    """
    return StateStore.open(directory / STATES, experiment_spec(cfg, teacher), create=create,
                           rebuild=f"python -m jepa.prepare --exp {cfg.exp}")


def teacher_stage(cfg: ExperimentConfig, directory: Path, force: bool = False,
                  dist: DistContext | None = None) -> dict[str, Any]:
    """Compute the teacher states of every function of the corpus (all splits) into the store.

    Resumable: shards already stored are kept, damaged ones (:meth:`StateStore.drop_damaged`)
    are recomputed; ``force`` deletes the state set first. Under torchrun every rank computes its
    share of the shards.

    Returns:
        The summary of :func:`jepa.teacher.extract.extract_states` and of the store, with
        ``"cached": True`` when nothing had to be computed.

    Raises:
        StoreError: a missing or damaged corpus index or state index (without ``force``).
        TeacherError, EnvironmentProblem: see :meth:`Teacher.load`.
    """
    dist = dist or DistContext()
    with CorpusIndex.open(directory / CORPUS_INDEX, exp=cfg.exp) as index:
        functions = [f for split in SPLITS for f in index.functions(split)]
    held = None if force else _held_elsewhere(cfg, directory, functions)
    if held is not None:
        return held
    teacher = load_teacher(cfg, str(dist.device) if dist.ddp else None)
    if force and dist.master:
        shutil.rmtree(directory / STATES / experiment_spec(cfg, teacher).dirname, ignore_errors=True)
    _barrier(dist)
    with open_states(cfg, directory, teacher, create=True) as store:
        if dist.master:
            store.drop_damaged()
        _barrier(dist)
        summary = extract_states(teacher, functions, store, shard_size=cfg.store.shard_size,
                                 batch_size=cfg.teacher.batch_size, rank=dist.rank,
                                 world_size=dist.world_size, progress=dist.master)
        if dist.ddp:  # every rank's share, summed
            import torch
            import torch.distributed

            counts = torch.tensor([summary["computed"], summary["reused"]], dtype=torch.float64)
            torch.distributed.all_reduce(counts)
            seconds = torch.tensor([summary["seconds"]], dtype=torch.float64)
            torch.distributed.all_reduce(seconds, op=torch.distributed.ReduceOp.MAX)
            summary["computed"], summary["reused"] = (int(x) for x in counts.tolist())
            summary["seconds"] = seconds.item()
            summary["functions_per_s"] = (round(summary["computed"] / summary["seconds"], 1)
                                          if summary["computed"] and summary["seconds"] else None)
        summary.update({"teacher": repr(teacher), "ranks": dist.world_size,
                        "store": store.summary(), "cached": summary["computed"] == 0})
    if dist.master:
        atomic_write_json(directory / STATES_SUMMARY, summary)
    return summary


def _held_elsewhere(cfg: ExperimentConfig, directory: Path,
                    functions: Sequence[Function]) -> dict[str, Any] | None:
    """The summary of another complete, undamaged state set of this teacher reading that keeps at
    least the configured per-token states (e.g. ``all`` where ``signature`` is asked), or ``None``."""
    from jepa.data import find_state_set

    try:
        spec = find_state_set(cfg, directory, TOKEN_PARTS[cfg.store.tokens])
    except StoreError:
        return None
    if spec.tokens == cfg.store.tokens:  # the configured set itself: the normal path checks it
        return None
    with StateStore.open(directory / STATES, spec, create=False) as store:
        if store.missing([function_key(f.signature, f.body) for f in functions]) or store.verify():
            return None
        summary = store.summary()
    logger.info("teacher: cached, %s holds every function's states", summary["directory"])
    return {"teacher": f"{spec.model} layer {spec.layer} (store.tokens={spec.tokens})",
            "functions": len(functions), "shards": summary["shards"], "computed": 0,
            "reused": len(functions), "store": summary, "cached": True}


def format_teacher_summary(summary: dict[str, Any]) -> str:
    """A plain-text summary of the teacher stage: the teacher, counts, throughput and the store."""
    rate = summary.get("functions_per_s")
    return "\n".join([
        summary["teacher"],
        f"functions {summary['functions']:,} in {summary['shards']:,} shards; computed "
        f"{summary['computed']:,}" + (f" in {summary['seconds']:.1f} s ({rate:,.1f} functions/s"
                                      + (f", {summary['ranks']} ranks" if summary.get("ranks", 1) > 1
                                         else "") + ")" if rate else "")
        + f", reused {summary['reused']:,}",
        f"store {summary['store']['directory']} ({summary['store']['functions']:,} functions, "
        f"{summary['store']['bytes'] / 2**20:,.1f} MiB)",
    ])


def _barrier(dist: DistContext) -> None:
    if dist.ddp:
        import torch.distributed

        torch.distributed.barrier()


Stage = Callable[[ExperimentConfig, Path, bool, DistContext], dict[str, Any]]

STAGES: dict[str, tuple[Stage, Callable[[dict[str, Any]], str]]] = {
    "corpus": (lambda cfg, d, force, dist: corpus_stage(cfg, d, force), format_corpus_summary),
    "teacher": (teacher_stage, format_teacher_summary),
}
"""The stages in the order they run: name -> (stage, the table printed from its summary)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m jepa.prepare``; returns the exit code."""
    ap = experiment_parser("python -m jepa.prepare", "Prepare a jepa experiment's data (corpus index).",
                           CONFIG_DIR, run_dir=False)
    ap.add_argument("--force", action="store_true",
                    help="rebuild the outputs even when they exist (another configuration, damaged)")
    ap.add_argument("--skip", nargs="+", default=[], choices=list(STAGES), metavar="STAGE",
                    help=f"stages not to run (of {', '.join(STAGES)})")
    args = ap.parse_args(argv)
    setup_logging()

    def run() -> int:
        if not args.exp:
            raise InputError("--exp is required (see --help for the experiment ids)")
        cfg = load_experiment(ExperimentConfig, CONFIG_DIR, args.exp, args.overrides)
        directory = data_dir(cfg.data or cfg.exp, args.data_dir)
        logger.info("data directory %s", directory)
        dist = init_distributed(cfg.teacher.device)
        try:
            for name, (stage, table) in STAGES.items():
                if name in args.skip:
                    continue
                if name == "corpus" and not dist.master:  # rank 0 builds it; the others wait
                    _barrier(dist)
                    continue
                summary = stage(cfg, directory, args.force, dist)
                if name == "corpus":
                    _barrier(dist)
                if dist.master:
                    print(f"[{name}]" + (" cached" if summary.get("cached") else ""))
                    print(table(summary))
        finally:
            cleanup_distributed()
        return EXIT_OK

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
