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
from .dmd import top_eigh
from .trajectories import TrajectoriesLike, as_trajectory_list


def check_delays(trajectories: list[np.ndarray], delays: int, name: str = "trajectories") -> int:
    """Validate ``delays`` against the trajectory lengths (each needs ``delays + 2`` steps).

    Parameters
    ----------
    trajectories : list of ndarray (n_steps_i, n_features)
    delays : int
        Non-negative number of delays.
    name : str
        The argument's name in error messages.

    Returns
    -------
    int
        ``delays`` as a Python int.

    Raises
    ------
    ValueError, TypeError
        A negative or non-integer ``delays``, or a trajectory shorter than ``delays + 2`` steps.

    Examples
    --------
    >>> import numpy as np
    >>> check_delays([np.zeros((5, 2))], 3)
    3
    """
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
    """Number of snapshot pairs ``sum_i (n_steps_i - delays - 1)``.

    Parameters
    ----------
    trajectories : list of ndarray (n_steps_i, n_features)
    delays : int

    Returns
    -------
    int

    Examples
    --------
    >>> import numpy as np
    >>> n_pairs([np.zeros((5, 2)), np.zeros((7, 2))], delays=1)
    8
    """
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

    Raises
    ------
    ValueError, TypeError
        Bad trajectories (NaN/Inf, wrong shapes, mismatched features, a non-numeric dtype), or
        too few steps for the delays; each message names the argument and the fix.

    References
    ----------
    Arbabi & Mezić, *Ergodic theory, dynamic mode decomposition, and computation of spectral
    properties of the Koopman operator*, SIAM J. Appl. Dyn. Syst. 16(4), 2017 (Hankel DMD); Redman
    et al., *Identifying Equivalent Training Dynamics*, NeurIPS 2024 (delays within each trajectory,
    never across two).

    Examples
    --------
    >>> import numpy as np
    >>> traj = np.arange(10.0).reshape(5, 2)  # 5 steps of 2 features
    >>> X, Y = delay_embed([traj], delays=1)  # a list of trajectories (here one)
    >>> X.shape, X[:, 0], Y[:, 0]  # h_0 = [x_0; x_1], its successor h_1 = [x_1; x_2]
    ((4, 3), array([0., 1., 2., 3.]), array([2., 3., 4., 5.]))
    """
    trajs = as_trajectory_list(trajectories)
    delays = check_delays(trajs, delays)
    hankels = [hankel_snapshots(t, delays) for t in trajs]  # (n_features*(d+1), n_steps - d)
    return (np.concatenate([h[:, :-1] for h in hankels], axis=1),
            np.concatenate([h[:, 1:] for h in hankels], axis=1))


def hankel_snapshots(traj: np.ndarray, delays: int) -> np.ndarray:
    """All delay snapshots ``h_0, ..., h_{T-d-1}`` of one trajectory (T, n) as columns.

    Parameters
    ----------
    traj : ndarray (T, n)
    delays : int
        Number of delays ``d`` (``T > d``).

    Returns
    -------
    ndarray (n * (delays + 1), T - delays)
        Block ``j`` of column ``t`` is ``x_{t+j}``.

    References
    ----------
    Arbabi & Mezić, *Ergodic theory, dynamic mode decomposition, and computation of spectral
    properties of the Koopman operator*, SIAM J. Appl. Dyn. Syst. 16(4), 2017 (Hankel DMD).

    Examples
    --------
    >>> import numpy as np
    >>> hankel_snapshots(np.arange(10.0).reshape(5, 2), delays=1)
    array([[0., 2., 4., 6.],
           [1., 3., 5., 7.],
           [2., 4., 6., 8.],
           [3., 5., 7., 9.]])
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
        Orthonormal principal directions (columns), ordered by decreasing singular value; the
        sign of each is fixed so that its largest-magnitude entry is positive (scikit-learn's
        ``svd_flip`` convention).
    singular_values : ndarray (n_components,)
        Singular values of the pooled snapshot matrix (centred when ``center``) along them.
    center : bool
        Whether the components were fitted on mean-centred snapshots.

    Examples
    --------
    >>> import numpy as np
    >>> runs = np.random.default_rng(0).normal(size=(4, 20, 6))  # 4 trajectories, 20 steps, 6 features
    >>> basis = fit_pca(runs, 3)
    >>> basis.components.shape, [c.shape for c in basis.transform(list(runs))][:2]
    ((6, 3), [(20, 3), (20, 3)])
    """

    components: np.ndarray
    singular_values: np.ndarray
    center: bool = False

    def transform(self, trajectories: list[np.ndarray]) -> list[np.ndarray]:
        """Project each raw trajectory (n_steps, n_features) to (n_steps, n_components).

        The projection is of the *uncentred* snapshots (``x @ components``) in both modes, as the
        reference code does: the mean's projection stays in the coordinates, so a fixed point or
        slow drift keeps its eigenvalue near 1.
        """
        return [traj @ self.components for traj in trajectories]


def fit_pca(
    trajectories: TrajectoriesLike, n_components: int, *, center: bool = True
) -> PCAProjection:
    """Fit a PCA basis on all snapshots of all trajectories pooled.

    ``center=True`` (default) fits the principal components of the mean-centred snapshots, the
    components of scikit-learn's ``PCA`` that the reference code of Redman et al. fits (it then
    projects the raw snapshots on them: :meth:`PCAProjection.transform` does the same).
    ``center=False`` is an uncentred SVD basis of the raw snapshots, whose span holds the mean; it
    is a different subspace (on a grokking trajectory one direction was nearly orthogonal to the
    centred one, and the spectrum moved by W1 0.004).

    With many features and few snapshots (weight trajectories) the basis is computed from the
    snapshot-side Gram matrix ``Z Z^T`` (double-centred when ``center``; one pass over the data,
    no copy of it); its leading eigenvectors are accurate unless a kept singular value is below
    ~1e-8 of the largest, in which case the exact SVD is used instead.

    Parameters
    ----------
    trajectories : see :func:`delay_embed`
    n_components : int
        Number of principal components ``r``; at most ``min(n_snapshots, n_features)``
        (``n_snapshots - 1`` when centring: centred snapshots span one dimension less).
    center : bool, default True

    Returns
    -------
    PCAProjection
        ``components`` (n_features, r), ``singular_values`` (r,), ``center``; ``transform``
        projects trajectories on the basis.

    Raises
    ------
    ValueError
        If ``n_components`` exceeds what the data allow.

    References
    ----------
    Redman et al., *Identifying Equivalent Training Dynamics*, NeurIPS 2024 (the reference code's
    scikit-learn PCA); Sirovich, *Turbulence and the dynamics of coherent structures*, Q. Appl.
    Math. 45, 1987 (the method of snapshots: the basis from the snapshot-side Gram matrix).

    Examples
    --------
    >>> import numpy as np
    >>> runs = np.random.default_rng(0).normal(size=(4, 20, 6))  # 4 trajectories, 20 steps, 6 features
    >>> basis = fit_pca(runs, n_components=3)
    >>> basis.components.shape, basis.singular_values.round(2)
    ((6, 3), array([10.96,  9.66,  8.82]))
    """
    if not isinstance(center, (bool, np.bool_)):
        raise TypeError(f"center must be True or False, got {center!r}")
    return fit_pca_validated(as_trajectory_list(trajectories), n_components, center=bool(center))


def fit_pca_validated(
    trajs: list[np.ndarray], n_components: int, *, center: bool = True
) -> PCAProjection:
    """:func:`fit_pca` for trajectories already in canonical, validated form.

    Parameters
    ----------
    trajs : list of ndarray (n_steps_i, n_features)
        Validated trajectories (finite, one dtype, equal features).
    n_components : int
    center : bool, default True

    Returns
    -------
    PCAProjection

    Raises
    ------
    ValueError
        If ``n_components`` exceeds what the data allow.

    Examples
    --------
    >>> import numpy as np
    >>> runs = np.random.default_rng(0).normal(size=(4, 20, 6))  # 4 trajectories, 20 steps, 6 features
    >>> fit_pca_validated(list(runs), 2).components.shape
    (6, 2)
    """
    n_components = check_int(n_components, "pca", minimum=1)
    n_feat = trajs[0].shape[1]
    n_snap = sum(t.shape[0] for t in trajs)
    check_pca(n_components, n_snap, n_feat, center)
    if n_feat > 2 * n_snap:
        comps, svals = _pca_from_gram(trajs, n_components, center)
        if comps is not None:
            return PCAProjection(comps, svals, center)
    z = np.concatenate(trajs, axis=0)
    if center:
        z = z - z.mean(axis=0)
    _, s, vh = np.linalg.svd(z, full_matrices=False)
    return PCAProjection(_fix_signs(vh[:n_components].conj().T), s[:n_components], center)


def _pca_from_gram(
    trajs: list[np.ndarray], r: int, center: bool = False
) -> tuple[np.ndarray | None, np.ndarray]:
    # Snapshot-side Gram Z Z^* (n_snap x n_snap) computed block by block, so the pooled snapshot
    # matrix is never copied. Its eigenvectors u_i give the components v_i = Z^* u_i / s_i.
    # Centred: (Z - 1 mu^T)(Z - 1 mu^T)^* = C Z Z^* C with C = I - J/N; its eigenvectors of nonzero
    # eigenvalue are orthogonal to 1, so (Z - 1 mu^T)^* u_i = Z^* u_i and the same formula holds.
    gram, offsets = snapshot_gram(trajs)
    gram = gram.conj()  # Z Z^* = conj(G) for G[s, t] = x_s^* x_t
    if center:
        gram = _double_centred(gram)
    evals, evecs = np.linalg.eigh(gram)
    evals, evecs = evals[::-1][:r], evecs[:, ::-1][:, :r]
    if evals[0] <= 0 or evals[-1] < 1e-16 * evals[0]:
        return None, evals  # kept directions below the Gram path's resolution: use the SVD
    svals = np.sqrt(evals)
    comps = np.zeros((trajs[0].shape[1], r), dtype=trajs[0].dtype)
    for a, ta in enumerate(trajs):
        comps += _conj(ta).T @ evecs[offsets[a] : offsets[a + 1]]
    comps /= svals
    return _fix_signs(comps), svals


def _double_centred(zz: np.ndarray) -> np.ndarray:
    """``C Z Z^* C`` with ``C = I - J/N``: the Gram of the mean-centred snapshots, made Hermitian."""
    g = zz - zz.mean(axis=0, keepdims=True)
    g = g - g.mean(axis=1, keepdims=True)
    return (g + g.conj().T) / 2


def check_pca(pca: int, n_snap: int, n: int, center: bool) -> None:
    """Raise the ValueError saying what the data allow when ``pca`` components exceed
    ``min(n_snapshots - 1 if center else n_snapshots, n_features)``.

    Parameters
    ----------
    pca : int
        Requested number of components.
    n_snap, n : int
        Number of snapshots and of features.
    center : bool
        Whether the snapshots are centred (one dimension fewer).

    Raises
    ------
    ValueError
        Too many components, with the limit and why.

    Examples
    --------
    >>> check_pca(3, 4, 10, True)  # 4 centred snapshots span 3 dimensions: allowed
    >>> check_pca(5, 4, 10, True)
    Traceback (most recent call last):
    ...
    ValueError: pca=5 exceeds what the data allow: min(n_snapshots - 1=3, n_features=10) = 3
    """
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

    Parameters
    ----------
    gram : ndarray (n_snapshots, n_snapshots)
        The snapshot Gram ``G[s, t] = x_s^* x_t`` (:func:`snapshot_gram`).
    offsets : ndarray (n_trajectories + 1,)
        Where each trajectory's snapshots start in ``gram``.
    r : int
        Number of components (checked by :func:`check_pca`).
    center : bool
        Components of the mean-centred snapshots (as :func:`conjugacy.fit_pca`).
    notes : list of str
        Receives a note when the last kept component is below what a Gram resolves.

    Returns
    -------
    list of ndarray (n_steps_i, r), one per trajectory

    Raises
    ------
    ValueError
        ``r`` larger than the data allow (:func:`check_pca`).

    References
    ----------
    Sirovich, *Turbulence and the dynamics of coherent structures*, Q. Appl. Math. 45, 1987
    (the method of snapshots: the basis from the snapshot-side Gram matrix).

    Examples
    --------
    >>> import numpy as np
    >>> runs = np.random.default_rng(0).normal(size=(4, 20, 6))  # 4 trajectories, 20 steps, 6 features
    >>> coords = pca_projections_from_gram(*snapshot_gram(list(runs)), 3, True, [])
    >>> direct = fit_pca(runs, 3).transform(list(runs))
    >>> all(np.allclose(abs(c), abs(d)) for c, d in zip(coords, direct))  # equal up to signs
    True
    """
    zz = gram.conj()
    g = _double_centred(zz) if center else zz
    evals, evecs = top_eigh(g, r)  # the leading r eigenpairs (Lanczos for a large Gram)
    evals, evecs = evals[:r], evecs[:, :r]
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


def snapshot_gram(trajs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Gram matrix of all base snapshots, ``G[s, t] = x_s^* x_t``, one pass over the data.

    Parameters
    ----------
    trajs : list of ndarray (n_steps_i, n_features)

    Returns
    -------
    G : ndarray (n_snapshots, n_snapshots)
        Snapshots in trajectory order; computed block by block (no pooled copy).
    offsets : ndarray (n_trajectories + 1,)
        Where each trajectory's block starts.

    References
    ----------
    Sirovich, *Turbulence and the dynamics of coherent structures*, Q. Appl. Math. 45, 1987
    (the method of snapshots: the basis from the snapshot-side Gram matrix).

    Examples
    --------
    >>> import numpy as np
    >>> runs = np.random.default_rng(0).normal(size=(4, 20, 6))  # 4 trajectories, 20 steps, 6 features
    >>> G, offsets = snapshot_gram(list(runs))
    >>> G.shape, offsets, np.allclose(G, runs.reshape(80, 6) @ runs.reshape(80, 6).T)
    ((80, 80), array([ 0, 20, 40, 60, 80]), True)
    """
    offsets = np.cumsum([0] + [t.shape[0] for t in trajs])
    pooled = pooled_view(trajs)
    if pooled is not None:
        # One symmetric rank-k update (BLAS syrk) over the pooled view: ~1.6x faster than blocks.
        left = _conj(pooled)
        with np.errstate(over="ignore", invalid="ignore"):  # NaN/Inf/overflow: see the caller
            return left @ pooled.T, offsets
    n_snap = int(offsets[-1])
    gram = np.empty((n_snap, n_snap), dtype=trajs[0].dtype)
    for a, ta in enumerate(trajs):
        tac = _conj(ta)
        for b in range(a, len(trajs)):
            block = tac @ trajs[b].T
            gram[offsets[a] : offsets[a + 1], offsets[b] : offsets[b + 1]] = block
            if b != a:
                gram[offsets[b] : offsets[b + 1], offsets[a] : offsets[a + 1]] = block.conj().T
    return gram, offsets


def pooled_view(trajs: list[np.ndarray]) -> np.ndarray | None:
    """All snapshots as one (n_snapshots, n_features) array *without copying*, if possible.

    Possible when the trajectories are consecutive C-contiguous row blocks of one buffer (as
    ``list(array_3d)`` gives); returns None otherwise.

    Parameters
    ----------
    trajs : list of ndarray (n_steps_i, n_features)

    Returns
    -------
    ndarray (n_snapshots, n_features) sharing memory with ``trajs``, or None

    Examples
    --------
    >>> import numpy as np
    >>> runs = np.random.default_rng(0).normal(size=(4, 20, 6))  # 4 trajectories, 20 steps, 6 features
    >>> view = pooled_view(list(runs))
    >>> view.shape, np.shares_memory(view, runs), pooled_view([runs[0], runs[2]])
    ((80, 6), True, None)
    """
    first = trajs[0]
    if not all(t.flags.c_contiguous and t.dtype == first.dtype for t in trajs):
        return None
    address = first.__array_interface__["data"][0]
    for t in trajs:
        if t.__array_interface__["data"][0] != address:
            return None
        address += t.nbytes
    n_snap = sum(t.shape[0] for t in trajs)
    return np.lib.stride_tricks.as_strided(
        first, shape=(n_snap, first.shape[1]), strides=first.strides, writeable=False
    )


def delay_grams(
    gram: np.ndarray, offsets: np.ndarray, delays: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``X*X``, ``X*Y`` and ``Y*Y`` of the delay-embedded pairs from the base snapshot Gram.

    With ``h_t = [x_t; ...; x_{t+d}]`` (SPEC section 3), ``h_s^* h_t = sum_{j=0..d} G[s+j, t+j]``
    for s and t inside their own trajectories; no delay matrix is ever built. The Gram ``H`` of
    all distinct delay snapshots is formed first; X*X, X*Y, Y*Y are its sub-blocks.

    Parameters
    ----------
    gram : ndarray (n_snapshots, n_snapshots)
        The base snapshot Gram ``G[s, t] = x_s^* x_t`` (:func:`snapshot_gram`).
    offsets : ndarray (n_trajectories + 1,)
        Where each trajectory's snapshots start in ``gram``.
    delays : int
        Number of delays ``d``.

    Returns
    -------
    XX, XY, YY : ndarray (n_pairs, n_pairs)

    References
    ----------
    Sirovich, *Turbulence and the dynamics of coherent structures*, Q. Appl. Math. 45, 1987
    (the method of snapshots: the basis from the snapshot-side Gram matrix).

    Examples
    --------
    >>> import numpy as np
    >>> runs = np.random.default_rng(0).normal(size=(4, 20, 6))  # 4 trajectories, 20 steps, 6 features
    >>> XX, XY, YY = delay_grams(*snapshot_gram(list(runs)), delays=1)
    >>> X, Y = delay_embed(runs, delays=1)
    >>> XX.shape, np.allclose(XX, X.T @ X), np.allclose(XY, X.T @ Y), np.allclose(YY, Y.T @ Y)
    ((72, 72), True, True, True)
    """
    gxx, gxy, gyy = delay_gram_blocks(gram, offsets, delays)
    return gxx, gxy.dense(), gyy.dense()


class GramBlock:
    """A block ``H[rows][:, cols]`` of a Hermitian Gram ``H``, used by products only, never copied.

    ``lmul(A)`` is ``A @ H[rows][:, cols]`` for A (k, len(rows)): the rows of A are placed in a
    zero-padded (k, N) array and multiplied by ``H`` whole, so the (m, m) block is never formed
    (:func:`delay_gram_blocks`: ``X*Y`` and ``Y*Y`` as blocks of the delay snapshots' Gram). The
    zero padding contributes exact zeros: the product equals the block's to rounding.

    Parameters
    ----------
    H : ndarray (N, N)
        The Hermitian Gram matrix.
    rows, cols : ndarray of int
        The block's row and column indices into ``H``.

    Examples
    --------
    >>> import numpy as np
    >>> H = np.arange(16.0).reshape(4, 4); H = H + H.T
    >>> block = GramBlock(H, np.array([0, 1]), np.array([2, 3]))
    >>> np.array_equal(block.lmul(np.eye(2)), H[:2, 2:]), block.diagonal().tolist()
    (True, [10.0, 20.0])
    """

    def __init__(self, H: np.ndarray, rows: np.ndarray, cols: np.ndarray):
        self.H, self.rows, self.cols = H, rows, cols
        self.shape = (rows.size, cols.size)
        self.dtype = H.dtype

    def lmul(self, A: np.ndarray) -> np.ndarray:
        pad = np.zeros((A.shape[0], self.H.shape[0]), dtype=np.result_type(A, self.H))
        pad[:, self.rows] = A
        return (pad @ self.H)[:, self.cols]

    def diagonal(self) -> np.ndarray:
        return self.H[self.rows, self.cols]

    def dense(self) -> np.ndarray:
        """The block as an (m, m) array (a copy)."""
        return self.H[np.ix_(self.rows, self.cols)]


def delay_gram_blocks(
    gram: np.ndarray, offsets: np.ndarray, delays: int
) -> tuple[np.ndarray, GramBlock, GramBlock]:
    """:func:`delay_grams` with ``X*Y`` and ``Y*Y`` as :class:`GramBlock` views of the delay
    snapshots' Gram ``H`` instead of (m, m) copies: the Gram path needs them only in products
    with the k kept singular vectors (two m^2 copies saved: ~8 % of the call on
    10 x 500 x 4,000 walks with 32 delays, and 2 m^2 of memory).

    Parameters
    ----------
    gram, offsets, delays
        As :func:`delay_grams`.

    Returns
    -------
    XX : ndarray (n_pairs, n_pairs)
    XY, YY : GramBlock
        ``X*Y`` and ``Y*Y`` as views for products.

    Examples
    --------
    >>> import numpy as np
    >>> runs = np.random.default_rng(0).normal(size=(4, 20, 6))  # 4 trajectories, 20 steps, 6 features
    >>> XX, XY, YY = delay_gram_blocks(*snapshot_gram(list(runs)), delays=1)
    >>> X, Y = delay_embed(runs, delays=1)
    >>> A = np.ones((2, XX.shape[0]))
    >>> np.allclose(XY.lmul(A), A @ (X.T @ Y)), np.allclose(YY.diagonal(), (Y * Y).sum(0))
    (True, True)
    """
    lengths = np.diff(offsets)
    n_h = lengths - delays  # distinct delay snapshots per trajectory
    # Distinct snapshots of trajectory i occupy a contiguous run; X drops each run's last one
    # and Y its first.
    ends, rows = np.cumsum(n_h), np.arange(int(n_h.sum()))
    xi, yi = np.setdiff1d(rows, ends - 1), np.setdiff1d(rows, ends - n_h)
    if lengths.size and np.all(lengths == lengths[0]):
        H = _equal_length_snapshot_gram(gram, len(lengths), int(lengths[0]), delays)
        gxx = np.ascontiguousarray(H[:, :-1, :, :-1]).reshape(xi.size, xi.size)  # a slice
        H = H.reshape(rows.size, rows.size)
    else:
        H = _delay_snapshot_gram(gram, offsets, delays)
        gxx = H[np.ix_(xi, xi)]
    return gxx, GramBlock(H, xi, yi), GramBlock(H, yi, yi)


def _delay_snapshot_gram(gram: np.ndarray, offsets: np.ndarray, delays: int) -> np.ndarray:
    """The Gram ``H`` of all distinct delay snapshots (trajectories of any lengths)."""
    lengths = np.diff(offsets)
    starts = np.concatenate([np.arange(o, o + n - delays) for o, n in zip(offsets[:-1], lengths)])
    H = np.zeros((starts.size, starts.size), dtype=gram.dtype)
    if len(lengths) <= 32:
        # contiguous slices, block pair by block pair (4-5x faster than fancy-index gathers)
        hoff = np.cumsum([0] + [int(n - delays) for n in lengths])
        for a in range(len(lengths)):
            oa, ha, la = int(offsets[a]), int(hoff[a]), int(lengths[a] - delays)
            for b in range(len(lengths)):
                ob, hb, lb = int(offsets[b]), int(hoff[b]), int(lengths[b] - delays)
                block = H[ha : ha + la, hb : hb + lb]
                for j in range(delays + 1):
                    block += gram[oa + j : oa + j + la, ob + j : ob + j + lb]
    else:
        for j in range(delays + 1):
            idx = starts + j
            H += gram[np.ix_(idx, idx)]
    return H


def _equal_length_snapshot_gram(gram: np.ndarray, n_traj: int, length: int, delays: int
                                ) -> np.ndarray:
    """The Gram ``H`` of the distinct delay snapshots, shaped (n_traj, n_h, n_traj, n_h), for
    trajectories of one length: each shift of ``H`` is one strided add over a 4-D view of ``G``
    (d + 1 NumPy calls, not d + 1 per pair of trajectories; 3x faster on 10 trajectories)."""
    g4 = gram.reshape(n_traj, length, n_traj, length)
    n_h = length - delays  # distinct delay snapshots per trajectory
    H = g4[:, :n_h, :, :n_h].copy()
    for j in range(1, delays + 1):
        H += g4[:, j : j + n_h, :, j : j + n_h]
    return H


#: entries of one block of delay vectors :func:`delay_covariances` forms at a time (64 MiB)
_COVARIANCE_CHUNK = 8 * 2**20


def delay_covariances(
    trajs: list[np.ndarray], delays: int, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature-side covariances ``X X^*``, ``Y X^*`` and ``Y Y^*`` of the delay-embedded pairs,
    accumulated over blocks of snapshots in one pass over the data (the delay matrices are never
    formed whole).

    For tall data (delay-embedded observables ``n_obs = n (d + 1)`` far fewer than snapshot
    pairs ``m``) these (n_obs, n_obs) matrices carry everything DMD needs: the left singular
    vectors and values of X from ``X X^*``, ``B_k = Y V_k S_k^-1 = (Y X^*) U_k S_k^-2``, and the
    ResDMD Grams ``U_k^* X X^* U_k``, ``U_k^* X Y^* U_k``, ``U_k^* Y Y^* U_k``. Cost
    ``~3 n_obs^2 m`` multiply-adds; memory ``3 n_obs^2`` + one block of at most
    ``_COVARIANCE_CHUNK`` entries. Like the snapshot Gram, these square the condition number.

    Parameters
    ----------
    trajs, delays
        As for :class:`DelayOperator`: validated trajectories (n_steps_i, n_features), each at
        least ``delays + 2`` steps long, and the number of delays ``d``.
    weights : ndarray, float (m,), optional
        Column weights of the pairs, in pair order (``X diag(w)``, ``Y diag(w)``: the
        ``scale=True`` fit); default ones.

    Returns
    -------
    cxx, cyx, cyy : ndarray (n_obs, n_obs)
        ``X X^*``, ``Y X^*``, ``Y Y^*`` (observables ordered as :func:`delay_embed`'s rows).

    Examples
    --------
    >>> import numpy as np
    >>> runs = np.random.default_rng(0).normal(size=(3, 50, 2))  # 3 trajectories, 50 steps, 2 features
    >>> cxx, cyx, cyy = delay_covariances(list(runs), delays=2)
    >>> X, Y = delay_embed(runs, delays=2)
    >>> cxx.shape, np.allclose(cxx, X @ X.T), np.allclose(cyx, Y @ X.T), np.allclose(cyy, Y @ Y.T)
    ((6, 6), True, True, True)
    """
    n, d1 = trajs[0].shape[1], delays + 1
    n_obs = n * d1
    dtype = np.result_type(*(t.dtype for t in trajs), np.float64)
    cxx, cyx, cyy = (np.zeros((n_obs, n_obs), dtype=dtype) for _ in range(3))
    step = max(1, _COVARIANCE_CHUNK // max(n_obs, 1))
    start = 0  # where this trajectory's pairs start among the weights
    for traj in trajs:
        m = traj.shape[0] - d1  # pairs: delay vectors h_0 .. h_m, X = h_0..h_{m-1}, Y = h_1..h_m
        windows = np.lib.stride_tricks.sliding_window_view(traj, d1, axis=0)  # (m + 1, n, d1)
        for t0 in range(0, m, step):
            t1 = min(m, t0 + step)
            h = np.ascontiguousarray(windows[t0 : t1 + 1].transpose(0, 2, 1), dtype=dtype)
            h = h.reshape(t1 - t0 + 1, n_obs)  # rows h_t^T, t = t0 .. t1
            hx, hy = h[:-1], h[1:]
            hxc = _conj(hx) if weights is None else _conj(hx) * (
                weights[start + t0 : start + t1, None] ** 2)
            cxx += hx.T @ hxc  # sum_t w_t^2 h_t h_t^*
            cyx += hy.T @ hxc  # sum_t w_t^2 h_{t+1} h_t^*
            if weights is not None:
                cyy += hy.T @ (_conj(hy) * weights[start + t0 : start + t1, None] ** 2)
            del h, hxc
        start += m
    if weights is None:  # Y Y^* = X X^* + sum over trajectories of h_m h_m^* - h_0 h_0^*
        first = np.stack([t[:d1].reshape(-1) for t in trajs]).astype(dtype)
        last = np.stack([t[t.shape[0] - d1 :].reshape(-1) for t in trajs]).astype(dtype)
        cyy += cxx
        cyy += last.T @ _conj(last)
        cyy -= first.T @ _conj(first)
    return cxx, cyx, cyy


#: entries of the (rows, (d + 1) k) product DelayOperator's adjoint forms at a time (64 MiB)
_ADJOINT_CHUNK = 8 * 2**20


class DelayOperator:
    """Products with the delay matrices X and Y without building them.

    For trajectory i (T_i, n) with ``m_i = T_i - d - 1`` pairs, block j of column t of X_i is
    ``x_{t+j}``, so ``(X_i V_i)[block j] = traj[j : j + m_i].T @ V_i``; Y is the same shifted by one.
    Each product costs ``(d + 1) n m k`` flops and O((n (d + 1) + m) k) memory.

    Parameters
    ----------
    trajs : list of ndarray (n_steps_i, n_features)
        Validated trajectories, each at least ``delays + 2`` steps long.
    delays : int
        Number of delays ``d``.

    References
    ----------
    Arbabi & Mezić, *Ergodic theory, dynamic mode decomposition, and computation of spectral
    properties of the Koopman operator*, SIAM J. Appl. Dyn. Syst. 16(4), 2017 (Hankel DMD).

    Examples
    --------
    >>> import numpy as np
    >>> runs = np.random.default_rng(0).normal(size=(4, 20, 6))  # 4 trajectories, 20 steps, 6 features
    >>> op = DelayOperator(list(runs), delays=1)
    >>> X, Y = delay_embed(runs, delays=1)
    >>> V = np.ones((op.shape[1], 2))
    >>> op.shape, np.allclose(op.x_times(V), X @ V), np.allclose(op.y_times(V), Y @ V)
    ((12, 72), True, True)
    """

    def __init__(self, trajs: list[np.ndarray], delays: int):
        self.trajs = trajs
        self.delays = delays
        self.n = trajs[0].shape[1]
        self.pairs = [t.shape[0] - delays - 1 for t in trajs]
        self.offsets = np.cumsum([0] + self.pairs)
        self.shape = (self.n * (delays + 1), int(self.offsets[-1]))
        self.dtype = trajs[0].dtype

    def _times(self, V: np.ndarray, shift: int) -> np.ndarray:
        k, d1 = V.shape[1], self.delays + 1
        out = np.zeros((d1, self.n, k), dtype=np.result_type(self.dtype, V.dtype))
        if np.iscomplexobj(V) and not np.iscomplexobj(self.trajs[0]):
            # real data times complex V: two real products written into the complex result
            self._accumulate(out.real, V.real, shift)
            self._accumulate(out.imag, V.imag, shift)
        else:
            self._accumulate(out, V, shift)
        return out.reshape(d1 * self.n, k)

    def _accumulate(self, out: np.ndarray, V: np.ndarray, shift: int) -> None:
        # (X V)[block j] = sum_t x_{t+j+shift} V[t]. Delays are taken `group` at a time: one
        # product of the trajectory with the shifted copies of V placed side by side, so BLAS
        # sees a few large products; `group` keeps that (T, group k) temporary no larger than
        # the trajectory itself.
        k = V.shape[1]
        group = max(1, min(8, self.n // max(k, 1)))
        for traj, m, o in zip(self.trajs, self.pairs, self.offsets):
            for j0 in range(0, self.delays + 1, group):
                js = range(j0, min(j0 + group, self.delays + 1))
                shifted = np.zeros((traj.shape[0], len(js) * k), dtype=V.dtype)
                for c, j in enumerate(js):
                    shifted[j + shift : j + shift + m, c * k : (c + 1) * k] = V[o : o + m]
                prod = traj.T @ shifted  # (n, len(js) k)
                out[js.start : js.stop] += prod.reshape(self.n, len(js), k).transpose(1, 0, 2)
                del shifted, prod  # free before the next group allocates its own

    def _adjoint_times(self, U: np.ndarray, shift: int) -> np.ndarray:
        # (X^* U)[t] = sum_j x_{t+j+shift}^* U_j: one product of each trajectory with the d + 1
        # blocks of U side by side, P = traj^* [U_0 ... U_d] (T, (d + 1) k), then d + 1 shifted
        # slice sums of P; the data are read once, not d + 1 times in thin products. Row
        # chunks keep P under _ADJOINT_CHUNK entries. Measured (one thread, subspace path,
        # rank 10): 1.09-1.24x faster on 10 x 1,000 x 400 (d = 8), but 0.78-0.95x where features
        # are few (50: P's shifted slice sums outweigh the data read), where the d + 1 thin
        # products are kept.
        k, d1, n = U.shape[1], self.delays + 1, self.n
        out = np.zeros((self.shape[1], k), dtype=np.result_type(self.dtype, U.dtype))
        if n < 8 * k or d1 == 1:
            for traj, m, o in zip(self.trajs, self.pairs, self.offsets):
                acc = out[o : o + m]
                for j in range(d1):
                    acc += _conj(traj[j + shift : j + shift + m]) @ U[j * n : (j + 1) * n]
            return out
        stacked = np.ascontiguousarray(U.reshape(d1, n, k).transpose(1, 0, 2)).reshape(n, d1 * k)
        step = max(1, _ADJOINT_CHUNK // max(d1 * k, 1))
        for traj, m, o in zip(self.trajs, self.pairs, self.offsets):
            for t0 in range(0, m, step):
                t1 = min(m, t0 + step)
                lo, hi = t0 + shift, t1 + shift + d1 - 1  # the rows this chunk reads
                prod = (_conj(traj[lo:hi]) @ stacked).reshape(hi - lo, d1, k)
                acc = out[o + t0 : o + t1]
                for j in range(d1):
                    acc += prod[j : j + t1 - t0, j]
                del prod
        return out

    def x_times(self, V: np.ndarray) -> np.ndarray:
        """``X @ V`` for V (m, k)."""
        return self._times(V, 0)

    def y_times(self, V: np.ndarray) -> np.ndarray:
        """``Y @ V`` for V (m, k)."""
        return self._times(V, 1)

    def xh_times(self, U: np.ndarray) -> np.ndarray:
        """``X^* @ U`` for U (n (d + 1), k)."""
        return self._adjoint_times(U, 0)

    def yh_times(self, U: np.ndarray) -> np.ndarray:
        """``Y^* @ U`` for U (n (d + 1), k)."""
        return self._adjoint_times(U, 1)

    def x_column_norms(self) -> np.ndarray:
        """``||X[:, t]||`` for every pair column, from the base snapshot norms."""
        out = []
        for traj, m in zip(self.trajs, self.pairs):
            # einsum: no temporary of the trajectory's size (memory-mapped data stay out of core)
            if np.iscomplexobj(traj):
                sq = np.einsum("ij,ij->i", traj.real, traj.real) + np.einsum(
                    "ij,ij->i", traj.imag, traj.imag
                )
            else:
                sq = np.einsum("ij,ij->i", traj, traj)
            out.append(sum((sq[j : j + m] for j in range(self.delays + 1)), np.zeros(m)))
        return np.sqrt(np.concatenate(out))


def _fix_signs(components: np.ndarray) -> np.ndarray:
    # Deterministic orientation: the largest-magnitude entry of each component is positive real.
    idx = np.argmax(np.abs(components), axis=0)
    phase = components[idx, np.arange(components.shape[1])]
    phase = phase / np.abs(phase)
    return components / phase if np.iscomplexobj(components) else components * np.sign(phase)


def _conj(a: np.ndarray) -> np.ndarray:
    # ndarray.conj() copies even real arrays; a view is enough (and keeps mapped data on disk)
    return a.conj() if np.iscomplexobj(a) else a
