"""When does the unconstrained regime grok? Short measurements to choose the split or horizon of
fig. 5A/B (issue 24, item 2; ``docs/results_grokking.md``).

The quick split (30 % of the 113^2 pairs for training, the paper's) memorises by step ~150 and
its test accuracy is only 0.163 at step 5,000 (~1,331 s of CPU). Grokking comes earlier with
more training data, but each full-batch step costs in proportion. Per ``--train-fraction`` this
script trains the base initialization of ``--seed`` in the unconstrained regime exactly as
:mod:`conjugacy.experiments.grokking` does (:func:`make_base_model`, :class:`TrainingProtocol`:
float64, AdamW lr 1e-3, betas (0.9, 0.98), weight decay 1.0, full batch) and evaluates train and
test accuracy every ``--eval-every`` steps; it stops at the onset (test accuracy >= ``--onset``,
the paper's 0.5), at ``--max-steps`` or when the run has used ``--max-cpu`` seconds of CPU.
Every evaluation is printed as it happens (one JSON line), so a stopped run still answers.

Usage (from the repository root; writes ``OUT/onset.json``)::

    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/grokking_onset.py OUT \
        --train-fraction 0.5 --max-steps 3000 --eval-every 100 --max-cpu 900
"""

from __future__ import annotations

import argparse
import json
import resource
from pathlib import Path
from typing import Any

import torch

from conjugacy.data.modular import modular_addition
from conjugacy.experiments.grokking import GrokkingConfig, TrainingProtocol, make_base_model


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(fraction: float, seed: int, max_steps: int, eval_every: int, onset: float,
            max_cpu: float) -> dict[str, Any]:
    """Train one unconstrained run; the evaluations and the first step at ``onset``."""
    config = GrokkingConfig(train_fraction=fraction, seed=seed)
    data = modular_addition(config.modulus, fraction, seed)
    protocol = TrainingProtocol(config, "unconstrained", data, lambda t: True)
    model = make_base_model(config, seed, "unconstrained")
    opt = protocol.make_optimizer(model.parameters())
    (x, y), = protocol.batches()
    c0, rows, reached = _cpu(), [], None
    for step in range(1, max_steps + 1):
        opt.zero_grad(set_to_none=True)
        protocol.loss_fn(model(x), y).backward()
        opt.step()
        if step % eval_every and step != max_steps:
            continue
        with torch.no_grad():
            ev = protocol.evaluate(model)
        row = {"fraction": fraction, "step": step, "cpu_s": round(_cpu() - c0, 1),
               **{k: round(v, 4) for k, v in ev.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if ev["test_accuracy"] >= onset:
            reached = step
            break
        if _cpu() - c0 > max_cpu:
            break
    return {"fraction": fraction, "n_train": len(y), "onset_step": reached,
            "cpu_s": _cpu() - c0, "evaluations": rows}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--train-fraction", type=float, nargs="+", default=[0.5])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=3000)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--onset", type=float, default=0.5)
    p.add_argument("--max-cpu", type=float, default=900.0)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    results = [measure(f, a.seed, a.max_steps, a.eval_every, a.onset, a.max_cpu)
               for f in a.train_fraction]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "onset.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
