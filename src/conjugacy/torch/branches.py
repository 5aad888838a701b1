"""Linear mode connectivity of branches split from one trunk (Frankle et al. 2020; the companion
paper's appendix D.10): copies of a partly trained model continue from the same optimizer state,
each on its own batch order; the loss and error barriers between their endpoints are written as
the runs' ``lmc`` metadata, the record that
:func:`conjugacy.analysis.checkpoints.checkpoint_sections` reads into its ``lmc`` section.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..spectral_dynamics import barrier
from .recorder import Recorder
from .snapshots import interpolation_losses

__all__ = ["branch_barrier"]


def branch_barrier(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    make_optimizer: Callable[[Iterable[torch.Tensor]], torch.optim.Optimizer],
    train: Callable[[nn.Module, torch.optim.Optimizer, int], None],
    *,
    store: Any,
    runs: Sequence[str],
    split_step: int,
    final_step: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    data: Iterable[Any],
    pair: str,
    metadata: Mapping[str, Any] | None = None,
    lmc_metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Two branches of a trunk, recorded, and the barriers between their endpoints.

    For branch ``b`` (one per name in ``runs``): a deep copy of ``model`` with
    ``make_optimizer(copy.parameters())`` loaded with a copy of ``optimizer``'s state (every
    branch starts from the same state), recorded (all parameters) at ``split_step``, advanced
    by ``train(copy, its_optimizer, b)`` to ``final_step``, recorded again. Then
    :func:`~conjugacy.torch.snapshots.interpolation_losses` (11 points) between the two endpoints
    and :func:`conjugacy.spectral_dynamics.barrier` of the losses and errors, written into both
    runs' metadata as ``lmc``.

    Parameters
    ----------
    model, optimizer
        The trunk at ``split_step`` and its optimizer; neither is modified.
    make_optimizer : callable
        ``make_optimizer(parameters) -> optimizer`` of the same kind as ``optimizer``.
    train : callable
        ``train(model, optimizer, b)`` takes branch ``b`` from ``split_step`` to ``final_step``
        (its own batch order: that is what makes the branches differ).
    store : TrajectoryStore
        Open for writing.
    runs : sequence of 2 str
        The branches' run names.
    split_step, final_step : int
        Steps of the two records of each branch.
    loss_fn, data
        A classification loss and re-iterable ``(inputs, labels)`` batches for the barrier.
    pair : str
        Name of the pair (``lmc["pair"]``), e.g. the study job's key.
    metadata : mapping, optional
        Metadata of every run.
    lmc_metadata : mapping, optional
        More entries of the ``lmc`` record (e.g. how batch norm was handled).

    Returns
    -------
    dict
        The ``lmc`` record: ``pair``, ``split_step``, ``final_step``, ``barrier_loss``,
        ``barrier_error``, ``losses``, ``errors``, ``alphas`` and ``lmc_metadata``.

    Raises
    ------
    ValueError
        ``runs`` does not name two branches, or ``final_step <= split_step``.

    Examples
    --------
    Two branches of a linear classifier, trained one step each on other halves of the data:

    >>> import tempfile
    >>> import torch.nn.functional as F
    >>> from conjugacy.store import TrajectoryStore
    >>> x, y = torch.randn(8, 3, generator=torch.Generator().manual_seed(0)), torch.arange(8) % 2
    >>> trunk = nn.Linear(3, 2)
    >>> sgd = lambda params: torch.optim.SGD(params, lr=0.5)
    >>> def train(m, o, b):
    ...     o.zero_grad(); F.cross_entropy(m(x[b::2]), y[b::2]).backward(); o.step()
    >>> with tempfile.TemporaryDirectory() as tmp, TrajectoryStore.open(f"{tmp}/s.zarr", "w") as st:
    ...     lmc = branch_barrier(trunk, sgd(trunk.parameters()), sgd, train, store=st,
    ...                          runs=["b0", "b1"], split_step=0, final_step=1,
    ...                          loss_fn=F.cross_entropy, data=[(x, y)], pair="p")
    ...     st.steps("b1").tolist(), st.run_info("b1")["metadata"]["lmc"]["pair"]
    ([0, 1], 'p')
    >>> sorted(lmc)[:4], len(lmc["losses"])
    (['alphas', 'barrier_error', 'barrier_loss', 'errors'], 11)
    """
    if len(runs) != 2:
        raise ValueError(f"runs must name 2 branches, got {list(runs)!r}")
    if final_step <= split_step:
        raise ValueError(f"final_step must be > split_step, got {final_step} <= {split_step}")
    ends = []
    for b, run in enumerate(runs):
        m = copy.deepcopy(model)
        o = make_optimizer(m.parameters())
        # a copy: load_state_dict keeps the given tensors (same dtype and device), and SGD's
        # momentum buffer is updated in place, so branch 0 would move branch 1's start
        o.load_state_dict(copy.deepcopy(optimizer.state_dict()))
        with Recorder(store, run, m, "*", optimizer=o, metadata=dict(metadata or {})) as rec:
            rec.record(split_step)
            train(m, o, b)
            rec.record(final_step)
        ends.append(m)
    res = interpolation_losses(ends[0], ends[1], loss_fn, data, n_points=11)
    if res.errors is None:
        raise ValueError("loss_fn and data must be a classification (outputs (n, classes), "
                         "integer labels (n,)): the error barrier needs errors")
    lmc = {"pair": pair, "split_step": split_step, "final_step": final_step,
           "barrier_loss": barrier(res.losses), "barrier_error": barrier(res.errors),
           "losses": res.losses.tolist(), "errors": res.errors.tolist(),
           "alphas": res.alphas.tolist(), **dict(lmc_metadata or {})}
    for run in runs:
        store.update_metadata(run, {"lmc": lmc})
    return lmc
