"""When does the unconstrained regime grok? Short measurements to choose the split or horizon of
fig. 5A/B (issue 24, item 2; ``docs/results_grokking.md``).

The quick split (30 % of the 113^2 pairs for training, the paper's) memorises by step ~150 and
its test accuracy is only 0.163 at step 5,000 (~1,331 s of CPU). Grokking comes earlier with
more training data, but each full-batch step costs in proportion. Per ``--train-fraction`` this
script trains the base initialization of ``--seed`` in the unconstrained regime exactly as
:mod:`conjugacy.experiments.grokking` does (:func:`make_base_model`, :class:`TrainingProtocol`:
float64, AdamW lr 1e-3, betas (0.9, 0.98), weight decay 1.0, full batch) and evaluates train and
test accuracy every ``--eval-every`` steps; it stops at the onset (test accuracy >= ``--onset``,
the paper's 0.5; the first evaluation with train accuracy >= 0.99 is the memorisation step, and
grokking is the gap between the two), at ``--max-steps`` or when the run has used ``--max-cpu``
seconds of CPU. Every evaluation is printed as it happens (one JSON line), so a stopped run
still answers.

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
            max_cpu: float, memorised_at: float = 0.99) -> dict[str, Any]:
    """Train one unconstrained run; the evaluations, the first evaluation with train accuracy
    >= ``memorised_at`` and the first with test accuracy >= ``onset`` (grokking is the gap
    between the two: with enough training data there is none)."""
    config = GrokkingConfig(train_fraction=fraction, seed=seed)
    data = modular_addition(config.modulus, fraction, seed)
    protocol = TrainingProtocol(config, "unconstrained", data, lambda t: True)
    model = make_base_model(config, seed, "unconstrained")
    opt = protocol.make_optimizer(model.parameters())
    (x, y), = protocol.batches()
    c0, rows, reached, memorised = _cpu(), [], None, None
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
        if memorised is None and ev["train_accuracy"] >= memorised_at:
            memorised = step
        if ev["test_accuracy"] >= onset:
            reached = step
            break
        if _cpu() - c0 > max_cpu:
            break
    return {"fraction": fraction, "n_train": len(y), "memorised_step": memorised,
            "onset_step": reached,
            "cpu_s": _cpu() - c0, "evaluations": rows}


def figure(results: list[dict[str, Any]], path: Path) -> None:
    """Train (dashed) and test (solid) accuracy against step, one colour per train fraction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, r in enumerate(results):
        ev = r["evaluations"]
        steps = [e["step"] for e in ev]
        ax.plot(steps, [e["train_accuracy"] for e in ev], "--", color=f"C{i}")
        ax.plot(steps, [e["test_accuracy"] for e in ev], "-", color=f"C{i}",
                label=f"train fraction {r['fraction']:g} (test solid, train dashed)")
    ax.axhline(0.5, color="grey", lw=0.5)
    ax.set(xlabel="step", ylabel="accuracy", ylim=(0, 1.02),
           title="unconstrained regime, seed 0 (AdamW, weight decay 1)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _train_fraction(text: str) -> float:
    """The split, checked by the experiment's own domain (GrokkingConfig: open interval (0, 1))."""
    try:
        value = float(text)
        GrokkingConfig(train_fraction=value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _bounded(kind: type, low: float, high: float | None = None) -> Any:
    """An argparse type: ``kind(text)`` within [low, high], else a one-line usage error."""
    def check(text: str) -> Any:
        value = kind(text)
        if not (value >= low and (high is None or value <= high)):
            bound = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value
    check.__name__ = kind.__name__
    return check


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--train-fraction", type=_train_fraction, nargs="+", default=[0.5])
    p.add_argument("--seed", type=_bounded(int, 0), default=0)
    p.add_argument("--max-steps", type=_bounded(int, 1), default=3000)
    p.add_argument("--eval-every", type=_bounded(int, 1), default=100)
    p.add_argument("--onset", type=_bounded(float, 0.0, 1.0), default=0.5)
    p.add_argument("--max-cpu", type=_bounded(float, 1.0), default=900.0)
    p.add_argument("--from", dest="source", type=Path, nargs="+", default=None,
                   help="plot these earlier onset.json files instead of training")
    p.add_argument("--figure", type=Path, default=None, help="PNG of the accuracy curves")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.source:
        results = [r for f in a.source for r in json.loads(f.read_text())]
    else:
        results = [measure(f, a.seed, a.max_steps, a.eval_every, a.onset, a.max_cpu)
                   for f in a.train_fraction]
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "onset.json").write_text(json.dumps(results, indent=1))
    if a.figure is not None:
        figure(results, a.figure)


if __name__ == "__main__":
    main()
