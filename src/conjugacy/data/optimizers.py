"""Closed-form optimizer iterates with a known conjugacy: online mirror descent (OMD), online
gradient descent (OGD) on ``f(exp(u))`` and bisection (BM), on ``f(x) = sum tan x_i`` or
``sum x_i^4``, from the published initial-condition grids of Redman et al. (NeurIPS 2024),
appendix A. OMD and OGD are conjugate by ``q(u) = exp(u)``; bisection is not: reference dynamics
for testing a conjugacy measure (the optimizer study, :mod:`conjugacy.experiments.optimizers`).

- **OMD** (log barrier ``R(x) = -sum log x_i``): ``y_i = 1 / (1/x_i + eta f'(x_i))``, then the
  Bregman projection onto ``K = [0.01, 1]^2``, which for this separable ``R`` and a box is
  exactly a clip (``D_R(y || x)`` is a sum of 1-D convex terms minimised at ``y_i = x_i``).
- **OGD** on ``f(exp(u))``: ``u_i' = u_i - eta exp(u_i) f'(exp(u_i))``, clipped to
  ``K' = q^-1(K) = [log 0.01, 0]^2``; ``q(u) = exp(u)`` is the conjugacy (in continuous time both
  flows are ``x' = -x^2 f'(x)``).
- **BM** (bisection; ``tan`` only, ``sum x^4`` never changes sign): ``a, b, z`` are vectors and the
  test is on the *scalar* loss ``f(z)`` (Algorithm 3 and the reference code), so each step bisects
  the segment from ``a(0)`` to ``b(0)``, on which ``f`` is strictly increasing: the root is unique
  (appendix A.2). The published setting hits ``f(z) == 0`` exactly after 52-57 steps in 20 of 25
  runs; the bracket then collapses (``a = b = z``) and ``z`` stays put (Algorithm 3 taken
  literally would leave the root; the reference code pads with zeros).

Each trajectory function takes one initial condition (d,) or a batch (n_runs, d) and returns
float64 iterates, the initial condition included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._checks import as_numeric_array, check_choice, check_finite, check_int, check_positive_float

__all__ = ["BM_BOX", "LOSSES", "OGD_BOX", "OMD_BOX", "bisection_initial_conditions",
           "bisection_trajectory", "exact_root_step", "loss_gradient", "loss_value",
           "ogd_initial_conditions", "ogd_trajectory", "omd_initial_conditions", "omd_trajectory"]

#: ``"tan"``: ``f(x) = sum tan x_i`` (fig. 2); ``"quartic"``: ``f(x) = sum x_i^4`` (fig. S1).
LOSSES = ("tan", "quartic")
#: The feasible boxes per coordinate: ``K`` (OMD), ``K' = log K`` (OGD), ``K''`` (BM).
OMD_BOX, OGD_BOX, BM_BOX = (0.01, 1.0), (float(np.log(0.01)), 0.0), (-4.0 / 3.0, 8.0 / 7.0)
_OMD_GRID = (0.1, 0.3, 0.5, 0.7, 0.9)
_OGD_GRID = (-2.30, -1.75, -1.20, -0.65, -0.10)
_BM_A_GRID = (-16 / 12, -13 / 12, -10 / 12, -7 / 12, -4 / 12)
# Printed as 1/7, 0.393, 0.643, 0.893, 8/7 in the paper: np.linspace(1/7, 8/7, 5) in the code.
_BM_B_GRID = (1 / 7, 1 / 7 + 0.25, 1 / 7 + 0.5, 1 / 7 + 0.75, 8 / 7)


def loss_value(loss: str, x: Any) -> np.ndarray:
    """The loss ``f(x) = sum_i g(x_i)`` over the last axis (``g = tan`` or ``x^4``): (..., d) ->
    (...). ``loss`` one of :data:`LOSSES` (ValueError otherwise)."""
    x = np.asarray(x, dtype=np.float64)
    return np.tan(x).sum(axis=-1) if check_choice(loss, "loss", LOSSES) == "tan" else (x**4).sum(-1)


def loss_gradient(loss: str, x: Any) -> np.ndarray:
    """The gradient of :func:`loss_value`, element-wise: ``1/cos(x)^2`` or ``4 x^3`` (shape of x)."""
    x = np.asarray(x, dtype=np.float64)
    return 1.0 / np.cos(x) ** 2 if check_choice(loss, "loss", LOSSES) == "tan" else 4.0 * x**3


def _grid(values: tuple[float, ...]) -> np.ndarray:
    first, second = np.meshgrid(np.asarray(values, dtype=np.float64), values)
    return np.stack([first.ravel(), second.ravel()], axis=1)  # row n: (g[n % 5], g[n // 5])


def omd_initial_conditions() -> np.ndarray:
    """The 25 OMD initial conditions ``x(0) in {0.1, 0.3, 0.5, 0.7, 0.9}^2``, shape (25, 2)."""
    return _grid(_OMD_GRID)


def ogd_initial_conditions() -> np.ndarray:
    """The 25 OGD ``u(0) in {-2.30, -1.75, -1.20, -0.65, -0.10}^2``, (25, 2); ``exp(u(0))`` is
    not the OMD grid (only the corners nearly coincide), as published."""
    return _grid(_OGD_GRID)


def bisection_initial_conditions() -> tuple[np.ndarray, np.ndarray]:
    """The 25 BM brackets ``a(0)``, ``b(0)`` (each (25, 2), paired by grid position):
    ``a(0) in {-16, -13, -10, -7, -4}^2 / 12``, ``b(0) in {1/7 + k/4, k = 0..4}^2``."""
    return _grid(_BM_A_GRID), _grid(_BM_B_GRID)



# ----- the optimizers: each takes one initial condition (d,) or a batch (n_runs, d) -----------
def _check_point(value: Any, name: str, box: tuple[float, float]) -> np.ndarray:
    x = as_numeric_array(value, name, allow_complex=False)
    if x.ndim not in (1, 2) or x.shape[-1] < 1:
        raise ValueError(f"{name} must be a 1-D array (d,) or a batch (n_runs, d) with d >= 1, "
                         f"got shape {x.shape}")
    check_finite(x, name)
    outside = np.argwhere((x < box[0]) | (x > box[1]))
    if outside.size:
        i = tuple(int(j) for j in outside[0])
        raise ValueError(
            f"{name}[{', '.join(map(str, i))}] = {float(x[i])!r} lies outside the feasible box "
            f"[{box[0]!r}, {box[1]!r}]; the initial condition must be feasible")
    return x.astype(np.float64, copy=True)


def _check_run_args(n_steps: Any, box: Any) -> tuple[int, tuple[float, float]]:
    n_steps = check_int(n_steps, "n_steps", minimum=1)
    try:
        lo, hi = (float(v) for v in box)
    except (TypeError, ValueError):
        raise TypeError(f"box must be a pair (low, high) of numbers, got {box!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"box must satisfy low < high (both finite), got ({lo!r}, {hi!r})")
    return n_steps, (lo, hi)


def _iterate(step: Callable[[np.ndarray, int], np.ndarray], x: np.ndarray, n_steps: int
             ) -> np.ndarray:
    """``x, step(x, 1), ...``: ``n_steps`` iterates stacked on axis -2, (..., n_steps, d)."""
    out = [x]
    for t in range(1, n_steps):
        out.append(step(out[-1], t))
    return np.stack(out, axis=-2)


def omd_trajectory(x0: Any, *, loss: str = "tan", eta: float = 0.01, n_steps: int = 100,
                   box: tuple[float, float] = OMD_BOX) -> np.ndarray:
    """Online mirror descent with the log barrier: ``x' = clip(1 / (1/x + eta f'(x)), box)``.

    ``x0`` (d,) or (n_runs, d) inside ``box`` (which must lie in ``x > 0``); ``loss`` one of
    :data:`LOSSES`; ``eta`` the learning rate; returns the ``n_steps`` iterates, ``x0`` included,
    (n_steps, d) or (n_runs, n_steps, d), float64. ValueError naming the argument (also when the
    mirror step is undefined, ``1/x + eta f'(x) <= 0``).

    >>> omd_trajectory([0.5, 0.7], n_steps=3).shape
    (3, 2)
    """
    loss, eta = check_choice(loss, "loss", LOSSES), check_positive_float(eta, "eta")
    n_steps, box = _check_run_args(n_steps, box)
    if box[0] <= 0:
        raise ValueError(f"box must lie in x > 0 (the domain of the log barrier), got low = {box[0]!r}")

    def step(x: np.ndarray, t: int) -> np.ndarray:
        dual = 1.0 / x + eta * loss_gradient(loss, x)  # -(grad R(x) - eta grad f(x))
        if not (dual > 0).all():  # (grad R)^-1 exists only for negative dual points
            raise ValueError(f"the mirror step of OMD is undefined at step {t} (1/x + eta f'(x) "
                             f"= {dual!r} must be > 0): reduce eta")
        return np.clip(1.0 / dual, *box)

    return _iterate(step, _check_point(x0, "x0", box), n_steps)


def ogd_trajectory(u0: Any, *, loss: str = "tan", eta: float = 0.01, n_steps: int = 100,
                   box: tuple[float, float] = OGD_BOX) -> np.ndarray:
    """Online gradient descent on ``f(exp(u))``: ``u' = clip(u - eta exp(u) f'(exp(u)), box)``.

    Arguments and shapes as :func:`omd_trajectory` (``u0`` inside ``box``, default
    ``[log 0.01, 0]``, the image of OMD's box under ``log``); returns the iterates ``u``.

    >>> float(ogd_trajectory([-1.2, -0.65], n_steps=2)[1, 0])
    -1.2033...
    """
    loss, eta = check_choice(loss, "loss", LOSSES), check_positive_float(eta, "eta")
    n_steps, box = _check_run_args(n_steps, box)
    return _iterate(lambda u, t: np.clip(u - eta * np.exp(u) * loss_gradient(loss, np.exp(u)),
                                         *box), _check_point(u0, "u0", box), n_steps)


def bisection_trajectory(a0: Any, b0: Any, *, loss: str = "tan", n_steps: int = 100,
                         box: tuple[float, float] = BM_BOX) -> np.ndarray:
    """The bisection method on the segment from ``a0`` to ``b0`` (paper Algorithm 3).

    ``z = (a + b) / 2``; ``a <- z`` if ``f(z) < 0``, ``b <- z`` if ``f(z) > 0``, both if
    ``f(z) == 0`` (``z`` is then a fixed point), ``f`` the scalar loss. ``a0``, ``b0``: (d,) or
    (n_runs, d) inside ``box`` with ``f(a0) < 0 < f(b0)`` (ValueError otherwise; ``"quartic"``
    has no bracket). Returns the iterates ``z``, ``z(0) = (a0 + b0) / 2`` included, shaped as
    :func:`omd_trajectory` returns.

    >>> bisection_trajectory([-1.0, -0.5], [0.5, 1.0], n_steps=2)[1].tolist()  # exact root
    [-0.25, 0.25]
    """
    loss = check_choice(loss, "loss", LOSSES)
    n_steps, box = _check_run_args(n_steps, box)
    a, b = _check_point(a0, "a0", box), _check_point(b0, "b0", box)
    if a.shape != b.shape:
        raise ValueError(f"a0 and b0 must have the same shape, got {a.shape} and {b.shape}")
    fa, fb = loss_value(loss, a), loss_value(loss, b)
    bad = np.flatnonzero(~((fa < 0) & (fb > 0)))
    if bad.size:
        i = np.unravel_index(bad[0], fa.shape)
        raise ValueError(
            f"bisection needs a bracket with f(a0) < 0 < f(b0); got f(a0) = {float(fa[i])!r}, "
            f"f(b0) = {float(fb[i])!r} for loss={loss!r}{f' (run {bad[0]})' if fa.ndim else ''}"
            + (" (sum x^4 is never negative: there is no bracket)" if loss == "quartic" else ""))

    def step(z: np.ndarray, t: int) -> np.ndarray:
        nonlocal a, b
        fz = loss_value(loss, z)[..., None]
        a, b = np.where(fz <= 0, z, a), np.where(fz >= 0, z, b)  # f(z) == 0: a = b = z
        return (a + b) / 2

    return _iterate(step, (a + b) / 2, n_steps)


def exact_root_step(trajectory: Any, loss: str = "tan") -> int:
    """First step of a trajectory (n_steps, d) whose iterate is an exact root (``f(z) == 0`` in
    float64), or -1."""
    hits = np.flatnonzero(loss_value(loss, trajectory) == 0)
    return int(hits[0]) if hits.size else -1
