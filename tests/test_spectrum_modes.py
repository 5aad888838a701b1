"""Modes on request: Spectrum.with_modes refits with the recorded settings (issue 21, item 1)."""

import numpy as np
import pytest

from conjugacy import koopman_spectrum


def _walk(shape, seed=0):
    return np.cumsum(np.random.default_rng(seed).standard_normal(shape), axis=-2)


@pytest.mark.parametrize(
    ("shape", "delays", "path"),
    [((3, 20, 100), 2, "gram"), ((2, 300, 8), 6, "subspace"), ((2, 300, 4), 3, "covariance"),
     ((2, 30, 5), 1, "dense")],
)
def test_with_modes_equals_the_fit_with_modes(shape, delays, path):
    data = _walk(shape, seed=1)
    spec = koopman_spectrum(data, delays=delays, rank=5, path=path)
    assert spec.modes is None and spec.settings["path"] == path
    full = koopman_spectrum(data, delays=delays, rank=5, path=path, modes=True)
    got = spec.with_modes(data)
    np.testing.assert_allclose(got.modes, full.modes, rtol=0, atol=1e-12 * np.abs(full.modes).max())
    np.testing.assert_array_equal(got.eigenvalues, spec.eigenvalues)
    assert got.settings == spec.settings
    assert got.with_modes(data) is got  # modes already there: nothing recomputed


def test_with_modes_after_filtering_keeps_the_modes_of_the_kept_eigenvalues():
    t = np.arange(40)[:, None]
    runs = np.random.default_rng(0).normal(size=(5, 1, 3)) * np.power([0.9, 0.8, 0.5], t)
    noisy = runs + 1e-3 * np.random.default_rng(1).normal(size=runs.shape)
    spec = koopman_spectrum(noisy, delays=1, rank=4)
    kept = spec.filtered()
    assert kept.rank == 3
    full = koopman_spectrum(noisy, delays=1, rank=4, modes=True)
    got = kept.with_modes(noisy)
    index = [int(np.argmin(np.abs(full.eigenvalues - z))) for z in kept.eigenvalues]
    np.testing.assert_allclose(got.modes, full.modes[:, index], atol=1e-12)


def test_with_modes_refuses_other_data():
    data = _walk((3, 20, 100), seed=2)
    spec = koopman_spectrum(data, delays=2, rank=5)
    with pytest.raises(ValueError, match=r"^trajectories: not the data this spectrum was fitted on"):
        spec.with_modes(_walk((3, 20, 100), seed=3))
