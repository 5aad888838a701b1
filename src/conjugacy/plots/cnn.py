"""Figures of the CNN early-phase study (Redman et al. 2024, fig. 4 and S5).

Compositions of :mod:`conjugacy.plots.core` from what :func:`conjugacy.experiments.cnn.run`
computed (the ``results.json`` content, its ``sections``, and the windowed spectra); nothing is
computed here. Titles name the
data each network trained on, so a ResNet-20 trained on padded MNIST is never shown as CIFAR-10.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .core import (
    FONT_SIZE,
    color_for,
    new_figure,
    plot_distance_heatmap,
    plot_eigenvalues,
    save_figure,
    significance_marks,
)
from .fcn import zoom_box

__all__ = ["figure_arch_windows", "figure_window_eigenvalues", "figure_window_matrix"]

_NAMES = {"lenet": "LeNet", "lenet5": "LeNet-5 (3x3)", "lenet300": "LeNet-300-100",
          "resnet20": "ResNet-20"}


def _title(summary: Mapping[str, Any], arch: str) -> str:
    info = summary["archs"][arch]
    return f"{_NAMES.get(info['model'], info['model'])} on {info['data']['name']}"


def figure_window_matrix(summary: Mapping[str, Any], arch: str, key: str = "windows") -> Figure:
    """Figure 4A/B (or S5 with ``key="s5"``): log10 of the mean (over seeds) W1 between windows.

    Parameters
    ----------
    summary : dict
        ``results.json`` of :func:`conjugacy.experiments.cnn.run`: ``archs[arch]`` (model, data
        name, number of seeds) and ``windows[arch]`` (``labels``, ``mean_matrix``), or
        ``sections["s5"][arch]`` for ``key="s5"``.
    arch : {"lenet", "resnet20"}
    key : {"windows", "s5"}

    Returns
    -------
    matplotlib.figure.Figure
        One heat map, annotated up to 8 windows.

    Examples
    --------
    Two windows of LeNet, two seeds (the fields of ``results.json`` it reads):

    >>> info = {"model": "lenet", "data": {"name": "MNIST"}, "n_seeds": 2}
    >>> summary = {"archs": {"lenet": info}, "config": {"window": 10},
    ...            "windows": {"lenet": {"labels": ["0-9", "10-19"], "windows": [[0, 10], [10, 20]],
    ...                                  "mean_matrix": [[0.0, 0.02], [0.02, 0.0]]}}}
    >>> print(figure_window_matrix(summary, "lenet").axes[0].get_title())
    LeNet on MNIST
    log10 W1 between windows (mean of 2 seeds)
    """
    entry = (summary["sections"] if key == "s5" else summary)[key][arch]
    matrix = np.asarray(entry["mean_matrix"], dtype=float)
    if key == "s5":
        labels = [str(e + 1) for e in range(matrix.shape[0])]
        xlabel = "epoch"
    else:
        labels = entry["labels"]
        xlabel = "training iterations (window)"
    n = matrix.shape[0]
    fig, ax = new_figure(width=1.6 + 0.5 * n, height=1.2 + 0.45 * n)
    plot_distance_heatmap(matrix, labels, ax=ax, log10=True, annotate=n <= 8)
    n_seeds = summary["archs"][arch]["n_seeds"]
    ax.set_title(f"{_title(summary, arch)}\nlog10 W1 between windows (mean of {n_seeds} seeds)",
                 fontsize=FONT_SIZE)
    ax.set_xlabel(xlabel)
    return fig


def figure_window_eigenvalues(
    summary: Mapping[str, Any], spectra: Mapping[str, Sequence[Sequence[Any]]],
    starts: Sequence[int] = (0, 400, 600), seed: int = 0,
) -> Figure:
    """Figure 4C: eigenvalues of the windows starting at ``starts`` (seed ``seed``), one panel per
    architecture; windows an architecture did not reach are left out (and named in its title).

    Parameters
    ----------
    summary : dict
        ``results.json`` of :func:`conjugacy.experiments.cnn.run` (``archs``, ``windows``,
        ``config["window"]``).
    spectra : dict arch -> per seed, per window: Spectrum (or complex array)
    starts : sequence of int
        First iteration of each window drawn.
    seed : int
        Index of the seed drawn.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per architecture.

    Examples
    --------
    >>> info = {"model": "lenet", "data": {"name": "MNIST"}, "n_seeds": 2}
    >>> summary = {"archs": {"lenet": info}, "config": {"window": 10},
    ...            "windows": {"lenet": {"labels": ["0-9", "10-19"], "windows": [[0, 10], [10, 20]],
    ...                                  "mean_matrix": [[0.0, 0.02], [0.02, 0.0]]}}}
    >>> spectra = {"lenet": [[[0.99, 0.95], [0.995, 0.97]], [[0.98, 0.9], [0.99, 0.96]]]}
    >>> fig = figure_window_eigenvalues(summary, spectra, starts=(0, 10, 40), seed=1)
    >>> print(fig.axes[0].get_title())
    LeNet on MNIST, seed 1
    (not trained that long: 40-49)
    """
    archs = list(spectra)
    fig, axes = new_figure(1, len(archs), height=3.6)
    axes = np.atleast_1d(axes)
    for ax, arch in zip(axes, archs):
        windows = summary["windows"][arch]["windows"]
        shown, missing = {}, []
        for s in starts:
            idx = next((i for i, w in enumerate(windows) if w[0] == s), None)
            if idx is None:
                missing.append(s)
                continue
            shown[f"iter {windows[idx][0]}-{windows[idx][1] - 1}"] = spectra[arch][seed][idx]
        title = f"{_title(summary, arch)}, seed {seed}"
        if missing:
            size = int(summary["config"]["window"])
            title += "\n(not trained that long: " + ", ".join(
                f"{s}-{s + size - 1}" for s in missing) + ")"
        if shown:
            colors = {k: color_for(k, i) for i, k in enumerate(shown)}
            # training spectra crowd near 1 + 0j: zoom on them (the unit circle stays drawn)
            plot_eigenvalues(shown, ax=ax, colors=colors, zoom=zoom_box(list(shown.values())))
        ax.set_title(title, fontsize=FONT_SIZE)
    return fig


def figure_arch_windows(summary: Mapping[str, Any]) -> Figure:
    """LeNet vs ResNet-20 per window: mean +- std over seeds of W1 between the architectures,
    with each architecture's between-seed distance in that window, and the permutation test's
    p-value as a mark (on the spectra the verdicts use).

    Parameters
    ----------
    summary : dict
        ``results.json`` of :func:`conjugacy.experiments.cnn.run` with both architectures:
        ``archs`` and ``sections["architecture_comparison"]`` (``per_window`` rows).

    Returns
    -------
    matplotlib.figure.Figure
        One axes: the distance per window with the between-seed floors.

    Examples
    --------
    >>> archs = {a: {"model": a, "data": {"name": d}, "n_seeds": 2}
    ...          for a, d in (("lenet", "MNIST"), ("resnet20", "CIFAR-10"))}
    >>> row = {"verdict_uses": "all", "pvalue": 0.004, "all": {"distance_mean": 0.3,
    ...        "distance_std": 0.05, "between_seeds_mean": {"lenet": 0.02, "resnet20": 0.03}}}
    >>> summary = {"archs": archs, "sections": {"architecture_comparison": {
    ...     "per_window": [{**row, "window": "0-9"}, {**row, "window": "10-19"}]}}}
    >>> ax = figure_arch_windows(summary).axes[0]
    >>> [t.get_text() for t in ax.get_xticklabels()], sorted(ax.get_legend_handles_labels()[1])
    (['0-9', '10-19'], ['LeNet vs ResNet-20', 'between seeds, LeNet', 'between seeds, ResNet-20'])
    """
    comp = summary["sections"]["architecture_comparison"]
    rows = comp["per_window"]
    labels = [r["window"] for r in rows]
    which = rows[0]["verdict_uses"]
    mean = np.array([r[which]["distance_mean"] for r in rows])
    std = np.array([r[which]["distance_std"] for r in rows])
    x = np.arange(len(rows))
    fig, ax = new_figure(width=4.5 + 0.7 * len(rows), height=3.6)
    ax.errorbar(x, mean, yerr=std, fmt="o-", color="k", capsize=3, label="LeNet vs ResNet-20")
    for i, arch in enumerate(("lenet", "resnet20")):
        floor = [r[which]["between_seeds_mean"].get(arch) for r in rows]
        if all(f is not None for f in floor):
            ax.plot(x, floor, "--", color=color_for(arch, i + 1),
                    label=f"between seeds, {_NAMES.get(summary['archs'][arch]['model'], arch)}")
    marks = significance_marks([r["pvalue"] for r in rows])
    top = float(np.max(mean + std)) if len(rows) else 1.0
    for xi, m in zip(x, marks):
        if m:
            ax.text(xi, 1.04 * top, m, ha="center", va="bottom", fontsize=FONT_SIZE - 1)
    ax.set_xticks(x, labels, rotation=45, ha="right")
    ax.set_xlabel("training iterations (window)")
    ax.set_ylabel("Wasserstein distance")
    ax.set_ylim(0, 1.15 * max(top, 1e-12))
    ax.set_title(f"{_title(summary, 'lenet')}\nvs {_title(summary, 'resnet20')} ({which} eigenvalues)",
                 fontsize=FONT_SIZE)
    min_p = comp.get("smallest_possible_pvalue")
    if min_p is not None:
        ax.text(0.01, 0.01, f"marks: permutation test over seeds (smallest possible p = {min_p:.2g})",
                transform=ax.transAxes, fontsize=FONT_SIZE - 2, va="bottom")
    ax.legend(fontsize=FONT_SIZE - 1, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def draw_all(summary: Mapping[str, Any], spectra: Mapping[str, Sequence[Sequence[Any]]],
             out_dir: str | os.PathLike) -> list[Path]:
    """Draw and save every figure of the study into ``out_dir`` (PNG and SVG).

    Files: ``fig4a_lenet_windows`` / ``fig4b_resnet20_windows`` (per architecture trained),
    ``fig4c_eigenvalues``, ``fig_arch_windows`` (both architectures) and
    ``figS5_<arch>_epochs`` (when per-epoch windows were fitted).

    Returns
    -------
    list of Path
    """
    out = Path(out_dir)
    names = {"lenet": "fig4a_lenet_windows", "resnet20": "fig4b_resnet20_windows"}
    figures: list[tuple[str, Figure]] = []
    for arch in spectra:
        if len(summary["windows"][arch]["labels"]) >= 2:
            figures.append((names[arch], figure_window_matrix(summary, arch)))
    figures.append(("fig4c_eigenvalues", figure_window_eigenvalues(summary, spectra)))
    if summary["sections"].get("architecture_comparison"):
        figures.append(("fig_arch_windows", figure_arch_windows(summary)))
    for arch in summary["sections"].get("s5", {}) or {}:
        figures.append((f"figS5_{arch}_epochs", figure_window_matrix(summary, arch, key="s5")))
    paths: list[Path] = []
    for name, fig in figures:
        paths.extend(save_figure(fig, out / name))
    return paths
