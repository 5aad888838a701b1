"""One writer for sure (issue 13, section 5): the writer lock is an flock, taken atomically by
exactly one of many processes racing after a crash; close releases only its own lock; only dead
writers' temporary files are removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("zarr")

from conjugacy.store import LOCK_NAME, StoreError, TrajectoryStore  # noqa: E402

# Forks N_PROC children per round; they race to open the store for writing the moment they are
# released. The winner marks an in-flight temporary file and holds the lock until the coordinator
# SIGKILLs it (a crash: the lock file stays, with the dead writer's pid), so every round after the
# first races over a crashed writer's store.
COORDINATOR = textwrap.dedent(r'''
    import json, os, signal, sys, time
    from pathlib import Path
    import zarr  # noqa: F401  imported (no I/O yet) before forking, so children start at once
    from conjugacy.store import LOCK_NAME, StoreError, TrajectoryStore

    store, n_proc, rounds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    for rnd in range(rounds):
        go_r, go_w = os.pipe()
        res_r, res_w = os.pipe()
        pids = []
        for _ in range(n_proc):
            pid = os.fork()
            if pid == 0:
                os.close(go_w)
                os.close(res_r)
                os.read(go_r, 1)
                try:
                    st = TrajectoryStore.open(store, "a")
                    (store / f"inflight-{rnd}.partial").write_bytes(b"x")
                    msg = {"pid": os.getpid(), "won": True}
                except StoreError as exc:
                    msg = {"pid": os.getpid(), "won": False, "error": str(exc)[:300]}
                os.write(res_w, (json.dumps(msg) + "\n").encode())
                if msg["won"]:
                    time.sleep(600)
                os._exit(0)
            pids.append(pid)
        os.close(go_r)
        os.close(res_w)
        os.write(go_w, b"g" * n_proc)  # release them all at once
        with os.fdopen(res_r) as f:
            results = [json.loads(f.readline()) for _ in range(n_proc)]
        lock = json.loads((store / LOCK_NAME).read_text())
        temps = sorted(p.name for p in store.glob("inflight-*.partial"))
        for r in results:
            if r["won"]:
                os.kill(r["pid"], signal.SIGKILL)  # the writer crashes holding the lock
        for pid in pids:
            os.waitpid(pid, 0)
        print(json.dumps({"round": rnd, "results": results, "lock_pid": lock["pid"],
                          "temps": temps, "lock_left": (store / LOCK_NAME).exists()}), flush=True)
''')


def test_many_processes_racing_after_crashes_exactly_one_writer(tmp_path):
    n_proc, rounds = 6, 20
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", COORDINATOR, str(tmp_path / "s"), str(n_proc),
                          str(rounds)], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    reports = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(reports) == rounds
    for rep in reports:
        winners = [r for r in rep["results"] if r["won"]]
        assert len(winners) == 1, rep  # exactly one writer, every round
        assert rep["lock_pid"] == winners[0]["pid"]
        for r in rep["results"]:
            if not r["won"]:
                assert "already open for writing" in r["error"], r
        # the losers did not remove the winner's in-flight temporary; the winner removed the
        # temporary of the previous round's (crashed) writer
        assert rep["temps"] == [f"inflight-{rep['round']}.partial"], rep
        assert rep["lock_left"]  # the crashed writer's lock file stays (no flock on it)
    with TrajectoryStore.open(tmp_path / "s", "a") as st:  # the last crash left it usable
        st.create_run("r", {"w": ((1,), "float32")})
        assert not list((tmp_path / "s").glob("inflight-*"))


def test_close_releases_only_its_own_lock(tmp_path):
    a = TrajectoryStore.open(tmp_path / "s", "a")
    (tmp_path / "s" / LOCK_NAME).unlink()  # deleted by hand while a writes (a mistake)
    b = TrajectoryStore.open(tmp_path / "s", "a")  # so b gets a lock on a new file
    a.close()  # must not delete b's lock file
    assert json.loads((tmp_path / "s" / LOCK_NAME).read_text())["pid"] == os.getpid()
    with pytest.raises(StoreError, match="already open for writing"):
        TrajectoryStore.open(tmp_path / "s", "a")
    b.close()
    assert not (tmp_path / "s" / LOCK_NAME).exists()
    TrajectoryStore.open(tmp_path / "s", "a").close()


def test_second_writer_leaves_the_first_writers_temporaries(tmp_path):
    a = TrajectoryStore.open(tmp_path / "s", "a")
    a.create_run("r", {"w": ((2,), "float32")}, chunk_steps=2)
    inflight = tmp_path / "s/runs/r/params/w/c/0/0.0123abcd.partial"  # as zarr names them
    inflight.parent.mkdir(parents=True)
    inflight.write_bytes(b"half a chunk")
    with pytest.raises(StoreError, match="already open for writing"):
        TrajectoryStore.open(tmp_path / "s", "a")
    assert inflight.exists()
    a.append("r", [0, 1], {"w": np.ones((2, 2), np.float32)})
    a.close()  # a normal close: whatever temporary is left now is garbage
    with TrajectoryStore.open(tmp_path / "s", "a") as b:
        assert not inflight.exists()
        np.testing.assert_array_equal(b.read()[0], np.ones((2, 2)))


def test_a_foreign_folder_is_never_cleaned(tmp_path):
    (tmp_path / "mine" / "sub").mkdir(parents=True)
    keep = [tmp_path / "mine" / "download.partial", tmp_path / "mine" / "sub" / "x.partial",
            tmp_path / "mine" / ".write-probe-1234"]
    for f in keep:
        f.write_text("user data")
    with pytest.raises(StoreError, match="not a conjugacy trajectory store"):
        TrajectoryStore.open(tmp_path / "mine", "a")
    assert all(f.exists() for f in keep)
    assert not (tmp_path / "mine" / LOCK_NAME).exists()


def test_a_forked_child_closing_its_copy_keeps_the_parents_lock(tmp_path):
    st = TrajectoryStore.open(tmp_path / "s", "a")
    pid = os.fork()
    if pid == 0:  # e.g. a DataLoader worker that inherited the recorder's store
        try:
            st.close()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert (tmp_path / "s" / LOCK_NAME).exists()
    with pytest.raises(StoreError, match=f"process {os.getpid()}"):
        TrajectoryStore.open(tmp_path / "s", "a")
    st.close()
    assert not (tmp_path / "s" / LOCK_NAME).exists()


def test_mode_w_race_creates_once(tmp_path):
    """Two "w" openers of a new path: the second, even after the first closed, is refused."""
    TrajectoryStore.open(tmp_path / "s", "w").close()
    with pytest.raises(StoreError, match="exists and is not empty"):
        TrajectoryStore.open(tmp_path / "s", "w")
