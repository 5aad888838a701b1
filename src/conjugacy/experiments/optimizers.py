"""Conjugate optimizers: online mirror descent, online gradient descent and bisection.

Reproduces Redman et al. (NeurIPS 2024), sec. 4.1, fig. 2 (``f(x) = sum tan x_i``) and fig. S1
(``f(x) = sum x_i^4``), appendix A, as published (SPEC section 5A): ``d = 2``, ``eta = 0.01``,
``T = 100`` iterates (the initial condition and 99 updates), 25 initial conditions per optimizer
(5 x 5 grids, run ``n`` at grid position ``(n % 5, n // 5)`` as in the reference code), float64.

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

The Koopman step: the iterates (for OGD ``u``, not ``exp(u)``), 4 delays (10 observables),
DMD-RRR, all 10 eigenvalues (their residuals are ~0 whatever the eigenvalues, so they carry no
information here). The 25 runs of each optimizer are split into 5 groups of 5 by the diagonals of
the grid (:func:`initial_condition_groups`), one spectrum per group; the analysis pipeline
(:func:`conjugacy.analysis.summarize`) compares the group spectra of each pair by the permutation
test (252 relabelings: the smallest p is 1/126) with the one verdict rule
(:func:`conjugacy.stats.verdict`: "undecided" when no p below alpha is attainable, e.g. with 3
groups), beside ``W_p`` between the spectra of all 25 runs and the paper's shuffle control.
Loss curves: ``f(x)`` (OMD), ``f(exp(u))`` (OGD: one loss seen through the conjugacy) and
``|f(z)|`` (BM: the residual of the root search, as the reference code plots in fig. 2B).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_open
from .._checks import (
    Choice,
    DeclaredConfig,
    Float,
    Int,
    Rank,
    as_numeric_array,
    check_choice,
    check_finite,
    check_int,
    check_positive_float,
    setting,
)
from ..analysis import Claim, Results, summarize
from ..analysis.results import curve_summary, verdict_claim
from ..spectrum import RankWarning, Spectrum, koopman_spectrum
from ._settings import DELAYS, N_PERMUTATIONS, N_SHUFFLES, SEED

__all__ = ["Iterates", "OptimizerConfig", "claims", "fit_spectra", "initial_condition_groups",
           "run", "simulate"]

#: ``"tan"``: ``f(x) = sum tan x_i`` (fig. 2); ``"quartic"``: ``f(x) = sum x_i^4`` (fig. S1).
LOSSES = ("tan", "quartic")
#: The optimizers, in the order of the comparison, and what each iterates.
CONDITIONS = {"omd": "online mirror descent (log barrier), iterates x",
              "ogd": "online gradient descent on f(exp(u)), iterates u",
              "bm": "bisection on the segment a(0)-b(0), iterates z"}
METHODS = tuple(CONDITIONS)
#: The feasible boxes per coordinate: ``K`` (OMD), ``K' = log K`` (OGD), ``K''`` (BM).
OMD_BOX, OGD_BOX, BM_BOX = (0.01, 1.0), (float(np.log(0.01)), 0.0), (-4.0 / 3.0, 8.0 / 7.0)
#: The run of the example-trajectory panel: x(0) = (0.5, 0.7), as in the reference code.
EXAMPLE_RUN = 17
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


def initial_condition_groups(n_groups: int = 5) -> tuple[tuple[int, ...], ...]:
    """The 25 runs in ``n_groups`` (2 to 12) disjoint groups: run ``n`` goes to group
    ``(n % 5 + n // 5) % n_groups`` (diagonals of the grid: with 5 groups each holds every value
    of each coordinate once). ValueError outside 2..12.

    >>> initial_condition_groups(5)[0]
    (0, 9, 13, 17, 21)
    """
    n_groups = check_int(n_groups, "n_groups", minimum=2)
    if n_groups > 12:
        raise ValueError(
            f"n_groups must be <= 12 so that every group holds at least 2 of the 25 runs, got {n_groups}"
        )
    labels = [(n % 5 + n // 5) % n_groups for n in range(25)]
    return tuple(tuple(n for n in range(25) if labels[n] == k) for k in range(n_groups))


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


@dataclass(frozen=True)
class OptimizerConfig(DeclaredConfig):
    """Settings of the optimizer experiment; the defaults are the paper's (SPEC section 5A).

    The optimizers themselves are deterministic; the seed drives the statistics.

    Raises
    ------
    ValueError
        A field outside its domain, or ``n_steps < delays + 2``, naming it.

    Examples
    --------
    >>> OptimizerConfig(loss="quartic").pairs
    (('omd', 'ogd'),)
    """

    loss: str = setting("tan", Choice(*LOSSES), "``tan``: sum tan(x), fig. 2 (OMD, OGD, BM); "
                                                "``quartic``: sum x^4, fig. S1 (OMD, OGD).")
    method: str = setting("rrr", Choice("rrr", "standard", "exact"),
                          "DMD variant (the paper: DMD-RRR).")
    delays: int = setting(4, DELAYS, "Time delays of the 2-D iterates (the paper: 4).")
    rank: int | str | None = setting(10, Rank(), "Koopman modes kept (the paper: all 10 "
                                                 "eigenvalues; 'svht': the Gavish-Donoho "
                                                 "threshold; None: the tolerance rule).")
    eta: float = setting(0.01, Float(0, open_minimum=True), "Learning rate of OMD and OGD.")
    n_steps: int = setting(100, Int(1), "Iterates per run, the initial condition included.")
    n_groups: int = setting(5, Int(2, 12), "Groups of initial conditions compared by the "
                                           "permutation test.")
    n_shuffles: int = setting(100, N_SHUFFLES)
    n_permutations: int = setting(999, N_PERMUTATIONS, (
        "Random relabelings of the permutation test (:func:`conjugacy.analysis."
        "compare_conditions`; with 5 + 5 spectra the 252 relabelings are enumerated when "
        "``n_permutations >= 252``)."))
    p: float = setting(1.0, Float(1), "Order of the Wasserstein distance.")
    alpha: float = setting(0.05, Float(0, 1, open_minimum=True, open_maximum=True),
                           "Level of the permutation test: a pair is *not conjugate* when "
                           "``p < alpha``.")
    seed: int = setting(0, SEED, "Seed of the shuffle control and the tests.")

    def check(self) -> None:
        if self.n_steps < self.delays + 2:
            raise ValueError(f"n_steps must be >= delays + 2 = {self.delays + 2} (one snapshot "
                             f"pair per run), got {self.n_steps}")

    @property
    def methods(self) -> tuple[str, ...]:
        """The optimizers run for this loss: BM only for ``"tan"``."""
        return METHODS if self.loss == "tan" else METHODS[:2]

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """The compared pairs, e.g. ``(("omd", "ogd"), ("omd", "bm"), ("ogd", "bm"))``."""
        m = self.methods
        return tuple((m[i], m[j]) for i in range(len(m)) for j in range(i + 1, len(m)))


@dataclass(frozen=True, eq=False)
class Iterates:
    """What the optimizers did from their 25 initial conditions, by optimizer name (read-only).

    ``initial_conditions``: x(0), u(0) (25, 2) and for BM (25, 2, 2), axis 1 ``(a(0), b(0))``;
    ``trajectories``: the iterates x, u, z (25, n_steps, 2), the observables of the Koopman step;
    ``losses``: ``f(x)``, ``f(exp(u))``, ``|f(z)|`` (25, n_steps); ``exact_root_steps`` (BM only,
    else None): the first step with ``f(z) == 0`` exactly per run, -1 if never.

    >>> it = simulate(OptimizerConfig(loss="quartic", n_steps=10))
    >>> it.trajectories["omd"].shape, it.losses["ogd"].shape, it.exact_root_steps is None
    ((25, 10, 2), (25, 10), True)
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


def simulate(config: OptimizerConfig) -> Iterates:
    """The optimizers of ``config`` from the published grids, ``config.n_steps`` iterates each.

    >>> it = simulate(OptimizerConfig(loss="quartic", n_steps=30))
    >>> sorted(it.trajectories), it.trajectories["omd"].shape, it.exact_root_steps is None
    (['ogd', 'omd'], (25, 30, 2), True)
    """
    c = config
    x0, u0 = omd_initial_conditions(), ogd_initial_conditions()
    x = omd_trajectory(x0, loss=c.loss, eta=c.eta, n_steps=c.n_steps)
    u = ogd_trajectory(u0, loss=c.loss, eta=c.eta, n_steps=c.n_steps)
    ics, trajs = {"omd": x0, "ogd": u0}, {"omd": x, "ogd": u}
    losses = {"omd": loss_value(c.loss, x), "ogd": loss_value(c.loss, np.exp(u))}
    if "bm" not in c.methods:
        return Iterates(ics, trajs, losses)
    a0, b0 = bisection_initial_conditions()
    ics["bm"], trajs["bm"] = np.stack([a0, b0], axis=1), bisection_trajectory(
        a0, b0, loss=c.loss, n_steps=c.n_steps)
    losses["bm"] = np.abs(loss_value(c.loss, trajs["bm"]))
    roots = np.array([exact_root_step(z, c.loss) for z in trajs["bm"]], dtype=np.int64)
    return Iterates(ics, trajs, losses, roots)


def fit_spectra(config: OptimizerConfig, iterates: Iterates
                ) -> tuple[dict[str, Spectrum], dict[str, list[Spectrum]], list[str]]:
    """Per optimizer, the spectrum of all 25 runs (``pooled``), one per group of
    :func:`initial_condition_groups` (``per_group``), and a note per optimizer whose ``rank`` was
    reduced to the data's numerical rank (the RankWarnings of :func:`conjugacy.koopman_spectrum`,
    reported once).

    >>> cfg = OptimizerConfig(n_steps=30)
    >>> pooled, per_group, notes = fit_spectra(cfg, simulate(cfg))
    >>> pooled["omd"].eigenvalues.shape, len(per_group["bm"]), notes[0][:47]
    ((10,), 5, 'BM: the delay-embedded data have numerical rank')
    """
    c, groups = config, initial_condition_groups(config.n_groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankWarning)
        fits = {m: [koopman_spectrum(runs, delays=c.delays, rank=c.rank, method=c.method)
                    for runs in (iterates.trajectories[m], *(iterates.trajectories[m][list(g)]
                                                              for g in groups))]
                for m in c.methods}
    pooled, per_group = {m: f[0] for m, f in fits.items()}, {m: f[1:] for m, f in fits.items()}
    notes = [
        f"{m.upper()}: the delay-embedded data have numerical rank {pooled[m].rank} < "
        f"rank={c.rank}, so {pooled[m].rank} eigenvalues are kept (group spectra: "
        f"{', '.join(map(str, sorted({s.rank for s in per_group[m]})))}); the others would come "
        "from singular values below the tolerance, i.e. rounding noise"
        for m in c.methods if isinstance(c.rank, int) and pooled[m].rank < c.rank]
    return pooled, per_group, notes


def _claim(content: Mapping[str, Any], claim: str, pairs: list[str], expect: str) -> Claim:
    cmp = content["comparison"]
    evidence = "; ".join(
        f"{k.upper()}: {cmp['verdicts'][k]['verdict']}, W1 (all runs) "
        f"{cmp['all']['pooled_distances'][k]:.4f}, p = {cmp['verdicts'][k]['pvalue']:.3g} "
        f"({cmp['n_seeds']} groups per optimizer, {cmp['verdict_uses']} spectra)" for k in pairs)
    return verdict_claim(claim, [cmp["verdicts"][k] for k in pairs], expect, evidence)


def claims(content: Mapping[str, Any]) -> list[Claim]:
    """The paper's claims about fig. 2 / S1, decided on a ``results.json`` of :func:`run`
    (its ``comparison`` and ``pooled_spectra``): OMD and OGD conjugate, their spectra real and
    positive, bisection not conjugate to either (only for ``loss="tan"``).

    >>> res = run(OptimizerConfig(loss="quartic", n_steps=20, n_permutations=99, n_shuffles=10))
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
    out: dict[str, Any] = {"figure": "fig. 2" if config.loss == "tan" else "fig. S1",
                           "groups": [list(g) for g in initial_condition_groups(config.n_groups)]}
    if iterates.exact_root_steps is not None:
        steps = iterates.exact_root_steps
        out["bisection"] = {
            "exact_root_steps": steps.tolist(), "runs_with_exact_root": int((steps >= 0).sum()),
            "after_exact_root": "the bracket collapses to z (a = b = z); z is held fixed"}
    return out


def _save_trajectories(out: Path, iterates: Iterates) -> str:
    arrays = {f"{m}{suffix}": getattr(iterates, field)[m] for m in iterates.trajectories
              for suffix, field in (("", "trajectories"), ("_loss", "losses"),
                                    ("_initial", "initial_conditions"))}
    with atomic_open(out / "trajectories.npz", "wb") as fh:
        np.savez(fh, **arrays)
    return "trajectories.npz"


def run(config: OptimizerConfig | None = None, out: Any = None) -> Results:
    """The optimizer experiment (Redman et al. 2024, sec. 4.1, fig. 2 / S1, appendix A):
    :func:`simulate`, :func:`fit_spectra`, the comparison, :func:`claims` and, with ``out``, the
    files.

    ``config`` default ``OptimizerConfig()`` (fig. 2; TypeError if not an OptimizerConfig).
    ``out`` (optional; NotADirectoryError if it or a parent is a file): a folder for
    ``results.json`` (schema ``"conjugacy.results/2"``), ``trajectories.npz`` (per optimizer
    ``m``: ``m`` (25, n_steps, 2), ``m_loss``, ``m_initial``; ``allow_pickle=False`` reads it, and
    ``conjugacy spectrum trajectories.npz --key m`` fits it) and the figures
    (:mod:`conjugacy.plots.optimizers`). The :class:`~conjugacy.analysis.Results` holds the group
    spectra (``spectra``), those of all 25 runs (``content["pooled_spectra"]``) and the verdicts
    (``content["comparison"]["verdicts"]``).

    >>> res = run(OptimizerConfig(n_steps=30, n_shuffles=10, n_permutations=252))
    >>> res.verdicts
    {'omd-ogd': 'conjugate', 'omd-bm': 'not conjugate', 'ogd-bm': 'not conjugate'}
    """
    from ..study import experiment_session, provenance

    c = OptimizerConfig() if config is None else config
    with experiment_session(c, OptimizerConfig, out) as (out, _):
        iterates = simulate(c)
        pooled, per_group, notes = fit_spectra(c, iterates)
        files = {} if out is None else {"trajectories": _save_trajectories(out, iterates)}

        def figures(results: Results, folder: Path) -> list[Path]:
            from ..plots.optimizers import draw_all

            return draw_all(folder, iterates.trajectories, iterates.losses, pooled, c.loss,
                            EXAMPLE_RUN)

        figure = "fig. 2" if c.loss == "tan" else "fig. S1"
        return summarize(
            per_group, experiment="optimizers", title=f"Conjugate optimizers ({figure})",
            question="are OMD, OGD and bisection conjugate (equivalent training dynamics)?",
            conditions={m: CONDITIONS[m] for m in c.methods},
            seeds={m: [f"group {k}" for k in range(c.n_groups)] for m in c.methods},
            observables="iterates", settings={
                "delays": c.delays, "rank": c.rank, "method": c.method,
                "reasoning": "as published: 4 delays of the 2-D iterates (10 observables), all 10 "
                             "eigenvalues"},
            stats={**{k: getattr(c, k) for k in ("alpha", "seed", "n_permutations", "n_shuffles",
                                                 "p", "pairs")}, "shuffle": "pooled", "ks": False},
            pooled=pooled, fields={"config": c.to_dict(), "files": files, "loss": {
                m: curve_summary(v, range(v.shape[1])) for m, v in iterates.losses.items()}},
            sections=lambda spectra: _sections(c, iterates), claims=claims,
            figures=figures, notes=notes, out=out,
            provenance=provenance(data={"name": "closed-form optimizer iterates",
                                        "source": "generated (25 initial conditions per optimizer)"}))
