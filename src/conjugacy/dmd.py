"""Dynamic mode decomposition on snapshot pairs: standard, exact and DMD-RRR.

Three ways to the same answer, chosen by :func:`conjugacy.koopman_spectrum`:

* :func:`dmd` -- the numerically stable dense path on explicit snapshot matrices X, Y
  (thin SVD of the column-scaled X, thin QR of ``[U_k, B_k]``);
* :func:`dmd_from_gram` -- the same algebra driven by the sample-side Gram matrices X*X, X*Y, Y*Y
  (weight trajectories: many features, few snapshots); it squares the condition number, so singular
  values below ~1e-8 s_1 are not resolved;
* :func:`dmd_from_factors` -- the same algebra from a truncated SVD (U_k, s_k, V_k) and B_k that a
  caller computed some other way (e.g. the structured subspace iteration of ``koopman_spectrum``).

All three end in :func:`_ritz_pairs`, which implements steps 4-8 of DMD-RRR (SPEC section 3;
Drmac, Mezic & Mohr, SIAM J. Sci. Comput. 40(4), 2018, Algorithm 2) on the small triangular factor
R of ``[U_k, B_k]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.linalg

METHODS = ("standard", "exact", "rrr")
#: The statistical rank rules a ``rank=`` argument accepts besides an int and None.
RANK_RULES = ("svht",)


@dataclass(frozen=True)
class DMDResult:
    """Raw output of one DMD fit (see :class:`conjugacy.Spectrum` for the public record).

    Attributes
    ----------
    eigenvalues : complex (k,)
    residuals : float (k,)        refined residuals for ``rrr``, plain otherwise
    plain_residuals : float (k,)  ``||A z_i - lambda_i z_i||`` for the plain Ritz vectors
    modes : complex (n, k) or None
    singular_values : float       singular values of the scaled X that were computed
    rank : int
    rayleigh_quotients : complex (k,) or None
    data_residuals : float (k,) or None  ResDMD residual of each eigenfunction on the data
    rank_rule : dict or None      the statistical rank rule's record (:func:`svht_rank`), if used

    Examples
    --------
    Made by :func:`dmd` from snapshot pairs (here a 2-D linear map, two trajectories):

    >>> import numpy as np
    >>> from conjugacy.observables import delay_embed
    >>> t = np.arange(20)[:, None]
    >>> X, Y = delay_embed(np.array([[1.0, 2.0], [3.0, -1.0]])[:, None] * np.power([0.9, 0.5], t))
    >>> r = dmd(X, Y, rank=2)
    >>> r.eigenvalues.real.round(6), r.rank, r.modes.shape, r.singular_values.shape
    (array([0.9, 0.5]), 2, (2, 2), (2,))
    """

    eigenvalues: np.ndarray
    residuals: np.ndarray
    plain_residuals: np.ndarray
    modes: np.ndarray | None
    singular_values: np.ndarray
    rank: int
    rayleigh_quotients: np.ndarray | None
    data_residuals: np.ndarray | None = None
    rank_rule: dict[str, Any] | None = None


EPS64 = float(np.finfo(np.float64).eps)


def default_tol(
    shape: tuple[int, int], eps: float = EPS64, fro_ratio: float = 1.0
) -> float:
    """Default relative rank tolerance (relative to ``s_1``).

    ``max(max(n, m) * eps64, eps * ||X||_F / s_1)``: the first term is the rule of
    ``numpy.linalg.matrix_rank`` for the float64 arithmetic (SPEC section 3 writes ``n * eps`` for
    the tall case, where the two agree); the second bounds the rounding of the *input* data
    (``eps`` its machine epsilon, float32 weights: 1.19e-7): rounding every entry perturbs X by
    ``||E||_2 <= ||E||_F <= eps ||X||_F``, so singular values below that are recording noise
    (Weyl's inequality). Unlike ``max(n, m) * eps32``, it does not grow with the size of the data
    (with 660,000 observables that would discard everything below 8 % of ``s_1``).
    ``fro_ratio`` is ``||X||_F / s_1``. For float64 input the first term dominates: the rule is
    ``matrix_rank``'s.

    Parameters
    ----------
    shape : (n, m)
        Shape of the snapshot matrix X.
    eps : float
        Machine epsilon of the input data (float64 by default).
    fro_ratio : float
        ``||X||_F / s_1`` (at least 1).

    Returns
    -------
    float

    References
    ----------
    :func:`numpy.linalg.matrix_rank` (the float64 term); Golub & Van Loan, *Matrix
    Computations*, 4th ed., 2013 (numerical rank, Weyl's inequality).

    Examples
    --------
    >>> float(default_tol((3, 195)))  # float64 data: matrix_rank's rule, 195 * eps64
    4.3298697960381105e-14
    >>> float(default_tol((3, 195), eps=1.1920929e-07, fro_ratio=1.2))  # float32 weights
    1.43051148e-07
    """
    return max(max(shape) * EPS64, eps * fro_ratio)


@lru_cache(maxsize=256)
def marchenko_pastur_median(beta: float) -> float:
    """Median of the Marchenko-Pastur law of aspect ratio ``beta`` in (0, 1] (unit variance).

    The law's density is ``sqrt((b+ - t)(t - b-)) / (2 pi beta t)`` on ``[b-, b+]``,
    ``b± = (1 ± sqrt(beta))^2``; the median is the root of its CDF minus 1/2, by SciPy
    (``quad`` to 1e-13, ``brentq`` to 1e-14). ``beta = 1``: 0.6493 (Gavish & Donoho 2014).
    """
    import scipy.integrate
    import scipy.optimize

    lo, hi = (1 - np.sqrt(beta)) ** 2, (1 + np.sqrt(beta)) ** 2

    def density(t: float) -> float:
        return float(np.sqrt(max((hi - t) * (t - lo), 0.0)) / (2 * np.pi * beta * t))

    def cdf_minus_half(x: float) -> float:
        return scipy.integrate.quad(density, lo, x, epsabs=1e-13, epsrel=1e-13, limit=200)[0] - 0.5

    return float(scipy.optimize.brentq(cdf_minus_half, lo, hi, xtol=1e-14, rtol=1e-14))


def svht_omega(beta: float) -> float:
    """Gavish-Donoho coefficient ``omega(beta)`` of the optimal hard threshold, noise unknown.

    ``omega(beta) = lambda*(beta) / sqrt(mu_beta)`` with ``lambda*(beta) = sqrt(2 (beta + 1) +
    8 beta / (beta + 1 + sqrt(beta^2 + 14 beta + 1)))`` and ``mu_beta`` the Marchenko-Pastur
    median (:func:`marchenko_pastur_median`): the exact value, not the paper's cubic fit
    ``0.56 beta^3 - 0.95 beta^2 + 1.82 beta + 1.43`` (off by up to 0.011 at small beta).
    ``omega(1) = 2.8584``. Source: Gavish & Donoho, IEEE Trans. Inf. Theory 60(8), 2014, eq. (4)
    and Table I.

    Parameters
    ----------
    beta : float in (0, 1]
        Aspect ratio ``min(n, m) / max(n, m)``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        ``beta`` outside (0, 1].

    References
    ----------
    Gavish & Donoho, *The optimal hard threshold for singular values is 4/sqrt(3)*, IEEE
    Trans. Inf. Theory 60(8), 2014, eq. (4) and Table I.

    Examples
    --------
    >>> round(svht_omega(1.0), 4), round(svht_omega(0.5), 4)
    (2.8584, 2.1712)
    """
    if not 0 < beta <= 1:
        raise ValueError(f"beta must lie in (0, 1] (min(m, n) / max(m, n)), got {beta!r}")
    beta = float(round(beta, 12))  # cache key: equal shapes give the same float
    lam = np.sqrt(2 * (beta + 1) + 8 * beta / (beta + 1 + np.sqrt(beta**2 + 14 * beta + 1)))
    return float(lam / np.sqrt(marchenko_pastur_median(beta)))


#: Relative level (times ``s_1``) at or below which SVHT (:func:`svht_rank`) counts a singular
#: value as zero (a constant or duplicated channel, not noise): the level every path resolves.
#: Singular values read from a Gram's eigenvalues (the Gram, streamed and subspace paths) carry
#: an absolute error of ~``sqrt(eps64) s_1``: measured on delay matrices with constant and
#: duplicated channels (43-1,518 rows, 171-1,596 columns, 0 and 2 delays), their exact zeros
#: came out at 1.0e-8 to 2.9e-8 ``s_1`` (the dense SVD: 2e-16 to 9e-16). Not higher: the float32
#: output weights of a digits MLP (2,240 x 57 at 6 delays) have a continuous tail of singular
#: values down to 1.7e-7 ``s_1`` (``sqrt(max(n, m) eps64)``, 7e-7 there, cut it).
SVHT_ZERO_RTOL = 1e-7


def svht_rank(singular_values: np.ndarray, shape: tuple[int, int]) -> tuple[int, dict[str, Any]]:
    """Rank by the Gavish-Donoho optimal hard threshold for an unknown noise level (SVHT).

    Keeps the singular values above ``tau = omega(beta) * median(s)`` (:func:`svht_omega`: the
    exact coefficient), the median over the ``r`` numerically nonzero singular values of the
    (n, m) matrix and ``beta = r / max(n, m)``: Gavish-Donoho on the r x max(n, m) matrix that
    carries the data. Exact zeros (constant or duplicated channels, at most
    :data:`SVHT_ZERO_RTOL` ``* s_1``) carry no noise, so a median over all ``min(n, m)``
    values would read the threshold from them: on 10 noisy channels with 30 constant ones
    that median was ~1e-16 ``s_1`` on the dense path and ~1e-8 ``s_1`` from a Gram (thresholds
    7 orders of magnitude apart, every direction kept). Over the nonzero ones the rank of
    duplicated channels equals that of the channels once, and for full-rank data
    (``r = min(n, m)``) this is the textbook rule. When the nonzero values hold no noise bulk
    (:func:`_noise_bulk`: fewer than half within the Marchenko-Pastur support around their
    median; exact low-rank data, or noise below what a Gram resolves, e.g. float32 rounding)
    and zeros are most of the spectrum (``2 r < min(n, m)``), there is nothing to threshold:
    every nonzero value is kept (``tau`` = the zero level). Where most values are nonzero the
    rule thresholds them as without zeros, bulk or not: SGD's weight noise is not white and fails
    the bulk test, and softmax output layers have exact zero directions (each hidden unit's
    column sum is conserved), which made every nonzero value kept there (issue 20 review).
    Measured: 10 noisy channels (a rank-4 system, 5 % noise) with 30 constant channels or
    duplicated 4 times, 0-4 delays, 10 seeds: the rank of the channels alone (+1 for the
    constant direction) in 90 of 90 cases, dense = Gram (the median over all values: 14-97
    kept); noiseless rank 2-6 systems (float64 and float32), 0 and 3 delays: the exact rank on
    dense, Gram and covariance paths in 40 of 40. The one implementation every path of
    :func:`conjugacy.koopman_spectrum` uses (``rank="svht"``): dense SVD, the Gram path and
    streamed data (singular values from the full eigenvalue spectrum of the delay Gram), the
    subspace path (from the Gram of the smaller side, computed first).

    Parameters
    ----------
    singular_values : ndarray, float, descending
        At least ``min(shape)`` values; only the first ``min(shape)`` are used (a Gram of
        ``m > n`` columns has ``m - n`` further eigenvalues that are rounding noise).
    shape : (n, m)
        Shape of the matrix (for the delay matrix: (n_observables, n_pairs)).

    Returns
    -------
    k : int
        Number of singular values strictly above ``tau`` (0 for a zero matrix).
    record : dict
        ``rule`` ("svht"), ``threshold`` (tau, in the units of ``s``), ``omega``, ``beta``,
        ``median_singular_value``, ``n_singular_values`` (``min(n, m)``), ``n_nonzero`` (r),
        ``zero_cutoff`` (relative to ``s_1``), ``noise_bulk`` (False: no bulk, every nonzero
        value kept), ``n_above`` (= k), ``omega_source``, and
        ``note`` (a sentence, only when some singular values were zero).

    Raises
    ------
    ValueError
        Fewer than ``min(shape)`` singular values (the median needs all of them).

    Examples
    --------
    >>> import numpy as np
    >>> k, rec = svht_rank(np.array([10.0, 5.0, 1.0, 1.0, 0.9]), (5, 5))
    >>> k, round(rec["threshold"], 4)
    (2, 2.8584)
    >>> k, rec = svht_rank(np.array([10.0, 5.0, 1.0, 1.0, 0.9, 0.0, 0.0]), (7, 7))  # 2 zeros
    >>> k, rec["n_nonzero"], round(rec["beta"], 4), round(rec["median_singular_value"], 4)
    (2, 5, 0.7143, 1.0)

    References
    ----------
    Gavish & Donoho, *The optimal hard threshold for singular values is 4/sqrt(3)*, IEEE
    Trans. Inf. Theory 60(8), 2014.
    """
    n_min, n_max = min(int(shape[0]), int(shape[1])), max(int(shape[0]), int(shape[1]))
    s = np.asarray(singular_values, float)
    if n_min < 1 or s.size < n_min:
        raise ValueError(
            f"singular_values: SVHT needs all min(n, m) = {n_min} singular values of the "
            f"{shape[0]} x {shape[1]} matrix (the median over all of them), got {s.size}"
        )
    s = np.maximum(s[:n_min], 0.0)
    cutoff = SVHT_ZERO_RTOL
    r = max(int(np.count_nonzero(s > cutoff * s[0])), 1)
    omega = svht_omega(r / n_max)
    median = float(np.median(s[:r]))
    tau = omega * median
    # the noiseless case (every nonzero value is signal) is exact low rank: zeros are most of
    # the spectrum. Where most values are nonzero they are the data's noise, white or not
    # (SGD's is not: the bulk test fails on it), as without zeros
    bulk = 2 * r >= n_min or (r > 1 and _noise_bulk(s[:r], r / n_max))  # one value: no bulk
    if not bulk:  # noiseless data: nothing to threshold, every nonzero value is signal
        tau = cutoff * float(s[0])
    k = int(np.count_nonzero(s > tau)) if s[0] > 0 else 0
    record = {"rule": "svht", "threshold": tau, "omega": omega, "beta": r / n_max,
              "median_singular_value": median, "n_singular_values": n_min, "n_nonzero": r,
              "zero_cutoff": cutoff, "noise_bulk": bool(bulk), "n_above": k,
              "omega_source": "exact: Marchenko-Pastur median by SciPy quad + brentq"}
    if r < n_min and s[0] > 0:
        record["note"] = (
            f"{n_min - r} of {n_min} singular values are zero (at most {cutoff:.1e} s_1: "
            "constant or duplicated channels, or noise below what a Gram resolves): " + (
                f"SVHT took its median and beta over the {r} nonzero ones" if bulk else
                f"no noise bulk among the {r} nonzero ones (fewer than half of them within "
                "the Marchenko-Pastur support around their median), so every one was kept"))
    return k, record


#: Slack on the Marchenko-Pastur support in :func:`_noise_bulk` (finite-size fluctuations).
BULK_SLACK = 0.1


def _noise_bulk(s: np.ndarray, beta: float) -> bool:
    """Whether more than half of the singular values ``s`` (all nonzero) of an r x M matrix,
    ``beta = r / M``, lie within the Marchenko-Pastur support of pure noise whose median is
    theirs, ``[(1 - sqrt(beta)), (1 + sqrt(beta))] / sqrt(mu_beta)`` times the median, widened
    by :data:`BULK_SLACK`: SVHT's premise (at least half of them noise). Exact low-rank data
    without noise (3 signal values of spread 0.6-1) have none but the median there."""
    mu = marchenko_pastur_median(float(round(min(beta, 1.0), 12)))
    median = float(np.median(s))
    lo = (1 - np.sqrt(beta)) / np.sqrt(mu) * median * (1 - BULK_SLACK)
    hi = (1 + np.sqrt(beta)) / np.sqrt(mu) * median * (1 + BULK_SLACK)
    return 2 * int(np.count_nonzero((s >= lo) & (s <= hi))) > s.size


def select_rank(
    s: np.ndarray,
    rank: int | str | None,
    tol: float | None,
    shape: tuple[int, int],
    eps: float = EPS64,
    fro: float | None = None,
) -> int:
    """Number of modes to keep from singular values ``s`` (descending).

    ``rank=None``: count of ``s_i > tol * s_1``. ``rank=int``: ``min(rank, numerical rank)``, so
    directions that carry no data (``s_i <= tol * s_1``) are never divided by. ``rank="svht"``:
    :func:`svht_rank` (``s`` must then hold all ``min(shape)`` values), at most the numerical rank
    and at least 1 when the data are not zero (a matrix of pure noise keeps its largest direction;
    :func:`svht_rank`'s record says ``n_above = 0``). ``fro`` is ``||X||_F`` when ``s`` holds only
    the leading singular values (else computed from ``s``).

    Parameters
    ----------
    s : ndarray, float, descending
    rank : int, "svht" or None
    tol : float or None
        Relative tolerance; default :func:`default_tol`.
    shape : (n, m)
        Shape of the matrix whose singular values ``s`` are.
    eps : float
        Machine epsilon of the input data.
    fro : float, optional
        ``||X||_F``.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        ``rank="svht"`` with fewer than ``min(shape)`` singular values.

    References
    ----------
    Gavish & Donoho, *The optimal hard threshold for singular values is 4/sqrt(3)*, IEEE
    Trans. Inf. Theory 60(8), 2014 (``rank="svht"``).

    Examples
    --------
    >>> import numpy as np
    >>> s = np.array([10.0, 1.0, 1e-17])  # the third direction carries no data
    >>> select_rank(s, None, None, (3, 195)), select_rank(s, 3, None, (3, 195))
    (2, 2)
    """
    if s.size == 0 or s[0] <= 0:
        return 0
    if tol is None:
        fro = float(np.sqrt(np.sum(np.square(s / s[0])))) * s[0] if fro is None else fro
        tol = default_tol(shape, eps, fro / s[0])
    # never more than min(n, m): a Gram matrix of m > n columns has m - n eigenvalues that are
    # rounding noise (~eps s_1^2), whose square roots (~1e-8 s_1) can pass the tolerance
    numerical = min(int(np.count_nonzero(s > tol * s[0])), min(shape))
    if rank == "svht":
        return max(min(svht_rank(s, shape)[0], numerical), min(numerical, 1))
    return numerical if rank is None else min(rank, numerical)


def _empty(svals: np.ndarray, n: int, with_modes: bool) -> DMDResult:
    e = np.zeros(0)
    return DMDResult(
        e.astype(complex), e, e, np.zeros((n, 0), complex) if with_modes else None, svals, 0, None
    )


def column_weights(col_norms: np.ndarray, scale: bool) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the columns kept and their weights (1/||x_j|| when scaling, else 1).

    Zero columns are dropped when scaling (step 1 of DMD-RRR); they carry no direction.

    Parameters
    ----------
    col_norms : ndarray, float (m,)
        ``||X[:, j]||`` of each column.
    scale : bool

    Returns
    -------
    keep : ndarray, int
    weights : ndarray, float (len(keep),)

    References
    ----------
    Drmač, Mezić & Mohr, *Data driven modal decompositions: analysis and enhancements*,
    SIAM J. Sci. Comput. 40(4), 2018, Algorithm 2 (DMD-RRR), step 1.

    Examples
    --------
    >>> import numpy as np
    >>> column_weights(np.array([2.0, 0.0, 4.0]), True)
    (array([0, 2]), array([0.5 , 0.25]))
    """
    if scale:
        keep = np.flatnonzero(col_norms > 0)
        return keep, 1.0 / col_norms[keep]
    return np.arange(col_norms.size), np.ones(col_norms.size)


def dmd(
    X: np.ndarray,
    Y: np.ndarray,
    *,
    method: str = "rrr",
    rank: int | str | None = None,
    tol: float | None = None,
    scale: bool = False,
    modes: bool = True,
    eps: float = EPS64,
    rank_shape: tuple[int, int] | None = None,
) -> DMDResult:
    """DMD of the snapshot pairs (X, Y) on the dense, numerically stable path.

    Parameters
    ----------
    X, Y : ndarray (n, m)
        Snapshot matrices; column j of Y is the image of column j of X. Must be finite.
    method : {"standard", "exact", "rrr"}
    rank : int, "svht" or None
        Keep the top ``rank`` modes (never more than the numerical rank); None: tolerance rule;
        ``"svht"``: the optimal hard threshold (:func:`svht_rank`), recorded in ``rank_rule``.
    tol : float or None
        Relative singular value tolerance; default ``max(n, m) * eps``.
    scale : bool, default False
        Scale each column pair by ``1/||X[:, j]||`` first (step 1 of DMD-RRR). Opt-in: with more
        pairs than observables the scaled fit is a *weighted* least-squares problem and its
        eigenvalues differ from plain DMD's; only for consistent pairs (``Y = A X`` with X of full
        column rank) does it change nothing but the rank decision.
    modes : bool
        Compute the DMD modes.
    eps : float
        Machine epsilon of the input data, for the default tolerance.
    rank_shape : (n, m), optional
        Shape of the matrix whose singular values ``X`` has, for ``rank="svht"`` (its aspect
        ratio): e.g. that of the delay matrix before a QR compression of its features, which
        keeps the singular values but not the shape. Default: ``X``'s.

    Returns
    -------
    DMDResult

    Raises
    ------
    Nothing of its own
        An internal routine: :func:`conjugacy.koopman_spectrum` validates the data and
        arguments before calling it.

    References
    ----------
    Drmač, Mezić & Mohr, *Data driven modal decompositions: analysis and enhancements*, SIAM J. Sci.
    Comput. 40(4), 2018, Algorithm 2 (DMD-RRR); Tu et al., *On dynamic mode decomposition: theory
    and applications*, J. Comput. Dyn. 1(2), 2014 (exact DMD); Schmid, *Dynamic mode decomposition
    of numerical and experimental data*, J. Fluid Mech. 656, 2010 (projected DMD).

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy.observables import delay_embed
    >>> t = np.arange(40)[:, None]  # 5 trajectories of x_{t+1} = diag(0.9, 0.8, 0.5) x_t
    >>> runs = np.random.default_rng(0).normal(size=(5, 1, 3)) * np.power([0.9, 0.8, 0.5], t)
    >>> X, Y = delay_embed(runs)
    >>> result = dmd(X, Y, rank=3)
    >>> result.eigenvalues.real.round(6), result.rank, bool(result.residuals.max() < 1e-10)
    (array([0.9, 0.8, 0.5]), 3, True)
    >>> dmd(X, Y, method="exact", rank=3).eigenvalues.real.round(6)  # the same Ritz values
    array([0.9, 0.8, 0.5])
    """
    return dmd_at_ranks(X, Y, (rank,), method=method, tol=tol, scale=scale, modes=modes,
                        eps=eps, rank_shape=rank_shape)[0]


def dmd_at_ranks(
    X: np.ndarray,
    Y: np.ndarray,
    ranks: Sequence[int | str | None],
    *,
    method: str = "rrr",
    tol: float | None = None,
    scale: bool = False,
    modes: bool = True,
    eps: float = EPS64,
    rank_shape: tuple[int, int] | None = None,
) -> list[DMDResult]:
    """:func:`dmd` at several ranks from one SVD of X: the fit at each rank is the truncation
    of the same factorization (``U_k``, ``s_k``, ``V_k`` and the products with Y are leading
    columns of those at the largest rank), so it equals :func:`dmd` at that rank.

    Parameters
    ----------
    X, Y, method, tol, scale, modes, eps, rank_shape
        As :func:`dmd`.
    ranks : sequence of (int, "svht" or None)
        One result per entry, in order (each as :func:`dmd`'s ``rank``).

    Returns
    -------
    list of DMDResult

    Raises
    ------
    Nothing of its own
        An internal routine (see :func:`dmd`).

    References
    ----------
    Drmač, Mezić & Mohr, SIAM J. Sci. Comput. 40(4), 2018, Algorithm 2 (DMD-RRR).

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy.observables import delay_embed
    >>> rng = np.random.default_rng(0)
    >>> X, Y = delay_embed(np.cumsum(rng.standard_normal((3, 40, 6)), axis=1), 1)
    >>> two, four = dmd_at_ranks(X, Y, (2, 4))
    >>> bool(np.allclose(four.eigenvalues, dmd(X, Y, rank=4).eigenvalues, rtol=1e-12))
    True
    """
    n, _ = X.shape
    keep, w = column_weights(np.linalg.norm(X, axis=0), scale)
    Xs, Ys = X[:, keep] * w, Y[:, keep] * w
    if Xs.shape[1] == 0:
        return [_empty(np.zeros(0), n, modes) for _ in ranks]
    U, s, Vh = np.linalg.svd(Xs, full_matrices=False)
    shapes = [Xs.shape if rank_shape is None or r != "svht" else (int(rank_shape[0]), Xs.shape[1])
              for r in ranks]
    ks = [select_rank(s, r, tol, shape, eps) for r, shape in zip(ranks, shapes)]
    top = max(ks)
    yv = Ys @ Vh[:top].conj().T  # Y V_k for the largest k; each k takes its leading columns
    uy = U[:, :top].conj().T @ Ys  # U_k^* Y likewise (rows)

    def fit(k: int) -> DMDResult:  # B_k = Y V_k S_k^-1 = A U_k (step 3), U_k^* X = S_k V_k^*
        sk = s[:k]
        return dmd_from_factors(U[:, :k], sk, yv[:, :k] / sk, s, method=method, modes=modes,
                                real=not np.iscomplexobj(X), px=sk[:, None] * Vh[:k], py=uy[:k])

    return [with_rank_rule(fit(k), r, s, shape) if k else _empty(s, n, modes)
            for r, shape, k in zip(ranks, shapes, ks)]


def with_rank_rule(
    result: DMDResult, rank: int | str | None, s: np.ndarray, shape: tuple[int, int]
) -> DMDResult:
    """``result`` with the record of a statistical rank rule (``rank="svht"``: the threshold from
    all ``min(shape)`` singular values ``s`` of the (n, m) matrix, :func:`svht_rank`).

    Parameters
    ----------
    result : DMDResult
    rank : int, "svht" or None
        Only ``"svht"`` adds a record; other values return ``result`` unchanged.
    s : ndarray, float, descending
    shape : (n, m)

    Returns
    -------
    DMDResult

    Raises
    ------
    ValueError
        As :func:`svht_rank`.

    References
    ----------
    Gavish & Donoho, *The optimal hard threshold for singular values is 4/sqrt(3)*, IEEE
    Trans. Inf. Theory 60(8), 2014.

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy.observables import delay_embed
    >>> t = np.arange(40)[:, None]  # 5 trajectories of x_{t+1} = diag(0.9, 0.8, 0.5) x_t
    >>> runs = np.random.default_rng(0).normal(size=(5, 1, 3)) * np.power([0.9, 0.8, 0.5], t)
    >>> X, Y = delay_embed(runs)
    >>> result = with_rank_rule(dmd(X, Y), "svht", np.linalg.svd(X, compute_uv=False), X.shape)
    >>> result.rank_rule["rule"]
    'svht'
    """
    return replace(result, rank_rule=svht_rank(s, shape)[1]) if rank == "svht" else result


def dmd_from_factors(
    Uk: np.ndarray,
    sk: np.ndarray,
    Bk: np.ndarray,
    singular_values: np.ndarray,
    *,
    method: str,
    modes: bool,
    real: bool,
    px: np.ndarray | None = None,
    py: np.ndarray | None = None,
    grams: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> DMDResult:
    """Steps 4-8 of DMD-RRR given ``U_k`` (n, k, orthonormal columns), ``s_k`` and ``B_k = A U_k``.

    ``px = U_k^* X`` and ``py = U_k^* Y`` (k, m), when given, yield the ResDMD data residuals;
    so do their (k, k) Grams ``grams = (px px^*, px py^*, py py^*)`` (:func:`data_residuals_from_grams`)
    when only the feature-side covariances were formed.

    Parameters
    ----------
    Uk : ndarray (n, k)
    sk : ndarray, float (k,)
    Bk : ndarray (n, k)
    singular_values : ndarray, float
        All singular values that were computed (recorded in the result).
    method : {"standard", "exact", "rrr"}
    modes : bool
    real : bool
        The data are real (conjugate pairs are kept exactly conjugate).
    px, py : ndarray (k, m), optional
    grams : tuple of three ndarray (k, k), optional
        Used when ``px`` is None.

    Returns
    -------
    DMDResult

    Raises
    ------
    Nothing of its own
        An internal routine: :func:`conjugacy.koopman_spectrum` validates the data and
        arguments before calling it.

    References
    ----------
    Drmač, Mezić & Mohr, *Data driven modal decompositions: analysis and enhancements*,
    SIAM J. Sci. Comput. 40(4), 2018, Algorithm 2 (DMD-RRR), steps 4-8.

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy.observables import delay_embed
    >>> t = np.arange(40)[:, None]  # 5 trajectories of x_{t+1} = diag(0.9, 0.8, 0.5) x_t
    >>> runs = np.random.default_rng(0).normal(size=(5, 1, 3)) * np.power([0.9, 0.8, 0.5], t)
    >>> X, Y = delay_embed(runs)
    >>> U, s, Vh = np.linalg.svd(X, full_matrices=False)
    >>> Bk = Y @ Vh.conj().T / s  # A U_k = Y V_k S_k^-1
    >>> result = dmd_from_factors(U, s, Bk, s, method="rrr", modes=False, real=True)
    >>> result.eigenvalues.real.round(6)
    array([0.9, 0.8, 0.5])
    """
    k = Uk.shape[1]
    # Step 4: thin QR of [U_k, B_k]. R11 is diagonal with unit-modulus entries because U_k has
    # orthonormal columns; the Rayleigh quotient is S_k = conj(diag(R11)) * R12.
    R = np.linalg.qr(np.concatenate([Uk, Bk], axis=1), mode="r")
    r11 = np.diag(R[:k, :k]).copy()
    r11 /= np.abs(r11)
    R12, R22 = R[:k, k:], R[k:, k:]
    pairs = _sorted(_ritz_pairs(r11, R12, R22, refine=method == "rrr", real=real))
    mode_matrix = _modes(method, pairs, lambda W: Uk @ W, lambda W: Bk @ W) if modes else None
    data_res = None
    if px is not None:
        data_res = data_residuals(pairs.eigenvalues, pairs.left, px, py)
    elif grams is not None:
        data_res = data_residuals_from_grams(pairs.eigenvalues, pairs.left, *grams)
    return _result(pairs, mode_matrix, singular_values, k, method, data_res)


def dmd_from_gram(gxx: np.ndarray, gxy: np.ndarray, gyy: np.ndarray, *,
                  rank: int | str | None = None, **options: Any) -> tuple[DMDResult, float]:
    """DMD from the sample-side Gram matrices ``X*X``, ``X*Y`` and ``Y*Y`` (each (m, m)) at one
    rank: :func:`dmd_from_gram_at_ranks` with ``ranks=(rank,)`` (the same result, bit for bit).

    The SVD of the scaled X comes from the eigendecomposition of its Gram matrix, and the R factor
    of ``[U_k, B_k]`` from its 2k x 2k Gram matrix ``[[I, S_k], [S_k^*, B_k^* B_k]]``: R11 = I,
    R12 = S_k and R22 is a square root of the Schur complement ``B_k^* B_k - S_k^* S_k``.
    Squaring the condition number means singular values below ~1e-8 * s_1 and residuals below
    ~1e-8 * ||B_k|| are not resolved.

    Parameters
    ----------
    gxx, gxy, gyy : ndarray (m, m) or blocks
        As :func:`dmd_from_gram_at_ranks`.
    rank : int, "svht" or None
        The rank (see :func:`select_rank`).
    **options
        The keywords of :func:`dmd_from_gram_at_ranks` (``method``, ``tol``, ``scale``,
        ``shape``, ``eps``, ``x_times``, ``y_times``, ``real``, ``overwrite``).

    Returns
    -------
    result : DMDResult
    resolution : float
        ``s_k / s_1`` of the last kept mode; the caller should not trust the Gram path when this is
        below ~1e-7.

    Raises
    ------
    Nothing of its own
        An internal routine: :func:`conjugacy.koopman_spectrum` validates the data and
        arguments before calling it.

    References
    ----------
    Drmač, Mezić & Mohr, *Data driven modal decompositions: analysis and enhancements*, SIAM J. Sci.
    Comput. 40(4), 2018, Algorithm 2 (DMD-RRR); Sirovich, *Turbulence and the dynamics of coherent
    structures*, Q. Appl. Math. 45, 1987 (the method of snapshots).

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy.observables import delay_embed
    >>> t = np.arange(40)[:, None]  # 5 trajectories of x_{t+1} = diag(0.9, 0.8, 0.5) x_t
    >>> runs = np.random.default_rng(0).normal(size=(5, 1, 3)) * np.power([0.9, 0.8, 0.5], t)
    >>> X, Y = delay_embed(runs)
    >>> from conjugacy.observables import delay_grams, snapshot_gram
    >>> gxx, gxy, gyy = delay_grams(*snapshot_gram(list(runs)), delays=0)
    >>> result, resolution = dmd_from_gram(gxx, gxy, gyy, rank=3, shape=X.shape)
    >>> result.eigenvalues.real.round(6), bool(resolution > 1e-7)
    (array([0.9, 0.8, 0.5]), True)
    """
    return dmd_from_gram_at_ranks(gxx, gxy, gyy, (rank,), **options)[0]


def dmd_from_gram_at_ranks(
    gxx: np.ndarray,
    gxy: np.ndarray,
    gyy: np.ndarray,
    ranks: Sequence[int | str | None],
    *,
    method: str = "rrr",
    tol: float | None = None,
    scale: bool = False,
    shape: tuple[int, int] | None = None,
    eps: float = EPS64,
    x_times: Callable[[np.ndarray], np.ndarray] | None = None,
    y_times: Callable[[np.ndarray], np.ndarray] | None = None,
    real: bool = True,
    overwrite: bool = False,
) -> list[tuple[DMDResult, float]]:
    """:func:`dmd_from_gram` at several ranks from one eigendecomposition of ``X*X``: the top
    eigenpairs are computed once for the largest rank (all of them for a rule) and each rank
    takes the leading ones, with the (k, m) products with ``X*Y`` and ``Y*Y`` formed once.

    Parameters
    ----------
    gxx, gxy, gyy : ndarray (m, m)
        The Grams; ``gxy`` and ``gyy`` may also be blocks used in products only (an object with
        ``lmul(A) = A @ G`` and ``shape``, e.g. :class:`conjugacy.observables.GramBlock`), so
        that they need not be formed.
    ranks : sequence of (int, "svht" or None)
        One result per entry, in order.
    method : {"rrr", "exact", "standard"}
    tol, eps : float
        The rank tolerance (see :func:`select_rank`) and the data's machine epsilon.
    scale : bool
        Scale each snapshot pair by ``1 / ||x_j||`` first.
    shape : (n, m) of X, for the default tolerance.
    x_times, y_times : callables ``V (m, j) -> X V`` and ``V -> Y V`` (unscaled data), used only
        to form modes; omit both to skip modes.
    real : bool
        Real data: conjugate pairs are kept exactly conjugate.
    overwrite : bool
        Scale the Gram matrices in place (they are then garbage); saves their memory.

    Returns
    -------
    list of (DMDResult, float)
        As :func:`dmd_from_gram` returns, one per rank.

    Raises
    ------
    Nothing of its own
        An internal routine (see :func:`dmd_from_gram`).

    References
    ----------
    As :func:`dmd_at_ranks` (DMD-RRR), in the Gram matrices.

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy.observables import delay_grams, snapshot_gram
    >>> runs = np.cumsum(np.random.default_rng(0).standard_normal((3, 40, 6)), axis=1)
    >>> grams = delay_grams(*snapshot_gram(list(runs)), delays=1)
    >>> [(r.rank, round(res, 3)) for r, res in dmd_from_gram_at_ranks(*grams, (2, 4))]
    [(2, 0.614), (4, 0.203)]
    """
    m = gxx.shape[0]
    keep, w = column_weights(np.sqrt(np.maximum(np.real(np.diag(gxx)), 0.0)), scale)
    if keep.size == 0:
        return [(_empty(np.zeros(0), 0, False), 1.0) for _ in ranks]

    def scaled(g):
        # D G D restricted to the kept columns, in place when allowed (the Grams are the largest
        # arrays of this path); a block used only in products (GramBlock) is never copied.
        if hasattr(g, "lmul"):
            return _ScaledBlock(g, keep, w if scale else None)
        if keep.size < m:
            g = g[np.ix_(keep, keep)]
        elif not overwrite:
            g = g.copy()
        if scale:  # unscaled: the weights are ones
            g *= w[:, None]
            g *= w[None, :]
        return g

    gxx_s, gxy_s, gyy_s = scaled(gxx), scaled(gxy), scaled(gyy)
    del gxx, gxy, gyy
    fro = float(np.sqrt(max(np.real(np.trace(gxx_s)), 0.0)))  # ||X_s||_F, for the rank rule
    # SVHT needs every singular value (their median): the full eigenvalue spectrum of the Gram,
    # ~m^3, of the order of forming the delay Grams from the snapshot Gram
    ints = all(isinstance(r, int) for r in ranks)  # a rule or None needs every eigenvalue
    evals, V = top_eigh(gxx_s, max(ranks) if ints else None)  # type: ignore[type-var]
    s = np.sqrt(np.maximum(evals, 0.0))
    shape = (shape[0], keep.size) if shape is not None else (keep.size, keep.size)
    ks = [select_rank(s, r, tol, shape, eps, fro=fro) for r in ranks]
    top = max(ks)
    Vt = V[:, :top].copy()
    del V
    vgy = _lmul(Vt.conj().T, gxy_s)  # V^* X^* Y (top, m): each k takes its leading rows
    vgyy = _lmul(Vt.conj().T, gyy_s) @ Vt  # V^* Y^* Y V (top, top)
    del gxx_s, gxy_s, gyy_s

    def fit(k: int) -> DMDResult:  # U_k^* Y = S_k^-1 V_k^* X^* Y
        sk = s[:k]
        return _gram_result(Vt[:, :k], sk, s, vgy[:k] / sk[:, None], vgyy[:k, :k] / np.outer(sk, sk),
                            method=method, real=real, m=m, keep=keep, w=w, x_times=x_times,
                            y_times=y_times)

    return [(with_rank_rule(fit(k), r, s, shape), float(s[k - 1] / s[0])) if k
            else (_empty(s, 0, False), 1.0) for r, k in zip(ranks, ks)]


def _gram_result(Vk: np.ndarray, sk: np.ndarray, s: np.ndarray, py: np.ndarray, BB: np.ndarray,
                 *, method: str, real: bool, m: int, keep: np.ndarray, w: np.ndarray,
                 x_times: Any, y_times: Any) -> DMDResult:
    """Steps 4-8 of DMD-RRR on the Gram path at rank k: ``Vk`` the top eigenvectors of the
    scaled ``X*X``, ``py = U_k^* Y``, ``BB = B_k^* B_k``."""
    k = sk.size
    px = sk[:, None] * Vk.conj().T  # U_k^* X = S_k V_k^*
    S = (py @ Vk) / sk[None, :]  # U_k^* B_k
    schur = BB - S.conj().T @ S
    schur = (schur + schur.conj().T) / 2
    ev, W = np.linalg.eigh(schur)
    R22 = np.sqrt(np.maximum(ev, 0.0))[:, None] * W.conj().T
    pairs = _sorted(_ritz_pairs(np.ones(k), S, R22, refine=method == "rrr", real=real))
    mode_matrix = None
    if x_times is not None and y_times is not None:
        # U_k = X_s V_k S_k^-1 and B_k = Y_s V_k S_k^-1, formed only as needed (n x k).
        full = np.zeros((m, k), dtype=Vk.dtype)
        full[keep] = Vk * w[:, None]
        mode_matrix = _modes(
            method,
            pairs,
            lambda Wm: x_times(full @ (Wm / sk[:, None])),
            lambda Wm: y_times(full @ (Wm / sk[:, None])),
        )
    data_res = data_residuals(pairs.eigenvalues, pairs.left, px, py)
    return _result(pairs, mode_matrix, s, k, method, data_res)


def _lmul(A: np.ndarray, g) -> np.ndarray:
    """``A @ g`` for an array or a block used in products only (``lmul``)."""
    return g.lmul(A) if hasattr(g, "lmul") else A @ g


class _ScaledBlock:
    """``D G D`` restricted to the kept columns, of a block ``G`` with ``lmul``, in products."""

    def __init__(self, block, keep: np.ndarray, w: np.ndarray | None):
        self.block, self.keep, self.w = block, keep, w

    def lmul(self, A: np.ndarray) -> np.ndarray:
        m = self.block.shape[0]
        if self.w is not None:
            A = A * self.w[None, :]
        if self.keep.size < m:
            full = np.zeros((A.shape[0], m), dtype=A.dtype)
            full[:, self.keep] = A
            A = full
        out = self.block.lmul(A)
        if self.keep.size < m:
            out = out[:, self.keep]
        if self.w is not None:
            out *= self.w[None, :]
        return out


#: :func:`top_eigh` takes the top-k eigenpairs of a Gram larger than this by Lanczos (ARPACK).
#: Measured (one thread, k = 10-21): Lanczos 4-5x faster than the dense selected-eigenpair
#: driver from m = 600 on random-walk Grams (0.008 s against 0.05 s at m = 1,000; 0.09-0.15 s
#: against 1.0-1.1 s at 2,500), 1.3-2x on white-noise Grams (no clear gap), never slower.
LANCZOS_MIN_SIZE = 500
#: Lanczos eigenpairs are kept when ``||G v_i - lambda_i v_i|| <= LANCZOS_RTOL * lambda_1``
#: for every one of them (LAPACK's dense driver reaches ~m eps lambda_1)
LANCZOS_RTOL = 1e-11


def top_eigh(g: np.ndarray, k: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of the Hermitian ``g`` (m, m), largest first: all of them when ``k`` is None,
    else (at least) the top ``k``.

    The top ``k`` of a large matrix (``m > LANCZOS_MIN_SIZE``, ``k`` below ``m / 4``) come from
    Lanczos (``scipy.sparse.linalg.eigsh``, a fixed start vector, so the result is
    deterministic): ``m^2`` work per iteration instead of LAPACK's full tridiagonal reduction
    (``m^3``; 8.4 s against 0.5 s at m = 4,670, k = 21). They are checked by their
    residuals ``||g v_i - lambda_i v_i|| <= LANCZOS_RTOL * lambda_1`` and by orthonormality, and
    recomputed by the dense driver (``scipy.linalg.eigh(subset_by_index)``) when either fails or
    ARPACK does not converge. Smaller problems use the dense driver directly.

    Parameters
    ----------
    g : ndarray (m, m)
        Hermitian (e.g. a Gram matrix).
    k : int or None
        Number of leading eigenpairs wanted; None: all.

    Returns
    -------
    w : ndarray, float
        Eigenvalues, decreasing.
    v : ndarray (m, len(w))
        Orthonormal eigenvectors as columns.

    References
    ----------
    Lehoucq, Sorensen & Yang, *ARPACK Users' Guide*, SIAM 1998 (implicitly restarted Lanczos).

    Examples
    --------
    >>> import numpy as np
    >>> w, v = top_eigh(np.diag([1.0, 5.0, 3.0]), 2)  # a small matrix: the dense driver, all 3
    >>> w
    array([5., 3., 1.])
    """
    m = g.shape[0]
    if k is None or 4 * k >= m:
        evals, V = np.linalg.eigh(g)
        return evals[::-1], V[:, ::-1]
    if m > LANCZOS_MIN_SIZE:
        found = _lanczos_top(g, k)
        if found is not None:
            return found
    evals, V = scipy.linalg.eigh(g, subset_by_index=[m - k, m - 1])
    return evals[::-1], V[:, ::-1]


def capped_svht(
    g: np.ndarray, shape: tuple[int, int], cap: int
) -> tuple[int, np.ndarray, np.ndarray]:
    """``min(max(1, SVHT rank), cap)`` of an (n, m) matrix X from its Gram ``g`` (``X^* X`` or
    ``X X^*``), with the top eigenpairs of ``g``, computing every eigenvalue only when the top
    ``cap`` do not decide it.

    SVHT (:func:`svht_rank`) keeps the singular values above ``omega(r / max(n, m)) *
    median(s)``, the median over the ``r`` nonzero ones, so it needs every eigenvalue of ``g``
    (a full ``eigvalsh``, ~``m^3``) although a capped rank needs only the top ``cap``. But
    ``r >= r_lo = cap + T^2 / Q`` (Cauchy-Schwarz), ``T`` the sum of the nonzero eigenvalues
    beyond the top ``cap`` and ``Q`` that of their squares (bounds from the deflated ``g -
    V_cap diag(lambda) V_cap^*``, ~``q^2 cap``), or, where that does not settle it, ``r`` is
    at least the number of eigenvalues above 16 times the zero level or ``q eps lambda_1``
    (the inertia of a Cholesky or ``LDL^*`` factorization, ~``q^3 / 3``: 0.04-0.10 s against
    ``eigvalsh``'s 0.21 s at q = 1,500). So the median is at most ``s_j``, ``j = ceil(r_lo /
    2)``, with ``(j - cap) s_j^2 <= T``; ``omega`` grows with beta, so ``omega(p / max(n, m))``
    bounds it. When
    ``s_cap`` exceeds ``omega * sqrt(T / (j - cap))`` at least ``cap`` singular values are
    above the threshold, and the capped rank is ``cap`` from the top ``cap`` eigenpairs alone
    (:func:`top_eigh`: Lanczos on a large ``g``). Otherwise (or when ``j <= cap``) every
    eigenvalue is computed and the exact rule applied. Either way the same rank as
    ``min(max(1, svht_rank(s, shape)[0]), cap)`` on all singular values (0 for a zero
    matrix). Measured on weight trajectories (a small CNN's 1,418 parameters, 5 runs of 300
    steps, 0-64 delays, SVHT ranks 526-627), with the median over all ``p`` values: the bound
    settled cap 70 at every delay with a margin of 2-3x. With the nonzero count
    (``benchmarks/bench_svht_zeros.py``: SGD-like walks of 1,418 weights, 5 x 301 steps, 0-64
    delays, one thread): still settled from the top 70 at every delay, at 0.86-0.89 of one
    ``eigvalsh``'s CPU (Cholesky) and 1.8 at 0 delays (``LDL^*``, the Gram of the larger side),
    where the former bound took 0.55-0.65 and every eigenvalue plus the top 70 ~1.5.

    Parameters
    ----------
    g : ndarray (q, q)
        Hermitian Gram of X (q = m for ``X^* X``, n for ``X X^*``).
    shape : (n, m)
        Shape of X (SVHT's aspect ratio and ``p``).
    cap : int >= 1

    Returns
    -------
    k : int
    evals : ndarray, float
        The top eigenvalues of ``g``, decreasing (at least ``k``; all of them when every one
        was computed).
    vectors : ndarray (q, len(evals))
        Their orthonormal eigenvectors.

    Raises
    ------
    Nothing of its own
        ``g`` must be Hermitian with finite entries.

    References
    ----------
    SVHT's: as :func:`svht_rank` (Gavish & Donoho 2014).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((300, 40)) @ rng.standard_normal((40, 400)) * 10
    >>> X += rng.standard_normal((300, 400))  # 40 strong directions in noise
    >>> k, evals, V = capped_svht(X.T @ X, X.shape, 10)
    >>> k, len(evals)  # the top 10 decide it: no full eigendecomposition
    (10, 10)
    >>> k == min(svht_rank(np.linalg.svd(X, compute_uv=False), X.shape)[0], 10)
    True
    """
    p, q = min(int(shape[0]), int(shape[1])), g.shape[0]
    half = -(-p // 2)
    if cap < half and 4 * cap < q:
        evals, V = top_eigh(g, cap)
        top = np.sqrt(np.maximum(evals, 0.0))
        if top[0] <= 0:
            return 0, evals, V
        bound = _capped_svht_bound(g, evals[:cap], V[:, :cap], shape)
        if top[cap - 1] > bound:
            return cap, evals, V
        s = np.sqrt(np.maximum(np.linalg.eigvalsh(g)[::-1], 0.0))
    else:
        evals, V = top_eigh(g, None)
        s = np.sqrt(np.maximum(evals, 0.0))
        if s[0] <= 0:
            return 0, evals, V
    return min(max(1, svht_rank(s, shape)[0]), cap), evals, V


def _capped_svht_bound(
    g: np.ndarray, top: np.ndarray, V: np.ndarray, shape: tuple[int, int]
) -> float:
    """An upper bound on SVHT's threshold from the top ``cap`` eigenpairs (``top``, ``V``) of
    the Gram ``g`` of an (n, m) matrix (:func:`capped_svht`); inf when it cannot be bounded.
    The nonzero count ``r`` first by Cauchy-Schwarz on the deflated ``g - V diag(top) V^*``
    (~``q^2 cap``), then, only when that bound does not settle the capped rank, by the inertia
    of ``g`` less 16 times the larger of the zero level and ``q eps lambda_1``
    (:func:`_count_above`, ~``q^3 / 3``)."""
    p, q, cap = min(int(shape[0]), int(shape[1])), g.shape[0], top.size
    top = np.maximum(top, 0.0)
    rest = g - (V * top[None, :]) @ V.conj().T  # the eigenvalues beyond the top cap
    trace = float(np.real(np.trace(rest)))
    # rounding: a Lanczos pair's residual is at most LANCZOS_RTOL * lambda_1 (top_eigh)
    err = (3 * np.sqrt(cap) * LANCZOS_RTOL + q * EPS64) * float(top[0])
    squares = (float(np.linalg.norm(rest)) + err) ** 2  # >= their sum of squares
    zero = SVHT_ZERO_RTOL**2 * float(top[0])  # an eigenvalue at most this is zero
    nonzero = trace - cap * err - (q - cap) * zero  # <= the sum of the nonzero ones beyond cap
    tail = max(trace, 0.0) + cap * err  # >= the sum of the eigenvalues beyond cap
    omega = svht_omega(p / max(int(shape[0]), int(shape[1])))  # omega grows with beta, r <= p

    def bound(r_lo: int) -> float:
        j = -(-min(r_lo, p) // 2)  # the median of the r >= r_lo nonzero values is at most s_j
        return omega * float(np.sqrt(tail / (j - cap))) if j > cap else np.inf

    found = bound(cap + int(nonzero**2 / squares) if nonzero > 0 else cap)  # Cauchy-Schwarz
    if np.sqrt(top[cap - 1]) > found:
        return found
    # above the factorization's backward error (~q eps lambda_1) too: a lower bound on r
    return bound(_count_above(g, 16 * max(zero, q * EPS64 * float(top[0])), p))


def _count_above(g: np.ndarray, shift: float, p: int) -> int:
    """How many eigenvalues of the Hermitian ``g`` exceed ``shift`` (less the factorization's
    backward error, ~``q eps ||g||``), at most ``p``: ``p`` when ``g - shift I`` has a Cholesky
    factor (``q = p``), else the positive inertia of its Bunch-Kaufman ``LDL^*`` (Sylvester's law
    of inertia). Measured at q = 1,500 (one thread): Cholesky 0.04 s, LDL 0.08-0.10 s,
    ``eigvalsh`` 0.21 s."""
    shifted = g - shift * np.eye(g.shape[0], dtype=g.dtype)
    if g.shape[0] == p:
        try:
            scipy.linalg.cholesky(shifted, lower=True, check_finite=False)
            return p
        except np.linalg.LinAlgError:
            pass
    d = scipy.linalg.ldl(shifted, lower=True, hermitian=True, check_finite=False)[1]
    diag, off = np.real(np.diag(d)), np.diag(d, -1)
    second = np.concatenate([[False], off != 0])  # row i closes a 2 x 2 block (i - 1, i)
    first = np.concatenate([second[1:], [False]])  # row i opens one
    single = ~(first | second)
    count = int(np.count_nonzero(diag[single] > 0))
    i = np.flatnonzero(first)
    det = diag[i] * diag[i + 1] - np.abs(off[i]) ** 2
    count += int(np.count_nonzero(det < 0)) + 2 * int(np.count_nonzero((det > 0) & (diag[i] > 0)))
    return min(count, p)


def _lanczos_top(g: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    import scipy.sparse.linalg

    m = g.shape[0]
    v0 = np.random.default_rng(0).standard_normal(m).astype(g.dtype)
    try:
        evals, V = scipy.sparse.linalg.eigsh(g, k=k, which="LA", v0=v0, tol=0)
    except (scipy.sparse.linalg.ArpackNoConvergence, scipy.sparse.linalg.ArpackError):
        return None
    order = np.argsort(evals)[::-1]
    evals, V = evals[order], V[:, order]
    top = float(abs(evals[0])) if evals.size else 0.0
    if not (np.all(np.isfinite(evals)) and top > 0):
        return None
    resid = np.linalg.norm(g @ V - V * evals, axis=0)
    gram = V.conj().T @ V
    if resid.max() > LANCZOS_RTOL * top or np.abs(gram - np.eye(k)).max() > 1e-10:
        return None
    return evals, V


@dataclass(frozen=True)
class _Pairs:
    eigenvalues: np.ndarray
    vectors: np.ndarray  # plain Ritz vectors in U_k coordinates (k, k), unit columns
    left: np.ndarray  # left eigenvectors of S_k (k, k): column l_i with l_i^* S_k = lambda_i l_i^*
    plain_residuals: np.ndarray
    refined_vectors: np.ndarray | None
    refined_residuals: np.ndarray | None
    rayleigh: np.ndarray | None


#: memory of one batch of the refinement's matrices M(lambda) and their SVD (bytes)
_REFINE_BATCH_BYTES = 64 * 2**20


def _ritz_pairs(
    r11: np.ndarray, R12: np.ndarray, R22: np.ndarray, *, refine: bool, real: bool
) -> _Pairs:
    """Steps 4-7 of DMD-RRR on the R factor of ``[U_k, B_k]`` (R11 = diag(r11), |r11| = 1)."""
    S = np.conj(r11)[:, None] * R12
    # step 5; LAPACK geev normalises columns to unit norm. The left eigenvectors (same call, same
    # order) give the eigenfunctions whose data residuals ResDMD measures.
    lam, L, W = scipy.linalg.eig(S, left=True, right=True)
    k = lam.size
    cdtype = np.result_type(R12.dtype, np.complex128)

    def stacked(lams: np.ndarray) -> np.ndarray:
        # M(lambda) = [R12 - lambda R11; R22], one (k + p, k) matrix per lambda.
        top = R12[None, :, :] - lams[:, None, None] * np.diag(r11)[None, :, :]
        bottom = np.broadcast_to(R22, (lams.size,) + R22.shape)
        return np.concatenate([top, bottom.astype(cdtype)], axis=1)

    # Step 6: residuals r_i = ||M(lambda_i) w_i|| = ||A z_i - lambda_i z_i||, without forming
    # the k matrices M(lambda_i) (k^3 numbers: 13 GiB at k = 960).
    top = R12 @ W - (r11[:, None] * W) * lam[None, :]
    plain = np.sqrt(np.sum(np.abs(top) ** 2, axis=0) + np.sum(np.abs(R22 @ W) ** 2, axis=0))
    if not refine:
        return _Pairs(lam, W, L, plain, None, None, None)

    # Step 7: refined Ritz vectors: right singular vector of the smallest singular value of
    # M(lambda_i), in batches of at most ~64 MiB of matrices. For real data refine one member of
    # each conjugate pair and conjugate.
    todo = np.flatnonzero(lam.imag >= 0) if real else np.arange(k)
    ref_vec = np.empty((k, k), dtype=cdtype)
    ref_res = np.empty(k)
    batch = max(1, _REFINE_BATCH_BYTES // (16 * (k + R22.shape[0]) * k * 3))
    for b0 in range(0, todo.size, batch):
        idx = todo[b0 : b0 + batch]
        _, sv, Vh = np.linalg.svd(stacked(lam[idx]), full_matrices=False)
        ref_vec[:, idx] = Vh[:, -1, :].conj().T
        ref_res[idx] = sv[:, -1]
    if real:
        for i in np.flatnonzero(lam.imag < 0):
            j = todo[np.argmin(np.abs(lam[todo] - np.conj(lam[i])))]
            ref_vec[:, i] = np.conj(ref_vec[:, j])
            ref_res[i] = ref_res[j]
        # real eigenvalues of a real matrix: make the refined vector real (fix its phase)
        for i in np.flatnonzero(lam.imag == 0):
            v = ref_vec[:, i]
            p = v[np.argmax(np.abs(v))]
            ref_vec[:, i] = np.real(v * (abs(p) / p))
    rayleigh = np.einsum("ki,kl,li->i", ref_vec.conj(), S, ref_vec)
    return _Pairs(lam, W, L, plain, ref_vec, ref_res, rayleigh)


def _modes(
    method: str,
    pairs: _Pairs,
    u_times: Callable[[np.ndarray], np.ndarray],
    b_times: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    if method == "rrr":
        return u_times(pairs.refined_vectors)
    if method == "standard":
        return u_times(pairs.vectors)
    # exact DMD (Tu et al. 2014): Y V S^-1 w / lambda = B_k w / lambda; for lambda = 0 the exact
    # mode is undefined and the projected mode is returned instead.
    lam = pairs.eigenvalues
    exact = b_times(pairs.vectors.astype(complex))
    nz = np.abs(lam) > 0
    exact[:, nz] /= lam[nz]
    if not nz.all():
        exact[:, ~nz] = u_times(pairs.vectors[:, ~nz])
    return exact


def _sorted(pairs: _Pairs) -> _Pairs:
    """Order by |lambda| descending, then Im descending (a conjugate pair: positive Im first)."""
    order = stable_order(pairs.eigenvalues)
    out = {}
    for f in fields(_Pairs):  # vectors are columns (k, k), the rest one entry per pair (k,)
        a = getattr(pairs, f.name)
        out[f.name] = None if a is None else a[:, order] if a.ndim == 2 else a[order]
    return _Pairs(**out)


def stable_order(lam: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
    """Indices that sort eigenvalues by decreasing modulus, ties broken by decreasing real part,
    then decreasing imaginary part.

    Moduli within ``rtol * max|lambda|`` of each other count as equal, so eigenvalues of equal
    modulus (0.8 and -0.8, a conjugate pair) come out in the same order whatever rounding the
    path or a permutation of the features left in their last bits.

    Parameters
    ----------
    lam : ndarray, complex (k,)
    rtol : float
        Relative tolerance of equal moduli.

    Returns
    -------
    ndarray, int (k,)

    Examples
    --------
    >>> import numpy as np
    >>> lam = np.array([0.5, -0.8, 0.8, 0.3 + 0.4j, 0.3 - 0.4j])
    >>> lam[stable_order(lam)]
    array([ 0.8+0.j , -0.8+0.j ,  0.5+0.j ,  0.3+0.4j,  0.3-0.4j])
    """
    if lam.size == 0:
        return np.zeros(0, dtype=int)
    mod = np.abs(lam)
    first = np.argsort(-mod, kind="stable")
    tol = rtol * max(float(mod.max()), np.finfo(float).tiny)
    # clusters of consecutive (in modulus order) eigenvalues closer than tol
    breaks = np.concatenate([[True], np.diff(mod[first]) < -tol])
    cluster = np.empty(lam.size, dtype=int)
    cluster[first] = np.cumsum(breaks)
    scale = max(float(mod.max()), np.finfo(float).tiny)
    re = np.round(lam.real / scale, 9)
    im = np.round(lam.imag / scale, 9)
    return np.lexsort((-im, -re, cluster))


def _result(
    pairs: _Pairs,
    mode_matrix: np.ndarray | None,
    svals: np.ndarray,
    k: int,
    method: str,
    data_res: np.ndarray | None = None,
) -> DMDResult:
    residuals = pairs.refined_residuals if method == "rrr" else pairs.plain_residuals
    return DMDResult(
        eigenvalues=pairs.eigenvalues.astype(complex),
        residuals=residuals,
        plain_residuals=pairs.plain_residuals,
        modes=None if mode_matrix is None else mode_matrix.astype(complex, copy=False),
        singular_values=svals,
        rank=k,
        rayleigh_quotients=pairs.rayleigh,
        data_residuals=data_res,
    )


def data_residuals(
    eigenvalues: np.ndarray, left: np.ndarray, px: np.ndarray, py: np.ndarray
) -> np.ndarray:
    """ResDMD residual of each eigenpair on the data (Colbrook & Townsend, CPAM 2024, eq. (4.6)).

    With the dictionary ``psi(x) = U_k^* x`` the EDMD matrix is ``S_k^T``; the Koopman
    eigenfunction of ``lambda_i`` is ``phi_i(x) = l_i^* U_k^* x`` for the left eigenvector ``l_i``
    of ``S_k``. Its residual on the snapshot pairs is::

        res_i = ||phi_i(Y) - lambda_i phi_i(X)|| / ||phi_i(X)||
              = sqrt(g^*(L - lambda A^* - conj(lambda) A + |lambda|^2 G) g / g^* G g)

    (G, A, L the Grams of the projected snapshots; SPEC section 4), is computed from
    ``px = U_k^* X`` and ``py = U_k^* Y`` (k, m) directly rather than from the Grams, so no
    cancellation limits its resolution. It is dimensionless (relative to the eigenfunction's size)
    and, unlike ``||A z - lambda z||``, informative when the rank equals the number of observables;
    it is ~0 for every eigenpair only when the rank equals the number of pairs (interpolation).

    Parameters
    ----------
    eigenvalues : ndarray, complex (k,)
    left : ndarray, complex (k, k)
        Left eigenvectors ``l_i`` of ``S_k`` as columns (``l_i^* S_k = lambda_i l_i^*``).
    px, py : ndarray (k, m)
        ``U_k^* X`` and ``U_k^* Y``.

    Returns
    -------
    ndarray, float (k,)

    Raises
    ------
    Nothing of its own
        An internal routine: :func:`conjugacy.koopman_spectrum` validates the data and
        arguments before calling it.

    References
    ----------
    Colbrook & Townsend, *Rigorous data-driven computation of spectral properties of Koopman
    operators for dynamical systems*, Comm. Pure Appl. Math. 77(1), 2024, eq. (4.6).

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy.observables import delay_embed
    >>> t = np.arange(40)[:, None]  # 5 trajectories of x_{t+1} = diag(0.9, 0.8, 0.5) x_t
    >>> runs = np.random.default_rng(0).normal(size=(5, 1, 3)) * np.power([0.9, 0.8, 0.5], t)
    >>> X, Y = delay_embed(runs)
    >>> U = np.linalg.svd(X, full_matrices=False)[0]
    >>> px, py = U.T @ X, U.T @ Y
    >>> S = np.linalg.lstsq(px.T, py.T, rcond=None)[0].T  # S_k = U^* A U
    >>> w, left = np.linalg.eig(S.conj().T)  # S^* l = conj(lambda) l
    >>> data_residuals(w.conj(), left, px, py).round(10)  # exact data: every residual 0
    array([0., 0., 0.])
    """
    if eigenvalues.size == 0:
        return np.zeros(0)
    lh = left.conj().T  # rows l_i^*
    phi_x = lh @ px  # (k, m)
    phi_y = lh @ py
    num = np.linalg.norm(phi_y - eigenvalues[:, None] * phi_x, axis=1)
    den = np.linalg.norm(phi_x, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.inf)


def data_residuals_from_grams(
    eigenvalues: np.ndarray, left: np.ndarray, g: np.ndarray, a: np.ndarray, l_gram: np.ndarray
) -> np.ndarray:
    """:func:`data_residuals` from the (k, k) Grams of the projected snapshots instead of the
    projections themselves: ``g = px px^*``, ``a = px py^*``, ``l_gram = py py^*``
    (``px = U_k^* X``, ``py = U_k^* Y``), for routes that never hold a (k, m) projection (the
    feature-side covariance path).

    ``res_i^2 = (l^* L l - 2 Re(lambda l^* A l) + |lambda|^2 l^* G l) / l^* G l`` with
    ``l = l_i``. The subtraction resolves residuals down to ~1e-8 (the square root of the
    rounding of the Grams), against ~1e-16 for :func:`data_residuals`; residuals below that
    read as ~1e-8 or 0.

    Parameters
    ----------
    eigenvalues : ndarray, complex (k,)
    left : ndarray, complex (k, k)
        Left eigenvectors ``l_i`` of ``S_k`` as columns.
    g, a, l_gram : ndarray (k, k)

    Returns
    -------
    ndarray, float (k,)

    Nothing of its own (an internal routine); the reference is :func:`data_residuals`'s.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> px, py = rng.normal(size=(3, 50)), rng.normal(size=(3, 50))
    >>> lam, left = np.linalg.eig(rng.normal(size=(3, 3)).T)  # any eigenpairs
    >>> lam = lam.conj()
    >>> direct = data_residuals(lam, left, px, py)
    >>> grams = (px @ px.T, px @ py.T, py @ py.T)
    >>> bool(np.allclose(data_residuals_from_grams(lam, left, *grams), direct))
    True
    """
    if eigenvalues.size == 0:
        return np.zeros(0)
    def quad(m: np.ndarray) -> np.ndarray:  # l_i^* M l_i for every column l_i
        return np.einsum("ki,kl,li->i", left.conj(), m, left)

    den = quad(g).real
    num = quad(l_gram).real - 2.0 * (eigenvalues * quad(a)).real + np.abs(eigenvalues) ** 2 * den
    num = np.maximum(num, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, np.sqrt(num / np.where(den > 0, den, 1.0)), np.inf)
