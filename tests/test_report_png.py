"""The report's figures are drawn once each (issue 19): ``savefig`` draws a figure with a layout
engine twice; the report's PNG bytes are savefig's all the same."""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from conjugacy.plots import new_figure, plot_distance_heatmap, plot_eigenvalues  # noqa: E402
from conjugacy.report import _figures  # noqa: E402


def _figure():
    fig, (a, b) = new_figure(1, 2, width=8.0, height=3.5)
    rng = np.random.default_rng(3)
    z = 0.9 * np.exp(1j * rng.uniform(-1, 1, 12))
    plot_eigenvalues({"sgd": z, "adam $x$": 0.95 * z}, ax=a)
    plot_distance_heatmap(np.array([[0.0, 0.2], [0.2, 0.0]]), ["sgd", "adam"], ax=b)
    a.set_title("eigenvalues")
    return fig


def test_png_bytes_equal_savefig_and_the_figure_is_drawn_once(monkeypatch):
    from matplotlib.figure import Figure

    buf = io.BytesIO()
    _figure().savefig(buf, format="png", dpi=_figures.DPI)
    draws = []
    original = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda self, r: draws.append(r) or original(self, r))
    png = _figures._png(_figure())
    assert png == buf.getvalue()
    assert len(draws) == 1
    draws.clear()
    _figure().savefig(io.BytesIO(), format="png", dpi=_figures.DPI)
    assert len(draws) == 2  # what _png avoids: the layout pass and the rendering


def _comparison(names):
    """A comparison record of len(names) conditions, 3 seeds each (only what the distances
    figure reads)."""
    k = len(names)
    seeds = np.array([[0.0, 0.1, 0.2], [0.1, 0.0, 0.3], [0.2, 0.3, 0.0]])
    return {"conditions": names, "verdict_uses": "all", "all": {
        "equivalence_classes": {"mean_distance_matrix": (0.5 * (1 - np.eye(k))).tolist()},
        "between_seeds": {c: {"matrix": (seeds * (i + 1)).tolist(), "mean": 0.2 * (i + 1)}
                          for i, c in enumerate(names)}}}


def _drawn(monkeypatch, cmp):
    """The distances figure's Matplotlib figure (as drawn to PNG) and its caption."""
    figs = []
    original = _figures._png
    monkeypatch.setattr(_figures, "_png", lambda fig: figs.append(fig) or original(fig))
    report = _figures._distances_figure(cmp, {})
    return figs[0], report.caption


def test_distance_panels_share_one_colour_bar_on_a_fixed_layout(monkeypatch):
    fig, caption = _drawn(monkeypatch, _comparison(["sgd", "adam"]))
    heatmaps = [ax for ax in fig.axes if ax.images]
    assert len(heatmaps) == 3 and len(fig.axes) == 4  # 3 panels, 1 colour bar (was 3)
    bars = [ax for ax in fig.axes if not ax.images]
    assert bars[0].get_ylim() == (0.0, 0.6)  # the one scale: 0 to the largest W1 (seeds of adam)
    assert {ax.images[0].get_clim() for ax in heatmaps} == {(0.0, 0.6)}
    assert fig.get_layout_engine() is None  # no text measured before drawing
    assert "one colour scale (0 to 0.6)" in caption


def _inside(fig):
    """Every drawn text of every panel of ``fig`` (tick labels, offsets such as "1e-7", axis
    labels, titles, legends) lies inside the figure; the panels' tight boxes."""
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    boxes = [ax.get_tightbbox(renderer) for ax in fig.axes if ax.get_visible()]
    for ext in boxes:
        assert box.x0 <= ext.x0 and ext.x1 <= box.x1 and box.y0 <= ext.y0 and ext.y1 <= box.y1, (
            ext, box)
    return boxes


@pytest.mark.parametrize(("x", "y"), [(1, 1e-7), (1, 1.0), (10_000, 1e6), (7, 3e-4)])
def test_numeric_panels_on_a_fixed_layout_keep_their_labels_inside(monkeypatch, x, y):
    """Steps (x) and distances / losses (y) of any size: tick labels, offsets ("1e-7") and
    axis labels inside the figure on the fixed layout."""
    figs = []
    original = _figures._png
    monkeypatch.setattr(_figures, "_png", lambda fig: figs.append(fig) or original(fig))
    per = [{"label": f"{a * x}-{(a + 99) * x}", "distance": d * y,
            "noise_floor": 0.1 * y, "interval": [0.9 * d * y, 1.1 * d * y],
            "verdict": "not conjugate" if d > 1 else "conjugate"}
           for a, d in ((0, 0.2), (100, 0.3), (200, 2.5), (300, 2.6))]
    between = {"window": 100, "n_seeds": 3, "alpha": 0.05, "pairs": {"sgd-adam": {
        "a": "sgd", "b": "adam", "per_window": per, "differ_from_step": 200 * x}}}
    steps = (np.arange(50) * 100 * x).tolist()
    loss = {"sgd": {"mean": (np.linspace(2.3, 0.1, 50) * y).tolist(), "steps": steps}}
    _figures._between_windows_figure(between, {})
    _figures._loss_figure(loss)
    for fig in figs:
        assert fig.get_layout_engine() is None
        assert len(_inside(fig)) == 1


def test_fixed_layout_keeps_the_longest_short_labels_inside_the_figure(monkeypatch):
    # the widest letters at the longest length the fixed layout takes, rotated (> 3 characters)
    names = ["W" * _figures.MAX_FIXED_LABEL, "M" * (_figures.MAX_FIXED_LABEL - 1)]
    fig, _ = _drawn(monkeypatch, _comparison(names))
    assert fig.get_layout_engine() is None
    assert names[0] in [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert len(_inside(fig)) == 4  # 3 panels and the colour bar
    renderer = fig.canvas.get_renderer()
    panels = [ax.get_window_extent(renderer) for ax in fig.axes if ax.images]
    for ax, other in zip(fig.axes, fig.axes[1:]):  # y tick labels clear the panel to their left
        if ax.images and other.images:
            left = min(t.get_window_extent(renderer).x0 for t in other.get_yticklabels())
            assert ax.get_window_extent(renderer).x1 < left
    assert len(panels) == 3


def test_longer_labels_get_the_constrained_layout_and_the_shared_colour_bar(monkeypatch):
    fig, _ = _drawn(monkeypatch, _comparison(["a" * (_figures.MAX_FIXED_LABEL + 1), "b"]))
    assert fig.get_layout_engine() is not None
    assert len(fig.axes) == 4


def test_heatmap_without_its_colour_bar():
    fig, ax = new_figure()
    plot_distance_heatmap(np.array([[0.0, 0.2], [0.2, 0.0]]), ["a", "b"], ax=ax, colorbar=False)
    assert fig.axes == [ax]
    plot_distance_heatmap(np.array([[0.0, 0.2], [0.2, 0.0]]), ["a", "b"], ax=ax)
    assert len(fig.axes) == 2


def test_eigenvalue_axes_need_no_mathtext():
    ax = plot_eigenvalues({"a": np.array([0.9, 0.5 + 0.2j])})
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Re λ", "Im λ")
    assert "$" not in ax.get_xlabel() + ax.get_ylabel()


def test_analyze_without_report_never_imports_matplotlib(tmp_path):
    """``conjugacy analyze --no-report`` (the CLI, in a fresh interpreter) leaves Matplotlib
    unimported (~0.4 s CPU); with the report it is imported (the check can fail)."""
    pytest.importorskip("zarr")
    import subprocess
    import sys

    from conjugacy.store import TrajectoryStore

    rng = np.random.default_rng(0)
    with TrajectoryStore.open(tmp_path / "s.zarr", "w") as st:
        for cond in ("a", "b"):
            for seed in range(3):
                name = f"{cond}{seed}"
                st.create_run(name, {"w": ((3,), "float64")},
                              metadata={"condition": cond, "seed": seed})
                st.append(name, np.arange(60), {"w": np.cumsum(rng.standard_normal((60, 3)), 0)})
                st.set_finished(name)
    code = ("import sys; from conjugacy.cli import main; sys.argv = ['conjugacy', 'analyze', "
            "sys.argv[1], '--out', sys.argv[2], '--delays', '1', '--rank', '2', "
            "*sys.argv[3:]]\ntry:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e\n"
            "print('MPL', any(m.split('.')[0] == 'matplotlib' for m in sys.modules))")
    for flags, imported in ((["--no-report"], "False"), ([], "True")):
        done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.zarr"),
                               str(tmp_path / f"o{len(flags)}"), *flags], capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().splitlines()[-1] == f"MPL {imported}", flags
