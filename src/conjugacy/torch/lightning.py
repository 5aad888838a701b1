"""PyTorch Lightning callback that records weight trajectories with :class:`Recorder`.

Records the initial state (step 0) when training starts from scratch, then the state after every
``every``-th optimizer step (``trainer.global_step``; with gradient accumulation only batches that
ended with an optimizer step count). The training loss returned by ``training_step`` is stored as
the scalar ``loss``, plus any scalar ``trainer.callback_metrics`` named in ``metrics``.
"""

from __future__ import annotations

# ruff: noqa: E402 - the check below must run before the imports that need the extra
from .._launch import require

# without the extra: one line naming it (pip install 'conjugacy[...]'), not a bare
# ModuleNotFoundError; the imports below need it
require("lightning", "import conjugacy.torch.lightning")

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from ..store import TrajectoryStore
from .recorder import BranchStep, Recorder

__all__ = ["TrajectoryCallback"]


class TrajectoryCallback(pl.Callback):
    """Record ``pl_module``'s parameters into a trajectory store during ``Trainer.fit``.

    Parameters
    ----------
    store : TrajectoryStore or path
        Destination (a path is opened with mode ``"a"`` when training starts and closed at its end).
    run : str
        Run name.
    params : str or list of str
        Parameter names or globs, as for :class:`Recorder`.
    every, chunk_steps, metadata
        As for :class:`Recorder`.
    metrics : sequence of str
        Names in ``trainer.callback_metrics`` to record beside the loss when present.
    record_initial : bool
        Record step 0 before the first optimizer step.
    branch_sample : callable ``(generator) -> batch``, optional
        Also record the *branch* of every recorded state (:class:`~.recorder.BranchStep`):
        ``every`` more optimizer steps from it on batches drawn with the branch's own generator
        (seeded with ``branch_seed``), then undone; kept as the run's ``next/<name>`` for
        ``koopman_spectrum(next_states=)``. The batch is moved to the module's device.
    branch_loss : callable ``(pl_module, batch) -> scalar tensor``
        The loss of one branch batch; required with ``branch_sample``. The branch step is plain
        ``loss.backward(); optimizer.step()`` on the first optimizer: gradient clipping, mixed
        precision or manual optimisation configured in the Trainer are not applied to it.
    branch_seed : int, default 0

    Raises
    ------
    ValueError
        If only one of ``branch_sample`` and ``branch_loss`` is given (at construction); the
        errors of :class:`Recorder` (unknown parameters, an existing run) when training starts.

    Examples
    --------
    Construct the callback for a store in a temporary folder (nothing is opened or recorded
    before ``Trainer.fit`` starts); pass it as ``Trainer(callbacks=[cb])``:

    >>> import tempfile
    >>> from conjugacy.torch.lightning import TrajectoryCallback
    >>> tmp = tempfile.TemporaryDirectory()
    >>> cb = TrajectoryCallback(f"{tmp.name}/runs.zarr", run="sgd_seed0", params="layer.*",
    ...                         every=5, metadata={"optimizer": "sgd", "seed": 0},
    ...                         metrics=["val_loss"])
    >>> cb.run, cb.every, cb.metrics, cb.metadata, cb.recorder is None
    ('sgd_seed0', 5, ('val_loss',), {'optimizer': 'sgd', 'seed': 0}, True)
    >>> # trainer = lightning.pytorch.Trainer(max_steps=100, callbacks=[cb])
    >>> # trainer.fit(module, loader)  # then TrajectoryStore.open(path).read("sgd_seed0")
    >>> TrajectoryCallback(f"{tmp.name}/runs.zarr", run="x", branch_sample=lambda g: None)
    Traceback (most recent call last):
    ...
    ValueError: branch_sample and branch_loss go together: give both to record the branch ...
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        store: TrajectoryStore | str | os.PathLike[str],
        run: str,
        params: str | Iterable[str] = "*",
        *,
        every: int = 1,
        chunk_steps: int = 64,
        metadata: Mapping[str, Any] | None = None,
        metrics: Sequence[str] = (),
        record_initial: bool = True,
        branch_sample: Callable[[torch.Generator], Any] | None = None,
        branch_loss: Callable[[pl.LightningModule, Any], torch.Tensor] | None = None,
        branch_seed: int = 0,
    ) -> None:
        super().__init__()
        if (branch_sample is None) != (branch_loss is None):
            raise ValueError("branch_sample and branch_loss go together: give both to record the "
                             "branch (the loss of one batch drawn by branch_sample), or neither")
        self.branch = (branch_sample, branch_loss, branch_seed)
        self.store = store
        self.run = run
        self.params = params
        self.every = every
        self.chunk_steps = chunk_steps
        self.metadata = dict(metadata or {})
        self.metrics = tuple(metrics)
        self.record_initial = record_initial
        self.recorder: Recorder | None = None
        self._last_step = -1

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        opt = trainer.optimizers[0] if trainer.optimizers else None
        meta = {"lightning_version": pl.__version__, "max_steps": trainer.max_steps,
                "max_epochs": trainer.max_epochs, **self.metadata}
        self.recorder = Recorder(self.store, self.run, pl_module, self.params, every=self.every,
                                 chunk_steps=self.chunk_steps, metadata=meta, optimizer=opt,
                                 branch=self._branch_step(pl_module, opt))
        self._last_step = trainer.global_step
        if self.record_initial and trainer.global_step == 0:
            self.recorder.record(0)

    def _branch_step(self, pl_module: pl.LightningModule, opt: Any) -> BranchStep | None:
        sample, loss, seed = self.branch
        if sample is None:
            return None
        if opt is None:
            raise ValueError("branch_sample needs an optimizer: configure_optimizers returned none")
        from lightning.pytorch.utilities import move_data_to_device

        def on_device(module: Any, batch: Any) -> torch.Tensor:
            return loss(module, move_data_to_device(batch, module.device))

        return BranchStep(on_device, sample, opt, seed=seed)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if self.recorder is None or step == self._last_step:
            return  # no optimizer step in this batch (gradient accumulation)
        self._last_step = step
        scalars: dict[str, float] = {}
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            scalars["loss"] = float(loss.detach())
        for name in self.metrics:
            v = trainer.callback_metrics.get(name)
            if isinstance(v, torch.Tensor) and v.numel() == 1:
                scalars[name] = float(v)
        self.recorder.record(step, **scalars)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.recorder is not None:
            self.recorder.close(finished=True)
            self.recorder = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        if self.recorder is not None:
            try:
                self.recorder.close(finished=False)  # keep the recorded steps
            finally:
                self.recorder = None
