"""Prepare an experiment's data: ``python -m jepa.prepare --exp ID [--set K=V ...] [--data-dir DIR] [--force]``.

Stages run in order (:data:`STAGES`), each a function ``stage(cfg, data_dir, force) -> summary``
that skips itself when its output is already there and built from the same configuration:

1. ``corpus``: extract the functions of ``corpus.source`` (the installed distributions found on
   :func:`installed_search_path`, i.e. ``sys.path`` without the working directory, or the
   checkouts in ``corpus.directory``), filter, de-duplicate and split them
   (:func:`jepa.corpus.build.build_corpus`), and write ``corpus.sqlite``
   (:class:`jepa.store.CorpusIndex`) and its summary ``corpus.json`` into the data directory.
   An index built from the same corpus configuration is kept ("cached"); one built from another
   configuration is refused (exit 2) unless ``--force`` rebuilds it.

Teacher states come as a later stage.

The data directory is ``--data-dir`` if given, else ``$JEPA_DATA/<exp>`` when the environment
variable ``JEPA_DATA`` is set, else ``~/.cache/jepa/<exp>``.

Exit codes (:mod:`harness.cli`): 0 done (or cached), 2 bad input (unknown experiment, bad
``--set``, an index of another configuration without ``--force``, a damaged index without
``--force``).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.cli import EXIT_OK, experiment_parser, run_cli, setup_logging
from harness.config import load_experiment, to_dict
from harness.errors import InputError
from harness.io import atomic_write_json
from jepa.config import ExperimentConfig
from jepa.corpus.build import SPLITS, build_corpus
from jepa.corpus.sources import directory_functions, installed_functions, installed_search_path
from jepa.store import CorpusIndex, config_json, rebuild_command

__all__ = ["CONFIG_DIR", "STAGES", "corpus_stage", "data_dir", "format_corpus_summary",
           "main"]

logger = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "jepa"
"""Where ``--exp`` ids live."""

CORPUS_INDEX, CORPUS_SUMMARY = "corpus.sqlite", "corpus.json"


def data_dir(exp: str, given: str | os.PathLike | None = None) -> Path:
    """The data directory: ``given``, else ``$JEPA_DATA/<exp>``, else ``~/.cache/jepa/<exp>``."""
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
        InputError: ``corpus.directory`` is not a folder (directory source).
    """
    c = cfg.corpus
    config = to_dict(c)
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
    if c.source == "installed":
        path = installed_search_path()
        report = installed_functions(cap=c.cap, minimum=c.minimum, path=path)
        versions = _installed_versions(path)
    else:
        try:
            report = directory_functions(c.directory, cap=c.cap, minimum=c.minimum)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        versions = {}
    corpus = build_corpus(report.functions, min_body_lines=c.min_body_lines,
                          max_body_tokens=c.max_body_tokens, fractions=c.fractions, seed=c.seed)
    counts = {"files": report.files, "skipped_files": len(report.skipped),
              "dropped_repositories": dict(report.dropped_repositories),
              "capped_repositories": dict(report.capped_repositories),
              "extracted_functions": len(report.functions),
              "seconds": round(time.perf_counter() - start, 2)}  # extraction + build
    CorpusIndex.write(index_path, corpus, config=config, exp=cfg.exp, counts=counts,
                      source=c.source, versions={r: versions[r] for r in corpus.split_of if r in versions})
    summary = {"exp": cfg.exp, "config": config, **corpus.summary(), **counts,
               "total_seconds": round(time.perf_counter() - start, 2), "index": str(index_path)}
    atomic_write_json(summary_path, summary)
    return {**summary, "cached": False}


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
         else f"time {summary['total_seconds']:.1f} s (extract + build {summary['seconds']:.1f} s)"),
        f"index {summary['index']}",
    ]
    return "\n".join(lines)


Stage = Callable[[ExperimentConfig, Path, bool], dict[str, Any]]

STAGES: dict[str, tuple[Stage, Callable[[dict[str, Any]], str]]] = {
    "corpus": (corpus_stage, format_corpus_summary),
}
"""The stages in the order they run: name -> (stage, the table printed from its summary)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m jepa.prepare``; returns the exit code."""
    ap = experiment_parser("python -m jepa.prepare", "Prepare a jepa experiment's data (corpus index).",
                           CONFIG_DIR, run_dir=False)
    ap.add_argument("--force", action="store_true",
                    help="rebuild the outputs even when they exist (another configuration, damaged)")
    args = ap.parse_args(argv)
    setup_logging()

    def run() -> int:
        if not args.exp:
            raise InputError("--exp is required (see --help for the experiment ids)")
        cfg = load_experiment(ExperimentConfig, CONFIG_DIR, args.exp, args.overrides)
        directory = data_dir(cfg.exp, args.data_dir)
        logger.info("data directory %s", directory)
        for name, (stage, table) in STAGES.items():
            summary = stage(cfg, directory, args.force)
            print(f"[{name}]" + (" cached" if summary.get("cached") else ""))
            print(table(summary))
        return EXIT_OK

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
