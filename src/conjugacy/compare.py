"""Distances between Koopman spectra, and grouping of dynamics into equivalence classes.

Each eigenvalue is a point ``(Re, Im)`` of the plane; the ground distance is Euclidean. Two training
processes are conjugate iff their Koopman eigenvalues coincide, and one is semi-conjugate to the
other if its eigenvalues are a subset of the other's; the distances below measure how far a pair of
estimated spectra is from either.

Only NumPy and SciPy are used here: equal-size spectra with uniform weights are compared with
``scipy.optimize.linear_sum_assignment`` and everything else with an exact linear program solved by
HiGHS (``scipy.optimize.linprog``). POT (``ot.emd2``) is a *test* dependency, used to check these
solvers, never imported by the package.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from scipy.cluster import hierarchy
from scipy.optimize import linear_sum_assignment, linprog
from scipy.spatial.distance import squareform

from ._checks import as_numeric_array, check_choice, check_finite, check_int

__all__ = [
    "EquivalenceClasses",
    "WassersteinResult",
    "distance_matrix",
    "equivalence_classes",
    "semiconjugacy_distance",
    "wasserstein",
    "wasserstein_plan",
]

#: Linkage methods accepted by :func:`equivalence_classes`. ``"centroid"``, ``"median"`` and
#: ``"ward"`` are left out: they assume Euclidean distances between points of a vector space,
#: which Wasserstein distances between spectra are not.
LINKAGES = ("single", "complete", "average", "weighted")


# ----- validation shared with conjugacy.stats ----------------------------------------------------
def as_eigenvalues(spectrum: Any, name: str) -> np.ndarray:
    """Return the eigenvalues of ``spectrum`` as a 1-D complex128 array, or raise a clear error.

    ``spectrum`` is any object with an ``eigenvalues`` attribute (e.g. :class:`conjugacy.Spectrum`)
    or a 1-D real or complex array-like. Empty, non-1-D and non-finite inputs are rejected.
    """
    values = getattr(spectrum, "eigenvalues", spectrum)
    if values is None:
        raise TypeError(f"{name} must be a Spectrum or a 1-D array of eigenvalues, got None")
    arr = as_numeric_array(values, name)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of eigenvalues (or a Spectrum), got an array of shape "
            f"{arr.shape}"
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty; a spectrum needs at least one eigenvalue")
    check_finite(arr, name)
    return arr.astype(np.complex128)


def check_p(p: Any) -> float:
    """Return the order ``p`` of the Wasserstein distance as a float; it must be finite and >= 1."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"p must be a real number >= 1, got {p!r} of type {type(p).__name__}")
    p = float(p)
    if not np.isfinite(p) or p < 1:
        raise ValueError(f"p must be finite and >= 1 (W_p is a metric only for p >= 1), got {p!r}")
    return p


def _check_weights(weights: Any, n_a: int, n_b: int) -> tuple[np.ndarray, np.ndarray] | None:
    if weights is None:
        return None
    if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__") or len(weights) != 2:
        raise ValueError(
            "weights must be None or a pair (weights_a, weights_b) of 1-D arrays, got "
            f"{type(weights).__name__}"
            + (f" of length {len(weights)}" if hasattr(weights, "__len__") else "")
        )
    out = []
    for side, w, n in (("a", weights[0], n_a), ("b", weights[1], n_b)):
        name = f"weights[{0 if side == 'a' else 1}] (weights of {side})"
        w = as_numeric_array(w, name, allow_complex=False)
        if w.ndim != 1 or w.shape[0] != n:
            raise ValueError(
                f"{name} must be a 1-D array with one weight per eigenvalue of {side} ({n}), "
                f"got shape {w.shape}"
            )
        check_finite(w, name)
        if (w < 0).any():
            i = int(np.flatnonzero(w < 0)[0])
            raise ValueError(f"{name} must be >= 0, got {float(w[i])!r} at index {i}")
        total = float(w.sum())
        if total <= 0:
            raise ValueError(f"{name} must have a positive sum, got {total!r}")
        out.append(w / total)
    return out[0], out[1]


def _cost(a: np.ndarray, b: np.ndarray, p: float) -> np.ndarray:
    """Ground cost ``|a_i - b_j|**p`` (n_a, n_b); ``abs`` of a complex difference is hypot."""
    d = np.abs(a[:, None] - b[None, :])
    return d if p == 1 else d**p


def _root(total: float, p: float) -> float:
    total = max(float(total), 0.0)  # an LP optimum may come out at -1e-17
    return total if p == 1 else total ** (1.0 / p)


# ----- Wasserstein distance ------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class WassersteinResult:
    """The Wasserstein distance between two spectra and an optimal transport plan.

    Attributes
    ----------
    distance : float
        ``W_p = (sum_ij plan_ij |a_i - b_j|**p) ** (1/p)``, in the units of the eigenvalues.
    plan : ndarray, float (n_a, n_b)
        An optimal transport plan: non-negative, rows sum to the weights of ``a``, columns to
        those of ``b`` (each 1/n for uniform weights).
    matching : ndarray, int (n,) or None
        For equal sizes with uniform weights, where the optimal plan is a permutation:
        ``a[i]`` is matched to ``b[matching[i]]``. None otherwise.
    p : float
        The order of the distance.
    """

    distance: float
    plan: np.ndarray
    matching: np.ndarray | None
    p: float

    def __post_init__(self) -> None:
        for name in ("plan", "matching"):
            value = getattr(self, name)
            if value is not None:
                value = np.array(value, copy=True)
                value.setflags(write=False)
                object.__setattr__(self, name, value)


def _transport_lp(cost: np.ndarray, wa: np.ndarray, wb: np.ndarray) -> tuple[float, np.ndarray]:
    """Exact discrete optimal transport by linear programming (HiGHS).

    Variables are the plan entries in row-major order; constraints are the row sums (= wa) and the
    column sums (= wb). One column constraint is implied by the others (both sides sum to 1) and is
    dropped so that tiny rounding differences between ``sum(wa)`` and ``sum(wb)`` cannot make the
    problem infeasible.
    """
    n_a, n_b = cost.shape
    rows = sparse.kron(sparse.identity(n_a), np.ones((1, n_b)))
    cols = sparse.kron(np.ones((1, n_a)), sparse.identity(n_b))
    a_eq = sparse.vstack([rows, cols.tocsr()[: n_b - 1]]).tocsc()
    b_eq = np.concatenate([wa, wb[: n_b - 1]])
    res = linprog(
        cost.ravel(),
        A_eq=a_eq,
        b_eq=b_eq,
        bounds=(0, None),
        method="highs",
        options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    )
    if res.status != 0:  # pragma: no cover - a transport LP is always feasible and bounded
        raise RuntimeError(f"the optimal-transport linear program failed: {res.message}")
    plan = np.clip(res.x.reshape(n_a, n_b), 0.0, None)
    return float(np.sum(plan * cost)), plan


def wasserstein_plan(a: Any, b: Any, *, p: float = 1, weights: Any = None) -> WassersteinResult:
    """Wasserstein distance ``W_p`` between two spectra, with an optimal transport plan.

    Each eigenvalue is a point ``(Re, Im)`` carrying a mass (uniform ``1/n`` unless ``weights``
    are given); the ground distance is Euclidean, ``|a_i - b_j|``. The result is exact for any sizes:

    - equal sizes and uniform weights: the optimal plan is a permutation (Birkhoff), found by
      ``scipy.optimize.linear_sum_assignment`` on the cost ``|a_i - b_j|**p``;
    - otherwise (unequal sizes, or weights): an exact linear program (HiGHS) in which mass may be
      split between several points.

    Parameters
    ----------
    a, b : Spectrum or array_like, complex (n_a,), (n_b,)
        Objects with an ``eigenvalues`` attribute, or 1-D real/complex arrays of eigenvalues.
    p : float, default 1
        Order of the distance, finite and >= 1.
    weights : None or (array_like (n_a,), array_like (n_b,))
        Masses of the eigenvalues of ``a`` and of ``b``: non-negative, each with a positive sum;
        each side is normalised to sum 1. None means uniform.

    Returns
    -------
    WassersteinResult
        ``distance``, ``plan`` (n_a, n_b) and, for equal sizes with uniform weights, ``matching``.
    """
    a = as_eigenvalues(a, "a")
    b = as_eigenvalues(b, "b")
    p = check_p(p)
    w = _check_weights(weights, a.size, b.size)
    cost = _cost(a, b, p)
    if w is None and a.size == b.size:
        rows, cols = linear_sum_assignment(cost)
        n = a.size
        plan = np.zeros((n, n))
        plan[rows, cols] = 1.0 / n
        matching = np.empty(n, dtype=np.intp)
        matching[rows] = cols
        return WassersteinResult(_root(cost[rows, cols].mean(), p), plan, matching, p)
    if w is None:
        w = (np.full(a.size, 1.0 / a.size), np.full(b.size, 1.0 / b.size))
    total, plan = _transport_lp(cost, *w)
    return WassersteinResult(_root(total, p), plan, None, p)


def wasserstein(a: Any, b: Any, *, p: float = 1, weights: Any = None) -> float:
    """Wasserstein distance ``W_p`` between the eigenvalues of two spectra (a float).

    ``W_p = (min_plan sum_ij plan_ij |a_i - b_j|**p) ** (1/p)`` over transport plans between the
    two sets of points ``(Re, Im)``, uniform masses unless ``weights`` are given. Exact for any
    sizes: unequal sizes are handled by splitting mass, never by dropping points. See
    :func:`wasserstein_plan` for the parameters and for the optimal plan itself.

    Unlike the paper's reference code, which returns the mean matched distance and silently drops
    the extra points when the sizes differ, this is the true ``W_p`` (for equal sizes and ``p = 1``
    the two agree).
    """
    return wasserstein_plan(a, b, p=p, weights=weights).distance


def semiconjugacy_distance(small: Any, large: Any, *, p: float = 1) -> float:
    """How far the spectrum ``small`` is from being a subset of the spectrum ``large``.

    Definition: each eigenvalue of ``small`` is matched to a *distinct* eigenvalue of ``large``
    (a one-sided partial matching, i.e. a rectangular linear sum assignment) so as to minimise the
    total cost; the distance is ``(mean over small of |s_i - l_sigma(i)|**p) ** (1/p)``. The
    eigenvalues of ``large`` left unmatched cost nothing. It is zero iff ``small`` is a
    sub-multiset of ``large``, and equals :func:`wasserstein` when the sizes are equal.

    A system whose spectrum is (close to) a subset of another's is (close to) semi-conjugate to it.
    The distance is not symmetric and not a metric.

    Parameters
    ----------
    small, large : Spectrum or array_like, complex (n_small,), (n_large,)
        ``n_small <= n_large`` is required.
    p : float, default 1
        Order, finite and >= 1.

    Returns
    -------
    float
        In the units of the eigenvalues.
    """
    small = as_eigenvalues(small, "small")
    large = as_eigenvalues(large, "large")
    p = check_p(p)
    if small.size > large.size:
        raise ValueError(
            f"small has {small.size} eigenvalues but large has only {large.size}; small must not "
            "be larger than large (swap the arguments)"
        )
    cost = _cost(small, large, p)
    rows, cols = linear_sum_assignment(cost)
    return _root(cost[rows, cols].mean(), p)


def _as_spectra_list(spectra: Any, name: str) -> list[np.ndarray]:
    if hasattr(spectra, "eigenvalues"):
        raise ValueError(
            f"{name} must be a sequence of spectra, got a single {type(spectra).__name__}; "
            "wrap it in a list"
        )
    if isinstance(spectra, (str, bytes)) or not hasattr(spectra, "__iter__"):
        raise TypeError(f"{name} must be a sequence of spectra, got {type(spectra).__name__}")
    items = list(spectra)
    if not items:
        raise ValueError(f"{name} is empty; at least one spectrum is required")
    if all(isinstance(s, numbers.Number) for s in items) or (
        isinstance(spectra, np.ndarray) and spectra.ndim == 1
    ):
        raise ValueError(
            f"{name} must be a sequence of spectra (e.g. a list of eigenvalue arrays), got a "
            f"single 1-D array of {len(items)} numbers; wrap it in a list"
        )
    return [as_eigenvalues(s, f"{name}[{i}]") for i, s in enumerate(items)]


def _pairwise(eigs: list[np.ndarray], p: float) -> np.ndarray:
    n = len(eigs)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = wasserstein_plan(eigs[i], eigs[j], p=p).distance
    return out


def distance_matrix(spectra: Any, *, p: float = 1) -> np.ndarray:
    """Matrix of Wasserstein distances ``W_p`` between all pairs of a list of spectra.

    Parameters
    ----------
    spectra : sequence of Spectrum or array_like, length n
        For instance the spectra of consecutive training windows (fig. 4 of the paper).
    p : float, default 1
        Order of the distance.

    Returns
    -------
    ndarray, float (n, n)
        Symmetric, zero diagonal; ``n (n - 1) / 2`` distances are computed.
    """
    p = check_p(p)
    return _pairwise(_as_spectra_list(spectra, "spectra"), p)


# ----- equivalence classes -------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class EquivalenceClasses:
    """Dynamics grouped into classes by hierarchical clustering of their spectral distances.

    Attributes
    ----------
    labels : ndarray, int (n,)
        Class of each spectrum, numbered from 0 in order of first appearance.
    n_classes : int
        Number of classes.
    linkage_matrix : ndarray, float (n - 1, 4)
        SciPy linkage matrix (``scipy.cluster.hierarchy.linkage`` format, usable with
        ``dendrogram``); heights are in the units of the distances.
    distance_matrix : ndarray, float (n, n)
        The distances that were clustered.
    linkage : str
        The linkage method.
    """

    labels: np.ndarray
    n_classes: int
    linkage_matrix: np.ndarray
    distance_matrix: np.ndarray
    linkage: str

    def __post_init__(self) -> None:
        for name in ("labels", "linkage_matrix", "distance_matrix"):
            value = np.array(getattr(self, name), copy=True)
            value.setflags(write=False)
            object.__setattr__(self, name, value)


def _check_distance_matrix(d: np.ndarray, name: str) -> np.ndarray:
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"{name} must be a square (n, n) matrix, got shape {d.shape}")
    check_finite(d, name)
    scale = max(float(np.abs(d).max()), 1e-300)
    if (d < 0).any():
        i, j = (int(k) for k in np.argwhere(d < 0)[0])
        raise ValueError(f"{name} must be non-negative, got {float(d[i, j])!r} at index ({i}, {j})")
    diag = float(np.abs(np.diag(d)).max())
    if diag > 1e-12 * scale:
        raise ValueError(f"{name} must have a zero diagonal, got max |diag| = {diag!r}")
    asym = float(np.abs(d - d.T).max())
    if asym > 1e-10 * scale:
        raise ValueError(f"{name} must be symmetric, got max |D - D.T| = {asym!r}")
    d = 0.5 * (d + d.T)
    np.fill_diagonal(d, 0.0)
    return d


def _relabel_by_first_appearance(labels: np.ndarray) -> np.ndarray:
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(np.argsort(first))  # rank of each unique label by first appearance
    _, inverse = np.unique(labels, return_inverse=True)
    return order[inverse].astype(np.intp)


def equivalence_classes(
    spectra_or_matrix: Any,
    *,
    threshold: float | None = None,
    n_classes: int | None = None,
    linkage: str = "average",
    p: float = 1,
) -> EquivalenceClasses:
    """Group dynamics into equivalence classes by hierarchical clustering of spectral distances.

    Agglomerative clustering (``scipy.cluster.hierarchy``) of the Wasserstein distances between
    spectra, cut either at a distance ``threshold`` or into ``n_classes`` classes (exactly one of
    the two must be given).

    Parameters
    ----------
    spectra_or_matrix : sequence of spectra, or ndarray (n, n)
        A list/tuple (or any non-array iterable) is read as spectra and turned into
        :func:`distance_matrix` with order ``p``. A real square 2-D ``numpy.ndarray`` is read as a
        precomputed distance matrix: finite, non-negative, symmetric, zero diagonal.
    threshold : float, optional
        Cut height: two spectra end up in the same class iff they are joined at a linkage height
        ``<= threshold`` (``fcluster(criterion="distance")``). Units of the distances.
    n_classes : int, optional
        Number of classes, ``1 <= n_classes <= n``; the tree is cut where it has exactly that
        many branches (``cut_tree``).
    linkage : {"average", "single", "complete", "weighted"}, default "average"
        Distance between two clusters: the mean of the distances between their members
        (``"average"``, UPGMA, robust to single noisy spectra), the smallest (``"single"``: classes
        are chains of close spectra, i.e. the transitive closure of "closer than threshold"), the
        largest (``"complete"``: every pair inside a class is within ``threshold``), or WPGMA
        (``"weighted"``). Centroid, median and Ward linkage are not offered: they assume
        Euclidean vector data.
    p : float, default 1
        Order of the Wasserstein distance when spectra are given.

    Returns
    -------
    EquivalenceClasses
        ``labels`` (ints from 0, by first appearance), ``n_classes``, ``linkage_matrix``,
        ``distance_matrix``, ``linkage``.
    """
    check_choice(linkage, "linkage", LINKAGES)
    p = check_p(p)
    if (threshold is None) == (n_classes is None):
        raise ValueError(
            "exactly one of threshold and n_classes must be given, got "
            f"threshold={threshold!r}, n_classes={n_classes!r}"
        )
    if (
        isinstance(spectra_or_matrix, np.ndarray)
        and spectra_or_matrix.ndim == 2
        and not (np.iscomplexobj(spectra_or_matrix))
        and spectra_or_matrix.shape[0] == spectra_or_matrix.shape[1]
    ):
        d = _check_distance_matrix(
            as_numeric_array(spectra_or_matrix, "spectra_or_matrix").copy(), "spectra_or_matrix"
        )
    else:
        d = _pairwise(_as_spectra_list(spectra_or_matrix, "spectra_or_matrix"), p)
    n = d.shape[0]
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
            raise TypeError(f"threshold must be a real number >= 0, got {threshold!r}")
        if not np.isfinite(threshold) or threshold < 0:
            raise ValueError(f"threshold must be finite and >= 0, got {threshold!r}")
    else:
        n_classes = check_int(n_classes, "n_classes", minimum=1)
        if n_classes > n:
            raise ValueError(f"n_classes must be <= the number of spectra ({n}), got {n_classes}")
    if n == 1:
        return EquivalenceClasses(np.zeros(1, np.intp), 1, np.zeros((0, 4)), d, linkage)
    z = hierarchy.linkage(squareform(d, checks=False), method=linkage)
    if threshold is not None:
        raw = hierarchy.fcluster(z, t=float(threshold), criterion="distance")
    else:
        raw = hierarchy.cut_tree(z, n_clusters=n_classes).ravel()
    labels = _relabel_by_first_appearance(np.asarray(raw))
    return EquivalenceClasses(labels, int(labels.max()) + 1, z, d, linkage)
