"""Figures of any declared study (:func:`conjugacy.analysis.analyse_study`), no computation.

Compositions of :mod:`conjugacy.plots.core` from the ``results.json`` summary, the per-seed spectra
and the loss curves: the eigenvalues of every condition for one example seed (the seed with the
median distance between the first two conditions), the mean distance per pair of conditions with
its spread over seeds and the permutation-test p-value as the significance mark, the distances
between seeds of each condition (the noise floor) against the between-condition ones, and the
loss curves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..analysis.comparison import chosen
from .core import (
    FONT_SIZE,
    color_for,
    legend_label,
    new_figure,
    plot_distance_bars,
    plot_eigenvalues,
    plot_loss_curves,
    save_figure,
)

__all__ = ["draw_study", "figure_between_seeds", "figure_distances", "figure_eigenvalues"]


def example_seed(summary: Mapping[str, Any]) -> int:
    """Index of the seed whose distance between the first pair of conditions is the median."""
    dist = chosen(summary["comparison"])["distances"]
    if not dist:
        return 0
    per_seed = np.asarray(next(iter(dist.values()))["per_seed"])
    return int(np.argsort(per_seed)[per_seed.size // 2])


def figure_eigenvalues(spectra: Mapping[str, Sequence[Any]], seed_index: int) -> Figure:
    """Eigenvalues of every condition for one seed: the whole plane and a zoom near 1.

    Examples
    --------
    Two conditions with two seeds each; the figure of the second seed:

    >>> from types import SimpleNamespace as S  # anything with ``eigenvalues``, e.g. a Spectrum
    >>> spectra = {"sgd": [S(eigenvalues=[0.9, 0.5]), S(eigenvalues=[0.95, 0.4])],
    ...            "adam": [S(eigenvalues=[0.99, 0.8]), S(eigenvalues=[0.97 + 0.1j, 0.97 - 0.1j])]}
    >>> fig = figure_eigenvalues(spectra, seed_index=1)
    >>> [ax.get_title(loc="left") for ax in fig.axes]
    ['Koopman eigenvalues (seed index 1)', 'zoom']
    """
    one = {c: v[seed_index] for c, v in spectra.items()}
    fig, axes = new_figure(ncols=2, width=9.0)
    plot_eigenvalues(one, ax=axes[0])
    axes[0].set_title(f"Koopman eigenvalues (seed index {seed_index})", loc="left")
    eig = np.concatenate([np.asarray(s.eigenvalues).ravel() for s in one.values()] + [[1.0]])
    re0, re1 = float(eig.real.min()), float(eig.real.max())
    span = max(re1 - re0, 1e-3)
    im = max(float(np.abs(eig.imag).max()), 0.25 * span, 1e-3)
    plot_eigenvalues(one, ax=axes[1], zoom=(re0 - 0.15 * span, re1 + 0.15 * span, -1.15 * im,
                                            1.15 * im))
    axes[1].set_title("zoom", loc="left")
    return fig


def figure_distances(summary: Mapping[str, Any]) -> Figure:
    """Mean +- std over seeds of the distance per pair, marked with the permutation p-value.

    Examples
    --------
    The ``results.json`` summary of a study of two conditions with two seeds each:

    >>> summary = {"comparison": {"verdict_uses": "real", "real": {
    ...     "distances": {"sgd-adam": {"mean": 0.3, "std": 0.1, "per_seed": [0.2, 0.4]}},
    ...     "permutation_tests": {"sgd-adam": {"pvalue": 0.03}},
    ...     "between_seeds": {"sgd": {"values": [0.05]}, "adam": {"values": [0.1]}}}}}
    >>> ax = figure_distances(summary).axes[0]
    >>> ax.get_ylabel(), [t.get_text() for t in ax.get_xticklabels()]
    ('Wasserstein distance (real eigenvalues)', ['sgd vs adam'])
    """
    cmp = chosen(summary["comparison"])
    keys = list(cmp["distances"])
    means = [cmp["distances"][k]["mean"] for k in keys]
    stds = [cmp["distances"][k]["std"] for k in keys]
    marks = [None if cmp["permutation_tests"].get(k) is None
             else cmp["permutation_tests"][k]["pvalue"] for k in keys]
    fig, ax = new_figure(width=1.8 + 1.1 * len(keys), height=3.4)
    plot_distance_bars(means, stds, [k.replace("-", " vs ") for k in keys], significance=marks,
                       ax=ax)
    ax.set_ylabel(f"Wasserstein distance ({summary['comparison']['verdict_uses']} eigenvalues)")
    return fig


def figure_between_seeds(summary: Mapping[str, Any]) -> Figure:
    """Histogram of the distances between seeds of each condition, with the mean
    between-condition distances as vertical lines.

    Examples
    --------
    >>> summary = {"comparison": {"verdict_uses": "real", "real": {
    ...     "distances": {"sgd-adam": {"mean": 0.3, "std": 0.1, "per_seed": [0.2, 0.4]}},
    ...     "permutation_tests": {"sgd-adam": {"pvalue": 0.03}},
    ...     "between_seeds": {"sgd": {"values": [0.05]}, "adam": {"values": [0.1]}}}}}
    >>> figure_between_seeds(summary).axes[0].get_legend_handles_labels()[1]
    ['sgd: between seeds', 'adam: between seeds', 'mean sgd vs adam']
    """
    cmp = chosen(summary["comparison"])
    fig, ax = new_figure()
    for i, (c, b) in enumerate(cmp["between_seeds"].items()):
        ax.hist(b["values"], bins=max(3, min(15, len(b["values"]))), alpha=0.5,
                color=color_for(c, i), label=legend_label(f"{c}: between seeds"))
    for i, (k, d) in enumerate(cmp["distances"].items()):
        ax.axvline(d["mean"], color="0.2", ls="--", lw=1.2 - 0.2 * min(i, 3),
                   label=f"mean {k.replace('-', ' vs ')}")
    ax.set_xlabel("Wasserstein distance")
    ax.set_ylabel("count")
    ax.legend(fontsize=FONT_SIZE - 1, frameon=False)
    return fig


def draw_study(summary: Mapping[str, Any], spectra: Mapping[str, Sequence[Any]],
               losses: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Draw and save ``eigenvalues``, ``distances``, ``between_seeds`` (two or more seeds) and
    ``loss`` (when curves are given) into ``out_dir``, PNG and SVG. Returns the paths.

    Examples
    --------
    A study of two conditions with two seeds each, without loss curves:

    >>> summary = {"comparison": {"verdict_uses": "real", "real": {
    ...     "distances": {"sgd-adam": {"mean": 0.3, "std": 0.1, "per_seed": [0.2, 0.4]}},
    ...     "permutation_tests": {"sgd-adam": {"pvalue": 0.03}},
    ...     "between_seeds": {"sgd": {"values": [0.05]}, "adam": {"values": [0.1]}}}}}
    >>> from types import SimpleNamespace as S  # anything with ``eigenvalues``, e.g. a Spectrum
    >>> spectra = {"sgd": [S(eigenvalues=[0.9, 0.5]), S(eigenvalues=[0.95, 0.4])],
    ...            "adam": [S(eigenvalues=[0.99, 0.8]), S(eigenvalues=[0.97 + 0.1j, 0.97 - 0.1j])]}
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     paths = draw_study(summary, spectra, {}, tmp)
    >>> sorted(p.name for p in paths)  # doctest: +NORMALIZE_WHITESPACE
    ['between_seeds.png', 'between_seeds.svg', 'distances.png', 'distances.svg',
     'eigenvalues.png', 'eigenvalues.svg']
    """
    out = Path(out_dir)
    figures = [("eigenvalues", figure_eigenvalues(spectra, example_seed(summary))),
               ("distances", figure_distances(summary))]
    if chosen(summary["comparison"])["between_seeds"]:
        figures.append(("between_seeds", figure_between_seeds(summary)))
    if losses:
        fig, ax = new_figure()
        plot_loss_curves(dict(losses), ax=ax)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        figures.append(("loss", fig))
    paths: list[Path] = []
    for name, fig in figures:
        paths.extend(save_figure(fig, out / name))
    return paths


def study_figures(results: Any, out_dir: str | os.PathLike[str]) -> list[Path]:
    """The ``figures`` hook of :func:`conjugacy.analysis.pipeline.summarize` for any study: the
    figures of :func:`draw_study` from a :class:`~conjugacy.analysis.Results` (loss curves drawn
    as mean +- std from ``results["loss"]``)."""
    content = results.content
    if not content.get("comparison"):
        return []
    out = Path(out_dir)
    paths = draw_study(content, results.spectra, {}, out)
    loss = content.get("loss") or {}
    if loss:
        fig, ax = new_figure()
        for i, (label, c) in enumerate(loss.items()):
            steps, mean, std = (np.asarray(c[k], float) for k in ("steps", "mean", "std"))
            ax.plot(steps, mean, color=color_for(label, i), label=legend_label(label))
            ax.fill_between(steps, mean - std, mean + std, color=color_for(label, i), alpha=0.2)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.legend(fontsize=FONT_SIZE - 1, frameon=False)
        paths.extend(save_figure(fig, out / "loss"))
    return paths
