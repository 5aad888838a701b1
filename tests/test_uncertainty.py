"""Bootstrap intervals over trajectories (issue 9, item 5)."""

from __future__ import annotations

import numpy as np
import pytest

from conjugacy.uncertainty import bootstrap_distance, bootstrap_spectrum

LAM = np.array([0.95, 0.8, 0.6])


def _record(lam, seed, C, noise=0.005, n_traj=8):
    r = np.random.default_rng(seed)
    z0 = r.standard_normal((n_traj, 1, lam.size))
    x = (z0 * lam[None, None, :] ** np.arange(40)[None, :, None]) @ C
    return x + noise * np.abs(x).mean() * r.standard_normal(x.shape)


@pytest.fixture(scope="module")
def C():
    return np.random.default_rng(0).standard_normal((3, 12))


def test_intervals_cover_the_true_eigenvalues_and_are_deterministic(C):
    data = _record(LAM, 1, C)
    iv = bootstrap_spectrum(data, delays=4, rank=8, filter="default", n_boot=30, seed=3)
    assert len(iv.eigenvalues) == 3
    for z, re, mod in zip(iv.eigenvalues, iv.real, iv.modulus):
        true = LAM[np.argmin(np.abs(LAM - z))]
        assert re[0] <= true <= re[1]
        assert mod[0] <= mod[1]
    assert np.all(iv.matched >= 0.9)  # a resample may filter out a weakly supported eigenvalue
    again = bootstrap_spectrum(data, delays=4, rank=8, filter="default", n_boot=30, seed=3)
    np.testing.assert_array_equal(iv.samples, again.samples)
    with pytest.raises(ValueError):
        iv.real[0, 0] = 0  # read-only record
    assert "EigenvalueIntervals" in repr(iv)


def test_distance_interval_separates_a_different_system(C):
    same = bootstrap_distance(_record(LAM, 1, C), _record(LAM, 2, C), delays=4, rank=8, n_boot=30)
    diff = bootstrap_distance(
        _record(LAM, 1, C), _record(LAM - 0.1, 3, C), delays=4, rank=8, n_boot=30
    )
    assert same.low <= same.distance <= same.high or same.distance < same.high
    assert diff.low > same.high
    assert diff.distance == pytest.approx(0.1, abs=0.02)
    assert len(diff.samples) == 30


def test_bootstrap_errors_name_the_argument(C):
    data = _record(LAM, 1, C)
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_spectrum(data[:1], delays=2)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_spectrum(data, n_boot=1)
    with pytest.raises(ValueError, match="level"):
        bootstrap_distance(data, data, level=1.5)
    with pytest.raises(ValueError, match="filter"):
        bootstrap_spectrum(data, filter="strict")


def test_plot_eigenvalues_draws_intervals(C):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from conjugacy.plots import plot_eigenvalues

    iv = bootstrap_spectrum(_record(LAM, 1, C), delays=4, rank=8, filter="default", n_boot=10)
    ax = plot_eigenvalues({"A": iv.spectrum}, intervals={"A": iv})
    assert len(ax.containers) == 1  # one errorbar container
