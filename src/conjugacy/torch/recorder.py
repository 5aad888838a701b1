"""Record the parameters of a PyTorch module into a :class:`~conjugacy.store.TrajectoryStore`.

When to record: ``record(step)`` snapshots the parameters *as they are when it is called*. Call it
after ``optimizer.step()`` with the number of optimizer steps taken so far, and once with
``step=0`` before training to record the initial state. Then record ``t`` holds the weights after
``t`` updates.

Memory: the recorder holds one chunk, ``chunk_steps x (selected parameters)`` values, and writes it
to the store when full (and on :meth:`Recorder.flush` / :meth:`Recorder.close`). The store keeps
each parameter's dtype (float64 stays float64; bfloat16, which NumPy lacks, is stored as float32
with ``source_dtype`` in the metadata).

Resuming: give ``optimizer=`` and ``checkpoint=PATH`` and the recorder writes a checkpoint
(model and optimizer ``state_dict``, torch RNG state, last recorded step, ``n_complete``) atomically
(temp file + ``os.replace``) right after each automatic flush, so checkpoint and store agree, and
once more when the run is closed as finished if the optimizer has not stepped since the last record
(the model is then in the recorded state), so a finished run can later be extended from its last
step with nothing repeated. With
``resume=True`` an existing run is continued: the checkpoint is loaded into the model and optimizer
(``torch.load(weights_only=True)``), the run is cut back to the checkpoint's ``n_complete``, and
:attr:`Recorder.resumed_from` gives the step to continue after. A failed checkpoint write (full
disk, quota, I/O error) raises :class:`~conjugacy.store.StoreError` naming the path and errno and
leaves the previous checkpoint intact; the temporary file of a writer killed mid-checkpoint is
removed on resume (:func:`remove_dead_temporaries`, which never touches a live writer's).
"""

from __future__ import annotations

import contextlib
import copy
import errno
import functools
import glob
import hashlib
import io
import os
import platform
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from torch import nn

from .._checks import check_int
from ..store import StoreError, TrajectoryStore, _package_version, select_names
from ..store._lock import _same_file


class ResumeWithoutCheckpointWarning(UserWarning):
    """A run is resumed without a checkpoint: the caller must have restored the model itself."""

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: temporaries are not locked nor cleaned
    fcntl = None  # type: ignore[assignment]

__all__ = ["BranchStep", "Recorder", "StackedRecorder", "describe_optimizer",
           "describe_scheduler", "load_checkpoint",
           "remove_dead_temporaries", "save_checkpoint", "select_parameters"]

_CKPT_FORMAT = 1


def select_parameters(model: nn.Module, params: str | Iterable[str] | None = "*") -> list[str]:
    """Names of ``model``'s parameters matching ``params`` (names or fnmatch globs).

    Parameters
    ----------
    model : nn.Module
    params : str, iterable of str or None, default "*"
        Names or fnmatch globs (:func:`conjugacy.store.select_names`); ``"*"`` or None: all.

    Returns
    -------
    list of str
        The names in ``model.named_parameters()`` order.

    Raises
    ------
    StoreError
        (a ValueError) naming the available parameters if a pattern matches nothing, or if the
        model has no parameters.
    TypeError
        If ``model`` is not a ``torch.nn.Module``.

    Examples
    --------
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    >>> select_parameters(model, "*.weight")
    ['0.weight', '2.weight']
    >>> select_parameters(model, "2.*")
    ['2.weight', '2.bias']
    """
    _check_module(model)
    names = [n for n, _ in model.named_parameters()]
    if not names:
        raise StoreError(f"model {type(model).__name__} has no parameters to record")
    return select_names(names, params)


def _check_module(model: Any, name: str = "model") -> None:
    """TypeError naming ``name`` unless ``model`` is a ``torch.nn.Module``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")


def describe_optimizer(optimizer: torch.optim.Optimizer | None) -> dict[str, Any] | None:
    """JSON-safe description of an optimizer: class name and hyper-parameters of each group.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer or None

    Returns
    -------
    dict or None
        ``{"class": name, "param_groups": [...]}``: per group its ``n_params`` and every
        hyper-parameter that is a number, string, bool, None, a list of numbers or a one-element
        tensor (others are left out); None for None.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> opt = torch.optim.SGD(nn.Linear(3, 1).parameters(), lr=0.1, momentum=0.9)
    >>> d = describe_optimizer(opt)
    >>> d["class"], d["param_groups"][0]["n_params"], d["param_groups"][0]["lr"]
    ('SGD', 2, 0.1)
    """
    if optimizer is None:
        return None
    groups = [{"n_params": len(g["params"]), **_json_items(g, ("params",))}
              for g in optimizer.param_groups]
    return {"class": type(optimizer).__name__, "param_groups": groups}


def _json_items(d: Mapping[str, Any], skip: Iterable[str] = ()) -> dict[str, Any]:
    """The entries of ``d`` (not named in ``skip``) that are JSON-safe: a number, string, bool,
    None, a list of numbers, a one-element tensor (its value), or a mapping with int keys (a
    ``Counter``: its elements, sorted); others are left out."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if k in skip:
            continue
        if isinstance(v, bool | int | float | str) or v is None:
            out[k] = v
        elif isinstance(v, tuple | list) and all(isinstance(x, int | float) for x in v):
            out[k] = list(v)
        elif isinstance(v, torch.Tensor) and v.numel() == 1:
            out[k] = v.item()
        elif isinstance(v, Mapping) and all(isinstance(x, int) for x in v):  # Counter
            out[k] = sorted(v.elements()) if hasattr(v, "elements") else sorted(v)
    return out


def describe_scheduler(scheduler: Any, optimizer: Any = None) -> dict[str, Any] | None:
    """JSON-safe description of a learning-rate scheduler: its class and scalar settings.

    An optimizer's recorded ``lr`` is the rate when recording starts (a warm-up's first, small
    one), so a schedule is invisible without this (issue 25: a warm-up run showed as lr=0.001
    beside initial_lr 0.05).

    Parameters
    ----------
    scheduler : torch.optim.lr_scheduler.LRScheduler, ReduceLROnPlateau or None
    optimizer : torch.optim.Optimizer, optional
        The optimizer being recorded: a scheduler that drives another optimizer is refused.

    Returns
    -------
    dict or None
        ``{"class": name, ...}`` with every entry of ``scheduler.state_dict()`` that is a
        number, string, bool, None or a list of numbers (e.g. ``base_lrs``, ``step_size``,
        ``gamma``, ``T_max``), except its progress (``last_epoch``, keys starting with ``_``);
        ``MultiStepLR``'s milestones as a sorted list; ``SequentialLR``'s ``milestones`` and
        ``ChainedScheduler``'s / ``SequentialLR``'s inner ``schedulers``, each described the
        same way; functions (``LambdaLR``'s lambdas) by their qualified names
        (``functools.partial`` as ``partial(name)``); None for None.

    Raises
    ------
    TypeError
        If ``scheduler`` is not a learning-rate scheduler.
    ValueError
        If ``optimizer`` is given and the scheduler drives another one.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> opt = torch.optim.SGD(nn.Linear(3, 1).parameters(), lr=0.1)
    >>> describe_scheduler(torch.optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.5))
    {'class': 'StepLR', 'step_size': 30, 'gamma': 0.5, 'base_lrs': [0.1]}
    >>> describe_scheduler(torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[20, 10]))
    {'class': 'MultiStepLR', 'milestones': [10, 20], 'gamma': 0.1, 'base_lrs': [0.1]}
    """
    if scheduler is None:
        return None
    from torch.optim import lr_scheduler

    if not isinstance(scheduler, lr_scheduler.LRScheduler | lr_scheduler.ReduceLROnPlateau):
        raise TypeError(f"scheduler must be a torch.optim.lr_scheduler scheduler (e.g. StepLR, "
                        f"LambdaLR), got {type(scheduler).__name__}")
    if optimizer is not None and getattr(scheduler, "optimizer", optimizer) is not optimizer:
        raise ValueError("scheduler drives another optimizer than optimizer=: give the "
                         "scheduler built on the optimizer being recorded")
    state = scheduler.state_dict()
    progress = [k for k in state if k.startswith("_")] + ["last_epoch", "verbose", "best",
                                                           "num_bad_epochs", "cooldown_counter"]
    out: dict[str, Any] = {"class": type(scheduler).__name__, **_json_items(state, progress)}
    if isinstance(getattr(scheduler, "_milestones", None), list):  # SequentialLR
        out["milestones"] = list(scheduler._milestones)
    inner = getattr(scheduler, "_schedulers", None)
    if isinstance(inner, list | tuple):  # SequentialLR, ChainedScheduler
        out["schedulers"] = [describe_scheduler(s) for s in inner]
    lambdas = getattr(scheduler, "lr_lambdas", None)
    if isinstance(lambdas, list) and all(callable(f) for f in lambdas):
        out["lr_lambdas"] = [_function_name(f) for f in lambdas]
    return out


def _function_name(f: Any) -> str:
    if isinstance(f, functools.partial):
        return f"partial({_function_name(f.func)})"
    return getattr(f, "__qualname__", type(f).__name__)


#: A checkpoint file starts with this magic and the SHA-256 of the rest (torch's zip): a flipped
#: bit anywhere is refused on load (torch's own reader resumed 3 of 8 single-bit flips silently).
_CKPT_MAGIC = b"CONJUGACY-CHECKPOINT-SHA256\n"
_CKPT_HEADER = len(_CKPT_MAGIC) + 32


class _Sink:
    """File-like wrapper for ``torch.save`` that keeps the ``OSError`` of a failed write and the
    SHA-256 of the bytes written.

    torch reports a failed write of its zip writer as an opaque ``RuntimeError``; the kept error
    gives the errno (ENOSPC, EDQUOT, EIO, ...).
    """

    def __init__(self, f: Any) -> None:
        self._f = f
        self.error: OSError | None = None
        self.sha256 = hashlib.sha256()

    def write(self, data: Any) -> int:
        self.sha256.update(data)
        try:
            return _write(self._f, data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self._f.flush()


def _write(f: Any, data: Any) -> int:
    """One write of checkpoint bytes (a seam for tests that simulate a full disk)."""
    return f.write(data)


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_dead_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files of checkpoint writes to ``path`` whose writer is dead.

    :func:`save_checkpoint` holds an exclusive ``flock`` on its temporary file while writing it;
    the kernel drops it when the writer dies (even by SIGKILL). A temporary whose lock can be
    taken therefore belongs to no live writer and is removed; one that is locked is left alone.

    Parameters
    ----------
    path : str or path-like
        The checkpoint file; its temporaries are ``.{name}.{pid}.tmp`` beside it.

    Returns
    -------
    list of Path
        The files removed (empty where ``flock`` is unavailable or the folder does not exist).

    Examples
    --------
    The temporary of a writer that died (nobody holds its lock) is removed; the checkpoint stays:

    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = Path(tmp, "seed0.pt").write_bytes(b"kept")
    ...     _ = Path(tmp, ".seed0.pt.12345.tmp").write_bytes(b"half-written")
    ...     removed = remove_dead_temporaries(Path(tmp, "seed0.pt"))
    ...     [p.name for p in removed], sorted(p.name for p in Path(tmp).iterdir())
    (['.seed0.pt.12345.tmp'], ['seed0.pt'])
    """
    path = Path(path)
    removed: list[Path] = []
    if fcntl is None or not path.parent.is_dir():  # without flock, liveness is unknowable
        return removed
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live writer's (or flock unsupported): leave it
            if _same_file(fd, tmp):  # still the file locked, not one put there since
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
        finally:
            os.close(fd)
    return removed


def _checkpoint_error(path: Path, what: str, exc: OSError) -> StoreError:
    code = exc.errno
    name = errno.errorcode.get(code, str(code)) if code is not None else "no errno"
    hint = (" (the disk or quota is full: free space and resume; the previous checkpoint is "
            "intact)" if code in (errno.ENOSPC, errno.EDQUOT) else
            " (the previous checkpoint is intact)")
    err = StoreError(
        f"cannot {what} checkpoint {str(path)!r}: {exc.strerror or exc} [errno {code}, {name}]"
        + hint
    )
    err.errno, err.filename = code, str(path)
    return err


def save_checkpoint(path: str | os.PathLike[str], state: Mapping[str, Any]) -> Path:
    """``torch.save(state)`` atomically: temp file in the same directory, fsync, ``os.replace``.

    The file is :data:`_CKPT_MAGIC`, the SHA-256 of the rest, then torch's zip:
    :func:`load_checkpoint` refuses a checkpoint whose bytes changed.

    The temporary file (``.NAME.PID.tmp``) is ``flock``-ed while it is written (it is created
    and locked under another name first, then renamed), so
    :func:`remove_dead_temporaries` (called here first, and on resume) removes only temporaries
    of writers that died, never one being written.

    Parameters
    ----------
    path : str or path-like
        The checkpoint file (its folder is created).
    state : mapping
        What ``torch.save`` writes (state dicts, step counts, RNG states, ...).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    StoreError
        On any OS error (full disk, quota, permissions, I/O), naming the path and the errno
        (also in ``.errno``); the previous checkpoint, if any, is left intact and the temporary
        file is removed.

    Examples
    --------
    >>> import tempfile
    >>> from torch import nn
    >>> model = nn.Linear(3, 1)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save_checkpoint(f"{tmp}/ckpt/seed0.pt", {"step": 20, "model": model.state_dict()})
    ...     state = load_checkpoint(path)
    >>> path.name, state["step"], sorted(state["model"])
    ('seed0.pt', 20, ['bias', 'weight'])
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _checkpoint_error(path, "create the directory of", exc) from exc
    remove_dead_temporaries(path)
    tmp = _temp_name(path)
    # Created under a name the cleanup ignores, locked, then renamed (the lock stays with the
    # file): a temporary under the .tmp name is always locked while its writer lives.
    init = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.init")
    try:
        fd = os.open(init, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise _checkpoint_error(path, "write", exc) from exc
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # marks the temporary as a live writer's
        os.replace(init, tmp)
    except OSError as exc:
        _discard(init, fd)
        raise _checkpoint_error(path, "write", exc) from exc
    try:
        with os.fdopen(os.dup(fd), "wb") as f:
            f.write(_CKPT_MAGIC + bytes(32))  # the digest goes here once the payload is written
            sink = _Sink(f)
            try:
                torch.save(dict(state), sink)
            except Exception as exc:
                if sink.error is not None:
                    raise sink.error from exc
                raise
            f.seek(len(_CKPT_MAGIC))
            f.write(sink.sha256.digest())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp, fd)
        raise _checkpoint_error(path, "write", exc) from exc
    except BaseException:
        _discard(tmp, fd)
        raise
    os.close(fd)
    return path


def _discard(tmp: Path, fd: int) -> None:
    with contextlib.suppress(OSError):
        if _same_file(fd, tmp):  # this writer's temporary, not another's
            tmp.unlink()
    os.close(fd)


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = None) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``, after
    checking its SHA-256 (a file without one is refused).

    Also removes temporaries of checkpoint writes to ``path`` whose writer died
    (:func:`remove_dead_temporaries`).

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save_checkpoint`.
    map_location : optional
        Passed to ``torch.load`` (e.g. ``"cpu"``).

    Returns
    -------
    dict
        The ``state`` given to :func:`save_checkpoint`.

    Raises
    ------
    StoreError
        If the file is damaged (its checksum differs: a flipped bit, a truncation) or torch cannot
        read it; the message names the file and the fix (delete it: the run is then recorded
        again from its start).
    FileNotFoundError
        If there is no checkpoint.

    Examples
    --------
    A checkpoint with one changed byte is refused:

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save_checkpoint(f"{tmp}/seed0.pt", {"step": 20})
    ...     print(load_checkpoint(path))
    ...     data = bytearray(path.read_bytes())
    ...     data[-1] ^= 1
    ...     _ = path.write_bytes(bytes(data))
    ...     try:
    ...         load_checkpoint(path)
    ...     except ValueError as e:  # a StoreError
    ...         print(str(e)[-60:])
    {'step': 20}
    ...Delete it to record the run again from its start
    """
    remove_dead_temporaries(path)
    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(_CKPT_MAGIC):
        raise StoreError(
            f"checkpoint {str(path)!r} is damaged: it does not start with the checksum header "
            "of conjugacy; refused. Delete it to record the run again from its start")
    digest, payload = data[len(_CKPT_MAGIC):_CKPT_HEADER], data[_CKPT_HEADER:]
    del data
    if hashlib.sha256(payload).digest() != digest:
        raise StoreError(
            f"checkpoint {str(path)!r} is damaged: its SHA-256 does not match its content "
            "(a changed or truncated file); refused rather than resumed into another "
            "trajectory. Delete it to record the run again from its start")
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as exc:
        raise StoreError(f"cannot load checkpoint {str(path)!r}: {exc}") from exc


def _host(t: torch.Tensor) -> np.ndarray:
    """A parameter's values on the host as NumPy (bfloat16 as float32)."""
    t = t.detach()
    return (t.float() if t.dtype == torch.bfloat16 else t).cpu().numpy()


def _np_dtype(t: torch.Tensor) -> np.dtype:
    """NumPy dtype a parameter is stored in (bfloat16, which NumPy lacks, as float32)."""
    return _host(torch.empty(0, dtype=t.dtype)).dtype


def _open_store(store: Any) -> tuple[TrajectoryStore, bool]:
    """The store to record into and whether the recorder owns it: an open store as it is (left
    open), a path opened with mode ``"a"`` (closed with the recorder)."""
    if isinstance(store, TrajectoryStore):
        return store, False
    if isinstance(store, str | os.PathLike):
        return TrajectoryStore.open(store, "a"), True
    raise TypeError(f"store must be a TrajectoryStore or a path, got {type(store).__name__}")


def _check_step(step: Any, last_step: int | None, of: str = "") -> int:
    """``step`` as an int: a non-negative integer after ``last_step`` (``of`` ends the message)."""
    if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 0:
        raise ValueError(f"step must be a non-negative integer, got {step!r}")
    step = int(step)
    if last_step is not None and step <= last_step:
        raise ValueError(f"step must increase: got {step} after step {last_step}{of}")
    return step


def _columns(records: list[Mapping[str, Any]], missing: Any = np.nan) -> dict[str, np.ndarray]:
    """Each scalar named in any record: its values over ``records`` (``missing`` where one
    lacks it), in name order."""
    return {s: np.array([d.get(s, missing) for d in records])
            for s in sorted({s for d in records for s in d})}


def _numbers(scalars: Mapping[str, Any]) -> dict[str, float]:
    """The scalars of one record as floats (0-d tensors accepted, detached first so a value that
    requires grad converts without torch's warning); TypeError naming a non-number."""
    vals = {}
    for k, v in scalars.items():
        try:
            vals[k] = float(v.detach() if isinstance(v, torch.Tensor) else v)
        except (TypeError, ValueError):
            raise TypeError(f"scalar {k}={v!r} is not a number") from None
    return vals


class _ClosesRun:
    """A recorder's ``with`` block: the run is closed as finished, or, when the block raises, as
    unfinished keeping what was recorded, never masking the block's exception."""

    _closed: bool
    close: Callable[..., None]
    _release: Callable[[], None]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # keep what was recorded; never mask the original exception
            self.close(finished=False)
        except Exception:
            self._closed = True
            self._release()


class BranchStep:
    """The branch of a recorded state: training continued from it on independent batches, undone.

    Called at a recorded step, it saves the model's parameters, buffers and gradients, the
    optimizer's state (momentum buffers, Adam moments and step counts: a deep copy of its
    ``state_dict``) and the global torch RNG states (CPU and CUDA: dropout in the branch's
    forward pass draws from them), takes ``n_steps`` optimizer steps on batches drawn by
    ``sample`` from the branch's *own* generator, copies the parameters reached, and restores
    everything saved. The training trajectory and its random stream are therefore bit-identical
    with and without the branch (tested), and the branch state is a second, independent draw of
    the next recorded state: what the two-branch residuals of :mod:`conjugacy.residuals` need.

    Parameters
    ----------
    loss : callable ``(model, batch) -> scalar tensor``
        The training loss of one minibatch (the same as the training loop's).
    sample : callable ``(generator: torch.Generator) -> batch``
        Draws one minibatch using only ``generator`` for its randomness (e.g. indices
        ``torch.randint(n, (batch_size,), generator=generator)``); independent of the training
        batches.
    optimizer : torch.optim.Optimizer
        The training optimizer (stepped in the branch, then restored).
    seed : int, default 0
        Seed of the branch's generator (a CPU ``torch.Generator``).
    n_steps : int or None, default None
        Optimizer steps per branch: the recording stride, so that the branch is a draw of the
        *next record*. None: the recorder's ``every``.
    after_step : callable ``(model) -> None``, optional
        Applied after each branch step under ``torch.no_grad()``, as the training loop does
        (e.g. a norm projection).

    Cost: ``n_steps`` extra forward/backward passes and optimizer steps per recorded step, plus
    copies of the model and optimizer state (``benchmarks/bench_recording.py --branch``).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Linear(4, 1)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    >>> data = torch.randn(100, 4), torch.randn(100, 1)
    >>> def loss(m, b):
    ...     return ((m(b[0]) - b[1]) ** 2).mean()
    >>> def sample(g):
    ...     i = torch.randint(100, (8,), generator=g)
    ...     return data[0][i], data[1][i]
    >>> branch = BranchStep(loss, sample, opt, seed=1, n_steps=1)
    >>> before = model.weight.detach().clone()
    >>> nxt = branch(model, ["weight"])
    >>> bool(torch.equal(model.weight, before)), bool(torch.equal(nxt["weight"], before))
    (True, False)
    """

    def __init__(
        self,
        loss: Callable[[nn.Module, Any], torch.Tensor],
        sample: Callable[[torch.Generator], Any],
        optimizer: torch.optim.Optimizer,
        *,
        seed: int = 0,
        n_steps: int | None = None,
        after_step: Callable[[nn.Module], None] | None = None,
    ) -> None:
        if not callable(loss) or not callable(sample):
            raise TypeError("loss and sample must be callables: loss(model, batch) -> tensor, "
                            "sample(generator) -> batch")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got "
                            f"{type(optimizer).__name__}")
        if n_steps is not None and (isinstance(n_steps, bool) or not isinstance(n_steps, int)
                                    or n_steps < 1):
            raise ValueError(f"n_steps must be a positive integer or None, got {n_steps!r}")
        self.loss, self.sample, self.optimizer = loss, sample, optimizer
        self.n_steps, self.after_step = n_steps, after_step
        self.generator = torch.Generator().manual_seed(int(seed))

    def __call__(self, model: nn.Module, names: Iterable[str],
                 n_steps: int | None = None) -> dict[str, torch.Tensor]:
        """The parameters ``names`` after the branch's steps from the current state (copies);
        the model, optimizer and global RNG are left exactly as they were."""
        steps = n_steps if self.n_steps is None else self.n_steps
        params = dict(model.named_parameters())
        saved = _TrainingState(model, self.optimizer)
        try:
            for _ in range(steps or 1):
                batch = self.sample(self.generator)
                self.optimizer.zero_grad(set_to_none=True)
                self.loss(model, batch).backward()
                self.optimizer.step()
                if self.after_step is not None:
                    with torch.no_grad():
                        self.after_step(model)
            return {n: params[n].detach().clone() for n in names}
        finally:
            saved.restore()


class _TrainingState:
    """Everything a branch step changes: parameters, buffers, gradients, optimizer state and the
    global torch RNG states, saved at construction and put back by :meth:`restore`."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.model, self.optimizer = model, optimizer
        self.params = {n: p.detach().clone() for n, p in model.named_parameters()}
        self.grads = {n: None if p.grad is None else p.grad.detach().clone()
                      for n, p in model.named_parameters()}
        self.buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
        self.opt_state = copy.deepcopy(optimizer.state_dict())
        self.rng = torch.get_rng_state()
        self.cuda_rng = (torch.cuda.get_rng_state_all()
                         if torch.cuda.is_available() and torch.cuda.is_initialized() else None)

    def restore(self) -> None:
        with torch.no_grad():
            for n, p in self.model.named_parameters():
                p.copy_(self.params[n])
                p.grad = self.grads[n]
            for n, b in self.model.named_buffers():
                b.copy_(self.buffers[n])
        self.optimizer.load_state_dict(self.opt_state)
        torch.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)


class Recorder(_ClosesRun):
    """Record selected parameters of ``model`` at chosen steps into a trajectory store.

    Parameters
    ----------
    store : TrajectoryStore, str or path-like
        An open writable store (left open by :meth:`close`), or a path, opened with mode ``"a"``
        and closed by :meth:`close`.
    run : str
        Run name in the store.
    model : nn.Module
        The module whose parameters are recorded (read at each :meth:`record`).
    params : str or list of str
        Parameter names or fnmatch globs (``"fc2.weight"``, ``"blocks.0.mlp.*"``); ``"*"`` = all.
        Features follow ``model.named_parameters()`` order.
    every : int
        Record only steps that are multiples of ``every``; other calls to :meth:`record` return
        False and do nothing.
    chunk_steps : int
        Records buffered in memory before a write; also the Zarr chunk length.
    metadata : mapping, optional
        JSON-serialisable run description, merged with what the recorder fills in (model class and
        text, optimizer, selection, package and torch versions); on resume, merged into the
        run's stored metadata.
    optimizer : torch.optim.Optimizer, optional
        Saved in checkpoints and described in the metadata.
    scheduler : torch.optim.lr_scheduler.LRScheduler, optional
        The learning-rate schedule, described in the metadata (``"scheduler"``:
        :func:`describe_scheduler`, its class and scalar settings; the optimizer's ``lr`` is
        only the rate when recording starts). Not saved in checkpoints.
    checkpoint : path, optional
        Checkpoint file written atomically after each automatic flush and, with ``optimizer``,
        when the run is closed as finished right after a record (see the module docstring).
    resume : bool
        Continue an existing run instead of refusing it. With a checkpoint file: load it into
        ``model``/``optimizer``, cut the run back to the checkpoint. With ``checkpoint`` given but
        no file yet: restart the run from scratch. Without ``checkpoint``: append after the last
        complete step (the caller restores the model).
    branch : BranchStep, optional
        Also record, at every recorded step, the branch: the selected parameters after
        ``branch.n_steps`` (default ``every``) more optimizer steps from the recorded state on
        independently drawn batches, kept in the store as ``next/<name>``
        (``TrajectoryStore.create_run(next_states=True)``; read with
        ``read(..., branch="next")``). The training trajectory is unchanged, bit for bit.

    Raises
    ------
    StoreError
        If the run exists and ``resume`` is False, if a selection matches nothing, or if the store
        cannot be opened or written.

    Examples
    --------
    Record the last layer every 5 steps of 20 SGD steps, with the loss:

    >>> import tempfile
    >>> import torch
    >>> from torch import nn
    >>> from conjugacy.store import TrajectoryStore
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> x, y = torch.randn(32, 3), torch.randn(32, 1)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with Recorder(f"{tmp}/runs.zarr", "seed0", model, params="2.*", every=5) as rec:
    ...         for step in range(21):
    ...             loss = nn.functional.mse_loss(model(x), y)
    ...             _ = rec.record(step, loss=loss.item())  # the state after `step` steps
    ...             opt.zero_grad()
    ...             loss.backward()
    ...             opt.step()
    ...     with TrajectoryStore.open(f"{tmp}/runs.zarr", "r") as store:
    ...         print(store.parameters("seed0"), store.steps("seed0"), store.read().shape)
    ['2.weight', '2.bias'] [ 0  5 10 15 20] (1, 5, 5)
    """

    def __init__(
        self,
        store: TrajectoryStore | str | os.PathLike[str],
        run: str,
        model: nn.Module,
        params: str | Iterable[str] = "*",
        *,
        every: int = 1,
        chunk_steps: int = 64,
        metadata: Mapping[str, Any] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        resume: bool = False,
        branch: BranchStep | None = None,
        scheduler: Any = None,
    ) -> None:
        # TypeError / ValueError before the store is opened
        self._scheduler = describe_scheduler(scheduler, optimizer)
        if branch is not None and not isinstance(branch, BranchStep):
            raise TypeError(f"branch must be a BranchStep, got {type(branch).__name__}")
        self.branch = branch
        check_int(every, "every", minimum=1)
        check_int(chunk_steps, "chunk_steps", minimum=1)
        self.names = select_parameters(model, params)
        self.model = model
        self.run = run
        self.every = every
        self.chunk_steps = chunk_steps
        self.optimizer = optimizer
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self._params = dict(model.named_parameters())
        self.store, self._owns_store = _open_store(store)
        self._closed = False
        # the close checkpoint needs the model in the recorded state: an optimizer step after the
        # last record (e.g. steps not a multiple of ``every``) rules it out
        self._stepped = False
        self._rng_at_record: torch.Tensor | None = None
        self._step_hook = (optimizer.register_step_post_hook(self._on_optimizer_step)
                           if optimizer is not None and self.checkpoint is not None else None)
        try:
            self._setup(params, metadata, resume)
        except BaseException:
            self._release()
            raise

    def _on_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._stepped = True

    def _release(self) -> None:
        """Remove the optimizer hook and close an owned store."""
        if self._step_hook is not None:
            self._step_hook.remove()
            self._step_hook = None
        if self._owns_store:
            self.store.close()

    def _setup(self, params: Any, metadata: Mapping[str, Any] | None, resume: bool) -> None:
        tensors = [self._params[n] for n in self.names]
        layout = {n: (tuple(t.shape), _np_dtype(t)) for n, t in zip(self.names, tensors)}
        bf16 = [n for n, t in zip(self.names, tensors) if t.dtype == torch.bfloat16]
        self.resumed_from: int | None = None
        self.last_step: int | None = None
        self._n = 0  # records in the store: kept here, so recording reads no store metadata
        if self.run in self.store.runs():
            if not resume:
                raise StoreError(
                    f"run {self.run!r} already exists in store {str(self.store.path)!r}; to "
                    "continue it pass resume=True with checkpoint=PATH (the model and optimizer "
                    "are restored from it), or choose another run name or store"
                )
            n = self._check_resumable(layout)
            if metadata:  # the caller's description of the continued run (e.g. a longer n_steps)
                self.store.update_metadata(self.run, metadata)
            if self.checkpoint is not None:
                remove_dead_temporaries(self.checkpoint)  # of a writer killed mid-checkpoint
                if self.checkpoint.exists():
                    n = self._restore(self.checkpoint)
                else:
                    n = 0  # flushed before any checkpoint existed: the model is at its start
                self.store.truncate(self.run, n)
            self._n = n
            if n:
                self.last_step = int(self.store.steps(self.run)[n - 1])
                self.resumed_from = self.last_step
                if self.checkpoint is None:
                    warnings.warn(
                        f"resuming run {self.run!r} after step {self.last_step} without a "
                        "checkpoint: the model and optimizer must already be at that step (restore "
                        "them yourself), or the recorded trajectory joins two different ones; "
                        "pass checkpoint=PATH to have them restored",
                        ResumeWithoutCheckpointWarning,
                        stacklevel=4,
                    )
        else:
            meta = {
                "model_class": type(self.model).__name__,
                "model": str(self.model)[:20000],
                "n_model_parameters": int(sum(p.numel() for p in self.model.parameters())),
                "selection": params if isinstance(params, str) else list(params),
                "every": self.every,
                "optimizer": describe_optimizer(self.optimizer),
                **({"scheduler": self._scheduler} if self._scheduler else {}),
                "package_version": _package_version(),
                "torch_version": torch.__version__,
                "python_version": platform.python_version(),
            }
            if bf16:
                meta["source_dtype"] = {n: "bfloat16" for n in bf16}
            meta.update(dict(metadata or {}))
            if self.branch is not None:
                meta["branch"] = {"n_steps": self.branch.n_steps or self.every,
                                  "what": "parameters after n_steps more optimizer steps from "
                                          "each record on independently drawn batches"}
            self.store.create_run(self.run, layout, chunk_steps=self.chunk_steps, metadata=meta,
                                  next_states=self.branch is not None)
        self._buf = {n: np.empty((self.chunk_steps, *s), dtype=d) for n, (s, d) in layout.items()}
        self._next = ({n: np.empty_like(b) for n, b in self._buf.items()}
                      if self.branch is not None else None)
        self._buf_steps: list[int] = []
        self._buf_scalars: list[dict[str, float]] = []

    def _check_resumable(self, layout: dict[str, Any]) -> int:
        """The run's ``n_complete``, after checking that it records what this recorder would
        (the parameters' layout, a branch or none)."""
        info = self.store.run_info(self.run)
        have = {n: (tuple(v["shape"]), np.dtype(v["dtype"])) for n, v in
                info["parameters"].items()}
        if have != layout:
            raise StoreError(
                f"cannot resume run {self.run!r}: it records {have}, the model gives {layout}"
            )
        if bool(info["branches"]) != (self.branch is not None):
            raise StoreError(
                f"cannot resume run {self.run!r}: it was recorded "
                + ("with" if info["branches"] else "without") + " a branch; pass branch= "
                "the same way as when it was started"
            )
        return int(info["n_complete"])

    def _restore(self, path: Path) -> int:
        dev = next(iter(self._params.values())).device
        ck = load_checkpoint(path, map_location=dev)
        if ck.get("format") != _CKPT_FORMAT or ck.get("run") != self.run:
            raise StoreError(
                f"checkpoint {str(path)!r} is not a format-{_CKPT_FORMAT} checkpoint of run "
                f"{self.run!r}"
            )
        self.model.load_state_dict(ck["model"])
        if self.optimizer is not None:
            if ck.get("optimizer") is None:
                raise StoreError(f"checkpoint {str(path)!r} holds no optimizer state")
            self.optimizer.load_state_dict(ck["optimizer"])
        if "torch_rng_state" in ck:
            torch.set_rng_state(ck["torch_rng_state"].cpu())
        if self.branch is not None and "branch_rng_state" in ck:
            self.branch.generator.set_state(ck["branch_rng_state"].cpu())
        n = int(ck["n_complete"])
        if n > self.store.n_complete(self.run):
            raise StoreError(
                f"checkpoint {str(path)!r} is ahead of the store ({n} > "
                f"{self.store.n_complete(self.run)} complete steps of run {self.run!r})"
            )
        return n

    # ------------------------------------------------------------------ recording
    @property
    def n_complete(self) -> int:
        """Records written to the store (excludes the unflushed buffer); counted by the recorder,
        which is the run's only writer, so asking costs no store read."""
        return self._n

    @property
    def n_buffered(self) -> int:
        """Records waiting in memory."""
        return len(self._buf_steps)

    def record(self, step: int, **scalars: float) -> bool:
        """Snapshot the selected parameters as training step ``step``.

        Parameters
        ----------
        step : int
            Optimizer steps taken so far (0 = initial state); strictly increasing across calls.
        **scalars : float
            Scalar series to store beside the weights (``loss=...``, ``accuracy=...``); 0-d
            tensors are accepted.

        Returns
        -------
        bool
            Whether the step was recorded (False when ``step % every != 0``).
        """
        if self._closed:
            raise StoreError(f"recorder of run {self.run!r} is closed")
        step = _check_step(step, self.last_step, f" of run {self.run!r}")
        if step % self.every:
            return False
        vals = _numbers(scalars)
        i = len(self._buf_steps)
        with torch.no_grad():
            for n in self.names:
                self._buf[n][i] = _host(self._params[n])
        if self._next is not None:
            assert self.branch is not None
            for n, t in self.branch(self.model, self.names, self.every).items():
                self._next[n][i] = _host(t)
        self._buf_steps.append(step)
        self._buf_scalars.append(vals)
        self.last_step = step
        if self.checkpoint is not None:  # the state a checkpoint of this record holds
            self._stepped = False  # after the branch, whose own optimizer steps are undone
            self._rng_at_record = torch.get_rng_state()
        if len(self._buf_steps) == self.chunk_steps:
            self.flush()
        return True

    def flush(self, checkpoint: bool = True) -> int:
        """Write buffered records to the store; return ``n_complete``.

        With ``checkpoint=True`` and a checkpoint path, then save the checkpoint: call it only right
        after :meth:`record`, when the model is in the recorded state.
        """
        k = len(self._buf_steps)
        if k:
            n = self.store.append(
                self.run,
                np.array(self._buf_steps, dtype=np.int64),
                {name: b[:k] for name, b in self._buf.items()},
                _columns(self._buf_scalars),
                None if self._next is None else {name: b[:k] for name, b in self._next.items()},
            )
            self._n = n
            self._buf_steps.clear()
            self._buf_scalars.clear()
        else:
            n = self._n
        if checkpoint and self.checkpoint is not None and k:
            state = {
                "format": _CKPT_FORMAT,
                "run": self.run,
                "step": self.last_step,
                "n_complete": n,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
                "torch_rng_state": (self._rng_at_record if self._rng_at_record is not None
                                    else torch.get_rng_state()),
            }
            if self.branch is not None:
                state["branch_rng_state"] = self.branch.generator.get_state()
            save_checkpoint(self.checkpoint, state)
        return n

    def close(self, finished: bool = True) -> None:
        """Flush the buffer, mark the run ``finished``, release an owned store.

        Closed as finished with ``checkpoint`` and ``optimizer`` given and no optimizer step
        since the last record, the flush also writes the checkpoint (model, optimizer, the RNG
        state of the last record), so that extending the run later repeats no step; otherwise
        the flush writes none and the last checkpoint stays.
        """
        if self._closed:
            return
        try:
            self.flush(checkpoint=finished and self._step_hook is not None and not self._stepped)
            self.store.set_finished(self.run, finished)
        finally:
            self._closed = True
            self._release()

    def __repr__(self) -> str:
        return (f"Recorder(run={self.run!r}, params={len(self.names)}, every={self.every}, "
                f"chunk_steps={self.chunk_steps})")


class StackedRecorder:
    """Record replicas trained as stacked tensors (the vectorised path of ``train_replicas``).

    Each record copies every selected parameter of all replicas at once (one copy of the stacked
    tensor per parameter, not one per replica), and each full chunk of all the runs is written
    with one :meth:`~conjugacy.store.TrajectoryStore.append_many` (one round trip to Zarr for all
    replicas). The runs themselves are created or resumed, and finally closed, by one
    :class:`Recorder` per replica, whose model's parameters are views of row ``i`` of the stacked
    tensors; their :attr:`Recorder.n_complete` and :attr:`Recorder.last_step` follow the writes.

    Parameters
    ----------
    recorders : list of Recorder
        One per replica, in the order of the stacked axis, on the same store, all with the same
        selection, ``chunk_steps`` and ``every``, and nothing buffered.
    stacked : mapping name -> tensor (n_replicas, *shape)
        The stacked parameters (``torch.func.stack_module_state``), read at each :meth:`record`.
    background : bool, default False
        Write chunks in a background thread while training goes on: at most one chunk in flight
        (a bounded queue of one; a second full chunk waits for the first), double-buffered.
        :meth:`wait` blocks until everything handed over is written and raises a writer's error;
        call it before a checkpoint that names ``n_complete`` and before closing the runs. What
        a kill loses is what was not yet written, as without it: the store's chunk writes stay
        atomic (``append_many``), so a killed writer never leaves a torn record.

    Raises
    ------
    ValueError
        If the recorders do not share a store, selection, chunk length and ``every``, or a stacked
        tensor is missing or has the wrong shape.

    Examples
    --------
    Three stacked ``Linear(2, 1)`` replicas recorded for 5 steps, in chunks of 4, while a stand-in
    for training adds 1 to every bias:

    >>> import tempfile
    >>> import numpy as np
    >>> import torch
    >>> from torch import nn
    >>> from conjugacy.store import TrajectoryStore
    >>> _ = torch.manual_seed(0)
    >>> models = [nn.Linear(2, 1) for _ in range(3)]
    >>> stacked, _ = torch.func.stack_module_state(models)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with TrajectoryStore.open(f"{tmp}/runs.zarr", "a") as store:
    ...         recs = [Recorder(store, f"seed{i}", m, chunk_steps=4) for i, m in enumerate(models)]
    ...         rec = StackedRecorder(recs, stacked)
    ...         for step in range(5):
    ...             _ = rec.record(step, {"loss": torch.arange(3.0)})
    ...             with torch.no_grad():
    ...                 stacked["bias"] += 1.0
    ...         rec.close()
    ...         for r in recs:
    ...             r.close()
    ...         x = store.read()  # (runs, steps, features): weight[0], weight[1], bias
    ...         print(recs[2].n_complete, store.steps("seed2"), x.shape, np.diff(x[1, :, 2]).round(4))
    5 [0 1 2 3 4] (3, 5, 3) [1. 1. 1. 1.]
    """

    def __init__(self, recorders: list[Recorder], stacked: Mapping[str, torch.Tensor],
                 background: bool = False) -> None:
        if not recorders:
            raise ValueError("recorders is empty")
        r0 = recorders[0]
        for r in recorders[1:]:
            if (r.store is not r0.store or r.names != r0.names or r.chunk_steps != r0.chunk_steps
                    or r.every != r0.every):
                raise ValueError("recorders must share store, parameters, chunk_steps and every")
        if any(r.n_buffered for r in recorders):
            raise ValueError("recorders must have nothing buffered")
        if any(r.branch is not None for r in recorders):
            raise ValueError("StackedRecorder records no branch: record branched replicas with "
                             "one Recorder(branch=...) each")
        self.recorders = list(recorders)
        self.store = r0.store
        self.names = r0.names
        self.every = r0.every
        self.chunk_steps = r0.chunk_steps
        self.last_step = max((r.last_step for r in recorders if r.last_step is not None),
                             default=None)
        n_rep = len(recorders)
        self._src = {}
        self._buf = {}
        for name in self.names:
            t = stacked.get(name)
            p = r0._params[name]
            if t is None or tuple(t.shape) != (n_rep, *p.shape):
                raise ValueError(
                    f"stacked[{name!r}] must have shape {(n_rep, *p.shape)}, got "
                    f"{None if t is None else tuple(t.shape)}"
                )
            self._src[name] = t
            self._buf[name] = np.empty((n_rep, self.chunk_steps, *p.shape), dtype=_np_dtype(p))
        self._steps: list[int] = []
        self._scalars: list[dict[str, np.ndarray]] = []
        self._writer = None
        self._pending = None  # (future, last_step, buffers in flight)
        if background:
            from concurrent.futures import ThreadPoolExecutor

            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conjugacy-writer")
            self._spare = {k: np.empty_like(b) for k, b in self._buf.items()}

    @property
    def n_buffered(self) -> int:
        """Records waiting in memory (the same for every replica)."""
        return len(self._steps)

    def record(self, step: int, scalars: Mapping[str, Any] | None = None) -> bool:
        """Snapshot all replicas as training step ``step``; return whether a chunk was written.

        Parameters
        ----------
        step : int
            Optimizer steps taken so far; strictly increasing, a multiple of ``every``.
        scalars : mapping name -> array-like (n_replicas,), optional
            One value per replica (a tensor or array of length n_replicas).
        """
        step = _check_step(step, self.last_step)
        if step % self.every:
            raise ValueError(f"step {step} is not a multiple of every={self.every}")
        n_rep = len(self.recorders)
        vals = {}
        for k, v in (scalars or {}).items():
            if isinstance(v, torch.Tensor):
                v = v.detach().to("cpu", torch.float64).numpy()
            x = np.asarray(v, dtype=np.float64)
            if x.shape != (n_rep,):
                raise ValueError(f"scalar {k!r} must have shape ({n_rep},), got {x.shape}")
            vals[k] = x
        i = len(self._steps)
        with torch.no_grad():
            for name, t in self._src.items():
                self._buf[name][:, i] = _host(t)
        self._steps.append(step)
        self._scalars.append(vals)
        self.last_step = step
        if len(self._steps) == self.chunk_steps:
            self.flush()
            return True
        return False

    def flush(self) -> bool:
        """Write the buffered records of every replica (one ``append_many``); return whether
        anything was handed over. With ``background=True`` the write happens in the writer thread
        (after the previous one has finished); :meth:`wait` for it."""
        k = len(self._steps)
        if not k:
            return False
        steps = np.array(self._steps, dtype=np.int64)
        scal = _columns(self._scalars, np.full(len(self.recorders), np.nan))  # (k, n_replicas)
        buf = self._buf
        payload = {
            r.run: (steps, {n: b[j, :k] for n, b in buf.items()},
                    {s: v[:, j] for s, v in scal.items()})
            for j, r in enumerate(self.recorders)
        }
        if self._writer is None:
            self._written(self.store.append_many(payload), self.last_step)
            self._steps.clear()  # only once written: a failed write can be retried
            self._scalars.clear()
            return True
        self._steps.clear()
        self._scalars.clear()
        self.wait()  # at most one chunk in flight; its buffers become the spare ones again
        self._buf, self._spare = self._spare, buf
        self._pending = (self._writer.submit(self.store.append_many, payload), self.last_step)
        return True

    def wait(self) -> None:
        """Block until every chunk handed to the background writer is written; re-raise the
        writer's exception, if any (nothing to wait for without ``background``)."""
        if self._pending is None:
            return
        future, last = self._pending
        self._pending = None
        self._written(future.result(), last)

    def close(self) -> None:
        """Write what is buffered, wait for it and stop the writer thread (the runs themselves are
        closed by the per-replica recorders)."""
        try:
            self.flush()
            self.wait()
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None

    def _written(self, n_complete: Mapping[str, int], last_step: int | None) -> None:
        for r in self.recorders:
            r._n = n_complete[r.run]
            r.last_step = last_step
