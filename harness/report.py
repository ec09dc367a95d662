"""The one evaluation reporter: ``report.json`` + ``report.md`` (+ PNG plots), shared by both tracks.

``report.json`` holds a schema version, the creation time, the machine, the git commit, the
resolved configuration and every number of the evaluation (``results``, free-form per track).
``report.md`` holds the same numbers as Markdown tables ready to paste into a paper. Writes are
atomic. The reporter knows nothing about graphs or retrieval: tracks pass tables and results.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import git_commit
from harness.io import atomic_write, atomic_write_json, atomic_write_text

__all__ = ["SCHEMA_VERSION", "Table", "line_plot", "machine_info", "markdown_table", "write_report"]

SCHEMA_VERSION = 1


@dataclass
class Table:
    """A result table.

    Attributes:
        title: heading shown above the table.
        columns: column names.
        rows: one list per row, same length as ``columns``; floats are formatted by ``fmt``.
        caption: a sentence shown under the table (what the numbers are, on what data).
        fmt: format for float cells, e.g. ``"{:.1%}"`` for fractions shown as percentages.
    """

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    caption: str = ""
    fmt: str = "{:.1%}"


def machine_info() -> dict[str, Any]:
    """Hostname-free description of the machine: OS, Python, CPU count, torch and device."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # the reporter itself does not need torch
        info["torch"] = None
    return info


def _cell(value: Any, fmt: str) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else fmt.format(value)
    return str(value)


def markdown_table(table: Table) -> str:
    """Render ``table`` as a GitHub-flavoured Markdown table (with its title and caption).

    Raises:
        ValueError: a row whose length differs from the number of columns.
    """
    for row in table.rows:
        if len(row) != len(table.columns):
            raise ValueError(
                f"table {table.title!r}: row {row!r} has {len(row)} cells, expected {len(table.columns)}"
            )
    lines = [f"### {table.title}", "", "| " + " | ".join(table.columns) + " |",
             "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(_cell(v, table.fmt) for v in row) + " |" for row in table.rows]
    if table.caption:
        lines += ["", table.caption]
    return "\n".join(lines) + "\n"


def line_plot(
    path: str | os.PathLike,
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    x: Sequence[float] | None = None,
) -> Path:
    """Write a PNG line plot of ``series`` (name -> y values) atomically to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, ys in series.items():
        xs = list(x) if x is not None else list(range(len(ys)))
        ax.plot(xs[: len(ys)], list(ys), marker="o", label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)
    return path


def write_report(
    out_dir: str | os.PathLike,
    *,
    title: str,
    results: Mapping[str, Any],
    tables: Sequence[Table],
    config: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    plots: Sequence[str] = (),
) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` into ``out_dir``.

    Args:
        out_dir: directory (created if needed).
        title: report title.
        results: every number of the evaluation (JSON-serialisable; NaN is written as null).
        tables: tables for ``report.md``, in order.
        config: the resolved configuration that produced the numbers.
        notes: paragraphs shown after the title (e.g. "CPU preset, not the full run").
        plots: file names of PNGs in ``out_dir`` to embed in ``report.md``.

    Returns:
        (path of report.json, path of report.md).
    """
    out_dir = Path(out_dir)
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    commit = git_commit()
    payload = {
        "schema_version": SCHEMA_VERSION,
        "title": title,
        "created": created,
        "git_commit": commit,
        "machine": machine_info(),
        "config": dict(config or {}),
        "results": _json_safe(results),
    }
    json_path = atomic_write_json(out_dir / "report.json", payload)
    md = [f"# {title}", "", f"Created {created} from commit `{commit}`.", ""]
    md += [f"{n}\n" for n in notes]
    md += [markdown_table(t) for t in tables]
    md += [f"![{p}]({p})\n" for p in plots]
    md_path = atomic_write_text(out_dir / "report.md", "\n".join(md))
    return json_path, md_path


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj
