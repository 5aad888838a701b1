"""Training protocols for :func:`conjugacy.torch.train_replicas`: what it needs from a task
(``batches``, ``loss_fn``, ``make_optimizer``, ``after_step``, ``evaluate``) as one object.

:class:`FullBatchProtocol` is full-batch classification, optionally with the global L2 norm of
all parameters held at its initial value after every step (the constraint of Omnigrok, Liu et al.
2023, used by the transformer grokking study, :mod:`conjugacy.experiments.grokking`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .training import evaluate as evaluate_split

__all__ = ["FullBatchProtocol", "global_norm"]

Split = tuple[torch.Tensor, torch.Tensor]


def global_norm(model: nn.Module | Iterable[torch.Tensor]) -> torch.Tensor:
    """Global L2 norm of all parameters of ``model`` (or of the given tensors): a 0-d tensor,
    no gradient.

    Examples
    --------
    >>> layer = nn.Linear(2, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = layer.weight.copy_(torch.tensor([[3.0, 4.0]]))
    >>> float(global_norm(layer))
    5.0
    """
    params = model.parameters() if isinstance(model, nn.Module) else model
    return torch.sqrt(sum(p.detach().pow(2).sum() for p in params))


class FullBatchProtocol:
    """Full-batch classification for :func:`~conjugacy.torch.train_replicas`, optionally at a
    fixed global weight norm.

    Parameters
    ----------
    train, test : (inputs, labels)
        Tensors on the training device; every step uses all of ``train``; both are evaluated
        in full at the evaluation steps.
    optimizer : callable
        ``optimizer(parameters) -> torch.optim.Optimizer``.
    fixed_norm : bool
        After every optimizer step, rescale all parameters by one factor so that their global
        L2 norm returns to its value when the optimizer was made.
    eval_steps : callable int -> bool, optional
        Whether step ``t`` (optimizer steps taken) is an evaluation step. The step is read from
        the optimizer state (a per-parameter ``step`` entry, as Adam and AdamW keep), so it stays
        right after a resume. None: evaluate at every recorded step.

    Notes
    -----
    :meth:`make_optimizer` remembers, for each model it is given (keyed by its first parameter),
    the optimizer and the global norm at that moment: ``train_replicas`` calls it right after
    creating a replica (and before restoring a checkpoint when resuming), so this is the
    replica's initial norm. :meth:`evaluate` returns ``weight_norm`` always and
    ``{train,test}_{loss,accuracy}`` (:func:`conjugacy.torch.training.evaluate`) at evaluation
    steps.

    Raises
    ------
    RuntimeError
        :meth:`initial_norm`, :meth:`step`, :meth:`after_step` (with ``fixed_norm``) or
        :meth:`evaluate` (with ``eval_steps``) on a model whose optimizer was not made by
        :meth:`make_optimizer`.

    Examples
    --------
    A linear classifier held at its initial norm while SGD moves it:

    >>> x, y = torch.randn(8, 3, generator=torch.Generator().manual_seed(0)), torch.arange(8) % 2
    >>> protocol = FullBatchProtocol((x, y), (x, y), lambda p: torch.optim.SGD(p, lr=1.0),
    ...                              fixed_norm=True)
    >>> model = nn.Linear(3, 2)
    >>> opt = protocol.make_optimizer(model.parameters())
    >>> protocol.loss_fn(model(x), y).backward(); opt.step()
    >>> with torch.no_grad():
    ...     protocol.after_step(model)
    >>> ratio = float(global_norm(model)) / protocol.initial_norm(model)
    >>> round(ratio, 6), sorted(protocol.evaluate(model))
    (1.0, ['test_accuracy', 'test_loss', 'train_accuracy', 'train_loss', 'weight_norm'])
    """

    def __init__(self, train: Split, test: Split,
                 optimizer: Callable[[list[torch.Tensor]], torch.optim.Optimizer], *,
                 fixed_norm: bool = False, eval_steps: Callable[[int], bool] | None = None
                 ) -> None:
        self.train, self.test = train, test
        self.optimizer, self.fixed_norm, self.eval_steps = optimizer, fixed_norm, eval_steps
        self._state: dict[int, tuple[torch.optim.Optimizer, torch.Tensor]] = {}

    def batches(self) -> list[Split]:
        """Full batch: the whole training set at every step."""
        return [self.train]

    @staticmethod
    def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of ``logits`` (n, classes) against ``labels`` (n,)."""
        return F.cross_entropy(logits, labels)

    def make_optimizer(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        """The optimizer of ``params``; remembers it and their global norm now."""
        params = list(params)
        opt = self.optimizer(params)
        self._state[id(params[0])] = (opt, global_norm(params))
        return opt

    def _lookup(self, model: nn.Module) -> tuple[torch.optim.Optimizer, torch.Tensor]:
        try:
            return self._state[id(next(model.parameters()))]
        except KeyError:
            raise RuntimeError("model was not created through make_optimizer") from None

    def initial_norm(self, model: nn.Module) -> float:
        """The norm remembered for ``model`` by :meth:`make_optimizer`."""
        return float(self._lookup(model)[1])

    def after_step(self, model: nn.Module) -> None:
        """With ``fixed_norm``: rescale all parameters to the initial global norm."""
        if not self.fixed_norm:
            return
        _, target = self._lookup(model)
        factor = target / global_norm(model)
        for p in model.parameters():
            p.mul_(factor)

    def step(self, model: nn.Module) -> int:
        """Optimizer steps taken by ``model``'s optimizer (0 before the first)."""
        opt, _ = self._lookup(model)
        state = opt.state.get(next(model.parameters()), {})
        return int(state["step"]) if "step" in state else 0

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """``weight_norm`` always; train/test loss and accuracy at evaluation steps."""
        out = {"weight_norm": float(global_norm(model))}
        if self.eval_steps is None or self.eval_steps(self.step(model)):
            for split, (x, y) in (("train", self.train), ("test", self.test)):
                out[f"{split}_loss"], out[f"{split}_accuracy"] = evaluate_split(model, x, y)
        return out
