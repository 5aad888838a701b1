"""Does the spectral monitor warn of grokking, how early, and how often falsely? (issue 23, item 3)

Usage:  python benchmarks/bench_early_warning.py [--seeds 12] [--steps 6000] [--cache DIR]
                                                 [--out FILE.json]

Modular addition (``conjugacy.data.modular``, p = 31) learned by the project's one-hidden-layer
network (``conjugacy.torch.models.FCN``: one-hot a and b concatenated, 62 -> 256 -> 31, ReLU, no
biases; 23,808 weights), full batch, AdamW lr 1e-2. Setups chosen by measurement (pilot runs of
4,000-8,000 steps, 3-16 s CPU each):

* ``grok``       -- 50 % of the pairs for training, weight decay 2.0: train accuracy 1.0 by step
                    ~300, test accuracy 0.9 only at steps ~2,500-4,500 (grokking);
* ``no_wd``      -- 50 %, weight decay 0: memorises, test accuracy stays ~0 for 8,000 steps;
* ``small_data`` -- 30 %, weight decay 2.0: memorises, test accuracy ~0 for 6,000 steps (the same
                    optimiser and regulariser as ``grok``: a signal that only tracks weight decay
                    fires here too).

Every ``--record-every`` steps the weights are recorded (float32) and train/test accuracy
measured; the **onset** of a run is the first recorded step with test accuracy >= 0.9 (None if
never: a negative run, whatever its setup). The rule (``conjugacy.monitor``): windows of 20
records (400 steps) every 5 records (100 steps), spectra with 2 delays and rank "svht"; windows
before step 600 ignored (memorisation); noise floor over the next 3 windows, seed to seed within
each setup; alarm when consecutive windows differ by > ``factor`` floors for ``sustain`` windows.
``factor`` and ``sustain`` are chosen without peeking (``conjugacy.monitor.calibrate_rule``), per
signal (the spectral monitor and its two controls alike), on the held-out seeds 0-5 of every
setup at ``TARGET`` false alarms per 1,000 steps; AUROC, lead time and false alarms are reported
on seeds 6-11. The swapped split (calibrate on 6-11, report 0-5) is printed as a check.

Training runs are cached (``--cache``, one .npz per run) so the evaluation can be rerun alone.
CPU time of training and of the evaluation is printed (process time, one thread).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

SETUPS = {"grok": (0.5, 2.0), "no_wd": (0.5, 0.0), "small_data": (0.3, 2.0)}
MODULUS, WIDTH, LR, THRESHOLD = 31, 256, 1e-2, 0.9
RULE = {"window": 20, "stride": 5, "burn_in": 600, "calibration": 3,
        "spectrum_kwargs": {"delays": 2, "rank": "svht"}}
#: The operating rule of each signal is chosen on held-out seeds (conjugacy.monitor.calibrate_rule)
#: at a false-alarm rate (alarm events per 1,000 monitored steps of the non-grokking runs), among
#: these sustains. The headline target 0.1 (one alarm per ~2 runs of 5,000 monitored steps) was
#: fixed before the rerun; 0.5 (~2.5 per run), a looser operating point, was added after the
#: headline gave no detection, and is reported as such.
TARGETS, SUSTAINS = (0.1, 0.5), (1, 2, 3)


def train_run(setup: str, seed: int, steps: int, every: int) -> dict[str, np.ndarray]:
    """One run: recorded weights (records, 23808) float32, steps, train/test accuracy."""
    import torch
    import torch.nn.functional as F

    from conjugacy.data.modular import modular_addition
    from conjugacy.torch.models import FCN

    torch.set_num_threads(1)
    frac, wd = SETUPS[setup]
    data = modular_addition(MODULUS, frac, seed=seed)

    def encode(x: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.array(x))
        return torch.cat([F.one_hot(x[:, 0], MODULUS), F.one_hot(x[:, 1], MODULUS)], 1).float()

    xtr, ytr = encode(data.train_inputs), torch.as_tensor(np.array(data.train_labels))
    xte, yte = encode(data.test_inputs), torch.as_tensor(np.array(data.test_labels))
    model = FCN(2 * MODULUS, WIDTH, MODULUS, generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=wd)
    rec, acc = [], []
    for step in range(steps + 1):
        if step % every == 0:
            with torch.no_grad():
                rec.append(torch.cat([p.detach().flatten() for p in model.parameters()]).numpy()
                           .copy())
                acc.append([float((model(x).argmax(1) == y).float().mean())
                            for x, y in ((xtr, ytr), (xte, yte))])
        if step == steps:
            break
        loss = F.cross_entropy(model(xtr), ytr)
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc_arr = np.array(acc)
    return {"weights": np.stack(rec).astype(np.float32), "steps": np.arange(0, steps + 1, every),
            "train_accuracy": acc_arr[:, 0], "test_accuracy": acc_arr[:, 1]}


def onset(run: dict[str, np.ndarray]) -> int | None:
    """First recorded step with test accuracy >= THRESHOLD (None if never)."""
    hit = np.flatnonzero(run["test_accuracy"] >= THRESHOLD)
    return int(run["steps"][hit[0]]) if hit.size else None


def load_runs(args: argparse.Namespace) -> tuple[dict[tuple[str, int], dict], float]:
    args.cache.mkdir(parents=True, exist_ok=True)
    runs, cpu = {}, 0.0
    for setup in SETUPS:
        for seed in range(args.seeds):
            path = args.cache / f"{setup}_{seed}_{args.steps}_{args.record_every}.npz"
            if not path.exists():
                t0 = time.process_time()
                np.savez(path, **train_run(setup, seed, args.steps, args.record_every))
                cpu += time.process_time() - t0
                print(f"trained {setup} seed {seed}: onset {onset(dict(np.load(path)))}",
                      flush=True)
            runs[(setup, seed)] = dict(np.load(path))
    return runs, cpu


def monitored(runs: dict, seeds: range) -> list:
    from conjugacy.monitor import MonitoredRun

    return [MonitoredRun(r["weights"], r["steps"], onset(r), setup, f"{setup}/{seed}")
            for (setup, seed), r in runs.items() if seed in seeds]


def split(runs: dict, held_out: range, reported: range, n_boot: int, target: float) -> dict:
    """Calibrate each signal's rule on the ``held_out`` seeds, evaluate it on the ``reported``."""
    from conjugacy.monitor import calibrate_rule, evaluate_monitor

    rule = calibrate_rule(monitored(runs, held_out), target_false_alarms=target,
                          sustains=SUSTAINS, **RULE)
    ev = evaluate_monitor(monitored(runs, reported), factor=rule.factor, sustain=rule.sustain,
                          n_boot=n_boot, seed=0, **RULE)
    return {"rule": rule, "evaluation": ev}


def _fmt(x: float, iv: tuple[float, float], digits: int = 2) -> str:
    if x != x:  # NaN: no detection
        return "none"
    return f"{x:.{digits}f} [{iv[0]:.{digits}f}, {iv[1]:.{digits}f}]"


def table(ev) -> list[str]:
    lines = ["| signal | rule (factor x floor, sustain) | AUROC [95% CI] | grokking runs "
             "alarmed / warned before onset | lead time, steps: median [95% CI] | false alarms "
             "/ 1,000 steps [95% CI] | non-grokking runs alarmed |",
             "|---|---|---|---|---|---|---|"]
    for name in ("spectral", "parameter_norm", "shuffled_windows"):
        s = getattr(ev, name)
        lines.append(f"| {name} | {s.factor:.3g}, {s.sustain} | {_fmt(s.auroc, s.auroc_interval)}"
                     f" | {s.detected}/{s.n_positive} / {s.detected_early}/{s.n_positive} | "
                     f"{_fmt(s.lead_time_median, s.lead_time_interval, 0)} | "
                     f"{_fmt(s.false_alarms_per_1000, s.false_alarm_interval)} | "
                     f"{s.negatives_alarmed}/{s.n_negative} |")
    return lines


def report_split(runs: dict, held: range, shown: range, n_boot: int, target: float,
                 name: str) -> dict:
    """One split at one target: printed, and returned JSON-ready."""
    signals = ("spectral", "parameter_norm", "shuffled_windows")
    t0 = time.process_time()
    out = split(runs, held, shown, n_boot, target)
    cpu = time.process_time() - t0
    rule, ev = out["rule"], out["evaluation"]
    print(f"\n{name}, target {target:g} false alarms / 1,000 steps: rule calibrated on seeds "
          f"{held.start}-{held.stop - 1}, reported on seeds {shown.start}-{shown.stop - 1} "
          f"(CPU {cpu:.1f} s)")
    for s, tried in rule.candidates.items():
        print(f"  {s}: " + "; ".join(f"sustain {t['sustain']}: factor {t['factor']:.3g}, "
                                     f"FA {t['false_alarms_per_1000']:.3f}, warned "
                                     f"{t['warned']}/{t['n_positive']}" for t in tried))
    print("\n".join(table(ev)))
    alarms = {s: dict(zip(ev.names, getattr(ev, s).alarm_steps)) for s in signals}
    print("alarm steps:", {s: {k: v for k, v in a.items() if v is not None}
                           for s, a in alarms.items()})
    return {"target_false_alarms_per_1000": target,
            "held_out_seeds": [held.start, held.stop - 1],
            "reported_seeds": [shown.start, shown.stop - 1], "calibration": rule.candidates,
            "chosen": rule.summary(), "evaluation": ev.summary(), "cpu_s": cpu,
            "alarm_steps": alarms}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=12, help="seeds 0 ... seeds-1 of each setup; "
                    "the first half calibrates the rule, the second half is reported (and the "
                    "other way round, as a check)")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--record-every", type=int, default=20)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/conjugacy_bench_early_warning"))
    ap.add_argument("--out", type=Path, default=None, help="write the numbers as JSON")
    args = ap.parse_args(argv)
    runs, train_cpu = load_runs(args)
    onsets = {f"{k[0]}/{k[1]}": onset(r) for k, r in runs.items()}
    print(f"training CPU (runs trained now): {train_cpu:.1f} s; onsets: {onsets}")
    half = args.seeds // 2
    first, second = range(0, half), range(half, args.seeds)
    doc = {"onsets": onsets, "rule": RULE, "sustains": SUSTAINS, "splits": {}}
    for target in TARGETS:
        for name, (held, shown) in {"headline": (first, second),
                                    "swapped": (second, first)}.items():
            doc["splits"][f"{name}@{target:g}"] = report_split(runs, held, shown, args.n_boot,
                                                               target, name)
    if args.out is not None:
        args.out.write_text(json.dumps(doc, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
