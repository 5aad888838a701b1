"""Where does ``conjugacy analyze`` spend its time, and how much memory does it take?

Usage:  python benchmarks/bench_analyze.py [--case profile|realistic] [--src PATH ...]
                                          [--skip-checkout] [--store DIR] [--repeats N]
                                          [--options JSON]

Cases (issue 19):
* ``profile``   -- 2 conditions x 4 seeds x 4 replicas x 240 records x 400 float32 features
                   (a 12 MB store): the share of the time spent outside spectrum fits and
                   statistics;
* ``realistic`` -- 3 conditions x 4 seeds x 10 replicas x 1,000 records x 5,000 float32 features
                   (a 2.4 GB store): CPU time and peak memory against the store's size.

The trajectories are noisy random walks with a slow linear drift (SGD-like: every direction
moves); the store is written once into ``--store`` (default: a temporary folder) and reused.
``--src`` also runs another checkout's ``src`` (e.g. ``git archive COMMIT src``; repeatable,
``--skip-checkout`` to run only those) in the same environment, interleaved with this one
``--repeats`` times, so before and after are measured on the same machine in one run.
Reported: wall and CPU seconds of ``conjugacy.analyze``
(``report=False``; ``--options`` passes keyword arguments), the share of its CPU time (cProfile
with a CPU-time timer) outside the spectrum fits (``FITS``: spectra, neighbour refits, the
settings pilots) and the statistics (``compare_conditions``), and the peak resident memory of the
process (VmHWM) against the store's size on disk.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
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


#: Functions whose time counts as "spectrum fits" (every DMD / reduced-rank regression: the
#: spectra, the neighbour refits -- koopman_spectra since they share one factorization -- and the
#: settings pilots) and as "statistics".
FITS = ("koopman_spectrum", "koopman_spectra", "spectrum_from_gram", "choose_delays",
        "capped_svht_rank")
STATISTICS = ("compare_conditions",)


def measure(store: Path, options: dict) -> None:
    """Run in a child process (fresh peak memory): analyze once under cProfile with a CPU-time
    timer (the machine is shared: wall time would count other processes' work)."""
    import conjugacy

    prof = cProfile.Profile(time.process_time)
    w0, c0 = time.perf_counter(), time.process_time()
    prof.enable()
    res = conjugacy.analyze(store, report=False, **options)
    prof.disable()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    stats = pstats.Stats(prof)
    fits = sum(stats_time(stats, f) for f in FITS)
    comparison = sum(stats_time(stats, f) for f in STATISTICS)
    total = stats_time(stats, "analyze")
    st = res.content["settings"]
    print(f"conjugacy {conjugacy.__file__}")
    print(f"settings: delays {st['delays']}, rank {st['rank']}")
    print(f"wall {wall:.2f} s, CPU {cpu:.2f} s, peak memory {_peak_mb():.0f} MB")
    print(f"fits {fits:.2f} s, statistics {comparison:.2f} s, outside both "
          f"{100 * (total - fits - comparison) / total:.1f} % of {total:.2f} s CPU "
          f"(choose_delays {stats_time(stats, 'choose_delays'):.2f} s)")


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
    ap.add_argument("--src", type=Path, action="append", default=[],
                    help="another checkout's src (repeatable)")
    ap.add_argument("--skip-checkout", action="store_true",
                    help="time only the --src checkouts (e.g. clean archives of two commits)")
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--options", default="{}",
                    help="keyword arguments of conjugacy.analyze as JSON, e.g. '{\"rank\": 20}'")
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        measure(args.child, json.loads(args.options))
        return
    root = args.store or Path(tempfile.mkdtemp()) / f"{args.case}.zarr"
    if not root.exists():
        t0 = time.perf_counter()
        make_store(root, args.case)
        print(f"wrote {root} in {time.perf_counter() - t0:.0f} s")
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20
    print(f"case {args.case}: {CASES[args.case]} -> store of {size:.0f} MB")
    # interleaved: before, after, before, after, ...
    runs = [(str(src), {**os.environ, "PYTHONPATH": str(src.resolve())}) for src in args.src]
    if not args.skip_checkout:
        runs.append(("this checkout", None))
    for rep in range(args.repeats):
        for name, env in runs:
            print(f"--- repeat {rep + 1}: {name}", flush=True)
            subprocess.run([sys.executable, __file__, "--child", str(root), "--options",
                            args.options], check=True, env=env)


if __name__ == "__main__":
    main()
