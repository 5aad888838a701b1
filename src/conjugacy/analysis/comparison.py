"""Comparison of conditions: distances, tests, classes and the verdicts, on all and filtered spectra.

:func:`compare_conditions` takes one spectrum per (condition, seed) and computes, per pair of
conditions: Wasserstein distances per seed (and between pooled spectra when given) with a 95%
t-interval over seeds, the permutation test on the per-seed spectra
(:func:`conjugacy.conjugacy_test`, the test behind verdicts), the paper's shuffle control and KS
tests between distributions of distances, distances between seeds of each condition (the noise
floor), and equivalence classes of the conditions. Everything is computed twice: on **all**
eigenvalues and on the **filtered** spectra (:meth:`Spectrum.filtered`, the residual-aware default
rule); the verdicts use the filtered comparison (``verdict_uses``) and come from the package's one
rule, :func:`conjugacy.stats.verdict`, which gives no verdict ("undecided") on spectra fitted with
different settings.

Random streams derive from one ``seed``: ``SeedSequence(seed, spawn_key=(kind, pair_index[,
seed_index]))`` with ``kind`` 0 for the shuffle control and 1 for the permutation test, so results
do not depend on the order in which pairs are computed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._checks import check_choice, check_int
from .._text import cut_list
from ..comparison_filter import COMPARISON_FILTERS, filter_for_comparison
from ..results import complex_to_pairs

__all__ = [
    "Comparison",
    "chosen",
    "compare_conditions",
    "filter_spectrum",
    "no_distance_reason",
    "pair_distance",
    "pair_key",
    "seed_interval",
]

_SHUFFLE, _PERMUTATION = 0, 1


def pair_key(a: str, b: str) -> str:
    """The key of a pair of conditions in results: ``f"{a}-{b}"``.

    Examples
    --------
    >>> pair_key("sgd", "adam")
    'sgd-adam'
    """
    return f"{a}-{b}"


def filter_spectrum(spectrum: Any) -> Any:
    """The residual-filtered spectrum (:meth:`Spectrum.filtered`, default rule); a spectrum
    filtered already (by its maker's rule) is kept as it is; None for plain eigenvalues.

    Parameters
    ----------
    spectrum : Spectrum or array-like
        A fitted spectrum, or eigenvalues without residuals.

    Returns
    -------
    Spectrum or None

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> rng = np.random.default_rng(0)
    >>> s = koopman_spectrum(np.cumsum(rng.standard_normal((2, 30, 3)), 1), rank=3)
    >>> f = filter_spectrum(s)
    >>> len(s.eigenvalues), len(f.eigenvalues), f.settings["filter"]["rule"]
    (3, 2, 'default')
    >>> filter_spectrum(f) is f, filter_spectrum(np.array([0.5, 0.1]))
    (True, None)
    """
    if not callable(getattr(spectrum, "filtered", None)):
        return None
    if "filter" in (spectrum.settings or {}):
        return spectrum
    return spectrum.filtered()


def chosen(comparison: Mapping[str, Any]) -> Mapping[str, Any]:
    """The comparison the verdicts use (``comparison[comparison["verdict_uses"]]``).

    Parameters
    ----------
    comparison : Comparison or its JSON dict

    Returns
    -------
    dict
        ``comparison["filtered"]`` or ``comparison["all"]``: distances, tests, noise floor.

    Examples
    --------
    >>> cmp = {"verdict_uses": "filtered", "all": {"distances": {}},
    ...        "filtered": {"distances": {"a-b": {"mean": 0.25}}}}
    >>> chosen(cmp)["distances"]  # a Comparison (compare_conditions) reads the same way
    {'a-b': {'mean': 0.25}}
    """
    return comparison[comparison["verdict_uses"]]


def pair_distance(comparison: Mapping[str, Any], pair: str) -> float | None:
    """The mean distance over seeds of ``pair`` in the comparison the verdicts use
    (:func:`chosen`); None where that comparison has none for the pair: a filter kept no
    eigenpair of one of its spectra (named in ``chosen(comparison)["kept_nothing"][pair]``; the
    verdict is then undecided) or the distance is not finite.

    Parameters
    ----------
    comparison : Comparison or its JSON dict
    pair : str
        A key of ``comparison["pairs"]`` (:func:`pair_key`).

    Returns
    -------
    float or None

    Raises
    ------
    KeyError
        If ``pair`` is not a pair of the comparison.

    Examples
    --------
    >>> cmp = {"pairs": {"a-b": ["a", "b"], "a-c": ["a", "c"]}, "verdict_uses": "filtered",
    ...        "filtered": {"distances": {"a-b": {"mean": 0.25}}, "kept_nothing": {"a-c": ["c seed 0"]}}}
    >>> pair_distance(cmp, "a-b"), pair_distance(cmp, "a-c")
    (0.25, None)
    """
    if pair not in comparison["pairs"]:
        raise KeyError(f"{pair!r} is not a pair of this comparison; its pairs: "
                       f"{', '.join(comparison['pairs'])}")
    mean = chosen(comparison)["distances"].get(pair, {}).get("mean")
    return None if mean is None or not math.isfinite(mean) else float(mean)


def no_distance_reason(comparison: Mapping[str, Any], distances: Mapping[str, float | None]
                       ) -> str:
    """Why a claim on distances is undecided: the pairs of ``distances`` (pair -> what
    :func:`pair_distance` gave) without a distance, naming the spectra whose filter kept no
    eigenpair; ``""`` when every pair has one.

    Examples
    --------
    >>> cmp = {"pairs": {"a-b": ["a", "b"], "a-c": ["a", "c"]}, "verdict_uses": "filtered",
    ...        "filtered": {"distances": {"a-b": {"mean": 0.25}}, "kept_nothing": {"a-c": ["c seed 0"]}}}
    >>> no_distance_reason(cmp, {p: pair_distance(cmp, p) for p in ("a-b", "a-c")})
    'undecided, no distance (a-c: the filter kept no eigenpair of c seed 0)'
    """
    empty = chosen(comparison).get("kept_nothing", {})
    why = [f"{p}: the filter kept no eigenpair of {', '.join(empty[p])}" if empty.get(p)
           else f"{p}: no finite distance" for p, d in distances.items() if d is None]
    return f"undecided, no distance ({'; '.join(why)})" if why else ""


def seed_interval(per_seed: Any) -> list[float] | None:
    """95% t-interval of the mean of per-seed distances over independent seeds
    (``mean +- t_{n-1, 0.975} std / sqrt(n)``, ``std`` with ``n - 1``, lower end clipped at 0);
    None with fewer than 2 seeds or a non-finite distance.

    Parameters
    ----------
    per_seed : array-like float (n_seeds,)
        One distance per seed.

    Returns
    -------
    [low, high] or None

    Examples
    --------
    >>> seed_interval([0.1, 0.2, 0.3])  # 0.2 +- 4.303 * 0.1 / sqrt(3), clipped at 0
    [0.0, 0.448413771175033]
    >>> seed_interval([0.1]) is None
    True
    """
    from scipy.stats import t as student

    d = np.asarray(per_seed, float)
    if d.size < 2 or not np.isfinite(d).all():
        return None
    half = float(student.ppf(0.975, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size))
    return [max(0.0, float(d.mean()) - half), float(d.mean()) + half]


@dataclass(frozen=True, eq=False)
class Comparison(Mapping):
    """What :func:`compare_conditions` found: one record, read as attributes or, for the JSON of
    ``results.json``, as the mapping :meth:`to_dict` gives (``comparison["verdicts"]``).

    Attributes
    ----------
    conditions : list of str
    n_seeds : int
    pairs : dict name -> [a, b]
    alpha : float
    verdicts : dict name -> dict
        :meth:`conjugacy.stats.Verdict.to_dict` plus ``uses`` (``"filtered"`` or ``"all"``).
    verdict_uses : str
    verdict_rule : str
    filter : dict
        The filter rule and how many eigenvalues it kept.
    all, filtered : dict
        Distances, tests, noise floor and classes on all / on filtered eigenvalues, and
        ``aliasing``: per pair, the aliasing guard's sentences on the eigenvalues that block
        compares (:func:`conjugacy.compare.aliasing`; empty in discrete time); the verdicts
        take those of the block they use. ``filtered["kept_nothing"]``: pair -> its spectra whose
        filter kept no eigenpair (that pair has no filtered distance or test, its verdict is
        undecided; the ``all`` block compares it as usual).
    settings_mismatch : list of str
        Fit settings that differ between the spectra (then every verdict is "undecided").
    allowed_differences : dict
        Settings allowed to differ on purpose, and why.
    time : {"discrete", "continuous"}
        Whether eigenvalues or continuous-time exponents ``log(lambda) / dt`` were compared
        (distances then per unit of the recording interval, i.e. per step).

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> rng = np.random.default_rng(0)
    >>> fit = lambda: koopman_spectrum(np.cumsum(rng.standard_normal((2, 30, 3)), 1), rank=3)
    >>> cmp = compare_conditions({"a": [fit() for _ in range(3)], "b": [fit() for _ in range(3)]},
    ...                          n_shuffles=10)
    >>> cmp.conditions, cmp.n_seeds, cmp.pairs, cmp.verdict("a-b")
    (['a', 'b'], 3, {'a-b': ['a', 'b']}, 'undecided')
    >>> cmp["verdicts"]["a-b"]["verdict"], dict(cmp) == cmp.to_dict()  # also a mapping
    ('undecided', True)
    """

    conditions: list[str]
    n_seeds: int
    pairs: dict[str, list[str]]
    alpha: float
    verdicts: dict[str, dict[str, Any]]
    verdict_uses: str
    verdict_rule: str
    filter: dict[str, Any]
    all: dict[str, Any]
    filtered: dict[str, Any] | None
    settings_mismatch: list[str] = field(default_factory=list)
    allowed_differences: dict[str, str] = field(default_factory=dict)
    time: str = "discrete"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the ``"comparison"`` entry of ``results.json``)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dataclass_fields__)

    def __len__(self) -> int:
        return len(self.__dataclass_fields__)

    def verdict(self, pair: str) -> str:
        """The verdict word of ``pair``."""
        return self.verdicts[pair]["verdict"]


# ----- the pieces of one comparison -----------------------------------------------------------------
def _stream(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _pairs(conditions: Sequence[str], pairs: Any) -> dict[str, tuple[str, str]]:
    if pairs is None:
        combos = list(itertools.combinations(conditions, 2))
        for name in (pair_key, lambda a, b: f"{a} vs {b}"):
            named = {name(a, b): (a, b) for a, b in combos}
            if len(named) == len(combos):  # "x"-"y-z" and "x-y"-"z" are both "x-y-z"
                return named
        return {f"{i}: {a} vs {b}": (a, b) for i, (a, b) in enumerate(combos)}
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


def _test_dict(res: Any) -> dict[str, Any]:
    return {"statistic": float(res.statistic), "pvalue": float(res.pvalue),
            "n_permutations": int(res.n_permutations), "exact": bool(res.exact),
            "effect_size": float(res.effect_size), "min_pvalue": float(res.min_pvalue),
            "noise_floor": float(res.mean_within)}


def _distances(spectra, pairs, pooled, p) -> tuple[dict, dict[str, Any]]:
    from ..compare import wasserstein

    n_seeds = len(next(iter(spectra.values())))
    per_seed = {(a, b): np.array([wasserstein(spectra[a][s], spectra[b][s], p=p)
                                  for s in range(n_seeds)])
                for a, b in itertools.combinations(list(spectra), 2)}
    out: dict[str, Any] = {"distances": {}}
    for name, (a, b) in pairs.items():
        d = per_seed[(a, b)] if (a, b) in per_seed else per_seed[(b, a)]
        entry = {"per_seed": d.tolist(), "mean": float(d.mean()), "std": float(d.std())}
        interval = seed_interval(d)
        if interval is not None:
            entry["interval"] = interval
            entry["interval_rule"] = (f"95% t-interval of the mean over {d.size} independent "
                                      "seeds (lower end clipped at 0)")
        out["distances"][name] = entry
    if pooled is not None:
        out["pooled_distances"] = {name: float(wasserstein(pooled[a], pooled[b], p=p))
                                   for name, (a, b) in pairs.items()}
    return per_seed, out


def _between_seeds(spectra, p) -> dict[str, Any]:
    from ..compare import distance_matrix

    between: dict[str, Any] = {}
    for c, specs in spectra.items():
        n = len(specs)
        if n < 2:
            break
        dm = distance_matrix(list(specs), p=p)
        iu = np.triu_indices(n, k=1)
        values = dm[iu]
        k = int(values.argmin())
        between[c] = {
            "matrix": dm.tolist(), "values": values.tolist(),
            "pairs": [[int(i), int(j)] for i, j in zip(*iu)],
            "mean": float(values.mean()), "std": float(values.std()),
            "min": float(values.min()), "max": float(values.max()),
            "closest_pair": [int(iu[0][k]), int(iu[1][k])],
        }
    return between


def _shuffles(spectra, pairs, pooled, how, n_shuffles, seed, p) -> dict[str, Any]:
    from ..stats import shuffle_control

    sh: dict[str, Any] = {}
    for i, (name, (a, b)) in enumerate(pairs.items()):
        if how == "pooled":
            r = shuffle_control(pooled[a], pooled[b], n_shuffles=n_shuffles,
                                seed=_stream(seed, _SHUFFLE, i), p=p)
            sh[name] = {"fraction": float(r.fraction), "n_shuffles": int(r.n_shuffles),
                        "true_distance": float(r.true_distance)}
            continue
        fr = [float(shuffle_control(spectra[a][s], spectra[b][s], n_shuffles=n_shuffles,
                                    seed=_stream(seed, _SHUFFLE, i, s), p=p).fraction)
              for s in range(len(spectra[a]))]
        sh[name] = {"fraction_per_seed": fr, "mean_fraction": float(np.mean(fr)),
                    "n_shuffles": n_shuffles}
    return sh


def _ks(pairs, dist, between) -> dict[str, Any]:
    from ..stats import ks_test

    def row(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        r = ks_test(x, y)
        return {"statistic": float(r.statistic), "pvalue": float(r.pvalue)}

    return {"ks_tests": {f"{k1} vs {k2}": row(dist[k1], dist[k2])
                         for k1, k2 in itertools.combinations(list(pairs), 2)},
            "ks_between_seeds_vs_pairs": {
                f"{c} seeds vs {name}": row(np.asarray(between[c]["values"]), dist[name])
                for c in between for name, (a, b) in pairs.items() if c in (a, b)}}


def _classes(conditions, per_seed, between) -> dict[str, Any]:
    from scipy.spatial.distance import squareform

    from ..compare import equivalence_classes

    # per_seed holds the pairs of conditions in itertools.combinations order: the condensed order
    mean_d = squareform([float(v.mean()) for v in per_seed.values()])
    floor = float(np.mean([between[c]["mean"] for c in conditions]))
    classes = equivalence_classes(mean_d, threshold=max(floor, np.finfo(float).tiny))
    labels = [int(x) for x in np.asarray(classes.labels)]
    return {
        "rule": "average-linkage classes of the conditions by their mean per-seed distance, "
                "cut at the noise floor (mean distance between seeds of one condition)",
        "noise_floor": floor,
        "labels": dict(zip(conditions, labels)),
        "classes": [[c for c, lab in zip(conditions, labels) if lab == k]
                    for k in sorted(set(labels))],
        "mean_distance_matrix": mean_d.tolist(),
    }


def _one_comparison(spectra, pairs, pooled, *, seed, n_permutations, n_shuffles, shuffle, ks,
                    p) -> dict[str, Any]:
    from ..stats import conjugacy_test

    conditions = list(spectra)
    n_seeds = len(next(iter(spectra.values())))
    per_seed, out = _distances(spectra, pairs, pooled, p)
    between = _between_seeds(spectra, p)
    out["between_seeds"] = between
    out["permutation_tests"] = {
        name: None if n_seeds < 2 else _test_dict(conjugacy_test(
            list(spectra[a]), list(spectra[b]), n_permutations=n_permutations,
            seed=_stream(seed, _PERMUTATION, i), p=p))
        for i, (name, (a, b)) in enumerate(pairs.items())}
    if shuffle is not None:
        out["shuffle_control"] = _shuffles(spectra, pairs, pooled, shuffle, n_shuffles, seed, p)
    if ks and n_seeds >= 2:
        out.update(_ks(pairs, {n: np.asarray(out["distances"][n]["per_seed"]) for n in pairs},
                       between))
    if len(conditions) >= 2 and between:
        out["equivalence_classes"] = _classes(conditions, per_seed, between)
    return out


def _kept_nothing(fspec: Mapping[str, Any], fpooled: Mapping[str, Any] | None
                  ) -> dict[str, list[str]]:
    """Per condition, its filtered spectra that kept no eigenpair (``"<c> seed <i>"``,
    ``"<c> pooled"``); conditions whose spectra all kept some are absent."""
    out = {}
    for c, v in fspec.items():
        names = [f"{c} seed {i}" for i, s in enumerate(v) if len(s.eigenvalues) == 0]
        if fpooled is not None and len(fpooled[c].eigenvalues) == 0:
            names.append(f"{c} pooled")
        if names:
            out[c] = names
    return out


def _filtered_block(fspec: Mapping[str, Any], fpooled: Mapping[str, Any] | None,
                    named: Mapping[str, tuple[str, str]], mode: str,
                    opts: Mapping[str, Any]) -> dict[str, Any]:
    """The comparison of the filtered spectra. A pair with a spectrum whose filter kept no
    eigenpair has no distance (none to an empty spectrum): it is left out of the distances,
    tests and controls (its test None), named in ``kept_nothing`` (pair -> those spectra; its
    verdict then undecided, :func:`conjugacy.stats.verdict`), and the equivalence classes,
    which need every condition, are not formed; the other pairs are compared as usual."""
    empty = _kept_nothing(fspec, fpooled)
    ok = {n: ab for n, ab in named.items() if not set(ab) & set(empty)}
    usable = {c: v for c, v in fspec.items() if c not in empty}
    upooled = None if fpooled is None else {c: s for c, s in fpooled.items() if c not in empty}
    if ok:
        block = _one_comparison(_timed(usable, mode), ok, _timed(upooled, mode), **opts)
    else:
        block = {"distances": {}, "between_seeds": {}, "permutation_tests": {}}
    if empty:
        block.pop("equivalence_classes", None)
    block["permutation_tests"] = {n: block["permutation_tests"].get(n) for n in named}
    aliasing = _pair_aliasing(usable, ok, mode)
    block["aliasing"] = {n: aliasing.get(n, []) for n in named}
    block["kept_nothing"] = {n: [x for c in ab if c in empty for x in empty[c]]
                             for n, ab in named.items() if n not in ok}
    block["eigenvalues"] = {c: [complex_to_pairs(s.eigenvalues) for s in v] for c, v in fspec.items()}
    return block


def _filter_info(spectra, fspec) -> dict[str, Any]:
    first = next(iter(fspec.values()))[0]
    rule = dict(first.settings.get("filter") or {})
    return {
        "available": True,
        "rule": {k: v for k, v in rule.items()
                 if k in ("rule", "max_residual", "relative", "n", "comparison",
                          "max_projection", "max_noise_fraction")},
        "kept": {c: [int(len(s.eigenvalues)) for s in v] for c, v in fspec.items()},
        "of": {c: [int(len(s.eigenvalues)) for s in v] for c, v in spectra.items()},
    }


def _check_args(spectra, shuffle, pooled) -> dict[str, int]:
    if not isinstance(spectra, Mapping) or len(spectra) < 2:
        raise ValueError("spectra must map at least two conditions to their per-seed spectra")
    sizes = {c: len(v) for c, v in spectra.items()}
    if len(set(sizes.values())) != 1 or min(sizes.values()) < 1:
        raise ValueError(
            f"every condition needs the same number (>= 1) of per-seed spectra, got {sizes}")
    check_choice(shuffle, "shuffle", ("per_seed", "pooled", None))
    if shuffle == "pooled" and pooled is None:
        raise ValueError("shuffle='pooled' needs the pooled spectra")
    return sizes


def _mismatch(spectra, pairs, allow, time) -> tuple[list[str], dict[str, list[str]]]:
    """The settings that differ between all spectra, and per pair the same plus the pair's own
    aliasing (continuous time: :func:`conjugacy.compare.aliasing` on the pair's spectra)."""
    from ..compare import aliasing
    from ..stats import settings_mismatch

    common = settings_mismatch(*_flat(spectra, spectra), allow=allow, time=time)
    if time == "discrete":
        return common, {name: common for name in pairs}
    every = set(aliasing(*_flat(spectra, spectra)))
    shared = [m for m in common if m not in every]
    return common, {name: shared + alias for name, alias in _pair_aliasing(spectra, pairs,
                                                                           time).items()}


def _flat(spectra: Mapping[str, Any], conditions: Any) -> tuple[list[Any], list[str]]:
    """The spectra of ``conditions`` in one list, with labels ``"<condition> seed <i>"``."""
    return ([s for c in conditions for s in spectra[c]],
            [f"{c} seed {i}" for c in conditions for i in range(len(spectra[c]))])


def _pair_aliasing(spectra: Mapping[str, Any], pairs: Mapping[str, Any],
                   time: str) -> dict[str, list[str]]:
    """Per pair, the aliasing guard's sentences (:func:`conjugacy.compare.aliasing`) on the
    pair's spectra in continuous time (none in discrete time): at most
    :data:`conjugacy.compare.MAX_NAMED`, then "and N more spectra alias"."""
    from ..compare import MAX_NAMED, aliasing

    out = {}
    for name, (a, b) in pairs.items():
        found = [] if time == "discrete" else aliasing(*_flat(spectra, (a, b)))
        out[name] = cut_list(found, MAX_NAMED, "spectra alias")
    return out


def _timed(spectra: Mapping[str, Any] | None, time: str) -> Any:
    """The spectra as continuous-time exponents (:meth:`conjugacy.Spectrum.continuous_time` at
    each one's recording interval) when ``time`` is continuous; as they are when discrete, as
    plain eigenvalues if their intervals differ (so no inner comparison decides on its own)."""
    if spectra is None:
        return None
    from ..compare import comparison_time, recording_interval

    def items(v: Any) -> list[Any]:
        return [v] if hasattr(v, "eigenvalues") else list(v)

    def one(s: Any) -> Any:
        if time == "discrete":
            return getattr(s, "eigenvalues", s)
        comparison_time([s], "continuous")  # it carries an interval
        return s.continuous_time(recording_interval(s))

    if time == "discrete" and len({recording_interval(s) for v in spectra.values()
                                   for s in items(v)} - {None}) <= 1:
        return spectra
    return {c: one(v) if hasattr(v, "eigenvalues") else [one(s) for s in v]
            for c, v in spectra.items()}


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
    allow_differing: Mapping[str, str] | None = None,
    time: str = "auto",
    filter_rule: str = "per-spectrum",
) -> Comparison:
    """Distances, tests, classes and verdicts between conditions, on all and on filtered spectra.

    Parameters
    ----------
    spectra : mapping condition -> sequence of Spectrum
        One spectrum per seed, the same number of seeds for every condition.
    pairs : mapping name -> (a, b), or sequence of (a, b), optional
        The compared pairs (default: every pair, named ``"a-b"``).
    pooled : mapping condition -> Spectrum, optional
        One spectrum per condition from all its runs (as the optimizer study reports).
    alpha : float in (0, 1)
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
        Also compare the filtered spectra and base the verdicts on them.
    filter_rule : {"per-spectrum", "shared-count"}, default "per-spectrum"
        How the filtered spectra are chosen: each by its own rule (:meth:`Spectrum.filtered`),
        or one number of eigenpairs for every spectrum of the comparison
        (:func:`conjugacy.comparison_filter.filter_for_comparison`: the median count the spectra
        support on their own), so that distances compare where the same number of modes are,
        not which modes survived. ``filter["rule"]["comparison"]`` records it.
    allow_differing : mapping setting -> reason, optional
        Fit settings (of :data:`conjugacy.stats.VERDICT_SETTINGS`) that differ between the
        conditions on purpose, with the reason (recorded in the results); any other difference
        makes every verdict "undecided".
    time : {"auto", "discrete", "continuous"}, default "auto"
        Compare eigenvalues or continuous-time exponents ``log(lambda) / dt``
        (:data:`conjugacy.compare.TIMES`), decided once for all spectra: ``"auto"`` is continuous
        when every spectrum carries ``settings["record_interval"]`` and they are not all equal.
        In continuous time a differing interval is no settings mismatch; a pair whose
        eigenvalues alias at its coarser interval (:func:`conjugacy.compare.aliasing`, on the
        spectra the verdict uses) is flagged: its verdict is "undecided", naming them.

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        If conditions hold different numbers of spectra, a pair names an unknown condition, or an
        argument is out of its domain.

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> rng = np.random.default_rng(0)
    >>> fit = lambda r: koopman_spectrum(np.cumsum(rng.standard_normal((2, 30, 3)), 1) * r, rank=3)
    >>> cmp = compare_conditions({"a": [fit(1) for _ in range(3)], "b": [fit(1) for _ in range(3)]})
    >>> cmp.verdict("a-b")  # 3 seeds each cannot give p < 0.05
    'undecided'
    """
    from ..compare import comparison_time
    from ..stats import verdict

    sizes = _check_args(spectra, shuffle, pooled)
    mode = comparison_time([s for v in spectra.values() for s in v], time)
    seed = check_int(seed, "seed", minimum=0)
    verdict(None, None, alpha)  # checks alpha
    conditions = list(spectra)
    named = _pairs(conditions, pairs)
    allowed = {str(k): str(v) for k, v in (allow_differing or {}).items()}
    opts = dict(seed=seed, n_permutations=n_permutations, n_shuffles=n_shuffles, shuffle=shuffle,
                ks=ks, p=p)
    all_cmp = _one_comparison(_timed(spectra, mode), named, _timed(pooled, mode), **opts)
    all_cmp["aliasing"] = _pair_aliasing(spectra, named, mode)
    filtered_cmp, filter_info = None, {"available": False, "rule": None}
    check_choice(filter_rule, "filter_rule", COMPARISON_FILTERS)
    if use_filter:
        fspec = {c: [filter_spectrum(s) for s in v] for c, v in spectra.items()}
        if all(s is not None for v in fspec.values() for s in v):  # one residual rule for all
            fspec = filter_for_comparison(spectra, filter_rule)
        fpooled = None if pooled is None else {c: filter_spectrum(s) for c, s in pooled.items()}
        if all(s is not None for v in fspec.values() for s in v):
            filtered_cmp = _filtered_block(fspec, fpooled, named, mode, opts)
            filter_info = _filter_info(spectra, fspec)
            if filtered_cmp["kept_nothing"]:
                filter_info["kept_nothing"] = _kept_nothing(fspec, fpooled)
    uses = "filtered" if filtered_cmp is not None else "all"
    kept = {c: [s for s in v if len(s.eigenvalues)] or v for c, v in fspec.items()} \
        if filtered_cmp is not None else spectra
    mismatch, pair_mismatch = _mismatch(kept, named, allowed, mode)
    tests = (filtered_cmp or all_cmp)["permutation_tests"]
    empty = (filtered_cmp or {}).get("kept_nothing", {})
    verdicts = {}
    for name in named:
        t = tests[name] or {}
        v = verdict(t.get("pvalue"), t.get("min_pvalue"), alpha, mismatch=pair_mismatch[name],
                    kept_nothing=empty.get(name, ()))
        verdicts[name] = {**v.to_dict(), "uses": uses}
    return Comparison(
        conditions=conditions, n_seeds=sizes[conditions[0]],
        pairs={k: list(v) for k, v in named.items()}, alpha=float(alpha),
        verdicts=verdicts, verdict_uses=uses, verdict_rule=verdict_rule(uses),
        filter=filter_info, all=all_cmp, filtered=filtered_cmp,
        settings_mismatch=mismatch, allowed_differences=allowed, time=mode,
    )


def verdict_rule(uses: str) -> str:
    """The verdict rule in words (:func:`conjugacy.stats.verdict`), for results and reports.

    Parameters
    ----------
    uses : str
        The spectra the verdicts use: ``"filtered"`` or ``"all"``.

    Returns
    -------
    str

    Examples
    --------
    >>> verdict_rule("filtered").endswith("computed on the filtered spectra, and conjugate "
    ...                                   "(no evidence against conjugacy) if not")
    True
    """
    return (
        "undecided if the spectra were fitted with different settings (delays, rank rule, PCA, "
        "scaling, method; the recording interval only when eigenvalues, not continuous-time "
        "exponents log(lambda)/dt, are compared), if eigenvalues alias at the coarser recording "
        "interval, if the residual filter kept no eigenpair of a compared spectrum (the pair "
        "then has no filtered distance), or if no p-value below alpha was attainable (too "
        "few seeds: the smallest attainable p, min_pvalue, is >= alpha); otherwise not conjugate "
        "if the permutation test on the per-seed spectra rejects at level alpha (p < alpha), "
        f"computed on the {uses} spectra, and conjugate (no evidence against conjugacy) if not"
    )
