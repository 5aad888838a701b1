"""Reusable Matplotlib figures: eigenvalues, distances, losses, trajectories; atomic saving.

Every function draws on a given :class:`matplotlib.axes.Axes` (or on a new one in a new
:class:`matplotlib.figure.Figure`) and returns the axes; nothing touches ``pyplot`` or the global
``rcParams``, so these functions are safe in scripts, tests, servers and notebooks alike. Figures
are rendered by the Agg (PNG) and SVG backends directly. The style (colours, markers, font sizes) is
set explicitly on each artist, from the constants below. No computation happens here: the inputs
are the results.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._atomic import atomic_open
from .._checks import as_numeric_array, check_choice, check_int, check_ndim

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

#: Colours of named conditions; the paper draws OMD black, OGD red and BM blue.
NAMED_COLORS = {"omd": "#000000", "ogd": "#d62728", "bm": "#1f77b4"}
#: Colours given, in order, to labels without a named colour (colour-blind friendly, Okabe-Ito).
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#f0e442", "#000000")
NAMED_MARKERS = {"omd": "o", "ogd": "^", "bm": "*"}
MARKERS = ("o", "^", "s", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.")
FONT_SIZE = 9
DEFAULT_SIZE = (4.5, 3.6)  # inches, one panel
DPI = 150


def color_for(label: str, index: int) -> str:
    """Colour of a condition: its named colour if ``label`` is known (case-insensitive), else
    ``PALETTE[index]`` (cycling).

    Parameters
    ----------
    label : str
        Condition label (``"OMD"``, ``"OGD"`` and ``"BM"`` have the paper's colours).
    index : int
        Position of the condition among those drawn.

    Returns
    -------
    str
        A hex colour.

    Examples
    --------
    >>> color_for("OGD", 0), color_for("adam", 1), color_for("adam", 1 + len(PALETTE))
    ('#d62728', '#d55e00', '#d55e00')
    """
    return NAMED_COLORS.get(str(label).lower(), PALETTE[index % len(PALETTE)])


def _marker_for(label: str, index: int) -> str:
    return NAMED_MARKERS.get(str(label).lower(), MARKERS[index % len(MARKERS)])


def new_figure(
    nrows: int = 1,
    ncols: int = 1,
    *,
    width: float | None = None,
    height: float | None = None,
    margins: Mapping[str, float] | None = None,
) -> tuple[Figure, Any]:
    """A new :class:`Figure` (constrained layout, or fixed ``margins``) and its axes (one Axes,
    or an array of them).

    ``width``/``height`` in inches default to ``DEFAULT_SIZE`` per panel.

    Parameters
    ----------
    nrows, ncols : int
        Grid of panels, each >= 1.
    width, height : float, optional
        Size of the whole figure in inches.
    margins : dict, optional
        A fixed layout instead of the constrained one: keyword arguments of
        :meth:`Figure.subplots_adjust` (``left``, ``right``, ``bottom``, ``top`` as fractions of
        the figure, ``wspace``, ``hspace`` as fractions of a panel). The constrained layout
        measures every text before drawing (about half of a report figure's drawing time); a
        fixed one suits figures whose texts have a known size.

    Returns
    -------
    fig : Figure
        Not registered with ``pyplot`` (nothing to close).
    axes : Axes or ndarray of Axes
        One Axes for a 1 x 1 grid, else an array (squeezed like ``pyplot.subplots``).

    Raises
    ------
    ValueError
        If ``nrows`` or ``ncols`` is below 1.
    TypeError
        If ``nrows`` or ``ncols`` is not an integer (:func:`conjugacy._checks.check_int`), or
        ``margins`` names another setting than ``subplots_adjust``'s.

    Examples
    --------
    >>> fig, axes = new_figure(1, 2)
    >>> fig.get_size_inches(), axes.shape
    (array([9. , 3.6]), (2,))
    >>> fig, ax = new_figure(margins={"left": 0.2})
    >>> fig.get_layout_engine() is None, float(ax.get_position().x0)
    (True, 0.2)
    """
    nrows = check_int(nrows, "nrows", minimum=1)
    ncols = check_int(ncols, "ncols", minimum=1)
    w = DEFAULT_SIZE[0] * ncols if width is None else float(width)
    h = DEFAULT_SIZE[1] * nrows if height is None else float(height)
    fig = Figure(figsize=(w, h), layout=None if margins is not None else "constrained", dpi=DPI)
    if margins is not None:
        fig.subplots_adjust(**margins)
    axes = fig.subplots(nrows, ncols, squeeze=True)
    for ax in np.atleast_1d(axes).ravel():
        _style(ax)
    return fig, axes


def _style(ax: Axes) -> None:
    ax.tick_params(labelsize=FONT_SIZE)
    for text in (ax.xaxis.label, ax.yaxis.label, ax.title):
        text.set_size(FONT_SIZE + 1)
    ax.spines[["top", "right"]].set_visible(False)


def _axes(ax: Axes | None, size: tuple[float, float] = DEFAULT_SIZE) -> Axes:
    if ax is None:
        _, ax = new_figure(width=size[0], height=size[1])
        return ax
    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    _style(ax)
    return ax


def _check_mapping(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or len(value) == 0:
        raise TypeError(
            f"{name} must be a non-empty dict mapping a label to data, got {type(value).__name__}"
            + (" (empty)" if isinstance(value, Mapping) else "")
        )
    return value


def _eigenvalues(value: Any, name: str) -> np.ndarray:
    """A Spectrum's eigenvalues, or an array of them, as complex128 (k,)."""
    arr = as_numeric_array(getattr(value, "eigenvalues", value), name)
    check_ndim(arr, name, (1,), "one eigenvalue per entry")
    return arr.astype(np.complex128)


def legend_label(text: Any) -> str:
    """``text`` as the label of a Matplotlib artist that stays in the legend: Matplotlib leaves
    out every label starting with ``_`` (its mark for hidden artists, ``"_nolegend_"``), so a
    user's condition named ``_warmup`` vanished from the legend; a leading ``_`` gets a space
    before it. The one rule for every figure of :mod:`conjugacy.plots` and the report.

    Parameters
    ----------
    text : Any
        A condition or curve label (converted with ``str``).

    Returns
    -------
    str
        ``text`` unchanged, or with a space before a leading ``_``.

    Examples
    --------
    >>> legend_label("_warmup"), legend_label("adam"), legend_label(3)
    (' _warmup', 'adam', '3')
    """
    label = str(text)
    return " " + label if label.startswith("_") else label


def _legend(ax: Axes, **kwargs: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=FONT_SIZE - 1, frameon=False, **kwargs)


# ----- eigenvalues -----------------------------------------------------------------------------
def plot_eigenvalues(
    spectra: Mapping[str, Any],
    ax: Axes | None = None,
    zoom: tuple[float, float, float, float] | None = None,
    unit_circle: bool = True,
    colors: Mapping[str, str] | None = None,
    intervals: Mapping[str, Any] | None = None,
) -> Axes:
    """Koopman eigenvalues of several conditions on the complex plane.

    Parameters
    ----------
    spectra : dict label -> Spectrum or array-like complex (k,)
        One marker style and colour per label (OMD/OGD/BM get the paper's black/red/blue).
    ax : Axes, optional
        Drawn on a new figure if None.
    zoom : (re_min, re_max, im_min, im_max), optional
        Limits of a zoomed view; without it the view shows the unit disc (or all eigenvalues,
        whichever is larger) with equal aspect.
    unit_circle : bool
        Draw the unit circle (dashed): inside decays, on it persists, outside grows.
    colors : dict label -> colour, optional
        Fixed colours, so a condition keeps its colour across figures; other labels get
        :func:`color_for`.
    intervals : dict label -> EigenvalueIntervals, optional
        Bootstrap intervals (:func:`conjugacy.uncertainty.bootstrap_spectrum`) drawn as error bars
        of the real and imaginary parts around that label's point estimates.

    Returns
    -------
    Axes

    Raises
    ------
    TypeError
        If ``spectra`` is empty or not a mapping, or an entry does not hold numbers.
    ValueError
        If an entry is not 1-D, or ``zoom`` is not four increasing limits.

    Examples
    --------
    >>> import numpy as np
    >>> ax = plot_eigenvalues({"sgd": [0.9, 0.5 + 0.3j, 0.5 - 0.3j], "adam": np.array([0.8, 0.4])})
    >>> ax.get_legend_handles_labels()[1]  # label (number of eigenvalues)
    ['sgd (3)', 'adam (2)']
    """
    spectra = _check_mapping(spectra, "spectra")
    if zoom is not None:
        try:
            x0, x1, y0, y1 = (float(v) for v in zoom)
        except (TypeError, ValueError):
            raise ValueError(f"zoom must be (re_min, re_max, im_min, im_max), got {zoom!r}") from None
        if not (x0 < x1 and y0 < y1):
            raise ValueError(f"zoom must have re_min < re_max and im_min < im_max, got {zoom!r}")
    ax = _axes(ax)
    if unit_circle:
        theta = np.linspace(0.0, 2 * np.pi, 721)
        ax.plot(np.cos(theta), np.sin(theta), color="0.55", ls="--", lw=0.8, zorder=1)
    ax.axhline(0.0, color="0.85", lw=0.6, zorder=0)
    ax.axvline(0.0, color="0.85", lw=0.6, zorder=0)
    extent = 1.0
    n = len(spectra)
    for i, (label, spec) in enumerate(spectra.items()):
        eig = _eigenvalues(spec, f"spectra[{label!r}]")
        color = (colors or {}).get(label) or color_for(label, i)
        marker = _marker_for(label, i)
        hollow = i == 0 and n > 1  # the first set hollow, so overlapping sets stay visible
        ax.scatter(
            eig.real,
            eig.imag,
            s=60 if marker == "*" else 34,
            marker=marker,
            facecolors="none" if hollow else color,
            edgecolors=color,
            linewidths=1.2,
            label=legend_label(f"{label} ({eig.size})"),
            zorder=3 + i,
        )
        if eig.size:
            extent = max(extent, float(np.max(np.abs(eig))))
        iv = (intervals or {}).get(label)
        if iv is not None:  # the eigenvalues whose interval is finite, with their bars
            re, im = np.asarray(iv.real, float), np.asarray(iv.imag, float)
            ok = np.isfinite(re).all(axis=1) & np.isfinite(im).all(axis=1)
            c, re, im = np.asarray(iv.eigenvalues)[ok], re[ok], im[ok]
            ax.errorbar(c.real, c.imag, xerr=np.abs([c.real - re[:, 0], re[:, 1] - c.real]),
                        yerr=np.abs([c.imag - im[:, 0], im[:, 1] - c.imag]), fmt="none",
                        ecolor=color, elinewidth=0.9, capsize=2, zorder=2 + i)
    if zoom is None:  # the unit disc, or every eigenvalue, square
        x0 = y0 = -1.12 * extent
        x1 = y1 = 1.12 * extent
        ax.set_aspect("equal", adjustable="box")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    # the Unicode letter, not TeX's $\lambda$: mathtext's parser is built on first use (~0.1 s)
    ax.set_xlabel("Re \u03bb")
    ax.set_ylabel("Im \u03bb")
    # Full view: the lower-left corner of the square lies outside the unit disc, usually empty.
    _legend(ax, loc="lower left" if zoom is None else "best")
    return ax


# ----- distances -------------------------------------------------------------------------------
def plot_distance_heatmap(
    matrix: Any,
    labels: Sequence[str],
    ax: Axes | None = None,
    log10: bool = False,
    annotate: bool | None = None,
    cmap: str = "viridis",
    colorbar: bool = True,
) -> Axes:
    """A matrix of distances between spectra as a heat map with a colour bar (fig. 4A/B style).

    Parameters
    ----------
    matrix : array (n, n), finite, >= 0
    labels : sequence of n str
    log10 : bool
        Colour by ``log10(distance)``; zero entries (the diagonal) are left blank.
    annotate : bool, optional
        Write the values in the cells; default: when ``n <= 8``.
    colorbar : bool
        Draw the heat map's colour bar beside it; False for panels that share one colour bar
        (``ax.images[0]`` is the mappable to give it).

    Returns
    -------
    Axes

    Raises
    ------
    ValueError
        If ``matrix`` is not square, finite and non-negative, or ``labels`` has not ``n`` entries.

    Examples
    --------
    >>> import numpy as np
    >>> d = np.array([[0.0, 0.1, 0.3], [0.1, 0.0, 0.2], [0.3, 0.2, 0.0]])
    >>> ax = plot_distance_heatmap(d, ["a", "b", "c"])
    >>> [t.get_text() for t in ax.texts][:3], [t.get_text() for t in ax.get_xticklabels()]
    (['0', '0.1', '0.3'], ['a', 'b', 'c'])
    """
    d = np.array(matrix, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"matrix must be square (n, n), got shape {d.shape}")
    labels = [str(v) for v in labels]
    if len(labels) != d.shape[0]:
        raise ValueError(
            f"labels must have one entry per row of matrix ({d.shape[0]}), got {len(labels)}"
        )
    if not np.isfinite(d).all() or (d < 0).any():
        raise ValueError("matrix must hold finite, non-negative distances")
    ax = _axes(ax, (1.2 + 0.55 * d.shape[0], 0.9 + 0.5 * d.shape[0]))
    shown = np.where(d > 0, np.log10(np.where(d > 0, d, 1.0)), np.nan) if log10 else d
    image = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, origin="upper")
    if colorbar:
        bar = ax.figure.colorbar(image, ax=ax, shrink=0.85)
        bar.set_label(r"log$_{10}$ distance" if log10 else "distance", size=FONT_SIZE)
        bar.ax.tick_params(labelsize=FONT_SIZE - 1)
    n = d.shape[0]
    ax.set_xticks(range(n), labels, rotation=45 if max(map(len, labels)) > 3 else 0, ha="right")
    ax.set_yticks(range(n), labels)
    if annotate is None:
        annotate = n <= 8
    if annotate:
        finite = shown[np.isfinite(shown)]
        mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for i, j in np.argwhere(np.isfinite(shown)):  # row by row, as a double loop
            ax.text(j, i, f"{d[i, j]:.2g}", ha="center", va="center", fontsize=FONT_SIZE - 2,
                    color="white" if shown[i, j] < mid else "black")
    ax.spines[["top", "right"]].set_visible(True)
    return ax


def significance_marks(significance: Sequence[Any]) -> list[str]:
    """Marks for bars: p-values -> ``***`` (< 0.001), ``**`` (< 0.01), ``*`` (< 0.05), ``n.s.``;
    booleans -> ``*`` / ``n.s.``; strings are kept; None -> no mark.

    Parameters
    ----------
    significance : sequence of (float in [0, 1], bool, str or None)

    Returns
    -------
    list of str
        One mark per entry (``""`` for None).

    Raises
    ------
    ValueError
        For an entry of another type, or a number outside [0, 1] (the message names its index).

    Examples
    --------
    >>> significance_marks([0.0004, 0.003, 0.02, 0.3, True, None, "x"])
    ['***', '**', '*', 'n.s.', '*', '', 'x']
    """
    marks = []
    for i, s in enumerate(significance):
        if s is None:
            marks.append("")
        elif isinstance(s, str):
            marks.append(s)
        elif isinstance(s, (bool, np.bool_)):
            marks.append("*" if s else "n.s.")
        elif isinstance(s, (int, float, np.integer, np.floating)) and 0 <= float(s) <= 1:
            p = float(s)
            marks.append("***" if p < 1e-3 else "**" if p < 1e-2 else "*" if p < 0.05 else "n.s.")
        else:
            raise ValueError(
                f"significance[{i}] must be a p-value in [0, 1], a bool, a str or None, got {s!r}"
            )
    return marks


def plot_distance_bars(
    means: Any,
    errors: Any,
    labels: Sequence[str],
    significance: Sequence[Any] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Mean distances as bars with error bars (e.g. mean +- std over seeds), and significance marks.

    Parameters
    ----------
    means : array (n,)
    errors : array (n,) (symmetric) or (2, n) (lower, upper), >= 0; or None
    labels : sequence of n str
    significance : sequence of n p-values / bools / str / None, optional
        See :func:`significance_marks`; drawn above each bar.

    Returns
    -------
    Axes

    Raises
    ------
    ValueError
        If ``means`` is empty or not 1-D, or ``errors``, ``labels`` or ``significance`` does not
        have one entry per mean.

    Examples
    --------
    >>> ax = plot_distance_bars([0.1, 0.3], [0.02, 0.05], ["sgd vs sgd", "sgd vs adam"],
    ...                         significance=[0.4, 0.0005])
    >>> len(ax.patches), [t.get_text() for t in ax.texts]
    (2, ['n.s.', '***'])
    """
    m = np.asarray(means, dtype=np.float64)
    if m.ndim != 1 or m.size == 0:
        raise ValueError(f"means must be a non-empty 1-D array, got shape {m.shape}")
    n = m.size
    labels = [str(v) for v in labels]
    if len(labels) != n:
        raise ValueError(f"labels must have one entry per mean ({n}), got {len(labels)}")
    err = None
    if errors is not None:
        err = np.asarray(errors, dtype=np.float64)
        if err.shape not in ((n,), (2, n)):
            raise ValueError(f"errors must have shape ({n},) or (2, {n}), got {err.shape}")
        if not np.isfinite(err).all() or (err < 0).any():
            raise ValueError("errors must be finite and >= 0")
    if not np.isfinite(m).all():
        raise ValueError("means must be finite")
    marks = None
    if significance is not None:
        if len(significance) != n:
            raise ValueError(f"significance must have one entry per mean ({n}), got {len(significance)}")
        marks = significance_marks(significance)
    ax = _axes(ax, (1.5 + 0.8 * n, 3.4))
    x = np.arange(n)
    colors = [color_for(lab, i) for i, lab in enumerate(labels)]
    ax.bar(x, m, yerr=err, color=colors, alpha=0.85, capsize=4, error_kw={"lw": 1.0})
    ax.set_xticks(x, labels)
    ax.set_ylabel("distance")
    if marks is not None:
        upper = m + (0 if err is None else (err if err.ndim == 1 else err[1]))
        pad = 0.04 * max(float(np.max(np.abs(upper))), 1e-300)
        for xi, top, mark in zip(x, upper, marks):
            if mark:
                ax.text(xi, top + pad, mark, ha="center", va="bottom", fontsize=FONT_SIZE)
        ax.set_ylim(top=float(np.max(upper)) + 5 * pad)
    return ax


# ----- losses and trajectories -----------------------------------------------------------------
def plot_loss_curves(
    curves: Mapping[str, Any],
    ax: Axes | None = None,
    spread: str = "std",
    log: bool = False,
) -> Axes:
    """Mean loss per step with a shaded spread, one curve per condition.

    Parameters
    ----------
    curves : dict label -> array (n_runs, n_steps) (or (n_steps,) for a single run)
    spread : {"std", "minmax"}
        Shade mean +- one standard deviation, or the range from min to max over runs.
    log : bool
        Logarithmic y axis (non-positive values are then not drawn).

    Returns
    -------
    Axes

    Raises
    ------
    TypeError
        If ``curves`` is empty or not a mapping.
    ValueError
        If an entry is not (n_runs, n_steps) or (n_steps,), or ``spread`` is unknown.

    Examples
    --------
    >>> import numpy as np
    >>> ax = plot_loss_curves({"sgd": np.array([[1.0, 0.5, 0.2], [1.0, 0.6, 0.3]])}, log=True)
    >>> ax.get_yscale(), ax.lines[0].get_ydata()  # the mean over runs
    ('log', array([1.  , 0.55, 0.25]))
    """
    curves = _check_mapping(curves, "curves")
    check_choice(spread, "spread", ("std", "minmax"))
    ax = _axes(ax)
    for i, (label, values) in enumerate(curves.items()):
        y = np.asarray(values, dtype=np.float64)
        if y.ndim == 1:
            y = y[None]
        if y.ndim != 2 or y.shape[1] == 0:
            raise ValueError(
                f"curves[{label!r}] must be (n_runs, n_steps) or (n_steps,), got shape "
                f"{np.shape(values)}"
            )
        color = color_for(label, i)
        steps = np.arange(y.shape[1])
        mean, sd = y.mean(axis=0), y.std(axis=0)
        lo, hi = (mean - sd, mean + sd) if spread == "std" else (y.min(axis=0), y.max(axis=0))
        ax.plot(steps, mean, color=color, lw=1.5, label=legend_label(label))
        if y.shape[0] > 1:
            ax.fill_between(steps, lo, hi, color=color, alpha=0.18, lw=0)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    _legend(ax)
    return ax


def plot_trajectories(
    trajectories: Mapping[str, Any],
    ax: Axes | None = None,
    feature_names: Mapping[str, Sequence[str]] | None = None,
    max_features: int = 4,
) -> Axes:
    """Each feature of one trajectory per condition against the step (fig. 2A style).

    Parameters
    ----------
    trajectories : dict label -> array (n_steps, n_features) (or (n_steps,))
        The colour says the condition, the line style the feature.
    feature_names : dict label -> names, optional
        Legend names of the features (e.g. ``("x_1", "x_2")``; TeX math is added).
    max_features : int
        Only the first ``max_features`` features are drawn.

    Returns
    -------
    Axes

    Raises
    ------
    TypeError
        If ``trajectories`` is empty or not a mapping.
    ValueError
        If an entry is not (n_steps, n_features) or (n_steps,).

    Examples
    --------
    >>> import numpy as np
    >>> ax = plot_trajectories({"sgd": np.zeros((5, 2))}, feature_names={"sgd": ("x_1", "x_2")})
    >>> ax.get_legend_handles_labels()[1]
    ['sgd $x_1$', 'sgd $x_2$']
    """
    trajectories = _check_mapping(trajectories, "trajectories")
    ax = _axes(ax)
    for i, (label, values) in enumerate(trajectories.items()):
        y = np.asarray(values, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2:
            raise ValueError(
                f"trajectories[{label!r}] must be (n_steps, n_features), got shape {y.shape}"
            )
        names = None if feature_names is None else feature_names.get(label)
        color = color_for(label, i)
        for j in range(min(y.shape[1], max_features)):
            name = f"${names[j]}$" if names is not None and j < len(names) else f"{label}[{j}]"
            ax.plot(
                y[:, j],
                color=color,
                ls=LINESTYLES[j % len(LINESTYLES)],
                lw=1.4,
                label=legend_label(f"{label} {name}" if names is not None else name),
            )
    ax.set_xlabel("iteration")
    ax.set_ylabel("state variable")
    _legend(ax, ncols=len(trajectories))
    return ax


# ----- saving ----------------------------------------------------------------------------------
def save_figure(
    fig: Figure,
    path_without_suffix: str | os.PathLike,
    formats: Sequence[str] = ("png", "svg"),
    dpi: float = DPI,
) -> list[Path]:
    """Save ``fig`` once per format (``path.png``, ``path.svg``), each written atomically.

    Each file is rendered into a temporary file in the same folder and renamed over the target, so
    an interrupted save never leaves a truncated image. A suffix equal to one of ``formats`` on
    the given path is dropped first (``fig.png`` -> ``fig``). The parent folder must exist.
    ``dpi`` sets the resolution of raster formats (PNG).

    Parameters
    ----------
    fig : Figure
    path_without_suffix : str or path-like
        Target path; each format's suffix is appended.
    formats : sequence of str
        Formats Matplotlib's canvas supports (``"png"``, ``"svg"``, ``"pdf"``, ...).
    dpi : float
        Resolution of raster formats, in [10, 2000].

    Returns
    -------
    list of Path, one per format

    Raises
    ------
    TypeError
        If ``fig`` is not a Matplotlib Figure.
    ValueError
        If ``dpi`` is out of range or a format is empty or unsupported.

    Examples
    --------
    >>> import tempfile
    >>> fig, ax = new_figure()
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     paths = save_figure(fig, f"{tmp}/eigenvalues.png")
    ...     print([p.name for p in paths], all(p.stat().st_size > 0 for p in paths))
    ['eigenvalues.png', 'eigenvalues.svg'] True
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or not 10 <= dpi <= 2000:
        raise ValueError(f"dpi must be a number in [10, 2000], got {dpi!r}")
    formats = [str(f).lower().lstrip(".") for f in formats]
    if not formats:
        raise ValueError("formats must name at least one format, e.g. ('png', 'svg')")
    supported = fig.canvas.get_supported_filetypes()
    for f in formats:
        if f not in supported:
            raise ValueError(f"format {f!r} is not supported; choose from {sorted(supported)}")
    base = Path(path_without_suffix)
    if base.suffix.lstrip(".").lower() in formats:
        base = base.with_suffix("")
    if not base.parent.is_dir():
        raise FileNotFoundError(f"cannot save {str(base)!r}: folder {str(base.parent)!r} does not exist")
    written = []
    for f in formats:
        path = base.with_name(f"{base.name}.{f}")
        with atomic_open(path, "wb") as fh:
            fig.savefig(fh, format=f, dpi=dpi)
        written.append(path)
    return written
