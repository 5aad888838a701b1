"""CIFAR-10 from its binary distribution ("CIFAR-10 binary version (suitable for C programs)").

Nothing is downloaded and nothing is unpickled: the python version of CIFAR-10 is a set of pickle
files, which can run arbitrary code when loaded, so it is refused. The folder (or its
``cifar-10-batches-bin`` sub-folder) must hold ``data_batch_1.bin`` ... ``data_batch_5.bin`` and
``test_batch.bin``. Each file is a sequence of 3,073-byte records: one label byte (0..9), then
3,072 pixel bytes, the 32x32 red plane, then green, then blue, each row-major.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._images import ImageDataset, image_dataset, unit_pixels

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_TEST_FILE",
    "CIFAR10_TRAIN_FILES",
    "load_cifar10",
    "read_cifar10_batch",
]

CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch.bin"
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_RECORD = 1 + 3 * 32 * 32


def read_cifar10_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch file.

    Parameters
    ----------
    path : str or path-like
        A ``*.bin`` file of 3,073-byte records (10,000 records in the real distribution; any
        positive number is accepted).

    Returns
    -------
    images : ndarray of uint8, shape (n, 3, 32, 32)
        Channels first (red, green, blue).
    labels : ndarray of int64, shape (n,)

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If its size is not a positive multiple of 3,073 bytes, or a label is above 9.

    Examples
    --------
    Two records (label 3, a black image; label 7, a white one):

    >>> import tempfile
    >>> import numpy as np
    >>> records = np.zeros((2, 3073), np.uint8)
    >>> records[:, 0] = [3, 7]
    >>> records[1, 1:] = 255
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     records.tofile(f"{tmp}/test_batch.bin")
    ...     images, labels = read_cifar10_batch(f"{tmp}/test_batch.bin")
    >>> images.shape, images.dtype, labels, int(images[1].min())
    ((2, 3, 32, 32), dtype('uint8'), array([3, 7]), 255)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 batch file not found: {path}")
    size = path.stat().st_size
    if size == 0 or size % _RECORD:
        raise ValueError(
            f"{path}: a CIFAR-10 binary batch is a sequence of {_RECORD}-byte records "
            f"(1 label byte + 3072 pixel bytes), but the file has {size} bytes "
            f"({size // _RECORD} whole record(s) and {size % _RECORD} byte(s) left over); "
            "it is truncated or not the binary version"
        )
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, _RECORD)
    labels = raw[:, 0].astype(np.int64)
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise ValueError(
            f"{path}: record {bad} has label {int(labels[bad])}; CIFAR-10 labels are 0..9 "
            "(is this the CIFAR-100 binary version, whose records are 3074 bytes?)"
        )
    images = raw[:, 1:].reshape(-1, 3, 32, 32)
    return images, labels


def _find_folder(directory: Path) -> Path:
    if not directory.is_dir():
        raise FileNotFoundError(
            f"CIFAR-10 folder not found: {directory} is not a directory; it must hold the binary "
            f"distribution's files {', '.join(CIFAR10_TRAIN_FILES)} and {CIFAR10_TEST_FILE}"
        )
    for folder in (directory, directory / "cifar-10-batches-bin"):
        if (folder / CIFAR10_TEST_FILE).is_file() or (folder / CIFAR10_TRAIN_FILES[0]).is_file():
            return folder
    pickled = [directory / "data_batch_1", directory / "cifar-10-batches-py" / "data_batch_1"]
    if any(p.is_file() for p in pickled):
        raise ValueError(
            f"{directory} holds the python (pickle) version of CIFAR-10, which is never loaded "
            "because unpickling can run arbitrary code; use the binary version "
            "(cifar-10-binary.tar.gz, files data_batch_1.bin ... test_batch.bin)"
        )
    return directory


def load_cifar10(directory: str | os.PathLike) -> ImageDataset:
    """Load CIFAR-10 from the binary distribution in ``directory``.

    Parameters
    ----------
    directory : str or path-like
        Folder holding ``data_batch_1.bin`` ... ``data_batch_5.bin`` and ``test_batch.bin``,
        directly or in a ``cifar-10-batches-bin`` sub-folder.

    Returns
    -------
    ImageDataset
        ``train_images`` float32 (50000, 3, 32, 32) for the real data, pixel / 255 in [0, 1];
        labels int64 in 0..9.

    Raises
    ------
    FileNotFoundError
        If the folder or one of the six files is missing (the message names the expected path).
    ValueError
        If a file is corrupt (size not a multiple of 3,073 bytes, label out of range), or the
        folder holds only the pickle version.

    Examples
    --------
    The six files of a tiny CIFAR-10, two records each:

    >>> import tempfile
    >>> import numpy as np
    >>> records = np.zeros((2, 3073), np.uint8)
    >>> records[:, 0] = [3, 7]
    >>> records[1, 1:] = 255
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     for name in (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE):
    ...         records.tofile(f"{tmp}/{name}")
    ...     data = load_cifar10(tmp)
    >>> data
    ImageDataset(name='cifar10', train=10, test=2, image_shape=(3, 32, 32), n_classes=10)
    >>> CIFAR10_CLASSES[data.test_labels[1]], float(data.test_images[1].max())
    ('horse', 1.0)
    """
    folder = _find_folder(Path(directory))
    parts = []
    for name in (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE):
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(
                f"CIFAR-10 file {name!r} not found: expected {path} (the binary distribution "
                f"has {', '.join(CIFAR10_TRAIN_FILES)} and {CIFAR10_TEST_FILE}). CIFAR-10 is "
                "never downloaded"
            )
        parts.append(read_cifar10_batch(path))
    train_images = np.concatenate([p[0] for p in parts[:-1]])
    train_labels = np.concatenate([p[1] for p in parts[:-1]])
    test_images, test_labels = parts[-1]
    return image_dataset("cifar10", str(folder), (unit_pixels(train_images), train_labels),
                         (unit_pixels(test_images), test_labels))
