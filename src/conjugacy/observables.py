"""Observables: time-delay embedding and PCA projection of trajectories.

Delay embedding follows SPEC section 2: for ``d`` delays the lifted state is
``h_t = [x_t; x_{t+1}; ...; x_{t+d}]`` (``d + 1`` blocks, oldest on top). Snapshot pairs
``(h_t, h_{t+1})`` are formed *inside* each trajectory and the pairs of all trajectories are then
concatenated column-wise; trajectories are never joined end to end, because pairs across a joint are
not dynamics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import check_int
from .trajectories import TrajectoriesLike, as_trajectory_list


def check_delays(trajectories: list[np.ndarray], delays: int, name: str = "trajectories") -> int:
    """Validate ``delays`` against the trajectory lengths (each needs ``delays + 2`` steps)."""
    delays = check_int(delays, "delays", minimum=0)
    need = delays + 2
    for i, traj in enumerate(trajectories):
        if traj.shape[0] < need:
            label = name if len(trajectories) == 1 else f"{name}[{i}]"
            raise ValueError(
                f"{label} has {traj.shape[0]} steps, too few for delays={delays}: a trajectory "
                f"needs at least delays + 2 = {need} steps to give one snapshot pair"
            )
    return delays


def n_pairs(trajectories: list[np.ndarray], delays: int) -> int:
    """Number of snapshot pairs ``sum_i (n_steps_i - delays - 1)``."""
    return int(sum(t.shape[0] - delays - 1 for t in trajectories))


def delay_embed(trajectories: TrajectoriesLike, delays: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Build the snapshot pair matrices of the delay-embedded trajectories.

    Parameters
    ----------
    trajectories : array (n_trajectories, n_steps, n_features), (n_steps, n_features), or list
        of (n_steps_i, n_features) arrays.
    delays : int
        Number of delays ``d``; the lifted state has ``n_features * (d + 1)`` entries.

    Returns
    -------
    X, Y : ndarray (n_features * (delays + 1), n_pairs)
        Column ``j`` of ``Y`` is the successor of column ``j`` of ``X`` within one trajectory.
        ``n_pairs = sum_i (n_steps_i - delays - 1)``; trajectories appear in input order.
    """
    trajs = as_trajectory_list(trajectories)
    delays = check_delays(trajs, delays)
    xs, ys = [], []
    for traj in trajs:
        hankel = hankel_snapshots(traj, delays)  # (n_features*(d+1), n_steps - d)
        xs.append(hankel[:, :-1])
        ys.append(hankel[:, 1:])
    return np.concatenate(xs, axis=1), np.concatenate(ys, axis=1)


def hankel_snapshots(traj: np.ndarray, delays: int) -> np.ndarray:
    """All delay snapshots ``h_0 .. h_{T-d-1}`` of one trajectory (T, n) as columns.

    Returns an array (n * (delays + 1), T - delays): block ``j`` of column ``t`` is ``x_{t+j}``.
    """
    n_steps, n_feat = traj.shape
    n_cols = n_steps - delays
    out = np.empty((n_feat * (delays + 1), n_cols), dtype=traj.dtype)
    for j in range(delays + 1):
        out[j * n_feat : (j + 1) * n_feat] = traj[j : j + n_cols].T
    return out


@dataclass(frozen=True)
class PCAProjection:
    """A PCA basis fitted on the pooled snapshots of a set of trajectories.

    Attributes
    ----------
    components : ndarray (n_features, n_components)
        Orthonormal principal directions (columns), ordered by decreasing singular value.
    singular_values : ndarray (n_components,)
        Singular values of the pooled (uncentred) snapshot matrix along those directions.
    """

    components: np.ndarray
    singular_values: np.ndarray

    def transform(self, trajectories: list[np.ndarray]) -> list[np.ndarray]:
        """Project each trajectory (n_steps, n_features) to (n_steps, n_components)."""
        return [traj @ self.components for traj in trajectories]


def fit_pca(trajectories: TrajectoriesLike, n_components: int) -> PCAProjection:
    """Fit an (uncentred) PCA basis on all snapshots of all trajectories pooled.

    Data are **not centred**, as in the reference code of Redman et al.: the mean (a fixed point
    of training, or slow drift) stays in the span, so the eigenvalue near 1 that carries it is
    kept. With many features and few snapshots (weight trajectories) the basis is computed from
    the snapshot-side Gram matrix ``Z Z^T`` (one pass over the data, no copy of it); its leading
    eigenvectors are accurate unless a kept singular value is below ~1e-8 of the largest, which
    is then reported and the exact SVD is used instead.

    Parameters
    ----------
    trajectories : see :func:`delay_embed`
    n_components : int
        Number of principal components ``r``; at most ``min(n_snapshots, n_features)``.
    """
    trajs = as_trajectory_list(trajectories)
    n_components = check_int(n_components, "pca", minimum=1)
    n_feat = trajs[0].shape[1]
    n_snap = sum(t.shape[0] for t in trajs)
    if n_components > min(n_snap, n_feat):
        raise ValueError(
            f"pca={n_components} exceeds what the data allow: min(n_snapshots={n_snap}, "
            f"n_features={n_feat}) = {min(n_snap, n_feat)}"
        )
    if n_feat > 2 * n_snap:
        comps, svals = _pca_from_gram(trajs, n_components)
        if comps is not None:
            return PCAProjection(comps, svals)
    z = np.concatenate(trajs, axis=0)
    _, s, vh = np.linalg.svd(z, full_matrices=False)
    return PCAProjection(_fix_signs(vh[:n_components].conj().T), s[:n_components])


def _pca_from_gram(trajs: list[np.ndarray], r: int) -> tuple[np.ndarray | None, np.ndarray]:
    # Snapshot-side Gram G = Z Z^* (n_snap x n_snap), computed block by block so the pooled
    # snapshot matrix is never copied. Components: v_i = Z^* u_i / s_i.
    offsets = np.cumsum([0] + [t.shape[0] for t in trajs])
    n_snap = offsets[-1]
    gram = np.empty((n_snap, n_snap), dtype=trajs[0].dtype)
    for a, ta in enumerate(trajs):
        for b in range(a, len(trajs)):
            block = ta @ trajs[b].conj().T
            gram[offsets[a] : offsets[a + 1], offsets[b] : offsets[b + 1]] = block
            if b != a:
                gram[offsets[b] : offsets[b + 1], offsets[a] : offsets[a + 1]] = block.conj().T
    evals, evecs = np.linalg.eigh(gram)
    evals, evecs = evals[::-1][:r], evecs[:, ::-1][:, :r]
    if evals[0] <= 0 or evals[-1] < 1e-16 * evals[0]:
        return None, evals  # kept directions below the Gram path's resolution: use the SVD
    svals = np.sqrt(evals)
    comps = np.zeros((trajs[0].shape[1], r), dtype=trajs[0].dtype)
    for a, ta in enumerate(trajs):
        comps += ta.conj().T @ evecs[offsets[a] : offsets[a + 1]]
    comps /= svals
    return _fix_signs(comps), svals


def _fix_signs(components: np.ndarray) -> np.ndarray:
    # Deterministic orientation: the largest-magnitude entry of each component is positive real.
    idx = np.argmax(np.abs(components), axis=0)
    phase = components[idx, np.arange(components.shape[1])]
    phase = phase / np.abs(phase)
    return components / phase.conj() if np.iscomplexobj(components) else components * np.sign(phase)
