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


def _store(path, every: dict[str, int]) -> str:
    """3 seeds per condition of 3 AR(1) weights (0.9 per step, unit innovations), simulated every
    step and recorded every ``every[condition]`` steps (RECORDS records each)."""
    rng = np.random.default_rng(0)
    with TrajectoryStore.open(path, "w") as st:
        for cond, k in every.items():
            for seed in range(3):
                x = np.zeros((N_STEPS, 3))
                for t in range(1, N_STEPS):
                    x[t] = 0.9 * x[t - 1] + rng.standard_normal(3)
                name = f"{cond}_{seed}"
                st.create_run(name, {"w": ((3,), "float64")},
                              metadata={"condition": cond, "seed": seed})
                st.append(name, np.arange(0, RECORDS * k, k), {"w": x[::k][:RECORDS]})
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
        with pytest.raises(ValueError, match=r"windows of 21 records every 1 steps cannot be "
                                             r"paired by step with 'coarse' \(recorded every 2 "
                                             r"steps\): use a window that is a multiple of 2"):
            seed_window_spectra(st, groups, "w", 21, 1, 2)
