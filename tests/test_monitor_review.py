"""Issue 23, second review: the held-out rule bounds the share of runs without onset that alarm,
store onsets as integral floats, one bad condition or onset no longer removes every run's alarms,
a zero parameter-norm floor leaves only that control undecided, and the small edge cases."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from test_monitor_controls import ONSET, RULE, N, _run  # the same AR(1) runs

from conjugacy.monitor import (
    MonitoredRun,
    _lowest_factor,
    alarm_steps,
    block_shuffle,
    calibrate_rule,
    evaluate_monitor,
    run_onset,
    window_alarms,
)


def _set(seed: int, n: int = 3, unit: bool = False) -> list[MonitoredRun]:
    """``n`` runs whose AR(1) coefficient flips at step 120 (onset 160) and ``n`` that never flip;
    ``unit``: every record scaled to norm 1 (the parameter norm is then constant)."""
    rng = np.random.default_rng(seed)
    runs = ([_run(rng, flip=True, onset=ONSET, group="pos", name=f"p{i}") for i in range(n)]
            + [_run(rng, group="neg", name=f"n{i}") for i in range(n)])
    if unit:
        runs = [replace(r, trajectory=r.trajectory / np.linalg.norm(r.trajectory, axis=1,
                                                                    keepdims=True)) for r in runs]
    return runs


# ----- item 1: a signal that stays above its factor is one event, but it is in alarm ----------
def test_lowest_factor_bounds_the_share_of_negative_runs_that_alarm():
    levels = [np.full(4, 5.0), np.full(4, 1.0), np.full(4, 2.0), np.full(4, 1.5)]
    # each run is one streak: above 1 three runs alarm, 3 events per 1,000 steps <= 10
    assert _lowest_factor(levels, 1000.0, 10.0) == (1.0, 3.0)
    assert _lowest_factor(levels, 1000.0, 10.0, 0.25) == (2.0, 1.0)  # 1 of 4 runs
    assert _lowest_factor(levels, 1000.0, 10.0, 0.5) == (1.5, 2.0)
    assert _lowest_factor(levels, 1000.0, 10.0, 0.0) == (5.0, 0.0)


def test_calibrate_rule_keeps_most_negative_runs_out_of_alarm():
    held_out = _set(2, n=4)
    loose = calibrate_rule(held_out, target_false_alarms=1000.0, max_negatives_alarmed=1.0,
                           sustains=(1,), **RULE)
    assert any(c["negatives_alarmed"] == 4 for c in loose.candidates.values() for c in c)
    rule = calibrate_rule(held_out, target_false_alarms=1000.0, sustains=(1,), **RULE)
    assert rule.max_negatives_alarmed == 0.25
    for s, cands in rule.candidates.items():
        assert cands[0]["negatives_alarmed"] <= 1 and cands[0]["n_negative"] == 4
        ev = evaluate_monitor(held_out, factor=rule.factor, sustain=rule.sustain, n_boot=20,
                              **RULE)
        assert getattr(ev, s).negatives_alarmed == cands[0]["negatives_alarmed"]
    with pytest.raises(ValueError, match="max_negatives_alarmed is a share of runs, at most 1"):
        calibrate_rule(held_out, max_negatives_alarmed=2.0, **RULE)


# ----- item 2: onsets stored as floats -----------------------------------------------------------
class _Reader:
    """The reader calls of run_onset and window_alarms on in-memory runs."""

    def __init__(self, runs: dict[str, tuple[np.ndarray, np.ndarray, dict]]):
        self.runs = runs

    def run_info(self, run):
        return {"metadata": self.runs[run][2], "scalars": []}

    def steps(self, run):
        return self.runs[run][1]

    def read(self, params, runs):
        return np.stack([self.runs[r][0] for r in runs])


@pytest.mark.parametrize(("onset", "want"), [(160, 160), (160.0, 160), (np.float32(7.0), 7),
                                             (None, None)])
def test_run_onset_accepts_integral_steps(onset, want):
    reader = _Reader({"a": (np.zeros((2, 1)), np.arange(2), {"onset": onset})})
    got = run_onset(reader, "a")
    assert got == want and (got is None or type(got) is int)


@pytest.mark.parametrize("onset", [160.5, "160", True, math.nan])
def test_run_onset_refuses_other_values_with_a_value_error(onset):
    reader = _Reader({"a": (np.zeros((2, 1)), np.arange(2), {"onset": onset})})
    with pytest.raises(ValueError, match="run 'a': metadata 'onset' must be a training step"):
        run_onset(reader, "a")


# ----- item 5: one bad condition or onset skips only itself -------------------------------------
def test_window_alarms_skip_only_the_condition_or_onset_that_cannot_be_used():
    runs = _set(0, n=2)
    data = {r.name: (r.trajectory, r.steps, {"onset": r.onset} if r.onset else {}) for r in runs}
    data["p1"] = (data["p1"][0], data["p1"][1], {"onset": 5000})
    data["solo"] = (runs[0].trajectory, runs[0].steps, {"onset": 170})
    by = {"pos": ["p0", "p1"], "neg": ["n0", "n1"], "solo": ["solo"]}
    out = window_alarms(_Reader(data), by, "w", 40, RULE["spectrum_kwargs"])
    want = alarm_steps(runs, window=40, stride=20, spectrum_kwargs=RULE["spectrum_kwargs"])
    assert sorted(out["runs"]) == ["n0", "n1", "p0", "p1"]
    assert {r: e["alarm_step"] for r, e in out["runs"].items()} == want
    assert out["runs"]["p1"]["onset"] is None and out["runs"]["p0"]["onset"] == ONSET
    assert out["notes"] == [
        "run 'p1': onset 5000 lies outside the run (steps 0 to 199); no lead time for it",
        "condition 'solo' not monitored: group 'solo' has 1 run; the seed-to-seed noise floor "
        "needs at least 2 runs per group (independent seeds of one setup)"]
    alone = window_alarms(_Reader(data), {"solo": ["solo"]}, "w", 40, RULE["spectrum_kwargs"])
    assert alone["error"].startswith("condition 'solo' not monitored") and "runs" not in alone


# ----- item 10: unit-norm points --------------------------------------------------------------
def test_a_zero_parameter_norm_floor_leaves_only_that_control_undecided():
    ev = evaluate_monitor(_set(1, unit=True), n_boot=20, **RULE)
    assert ev.parameter_norm.noise_floors == {"neg": 0.0, "pos": 0.0}
    assert math.isnan(ev.parameter_norm.auroc) and "undecided" in ev.parameter_norm.note
    assert ev.parameter_norm.summary()["note"] == ev.parameter_norm.note
    assert ev.spectral.auroc == 1.0 and ev.spectral.note == ""


# ----- items 11-13: messages and refusals ---------------------------------------------------------
def test_edge_cases_get_one_clear_error():
    runs = _set(3, n=2)
    with pytest.raises(ValueError, match=r"run 'p0' has fewer than 50 monitored windows after "
                                         r"calibration \(sustain\): lower sustain"):
        evaluate_monitor(runs, sustain=50, n_boot=5, **RULE)
    twice = [MonitoredRun(r.trajectory, r.steps, None, "g", "a" if i < 2 else "b")
             for i, r in enumerate(runs[:3])]
    with pytest.raises(ValueError, match=r"runs: the names \['a'\] are given to more than one"):
        alarm_steps(twice, **RULE)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="block must be >= 1, got 0"):
        block_shuffle(np.arange(5.0), 0, 0, rng)
    with pytest.raises(ValueError, match="start must be >= 0, got -1"):
        block_shuffle(np.arange(5.0), -1, 2, rng)


def test_with_record_interval_refuses_records_less_than_a_step_apart():
    from conjugacy.analysis.groups import with_record_interval
    from conjugacy.spectrum import koopman_spectrum

    sp = koopman_spectrum(np.random.default_rng(0).normal(size=(1, 10, 2)), rank=2)
    assert with_record_interval(sp, range(0, 40, 4)).settings["record_interval"] == 4
    with pytest.raises(ValueError, match=r"steps: the records are 0.5 steps apart"):
        with_record_interval(sp, [0.0, 0.5, 1.0, 1.5])


def test_analyze_window_takes_a_float_onset_and_refuses_a_fractional_one_in_one_line(tmp_path):
    """Item 2: metadata onset 160.0 is step 160 in `conjugacy analyze --window`; 160.5 is one
    line on stderr and exit 2, not a traceback."""
    pytest.importorskip("typer")
    pytest.importorskip("zarr")
    from typer.testing import CliRunner

    from conjugacy.cli import app
    from conjugacy.store import TrajectoryStore

    def store(onset):
        path = tmp_path / f"s{onset}.zarr"
        with TrajectoryStore.open(path, "w") as st:
            for i, r in enumerate(_set(0)):
                meta = {"condition": r.group, "seed": i % 3,
                        **({"onset": onset} if r.onset else {})}
                st.create_run(r.name, {"w": ((3,), "float64")}, metadata=meta)
                st.append(r.name, np.arange(N), {"w": r.trajectory})
                st.set_finished(r.name)
        return str(path)

    args = ["--window", "40", "--delays", "1", "--rank", "2", "--no-report"]
    ok = CliRunner().invoke(app, ["analyze", store(160.0), *args, "--out", str(tmp_path / "o")])
    assert ok.exit_code == 0, ok.output
    assert "(onset 160, lead time" in ok.output or "no alarm (onset 160)" in ok.output
    bad = CliRunner().invoke(app, ["analyze", store(160.5), *args, "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1
    assert "metadata 'onset' must be a training step (an integer), got 160.5" in bad.output


# ----- item 7: the run-level score sees only what came before each onset ----------------------
def test_per_run_horizon_scores_each_run_up_to_its_own_step():
    runs = _set(4)  # the change at step 120, onset 160; windows end at 69, 79, ..., 199
    whole = evaluate_monitor(runs, n_boot=20, sustain=1, **RULE).spectral
    before = [119] * len(runs)  # the change is not seen by step 119
    cut = evaluate_monitor(runs, n_boot=20, sustain=1, horizon=before, **RULE).spectral
    for q, e, full, got in zip(cut.ratios, cut.window_ends, whole.scores, cut.scores):
        assert got == np.nanmax(q[e <= 119]) and got <= full
    assert whole.auroc == 1.0 and cut.auroc < 1.0
    mixed = evaluate_monitor(runs, n_boot=20, sustain=1, horizon=[None] + before[1:], **RULE)
    assert mixed.spectral.scores[0] == whole.scores[0]
    assert mixed.settings["horizon"] == [None, 119, 119, 119, 119, 119]
    with pytest.raises(ValueError, match=r"horizon as a sequence needs one step \(or None\) per "
                                         r"run: got 2 for 6 runs"):
        evaluate_monitor(runs, horizon=[1, 2], **RULE)
    with pytest.raises(TypeError, match=r"horizon\[1\] must be an integer step"):
        evaluate_monitor(runs, horizon=[None, 1.5, 1, 1, 1, 1], **RULE)
