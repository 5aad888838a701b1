"""Groups of runs and their spectra: the first step of the analysis pipeline.

A :class:`SpectrumGroup` names the runs (replicas, pooled) that make one spectrum of one
(condition, seed[, window]). :func:`group_runs` groups the runs of a store by their metadata;
:func:`fit_spectra` fits one spectrum per group, serially or as Dask tasks, reading each group in
the dtype it was **stored** in, so the engine's precision rule sees the data's real precision (a
float32 store read as float64 kept its float32 rounding noise as "signal": rank 160 instead of 3).
"""

from __future__ import annotations

import json
import numbers
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .._text import cut_list

__all__ = ["CanonicalValues", "SpectrumGroup", "canonical", "fit_spectra", "group_runs",
           "max_relative_perturbation", "record_interval", "relative_final_scalar",
           "scalar_curves", "study_groups", "with_record_interval"]


@dataclass(frozen=True)
class SpectrumGroup:
    """The runs that make one spectrum.

    Attributes
    ----------
    condition : str
        Condition label (a condition of the study, or a derived one such as ``"constrained_s6"``).
    seed : int or str
        The independent seed (a label: own runs may name seeds by strings).
    runs : tuple of str
        Run names (pooled: each run is delay-embedded separately, pairs never cross runs).
    steps : (int, int) or None
        Snapshot window ``[start, stop)`` of every run (None: all complete records).
    window : str or None
        Label of the window, for studies of windows of one training run.

    Raises
    ------
    ValueError
        If ``runs`` is empty or ``steps`` is not ``(start, stop)`` with ``0 <= start < stop``.

    Examples
    --------
    >>> g = SpectrumGroup("sgd", 0, ["sgd_s0_r0", "sgd_s0_r1"], steps=(10, 20))
    >>> g.key, g.runs, g.slice
    (('sgd', 0, None), ('sgd_s0_r0', 'sgd_s0_r1'), slice(10, 20, None))
    """

    condition: str
    seed: Any
    runs: tuple[str, ...]
    steps: tuple[int, int] | None = None
    window: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "runs", tuple(self.runs))
        if not self.runs:
            raise ValueError(f"group ({self.condition!r}, seed {self.seed}) has no runs")
        if self.steps is not None:
            start, stop = (int(v) for v in self.steps)
            if not 0 <= start < stop:
                raise ValueError(
                    f"steps must be (start, stop) with 0 <= start < stop, got {self.steps!r}")
            object.__setattr__(self, "steps", (start, stop))

    @property
    def key(self) -> tuple[str, Any, str | None]:
        """``(condition, seed, window)``."""
        return (self.condition, self.seed, self.window)

    @property
    def slice(self) -> slice | None:
        """The window as a slice of records (None: all)."""
        return None if self.steps is None else slice(*self.steps)


_INT_TEXT = re.compile(r"-?(0|[1-9][0-9]*)")


def canonical(value: Any) -> str:
    """The value a metadata entry (seed, condition) is compared by: its JSON spelling, numbers
    and their decimal text alike.

    ``1``, ``1.0``, ``numpy.int64(1)`` and ``"1"`` are ``"1"``; ``0.5`` and ``"0.5"`` are
    ``"0.5"``; ``True`` is ``"true"``; other strings are themselves (``"01"`` stays ``"01"``,
    text is compared exactly); dicts and lists are their JSON with sorted keys.

    Examples
    --------
    >>> canonical(1), canonical("1"), canonical(1.0), canonical("0.50"), canonical({"b": 1})
    ('1', '1', '1', '0.50', '{"b": 1}')
    """
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        f = float(value)
        return str(int(f)) if f.is_integer() else repr(f)
    if isinstance(value, str):
        if _INT_TEXT.fullmatch(value):
            return value
        try:
            f = float(value)
        except ValueError:
            return value
        return canonical(f) if repr(f) == value else value
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


class CanonicalValues:
    """Values of one metadata key compared by :func:`canonical`: the first value seen stands for
    every value equal to it (``seeds(1)`` then ``seeds("1")`` both give ``1``; a boolean is
    its JSON text, ``"true"``, so that it never merges with ``1`` as Python's ``True == 1``
    would; a dict or list is its JSON text too, so that it can key a group), and
    :meth:`notes` says where types were mixed.

    Examples
    --------
    >>> seeds = CanonicalValues("seed")
    >>> seeds(1), seeds("1"), seeds(2), seeds(True)
    (1, 1, 2, 'true')
    >>> seeds.notes()  # doctest: +NORMALIZE_WHITESPACE
    ["metadata 'seed' has values of mixed types ('1' as int, str): compared as one value each",
     "metadata 'seed' has values of mixed types ('true' as bool; '1' as int, str; '2' as int):
     a boolean is its own value (true is neither 1 nor 'True')"]
    >>> CanonicalValues("optimizer")({"lr": [0.1, 0.01], "class": "SGD"})
    '{"class": "SGD", "lr": [0.1, 0.01]}'
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self._first: dict[str, Any] = {}
        self._types: dict[str, set[str]] = {}

    def __call__(self, value: Any) -> Any:
        c = canonical(value)
        self._types.setdefault(c, set()).add(type(value).__name__)
        # A boolean stands as its JSON text: Python's True == 1 (and False == 0) would merge, as
        # dict keys, two values canonical tells apart (issue 26 review); a dict or list is no
        # dict key at all.
        return self._first.setdefault(
            c, c if isinstance(value, bool | np.bool_ | Mapping | list) else value)

    def notes(self) -> list[str]:
        """One sentence if some value was recorded with several types (``1`` and ``"1"``: one
        value) and one if booleans are mixed with other values (``true`` and ``1`` or ``"True"``:
        two values), else none."""
        typed = {c: f"{c!r} as {', '.join(sorted(t))}" for c, t in self._types.items()}
        mixed = [typed[c] for c, t in self._types.items() if len(t) > 1]
        said = [f"metadata {self.key!r} has values of mixed types ({'; '.join(cut_list(mixed, 3))}"
                "): compared as one value each"] if mixed else []
        bools = [typed[c] for c, t in self._types.items() if "bool" in t]
        others = [typed[c] for c, t in self._types.items() if "bool" not in t]
        if bools and others:  # true and 1 (or "True"): two values, which Python's == merges
            shown = "; ".join([*bools, *cut_list(others, 3)])
            said.append(f"metadata {self.key!r} has values of mixed types ({shown}): a "
                        "boolean is its own value (true is neither 1 nor 'True')")
        return said


#: What :func:`metadata_value` returns for a key the metadata does not hold (None is a value).
MISSING: Any = object()


def metadata_value(meta: Mapping[str, Any], key: str, default: Any = MISSING) -> Any:
    """``meta[key]``, or, for a dotted key absent as such, the value through nested dicts
    (``"optimizer.class"`` is ``meta["optimizer"]["class"]``); ``default`` (:data:`MISSING`)
    where there is none.

    Examples
    --------
    >>> meta = {"optimizer": {"class": "SGD"}, "lr.max": 0.1, "seed": 0}
    >>> metadata_value(meta, "optimizer.class"), metadata_value(meta, "lr.max")
    ('SGD', 0.1)
    >>> metadata_value(meta, "optimizer.lr", "absent"), metadata_value(meta, "seed.x") is MISSING
    ('absent', True)
    """
    if key in meta:
        return meta[key]
    value: Any = meta
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return default
        value = value[part]
    return value


def group_runs(reader: Any, *, by: Sequence[str] = ("condition", "seed"),
               where: Callable[[Mapping[str, Any]], bool] | None = None,
               runs: Sequence[str] | None = None, notes: list[str] | None = None
               ) -> dict[tuple, list[str]]:
    """Group the runs of a store (or :class:`~conjugacy.study.StudyReader`) by run metadata.

    Parameters
    ----------
    reader : TrajectoryStore or StudyReader
        Any object with ``runs()`` and ``metadata(run)``.
    by : sequence of str
        Metadata keys; the group key is the tuple of their values. A dotted key absent as such
        reaches into nested metadata (``"optimizer.class"``, :func:`metadata_value`).
    where : callable, optional
        Keep only runs whose metadata satisfies ``where(metadata)``.
    runs : sequence of str, optional
        Group these runs of ``reader`` only (default: all, ``reader.runs()``).
    notes : list of str, optional
        Where the sentences on keys that mix types go (appended, in the order of ``by``)
        instead of a ``UserWarning`` each (``conjugacy analyze`` writes them to results.json).

    Returns
    -------
    dict tuple -> list of str
        Sorted group keys, run names sorted within each group. Values are compared by
        :func:`canonical` (a seed recorded as ``1`` and as ``"1"`` is one seed, keyed by the
        first value seen; :class:`CanonicalValues`, one per entry of ``by``), with a
        ``UserWarning`` (or a sentence in ``notes``) when a key mixes types.

    Raises
    ------
    KeyError
        If a kept run lacks one of the ``by`` keys (the message names the run and the key).

    Examples
    --------
    >>> import tempfile
    >>> from conjugacy.store import TrajectoryStore
    >>> from conjugacy.analysis.demo import decay_store
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = decay_store(f"{tmp.name}/runs.zarr")  # 2 conditions x 4 seeds, 30 records
    >>> with TrajectoryStore.open(path, "r") as store:
    ...     groups = group_runs(store)
    ...     slow = group_runs(store, by=("seed",), where=lambda m: m["condition"] == "slow")
    >>> list(groups)[:3], groups[("slow", 0)]
    ([('fast', 0), ('fast', 1), ('fast', 2)], ['slow_s0'])
    >>> slow
    {(0,): ['slow_s0'], (1,): ['slow_s1'], (2,): ['slow_s2'], (3,): ['slow_s3']}
    >>> tmp.cleanup()
    """
    groups: dict[tuple, list[str]] = {}
    values = [CanonicalValues(k) for k in by]
    for run in reader.runs() if runs is None else runs:
        meta = reader.metadata(run)
        if where is not None and not where(meta):
            continue
        found = [metadata_value(meta, k) for k in by]
        missing = [k for k, v in zip(by, found) if v is MISSING]
        if missing:
            raise KeyError(f"run {run!r} has no metadata {missing}; it has {sorted(meta)}")
        groups.setdefault(tuple(c(v) for c, v in zip(values, found)), []).append(run)
    for note in (n for v in values for n in v.notes()):
        if notes is None:
            warnings.warn(note, UserWarning, stacklevel=2)
        else:
            notes.append(note)
    return {k: sorted(groups[k]) for k in sorted(groups, key=lambda t: tuple(map(str, t)))}


def record_interval(steps: Any) -> int | None:
    """The recording interval of a run: the median difference of its recorded step indices
    (None with fewer than two records). Part of the settings a verdict requires to agree.

    Parameters
    ----------
    steps : array-like of int (n_records,)

    Returns
    -------
    int or None

    Examples
    --------
    >>> record_interval([0, 10, 20, 30, 45]), record_interval([5])
    (10, None)
    """
    steps = np.asarray(steps)
    if steps.size < 2:
        return None
    return int(np.median(np.diff(steps)))


def with_record_interval(spectrum: Any, steps: Any) -> Any:
    """``spectrum`` with ``settings["record_interval"]`` set from the recorded ``steps`` of its
    runs (:func:`record_interval`), so that the verdict rule can compare it.

    Parameters
    ----------
    spectrum : Spectrum
        Left unchanged (a copy is returned).
    steps : array-like of int (n_records,)
        The training steps at which the runs were recorded.

    Returns
    -------
    Spectrum

    Raises
    ------
    ValueError
        Records less than one step apart (median), e.g. steps given in epochs.

    Examples
    --------
    Two runs of ``x_{t+1} = diag(0.9, 0.5) x_t`` recorded every 10 steps:

    >>> import numpy as np
    >>> from conjugacy.spectrum import koopman_spectrum
    >>> t = np.arange(20)[:, None]
    >>> runs = np.random.default_rng(0).normal(size=(2, 1, 2)) * np.power([0.9, 0.5], t)
    >>> spec = with_record_interval(koopman_spectrum(runs, rank=2), range(0, 200, 10))
    >>> spec.settings["record_interval"], spec.eigenvalues.real.round(2)
    (10, array([0.9, 0.5]))
    """
    interval = record_interval(steps)
    if interval is not None and interval < 1:
        raise ValueError(f"steps: the records are {np.median(np.diff(np.asarray(steps))):g} "
                         "steps apart (median); give the increasing integer training steps "
                         "of the records")
    return replace(spectrum, settings={**spectrum.settings, "record_interval": interval})


def _fit_one(reader: Any, params: Any, group: SpectrumGroup, kwargs: Mapping[str, Any],
             dtype: Any, keep: dict | None = None, neighbour_fits: dict | None = None) -> Any:
    """Read one group's runs from an open reader and fit its spectrum; with ``keep`` (a dict
    with ``"budget"``, bytes left), the trajectories stay there by group key while they fit;
    with ``neighbour_fits`` (a dict), the rank neighbours of a fixed rank come from the base
    fit's factorization (:func:`_with_rank_neighbours`) and are stored there by group key."""

    steps = _group_steps(reader, group)
    traj = reader.read(params=params, runs=list(group.runs), steps=group.slice, dtype=dtype)
    if group.steps is not None and traj.shape[1] != group.steps[1] - group.steps[0]:
        raise RuntimeError(
            f"group {group.key}: the runs hold {traj.shape[1]} snapshots in the window "
            f"{group.steps}, {group.steps[1] - group.steps[0]} needed"
        )
    kwargs = dict(kwargs)
    if "next_states" not in kwargs:
        nxt = _branch_states(reader, params, group, dtype)
        if nxt is not None:
            kwargs["next_states"] = nxt
    try:
        spectrum = _with_rank_neighbours(traj, kwargs, group.key, neighbour_fits)
    except ValueError as exc:  # "trajectories[k] contains NaN ...": say which run k is
        found = re.match(r"trajectories\[(\d+)\] contains (NaN|Inf) at index \((\d+), (\d+)\)",
                         str(exc))
        if found is None:
            raise
        k, kind, t, j = found.groups()
        raise ValueError(f"run {group.runs[int(k)]!r} (condition {group.condition!r}, seed "
                         f"{group.seed!r}) contains {kind} at record {t}, feature {j} of the "
                         "window analysed: leave the run out or fix it") from exc
    # at 0 delays with the rank neighbours from this fit, the neighbour check reads nothing
    refits = neighbour_fits is None or group.key not in neighbour_fits or kwargs.get("delays")
    if keep is not None and refits and traj.nbytes <= keep["budget"]:
        keep[group.key], keep["budget"] = traj, keep["budget"] - traj.nbytes
    return with_record_interval(spectrum, steps)


def _with_rank_neighbours(traj: np.ndarray, kwargs: Mapping[str, Any], key: tuple,
                          neighbour_fits: dict | None) -> Any:
    """``koopman_spectrum(traj, **kwargs)``; with ``neighbour_fits`` and a fixed rank and delays
    (and no device), its rank neighbours (:func:`conjugacy.analysis.neighbours.neighbour_settings`:
    x0.8 and x1.25, clipped to what these runs allow) are fitted in the same
    :func:`conjugacy.spectrum.koopman_spectra` call -- truncations of ONE factorization of the
    delay matrix, the base equal to the fit alone to rounding -- and stored as
    ``neighbour_fits[key][(delays, rank)]`` for the neighbour check, which then does not refit
    them (one factorization per group instead of two at the base delays)."""
    from ..observables import n_pairs
    from ..spectrum import koopman_spectra, koopman_spectrum
    from .neighbours import neighbour_settings

    delays, rank = kwargs.get("delays", 0), kwargs.get("rank")
    fixed = all(isinstance(v, int) and not isinstance(v, bool) for v in (delays, rank))
    if (neighbour_fits is None or not fixed or kwargs.get("device") is not None
            or np.ndim(traj) != 3):
        return koopman_spectrum(traj, **kwargs)
    n_feat = int(kwargs.get("pca") or traj.shape[-1])
    cap = min(n_feat * (delays + 1), n_pairs(list(traj), delays))
    grid = [{"delays": delays, "rank": rank}] + [
        {"delays": delays, "rank": v["rank"]}
        for v in neighbour_settings(delays, rank, [rank], delays, lambda d: cap)
        if v["delays"] == delays]
    shared = {k: v for k, v in kwargs.items() if k not in ("delays", "rank", "device")}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        base, *others = koopman_spectra(traj, grid, **shared)
    asked = tuple(f"rank={g['rank']} requested" for g in grid[1:])
    for w in caught:  # the base fit's warnings only: the user asked for no neighbour's rank
        if not str(w.message).startswith(asked):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    neighbour_fits[key] = {(delays, g["rank"]): sp for g, sp in zip(grid[1:], others)}
    return base


def _branch_states(reader: Any, params: Any, group: SpectrumGroup, dtype: Any = None
                  ) -> np.ndarray | None:
    """The recorded second next states (the ``"next"`` branch) of a group's runs, shaped as
    their trajectories ``(n_runs, n_steps, n_features)``, or None unless every run has one.

    Every fit of a group's runs passes them as ``next_states=`` (base fits and the neighbour
    check alike), so that the calibrated two-branch residuals (:mod:`conjugacy.residuals`) come
    with it. ``reader`` is an open :class:`conjugacy.store.TrajectoryStore`; ``dtype`` as for
    its ``read`` (None: as stored).
    """
    if not all("next" in reader.run_info(r).get("branches", ()) for r in group.runs):
        return None
    return reader.read(params=params, runs=list(group.runs), steps=group.slice, dtype=dtype,
                       branch="next")


def _group_steps(reader: Any, group: SpectrumGroup) -> np.ndarray:
    """The recorded steps (in the group's window) of the group's first run, after checking that
    every run of the group was recorded at the same interval (:func:`record_interval`): replicas
    pooled into one fit share one time step. ValueError naming the group, runs and intervals."""
    def window(run: str) -> np.ndarray:
        steps = np.asarray(reader.steps(run))
        return steps if group.slice is None else steps[group.slice]

    steps = [window(r) for r in group.runs]
    intervals = [record_interval(s) for s in steps]
    if len(set(intervals)) > 1:
        listed = ", ".join(f"{r!r} every {v} steps" for r, v in zip(group.runs, intervals))
        raise ValueError(
            f"group ({group.condition!r}, seed {group.seed!r}): its runs were recorded at "
            f"different intervals ({listed}) and "
            "cannot be pooled into one spectrum; record the replicas of a seed at one interval, "
            "or give them different seeds")
    return steps[0]


def _fit_group(paths: Mapping[str, str], params: Any, group: SpectrumGroup,
               kwargs: Mapping[str, Any], dtype: Any) -> Any:
    """A Dask task: reopen the group's stores (read-only) and fit its spectrum."""
    from ..study import StudyReader

    with StudyReader(paths) as reader:
        return _fit_one(reader, params, group, kwargs, dtype)


def fit_spectra(
    reader: Any,
    groups: Sequence[SpectrumGroup],
    settings: Mapping[str, Any] | Callable[[SpectrumGroup], Mapping[str, Any]],
    *,
    params: str | Sequence[str] | None = None,
    dtype: Any = None,
    client: Any = None,
    progress: Callable[[SpectrumGroup], None] | None = None,
    keep: dict | None = None,
    neighbour_fits: dict | None = None,
) -> dict[tuple[str, Any, str | None], Any]:
    """One Koopman spectrum per group, serially or as Dask tasks.

    Parameters
    ----------
    reader : StudyReader
        The study's runs (its :meth:`~conjugacy.study.StudyReader.paths` are sent to the tasks).
    groups : sequence of SpectrumGroup
    settings : dict or callable
        Keyword arguments of :func:`conjugacy.koopman_spectrum` (``delays``, ``rank``, ``pca``,
        ...), the same for every group or ``settings(group)``.
    params : str or list of str
        The recorded parameters that are the observables (names or globs).
    dtype : numpy dtype, optional
        Dtype the trajectories are read in. Default: the dtype they were stored in, so the
        engine's rank rule sees the data's precision (the DMD itself always runs in float64).
    client : dask.distributed.Client, optional
        Submit one task per group; the results are identical to the serial ones.
    progress : callable, optional
        Called with each group once its spectrum is fitted (in completion order on Dask).
    keep : dict, optional
        ``{"budget": bytes}``: serially, each group's trajectories as read are kept in it by
        group key while the budget lasts, for a second pass over the same data (the neighbour
        check) without reading the store again; not kept where that pass refits nothing (0
        delays, the rank neighbours in ``neighbour_fits``).
    neighbour_fits : dict, optional
        Serially, with a fixed int ``rank`` and ``delays``: each group's rank neighbours (x0.8,
        x1.25, clipped to what its runs allow) are fitted from the base fit's factorization
        (:func:`conjugacy.spectrum.koopman_spectra`) and stored here as ``{group key:
        {(delays, rank): Spectrum}}`` for :func:`conjugacy.analysis.neighbours.neighbour_check`
        (``prefit=``); the base spectra equal those fitted alone to rounding. Ignored on Dask.

    Returns
    -------
    dict (condition, seed, window) -> Spectrum
        Each spectrum's ``settings["record_interval"]`` is the recording interval of its runs.

    Raises
    ------
    ValueError
        If two groups share a key.

    Examples
    --------
    A store of two runs (one per seed) of 20 records, one spectrum per run:

    >>> import tempfile
    >>> import numpy as np
    >>> from conjugacy.store import TrajectoryStore
    >>> rng = np.random.default_rng(0)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with TrajectoryStore.open(f"{tmp}/runs.zarr", "w") as store:
    ...         for seed in (0, 1):
    ...             meta = {"condition": "sgd", "seed": seed}
    ...             store.create_run(f"s{seed}", {"w": ((3,), "float64")}, metadata=meta)
    ...             w = np.cumsum(rng.normal(size=(20, 3)), axis=0)
    ...             _ = store.append(f"s{seed}", np.arange(0, 40, 2), {"w": w})
    ...         groups = [SpectrumGroup("sgd", s, (f"s{s}",)) for s in (0, 1)]
    ...         spectra = fit_spectra(store, groups, {"delays": 2, "rank": 2})
    >>> sorted(spectra)
    [('sgd', 0, None), ('sgd', 1, None)]
    >>> first = spectra[("sgd", 0, None)]
    >>> first.eigenvalues.shape, first.settings["record_interval"]
    ((2,), 2)

    A study's runs: ``with StudyReader.open("results/fcn") as reader:
    fit_spectra(reader, groups, {"delays": 8, "rank": 10}, params="2.weight")``.
    """
    groups = list(groups)
    keys = [g.key for g in groups]
    if len(set(keys)) != len(keys):
        raise ValueError("groups must have distinct (condition, seed, window) keys")
    kw = [dict(settings(g) if callable(settings) else settings) for g in groups]
    tick = progress or (lambda _group: None)
    if client is None:
        out = {}
        for g, k in zip(groups, kw):  # the caller's reader: its stores are opened once
            out[g.key] = _fit_one(reader, params, g, k, dtype, keep, neighbour_fits)
            tick(g)
        return out
    from dask.distributed import as_completed

    paths = reader.paths()
    futures = {client.submit(_fit_group, paths, params, g, k, dtype, pure=False): g
               for g, k in zip(groups, kw)}
    for future in as_completed(list(futures)):
        tick(futures[future])
    return {futures[f].key: f.result() for f in futures}


def study_groups(study: Any) -> list[SpectrumGroup]:
    """One group per (condition, seed) job of a study's grid, conditions in the study's order,
    seeds in order within each (``extra_jobs`` left out).

    Parameters
    ----------
    study : Study

    Returns
    -------
    list of SpectrumGroup
        ``SpectrumGroup(condition, seed, job.run_names)``.

    Examples
    --------
    >>> from conjugacy.analysis.demo import random_walk_study
    >>> [(g.condition, g.seed, g.runs) for g in study_groups(random_walk_study())][:2]
    [('flat', 0, ('flat-seed0_0', 'flat-seed0_1')), ('flat', 1, ('flat-seed1_0', 'flat-seed1_1'))]
    """
    jobs = {(j.condition, j.seed): j for j in study.jobs()}
    return [SpectrumGroup(c, s, jobs[(c, s)].run_names) for c in study.conditions
            for s in study.seeds]


def scalar_curves(reader: Any, groups: Sequence[SpectrumGroup], name: str = "loss"
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per condition, the recorded scalar ``name`` of the groups' runs as one array.

    The first record (before any step) is left out, a group's ``steps`` range applied, groups
    with a window left out, and the runs cut to the shortest; runs that did not record ``name``
    are left out, and a condition with no such run is absent.

    Parameters
    ----------
    reader : TrajectoryStore or StudyReader
    groups : sequence of SpectrumGroup
    name : str
        The recorded scalar.

    Returns
    -------
    dict condition -> (values, steps)
        ``values`` float64 (n_runs, n), ``steps`` int (n,); summarized for ``results["loss"]``
        by :func:`conjugacy.analysis.results.curve_summary`.

    Examples
    --------
    >>> import tempfile
    >>> from conjugacy.analysis.demo import decay_store
    >>> from conjugacy.store import TrajectoryStore
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with TrajectoryStore.open(decay_store(f"{tmp.name}/runs.zarr"), "r") as store:
    ...     groups = [SpectrumGroup(c, s, runs) for (c, s), runs in group_runs(store).items()]
    ...     values, steps = scalar_curves(store, groups)["fast"]
    >>> values.shape, steps[:3], values[0, :2]
    ((4, 29), array([1, 2, 3]), array([0.7 , 0.49]))
    >>> tmp.cleanup()
    """
    curves: dict[str, list[np.ndarray]] = {}
    steps: dict[str, np.ndarray] = {}
    for g in groups:
        if g.window is not None:
            continue
        window = g.slice or slice(None)
        for r in g.runs:
            if name not in reader.run_info(r).get("scalars", ()):
                continue
            curves.setdefault(g.condition, []).append(
                np.asarray(reader.scalars(r, name)[window][1:], dtype=np.float64))
            steps.setdefault(g.condition, np.asarray(reader.steps(r)[window][1:]))
    n = {c: min(len(y) for y in ys) for c, ys in curves.items()}  # the shortest run's records
    return {c: (np.vstack([y[:n[c]] for y in ys]), steps[c][:n[c]]) for c, ys in curves.items()}


# ----- groups of perturbed replicas (base run first) ---------------------------------------------
def max_relative_perturbation(reader: Any, groups: Sequence[SpectrumGroup], param: str
                              ) -> dict[str, float]:
    """Per condition, the largest ``|W_r / W_0 - 1|`` of ``param`` at the first record over the
    perturbed replicas ``r >= 1`` of each group (run 0 is the base; zero base weights skipped).

    Parameters
    ----------
    reader : TrajectoryStore or StudyReader
    groups : sequence of SpectrumGroup
        Replica groups, base run first (as :func:`conjugacy.torch.train_replicas` names them).
    param : str
        The recorded parameter.

    Returns
    -------
    dict condition -> float

    Examples
    --------
    Two seeds of the demo store's slow condition taken as a base and its "replica":

    >>> import tempfile
    >>> from conjugacy.analysis.demo import decay_store
    >>> from conjugacy.store import TrajectoryStore
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with TrajectoryStore.open(decay_store(f"{tmp.name}/runs.zarr"), "r") as store:
    ...     group = SpectrumGroup("slow", 0, ("slow_s0", "slow_s1"))
    ...     rel = max_relative_perturbation(store, [group], "w")
    >>> round(rel["slow"], 2)
    6.79
    >>> tmp.cleanup()
    """
    out: dict[str, float] = {}
    for g in groups:
        w0 = reader.read(params=param, runs=list(g.runs), steps=slice(0, 1), dtype=np.float64)[:, 0]
        nonzero = w0[0] != 0
        rel = np.abs(w0[1:, nonzero] / w0[0, nonzero] - 1.0)
        out[g.condition] = max(out.get(g.condition, 0.0), float(rel.max()) if rel.size else 0.0)
    return out


def relative_final_scalar(reader: Any, groups: Sequence[SpectrumGroup], name: str
                          ) -> dict[str, Any]:
    """The last recorded value of the scalar ``name`` of every perturbed replica divided by its
    base's (run 0 of its group), per condition (e.g. the paper's fig. S2 for the test loss).

    Parameters
    ----------
    reader : TrajectoryStore or StudyReader
    groups : sequence of SpectrumGroup
        Replica groups, base run first.
    name : str
        A scalar every run recorded.

    Returns
    -------
    dict condition -> dict
        ``ratios`` (one list per group, replicas 1..n-1 in order), ``base`` (the base's value per
        group), and over all ratios ``n``, ``median``, ``mean``, ``sd`` (ddof 1; 0 for one
        ratio), ``min``, ``max`` and the 5th / 95th ``percentiles``.

    Examples
    --------
    Two runs of the demo store as a base and its copy: their losses end equal.

    >>> from tempfile import TemporaryDirectory
    >>> from conjugacy.analysis import demo
    >>> from conjugacy.store import TrajectoryStore
    >>> with TemporaryDirectory() as tmp:
    ...     store = TrajectoryStore.open(demo.decay_store(f"{tmp}/runs.zarr"), "r")
    ...     pair = SpectrumGroup("fast", 0, ("fast_s0", "fast_s1"))
    ...     rel = relative_final_scalar(store, [pair], "loss")
    ...     store.close()
    >>> rel["fast"]["ratios"], rel["fast"]["median"]
    ([[1.0]], 1.0)
    """
    out: dict[str, Any] = {}
    for g in groups:
        final = np.array([reader.scalars(r, name)[-1] for r in g.runs])
        entry = out.setdefault(g.condition, {"ratios": [], "base": []})
        entry["ratios"].append((final[1:] / final[0]).tolist())
        entry["base"].append(float(final[0]))
    for entry in out.values():
        r = np.concatenate([np.asarray(x, dtype=float) for x in entry["ratios"]])
        entry.update(n=int(r.size), median=float(np.median(r)), mean=float(r.mean()),
                     sd=float(r.std(ddof=1)) if r.size > 1 else 0.0, min=float(r.min()),
                     max=float(r.max()), percentiles={"5": float(np.percentile(r, 5)),
                                                      "95": float(np.percentile(r, 95))})
    return out
