"""The early-warning monitor (issue 23, item 2): the operating rule on exact series, and its
evaluation on synthetic runs whose onset is known exactly: AR(1) weights whose coefficient flips
from 0.9 to -0.9 at a known step (same stationary variance, so the parameter norm cannot see it)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from conjugacy.monitor import (
    SIGNALS,
    MonitoredRun,
    _alarms,
    _auroc,
    alarm_steps,
    evaluate_monitor,
)

N, CHANGE, ONSET = 200, 120, 160
RULE = {"window": 40, "stride": 10, "calibration": 3, "factor": 3.0, "sustain": 1,
        "spectrum_kwargs": {"delays": 1, "rank": 2}}
# windows start at records 0, 10, ..., 160 and end at 39, 49, ..., 199; calibration ends at 59,
# so 199 - 59 = 140 steps of every negative run are monitored. A flip makes the rank-2 spectrum
# jump from ~0.9 to ~-0.9 in one or two windows (spikes, not a plateau): sustain 1


def _run(flips: tuple[int, ...], onset: int | None, group: str, rng, name: str) -> MonitoredRun:
    """3 independent AR(1) weights, coefficient 0.9 with its sign flipped at each step of
    ``flips``, unit innovations."""
    coef = np.full(N, 0.9)
    for f in flips:
        coef[f:] *= -1
    x = np.zeros((N, 3))
    x[0] = rng.standard_normal(3) / np.sqrt(1 - 0.81)
    for t in range(1, N):
        x[t] = coef[t] * x[t - 1] + rng.standard_normal(3)
    return MonitoredRun(x, np.arange(N), onset, group, name)


def _runs(seed=0, negative_flips=((), (), ())):
    rng = np.random.default_rng(seed)
    pos = [_run((CHANGE,), ONSET, "pos", rng, f"p{i}") for i in range(4)]
    neg = [_run(f, None, "neg", rng, f"n{i}") for i, f in enumerate(negative_flips)]
    return pos + neg


# ----- the rule on exact series -------------------------------------------------------------
def test_alarm_is_the_first_sustained_streak_and_every_streak_is_an_event():
    ratios = np.array([np.nan, np.nan, 1, 4, 5, 2, 6, 7, 8])
    ends = np.arange(10, 100, 10)
    # sustained (min of 2): nan nan nan 1 4 2 2 6 7 -> above 3 at windows 4, 7, 8
    assert _alarms(ratios, ends, 3.0, 2) == (50, 2)
    assert _alarms(ratios, ends, 3.0, 1) == (40, 2)
    assert _alarms(ratios, ends, 3.0, 3) == (90, 1)
    assert _alarms(ratios, ends, 10.0, 1) == (None, 0)


def test_auroc_is_the_mann_whitney_statistic_with_ties_halved():
    pos, neg = np.array([3.0, 2.0]), np.array([1.0, 2.0])
    assert _auroc(pos, neg) == 0.875  # 3 wins and one tie of 4 pairs
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 5, 9).astype(float), rng.integers(0, 5, 7).astype(float)
    assert _auroc(a, b) == pytest.approx(mannwhitneyu(a, b).statistic / 63, abs=1e-15)


# ----- evaluation on runs with a known onset ----------------------------------------------------
def test_spectral_monitor_warns_of_a_known_change_and_the_norm_does_not():
    ev = evaluate_monitor(_runs(), n_boot=500, **RULE)
    sp = ev.spectral
    assert sp.auroc == 1.0 and sp.auroc_interval == (1.0, 1.0)
    assert sp.detected == sp.n_positive == 4
    for alarm in sp.alarm_steps[:4]:
        # the first window that reaches the change ends at 129, the first after it at 159
        assert CHANGE + 9 <= alarm <= CHANGE + RULE["window"] - 1
    assert sp.lead_times == tuple(float(ONSET - a) for a in sp.alarm_steps[:4])
    assert sp.lead_time_median == float(np.median(sp.lead_times))
    assert sp.alarm_steps[4:] == (None, None, None) and sp.false_alarms_per_1000 == 0.0
    assert sp.negative_steps == 3 * 140 and sp.negatives_alarmed == 0
    # the norm does not change at the flip: it cannot tell positives from negatives
    assert ev.parameter_norm.auroc < 0.9 and ev.parameter_norm.detected < 4
    assert [s for s in SIGNALS] == ["spectral", "parameter_norm", "shuffled_windows"]
    assert ev.summary()["signals"]["spectral"]["auroc"] == 1.0


def test_false_alarms_count_every_streak_in_runs_without_onset():
    # one negative flips twice: two changes, two alarm events, over 3 x 140 monitored steps
    ev = evaluate_monitor(_runs(negative_flips=((90,), (), (150,))), n_boot=200, **RULE)
    events = ev.spectral.alarm_events[4:]
    assert events[0] >= 1 and events[1] == 0 and events[2] >= 1
    assert ev.spectral.negatives_alarmed == 2
    assert ev.spectral.alarm_steps[4] >= 99 and ev.spectral.alarm_steps[6] >= 159
    assert ev.spectral.false_alarms_per_1000 == pytest.approx(1000 * sum(events) / 420,
                                                              rel=1e-15)
    lo, hi = ev.spectral.false_alarm_interval
    assert 0.0 <= lo <= ev.spectral.false_alarms_per_1000 <= hi <= 1000 * 3 * max(events) / 420


def test_results_are_deterministic_given_the_seed_and_alarm_steps_agree():
    runs = _runs()
    a = evaluate_monitor(runs, n_boot=100, seed=3, **RULE)
    b = evaluate_monitor(runs, n_boot=100, seed=3, **RULE)
    assert a.summary() == b.summary()
    assert a.shuffled_windows.alarm_steps == b.shuffled_windows.alarm_steps
    c = evaluate_monitor(runs, n_boot=100, seed=4, **RULE)
    assert c.spectral.alarm_steps == a.spectral.alarm_steps  # the seed moves controls only
    got = alarm_steps(runs, **{k: v for k, v in RULE.items()})
    assert list(got.values()) == list(a.spectral.alarm_steps)
    assert list(got) == [r.name for r in runs]


def test_horizon_limits_the_score_to_what_was_seen_by_then():
    runs = _runs()
    early = evaluate_monitor(runs, n_boot=100, horizon=100, **RULE)  # before the change
    assert early.spectral.auroc < 1.0
    assert early.spectral.alarm_steps == evaluate_monitor(runs, n_boot=100, **RULE).spectral.alarm_steps
    blind = evaluate_monitor(runs, n_boot=10, horizon=60, **RULE).spectral  # nothing by 60
    assert math.isnan(blind.auroc) and "not scored (NaN)" in blind.note


def test_bad_input_gets_one_clear_error():
    runs = _runs()
    with pytest.raises(ValueError, match="runs with an onset and runs without"):
        evaluate_monitor(runs[:4], **RULE)
    bad = [MonitoredRun(r.trajectory, r.steps, 50, r.group, r.name) for r in runs[:4]] + runs[4:]
    with pytest.raises(ValueError, match=r"onset 50 is inside the calibration period \(ends at "
                                         r"step 59\)"):
        evaluate_monitor(bad, **RULE)
    with pytest.raises(ValueError, match="group 'neg' has 1 run"):
        evaluate_monitor(runs[:5], **RULE)
    with pytest.raises(ValueError, match="no window starts at or after burn_in = 500"):
        evaluate_monitor(runs, burn_in=500, **RULE)
    with pytest.raises(ValueError, match="factor must be finite and > 0"):
        evaluate_monitor(runs, **{**RULE, "factor": 0})
    with pytest.raises(ValueError, match="steps must be increasing integers"):
        evaluate_monitor([MonitoredRun(runs[0].trajectory, np.zeros(N, int), 150, "x")] * 2
                         + runs[4:], **RULE)


def _store(tmp_path) -> tuple:
    """The runs (3 per condition) in a store: positives carry a test_accuracy series that
    reaches 1 at ONSET, except p2, whose metadata onset (170) wins; negatives carry neither."""
    pytest.importorskip("zarr")
    from conjugacy.store import TrajectoryStore

    runs = _runs()
    runs = runs[:3] + runs[4:]
    acc = (np.arange(N) >= ONSET).astype(float)
    onsets = {}
    with TrajectoryStore.open(tmp_path / "s.zarr", "w") as st:
        for i, r in enumerate(runs):
            pos = r.onset is not None
            meta = {"condition": "pos" if pos else "neg", "seed": i % 3}
            if i == 2:
                meta["onset"] = 170
            onsets[r.name] = 170 if i == 2 else (ONSET if pos else None)
            st.create_run(r.name, {"w": ((3,), "float64")}, metadata=meta)
            st.append(r.name, np.arange(N), {"w": r.trajectory},
                      scalars={"test_accuracy": acc} if pos else None)
            st.set_finished(r.name)
    return tmp_path / "s.zarr", runs, onsets


def test_analyze_window_reports_alarm_and_lead_time_of_runs_with_an_onset(tmp_path):
    """`conjugacy analyze --window`: the spectral rule's alarm step, the onset and the lead time
    of every run, in results.json and on the terminal."""
    import conjugacy

    path, runs, onsets = _store(tmp_path)
    res = conjugacy.analyze(path, window=40, delays=1, rank=2, n_permutations=9)
    got = res.results["windows"]["alarms"]
    assert got["rule"] == {"window": 40, "stride": 20, "calibration": 3, "factor": 3.0,
                           "sustain": 2}
    want = alarm_steps(runs, window=40, stride=20, spectrum_kwargs={"delays": 1, "rank": 2})
    for r in runs:
        entry, onset = got["runs"][r.name], onsets[r.name]
        assert entry["alarm_step"] == want[r.name] and entry["onset"] == onset
        assert entry["lead_time"] == (None if onset is None or want[r.name] is None
                                      else onset - want[r.name])
    assert got["runs"]["p0"] == {"alarm_step": 159, "onset": 160, "lead_time": 1,
                                 "condition": "pos"}
    pytest.importorskip("typer")
    from typer.testing import CliRunner

    from conjugacy.cli import app

    out = CliRunner().invoke(app, ["analyze", str(path), "--window", "40", "--delays", "1",
                                   "--rank", "2", "--no-report", "--out", str(tmp_path / "o")])
    assert out.exit_code == 0, out.output
    assert "- p0: alarm at step 159 (onset 160, lead time 1 steps)" in out.output
    assert "- n0: no alarm (no onset)" in out.output
