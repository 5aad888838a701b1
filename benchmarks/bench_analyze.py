"""Where does ``conjugacy analyze`` spend its time, and how much memory does it take?

Usage:  python benchmarks/bench_analyze.py [--case profile|realistic] [--src PATH] [--store DIR]

Cases (issue 19):
* ``profile``   -- 2 conditions x 4 seeds x 4 replicas x 240 records x 400 float32 features
                   (a 12 MB store): the share of the time spent outside spectrum fits and
                   statistics;
* ``realistic`` -- 3 conditions x 4 seeds x 10 replicas x 1,000 records x 5,000 float32 features
                   (a 2.4 GB store): CPU time and peak memory against the store's size.

The trajectories are noisy random walks with a slow linear drift (SGD-like: every direction
moves); the store is written once into ``--store`` (default: a temporary folder) and reused.
``--src`` runs another checkout's ``src`` (e.g. a worktree of an earlier commit) in the same
environment, so before and after are measured on the same machine in one session. Reported: wall
and CPU seconds of ``conjugacy.analyze`` (``report=False``), the cProfile share of the time in
``koopman_spectrum`` and in the comparison (statistics), and the peak resident memory of the
process (VmHWM) against the store's size on disk.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {"profile": (2, 4, 4, 240, 400), "realistic": (3, 4, 10, 1000, 5000)}


def make_store(path: Path, case: str) -> None:
    import numpy as np

    from conjugacy.store import TrajectoryStore

    n_cond, n_seeds, n_rep, n_rec, n_feat = CASES[case]
    rng = np.random.default_rng(0)
    with TrajectoryStore.open(path, "w") as st:
        for c in range(n_cond):
            drift = rng.standard_normal(n_feat).astype(np.float32) * (1e-3 * (c + 1))
            for s in range(n_seeds):
                base = rng.standard_normal(n_feat).astype(np.float32)
                for r in range(n_rep):
                    name = f"c{c}_s{s}_r{r}"
                    st.create_run(name, {"w": ((n_feat,), "float32")},
                                  metadata={"condition": f"c{c}", "seed": s})
                    x = np.empty((n_rec, n_feat), np.float32)
                    x[0] = base + 1e-3 * rng.standard_normal(n_feat, dtype=np.float32)
                    for t in range(1, n_rec):
                        x[t] = x[t - 1] + drift + 1e-2 * rng.standard_normal(n_feat,
                                                                               dtype=np.float32)
                    st.append(name, np.arange(n_rec), {"w": x})
                    st.set_finished(name)


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(store: Path) -> None:
    """Run in a child process (fresh peak memory): analyze once under cProfile."""
    import conjugacy

    prof = cProfile.Profile()
    w0, c0 = time.perf_counter(), time.process_time()
    prof.enable()
    conjugacy.analyze(store, report=False)
    prof.disable()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    stats = pstats.Stats(prof)
    fits = stats_time(stats, "koopman_spectrum")
    comparison = stats_time(stats, "compare_conditions")
    total = stats_time(stats, "analyze")
    tasks = (stats_time(stats, "_fit_one") + stats_time(stats, "_fit_group")
             + stats_time(stats, "choose_rank"))  # read + fit
    print(f"conjugacy {conjugacy.__file__}")
    print(f"wall {wall:.2f} s, CPU {cpu:.2f} s, peak memory {_peak_mb():.0f} MB")
    print(f"koopman_spectrum {fits:.2f} s, compare_conditions {comparison:.2f} s, "
          f"outside both {100 * (total - fits - comparison) / total:.1f} % of {total:.2f} s")
    if tasks:
        print(f"fit tasks (reading a group + its fit, and the rank pilots) {tasks:.2f} s: outside "
              f"them and the statistics {100 * (total - tasks - comparison) / total:.1f} %")


def stats_time(stats: pstats.Stats, name: str) -> float:
    """Cumulative time of the outermost calls of functions called ``name``."""
    out = 0.0
    for (_file, _line, func), (_cc, _nc, _tt, ct, callers) in stats.stats.items():
        if func == name and not any(c[2] == name for c in callers):
            out += ct
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=sorted(CASES), default="profile")
    ap.add_argument("--src", type=Path, default=None)
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        measure(args.child)
        return
    root = args.store or Path(tempfile.mkdtemp()) / f"{args.case}.zarr"
    if not root.exists():
        t0 = time.perf_counter()
        make_store(root, args.case)
        print(f"wrote {root} in {time.perf_counter() - t0:.0f} s")
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20
    print(f"case {args.case}: {CASES[args.case]} -> store of {size:.0f} MB")
    env = None
    if args.src is not None:
        import os

        env = {**os.environ, "PYTHONPATH": str(args.src.resolve())}
    subprocess.run([sys.executable, __file__, "--child", str(root)], check=True, env=env)


if __name__ == "__main__":
    main()
