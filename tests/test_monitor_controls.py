"""The monitor's negative controls, the held-out choice of the operating rule and the edge cases
(issue 23 review, items 1, 2 and 5): each control is the same rule on another signal and can
alarm on a change planted in that signal; the shuffled control keeps the windows' overlap."""

from __future__ import annotations

import numpy as np
import pytest

from conjugacy.monitor import (
    SIGNALS,
    MonitoredRun,
    _lowest_factor,
    _sustained,
    alarm_steps,
    block_shuffle,
    calibrate_rule,
    evaluate_monitor,
)

N, CHANGE, ONSET = 200, 120, 160
RULE = {"window": 40, "stride": 10, "calibration": 3, "spectrum_kwargs": {"delays": 1, "rank": 2}}
# windows start at records 0, 10, ..., 160 (17 windows); calibration ends with window 2 (step 59)


def _run(rng, *, flip: bool = False, scale: bool = False, onset: int | None = None,
         group: str = "g", name: str = "") -> MonitoredRun:
    """3 AR(1) weights (coefficient 0.9, unit innovations); from step CHANGE on the coefficient
    is -0.9 (``flip``: same variance, the norm cannot see it) or the weights are larger
    (``scale``: 10x, the same dynamics at another scale)."""
    coef = np.where((np.arange(N) >= CHANGE) & flip, -0.9, 0.9)
    x = np.zeros((N, 3))
    x[0] = rng.standard_normal(3) / np.sqrt(1 - 0.81)
    for t in range(1, N):
        x[t] = coef[t] * x[t - 1] + rng.standard_normal(3)
    if scale:
        x[CHANGE:] *= 10.0
    return MonitoredRun(x, np.arange(N), onset, group, name)


def _set(rng, n: int = 4, **planted) -> list[MonitoredRun]:
    pos = [_run(rng, onset=ONSET, group="pos", name=f"p{i}", **planted) for i in range(n)]
    neg = [_run(rng, group="neg", name=f"n{i}") for i in range(n)]
    return pos + neg


# ----- the controls -----------------------------------------------------------------------------
def test_block_shuffle_permutes_whole_blocks_after_start():
    values = np.arange(9.0)
    got = block_shuffle(values, 2, 3, np.random.default_rng(3))
    order = np.random.default_rng(3).permutation(3)  # blocks [2, 3, 4], [5, 6, 7], [8]
    blocks = [[2.0, 3.0, 4.0], [5.0, 6.0, 7.0], [8.0]]
    assert got.tolist() == [0.0, 1.0] + sum((blocks[j] for j in order), [])
    assert got.tolist() != values.tolist() and values.tolist() == list(range(9))  # not in place


def test_parameter_norm_control_alarms_on_a_planted_norm_change():
    ev = evaluate_monitor(_set(np.random.default_rng(0), scale=True), factor=3.0, sustain=1,
                          n_boot=100, **RULE)
    norm = ev.parameter_norm
    assert norm.detected == norm.detected_early == 4 and norm.alarm_events[4:] == (0,) * 4
    for alarm in norm.alarm_steps[:4]:  # the first window holding a record from step 120 on
        assert alarm == CHANGE + 9
    assert norm.auroc == 1.0 and norm.false_alarms_per_1000 == 0.0


def test_shuffled_control_keeps_the_spectral_ratios_and_alarms_on_a_planted_change():
    ev = evaluate_monitor(_set(np.random.default_rng(1), flip=True), factor=3.0, sustain=1,
                          n_boot=100, seed=5, **RULE)
    sp, sh = ev.spectral, ev.shuffled_windows
    start, block = 3, 4  # first monitored ratio (window 3); ceil(40 / 10)
    for i, (a, b) in enumerate(zip(sp.ratios, sh.ratios)):
        assert np.isnan(a[:start]).all() and np.isnan(b[:start]).all()
        rng = np.random.default_rng(np.random.SeedSequence(5, spawn_key=(i,)))
        np.testing.assert_array_equal(b, block_shuffle(a, start, block, rng))
        # every shuffled value is a true consecutive-window distance (overlap 75 % kept)
        np.testing.assert_array_equal(np.sort(a[start:]), np.sort(b[start:]))
    assert sp.detected == 4 and sh.detected == 4  # the planted change alarms, shuffled or not
    assert sh.alarm_steps != sp.alarm_steps  # ... but at other steps


# ----- the operating rule chosen on held-out runs --------------------------------------------
def test_lowest_factor_meets_the_target_at_it_and_every_higher_level():
    levels = [np.array([np.nan, 1.0, 5.0, 2.0]), np.array([3.0, 3.0, np.nan])]
    # events above 5: 0; above 3: 1 (5.0); above 2: 2 (5.0, the 3-3 streak); above 1: 2
    assert _lowest_factor(levels, 1000.0, 1.0) == (3.0, 1.0)
    assert _lowest_factor(levels, 1000.0, 2.0) == (1.0, 2.0)
    assert _lowest_factor(levels, 1000.0, 0.0) == (5.0, 0.0)
    assert _lowest_factor([np.array([np.nan])], 1000.0, 1.0) is None


def test_calibrate_rule_sets_each_signal_factor_from_its_own_negatives():
    rng = np.random.default_rng(2)
    held_out = _set(rng, n=3, flip=True)
    rule = calibrate_rule(held_out, target_false_alarms=0.0, sustains=(1, 2), **RULE)
    ev = evaluate_monitor(held_out, factor=rule.factor, sustain=rule.sustain, n_boot=50, **RULE)
    for s in SIGNALS:
        sig = getattr(ev, s)
        # at target 0 the factor is the largest sustained level of any negative run
        levels = [_sustained(q, rule.sustain[s]) for q in sig.ratios[3:]]
        assert rule.factor[s] == max(np.nanmax(v) for v in levels)
        assert sig.false_alarms_per_1000 == 0.0 and (sig.factor, sig.sustain) == (
            rule.factor[s], rule.sustain[s])
        assert [c["sustain"] for c in rule.candidates[s]] == [1, 2]
    assert rule.factor["parameter_norm"] < 1.54 < rule.factor["spectral"]  # own scale each
    assert rule.candidates["spectral"][0]["warned"] == 3 and rule.sustain["spectral"] == 1
    fresh = _set(np.random.default_rng(3), n=3, flip=True)  # reported on other runs
    out = evaluate_monitor(fresh, factor=rule.factor, sustain=rule.sustain, n_boot=50, **RULE)
    assert out.spectral.detected_early == 3 and out.summary()["settings"]["factor"] == rule.factor


def test_per_signal_rule_and_calibration_refuse_bad_input():
    runs = _set(np.random.default_rng(4), n=2)
    runs[0] = MonitoredRun(runs[0].trajectory, runs[0].steps, ONSET, "pos", "p0")
    with pytest.raises(ValueError, match=r"factor as a mapping needs one value per signal .* "
                                         r"missing \['parameter_norm', 'shuffled_windows'\]"):
        evaluate_monitor(runs, factor={"spectral": 2.0}, **RULE)
    with pytest.raises(ValueError, match=r"sustain\['spectral'\] must be >= 1"):
        evaluate_monitor(runs, sustain={s: 0 for s in SIGNALS}, **RULE)
    with pytest.raises(ValueError, match="sustains is empty"):
        calibrate_rule(runs, sustains=(), **RULE)
    with pytest.raises(ValueError, match="no run is monitored for 99 windows"):
        calibrate_rule(runs, sustains=(99,), **RULE)


# ----- edge cases -------------------------------------------------------------------------------
def test_duplicated_runs_are_refused_with_one_error_naming_the_group():
    runs = _set(np.random.default_rng(5), n=2)
    dup = runs[:2] + [runs[2], MonitoredRun(runs[2].trajectory, runs[2].steps, None, "neg", "d")]
    with pytest.raises(ValueError, match=r"group 'neg': the seed-to-seed noise floor of the "
                                         r"spectral signal is 0 .*duplicated runs"):
        evaluate_monitor(dup, **RULE)
    with pytest.raises(ValueError, match="noise floor of the spectral signal is 0"):
        alarm_steps(dup[2:], **RULE)


def test_an_onset_outside_the_run_is_refused():
    runs = _set(np.random.default_rng(6), n=2)
    late = [MonitoredRun(runs[0].trajectory, runs[0].steps, 10**9, "pos", "p0")] + runs[1:]
    with pytest.raises(ValueError, match=r"runs\[0\] \('p0'\): onset 1000000000 lies outside "
                                         r"the run \(steps 0 to 199\)"):
        evaluate_monitor(late, **RULE)
    with pytest.raises(ValueError, match="onset 1000000000 lies outside the run"):
        alarm_steps(late, **RULE)
