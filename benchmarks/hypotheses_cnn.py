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
``lenet300 OUT --models lenet300 --replicas 4``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("test", choices=("archs", "passes", "lenet300"))
    p.add_argument("out", type=Path)
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--window", type=int, default=None)
    p.add_argument("--n-train", type=int, nargs="+", default=[1000, 4000])
    p.add_argument("--models", nargs="+", default=["lenet300", "lenet"],
                   help="lenet300 test: the LeNets (MnistNet = lenet) at the quick scale")
    a = p.parse_args(argv)
    if a.test == "archs":
        summary = test_archs(a.out, a.seeds or 5, a.steps or 100)
    elif a.test == "passes":
        summary = test_passes(a.out, a.n_train, a.steps or 400, a.window or 50, a.seeds or 2,
                              a.replicas)
    else:
        summary = {m: test_passes(a.out, [4000], a.steps or 700, a.window or 100, a.seeds or 3,
                                  a.replicas, lenet=m) for m in a.models}
    (a.out / a.test).mkdir(parents=True, exist_ok=True)
    (a.out / a.test / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
