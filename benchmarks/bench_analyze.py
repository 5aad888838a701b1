"""Where does ``conjugacy analyze`` spend its time, and how much memory does it take?

Usage:  python benchmarks/bench_analyze.py [--case profile|realistic] [--src PATH ...]
                                          [--skip-checkout] [--store DIR] [--repeats N]
                                          [--modes report no-report] [--profile N]
                                          [--options JSON]

Cases (issue 19):
* ``profile``   -- 2 conditions x 4 seeds x 4 replicas x 240 records x 400 float32 features
                   (a 12 MB store): the share of the time spent outside spectrum fits and
                   statistics;
* ``realistic`` -- 3 conditions x 4 seeds x 10 replicas x 1,000 records x 5,000 float32 features
                   (a 2.1 GB store): CPU time and peak memory against the store's size.

The trajectories are noisy random walks with a slow linear drift (SGD-like: every direction
moves); the store is written once into ``--store`` (default: a temporary folder) and reused.
``--src`` also runs another checkout's ``src`` (e.g. ``git archive COMMIT src``; repeatable,
``--skip-checkout`` to run only those) in the same environment, interleaved with this one
``--repeats`` times, so before and after are measured on the same machine in one run.
Reported, for ``conjugacy analyze`` as the CLI runs it (results.json into a folder; with the
report, the default, and ``--no-report``; ``--options`` passes keyword arguments): wall and CPU
seconds, the CPU seconds of the spectrum fits (``FITS``: spectra and the settings pilots), the
statistics (``STATISTICS``: the comparison with its permutation tests, the neighbour check with
its refits) and the share outside both (timed by thin wrappers, :class:`Timers`; cProfile's
overhead skews it), the report's part of it, the verdicts, and the peak resident memory of the
process (VmHWM) against the store's size on disk. The summary gives ranges over the repeats and
the ratio of the outside time of this checkout to each ``--src`` one, repeat by repeat.
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
from typing import Any

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


#: What counts as "spectrum fits" (every DMD / reduced-rank regression: the spectra, the settings
#: pilots -- the delay choice and the capped SVHT rank) and as "statistics" (the comparison, its
#: permutation tests, and the neighbour check: its refits and its comparisons). Everything else --
#: importing, opening the store, reading metadata and chunks, grouping, JSON, the report and its
#: figures -- is "outside". ``(module, attribute)``; a dotted attribute is a method.
FITS = (("conjugacy.spectrum", "koopman_spectrum"), ("conjugacy.spectrum", "koopman_spectra"),
        ("conjugacy.spectrum", "spectrum_from_gram"), ("conjugacy.spectrum", "capped_svht_rank"),
        ("conjugacy.delays", "choose_delays"))
STATISTICS = (("conjugacy.analysis.comparison", "compare_conditions"),
              ("conjugacy.analysis.neighbours", "neighbour_check"))
#: Parts of the outside time shown on their own.
OUTSIDE = {"report_writing": (("conjugacy.report._render", "write_report"),),
           "figures": (("conjugacy.report._figures", "report_figures"),)}


class Timers:
    """CPU time (``time.process_time``) of the outermost calls of each category's functions.

    Categories of one ``family`` are exclusive: a call nested in another category of its family
    (a neighbour refit inside the neighbour check) counts once, for the outermost category, so
    ``cpu - fits - statistics`` is what lies outside both. Each category is its own family
    unless ``families`` names one.

    Every reference to a wrapped function in the ``conjugacy`` modules is replaced, so calls
    through ``from .x import f`` are timed too. A thin wrapper instead of cProfile: cProfile's
    per-call cost inflates Python-heavy code (Matplotlib, Zarr) several-fold against BLAS-heavy
    fits (the report's two figures: ~3 s under cProfile, 0.5-0.6 s without), which would skew
    the share this benchmark reports."""

    def __init__(self, categories: dict[str, tuple[tuple[str, str], ...]],
                 families: dict[str, str] | None = None) -> None:
        import importlib

        self.seconds = dict.fromkeys(categories, 0.0)
        self._family = {c: (families or {}).get(c, c) for c in categories}
        self._depth = dict.fromkeys(self._family.values(), 0)
        swaps = {}
        for cat, targets in categories.items():
            for module, attr in targets:
                owner = importlib.import_module(module)
                *path, name = attr.split(".")
                for part in path:
                    owner = getattr(owner, part)
                original = getattr(owner, name)
                swaps[id(original)] = (original, self._wrap(cat, original))
                setattr(owner, name, swaps[id(original)][1])
        for mod in [m for n, m in sys.modules.items() if n.startswith("conjugacy")]:
            for key, value in list(vars(mod).items()):
                if id(value) in swaps and value is swaps[id(value)][0]:
                    setattr(mod, key, swaps[id(value)][1])

    def _wrap(self, cat: str, fn: Any) -> Any:
        import functools

        family = self._family[cat]

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth[family] += 1
            t0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth[family] -= 1
                if self._depth[family] == 0:
                    self.seconds[cat] += time.process_time() - t0

        return timed


def measure(store: Path, options: dict, report: bool, profile: int) -> dict:
    """Run in a child process (fresh imports and peak memory): ``conjugacy analyze`` once, as the
    CLI runs it (results.json, and the report unless ``report`` is False, into a folder), timed
    by :class:`Timers` with CPU time (the machine is shared: wall time counts other processes'
    work); with ``profile``, also the ``profile`` largest cumulative entries under cProfile."""
    import conjugacy

    timers = Timers({"fits": FITS, "statistics": STATISTICS, **OUTSIDE},
                    families={"fits": "inside", "statistics": "inside"})
    prof = cProfile.Profile(time.process_time) if profile else None
    with tempfile.TemporaryDirectory() as out:
        w0, c0 = time.perf_counter(), time.process_time()
        if prof is not None:
            prof.enable()
        res = conjugacy.analyze(store, out=out, report=report, **options)
        if prof is not None:
            prof.disable()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        verdicts = json.loads((Path(out) / "results.json").read_text())
    sec = timers.seconds
    outside = cpu - sec["fits"] - sec["statistics"]
    st = res.content["settings"]
    row = {"conjugacy": conjugacy.__file__, "wall": wall, "cpu": cpu, "peak_mb": _peak_mb(),
           **sec, "report": report, "outside": outside, "outside_pct": 100 * outside / cpu,
           "delays": st["delays"], "rank": st["rank"],
           "verdicts": _verdicts(verdicts)}
    if prof is not None:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(profile)
    return row


def _verdicts(results: dict) -> dict:
    """Each pair's verdict and p-value from results.json, and a digest of every spectrum
    (eigenvalues, residuals, ranks, settings), to check that before and after agree."""
    import hashlib

    cmp = results.get("comparison") or {}
    out = {str(k): [v.get("verdict"), v.get("pvalue")] if isinstance(v, dict) else v
           for k, v in (cmp.get("verdicts") or {}).items()}
    around = {k: v for k, v in (cmp.get("neighbourhood") or {}).items() if k != "cpu_seconds"}
    text = json.dumps([results.get("spectra"), cmp.get("all"), around], sort_keys=True)
    out["spectra_sha256"] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return out


def _summary(rows: list[dict]) -> None:
    """Ranges per checkout and mode, and the after/before ratios of CPU and outside time."""
    print("\nsummary (ranges over repeats; CPU seconds):")
    keys = sorted({(r["name"], r["report"]) for r in rows}, key=lambda k: (k[1], k[0]))
    for name, report in keys:
        sel = [r for r in rows if r["name"] == name and r["report"] == report]

        def rng(k: str, fmt: str = ".2f", sel: list = sel) -> str:
            lo, hi = min(r[k] for r in sel), max(r[k] for r in sel)
            return f"{lo:{fmt}}-{hi:{fmt}}"

        print(f"  {name} {'report' if report else '--no-report'}: CPU {rng('cpu')}, fits "
              f"{rng('fits')}, statistics {rng('statistics')}, outside {rng('outside')} "
              f"({rng('outside_pct', '.1f')} %), report {rng('report_writing')} (figures "
              f"{rng('figures')}), wall {rng('wall')}, peak {rng('peak_mb', '.0f')} MB")
    names = list(dict.fromkeys(r["name"] for r in rows))
    for report in sorted({r["report"] for r in rows}):
        for other in names[:-1]:
            pairs = [(a, b) for a, b in zip(
                [r for r in rows if r["name"] == other and r["report"] == report],
                [r for r in rows if r["name"] == names[-1] and r["report"] == report])]
            ratios = [b["outside"] / a["outside"] for a, b in pairs]
            if ratios:
                print(f"  {'report' if report else '--no-report'}: outside time {names[-1]} / "
                      f"{other} per repeat: {min(ratios):.2f}-{max(ratios):.2f}; verdicts equal: "
                      f"{all(a['verdicts'] == b['verdicts'] for a, b in pairs)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=sorted(CASES), default="profile")
    ap.add_argument("--src", type=Path, action="append", default=[],
                    help="another checkout's src (repeatable)")
    ap.add_argument("--skip-checkout", action="store_true",
                    help="time only the --src checkouts (e.g. clean archives of two commits)")
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--modes", nargs="+", choices=("report", "no-report"),
                    default=["report", "no-report"],
                    help="conjugacy analyze with its report (the default) and/or --no-report")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="also print the N largest cumulative entries under cProfile")
    ap.add_argument("--options", default="{}",
                    help="keyword arguments of conjugacy.analyze as JSON, e.g. '{\"rank\": 20}'")
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        row = measure(args.child, json.loads(args.options), args.modes == ["report"],
                      args.profile)
        print("ROW " + json.dumps(row), flush=True)
        return
    root = args.store or Path(tempfile.mkdtemp()) / f"{args.case}.zarr"
    if not root.exists():
        t0 = time.perf_counter()
        make_store(root, args.case)
        print(f"wrote {root} in {time.perf_counter() - t0:.0f} s: case {args.case}, "
              f"{CASES[args.case]}")
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20
    print(f"store {root}: {size:.0f} MB")
    # interleaved: before, after, before, after, ...
    runs = [(str(src), {**os.environ, "PYTHONPATH": str(src.resolve())}) for src in args.src]
    if not args.skip_checkout:
        runs.append(("this checkout", None))
    rows = []
    for rep in range(args.repeats):
        for mode in args.modes:
            for name, env in runs:
                rows.append({"name": name, **_child(root, args, mode, env)})
                r = rows[-1]
                print(f"repeat {rep + 1} {mode:9s} {name}: CPU {r['cpu']:.2f} s (wall "
                      f"{r['wall']:.2f}), fits {r['fits']:.2f}, statistics "
                      f"{r['statistics']:.2f}, outside {r['outside']:.2f} s = "
                      f"{r['outside_pct']:.1f} % (report {r['report_writing']:.2f}, figures "
                      f"{r['figures']:.2f}), peak {r['peak_mb']:.0f} MB, delays {r['delays']}, "
                      f"rank {r['rank']}, verdicts {r['verdicts']}", flush=True)
    _summary(rows)


def _child(root: Path, args: argparse.Namespace, mode: str, env: dict | None) -> dict:
    """One measurement in a fresh process; its row (the child's last line)."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(root), "--options", args.options,
         "--modes", mode, "--profile", str(args.profile)],
        check=True, env=env, stdout=subprocess.PIPE, text=True)
    lines = done.stdout.splitlines()
    print("\n".join(line for line in lines if not line.startswith("ROW ")))
    row = json.loads(next(line for line in reversed(lines) if line.startswith("ROW "))[4:])
    return row


if __name__ == "__main__":
    main()
