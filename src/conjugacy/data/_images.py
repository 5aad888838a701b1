"""The image dataset record shared by the digits, MNIST and CIFAR-10 loaders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import _as_float, check_seed

__all__ = ["ImageDataset", "check_split", "frozen", "image_dataset", "unit_pixels"]


def frozen(x: np.ndarray) -> np.ndarray:
    """Return a C-contiguous, read-only version of ``x``."""
    x = np.ascontiguousarray(x)
    x.setflags(write=False)
    return x


def unit_pixels(images: np.ndarray) -> np.ndarray:
    """Byte images (0..255) as float32 in [0, 1] (``pixel / 255``)."""
    return images.astype(np.float32) / np.float32(255.0)


def check_split(test_fraction: Any, seed: Any) -> tuple[float, int]:
    """The split arguments of a loader: ``test_fraction`` (a real number in [0, 1):
    ``TypeError`` / ``ValueError`` naming it) and ``seed`` (:func:`conjugacy._checks.check_seed`).

    >>> check_split(0.2, 3)
    (0.2, 3)
    """
    fraction = _as_float(test_fraction, "test_fraction", "a real number")
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"test_fraction must lie in [0, 1), got {test_fraction!r}")
    return fraction, check_seed(seed)


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A labelled image classification dataset split into train and test sets.

    Attributes
    ----------
    train_images, test_images : ndarray of float32, shape (n, *image_shape)
        Pixel intensities scaled to [0, 1]. ``image_shape`` is (height, width) for grey-scale
        images and (channels, height, width) for colour images.
    train_labels, test_labels : ndarray of int64, shape (n,)
        Class indices in ``0 .. n_classes - 1``.
    name : str
        ``"digits"``, ``"mnist"`` or ``"cifar10"``.
    n_classes : int
        Number of classes.
    source : str
        Where the data came from (a folder, or the bundled scikit-learn copy).

    Examples
    --------
    Returned by the loaders of :mod:`conjugacy.data`:

    >>> from conjugacy.data import load_digits
    >>> data = load_digits()
    >>> data
    ImageDataset(name='digits', train=1438, test=359, image_shape=(8, 8), n_classes=10)
    >>> data.n_features, data.features("test").shape, data.labels("test").dtype
    (64, (359, 64), dtype('int64'))
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    name: str
    n_classes: int
    source: str

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one image, e.g. ``(28, 28)`` or ``(3, 32, 32)``."""
        return tuple(int(s) for s in self.train_images.shape[1:])

    @property
    def n_features(self) -> int:
        """Number of pixel values per image (the input size of a fully connected network)."""
        return int(np.prod(self.image_shape))

    def _split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(images, labels)`` of ``split``; ``ValueError`` unless it is "train" or "test"."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")

    def features(self, split: str = "train") -> np.ndarray:
        """Images of ``split`` (``"train"`` or ``"test"``) flattened to ``(n, n_features)``."""
        images = self._split(split)[0]
        return images.reshape(images.shape[0], -1)

    def labels(self, split: str = "train") -> np.ndarray:
        """Labels of ``split`` (``"train"`` or ``"test"``), int64 ``(n,)``."""
        return self._split(split)[1]

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, train={self.train_images.shape[0]}, "
            f"test={self.test_images.shape[0]}, image_shape={self.image_shape}, "
            f"n_classes={self.n_classes})"
        )


def image_dataset(name: str, source: str, train: tuple[np.ndarray, np.ndarray],
                  test: tuple[np.ndarray, np.ndarray], n_classes: int = 10) -> ImageDataset:
    """The :class:`ImageDataset` of ``train`` and ``test`` ``(images, labels)``, every array
    :func:`frozen` (C-contiguous, read-only)."""
    return ImageDataset(*map(frozen, (*train, *test)), name=name, n_classes=n_classes,
                        source=source)
