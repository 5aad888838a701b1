"""How :func:`conjugacy.koopman_spectrum` computes a spectrum: the path choice and the paths.

The front door (:mod:`conjugacy.spectrum`) validates the arguments and turns the :class:`Fit` this
module returns into a :class:`~conjugacy.Spectrum`. Here live

- the path choice (:func:`auto_path`, by the cost model :func:`path_costs`) and the paths:
  ``"dense"`` (explicit delay matrices, after a
  QR compression when features outnumber snapshots), ``"gram"`` (sample-side Gram matrices, checked
  by :func:`gram_trusted` and recomputed on the dense path when they cannot resolve the kept
  singular values), ``"subspace"`` (structured subspace iteration) and the streamed Gram path for
  memory maps, dask arrays and store sources (:mod:`conjugacy.streaming`);
- the precision rule of the rank tolerance (:func:`input_eps`, :func:`source_eps`: float32 data
  are not read as float64 data);
- the finiteness and scale checks every route shares (NaN/Inf, squares that overflow or underflow
  float64), read off the snapshot Gram's diagonal where there is one;
- the settings, notes and warnings recorded with every spectrum (one place for every route).

It never builds a :class:`~conjugacy.Spectrum` and never warns: the front door does both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ._checks import check_int
from .dmd import (
    LANCZOS_MIN_SIZE,
    DMDResult,
    column_weights,
    dmd,
    dmd_at_ranks,
    dmd_from_factors,
    dmd_from_gram,
    dmd_from_gram_at_ranks,
    select_rank,
    svht_rank,
    top_eigh,
    with_rank_rule,
)
from .observables import (
    DelayOperator,
    check_delays,
    check_pca,
    delay_covariances,
    delay_embed,
    delay_gram_blocks,
    fit_pca_validated,
    n_pairs,
    pca_projections_from_gram,
    snapshot_gram,
)
from .streaming import (
    ArraySource,
    StreamedDelayOperator,
    as_source,
    available_memory,
    format_size,
    source_nbytes,
    streamed_gram,
)
from .trajectories import (
    TrajectoriesLike,
    as_trajectory_list,
    check_trajectories_finite,
    trajectory_labels,
)

PATHS = ("auto", "dense", "gram", "subspace", "covariance")
# Relative error the Gram path may imply (~eps (s_1/s_k)^2, the squared condition number) before the
# dense path is used instead: s_k/s_1 >= ~1.5e-4.
_GRAM_TARGET = 1e-8
_EPS64 = float(np.finfo(np.float64).eps)


@dataclass(frozen=True, eq=False)
class Fit:
    """A DMD result with what its :class:`~conjugacy.Spectrum` record needs.

    Attributes
    ----------
    result : DMDResult
    method : str
    residuals_informative : bool
        False when the rank equals the number of observables (see ``Spectrum``).
    settings : dict
        The settings recorded with the spectrum (delays, rank, tol, pca, path, sizes, notes, ...).
    rank_warnings : tuple of str
        Messages the front door raises as :class:`~conjugacy.RankWarning` (also in the notes).
    """

    result: DMDResult
    method: str
    residuals_informative: bool
    settings: dict[str, Any]
    rank_warnings: tuple[str, ...]


@dataclass(frozen=True)
class FitOptions:
    """The options of one front-door call, shared by every ``(delays, rank)`` it fits.

    Built once by :func:`conjugacy.spectrum.fit_options` from the keywords of
    :func:`conjugacy.koopman_spectrum` / :func:`conjugacy.koopman_spectra` after checking them
    (see their parameters: ``tol``, ``method``, ``pca``, ``pca_center``, ``scale``, ``modes``,
    ``path``, ``device``); every route of this module takes it instead of the keywords.
    """

    tol: float | None
    method: str
    pca: int | None
    pca_center: bool
    scale: bool
    modes: bool | str
    path: str
    device: str | None = None


# ----- the two routes ------------------------------------------------------------------------------
def fit(trajectories: TrajectoriesLike, delays: int, rank: int | str | None, opts: FitOptions
        ) -> Fit:
    """:func:`conjugacy.koopman_spectrum` on arguments it has validated (see its parameters)."""
    labels = eps_given = None
    source = as_source(trajectories)
    mapped = isinstance(source, ArraySource)  # memory-mapped arrays, read in place
    if source is not None or opts.device is not None:
        if source is None:
            source = ArraySource(as_trajectory_list(trajectories))
        done = _fit_streamed(source, delays, rank, opts)
        if done is not None:
            return done
        if not isinstance(source, ArraySource):
            eps_given = source_eps(source)  # the stored precision, not the float64 copy's
            trajectories = _materialize(source)  # dask or store data the path needs whole
            labels = getattr(source, "labels", None)  # e.g. a store's run names, for errors
            labels = ([f"{source.name} ({label})" for label in labels] if labels else
                      [f"{source.name}[{i}]" for i in range(len(trajectories))])
    # NaN/Inf: checked before the dense and subspace routes, and read off the snapshot Gram's
    # diagonal on the Gram routes (no separate pass over the data; located only on failure)
    eps, trajs, require_finite = _unchecked(trajectories, labels, eps_given)
    delays = check_delays(trajs, delays)
    trajs, require_finite, notes = _pca_coordinates(trajs, opts, require_finite)
    return _fit_ranks(trajs, delays, (rank,), opts, eps=eps, notes=notes,
                      require_finite=require_finite, mapped=mapped and opts.pca is None)[0]


def fit_from_gram(trajectories: TrajectoriesLike, gram: Any, delays: int,
                  rank: int | str | None, opts: FitOptions) -> Fit:
    """:func:`fit` on the Gram path (``opts.path == "gram"``, no PCA), the snapshot Gram of the
    in-memory ``trajectories`` given (checked by :func:`_given_gram`) instead of computed."""
    eps, trajs, require_finite = _unchecked(trajectories)
    delays = check_delays(trajs, delays)
    gram = _given_gram(gram, trajs, require_finite)
    return _fit_ranks(trajs, delays, (rank,), opts, eps=eps, notes=[], gram=gram)[0]


def fit_variants(trajectories: TrajectoriesLike, variants: list[tuple[int, int | str | None]],
                 opts: FitOptions) -> list[Fit]:
    """:func:`fit` of in-memory ``trajectories`` at each ``(delays, rank)`` of ``variants``,
    sharing what the fits share: the checks and the PCA coordinates (once), the snapshot Gram
    (once, when any of them takes the Gram path) and, at equal delays, one factorization of the
    delay matrix for all their ranks (:func:`_fit_ranks`). Each equals the fit alone to
    rounding, and records the path it took."""
    eps, trajs, require_finite = _unchecked(trajectories)
    by_delays: dict[int, list[int]] = {}
    for i, (d, _) in enumerate(variants):
        by_delays.setdefault(check_delays(trajs, d), []).append(i)
    trajs, require_finite, notes = _pca_coordinates(trajs, opts, require_finite)
    gram = None
    if opts.path == "gram" or (opts.path == "auto" and any(
            _takes_gram(trajs, d, tuple(variants[i][1] for i in idx))
            for d, idx in by_delays.items())):
        gram = snapshot_gram(trajs)[0]
        if require_finite is not None:
            require_finite(gram)
            require_finite = None
    out: dict[int, Fit] = {}  # variant index -> its fit
    for d, idx in by_delays.items():
        out.update(zip(idx, _fit_ranks(trajs, d, tuple(variants[i][1] for i in idx), opts,
                                       eps=eps, notes=notes, require_finite=require_finite,
                                       gram=gram)))
        require_finite = None  # checked by the first
    return [out[i] for i in range(len(variants))]


def _unchecked(trajectories: TrajectoriesLike, labels: list[str] | None = None,
               eps: float | None = None) -> tuple[float, list[np.ndarray], Any]:
    """The precision (``eps``, default :func:`input_eps`), the trajectories as a list and their
    finiteness check, deferred (:func:`_finiteness_check`; ``labels`` name them in its errors,
    default as :func:`conjugacy.trajectories.as_trajectory_list` does)."""
    trajs = as_trajectory_list(trajectories, finite=False)
    return (input_eps(trajectories) if eps is None else eps, trajs,
            _finiteness_check(trajs, labels or trajectory_labels(trajectories, len(trajs))))


def _takes_gram(trajs: list[np.ndarray], delays: int, ranks: tuple) -> bool:
    """Whether ``path="auto"`` takes the Gram path for these ranks at ``delays``."""
    n = trajs[0].shape[1]
    m, n_snap = n_pairs(trajs, delays), sum(t.shape[0] for t in trajs)
    for r in ranks:
        _check_rank(r, n * (delays + 1), m)
    itemsize = 16 if np.iscomplexobj(trajs[0]) else 8
    return auto_path(n, n * (delays + 1), m, n_snap, _widest(ranks), itemsize=itemsize) == "gram"


def _given_gram(gram: Any, trajs: list[np.ndarray], require_finite: Any) -> np.ndarray:
    """``gram`` as the snapshot Gram of ``trajs`` in their dtype, after checking its shape, its
    kind and its diagonal (the snapshots' squared norms: one pass over the data, far cheaper than
    the Gram) and the data's finiteness and scale."""
    if not isinstance(gram, np.ndarray) or gram.dtype == object or not (
        np.issubdtype(gram.dtype, np.number)
    ):
        raise TypeError(f"gram must be a numeric NumPy array, got {type(gram).__name__}")
    n_snap = sum(t.shape[0] for t in trajs)
    if gram.shape != (n_snap, n_snap):
        raise ValueError(
            f"gram must be the (n_snapshots, n_snapshots) = ({n_snap}, {n_snap}) snapshot Gram "
            f"G[s, t] = x_s^* x_t of the trajectories, got shape {gram.shape}"
        )
    if np.iscomplexobj(gram) and not np.iscomplexobj(trajs[0]):
        raise TypeError("gram is complex but the trajectories are real: give the real Gram")
    gram = gram.astype(trajs[0].dtype, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):
        norms = np.concatenate([np.einsum("ij,ij->i", t.conj(), t).real for t in trajs])
    if not np.isfinite(norms).all():
        require_finite()  # names the NaN/Inf, or says that the squares overflow
    diag = np.diagonal(gram).real
    with np.errstate(invalid="ignore"):
        off = np.abs(diag - norms) > 1e-6 * max(float(norms.max()), np.finfo(float).tiny)
    if off.any() or not np.isfinite(diag).all():
        s = int(np.flatnonzero(off | ~np.isfinite(diag))[0])
        raise ValueError(
            f"gram is not the snapshot Gram of these trajectories: G[{s}, {s}] = {diag[s]:.6g} "
            f"but snapshot {s} has squared norm {norms[s]:.6g} (snapshots in trajectory order)"
        )
    require_finite(gram)  # squares that underflow float64
    return gram


def _pca_coordinates(trajs: list[np.ndarray], opts: FitOptions, require_finite: Any
                     ) -> tuple[list[np.ndarray], Any, list[str]]:
    """The snapshots' coordinates on the top ``opts.pca`` principal components (the
    trajectories as they are without ``pca``), the finiteness check still to run (None after a
    projection: checked before it) and the notes."""
    pca, center, notes = opts.pca, opts.pca_center, []
    if pca is None:
        return trajs, require_finite, notes
    n_feat, n_snap = trajs[0].shape[1], sum(t.shape[0] for t in trajs)
    if n_feat > 2 * n_snap:
        # the coordinates from the snapshot Gram alone: no pass to form the components
        # and none to project on them (equal to fit_pca + transform up to signs)
        check_pca(pca, n_snap, n_feat, center)
        gram, offsets = snapshot_gram(trajs)
        require_finite(gram)
        return pca_projections_from_gram(gram, offsets, pca, center, notes), None, notes
    require_finite()
    return fit_pca_validated(trajs, pca, center=center).transform(trajs), None, notes


def _widest(ranks: tuple) -> int | str | None:
    """The rank whose computation serves every rank of ``ranks``: None (every singular value,
    resolved) before ``"svht"`` (every singular value) before the largest int."""
    if None in ranks:
        return None
    return "svht" if "svht" in ranks else max(ranks)


def _fit_ranks(
    trajs: list[np.ndarray], delays: int, ranks: tuple, opts: FitOptions, *, eps: float,
    notes: list[str], require_finite: Any = None, gram: np.ndarray | None = None,
    mapped: bool = False,
) -> list[Fit]:
    """The fits of validated, in-memory trajectories (after the PCA, if any) at each rank of
    ``ranks`` (a tuple of rank arguments) from one factorization of the delay matrix, on the
    path the widest rank takes (:func:`_widest`); a rank whose Gram or covariance result is not
    trusted is recomputed on the dense path (so each equals the fit at that rank alone).
    ``notes`` are copied into each fit's; ``require_finite``: the NaN/Inf check still to do
    (see :func:`_finiteness_check`), or None; ``gram``: their snapshot Gram, if already
    computed (used on the Gram path); ``mapped``: memory-mapped data (for the path choice)."""
    tol, scale, method, path = opts.tol, opts.scale, opts.method, opts.path
    n, notes = trajs[0].shape[1], list(notes)
    n_obs, m, n_snap = n * (delays + 1), n_pairs(trajs, delays), sum(t.shape[0] for t in trajs)
    for r in ranks:
        _check_rank(r, n_obs, m)
    widest, itemsize = _widest(ranks), 16 if np.iscomplexobj(trajs[0]) else 8
    chosen = path
    if path == "auto":
        chosen = auto_path(n, n_obs, m, n_snap, widest, mapped=mapped, itemsize=itemsize)
    else:
        check_path_memory(chosen, n, n_obs, m, n_snap, widest, itemsize)
    modes = _want_modes(opts.modes, n_obs, widest, m, notes, path=chosen, n=n, n_snap=n_snap)
    notes_of = [list(notes) for _ in ranks]
    if chosen == "gram" and gram is None:
        gram = snapshot_gram(trajs)[0]
    if require_finite is not None:
        require_finite(gram if chosen == "gram" else None)
    zero = not np.any(np.diagonal(gram)) if chosen == "gram" else not any(np.any(t) for t in trajs)
    args = (trajs, delays, ranks, tol, scale, method, modes, not np.iscomplexobj(trajs[0]), eps)
    held, gram = [gram], None  # the Gram path frees it as soon as the delay Grams are formed
    # all-zero data (e.g. a frozen layer): no direction to fit, the same answer on every path
    results = ([_empty_result(n_obs, modes) for _ in ranks] if zero else
               _path_results(chosen, args, notes_of, held))
    if chosen == "subspace" and results[0] is None:
        # stalled (no gap after the kept values, e.g. a noise tail): the next cheapest path, not
        # the dense one (10 x 300 x 2,000 float32 at rank 10: 0.9 s against 7.5 s)
        chosen = auto_path(n, n_obs, m, n_snap, widest, mapped=mapped, itemsize=itemsize,
                           exclude=("subspace",))
        for note in notes_of:
            note.append("subspace iteration did not converge (no clear gap after the kept "
                        f"singular values); recomputed on the {chosen} path")
        results = _path_results(chosen, args, notes_of, held)
    again = [i for i, r in enumerate(results) if r is None]
    if again:
        redo = tuple(ranks[i] for i in again)
        for i, r in zip(again, _dense_path(trajs, delays, redo, tol, scale, method, modes,
                                           n_snap, eps)):
            results[i] = r
    return [_finish(
        result, opts, delays=delays, rank=r, eps=eps, path="dense" if i in again else chosen,
        n_trajectories=len(trajs), n_features=n, n_pairs=m, notes=note,
    ) for i, (result, r, note) in enumerate(zip(results, ranks, notes_of))]


def _path_results(path: str, args: tuple, notes_of: list[list[str]], held: list
                  ) -> list[DMDResult | None]:
    """The results of ``path`` at each rank (``args``: :func:`_fit_ranks`'s, the ranks third),
    None for a rank the dense path is to compute (every rank on the dense path, every rank when
    the subspace iteration stalls, a rank the Gram or covariance path cannot resolve); ``held``:
    ``[gram]``, the snapshot Gram or None (formed here for the Gram path; popped, so that the
    Gram path frees it)."""
    if path == "gram":
        if held[0] is None:
            held[0] = snapshot_gram(args[0])[0]
        return _gram_path(*args, held.pop(), notes_of)
    if path == "covariance":
        return _covariance_path(*args, notes_of)
    if path == "subspace":
        return _subspace_path(*args) or [None] * len(args[2])
    return [None] * len(args[2])


def _gram_path(trajs, delays, ranks, tol, scale, method, modes, real, eps, gram, notes_of
               ) -> list[DMDResult | None]:
    """The Gram path at each rank from the snapshot ``gram`` (None where
    :func:`gram_trusted` says the Gram cannot resolve that rank: the dense path then)."""
    offsets = np.cumsum([0] + [t.shape[0] for t in trajs])
    op = DelayOperator(trajs, delays)
    n_obs, m = op.shape
    found = dmd_from_gram_at_ranks(
        *delay_gram_blocks(gram, offsets, delays), ranks, method=method, tol=tol, scale=scale,
        shape=(n_obs, m), x_times=op.x_times if modes else None,
        y_times=op.y_times if modes else None, real=real, overwrite=True, eps=eps,
    )
    return [result if gram_trusted(result, resolution, note) else None
            for (result, resolution), note in zip(found, notes_of)]


def _empty_result(n_obs: int, modes: bool) -> DMDResult:
    result = dmd(np.zeros((n_obs, 0)), np.zeros((n_obs, 0)), modes=modes)
    return replace(result, data_residuals=np.zeros(0))


def _fit_streamed(source: Any, delays: int, rank: int | str | None, opts: FitOptions
                  ) -> Fit | None:
    """The spectrum of data streamed from ``source`` in one pass (see :mod:`conjugacy.streaming`),
    or None when the requested computation needs the data in memory (the dense or subspace path:
    ``rank=None`` without ``pca``, or features fewer than snapshots)."""
    delays = _check_source_delays(source, delays)
    pca, path, modes, device = opts.pca, opts.path, opts.modes, opts.device
    n, n_snap = source.n_features, sum(source.lengths)
    eps = source_eps(source)
    notes: list[str] = []
    n_obs = n * (delays + 1)
    m = n_snap - len(source.lengths) * (delays + 1)
    # the streamed Gram (its accumulator and product buffer, then the delay Grams) is refused up
    # front by the in-memory rule, within a store's max_memory (None: the process's limit)
    memory = dict(itemsize=16 if source.complex else 8, max_memory=getattr(
        source, "max_memory", None))
    if pca is not None:
        check_pca(pca, n_snap, n, opts.pca_center)
        if not _streams_pca(source, path, pca, delays, rank, m, memory):
            return None
        gram, offsets = streamed_gram(source, device=device)
        notes.append("pca: coordinates from the snapshot Gram, streamed in one pass over the data")
        projected = pca_projections_from_gram(gram, offsets, pca, opts.pca_center, notes)
        del gram
        return _fit_ranks(projected, delays, (rank,), opts, eps=eps, notes=notes)[0]
    if rank is None or path in ("dense", "subspace", "covariance") or (
            path == "auto" and n < n_snap):
        return None  # "svht" streams: the full spectrum of the delay Gram gives every value
    _check_rank(rank, n_obs, m)
    _check_streamed_gram(source, n, n_obs, m, n_snap, rank, memory)
    want = _want_modes(modes if modes != "auto" else False, n_obs, rank, m, notes)
    if modes == "auto":
        notes.append("modes not computed for streamed data (one more pass): pass modes=True")
    gram, offsets = streamed_gram(source, device=device)
    if not np.any(gram) and any(np.any(z) for _, z in source.blocks()):
        raise _scale_error("under")  # a second pass, only when the Gram is zero
    if not np.any(gram):
        result = _empty_result(n_obs, want)
    else:
        op = StreamedDelayOperator(source, delays) if want else None
        result, resolution = dmd_from_gram(
            *delay_gram_blocks(gram, offsets, delays), rank=rank, method=opts.method,
            tol=opts.tol, scale=opts.scale, shape=(n_obs, m), x_times=op.x_times if op else None,
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
    return _finish(
        result, opts, delays=delays, rank=rank, eps=eps, path="gram (streamed)",
        n_trajectories=len(source.lengths), n_features=n, n_pairs=m, notes=notes,
    )


def _streams_pca(source: Any, path: str, pca: int, delays: int, rank: int | str | None, m: int,
                 memory: dict[str, Any]) -> bool:
    """Whether ``pca=`` coordinates come from the streamed snapshot Gram, else from the
    features' covariance in memory: not for tall data (features at most twice the snapshots) on
    the dense, subspace and covariance paths, nor on ``"auto"`` where the Gram does not fit;
    ``path="gram"`` is refused up front as the projections' fit is in memory."""
    n, n_snap = source.n_features, sum(source.lengths)
    if n <= 2 * n_snap and (path not in ("auto", "gram") or (
            path == "auto" and not _gram_fits(n, n * (delays + 1), m, n_snap, memory))):
        return False
    if path == "gram":
        _check_streamed_gram(source, pca, pca * (delays + 1), m, n_snap, rank, memory)
    return True


def _check_streamed_gram(source: Any, n: int, n_obs: int, m: int, n_snap: int,
                         rank: int | str | None, memory: dict[str, Any]) -> None:
    """Refuse a streamed Gram path that cannot hold its arrays, before reading: a store's own
    floor first (:meth:`conjugacy.store.StoreSource.read_plan`: the read buffers with the Gram,
    naming ``max_memory``), then :func:`check_path_memory` (the Gram and the delay Grams)."""
    if hasattr(source, "read_plan"):
        source.read_plan()
    check_path_memory("gram", n, n_obs, m, n_snap, rank, **memory)


def _check_source_delays(source: Any, delays: Any) -> int:
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
    return delays


def _finish(
    result: DMDResult, opts: FitOptions, *, delays: int, rank: int | str | None, eps: float,
    path: str, n_trajectories: int, n_features: int, n_pairs: int, notes: list[str],
) -> Fit:
    """The :class:`Fit` of a DMD result: notes, warnings and settings, in one place for every
    route to a spectrum (in memory, streamed, from a given Gram)."""
    tol, pca = opts.tol, opts.pca
    n_obs = n_features * (delays + 1)
    rank_reduced = isinstance(rank, int) and result.rank < rank
    rank_warnings: list[str] = []  # also notes
    if result.rank == 0:
        rank_warnings.append("the data are zero (no direction above the rank tolerance): empty "
                             "spectrum, rank 0")
    elif rank_reduced:
        rank_warnings.append(f"rank={rank} requested but the data have numerical rank "
                             f"{result.rank} (singular values above tol * s_1); kept "
                             f"{result.rank} modes")
    notes.extend(rank_warnings)
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
        "rank_rule": _rank_rule_record(rank, result, tol),
        "tol": tol,
        "pca": pca,
        "pca_center": bool(opts.pca_center) if pca is not None else None,
        "scale": bool(opts.scale),
        "input_eps": eps,
        "path": path,
        "n_trajectories": n_trajectories,
        "n_features": n_features,
        "n_observables": n_obs,
        "n_pairs": n_pairs,
        "notes": notes,
        "version": _version(),
    }
    if rank == "svht" and result.rank_rule is not None and result.rank_rule["n_above"] == 0:
        notes.append("svht: no singular value above the threshold (the data look like noise); "
                     "kept the largest direction")
    if rank == "svht" and result.rank_rule is not None and "note" in result.rank_rule:
        notes.append("svht: " + result.rank_rule["note"])
    return Fit(result, opts.method, bool(informative), settings, tuple(rank_warnings))


def _rank_rule_record(rank: Any, result: DMDResult, tol: float | None) -> dict[str, Any]:
    """What decided the rank: ``"svht"`` (with its threshold, omega, beta and median, from
    :func:`conjugacy.dmd.svht_rank`), ``"tolerance"`` (``rank=None``) or ``"fixed"``."""
    if rank == "svht" and result.rank_rule is not None:
        return dict(result.rank_rule)
    if rank == "svht":  # zero data: nothing to threshold
        return {"rule": "svht", "threshold": None}
    if rank is None:
        return {"rule": "tolerance", "tol": tol}
    return {"rule": "fixed", "rank": int(rank)}


# ----- the path choice and the paths --------------------------------------------------------------
#: the Gram route's arrays (the snapshot Gram and the three delay Grams, float64) above which
#: ``path="auto"`` does not take it; likewise the dense route's delay matrices
AUTO_MEMORY_BYTES = 4 * 2**30
# The cost model of auto_path, in multiply-adds at the rate of one large GEMM (syrk), calibrated
# on random-walk data (one BLAS thread): a dense selected-eigenpair eigh ~1.3 m^3, Lanczos ~500 m^2
# for the top 10-20, the d + 1 shifted sums of the delay Grams ~20 (d + 1) m^2 (memory-bound
# adds), the subspace iteration ~40 (d + 1) n m (k + p) (about 20 iterations of two structured
# products in thin GEMMs), the dense SVD ~4 n_obs m min(n_obs, m) + 8 min(n_obs, m)^3.
_EIGH_DENSE = 1.3
_EIGH_LANCZOS = 500.0
_DELAY_SUMS = 20.0
_SUBSPACE = 40.0
# The covariance route: X X^* by a symmetric rank-k update over the pairs, n_obs^2 m / 2
# multiply-adds at ~0.6 of a GEMM's time per n_obs^2 m (5.4 s against 8.7 s for the product at
# 5,000 x 9,990, one thread), the memory-bound copy of the delay vectors (~10 per entry), the
# top-k eigh of X X^* as for the Gram, and three structured products of width k (X^* U, Y^* U,
# Y X^* U), (d + 1) n m k each.
# Where features are few (n < 8 (k + p): DelayOperator's thin products), the subspace iteration
# also pays ~6.5e4 (about 5 us at the GEMM rate) per product call, 2 x 20 iterations x
# (d + 1) n_traj calls: measured on 10 x 200 x 50, d = 8 (20 systems, one
# thread), subspace 63-66 ms and covariance 50-51 ms per system, against 0.97 by the flops alone.
_COVARIANCE = 0.6
_COVARIANCES = 1.5  # X X^* and Y X^* as products (all three covariances, narrow data)
_COPY = 10.0
_THIN_CALL = 6.5e4


def _top_eig_cost(size: int, k: int) -> float:
    """The top-``k`` eigenpairs of a (size, size) Hermitian matrix by :func:`top_eigh`."""
    if 4 * k >= size:
        return 3.0 * size**3  # every eigenpair
    if size > LANCZOS_MIN_SIZE:
        return _EIGH_LANCZOS * size * size * max(1.0, (k + 10) / 30)
    return _EIGH_DENSE * size**3


def path_costs(
    n_features: int, n_observables: int, n_pairs: int, n_snapshots: int, rank: int | str | None
) -> dict[str, float]:
    """Estimated cost of each path for these sizes, in multiply-adds at the rate of a large GEMM
    (the model :func:`auto_path` compares; ``inf`` where a path does not apply).

    - ``"gram"``: the snapshot Gram (``n_snap^2 n / 2``, one syrk), the ``d + 1`` shifted sums
      forming the delay Grams, the top-``rank`` eigenpairs of the (m, m) one (a dense
      selected-eigenpair ``eigh``, ~``m^3``, up to ``LANCZOS_MIN_SIZE``; Lanczos, ~``m^2`` per
      iteration, above);
    - ``"subspace"``: ~20 iterations of two structured products, ``(d + 1) n m (k + p)`` each,
      applicable when ``3 (k + p) < min(n_obs, m)``;
    - ``"covariance"``: ``X X^*`` over the m pairs by a symmetric rank-k update, the copy of
      the delay vectors, the top-``rank`` eigenpairs of ``X X^*`` (as for the Gram path; all
      of them for ``"svht"``), and three structured products of width ``rank`` for ``B_k``
      and the residual Grams; applicable where ``n_obs <= m``;
    - ``"dense"``: the thin SVD of the (n_obs, m) delay matrix (after the QR compression to
      ``n_snap`` features when features outnumber snapshots).

    Parameters
    ----------
    n_features, n_observables, n_pairs, n_snapshots : int
        ``n``, ``n_obs = n (d + 1)``, ``m`` and the number of base snapshots.
    rank : int, "svht" or None

    Returns
    -------
    dict
        Path name -> multiply-adds (float, ``inf`` where not applicable).

    Examples
    --------
    >>> costs = path_costs(40, 40, 196_000, 196_010, 10)  # DSA's tutorial shape: tall
    >>> min(costs, key=costs.get)
    'covariance'
    """
    n, n_obs, m, n_snap = n_features, n_observables, n_pairs, n_snapshots
    d1 = max(n_obs // max(n, 1), 1)
    inf = float("inf")
    costs = {"dense": inf, "gram": inf, "subspace": inf, "covariance": inf}
    q = min(n, n_snap)  # features after the dense path's compression
    obs = q * d1
    small = min(obs, m)
    costs["dense"] = 4.0 * obs * m * small + 8.0 * small**3 + (2.0 * n * n_snap * q if n > n_snap
                                                                else 0.0)
    if rank is None:
        return costs
    k = min(int(rank), m) if rank != "svht" else min(n_obs, m)
    if n_obs <= m:
        costs["covariance"] = (_COPY * n_obs * m + _top_eig_cost(n_obs, k) + (
            _COVARIANCE * n_obs * n_obs * m + 3.0 * n_obs * m * k
            if _thin_covariance(n_obs, rank) else _COVARIANCES * n_obs * n_obs * m))
    if rank == "svht":  # every singular value: the full spectrum of the delay Gram, no subspace
        costs["gram"] = 0.5 * n * n_snap**2 + _DELAY_SUMS * d1 * m * m + 3.0 * m**3
        return costs
    costs["gram"] = 0.5 * n * n_snap**2 + _DELAY_SUMS * d1 * m * m + _top_eig_cost(m, k)
    width = k + _oversampling(k)
    if 3 * width < min(n_obs, m):
        # where features are few (n < 8 (k + p)), DelayOperator's products are (d + 1) n_traj
        # thin GEMMs each: 2 x 20 iterations of them
        calls = 40.0 * max(n_snap - m, d1) if n < 8 * width else 0.0
        costs["subspace"] = _SUBSPACE * d1 * n * m * width + _THIN_CALL * calls
    return costs


def path_memory(
    n_features: int, n_observables: int, n_pairs: int, n_snapshots: int, rank: int | str | None,
    itemsize: int = 8,
) -> dict[str, float]:
    """Estimated peak bytes each path holds besides the data (the largest arrays it forms):
    the Gram path the snapshot Gram and two (m, m) delay Grams, the dense path the delay
    matrices X and Y (after the compression to ``n_snap`` features), a copy for the SVD and its
    factors, the subspace path a few (n_obs + m, k + p) blocks, the covariance path the
    (n_obs, n_obs) ``X X^*``, one block of delay vectors and the (n_obs + m, k) products (three
    covariances and the block where it forms all three, :func:`_thin_covariance`).
    ``itemsize``: 8 real, 16 complex.

    Examples
    --------
    >>> need = path_memory(40, 40, 196_000, 196_010, 10)  # DSA's tutorial shape
    >>> round(need["gram"] / 2**30), round(need["covariance"] / 2**20)  # GiB, MiB
    (859, 64)
    """
    n, n_obs, m, n_snap = n_features, n_observables, n_pairs, n_snapshots
    d1 = max(n_obs // max(n, 1), 1)
    obs = min(n, n_snap) * d1
    small = min(obs, m)
    k = min(int(rank), m) if isinstance(rank, int) else small
    width = k + _oversampling(k)
    return {
        "gram": itemsize * (float(n_snap) ** 2 + 2.0 * float(m) ** 2),
        "dense": itemsize * (3.0 * obs * m + small * (obs + m) + (n * n_snap if n > n_snap else 0)),
        "subspace": itemsize * 4.0 * (n_obs + m) * width,
        "covariance": itemsize * (n_obs * n_obs + 8 * 2**20 + 4.0 * (n_obs + m) * k
                                  if _thin_covariance(n_obs, rank) else
                                  3.0 * n_obs * n_obs + 8 * 2**20),
    }


_PATH_ARRAYS = {
    "gram": "the {n_snap:,} x {n_snap:,} snapshot Gram and the {m:,} x {m:,} delay Grams",
    "dense": "the {obs:,} x {m:,} delay matrices and their SVD",
    "subspace": "the subspace iteration's blocks",
    "covariance": "the {n_obs:,} x {n_obs:,} covariances",
}


def check_path_memory(
    path: str, n: int, n_obs: int, m: int, n_snap: int, rank: int | str | None, itemsize: int = 8,
    available: int | None = None, max_memory: Any = None,
) -> None:
    """Refuse, in one line, a ``path`` whose arrays (:func:`path_memory`) exceed the memory
    available (:func:`conjugacy.streaming.available_memory`: ``MemAvailable``, the cgroup
    limit, ``max_memory`` if given (a store source's); or ``available`` bytes), naming the
    cheapest path that fits, before anything is allocated. In-memory and streamed data
    (memory-mapped, Dask, a store: :func:`_fit_streamed`) alike.

    Raises
    ------
    ValueError
        ``path='gram' needs ~858.7 GiB here (...) but 12.0 GiB are available: use
        path='covariance' (or 'auto') ...``.

    Examples
    --------
    >>> check_path_memory("gram", 40, 40, 196_000, 196_010, 10, available=2**34)
    Traceback (most recent call last):
    ...
    ValueError: path='gram' needs ~858.7 GiB here (...) but 16.0 GiB are available: use ...
    >>> try:
    ...     check_path_memory("gram", 40, 40, 196_000, 196_010, 10, available=2**34)
    ... except ValueError as err:
    ...     print(str(err).split(": ")[-1])
    use path='covariance' (or 'auto')
    """
    why = ""
    if available is None:
        available, why = available_memory(max_memory)
        why = f" ({why})"
    need = path_memory(n, n_obs, m, n_snap, rank, itemsize)
    if need[path] <= available:
        return
    costs = path_costs(n, n_obs, m, n_snap, rank)
    fits = [p for p in costs if costs[p] < float("inf") and need[p] <= available and p != path]
    fix = (f"use path={min(fits, key=costs.get)!r} (or 'auto')" if fits else
           "reduce the data (pca=, fewer delays, fewer trajectories or steps)")
    what = _PATH_ARRAYS[path].format(n_snap=n_snap, m=m, n_obs=n_obs,
                                     obs=min(n, n_snap) * max(n_obs // max(n, 1), 1))
    raise ValueError(
        f"path={path!r} needs ~{need[path] / 2**30:.1f} GiB here ({what}) but "
        f"{_left(available)} available{why}: {fix}"
    )


def _left(available: int) -> str:
    """``'16.0 GiB are'`` for a message; what is left rounded down (never shown as more than
    it is, nor as '0.0 GiB' when some MiB are left); ``'nothing is'`` at or below 0."""
    if available <= 0:
        return "nothing is"
    if available >= 2**30:
        return f"{math.floor(available / 2**30 * 10) / 10:.1f} GiB are"
    return f"{format_size(available, down=True)} are"


def _gram_fits(n: int, n_obs: int, m: int, n_snap: int, memory: dict[str, Any]) -> bool:
    """Whether the Gram path's arrays (:func:`path_memory`) fit in the memory available
    (``memory``: ``itemsize`` and ``max_memory`` as :func:`check_path_memory` takes them)."""
    free = available_memory(memory.get("max_memory"))[0]
    return path_memory(n, n_obs, m, n_snap, None, memory.get("itemsize", 8))["gram"] <= free


def auto_path(
    n_features: int,
    n_observables: int,
    n_pairs: int,
    n_snapshots: int,
    rank: int | str | None,
    *,
    mapped: bool = False,
    itemsize: int = 8,
    available: int | None = None,
    exclude: tuple[str, ...] = (),
) -> str:
    """The path ``path="auto"`` takes for in-memory data of these sizes (before any fallback).

    ``"dense"`` when ``rank`` is None (the tolerance rule needs every singular value, resolved),
    ``"gram"`` when features are at least as many as snapshots (one pass over the data, m x m
    algebra); otherwise the cheapest by :func:`path_costs` (``"covariance"`` for tall data),
    leaving out the routes whose arrays (:func:`path_memory`) would exceed ``AUTO_MEMORY_BYTES``
    or the memory available (:func:`conjugacy.streaming.available_memory`, or ``available``
    bytes) while another
    fits; raises :func:`check_path_memory`'s error when none fits. ``mapped`` (memory-mapped
    data, read from disk): the cheaper of the covariance path (tall data, one pass, memory
    O(n_obs^2)) and the subspace path (memory O((n_obs + m) (k + p)), not O(m^2)), and the dense
    path only for small data (``n_obs m < 10^6``). ``exclude``: paths not to take (the subspace
    path after its iteration stalled: the next cheapest is taken instead, the dense path last).

    Examples
    --------
    >>> auto_path(40, 40, 196_000, 196_010, 10)  # tall: feature-side covariances
    'covariance'
    >>> auto_path(100_000, 3_300_000, 960, 1_000, 10)  # wide: the snapshot Gram
    'gram'
    >>> auto_path(2000, 2000, 2990, 3000, 10, available=2**34, exclude=("subspace",))
    'covariance'
    """
    n, n_obs, m, n_snap = n_features, n_observables, n_pairs, n_snapshots
    if rank is None or n >= n_snap:
        # the tolerance rule needs every singular value, resolved; features dominate: one pass
        # over the data, m x m algebra
        chosen = "dense" if rank is None else "gram"
        check_path_memory(chosen, n, n_obs, m, n_snap, rank, itemsize, available)
        return chosen
    costs = path_costs(n, n_obs, m, n_snap, rank)
    costs.update({p: float("inf") for p in exclude if p != "dense"})
    if mapped:  # data on disk: the low-memory routes (one pass or a few), dense only when small
        if n_obs * m >= 1_000_000:
            costs["dense"] = float("inf")
        costs["gram"] = float("inf")
        return min(costs, key=costs.get) if min(costs.values()) < float("inf") else "dense"
    free = available_memory()[0] if available is None else available
    need = path_memory(n, n_obs, m, n_snap, rank, itemsize)
    order = sorted((p for p in costs if costs[p] < float("inf")), key=costs.get)
    for limit in (min(AUTO_MEMORY_BYTES, free), free):
        for p in order:
            if need[p] <= limit:
                return p
    check_path_memory(order[0], n, n_obs, m, n_snap, rank, itemsize, available)
    return order[0]


def _dense_path(trajs, delays, ranks, tol, scale, method, modes, n_snap, eps=_EPS64
                ) -> list[DMDResult]:
    """The dense path at each rank of ``ranks`` (one SVD, :func:`conjugacy.dmd.dmd_at_ranks`)."""
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
    results = dmd_at_ranks(X, Y, ranks, method=method, tol=tol, scale=scale, modes=modes,
                           eps=eps, rank_shape=(n * (delays + 1), X.shape[1]))
    if basis is None or not modes:
        return results
    q = basis.shape[1]
    return [replace(r, modes=np.concatenate(
        [basis @ r.modes[j * q : (j + 1) * q] for j in range(delays + 1)], axis=0
    ).reshape(-1, r.modes.shape[1])) for r in results]


def _covariance_path(
    trajs, delays, ranks, tol, scale, method, modes, real, eps, notes_of
) -> list[DMDResult | None]:
    """DMD from the feature-side covariance ``X_s X_s^*`` of the (scaled) delay matrix: ``U_k``
    and ``s_k`` from its top eigenpairs (:func:`~conjugacy.dmd.top_eigh`), ``B_k = Y_s X_s^*
    U_k S_k^-2`` and the (k, k) ResDMD Grams ``U_k^* X_s Y_s^* U_k``, ``U_k^* Y_s Y_s^* U_k``;
    at each rank of ``ranks`` from one eigendecomposition. Where the widest rank is a small
    fixed one (``4 k < n_obs``, :func:`_thin_covariance`), ``X_s X_s^*`` alone by a symmetric
    update (:func:`delay_xx`) and the rest from three products of width k, never the (n_obs,
    n_obs) ``Y X^*`` and ``Y Y^*`` (on 10 x 1,000 x 5,000 walks at rank 88: 11 s instead of
    21 s on the subspace path); otherwise (narrow data, every singular value) all three
    covariances in one pass (:func:`~conjugacy.observables.delay_covariances`). Exact
    arithmetic on the same pairs as the dense path; like the Gram path it squares the condition
    number, so each result is checked by :func:`gram_trusted` and None is returned for it (the
    caller takes the dense path) when it cannot resolve the kept singular values (the reason in
    ``notes_of``, one list per rank)."""
    op = DelayOperator(trajs, delays)
    n_obs, m = op.shape
    keep, w = column_weights(op.x_column_norms(), scale)
    weights = None
    if scale:
        weights = np.zeros(m)
        weights[keep] = w
    widest = _widest(tuple(ranks))
    thin = _thin_covariance(n_obs, widest)
    if thin:
        cxx = delay_xx(trajs, delays, weights)
    else:
        cxx, cyx, cyy = delay_covariances(trajs, delays, weights)
    evals, U = top_eigh(cxx, None if widest in (None, "svht") else widest)  # largest first
    s = np.sqrt(np.maximum(evals, 0.0))
    fro = float(np.sqrt(max(float(np.real(np.trace(cxx))), 0.0)))
    del cxx
    ks = [select_rank(s, r, tol, (n_obs, m), eps, fro=fro) for r in ranks]
    top = max(ks)
    Ut = np.ascontiguousarray(U[:, :top])
    del U
    if thin:
        xh, yh = op.xh_times(Ut), op.yh_times(Ut)  # X^* U, Y^* U (m, top)
        if weights is not None:
            xh *= weights[:, None]
            yh *= weights[:, None]
        cu = op.y_times(xh if weights is None else xh * weights[:, None])  # Y_s X_s^* U
        uxy, uyy = xh.conj().T @ yh, yh.conj().T @ yh  # U^* X_s Y_s^* U, U^* Y_s Y_s^* U
    else:
        cu = cyx @ Ut  # (Y X^*) U for the largest k: each k takes its leading columns
        uxy, uyy = (Ut.conj().T @ cu).conj().T, Ut.conj().T @ cyy @ Ut
    out: list[DMDResult | None] = []
    for r, k, note in zip(ranks, ks, notes_of):
        if k == 0:
            out.append(None)
            continue
        Uk, sk = Ut[:, :k], s[:k]
        Bk = cu[:, :k] / sk**2  # Y_s V_k S_k^-1 with V_k = X_s^* U_k S_k^-1
        grams = (np.diag(sk**2).astype(Uk.dtype), uxy[:k, :k], uyy[:k, :k])
        result = dmd_from_factors(Uk, sk, Bk, s, method=method, modes=modes, real=real,
                                  grams=grams)
        result = with_rank_rule(result, r, s, (n_obs, m))
        out.append(result if gram_trusted(result, float(sk[-1] / sk[0]), note, "covariance")
                   else None)
    return out


def _thin_covariance(n_obs: int, rank: int | str | None) -> bool:
    """Whether the covariance path forms ``X X^*`` alone and takes the rest from products of
    width ``rank`` (a fixed rank below a quarter of the observables), not all three
    covariances: on narrow data (DSA's tutorial shape, 40 x 196,000 at rank 10) one pass for
    the three is cheaper (0.056 s against 0.092 s) than three more passes over the pairs."""
    return isinstance(rank, int) and 4 * rank < n_obs


#: Entries of one block of delay vectors :func:`delay_xx` forms at a time (64 MiB as float64).
_XX_CHUNK = 8 * 2**20


def delay_xx(trajs: list[np.ndarray], delays: int, weights: np.ndarray | None = None
             ) -> np.ndarray:
    """``X_s X_s^*`` (n_obs, n_obs) of the delay matrix ``X_s = X diag(weights)``, by a symmetric
    (Hermitian) rank-k update per block of delay vectors (BLAS ``syrk`` / ``herk``: half the
    work of the product :func:`~conjugacy.observables.delay_covariances` forms, 5.4 s against
    8.7 s at 5,000 features x 9,990 pairs on one thread), in the trajectories' dtype promoted
    to float64 / complex128, block by block through one buffer (float32 data are never copied
    whole).

    Parameters
    ----------
    trajs : list of ndarray (n_steps_i, n_features)
        Validated trajectories, each at least ``delays + 2`` steps long.
    delays : int
    weights : ndarray, float (m,), optional
        Column weights of the pairs, in pair order (default ones).

    Returns
    -------
    ndarray (n_features (delays + 1), n_features (delays + 1))
        Hermitian, both triangles filled; observables ordered as
        :func:`~conjugacy.observables.delay_embed`'s rows.

    Examples
    --------
    >>> runs = np.random.default_rng(0).normal(size=(3, 50, 2))
    >>> X, _ = delay_embed(runs, delays=2)
    >>> bool(np.allclose(delay_xx(list(runs), 2), X @ X.T))
    True
    """
    import scipy.linalg.blas as blas

    n, d1 = trajs[0].shape[1], delays + 1
    n_obs = n * d1
    dtype = np.result_type(*(t.dtype for t in trajs), np.float64)
    cplx = np.iscomplexobj(np.empty(0, dtype))
    update = blas.get_blas_funcs("herk" if cplx else "syrk", dtype=dtype)
    c = np.zeros((n_obs, n_obs), dtype=dtype, order="F")
    step = max(1, _XX_CHUNK // max(n_obs, 1))
    buf = np.empty((min(step, max(t.shape[0] for t in trajs)), n_obs), dtype=dtype)
    start = 0  # where this trajectory's pairs start among the weights
    for traj in trajs:
        m = traj.shape[0] - d1  # pairs: columns h_0 .. h_{m-1} of X
        windows = np.lib.stride_tricks.sliding_window_view(traj, d1, axis=0)  # (m + 1, n, d1)
        for t0 in range(0, m, step):
            t1 = min(m, t0 + step)
            h = buf[: t1 - t0]
            h.reshape(t1 - t0, d1, n)[...] = windows[t0:t1].transpose(0, 2, 1)
            if weights is not None:
                h *= weights[start + t0 : start + t1, None]
            # h.T (n_obs, rows) is Fortran-contiguous: BLAS reads it in place, c updated in place
            c = update(1.0, h.T, beta=1.0, c=c, trans=0, lower=0, overwrite_c=1)
        start += m
    for b0 in range(0, n_obs, 512):  # the lower triangle from the upper, block by block
        b1 = min(b0 + 512, n_obs)
        c[b0:b1, :b0] = c[:b0, b0:b1].conj().T
        block = c[b0:b1, b0:b1]
        block[...] = np.triu(block) + np.triu(block, 1).conj().T
    return c


def _oversampling(rank: int) -> int:
    return max(10, rank)


def _subspace_path(
    trajs, delays, ranks, tol, scale, method, modes, real, eps=_EPS64, max_iter: int = 80
) -> list[DMDResult] | None:
    """Top-``rank`` SVD of the scaled delay matrix by subspace iteration on structured products,
    for the widest rank of ``ranks`` (:func:`_widest`; each rank takes its leading triplets).

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

    rule = None
    wanted = list(ranks)
    if "svht" in wanted:  # every singular value first (their median), then the top k of them
        s_all = all_singular_values(op, weights)
        wanted = [select_rank(s_all, "svht", tol, (n_obs, m), eps) if r == "svht" else r
                  for r in wanted]
        rule = svht_rank(s_all, (n_obs, m))[1]
        if min(wanted) == 0:
            return None
    rank = max(wanted)
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
                del W, Q2, prev
                return _subspace_results(op, weights, Q @ Uq[:, :k], s, Vk, wanted, ranks, tol,
                                         eps, fro, method, modes, real, rule)
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


def _subspace_results(op, weights, Uk, s, Vk, wanted, ranks, tol, eps, fro, method, modes,
                      real, rule) -> list[DMDResult]:
    """The DMD results at each rank from the converged leading triplets ``Uk``, ``s``, ``Vk``
    of the scaled delay matrix (each rank takes its leading ones)."""
    k = Uk.shape[1]
    yv = op.y_times(weights[:, None] * Vk)  # Y_s V_k
    uy = (op.yh_times(Uk) * weights[:, None]).conj().T  # U_k^* Y_s
    out = []
    for want, r in zip(wanted, ranks):
        j = min(k, select_rank(s, want, tol, op.shape, eps, fro=fro))
        sj = s[:j]
        px = sj[:, None] * Vk[:, :j].conj().T  # U_k^* X_s = S_k V_k^*
        result = dmd_from_factors(Uk[:, :j], sj, yv[:, :j] / sj, s, method=method, modes=modes,
                                  real=real, px=px, py=uy[:j])
        out.append(result if r != "svht" else replace(result, rank_rule=rule))
    return out


def all_singular_values(op: Any, weights: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Every singular value (min(n_obs, m) of them, descending) of the scaled delay matrix
    ``X_s = X diag(weights)`` of a :class:`~conjugacy.observables.DelayOperator`, from the Gram of
    its smaller side (``X_s^* X_s`` or ``X_s X_s^*``, formed ``chunk`` columns at a time by two
    structured products each: memory ``O((n_obs + m) chunk + min^2)``, never the delay matrix).

    For ``rank="svht"`` on the subspace path, whose iteration finds only the leading values while
    the threshold needs their median. Resolution ~1e-8 s_1 (a Gram): far below any median the
    threshold is read from (equal to the dense SVD's to ~1e-12 relative on noisy data)."""
    n_obs, m = op.shape
    small = min(n_obs, m)
    dtype = np.result_type(op.dtype if hasattr(op, "dtype") else float, float)
    g = np.empty((small, small), dtype=dtype)
    w = weights[:, None]
    for a in range(0, small, chunk):
        b = min(a + chunk, small)
        e = np.zeros((small, b - a), dtype=dtype)
        e[np.arange(a, b), np.arange(b - a)] = 1.0
        if m <= n_obs:  # X_s^* X_s e = w X^* X (w e)
            g[:, a:b] = w * op.xh_times(op.x_times(w * e))
        else:  # X_s X_s^* e = X (w^2 X^* e)
            g[:, a:b] = op.x_times(w * w * op.xh_times(e))
    ev = np.linalg.eigvalsh((g + g.conj().T) / 2)[::-1]
    return np.sqrt(np.maximum(ev, 0.0))


def gram_trusted(
    result: DMDResult, resolution: float, notes: list[str], path: str = "gram"
) -> bool:
    """Whether a Gram-path result meets the accuracy target; adds the reason to ``notes`` if not.

    The Gram squares the condition number: the kept subspace, and with it the eigenvalues, carry a
    relative error of about ``eps (s_1/s_k)^2``. Trusted while that stays below ``_GRAM_TARGET``.
    """
    implied = np.finfo(float).eps / max(resolution, 1e-300) ** 2
    if result.rank > 0 and implied > _GRAM_TARGET:
        notes.append(
            f"{path} path: s_k/s_1 = {resolution:.1e} implies an error of ~{implied:.0e} "
            f"(> {_GRAM_TARGET:.0e}); recomputed on the dense path"
        )
        return False
    return True


# ----- the checks every route shares ------------------------------------------------------------
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


def _check_rank(rank: int | str | None, n_obs: int, m: int) -> None:
    if isinstance(rank, int) and rank > min(n_obs, m):
        raise ValueError(
            f"rank={rank} exceeds what the data allow: min(n_observables={n_obs}, "
            f"n_pairs={m}) = {min(n_obs, m)} (n_observables = n_features x (delays + 1))"
        )


#: ``modes="auto"`` computes modes when the mode matrix takes at most this many bytes (and they
#: are cheap: see :func:`_want_modes`)
MODES_AUTO_BYTES = 16 * 2**20
#: ``modes="auto"`` computes modes when their estimated cost is at most this share of the fit's
MODES_AUTO_SHARE = 0.05


def _want_modes(
    modes: Any, n_obs: int, rank: int | None, m: int, notes: list[str], *,
    path: str = "gram", n: int = 0, n_snap: int = 0,
) -> bool:
    """Whether to compute modes: ``modes`` itself when a bool; for ``"auto"``, only where they
    cost no further pass over the data and at most ``MODES_AUTO_SHARE`` of the fit (the dense
    path without compression, the subspace and covariance paths, which hold ``U_k``: the modes are one
    (n_obs, k) x (k, k) product, ``2 n_obs k^2`` multiply-adds against the path's
    :func:`path_costs`), and take at most ``MODES_AUTO_BYTES``. On the Gram and streamed paths
    modes take products with the data as large as the fit's own (measured: 30-50 % of the
    call on 10 x 100 x 1,000 walks), so ``"auto"`` skips them there, with a note."""
    if modes != "auto":
        return bool(modes)
    k = min(rank if isinstance(rank, int) else min(n_obs, m), n_obs, m)
    size = 16 * n_obs * k
    if size > MODES_AUTO_BYTES:
        notes.append(
            f"modes not computed: {n_obs} x {k} complex values ({size / 2**20:.0f} MiB); "
            "pass modes=True to compute them"
        )
        return False
    cheap = path in ("subspace", "covariance") or (path == "dense" and n <= n_snap)
    if cheap:
        cost = path_costs(n, n_obs, m, n_snap, rank)[path]
        cheap = 2.0 * n_obs * k * k <= MODES_AUTO_SHARE * cost
    if not cheap:
        notes.append(
            f"modes not computed: on the {path} path they cost another pass over the data "
            "(modes='auto' computes them only where they cost under 5 % of the fit); pass "
            "modes=True to compute them"
        )
    return cheap


# ----- the precision rule and streamed data ---------------------------------------------------
def input_eps(trajectories: Any) -> float:
    """Machine epsilon of the least precise array in ``trajectories`` (NumPy or torch dtypes).

    Integer and boolean data are exact: float64's epsilon. Used by the rank rule, so data recorded
    in float32 (PyTorch's default) are not read as if they had float64's resolution.

    Parameters
    ----------
    trajectories : array or list of arrays
        Anything with a ``dtype`` (NumPy arrays, torch tensors); items without one are skipped.

    Returns
    -------
    float
        The largest machine epsilon among the floating (or complex) dtypes, at least float64's
        ``2**-52``; bfloat16 gives ``2**-7``.

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy.spectrum import input_eps
    >>> input_eps(np.zeros((5, 2))) == 2.0 ** -52
    True
    >>> input_eps([np.zeros((5, 2)), np.zeros((5, 2), dtype=np.float32)]) == 2.0 ** -23
    True
    >>> input_eps(np.zeros((5, 2), dtype=np.int8)) == 2.0 ** -52
    True
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
    data, although its blocks arrive as float64).

    Parameters
    ----------
    source : streaming source
        An :class:`~conjugacy.streaming.ArraySource`, a store selection, or any object with a
        ``dtype``.

    Returns
    -------
    float
        As for :func:`input_eps`.

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy.spectrum import source_eps
    >>> from conjugacy.streaming import ArraySource
    >>> src = ArraySource([np.zeros((5, 2)), np.zeros((4, 2), dtype=np.float32)])
    >>> source_eps(src) == 2.0 ** -23
    True
    """
    items = getattr(source, "_items", None)
    if items is not None:
        return input_eps(list(items))
    layout = getattr(source, "_layout", None)
    if layout is not None:
        return input_eps([np.empty(0, dtype=np.dtype(dt)) for _, (_, dt) in layout])
    return input_eps(np.empty(0, dtype=source.dtype))


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


def _version() -> str:
    from . import __version__

    return __version__
