"""The trajectory store detects damage (issue 13, section 5): checksums, missing chunks,
``n_complete`` validated at open, ``verify`` and ``conjugacy store verify``, pre-release format-1
stores refused."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

from conjugacy.store import (  # noqa: E402
    DamagedStoreError,
    StoreError,
    TrajectoryStore,
)

LAYOUT = {"enc.weight": ((3, 2), "float64"), "enc.bias": ((3,), "float32")}
N, CHUNK = 10, 4  # 3 chunks per parameter: records 0..3, 4..7, 8..9


def make(path, runs=("r0",)):
    """A small format-2 store; returns {run: features (N, 9) float64}."""
    out = {}
    with TrajectoryStore.open(path, "w") as st:
        for i, run in enumerate(runs):
            rng = np.random.default_rng(i)
            data = {k: rng.standard_normal((N, *s)).astype(d) for k, (s, d) in LAYOUT.items()}
            st.create_run(run, LAYOUT, chunk_steps=CHUNK)
            st.append(run, np.arange(0, 2 * N, 2), data, {"loss": np.arange(N) * 0.25})
            out[run] = np.concatenate([data[k].reshape(N, -1) for k in LAYOUT], axis=1)
    return out


def read_everything(path):
    with TrajectoryStore.open(path, "r") as st:
        out = st.read()
        for run in st.runs():
            st.steps(run)
            st.scalars(run, "loss")
            st.run_info(run)
    return out


def chunk_files(path):
    """Every chunk file of the store (all lie below n_complete here)."""
    return sorted(p for p in path.rglob("*") if p.is_file() and "/c/" in p.as_posix()
                  and p.name != "zarr.json")


def test_every_chunk_is_checksummed_and_written_even_when_all_fill_value(tmp_path):
    with TrajectoryStore.open(tmp_path / "s", "w") as st:
        st.create_run("z", {"b": ((4,), "float32")}, chunk_steps=2)
        st.append("z", [0, 1, 2], {"b": np.zeros((3, 4), np.float32)}, {"acc": [np.nan] * 3})
        st.append("z", [3], {"b": np.zeros((1, 4), np.float32)})
        np.testing.assert_array_equal(st.read()[0], np.zeros((4, 4)))
        rep = st.verify()
    # all-zero parameter chunks and all-NaN scalar chunks exist as files: a missing one is damage
    keys = sorted(p.relative_to(tmp_path / "s/runs/z").as_posix()
                  for p in chunk_files(tmp_path / "s"))
    assert keys == ["params/b/c/0/0", "params/b/c/1/0", "scalars/acc/c/0", "steps/c/0"]
    assert rep.ok and rep.chunks_checked == 4 and rep.chunks_checksummed == 4, str(rep)
    g = zarr.open_group(str(tmp_path / "s"), mode="r")
    assert g["runs/z"].attrs["format_version"] == 2
    for key in ("steps", "params/b", "scalars/acc"):
        assert g[f"runs/z/{key}"].metadata.to_dict()["codecs"][-1]["name"] == "crc32c"


def test_flipped_bits_are_always_detected_and_named(tmp_path):
    """30 random single-bit flips and 20 random byte changes in random chunk files: every one
    is detected, by the read and by verify, naming store, run, array, chunk and records."""
    expected = make(tmp_path / "s", runs=("r1",))
    np.testing.assert_array_equal(read_everything(tmp_path / "s")[0], expected["r1"])
    files = chunk_files(tmp_path / "s")
    assert len(files) == 3 + 3 + 1 + 1
    rng = np.random.default_rng(13)
    detected = 0
    for trial in range(50):
        f = files[int(rng.integers(len(files)))]
        good = f.read_bytes()
        bad = bytearray(good)
        pos = int(rng.integers(len(bad)))
        if trial < 30:
            bad[pos] ^= 1 << int(rng.integers(8))
        else:
            bad[pos] = (bad[pos] + int(rng.integers(1, 256))) % 256
        f.write_bytes(bytes(bad))
        rel = f.relative_to(tmp_path / "s").as_posix()  # runs/<run>/<array...>/c/<i>/...
        run = rel.split("/")[1]
        array = rel.split("/", 2)[2].split("/c/")[0]
        chunk = "c/" + rel.split("/c/")[1]
        first = int(chunk.split("/")[1]) * (CHUNK if array.startswith("params") else 1024)
        with pytest.raises(DamagedStoreError) as err:
            read_everything(tmp_path / "s")
        msg = str(err.value)
        assert str(tmp_path / "s") in msg and f"run {run!r}" in msg, msg
        assert f"array {array!r}" in msg and f"chunk {chunk}" in msg, msg
        assert f"records {first}.." in msg and "checksum mismatch" in msg, msg
        with TrajectoryStore.open(tmp_path / "s", "r", check=False) as st:
            rep = st.verify()
        assert [(d.run, d.array, d.chunk) for d in rep.damage] == [(run, array, chunk)]
        detected += 1
        f.write_bytes(good)
    assert detected == 50
    np.testing.assert_array_equal(read_everything(tmp_path / "s")[0], expected["r1"])


def test_deleted_chunk_is_damage_not_zeros(tmp_path):
    make(tmp_path / "s")
    victim = tmp_path / "s/runs/r0/params/enc.bias/c/1/0"  # records 4..7
    victim.unlink()
    with pytest.raises(DamagedStoreError, match=r"run 'r0', array 'params/enc.bias', chunk c/1/0, "
                                                r"records 4\.\.7 \(training steps 8\.\.14\): "
                                                r"chunk file missing"):
        read_everything(tmp_path / "s")
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        # records outside the damaged chunk still read; the other parameter is intact
        assert st.read(steps=slice(0, 4)).shape == (1, 4, 9)
        assert st.read("enc.weight").shape == (1, 10, 6)
        rep = st.verify()
    assert not rep.ok and len(rep.damage) == 1
    d = rep.damage[0]
    assert (d.run, d.array, d.chunk, d.records, d.steps) == ("r0", "params/enc.bias", "c/1/0",
                                                              (4, 8), (8, 14))
    res = _cli(["spectrum", str(tmp_path / "s"), "--rank", "2"])  # was: exit 0 on zeros
    assert res.exit_code == 2 and "chunk c/1/0, records 4..7" in res.output, res.output
    (tmp_path / "s/runs/r0/steps/c/0").unlink()
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        with pytest.raises(DamagedStoreError, match=r"array 'steps', chunk c/0, records 0\.\.9"):
            st.steps("r0")
        assert len(st.verify().damage) == 2


def test_every_chunk_deleted_in_turn_is_reported(tmp_path):
    make(tmp_path / "s")
    files = chunk_files(tmp_path / "s")
    assert len(files) == 8
    for f in files:
        good = f.read_bytes()
        f.unlink()
        with pytest.raises(DamagedStoreError, match="chunk file missing"):
            read_everything(tmp_path / "s")
        with TrajectoryStore.open(tmp_path / "s", "r") as st:
            (d,) = st.verify().damage
        assert (tmp_path / "s/runs/r0" / d.array / d.chunk) == f and d.problem.startswith(
            "chunk file missing")
        f.write_bytes(good)


def test_n_complete_is_validated_against_the_arrays_at_open(tmp_path):
    expected = make(tmp_path / "s", runs=("good", "bad"))
    g = zarr.open_group(str(tmp_path / "s"), mode="r+")
    g["runs/bad"].update_attributes({"n_complete": 12})  # the arrays hold 10 steps
    for mode in ("r", "a"):
        with pytest.raises(DamagedStoreError, match=r"run 'bad' is damaged: n_complete is 12 but "
                                                    r"array 'steps' holds 10 steps"):
            TrajectoryStore.open(tmp_path / "s", mode)
    assert not (tmp_path / "s/.conjugacy-write.lock").exists()
    with TrajectoryStore.open(tmp_path / "s", "r", check=False) as st:
        np.testing.assert_array_equal(st.read(runs="good")[0], expected["good"])
        with pytest.raises(DamagedStoreError, match="n_complete is 12"):
            st.read(runs="bad")
        rep = st.verify()
    assert [(d.run, d.array) for d in rep.damage] == [("bad", None)]
    # other layout damage: a declared shape that disagrees, a missing array, a bad attribute
    g["runs/bad"].update_attributes({"n_complete": 10,
                                     "parameters": [["enc.weight", [2, 3], "float64"],
                                                    ["enc.bias", [3], "float32"]]})
    with pytest.raises(DamagedStoreError, match=r"'params/enc.weight' is float64 with step shape "
                                                r"\(3, 2\) but the run declares float64 \(2, 3\)"):
        TrajectoryStore.open(tmp_path / "s", "r")
    g["runs/bad"].update_attributes({"parameters": [["enc.weight", [3, 2], "float64"],
                                                    ["enc.bias", [3], "float32"]],
                                     "n_complete": True})
    with pytest.raises(DamagedStoreError, match="n_complete is True, not a non-negative integer"):
        TrajectoryStore.open(tmp_path / "s", "r")
    g["runs/bad"].update_attributes({"n_complete": 10})
    shutil.rmtree(tmp_path / "s/runs/bad/params/enc.bias")
    with pytest.raises(DamagedStoreError, match="array 'params/enc.bias' is missing"):
        TrajectoryStore.open(tmp_path / "s", "r")
    (tmp_path / "s/runs/bad/zarr.json").write_text("{not json")
    with pytest.raises(DamagedStoreError, match=r"run 'bad' is damaged: its metadata "
                                                r"runs/bad/zarr.json is unreadable"):
        TrajectoryStore.open(tmp_path / "s", "r")


def test_pre_release_format_1_stores_get_one_clear_error(tmp_path):
    """Format 1 was written by pre-release versions only: refused at open, naming the store."""
    root = zarr.open_group(str(tmp_path / "s"), mode="w", zarr_format=3, use_consolidated=False)
    root.update_attributes({"conjugacy_store": {"format_version": 1, "created_with": "0.1.0"}})
    root.create_group("runs")
    for mode in ("r", "a"):
        with pytest.raises(StoreError, match=re.escape(f"store {str(tmp_path / 's')!r}") + (
                " has format version 1: it was written by a pre-release version of conjugacy "
                r"\(created with 0.1.0\) and cannot be read")):
            TrajectoryStore.open(tmp_path / "s", mode)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["runs", "zarr.json"]


def test_a_run_without_its_format_version_is_damaged(tmp_path):
    make(tmp_path / "s", runs=("good", "bad"))
    meta_file = tmp_path / "s/runs/bad/zarr.json"
    meta = json.loads(meta_file.read_text())
    del meta["attributes"]["format_version"]
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(DamagedStoreError, match="run 'bad' is damaged: format_version is None, "
                                                "not 2"):
        TrajectoryStore.open(tmp_path / "s", "r")
    with TrajectoryStore.open(tmp_path / "s", "r", check=False) as st:
        (d,) = st.verify().damage
    assert (d.run, d.array) == ("bad", None) and d.problem.startswith("format_version is None")


# ------------------------------------------------------------------------------------- CLI
def _cli(args, columns=80):
    from typer.testing import CliRunner

    from conjugacy.cli import app

    return CliRunner().invoke(app, args, env={"COLUMNS": str(columns)})


def test_cli_verify_exit_codes(tmp_path):
    make(tmp_path / "s")
    res = _cli(["store", "verify", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert "1 runs, 8 chunks checked (8 with checksums): no damage found" in res.output
    (tmp_path / "s/runs/r0/params/enc.weight/c/2/0/0").unlink()
    f = tmp_path / "s/runs/r0/scalars/loss/c/0"
    f.write_bytes(f.read_bytes()[:-1] + bytes([f.read_bytes()[-1] ^ 4]))
    res = _cli(["store", "verify", str(tmp_path / "s")])
    assert res.exit_code == 1, res.output
    assert "2 damaged places" in res.output
    assert ("damage: run 'r0', array 'params/enc.weight', chunk c/2/0/0, records 8..9 (training "
            "steps 16..18): chunk file missing") in res.output
    assert ("damage: run 'r0', array 'scalars/loss', chunk c/0, records 0..9 (training steps "
            "0..18): checksum mismatch") in res.output
    res = _cli(["store", "verify", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "does not exist" in res.output
    (tmp_path / "other").mkdir()
    res = _cli(["store", "verify", str(tmp_path / "other")])
    assert res.exit_code == 2 and "not a conjugacy trajectory store" in res.output


def test_cli_ls_and_show_on_damaged_or_foreign_folders_one_line_exit_2(tmp_path):
    make(tmp_path / "s")
    (tmp_path / "s/runs/r0/params/enc.bias/zarr.json").write_text("[]")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign/zarr.json").write_bytes(b"\x00\xff garbage")
    (tmp_path / "file").write_text("x")
    cases = [["store", "ls", str(tmp_path / "s")], ["store", "show", str(tmp_path / "s"), "r0"],
             ["store", "ls", str(tmp_path / "foreign")], ["store", "ls", str(tmp_path / "file")]]
    for args in cases:
        res = _cli(args)
        assert res.exit_code == 2, (args, res.output)
        assert res.output.count("\n") == 1 and res.output.startswith("error: "), res.output
        assert "Traceback" not in res.output and args[2] in res.output
        assert not isinstance(res.exception, StoreError)


def test_cli_ls_never_cuts_run_names(tmp_path):
    long = "fcn-width-1024-lr0.05-seed12345-replica_017-gaussian-eps1e-3-a-very-long-run-name"
    with TrajectoryStore.open(tmp_path / "s", "w") as st:
        st.create_run(long, {"w": ((2,), "float32")})
        st.append(long, [0, 1], {"w": np.zeros((2, 2), np.float32)}, {"loss": [1.0, 0.5]})
        st.create_run("b", {"w": ((2,), "float32")})
    res = _cli(["store", "ls", str(tmp_path / "s")], columns=80)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == f"runs in {tmp_path / 's'} (format version 2):"
    assert lines[1].split() == ["run", "steps", "complete", "steps", "parameters", "features",
                                "dtype", "scalars", "finished"]
    assert lines[2].split() == ["b", "0", "-", "1", "2", "float32", "-", "no"]
    assert lines[3].split() == [long, "2", "0..1", "1", "2", "float32", "loss", "no"]


def test_lock_file_json_names_the_writer(tmp_path):
    import os

    with TrajectoryStore.open(tmp_path / "s", "a"):
        info = json.loads((tmp_path / "s/.conjugacy-write.lock").read_text())
        assert info["pid"] == os.getpid() and info["lock"] == "flock"
    assert not (tmp_path / "s/.conjugacy-write.lock").exists()


def test_unknown_codec_and_decreasing_steps_are_reported(tmp_path):
    make(tmp_path / "s")
    meta_file = tmp_path / "s/runs/r0/params/enc.bias/zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["codecs"].append({"name": "no-such-codec"})
    meta_file.write_text(json.dumps(meta))
    # a codec list other than the writer's is refused at open (issue 26 review 3, item 5)
    with pytest.raises(DamagedStoreError, match=r"run 'r0' is damaged: array 'params/enc.bias' "
                                                r"has codecs \['bytes', 'zstd', 'crc32c', "
                                                r"'no-such-codec'\], not the writer's"):
        TrajectoryStore.open(tmp_path / "s", "r")
    with TrajectoryStore.open(tmp_path / "s", "r", check=False) as st:
        (d,) = st.verify().damage
    assert d.run == "r0" and "array 'params/enc.bias' has codecs" in d.problem, d
    # step indices that do not increase (checksums intact) are caught too
    expected = make(tmp_path / "steps")
    g = zarr.open_group(str(tmp_path / "steps"), mode="r+")
    g["runs/r0/steps"][3] = 1
    with TrajectoryStore.open(tmp_path / "steps", "r") as st:
        np.testing.assert_array_equal(st.read()[0], expected["r0"])
        (d,) = st.verify().damage
    assert (d.array, d.records, d.problem) == ("steps", (2, 4),
                                               "training-step indices do not increase")


@pytest.mark.parametrize("n_damaged", [2, 7])
def test_several_damaged_runs_and_chunks_are_named_once_with_how_many_more(tmp_path, n_damaged):
    """The first damaged run (chunk), then "and N more damaged run(s)" (singular for 1), then
    where all damage is listed and, for runs, how Python reads the intact ones; the same line
    from the CLI."""
    runs = "abcdefgh"[:n_damaged + 1]
    make(tmp_path / "s", runs=tuple(runs))
    g = zarr.open_group(str(tmp_path / "s"), mode="r+")
    for run in runs[1:]:
        g[f"runs/{run}"].update_attributes({"n_complete": 12})
    with pytest.raises(DamagedStoreError) as err:
        TrajectoryStore.open(tmp_path / "s", "r")
    store = str(tmp_path / "s")
    more = "and 1 more damaged run;" if n_damaged == 2 else "and 6 more damaged runs;"
    expected = (
        f"store {store!r}, run 'b' is damaged: n_complete is 12 but array 'steps' holds 10 "
        f"steps; {more} `conjugacy store verify {store}` lists all damage; from Python, "
        "TrajectoryStore.open(..., check=False) reads the intact runs")
    assert str(err.value) == expected
    assert err.value.problem == "n_complete is 12 but array 'steps' holds 10 steps"
    for args in (["store", "ls", store], ["analyze", store]):
        res = _cli(args, columns=3000)
        said = res.output
        assert res.exit_code == 2 and said.count("\n") == 1, said
        assert said.startswith("error: ") and said.endswith(f"{expected}\n"), said
    with TrajectoryStore.open(tmp_path / "w", "w") as st:
        st.create_run("a", {"w": ((2,), "float64")}, chunk_steps=1)
        st.append("a", np.arange(8), {"w": np.ones((8, 2))})
    for i in range(n_damaged):
        (tmp_path / f"w/runs/a/params/w/c/{i}/0").unlink()
    with TrajectoryStore.open(tmp_path / "w", "r") as st:
        with pytest.raises(DamagedStoreError) as err:
            st.read("w", runs="a")
    more = "and 1 more damaged chunk;" if n_damaged == 2 else "and 6 more damaged chunks;"
    assert str(err.value) == (
        f"store {str(tmp_path / 'w')!r} is damaged: run 'a', array 'params/w', chunk c/0/0, "
        "records 0..0 (training steps 0..0): chunk file missing (deleted?): its records would "
        f"read as fill values; {more} `conjugacy store verify {tmp_path / 'w'}` lists all damage")
