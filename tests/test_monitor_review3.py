"""Issue 23, third review: the pooled false-alarm rate has an interval (per-run monitored steps),
a run that sees nothing by its horizon is not scored instead of aborting the call, a zero
parameter-norm floor leaves that control's counts undecided (and calibrate_rule says why), and
horizons are accepted as arrays and integral floats."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_monitor_controls import RULE
from test_monitor_review import _set

from conjugacy.monitor import _auroc, _false_alarm_rate, calibrate_rule, evaluate_monitor


# ----- item 1: the false-alarm rate pooled over evaluations, with its interval ------------------
def test_false_alarm_rate_pools_events_over_steps_and_resamples_runs():
    events, steps = np.array([0, 3, 1]), np.array([1000, 2000, 1000])
    rate, iv = _false_alarm_rate(events, steps, np.array([[0, 0, 0], [1, 1, 1], [1, 2, 2]]))
    assert rate == 1.0  # 4 events / 4,000 steps, not the mean of per-run rates (0.83)
    assert iv == (np.percentile([0.0, 1.5, 1.25], 2.5), np.percentile([0.0, 1.5, 1.25], 97.5))


def test_each_runs_monitored_steps_add_up_to_the_negative_steps():
    ev = evaluate_monitor(_set(2), n_boot=50, **RULE).spectral
    assert ev.monitored_steps == (140,) * 6  # window ends 59 (calibration) to 199
    neg = [o is None for o in evaluate_monitor(_set(2), n_boot=5, **RULE).onsets]
    assert sum(s for s, n in zip(ev.monitored_steps, neg) if n) == ev.negative_steps == 420
    events = np.array(ev.alarm_events)[neg]
    ni = np.random.default_rng(0).integers(0, 3, (50, 3))
    assert _false_alarm_rate(events, np.full(3, 140), ni)[0] == ev.false_alarms_per_1000


# ----- item 2: a run with nothing monitored by its horizon ------------------------------------
def test_auroc_leaves_out_pairs_with_an_unscored_run():
    assert _auroc(np.array([1.0, np.nan]), np.array([0.0, 1.0])) == 0.75  # > and tie
    assert math.isnan(_auroc(np.array([np.nan]), np.array([0.0])))


def test_a_run_blind_by_its_horizon_is_not_scored_and_the_others_are():
    runs = _set(4)  # p0-p2 onset 160, n0-n2 none; the first monitored window ends at step 69
    before = [65] + [119] * 5
    s = evaluate_monitor(runs, n_boot=20, sustain=1, horizon=before, **RULE).spectral
    assert math.isnan(s.scores[0]) and all(np.isfinite(s.scores[1:]))
    assert s.auroc == _auroc(np.array(s.scores[1:3]), np.array(s.scores[3:]))
    assert "runs ['p0'] have no monitored window" in s.note and "not scored (NaN)" in s.note
    none = evaluate_monitor(runs, n_boot=20, horizon=60, **RULE).spectral  # nothing by step 60
    assert math.isnan(none.auroc) and "'n2'" in none.note


# ----- item 4: zero parameter-norm floor ---------------------------------------------------------
def test_a_zero_norm_floor_reports_no_counts_and_calibration_names_the_floor():
    norm = evaluate_monitor(_set(1, unit=True), n_boot=20, **RULE).parameter_norm
    assert norm.negatives_alarmed is None and norm.detected is None
    assert norm.detected_early is None and math.isnan(norm.false_alarms_per_1000)
    assert all(math.isnan(x) for x in norm.false_alarm_interval)



def test_calibration_leaves_a_zero_norm_floor_control_undecided_with_the_reason():
    """Issue 23 leftover: calibrate_rule raised when only the parameter-norm floor was 0 (unit-
    norm points), so the spectral rule could not be calibrated either. Now that control is
    undecided (factor NaN, the reason in ``notes``) and evaluate_monitor reports it undecided
    on any runs, while the spectral signal is calibrated and evaluated as before."""
    runs = _set(1, unit=True)
    rule = calibrate_rule(runs, **RULE)
    assert math.isnan(rule.factor["parameter_norm"]) and rule.candidates["parameter_norm"] == []
    assert rule.sustain["parameter_norm"] == 1  # the shortest of the default (1, 2, 3)
    why = ("undecided: the parameter-norm control cannot be calibrated: its seed-to-seed floor "
           "is 0 in group(s) ['neg', 'pos']")
    assert list(rule.notes) == ["parameter_norm"] and rule.notes["parameter_norm"].startswith(why)
    assert rule.summary()["parameter_norm"] == {"factor": None, "sustain": 1,
                                                "note": rule.notes["parameter_norm"]}
    assert rule.factor["spectral"] > 0 and rule.candidates["spectral"]
    for other in (runs, _set(2)):  # the norm floor is 0 there, and not 0 there
        ev = evaluate_monitor(other, factor=rule.factor, sustain=rule.sustain, n_boot=20, **RULE)
        norm = ev.parameter_norm
        assert math.isnan(norm.auroc) and all(math.isnan(x) for x in norm.scores)
        assert norm.detected is None and norm.negatives_alarmed is None
        assert norm.alarm_steps == (None,) * 6 and norm.note.startswith("undecided: no factor")
        assert np.isfinite(ev.spectral.auroc) and ev.spectral.note == ""
    with pytest.raises(ValueError, match="factor"):  # NaN only marks a calibrated rule's signal
        evaluate_monitor(runs, factor=math.nan, **RULE)


# ----- item 5: horizons as arrays and integral floats -------------------------------------------
@pytest.mark.parametrize("horizon", [np.array([119] * 6), [119.0] * 6, np.full(6, 119.0)])
def test_horizon_accepts_arrays_and_integral_floats(horizon):
    runs = _set(4)
    want = evaluate_monitor(runs, n_boot=20, sustain=1, horizon=[119] * 6, **RULE).spectral
    got = evaluate_monitor(runs, n_boot=20, sustain=1, horizon=horizon, **RULE)
    assert got.spectral.scores == want.scores and got.settings["horizon"] == [119] * 6
    one = evaluate_monitor(runs, n_boot=20, sustain=1, horizon=np.float64(119.0), **RULE)
    assert one.settings["horizon"] == 119 and one.spectral.scores == want.scores
    with pytest.raises(TypeError, match=r"horizon\[2\] must be an integer step \(160 or 160.0\), "
                                        r"got 1.5"):
        evaluate_monitor(runs, horizon=[1, 1, 1.5, 1, 1, 1], **RULE)


# ----- item 3: `analyze --window` monitors each condition with all its runs ---------------------
def test_analyze_window_alarms_use_every_run_of_a_condition_beside_a_single_run_one(tmp_path):
    """A condition with one run ('solo') cut the others to one seed each before the alarms, so
    no condition could be monitored; now only 'solo' is left out, with a note."""
    pytest.importorskip("zarr")
    import conjugacy
    from conjugacy.monitor import alarm_steps
    from conjugacy.store import TrajectoryStore

    runs = _set(0)  # p0-p2 onset 160, n0-n2 none
    solo = _set(5, n=1)[1]
    with TrajectoryStore.open(tmp_path / "s.zarr", "w") as st:
        for i, r in enumerate([*runs, solo]):
            cond = "solo" if r is solo else r.group
            meta = {"condition": cond, "seed": i % 3, **({"onset": 160} if r.onset else {})}
            name = "solo" if r is solo else r.name
            st.create_run(name, {"w": ((3,), "float64")}, metadata=meta)
            st.append(name, np.arange(200), {"w": r.trajectory})
            st.set_finished(name)
    res = conjugacy.analyze(tmp_path / "s.zarr", window=40, delays=1, rank=2, n_permutations=9)
    got = res.results["windows"]["alarms"]
    want = {**alarm_steps(runs[:3], window=40, stride=20, spectrum_kwargs=RULE["spectrum_kwargs"]),
            **alarm_steps(runs[3:], window=40, stride=20, spectrum_kwargs=RULE["spectrum_kwargs"])}
    assert "error" not in got and sorted(got["runs"]) == sorted(want)
    assert {n: e["alarm_step"] for n, e in got["runs"].items()} == want
    assert [n for n in got["notes"] if "not monitored" in n] == [
        "condition 'solo' not monitored: group 'solo' has 1 run; the seed-to-seed noise floor "
        "needs at least 2 runs per group (independent seeds of one setup)"]
