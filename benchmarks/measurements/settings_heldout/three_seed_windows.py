"""Delay choice of each window of K consecutive seeds of a first-hour store (issue 20).

Per condition, the first runs of each seed of the window (at most BUDGET snapshots per seed, as
``own_runs._pilot_shape`` takes them for BUDGET = 2400), each seed scored on its own and the
held-out errors averaged (``choose_delays(..., seeds=)``), at the capped rank (70). BUDGET 2400
is the rule ``conjugacy analyze`` uses; 800 is the rejected alternative (the one-seed budget split
over three seeds). Prints the window, its CPU seconds and each condition's choice.

Usage (from the repository root)::

    python benchmarks/measurements/settings_heldout/three_seed_windows.py STORE 3 2400
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench_settings import first_hour  # noqa: E402

from conjugacy.delays import choose_delays  # noqa: E402


def main(store: str, k: int, budget: int) -> None:
    recs, cond, seed = first_hour(Path(store))
    seeds = sorted(set(seed))
    for i in range(len(seeds) - k + 1):
        window = seeds[i : i + k]
        t0, shown = time.process_time(), []
        for c in dict.fromkeys(cond):
            per_seed = [recs[j].x for j, (cj, sj) in enumerate(zip(cond, seed))
                        if cj == c and sj in window]
            n = per_seed[0].shape[1]
            runs = min(per_seed[0].shape[0], max(2, budget // n))
            steps = min(n, max(6, budget // runs))
            trajs = [a[r, :steps] for a in per_seed for r in range(runs)]
            labels = [s for s in range(len(per_seed)) for _ in range(runs)]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ch = choose_delays(trajs, seeds=labels, max_rank=70)
            err = ch.errors[ch.candidates.index(ch.delays)]
            shown.append(f"{c[:14]} {ch.delays} ({err:.3g})")
        print(window, f"{time.process_time() - t0:.1f}s", "; ".join(shown), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
