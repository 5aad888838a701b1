"""The analysis layer: the second half of every study, written once.

The path of the data, after training (:mod:`conjugacy.study`):

1. **Groups** (:mod:`.groups`): the runs of a study grouped by their metadata (condition, seed
   [, window]) into :class:`SpectrumGroup` objects; :func:`fit_spectra` fits one Koopman spectrum
   per group in the dtype the runs were stored in, serially or as Dask tasks.
2. **Comparison** (:mod:`.comparison`): :func:`compare_conditions` -- distances per seed with
   intervals, the permutation test, the paper's controls, the noise floor, classes -- on all and
   on filtered spectra, and the verdicts of the package's one rule
   (:func:`conjugacy.stats.verdict`), in a :class:`Comparison` record.
3. **Pipeline** (:mod:`.pipeline`): :func:`run_pipeline` (runs in stores) and :func:`summarize`
   (spectra in memory) add the loss curves, windows, bootstrap, the experiment's sections, claims
   and figures, provenance and timing, and write ``results.json`` once, as a :class:`Results` in
   the versioned schema ``"conjugacy.results/2"`` (:mod:`.results`).
4. **Own runs** (:mod:`.own_runs`): :func:`analyze` groups a researcher's runs by metadata and
   chooses settings; **checkpoints** (:mod:`.checkpoints`): the spectral-dynamics report of weight
   snapshots.

Experiments (:mod:`conjugacy.experiments`) compose these; nothing here imports an experiment, the
plots or the command line (figures come in through hooks).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .comparison import (
    Comparison,
    chosen,
    compare_conditions,
    filter_spectrum,
    pair_key,
    seed_interval,
    verdict_rule,
)
from .groups import SpectrumGroup, fit_spectra, group_runs, record_interval, study_groups
from .pipeline import (
    by_condition,
    loss_curves,
    run_pipeline,
    run_table,
    summarize,
    summarize_sections,
)
from .results import SCHEMA, AnalysisResults, Claim, Results, schema, spectra_to_json, validate

__all__ = [
    "SCHEMA",
    "AnalysisResults",
    "Claim",
    "Comparison",
    "Results",
    "SpectrumGroup",
    "analyse_study",
    "by_condition",
    "chosen",
    "compare_conditions",
    "filter_spectrum",
    "fit_spectra",
    "group_runs",
    "loss_curves",
    "pair_key",
    "record_interval",
    "run_pipeline",
    "run_table",
    "schema",
    "seed_interval",
    "spectra_to_json",
    "summarize",
    "summarize_sections",
    "validate",
    "verdict_rule",
]


def analyse_study(
    study: Any,
    out: Any,
    *,
    params: str | Sequence[str] | None,
    spectrum: Mapping[str, Any] | Callable[[SpectrumGroup], Mapping[str, Any]] | None = None,
    client: Any = None,
    figures: Callable[[Results, Path], Sequence[Path]] | None = None,
    alpha: float = 0.05,
    seed: int = 0,
    n_permutations: int = 999,
    n_shuffles: int = 100,
    loss: str | None = "loss",
    training: Any = None,
    data: Mapping[str, Any] | None = None,
    claims: Callable[[Mapping[str, Any]], Sequence[Claim]] | None = None,
    neighbours: bool = False,
) -> Results:
    """Spectra per (condition, seed), the comparison, figures and ``results.json`` of a study.

    The standard second half of a declared study (the first is :func:`conjugacy.study.run_study`):
    one spectrum per (condition, seed) job of the grid from its replica runs, condition by
    condition (:func:`.groups.study_groups`, as every experiment; ``extra_jobs``, runs outside
    the grid, are left out), :func:`compare_conditions` over all pairs of conditions, the loss
    curves, provenance and timing, written once to ``OUT/results.json`` (schema
    ``"conjugacy.results/2"``).

    Parameters
    ----------
    study : Study
    out : path
        The folder :func:`~conjugacy.study.run_study` trained into.
    params : str or list of str
        The recorded parameters that are the observables (names or globs).
    spectrum : dict, callable or None
        :func:`conjugacy.koopman_spectrum` settings, or a function of the group. None: the
        defaults of ``conjugacy analyze`` (delays from the data, ``rank="svht"``:
        :func:`conjugacy.analysis.own_runs.default_settings`; verdicts on all eigenvalues,
        :func:`~conjugacy.analysis.own_runs.comparison_options`), the reasoning in
        ``results["settings_reasoning"]``.
    client : dask.distributed.Client, optional
        Fit the spectra as Dask tasks.
    figures : callable, optional
        ``figures(results, out) -> paths``, e.g. :func:`conjugacy.plots.study.study_figures`.
    alpha, seed, n_permutations, n_shuffles
        See :func:`compare_conditions`.
    loss : str or None
        Name of the scalar recorded as the loss.
    training : StudyRun, optional
        The training report: ``results["training"]`` (per job, trained and skipped jobs, the
        executor) and its wall time, ``results["timing_seconds"]["training"]``, as in the
        experiments' results (:meth:`conjugacy.study.ExperimentRun.training`).
    data : dict, optional
        Where the data came from, for the provenance.
    claims : callable, optional
        ``claims(content) -> [Claim]``.
    neighbours : bool
        Refit the comparison at neighbouring settings (``comparison["neighbourhood"]``,
        :mod:`conjugacy.analysis.neighbours`; up to 2 more fits per spectrum, the delay neighbours).

    Returns
    -------
    Results
        Also written to ``OUT/results.json``.

    Raises
    ------
    FileNotFoundError
        If ``out`` holds no trained study (:meth:`conjugacy.study.StudyReader.open`).
    ValueError
        As :func:`run_pipeline`.

    Examples
    --------
    A study of random walks with and without drift, trained, then analysed:

    >>> import tempfile
    >>> from conjugacy.analysis.demo import random_walk_study
    >>> from conjugacy.study import run_study
    >>> study = random_walk_study(seeds=(0, 1, 2, 3), n_records=20, sd=0.1, settings={})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = run_study(study, tmp)
    ...     results = analyse_study(study, tmp, params="w", spectrum={"delays": 0, "rank": 2})
    ...     written = sorted(p.name for p in results.out_dir.iterdir())
    >>> results.verdicts, results["experiment"], "results.json" in written
    ({'flat-up': 'not conjugate'}, 'demo', True)
    """
    from ..study import ExperimentRun, StudyReader

    t0 = time.perf_counter()
    groups = study_groups(study)
    with StudyReader.open(out, jobs=study.jobs()[:len(groups)]) as reader:  # the grid's jobs
        reasoning, compare_with = None, {}
        if spectrum is None:
            from .own_runs import comparison_options, default_settings

            spectrum, reasoning = default_settings(reader, groups, params)
            compare_with = comparison_options()  # the default filter: all eigenvalues
        runs = {} if training is None else {"": training}  # the route the experiments take
        run = ExperimentRun(Path(out), client, {"": study}, runs, {"": reader}, bool(figures), t0)
        return run.pipeline(
            groups, spectrum, data=data, params=params, loss=loss, neighbours=neighbours,
            conditions=dict(study.conditions), figures=figures, claims=claims,
            stats={"alpha": alpha, "seed": seed, "n_permutations": n_permutations,
                   "n_shuffles": n_shuffles, **compare_with},
            fields={"n_replicas": study.n_replicas,
                    **({} if reasoning is None else {"settings_reasoning": reasoning})})
