"""Figures of the transformer grokking experiment (Redman et al. 2024, fig. 5 and S6).

Compositions of :mod:`conjugacy.plots.core`; the inputs are plain arrays and dicts (the per-run
curves the experiment's figure hook reads from the store, the spectra and p-values of its
:class:`~conjugacy.analysis.Results`), no computation happens here; :func:`draw_all` draws and
saves every figure of a run, :func:`study_figures` is the study's figure hook that reads those
curves from its stores.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .core import PALETTE, new_figure, plot_eigenvalues, save_figure

__all__ = [
    "draw_all",
    "figure_fig5",
    "figure_grokking_curves",
    "figure_s6",
    "plot_early_curves",
    "plot_grokking_curves",
]

#: Colours of the regimes: those :func:`plot_eigenvalues` gives the first and second label.
REGIME_COLORS = {"unconstrained": PALETTE[0], "constrained": PALETTE[1], "constrained_s6": PALETTE[1]}
_LABELS = {
    "unconstrained": "unconstrained (groks)",
    "constrained": "constrained norm",
    "constrained_s6": "constrained norm",
}


def _series(curve: Mapping[str, Any], name: str) -> tuple[np.ndarray, np.ndarray]:
    if "step" not in curve or name not in curve:
        raise KeyError(f"curve must hold 'step' and {name!r}; it has {sorted(curve)}")
    step = np.asarray(curve["step"], dtype=np.float64)
    y = np.asarray(curve[name], dtype=np.float64)
    if y.ndim == 1:
        y = y[None]
    if y.ndim != 2 or y.shape[1] != step.shape[0]:
        raise ValueError(
            f"{name} must be (n_runs, {step.shape[0]}) to match 'step', got "
            f"shape {np.shape(curve[name])}"
        )
    keep = np.isfinite(y).any(axis=0)  # records where the quantity was evaluated
    return step[keep], y[:, keep]


def plot_early_curves(
    curves: Mapping[str, Mapping[str, Any]],
    ax: Axes | None = None,
    quantity: str = "loss",
    window: Mapping[str, int] | None = None,
) -> Axes:
    """Train (solid) and test (dashed) loss or accuracy over the first steps (fig. 5C, S6A).

    Parameters
    ----------
    curves : dict regime -> dict
        ``"step"`` (n,) and ``"train_<quantity>"``, ``"test_<quantity>"`` arrays (n_runs, n),
        NaN where not evaluated. Mean +- one standard deviation over runs is drawn.
    quantity : {"loss", "accuracy"}
    window : dict regime -> int, optional
        Draw a thin vertical line at this step for the regime (the Koopman window, fig. S6A).
    ax : matplotlib Axes, optional
        Drawn into; a new figure's otherwise.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        ``quantity`` is neither ``"loss"`` nor ``"accuracy"``.
    KeyError
        A curve lacks ``"step"`` or the quantity's arrays.

    Examples
    --------
    >>> import numpy as np
    >>> step = np.arange(0, 50, 10)
    >>> def curve(rate):  # two runs evaluated every 10 steps
    ...     loss = np.stack([4.0 * np.exp(-rate * step), 4.1 * np.exp(-rate * step)])
    ...     return {"step": step, "train_loss": loss, "test_loss": loss + 0.5,
    ...             "train_accuracy": 1 - loss / 5, "test_accuracy": 0.9 - loss / 5}
    >>> curves = {"unconstrained": curve(0.05), "constrained": curve(0.02)}
    >>> ax = plot_early_curves(curves, quantity="accuracy", window={"constrained": 30})
    >>> ax.get_legend_handles_labels()[1][:2], ax.get_ylabel()
    (['unconstrained (groks), train', 'unconstrained (groks), test'], 'accuracy')
    """
    if quantity not in ("loss", "accuracy"):
        raise ValueError(f"quantity must be 'loss' or 'accuracy', got {quantity!r}")
    if ax is None:
        _, ax = new_figure()
    for regime, curve in curves.items():
        color = REGIME_COLORS.get(regime, "#0072b2")
        for split, ls in (("train", "-"), ("test", "--")):
            step, y = _series(curve, f"{split}_{quantity}")
            finite = np.where(np.isfinite(y), y, 0.0)
            count = np.isfinite(y).sum(axis=0)
            mean = finite.sum(axis=0) / count
            sd = np.sqrt(np.where(np.isfinite(y), (y - mean) ** 2, 0.0).sum(axis=0) / count)
            ax.plot(
                step, mean, color=color, ls=ls, lw=1.5, label=f"{_LABELS.get(regime, regime)}, {split}"
            )
            if y.shape[0] > 1:
                ax.fill_between(step, mean - sd, mean + sd, color=color, alpha=0.15, lw=0)
        if window and regime in window:
            ax.axvline(window[regime], color=color, lw=0.7)
    ax.set_xlabel("training step")
    ax.set_ylabel(quantity)
    ax.legend(fontsize=7, frameon=False)
    return ax


def plot_grokking_curves(
    curve: Mapping[str, Any], ax: Axes | None = None, title: str | None = None
) -> Axes:
    """Train and test accuracy of one long run on a log-step axis (fig. 5A/B).

    Parameters
    ----------
    curve : dict
        ``"step"`` (n,), ``"train_accuracy"`` and ``"test_accuracy"`` (n,); step 0 is dropped
        (log axis). With ``"weight_norm"`` (n,), the global weight norm is drawn on a second
        axis (as in the Omnigrok figures).
    ax : matplotlib Axes, optional
        Drawn into; a new figure's otherwise.
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np
    >>> step = np.array([0, 10, 100, 1000])
    >>> curve = {"step": step, "train_accuracy": np.array([0.0, 0.5, 1.0, 1.0]),
    ...          "test_accuracy": np.array([0.0, 0.01, 0.05, 0.99])}
    >>> ax = plot_grokking_curves(curve, title="one run")
    >>> ax.get_xscale(), ax.get_title(), ax.get_legend_handles_labels()[1]
    ('log', 'one run', ['train', 'test'])
    """
    if ax is None:
        _, ax = new_figure()
    for split, color in (("train", "#0072b2"), ("test", "#d55e00")):
        step, y = _series(curve, f"{split}_accuracy")
        keep = step > 0
        ax.plot(step[keep], y[0, keep], color=color, lw=1.5, label=split)
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("training step")
    ax.set_ylabel("accuracy")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    if "weight_norm" in curve:
        step, norm = _series(curve, "weight_norm")
        keep = step > 0
        twin = ax.twinx()
        twin.plot(step[keep], norm[0, keep], color="#cc79a7", lw=1.0, ls=":")
        twin.set_ylabel("global weight norm (dotted)", color="#cc79a7", fontsize=8)
        twin.tick_params(labelsize=8, colors="#cc79a7")
    return ax


def _pooled(spectra: Sequence[Any]) -> np.ndarray:
    return np.concatenate(
        [np.asarray(getattr(s, "eigenvalues", s), dtype=complex).ravel() for s in spectra]
    )


def _eigen_panel(spectra: Mapping[str, Sequence[Any]], ax: Axes, title: str, zoom: bool = False) -> None:
    # Unconstrained first: plot_eigenvalues draws the first label hollow in PALETTE[0], the
    # second filled in PALETTE[1], matching REGIME_COLORS.
    pooled = {_LABELS.get(k, k): _pooled(v) for k, v in spectra.items()}
    box = None
    if zoom:
        eig = np.concatenate(list(pooled.values()))
        eig = eig[np.abs(eig) > 0.5]
        if eig.size:
            pad = 0.05
            box = (
                float(eig.real.min()) - pad,
                float(eig.real.max()) + pad,
                float(eig.imag.min()) - pad,
                float(eig.imag.max()) + pad,
            )
    plot_eigenvalues(pooled, ax=ax, zoom=box)
    ax.set_title(title)


def figure_fig5(
    curves: Mapping[str, Mapping[str, Any]],
    spectra: Mapping[str, Sequence[Any]],
    *,
    pvalue: float | None = None,
) -> Figure:
    """Figure 5C/D: early train/test loss and accuracy with spread, and the Koopman eigenvalues.

    Parameters
    ----------
    curves : dict regime -> dict (see :func:`plot_early_curves`), cut to the fig. 5 window
    spectra : dict regime -> sequence of Spectrum (one per seed; all seeds are drawn)
    pvalue : float, optional
        Permutation-test p-value, shown in the eigenvalue panel's title.

    Returns
    -------
    matplotlib.figure.Figure
        Four panels: loss, accuracy, eigenvalues and their zoom.

    Examples
    --------
    >>> import numpy as np
    >>> runs = np.array([[2.0, 1.0, 0.5], [2.2, 1.1, 0.6]])  # 2 runs, evaluated at 3 steps
    >>> one = {"step": np.array([0, 5, 10]), "train_loss": runs, "test_loss": runs + 1,
    ...        "train_accuracy": 1 - runs / 3, "test_accuracy": 0.5 - runs / 5}
    >>> curves = {"unconstrained": one, "constrained": one}
    >>> spectra = {"unconstrained": [[0.99, 0.9 + 0.1j, 0.9 - 0.1j]], "constrained": [[0.98, 0.7]]}
    >>> print(figure_fig5(curves, spectra, pvalue=0.012).axes[2].get_title())
    D: Koopman eigenvalues (all seeds)
    permutation test p = 0.012
    """
    fig, axes = new_figure(1, 4, width=18.0, height=4.0)
    plot_early_curves(curves, ax=axes[0], quantity="loss")
    axes[0].set_title("C: loss, first steps (mean ± sd over runs)")
    plot_early_curves(curves, ax=axes[1], quantity="accuracy")
    axes[1].set_title("accuracy, first steps")
    title = "D: Koopman eigenvalues (all seeds)"
    if pvalue is not None:
        title += f"\npermutation test p = {pvalue:.3g}"
    _eigen_panel(spectra, axes[2], title)
    _eigen_panel(spectra, axes[3], "D, zoomed on |λ| > 0.5", zoom=True)
    return fig


def figure_s6(
    curves: Mapping[str, Mapping[str, Any]],
    spectra: Mapping[str, Sequence[Any]],
    windows: Mapping[str, int],
    *,
    pvalue: float | None = None,
) -> Figure:
    """Figure S6: constrained runs over a longer window; loss with window marks and eigenvalues.

    Parameters
    ----------
    curves, spectra, pvalue
        As :func:`figure_fig5`.
    windows : dict regime -> int
        The last step of each regime's Koopman window, drawn as a vertical line.

    Returns
    -------
    matplotlib.figure.Figure
        Three panels: loss with the window marks, eigenvalues and their zoom.

    Examples
    --------
    >>> import numpy as np
    >>> loss = np.array([[3.0, 2.0, 1.5, 1.2]])  # one run: only the loss is drawn
    >>> curves = {r: {"step": np.arange(0, 40, 10), "train_loss": loss, "test_loss": 1.1 * loss}
    ...           for r in ("unconstrained", "constrained")}
    >>> spectra = {"unconstrained": [[0.99, 0.9]], "constrained_s6": [[0.98, 0.7]]}
    >>> fig = figure_s6(curves, spectra, {"unconstrained": 20, "constrained": 40})
    >>> [ax.get_title() for ax in fig.axes]
    ['A: loss; vertical lines = Koopman windows', 'B: Koopman eigenvalues', 'B, zoomed on |λ| > 0.5']
    """
    fig, axes = new_figure(1, 3, width=14.0, height=4.0)
    plot_early_curves(curves, ax=axes[0], quantity="loss", window=windows)
    axes[0].set_title("A: loss; vertical lines = Koopman windows")
    title = "B: Koopman eigenvalues"
    if pvalue is not None:
        title += f"\npermutation test p = {pvalue:.3g}"
    _eigen_panel(spectra, axes[1], title)
    _eigen_panel(spectra, axes[2], "B, zoomed on |λ| > 0.5", zoom=True)
    return fig


def figure_grokking_curves(long_curves: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Figure 5A/B: train vs test accuracy of one long run per regime, log-step axis.

    Parameters
    ----------
    long_curves : dict regime -> dict
        One long run per regime, as :func:`plot_grokking_curves` takes it.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per regime, lettered A, B, ...

    Raises
    ------
    ValueError
        ``long_curves`` is empty.

    Examples
    --------
    >>> import numpy as np
    >>> train = np.minimum(1.0, np.logspace(-1, 1, 7))  # memorised early ...
    >>> groks = {"step": np.logspace(0, 6, 7), "train_accuracy": train,
    ...          "test_accuracy": np.r_[np.zeros(5), 0.6, 1.0]}  # ... generalised late
    >>> fig = figure_grokking_curves({"unconstrained": groks, "constrained": groks})
    >>> [ax.get_title() for ax in fig.axes]
    ['A: unconstrained (groks)', 'B: constrained norm']
    """
    n = len(long_curves)
    if n == 0:
        raise ValueError("long_curves is empty; give at least one regime")
    fig, axes = new_figure(1, n, width=4.6 * n, height=3.6)
    axes = np.atleast_1d(axes)
    for ax, (regime, curve), letter in zip(axes, long_curves.items(), "ABCDEFG"):
        plot_grokking_curves(curve, ax=ax, title=f"{letter}: {_LABELS.get(regime, regime)}")
    return fig


def draw_all(
    folder: str | os.PathLike[str],
    curves: Mapping[str, Mapping[str, Any]],
    spectra: Mapping[str, Sequence[Any]],
    pvalues: Mapping[str, float],
    long_curves: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Path]:
    """Every figure of a grokking run into ``folder`` (PNG + SVG): ``fig5`` (:func:`figure_fig5`),
    ``figS6`` (:func:`figure_s6`, when ``curves`` has ``constrained_s6``) and ``fig5AB``
    (:func:`figure_grokking_curves`, with ``long_curves``).

    Parameters
    ----------
    folder : path
        An existing folder.
    curves : dict condition -> dict
        Per-run curves (see :func:`plot_early_curves`) of ``unconstrained`` and ``constrained``
        over the fig. 5 window and, for fig. S6, of ``constrained_s6`` over its longer window;
        the last step of each curve is its Koopman window.
    spectra : dict condition -> sequence of Spectrum
        One per seed, for the same conditions.
    pvalues : dict pair -> float
        Permutation-test p-values of the pairs ``fig5`` (and ``s6``), shown in the titles.
    long_curves : dict regime -> dict, optional
        One long run per regime (fig. 5A/B).

    Returns
    -------
    list of Path
        The files written.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> loss = np.array([[2.0, 1.0, 0.5], [2.2, 1.1, 0.6]])  # 2 runs, 3 evaluations
    >>> one = {"step": np.array([0, 5, 10]), "train_loss": loss, "test_loss": loss + 1,
    ...        "train_accuracy": 1 - loss / 3, "test_accuracy": 0.5 - loss / 5}
    >>> spectra = {"unconstrained": [[0.99, 0.9]], "constrained": [[0.98, 0.7]]}
    >>> with tempfile.TemporaryDirectory() as out:
    ...     paths = draw_all(out, {"unconstrained": one, "constrained": one}, spectra,
    ...                      {"fig5": 0.3})
    ...     print(sorted(p.name for p in paths))
    ['fig5.png', 'fig5.svg']
    """
    folder = Path(folder)
    fig5 = {k: curves[k] for k in ("unconstrained", "constrained")}
    paths = save_figure(figure_fig5(fig5, {k: spectra[k] for k in fig5}, pvalue=pvalues["fig5"]),
                        folder / "fig5")
    if "constrained_s6" in curves:
        s6 = {"unconstrained": curves["unconstrained"], "constrained": curves["constrained_s6"]}
        windows = {k: int(np.asarray(v["step"])[-1]) for k, v in s6.items()}
        pair = {k: spectra[k] for k in ("unconstrained", "constrained_s6")}
        paths += save_figure(figure_s6(s6, pair, windows, pvalue=pvalues["s6"]), folder / "figS6")
    if long_curves is not None:
        paths += save_figure(figure_grokking_curves(long_curves), folder / "fig5AB")
    return paths


def study_figures(reader: Any, groups: Sequence[Any], scalars: Sequence[str]
                  ) -> Callable[[Any, Path], list[Path]]:
    """The ``figures`` hook of the grokking study (:func:`conjugacy.analysis.run_pipeline`):
    :func:`draw_all` on the per-run curves ``scalars`` of every condition over its window (fig.
    5C/D, S6 with ``constrained_s6``, 5A/B when the results hold ``long_curves``), read from
    ``reader`` (:func:`conjugacy.analysis.pipeline.run_scalars`), with the results' spectra and
    the p-values of their verdicts.

    Parameters
    ----------
    reader : StudyReader
    groups : sequence of SpectrumGroup
        One per (condition, seed); ``steps[1]`` is the condition's window.
    scalars : sequence of str
        The recorded curves (``train_loss``, ``test_accuracy``, ...).
    """
    from ..analysis.pipeline import run_scalars

    windows: dict[str, tuple[int, list[str]]] = {}
    for g in groups:
        windows.setdefault(g.condition, (g.steps[1], []))[1].extend(g.runs)

    def figures(res: Any, out: Path) -> list[Path]:
        curves = {c: run_scalars(reader, runs, scalars, stop=n)
                  for c, (n, runs) in windows.items()}
        pvalues = {k: v["pvalue"] for k, v in res.comparison["verdicts"].items()}
        return draw_all(out, curves, res.spectra, pvalues, res["long_curves"])
    return figures
