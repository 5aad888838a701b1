"""The analysis layer shared by every study: from grouped runs to verdicts, in one schema.

The path of the data, after training (:mod:`conjugacy.study`):

1. **Groups.** The runs of a study are grouped by their metadata (condition, seed [, window]):
   :func:`group_runs`, or :class:`SpectrumGroup` objects built by the experiment (e.g. the fig. S6
   group of grokking is the constrained runs cut to a longer window).
2. **Spectra.** :func:`fit_spectra` fits one Koopman spectrum per group
   (:func:`conjugacy.koopman_spectrum` with the condition's settings), serially or as Dask tasks
   (one per group; each task reads its own runs from the per-job stores).
3. **Comparison.** :func:`compare_conditions` takes one spectrum per (condition, seed) and
   computes, per pair of conditions: Wasserstein distances per seed (and between pooled spectra
   when given), the permutation test on the per-seed spectra (:func:`conjugacy.conjugacy_test`,
   the test used for verdicts), the paper's shuffle control and KS tests between distributions
   of distances, distances between seeds of each condition (the noise floor), and equivalence
   classes of the conditions. Everything is computed twice: on **all** eigenvalues and on the
   **filtered** spectra (:meth:`Spectrum.filtered`, the residual-aware default rule of the
   engine; the eigenpairs its data-space residuals mark as spurious are dropped). The verdict
   uses the filtered comparison whenever the engine provides the filter, and says so
   (``"verdict_uses"``).

The result is one JSON-ready dict (the ``"comparison"`` entry of every ``results.json``; schema in
``docs/studies.md``). Random streams of the statistics derive from one ``seed``:
``SeedSequence(seed, spawn_key=(kind, pair_index[, seed_index]))`` with ``kind`` 0 for the
shuffle control and 1 for the permutation test, so results do not depend on the order in which
pairs are computed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._checks import check_int

__all__ = [
    "SpectrumGroup",
    "analyse_study",
    "chosen",
    "compare_conditions",
    "filter_spectrum",
    "fit_spectra",
    "group_runs",
    "pair_key",
    "spectra_to_json",
]

_SHUFFLE, _PERMUTATION = 0, 1


def pair_key(a: str, b: str) -> str:
    """The key of a pair of conditions in results: ``f"{a}-{b}"``."""
    return f"{a}-{b}"


# ----- groups ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpectrumGroup:
    """The runs that make one spectrum.

    Attributes
    ----------
    condition : str
        Condition label (a condition of the study, or a derived one such as ``"constrained_s6"``).
    seed : int
    runs : tuple of str
        Run names (pooled: each run is delay-embedded separately, pairs never cross runs).
    steps : (int, int) or None
        Snapshot window ``[start, stop)`` of every run (None: all complete records).
    window : str or None
        Label of the window, for studies of windows of one training run.
    """

    condition: str
    seed: int
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
    def key(self) -> tuple[str, int, str | None]:
        """``(condition, seed, window)``."""
        return (self.condition, self.seed, self.window)


def group_runs(reader: Any, *, by: Sequence[str] = ("condition", "seed"),
               where: Callable[[Mapping[str, Any]], bool] | None = None) -> dict[tuple, list[str]]:
    """Group the runs of a store (or :class:`~conjugacy.study.StudyReader`) by run metadata.

    Parameters
    ----------
    reader : TrajectoryStore or StudyReader
    by : sequence of str
        Metadata keys; the group key is the tuple of their values.
    where : callable, optional
        Keep only runs whose metadata satisfies ``where(metadata)``.

    Returns
    -------
    dict tuple -> list of str
        Sorted group keys, run names sorted within each group.

    Raises
    ------
    KeyError
        If a kept run lacks one of the ``by`` keys (the message names the run and the key).
    """
    groups: dict[tuple, list[str]] = {}
    for run in reader.runs():
        meta = reader.run_info(run)["metadata"]
        if where is not None and not where(meta):
            continue
        missing = [k for k in by if k not in meta]
        if missing:
            raise KeyError(f"run {run!r} has no metadata {missing}; it has {sorted(meta)}")
        groups.setdefault(tuple(meta[k] for k in by), []).append(run)
    return {k: sorted(groups[k]) for k in sorted(groups, key=lambda t: tuple(map(str, t)))}


# ----- spectra ----------------------------------------------------------------------------------------
def _fit_group(paths: Mapping[str, str], params: Any, group: SpectrumGroup,
               kwargs: Mapping[str, Any], dtype: Any) -> Any:
    """Read one group's runs and fit its spectrum (a Dask task, or called directly)."""
    from .spectrum import koopman_spectrum
    from .study import StudyReader

    steps = None if group.steps is None else slice(*group.steps)
    with StudyReader(paths) as reader:
        traj = reader.read(params=params, runs=list(group.runs), steps=steps, dtype=dtype)
    if group.steps is not None and traj.shape[1] != group.steps[1] - group.steps[0]:
        raise RuntimeError(
            f"group {group.key}: the runs hold {traj.shape[1]} snapshots in the window "
            f"{group.steps}, {group.steps[1] - group.steps[0]} needed"
        )
    return koopman_spectrum(traj, **dict(kwargs))


def fit_spectra(
    reader: Any,
    groups: Sequence[SpectrumGroup],
    settings: Mapping[str, Any] | Callable[[SpectrumGroup], Mapping[str, Any]],
    *,
    params: str | Sequence[str] | None = None,
    dtype: Any = np.float64,
    client: Any = None,
) -> dict[tuple[str, int, str | None], Any]:
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
    dtype : numpy dtype
        Dtype the trajectories are read in (float64: the DMD runs in double precision).
    client : dask.distributed.Client, optional
        Submit one task per group; the results are identical to the serial ones.

    Returns
    -------
    dict (condition, seed, window) -> Spectrum
    """
    groups = list(groups)
    keys = [g.key for g in groups]
    if len(set(keys)) != len(keys):
        raise ValueError("groups must have distinct (condition, seed, window) keys")
    paths = reader.paths()
    kw = [dict(settings(g) if callable(settings) else settings) for g in groups]
    if client is None:
        return {g.key: _fit_group(paths, params, g, k, dtype) for g, k in zip(groups, kw)}
    futures = [client.submit(_fit_group, paths, params, g, k, dtype, pure=False)
               for g, k in zip(groups, kw)]
    return dict(zip(keys, client.gather(futures)))


def filter_spectrum(spectrum: Any) -> Any:
    """The residual-filtered spectrum (:meth:`Spectrum.filtered` with its default rule), or None
    when this version of the engine has no filter."""
    filtered = getattr(spectrum, "filtered", None)
    return filtered() if callable(filtered) else None


def spectra_to_json(spectra: Mapping[str, Sequence[Any]]) -> dict[str, list[dict[str, Any]]]:
    """``{condition: [spectrum_to_dict(s) for s in per-seed spectra]}``, with each spectrum's
    ``data_residuals`` (the ResDMD residuals the filter ranks by) when it has them."""
    from .results import spectrum_to_dict, to_jsonable

    def one(s: Any) -> dict[str, Any]:
        d = spectrum_to_dict(s)
        data_res = getattr(s, "data_residuals", None)
        if data_res is not None and "data_residuals" not in d:
            d["data_residuals"] = to_jsonable(data_res)  # ResDMD residuals, what the filter uses
        return d

    return {c: [one(s) for s in specs] for c, specs in spectra.items()}


# ----- comparison -------------------------------------------------------------------------------------
def _stream(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _pairs(conditions: Sequence[str], pairs: Any) -> dict[str, tuple[str, str]]:
    if pairs is None:
        return {pair_key(a, b): (a, b) for a, b in itertools.combinations(conditions, 2)}
    items = pairs.items() if isinstance(pairs, Mapping) else ((pair_key(a, b), (a, b)) for a, b in pairs)
    out = {}
    for name, (a, b) in items:
        for c in (a, b):
            if c not in conditions:
                raise ValueError(
                    f"pair {name!r} names the condition {c!r}; conditions: {list(conditions)}")
        out[str(name)] = (a, b)
    if not out:
        raise ValueError("pairs must name at least one pair of conditions")
    return out


def _verdict(test: Mapping[str, Any] | None, alpha: float) -> str | None:
    """``"not conjugate"`` (p < alpha), ``"undecided"`` (no p < alpha attainable) or
    ``"conjugate"``; None without a test (fewer than 2 seeds)."""
    if test is None:
        return None
    if test["pvalue"] < alpha:
        return "not conjugate"
    return "undecided" if test["min_pvalue"] >= alpha else "conjugate"


def _min_pvalue(n_a: int, n_b: int, res: Any) -> float:
    # the smallest p-value the test can give: with equal groups the mirror relabeling ties
    if res.exact:
        return (2.0 if n_a == n_b else 1.0) / math.comb(n_a + n_b, n_a)
    return 1.0 / (1 + int(res.n_permutations))


def _test_dict(res: Any, n_a: int, n_b: int) -> dict[str, Any]:
    out = {
        "statistic": float(res.statistic),
        "pvalue": float(res.pvalue),
        "n_permutations": int(res.n_permutations),
        "exact": bool(res.exact),
    }
    for extra in ("effect_size", "min_pvalue", "noise_floor"):
        value = getattr(res, extra, None)
        if value is not None:
            out[extra] = float(value)
    out.setdefault("min_pvalue", _min_pvalue(n_a, n_b, res))
    return out


def _one_comparison(
    spectra: Mapping[str, Sequence[Any]],
    pairs: Mapping[str, tuple[str, str]],
    pooled: Mapping[str, Any] | None,
    *,
    seed: int,
    n_permutations: int,
    n_shuffles: int,
    shuffle: str | None,
    ks: bool,
    p: float,
) -> dict[str, Any]:
    from .compare import distance_matrix, equivalence_classes, wasserstein
    from .stats import conjugacy_test, ks_test, shuffle_control

    conditions = list(spectra)
    n_seeds = len(next(iter(spectra.values())))
    all_pairs = list(itertools.combinations(conditions, 2))
    per_seed = {
        (a, b): np.array([wasserstein(spectra[a][s], spectra[b][s], p=p) for s in range(n_seeds)])
        for a, b in all_pairs
    }

    def dist(a: str, b: str) -> np.ndarray:
        return per_seed[(a, b)] if (a, b) in per_seed else per_seed[(b, a)]

    out: dict[str, Any] = {
        "distances": {
            name: {"per_seed": dist(a, b).tolist(), "mean": float(dist(a, b).mean()),
                   "std": float(dist(a, b).std())}
            for name, (a, b) in pairs.items()
        }
    }
    if pooled is not None:
        out["pooled_distances"] = {name: float(wasserstein(pooled[a], pooled[b], p=p))
                                   for name, (a, b) in pairs.items()}
    between: dict[str, Any] = {}
    for c in conditions:
        if n_seeds < 2:
            break
        dm = distance_matrix(list(spectra[c]), p=p)
        iu = np.triu_indices(n_seeds, k=1)
        values = dm[iu]
        k = int(values.argmin())
        between[c] = {
            "matrix": dm.tolist(), "values": values.tolist(),
            "pairs": [[int(i), int(j)] for i, j in zip(*iu)],
            "mean": float(values.mean()), "std": float(values.std()),
            "min": float(values.min()), "max": float(values.max()),
            "closest_pair": [int(iu[0][k]), int(iu[1][k])],
        }
    out["between_seeds"] = between
    tests: dict[str, Any] = {}
    for i, (name, (a, b)) in enumerate(pairs.items()):
        if n_seeds < 2:
            tests[name] = None
            continue
        res = conjugacy_test(list(spectra[a]), list(spectra[b]), n_permutations=n_permutations,
                             seed=_stream(seed, _PERMUTATION, i), p=p)
        tests[name] = _test_dict(res, len(spectra[a]), len(spectra[b]))
    out["permutation_tests"] = tests
    if shuffle is not None:
        sh: dict[str, Any] = {}
        for i, (name, (a, b)) in enumerate(pairs.items()):
            if shuffle == "pooled":
                r = shuffle_control(pooled[a], pooled[b], n_shuffles=n_shuffles,
                                    seed=_stream(seed, _SHUFFLE, i), p=p)
                sh[name] = {"fraction": float(r.fraction), "n_shuffles": int(r.n_shuffles),
                            "true_distance": float(r.true_distance)}
            else:
                fr = [float(shuffle_control(spectra[a][s], spectra[b][s], n_shuffles=n_shuffles,
                                            seed=_stream(seed, _SHUFFLE, i, s), p=p).fraction)
                      for s in range(n_seeds)]
                sh[name] = {"fraction_per_seed": fr, "mean_fraction": float(np.mean(fr)),
                            "n_shuffles": n_shuffles}
        out["shuffle_control"] = sh
    if ks and n_seeds >= 2:
        names = list(pairs)
        ks_pairs = {}
        for k1, k2 in itertools.combinations(names, 2):
            r = ks_test(dist(*pairs[k1]), dist(*pairs[k2]))
            ks_pairs[f"{k1} vs {k2}"] = {"statistic": float(r.statistic), "pvalue": float(r.pvalue)}
        out["ks_tests"] = ks_pairs
        ks_seeds = {}
        for c in conditions:
            for name, (a, b) in pairs.items():
                if c in (a, b) and c in between:
                    r = ks_test(np.asarray(between[c]["values"]), dist(a, b))
                    ks_seeds[f"{c} seeds vs {name}"] = {"statistic": float(r.statistic),
                                                         "pvalue": float(r.pvalue)}
        out["ks_between_seeds_vs_pairs"] = ks_seeds
    if len(conditions) >= 2 and between:
        mean_d = np.zeros((len(conditions), len(conditions)))
        for (a, b), v in per_seed.items():
            i, j = conditions.index(a), conditions.index(b)
            mean_d[i, j] = mean_d[j, i] = float(v.mean())
        floor = float(np.mean([between[c]["mean"] for c in conditions]))
        classes = equivalence_classes(mean_d, threshold=max(floor, np.finfo(float).tiny))
        labels = [int(x) for x in np.asarray(classes.labels)]
        out["equivalence_classes"] = {
            "rule": "average-linkage classes of the conditions by their mean per-seed distance, "
                    "cut at the noise floor (mean distance between seeds of one condition)",
            "noise_floor": floor,
            "labels": dict(zip(conditions, labels)),
            "classes": [[c for c, lab in zip(conditions, labels) if lab == k]
                        for k in sorted(set(labels))],
            "mean_distance_matrix": mean_d.tolist(),
        }
    return out


def compare_conditions(
    spectra: Mapping[str, Sequence[Any]],
    *,
    pairs: Mapping[str, tuple[str, str]] | Sequence[tuple[str, str]] | None = None,
    pooled: Mapping[str, Any] | None = None,
    alpha: float = 0.05,
    seed: int = 0,
    n_permutations: int = 999,
    n_shuffles: int = 100,
    shuffle: str | None = "per_seed",
    ks: bool = True,
    p: float = 1,
    use_filter: bool = True,
) -> dict[str, Any]:
    """Distances, tests, classes and verdicts between conditions, on all and on filtered spectra.

    Parameters
    ----------
    spectra : mapping condition -> sequence of Spectrum
        One spectrum per seed, the same seeds in the same order for every condition.
    pairs : mapping name -> (a, b), or sequence of (a, b), optional
        The compared pairs (default: every pair, named ``"a-b"``).
    pooled : mapping condition -> Spectrum, optional
        One spectrum per condition from all its runs (as the optimizer study reports).
    alpha : float
        Level of the permutation test: a pair is *not conjugate* when ``p < alpha``.
    seed : int
        Seed of the statistics' random streams (see the module docstring).
    n_permutations, n_shuffles : int
        Relabelings of the permutation test (exact enumeration when fewer suffice), shuffles of
        the paper's control.
    shuffle : {"per_seed", "pooled", None}
        The paper's shuffle control on each seed's pair of spectra, on the pooled spectra, or not.
    ks : bool
        The paper's KS tests between distributions of per-seed distances.
    p : float
        Order of the Wasserstein distance.
    use_filter : bool
        Also compare the filtered spectra and base the verdicts on them (when the engine has
        :meth:`Spectrum.filtered`).

    Returns
    -------
    dict (JSON types)
        ``conditions``, ``n_seeds``, ``pairs``, ``alpha``, ``all`` (the comparison on all
        eigenvalues), ``filtered`` (the same on filtered spectra, or None), ``filter`` (the rule
        and how many eigenvalues it kept), ``verdict_uses`` (``"filtered"`` or ``"all"``),
        ``verdicts`` (pair -> ``{"verdict", "pvalue", "uses"}``) and ``verdict_rule``.

    Raises
    ------
    ValueError
        If conditions hold different numbers of spectra, or a pair names an unknown condition.
    """
    if not isinstance(spectra, Mapping) or len(spectra) < 2:
        raise ValueError("spectra must map at least two conditions to their per-seed spectra")
    sizes = {c: len(v) for c, v in spectra.items()}
    if len(set(sizes.values())) != 1 or min(sizes.values()) < 1:
        raise ValueError(
            f"every condition needs the same number (>= 1) of per-seed spectra, got {sizes}")
    if shuffle not in ("per_seed", "pooled", None):
        raise ValueError(f"shuffle must be 'per_seed', 'pooled' or None, got {shuffle!r}")
    if shuffle == "pooled" and pooled is None:
        raise ValueError("shuffle='pooled' needs the pooled spectra")
    if not (isinstance(alpha, float | int) and 0 < alpha < 1):
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    seed = check_int(seed, "seed", minimum=0)
    conditions = list(spectra)
    named = _pairs(conditions, pairs)
    opts = dict(seed=seed, n_permutations=n_permutations, n_shuffles=n_shuffles, shuffle=shuffle,
                ks=ks, p=p)
    all_cmp = _one_comparison(spectra, named, pooled, **opts)
    filtered_cmp, filter_info = None, {"available": False, "rule": None}
    if use_filter:
        fspec = {c: [filter_spectrum(s) for s in v] for c, v in spectra.items()}
        fpooled = None if pooled is None else {c: filter_spectrum(s) for c, s in pooled.items()}
        if all(s is not None for v in fspec.values() for s in v):
            filtered_cmp = _one_comparison(fspec, named, fpooled, **opts)
            first = next(iter(fspec.values()))[0]
            rule = dict(getattr(first, "settings", {}).get("filter") or {})
            filter_info = {
                "available": True,
                "rule": {k: v for k, v in rule.items()
                         if k in ("rule", "max_residual", "relative", "n")},
                "kept": {c: [int(len(s.eigenvalues)) for s in v] for c, v in fspec.items()},
                "of": {c: [int(len(s.eigenvalues)) for s in v] for c, v in spectra.items()},
            }
            filtered_cmp["eigenvalues"] = {
                c: [_pairs_of(s.eigenvalues) for s in v] for c, v in fspec.items()
            }
    uses = "filtered" if filtered_cmp is not None else "all"
    chosen = filtered_cmp if filtered_cmp is not None else all_cmp
    verdicts = {}
    for name in named:
        t = chosen["permutation_tests"][name]
        verdicts[name] = {"verdict": _verdict(t, alpha), "pvalue": None if t is None else t["pvalue"],
                          "uses": uses}
        if t is not None:
            verdicts[name]["min_pvalue"] = t["min_pvalue"]
    return {
        "conditions": conditions,
        "n_seeds": sizes[conditions[0]],
        "pairs": {k: list(v) for k, v in named.items()},
        "alpha": float(alpha),
        "verdict_rule": (
            "not conjugate if the permutation test on the per-seed spectra rejects at level "
            f"alpha (p < alpha), computed on the {uses} spectra; undecided if no p-value below "
            "alpha was attainable (too few seeds: the smallest attainable p, min_pvalue, is >= "
            "alpha); otherwise conjugate (no evidence against conjugacy)"
        ),
        "verdict_uses": uses,
        "filter": filter_info,
        "verdicts": verdicts,
        "all": all_cmp,
        "filtered": filtered_cmp,
    }


def _pairs_of(values: Any) -> list[list[float]]:
    from .results import complex_to_pairs

    return complex_to_pairs(values)


def chosen(comparison: Mapping[str, Any]) -> Mapping[str, Any]:
    """The comparison the verdicts use (``comparison[comparison["verdict_uses"]]``)."""
    return comparison[comparison["verdict_uses"]]


# ----- one call for a declared study --------------------------------------------------------------
def analyse_study(
    study: Any,
    out: Any,
    *,
    params: str | Sequence[str] | None,
    spectrum: Mapping[str, Any] | Callable[[SpectrumGroup], Mapping[str, Any]],
    client: Any = None,
    figures: bool = True,
    alpha: float = 0.05,
    seed: int = 0,
    n_permutations: int = 999,
    n_shuffles: int = 100,
    loss: str | None = "loss",
    training: Any = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Spectra per (condition, seed), the comparison, ``results.json`` and the figures of a study.

    The standard second half of every study (the first is :func:`conjugacy.study.run_study`):
    one spectrum per (condition, seed) from the job's replica runs, :func:`compare_conditions`
    over all pairs of conditions, the loss curves, provenance and timing, written atomically to
    ``OUT/results.json``; with ``figures``, ``eigenvalues``, ``distances``, ``between_seeds`` and
    ``loss`` (PNG and SVG, :mod:`conjugacy.plots.study`).

    Parameters
    ----------
    study : Study
    out : path
        The folder :func:`~conjugacy.study.run_study` trained into.
    params : str or list of str
        The recorded parameters that are the observables (names or globs).
    spectrum : dict or callable
        :func:`conjugacy.koopman_spectrum` settings (``delays``, ``rank``, ...), or a function of
        the group.
    client : dask.distributed.Client, optional
        Fit the spectra as Dask tasks.
    figures : bool
    alpha, seed, n_permutations, n_shuffles
        See :func:`compare_conditions`.
    loss : str or None
        Name of the scalar recorded as the loss (curves in results.json and the figure).
    training : StudyRun, optional
        The training report, for timing in results.json.
    data : dict, optional
        Where the data came from (name, source), for the provenance.

    Returns
    -------
    dict
        The content of ``results.json``.
    """
    import time
    from pathlib import Path

    from .study import StudyReader, provenance, write_results

    t0 = time.perf_counter()
    out = Path(out)
    jobs = [j for j in study.jobs() if j.condition in study.conditions]
    groups = [SpectrumGroup(j.condition, j.seed, j.run_names) for j in jobs]
    with StudyReader.open(out, jobs=jobs) as reader:
        fitted = fit_spectra(reader, groups, spectrum, params=params, client=client)
        curves: dict[str, np.ndarray] = {}
        if loss is not None:
            for c in study.conditions:
                runs = [r for j in jobs if j.condition == c for r in j.run_names]
                curves[c] = np.stack([reader.scalars(r, loss)[1:] for r in runs])
    t1 = time.perf_counter()
    spectra = {c: [fitted[(c, s, None)] for s in study.seeds] for c in study.conditions}
    comparison = compare_conditions(spectra, alpha=alpha, seed=seed,
                                    n_permutations=n_permutations, n_shuffles=n_shuffles)
    t2 = time.perf_counter()
    summary: dict[str, Any] = {
        "experiment": study.name,
        "conditions": dict(study.conditions),
        "seeds": list(study.seeds),
        "n_replicas": study.n_replicas,
        "observable": params,
        "spectrum_settings": None if callable(spectrum) else dict(spectrum),
        "spectra": spectra_to_json(spectra),
        "comparison": comparison,
        "loss": {c: {"mean": v.mean(axis=0).tolist(), "std": v.std(axis=0).tolist(),
                     "final_mean": float(v[:, -max(1, v.shape[1] // 10):].mean())}
                 for c, v in curves.items()},
        "timing_seconds": {**({} if training is None else training.timing()),
                           "spectra": t1 - t0, "statistics": t2 - t1},
        "provenance": provenance(study, data=data),
    }
    paths: list[Any] = []
    if figures:
        from .plots.study import draw_study

        paths = draw_study(summary, spectra, curves, out)
    summary["figures"] = [p.name for p in paths]
    summary["timing_seconds"]["total_analysis"] = time.perf_counter() - t0
    write_results(out, summary)
    return summary
