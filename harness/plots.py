"""PNG plots for reports: lines with confidence bands, grouped bars, a run's training curves.

Every plot is written atomically (:func:`harness.io.atomic_write`) with matplotlib's Agg backend,
imported on first use (no work at import time). Re-exported by :mod:`harness.report`.

Conventions shared by every plot (so a figure pasted into a paper cannot mislead):

* an interval is drawn only where one exists: a point or bar whose error is ``None`` (n = 1) gets
  no band, no error bar and no cap;
* a y axis whose range does not include 0 says so in its label (``"(axis zoomed: starts at
  0.45)"`` on a second line, :func:`zoom_note`), so small differences are not read as large ones;
* legends sit outside the axes (right of a line plot, below bars and training curves) and never
  cover data;
* x axes of iterations and epochs have integer ticks.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.io import atomic_write

__all__ = ["grouped_bar_plot", "line_plot", "training_curves", "zoom_note"]


def zoom_note(low: float, high: float) -> str:
    """What a y label adds when its axis runs from ``low`` to ``high`` (data units) without 0.

    Returns:
        ``""`` when 0 lies in ``[low, high]``; else ``"(axis zoomed: starts at 0.45)"`` (all
        positive) or ``"(axis zoomed: ends at -0.1)"`` (all negative), the bound with 2
        significant digits.
    """
    if low > 0:
        return f"(axis zoomed: starts at {low:.2g})"
    if high < 0:
        return f"(axis zoomed: ends at {high:.2g})"
    return ""


def _label_y(ax, label: str) -> None:
    """Set ``ax``'s y label, with :func:`zoom_note` of its current limits on a second line."""
    note = zoom_note(*ax.get_ylim())
    ax.set_ylabel(f"{label}\n{note}" if note else label)


def line_plot(
    path: str | os.PathLike,
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    x: Sequence[float] | None = None,
    errors: Mapping[str, Sequence[float | None]] | None = None,
    styles: Mapping[str, str] | None = None,
    colors: Mapping[str, str] | None = None,
) -> Path:
    """Write a PNG line plot of ``series`` (name -> y values) atomically to ``path``.

    The legend sits right of the axes; the y label gets :func:`zoom_note` when the axis does not
    include 0.

    Args:
        path: the PNG file.
        series: name -> y values (x = 0, 1, ... with integer ticks unless ``x`` is given);
            ``None`` = no point.
        title, xlabel, ylabel: labels.
        x: shared x values.
        errors: name -> CI half-widths per point, in the unit of y, drawn as a shaded band; ``None``
            (n = 1) = no band at that point.
        styles: name -> matplotlib line style (``"--"`` for baselines); default solid.
        colors: name -> colour group (any hashable label); series of one group share a colour
            (e.g. a model and its feedback-zeroed baseline at one corruption level). Default:
            one colour per series.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    groups = list(dict.fromkeys((colors or {}).get(name, name) for name in series))
    for name, ys in series.items():
        xs = list(x) if x is not None else list(range(len(ys)))
        xs, ys = xs[: len(ys)], [float("nan") if y is None else float(y) for y in ys]
        colour = cycle[groups.index((colors or {}).get(name, name)) % len(cycle)]
        (line,) = ax.plot(xs, ys, (styles or {}).get(name, "-"), marker="o", label=name,
                          color=colour)
        err = (errors or {}).get(name)
        if err and any(e is not None for e in err):
            hw = [float("nan") if e is None else float(e) for e in err][: len(ys)]
            ax.fill_between(xs, [y - e for y, e in zip(ys, hw)], [y + e for y, e in zip(ys, hw)],
                            color=line.get_color(), alpha=0.15, linewidth=0)
    if x is None:  # indices (iterations, epochs): integer ticks
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    _label_y(ax, ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return _save(fig, path, bbox_inches="tight")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike, **savefig: object) -> Path:
    """Lay out, write ``fig`` as PNG atomically to ``path`` (``savefig``: extra savefig options), close it."""
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, format="png", **savefig))
    _pyplot().close(fig)
    return path


def grouped_bar_plot(
    path: str | os.PathLike,
    panels: Mapping[str, Mapping[str, Mapping[str, tuple[float, float | None]]]],
    *,
    title: str,
    ylabel: str,
    hlines: Mapping[str, Mapping[str, float]] | None = None,
) -> Path:
    """Write a PNG of grouped bars, one panel per key of ``panels``, atomically to ``path``.

    Bars start at 0. Error bars (with caps) are drawn only for bars whose half-width is not
    ``None``; the legend sits below the panels.

    Args:
        path: the PNG file.
        panels: panel title -> group (x tick label) -> bar name -> (value, CI half-width or None).
            Bars with the same name share a colour across groups and panels; a value ``None``
            draws no bar.
        title: figure title; ylabel: y axis label of the first panel.
        hlines: panel title -> label -> y of a dashed horizontal reference line (baselines).

    Raises:
        ValueError: ``panels`` is empty.
    """
    if not panels:
        raise ValueError("grouped_bar_plot needs at least one panel")
    plt = _pyplot()
    bar_names = list(dict.fromkeys(b for groups in panels.values() for bars in groups.values() for b in bars))
    n_groups = max(len(g) for g in panels.values())
    fig, axes = plt.subplots(1, len(panels), figsize=(max(6, 1.2 * n_groups * len(panels) + 2), 4.5),
                             dpi=120, sharey=True, squeeze=False)
    width = 0.8 / max(len(bar_names), 1)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (panel, groups) in zip(axes[0], panels.items()):
        for j, bar in enumerate(bar_names):
            xs = [i + (j - (len(bar_names) - 1) / 2) * width for i in range(len(groups))]
            vals = [groups[g].get(bar, (None, None)) for g in groups]
            ys = [float("nan") if v is None else v for v, _ in vals]
            ax.bar(xs, ys, width, label=bar, color=colours[j % len(colours)])
            with_err = [(xi, y, e) for xi, y, (_, e) in zip(xs, ys, vals)
                        if e is not None and not math.isnan(e) and not math.isnan(y)]
            if with_err:
                ex, ey, ee = zip(*with_err)
                ax.errorbar(ex, ey, yerr=ee, fmt="none", ecolor="black", elinewidth=1, capsize=2)
        for k, (label, y) in enumerate((hlines or {}).get(panel, {}).items()):
            if y is None or math.isnan(y):
                continue
            ax.axhline(y, linestyle="--", linewidth=1, color=colours[(len(bar_names) + k) % len(colours)],
                       label=label)
        ax.set_xticks(range(len(groups)), list(groups), rotation=20, ha="right", fontsize="small")
        ax.set_title(panel)
        ax.grid(axis="y", alpha=0.3)
    _label_y(axes[0][0], ylabel)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:  # reference lines that exist only in later panels
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.suptitle(title)
    fig.tight_layout()
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 4), fontsize="small",
               bbox_to_anchor=(0.5, 0.0))  # below the figure: bbox_inches="tight" makes room
    return _save(fig, path, bbox_inches="tight")


def training_curves(csv_path: str | os.PathLike, path: str | os.PathLike, *, title: str,
                    x: str = "epoch") -> Path:
    """Plot a run's ``metrics.csv`` (written by :mod:`harness.trainer`) to a PNG.

    Left panel: every column whose name contains ``loss``; right panel: every ``val/`` column
    (fractions). Empty cells (a metric not logged at that row) are skipped. The x axis has integer
    ticks when every ``x`` value is an integer (epochs, steps); legends sit below the panels.

    Args:
        csv_path: the metrics file (one row per epoch, a header with column names).
        path: the PNG file.
        title: figure title.
        x: the x column.

    Raises:
        FileNotFoundError: no ``csv_path``.
        ValueError: the file has no ``x`` column or no loss and no ``val/`` column.
    """
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = list(rows[0]) if rows else []
    losses = [c for c in columns if "loss" in c]
    vals = [c for c in columns if c.startswith("val/")]
    if x not in columns or not (losses or vals):
        raise ValueError(f"{csv_path}: expected a {x!r} column and loss or val/ columns, found {columns}")
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    integer_x = all(float(r[x]).is_integer() for r in rows if r.get(x) not in (None, ""))
    for ax, cols, label in ((axes[0], losses, "loss"), (axes[1], vals, "validation metric")):
        for c in cols:
            pts = [(float(r[x]), float(r[c])) for r in rows if r.get(c) not in (None, "")]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=c)
        if integer_x:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(x)
        _label_y(ax, label)
        ax.grid(alpha=0.3)
        if cols:
            ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.18),
                      ncol=min(len(cols), 2))
    fig.suptitle(title)
    return _save(fig, path, bbox_inches="tight")
