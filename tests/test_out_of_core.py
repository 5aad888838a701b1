"""Memory-mapped trajectories larger than what the call allocates: the Gram path and the PCA never
copy the data (they stream it through the page cache)."""

import tracemalloc

import numpy as np
from systems import match_error

from conjugacy import koopman_spectrum


def _memmapped(tmp_path, shape, seed=0):
    path = tmp_path / "runs.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=shape)
    rng = np.random.default_rng(seed)
    for i in range(shape[0]):
        out[i] = np.cumsum(rng.standard_normal(shape[1:]), axis=0)
    out.flush()
    del out
    return np.load(path, mmap_mode="r")


def _peak_during(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_gram_path_on_memory_mapped_data_allocates_far_less_than_the_data(tmp_path):
    data = _memmapped(tmp_path, (4, 40, 25_000))  # 32 MB on disk
    in_memory = np.array(data)
    ref = koopman_spectrum(in_memory, delays=3, rank=8, modes=False)
    peak = _peak_during(lambda: koopman_spectrum(data, delays=3, rank=8, modes=False))
    spec = koopman_spectrum(data, delays=3, rank=8, modes=False)
    assert spec.settings["path"] == "gram (streamed)"
    assert match_error(spec.eigenvalues, ref.eigenvalues) < 1e-12
    assert peak < 0.1 * data.nbytes


def test_pca_on_memory_mapped_data_allocates_far_less_than_the_data(tmp_path):
    data = _memmapped(tmp_path, (4, 40, 25_000), seed=1)
    ref = koopman_spectrum(np.array(data), delays=4, rank=6, pca=6)
    peak = _peak_during(lambda: koopman_spectrum(data, delays=4, rank=6, pca=6))
    spec = koopman_spectrum(data, delays=4, rank=6, pca=6)
    assert match_error(spec.eigenvalues, ref.eigenvalues) < 1e-10
    # the only feature-sized allocations are the (n_features, pca) components and their
    # temporaries: a few times r / n_snapshots = 6 / 160 of the data
    assert peak < 0.2 * data.nbytes


def test_subspace_path_on_memory_mapped_data_allocates_far_less_than_the_data(tmp_path):
    # 29 MB, long: the subspace path. Its allocations scale with n_pairs x (rank + oversampling)
    # (about 4 MB here), not with the data.
    data = _memmapped(tmp_path, (3, 2000, 600), seed=2)
    # the same path in memory (subspace == dense is tested in test_dmd.py)
    ref = koopman_spectrum(np.array(data), delays=6, rank=5, modes=False)
    peak = _peak_during(lambda: koopman_spectrum(data, delays=6, rank=5, modes=False))
    spec = koopman_spectrum(data, delays=6, rank=5, modes=False)
    assert spec.settings["path"] == "subspace"
    assert match_error(spec.eigenvalues, ref.eigenvalues) < 1e-9
    assert peak < 0.25 * data.nbytes


def test_nan_in_memory_mapped_data_is_found_in_blocks(tmp_path):
    data = _memmapped(tmp_path, (2, 30, 1000))
    writable = np.load(tmp_path / "runs.npy", mmap_mode="r+")
    writable[1, 17, 5] = np.nan
    writable.flush()
    import pytest

    from conjugacy._checks import check_finite

    with pytest.raises(ValueError, match=r"contains NaN at index \(17, 5\)"):
        check_finite(data[1], "x", block_bytes=8000)
