"""MNIST from the standard IDX files (LeCun et al.), gzipped or not, in a folder the user names.

Nothing is downloaded. The folder must hold the four files of the original distribution, each
either plain or gzipped::

    train-images-idx3-ubyte[.gz]  train-labels-idx1-ubyte[.gz]
    t10k-images-idx3-ubyte[.gz]   t10k-labels-idx1-ubyte[.gz]

(torchvision's ``MNIST/raw`` sub-folder of that folder is also searched). The IDX format: a 4-byte
magic number ``0x00 0x00 <type code> <number of dimensions>``, then each dimension as a big-endian
uint32, then the values in big-endian, C order.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ._images import ImageDataset, frozen, image_dataset, unit_pixels

__all__ = ["MNIST_FILES", "find_mnist_file", "load_mnist", "read_idx"]

#: The four files of the MNIST distribution, by role.
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# IDX type code -> big-endian NumPy dtype
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_MAX_BYTES = 1 << 31  # refuse headers that announce more than 2 GiB (a corrupt or hostile file)
_MAX_NDIM = 32  # NumPy's portable limit on array dimensions (the IDX byte allows 255)


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (plain or gzip-compressed) into a native-endian array.

    Parameters
    ----------
    path : str or path-like
        The file. Gzip compression is detected from the content, not the name.

    Returns
    -------
    ndarray
        Shape and dtype as declared by the header (uint8 for MNIST), read-only.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not IDX (bad magic number, unknown type code), is truncated, has bytes
        after the declared data, or is a corrupt gzip stream. The message names the file.

    Examples
    --------
    A 2 x 3 unsigned-byte array: magic ``00 00 08 02``, the dimensions as big-endian uint32,
    then the values:

    >>> import struct, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with open(f"{tmp}/tiny-idx2-ubyte", "wb") as f:
    ...         _ = f.write(bytes([0, 0, 8, 2]) + struct.pack(">2I", 2, 3) + bytes(range(6)))
    ...     read_idx(f"{tmp}/tiny-idx2-ubyte")
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    compressed = _is_gzip(path)
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rb") as f:
            magic = f.read(4)
            if len(magic) < 4:
                raise ValueError(
                    f"{path}: truncated IDX file, the 4-byte magic number is incomplete "
                    f"({len(magic)} byte(s) in the file)"
                )
            if magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES or magic[3] == 0:
                raise ValueError(
                    f"{path}: bad magic number 0x{magic.hex()} for an IDX file; expected "
                    "0x0000TTNN with type TT in {08, 09, 0b, 0c, 0d, 0e} and NN >= 1 dimensions "
                    "(e.g. 0x00000803 for MNIST images, 0x00000801 for labels)"
                )
            dtype = _IDX_TYPES[magic[2]]
            ndim = magic[3]
            if ndim > _MAX_NDIM:
                raise ValueError(
                    f"{path}: the IDX header announces {ndim} dimensions; at most {_MAX_NDIM} are "
                    "supported (MNIST images have 3, labels 1); the header is probably corrupt"
                )
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise ValueError(
                    f"{path}: truncated IDX file, the header announces {ndim} dimensions "
                    f"but holds only {len(raw_dims)} of their {4 * ndim} bytes"
                )
            shape = struct.unpack(f">{ndim}I", raw_dims)
            n_bytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
            if n_bytes > _MAX_BYTES:
                raise ValueError(
                    f"{path}: the IDX header announces shape {shape} ({n_bytes} bytes), larger "
                    "than any MNIST file; the header is probably corrupt"
                )
            if not compressed:
                available = path.stat().st_size - 4 - 4 * ndim
                if available < n_bytes:
                    raise ValueError(
                        f"{path}: truncated IDX file, the header announces shape {shape} "
                        f"({n_bytes} data bytes) but only {available} byte(s) follow it"
                    )
            data = f.read(n_bytes)
            if len(data) < n_bytes:
                raise ValueError(
                    f"{path}: truncated IDX file, the header announces shape {shape} "
                    f"({n_bytes} data bytes) but only {len(data)} byte(s) follow it"
                )
            extra = f.read(1)
            if extra:
                raise ValueError(
                    f"{path}: the IDX file has bytes after the {n_bytes} data bytes announced by "
                    f"its header (shape {shape}); it is corrupt or not an IDX file"
                )
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        kind = "gzip-compressed " if compressed else ""
        raise ValueError(f"{path}: could not read the {kind}IDX file: {exc}") from None
    arr = np.frombuffer(data, dtype=dtype).reshape(shape)
    return frozen(arr.astype(dtype.newbyteorder("="), copy=False))


def find_mnist_file(directory: str | os.PathLike, name: str) -> Path:
    """Locate one MNIST file, plain or ``.gz``, in ``directory`` (or its ``MNIST/raw``).

    Returns
    -------
    Path
        The first of ``directory/name``, ``directory/name.gz``, ``directory/MNIST/raw/name``
        and ``directory/MNIST/raw/name.gz`` that is a file.

    Raises
    ------
    FileNotFoundError
        Naming every path that was tried.

    Examples
    --------
    A gzipped file in the ``MNIST/raw`` layout that torchvision writes:

    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     raw = Path(tmp, "MNIST", "raw")
    ...     raw.mkdir(parents=True)
    ...     _ = (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")
    ...     found = find_mnist_file(tmp, "t10k-labels-idx1-ubyte")
    ...     found.relative_to(tmp).as_posix()
    'MNIST/raw/t10k-labels-idx1-ubyte.gz'
    """
    directory = Path(directory)
    tried = []
    for folder in (directory, directory / "MNIST" / "raw"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            tried.append(candidate)
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(
        f"MNIST file {name!r} not found: expected {tried[0]} or {tried[1]} (the standard IDX "
        "files from the MNIST distribution, gzipped or not). MNIST is never downloaded; use "
        "--data digits for the bundled offline dataset"
    )


def _check_images(arr: np.ndarray, path: Path) -> None:
    if arr.dtype != np.uint8 or arr.ndim != 3:
        raise ValueError(
            f"{path}: expected MNIST images, an unsigned-byte IDX array of 3 dimensions "
            f"(n, rows, cols), got dtype {arr.dtype} with shape {arr.shape}"
        )


def _check_labels(arr: np.ndarray, path: Path, n_images: int, image_path: Path) -> None:
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise ValueError(
            f"{path}: expected MNIST labels, an unsigned-byte IDX array of 1 dimension, "
            f"got dtype {arr.dtype} with shape {arr.shape}"
        )
    if arr.shape[0] != n_images:
        raise ValueError(
            f"{path} holds {arr.shape[0]} labels but {image_path} holds {n_images} images; "
            "they must match"
        )
    if arr.size and int(arr.max()) > 9:
        raise ValueError(f"{path}: labels must be digits 0..9, found {int(arr.max())}")


def load_mnist(directory: str | os.PathLike) -> ImageDataset:
    """Load MNIST from the four standard IDX files in ``directory``.

    Parameters
    ----------
    directory : str or path-like
        Folder holding ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
        ``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]``.

    Returns
    -------
    ImageDataset
        ``train_images`` float32 (60000, 28, 28) for the real MNIST, pixel / 255 in [0, 1];
        labels int64. Any image size is accepted as long as train and test agree.

    Raises
    ------
    FileNotFoundError
        If the folder or one of the files is missing (the message names the expected paths).
    ValueError
        If a file is corrupt (bad magic number, truncated), has the wrong type or shape, or
        labels and images disagree.

    Examples
    --------
    A folder with the four files of a tiny MNIST (3 training and 2 test images):

    >>> import struct, tempfile
    >>> import numpy as np
    >>> def write_idx(path, arr):
    ...     arr = np.asarray(arr, np.uint8)
    ...     header = bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    ...     with open(path, "wb") as f:
    ...         _ = f.write(header + arr.tobytes())
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     for prefix, n in (("train", 3), ("t10k", 2)):
    ...         write_idx(f"{tmp}/{prefix}-images-idx3-ubyte", np.full((n, 28, 28), 255))
    ...         write_idx(f"{tmp}/{prefix}-labels-idx1-ubyte", np.arange(n))
    ...     data = load_mnist(tmp)
    >>> data
    ImageDataset(name='mnist', train=3, test=2, image_shape=(28, 28), n_classes=10)
    >>> float(data.train_images.max()), data.train_labels
    (1.0, array([0, 1, 2]))
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"MNIST folder not found: {directory} is not a directory; it must hold the IDX files "
            + ", ".join(f"{n}[.gz]" for n in MNIST_FILES.values())
        )
    paths = {role: find_mnist_file(directory, name) for role, name in MNIST_FILES.items()}
    arrays = {}
    for split in ("train", "test"):
        img_path, lab_path = paths[f"{split}_images"], paths[f"{split}_labels"]
        images = read_idx(img_path)
        _check_images(images, img_path)
        labels = read_idx(lab_path)
        _check_labels(labels, lab_path, images.shape[0], img_path)
        arrays[split] = (unit_pixels(images), labels.astype(np.int64))
    if arrays["train"][0].shape[1:] != arrays["test"][0].shape[1:]:
        raise ValueError(
            f"MNIST train images are {arrays['train'][0].shape[1:]} but test images are "
            f"{arrays['test'][0].shape[1:]} ({paths['train_images']}, {paths['test_images']})"
        )
    return image_dataset("mnist", str(directory), arrays["train"], arrays["test"])
