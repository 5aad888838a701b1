"""Memory-mapped trajectories larger than what the call allocates: the Gram path and the PCA never
copy the data (they stream it through the page cache)."""

import tracemalloc

import numpy as np
import pytest
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


def _no_streamed_gram(monkeypatch):
    """A tiny memory limit, and a streamed Gram that must not start."""
    from conjugacy import spectrum_paths as paths

    monkeypatch.setattr(paths, "available_memory", lambda *a: (2**24, "a test's limit"))

    def refused(*args, **kwargs):
        raise AssertionError("the streamed Gram was started")

    monkeypatch.setattr(paths, "streamed_gram", refused)


def test_streamed_gram_path_is_refused_up_front_like_in_memory_data(tmp_path, monkeypatch):
    """Issue 21 review: memory-mapped data with path='gram' failed inside streamed_gram with
    NumPy's allocation error; every route now gives the in-memory one-line refusal."""
    import dask.array as da

    data = _memmapped(tmp_path, (1, 3000, 3))  # 3,000 snapshots: ~0.2 GiB of Grams
    _no_streamed_gram(monkeypatch)
    want = ("path='gram' needs ~0.2 GiB here (the 3,000 x 3,000 snapshot Gram and the 2,997 x "
            "2,997 delay Grams) but 16 MiB are available (a test's limit): use path='dense' "
            "(or 'auto')")
    for given in (np.array(data), data, [data[0]], da.from_array(np.array(data), chunks=(1, 3000, 1))):
        with pytest.raises(ValueError) as err:
            koopman_spectrum(given, delays=2, rank=3, path="gram")
        assert str(err.value) == want, type(given)
    with pytest.raises(ValueError) as err:  # with pca=, the projections' refusal, as in memory
        koopman_spectrum(data, delays=2, rank=2, path="gram", pca=2)
    assert str(err.value) == want
    with pytest.raises(ValueError) as err:
        koopman_spectrum(np.array(data), delays=2, rank=2, path="gram", pca=2)
    assert str(err.value) == want


def test_pca_of_tall_mapped_data_skips_a_gram_that_does_not_fit(tmp_path, monkeypatch):
    data = _memmapped(tmp_path, (1, 3000, 3))
    _no_streamed_gram(monkeypatch)
    spec = koopman_spectrum(data, delays=2, rank=2, pca=2)  # auto: the PCA in memory instead
    ref = koopman_spectrum(np.array(data), delays=2, rank=2, pca=2)
    assert spec.settings["path"] == ref.settings["path"] == "dense"
    np.testing.assert_array_equal(spec.eigenvalues, ref.eigenvalues)
