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

The rule and its controls are given ``factor`` and ``sustain`` by :func:`calibrate_rule` on
held-out runs: for each signal, the lowest factor meeting a target false-alarm rate on the
held-out runs without onset that also keeps at most a set share of those runs from alarming at
all, and the sustain warning most held-out positives, so that no number
reported on the other runs was used to choose the rule.

:func:`evaluate_monitor` applies the rule to runs with a known onset (e.g. the step at which test
accuracy first crosses 0.9) and runs without, and reports, as in the early-warning literature
(SPEC section 9): run-level AUROC (score: the largest sustained level, the minimum of ``sustain``
consecutive signal values, within ``horizon``) with a bootstrap interval over runs; lead time
``onset - alarm step`` (median and bootstrap interval, over the positive runs that alarm) and the
detection count; false alarms per 1,000 monitored steps of the runs without onset (with a
bootstrap interval). The same numbers are given for two negative controls, each the same rule
on another signal against that signal's own seed-to-seed floor (and, calibrated, its own
factor): ``"parameter_norm"`` (the absolute change of the window's mean parameter norm over the
seed-to-seed difference of that norm: does the spectrum add anything to the norm?) and
``"shuffled_windows"`` (each run's spectral ratios after calibration permuted in
non-overlapping blocks of ``ceil(window / stride)`` consecutive values, :func:`block_shuffle`:
every value is still the distance between two windows that overlap as in the true order, and
the ratios' distribution is the spectral one; only their timing is random. Does the timing
matter, or only that a run holds distinct regimes?).

Source: the evaluation protocol of recent grokking and divergence monitors (SPEC section 9:
run-level AUROC on runs, a sustained-threshold operating rule, lead time with the false-alarm
rate, parameter-norm and shuffled-window controls, e.g. arXiv 2605.08237); the noise floor is the
package's own seed-to-seed floor. Measured on grokking: ``docs/results_early_warning.md``.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from ._checks import check_int, check_positive_float
from .compare import distance_matrix, wasserstein

__all__ = [
    "SIGNALS",
    "CalibratedRule",
    "MonitorEvaluation",
    "MonitoredRun",
    "SignalEvaluation",
    "alarm_steps",
    "block_shuffle",
    "calibrate_rule",
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
    factor, sustain : float, int
        The operating rule applied to this signal.
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
    detected, detected_early, n_positive : int
        Positive runs that alarm at all, those whose first alarm comes before the onset (a
        warning), and all positive runs; ``detected``, ``detected_early`` None where the signal
        is undecided (``note``).
    false_alarms_per_1000, false_alarm_interval : float, (float, float)
        Alarm events in runs without onset per 1,000 monitored steps (from the first monitored
        window's end to the last window's end). A signal that stays above the factor counts
        once: read it beside ``negatives_alarmed``. NaN where the signal is undecided.
    negatives_alarmed, n_negative, negative_steps : int
        Runs without onset that alarm at least once (None where undecided); all of them; their
        monitored steps.
    note : str
        Why the signal is undecided (AUROC NaN, no alarms), e.g. a parameter-norm control whose
        seed-to-seed floor is 0 because every point has unit norm; empty otherwise.
    monitored_steps : tuple of int
        Per run: its monitored steps (those counted in ``negative_steps`` for runs without
        onset), so that rates can be pooled over evaluations (:func:`_false_alarm_rate`).

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
    factor: float
    sustain: int
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
    detected: int | None
    detected_early: int | None
    n_positive: int
    false_alarms_per_1000: float
    false_alarm_interval: tuple[float, float]
    negatives_alarmed: int | None
    n_negative: int
    negative_steps: int
    note: str = ""
    monitored_steps: tuple[int, ...] = ()

    def summary(self) -> dict[str, Any]:
        """The headline numbers (JSON-ready: intervals as lists)."""
        out = {k: getattr(self, k) for k in _HEADLINE}
        return {k: list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, dict) else v
                for k, v in out.items()}


#: The fields of :meth:`SignalEvaluation.summary`, in order.
_HEADLINE = ("signal", "factor", "sustain", "auroc", "auroc_interval", "lead_time_median",
             "lead_time_interval", "detected", "detected_early", "n_positive",
             "false_alarms_per_1000", "false_alarm_interval", "negatives_alarmed", "n_negative",
             "noise_floors", "note")


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


def _events(on: np.ndarray) -> int:
    """Alarm events: rising edges of a boolean series (NaN levels compare False)."""
    return int((on & ~np.concatenate([[False], on[:-1]])).sum())


def _alarms(ratios: np.ndarray, ends: np.ndarray, factor: float, sustain: int
            ) -> tuple[int | None, int]:
    """First alarm step and number of alarm events (rising edges of ``sustained > factor``)."""
    with np.errstate(invalid="ignore"):
        on = _sustained(ratios, sustain) > factor
    if not on.any():
        return None, 0
    return int(ends[int(np.argmax(on))]), _events(on)


def _auroc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUROC ``P(score_pos > score_neg) + P(tie) / 2`` along the last axis (the Mann-Whitney U
    statistic over ``n_pos * n_neg``); leading axes are bootstrap replicates. Pairs with a NaN
    score (a run not scored) are left out; NaN where no pair is left."""
    diff = pos[..., :, None] - neg[..., None, :]
    pairs = (~np.isnan(diff)).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((diff > 0).sum(axis=(-2, -1)) + 0.5 * (diff == 0).sum(axis=(-2, -1))) / pairs


def _false_alarm_rate(events: np.ndarray, steps: np.ndarray, resamples: np.ndarray
                     ) -> tuple[float, tuple[float, float]]:
    """Alarm events per 1,000 monitored steps over runs without onset, and its 95 % percentile
    bootstrap interval over those runs.

    ``events`` and ``steps`` (n_negative,) hold each run's alarm events and monitored steps;
    ``resamples`` (n_boot, n_negative) indexes the resampled runs. The rate is pooled (events
    over steps), not a mean of per-run rates.

    >>> _false_alarm_rate(np.array([0, 2]), np.array([1000, 1000]), np.array([[0, 0], [1, 1]]))
    (1.0, (0.0, 2.0))
    """
    events, steps = np.asarray(events, float), np.asarray(steps, float)
    rate = float(1000 * events.sum() / steps.sum())
    return rate, _interval(1000 * events[resamples].sum(1) / steps[resamples].sum(1))


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
        onset = check_int(run.onset, f"runs[{i}].onset")
        if not steps[0] <= onset <= steps[-1]:
            raise ValueError(f"runs[{i}] ({run.name!r}): onset {onset} lies outside the run "
                             f"(steps {int(steps[0])} to {int(steps[-1])}); give the step of "
                             "the event within the run, or None for a run without it")
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


def _changes(c: _Windows, signal: str, calibration: int) -> np.ndarray:
    """Consecutive-window distances of one run (``W1`` of the spectra, or the absolute change
    of the mean norm), NaN before the first post-calibration window."""
    start = c.first + calibration
    out = np.full(len(c.spectra), np.nan)
    if signal == "parameter_norm":
        out[start:] = np.abs(np.diff(c.norms))[start - 1:]
        return out
    for w in range(start, len(c.spectra)):
        out[w] = wasserstein(c.spectra[w], c.spectra[w - 1])
    return out


def block_shuffle(values: np.ndarray, start: int, block: int, rng: np.random.Generator
                  ) -> np.ndarray:
    """``values[start:]`` permuted in non-overlapping blocks of ``block`` consecutive entries
    (the last block may be shorter); ``values[:start]`` unchanged.

    The shuffled-window control permutes a run's consecutive-window changes this way, with
    ``block = ceil(window / stride)``: each value is still the distance between two windows that
    overlap as much as in the true order, and changes within one block (windows sharing records)
    keep their order and correlation; only their timing is random.

    Parameters
    ----------
    values : array (n,)
    start : int
        First entry that is permuted.
    block : int >= 1
    rng : numpy.random.Generator

    Returns
    -------
    array (n,)

    Raises
    ------
    ValueError
        ``start`` below 0 or ``block`` below 1 (the message names the argument).

    Examples
    --------
    Entries 2-8 in blocks [2, 3, 4], [5, 6, 7], [8], in a random order:

    >>> block_shuffle(np.arange(9.0), 2, 3, np.random.default_rng(3)).tolist()
    [0.0, 1.0, 8.0, 5.0, 6.0, 7.0, 2.0, 3.0, 4.0]
    """
    start = check_int(start, "start", minimum=0)
    block = check_int(block, "block", minimum=1)
    tail = values[start:]
    blocks = [tail[k:k + block] for k in range(0, tail.size, block)]
    out = np.array(values, copy=True)
    if blocks:
        out[start:] = np.concatenate([blocks[j] for j in rng.permutation(len(blocks))])
    return out


def _ratios(runs: list[MonitoredRun], cut: list[_Windows], floors: dict[str, dict[str, float]],
            rule: dict[str, Any], seed: int, signals: Sequence[str] = SIGNALS
            ) -> dict[str, list[np.ndarray]]:
    """Per signal and run: consecutive-window change / the group's noise floor of that signal;
    the shuffled control: the spectral ratios permuted by :func:`block_shuffle` in blocks of
    ``ceil(window / stride)`` (seeded per run by ``seed``)."""
    block = -(-rule["window"] // (rule["stride"] or rule["window"]))
    kinds = {"parameter_norm" if s == "parameter_norm" else "spectral" for s in signals}
    out: dict[str, list[np.ndarray]] = {s: [] for s in signals}
    for i, (r, c) in enumerate(zip(runs, cut)):
        base = {}
        for kind in [k for k in ("spectral", "parameter_norm") if k in kinds]:
            floor = floors[kind][r.group]
            if not floor > 0 and kind == "parameter_norm":  # e.g. unit-norm points: undecided
                base[kind] = np.full(len(c.spectra), np.nan)
                continue
            if not floor > 0:
                raise ValueError(f"group {r.group!r}: the seed-to-seed noise floor of the {kind} "
                                 f"signal is {floor:g} (its runs are identical over the "
                                 "calibration windows: duplicated runs?); the floor needs "
                                 "independent seeds: remove the duplicates")
            base[kind] = _changes(c, kind, rule["calibration"]) / floor
        for s in signals:
            if s == "shuffled_windows":
                rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,)))
                out[s].append(block_shuffle(base["spectral"], c.first + rule["calibration"],
                                            block, rng))
            else:
                out[s].append(base[s])
    return out


# ----- the evaluation ---------------------------------------------------------------------------
def _check_rule(window: Any, stride: Any, burn_in: Any, calibration: Any) -> dict[str, Any]:
    return {"window": check_int(window, "window", minimum=2),
            "stride": None if stride is None else check_int(stride, "stride", minimum=1),
            "burn_in": check_int(burn_in, "burn_in", minimum=0),
            "calibration": check_int(calibration, "calibration", minimum=1)}


def _per_signal(value: Any, name: str, check: Callable[[Any, str], Any],
                undecided: bool = False) -> dict[str, Any]:
    """``factor`` or ``sustain``: one value for every signal, or a mapping signal -> value (e.g.
    :attr:`CalibratedRule.factor`; with ``undecided``, NaN there marks a signal undecided)."""
    if isinstance(value, Mapping):
        missing = [s for s in SIGNALS if s not in value]
        unknown = sorted(str(k) for k in value if k not in SIGNALS)
        if missing or unknown:
            raise ValueError(f"{name} as a mapping needs one value per signal "
                             f"({', '.join(SIGNALS)}); missing {missing}, unknown {unknown}")
        return {s: math.nan if undecided and isinstance(value[s], float) and math.isnan(value[s])
                else check(value[s], f"{name}[{s!r}]") for s in SIGNALS}
    one = check(value, name)
    return {s: one for s in SIGNALS}


def _prepare(runs: Any, rule: dict[str, Any], spectrum_kwargs: Any
             ) -> tuple[list[MonitoredRun], list[_Windows], dict[str, dict[str, float]]]:
    runs = list(runs)
    if not runs:
        raise ValueError("runs is empty; the monitor needs runs (MonitoredRun) to watch")
    kwargs = dict(spectrum_kwargs or {})
    cut = [_cut(r, i, rule["window"], rule["stride"], rule["burn_in"], kwargs)
           for i, r in enumerate(runs)]
    return runs, cut, _floors(cut, runs, rule["calibration"])


def _check_onsets(runs: list[MonitoredRun], cut: list[_Windows], calibration: int) -> np.ndarray:
    """Which runs are positives; refuses all-positive or all-negative runs and onsets inside
    the calibration period."""
    pos = np.array([r.onset is not None for r in runs])
    if pos.all() or not pos.any():
        raise ValueError(f"runs must include runs with an onset and runs without (got "
                         f"{int(pos.sum())} with, {int((~pos).sum())} without)")
    for i, (r, c) in enumerate(zip(runs, cut)):
        calib_end = int(c.ends[c.first + calibration - 1])
        if r.onset is not None and r.onset <= calib_end:
            raise ValueError(f"runs[{i}] ({r.name!r}): onset {r.onset} is inside the calibration "
                             f"period (ends at step {calib_end}); lower calibration or burn_in")
    return pos


def _monitored_steps(c: _Windows, calibration: int) -> int:
    """Steps a run is monitored: from the last calibration window's end to the last window's."""
    return int(c.ends[-1] - c.ends[c.first + calibration - 1])


def alarm_steps(runs: Sequence[MonitoredRun], *, window: int, stride: int | None = None,
                burn_in: int = 0, calibration: int = 3, factor: float = 3.0, sustain: int = 2,
                spectrum_kwargs: dict[str, Any] | None = None) -> dict[str, int | None]:
    """The spectral operating rule (module docstring) on ``runs``: the first alarm step of each.

    Parameters are those of :func:`evaluate_monitor` (``factor`` and ``sustain`` one number
    each); onsets are not needed.

    Returns
    -------
    dict run name -> int or None
        The training step of the first alarm (None: no alarm).

    Raises
    ------
    ValueError
        A group with fewer than 2 runs or a zero noise floor (duplicated runs), runs of a group
        recorded at different steps, too few windows after ``burn_in`` for the calibration, an
        onset outside its run, two runs of one name, or an argument out of its domain.

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
    rule = _check_rule(window, stride, burn_in, calibration)
    factor = check_positive_float(factor, "factor")
    sustain = check_int(sustain, "sustain", minimum=1)
    runs = list(runs)
    names = [r.name or f"#{i}" for i, r in enumerate(runs)]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"runs: the names {twice} are given to more than one run; the alarms "
                         "are returned by name: give every run its own name")
    runs, cut, floors = _prepare(runs, rule, spectrum_kwargs)
    ratios = _ratios(runs, cut, floors, rule, 0, ("spectral",))["spectral"]
    return {r.name or f"#{i}": _alarms(q, c.ends, factor, sustain)[0]
            for i, (r, q, c) in enumerate(zip(runs, ratios, cut))}


def _score(ratio: np.ndarray, ends: np.ndarray, sustain: int, horizon: int | None, name: str
           ) -> float:
    level = _sustained(ratio, sustain)
    if horizon is not None:
        level = level[ends <= horizon]
    if np.isnan(level).all():
        if horizon is None:
            raise ValueError(f"run {name!r} has fewer than {sustain} monitored windows after "
                             "calibration (sustain): lower sustain, calibration or burn_in, "
                             "or give a longer run")
        return math.nan  # nothing seen by its horizon: not scored (the note names it)
    return float(np.nanmax(level))


def _evaluate(signal: str, runs: list[MonitoredRun], cut: list[_Windows],
              ratios: list[np.ndarray], floors: dict[str, float], rule: dict[str, Any],
              horizon: list[int | None], boot: tuple[np.ndarray, np.ndarray]
              ) -> SignalEvaluation:
    factor, sustain = rule["factor"][signal], rule["sustain"][signal]
    pi, ni = boot
    alarms = [_alarms(q, c.ends, factor, sustain) for q, c in zip(ratios, cut)]
    names = [r.name or f"#{i}" for i, r in enumerate(runs)]
    flat = sorted(g for g, f in floors.items() if not f > 0)  # parameter norm only
    note = (f"undecided: the seed-to-seed floor of this signal is 0 in group(s) {flat} (their "
            "runs do not differ in it), so it is not scored there") if flat else ""
    if math.isnan(factor):  # not calibrated (CalibratedRule.notes): nothing is measured
        flat = sorted({r.group for r in runs})
        note = "undecided: no factor (NaN: calibrate_rule could not calibrate it; see its notes)"
    scores = np.array([math.nan if r.group in flat else _score(q, c.ends, sustain, h, n)
                       for q, c, n, r, h in zip(ratios, cut, names, runs, horizon)])
    blind = [n for n, r, h, x in zip(names, runs, horizon, scores)
             if h is not None and r.group not in flat and math.isnan(x)]
    if blind:
        note = "; ".join(filter(None, [note, (
            f"runs {blind} have no monitored window (after calibration, {sustain} windows of "
            "sustain) ending by their horizon: not scored (NaN), the AUROC uses the other "
            "runs; raise their horizon or lower burn_in, calibration or sustain")]))
    pos = np.array([r.onset is not None for r in runs])
    auroc = _auroc(scores[pos], scores[~pos])
    boot_auroc = _auroc(scores[pos][pi], scores[~pos][ni])
    if flat:
        auroc, boot_auroc = math.nan, np.array([math.nan])
    leads = np.array([math.nan if a[0] is None else float(r.onset - a[0])
                      for r, a in zip(runs, alarms) if r.onset is not None])
    events = np.array([a[1] for a, p in zip(alarms, pos) if not p], float)
    steps = np.array([_monitored_steps(c, rule["calibration"]) for c, p in zip(cut, pos)
                      if not p], float)
    fa = _false_alarm_rate(events, steps, ni)
    if flat:  # no alarm can be raised where the floor is 0: nothing was measured
        fa = (math.nan, (math.nan, math.nan))
    undecided = (lambda n: None) if flat else int
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # resamples without a detected run
        lead_boot = np.nanmedian(leads[pi], axis=1)
        lead_median = float(np.nanmedian(leads)) if np.isfinite(leads).any() else math.nan
    return SignalEvaluation(
        signal=signal, factor=factor, sustain=sustain, noise_floors=dict(floors),
        ratios=tuple(ratios), window_ends=tuple(c.ends for c in cut),
        alarm_steps=tuple(a[0] for a in alarms), alarm_events=tuple(a[1] for a in alarms),
        scores=tuple(float(x) for x in scores),
        auroc=float(auroc), auroc_interval=_interval(boot_auroc),
        lead_times=tuple(float(x) for x in leads), lead_time_median=lead_median,
        lead_time_interval=_interval(lead_boot),
        detected=undecided(np.isfinite(leads).sum()),
        detected_early=undecided((leads > 0).sum()), n_positive=int(pos.sum()),
        false_alarms_per_1000=fa[0], false_alarm_interval=fa[1],
        negatives_alarmed=undecided((events > 0).sum()), n_negative=int((~pos).sum()),
        negative_steps=int(steps.sum()), note=note,
        monitored_steps=tuple(_monitored_steps(c, rule["calibration"]) for c in cut))


def _is_step(value: Any) -> bool:
    """An integral training step: an int, or a real number with an integral value (160.0)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value) and float(value).is_integer())


def _step(value: Any, name: str) -> int:
    if not _is_step(value):
        raise TypeError(f"{name} must be an integer step (160 or 160.0), got {value!r}")
    return int(value)


def _check_horizon(horizon: Any, n_runs: int) -> list[int | None]:
    """One horizon per run (None: the whole run) from one step, or a sequence or 1-d array of
    one per run; integral floats (160.0) are steps, as onsets are."""
    if isinstance(horizon, np.ndarray):
        horizon = horizon.tolist()  # a 0-d array gives its item
    if horizon is None or not isinstance(horizon, Sequence) or isinstance(horizon, str):
        one = None if horizon is None else _step(horizon, "horizon")
        return [one] * n_runs
    if len(horizon) != n_runs:
        raise ValueError(f"horizon as a sequence needs one step (or None) per run: got "
                         f"{len(horizon)} for {n_runs} runs")
    return [None if h is None else _step(h, f"horizon[{i}]") for i, h in enumerate(horizon)]


def evaluate_monitor(
    runs: Sequence[MonitoredRun],
    *,
    window: int,
    stride: int | None = None,
    burn_in: int = 0,
    calibration: int = 3,
    factor: float | Mapping[str, float] = 3.0,
    sustain: int | Mapping[str, int] = 2,
    horizon: int | Sequence[int | None] | np.ndarray | None = None,
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
    factor : float > 0, or mapping signal -> float
        Alarm when consecutive windows differ by more than ``factor`` noise floors ... (NaN in
        a mapping: that signal undecided, as :func:`calibrate_rule` leaves a control it cannot
        calibrate)
    sustain : int >= 1, or mapping signal -> int
        ... for ``sustain`` consecutive windows. A mapping gives each signal of :data:`SIGNALS`
        its own (e.g. :attr:`CalibratedRule.factor` and ``.sustain`` of
        :func:`calibrate_rule` on held-out runs).
    horizon : int, or sequence or 1-d array of (int or None) one per run, optional
        Last step whose windows the run-level score may use (default: the whole run): one for
        all runs, or one per run (e.g. ``onset - 1`` for each run with an onset and a matched
        step for each run without, so that the AUROC scores only what was seen before the
        event: early warning rather than change anywhere). Integral floats (160.0) are steps.
        A run with no monitored window ending by its horizon is not scored (score NaN, named
        in the signal's ``note``); the AUROC uses the other runs. The lead time and false
        alarms always use the whole run.
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
        monitor could not warn of it) or outside its run, a group with fewer than 2 runs or a
        zero spectral noise floor (duplicated runs; a zero parameter-norm floor
        only leaves that control undecided), or an argument out of its domain.

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
    rule = {**_check_rule(window, stride, burn_in, calibration),
            "factor": _per_signal(factor, "factor", check_positive_float, undecided=True),
            "sustain": _per_signal(sustain, "sustain", partial(check_int, minimum=1))}
    n_boot = check_int(n_boot, "n_boot", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    runs, cut, floors = _prepare(runs, rule, spectrum_kwargs)
    horizons = _check_horizon(horizon, len(runs))
    pos = _check_onsets(runs, cut, rule["calibration"])
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1 << 20,)))
    boot = (rng.integers(0, pos.sum(), (n_boot, pos.sum())),
            rng.integers(0, (~pos).sum(), (n_boot, (~pos).sum())))
    ratios = _ratios(runs, cut, floors, rule, seed)
    results = {s: _evaluate(s, runs, cut, ratios[s], floors["parameter_norm" if s ==
                                                            "parameter_norm" else "spectral"],
                            rule, horizons, boot) for s in SIGNALS}
    settings = {**rule, "horizon": horizons[0] if horizon is not None and np.ndim(horizon) == 0
                else horizons, "n_boot": n_boot, "seed": seed,
                "spectrum_kwargs": dict(spectrum_kwargs or {})}
    return MonitorEvaluation(**results, settings=settings,
                             names=tuple(r.name or f"#{i}" for i, r in enumerate(runs)),
                             onsets=tuple(r.onset for r in runs))


# ----- choosing the operating rule on held-out runs ----------------------------------------------
@dataclass(frozen=True)
class CalibratedRule:
    """The operating rule of each signal, chosen on held-out runs by :func:`calibrate_rule`.

    Attributes
    ----------
    factor : dict signal -> float
    sustain : dict signal -> int
        Pass both to :func:`evaluate_monitor` on other runs.
    target_false_alarms : float
        The false-alarm rate (alarm events per 1,000 monitored steps of runs without onset) the
        factor was chosen for.
    candidates : dict signal -> list of dict
        Per sustain tried: ``sustain``, ``factor`` (the lowest meeting both bounds),
        ``false_alarms_per_1000`` and ``negatives_alarmed`` (held-out runs without onset that
        alarm at all) there, ``n_negative``, ``warned`` (positive runs whose first alarm comes
        before their onset) and ``n_positive``.
    names : tuple of str
        The held-out runs it was chosen on.
    max_negatives_alarmed : float
        The largest share of held-out runs without onset allowed to alarm at all.
    notes : dict signal -> str
        Why a signal is undecided (its factor NaN), e.g. a parameter-norm control whose
        seed-to-seed floor is 0; empty when every signal is calibrated.

    Examples
    --------
    >>> rule = CalibratedRule({s: 2.5 for s in SIGNALS}, {s: 2 for s in SIGNALS}, 0.1, {}, ())
    >>> rule.summary()["spectral"]
    {'factor': 2.5, 'sustain': 2}
    """

    factor: dict[str, float]
    sustain: dict[str, int]
    target_false_alarms: float
    candidates: dict[str, list[dict[str, Any]]]
    names: tuple[str, ...]
    max_negatives_alarmed: float = 0.25
    notes: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Per signal: the chosen factor and sustain (JSON-ready: an undecided signal's factor
        is None, with its ``note``)."""
        return {s: {"factor": self.factor[s], "sustain": self.sustain[s]} if s not in self.notes
                else {"factor": None, "sustain": self.sustain[s], "note": self.notes[s]}
                for s in self.factor}


def _lowest_factor(levels: list[np.ndarray], steps: float, target: float,
                   max_share: float = 1.0) -> tuple[float, float] | None:
    """The lowest sustained level ``f`` of the negative runs such that alarms at ``> f`` (and at
    ``>`` every higher level) come at most ``target`` times per 1,000 ``steps`` and in at most
    ``max_share`` of the runs (``levels``: one per run); with the rate at ``f``. None if no
    window is monitored."""
    values = np.unique(np.concatenate([v[np.isfinite(v) & (v > 0)] for v in levels]))
    best = None
    for f in values[::-1]:
        with np.errstate(invalid="ignore"):
            events = [_events(v > f) for v in levels]
        rate = 1000 * sum(events) / steps
        if rate > target or sum(e > 0 for e in events) > max_share * len(levels):
            break
        best = (float(f), float(rate))
    return best


def calibrate_rule(
    runs: Sequence[MonitoredRun],
    *,
    window: int,
    stride: int | None = None,
    burn_in: int = 0,
    calibration: int = 3,
    target_false_alarms: float = 0.1,
    max_negatives_alarmed: float = 0.25,
    sustains: Sequence[int] = (1, 2, 3),
    seed: int = 0,
    spectrum_kwargs: dict[str, Any] | None = None,
) -> CalibratedRule:
    """Choose each signal's operating rule (``factor``, ``sustain``) on held-out runs, so that
    the runs it is then evaluated on (:func:`evaluate_monitor`) play no part in choosing it.

    For every ``sustain`` of ``sustains``, the factor is the lowest at which the runs without
    onset raise at most ``target_false_alarms`` alarm events per 1,000 monitored steps **and**
    at most a share ``max_negatives_alarmed`` of them alarm at all (at it and at every higher
    factor: a signal that stays above the factor is one event however long, so the rate alone
    would accept a rule under which every run without onset is in alarm); of these, the
    sustain under which most runs with an onset alarm before it is kept (ties: the shorter
    sustain). Each signal (:data:`SIGNALS`) is calibrated this way against its own noise
    floor, so a control whose ratios are smaller (e.g. the parameter norm) gets a lower factor
    rather than never alarming.

    Parameters
    ----------
    runs : sequence of MonitoredRun
        Held-out runs, at least one with an onset and one without, two or more per group.
    window, stride, burn_in, calibration, seed, spectrum_kwargs
        As in :func:`evaluate_monitor` (use the same values there).
    target_false_alarms : float >= 0
        Alarm events per 1,000 monitored steps of the runs without onset.
    max_negatives_alarmed : float in [0, 1]
        Share of the held-out runs without onset that may alarm at all (default a quarter).
    sustains : sequence of int >= 1
        The sustains tried.

    Returns
    -------
    CalibratedRule
        A signal it cannot calibrate (the parameter-norm control when its seed-to-seed floor is
        0 in some group and no factor can be chosen) is undecided: factor NaN, the shortest
        sustain, no candidates and the reason in ``notes``; :func:`evaluate_monitor` reports
        it undecided.

    Raises
    ------
    ValueError
        As :func:`evaluate_monitor`; ``sustains`` empty or longer than every run's monitored
        windows.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> def ar1(coef):  # 3 AR(1) weights, one coefficient per step
    ...     x = np.zeros((coef.size, 3))
    ...     for t in range(1, coef.size):
    ...         x[t] = coef[t] * x[t - 1] + rng.standard_normal(3)
    ...     return x
    >>> flip = np.where(np.arange(200) < 120, 0.9, -0.9)  # positives: the sign flips at 120
    >>> held_out = ([MonitoredRun(ar1(flip), np.arange(200), 150, "p") for _ in range(3)]
    ...             + [MonitoredRun(ar1(np.full(200, 0.9)), np.arange(200), None, "n")
    ...                for _ in range(3)])
    >>> rule = calibrate_rule(held_out, window=40, stride=10, target_false_alarms=0.0,
    ...                       spectrum_kwargs={"delays": 1, "rank": 2})
    >>> rule.sustain["spectral"], rule.candidates["spectral"][0]["warned"]
    (1, 3)
    """
    rule = _check_rule(window, stride, burn_in, calibration)
    target = check_positive_float(target_false_alarms, "target_false_alarms", allow_zero=True)
    share = check_positive_float(max_negatives_alarmed, "max_negatives_alarmed", allow_zero=True)
    if share > 1:
        raise ValueError(f"max_negatives_alarmed is a share of runs, at most 1; got {share:g}")
    sustains = [check_int(s, f"sustains[{i}]", minimum=1) for i, s in enumerate(sustains)]
    if not sustains:
        raise ValueError("sustains is empty; give the sustains to try, e.g. (1, 2, 3)")
    runs, cut, floors = _prepare(runs, rule, spectrum_kwargs)
    pos = _check_onsets(runs, cut, rule["calibration"])
    steps = sum(_monitored_steps(c, rule["calibration"]) for c, p in zip(cut, pos) if not p)
    ratios = _ratios(runs, cut, floors, rule, check_int(seed, "seed", minimum=0))
    factor, sustain, candidates, notes = {}, {}, {}, {}
    for s in SIGNALS:
        tried = []
        for k in sustains:
            levels = [_sustained(q, k) for q, p in zip(ratios[s], pos) if not p]
            found = _lowest_factor(levels, steps, target, share)
            if found is None:
                continue
            with np.errstate(invalid="ignore"):
                alarmed = sum(bool((v > found[0]).any()) for v in levels)
            first = [_alarms(q, c.ends, found[0], k)[0] for q, c, p in zip(ratios[s], cut, pos)
                     if p]
            warned = sum(a is not None and a < r.onset
                         for a, r in zip(first, [r for r, p in zip(runs, pos) if p]))
            tried.append({"sustain": k, "factor": found[0], "false_alarms_per_1000": found[1],
                          "negatives_alarmed": int(alarmed), "n_negative": int((~pos).sum()),
                          "warned": int(warned), "n_positive": int(pos.sum())})
        flat = sorted(g for g, f in floors["parameter_norm"].items() if not f > 0)
        if not tried and s == "parameter_norm" and flat:  # undecided, like evaluate_monitor
            notes[s] = (f"undecided: the parameter-norm control cannot be calibrated: its "
                        f"seed-to-seed floor is 0 in group(s) {flat} (their runs do not differ "
                        "in the mean weight norm, e.g. unit-norm points)")
            factor[s], sustain[s], candidates[s] = math.nan, min(sustains), []
            continue
        if not tried:
            raise ValueError(f"no run is monitored for {min(sustains)} windows after calibration"
                             ": give shorter sustains or longer runs")
        best = max(tried, key=lambda t: (t["warned"], -t["sustain"]))
        factor[s], sustain[s], candidates[s] = best["factor"], best["sustain"], tried
    return CalibratedRule(factor, sustain, target, candidates,
                          tuple(r.name or f"#{i}" for i, r in enumerate(runs)), share, notes)


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
        A metadata ``"onset"`` that is not an integer step (``160.0`` is step 160; ``160.5``,
        ``"160"`` or ``True`` are refused).

    Examples
    --------
    >>> class Reader:  # the two calls run_onset makes of a TrajectoryStore
    ...     def run_info(self, run):
    ...         return {"metadata": {"onset": 160.0}, "scalars": []}
    >>> run_onset(Reader(), "a")
    160
    """
    meta = reader.run_info(run).get("metadata") or {}
    if meta.get("onset") is not None:
        onset = meta["onset"]
        if _is_step(onset):
            return int(onset)  # 160 or 160.0 (a step stored through JSON or a float column)
        raise ValueError(f"run {run!r}: metadata 'onset' must be a training step (an integer), "
                         f"got {onset!r}; store the step of the event, e.g. 160")
    if "test_accuracy" not in (reader.run_info(run).get("scalars") or []):
        return None
    acc = np.asarray(reader.scalars(run, "test_accuracy"), float)
    hit = np.flatnonzero(acc >= threshold)
    return int(np.asarray(reader.steps(run))[hit[0]]) if hit.size else None


def window_alarms(reader: Any, runs_by_condition: dict[str, list[str]], params: Any,
                  window: int, spectrum_kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The spectral rule of :func:`alarm_steps` on every run of a store (windows of ``window``
    records every ``window // 2``; the runs of a condition are the seeds of its noise floor),
    with each run's onset (:func:`run_onset`), lead time ``onset - alarm`` and condition (the
    report draws them on the loss curves).

    Each condition is monitored on its own (its floor uses only its runs): a condition the rule
    cannot run on (e.g. one seed, too few windows) is left out and an onset outside its run is
    dropped, each with a line in ``notes``; the other runs keep their alarms.

    Returns
    -------
    dict or None
        ``{"rule", "onset_rule", "runs": {run: {"alarm_step", "onset", "lead_time",
        "condition"}}, "notes"}``; None when no run carries an onset or an accuracy series;
        ``{"rule", "error", "notes"}`` when no condition can be monitored.
    """
    names = [r for runs in runs_by_condition.values() for r in runs]
    onsets = {r: run_onset(reader, r) for r in names}
    carries = [r for r in names if "onset" in (reader.run_info(r).get("metadata") or {})
               or "test_accuracy" in (reader.run_info(r).get("scalars") or [])]
    if not carries:
        return None
    rule = {"window": window, "stride": max(1, window // 2), "calibration": 3, "factor": 3.0,
            "sustain": 2}
    notes: list[str] = []
    per_run: dict[str, dict[str, Any]] = {}
    for c, runs in runs_by_condition.items():
        monitored = []
        for r in runs:
            steps = np.asarray(reader.steps(r))
            if onsets[r] is not None and not steps[0] <= onsets[r] <= steps[-1]:
                notes.append(f"run {r!r}: onset {onsets[r]} lies outside the run (steps "
                             f"{int(steps[0])} to {int(steps[-1])}); no lead time for it")
                onsets[r] = None
            monitored.append(MonitoredRun(reader.read(params=params, runs=[r])[0], steps,
                                          None, c, r))
        try:
            alarms = alarm_steps(monitored, **rule, spectrum_kwargs=spectrum_kwargs)
        except ValueError as exc:
            notes.append(f"condition {c!r} not monitored: {exc}")
            continue
        per_run.update({r: {"alarm_step": alarms[r], "onset": onsets[r],
                            "lead_time": None if alarms[r] is None or onsets[r] is None
                            else onsets[r] - alarms[r], "condition": c} for r in runs})
    if not per_run:
        return {"rule": rule, "error": "; ".join(notes), "notes": notes}
    return {"rule": rule, "onset_rule": f"metadata 'onset', else first step with test_accuracy "
                                        f">= {ONSET_ACCURACY}", "runs": per_run, "notes": notes}
