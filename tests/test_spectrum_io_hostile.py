"""Hostile spectrum files (issue 26, item 3): a small deflated file cannot make a load allocate
gigabytes, a FIFO is refused without blocking, a save never writes through a planted link. Each
case gives one SpectrumFileError within 5 s and 200 MB."""

from __future__ import annotations

import io
import os
import signal
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from conjugacy import Spectrum, SpectrumFileError

USER = b"IMPORTANT USER DATA - must never change\n"


def _spectrum(modes=None) -> Spectrum:
    return Spectrum(
        eigenvalues=np.array([0.9 + 0.2j, 0.9 - 0.2j, -0.4]),
        residuals=np.array([1e-3, 1e-3, 5e-4]),
        plain_residuals=np.array([2e-3, 2e-3, 6e-4]),
        modes=np.arange(12.0).reshape(4, 3) + 0j if modes is None else modes,
        singular_values=np.array([4.0, 2.0, 1.0, 0.1]),
        rank=3,
        method="rrr",
        residuals_informative=True,
        settings={"delays": 2},
    )


def _bounded(fn):
    def alarm(*_):
        raise TimeoutError("still running after 6 s (a hang)")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, 6)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        fn()
    finally:
        dt = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert dt < 5 and peak < 200 * 2**20, (dt, peak)
    return dt, peak


def _deflated_copy(src, dst):
    """Re-zip a saved spectrum with every member deflated (what numpy.savez_compressed writes)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))


def test_a_small_deflated_file_declaring_gigabytes_is_refused_before_reading(tmp_path):
    # 1.26 GB of zero modes deflate to ~1.25 MB: a well-formed zip, a bomb for the loader
    _spectrum().save(tmp_path / "small.npz")
    big = tmp_path / "big.npz"
    rows = 2**20 * 1200 // (16 * 3)
    with zipfile.ZipFile(tmp_path / "small.npz") as small, \
            zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as z:
        for info in small.infolist():
            if info.filename != "modes.npy":
                z.writestr(info.filename, small.read(info))
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "<c16", "fortran_order": False, "shape": (rows, 3)})
        with z.open("modes.npy", "w", force_zip64=True) as m:
            m.write(header.getvalue())
            zero = bytes(2**20)
            for _ in range(1200):
                m.write(zero)
    size = big.stat().st_size
    assert size < 2 * 2**20
    dt, peak = _bounded(lambda: _expect(big, "refused before reading"))
    print(f"\n  {size / 1e6:.2f} MB deflated bomb: {dt * 1000:.0f} ms, peak {peak / 2**20:.1f} MB")


def _expect(path, match):
    with pytest.raises(SpectrumFileError, match=match) as info:
        Spectrum.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_deflated_spectrum_of_ordinary_size_still_loads(tmp_path):
    spec = _spectrum(modes=np.random.default_rng(0).standard_normal((5000, 3)) + 0j)
    spec.save(tmp_path / "s.npz")
    _deflated_copy(tmp_path / "s.npz", tmp_path / "d.npz")
    back = Spectrum.load(tmp_path / "d.npz")
    np.testing.assert_array_equal(back.modes, spec.modes)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "s.npz")
    _bounded(lambda: _expect(tmp_path / "s.npz", "not a regular file"))


def test_save_never_writes_through_a_link_planted_at_the_target(tmp_path):
    user = tmp_path / "user.txt"
    user.write_bytes(USER)
    (tmp_path / "s.npz").symlink_to(user)
    _spectrum().save(tmp_path / "s.npz")
    assert user.read_bytes() == USER
    assert not (tmp_path / "s.npz").is_symlink()
    assert Spectrum.load(tmp_path / "s.npz").rank == 3
