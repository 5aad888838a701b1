"""Benchmark koopman_spectrum against the obvious pipeline, PyDMD and deeptime, in one process.

Usage:  python benchmarks/bench_spectrum.py [--repeats N] [--only NAME] [--out BENCHMARKS.md]

For each workload shaped like the paper's (random-walk "weight trajectories", rank 10) it reports
the median wall time, the peak memory growth during the call (tracemalloc; NumPy's allocations,
LAPACK workspaces included), the speed ratio to each baseline, and the largest eigenvalue
difference to the stable dense path of conjugacy (relative to the largest eigenvalue modulus).

* ours       -- ``koopman_spectrum(..., rank=10)`` with its defaults (DMD-RRR, column scaling,
                automatic path); compared with ``path="dense"`` at the same settings.
* obvious    -- what the reference code does: materialize the delay matrices, full thin SVD,
                projected DMD of rank 10 (PCA, if any, by a full SVD of the pooled snapshots).
* pydmd      -- ``pydmd.DMD(svd_rank=10).fit(X, Y)`` on the materialized delay matrices.
* deeptime   -- ``deeptime.decomposition.DMD(mode="exact", rank=10).fit((X.T, Y.T))``, all delay
                windows as data (peer benchmark only).
Baselines are unscaled projected DMD, so their eigenvalues are compared with
``koopman_spectrum(..., method="standard", scale=False, path="dense")``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from conjugacy import delay_embed, koopman_spectrum

RANK = 10


@dataclass(frozen=True)
class Workload:
    name: str
    n_traj: int
    n_steps: int
    n_features: int
    delays: int
    pca: int | None = None
    peers: tuple[str, ...] = ("obvious", "pydmd")

    def data(self) -> np.ndarray:
        rng = np.random.default_rng(0)
        return np.cumsum(rng.standard_normal((self.n_traj, self.n_steps, self.n_features)), axis=1)


WORKLOADS = [
    Workload("FCN h=40 (10 x 1000 x 400, 8 delays)", 10, 1000, 400, 8),
    Workload("FCN h=5 (10 x 1000 x 50, 64 delays)", 10, 1000, 50, 64),
    Workload("transformer (10 x 100 x 65,536, PCA 10, 32 delays)", 10, 100, 65536, 32, pca=10),
    Workload(
        "peer (10 x 100 x 4000 random walk, 32 delays)", 10, 100, 4000, 32,
        peers=("obvious", "pydmd", "deeptime"),
    ),
]


def obvious(data: np.ndarray, w: Workload) -> np.ndarray:
    if w.pca is not None:
        z = data.reshape(-1, data.shape[-1])
        _, _, vh = np.linalg.svd(z, full_matrices=False)
        data = data @ vh[: w.pca].T
    X, Y = delay_embed(data, w.delays)
    U, s, Vh = np.linalg.svd(X, full_matrices=False)
    U, s, V = U[:, :RANK], s[:RANK], Vh[:RANK].T
    return np.linalg.eigvals(U.T @ Y @ V / s)


def _projected(data: np.ndarray, w: Workload) -> np.ndarray:
    # PCA for the peers the way the obvious pipeline does it (they have no PCA of their own).
    if w.pca is None:
        return data
    z = data.reshape(-1, data.shape[-1])
    _, _, vh = np.linalg.svd(z, full_matrices=False)
    return data @ vh[: w.pca].T


def pydmd_eigs(data: np.ndarray, w: Workload) -> np.ndarray:
    from pydmd import DMD

    X, Y = delay_embed(_projected(data, w), w.delays)
    return np.asarray(DMD(svd_rank=RANK).fit(X, Y).eigs)


def deeptime_eigs(data: np.ndarray, w: Workload) -> np.ndarray:
    from deeptime.decomposition import DMD

    X, Y = delay_embed(_projected(data, w), w.delays)
    model = DMD(mode="exact", rank=RANK).fit((X.T, Y.T)).fetch_model()
    return np.asarray(model.eigenvalues)


def ours(data: np.ndarray, w: Workload) -> np.ndarray:
    return koopman_spectrum(data, delays=w.delays, rank=RANK, pca=w.pca).eigenvalues


def measure(fn, data, w, repeats):
    times, peaks, out = [], [], None
    for _ in range(repeats):
        tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        out = fn(data, w)
        times.append(time.perf_counter() - t0)
        peaks.append(tracemalloc.get_traced_memory()[1] - base)
        tracemalloc.stop()
    return statistics.median(times), max(peaks), out


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    cost = np.abs(np.asarray(a)[:, None] - np.asarray(b)[None, :])
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].max() / np.abs(b).max())


def run(workloads, repeats, slow_repeats):
    rows = []
    for w in workloads:
        data = w.data()
        mb = data.nbytes / 2**20
        print(f"\n== {w.name}: input {mb:.0f} MiB", flush=True)
        ref = koopman_spectrum(data, delays=w.delays, rank=RANK, pca=w.pca, path="dense")
        ref_plain = koopman_spectrum(
            data, delays=w.delays, rank=RANK, pca=w.pca, path="dense", method="standard",
            scale=False,
        )
        t, peak, eigs = measure(ours, data, w, repeats)
        path = koopman_spectrum(data, delays=w.delays, rank=RANK, pca=w.pca).settings["path"]
        result = {"workload": w.name, "input_mib": mb, "path": path,
                  "ours": (t, peak, rel_diff(eigs, ref.eigenvalues))}
        print(f"  ours ({path}): {t:.3f} s, peak +{peak / 2**20:.0f} MiB", flush=True)
        for peer in w.peers:
            fn = {"obvious": obvious, "pydmd": pydmd_eigs, "deeptime": deeptime_eigs}[peer]
            t, peak, eigs = measure(fn, data, w, slow_repeats)
            result[peer] = (t, peak, rel_diff(eigs, ref_plain.eigenvalues))
            print(f"  {peer}: {t:.2f} s, peak +{peak / 2**20:.0f} MiB", flush=True)
        rows.append(result)
    return rows


def to_markdown(rows, repeats, slow_repeats) -> str:
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    lines = [
        "# Benchmarks",
        "",
        f"`python benchmarks/bench_spectrum.py` on {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, NumPy {np.__version__}, OMP_NUM_THREADS={threads}. "
        f"Median of {repeats} run(s) for conjugacy, {slow_repeats} for the baselines; peak = "
        "largest growth of traced memory during the call; eig. diff = largest eigenvalue "
        "difference (optimal matching) relative to the largest modulus, against conjugacy's "
        "stable dense path at the same settings. Rank 10 everywhere; data are random walks.",
        "",
        "| workload | input | conjugacy (path) | peak / input | eig. diff | baseline | time | "
        "peak | speed-up | eig. diff |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t, peak, diff = r["ours"]
        first = True
        for peer in ("obvious", "pydmd", "deeptime"):
            if peer not in r:
                continue
            pt, ppeak, pdiff = r[peer]
            head = (
                f"| {r['workload']} | {r['input_mib']:.0f} MiB | {t:.3f} s ({r['path']}) | "
                f"{peak / 2**20 / r['input_mib']:.2f} | {diff:.1e} "
                if first else "| | | | | "
            )
            lines.append(
                head + f"| {peer} | {pt:.2f} s | {ppeak / 2**20:.0f} MiB | {pt / t:.0f}x | {pdiff:.1e} |"
            )
            first = False
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slow-repeats", type=int, default=1)
    parser.add_argument("--only", default=None, help="substring of the workload names to run")
    parser.add_argument("--out", default=None, help="write the Markdown table to this file")
    args = parser.parse_args(argv)
    workloads = [w for w in WORKLOADS if args.only is None or args.only in w.name]
    rows = run(workloads, args.repeats, args.slow_repeats)
    table = to_markdown(rows, args.repeats, args.slow_repeats)
    print("\n" + table)
    if args.out:
        Path(args.out).write_text(table)


if __name__ == "__main__":
    sys.exit(main())
