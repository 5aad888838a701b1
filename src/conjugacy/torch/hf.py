"""Hugging Face ``transformers.Trainer`` callback recording weight trajectories with :class:`Recorder`.

Requires the ``hf`` extra (``pip install conjugacy[hf]``: ``transformers>=4.40`` and
``accelerate``) besides ``torch`` and ``store``. Usage::

    from conjugacy.torch.hf import TrajectoryTrainerCallback

    cb = TrajectoryTrainerCallback("runs.zarr", run="adam_seed0", params="classifier.weight",
                                   metadata={"optimizer": "adam", "seed": 0})
    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[cb])
    trainer.train()

What is recorded, and when:

- step 0: the initial weights, at ``on_train_begin`` (when training starts from scratch);
- step ``t``: the weights after ``t`` optimizer steps (``TrainerState.global_step``), for every
  ``t`` that is a multiple of ``every``. With gradient accumulation only completed optimizer steps
  count, as in the Lightning callback.
- scalars: the values of ``log_keys`` (default ``("loss",)``) from the Trainer's log at the same
  step. The Trainer logs every ``TrainingArguments.logging_steps`` steps, and its ``loss`` is the
  mean training loss over the steps since the previous log; use ``logging_steps=1`` for the loss of
  every step. Steps without a log get NaN.

The weights of step ``t`` are read when the Trainer logs step ``t`` (``on_log``) or, when it does
not log that step, at the start of the next step (``on_step_begin``) or at ``on_train_end``; in each
case no optimizer step has happened in between, so the snapshot is the state after step ``t``.

Several processes (DDP): only the main process (``state.is_world_process_zero``) records.

Resuming (``trainer.train(resume_from_checkpoint=...)``) with ``resume=True``: the run is cut back
to the steps ``<= state.global_step`` of the checkpoint the Trainer restored, then continued. After
an exception inside ``trainer.train()`` the Trainer calls no callback; call :meth:`close` (or reuse
the callback: ``on_train_begin`` closes a recorder left open) so the store's writer lock is
released and the run stays marked unfinished.
"""

from __future__ import annotations

# ruff: noqa: E402 - the check below must run before the imports that need the extra
from .._launch import require

# without the extra: one line naming it (pip install 'conjugacy[...]'), not a bare
# ModuleNotFoundError; the imports below need it
require("transformers", "import conjugacy.torch.hf")

import contextlib
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import transformers
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ..store import StoreError, TrajectoryStore
from .recorder import BranchStep, Recorder, _open_store

__all__ = ["TrajectoryTrainerCallback"]

#: ``TrainingArguments`` fields copied into the run metadata (those that shape the trajectory).
_ARG_FIELDS = ("learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon",
               "max_grad_norm", "per_device_train_batch_size", "gradient_accumulation_steps",
               "max_steps", "num_train_epochs", "lr_scheduler_type", "warmup_steps", "seed",
               "data_seed", "logging_steps", "optim")


def _json_safe(value: Any) -> Any:
    """``value`` if it is a JSON scalar (finite floats only), its ``str`` otherwise (enums)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(getattr(value, "value", value))


class TrajectoryTrainerCallback(TrainerCallback):
    """Record a ``transformers`` model's parameters into a trajectory store during ``Trainer.train``.

    Parameters
    ----------
    store : TrajectoryStore or path
        Destination. A path is opened with mode ``"a"`` when training starts and closed when it
        ends (or by :meth:`close`).
    run : str
        Run name in the store (one per training run; e.g. ``f"adam_seed{seed}_r{replica}"``).
    params : str or list of str
        Parameter names or fnmatch globs (``"classifier.weight"``, ``"bert.encoder.layer.1.*"``),
        as for :class:`Recorder`; ``"*"`` records all parameters.
    every : int
        Record the steps that are multiples of ``every`` (>= 1).
    chunk_steps : int
        Records buffered in memory before a write (also the Zarr chunk length).
    metadata : mapping, optional
        JSON-serialisable run description (e.g. ``{"optimizer": "adam", "seed": 0}``: the keys
        ``conjugacy analyze --group-by`` / ``--seed-key`` group runs by). Merged with what the
        callback fills in: transformers version, model config, the training arguments of
        ``_ARG_FIELDS``, and what :class:`Recorder` adds (optimizer, versions).
    log_keys : sequence of str
        Keys of the Trainer's logs stored as scalars when logged at a recorded step.
    record_initial : bool
        Record step 0 before the first optimizer step (training from scratch only).
    resume : bool
        Continue an existing run when training resumes from a Trainer checkpoint (see the module
        docstring). Without it an existing run name is an error.
    branch_sample : callable ``(generator) -> batch``, optional
        Also record the *branch* of every recorded state (:class:`~.recorder.BranchStep`):
        ``every`` more optimizer steps from it on batches (mappings of tensors, as the model
        takes them) drawn with the branch's own generator (seeded with ``branch_seed``), then
        undone; kept as the run's ``next/<name>`` for ``koopman_spectrum(next_states=)``. The
        step is plain ``loss.backward(); optimizer.step()`` on the underlying torch optimizer:
        gradient clipping, mixed precision and accumulation of the Trainer are not applied.
    branch_loss : callable ``(model, batch) -> scalar tensor``, optional
        Default ``model(**batch).loss`` (the batch's tensors moved to the model's device).
    branch_seed : int, default 0

    Raises
    ------
    ValueError
        If ``every`` or ``chunk_steps`` is not a positive integer, or ``log_keys`` is not a
        sequence of strings (at construction); :class:`~conjugacy.store.StoreError` when training
        starts if the run exists and ``resume`` is False, or the parameters match nothing.

    Examples
    --------
    Construct the callback on a store in a temporary folder (nothing is recorded before
    ``Trainer.train`` starts); pass it as ``Trainer(..., callbacks=[cb])``:

    >>> import tempfile
    >>> from conjugacy.store import TrajectoryStore
    >>> from conjugacy.torch.hf import TrajectoryTrainerCallback
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = TrajectoryStore.open(f"{tmp.name}/runs.zarr", "w")
    >>> cb = TrajectoryTrainerCallback(store, run="adam_seed0", params="classifier.weight",
    ...                                every=2, log_keys=("loss", "grad_norm"),
    ...                                metadata={"optimizer": "adam", "seed": 0})
    >>> cb.run, cb.every, cb.log_keys, cb.recorder is None, store.runs()
    ('adam_seed0', 2, ('loss', 'grad_norm'), True, [])
    >>> TrajectoryTrainerCallback(store, run="adam_seed0", every=0)
    Traceback (most recent call last):
    ...
    ValueError: every must be a positive integer, got 0
    >>> store.close()
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
        log_keys: Sequence[str] = ("loss",),
        record_initial: bool = True,
        resume: bool = False,
        branch_sample: Callable[[Any], Mapping[str, Any]] | None = None,
        branch_loss: Callable[[Any, Mapping[str, Any]], Any] | None = None,
        branch_seed: int = 0,
    ) -> None:
        if branch_sample is not None and not callable(branch_sample):
            raise TypeError(f"branch_sample must be a callable generator -> batch, got "
                            f"{type(branch_sample).__name__}")
        self.branch = (branch_sample, branch_loss, branch_seed)
        for name, value in (("every", every), ("chunk_steps", chunk_steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(run, str) or not run:
            raise ValueError(f"run must be a non-empty string, got {run!r}")
        if isinstance(log_keys, str) or not all(isinstance(k, str) for k in log_keys):
            raise ValueError(f"log_keys must be a sequence of strings, got {log_keys!r}")
        if not isinstance(store, TrajectoryStore | str | os.PathLike):
            raise TypeError(f"store must be a TrajectoryStore or a path, got {type(store).__name__}")
        self.store = store
        self.run = run
        self.params = params
        self.every = every
        self.chunk_steps = chunk_steps
        self.metadata = dict(metadata or {})
        self.log_keys = tuple(log_keys)
        self.record_initial = record_initial
        self.resume = resume
        self.recorder: Recorder | None = None
        self._store: TrajectoryStore | None = None
        self._owns_store = False
        self._pending: int | None = None

    # ------------------------------------------------------------------ helpers
    def _describe(self, args: TrainingArguments, model: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {"recorded_by": "conjugacy.torch.hf.TrajectoryTrainerCallback",
                                "transformers_version": transformers.__version__}
        config = getattr(model, "config", None)
        if config is not None and hasattr(config, "to_json_string"):
            # a config holding something JSON cannot hold is left out
            with contextlib.suppress(TypeError, ValueError):
                meta["model_config"] = json.loads(config.to_json_string(use_diff=True))
        meta["training_arguments"] = {f: _json_safe(getattr(args, f)) for f in _ARG_FIELDS
                                      if hasattr(args, f)}
        meta["loss_note"] = ("loss at step t: mean training loss over the steps since the previous "
                             f"log (logging_steps={getattr(args, 'logging_steps', None)})")
        meta.update(self.metadata)
        return meta

    def _branch_step(self, optimizer: Any) -> BranchStep | None:
        sample, loss, seed = self.branch
        if sample is None:
            return None
        if optimizer is None:
            raise ValueError("branch_sample needs the optimizer: the Trainer passed none")

        def on_device(model: Any, batch: Mapping[str, Any]) -> Any:
            batch = {k: v.to(model.device) if hasattr(v, "to") else v for k, v in batch.items()}
            return model(**batch).loss if loss is None else loss(model, batch)

        # the torch optimizer under accelerate's wrapper, whose step may be skipped off an
        # accumulation boundary
        return BranchStep(on_device, sample, getattr(optimizer, "optimizer", optimizer),
                          seed=seed)

    def _flush_pending(self) -> None:
        if self._pending is not None and self.recorder is not None:
            step, self._pending = self._pending, None
            self.recorder.record(step)

    def close(self, finished: bool = False) -> None:
        """Write what is buffered, mark the run ``finished`` (or not), release an owned store.

        Called with ``finished=True`` by ``on_train_end``; call it yourself after an exception.
        Safe to call twice.
        """
        try:
            if self.recorder is not None:
                try:
                    if finished:
                        self._flush_pending()
                finally:
                    rec, self.recorder = self.recorder, None
                    rec.close(finished=finished)
        finally:
            self._pending = None
            if self._owns_store and self._store is not None:
                self._store.close()
            self._store, self._owns_store = None, False

    # ------------------------------------------------------------------ Trainer events
    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       model: Any = None, optimizer: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        if model is None:
            raise ValueError("the Trainer passed no model to TrajectoryTrainerCallback")
        self.close(finished=False)  # a recorder left open by an interrupted train()
        self._store, self._owns_store = _open_store(self.store)
        try:
            step = int(state.global_step)
            if self.run in self._store.runs():
                if not self.resume:
                    raise StoreError(
                        f"run {self.run!r} already exists in store {str(self._store.path)!r}; "
                        "choose another run name, delete the run, or pass resume=True to "
                        "TrajectoryTrainerCallback when resuming from a Trainer checkpoint"
                    )
                steps = self._store.steps(self.run)
                kept = int(np.count_nonzero(steps <= step))
                self._store.truncate(self.run, kept)
                last = int(steps[kept - 1]) if kept else None
                if step > 0 and (last is None or last < step - step % self.every):
                    warnings.warn(
                        f"run {self.run!r} holds steps up to {last} but training resumes after "
                        f"step {step}: the steps in between were not written before the "
                        "interruption and stay missing (use a smaller chunk_steps, or analyse "
                        "the steps before the gap)", RuntimeWarning, stacklevel=2)
            self.recorder = Recorder(self._store, self.run, model, self.params, every=self.every,
                                     chunk_steps=self.chunk_steps,
                                     metadata=self._describe(args, model),
                                     # accelerate wraps the optimizer: describe the real one
                                     optimizer=getattr(optimizer, "optimizer", optimizer),
                                     resume=self.resume,
                                     branch=self._branch_step(optimizer))
            if self.record_initial and step == 0 and self.recorder.last_step is None:
                self.recorder.record(0)
        except BaseException:
            self.close(finished=False)
            raise

    def on_step_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                      **kwargs: Any) -> None:
        self._flush_pending()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> None:
        if self.recorder is None:
            return
        self._flush_pending()
        step = int(state.global_step)
        if step % self.every == 0:
            self._pending = step  # recorded at on_log (with the loss) or before the next step

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if self.recorder is None or self._pending is None or self._pending != state.global_step:
            return
        logged = {k: (logs or {}).get(k) for k in self.log_keys}
        scalars = {k: float(v) for k, v in logged.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)}
        step, self._pending = self._pending, None
        self.recorder.record(step, **scalars)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: Any) -> None:
        if self.recorder is not None:
            self.close(finished=True)

    def __repr__(self) -> str:
        return (f"TrajectoryTrainerCallback(run={self.run!r}, params={self.params!r}, "
                f"every={self.every})")
