"""Windowed Koopman spectra: when do the training dynamics change?

:func:`windowed_spectra` cuts every trajectory into windows of ``window`` consecutive snapshots
(every ``stride`` steps) and returns one :class:`~conjugacy.Spectrum` per window, pooling the
window's slice of every trajectory that covers it, exactly as :func:`~conjugacy.koopman_spectrum`
would on that slice. Windows are cut inside each trajectory, never across two. Paper: Redman et al.,
*Identifying Equivalent Training Dynamics* (NeurIPS 2024), sec. 4.3 and fig. 4: windows of 100
iterations over the first epoch of CNN training, compared pairwise by the Wasserstein distance.

:func:`find_transitions` reads the window x window distance matrix: change points between
consecutive windows, and equivalence classes of windows (:func:`~conjugacy.equivalence_classes`),
with one threshold and a documented rule.

Efficiency. With overlapping windows (``stride < window``) the snapshot Gram ``G[s, t] = x_s^* x_t``
(SPEC section 3) of each pair of trajectories is computed once, on the band of steps that windows
share, in tiles of ``gcd(window, stride)`` steps; every window's Gram is assembled from it, and its
spectrum follows from :func:`conjugacy.spectrum.spectrum_from_gram` (the Gram path of
:func:`koopman_spectrum` from a given Gram: the same code, not a copy). That costs
``n_features * R^2 * T * window`` flops for ``R`` trajectories of ``T`` steps, against
``n_features * R^2 * T * window^2 / (2 stride)`` for one :func:`koopman_spectrum` call per window.
It is used for the windows whose own call would take the Gram path (``path="gram"``, or
``"auto"`` with a fixed rank and features >= snapshots; no PCA); every other window, the first
window (which also validates the settings) and windows that do not overlap are computed by
:func:`koopman_spectrum` itself.
"""

from __future__ import annotations

import inspect
import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ._checks import as_numeric_array, check_int
from ._checks import check_positive_float as _positive
from .compare import EquivalenceClasses, distance_matrix, equivalence_classes
from .spectrum import Spectrum, koopman_spectrum, spectrum_from_gram
from .spectrum_paths import auto_path
from .streaming import ArraySource, as_source
from .trajectories import TrajectoriesLike, as_trajectory_list

__all__ = [
    "TransitionResult",
    "Window",
    "find_transitions",
    "left_out",
    "plan_windows",
    "windowed_spectra",
]


@dataclass(frozen=True)
class Window:
    """One window: steps ``start <= t < stop`` of the trajectories listed in ``members``.

    Examples
    --------
    >>> plan_windows([100, 60], window=40)
    [Window(index=0, start=0, stop=40, members=(0, 1)), Window(index=1, start=40, stop=80, members=(0,))]
    """

    index: int
    start: int
    stop: int
    members: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in ``Spectrum.settings["window"]``)."""
        return {
            "index": self.index,
            "start": self.start,
            "stop": self.stop,
            "trajectories": list(self.members),
        }


def plan_windows(lengths: Sequence[int], window: int, stride: int | None = None) -> list[Window]:
    """The windows cut from trajectories of the given lengths.

    Window ``w`` covers steps ``[w * stride, w * stride + window)`` of every trajectory at least
    ``w * stride + window`` steps long (a trajectory never contributes part of a window). Windows
    continue while at least one trajectory covers them; a trailing part shorter than ``window`` is
    not used.

    Parameters
    ----------
    lengths : sequence of int
        Number of steps of each trajectory.
    window : int
        Steps per window, >= 2.
    stride : int, optional
        Steps between the starts of consecutive windows, >= 1; default ``window`` (disjoint).

    Returns
    -------
    list of Window
        In order of start; a trajectory shorter than a window's end is not a member of it.

    Raises
    ------
    ValueError
        If ``window`` or ``stride`` is out of range, or no trajectory is ``window`` steps long.

    Examples
    --------
    >>> [(w.start, w.stop, w.members) for w in plan_windows([100], window=40, stride=20)]
    [(0, 40, (0,)), (20, 60, (0,)), (40, 80, (0,)), (60, 100, (0,))]
    """
    window = check_int(window, "window", minimum=2)
    stride = window if stride is None else check_int(stride, "stride", minimum=1)
    lengths = [int(n) for n in lengths]
    longest = max(lengths) if lengths else 0
    if longest < window:
        raise ValueError(
            f"window={window} is longer than every trajectory (longest: {longest} steps); "
            "choose window <= the number of recorded steps"
        )
    return [Window(k, start, start + window,
                   tuple(i for i, n in enumerate(lengths) if n >= start + window))
            for k, start in enumerate(range(0, longest - window + 1, stride))]


def left_out(n_records: int, window: int, stride: int | None = None) -> str | None:
    """The note naming the records of a run of ``n_records`` that no window of
    :func:`plan_windows` covers (its trailing part shorter than a window), or None when every
    record is in some window.

    Parameters
    ----------
    n_records : int
        Records of the (longest) run; a run shorter than one window has no windows and no
        note (None).
    window, stride : int
        As :func:`plan_windows`.

    Returns
    -------
    str or None

    Raises
    ------
    ValueError
        As :func:`plan_windows`.

    Examples
    --------
    >>> left_out(301, 50)
    'record 300 of 301 is in no window of 50 records (windows cover 0-299): not analysed'
    >>> left_out(300, 50) is None
    True
    >>> left_out(41, 60) is None  # no window at all: nothing to say about what they leave out
    True
    """
    if isinstance(n_records, int) and isinstance(window, int) and 0 < n_records < window:
        return None
    last = plan_windows([n_records], window, stride)[-1].stop
    if last >= n_records:
        return None
    rest = (f"record {last} of {n_records} is" if n_records - last == 1 else
            f"records {last}-{n_records - 1} of {n_records} are")
    return (f"{rest} in no window of {window} records (windows cover 0-{last - 1}): "
            "not analysed")


def _items(trajectories: TrajectoriesLike) -> list[Any]:
    """The user's trajectories as a list of 2-D arrays in their own dtype (views, no copies)."""
    if isinstance(trajectories, (list, tuple)):
        return list(trajectories)
    arr = np.asarray(trajectories) if not hasattr(trajectories, "ndim") else trajectories
    if getattr(arr, "ndim", 0) == 3:
        return [arr[i] for i in range(arr.shape[0])]
    return [arr]  # one (n_steps, n_features) trajectory, or koopman_spectrum names the problem


_SPECTRUM_PARAMS = {
    name: p.default
    for name, p in inspect.signature(koopman_spectrum).parameters.items()
    if name != "trajectories"
}
#: what :func:`conjugacy.spectrum.spectrum_from_gram` takes of the settings (no pca, path, device)
_GRAM_PARAMS = ("delays", "rank", "tol", "method", "scale", "modes", "threads")


def windowed_spectra(
    trajectories: TrajectoriesLike,
    window: int,
    stride: int | None = None,
    **spectrum_kwargs: Any,
) -> list[Spectrum]:
    """One Koopman spectrum per window of ``window`` snapshots, every ``stride`` steps.

    Parameters
    ----------
    trajectories : array (n_trajectories, n_steps, n_features), array (n_steps, n_features), or a
        list of (n_steps_i, n_features) arrays of different lengths (a store read,
        ``TrajectoryStore.read(...)``, is such an array; memory-mapped arrays work)
        Windows are cut inside each trajectory; window ``w`` pools the slices
        ``[w * stride, w * stride + window)`` of every trajectory that long (see
        :func:`plan_windows`).
    window : int
        Snapshots per window; at least ``delays + 2``.
    stride : int, optional
        Steps between window starts (default ``window``: disjoint windows, as in the paper).
    **spectrum_kwargs
        Passed to :func:`conjugacy.koopman_spectrum` (``delays``, ``rank``, ``method``, ``pca``,
        ``path``, ...). Eigenvalues and residuals only unless ``modes=True`` is passed (the
        per-window modes were a third of the time when they were computed by default).

    Returns
    -------
    list of Spectrum, one per window in order of start
        Each equal to ``koopman_spectrum(slice, **spectrum_kwargs)`` on the window's slice (to
        rounding, ~1e-12, where the shared Gram is used; see the module docstring), with
        ``settings["window"] = {"index", "start", "stop", "trajectories"}``.

    Raises
    ------
    TypeError
        For a keyword :func:`koopman_spectrum` does not take.
    ValueError
        For a window shorter than ``delays + 2``, a bad ``stride``, or any error of
        :func:`koopman_spectrum` on a window (the message names the window).

    References
    ----------
    Redman et al., *Identifying Equivalent Training Dynamics*, NeurIPS 2024, sec. 4.3 (Koopman
    spectra of windows of the early phase of training, fig. 4).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.signal import lfilter
    >>> rng = np.random.default_rng(0)
    >>> def ar(rates, n):  # 8 runs of n steps of AR(1) features x_t = r x_{t-1} + noise
    ...     return np.stack([lfilter([1], [1, -r], rng.normal(size=(8, n)), axis=1) for r in rates], -1)
    >>> runs = np.concatenate([ar([0.95, 0.6], 60), ar([0.6, 0.3], 60)], axis=1)  # changes at 60
    >>> spectra = windowed_spectra(runs, window=30, rank=2)
    >>> [s.settings["window"]["start"] for s in spectra]
    [0, 30, 60, 90]
    >>> [s.eigenvalues.real.round(1).tolist() for s in spectra]
    [[0.9, 0.6], [0.9, 0.6], [0.7, 0.2], [0.6, 0.3]]
    """
    unknown = sorted(set(spectrum_kwargs) - set(_SPECTRUM_PARAMS))
    if unknown:
        raise TypeError(
            f"windowed_spectra() got unexpected keyword argument(s) {unknown}; it takes "
            f"koopman_spectrum's: {', '.join(sorted(_SPECTRUM_PARAMS))}"
        )
    settings = {**_SPECTRUM_PARAMS, **spectrum_kwargs}
    window = check_int(window, "window", minimum=2)
    delays = settings["delays"]
    # window >= 2: a delays above window - 2 is positive (a bad delays is koopman_spectrum's)
    if isinstance(delays, numbers.Integral) and not isinstance(delays, bool) and window < delays + 2:
        raise ValueError(
            f"window={window} is too short for delays={delays}: each window needs at least "
            f"delays + 2 = {delays + 2} snapshots"
        )
    items = _items(trajectories)
    trajs = as_trajectory_list(trajectories)  # validated float64/complex128 copies or views
    plan = plan_windows([t.shape[0] for t in trajs], window, stride)
    stride = window if stride is None else int(stride)

    band = None  # the snapshot Gram of overlapping windows, shared (PCA needs each window's own)
    if stride < window and settings["pca"] is None and settings["path"] in ("auto", "gram"):
        band = _BandGram(trajs, window, stride)
    out = []
    for w in plan:  # the shared Gram from the second window on, where its path is the Gram's
        spec = _from_band(band, w, items, settings) if band is not None and w.index > 0 else None
        out.append(_with_window(_delegate(w, items, spectrum_kwargs) if spec is None else spec, w))
    return out


def _delegate(
    w: Window, items: list[Any], kwargs: dict[str, Any], gram: np.ndarray | None = None
) -> Spectrum:
    """``koopman_spectrum`` (or, given the window's snapshot Gram, ``spectrum_from_gram``) on the
    window's slices in their own dtype, errors naming the window."""
    slices = [items[a][w.start : w.stop] for a in w.members]
    try:
        if gram is not None:
            return spectrum_from_gram(slices, gram, **kwargs)
        return koopman_spectrum(slices, **kwargs)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"window {w.index} (steps {w.start}:{w.stop}): {exc}") from exc


def _with_window(spec: Spectrum, w: Window) -> Spectrum:
    return replace(spec, settings={**spec.settings, "window": w.as_dict()})


# ----- shared Gram over overlapping windows -------------------------------------------------------
class _BandGram:
    """Inner products ``x_a[s]^* x_b[t]`` for ``|s - t| < window``, in tiles of ``g`` steps.

    Tile ``k`` holds steps ``[k g, (k + 1) g)``; row ``k`` of the band is the product of tile ``k``
    of every trajectory with tiles ``k .. k + q - 1`` of every trajectory (``q = window / g``), an
    array ``(R, g, q, R, g)``. Rows are computed when a window first needs them and dropped when
    no later window does, so memory stays at about one window's Gram.
    """

    def __init__(self, trajs: list[np.ndarray], window: int, stride: int):
        self.trajs = trajs
        self.g = math.gcd(window, stride)
        self.q = window // self.g
        self.R = len(trajs)
        self.n = trajs[0].shape[1]
        self.dtype = trajs[0].dtype
        self.rows: dict[int, np.ndarray] = {}

    def _tile_rows(self, traj: np.ndarray, start: int, stop: int) -> np.ndarray:
        out = np.zeros((stop - start, self.n), dtype=self.dtype)
        have = max(0, min(stop, traj.shape[0]) - start)
        out[:have] = traj[start : start + have]
        return out

    def _row(self, k: int) -> np.ndarray:
        row = self.rows.get(k)
        if row is not None:
            return row
        g, q, R = self.g, self.q, self.R
        left = np.concatenate([self._tile_rows(t, k * g, (k + 1) * g) for t in self.trajs])
        if np.iscomplexobj(left):
            left = left.conj()
        row = np.empty((R, g, q, R, g), dtype=self.dtype)
        for b, tb in enumerate(self.trajs):
            lo, hi = k * g, (k + q) * g
            right = tb[lo:hi] if hi <= tb.shape[0] else self._tile_rows(tb, lo, hi)
            prod = left @ right.T  # (R g, q g)
            row[:, :, :, b, :] = prod.reshape(R, g, q, g)
        self.rows[k] = row
        return row

    def gram(self, w: Window) -> tuple[np.ndarray, np.ndarray]:
        """The snapshot Gram of window ``w`` (members' slices in order) and its offsets."""
        g, q = self.g, self.q
        k0 = w.start // g
        for k in [k for k in self.rows if k < k0]:
            del self.rows[k]
        R = self.R
        g6 = np.empty((q, R, g, q, R, g), dtype=self.dtype)  # (k, a, i, l, b, j)
        rows = np.stack([self._row(k0 + k) for k in range(q)])  # (k, a, i, j_off, b, j)
        for off in range(q):
            ks = np.arange(q - off)
            block = rows[ks, :, :, off]  # (len, a, i, b, j)
            g6[ks, :, :, ks + off] = block
            if off:
                g6[ks + off, :, :, ks] = block.conj().transpose(0, 3, 4, 1, 2)
        full = g6.transpose(1, 0, 2, 4, 3, 5).reshape(R * q * g, R * q * g)
        members = np.asarray(w.members)
        if members.size < R:
            idx = (members[:, None] * (q * g) + np.arange(q * g)[None, :]).ravel()
            full = full[np.ix_(idx, idx)]
        offsets = np.arange(members.size + 1) * (q * g)
        return np.ascontiguousarray(full), offsets


def _from_band(
    band: _BandGram,
    w: Window,
    items: list[Any],
    settings: dict[str, Any],
) -> Spectrum | None:
    """The window's spectrum by :func:`conjugacy.spectrum.spectrum_from_gram` on its part of the
    shared Gram, where the window's own :func:`koopman_spectrum` call takes the Gram path (the
    same result, see there); None where it does not."""
    delays, rank, path = settings["delays"], settings["rank"], settings["path"]
    n_snap = len(w.members) * (w.stop - w.start)
    m = n_snap - len(w.members) * (delays + 1)
    if path == "auto":
        mapped = isinstance(as_source([items[a] for a in w.members]), ArraySource)
        path = auto_path(band.n, band.n * (delays + 1), m, n_snap, rank, mapped=mapped)
    if path != "gram":
        return None
    kwargs = {key: settings[key] for key in _GRAM_PARAMS}
    return _delegate(w, items, kwargs, gram=band.gram(w)[0])


# ----- transitions --------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TransitionResult:
    """Where the dynamics change along a sequence of windows.

    Attributes
    ----------
    change_points : ndarray, int (k,)
        Indices ``i`` such that windows ``i`` and ``i + 1`` differ (a change between them):
        ``steps[i] > threshold``.
    steps : ndarray, float (n_windows - 1,)
        Distances between consecutive windows, ``D[i, i + 1]``.
    threshold : float
        The distance above which two windows count as different (units of the distances).
    classes : EquivalenceClasses
        Hierarchical classes of all windows cut at ``threshold`` (windows need not be consecutive
        to share a class: training can return to earlier dynamics).
    settled_from : int
        First window after the last change point (0 if there is none): from there on consecutive
        windows stay within ``threshold``.
    rule : str
        How ``threshold`` was chosen, in words.
    distance_matrix : ndarray, float (n_windows, n_windows)

    Examples
    --------
    Made by :func:`find_transitions`; here from four windows whose distances jump between the
    second and the third, with a fixed threshold:

    >>> import numpy as np
    >>> D = np.array([[0, .01, .3, .3], [.01, 0, .3, .3], [.3, .3, 0, .01], [.3, .3, .01, 0]])
    >>> found = find_transitions(D, threshold=0.1)
    >>> found.change_points, found.steps, found.settled_from, found.classes.labels
    (array([1]), array([0.01, 0.3 , 0.01]), 2, array([0, 0, 1, 1]))
    >>> found.rule
    'threshold given: 0.1'
    """

    change_points: np.ndarray
    steps: np.ndarray
    threshold: float
    classes: EquivalenceClasses
    settled_from: int
    rule: str
    distance_matrix: np.ndarray

    def segments(self) -> list[tuple[int, int]]:
        """Runs of windows between change points, as ``(first, last)`` window indices."""
        n = self.distance_matrix.shape[0]
        bounds = [0] + [int(i) + 1 for i in self.change_points] + [n]
        return [(a, b - 1) for a, b in zip(bounds[:-1], bounds[1:])]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "change_points": [int(i) for i in self.change_points],
            "steps": [float(s) for s in self.steps],
            "threshold": float(self.threshold),
            "classes": [int(c) for c in self.classes.labels],
            "n_classes": int(self.classes.n_classes),
            "linkage": self.classes.linkage,
            "settled_from": int(self.settled_from),
            "segments": [list(s) for s in self.segments()],
            "rule": self.rule,
        }


def _row(r: Any) -> bool:
    """Whether ``r`` can be a row of a nested distance matrix: a list, a tuple or a real 1-D
    array (a complex array is a spectrum's eigenvalues)."""
    if isinstance(r, np.ndarray):
        return r.ndim == 1 and not np.iscomplexobj(r)
    return isinstance(r, list | tuple)


def _nested_matrix(x: Any) -> np.ndarray | None:
    """``x`` as a distance matrix if it is one: a real 2-D ndarray, or nested lists of real
    numbers (``None`` as NaN, as ``results.json`` stores non-finite values) forming a square,
    symmetric matrix with a zero diagonal; None for spectra (Spectrum objects, eigenvalue
    arrays)."""
    if isinstance(x, np.ndarray):
        if x.ndim == 2 and not np.iscomplexobj(x):
            return np.array(as_numeric_array(x, "spectra_or_matrix"), dtype=float)
        return None
    if not isinstance(x, list | tuple) or not x or not all(_row(r) for r in x):
        return None  # rows: lists, tuples or real 1-D arrays (``list(D)`` of an ndarray D)
    try:
        d = np.array([[np.nan if v is None else v for v in r] for r in x], dtype=float)
    except (TypeError, ValueError):  # ragged, complex, strings: spectra (or an error there)
        return None
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        return None
    if np.all(np.nan_to_num(np.diag(d)) == 0) and np.allclose(d, d.T, equal_nan=True):
        return d
    return None


def find_transitions(
    spectra_or_matrix: Any,
    *,
    threshold: float | None = None,
    noise_floor: float | None = None,
    factor: float = 2.0,
    atol: float = 1e-8,
    linkage: str = "average",
    p: float = 1,
) -> TransitionResult:
    """Change points and equivalence classes of a sequence of windows from their distances.

    The rule (one threshold ``t`` for both outputs):

    1. ``t`` is ``threshold`` if given; else ``factor * noise_floor`` if a noise floor is given
       (e.g. the typical distance between independent seeds in the same window: a change must be
       larger than what a different seed makes); else ``factor`` times the median distance between
       consecutive windows (a change is a step several times larger than the typical step).
       In every case ``t`` is at least ``atol`` (eigenvalues live on the scale of the unit circle,
       so distances below 1e-8 are rounding, not dynamics).
    2. A change point lies between windows ``i`` and ``i + 1`` iff ``D[i, i + 1] > t``.
    3. Classes: :func:`conjugacy.equivalence_classes` of the whole matrix cut at ``t`` (average
       linkage by default), so windows far apart in time can share a class.

    Parameters
    ----------
    spectra_or_matrix : sequence of Spectrum (in window order), or ndarray (n, n)
        Spectra of consecutive windows, or their distance matrix (symmetric, zero diagonal): a
        real 2-D array, or nested lists as ``results.json`` stores it, or a list or tuple of rows
        (lists, tuples or real 1-D arrays, e.g. ``list(D)``) (``None`` is read as NaN
        and refused as non-finite; nested lists are read as a matrix when square, symmetric and
        zero on the diagonal, else as one eigenvalue list per window).
    threshold, noise_floor : float, optional
        See the rule; at most one of them.
    factor : float, default 2
        Multiplier of the noise floor or of the median step, > 0.
    atol : float, default 1e-8
        Smallest threshold, >= 0.
    linkage : str, default "average"
        Linkage of the classes (see :func:`conjugacy.equivalence_classes`).
    p : float, default 1
        Order of the Wasserstein distance when spectra are given.

    Returns
    -------
    TransitionResult

    Raises
    ------
    ValueError, TypeError
        Fewer than 2 windows, both ``threshold`` and ``noise_floor``, or values out of range.

    References
    ----------
    Redman et al., *Identifying Equivalent Training Dynamics*, NeurIPS 2024, sec. 4.3 (Koopman
    spectra of windows of the early phase of training, fig. 4).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.signal import lfilter
    >>> rng = np.random.default_rng(0)
    >>> def ar(rates, n):  # 8 runs of n steps of AR(1) features x_t = r x_{t-1} + noise
    ...     return np.stack([lfilter([1], [1, -r], rng.normal(size=(8, n)), axis=1) for r in rates], -1)
    >>> runs = np.concatenate([ar([0.95, 0.6], 60), ar([0.6, 0.3], 60)], axis=1)  # changes at 60
    >>> spectra = windowed_spectra(runs, window=30, rank=2)
    >>> found = find_transitions(spectra)
    >>> found.change_points, found.settled_from, found.classes.labels
    (array([1]), 2, array([0, 0, 1, 1]))
    """
    d = _nested_matrix(spectra_or_matrix)
    if d is None:
        d = distance_matrix(spectra_or_matrix, p=p)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"spectra_or_matrix must be a square (n, n) matrix, got shape {d.shape}")
    n = d.shape[0]
    if n < 2:
        raise ValueError(f"find_transitions needs at least 2 windows, got {n}")
    if threshold is not None and noise_floor is not None:
        raise ValueError("give at most one of threshold and noise_floor")
    factor = _positive(factor, "factor")
    atol = _positive(atol, "atol", allow_zero=True)
    steps = np.array([d[i, i + 1] for i in range(n - 1)])
    if threshold is not None:
        t = _positive(threshold, "threshold", allow_zero=True)
        rule = f"threshold given: {t:.6g}"
    elif noise_floor is not None:
        floor = _positive(noise_floor, "noise_floor", allow_zero=True)
        t = factor * floor
        rule = f"{factor:g} x noise floor {floor:.6g}"
    else:
        med = float(np.median(steps))
        t = factor * med
        rule = f"{factor:g} x median distance between consecutive windows ({med:.6g})"
        if len(steps) < 3:
            warnings.warn(
                f"find_transitions: {len(steps) + 1} windows give {len(steps)} consecutive "
                "distance(s), too few for the median rule to flag a change (it compares each "
                "step with the median of the steps); pass threshold= or noise_floor= (e.g. the "
                "distance between seeds)",
                UserWarning,
                stacklevel=2,
            )
    if t < atol:
        t = atol
        rule += f"; raised to atol = {atol:g}"
    classes = equivalence_classes(d, threshold=t, linkage=linkage)
    change = np.flatnonzero(steps > t)
    settled = int(change[-1]) + 1 if change.size else 0
    return TransitionResult(
        change_points=change,
        steps=steps,
        threshold=float(t),
        classes=classes,
        settled_from=settled,
        rule=rule,
        distance_matrix=classes.distance_matrix,
    )
