"""The Koopman spectrum: a frozen result record and its front door :func:`koopman_spectrum`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_NAME = "conjugacy.Spectrum"
FORMAT_VERSION = 1


def _frozen(arr: np.ndarray | None) -> np.ndarray | None:
    if arr is None:
        return None
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
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
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
