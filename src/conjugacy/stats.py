"""Is a difference between Koopman spectra more than noise? Controls and tests.

- :func:`shuffle_control`: the paper's randomized shuffle control (appendix B), as published, with
  its caveat (it cannot detect a difference; see its docstring).
- :func:`conjugacy_test`: a sound two-sample permutation test on groups of spectra (e.g. one
  spectrum per independent seed for each condition), with an effect size in units of the
  seed-to-seed distance and the smallest p-value the group sizes allow. Use this one for inference.
- :func:`ks_test`: the paper's Kolmogorov-Smirnov comparison of per-seed distance distributions
  (a permutation p-value of the same statistic when distances tie).

Every function takes :class:`conjugacy.Spectrum` objects, filtered (``Spectrum.filtered()``) or
not, or plain eigenvalue arrays; distances are the scale-free exact ones of
:mod:`conjugacy.compare`.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as _sps

from ._checks import (
    as_numeric_array,
    check_choice,
    check_finite,
    check_int,
    check_ndim,
    check_seed,
    check_unit_interval,
)
from ._text import cut_list
from .compare import (
    _as_spectra_list,
    _in_time,
    _pairwise,
    aliasing,
    as_eigenvalues,
    check_p,
    comparison_time,
    freeze_fields,
    optimal_matching,
    wasserstein,
)

__all__ = [
    "VERDICT_SETTINGS",
    "ConjugacyTestResult",
    "KSResult",
    "ShuffleControlResult",
    "Verdict",
    "conjugacy_test",
    "settings_mismatch",
    "verdict",
    "ks_test",
    "min_pvalue",
    "shuffle_control",
]

#: Relative tolerance under which a shuffled (or permuted) value counts as equal to the observed
#: one: values computed from the same numbers in a different order differ by ~1e-16 relative, and
#: the linear program of unequal sizes is solved to ~1e-10.
TIE_RTOL = 1e-9


# ----- the paper's shuffle control ---------------------------------------------------------------
@dataclass(frozen=True, eq=False, repr=False)
class ShuffleControlResult:
    """Outcome of :func:`shuffle_control`.

    Attributes
    ----------
    fraction : float
        Fraction of shuffles whose distance is >= the true distance (ties within a relative
        tolerance of 1e-9 count), in [0, 1]. The paper reports it as a percentage.
    true_distance : float
        ``W_p`` between the two spectra as given.
    shuffled_distances : ndarray, float (n_shuffles,)
        ``W_p`` after each shuffle.
    n_shuffles : int
        Number of shuffles.

    Examples
    --------
    Made by :func:`shuffle_control`:

    >>> res = shuffle_control([0.9, 0.5, 0.1], [0.8, 0.5, 0.2], n_shuffles=50, seed=0)
    >>> res.fraction, round(res.true_distance, 4), res.shuffled_distances.shape
    (1.0, 0.0667, (50,))
    """

    fraction: float
    true_distance: float
    shuffled_distances: np.ndarray
    n_shuffles: int

    def __post_init__(self) -> None:
        freeze_fields(self, "shuffled_distances")

    def __repr__(self) -> str:
        return (
            f"ShuffleControlResult(fraction={self.fraction:.3g}, "
            f"true_distance={self.true_distance:.6g}, n_shuffles={self.n_shuffles})"
        )


def shuffle_control(
    a: Any, b: Any, *, n_shuffles: int = 100, seed: Any = None, p: float = 1,
    time: str = "auto",
) -> ShuffleControlResult:
    """The paper's randomized shuffle control (Redman et al. 2024, appendix B), as published.

    1. Match the two sets optimally (linear sum assignment on ``|a_i - b_j|**p``).
    2. For each matched pair, with probability 1/2 swap its two members between the sets.
    3. Recompute the distance (:func:`conjugacy.compare.wasserstein`, same ``p``).
    4. Report the fraction of shuffles whose distance is >= the true one.

    .. warning::
       This control cannot detect a difference. Swapping the two members of an optimally matched
       pair leaves the original matching feasible at exactly the same cost, so for equal sizes the
       shuffled distance can never exceed the true one: the fraction only counts shuffles that
       tie with the true distance (e.g. those that swap nothing, or swap only pairs whose
       exchange leaves the optimum unchanged). A small fraction is therefore no evidence of
       non-conjugacy. It is provided for fidelity to the paper; use :func:`conjugacy_test` (a
       permutation test on groups of spectra) for inference.

    Ties are decided with a relative tolerance: a shuffled distance counts as ``>=`` when it is
    ``>= true_distance * (1 - 1e-9)``, because the same optimum computed from the same points in
    a different order differs in the last bits.

    Unequal sizes: the matching is the rectangular assignment, which matches every eigenvalue of
    the smaller set to a distinct eigenvalue of the larger one; only those matched pairs are
    swapped, the unmatched eigenvalues of the larger set stay where they are, and both sets keep
    their sizes. The distance is the exact (mass-splitting) ``W_p``. With unequal sizes the
    guarantee above does not hold (the true plan is not a matching), so a shuffled distance may
    exceed the true one.

    Parameters
    ----------
    a, b : Spectrum or array_like, complex (n_a,), (n_b,)
    n_shuffles : int, default 100
        Number of random shuffles (the paper uses 100), >= 1.
    seed : None, int or numpy.random.Generator
        Source of randomness; the same seed gives the same result.
    p : float, default 1
        Order of the Wasserstein distance (the paper's text writes ``W_2`` but matches with
        ``p = 1`` costs; its code uses ``p = 1``).
    time : {"auto", "discrete", "continuous"}, default "auto"
        Shuffle eigenvalues or continuous-time exponents ``log(lambda) / dt``
        (:func:`conjugacy.compare.wasserstein_plan`).

    Returns
    -------
    ShuffleControlResult
        ``fraction``, ``true_distance``, ``shuffled_distances`` (n_shuffles,), ``n_shuffles``.

    Raises
    ------
    ValueError
        An empty or non-finite spectrum, ``n_shuffles < 1`` or ``p < 1``.

    References
    ----------
    Redman et al., *Identifying Equivalent Training Dynamics*, NeurIPS 2024, appendix B.

    Examples
    --------
    The shuffled distance never exceeds the optimally matched one, so the fraction counts ties:

    >>> shuffle_control([0.9, 0.5, 0.1], [0.8, 0.5, 0.2], n_shuffles=50, seed=0)
    ShuffleControlResult(fraction=1, true_distance=0.0666667, n_shuffles=50)
    """
    a, b = _in_time([a, b], [as_eigenvalues(a, "a"), as_eigenvalues(b, "b")], time, "spectra")
    p = check_p(p)
    n_shuffles = check_int(n_shuffles, "n_shuffles", minimum=1)
    rng = np.random.default_rng(check_seed(seed, generator=True))

    true_distance = wasserstein(a, b, p=p)
    rows, cols = optimal_matching(a, b, p=p)
    swaps = rng.random((n_shuffles, rows.size)) < 0.5
    shuffled = np.empty(n_shuffles)
    for k in range(n_shuffles):
        a_k, b_k = a.copy(), b.copy()
        r, c = rows[swaps[k]], cols[swaps[k]]
        a_k[r], b_k[c] = b[c], a[r]
        shuffled[k] = wasserstein(a_k, b_k, p=p)
    fraction = float(np.mean(shuffled >= true_distance * (1 - TIE_RTOL)))
    return ShuffleControlResult(fraction, true_distance, shuffled, n_shuffles)


# ----- permutation test on groups of spectra ----------------------------------------------------
@dataclass(frozen=True, eq=False, repr=False)
class ConjugacyTestResult:
    """Outcome of :func:`conjugacy_test`.

    Attributes
    ----------
    statistic : float
        Observed ``T = mean between-group distance - (mean within a + mean within b) / 2``, in the
        units of the eigenvalues.
    pvalue : float
        Permutation p-value (one-sided: large ``T`` is evidence of different dynamics).
    distance_matrix : ndarray, float (n_a + n_b, n_a + n_b)
        ``W_p`` between all spectra, group a first, then group b.
    n_permutations : int
        Number of relabelings the p-value is based on (all of them when ``exact``).
    null_distribution : ndarray, float (n_permutations,)
        ``T`` under each relabeling.
    exact : bool
        True when every relabeling was enumerated.
    effect_size : float
        ``T / mean_within``: how much farther apart spectra of different conditions are than
        spectra of independent seeds of one condition, in units of that noise floor (0: no farther;
        1: twice as far). ``inf`` when every within-group distance is 0 but ``T > 0``; 0 when all
        spectra coincide. Dimensionless.
    mean_between : float
        Mean distance between a spectrum of group a and one of group b.
    mean_within : float
        The noise floor: ``(mean within a + mean within b) / 2``, the mean distance between two
        spectra of the same condition (independent seeds).
    min_pvalue : float
        The smallest p-value this test could return with these group sizes and relabelings:
        ``2 / C(n_a + n_b, n_a)`` when exact with equal sizes (the statistic is symmetric in the
        two groups, so every split is counted twice; 3 vs 3: 0.1), ``1 / C(n_a + n_b, n_a)`` when
        exact with unequal sizes, ``1 / (1 + n_permutations)`` with random relabelings.
    n_a, n_b : int
        Number of spectra in each group.

    Examples
    --------
    Made by :func:`conjugacy_test`; three seeds per condition, eigenvalues given directly:

    >>> res = conjugacy_test([[0.9, 0.5], [0.91, 0.5], [0.9, 0.52]],
    ...                      [[0.8, 0.5], [0.81, 0.49], [0.8, 0.5]])
    >>> res.exact, res.n_permutations, res.n_a, res.n_b, round(res.min_pvalue, 3)
    (True, 20, 3, 3, 0.1)
    >>> res.distance_matrix.shape, bool(res.mean_between > res.mean_within), round(res.pvalue, 3)
    ((6, 6), True, 0.1)
    """

    statistic: float
    pvalue: float
    distance_matrix: np.ndarray
    n_permutations: int
    null_distribution: np.ndarray
    exact: bool
    effect_size: float
    mean_between: float
    mean_within: float
    min_pvalue: float
    n_a: int
    n_b: int

    def __post_init__(self) -> None:
        freeze_fields(self, "distance_matrix", "null_distribution")

    def __repr__(self) -> str:
        how = "exact" if self.exact else "random"
        return (
            f"ConjugacyTestResult(statistic={self.statistic:.4g}, pvalue={self.pvalue:.4g}, "
            f"effect_size={self.effect_size:.3g}, min_pvalue={self.min_pvalue:.3g}, "
            f"n_a={self.n_a}, n_b={self.n_b}, {how} over {self.n_permutations} relabelings)"
        )


def min_pvalue(n_a: int, n_b: int, n_permutations: int = 999) -> float:
    """Smallest p-value :func:`conjugacy_test` can return for groups of ``n_a`` and ``n_b`` spectra.

    With ``C = C(n_a + n_b, n_a) <= n_permutations`` every relabeling is enumerated; when
    ``n_a == n_b`` the statistic takes the same value for a split and for its mirror image (groups
    swapped), so the observed split always ties with its mirror and the smallest p-value is
    ``2 / C`` (2 vs 2: 1/3, 3 vs 3: 0.1, 4 vs 4: 1/35, 5 vs 5: 1/126); otherwise ``1 / C``
    (3 vs 4: 1/35). With random relabelings it is ``1 / (1 + n_permutations)``.

    Parameters
    ----------
    n_a, n_b : int
        Number of spectra (independent seeds) in each group, at least 2.
    n_permutations : int
        Random relabelings used when ``C(n_a + n_b, n_a)`` exceeds it.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If a group has fewer than 2 spectra or ``n_permutations < 1``.

    References
    ----------
    Phipson & Smyth, *Permutation p-values should never be zero*, Stat. Appl. Genet. Mol.
    Biol. 9(1), 2010 (``(b + 1) / (m + 1)`` for random relabelings).

    Examples
    --------
    >>> min_pvalue(3, 3), round(min_pvalue(4, 4), 4), min_pvalue(10, 10)
    (0.1, 0.0286, 0.001)
    """
    n_a = check_int(n_a, "n_a", minimum=2)
    n_b = check_int(n_b, "n_b", minimum=2)
    n_permutations = check_int(n_permutations, "n_permutations", minimum=1)
    n_total = math.comb(n_a + n_b, n_a)
    if n_total <= n_permutations:
        return (2 if n_a == n_b else 1) / n_total
    return 1 / (1 + n_permutations)


def _energy_statistics(d: np.ndarray, in_a: np.ndarray) -> np.ndarray:
    """``T`` for each row of the boolean label matrix ``in_a`` (n_relabelings, n)."""
    la = in_a.astype(float)
    lb = 1.0 - la
    n_a = la[0].sum()
    n_b = lb[0].sum()
    da = la @ d
    s_aa = np.einsum("kj,kj->k", da, la)  # ordered pairs i != j inside a (diagonal is zero)
    s_ab = np.einsum("kj,kj->k", da, lb)
    s_bb = np.einsum("kj,kj->k", lb @ d, lb)
    return s_ab / (n_a * n_b) - 0.5 * (s_aa / (n_a * (n_a - 1)) + s_bb / (n_b * (n_b - 1)))


def _permutation_test(
    statistic: Callable[[np.ndarray], np.ndarray], n: int, n_a: int, n_permutations: int,
    rng: np.random.Generator, *, tie: float, chunk: int,
) -> tuple[float, np.ndarray, float, bool]:
    """A two-sample permutation test of ``statistic`` (one value per row of a (k, n) boolean
    label array, True: in group a), the observed labelling being the first ``n_a`` of ``n``.

    Every relabelling when there are at most ``n_permutations`` (exact: ``p = count / total``),
    else ``n_permutations`` random ones (``p = (1 + count) / (1 + n_permutations)``), formed
    ``chunk`` at a time; ``count`` is the null statistics at least the observed one less
    ``tie``. Returns the observed statistic, the null distribution, p and whether it was exact.
    """
    observed = (np.arange(n) < n_a)[None, :]
    n_total = math.comb(n, n_a)
    exact = n_total <= n_permutations
    combos = itertools.combinations(range(n), n_a)
    null = []
    for start in range(0, n_total if exact else n_permutations, chunk):
        if exact:
            block = list(itertools.islice(combos, chunk))
            labels = np.zeros((len(block), n), dtype=bool)
            labels[np.repeat(np.arange(len(block)), n_a), np.concatenate(block)] = True
        else:
            k = min(chunk, n_permutations - start)
            labels = rng.permuted(np.repeat(observed, k, axis=0), axis=1)
        null.append(statistic(labels))
    stat, null = float(statistic(observed)[0]), np.concatenate(null)
    count = int(np.count_nonzero(null >= stat - tie))
    return stat, null, count / n_total if exact else (1 + count) / (1 + n_permutations), exact


def conjugacy_test(
    group_a: Any,
    group_b: Any,
    *,
    n_permutations: int = 999,
    seed: Any = None,
    p: float = 1,
    time: str = "auto",
) -> ConjugacyTestResult:
    """Permutation test: do two groups of spectra come from different training processes?

    Each group holds several spectra of one condition, e.g. one per independent seed. Under the
    null hypothesis the two conditions are the same process (conjugate dynamics), so all spectra
    are exchangeable and the group labels carry no information.

    Statistic. With ``D`` the matrix of Wasserstein distances ``W_p`` between all spectra,

        ``T = mean_{i in a, j in b} D_ij - (mean_{i != j in a} D_ij + mean_{i != j in b} D_ij) / 2``

    i.e. how much farther apart spectra of different conditions are than repeated runs of the same
    condition. This is half the energy distance (Szekely & Rizzo 2004) in the metric ``W_p``. It
    was chosen because it compares between-group to within-group spread on the scale of the
    distances themselves, needs no Euclidean embedding (unlike PERMANOVA's sums of squares), and is
    large for any kind of difference (location or spread of the eigenvalues). The test is
    one-sided: only large ``T`` is evidence against the null.

    Null distribution. ``D`` is computed once; labels are permuted on it. When the number of
    distinct relabelings ``C(n_a + n_b, n_a)`` is at most ``n_permutations``, all of them are
    enumerated (including the observed one) and ``pvalue = #{T_perm >= T_obs} / C`` is exact.
    Otherwise ``n_permutations`` random relabelings are drawn and
    ``pvalue = (1 + #{T_perm >= T_obs}) / (1 + n_permutations)``. Either way
    ``P(pvalue <= alpha) <= alpha`` under the null, whatever the distribution of the spectra.
    Values within a relative 1e-9 of ``T_obs`` count as ties (``>=``).

    Smallest attainable p-value (``result.min_pvalue``, :func:`min_pvalue`): ``1 / C`` for
    unequal group sizes, but ``2 / C`` for equal sizes, because ``T`` is symmetric in the two
    groups and the mirror image of the observed split (groups swapped) always ties with it. With
    3 spectra per group that is 2/20 = 0.1, so p <= 0.05 is impossible; 3 vs 4 allows 1/35, 4 vs 4
    2/70 = 1/35, 5 vs 5 2/252 = 1/126. With random relabelings it is ``1 / (1 + n_permutations)``.

    Effect size. ``effect_size = T / mean_within`` with ``mean_within = (mean within a + mean
    within b) / 2``, the noise floor of independent seeds: the statistic in units of the typical
    distance between two spectra of the same condition. The mean (not the standard deviation of
    the within-group distances) is used because with the few seeds of a typical study (2-5 per
    condition, i.e. 1-10 within-group distances per group) a standard deviation is unstable or 0,
    while the mean is the scale on which ``T`` itself is defined; ``effect_size + 1`` is the ratio
    of between- to within-condition distances.

    Parameters
    ----------
    group_a, group_b : sequence of Spectrum or array_like
        The spectra of each condition, at least two per group (within-group spread is needed):
        :class:`conjugacy.Spectrum` objects (e.g. ``Spectrum.filtered()`` ones) or eigenvalue
        arrays. Spectra may have different numbers of eigenvalues.
    n_permutations : int, default 999
        Number of random relabelings, >= 1.
    seed : None, int or numpy.random.Generator
        Source of randomness for the random relabelings; the same seed gives the same result.
    p : float, default 1
        Order of the Wasserstein distance.
    time : {"auto", "discrete", "continuous"}, default "auto"
        Compare eigenvalues or continuous-time exponents ``log(lambda) / dt``
        (:func:`conjugacy.compare.wasserstein_plan`), decided once for both groups: continuous
        when every spectrum carries ``settings["record_interval"]`` and they are not all equal.

    Returns
    -------
    ConjugacyTestResult
        ``statistic``, ``pvalue``, ``effect_size``, ``min_pvalue``, ``mean_between``,
        ``mean_within``, ``distance_matrix``, ``n_permutations``, ``null_distribution``,
        ``exact``, ``n_a``, ``n_b``.

    Raises
    ------
    ValueError
        A group with fewer than 2 spectra, an empty or non-finite spectrum (e.g. a filtered
        Spectrum with nothing left), ``n_permutations < 1`` or ``p < 1``; ``time="continuous"``
        without recording intervals (:class:`conjugacy.compare.AliasingError` when they alias).

    References
    ----------
    Székely & Rizzo, *Testing for equal distributions in high dimension*, InterStat 5, 2004
    (the energy statistic); Phipson & Smyth, *Permutation p-values should never be zero*,
    Stat. Appl. Genet. Mol. Biol. 9(1), 2010 (``(b + 1) / (m + 1)`` for random relabelings);
    Redman et al., *Identifying Equivalent Training Dynamics*, NeurIPS 2024 (the Wasserstein
    distance between Koopman spectra).

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> def runs(rates, seed):  # 8 noisy trajectories of x_{t+1} = diag(rates) x_t, 60 steps
    ...     rng = np.random.default_rng(seed)
    ...     x = rng.normal(size=(8, 1, 3)) * np.power(rates, np.arange(60)[:, None])
    ...     return x + 1e-3 * rng.normal(size=(8, 60, 3))
    >>> a = [koopman_spectrum(runs([0.9, 0.7, 0.5], s), rank=3) for s in range(4)]  # 4 seeds
    >>> b = [koopman_spectrum(runs([0.95, 0.7, 0.3], s), rank=3) for s in range(4, 8)]
    >>> result = conjugacy_test(a, b)  # exact: all 70 relabelings of 4 + 4 spectra
    >>> round(result.pvalue, 4), round(result.min_pvalue, 4), result.exact
    (0.0286, 0.0286, True)
    >>> c = [koopman_spectrum(runs([0.9, 0.7, 0.5], s), rank=3) for s in range(8, 12)]
    >>> bool(conjugacy_test(a, c).pvalue > 0.05)  # the same system: no evidence of a difference
    True
    """
    group_a, group_b = (list(g) if isinstance(g, Iterator) else g for g in (group_a, group_b))
    eig_a = _as_spectra_list(group_a, "group_a")
    eig_b = _as_spectra_list(group_b, "group_b")
    both = _in_time([*group_a, *group_b], eig_a + eig_b, time, "spectra")
    eig_a, eig_b = both[:len(eig_a)], both[len(eig_a):]
    for name, group in (("group_a", eig_a), ("group_b", eig_b)):
        if len(group) < 2:
            raise ValueError(
                f"{name} has {len(group)} spectrum; the permutation test needs at least 2 per "
                "group (e.g. one spectrum per independent seed)"
            )
    p = check_p(p)
    n_permutations = check_int(n_permutations, "n_permutations", minimum=1)
    rng = np.random.default_rng(check_seed(seed, generator=True))

    n_a, n_b = len(eig_a), len(eig_b)
    n = n_a + n_b
    d = _pairwise(eig_a + eig_b, p)
    # Statistics on distances divided by the largest: sums of distances near 1e308 cannot
    # overflow, and ties are decided relative to the data's scale.
    unit = float(d.max()) if d.max() > 0 else 1.0
    dn = d / unit
    t_obs, null, pvalue, exact = _permutation_test(  # one block of relabellings
        lambda labels: _energy_statistics(dn, labels), n, n_a, n_permutations, rng,
        tie=TIE_RTOL, chunk=n_permutations)
    iu_a = np.triu_indices(n_a, 1)
    iu_b = np.triu_indices(n_b, 1)
    within = 0.5 * float(dn[:n_a, :n_a][iu_a].mean()) + 0.5 * float(dn[n_a:, n_a:][iu_b].mean())
    effect = t_obs / within if within > 0 else math.inf if t_obs > 0 else 0.0
    mean_within = within * unit
    mean_between = float(dn[:n_a, n_a:].mean()) * unit
    t_obs *= unit
    null = null * unit
    return ConjugacyTestResult(
        statistic=t_obs,
        pvalue=float(pvalue),
        distance_matrix=d,
        n_permutations=int(null.size),
        null_distribution=null,
        exact=bool(exact),
        effect_size=float(effect),
        mean_between=mean_between,
        mean_within=mean_within,
        min_pvalue=min_pvalue(n_a, n_b, n_permutations),
        n_a=n_a,
        n_b=n_b,
    )


# ----- Kolmogorov-Smirnov ------------------------------------------------------------------------
@dataclass(frozen=True)
class KSResult:
    """Outcome of :func:`ks_test`.

    Attributes
    ----------
    statistic : float
        The KS statistic: sup distance between the two empirical CDFs (``"two-sided"``), or the
        one-sided sup of ``F_a - F_b`` (``"greater"``) or ``F_b - F_a`` (``"less"``), in [0, 1].
    pvalue : float
        Its p-value.
    method : str
        How the p-value was computed: ``"exact"`` or ``"asymptotic"`` (SciPy's distribution of
        the statistic, valid without ties), ``"exact permutation"`` (every split of the pooled
        sample enumerated) or ``"permutation"`` (random splits), used when there are ties.
    ties : bool
        Whether the pooled sample has repeated values.
    n_permutations : int
        Splits the permutation p-value is based on; 0 for SciPy's methods.

    Examples
    --------
    >>> ks_test([0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7, 0.8, 0.9, 1.0])
    KSResult(statistic=1.0, pvalue=0.0079365..., method='exact', ties=False, n_permutations=0)
    """

    statistic: float
    pvalue: float
    method: str = "exact"
    ties: bool = False
    n_permutations: int = 0


def _check_sample(x: Any, name: str) -> np.ndarray:
    arr = as_numeric_array(x, name, allow_complex=False)
    check_ndim(arr, name, (1,), "one distance per entry")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; at least one distance is required")
    check_finite(arr, name)
    return arr


def _ks_statistics(
    labels: np.ndarray, order: np.ndarray, ends: np.ndarray, n_a: int, alternative: str
) -> np.ndarray:
    """KS statistic for each row of ``labels`` (k, n) (True: the value belongs to sample a).

    ``order`` sorts the pooled values; ``ends`` are the sorted positions where a run of equal
    values ends, the only places where both empirical CDFs are evaluated (ties handled exactly).
    """
    n_b = labels.shape[1] - n_a
    count_a = np.cumsum(labels[:, order], axis=1, dtype=np.int64)[:, ends]
    count_b = (ends + 1)[None, :] - count_a
    diff = count_a / n_a - count_b / n_b  # F_a - F_b at each distinct value
    if alternative == "greater":
        return np.clip(diff.max(axis=1), 0.0, 1.0)
    if alternative == "less":
        return np.clip(-diff.min(axis=1), 0.0, 1.0) + 0.0  # + 0.0: no -0.0
    return np.abs(diff).max(axis=1)


def _ks_permutation(
    a: np.ndarray, b: np.ndarray, alternative: str, n_permutations: int, rng: np.random.Generator
) -> tuple[float, float, str, int]:
    n_a, n = a.size, a.size + b.size
    pooled = np.concatenate([a, b])
    order = np.argsort(pooled, kind="stable")
    sorted_values = pooled[order]
    ends = np.flatnonzero(np.append(sorted_values[1:] != sorted_values[:-1], True))
    stat, _, pvalue, exact = _permutation_test(
        lambda labels: _ks_statistics(labels, order, ends, n_a, alternative), n, n_a,
        n_permutations, rng, tie=1e-12, chunk=max(1, 2_000_000 // n))
    if exact:
        return stat, pvalue, "exact permutation", math.comb(n, n_a)
    return stat, pvalue, "permutation", n_permutations


def ks_test(
    distances_a: Any,
    distances_b: Any,
    *,
    alternative: str = "two-sided",
    n_permutations: int = 9999,
    seed: Any = None,
) -> KSResult:
    """Two-sample Kolmogorov-Smirnov test between two distributions of distances.

    The paper's comparison (fig. 3F): e.g. the per-seed Wasserstein distances between h = 5 and
    h = 40 networks against those between h = 10 and h = 40.

    Without ties this is ``scipy.stats.ks_2samp`` (its exact null distribution when both samples
    have at most 10,000 values, asymptotic otherwise). That null distribution assumes continuous
    data; with **ties** (a value repeated in the pooled sample, common for distances that are 0 or
    computed from shared spectra) it is wrong (measured: 0.234 where a permutation test of the
    same statistic gives 0.119). With ties the p-value is therefore a permutation p-value of the
    same statistic, valid for any data: every split of the pooled sample into sizes ``n_a`` and
    ``n_b`` is enumerated when there are at most ``n_permutations`` of them
    (``pvalue = #{D_split >= D_obs} / C(n_a + n_b, n_a)``), otherwise ``n_permutations`` random
    splits give ``(1 + #{D_split >= D_obs}) / (1 + n_permutations)``. ``result.method`` and
    ``result.ties`` say which was used.

    Either way the test assumes the distances within each sample are independent draws;
    distances from all pairs of a common set of spectra (as in fig. S4) are not independent, and
    the p-value is then optimistic.

    Parameters
    ----------
    distances_a, distances_b : array_like, float (n_a,), (n_b,)
        Non-empty, finite.
    alternative : {"two-sided", "less", "greater"}
        As in ``scipy.stats.ks_2samp``: ``"greater"`` uses ``sup (F_a - F_b)``, ``"less"``
        ``sup (F_b - F_a)``.
    n_permutations : int, default 9999
        With ties: enumerate every split when there are at most this many, else draw this many.
    seed : None, int or numpy.random.Generator
        Randomness of the random splits (ties, many splits only); same seed, same result.

    Returns
    -------
    KSResult
        ``statistic``, ``pvalue``, ``method``, ``ties``, ``n_permutations``.

    Raises
    ------
    ValueError, TypeError
        Empty, non-1-D, complex or non-finite samples; an unknown ``alternative``; bad
        ``n_permutations`` or ``seed``.

    References
    ----------
    Redman et al., *Identifying Equivalent Training Dynamics*, NeurIPS 2024 (the KS test on
    per-seed distances); :func:`scipy.stats.ks_2samp` (the statistic and its exact p-value).

    Examples
    --------
    Ties (0.2 appears in both samples) switch to an exact permutation p-value:

    >>> r = ks_test([0.1, 0.2, 0.2, 0.4], [0.2, 0.7, 0.8, 0.9], seed=0)
    >>> r.method, r.n_permutations, round(r.pvalue, 4)
    ('exact permutation', 70, 0.1429)
    """
    a = _check_sample(distances_a, "distances_a")
    b = _check_sample(distances_b, "distances_b")
    check_choice(alternative, "alternative", ("two-sided", "less", "greater"))
    n_permutations = check_int(n_permutations, "n_permutations", minimum=1)
    rng = np.random.default_rng(check_seed(seed, generator=True))
    pooled = np.concatenate([a, b])
    ties = bool(np.unique(pooled).size < pooled.size)
    if ties:
        stat, pvalue, method, used = _ks_permutation(a, b, alternative, n_permutations, rng)
        return KSResult(stat, float(pvalue), method, True, used)
    mode = "exact" if max(a.size, b.size) <= 10_000 else "asymp"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        res = _sps.ks_2samp(a, b, alternative=alternative, method=mode)
    for w in caught:
        if mode == "exact" and "switching to" in str(w.message).lower():
            mode = "asymp"  # SciPy could not compute the exact distribution
        else:
            warnings.warn(w.message, w.category, stacklevel=2)
    method = "exact" if mode == "exact" else "asymptotic"
    return KSResult(float(res.statistic), float(res.pvalue), method, False, 0)


# ----- the verdict rule (the one place where a comparison becomes a word) -------------------------
#: Fit settings that must agree between two spectra for their distance to measure the dynamics
#: rather than the settings: delay embedding, rank rule, PCA, scaling, DMD variant, and the
#: recording interval (``settings["record_interval"]``, written by the analysis pipeline; it may
#: differ when the comparison is in continuous time, see :func:`settings_mismatch`).
VERDICT_SETTINGS = ("delays", "rank_requested", "pca", "pca_center", "scale", "method",
                    "record_interval")


@dataclass(frozen=True)
class Verdict:
    """The verdict on one pair of conditions, and why.

    Attributes
    ----------
    verdict : {"not conjugate", "conjugate", "undecided"}
        ``"conjugate"`` means *no evidence against conjugacy* at level ``alpha``.
    reason : str
        One sentence: the p-value against alpha, the attainable p-value, or the settings that
        differ.
    pvalue, min_pvalue : float or None
        The permutation test's p-value and the smallest one its group sizes allow (None when
        there was no test).
    alpha : float

    Examples
    --------
    >>> v = verdict(0.01, 0.001)
    >>> v.verdict, v.reason
    ('not conjugate', 'p = 0.01 < alpha = 0.05')
    """

    verdict: str
    reason: str
    pvalue: float | None
    min_pvalue: float | None
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _setting(spectrum: Any, key: str) -> Any:
    if key == "method":
        return getattr(spectrum, "method", None)
    settings = getattr(spectrum, "settings", None) or {}
    return settings.get(key)


def settings_mismatch(spectra: Any, labels: Any = None, *, allow: Any = (),
                      time: str = "auto") -> list[str]:
    """The fit settings that differ between ``spectra`` (one sentence each; empty if none).

    When the comparison is in continuous time (``time``, resolved by
    :func:`conjugacy.compare.comparison_time`), a differing recording interval is not a mismatch
    (``log(lambda) / dt`` removes it); instead the aliasing guard's sentences
    (:func:`conjugacy.compare.aliasing`) are: eigenvalues that alias at the coarser interval make
    the verdict undecided.

    Parameters
    ----------
    spectra : sequence of Spectrum
    labels : sequence of str, optional
        A label per spectrum, used in the sentences (default ``"#0"``, ``"#1"``, ...).
    allow : iterable of str
        Settings of :data:`VERDICT_SETTINGS` allowed to differ (a study that varies them on
        purpose, e.g. delays scaled inversely with width in the paper's fig. 3).
    time : {"auto", "discrete", "continuous"}, default "auto"
        How the spectra are compared (the ``time`` of :func:`conjugacy_test`).

    Returns
    -------
    list of str

    Raises
    ------
    ValueError
        An unknown ``time``.

    References
    ----------
    Redman et al., *Identifying Equivalent Training Dynamics*, NeurIPS 2024 (spectra compared
    at the same delays, rank and observables).

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> x = np.random.default_rng(0).standard_normal((2, 40, 3))
    >>> settings_mismatch([koopman_spectrum(x, delays=1), koopman_spectrum(x, delays=2)])
    ['delays differs (#0: 1, #1: 2)']
    """
    spectra = list(spectra)
    labels = [f"#{i}" for i in range(len(spectra))] if labels is None else list(labels)
    allow = set(allow)
    unknown = allow - set(VERDICT_SETTINGS)
    if unknown:
        raise ValueError(f"allow names unknown settings {sorted(unknown)}; "
                         f"known: {list(VERDICT_SETTINGS)}")
    out = []
    continuous = comparison_time(spectra, time) == "continuous"
    for key in VERDICT_SETTINGS:
        if key in allow or (continuous and key == "record_interval"):
            continue
        values = [_setting(sp, key) for sp in spectra]
        if len({repr(v) for v in values}) > 1:
            shown = ", ".join(f"{lab}: {v}" for lab, v in zip(labels, values))
            out.append(f"{key} differs ({shown})")
    return out + (aliasing(spectra, labels) if continuous else [])


def verdict(pvalue: float | None, min_pvalue: float | None, alpha: float = 0.05, *,
            mismatch: Any = (), kept_nothing: Any = ()) -> Verdict:
    """The one verdict rule of the package, used by every route (API, studies, CLI, report).

    In order: **undecided** when the spectra were fitted with different settings (``mismatch``,
    from :func:`settings_mismatch`: the distance would partly measure the settings), when the
    residual filter kept no eigenpair of some compared spectrum (``kept_nothing``: no distance
    to an empty spectrum exists; the comparison of all eigenvalues is unaffected), or when
    there is no test (fewer than 2 seeds per condition) or its p-value is NaN; **not conjugate**
    when the permutation test (:func:`conjugacy_test`) rejects, ``p < alpha``; **undecided**
    when no p-value below ``alpha`` was attainable (``min_pvalue >= alpha``: too few seeds);
    otherwise **conjugate** (no evidence against conjugacy at level ``alpha``).

    Parameters
    ----------
    pvalue, min_pvalue : float or None
        ``ConjugacyTestResult.pvalue`` and ``.min_pvalue`` (None: no test).
    alpha : float in (0, 1)
    mismatch : sequence of str
        Settings that differ between the compared spectra.
    kept_nothing : sequence of str
        The compared spectra (e.g. ``"b seed 0"``) whose filter kept no eigenpair; the reason
        names the first 5.

    Returns
    -------
    Verdict

    Raises
    ------
    ValueError
        If ``alpha`` is not in (0, 1).
    TypeError
        If ``alpha`` is not a real number (a bool, a str).

    References
    ----------
    Phipson & Smyth, *Permutation p-values should never be zero*, Stat. Appl. Genet. Mol.
    Biol. 9(1), 2010 (``(b + 1) / (m + 1)`` for random relabelings); the rule and its reasons:
    ``docs/results.md``, "The verdict rule".

    Examples
    --------
    >>> verdict(0.1, 0.1, 0.05).verdict
    'undecided'
    >>> verdict(0.01, 0.001).verdict
    'not conjugate'
    >>> verdict(None, None, kept_nothing=["b seed 0"]).reason.split(":")[0]
    'the residual filter kept no eigenpair of b seed 0'
    """
    alpha = check_unit_interval(alpha, "alpha")
    p = None if pvalue is None else float(pvalue)
    pmin = None if min_pvalue is None else float(min_pvalue)
    mismatch = list(mismatch)
    if mismatch:
        return Verdict("undecided", "no verdict on spectra fitted with different settings: "
                       + "; ".join(mismatch), p, pmin, alpha)
    empty = [str(x) for x in kept_nothing]
    if empty:
        return Verdict("undecided", f"the residual filter kept no eigenpair of "
                       f"{', '.join(cut_list(empty, 5))}: no distance to an empty spectrum (the "
                       "comparison of all eigenvalues is in the 'all' block; relax the filter "
                       "or compare all eigenvalues)", p, pmin, alpha)
    if p is None:
        return Verdict("undecided", "no test: it needs at least 2 independent seeds per "
                       "condition", None, pmin, alpha)
    if not math.isfinite(p):
        return Verdict("undecided", f"the p-value is {p} (a distance was not finite)", p, pmin,
                       alpha)
    if p < alpha:
        return Verdict("not conjugate", f"p = {p:.3g} < alpha = {alpha:g}", p, pmin, alpha)
    if pmin is not None and pmin >= alpha:
        return Verdict("undecided", f"p = {p:.3g}, but the smallest attainable p is {pmin:.3g} "
                       f">= alpha = {alpha:g}: add seeds", p, pmin, alpha)
    return Verdict("conjugate", f"p = {p:.3g} >= alpha = {alpha:g}: no evidence against "
                   "conjugacy", p, pmin, alpha)
