"""The second half of every study, written once: from runs (or fitted spectra) to ``results.json``.

Two entries, one path:

- :func:`run_pipeline` (runs in stores): fit one spectrum per group (:func:`fit_spectra`, in the
  stored dtype, serially or on Dask), the loss curves and the run table, windows, then
  :func:`summarize`;
- :func:`summarize` (spectra in memory, e.g. the optimizer study's trajectories): the comparison
  (:func:`compare_conditions`, the one verdict rule), bootstrap intervals, the experiment's own
  sections and claims, figures, provenance and timing, ``results.json`` written once
  (schema ``"conjugacy.results/2"``, :mod:`conjugacy.analysis.results`).

An experiment supplies what is specific to it through hooks: ``sections(spectra) -> dict`` (e.g.
the unit-circle counts of grokking), ``claims(content) -> list[Claim]`` (the paper's claims,
decided on the numbers) and ``figures(results, out) -> list[Path]``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .comparison import compare_conditions
from .groups import SpectrumGroup, fit_spectra, scalar_curves
from .results import SCHEMA, Claim, Results, curve_summary, spectra_to_json

__all__ = ["by_condition", "loss_curves", "run_pipeline", "run_table", "summarize",
           "summarize_sections"]

#: The base fits keep at most this many bytes of trajectories in memory for the neighbour check
#: (the rest is read again): a second read of a small store costs more than its fits.
KEEP_BYTES = 256 * 2**20
#: Keyword arguments of :func:`compare_conditions` that :func:`summarize` passes on.
STAT_OPTIONS = ("alpha", "seed", "n_permutations", "n_shuffles", "shuffle", "ks", "p",
                "use_filter", "pairs", "filter_rule", "time")


def by_condition(groups: Sequence[SpectrumGroup], fitted: Mapping[tuple, Any]
                 ) -> dict[str, list[Any]]:
    """``{condition: [spectrum per seed]}`` of the groups without a window, in group order.

    Parameters
    ----------
    groups : sequence of SpectrumGroup
    fitted : mapping (condition, seed, window) -> Spectrum
        As :func:`~conjugacy.analysis.fit_spectra` returns.

    Returns
    -------
    dict condition -> list of Spectrum

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from conjugacy.store import TrajectoryStore
    >>> from conjugacy.analysis.demo import decay_store
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = decay_store(f"{tmp.name}/runs.zarr")  # 2 conditions x 4 seeds, 30 records
    >>> from conjugacy.analysis import SpectrumGroup, fit_spectra, group_runs
    >>> store = TrajectoryStore.open(path, "r")
    >>> groups = [SpectrumGroup(c, s, runs) for (c, s), runs in group_runs(store).items()]
    >>> fitted = fit_spectra(store, groups, {"delays": 0, "rank": 1})
    >>> {c: len(v) for c, v in by_condition(groups, fitted).items()}
    {'fast': 4, 'slow': 4}
    >>> store.close()
    >>> tmp.cleanup()
    """
    out: dict[str, list[Any]] = {}
    for g in groups:
        if g.window is None:
            out.setdefault(g.condition, []).append(fitted[g.key])
    return out


def run_table(reader: Any, groups: Sequence[SpectrumGroup]) -> list[dict[str, Any]]:
    """One row per run of the groups: condition, seed, records, first/last step, finished.

    Parameters
    ----------
    reader : TrajectoryStore or StudyReader
    groups : sequence of SpectrumGroup

    Returns
    -------
    list of dict
        The ``runs`` entry of ``results.json``.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from conjugacy.store import TrajectoryStore
    >>> from conjugacy.analysis.demo import decay_store
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = decay_store(f"{tmp.name}/runs.zarr")  # 2 conditions x 4 seeds, 30 records
    >>> from conjugacy.analysis import SpectrumGroup, fit_spectra, group_runs
    >>> store = TrajectoryStore.open(path, "r")
    >>> groups = [SpectrumGroup(c, s, runs) for (c, s), runs in group_runs(store).items()]
    >>> run_table(store, groups[:1])
    [{'run': 'fast_s0', 'condition': 'fast', 'seed': 0, 'window': None, 'n_complete': 30,
      'first_step': 0, 'last_step': 29, 'finished': True}]
    >>> store.close()
    >>> tmp.cleanup()
    """
    from ..results import to_jsonable

    info = {r: reader.run_info(r) for g in groups for r in g.runs}
    return [{"run": r, "condition": g.condition, "seed": to_jsonable(g.seed), "window": g.window,
             "n_complete": int(info[r]["n_complete"]), "first_step": info[r].get("first_step"),
             "last_step": info[r].get("last_step"), "finished": bool(info[r]["finished"])}
            for g in groups for r in g.runs]


def loss_curves(reader: Any, groups: Sequence[SpectrumGroup], name: str = "loss"
                ) -> dict[str, dict[str, Any]]:
    """Per condition, mean and std over its runs of the recorded scalar ``name`` over the groups'
    records (the first record, before any step, left out). Runs that did not record it are left
    out; a condition with no such run has no curve.

    Parameters
    ----------
    reader : TrajectoryStore or StudyReader
    groups : sequence of SpectrumGroup
        Groups with a window are left out.
    name : str
        The recorded scalar.

    Returns
    -------
    dict condition -> dict
        :func:`conjugacy.analysis.results.curve_summary` of each condition's curves
        (:func:`conjugacy.analysis.groups.scalar_curves`): ``steps``, ``mean``, ``std``, ``min``,
        ``max`` (lists), ``final_mean`` (the mean of the last tenth), ``n_runs``.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from conjugacy.store import TrajectoryStore
    >>> from conjugacy.analysis.demo import decay_store
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = decay_store(f"{tmp.name}/runs.zarr")  # 2 conditions x 4 seeds, 30 records
    >>> from conjugacy.analysis import SpectrumGroup, fit_spectra, group_runs
    >>> store = TrajectoryStore.open(path, "r")
    >>> groups = [SpectrumGroup(c, s, runs) for (c, s), runs in group_runs(store).items()]
    >>> curves = loss_curves(store, groups)
    >>> c = curves["fast"]
    >>> c["steps"][:3], c["mean"][:2], c["n_runs"]
    ([1, 2, 3], [0.7, 0.49], 4)
    >>> store.close()
    >>> tmp.cleanup()
    """
    summaries = {c: curve_summary(y, [int(t) for t in t_])
                 for c, (y, t_) in scalar_curves(reader, groups, name).items()}
    return {c: v for c, v in summaries.items() if v is not None}


def run_scalars(reader: Any, runs: Sequence[str], names: Sequence[str], *,
                stop: int | None = None, finite: str | None = None) -> dict[str, np.ndarray]:
    """The recorded scalars ``names`` of ``runs`` over their first ``stop`` records (all if
    None), for figures and result fields that show every run (:func:`loss_curves` summarizes).

    Parameters
    ----------
    reader : TrajectoryStore or StudyReader
    runs : sequence of str
        Runs of equal length (the steps are the first run's).
    names : sequence of str
        Recorded scalars.
    stop : int, optional
        Records kept from the first (the first record, before any step, included).
    finite : str, optional
        Keep only the records where this scalar of the first run is finite (e.g. the steps a
        run was evaluated at).

    Returns
    -------
    dict
        ``"step"`` (n,) and per name an array (n_runs, n).

    Examples
    --------
    >>> import tempfile
    >>> from conjugacy.analysis.demo import decay_store
    >>> from conjugacy.store import TrajectoryStore
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with TrajectoryStore.open(decay_store(f"{tmp.name}/runs.zarr"), "r") as store:
    ...     curves = run_scalars(store, store.runs()[:2], ["loss"], stop=3)
    >>> curves["step"], curves["loss"].shape
    (array([0, 1, 2]), (2, 3))
    >>> tmp.cleanup()
    """
    keep: Any = slice(None)
    if finite is not None:
        keep = np.isfinite(np.asarray(reader.scalars(runs[0], finite))[:stop])
    out = {"step": np.asarray(reader.steps(runs[0]))[:stop][keep]}
    for name in names:
        out[name] = np.stack([np.asarray(reader.scalars(r, name))[:stop][keep] for r in runs])
    return out


def _bootstrap(comparison: Any, reader: Any, groups: Sequence[SpectrumGroup], params: Any,
               settings: Any, n_boot: int, seed: int) -> None:
    """Bootstrap intervals over replicas of the mean per-seed distance of each pair (into the
    distances the verdicts use): per seed, :func:`conjugacy.bootstrap_distance` resamples the
    replicas of both conditions (compared in the comparison's ``time``, at the groups' recording
    intervals); draw ``b`` of the mean is the mean over seeds of draw ``b``.
    Trajectories are read one pair of groups at a time, in their stored dtype."""
    from ..uncertainty import bootstrap_distance
    from .groups import _group_steps, record_interval

    uses = comparison["verdict_uses"]
    filt = "default" if uses == "filtered" else None
    seeds = {c: [g for g in groups if g.condition == c and g.window is None]
             for c in comparison["conditions"]}
    for i, (name, (a, b)) in enumerate(comparison["pairs"].items()):
        entry = comparison[uses]["distances"].get(name)
        if entry is None:  # a filter kept no eigenpair of a spectrum: no distance, undecided
            continue
        if any(len(g.runs) < 2 for c in (a, b) for g in seeds[c]):
            entry["bootstrap_note"] = "no bootstrap: it needs at least 2 replicas per seed"
            continue
        draws = []
        for s, (ga, gb) in enumerate(zip(seeds[a], seeds[b])):
            xa, xb = (reader.read(params=params, runs=list(g.runs), steps=g.slice) for g in (ga, gb))
            kw = dict(settings(ga) if callable(settings) else settings)
            dts = tuple(record_interval(_group_steps(reader, g)) for g in (ga, gb))
            iv = bootstrap_distance(xa, xb, n_boot=n_boot, seed=seed * 1_000_003 + 1009 * i + s,
                                    filter=filt, time=comparison["time"],
                                    record_intervals=None if None in dts else dts, **kw)
            draws.append(np.asarray(iv.samples, float))
        mean = np.nanmean(np.vstack(draws), axis=0)
        finite = mean[np.isfinite(mean)]
        if finite.size:
            lo, hi = np.quantile(finite, [0.025, 0.975])
            entry["bootstrap_interval"] = [float(lo), float(hi)]
            entry["bootstrap_rule"] = (f"95% percentile bootstrap of the mean over seeds "
                                       f"({n_boot} draws; replicas resampled within each seed)")


def _neighbours(comparison: Any, reader: Any, groups: Sequence[SpectrumGroup], params: Any,
                settings: Any, fitted: Mapping[tuple, Any], stats: Mapping[str, Any],
                progress: Callable[[int, int], None] | None = None,
                kept: dict | None = None, prefit: dict | None = None) -> None:
    """The neighbour check (:func:`conjugacy.analysis.neighbours.neighbour_check`) of a
    comparison, reading each group once in its stored dtype; the most delays the runs allow is
    that of the shortest group, every run keeping three quarters of its records as pairs. The
    groups the base fits kept in memory (``kept``, :data:`KEEP_BYTES`) are not read again; the
    rank neighbours the base fits computed (``prefit``, ``fit_spectra``'s ``neighbour_fits``)
    are not refitted."""
    from .groups import _branch_states
    from .neighbours import neighbour_check

    used = [g for g in groups if g.window is None]
    n_steps = min(fitted[g.key].settings["n_pairs"] // fitted[g.key].settings["n_trajectories"]
                  + fitted[g.key].settings["delays"] + 1 for g in used)

    def read(g: SpectrumGroup) -> np.ndarray:
        if kept and g.key in kept:
            return kept.pop(g.key)
        return reader.read(params=params, runs=list(g.runs), steps=g.slice)

    neighbour_check(
        comparison, read,
        used, settings, fitted, stats, max_delays=max(0, (n_steps - 2) // 4),
        steps=lambda g: reader.steps(g.runs[0])[g.slice or slice(None)],
        read_next=lambda g: _branch_states(reader, params, g), progress=progress,
        prefit=prefit)


def summarize(
    spectra: Mapping[str, Sequence[Any]],
    *,
    experiment: str,
    title: str | None = None,
    question: str | None = None,
    conditions: Mapping[str, Any] | None = None,
    seeds: Mapping[str, Sequence[Any]] | None = None,
    observables: Any = None,
    settings: Mapping[str, Any] | None = None,
    stats: Mapping[str, Any] | None = None,
    pooled: Mapping[str, Any] | None = None,
    allow_differing: Mapping[str, str] | None = None,
    comparison_hook: Callable[[Any], None] | None = None,
    fields: Mapping[str, Any] | None = None,
    sections: Callable[[Mapping[str, Sequence[Any]]], Mapping[str, Any]] | None = None,
    claims: Callable[[Mapping[str, Any]], Sequence[Claim]] | None = None,
    figures: Callable[[Results, Path], Sequence[Path]] | None = None,
    notes: Sequence[str] = (),
    provenance: Mapping[str, Any] | None = None,
    timing: Mapping[str, float] | None = None,
    out: Any = None,
    report: bool = False,
) -> Results:
    """Compare conditions, decide claims, draw figures and write ``results.json`` (once).

    Parameters
    ----------
    spectra : mapping condition -> list of Spectrum
        One spectrum per seed (with one condition nothing is compared).
    experiment, title, question : str
        Names shown in results and reports.
    conditions : mapping condition -> description, optional
        What each condition is (e.g. ``{"width": 5}``); default: the labels.
    seeds : mapping condition -> list, optional
        Seed labels per condition (default ``0 .. n - 1``).
    observables : str or list of str, optional
        The recorded parameters the spectra were fitted on.
    settings : dict, optional
        Spectrum settings (and ``settings["reasoning"]``: why they were chosen).
    stats : dict, optional
        Options of :func:`compare_conditions` (``alpha``, ``seed``, ``n_permutations``,
        ``n_shuffles``, ``shuffle``, ``ks``, ``p``, ``use_filter``, ``pairs``, ``filter_rule``).
    pooled : mapping condition -> Spectrum, optional
        One spectrum of all runs per condition.
    allow_differing : mapping setting -> reason, optional
        Fit settings that differ between conditions on purpose (see :func:`compare_conditions`).
    comparison_hook : callable, optional
        Called with the comparison before it is written (e.g. the pipeline's bootstrap).
    fields : mapping, optional
        Extra top-level fields (``store``, ``group_by``, ``runs``, ``loss``, ``windows``, ...).
    sections, claims, figures : callable, optional
        The experiment's hooks (module docstring).
    notes : sequence of str
        Warnings to report (warnings raised while summarizing are added).
    provenance, timing : mapping, optional
    out : path, optional
        Where to write ``results.json`` (and, with ``report``, ``report.html``/``report.md``).

    Returns
    -------
    Results

    Raises
    ------
    ValueError
        If a statistics option is unknown or out of its domain.

    Examples
    --------
    Spectra fitted elsewhere, compared and summarized (nothing written without ``out``):

    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> rng = np.random.default_rng(0)
    >>> def fit(lam):
    ...     x = lam ** np.arange(30)[None, :, None] * rng.standard_normal((1, 1, 3))
    ...     return koopman_spectrum(x + 0.01 * rng.standard_normal((1, 30, 3)), rank=1)
    >>> spectra = {"slow": [fit(0.95) for _ in range(4)], "fast": [fit(0.7) for _ in range(4)]}
    >>> results = summarize(spectra, experiment="toy", stats={"seed": 0})
    >>> results.verdicts, results["title"], results["seeds"]
    ({'slow-fast': 'not conjugate'}, 'conjugacy: toy', {'slow': [0, 1, 2, 3], 'fast': [0, 1, 2, 3]})
    """
    from ..results import package_info, to_jsonable

    t0 = time.perf_counter()
    stats = dict(stats or {})
    unknown = set(stats) - set(STAT_OPTIONS)
    if unknown:
        raise ValueError(f"stats has unknown options {sorted(unknown)}; known: {STAT_OPTIONS}")
    spectra = {str(c): list(v) for c, v in spectra.items()}
    notes = list(notes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        comparison = None
        if len(spectra) >= 2:
            comparison = compare_conditions(spectra, pooled=pooled,
                                            allow_differing=allow_differing, **stats).to_dict()
            if comparison_hook is not None:
                comparison_hook(comparison)
        elif spectra:
            notes.append(f"only one condition ({next(iter(spectra), None)!r}): nothing to compare")
        extra = dict(sections(spectra)) if sections is not None else {}
    notes.extend(dict.fromkeys(str(w.message) for w in caught))
    content: dict[str, Any] = {
        "schema": SCHEMA,
        "experiment": experiment,
        "title": title or f"conjugacy: {experiment}",
        "question": question or "are the training dynamics of the conditions equivalent?",
        "conditions": to_jsonable({c: (conditions or {}).get(c) for c in spectra}),
        "seeds": to_jsonable({c: list((seeds or {}).get(c, range(len(v))))
                              for c, v in spectra.items()}),
        "observables": None if observables is None else (
            [observables] if isinstance(observables, str) else list(observables)),
        "settings": to_jsonable(dict(settings or {})),
        "statistics": to_jsonable({k: v for k, v in stats.items() if k != "pairs"}),
        "spectra": spectra_to_json(spectra),
        "pooled_spectra": None if pooled is None else spectra_to_json({c: [s] for c, s in
                                                                       pooled.items()}),
        "comparison": comparison,
        **to_jsonable(dict(fields or {})),
        "sections": to_jsonable(extra),
        "claims": [],
        "warnings": notes,
        "figures": [],
        "provenance": to_jsonable(dict(provenance or {"package": package_info()})),
        "timing_seconds": dict(timing or {}),
    }
    content.setdefault("loss", {})
    content["timing_seconds"]["statistics"] = time.perf_counter() - t0
    content["claims"] = [c.to_dict() for c in (claims(content) if claims is not None else [])]
    res = Results(content, spectra)
    if figures is not None and out is not None:
        t1 = time.perf_counter()
        Path(out).mkdir(parents=True, exist_ok=True)
        paths = figures(res, Path(out))
        content["figures"] = sorted({_relative(p, Path(out)) for p in paths})
        content["timing_seconds"]["figures"] = time.perf_counter() - t1
    content["timing_seconds"]["total_analysis"] = (
        time.perf_counter() - t0 + sum(v for k, v in (timing or {}).items() if k in _ANALYSIS))
    if out is not None:
        res.write(out, report=report)
    return res


_ANALYSIS = ("reading_and_settings", "spectra", "windows_and_losses")


def summarize_sections(
    sections: Mapping[str, Any],
    *,
    conditions: Mapping[str, Any],
    seeds: Mapping[str, Sequence[Any]],
    fields: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Results:
    """:func:`summarize` for an analysis without Koopman spectra (e.g. the measures of weight
    checkpoints): ``results.json`` with ``spectra`` {} and ``comparison`` null, the analysis's
    numbers under ``sections``, its ``conditions`` and ``seeds``, claims and figures through the
    hooks of :func:`summarize` (which takes the rest of the keyword arguments).

    Parameters
    ----------
    sections : mapping
        The analysis's numbers (JSON types).
    conditions : mapping condition -> description
    seeds : mapping condition -> list of seed labels
    fields : mapping, optional
        Extra top-level fields.
    **kwargs
        Passed to :func:`summarize` (``experiment`` is required).

    Returns
    -------
    Results

    Raises
    ------
    TypeError
        If ``sections`` or ``stats`` is given as a keyword argument of :func:`summarize`.

    Examples
    --------
    >>> r = summarize_sections({"barrier": {"sgd": 0.12}}, conditions={"sgd": {"lr": 0.1}},
    ...                        seeds={"sgd": [0, 1]}, experiment="checkpoints")
    >>> r["sections"], r["comparison"], r["spectra"], r["seeds"]
    ({'barrier': {'sgd': 0.12}}, None, {}, {'sgd': [0, 1]})
    """
    if "sections" in kwargs or kwargs.get("stats"):
        raise TypeError("summarize_sections takes its sections as a mapping and compares nothing")
    fields = {**dict(fields or {}), "conditions": conditions,
              "seeds": {str(c): list(v) for c, v in seeds.items()}}
    return summarize({}, fields=fields, sections=lambda _spectra: sections, **kwargs)


def _relative(path: Any, out: Path) -> str:
    p = Path(path)
    try:
        return p.resolve().relative_to(out.resolve()).as_posix()
    except ValueError:
        return str(p)


def _refuse_empty(fitted: Mapping[tuple, Any]) -> None:
    """One line naming the condition whose spectrum has no eigenvalue (its runs recorded values
    that do not change, e.g. all zero); it was "b is empty" from the comparison (issue 26)."""
    for (condition, seed, window), sp in fitted.items():
        if len(sp.eigenvalues) == 0:
            where = f"condition {condition!r}, seed {seed!r}" + (
                f", window {window!r}" if window is not None else "")
            raise ValueError(f"{where}: the spectrum has no eigenvalues (rank 0: the recorded "
                             "values do not change, e.g. all zero); check what its runs "
                             "recorded, or leave the condition out")


def run_pipeline(
    reader: Any,
    groups: Sequence[SpectrumGroup],
    spectrum: Mapping[str, Any] | Callable[[SpectrumGroup], Mapping[str, Any]],
    *,
    params: Any = None,
    client: Any = None,
    progress: Callable[[SpectrumGroup], None] | None = None,
    loss: str | None = "loss",
    n_boot: int = 0,
    neighbours: bool = False,
    neighbour_progress: Callable[[int, int], None] | None = None,
    window: Callable[[Mapping[tuple, Any]], Mapping[str, Any]] | None = None,
    group_sections: Callable[[Mapping[tuple, Any]], Mapping[str, Any]] | None = None,
    fields: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Results:
    """From runs in stores to :class:`Results`: spectra per group, the loss curves, the run
    table, windows and bootstrap when asked, then :func:`summarize` (which takes the rest of the
    keyword arguments: ``experiment``, ``stats``, hooks, ``out``, ...).

    Parameters
    ----------
    reader : StudyReader
    groups : sequence of SpectrumGroup
        Groups without a window are compared (one per (condition, seed), the same number of seeds
        per condition); groups with a window are fitted too and handed to the ``window`` and
        ``group_sections`` hooks.
    spectrum : dict or callable
        :func:`conjugacy.koopman_spectrum` keyword arguments, or a function of the group
        (reported as ``settings`` unless ``settings=`` is given).
    params : str or list of str
        The recorded parameters that are the observables.
    client : dask.distributed.Client, optional
        Fit the spectra as Dask tasks.
    progress : callable, optional
        Called with each group once its spectrum is fitted (see :func:`fit_spectra`).
    loss : str or None
        The recorded scalar summarized as the loss curve.
    n_boot : int
        Bootstrap draws over replicas for each pair's ``bootstrap_interval`` (0: none).
    neighbours : bool
        Refit the comparison at neighbouring settings (delays x1/2 and x2, rank x0.8 and x1.25, the
        other filter) and report per pair how many agree, the p and distance ranges and
        ``fragile`` (``comparison["neighbourhood"]``, :mod:`conjugacy.analysis.neighbours`);
        costs 4 more fits of every spectrum.
    neighbour_progress : callable, optional
        ``neighbour_progress(done, total)``: called before the neighbour refits and after each
        group's (``conjugacy analyze`` draws it as a progress bar).
    window : callable, optional
        ``window(fitted) -> dict`` written as ``windows`` (``fitted``: every group's spectrum by
        key).
    group_sections : callable, optional
        ``group_sections(fitted) -> dict``, merged into ``sections`` (e.g. the spectra of a
        derived group such as grokking's fig. S6 window).

    Returns
    -------
    Results

    Raises
    ------
    ValueError
        If a spectrum has no eigenvalues (naming its condition and seed), or as
        :func:`summarize`.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from conjugacy.store import TrajectoryStore
    >>> from conjugacy.analysis.demo import decay_store
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = decay_store(f"{tmp.name}/runs.zarr")  # 2 conditions x 4 seeds, 30 records
    >>> from conjugacy.analysis import SpectrumGroup, fit_spectra, group_runs
    >>> store = TrajectoryStore.open(path, "r")
    >>> groups = [SpectrumGroup(c, s, runs) for (c, s), runs in group_runs(store).items()]
    >>> results = run_pipeline(store, groups, {"delays": 0, "rank": 1}, params="w",
    ...                        experiment="toy", stats={"seed": 0})
    >>> store.close()
    >>> results.verdicts, len(results["runs"]), sorted(results["loss"])
    ({'fast-slow': 'not conjugate'}, 8, ['fast', 'slow'])
    >>> tmp.cleanup()
    """
    t0 = time.perf_counter()
    groups = list(groups)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kept = {"budget": KEEP_BYTES} if neighbours else None
        prefit: dict | None = {} if neighbours else None
        fitted = fit_spectra(reader, groups, spectrum, params=params, client=client,
                             progress=progress, keep=kept, neighbour_fits=prefit)
        _refuse_empty(fitted)
        t1 = time.perf_counter()
        spectra = by_condition(groups, fitted)
        extra = dict(fields or {})
        extra.setdefault("runs", run_table(reader, groups))
        if loss is not None:
            extra.setdefault("loss", loss_curves(reader, groups, loss))
        if window is not None:
            extra["windows"] = window(fitted)
    seeds = by_condition(groups, {g.key: g.seed for g in groups})  # as the spectra are listed
    hook = None
    if n_boot or neighbours:
        stats = dict(kwargs.get("stats") or {})

        def hook(cmp: Any) -> None:
            if n_boot:
                _bootstrap(cmp, reader, groups, params, spectrum, n_boot,
                           int(stats.get("seed", 0)))
            if neighbours:
                _neighbours(cmp, reader, groups, params, spectrum, fitted, stats,
                            neighbour_progress, kept, prefit)
    timing = {**dict(kwargs.pop("timing", None) or {}), "spectra": t1 - t0,
              "windows_and_losses": time.perf_counter() - t1}
    notes = [*kwargs.pop("notes", ()), *dict.fromkeys(str(w.message) for w in caught)]
    if group_sections is not None:
        own = kwargs.pop("sections", None)

        def merged(spectra: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
            return {**dict(group_sections(fitted)), **(dict(own(spectra)) if own else {})}

        kwargs["sections"] = merged
    kwargs.setdefault("seeds", seeds)
    if not callable(spectrum):
        kwargs.setdefault("settings", dict(spectrum))
    kwargs.setdefault("observables", params)
    return summarize(spectra, fields=extra, comparison_hook=hook, timing=timing, notes=notes,
                     **kwargs)
