"""Streaming trajectories larger than memory (issue 15): one pass over feature blocks, float32
cast block by block, dask arrays and torch devices giving the NumPy results, BLAS threads."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from systems import match_error

from conjugacy import koopman_spectrum
from conjugacy.streaming import ArraySource, BlockPool, streamed_gram
from conjugacy.threads import auto_threads, blas_threads, one_core_for_reading


def _walks(shape, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.standard_normal(shape), axis=1).astype(dtype)


def _npy(tmp_path, data, name="runs.npy"):
    np.save(tmp_path / name, data)
    return np.load(tmp_path / name, mmap_mode="r")


def _peak(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_float32_memmap_is_cast_block_by_block(tmp_path):
    # issue 13 section 2: a float32 file was copied whole into RAM as float64 (peak 2.06x)
    data32 = _walks((4, 40, 25_000), dtype=np.float32)
    mapped = _npy(tmp_path, data32)
    ref = koopman_spectrum(data32.astype(np.float64), delays=3, rank=8, modes=False, path="dense")
    spec, peak = _peak(lambda: koopman_spectrum(mapped, delays=3, rank=8))
    assert spec.settings["path"] == "gram (streamed)"
    assert match_error(spec.eigenvalues, ref.eigenvalues) < 1e-9
    assert peak < 0.25 * mapped.nbytes
    assert spec.settings["input_eps"] == pytest.approx(np.finfo(np.float32).eps)


def test_streamed_modes_equal_in_memory_modes(tmp_path):
    data = _walks((3, 30, 2_000), seed=1)
    mapped = _npy(tmp_path, data)
    ref = koopman_spectrum(data, delays=2, rank=5, modes=True, path="gram")
    spec = koopman_spectrum(mapped, delays=2, rank=5, modes=True)
    assert spec.settings["path"] == "gram (streamed)"
    np.testing.assert_allclose(spec.eigenvalues, ref.eigenvalues, atol=1e-12)
    np.testing.assert_allclose(spec.modes, ref.modes, atol=1e-9 * np.abs(ref.modes).max())
    np.testing.assert_allclose(spec.data_residuals, ref.data_residuals, atol=1e-10)
    assert koopman_spectrum(mapped, delays=2, rank=5).modes is None  # the default: no modes
    auto = koopman_spectrum(mapped, delays=2, rank=5, modes="auto")
    assert auto.modes is None and any("modes not computed" in n for n in auto.settings["notes"])


def test_streamed_pca_equals_in_memory_pca(tmp_path):
    data = 5.0 + _walks((3, 30, 3_000), seed=2)
    mapped = _npy(tmp_path, data)
    for center in (True, False):
        ref = koopman_spectrum(data, delays=3, rank=6, pca=6, pca_center=center)
        spec = koopman_spectrum(mapped, delays=3, rank=6, pca=6, pca_center=center)
        assert match_error(spec.eigenvalues, ref.eigenvalues) < 1e-9


def test_nan_in_a_memmap_is_named_while_streaming(tmp_path):
    data = _walks((2, 20, 5_000), seed=3)
    data[1, 7, 4321] = np.nan
    mapped = _npy(tmp_path, data)
    with pytest.raises(ValueError, match=r"trajectories\[1\] .* step 7, feature 4321"):
        koopman_spectrum(mapped, delays=1, rank=3)


def test_streamed_gram_is_one_pass_and_exact():
    data = _walks((3, 10, 1_000), seed=4)
    reads = {"n": 0}

    class Counting(ArraySource):
        def blocks(self, block_bytes):
            for features, z in super().blocks(block_bytes):
                reads["n"] += features.stop - features.start
                yield features, z

    gram, offsets = streamed_gram(Counting(data), block_bytes=8 * 30 * 100)
    z = data.reshape(30, 1_000)
    ref = z @ z.T  # summed in another order: equal to rounding relative to the largest entry
    np.testing.assert_allclose(gram, ref, rtol=1e-12, atol=1e-13 * np.abs(ref).max())
    assert reads["n"] == 1_000  # every feature read exactly once
    np.testing.assert_array_equal(offsets, [0, 10, 20, 30])


def test_dask_array_on_a_local_cluster_equals_numpy():
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("dask.distributed")
    data = _walks((3, 20, 3_000), seed=5)
    ref = koopman_spectrum(data, delays=2, rank=6)
    with distributed.LocalCluster(n_workers=2, processes=False, dashboard_address=":0") as cluster:
        with distributed.Client(cluster):
            arr = da.from_array(data, chunks=(3, 20, 500))
            spec = koopman_spectrum(arr, delays=2, rank=6)
            pca = koopman_spectrum(arr, delays=2, rank=5, pca=5)
    assert spec.settings["path"] == "gram (streamed)"
    assert match_error(spec.eigenvalues, ref.eigenvalues) < 1e-10
    pca_ref = koopman_spectrum(data, delays=2, rank=5, pca=5)
    assert match_error(pca.eigenvalues, pca_ref.eigenvalues) < 1e-9


def test_torch_device_gives_the_numpy_result():
    pytest.importorskip("torch")
    data = _walks((3, 20, 2_000), seed=6)
    ref = koopman_spectrum(data, delays=2, rank=6)
    spec = koopman_spectrum(data, delays=2, rank=6, device="cpu")
    assert match_error(spec.eigenvalues, ref.eigenvalues) < 1e-10
    with pytest.raises(TypeError, match="device"):
        koopman_spectrum(data, delays=2, rank=6, device=3)


def test_threads_setting():
    from threadpoolctl import threadpool_info

    with blas_threads(1) as n:
        assert n == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
    assert 1 <= auto_threads()
    from unittest import mock

    with mock.patch("os.cpu_count", return_value=2):
        assert auto_threads(0.0) == 2 and auto_threads(1.0) == 2  # idle, or only the caller
        assert auto_threads(2.0) == 1 and auto_threads(14.0) == 1  # another job, heavy load
    with mock.patch("os.cpu_count", return_value=16):
        assert auto_threads(5.0) == 12
    with pytest.raises(ValueError, match="threads"):
        koopman_spectrum(_walks((2, 10, 3)), threads=0)
    a = koopman_spectrum(_walks((2, 30, 40), seed=7), delays=1, rank=4, threads=1)
    b = koopman_spectrum(_walks((2, 30, 40), seed=7), delays=1, rank=4, threads=None)
    np.testing.assert_allclose(a.eigenvalues, b.eigenvalues, atol=1e-12)


def test_prefetching_reads_give_the_same_gram_and_errors(tmp_path, monkeypatch):
    import conjugacy.streaming as streaming

    data = _walks((3, 20, 4_000), seed=8)
    mapped = _npy(tmp_path, data)
    plain, _ = streamed_gram(ArraySource(mapped), block_bytes=8 * 60 * 500)
    monkeypatch.setattr(streaming, "PREFETCH_BYTES", 0)
    ahead, _ = streamed_gram(ArraySource(mapped), block_bytes=8 * 60 * 500)
    np.testing.assert_array_equal(ahead, plain)
    bad = data.copy()
    bad[2, 3, 3999] = np.inf
    with pytest.raises(ValueError, match=r"trajectories\[2\] .* step 3, feature 3999"):
        streamed_gram(ArraySource(_npy(tmp_path, bad, "bad.npy")), block_bytes=8 * 60 * 500)


def test_overflowing_squared_norms_are_an_error_not_a_silent_inf(tmp_path):
    # NaN/Inf are caught from the Gram's diagonal; finite values whose squares overflow make it
    # infinite too, and no block holds a non-finite value: that is said, not located
    data = _walks((2, 20, 3_000), seed=5)
    data[0, 3, 17] = 1e200
    with pytest.raises(ValueError, match="overflows float64"):
        koopman_spectrum(_npy(tmp_path, data), delays=1, rank=3)


def test_inf_in_a_memmap_is_named():
    data = _walks((3, 12, 800), seed=6)
    data[2, 11, 799] = -np.inf
    with pytest.raises(ValueError, match=r"trajectories\[2\] .* step 11, feature 799"):
        streamed_gram(ArraySource(data))


def test_block_pool_reuses_three_buffers_in_turn():
    pool = BlockPool(4, 10, np.float64)
    first = [pool.take(10) for _ in range(3)]
    again = pool.take(7)
    assert again.shape == (4, 7) and again.flags.c_contiguous
    assert np.shares_memory(again, first[0])
    assert not any(np.shares_memory(a, b) for a, b in [(first[0], first[1]), (first[1], first[2])])


def test_one_core_is_left_to_the_reader():
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas():
        return max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")

    with threadpool_limits(2):
        with one_core_for_reading():
            assert blas() == 1
        assert blas() == 2
    with threadpool_limits(1), one_core_for_reading():
        assert blas() == 1


def test_underflowing_memmap_is_named_not_called_zero(tmp_path):
    data = _walks((2, 20, 3_000), seed=9) * 1e-200
    with pytest.raises(ValueError, match="underflow float64"):
        koopman_spectrum(_npy(tmp_path, data), delays=1, rank=3)
