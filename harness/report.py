"""The one evaluation reporter: ``report.json`` + ``report.md`` (+ PNG plots), shared by both tracks.

``report.json`` holds a schema version, the creation time, the machine, the git commit, the
resolved configuration and every number of the evaluation (``results``, free-form per track).
``report.md`` holds the same numbers as Markdown tables ready to paste into a paper. Writes are
atomic. The reporter knows nothing about graphs or retrieval: tracks pass tables and results.

Also here, because every track needs them: :func:`mean_ci` (mean and Student-t 95% confidence
interval over seeds) with :func:`ci_cell` to show it; the PNG plots live in :mod:`harness.plots`
and are re-exported here.
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
from harness.io import atomic_write_json, atomic_write_text
from harness.plots import grouped_bar_plot, line_plot, training_curves

__all__ = ["SCHEMA_VERSION", "Table", "ci_cell", "grouped_bar_plot", "line_plot", "machine_info",
           "markdown_table", "mean_ci", "t_quantile_975", "training_curves", "write_report"]

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


# two-sided 95% Student t quantiles t_{0.975, df} for df = 1..30
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042)


def t_quantile_975(df: int) -> float:
    """``t_{0.975}`` of Student's t with ``df`` degrees of freedom (table to 30, then Cornish-Fisher).

    Raises:
        ValueError: ``df < 1``.
    """
    if df < 1:
        raise ValueError(f"Student t needs df >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and half-width of its two-sided 95% confidence interval (Student t over ``values``).

    The interval is ``mean ± t_{0.975, n-1} · s / sqrt(n)`` with ``s`` the sample standard deviation
    (n - 1 in the denominator): the spread over independent seeds, not over programs.

    Args:
        values: one number per seed (NaN values are left out).

    Returns:
        ``(mean, half_width)``; ``half_width`` is ``None`` when fewer than two values are left
        (n = 1 has no interval); ``(nan, None)`` when none is.
    """
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not xs:
        return float("nan"), None
    mean = sum(xs) / len(xs)
    if len(xs) < 2:
        return mean, None
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    return mean, t_quantile_975(len(xs) - 1) * math.sqrt(var / len(xs))


def ci_cell(mean: float, half_width: float | None, *, percent: bool = True, signed: bool = False) -> str:
    """A table cell for a mean with its 95% CI: ``"82.2% ± 1.3"`` (fractions) or ``"+1.9 ± 0.4"``.

    Args:
        mean: the mean; a fraction when ``percent`` (shown as %), else shown as is (e.g. pp).
        half_width: the CI half-width in the same unit, or ``None`` (shown without ``±``).
        percent: show ``mean`` and ``half_width`` multiplied by 100, ``mean`` with a ``%``.
        signed: always show the sign (improvements).
    """
    if mean is None or math.isnan(mean):
        return "n/a"
    scale, unit = (100.0, "%") if percent else (1.0, "")
    text = f"{mean * scale:{'+' if signed else ''}.1f}{unit}"
    if half_width is not None and not math.isnan(half_width):
        text += f" ± {half_width * scale:.1f}"
    return text


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
