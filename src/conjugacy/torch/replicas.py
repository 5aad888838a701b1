"""Perturbed replicas of one initialization, trained on the same batches and recorded together.

A replica is a copy of the base model whose every parameter is ``W0 * (1 + eps * xi)``, with
``xi`` uniform in [-1, 1] or standard Gaussian, drawn from a seeded generator (multiplicative noise:
parameters that start at zero stay at zero). :func:`train_replicas` trains all replicas on the
identical batch sequence and records each as one run of a trajectory store.

Two paths give the same trajectories up to floating-point reassociation in the batched matrix
products (see "Agreement of the two paths" in :func:`train_replicas`):

* sequential: one replica after another, plain ``nn.Module`` training;
* vectorised: the replicas' parameters stacked (``torch.func.stack_module_state``), one forward
  pass for all of them (``torch.func.vmap`` of ``functional_call``), one backward pass of the sum of
  their losses (the replicas are independent, so each gets its own gradient) and one optimizer over
  the stacked tensors. This is exact only for element-wise optimizers (SGD, Adam, AdamW, Adamax,
  NAdam, RAdam, RMSprop, Adagrad, Rprop); ``vectorize="auto"`` uses it only for those, for models
  without buffers whose forward pass has no randomness, and without ``after_step``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import os
import signal
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._checks import check_choice, check_int
from ..store import StoreError, TrajectoryStore
from .recorder import (
    BranchStep,
    Recorder,
    ResumeWithoutCheckpointWarning,
    StackedRecorder,
    _check_module,
    _numbers,
    _open_store,
    describe_optimizer,
    load_checkpoint,
    save_checkpoint,
)

__all__ = ["make_replicas", "perturb_model", "train_replicas"]

_ELEMENTWISE = (
    torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.Adamax, torch.optim.NAdam,
    torch.optim.RAdam, torch.optim.RMSprop, torch.optim.Adagrad, torch.optim.Rprop,
)


def perturb_model(
    model: nn.Module, eps: float, *, noise: str = "uniform", generator: torch.Generator | None = None
) -> nn.Module:
    """Deep copy of ``model`` with every parameter multiplied by ``1 + eps * xi``.

    Parameters
    ----------
    model : nn.Module
        Base model (not modified).
    eps : float
        Relative size of the perturbation, >= 0.
    noise : {"uniform", "gaussian"}
        ``xi`` uniform in [-1, 1] or standard normal, one draw per weight.
    generator : torch.Generator, optional
        CPU generator for the draws (parameters in ``named_parameters()`` order); None uses the
        global generator.

    Returns
    -------
    nn.Module
        The perturbed copy (buffers copied unchanged).

    Raises
    ------
    TypeError
        If ``model`` is not a ``torch.nn.Module``.
    ValueError
        If ``eps`` is negative or not a number, or ``noise`` is not one of the two.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> base = nn.Linear(3, 1)
    >>> p = perturb_model(base, 0.1, generator=torch.Generator().manual_seed(0))
    >>> ratio = (p.weight / base.weight).detach()  # 1 + 0.1 * xi, xi uniform in [-1, 1]
    >>> bool(((ratio - 1).abs() <= 0.1).all()), bool((ratio != 1).all())
    (True, True)
    """
    _check_module(model)
    eps = float(eps)
    if not eps >= 0:
        raise ValueError(f"eps must be a non-negative number, got {eps!r}")
    check_choice(noise, "noise", ("uniform", "gaussian"))
    out = copy.deepcopy(model)
    with torch.no_grad():
        for p in out.parameters():
            if noise == "uniform":
                xi = torch.rand(p.shape, generator=generator, dtype=torch.float64) * 2 - 1
            else:
                xi = torch.randn(p.shape, generator=generator, dtype=torch.float64)
            factor = (1 + eps * xi).to(dtype=p.dtype, device=p.device)
            p.mul_(factor)
    return out


def make_replicas(
    base: nn.Module,
    n_replicas: int,
    *,
    eps: float = 1e-3,
    noise: str = "uniform",
    seed: int = 0,
    include_base: bool = True,
) -> list[nn.Module]:
    """``n_replicas`` perturbed copies of ``base`` (deterministic given ``seed``).

    With ``include_base`` replica 0 is an unperturbed copy of ``base`` and replicas 1.. are
    perturbed; otherwise all are perturbed. Draws come from one ``torch.Generator`` seeded with
    ``seed``, replica after replica.

    Parameters
    ----------
    base : nn.Module
        Base initialization (not modified).
    n_replicas : int
        Number of models returned, >= 1.
    eps, noise
        Passed to :func:`perturb_model` (relative size, ``"uniform"`` or ``"gaussian"``).
    seed : int
        Seed of the generator of all draws.
    include_base : bool
        Replica 0 is the unperturbed base.

    Returns
    -------
    list of nn.Module
        ``n_replicas`` deep copies.

    Raises
    ------
    ValueError
        If ``n_replicas`` is not a positive integer (and as :func:`perturb_model`).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> base = nn.Linear(3, 1)
    >>> reps = make_replicas(base, 3, eps=1e-3, seed=0)
    >>> len(reps), torch.equal(reps[0].weight, base.weight), torch.equal(reps[1].weight, base.weight)
    (3, True, False)
    >>> again = make_replicas(base, 3, eps=1e-3, seed=0)  # deterministic given the seed
    >>> torch.equal(again[2].weight, reps[2].weight)
    True
    """
    check_int(n_replicas, "n_replicas", minimum=1)
    gen = torch.Generator().manual_seed(int(seed))
    # in order: replica i takes the generator's i-th draw (the base, when included, takes none)
    return [copy.deepcopy(base) if i == 0 and include_base
            else perturb_model(base, eps, noise=noise, generator=gen) for i in range(n_replicas)]


def _batch_stream(batches: Any) -> Iterator[tuple[Any, Any]]:
    while True:
        it = batches() if callable(batches) else batches
        empty = True
        for b in it:
            empty = False
            if not isinstance(b, Sequence) or len(b) != 2:
                raise ValueError("each batch must be a pair (inputs, targets)")
            yield b[0], b[1]
        if empty:
            raise ValueError("batches produced no batch; give a non-empty sequence or callable")


def _digest(x: Any, y: Any) -> bytes:
    h = hashlib.sha256()
    for t in (x, y):
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu().contiguous()
            h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
            h.update(t.view(torch.uint8).numpy() if t.numel() else b"")  # no copy
        else:
            h.update(repr(t).encode())
    return h.digest()


def _to(t: Any, device: Any) -> Any:
    return t.to(device) if isinstance(t, torch.Tensor) else t


def _split_loss(result: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    if isinstance(result, tuple):
        if len(result) != 2 or not isinstance(result[1], dict):
            raise ValueError("loss_fn must return a scalar tensor or (loss, dict of scalars)")
        return result[0], result[1]
    return result, {}


def _can_vectorize(
    models: list[nn.Module], opt_probe: torch.optim.Optimizer, after_step: Any, x: Any
) -> str | None:
    """None if the vectorised path is exact here, else the reason it is not."""
    if len(models) < 2:
        return "a single replica"
    if list(models[0].buffers()):
        return "the model has buffers (e.g. BatchNorm statistics)"
    if not isinstance(opt_probe, _ELEMENTWISE):
        return f"optimizer {type(opt_probe).__name__} is not element-wise"
    try:
        params, buffers = torch.func.stack_module_state(models[:2])
        with torch.no_grad():
            _vmapped(models[0])(params, buffers, x)
    except Exception as exc:  # vmap cannot run this forward pass exactly
        return f"the forward pass cannot be vmapped ({type(exc).__name__}: {exc})"
    if after_step is not None:
        return "after_step is given"
    return None


def _vmapped(template: nn.Module) -> Callable[..., Any]:
    """``f(stacked_params, stacked_buffers, inputs)``: ``template``'s forward pass of every
    replica at once (``vmap`` of ``functional_call``; random draws in it are refused)."""
    meta = copy.deepcopy(template).to("meta")

    def forward(p: Any, b: Any, inp: Any) -> Any:
        return torch.func.functional_call(meta, (p, b), (inp,))

    return torch.func.vmap(forward, in_dims=(0, 0, None), randomness="error")


def train_replicas(
    base: nn.Module,
    *,
    n_replicas: int,
    eps: float,
    noise: str = "uniform",
    seed: int = 0,
    batches: Callable[[], Iterable[Any]] | Sequence[Any],
    loss_fn: Callable[[Any, Any], Any],
    make_optimizer: Callable[[Iterable[torch.Tensor]], torch.optim.Optimizer],
    n_steps: int,
    store: TrajectoryStore | str | os.PathLike[str],
    run_prefix: str = "replica",
    params: str | Sequence[str] = "*",
    every: int = 1,
    after_step: Callable[[nn.Module], None] | None = None,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    vectorize: bool | str = "auto",
    device: str | torch.device = "cpu",
    progress: bool = False,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    chunk_steps: int = 64,
    include_base: bool = True,
    metadata: dict[str, Any] | None = None,
    branch_batches: Callable[[torch.Generator], Any] | None = None,
) -> list[str]:
    """Train perturbed replicas of ``base`` on identical batches and record them into a store.

    Parameters
    ----------
    base : nn.Module
        Base initialization (not modified). Replicas come from :func:`make_replicas`.
    n_replicas, eps, noise, seed, include_base
        Passed to :func:`make_replicas`.
    batches : callable or sequence
        ``batches()`` returns a fresh iterable of ``(inputs, targets)`` in the same order on every
        call (or a sequence). Iterated again (a new epoch) when exhausted.
    loss_fn : callable
        ``loss_fn(outputs, targets)`` -> scalar tensor, or ``(loss, {name: scalar})`` whose extra
        values (e.g. batch accuracy) are recorded too.
    make_optimizer : callable
        ``make_optimizer(parameters)`` -> optimizer.
    n_steps : int
        Optimizer steps per replica.
    store : TrajectoryStore or path
        Destination (a path is opened with mode ``"a"`` and closed at the end).
    run_prefix : str
        Runs are named ``f"{run_prefix}_{i:0{w}d}"`` (zero-padded replica index).
    params, every, chunk_steps
        Passed to :class:`Recorder`.
    after_step : callable, optional
        ``after_step(model)`` after every optimizer step under ``torch.no_grad()`` (e.g. a norm
        projection). It must modify parameters in place. Disables ``vectorize="auto"``.
    evaluate : callable, optional
        ``evaluate(model)`` -> dict of floats at every recorded step (under ``torch.no_grad()``),
        stored as scalars.
    vectorize : {"auto", True, False}
        Train the replicas together with vmap (see the module docstring). True raises if the path
        is not exact here (after_step is allowed with True).
    device : str or torch.device
        Where training runs; batches are moved there.
    progress : bool
        Show a Rich progress bar.
    checkpoint_dir : path, optional
        Write checkpoints at flush points and resume from them when called again: finished runs
        are skipped, interrupted ones continue from their last checkpoint.
    metadata : dict, optional
        Extra JSON metadata for every run.
    branch_batches : callable, optional
        ``branch_batches(generator) -> (inputs, targets)``: one minibatch drawn with ``generator``
        only. Given, every recorded state also gets its *branch*: ``every`` more optimizer steps
        from it on batches drawn this way from a generator of the replica's own (seeded from
        ``seed`` and the replica index), with ``loss_fn`` and ``after_step``, then undone
        (:class:`~conjugacy.torch.recorder.BranchStep`); the store keeps it as the run's
        ``next/<name>`` (``read(..., branch="next")``) for ``koopman_spectrum(next_states=)``.
        The trajectories are bit-identical to those recorded without it. Costs ``every``
        forward/backward passes per recorded step; the replicas are trained sequentially
        (``vectorize="auto"`` does not vectorise, ``True`` is refused).

    Returns
    -------
    list of str
        Run names, replica order.

    Notes
    -----
    Record 0 is the initial state; record ``t`` the state after ``t`` optimizer steps. The ``loss``
    stored at step ``t`` is the minibatch loss computed in step ``t`` (before that update); NaN at
    step 0. Each run's metadata holds ``batch_order_sha256``, a digest of every batch consumed.

    Recording: the vectorised path records all replicas from the stacked tensors at once
    (:class:`~conjugacy.torch.recorder.StackedRecorder`: one copy per parameter per step, one
    :meth:`~conjugacy.store.TrajectoryStore.append_many` per chunk for all runs, written by a
    background thread while training continues, at most one chunk in flight); neither path
    reads store metadata while training. SIGTERM (``kill``, a scheduler's preemption) stops
    training at the next step boundary: everything recorded is written (also the records of an
    incomplete chunk), the runs are closed unfinished (a rerun with the same ``checkpoint_dir``
    resumes them) and the process exits with status 143. SIGKILL keeps the chunks written so far:
    it loses at most ``chunk_steps`` records on the sequential path and ``2 * chunk_steps - 1`` on
    the vectorised one (a chunk in flight and the buffer; measured with ``chunk_steps=8``: up to
    14 of 15); with ``checkpoint_dir`` a rerun resumes from the last checkpoint bit-exactly.

    Agreement of the two paths: the vectorised and the sequential path compute the same
    arithmetic with the matrix products batched differently, so they agree to rounding per step,
    and training amplifies rounding differences. In float64 they agree to ~1e-12 over short runs
    (tested). In float32 the difference can grow to the size of the replicas' own spread: it was
    measured at 2.7e-2 after 1,000 steps of the FCN job (784-40-10, 10 replicas, SGD lr 0.1,
    replica spread 8.3e-2, on a many-core machine with torch's default threads); on a 2-core x86
    machine (spread 5.1e-2) they were bit-identical with one torch thread in both dtypes and
    6.0e-7 apart in float32 with two threads (``benchmarks/bench_recording.py --drift``). Do
    not compare float32 replicas trained on different paths (or thread counts) as if they were
    the same run; within one path the replicas share all rounding.

    Raises
    ------
    ValueError
        If ``n_steps`` is negative or ``vectorize`` not one of its values (and as
        :func:`make_replicas`).
    StoreError
        If a run of these names is already in the store and no ``checkpoint_dir`` is given.

    Examples
    --------
    Three replicas of a linear model, 10 SGD steps on four minibatches, every 2nd state recorded:

    >>> import tempfile
    >>> import torch
    >>> from torch import nn
    >>> from conjugacy.store import TrajectoryStore
    >>> _ = torch.manual_seed(0)
    >>> x, y = torch.randn(64, 3), torch.randn(64, 1)
    >>> batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     runs = train_replicas(
    ...         nn.Linear(3, 1), n_replicas=3, eps=1e-3, batches=batches,
    ...         loss_fn=nn.functional.mse_loss, make_optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
    ...         n_steps=10, every=2, store=f"{tmp}/runs.zarr")
    ...     with TrajectoryStore.open(f"{tmp}/runs.zarr", "r") as store:
    ...         print(runs, store.read().shape, store.steps(runs[0]))
    ['replica_0', 'replica_1', 'replica_2'] (3, 6, 4) [ 0  2  4  6  8 10]
    """
    check_int(n_steps, "n_steps", minimum=0)
    check_choice(vectorize, "vectorize", ("auto", True, False))
    device = torch.device(device)
    replicas = [r.to(device) for r in make_replicas(base, n_replicas, eps=eps, noise=noise,
                                                     seed=seed, include_base=include_base)]
    width = len(str(n_replicas - 1))
    names = [f"{run_prefix}_{i:0{width}d}" for i in range(n_replicas)]
    st, owns = _open_store(store)
    ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    base_meta = {
        "seed": int(seed),
        "perturbation": {"kind": "multiplicative", "formula": "W0 * (1 + eps * xi)",
                         "eps": float(eps), "noise": noise, "include_base": include_base},
        "n_replicas": n_replicas,
        "n_steps": n_steps,
        "device": str(device),
        **(metadata or {}),
    }
    try:
        if ckdir is None:
            taken = [n for n in names if n in st.runs()]
            if taken:
                # Recorder's own message suggests resume=True, which train_replicas does not take.
                raise StoreError(
                    f"run(s) {', '.join(taken)} already exist in store {str(st.path)!r}; "
                    "train_replicas does not overwrite or append to runs. Choose another "
                    "run_prefix, delete the runs (TrajectoryStore.delete_run), or pass "
                    "checkpoint_dir= (the same folder on every call) so that a rerun skips "
                    "finished runs and resumes interrupted ones"
                )
        x0 = _to(next(_batch_stream(batches))[0], device)  # the first batch's inputs
        probe = make_optimizer([torch.zeros(1, device=device, requires_grad=True)])
        reason = ("branch_batches is given" if branch_batches is not None
                  else _can_vectorize(replicas, probe, after_step, x0))
        if branch_batches is not None and not callable(branch_batches):
            raise TypeError("branch_batches must be a callable generator -> (inputs, targets), "
                            f"got {type(branch_batches).__name__}")
        if vectorize is True and reason not in (None, "after_step is given"):
            raise ValueError(f"vectorize=True but the vectorised path is not exact here: {reason}")
        use_vmap = vectorize is True or (vectorize == "auto" and reason is None)
        with _progress(progress, n_replicas * n_steps, f"training {run_prefix}") as advance, \
                _stop_on_sigterm():
            if use_vmap:
                _train_vmap(replicas, names, st, base_meta, batches, loss_fn, make_optimizer,
                            n_steps, params, every, after_step, evaluate, device, advance, ckdir,
                            chunk_steps, run_prefix)
            else:
                _train_sequential(replicas, names, st, base_meta, batches, loss_fn,
                                  make_optimizer, n_steps, params, every, after_step, evaluate,
                                  device, advance, ckdir, chunk_steps,
                                  branch=(branch_batches, seed))
    finally:
        if owns:
            st.close()
    return names


@contextlib.contextmanager
def _progress(enabled: bool, total: int, description: str) -> Iterator[Callable[..., None]]:
    """``advance(n=1)`` of a Rich progress bar (a no-op when not ``enabled``)."""
    if not enabled:
        yield lambda n=1: None
        return
    from rich.progress import Progress

    # transient: a finished bar is cleared, so callers looping over jobs do not pile them up
    with Progress(transient=True) as bar:
        yield functools.partial(bar.advance, bar.add_task(description, total=total))


def _replica_meta(base_meta: dict[str, Any], i: int, vectorized: bool,
                  opt: torch.optim.Optimizer) -> dict[str, Any]:
    m = dict(base_meta)
    m.update(replica=i, vectorized=vectorized, optimizer=describe_optimizer(opt))
    m["perturbation"] = dict(m["perturbation"], base=(i == 0 and m["perturbation"]["include_base"]))
    return m


#: set by SIGTERM while train_replicas runs; the training loops stop at the next step boundary
_TERMINATE = threading.Event()


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM (``kill``, a scheduler's preemption) ends training at the next step boundary
    through the normal exit path: buffered records are written, the runs closed as unfinished
    (resumable with ``checkpoint_dir``), and the process exits with status 143. Installed only
    from the main thread and when SIGTERM has its default action (a handler of the caller's is
    left alone). The handler only sets a flag: no store write is ever interrupted midway."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return
    _TERMINATE.clear()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: _TERMINATE.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _TERMINATE.clear()


def _check_terminate() -> None:
    if _TERMINATE.is_set():
        raise SystemExit(128 + signal.SIGTERM)


def _branch_step(sample: Any, seed: int, replica: int, loss_fn: Any, opt: Any, device: Any,
                 after_step: Any) -> BranchStep | None:
    """The :class:`BranchStep` of one replica (None without ``branch_batches``)."""
    if sample is None:
        return None

    def loss(model: nn.Module, batch: Any) -> torch.Tensor:
        return _split_loss(loss_fn(model(_to(batch[0], device)), _to(batch[1], device)))[0]

    branch_seed = int.from_bytes(hashlib.sha256(f"branch:{seed}:{replica}".encode()).digest()[:8],
                                 "little") >> 1
    return BranchStep(loss, sample, opt, seed=branch_seed, after_step=after_step)


def _train_sequential(replicas, names, st, base_meta, batches, loss_fn, make_optimizer, n_steps,
                      params, every, after_step, evaluate, device, advance, ckdir,
                      chunk_steps, branch=(None, 0)) -> None:  # noqa: ANN001
    reference: list[bytes] = []
    for i, (model, run) in enumerate(zip(replicas, names)):
        if ckdir is not None and run in st.runs() and st.run_info(run)["finished"]:
            advance(n_steps)
            continue
        opt = make_optimizer(model.parameters())
        ck = ckdir / f"{run}.pt" if ckdir is not None else None
        rec = Recorder(st, run, model, params, every=every, chunk_steps=chunk_steps,
                       metadata=_replica_meta(base_meta, i, False, opt), optimizer=opt,
                       checkpoint=ck, resume=ck is not None,
                       branch=_branch_step(*branch, i, loss_fn, opt, device, after_step))
        with rec:
            start = rec.resumed_from
            if start is None:
                _record(rec, 0, model, evaluate, {})
                start = 0
            stream = _batch_stream(batches)
            h = hashlib.sha256()
            for step in range(1, n_steps + 1):
                x, y = next(stream)
                d = _digest(x, y)
                h.update(d)
                if i == 0 or len(reference) < step:
                    reference.append(d)
                elif reference[step - 1] != d:
                    raise ValueError(
                        f"batches gave replica {i} a different batch at step {step} than replica "
                        "0: the batch order must be identical on every call (seed the shuffling)"
                    )
                if step <= start:
                    continue
                _check_terminate()
                x, y = _to(x, device), _to(y, device)
                opt.zero_grad(set_to_none=True)
                loss, aux = _split_loss(loss_fn(model(x), y))
                loss.backward()
                opt.step()
                if after_step is not None:
                    with torch.no_grad():
                        after_step(model)
                if step % every == 0:
                    _record(rec, step, model, evaluate, {"loss": loss, **aux})
                advance()
            st.update_metadata(run, {"batch_order_sha256": h.hexdigest()})


def _record(rec: Recorder, step: int, model: nn.Module, evaluate: Any,
            scalars: dict[str, Any]) -> None:
    if evaluate is not None:
        with torch.no_grad():
            scalars = {**scalars, **evaluate(model)}
    rec.record(step, **scalars)


def _view_module(template: nn.Module, stacked: dict[str, torch.Tensor], i: int) -> nn.Module:
    """A copy of ``template`` whose parameters share storage with ``stacked[name][i]``."""
    m = copy.deepcopy(template)
    for name, t in stacked.items():
        mod_name, _, pname = name.rpartition(".")
        owner = m.get_submodule(mod_name) if mod_name else m
        setattr(owner, pname, nn.Parameter(t.detach()[i], requires_grad=False))
    return m


def _train_vmap(replicas, names, st, base_meta, batches, loss_fn, make_optimizer, n_steps, params,
                every, after_step, evaluate, device, advance, ckdir, chunk_steps,
                run_prefix) -> None:  # noqa: ANN001
    existing = set(st.runs())
    if ckdir is not None and all(n in existing and st.run_info(n)["finished"] for n in names):
        advance(len(names) * n_steps)
        return
    stacked, buffers = torch.func.stack_module_state(replicas)
    vforward = _vmapped(replicas[0])
    opt = make_optimizer(list(stacked.values()))
    views = [_view_module(replicas[0], stacked, i) for i in range(len(replicas))]
    ck = ckdir / f"{run_prefix}.stacked.pt" if ckdir is not None else None
    start = None
    if ck is not None and ck.exists():
        state = load_checkpoint(ck, map_location=device)
        if state.get("runs") != names:
            raise StoreError(f"checkpoint {str(ck)!r} belongs to runs {state.get('runs')}")
        with torch.no_grad():
            for k, v in state["params"].items():
                stacked[k].copy_(v)
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng_state"].cpu())
        for n in names:
            st.truncate(n, int(state["n_complete"][n]))
        start = int(state["step"])
    elif ck is not None:
        for n in names:
            if n in existing:
                st.delete_run(n)  # written before any checkpoint: start it again
    with warnings.catch_warnings():
        # the stacked state was restored above from the vectorised checkpoint
        warnings.simplefilter("ignore", ResumeWithoutCheckpointWarning)
        recs = [
            Recorder(st, n, v, params, every=every, chunk_steps=chunk_steps,
                     metadata=_replica_meta(base_meta, i, True, opt), resume=start is not None)
            for i, (n, v) in enumerate(zip(names, views))
        ]
    # All replicas recorded from the stacked tensors at once, a chunk of all runs per write; the
    # per-replica recorders created (or resumed) the runs and close them.
    rec = StackedRecorder(recs, stacked, background=True)
    ok = False
    try:
        if start is None:
            rec.record(0, _stacked_scalars(views, evaluate, (), None))
            start = 0
        stream = _batch_stream(batches)
        h = hashlib.sha256()
        for step in range(1, n_steps + 1):
            x, y = next(stream)
            h.update(_digest(x, y))
            if step <= start:
                continue
            _check_terminate()
            x, y = _to(x, device), _to(y, device)
            out = vforward(stacked, buffers, x)
            losses, auxes = zip(*(_split_loss(loss_fn(out[i], y)) for i in range(len(recs))))
            opt.zero_grad(set_to_none=True)
            total = torch.stack(list(losses))
            total.sum().backward()
            opt.step()
            if after_step is not None:
                with torch.no_grad():
                    for v in views:
                        after_step(v)
            if step % every == 0:
                written = rec.record(step, _stacked_scalars(views, evaluate, auxes, total))
                if ck is not None and written:
                    rec.wait()  # the checkpoint names n_complete: the chunk must be written
                    save_checkpoint(ck, {
                        "format": 1, "runs": names, "step": step,
                        "n_complete": {r.run: r.n_complete for r in recs},
                        "params": {k: t.detach() for k, t in stacked.items()},
                        "optimizer": opt.state_dict(),
                        "torch_rng_state": torch.get_rng_state(),
                    })
            advance(len(recs))
        rec.close()
        digest = h.hexdigest()
        for n in names:
            st.update_metadata(n, {"batch_order_sha256": digest})
        ok = True
    finally:
        if not ok:  # keep what was recorded; never mask the original exception
            with contextlib.suppress(Exception):
                rec.close()
        for r in recs:
            try:
                r.close(finished=ok)
            except Exception:
                if ok:
                    raise


def _stacked_scalars(views: list[nn.Module], evaluate: Any, auxes: Any,
                     losses: torch.Tensor | None) -> dict[str, Any]:
    """Scalars of one record of every replica: name -> values (n_replicas,)."""
    out: dict[str, Any] = {}
    if losses is not None:
        out["loss"] = losses.detach()
    per = [_numbers(a) for a in auxes]
    if evaluate is not None:
        with torch.no_grad():
            evals = [_numbers(evaluate(v)) for v in views]
        per = [{**a, **e} for a, e in zip(per, evals)] if per else evals
    for k in sorted({k for d in per for k in d}):
        out[k] = [d.get(k, float("nan")) for d in per]
    return out
