"""Matplotlib figures of Koopman spectra, distances, losses and trajectories.

:mod:`conjugacy.plots.core` holds the reusable functions, re-exported here; experiments may add
their own submodules (``conjugacy.plots.<experiment>``) built on them. Nothing here uses ``pyplot``
or changes global Matplotlib state.
"""

# ruff: noqa: E402 - the check below must run before the imports that need the extra
from .._launch import require

# without the extra: one line naming it (pip install 'conjugacy[...]'), not a bare
# ModuleNotFoundError from deep inside; the imports below need it
require("matplotlib", "import conjugacy.plots")

from .core import (
    color_for,
    new_figure,
    plot_distance_bars,
    plot_distance_heatmap,
    plot_eigenvalues,
    plot_loss_curves,
    plot_trajectories,
    save_figure,
    significance_marks,
)

__all__ = [
    "color_for",
    "new_figure",
    "plot_distance_bars",
    "plot_distance_heatmap",
    "plot_eigenvalues",
    "plot_loss_curves",
    "plot_trajectories",
    "save_figure",
    "significance_marks",
]
