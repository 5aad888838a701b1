"""Small synthetic studies for trying the analysis layer (and for the docstring examples).

Three inputs in the shapes a real study leaves, each built in well under a second:

- :func:`decay_store`: a :class:`~conjugacy.store.TrajectoryStore` of two conditions whose
  weights decay at different rates (``"slow"``: 0.95, ``"fast"``: 0.7 per record), what
  ``conjugacy analyze`` reads;
- :func:`random_walk_study`: a :class:`~conjugacy.study.Study` whose jobs record random walks
  with a drift per condition instead of training a network;
- :func:`checkpoint_store`: checkpoints of a 3-layer MLP, what the spectral-dynamics report
  (:mod:`conjugacy.analysis.checkpoints`) reads (needs torch);
- :func:`decay_windows`: the spectra of the windows of one run whose decay rate changes from
  window to window, what :mod:`conjugacy.analysis.windowed` compares.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["checkpoint_store", "decay_store", "decay_windows", "random_walk_study"]

#: Decay rate per record of each condition of :func:`decay_store`.
DECAY_RATES: Mapping[str, float] = {"slow": 0.95, "fast": 0.7}


def decay_store(path: str | os.PathLike[str], *, n_seeds: int = 4, n_records: int = 30,
                seed: int = 0) -> str:
    """Write a store of 2 conditions x ``n_seeds`` runs whose 3 weights decay geometrically.

    Run ``<condition>_s<k>`` (metadata ``{"condition": ..., "seed": k}``) records
    ``w[t] = rate ** t * w0 + 0.01 * noise`` (``w0`` and the noise standard normal, float64,
    shape (``n_records``, 3)) at steps ``0 .. n_records - 1``, with the scalar ``loss = rate ** t``,
    and is marked finished; the rates are :data:`DECAY_RATES`. One random stream (``seed``) is
    drawn in the order slow seeds, then fast seeds.

    Parameters
    ----------
    path : path
        Where the store is created (must not exist).
    n_seeds, n_records : int
        Runs per condition; records per run.
    seed : int
        Seed of the random stream.

    Returns
    -------
    str
        ``path``.

    Raises
    ------
    conjugacy.store.StoreError
        If ``path`` already holds a store with these runs.

    Examples
    --------
    >>> import tempfile
    >>> from conjugacy.store import TrajectoryStore
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with TrajectoryStore.open(decay_store(f"{tmp.name}/runs.zarr"), "r") as store:
    ...     store.runs()[:2], store.read(runs=["slow_s0"]).shape
    (['fast_s0', 'fast_s1'], (1, 30, 3))
    >>> tmp.cleanup()
    """
    from ..store import TrajectoryStore

    rng = np.random.default_rng(seed)
    steps = np.arange(n_records)
    with TrajectoryStore.open(path, "w") as store:
        for cond, lam in DECAY_RATES.items():
            for k in range(n_seeds):
                run = f"{cond}_s{k}"
                store.create_run(run, {"w": ((3,), "float64")},
                                 metadata={"condition": cond, "seed": k})
                w = lam ** steps[:, None] * rng.standard_normal(3)
                w += 0.01 * rng.standard_normal((n_records, 3))
                store.append(run, steps, {"w": w}, scalars={"loss": lam**steps})
                store.set_finished(run)
    return os.fspath(path)


def _random_walks(job: Any, context: Any) -> None:
    """The training function of :func:`random_walk_study` (module level: Dask pickles it)."""
    rng = np.random.default_rng(job.seed)
    for run in job.run_names:
        context.store.create_run(run, {"w": ((2,), "float64")}, metadata=context.metadata)
        sd = job.params.get("sd", 1.0)
        w = np.cumsum(rng.normal(job.params["drift"], sd, (job.n_records, 2)), axis=0)
        context.store.append(run, np.arange(job.n_records), {"w": w})
        context.store.set_finished(run)


def random_walk_study(*, seeds: Sequence[int] = (0, 1), n_replicas: int = 2, n_records: int = 5,
                      sd: float = 1.0, settings: Mapping[str, Any] | None = None) -> Any:
    """A :class:`~conjugacy.study.Study` named ``"demo"`` of random walks instead of networks.

    Conditions ``"flat"`` (drift 0) and ``"up"`` (drift 1 per record); each job records
    ``n_replicas`` runs of a 2-D walk ``w = cumsum(normal(drift, sd))`` (float64, shape
    (``n_records``, 2)), drawn from ``default_rng(job seed)``.

    Parameters
    ----------
    seeds : sequence of int
    n_replicas, n_records : int
    sd : float
        Standard deviation of a step.
    settings : dict, optional
        The study's training settings (its stamp); default ``{"n_steps": n_records - 1}``.

    Returns
    -------
    Study

    Examples
    --------
    >>> study = random_walk_study()
    >>> [job.key for job in study.jobs()], study.stamp()["settings"]
    (['flat-seed0', 'up-seed0', 'flat-seed1', 'up-seed1'], {'n_steps': 4})
    """
    from ..study import Study

    conditions = {"flat": {"drift": 0.0, "sd": sd}, "up": {"drift": 1.0, "sd": sd}}
    return Study("demo", conditions, seeds=list(seeds), n_replicas=n_replicas,
                 n_records=n_records, train=_random_walks,
                 settings={"n_steps": n_records - 1} if settings is None else dict(settings))


def checkpoint_store(path: str | os.PathLike[str], *, seeds: Sequence[int] = (0, 1)) -> str:
    """Write the checkpoints of a 3-layer MLP (4-8-8-2) trained 10 steps, one run per seed.

    Per seed ``s``: ``torch.manual_seed(s)``, SGD (lr 0.1) on the MSE of a constant batch, a
    checkpoint every 5 steps (steps 0, 5, 10) into run ``s<s>.checkpoints`` of a checkpoint
    store (:class:`conjugacy.torch.snapshots.CheckpointRecorder`, metadata
    ``{"condition": "mlp", "seed": s}``). Needs torch.

    Parameters
    ----------
    path : path
        Where the store is created.
    seeds : sequence of int

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> from conjugacy.store import TrajectoryStore
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with TrajectoryStore.open(checkpoint_store(f"{tmp.name}/runs.zarr"), "r") as store:
    ...     store.runs()
    ['s0.checkpoints', 's1.checkpoints']
    >>> tmp.cleanup()
    """
    import torch
    from torch import nn

    from ..torch.snapshots import CheckpointRecorder

    x, y = torch.ones(8, 4), torch.zeros(8, 2)
    for seed in seeds:
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(),
                              nn.Linear(8, 2))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        meta = {"condition": "mlp", "seed": seed}
        with CheckpointRecorder(path, f"s{seed}", model, schedule=5, metadata=meta) as rec:
            for step in range(11):
                rec.record(step)
                opt.zero_grad()
                nn.functional.mse_loss(model(x), y).backward()
                opt.step()
    return os.fspath(path)


def decay_windows(rates: Sequence[float], rng: np.random.Generator, window: int = 20) -> list[Any]:
    """The spectra (rank 1) of the windows of one 2-D run that decays at ``rates[i]`` per record
    in window ``i``: ``x = rate ** t * normal(2)`` per window, plus ``0.01 * normal`` noise,
    fitted by :func:`conjugacy.windowed_spectra` over windows of ``window`` records.

    Parameters
    ----------
    rates : sequence of float
        One decay rate per window.
    rng : numpy.random.Generator
        Draws the run (two calls share one stream, so seeds differ).
    window : int
        Records per window.

    Returns
    -------
    list of Spectrum
        One per window.

    Examples
    --------
    >>> spectra = decay_windows((0.95, 0.5), np.random.default_rng(0))
    >>> [round(float(s.eigenvalues[0].real), 2) for s in spectra]
    [0.95, 0.5]
    """
    from ..windows import windowed_spectra

    x = np.concatenate([lam ** np.arange(window)[:, None] * rng.standard_normal(2)
                        for lam in rates])
    noise = 0.01 * rng.standard_normal((1, window * len(rates), 2))
    return windowed_spectra(x[None] + noise, window, rank=1)
