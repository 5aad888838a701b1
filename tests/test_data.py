"""Tests of the offline dataset loaders: digits, MNIST IDX files and the CIFAR-10 binary format.

The MNIST and CIFAR-10 tests write tiny files in the real formats themselves.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from conjugacy.data import (
    ImageDataset,
    load_cifar10,
    load_digits,
    load_image_dataset,
    load_mnist,
    read_cifar10_batch,
    read_idx,
)
from conjugacy.data.mnist import MNIST_FILES


def idx_bytes(arr: np.ndarray, type_code: int = 0x08) -> bytes:
    """Serialise ``arr`` in the IDX format (independent of the reader under test)."""
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    header = bytes([0, 0, type_code, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
    return header + np.asarray(arr, dtype=dtypes[type_code]).tobytes()


def write_mnist(folder: Path, *, gz: bool, n_train: int = 7, n_test: int = 3, side: int = 28):
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for role, name in MNIST_FILES.items():
        data = idx_bytes(arrays[role])
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


# ------------------------------------------------------------------------------------ digits
def test_digits_shapes_range_and_split():
    ds = load_digits()
    assert isinstance(ds, ImageDataset)
    assert ds.image_shape == (8, 8) and ds.n_features == 64 and ds.n_classes == 10
    assert ds.train_images.shape[0] + ds.test_images.shape[0] == 1797
    assert ds.test_images.shape[0] == round(0.2 * 1797)
    assert ds.train_images.dtype == np.float32 and ds.train_labels.dtype == np.int64
    assert ds.train_images.min() == 0.0 and ds.train_images.max() == 1.0
    assert set(np.unique(ds.train_labels)) == set(range(10))
    assert ds.features("train").shape == (ds.train_images.shape[0], 64)
    assert not ds.train_images.flags.writeable


def test_digits_values_match_sklearn_and_split_is_a_partition():
    from sklearn.datasets import load_digits as sk

    raw = sk()
    ds = load_digits(test_fraction=0.0)
    # test_fraction=0 keeps the original order: pixels are exactly raw / 16
    np.testing.assert_array_equal(ds.train_images, (raw.images / 16).astype(np.float32))
    np.testing.assert_array_equal(ds.train_labels, raw.target)
    a, b = load_digits(seed=3), load_digits(seed=3)
    np.testing.assert_array_equal(a.train_images, b.train_images)
    c = load_digits(seed=4)
    assert not np.array_equal(a.train_labels, c.train_labels)
    # the split is a partition: pooled pixel sums are the same as the full set
    total = a.train_images.sum(dtype=np.float64) + a.test_images.sum(dtype=np.float64)
    assert total == pytest.approx(ds.train_images.sum(dtype=np.float64))


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"test_fraction": 1.0}, ValueError, "test_fraction"),
        ({"test_fraction": "0.2"}, TypeError, "test_fraction"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_digits_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        load_digits(**kwargs)


# --------------------------------------------------------------------------------- IDX / MNIST
@pytest.mark.parametrize(
    ("code", "dtype"),
    [
        (0x08, np.uint8),
        (0x09, np.int8),
        (0x0B, np.int16),
        (0x0C, np.int32),
        (0x0D, np.float32),
        (0x0E, np.float64),
    ],
)
def test_read_idx_every_type_round_trips(tmp_path, code, dtype):
    arr = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if code == 0x08:
        arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "x.idx"
    path.write_bytes(idx_bytes(arr, code))
    out = read_idx(path)
    assert out.shape == (2, 3, 4) and out.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(out, arr)


def test_read_idx_known_bytes(tmp_path):
    # header 00 00 08 02, dims 2 and 3, then 6 bytes: exact expected values
    path = tmp_path / "m"
    path.write_bytes(bytes.fromhex("000008020000000200000003010203040506"))
    np.testing.assert_array_equal(read_idx(path), [[1, 2, 3], [4, 5, 6]])


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_plain_and_gzipped(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz=gz)
    ds = load_mnist(tmp_path)
    assert ds.name == "mnist" and ds.image_shape == (28, 28) and ds.n_features == 784
    np.testing.assert_array_equal(ds.train_images, arrays["train_images"] / np.float32(255))
    np.testing.assert_array_equal(ds.test_labels, arrays["test_labels"])
    assert ds.train_images.dtype == np.float32 and ds.train_labels.dtype == np.int64
    assert 0.0 <= ds.train_images.min() and ds.train_images.max() <= 1.0


def test_load_mnist_torchvision_layout(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", gz=True)
    assert load_mnist(tmp_path).train_images.shape == (7, 28, 28)


def test_load_mnist_missing_file_names_expected_path(tmp_path):
    write_mnist(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte") as info:
        load_mnist(tmp_path)
    assert str(tmp_path / "t10k-labels-idx1-ubyte") in str(info.value)
    assert ".gz" in str(info.value)


def test_load_mnist_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_mnist(tmp_path / "nowhere")


def test_bad_magic_number(tmp_path):
    write_mnist(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[0:4] = b"\x12\x34\x08\x03"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="bad magic number 0x12340803") as info:
        load_mnist(tmp_path)
    assert str(path) in str(info.value)


def test_truncated_idx_plain_and_gzipped(tmp_path):
    arr = np.zeros((4, 5, 5), np.uint8)
    plain = tmp_path / "a"
    plain.write_bytes(idx_bytes(arr)[:-7])
    with pytest.raises(ValueError, match=r"truncated IDX file.*100 data bytes.*93 byte"):
        read_idx(plain)
    gz = tmp_path / "b.gz"
    gz.write_bytes(gzip.compress(idx_bytes(arr)[:-7]))
    with pytest.raises(ValueError, match="truncated IDX file"):
        read_idx(gz)
    header_only = tmp_path / "c"
    header_only.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(ValueError, match="announces 3 dimensions"):
        read_idx(header_only)
    empty = tmp_path / "d"
    empty.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="magic number is incomplete"):
        read_idx(empty)


def test_trailing_bytes_and_corrupt_gzip(tmp_path):
    arr = np.zeros((2, 2), np.uint8)
    extra = tmp_path / "e"
    extra.write_bytes(idx_bytes(arr) + b"\x00")
    with pytest.raises(ValueError, match="bytes after"):
        read_idx(extra)
    corrupt = tmp_path / "f.gz"
    corrupt.write_bytes(gzip.compress(idx_bytes(arr))[:12])
    with pytest.raises(ValueError, match="f.gz"):
        read_idx(corrupt)


def test_huge_header_is_refused_without_allocating(tmp_path):
    path = tmp_path / "g"
    path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 60000, 60000, 60000))
    with pytest.raises(ValueError, match="header is probably corrupt"):
        read_idx(path)


def test_header_overflow_and_too_many_dimensions_name_the_file(tmp_path):
    # four dimensions of 2**32 - 1 overflow an int64 product; 2**16 each wraps it to 0
    for name, dims in (("max", [0xFFFFFFFF] * 4), ("wrap", [65536] * 4)):
        path = tmp_path / name
        path.write_bytes(bytes([0, 0, 8, 4]) + struct.pack(">4I", *dims))
        with pytest.raises(ValueError, match=f"{name}: the IDX header announces shape"):
            read_idx(path)
    for gz in (False, True):
        path = tmp_path / ("d255.gz" if gz else "d255")
        data = bytes([0, 0, 8, 255]) + struct.pack(">255I", *([1] * 255)) + b"\x07"
        path.write_bytes(gzip.compress(data) if gz else data)
        with pytest.raises(ValueError, match=f"{path}: the IDX header announces 255 dimensions; "
                                             "at most 32"):
            read_idx(path)


def test_read_idx_fuzz_only_named_value_errors(tmp_path):
    """300 seeded mutations of plain and gzipped IDX files: read, or ValueError naming the file."""
    from test_fuzz import mutate  # tests/ is on sys.path, as for `systems`

    rng = np.random.default_rng(13)
    base = idx_bytes(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))
    outcomes = {"ok": 0, "clean": 0}
    for i in range(300):
        data = mutate(base, rng, focus=24 if i % 2 else None)
        path = tmp_path / f"m{i}"
        path.write_bytes(gzip.compress(data) if i % 3 == 0 else data)
        if i % 5 == 0:  # damage the compressed stream itself
            path.write_bytes(mutate(gzip.compress(data), rng))
        try:
            read_idx(path)
            outcomes["ok"] += 1
        except ValueError as exc:
            assert str(path) in str(exc), exc
            outcomes["clean"] += 1
    assert outcomes["clean"] > 150, outcomes


def test_mnist_wrong_roles_are_rejected(tmp_path):
    write_mnist(tmp_path, gz=False)
    # labels file swapped for an images file: wrong number of dimensions
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(
        (tmp_path / "train-images-idx3-ubyte").read_bytes()
    )
    with pytest.raises(ValueError, match="expected MNIST labels"):
        load_mnist(tmp_path)
    write_mnist(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(6, np.uint8)))
    with pytest.raises(ValueError, match="holds 6 labels but .* holds 7 images"):
        load_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(7, 12, np.uint8)))
    with pytest.raises(ValueError, match="labels must be digits 0..9, found 12"):
        load_mnist(tmp_path)


# ---------------------------------------------------------------------------------- CIFAR-10
def write_cifar(folder: Path, n_per_file: int = 2):
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name in names:
        labels = rng.integers(0, 10, n_per_file, dtype=np.uint8)
        pixels = rng.integers(0, 256, (n_per_file, 3072), dtype=np.uint8)
        records = np.concatenate([labels[:, None], pixels], axis=1)
        (folder / name).write_bytes(records.tobytes())
        written[name] = (labels, pixels)
    return written


def test_cifar_binary_layout(tmp_path):
    written = write_cifar(tmp_path)
    ds = load_cifar10(tmp_path)
    assert ds.name == "cifar10" and ds.image_shape == (3, 32, 32) and ds.n_features == 3072
    assert ds.train_images.shape == (10, 3, 32, 32) and ds.test_images.shape == (2, 3, 32, 32)
    labels, pixels = written["data_batch_1.bin"]
    np.testing.assert_array_equal(ds.train_labels[:2], labels)
    # record layout: the red plane (1024 bytes, row-major), then green, then blue
    assert ds.train_images[0, 0, 0, 0] == np.float32(pixels[0, 0]) / np.float32(255)
    assert ds.train_images[0, 0, 0, 1] == np.float32(pixels[0, 1]) / np.float32(255)
    assert ds.train_images[0, 0, 1, 0] == np.float32(pixels[0, 32]) / np.float32(255)
    assert ds.train_images[0, 1, 0, 0] == np.float32(pixels[0, 1024]) / np.float32(255)
    assert ds.train_images[1, 2, 31, 31] == np.float32(pixels[1, 3071]) / np.float32(255)
    np.testing.assert_array_equal(ds.test_labels, written["test_batch.bin"][0])
    # the training files are concatenated in order 1..5
    np.testing.assert_array_equal(ds.train_labels[8:], written["data_batch_5.bin"][0])


def test_cifar_subfolder_and_errors(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-bin")
    assert load_cifar10(tmp_path).train_images.shape[0] == 10
    (tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3.bin") as info:
        load_cifar10(tmp_path)
    assert str(tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin") in str(info.value)


def test_cifar_truncated_and_bad_label(tmp_path):
    write_cifar(tmp_path)
    path = tmp_path / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"3073-byte records.*6145 bytes.*3072 byte\(s\) left"):
        load_cifar10(tmp_path)
    record = bytes([11]) + bytes(3072)
    path.write_bytes(record)
    with pytest.raises(ValueError, match="record 0 has label 11"):
        read_cifar10_batch(path)


def test_cifar_batch_fuzz_only_named_value_errors(tmp_path):
    """150 seeded mutations of a 3-record batch: read, or ValueError naming the file."""
    from test_fuzz import mutate  # tests/ is on sys.path, as for `systems`

    rng = np.random.default_rng(17)
    labels = rng.integers(0, 10, (3, 1), dtype=np.uint8)
    base = np.concatenate([labels, rng.integers(0, 256, (3, 3072), dtype=np.uint8)], 1).tobytes()
    clean = 0
    for i in range(150):
        path = tmp_path / f"b{i}.bin"
        path.write_bytes(mutate(base, rng, focus=None if i % 2 else 8))
        try:
            images, got = read_cifar10_batch(path)
            assert images.shape[1:] == (3, 32, 32) and got.max() <= 9
        except ValueError as exc:
            assert str(path) in str(exc), exc
            clean += 1
    assert clean > 50


def test_cifar_pickle_version_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"\x80\x04not-to-be-unpickled")
    with pytest.raises(ValueError, match="pickle"):
        load_cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_cifar10(tmp_path / "missing")


def test_load_image_dataset_dispatch(tmp_path):
    assert load_image_dataset("digits").name == "digits"
    with pytest.raises(ValueError, match="nothing is downloaded"):
        load_image_dataset("mnist")
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_image_dataset("imagenet")
    write_mnist(tmp_path, gz=True, side=4)
    assert load_image_dataset("mnist", tmp_path).n_features == 16
