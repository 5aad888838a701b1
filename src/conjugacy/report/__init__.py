"""Reports a researcher can read and share: one self-contained ``report.html`` and a ``report.md``.

:func:`write_report` lays out a results dict; it computes nothing (every number comes from the
results; figures are drawn with :mod:`conjugacy.plots`). ``report.html`` embeds its figures as
base64 PNG and its style inline: no external resource, no server, it opens offline and can be sent
by mail. ``report.md`` (for READMEs and notebooks) links the same figures, saved as PNG files in
``figures/`` beside it.

Results schema
--------------
A dict of JSON types (the ``results.json`` that ``conjugacy analyze`` and the paper's studies
write). Only ``comparison`` or ``spectra`` is required; every other section appears when present.

``title`` : str
    Heading (default ``"conjugacy report"``); ``experiment`` and ``paper`` are shown under it.
``comparison`` : dict
    The record of :func:`conjugacy.analysis.compare_conditions`: ``conditions``, ``n_seeds``,
    ``pairs`` (name -> [a, b]), ``alpha``, ``verdict_rule``, ``verdict_uses``, ``filter``,
    ``verdicts`` (name -> {verdict, pvalue, uses}), ``all`` and ``filtered``, each with
    ``distances`` (name -> {per_seed, mean, std[, interval]}), ``between_seeds`` (condition ->
    {matrix, mean, ...}), ``permutation_tests`` (name -> {statistic, pvalue, n_permutations, exact[,
    effect_size, min_pvalue, noise_floor]}), ``equivalence_classes`` ({noise_floor, classes,
    mean_distance_matrix, ...}) and, in ``filtered``, ``eigenvalues`` (condition -> per seed
    [[re, im], ...]).
``spectra`` : dict condition -> list (one per seed) of :func:`conjugacy.results.spectrum_to_dict`
    Eigenvalues ``[[re, im], ...]``, ``rank``, ``residuals_informative``, ``settings`` (``delays``,
    ``rank_requested``, ``rank_reduced``, ``notes``, ...).
``conditions`` : dict condition -> dict
    What each condition is (e.g. ``{"width": 5}``; ``conjugacy analyze``: the run metadata its
    runs share), shown as a table of the settings that differ; long labels (a ``--group-by``
    key whose value is a dict) are shown by those settings (:func:`short_names`).
``group_by``, ``seed_key`` : str
    The run metadata keys that made conditions and seeds.
``runs`` : list of dict
    ``{"run", "condition", "seed", "n_complete", "first_step", "last_step", "finished"}``.
``observables`` : str or list of str
``settings`` : dict
    Spectrum settings used (``delays``, ``rank``, ``method``, ...); ``settings_reasoning`` : dict
    setting -> why it was chosen.
``data`` : dict
    Data set name, source, sizes.
``loss`` : dict label -> {"mean": [...], "std": [...], "steps": [...]}
``windows`` : dict
    ``{"window": int, "stride": int, "conditions": {condition: {"labels": [...],
    "distance_matrix": [[...]], "transitions": TransitionResult.as_dict()}},
    "between_conditions": ...}``; ``between_conditions`` (the record of
    :func:`conjugacy.analysis.windowed.conditions_by_window`) gives the section "When do the
    conditions differ?": per pair a table per window and a figure over training steps.
``warnings`` : list of str
    Shown first among the warnings; the report adds those the results show (rank reduced,
    residuals uninformative, too few seeds, unfinished runs, no residual filter).
``timing_seconds``, ``provenance`` : dict
    Wall times; package versions and training settings.
``figures`` : list of str
    Files the study drew (names relative to the folder of ``results.json``, or paths inside it);
    with ``write_report(..., source_dir=...)`` their PNGs are embedded after the report's own.
``spectral_dynamics`` : dict
    ``{"results": path, "n_checkpoint_runs": int}`` when the runs had weight checkpoints.
"""

from __future__ import annotations

from typing import Any

from ._content import (
    ReportError,
    comparison_rows,
    condition_rows,
    overview,
    short_names,
    verdicts,
    warnings_of,
    window_comparisons,
)
from ._figures import ReportFigure, report_figures, study_figures
from ._render import _html_text, _table, render_html, render_markdown, write_report

__all__ = [
    "ReportError",
    "results_html",
    "ReportFigure",
    "comparison_rows",
    "condition_rows",
    "overview",
    "render_html",
    "render_markdown",
    "report_figures",
    "short_names",
    "study_figures",
    "verdicts",
    "warnings_of",
    "window_comparisons",
    "write_report",
]


def results_html(results: Any, spectra: Any) -> str:
    """A short HTML summary of a results dict and its spectra (the notebook view of
    :class:`conjugacy.analysis.Results`): verdicts, the comparison table, the leading
    eigenvalues, warnings. Every user string is cut to 2,000 characters (the report's
    ``MAX_TEXT``) and escaped, as in ``report.html``.

    Parameters
    ----------
    results : dict
        Schema in the module docstring; ``experiment``, ``comparison`` and ``claims`` are read.
    spectra : dict condition -> list of Spectrum
        One per seed.

    Returns
    -------
    str
        An HTML fragment (no ``<html>`` page around it).

    Raises
    ------
    ReportError
        If ``comparison`` has the wrong shape.

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
    >>> page = results_html({**results, "experiment": "demo"}, spectra)
    >>> page.splitlines()[0]
    '<p><b>demo: 2 conditions, 3 seeds each</b></p>'
    >>> "<b>sgd vs adam: undecided.</b>" in page
    True
    """
    e = _html_text  # the report's one rule: cut to MAX_TEXT characters, then escaped
    conds = list(spectra)
    n_seeds = len(next(iter(spectra.values()), []))
    parts = [f"<p><b>{e(results.get('experiment'))}: {len(conds)} conditions, "
             f"{n_seeds} seeds each</b></p>"]
    if results.get("comparison"):
        parts.append("<ul>" + "".join(
            f"<li><b>{e(r['a'])} vs {e(r['b'])}: {e(r['verdict'] or 'not tested')}.</b> "
            f"{e(r['explanation'])}</li>" for r in verdicts(results)) + "</ul>")
        parts.append(_table(comparison_rows(results)))
    for c in results.get("claims") or []:
        word = {True: "holds", False: "does not hold"}.get(c.get("holds"), "undecided")
        parts.append(f"<p>claim: {e(c.get('claim'))} -- <b>{word}</b> "
                     f"({e(c.get('evidence'))})</p>")
    rows = [("condition", "seed", "eigenvalues (|λ| desc.)")]
    for c, specs in spectra.items():
        for s, sp in enumerate(specs):
            eig = ", ".join(f"{z.real:.4f}{z.imag:+.4f}j" for z in sp.eigenvalues[:8])
            more = f" ... (8 of {len(sp.eigenvalues)} shown)" if len(sp.eigenvalues) > 8 else ""
            rows.append((c, str(s), eig + more))
    parts.append(_table(rows))
    warns = results.get("warnings") or []
    if warns:
        parts.append("<ul>" + "".join(f"<li>warning: {e(w)}</li>" for w in warns) + "</ul>")
    return "\n".join(parts)
