"""Distances between Koopman spectra, and grouping of dynamics into equivalence classes.

Each eigenvalue is a point ``(Re, Im)`` of the plane; the ground distance is Euclidean. Two training
processes are conjugate iff their Koopman eigenvalues coincide, and one is semi-conjugate to the
other if its eigenvalues are a subset of the other's; the distances below measure how far a pair of
estimated spectra is from either.

Spectra with uniform masses are compared with ``scipy.optimize.linear_sum_assignment`` (unequal
sizes ``n_a``, ``n_b``: each eigenvalue repeated ``lcm / n`` times, an exact reformulation),
weighted or very large ones with POT's network simplex (``ot.emd``, imported only then). Every
distance is computed scale-free: the solvers see costs normalised by the size of the answer and
capped (see :func:`_optimal_plan`), so the result is exact to ~1e-11 relative at any magnitude of
the eigenvalues (spreads 1e-12 to 1e3 and beyond, any ``p >= 1``, e.g. 50) without overflow or
underflow; a distance beyond the float64 range is a clear error.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.cluster import hierarchy
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import squareform

from ._checks import (
    _as_float,
    as_numeric_array,
    check_choice,
    check_finite,
    check_int,
    check_ndim,
    check_unit_interval,
)
from ._checks import check_positive_float as _positive
from ._text import cut_list

__all__ = [
    "ALIAS_BOUND",
    "TIMES",
    "AliasingError",
    "EquivalenceClasses",
    "MAX_COMPARED_EIGENVALUES",
    "WassersteinResult",
    "distance_matrix",
    "load_compared",
    "equivalence_classes",
    "aliasing",
    "comparison_time",
    "optimal_matching",
    "recording_interval",
    "semiconjugacy_distance",
    "wasserstein",
    "wasserstein_plan",
]

#: Linkage methods accepted by :func:`equivalence_classes`. ``"centroid"``, ``"median"`` and
#: ``"ward"`` are left out: they assume Euclidean distances between points of a vector space,
#: which Wasserstein distances between spectra are not.
LINKAGES = ("single", "complete", "average", "weighted")


# ----- validation shared with conjugacy.stats ----------------------------------------------------
def as_eigenvalues(spectrum: Any, name: str, *, allow_empty: bool = False) -> np.ndarray:
    """Return the eigenvalues of ``spectrum`` as a 1-D complex128 array, or raise a clear error.

    ``spectrum`` is any object with an ``eigenvalues`` attribute (e.g. :class:`conjugacy.Spectrum`)
    or a 1-D real or complex array-like. Non-1-D and non-finite inputs are rejected, empty ones
    too unless ``allow_empty`` (a count of eigenvalues is defined on none, a distance is not).
    """
    values = getattr(spectrum, "eigenvalues", spectrum)
    if values is None:
        raise TypeError(f"{name} must be a Spectrum or a 1-D array of eigenvalues, got None")
    arr = as_numeric_array(values, name)
    check_ndim(arr, name, (1,), "one eigenvalue per entry, or a Spectrum")
    if arr.size == 0 and not allow_empty:
        settings = getattr(spectrum, "settings", None)
        hint = (
            " (a filtered Spectrum whose filter dropped every eigenvalue: relax the filter)"
            if isinstance(settings, dict) and "filter" in settings
            else ""
        )
        raise ValueError(f"{name} is empty; a spectrum needs at least one eigenvalue{hint}")
    check_finite(arr, name)
    return arr.astype(np.complex128)


def freeze_fields(record: Any, *names: str) -> None:
    """Replace the array fields ``names`` of the frozen dataclass ``record`` by read-only copies
    (None stays None), so that a caller keeping a reference cannot change the record.

    Examples
    --------
    >>> r = WassersteinResult(0.1, np.eye(2) / 2, None, 1.0)  # its __post_init__ calls this
    >>> r.plan.flags.writeable, r.matching
    (False, None)
    """
    for name in names:
        value = getattr(record, name)
        if value is not None:
            value = np.array(value, copy=True)
            value.setflags(write=False)
            object.__setattr__(record, name, value)


def check_p(p: Any) -> float:
    """Return the order ``p`` of the Wasserstein distance as a float; it must be finite and >= 1."""
    p = _as_float(p, "p", "a real number >= 1")
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


# ----- time: spectra recorded at different intervals ---------------------------------------------
#: The ``time`` argument of every comparison: ``"discrete"`` compares the eigenvalues ``lambda``
#: themselves; ``"continuous"`` the exponents ``log(lambda) / dt``
#: (:func:`conjugacy.spectrum.continuous_time_eigenvalues`, ``dt`` each spectrum's
#: ``settings["record_interval"]``); ``"auto"`` (default) is continuous exactly when every spectrum
#: carries an interval and they differ, discrete otherwise (so spectra recorded alike, and plain
#: eigenvalue arrays, are compared as before, bit for bit).
TIMES = ("auto", "discrete", "continuous")

#: The aliasing guard's bound on ``|arg lambda|`` at the coarser interval (radians): 0.9 pi. A mode
#: turning by ``theta`` per unit time appears at interval ``k`` with ``arg = theta k`` wrapped into
#: (-pi, pi]; beyond pi it aliases (its frequency is lost), and within 10 % of pi an estimation
#: error of a few per cent can carry it across. Negative real eigenvalues (``arg = pi``) always
#: exceed it.
ALIAS_BOUND = 0.9 * math.pi


class AliasingError(ValueError):
    """A continuous-time comparison of spectra recorded at different intervals would alias: an
    eigenvalue's ``|arg lambda|`` at the coarser interval exceeds :data:`ALIAS_BOUND`.

    Examples
    --------
    >>> from types import SimpleNamespace as S
    >>> fine = S(eigenvalues=np.exp([0.5j, -0.5j]), settings={"record_interval": 1})
    >>> coarse = S(eigenvalues=np.exp([5j, -5j]), settings={"record_interval": 10})
    >>> try:
    ...     wasserstein(fine, coarse)  # 0.5 rad per step is 5 rad per 10 steps: aliased
    ... except AliasingError as e:
    ...     print(str(e)[:54])
    continuous-time comparison refused, the spectra alias:"""


def recording_interval(spectrum: Any) -> float | None:
    """The recording interval ``settings["record_interval"]`` of a spectrum (the one name,
    written by :func:`conjugacy.analysis.groups.with_record_interval` from the store's step
    numbers), as a float; None for plain eigenvalue arrays and spectra without one.

    Parameters
    ----------
    spectrum : Spectrum, array_like or any object with ``settings``
        The spectrum to read.

    Returns
    -------
    float or None
        Training steps between two recorded snapshots.

    Raises
    ------
    ValueError
        A recorded interval that is not a positive finite number.

    Examples
    --------
    >>> from types import SimpleNamespace as S
    >>> recording_interval(S(settings={"record_interval": 10})), recording_interval([0.9, 0.5])
    (10.0, None)
    """
    settings = getattr(spectrum, "settings", None)
    value = settings.get("record_interval") if isinstance(settings, dict) else None
    return None if value is None else _positive(value, "settings['record_interval']")


def comparison_time(spectra: Any, time: str = "auto") -> str:
    """``"discrete"`` or ``"continuous"``: how ``spectra`` are compared under ``time`` (one of
    :data:`TIMES`; see there).

    Parameters
    ----------
    spectra : sequence of Spectrum or array_like
        The spectra to be compared.
    time : {"auto", "discrete", "continuous"}
        ``"auto"``: continuous exactly when every spectrum carries a recording interval and they
        are not all equal.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        An unknown ``time``, or ``time="continuous"`` with a spectrum that carries no recording
        interval (a plain array, or a Spectrum fitted outside the pipeline: set it with
        :func:`conjugacy.analysis.groups.with_record_interval`).

    References
    ----------
    Tu et al., *On dynamic mode decomposition: theory and applications*, J. Comput. Dyn. 1(2),
    2014 (continuous-time eigenvalues ``log(lambda) / dt``).

    Examples
    --------
    >>> comparison_time([[0.9], [0.8]])
    'discrete'
    """
    check_choice(time, "time", TIMES)
    if time == "discrete":
        return "discrete"
    intervals = [recording_interval(s) for s in spectra]
    if time == "continuous":
        missing = [i for i, v in enumerate(intervals) if v is None]
        if missing:
            raise ValueError(
                f"time='continuous' needs each spectrum's recording interval; spectra {missing} "
                "carry none (plain eigenvalues, or a Spectrum without settings['record_interval']"
                ": set it with conjugacy.analysis.groups.with_record_interval(spectrum, steps))")
        return "continuous"
    known = {v for v in intervals if v is not None}
    return "continuous" if None not in intervals and len(known) > 1 else "discrete"


def aliasing(spectra: Any, labels: Any = None, *, bound: float = ALIAS_BOUND,
             min_modulus: float | None = None) -> list[str]:
    """The aliasing guard: one sentence per spectrum whose eigenvalues alias at the coarser
    recording interval of ``spectra`` (empty when none do, or when all intervals are equal).

    An eigenvalue ``lambda`` recorded at interval ``dt`` turns by ``|arg lambda| * D / dt`` at the
    coarsest interval ``D``; above ``bound`` (default :data:`ALIAS_BOUND`, 0.9 pi) the coarse
    recording cannot represent it, so ``log(lambda) / dt`` and its coarse counterpart no longer
    agree. Negligible modes do not count: one whose modulus at the coarse interval,
    ``|lambda| ** (D / dt)``, is below ``min_modulus`` (:data:`conjugacy.spectrum.MIN_MODULUS`,
    the floor of :func:`conjugacy.spectrum.continuous_time_eigenvalues`) has decayed by more than
    ``1 / min_modulus`` between two coarse records, so no recording at ``D`` shows its phase
    (typically noise modes with ``|lambda| ~ 0.01``). The sentence names up to
    :data:`MAX_NAMED` eigenvalues ("and N more") and the largest interval that would resolve
    them, ``D * bound / max turn``; when that is below one step, it says instead that these
    recordings cannot resolve them.

    Parameters
    ----------
    spectra : sequence of Spectrum
        Each carrying ``settings["record_interval"]``.
    labels : sequence of str, optional
        Names used in the sentences (default ``"#0"``, ``"#1"``, ...).
    bound : float in (0, pi]
    min_modulus : float in (0, 1), optional
        Modes whose modulus at the coarse interval is below it are negligible (default
        :data:`conjugacy.spectrum.MIN_MODULUS`, 1e-6).

    Returns
    -------
    list of str

    References
    ----------
    Tu et al., *On dynamic mode decomposition: theory and applications*, J. Comput. Dyn. 1(2),
    2014 (continuous-time eigenvalues ``log(lambda) / dt``, defined up to multiples of
    ``2 pi i / dt``).

    Examples
    --------
    >>> from types import SimpleNamespace as S
    >>> fine = S(eigenvalues=np.exp([0.5j, -0.5j]), settings={"record_interval": 1})
    >>> coarse = S(eigenvalues=np.exp([5j, -5j]), settings={"record_interval": 10})
    >>> aliasing([fine, coarse])[0][:66]
    '#0: 2 eigenvalues turn by up to 5 rad at the coarser interval 10 ('
    """
    spectra = list(spectra)
    labels = [f"#{i}" for i in range(len(spectra))] if labels is None else list(labels)
    bound = float(bound)
    if not 0 < bound <= math.pi:
        raise ValueError(f"bound must lie in (0, pi], got {bound!r}")
    from .spectrum import MIN_MODULUS, continuous_time_eigenvalues

    floor = check_unit_interval(MIN_MODULUS if min_modulus is None else min_modulus, "min_modulus")
    comparison_time(spectra, "continuous")  # every spectrum carries an interval
    intervals = [recording_interval(s) for s in spectra]
    coarse = max(intervals)
    if min(intervals) == coarse:
        return []
    out = []
    for label, spectrum, dt in zip(labels, spectra, intervals):
        eig = as_eigenvalues(spectrum, str(label))
        turn = np.abs(continuous_time_eigenvalues(eig, dt).imag) * coarse
        with np.errstate(divide="ignore"):
            visible = np.log(np.abs(eig)) * (coarse / dt) >= math.log(floor)
        bad = np.flatnonzero((turn > bound) & visible)
        if bad.size:
            out.append(_alias_sentence(label, eig[bad], float(turn[bad].max()), coarse, bound))
    return out


#: Most eigenvalues an aliasing sentence names, and most sentences an error or flag joins.
MAX_NAMED = 3


def _alias_sentence(label: Any, bad: np.ndarray, worst: float, coarse: float,
                    bound: float) -> str:
    """One sentence of :func:`aliasing`: the aliasing eigenvalues ``bad`` of one spectrum."""
    shown = ", ".join(cut_list((f"{complex(v):.4g}" for v in bad), MAX_NAMED))
    needed = coarse * bound / worst
    advice = (f"resolving them needs a recording interval <= {needed:.3g} for every run"
              if needed >= 1 else
              "these recordings cannot resolve them (even every step is too coarse)")
    return (f"{label}: {bad.size} eigenvalue{'s turn' if bad.size > 1 else ' turns'} by up to "
            f"{worst:.3g} rad at the coarser interval {coarse:g} (bound {bound:.3g} rad) and "
            f"alias ({shown}); {advice} (or equal intervals and time='discrete')")


def _in_time(spectra: list[Any], eigs: list[np.ndarray], time: str, name: str) -> list[np.ndarray]:
    """``eigs`` (validated eigenvalues of ``spectra``) in the time ``time`` resolves to: as they
    are, or ``log(lambda) / dt`` after the aliasing guard (:class:`AliasingError`)."""
    if comparison_time(spectra, time) == "discrete":
        return eigs
    from .spectrum import continuous_time_eigenvalues

    problems = aliasing(spectra, [f"{name}[{i}]" for i in range(len(spectra))])
    if problems:
        raise AliasingError("continuous-time comparison refused, the spectra alias: "
                            + "; ".join(cut_list(problems, MAX_NAMED)))
    return [continuous_time_eigenvalues(e, recording_interval(s)) for e, s in zip(eigs, spectra)]


# ----- scale-free exact transport ----------------------------------------------------------------
#: Largest ``lcm(n_a, n_b)`` for which unequal uniform spectra are solved as an assignment problem
#: (each eigenvalue repeated ``L / n`` times; exact and fast up to ~1,000 x 1,000); larger
#: problems and weighted ones go to the network simplex (:func:`_transport_lp`).
MAX_REPLICATED_ASSIGNMENT = 1024

#: A solve is accepted when the optimal normalised cost is at least this: the solver's absolute
#: error (rounding for the assignment, the network simplex's floating-point pivots) is then at most
#: ~1e-11 relative to the answer.
_ACCEPT_ASSIGNMENT = 1e-4
_ACCEPT_LP = 0.5

#: Most rescaling rounds; each round resolves the answer to many digits more, 3 are typical.
_MAX_ROUNDS = 60


#: Most eigenvalues per spectrum file that ``conjugacy compare`` and ``conjugacy test`` load
#: (:func:`load_compared`). Measured with ``/usr/bin/time -v`` (peak RSS, the process's CPU time;
#: tracemalloc misses C++ allocations): ``conjugacy compare`` of two files of 1,200 takes 1.45 s
#: and 185 MB (1,000: 164 MB; 1,500: 224 MB; 10: 117 MB), equal sizes solved exactly as an
#: assignment at any size. Unequal sizes whose lcm exceeds :data:`MAX_REPLICATED_ASSIGNMENT` use
#: POT's network simplex: 500 vs 499 208 MB, 1,500 vs 1,499 2.5 s and 327 MB (over 200 MB at any
#: size: POT's import alone is ~80 MB). Real spectra hold up to several hundred (``rank=None`` on
#: the digits MLP: 762). The library functions (:func:`wasserstein`, ...) take arrays of any size.
MAX_COMPARED_EIGENVALUES = 1200


def load_compared(path: Any) -> Any:
    """:meth:`conjugacy.Spectrum.load` of a spectrum file to compare, refused (before any array
    is read) when it holds more than :data:`MAX_COMPARED_EIGENVALUES` eigenvalues.

    Parameters
    ----------
    path : str or path-like
        A ``.npz`` file written by :meth:`~conjugacy.Spectrum.save` or ``conjugacy spectrum``.

    Returns
    -------
    Spectrum
        With at most :data:`MAX_COMPARED_EIGENVALUES` eigenvalues.

    Raises
    ------
    SpectrumFileError
        The file is damaged, foreign, or holds too many eigenvalues: one line naming the file,
        the count, the limit and the fix.

    Examples
    --------
    >>> import tempfile
    >>> from conjugacy import koopman_spectrum
    >>> rng = np.random.default_rng(0)
    >>> spec = koopman_spectrum(np.cumsum(rng.standard_normal((2, 30, 3)), 1), rank=3)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     len(load_compared(spec.save(f"{tmp}/a.npz")))
    3
    """
    from .spectrum import FORMAT_NAME, FORMAT_VERSION, Spectrum, load_spectrum

    why = ("a comparison takes (conjugacy.compare.MAX_COMPARED_EIGENVALUES: its memory grows "
           "with the product of the sizes); refused before reading; compare smaller spectra: "
           "fit with a lower --rank, or save Spectrum.filtered()")
    return load_spectrum(Spectrum, path, FORMAT_NAME, FORMAT_VERSION,
                         max_eigenvalues=(MAX_COMPARED_EIGENVALUES, why))


def _distances(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
    """Ground distances ``|a_i - b_j|`` as ``(D, e)`` with true distances ``D * 2**e``.

    Finite points whose differences would overflow (components beyond ~1e308) are first scaled by
    an exact power of two; otherwise ``e = 0`` and ``D`` is the plain ``hypot`` of the component
    differences, exact to rounding at any magnitude (subnormals included).
    """
    m = max(float(np.abs(x).max()) for x in (a.real, a.imag, b.real, b.imag))
    e = 0
    if m > 2.0**1018:
        e = int(np.frexp(m)[1]) - 1018
        a = np.ldexp(a.real, -e) + 1j * np.ldexp(a.imag, -e)
        b = np.ldexp(b.real, -e) + 1j * np.ldexp(b.imag, -e)
    d = np.subtract.outer(a.real, b.real)  # one more (n_a, n_b) array, not two: see
    di = np.subtract.outer(a.imag, b.imag)  # _optimal_plan on memory
    return np.hypot(d, di, out=d), e


def _unscale(value: float, e: int) -> float:
    """``value * 2**e``, or a clear error when the true distance exceeds the float64 range."""
    with np.errstate(over="ignore"):
        out = float(np.ldexp(value, e))
    if not np.isfinite(out):
        log10 = math.log10(value) + e * math.log10(2.0)
        raise ValueError(
            f"the distance (~1e{log10:.1f}) exceeds the float64 range (~1.8e308); divide the "
            "eigenvalues by a common factor (every distance scales with them)"
        )
    return out


def _assignment_solver(rep_a: int = 1, rep_b: int = 1):
    """Solver for uniform masses: linear sum assignment, rows/columns repeated ``rep`` times.

    With ``n_a * rep_a == n_b * rep_b = L`` every vertex of the transport polytope of masses
    ``1/n_a``, ``1/n_b`` is a plan in multiples of ``1/L``, i.e. an assignment between the
    repeated points, so the assignment is an exact optimal plan. With ``rep_a = rep_b = 1`` and
    ``n_a < n_b`` it is the rectangular (one-sided, partial) assignment.
    """

    def solve(cost: np.ndarray) -> np.ndarray:
        n_a, n_b = cost.shape
        big = cost if rep_a == rep_b == 1 else np.repeat(np.repeat(cost, rep_a, 0), rep_b, 1)
        rows, cols = linear_sum_assignment(big)
        plan = np.zeros((n_a, n_b))
        np.add.at(plan, (rows // rep_a, cols // rep_b), 1.0)
        return plan / rows.size

    return solve


_POT_BACKENDS = {"torch": "POT_BACKEND_DISABLE_PYTORCH", "jax": "POT_BACKEND_DISABLE_JAX",
                 "tensorflow": "POT_BACKEND_DISABLE_TENSORFLOW"}


def _import_pot() -> Any:
    """POT (``ot``), imported on first use without the array backends whose library this process
    has not imported (POT's ``POT_BACKEND_DISABLE_*`` variables, set only during the import):
    its import pulled in PyTorch, ~360 MB of the 481 MB peak RSS of a 1,500 x 1,499 comparison.
    The network simplex works on NumPy arrays; a process that imported torch first keeps POT's
    torch backend. POT's own optional imports (networkx, scikit-learn: ~71 MB of RSS) are left
    alone: blocking them would switch those POT features off for the rest of the process."""
    import sys

    if "ot" in sys.modules:
        return sys.modules["ot"]
    set_here = [key for lib, key in _POT_BACKENDS.items()
                if lib not in sys.modules and key not in os.environ]
    try:
        os.environ.update(dict.fromkeys(set_here, "1"))
        import ot
    finally:
        for key in set_here:
            os.environ.pop(key, None)
    return ot


def _transport_lp(cost: np.ndarray, wa: np.ndarray, wb: np.ndarray) -> np.ndarray:
    """An optimal plan of discrete optimal transport: POT's network simplex (``ot.emd``).

    Exact (a vertex of the transport polytope) and 20-70x faster than the same problem as a
    HiGHS linear program (measured on 30 x 25 to 200 x 180 eigenvalue sets, equal optima to
    1e-16). ``cost`` is normalised by the caller (entries in [0, K], the optimum of order 1);
    the masses are renormalised to equal sums, as the network simplex requires. POT is imported
    here, on the first problem that needs it (its import is heavy; equal-size and small
    unequal-size spectra never need it), without its PyTorch, JAX and TensorFlow backends when
    the process has not imported those itself (:func:`_import_pot`).
    """
    ot = _import_pot()

    wa = np.ascontiguousarray(wa, dtype=np.float64) / float(np.sum(wa))
    wb = np.ascontiguousarray(wb, dtype=np.float64) / float(np.sum(wb))
    plan, log = ot.emd(wa, wb, np.ascontiguousarray(cost, dtype=np.float64),
                       numItermax=max(100_000, 100 * cost.size), log=True)
    if log.get("result_code") != 1:  # pragma: no cover - normalised transport problems solve
        raise RuntimeError(f"the optimal-transport solve failed: {log.get('warning')}")
    return np.clip(plan, 0.0, None, out=plan)  # in place: not a second (n_a, n_b) array


def _pnorm(values: np.ndarray, masses: np.ndarray, p: float) -> float:
    """``(sum masses * values**p) ** (1/p)`` for ``values >= 0``, without overflow or underflow."""
    m = float(values.max()) if values.size else 0.0
    if m == 0.0:
        return 0.0
    with np.errstate(under="ignore"):
        return m * float(np.dot(masses, (values / m) ** p)) ** (1.0 / p)


def _optimal_plan(
    d: np.ndarray,
    p: float,
    solve,
    *,
    accept: float,
    cap: float,
    row_mass: np.ndarray,
    col_mass: np.ndarray | None,
) -> tuple[np.ndarray, float]:
    """Minimise ``sum_ij plan_ij d_ij**p`` scale-free: return ``(plan, (optimum) ** (1/p))``.

    The solvers work in floating point with absolute tolerances, so the costs handed to them are
    normalised: distances are divided by a scale ``s`` of the answer and the costs
    ``min(d / s, R)**p`` are capped at ``R**p = cap`` (no overflow for any ``p``; tiny costs that
    underflow are below the double-precision resolution of the answer). The first scale is a lower
    bound of the answer: every unit of mass of row ``i`` travels at least ``min_j d_ij``, so
    ``W_p >= (sum_i row_mass_i min_j d_ij**p) ** (1/p)``, and likewise for the columns when they
    are constrained (``col_mass``); ``max(d)`` if that bound is 0. While the normalised optimum is
    below ``accept`` (the answer not resolved to ~1e-11 relative) the scale is set to the answer
    found and the problem solved again.

    Capping is exact: capped costs are <= the true ones, so a plan optimal for the capped costs
    that puts no mass on a capped entry is optimal for the true costs. If one does, the scale is
    raised to that plan's true cost (an upper bound of the answer) and, if that does not help, the
    cap. For uniform masses with a scale above the answer, ``cap = 4 L`` never binds (an optimal
    plan puts mass ``>= 1/L`` on each entry it uses, so its normalised costs are ``<= L``).

    The answer is ``s * (normalised optimum) ** (1/p)``, computed without forming ``d**p``; it is
    exact to ~1e-11 relative at any magnitude and order (e.g. 1e-12 spreads, ``p = 50``).
    """
    dmax = float(d.max())
    if dmax == 0.0:
        return solve(np.zeros_like(d)), 0.0
    bound = _pnorm(d.min(axis=1), row_mass, p)
    if col_mass is not None:
        bound = max(bound, _pnorm(d.min(axis=0), col_mass, p))
    s = bound if bound > 0 else dmax
    for _ in range(_MAX_ROUNDS):
        r = cap ** (1.0 / p)
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            cost = d / s  # in place from here: d, cost and the plan are the only (n_a, n_b)
            capped = cost > r  # float arrays (five were: 58 MB of the 1,200 x 1,199 solve)
            np.minimum(cost, r, out=cost)
            if p != 1:
                np.power(cost, p, out=cost)
        plan = solve(cost)
        with np.errstate(under="ignore"):
            contrib = np.multiply(plan, cost, out=cost)
        total = float(contrib.sum())
        used = plan > 1e-14 * float(plan.max())  # LP round-off below this is not mass
        if capped.any() and float(contrib[capped].sum()) > 1e-13 * total:
            upper = _pnorm(d[used], plan[used], p)  # the plan's true cost
            if upper > s * (1 + 1e-9):
                s = upper
            elif cap < 1e280:
                cap *= 1e6
            else:  # pragma: no cover - would need a plan mass below 1e-280
                raise RuntimeError("the optimal-transport solve did not converge (cost cap)")
            continue
        if total >= accept:
            return plan, s * total ** (1.0 / p)
        m = float(d[used].max())
        if m == 0.0:
            return plan, 0.0
        s = s * total ** (1.0 / p) if total > 0 else m
    raise RuntimeError(  # pragma: no cover - each round resolves many more digits
        "the optimal-transport solve did not converge; please report this input"
    )


def _uniform_plan(d: np.ndarray, p: float) -> tuple[np.ndarray, float]:
    """Exact ``W_p`` plan between uniform measures on the rows and the columns of ``d``."""
    n_a, n_b = d.shape
    lcm = math.lcm(n_a, n_b)
    wa, wb = np.full(n_a, 1.0 / n_a), np.full(n_b, 1.0 / n_b)
    assign = lcm <= MAX_REPLICATED_ASSIGNMENT or n_a == n_b  # equal sizes: an assignment, any n
    solve = (_assignment_solver(lcm // n_a, lcm // n_b) if assign
             else lambda cost: _transport_lp(cost, wa, wb))
    return _optimal_plan(d, p, solve, accept=_ACCEPT_ASSIGNMENT if assign else _ACCEPT_LP,
                         cap=4.0 * lcm if assign else max(1e6, 4.0 * lcm), row_mass=wa, col_mass=wb)


def _partial_matching(d: np.ndarray, p: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Optimal one-sided matching of the rows of ``d`` (n_small <= n_large) to distinct columns.

    Returns ``(rows, cols, value)`` with ``value = (mean_i d[i, cols[i]]**p) ** (1/p)``, found
    scale-free (see :func:`_optimal_plan`).
    """
    n = d.shape[0]
    plan, value = _optimal_plan(
        d, p, _assignment_solver(), accept=_ACCEPT_ASSIGNMENT, cap=4.0 * n,
        row_mass=np.full(n, 1.0 / n), col_mass=None,
    )
    rows, cols = np.nonzero(plan)
    return rows, cols, value


def optimal_matching(a: Any, b: Any, *, p: float = 1) -> tuple[np.ndarray, np.ndarray]:
    """Optimal matching between the eigenvalues of ``a`` and ``b`` for the cost ``|a_i - b_j|**p``.

    Each eigenvalue of the smaller spectrum is matched to a distinct eigenvalue of the larger one
    (a permutation when the sizes are equal), found scale-free: the same matching for the
    eigenvalues multiplied by any positive factor.

    Parameters
    ----------
    a, b : Spectrum or array_like, complex
        The two spectra (any sizes).
    p : float, default 1
        Order of the cost, finite and >= 1.

    Returns
    -------
    rows, cols : ndarray, int (min(n_a, n_b),)
        ``a[rows[k]]`` is matched to ``b[cols[k]]``; ``rows`` is increasing.

    Raises
    ------
    ValueError
        Empty or non-finite eigenvalues, or ``p < 1``.

    References
    ----------
    Kuhn, *The Hungarian method for the assignment problem*, Naval Res. Logist. Q. 2, 1955
    (:func:`scipy.optimize.linear_sum_assignment`).

    Examples
    --------
    >>> optimal_matching([0.9, 0.5], [0.5, 0.88, 0.1])
    (array([0, 1]), array([1, 0]))
    """
    a = as_eigenvalues(a, "a")
    b = as_eigenvalues(b, "b")
    p = check_p(p)
    d, _ = _distances(a, b)
    if a.size <= b.size:
        rows, cols, _ = _partial_matching(d, p)
        return rows, cols
    cols, rows, _ = _partial_matching(d.T, p)
    order = np.argsort(rows)
    return rows[order], cols[order]


# ----- Wasserstein distance ------------------------------------------------------------------------
@dataclass(frozen=True, eq=False, repr=False)
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

    Examples
    --------
    >>> r = wasserstein_plan([0.9, 0.5], [0.5, 0.8])
    >>> r.matching, r.plan
    (array([1, 0]), array([[0. , 0.5],
           [0.5, 0. ]]))
    """

    distance: float
    plan: np.ndarray
    matching: np.ndarray | None
    p: float

    def __repr__(self) -> str:
        n_a, n_b = self.plan.shape
        return (
            f"WassersteinResult(distance={self.distance:.6g}, p={self.p:g}, sizes=({n_a}, {n_b}), "
            f"matching={'yes' if self.matching is not None else 'no (mass is split)'})"
        )

    def __post_init__(self) -> None:
        freeze_fields(self, "plan", "matching")


def wasserstein_plan(a: Any, b: Any, *, p: float = 1, weights: Any = None,
                     time: str = "auto") -> WassersteinResult:
    """Wasserstein distance ``W_p`` between two spectra, with an optimal transport plan.

    Each eigenvalue is a point ``(Re, Im)`` carrying a mass (uniform ``1/n`` unless ``weights``
    are given); the ground distance is Euclidean, ``|a_i - b_j|``. The result is exact for any sizes:

    - equal sizes and uniform weights: the optimal plan is a permutation (Birkhoff), found by
      ``scipy.optimize.linear_sum_assignment`` on the cost ``|a_i - b_j|**p``;
    - unequal sizes, uniform weights, ``L = lcm(n_a, n_b) <= 1024``: an assignment between the
      eigenvalues repeated ``L / n_a`` and ``L / n_b`` times (every vertex of this transport
      polytope is such an assignment), so mass is split exactly in multiples of ``1 / L``;
    - otherwise (weights, or larger ``L``): an exact transport problem solved by POT's network
      simplex (``ot.emd``), in which mass may be split between several points.

    Scale-free: the solvers see distances divided by the size of the answer (re-solved until
    resolved) and capped costs, so the distance is exact to ~1e-11 relative whatever the magnitude
    of the eigenvalues or their spread (tested from 1e-12 to 1e3 and at magnitudes 1e-300 and
    1e300) and whatever ``p`` (tested up to 50), and ``W_p(c a, c b) = c W_p(a, b)``.

    Parameters
    ----------
    a, b : Spectrum or array_like, complex (n_a,), (n_b,)
        Objects with an ``eigenvalues`` attribute, or 1-D real/complex arrays of eigenvalues.
    p : float, default 1
        Order of the distance, finite and >= 1.
    weights : None or (array_like (n_a,), array_like (n_b,))
        Masses of the eigenvalues of ``a`` and of ``b``: non-negative, each with a positive sum;
        each side is normalised to sum 1. None means uniform.
    time : {"auto", "discrete", "continuous"}, default "auto"
        Compare the eigenvalues, or the continuous-time exponents ``log(lambda) / dt`` of spectra
        recorded at intervals ``dt = settings["record_interval"]`` (then the distance is per
        unit of ``dt``); ``"auto"`` is continuous exactly when both carry an interval and they
        differ (:data:`TIMES`).

    Returns
    -------
    WassersteinResult
        ``distance``, ``plan`` (n_a, n_b) and, for equal sizes with uniform weights, ``matching``.

    Raises
    ------
    ValueError
        Empty or non-finite eigenvalues, ``p < 1``, bad weights, a distance beyond the float64
        range (eigenvalues of magnitude ~1e308 with opposite signs), ``time="continuous"``
        without recording intervals.
    AliasingError
        A continuous-time comparison whose eigenvalues alias at the coarser interval
        (:func:`aliasing`).

    References
    ----------
    Redman et al., *Identifying Equivalent Training Dynamics*, NeurIPS 2024; Peyré & Cuturi,
    *Computational Optimal Transport*, Found. Trends Mach. Learn. 11, 2019.

    Examples
    --------
    >>> round(wasserstein_plan([0.9, 0.5], [0.5, 0.8]).distance, 6)
    0.05
    """
    a, b = _in_time([a, b], [as_eigenvalues(a, "a"), as_eigenvalues(b, "b")], time, "spectra")
    p = check_p(p)
    w = _check_weights(weights, a.size, b.size)
    d, e = _distances(a, b)
    if w is None:
        plan, value = _uniform_plan(d, p)
    else:
        plan, value = _optimal_plan(d, p, lambda cost: _transport_lp(cost, *w), accept=_ACCEPT_LP,
                                    cap=1e6, row_mass=w[0], col_mass=w[1])
    matching = np.argmax(plan, axis=1).astype(np.intp) if w is None and a.size == b.size else None
    return WassersteinResult(_unscale(value, e), plan, matching, p)


def wasserstein(a: Any, b: Any, *, p: float = 1, weights: Any = None, time: str = "auto") -> float:
    """Wasserstein distance ``W_p`` between the eigenvalues of two spectra (a float).

    ``W_p = (min_plan sum_ij plan_ij |a_i - b_j|**p) ** (1/p)`` over transport plans between the
    two sets of points ``(Re, Im)``, uniform masses unless ``weights`` are given. Exact for any
    sizes: unequal sizes are handled by splitting mass, never by dropping points. See
    :func:`wasserstein_plan` for the parameters and for the optimal plan itself.

    Unlike the paper's reference code, which returns the mean matched distance and silently drops
    the extra points when the sizes differ, this is the true ``W_p`` (for equal sizes and ``p = 1``
    the two agree).

    With ``time="auto"`` (default) spectra recorded at different intervals
    (``settings["record_interval"]``) are compared as ``log(lambda) / dt``, others as they are.

    Parameters
    ----------
    a, b : Spectrum or array_like, complex
        The two spectra (any sizes).
    p : float, default 1
        Order, finite and >= 1.
    weights : pair of array_like, optional
        Masses of the eigenvalues of ``a`` and ``b`` (see :func:`wasserstein_plan`).
    time : {"auto", "discrete", "continuous"}
        How to compare spectra recorded at different intervals (see :func:`wasserstein_plan`).

    Returns
    -------
    float
        ``W_p``, in the units of the eigenvalues.

    Raises
    ------
    ValueError, AliasingError
        As :func:`wasserstein_plan`.

    References
    ----------
    Redman et al., *Identifying Equivalent Training Dynamics*, NeurIPS 2024 (the Wasserstein
    distance between Koopman spectra); Peyré & Cuturi, *Computational Optimal Transport*, Found.
    Trends Mach. Learn. 11, 2019 (exact transport).

    Examples
    --------
    >>> round(wasserstein([0.9, 0.5], [0.8, 0.5]), 6)  # match 0.9-0.8 and 0.5-0.5: (0.1 + 0) / 2
    0.05
    >>> round(wasserstein([0.9 + 0.1j, 0.9 - 0.1j], [0.9 + 0.2j, 0.9 - 0.2j], p=2), 6)
    0.1
    """
    return wasserstein_plan(a, b, p=p, weights=weights, time=time).distance


def semiconjugacy_distance(small: Any, large: Any, *, p: float = 1, time: str = "auto") -> float:
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
    time : {"auto", "discrete", "continuous"}, default "auto"
        As in :func:`wasserstein_plan`.

    Returns
    -------
    float
        In the units of the eigenvalues (per unit of ``dt`` in continuous time).

    Raises
    ------
    ValueError
        ``small`` larger than ``large`` (swap the arguments), empty or non-finite eigenvalues,
        or ``p < 1``.

    References
    ----------
    Redman et al., *Identifying Equivalent Training Dynamics*, NeurIPS 2024 (semi-conjugacy: the
    eigenvalues of one system a subset of the other's).

    Examples
    --------
    >>> semiconjugacy_distance([0.9, 0.5], [0.9, 0.5, 0.1])  # a subset: 0
    0.0
    >>> round(semiconjugacy_distance([0.9], [0.8, 0.5]), 6)
    0.1
    """
    small, large = _in_time([small, large], [as_eigenvalues(small, "small"),
                                             as_eigenvalues(large, "large")], time, "spectra")
    p = check_p(p)
    if small.size > large.size:
        raise ValueError(
            f"small has {small.size} eigenvalues but large has only {large.size}; small must not "
            "be larger than large (swap the arguments)"
        )
    d, e = _distances(small, large)
    _, _, value = _partial_matching(d, p)
    return _unscale(value, e)


def _as_spectra_list(spectra: Any, name: str, time: str = "discrete") -> list[np.ndarray]:
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
    return _in_time(items, [as_eigenvalues(s, f"{name}[{i}]") for i, s in enumerate(items)], time,
                    name)


def _pairwise(eigs: list[np.ndarray], p: float) -> np.ndarray:
    n = len(eigs)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            d, e = _distances(eigs[i], eigs[j])  # validated once by the caller
            out[i, j] = out[j, i] = _unscale(_uniform_plan(d, p)[1], e)
    return out


def distance_matrix(spectra: Any, *, p: float = 1, time: str = "auto") -> np.ndarray:
    """Matrix of Wasserstein distances ``W_p`` between all pairs of a list of spectra.

    Parameters
    ----------
    spectra : sequence of Spectrum or array_like, length n
        For instance the spectra of consecutive training windows (fig. 4 of the paper).
    p : float, default 1
        Order of the distance.
    time : {"auto", "discrete", "continuous"}, default "auto"
        As in :func:`wasserstein_plan`, decided once for the whole list: continuous when every
        spectrum carries a recording interval and they are not all equal.

    Returns
    -------
    ndarray, float (n, n)
        Symmetric, zero diagonal; ``n (n - 1) / 2`` distances are computed.

    Raises
    ------
    AliasingError
        A continuous-time comparison whose eigenvalues alias (:func:`aliasing`).
    ValueError
        As :func:`wasserstein_plan`, naming the spectrum.

    References
    ----------
    Redman et al., *Identifying Equivalent Training Dynamics*, NeurIPS 2024 (distances between the
    Koopman spectra of training windows, fig. 4).

    Examples
    --------
    >>> distance_matrix([[0.9, 0.5], [0.8, 0.5], [0.9, 0.5]])
    array([[0.  , 0.05, 0.  ],
           [0.05, 0.  , 0.05],
           [0.  , 0.05, 0.  ]])
    """
    p = check_p(p)
    return _pairwise(_as_spectra_list(spectra, "spectra", time), p)


# ----- equivalence classes -------------------------------------------------------------------------
@dataclass(frozen=True, eq=False, repr=False)
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

    Examples
    --------
    Made by :func:`equivalence_classes`; the first and third spectra fall into one class:

    >>> classes = equivalence_classes([[0.9, 0.5], [0.8, 0.5], [0.9, 0.51]], threshold=0.02)
    >>> classes.labels, classes.n_classes, classes.linkage, classes.linkage_matrix.shape
    (array([0, 1, 0]), 2, 'average', (2, 4))
    >>> classes.distance_matrix.round(3)[0]
    array([0.   , 0.05 , 0.005])
    """

    labels: np.ndarray
    n_classes: int
    linkage_matrix: np.ndarray
    distance_matrix: np.ndarray
    linkage: str

    def __repr__(self) -> str:
        labels = np.array2string(self.labels, threshold=20, max_line_width=80)
        return (
            f"EquivalenceClasses(n_classes={self.n_classes}, n_spectra={self.labels.size}, "
            f"linkage={self.linkage!r}, labels={labels})"
        )

    def __post_init__(self) -> None:
        freeze_fields(self, "labels", "linkage_matrix", "distance_matrix")


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
    d = 0.5 * d + 0.5 * d.T  # not (d + d.T) / 2: no overflow near 1.8e308
    np.fill_diagonal(d, 0.0)
    return d


def _relabel_by_first_appearance(labels: np.ndarray) -> np.ndarray:
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # rank of each unique label by first appearance
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

    Raises
    ------
    ValueError
        Not exactly one of ``threshold`` and ``n_classes``, an unknown ``linkage``, a matrix
        that is not square, symmetric and zero on the diagonal, or fewer than 2 spectra.

    References
    ----------
    Redman et al., *Identifying Equivalent Training Dynamics*, NeurIPS 2024 (classes of training
    dynamics); :func:`scipy.cluster.hierarchy.linkage`.

    Examples
    --------
    >>> classes = equivalence_classes([[0.9, 0.5], [0.8, 0.5], [0.9, 0.51]], threshold=0.02)
    >>> classes.labels, classes.n_classes
    (array([0, 1, 0]), 2)
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
        threshold = _positive(threshold, "threshold", allow_zero=True)
    else:
        n_classes = check_int(n_classes, "n_classes", minimum=1)
        if n_classes > n:
            raise ValueError(f"n_classes must be <= the number of spectra ({n}), got {n_classes}")
    if n == 1:
        return EquivalenceClasses(np.zeros(1, np.intp), 1, np.zeros((0, 4)), d, linkage)
    # Cluster distances divided by the largest (averages of distances near 1e308 cannot overflow);
    # division by one positive number keeps every comparison with the threshold.
    unit = float(d.max()) if d.max() > 0 else 1.0
    z = hierarchy.linkage(squareform(d / unit, checks=False), method=linkage)
    if threshold is not None:
        raw = hierarchy.fcluster(z, t=float(threshold) / unit, criterion="distance")
    else:
        raw = hierarchy.cut_tree(z, n_clusters=n_classes).ravel()
    labels = _relabel_by_first_appearance(np.asarray(raw))
    z[:, 2] *= unit
    return EquivalenceClasses(labels, int(labels.max()) + 1, z, d, linkage)
