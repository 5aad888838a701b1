"""Hostile stores (issue 26, items 1, 3, 4): nothing outside the store is written, truncated or
deleted through a link; metadata reads are bounded; forged lengths and chunk shapes are refused;
``verify`` reports a run whose metadata is lost and ``create_run`` never deletes its data. Every
case gives one StoreError within 5 s and 200 MB (measured with ``bounded``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import tracemalloc

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

from conjugacy._atomic import atomic_open  # noqa: E402
from conjugacy.store import LOCK_NAME, DamagedStoreError, StoreError, TrajectoryStore  # noqa: E402

LAYOUT = {"w": ((3, 2), "float64")}
N, CHUNK = 10, 4
USER = b"IMPORTANT USER DATA - must never change\n"
SECONDS, BYTES = 5.0, 200 * 2**20


def make(path, runs=("r0",)):
    with TrajectoryStore.open(path, "w") as st:
        for run in runs:
            st.create_run(run, LAYOUT, chunk_steps=CHUNK)
            st.append(run, np.arange(N), {"w": np.ones((N, 3, 2))}, {"loss": np.arange(N) * 1.0})
    return path


@contextlib.contextmanager
def bounded(name):
    """Fail if the block uses over 5 s of CPU or allocates over 200 MB; a SIGALRM after 12x that
    in wall time breaks a hang (CPU time, so that a loaded CI machine does not fail it)."""
    def alarm(*_):
        raise TimeoutError(f"{name}: still running after {12 * SECONDS} s (a hang)")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, 12 * SECONDS)
    tracemalloc.start()
    t0 = time.process_time()
    try:
        yield
    finally:
        dt = time.process_time() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert dt < SECONDS, f"{name}: {dt:.1f} s"
    assert peak < BYTES, f"{name}: {peak / 2**20:.0f} MB"


def user_file(tmp_path, name="user.txt"):
    f = tmp_path / "outside" / name
    f.parent.mkdir(exist_ok=True)
    f.write_bytes(USER)
    return f


# ----- item 1: links and special files --------------------------------------------------------
def test_symlinked_lock_file_is_refused_and_the_users_file_untouched(tmp_path):
    s = make(tmp_path / "s")
    target = user_file(tmp_path)
    (s / LOCK_NAME).symlink_to(target)
    with bounded("symlinked lock"), pytest.raises(StoreError, match="symbolic link"):
        TrajectoryStore.open(s, "a")
    assert target.read_bytes() == USER
    assert (s / LOCK_NAME).is_symlink()


def test_hard_linked_lock_file_is_refused_and_the_users_file_untouched(tmp_path):
    s = make(tmp_path / "s")
    target = user_file(tmp_path)
    os.link(target, s / LOCK_NAME)
    with bounded("hard-linked lock"), pytest.raises(StoreError, match="2 hard links"):
        TrajectoryStore.open(s, "a")
    assert target.read_bytes() == USER


def test_directory_link_in_runs_never_has_its_partial_files_deleted(tmp_path):
    s = make(tmp_path / "s")
    other = tmp_path / "outside" / "folder"
    (other / "sub").mkdir(parents=True)
    (other / "sub" / "data.partial").write_bytes(USER)
    (s / "runs" / "link").symlink_to(other, target_is_directory=True)
    with bounded("dir link in runs/"), pytest.raises(StoreError, match=r"'runs/link' is a symbolic"):
        TrajectoryStore.open(s, "a")
    assert (other / "sub" / "data.partial").read_bytes() == USER
    # a real dead writer's temporary is still removed
    os.unlink(s / "runs" / "link")
    (s / "runs" / "r0" / "x.partial").write_bytes(b"half")
    with TrajectoryStore.open(s, "a"):
        pass
    assert not (s / "runs" / "r0" / "x.partial").exists()


def test_symlinked_run_folder_is_refused_for_writing_and_reported_by_verify(tmp_path):
    s = make(tmp_path / "s")
    outside = make(tmp_path / "outside" / "other", runs=("r1",))
    before = sorted(p.name for p in (outside / "runs" / "r1").rglob("*"))
    (s / "runs" / "r1").symlink_to(outside / "runs" / "r1", target_is_directory=True)
    with bounded("symlinked run folder"), pytest.raises(StoreError, match="'runs/r1' is a symbolic"):
        with TrajectoryStore.open(s, "a") as st:
            st.delete_run("r1")
    assert sorted(p.name for p in (outside / "runs" / "r1").rglob("*")) == before
    with TrajectoryStore.open(s, "r", check=False) as st:
        rep = st.verify()
    assert not rep.ok and any("'runs/r1' is a symbolic link" in d.problem for d in rep.damage)


def test_symlinked_chunk_file_is_refused_never_read(tmp_path):
    s = make(tmp_path / "s")
    chunk = s / "runs/r0/params/w/c/1/0/0"
    chunk.unlink()
    chunk.symlink_to("/dev/zero")
    with bounded("symlinked chunk (write)"), pytest.raises(StoreError, match="symbolic link"):
        TrajectoryStore.open(s, "a")
    with bounded("symlinked chunk (read)"), TrajectoryStore.open(s, "r") as st:
        with pytest.raises(DamagedStoreError, match=r"chunk c/1/0/0.*symbolic link"):
            st.read()
        rep = st.verify()
    assert any(d.chunk == "c/1/0/0" and "symbolic link" in d.problem for d in rep.damage)


@pytest.mark.parametrize("which", ["zarr.json", "runs/zarr.json", "runs/r0/zarr.json",
                                   "runs/r0/params/w/zarr.json"])
def test_symlinked_zarr_json_to_dev_urandom_is_one_line(tmp_path, which):
    s = make(tmp_path / "s")
    (s / which).unlink()
    (s / which).symlink_to("/dev/urandom")
    for mode in ("r", "a"):
        with bounded(f"zarr.json link ({which}, {mode})"), pytest.raises(
                StoreError, match="symbolic link"):
            TrajectoryStore.open(s, mode)


def test_hard_links_outside_keep_their_content_after_appends_and_close(tmp_path):
    s = make(tmp_path / "s")
    # hard links to the store's own files, held outside: writes replace files (temp + rename)
    # and deletions unlink names, so the outside names keep their bytes
    keep = {}
    for i, f in enumerate(p for p in s.rglob("*") if p.is_file()):
        out = tmp_path / "outside" / f"link{i}"
        out.parent.mkdir(exist_ok=True)
        os.link(f, out)
        keep[out] = out.read_bytes()
    with TrajectoryStore.open(s, "a") as st:
        st.append("r0", np.arange(N, 3 * N), {"w": np.zeros((2 * N, 3, 2))})
        st.truncate("r0", N)
        st.delete_run("r0")
    assert all(p.read_bytes() == b for p, b in keep.items())


@pytest.mark.parametrize("which", ["zarr.json", "runs/r0/zarr.json", "runs/r0/params/w/c/0/0/0",
                                   LOCK_NAME])
def test_fifo_in_the_store_never_blocks(tmp_path, which):
    s = make(tmp_path / "s")
    (s / which).unlink(missing_ok=True)
    os.mkfifo(s / which)
    with bounded(f"FIFO {which}"):
        with contextlib.suppress(StoreError):  # refused, or (a chunk) reported when read
            with TrajectoryStore.open(s, "r") as st:
                if "/c/" in which:
                    with pytest.raises(DamagedStoreError, match="FIFO"):
                        st.read()
                else:  # the lock file: readers take no lock
                    assert st.read().shape == (1, N, 6)
        with pytest.raises(StoreError, match="FIFO"):
            TrajectoryStore.open(s, "a")


def test_atomic_write_never_follows_a_link_at_the_target_or_the_temporary(tmp_path, monkeypatch):
    target = user_file(tmp_path)
    out = tmp_path / "results.json"
    out.symlink_to(target)
    with atomic_open(out, "w") as fh:
        fh.write("new")
    assert target.read_bytes() == USER and not out.is_symlink() and out.read_text() == "new"
    import conjugacy._atomic as atomic

    monkeypatch.setattr(atomic.secrets, "token_hex", lambda n: "fixed")
    planted = tmp_path / f".results.json.{os.getpid()}.fixed.tmp"
    planted.symlink_to(target)
    with pytest.raises(FileExistsError):
        with atomic_open(out, "w") as fh:
            fh.write("through the link")
    assert target.read_bytes() == USER and out.read_text() == "new" and planted.is_symlink()


# ----- item 3: bounded metadata ---------------------------------------------------------------
def test_huge_and_deeply_nested_zarr_json_are_refused_in_one_line(tmp_path):
    s = make(tmp_path / "s")
    with open(s / "runs/r0/zarr.json", "r+b") as f:
        f.truncate(3 * 2**30)  # a sparse 3 GB file
    with bounded("3 GB run zarr.json"), pytest.raises(DamagedStoreError, match="over the limit"):
        TrajectoryStore.open(s, "r")
    (s / "runs/r0/zarr.json").write_text("[" * 200_000 + "]" * 200_000)
    with bounded("nested run zarr.json"), pytest.raises(DamagedStoreError, match="nested deeper"):
        TrajectoryStore.open(s, "r")
    (s / "zarr.json").write_text('{"a":' * 100 + "1" + "}" * 100)
    with bounded("nested root zarr.json"), pytest.raises(StoreError, match="nested deeper"):
        TrajectoryStore.open(s, "r")


def _edit(path, fn):
    meta = json.loads(path.read_text())
    fn(meta)
    path.write_text(json.dumps(meta))


def test_array_claiming_1e9_steps_appends_and_closes_fast(tmp_path):
    s = make(tmp_path / "s")
    for key in ("params/w", "steps", "scalars/loss"):
        _edit(s / f"runs/r0/{key}/zarr.json", lambda m: m.__setitem__(
            "shape", [10**9, *m["shape"][1:]]))
    with bounded("1e9-step array: append + close"):
        with TrajectoryStore.open(s, "a") as st:
            st.append("r0", [N], {"w": np.full((1, 3, 2), 7.0)})
    with TrajectoryStore.open(s, "r") as st:
        x = st.read()
        assert x.shape == (1, N + 1, 6) and np.all(x[0, -1] == 7.0)
        assert st.verify().ok


def test_chunk_shape_zero_is_damage_not_zero_division(tmp_path):
    s = make(tmp_path / "s")
    _edit(s / "runs/r0/params/w/zarr.json",
          lambda m: m["chunk_grid"]["configuration"].__setitem__("chunk_shape", [0, 3, 2]))
    with bounded("chunk_shape 0"), pytest.raises(DamagedStoreError, match="chunk shape"):
        TrajectoryStore.open(s, "r")


@pytest.mark.parametrize("steps", [10**9, 2**20])  # 2**20 x 6 float64: 48 MiB, over the writer's 32
def test_huge_chunk_shape_is_refused(tmp_path, steps):
    s = make(tmp_path / "s")
    _edit(s / "runs/r0/params/w/zarr.json",
          lambda m: m["chunk_grid"]["configuration"].__setitem__("chunk_shape", [steps, 3, 2]))
    with bounded(f"chunk_shape {steps}"), pytest.raises(
            DamagedStoreError, match="over the 33554432 bytes a chunk may hold"):
        TrajectoryStore.open(s, "r")


def test_forged_n_complete_far_beyond_the_chunk_files_is_one_line(tmp_path):
    s = make(tmp_path / "s")
    for key in ("params/w", "steps", "scalars/loss"):
        _edit(s / f"runs/r0/{key}/zarr.json", lambda m: m.__setitem__(
            "shape", [10**9, *m["shape"][1:]]))
    _edit(s / "runs/r0/zarr.json", lambda m: m["attributes"].__setitem__("n_complete", 10**9))
    with bounded("n_complete 1e9"), pytest.raises(DamagedStoreError, match="chunk files for at"):
        TrajectoryStore.open(s, "r")
    with bounded("n_complete 1e9 verify"), TrajectoryStore.open(s, "r", check=False) as st:
        rep = st.verify()
    assert len(rep.damage) == 1 and "n_complete is 1000000000" in rep.damage[0].problem


# ----- item 4: lost metadata ------------------------------------------------------------------
def test_verify_reports_a_run_whose_zarr_json_is_lost(tmp_path):
    s = make(tmp_path / "s", runs=("r0", "r1"))
    (s / "runs/r1/zarr.json").unlink()
    with TrajectoryStore.open(s, "r") as st:
        rep = st.verify()
    assert not rep.ok
    (d,) = rep.damage
    assert d.run == "r1" and "runs/r1/zarr.json is missing" in d.problem
    # attributes gone (zarr.json kept): also damage, not a half-created run
    (s / "runs/r1/zarr.json").write_text(json.dumps(
        {"zarr_format": 3, "node_type": "group", "attributes": {}}))
    with TrajectoryStore.open(s, "r") as st:
        rep = st.verify()
    assert [d.run for d in rep.damage] == ["r1"] and "attributes" in rep.damage[0].problem


def test_create_run_never_deletes_the_chunks_of_a_damaged_run(tmp_path):
    s = make(tmp_path / "s")
    (s / "runs/r0/zarr.json").unlink()
    chunks = sorted(p for p in s.rglob("*") if p.is_file() and "/c/" in p.as_posix())
    assert chunks
    with TrajectoryStore.open(s, "a") as st, bounded("create_run over damage"):
        with pytest.raises(StoreError, match="refusing to delete"):
            st.create_run("r0", LAYOUT, chunk_steps=CHUNK)
    assert all(p.is_file() for p in chunks)
    # a really half-created run (metadata only, killed before its attributes) is recreated
    with TrajectoryStore.open(tmp_path / "h", "w") as st:
        st.create_run("x", LAYOUT)
    _edit(tmp_path / "h/runs/x/zarr.json", lambda m: m.__setitem__("attributes", {}))
    with TrajectoryStore.open(tmp_path / "h", "a") as st:
        st.create_run("x", LAYOUT)
        assert st.runs() == ["x"]


# ----- checkpoints (issue 26, item 6) ------------------------------------------------------------
def test_every_flipped_bit_of_a_checkpoint_is_refused_on_load(tmp_path):
    """3 of 8 single-bit flips resumed silently into another trajectory before the checksum."""
    torch = pytest.importorskip("torch")
    from conjugacy.torch import load_checkpoint, save_checkpoint

    g = torch.Generator().manual_seed(0)
    state = {"model": {"w": torch.randn(16, 8, generator=g)}, "n_complete": 12, "step": 11}
    ck = save_checkpoint(tmp_path / "ck.pt", state)
    good = ck.read_bytes()
    assert torch.equal(load_checkpoint(ck)["model"]["w"], state["model"]["w"])
    rng = np.random.default_rng(26)
    positions = rng.choice(len(good) * 8, size=64, replace=False)
    for bit in positions:  # 64 single-bit flips anywhere: header, digest, zip, tensor bytes
        bad = bytearray(good)
        bad[bit // 8] ^= 1 << int(bit % 8)
        ck.write_bytes(bytes(bad))
        with pytest.raises(StoreError, match=r"ck\.pt' is damaged: .*Delete it"):
            load_checkpoint(ck)
    ck.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(StoreError, match="is damaged"):
        load_checkpoint(ck)


def test_a_damaged_checkpoint_stops_the_resume_in_one_line(tmp_path):
    torch = pytest.importorskip("torch")
    from conjugacy.torch import Recorder

    def run(n_steps):  # noqa: ANN202
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 2)
        with Recorder(tmp_path / "s", "r", model, chunk_steps=2, checkpoint=tmp_path / "ck.pt",
                      resume=True) as rec:
            start = rec.resumed_from
            if start is None:
                rec.record(0)
                start = 0
            for step in range(start + 1, n_steps + 1):
                with torch.no_grad():
                    model.weight.add_(0.5)
                rec.record(step)

    run(5)
    data = bytearray((tmp_path / "ck.pt").read_bytes())
    data[-100] ^= 0x10
    (tmp_path / "ck.pt").write_bytes(bytes(data))
    with pytest.raises(StoreError, match="is damaged.*Delete it to record the run again"):
        run(9)


def test_parameter_names_match_literally_unless_a_glob_is_asked():
    """Issue 26: a parameter named ``a[0].weight`` was matched as a glob (it selected
    ``a0.weight`` instead of itself)."""
    from conjugacy.store import select_names

    names = ["a[0].weight", "a0.weight", "fc1.weight", "fc2.weight", "fc3.bias"]
    assert select_names(names, "a[0].weight") == ["a[0].weight"]
    assert select_names(names, ["a[0].weight", "fc[12].weight"]) == [
        "a[0].weight", "fc1.weight", "fc2.weight"]  # a glob where no name is equal
    assert select_names(names, "*.bias") == ["fc3.bias"]
    with pytest.raises(StoreError, match=r"'a\[1\]\.weight' matches nothing"):
        select_names(names, "a[1].weight")


@pytest.mark.parametrize("kind", ["fifo", "link", "huge", "deep", "list", "settings"])
def test_a_hostile_study_stamp_is_refused_in_one_line(tmp_path, kind):
    """study.json of an output folder was read unbounded (a FIFO blocked, a link was followed,
    deep JSON gave RecursionError, a non-object an AttributeError)."""
    from conjugacy.study import STAMP_NAME, Study, check_stamp

    study = Study(name="s", conditions={"c": {}}, seeds=[0], n_replicas=1, n_records=4,
                  train=lambda *_a: None, settings={"a": 1})
    out = tmp_path / "out"
    out.mkdir()
    stamp = out / STAMP_NAME
    if kind == "fifo":
        os.mkfifo(stamp)
    elif kind == "link":
        (tmp_path / "target.json").write_text(json.dumps(study.stamp()))
        stamp.symlink_to(tmp_path / "target.json")
    elif kind == "huge":
        with open(stamp, "wb") as fh:
            fh.truncate(2**21)
    elif kind == "deep":
        stamp.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "list":
        stamp.write_text("[]")
    else:
        stamp.write_text(json.dumps({**study.stamp(), "settings": [1, 2]}))
    says = "was trained with other settings" if kind == "settings" else STAMP_NAME
    with bounded(f"stamp {kind}"), pytest.raises(ValueError, match=says):
        check_stamp(study, out)


# ----- issue 26 review: run names, verify's lines -------------------------------------------------
def test_a_run_name_longer_than_a_folder_name_can_be_is_a_store_error(tmp_path):
    """A 300-character run name raised a raw OSError [Errno 36] (file name too long)."""
    s = make(tmp_path / "s")
    with TrajectoryStore.open(s, "a") as st:
        with pytest.raises(StoreError, match=r"is 300 bytes long; run names are at most 200 "
                                             r"bytes \(the run's folder name\)"):
            st.create_run("a" * 300, LAYOUT)
        with pytest.raises(StoreError, match="is invalid"):
            st.create_run("r\n", LAYOUT)  # the pattern's $ matched before a final newline
        st.create_run("b" * 200, LAYOUT)  # the limit itself is allowed
        assert st.runs() == ["b" * 200, "r0"]
    assert sorted(p.name for p in (s / "runs").iterdir()) == ["b" * 200, "r0", "zarr.json"]


def test_verify_lines_of_store_wide_damage_have_no_empty_field(tmp_path):
    """`store verify` printed "damage: : 'runs/link' is a symbolic link" (an empty run field)."""
    from typer.testing import CliRunner

    from conjugacy.cli import app

    s = make(tmp_path / "s")
    (s / "runs" / "link").symlink_to(tmp_path, target_is_directory=True)
    got = CliRunner().invoke(app, ["store", "verify", str(s)])
    assert got.exit_code == 1, got.output
    lines = [ln.strip() for ln in got.output.splitlines() if "damage:" in ln]
    assert lines == [f"damage: 'runs/link' is a symbolic link to {str(tmp_path)!r} (refused: a "
                     "store holds only folders and regular files)"], got.output


def test_a_run_folder_named_with_a_final_newline_is_not_a_run(tmp_path):
    """The run-name pattern was ``^...$`` used with ``match``: ``$`` matches before a final
    newline, so a folder ``runs/a\\n`` (a copy of a run) was listed, read and verified as run
    ``'a\\n'``. Now no reader takes it for a run and ``verify`` names it in one note."""
    s = make(tmp_path / "s")
    (s / "runs" / "a\n").mkdir()
    for f in (s / "runs" / "r0").rglob("*"):  # a complete copy of r0
        dst = s / "runs" / "a\n" / f.relative_to(s / "runs" / "r0")
        dst.mkdir(parents=True) if f.is_dir() else dst.write_bytes(f.read_bytes())
    with bounded("run folder 'a\\n'"), TrajectoryStore.open(s, "r") as st:
        assert st.runs() == ["r0"]
        assert "a\n" not in st
        with pytest.raises(StoreError, match=r"unknown run 'a\\n'"):
            st.steps("a\n")
        rep = st.verify()
    assert rep.runs == ["r0"] and rep.ok
    assert rep.notes == ["folder runs/'a\\n' is not a run (not a run name): ignored"]


def test_verify_names_a_linked_run_folder_in_one_line(tmp_path):
    """A run folder that is a link to a folder without a run got two lines, the second false:
    "run 'link' is half-created (no n_complete): ignored; a writer creating it again replaces
    it" (a writer refuses the store). A link to a complete run was verified through the link and
    counted as a run. Now: one damage line naming the link and its target, nothing else."""
    s = make(tmp_path / "s")
    (tmp_path / "empty").mkdir()
    (s / "runs" / "half").symlink_to(tmp_path / "empty", target_is_directory=True)
    (s / "runs" / "full").symlink_to(s / "runs" / "r0", target_is_directory=True)
    with bounded("linked run folders"), TrajectoryStore.open(s, "r") as st:
        rep = st.verify()
    assert rep.runs == ["r0"] and rep.notes == []
    assert [d.problem for d in rep.damage] == [
        f"'runs/{name}' is a symbolic link to {str(target)!r} (refused: a store holds only "
        "folders and regular files)"
        for name, target in (("full", s / "runs" / "r0"), ("half", tmp_path / "empty"))]


# ----- review 3, item 1: a zstd frame decoding to more than its chunk -------------------------
def _frame(raw: bytes) -> bytes:
    """``raw`` encoded as the writer encodes a chunk: one zstd frame, then its CRC-32C."""
    import struct

    import google_crc32c
    import numcodecs

    z = numcodecs.Zstd(level=19).encode(raw)
    return z + struct.pack("<I", google_crc32c.value(z))


@pytest.mark.parametrize("size, fcs", [(0, 1), (100, 1), (8000, 2), (100_000, 4)])
def test_zstd_content_size_reads_every_header_form(size, fcs):
    import numcodecs

    from conjugacy.store._safe import zstd_content_size

    frame = numcodecs.Zstd().encode(bytes(size))
    assert zstd_content_size(frame) == size
    assert (frame[4] >> 6) == {1: 0, 2: 1, 4: 2}[fcs]  # the forms tested are the ones named
    assert zstd_content_size(frame[:4] + b"\x00" + frame[5:]) is None  # no size in the header
    assert zstd_content_size(b"\x00" + frame[1:]) is None  # not a zstd frame
    assert zstd_content_size(frame[:5]) is None  # cut short


def test_a_chunk_whose_frame_decodes_to_64_mib_is_refused_from_its_header(tmp_path):
    s = make(tmp_path / "s")
    (s / "runs/r0/params/w/c/0/0/0").write_bytes(_frame(bytes(64 * 2**20)))  # 2 kB on disk
    msg = "declares 67108864 decoded bytes, not the 192 bytes of a chunk"
    with bounded("64 MiB frame"), pytest.raises(DamagedStoreError, match=msg):
        TrajectoryStore.open(s, "r").read()
    with bounded("64 MiB frame verify"), TrajectoryStore.open(s, "r", check=False) as st:
        rep = st.verify()
    assert [(d.chunk, msg in d.problem) for d in rep.damage] == [("c/0/0/0", True)]
    (s / "runs/r0/params/w/c/0/0/0").write_bytes(_frame(bytes(192)))  # the right size reads
    with TrajectoryStore.open(s, "r") as st:
        assert st.read()[0, :CHUNK].tolist() == [[0.0] * 6] * CHUNK


@pytest.mark.parametrize("tail", ["second frame", "truncated", "skippable frame"])
def test_a_chunk_with_more_than_its_one_frame_is_refused_before_decoding(tmp_path, tail):
    """Final review: the header check read only the first frame; numcodecs decodes every frame
    of the file, so a right first frame followed by a frame of 64 MiB of zeros (and a valid
    CRC-32C) was decoded (a 261 kB chunk reached 1.69 GB in `spectrum`). Now the frame's blocks
    are walked (3-byte headers, never decoded) and the file must end with its CRC-32C."""
    import struct

    import google_crc32c
    import numcodecs

    s = make(tmp_path / "s")
    first = numcodecs.Zstd().encode(bytes(192))
    extra = {"second frame": numcodecs.Zstd(level=19).encode(bytes(64 * 2**20)),
             "truncated": b"", "skippable frame": b"\x50\x2a\x4d\x18" + struct.pack("<I", 4)
             + b"abcd"}[tail]
    body = first[:-2] if tail == "truncated" else first + extra
    (s / "runs/r0/params/w/c/0/0/0").write_bytes(body + struct.pack("<I", google_crc32c.value(body)))
    msg = ("chunk file is truncated: it has 20 bytes, its zstd frame and checksum need at least 22"
           if tail == "truncated" else "is not one zstd frame and its checksum")
    with bounded(f"chunk with {tail}"), pytest.raises(DamagedStoreError, match=msg):
        TrajectoryStore.open(s, "r").read()
    with bounded(f"chunk with {tail}, verify"), TrajectoryStore.open(s, "r", check=False) as st:
        rep = st.verify()
    assert [(d.chunk, msg in d.problem) for d in rep.damage] == [("c/0/0/0", True)]


@pytest.mark.parametrize("cut, crc, need", [(0, False, 12), (3, False, 12), (9, False, 12),
                                             (12, False, 13), (20, False, 28),
                                             (5, True, 12), (8, True, 13), (9, True, 28)])
def test_a_chunk_cut_to_a_few_bytes_is_named_truncated(tmp_path, cut, crc, need):
    """Final review: a frame cut to 5 bytes with a valid CRC-32C after it was refused as
    'declares 2164 decoded bytes', the size read from its checksum bytes; a cut file (no CRC)
    was 'checksum mismatch'. Every cut is now named truncated, with the bytes it needs (the
    writer's chunk: a 6-byte header, one 3 + 15-byte block, its 4-byte CRC-32C: 28 bytes)."""
    import struct

    import google_crc32c

    s = make(tmp_path / "s")
    chunk = s / "runs/r0/params/w/c/0/0/0"
    full = chunk.read_bytes()
    assert len(full) == 28 and full[4] == 0x20 and full[6] == 0x7D  # the sizes named above
    body = full[:cut] + (struct.pack("<I", google_crc32c.value(full[:cut])) if crc else b"")
    chunk.write_bytes(body)
    msg = (f"chunk file is truncated: it has {len(body)} bytes, its zstd frame and checksum need "
           f"at least {need} (an interrupted copy or a full disk?)")
    with bounded(f"cut to {cut}"), pytest.raises(DamagedStoreError) as err:
        TrajectoryStore.open(s, "r").read()
    assert msg in str(err.value) and "declares" not in str(err.value)
    with TrajectoryStore.open(s, "r", check=False) as st:
        assert [d.problem.split(";")[0] for d in st.verify().damage] == [msg.split(";")[0]]


def test_a_large_chunk_cut_short_is_truncated_not_a_compression_bomb(tmp_path):
    """A 600 kB chunk cut to 1 kB decodes to more than 256x its size: it was named a
    compression bomb, with the advice to lift the bound; it is truncated."""
    with TrajectoryStore.open(tmp_path / "s", "w") as st:
        st.create_run("r0", {"w": ((300, 250), "float64")}, chunk_steps=CHUNK)
        st.append("r0", np.arange(N), {"w": np.random.default_rng(0).normal(size=(N, 300, 250))},
                  {"loss": np.arange(N) * 1.0})
    chunk = tmp_path / "s/runs/r0/params/w/c/0/0/0"
    chunk.write_bytes(chunk.read_bytes()[:1000])
    with pytest.raises(DamagedStoreError) as err:
        TrajectoryStore.open(tmp_path / "s", "r").read()
    assert "chunk file is truncated: it has 1000 bytes" in str(err.value)
    assert "compression bomb" not in str(err.value)


# ----- review 3, item 5: codecs other than the writer's -----------------------------------------
@pytest.mark.parametrize("edit, msg", [
    (lambda m: m["codecs"].insert(0, {"name": "transpose", "configuration": {"order": [1, 0, 2]}}),
     "has codecs ['transpose', 'bytes', 'zstd', 'crc32c'], not the writer's"),
    (lambda m: m["codecs"][0].__setitem__("configuration", {"endian": "big"}),
     "has byte order 'big', not the writer's 'little'"),
    (lambda m: m.__setitem__("storage_transformers", [{"name": "x"}]), "has storage transformers"),
    (lambda m: m.__setitem__("chunk_key_encoding", {"name": "v2"}), "has chunk key encoding"),
    (lambda m: m.__setitem__("codecs", "bytes"), "has codecs bytes, not"),
])
def test_codecs_other_than_the_writers_are_damage_and_refused(tmp_path, edit, msg):
    """An edited codec list made reads return permuted (transpose) or byte-swapped (big
    endian) values and verify say 'no damage'; a storage transformer was ignored. Each is
    refused on read in one line and reported by verify."""
    s = make(tmp_path / "s")
    _edit(s / "runs/r0/params/w/zarr.json", edit)
    with bounded("codecs"), pytest.raises(DamagedStoreError) as err:
        TrajectoryStore.open(s, "r")
    assert "array 'params/w' " + msg in str(err.value)
    with TrajectoryStore.open(s, "r", check=False) as st:
        rep = st.verify()
    assert not rep.ok and any(msg in d.problem for d in rep.damage), rep.damage
