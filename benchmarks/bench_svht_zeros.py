"""SVHT on rank-deficient delay matrices (issue 20 review, defect 1): the rule's ranks and the
capped shortcut's CPU time against computing every eigenvalue, in one run.

1. Ranks: a rank-4 linear latent system (two rotating pairs) seen through 10 channels with 5 %
   measurement noise, 5 runs x 100 steps, alone, with 30 constant channels, or duplicated 4
   times; 0, 2, 4 delays; 10 seeds. The median over all ``min(n, m)`` singular values (the
   textbook rule, dense SVD and from the Gram) against :func:`conjugacy.dmd.svht_rank` (the
   median over the nonzero ones); the right answer is the rank of the 10 channels alone (+1 for
   the constant direction).
2. Noiseless rank 2-6 systems in 40 channels (float64 and float32), 0 and 3 delays: the rank on
   the dense, Gram and covariance paths and the spread of the threshold over them.
3. :func:`conjugacy.dmd.capped_svht` at cap 70 on SGD-like walks of 1,418 weights (5 x 301
   steps, 0-64 delays): CPU time against a full ``eigvalsh`` of the same Gram (ratio).

Run: ``OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_svht_zeros.py`` (~1 min of CPU).
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from conjugacy import koopman_spectrum
from conjugacy.dmd import capped_svht, svht_omega, svht_rank
from conjugacy.observables import DelayOperator, delay_gram_blocks, n_pairs, snapshot_gram
from conjugacy.spectrum_paths import all_singular_values


def _textbook(s: np.ndarray, shape: tuple[int, int]) -> int:
    p = min(shape)
    return int(np.sum(s[:p] > svht_omega(p / max(shape)) * np.median(s[:p])))


def _latent(rng: np.random.Generator) -> list[np.ndarray]:
    A = np.zeros((4, 4))
    for i, lam in enumerate((0.97 * np.exp(0.3j), 0.9 * np.exp(0.9j))):
        A[2 * i:2 * i + 2, 2 * i:2 * i + 2] = [[lam.real, -lam.imag], [lam.imag, lam.real]]
    C, out = rng.standard_normal((10, 4)), []
    for _ in range(5):
        z = np.zeros((100, 4))
        z[0] = rng.standard_normal(4)
        for t in range(1, 100):
            z[t] = A @ z[t - 1] + 0.05 * rng.standard_normal(4)
        y = z @ C.T
        out.append(y + 0.05 * y.std() * rng.standard_normal(y.shape))
    return out


def ranks() -> None:
    rows: dict[tuple[int, str], list[tuple[int, ...]]] = {}
    for seed in range(10):
        rng = np.random.default_rng(seed)
        base, c = _latent(rng), rng.standard_normal(30)
        variants = {"alone": base,
                    "+30 constant": [np.concatenate([y, np.ones((100, 30)) * c], 1) for y in base],
                    "x4 duplicated": [np.concatenate([y] * 4, 1) for y in base]}
        for d in (0, 2, 4):
            for name, runs in variants.items():
                op = DelayOperator(runs, d)
                dense = np.linalg.svd(op.x_times(np.eye(op.shape[1])), compute_uv=False)
                gram = all_singular_values(op, np.ones(op.shape[1]))
                rows.setdefault((d, name), []).append((
                    _textbook(dense, op.shape), _textbook(gram, op.shape),
                    svht_rank(dense, op.shape)[0], svht_rank(gram, op.shape)[0]))
    print("delays, data | textbook dense | textbook Gram | nonzero dense | nonzero Gram")
    for (d, name), v in rows.items():
        a = np.array(v)
        print(f"{d}, {name:14s}", " | ".join(f"{a[:, i].min()}-{a[:, i].max()}" for i in range(4)))


def noiseless() -> None:
    wrong, spread = 0, 0.0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        k = int(rng.integers(2, 7))
        lam = rng.uniform(0.3, 0.97, k)
        x = (rng.standard_normal((6, 1, k)) * lam ** np.arange(60)[:, None]) @ \
            rng.standard_normal((k, 40))
        for dtype in (np.float64, np.float32):
            for d in (0, 3):
                fits = [koopman_spectrum(x.astype(dtype), delays=d, rank="svht", path=p)
                        for p in ("dense", "gram", "covariance")]
                wrong += sum(f.rank != k for f in fits)
                tau = [f.settings["rank_rule"]["threshold"] for f in fits]
                spread = max(spread, max(tau) / min(tau) - 1)
    print(f"noiseless rank 2-6: {wrong} of 120 fits off the exact rank; "
          f"threshold spread over paths {spread:.1e}")


def capped() -> None:
    rng = np.random.default_rng(0)
    drift = rng.standard_normal(1418) * 0.02
    trajs = [np.cumsum(drift * np.exp(-np.arange(301) / 100)[:, None]
                       + 0.01 * rng.standard_normal((301, 1418)), 0) + rng.standard_normal(1418)
             for _ in range(5)]
    gram, offsets = snapshot_gram(trajs)
    for d in (0, 1, 4, 16, 64):
        g = delay_gram_blocks(gram, offsets, d)[0]
        shape = (1418 * (d + 1), n_pairs(trajs, d))
        t_cap, t_eig = [], []
        for _ in range(3):
            t = time.process_time()
            k = capped_svht(g, shape, 70)[0]
            t_cap.append(time.process_time() - t)
            t = time.process_time()
            np.linalg.eigvalsh(g)
            t_eig.append(time.process_time() - t)
        print(f"capped_svht, {d} delays, Gram {g.shape[0]}: rank {k}, "
              f"{min(t_cap):.3f}-{max(t_cap):.3f} s CPU, "
              f"{min(t_cap) / min(t_eig):.2f} of one eigvalsh")


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    ranks()
    noiseless()
    capped()
