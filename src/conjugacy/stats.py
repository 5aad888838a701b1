"""Is a difference between Koopman spectra more than noise? Controls and tests.

- :func:`shuffle_control`: the paper's randomized shuffle control (appendix B), as published, with
  its caveat (it cannot detect a difference; see its docstring).
- :func:`conjugacy_test`: a sound two-sample permutation test on groups of spectra (e.g. one
  spectrum per independent seed for each condition). Use this one for inference.
- :func:`ks_test`: the paper's Kolmogorov-Smirnov comparison of per-seed distance distributions.
"""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _sps
from scipy.optimize import linear_sum_assignment

from ._checks import as_numeric_array, check_choice, check_finite, check_int
from .compare import _as_spectra_list, _cost, _pairwise, as_eigenvalues, check_p, wasserstein

__all__ = [
    "ConjugacyTestResult",
    "KSResult",
    "ShuffleControlResult",
    "conjugacy_test",
    "ks_test",
    "shuffle_control",
]

#: Relative tolerance under which a shuffled (or permuted) value counts as equal to the observed
#: one: values computed from the same numbers in a different order differ by ~1e-16 relative, and
#: the linear program of unequal sizes is solved to ~1e-10.
TIE_RTOL = 1e-9


def _rng(seed: Any) -> np.random.Generator:
    if seed is None or isinstance(seed, np.random.Generator):
        return np.random.default_rng(seed)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be None, a non-negative int or a numpy Generator, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed}")
    return np.random.default_rng(int(seed))


def _frozen(arr: Any) -> np.ndarray:
    arr = np.array(arr, copy=True)
    arr.setflags(write=False)
    return arr


# ----- the paper's shuffle control ---------------------------------------------------------------
@dataclass(frozen=True, eq=False)
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
    """

    fraction: float
    true_distance: float
    shuffled_distances: np.ndarray
    n_shuffles: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "shuffled_distances", _frozen(self.shuffled_distances))


def shuffle_control(
    a: Any, b: Any, *, n_shuffles: int = 100, seed: Any = None, p: float = 1
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

    Returns
    -------
    ShuffleControlResult
        ``fraction``, ``true_distance``, ``shuffled_distances`` (n_shuffles,), ``n_shuffles``.
    """
    a = as_eigenvalues(a, "a")
    b = as_eigenvalues(b, "b")
    p = check_p(p)
    n_shuffles = check_int(n_shuffles, "n_shuffles", minimum=1)
    rng = _rng(seed)

    true_distance = wasserstein(a, b, p=p)
    rows, cols = linear_sum_assignment(_cost(a, b, p))
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
@dataclass(frozen=True, eq=False)
class ConjugacyTestResult:
    """Outcome of :func:`conjugacy_test`.

    Attributes
    ----------
    statistic : float
        Observed ``T = mean between-group distance - (mean within a + mean within b) / 2``.
    pvalue : float
        Permutation p-value (one-sided: large ``T`` is evidence of different dynamics).
    distance_matrix : ndarray, float (n_a + n_b, n_a + n_b)
        ``W_p`` between all spectra, group a first, then group b.
    n_permutations : int
        Number of relabelings the p-value is based on (all of them when ``exact``).
    null_distribution : ndarray, float (n_permutations,)
        ``T`` under each relabeling.
    exact : bool
        True when every distinct relabeling was enumerated.
    """

    statistic: float
    pvalue: float
    distance_matrix: np.ndarray
    n_permutations: int
    null_distribution: np.ndarray
    exact: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "distance_matrix", _frozen(self.distance_matrix))
        object.__setattr__(self, "null_distribution", _frozen(self.null_distribution))


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


def conjugacy_test(
    group_a: Any,
    group_b: Any,
    *,
    n_permutations: int = 999,
    seed: Any = None,
    p: float = 1,
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
    Values within a relative 1e-9 of ``T_obs`` count as ties (``>=``). The smallest attainable
    p-value is ``1 / C`` (exact) or ``1 / (1 + n_permutations)``: with 3 spectra per group it
    is 1/20, so use at least 4 per group to reach 0.05.

    Parameters
    ----------
    group_a, group_b : sequence of Spectrum or array_like
        The spectra of each condition, at least two per group (within-group spread is needed).
        Spectra may have different numbers of eigenvalues.
    n_permutations : int, default 999
        Number of random relabelings, >= 1.
    seed : None, int or numpy.random.Generator
        Source of randomness for the random relabelings; the same seed gives the same result.
    p : float, default 1
        Order of the Wasserstein distance.

    Returns
    -------
    ConjugacyTestResult
        ``statistic``, ``pvalue``, ``distance_matrix``, ``n_permutations``,
        ``null_distribution``, ``exact``.
    """
    eig_a = _as_spectra_list(group_a, "group_a")
    eig_b = _as_spectra_list(group_b, "group_b")
    for name, group in (("group_a", eig_a), ("group_b", eig_b)):
        if len(group) < 2:
            raise ValueError(
                f"{name} has {len(group)} spectrum; the permutation test needs at least 2 per "
                "group (e.g. one spectrum per independent seed)"
            )
    p = check_p(p)
    n_permutations = check_int(n_permutations, "n_permutations", minimum=1)
    rng = _rng(seed)

    n_a, n_b = len(eig_a), len(eig_b)
    n = n_a + n_b
    d = _pairwise(eig_a + eig_b, p)
    observed = np.zeros((1, n), dtype=bool)
    observed[0, :n_a] = True
    t_obs = float(_energy_statistics(d, observed)[0])

    n_total = math.comb(n, n_a)
    exact = n_total <= n_permutations
    if exact:
        labels = np.zeros((n_total, n), dtype=bool)
        for k, members in enumerate(itertools.combinations(range(n), n_a)):
            labels[k, list(members)] = True
    else:
        labels = rng.permuted(np.repeat(observed, n_permutations, axis=0), axis=1)
    null = _energy_statistics(d, labels)
    tol = TIE_RTOL * max(float(d.max()), np.finfo(float).tiny)
    count = int(np.count_nonzero(null >= t_obs - tol))
    pvalue = count / n_total if exact else (1 + count) / (1 + n_permutations)
    return ConjugacyTestResult(t_obs, float(pvalue), d, int(null.size), null, bool(exact))


# ----- Kolmogorov-Smirnov ------------------------------------------------------------------------
@dataclass(frozen=True)
class KSResult:
    """Outcome of :func:`ks_test`: the KS statistic (sup distance between the two empirical
    CDFs, in [0, 1]) and its p-value."""

    statistic: float
    pvalue: float


def _check_sample(x: Any, name: str) -> np.ndarray:
    arr = as_numeric_array(x, name, allow_complex=False)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of distances, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; at least one distance is required")
    check_finite(arr, name)
    return arr


def ks_test(distances_a: Any, distances_b: Any, *, alternative: str = "two-sided") -> KSResult:
    """Two-sample Kolmogorov-Smirnov test between two distributions of distances.

    The paper's comparison (fig. 3F): e.g. the per-seed Wasserstein distances between h = 5 and
    h = 40 networks against those between h = 10 and h = 40. A thin wrapper over
    ``scipy.stats.ks_2samp`` (exact p-value for small samples, asymptotic otherwise). It assumes
    the distances within each sample are independent draws; distances from all pairs of a common
    set of spectra (as in fig. S4) are not independent, and the p-value is then optimistic.

    Parameters
    ----------
    distances_a, distances_b : array_like, float (n_a,), (n_b,)
        Non-empty, finite.
    alternative : {"two-sided", "less", "greater"}
        As in ``scipy.stats.ks_2samp``.

    Returns
    -------
    KSResult
        ``statistic`` and ``pvalue``.
    """
    a = _check_sample(distances_a, "distances_a")
    b = _check_sample(distances_b, "distances_b")
    check_choice(alternative, "alternative", ("two-sided", "less", "greater"))
    res = _sps.ks_2samp(a, b, alternative=alternative)
    return KSResult(float(res.statistic), float(res.pvalue))
