"""Figures of the optimizer study (Redman et al. 2024, fig. 2 and S1).

Compositions of :mod:`conjugacy.plots.core`; the inputs are the iterates and loss curves of
:func:`conjugacy.experiments.optimizers.simulate` and the pooled spectra of
:func:`conjugacy.experiments.optimizers.fit_spectra`. Nothing is computed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._checks import check_int
from .core import new_figure, plot_eigenvalues, plot_loss_curves, plot_trajectories, save_figure

__all__ = ["draw_all", "make_figures"]

_NAMES = {"omd": ("x_1", "x_2"), "ogd": ("u_1", "u_2"), "bm": ("z_1", "z_2")}


def make_figures(trajectories: Mapping[str, Any], losses: Mapping[str, Any],
                 spectra: Mapping[str, Any], loss: str = "tan", example: int = 17
                 ) -> dict[str, Any]:
    """The figures of figure 2 / S1 of the paper as :class:`matplotlib.figure.Figure` objects.

    Parameters
    ----------
    trajectories, losses : mapping optimizer -> array (25, T, 2) / (25, T)
    spectra : mapping optimizer -> Spectrum or eigenvalues
        The pooled spectra (all 25 runs).
    loss : {"tan", "quartic"}
    example : int
        The run drawn in panel A (default 17: x(0) = (0.5, 0.7), as in the reference code).

    Returns
    -------
    dict
        ``"trajectories"`` (fig. 2A: the iterates of run ``example``), ``"losses"`` (fig. 2B: mean
        and min-max range over the 25 runs), ``"eigenvalues"`` (fig. 2C: the whole plane with the
        unit circle, and a zoom on the real axis near 1) and ``"overview"`` (the three panels).

    Raises
    ------
    ValueError
        ``example`` is not a run index in [0, 24].

    Examples
    --------
    >>> from conjugacy.experiments.optimizers import OptimizerConfig, fit_spectra, simulate
    >>> cfg = OptimizerConfig(n_steps=30)
    >>> it = simulate(cfg)
    >>> pooled = fit_spectra(cfg, it)[0]
    >>> figs = make_figures(it.trajectories, it.losses, pooled)
    >>> sorted(figs), figs["eigenvalues"].axes[1].get_title(loc="left")
    (['eigenvalues', 'losses', 'overview', 'trajectories'], 'zoom near 1')
    """
    example = check_int(example, "example", minimum=0)
    if example >= 25:
        raise ValueError(f"example must be a run index in [0, 24], got {example}")
    methods = list(trajectories)
    title = r"$f(x) = \sum_i \tan x_i$" if loss == "tan" else r"$f(x) = \sum_i x_i^4$"
    example_trajs = {m.upper(): trajectories[m][example] for m in methods}
    feature_names = {m.upper(): _NAMES[m] for m in methods}
    curves = {m.upper(): losses[m] for m in methods}
    eigs = {m.upper(): spectra[m] for m in methods}

    def draw_traj(ax: Any) -> None:
        plot_trajectories(example_trajs, ax=ax, feature_names=feature_names)
        ax.set_title(f"A  example trajectories (run {example})", loc="left")

    def draw_loss(ax: Any) -> None:
        plot_loss_curves(curves, ax=ax, spread="minmax")
        ax.set_ylabel("loss (|f(z)| for BM)" if "bm" in methods else "loss")
        ax.set_title("B  loss, mean and range of 25 runs", loc="left")

    figs: dict[str, Any] = {}
    fig, ax = new_figure()
    draw_traj(ax)
    figs["trajectories"] = fig
    fig, ax = new_figure()
    draw_loss(ax)
    figs["losses"] = fig
    fig, axes = new_figure(ncols=2, width=9.0)
    plot_eigenvalues(eigs, ax=axes[0])
    axes[0].set_title("C  Koopman eigenvalues", loc="left")
    plot_eigenvalues(eigs, ax=axes[1], zoom=(0.45, 1.05, -0.06, 0.06), unit_circle=True)
    axes[1].set_title("zoom near 1", loc="left")
    figs["eigenvalues"] = fig
    fig, axes = new_figure(ncols=3, width=13.0, height=3.8)
    draw_traj(axes[0])
    draw_loss(axes[1])
    plot_eigenvalues(eigs, ax=axes[2])
    axes[2].set_title("C  Koopman eigenvalues", loc="left")
    fig.suptitle(f"Optimizer conjugacy, {title}")
    figs["overview"] = fig
    return figs


def draw_all(out: Path, trajectories: Mapping[str, Any], losses: Mapping[str, Any],
             spectra: Mapping[str, Any], loss: str = "tan", example: int = 17) -> list[Path]:
    """:func:`make_figures` saved into ``out`` (PNG + SVG each); returns the paths.

    Examples
    --------
    >>> import tempfile
    >>> from conjugacy.experiments.optimizers import OptimizerConfig, fit_spectra, simulate
    >>> cfg = OptimizerConfig(loss="quartic", n_steps=30)
    >>> it = simulate(cfg)
    >>> with tempfile.TemporaryDirectory() as out:
    ...     paths = draw_all(Path(out), it.trajectories, it.losses, fit_spectra(cfg, it)[0],
    ...                      loss="quartic")
    ...     sorted(p.name for p in paths)[:3]
    ['eigenvalues.png', 'eigenvalues.svg', 'losses.png']
    """
    paths: list[Path] = []
    for name, fig in make_figures(trajectories, losses, spectra, loss, example).items():
        paths.extend(save_figure(fig, Path(out) / name))
    return paths
