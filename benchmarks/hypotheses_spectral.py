"""Why "true labels give the middle layers a lower effective rank than random labels" reverses here
(issue 24, item 3; ``docs/results_spectral_dynamics.md``).

The companion paper (appendix D.8) trains its 4-layer MLP on 50,000 CIFAR-10 images with SGD
(momentum 0.9) at a constant lr 0.001 for 300 epochs, until random labels are fitted too; the
quick reproduction trains on 4,000 MNIST images at lr 0.05 and finds the opposite order (also
after 300 epochs, with random labels memorised). This script tests the learning rate and the size
of the training set on the reproduction's own network, data and label rule
(:class:`conjugacy.experiments.spectral_dynamics.SpectralConfig`, whose ``n_train`` takes a
stratified subset of the MNIST sample): per (lr, n_train, seed) it trains the random-label run
until it fits every training label (zero training error) or ``--max-epochs``, then the true-label
run for the same number of epochs, and reports, every ``--eval-every`` epochs, the effective rank
(:func:`conjugacy.spectral_dynamics.effective_rank`, normalised by min(m, n)) of every weight W,
of its update W - W0 since initialization, and ||W - W0|| / ||W0||. ``--init-scale`` multiplies
the initial weights (a test of whether the initialization's rank dominates W).

Usage (from the repository root; prints and writes ``OUT/summary.json``)::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/hypotheses_spectral.py OUT \
        --lr 0.001 0.05 --n-train 500 1000 --seeds 0 1 --max-epochs 1500

The runs of ``docs/results_spectral_dynamics.md`` (issue 24): ``OUT1 --lr 0.05 --n-train 1000
--max-epochs 600``; ``OUT2 --lr 0.001 --n-train 1000 --max-epochs 1500``; ``OUT3 --lr 0.05
--n-train 1000 --max-epochs 600 --init-scale 0.25`` (seeds 0 1, evaluation every 10 epochs).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _weights(model: Any) -> dict[str, np.ndarray]:
    return {n: p.detach().numpy().copy() for n, p in model.named_parameters() if p.ndim >= 2}


def _measures(model: Any, x: Any, y: Any, initial: dict[str, np.ndarray], epoch: int
              ) -> dict[str, Any]:
    """Training accuracy; per layer the effective rank of W, of the update W - W0, and
    ||W - W0|| / ||W0|| (Frobenius)."""
    from conjugacy.spectral_dynamics import effective_rank
    from conjugacy.torch.training import evaluate

    w = _weights(model)
    return {"epoch": epoch, "train_accuracy": evaluate(model, x, y)[1],
            "effective_rank": {n: float(effective_rank(v)) for n, v in w.items()},
            "update_effective_rank": {n: float(effective_rank(v - initial[n]))
                                      if epoch else None for n, v in w.items()},
            "relative_change": {n: float(np.linalg.norm(v - initial[n]) / np.linalg.norm(
                initial[n])) for n, v in w.items()}}


def train(config: Any, condition: str, seed: int, epochs: int | None, max_epochs: int,
          eval_every: int, init_scale: float = 1.0) -> dict[str, Any]:
    """One run; with ``epochs`` None, until every training label is fitted (or ``max_epochs``).
    ``init_scale`` multiplies every initial weight matrix (biases unchanged)."""
    import torch

    from conjugacy.experiments._sample import steps_per_epoch
    from conjugacy.experiments.spectral_dynamics import _tensors
    from conjugacy.torch.training import endless_batches, evaluate, seeded_mlp, sgd_step

    torch.set_num_threads(1)
    t = _tensors(config, condition, seed)
    spe = steps_per_epoch(len(t["y"]), config.batch_size)
    model = seeded_mlp(t["n_in"], config.width, t["n_out"], seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.mul_(init_scale)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    batches = endless_batches(len(t["y"]), config.batch_size, [seed, 1])
    initial = _weights(model)
    history = [_measures(model, t["x"], t["y"], initial, 0)]
    epoch, c0 = 0, _cpu()
    while epoch < (epochs if epochs is not None else max_epochs):
        for _ in range(spe):
            idx = next(batches)
            sgd_step(model, opt, t["x"][idx], t["y"][idx])
        epoch += 1
        if epoch % eval_every == 0 or epoch == epochs:
            history.append(_measures(model, t["x"], t["y"], initial, epoch))
            if epochs is None and history[-1]["train_accuracy"] == 1.0:
                break
    if history[-1]["epoch"] != epoch:
        history.append(_measures(model, t["x"], t["y"], initial, epoch))
    return {"condition": condition, "seed": seed, "epochs": epoch, "steps": epoch * spe,
            "final": history[-1], "test_accuracy": evaluate(model, t["xt"], t["yt"])[1],
            "history": history, "cpu_s": _cpu() - c0}


def compare(lr: float, n_train: int | None, seed: int, max_epochs: int, eval_every: int,
            init_scale: float = 1.0) -> dict[str, Any]:
    """Random labels until fitted, then true labels for as many epochs; middle-layer ranks."""
    from conjugacy.experiments.spectral_dynamics import SpectralConfig

    config = SpectralConfig(lr=lr, n_train=n_train, conditions=("true", "random"))
    rnd = train(config, "random", seed, None, max_epochs, eval_every, init_scale)
    tru = train(config, "true", seed, rnd["epochs"], max_epochs, eval_every, init_scale)
    middle = list(tru["final"]["effective_rank"])[1:-1]
    a, b = tru["final"]["effective_rank"], rnd["final"]["effective_rank"]
    ua, ub = tru["final"]["update_effective_rank"], rnd["final"]["update_effective_rank"]
    ca, cb = tru["final"]["relative_change"], rnd["final"]["relative_change"]
    return {"lr": lr, "n_train": n_train or 4000, "init_scale": init_scale, "seed": seed,
            "epochs": rnd["epochs"],
            "random_fitted": rnd["final"]["train_accuracy"] == 1.0,
            "middle_layers": middle, "true_middle": [a[n] for n in middle],
            "random_middle": [b[n] for n in middle],
            "true_update_middle": [ua[n] for n in middle],
            "random_update_middle": [ub[n] for n in middle],
            "true_relative_change": [ca[n] for n in middle],
            "random_relative_change": [cb[n] for n in middle],
            "true_lower": bool(all(a[n] < b[n] for n in middle)), "runs": [rnd, tru]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--lr", type=float, nargs="+", default=[0.001, 0.05])
    p.add_argument("--n-train", type=int, nargs="+", default=[1000])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--max-epochs", type=int, default=1500)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--init-scale", type=float, default=1.0,
                   help="multiply the initial weight matrices (1: the reproduction's init)")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    rows, t0 = [], time.perf_counter()
    for lr in a.lr:
        for n in a.n_train:
            for seed in a.seeds:
                row = compare(lr, None if n == 4000 else n, seed, a.max_epochs, a.eval_every,
                              a.init_scale)
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "runs"}
                                 | {"cpu_s": [r["cpu_s"] for r in row["runs"]]}), flush=True)
                (a.out / "summary.json").write_text(json.dumps(
                    {"rows": rows, "wall_s": time.perf_counter() - t0}, indent=1))
    for lr in a.lr:
        for n in a.n_train:
            sel = [r for r in rows if r["lr"] == lr and r["n_train"] == n]
            m = {k: np.round(np.mean([r[k] for r in sel], axis=0), 3) for k in (
                "true_middle", "random_middle", "true_update_middle", "random_update_middle",
                "true_relative_change", "random_relative_change")}
            print(f"lr {lr} n_train {n}: middle-layer effective rank of W true "
                  f"{m['true_middle']} vs random {m['random_middle']} (true lower in "
                  f"{sum(r['true_lower'] for r in sel)}/{len(sel)} seeds); of W - W0 true "
                  f"{m['true_update_middle']} vs random {m['random_update_middle']}; "
                  f"||W - W0|| / ||W0|| true {m['true_relative_change']} vs random "
                  f"{m['random_relative_change']}; epochs {[r['epochs'] for r in sel]}")


if __name__ == "__main__":
    main()
