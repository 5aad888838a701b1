"""
Record a small network's training with perturbed replicas, then compute its Koopman spectrum
==============================================================================================

Trains a 64-16-10 MLP on scikit-learn's bundled digits: one base initialization and 4 replicas
perturbed by W0 * (1 + 1e-3 xi), all on the same batches; records the output weights at every step
into a Zarr store; fits DMD-RRR with 8 delays and rank 10.
Run: python examples/record_digits.py [OUT_DIR]
"""

import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from conjugacy import Spectrum, koopman_spectrum
from conjugacy.data import load_digits
from conjugacy.store import TrajectoryStore
from conjugacy.torch import train_replicas


def main(out: Path) -> Spectrum:
    data = load_digits()
    x = torch.tensor(data.features("train"), dtype=torch.float32)
    y = torch.tensor(data.train_labels, dtype=torch.long)
    batches = [(x[i : i + 60], y[i : i + 60]) for i in range(0, 60 * 20, 60)]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16, bias=False), nn.ReLU(), nn.Linear(16, 10, bias=False))
    runs = train_replicas(
        model, n_replicas=5, eps=1e-3, noise="uniform", seed=0, batches=batches,
        loss_fn=nn.functional.cross_entropy,
        make_optimizer=lambda p: torch.optim.SGD(p, lr=0.1), n_steps=len(batches),
        store=out / "runs.zarr", run_prefix="replica", params="2.weight",
    )
    with TrajectoryStore.open(out / "runs.zarr", "r") as store:
        trajectories = store.read("2.weight", runs=runs)  # (5, 21, 160)
    spec = koopman_spectrum(trajectories, delays=8, rank=10)
    print(f"recorded {trajectories.shape} into {out / 'runs.zarr'}")
    print(spec)
    return spec


if __name__ == "__main__":
    spec = main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))

    import matplotlib.pyplot as plt  # the plots extra

    from conjugacy.plots import plot_eigenvalues

    _, ax = plt.subplots(figsize=(5, 5), layout="constrained")
    plot_eigenvalues({"64-16-10 MLP, SGD, output weights": spec}, ax=ax)
    ax.set_title("Koopman eigenvalues of 5 perturbed replicas (8 delays, rank 10)")
