"""Small training helpers shared by the experiments' training functions: a seeded ReLU MLP, an
endless seeded batch order, one cross-entropy SGD step, loss and accuracy of a model, the test
loss of each replica at its last record, minibatches by a fixed order of indices, CIFAR-style
augmented batches (flips and padded crops) from a fixed seed, and a study job's replicas trained
into its store (:func:`train_job_replicas`; on seeded minibatches: :func:`train_minibatch_job`)."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..data import batch_order
from ..study import seed_streams
from .replicas import train_replicas


def seeded_mlp(n_in: int, width: int, n_out: int, seed: int) -> nn.Sequential:
    """``n_in - width - width - width - n_out`` with ReLUs and biases, initialised by torch's
    default rule from ``seed`` (the global random state is left as it was).

    Examples
    --------
    >>> model = seeded_mlp(4, 8, 3, seed=0)
    >>> len(model), torch.equal(model[0].weight, seeded_mlp(4, 8, 3, seed=0)[0].weight)
    (7, True)
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(n_in, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                             nn.Linear(width, width), nn.ReLU(), nn.Linear(width, n_out))


def endless_batches(n: int, batch_size: int, seed: Sequence[int]) -> Iterator[torch.Tensor]:
    """Seeded batch order, endless: a new permutation every epoch, the remainder dropped.

    Parameters
    ----------
    n : int
        Number of examples.
    batch_size : int
    seed : sequence of int
        Entropy of a ``numpy.random.SeedSequence`` (e.g. ``(master, seed_index)``).

    Yields
    ------
    torch.Tensor of int64 (batch_size,)
        Example indices.

    Examples
    --------
    Ten examples in batches of 4: two per epoch, then a new permutation:

    >>> batches = endless_batches(10, 4, [0, 1])
    >>> [next(batches).tolist() for _ in range(3)]
    [[4, 8, 5, 0], [7, 6, 2, 3], [9, 6, 8, 4]]
    """
    g = torch.Generator().manual_seed(int(np.random.SeedSequence(list(seed)).generate_state(1)[0]))
    while True:
        perm = torch.randperm(n, generator=g)
        for pos in range(0, n - batch_size + 1, batch_size):
            yield perm[pos : pos + batch_size]


def sgd_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
             ) -> float:
    """One optimizer step on the cross-entropy of ``model(x)``; returns the loss before it.

    Examples
    --------
    >>> model = seeded_mlp(4, 8, 3, seed=0)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    >>> y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    >>> before = sgd_step(model, opt, x, y)
    >>> round(before, 3), round(evaluate(model, x, y)[0], 3)  # the loss went down
    (1.103, 1.101)
    """
    opt.zero_grad()
    out = F.cross_entropy(model(x), y)
    out.backward()
    opt.step()
    return float(out.detach())


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Cross-entropy and accuracy of ``model`` on ``(x, y)``, without gradients.

    Returns
    -------
    loss : float
        Mean cross-entropy (nats).
    accuracy : float
        Fraction of ``argmax`` predictions equal to ``y``.

    Examples
    --------
    >>> model = nn.Linear(2, 2, bias=False)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.eye(2))
    >>> loss, accuracy = evaluate(model, torch.tensor([[5.0, 0.0], [0.0, 5.0]]), torch.tensor([0, 0]))
    >>> round(loss, 3), accuracy  # one right, one wrong
    (2.507, 0.5)
    """
    with torch.no_grad():
        out = model(x)
        return float(F.cross_entropy(out, y)), float((out.argmax(1) == y).float().mean())


class FinalTestLoss:
    """``evaluate`` hook of :func:`~conjugacy.torch.train_replicas`: the cross-entropy test loss
    and accuracy of each replica at its last record (step ``n_steps``), nothing at the others.

    ``train_replicas`` calls ``evaluate(model)`` once per record of each replica (record 0, then
    after every step), on the same module object throughout, so the ``n``-th call for a module
    is record ``n - 1``. For runs trained from step 0 (the count starts at record 0; a run
    resumed inside needs another hook). Modules are held weakly.

    Parameters
    ----------
    x_test : torch.Tensor (n, ...)
        Test inputs, on the models' device.
    y_test : torch.Tensor of int64 (n,)
        Their class labels.
    n_steps : int
        The step of the last record.

    Examples
    --------
    >>> model = nn.Linear(2, 2, bias=False)
    >>> hook = FinalTestLoss(torch.eye(2), torch.tensor([0, 0]), n_steps=1)
    >>> hook(model), sorted(hook(model)), hook(model)  # records 0, 1 (the last), then none
    ({}, ['test_accuracy', 'test_loss'], {})
    """

    def __init__(self, x_test: torch.Tensor, y_test: torch.Tensor, n_steps: int) -> None:
        self.x_test, self.y_test, self.n_steps = x_test, y_test, n_steps
        self._calls: weakref.WeakKeyDictionary[nn.Module, int] = weakref.WeakKeyDictionary()

    def __call__(self, model: nn.Module) -> dict[str, float]:
        record = self._calls.get(model, 0)
        self._calls[model] = record + 1
        if record != self.n_steps:
            return {}
        loss, accuracy = evaluate(model, self.x_test, self.y_test)
        return {"test_loss": loss, "test_accuracy": accuracy}


def indexed_batches(x: Any, y: Any, order: np.ndarray, device: Any, *,
                    augment_seed: int | None = None
                    ) -> Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """The ``batches`` hook of :func:`~conjugacy.torch.train_replicas` for the minibatches
    ``(x[idx], y[idx])`` of each row ``idx`` of ``order``, the same on every call.

    Parameters
    ----------
    x, y : ndarray or torch.Tensor (n, ...) and (n,)
        Inputs and targets, moved to ``device`` once (a NumPy array shares its memory).
    order : ndarray of int (n_steps, batch_size)
        Example indices of each step (e.g. :func:`conjugacy.data.batch_order`).
    device : str or torch.device
    augment_seed : int, optional
        Given: the images are flipped and cropped by :func:`augmented_batches` with this seed.

    Examples
    --------
    >>> batches = indexed_batches(np.arange(5.0), np.arange(5) % 2, np.array([[4, 0], [1, 2]]), "cpu")
    >>> [(xb.tolist(), yb.tolist()) for xb, yb in batches()]
    [([4.0, 0.0], [0, 0]), ([1.0, 2.0], [1, 0])]
    """
    x_all, y_all = torch.as_tensor(x).to(device), torch.as_tensor(y).to(device)
    order_t = torch.from_numpy(order).to(device)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if augment_seed is not None:
            return augmented_batches(x_all, y_all, order, augment_seed, device)
        return ((x_all[idx], y_all[idx]) for idx in order_t)

    return batches


def augmented_batches(x_all: torch.Tensor, y_all: torch.Tensor, order: np.ndarray, seed: int,
                      device: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches ``order`` of 32 x 32 images with random horizontal flips and 4-pixel-padded random
    crops drawn from ``seed`` (the same on every call).

    Parameters
    ----------
    x_all : torch.Tensor (n, channels, 32, 32)
    y_all : torch.Tensor (n,)
    order : ndarray of int (n_steps, batch_size)
        Example indices of each step (e.g. :func:`conjugacy.data.batch_order`).
    seed : int
        Seed of the flips and crops.
    device : str or torch.device
        Where ``x_all`` and ``y_all`` are.

    Yields
    ------
    (torch.Tensor, torch.Tensor)
        Augmented images and their labels, one pair per row of ``order``.

    Examples
    --------
    >>> import numpy as np
    >>> x, y = torch.rand(4, 3, 32, 32), torch.arange(4)
    >>> order = np.array([[0, 1], [2, 3]])
    >>> batches = list(augmented_batches(x, y, order, seed=0, device="cpu"))
    >>> again = list(augmented_batches(x, y, order, seed=0, device="cpu"))
    >>> len(batches), batches[1][0].shape, batches[1][1], torch.equal(batches[0][0], again[0][0])
    (2, torch.Size([2, 3, 32, 32]), tensor([2, 3]), True)
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,)))
    for idx in order:
        x = x_all[torch.from_numpy(idx).to(device)]
        n = x.shape[0]
        flips = rng.random(n) < 0.5
        shifts = rng.integers(0, 9, size=(n, 2))
        padded = F.pad(x, (4, 4, 4, 4))
        out = torch.empty_like(x)
        for i in range(n):
            dy, dx = int(shifts[i, 0]), int(shifts[i, 1])
            img = padded[i, :, dy : dy + 32, dx : dx + 32]
            out[i] = img.flip(-1) if flips[i] else img
        yield out, y_all[torch.from_numpy(idx).to(device)]


def train_job_replicas(job: Any, ctx: Any, base: nn.Module, *, metadata: Mapping[str, Any],
                       **kwargs: Any) -> list[str]:
    """The training step every trained experiment shares: :func:`~conjugacy.torch.train_replicas`
    of ``base`` for one job of a :class:`~conjugacy.study.Study`.

    ``job.n_replicas`` runs named ``<job.key>_<i>`` (the base and perturbed copies, relative
    perturbation ``ctx.config.eps``) of ``job.n_records - 1`` steps each, on
    ``ctx.config.device``, recorded into ``ctx.store`` with ``ctx.progress`` and the study's
    metadata (``ctx.metadata``) extended by ``metadata``.

    Parameters
    ----------
    job : conjugacy.study.Job
    ctx : conjugacy.study.JobContext
        Its ``config`` has the fields ``eps`` and ``device``.
    base : nn.Module
        The base initialization.
    metadata : mapping
        Stamped on every run (with ``ctx.metadata``; these win).
    **kwargs
        The rest of ``train_replicas``'s arguments (``batches``, ``loss_fn``,
        ``make_optimizer``, ``params``, ``noise``, ``seed``, ...).

    Returns
    -------
    list of str
        The run names, as ``train_replicas``.

    Raises
    ------
    As :func:`~conjugacy.torch.train_replicas`.

    Examples
    --------
    The fcn, cnn and grokking studies' ``train_job`` end with it (directly or through
    :func:`train_minibatch_job`, whose example trains a two-replica job).

    >>> import tempfile, types
    >>> from conjugacy.study import Study, run_study
    >>> x, y = torch.ones(6, 4), torch.arange(6) % 3
    >>> def train(job, ctx):
    ...     train_job_replicas(job, ctx, seeded_mlp(4, 8, 3, 0), metadata={"full_batch": True},
    ...                        batches=[(x, y)] * 5, loss_fn=F.cross_entropy, params=["6.weight"],
    ...                        make_optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    >>> study = Study("demo", {"mlp": {}}, seeds=[0], n_replicas=3, n_records=6, train=train,
    ...               settings={}, config=types.SimpleNamespace(eps=1e-3, device="cpu"))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with run_study(study, tmp).reader() as reader:
    ...         runs, meta = reader.runs(), reader.metadata("mlp-seed0_2")
    >>> runs, meta["n_steps"], meta["full_batch"], meta["perturbation"]["eps"]
    (['mlp-seed0_0', 'mlp-seed0_1', 'mlp-seed0_2'], 5, True, 0.001)
    """
    return train_replicas(
        base, n_replicas=job.n_replicas, eps=ctx.config.eps, n_steps=job.n_records - 1,
        store=ctx.store, run_prefix=job.key, device=ctx.config.device, progress=ctx.progress,
        metadata={**ctx.metadata, **metadata}, **kwargs)


def train_minibatch_job(job: Any, ctx: Any, make_base: Callable[[int], nn.Module], x: Any, y: Any,
                        *, inits: Mapping[Any, int], init_key: Any, augment: bool = False,
                        metadata: Mapping[str, Any], **kwargs: Any) -> list[str]:
    """:func:`train_job_replicas` on seeded minibatches: the training step of the fcn and cnn
    studies.

    The job's random streams are :func:`conjugacy.study.seed_streams` of ``ctx.config.seed``
    and the job's seed: the base is ``make_base(streams["init"][init_key])``, the replicas'
    perturbation is drawn from ``streams["noise"]`` and the steps' batches of
    ``ctx.config.batch_size`` examples of ``(x, y)`` follow :func:`conjugacy.data.batch_order`
    of ``streams["order"]`` (:func:`indexed_batches`; flipped and cropped from the same seed
    with ``augment``). The runs' metadata gain ``seed_index``, ``lr``, ``batch_size``,
    ``init_seed`` and ``batch_order_seed``.

    Parameters
    ----------
    job, ctx
        As :func:`train_job_replicas`; ``ctx.config`` also has ``seed``, ``batch_size`` and ``lr``.
    make_base : callable int -> nn.Module
        The base network of an init seed.
    x, y : ndarray (n, ...) and (n,)
        Training inputs and labels.
    inits : mapping
        The init stream of each condition (``seed_streams``'s ``inits``).
    init_key
        This job's key in ``inits``.
    augment : bool
        Random flips and crops (32 x 32 images).
    metadata : mapping
        Stamped on every run, with the stream seeds above.
    **kwargs
        Passed to :func:`train_job_replicas` (``loss_fn``, ``make_optimizer``, ``params``, ...).

    Returns
    -------
    list of str
        The run names.

    Examples
    --------
    A study of one condition, one seed, two replicas of a small MLP, three steps:

    >>> import tempfile, types
    >>> from conjugacy.study import Study, run_study
    >>> cfg = types.SimpleNamespace(seed=0, batch_size=2, lr=0.1, eps=1e-3, device="cpu")
    >>> x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    >>> y = np.arange(8) % 3
    >>> def train(job, ctx):
    ...     train_minibatch_job(job, ctx, lambda s: seeded_mlp(4, 8, 3, s), x, y,
    ...                         inits={"mlp": 1}, init_key="mlp", metadata={"experiment": "demo"},
    ...                         loss_fn=F.cross_entropy, params=["0.weight"],
    ...                         make_optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    >>> study = Study("demo", {"mlp": {}}, seeds=[0], n_replicas=2, n_records=4, train=train,
    ...               settings={}, config=cfg)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with run_study(study, tmp).reader() as reader:
    ...         meta = reader.metadata("mlp-seed0_1")
    ...         shape = reader.read(params="0.weight", runs=reader.runs()).shape
    >>> shape, meta["n_steps"], meta["experiment"], meta["batch_size"]
    ((2, 4, 32), 3, 'demo', 2)
    """
    config = ctx.config
    streams = seed_streams(config.seed, job.seed, inits)
    order = batch_order(int(x.shape[0]), config.batch_size, job.n_records - 1, streams["order"])
    batches = indexed_batches(x, y, order, torch.device(config.device),
                              augment_seed=streams["order"] if augment else None)
    init = streams["init"][init_key]
    return train_job_replicas(
        job, ctx, make_base(init), seed=streams["noise"], batches=batches,
        metadata={**metadata, "seed_index": job.seed, "lr": config.lr,
                  "batch_size": config.batch_size, "init_seed": init,
                  "batch_order_seed": streams["order"]}, **kwargs)
