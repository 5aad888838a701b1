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
        assert zarr.open_group(str(tmp_path / "s"), mode="r")["runs/r0/steps"].shape[0] >= 10
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
        # runs as source() takes them: names or globs, each run once, in the order given
        np.testing.assert_array_equal(st.read(runs=["sh*", "r0", "short"], steps=slice(0, 7)),
                                      st.read(runs=["short", "r0"], steps=slice(0, 7)))
        assert st.read(runs="s*").shape == (1, 7, 15)
        with pytest.raises(StoreError, match=r"run selection 'x\*' matches no run"):
            st.read(runs="x*")
        with pytest.raises(StoreError, match="runs is an empty list"):
            st.read(runs=[])
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
    with pytest.raises(StoreError, match="format version 99.*reads format version 2 only"):
        TrajectoryStore.open(tmp_path / "s", "r")


def test_unwritable_or_full_destination_is_refused_at_open(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(StoreError, match="not writable"):
        TrajectoryStore.open(tmp_path / "ro", "a")
    monkeypatch.undo()

    class Usage:
        free = 1000

    monkeypatch.setattr("shutil.disk_usage", lambda p: Usage)
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
    # a lock file left by a dead writer (nobody holds its flock) is taken over
    # (tests/test_store_lock.py: the flock lock)
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


# ------------------------------------------------------------------------- batched writes
def _records(rng, steps):
    return ({k: rng.standard_normal((len(steps), *s)).astype(d) for k, (s, d) in LAYOUT.items()},
            {"loss": rng.standard_normal(len(steps))})


def test_append_many_equals_one_append_per_run(tmp_path):
    rng = np.random.default_rng(3)
    chunks = [(np.arange(a, a + 4), *_records(rng, range(4))) for a in (0, 4, 8)]
    with TrajectoryStore.open(tmp_path / "one", "w") as one, \
            TrajectoryStore.open(tmp_path / "many", "w") as many:
        for st in (one, many):
            for r in ("a", "b"):
                st.create_run(r, LAYOUT, chunk_steps=4)
        for steps, params, scal in chunks:
            for r in ("a", "b"):
                one.append(r, steps, params, scal)
            out = many.append_many({r: (steps, params, scal) for r in ("a", "b")})
            assert out == {"a": steps[-1] + 1, "b": steps[-1] + 1}
        assert many.append_many({}) == {}
    with TrajectoryStore.open(tmp_path / "one", "r") as one, \
            TrajectoryStore.open(tmp_path / "many", "r") as many:
        np.testing.assert_array_equal(many.read(), one.read())
        for r in ("a", "b"):
            assert many.n_complete(r) == 12
            np.testing.assert_array_equal(many.steps(r), np.arange(12))
            np.testing.assert_array_equal(many.scalars(r, "loss"),
                                          np.concatenate([c[2]["loss"] for c in chunks]))


def test_append_many_checks_every_run_before_writing_any(tmp_path):
    rng = np.random.default_rng(4)
    with TrajectoryStore.open(tmp_path / "s", "w") as st:
        for r in ("a", "b"):
            st.create_run(r, LAYOUT, chunk_steps=4)
        params, scal = _records(rng, range(2))
        bad = dict(params, **{"head.weight": params["head.weight"].astype(np.float64)})
        with pytest.raises(StoreError, match="'head.weight': expected dtype float32"):
            st.append_many({"a": ([0, 1], params, scal), "b": ([0, 1], bad, scal)})
        with pytest.raises(StoreError, match="unknown run 'zz'"):
            st.append_many({"a": ([0, 1], params, scal), "zz": ([0, 1], params, scal)})
        with pytest.raises(StoreError, match=r"records\['a'\] must be a tuple"):
            st.append_many({"a": ([0, 1], params)})
        with pytest.raises(StoreError, match="records must be a mapping"):
            st.append_many([("a", ([0, 1], params, scal))])
        assert st.n_complete("a") == st.n_complete("b") == 0
        assert not (tmp_path / "s" / "runs" / "a" / "scalars" / "loss").exists()
        st.append_many({"a": ([0, 1], params, scal)})
        with pytest.raises(StoreError, match="after the last complete step 1 of run 'a'"):
            st.append_many({"b": ([0, 1], params, scal), "a": ([1, 2], params, scal)})
        assert (st.n_complete("a"), st.n_complete("b")) == (2, 0)


def test_appends_read_no_metadata_and_attribute_writes_stay_consistent(tmp_path, monkeypatch):
    """After the first append, appends read nothing from the store's metadata; metadata, finished
    and n_complete written through the cached run never overwrite each other."""
    rng = np.random.default_rng(5)
    with TrajectoryStore.open(tmp_path / "s", "w") as st:
        st.create_run("r", LAYOUT, chunk_steps=4, metadata={"seed": 1})
        st.append("r", [0, 1, 2, 3], *_records(rng, range(4)))
        reads = []
        for name in ("_json", "_run", "_read", "_scalar_names", "runs"):
            orig = getattr(TrajectoryStore, name)

            def spy(self, *a, _orig=orig, _name=name, **k):
                reads.append(_name)
                return _orig(self, *a, **k)

            monkeypatch.setattr(TrajectoryStore, name, spy)
        for a in range(4, 40, 4):
            st.append("r", np.arange(a, a + 4), *_records(rng, range(4)))
        st.update_metadata("r", {"digest": "abc"})
        st.set_finished("r")
        assert reads == []
        monkeypatch.undo()
        st.update_metadata("r", {"late": 2})
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        info = st.run_info("r")
        assert info["n_complete"] == 40 and info["finished"] is True
        assert {"seed": 1, "digest": "abc", "late": 2}.items() <= info["metadata"].items()
        np.testing.assert_array_equal(st.steps("r"), np.arange(40))


def test_arrays_grow_in_blocks_and_are_cut_to_n_complete_when_finished(tmp_path):
    rng = np.random.default_rng(6)
    with TrajectoryStore.open(tmp_path / "s", "w") as st:
        st.create_run("r", LAYOUT, chunk_steps=2)
        st.append("r", [0, 1, 2], *_records(rng, range(3)))
        g = zarr.open_group(str(tmp_path / "s" / "runs" / "r"), mode="r")
        # grown to 16 chunks (no chunk files beyond the data): one metadata write per 16 chunks
        assert g["params/enc.bias"].shape == (32, 3) and g["steps"].shape == (16 * 64,)
        assert st.read().shape == (1, 3, 15)
        st.set_finished("r")
        g = zarr.open_group(str(tmp_path / "s" / "runs" / "r"), mode="r")
        assert g["params/enc.bias"].shape == (3, 3) and g["steps"].shape == (3,)
        assert g["scalars/loss"].shape == (3,)
        st.append("r", [5], *_records(rng, range(1)))
    g = zarr.open_group(str(tmp_path / "s" / "runs" / "r"), mode="r")
    assert g["params/head.weight"].shape == (4, 2, 3)  # cut again by close()
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        assert st.verify().ok
        np.testing.assert_array_equal(st.steps("r"), [0, 1, 2, 5])


def test_a_failed_write_advances_no_run_and_the_next_append_reopens(tmp_path, monkeypatch):
    import errno

    from zarr import AsyncArray

    rng = np.random.default_rng(7)
    first = [_records(rng, range(4)) for _ in range(2)]
    with TrajectoryStore.open(tmp_path / "s", "w") as st:
        for r in ("a", "b"):
            st.create_run(r, LAYOUT, chunk_steps=4)
        st.append_many({r: ([0, 1, 2, 3], *first[i]) for i, r in enumerate(("a", "b"))})
        orig = AsyncArray.setitem

        async def full_disk(self, sel, value, *a, **k):
            if "runs/b/params/enc.bias" in str(self.store_path):
                raise OSError(errno.ENOSPC, "No space left on device")
            return await orig(self, sel, value, *a, **k)

        monkeypatch.setattr(AsyncArray, "setitem", full_disk)
        with pytest.raises(StoreError, match=r"failed \(run 'b'.*No space left.*still holds "
                                             r"'a': 4, 'b': 4 complete steps"):
            st.append_many({r: ([4, 5], *_records(rng, range(2))) for r in ("a", "b")})
        with pytest.raises(StoreError, match=r"writing steps 4\.\.5 of run 'b'.*still holds 4"):
            st.append("b", [4, 5], *_records(rng, range(2)))
        monkeypatch.undo()
        assert st.n_complete("a") == st.n_complete("b") == 4
        later = _records(rng, range(2))
        st.append_many({r: ([6, 7], *later) for r in ("a", "b")})
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        assert st.verify().ok
        for i, r in enumerate(("a", "b")):
            np.testing.assert_array_equal(st.steps(r), [0, 1, 2, 3, 6, 7])
            np.testing.assert_array_equal(
                st.read("enc.bias", runs=r)[0],
                np.concatenate([first[i][0]["enc.bias"], later[0]["enc.bias"]]))


def test_sigkill_during_append_many_leaves_every_run_consistent(tmp_path):
    """A writer appending chunks of 3 runs with append_many is SIGKILLed at random points: the
    store opens (its checks pass), verify finds nothing, every run holds whole chunks of exactly
    the data written, runs differ by at most the chunk in flight, and a new writer appends."""
    import signal
    import time
    from pathlib import Path

    here = Path(__file__).parent
    sys.path.insert(0, str(here))
    import _kill_worker as kw

    env = dict(os.environ, OMP_NUM_THREADS="1")
    for i, delay in enumerate((0.0, 0.4)):
        path = tmp_path / f"s{i}"
        p = subprocess.Popen([sys.executable, str(here / "_kill_worker.py"), "append", str(path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            assert p.stdout.readline().strip() == "READY", p.stderr.read()
            time.sleep(delay)
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=30)
        assert p.returncode == -signal.SIGKILL
        with TrajectoryStore.open(path, "r") as st:
            assert st.verify().ok
            n = {r: st.n_complete(r) for r in kw.RUNS}
            assert all(v % kw.APPEND_CHUNK == 0 and v >= kw.APPEND_CHUNK for v in n.values())
            assert max(n.values()) - min(n.values()) <= kw.APPEND_CHUNK, n
            for r in kw.RUNS:
                steps = np.arange(n[r])
                np.testing.assert_array_equal(st.steps(r), steps)
                np.testing.assert_array_equal(st.read("w", runs=r)[0].reshape(-1, 3, 5),
                                              kw.expected(r, steps))
                np.testing.assert_array_equal(st.scalars(r, "loss"), steps * 0.5)
        with TrajectoryStore.open(path, "a") as st:
            st.append_many({r: ([n[r] + 10], {"w": kw.expected(r, [n[r] + 10])}, None)
                            for r in kw.RUNS})
        with TrajectoryStore.open(path, "r") as st:
            assert st.verify().ok and all(st.n_complete(r) == n[r] + 1 for r in kw.RUNS)


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


def test_branch_next_states_round_trip_and_are_verified(tmp_path):
    rng = np.random.default_rng(5)
    main = {k: rng.standard_normal((7, *s)).astype(d) for k, (s, d) in LAYOUT.items()}
    nxt = {k: rng.standard_normal((7, *s)).astype(d) for k, (s, d) in LAYOUT.items()}
    with TrajectoryStore.open(tmp_path / "s", "w") as st:
        st.create_run("b", LAYOUT, chunk_steps=4, next_states=True)
        st.append("b", np.arange(3), {k: v[:3] for k, v in main.items()}, None,
                  {k: v[:3] for k, v in nxt.items()})
        st.append_many({"b": (np.arange(3, 7), {k: v[3:] for k, v in main.items()},
                              {"loss": np.ones(4)}, {k: v[3:] for k, v in nxt.items()})})
        fill(st, "plain", n=7)
        # a branched run needs its branch; a plain run refuses one
        with pytest.raises(StoreError, match="keeps a branch: give next_states="):
            st.append("b", [9], {k: v[:1] for k, v in main.items()})
        with pytest.raises(StoreError, match="keeps no branch"):
            st.append("plain", [9], {k: v[:1] for k, v in main.items()}, None,
                      {k: v[:1] for k, v in nxt.items()})
        with pytest.raises(StoreError, match=r"next_states 'enc.weight': expected dtype float64"):
            st.append("b", [9], {k: v[:1] for k, v in main.items()}, None,
                      {k: v[:1].astype(np.float32) for k, v in nxt.items()})
        st.set_finished("b")
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        expect = np.concatenate([nxt[k].reshape(7, -1) for k in LAYOUT], axis=1)
        np.testing.assert_array_equal(st.read(runs="b", branch="next")[0], expect)
        main_flat = np.concatenate([main[k].reshape(7, -1) for k in LAYOUT], axis=1)
        np.testing.assert_array_equal(st.read(runs="b")[0], main_flat)
        np.testing.assert_array_equal(st.read("head.weight", runs="b", branch="next")[0],
                                      nxt["head.weight"].reshape(7, 6))
        assert st.run_info("b")["branches"] == ["next"]
        assert st.run_info("plain")["branches"] == []
        with pytest.raises(StoreError, match="run 'plain' keeps no branch 'next'"):
            st.read(runs=["b", "plain"], branch="next")
        with pytest.raises(StoreError, match="branch must be None or 'next'"):
            st.read(runs="b", branch="other")
        rep = st.verify()
        assert rep.ok
        # b: 3 params + 3 branch arrays of 2 chunks, steps, loss; plain: 3 params, steps, loss
        assert rep.chunks_checked == (3 + 3) * 2 + 2 + 3 * 2 + 2
    # a deleted chunk of the branch is damage that verify names
    chunk = tmp_path / "s" / "runs" / "b" / "next" / "enc.bias" / "c" / "1" / "0"
    chunk.unlink()
    with TrajectoryStore.open(tmp_path / "s", "r", check=False) as st:
        rep = st.verify()
        assert not rep.ok
        assert [d.array for d in rep.damage] == ["next/enc.bias"]
