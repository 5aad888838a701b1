"""The store's streamed reader within a memory limit (issue 21 item 4): spans, blocks, read-ahead
and reader threads sized from ``max_memory`` / the memory cgroup / MemAvailable, each chunk read
once, and one line naming ``max_memory`` and the minimum below the floor."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("zarr")

from conjugacy import TrajectoryStore, koopman_spectrum, streaming  # noqa: E402
from conjugacy.store import StoreError, _read  # noqa: E402
from conjugacy.streaming import available_memory, parse_memory, streamed_gram  # noqa: E402

# 3 runs x 30 steps x 3000 float32 features written with 8 KiB chunks: (8 steps, 188 features),
# 4 step chunks x 16 chunk columns per run. Hand-computed needs (bytes) with the default 128 MiB
# block (width 3000 features; spans of 2820 and 180 features), n_snapshots = 90: three float64
# blocks 3*8*90*w, span buffers 90*4*span features each, decoding 2*6016 per thread, the Gram's
# two buffers 2*8*90^2 = 129,600, slack 48 MiB.
FULL = 59_007_744  # w 3000, read-ahead, 3 threads
FULL_2 = 58_995_712  # 2 threads
NO_AHEAD_1 = 57_968_480  # w 3000, no read-ahead, 1 thread
HALF = 54_684_864  # w 1500 (spans of 1316 = 7 chunk columns), read-ahead, 3 threads
FLOOR = 54_092_000  # w 1456 (1 MiB blocks), no read-ahead, 1 thread


@pytest.fixture
def small_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr("conjugacy.store._write._MAX_CHUNK_BYTES", 8 * 2**10)
    rng = np.random.default_rng(5)
    data = []
    with TrajectoryStore.open(tmp_path / "s.zarr", "w") as store:
        for i in range(3):
            w = np.cumsum(rng.standard_normal((30, 3000)), axis=0).astype(np.float32)
            store.create_run(f"r{i}", {"w": ((3000,), np.float32)}, chunk_steps=8)
            store.append(f"r{i}", np.arange(30), {"w": w})
            data.append(w)
    store = TrajectoryStore.open(tmp_path / "s.zarr", "r")
    yield store, np.concatenate(data).astype(np.float64)
    store.close()


@pytest.fixture(autouse=True)
def mmap_fixes(monkeypatch):
    """Calls of fix_mmap_threshold (recorded, not applied: it is process-wide)."""
    calls = []
    monkeypatch.setattr(_read, "fix_mmap_threshold", lambda: calls.append(1) or True)
    return calls


def _available(monkeypatch, nbytes):
    monkeypatch.setattr(_read, "available_memory", lambda max_memory: (nbytes, "test budget"))


def _plan(source):
    p = source.read_plan()
    return p.width, p.read_ahead, p.threads, p.need, p.limited


def test_store_chunks_are_as_the_hand_computed_needs_assume(small_chunks):
    store, _ = small_chunks
    assert store.source("w")._arrays[0][0].chunks == (8, 188)


@pytest.mark.parametrize("available, plan", [
    (10 * 2**30, (3000, True, 3, FULL, False)),
    (FULL, (3000, True, 3, FULL, False)),
    (FULL - 1, (3000, True, 2, FULL_2, True)),
    (NO_AHEAD_1, (3000, False, 1, NO_AHEAD_1, True)),
    (NO_AHEAD_1 - 1, (1500, True, 3, HALF, True)),
    (FLOOR, (1456, False, 1, FLOOR, True)),
])
def test_read_plan_gives_up_threads_then_read_ahead_then_width(small_chunks, monkeypatch,
                                                               available, plan):
    store, _ = small_chunks
    _available(monkeypatch, available)
    assert _plan(store.source("w")) == plan


def test_below_the_floor_one_line_names_max_memory_and_the_minimum(small_chunks, monkeypatch):
    store, _ = small_chunks
    _available(monkeypatch, FLOOR - 1)
    source = store.source("w")
    with pytest.raises(StoreError) as err:
        koopman_spectrum(source, delays=2, rank=4)
    msg = str(err.value)
    assert "\n" not in msg and "test budget leaves 51 MiB" in msg
    least = int(msg.split("max_memory='")[1].split("M'")[0])
    assert abs(least - (streaming.process_rss() + FLOOR) / 2**20) < 16  # RSS moves a little
    # sizes under 1 MiB in KiB (they showed as "0 MiB"): a span of 1316 features x 90 snapshots
    # float32 (473,760 bytes), one thread decoding two copies of a 6,016-byte chunk
    assert "one chunk column of every run 463 KiB + decoding one chunk 12 KiB" in msg
    assert msg.endswith(f"but test budget leaves 51 MiB; stream with max_memory='{least}M' or "
                        "more (and a memory limit that allows it), fewer runs, or a store "
                        "recorded with a smaller chunk_steps")
    assert msg.startswith(f"store {str(store.path)!r}: streaming 3 runs x 90 snapshots needs "
                          f"{least} MiB in all (")
    assert err.value.with_option("--max-memory") == msg.replace(
        f"max_memory='{least}M'", f"--max-memory {least}M")


def test_the_floor_names_max_memory_as_set_and_sizes_under_1_mib_in_kib(small_chunks):
    """Issue 21 review: max_memory='1K' showed as "max_memory=0 MiB leaves 0 MiB", and
    1,000,000 bytes as 1 MiB."""
    store, _ = small_chunks
    for given, shown in (("1K", "1 KiB"), (1_000_000, "977 KiB"), (200, "200 bytes")):
        with pytest.raises(StoreError) as err:
            koopman_spectrum(store.source("w", max_memory=given), delays=2, rank=4)
        assert f"but max_memory={shown} leaves 0 bytes; stream with max_memory='" in str(
            err.value)
        assert f"but --max-memory {shown} leaves 0 bytes; stream with --max-memory " in (
            err.value.with_option("--max-memory"))


@pytest.mark.parametrize("available", [10 * 2**30, HALF, FLOOR])
def test_every_plan_reads_each_chunk_once_and_gives_the_same_gram(small_chunks, monkeypatch,
                                                                  available):
    store, data = small_chunks
    _available(monkeypatch, available)
    source = store.source("w")
    reads = []
    original = source._read_chunk
    monkeypatch.setattr(source, "_read_chunk", lambda *a: (reads.append(a[3]), original(*a))[1])
    gram, offsets = streamed_gram(source)
    # every (step chunk, chunk column) of every run exactly once: 3 runs x 4 x 16
    assert len(reads) == 192
    assert list(offsets) == [0, 30, 60, 90]
    ref = data @ data.T
    assert np.abs(gram - ref).max() <= 1e-12 * np.abs(ref).max()


def test_each_chunk_selection_is_distinct_per_run(small_chunks, monkeypatch):
    store, _ = small_chunks
    _available(monkeypatch, HALF)
    source = store.source("w")
    seen = []
    original = source._read_chunk
    monkeypatch.setattr(source, "_read_chunk",
                        lambda run, p, arr, sel, out: (seen.append((run, sel[0].start,
                                                                    sel[1].start, sel[1].stop)),
                                                       original(run, p, arr, sel, out))[1])
    list(source.blocks())
    assert len(seen) == len(set(seen)) == 192
    # spans of 7 chunk columns (1316 features): the chunk column 1316:1504 starts the second
    assert ("r0", 0, 1316, 1504) in seen and ("r2", 24, 2820, 3000) in seen


def test_tight_plan_spectrum_equals_the_full_one(small_chunks, monkeypatch):
    store, data = small_chunks
    full = koopman_spectrum(store.source("w"), delays=2, rank=6)
    _available(monkeypatch, FLOOR)
    tight = koopman_spectrum(store.source("w"), delays=2, rank=6)
    order = np.argsort(full.eigenvalues.real), np.argsort(tight.eigenvalues.real)
    assert np.abs(full.eigenvalues[order[0]] - tight.eigenvalues[order[1]]).max() < 1e-12


def test_max_memory_is_checked_when_the_source_is_made(small_chunks):
    store, _ = small_chunks
    assert store.source("w", max_memory="1G").max_memory == "1G"
    with pytest.raises(ValueError, match=r"max_memory must be a positive number of bytes or a "
                                         r"size such as '1G' or '512M', got 'lots'"):
        store.source("w", max_memory="lots")


def test_parse_memory():
    assert parse_memory("1G") == 2**30
    assert parse_memory("1.5GiB") == 3 * 2**29
    assert parse_memory("800m") == 800 * 2**20
    assert parse_memory("512MB") == 512 * 2**20
    assert parse_memory(" 64k ") == 65536
    assert parse_memory(4096) == 4096
    for bad in (0, -5, True, "0", "1X", "", "G", 1.5, None):
        with pytest.raises(ValueError, match="max_memory must be"):
            parse_memory(bad)


def _tree(root, files):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_cgroup_headroom_v2_and_v1(tmp_path):
    root = tmp_path / "cg"
    _tree(root, {
        "a/memory.max": "max\n",  # no limit above
        "a/b/memory.max": f"{2**30}\n",
        "a/b/memory.stat": "anon 104857600\nfile 999999999\n",  # page cache not counted
        "memory/memory.limit_in_bytes": "9223372036854771712\n",  # v1's "unlimited"
        "memory/x/memory.limit_in_bytes": f"{512 * 2**20}\n",
        "memory/x/memory.stat": "rss 1\ntotal_rss 209715200\ntotal_cache 5\n",
    })
    got = streaming._cgroup_headroom("0::/a/b\n", str(root))
    assert got == (2**30 - 104857600, "the memory cgroup's memory.max of 1.00 GiB")
    got = streaming._cgroup_headroom("4:memory:/x\n1:cpu:/\n", str(root))
    assert got == (512 * 2**20 - 209715200, "the memory cgroup's memory.limit_in_bytes of 512 MiB")
    # the tightest of both wins; no memory controller: no limit
    assert streaming._cgroup_headroom("4:memory:/x\n0::/a/b\n", str(root))[0] == 312 * 2**20
    assert streaming._cgroup_headroom("1:cpu:/\n", str(root)) is None


def test_available_memory_takes_the_least(monkeypatch):
    monkeypatch.setattr(streaming, "process_rss", lambda: 100 * 2**20)
    monkeypatch.setattr(streaming, "_cgroup_headroom", lambda: (500 * 2**20, "cg"))
    monkeypatch.setattr(streaming, "_address_space_headroom", lambda: None)
    assert available_memory("400M") == (300 * 2**20, "max_memory=400 MiB")
    assert available_memory("2G") == (500 * 2**20, "cg")
    assert available_memory(None) == (500 * 2**20, "cg")


def test_only_a_limited_plan_fixes_the_mmap_threshold(small_chunks, monkeypatch, mmap_fixes):
    store, _ = small_chunks
    _available(monkeypatch, FULL)
    list(store.source("w").blocks())
    assert mmap_fixes == []
    _available(monkeypatch, FULL - 1)
    list(store.source("w").blocks())
    assert mmap_fixes == [1]


def test_fix_mmap_threshold_applies_on_glibc():
    import platform
    import subprocess
    import sys

    code = "from conjugacy.streaming import fix_mmap_threshold as f; print(f(), f())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert out.stdout.split() == ([str(glibc)] * 2)


def test_cli_spectrum_below_the_floor_is_one_line_and_exit_2(small_chunks, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from conjugacy.cli import app

    store, _ = small_chunks
    _available(monkeypatch, FLOOR - 1)
    res = CliRunner().invoke(app, ["spectrum", str(store.path), "--delays", "2", "--rank", "4",
                                   "--params", "w", "--out", str(tmp_path / "s.npz")])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: store {str(store.path)!r}: streaming")
    assert "test budget leaves 51 MiB; stream with --max-memory " in lines[0]
    assert "max_memory" not in lines[0] and not (tmp_path / "s.npz").exists()


def test_address_space_limit_counts_and_nothing_left_is_zero(monkeypatch):
    # ulimit -v: the limit less the virtual size, named
    assert streaming._address_space_headroom(3 * 2**30, 2**30) == (
        2**31, "the address-space limit (ulimit -v) of 3.00 GiB")
    monkeypatch.setattr(streaming, "process_rss", lambda: 100 * 2**20)
    monkeypatch.setattr(streaming, "_cgroup_headroom", lambda: None)
    monkeypatch.setattr(streaming, "_address_space_headroom", lambda: (200 * 2**20, "as"))
    assert available_memory("2G") == (200 * 2**20, "as")
    # more in use than allowed: nothing left, never a negative figure
    assert available_memory("50M") == (0, "max_memory=50 MiB")


@pytest.mark.parametrize("available, said", [
    (0, "nothing is available"), (-5, "nothing is available"),
    (300 * 2**20, "300 MiB are available"),
    (int(1.99 * 2**30), "1.9 GiB are available"),
])
def test_path_memory_message_says_what_is_left(available, said):
    from conjugacy.spectrum_paths import check_path_memory
    with pytest.raises(ValueError, match=said):
        check_path_memory("gram", 40, 40, 196_000, 196_010, 10, available=available)
