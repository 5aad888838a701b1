"""Seeded minibatch orders: which training examples every SGD step sees (shared by the
fully connected and the CNN studies, so that replicas and architectures see the same batches)."""

from __future__ import annotations

import numpy as np

from .._checks import check_int

__all__ = ["batch_order"]


def batch_order(n_examples: int, batch_size: int, n_steps: int, seed: int) -> np.ndarray:
    """Indices of the examples of every SGD step: a fresh seeded permutation each epoch.

    Each epoch is split into ``n_examples // batch_size`` full batches (a last partial batch is
    dropped, so every step sees ``batch_size`` examples); epochs follow each other until
    ``n_steps`` batches are drawn.

    Parameters
    ----------
    n_examples : int
        Size of the training set, >= 1.
    batch_size : int
        Examples per step, >= 1 and at most ``n_examples``.
    n_steps : int
        Number of steps (batches), >= 1.
    seed : int
        Seed of the NumPy ``default_rng`` that draws the permutations.

    Returns
    -------
    ndarray of int64, shape (n_steps, batch_size)

    Raises
    ------
    ValueError
        If an argument is not a positive integer or ``batch_size > n_examples``.

    Examples
    --------
    Ten examples in batches of 4: two batches per epoch (two examples dropped each epoch):

    >>> batch_order(10, 4, 5, seed=0)
    array([[4, 6, 2, 7],
           [3, 5, 9, 0],
           [2, 9, 3, 6],
           [0, 4, 8, 7],
           [5, 4, 9, 0]])
    """
    n_examples = check_int(n_examples, "n_examples", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    n_steps = check_int(n_steps, "n_steps", minimum=1)
    per_epoch = n_examples // batch_size
    if per_epoch == 0:
        raise ValueError(f"batch_size={batch_size} is larger than the {n_examples} training examples")
    rng = np.random.default_rng(seed)
    n_epochs = -(-n_steps // per_epoch)
    epochs = [rng.permutation(n_examples)[: per_epoch * batch_size] for _ in range(n_epochs)]
    return np.concatenate(epochs).reshape(-1, batch_size)[:n_steps].astype(np.int64)
