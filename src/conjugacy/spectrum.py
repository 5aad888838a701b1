"""The Koopman spectrum: a frozen result record and its front door :func:`koopman_spectrum`."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_open
from ._checks import check_choice, check_int, check_positive_float
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
from .trajectories import TrajectoriesLike, as_trajectory_list

FORMAT_NAME = "conjugacy.Spectrum"
FORMAT_VERSION = 1


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
        The settings used (delays, rank requested, tol, pca, scale, path, data sizes, version).
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "eigenvalues", _frozen(np.asarray(self.eigenvalues, complex)))
        object.__setattr__(self, "residuals", _frozen(np.asarray(self.residuals, float)))
        object.__setattr__(self, "plain_residuals", _frozen(np.asarray(self.plain_residuals, float)))
        object.__setattr__(self, "modes", _frozen(self.modes))
        object.__setattr__(self, "singular_values", _frozen(np.asarray(self.singular_values, float)))
        object.__setattr__(self, "rayleigh_quotients", _frozen(self.rayleigh_quotients))
        object.__setattr__(self, "settings", dict(self.settings))
        n = self.eigenvalues.shape[0]
        if self.residuals.shape != (n,) or self.plain_residuals.shape != (n,):
            raise ValueError("residuals must have one entry per eigenvalue")

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
        return np.angle(self.eigenvalues) / (2 * np.pi * dt)

    def growth_rate(self, dt: float = 1.0) -> np.ndarray:
        """Continuous-time growth rate ``log|lambda| / dt`` (per unit time); ``-inf`` for 0."""
        with np.errstate(divide="ignore"):
            return np.log(np.abs(self.eigenvalues)) / dt

    def continuous_time(self, dt: float = 1.0) -> np.ndarray:
        """Continuous-time eigenvalues ``log(lambda) / dt`` (complex)."""
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
        is appended if missing).
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        meta = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "rank": int(self.rank),
            "method": self.method,
            "residuals_informative": bool(self.residuals_informative),
            "settings": self.settings,
        }
        arrays: dict[str, np.ndarray] = {
            "eigenvalues": self.eigenvalues,
            "residuals": self.residuals,
            "plain_residuals": self.plain_residuals,
            "singular_values": self.singular_values,
            "meta": np.array(json.dumps(meta)),
        }
        if self.modes is not None:
            arrays["modes"] = self.modes
        if self.rayleigh_quotients is not None:
            arrays["rayleigh_quotients"] = self.rayleigh_quotients
        with atomic_open(path, "wb") as fh:
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Spectrum:
        """Load a spectrum written by :meth:`save` (never unpickles)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"path {str(path)!r}: no such spectrum file")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (ValueError, OSError) as exc:
            raise ValueError(f"path {str(path)!r} is not a saved Spectrum (.npz): {exc}") from None
        try:
            meta = json.loads(str(arrays.pop("meta")))
        except KeyError:
            raise ValueError(f"path {str(path)!r} is an .npz file but not a saved Spectrum") from None
        if meta.get("format") != FORMAT_NAME:
            raise ValueError(f"path {str(path)!r} is not a saved Spectrum")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"path {str(path)!r} was written in Spectrum format version "
                f"{meta.get('format_version')}; this conjugacy reads version {FORMAT_VERSION}"
            )
        return cls(
            eigenvalues=arrays["eigenvalues"],
            residuals=arrays["residuals"],
            plain_residuals=arrays["plain_residuals"],
            modes=arrays.get("modes"),
            singular_values=arrays["singular_values"],
            rank=meta["rank"],
            method=meta["method"],
            residuals_informative=meta["residuals_informative"],
            rayleigh_quotients=arrays.get("rayleigh_quotients"),
            settings=meta["settings"],
        )


# ----- the front door -----------------------------------------------------------------------------

PATHS = ("auto", "dense", "gram", "subspace")
_GRAM_RESOLUTION = 1e-7  # below this s_k / s_1 the Gram path cannot be trusted (squared condition)


def koopman_spectrum(
    trajectories: TrajectoriesLike,
    *,
    delays: int = 0,
    rank: int | None = None,
    tol: float | None = None,
    method: str = "rrr",
    pca: int | None = None,
    scale: bool = True,
    modes: bool = True,
    path: str = "auto",
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
        Relative singular value tolerance of the rank rule; default ``max(n, m) * eps``.
    method : {"rrr", "exact", "standard"}
        DMD-RRR (Drmac, Mezic & Mohr 2018; refined residuals and vectors), exact DMD (Tu et al.
        2014) or standard projected DMD. All give the same eigenvalues at the same rank.
    pca : int or None
        Project all snapshots on the top ``pca`` principal components first (one uncentred basis
        fitted on the pooled snapshots; see :func:`conjugacy.fit_pca`).
    scale : bool, default True
        Scale each snapshot pair by ``1 / ||x_j||`` before the SVD (step 1 of DMD-RRR). The operator
        is unchanged; only the rank decision changes. ``scale=False`` reproduces plain DMD.
    modes : bool, default True
        Compute DMD modes (in delay/PCA observable coordinates).
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

    Returns
    -------
    Spectrum
    """
    method = check_choice(method, "method", METHODS)
    path = check_choice(path, "path", PATHS)
    if rank is not None:
        rank = check_int(rank, "rank", minimum=1)
    if tol is not None:
        tol = check_positive_float(tol, "tol")
    if pca is not None:
        pca = check_int(pca, "pca", minimum=1)
    if not isinstance(scale, (bool, np.bool_)):
        raise TypeError(f"scale must be True or False, got {scale!r}")
    trajs = as_trajectory_list(trajectories)
    delays = check_delays(trajs, delays)
    if pca is not None:
        trajs = fit_pca_validated(trajs, pca).transform(trajs)

    n = trajs[0].shape[1]
    n_obs = n * (delays + 1)
    m = n_pairs(trajs, delays)
    n_snap = sum(t.shape[0] for t in trajs)
    if rank is not None and rank > min(n_obs, m):
        raise ValueError(
            f"rank={rank} exceeds what the data allow: min(n_observables={n_obs}, "
            f"n_pairs={m}) = {min(n_obs, m)} (n_observables = n_features x (delays + 1))"
        )
    real = not np.iscomplexobj(trajs[0])
    chosen = path
    if path == "auto":
        chosen = _auto_path(n, n_obs, m, n_snap, rank)

    notes: list[str] = []
    result = None
    if chosen == "gram":
        op = DelayOperator(trajs, delays)
        # No local names for the Grams: dmd_from_gram scales them in place and frees them
        # before the modes are formed.
        result, resolution = dmd_from_gram(
            *delay_grams(*snapshot_gram(trajs), delays), method=method, rank=rank, tol=tol,
            scale=scale, shape=(n_obs, m), x_times=op.x_times if modes else None,
            y_times=op.y_times if modes else None, real=real, overwrite=True,
        )
        if resolution < _GRAM_RESOLUTION:
            notes.append(
                f"gram path could not resolve s_k/s_1 = {resolution:.1e}; recomputed on the dense path"
            )
            result, chosen = None, "dense"
    elif chosen == "subspace":
        result = _subspace_path(trajs, delays, rank, tol, scale, method, modes, real)
        if result is None:
            notes.append("subspace iteration did not converge; recomputed on the dense path")
            chosen = "dense"
    if result is None:
        result = _dense_path(trajs, delays, rank, tol, scale, method, modes, n_snap)

    requested = rank
    rank_reduced = requested is not None and result.rank < requested
    if rank_reduced:
        msg = (
            f"rank={requested} requested but the data have numerical rank {result.rank} "
            f"(singular values above tol * s_1); kept {result.rank} modes"
        )
        notes.append(msg)
        warnings.warn(msg, RankWarning, stacklevel=2)
    informative = result.rank < n_obs
    if not informative and result.rank > 0:
        notes.append(
            "rank equals the number of observables: residuals are ~0 whatever the eigenvalues "
            "(add delays or reduce the rank for informative residuals)"
        )
    settings = {
        "delays": delays,
        "rank_requested": requested,
        "rank_reduced": bool(rank_reduced),
        "tol": tol,
        "pca": pca,
        "scale": bool(scale),
        "path": chosen,
        "n_trajectories": len(trajs),
        "n_features": n,
        "n_observables": n_obs,
        "n_pairs": m,
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
    )


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


def _dense_path(trajs, delays, rank, tol, scale, method, modes, n_snap) -> DMDResult:
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
    result = dmd(X, Y, method=method, rank=rank, tol=tol, scale=scale, modes=modes)
    if basis is not None and result.modes is not None:
        k, q = result.modes.shape[1], basis.shape[1]
        lifted = np.concatenate(
            [basis @ result.modes[j * q : (j + 1) * q] for j in range(delays + 1)], axis=0
        )
        result = replace(result, modes=lifted.reshape(-1, k))
    return result


def _oversampling(rank: int) -> int:
    return max(10, rank)


def _subspace_path(trajs, delays, rank, tol, scale, method, modes, real, max_iter: int = 80):
    """Top-``rank`` SVD of the scaled delay matrix by subspace iteration on structured products.

    Deterministic (fixed start seed). Converged when every kept singular triplet satisfies
    ``||X_s^* u_i - s_i v_i|| <= 1e-11 s_1`` (``X_s v_i = s_i u_i`` holds by construction), i.e. the
    subspace is accurate to ~1e-11 / relative gap. Returns None if that is not reached.
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
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(xs(rng.standard_normal((m, width))))
    prev = None
    for _ in range(max_iter):
        W = xsh(Q)  # X_s^* Q  (m, width)
        if prev is not None:
            Uq, s, Q2, Vbh = prev
            k = select_rank(s, rank, tol, (n_obs, m))
            if k == 0:
                return None
            # X_s^* u_i = W @ Uq[:, i] must equal s_i v_i, with v_i = Q2 @ Vbh[i]^*.
            Vk = Q2 @ Vbh[:k].conj().T
            resid = np.linalg.norm(W @ Uq[:, :k] - Vk * s[:k], axis=0)
            if resid.max() <= 1e-11 * s[0]:
                Uk, sk = Q @ Uq[:, :k], s[:k]
                del W, Q2, prev
                Bk = op.y_times(weights[:, None] * Vk) / sk
                return dmd_from_factors(Uk, sk, Bk, s, method=method, modes=modes, real=real)
            del Vk, prev
        Q2, _ = np.linalg.qr(W)
        del W
        Q, Rr = np.linalg.qr(xs(Q2))  # X_s Q2 = Q Rr
        Ub, s, Vbh = np.linalg.svd(Rr)
        prev = (Ub, s, Q2, Vbh)
    return None
