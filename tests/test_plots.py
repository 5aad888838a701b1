"""Tests of conjugacy.plots: drawn data, error messages, atomic saving, no global state."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import matplotlib
import matplotlib.image
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from conjugacy import plots
from conjugacy.plots import (
    new_figure,
    plot_distance_bars,
    plot_distance_heatmap,
    plot_eigenvalues,
    plot_loss_curves,
    plot_trajectories,
    save_figure,
    significance_marks,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _FakeSpectrum:
    def __init__(self, eig):
        self.eigenvalues = np.asarray(eig)


def test_plot_eigenvalues_draws_each_set_and_the_unit_circle():
    a = np.array([0.9, 0.5 + 0.3j, 0.5 - 0.3j])
    b = _FakeSpectrum([0.8, -0.2])
    ax = plot_eigenvalues({"OMD": a, "other": b})
    assert isinstance(ax, Axes) and isinstance(ax.figure, Figure)
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatters) == 2
    np.testing.assert_allclose(scatters[0].get_offsets(), np.c_[a.real, a.imag])
    np.testing.assert_allclose(scatters[1].get_offsets(), [[0.8, 0.0], [-0.2, 0.0]])
    circle = ax.lines[0].get_xydata()
    np.testing.assert_allclose(np.hypot(circle[:, 0], circle[:, 1]), 1.0)
    assert ax.get_xlim()[1] >= 1.0 and ax.get_aspect() == 1.0
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["OMD (3)", "other (2)"]
    # OMD keeps the paper's colour (black)
    assert matplotlib.colors.to_hex(scatters[0].get_edgecolor()[0]) == "#000000"


def test_plot_eigenvalues_zoom_and_no_circle():
    fig, ax = new_figure()
    out = plot_eigenvalues({"a": [1.5 + 0j]}, ax=ax, zoom=(0.5, 1.1, -0.1, 0.1), unit_circle=False)
    assert out is ax
    assert ax.get_xlim() == (0.5, 1.1) and ax.get_ylim() == (-0.1, 0.1)
    assert all(not np.allclose(np.hypot(*ln.get_xydata().T), 1.0) for ln in ax.lines)
    ax2 = plot_eigenvalues({"a": [2.0 + 0j]})
    assert ax2.get_xlim()[1] >= 2.0  # the whole spectrum is in view


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"spectra": {}}, TypeError, "non-empty dict"),
        ({"spectra": [1, 2]}, TypeError, "non-empty dict"),
        ({"spectra": {"a": [[1, 2]]}}, ValueError, "must be 1-D"),
        ({"spectra": {"a": ["x"]}}, TypeError, "must hold numbers"),
        ({"spectra": {"a": [1]}, "zoom": (1, 0, 0, 1)}, ValueError, "re_min < re_max"),
        ({"spectra": {"a": [1]}, "zoom": (1, 2)}, ValueError, "zoom must be"),
        ({"spectra": {"a": [1]}, "ax": "axes"}, TypeError, "ax must be a matplotlib Axes"),
    ],
)
def test_plot_eigenvalues_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        plot_eigenvalues(**kwargs)


def test_distance_heatmap_linear_and_log():
    d = np.array([[0.0, 0.1, 2.0], [0.1, 0.0, 1.0], [2.0, 1.0, 0.0]])
    ax = plot_distance_heatmap(d, ["a", "b", "c"])
    np.testing.assert_allclose(ax.images[0].get_array(), d)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert len(ax.texts) == 9
    ax = plot_distance_heatmap(d, ["a", "b", "c"], log10=True)
    arr = ax.images[0].get_array()
    assert arr.mask[0, 0] and arr.mask[1, 1]  # log10(0) left blank
    assert arr[0, 2] == pytest.approx(np.log10(2.0))
    with pytest.raises(ValueError, match="square"):
        plot_distance_heatmap(np.ones((2, 3)), ["a", "b"])
    with pytest.raises(ValueError, match="one entry per row"):
        plot_distance_heatmap(d, ["a"])
    with pytest.raises(ValueError, match="non-negative"):
        plot_distance_heatmap(-d, ["a", "b", "c"])


def test_loss_curves_mean_and_spread():
    runs = np.array([[3.0, 2.0, 1.0], [1.0, 1.0, 1.0]])
    ax = plot_loss_curves({"OMD": runs, "single": np.array([1.0, 0.5, 0.25])}, spread="minmax")
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [2.0, 1.5, 1.0])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [1.0, 0.5, 0.25])
    assert len(ax.collections) == 1  # a single run has no spread
    ax = plot_loss_curves({"OMD": runs}, spread="std", log=True)
    assert ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="spread must be"):
        plot_loss_curves({"a": runs}, spread="iqr")
    with pytest.raises(ValueError, match=r"curves\['a'\] must be"):
        plot_loss_curves({"a": np.ones((2, 2, 2))})


def test_distance_bars_and_significance_marks():
    assert significance_marks([1e-4, 0.005, 0.04, 0.5, True, False, "x", None]) == [
        "***",
        "**",
        "*",
        "n.s.",
        "*",
        "n.s.",
        "x",
        "",
    ]
    with pytest.raises(ValueError, match=r"significance\[0\] must be a p-value"):
        significance_marks([2.0])
    ax = plot_distance_bars([0.01, 0.7], [0.005, 0.05], ["omd-ogd", "omd-bm"], [0.45, 0.008])
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, [0.01, 0.7])
    assert [t.get_text() for t in ax.texts] == ["n.s.", "**"]
    with pytest.raises(ValueError, match="errors must have shape"):
        plot_distance_bars([1, 2], [1, 2, 3], ["a", "b"])
    with pytest.raises(ValueError, match="labels must have one entry"):
        plot_distance_bars([1, 2], None, ["a"])
    with pytest.raises(ValueError, match="significance must have one entry"):
        plot_distance_bars([1, 2], None, ["a", "b"], significance=[0.1])


def test_plot_trajectories_lines_per_feature():
    t = np.linspace(0, 1, 10)
    ax = plot_trajectories({"OMD": np.c_[t, 2 * t], "BM": t}, feature_names={"OMD": ("x_1", "x_2")})
    assert len(ax.lines) == 3
    np.testing.assert_allclose(ax.lines[1].get_ydata(), 2 * t)
    assert ax.lines[0].get_linestyle() != ax.lines[1].get_linestyle()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "OMD $x_1$"
    with pytest.raises(ValueError, match="must be \\(n_steps, n_features\\)"):
        plot_trajectories({"a": np.ones((2, 2, 2))})


def test_save_figure_writes_valid_png_and_svg_atomically(tmp_path):
    ax = plot_eigenvalues({"a": [0.5 + 0.5j, 0.5 - 0.5j]})
    paths = save_figure(ax.figure, tmp_path / "eig.png")  # a format suffix is dropped
    assert [p.name for p in paths] == ["eig.png", "eig.svg"]
    assert paths[0].read_bytes()[:8] == PNG_MAGIC
    img = matplotlib.image.imread(paths[0])
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    root = ET.parse(paths[1]).getroot()
    assert root.tag.endswith("svg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eig.png", "eig.svg"]  # no temp files
    small = save_figure(ax.figure, tmp_path / "low", formats=("png",), dpi=50)
    assert matplotlib.image.imread(small[0]).shape[0] < img.shape[0]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_figure(ax.figure, tmp_path / "missing" / "x")
    with pytest.raises(ValueError, match="not supported"):
        save_figure(ax.figure, tmp_path / "x", formats=("docx",))
    with pytest.raises(TypeError, match="matplotlib Figure"):
        save_figure(ax, tmp_path / "x")


def test_plots_leave_global_state_alone():
    before = dict(matplotlib.rcParams)
    fig, axes = new_figure(ncols=2)
    plot_eigenvalues({"a": [1.0]}, ax=axes[0])
    plot_loss_curves({"a": np.ones((2, 3))}, ax=axes[1])
    assert dict(matplotlib.rcParams) == before
    assert set(plots.__all__) >= {"plot_eigenvalues", "plot_distance_heatmap", "save_figure"}
    # pyplot (global figure manager, interactive backends) is never imported.
    code = (
        "import sys, numpy as np; import conjugacy.plots as p; "
        "ax = p.plot_eigenvalues({'a': [0.5]}); p.plot_distance_heatmap(np.eye(2), ['a', 'b']); "
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_plot_eigenvalues_fixed_colors_keep_a_condition_colour():
    from matplotlib.colors import to_hex

    from conjugacy.plots import plot_eigenvalues

    ax = plot_eigenvalues({"a": [0.5 + 0.1j], "b": [0.2]}, colors={"b": "#123456"})
    faces = [to_hex(c.get_edgecolor()[0]) for c in ax.collections]
    assert "#123456" in faces


def test_labels_starting_with_an_underscore_stay_in_every_legend(monkeypatch, tmp_path):
    """Issue 26 leftover: Matplotlib leaves labels starting with "_" out of legends; the report
    guarded its own figures, but plot_eigenvalues, plot_loss_curves, plot_trajectories and the
    study figures passed a condition "_warmup" as is and it vanished. One helper for all:
    ``plots.core.legend_label``."""
    from types import SimpleNamespace

    from conjugacy.plots import study
    from conjugacy.plots.core import legend_label

    def legend(ax):
        return [t.get_text() for t in ax.get_legend().get_texts()]

    assert legend(plot_eigenvalues({"_warmup": [0.5], "b": [0.1]})) == [" _warmup (1)", "b (1)"]
    assert legend(plot_loss_curves({"_warmup": np.ones(4), "b": np.ones(4)})) == [" _warmup", "b"]
    assert legend(plot_trajectories({"_w": np.zeros((3, 1))})) == [" _w[0]"]
    summary = {"comparison": {"verdict_uses": "real", "real": {
        "distances": {"_a-b": {"mean": 0.3, "std": 0.1, "per_seed": [0.2, 0.4]}},
        "permutation_tests": {"_a-b": {"pvalue": 0.03}},
        "between_seeds": {"_a": {"values": [0.05]}, "b": {"values": [0.1]}}}}}
    fig = study.figure_between_seeds(summary)
    assert legend(fig.axes[0])[:2] == [" _a: between seeds", "b: between seeds"]
    drawn = {}
    monkeypatch.setattr(study, "draw_study", lambda *a: [])
    monkeypatch.setattr(study, "save_figure", lambda f, p: drawn.setdefault(p.name, f) and [])
    loss = {"_a": {"steps": [0, 1], "mean": [1.0, 0.5], "std": [0.1, 0.1]}}
    study.study_figures(SimpleNamespace(content={"comparison": {"x": 1}, "loss": loss},
                                        spectra={}), tmp_path)
    assert legend(drawn["loss"].axes[0]) == [" _a"]
    assert [legend_label(s) for s in ("_", "a_", "", 7)] == [" _", "a_", "", "7"]


def test_new_figure_checks_its_grid_by_the_package_rule():
    """nrows/ncols go through _checks.check_int: below 1 a ValueError, a non-integer (a float,
    a bool) a TypeError, each naming the argument."""
    fig, axes = new_figure(np.int64(2), 1)
    assert len(axes) == 2
    with pytest.raises(ValueError, match="nrows must be >= 1, got 0"):
        new_figure(0)
    with pytest.raises(TypeError, match="ncols must be an integer, got 1.5"):
        new_figure(1, 1.5)
    with pytest.raises(TypeError, match="ncols must be an integer, got True"):
        new_figure(1, True)
