"""The Koopman spectrum: a frozen result record and its front door :func:`koopman_spectrum`."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg

from ._checks import check_choice, check_int, check_positive_float
from ._spectrum_io import load_spectrum, save_spectrum
from .dmd import (
    METHODS,
    DMDResult,
    column_weights,
    dmd,
    dmd_from_factors,
    dmd_from_gram,
    select_rank,
)
from .observables import (
    DelayOperator,
    check_delays,
    delay_embed,
    delay_grams,
    fit_pca_validated,
    n_pairs,
    snapshot_gram,
)
from .streaming import (
    ArraySource,
    StreamedDelayOperator,
    as_source,
    source_nbytes,
    streamed_gram,
)
from .threads import blas_threads
from .trajectories import (
    TrajectoriesLike,
    as_trajectory_list,
    check_trajectories_finite,
    trajectory_labels,
)

FORMAT_NAME = "conjugacy.Spectrum"
FORMAT_VERSION = 1

#: The rule :meth:`Spectrum.filtered` applies when called without arguments: keep eigenpairs whose
#: ResDMD data residual is at most ``max(max_residual, relative * smallest residual)``.
DEFAULT_FILTER = {"rule": "default", "max_residual": 0.1, "relative": 2.0}


def _check_dt(dt: Any) -> float:
    return check_positive_float(dt, "dt")


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
    """Mask of at most ``n`` eigenvalues of smallest residual, conjugate pairs never split."""
    partner = _pair_partner(eigenvalues)
    keep = np.zeros(eigenvalues.size, bool)
    count = 0
    for i in np.argsort(group_res, kind="stable"):
        if keep[i]:
            continue
        size = 1 if partner[i] == i else 2
        if count + size > n:
            continue
        keep[i] = keep[partner[i]] = True
        count += size
    return keep


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
        after :meth:`filtered`, ``settings["filter"]`` records the rule and what was dropped.
    data_residuals : ndarray, float (rank,) or None
        ResDMD residual of each eigenpair on the data (Colbrook & Townsend 2024):
        ``||phi(Y) - lambda phi(X)|| / ||phi(X)||`` for the eigenfunction ``phi`` of the
        eigenvalue, over all snapshot pairs (dimensionless). Small means the eigenvalue is
        supported by the data; informative also when the rank equals the number of observables
        (not when it equals the number of pairs: then every eigenpair interpolates the data).
        :meth:`filtered` ranks eigenpairs by it.
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "eigenvalues", _frozen(np.asarray(self.eigenvalues, complex)))
        object.__setattr__(self, "residuals", _frozen(np.asarray(self.residuals, float)))
        object.__setattr__(self, "plain_residuals", _frozen(np.asarray(self.plain_residuals, float)))
        object.__setattr__(self, "modes", _frozen(self.modes))
        object.__setattr__(self, "singular_values", _frozen(np.asarray(self.singular_values, float)))
        object.__setattr__(self, "rayleigh_quotients", _frozen(self.rayleigh_quotients))
        object.__setattr__(self, "settings", dict(self.settings))
        if self.data_residuals is not None:
            object.__setattr__(
                self, "data_residuals", _frozen(np.asarray(self.data_residuals, float))
            )
        n = self.eigenvalues.shape[0]
        if self.residuals.shape != (n,) or self.plain_residuals.shape != (n,):
            raise ValueError("residuals must have one entry per eigenvalue")
        if self.data_residuals is not None and self.data_residuals.shape != (n,):
            raise ValueError("data_residuals must have one entry per eigenvalue")

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
            Keep the ``n`` eigenpairs of smallest data residual (at most ``n``: a conjugate pair is
            kept or dropped as a whole, so one fewer may be kept rather than split a pair).
            With both arguments, both conditions apply.

        With neither argument the default rule :data:`DEFAULT_FILTER` applies: keep the
        eigenpairs whose residual is at most ``max(0.1, 2 * r_min)`` (``r_min`` the smallest
        residual), i.e. a fixed threshold of 0.1 that is relaxed for noisy data where even the best
        eigenpair has a larger residual (SGD noise), so that the best-supported eigenpairs are always
        kept. Chosen from measurement (``benchmarks/bench_separation.py``, docs/comparing.md).

        Conjugate pairs are kept or dropped together (the pair's residual is the larger of the two).
        The result records the rule, the residuals and the eigenvalues dropped in
        ``settings["filter"]``; its eigenvalues keep their order. Filtering an already filtered
        spectrum applies the new rule to what is left and records both.

        Raises
        ------
        ValueError
            If the spectrum has no data residuals (made by an older version: recompute it), or an
            argument is out of range.
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
        group_res = _pair_residuals(self.eigenvalues, res)
        if max_residual is None and n is None:
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
                keep &= _smallest_groups(self.eigenvalues, group_res, n)
                if not keep.any() and max_residual is None and res.size:
                    # n = 1 and the best eigenpair is a conjugate pair: keep the pair rather than
                    # return nothing (a pair is never split)
                    keep = _smallest_groups(self.eigenvalues, group_res, 2)
                    rule["kept_pair_for_n"] = True
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
        return Spectrum(
            eigenvalues=self.eigenvalues[keep],
            residuals=self.residuals[keep],
            plain_residuals=self.plain_residuals[keep],
            modes=None if self.modes is None else self.modes[:, keep],
            singular_values=self.singular_values,
            rank=int(keep.sum()),
            method=self.method,
            residuals_informative=self.residuals_informative,
            rayleigh_quotients=None
            if self.rayleigh_quotients is None
            else self.rayleigh_quotients[keep],
            settings=settings,
            data_residuals=res[keep],
        )

    def __len__(self) -> int:
        return int(self.eigenvalues.shape[0])

    def __repr__(self) -> str:
        eig = np.array2string(self.eigenvalues, precision=4, max_line_width=90)
        return f"Spectrum(method={self.method!r}, rank={self.rank}, eigenvalues={eig})"

    # ----- derived quantities -------------------------------------------------------------
    @property
    def magnitude(self) -> np.ndarray:
        """``|lambda|`` (float, (rank,)): > 1 growing, = 1 persistent, < 1 decaying modes."""
        return np.abs(self.eigenvalues)

    def frequency(self, dt: float = 1.0) -> np.ndarray:
        """Oscillation frequency ``arg(lambda) / (2 pi dt)`` in cycles per unit time (per step
        when ``dt = 1``), in (-1/(2 dt), 1/(2 dt)]."""
        return np.angle(self.eigenvalues) / (2 * np.pi * _check_dt(dt))

    def growth_rate(self, dt: float = 1.0) -> np.ndarray:
        """Continuous-time growth rate ``log|lambda| / dt`` (per unit time); ``-inf`` for 0."""
        dt = _check_dt(dt)
        with np.errstate(divide="ignore"):
            return np.log(np.abs(self.eigenvalues)) / dt

    def continuous_time(self, dt: float = 1.0) -> np.ndarray:
        """Continuous-time eigenvalues ``log(lambda) / dt`` (complex)."""
        dt = _check_dt(dt)
        with np.errstate(divide="ignore"):
            return np.log(self.eigenvalues.astype(complex)) / dt

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
        """
        return save_spectrum(self, path, FORMAT_NAME, FORMAT_VERSION)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Spectrum:
        """Load a spectrum written by :meth:`save` (never unpickles, never reads unknown members).

        The zip structure, the JSON ``meta``, the required members and every npy header (dtype,
        shape consistent with ``rank``, declared size) are validated before any data is read; see
        :mod:`conjugacy._spectrum_io`. Array fields added in later versions may be absent.

        Raises
        ------
        SpectrumFileError
            (a ``ValueError``) naming the file, what is wrong and the fix; the subclass
            ``SpectrumFileNotFoundError`` (also a ``FileNotFoundError``) when it does not exist.
        """
        return load_spectrum(cls, path, FORMAT_NAME, FORMAT_VERSION)


# ----- the front door -----------------------------------------------------------------------------

PATHS = ("auto", "dense", "gram", "subspace")
# Relative error the Gram path may imply (~eps (s_1/s_k)^2, the squared condition number) before the
# dense path is used instead: s_k/s_1 >= ~1.5e-4.
_GRAM_TARGET = 1e-8
_EPS64 = float(np.finfo(np.float64).eps)


def koopman_spectrum(
    trajectories: TrajectoriesLike,
    *,
    delays: int = 0,
    rank: int | None = None,
    tol: float | None = None,
    method: str = "rrr",
    pca: int | None = None,
    pca_center: bool = True,
    scale: bool = False,
    modes: bool | str = "auto",
    path: str = "auto",
    device: str | None = None,
    threads: int | str | None = "auto",
) -> Spectrum:
    """Koopman eigenvalues of one or many trajectories by DMD on time-delay observables.

    Parameters
    ----------
    trajectories : array (n_trajectories, n_steps, n_features), array (n_steps, n_features), or
        a list of (n_steps_i, n_features) arrays of different lengths
        The observables recorded along each trajectory (e.g. weights at every training step).
    delays : int, default 0
        Number of time delays d: the lifted state is ``[x_t; ...; x_{t+d}]``, formed within each
        trajectory (each needs at least ``d + 2`` steps).
    rank : int or None
        Keep the top ``rank`` modes (the paper keeps 10). ``None``: all singular values above
        ``tol * s_1``. An int larger than the data allow (``min(n_observables, n_pairs)``) is an
        error; one above the numerical rank is reduced to it (``Spectrum.settings["rank_reduced"]``).
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
    modes : bool or "auto", default "auto"
        Compute DMD modes (in delay/PCA observable coordinates). ``"auto"``: when the mode matrix
        takes at most 16 MiB (``MODES_AUTO_BYTES``), never for streamed data (they cost one more
        pass); a note says when they were skipped. Eigenvalues and residuals never need them.
    path : {"auto", "dense", "gram", "subspace"}
        How to compute. ``"dense"``: explicit delay matrices (after a QR compression of the base
        snapshots when features outnumber them), thin SVD and QR -- the numerically stable
        reference. ``"gram"``: sample-side Gram matrices from one pass over the data (fast when
        features dominate; cannot resolve singular values below ~1e-8 s_1, and falls back to
        dense when a kept one is below 1e-7 s_1). ``"subspace"``: structured subspace iteration
        for the top ``rank`` singular triplets without building the delay matrix (many
        snapshots), verified by its residuals and falling back to dense if they do not converge.
        ``"auto"`` picks dense when ``rank`` is None, gram when features outnumber snapshots,
        subspace for large data with a small fixed rank, and dense otherwise.
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

    Returns
    -------
    Spectrum
        With ``data_residuals``, the ResDMD residual of every eigenpair; ``Spectrum.filtered()``
        keeps the eigenpairs the data support. An all-zero input gives an empty spectrum (rank 0),
        with a note in ``settings["notes"]`` and a :class:`RankWarning`, on every path.

    Raises
    ------
    ValueError, TypeError
        Naming the argument: non-finite or non-numeric data, wrong shapes, too few steps for the
        delays, a rank or ``pca`` larger than the data allow, ``path="subspace"`` without ``rank``.
    """
    method = check_choice(method, "method", METHODS)
    path = check_choice(path, "path", PATHS)
    if rank is not None:
        rank = check_int(rank, "rank", minimum=1)
    if tol is not None:
        tol = check_positive_float(tol, "tol")
        if tol >= 1:
            raise ValueError(
                f"tol must be below 1 (a relative singular value tolerance, s_i > tol * s_1), "
                f"got {tol}: nothing would be kept"
            )
    if pca is not None:
        pca = check_int(pca, "pca", minimum=1)
    for flag, value in (("scale", scale), ("pca_center", pca_center)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{flag} must be True or False, got {value!r}")
    if not (isinstance(modes, (bool, np.bool_)) or modes == "auto"):
        raise TypeError(f"modes must be True, False or 'auto', got {modes!r}")
    if device is not None and not isinstance(device, str):
        raise TypeError(f"device must be a torch device name such as 'cuda', got {device!r}")
    if path == "subspace" and rank is None:
        raise ValueError(
            "path='subspace' computes the top `rank` singular triplets: give rank=k, or use "
            "path='dense' (or 'auto') for the tolerance rule"
        )
    labels = eps_given = None
    with blas_threads(threads):
        source = as_source(trajectories)
        if source is not None or device is not None:
            if source is None:
                source = ArraySource(as_trajectory_list(trajectories))
            spec = _streamed_spectrum(
                source, delays=delays, rank=rank, tol=tol, method=method, pca=pca,
                pca_center=pca_center, scale=scale, modes=modes, path=path, device=device,
            )
            if spec is not None:
                return spec
            if not isinstance(source, ArraySource):
                eps_given = source_eps(source)  # the stored precision, not the float64 copy's
                trajectories = _materialize(source)  # dask or store data the path needs whole
                labels = getattr(source, "labels", None)  # e.g. a store's run names, for errors
                labels = ([f"{source.name} ({label})" for label in labels] if labels else
                          [f"{source.name}[{i}]" for i in range(len(trajectories))])
        eps = input_eps(trajectories) if eps_given is None else eps_given
        # NaN/Inf: checked before the dense and subspace routes, and read off the snapshot Gram's
        # diagonal on the Gram routes (no separate pass over the data; located only on failure)
        trajs = as_trajectory_list(trajectories, finite=False)
        if labels is None:
            labels = trajectory_labels(trajectories, len(trajs))
        require_finite = _finiteness_check(trajs, labels)
        delays = check_delays(trajs, delays)
        notes: list[str] = []
        if pca is not None:
            n_feat, n_snap = trajs[0].shape[1], sum(t.shape[0] for t in trajs)
            if n_feat > 2 * n_snap:
                # the coordinates from the snapshot Gram alone: no pass to form the components
                # and none to project on them (equal to fit_pca + transform up to signs)
                _check_pca(pca, n_snap, n_feat, pca_center)
                gram, offsets = snapshot_gram(trajs)
                require_finite(gram)
                trajs = pca_projections_from_gram(gram, offsets, pca, pca_center, notes)
                del gram
            else:
                require_finite()
                trajs = fit_pca_validated(trajs, pca, center=pca_center).transform(trajs)
            require_finite = None  # the projections of finite data
        return _spectrum_of(
            trajs, delays=delays, rank=rank, tol=tol, method=method, pca=pca,
            pca_center=pca_center, scale=scale, modes=modes, path=path, eps=eps, notes=notes,
            require_finite=require_finite,
        )


def _scale_error(kind: str) -> ValueError:
    if kind == "over":
        return ValueError(
            "trajectories: the squared norm of a snapshot overflows float64 (values near 1e154 "
            "or larger); rescale the data (DMD eigenvalues do not depend on scale)"
        )
    return ValueError(
        "trajectories: the data are not zero but the squared norms of their snapshots underflow "
        "float64 (values near 1e-154 or smaller); rescale the data (DMD eigenvalues do not depend "
        "on scale)"
    )


def _finiteness_check(trajs: list[np.ndarray], labels: list[str]) -> Any:
    """``check(gram=None)``: raise the ValueError naming the first NaN/Inf of ``trajs``, or
    saying that the data's squares overflow or underflow float64 (every route squares them
    somewhere: residuals, Gram matrices). Given the snapshot Gram, NaN/Inf and overflow are read
    off its diagonal (squared norms) and the data are scanned only when that is not finite;
    without it, one pass over the data."""

    def check(gram: np.ndarray | None = None) -> None:
        if gram is not None:
            diag = np.diagonal(gram)
            if not np.isfinite(diag).all():
                check_trajectories_finite(trajs, labels)
                raise _scale_error("over")
            if not np.any(diag) and any(np.any(t) for t in trajs):
                raise _scale_error("under")
            return
        check_trajectories_finite(trajs, labels)
        with np.errstate(over="ignore", under="ignore"):
            for t in trajs:
                flat = t.reshape(-1)
                sq = float(np.real(np.vdot(flat, flat)))
                if not np.isfinite(sq):
                    raise _scale_error("over")
                if sq == 0.0 and np.any(flat):
                    raise _scale_error("under")

    return check


def _check_rank(rank: int | None, n_obs: int, m: int) -> None:
    if rank is not None and rank > min(n_obs, m):
        raise ValueError(
            f"rank={rank} exceeds what the data allow: min(n_observables={n_obs}, "
            f"n_pairs={m}) = {min(n_obs, m)} (n_observables = n_features x (delays + 1))"
        )


#: ``modes="auto"`` computes modes when the mode matrix takes at most this many bytes
MODES_AUTO_BYTES = 16 * 2**20


def _want_modes(modes: Any, n_obs: int, rank: int | None, m: int, notes: list[str]) -> bool:
    if modes != "auto":
        return bool(modes)
    k = min(rank if rank is not None else min(n_obs, m), n_obs, m)
    size = 16 * n_obs * k
    if size <= MODES_AUTO_BYTES:
        return True
    notes.append(
        f"modes not computed: {n_obs} x {k} complex values ({size / 2**20:.0f} MiB); "
        "pass modes=True to compute them"
    )
    return False


def _spectrum_of(
    trajs, *, delays, rank, tol, method, pca, pca_center, scale, modes, path, eps, notes,
    require_finite=None,
) -> Spectrum:
    """koopman_spectrum on validated, in-memory trajectories (after the PCA, if any).
    ``require_finite``: the NaN/Inf check still to do (see :func:`_finiteness_check`), or None."""
    n = trajs[0].shape[1]
    n_obs = n * (delays + 1)
    m = n_pairs(trajs, delays)
    n_snap = sum(t.shape[0] for t in trajs)
    _check_rank(rank, n_obs, m)
    modes = _want_modes(modes, n_obs, rank, m, notes)
    real = not np.iscomplexobj(trajs[0])
    chosen = path
    if path == "auto":
        chosen = _auto_path(n, n_obs, m, n_snap, rank)

    result = None
    gram = None
    if chosen == "gram":
        gram, offsets = snapshot_gram(trajs)
        if require_finite is not None:
            require_finite(gram)
        zero = not np.any(np.diagonal(gram))
    else:
        if require_finite is not None:
            require_finite()
        zero = not any(np.any(t) for t in trajs)
    if zero:
        # all-zero data (e.g. a frozen layer): no direction to fit, the same answer on every path
        result = dmd(np.zeros((n_obs, 0)), np.zeros((n_obs, 0)), modes=modes)
        result = replace(result, data_residuals=np.zeros(0))
    elif chosen == "gram":
        op = DelayOperator(trajs, delays)
        # No local names for the Grams: dmd_from_gram scales them in place and frees them
        # before the modes are formed (the snapshot Gram is freed inside delay_grams' call).
        held, gram = [gram], None
        result, resolution = dmd_from_gram(
            *delay_grams(held.pop(), offsets, delays), method=method, rank=rank, tol=tol,
            scale=scale, shape=(n_obs, m), x_times=op.x_times if modes else None,
            y_times=op.y_times if modes else None, real=real, overwrite=True, eps=eps,
        )
        if not gram_trusted(result, resolution, notes):
            result, chosen = None, "dense"
    elif chosen == "subspace":
        result = _subspace_path(trajs, delays, rank, tol, scale, method, modes, real, eps=eps)
        if result is None:
            notes.append(
                "subspace iteration did not converge (no clear gap after the kept singular "
                "values); recomputed on the dense path"
            )
            chosen = "dense"
    if result is None:
        result = _dense_path(trajs, delays, rank, tol, scale, method, modes, n_snap, eps)
    return finish_spectrum(
        result, method=method, delays=delays, rank=rank, tol=tol, pca=pca, pca_center=pca_center,
        scale=scale, eps=eps, path=chosen, n_trajectories=len(trajs), n_features=n, n_pairs=m,
        notes=notes,
    )


def gram_trusted(result: DMDResult, resolution: float, notes: list[str]) -> bool:
    """Whether a Gram-path result meets the accuracy target; adds the reason to ``notes`` if not.

    The Gram squares the condition number: the kept subspace, and with it the eigenvalues, carry a
    relative error of about ``eps (s_1/s_k)^2``. Trusted while that stays below ``_GRAM_TARGET``.
    """
    implied = np.finfo(float).eps / max(resolution, 1e-300) ** 2
    if result.rank > 0 and implied > _GRAM_TARGET:
        notes.append(
            f"gram path: s_k/s_1 = {resolution:.1e} implies an error of ~{implied:.0e} "
            f"(> {_GRAM_TARGET:.0e}); recomputed on the dense path"
        )
        return False
    return True


def finish_spectrum(
    result: DMDResult,
    *,
    method: str,
    delays: int,
    rank: int | None,
    tol: float | None,
    pca: int | None,
    pca_center: bool,
    scale: bool,
    eps: float,
    path: str,
    n_trajectories: int,
    n_features: int,
    n_pairs: int,
    notes: list[str],
    stacklevel: int = 4,
) -> Spectrum:
    """The :class:`Spectrum` record of a DMD result: notes, warnings and settings, in one place
    for every route to a spectrum (``koopman_spectrum``, streamed data, windows)."""
    n_obs = n_features * (delays + 1)
    rank_reduced = rank is not None and result.rank < rank
    if result.rank == 0:
        msg = "the data are zero (no direction above the rank tolerance): empty spectrum, rank 0"
        notes.append(msg)
        warnings.warn(msg, RankWarning, stacklevel=stacklevel)
    elif rank_reduced:
        msg = (
            f"rank={rank} requested but the data have numerical rank {result.rank} "
            f"(singular values above tol * s_1); kept {result.rank} modes"
        )
        notes.append(msg)
        warnings.warn(msg, RankWarning, stacklevel=stacklevel)
    informative = result.rank < n_obs
    if not informative and result.rank > 0:
        notes.append(
            "rank equals the number of observables: the residuals ||A z - lambda z|| are ~0 "
            "whatever the eigenvalues; the data residuals (data_residuals) still inform"
        )
    if result.rank > 0 and result.rank >= n_pairs:
        notes.append(
            "rank equals the number of snapshot pairs: the fit interpolates the data and the data "
            "residuals are ~0 for every eigenpair (use more trajectories or steps, or a lower rank)"
        )
    settings = {
        "delays": delays,
        "rank_requested": rank,
        "rank_reduced": bool(rank_reduced),
        "tol": tol,
        "pca": pca,
        "pca_center": bool(pca_center) if pca is not None else None,
        "scale": bool(scale),
        "input_eps": eps,
        "path": path,
        "n_trajectories": n_trajectories,
        "n_features": n_features,
        "n_observables": n_obs,
        "n_pairs": n_pairs,
        "notes": notes,
        "version": _version(),
    }
    if result.modes is not None:
        result.modes.setflags(write=False)  # hand over without a copy (see _frozen)
    return Spectrum(
        eigenvalues=result.eigenvalues,
        residuals=result.residuals,
        plain_residuals=result.plain_residuals,
        modes=result.modes,
        singular_values=result.singular_values,
        rank=result.rank,
        method=method,
        residuals_informative=bool(informative),
        rayleigh_quotients=result.rayleigh_quotients,
        settings=settings,
        data_residuals=result.data_residuals,
    )


def _streamed_spectrum(
    source, *, delays, rank, tol, method, pca, pca_center, scale, modes, path, device
) -> Spectrum | None:
    """The spectrum of data streamed from ``source`` in one pass (see :mod:`conjugacy.streaming`),
    or None when the requested computation needs the data in memory (the dense or subspace path:
    ``rank=None`` without ``pca``, or features fewer than snapshots)."""
    delays = check_int(delays, "delays", minimum=0)
    for i, length in enumerate(source.lengths):
        if length < delays + 2:
            labels = getattr(source, "labels", None)
            label = (f"{source.name} ({labels[i]})" if labels else
                     source.name if len(source.lengths) == 1 else f"{source.name}[{i}]")
            raise ValueError(
                f"{label} has {length} steps, too few for delays={delays}: a trajectory needs at "
                f"least delays + 2 = {delays + 2} steps to give one snapshot pair"
            )
    n, n_snap = source.n_features, sum(source.lengths)
    eps = source_eps(source)
    notes: list[str] = []
    if pca is not None:
        _check_pca(pca, n_snap, n, pca_center)
        if path not in ("auto", "gram") and n <= 2 * n_snap:
            return None
        gram, offsets = streamed_gram(source, device=device)
        notes.append("pca: coordinates from the snapshot Gram, streamed in one pass over the data")
        projected = pca_projections_from_gram(gram, offsets, pca, pca_center, notes)
        del gram
        return _spectrum_of(
            projected, delays=delays, rank=rank, tol=tol, method=method, pca=pca,
            pca_center=pca_center, scale=scale, modes=modes, path=path, eps=eps, notes=notes,
        )
    n_obs = n * (delays + 1)
    m = n_snap - len(source.lengths) * (delays + 1)
    if rank is None or path in ("dense", "subspace") or (path == "auto" and n < n_snap):
        return None
    _check_rank(rank, n_obs, m)
    want = _want_modes(modes if modes != "auto" else False, n_obs, rank, m, notes)
    if modes == "auto":
        notes.append("modes not computed for streamed data (one more pass): pass modes=True")
    gram, offsets = streamed_gram(source, device=device)
    if not np.any(gram) and any(np.any(z) for _, z in source.blocks()):
        raise _scale_error("under")  # a second pass, only when the Gram is zero
    if not np.any(gram):
        result = dmd(np.zeros((n_obs, 0)), np.zeros((n_obs, 0)), modes=want)
        result = replace(result, data_residuals=np.zeros(0))
    else:
        op = StreamedDelayOperator(source, delays) if want else None
        result, resolution = dmd_from_gram(
            *delay_grams(gram, offsets, delays), method=method, rank=rank, tol=tol, scale=scale,
            shape=(n_obs, m), x_times=op.x_times if op else None,
            y_times=op.y_times if op else None, real=not source.complex, overwrite=True, eps=eps,
        )
        if not gram_trusted(result, resolution, notes):
            if source_nbytes(source) > MATERIALIZE_BYTES:
                notes[-1] = notes[-1].replace(
                    "recomputed on the dense path",
                    f"kept: the data ({source_nbytes(source) / 2**30:.1f} GiB) exceed the "
                    f"{MATERIALIZE_BYTES / 2**30:.0f} GiB the dense path may load",
                )
            else:
                return None
    return finish_spectrum(
        result, method=method, delays=delays, rank=rank, tol=tol, pca=None, pca_center=pca_center,
        scale=scale, eps=eps, path="gram (streamed)", n_trajectories=len(source.lengths),
        n_features=n, n_pairs=m, notes=notes, stacklevel=5,
    )


#: streamed data up to this size may be loaded for the dense path when the Gram path cannot
#: resolve them; larger data keep the Gram result with a note
MATERIALIZE_BYTES = 4 * 2**30


def _materialize(source) -> list[np.ndarray]:
    if hasattr(source, "materialize"):
        return source.materialize()
    offsets = np.cumsum([0] + list(source.lengths))
    out = np.empty((int(offsets[-1]), source.n_features),
                   dtype=np.complex128 if source.complex else np.float64)
    for features, z in source.blocks():
        out[:, features] = z
    return [out[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def _check_pca(pca: int, n_snap: int, n: int, center: bool) -> None:
    limit = min(n_snap - 1 if center else n_snap, n)
    if pca > limit:
        what = "n_snapshots - 1" if center else "n_snapshots"
        raise ValueError(
            f"pca={pca} exceeds what the data allow: min({what}="
            f"{n_snap - 1 if center else n_snap}, n_features={n}) = {limit}"
        )


def pca_projections_from_gram(
    gram: np.ndarray, offsets: np.ndarray, r: int, center: bool, notes: list[str]
) -> list[np.ndarray]:
    """The snapshots' coordinates in the top-``r`` PCA basis, from their Gram matrix alone.

    With ``Z Z^* = U S^2 U^*`` (double-centred when ``center``) the components are
    ``Z_c^* u_i / s_i`` and the raw snapshots' coordinates ``Z Z_c^* u_i / s_i = (Z Z^*) u_i / s_i``
    (the centring term vanishes because ``u_i`` is orthogonal to the ones vector): no pass over the
    data beyond the Gram. Equal to :func:`conjugacy.fit_pca` + ``transform`` up to the sign of
    each coordinate (which does not change eigenvalues).
    """
    zz = gram.conj()
    g = zz
    if center:
        g = zz - zz.mean(axis=0, keepdims=True)
        g = g - g.mean(axis=1, keepdims=True)
        g = (g + g.conj().T) / 2
    n = g.shape[0]
    if 4 * r < n:  # only the leading r eigenpairs are needed
        evals, evecs = scipy.linalg.eigh(g, subset_by_index=[n - r, n - 1])
    else:
        evals, evecs = np.linalg.eigh(g)
    evals, evecs = evals[::-1][:r], evecs[:, ::-1][:, :r]
    if evals[0] <= 0:  # no variance (zero or constant snapshots): zero coordinates, as fit_pca
        return [np.zeros((b - a, r)) for a, b in zip(offsets[:-1], offsets[1:])]
    if evals[-1] < 1e-16 * evals[0]:
        notes.append(
            f"pca={r}: the last kept component has s_r/s_1 = "
            f"{np.sqrt(max(evals[-1], 0) / evals[0]):.1e}, below what the streamed Gram resolves "
            "(1e-8): its coordinates are noise"
        )
    svals = np.sqrt(np.maximum(evals, np.finfo(float).tiny))
    proj = (zz @ evecs) / svals
    return [proj[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def input_eps(trajectories: Any) -> float:
    """Machine epsilon of the least precise array in ``trajectories`` (NumPy or torch dtypes).

    Integer and boolean data are exact: float64's epsilon. Used by the rank rule, so data recorded
    in float32 (PyTorch's default) are not read as if they had float64's resolution.
    """
    items = [trajectories] if not isinstance(trajectories, (list, tuple)) else list(trajectories)
    eps = _EPS64
    for item in items:
        dtype = getattr(item, "dtype", None)
        if dtype is None:
            continue
        name = str(dtype).replace("torch.", "")
        try:
            np_dtype = np.dtype(name)
        except TypeError:
            np_dtype = {"bfloat16": None}.get(name, np.dtype(np.float64))
            if np_dtype is None:  # bfloat16: 8 significant bits
                eps = max(eps, 2.0**-7)
                continue
        if np.issubdtype(np_dtype, np.inexact):
            eps = max(eps, float(np.finfo(np_dtype).eps))
    return eps


def source_eps(source: Any) -> float:
    """:func:`input_eps` of a streaming source: its least precise stored array (a list of memory
    maps mixing float32 and float64, or a store selection of float32 parameters, is float32
    data, although its blocks arrive as float64)."""
    items = getattr(source, "_items", None)
    if items is not None:
        return input_eps(list(items))
    layout = getattr(source, "_layout", None)
    if layout is not None:
        return input_eps([np.empty(0, dtype=np.dtype(dt)) for _, (_, dt) in layout])
    return input_eps(np.empty(0, dtype=source.dtype))


class RankWarning(UserWarning):
    """The requested rank exceeds the numerical rank of the data."""


def _version() -> str:
    from . import __version__

    return __version__


def _auto_path(n: int, n_obs: int, m: int, n_snap: int, rank: int | None) -> str:
    if rank is None:
        return "dense"  # the tolerance rule needs every singular value, resolved
    if n >= n_snap:
        return "gram"  # features dominate: one pass over the data, m x m algebra
    if n_obs * m >= 1_000_000 and 3 * (rank + _oversampling(rank)) < min(n_obs, m):
        return "subspace"
    return "dense"


def _dense_path(trajs, delays, rank, tol, scale, method, modes, n_snap, eps=_EPS64) -> DMDResult:
    n = trajs[0].shape[1]
    basis = None
    if n > n_snap:
        # Compress first: x_t = Q r_t with Q (n, N) orthonormal, so the delay vectors are
        # blockdiag(Q) h^R_t and DMD on the N-dimensional coordinates has the same eigenvalues,
        # residuals and (lifted) modes at a fraction of the cost.
        basis, r = np.linalg.qr(np.concatenate(trajs, axis=0).T)
        offsets = np.cumsum([0] + [t.shape[0] for t in trajs])
        trajs = [r[:, a:b].T for a, b in zip(offsets[:-1], offsets[1:])]
    X, Y = delay_embed(trajs, delays)
    result = dmd(X, Y, method=method, rank=rank, tol=tol, scale=scale, modes=modes, eps=eps)
    if basis is not None and result.modes is not None:
        k, q = result.modes.shape[1], basis.shape[1]
        lifted = np.concatenate(
            [basis @ result.modes[j * q : (j + 1) * q] for j in range(delays + 1)], axis=0
        )
        result = replace(result, modes=lifted.reshape(-1, k))
    return result


def _oversampling(rank: int) -> int:
    return max(10, rank)


def _subspace_path(
    trajs, delays, rank, tol, scale, method, modes, real, max_iter: int = 80, eps=_EPS64
):
    """Top-``rank`` SVD of the scaled delay matrix by subspace iteration on structured products.

    Deterministic (fixed start seed). Converged when every kept singular triplet satisfies
    ``||X_s^* u_i - s_i v_i|| <= 1e-11 s_1`` (``X_s v_i = s_i u_i`` holds by construction), i.e. the
    subspace is accurate to ~1e-11 / relative gap. Returns None if that is not reached, or as soon
    as the residual stalls (less than a 2x decrease over 4 iterations: no gap after the kept
    singular values, e.g. noise), so a hopeless iteration costs a few products, not 80.
    """
    op = DelayOperator(trajs, delays)
    n_obs, m = op.shape
    keep, w = column_weights(op.x_column_norms(), scale)
    weights = np.zeros(m)
    weights[keep] = w
    if keep.size == 0:
        return None

    def xs(V):
        return op.x_times(weights[:, None] * V)

    def xsh(U):
        out = op.xh_times(U)
        out *= weights[:, None]
        return out

    width = min(rank + _oversampling(rank), min(n_obs, m))
    fro = float(np.linalg.norm(op.x_column_norms() * weights))  # ||X_s||_F for the rank rule
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(xs(rng.standard_normal((m, width))))
    prev = None
    history: list[float] = []
    for _ in range(max_iter):
        W = xsh(Q)  # X_s^* Q  (m, width)
        if prev is not None:
            Uq, s, Q2, Vbh = prev
            k = select_rank(s, rank, tol, (n_obs, m), eps, fro=fro)
            if k == 0:
                return None
            # X_s^* u_i = W @ Uq[:, i] must equal s_i v_i, with v_i = Q2 @ Vbh[i]^*.
            Vk = Q2 @ Vbh[:k].conj().T
            resid = np.linalg.norm(W @ Uq[:, :k] - Vk * s[:k], axis=0)
            if resid.max() <= 1e-11 * s[0]:
                Uk, sk = Q @ Uq[:, :k], s[:k]
                del W, Q2, prev
                Bk = op.y_times(weights[:, None] * Vk) / sk
                px = sk[:, None] * Vk.conj().T  # U_k^* X_s = S_k V_k^*
                py = (op.yh_times(Uk) * weights[:, None]).conj().T  # U_k^* Y_s
                return dmd_from_factors(
                    Uk, sk, Bk, s, method=method, modes=modes, real=real, px=px, py=py
                )
            history.append(float(resid.max() / s[0]))
            if len(history) > 4 and history[-1] > 0.5 * history[-5]:
                return None  # stalled: no gap to converge on
            del Vk, prev
        Q2, _ = np.linalg.qr(W)
        del W
        Q, Rr = np.linalg.qr(xs(Q2))  # X_s Q2 = Q Rr
        Ub, s, Vbh = np.linalg.svd(Rr)
        prev = (Ub, s, Q2, Vbh)
    return None
