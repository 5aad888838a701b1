"""Benchmark koopman_spectrum against a plain NumPy Gram pipeline, PyDMD, deeptime and kooplearn.

Usage:  python benchmarks/bench_spectrum.py [--repeats N] [--only NAME] [--peers A,B]
            [--out FILE] [--json FILE]
        python benchmarks/bench_spectrum.py --grid [--full] [--repeats N] [--only NAME] [--json FILE]
        python benchmarks/bench_spectrum.py --allpairs 50,200,500 [--dsa-python PY]
        python benchmarks/bench_spectrum.py --dsa-tutorial [--repeats N] [--dsa-python PY]
        python benchmarks/bench_spectrum.py --from-json FILE... [--out FILE]
(one process per workload with ``--json``, then one table from all of them, is how the
BENCHMARKS.md table was made on a loaded machine; the whole run takes about an hour there).
``--grid``: the scaling grid's rows that fit a 2-core machine in minutes (``GRID``; ``--full``:
``GRID_FULL``, hours), conjugacy's default call against the plain pipeline and its syrk bound,
interleaved, CPU times, one ratio per repeat (issue 21; run it once per engine version to compare
versions). ``--allpairs``: 20 systems x 10 x 200, 190 distances, against kooplearn and DSA
(``--dsa-python``: an interpreter with ``dsa-metric``). ``--dsa-tutorial``: DSA's own fig. 3
tutorial (its data generated as its notebook does, 12 models x 200 trajectories x 1,000 steps x 2
features, 20 delay copies, rank 15, 66 distances), conjugacy vs kooplearn vs DSA, interleaved.

Everything runs in one process on one BLAS thread (``OMP_NUM_THREADS=1`` set before NumPy is
imported, and ``threadpoolctl.threadpool_limits(1)`` around the whole run), so every contender
gets the same single core. For each workload shaped like the paper's (random-walk "weight
trajectories", rank 10) it reports the median wall time, the peak memory growth during the call
(tracemalloc: NumPy's allocations, LAPACK workspaces included), the speed ratio to each baseline,
and the largest eigenvalue difference (optimal matching, relative to the largest modulus) to
conjugacy's stable dense path at the same settings. conjugacy and every baseline that takes under
``FAST_S`` seconds are timed ``--repeats`` times (median, untraced: peak memory comes from one
separate traced run); slower baselines once, traced.

* conjugacy  -- ``koopman_spectrum(data, delays=d, rank=10, pca=p, threads=1)``, otherwise its
                defaults: plain projected-DMD eigenvalues (``scale=False``, DMD-RRR residuals),
                no modes (``modes=False`` since issue 21; issue 15 to 21: ``modes="auto"``, the
                modes whenever they took at most 16 MiB), the path chosen automatically
                (``dense``, ``gram`` or ``subspace``; by a cost model since issue 21).
                Memory-mapped ``.npy``, ``dask.array`` and store inputs are streamed in one pass
                over feature blocks on the Gram path (not exercised here: in-memory arrays;
                see ``benchmarks/bench_out_of_core.py``). On the wide workload it is also timed
                once with ``modes=True`` (the pre-issue-15 default).
* gram       -- a plain NumPy/SciPy method-of-snapshots pipeline, eigenvalues only: snapshot
                Gram ``Z Z^T`` (one syrk), the delay Grams ``X^T X`` and ``X^T Y`` by summing
                ``d + 1`` shifted blocks of it, the top-10 eigenpairs of ``X^T X``
                (``scipy.linalg.eigh(subset_by_index=...)``; Lanczos, ``eigsh``, above 2,000
                pairs, where a dense eigh costs minutes), projected DMD
                ``S^-1 V^T (X^T Y) V S^-1``. With ``pca``: the centred PCA from the same Gram
                (``J G J``), raw snapshots projected on it, then the same steps on the
                coordinates. Target: conjugacy is never slower than this on any workload.
* obvious    -- what the reference code does: materialize the delay matrices, full thin SVD,
                projected DMD of rank 10 (PCA, if any, by a full SVD of the pooled snapshots).
* pydmd      -- ``pydmd.DMD(svd_rank=10).fit(X, Y)`` on the materialized delay matrices.
* deeptime   -- ``deeptime.decomposition.DMD(mode="exact", rank=10).fit((X.T, Y.T))``.
* kooplearn  -- kooplearn 2's principal-component estimator without regularization, i.e.
                projected DMD (``Ridge(n_components=10, reduced_rank=False, alpha=None)``, or
                ``KernelRidge(kernel="linear", ...)`` when delay observables outnumber the
                pairs), fitted on ``vstack([X.T, Y.T])`` with ``lag_time = n_pairs`` so that its
                pairs are exactly the delay pairs (no pair across two trajectories).
On the transformer workload the peers (pydmd, deeptime, kooplearn) get scikit-learn's randomized
PCA, ``PCA(10, svd_solver="randomized", random_state=0)``, as their users would (the raw
snapshots projected on its components, as conjugacy and the reference code do); "pydmd, full-SVD
PCA" repeats the configuration behind the earlier 14-19x claim. All baselines compute unscaled
projected DMD, the same eigenvalues as conjugacy's defaults.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from importlib.metadata import version  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402
import scipy.sparse.linalg  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from conjugacy import delay_embed, koopman_spectrum  # noqa: E402

RANK = 10
FAST_S = 20.0  # baselines faster than this (first run) are timed --repeats times, median
PEERS = ("gram", "obvious", "pydmd", "pydmd-fullpca", "deeptime", "kooplearn", "ours-modes")
LABELS = {
    "gram": "plain NumPy Gram",
    "obvious": "obvious (full SVDs)",
    "pydmd": "pydmd",
    "pydmd-fullpca": "pydmd, full-SVD PCA",
    "deeptime": "deeptime",
    "kooplearn": "kooplearn",
    "ours-modes": "conjugacy, modes=True",
}
ALL_PEERS = ("gram", "obvious", "pydmd", "deeptime", "kooplearn")


@dataclass(frozen=True)
class Workload:
    name: str
    n_traj: int
    n_steps: int
    n_features: int
    delays: int
    pca: int | None = None
    peers: tuple[str, ...] = ALL_PEERS
    rank: int = RANK
    dtype: str = "float64"

    def data(self) -> np.ndarray:
        rng = np.random.default_rng(0)
        out = rng.standard_normal((self.n_traj, self.n_steps, self.n_features))
        return np.cumsum(out, axis=1, out=out).astype(self.dtype, copy=False)


WORKLOADS = [
    Workload("FCN h=40 (10 x 1000 x 400, 8 delays)", 10, 1000, 400, 8),
    Workload("FCN h=5 (10 x 1000 x 50, 64 delays)", 10, 1000, 50, 64),
    Workload(
        "transformer (10 x 100 x 65,536, PCA 10, 32 delays)", 10, 100, 65536, 32, pca=10,
        peers=("gram", "obvious", "pydmd-fullpca", "pydmd", "deeptime", "kooplearn"),
    ),
    Workload("peer (10 x 100 x 4000 random walk, 32 delays)", 10, 100, 4000, 32),
    # The issue-15 workload whose 3.3-million-row delay modes the old default computed; the
    # delay matrices (18 GB) rule out every baseline that materializes them.
    Workload(
        "wide (10 x 100 x 100,000, 32 delays)", 10, 100, 100_000, 32,
        peers=("gram", "ours-modes"),
    ),
]


# ----------------------------------------------------------------------------- baselines


def _dmd_from_grams(xtx: np.ndarray, xty: np.ndarray, rank: int = RANK) -> np.ndarray:
    """Projected DMD eigenvalues of rank ``rank`` from X^T X and X^T Y (method of snapshots)."""
    m = xtx.shape[0]
    if m > 2000:  # Lanczos for the top `rank` of a large Gram (a dense eigh costs minutes)
        lam, v = scipy.sparse.linalg.eigsh(xtx, k=rank, which="LA")
    else:
        lam, v = scipy.linalg.eigh(xtx, subset_by_index=[m - rank, m - 1])
    inv_s = 1.0 / np.sqrt(lam)
    atilde = (v.T @ xty @ v) * inv_s[:, None] * inv_s[None, :]
    return np.linalg.eigvals(atilde)


def _delay_grams(g: np.ndarray, n_traj: int, n_steps: int, delays: int):
    """X^T X and X^T Y of the delay pairs from the snapshot Gram g (T*N, T*N)."""
    g4 = g.reshape(n_traj, n_steps, n_traj, n_steps)
    n_h = n_steps - delays  # delay snapshots per trajectory
    h = g4[:, :n_h, :, :n_h].copy()
    for k in range(1, delays + 1):
        h += g4[:, k:k + n_h, :, k:k + n_h]
    L = n_h - 1
    m = n_traj * L
    xtx = np.ascontiguousarray(h[:, :L, :, :L]).reshape(m, m)
    xty = np.ascontiguousarray(h[:, :L, :, 1:]).reshape(m, m)
    return xtx, xty


def gram_pipeline(data: np.ndarray, w: Workload) -> np.ndarray:
    n_traj, n_steps, n_feat = data.shape
    z = data.reshape(-1, n_feat).astype(np.float64, copy=False)  # float32 data: a float64 Gram
    g = z @ z.T  # NumPy calls syrk for a @ a.T
    if w.pca is not None:
        # Centred PCA from the Gram: Zc Zc^T = J G J; raw snapshots projected on the basis
        # V = Zc^T u / sqrt(lam): Z V = (Z Zc^T) u / sqrt(lam), Z Zc^T = G - rowmean(G) 1^T.
        n = g.shape[0]
        rmean = g.mean(axis=1)
        gc = g - rmean[:, None] - rmean[None, :] + rmean.mean()
        lam, u = scipy.linalg.eigh(gc, subset_by_index=[n - w.pca, n - 1])
        coords = ((g - rmean[:, None]) @ u) / np.sqrt(lam)
        g = coords @ coords.T
    xtx, xty = _delay_grams(g, n_traj, n_steps, w.delays)
    return _dmd_from_grams(xtx, xty, w.rank)


def obvious(data: np.ndarray, w: Workload) -> np.ndarray:
    X, Y = delay_embed(_full_pca(data, w), w.delays)
    U, s, Vh = np.linalg.svd(X, full_matrices=False)
    U, s, V = U[:, :RANK], s[:RANK], Vh[:RANK].T
    return np.linalg.eigvals(U.T @ Y @ V / s)


def _full_pca(data: np.ndarray, w: Workload) -> np.ndarray:
    # PCA the way the obvious pipeline does it: full SVD of the pooled, centred snapshots
    # (scikit-learn's PCA(svd_solver="full")); the raw snapshots are projected on the basis.
    if w.pca is None:
        return data
    z = data.reshape(-1, data.shape[-1])
    _, _, vh = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)
    return data @ vh[: w.pca].T


def _randomized_pca(data: np.ndarray, w: Workload) -> np.ndarray:
    # scikit-learn's randomized PCA, as a PyDMD / deeptime / kooplearn user would fit it; the
    # raw snapshots are projected on its components (as conjugacy and the reference code do).
    if w.pca is None:
        return data
    from sklearn.decomposition import PCA

    pca = PCA(w.pca, svd_solver="randomized", random_state=0).fit(data.reshape(-1, data.shape[-1]))
    return data @ pca.components_.T


def pydmd_eigs(data: np.ndarray, w: Workload, pca=_randomized_pca) -> np.ndarray:
    from pydmd import DMD

    X, Y = delay_embed(pca(data, w), w.delays)
    return np.asarray(DMD(svd_rank=RANK).fit(X, Y).eigs)


def pydmd_fullpca_eigs(data: np.ndarray, w: Workload) -> np.ndarray:
    return pydmd_eigs(data, w, pca=_full_pca)


def deeptime_eigs(data: np.ndarray, w: Workload) -> np.ndarray:
    from deeptime.decomposition import DMD

    X, Y = delay_embed(_randomized_pca(data, w), w.delays)
    model = DMD(mode="exact", rank=RANK).fit((X.T, Y.T)).fetch_model()
    return np.asarray(model.eigenvalues)


def kooplearn_eigs(data: np.ndarray, w: Workload) -> np.ndarray:
    from kooplearn.kernel import KernelRidge
    from kooplearn.linear_model import Ridge

    X, Y = delay_embed(_randomized_pca(data, w), w.delays)
    n_obs, m = X.shape
    # kooplearn pairs row t with row t + lag_time of one array: stacking X^T over Y^T with
    # lag_time = m gives exactly the delay pairs. Unregularized principal-component
    # regression is projected DMD; the kernel (dual) form when observables outnumber pairs.
    kwargs = dict(n_components=w.rank, lag_time=m, reduced_rank=False, alpha=None, copy_X=False)
    model = KernelRidge(kernel="linear", **kwargs) if n_obs > m else Ridge(**kwargs)
    return np.asarray(model.fit(np.vstack([X.T, Y.T])).eig())


def ours(data: np.ndarray, w: Workload) -> np.ndarray:
    spec = koopman_spectrum(data, delays=w.delays, rank=RANK, pca=w.pca, threads=1)
    ours.last_settings = spec.settings
    ours.last_modes = spec.modes is not None
    return spec.eigenvalues


def ours_modes(data: np.ndarray, w: Workload) -> np.ndarray:
    return koopman_spectrum(
        data, delays=w.delays, rank=RANK, pca=w.pca, threads=1, modes=True
    ).eigenvalues


def plain_covariance(data: np.ndarray, w: Workload) -> np.ndarray:
    """The plain NumPy feature-side route for tall data (what deeptime and kooplearn do): the
    delay matrices, ``C = X X^T`` and ``Y X^T``, the top-k ``eigh`` of C, projected DMD
    ``U_k^T (Y X^T) U_k S_k^-2``, ``eig``."""
    X, Y = delay_embed(data.astype(np.float64, copy=False), w.delays)
    lam, u = np.linalg.eigh(X @ X.T)
    uk, lk = u[:, -w.rank:], lam[-w.rank:]
    return np.linalg.eigvals((uk.T @ (Y @ X.T) @ uk) / lk[None, :])


def _plain_kind(w: Workload) -> str:
    """The plain pipeline a NumPy user would write for this shape: the method of snapshots, or
    the feature-side covariances when they take fewer multiply-adds (tall data) or the snapshot
    Gram would exceed 2 GiB."""
    n_snap, n_obs = w.n_traj * w.n_steps, w.n_features * (w.delays + 1)
    m = w.n_traj * (w.n_steps - w.delays - 1)
    snapshots = 0.5 * w.n_features * n_snap**2 + (m**3 if m <= 2000 else 500 * m * m)
    covariance = 2.0 * n_obs * n_obs * m + 5.0 * n_obs**3
    if 8 * n_snap**2 > 2 * 2**30 or (n_obs <= m and covariance < snapshots):
        return "covariance"
    return "snapshots"


def plain_pipeline(data: np.ndarray, w: Workload) -> np.ndarray:
    return plain_covariance(data, w) if _plain_kind(w) == "covariance" else gram_pipeline(data, w)


def syrk_bound(data: np.ndarray, w: Workload) -> None:
    """The plain pipeline's largest product alone: the snapshot Gram ``Z Z^T`` (one syrk), or
    ``X X^T`` of the delay matrix on the covariance route (its copy included)."""
    if _plain_kind(w) == "covariance":
        X = delay_embed(data.astype(np.float64, copy=False), w.delays)[0]
        X @ X.T
        return
    z = data.reshape(-1, data.shape[-1]).astype(np.float64, copy=False)
    z @ z.T


# The scaling grid (issue 21, item 5): conjugacy's default call against the plain pipeline and the
# syrk bound, interleaved, CPU times (``--grid``: the quick subset that fits this 2-core machine
# in minutes; ``--grid --full``: every row, hours and up to 8 GiB of input).
GRID = [
    Workload("10 x 100 x 1,000, 8 delays", 10, 100, 1000, 8),
    Workload("10 x 100 x 1,000, 32 delays", 10, 100, 1000, 32),
    Workload("10 x 1,000 x 1,000, 8 delays", 10, 1000, 1000, 8),
    Workload("10 x 100 x 10,000, 8 delays", 10, 100, 10_000, 8),
    Workload("10 x 100 x 100,000 float32, 32 delays", 10, 100, 100_000, 32, dtype="float32"),
    Workload("10 x 500 x 4,000, 32 delays", 10, 500, 4000, 32),
    Workload("4 x 240 x 400 float32, 8 delays, rank 21", 4, 240, 400, 8, rank=21,
             dtype="float32"),
    Workload("tall 10 x 1,000 x 10, 8 delays", 10, 1000, 10, 8),
    Workload("tall 10 x 10,000 x 10, 32 delays", 10, 10_000, 10, 32),
    Workload("tall 10 x 2,000 x 100, 8 delays", 10, 2000, 100, 8),
    Workload("tall 1 x 196,000 x 40 (DSA tutorial-like), 0 delays", 1, 196_000, 40, 0),
]
GRID_FULL = GRID + [
    Workload("10 x 1,000 x 1,000, 32 delays", 10, 1000, 1000, 32),
    Workload("10 x 100 x 10,000, 32 delays", 10, 100, 10_000, 32),
    Workload("10 x 1,000 x 10,000, 8 delays", 10, 1000, 10_000, 8),
    Workload("10 x 1,000 x 10,000, 32 delays", 10, 1000, 10_000, 32),
    Workload("10 x 100 x 100,000 float32, 8 delays", 10, 100, 100_000, 8, dtype="float32"),
    Workload("10 x 100 x 1,000,000 float32, 8 delays", 10, 100, 1_000_000, 8, dtype="float32"),
    Workload("10 x 100 x 1,000,000 float32, 32 delays", 10, 100, 1_000_000, 32,
             dtype="float32"),
    Workload("10 x 500 x 4,000, 8 delays", 10, 500, 4000, 8),
    Workload("tall 10 x 20,000 x 10, 8 delays", 10, 20_000, 10, 8),
    Workload("tall 10 x 20,000 x 100, 8 delays", 10, 20_000, 100, 8),
    Workload("tall 10 x 2,000 x 100, 32 delays", 10, 2000, 100, 32),
]


def grid(workloads, repeats) -> list[dict]:
    """conjugacy's default call (``koopman_spectrum(data, delays=d, rank=k, threads=1)``), the
    plain pipeline (:func:`plain_pipeline`) and its largest product alone (:func:`syrk_bound`),
    interleaved (syrk, plain, ours, syrk, ...) after one untimed warm-up of each, CPU times
    (``time.process_time``). Per row: every run's CPU time, the per-repeat ratios plain /
    conjugacy (> 1: conjugacy faster) and conjugacy / syrk, the path taken and the largest
    eigenvalue difference to the plain pipeline (optimal matching, relative to the largest
    modulus)."""
    rows = []
    for w in workloads:
        data = w.data()

        def ours_default(x=data, w=w):
            return koopman_spectrum(x, delays=w.delays, rank=w.rank, threads=1)

        spec = ours_default()
        plain = plain_pipeline(data, w)
        diff = rel_diff(spec.eigenvalues, plain)
        syrk_cpu, plain_cpu, ours_cpu = [], [], []
        contenders = ((syrk_bound, syrk_cpu), (plain_pipeline, plain_cpu),
                      (lambda x, w: ours_default(x, w), ours_cpu))
        for _ in range(repeats):
            for fn, out in contenders:
                c0 = time.process_time()
                fn(data, w)
                out.append(time.process_time() - c0)
        ratios = [p / o for p, o in zip(plain_cpu, ours_cpu)]
        row = {"workload": w.name, "path": spec.settings["path"], "plain": _plain_kind(w),
               "modes": spec.modes is not None, "syrk_cpu": syrk_cpu, "plain_cpu": plain_cpu,
               "ours_cpu": ours_cpu, "ratios": ratios, "diff": diff}
        med = statistics.median
        print(f"  {w.name}: {row['path']}, plain ({row['plain']}) {med(plain_cpu):.3f} s, "
              f"conjugacy {med(ours_cpu):.3f} s, syrk {med(syrk_cpu):.3f} s; plain / conjugacy "
              f"{min(ratios):.2f}-{max(ratios):.2f} (median {med(ratios):.2f}), conjugacy / syrk "
              f"{med(ours_cpu) / max(med(syrk_cpu), 1e-9):.2f}, eig. diff {diff:.1e}", flush=True)
        rows.append(row)
        del data
    return rows


# ----------------------------------------------------------------------------- all pairs
# Issue 21: 20 systems x 10 trajectories x 200 steps, rank 10, 8 delays, all 190 distances,
# end to end (fits + distances), against kooplearn and DSA (``dsa-metric``, run by its own
# interpreter: ``--dsa-python``, a separate virtual environment).
ALLPAIRS = {"systems": 20, "n_traj": 10, "n_steps": 200, "rank": 10, "delays": 8}


def allpairs_data(n_features: int, seed: int = 0) -> list[np.ndarray]:
    """``ALLPAIRS["systems"]`` noisy linear systems (10 latent modes, eigenvalues drawn per
    system, observed through a random (n_features, 10) map), ``n_traj`` trajectories x
    ``n_steps`` steps each (20 x 10 x 200 by default)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(ALLPAIRS["systems"]):
        lam = rng.uniform(0.8, 0.99, 5) * np.exp(1j * rng.uniform(0.05, 1.0, 5))
        blocks = [np.array([[z.real, -z.imag], [z.imag, z.real]]) for z in lam]
        a = scipy.linalg.block_diag(*blocks)
        c = rng.standard_normal((n_features, 10))
        z = np.empty((ALLPAIRS["n_traj"], ALLPAIRS["n_steps"], 10))
        z[:, 0] = rng.standard_normal((ALLPAIRS["n_traj"], 10))
        for t in range(1, ALLPAIRS["n_steps"]):
            z[:, t] = z[:, t - 1] @ a.T + 0.1 * rng.standard_normal((ALLPAIRS["n_traj"], 10))
        out.append(z @ c.T + 0.01 * rng.standard_normal((ALLPAIRS["n_traj"], ALLPAIRS["n_steps"],
                                                          n_features)))
    return out


def allpairs_ours(systems: list[np.ndarray]) -> np.ndarray:
    from conjugacy import distance_matrix

    spectra = [koopman_spectrum(x, delays=ALLPAIRS["delays"], rank=ALLPAIRS["rank"], threads=1)
               for x in systems]
    allpairs_ours.paths = sorted({s.settings["path"] for s in spectra})
    return distance_matrix(spectra)


def allpairs_kooplearn(systems: list[np.ndarray]) -> np.ndarray:
    from conjugacy import distance_matrix

    w = Workload("allpairs", 0, 0, 0, ALLPAIRS["delays"], rank=ALLPAIRS["rank"])
    return distance_matrix([kooplearn_eigs(x, w) for x in systems])


_DSA_SCRIPT = """
import sys, time, numpy as np
from threadpoolctl import threadpool_limits
import torch
from DSA import DSA
data = np.load(sys.argv[1])
systems = [data[i] for i in range(data.shape[0])]
kw = dict(n_delays=int(sys.argv[2]), rank=int(sys.argv[3]), score_method="wasserstein")
with threadpool_limits(1):
    torch.set_num_threads(1)
    DSA(systems[:2], **kw).fit_score()  # warm-up: first torch / POT calls
    print("ready", flush=True)
    for _ in sys.stdin:
        c0 = time.process_time()
        dsa = DSA(systems, **kw)
        sims = dsa.fit_score()
        cpu = time.process_time() - c0
        eigs = [np.asarray(e.numpy()) for e in dsa.cached_compare_objects[0]]
        np.savez(sys.argv[4], sims=sims, eigenvalues=np.stack(eigs))
        print(cpu, flush=True)
"""


class DsaWorker:
    """DSA (``dsa-metric``) in its own interpreter ``python``, one BLAS / torch thread, warmed
    up on the first two systems: each :meth:`run` times one ``DSA(systems, n_delays, rank,
    score_method="wasserstein").fit_score()`` (all DMDs + all pairwise scores; CPU seconds of
    the child, the import not counted), so that runs interleave with the other contenders'.
    ``systems`` must share one shape; after a run, ``sims`` (n, n) and ``eigenvalues`` (n, rank)
    are DSA's scores and each DMD's eigenvalues. Use as a context manager."""

    def __init__(self, python: str, systems: list[np.ndarray], n_delays: int, rank: int):
        import subprocess
        import tempfile

        self._tmp = tempfile.TemporaryDirectory()
        data, self._out = Path(self._tmp.name) / "systems.npy", Path(self._tmp.name) / "out.npz"
        np.save(data, np.stack(systems))
        self._proc = subprocess.Popen(
            [python, "-c", _DSA_SCRIPT, str(data), str(n_delays), str(rank), str(self._out)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"})
        if self._proc.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError(f"--dsa-python: {python} could not run DSA (see its error above)")

    def run(self) -> float:
        self._proc.stdin.write("go\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            self.close()
            raise RuntimeError("DSA's run failed (see its error above)")
        with np.load(self._out) as out:
            self.sims, self.eigenvalues = out["sims"], out["eigenvalues"]
        return float(line)

    def close(self) -> None:
        if self._proc.stdin and not self._proc.stdin.closed:
            self._proc.stdin.close()
        self._proc.wait()
        self._tmp.cleanup()

    def __enter__(self) -> DsaWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def allpairs(features: list[int], repeats: int, dsa_python: str | None) -> list[dict]:
    """conjugacy, kooplearn and DSA (a :class:`DsaWorker` under ``dsa_python``: all-pairs
    ``fit_score``, Wasserstein distances of the eigenvalues, its default) interleaved, CPU
    times of the whole workload, ``repeats`` each; per feature count the CPU times and the
    ratios peer / conjugacy of the medians."""
    _import_peers()
    rows = []
    for n in features:
        systems = allpairs_data(n)
        allpairs_ours(systems)  # warm-up
        ours_cpu, koop_cpu, dsa_cpu = [], [], []
        dsa = DsaWorker(dsa_python, systems, ALLPAIRS["delays"] + 1, ALLPAIRS["rank"]) \
            if dsa_python else None
        try:
            for _ in range(repeats):
                for fn, out in ((allpairs_ours, ours_cpu), (allpairs_kooplearn, koop_cpu)):
                    c0 = time.process_time()
                    fn(systems)
                    out.append(time.process_time() - c0)
                if dsa is not None:
                    dsa_cpu.append(dsa.run())
        finally:
            if dsa is not None:
                dsa.close()
        med = statistics.median
        row = {"features": n, "paths": allpairs_ours.paths, "ours_cpu": ours_cpu,
               "kooplearn_cpu": koop_cpu, "dsa_cpu": dsa_cpu}
        print(f"  {n} features: conjugacy ({', '.join(row['paths'])}) {med(ours_cpu):.2f} s "
              f"[{min(ours_cpu):.2f}-{max(ours_cpu):.2f}], kooplearn {med(koop_cpu):.2f} s "
              f"[{min(koop_cpu):.2f}-{max(koop_cpu):.2f}] ({med(koop_cpu) / med(ours_cpu):.2f}x)"
              + (f", DSA {med(dsa_cpu):.2f} s [{min(dsa_cpu):.2f}-{max(dsa_cpu):.2f}] "
                 f"({med(dsa_cpu) / med(ours_cpu):.2f}x)" if dsa_cpu else ""), flush=True)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- DSA's tutorial
# ``--dsa-tutorial`` (issue 21): the data of DSA's fig. 3 tutorial, generated as its notebook
# does. Ported from ``examples/dsa_fig3_tutorial.ipynb`` of https://github.com/mitchellostrow/DSA
# (commit 8cbddcf; MIT licence, copyright Mitchell Ostrow): ``run_model1`` (saddle / bistable
# switch), ``run_model2`` (line attractor) and ``run_model3`` (point attractor), Euler-Maruyama
# with ``dt = 0.01`` for 100 time units, the same equations, parameters and draws.
# ``np.random.seed(2023)`` then ``np.random.normal`` / ``uniform`` is ``RandomState(2023)``'s
# stream, passed here explicitly instead of the global state.
TUTORIAL = {"delays": 19, "rank": 15}  # DSA's n_delays=20: 20 copies, 40 observables
TUTORIAL_TYPES = ("bistable", "line attractor", "point attractor")


def _tutorial_model1(rs: np.random.RandomState, cohs, params: dict, time: float = 100):
    """``run_model1`` (saddle: dx = a x^3 + b x + coh, dy = c y + coh) without its ``cond_avgs``
    feedback, which the tutorial never passes; returns x (conds, trials, steps, 2) and the
    condition averages (conds, steps, 2)."""
    a, b, c = params.get("a", -0.6), params.get("b", 2), params.get("c", -1)
    dt, ntrials, sigma = params.get("dt", 1), params.get("ntrials", 10), params.get("sigma", 0)
    steps = int(time / dt)
    x = np.zeros((len(cohs), ntrials, steps, 2))
    cohs = np.repeat(np.array(cohs)[:, np.newaxis], ntrials, axis=1)
    for i in range(1, steps):
        dx = a * x[:, :, i - 1, 0] ** 3 + b * x[:, :, i - 1, 0] + cohs
        dy = c * x[:, :, i - 1, 1] + cohs
        dx = np.concatenate([dx[:, :, np.newaxis], dy[:, :, np.newaxis]], axis=2)
        rand = rs.normal(0, sigma, size=(len(cohs), ntrials, 2))
        x[:, :, i] = x[:, :, i - 1] + dt * (dx + 0.0 + rand)  # + input_optimized (zero)
    return x, np.mean(x, axis=1)


def _tutorial_controlled(rs: np.random.RandomState, A: np.ndarray, cond_avgs: np.ndarray,
                         params: dict, time: float = 100) -> np.ndarray:
    """The common loop of ``run_model2`` and ``run_model3``: dx = A x plus the input that drives
    the trial average onto ``cond_avgs`` (conds, steps, 2), plus noise. ``A @ xavg`` multiplies
    the (conds, 2) averages from the left, as the notebook does (it mixes the two conditions;
    kept for faithfulness)."""
    sigma, dt, ntrials = params.get("sigma", 0), params.get("dt", 1), params.get("ntrials", 10)
    steps = int(time / dt)
    x = np.zeros((cond_avgs.shape[0], ntrials, steps, 2))
    for i in range(1, steps):
        dx = np.einsum("ij,mkj->mki", A, x[:, :, i - 1])
        xavg = x[:, :, i - 1].mean(axis=1)
        dx_avg = A @ xavg
        inp = (1 / dt) * (cond_avgs[:, i] - xavg - dx_avg * dt)
        inp = np.repeat(inp[:, np.newaxis], ntrials, axis=1)
        x[:, :, i] = x[:, :, i - 1] + dt * (
            dx + inp + rs.normal(0, sigma, size=(cond_avgs.shape[0], ntrials, 2)))
    return x


def _tutorial_model2(rs, cond_avgs, params: dict, time: float = 100) -> np.ndarray:
    """``run_model2``: a line attractor (eigenvalues 0 and ``eval1`` along r0 = (1, 0) and
    l0 = (1, 1) / sqrt 2), rotated by 45 degrees."""
    l0 = np.asarray(params.get("l0", [1, 1]), dtype=float)
    l0 = l0 / np.linalg.norm(l0)
    R = np.array([params.get("r0", [1, 0]), l0])
    A = R @ np.diag([0, params.get("eval1", -1)]) @ np.linalg.inv(R)
    c, s = np.cos(np.radians(45)), np.sin(np.radians(45))
    return _tutorial_controlled(rs, np.array(((c, -s), (s, c))) @ A, cond_avgs, params, time)


def _tutorial_model3(rs, cond_avgs, params: dict, time: float = 100) -> np.ndarray:
    """``run_model3``: a point attractor, A = diag(-|a1|, -|a2|)."""
    A = np.diag([-np.abs(params.get("a1", -0.5)), -np.abs(params.get("a2", -1))])
    return _tutorial_controlled(rs, A, cond_avgs, params, time)


def dsa_tutorial_data(time: float = 100) -> tuple[list[np.ndarray], list[str]]:
    """The 12 models of DSA's fig. 3 tutorial (cells 1-8 of ``dsa_fig3_tutorial.ipynb``,
    github.com/mitchellostrow/DSA, MIT licence), exactly as the notebook draws them.

    Seed 2023; the notebook's first, plotted sample (20 trials, sigma 0.1) is drawn too, since
    it advances the stream; then per type 4 models (``nmodels = 4``) with parameters drawn as
    in the notebook, 2 input conditions (coherence -0.1, 0.1) x 100 trials, sigma 0.05,
    dt 0.01, every 10th step kept. Models 2 and 3 of draw ``i`` are driven onto model 1's
    condition averages. (The notebook's second part, 5 models per type, is not reproduced: its
    draws follow scikit-learn MDS calls that consume the same global stream.)

    Returns the models, each (200 trajectories, 1,000 steps, 2 features) float64 (``time``
    time units / dt / 10 steps), ordered by type, and their types (``TUTORIAL_TYPES``).
    Example: ``models, types = dsa_tutorial_data()``; ``models[0].shape == (200, 1000, 2)``.
    """
    rs, dt, sigma, ntrials, n = np.random.RandomState(2023), 0.01, 0.05, 100, 4
    _, avg = _tutorial_model1(rs, [-0.1, 0.1], dict(dt=dt, sigma=0.1, ntrials=20), time)
    _tutorial_model2(rs, avg, dict(dt=dt, sigma=0.1, ntrials=20), time)
    _tutorial_model3(rs, avg, dict(dt=dt, sigma=0.1, ntrials=20), time)
    a, b, c = rs.uniform(-5, -4, size=n), rs.uniform(4, 5, size=n), rs.uniform(-4, -3, size=n)
    eval1 = rs.uniform(-2, -3, size=n)
    a1, a2 = rs.uniform(-4, -5, size=n), rs.uniform(-8, -9, size=n)
    models: list[list[np.ndarray]] = [[], [], []]
    for i in range(n):
        common = dict(dt=dt, sigma=sigma, ntrials=ntrials)
        x1, avg = _tutorial_model1(rs, [-0.1, 0.1], dict(common, a=a[i], b=b[i], c=c[i]), time)
        x2 = _tutorial_model2(rs, avg, dict(common, eval1=eval1[i]), time)
        x3 = _tutorial_model3(rs, avg, dict(common, a1=a1[i], a2=a2[i]), time)
        for kind, x in enumerate((x1, x2, x3)):  # flatten_x, then models[:, ::10]
            models[kind].append(x.reshape(-1, *x.shape[2:])[:, ::10])
    return [x for kind in models for x in kind], [t for t in TUTORIAL_TYPES for _ in range(n)]


def _tutorial_spectra(models: list[np.ndarray]):
    return [koopman_spectrum(x, delays=TUTORIAL["delays"], rank=TUTORIAL["rank"], threads=1)
            for x in models]


def tutorial_ours(models: list[np.ndarray]) -> np.ndarray:
    """conjugacy on the tutorial: one default ``koopman_spectrum`` per model (19 delays, i.e.
    DSA's 20 copies, rank 15), then ``distance_matrix`` (W1 of all pairs); (n, n)."""
    from conjugacy import distance_matrix

    spectra = _tutorial_spectra(models)
    tutorial_ours.paths = sorted({s.settings["path"] for s in spectra})
    tutorial_ours.eigenvalues = [s.eigenvalues for s in spectra]
    return distance_matrix(spectra)


def tutorial_kooplearn(models: list[np.ndarray]) -> np.ndarray:
    """kooplearn's projected DMD per model (:func:`kooplearn_eigs`, same delays and rank), then
    ``distance_matrix`` of its eigenvalues; (n, n)."""
    from conjugacy import distance_matrix

    w = Workload("tutorial", 0, 0, 0, TUTORIAL["delays"], rank=TUTORIAL["rank"])
    tutorial_kooplearn.eigenvalues = [kooplearn_eigs(x, w) for x in models]
    return distance_matrix(tutorial_kooplearn.eigenvalues)


def same_type_neighbours(dist: np.ndarray, types: list[str]) -> tuple[float, float]:
    """How well a distance matrix (n, n) separates the types (each given at least twice): the
    fraction of models whose nearest other model has their type, and the mean over models of
    the fraction of their type among their ``n_type - 1`` nearest others (1 = the types are
    separated; chance ~0.27 for 3 types of 4). Example: ``same_type_neighbours(np.array([[0,
    1], [1, 0]]), ["a", "a"])`` is ``(1.0, 1.0)``."""
    dist = np.array(dist, dtype=float)
    np.fill_diagonal(dist, np.inf)
    kinds = np.asarray(types)
    counts = np.array([np.sum(kinds == t) for t in kinds]) - 1
    if counts.min() < 1:
        raise ValueError("types: every type needs at least two models")
    same = kinds[np.argsort(dist, axis=1, kind="stable")] == kinds[:, None]
    within = [same[i, :k].mean() for i, k in enumerate(counts)]
    return float(same[:, 0].mean()), float(np.mean(within))


def _spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} s [{min(xs):.2f}-{max(xs):.2f}]"


def dsa_tutorial(repeats: int, dsa_python: str | None) -> dict:
    """DSA's fig. 3 tutorial end to end (:func:`dsa_tutorial_data`: 12 models, 66 distances):
    conjugacy, kooplearn and DSA (``dsa_python``, a :class:`DsaWorker`) interleaved, ``repeats``
    CPU times each after an untimed warm-up; per contender how well its distances separate the
    three model types (:func:`same_type_neighbours`; scikit-learn's silhouette on the distances,
    1 = tight separated clusters, 0 = none) and, against conjugacy, the largest
    eigenvalue difference over the models (optimal matching, relative to the largest
    modulus)."""
    _import_peers()
    c0 = time.process_time()
    models, types = dsa_tutorial_data()
    print(f"DSA tutorial data: {len(models)} x {models[0].shape}, generated in "
          f"{time.process_time() - c0:.1f} s CPU", flush=True)
    contenders = {"conjugacy": tutorial_ours, "kooplearn": tutorial_kooplearn}
    for fn in contenders.values():
        fn([x[:2] for x in models[:2]])  # warm-up
    cpu: dict[str, list[float]] = {name: [] for name in (*contenders, "DSA")}
    dists: dict[str, np.ndarray] = {}
    dsa = DsaWorker(dsa_python, models, TUTORIAL["delays"] + 1, TUTORIAL["rank"]) \
        if dsa_python else None
    try:
        for _ in range(repeats):
            for name, fn in contenders.items():
                c0 = time.process_time()
                dists[name] = fn(models)
                cpu[name].append(time.process_time() - c0)
            if dsa is not None:
                cpu["DSA"].append(dsa.run())
                dists["DSA"] = dsa.sims
    finally:
        if dsa is not None:
            dsa.close()
    eigs = {"kooplearn": tutorial_kooplearn.eigenvalues,
            "DSA": list(dsa.eigenvalues) if dsa is not None else None}
    row = {"models": len(models), "shape": list(models[0].shape), "paths": tutorial_ours.paths,
           "cpu": {k: v for k, v in cpu.items() if v}, "types": types,
           **_tutorial_scores(dists, eigs, types)}
    row["ratios"] = {k: [t / o for t, o in zip(v, cpu["conjugacy"])] for k, v in row["cpu"].items()}
    for name, times in row["cpu"].items():
        r = row["ratios"][name]
        print(f"  {name}{' (' + ', '.join(row['paths']) + ')' if name == 'conjugacy' else ''}: "
              f"{_spread(times)}, {min(r):.2f}-{max(r):.2f}x conjugacy per run; nearest "
              f"neighbour same type {row['neighbours'][name][0]:.2f}, of the 3 nearest "
              f"{row['neighbours'][name][1]:.2f}, silhouette {row['silhouette'][name]:.2f}"
              + (f"; eig. diff to conjugacy {row['eig_diff'][name]:.1e}"
                 if name in row["eig_diff"] else ""), flush=True)
    return row


def _tutorial_scores(dists: dict, eigs: dict, types: list[str]) -> dict:
    """Per contender: same-type neighbours, silhouette, its distances, and the largest
    eigenvalue difference to conjugacy's over the models."""
    from sklearn.metrics import silhouette_score

    out: dict[str, dict] = {"neighbours": {}, "silhouette": {}, "eig_diff": {}, "distances": {}}
    for name, d in dists.items():
        out["neighbours"][name] = same_type_neighbours(d, types)
        out["silhouette"][name] = float(silhouette_score(d, types, metric="precomputed"))
        out["distances"][name] = np.asarray(d).tolist()
        if eigs.get(name) is not None:
            out["eig_diff"][name] = max(rel_diff(a, b) for a, b in
                                        zip(eigs[name], tutorial_ours.eigenvalues))
    return out


FUNCTIONS = {
    "gram": gram_pipeline, "obvious": obvious, "pydmd": pydmd_eigs,
    "pydmd-fullpca": pydmd_fullpca_eigs, "deeptime": deeptime_eigs, "kooplearn": kooplearn_eigs,
    "ours-modes": ours_modes,
}


# ----------------------------------------------------------------------------- measurement


def _timed(fn, data, w, trace=False):
    if trace:
        tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn(data, w)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = None
    if trace:
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    return elapsed, cpu, peak, out


def measure(fn, data, w, repeats, ref, fast_only=False) -> dict:
    """Peak memory from a first, traced run; median wall and CPU time over ``repeats`` untraced
    runs (tracemalloc slows every allocation, and more for code that allocates more). A baseline
    whose traced run took over FAST_S (with ``fast_only``) is timed by that run alone."""
    t, cpu, peak, out = _timed(fn, data, w, trace=True)
    times, cpus = [], []
    if not (fast_only and t > FAST_S):
        for _ in range(repeats):
            t_i, cpu_i, _, out = _timed(fn, data, w)
            times.append(t_i)
            cpus.append(cpu_i)
    else:
        times, cpus = [t], [cpu]
    return {"wall": statistics.median(times), "cpu": statistics.median(cpus), "peak": peak,
            "runs": len(times), "diff": rel_diff(out, ref)}


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    cost = np.abs(np.asarray(a)[:, None] - np.asarray(b)[None, :])
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].max() / np.abs(b).max())


def _import_peers() -> None:
    """Import the peers' packages before any timing (pydmd alone takes seconds to import)."""
    import deeptime.decomposition  # noqa: F401
    import kooplearn.kernel  # noqa: F401
    import kooplearn.linear_model  # noqa: F401
    import pydmd  # noqa: F401
    import sklearn.decomposition  # noqa: F401


def run(workloads, repeats, peers=None):
    _import_peers()
    rows = []
    for w in workloads:
        data = w.data()
        mb = data.nbytes / 2**20
        print(f"\n== {w.name}: input {mb:.0f} MiB", flush=True)
        t0 = time.perf_counter()
        ref = koopman_spectrum(
            data, delays=w.delays, rank=RANK, pca=w.pca, path="dense", modes=False, threads=1
        ).eigenvalues
        print(f"  reference (dense path, untimed): {time.perf_counter() - t0:.1f} s", flush=True)
        o = measure(ours, data, w, repeats, ref)
        notes = [note for note in ours.last_settings.get("notes", []) if "modes" in note]
        result = {"workload": w.name, "input_mib": mb, "path": ours.last_settings["path"],
                  "modes": ours.last_modes, "notes": notes, "peers": {}, "ours": o}
        print(f"  ours ({result['path']}, modes {'computed' if ours.last_modes else 'skipped'})"
              f": {o['wall']:.3f} s (CPU {o['cpu']:.3f} s), peak +{o['peak'] / 2**20:.0f} MiB",
              flush=True)
        for peer in w.peers:
            if peers is not None and peer not in peers:
                continue
            r = measure(FUNCTIONS[peer], data, w, repeats, ref, fast_only=True)
            result["peers"][peer] = r
            print(f"  {peer}: {r['wall']:.2f} s (CPU {r['cpu']:.2f} s, x{r['runs']}), peak "
                  f"+{r['peak'] / 2**20:.0f} MiB, ratio {r['wall'] / o['wall']:.2f} "
                  f"(CPU {r['cpu'] / o['cpu']:.2f}), eig. diff {r['diff']:.1e}", flush=True)
        rows.append(result)
        del data
    return rows


def _ratio(x: float) -> str:
    return f"{x:.2f}x" if x < 10 else f"{x:.0f}x"


def to_markdown(rows, repeats) -> str:
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    versions = ", ".join(
        f"{pkg} {version(pkg)}" for pkg in ("scipy", "pydmd", "deeptime", "kooplearn", "scikit-learn")
    )
    lines = [
        "| workload | input | conjugacy: wall / CPU (path) | peak / input | eig. diff | baseline | "
        "wall / CPU (runs) | peak | baseline / conjugacy, wall (CPU) | eig. diff |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        o = r["ours"]
        first = True
        for peer in PEERS:
            if peer not in r["peers"]:
                continue
            p = r["peers"][peer]
            head = (
                f"| {r['workload']} | {r['input_mib']:.0f} MiB | {o['wall']:.3f} s / "
                f"{o['cpu']:.3f} s ({r['path']}) | {o['peak'] / 2**20 / r['input_mib']:.2f} | "
                f"{o['diff']:.1e} "
                if first else "| | | | | "
            )
            lines.append(
                head + f"| {LABELS[peer]} | {p['wall']:.2f} s / {p['cpu']:.2f} s ({p['runs']}) | "
                f"{p['peak'] / 2**20:.0f} MiB | {_ratio(p['wall'] / o['wall'])} "
                f"({_ratio(p['cpu'] / o['cpu'])}) | {p['diff']:.1e} |"
            )
            first = False
    header = (
        f"`python benchmarks/bench_spectrum.py` on {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, NumPy {np.__version__}, {versions}; "
        f"OMP_NUM_THREADS={threads} and threadpoolctl limit 1 for every contender. Time = median "
        f"of the runs in parentheses ({repeats} for conjugacy and for baselines under "
        f"{FAST_S:.0f} s, else 1); peak = largest growth of traced memory during the call; "
        "eig. diff = largest eigenvalue difference (optimal matching) relative to the largest "
        "modulus, against conjugacy's stable dense path at the same settings. Rank 10 "
        "everywhere; data are random walks."
    )
    notes = [f"- {r['workload']}: {n}" for r in rows for n in r["notes"]]
    return "\n".join([header, "", *lines, "", *notes]) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=None, help="substring of the workload names to run")
    parser.add_argument("--peers", default=None, help="comma-separated baselines to run (default all)")
    parser.add_argument("--out", default=None, help="write the Markdown table to this file")
    parser.add_argument("--json", default=None, help="also write the measurements as JSON here")
    parser.add_argument(
        "--from-json", nargs="+", default=None, metavar="FILE",
        help="measure nothing: render the table from JSON files written by --json",
    )
    parser.add_argument(
        "--grid", action="store_true",
        help="the scaling grid's quick rows (GRID): default call vs plain pipeline and syrk",
    )
    parser.add_argument("--full", action="store_true", help="with --grid: every row (GRID_FULL)")
    parser.add_argument(
        "--allpairs", default=None, metavar="N,N,...",
        help="the all-pairs workload at these feature counts (e.g. 50,200,500)",
    )
    parser.add_argument("--allpairs-delays", type=int, default=None, metavar="D",
                        help="with --allpairs: delays of the workload (default 8; DSA's n_delays "
                             "is D + 1, and it refuses 9 at 500 features)")
    parser.add_argument("--dsa-python", default=None,
                        help="with --allpairs: the interpreter of a venv with dsa-metric")
    parser.add_argument("--dsa-tutorial", action="store_true",
                        help="DSA's fig. 3 tutorial data and pipeline (12 models, 66 distances)")
    args = parser.parse_args(argv)
    if args.dsa_tutorial:
        with threadpool_limits(1):
            row = dsa_tutorial(args.repeats, args.dsa_python)
        if args.json:
            Path(args.json).write_text(json.dumps(row, indent=1))
        return
    if args.allpairs_delays is not None:
        ALLPAIRS["delays"] = args.allpairs_delays
    if args.allpairs:
        with threadpool_limits(1):
            rows = allpairs([int(n) for n in args.allpairs.split(",")], args.repeats,
                            args.dsa_python)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        return
    if args.grid:
        print(f"grid: {'full' if args.full else 'quick'}", flush=True)
        with threadpool_limits(1):
            rows = grid([w for w in (GRID_FULL if args.full else GRID)
                         if args.only is None or args.only in w.name], args.repeats)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        return
    if args.from_json:
        rows = [row for f in args.from_json for row in json.loads(Path(f).read_text())]
    else:
        workloads = [w for w in WORKLOADS if args.only is None or args.only in w.name]
        peers = None if args.peers is None else set(args.peers.split(","))
        if peers is not None and not peers <= set(PEERS):
            parser.error(f"--peers: unknown baseline(s) {sorted(peers - set(PEERS))}")
        with threadpool_limits(1):
            rows = run(workloads, args.repeats, peers)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
    table = to_markdown(rows, args.repeats)
    print("\n" + table)
    if args.out:
        Path(args.out).write_text(table)


if __name__ == "__main__":
    sys.exit(main())
