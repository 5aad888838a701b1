"""Modular addition data for the grokking experiment (Power et al. 2022; Nanda et al. 2023).

Every pair ``(a, b)`` with ``0 <= a, b < modulus`` is one example. The input sequence is
``[a, b, =]`` where the "=" token has id ``modulus`` (so the vocabulary has ``modulus + 1``
tokens) and the label is ``(a + b) mod modulus``, read by the model at the last position.
A fixed fraction of the ``modulus**2`` pairs, drawn by a seeded permutation, is the training set;
the rest is the test set. The paper (Redman et al. 2024, appendix E) uses ``modulus = 113`` and
30 % for training: ``int(0.3 * 12769) = 3830`` training pairs and 8,939 test pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import _as_float, check_int, check_seed
from ._images import frozen

__all__ = ["ModularData", "modular_addition"]


@dataclass(frozen=True)
class ModularData:
    """A train/test split of the modular addition table.

    Attributes
    ----------
    train_inputs, test_inputs : ndarray of int64, shape (n, 3)
        Token sequences ``[a, b, modulus]``.
    train_labels, test_labels : ndarray of int64, shape (n,)
        ``(a + b) % modulus``.
    modulus : int
        The modulus ``p``.
    vocab_size : int
        ``modulus + 1`` (the residues and the "=" token).
    train_fraction : float
        Requested fraction of pairs used for training.
    seed : int
        Seed of the permutation that chose the split.

    Examples
    --------
    Returned by :func:`modular_addition`:

    >>> data = modular_addition(5, 0.4, seed=0)
    >>> data.vocab_size, data.equals_token, data.train_inputs[0], int(data.train_labels[0])
    (6, 5, array([3, 4, 5]), 2)
    """

    train_inputs: np.ndarray
    train_labels: np.ndarray
    test_inputs: np.ndarray
    test_labels: np.ndarray
    modulus: int
    vocab_size: int
    train_fraction: float
    seed: int

    @property
    def equals_token(self) -> int:
        """Token id of "=" (equal to ``modulus``)."""
        return self.modulus


def modular_addition(
    modulus: int = 113, train_fraction: float = 0.3, seed: int = 0
) -> ModularData:
    """Build the ``a + b mod modulus`` dataset with a deterministic random train/test split.

    Parameters
    ----------
    modulus : int
        The modulus ``p >= 2``; there are ``p**2`` pairs.
    train_fraction : float
        Fraction of pairs used for training, in (0, 1). The training set has
        ``int(train_fraction * p**2)`` pairs (at least 1, at most ``p**2 - 1``).
    seed : int
        Seed of the NumPy ``default_rng`` permutation of the pairs; the same seed always gives
        the same split.

    Returns
    -------
    ModularData
        Arrays are read-only int64.

    Raises
    ------
    TypeError, ValueError
        If an argument has the wrong type or is out of range.

    Examples
    --------
    All 25 pairs of ``a + b mod 5``, 40 % (10 pairs) for training:

    >>> data = modular_addition(5, 0.4, seed=0)
    >>> data.train_inputs.shape, data.test_inputs.shape
    ((10, 3), (15, 3))
    >>> a, b, eq = data.train_inputs[0]
    >>> int(a), int(b), int(eq), int(data.train_labels[0])  # "3 + 4 =" -> 2
    (3, 4, 5, 2)
    """
    check_int(modulus, "modulus", minimum=2)
    fraction = _as_float(train_fraction, "train_fraction", "a real number")
    if not (0.0 < fraction < 1.0):
        raise ValueError(f"train_fraction must lie strictly between 0 and 1, got {train_fraction}")
    check_seed(seed)
    p = int(modulus)
    n_pairs = p * p
    n_train = min(max(int(fraction * n_pairs), 1), n_pairs - 1)

    a, b = np.divmod(np.arange(n_pairs, dtype=np.int64), p)
    inputs = np.stack([a, b, np.full(n_pairs, p, dtype=np.int64)], axis=1)
    labels = (a + b) % p
    order = np.random.default_rng(int(seed)).permutation(n_pairs)
    train, test = order[:n_train], order[n_train:]

    return ModularData(
        train_inputs=frozen(inputs[train]),
        train_labels=frozen(labels[train]),
        test_inputs=frozen(inputs[test]),
        test_labels=frozen(labels[test]),
        modulus=p,
        vocab_size=p + 1,
        train_fraction=fraction,
        seed=int(seed),
    )
