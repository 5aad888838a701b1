"""Conjugate optimizers: online mirror descent, online gradient descent and bisection.

Reproduces Redman et al. (NeurIPS 2024), sec. 4.1, fig. 2 (``f(x) = sum tan x_i``) and fig. S1
(``f(x) = sum x_i^4``), appendix A, with the configuration as published (SPEC section 5A):
``d = 2``, ``eta = 0.01``, ``T = 100`` iterates (the initial condition and 99 updates), 25 initial
conditions per optimizer, float64 throughout.

The optimizers
--------------
- **OMD** (online mirror descent, log-barrier regulariser ``R(x) = -sum log x_i``):
  ``y_i = 1 / (1/x_i + eta f'(x_i))``, then the Bregman projection onto ``K = [0.01, 1]^2``. For
  this separable ``R`` and a box, ``D_R(y || x) = sum_i [-log y_i + log x_i + (y_i - x_i)/x_i]``
  is a sum of one-dimensional convex terms minimised at ``y_i = x_i``, so the projection is
  exactly a clip (the reference code calls a numerical optimiser for it).
- **OGD** (online gradient descent on the reparametrised loss ``f(exp(u))``):
  ``u_i' = u_i - eta exp(u_i) f'(exp(u_i))``, Euclidean projection (a clip) onto
  ``K' = q^-1(K) = [log 0.01, 0]^2`` (the paper rounds ``log 0.01`` to -4.6). ``q(u) = exp(u)`` is
  the conjugacy (in continuous time both flows are ``x' = -x^2 f'(x)``).
- **BM** (bisection; ``tan`` only, because ``sum x^4`` never changes sign). How the paper's
  algorithm reads in two dimensions: ``a, b, z`` are vectors of ``R^2`` and the test is on the
  *scalar* loss ``f(z) = tan z_1 + tan z_2`` (Algorithm 3 compares ``f[z(t)] < 0`` and the text
  defines ``f = sum tan``; the reference code does exactly this). Each step replaces the whole
  vector ``a`` or ``b`` by ``z``, i.e. it bisects the segment from ``a(0)`` to ``b(0)``, on which
  ``f`` is strictly increasing (``b(0) > a(0)`` componentwise and ``tan`` is increasing on
  ``K'' = [-4/3, 8/7]^2``), so the root on that segment is unique, as appendix A.2 requires. A
  per-coordinate reading (``tan z_i`` tested separately) was ruled out: it never meets an exact
  root in 100 steps, whereas the published setting hits ``f(z) == 0`` exactly after 52-57 steps in
  20 of the 25 runs, which is what the reference code and SPEC 5A describe.
- **After an exact root.** Once ``f(z) == 0`` exactly, the interval collapses: ``a = b = z``, and
  the iterate stays at ``z`` (a fixed point) for the remaining steps. Algorithm 3 taken literally
  would move away from the root again (its ``else`` branch sets ``b = z`` on ``f(z) == 0``), and
  the reference code stops and leaves zeros in the rest of the trajectory, an artificial jump to a
  point that is not a root of ``f`` on the segment; neither describes the dynamics of bisection.

The Koopman step
----------------
Observables are the iterates themselves (for OGD ``u``, not ``exp(u)``), 4 delays (10 observables),
DMD (``method``, DMD-RRR by default) on the 25 trajectories stacked without joining them, all 10
eigenvalues kept (``rank = 10``). With as many modes as observables the residuals are ~0 whatever
the eigenvalues (``Spectrum.residuals_informative`` is False): they carry no information here.

Distances: Wasserstein ``W_p`` (default ``p = 1``, as the reference code) between the spectra of
each pair of optimizers, and the paper's shuffle control (which, as SPEC section 4 explains, only
counts ties and cannot show a difference). Inference uses a permutation test on *groups* of
spectra: the 25 initial conditions of each optimizer are split into 5 disjoint groups of 5 by the
diagonals of the 5 x 5 grid (group ``k`` holds the grid points ``(i, j)`` with
``(i + j) mod 5 == k``, so every group contains each value of each coordinate exactly once and the
groups are as alike as a split can make them); each group gives one spectrum, and
:func:`conjugacy.stats.conjugacy_test` compares the 5 spectra of one optimizer with the 5 of another
(all 252 relabelings enumerated: the smallest attainable p-value is 2/252 = 1/126 ~ 0.008).

Verdict rule: a pair is reported *not conjugate* when the permutation test rejects at level
``alpha`` (default 0.05), and *conjugate* (more precisely: no evidence against conjugacy)
otherwise.

Loss curves: ``f(x)`` for OMD, ``f(exp(u))`` for OGD (the two are the same loss seen through the
conjugacy), and ``|f(z)|`` for BM (the residual of the root search; this is what the reference
code plots in fig. 2B, since ``f(z)`` itself changes sign).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from .._atomic import atomic_open
from .._checks import (
    Choice,
    Float,
    Int,
    Param,
    as_numeric_array,
    check_choice,
    check_finite,
    check_int,
    check_positive_float,
    validate,
)
from ..spectrum import RankWarning, Spectrum, koopman_spectrum

__all__ = [
    "BM_BOX",
    "LOSSES",
    "METHODS",
    "OGD_BOX",
    "OMD_BOX",
    "OptimizerConfig",
    "OptimizerResults",
    "bisection_initial_conditions",
    "bisection_trajectory",
    "exact_root_step",
    "initial_condition_groups",
    "loss_gradient",
    "loss_value",
    "make_figures",
    "ogd_initial_conditions",
    "ogd_trajectory",
    "omd_initial_conditions",
    "omd_trajectory",
    "prepare_output_dir",
    "results_to_dict",
    "run",
    "save_results",
]

#: Losses of the paper: ``"tan"`` is ``f(x) = sum tan x_i`` (fig. 2), ``"quartic"`` is
#: ``f(x) = sum x_i^4`` (fig. S1).
LOSSES = ("tan", "quartic")
#: The three optimizers, in the order used everywhere (keys of every result dict).
METHODS = ("omd", "ogd", "bm")
#: ``K = [0.01, 1]`` per coordinate (OMD).
OMD_BOX = (0.01, 1.0)
#: ``K' = q^-1(K) = [log 0.01, 0]`` per coordinate (OGD, ``q = exp``).
OGD_BOX = (float(np.log(0.01)), 0.0)
#: ``K'' = [-4/3, 8/7]`` per coordinate (BM).
BM_BOX = (-4.0 / 3.0, 8.0 / 7.0)
#: The run shown in the example-trajectory panel: x(0) = (0.5, 0.7), as in the reference code.
EXAMPLE_RUN = 17

_OMD_GRID = (0.1, 0.3, 0.5, 0.7, 0.9)
_OGD_GRID = (-2.30, -1.75, -1.20, -0.65, -0.10)
_BM_A_GRID = (-16 / 12, -13 / 12, -10 / 12, -7 / 12, -4 / 12)
# The paper prints 0.393, 0.643, 0.893: these are 1/7 + k/4 (np.linspace(1/7, 8/7, 5) in the
# reference code) rounded to three digits.
_BM_B_GRID = (1 / 7, 1 / 7 + 0.25, 1 / 7 + 0.5, 1 / 7 + 0.75, 8 / 7)


# ----- losses ----------------------------------------------------------------------------------
def loss_value(loss: str, x: Any) -> np.ndarray:
    """The loss ``f(x) = sum_i g(x_i)`` over the last axis (``g = tan`` or ``g(x) = x^4``).

    Parameters
    ----------
    loss : {"tan", "quartic"}
    x : array (..., d)

    Returns
    -------
    ndarray (...)
    """
    loss = check_choice(loss, "loss", LOSSES)
    x = np.asarray(x, dtype=np.float64)
    return np.tan(x).sum(axis=-1) if loss == "tan" else (x**4).sum(axis=-1)


def loss_gradient(loss: str, x: Any) -> np.ndarray:
    """The gradient of :func:`loss_value`, element-wise: ``1/cos(x)^2`` or ``4 x^3`` (shape of x)."""
    loss = check_choice(loss, "loss", LOSSES)
    x = np.asarray(x, dtype=np.float64)
    return 1.0 / np.cos(x) ** 2 if loss == "tan" else 4.0 * x**3


# ----- initial conditions ----------------------------------------------------------------------
def _grid(values: tuple[float, ...]) -> np.ndarray:
    # Row n is (values[n % 5], values[n // 5]): the order of np.meshgrid(...).reshape(2, 25) in the
    # reference code, so that run n of every optimizer sits at the same grid position.
    g = np.asarray(values, dtype=np.float64)
    first, second = np.meshgrid(g, g)
    return np.stack([first.ravel(), second.ravel()], axis=1)


def omd_initial_conditions() -> np.ndarray:
    """The 25 OMD initial conditions ``x(0) in {0.1, 0.3, 0.5, 0.7, 0.9}^2``, shape (25, 2).

    Row ``n`` is ``(g[n % 5], g[n // 5])`` (the reference code's order).
    """
    return _grid(_OMD_GRID)


def ogd_initial_conditions() -> np.ndarray:
    """The 25 OGD initial conditions ``u(0) in {-2.30, -1.75, -1.20, -0.65, -0.10}^2``, (25, 2).

    Note ``exp(u(0))`` is *not* the OMD grid (only the corners nearly coincide): the paper compares
    the two optimizers from different initial conditions.
    """
    return _grid(_OGD_GRID)


def bisection_initial_conditions() -> tuple[np.ndarray, np.ndarray]:
    """The 25 BM brackets: ``a(0)`` (25, 2) and ``b(0)`` (25, 2), paired by grid position.

    ``a(0) in {-16/12, -13/12, -10/12, -7/12, -4/12}^2`` and ``b(0) in {1/7, 1/7 + 1/4, 1/7 + 1/2,
    1/7 + 3/4, 8/7}^2`` (printed as 0.393, 0.643, 0.893 in the paper); run ``n`` pairs the ``n``-th
    point of each grid, so each ``a(0)`` and each ``b(0)`` is used once.
    """
    return _grid(_BM_A_GRID), _grid(_BM_B_GRID)


def initial_condition_groups(n_groups: int = 5) -> tuple[tuple[int, ...], ...]:
    """Split the 25 runs into ``n_groups`` disjoint groups by diagonals of the 5 x 5 grid.

    Run ``n`` (grid position ``(i, j) = (n % 5, n // 5)``) goes to group ``(i + j) % n_groups``.
    For ``n_groups = 5`` every group holds each value of each coordinate exactly once.

    Returns
    -------
    tuple of ``n_groups`` tuples of run indices (sorted)
    """
    n_groups = check_int(n_groups, "n_groups", minimum=2)
    if n_groups > 12:
        raise ValueError(
            f"n_groups must be <= 12 so that every group holds at least 2 of the 25 runs, got {n_groups}"
        )
    labels = [(n % 5 + n // 5) % n_groups for n in range(25)]
    return tuple(tuple(n for n in range(25) if labels[n] == k) for k in range(n_groups))


# ----- the optimizers --------------------------------------------------------------------------
def _check_point(value: Any, name: str, box: tuple[float, float]) -> np.ndarray:
    x = as_numeric_array(value, name, allow_complex=False)
    if x.ndim != 1 or x.shape[0] < 1:
        raise ValueError(f"{name} must be a 1-D array (d,) with d >= 1, got shape {x.shape}")
    check_finite(x, name)
    lo, hi = box
    outside = (x < lo) | (x > hi)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"{name}[{i}] = {float(x[i])!r} lies outside the feasible box [{lo!r}, {hi!r}]; the "
            "initial condition must be feasible"
        )
    return x.astype(np.float64, copy=True)


def _check_run_args(eta: Any, n_steps: Any, box: Any) -> tuple[float, int, tuple[float, float]]:
    eta = check_positive_float(eta, "eta")
    n_steps = check_int(n_steps, "n_steps", minimum=1)
    try:
        lo, hi = (float(v) for v in box)
    except (TypeError, ValueError):
        raise TypeError(f"box must be a pair (low, high) of numbers, got {box!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"box must satisfy low < high (both finite), got ({lo!r}, {hi!r})")
    return eta, n_steps, (lo, hi)


def omd_trajectory(
    x0: Any,
    *,
    loss: str = "tan",
    eta: float = 0.01,
    n_steps: int = 100,
    box: tuple[float, float] = OMD_BOX,
) -> np.ndarray:
    """Online mirror descent with the log-barrier regulariser ``R(x) = -sum log x_i``.

    ``y = (grad R)^-1(grad R(x) - eta grad f(x))``, i.e. ``y_i = 1 / (1/x_i + eta f'(x_i))``,
    then the Bregman projection onto ``box^d``, which for this separable ``R`` is exactly a clip.

    Parameters
    ----------
    x0 : array (d,)
        Initial condition, inside ``box`` (which must lie in ``x > 0``, the domain of ``R``).
    loss : {"tan", "quartic"}
    eta : float
        Learning rate.
    n_steps : int
        Number of iterates ``T`` returned, including ``x0`` (``T - 1`` updates).
    box : (low, high)
        The feasible set ``K = [low, high]^d``.

    Returns
    -------
    ndarray (n_steps, d), float64
    """
    loss = check_choice(loss, "loss", LOSSES)
    eta, n_steps, box = _check_run_args(eta, n_steps, box)
    if box[0] <= 0:
        raise ValueError(f"box must lie in x > 0 (the domain of the log barrier), got low = {box[0]!r}")
    x = _check_point(x0, "x0", box)
    out = np.empty((n_steps, x.shape[0]))
    out[0] = x
    for t in range(1, n_steps):
        dual = 1.0 / x + eta * loss_gradient(loss, x)  # -(grad R(x) - eta grad f(x))
        if not (dual > 0).all():  # (grad R)^-1 exists only for negative dual points
            raise ValueError(
                f"the mirror step of OMD is undefined at step {t} (1/x + eta f'(x) = {dual!r} "
                "must be > 0): reduce eta"
            )
        x = np.clip(1.0 / dual, *box)
        out[t] = x
    return out


def ogd_trajectory(
    u0: Any,
    *,
    loss: str = "tan",
    eta: float = 0.01,
    n_steps: int = 100,
    box: tuple[float, float] = OGD_BOX,
) -> np.ndarray:
    """Online gradient descent on the reparametrised loss ``f(exp(u))``.

    ``u' = u - eta d/du f(exp(u)) = u - eta exp(u) f'(exp(u))``, then the Euclidean projection
    (a clip) onto ``box^d`` (default ``[log 0.01, 0]``, the image of OMD's box under ``log``).

    Parameters
    ----------
    u0 : array (d,)
        Initial condition inside ``box``.
    loss, eta, n_steps : see :func:`omd_trajectory`
    box : (low, high)

    Returns
    -------
    ndarray (n_steps, d), float64: the iterates ``u`` (not ``exp(u)``).
    """
    loss = check_choice(loss, "loss", LOSSES)
    eta, n_steps, box = _check_run_args(eta, n_steps, box)
    u = _check_point(u0, "u0", box)
    out = np.empty((n_steps, u.shape[0]))
    out[0] = u
    for t in range(1, n_steps):
        x = np.exp(u)
        u = np.clip(u - eta * x * loss_gradient(loss, x), *box)
        out[t] = u
    return out


def bisection_trajectory(
    a0: Any,
    b0: Any,
    *,
    loss: str = "tan",
    n_steps: int = 100,
    box: tuple[float, float] = BM_BOX,
) -> np.ndarray:
    """The bisection method on the segment from ``a0`` to ``b0`` (paper Algorithm 3).

    ``z(t) = (a(t) + b(t)) / 2``; if ``f(z) < 0`` then ``a <- z``, if ``f(z) > 0`` then ``b <- z``,
    where ``f`` is the scalar loss (a sum over coordinates) and ``a, b, z`` are whole vectors.
    If ``f(z) == 0`` exactly, the interval collapses (``a = b = z``) and ``z`` is a fixed point for
    the remaining steps (see the module docstring for why).

    Parameters
    ----------
    a0, b0 : array (d,)
        The bracket: ``f(a0) < 0 < f(b0)``, both inside ``box``.
    loss : {"tan", "quartic"}
        Only ``"tan"`` changes sign; ``"quartic"`` (>= 0 everywhere) has no valid bracket.
    n_steps : int
        Number of iterates returned, ``z(0) = (a0 + b0) / 2`` included.
    box : (low, high)

    Returns
    -------
    ndarray (n_steps, d), float64: the iterates ``z``.
    """
    loss = check_choice(loss, "loss", LOSSES)
    _, n_steps, box = _check_run_args(1.0, n_steps, box)
    a = _check_point(a0, "a0", box)
    b = _check_point(b0, "b0", box)
    if a.shape != b.shape:
        raise ValueError(f"a0 and b0 must have the same shape, got {a.shape} and {b.shape}")
    fa, fb = float(loss_value(loss, a)), float(loss_value(loss, b))
    if not (fa < 0 < fb):
        raise ValueError(
            f"bisection needs a bracket with f(a0) < 0 < f(b0); got f(a0) = {fa!r}, "
            f"f(b0) = {fb!r} for loss={loss!r}"
            + (" (sum x^4 is never negative: there is no bracket)" if loss == "quartic" else "")
        )
    out = np.empty((n_steps, a.shape[0]))
    z = (a + b) / 2
    out[0] = z
    for t in range(1, n_steps):
        fz = loss_value(loss, z)
        if fz < 0:
            a = z
        elif fz > 0:
            b = z
        else:  # exact root: collapse the bracket, z stays put
            a = b = z
        z = (a + b) / 2
        out[t] = z
    return out


def exact_root_step(trajectory: Any, loss: str = "tan") -> int:
    """First step at which the iterate is an exact root (``f(z) == 0`` in float64), or -1.

    Parameters
    ----------
    trajectory : array (n_steps, d)
    loss : {"tan", "quartic"}
    """
    values = loss_value(loss, trajectory)
    hits = np.flatnonzero(values == 0)
    return int(hits[0]) if hits.size else -1


# ----- configuration and results --------------------------------------------------------------
@dataclass(frozen=True)
class OptimizerConfig:
    """Settings of the optimizer experiment (defaults: the paper's, SPEC section 5A).

    Attributes
    ----------
    loss : {"tan", "quartic"}
        ``"tan"``: fig. 2, with OMD, OGD and BM; ``"quartic"``: fig. S1, OMD and OGD only.
    method : {"rrr", "standard", "exact"}
        DMD variant (same eigenvalues at the same rank; the paper used DMD-RRR).
    delays : int
        Time delays (4 in the paper: 2 x 5 = 10 observables).
    rank : int or None
        Modes kept (10 = all of them in the paper); None: the tolerance rule.
    eta : float
        Learning rate of OMD and OGD.
    n_steps : int
        Iterates per run ``T`` (100), the initial condition included.
    n_groups : int
        Groups of initial conditions for the permutation test (5 groups of 5).
    n_shuffles : int
        Shuffles of the paper's shuffle control (100 in the paper).
    n_permutations : int
        Permutations of the permutation test; with 5 + 5 spectra the 252 relabelings are all
        enumerated whenever ``n_permutations >= 252`` (exact test).
    p : float
        Order of the Wasserstein distance (1: the mean matched distance, as the reference code).
    alpha : float
        Level of the permutation test used for the verdict.
    seed : int
        Seed of the shuffle control and of the (Monte Carlo) permutation test; the optimizers
        themselves are deterministic.
    """

    loss: str = "tan"
    method: str = "rrr"
    delays: int = 4
    rank: int | None = 10
    eta: float = 0.01
    n_steps: int = 100
    n_groups: int = 5
    n_shuffles: int = 100
    n_permutations: int = 999
    p: float = 1.0
    alpha: float = 0.05
    seed: int = 0

    #: The domain of every field, declared once (:func:`conjugacy._checks.validate`; the options
    #: of ``conjugacy reproduce optimizers`` take their bounds and choices from it).
    constraints: ClassVar[Mapping[str, Param]] = MappingProxyType({
        "loss": Choice(*LOSSES),
        "method": Choice("rrr", "standard", "exact"),
        "delays": Int(0),
        "rank": Int(1, allow_none=True),
        "eta": Float(0, open_minimum=True),
        "n_steps": Int(1),
        "n_groups": Int(2, 12),  # groups of the 25 runs (initial_condition_groups)
        "n_shuffles": Int(1),
        "n_permutations": Int(1),
        "p": Float(1),
        "alpha": Float(0, 1, open_minimum=True, open_maximum=True),
        "seed": Int(0),
    })

    def __post_init__(self) -> None:
        validate(self, self.constraints)
        if self.n_steps < self.delays + 2:
            raise ValueError(
                f"n_steps must be >= delays + 2 = {self.delays + 2} (one snapshot pair per run), "
                f"got {self.n_steps}"
            )

    @property
    def methods(self) -> tuple[str, ...]:
        """The optimizers run for this loss: BM only for ``"tan"``."""
        return METHODS if self.loss == "tan" else METHODS[:2]

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """The compared pairs, e.g. ``(("omd", "ogd"), ("omd", "bm"), ("ogd", "bm"))``."""
        m = self.methods
        return tuple((m[i], m[j]) for i in range(len(m)) for j in range(i + 1, len(m)))

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-serialisable dict."""
        return asdict(self)


@dataclass(frozen=True, eq=False)
class OptimizerResults:
    """Everything :func:`run` computed. Dict keys are optimizer names (``"omd"``, ``"ogd"``,
    ``"bm"``) or pairs (``"omd-ogd"``, ...); arrays are read-only.

    Attributes
    ----------
    config : OptimizerConfig
    initial_conditions : dict of ndarray
        ``"omd"``: x(0) (25, 2); ``"ogd"``: u(0) (25, 2); ``"bm"``: (25, 2, 2), axis 1 is
        ``(a(0), b(0))``.
    trajectories : dict of ndarray (25, n_steps, 2)
        The iterates x, u, z.
    losses : dict of ndarray (25, n_steps)
        ``f(x)``, ``f(exp(u))``, ``|f(z)|``.
    spectra : dict of Spectrum
        Koopman spectra of all 25 runs of each optimizer.
    groups : tuple of tuples of int
        Run indices of each group (:func:`initial_condition_groups`).
    group_spectra : dict of tuple of Spectrum
        One spectrum per group, per optimizer.
    wasserstein : dict of float
        ``W_p`` between the full spectra (all eigenvalues), per pair.
    shuffle : dict of dict
        The paper's shuffle control on the full spectra (all eigenvalues), per pair (see its
        caveat): ``fraction``, ``n_shuffles``, ``true_distance``.
    permutation : dict of dict
        Permutation test on the group spectra, per pair, on the spectra the verdicts use
        (``comparison["verdict_uses"]``): ``statistic``, ``pvalue``, ``n_permutations``,
        ``exact`` (and ``effect_size``, ``min_pvalue`` when the statistics provide them).
    comparison : dict
        The whole :func:`conjugacy.analysis.compare_conditions` result: all-eigenvalue and
        residual-filtered comparisons, verdicts.
    exact_root_steps : ndarray of int (25,) or None
        BM only: first step at which ``f(z) == 0`` exactly, -1 if never.
    notes : tuple of str
        Things worth knowing about the run, e.g. spectra whose numerical rank was below the
        requested ``rank`` (then only the resolvable eigenvalues are kept, see
        :func:`conjugacy.koopman_spectrum`).
    """

    config: OptimizerConfig
    initial_conditions: dict[str, np.ndarray]
    trajectories: dict[str, np.ndarray]
    losses: dict[str, np.ndarray]
    spectra: dict[str, Spectrum]
    groups: tuple[tuple[int, ...], ...]
    group_spectra: dict[str, tuple[Spectrum, ...]]
    wasserstein: dict[str, float]
    shuffle: dict[str, Any]
    permutation: dict[str, Any]
    comparison: dict[str, Any]
    exact_root_steps: np.ndarray | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for mapping in (self.initial_conditions, self.trajectories, self.losses):
            for arr in mapping.values():
                arr.setflags(write=False)
        if self.exact_root_steps is not None:
            self.exact_root_steps.setflags(write=False)

    @property
    def methods(self) -> tuple[str, ...]:
        return self.config.methods

    @property
    def pair_keys(self) -> tuple[str, ...]:
        return tuple(f"{a}-{b}" for a, b in self.config.pairs)

    @property
    def shuffle_fractions(self) -> dict[str, float]:
        """Fraction of shuffles with distance >= the true one, per pair (the paper's number)."""
        return {k: float(v["fraction"]) for k, v in self.shuffle.items()}

    @property
    def pvalues(self) -> dict[str, float]:
        """Permutation-test p-values, per pair (on the spectra the verdicts use)."""
        return {k: float(v["pvalue"]) for k, v in self.permutation.items()}

    @property
    def conjugate(self) -> dict[str, bool]:
        """Verdict per pair: True (conjugate, i.e. no evidence against it) when the permutation
        p-value is >= ``config.alpha``; False (not conjugate) when it is below."""
        return {k: bool(p >= self.config.alpha) for k, p in self.pvalues.items()}


def _stack(fn: Callable[..., np.ndarray], *args: np.ndarray, **kwargs: Any) -> np.ndarray:
    return np.stack([fn(*row, **kwargs) for row in zip(*args)])


def run(config: OptimizerConfig | None = None) -> OptimizerResults:
    """Run the optimizer experiment: trajectories, Koopman spectra, distances and tests.

    Parameters
    ----------
    config : OptimizerConfig, default ``OptimizerConfig()`` (the paper's fig. 2)

    Returns
    -------
    OptimizerResults
    """
    from ..analysis import compare_conditions

    if config is None:
        config = OptimizerConfig()
    if not isinstance(config, OptimizerConfig):
        raise TypeError(f"config must be an OptimizerConfig, got {type(config).__name__}")
    c = config
    common = {"loss": c.loss, "n_steps": c.n_steps}
    x0, u0 = omd_initial_conditions(), ogd_initial_conditions()
    ics: dict[str, np.ndarray] = {"omd": x0, "ogd": u0}
    trajs = {
        "omd": _stack(omd_trajectory, x0, eta=c.eta, **common),
        "ogd": _stack(ogd_trajectory, u0, eta=c.eta, **common),
    }
    losses = {
        "omd": loss_value(c.loss, trajs["omd"]),
        "ogd": loss_value(c.loss, np.exp(trajs["ogd"])),
    }
    root_steps = None
    if "bm" in c.methods:
        a0, b0 = bisection_initial_conditions()
        ics["bm"] = np.stack([a0, b0], axis=1)
        trajs["bm"] = _stack(bisection_trajectory, a0, b0, **common)
        losses["bm"] = np.abs(loss_value(c.loss, trajs["bm"]))
        root_steps = np.array([exact_root_step(z, c.loss) for z in trajs["bm"]], dtype=np.int64)

    def spectrum(runs: np.ndarray) -> Spectrum:
        return koopman_spectrum(runs, delays=c.delays, rank=c.rank, method=c.method)

    groups = initial_condition_groups(c.n_groups)
    # A rank above the numerical rank is reduced by koopman_spectrum (with a RankWarning each
    # time: up to 6 per optimizer here); the reductions are reported once, in `notes`.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankWarning)
        spectra = {m: spectrum(trajs[m]) for m in c.methods}
        group_spectra = {m: tuple(spectrum(trajs[m][list(g)]) for g in groups) for m in c.methods}
    notes = []
    for m in c.methods:
        if c.rank is not None and spectra[m].rank < c.rank:
            kept = sorted({s.rank for s in group_spectra[m]})
            notes.append(
                f"{m.upper()}: the delay-embedded data have numerical rank {spectra[m].rank} < "
                f"rank={c.rank}, so {spectra[m].rank} eigenvalues are kept (group spectra: "
                f"{', '.join(map(str, kept))}); the others would come from singular values below "
                "the tolerance, i.e. rounding noise"
            )

    comparison = compare_conditions(
        {m: list(group_spectra[m]) for m in c.methods},
        pairs=c.pairs,
        pooled=spectra,
        alpha=c.alpha,
        seed=c.seed,
        n_permutations=c.n_permutations,
        n_shuffles=c.n_shuffles,
        shuffle="pooled",
        ks=False,
        p=c.p,
    )
    every = comparison["all"]
    return OptimizerResults(
        config=c,
        initial_conditions=ics,
        trajectories=trajs,
        losses=losses,
        spectra=spectra,
        groups=groups,
        group_spectra=group_spectra,
        wasserstein=dict(every["pooled_distances"]),
        shuffle=dict(every["shuffle_control"]),
        permutation=dict(comparison[comparison["verdict_uses"]]["permutation_tests"]),
        comparison=comparison,
        exact_root_steps=root_steps,
        notes=tuple(notes),
    )


# ----- output ----------------------------------------------------------------------------------
VERDICT_RULE = (
    "not conjugate if the permutation test on 5 group spectra per optimizer rejects at level "
    "alpha (p < alpha), on the residual-filtered spectra when the engine filters (else on all "
    "eigenvalues); otherwise conjugate (no evidence against conjugacy)"
)


def results_to_dict(results: OptimizerResults) -> dict[str, Any]:
    """The content of ``results.json`` (see :func:`save_results`), JSON-serialisable."""
    from ..analysis import spectra_to_json
    from ..results import complex_to_pairs, package_info, to_jsonable
    from ..study import provenance

    r = results
    c = r.config
    out: dict[str, Any] = {
        "experiment": "optimizers",
        "figure": "fig. 2" if c.loss == "tan" else "fig. S1",
        "settings": c.to_dict(),
        "package": package_info(),
        "provenance": provenance(data={"name": "closed-form optimizer iterates",
                                       "source": "generated (25 initial conditions per optimizer)"}),
        "methods": list(r.methods),
        "eigenvalues": {m: complex_to_pairs(s.eigenvalues) for m, s in r.spectra.items()},
        "residuals": {m: to_jsonable(s.residuals) for m, s in r.spectra.items()},
        "residuals_informative": {m: s.residuals_informative for m, s in r.spectra.items()},
        "wasserstein": dict(r.wasserstein),
        "shuffle_control": dict(r.shuffle),
        "permutation_test": dict(r.permutation),
        "comparison": r.comparison,
        "verdicts": {k: "conjugate" if ok else "not conjugate" for k, ok in r.conjugate.items()},
        "verdict_rule": VERDICT_RULE,
        "groups": [list(g) for g in r.groups],
        "group_eigenvalues": {
            m: [complex_to_pairs(s.eigenvalues) for s in gs] for m, gs in r.group_spectra.items()
        },
        "spectra": {m: v[0] for m, v in spectra_to_json({m: [s] for m, s in r.spectra.items()}).items()},
        "final_loss_mean": {m: float(v[:, -1].mean()) for m, v in r.losses.items()},
        "notes": list(r.notes),
    }
    if r.exact_root_steps is not None:
        out["bisection"] = {
            "exact_root_steps": r.exact_root_steps.tolist(),
            "runs_with_exact_root": int((r.exact_root_steps >= 0).sum()),
            "after_exact_root": "the bracket collapses to z (a = b = z); z is held fixed",
        }
    return out


def make_figures(results: OptimizerResults, example: int = EXAMPLE_RUN) -> dict[str, Any]:
    """The figures of fig. 2 / S1 as :class:`matplotlib.figure.Figure` objects.

    Returns
    -------
    dict
        ``"trajectories"`` (fig. 2A: the iterates of run ``example``), ``"losses"`` (fig. 2B: mean
        and min-max range over the 25 runs), ``"eigenvalues"`` (fig. 2C: the whole plane with the
        unit circle, and a zoom on the real axis near 1) and ``"overview"`` (the three panels).
    """
    from ..plots import (
        new_figure,
        plot_eigenvalues,
        plot_loss_curves,
        plot_trajectories,
    )

    r = results
    example = check_int(example, "example", minimum=0)
    if example >= 25:
        raise ValueError(f"example must be a run index in [0, 24], got {example}")
    names = {"omd": ("x_1", "x_2"), "ogd": ("u_1", "u_2"), "bm": ("z_1", "z_2")}
    title = r"$f(x) = \sum_i \tan x_i$" if r.config.loss == "tan" else r"$f(x) = \sum_i x_i^4$"
    example_trajs = {m.upper(): r.trajectories[m][example] for m in r.methods}
    feature_names = {m.upper(): names[m] for m in r.methods}
    curves = {m.upper(): r.losses[m] for m in r.methods}
    spectra = {m.upper(): r.spectra[m] for m in r.methods}

    def draw_traj(ax: Any) -> None:
        plot_trajectories(example_trajs, ax=ax, feature_names=feature_names)
        ax.set_title(f"A  example trajectories (run {example})", loc="left")

    def draw_loss(ax: Any) -> None:
        plot_loss_curves(curves, ax=ax, spread="minmax")
        ax.set_ylabel("loss (|f(z)| for BM)" if "bm" in r.methods else "loss")
        ax.set_title("B  loss, mean and range of 25 runs", loc="left")

    figs: dict[str, Any] = {}
    fig, ax = new_figure()
    draw_traj(ax)
    figs["trajectories"] = fig
    fig, ax = new_figure()
    draw_loss(ax)
    figs["losses"] = fig
    fig, axes = new_figure(ncols=2, width=9.0)
    plot_eigenvalues(spectra, ax=axes[0])
    axes[0].set_title("C  Koopman eigenvalues", loc="left")
    plot_eigenvalues(spectra, ax=axes[1], zoom=(0.45, 1.05, -0.06, 0.06), unit_circle=True)
    axes[1].set_title("zoom near 1", loc="left")
    figs["eigenvalues"] = fig
    fig, axes = new_figure(ncols=3, width=13.0, height=3.8)
    draw_traj(axes[0])
    draw_loss(axes[1])
    plot_eigenvalues(spectra, ax=axes[2])
    axes[2].set_title("C  Koopman eigenvalues", loc="left")
    fig.suptitle(f"Optimizer conjugacy, {title}")
    figs["overview"] = fig
    return figs


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    with atomic_open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def prepare_output_dir(out: str | os.PathLike) -> Path:
    """Create ``out`` (and its parents) as a folder; a clear error if it exists as a file.

    Raises
    ------
    NotADirectoryError
        If ``out`` (or one of its parents) exists and is not a folder.
    """
    out = Path(out)
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            raise NotADirectoryError(
                f"output folder {str(out)!r}: {str(parent)!r} exists and is not a folder"
            )
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_results(results: OptimizerResults, out: str | os.PathLike) -> dict[str, list[Path]]:
    """Write ``results.json``, ``trajectories.npz`` and the figures (PNG + SVG) into ``out``.

    ``trajectories.npz`` holds, per optimizer ``m``, ``m`` (25, n_steps, 2: the iterates, the
    observables of the Koopman step), ``m_loss`` (25, n_steps) and ``m_initial``; it loads with
    ``np.load(..., allow_pickle=False)`` and feeds ``conjugacy spectrum trajectories.npz --key m``.
    Every file is written atomically; ``results.json`` is written last and lists the others.

    Returns
    -------
    dict
        ``{"results": [json path], "trajectories": [npz path], "figures": [png, svg, ...]}``
    """
    from ..plots import save_figure
    from ..results import write_json

    out = prepare_output_dir(out)
    arrays: dict[str, np.ndarray] = {}
    for m in results.methods:
        arrays[m] = results.trajectories[m]
        arrays[f"{m}_loss"] = results.losses[m]
        arrays[f"{m}_initial"] = results.initial_conditions[m]
    npz = _save_npz(out / "trajectories.npz", arrays)
    figure_paths: list[Path] = []
    figs = make_figures(results)
    for name, fig in figs.items():
        figure_paths.extend(save_figure(fig, out / name))
    content = results_to_dict(results)
    content["files"] = {
        "trajectories": npz.name,
        "figures": [p.name for p in figure_paths],
    }
    json_path = write_json(out / "results.json", content)
    return {"results": [json_path], "trajectories": [npz], "figures": figure_paths}
