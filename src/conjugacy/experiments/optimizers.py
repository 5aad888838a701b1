"""Conjugate optimizers: online mirror descent, online gradient descent and bisection.

Reproduces Redman et al. (NeurIPS 2024), sec. 4.1, fig. 2 (``f(x) = sum tan x_i``) and fig. S1
(``f(x) = sum x_i^4``), appendix A, as published (SPEC section 5A): ``d = 2``, ``eta = 0.01``,
``T = 100`` iterates (the initial condition and 99 updates), 25 initial conditions per optimizer,
float64 throughout.

- **OMD** (log-barrier regulariser ``R(x) = -sum log x_i``): ``y_i = 1 / (1/x_i + eta f'(x_i))``,
  then the Bregman projection onto ``K = [0.01, 1]^2``, which for this separable ``R`` and a box
  is exactly a clip (``D_R(y || x)`` is a sum of 1-D convex terms minimised at ``y_i = x_i``).
- **OGD** on ``f(exp(u))``: ``u_i' = u_i - eta exp(u_i) f'(exp(u_i))``, clipped to
  ``K' = q^-1(K) = [log 0.01, 0]^2``; ``q(u) = exp(u)`` is the conjugacy (in continuous time both
  flows are ``x' = -x^2 f'(x)``).
- **BM** (bisection; ``tan`` only, ``sum x^4`` never changes sign): ``a, b, z`` are vectors and the
  test is on the *scalar* loss ``f(z) = tan z_1 + tan z_2`` (Algorithm 3 and the reference code),
  so each step bisects the segment from ``a(0)`` to ``b(0)``, on which ``f`` is strictly
  increasing: the root is unique (appendix A.2). The published setting hits ``f(z) == 0`` exactly
  after 52-57 steps in 20 of 25 runs; the bracket then collapses (``a = b = z``) and ``z`` stays
  put (Algorithm 3 taken literally would leave the root; the reference code pads with zeros).

The Koopman step: the iterates themselves (for OGD ``u``, not ``exp(u)``), 4 delays (10
observables), DMD-RRR, all 10 eigenvalues (``rank = 10``; their residuals are ~0 whatever the
eigenvalues, so they carry no information here). The 25 initial conditions of each optimizer are
split into 5 groups of 5 by the diagonals of the 5 x 5 grid (:func:`initial_condition_groups`);
each group gives one spectrum, and the analysis pipeline (:func:`conjugacy.analysis.summarize`)
compares the 5 group spectra of each pair of optimizers by the permutation test (252 relabelings:
the smallest p is 1/126) with the package's one verdict rule (:func:`conjugacy.stats.verdict`:
"undecided" when no p below alpha is attainable, e.g. with 3 groups). ``W_p`` between the spectra
of all 25 runs and the paper's shuffle control (which only counts ties) are reported beside it.

Loss curves: ``f(x)`` for OMD, ``f(exp(u))`` for OGD (one loss seen through the conjugacy), and
``|f(z)|`` for BM (the residual of the root search, as the reference code plots in fig. 2B).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from .._atomic import atomic_open
from .._checks import (
    Choice,
    DeclaredConfig,
    Float,
    Int,
    Param,
    as_numeric_array,
    check_choice,
    check_finite,
    check_int,
    check_positive_float,
)
from ..analysis import Claim, Results, summarize
from ..analysis.results import curve_summary, verdict_claim
from ..spectrum import RankWarning, Spectrum, koopman_spectrum

__all__ = [
    "Iterates",
    "OptimizerConfig",
    "claims",
    "fit_spectra",
    "initial_condition_groups",
    "run",
    "simulate",
]

#: Losses of the paper: ``"tan"`` is ``f(x) = sum tan x_i`` (fig. 2), ``"quartic"`` is
#: ``f(x) = sum x_i^4`` (fig. S1).
LOSSES = ("tan", "quartic")
#: The three optimizers, in the order used everywhere (the conditions of the comparison).
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

    Examples
    --------
    >>> groups = initial_condition_groups(5)
    >>> groups[0], sorted(n for g in groups for n in g) == list(range(25))
    ((0, 9, 13, 17, 21), True)
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
class OptimizerConfig(DeclaredConfig):
    """Settings of the optimizer experiment (defaults: the paper's, SPEC section 5A).

    Attributes
    ----------
    loss
        ``"tan"``: fig. 2, with OMD, OGD and BM; ``"quartic"``: fig. S1, OMD and OGD only.
    method
        DMD variant (same eigenvalues at the same rank; the paper used DMD-RRR).
    delays, rank
        Time delays (4: 2 x 5 = 10 observables) and modes kept (10, all; None: the tolerance rule).
    eta, n_steps
        Learning rate of OMD and OGD; iterates per run ``T`` (100), the initial condition included.
    n_groups
        Groups of initial conditions for the permutation test (5 groups of 5).
    n_shuffles, n_permutations
        Shuffles of the paper's shuffle control (100); permutations of the permutation test
        (with 5 + 5 spectra the 252 relabelings are enumerated when ``n_permutations >= 252``).
    p, alpha
        Order of the Wasserstein distance (1, as the reference code); level of the verdict.
    seed
        Seed of the shuffle control and the permutation test (the optimizers are deterministic).

    Raises
    ------
    ValueError
        A setting outside its range, naming it (e.g. ``n_steps < delays + 2``).

    Examples
    --------
    >>> cfg = OptimizerConfig(loss="quartic", n_steps=30)
    >>> cfg.methods, cfg.pairs
    (('omd', 'ogd'), (('omd', 'ogd'),))
    >>> OptimizerConfig(n_steps=5)
    Traceback (most recent call last):
    ...
    ValueError: n_steps must be >= delays + 2 = 6 (one snapshot pair per run), got 5
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

    def check(self) -> None:
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


# ----- the experiment ---------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Iterates:
    """What the optimizers did from their 25 initial conditions; dict keys are optimizer names
    (``"omd"``, ``"ogd"``, ``"bm"``); arrays are read-only.

    Attributes
    ----------
    initial_conditions : dict of ndarray
        ``"omd"``: x(0) (25, 2); ``"ogd"``: u(0) (25, 2); ``"bm"``: (25, 2, 2), axis 1 is
        ``(a(0), b(0))``.
    trajectories : dict of ndarray (25, n_steps, 2)
        The iterates x, u, z (the observables of the Koopman step).
    losses : dict of ndarray (25, n_steps)
        ``f(x)``, ``f(exp(u))``, ``|f(z)|``.
    exact_root_steps : ndarray of int (25,) or None
        BM only: the first step at which ``f(z) == 0`` exactly, -1 if never.

    Examples
    --------
    >>> it = simulate(OptimizerConfig(n_steps=30))
    >>> it.trajectories["omd"].shape, it.losses["bm"].shape, it.initial_conditions["bm"].shape
    ((25, 30, 2), (25, 30), (25, 2, 2))
    >>> it.trajectories["ogd"].flags.writeable
    False
    """

    initial_conditions: dict[str, np.ndarray]
    trajectories: dict[str, np.ndarray]
    losses: dict[str, np.ndarray]
    exact_root_steps: np.ndarray | None = None

    def __post_init__(self) -> None:
        for mapping in (self.initial_conditions, self.trajectories, self.losses):
            for arr in mapping.values():
                arr.setflags(write=False)
        if self.exact_root_steps is not None:
            self.exact_root_steps.setflags(write=False)


def _stack(fn: Callable[..., np.ndarray], *args: np.ndarray, **kwargs: Any) -> np.ndarray:
    return np.stack([fn(*row, **kwargs) for row in zip(*args)])


def simulate(config: OptimizerConfig) -> Iterates:
    """The trajectories and losses of the optimizers of ``config`` from the published grids.

    OMD, OGD (and BM for ``loss="tan"``) from their 25 initial conditions each (5 x 5 grids, as
    the reference code), ``config.n_steps`` iterates per run (Redman et al. 2024, sec. 4.1 and
    appendix A).

    Returns
    -------
    Iterates

    Examples
    --------
    >>> it = simulate(OptimizerConfig(loss="quartic", n_steps=30))
    >>> sorted(it.trajectories), it.trajectories["omd"].shape, it.exact_root_steps is None
    (['ogd', 'omd'], (25, 30, 2), True)
    """
    c = config
    common = {"loss": c.loss, "n_steps": c.n_steps}
    x0, u0 = omd_initial_conditions(), ogd_initial_conditions()
    ics = {"omd": x0, "ogd": u0}
    trajs = {"omd": _stack(omd_trajectory, x0, eta=c.eta, **common),
             "ogd": _stack(ogd_trajectory, u0, eta=c.eta, **common)}
    losses = {"omd": loss_value(c.loss, trajs["omd"]),
              "ogd": loss_value(c.loss, np.exp(trajs["ogd"]))}
    root_steps = None
    if "bm" in c.methods:
        a0, b0 = bisection_initial_conditions()
        ics["bm"] = np.stack([a0, b0], axis=1)
        trajs["bm"] = _stack(bisection_trajectory, a0, b0, **common)
        losses["bm"] = np.abs(loss_value(c.loss, trajs["bm"]))
        root_steps = np.array([exact_root_step(z, c.loss) for z in trajs["bm"]], dtype=np.int64)
    return Iterates(ics, trajs, losses, root_steps)


def fit_spectra(config: OptimizerConfig, iterates: Iterates
                ) -> tuple[dict[str, Spectrum], dict[str, list[Spectrum]], list[str]]:
    """The spectrum of all 25 runs and of each group of runs, per optimizer, and notes.

    A ``rank`` above the numerical rank is reduced by :func:`conjugacy.koopman_spectrum` (with a
    RankWarning per spectrum); the reductions are reported once per optimizer, in the notes.

    Returns
    -------
    pooled : dict of Spectrum
        Optimizer -> the spectrum of all 25 runs.
    per_group : dict of list of Spectrum
        Optimizer -> one spectrum per group of :func:`initial_condition_groups`.
    notes : list of str
        One line per optimizer whose rank was reduced.

    Examples
    --------
    >>> cfg = OptimizerConfig(n_steps=30)
    >>> pooled, per_group, notes = fit_spectra(cfg, simulate(cfg))
    >>> pooled["omd"].eigenvalues.shape, len(per_group["bm"]), notes[0][:47]
    ((10,), 5, 'BM: the delay-embedded data have numerical rank')
    """
    c = config

    def spectrum(runs: np.ndarray) -> Spectrum:
        return koopman_spectrum(runs, delays=c.delays, rank=c.rank, method=c.method)

    groups = initial_condition_groups(c.n_groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankWarning)
        pooled = {m: spectrum(iterates.trajectories[m]) for m in c.methods}
        per_group = {m: [spectrum(iterates.trajectories[m][list(g)]) for g in groups]
                     for m in c.methods}
    notes = [
        f"{m.upper()}: the delay-embedded data have numerical rank {pooled[m].rank} < "
        f"rank={c.rank}, so {pooled[m].rank} eigenvalues are kept (group spectra: "
        f"{', '.join(map(str, sorted({s.rank for s in per_group[m]})))}); the others would come "
        "from singular values below the tolerance, i.e. rounding noise"
        for m in c.methods if c.rank is not None and pooled[m].rank < c.rank]
    return pooled, per_group, notes


def _claim(content: Mapping[str, Any], claim: str, pairs: list[str], expect: str) -> Claim:
    cmp = content["comparison"]
    evidence = "; ".join(
        f"{k.upper()}: {cmp['verdicts'][k]['verdict']}, W1 (all runs) "
        f"{cmp['all']['pooled_distances'][k]:.4f}, p = {cmp['verdicts'][k]['pvalue']:.3g} "
        f"({cmp['n_seeds']} groups per optimizer, {cmp['verdict_uses']} spectra)" for k in pairs)
    return verdict_claim(claim, [cmp["verdicts"][k] for k in pairs], expect, evidence)


def claims(content: Mapping[str, Any]) -> list[Claim]:
    """The paper's claims about fig. 2 / S1, decided on the verdicts and spectra of ``content``.

    Parameters
    ----------
    content : mapping
        A ``results.json`` of :func:`run` (``Results.content``): ``comparison`` and
        ``pooled_spectra`` are read.

    Returns
    -------
    list of Claim
        OMD and OGD conjugate, their spectra real and positive, bisection not conjugate to either
        (the last only for ``loss="tan"``).

    Examples
    --------
    >>> res = run(OptimizerConfig(n_steps=30, n_shuffles=10, n_permutations=252))
    >>> [(c.claim, c.holds) for c in claims(res.content)][0]
    ('OMD and OGD are conjugate', True)
    """
    out = []
    if "omd-ogd" in content["comparison"]["verdicts"]:
        out.append(_claim(content, "OMD and OGD are conjugate", ["omd-ogd"], "conjugate"))
        eig = {m: np.array(content["pooled_spectra"][m][0]["eigenvalues"], float).reshape(-1, 2)
               for m in ("omd", "ogd")}
        real = all(np.abs(e[:, 1]).max() < 1e-10 and e[:, 0].min() > 0 for e in eig.values())
        out.append(Claim(
            "the OMD and OGD spectra consist only of real, positive eigenvalues", bool(real),
            "; ".join(f"{m.upper()}: max |Im| {np.abs(e[:, 1]).max():.2g}, min Re "
                      f"{e[:, 0].min():.3f}" for m, e in eig.items())))
    bm = [k for k in content["comparison"]["verdicts"] if "bm" in k.split("-")]
    if bm:
        out.append(_claim(content, "bisection is not conjugate to OMD or OGD", bm, "not conjugate"))
    return out


def _sections(config: OptimizerConfig, iterates: Iterates) -> dict[str, Any]:
    out: dict[str, Any] = {
        "figure": "fig. 2" if config.loss == "tan" else "fig. S1",
        "groups": [list(g) for g in initial_condition_groups(config.n_groups)],
    }
    if iterates.exact_root_steps is not None:
        steps = iterates.exact_root_steps
        out["bisection"] = {
            "exact_root_steps": steps.tolist(), "runs_with_exact_root": int((steps >= 0).sum()),
            "after_exact_root": "the bracket collapses to z (a = b = z); z is held fixed"}
    return out


def _save_trajectories(out: Path, iterates: Iterates) -> Path:
    arrays: dict[str, np.ndarray] = {}
    for m, traj in iterates.trajectories.items():
        arrays.update({m: traj, f"{m}_loss": iterates.losses[m],
                       f"{m}_initial": iterates.initial_conditions[m]})
    with atomic_open(out / "trajectories.npz", "wb") as fh:
        np.savez(fh, **arrays)
    return out / "trajectories.npz"


def run(config: OptimizerConfig | None = None, out: Any = None) -> Results:
    """Run the optimizer experiment: trajectories, Koopman spectra, comparison, claims.

    Parameters
    ----------
    config : OptimizerConfig, default ``OptimizerConfig()`` (the paper's fig. 2)
    out : path, optional
        Folder for ``results.json`` (schema ``"conjugacy.results/2"``), ``trajectories.npz``
        (per optimizer ``m``: ``m`` (25, n_steps, 2), ``m_loss``, ``m_initial``; loads with
        ``allow_pickle=False`` and feeds ``conjugacy spectrum trajectories.npz --key m``) and the
        figures (PNG + SVG, :mod:`conjugacy.plots.optimizers`).

    Returns
    -------
    Results
        ``spectra``: the group spectra per optimizer; ``content["pooled_spectra"]``: those of all
        25 runs; the verdicts in ``content["comparison"]["verdicts"]`` (the only ones).

    Raises
    ------
    TypeError
        ``config`` is not an :class:`OptimizerConfig`.
    NotADirectoryError
        ``out`` (or a parent) exists and is not a folder.

    References
    ----------
    Redman et al. (2024), sec. 4.1, fig. 2 (``loss="tan"``) and S1 (``"quartic"``), appendix A.

    Examples
    --------
    Fewer iterates and shuffles than the paper, no files written (``out=None``):

    >>> res = run(OptimizerConfig(n_steps=30, n_shuffles=10, n_permutations=252))
    >>> {k: v["verdict"] for k, v in res["comparison"]["verdicts"].items()}
    {'omd-ogd': 'conjugate', 'omd-bm': 'not conjugate', 'ogd-bm': 'not conjugate'}
    """
    from ..study import experiment_session, provenance

    c = OptimizerConfig() if config is None else config
    with experiment_session(c, OptimizerConfig, out) as (out, _):
        iterates = simulate(c)
        pooled, per_group, notes = fit_spectra(c, iterates)
        files = {} if out is None else {"trajectories": _save_trajectories(out, iterates).name}

        def figures(results: Results, folder: Path) -> list[Path]:
            from ..plots.optimizers import draw_all

            return draw_all(folder, iterates.trajectories, iterates.losses, pooled, c.loss,
                            EXAMPLE_RUN)

        return summarize(
            per_group, experiment="optimizers",
            title=f"Conjugate optimizers ({'fig. 2' if c.loss == 'tan' else 'fig. S1'})",
            question="are OMD, OGD and bisection conjugate (equivalent training dynamics)?",
            conditions={m: _CONDITIONS[m] for m in c.methods},
            seeds={m: [f"group {k}" for k in range(c.n_groups)] for m in c.methods},
            observables="iterates", settings={
                "delays": c.delays, "rank": c.rank, "method": c.method,
                "reasoning": "as published: 4 delays of the 2-D iterates (10 observables), all 10 "
                             "eigenvalues"},
            stats={"alpha": c.alpha, "seed": c.seed, "n_permutations": c.n_permutations,
                   "n_shuffles": c.n_shuffles, "shuffle": "pooled", "ks": False, "p": c.p,
                   "pairs": c.pairs},
            pooled=pooled, fields={"config": c.to_dict(), "files": files, "loss": {
                m: curve_summary(v, range(v.shape[1])) for m, v in iterates.losses.items()}},
            sections=lambda spectra: _sections(c, iterates), claims=claims,
            figures=figures, notes=notes, out=out,
            provenance=provenance(data={"name": "closed-form optimizer iterates",
                                        "source": "generated (25 initial conditions per optimizer)"}))


_CONDITIONS = {"omd": "online mirror descent (log barrier), iterates x",
               "ogd": "online gradient descent on f(exp(u)), iterates u",
               "bm": "bisection on the segment a(0)-b(0), iterates z"}
