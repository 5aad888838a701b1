"""`analyze --window` between conditions pairs windows by training step, not by record index,
when conditions are recorded at different intervals, and follows `--time` (issue 23 review,
item 4)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("zarr")

from conjugacy.analysis import SpectrumGroup  # noqa: E402
from conjugacy.analysis.windowed import conditions_by_window, seed_window_spectra  # noqa: E402
from conjugacy.store import TrajectoryStore  # noqa: E402

N_STEPS, RECORDS, WINDOW = 400, 200, 20


def _store(path, every: dict[str, int], first: dict[str, int] | None = None) -> str:
    """3 seeds per condition of 3 AR(1) weights (0.9 per step, unit innovations), simulated every
    step and recorded every ``every[condition]`` steps (RECORDS records each) from step
    ``first[condition]`` (default 0)."""
    rng = np.random.default_rng(0)
    with TrajectoryStore.open(path, "w") as st:
        for cond, k in every.items():
            for seed in range(3):
                x = np.zeros((max(N_STEPS, RECORDS * k), 3))
                for t in range(1, x.shape[0]):
                    x[t] = 0.9 * x[t - 1] + rng.standard_normal(3)
                name = f"{cond}_{seed}"
                st.create_run(name, {"w": ((3,), "float64")},
                              metadata={"condition": cond, "seed": seed})
                start = (first or {}).get(cond, 0)
                st.append(name, start + np.arange(0, RECORDS * k, k), {"w": x[::k][:RECORDS]})
                st.set_finished(name)
    return str(path)


def test_windows_of_conditions_recorded_every_1_and_2_steps_cover_the_same_steps(tmp_path):
    path = _store(tmp_path / "s.zarr", {"fine": 1, "coarse": 2})
    with TrajectoryStore.open(path, "r") as st:
        groups = [SpectrumGroup(c, s, (f"{c}_{s}",), steps=(0, RECORDS))
                  for c in ("fine", "coarse") for s in range(3)]
        spectra, starts = seed_window_spectra(st, groups, "w", WINDOW, 1, 2)
    assert starts == list(range(0, 200, 20))  # fine: 200 steps make 10 windows of 20
    fine, coarse = spectra["fine"][0], spectra["coarse"][0]
    # window w: steps 20w..20w+19, i.e. records 20w.. of "fine" and 10w.. of "coarse"
    assert [s.settings["window"]["start"] for s in fine[:3]] == [0, 20, 40]
    assert [s.settings["window"]["start"] for s in coarse[:3]] == [0, 10, 20]
    assert {s.settings["window"]["stop"] - s.settings["window"]["start"] for s in coarse} == {10}
    assert fine[0].settings["record_interval"] == 1 and coarse[0].settings["record_interval"] == 2
    out = conditions_by_window(spectra, starts, WINDOW, n_permutations=99, time="discrete")
    assert out["labels"][:2] == ["0-19", "20-39"] and out["time"] == "discrete"
    pair = next(iter(out["pairs"].values()))
    assert len(pair["per_window"]) == 10


def test_analyze_window_pairs_by_step_and_follows_time(tmp_path):
    import conjugacy

    path = _store(tmp_path / "s.zarr", {"fine": 1, "coarse": 2})
    got = {}
    for time in ("auto", "discrete"):
        res = conjugacy.analyze(path, window=WINDOW, delays=1, rank=2, n_permutations=99,
                                neighbours=False, time=time)
        got[time] = res.results["windows"]["between_conditions"]
    assert got["auto"]["starts"] == list(range(0, 200, 20))
    assert got["auto"]["time"] == "continuous" and got["discrete"]["time"] == "discrete"
    verdicts = {t: [w["verdict"] for w in next(iter(b["pairs"].values()))["per_window"]]
                for t, b in got.items()}
    # one system: in continuous time no window differs; compared as eigenvalues (0.9 against
    # 0.81 per record) the differing interval leaves every window undecided
    assert "not conjugate" not in verdicts["auto"]
    assert set(verdicts["discrete"]) == {"undecided"}


def test_a_window_a_coarser_condition_cannot_cut_is_refused(tmp_path):
    path = _store(tmp_path / "s.zarr", {"fine": 1, "coarse": 2})
    with TrajectoryStore.open(path, "r") as st:
        groups = [SpectrumGroup(c, 0, (f"{c}_0",), steps=(0, RECORDS)) for c in ("fine", "coarse")]
        with pytest.raises(ValueError, match=r"windows of 21 records every 1 steps \(21 steps\) "
                                             r"cannot be paired by step with conditions recorded "
                                             r"every \[1, 2\] steps: use a window that is a "
                                             r"multiple of 2 records \(e.g. 22\)"):
            seed_window_spectra(st, groups, "w", 21, 1, 2)


def _groups(st, conds):
    return [SpectrumGroup(c, s, (f"{c}_{s}",), steps=(0, RECORDS)) for c in conds
            for s in range(3)]


def test_intervals_that_are_not_multiples_pair_on_their_least_common_multiple(tmp_path):
    """Every 2 and every 3 steps: a window of 12 records at 2 steps (24 steps) holds 12 and 8
    records; 13 (26 steps) cuts no whole record of the second: the message names 3 (6 / 2)."""
    path = _store(tmp_path / "s.zarr", {"two": 2, "three": 3})
    with TrajectoryStore.open(path, "r") as st:
        spectra, starts = seed_window_spectra(st, _groups(st, ("two", "three")), "w", 12, 1, 2)
        with pytest.raises(ValueError, match=r"multiple of 3 records \(e.g. 15\)"):
            seed_window_spectra(st, _groups(st, ("two", "three")), "w", 13, 1, 2)
    assert starts[:3] == [0, 24, 48] and len(starts) == 16  # 400 steps of "two": 16 x 24
    three = spectra["three"][0]
    assert [s.settings["window"]["start"] for s in three[:3]] == [0, 8, 16]
    assert three[0].settings["record_interval"] == 3


def test_runs_starting_at_different_steps_pair_from_the_latest_start(tmp_path):
    path = _store(tmp_path / "s.zarr", {"fine": 1, "coarse": 2}, {"coarse": 100})
    with TrajectoryStore.open(path, "r") as st:
        spectra, starts = seed_window_spectra(st, _groups(st, ("fine", "coarse")), "w", WINDOW,
                                              1, 2)
    assert starts == list(range(100, 200, 20))  # fine ends at step 199
    # fine skips its first 100 records; coarse starts at its first
    assert [s.settings["window"]["start"] for s in spectra["fine"][0][:2]] == [0, 20]
    assert len(spectra["fine"][0]) == 5 and len(spectra["coarse"][0]) == 20


def test_a_window_too_short_for_a_coarse_condition_names_the_window_given(tmp_path):
    path = _store(tmp_path / "s.zarr", {"fine": 1, "coarse": 4})
    with TrajectoryStore.open(path, "r") as st:
        with pytest.raises(ValueError, match=r"windows of 8 records \(8 steps\) hold 2 records "
                                             r"of 'coarse' \(recorded every 4 steps\), too few "
                                             r"for delays=1: use a window of at least 12"):
            seed_window_spectra(st, _groups(st, ("fine", "coarse")), "w", 8, 1, 2)


def test_analyze_window_skips_only_the_section_the_steps_cannot_pair(tmp_path):
    """A window the conditions cannot share leaves the rest of the analysis and a note; the
    windows of each condition are labelled by training step."""
    import conjugacy

    path = _store(tmp_path / "s.zarr", {"fine": 1, "coarse": 2})
    res = conjugacy.analyze(path, window=21, delays=1, rank=2, n_permutations=9,
                            neighbours=False)
    w = res.results["windows"]
    assert "between_conditions" not in w and sorted(w["conditions"]) == ["coarse", "fine"]
    assert any(n.startswith("windows: conditions not compared window by window: windows of 21 "
                            "records") for n in res.results["warnings"])
    assert w["conditions"]["coarse"]["labels"][:2] == ["0-40", "42-82"]  # 21 records of 2
    assert w["conditions"]["fine"]["labels"][:2] == ["0-20", "21-41"]


def test_seed_window_spectra_reads_all_records_without_steps_and_fits_in_the_dtype_asked(tmp_path):
    # groups without steps (all records) and dtype= (the CNN study fits its float32 stores in
    # float64 through this function)
    path = _store(tmp_path / "s.zarr", {"one": 1})
    with TrajectoryStore.open(path, "r") as st:
        every = [SpectrumGroup("one", s, (f"one_{s}",)) for s in range(3)]
        cut = [SpectrumGroup("one", s, (f"one_{s}",), steps=(0, RECORDS)) for s in range(3)]
        whole, starts = seed_window_spectra(st, every, "w", WINDOW, 1, 2)
        same, _ = seed_window_spectra(st, cut, "w", WINDOW, 1, 2, dtype=np.float32)
    assert starts == list(range(0, RECORDS, WINDOW)) and len(whole["one"][0]) == 10
    a, b = whole["one"][1][3], same["one"][1][3]
    assert a.settings["input_eps"] == np.finfo(np.float64).eps  # the store's float64
    assert b.settings["input_eps"] == np.finfo(np.float32).eps  # fitted in the dtype asked
    np.testing.assert_allclose(b.eigenvalues, a.eigenvalues, rtol=1e-6)


def test_seed_window_spectra_take_a_rank_rule_applied_to_each_window(tmp_path):
    from conjugacy import koopman_spectrum

    path = _store(tmp_path / "s.zarr", {"a": 1})
    with TrajectoryStore.open(path, "r") as st:
        groups = [SpectrumGroup("a", s, (f"a_{s}",), steps=(0, RECORDS)) for s in range(3)]
        spectra, _ = seed_window_spectra(st, groups, "w", WINDOW, 1, "svht")
        x = st.read(params="w", runs=["a_1"])[:, 2 * WINDOW: 3 * WINDOW]
    third = spectra["a"][1][2]  # seed 1, window 2
    alone = koopman_spectrum(x, delays=1, rank="svht")
    assert third.settings["rank_rule"]["rule"] == "svht" and third.rank == alone.rank
    np.testing.assert_allclose(np.sort_complex(third.eigenvalues),
                               np.sort_complex(alone.eigenvalues), atol=1e-10)
