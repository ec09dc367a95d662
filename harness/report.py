"""The one evaluation reporter: ``report.json`` + ``report.md`` (+ PNG plots), shared by both tracks.

``report.json`` holds a schema version, the creation time, the machine, the git commit, the
resolved configuration and every number of the evaluation (``results``, free-form per track).
``report.md`` holds the same numbers as Markdown tables ready to paste into a paper. Writes are
atomic. The reporter knows nothing about graphs or retrieval: tracks pass tables and results.

Tables (:class:`Table`) format each column its own way (:class:`Format`: :data:`PERCENT` for
fractions, :data:`NUMBER` for plain numbers such as MRR, :data:`COSINE` for cosines, :data:`POINTS`
for differences in percentage points) and say which interval their cells show
(:class:`Interval`, rendered under the table). Cells may be numbers, text or :class:`Estimate`
(a value with its interval).

The intervals are computed in :mod:`harness.stats` (Student t over seeds, bootstrap over items;
re-exported here) and shown with :func:`ci_cell` or as ``Estimate(mean, half_width=...)``. The PNG
plots live in :mod:`harness.plots` and are re-exported here.
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
from harness.stats import (
    BOOTSTRAP_METHOD,
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    Estimate,
    bootstrap_ci,
    mean_ci,
    paired_bootstrap_ci,
    t_quantile_975,
)

__all__ = ["BOOTSTRAP_METHOD", "BOOTSTRAP_RESAMPLES", "BOOTSTRAP_SEED", "COSINE", "NUMBER", "PERCENT",
           "POINTS", "SCHEMA_VERSION", "Estimate", "Format", "Interval", "Table", "bootstrap_ci",
           "ci_cell", "grouped_bar_plot", "line_plot", "machine_info", "markdown_table", "mean_ci",
           "paired_bootstrap_ci", "t_quantile_975", "training_curves", "write_report"]

SCHEMA_VERSION = 1

@dataclass(frozen=True)
class Format:
    """How a number is shown in a table cell: ``scale``, ``decimals``, ``unit``, sign.

    ``Format(scale=100, decimals=1, unit="%")(0.8224) == "82.2%"``. An interval is shown in the
    scaled unit without repeating it: ``"82.2% ± 1.3"`` (half-width, Student t) or
    ``"82.2% [80.9, 83.5]"`` (bounds, bootstrap).

    Attributes:
        scale: the value is multiplied by this before it is shown (100 for fractions as %).
        decimals: digits after the decimal point.
        unit: text after the value (``"%"``, ``" pp"``, ``""``).
        signed: always show the sign (differences, improvements); bounds are signed too.
    """

    scale: float = 1.0
    decimals: int = 3
    unit: str = ""
    signed: bool = False

    def number(self, value: float, *, signed: bool | None = None) -> str:
        """``value`` scaled and rounded, without the unit (``"n/a"`` for None or NaN)."""
        if value is None or math.isnan(value):
            return "n/a"
        sign = "+" if (self.signed if signed is None else signed) else ""
        return f"{value * self.scale:{sign}.{self.decimals}f}"

    def __call__(self, value: float) -> str:
        """``value`` with its unit: ``"82.2%"``; ``"n/a"`` for None or NaN."""
        text = self.number(value)
        return text if text == "n/a" else text + self.unit

    def ci(self, value: float, half_width: float | None) -> str:
        """``"82.2% ± 1.3"``; without the ``±`` part when ``half_width`` is None or NaN."""
        text = self(value)
        if text == "n/a" or half_width is None or math.isnan(half_width):
            return text
        return f"{text} ± {self.number(half_width, signed=False)}"

    def interval(self, value: float, low: float | None, high: float | None) -> str:
        """``"82.2% [80.9, 83.5]"``; without the bounds when either is None or NaN."""
        text = self(value)
        if text == "n/a" or any(b is None or math.isnan(b) for b in (low, high)):
            return text
        return f"{text} [{self.number(low)}, {self.number(high)}]"


PERCENT = Format(scale=100.0, decimals=1, unit="%")
"""A fraction in [0, 1] shown as a percentage: ``0.8224 -> "82.2%"`` (accuracies, Rank@k)."""
NUMBER = Format(decimals=3)
"""A plain number with 3 decimals: ``0.41237 -> "0.412"`` (MRR, losses)."""
COSINE = Format(decimals=3)
"""A cosine similarity in [-1, 1] with 3 decimals: ``0.8 -> "0.800"``."""
POINTS = Format(decimals=1, unit=" pp", signed=True)
"""A difference already in percentage points, signed: ``1.94 -> "+1.9 pp"``."""


def _plural_to_singular(noun: str) -> str:
    if noun.endswith("ies"):
        return noun[:-3] + "y"
    return noun[:-1] if noun.endswith("s") else noun


@dataclass(frozen=True)
class Interval:
    """Which interval a table's cells show, and over what; rendered under the table.

    Build one with :meth:`student_t` (over seeds / runs) or :meth:`bootstrap` (over items).

    Attributes:
        method: ``"student_t"``, ``"bootstrap"`` or ``"paired_bootstrap"``.
        n: the number of seeds or items behind each cell; a tuple when the rows differ (e.g. runs
            with different seed counts in one comparison).
        over: what was resampled or repeated, plural (``"seeds"``, ``"programs"``, ``"queries"``).
        detail: how, e.g. ``"percentile, 9999 resamples, seed 0"``.
    """

    method: str
    n: int | tuple[int, ...]
    over: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.method not in ("student_t", "bootstrap", "paired_bootstrap"):
            raise ValueError(f"unknown interval method {self.method!r}; expected 'student_t', "
                             f"'bootstrap' or 'paired_bootstrap'")

    @classmethod
    def student_t(cls, n: int | Sequence[int], over: str = "seeds") -> Interval:
        """Mean ± Student-t 95% half-width over ``n`` seeds (:func:`mean_ci`)."""
        return cls("student_t", n if isinstance(n, int) else tuple(sorted(set(n))), over)

    @classmethod
    def bootstrap(cls, n: int, over: str, *, paired: bool = False,
                  n_resamples: int = BOOTSTRAP_RESAMPLES, method: str = BOOTSTRAP_METHOD,
                  seed: int = BOOTSTRAP_SEED) -> Interval:
        """A 95% bootstrap interval over ``n`` items (:func:`bootstrap_ci` /
        :func:`paired_bootstrap_ci`, with the same settings)."""
        return cls("paired_bootstrap" if paired else "bootstrap", n, over,
                   f"{method}, {n_resamples} resamples, seed {seed}")

    def __str__(self) -> str:
        ns = (self.n,) if isinstance(self.n, int) else tuple(self.n)
        if not ns or max(ns) < 2:
            shown = "/".join(map(str, ns)) or "0"
            noun = _plural_to_singular(self.over) if ns == (1,) else self.over
            return f"n={shown} {noun}: no confidence interval"
        n_text = f"n={'/'.join(str(n) for n in ns if n >= 2)}"
        if self.method == "student_t":
            text = f"mean ± 95% CI, Student t over {n_text} {self.over}"
            return text + ("; none where n=1" if min(ns) < 2 else "")
        kind = "paired bootstrap" if self.method == "paired_bootstrap" else "bootstrap"
        text = f"95% CI [low, high], {kind} over {n_text} {self.over}"
        if self.method == "paired_bootstrap":
            text += " (the same resampled items for both rows compared"
            text += f"; {self.detail})" if self.detail else ")"
        elif self.detail:
            text += f" ({self.detail})"
        return text


@dataclass
class Table:
    """A result table.

    Attributes:
        title: heading shown above the table.
        columns: column names.
        rows: one list per row, same length as ``columns``; a cell is text (shown as is), an int,
            a float (formatted by its column's format) or an :class:`Estimate`.
        caption: a sentence shown under the table (what the numbers are, on what data).
        fmt: the format of every column not in ``formats``: a :class:`Format` or a ``str.format``
            pattern such as ``"{:.1%}"``.
        formats: column name -> its format (e.g. ``{"MRR": NUMBER, "cosine": COSINE}``).
        interval: what the table's intervals are (:class:`Interval`), shown under the table;
            ``None`` for a table without intervals.
    """

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    caption: str = ""
    fmt: Format | str = PERCENT
    formats: Mapping[str, Format | str] = field(default_factory=dict)
    interval: Interval | None = None


# two-sided 95% Student t quantiles t_{0.975, df} for df = 1..30 (the published 3-decimal table)
def ci_cell(mean: float, half_width: float | None, *, percent: bool = True, signed: bool = False) -> str:
    """A table cell for a mean with its 95% CI: ``"82.2% ± 1.3"`` (fractions) or ``"+1.9 ± 0.4"``.

    Args:
        mean: the mean; a fraction when ``percent`` (shown as %), else shown as is (e.g. pp).
        half_width: the CI half-width in the same unit, or ``None`` (shown without ``±``).
        percent: show ``mean`` and ``half_width`` multiplied by 100, ``mean`` with a ``%``.
        signed: always show the sign (improvements).
    """
    fmt = Format(scale=100.0, decimals=1, unit="%", signed=signed) if percent else \
        Format(decimals=1, signed=signed)
    return fmt.ci(mean, half_width)


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


def _cell(value: Any, fmt: Format | str) -> str:
    if isinstance(value, Estimate):
        if not isinstance(fmt, Format):
            raise ValueError(f"an Estimate cell needs a Format column format, got {fmt!r}")
        return value.render(fmt)
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return fmt(value) if isinstance(fmt, Format) else fmt.format(value)
    return str(value)


def markdown_table(table: Table) -> str:
    """Render ``table`` as a GitHub-flavoured Markdown table (with its title, interval and caption).

    Raises:
        ValueError: a row whose length differs from the number of columns, a ``formats`` entry
            for a column the table does not have, or an :class:`Estimate` in a column whose format
            is a plain pattern.
    """
    for row in table.rows:
        if len(row) != len(table.columns):
            raise ValueError(
                f"table {table.title!r}: row {row!r} has {len(row)} cells, expected {len(table.columns)}"
            )
    unknown = [c for c in table.formats if c not in table.columns]
    if unknown:
        raise ValueError(f"table {table.title!r}: formats given for unknown columns {unknown}; "
                         f"columns are {table.columns}")
    fmts = [table.formats.get(c, table.fmt) for c in table.columns]
    lines = [f"### {table.title}", "", "| " + " | ".join(table.columns) + " |",
             "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(_cell(v, f) for v, f in zip(row, fmts)) + " |" for row in table.rows]
    if table.interval is not None:
        lines += ["", f"Intervals: {table.interval}."]
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
        results: every number of the evaluation (JSON-serialisable; NaN is written as null, an
            :class:`Estimate` as ``{"value", "low", "high"}``).
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
    if isinstance(obj, Estimate):
        return _json_safe(obj.to_dict())
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj
