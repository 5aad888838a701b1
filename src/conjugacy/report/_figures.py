"""The report's figures, drawn with :mod:`conjugacy.plots` from a results dict (no computation).

Each figure is returned as a :class:`ReportFigure`: a name, a caption and the PNG bytes, which
the HTML writer embeds (base64) and the Markdown writer saves beside ``report.md``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._text import shown
from ._content import ReportError, comparison_of, complex_values

__all__ = ["ReportFigure", "report_figures", "study_figures"]

DPI = 110


@dataclass(frozen=True)
class ReportFigure:
    """One figure: ``name`` (file stem), ``caption`` (plain text), ``png`` (bytes)."""

    name: str
    caption: str
    png: bytes


def _label(text: Any) -> str:
    """A user string (condition, window label) as figure text: control characters shown as
    escapes (:func:`conjugacy._text.shown`; Matplotlib warns about missing glyphs and prints them)
    and ``$`` escaped (an invalid TeX label stopped the report)."""
    return shown(text, markup=False).replace("$", r"\$")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
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


def _eigen_figure(sets: Mapping[str, np.ndarray], title: str) -> Any:
    from ..plots import new_figure, plot_eigenvalues

    fig, (full, zoom) = new_figure(1, 2, width=9.0, height=4.0)
    plot_eigenvalues(sets, ax=full)
    full.set_title(f"{title}: unit circle")
    plot_eigenvalues(sets, ax=zoom, zoom=_zoom(list(sets.values())))
    zoom.set_title(f"{title}: zoom near 1")
    return fig


def _pooled(per_seed: Sequence[Any], where: str) -> np.ndarray:
    parts = []
    for s, sp in enumerate(per_seed):
        pairs = sp.get("eigenvalues") if isinstance(sp, Mapping) else sp
        parts.append(complex_values(pairs, f"{where}[{s}]"))
    return np.concatenate(parts) if parts else np.zeros(0, complex)


def report_figures(results: Mapping[str, Any]) -> list[ReportFigure]:
    """Every figure the results allow, in report order.

    eigenvalues (all, and filtered when the comparison holds them) with the unit circle and a zoom;
    distance matrices (conditions; seeds within each condition); loss curves; windowed distance
    heatmaps with their change points.
    """
    from ..plots import new_figure, plot_distance_heatmap

    figures: list[ReportFigure] = []
    spectra = results.get("spectra") or {}
    cmp = comparison_of(results)
    if spectra:
        sets = {_label(c): _pooled(v, f"results['spectra'][{c!r}]") for c, v in spectra.items()}
        fig = _eigen_figure(sets, "all eigenvalues")
        n_seeds = {len(v) for v in spectra.values()}
        figures.append(ReportFigure(
            "eigenvalues_all",
            f"Koopman eigenvalues of every seed ({'/'.join(map(str, sorted(n_seeds)))} per "
            "condition), all eigenvalues of each fit. Dashed: the unit circle (inside decays, on it "
            "persists, outside grows). Right: zoom near 1, where training spectra crowd.",
            _png(fig)))
    filtered = (cmp.get("filtered") or {}).get("eigenvalues") if cmp else None
    if filtered:
        sets = {_label(c): _pooled(v, f"comparison['filtered']['eigenvalues'][{c!r}]")
                for c, v in filtered.items()}
        figures.append(ReportFigure(
            "eigenvalues_filtered",
            "The eigenvalues the verdicts use: those the residual filter keeps (eigenpairs whose "
            "data residual marks them as supported by the data), every seed.",
            _png(_eigen_figure(sets, "filtered eigenvalues"))))
    if cmp:
        from ._content import chosen

        ch = chosen(cmp)
        classes = ch.get("equivalence_classes") or {}
        mat = classes.get("mean_distance_matrix")
        between = ch.get("between_seeds") or {}
        panels = (1 if mat is not None else 0) + len(between)
        if panels:
            cols = min(panels, 3)
            rows = -(-panels // cols)
            fig, axes = new_figure(rows, cols, width=4.3 * cols, height=3.6 * rows)
            axes = list(np.atleast_1d(axes).ravel())
            k = 0
            if mat is not None:
                plot_distance_heatmap(np.asarray(mat, float), list(map(_label, cmp["conditions"])),
                                      ax=axes[k])
                axes[k].set_title("mean W1 between conditions")
                k += 1
            for c, b in between.items():
                m = np.asarray(b.get("matrix"), float)
                plot_distance_heatmap(m, [f"s{i}" for i in range(m.shape[0])], ax=axes[k])
                axes[k].set_title(f"W1 between seeds of {_label(c)}")
                k += 1
            for ax in axes[k:]:
                ax.set_visible(False)
            figures.append(ReportFigure(
                "distances",
                f"Wasserstein distances (W1) on the {cmp.get('verdict_uses', 'all')} spectra: "
                "between conditions (mean over seeds), and between the seeds of each condition "
                "(the noise floor a difference between conditions is read against).",
                _png(fig)))
    loss = results.get("loss") or {}
    if loss:
        figures.append(_loss_figure(loss))
    windows = results.get("windows") or {}
    if isinstance(windows, Mapping) and windows.get("conditions"):
        figures.append(_windows_figure(windows))
    return figures


def _loss_figure(loss: Mapping[str, Any]) -> ReportFigure:
    from ..plots import new_figure
    from ..plots.core import color_for

    fig, ax = new_figure(width=6.0, height=3.6)
    for i, (label, curve) in enumerate(loss.items()):
        if not isinstance(curve, Mapping) or "mean" not in curve:
            raise ReportError(f"results['loss'][{label!r}] must hold 'mean' (and 'std', 'steps')")
        mean = np.array([np.nan if v is None else v for v in curve["mean"]], float)
        steps = np.asarray(curve.get("steps", np.arange(1, mean.size + 1)), float)
        if steps.shape != mean.shape:
            raise ReportError(f"results['loss'][{label!r}]: 'steps' and 'mean' differ in length")
        color = color_for(str(label), i)
        ax.plot(steps, mean, color=color, lw=1.4, label=_label(label))
        if curve.get("std") is not None:
            sd = np.array([np.nan if v is None else v for v in curve["std"]], float)
            ax.fill_between(steps, mean - sd, mean + sd, color=color, alpha=0.18, lw=0)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.legend(frameon=False, fontsize=8)
    return ReportFigure("loss", "Training loss per condition: mean over runs (line) ± one "
                        "standard deviation (band).", _png(fig))


def _windows_figure(windows: Mapping[str, Any]) -> ReportFigure:
    from ..plots import new_figure, plot_distance_heatmap

    conds = windows["conditions"]
    n = len(conds)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = new_figure(rows, cols, width=4.6 * cols, height=4.0 * rows)
    axes = list(np.atleast_1d(axes).ravel())
    for ax, (c, w) in zip(axes, conds.items()):
        d = np.asarray(w.get("distance_matrix"), float)
        labels = [_label(x) for x in w.get("labels") or range(d.shape[0])]
        plot_distance_heatmap(d, labels, ax=ax, log10=True, annotate=False)
        for i in (w.get("transitions") or {}).get("change_points", []):
            ax.axvline(i + 0.5, color="red", lw=1.0)
            ax.axhline(i + 0.5, color="red", lw=1.0)
        ax.set_title(f"windows of {_label(c)}")
    for ax in axes[n:]:
        ax.set_visible(False)
    return ReportFigure(
        "windows",
        f"log10 W1 between the spectra of windows of {windows.get('window')} steps over training "
        "(one panel per condition, seeds pooled); red lines: transitions (change points between "
        "consecutive windows).", _png(fig))


def study_figures(results: Mapping[str, Any],
                  source_dir: str | os.PathLike[str]) -> tuple[list[ReportFigure], list[str]]:
    """The PNG figures a study already drew (``results["figures"]``: file names or paths), read
    from ``source_dir`` (the folder of ``results.json``), and a note for each listed PNG that is
    missing or not a PNG. Only files inside ``source_dir`` are read (a results.json cannot make a
    report embed files from elsewhere). SVG entries are skipped (their PNG twin is used)."""
    listed = results.get("figures") or []
    if isinstance(listed, str) or not isinstance(listed, Sequence):
        raise ReportError("results['figures'] must be a list of file names")
    base = Path(source_dir).resolve()
    figs: list[ReportFigure] = []
    notes: list[str] = []
    for entry in listed:
        name = str(entry)
        if not name.lower().endswith(".png"):
            continue
        path = Path(name) if Path(name).is_absolute() else base / name
        path = path.resolve()
        if not path.is_relative_to(base):
            notes.append(f"figure {name!r} lies outside {str(base)!r}: not embedded")
            continue
        try:
            data = path.read_bytes()
        except OSError:
            notes.append(f"figure {name!r} is listed in results.json but missing")
            continue
        if not data.startswith(b"\x89PNG\r\n\x1a\n"):
            notes.append(f"figure {name!r} is not a PNG file: not embedded")
            continue
        stem = path.relative_to(base).with_suffix("").as_posix().replace("/", "_")
        figs.append(ReportFigure(f"study_{stem}", f"{stem} (drawn by the study)", data))
    return figs, notes
