"""Why the default loses in some synthetic rows of ``bench_settings.py``: rank, delays, eigenvalue error.

Usage:  python benchmarks/bench_settings_mechanism.py [--reps N] [--first-rep R] [--out FILE.md]

For every synthetic row of ``bench_settings.py`` (the same draws: :func:`bench_settings.draw_case`)
and each repetition, the default's settings (``conjugacy analyze``'s delays ``d`` by prediction on
the pilots A and B, and one rank ``k`` for the comparison: the pilots' largest SVHT rank) are taken
apart. Measured per row (means over repetitions):

* ``d``, ``k``, the true number of eigenvalues, each spectrum's own SVHT rank at ``d``;
* the **eigenvalue error** of the default's fit of A: the mean distance from each true eigenvalue
  to its fitted partner (optimal one-to-one matching), and the W1 of the ``k - n_true`` fitted
  eigenvalues left over (the **spurious** ones) between A and A' (the seed-to-seed spread they add);
  the same error of A's fit at the true rank (``error at oracle rank``); how many eigenpairs the
  per-spectrum filter keeps of A's fit and their error (``error of the kept``);
* AUROC of W1(A, B) > W1(A, A') under **interventions**, each changing one thing of the default:
  ``oracle rank`` (rank = the true count at ``d``, at most the delay
  vector's length), ``own SVHT`` (each spectrum's own SVHT rank at
  ``d``), ``+ filter`` (the per-spectrum residual filter), ``8 delays`` (the comparison's SVHT rank
  rule at 8 delays, the paper's), ``oracle selection`` (the default's fit, only the ``n_true``
  eigenvalues matched to the truth kept: what the true modes alone separate; an oracle, not a rule).

An intervention that restores the row's AUROC names the mechanism: spurious modes (oracle rank or
oracle selection restores it), the rank rule (own SVHT does), the delays (8 delays does) or the
fit of the true modes themselves (none does: the eigenvalue error is then as large as the shift
between A and B, 0.1).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).parent))
from bench_separation import auroc  # noqa: E402
from bench_settings import DIMS, MEASUREMENT, PROCESS, _analyze_settings, draw_case  # noqa: E402

from conjugacy import koopman_spectrum, wasserstein  # noqa: E402

#: The interventions, in the table's order (the first is the default itself).
VARIANTS = ("default", "oracle rank", "own SVHT", "+ filter", "8 delays", "oracle selection")


def _fit(x: np.ndarray, delays: int, rank: int | str) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return koopman_spectrum(x, delays=delays, rank=rank, method="standard")


def _matched(ev: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fitted eigenvalues matched one-to-one to ``truth`` (optimal assignment of distances;
    all of them where fewer were fitted than are true), their true partners, and the fitted ones
    left over."""
    rows, cols = linear_sum_assignment(np.abs(ev[:, None] - truth[None, :]))
    rest = np.setdiff1d(np.arange(ev.size), rows)
    return ev[rows], truth[cols], ev[rest]


def _error(ev: np.ndarray, truth: np.ndarray) -> float:
    """Mean distance of the matched pairs of :func:`_matched` (the fit's eigenvalue error)."""
    fitted, partners, _ = _matched(ev, truth)
    return float(np.mean(np.abs(fitted - partners)))


def one_repetition(dim: int, meas: float, sigma: float, rep: int) -> dict:
    """The default's settings, its errors and the same / different W1 of every variant for one
    repetition of a row."""
    recs, lam_a, lam_b = draw_case(dim, meas, sigma, rep)
    truths = (lam_a, lam_a, lam_b)
    d, k = _analyze_settings(recs, (0, 2))
    base = [_fit(r.x, d, k) for r in recs]
    own = [_fit(r.x, d, "svht") for r in recs]
    k8 = max(_fit(recs[i].x, 8, "svht").rank for i in (0, 2))
    parts = [_matched(sp.eigenvalues, t) for sp, t in zip(base, truths)]
    oracle = _fit(recs[0].x, d, min(dim, recs[0].x.shape[2] * (d + 1))).eigenvalues
    kept = base[0].filtered().eigenvalues
    spectra = {
        "default": [sp.eigenvalues for sp in base],
        "oracle rank": [oracle] + [
            _fit(r.x, d, min(dim, r.x.shape[2] * (d + 1))).eigenvalues for r in recs[1:]],
        "own SVHT": [sp.eigenvalues for sp in own],
        "+ filter": [kept] + [sp.filtered().eigenvalues for sp in base[1:]],
        "8 delays": [_fit(r.x, 8, k8).eigenvalues for r in recs],
        "oracle selection": [m for m, _, _ in parts],
    }
    out = {"d": d, "k": k, "own": np.mean([sp.rank for sp in own]), "k8": k8,
           "true_error": float(np.mean(np.abs(parts[0][0] - parts[0][1]))),
           "oracle_error": _error(oracle, lam_a), "kept": kept.size,
           "kept_error": _error(kept, lam_a) if kept.size else np.nan,
           "spurious_w1": (wasserstein(parts[0][2], parts[1][2])
                           if parts[0][2].size and parts[1][2].size else np.nan)}
    for name, (a, a2, b) in spectra.items():
        ok = a.size and a2.size and b.size
        out[name] = (wasserstein(a, a2) if ok else np.nan, wasserstein(a, b) if ok else np.nan)
    return out


def row(dim: int, meas: float, sigma: float, reps: int, first_rep: int = 0) -> dict:
    """Means over repetitions ``first_rep .. first_rep + reps - 1`` and the AUROC of every
    variant for one row."""
    runs = [one_repetition(dim, meas, sigma, rep)
            for rep in range(first_rep, first_rep + reps)]
    out = {key: float(np.nanmean([r[key] for r in runs]))
           for key in ("d", "k", "own", "k8", "true_error", "spurious_w1", "oracle_error",
                       "kept", "kept_error")}
    out["d_range"] = (min(r["d"] for r in runs), max(r["d"] for r in runs))
    for name in VARIANTS:
        out[name] = auroc([r[name][0] for r in runs], [r[name][1] for r in runs])
    return out


def table(results: list[tuple[tuple[int, float, float], dict]]) -> str:
    """The Markdown table: one line per row."""
    head = ("| eigenvalues | meas. | process | delays d (range) | rank k | own SVHT rank | "
            "true-mode error | spurious W1(A, A') | error at oracle rank | filter kept | "
            "error of the kept | " + " | ".join(VARIANTS) + " |")
    lines = [head, "|" + "---|" * (11 + len(VARIANTS))]
    for (dim, meas, sigma), r in results:
        lines.append(
            f"| {dim} | {meas:.0%} | {sigma:g} | {r['d']:.1f} ({r['d_range'][0]}-"
            f"{r['d_range'][1]}) | {r['k']:.1f} | {r['own']:.1f} | {r['true_error']:.3f} | "
            f"{r['spurious_w1']:.3f} | {r['oracle_error']:.3f} | {r['kept']:.1f} | "
            f"{r['kept_error']:.3f} | " + " | ".join(f"{r[v]:.2f}" for v in VARIANTS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=12)
    parser.add_argument("--first-rep", type=int, default=0,
                        help="first repetition (12 on: draws the default was not chosen on)")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    args = parser.parse_args(argv)
    if args.reps < 2:
        parser.error(f"--reps must be at least 2 (an AUROC needs pairs), got {args.reps}")
    t0 = time.process_time()
    results = []
    for dim in DIMS:
        for meas in MEASUREMENT:
            for sigma in PROCESS:
                results.append(((dim, meas, sigma),
                                row(dim, meas, sigma, args.reps, args.first_rep)))
                print(f"row {dim} {meas} {sigma} done", file=sys.stderr, flush=True)
    text = (f"`python benchmarks/bench_settings_mechanism.py --reps {args.reps} --first-rep "
            f"{args.first_rep}` "
            f"({time.process_time() - t0:.0f} s CPU): means over repetitions; AUROC of "
            "W1(A, B) > W1(A, A') per variant.\n\n" + table(results))
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
