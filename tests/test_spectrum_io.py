"""Spectrum.save / Spectrum.load: round trips, JSON-safe settings, atomic writes, older files."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from conjugacy import Spectrum, SpectrumFileError
from conjugacy._spectrum_io import SpectrumFileNotFoundError


def _spectrum(**changes) -> Spectrum:
    base = dict(
        eigenvalues=np.array([0.9 + 0.2j, 0.9 - 0.2j, -0.4]),
        residuals=np.array([1e-3, 1e-3, 5e-4]),
        plain_residuals=np.array([2e-3, 2e-3, 6e-4]),
        modes=np.arange(12.0).reshape(4, 3) + 0j,
        singular_values=np.array([4.0, 2.0, 1.0, 0.1]),
        rank=3,
        method="rrr",
        residuals_informative=True,
        settings={"delays": 2},
    )
    base.update(changes)
    return Spectrum(**base)


def test_numpy_scalars_arrays_tuples_and_paths_in_settings_are_saved_as_json(tmp_path):
    settings = {
        "delays": np.int64(2), "tol": np.float32(0.5), "flag": np.bool_(True),
        "widths": (np.int32(8), 16), "grid": np.array([[1, 2], [3, 4]]), "name": np.str_("a"),
        "source": Path("runs/x.npy"), "nested": {"eps": np.float64(1e-300), np.int64(3): "three"},
        "nan": float("nan"),
    }
    spec = _spectrum(settings=settings)
    loaded = Spectrum.load(spec.save(tmp_path / "s.npz"))
    got = loaded.settings
    assert got["delays"] == 2 and type(got["delays"]) is int
    assert got["tol"] == 0.5 and type(got["tol"]) is float
    assert got["flag"] is True and got["name"] == "a"
    assert got["widths"] == [8, 16] and got["grid"] == [[1, 2], [3, 4]]
    assert got["source"] == os.path.join("runs", "x.npy")
    assert got["nested"] == {"eps": 1e-300, "3": "three"}
    assert np.isnan(got["nan"])


def test_settings_without_a_json_form_raise_type_error_naming_the_key(tmp_path):
    with pytest.raises(TypeError, match=r"settings\['bad'\]\[1\] is of type object"):
        _spectrum(settings={"bad": [1, object()]}).save(tmp_path / "s.npz")
    with pytest.raises(TypeError, match=r"settings\['z'\] is the complex number"):
        _spectrum(settings={"z": np.complex128(1 + 2j)}).save(tmp_path / "s.npz")
    assert not list(tmp_path.iterdir())  # nothing written, no temporary left


def test_round_trip_is_exact_for_every_field(tmp_path):
    spec = _spectrum(rayleigh_quotients=np.array([0.9 + 0.2j, 0.9 - 0.2j, -0.4]))
    loaded = Spectrum.load(spec.save(tmp_path / "s"))  # .npz appended
    for f in dataclasses.fields(Spectrum):
        a, b = getattr(spec, f.name), getattr(loaded, f.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b), f.name
            assert not b.flags.writeable, f.name
        else:
            assert a == b, f.name


def test_a_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = _spectrum().save(tmp_path / "s.npz")
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="No space left"):
        _spectrum(settings={"other": 1}).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]


def test_rank_must_match_the_eigenvalues_to_be_saved(tmp_path):
    with pytest.raises(ValueError, match="rank=2 but the spectrum has 3 eigenvalues"):
        _spectrum(rank=2).save(tmp_path / "s.npz")


def test_files_of_the_first_format_without_newer_optional_fields_load(tmp_path):
    # exactly what conjugacy 0.1 wrote (before data_residuals existed): no optional members
    meta = {"format": "conjugacy.Spectrum", "format_version": 1, "rank": 1, "method": "exact",
            "residuals_informative": False, "settings": {"delays": 0}}
    path = tmp_path / "old.npz"
    np.savez(path, eigenvalues=np.array([0.5 + 0j]), residuals=np.zeros(1),
             plain_residuals=np.zeros(1), singular_values=np.ones(1),
             meta=np.array(json.dumps(meta)))
    spec = Spectrum.load(path)
    assert spec.rank == 1 and spec.method == "exact" and spec.modes is None
    assert all(getattr(spec, f.name) is None for f in dataclasses.fields(Spectrum)
               if f.name in ("rayleigh_quotients", "data_residuals", "modes"))


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(SpectrumFileNotFoundError, match="no such spectrum file"):
        Spectrum.load(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError, as before
        Spectrum.load(tmp_path / "nope.npz")
    with pytest.raises(SpectrumFileError, match="is a folder"):
        Spectrum.load(tmp_path)


def test_saving_onto_a_directory_names_the_directory(tmp_path):
    from conjugacy import koopman_spectrum

    spec = koopman_spectrum(np.cumsum(np.random.default_rng(0).standard_normal((2, 20, 3)), 1),
                            rank=2)
    (tmp_path / "out.npz").mkdir()
    with pytest.raises(IsADirectoryError, match=r"out\.npz'?: it is a directory"):
        spec.save(tmp_path / "out.npz")
