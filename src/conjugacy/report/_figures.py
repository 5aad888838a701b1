"""The report's figures, drawn with :mod:`conjugacy.plots` from a results dict (no computation).

Each figure is returned as a :class:`ReportFigure`: a name, a caption and the PNG bytes, which
the HTML writer embeds (base64) and the Markdown writer saves beside ``report.md``.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._bounded_json import UnsafeFile, read_bytes
from .._text import cut, shown
from ._content import (
    MAX_NAME,
    ReportError,
    between_conditions,
    chosen,
    comparison_of,
    complex_values,
    short_names,
)

__all__ = ["ReportFigure", "figures_folder", "report_figures", "study_figures"]

DPI = 110
#: Bounds on the figures a results.json lists (a study draws ~10 of ~100 kB; issue 26).
MAX_STUDY_FIGURES, MAX_FIGURE_BYTES = 64, 32 * 2**20
#: Panels drawn per figure (one per condition or pair): 64 conditions drew for 25 s CPU before
#: (issue 26); the tables list them all, the figures show the first ones and say so.
MAX_PANELS = 9


def figures_folder(out: str | os.PathLike[str]) -> Path:
    """The folder ``out/figures`` where a report saves its PNGs, created if absent, never through
    a symbolic link (issue 26: a planted ``figures -> ~/elsewhere`` made the report write, and
    replace, PNGs in the link's target).

    Parameters
    ----------
    out : str or path-like
        The output folder (created with its parents if absent).

    Returns
    -------
    Path
        ``out / "figures"``, a real folder.

    Raises
    ------
    OSError
        If ``out/figures`` is a symbolic link (refused: nothing is written through it; remove the
        link or choose another output folder), or exists and is not a folder
        (:class:`NotADirectoryError`).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print(figures_folder(tmp).name, (Path(tmp) / "figures").is_dir())
    figures True
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "figures"
    # a link at the name (even a dangling one) is not followed: FileExistsError, then refused
    with contextlib.suppress(FileExistsError):
        os.mkdir(path)
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        raise OSError(f"the figures folder {str(path)!r} is a symbolic link; refused (nothing is "
                      "written through a link): remove the link or choose another output folder")
    if not stat.S_ISDIR(mode):
        raise NotADirectoryError(f"{str(path)!r} is not a folder; a report saves its figures "
                                 "there: move the file or choose another output folder")
    return path


def _first(items: Any) -> tuple[list[Any], str]:
    """The first :data:`MAX_PANELS` of ``items`` and a caption note when some were left out."""
    items = list(items)
    if len(items) <= MAX_PANELS:
        return items, ""
    return items[:MAX_PANELS], (f" Only the first {MAX_PANELS} of {len(items)} panels are drawn "
                                "(the tables list all).")


@dataclass(frozen=True)
class ReportFigure:
    """One figure: ``name`` (file stem), ``caption`` (plain text), ``png`` (bytes).

    Examples
    --------
    Made by :func:`report_figures` and :func:`study_figures`, or directly, to add a figure of
    one's own to :func:`~conjugacy.report.render_html`:

    >>> import io
    >>> from conjugacy.plots import new_figure
    >>> fig, ax = new_figure()
    >>> buf = io.BytesIO()
    >>> fig.savefig(buf, format="png")
    >>> extra = ReportFigure("my_figure", "What it shows.", buf.getvalue())
    >>> extra.name, extra.png[:4]
    ('my_figure', b'\\x89PNG')
    """

    name: str
    caption: str
    png: bytes


def _label(text: Any) -> str:
    """A user string (condition, window label) as figure text: at most ``MAX_NAME`` characters
    (a 300,000-character label took 131 s to draw; :func:`conjugacy._text.cut`), control
    characters shown as escapes (:func:`conjugacy._text.shown`; Matplotlib warns about missing
    glyphs and prints them), ``$`` escaped (an invalid TeX label stopped the report) and kept in
    legends (:func:`conjugacy.plots.core.legend_label`)."""
    from ..plots.core import legend_label

    return legend_label(shown(cut(text, MAX_NAME), markup=False).replace("$", r"\$"))


def _png(fig: Any) -> bytes:
    """``fig`` as PNG bytes at :data:`DPI`, drawn once: ``savefig`` draws a figure with a layout
    engine twice (a layout pass that measures every text, then the rendering), which was ~15 %
    of the report's figure time; these bytes equal ``savefig(format="png", dpi=DPI)``'s
    (tested). ``fig`` is left on an Agg canvas at :data:`DPI`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.image import imsave

    fig.set_dpi(DPI)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # runs the layout engine, then renders
    buf = io.BytesIO()
    imsave(buf, np.asarray(canvas.buffer_rgba()), format="png", origin="upper", dpi=DPI)
    return buf.getvalue()


def _zoom(eigs: Sequence[np.ndarray], margin: float = 0.15) -> tuple[float, float, float, float]:
    """Limits framing the eigenvalues of modulus > 0.5 and the point 1 (training spectra crowd
    near ``1 + 0j``)."""
    z = np.concatenate([e[np.isfinite(e)] for e in eigs]) if eigs else np.zeros(0, complex)
    z = z[np.abs(z) > 0.5] if np.any(np.abs(z) > 0.5) else z
    re = np.append(z.real, 1.0)
    im = np.append(z.imag, 0.0)
    span_re = max(float(re.max() - re.min()), 1e-3)
    span_im = max(float(np.abs(im).max()), 0.25 * span_re, 1e-3)
    return (float(re.min()) - margin * span_re, float(re.max()) + margin * span_re,
            -(1 + margin) * span_im, (1 + margin) * span_im)


#: Tick labels (conditions, seeds) up to this many characters get the report's fixed layout;
#: longer ones the constrained layout, which measures every text (half a figure's drawing time).
MAX_FIXED_LABEL = 12
#: Inches per character of a tick label: 9 pt DejaVu Sans's widest letter ("W"; ~0.07 on average).
_CHAR_INCHES = 0.125


#: Room (inches: left, bottom, top) around a panel whose tick labels are numbers and whose
#: legend lies inside: the report draws such panels on a fixed layout.
_NUMERIC = (0.75, 0.5, 0.35)


def _margins(width: float, height: float, cols: int, rows: int, *, left: float, bottom: float,
             top: float, right: float = 0.15) -> dict[str, float]:
    """:meth:`Figure.subplots_adjust` settings for a grid of ``cols`` x ``rows`` panels on a
    ``width`` x ``height`` inch figure with ``left`` (tick labels and axis label), ``bottom``,
    ``top`` (title) and ``right`` inches around every panel."""
    ax_w = (width - (left + right) * cols) / cols
    ax_h = (height - (bottom + top) * rows) / rows
    return {"left": left / width, "right": 1 - right / width, "bottom": bottom / height,
            "top": 1 - top / height, "wspace": (left + right) / ax_w,
            "hspace": (bottom + top) / ax_h}


def _eigen_figure(sets: Mapping[str, np.ndarray], title: str) -> Any:
    from ..plots import new_figure, plot_eigenvalues

    # a fixed layout: the tick labels are numbers, the legends lie inside the axes
    fig, (full, zoom) = new_figure(1, 2, width=9.0, height=4.0, margins=_margins(
        9.0, 4.0, 2, 1, left=_NUMERIC[0], bottom=_NUMERIC[1], top=0.3, right=0.05))
    plot_eigenvalues(sets, ax=full)
    # y=1: a title placed once, not moved clear of top ticks at every draw (there are none)
    full.set_title(f"{title}: unit circle", y=1.0)
    plot_eigenvalues(sets, ax=zoom, zoom=_zoom(list(sets.values())))
    zoom.set_title(f"{title}: zoom near 1", y=1.0)
    return fig


def _pooled(per_seed: Sequence[Any], where: str) -> np.ndarray:
    parts = [complex_values(sp.get("eigenvalues") if isinstance(sp, Mapping) else sp,
                            f"{where}[{s}]") for s, sp in enumerate(per_seed)]
    return np.concatenate(parts) if parts else np.zeros(0, complex)


def report_figures(results: Mapping[str, Any]) -> list[ReportFigure]:
    """Every figure the results allow, in report order.

    eigenvalues (all, and filtered when the comparison holds them) with the unit circle and a zoom;
    distance matrices (conditions, with each condition's seed-to-seed floor on the diagonal;
    seeds within each condition; one colour scale); the conditions compared window by window over
    training steps; loss curves with each run's early-warning alarm and onset (vertical lines);
    windowed distance heatmaps with their change points. Conditions are shown by their short
    names (:func:`conjugacy.report.short_names`).

    Parameters
    ----------
    results : dict
        Schema in :mod:`conjugacy.report`.

    Returns
    -------
    list of ReportFigure

    Raises
    ------
    ReportError
        If a section it draws has the wrong shape.

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> from conjugacy.analysis import compare_conditions, spectra_to_json
    >>> rng = np.random.default_rng(0)
    >>> fit = lambda: koopman_spectrum(np.cumsum(rng.standard_normal((2, 30, 3)), 1), rank=3)
    >>> spectra = {"sgd": [fit() for _ in range(3)], "adam": [fit() for _ in range(3)]}
    >>> results = {"title": "SGD <vs> Adam", "spectra": spectra_to_json(spectra),
    ...            "comparison": compare_conditions(spectra, n_shuffles=10)}
    >>> figures = report_figures(results)
    >>> [f.name for f in figures], figures[0].png[:4]
    (['eigenvalues_all', 'eigenvalues_filtered', 'distances'], b'\\x89PNG')
    """
    figures: list[ReportFigure] = []
    names = short_names(results)
    spectra = results.get("spectra") or {}
    cmp = comparison_of(results)
    n_seeds = "/".join(map(str, sorted({len(v) for v in spectra.values()})))
    for kind, found, where, caption in (
        ("all", spectra, "results['spectra']",
         f"Koopman eigenvalues of every seed ({n_seeds} per condition), all eigenvalues of each "
         "fit. Dashed: the unit circle (inside decays, on it persists, outside grows). Right: "
         "zoom near 1, where training spectra crowd."),
        ("filtered", (cmp.get("filtered") or {}).get("eigenvalues") if cmp else None,
         "comparison['filtered']['eigenvalues']",
         "The eigenvalues the verdicts use: those the residual filter keeps (eigenpairs whose "
         "data residual marks them as supported by the data), every seed."),
    ):
        if found:
            sets = {_label(names.get(str(c), c)): _pooled(v, f"{where}[{c!r}]")
                    for c, v in found.items()}
            figures.append(ReportFigure(f"eigenvalues_{kind}", caption,
                                        _png(_eigen_figure(sets, f"{kind} eigenvalues"))))
    if cmp:
        fig = _distances_figure(cmp, names)
        if fig is not None:
            figures.append(fig)
    windows = results.get("windows") or {}
    between = between_conditions(results)
    if between is not None and between["pairs"]:
        figures.append(_between_windows_figure(between, names))
    loss = results.get("loss") or {}
    marks = alarm_marks(results)
    if loss or marks:
        figures.append(_loss_figure({names.get(str(c), c): v for c, v in loss.items()},
                                    {names.get(c, c): v for c, v in marks.items()}))
    if isinstance(windows, Mapping) and windows.get("conditions"):
        figures.append(_windows_figure(windows, names))
    return figures


def distance_panels(cmp: Mapping[str, Any], names: Mapping[str, str]
                    ) -> list[tuple[np.ndarray, list[str], str]]:
    """The heatmaps of the distances figure: ``(matrix, labels, title)`` of the mean W1 between
    conditions, its diagonal each condition's mean W1 between its seeds (the noise floor, not
    0), then the W1 between the seeds of each condition."""
    ch = chosen(cmp)
    mat = (ch.get("equivalence_classes") or {}).get("mean_distance_matrix")
    between = ch.get("between_seeds") or {}
    panels: list[tuple[np.ndarray, list[str], str]] = []
    if mat is not None:
        m = np.array(mat, float)
        conds = [str(c) for c in cmp["conditions"]]
        for i, c in enumerate(conds):  # the seed-to-seed floor, not 0, on the diagonal
            floor = (between.get(c) or {}).get("mean")
            m[i, i] = floor if isinstance(floor, int | float) and np.isfinite(floor) else 0.0
        panels.append((m, [_label(names.get(c, c)) for c in conds],
                       "W1 between conditions, seed by seed\n(diagonal: between seeds)"))
    for c, b in _first(between.items())[0]:
        m = np.asarray(b.get("matrix"), float)
        panels.append((m, [f"s{i}" for i in range(m.shape[0])],
                       f"W1 between seeds of {_label(names.get(str(c), c))}"))
    return panels


def _panel_grid(n: int, width: float, height: float, inches: tuple[float, float, float] | None = None,
                extra: float = 0.0) -> tuple[Any, list[Any]]:
    """A figure of ``n`` >= 1 panels, at most 3 a row, each ``width`` x ``height`` inches: the
    figure and its first ``n`` axes (the cells of the last row left over are hidden).

    With ``inches`` (``left``, ``bottom``, ``top``: room for the tick and axis labels and the
    title around every panel) the layout is fixed, and ``extra`` inches are kept free at the
    right (a shared colour bar); without, constrained."""
    from ..plots import new_figure

    cols = min(n, 3)
    rows = -(-n // cols)
    margins = None
    if inches is not None:
        left, bottom, top = inches
        margins = _margins(width * cols + extra, height * rows, cols, rows, left=left,
                           bottom=bottom, top=top)
        margins["right"] -= extra / (width * cols + extra)
    fig, axes = new_figure(rows, cols, width=width * cols + extra, height=height * rows,
                           margins=margins)
    axes = list(np.atleast_1d(axes).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _distances_figure(cmp: Mapping[str, Any], names: Mapping[str, str]) -> ReportFigure | None:
    """The :func:`distance_panels` side by side, on one colour scale (0 to the largest)."""
    from ..plots import plot_distance_heatmap

    panels = distance_panels(cmp, names)
    if not panels:
        return None
    top = max(float(np.nanmax(m)) if m.size else 0.0 for m, _, _ in panels) or 1.0
    longest = max((len(x) for _, labels, _ in panels for x in labels), default=0)
    fixed = longest <= MAX_FIXED_LABEL
    # fixed: room for such labels on both axes (rotated by 45 degrees beyond 3 characters, as
    # plot_distance_heatmap does) and for a two-line title
    text = 0.2 + _CHAR_INCHES * longest
    fig, axes = _panel_grid(len(panels), 3.9, 3.6, (
        text, 0.2 + (0.71 * text if longest > 3 else 0.15), 0.45) if fixed else None, extra=0.9)
    for ax, (m, labels, title) in zip(axes, panels):
        plot_distance_heatmap(m, labels, ax=ax, colorbar=False)
        ax.images[0].set_clim(0.0, top)  # one scale: a cell means the same W1 in every panel
        ax.set_title(title, y=1.0)  # placed once (no ticks on top)
    # one colour bar for every panel (they share the scale): at the right, in the space kept
    # free there by the fixed layout, or placed by the constrained one
    pos = fig.subplotpars
    cax = fig.add_axes((1 - 0.75 / fig.get_figwidth(), pos.bottom, 0.12 / fig.get_figwidth(),
                        pos.top - pos.bottom)) if fixed else None
    bar = fig.colorbar(axes[0].images[0], cax=cax, ax=None if fixed else axes, shrink=0.85)
    bar.set_label("distance (W1)", size=9)
    bar.ax.tick_params(labelsize=8)
    return ReportFigure(
        "distances",
        f"Wasserstein distances (W1) on the {cmp.get('verdict_uses', 'all')} spectra, one colour "
        f"scale (0 to {top:.3g}) for every panel: between conditions (mean over seeds; on the "
        "diagonal each condition's mean distance between its seeds, the noise floor a difference "
        "between conditions is read against), and between the seeds of each condition."
        + _first(chosen(cmp).get("between_seeds") or {})[1], _png(fig))


def _window_middle(w: Mapping[str, Any], window: int) -> float:
    """The middle step of a window entry: from its label "first-last" (steps), else its start
    plus half the window (records, as when the steps are the records)."""
    try:
        first, last = (float(t) for t in str(w.get("label")).split("-"))
        return (first + last) / 2
    except (TypeError, ValueError):
        start = w.get("start")
        return np.nan if not isinstance(start, int | float) else start + (window - 1) / 2


def _between_windows_figure(between: Mapping[str, Any],
                            names: Mapping[str, str]) -> ReportFigure:
    """Per pair of conditions, over training steps: W1 between the conditions per window (95%
    interval), the window's seed-to-seed noise floor, the windows whose verdict is "not
    conjugate", and the step from which on they differ."""
    pairs, cut = _first((between.get("pairs") or {}).values())
    fig, axes = _panel_grid(len(pairs), 4.6, 3.4, _NUMERIC)
    window = int(between.get("window") or 1)
    for ax, entry in zip(axes, pairs):
        per = entry.get("per_window") or []
        x = np.array([_window_middle(w, window) for w in per], float)
        d = np.array([w.get("distance") for w in per], float)  # None (null) is NaN
        floor = np.array([w.get("noise_floor") for w in per], float)
        lo = np.array([(w.get("interval") or [np.nan])[0] for w in per], float)
        hi = np.array([(w.get("interval") or [np.nan, np.nan])[-1] for w in per], float)
        ax.fill_between(x, lo, hi, color="C0", alpha=0.2, lw=0, label="95% interval")
        ax.plot(x, d, "-o", color="C0", ms=4, label="W1 between conditions, seed by seed")
        ax.plot(x, floor, "--", color="0.4", label="noise floor (between seeds)")
        differ = np.array([w.get("verdict") == "not conjugate" for w in per])
        ax.plot(x[differ], d[differ], "o", color="C3", ms=7, label="not conjugate")
        step = entry.get("differ_from_step")
        if step is not None:
            ax.axvline(step, color="C3", lw=1.0)
            ax.text(step, ax.get_ylim()[1], f" differ from step {step}", color="C3",
                    va="top", fontsize=8)
        a, b = (_label(names.get(str(entry.get(k)), entry.get(k))) for k in ("a", "b"))
        ax.set_title(f"{a} vs {b}")
        ax.set_xlabel("training step (window centre)")
        ax.set_ylabel("W1")
    axes[0].legend(frameon=False, fontsize=7)
    return ReportFigure(
        "windows_between_conditions",
        f"When do the conditions differ? W1 between the spectra of two conditions in each window "
        f"of {window} records (mean over {between.get('n_seeds')} seeds, band: 95% interval), "
        "against the mean W1 between seeds of one condition in that window (dashed). Red: "
        f"windows whose permutation test rejects conjugacy (p < {between.get('alpha', 0.05)}); "
        "vertical line: the step from which on every window does." + cut, _png(fig))


#: Runs whose alarm and onset the loss figure's caption lists by name (all are drawn).
MAX_ALARM_NAMES = 12


def alarm_marks(results: Mapping[str, Any]) -> dict[str, list[tuple[str, int | None, int | None]]]:
    """Each run's early-warning alarm step and onset (``results["windows"]["alarms"]``, written
    by ``conjugacy analyze --window``), by condition: ``{condition: [(run, alarm, onset)]}``;
    empty when the results hold none (or the rule could not run).

    Raises
    ------
    ReportError
        An alarms section of the wrong shape (a step that is not an integer or None).

    Examples
    --------
    >>> alarm_marks({"windows": {"alarms": {"runs": {
    ...     "a0": {"alarm_step": 150, "onset": 160, "lead_time": 10, "condition": "sgd"}}}}})
    {'sgd': [('a0', 150, 160)]}
    """
    alarms = (results.get("windows") or {}).get("alarms") if isinstance(
        results.get("windows"), Mapping) else None
    if not isinstance(alarms, Mapping) or not isinstance(alarms.get("runs"), Mapping):
        return {}
    out: dict[str, list[tuple[str, int | None, int | None]]] = {}
    for run, entry in alarms["runs"].items():
        steps = [entry.get(k) if isinstance(entry, Mapping) else "?" for k in ("alarm_step",
                                                                             "onset")]
        if any(v is not None and (isinstance(v, bool) or not isinstance(v, int))
               for v in steps):
            raise ReportError(f"results['windows']['alarms']['runs'][{shown(repr(run))}]: alarm_step "
                              "and onset must be integer steps or null")
        out.setdefault(str(entry.get("condition", "")), []).append((str(run), *steps))
    return out


def _draw_loss(ax: Any, loss: Mapping[str, Any], marks: Mapping[str, Sequence[tuple]]) -> None:
    """Loss curves (mean ± sd) per condition, and each run's alarm (solid vertical line) and
    onset (dotted) in its condition's colour: one collection of lines per condition and kind
    (``gid`` "alarm" / "onset"), not one line artist per run."""
    from ..plots.core import color_for

    labels = list(dict.fromkeys([*loss, *marks]))
    for i, label in enumerate(labels):
        color = color_for(str(label), i)
        curve = loss.get(label)
        if curve is not None:
            if not isinstance(curve, Mapping) or "mean" not in curve:
                raise ReportError(f"results['loss'][{label!r}] must hold 'mean' (and 'std', "
                                  "'steps')")
            mean = np.array(curve["mean"], float)  # None (null) is NaN
            steps = np.asarray(curve.get("steps", np.arange(1, mean.size + 1)), float)
            if steps.shape != mean.shape:
                raise ReportError(f"results['loss'][{label!r}]: 'steps' and 'mean' differ in "
                                  "length")
            ax.plot(steps, mean, color=color, lw=1.4, label=_label(label))
            if curve.get("std") is not None:
                sd = np.array(curve["std"], float)
                ax.fill_between(steps, mean - sd, mean + sd, color=color, alpha=0.18, lw=0)
        runs = marks.get(label, ())
        for kind, col, style in (("alarm", 1, "-"), ("onset", 2, ":")):
            steps = [m[col] for m in runs if m[col] is not None]
            if steps:  # x in steps, y over the whole axes, as axvline draws
                ax.vlines(steps, 0, 1, transform=ax.get_xaxis_transform(), colors=color,
                          lw=1.0, linestyles=style, alpha=0.8, gid=kind)


def _loss_figure(loss: Mapping[str, Any],
                 marks: Mapping[str, Sequence[tuple]] | None = None) -> ReportFigure:
    from ..plots import new_figure

    marks = marks or {}
    fig, ax = new_figure(width=6.0, height=3.6, margins=_margins(
        6.0, 3.6, 1, 1, left=_NUMERIC[0], bottom=_NUMERIC[1], top=_NUMERIC[2]))
    _draw_loss(ax, loss, marks)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss" if loss else "(no loss recorded)")
    if loss:
        ax.legend(frameon=False, fontsize=8)
    caption = ("Training loss per condition: mean over runs (line) ± one standard deviation "
               "(band)." if loss else "Early-warning alarms (no loss was recorded).")
    runs = [m for v in marks.values() for m in v]
    if runs:
        listed = "; ".join(f"{shown(r, markup=False)}: "
                           + ("no alarm" if a is None else f"alarm {a}")
                           + ("" if o is None else f", onset {o}")
                           for r, a, o in runs[:MAX_ALARM_NAMES])
        more = f"; {len(runs) - MAX_ALARM_NAMES} more runs" if len(runs) > MAX_ALARM_NAMES else ""
        caption += (" Vertical lines, in each condition's colour: every run's early-warning "
                    "alarm step (solid; conjugacy analyze --window) and onset (dotted): "
                    f"{listed}{more}.")
    return ReportFigure("loss", caption, _png(fig))


def _windows_figure(windows: Mapping[str, Any], names: Mapping[str, str]) -> ReportFigure:
    from ..plots import plot_distance_heatmap

    conds, cut = _first(windows["conditions"].items())
    fig, axes = _panel_grid(len(conds), 4.6, 4.0)
    for ax, (c, w) in zip(axes, conds):
        d = np.asarray(w.get("distance_matrix"), float)
        labels = [_label(x) for x in w.get("labels") or range(d.shape[0])]
        plot_distance_heatmap(d, labels, ax=ax, log10=True, annotate=False)
        for i in (w.get("transitions") or {}).get("change_points", []):
            ax.axvline(i + 0.5, color="red", lw=1.0)
            ax.axhline(i + 0.5, color="red", lw=1.0)
        ax.set_title(f"windows of {_label(names.get(str(c), c))}")
    return ReportFigure(
        "windows",
        f"log10 W1 between the spectra of windows of {windows.get('window')} records over "
        "training (one panel per condition, seeds pooled; each labelled by its first and last "
        "training step); red lines: transitions (change points between "
        "consecutive windows)." + cut, _png(fig))


def study_figures(results: Mapping[str, Any],
                  source_dir: str | os.PathLike[str]) -> tuple[list[ReportFigure], list[str]]:
    """The PNG figures a study already drew (``results["figures"]``: file names or paths), read
    from ``source_dir`` (the folder of ``results.json``), and a note for each listed PNG that is
    missing or not a PNG. Only files inside ``source_dir`` are read (a results.json cannot make a
    report embed files from elsewhere). SVG entries are skipped (their PNG twin is used). Each
    file is embedded once, at most :data:`MAX_STUDY_FIGURES` of them, each a regular file of at
    most :data:`MAX_FIGURE_BYTES` (a FIFO or a larger file gets a note instead).

    Parameters
    ----------
    results : dict
        Its ``figures`` entry is read.
    source_dir : str or path-like
        The folder of ``results.json``.

    Returns
    -------
    figures : list of ReportFigure
        Named ``study_<stem>``.
    notes : list of str
        One per listed PNG that was not embedded, and why.

    Raises
    ------
    ReportError
        If ``results["figures"]`` is not a list of file names.

    Examples
    --------
    >>> import tempfile
    >>> from conjugacy.plots import new_figure, save_figure
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = save_figure(new_figure()[0], f"{tmp}/fig2", formats=("png",))
    ...     figures, notes = study_figures({"figures": ["fig2.png", "gone.png"]}, tmp)
    >>> [f.name for f in figures], notes
    (['study_fig2'], ["figure 'gone.png' is listed in results.json but missing"])
    """
    listed = results.get("figures") or []
    if isinstance(listed, str) or not isinstance(listed, Sequence):
        raise ReportError("results['figures'] must be a list of file names")
    base = Path(source_dir).resolve()
    figs: list[ReportFigure] = []
    notes: list[str] = []
    seen: set[Path] = set()
    for entry in listed:
        name = str(entry)
        if not name.lower().endswith(".png"):
            continue
        path = (base / name).resolve()  # an absolute name stays itself
        if not path.is_relative_to(base):
            notes.append(f"figure {name!r} lies outside {str(base)!r}: not embedded")
            continue
        if path in seen or len(seen) >= MAX_STUDY_FIGURES:
            continue
        seen.add(path)
        try:  # bounded: a FIFO is never waited on, a huge file never read
            data = read_bytes(path, limit=MAX_FIGURE_BYTES, what="a figure")
        except UnsafeFile as exc:
            notes.append(f"figure {name!r} {exc.problem}: not embedded")
            continue
        if data is None:
            notes.append(f"figure {name!r} is listed in results.json but missing")
            continue
        if not data.startswith(b"\x89PNG\r\n\x1a\n"):
            notes.append(f"figure {name!r} is not a PNG file: not embedded")
            continue
        stem = path.relative_to(base).with_suffix("").as_posix().replace("/", "_")
        figs.append(ReportFigure(f"study_{stem}", f"{stem} (drawn by the study)", data))
    return figs, notes
