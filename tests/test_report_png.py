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
