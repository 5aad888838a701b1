"""Recording overhead of ``train_replicas`` at the paper's FCN shape (issue 15, item 6).

The job: ``--replicas`` (10) perturbed replicas of a bias-free ``784 -> h -> 10`` ReLU network
(``conjugacy.experiments.fcn.FCN``, h = ``--width``, 40) on the MNIST sample
(``conjugacy.data.load_mnist_sample``, standardized as the FCN experiment does), plain SGD
(lr 0.1), batches of 60 in the experiment's seeded order, ``--steps`` (1000) steps, the output
layer ``fc2.weight`` recorded at every step (the experiment's observable).

Two ways of running it are timed in the same process, interleaved, ``--reps`` times each after one
warm-up of each, for every ``--dtype``:

* ``plain``: the same vectorised training (``torch.func.vmap`` of ``functional_call`` over the
  stacked replicas, one backward of the summed losses, one SGD over the stacked tensors) with no
  store, no batch hashing, no recording;
* ``recorded``: ``conjugacy.torch.train_replicas(..., vectorize=True)`` into a fresh store.

Printed: median CPU time (``time.process_time``, all threads of the process) and wall time of each,
and the overhead ratio ``recorded / plain - 1``; never an absolute threshold (the machine is
shared). ``--profile`` also runs the recorded job once under cProfile and prints where its time
goes. ``--drift`` trains the job once on the sequential and once on the vectorised path for each
dtype and prints the largest difference between the two paths' final ``fc2.weight`` beside the
spread of the replicas (the largest difference between a replica and replica 0).

``--branch`` (issue 20, item 3) times the cost of recording the branch of every record for the
two-branch residuals: ``train_replicas(..., vectorize=False)`` (the path branches are recorded
on) without and with ``branch_batches=`` (one extra SGD step per recorded step on a batch of 60
drawn from the replica's own generator, then undone: model, optimizer and RNG state saved and
restored), interleaved, and prints the ratio ``branch / no branch`` of CPU and wall time.

usage: OMP_NUM_THREADS=1 python benchmarks/bench_recording.py [--steps 1000] [--replicas 10]
           [--width 40] [--reps 5] [--dtype float32 float64] [--profile] [--drift]
           [--drift-threads 1 2] [--branch] [--json PATH]
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import io
import json
import platform
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from conjugacy.data import load_mnist_sample
from conjugacy.experiments.fcn import FCN, batch_order
from conjugacy.store import TrajectoryStore
from conjugacy.torch import make_replicas, train_replicas

LR, BATCH, EPS = 0.1, 60, 1e-3


class Job:
    """Data, base network and batch order of one FCN job in ``dtype``."""

    def __init__(self, steps: int, replicas: int, width: int, dtype: torch.dtype) -> None:
        ds = load_mnist_sample()
        x = ds.features("train").astype(np.float64)
        x = (x - x.mean()) / x.std()
        self.x = torch.from_numpy(x).to(dtype)
        self.y = torch.from_numpy(np.array(ds.train_labels, dtype=np.int64))
        self.order = torch.from_numpy(batch_order(len(self.x), BATCH, steps, seed=1))
        self.base = FCN(self.x.shape[1], width, 10, generator=torch.Generator().manual_seed(2))
        self.base = self.base.to(dtype)
        self.steps, self.replicas, self.dtype = steps, replicas, dtype

    def batches(self) -> Any:
        return ((self.x[i], self.y[i]) for i in self.order)

    def plain(self) -> torch.Tensor:
        """The vectorised training of ``train_replicas`` without store, hashing or recording."""
        reps = make_replicas(self.base, self.replicas, eps=EPS, seed=3)
        stacked, buffers = torch.func.stack_module_state(reps)
        meta = copy.deepcopy(reps[0]).to("meta")

        def forward(p: Any, b: Any, inp: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(meta, (p, b), (inp,))

        vforward = torch.func.vmap(forward, in_dims=(0, 0, None), randomness="error")
        opt = torch.optim.SGD(list(stacked.values()), lr=LR)
        for x, y in self.batches():
            out = vforward(stacked, buffers, x)
            losses = [F.cross_entropy(out[i], y) for i in range(self.replicas)]
            opt.zero_grad(set_to_none=True)
            torch.stack(losses).sum().backward()
            opt.step()
        return stacked["fc2.weight"].detach().clone()

    def recorded(self, store: Path, vectorize: bool = True, branch: bool = False) -> list[str]:
        """``train_replicas`` into a new store at ``store`` (what is timed); return the runs.
        ``branch``: also record the branch of every record (sequential path)."""
        return train_replicas(
            self.base, n_replicas=self.replicas, eps=EPS, seed=3, batches=self.batches,
            loss_fn=F.cross_entropy, make_optimizer=lambda p: torch.optim.SGD(p, lr=LR),
            n_steps=self.steps, store=store, params=["fc2.weight"], vectorize=vectorize,
            branch_batches=self.branch_batch if branch else None,
        )

    def branch_batch(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch of the branch: indices drawn with the branch's own generator."""
        i = torch.randint(0, len(self.x), (BATCH,), generator=generator)
        return self.x[i], self.y[i]

    def final(self, store: Path, vectorize: bool) -> np.ndarray:
        """Train into ``store``; return the final ``fc2.weight`` of every replica."""
        names = self.recorded(store, vectorize)
        with TrajectoryStore.open(store, "r") as st:
            return st.read("fc2.weight", runs=names, steps=slice(-1, None))[:, 0]


def timed(fn: Any) -> tuple[float, float]:
    c, w = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c, time.perf_counter() - w


def measure(job: Job, reps: int, tmp: Path) -> dict[str, Any]:
    counter = iter(range(10**6))

    def rec() -> None:
        job.recorded(tmp / f"s{next(counter)}.zarr")

    timed(job.plain)  # warm-up (vmap tracing, allocator)
    timed(rec)
    cpu: dict[str, list[float]] = {"plain": [], "recorded": []}
    wall: dict[str, list[float]] = {"plain": [], "recorded": []}
    for _ in range(reps):
        for name, fn in (("plain", job.plain), ("recorded", rec)):
            c, w = timed(fn)
            cpu[name].append(c)
            wall[name].append(w)
    out = {k: {"cpu": statistics.median(cpu[k]), "wall": statistics.median(wall[k]),
               "cpu_all": cpu[k], "wall_all": wall[k]} for k in cpu}
    out["overhead_cpu"] = out["recorded"]["cpu"] / out["plain"]["cpu"] - 1
    out["overhead_wall"] = out["recorded"]["wall"] / out["plain"]["wall"] - 1
    # ratios of interleaved pairs are less sensitive to load drifting during the run
    out["overhead_cpu_pairs"] = statistics.median(
        r / p - 1 for r, p in zip(cpu["recorded"], cpu["plain"]))
    return out


def measure_branch(job: Job, reps: int, tmp: Path) -> dict[str, Any]:
    """CPU and wall time of the sequential recorded job without and with the branch."""
    counter = iter(range(10**6))

    def run(branch: bool) -> None:
        job.recorded(tmp / f"b{next(counter)}.zarr", vectorize=False, branch=branch)

    timed(lambda: run(False))  # warm-up
    timed(lambda: run(True))
    cpu: dict[str, list[float]] = {"no branch": [], "branch": []}
    wall: dict[str, list[float]] = {"no branch": [], "branch": []}
    for _ in range(reps):
        for name in cpu:
            c, w = timed(lambda name=name: run(name == "branch"))
            cpu[name].append(c)
            wall[name].append(w)
    ratios = [b / p for b, p in zip(cpu["branch"], cpu["no branch"])]
    return {"cpu": cpu, "wall": wall, "ratio_cpu_pairs": ratios,
            "ratio_cpu": statistics.median(cpu["branch"]) / statistics.median(cpu["no branch"]),
            "ratio_wall": statistics.median(wall["branch"]) / statistics.median(wall["no branch"])}


def profile(job: Job, tmp: Path, top: int = 25) -> str:
    pr = cProfile.Profile()
    pr.enable()
    job.recorded(tmp / "profiled.zarr")
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(top)
    return s.getvalue()


def drift(job: Job, tmp: Path) -> dict[str, float]:
    seq = job.final(tmp / "seq.zarr", vectorize=False).astype(np.float64)
    vec = job.final(tmp / "vec.zarr", vectorize=True).astype(np.float64)
    return {
        "max_abs_diff_paths": float(np.abs(seq - vec).max()),
        "replica_spread": float(np.abs(seq - seq[:1]).max()),
        "max_abs_weight": float(np.abs(seq).max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--replicas", type=int, default=10)
    ap.add_argument("--width", type=int, default=40)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dtype", nargs="+", default=["float32", "float64"],
                    choices=["float32", "float64"])
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--drift", action="store_true")
    ap.add_argument("--drift-threads", type=int, nargs="+", default=None,
                    help="torch threads of the drift runs (default: 1 and torch's default)")
    ap.add_argument("--branch", action="store_true",
                    help="time recording the branch of every record (sequential path)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    default_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    results: dict[str, Any] = {
        "steps": args.steps, "replicas": args.replicas, "width": args.width, "reps": args.reps,
        "python": platform.python_version(), "torch": torch.__version__,
    }
    print(f"FCN 784-{args.width}-10, {args.replicas} replicas, {args.steps} steps, batch {BATCH}, "
          f"SGD lr {LR}, fc2.weight recorded every step; median of {args.reps} (interleaved), "
          "torch threads 1")
    print("| dtype | plain CPU | recorded CPU | overhead CPU | plain wall | recorded wall "
          "| overhead wall |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name in args.dtype if args.reps > 0 else ():  # --reps 0: no timing
            job = Job(args.steps, args.replicas, args.width, getattr(torch, name))
            r = measure(job, args.reps, tmp / name)
            results[name] = r
            print(f"| {name} | {r['plain']['cpu']:.2f} s | {r['recorded']['cpu']:.2f} s | "
                  f"{100 * r['overhead_cpu']:+.0f} % | {r['plain']['wall']:.2f} s | "
                  f"{r['recorded']['wall']:.2f} s | {100 * r['overhead_wall']:+.0f} % |",
                  flush=True)
        if args.branch:
            print("\n| dtype | no branch CPU | branch CPU | ratio CPU (pairs: min-max) "
                  "| ratio wall |")
            print("|---|---:|---:|---:|---:|")
            for name in args.dtype:
                job = Job(args.steps, args.replicas, args.width, getattr(torch, name))
                r = measure_branch(job, max(args.reps, 1), tmp / f"branch-{name}")
                results[f"branch_{name}"] = r
                pairs = r["ratio_cpu_pairs"]
                print(f"| {name} | {statistics.median(r['cpu']['no branch']):.2f} s | "
                      f"{statistics.median(r['cpu']['branch']):.2f} s | {r['ratio_cpu']:.2f} "
                      f"({min(pairs):.2f}-{max(pairs):.2f}) | {r['ratio_wall']:.2f} |",
                      flush=True)
        if args.profile:
            job = Job(args.steps, args.replicas, args.width, getattr(torch, args.dtype[0]))
            text = profile(job, tmp / "profile")
            results["profile"] = text
            print(f"\ncProfile of the recorded job ({args.dtype[0]}), by own time:\n{text}")
        if args.drift:
            print("\n| dtype | torch threads | max abs diff vmap vs sequential | replica spread "
                  "| max abs weight |")
            print("|---|---:|---:|---:|---:|")
            for threads in args.drift_threads or sorted({1, default_threads}):
                torch.set_num_threads(threads)
                for name in args.dtype:
                    job = Job(args.steps, args.replicas, args.width, getattr(torch, name))
                    r = drift(job, tmp / f"drift-{name}-{threads}")
                    results[f"drift_{name}_threads{threads}"] = r
                    print(f"| {name} | {threads} | {r['max_abs_diff_paths']:.1e} | "
                          f"{r['replica_spread']:.1e} | {r['max_abs_weight']:.2f} |", flush=True)
            torch.set_num_threads(1)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
