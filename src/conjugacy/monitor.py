"""An early-warning monitor on windowed Koopman spectra, and its evaluation on runs with known onsets.

The operating rule (online: every quantity it uses is known when a window's last record is in):

1. Each run is cut into windows of ``window`` records every ``stride`` records
   (:func:`conjugacy.windowed_spectra`); windows starting before ``burn_in`` (a training step)
   are ignored (e.g. the memorisation phase of grokking).
2. **Noise floor**: over the first ``calibration`` monitored windows, the mean distance between
   the spectra of different runs of one ``group`` (independent seeds of one setup) at the same
   window, averaged over those windows: the seed-to-seed noise floor of
   :func:`conjugacy.analysis.windowed.window_distances`, restricted to the calibration period.
   It uses no onset and no data after the calibration period.
3. **Signal**: after calibration, the distance between consecutive windows (``W1`` of their
   spectra) divided by the floor of the run's group.
4. **Alarm**: the signal exceeds ``factor`` for ``sustain`` consecutive windows; the alarm step
   is the last recorded step of the window completing the streak. Every maximal streak is one
   alarm event.

:func:`evaluate_monitor` applies the rule to runs with a known onset (e.g. the step at which test
accuracy first crosses 0.9) and runs without, and reports, as in the early-warning literature
(SPEC section 9): run-level AUROC (score: the largest sustained level, the minimum of ``sustain``
consecutive signal values, within ``horizon``) with a bootstrap interval over runs; lead time
``onset - alarm step`` (median and bootstrap interval, over the positive runs that alarm) and the
detection count; false alarms per 1,000 monitored steps of the runs without onset (with a
bootstrap interval). The same numbers are given for two negative controls under the same rule:
``"parameter_norm"`` (the mean parameter norm of each window instead of its spectrum: does the
spectrum add anything to the norm?) and ``"shuffled_windows"`` (each run's monitored windows in a
random order: does the timing matter, or only that a run holds distinct regimes?).

Source: the evaluation protocol of recent grokking and divergence monitors (SPEC section 9:
run-level AUROC on runs, a sustained-threshold operating rule, lead time with the false-alarm
rate, parameter-norm and shuffled-window controls, e.g. arXiv 2605.08237); the noise floor is the
package's own seed-to-seed floor. Measured on grokking: ``docs/results_early_warning.md``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._checks import check_int, check_positive_float
from .compare import distance_matrix, wasserstein

__all__ = [
    "SIGNALS",
    "MonitorEvaluation",
    "MonitoredRun",
    "SignalEvaluation",
    "alarm_steps",
    "evaluate_monitor",
]

#: The monitored signal and its two negative controls, in the order reported.
SIGNALS = ("spectral", "parameter_norm", "shuffled_windows")


@dataclass(frozen=True)
class MonitoredRun:
    """One training run as the monitor sees it.

    Attributes
    ----------
    trajectory : array (n_records, n_features)
        The recorded weights (or any observables) of the run.
    steps : array of int (n_records,)
        Training step of each record, increasing.
    onset : int or None
        The step at which the monitored event happened (e.g. test accuracy first >= 0.9); None
        for a run without it (a negative).
    group : str
        Runs of one setup (independent seeds); the noise floor is computed within a group, which
        needs at least two runs.
    name : str

    Examples
    --------
    >>> import numpy as np
    >>> run = MonitoredRun(np.zeros((120, 2)), np.arange(0, 1200, 10), onset=900, group="sgd")
    >>> run.trajectory.shape, int(run.steps[-1]), run.onset, run.group
    ((120, 2), 1190, 900, 'sgd')
    """

    trajectory: Any
    steps: Any
    onset: int | None = None
    group: str = ""
    name: str = ""


@dataclass(frozen=True)
class SignalEvaluation:
    """The operating rule on one signal, over all runs (per-run tuples in the order given).

    Attributes
    ----------
    signal : str
        One of :data:`SIGNALS`.
    noise_floors : dict group -> float
        In the units of the signal's distance (``W1`` per window for spectra, the norm's units
        for ``"parameter_norm"``).
    ratios : tuple of ndarray (n_windows,)
        Per run: consecutive-window distance / floor, NaN where not monitored.
    window_ends : tuple of ndarray of int (n_windows,)
        Per run: last recorded step of each window.
    alarm_steps : tuple of (int or None)
        First alarm of each run (None: none).
    alarm_events : tuple of int
        Alarm events (maximal streaks) of each run.
    scores : tuple of float
        Run-level score (the largest sustained level within the horizon).
    auroc, auroc_interval : float, (float, float)
        Runs with an onset against runs without; 95 % percentile bootstrap interval over runs.
    lead_times : tuple of float
        ``onset - alarm step`` of each positive run (NaN where it never alarms; negative: late).
    lead_time_median, lead_time_interval : float, (float, float)
        Over the positive runs that alarm (NaN if none).
    detected, n_positive : int
        Positive runs that alarm, and all positive runs.
    false_alarms_per_1000, false_alarm_interval : float, (float, float)
        Alarm events in runs without onset per 1,000 monitored steps (from the first monitored
        window's end to the last window's end).
    n_negative, negative_steps : int

    Examples
    --------
    Two runs whose AR(1) coefficient flips at step 80 (onset 110) and two that never flip:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> def run(onset, group):
    ...     x, a = np.zeros((120, 2)), np.full(120, 0.9)
    ...     a[80:] = -0.9 if onset else 0.9
    ...     for t in range(1, 120):
    ...         x[t] = a[t] * x[t - 1] + rng.standard_normal(2)
    ...     return MonitoredRun(x, np.arange(120), onset, group)
    >>> runs = [run(110, "p"), run(110, "p"), run(None, "n"), run(None, "n")]
    >>> s = evaluate_monitor(runs, window=20, stride=10, n_boot=50,
    ...                      spectrum_kwargs={"delays": 1, "rank": 2}).spectral
    >>> s.signal, s.alarm_steps, s.lead_times, s.detected, s.n_positive, s.auroc
    ('spectral', (99, 99, None, None), (11.0, 11.0), 2, 2, 1.0)
    >>> s.window_ends[0]
    array([ 19,  29,  39,  49,  59,  69,  79,  89,  99, 109, 119])
    """

    signal: str
    noise_floors: dict[str, float]
    ratios: tuple[np.ndarray, ...]
    window_ends: tuple[np.ndarray, ...]
    alarm_steps: tuple[int | None, ...]
    alarm_events: tuple[int, ...]
    scores: tuple[float, ...]
    auroc: float
    auroc_interval: tuple[float, float]
    lead_times: tuple[float, ...]
    lead_time_median: float
    lead_time_interval: tuple[float, float]
    detected: int
    n_positive: int
    false_alarms_per_1000: float
    false_alarm_interval: tuple[float, float]
    n_negative: int
    negative_steps: int

    def summary(self) -> dict[str, Any]:
        """The headline numbers (JSON-ready)."""
        return {"signal": self.signal, "auroc": self.auroc, "auroc_interval": list(self.auroc_interval),
                "lead_time_median": self.lead_time_median,
                "lead_time_interval": list(self.lead_time_interval),
                "detected": self.detected, "n_positive": self.n_positive,
                "false_alarms_per_1000": self.false_alarms_per_1000,
                "false_alarm_interval": list(self.false_alarm_interval),
                "n_negative": self.n_negative, "noise_floors": dict(self.noise_floors)}


@dataclass(frozen=True)
class MonitorEvaluation:
    """What :func:`evaluate_monitor` found: one :class:`SignalEvaluation` per signal of
    :data:`SIGNALS`, and the settings of the rule.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> def run(onset, group):  # AR(1) weights; the coefficient flips at step 80 for positives
    ...     x, a = np.zeros((120, 2)), np.full(120, 0.9)
    ...     a[80:] = -0.9 if onset else 0.9
    ...     for t in range(1, 120):
    ...         x[t] = a[t] * x[t - 1] + rng.standard_normal(2)
    ...     return MonitoredRun(x, np.arange(120), onset, group)
    >>> runs = [run(110, "p"), run(110, "p"), run(None, "n"), run(None, "n")]
    >>> ev = evaluate_monitor(runs, window=20, stride=10, n_boot=50,
    ...                       spectrum_kwargs={"delays": 1, "rank": 2})
    >>> ev.names, ev.onsets
    (('#0', '#1', '#2', '#3'), (110, 110, None, None))
    >>> summary = ev.summary()  # JSON-ready
    >>> summary["settings"]["window"], sorted(summary["signals"])
    (20, ['parameter_norm', 'shuffled_windows', 'spectral'])
    """

    spectral: SignalEvaluation
    parameter_norm: SignalEvaluation
    shuffled_windows: SignalEvaluation
    settings: dict[str, Any] = field(default_factory=dict)
    names: tuple[str, ...] = ()
    onsets: tuple[int | None, ...] = ()

    def summary(self) -> dict[str, Any]:
        """Settings and the headline numbers of every signal (JSON-ready)."""
        return {"settings": dict(self.settings),
                "signals": {s: getattr(self, s).summary() for s in SIGNALS}}


# ----- the rule on a series of ratios ---------------------------------------------------------
def _sustained(ratios: np.ndarray, sustain: int) -> np.ndarray:
    """Per window: the minimum of the last ``sustain`` ratios (NaN until ``sustain`` monitored
    values are in, and wherever one of them is not monitored)."""
    out = np.full(ratios.shape, np.nan)
    for w in range(sustain - 1, ratios.size):
        out[w] = ratios[w - sustain + 1: w + 1].min()  # NaN propagates
    return out


def _alarms(ratios: np.ndarray, ends: np.ndarray, factor: float, sustain: int
            ) -> tuple[int | None, int]:
    """First alarm step and number of alarm events (rising edges of ``sustained > factor``)."""
    with np.errstate(invalid="ignore"):
        on = _sustained(ratios, sustain) > factor
    if not on.any():
        return None, 0
    rising = on & ~np.concatenate([[False], on[:-1]])
    return int(ends[int(np.argmax(on))]), int(rising.sum())


def _auroc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUROC ``P(score_pos > score_neg) + P(tie) / 2`` along the last axis (the Mann-Whitney U
    statistic over ``n_pos * n_neg``); leading axes are bootstrap replicates."""
    diff = pos[..., :, None] - neg[..., None, :]
    return (diff > 0).mean(axis=(-2, -1)) + 0.5 * (diff == 0).mean(axis=(-2, -1))


def _interval(values: np.ndarray) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (math.nan, math.nan)
    lo, hi = np.percentile(values, [2.5, 97.5])
    return (float(lo), float(hi))


# ----- windows, floors and signals ------------------------------------------------------------
@dataclass(frozen=True)
class _Windows:
    """One run cut into windows: spectra, mean parameter norm and steps of each window."""

    spectra: list[Any]
    norms: np.ndarray
    starts: np.ndarray  # first recorded step of each window
    ends: np.ndarray  # last recorded step of each window
    first: int  # first monitored window (start step >= burn_in)


def _check_run(run: Any, i: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(run, MonitoredRun):
        raise TypeError(f"runs[{i}] must be a MonitoredRun, got {type(run).__name__}")
    traj = np.asarray(run.trajectory)
    steps = np.asarray(run.steps)
    if traj.ndim != 2 or steps.shape != (traj.shape[0],):
        raise ValueError(f"runs[{i}] ({run.name!r}): trajectory must be (n_records, n_features) "
                         f"with one step per record; got {traj.shape} and steps {steps.shape}")
    if not np.issubdtype(steps.dtype, np.integer) or (np.diff(steps) <= 0).any():
        raise ValueError(f"runs[{i}] ({run.name!r}): steps must be increasing integers")
    if run.onset is not None:
        check_int(run.onset, f"runs[{i}].onset")
    return traj, steps


def _cut(run: MonitoredRun, i: int, window: int, stride: int | None, burn_in: int,
         kwargs: dict[str, Any]) -> _Windows:
    from .windows import windowed_spectra

    traj, steps = _check_run(run, i)
    spectra = windowed_spectra(traj[None], window, stride, **kwargs)  # one trajectory
    bounds = np.array([[s.settings["window"]["start"], s.settings["window"]["stop"]]
                       for s in spectra])
    starts, ends = steps[bounds[:, 0]], steps[bounds[:, 1] - 1]
    norms = np.array([np.linalg.norm(traj[a:b].astype(float), axis=1).mean() for a, b in bounds])
    monitored = np.flatnonzero(starts >= burn_in)
    if monitored.size == 0:
        raise ValueError(f"runs[{i}] ({run.name!r}): no window starts at or after burn_in "
                         f"= {burn_in} (its last window starts at step {int(starts[-1])})")
    return _Windows(spectra, norms, starts, ends, int(monitored[0]))


def _floors(cut: list[_Windows], runs: Sequence[MonitoredRun], calibration: int
            ) -> dict[str, dict[str, float]]:
    """Per group: the seed-to-seed noise floor of the spectra and of the norms over the
    calibration windows (mean over windows of the mean distance between runs)."""
    out: dict[str, dict[str, float]] = {"spectral": {}, "parameter_norm": {}}
    for g in sorted({r.group for r in runs}):
        members = [c for c, r in zip(cut, runs) if r.group == g]
        if len(members) < 2:
            raise ValueError(f"group {g!r} has {len(members)} run; the seed-to-seed noise floor "
                             "needs at least 2 runs per group (independent seeds of one setup)")
        calib = [members[0].first + k for k in range(calibration)]
        for c in members:
            idx = [c.first + k for k in range(calibration)]
            if idx[-1] + 1 >= len(c.spectra) or not np.array_equal(c.starts[idx],
                                                                   members[0].starts[calib]):
                raise ValueError(f"group {g!r}: every run needs the same {calibration} "
                                 "calibration windows after burn_in (same steps) and at least "
                                 "one window after them to monitor")
        iu = np.triu_indices(len(members), 1)
        spec = [distance_matrix([c.spectra[w] for c in members])[iu].mean() for w in calib]
        norms = [np.array([c.norms[w] for c in members]) for w in calib]
        norm = [np.abs(v[:, None] - v[None, :])[iu].mean() for v in norms]
        out["spectral"][g], out["parameter_norm"][g] = float(np.mean(spec)), float(np.mean(norm))
    return out


def _changes(c: _Windows, signal: str, calibration: int, rng: np.random.Generator) -> np.ndarray:
    """Consecutive-window distances of one run, NaN before the first post-calibration window."""
    start = c.first + calibration
    out = np.full(len(c.spectra), np.nan)
    if signal == "parameter_norm":
        out[start:] = np.abs(np.diff(c.norms))[start - 1:]
        return out
    order = np.arange(len(c.spectra))
    if signal == "shuffled_windows":
        order[start:] = rng.permutation(order[start:])
    for w in range(start, len(c.spectra)):
        out[w] = wasserstein(c.spectra[order[w]], c.spectra[order[w - 1]])
    return out


# ----- the evaluation ---------------------------------------------------------------------------
def _check_rule(window: Any, stride: Any, burn_in: Any, calibration: Any, factor: Any,
                sustain: Any) -> dict[str, Any]:
    return {"window": check_int(window, "window", minimum=2),
            "stride": None if stride is None else check_int(stride, "stride", minimum=1),
            "burn_in": check_int(burn_in, "burn_in", minimum=0),
            "calibration": check_int(calibration, "calibration", minimum=1),
            "factor": check_positive_float(factor, "factor"),
            "sustain": check_int(sustain, "sustain", minimum=1)}


def _prepare(runs: Any, rule: dict[str, Any], spectrum_kwargs: Any
             ) -> tuple[list[MonitoredRun], list[_Windows], dict[str, dict[str, float]]]:
    runs = list(runs)
    if not runs:
        raise ValueError("runs is empty; the monitor needs runs (MonitoredRun) to watch")
    kwargs = dict(spectrum_kwargs or {})
    cut = [_cut(r, i, rule["window"], rule["stride"], rule["burn_in"], kwargs)
           for i, r in enumerate(runs)]
    return runs, cut, _floors(cut, runs, rule["calibration"])


def _signal(signal: str, runs: list[MonitoredRun], cut: list[_Windows],
            floors: dict[str, float], rule: dict[str, Any], seed: int
            ) -> tuple[list[np.ndarray], list[tuple[int | None, int]]]:
    """Per run: the ratios (change / floor) and (first alarm step, alarm events)."""
    ratios, alarms = [], []
    for i, (r, c) in enumerate(zip(runs, cut)):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,)))
        floor = floors[r.group]
        change = _changes(c, signal, rule["calibration"], rng)
        ratio = change / floor if floor > 0 else np.where(change > 0, np.inf, 0.0)
        ratios.append(ratio)
        alarms.append(_alarms(ratio, c.ends, rule["factor"], rule["sustain"]))
    return ratios, alarms


def alarm_steps(runs: Sequence[MonitoredRun], *, window: int, stride: int | None = None,
                burn_in: int = 0, calibration: int = 3, factor: float = 3.0, sustain: int = 2,
                spectrum_kwargs: dict[str, Any] | None = None) -> dict[str, int | None]:
    """The spectral operating rule (module docstring) on ``runs``: the first alarm step of each.

    Parameters are those of :func:`evaluate_monitor`; onsets are not needed.

    Returns
    -------
    dict run name -> int or None
        The training step of the first alarm (None: no alarm).

    Raises
    ------
    ValueError
        A group with fewer than 2 runs, runs of a group recorded at different steps, too few
        windows after ``burn_in`` for the calibration, or an argument out of its domain.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> def run(name):  # AR(1) weights whose coefficient flips from 0.9 to -0.9 at step 100
    ...     x, a = np.zeros((160, 3)), np.where(np.arange(160) < 100, 0.9, -0.9)
    ...     for t in range(1, 160):
    ...         x[t] = a[t] * x[t - 1] + rng.standard_normal(3)
    ...     return MonitoredRun(x, np.arange(160), name=name)
    >>> alarm_steps([run("a"), run("b")], window=40, stride=10, sustain=1,
    ...             spectrum_kwargs={"delays": 1, "rank": 2})
    {'a': 109, 'b': 109}
    """
    rule = _check_rule(window, stride, burn_in, calibration, factor, sustain)
    runs, cut, floors = _prepare(runs, rule, spectrum_kwargs)
    _, alarms = _signal("spectral", runs, cut, floors["spectral"], rule, 0)
    return {r.name or f"#{i}": a[0] for i, (r, a) in enumerate(zip(runs, alarms))}


def _score(ratio: np.ndarray, ends: np.ndarray, sustain: int, horizon: int | None, name: str
           ) -> float:
    level = _sustained(ratio, sustain)
    if horizon is not None:
        level = level[ends <= horizon]
    if np.isnan(level).all():
        raise ValueError(f"run {name!r} has no monitored window (after calibration, {sustain} "
                         f"windows of sustain) ending by horizon = {horizon}: raise the horizon")
    return float(np.nanmax(level))


def _evaluate(signal: str, runs: list[MonitoredRun], cut: list[_Windows],
              floors: dict[str, float], rule: dict[str, Any], horizon: int | None,
              boot: tuple[np.ndarray, np.ndarray], seed: int) -> SignalEvaluation:
    ratios, alarms = _signal(signal, runs, cut, floors, rule, seed)
    names = [r.name or f"#{i}" for i, r in enumerate(runs)]
    scores = np.array([_score(q, c.ends, rule["sustain"], horizon, n)
                       for q, c, n in zip(ratios, cut, names)])
    pos = np.array([r.onset is not None for r in runs])
    leads = np.array([math.nan if a[0] is None else float(r.onset - a[0])
                      for r, a in zip(runs, alarms) if r.onset is not None])
    events = np.array([a[1] for a, p in zip(alarms, pos) if not p], float)
    steps = np.array([c.ends[-1] - c.ends[c.first + rule["calibration"] - 1]
                      for c, p in zip(cut, pos) if not p], float)
    pi, ni = boot
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # resamples without a detected run
        lead_boot = np.nanmedian(leads[pi], axis=1)
        lead_median = float(np.nanmedian(leads)) if np.isfinite(leads).any() else math.nan
    return SignalEvaluation(
        signal=signal, noise_floors=dict(floors), ratios=tuple(ratios),
        window_ends=tuple(c.ends for c in cut), alarm_steps=tuple(a[0] for a in alarms),
        alarm_events=tuple(a[1] for a in alarms), scores=tuple(float(x) for x in scores),
        auroc=float(_auroc(scores[pos], scores[~pos])),
        auroc_interval=_interval(_auroc(scores[pos][pi], scores[~pos][ni])),
        lead_times=tuple(float(x) for x in leads), lead_time_median=lead_median,
        lead_time_interval=_interval(lead_boot), detected=int(np.isfinite(leads).sum()),
        n_positive=int(pos.sum()),
        false_alarms_per_1000=float(1000 * events.sum() / steps.sum()),
        false_alarm_interval=_interval(1000 * events[ni].sum(1) / steps[ni].sum(1)),
        n_negative=int((~pos).sum()), negative_steps=int(steps.sum()))


def evaluate_monitor(
    runs: Sequence[MonitoredRun],
    *,
    window: int,
    stride: int | None = None,
    burn_in: int = 0,
    calibration: int = 3,
    factor: float = 3.0,
    sustain: int = 2,
    horizon: int | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    spectrum_kwargs: dict[str, Any] | None = None,
) -> MonitorEvaluation:
    """Evaluate the early-warning rule (module docstring) on runs with and without a known onset.

    Parameters
    ----------
    runs : sequence of MonitoredRun
        At least one run with an ``onset`` and one without; at least two runs per ``group``.
    window, stride : int
        Records per window and between window starts (:func:`conjugacy.windowed_spectra`);
        ``stride < window`` overlaps windows, so that a change is seen by several in a row.
    burn_in : int
        Training step before which windows are ignored (a window must start at or after it).
    calibration : int
        Monitored windows that set the noise floor; every onset must come after their end.
    factor : float > 0
        Alarm when consecutive windows differ by more than ``factor`` noise floors ...
    sustain : int >= 1
        ... for ``sustain`` consecutive windows.
    horizon : int, optional
        Last step whose windows the run-level score may use (default: the whole run); the lead
        time and false alarms always use the whole run.
    n_boot : int
        Bootstrap resamples of the runs (positives and negatives resampled separately, the same
        resamples for every signal).
    seed : int
        Seeds the bootstrap and the shuffled-window control.
    spectrum_kwargs : dict, optional
        Passed to :func:`conjugacy.koopman_spectrum` for every window (``delays``, ``rank``, ...).

    Returns
    -------
    MonitorEvaluation
        ``spectral``, ``parameter_norm``, ``shuffled_windows``: :class:`SignalEvaluation` each.

    Raises
    ------
    ValueError
        No positive or no negative run, an onset inside the calibration period (an online
        monitor could not warn of it), a group with fewer than 2 runs, or an argument out of its
        domain.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> def run(onset, g):  # AR(1) weights whose coefficient flips at step 120 for positives
    ...     x, a = np.zeros((200, 3)), np.full(200, 0.9)
    ...     a[120:] = -0.9 if onset else 0.9
    ...     for t in range(1, 200):
    ...         x[t] = a[t] * x[t - 1] + rng.standard_normal(3)
    ...     return MonitoredRun(x, np.arange(200), onset, g)
    >>> runs = [run(150, "p") for _ in range(3)] + [run(None, "n") for _ in range(3)]
    >>> ev = evaluate_monitor(runs, window=40, stride=10, n_boot=200,
    ...                       spectrum_kwargs={"delays": 1, "rank": 2})
    >>> ev.spectral.auroc, ev.spectral.detected
    (1.0, 3)
    """
    rule = _check_rule(window, stride, burn_in, calibration, factor, sustain)
    n_boot = check_int(n_boot, "n_boot", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    if horizon is not None:
        horizon = check_int(horizon, "horizon")
    runs, cut, floors = _prepare(runs, rule, spectrum_kwargs)
    pos = np.array([r.onset is not None for r in runs])
    if pos.all() or not pos.any():
        raise ValueError(f"runs must include runs with an onset and runs without (got "
                         f"{int(pos.sum())} with, {int((~pos).sum())} without)")
    for i, (r, c) in enumerate(zip(runs, cut)):
        calib_end = int(c.ends[c.first + rule["calibration"] - 1])
        if r.onset is not None and r.onset <= calib_end:
            raise ValueError(f"runs[{i}] ({r.name!r}): onset {r.onset} is inside the calibration "
                             f"period (ends at step {calib_end}); lower calibration or burn_in")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1 << 20,)))
    boot = (rng.integers(0, pos.sum(), (n_boot, pos.sum())),
            rng.integers(0, (~pos).sum(), (n_boot, (~pos).sum())))
    results = {s: _evaluate(s, runs, cut, floors["parameter_norm" if s == "parameter_norm"
                                                 else "spectral"], rule, horizon, boot, seed)
               for s in SIGNALS}
    settings = {**rule, "horizon": horizon, "n_boot": n_boot, "seed": seed,
                "spectrum_kwargs": dict(spectrum_kwargs or {})}
    return MonitorEvaluation(**results, settings=settings,
                             names=tuple(r.name or f"#{i}" for i, r in enumerate(runs)),
                             onsets=tuple(r.onset for r in runs))


# ----- runs of a store: onsets and alarms (`conjugacy analyze --window`) ----------------------------
#: Test accuracy at which a run's recorded ``test_accuracy`` series marks its onset.
ONSET_ACCURACY = 0.9


def run_onset(reader: Any, run: str, threshold: float = ONSET_ACCURACY) -> int | None:
    """The onset step of a stored run: its metadata ``"onset"`` (a step), else the first recorded
    step whose scalar ``test_accuracy`` is at least ``threshold``; None if it carries neither or
    never reaches it.

    Raises
    ------
    ValueError
        A metadata ``"onset"`` that is not an integer step.
    """
    meta = reader.run_info(run).get("metadata") or {}
    if meta.get("onset") is not None:
        return check_int(meta["onset"], f"run {run!r}: metadata 'onset'")
    if "test_accuracy" not in (reader.run_info(run).get("scalars") or []):
        return None
    acc = np.asarray(reader.scalars(run, "test_accuracy"), float)
    hit = np.flatnonzero(acc >= threshold)
    return int(np.asarray(reader.steps(run))[hit[0]]) if hit.size else None


def window_alarms(reader: Any, runs_by_condition: dict[str, list[str]], params: Any,
                  window: int, spectrum_kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The spectral rule of :func:`alarm_steps` on every run of a store (windows of ``window``
    records every ``window // 2``; the runs of a condition are the seeds of its noise floor),
    with each run's onset (:func:`run_onset`) and lead time ``onset - alarm``. None when no run
    carries an onset or an accuracy series; ``{"error": ...}`` when the rule cannot run (e.g.
    too few windows)."""
    names = [r for runs in runs_by_condition.values() for r in runs]
    onsets = {r: run_onset(reader, r) for r in names}
    carries = [r for r in names if "onset" in (reader.run_info(r).get("metadata") or {})
               or "test_accuracy" in (reader.run_info(r).get("scalars") or [])]
    if not carries:
        return None
    monitored = [MonitoredRun(reader.read(params=params, runs=[r])[0], reader.steps(r),
                              onsets[r], c, r) for c, runs in runs_by_condition.items()
                 for r in runs]
    rule = {"window": window, "stride": max(1, window // 2), "calibration": 3, "factor": 3.0,
            "sustain": 2}
    try:
        alarms = alarm_steps(monitored, **rule, spectrum_kwargs=spectrum_kwargs)
    except ValueError as exc:
        return {"rule": rule, "error": str(exc)}
    per_run = {r: {"alarm_step": alarms[r], "onset": onsets[r],
                   "lead_time": None if alarms[r] is None or onsets[r] is None
                   else onsets[r] - alarms[r]} for r in names}
    return {"rule": rule, "onset_rule": f"metadata 'onset', else first step with test_accuracy "
                                        f">= {ONSET_ACCURACY}", "runs": per_run}
