"""Full-model checkpoints for spectral dynamics, and loss along linear interpolations (torch edge).

* :class:`CheckpointRecorder` keeps every parameter with >= 2 dimensions at chosen steps
  (the companion paper's schedule, every ``k`` steps, or a list) in a
  :class:`~conjugacy.store.TrajectoryStore`, as a separate run ``<run>.checkpoints`` whose metadata
  names the run it belongs to. It works beside :class:`conjugacy.torch.Recorder` (which records the
  observed layer at every step) on the same open store; at steps outside the schedule it only
  tests set membership, so per-step recording is not slowed.
* :func:`interpolate_model` and :func:`interpolation_losses` evaluate the loss (and the error rate)
  along ``(1 - alpha) theta_a + alpha theta_b``, refitting batch-norm statistics at each point with
  ``torch.optim.swa_utils.update_bn`` (as the companion paper does, appendix D.10, following
  Frankle et al. 2020); :func:`conjugacy.spectral_dynamics.barrier` turns the curve into a barrier.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from .._checks import check_int
from ..store import StoreError, TrajectoryStore
from .recorder import (
    Recorder,
    _check_module,
    _check_step,
    _ClosesRun,
    _columns,
    _host,
    _np_dtype,
    _numbers,
    _open_store,
    describe_optimizer,
)

__all__ = [
    "CHECKPOINT_SUFFIX",
    "CheckpointRecorder",
    "InterpolationResult",
    "checkpoint_run_name",
    "companion_schedule",
    "interpolate_model",
    "interpolation_losses",
    "matrix_parameters",
]

#: Suffix of the checkpoint run of run ``r``: ``r.checkpoints`` (the store's run names allow
#: letters, digits and ``_ . + = , -`` only, so ``@`` cannot be used).
CHECKPOINT_SUFFIX = ".checkpoints"


def checkpoint_run_name(run: str) -> str:
    """Name of the checkpoint run that belongs to ``run``.

    Examples
    --------
    >>> checkpoint_run_name("seed0")
    'seed0.checkpoints'
    """
    return f"{run}{CHECKPOINT_SUFFIX}"


def matrix_parameters(model: nn.Module) -> list[str]:
    """Names of ``model``'s parameters with >= 2 dimensions, in ``named_parameters`` order.

    Examples
    --------
    >>> matrix_parameters(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)))
    ['0.weight', '2.weight']
    """
    _check_module(model)
    return [n for n, p in model.named_parameters() if p.ndim >= 2]


def companion_schedule(steps_per_epoch: int, n_epochs: int) -> list[int]:
    """Checkpoint steps of the companion paper: step 0, evenly spaced steps inside epoch 1, then
    the end of every epoch.

    As in the reference code (dyunis/spectral_dynamics, ``ModelCheckpoint``): with
    ``i = steps_per_epoch // 5``, steps ``i, 2i, 3i, 4i`` inside epoch 1 and the end of epoch 1 make
    five checkpoints in the first epoch; then ``e * steps_per_epoch`` for ``e = 2 .. n_epochs``.

    Returns
    -------
    list of int, strictly increasing, starting at 0.

    Examples
    --------
    >>> companion_schedule(10, 3)  # 4 steps inside epoch 1, then the end of each epoch
    [0, 2, 4, 6, 8, 10, 20, 30]
    """
    steps_per_epoch = check_int(steps_per_epoch, "steps_per_epoch", minimum=1)
    n_epochs = check_int(n_epochs, "n_epochs", minimum=1)
    interval = steps_per_epoch // 5
    inside = [j * interval for j in range(1, 5)] if interval else []
    epochs = [e * steps_per_epoch for e in range(1, n_epochs + 1)]
    return sorted({0, *inside, *epochs})


def _parse_schedule(schedule: str | int | Sequence[int], steps_per_epoch: int | None,
                    n_epochs: int | None) -> tuple[int | None, frozenset[int] | None, Any]:
    """``(every, steps, metadata)`` of a :class:`CheckpointRecorder` schedule (see there)."""
    every: int | None = None
    steps_set: frozenset[int] | None = None
    if isinstance(schedule, str):
        if schedule != "companion":
            raise ValueError(
                f"schedule must be 'companion', a positive int or a list of steps, got {schedule!r}"
            )
        if steps_per_epoch is None or n_epochs is None:
            raise ValueError("schedule='companion' needs steps_per_epoch and n_epochs")
        steps = companion_schedule(steps_per_epoch, n_epochs)
        steps_set = frozenset(steps)
        sched_meta: Any = {"name": "companion", "steps": steps,
                           "steps_per_epoch": int(steps_per_epoch), "n_epochs": int(n_epochs)}
    elif isinstance(schedule, int | np.integer) and not isinstance(schedule, bool):
        every = check_int(schedule, "schedule (every k steps)", minimum=1)
        sched_meta = {"name": "every", "every": every}
    elif isinstance(schedule, Sequence):
        steps = [check_int(s, f"schedule[{i}]", minimum=0) for i, s in enumerate(schedule)]
        if not steps:
            raise ValueError("schedule is an empty list of steps")
        steps_set = frozenset(steps)
        sched_meta = {"name": "list", "steps": sorted(steps_set)}
    else:
        raise TypeError(
            f"schedule must be 'companion', an int or a list of steps, got {type(schedule).__name__}"
        )
    return every, steps_set, sched_meta


class CheckpointRecorder(_ClosesRun):
    """Keep snapshots of every >= 2-D parameter of ``model`` at scheduled steps in a store.

    The snapshots go to run ``<run>.checkpoints`` (:func:`checkpoint_run_name`) of ``store``,
    created through the store's public API with metadata ``{"kind": "checkpoints",
    "checkpoints_of": run, "schedule": ..., ...}``. Read them back with
    :func:`conjugacy.experiments.spectral_dynamics.read_checkpoints`.

    Parameters
    ----------
    store : TrajectoryStore, str or path-like
        An open writable store (left open by :meth:`close`; pass the *same* object a
        :class:`~conjugacy.torch.Recorder` writes to: a store has one writer at a time), or a path
        (opened with mode ``"a"``, closed by :meth:`close`).
    run : str
        The training run the checkpoints belong to.
    model : nn.Module
    schedule : "companion", int or sequence of int
        ``"companion"``: :func:`companion_schedule` (needs ``steps_per_epoch`` and ``n_epochs``);
        an int ``k``: every ``k``-th step (0, k, 2k, ...); a sequence: exactly those steps.
    steps_per_epoch, n_epochs : int, optional
        For ``schedule="companion"``.
    params : sequence of str, optional
        Parameters to keep; default every parameter with >= 2 dimensions.
    metadata : mapping, optional
        Merged into the run's metadata.
    optimizer : torch.optim.Optimizer, optional
        Described in the metadata.
    chunk_steps : int
        Checkpoints buffered before a write (default 1: each is on disk when :meth:`record`
        returns).

    Raises
    ------
    ValueError
        Bad schedule, no matrix parameters, or the checkpoint run exists already.

    Examples
    --------
    >>> import tempfile
    >>> from conjugacy.store import TrajectoryStore
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with CheckpointRecorder(f"{tmp}/runs.zarr", "seed0", model, schedule=[0, 5]) as rec:
    ...         kept = [step for step in range(7) if rec.record(step)]
    ...     with TrajectoryStore.open(f"{tmp}/runs.zarr", "r") as store:
    ...         print(kept, store.runs(), store.parameters("seed0.checkpoints"))
    [0, 5] ['seed0.checkpoints'] ['0.weight', '2.weight']
    """

    def __init__(
        self,
        store: TrajectoryStore | str | os.PathLike[str],
        run: str,
        model: nn.Module,
        schedule: str | int | Sequence[int] = "companion",
        *,
        steps_per_epoch: int | None = None,
        n_epochs: int | None = None,
        params: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        chunk_steps: int = 1,
    ) -> None:
        if not isinstance(run, str):
            raise TypeError(f"run must be a string, got {type(run).__name__}")
        names = matrix_parameters(model)
        if params is not None:
            params = list(params)
            unknown = [p for p in params if p not in names]
            if unknown:
                raise ValueError(
                    f"params {unknown} are not parameters of the model with >= 2 dimensions; "
                    f"available: {', '.join(names)}"
                )
            names = [n for n in names if n in params]
        if not names:
            raise ValueError(f"model {type(model).__name__} has no parameter with >= 2 dimensions")
        check_int(chunk_steps, "chunk_steps", minimum=1)
        self._every, self._steps, sched_meta = _parse_schedule(schedule, steps_per_epoch,
                                                               n_epochs)
        self.model = model
        self.run = run
        self.checkpoint_run = checkpoint_run_name(run)
        self.names = names
        self.schedule = sched_meta
        self.chunk_steps = chunk_steps
        self._params = dict(model.named_parameters())
        self.store, self._owns_store = _open_store(store)
        self._closed = False
        try:
            if self.checkpoint_run in self.store.runs():
                raise StoreError(
                    f"checkpoint run {self.checkpoint_run!r} already exists in store "
                    f"{str(self.store.path)!r}; choose another run name"
                )
            layout = {n: (tuple(self._params[n].shape), _np_dtype(self._params[n])) for n in names}
            meta = {
                "kind": "checkpoints",
                "checkpoints_of": run,
                "schedule": sched_meta,
                "model_class": type(model).__name__,
                "optimizer": describe_optimizer(optimizer),
                "torch_version": torch.__version__,
            }
            meta.update(dict(metadata or {}))
            self.store.create_run(self.checkpoint_run, layout, chunk_steps=chunk_steps,
                                  metadata=meta)
        except BaseException:
            self._release()
            raise
        self._buf_steps: list[int] = []
        self._buf: dict[str, list[np.ndarray]] = {n: [] for n in names}
        self._buf_scalars: list[dict[str, float]] = []
        self.last_step: int | None = None

    @classmethod
    def beside(
        cls, recorder: Recorder, schedule: str | int | Sequence[int] = "companion", **kwargs: Any
    ) -> CheckpointRecorder:
        """A checkpoint recorder for the run, model and open store of a :class:`Recorder`."""
        if not isinstance(recorder, Recorder):
            raise TypeError(
                f"recorder must be a conjugacy.torch.Recorder, got {type(recorder).__name__}"
            )
        return cls(recorder.store, recorder.run, recorder.model, schedule,
                   optimizer=kwargs.pop("optimizer", recorder.optimizer), **kwargs)

    def due(self, step: int) -> bool:
        """Whether ``step`` is a scheduled checkpoint."""
        if self._every is not None:
            return step % self._every == 0
        assert self._steps is not None
        return step in self._steps

    def record(self, step: int, **scalars: float) -> bool:
        """Keep a snapshot if ``step`` is scheduled; return whether it did.

        Call after ``optimizer.step()`` with the number of steps taken (and with 0 before
        training), like :meth:`conjugacy.torch.Recorder.record`.
        """
        if self._closed:
            raise StoreError(f"checkpoint recorder of run {self.run!r} is closed")
        if not self.due(_check_step(step, None)):
            return False
        step = _check_step(step, self.last_step)
        vals = _numbers(scalars)
        with torch.no_grad():
            for n in self.names:
                self._buf[n].append(_host(self._params[n]).copy())
        self._buf_steps.append(step)
        self._buf_scalars.append(vals)
        self.last_step = step
        if len(self._buf_steps) >= self.chunk_steps:
            self.flush()
        return True

    def flush(self) -> None:
        """Write buffered snapshots to the store."""
        if not self._buf_steps:
            return
        self.store.append(
            self.checkpoint_run,
            np.array(self._buf_steps, dtype=np.int64),
            {n: np.stack(v) for n, v in self._buf.items()},
            _columns(self._buf_scalars),
        )
        self._buf_steps.clear()
        self._buf_scalars.clear()
        for v in self._buf.values():
            v.clear()

    def close(self, finished: bool = True) -> None:
        """Flush, mark the checkpoint run ``finished``, release an owned store. Idempotent."""
        if self._closed:
            return
        try:
            self.flush()
            self.store.set_finished(self.checkpoint_run, finished)
        finally:
            self._closed = True
            self._release()

    def _release(self) -> None:
        """Close an owned store."""
        if self._owns_store:
            self.store.close()

    def __repr__(self) -> str:
        return (f"CheckpointRecorder(run={self.checkpoint_run!r}, params={len(self.names)}, "
                f"schedule={self.schedule['name']!r})")


# ----------------------------------------------------------------------------- interpolation
class InterpolationResult(NamedTuple):
    """Loss and error along a linear interpolation between two models.

    Attributes
    ----------
    alphas : ndarray (n_points,)
        Interpolation coefficients, ``theta = (1 - alpha) theta_a + alpha theta_b``.
    losses : ndarray (n_points,)
        Mean loss per sample over ``data``.
    errors : ndarray (n_points,) or None
        Fraction misclassified (argmax of ``(batch, classes)`` outputs vs integer targets);
        None when the outputs are not class scores.
    refit_bn : bool
        Whether batch-norm statistics were recomputed at each point.

    Examples
    --------
    Returned by :func:`interpolation_losses`; its losses go to
    :func:`conjugacy.spectral_dynamics.barrier`:

    >>> import numpy as np
    >>> r = InterpolationResult(np.linspace(0, 1, 3), np.array([1.0, 0.0, 1.0]), None, False)
    >>> r.alphas, r.losses, r.errors
    (array([0. , 0.5, 1. ]), array([1., 0., 1.]), None)
    """

    alphas: np.ndarray
    losses: np.ndarray
    errors: np.ndarray | None
    refit_bn: bool


def _check_pair(model_a: nn.Module, model_b: nn.Module) -> None:
    _check_module(model_a, "model_a")
    _check_module(model_b, "model_b")
    sa, sb = model_a.state_dict(), model_b.state_dict()
    if list(sa) != list(sb):
        raise ValueError(
            "model_a and model_b must have the same architecture: their state_dict keys differ "
            f"({sorted(set(sa) ^ set(sb))[:5]} ...)"
        )
    for k in sa:
        if sa[k].shape != sb[k].shape:
            raise ValueError(
                f"model_a and model_b differ in {k!r}: shapes {tuple(sa[k].shape)} and "
                f"{tuple(sb[k].shape)}"
            )


def _has_bn(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _check_loader(data: Any, name: str) -> None:
    if not isinstance(data, Iterable):
        raise TypeError(f"{name} must be an iterable of (inputs, targets) batches")
    if iter(data) is data:
        raise TypeError(
            f"{name} is a one-shot iterator; pass a re-iterable (a list of batches or a DataLoader)"
        )


def interpolate_model(
    model_a: nn.Module,
    model_b: nn.Module,
    alpha: float,
    *,
    bn_data: Iterable[Any] | None = None,
    device: torch.device | str | None = None,
) -> nn.Module:
    """A new model with ``(1 - alpha) theta_a + alpha theta_b`` (parameters and float buffers).

    Integer buffers (``num_batches_tracked``) are taken from ``model_a``. With ``bn_data`` (batches
    of inputs, or of ``(inputs, targets)``), batch-norm running statistics are then recomputed
    with ``torch.optim.swa_utils.update_bn`` (cumulative average over ``bn_data``). Neither input
    model is changed. The result is in eval mode.

    Examples
    --------
    >>> a, b = nn.Linear(2, 1), nn.Linear(2, 1)
    >>> with torch.no_grad():
    ...     _ = a.weight.fill_(0.0), a.bias.fill_(0.0), b.weight.fill_(2.0), b.bias.fill_(1.0)
    >>> mid = interpolate_model(a, b, 0.5)
    >>> mid.weight.tolist(), mid.bias.tolist(), mid.training
    ([[1.0, 1.0]], [0.5], False)
    """
    _check_pair(model_a, model_b)
    a = float(alpha)
    if not np.isfinite(a):
        raise ValueError(f"alpha must be finite, got {alpha!r}")
    sa, sb = model_a.state_dict(), model_b.state_dict()
    model = copy.deepcopy(model_a)
    mixed = {
        k: ((1 - a) * sa[k] + a * sb[k].to(sa[k].device)) if sa[k].is_floating_point() else sa[k]
        for k in sa
    }
    model.load_state_dict(mixed)
    if device is not None:
        model.to(device)
    if bn_data is not None and _has_bn(model):
        _check_loader(bn_data, "bn_data")
        dev = next(model.parameters()).device
        torch.optim.swa_utils.update_bn(bn_data, model, device=dev)
    model.eval()
    return model


def interpolation_losses(
    model_a: nn.Module,
    model_b: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    data: Iterable[Any],
    n_points: int = 11,
    *,
    refit_bn: bool = True,
    bn_data: Iterable[Any] | None = None,
    device: torch.device | str | None = None,
) -> InterpolationResult:
    """Loss (and error) at ``n_points`` evenly spaced points of the segment from ``model_a`` to
    ``model_b``, refitting batch-norm statistics at each point (companion paper appendix D.10).

    Parameters
    ----------
    model_a, model_b : nn.Module
        Same architecture. Not modified.
    loss_fn : callable (outputs, targets) -> scalar tensor
        A mean-reduced loss (e.g. ``nn.functional.cross_entropy``); batches are weighted by their
        size, so the result is the mean over all samples.
    data : re-iterable of (inputs, targets) batches
        A list of batches or a DataLoader; evaluated with the model in eval mode, no gradients.
    n_points : int
        Points including both endpoints (paper: 11); at least 3 for a barrier.
    refit_bn : bool
        Recompute batch-norm running statistics at each point with
        ``torch.optim.swa_utils.update_bn`` (a no-op for models without batch norm).
    bn_data : re-iterable, optional
        Batches used for the refit (default ``data``; typically the training set).
    device : optional
        Where to evaluate (default: where ``model_a`` is).

    Returns
    -------
    InterpolationResult
        Pass ``result.losses`` (or ``result.errors``) to
        :func:`conjugacy.spectral_dynamics.barrier`.

    Raises
    ------
    TypeError
        If ``loss_fn`` is not callable, a model is not a ``torch.nn.Module``, or ``data`` is not
        a re-iterable of batches (a one-shot iterator).
    ValueError
        If the models' architectures differ or ``n_points`` is not an integer >= 2.

    Examples
    --------
    Two linear models whose midpoint fits the data exactly and whose endpoints do not:

    >>> import torch
    >>> from torch import nn
    >>> a, b = nn.Linear(2, 1), nn.Linear(2, 1)
    >>> with torch.no_grad():
    ...     _ = a.weight.fill_(0.0), a.bias.fill_(0.0), b.weight.fill_(2.0), b.bias.fill_(0.0)
    >>> batch = (torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0], [1.0]]))
    >>> r = interpolation_losses(a, b, nn.functional.mse_loss, [batch], n_points=3)
    >>> r.alphas, r.losses
    (array([0. , 0.5, 1. ]), array([1., 0., 1.]))
    """
    _check_pair(model_a, model_b)
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable (outputs, targets) -> loss, got {loss_fn!r}")
    check_int(n_points, "n_points", minimum=2)
    _check_loader(data, "data")
    refit_source = bn_data if bn_data is not None else data
    alphas = np.linspace(0.0, 1.0, n_points)
    losses, errors = np.empty(n_points), np.empty(n_points)
    classify = True
    for i, a in enumerate(alphas):
        model = interpolate_model(model_a, model_b, float(a),
                                  bn_data=refit_source if refit_bn else None, device=device)
        dev = next(model.parameters()).device
        total, wrong, n = 0.0, 0.0, 0
        with torch.no_grad():
            for batch in data:
                if not isinstance(batch, Sequence) or len(batch) < 2:
                    raise TypeError("data must yield (inputs, targets) batches")
                x, y = batch[0].to(dev), batch[1].to(dev)
                out = model(x)
                b = int(y.shape[0])
                total += float(loss_fn(out, y)) * b
                if out.ndim == 2 and y.ndim == 1 and not y.is_floating_point():
                    wrong += float((out.argmax(dim=1) != y).sum())
                else:
                    classify = False
                n += b
        if n == 0:
            raise ValueError("data yielded no samples")
        losses[i], errors[i] = total / n, wrong / n
    return InterpolationResult(alphas, losses, errors if classify else None, bool(refit_bn))
