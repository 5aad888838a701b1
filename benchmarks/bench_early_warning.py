"""Does the spectral monitor warn of grokking, how early, and how often falsely? (issue 23, item 3)

Usage:  python benchmarks/bench_early_warning.py [--seeds 12] [--steps 6000] [--cache DIR]
                                                 [--out FILE.json]

Modular addition (``conjugacy.data.modular``, p = 31) learned by the project's one-hidden-layer
network (``conjugacy.torch.models.FCN``: one-hot a and b concatenated, 62 -> 256 -> 31, ReLU, no
biases; 23,808 weights), full batch, AdamW lr 1e-2. Setups chosen by measurement (pilot runs of
4,000-8,000 steps, 3-16 s CPU each):

* ``grok``       -- 50 % of the pairs for training, weight decay 2.0: train accuracy 1.0 by step
                    40-60; test accuracy then rises steadily from ~0.15 at step 600 and ~0.45
                    at 1,200 to 0.9 at steps 2,540-3,660 (12 seeds): a gradual generalisation
                    after memorisation, not a sharp delayed jump, so the calibration windows
                    (steps 600-1,180) already lie inside the transition;
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
signal (the spectral monitor and its two controls alike), on held-out seeds at ``TARGET`` false
alarms per 1,000 steps with at most ``MAX_NEGATIVES_ALARMED`` of the held-out non-grokking runs
in alarm. Cross-fitting: calibrate on seeds 0-5, evaluate 6-11; calibrate on 6-11, evaluate
0-5; pool, so every run (12 grokking, 24 non-grokking) is evaluated under a rule it played no
part in choosing. The run-level AUROC scores each grokking run only on windows ending before
its onset and each non-grokking run up to its matched step (the onset of the grokking run of
its seed): early warning, not "a change anywhere". Each fold is reported beside the pool, with
bootstrap intervals over runs for the AUROC, lead time and false-alarm rate. A signal under
which, in any fold, more evaluated non-grokking runs alarm than the calibrated share reports no
warnings or lead time there (and in the pool).

Training runs are cached (``--cache``, one .npz per run) so the evaluation can be rerun alone.
CPU time of training and of the evaluation is printed (process time, one thread).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
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
#: At most this share of the held-out non-grokking runs may alarm at all under a calibrated
#: rule (a signal that stays above its factor is one alarm event however long it lasts).
MAX_NEGATIVES_ALARMED = 0.25


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


def horizons(runs: list, matched: dict[int, int]) -> list[int]:
    """Per run, the last step its run-level score may use: a grokking run's onset - 1 (only what
    came before the event); a non-grokking run's matched step (the onset of the grokking run of
    its seed, or the median grokking onset if that seed never grokked) - 1."""
    median = int(np.median(list(matched.values())))
    return [r.onset - 1 if r.onset is not None
            else matched.get(int(r.name.split("/")[1]), median) - 1 for r in runs]


def fold(runs: dict, held: range, shown: range, n_boot: int, target: float) -> dict:
    """Calibrate each signal's rule on the ``held`` seeds, evaluate it on the ``shown`` seeds."""
    from conjugacy.monitor import calibrate_rule, evaluate_monitor

    t0 = time.process_time()
    rule = calibrate_rule(monitored(runs, held), target_false_alarms=target,
                          max_negatives_alarmed=MAX_NEGATIVES_ALARMED, sustains=SUSTAINS, **RULE)
    reported = monitored(runs, shown)
    matched = {seed: onset(r) for (setup, seed), r in runs.items()
               if setup == "grok" and onset(r) is not None}
    ev = evaluate_monitor(reported, factor=rule.factor, sustain=rule.sustain, n_boot=n_boot,
                          horizon=horizons(reported, matched), seed=0, **RULE)
    return {"rule": rule, "evaluation": ev, "cpu_s": time.process_time() - t0}


def pooled(folds: list[dict], signal: str, n_boot: int, label: str = "pooled") -> dict:
    """One signal over the runs of the given folds (each evaluated under the rule calibrated on
    the other; one fold: that fold alone): run-level AUROC of the pre-onset scores, lead time of
    the positives whose alarm comes before the onset, false alarms per 1,000 steps, negatives in
    alarm; bootstrap over runs (positives and negatives resampled separately). ``specific``:
    in every fold at most ``MAX_NEGATIVES_ALARMED`` of the non-grokking runs alarm."""
    from conjugacy.monitor import _auroc, _false_alarm_rate, _interval

    ss = [getattr(f["evaluation"], signal) for f in folds]
    negs = [~np.array([o is not None for o in f["evaluation"].onsets]) for f in folds]
    pos = ~np.concatenate(negs)
    scores = np.concatenate([np.array(s.scores) for s in ss])
    leads = np.concatenate([np.array(s.lead_times) for s in ss])
    events = np.concatenate([np.array(s.alarm_events)[n] for s, n in zip(ss, negs)])
    steps = np.concatenate([np.array(s.monitored_steps)[n] for s, n in zip(ss, negs)])
    rng = np.random.default_rng(0)
    pi = rng.integers(0, pos.sum(), (n_boot, pos.sum()))
    ni = rng.integers(0, (~pos).sum(), (n_boot, (~pos).sum()))
    early = np.where(leads > 0, leads, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lead_boot = np.nanmedian(early[pi], axis=1)
        lead = float(np.nanmedian(early)) if np.isfinite(early).any() else float("nan")
    rate, rate_iv = _false_alarm_rate(events, steps, ni)
    return {"signal": signal, "runs": label, "rules": [(s.factor, s.sustain) for s in ss],
            "auroc_before_onset": float(_auroc(scores[pos], scores[~pos])),
            "auroc_interval": list(_interval(_auroc(scores[pos][pi], scores[~pos][ni]))),
            "warned": int(np.isfinite(early).sum()), "n_positive": int(pos.sum()),
            "lead_time_median": lead, "lead_time_interval": list(_interval(lead_boot)),
            "false_alarms_per_1000": rate, "false_alarm_interval": list(rate_iv),
            "negatives_alarmed": int((events > 0).sum()), "n_negative": int((~pos).sum()),
            # a rule under which, in any fold, more non-grokking runs alarm than calibrated
            # for detects nothing: its alarms before an onset are not reported as warnings
            "specific": all(s.negatives_alarmed is not None and s.negatives_alarmed
                            <= MAX_NEGATIVES_ALARMED * s.n_negative for s in ss)}


def _fmt(x: float, iv: tuple[float, float] | list[float], digits: int = 2) -> str:
    if x != x:  # NaN: no detection
        return "none"
    return f"{x:.{digits}f} [{iv[0]:.{digits}f}, {iv[1]:.{digits}f}]"


def table(rows: list[dict]) -> list[str]:
    lines = ["| signal | runs | rule(s) (factor x floor, sustain) | AUROC before onset [95% CI] | "
             "grokking runs warned before onset | lead time, steps: median [95% CI] | false "
             "alarms / 1,000 steps [95% CI] | non-grokking runs alarmed |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rules = "; ".join(f"{f:.3g}, {k}" for f, k in r["rules"])
        warned = f"{r['warned']}/{r['n_positive']}"
        lead = _fmt(r["lead_time_median"], r["lead_time_interval"], 0)
        if not r["specific"]:
            warned, lead = f"not a detection ({warned})", "not a detection"
        lines.append(f"| {r['signal']} | {r['runs']} | {rules} | "
                     f"{_fmt(r['auroc_before_onset'], r['auroc_interval'])} | {warned} | {lead} "
                     f"| {_fmt(r['false_alarms_per_1000'], r['false_alarm_interval'])} | "
                     f"{r['negatives_alarmed']}/{r['n_negative']} |")
    return lines


def report_target(runs: dict, folds: list[tuple[range, range]], n_boot: int, target: float
                  ) -> dict:
    """Cross-fitted evaluation at one target: printed, and returned JSON-ready."""
    signals = ("spectral", "parameter_norm", "shuffled_windows")
    done = [fold(runs, held, shown, n_boot, target) for held, shown in folds]
    print(f"\ntarget {target:g} false alarms / 1,000 steps, at most {MAX_NEGATIVES_ALARMED:g} of "
          f"the held-out non-grokking runs in alarm; cross-fitted over {len(folds)} folds (CPU "
          f"{sum(f['cpu_s'] for f in done):.1f} s)")
    for (held, _), f in zip(folds, done):
        for s, tried in f["rule"].candidates.items():
            print(f"  calibrated on seeds {held.start}-{held.stop - 1}, {s}: " + "; ".join(
                f"sustain {t['sustain']}: factor {t['factor']:.3g}, FA "
                f"{t['false_alarms_per_1000']:.3f}, negatives alarmed {t['negatives_alarmed']}/"
                f"{t['n_negative']}, warned {t['warned']}/{t['n_positive']}" for t in tried))
    rows = [row for s in signals for row in
            [pooled([f], s, n_boot, f"seeds {r.start}-{r.stop - 1}")
             for (_, r), f in zip(folds, done)] + [pooled(done, s, n_boot)]]
    print("\n".join(table(rows)))
    alarms = {s: {n: a for f in done for n, a in zip(f["evaluation"].names,
                                                     getattr(f["evaluation"], s).alarm_steps)
                  if a is not None} for s in signals}
    print("alarm steps:", alarms)
    return {"target_false_alarms_per_1000": target,
            "max_negatives_alarmed": MAX_NEGATIVES_ALARMED,
            "folds": [{"held_out_seeds": [h.start, h.stop - 1],
                       "reported_seeds": [r.start, r.stop - 1],
                       "calibration": f["rule"].candidates, "chosen": f["rule"].summary(),
                       "evaluation": f["evaluation"].summary(), "cpu_s": f["cpu_s"]}
                      for (h, r), f in zip(folds, done)],
            "rows": rows, "alarm_steps": alarms}


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
    folds = [(range(0, half), range(half, args.seeds)), (range(half, args.seeds), range(0, half))]
    doc = {"onsets": onsets, "rule": RULE, "sustains": SUSTAINS, "targets": {}}
    for target in TARGETS:
        doc["targets"][f"{target:g}"] = report_target(runs, folds, args.n_boot, target)
    if args.out is not None:
        args.out.write_text(json.dumps(doc, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
