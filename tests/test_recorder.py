"""Tests of conjugacy.torch.Recorder: real training recorded bit-exactly, durability, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zarr")
from sklearn.datasets import load_digits  # noqa: E402
from torch import nn  # noqa: E402

from conjugacy.store import StoreError, TrajectoryStore  # noqa: E402
from conjugacy.torch import Recorder, load_checkpoint, select_parameters  # noqa: E402

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import _kill_worker  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return torch.tensor(d.data / 16.0, dtype=torch.float32), torch.tensor(d.target)


def mlp(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).to(dtype)


def flat(model, names):
    params = dict(model.named_parameters())
    return np.concatenate([params[n].detach().numpy().ravel() for n in names])


def train_and_snapshot(model, x, y, n_steps, rec, every=1):
    """Train with SGD, record after each step; return the in-memory snapshots of recorded steps."""
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    snaps, losses = [flat(model, rec.names)], [np.nan]
    rec.record(0)
    for step in range(1, n_steps + 1):
        idx = slice((step * 32) % 1600, (step * 32) % 1600 + 32)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x[idx].to(model[0].weight.dtype)), y[idx])
        loss.backward()
        opt.step()
        if rec.record(step, loss=loss.item()):
            snaps.append(flat(model, rec.names))
            losses.append(loss.item())
    return np.stack(snaps), np.array(losses)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_digits_training_recorded_bit_exactly(tmp_path, digits, dtype):
    x, y = digits
    model = mlp(dtype)
    with Recorder(tmp_path / "s", "run", model, ["0.*", "2.weight"], chunk_steps=7,
                  metadata={"seed": 0}) as rec:
        assert rec.names == ["0.weight", "0.bias", "2.weight"]
        snaps, losses = train_and_snapshot(model, x, y, 30, rec)
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        data = st.read()
        info = st.run_info("run")
        assert data.shape == (1, 31, 16 * 64 + 16 + 160)
        assert data.dtype == (np.float32 if dtype == torch.float32 else np.float64)
        np.testing.assert_array_equal(data[0], snaps)  # bit-exact
        np.testing.assert_array_equal(st.scalars("run", "loss"), losses)
        np.testing.assert_array_equal(st.steps("run"), np.arange(31))
        assert info["n_complete"] == 31 and info["finished"] is True
        assert info["metadata"]["seed"] == 0 and info["metadata"]["model_class"] == "Sequential"
        # a single parameter reads back as its own slice of the features
        np.testing.assert_array_equal(st.read("2.weight")[0], snaps[:, -160:])
    assert not (tmp_path / "s" / ".conjugacy-write.lock").exists()


def test_every_k_steps_and_buffer(tmp_path, digits):
    x, y = digits
    model = mlp()
    rec = Recorder(tmp_path / "s", "run", model, "2.*", every=4, chunk_steps=3)
    snaps, _ = train_and_snapshot(model, x, y, 13, rec)
    # records 0,4,8,12 -> one chunk of 3 flushed, 1 in the buffer
    assert rec.n_complete == 3 and rec.n_buffered == 1
    rec.close()
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        np.testing.assert_array_equal(st.steps("run"), [0, 4, 8, 12])
        np.testing.assert_array_equal(st.read()[0], snaps)


def test_bad_selection_names_available_parameters(tmp_path):
    model = mlp()
    with pytest.raises(ValueError, match=r"'fc9\.\*'.*available parameters: 0\.weight, 0\.bias"):
        Recorder(tmp_path / "s", "run", model, ["0.weight", "fc9.*"])
    with pytest.raises(ValueError, match="available parameters"):
        select_parameters(model, "nope")
    # the refused recorder released the store
    TrajectoryStore.open(tmp_path / "s", "a").close()


def test_record_validates_steps(tmp_path):
    with Recorder(tmp_path / "s", "run", mlp()) as rec:
        rec.record(0)
        with pytest.raises(ValueError, match="step must increase"):
            rec.record(0)
        with pytest.raises(ValueError, match="non-negative integer"):
            rec.record(-1)
        with pytest.raises(TypeError, match="scalar loss"):
            rec.record(1, loss="high")


def test_existing_run_refused_without_resume(tmp_path):
    with Recorder(tmp_path / "s", "run", mlp()) as rec:
        rec.record(0)
    with pytest.raises(StoreError, match="already exists.*resume=True with checkpoint=PATH"):
        Recorder(tmp_path / "s", "run", mlp())
    # resuming without a checkpoint is allowed (the caller restored the model) but said loudly:
    # otherwise a fresh model would silently continue the recorded trajectory
    from conjugacy.torch.recorder import ResumeWithoutCheckpointWarning

    with pytest.warns(ResumeWithoutCheckpointWarning, match="after step 0 without a checkpoint"):
        Recorder(tmp_path / "s", "run", mlp(), resume=True).close()


def test_exception_keeps_recorded_steps(tmp_path, digits):
    x, y = digits
    model = mlp()
    with pytest.raises(RuntimeError, match="boom"):
        with Recorder(tmp_path / "s", "run", model, chunk_steps=100) as rec:
            rec.record(0)
            rec.record(1, loss=1.5)
            raise RuntimeError("boom")
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        info = st.run_info("run")
        assert info["n_complete"] == 2 and info["finished"] is False
        np.testing.assert_array_equal(st.scalars("run", "loss"), [np.nan, 1.5])


def test_bfloat16_stored_as_float32(tmp_path):
    model = mlp().to(torch.bfloat16)
    with Recorder(tmp_path / "s", "run", model, "2.bias") as rec:
        rec.record(0)
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        out = st.read()
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out[0, 0], model[2].bias.float().detach().numpy())
        meta = st.run_info("run")["metadata"]
        assert meta["source_dtype"] == {"2.bias": "bfloat16"}
        assert (meta["selection"], meta["every"], meta["model_class"]) == ("2.bias", 1, "Sequential")


def test_metadata_records_the_selection_as_given(tmp_path):
    """The patterns the caller gave (not the names they matched), a list kept a list."""
    model = mlp()
    with Recorder(tmp_path / "s", "a", model, ["2.*", "0.weight"], every=3) as rec:
        rec.record(0)
    with Recorder(tmp_path / "s", "b", model) as rec:
        rec.record(0)
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        assert st.metadata("a")["selection"] == ["2.*", "0.weight"]
        assert st.metadata("a")["every"] == 3
        assert st.parameters("a") == ["0.weight", "2.weight", "2.bias"]
        assert st.metadata("b")["selection"] == "*"
        assert st.metadata("b")["n_model_parameters"] == sum(p.numel() for p in model.parameters())


def _worker(*args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(HERE / "_kill_worker.py"), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            **kw)


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    n_steps = 30
    d = load_digits()
    data = tmp_path / "digits.npz"
    np.savez(data, data=d.data, target=d.target)
    victim = _worker(data, tmp_path / "s", tmp_path / "ck.pt", n_steps, 21)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same as the worker: identical floating-point results
    try:  # the uninterrupted reference, in this process while the victim starts
        _kill_worker.train(str(data), str(tmp_path / "ref"), str(tmp_path / "ref.pt"), n_steps)
    finally:
        torch.set_num_threads(threads)
    assert victim.stdout.readline().strip() == "HANGING", victim.stderr.read()
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL

    lock = tmp_path / "s" / ".conjugacy-write.lock"
    assert lock.exists()  # left behind by the killed writer
    with TrajectoryStore.open(tmp_path / "s", "r") as st, \
            TrajectoryStore.open(tmp_path / "ref", "r") as st_ref:
        # records 0..21 were taken: chunks of 8 -> steps 0..15 flushed, 16..21 lost
        assert st.n_complete("mlp") == 16
        assert st.run_info("mlp")["finished"] is False
        np.testing.assert_array_equal(st.read()[0], st_ref.read(steps=slice(0, 16))[0])
    assert load_checkpoint(tmp_path / "ck.pt")["n_complete"] == 16

    resumed = _worker(data, tmp_path / "s", tmp_path / "ck.pt", n_steps, -1)  # takes over stale lock
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    with TrajectoryStore.open(tmp_path / "s", "r") as st, \
            TrajectoryStore.open(tmp_path / "ref", "r") as st_ref:
        assert st.run_info("mlp")["finished"] is True
        np.testing.assert_array_equal(st.steps("mlp"), np.arange(n_steps + 1))
        np.testing.assert_array_equal(st.read(), st_ref.read())  # bit-exact
        np.testing.assert_array_equal(st.scalars("mlp", "loss"), st_ref.scalars("mlp", "loss"))


def _train_resumable(digits, store, ckpt, n_steps, *, chunk_steps, every=1, fail_at=None,
                     loss=False, branch=None):
    """Adam on the MLP over batches of 16 digits, recorded with a resumable checkpoint (and the
    second branch ``branch(optimizer)``, if given); raises KeyboardInterrupt after step
    ``fail_at``; returns the step it resumed from (0 if fresh)."""
    x, y = digits
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with Recorder(store, "r", model, every=every, chunk_steps=chunk_steps, optimizer=opt,
                  checkpoint=ckpt, resume=True,
                  branch=None if branch is None else branch(opt)) as rec:
        start = rec.resumed_from
        if start is None:
            rec.record(0)
            start = 0
        for step in range(start + 1, n_steps + 1):
            idx = slice(step * 16, step * 16 + 16)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
            rec.record(step, **({"loss": float(step)} if loss else {}))
            if step == fail_at:
                raise KeyboardInterrupt
    return start


def test_checkpoint_resume_in_process(tmp_path, digits):
    """Interrupt (exception) after a partial chunk; resuming cuts back to the checkpoint."""

    def run(store, ckpt, n_steps, fail_at=None):
        return _train_resumable(digits, store, ckpt, n_steps, chunk_steps=5, fail_at=fail_at)

    run(tmp_path / "ref", tmp_path / "ref.pt", 17)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "s", tmp_path / "ck.pt", 17, fail_at=12)
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        assert st.n_complete("r") == 13  # the exception flushed the buffer
    assert load_checkpoint(tmp_path / "ck.pt")["n_complete"] == 10
    run(tmp_path / "s", tmp_path / "ck.pt", 17)
    with TrajectoryStore.open(tmp_path / "s", "r") as a, TrajectoryStore.open(tmp_path / "ref",
                                                                              "r") as b:
        np.testing.assert_array_equal(a.steps("r"), np.arange(18))
        np.testing.assert_array_equal(a.read(), b.read())


def test_finished_run_extends_from_its_close_checkpoint_bit_for_bit(tmp_path, digits):
    """Closing a run as finished right after its last record writes a checkpoint, so extending
    it later repeats no step and equals an uninterrupted run; an optimizer step after the last
    record (steps not a multiple of ``every``) leaves the last flush's checkpoint instead."""

    def run(store, ckpt, n_steps, every=1):
        return _train_resumable(digits, store, ckpt, n_steps, chunk_steps=4, every=every,
                                loss=True)

    run(tmp_path / "ref", tmp_path / "ref.pt", 17)
    assert run(tmp_path / "s", tmp_path / "ck.pt", 10) == 0
    ck = load_checkpoint(tmp_path / "ck.pt")
    assert (ck["step"], ck["n_complete"]) == (10, 11)  # the close, not the flush of 0..7
    assert run(tmp_path / "s", tmp_path / "ck.pt", 17) == 10  # extended from step 10
    with TrajectoryStore.open(tmp_path / "s", "r") as a, \
            TrajectoryStore.open(tmp_path / "ref", "r") as b:
        assert a.run_info("r")["finished"] is True
        np.testing.assert_array_equal(a.steps("r"), np.arange(18))
        np.testing.assert_array_equal(a.read(), b.read())
        np.testing.assert_array_equal(a.scalars("r", "loss"), b.scalars("r", "loss"))

    run(tmp_path / "e", tmp_path / "e.pt", 14, every=3)  # records 0, 3, ..., 12; steps to 14
    ck = load_checkpoint(tmp_path / "e.pt")
    assert (ck["step"], ck["n_complete"]) == (9, 4)  # the flush after record 9, not the close


# ---------------------------------------------------------------------- checkpoint failures
def _tiny_run(store, ckpt, n_steps, **kw):
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recorder(store, "r", model, chunk_steps=2, optimizer=opt, checkpoint=ckpt, **kw)
    start = rec.resumed_from
    if start is None:
        rec.record(0)
        start = 0
    for step in range(start + 1, n_steps + 1):
        with torch.no_grad():
            model.weight.add_(0.5)
        rec.record(step)
    return rec


def test_full_disk_during_checkpoint_names_path_and_errno(tmp_path, monkeypatch):
    import errno

    from conjugacy.torch import recorder as recorder_mod

    ck = tmp_path / "ck" / "r.pt"
    rec = _tiny_run(tmp_path / "s", ck, 1)  # steps 0, 1: one chunk flushed, one checkpoint
    assert load_checkpoint(ck)["n_complete"] == 2
    written = []
    real = recorder_mod._write

    def full_disk(f, data):  # the disk fills up after 100 bytes of the next checkpoint
        n = memoryview(data).nbytes
        if sum(written) + n > 100:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(n)
        return real(f, data)

    monkeypatch.setattr(recorder_mod, "_write", full_disk)
    rec.record(2)
    with pytest.raises(StoreError) as err:
        rec.record(3)  # flushes steps 2, 3, then the checkpoint fails
    msg = str(err.value)
    assert f"cannot write checkpoint {str(ck)!r}" in msg and "[errno 28, ENOSPC]" in msg, msg
    assert "previous checkpoint is intact" in msg
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(ck)
    assert isinstance(err.value.__cause__, OSError)
    rec.close(finished=False)
    monkeypatch.undo()
    assert sorted(p.name for p in ck.parent.iterdir()) == ["r.pt"]  # no temporary left
    assert load_checkpoint(ck)["n_complete"] == 2  # the previous checkpoint, intact
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        assert st.n_complete("r") == 4
    rec = _tiny_run(tmp_path / "s", ck, 5, resume=True)  # resumes from the intact checkpoint
    assert rec.resumed_from == 1
    rec.close()
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        np.testing.assert_array_equal(st.steps("r"), np.arange(6))


CKPT_KILL_WORKER = r'''
import sys, time
import torch
from torch import nn
from conjugacy.torch import recorder as R

real = R._write
state = {"n": 0}

def slow(f, data):  # the second checkpoint hangs half-written: its temporary exists
    if state["n"] == 1:
        print("WRITING", flush=True)
        time.sleep(600)
    return real(f, data)

def count(path, st):
    out = real_save(path, st)
    state["n"] += 1
    return out

real_save = R.save_checkpoint
R.save_checkpoint = count
R._write = slow
torch.manual_seed(0)
model = nn.Linear(3, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
rec = R.Recorder(sys.argv[1], "r", model, chunk_steps=2, optimizer=opt, checkpoint=sys.argv[2])
for step in range(6):
    with torch.no_grad():
        model.weight.add_(0.5)
    rec.record(step)
'''


def test_kill_during_checkpoint_write_leaves_a_temporary_that_resume_removes(tmp_path):
    from conjugacy.torch.recorder import remove_dead_temporaries

    ck = tmp_path / "r.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    victim = subprocess.Popen([sys.executable, "-c", CKPT_KILL_WORKER, str(tmp_path / "s"),
                               str(ck)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env)
    try:
        assert victim.stdout.readline().strip() == "WRITING", victim.stderr.read()
        temps = list(tmp_path.glob(".r.pt.*.tmp"))
        assert [t.name for t in temps] == [f".r.pt.{victim.pid}.tmp"]
        assert remove_dead_temporaries(ck) == []  # its writer is alive: left alone
        assert temps[0].exists()
    finally:
        victim.kill()
        victim.wait(timeout=30)
    assert temps[0].exists()  # the kill left it behind
    rec = _tiny_run(tmp_path / "s", ck, 6, resume=True)  # resume removes the dead temporary
    assert not temps[0].exists()
    assert rec.resumed_from == 1  # the first checkpoint (steps 0, 1)
    rec.close()
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        np.testing.assert_array_equal(st.steps("r"), np.arange(7))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.pt", "s"]


# ------------------------------------------------------------- stacked replicas (vmap path)
def test_stacked_recorder_equals_one_recorder_per_replica(tmp_path):
    from conjugacy.torch.recorder import StackedRecorder

    reps = [mlp(seed=s) for s in range(3)]
    stacked, _ = torch.func.stack_module_state(reps)
    views = []
    for i in range(3):  # modules whose parameters are row i of the stacked tensors
        m = mlp()
        for name, t in stacked.items():
            mod, _, p = name.rpartition(".")
            setattr(m.get_submodule(mod), p, nn.Parameter(t.detach()[i], requires_grad=False))
        views.append(m)
    rng = np.random.default_rng(0)
    with TrajectoryStore.open(tmp_path / "s", "w") as st:
        one = [Recorder(st, f"one{i}", r, ["0.weight", "2.bias"], chunk_steps=4, every=2)
               for i, r in enumerate(reps)]
        many = [Recorder(st, f"many{i}", v, ["0.weight", "2.bias"], chunk_steps=4, every=2)
                for i, v in enumerate(views)]
        rec = StackedRecorder(many, stacked)
        for step in range(0, 21, 2):
            with torch.no_grad():
                for t in stacked.values():
                    t.add_(torch.from_numpy(rng.standard_normal(t.shape)).float())
                for i, r in enumerate(reps):  # the plain models follow the stacked tensors
                    for name, p in r.named_parameters():
                        p.copy_(stacked[name][i])
            loss = torch.arange(3, dtype=torch.float32) + step
            written = rec.record(step, {"loss": loss} if step else {})
            assert written == (step in (6, 14))  # records 0..3 and 4..7 complete a chunk
            for i, r in enumerate(one):
                r.record(step, **({"loss": float(loss[i])} if step else {}))
        assert [r.n_complete for r in many] == [8] * 3 and rec.n_buffered == 3
        rec.flush()
        assert [r.n_complete for r in many] == [11] * 3 and rec.n_buffered == 0
        assert many[2].last_step == 20
        for r in one + many:
            r.close()
        with pytest.raises(ValueError, match="step must increase"):
            rec.record(20)
        with pytest.raises(ValueError, match="not a multiple of every=2"):
            rec.record(21)
        with pytest.raises(ValueError, match=r"scalar 'loss' must have shape \(3,\)"):
            rec.record(22, {"loss": [1.0]})
        with pytest.raises(ValueError, match=r"stacked\['0.weight'\] must have shape"):
            StackedRecorder(many, {"0.weight": stacked["0.weight"][:2],
                                   "2.bias": stacked["2.bias"]})
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        for i in range(3):
            np.testing.assert_array_equal(st.read(runs=f"many{i}"), st.read(runs=f"one{i}"))
            np.testing.assert_array_equal(st.steps(f"many{i}"), np.arange(0, 21, 2))
            np.testing.assert_array_equal(st.scalars(f"many{i}", "loss"),
                                          st.scalars(f"one{i}", "loss"))
            assert st.run_info(f"many{i}")["finished"] is True


def test_sigkill_vectorised_replicas_then_resume_equals_uninterrupted_run(tmp_path):
    """train_replicas (vmap path, checkpoint_dir) SIGKILLed mid-chunk: every run keeps its
    flushed chunks, the checkpoint agrees with them, and the resumed runs equal an uninterrupted
    run bit for bit."""
    n_steps = 14
    d = load_digits()
    data = tmp_path / "digits.npz"
    np.savez(data, data=d.data, target=d.target)
    victim = _worker("replicas", data, tmp_path / "s", tmp_path / "ck", n_steps, 9)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same as the worker: identical floating-point results
    try:
        names = _kill_worker.train_vmap(str(data), str(tmp_path / "ref"),
                                        str(tmp_path / "ckref"), n_steps)
    finally:
        torch.set_num_threads(threads)
    try:
        assert victim.stdout.readline().strip() == "HANGING", victim.stderr.read()
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    with TrajectoryStore.open(tmp_path / "s", "r") as st, \
            TrajectoryStore.open(tmp_path / "ref", "r") as ref:
        assert st.verify().ok
        for n in names:  # chunks of 4: records 0..7 written, 8 buffered, 9 being recorded
            assert st.n_complete(n) == 8 and st.run_info(n)["finished"] is False
        np.testing.assert_array_equal(st.read(), ref.read(steps=slice(0, 8)))
    ck = load_checkpoint(tmp_path / "ck" / "replica.stacked.pt")
    assert ck["n_complete"] == {n: 8 for n in names} and ck["step"] == 7

    torch.set_num_threads(1)
    try:  # resumed here (the next writer takes the dead writer's lock)
        _kill_worker.train_vmap(str(data), str(tmp_path / "s"), str(tmp_path / "ck"), n_steps)
    finally:
        torch.set_num_threads(threads)
    with TrajectoryStore.open(tmp_path / "s", "r") as st, \
            TrajectoryStore.open(tmp_path / "ref", "r") as ref:
        assert st.verify().ok
        for n in names:
            assert st.run_info(n)["finished"] is True
            np.testing.assert_array_equal(st.steps(n), np.arange(n_steps + 1))
            np.testing.assert_array_equal(st.scalars(n, "loss"), ref.scalars(n, "loss"))
        np.testing.assert_array_equal(st.read(), ref.read())  # bit-exact


def test_sigterm_flushes_buffered_records_and_exits_143(tmp_path):
    """SIGTERM (a scheduler's preemption) stops train_replicas at the next step boundary: the
    buffered records are written (not only the full chunks a SIGKILL keeps), the runs are closed
    unfinished, the process exits with 128 + 15, and a rerun resumes to the uninterrupted result."""
    n_steps = 14
    d = load_digits()
    data = tmp_path / "digits.npz"
    np.savez(data, data=d.data, target=d.target)
    victim = _worker("replicas", data, tmp_path / "s", tmp_path / "ck", n_steps, 9, 3)
    try:
        assert victim.stdout.readline().strip() == "HANGING", victim.stderr.read()
        victim.send_signal(signal.SIGTERM)  # while recording step 9
        victim.wait(timeout=60)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == 143, victim.stderr.read()
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        assert st.verify().ok
        for n in st.runs():  # records 0..9: two full chunks of 4 and the buffered 8, 9
            assert st.n_complete(n) == 10 and st.run_info(n)["finished"] is False
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        names = _kill_worker.train_vmap(str(data), str(tmp_path / "s"), str(tmp_path / "ck"),
                                        n_steps)
        _kill_worker.train_vmap(str(data), str(tmp_path / "ref"), str(tmp_path / "ckref"),
                                n_steps)
    finally:
        torch.set_num_threads(threads)
    with TrajectoryStore.open(tmp_path / "s", "r") as st, \
            TrajectoryStore.open(tmp_path / "ref", "r") as ref:
        for n in names:
            assert st.run_info(n)["finished"] is True
            np.testing.assert_array_equal(st.steps(n), np.arange(n_steps + 1))
        np.testing.assert_array_equal(st.read(), ref.read())  # bit-exact after the resume


def test_background_writer_equals_synchronous_writes_and_reports_errors(tmp_path):
    from conjugacy.torch.recorder import StackedRecorder

    reps = [mlp(seed=s) for s in range(2)]
    stacked, _ = torch.func.stack_module_state(reps)
    rng = np.random.default_rng(1)
    with TrajectoryStore.open(tmp_path / "s", "w") as st:
        recs = {}
        for kind in ("sync", "bg"):
            views = []
            for i in range(2):
                m = mlp()
                for name, t in stacked.items():
                    mod, _, p = name.rpartition(".")
                    setattr(m.get_submodule(mod), p,
                            nn.Parameter(t.detach()[i], requires_grad=False))
                views.append(m)
            many = [Recorder(st, f"{kind}{i}", v, "*", chunk_steps=3) for i, v in enumerate(views)]
            recs[kind] = (StackedRecorder(many, stacked, background=kind == "bg"), many)
        for step in range(11):
            with torch.no_grad():
                for t in stacked.values():
                    t.add_(torch.from_numpy(rng.standard_normal(t.shape)).float())
            loss = torch.arange(2, dtype=torch.float32) * step
            for rec, _ in recs.values():
                rec.record(step, {"loss": loss})
        bg, many = recs["bg"]
        bg.wait()
        assert [r.n_complete for r in many] == [9, 9] and bg.n_buffered == 2
        for rec, many in recs.values():
            rec.close()
            assert [r.n_complete for r in many] == [11, 11]
            for r in many:
                r.close()
        for i in range(2):
            np.testing.assert_array_equal(st.read(runs=f"bg{i}"), st.read(runs=f"sync{i}"))
            np.testing.assert_array_equal(st.scalars(f"bg{i}", "loss"),
                                          st.scalars(f"sync{i}", "loss"))

        # a failing write surfaces in the training thread at the next flush or wait
        views = [mlp() for _ in range(2)]
        for i, m in enumerate(views):
            for name, t in stacked.items():
                mod, _, p = name.rpartition(".")
                setattr(m.get_submodule(mod), p, nn.Parameter(t.detach()[i], requires_grad=False))
        many = [Recorder(st, f"err{i}", v, "*", chunk_steps=2) for i, v in enumerate(views)]
        rec = StackedRecorder(many, stacked, background=True)

        def broken(*a, **k):
            raise OSError("disk full (simulated)")

        st.append_many = broken
        rec.record(0)
        rec.record(1)  # a full chunk, handed to the writer
        with pytest.raises(OSError, match="disk full"):
            rec.wait()
        del st.append_many
        rec.close()


def _branch_training(tmp_path, digits, opt_name, branch_on, n_steps=12, every=1):
    """Train an MLP with dropout, recording every step, with or without the branch; return the
    store path, the model, the final optimizer state and the global RNG state."""
    from conjugacy.torch.recorder import BranchStep

    x, y = digits
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 10))
    opt = (torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9) if opt_name == "sgd"
           else torch.optim.Adam(model.parameters(), lr=1e-2))

    def loss(m, b):
        return nn.functional.cross_entropy(m(b[0]), b[1])

    def sample(g):
        i = torch.randint(0, 1700, (32,), generator=g)
        return x[i], y[i]

    branch = BranchStep(loss, sample, opt, seed=7) if branch_on else None
    path = tmp_path / f"{opt_name}-{branch_on}"
    with Recorder(path, "run", model, every=every, branch=branch) as rec:
        rec.record(0)
        for step in range(1, n_steps + 1):
            i = torch.randint(0, 1700, (32,))  # the training stream: the global generator
            opt.zero_grad()
            loss(model, (x[i], y[i])).backward()
            opt.step()
            rec.record(step)
    return path, model, opt.state_dict(), torch.get_rng_state()


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_branch_leaves_the_training_trajectory_bit_identical(tmp_path, digits, opt_name):
    torch.manual_seed(123)
    p0, m0, s0, r0 = _branch_training(tmp_path, digits, opt_name, False)
    torch.manual_seed(123)
    p1, m1, s1, r1 = _branch_training(tmp_path, digits, opt_name, True)
    with TrajectoryStore.open(p0, "r") as a, TrajectoryStore.open(p1, "r") as b:
        np.testing.assert_array_equal(a.read(), b.read())  # bit-identical trajectories
        nxt = b.read(branch="next")
        assert nxt.shape == b.read().shape
        assert b.run_info("run")["metadata"]["branch"]["n_steps"] == 1
        main = b.read()
        # the branch moved every step, and not to the training's next state
        assert np.all(np.abs(nxt[0, :-1] - main[0, :-1]).max(axis=1) > 0)
        assert np.all(np.abs(nxt[0, :-1] - main[0, 1:]).max(axis=1) > 0)
    for (k, v), w in zip(m0.state_dict().items(), m1.state_dict().values()):
        assert torch.equal(v, w), k
    assert torch.equal(r0, r1)  # the global random stream continues as without the branch
    for st0, st1 in zip(s0["state"].values(), s1["state"].values()):
        for key in st0:
            assert torch.equal(torch.as_tensor(st0[key]), torch.as_tensor(st1[key])), key


def test_branch_is_one_sgd_step_on_its_own_batch(tmp_path, digits):
    from conjugacy.torch.recorder import BranchStep

    x, y = digits
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)

    def loss(m, b):
        return nn.functional.cross_entropy(m(b[0]), b[1])

    def sample(g):
        i = torch.randint(0, 1700, (16,), generator=g)
        return x[i], y[i]

    branch = BranchStep(loss, sample, opt, seed=3)
    names = [n for n, _ in model.named_parameters()]
    got = branch(model, names, 1)
    # by hand: the same batch from a generator with the same seed, one plain SGD step
    ref = mlp()
    b = sample(torch.Generator().manual_seed(3))
    grads = torch.autograd.grad(loss(ref, b), list(ref.parameters()))
    for (n, p), g in zip(ref.named_parameters(), grads):
        torch.testing.assert_close(got[n], p.detach() - 0.5 * g, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="n_steps must be a positive integer"):
        BranchStep(loss, sample, opt, n_steps=0)
    with pytest.raises(TypeError, match="branch must be a BranchStep"):
        Recorder(tmp_path / "s", "r", model, branch=object())


def test_branch_spectrum_end_to_end(tmp_path, digits):
    # recorded branch -> koopman_spectrum(next_states=) -> residuals present for every eigenpair
    from conjugacy import koopman_spectrum

    path, *_ = _branch_training(tmp_path, digits, "sgd", True, n_steps=30)
    with TrajectoryStore.open(path, "r") as st:
        x, nxt = st.read("3.*"), st.read("3.*", branch="next")
    s = koopman_spectrum(x, rank=4, next_states=nxt)
    assert s.noise_fractions.shape == (4,) and np.all(np.isfinite(s.projection_residuals))
    assert s.settings["branch"]["eigenvalue_mismatch"] < 1e-6


def test_lightning_callback_records_the_branch_without_changing_training(tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    from torch.utils.data import DataLoader, TensorDataset

    from conjugacy.torch.lightning import TrajectoryCallback

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.fc1, self.fc2, self.drop = nn.Linear(4, 8), nn.Linear(8, 2), nn.Dropout(0.3)

        def forward(self, x):
            return self.fc2(self.drop(torch.tanh(self.fc1(x))))

        def training_step(self, batch, batch_idx):
            return nn.functional.mse_loss(self(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, generator=g)
    data = DataLoader(TensorDataset(x, x[:, :2] * 2), batch_size=8, shuffle=False)

    def sample(gen):
        i = torch.randint(0, 40, (8,), generator=gen)
        return x[i], x[i, :2] * 2

    def fit(name, **kw):
        cb = TrajectoryCallback(tmp_path / "s", name, "fc2.*", chunk_steps=3, **kw)
        torch.manual_seed(1)
        pl.Trainer(max_steps=7, callbacks=[cb], enable_progress_bar=False, logger=False,
                   enable_checkpointing=False, enable_model_summary=False, accelerator="cpu",
                   devices=1).fit(Tiny(), data)

    fit("plain")
    fit("branch", branch_sample=sample, branch_seed=2,
        branch_loss=lambda m, b: nn.functional.mse_loss(m(b[0]), b[1]))
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        np.testing.assert_array_equal(st.read(runs="branch"), st.read(runs="plain"))
        nxt, main = st.read(runs="branch", branch="next")[0], st.read(runs="branch")[0]
        assert nxt.shape == (8, 18) and np.abs(nxt[:-1] - main[1:]).max(axis=1).min() > 0
    with pytest.raises(ValueError, match="branch_sample and branch_loss go together"):
        TrajectoryCallback(tmp_path / "s", "x", branch_sample=sample)


def test_hf_callback_records_the_branch_without_changing_training(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    from conjugacy.torch.hf import TrajectoryTrainerCallback

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 32, (64, 8), generator=g)
    data = [{"input_ids": ids[i], "attention_mask": torch.ones(8, dtype=torch.long),
             "labels": ids[i, 0] % 2} for i in range(64)]

    def sample(gen):
        i = torch.randint(0, 64, (8,), generator=gen)
        return {"input_ids": ids[i], "attention_mask": torch.ones(8, 8, dtype=torch.long),
                "labels": ids[i, 0] % 2}

    def train(name, **kw):
        torch.manual_seed(0)
        cfg = BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=32, max_position_embeddings=16,
                         num_labels=2)
        model = BertForSequenceClassification(cfg)  # dropout 0.1: the global RNG is used
        cb = TrajectoryTrainerCallback(tmp_path / "s", name, "classifier.*", **kw)
        args = TrainingArguments(output_dir=str(tmp_path / "hf"), max_steps=6,
                                 per_device_train_batch_size=8, logging_steps=1,
                                 report_to="none", save_strategy="no", use_cpu=True, seed=0,
                                 disable_tqdm=True, learning_rate=1e-3, log_level="error")
        Trainer(model=model, args=args, train_dataset=data, callbacks=[cb]).train()

    train("plain")
    train("branch", branch_sample=sample, branch_seed=5)
    with TrajectoryStore.open(tmp_path / "s", "r") as st:
        np.testing.assert_array_equal(st.read(runs="branch"), st.read(runs="plain"))
        nxt, main = st.read(runs="branch", branch="next")[0], st.read(runs="branch")[0]
        assert nxt.shape == main.shape == (7, 34)
        assert np.abs(nxt[:-1] - main[1:]).max(axis=1).min() > 0
        assert np.abs(nxt[:-1] - main[:-1]).max(axis=1).min() > 0


def test_branch_resumes_from_a_checkpoint_as_if_never_interrupted(tmp_path, digits):
    from conjugacy.torch.recorder import BranchStep

    x, y = digits

    def loss(m, b):
        return nn.functional.cross_entropy(m(b[0]), b[1])

    def sample(g):
        i = torch.randint(0, 1700, (16,), generator=g)
        return x[i], y[i]

    def run(store, ckpt, n_steps, fail_at=None, branch=True):
        _train_resumable(digits, store, ckpt, n_steps, chunk_steps=5, fail_at=fail_at,
                         branch=(lambda opt: BranchStep(loss, sample, opt, seed=9))
                         if branch else None)

    run(tmp_path / "ref", tmp_path / "ref.pt", 17)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "s", tmp_path / "ck.pt", 17, fail_at=12)
    run(tmp_path / "s", tmp_path / "ck.pt", 17)
    with TrajectoryStore.open(tmp_path / "s", "r") as a, TrajectoryStore.open(tmp_path / "ref",
                                                                              "r") as b:
        np.testing.assert_array_equal(a.read(), b.read())
        # the branch generator was checkpointed: the same branch batches after the resume
        np.testing.assert_array_equal(a.read(branch="next"), b.read(branch="next"))
    with pytest.raises(StoreError, match="recorded with a branch; pass branch="):
        run(tmp_path / "s", tmp_path / "ck.pt", 17, branch=False)


def test_a_learning_rate_schedule_is_recorded_and_the_report_shows_it(tmp_path):
    """Issue 25 review item 3: a warm-up's optimizer shows lr = its first, small rate; the
    Recorder's scheduler= puts the schedule (class, scalar settings, the lambda's name) in the
    run's metadata, the report's conditions table shows it, and the model's printout is one
    line there; a non-scheduler is refused before the store is touched."""
    import json

    from conjugacy.report import condition_rows

    def warmup(step):
        return min(1.0, (step + 1) / 50)

    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup)
    with Recorder(tmp_path / "runs.zarr", "warm", model, scheduler=sched,
                  optimizer=opt, metadata={"condition": "warm"}) as rec:
        rec.record(0)
    with Recorder(tmp_path / "runs.zarr", "plain", model, optimizer=opt,
                  metadata={"condition": "plain"}) as rec:
        rec.record(0)
    with TrajectoryStore.open(tmp_path / "runs.zarr", "r") as store:
        warm, plain = (store.run_info(r)["metadata"] for r in ("warm", "plain"))
    assert warm["scheduler"] == {"class": "LambdaLR", "base_lrs": [0.05],
                                 "lr_lambdas": [warmup.__qualname__]}
    assert warm["optimizer"]["param_groups"][0]["lr"] == 0.001 and "scheduler" not in plain
    conditions = json.loads(json.dumps({"warm": warm, "plain": plain}))
    rows = condition_rows({"spectra": {"warm": [], "plain": []}, "conditions": conditions})
    assert rows[0] == ["condition", "settings that differ"]
    assert "scheduler.class = LambdaLR" in rows[1][1] and "scheduler.base_lrs = [0.05]" in rows[1][1]
    assert "model = Sequential( … (5 lines, whole in results.json)" in rows[-1][1]
    assert "\n" not in rows[-1][1]
    with pytest.raises(TypeError, match="scheduler must be a torch.optim.lr_scheduler"):
        Recorder(tmp_path / "other.zarr", "r", model, scheduler=opt)
    assert not (tmp_path / "other.zarr").exists()


def test_composite_schedules_are_described_whole_and_a_foreign_one_refused(tmp_path):
    """Issue 25 leftovers: MultiStepLR's milestones (a Counter in its state), SequentialLR's
    milestones and inner schedulers, ChainedScheduler's, a functools.partial lambda by its
    function's name; a scheduler of another optimizer is refused before the store is touched."""
    import functools

    from torch.optim import lr_scheduler as sch

    from conjugacy.torch.recorder import describe_scheduler

    def warm(step, n):
        return min(1.0, (step + 1) / n)

    opt = torch.optim.SGD(nn.Linear(3, 1).parameters(), lr=0.1)
    assert describe_scheduler(sch.MultiStepLR(opt, milestones=[20, 10, 10], gamma=0.5)) == {
        "class": "MultiStepLR", "milestones": [10, 10, 20], "gamma": 0.5, "base_lrs": [0.1]}
    seq = sch.SequentialLR(opt, [sch.LinearLR(opt, 0.1, total_iters=5), sch.StepLR(opt, 10)],
                           milestones=[5])
    assert describe_scheduler(seq) == {"class": "SequentialLR", "milestones": [5], "schedulers": [
        {"class": "LinearLR", "start_factor": 0.1, "end_factor": 1.0, "total_iters": 5,
         "base_lrs": [0.1]},
        {"class": "StepLR", "step_size": 10, "gamma": 0.1, "base_lrs": [0.1]}]}
    chained = describe_scheduler(sch.ChainedScheduler([sch.ExponentialLR(opt, 0.9)]))
    assert chained["schedulers"] == [{"class": "ExponentialLR", "gamma": 0.9, "base_lrs": [0.1]}]
    lam = describe_scheduler(sch.LambdaLR(opt, functools.partial(warm, n=10)))
    assert lam["lr_lambdas"] == [f"partial({warm.__qualname__})"]
    model = nn.Linear(3, 1)
    other = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="scheduler drives another optimizer"):
        Recorder(tmp_path / "x.zarr", "r", model, optimizer=other, scheduler=sch.StepLR(opt, 3))
    assert not (tmp_path / "x.zarr").exists()
