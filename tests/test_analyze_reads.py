"""Reading a store once (issue 19): ``conjugacy analyze`` opens the store once, reads each run's
metadata from its attributes and its steps once, and each array of a read once; the results are
those of the reads they replace."""

from __future__ import annotations

import numpy as np
import pytest

from conjugacy import analyze
from conjugacy.analysis.demo import decay_store
from conjugacy.store import StoreError, TrajectoryStore
from conjugacy.study import StudyReader


@pytest.fixture
def store(tmp_path):
    return decay_store(tmp_path / "runs.zarr", n_seeds=4, n_records=20)


def _count(monkeypatch, owner, name):
    calls = []
    original = getattr(owner, name)

    def counted(*args, **kwargs):
        calls.append(args[1] if len(args) > 1 else None)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_analyze_opens_the_store_once_and_reads_each_runs_steps_once(store, monkeypatch):
    from conjugacy.store._layout import _Layout
    from conjugacy.store._read import _Reading

    opens = []
    original = _Layout.open.__func__
    monkeypatch.setattr(_Layout, "open", classmethod(
        lambda cls, *a, **k: opens.append(a[0]) or original(cls, *a, **k)))
    steps = _count(monkeypatch, _Reading, "steps")
    reads = []
    original_read = _Reading._read
    monkeypatch.setattr(_Reading, "_read", lambda self, run, g, key, sel, n: reads.append(
        (run, key, sel)) or original_read(self, run, g, key, sel, n))
    res = analyze(store, delays=0, rank=1, neighbours=False)
    assert len(opens) == 1
    assert sorted(steps) == [f"{c}_s{k}" for c in ("fast", "slow") for k in range(4)]
    # per run: its steps, whole (run_info takes the first and last from them), and its loss
    assert sorted(reads) == sorted((r, k, slice(0, 20)) for r in steps
                                   for k in ("steps", "scalars/loss"))
    assert res.content["comparison"]["verdicts"]["fast-slow"]["verdict"] == "not conjugate"


def test_a_store_handle_given_to_analyze_is_read_through_and_left_open(store, monkeypatch):
    from conjugacy.store._layout import _Layout

    with TrajectoryStore.open(store, "r") as st:
        opens = _count(monkeypatch, _Layout, "_open_root")
        res = analyze(st, delays=0, rank=1, neighbours=False)
        assert opens == [] and st.runs()  # not reopened; still open after analyze
    assert res.content["comparison"]["verdicts"]["fast-slow"]["verdict"] == "not conjugate"


def test_of_store_closes_the_store_only_when_asked(store):
    with TrajectoryStore.open(store, "r") as st:
        reader = StudyReader.of_store(st)
        assert reader.runs() == st.runs() and reader.metadata("slow_s1")["seed"] == 1
        reader.close()
        assert st.runs()  # borrowed: still open
    st = TrajectoryStore.open(store, "r")
    reader = StudyReader.of_store(st, close=True)
    reader.read(runs=["fast_s0"])
    reader.close()
    with pytest.raises(StoreError, match="closed"):
        st.runs()


def test_metadata_and_run_info_with_steps_equal_the_full_reads(store):
    with TrajectoryStore.open(store, "r") as st:
        for run in st.runs():
            info = st.run_info(run)
            steps = st.steps(run)
            assert st.run_info(run, steps=steps) == info
            assert st.metadata(run) == info["metadata"]
            assert info["first_step"] == 0 and info["last_step"] == 19
        with pytest.raises(ValueError, match="steps holds 3 entries; run 'fast_s0' has 20"):
            st.run_info("fast_s0", steps=np.arange(3))
        with pytest.raises(StoreError, match="unknown run 'nope'"):
            st.metadata("nope")
    with StudyReader.of_store(TrajectoryStore.open(store, "r"), close=True) as reader:
        assert reader.run_info("slow_s2")["first_step"] == 0
        assert reader.run_info("slow_s2")["last_step"] == 19


def test_read_opens_and_checks_each_array_once(store, monkeypatch):
    from conjugacy.store._read import _Reading

    with TrajectoryStore.open(store, "r") as st:
        expected = st.read(runs=["fast_s0", "slow_s1"], steps=slice(2, 18, 3))
        backwards = st.read(runs=["fast_s0"], steps=slice(17, 1, -4))
        from conjugacy.store._layout import _Layout

        opened = _count(monkeypatch, _Reading, "_open_array")
        groups = _count(monkeypatch, _Layout, "_run")
        got = st.read(runs=["fast_s0", "slow_s1"], steps=slice(2, 18, 3))
        assert len(opened) == 2  # one parameter array per run
        st.steps("fast_s1")
        st.run_info("slow_s0")
        assert groups == []  # arrays opened from the root, no run group opened (~0.5 ms each)
        np.testing.assert_array_equal(got, expected)
        whole = st.read(runs=["fast_s0", "slow_s1"])
        np.testing.assert_array_equal(whole[:, 2:18:3], expected)
        np.testing.assert_array_equal(whole[:1, 17:1:-4], backwards)
