"""Delays chosen from the data: held-out one-step prediction at the SVHT rank.

``koopman_spectrum(delays="auto")`` and the study pipeline call :func:`choose_delays`. For each
candidate number of delays ``d`` (the ladder :data:`DELAY_LADDER`, capped so that every trajectory
keeps three quarters of its records as snapshot pairs), the trajectories are split into two folds
(alternate trajectories; one trajectory is cut into halves), a reduced-rank regression of the next
observation ``x_{t+d+1}`` on the delay vector ``[x_t; ...; x_{t+d}]`` is fitted on one fold at the
SVHT rank of that fold's delay matrix (:func:`conjugacy.dmd.svht_rank`; exactly the newest block of
the projected DMD operator's one-step prediction) and scored on the other. The score is the
held-out squared error relative to persistence (``x_{t+d+1} ~ x_{t+d}``), pooled over the two
folds. The choice is the **smallest** ``d`` whose score is within ``slack`` (2 %) of the best
(where no candidate beats persistence, the smallest candidate, with a note): more delays than
the data need add noise directions to the spectrum (measured in
``benchmarks/bench_settings.py``: on linear latent systems seen through 3 channels, fewer delays
separated systems better than the paper's 8 whenever the system was observable with them).
With ``seeds=`` (the independent seed of each trajectory; ``conjugacy analyze`` passes its
pilots of the first three seeds of a condition) each seed is scored on its own and a candidate's
error is the geometric mean over the seeds: one seed's choice moves with the seed, and one seed
whose folds predict each other badly would drown the others in an arithmetic mean.

Where the delay vectors are long (``2 n (d + 1) > n_snap``, weight trajectories) everything comes
from one snapshot Gram (``G[s, t] = x_s^* x_t``, one pass over the data): per candidate, the delay
snapshots' Gram is a sum of ``d + 1`` shifted blocks of ``G``, the fold's singular values and
vectors come from its eigendecomposition, and the held-out error is a trace of Gram blocks. Cost:
``n_snap^2 n / 2`` for ``G``, then per candidate ``(d + 1) n_snap^2`` adds and two symmetric
eigendecompositions of ``n_snap / 2``; memory ``O(n_snap^2)``. Short delay vectors (few
features) use the explicit delay matrices and their thin SVD instead (the same numbers, to
rounding). Measured in BENCHMARKS.md ("Settings from data").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._checks import check_int, check_positive_float
from .dmd import capped_svht, svht_rank, top_eigh
from .observables import _delay_snapshot_gram, snapshot_gram
from .threads import blas_threads
from .trajectories import TrajectoriesLike, as_trajectory_list

__all__ = ["DELAY_LADDER", "DelayChoice", "choose_delays"]

#: The candidate numbers of delays (the paper uses 8 to 64; finer steps where the choice matters).
DELAY_LADDER = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
#: A candidate within this relative margin of the best held-out error counts as equally good.
PREDICTION_SLACK = 0.02


@dataclass(frozen=True)
class DelayChoice:
    """The delays :func:`choose_delays` chose, with the evidence.

    Attributes
    ----------
    delays : int
        The choice.
    candidates : tuple of int
        The candidates scored (the ladder, capped by the trajectories' length).
    errors : tuple of float
        Held-out one-step prediction error of each candidate relative to persistence
        (dimensionless; below 1 predicts better than "nothing changes").
    ranks : tuple of int
        SVHT rank of each candidate's delay matrix (the larger of the two folds'; at most
        ``max_rank`` when given).
    reason : str
        One sentence: the rule, the winner and its error.
    notes : tuple of str
        Where the rule does not settle the choice: no candidate predicts better than
        persistence (then the fewest delays are taken), or the choice is the largest candidate
        (more delays might predict better still). ``conjugacy analyze`` shows them as warnings.

    Examples
    --------
    Returned by :func:`choose_delays`; its JSON form is kept in a spectrum's settings:

    >>> c = DelayChoice(2, (1, 2), (0.9, 0.5), (1, 2), "the lowest error: delays 2 (0.5)")
    >>> d = c.as_dict()
    >>> d["rule"], d["delays"], d["svht_ranks"]
    ('prediction', 2, [1, 2])
    """

    delays: int
    candidates: tuple[int, ...]
    errors: tuple[float, ...]
    ranks: tuple[int, ...]
    reason: str
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``Spectrum.settings["delays_rule"]``)."""
        return {"rule": "prediction", "delays": self.delays, "candidates": list(self.candidates),
                "errors": list(self.errors), "svht_ranks": list(self.ranks),
                "slack": PREDICTION_SLACK, "reason": self.reason,
                "notes": list(self.notes)}


def choose_delays(
    trajectories: TrajectoriesLike,
    *,
    max_delays: int | None = None,
    slack: float = PREDICTION_SLACK,
    max_rank: int | None = None,
    threads: Any = "auto",
    seeds: Sequence[Any] | None = None,
) -> DelayChoice:
    """The smallest number of delays whose held-out one-step prediction (at the SVHT rank) is
    within ``slack`` of the best (module docstring).

    Parameters
    ----------
    trajectories : array (n_trajectories, n_steps, n_features), (n_steps, n_features) or a list
        of (n_steps_i, n_features) arrays, in memory
        At least two trajectories, or one of at least 12 steps (cut into two halves).
    max_delays : int, optional
        Largest candidate (default 64, the paper's largest); every trajectory (each half of a
        single one) also keeps three quarters of its records as pairs: ``d <= (T - 2) // 4``.
    slack : float
        Relative margin within which a smaller ``d`` is preferred to the best.
    max_rank : int, optional
        Fit each fold at ``min(SVHT rank, max_rank)``: the rank a comparison will use when its
        rank is capped (``conjugacy analyze``); then only the leading ``max_rank`` singular
        vectors are computed (:func:`conjugacy.dmd.capped_svht`). Default: the SVHT rank.
    threads : "auto", int or None
        BLAS threads for the scoring (:func:`conjugacy.threads.blas_threads`, as in
        :func:`conjugacy.spectrum.koopman_spectrum`): "auto" uses the cores the load leaves
        free; one delay pilot took 3.1-3.9 s CPU at one thread and 25.5-55.5 s at two on a
        loaded 2-core machine (BENCHMARKS.md).
    seeds : sequence, optional
        The independent seed of each trajectory (hashable labels, equal labels one seed). Each
        seed's trajectories are scored on their own (two folds of its alternate trajectories; a
        seed with one trajectory is cut into halves) and a candidate's error is the geometric
        mean over seeds of its error relative to persistence (its SVHT rank the largest); a
        seed that does not change is left out with a note, and a candidate some seed cannot
        score is not chosen. A choice that rests on one seed moves with it: on issue 25's
        first-hour CNNs the pilots of single seeds chose 64, 0, 1, 2, 1, 1, 64 and 1 delays,
        three consecutive seeds at a time 1 or 2 (BENCHMARKS.md "The delay rule on three
        seeds").
        Default: one seed (all trajectories together).

    Returns
    -------
    DelayChoice

    Raises
    ------
    ValueError
        Non-finite data, trajectories too short for one delay, or an argument out of range
        (``threads`` included).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> z = np.zeros((6, 80, 2))  # a noisy rotation, seen through its first coordinate
    >>> z[:, 0] = rng.standard_normal((6, 2))
    >>> rot = np.array([[np.cos(0.4), -np.sin(0.4)], [np.sin(0.4), np.cos(0.4)]]) * 0.98
    >>> for t in range(79):
    ...     z[:, t + 1] = z[:, t] @ rot.T + 0.05 * rng.standard_normal((6, 2))
    >>> choice = choose_delays(z[:, :, :1])
    >>> choice.delays, choice.ranks[:5]  # SVHT needs several delay rows to see the rank-2 signal
    (3, (1, 1, 1, 2, 2))
    """
    trajs = [np.asarray(t, dtype=np.result_type(t.dtype, np.float64))
             for t in as_trajectory_list(trajectories)]
    slack = check_positive_float(slack, "slack")
    cap = 64 if max_delays is None else check_int(max_delays, "max_delays", minimum=0)
    top = None if max_rank is None else check_int(max_rank, "max_rank", minimum=1)
    groups = _seed_groups(trajs, seeds)
    shortest = min(t.shape[0] for g in groups for t in g)
    cap = min(cap, (shortest - 2) // 4)
    if cap < 1:
        raise ValueError(
            f"trajectories: the shortest (half) trajectory has {shortest} steps; choosing delays "
            "needs at least 6 per trajectory (12 for a single one); give delays= instead")
    candidates = tuple(d for d in DELAY_LADDER if d <= cap)
    with blas_threads(threads):
        scored = [_score_candidates(g, candidates, top) for g in groups]
    errors, left_out = _seed_mean(np.array([sc[0] for sc in scored], dtype=float))
    ranks = [int(r) for r in np.max([sc[1] for sc in scored], axis=0)]
    e = np.array(errors)
    if not np.isfinite(e).any():  # e.g. constant (all-zero) trajectories: nothing to predict
        raise ValueError("trajectories do not change (constant, e.g. all zero): no held-out "
                         "prediction error to choose delays from; check what was recorded, or "
                         "give delays= instead")
    best = float(np.nanmin(e))
    notes: list[str] = [] if not left_out else [
        f"{len(left_out)} of {len(groups)} seeds do not change (no held-out error at any "
        f"candidate: seeds {left_out}, counted from 0 in the order given): left out of the mean"]
    if best >= 1.0:  # nothing beats "the next record equals this one": no evidence for delays
        pick = 0
        notes.append(
            f"no number of delays predicts the held-out next record better than persistence "
            f"(best error {best:.3g} relative to persistence, at "
            f"{candidates[int(np.nanargmin(e))]} delays; a random walk at this recording "
            f"interval looks like this): the fewest candidate delays, {candidates[0]}, are "
            "taken; the data do not settle the delays")
    else:
        pick = int(np.flatnonzero(e <= best * (1 + slack) + 1e-12)[0])
        if pick == len(candidates) - 1 and len(candidates) > 1:
            notes.append(
                f"the choice is the largest candidate ({candidates[pick]} delays, the cap): more "
                "delays might predict better still; the data do not settle the delays")
    d = candidates[pick]
    reason = (f"{d} delays: the fewest whose held-out one-step prediction at the SVHT rank "
              f"({ranks[pick]}) is within {slack:.0%} of the best of {list(candidates)}"
              + (f" (geometric mean over {len(groups) - len(left_out)} seeds)"
                 if len(groups) - len(left_out) > 1 else "") + " "
              f"(error {errors[pick]:.3g} relative to persistence; best {best:.3g} at "
              f"{candidates[int(np.nanargmin(e))]} delays)")
    if best >= 1.0:
        reason = (f"{d} delays: the fewest of {list(candidates)}, since none predicts the "
                  f"held-out next record better than persistence (best error {best:.3g})")
    return DelayChoice(d, candidates, tuple(float(x) for x in errors), tuple(ranks), reason,
                       tuple(notes))


def _seed_mean(errors: np.ndarray) -> tuple[list[float], list[int]]:
    """Per candidate, the geometric mean over seeds of ``errors`` (n_seeds, n_candidates), and
    the seeds left out because no candidate scored there (constant data). A candidate that some
    remaining seed could not score is NaN (not chosen): a mean over fewer seeds would not be
    comparable with its neighbours'. The geometric mean counts each seed's relative
    improvements alike, so one seed whose folds predict each other badly (errors 7-20 times
    persistence) does not drown the others' (0.05-0.08)."""
    scored = np.isfinite(errors).any(axis=1)
    left_out = [int(i) for i in np.flatnonzero(~scored)]
    kept = errors[scored]
    if kept.size == 0:
        return [float("nan")] * errors.shape[1], left_out
    with np.errstate(divide="ignore"):
        logs = np.log(np.maximum(kept, 0.0))  # an error of 0 (exact prediction): -inf, mean 0
    return [float(x) for x in np.exp(logs.mean(axis=0))], left_out


def _seed_groups(trajs: list[np.ndarray], seeds: Sequence[Any] | None) -> list[list[np.ndarray]]:
    """The trajectories of each seed, in first-seen order (one group without ``seeds``); a
    group of one trajectory cut into halves (two folds)."""
    if seeds is None:
        seeds = [0] * len(trajs)
    elif len(seeds) != len(trajs):
        raise ValueError(f"seeds: one per trajectory, got {len(seeds)} for {len(trajs)} "
                         "trajectories")
    groups: dict[Any, list[np.ndarray]] = {}
    for t, s in zip(trajs, seeds):
        groups.setdefault(s, []).append(t)
    return [g if len(g) > 1 else [g[0][: g[0].shape[0] // 2],
                                  g[0][g[0].shape[0] // 2 : 2 * (g[0].shape[0] // 2)]]
            for g in groups.values()]


def _score_candidates(trajs: list[np.ndarray], candidates: tuple[int, ...],
                      max_rank: int | None) -> tuple[list[float], list[int]]:
    """Held-out error and SVHT rank of each candidate (:func:`_prediction_error` or, for short
    delay vectors, :func:`_prediction_error_direct`); two folds of alternate trajectories."""
    folds = np.arange(len(trajs)) % 2
    n, n_snap = trajs[0].shape[1], sum(t.shape[0] for t in trajs)
    gram = offsets = H = None
    errors, ranks = [], []
    for d in candidates:
        if 2 * n * (d + 1) <= n_snap:  # few observables: the explicit delay matrices are cheaper
            err, rank = _prediction_error_direct(trajs, d, folds, max_rank)
        else:
            if gram is None:
                gram, offsets = snapshot_gram(trajs)
            H = (d, _delay_snapshot_gram(gram, offsets, d)) if H is None else _longer_delays(
                gram, offsets, H, d)
            err, rank = _prediction_error(gram, offsets, d, folds, n, max_rank, H)
        errors.append(err)
        ranks.append(rank)
    return errors, ranks


def _longer_delays(gram: np.ndarray, offsets: np.ndarray, H: tuple[int, np.ndarray], d: int
                   ) -> tuple[int, np.ndarray]:
    """``(d, the delay snapshots' Gram at d delays)`` from ``H = (d_prev, its Gram)``, d >=
    d_prev: each block of the shorter runs of delay vectors plus the shifted snapshot-Gram blocks
    ``d_prev + 1 .. d`` (the candidates' ladder adds 65 blocks instead of 233 per seed), added
    in the order :func:`~conjugacy.observables._delay_snapshot_gram` adds them, so the same
    numbers bit for bit."""
    d_prev, prev = H
    lengths = np.diff(offsets)
    if len(lengths) > 32:  # many short runs: that function's gathers
        return d, _delay_snapshot_gram(gram, offsets, d)
    p_off = np.cumsum([0] + [int(n - d_prev) for n in lengths])
    h_off = np.cumsum([0] + [int(n - d) for n in lengths])
    out = np.empty((int(h_off[-1]), int(h_off[-1])), dtype=prev.dtype)
    for a, (oa, la) in enumerate(zip(offsets[:-1], lengths - d)):
        for b, (ob, lb) in enumerate(zip(offsets[:-1], lengths - d)):
            block = out[h_off[a] : h_off[a] + la, h_off[b] : h_off[b] + lb]
            block[...] = prev[p_off[a] : p_off[a] + la, p_off[b] : p_off[b] + lb]
            for j in range(d_prev + 1, d + 1):
                block += gram[oa + j : oa + j + la, ob + j : ob + j + lb]
    return d, out


def _prediction_error_direct(trajs: list[np.ndarray], d: int, folds: np.ndarray,
                             max_rank: int | None = None) -> tuple[float, int]:
    """:func:`_prediction_error` from explicit delay matrices (thin SVD of the training fold's),
    the cheaper route when the delay vectors are short (``n (d + 1)`` below the pairs)."""
    from .observables import delay_embed

    n, num, den, top = trajs[0].shape[1], 0.0, 0.0, 0
    for f in (0, 1):
        train = [t for t, g in zip(trajs, folds) if g != f]
        test = [t for t, g in zip(trajs, folds) if g == f]
        if not train or not test:
            continue
        x, y = delay_embed(train, d)
        xt, yt = delay_embed(test, d)
        u, s, vh = np.linalg.svd(x, full_matrices=False)
        k = min(max(1, svht_rank(s, x.shape)[0]), max_rank or s.size) if s[0] > 0 else 0
        top = max(top, k)
        pred = ((y[-n:] @ vh[:k].conj().T) / s[:k]) @ (u[:, :k].conj().T @ xt)
        num += float(np.sum(np.abs(yt[-n:] - pred) ** 2))
        den += float(np.sum(np.abs(yt[-n:] - xt[-n:]) ** 2))
    return (num / den if den > 0 else float("nan")), top


def _prediction_error(gram: np.ndarray, offsets: np.ndarray, d: int, folds: np.ndarray,
                      n_features: int, max_rank: int | None = None,
                      delay_gram: tuple[int, np.ndarray] | None = None) -> tuple[float, int]:
    """Held-out error (relative to persistence, pooled over the two folds) of predicting
    ``x_{t+d+1}`` from the delay vector at ``t`` by reduced-rank regression at the SVHT rank,
    from the snapshot Gram (and the delay snapshots' Gram at ``d``, ``(d, H)``, when already
    formed); and the larger SVHT rank of the two folds."""
    H = _delay_snapshot_gram(gram, offsets, d) if delay_gram is None else delay_gram[1]
    lengths = np.diff(offsets)
    h_start = np.cumsum([0] + [int(n - d) for n in lengths])
    xi, zi, pi, fold = [], [], [], []
    for i, (o, n) in enumerate(zip(offsets[:-1], lengths)):
        t = np.arange(int(n) - d - 1)
        xi.append(h_start[i] + t)  # delay vector h_t
        zi.append(o + t + d + 1)  # target x_{t+d+1}
        pi.append(o + t + d)  # persistence x_{t+d}
        fold.append(np.full(t.size, folds[i]))
    xi, zi, pi, fold = (np.concatenate(a) for a in (xi, zi, pi, fold))
    num = den = 0.0
    top = 0
    for f in (0, 1):
        tr, te = fold != f, fold == f
        if not tr.any() or not te.any():
            continue
        h = np.ascontiguousarray(_block(H, xi[tr], xi[tr]))
        shape = (n_features * (d + 1), int(tr.sum()))
        if max_rank is None:
            evals, V = top_eigh(h, None)
            s = np.sqrt(np.maximum(evals, 0.0))
            k = max(1, svht_rank(s, shape)[0]) if s[0] > 0 else 0
        else:  # the leading max_rank eigenpairs; every eigenvalue only where they do not decide
            k, evals, V = capped_svht(h, shape, max_rank)
        del h
        top = max(top, k)
        # Z_hat = Z W, W = A B with A = V_k S_k^-2, B = V_k^* X^* X_test (the projected one-step
        # prediction); ||Z_test - Z W||^2 = tr(Z_t^* Z_t) - 2 Re tr(W^* Z^* Z_t) + tr(W^* Z^* Z W),
        # the last two as (k, m) and (k, k) products: W (m_train, m_test) is never formed
        zz = np.sum(gram[zi[te], zi[te]])  # traces: the diagonals alone, not the blocks
        base = float(np.real(zz - 2 * np.sum(gram[pi[te], zi[te]])
                             + np.sum(gram[pi[te], pi[te]])))
        fit = float(np.real(zz))
        if k:
            A = V[:, :k] / evals[:k]
            B = V[:, :k].conj().T @ _block(H, xi[tr], xi[te])
            ac = A.conj().T @ _block(gram, zi[tr], zi[te])  # A^* Z^* Z_t (k, m_test)
            aga = A.conj().T @ (_block(gram, zi[tr], zi[tr]) @ A)  # A^* Z^* Z A (k, k)
            fit += float(np.real(-2 * np.sum(B.conj() * ac)
                                 + np.sum(aga * (B @ B.conj().T).T)))
        num += max(fit, 0.0)
        den += base
    return (num / den if den > 0 else float("nan")), top


def _block(M: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``M[np.ix_(rows, cols)]``; a view where both index runs are contiguous (a fold of one
    trajectory: no copy of a block of the Gram)."""
    def run(idx: np.ndarray) -> Any:
        if idx.size and idx[-1] - idx[0] + 1 == idx.size and np.all(np.diff(idx) == 1):
            return slice(int(idx[0]), int(idx[-1]) + 1)
        return None

    r, c = run(rows), run(cols)
    if r is not None and c is not None:
        return M[r, c]
    return M[np.ix_(rows, cols)]
