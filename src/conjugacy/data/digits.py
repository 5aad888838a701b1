"""scikit-learn's bundled 8x8 handwritten digits: the offline default dataset.

The 1,797 images (UCI "Optical Recognition of Handwritten Digits", 16 grey levels) ship inside
scikit-learn, so nothing is downloaded. Pixels are scaled from 0..16 to [0, 1]; a seeded
permutation splits them into train and test sets.
"""

from __future__ import annotations

import numpy as np

from ._images import ImageDataset, check_split, image_dataset

__all__ = ["load_digits"]


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> ImageDataset:
    """Load the 8x8 digits with a deterministic train/test split.

    Parameters
    ----------
    test_fraction : float
        Fraction of the 1,797 images held out for testing, in [0, 1). The test set has
        ``round(test_fraction * 1797)`` images (``0.2`` gives 1,438 train / 359 test).
    seed : int
        Seed (>= 0) of the NumPy ``default_rng`` permutation that chooses the split.

    Returns
    -------
    ImageDataset
        ``train_images`` float32 (n_train, 8, 8) in [0, 1]; labels int64 in 0..9.

    Raises
    ------
    ImportError
        If scikit-learn is not installed (``pip install 'conjugacy[data]'``).
    TypeError, ValueError
        If an argument has the wrong type or is out of range.

    Examples
    --------
    >>> data = load_digits(test_fraction=0.2, seed=0)
    >>> data.train_images.shape, data.test_images.shape, float(data.train_images.max())
    ((1438, 8, 8), (359, 8, 8), 1.0)
    """
    check_split(test_fraction, seed)
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the digits dataset ships with scikit-learn, which is not installed; "
            "install it with: pip install 'conjugacy[data]'"
        ) from exc

    bunch = _sk_load_digits()
    images = (np.asarray(bunch.images, dtype=np.float64) / 16.0).astype(np.float32)
    labels = np.asarray(bunch.target, dtype=np.int64)
    n = images.shape[0]
    n_test = int(round(float(test_fraction) * n))
    order = np.random.default_rng(int(seed)).permutation(n)
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    return image_dataset("digits", "scikit-learn bundled digits (sklearn.datasets.load_digits)",
                         (images[train], labels[train]), (images[test], labels[test]))
