"""Small training helpers shared by the experiments' training functions: a seeded ReLU MLP, an
endless seeded batch order, one cross-entropy SGD step, loss and accuracy of a model, and
CIFAR-style augmented batches (flips and padded crops) from a fixed seed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def seeded_mlp(n_in: int, width: int, n_out: int, seed: int) -> nn.Sequential:
    """``n_in - width - width - width - n_out`` with ReLUs and biases, initialised by torch's
    default rule from ``seed`` (the global random state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(n_in, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                             nn.Linear(width, width), nn.ReLU(), nn.Linear(width, n_out))


def endless_batches(n: int, batch_size: int, seed: Sequence[int]) -> Iterator[torch.Tensor]:
    """Seeded batch order, endless: a new permutation every epoch, the remainder dropped."""
    g = torch.Generator().manual_seed(int(np.random.SeedSequence(list(seed)).generate_state(1)[0]))
    while True:
        perm = torch.randperm(n, generator=g)
        for pos in range(0, n - batch_size + 1, batch_size):
            yield perm[pos : pos + batch_size]


def sgd_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
             ) -> float:
    """One optimizer step on the cross-entropy of ``model(x)``; returns the loss before it."""
    opt.zero_grad()
    out = F.cross_entropy(model(x), y)
    out.backward()
    opt.step()
    return float(out.detach())


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Cross-entropy and accuracy of ``model`` on ``(x, y)``, without gradients."""
    with torch.no_grad():
        out = model(x)
        return float(F.cross_entropy(out, y)), float((out.argmax(1) == y).float().mean())


def augmented_batches(x_all: torch.Tensor, y_all: torch.Tensor, order: np.ndarray, seed: int,
                      device: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches ``order`` of 32 x 32 images with random horizontal flips and 4-pixel-padded random
    crops drawn from ``seed`` (the same on every call)."""
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
