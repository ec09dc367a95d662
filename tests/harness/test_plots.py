"""harness.plots: PNGs written atomically from real-shaped inputs; clear errors for bad ones.

The figures are inspected through ``_save`` (patched to keep the figure): error bars only where an
interval exists, legends outside the axes, zoomed y axes labelled, integer epoch ticks.
"""

import pytest

import harness.plots as plots
from harness.plots import grouped_bar_plot, line_plot, training_curves, zoom_note

PNG = b"\x89PNG"


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions save (drawn, so extents are final), in order."""
    kept = []
    real_save = plots._save

    def keep(fig, path, **savefig):
        fig.tight_layout()
        fig.canvas.draw()
        fig.legends_clear_of_axes = _legend_clear_of_axes(fig)  # before the figure is closed
        kept.append(fig)
        return real_save(fig, path, **savefig)

    monkeypatch.setattr(plots, "_save", keep)
    return kept


def _legends(fig):
    return [a.get_legend() for a in fig.axes if a.get_legend()] + list(fig.legends)


def _legend_clear_of_axes(fig):
    """Every legend's box lies outside every axes' data area."""
    renderer = fig.canvas.get_renderer()
    boxes = [leg.get_window_extent(renderer) for leg in _legends(fig)]
    return boxes and all(not b.overlaps(ax.get_window_extent(renderer)) for b in boxes for ax in fig.axes)


def test_line_plot_with_bands_and_missing_points(tmp_path):
    p = line_plot(tmp_path / "l.png", {"20%": [0.5, 0.6], "20% feedback zeroed": [0.5, None]},
                  errors={"20%": [0.01, None]}, styles={"20% feedback zeroed": "--"}, title="t",
                  xlabel="x", ylabel="y")
    assert p.read_bytes().startswith(PNG)


def test_line_plot_colour_groups_share_a_colour(tmp_path, figures):
    series = {"20%": [0.5, 0.6], "20% feedback zeroed": [0.5, 0.5], "50%": [0.4, 0.45],
              "50% feedback zeroed": [0.4, 0.4]}
    line_plot(tmp_path / "l.png", series, colors={"20%": 0.2, "20% feedback zeroed": 0.2, "50%": 0.5,
                                                  "50% feedback zeroed": 0.5}, title="t", xlabel="x", ylabel="y")
    seen = {line.get_label(): line.get_color() for line in figures[0].axes[0].get_lines()}
    assert seen["20%"] == seen["20% feedback zeroed"] != seen["50%"] == seen["50% feedback zeroed"]
    line_plot(tmp_path / "m.png", series, title="t", xlabel="x", ylabel="y")
    assert len({line.get_color() for line in figures[1].axes[0].get_lines()}) == 4  # one per series


def test_line_plot_bands_only_where_an_interval_exists(tmp_path, figures):
    series = {"3 seeds": [0.5, 0.6, 0.62], "1 seed": [0.4, 0.5, 0.55]}
    line_plot(tmp_path / "l.png", series, errors={"3 seeds": [0.02, 0.03, 0.02], "1 seed": [None] * 3},
              title="t", xlabel="iteration", ylabel="repair_accuracy")
    bands = figures[0].axes[0].collections
    assert len(bands) == 1 and bands[0].get_facecolor()[0][:3] == pytest.approx(
        _rgb(figures[0].axes[0].get_lines()[0].get_color()))


def _rgb(colour):
    from matplotlib.colors import to_rgb

    return to_rgb(colour)


def test_line_plot_legend_outside_and_zoomed_axis_labelled(tmp_path, figures):
    line_plot(tmp_path / "z.png", {"20%": [0.5, 0.6, 0.61], "50%": [0.45, 0.5, 0.52]},
              title="t", xlabel="iteration (0 = one-shot)", ylabel="repair_accuracy")
    ax = figures[0].axes[0]
    assert ax.get_ylim()[0] > 0 and "axis zoomed: starts at" in ax.get_ylabel()
    assert ax.get_ylabel().startswith("repair_accuracy\n(axis zoomed")
    assert figures[0].legends_clear_of_axes
    assert all(t == int(t) for t in ax.get_xticks())  # iterations: integer ticks
    line_plot(tmp_path / "f.png", {"20%": [0.0, 0.6]}, title="t", xlabel="x", ylabel="pass_rate")
    assert figures[1].axes[0].get_ylabel() == "pass_rate"  # the axis includes 0: no note


def test_zoom_note():
    assert zoom_note(0.0, 1.0) == "" and zoom_note(-0.1, 0.2) == ""
    assert zoom_note(0.4512, 0.7) == "(axis zoomed: starts at 0.45)"
    assert zoom_note(-3.0, -0.1) == "(axis zoomed: ends at -0.1)"


def test_grouped_bar_plot_panels_and_reference_lines(tmp_path):
    panels = {"20%": {"Exp 3d": {"one-shot": (0.8, 0.01), "final": (0.7, None)}},
              "50%": {"Exp 3d": {"one-shot": (0.6, None), "final": (None, None)}}}
    p = grouped_bar_plot(tmp_path / "b.png", panels, title="t", ylabel="acc",
                         hlines={"20%": {"unigram": 0.05}, "50%": {"unigram": None}})
    assert p.read_bytes().startswith(PNG)
    with pytest.raises(ValueError, match="at least one panel"):
        grouped_bar_plot(tmp_path / "c.png", {}, title="t", ylabel="y")


def test_grouped_bar_plot_error_bars_only_where_an_interval_exists(tmp_path, figures):
    from matplotlib.container import ErrorbarContainer

    panels = {"20%": {"Exp 3d": {"one-shot": (0.8, 0.01), "final": (0.7, None)},
                      "Exp 3d, feedback zeroed": {"one-shot": (0.75, 0.02), "final": (0.7, None)}},
              "50%": {"Exp 3d": {"one-shot": (0.6, None), "final": (0.5, None)}}}
    grouped_bar_plot(tmp_path / "b.png", panels, title="t", ylabel="repair_accuracy",
                     hlines={"20%": {"unigram (Exp 3d)": 0.05}})
    fig = figures[0]
    bars20, bars50 = fig.axes

    def errorbars(ax):
        return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]

    # 20%: one error bar per bar with a half-width (the two one-shot bars), each with its caps
    (eb,) = errorbars(bars20)
    assert len(eb.lines[2][0].get_segments()) == 2 and len(eb.lines[1]) == 2
    assert not errorbars(bars50)  # n = 1 everywhere: no error bars, no caps
    assert bars20.get_ylim()[0] == 0 and bars20.get_ylabel() == "repair_accuracy"
    assert fig.legends_clear_of_axes
    assert set(fig.legends[0].get_texts()[i].get_text() for i in range(3)) == {
        "one-shot", "final", "unigram (Exp 3d)"}


def test_training_curves_from_the_trainers_metrics_csv(tmp_path, figures):
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,step,train/loss,val/repair_accuracy,train_seconds\n"
                   "1,50,4.7,0.19,181\n2,100,2.3,0.34,121\n3,150,2.0,,100\n")
    assert training_curves(csv, tmp_path / "t.png", title="run").read_bytes().startswith(PNG)
    fig = figures[0]
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(t == int(t) for t in ticks)  # epochs: no 1.5
    assert fig.legends_clear_of_axes
    assert "axis zoomed" in fig.axes[0].get_ylabel()  # losses 2.0..4.7
    bad = tmp_path / "bad.csv"
    bad.write_text("step,other\n1,2\n")
    with pytest.raises(ValueError, match="expected a 'epoch' column"):
        training_curves(bad, tmp_path / "u.png", title="run")
