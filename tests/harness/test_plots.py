"""harness.plots: PNGs written atomically from real-shaped inputs; clear errors for bad ones."""

import pytest

from harness.plots import grouped_bar_plot, line_plot, training_curves

PNG = b"\x89PNG"


def test_line_plot_with_bands_and_missing_points(tmp_path):
    p = line_plot(tmp_path / "l.png", {"20%": [0.5, 0.6], "20% fb0": [0.5, None]},
                  errors={"20%": [0.01, None]}, styles={"20% fb0": "--"}, title="t", xlabel="x", ylabel="y")
    assert p.read_bytes().startswith(PNG)


def test_line_plot_colour_groups_share_a_colour(tmp_path, monkeypatch):
    import harness.plots as plots

    seen = {}
    real_save = plots._save

    def capture(fig, path):
        seen.update({line.get_label(): line.get_color() for line in fig.axes[0].get_lines()})
        return real_save(fig, path)

    monkeypatch.setattr(plots, "_save", capture)
    series = {"20%": [0.5, 0.6], "20% fb0": [0.5, 0.5], "50%": [0.4, 0.45], "50% fb0": [0.4, 0.4]}
    line_plot(tmp_path / "l.png", series, colors={"20%": 0.2, "20% fb0": 0.2, "50%": 0.5,
                                                  "50% fb0": 0.5}, title="t", xlabel="x", ylabel="y")
    assert seen["20%"] == seen["20% fb0"] != seen["50%"] == seen["50% fb0"]
    line_plot(tmp_path / "m.png", series, title="t", xlabel="x", ylabel="y")
    assert len(set(seen.values())) == 4  # default: one colour per series


def test_grouped_bar_plot_panels_and_reference_lines(tmp_path):
    panels = {"20%": {"Exp 3d": {"one-shot": (0.8, 0.01), "final": (0.7, None)}},
              "50%": {"Exp 3d": {"one-shot": (0.6, None), "final": (None, None)}}}
    p = grouped_bar_plot(tmp_path / "b.png", panels, title="t", ylabel="acc",
                         hlines={"20%": {"unigram": 0.05}, "50%": {"unigram": None}})
    assert p.read_bytes().startswith(PNG)
    with pytest.raises(ValueError, match="at least one panel"):
        grouped_bar_plot(tmp_path / "c.png", {}, title="t", ylabel="y")


def test_training_curves_from_the_trainers_metrics_csv(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,step,train/loss,val/repair_accuracy,train_seconds\n"
                   "1,50,4.7,0.19,181\n2,100,2.3,0.34,121\n3,150,2.0,,100\n")
    assert training_curves(csv, tmp_path / "t.png", title="run").read_bytes().startswith(PNG)
    bad = tmp_path / "bad.csv"
    bad.write_text("step,other\n1,2\n")
    with pytest.raises(ValueError, match="expected a 'epoch' column"):
        training_curves(bad, tmp_path / "u.png", title="run")
