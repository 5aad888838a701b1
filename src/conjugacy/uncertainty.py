"""Uncertainty of Koopman eigenvalues and of distances, by bootstrap over trajectories.

Replicas of one seed (perturbed initializations trained on one batch order) are independent given
the seed, so resampling whole trajectories with replacement and recomputing the spectrum gives the
sampling variability of every eigenvalue and of a distance between two conditions (SPEC section 4,
"Uncertainty"). Pairs are never resampled individually: a trajectory's snapshot pairs are dependent.

* :func:`bootstrap_spectrum` -- percentile intervals of each eigenvalue (real part, imaginary part,
  modulus), after matching every bootstrap spectrum to the point estimate;
* :func:`bootstrap_distance` -- a percentile interval of the Wasserstein distance between the
  spectra of two sets of trajectories, each resampled independently.

Both accept the spectrum settings of :func:`conjugacy.koopman_spectrum` and a residual filter
(``filter="default"``, a dict of :meth:`Spectrum.filtered` arguments, or None).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from ._checks import Float, Param, check_choice, check_int, check_seed, check_unit_interval
from .compare import TIMES, freeze_fields, wasserstein
from .spectrum import RankWarning, Spectrum, koopman_spectrum
from .trajectories import TrajectoriesLike, as_trajectory_list

__all__ = ["DistanceInterval", "EigenvalueIntervals", "bootstrap_distance", "bootstrap_spectrum"]


@dataclass(frozen=True, eq=False)
class EigenvalueIntervals:
    """Bootstrap intervals of the eigenvalues of one spectrum.

    Attributes
    ----------
    spectrum : Spectrum
        The point estimate (all trajectories, filtered if a filter was asked for).
    samples : ndarray, complex (n_boot, k)
        Row b: the eigenvalues of bootstrap spectrum b matched one to one (minimum total distance)
        to the k point-estimate eigenvalues; NaN where a bootstrap spectrum had fewer eigenvalues.
    real, imag, modulus : ndarray, float (k, 2)
        Percentile intervals ``[low, high]`` at ``level`` of the real part, imaginary part and
        modulus of each eigenvalue (over the bootstrap spectra that matched it).
    matched : ndarray, float (k,)
        Fraction of bootstrap spectra that had a match for each eigenvalue.
    level : float
        Coverage of the intervals (e.g. 0.95).
    n_boot : int
    seed : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(30)[:, None]  # 6 noisy trajectories of x_{t+1} = diag(0.9, 0.5) x_t
    >>> runs = rng.normal(size=(6, 1, 2)) * np.power([0.9, 0.5], t) + 1e-3 * rng.normal(size=(6, 30, 2))
    >>> ci = bootstrap_spectrum(runs, n_boot=20, rank=2)
    >>> ci.real.round(3)  # [low, high] of the real part of 0.9 and 0.5
    array([[0.9  , 0.9  ],
           [0.499, 0.501]])
    """

    spectrum: Spectrum
    samples: np.ndarray
    real: np.ndarray
    imag: np.ndarray
    modulus: np.ndarray
    matched: np.ndarray
    level: float
    n_boot: int
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        freeze_fields(self, "samples", "real", "imag", "modulus", "matched")

    @property
    def eigenvalues(self) -> np.ndarray:
        return self.spectrum.eigenvalues

    def __repr__(self) -> str:
        rows = [
            f"  {z.real:+.4f}{z.imag:+.4f}j  |lambda| in [{m[0]:.4f}, {m[1]:.4f}]"
            for z, m in zip(self.eigenvalues, self.modulus)
        ]
        head = f"EigenvalueIntervals(level={self.level}, n_boot={self.n_boot}, k={len(rows)})"
        return "\n".join([head] + rows)


@dataclass(frozen=True)
class DistanceInterval:
    """Bootstrap interval of a distance between two spectra.

    Attributes
    ----------
    distance : float
        The distance between the point estimates (all trajectories of each set).
    low, high : float
        Percentile interval at ``level``. The bootstrap distribution of a distance is bounded
        below by 0 and biased upward when the true distance is small: read the interval against
        the within-condition spread (the noise floor of independent seeds), not against 0.
    samples : tuple of float (n_boot,)
    level : float
    n_boot : int
    seed : int

    Examples
    --------
    Made by :func:`bootstrap_distance` (trajectories resampled with replacement):

    >>> import numpy as np
    >>> t = np.arange(30)[:, None]
    >>> runs = np.random.default_rng(0).normal(size=(6, 1, 2)) * np.power([0.9, 0.5], t)
    >>> other = np.random.default_rng(1).normal(size=(6, 1, 2)) * np.power([0.8, 0.5], t)
    >>> d = bootstrap_distance(runs, other, n_boot=20, rank=2, seed=3)
    >>> round(d.distance, 3), len(d.samples), d.level, d.n_boot, d.seed
    (0.05, 20, 0.95, 20, 3)
    """

    distance: float
    low: float
    high: float
    samples: tuple[float, ...]
    level: float
    n_boot: int
    seed: int

    def __repr__(self) -> str:
        return (
            f"DistanceInterval(distance={self.distance:.4g}, {self.level:.0%} interval "
            f"[{self.low:.4g}, {self.high:.4g}], n_boot={self.n_boot})"
        )


def _check_common(n_boot: Any, level: Any, seed: Any) -> tuple[int, float, int]:
    return (check_int(n_boot, "n_boot", minimum=2), check_unit_interval(level, "level"),
            check_seed(seed))


def _apply_filter(spec: Spectrum, filter: Any) -> Spectrum:
    if filter is None:
        return spec
    if filter == "default":
        return spec.filtered()
    if isinstance(filter, dict):
        unknown = set(filter) - {"max_residual", "n"}
        if unknown:
            raise ValueError(f"filter accepts the keys 'max_residual' and 'n', got {sorted(unknown)}")
        return spec.filtered(**filter)
    raise ValueError(
        f"filter must be None, 'default' or a dict of Spectrum.filtered arguments, got {filter!r}"
    )


def _trajectories(trajectories: TrajectoriesLike, name: str) -> list[np.ndarray]:
    trajs = as_trajectory_list(trajectories, name=name)
    if len(trajs) < 2:
        raise ValueError(
            f"{name} holds {len(trajs)} trajectory; the bootstrap resamples whole trajectories "
            "and needs at least 2 (e.g. perturbed replicas of one seed)"
        )
    return trajs


def _spectrum(trajs: list[np.ndarray], kwargs: dict[str, Any], filter: Any,
              record_interval: float | None = None) -> Spectrum:
    with warnings.catch_warnings():
        # a resample with duplicated trajectories may have a lower numerical rank
        warnings.simplefilter("ignore", RankWarning)
        spectrum = _apply_filter(koopman_spectrum(trajs, **kwargs), filter)
    if record_interval is None:
        return spectrum
    return replace(spectrum, settings={**spectrum.settings, "record_interval": record_interval})


#: ``record_intervals``: the steps between records of trajectories_a and of trajectories_b.
_INTERVALS = Param("tuple", item=Float(0, open_minimum=True), length=2)


def _record_intervals(record_intervals: Any, time: str) -> tuple[float | None, float | None]:
    """``record_intervals`` checked: two positive numbers, or (None, None) when not given."""
    check_choice(time, "time", TIMES)
    if record_intervals is None:
        if time == "continuous":
            raise ValueError("time='continuous' needs record_intervals=(steps between records "
                             "of trajectories_a, of trajectories_b)")
        return None, None
    return _INTERVALS.check(record_intervals, "record_intervals")


def _percentiles(values: np.ndarray, level: float) -> np.ndarray:
    alpha = (1 - level) / 2
    out = np.full((values.shape[1], 2), np.nan)
    for j in range(values.shape[1]):
        col = values[:, j]
        col = col[np.isfinite(col)]
        if col.size:
            out[j] = np.quantile(col, [alpha, 1 - alpha])
    return out


def bootstrap_spectrum(
    trajectories: TrajectoriesLike,
    *,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
    filter: Any = None,
    **spectrum_kwargs: Any,
) -> EigenvalueIntervals:
    """Bootstrap intervals of Koopman eigenvalues, resampling whole trajectories.

    Parameters
    ----------
    trajectories : array (n_trajectories, n_steps, n_features) or list of (n_steps_i, n_features)
        At least 2 trajectories (independent given the seed, e.g. perturbed replicas).
    n_boot : int, default 200
        Bootstrap resamples (each costs one :func:`koopman_spectrum` call).
    level : float, default 0.95
        Coverage of the percentile intervals.
    seed : int
        Seed of the resampling (results are deterministic given it).
    filter : None, "default" or dict
        Residual filter applied to the point estimate and to every resample
        (:meth:`Spectrum.filtered`).
    **spectrum_kwargs
        Passed to :func:`koopman_spectrum` (delays, rank, method, pca, ...); ``modes`` is off.

    Returns
    -------
    EigenvalueIntervals

    Raises
    ------
    ValueError
        Fewer than 2 trajectories, or an argument out of range (named).
    TypeError
        ``n_boot``, ``level`` or ``seed`` of the wrong type (named).

    References
    ----------
    Efron & Tibshirani, *An Introduction to the Bootstrap*, Chapman & Hall 1993, ch. 13
    (percentile intervals); resampling whole trajectories because replicas are independent given
    the seed (Redman et al., NeurIPS 2024, sec. 3).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(30)[:, None]  # 6 noisy trajectories of x_{t+1} = diag(0.9, 0.5) x_t
    >>> runs = rng.normal(size=(6, 1, 2)) * np.power([0.9, 0.5], t) + 1e-3 * rng.normal(size=(6, 30, 2))
    >>> ci = bootstrap_spectrum(runs, n_boot=20, rank=2)
    >>> ci.spectrum.eigenvalues.real.round(3), ci.matched
    (array([0.9, 0.5]), array([1., 1.]))
    >>> bool(ci.modulus[0, 0] <= 0.9 <= ci.modulus[0, 1])
    True
    """
    n_boot, level, seed = _check_common(n_boot, level, seed)
    trajs = _trajectories(trajectories, "trajectories")
    kwargs = {**spectrum_kwargs, "modes": False}
    point = _spectrum(trajs, kwargs, filter)
    k = len(point)
    rng = np.random.default_rng(seed)
    samples = np.full((n_boot, k), np.nan + 1j * np.nan)
    for b in range(n_boot):
        idx = rng.integers(0, len(trajs), len(trajs))
        eig = _spectrum([trajs[i] for i in idx], kwargs, filter).eigenvalues
        if k and eig.size:
            cost = np.abs(point.eigenvalues[:, None] - eig[None, :])
            rows, cols = linear_sum_assignment(cost)
            samples[b, rows] = eig[cols]
    finite = np.isfinite(samples.real)
    return EigenvalueIntervals(
        spectrum=point,
        samples=samples,
        real=_percentiles(samples.real, level),
        imag=_percentiles(samples.imag, level),
        modulus=_percentiles(np.where(finite, np.abs(samples), np.nan), level),
        matched=finite.mean(axis=0) if k else np.zeros(0),
        level=level,
        n_boot=n_boot,
        seed=seed,
        settings={"filter": filter, **{k_: v for k_, v in spectrum_kwargs.items()}},
    )


def bootstrap_distance(
    trajectories_a: TrajectoriesLike,
    trajectories_b: TrajectoriesLike,
    *,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
    p: float = 1,
    filter: Any = "default",
    time: str = "auto",
    record_intervals: tuple[float, float] | None = None,
    **spectrum_kwargs: Any,
) -> DistanceInterval:
    """Bootstrap interval of the Wasserstein distance between the spectra of two conditions.

    Each set of trajectories is resampled (whole trajectories, with replacement) independently,
    both spectra recomputed with the same settings and filter, and ``W_p`` taken between them.

    Parameters
    ----------
    trajectories_a, trajectories_b : see :func:`bootstrap_spectrum` (at least 2 each)
    n_boot, level, seed : see :func:`bootstrap_spectrum`
    p : float, default 1
        Order of the Wasserstein distance (:func:`conjugacy.wasserstein`).
    filter : None, "default" or dict, default "default"
        Residual filter applied to every spectrum before the distance.
    time : {"auto", "discrete", "continuous"}, default "auto"
        As in :func:`conjugacy.wasserstein` (:data:`conjugacy.compare.TIMES`): with
        ``record_intervals`` that differ, ``"auto"`` compares continuous-time exponents
        ``log(lambda) / dt`` (distances per step), so a process recorded every step and every
        5th step gives the same interval.
    record_intervals : (float, float), optional
        Training steps between two records of ``trajectories_a`` and of ``trajectories_b``
        (set as each spectrum's ``settings["record_interval"]``); None: none known (discrete).
    **spectrum_kwargs
        Passed to :func:`koopman_spectrum`.

    Returns
    -------
    DistanceInterval

    Raises
    ------
    ValueError
        Fewer than 2 trajectories in a set, ``time="continuous"`` without
        ``record_intervals``, or an argument out of range (named).
    TypeError
        ``n_boot``, ``level``, ``seed`` or ``record_intervals`` of the wrong type (named).
    conjugacy.compare.AliasingError
        A continuous-time comparison whose eigenvalues alias (:func:`conjugacy.compare.aliasing`).

    References
    ----------
    Efron & Tibshirani, *An Introduction to the Bootstrap*, Chapman & Hall 1993, ch. 13
    (percentile intervals); resampling whole trajectories because replicas are independent given
    the seed (Redman et al., NeurIPS 2024, sec. 3).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(30)[:, None]  # 6 noisy trajectories of x_{t+1} = diag(0.9, 0.5) x_t
    >>> runs = rng.normal(size=(6, 1, 2)) * np.power([0.9, 0.5], t) + 1e-3 * rng.normal(size=(6, 30, 2))
    >>> other = rng.normal(size=(6, 1, 2)) * np.power([0.8, 0.5], t)  # 0.9 -> 0.8
    >>> d = bootstrap_distance(runs, other, n_boot=20, rank=2)
    >>> round(d.distance, 3), bool(d.low <= d.distance <= d.high)  # W1 = (0.1 + 0) / 2
    (0.05, True)
    """
    n_boot, level, seed = _check_common(n_boot, level, seed)
    a = _trajectories(trajectories_a, "trajectories_a")
    b = _trajectories(trajectories_b, "trajectories_b")
    kwargs = {**spectrum_kwargs, "modes": False}
    dt_a, dt_b = _record_intervals(record_intervals, time)

    def distance_of(ta: list[np.ndarray], tb: list[np.ndarray], point: bool = False) -> float:
        sa, sb = _spectrum(ta, kwargs, filter, dt_a), _spectrum(tb, kwargs, filter, dt_b)
        return wasserstein(sa, sb, p=p, time=time) if point or (len(sa) and len(sb)) else np.nan

    distance = distance_of(a, b, point=True)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_boot):
        ra = [a[i] for i in rng.integers(0, len(a), len(a))]
        rb = [b[i] for i in rng.integers(0, len(b), len(b))]
        samples.append(distance_of(ra, rb))
    arr = np.asarray(samples, dtype=float)
    finite = arr[np.isfinite(arr)]
    alpha = (1 - level) / 2
    low, high = (np.quantile(finite, [alpha, 1 - alpha]) if finite.size else (np.nan, np.nan))
    return DistanceInterval(
        distance=float(distance),
        low=float(low),
        high=float(high),
        samples=tuple(float(x) for x in arr),
        level=level,
        n_boot=n_boot,
        seed=seed,
    )
