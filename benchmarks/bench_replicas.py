"""Sequential vs vectorised (torch.func.vmap) replica training, recorded into a store.

Trains ``n`` perturbed replicas of a 2-layer MLP on scikit-learn's digits with SGD + momentum for
``steps`` steps, recording every step, once per path, each in a fresh subprocess so the peak
memory (max RSS on CPU, ``torch.cuda.max_memory_allocated`` on CUDA) is that path's own. Prints a
Markdown table with wall time, time ratio, peak memory, and the largest difference between the
two paths' trajectories.

usage: python benchmarks/bench_replicas.py [--replicas 2 8 32] [--steps 200] [--hidden 128]
                                           [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    from conjugacy.store import TrajectoryStore
    from conjugacy.torch import train_replicas

    dev = torch.device(args.device)
    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32, device=dev)
    y = torch.tensor(d.target, device=dev)
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(64, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 10))

    def batches():
        g = torch.Generator().manual_seed(1)
        perm = torch.randperm(len(x), generator=g).to(dev)
        return [(x[perm[i:i + 64]], y[perm[i:i + 64]]) for i in range(0, len(x) - 63, 64)]

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    names = train_replicas(base, n_replicas=args.n, eps=1e-2, seed=0, batches=batches,
                           loss_fn=nn.functional.cross_entropy, n_steps=args.steps,
                           make_optimizer=lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
                           store=args.store, run_prefix=args.path, device=dev,
                           vectorize=args.path == "vmap")
    if dev.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t
    peak = (torch.cuda.max_memory_allocated() if dev.type == "cuda"
            else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) * 1024)
    with TrajectoryStore.open(args.store, "r") as st:
        final = st.read(runs=names, steps=slice(-1, None))[:, 0]
    np.save(Path(args.store) / f"{args.path}_final.npy", final)
    print(json.dumps({"wall": wall, "peak": int(peak)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, nargs="+", default=[2, 8, 32])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--path", default="seq")
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--store", default="")
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    import numpy as np

    rows = []
    for n in args.replicas:
        with tempfile.TemporaryDirectory() as tmp:
            res = {}
            for path in ("seq", "vmap"):
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", "--path", path, "--n", str(n),
                     "--store", str(Path(tmp) / path), "--steps", str(args.steps),
                     "--hidden", str(args.hidden), "--device", args.device],
                    capture_output=True, text=True, check=True)
                res[path] = json.loads(out.stdout.strip().splitlines()[-1])
            diff = np.abs(np.load(Path(tmp) / "seq" / "seq_final.npy")
                          - np.load(Path(tmp) / "vmap" / "vmap_final.npy")).max()
        rows.append((n, res["seq"], res["vmap"], diff))
    print(f"\nreplica training, MLP 64-{args.hidden}-10 on digits, {args.steps} steps, "
          f"device={args.device}, every step recorded\n")
    print("| replicas | sequential s | vmap s | speed-up | seq peak MiB | vmap peak MiB "
          "| max abs diff |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n, s, v, diff in rows:
        print(f"| {n} | {s['wall']:.2f} | {v['wall']:.2f} | {s['wall'] / v['wall']:.2f}x "
              f"| {s['peak'] / 2**20:.1f} | {v['peak'] / 2**20:.1f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
