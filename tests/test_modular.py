"""Tests of the modular addition data (conjugacy.data.modular)."""

from __future__ import annotations

import numpy as np
import pytest

from conjugacy.data.modular import modular_addition


def test_paper_split_sizes() -> None:
    data = modular_addition()  # p = 113, 30 %
    assert data.train_inputs.shape == (3830, 3)
    assert data.test_inputs.shape == (12769 - 3830, 3)
    assert data.train_labels.shape == (3830,)
    assert data.vocab_size == 114
    assert data.equals_token == 113
    assert data.train_inputs.dtype == np.int64 and data.train_labels.dtype == np.int64


def test_labels_and_tokens_are_correct() -> None:
    data = modular_addition(modulus=23, train_fraction=0.4, seed=3)
    for x, y in [(data.train_inputs, data.train_labels), (data.test_inputs, data.test_labels)]:
        assert np.all(x[:, 2] == 23)
        assert np.all((x[:, :2] >= 0) & (x[:, :2] < 23))
        np.testing.assert_array_equal(y, (x[:, 0] + x[:, 1]) % 23)


def test_split_is_a_partition_of_all_pairs() -> None:
    data = modular_addition(modulus=17, train_fraction=0.3, seed=1)
    pairs = np.concatenate([data.train_inputs[:, :2], data.test_inputs[:, :2]])
    codes = pairs[:, 0] * 17 + pairs[:, 1]
    np.testing.assert_array_equal(np.sort(codes), np.arange(17 * 17))
    assert len(data.train_inputs) == int(0.3 * 17 * 17)


def test_split_is_deterministic_and_depends_on_seed() -> None:
    a, b = modular_addition(seed=5), modular_addition(seed=5)
    np.testing.assert_array_equal(a.train_inputs, b.train_inputs)
    np.testing.assert_array_equal(a.test_labels, b.test_labels)
    c = modular_addition(seed=6)
    assert not np.array_equal(a.train_inputs, c.train_inputs)


def test_arrays_are_read_only() -> None:
    data = modular_addition(modulus=7)
    with pytest.raises(ValueError):
        data.train_inputs[0, 0] = 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"modulus": 1}, ValueError, "modulus"),
        ({"modulus": 5.0}, TypeError, "modulus"),
        ({"modulus": True}, TypeError, "modulus"),
        ({"train_fraction": 0.0}, ValueError, "train_fraction"),
        ({"train_fraction": 1.0}, ValueError, "train_fraction"),
        ({"train_fraction": "a"}, TypeError, "train_fraction"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        modular_addition(**kwargs)
