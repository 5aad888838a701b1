"""Spectra straight from a TrajectoryStore selection, streamed chunk by chunk (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest
from systems import match_error

pytest.importorskip("zarr")

from conjugacy import TrajectoryStore, koopman_spectrum  # noqa: E402
from conjugacy.store import StoreError  # noqa: E402


def _record(path, lengths=(30, 30, 30), features=(3000,), seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    data = []
    with TrajectoryStore.open(path, "w") as store:
        for i, n in enumerate(lengths):
            walk = np.cumsum(rng.standard_normal((n, *features)), axis=0).astype(dtype)
            b = rng.standard_normal((n, 40)).astype(dtype)
            store.create_run(f"r{i}", {"w": (features, dtype), "b": ((40,), dtype)}, chunk_steps=8)
            store.append(f"r{i}", np.arange(n), {"w": walk, "b": b})
            data.append(np.concatenate([walk.reshape(n, -1), b], axis=1))
    return data


def test_store_source_equals_in_memory_read(tmp_path):
    data = _record(tmp_path / "s.zarr", features=(60, 50))
    with TrajectoryStore.open(tmp_path / "s.zarr", "r") as store:
        src = store.source()
        assert src.lengths == [30, 30, 30] and src.n_features == 3040
        spec = koopman_spectrum(src, delays=2, rank=6)
        ref = koopman_spectrum(store.read(), delays=2, rank=6)
        assert spec.settings["path"] == "gram (streamed)"
        assert match_error(spec.eigenvalues, ref.eigenvalues) < 1e-10
        only_w = koopman_spectrum(store.source("w"), delays=2, rank=5, pca=5)
        ref_w = koopman_spectrum(store.read("w"), delays=2, rank=5, pca=5)
        assert match_error(only_w.eigenvalues, ref_w.eigenvalues) < 1e-9
    # and the data as recorded (not as read back) have that spectrum: the store changed nothing
    # (its feature order may differ; eigenvalues do not depend on it)
    assert match_error(spec.eigenvalues, koopman_spectrum(data, delays=2, rank=6).eigenvalues) < 1e-10


def test_ragged_runs_stream_as_ragged_trajectories(tmp_path):
    data = _record(tmp_path / "s.zarr", lengths=(25, 30, 40), dtype=np.float32)
    with TrajectoryStore.open(tmp_path / "s.zarr", "r") as store:
        spec = koopman_spectrum(store.source(), delays=1, rank=5)
    ref = koopman_spectrum([d.astype(np.float64) for d in data], delays=1, rank=5, path="dense")
    assert match_error(spec.eigenvalues, ref.eigenvalues) < 1e-9
    assert spec.settings["input_eps"] == pytest.approx(np.finfo(np.float32).eps)


def test_a_deleted_chunk_is_named_not_read_as_zeros(tmp_path):
    _record(tmp_path / "s.zarr")
    chunk = next(p for p in sorted((tmp_path / "s.zarr").rglob("*")) if p.is_file()
                 and "params" in p.parts and "w" in p.parts and p.name not in ("zarr.json",))
    chunk.unlink()
    with TrajectoryStore.open(tmp_path / "s.zarr", "r", check=False) as store:
        with pytest.raises(StoreError, match="damaged|missing"):
            koopman_spectrum(store.source(), delays=2, rank=6)


def test_cli_spectrum_streams_a_store(tmp_path):
    from typer.testing import CliRunner

    from conjugacy.cli import app
    from conjugacy.spectrum import Spectrum

    _record(tmp_path / "s.zarr")
    out = tmp_path / "spec.npz"
    res = CliRunner().invoke(app, ["spectrum", str(tmp_path / "s.zarr"), "--delays", "2",
                                   "--rank", "6", "--params", "w", "--out", str(out)])
    assert res.exit_code == 0, res.output
    spec = Spectrum.load(out)
    assert spec.settings["path"] == "gram (streamed)" and spec.modes is None
    assert len(spec) == 6
    assert "3 runs x 30 steps x 3000 features" in " ".join(res.output.split())
    _record(tmp_path / "ragged.zarr", lengths=(30, 12, 25))
    res = CliRunner().invoke(app, ["spectrum", str(tmp_path / "ragged.zarr"), "--delays", "2",
                                   "--rank", "6", "--params", "w", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "3 runs x 12-30 steps x 3000 features" in " ".join(res.output.split())


def test_store_source_takes_run_globs(tmp_path):
    _record(tmp_path / "s.zarr", lengths=(20, 20, 20))
    with TrajectoryStore.open(tmp_path / "s.zarr", "r") as store:
        assert store.source(runs="r*").runs == ["r0", "r1", "r2"]
        assert store.source(runs=["r2", "r[01]"]).runs == ["r2", "r0", "r1"]
        with pytest.raises(StoreError, match="matches no run"):
            store.source(runs="x*")


def test_nan_in_a_store_names_the_run_and_step(tmp_path):
    with TrajectoryStore.open(tmp_path / "s.zarr", "w") as store:
        for i in range(2):
            w = np.cumsum(np.random.default_rng(i).standard_normal((20, 500)), axis=0)
            if i == 1:
                w[7, 3] = np.nan
            store.create_run(f"b{i}", {"w": ((500,), np.float64)}, chunk_steps=8)
            store.append(f"b{i}", np.arange(20), {"w": w})
    with TrajectoryStore.open(tmp_path / "s.zarr", "r") as store:
        with pytest.raises(ValueError, match=r"\(run 'b1'\) holds NaN at step 7, feature 3"):
            koopman_spectrum(store.source(), delays=1, rank=4)
        # the tolerance rule (no rank) loads the selection whole: the run is still named
        with pytest.raises(ValueError, match=r"\(run 'b1'\) contains NaN at index \(7, 3\)"):
            koopman_spectrum(store.source(), delays=1)


def test_too_short_runs_are_named(tmp_path):
    _record(tmp_path / "s.zarr", lengths=(30, 6, 30), features=(500,))
    with TrajectoryStore.open(tmp_path / "s.zarr", "r") as store:
        with pytest.raises(ValueError, match=r"\(run 'r1'\) has 6 steps, too few for delays=8"):
            koopman_spectrum(store.source(), delays=8, rank=4)


def test_float32_store_keeps_float32_tolerance_streamed_or_loaded(tmp_path):
    # new-user trial: without a rank the selection is loaded whole as float64, and the rank rule
    # used float64's epsilon; read() and .npy input used float32's
    _record(tmp_path / "s.zarr", features=(300,), dtype=np.float32)
    with TrajectoryStore.open(tmp_path / "s.zarr", "r") as store:
        loaded = koopman_spectrum(store.read("w"), delays=1)
        streamed = koopman_spectrum(store.source("w"), delays=1)
        assert streamed.settings["input_eps"] == loaded.settings["input_eps"] == pytest.approx(
            np.finfo(np.float32).eps)
        assert streamed.rank == loaded.rank


def test_mixed_precision_memmaps_use_the_least_precise(tmp_path):
    rng = np.random.default_rng(3)
    arrays = []
    for i in range(4):
        a = np.cumsum(rng.standard_normal((25, 2000)), axis=0)
        a = a.astype(np.float32 if i % 2 else np.float64)
        np.save(tmp_path / f"t{i}.npy", a)
        arrays.append(a)
    mapped = [np.load(tmp_path / f"t{i}.npy", mmap_mode="r") for i in range(4)]
    streamed = koopman_spectrum(mapped, delays=1, rank=8)
    loaded = koopman_spectrum(arrays, delays=1, rank=8)
    assert streamed.settings["input_eps"] == loaded.settings["input_eps"] == pytest.approx(
        np.finfo(np.float32).eps)


def test_a_missing_chunk_is_refused_when_the_source_is_made(tmp_path):
    """source() checks that every chunk file of the selection is there (one lstat each) before
    streaming, as read() does: the damage names the run, the array and its records."""
    from conjugacy.store import DamagedStoreError

    _record(tmp_path / "s.zarr", lengths=(20, 20), features=(50,))
    (tmp_path / "s.zarr" / "runs" / "r1" / "params" / "w" / "c" / "1" / "0").unlink()
    with TrajectoryStore.open(tmp_path / "s.zarr", "r") as store:
        for read in (store.source, store.read):
            with pytest.raises(DamagedStoreError, match=r"run 'r1', array 'params/w', chunk "
                                                        r"c/1/0, records 8\.\.15 .*missing"):
                read("w")
        assert store.source("b").runs == ["r0", "r1"]  # the intact parameter still streams
