"""A new user's first study (issue 25): record it with the Recorder, then time ``conjugacy analyze``.

Usage:  python benchmarks/bench_first_hour.py [--store DIR] [--src PATH ...] [--skip-checkout]
                                              [--repeats N] [--window N]
                                              [--first-seed F] [--seeds K] [--record-only]

The study of issue 25: a small CNN (conv 1->8, 3x3, stride 2; conv 8->16, 3x3, stride 2; mean
pool; linear 16->10) on the 4,000-image training part of the bundled 5k MNIST sample
(:func:`conjugacy.data.load_mnist_sample`), batch 60, three conditions -- SGD with momentum 0.9
(lr 0.05), Adam (lr 1e-3), and SGD with momentum 0.9 and a linear learning-rate warm-up over the
first 50 steps -- 4 seeds x 5 replicas (:func:`conjugacy.torch.make_replicas`, eps 1e-3) x 300
steps, every parameter (1,418 float32: the Recorder's default) recorded by
:class:`conjugacy.torch.Recorder` at every step (step 0 included), ``torch.set_num_threads(1)``.
The store is written once into ``--store`` (default: a temporary folder) and reused.

Then ``conjugacy analyze STORE --no-report`` (the CLI, default settings, Rich progress on the
terminal's stderr) runs as a child process: its wall time and CPU time (the child's user + system
time) are reported, and the settings and verdicts it wrote. ``--src`` also runs another
checkout's ``src`` (e.g. ``git archive COMMIT src``; repeatable, ``--skip-checkout`` to time
only those), interleaved with this one ``--repeats`` times, so before and after come from one
run on one machine; the neighbour check's CPU (``neighbourhood["cpu_seconds"]``) is printed too.
``--window N`` adds the windowed analysis. Issue 25's target: under 2 minutes of wall time on an
idle 2-core machine.

``--first-seed F --seeds K`` records seeds ``F .. F + K - 1`` instead of 0-3 (the seeds that
chose ``conjugacy analyze``'s default, issue 20; ``--first-seed 4`` gives held-out ones for
``bench_settings.py --first-hour STORE``); ``--record-only`` stops after recording. The warm-up
condition's schedule is recorded in its runs' metadata (``Recorder(scheduler=...)``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONDITIONS = ("sgd_momentum", "adam", "sgd_momentum_warmup")
N_SEEDS, N_REPLICAS, N_STEPS, BATCH, WARMUP = 4, 5, 300, 60, 50


def _model() -> object:
    from torch import nn

    return nn.Sequential(nn.Conv2d(1, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def warmup_factor(step: int) -> float:
    """The warm-up's learning-rate factor after ``step`` scheduler steps: linear from
    ``1 / WARMUP`` to 1 over the first ``WARMUP`` steps, then 1."""
    return min(1.0, (step + 1) / WARMUP)


def _optimizer(condition: str, params: object) -> tuple[object, object]:
    """The optimizer and its learning-rate schedule (None: constant)."""
    import torch

    if condition == "adam":
        return torch.optim.Adam(params, lr=1e-3), None
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    if condition == "sgd_momentum_warmup":
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, warmup_factor)
    return opt, None


def record_study(path: Path, first_seed: int = 0, n_seeds: int = N_SEEDS) -> float:
    """Train and record the study into ``path``, seeds ``first_seed .. first_seed + n_seeds - 1``
    (default 0-3: the seeds that chose ``conjugacy analyze``'s default; 4 on are held out);
    returns the CPU seconds it took.

    Raises ValueError if ``first_seed`` is negative or ``n_seeds`` is below 2 (a same-condition
    pair needs two seeds)."""
    if first_seed < 0 or n_seeds < 2:
        raise ValueError(f"record_study needs first_seed >= 0 and n_seeds >= 2 (two seeds make "
                         f"a same-condition pair), got first_seed={first_seed}, "
                         f"n_seeds={n_seeds}")
    import torch
    from torch import nn

    from conjugacy.data import load_mnist_sample
    from conjugacy.torch import Recorder, make_replicas

    torch.set_num_threads(1)
    c0 = time.process_time()
    data = load_mnist_sample(seed=0)
    x = torch.tensor(data.train_images[:, None])
    y = torch.tensor(data.train_labels).long()
    for condition in CONDITIONS:
        for seed in range(first_seed, first_seed + n_seeds):
            torch.manual_seed(seed)
            order = torch.Generator().manual_seed(seed)
            batches = [torch.randint(len(y), (BATCH,), generator=order) for _ in range(N_STEPS)]
            for replica, model in enumerate(make_replicas(_model(), N_REPLICAS, eps=1e-3,
                                                          seed=seed)):
                opt, schedule = _optimizer(condition, model.parameters())
                meta = {"condition": condition, "seed": seed, "replica": replica}
                with Recorder(path, f"{condition}_s{seed}_r{replica}", model, "*",
                              optimizer=opt, scheduler=schedule, metadata=meta) as rec:
                    rec.record(0)
                    for step, idx in enumerate(batches, start=1):
                        opt.zero_grad()
                        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                        loss.backward()
                        opt.step()
                        if schedule is not None:
                            schedule.step()
                        rec.record(step, loss=loss.item())
    return time.process_time() - c0


def time_analyze(store: Path, out: Path, src: Path | None, window: int | None) -> dict:
    """``conjugacy analyze`` as a child process: wall and CPU seconds, settings, verdicts."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src.resolve())
    cmd = [sys.executable, "-m", "conjugacy", "analyze", str(store), "--out", str(out),
           "--no-report", *([] if window is None else ["--window", str(window)])]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    w0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - w0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    r = json.loads((out / "results.json").read_text())
    return {"wall": wall, "cpu": cpu, "delays": r["settings"]["delays"],
            "rank": r["settings"]["rank"],
            "ranks": sorted({sp["rank"] for v in r["spectra"].values() for sp in v}),
            "verdicts": {k: v["verdict"] for k, v in r["comparison"]["verdicts"].items()},
            "fragile": {k: v["fragile"] for k, v in
                        (r["comparison"].get("neighbourhood") or {}).get("pairs", {}).items()},
            "neighbour_cpu": (r["comparison"].get("neighbourhood") or {}).get("cpu_seconds")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--src", type=Path, action="append", default=[],
                    help="another checkout's src (repeatable)")
    ap.add_argument("--skip-checkout", action="store_true",
                    help="time only the --src checkouts (e.g. clean archives of two commits)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--window", type=int, default=None)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="first seed recorded (0-3 chose analyze's default; 4 on are held out)")
    ap.add_argument("--seeds", type=int, default=N_SEEDS, help="number of seeds recorded")
    ap.add_argument("--record-only", action="store_true", help="record the store, then stop")
    args = ap.parse_args()
    if args.first_seed < 0 or args.seeds < 2:
        ap.error(f"--first-seed must be >= 0 and --seeds >= 2 (two seeds make a same-condition "
                 f"pair), got {args.first_seed} and {args.seeds}")
    tmp = Path(tempfile.mkdtemp())
    store = args.store or tmp / "first_hour.zarr"
    if not store.exists():
        cpu = record_study(store, args.first_seed, args.seeds)
        print(f"recorded {store} (seeds {args.first_seed}-{args.first_seed + args.seeds - 1}) "
              f"in {cpu:.0f} s CPU", flush=True)
    if args.record_only:
        return
    runs = [(str(src), src) for src in args.src]
    if not args.skip_checkout:
        runs.append(("this checkout", None))
    for rep in range(args.repeats):
        for name, src in runs:
            got = time_analyze(store, tmp / f"an_{rep}_{len(name)}", src, args.window)
            nb = got["neighbour_cpu"]
            print(f"repeat {rep + 1}, {name}: wall {got['wall']:.1f} s, CPU {got['cpu']:.1f} s "
                  f"(neighbour refits and their comparisons {nb or 0:.1f} s); "
                  f"delays {got['delays']}, rank {got['rank']} (kept {got['ranks']}); "
                  f"verdicts {got['verdicts']}; fragile {got['fragile']}", flush=True)


if __name__ == "__main__":
    main()
