"""The Koopman spectrum: a frozen result record and its front doors.

:class:`Spectrum` is the record; :func:`koopman_spectrum` validates its arguments and hands the
data to the path machinery (:mod:`conjugacy.spectrum_paths`: path choice, the dense, Gram, subspace
and streamed paths, the precision rule); :func:`spectrum_from_gram` does the same on the Gram path
from a snapshot Gram the caller already has.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ._checks import check_choice, check_int, check_positive_float, check_rank
from ._spectrum_io import load_spectrum, save_spectrum
from .dmd import METHODS
from .spectrum_paths import (
    MATERIALIZE_BYTES,
    MODES_AUTO_BYTES,
    PATHS,
    Fit,
    FitOptions,
    fit,
    fit_from_gram,
    fit_variants,
    input_eps,
    source_eps,
)
from .threads import blas_threads
from .trajectories import TrajectoriesLike

__all__ = [
    "DEFAULT_FILTER",
    "MATERIALIZE_BYTES",
    "MODES_AUTO_BYTES",
    "PATHS",
    "RankWarning",
    "capped_svht_rank",
    "Spectrum",
    "input_eps",
    "koopman_spectra",
    "koopman_spectrum",
    "source_eps",
    "spectrum_from_gram",
    "continuous_time_eigenvalues",
    "MIN_MODULUS",
]

FORMAT_NAME = "conjugacy.Spectrum"
FORMAT_VERSION = 1

#: The rule :meth:`Spectrum.filtered` applies when called without arguments: keep eigenpairs whose
#: ResDMD data residual is at most ``max(max_residual, relative * smallest residual)``.
DEFAULT_FILTER = {"rule": "default", "max_residual": 0.1, "relative": 2.0}


#: Continuous-time decay rates below ``log(MIN_MODULUS)`` per unit time are raised to it by
#: :func:`continuous_time_eigenvalues` (``|lambda| < 1e-6`` per unit time counts as 0).
MIN_MODULUS = 1e-6


def continuous_time_eigenvalues(eigenvalues: Any, dt: float, *,
                                min_modulus: float = MIN_MODULUS) -> np.ndarray:
    """Continuous-time exponents ``mu = log(lambda) / dt`` of discrete eigenvalues ``lambda``.

    A process recorded every ``dt`` (steps, or any unit) has eigenvalues ``lambda = exp(mu dt)``,
    so ``mu`` does not depend on the interval (until it aliases, see
    :func:`conjugacy.compare.aliasing`). The principal logarithm is used
    (``Im mu`` in ``(-pi/dt, pi/dt]``), with two documented treatments:

    - **lambda near 0**: the rate ``log|lambda| / dt`` is floored at ``log(min_modulus)`` (per unit
      time; ``lambda = 0`` gives exactly ``log(min_modulus)``): a mode that decays by more than
      ``1 / min_modulus`` per unit time is gone within one unit, and its exact rate (often
      ``-inf``) would dominate any distance. The floor is per unit time, so it is the same at
      every recording interval.
    - **negative real lambda** (imaginary part 0 or -0.0): mapped to ``log|lambda| / dt + i pi / dt``
      (the upper branch), never to ``-i pi / dt``: a period-2 oscillation is one point whatever the
      sign of its zero imaginary part. Its ``|arg lambda| = pi`` is at the Nyquist limit, so the
      aliasing guard flags it whenever intervals differ.

    Parameters
    ----------
    eigenvalues : array_like, complex (n,)
    dt : float > 0
        The recording interval (``Spectrum.settings["record_interval"]`` in the pipeline).
    min_modulus : float in (0, 1)
        Floor of ``|lambda|`` per unit time.

    Returns
    -------
    ndarray, complex (n,)

    Raises
    ------
    ValueError
        ``dt <= 0`` or ``min_modulus`` outside (0, 1).

    References
    ----------
    Tu et al., *On dynamic mode decomposition: theory and applications*, J. Comput. Dyn. 1(2),
    2014 (continuous-time eigenvalues ``log(lambda) / dt``).

    Examples
    --------
    >>> continuous_time_eigenvalues([np.exp(0.2j) * 0.9 ** 2, -0.25, 0.0], 2.0).round(4)
    array([ -0.1054+0.1j   ,  -0.6931+1.5708j, -13.8155+0.j    ])
    """
    dt = check_positive_float(dt, "dt")
    floor = check_positive_float(min_modulus, "min_modulus")
    if floor >= 1:
        raise ValueError(f"min_modulus must lie in (0, 1), got {min_modulus!r}")
    lam = np.asarray(eigenvalues, dtype=complex)
    modulus = np.abs(lam)
    with np.errstate(divide="ignore"):
        rate = np.maximum(np.log(modulus) / dt, np.log(floor))
    phase = np.where((lam.imag == 0) & (lam.real < 0), np.pi, np.angle(lam))
    return rate + 1j * phase / dt


def _pair_partner(eigenvalues: np.ndarray) -> np.ndarray:
    """Index of each eigenvalue's complex-conjugate partner (itself when real or unpaired)."""
    lam = eigenvalues
    partner = np.arange(lam.size)
    scale = max(float(np.abs(lam).max()) if lam.size else 0.0, np.finfo(float).tiny)
    free = set(np.flatnonzero(lam.imag < 0).tolist())
    for i in np.flatnonzero(lam.imag > 0):
        if not free:
            break
        cand = np.array(sorted(free))
        j = int(cand[np.argmin(np.abs(lam[cand] - np.conj(lam[i])))])
        if abs(lam[j] - np.conj(lam[i])) <= 1e-8 * scale:
            partner[i], partner[j] = j, i
            free.discard(j)
    return partner


def _pair_residuals(eigenvalues: np.ndarray, residuals: np.ndarray) -> np.ndarray:
    """Each eigenvalue's residual, a conjugate pair taking the larger of its two."""
    partner = _pair_partner(eigenvalues)
    return np.maximum(residuals, residuals[partner])


def _smallest_groups(eigenvalues: np.ndarray, group_res: np.ndarray, n: int) -> np.ndarray:
    """Mask of at most ``n`` eigenvalues of smallest residual, conjugate pairs never split: the
    groups (a real eigenvalue, or a conjugate pair) are taken in order of residual until the next
    one does not fit; a worse-ranked eigenvalue never replaces a better pair that does not fit."""
    partner = _pair_partner(eigenvalues)
    keep = np.zeros(eigenvalues.size, bool)
    count = 0
    for i in np.argsort(group_res, kind="stable"):
        if keep[i]:
            continue
        size = 1 if partner[i] == i else 2
        if count + size > n:
            break
        keep[i] = keep[partner[i]] = True
        count += size
    return keep


#: the optional per-eigenpair arrays of the two-branch residuals (conjugacy.residuals)
BRANCH_FIELDS = ("projection_residuals", "variance_residuals", "noise_fractions")
#: The fields of a :class:`Spectrum` with one entry per eigenvalue (a filter keeps its entries).
PER_EIGENVALUE = ("eigenvalues", "residuals", "plain_residuals", "rayleigh_quotients",
                  "data_residuals", *BRANCH_FIELDS)


def _frozen(arr: np.ndarray | None) -> np.ndarray | None:
    # A read-only array is shared as is (koopman_spectrum hands over its own arrays that way, so a
    # large mode matrix is not copied); anything writable is copied, so a caller keeping a
    # reference cannot change the record.
    if arr is None:
        return None
    if isinstance(arr, np.ndarray) and not arr.flags.writeable:
        return arr
    arr = np.array(arr, copy=True)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Koopman eigenvalues of one training process, with what is needed to trust them.

    Attributes
    ----------
    eigenvalues : ndarray, complex (rank,)
        Koopman eigenvalues (Ritz values), sorted by decreasing modulus; complex-conjugate pairs
        are exactly conjugate for real data, the one with positive imaginary part first.
    residuals : ndarray, float (rank,)
        Residual ``||A z - lambda z||`` of each eigenpair for unit ``z``; for ``method="rrr"`` the
        refined residuals (smallest over the Ritz subspace, Drmac et al. 2018).
    plain_residuals : ndarray, float (rank,)
        Residuals of the plain Ritz vectors (before refinement).
    modes : ndarray, complex (n_observables, rank) or None
        DMD modes in the (delay-embedded, PCA-projected) observable space; projected modes for
        ``"standard"``, exact modes for ``"exact"``, refined Ritz vectors for ``"rrr"``.
    singular_values : ndarray, float
        Singular values of the (column-scaled) data matrix X that were computed (all of them on
        the dense path, the leading ones on the fast paths).
    rank : int
        Number of modes kept.
    method : str
        ``"standard"``, ``"exact"`` or ``"rrr"``.
    residuals_informative : bool
        False when the rank equals the number of observables: then every residual is ~0 whatever
        the eigenvalues, because the Ritz subspace is the whole space (SPEC section 3).
    rayleigh_quotients : ndarray, complex (rank,) or None
        For ``"rrr"``: ``rho_i = w_i^* S_k w_i`` for the refined vectors, an improved eigenvalue.
    settings : dict
        The settings used (delays, rank requested, tol, pca, scale, path, data sizes, version);
        ``settings["rank_rule"]`` what decided the rank (``"svht"`` with its threshold, omega,
        beta and median; ``"tolerance"``; ``"fixed"``), ``settings["delays_rule"]`` how
        ``delays="auto"`` chose; after :meth:`filtered`, ``settings["filter"]`` records the rule
        and what was dropped.
    data_residuals : ndarray, float (rank,) or None
        ResDMD residual of each eigenpair on the data (Colbrook & Townsend 2024):
        ``||phi(Y) - lambda phi(X)|| / ||phi(X)||`` for the eigenfunction ``phi`` of the
        eigenvalue, over all snapshot pairs (dimensionless). Small means the eigenvalue is
        supported by the data; informative also when the rank equals the number of observables
        (not when it equals the number of pairs: then every eigenpair interpolates the data).
        :meth:`filtered` ranks eigenpairs by it.
    projection_residuals, variance_residuals, noise_fractions : ndarray, float (rank,) or None
        Two-branch (stochastic ResDMD) residuals, present when the spectrum was computed with
        ``next_states=`` (:mod:`conjugacy.residuals`): the projection error alone (~0 for an
        eigenpair the data support, whatever the noise), projection error plus next-state
        variance, and the share of the eigenfunction's next-step size that is noise (~1 for a
        noise direction). :meth:`filtered` uses them when present.

    References
    ----------
    Redman et al., *Identifying Equivalent Training Dynamics*, NeurIPS 2024; Colbrook & Townsend,
    Comm. Pure Appl. Math. 77(1), 2024 (ResDMD residuals).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(40)[:, None]  # 5 trajectories of x_{t+1} = diag(0.9, 0.8, 0.5) x_t
    >>> runs = np.random.default_rng(0).normal(size=(5, 1, 3)) * np.power([0.9, 0.8, 0.5], t)
    >>> noisy = runs + 1e-3 * np.random.default_rng(1).normal(size=runs.shape)
    >>> spec = koopman_spectrum(noisy, delays=1, rank=4)  # one eigenvalue more than the system has
    >>> spec.eigenvalues.real.round(2), spec.data_residuals.round(2)
    (array([ 0.9 ,  0.8 ,  0.5 , -0.49]), array([0.  , 0.  , 0.01, 0.87]))
    >>> spec.filtered().eigenvalues.real.round(2)  # the spurious -0.49 is not supported
    array([0.9, 0.8, 0.5])
    """

    eigenvalues: np.ndarray
    residuals: np.ndarray
    plain_residuals: np.ndarray
    modes: np.ndarray | None
    singular_values: np.ndarray
    rank: int
    method: str
    residuals_informative: bool
    rayleigh_quotients: np.ndarray | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    data_residuals: np.ndarray | None = None
    projection_residuals: np.ndarray | None = None
    variance_residuals: np.ndarray | None = None
    noise_fractions: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "eigenvalues", _frozen(np.asarray(self.eigenvalues, complex)))
        object.__setattr__(self, "modes", _frozen(self.modes))
        object.__setattr__(self, "singular_values", _frozen(np.asarray(self.singular_values, float)))
        object.__setattr__(self, "rayleigh_quotients", _frozen(self.rayleigh_quotients))
        object.__setattr__(self, "settings", dict(self.settings))
        n = self.eigenvalues.shape[0]
        for name in ("residuals", "plain_residuals", "data_residuals", *BRANCH_FIELDS):
            value = getattr(self, name)  # the first two are required (None: a 0-d array)
            if value is not None or name in ("residuals", "plain_residuals"):
                object.__setattr__(self, name, _frozen(np.asarray(value, float)))
                if getattr(self, name).shape != (n,):
                    raise ValueError(f"{name} must have one entry per eigenvalue")

    def __setstate__(self, state: dict[str, Any]) -> None:
        # pickle and copy.deepcopy rebuild arrays writable; restore the record's read-only arrays
        for key, value in state.items():
            object.__setattr__(self, key, value)
        for value in state.values():
            if isinstance(value, np.ndarray):
                value.setflags(write=False)

    # ----- residual-aware selection ---------------------------------------------------------
    def filtered(self, max_residual: float | None = None, n: int | None = None) -> Spectrum:
        """The eigenpairs the data support, ranked by their ResDMD residual (:attr:`data_residuals`).

        Parameters
        ----------
        max_residual : float, optional
            Keep eigenpairs whose data residual is at most this (dimensionless).
        n : int, optional
            Keep the ``n`` best-supported eigenpairs, ranked by the residual the default rule
            uses: the projection residual (:attr:`projection_residuals`) when the spectrum has
            two-branch residuals, else the data residual. Taken in that order, a conjugate pair
            as a whole, until the next one does not fit: one fewer may be kept rather than split a
            pair, and when the best-ranked is a pair and ``n = 1`` (and no ``max_residual``) the
            pair is kept, one more (``settings["filter"]["kept_pair_for_n"]``).
            With both arguments, both conditions apply.

        Returns
        -------
        Spectrum
            The kept eigenpairs, in their order, with ``settings["filter"]``.

        Raises
        ------
        ValueError
            If the spectrum has no data residuals (made by an older version: recompute it), or an
            argument is out of range.

        Notes
        -----
        With neither argument, a spectrum with two-branch residuals (``next_states=``) is filtered
        by :data:`conjugacy.residuals.BRANCH_FILTER`: keep the eigenpairs whose projection residual
        is at most 0.2 and whose noise fraction is at most 0.9 (chosen by measurement,
        docs/comparing.md "Residuals under SGD noise"). Otherwise the default rule
        :data:`DEFAULT_FILTER` applies: keep the
        eigenpairs whose residual is at most ``max(0.1, 2 * r_min)`` (``r_min`` the smallest
        residual), i.e. a fixed threshold of 0.1 that is relaxed for noisy data where even the best
        eigenpair has a larger residual (SGD noise), so that the best-supported eigenpairs are always
        kept. Chosen from measurement (``benchmarks/bench_separation.py``, docs/comparing.md).

        Conjugate pairs are kept or dropped together (the pair's residual is the larger of the two).
        The result records the rule, the residuals and the eigenvalues dropped in
        ``settings["filter"]``; its eigenvalues keep their order. Filtering an already filtered
        spectrum applies the new rule to what is left and records both.

        References
        ----------
        Colbrook & Townsend, Comm. Pure Appl. Math. 77(1), 2024 (ResDMD residuals).

        Examples
        --------
        >>> import numpy as np
        >>> t = np.arange(40)[:, None]  # 5 trajectories of x_{t+1} = diag(0.9, 0.8, 0.5) x_t
        >>> runs = np.random.default_rng(0).normal(size=(5, 1, 3)) * np.power([0.9, 0.8, 0.5], t)
        >>> noisy = runs + 1e-3 * np.random.default_rng(1).normal(size=runs.shape)
        >>> spec = koopman_spectrum(noisy, delays=1, rank=4)
        >>> kept = spec.filtered()
        >>> dropped = kept.settings["filter"]["dropped_eigenvalues"]  # as [re, im] pairs
        >>> kept.eigenvalues.real.round(2), [[round(re, 2), im] for re, im in dropped]
        (array([0.9, 0.8, 0.5]), [[-0.49, 0.0]])
        """
        if self.data_residuals is None:
            raise ValueError(
                "this Spectrum has no data_residuals (saved by an older conjugacy?): recompute it "
                "with koopman_spectrum to filter by residual"
            )
        if max_residual is not None:
            max_residual = check_positive_float(max_residual, "max_residual")
        if n is not None:
            n = check_int(n, "n", minimum=1)
        res = self.data_residuals
        keep, rule = _filter_keep(self, max_residual, n)
        rule.update(
            fit_rank=int(self.settings.get("filter", {}).get("fit_rank", self.rank)),
            n_before=int(res.size),
            n_kept=int(keep.sum()),
            kept_residuals=[float(r) for r in res[keep]],
            dropped_eigenvalues=[[float(z.real), float(z.imag)] for z in self.eigenvalues[~keep]],
            dropped_residuals=[float(r) for r in res[~keep]],
        )
        settings = dict(self.settings)
        previous = settings.get("filter")
        if previous is not None:
            rule["previous"] = previous
        settings["filter"] = rule
        kept = {name: None if getattr(self, name) is None else getattr(self, name)[keep]
                for name in PER_EIGENVALUE}
        return replace(self, **kept, modes=None if self.modes is None else self.modes[:, keep],
                       rank=int(keep.sum()), settings=settings)

    def __len__(self) -> int:
        return int(self.eigenvalues.shape[0])

    def __repr__(self) -> str:
        eig = np.array2string(self.eigenvalues, precision=4, max_line_width=90)
        return f"Spectrum(method={self.method!r}, rank={self.rank}, eigenvalues={eig})"

    # ----- derived quantities -------------------------------------------------------------
    @property
    def magnitude(self) -> np.ndarray:
        """``|lambda|`` (float, (rank,)): > 1 growing, = 1 persistent, < 1 decaying modes.

        Examples
        --------
        >>> import numpy as np
        >>> k = np.arange(50)  # a damped rotation by 0.3 rad per step: lambda = 0.95 exp(+-0.3i)
        >>> osc = (0.95 ** k)[:, None] * np.stack([np.cos(0.3 * k), np.sin(0.3 * k)], -1)
        >>> spec = koopman_spectrum([osc], rank=2)
        >>> spec.magnitude.round(4)
        array([0.95, 0.95])
        """
        return np.abs(self.eigenvalues)

    def frequency(self, dt: float = 1.0) -> np.ndarray:
        """Oscillation frequency ``arg(lambda) / (2 pi dt)`` in cycles per unit time (per step
        when ``dt = 1``), in (-1/(2 dt), 1/(2 dt)].

        Parameters
        ----------
        dt : float, default 1
            Time between two recorded snapshots (steps, or any unit).

        Returns
        -------
        ndarray, float (rank,)

        Raises
        ------
        ValueError
            ``dt`` not a positive finite number.

        Examples
        --------
        >>> import numpy as np
        >>> k = np.arange(50)  # a damped rotation by 0.3 rad per step: lambda = 0.95 exp(+-0.3i)
        >>> osc = (0.95 ** k)[:, None] * np.stack([np.cos(0.3 * k), np.sin(0.3 * k)], -1)
        >>> spec = koopman_spectrum([osc], rank=2)
        >>> spec.frequency().round(4)  # 0.3 / (2 pi) cycles per step
        array([ 0.0477, -0.0477])
        """
        return np.angle(self.eigenvalues) / (2 * np.pi * check_positive_float(dt, "dt"))

    def growth_rate(self, dt: float = 1.0) -> np.ndarray:
        """Continuous-time growth rate ``log|lambda| / dt`` (per unit time); ``-inf`` for 0.

        Parameters
        ----------
        dt : float, default 1
            Time between two recorded snapshots.

        Returns
        -------
        ndarray, float (rank,)

        Raises
        ------
        ValueError
            ``dt`` not a positive finite number.

        Examples
        --------
        >>> import numpy as np
        >>> k = np.arange(50)  # a damped rotation by 0.3 rad per step: lambda = 0.95 exp(+-0.3i)
        >>> osc = (0.95 ** k)[:, None] * np.stack([np.cos(0.3 * k), np.sin(0.3 * k)], -1)
        >>> spec = koopman_spectrum([osc], rank=2)
        >>> spec.growth_rate().round(4)  # log 0.95
        array([-0.0513, -0.0513])
        """
        dt = check_positive_float(dt, "dt")
        with np.errstate(divide="ignore"):
            return np.log(np.abs(self.eigenvalues)) / dt

    def continuous_time(self, dt: float | None = None, *,
                        min_modulus: float = MIN_MODULUS) -> np.ndarray:
        """Continuous-time eigenvalues ``log(lambda) / dt`` (complex, (rank,), per unit of ``dt``).

        The one conversion of the package (:func:`continuous_time_eigenvalues`, used by every
        comparison with ``time="continuous"``): the principal logarithm, a negative real
        eigenvalue mapped to ``+i pi / dt``, the rate floored at ``log(min_modulus)``.

        Parameters
        ----------
        dt : float, optional
            Time between two recorded snapshots. Default: the spectrum's recording interval
            ``settings["record_interval"]`` (training steps; set by the pipeline or
            :func:`conjugacy.analysis.with_record_interval`) if it carries one, else 1 (per
            recorded snapshot).
        min_modulus : float
            Moduli below it are treated as it (the rate of an eigenvalue 0 is finite).

        Returns
        -------
        ndarray, complex (rank,)

        Raises
        ------
        ValueError
            ``dt <= 0`` or ``min_modulus`` outside (0, 1).

        Examples
        --------
        >>> import numpy as np
        >>> k = np.arange(50)  # a damped rotation by 0.3 rad per step: lambda = 0.95 exp(+-0.3i)
        >>> osc = (0.95 ** k)[:, None] * np.stack([np.cos(0.3 * k), np.sin(0.3 * k)], -1)
        >>> spec = koopman_spectrum([osc], rank=2)
        >>> spec.continuous_time().round(4)
        array([-0.0513+0.3j, -0.0513-0.3j])
        >>> from conjugacy.analysis.groups import with_record_interval  # every 2 steps
        >>> with_record_interval(spec, 2 * k).continuous_time().round(4)
        array([-0.0256+0.15j, -0.0256-0.15j])
        """
        if dt is None:
            from .compare import recording_interval

            dt = recording_interval(self) or 1.0
        return continuous_time_eigenvalues(self.eigenvalues, dt, min_modulus=min_modulus)

    # ----- modes on request -------------------------------------------------------------------
    def with_modes(self, trajectories: TrajectoriesLike) -> Spectrum:
        """This spectrum with its DMD modes, computed on request from the data it was fitted on.

        :func:`koopman_spectrum` computes no modes unless asked (``modes=False``: on the Gram
        path they cost as much as the fit). This refits ``trajectories`` with the recorded
        settings (delays, rank rule, tol, method, PCA, scale, the path taken) and
        ``modes=True``, checks that the eigenvalues are this spectrum's, and returns a copy with
        the modes of its eigenvalues (also after :meth:`filtered`: the kept ones, in order).

        Parameters
        ----------
        trajectories : as for :func:`koopman_spectrum`
            The data this spectrum was fitted on (for a windowed spectrum: the window's slice).

        Returns
        -------
        Spectrum
            ``modes`` (n_observables, rank), complex; every other field unchanged. This spectrum
            itself when it has modes already.

        Raises
        ------
        ValueError
            The refit's eigenvalues are not this spectrum's (other data or settings), naming the
            largest difference.

        Examples
        --------
        >>> import numpy as np
        >>> walks = np.cumsum(np.random.default_rng(0).normal(size=(4, 50, 6)), axis=1)
        >>> spec = koopman_spectrum(walks, delays=2, rank=5)  # no modes by default
        >>> spec.modes is None, spec.with_modes(walks).modes.shape  # 6 x 3 observables
        (True, (18, 5))
        """
        return _with_modes(self, trajectories)

    # ----- persistence ----------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Save to a NumPy ``.npz`` archive (no pickle).

        The archive holds the arrays ``eigenvalues``, ``residuals``, ``plain_residuals``,
        ``singular_values``, optionally ``modes`` and ``rayleigh_quotients``, and ``meta``: a JSON
        string with ``format`` ("conjugacy.Spectrum"), ``format_version``, ``rank``, ``method``,
        ``residuals_informative`` and ``settings``. It is written to a temporary file and renamed,
        so an interruption never leaves a half-written file. Returns the path written (``.npz``
        is appended if missing). NumPy scalars and arrays, tuples and paths in ``settings`` are
        stored as their JSON equivalents; a value with no JSON form raises ``TypeError`` naming it.

        Parameters
        ----------
        path : str or path-like
            Where to write (``.npz`` appended if missing); the parent folder must exist.

        Returns
        -------
        Path

        Raises
        ------
        TypeError
            A value in ``settings`` with no JSON form.
        OSError
            The file cannot be written (the message names it).

        Examples
        --------
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> t = np.arange(40)[:, None]  # 5 trajectories of x_{t+1} = diag(0.9, 0.8, 0.5) x_t
        >>> runs = np.random.default_rng(0).normal(size=(5, 1, 3)) * np.power([0.9, 0.8, 0.5], t)
        >>> spec = koopman_spectrum(runs, rank=3)
        >>> path = spec.save(Path(tempfile.mkdtemp()) / "a")
        >>> path.name, np.array_equal(Spectrum.load(path).eigenvalues, spec.eigenvalues)
        ('a.npz', True)
        """
        return save_spectrum(self, path, FORMAT_NAME, FORMAT_VERSION)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Spectrum:
        """Load a spectrum written by :meth:`save` (never unpickles, never reads unknown members).

        The zip structure, the JSON ``meta``, the required members and every npy header (dtype,
        shape consistent with ``rank``, declared size) are validated before any data is read; see
        :mod:`conjugacy._spectrum_io`. Array fields added in later versions may be absent.

        Parameters
        ----------
        path : str or path-like
            A file written by :meth:`save`.

        Returns
        -------
        Spectrum

        Raises
        ------
        SpectrumFileError
            (a ``ValueError``) naming the file, what is wrong and the fix; the subclass
            ``SpectrumFileNotFoundError`` (also a ``FileNotFoundError``) when it does not exist.

        Examples
        --------
        A spectrum saved and loaded back, with its settings:

        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> t = np.arange(40)[:, None]
        >>> runs = np.random.default_rng(0).normal(size=(5, 1, 2)) * np.power([0.9, 0.5], t)
        >>> path = koopman_spectrum(runs, rank=2).save(Path(tempfile.mkdtemp()) / "s.npz")
        >>> back = Spectrum.load(path)
        >>> back.eigenvalues.real.round(6), back.rank, back.method
        (array([0.9, 0.5]), 2, 'rrr')
        """
        return load_spectrum(cls, path, FORMAT_NAME, FORMAT_VERSION)

# ----- the front door -----------------------------------------------------------------------------
def _filter_keep(spec: Spectrum, max_residual: float | None, n: int | None
                 ) -> tuple[np.ndarray, dict[str, Any]]:
    """Which eigenpairs :meth:`Spectrum.filtered` keeps (a boolean mask) and its rule."""
    res = spec.data_residuals
    group_res = _pair_residuals(spec.eigenvalues, res)
    if max_residual is None and n is None and spec.projection_residuals is not None:
        from .residuals import BRANCH_FILTER, branch_keep

        rule = dict(BRANCH_FILTER)
        keep = branch_keep(spec.projection_residuals, spec.noise_fractions,
                           _pair_partner(spec.eigenvalues))
    elif max_residual is None and n is None:
        rule = dict(DEFAULT_FILTER)
        floor = float(np.min(group_res)) if group_res.size else 0.0
        threshold = max(rule["max_residual"], rule["relative"] * floor)
        keep = group_res <= threshold
        rule["threshold"] = threshold
    else:
        rule = {"rule": "explicit", "max_residual": max_residual, "n": n}
        keep = np.ones(res.size, bool)
        if max_residual is not None:
            keep &= group_res <= max_residual
        if n is not None:
            rank_res, rule["ranked_by"] = group_res, "data residual"
            if spec.projection_residuals is not None:  # what the default rule ranks by
                rank_res = _pair_residuals(spec.eigenvalues, spec.projection_residuals)
                rule["ranked_by"] = "projection residual"
            keep &= _smallest_groups(spec.eigenvalues, rank_res, n)
            if not keep.any() and max_residual is None and res.size:
                # n = 1 and the best eigenpair is a conjugate pair: keep the pair rather than
                # return nothing (a pair is never split)
                keep = _smallest_groups(spec.eigenvalues, rank_res, 2)
                rule["kept_pair_for_n"] = True
    return keep, rule


def _with_modes(spec: Spectrum, trajectories: TrajectoriesLike) -> Spectrum:
    """The body of :meth:`Spectrum.with_modes`."""
    if spec.modes is not None:
        return spec
    from scipy.optimize import linear_sum_assignment

    s = spec.settings
    path = str(s.get("path", "auto")).replace(" (streamed)", "")
    refit = koopman_spectrum(
        trajectories, delays=s["delays"], rank=s.get("rank_requested"), tol=s.get("tol"),
        method=spec.method, pca=s.get("pca"), pca_center=bool(s.get("pca_center", True)),
        scale=bool(s.get("scale", False)), modes=True, path=path if path in PATHS else "auto",
    )
    if spec.rank == 0:
        return replace(spec, modes=refit.modes[:, :0])
    cost = np.abs(spec.eigenvalues[:, None] - refit.eigenvalues[None, :])
    rows, cols = linear_sum_assignment(cost)
    worst = float(cost[rows, cols].max()) if refit.rank >= spec.rank else float("inf")
    if worst > 1e-8 * max(1.0, float(np.abs(spec.eigenvalues).max())):
        raise ValueError(
            f"trajectories: not the data this spectrum was fitted on (the refit's "
            f"eigenvalues differ by {worst:.2e}); pass the same trajectories (a window's "
            "slice for a windowed spectrum)"
        )
    return replace(spec, modes=refit.modes[:, cols[np.argsort(rows)]])


class RankWarning(UserWarning):
    """The requested rank exceeds the numerical rank of the data.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     spec = koopman_spectrum(np.ones((2, 10, 3)), rank=3)  # constant data: rank 1
    >>> spec.rank, caught[0].category.__name__
    (1, 'RankWarning')
    """


def koopman_spectrum(
    trajectories: TrajectoriesLike,
    *,
    delays: int | str = 0,
    rank: int | str | None = None,
    tol: float | None = None,
    method: str = "rrr",
    pca: int | None = None,
    pca_center: bool = True,
    scale: bool = False,
    modes: bool | str = False,
    path: str = "auto",
    device: str | None = None,
    threads: int | str | None = "auto",
    next_states: TrajectoriesLike | None = None,
) -> Spectrum:
    """Koopman eigenvalues of one or many trajectories by DMD on time-delay observables.

    Parameters
    ----------
    trajectories : array (n_trajectories, n_steps, n_features), array (n_steps, n_features), or
        a list of (n_steps_i, n_features) arrays of different lengths
        The observables recorded along each trajectory (e.g. weights at every training step).
    delays : int or "auto", default 0
        Number of time delays d: the lifted state is ``[x_t; ...; x_{t+d}]``, formed within each
        trajectory (each needs at least ``d + 2`` steps). ``"auto"`` (in-memory NumPy data): the
        fewest delays whose held-out one-step prediction at the SVHT rank is within 2 % of the
        best (:func:`conjugacy.delays.choose_delays`), recorded in ``settings["delays_rule"]``.
    rank : int, "svht" or None
        Keep the top ``rank`` modes (the paper keeps 10). ``None``: all singular values above
        ``tol * s_1`` (the numerical rank: with noisy data it keeps the noise). ``"svht"``: the
        Gavish-Donoho optimal hard threshold for an unknown noise level, ``tau = omega(beta) *
        median(s)`` over all ``min(n_observables, n_pairs)`` singular values of the (delay-embedded,
        PCA-projected, scaled) snapshot matrix, ``beta`` its aspect ratio
        (:func:`conjugacy.dmd.svht_rank`; the exact ``omega``); the same threshold on every path
        (the Gram and streamed paths take the Gram's full eigenvalue spectrum, ~m^3; the subspace
        path first forms the Gram of the smaller side). ``settings["rank_rule"]`` records the
        rule, the threshold, ``omega``, ``beta`` and the median. An int larger than the data
        allow (``min(n_observables, n_pairs)``) is an error; one above the numerical rank is
        reduced to it (``Spectrum.settings["rank_reduced"]``).
    tol : float or None
        Relative singular value tolerance of the rank rule; default ``max(n, m) * eps`` with
        ``eps`` the machine epsilon of the *input* dtype (float32: 1.19e-7, float64: 2.2e-16), as
        ``numpy.linalg.matrix_rank`` does: float32 weights are not read as float64 data.
    method : {"rrr", "exact", "standard"}
        DMD-RRR (Drmac, Mezic & Mohr 2018; refined residuals and vectors), exact DMD (Tu et al.
        2014) or standard projected DMD. All return the eigenvalues of plain projected DMD at the
        same rank (the Ritz values); they differ in modes, residuals and Rayleigh quotients.
        Cost: the refinement takes one SVD of a (2k, k) matrix per eigenvalue, so it grows like
        ``k^4`` in the rank k: negligible at the paper's rank 10, but with ``rank=None`` on noisy
        data (k = number of snapshot pairs, e.g. 468) it dominates (70 s against 21 s for
        ``"standard"``); give ``rank=`` or use ``method="standard"`` there.
    pca : int or None
        Project all snapshots on the top ``pca`` principal components first (one basis fitted on
        the pooled snapshots of all trajectories; see :func:`conjugacy.fit_pca`).
    pca_center : bool, default True
        Fit the principal components on mean-centred snapshots (scikit-learn's ``PCA``, as the
        reference code of Redman et al.) and project the raw, uncentred snapshots on them, as the
        reference does. ``False``: an uncentred SVD basis, whose span holds the mean.
    scale : bool, default False
        Scale each snapshot pair by ``1 / ||x_j||`` before the SVD (step 1 of DMD-RRR as
        published). Opt-in: with more pairs than observables the scaled fit is a *weighted*
        least-squares problem that weighs every pair equally rather than by its norm, and its
        eigenvalues differ from plain DMD's (by 1e-2 on the paper's optimizer data); only for
        consistent pairs (``Y = A X``, X of full column rank) does it change nothing but the rank
        decision. The paper's published eigenvalues and every peer (PyDMD, deeptime) do not scale.
    modes : bool or "auto", default False
        Compute DMD modes (in delay/PCA observable coordinates); eigenvalues, residuals and data
        residuals never need them. ``True``: always (on the Gram and streamed paths they cost
        products with the data as large as the fit's: 30-50 % of the call on small and medium
        problems). ``"auto"``: only where they cost under 5 % of the fit (the dense path without
        compression and the subspace path, which hold the singular vectors) and take at most
        16 MiB (``MODES_AUTO_BYTES``), never for streamed data; a note says when they were
        skipped.
    path : {"auto", "dense", "gram", "subspace", "covariance"}
        How to compute. ``"dense"``: explicit delay matrices (after a QR compression of the base
        snapshots when features outnumber them), thin SVD and QR -- the numerically stable
        reference. ``"gram"``: sample-side Gram matrices from one pass over the data (fast when
        features dominate; cannot resolve singular values below ~1e-8 s_1, and falls back to
        dense when a kept one is below 1e-7 s_1). ``"subspace"``: structured subspace iteration
        for the top ``rank`` singular triplets without building the delay matrix (many
        snapshots), verified by its residuals; when they do not converge (they stall: no gap
        after the kept singular values, e.g. a noise tail) it recomputes on the next cheapest
        path (covariance or gram where they apply and fit in memory, else dense), with a note.
        ``"covariance"``: the feature-side covariance ``X X^*`` accumulated over snapshot
        blocks in one pass, its top ``rank`` eigenpairs, and three products of width ``rank``
        with the delay matrices for the rest (delay-embedded observables fewer than snapshot
        pairs; squares the condition number like the Gram path, with the same check and
        fallback to dense; data residuals resolved to ~1e-8).
        ``"auto"`` picks dense when ``rank`` is None, gram when features outnumber snapshots,
        and otherwise the cheapest by a cost model of the four from the shape, delays and rank
        (:func:`conjugacy.spectrum_paths.path_costs`; the subspace path for memory-mapped data).
        Every path first estimates its arrays (:func:`conjugacy.spectrum_paths.path_memory`)
        against the memory available (``MemAvailable`` and the cgroup limit) and refuses, in one
        line naming a path that fits, a request it cannot hold; ``"auto"`` skips such paths.
        The Gram path takes the top eigenpairs of a delay Gram larger than 2,000 by Lanczos,
        checked by their residuals (dense ``eigh`` otherwise or when the check fails).
        Memory-mapped arrays, ``dask.array`` inputs and store sources (``TrajectoryStore.source``)
        are *streamed* on the Gram path when it applies (a fixed ``rank``, or ``pca``): one pass
        over feature blocks, memory ``O(n_snapshots^2 + one block)`` (:mod:`conjugacy.streaming`).
    device : str or None
        A torch device (``"cuda"``) for the heavy products (the snapshot Gram, accumulated in
        float64), the small eigenproblems staying on the host; None: NumPy.
    threads : int, "auto" or None, default "auto"
        BLAS threads for this call (threadpoolctl). ``"auto"``: the cores not busy, by the
        1-minute load average less the caller itself (at least 1): on a loaded machine an
        oversubscribed BLAS was 20x slower than one thread; on an idle 2-core machine "auto"
        takes both (0.41 s against 0.55 s with one). An int: exactly that many; None: leave the
        BLAS setting alone.
    next_states : same shape as ``trajectories``, optional
        A second, independent next state of every recorded state (the *branch* recorded by
        ``Recorder(branch=...)`` / ``train_replicas(branch_batches=...)``, read with
        ``TrajectoryStore.read(..., branch="next")``): ``next_states[i][t]`` is reached from
        ``trajectories[i][t]`` by the recording stride of training on independently drawn
        batches. Adds the two-branch residuals (``projection_residuals``, ``variance_residuals``,
        ``noise_fractions``; :mod:`conjugacy.residuals`), which :meth:`Spectrum.filtered` then
        uses. In-memory arrays only; not with ``scale=True``.

    Returns
    -------
    Spectrum
        With ``data_residuals``, the ResDMD residual of every eigenpair; ``Spectrum.filtered()``
        keeps the eigenpairs the data support. An all-zero input gives an empty spectrum (rank 0),
        with a note in ``settings["notes"]`` and a :class:`RankWarning`, on every path.
        :func:`spectrum_from_gram` gives the same on the Gram path from a snapshot Gram already
        computed; the paths themselves are in :mod:`conjugacy.spectrum_paths`.

    Raises
    ------
    ValueError, TypeError
        Naming the argument: non-finite or non-numeric data, wrong shapes, too few steps for the
        delays, a rank or ``pca`` larger than the data allow, ``path="subspace"`` without ``rank``,
        a path whose arrays exceed the memory available.

    References
    ----------
    Redman et al., *Identifying Equivalent Training Dynamics*, NeurIPS 2024 (delays, DMD-RRR,
    Koopman eigenvalues of weight trajectories); Drmač, Mezić & Mohr, *Data driven modal
    decompositions: analysis and enhancements*, SIAM J. Sci. Comput. 40(4), 2018, Algorithm 2
    (DMD-RRR); Tu et al., *On dynamic mode decomposition: theory and applications*, J. Comput. Dyn.
    1(2), 2014 (exact DMD); Colbrook & Townsend, *Rigorous data-driven computation of spectral
    properties of Koopman operators for dynamical systems*, Comm. Pure Appl. Math. 77(1), 2024
    (ResDMD residuals); Arbabi & Mezić, SIAM J. Appl. Dyn. Syst. 16(4), 2017 (Hankel DMD).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(40)[:, None]  # 5 trajectories of x_{t+1} = diag(0.9, 0.8, 0.5) x_t
    >>> runs = np.random.default_rng(0).normal(size=(5, 1, 3)) * np.power([0.9, 0.8, 0.5], t)
    >>> spec = koopman_spectrum(runs, rank=3)
    >>> spec.eigenvalues.real.round(6), spec.rank, spec.method
    (array([0.9, 0.8, 0.5]), 3, 'rrr')
    >>> bool(spec.data_residuals.max() < 1e-8)  # every eigenpair supported by the data
    True
    """
    rank = check_rank(rank)
    opts = fit_options(tol=tol, method=method, pca=pca, pca_center=pca_center, scale=scale,
                       modes=modes, path=path, device=device, next_states=next_states,
                       ranks=(rank,))
    delay_choice = None
    if isinstance(delays, str):
        delay_choice = _auto_delays(trajectories, delays, threads)
        delays = delay_choice.delays
    with blas_threads(threads):
        fitted = fit(trajectories, delays, rank, opts)
        if delay_choice is not None:
            fitted.settings["delays_rule"] = delay_choice.as_dict()
        if next_states is None:
            return _record(fitted)
        from .residuals import with_branch

        return with_branch(_record(fitted), trajectories, next_states, delays=delays,
                           pca=opts.pca, pca_center=pca_center)


def _auto_delays(trajectories: Any, delays: str, threads: Any = "auto") -> Any:
    """``delays="auto"``: :func:`conjugacy.delays.choose_delays` on in-memory trajectories, at
    the fit's BLAS thread setting."""
    from .delays import choose_delays

    if delays != "auto":
        raise ValueError(f"delays must be a non-negative int or 'auto', got {delays!r}")
    if not (isinstance(trajectories, np.ndarray) or (
            isinstance(trajectories, list | tuple) and all(
                isinstance(t, np.ndarray) for t in trajectories))):
        raise ValueError(
            "delays='auto' chooses from in-memory NumPy trajectories (it reads the data several "
            f"times), got {type(trajectories).__name__}: load them, or give delays=<int> (e.g. "
            "from conjugacy.delays.choose_delays on a sample)")
    return choose_delays(trajectories, threads=threads)


def spectrum_from_gram(
    trajectories: TrajectoriesLike,
    gram: np.ndarray,
    *,
    delays: int = 0,
    rank: int | str | None = None,
    tol: float | None = None,
    method: str = "rrr",
    scale: bool = False,
    modes: bool | str = False,
    threads: int | str | None = "auto",
) -> Spectrum:
    """:func:`koopman_spectrum` on the Gram path, with the snapshot Gram already computed.

    The same spectrum as ``koopman_spectrum(trajectories, path="gram", ...)`` (eigenvalues to
    rounding, ~1e-12 relative for well-conditioned data; the same rank, residuals, settings, notes
    and warnings; ``settings["path"]`` is ``"gram"``, or ``"dense"`` where the Gram cannot
    resolve the kept singular values and the spectrum is recomputed from the data, as there),
    without the one pass over the data that forms the Gram, the dominant cost when features
    outnumber snapshots. For callers that have the Gram anyway, e.g. windows that share their
    snapshots (:func:`conjugacy.windowed_spectra`), or a Gram accumulated on a GPU.

    Parameters
    ----------
    trajectories : array (n_trajectories, n_steps, n_features), array (n_steps, n_features), or
        a list of (n_steps_i, n_features) arrays, in memory (memory maps are read)
        The data the Gram was formed from; still needed for the precision rule (their dtype),
        the checks and the modes.
    gram : ndarray (n_snapshots, n_snapshots)
        ``G[s, t] = x_s^* x_t`` over all ``n_snapshots = sum_i n_steps_i`` base snapshots (before
        any delay embedding), the snapshots of each trajectory in order and the trajectories in
        the order given: for equal-length trajectories ``Z = x.reshape(-1, n_features)`` it is
        ``Z.conj() @ Z.T``. Real for real data. Not modified.
    delays, rank, tol, method, scale, modes, threads
        As for :func:`koopman_spectrum`. There is no ``pca``, ``path`` or ``device``: the Gram
        is that of the data as given, the path is the Gram path and the heavy product is done.

    Returns
    -------
    Spectrum

    Raises
    ------
    TypeError
        ``gram`` not a numeric NumPy array, or complex for real data; an argument of the wrong
        type (as :func:`koopman_spectrum`).
    ValueError
        ``gram`` not of shape (n_snapshots, n_snapshots), or its diagonal not the squared norms
        of the snapshots (to 1e-6 of the largest: another data set, another order); and every
        error of :func:`koopman_spectrum` (non-finite data, too few steps for the delays, a rank
        larger than the data allow, ...).

    References
    ----------
    Sirovich, *Turbulence and the dynamics of coherent structures*, Q. Appl. Math. 45, 1987 (the
    method of snapshots); Drmač, Mezić & Mohr, SIAM J. Sci. Comput. 40(4), 2018 (DMD-RRR).

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy.spectrum import koopman_spectrum, spectrum_from_gram
    >>> rng = np.random.default_rng(0)
    >>> x = np.cumsum(rng.standard_normal((2, 30, 200)), axis=1)  # 2 runs, 30 steps, 200 weights
    >>> z = x.reshape(-1, 200)
    >>> gram = z.conj() @ z.T  # (60, 60)
    >>> a = spectrum_from_gram(x, gram, delays=1, rank=4)
    >>> b = koopman_spectrum(x, delays=1, rank=4, path="gram")
    >>> a.settings["path"], a.rank, bool(np.allclose(a.eigenvalues, b.eigenvalues, rtol=1e-10))
    ('gram', 4, True)
    """
    rank = check_rank(rank)
    opts = fit_options(tol=tol, method=method, pca=None, pca_center=True, scale=scale,
                       modes=modes, path="gram")
    with blas_threads(threads):
        fitted = fit_from_gram(trajectories, gram, delays, rank, opts)
    return _record(fitted)


def koopman_spectra(
    trajectories: TrajectoriesLike,
    settings: Sequence[Mapping[str, Any]],
    *,
    tol: float | None = None,
    method: str = "rrr",
    pca: int | None = None,
    pca_center: bool = True,
    scale: bool = False,
    modes: bool | str = False,
    path: str = "auto",
    threads: int | str | None = "auto",
    next_states: TrajectoriesLike | None = None,
) -> list[Spectrum]:
    """:func:`koopman_spectrum` of the same trajectories at several ``(delays, rank)`` settings,
    sharing the work they have in common.

    Spectra at neighbouring settings (the neighbour check of :mod:`conjugacy.analysis`: delays
    halved and doubled, the rank x0.8 and x1.25) are not independent computations: the ranks at equal
    delays are truncations of ONE factorization of the same delay matrix, and every delay
    matrix's Gram is formed from one snapshot Gram. Here they are computed once: the checks and
    the PCA coordinates, the snapshot Gram (when a setting takes the Gram path), and, per
    distinct delays, one SVD / eigendecomposition for the largest rank, from which each rank
    takes its leading singular triplets. Each spectrum equals ``koopman_spectrum(trajectories,
    delays=d, rank=r, ...)`` to rounding (eigenvalues to ~1e-12 relative on well-conditioned
    data; the same rank, precision rule, residuals, notes and warnings; a rank the Gram path
    cannot resolve is recomputed on the dense path as there). On the path the largest rank takes
    (``path="auto"``), recorded in ``settings["path"]``.

    Parameters
    ----------
    trajectories : array (n_trajectories, n_steps, n_features), array (n_steps, n_features), or
        a list of (n_steps_i, n_features) arrays, in memory (memory maps are read)
    settings : sequence of mappings
        Each ``{"delays": int, "rank": int, "svht" or None}`` (both keys; no other); one spectrum
        per entry, in order.
    tol, method, pca, pca_center, scale, modes, path, threads, next_states
        As for :func:`koopman_spectrum`, the same for every setting (there is no ``device``:
        in-memory NumPy data only).

    Returns
    -------
    list of Spectrum
        One per entry of ``settings``.

    Raises
    ------
    TypeError
        ``settings`` not a sequence of mappings, or an argument of the wrong type.
    ValueError
        A setting without ``delays`` or ``rank`` or with another key, ``delays="auto"``, or
        any error of :func:`koopman_spectrum` (too few steps for the delays, a rank larger than
        the data allow, ...).

    References
    ----------
    Drmač, Mezić & Mohr, SIAM J. Sci. Comput. 40(4), 2018, Algorithm 2 (DMD-RRR: the truncated
    SVD of the delay matrix); Sirovich, Q. Appl. Math. 45, 1987 (the snapshot Gram).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.cumsum(rng.standard_normal((3, 60, 8)), axis=1)  # 3 walks of 60 steps, 8 features
    >>> grid = [{"delays": 1, "rank": 4}, {"delays": 1, "rank": 6}, {"delays": 2, "rank": 4}]
    >>> spectra = koopman_spectra(x, grid)
    >>> alone = koopman_spectrum(x, delays=1, rank=6)
    >>> [sp.rank for sp in spectra], bool(np.allclose(spectra[1].eigenvalues, alone.eigenvalues,
    ...                                               rtol=1e-10, atol=1e-12))
    ([4, 6, 4], True)
    """
    variants = _check_settings(settings)
    opts = fit_options(tol=tol, method=method, pca=pca, pca_center=pca_center, scale=scale,
                       modes=modes, path=path, next_states=next_states,
                       ranks=tuple(r for _, r in variants))
    with blas_threads(threads):
        out = [_record(f) for f in fit_variants(trajectories, variants, opts)]
        if next_states is None:
            return out
        from .residuals import with_branch

        return [with_branch(sp, trajectories, next_states, delays=d, pca=opts.pca,
                            pca_center=pca_center) for sp, (d, _) in zip(out, variants)]


def capped_svht_rank(
    trajectories: TrajectoriesLike,
    *,
    cap: int,
    delays: int = 0,
    threads: int | str | None = "auto",
) -> int:
    """``min(koopman_spectrum(trajectories, delays=delays, rank="svht").rank, cap)`` without the
    spectrum, and without every singular value when the top ``cap`` decide it.

    The rank a capped SVHT rule keeps (``conjugacy analyze``'s default: the pilots' SVHT rank,
    at most 70), from the Gram of the delay matrix's smaller side (the delay Gram from the
    snapshot Gram, or the feature-side covariance of tall data) by
    :func:`conjugacy.dmd.capped_svht`: the top ``cap`` eigenpairs (Lanczos), and every eigenvalue
    only when a bound on SVHT's median does not settle it. The same precision rule as the
    spectrum (the data's dtype: float32 data are not read as float64; at least 1 for data that
    are not zero).

    Parameters
    ----------
    trajectories : array (n_trajectories, n_steps, n_features), array (n_steps, n_features), or
        a list of (n_steps_i, n_features) arrays, in memory
    cap : int >= 1
    delays : int >= 0
    threads : int, "auto" or None
        As for :func:`koopman_spectrum`.

    Returns
    -------
    int
        0 for all-zero data.

    Raises
    ------
    ValueError, TypeError
        Non-finite data, too few steps for the delays, ``cap`` or ``delays`` out of range.

    References
    ----------
    Gavish & Donoho, IEEE Trans. Inf. Theory 60(8), 2014 (SVHT).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.cumsum(np.random.default_rng(0).standard_normal((4, 100, 300)), axis=1)
    >>> capped_svht_rank(x, cap=10, delays=1)
    10
    >>> min(koopman_spectrum(x, delays=1, rank="svht").rank, 10)
    10
    """
    from .dmd import capped_svht, default_tol
    from .observables import check_delays, delay_gram_blocks, n_pairs, snapshot_gram
    from .spectrum_paths import delay_xx
    from .trajectories import as_trajectory_list

    cap = check_int(cap, "cap", minimum=1)
    eps = input_eps(trajectories)
    trajs = as_trajectory_list(trajectories)
    delays = check_delays(trajs, delays)
    n_obs, m = trajs[0].shape[1] * (delays + 1), n_pairs(trajs, delays)
    with blas_threads(threads):
        if n_obs >= m:
            gram, offsets = snapshot_gram(trajs)
            g = delay_gram_blocks(gram, offsets, delays)[0]
            del gram
        else:
            g = delay_xx(trajs, delays)
        k, evals, _ = capped_svht(g, (n_obs, m), cap)
    if k == 0:
        return 0
    s = np.sqrt(np.maximum(evals, 0.0))
    fro = float(np.sqrt(max(float(np.real(np.trace(g))), 0.0)))
    numerical = min(int(np.count_nonzero(s > default_tol((n_obs, m), eps, fro / s[0]) * s[0])),
                    min(n_obs, m))
    return min(max(min(k, numerical), min(numerical, 1)), cap)


def _check_settings(settings: Any) -> list[tuple[int, int | str | None]]:
    """``settings`` of :func:`koopman_spectra` as ``(delays, rank)`` pairs, checked."""
    if isinstance(settings, Mapping) or not isinstance(settings, Sequence) or not all(
            isinstance(v, Mapping) for v in settings):
        raise TypeError("settings must be a list of {'delays': int, 'rank': int, 'svht' or "
                        f"None}} mappings, got {type(settings).__name__}")
    out = []
    for i, v in enumerate(settings):
        if set(v) != {"delays", "rank"}:
            raise ValueError(f"settings[{i}] must have exactly the keys 'delays' and 'rank', got "
                             f"{sorted(map(str, v))}: the other arguments are shared keywords")
        out.append((check_int(v["delays"], f"settings[{i}]['delays']", minimum=0),
                    check_rank(v["rank"])))
    return out


def _check_tol(tol: Any) -> float | None:
    if tol is None:
        return None
    tol = check_positive_float(tol, "tol")
    if tol >= 1:
        raise ValueError(f"tol must be below 1 (a relative singular value tolerance, s_i > tol "
                         f"* s_1), got {tol}: nothing would be kept")
    return tol


def fit_options(*, tol: Any, method: Any, pca: Any, pca_center: Any, scale: Any, modes: Any,
                path: Any, device: Any = None, next_states: Any = None,
                ranks: tuple = ()) -> FitOptions:
    """The options of one call of :func:`koopman_spectrum`, :func:`koopman_spectra` or
    :func:`spectrum_from_gram` (their keywords of the same names), checked once.

    ``ranks`` are the call's (checked) rank arguments, for the rule that ``path="subspace"``
    needs a rank; ``next_states`` is only checked against ``scale``.

    Returns
    -------
    FitOptions
        What every route of :mod:`conjugacy.spectrum_paths` takes (``pca`` as an int or None).

    Raises
    ------
    TypeError, ValueError
        Naming the argument (an unknown method or path, ``tol`` outside (0, 1), ``pca < 1``, a
        flag that is not a bool, a device that is not a name, ``path="subspace"`` with a rank
        of None, ``next_states`` with ``scale=True``).

    Examples
    --------
    >>> import numpy as np
    >>> opts = fit_options(tol=None, method="rrr", pca=np.int64(3), pca_center=True, scale=False,
    ...                    modes=False, path="auto")
    >>> type(opts.pca).__name__, opts.path
    ('int', 'auto')
    """
    method = check_choice(method, "method", METHODS)
    path = check_choice(path, "path", PATHS)
    tol = _check_tol(tol)
    if pca is not None:
        pca = check_int(pca, "pca", minimum=1)
    _check_flags(scale=scale, pca_center=pca_center, modes=modes)
    if next_states is not None and scale:
        raise ValueError("next_states with scale=True is not supported: drop scale=True (the "
                         "two-branch residuals use the unscaled fit's dictionary)")
    if device is not None and not isinstance(device, str):
        raise TypeError(f"device must be a torch device name such as 'cuda', got {device!r}")
    if path == "subspace" and None in ranks:
        raise ValueError(
            "path='subspace' computes the top `rank` singular triplets: give every rank as an "
            "int or 'svht', or use path='dense' (or 'auto') for the tolerance rule")
    return FitOptions(tol, method, pca, pca_center, scale, modes, path, device)


def _check_flags(modes: Any, **flags: Any) -> None:
    for flag, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{flag} must be True or False, got {value!r}")
    if not (isinstance(modes, (bool, np.bool_)) or modes == "auto"):
        raise TypeError(f"modes must be True, False or 'auto', got {modes!r}")


def _record(fitted: Fit) -> Spectrum:
    """The :class:`Spectrum` of a fit, its rank warnings raised at the front door's caller."""
    for msg in fitted.rank_warnings:
        warnings.warn(msg, RankWarning, stacklevel=3)
    result = fitted.result
    if result.modes is not None:
        result.modes.setflags(write=False)  # hand over without a copy (see _frozen)
    same = ("eigenvalues", "residuals", "plain_residuals", "modes", "singular_values", "rank",
            "rayleigh_quotients", "data_residuals")  # fields of the DMD result of the same name
    return Spectrum(**{name: getattr(result, name) for name in same}, method=fitted.method,
                    residuals_informative=fitted.residuals_informative, settings=fitted.settings)
