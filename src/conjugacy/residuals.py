"""Residuals under SGD noise: the two-branch (stochastic) ResDMD estimator.

Under process noise (the regime of minibatch SGD) the single-sample ResDMD residual of a true
eigenpair tends to ``sqrt(1 - |lambda|^2)`` once the noise dominates: it then says nothing about
an eigenpair beyond its modulus (SPEC section 9). Stochastic ResDMD (Colbrook, Li, Raut and
Townsend, "Beyond expectations: residual dynamic mode decomposition and variance for stochastic
dynamical systems", Nonlinear Dyn. 2024, arXiv 2308.10697) separates the two parts of that
residual with a *second, independent* next state ``y'`` of every snapshot ``x`` (for SGD: one more
minibatch step from the same weights on an independently drawn batch). With the dictionary
``psi(x) = U_k^* x`` of the fit (its top-k left singular subspace) and ``M`` snapshot pairs,

    G = PX* PX / M,   A = PX* (PY1 + PY2) / (2M),
    L = (PY1* PY1 + PY2* PY2) / (2M),   H = (PY1* PY2 + PY2* PY1) / (2M),

and for an eigenpair ``(lambda, g)`` (eigenfunction ``phi = g* psi``)

* projection residual (with H): ``sqrt(|g*(H - lambda A* - conj(lambda) A + |lambda|^2 G) g| /
  g* G g)``, the projection error alone: ~0 for a true eigenpair whatever the noise;
* variance residual (with L): the same with L, projection error plus the variance of the next
  state (what ``Spectrum.data_residuals`` estimates from one branch);
* noise fraction: ``(variance^2 - projection^2) / (E|phi(y)|^2 / E|phi(x)|^2)``, the share of
  the eigenfunction's next-step size that is noise: ~1 for a direction that only carries noise.

Both quadratic forms are evaluated on the eigenfunction's values along the data
(``a = phi(Y1) - lambda phi(X)``, ``b = phi(Y2) - lambda phi(X)``: the H form is ``Re<a, b>``, the
L form ``(|a|^2 + |b|^2) / 2``), never by subtracting Grams, so no cancellation limits them.

The dictionary is the fit's: the top ``rank`` left singular vectors of the same
(delay-embedded, PCA-projected) snapshot matrix, in float64, by the engine's two routes: when the
lifted features outnumber the snapshot pairs, from the snapshot Grams (the Gram path:
:func:`conjugacy.observables.snapshot_gram`, :func:`~conjugacy.observables.delay_grams`,
:func:`conjugacy.dmd.top_eigh`, plus one cross Gram of the trajectory and its branch), kept only
while its implied error ``eps (s_1/s_k)^2`` meets the engine's Gram target (1e-8,
:func:`conjugacy.spectrum_paths.gram_trusted`); otherwise (or then) by a thin SVD of the delay
matrices (the dense path). The eigenvalues of the Rayleigh quotient ``U_k^* Y1 V_k S_k^-1`` are
the spectrum's Ritz values, matched to them one to one (the largest mismatch is reported).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import scipy.linalg
import scipy.optimize

from .compare import as_eigenvalues
from .dmd import top_eigh
from .observables import (
    check_delays,
    delay_embed,
    delay_grams,
    fit_pca_validated,
    n_pairs,
    pooled_view,
    snapshot_gram,
)
from .spectrum_paths import gram_trusted, input_eps
from .trajectories import OneTrajectoryWarning, TrajectoriesLike, as_trajectory_list

__all__ = ["BRANCH_FILTER", "BranchResiduals", "branch_keep", "two_branch_residuals"]

#: The rule :meth:`conjugacy.Spectrum.filtered` applies without arguments when the spectrum
#: carries two-branch residuals: keep an eigenpair whose projection residual is at most
#: ``max_projection`` and whose noise fraction is at most ``max_noise_fraction`` (a conjugate pair
#: by the larger value of its two members). Chosen by measurement (docs/comparing.md, "Residuals
#: under SGD noise"): on a 6-eigenvalue system with process noise sigma 0.02-0.8 the filtered
#: spectrum was W1 0.003-0.020 from the truth (the issue's 0.1 / 0.5: 0.003-0.32, dropping true
#: modes of |lambda| <= 0.7, whose noise fraction is ``1 - |lambda|^2`` once noise dominates).
BRANCH_FILTER = {"rule": "two-branch", "max_projection": 0.2, "max_noise_fraction": 0.9}

#: the delay matrices of the dense two-branch computation (X, Y1, Y2 in float64) above which it
#: refuses and asks for ``pca=``
MAX_BRANCH_BYTES = 2 * 2**30


@dataclass(frozen=True)
class BranchResiduals:
    """Per-eigenpair residuals of the two-branch estimator (all dimensionless, shape (rank,)).

    Attributes
    ----------
    projection : ndarray float (rank,)
        Projection-error residual (the H form): ~0 for an eigenpair the data support.
    variance : ndarray float (rank,)
        Projection error plus next-state variance (the L form); equals the single-sample data
        residual in expectation.
    noise_fraction : ndarray float (rank,)
        ``(variance^2 - projection^2) / (E|phi(y)|^2 / E|phi(x)|^2)``: ~1 for a noise direction.
    settings : dict
        ``estimator``, ``n_pairs``, ``input_eps``, ``eigenvalue_mismatch`` (largest distance
        between a spectrum eigenvalue and its match in this dictionary, relative to the largest
        modulus), ``path`` (``"gram"`` or ``"dense"``, the route of the dictionary), ``notes``.

    Examples
    --------
    Returned by :func:`two_branch_residuals` (and kept on a spectrum fitted with
    ``next_states=``); built directly here:

    >>> import numpy as np
    >>> r = BranchResiduals(np.array([0.06, 0.13]), np.array([0.39, 0.84]), np.array([0.15, 0.74]))
    >>> r.projection <= r.variance
    array([ True,  True])
    """

    projection: np.ndarray
    variance: np.ndarray
    noise_fraction: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)


def _branch_snapshots(
    trajs: list[np.ndarray], nexts: list[np.ndarray], delays: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """X, Y1 and Y2 (n_obs, m): Y2 is Y1 with its newest block replaced by the branch state.

    With ``h_t = [x_t; ...; x_{t+d}]`` the successor ``h_{t+1}`` is random only in its newest
    block ``x_{t+d+1}``; its second draw is the branch taken from ``x_{t+d}``, ``nexts[t+d]``.
    """
    X, Y1 = delay_embed(trajs, delays)
    n = trajs[0].shape[1]
    Y2 = Y1.copy()
    Y2[delays * n :] = np.concatenate([b[delays:-1] for b in nexts], axis=0).T
    return X, Y1, Y2


def _check_next_states(trajs: list[np.ndarray], next_states: TrajectoriesLike) -> list[np.ndarray]:
    nexts = as_trajectory_list(next_states, name="next_states")
    if len(nexts) != len(trajs) or any(a.shape != b.shape for a, b in zip(nexts, trajs)):
        raise ValueError(
            f"next_states must have the shape of the trajectories (one branch state per recorded "
            f"step: {[t.shape for t in trajs]}), got {[b.shape for b in nexts]}; record them "
            "with Recorder(branch=...) or train_replicas(branch_batches=...)"
        )
    return nexts


def two_branch_residuals(
    trajectories: TrajectoriesLike,
    next_states: TrajectoriesLike,
    eigenvalues: np.ndarray,
    *,
    delays: int = 0,
    pca: int | None = None,
    pca_center: bool = True,
) -> BranchResiduals:
    """Stochastic ResDMD residuals of given eigenvalues from two independent next states.

    Parameters
    ----------
    trajectories : array (n_trajectories, n_steps, n_features) or list of (n_steps_i, n_features)
        The recorded training trajectory (as given to :func:`conjugacy.koopman_spectrum`).
    next_states : same shape as ``trajectories``
        ``next_states[i][t]``: the state reached from ``trajectories[i][t]`` by the recorded
        stride of training on independently drawn batches (the *branch*; for a record every
        step: one extra minibatch step). The last step's branch and, with delays ``d``, the
        first ``d`` steps' are not used.
    eigenvalues : complex (rank,)
        The spectrum's eigenvalues (``Spectrum.eigenvalues``), finite, read by
        :func:`conjugacy.compare.as_eigenvalues` (none: empty residuals); ``rank`` is the
        dictionary size.
    delays, pca, pca_center
        As for :func:`conjugacy.koopman_spectrum` (the same lifted observables).

    Returns
    -------
    BranchResiduals
        One entry per eigenvalue, in the order given.

    Raises
    ------
    ValueError
        ``next_states`` not of the trajectories' shape, non-finite, ``eigenvalues`` not 1-D or
        not finite, or the delay matrices larger than 2 GiB (give ``pca=``).

    Examples
    --------
    ``x' = diag(0.9, 0.5) x + noise``, fully observed: small projection residuals, variance
    residuals near ``sqrt(1 - |lambda|^2)``, noise fractions near ``1 - |lambda|^2``.

    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> rng = np.random.default_rng(0)
    >>> x = np.zeros((1, 400, 2)); nxt = np.zeros_like(x); a = np.diag([0.9, 0.5])
    >>> for t in range(399):
    ...     nxt[0, t] = a @ x[0, t] + 0.1 * rng.standard_normal(2)
    ...     x[0, t + 1] = a @ x[0, t] + 0.1 * rng.standard_normal(2)
    >>> s = koopman_spectrum(x, rank=2)
    >>> r = two_branch_residuals(x, nxt, s.eigenvalues)
    >>> s.eigenvalues.real.round(2), r.projection.round(2), r.variance.round(2)
    (array([0.92, 0.51]), array([0.06, 0.13]), array([0.39, 0.84]))
    >>> r.noise_fraction.round(2)
    array([0.15, 0.74])
    """
    if hasattr(trajectories, "blocks") or hasattr(next_states, "blocks"):
        raise TypeError(
            "next_states: the two-branch residuals need in-memory trajectories, not a streamed "
            "store source: read both with TrajectoryStore.read(params, runs) and "
            "read(params, runs, branch='next')"
        )
    trajs = as_trajectory_list(trajectories)
    delays = check_delays(trajs, delays)
    nexts = _check_next_states(trajs, next_states)
    lam = as_eigenvalues(eigenvalues, "eigenvalues", allow_empty=True)
    eps = input_eps(trajectories)
    if pca is not None:
        proj = fit_pca_validated(trajs, pca, center=pca_center)
        trajs, nexts = proj.transform(trajs), proj.transform(nexts)
    n_obs = trajs[0].shape[1] * (delays + 1)
    m = n_pairs(trajs, delays)
    settings: dict[str, Any] = {"estimator": "stochastic ResDMD (Colbrook, Li, Raut, Townsend "
                                "2024), two branches", "n_pairs": m, "input_eps": eps,
                                "eigenvalue_mismatch": 0.0, "path": None, "notes": []}
    if lam.size == 0:
        empty = np.zeros(0)
        return BranchResiduals(empty, empty, empty, settings)
    projected = None
    if n_obs > m:
        projected = _gram_projections(trajs, nexts, delays, lam.size, settings["notes"])
        settings["path"] = "gram"
    if projected is None:
        if 3 * n_obs * m * 16 > MAX_BRANCH_BYTES:
            raise ValueError(
                f"next_states: the two-branch residuals build three {n_obs} x {m} delay "
                f"matrices (> {MAX_BRANCH_BYTES / 2**30:.0f} GiB); give pca= (e.g. pca=100) or "
                "fewer delays"
            )
        projected = _dense_projections(*_branch_snapshots(trajs, nexts, delays), lam.size)
        settings["path"] = "dense"
    phi_x, phi_y1, phi_y2, mismatch = _eigenfunction_values(*projected, lam)
    settings["eigenvalue_mismatch"] = mismatch
    if mismatch > 1e-6:
        settings["notes"].append(
            f"the eigenvalues given differ from this dictionary's by up to {mismatch:.1e} "
            "(relative): they were not fitted on these data, delays and pca at this rank"
        )
    projection, variance, fraction = _forms(phi_x, phi_y1, phi_y2, lam)
    return BranchResiduals(projection, variance, fraction, settings)


def _dense_projections(
    X: np.ndarray, Y1: np.ndarray, Y2: np.ndarray, k: int
) -> tuple[np.ndarray, ...]:
    """``U_k^* X``, ``U_k^* Y1``, ``U_k^* Y2`` (k, m) and the Rayleigh quotient (k, k) of the
    top-k dictionary of X, by a thin SVD (the dense path)."""
    U, s, Vh = np.linalg.svd(X, full_matrices=False)
    if k > s.size:
        raise ValueError(f"eigenvalues: {k} given but the data have only {s.size} directions")
    Uk, sk, Vk = U[:, :k], s[:k], Vh[:k].conj().T
    py1 = Uk.conj().T @ Y1
    return sk[:, None] * Vk.conj().T, py1, Uk.conj().T @ Y2, (py1 @ Vk) / sk[None, :]


def _gram_projections(
    trajs: list[np.ndarray], nexts: list[np.ndarray], delays: int, k: int, notes: list[str]
) -> tuple[np.ndarray, ...] | None:
    """:func:`_dense_projections` from snapshot Grams (many features, few snapshots), or None
    when the Gram cannot resolve the k-th singular value (the engine's rule,
    :func:`conjugacy.spectrum_paths.gram_trusted`, which adds its reason to ``notes``).

    ``X^* Y2 = X^* Y1 + X^* E``: ``E`` is nonzero only in the newest block, where column j holds
    ``b_l - x_{l+1}`` (``l`` the base index of ``x_{t+d}``), so ``X^* E = C[l', l] - G[l', l+1]``
    with ``G`` the snapshot Gram and ``C`` the cross Gram of the snapshots and the branch.
    """
    gram, offsets = snapshot_gram(trajs)
    main, branch = pooled_view(trajs), pooled_view(nexts)
    main = np.concatenate(trajs) if main is None else main
    branch = np.concatenate(nexts) if branch is None else branch
    cross = main.conj() @ branch.T
    last = np.concatenate([np.arange(o + delays, o + n - 1)
                           for o, n in zip(offsets[:-1], np.diff(offsets))])
    gxx, gxy, _ = delay_grams(gram, offsets, delays)
    evals, V = top_eigh(gxx, k)
    if k > evals.size or evals[k - 1] <= 0:
        return None
    s = np.sqrt(evals[:k])
    if not gram_trusted(SimpleNamespace(rank=k), float(s[-1] / s[0]), notes):
        return None  # as the engine's Gram path: recompute on the dense path
    vh = V[:, :k].conj().T
    xe = cross[np.ix_(last, last)] - gram[np.ix_(last, last + 1)]
    py1 = (vh @ gxy) / s[:, None]
    py2 = py1 + (vh @ xe) / s[:, None]
    return s[:, None] * vh, py1, py2, (py1 @ V[:, :k]) / s[None, :]


def _eigenfunction_values(
    px: np.ndarray, py1: np.ndarray, py2: np.ndarray, S: np.ndarray, lam: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """``phi_i`` along X, Y1, Y2 (k, m) for the eigenfunctions of the k given eigenvalues in the
    dictionary (its projections ``px``, ``py1``, ``py2`` and Rayleigh quotient ``S``), and the
    largest relative eigenvalue mismatch."""
    k = lam.size
    mu, left = scipy.linalg.eig(S, left=True, right=False)
    cost = np.abs(lam[:, None] - mu[None, :])
    rows, cols = scipy.optimize.linear_sum_assignment(cost)
    order = cols[np.argsort(rows)]
    scale = max(float(np.abs(lam).max()), np.finfo(float).tiny)
    mismatch = float(cost[np.arange(k), order].max()) / scale
    lh = left[:, order].conj().T  # rows l_i^*: phi_i(x) = l_i^* U_k^* x
    return lh @ px, lh @ py1, lh @ py2, mismatch


def _forms(
    phi_x: np.ndarray, phi_y1: np.ndarray, phi_y2: np.ndarray, lam: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Projection residual, variance residual and noise fraction from the eigenfunctions'
    values (each (k, m)); see the module docstring."""
    a = phi_y1 - lam[:, None] * phi_x
    b = phi_y2 - lam[:, None] * phi_x
    gx = np.sum(np.abs(phi_x) ** 2, axis=1)
    h_form = np.abs(np.real(np.sum(np.conj(a) * b, axis=1)))
    l_form = (np.sum(np.abs(a) ** 2, axis=1) + np.sum(np.abs(b) ** 2, axis=1)) / 2
    gy = (np.sum(np.abs(phi_y1) ** 2, axis=1) + np.sum(np.abs(phi_y2) ** 2, axis=1)) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        projection = np.where(gx > 0, np.sqrt(h_form / np.where(gx > 0, gx, 1.0)), np.inf)
        variance = np.where(gx > 0, np.sqrt(l_form / np.where(gx > 0, gx, 1.0)), np.inf)
        # (l - h) / gy with l - h = |phi(Y1) - phi(Y2)|^2 / 2 when Re<a, b> >= 0
        fraction = np.where(gy > 0, (l_form - h_form) / np.where(gy > 0, gy, 1.0), 0.0)
    return projection, variance, np.clip(fraction, 0.0, None)


def branch_keep(
    projection: np.ndarray,
    noise_fraction: np.ndarray,
    partner: np.ndarray,
    rule: dict[str, Any] = BRANCH_FILTER,
) -> np.ndarray:
    """Mask of the eigenpairs :data:`BRANCH_FILTER` keeps (a conjugate pair by its worse member;
    ``partner[i]`` is the index of eigenvalue i's conjugate partner, itself if unpaired).

    Parameters
    ----------
    projection, noise_fraction : ndarray float (rank,)
        :attr:`BranchResiduals.projection` and :attr:`BranchResiduals.noise_fraction`.
    partner : ndarray int (rank,)
        Index of each eigenvalue's conjugate partner (itself if real or unpaired).
    rule : dict, default :data:`BRANCH_FILTER`
        ``max_projection`` and ``max_noise_fraction``.

    Returns
    -------
    ndarray bool (rank,)
        True for the eigenpairs kept.

    Examples
    --------
    A conjugate pair (0, 1) whose second member is noise is dropped as a whole:

    >>> import numpy as np
    >>> branch_keep(np.array([0.05, 0.05, 0.1]), np.array([0.2, 0.95, 0.3]),
    ...             partner=np.array([1, 0, 2]))  # eigenvalues 0.5 + 0.5j, 0.5 - 0.5j, 0.9
    array([False, False,  True])
    """
    proj = np.maximum(projection, projection[partner])
    frac = np.maximum(noise_fraction, noise_fraction[partner])
    return (proj <= rule["max_projection"]) & (frac <= rule["max_noise_fraction"])


#: W1 to the truth (10th-90th percentile) of the eigenvalues of linear systems with 2/4/6
#: eigenvalues seen through 3 channels, 8 delays, rank 10, process noise 0.1-0.3, measured in
#: docs/comparing.md ("Residuals under SGD noise"; the issue's estimators: 0.17-0.38)
DELAY_BIAS_W1 = (0.19, 0.62)


def with_branch(
    spectrum: Any,
    trajectories: TrajectoriesLike,
    next_states: TrajectoriesLike,
    *,
    delays: int,
    pca: int | None,
    pca_center: bool,
) -> Any:
    """``spectrum`` with its two-branch residuals (:func:`two_branch_residuals`) attached.

    Used by :func:`conjugacy.koopman_spectrum` (``next_states=``): returns a new
    :class:`conjugacy.Spectrum` with ``projection_residuals``, ``variance_residuals`` and
    ``noise_fractions`` set, ``settings["branch"]`` describing the estimator, and a note in
    ``settings["notes"]`` when delays are used on noisy data (:func:`delay_noise_note`).
    """
    import dataclasses
    import warnings

    with warnings.catch_warnings():
        # koopman_spectrum has said already how a 2-D array is read
        warnings.simplefilter("ignore", OneTrajectoryWarning)
        r = two_branch_residuals(
            trajectories, next_states, spectrum.eigenvalues, delays=delays, pca=pca,
            pca_center=pca_center,
        )
    settings = dict(spectrum.settings)
    notes = list(dict.fromkeys([*settings.get("notes", []), *r.settings["notes"]]))
    note = delay_noise_note(delays, r.noise_fraction, r.projection)
    if note:
        notes.append(note)
    settings["notes"] = notes
    settings["branch"] = {k: v for k, v in r.settings.items() if k != "notes"}
    return dataclasses.replace(
        spectrum, settings=settings, projection_residuals=r.projection,
        variance_residuals=r.variance, noise_fractions=r.noise_fraction,
    )


def delay_noise_note(
    delays: int, noise_fraction: np.ndarray, projection: np.ndarray | None = None
) -> str | None:
    """The warning for delays on noisy data, or None.

    Delays stand in for unobserved state; under process noise (SGD) the delay-embedded state of
    partially observed data is not Markov and the eigenvalues are biased (:data:`DELAY_BIAS_W1`).
    The noise is detected from the noise fractions (an eigenpair with a noise fraction above
    0.05: 5 % of its next-step size is noise); when moreover no eigenpair passes the projection
    test of :data:`BRANCH_FILTER`, the note says that the residuals reject every eigenpair.
    """
    if delays == 0 or noise_fraction.size == 0 or float(noise_fraction.max()) <= 0.05:
        return None
    lo, hi = DELAY_BIAS_W1
    note = (
        f"delays={delays} on noisy data (noise fraction up to {float(noise_fraction.max()):.2f}): "
        "if the recorded features do not observe the whole state (one layer of a network whose "
        f"other layers move), the eigenvalues may be biased: W1 {lo:.2f}-{hi:.2f} to the truth "
        "measured on partially observed linear systems under process noise with 8 delays; "
        "compare with fewer delays or record more of the state"
    )
    if projection is not None and projection.size and float(np.min(projection)) > \
            BRANCH_FILTER["max_projection"]:
        note += (
            f"; no eigenpair passes the projection test (smallest projection residual "
            f"{float(np.min(projection)):.2f} > {BRANCH_FILTER['max_projection']}): the "
            "delay-embedded state is not Markov under this noise"
        )
    return note
