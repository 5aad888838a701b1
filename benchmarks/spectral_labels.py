"""True vs random labels at matched movement from initialization (issue 24, item 3;
``docs/results_spectral_dynamics.md``).

The companion paper (Yunis et al., app. D.8) reports that true labels give the middle layers of
its MLP a *lower* effective rank than random labels; the quick reproduction finds the opposite
order in W while the update W - W0 has the paper's order, and the random-label weights move
1.2-3.9x as far from W0. The hypothesis: W's effective rank mixes the flat spectrum of W0 with a
low-rank update, and the larger random-label update pulls W's rank further down. This script
tests it by comparing the two label sets **at matched movement** ``r = ||W - W0|| / ||W0||``
(Frobenius, per middle layer):

- *trajectory*: the effective rank of W at the first checkpoint where each run's layer has moved
  ``r`` (linear interpolation between the two checkpoints around the crossing), for ``r`` on a
  grid and at ``r_T`` = the true-label run's final movement (the largest movement both reach);
- *update direction*: the effective rank of ``W0 + r ||W0|| U / ||U||`` with ``U`` each run's
  final update (both runs of a seed start from the same W0 and see the same batch order), which
  keeps the update's shape and sets its size; at the run's own final ``r`` it is its final W;
- and the effective rank of the update W - W0 itself at matched movement (``trajectory_update_rank``).

Protocol (the reproduction's MLP 784-256-256-256-10, data, label rule, batch order and SGD
through :class:`conjugacy.experiments.spectral_dynamics.SpectralConfig`): per seed the random-label
run trains until it fits every training label (or ``--max-epochs``), then the true-label run for
the same number of epochs; the middle layers are measured ``--per-epoch`` times per epoch.
Effective rank: :func:`conjugacy.spectral_dynamics.effective_rank` (exp-entropy / min(m, n)).

A seed whose random-label run did not fit every label within ``--max-epochs`` is still
compared (the same epochs for both label sets), but the summary then warns: one ``warning:``
line on stderr and the same text in ``summary.json`` (``warnings``), since the comparison is
then not the protocol's (the random labels are not memorised).

Usage (from the repository root; prints a table, writes ``OUT/summary.json``)::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/spectral_labels.py OUT \
        --seeds 0 1 2 3 4 5 6 7 --lr 0.05 --n-train 1000
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("trajectory_rank", "trajectory_update_rank", "direction_rank")
GRID = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _middle(model: Any) -> dict[str, np.ndarray]:
    """The middle weight matrices (every >= 2-D parameter but the first and the last), float64."""
    w = [(n, p) for n, p in model.named_parameters() if p.ndim >= 2]
    return {n: p.detach().numpy().astype(np.float64) for n, p in w[1:-1]}


def _measure(w: dict[str, np.ndarray], w0: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """Per layer: [movement ||W - W0|| / ||W0||, effective rank of W, of W - W0 (NaN at 0)]."""
    from conjugacy.spectral_dynamics import effective_rank

    out = {}
    for n, v in w.items():
        d = v - w0[n]
        ranks = effective_rank(np.stack([v, d]), stacked=True)
        out[n] = [float(np.linalg.norm(d) / np.linalg.norm(w0[n])), float(ranks[0]),
                  float(ranks[1])]
    return out


def train_run(config: Any, condition: str, seed: int, epochs: int | None, max_epochs: int,
              per_epoch: int) -> dict[str, Any]:
    """One run, measured ``per_epoch`` times per epoch; ``epochs`` None: until every training
    label is fitted (or ``max_epochs``). Returns the curves (step, movement, ranks per layer),
    the initial and final middle weights, the epochs trained and whether the labels were fitted."""
    import torch

    from conjugacy.experiments._sample import steps_per_epoch
    from conjugacy.experiments.spectral_dynamics import _tensors
    from conjugacy.torch.training import endless_batches, evaluate, seeded_mlp, sgd_step

    torch.set_num_threads(1)
    t = _tensors(config, condition, seed)
    spe = steps_per_epoch(len(t["y"]), config.batch_size)
    every = max(1, spe // per_epoch)
    model = seeded_mlp(t["n_in"], config.width, t["n_out"], seed)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    batches = endless_batches(len(t["y"]), config.batch_size, [seed, 1])
    w0 = _middle(model)
    curves = {n: [[0.0, *_measure(w0, w0)[n][1:]]] for n in w0}
    steps, epoch, acc, c0 = [0], 0, 0.0, _cpu()
    while epoch < (epochs if epochs is not None else max_epochs):
        for i in range(1, spe + 1):
            idx = next(batches)
            sgd_step(model, opt, t["x"][idx], t["y"][idx])
            if i % every == 0 or i == spe:
                steps.append(epoch * spe + i)
                for n, m in _measure(_middle(model), w0).items():
                    curves[n].append(m)
        epoch += 1
        acc = evaluate(model, t["x"], t["y"])[1]
        if epochs is None and acc == 1.0:
            break
    return {"condition": condition, "seed": seed, "epochs": epoch, "fitted": acc == 1.0,
            "train_accuracy": acc, "steps": steps, "curves": curves, "w0": w0,
            "w": _middle(model), "cpu_s": _cpu() - c0}


def at_movement(movement: Any, values: Any, targets: Any) -> np.ndarray:
    """``values`` where ``movement`` first reaches each target (linear interpolation between the
    checkpoints around the first crossing); NaN for a target never reached.

    >>> at_movement([0.0, 0.2, 0.4, 0.3], [1.0, 0.8, 0.4, 0.5], [0.1, 0.3, 0.5])
    array([0.9, 0.6, nan])
    """
    m, v = np.asarray(movement, float), np.asarray(values, float)
    out = np.full(len(targets), np.nan)
    for k, r in enumerate(targets):
        hit = np.flatnonzero(m >= r)
        if len(hit) == 0:
            continue
        j = hit[0]
        if j == 0:
            out[k] = v[0]
            continue
        f = (r - m[j - 1]) / (m[j] - m[j - 1])
        out[k] = v[j - 1] + f * (v[j] - v[j - 1])
    return out


def update_direction_rank(w0: np.ndarray, w: np.ndarray, targets: Any) -> np.ndarray:
    """Effective rank of ``W0 + r ||W0|| U / ||U||`` (U = W - W0) for each ``r`` in targets."""
    from conjugacy.spectral_dynamics import effective_rank

    u = (w - w0) / np.linalg.norm(w - w0) * np.linalg.norm(w0)
    return np.asarray(effective_rank(np.stack([w0 + r * u for r in targets]), stacked=True))


def compare_seed(config: Any, seed: int, max_epochs: int, per_epoch: int,
                 grid: tuple[float, ...]) -> dict[str, Any]:
    """Both label sets of one seed at matched movement, per middle layer (see the module)."""
    rnd = train_run(config, "random", seed, None, max_epochs, per_epoch)
    tru = train_run(config, "true", seed, rnd["epochs"], max_epochs, per_epoch)
    layers: dict[str, Any] = {}
    for n in tru["curves"]:
        ct, cr = np.array(tru["curves"][n]), np.array(rnd["curves"][n])
        r_t, r_r = float(ct[-1, 0]), float(cr[-1, 0])
        targets = [*grid, r_t]
        layers[n] = {
            "final_movement": {"true": r_t, "random": r_r},
            "final_rank": {"true": float(ct[-1, 1]), "random": float(cr[-1, 1])},
            "final_update_rank": {"true": float(ct[-1, 2]), "random": float(cr[-1, 2])},
            "targets": targets,
            "trajectory_rank": {"true": at_movement(ct[:, 0], ct[:, 1], targets).tolist(),
                                "random": at_movement(cr[:, 0], cr[:, 1], targets).tolist()},
            "trajectory_update_rank": {
                "true": at_movement(ct[:, 0], ct[:, 2], targets).tolist(),
                "random": at_movement(cr[:, 0], cr[:, 2], targets).tolist()},
            "direction_rank": {
                c: update_direction_rank(run["w0"][n], run["w"][n], [*targets, r_r]).tolist()
                for c, run in (("true", tru), ("random", rnd))},
            "random_step_at_r_T": float(at_movement(cr[:, 0], rnd["steps"], [r_t])[0]),
        }
    return {"seed": seed, "epochs": rnd["epochs"], "random_fitted": rnd["fitted"],
            "true_train_accuracy": tru["train_accuracy"], "layers": layers,
            "cpu_s": [rnd["cpu_s"], tru["cpu_s"]],
            "curves": {c: {"steps": run["steps"], "layers": run["curves"]}
                       for c, run in (("true", tru), ("random", rnd))}}


def summarise(rows: list[dict[str, Any]], grid: tuple[float, ...]) -> dict[str, Any]:
    """Per layer and movement: mean rank true / random, the difference's range over seeds, in how
    many seeds true is lower, and the two-sided sign-test p (scipy's binomtest)."""
    from scipy.stats import binomtest

    out: dict[str, Any] = {}
    for n in rows[0]["layers"]:
        rows_n = [r["layers"][n] for r in rows]
        labels = [f"r={g:g}" for g in grid] + ["r=r_T"]
        entry = {}
        for kind in KINDS:
            t = np.array([x[kind]["true"][:len(labels)] for x in rows_n])
            q = np.array([x[kind]["random"][:len(labels)] for x in rows_n])
            entry[kind] = {}
            for k, lab in enumerate(labels):
                ok = np.isfinite(t[:, k]) & np.isfinite(q[:, k])
                if not ok.any():
                    continue
                d = t[ok, k] - q[ok, k]
                lower = int((d < 0).sum())
                entry[kind][lab] = {
                    "n_seeds": int(ok.sum()), "true": float(t[ok, k].mean()),
                    "random": float(q[ok, k].mean()), "diff_min": float(d.min()),
                    "diff_max": float(d.max()), "true_lower": lower,
                    "sign_p": float(binomtest(lower, int(ok.sum())).pvalue)}
        entry["final"] = {c: float(np.mean([x["final_rank"][c] for x in rows_n]))
                          for c in ("true", "random")}
        entry["final_true_lower"] = int(sum(x["final_rank"]["true"] < x["final_rank"]["random"]
                                            for x in rows_n))
        out[n] = entry
    return out


def not_fitted_warning(rows: list[dict[str, Any]], max_epochs: int) -> str | None:
    """The warning for the seeds of ``rows`` (:func:`compare_seed`) whose random-label run did
    not fit every training label within ``max_epochs``, or None when every one did.

    >>> not_fitted_warning([{"seed": 0, "random_fitted": True}, {"seed": 3,
    ...                     "random_fitted": False, "epochs": 5}], 5)
    'random labels not fitted in 1 of 2 seeds (seed 3: 5 epochs) within --max-epochs 5: their \
rows compare unfitted random labels; raise --max-epochs'
    """
    bad = [r for r in rows if not r["random_fitted"]]
    if not bad:
        return None
    seeds = ", ".join(f"seed {r['seed']}: {r['epochs']} epochs" for r in bad)
    return (f"random labels not fitted in {len(bad)} of {len(rows)} seeds ({seeds}) within "
            f"--max-epochs {max_epochs}: their rows compare unfitted random labels; raise "
            "--max-epochs")


def _print(summary: dict[str, Any]) -> None:
    for n, e in summary.items():
        print(f"{n}: final rank true {e['final']['true']:.3f} vs random "
              f"{e['final']['random']:.3f} (true lower in {e['final_true_lower']} seeds)")
        for kind in KINDS:
            for lab, s in e[kind].items():
                print(f"  {kind:22s} {lab:8s} n={s['n_seeds']} true {s['true']:.4f} random "
                      f"{s['random']:.4f} diff [{s['diff_min']:+.4f}, {s['diff_max']:+.4f}] "
                      f"true lower {s['true_lower']}/{s['n_seeds']} p={s['sign_p']:.3g}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--n-train", type=int, default=1000, help="4000: the whole 4,000-image split")
    p.add_argument("--max-epochs", type=int, default=600)
    p.add_argument("--per-epoch", type=int, default=4, help="measurements per epoch")
    a = p.parse_args(argv)
    from conjugacy.experiments.spectral_dynamics import SpectralConfig

    config = SpectralConfig(lr=a.lr, n_train=None if a.n_train == 4000 else a.n_train,
                            conditions=("true", "random"))
    a.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for seed in a.seeds:
        rows.append(compare_seed(config, seed, a.max_epochs, a.per_epoch, GRID))
        print(f"seed {seed}: {rows[-1]['epochs']} epochs, random fitted "
              f"{rows[-1]['random_fitted']}, cpu {rows[-1]['cpu_s']}", flush=True)
        summary = summarise(rows, GRID)
        warning = not_fitted_warning(rows, a.max_epochs)
        (a.out / "summary.json").write_text(json.dumps(
            {"settings": vars(a) | {"out": str(a.out)}, "grid": GRID,
             "warnings": [warning] if warning else [], "summary": summary,
             "rows": rows, "wall_s": time.perf_counter() - t0}, indent=1) + "\n")
    _print(summarise(rows, GRID))
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


if __name__ == "__main__":
    main()
