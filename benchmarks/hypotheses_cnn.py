"""Tests of the CNN study's open claims at CPU scale (issue 24, item 3; ``docs/results_cnn.md``).

Three tests, each a :func:`conjugacy.experiments.cnn.run` at a small, stated scale (one thread):

``archs``
    "LeNet and ResNet-20 are not conjugate in the early windows" with more seeds than the
    paper's 3 (which cannot give p < 0.1): ``--seeds`` seeds x 2 replicas x 100 iterations per
    network (the first window, 0-99, the paper's most distinct one). With 5 seeds the exact
    permutation test can reach 1/126.
``passes``
    "windows become similar after ~700 iterations" vs passes over the data: MnistNet on
    stratified subsets of the MNIST sample (``--n-train``, e.g. 1,000 and 4,000 images), windows
    of ``--window`` iterations; where the windows settle (``settled_from_iteration``, the
    transition rule of ``conjugacy.find_transitions``), in iterations and in passes.
``lenet300``
    The same windows for LeNet-300-100 (whence the Adam 1.2e-3 / batch 60 setting) and MnistNet
    (``--models``) on the 4,000-image sample, at the quick scale's 700 iterations.
``criterion``
    How the paper judged "similar after 700 iterations": its evidence is one distance,
    ``W1(lambda_600:699, lambda_700:799)`` "small" (the dark blue square in the lower right
    corner of fig. 4A's log10 colour scale). MnistNet at the paper's LeNet scale on the sample
    (``--seeds`` x 10 replicas x 1,000 iterations, windows of 100), then every reading of
    "similar" on the one window matrix (:func:`similarity_criteria`): that pair against the
    between-seed floor and on the log10 colour scale; the lower-right block of mutually close
    windows; the distance of every window to the last one; the trend of the consecutive
    distances. ``--from DIR`` re-reads an earlier run's ``results.json`` instead of training;
    with ``--subset K`` its windows are refitted on the first K replicas of each seed (what the
    replica count alone does to the floor and to where the windows settle).

Usage (from the repository root; each writes ``OUT/<test>/.../results.json`` and prints a
summary, also written to ``OUT/<test>/summary.json``)::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/hypotheses_cnn.py archs OUT
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/hypotheses_cnn.py passes OUT \
        --n-train 1000 4000
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/hypotheses_cnn.py lenet300 OUT \
        --models lenet300 --replicas 4

A rerun into the same ``OUT`` resumes (trained seeds are skipped). The runs of
``docs/results_cnn.md`` (issue 24): ``archs OUT --seeds 4``, then ``--seeds 5`` (resumed);
``passes OUT --n-train 1000 4000 --steps 400 --window 50 --seeds 2 --replicas 3``;
``lenet300 OUT --models lenet300 --replicas 4``; ``criterion OUT --seeds 3`` (then
``criterion OUT2 --from OUT/criterion --subset 4``, and 7).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from conjugacy.experiments.cnn import CNNConfig, run


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _windows_summary(content: dict[str, Any], arch: str, iters_per_pass: float) -> dict[str, Any]:
    w = content["windows"][arch]
    f = w.get("findings") or {}
    settled = f.get("settled_from_iteration")
    return {
        "labels": w["labels"],
        "consecutive_distances": f.get("consecutive_distances"),
        "noise_floor": w["noise_floor"],
        "between_seeds_per_window": w.get("between_seeds_per_window"),
        "mean_distance_to_other_windows": w.get("mean_distance_to_other_windows"),
        "change_points": (w.get("transitions") or {}).get("change_points"),
        "change_points_noise_floor": (w.get("transitions_noise_floor") or {}).get("change_points"),
        "threshold": (w.get("transitions") or {}).get("threshold"),
        "settled_from_iteration": settled,
        "settled_from_pass": None if settled is None else settled / iters_per_pass,
        "first_window_most_distinct": f.get("first_window_most_distinct"),
        "final_loss": w["loss"]["mean"][-1],
        "loss_at_window_ends": [w["loss"]["mean"][b - 2] for _, b in w["windows"]],
    }


def _run(config: CNNConfig, out: Path) -> tuple[dict[str, Any], float, float]:
    t0, c0 = time.perf_counter(), _cpu()
    res = run(config, out, figures=False)
    return res.content, time.perf_counter() - t0, _cpu() - c0


def test_archs(out: Path, seeds: int, steps: int) -> dict[str, Any]:
    config = CNNConfig(n_seeds=seeds, n_replicas=2, n_steps=steps, resnet_seeds=seeds,
                       resnet_replicas=2, resnet_steps=steps, threads=1)
    content, wall, cpu = _run(config, out / "archs")
    comp = content["sections"]["architecture_comparison"]
    rows = []
    for r in comp["per_window"]:
        row = {"window": r["window"], "verdict": r["verdict"], "pvalue": r["pvalue"],
               "reason": r["reason"]}
        for which in ("all", "filtered"):
            if which in r:
                e = r[which]
                row[which] = {"distance_per_seed": e["distance_per_seed"],
                              "distance_mean": e["distance_mean"],
                              "between_seeds_mean": e["between_seeds_mean"],
                              "shuffle_fraction_per_seed": e["shuffle_fraction_per_seed"],
                              "pvalue": (e["permutation_test"] or {}).get("pvalue")}
        rows.append(row)
    return {"config": config.to_dict(), "per_window": rows,
            "smallest_possible_pvalue": comp["smallest_possible_pvalue"], "note": comp["note"],
            "wall_s": wall, "cpu_s": cpu}


def test_passes(out: Path, n_trains: list[int], steps: int, window: int, seeds: int,
                replicas: int, lenet: str = "lenet") -> dict[str, Any]:
    rows = {}
    for n in n_trains:
        config = CNNConfig(archs=("lenet",), lenet=lenet, n_train=n, n_seeds=seeds,
                           n_replicas=replicas, n_steps=steps, window=window, threads=1)
        content, wall, cpu = _run(config, out / f"{lenet}_n{n}_w{window}")
        per_pass = n // config.batch_size
        rows[str(n)] = {"iterations_per_pass": per_pass,
                        **_windows_summary(content, "lenet", per_pass),
                        "wall_s": wall, "cpu_s": cpu}
    return {"lenet": lenet, "steps": steps, "window": window, "seeds": seeds,
            "replicas": replicas, "per_n_train": rows}


def _late_block_start(m: np.ndarray, threshold: float) -> int:
    """First window w such that every pair among windows w..last is within ``threshold``."""
    n = len(m)
    w = n - 1
    while w > 0 and m[w - 1, w - 1:].max() <= threshold:
        w -= 1
    return w


def similarity_criteria(content: dict[str, Any], arch: str = "lenet") -> dict[str, Any]:
    """Every reading of "windows similar after ~700 iterations" on one run's window matrices.

    ``content`` is a CNN ``results.json``; uses the mean and per-seed W1 matrices (windows x
    windows) and the between-seed floor (mean W1 between seeds within a window). Returns, with
    ``floor`` that mean: the paper's pair ``d(600-699, 700-799)`` (if both windows exist) as a
    multiple of the floor, its rank among the consecutive distances and its position on the
    log10 colour scale of the off-diagonal entries (0 darkest, 1 brightest); the consecutive
    distances / floor; the distance of each window to the last / floor; the start of the
    lower-right block of windows mutually within ``k x floor`` (k = 1, 1.5, 2); Spearman's rho
    of consecutive distance vs time from window 100-199 on, per seed and on the mean.
    """
    w = content["windows"][arch]
    labels, m = w["labels"], np.asarray(w["mean_matrix"], dtype=float)
    floor = float(w["noise_floor"])
    off = m[~np.eye(len(m), dtype=bool)]
    lo, hi = np.log10(off.min()), np.log10(off.max())
    cons = np.diag(m, 1)
    out: dict[str, Any] = {"labels": labels, "floor": floor,
                           "between_seeds_per_window": w["between_seeds_per_window"],
                           "consecutive": cons.tolist(),
                           "consecutive_over_floor": (cons / floor).tolist(),
                           "to_last_over_floor": (m[:, -1] / floor).tolist()}
    if "600-699" in labels and "700-799" in labels:
        i = labels.index("600-699")
        d = float(m[i, i + 1])
        out["paper_pair"] = {"distance": d, "over_floor": d / floor,
                             "rank_among_consecutive": int((cons < d).sum()) + 1,
                             "n_consecutive": len(cons),
                             "log10_colour_position": float((np.log10(d) - lo) / (hi - lo))}
    out["late_block_start"] = {str(k): labels[_late_block_start(m, k * floor)]
                               for k in (1.0, 1.5, 2.0)}
    seeds = [np.diag(np.asarray(p, dtype=float), 1)[1:] for p in w["per_seed_matrices"]]
    t = np.arange(len(cons) - 1)
    out["trend_rho"] = {"mean": float(spearmanr(t, cons[1:]).statistic),
                        "per_seed": [float(spearmanr(t, c).statistic) for c in seeds]}
    return out


def refit_windows(source: Path, n_replicas: int) -> dict[str, Any]:
    """The LeNet windows of an earlier run refitted on the first ``n_replicas`` replicas of
    every seed (the same trajectories, fewer of them: what the replica count alone does)."""
    from conjugacy.analysis.windowed import window_distances
    from conjugacy.study import StudyReader
    from conjugacy.windows import windowed_spectra

    content = json.loads((source / "results.json").read_text())
    cfg = content["config"]
    windows = [tuple(w) for w in content["windows"]["lenet"]["windows"]]
    spectra = []
    with StudyReader.open(source / "lenet") as reader:
        for seed in range(cfg["n_seeds"]):
            runs = [f"lenet_seed{seed}_{i}" for i in range(n_replicas)]
            traj = reader.read(params="fc2.weight", runs=runs, steps=slice(0, windows[-1][1]),
                               dtype=np.float64)
            spectra.append(windowed_spectra(traj, cfg["window"], delays=cfg["delays"],
                                            rank=cfg["rank"]))
    w = window_distances(spectra, windows, content["windows"]["lenet"]["labels"])
    w["loss"] = content["windows"]["lenet"]["loss"]
    return {"config": {**cfg, "n_replicas": n_replicas}, "windows": {"lenet": w}}


def test_criterion(out: Path, seeds: int, replicas: int, steps: int,
                   source: Path | None, subset: int | None = None) -> dict[str, Any]:
    if source is not None and subset is not None:
        content = refit_windows(source, subset)
        timing = {"source": str(source), "replicas_used": subset}
    elif source is not None:
        content = json.loads((source / "results.json").read_text())
        timing = {"source": str(source)}
    else:
        config = CNNConfig(archs=("lenet",), n_train=4000, n_seeds=seeds, n_replicas=replicas,
                           n_steps=steps, window=100, threads=1)
        content, wall, cpu = _run(config, out / "criterion")
        timing = {"wall_s": wall, "cpu_s": cpu}
    per_pass = 4000 // content["config"]["batch_size"]
    return {"config": content["config"], **timing,
            "windows": _windows_summary(content, "lenet", per_pass),
            "criteria": similarity_criteria(content, "lenet")}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("test", choices=("archs", "passes", "lenet300", "criterion"))
    p.add_argument("out", type=Path)
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--replicas", type=int, default=None,
                   help="replicas per seed (default 10 for criterion, 3 otherwise)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--window", type=int, default=None)
    p.add_argument("--n-train", type=int, nargs="+", default=[1000, 4000])
    p.add_argument("--models", nargs="+", default=["lenet300", "lenet"],
                   help="lenet300 test: the LeNets (MnistNet = lenet) at the quick scale")
    p.add_argument("--from", dest="source", type=Path, default=None,
                   help="criterion test: read this run's results.json instead of training")
    p.add_argument("--subset", type=int, default=None,
                   help="criterion test with --from: refit on the first SUBSET replicas per seed")
    a = p.parse_args(argv)
    if a.test == "archs":
        summary = test_archs(a.out, a.seeds or 5, a.steps or 100)
    elif a.test == "passes":
        summary = test_passes(a.out, a.n_train, a.steps or 400, a.window or 50, a.seeds or 2,
                              a.replicas or 3)
    elif a.test == "criterion":
        summary = test_criterion(a.out, a.seeds or 3, a.replicas or 10,
                                 a.steps or 1000, a.source, a.subset)
    else:
        summary = {m: test_passes(a.out, [4000], a.steps or 700, a.window or 100, a.seeds or 3,
                                  a.replicas or 3, lenet=m) for m in a.models}
    (a.out / a.test).mkdir(parents=True, exist_ok=True)
    (a.out / a.test / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
