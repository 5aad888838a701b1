"""Tests of conjugacy.store.TrajectoryStore and the `conjugacy store` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

from conjugacy.store import LOCK_NAME, StoreError, TrajectoryStore  # noqa: E402

LAYOUT = {"enc.weight": ((3, 2), "float64"), "enc.bias": ((3,), "float64"),
          "head.weight": ((2, 3), "float32")}


def fill(st, run="r0", n=10, chunk=4, seed=0, start=0):
    rng = np.random.default_rng(seed)
    st.create_run(run, LAYOUT, chunk_steps=chunk, metadata={"seed": seed})
    data = {k: rng.standard_normal((n, *s)).astype(d) for k, (s, d) in LAYOUT.items()}
    for a in range(0, n, 3):  # uneven appends across chunk boundaries
        b = min(a + 3, n)
        st.append(run, np.arange(start + a, start + b),
                  {k: v[a:b] for k, v in data.items()}, {"loss": np.arange(a, b) * 0.5})
    return data


def test_roundtrip_is_bit_exact_and_keeps_dtypes(tmp_path):
    with TrajectoryStore.open(tmp_path / "s", "w") as st:
        data = fill(st)
        fill(st, "r1", seed=1)
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        assert st.runs() == ["r0", "r1"]
        out = st.read()
        assert out.shape == (2, 10, 6 + 3 + 6) and out.dtype == np.float64
        # feature order: recorded order, each flattened in C order
        expect = np.concatenate([data[k].reshape(10, -1) for k in LAYOUT], axis=1)
        np.testing.assert_array_equal(out[0], expect.astype(np.float64))
        f64 = st.read("enc.*", runs=["r0"])
        assert f64.dtype == np.float64
        np.testing.assert_array_equal(f64[0, :, :6], data["enc.weight"].reshape(10, 6))
        f32 = st.read("head.weight")
        assert f32.dtype == np.float32
        np.testing.assert_array_equal(f32[0], data["head.weight"].reshape(10, 6))
        # the order of the selection does not change the feature order
        np.testing.assert_array_equal(st.read(["enc.bias", "enc.weight"]), st.read("enc.*"))
        np.testing.assert_array_equal(st.read(steps=slice(2, 9, 3)), out[:, 2:9:3])
        np.testing.assert_array_equal(st.read(steps=slice(None, None, -1)), out[:, ::-1])
        np.testing.assert_array_equal(st.scalars("r0", "loss"), np.arange(10) * 0.5)
        np.testing.assert_array_equal(st.steps("r0"), np.arange(10))
        info = st.run_info("r0")
        assert info["n_complete"] == 10 and info["n_features"] == 15
        assert info["parameters"]["enc.weight"] == {"shape": [3, 2], "dtype": "float64",
                                                    "size": 6}
        assert info["metadata"] == {"seed": 0} and info["scalars"] == ["loss"]


def test_feature_chunk_layout_readable_by_plain_zarr(tmp_path):
    with TrajectoryStore.open(tmp_path / "s", "w") as st:
        data = fill(st)
    g = zarr.open_group(str(tmp_path / "s"), mode="r")
    arr = g["runs/r0/params/enc.weight"]
    assert arr.chunks == (4, 3, 2)
    n = g["runs/r0"].attrs["n_complete"]
    np.testing.assert_array_equal(arr[:n], data["enc.weight"])
    assert g.attrs["conjugacy_store"]["format_version"] == 2
    # every array carries a CRC-32C of each chunk (Zarr v3 crc32c codec)
    assert [c["name"] for c in arr.metadata.to_dict()["codecs"]] == ["bytes", "zstd", "crc32c"]


def test_new_scalar_names_are_nan_filled(tmp_path):
    with TrajectoryStore.open(tmp_path / "s", "w") as st:
        st.create_run("r", {"w": ((2,), "float32")})
        w = np.zeros((2, 2), np.float32)
        st.append("r", [0, 1], {"w": w}, {"loss": [1.0, 2.0]})
        st.append("r", [5, 6], {"w": w}, {"acc": [0.5, 0.75]})
        np.testing.assert_array_equal(st.scalars("r", "acc"), [np.nan, np.nan, 0.5, 0.75])
        np.testing.assert_array_equal(st.scalars("r", "loss"), [1, 2, np.nan, np.nan])
        with pytest.raises(StoreError, match="no scalar 'lr'; scalars: acc, loss"):
            st.scalars("r", "lr")
        with pytest.raises(StoreError, match="after the last complete step 6"):
            st.append("r", [6], {"w": w[:1]})
        with pytest.raises(StoreError, match="expected dtype float32"):
            st.append("r", [7], {"w": w[:1].astype(np.float64)})
        with pytest.raises(StoreError, match="missing"):
            st.append("r", [7], {})


def test_only_complete_steps_are_visible_and_truncate_resumes(tmp_path):
    with TrajectoryStore.open(tmp_path / "s", "w") as st:
        data = fill(st, n=10)
        st.truncate("r0", 6)  # as after a crash: arrays longer than n_complete
        assert st.read().shape[1] == 6
        assert zarr.open_group(str(tmp_path / "s"), mode="r")["runs/r0/steps"].shape == (10,)
        new = {k: -np.ones((2, *s), d) for k, (s, d) in LAYOUT.items()}
        st.append("r0", [6, 7], new)
        out = st.read("enc.bias")[0]
        np.testing.assert_array_equal(out[:6], data["enc.bias"][:6])
        np.testing.assert_array_equal(out[6:], -1)
        np.testing.assert_array_equal(st.scalars("r0", "loss")[6:], [np.nan, np.nan])


def test_selection_and_run_errors_name_the_alternatives(tmp_path):
    with TrajectoryStore.open(tmp_path / "s", "w") as st:
        fill(st)
        fill(st, "short", n=7)
        with pytest.raises(ValueError, match=r"'dec\.\*' matches nothing; available parameters: "
                                             r"enc\.weight, enc\.bias, head\.weight"):
            st.read(["enc.weight", "dec.*"])
        with pytest.raises(StoreError, match="unknown run 'r9'.*runs: r0, short"):
            st.read(runs=["r9"])
        with pytest.raises(StoreError, match="different numbers of selected steps"):
            st.read()
        assert st.read(steps=slice(0, 7)).shape == (2, 7, 15)
        with pytest.raises(StoreError, match="already exists"):
            st.create_run("r0", LAYOUT)
        with pytest.raises(StoreError, match="run name 'a/b' is invalid"):
            st.create_run("a/b", LAYOUT)
        with pytest.raises(StoreError, match="JSON"):
            st.create_run("x", LAYOUT, metadata={"f": object()})


def test_open_modes_and_format_errors(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        TrajectoryStore.open(tmp_path / "missing", "r")
    with pytest.raises(StoreError, match="mode must be"):
        TrajectoryStore.open(tmp_path / "s", "x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hi")
    with pytest.raises(StoreError, match="not a conjugacy trajectory store"):
        TrajectoryStore.open(tmp_path / "other", "a")
    assert not (tmp_path / "other" / LOCK_NAME).exists()
    with pytest.raises(StoreError, match="exists and is not empty"):
        TrajectoryStore.open(tmp_path / "other", "w")
    zarr.open_group(str(tmp_path / "plain"), mode="w")
    with pytest.raises(StoreError, match="not a conjugacy trajectory store"):
        TrajectoryStore.open(tmp_path / "plain", "r")
    with TrajectoryStore.open(tmp_path / "s", "w") as st:
        fill(st)
    with pytest.raises(StoreError, match="read-only"):
        with TrajectoryStore.open(tmp_path / "s", "r") as st:
            st.create_run("new", LAYOUT)
    g = zarr.open_group(str(tmp_path / "s"), mode="r+")
    g.update_attributes({"conjugacy_store": {"format_version": 99, "created_with": "9.0"}})
    with pytest.raises(StoreError, match="format version 99.*reads format versions 1, 2 only"):
        TrajectoryStore.open(tmp_path / "s", "r")


def test_unwritable_or_full_destination_is_refused_at_open(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(StoreError, match="not writable"):
        TrajectoryStore.open(tmp_path / "ro", "a")
    monkeypatch.undo()

    class Usage:
        free = 1000

    monkeypatch.setattr("conjugacy.store.shutil.disk_usage", lambda p: Usage)
    with pytest.raises(StoreError, match="not enough free space: *|1000 bytes free"):
        TrajectoryStore.open(tmp_path / "full", "a")
    assert not (tmp_path / "full" / LOCK_NAME).exists()


def test_second_writer_refused_and_stale_lock_taken_over(tmp_path):
    st = TrajectoryStore.open(tmp_path / "s", "a")
    with pytest.raises(StoreError, match=f"already open for writing by process {os.getpid()}"):
        TrajectoryStore.open(tmp_path / "s", "a")
    with TrajectoryStore.open(tmp_path / "s", "r") as reader:  # readers are fine
        assert reader.runs() == []
    st.close()
    # a lock file of an older conjugacy (O_EXCL, no flock) left by a dead process on this host is
    # taken over; one from another host is respected (tests/test_store_lock.py: the flock lock)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    info = json.loads((tmp_path / "s" / "zarr.json").read_text())
    assert info["attributes"]["conjugacy_store"]["format_version"] == 2
    import socket

    (tmp_path / "s" / LOCK_NAME).write_text(
        json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "since": 0}))
    with TrajectoryStore.open(tmp_path / "s", "a") as st2:
        assert json.loads((tmp_path / "s" / LOCK_NAME).read_text())["pid"] == os.getpid()
        st2.create_run("r", {"w": ((1,), "float32")})
    # a lock held by a live process on another host is respected
    (tmp_path / "s" / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(StoreError, match="'elsewhere'"):
        TrajectoryStore.open(tmp_path / "s", "a")


# ------------------------------------------------------------------------------------- CLI
def test_cli_ls_and_show(tmp_path):
    from typer.testing import CliRunner

    from conjugacy.cli import app

    with TrajectoryStore.open(tmp_path / "s", "w") as st:
        fill(st, "alpha")
        st.set_finished("alpha")
    runner = CliRunner()
    res = runner.invoke(app, ["store", "ls", str(tmp_path / "s")], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "alpha" in res.output and "10" in res.output and "float32,float64" in res.output
    res = runner.invoke(app, ["store", "show", str(tmp_path / "s"), "alpha"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for text in ("enc.weight", "3x2", "head.weight", "loss", "seed", "10 steps complete"):
        assert text in res.output


def test_cli_errors_exit_nonzero_without_traceback(tmp_path):
    from typer.testing import CliRunner

    from conjugacy.cli import app

    with TrajectoryStore.open(tmp_path / "s", "w") as st:
        fill(st, "alpha")
    runner = CliRunner()
    res = runner.invoke(app, ["store", "show", str(tmp_path / "s"), "beta"])
    assert res.exit_code == 2
    assert "unknown run 'beta'" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["store", "ls", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "does not exist" in res.output
    assert not isinstance(res.exception, StoreError)
