"""Figures of the spectral-dynamics report (companion paper's figures), from its results.

Every function takes the content of ``results.json`` written by
:func:`conjugacy.analysis.checkpoints.spectral_dynamics_report` (the measures are read from its
``sections``; the sections themselves, as
:func:`~conjugacy.analysis.checkpoints.checkpoint_sections` returns them, work too; or the parts
named) and returns a :class:`~matplotlib.figure.Figure`; :func:`draw_all` saves each as PNG and
SVG. Nothing is computed here beyond picking and stacking what the results hold.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .core import FONT_SIZE, color_for, legend_label, new_figure, save_figure

__all__ = [
    "draw_all",
    "figure_alignment",
    "figure_effective_rank",
    "figure_lmc",
    "figure_singular_values",
    "figure_sva",
]


def _short(name: str) -> str:
    return name.removesuffix(".weight")


def _time_axis(ax: Axes, steps: Sequence[int], n_ticks: int = 6) -> None:
    n = len(steps)
    idx = np.unique(np.linspace(0, n - 1, min(n, n_ticks)).round().astype(int))
    ax.set_xticks(idx)
    ax.set_xticklabels([str(int(steps[i])) for i in idx], fontsize=FONT_SIZE - 1)
    ax.set_xlabel("step (checkpoint)")


def _heatmap(ax: Axes, data: np.ndarray, steps: Sequence[int], ylabels: Sequence[str] | None,
             title: str, vmin: float = 0.0, vmax: float = 1.0, ylabel: str = "") -> Any:
    """``data`` (rows, n_ckpt) as an image: rows down, checkpoints across."""
    im = ax.imshow(data, aspect="auto", origin="upper", cmap="magma", vmin=vmin, vmax=vmax,
                   interpolation="nearest")
    _time_axis(ax, steps)
    if ylabels is not None:
        ax.set_yticks(range(len(ylabels)))
        ax.set_yticklabels(ylabels, fontsize=FONT_SIZE - 2)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=FONT_SIZE)
    return im


def _middle(names: Sequence[str]) -> str:
    return list(names)[len(names) // 2]


def _measures(results: Mapping[str, Any]) -> Mapping[str, Any]:
    """The measures: ``results["sections"]`` of a results.json, or the sections themselves."""
    return results.get("sections", results)


def _first_run(results: Mapping[str, Any], condition: str) -> tuple[str, Mapping[str, Any]]:
    runs = [(k, r) for k, r in _measures(results)["runs"].items() if r["condition"] == condition]
    if not runs:
        raise ValueError(f"no run of condition {condition!r} in the results")
    return sorted(runs, key=lambda kr: kr[0])[0]


def figure_singular_values(results: Mapping[str, Any], condition: str) -> Figure:
    """Singular values of every layer over training (first run of ``condition``), one line per
    singular value coloured by its rank (dark = top).

    Parameters
    ----------
    results : dict
        ``results.json`` of :func:`conjugacy.experiments.spectral_dynamics.run` or of
        ``conjugacy spectral-dynamics`` (or its ``sections``): ``runs`` (per run: ``condition``,
        ``steps``, ``singular_values`` per layer) and ``groups`` (per condition: the measures
        over checkpoints, mean and std over seeds).
    condition : str

    Returns
    -------
    matplotlib.figure.Figure
        One panel per layer.

    Raises
    ------
    ValueError
        No run of ``condition`` in the results.

    Examples
    --------
    The fields of ``results.json`` the figures read, for one run of two layers at three
    checkpoints:

    >>> import numpy as np
    >>> sv = {"fc1.weight": np.array([[3.0, 1.0], [3.5, 0.9], [4.0, 0.8]]),
    ...       "fc2.weight": np.array([[2.0, 0.5], [2.2, 0.4], [2.5, 0.3]])}
    >>> run = {"condition": "true", "steps": [0, 5, 10], "singular_values": sv}
    >>> results = {"runs": {"true_s0": run}}
    >>> [ax.get_title() for ax in figure_singular_values(results, "true").axes]
    ['fc1', 'fc2']
    """
    name, run = _first_run(results, condition)
    layers = list(run["singular_values"])
    fig, axes = new_figure(1, len(layers), height=3.0)
    axes = np.atleast_1d(axes)
    steps = np.asarray(run["steps"])
    cmap = colormaps["viridis"]
    for ax, layer in zip(axes, layers):
        s = np.asarray(run["singular_values"][layer])
        k = s.shape[1]
        for j in range(k):
            ax.plot(steps, s[:, j], color=cmap(j / max(k - 1, 1)), lw=0.7)
        ax.set_title(_short(layer), fontsize=FONT_SIZE)
        ax.set_xlabel("step")
    axes[0].set_ylabel("singular value")
    fig.suptitle(f"singular values over training: {name}", fontsize=FONT_SIZE + 1)
    return fig


def figure_effective_rank(results: Mapping[str, Any]) -> Figure:
    """Top row: effective-rank fingerprints (layer x time, mean over seeds) per condition.
    Bottom row: effective rank of each layer over training, mean +- std over seeds, one colour per
    condition.

    Parameters
    ----------
    results : dict
        As :func:`figure_singular_values`; ``groups[c]["effective_rank"]`` is read.

    Returns
    -------
    matplotlib.figure.Figure
        Two rows: heat maps per condition, curves per layer.

    Examples
    --------
    >>> rank = {"mean": [0.9, 0.7, 0.6], "std": [0.05, 0.05, 0.04]}
    >>> groups = {c: {"steps": [0, 5, 10], "aggregated_runs": ["s0", "s1"],
    ...               "effective_rank": {"fc1.weight": rank, "fc2.weight": rank}}
    ...           for c in ("true", "random")}
    >>> results = {"groups": groups}
    >>> figure_effective_rank(results).axes[0].get_title()
    'effective rank: true (n=2)'
    """
    groups = _measures(results)["groups"]
    conds = list(groups)
    layers = list(groups[conds[0]]["effective_rank"])
    ncols = max(len(conds), len(layers))
    fig, axes = new_figure(2, ncols, height=6.4, width=3.2 * ncols)
    axes = np.asarray(axes).reshape(2, ncols)
    im = None
    maps = {c: np.array([groups[c]["effective_rank"][n]["mean"]
                         for n in groups[c]["effective_rank"]]) for c in conds}
    lo = min(float(np.nanmin(m)) for m in maps.values())
    hi = max(float(np.nanmax(m)) for m in maps.values())
    for i, c in enumerate(conds):
        g = groups[c]
        im = _heatmap(axes[0, i], maps[c], g["steps"], [_short(n) for n in g["effective_rank"]],
                      f"effective rank: {c} (n={len(g['aggregated_runs'])})", vmin=lo,
                      vmax=hi if hi > lo else lo + 1e-9)
    for j in range(len(conds), ncols):
        axes[0, j].set_visible(False)
    if im is not None:
        fig.colorbar(im, ax=axes[0, len(conds) - 1], shrink=0.8)
    for j, layer in enumerate(layers):
        ax = axes[1, j]
        for i, c in enumerate(conds):
            g = groups[c]
            if layer not in g["effective_rank"]:
                continue
            m = np.asarray(g["effective_rank"][layer]["mean"])
            sd = np.asarray(g["effective_rank"][layer]["std"])
            st = np.asarray(g["steps"])
            col = color_for(c, i)
            ax.plot(st, m, color=col, label=legend_label(c), lw=1.2)
            ax.fill_between(st, m - sd, m + sd, color=col, alpha=0.25, lw=0)
        ax.set_title(_short(layer), fontsize=FONT_SIZE)
        ax.set_xlabel("step")
    for j in range(len(layers), ncols):
        axes[1, j].set_visible(False)
    axes[1, 0].set_ylabel("effective rank / min(m, n)")
    axes[1, 0].legend(fontsize=FONT_SIZE - 1, frameon=False)
    return fig


def figure_sva(results: Mapping[str, Any]) -> Figure:
    """Per condition: the agreement diagonal with the final checkpoint (rank <= 100 x time) of the
    middle layer, and the top-10 agreement score of every layer over time (fingerprint).

    Parameters
    ----------
    results : dict
        As :func:`figure_singular_values`; the ``sva_diagonal`` and ``sva_score`` of each group.

    Returns
    -------
    matplotlib.figure.Figure
        Two rows per condition: the diagonal and the score per layer, with a colour bar.

    Examples
    --------
    >>> import numpy as np
    >>> agreement = np.linspace(1, 0.2, 6) * np.ones((3, 1))  # checkpoints x rank i
    >>> top10 = {"mean": [0.2, 0.6, 1.0]}
    >>> results = {"groups": {"true": {"steps": [0, 5, 10],
    ...     "sva_diagonal": {"fc1.weight": agreement, "fc2.weight": agreement},
    ...     "sva_score": {"fc1.weight": top10, "fc2.weight": top10}}}}
    >>> [ax.get_title() for ax in figure_sva(results).axes[:2]]
    ['true: SVA diagonal, fc2', 'true: SVA score (top 10)']
    """
    groups = _measures(results)["groups"]
    conds = list(groups)
    fig, axes = new_figure(2, len(conds), height=6.4, width=3.6 * len(conds))
    axes = np.asarray(axes).reshape(2, len(conds))
    for i, c in enumerate(conds):
        g = groups[c]
        layer = _middle(list(g["sva_diagonal"]))
        d = np.asarray(g["sva_diagonal"][layer]).T  # (rank, n_ckpt)
        _heatmap(axes[0, i], d, g["steps"], None, f"{c}: SVA diagonal, {_short(layer)}",
                 ylabel="rank i")
        scores = np.array([g["sva_score"][n]["mean"] for n in g["sva_score"]])
        im = _heatmap(axes[1, i], scores, g["steps"], [_short(n) for n in g["sva_score"]],
                      f"{c}: SVA score (top 10)")
    fig.colorbar(im, ax=axes[:, -1], shrink=0.6)
    return fig


def figure_alignment(results: Mapping[str, Any]) -> Figure | None:
    """Per condition: the alignment diagonal (rank <= 100 x time) of the middle layer pair, and
    the top-10 alignment score of every chained pair over time. None if no pair chains.

    Parameters
    ----------
    results : dict
        As :func:`figure_singular_values`; each group's ``alignment_*`` and ``chain``.

    Returns
    -------
    matplotlib.figure.Figure or None

    Examples
    --------
    >>> import numpy as np
    >>> pair = "fc1.weight->fc2.weight"
    >>> group = {"steps": [0, 5, 10], "chain": {"skipped": []},
    ...          "alignment_diagonal": {pair: np.full((3, 4), 0.5)},
    ...          "alignment_score": {pair: {"mean": [0.1, 0.4, 0.8]}}}
    >>> results = {"groups": {"true": group}}
    >>> figure_alignment(results).axes[0].get_title()
    'true: alignment fc1 -> fc2'
    >>> group["alignment_score"] = {}  # no chained pair of layers
    >>> figure_alignment(results) is None
    True
    """
    groups = {c: g for c, g in _measures(results)["groups"].items() if g["alignment_score"]}
    if not groups:
        return None
    conds = list(groups)
    fig, axes = new_figure(2, len(conds), height=6.4, width=3.8 * len(conds))
    axes = np.asarray(axes).reshape(2, len(conds))
    im = None
    for i, c in enumerate(conds):
        g = groups[c]
        pair = _middle(list(g["alignment_diagonal"]))
        d = np.asarray(g["alignment_diagonal"][pair]).T
        a, b = pair.split("->")
        _heatmap(axes[0, i], d, g["steps"], None,
                 f"{c}: alignment {_short(a)} -> {_short(b)}", ylabel="rank i")
        scores = np.array([g["alignment_score"][n]["mean"] for n in g["alignment_score"]])
        labels = [" -> ".join(_short(x) for x in n.split("->")) for n in g["alignment_score"]]
        im = _heatmap(axes[1, i], scores, g["steps"], labels, f"{c}: alignment score (top 10)")
        skipped = g["chain"]["skipped"]
        if skipped:
            axes[1, i].text(0, -0.35, f"{len(skipped)} pair(s) skipped (see results.json)",
                            transform=axes[1, i].transAxes, fontsize=FONT_SIZE - 2)
    fig.colorbar(im, ax=axes[:, -1], shrink=0.6)
    return fig


def figure_lmc(lmc: Mapping[str, Any]) -> Figure:
    """Barrier (loss and error) vs split step, mean +- std over trunks; top-10 agreement of the
    branch endpoints vs split step; the endpoints' agreement diagonal of the middle layer per
    split step.

    Parameters
    ----------
    lmc : dict
        The ``lmc`` section of the results: ``by_split`` (split steps; barrier loss and error
        and the endpoints' mean agreement score, mean and std over trunks) and ``pairs`` (one row
        per branch pair: ``split_step`` and the ``sva_diagonal`` per layer).

    Returns
    -------
    matplotlib.figure.Figure
        Three panels: barriers, endpoint agreement, endpoint diagonal per split.

    Examples
    --------
    >>> import numpy as np
    >>> by_split = {"split_steps": [0, 4, 8],
    ...             "barrier_loss": {"mean": [0.5, 0.1, 0.0], "std": [0.1] * 3},
    ...             "barrier_error": {"mean": [0.3, 0.05, 0.0], "std": [0.05] * 3},
    ...             "mean_sva_score": {"mean": [0.2, 0.6, 0.9], "std": [0.1] * 3}}
    >>> pairs = [{"split_step": st, "sva_diagonal": {"fc1.weight": np.linspace(1, 0, 5) * k}}
    ...          for st, k in ((0, 0.3), (4, 0.7), (8, 1.0))]
    >>> lmc = {"by_split": by_split, "pairs": pairs}
    >>> fig = figure_lmc(lmc)
    >>> fig.axes[0].get_ylabel(), fig.axes[2].get_title()
    ('barrier', 'endpoint SVA diagonal, fc1')
    """
    s = lmc["by_split"]
    x = np.asarray(s["split_steps"])
    fig, axes = new_figure(1, 3, height=3.2)
    for key, col, label in (("barrier_loss", "#0072b2", "loss"), ("barrier_error", "#d55e00",
                                                                   "error")):
        m, sd = np.asarray(s[key]["mean"]), np.asarray(s[key]["std"])
        axes[0].errorbar(x, m, yerr=sd, color=col, marker="o", label=label, capsize=3)
    axes[0].axhline(0, color="0.6", lw=0.8)
    axes[0].set_xlabel("split step")
    axes[0].set_ylabel("barrier")
    axes[0].set_xscale("symlog", linthresh=max(1, int(x[x > 0].min()) if np.any(x > 0) else 1))
    axes[0].legend(fontsize=FONT_SIZE - 1, frameon=False)
    m, sd = np.asarray(s["mean_sva_score"]["mean"]), np.asarray(s["mean_sva_score"]["std"])
    axes[1].errorbar(x, m, yerr=sd, color="#009e73", marker="o", capsize=3)
    axes[1].set_xscale("symlog", linthresh=max(1, int(x[x > 0].min()) if np.any(x > 0) else 1))
    axes[1].set_xlabel("split step")
    axes[1].set_ylabel("endpoint SVA score (top 10, mean over layers)")
    rows = lmc["pairs"]
    layers = list(rows[0]["sva_diagonal"])
    layer = _middle(layers)
    per_split = []
    for st in s["split_steps"]:
        diags = [np.asarray(r["sva_diagonal"][layer]) for r in rows if r["split_step"] == st]
        per_split.append(np.mean(diags, axis=0))
    d = np.stack(per_split).T
    im = axes[2].imshow(d, aspect="auto", cmap="magma", vmin=0, vmax=1, interpolation="nearest")
    axes[2].set_xticks(range(len(x)))
    axes[2].set_xticklabels([str(v) for v in x], fontsize=FONT_SIZE - 1)
    axes[2].set_xlabel("split step")
    axes[2].set_ylabel("rank i")
    axes[2].set_title(f"endpoint SVA diagonal, {_short(layer)}", fontsize=FONT_SIZE)
    fig.colorbar(im, ax=axes[2], shrink=0.8)
    return fig


def draw_all(results: Mapping[str, Any], folder: str | os.PathLike[str]) -> list[Path]:
    """Draw every figure the results support into ``folder`` (PNG + SVG); return the paths.

    ``singular_values_<condition>``, ``effective_rank``, ``singular_vector_agreement``,
    ``alignment`` (when a pair of layers chains) and ``barrier_vs_split`` (with an ``lmc``
    section).

    Parameters
    ----------
    results : dict
        As :func:`figure_singular_values`: ``runs``, ``groups`` and, optionally, ``lmc``.
    folder : path
        Created if needed.

    Returns
    -------
    list of Path

    Examples
    --------
    >>> import numpy as np
    >>> steps, layers, pair = [0, 5, 10], ["fc1.weight", "fc2.weight"], "fc1.weight->fc2.weight"
    >>> curve = {"mean": [0.9, 0.7, 0.6], "std": [0.05, 0.05, 0.04]}
    >>> diag = np.linspace(1, 0.2, 6) * np.ones((3, 1))  # (checkpoints, rank)
    >>> group = {"steps": steps, "aggregated_runs": ["true_s0"], "sva_diagonal": dict.fromkeys(
    ...          layers, diag), "effective_rank": dict.fromkeys(layers, curve),
    ...          "sva_score": dict.fromkeys(layers, curve), "alignment_diagonal": {pair: diag},
    ...          "alignment_score": {pair: curve}, "chain": {"skipped": []}}
    >>> sv = {n: np.array([[3.0, 1.0], [3.5, 0.9], [4.0, 0.8]]) for n in layers}
    >>> results = {"runs": {"true_s0": {"condition": "true", "steps": steps, "singular_values": sv}},
    ...            "groups": {"true": group}}
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     sorted(p.name for p in draw_all(results, folder) if p.suffix == ".png")
    ['alignment.png', 'effective_rank.png', 'singular_values_true.png', 'singular_vector_agreement.png']
    """
    folder = Path(folder)
    results = _measures(results)
    written: list[Path] = []
    if results.get("groups"):
        for c in results["groups"]:
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in c)
            written += save_figure(figure_singular_values(results, c),
                                   folder / f"singular_values_{safe}")
        written += save_figure(figure_effective_rank(results), folder / "effective_rank")
        written += save_figure(figure_sva(results), folder / "singular_vector_agreement")
        fig = figure_alignment(results)
        if fig is not None:
            written += save_figure(fig, folder / "alignment")
    if results.get("lmc"):
        written += save_figure(figure_lmc(results["lmc"]), folder / "barrier_vs_split")
    return written
