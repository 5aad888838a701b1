"""Figures of the fully connected width study (Redman et al. 2024, fig. 3, S3 and S4).

Compositions of :mod:`conjugacy.plots.core`. The inputs are the
:class:`~conjugacy.analysis.Results` that :func:`conjugacy.experiments.fcn.run` produces
(spectra, ``results.json`` content), the loss curves and example weights; no statistics are
computed here (the significance marks are the KS p-values stored in the results).
:func:`study_figures` is the study's figure hook: it reads the loss curves and one replica's
weights from the stores and draws every figure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..analysis.comparison import chosen
from .core import (
    FONT_SIZE,
    color_for,
    new_figure,
    plot_distance_bars,
    plot_eigenvalues,
    plot_loss_curves,
    plot_trajectories,
    save_figure,
)

__all__ = [
    "figure_between_seeds",
    "figure_distances",
    "figure_eigenvalues",
    "figure_eigenvalues_zoom",
    "figure_loss",
    "figure_s2",
    "figure_weights",
]


def _label(width: int | str) -> str:
    return f"h = {width}"


def zoom_box(eigenvalue_sets: Sequence[Any], margin: float = 0.15) -> tuple[float, float, float, float]:
    """Limits ``(re_min, re_max, im_min, im_max)`` that frame the eigenvalues and the point 1.

    The training spectra crowd near ``1 + 0j``; the box spans the eigenvalues (and 1, where the
    unit circle crosses the real axis) with a relative ``margin`` on each side.
    """
    eig = np.concatenate([np.asarray(getattr(e, "eigenvalues", e)).ravel() for e in eigenvalue_sets])
    re = np.append(eig.real, 1.0)
    im = np.append(eig.imag, 0.0)
    span_re = max(float(re.max() - re.min()), 1e-3)
    span_im = max(float(np.abs(im).max()), 0.25 * span_re, 1e-3)
    return (
        float(re.min()) - margin * span_re,
        float(re.max()) + margin * span_re,
        -(1 + margin) * span_im,
        (1 + margin) * span_im,
    )


def figure_loss(losses: Mapping[int, Any], activation: str = "relu") -> Figure:
    """Figure 3A: training loss per step, mean +- std over all seeds and replicas, per width.

    Parameters
    ----------
    losses : dict width -> array (n_runs, n_steps)
    activation : str
        Named in the title.

    Returns
    -------
    matplotlib.figure.Figure
        One axes, log-scaled loss against the SGD step, one band per width.

    Examples
    --------
    >>> import numpy as np
    >>> steps = np.arange(1, 51)
    >>> losses = {5: np.stack([2.3 / steps, 2.1 / steps]), 40: np.stack([2.0 / steps, 1.9 / steps])}
    >>> ax = figure_loss(losses).axes[0]
    >>> ax.get_title(), ax.get_yscale()
    ('FCN training loss (relu)', 'log')
    """
    fig, ax = new_figure()
    plot_loss_curves({_label(h): v for h, v in losses.items()}, ax=ax, spread="std", log=True)
    ax.set_xlabel("SGD step")
    ax.set_ylabel("training loss (minibatch)")
    ax.set_title(f"FCN training loss ({activation})")
    return fig


def figure_weights(examples: Mapping[int, Any], max_features: int = 4) -> Figure:
    """Figure 3B/C: a few output-layer weights of one replica against the step, per width.

    Parameters
    ----------
    examples : dict width -> array (n_steps, 10 * width)
    max_features : int
        Weights drawn per width (the first ones).

    Returns
    -------
    matplotlib.figure.Figure
        One axes: ``max_features`` weight traces per width.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> examples = {5: rng.normal(size=(30, 50)).cumsum(0), 40: rng.normal(size=(30, 400)).cumsum(0)}
    >>> figure_weights(examples, max_features=2).axes[0].get_ylabel()
    'output-layer weight'
    """
    fig, ax = new_figure(width=5.5)
    plot_trajectories({_label(h): v for h, v in examples.items()}, ax=ax, max_features=max_features)
    ax.set_xlabel("SGD step")
    ax.set_ylabel("output-layer weight")
    return fig


def figure_eigenvalues(spectra: Mapping[int, Any], seed_index: int = 0) -> Figure:
    """Figure 3D: the Koopman eigenvalues of every width for one seed, unit circle dashed, zoomed
    on the eigenvalues.

    Parameters
    ----------
    spectra : dict width -> Spectrum (or complex array) of that seed
    seed_index : int
        Named in the title.

    Returns
    -------
    matplotlib.figure.Figure
        The complex plane zoomed on the eigenvalues, one colour per width.

    Examples
    --------
    >>> spectra = {5: [0.999, 0.98 + 0.01j, 0.98 - 0.01j], 40: [0.9995, 0.99]}
    >>> figure_eigenvalues(spectra, seed_index=3).axes[0].get_title()
    'Koopman eigenvalues, seed 3'
    """
    fig, ax = new_figure(width=5.0, height=3.8)
    labelled = {_label(h): s for h, s in spectra.items()}
    plot_eigenvalues(labelled, ax=ax, zoom=zoom_box(list(spectra.values())),
                     colors=_width_colors(spectra))
    ax.set_title(f"Koopman eigenvalues, seed {seed_index}", fontsize=FONT_SIZE + 1)
    return fig


def _width_colors(spectra: Mapping[int, Any]) -> dict[str, str]:
    # one colour per width, the same in fig. 3D and 3E
    return {_label(h): color_for(_label(h), i) for i, h in enumerate(sorted(spectra))}


def figure_eigenvalues_zoom(spectra: Mapping[int, Any], seed_index: int = 0) -> Figure:
    """Figure 3E: each narrower width against the widest, one panel per pair, with the unit circle.

    Parameters
    ----------
    spectra : dict width -> Spectrum (or complex array) of one seed, at least two widths
    seed_index : int
        Named in the titles.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per narrower width, each against the widest.

    Raises
    ------
    ValueError
        Fewer than two widths.

    Examples
    --------
    >>> spectra = {5: [0.999, 0.98], 10: [0.9992, 0.985], 40: [0.9995, 0.99]}
    >>> [ax.get_title() for ax in figure_eigenvalues_zoom(spectra).axes]
    ['h = 5 vs h = 40 (seed 0)', 'h = 10 vs h = 40 (seed 0)']
    """
    widths = sorted(spectra)
    if len(widths) < 2:
        raise ValueError(f"figure_eigenvalues_zoom needs at least two widths, got {widths}")
    widest = widths[-1]
    others = widths[:-1]
    fig, axes = new_figure(len(others), 1, width=6.0, height=2.4 * len(others))
    axes = np.atleast_1d(axes)
    box = zoom_box(list(spectra.values()))
    for ax, h in zip(axes, others):
        plot_eigenvalues({_label(h): spectra[h], _label(widest): spectra[widest]}, ax=ax, zoom=box,
                         colors=_width_colors(spectra))
        ax.set_title(f"h = {h} vs h = {widest} (seed {seed_index})", fontsize=FONT_SIZE + 1)
    return fig


def _widths_of(summary: Mapping[str, Any], key: str) -> tuple[int, int]:
    # the widths of a pair of conditions, from the results (``conditions[c]["width"]``)
    a, b = summary["comparison"]["pairs"][key]
    return _width(summary, a), _width(summary, b)


def _width(summary: Mapping[str, Any], condition: str) -> int:
    return int(summary["conditions"][condition]["width"])


def figure_distances(summary: Mapping[str, Any]) -> Figure:
    """Figure 3F: mean +- std over seeds of the Wasserstein distance between widths.

    Each bar is marked with the p-value of the Kolmogorov-Smirnov test between its per-seed
    distances and those of the pair with the smallest mean distance (marked ``ref``):
    ``*`` p < 0.05, ``**`` p < 0.01, ``***`` p < 0.001, ``n.s.`` otherwise.

    Parameters
    ----------
    summary : dict
        ``results.json`` content; its ``comparison`` holds ``distances`` (pair -> mean, std) and
        ``ks_tests`` (those of the spectra the verdicts use).

    Returns
    -------
    matplotlib.figure.Figure
        Bars per pair of widths, labelled with their widths and KS marks.

    Examples
    --------
    The part of a ``results.json`` it reads, for two widths and two seeds:

    >>> summary = {"conditions": {"h5": {"width": 5}, "h40": {"width": 40}},
    ...            "comparison": {"conditions": ["h5", "h40"], "verdict_uses": "all",
    ...                           "pairs": {"h5-h40": ["h5", "h40"]}, "all": {
    ...     "distances": {"h5-h40": {"mean": 0.012, "std": 0.002, "per_seed": [0.01, 0.014]}},
    ...     "ks_tests": {}, "between_seeds": {"h40": {"values": [0.004, 0.006, 0.005]}}}}}
    >>> ax = figure_distances(summary).axes[0]
    >>> [t.get_text() for t in ax.get_xticklabels()], ax.get_xlabel()
    (['5 vs 40'], 'widths h')
    """
    cmp = chosen(summary["comparison"])
    dist = cmp["distances"]
    keys = list(dist)
    means = np.array([dist[k]["mean"] for k in keys])
    stds = np.array([dist[k]["std"] for k in keys])
    ref = keys[int(np.argmin(means))]
    marks: list[Any] = []
    for k in keys:
        if k == ref:
            marks.append("ref" if len(keys) > 1 else None)
            continue
        ks = cmp.get("ks_tests", {})
        test = ks.get(f"{k} vs {ref}") or ks.get(f"{ref} vs {k}")
        marks.append(None if test is None else test["pvalue"])
    fig, ax = new_figure(width=1.8 + 1.1 * len(keys), height=3.4)
    labels = [" vs ".join(str(w) for w in _widths_of(summary, k)) for k in keys]
    plot_distance_bars(means, stds, labels, significance=marks, ax=ax)
    ax.set_ylabel("Wasserstein distance")
    ax.set_xlabel("widths h")
    return fig


def figure_between_seeds(summary: Mapping[str, Any]) -> Figure:
    """Figure S4B: distribution of distances between the spectra of all pairs of seeds of the
    widest network, with the mean between-width distances (to the widest) as vertical lines.

    Parameters
    ----------
    summary : dict
        ``results.json`` content; its ``comparison`` holds ``between_seeds`` and ``distances``.

    Returns
    -------
    matplotlib.figure.Figure
        A histogram of the widest network and a dashed line per other width.

    Examples
    --------
    >>> summary = {"conditions": {"h5": {"width": 5}, "h40": {"width": 40}},
    ...            "comparison": {"conditions": ["h5", "h40"], "verdict_uses": "all",
    ...                           "pairs": {"h5-h40": ["h5", "h40"]}, "all": {
    ...     "distances": {"h5-h40": {"mean": 0.012, "std": 0.002, "per_seed": [0.01, 0.014]}},
    ...     "ks_tests": {}, "between_seeds": {"h40": {"values": [0.004, 0.006, 0.005]}}}}}
    >>> figure_between_seeds(summary).axes[0].get_legend_handles_labels()[1]
    ['h = 40, between seeds (3 pairs)', 'mean h = 5 vs h = 40']
    """
    cmp = chosen(summary["comparison"])
    conditions = summary["comparison"]["conditions"]
    top = max(conditions, key=lambda c: _width(summary, c))
    widest = _width(summary, top)
    between = cmp["between_seeds"].get(top, {})
    values = np.asarray(between.get("values", []), dtype=np.float64)
    fig, ax = new_figure()
    if values.size:
        ax.hist(
            values,
            bins=max(5, min(20, values.size // 2)),
            color="0.6",
            edgecolor="0.3",
            label=f"h = {widest}, between seeds ({values.size} pairs)",
        )
    for i, (key, d) in enumerate(cmp["distances"].items()):
        a, b = _widths_of(summary, key)
        if b == widest:
            ax.axvline(
                d["mean"], color=color_for(key, i), ls="--", lw=1.2, label=f"mean h = {a} vs h = {b}"
            )
    ax.set_xlabel("Wasserstein distance")
    ax.set_ylabel("count")
    ax.legend(fontsize=FONT_SIZE - 1, frameon=False)
    return fig


def _example_seed(summary: Mapping[str, Any]) -> int:
    # the seed whose distance between the narrowest and the widest net is the median one
    dist = chosen(summary["comparison"])["distances"]
    if not dist:
        return 0
    key = max(dist, key=lambda k: _widths_of(summary, k)[1] - _widths_of(summary, k)[0])
    per_seed = np.asarray(dist[key]["per_seed"])
    return int(np.argsort(per_seed)[per_seed.size // 2])


def draw_all(
    results: Any,
    losses: Mapping[str, Any],
    examples: Mapping[str, Any],
    out_dir: str | os.PathLike,
) -> list[Path]:
    """Draw and save every figure of the study into ``out_dir`` (PNG and SVG).

    Files: ``fig3a_loss``, ``fig3bc_weights``, ``fig3d_eigenvalues``, ``fig3e_zoom`` (with two
    or more widths), ``fig3f_distances`` (with two or more widths) and
    ``figS4b_between_seeds`` (with two or more seeds). The example seed of 3D/E is the one with
    the median distance between the narrowest and the widest network.

    Parameters
    ----------
    results : conjugacy.analysis.Results
        Of :func:`conjugacy.experiments.fcn.run`: ``results.spectra`` and ``results["conditions"]``
        (condition -> ``{"width": h}``) are keyed by condition label.
    losses : dict condition -> array (n_runs, n_steps)
    examples : dict condition -> array (n_steps, 10 * width)

    Returns
    -------
    list of Path
    """
    out = Path(out_dir)
    summary = results.content
    activation = summary["config"]["activation"]
    width = {c: _width(summary, c) for c in results.spectra}
    spectra = {width[c]: v for c, v in results.spectra.items()}
    widths = sorted(spectra)
    one_seed = {h: spectra[h][0] for h in widths}
    figures: list[tuple[str, Figure]] = [
        ("fig3a_loss", figure_loss({width[c]: v for c, v in losses.items()}, activation)),
        ("fig3bc_weights", figure_weights({width[c]: v for c, v in examples.items()})),
    ]
    if summary["comparison"] is not None:
        seed = _example_seed(summary)
        one_seed = {h: spectra[h][seed] for h in widths}
        figures.append(("fig3d_eigenvalues", figure_eigenvalues(one_seed, seed)))
        figures.append(("fig3e_zoom", figure_eigenvalues_zoom(one_seed, seed)))
        figures.append(("fig3f_distances", figure_distances(summary)))
        if chosen(summary["comparison"])["between_seeds"]:
            figures.append(("figS4b_between_seeds", figure_between_seeds(summary)))
    else:
        figures.append(("fig3d_eigenvalues", figure_eigenvalues(one_seed, 0)))
    paths: list[Path] = []
    for name, fig in figures:
        paths.extend(save_figure(fig, out / name))
    return paths


def figure_s2(relative: Mapping[str, Any]) -> Figure:
    """Fig. S2: histogram of the relative test loss (perturbed copy / its base) per width, 1 dashed.

    Parameters
    ----------
    relative : dict condition -> {"ratios": [per seed: list of float], ...}
        ``results["sections"]["relative_test_loss"]``
        (:func:`conjugacy.analysis.groups.relative_final_scalar`).

    Examples
    --------
    >>> fig = figure_s2({"h5": {"ratios": [[1.0, 1.01], [0.99]]}, "h40": {"ratios": [[1.0]]}})
    >>> fig.axes[0].get_legend_handles_labels()[1]
    ['h5 (n = 3)', 'h40 (n = 1)']
    """
    fig, ax = new_figure()
    for i, (cond, v) in enumerate(relative.items()):
        r = np.concatenate([np.asarray(x, dtype=float) for x in v["ratios"]])
        ax.hist(r, bins=30, histtype="step", color=color_for(cond, i), label=f"{cond} (n = {r.size})")
    ax.axvline(1.0, color="k", ls="--", lw=0.8)
    ax.set_xlabel("test loss of perturbed copy / test loss of its base")
    ax.set_ylabel("copies")
    ax.legend(frameon=False, fontsize=8)
    return fig


def study_figures(reader: Any, groups: Sequence[Any], param: str
                  ) -> Callable[[Any, Path], list[Path]]:
    """The ``figures`` hook of the width study (:func:`conjugacy.analysis.run_pipeline`):
    :func:`draw_all` with the training loss of every run and the weights ``param`` of the first
    replica of seed 0 of each width read from ``reader``, and :func:`figure_s2`
    (``figS2_relative_test_loss``) when the results hold ``sections["relative_test_loss"]``.

    Parameters
    ----------
    reader : StudyReader
    groups : sequence of SpectrumGroup
        One per (width, seed).
    param : str
        The recorded weights (``"fc2.weight"``).
    """
    from ..analysis.groups import scalar_curves

    def draw(results: Any, out: Path) -> list[Path]:
        losses = {c: y for c, (y, _) in scalar_curves(reader, groups, "loss").items()}
        examples = {g.condition: reader.read(params=param, runs=list(g.runs[:1]),
                                             dtype=np.float64)[0] for g in groups if g.seed == 0}
        paths = draw_all(results, losses, examples, out)
        rel = results.content["sections"].get("relative_test_loss")
        if rel:
            paths += save_figure(figure_s2(rel), Path(out) / "figS2_relative_test_loss")
        return paths

    return draw
