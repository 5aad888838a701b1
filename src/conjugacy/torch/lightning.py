"""PyTorch Lightning callback that records weight trajectories with :class:`Recorder`.

Records the initial state (step 0) when training starts from scratch, then the state after every
``every``-th optimizer step (``trainer.global_step``; with gradient accumulation only batches that
ended with an optimizer step count). The training loss returned by ``training_step`` is stored as
the scalar ``loss``, plus any scalar ``trainer.callback_metrics`` named in ``metrics``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from ..store import TrajectoryStore
from .recorder import Recorder

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
    ) -> None:
        super().__init__()
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
                                 chunk_steps=self.chunk_steps, metadata=meta, optimizer=opt)
        self._last_step = trainer.global_step
        if self.record_initial and trainer.global_step == 0:
            self.recorder.record(0)

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
