"""Windowed spectra of a study, compared: the window x window distances of each seed and what
they show (the noise floor between seeds, transitions, the most distinct window, where the dynamics
settle), and two conditions compared window by window with the one verdict rule. Used by the CNN
early-phase study (fig. 4); nothing here is specific to it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..compare import distance_matrix, recording_interval
from ..windows import find_transitions
from .comparison import compare_conditions


def window_distances(spectra: Sequence[Sequence[Any]], windows: Sequence[tuple[int, int]],
                     labels: Sequence[str]) -> dict[str, Any]:
    """The window x window distances of every seed (``spectra[seed][window]``) and their mean;
    with >= 2 seeds the noise floor (mean distance between seeds within a window); with >= 2
    windows the transitions (:func:`conjugacy.find_transitions`, also above the noise floor), the
    mean distance of each window to the others and the ``findings`` (most distinct window, where
    the dynamics settle, by label and by first record ``windows[i][0]``).

    Parameters
    ----------
    spectra : sequence (seeds) of sequence (windows) of Spectrum
    windows : sequence of (int, int)
        First and last-plus-one record of each window.
    labels : sequence of str
        One per window.

    Returns
    -------
    dict
        ``windows``, ``labels``, ``mean_matrix``, ``per_seed_matrices``, ``noise_floor`` (W1),
        and with enough seeds and windows ``between_seeds_per_window``, ``transitions``,
        ``transitions_noise_floor``, ``mean_distance_to_other_windows``, ``findings``.

    Examples
    --------
    Two seeds whose dynamics change after the first of five windows:

    >>> from conjugacy.analysis.demo import decay_windows
    >>> rng = np.random.default_rng(0)
    >>> run = lambda rates: decay_windows(rates, rng)  # a spectrum per window of 20 records
    >>> windows = [(20 * i, 20 * i + 20) for i in range(5)]
    >>> labels = [f"{a}-{b - 1}" for a, b in windows]
    >>> out = window_distances([run((0.95, 0.5, 0.5, 0.5, 0.5)) for _ in range(2)], windows, labels)
    >>> f = out["findings"]
    >>> f["most_distinct_window"], f["settled_from_window"], f["settled_from_iteration"]
    ('0-19', '20-39', 20)
    """
    labels = list(labels)
    d = np.stack([distance_matrix(specs) for specs in spectra])  # (seeds, windows, windows)
    mean, n_w, n_s = d.mean(axis=0), len(windows), len(spectra)
    out: dict[str, Any] = {"windows": [list(w) for w in windows], "labels": labels,
                           "mean_matrix": mean.tolist(), "per_seed_matrices": d.tolist(),
                           "noise_floor": None}
    if n_s >= 2:
        per_window = [float(np.mean(distance_matrix([spectra[s][w] for s in range(n_s)])
                                    [np.triu_indices(n_s, 1)])) for w in range(n_w)]
        out["between_seeds_per_window"] = per_window
        out["noise_floor"] = float(np.mean(per_window))
    if n_w >= 2:
        tr = find_transitions(mean)
        out["transitions"] = tr.as_dict()
        if out["noise_floor"] is not None:
            out["transitions_noise_floor"] = find_transitions(
                mean, noise_floor=out["noise_floor"]).as_dict()
        others = mean.sum(axis=1) / (n_w - 1)
        out["mean_distance_to_other_windows"] = others.tolist()
        settled, distinct = tr.settled_from, n_w >= 3  # with two windows, each is the other's
        out["findings"] = {
            "first_window_most_distinct": bool(int(np.argmax(others)) == 0) if distinct else None,
            "most_distinct_window": labels[int(np.argmax(others))] if distinct else None,
            "consecutive_distances": tr.steps.tolist(),
            "settled_from_window": labels[settled] if settled < n_w else None,
            "settled_from_iteration": int(windows[settled][0]) if settled < n_w else None,
        }
    return out


def compare_windows(spectra: Mapping[str, Sequence[Sequence[Any]]], labels: Sequence[str], *,
                    seed: int, n_permutations: int, n_shuffles: int, what: str = "condition"
                    ) -> dict[str, Any]:
    """Two conditions (``spectra[condition][seed][window]``) compared window by window
    (:func:`conjugacy.analysis.compare_conditions`, random stream ``seed + window``): per window
    the distances, shuffle control, permutation test and verdict with its reason; ``what`` names
    a condition in the note (e.g. "architecture").

    Parameters
    ----------
    spectra : mapping of two conditions -> sequence (seeds) of sequence (windows) of Spectrum
    labels : sequence of str
        One per window.
    seed, n_permutations, n_shuffles : int
        As in :func:`conjugacy.analysis.compare_conditions`.
    what : str
        What a condition is, for the note.

    Returns
    -------
    dict
        ``per_window`` (window, verdict, pvalue, reason, distances and tests on all and filtered
        eigenvalues), ``n_seeds``, ``n_windows``, ``smallest_possible_pvalue``, ``note``.

    Raises
    ------
    ValueError
        If ``spectra`` does not hold exactly two conditions.

    Examples
    --------
    >>> from conjugacy.analysis.demo import decay_windows
    >>> rng = np.random.default_rng(0)
    >>> run = lambda rates: decay_windows(rates, rng)  # a spectrum per window of 20 records
    >>> spectra = {"a": [run((0.95, 0.95)) for _ in range(3)],
    ...            "b": [run((0.95, 0.5)) for _ in range(3)]}
    >>> out = compare_windows(spectra, ["0-19", "20-39"], seed=0, n_permutations=99, n_shuffles=10)
    >>> [(w["window"], w["verdict"]) for w in out["per_window"]]
    [('0-19', 'undecided'), ('20-39', 'undecided')]
    >>> out["note"]
    '3 seeds per condition: the permutation test (exact enumeration) cannot give p below 0.1'
    """
    if len(spectra) != 2:
        raise ValueError(f"compare_windows compares two conditions, got {list(spectra)}")
    a, b = spectra
    n_seeds = min(len(spectra[a]), len(spectra[b]))
    n_w = min(len(spectra[a][0]), len(spectra[b][0]))
    per_window = []
    for w in range(n_w):
        comp = compare_conditions(
            {c: [spectra[c][s][w] for s in range(n_seeds)] for c in (a, b)},
            seed=seed + w, n_permutations=n_permutations, n_shuffles=n_shuffles,
            ks=False)
        key = next(iter(comp["pairs"]))
        v = comp["verdicts"][key]
        entry = {"window": labels[w], "verdict_uses": comp["verdict_uses"],
                 "verdict": v["verdict"], "pvalue": v["pvalue"], "reason": v["reason"]}
        for which in ("all", "filtered"):
            c = comp[which]
            if c is not None and key in c["distances"]:  # absent: a filter kept nothing
                entry[which] = {
                    "distance_per_seed": c["distances"][key]["per_seed"],
                    "distance_mean": c["distances"][key]["mean"],
                    "distance_std": c["distances"][key]["std"],
                    "shuffle_fraction_per_seed": c["shuffle_control"][key]["fraction_per_seed"],
                    "shuffle_mean_fraction": c["shuffle_control"][key]["mean_fraction"],
                    "permutation_test": c["permutation_tests"][key],
                    "between_seeds_mean": {k: x["mean"] for k, x in c["between_seeds"].items()},
                }
        per_window.append(entry)
    first = per_window[0][per_window[0]["verdict_uses"]] if per_window else None
    min_p = None if first is None or first["permutation_test"] is None else \
        first["permutation_test"]["min_pvalue"]
    note = (f"{n_seeds} seeds per {what}: the permutation test (exact enumeration) cannot "
            f"give p below {min_p:.3g}") if min_p is not None else \
        f"one seed per {what}: no permutation test"
    return {"n_seeds": n_seeds, "n_windows": n_w, "per_window": per_window,
            "smallest_possible_pvalue": min_p, "note": note}


def seed_window_spectra(reader: Any, groups: Sequence[Any], params: Any, window: int,
                        delays: int, rank: int | str | None, *, dtype: Any = None,
                        progress: Callable[[int, int], None] | None = None,
                        ) -> tuple[dict[str, list[list[Any]]], list[int]]:
    """One spectrum per window for every (condition, seed) group
    (:class:`conjugacy.analysis.SpectrumGroup`, its replicas pooled) by
    :func:`conjugacy.windowed_spectra`, windows paired by **training step**: a window spans
    ``window`` records at the finest recording interval ``dt`` of the groups, i.e. ``window * dt``
    steps, and a group recorded every ``k * dt`` steps contributes ``window / k`` records to it.
    Each spectrum carries its group's ``record_interval`` (so that
    :func:`conjugacy.analysis.compare_conditions` can compare them in continuous time).

    Parameters
    ----------
    reader : TrajectoryStore
    groups : sequence of SpectrumGroup
        Windows start at the latest first recorded step of the groups (records before it are
        skipped); each window spans a whole number of every group's recording interval.
    params : str or list of str
    window : int
        Records per window at the finest interval.
    delays : int
    rank : int, str or None
        As in :func:`conjugacy.koopman_spectrum` (an int capped at the delay-embedded dimension;
        a rank rule such as ``"svht"`` applied to each window's delay matrix).
    dtype : numpy dtype, optional
        The precision of the fits (default: the store's; the CNN study fits in float64).
    progress : callable, optional
        ``progress(done, len(groups))`` after each group's windows are fitted.

    Returns
    -------
    dict condition -> [seed][window] of Spectrum, and list of int
        The spectra, and the training step at which each window starts (one list for all).

    Raises
    ------
    ValueError
        A group with no record at the latest first step of the groups (windows start there), a
        ``window`` whose steps are not a multiple of every group's interval (the message names
        the multiple: the least common multiple of the intervals over the finest), or one that
        holds too few records of a coarser group for ``delays`` (the message names the window
        to use, in records at the finest interval).
    """
    from ..windows import windowed_spectra
    from .groups import record_interval, with_record_interval

    cuts = [g.slice or slice(None) for g in groups]  # None: all records
    steps = [np.asarray(reader.steps(g.runs[0]))[c] for g, c in zip(groups, cuts)]
    dts = [record_interval(s) or 1 for s in steps]
    fine, first = min(dts), max(int(s[0]) for s in steps)  # pair from the latest common start
    skip = _common_start(groups, steps, dts, first)
    lcm = int(np.lcm.reduce(dts))
    if (window * fine) % lcm:
        raise ValueError(f"windows of {window} records every {fine} steps ({window * fine} "
                         f"steps) cannot be paired by step with conditions recorded every "
                         f"{sorted(set(dts))} steps: use a window that is a multiple of "
                         f"{lcm // fine} records (e.g. {_next_multiple(window, lcm // fine)})")
    out: dict[str, list[list[Any]]] = {}
    for g, cut, st, dt, k in zip(groups, cuts, steps, dts, skip):
        n = window * fine // dt
        if n < delays + 2:
            need = _next_multiple(-(-(delays + 2) * dt // fine), lcm // fine)
            raise ValueError(f"windows of {window} records ({window * fine} steps) hold "
                             f"{n} records of {g.condition!r} (recorded every {dt} steps), "
                             f"too few for delays={delays}: use a window of at least {need}")
        sl = slice((cut.start or 0) + k, cut.stop)
        x = reader.read(params=params, runs=list(g.runs), steps=sl, dtype=dtype)
        specs = windowed_spectra(x, n, delays=delays,
                                 rank=min(rank, (delays + 1) * x.shape[2])
                                 if isinstance(rank, int) else rank)
        out.setdefault(g.condition, []).append([with_record_interval(sp, st[k:])
                                                for sp in specs])
        if progress is not None:
            progress(sum(len(v) for v in out.values()), len(groups))
    n_w = min(len(v) for seeds in out.values() for v in seeds)
    return out, [first + w * window * fine for w in range(n_w)]


def window_section(reader: Any, groups: Sequence[Any], params: Any, *, n_records: int,
                   window: int, delays: int, rank: int | str | None, dtype: Any = None,
                   batch_metric: str = "accuracy") -> tuple[list[list[Any]], dict[str, Any]]:
    """One condition's windows compared with each other (the CNN study's fig. 4A/B): the
    disjoint windows of ``window`` records over the first ``n_records`` records of its runs
    (:func:`conjugacy.windows.plan_windows`, labelled ``"first-last"`` record), one spectrum per
    window and seed (:func:`seed_window_spectra`, replicas pooled), their
    :func:`window_distances`, and the training curves.

    Parameters
    ----------
    reader : TrajectoryStore or StudyReader
    groups : sequence of SpectrumGroup
        One per seed, of one condition (recorded at every step from record 0).
    params : str or list of str
    n_records : int
        Records analysed (the runs may hold more, e.g. trained longer for per-epoch fits).
    window, delays : int
    rank : int, str or None
        As :func:`seed_window_spectra`.
    dtype : numpy dtype, optional
        The precision of the fits (default: the store's).
    batch_metric : str
        The recorded scalar averaged over the last ``window`` records of every run.

    Returns
    -------
    list (seeds) of list (windows) of Spectrum, and dict
        :func:`window_distances` of the spectra with ``loss`` (``mean``, ``std`` over the runs
        of the recorded ``loss`` at every record after the first) and
        ``batch_<batch_metric>_last_window``.

    Raises
    ------
    ValueError
        As :func:`seed_window_spectra`; ``n_records`` shorter than one window.

    Examples
    --------
    The slow-decay runs of :func:`conjugacy.analysis.demo.decay_store` (one per seed), their
    first 30 records in windows of 10:

    >>> import tempfile
    >>> from conjugacy.analysis import SpectrumGroup, group_runs
    >>> from conjugacy.analysis.demo import decay_store
    >>> from conjugacy.store import TrajectoryStore
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with TrajectoryStore.open(decay_store(f"{tmp.name}/runs.zarr", n_seeds=2), "r") as store:
    ...     groups = [SpectrumGroup(c, s, r) for (c, s), r in group_runs(store).items()
    ...               if c == "slow"]
    ...     spectra, out = window_section(store, groups, "w", n_records=30, window=10,
    ...                                   delays=1, rank=2, batch_metric="loss")
    >>> [len(per) for per in spectra], out["labels"], len(out["loss"]["mean"])
    ([3, 3], ['0-9', '10-19', '20-29'], 29)
    >>> round(out["batch_loss_last_window"], 4)  # the mean of 0.95 ** t over t = 20 .. 29
    0.2877
    >>> tmp.cleanup()
    """
    from ..windows import plan_windows
    from .groups import SpectrumGroup
    from .pipeline import run_scalars

    windows = [(w.start, w.stop) for w in plan_windows([n_records], window)]
    labels = [f"{a}-{b - 1}" for a, b in windows]
    records = (0, windows[-1][1])
    cut = [SpectrumGroup(g.condition, g.seed, g.runs, records) for g in groups]
    by_condition, _ = seed_window_spectra(reader, cut, params, window, delays, rank, dtype=dtype)
    spectra = next(iter(by_condition.values()))
    out = window_distances(spectra, windows, labels)
    curves = run_scalars(reader, [r for g in groups for r in g.runs], ["loss", batch_metric])
    loss, metric = curves["loss"][:, 1:], curves[batch_metric][:, 1:]
    out["loss"] = {"mean": loss.mean(axis=0).tolist(), "std": loss.std(axis=0).tolist()}
    out[f"batch_{batch_metric}_last_window"] = float(metric[:, -window:].mean())
    return spectra, out


def _next_multiple(value: int, of: int) -> int:
    """The smallest multiple of ``of`` that is at least ``value``."""
    return -(-value // of) * of


def _common_start(groups: Sequence[Any], steps: Sequence[np.ndarray], dts: Sequence[int],
                  first: int) -> list[int]:
    """Per group: the records before step ``first`` (the latest first step of all groups), which
    windows paired by step skip; refuses a group with no record at ``first``."""
    skip = []
    for g, st, dt in zip(groups, steps, dts):
        k = int(np.searchsorted(st, first))
        if k >= st.size or int(st[k]) != first:
            raise ValueError(f"windows are paired by step from step {first} (the latest first "
                             f"step of the conditions), but {g.condition!r} (recorded every "
                             f"{dt} steps from step {int(st[0])}) has no record there: record "
                             "the conditions on one grid of steps")
        skip.append(k)
    return skip


def conditions_by_window(spectra: Mapping[str, Sequence[Sequence[Any]]],
                         starts: Sequence[int], window: int, *, alpha: float = 0.05,
                         seed: int = 0, n_permutations: int = 999, time: str = "auto",
                         progress: Callable[[int, int], None] | None = None
                         ) -> dict[str, Any]:
    """Every pair of conditions compared window by window, against each window's seed-to-seed
    floor: from which step on do the conditions differ?

    Parameters
    ----------
    spectra : mapping condition -> [seed][window] of Spectrum
        One spectrum per (condition, seed, window) (:func:`conjugacy.windowed_spectra` on the
        runs of each seed); the first ``min`` seeds and windows common to all are compared.
    starts : sequence of int
        First recorded step of each window (labels ``"start-end"``, ``end`` the window's last
        step at the finest recording interval of the spectra, 1 if they carry none).
    window : int
        Records per window at that interval (:func:`seed_window_spectra` pairs windows by step).
    alpha, seed, n_permutations, time
        As in :func:`conjugacy.analysis.compare_conditions`, which compares each window (random
        stream ``seed + window index``; no shuffle control, no KS tests); ``time`` ("auto",
        "discrete" or "continuous") as in ``conjugacy analyze --time``.
    progress : callable, optional
        ``progress(done, n_windows)`` after each window's comparison.

    Returns
    -------
    dict
        ``{"window", "starts", "labels", "alpha", "n_seeds", "pairs": {name: {"a", "b",
        "per_window": [{"start", "label", "distance", "interval", "noise_floor",
        "effect_size", "pvalue", "min_pvalue", "verdict", "reason", "uses"}, ...],
        "differ_from_step", "differ_from_window", "summary"}}}``: ``distance`` is the mean
        per-seed W1 between the conditions (on the spectra the verdict uses, with its 95%
        t-interval over seeds), ``noise_floor`` the mean W1 between seeds of one condition in
        that window (same unit), ``effect_size`` the test statistic in noise-floor units;
        ``differ_from_*`` is the first window from which on every window's verdict is "not
        conjugate" (None if the last one is not).

    Raises
    ------
    ValueError
        Fewer than two conditions, or conditions without spectra.
    """
    conds = list(spectra)
    if len(conds) < 2 or any(not spectra[c] for c in conds):
        raise ValueError(f"conditions_by_window needs two or more conditions with spectra, got "
                         f"{ {c: len(spectra[c]) for c in conds} }")
    n_seeds = min(len(spectra[c]) for c in conds)
    n_w = min(len(spectra[c][s]) for c in conds for s in range(n_seeds))
    dts = [recording_interval(spectra[c][s][w]) for c in conds for s in range(n_seeds)
           for w in range(n_w)]
    fine = min([d for d in dts if d is not None], default=1.0)
    labels = [f"{a}-{a + round((window - 1) * fine)}" for a in starts[:n_w]]
    pairs: dict[str, Any] = {}
    for w in range(n_w):
        comp = compare_conditions({c: [spectra[c][s][w] for s in range(n_seeds)] for c in conds},
                                  alpha=alpha, seed=seed + w, n_permutations=n_permutations,
                                  shuffle=None, ks=False, time=time)
        for name, (a, b) in comp["pairs"].items():
            entry = pairs.setdefault(name, {"a": a, "b": b, "per_window": []})
            entry["per_window"].append(_window_entry(comp, name, int(starts[w]), labels[w]))
        if progress is not None:
            progress(w + 1, n_w)
    for entry in pairs.values():
        entry.update(_differ_from(entry["per_window"], entry["a"], entry["b"], n_seeds))
    return {"window": int(window), "starts": [int(s) for s in starts[:n_w]], "labels": labels,
            "alpha": alpha, "n_seeds": n_seeds, "time": comp["time"] if n_w else time,
            "pairs": pairs}


def _window_entry(comp: Any, name: str, start: int, label: str) -> dict[str, Any]:
    """One window of one pair: the numbers behind its verdict (the spectra it uses)."""
    v = comp["verdicts"][name]
    block = comp[v["uses"]]
    d = block["distances"].get(name, {})  # none where a filter kept nothing
    test = block["permutation_tests"].get(name) or {}
    return {"start": start, "label": label, "distance": d.get("mean"),
            "interval": d.get("interval"), "noise_floor": test.get("noise_floor"),
            "effect_size": test.get("effect_size"), "pvalue": v["pvalue"],
            "min_pvalue": v["min_pvalue"], "verdict": v["verdict"], "reason": v["reason"],
            "uses": v["uses"]}


def _differ_from(per_window: Sequence[Mapping[str, Any]], a: str, b: str,
                 n_seeds: int) -> dict[str, Any]:
    """The first window from which on every verdict is "not conjugate", and a sentence."""
    k = len(per_window)
    while k > 0 and per_window[k - 1]["verdict"] == "not conjugate":
        k -= 1
    n_differ = sum(w["verdict"] == "not conjugate" for w in per_window)
    if k == len(per_window):
        undecided = sum(w["verdict"] == "undecided" for w in per_window)
        why = (f"; {undecided} of {len(per_window)} windows undecided (with {n_seeds} seeds the "
               "test may not reach its level)") if undecided else ""
        return {"differ_from_step": None, "differ_from_window": None,
                "summary": f"{a} vs {b}: the last window is not 'not conjugate'; "
                           f"{n_differ} of {len(per_window)} windows differ{why}."}
    first = per_window[k]
    return {"differ_from_step": first["start"], "differ_from_window": first["label"],
            "summary": f"{a} vs {b} differ from step {first['start']} on: windows "
                       f"{first['label']} to {per_window[-1]['label']} are 'not conjugate' "
                       f"({len(per_window) - k} of {len(per_window)}; {n_differ} in all)."}


def epoch_spectra(reader: Any, groups: Sequence[Any], params: Any, steps_per_epoch: int,
                  n_epochs: int, *, delays: int, rank: Any, dtype: Any = None
                  ) -> list[list[Any]]:
    """One spectrum per epoch for every group (its replicas pooled): epoch ``e`` is the records
    ``[e * steps_per_epoch, (e + 1) * steps_per_epoch)`` from the first record, whatever the
    group's ``steps`` (the CNN study's fig. S5, one spectrum per epoch).

    Parameters
    ----------
    reader : TrajectoryStore or StudyReader
    groups : sequence of SpectrumGroup
    params : str or list of str
    steps_per_epoch : int
        Records per epoch (the runs record every step); at least ``delays + 2``.
    n_epochs : int
    delays, rank
        As in :func:`conjugacy.koopman_spectrum`.
    dtype : numpy dtype, optional
        The precision of the fits (default: the store's; the CNN study fits in float64).

    Returns
    -------
    list (groups) of list (epochs) of Spectrum
        Summarized by :func:`epoch_section`.

    Raises
    ------
    ValueError
        As :func:`conjugacy.windowed_spectra` (e.g. an epoch shorter than ``delays + 2``).

    Examples
    --------
    >>> import tempfile
    >>> from conjugacy.analysis import SpectrumGroup, group_runs
    >>> from conjugacy.analysis.demo import decay_store
    >>> from conjugacy.store import TrajectoryStore
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with TrajectoryStore.open(decay_store(f"{tmp.name}/runs.zarr"), "r") as store:
    ...     groups = [SpectrumGroup(c, s, r) for (c, s), r in group_runs(store).items()]
    ...     spectra = epoch_spectra(store, groups[:2], "w", 10, 3, delays=0, rank=1)
    >>> [len(per) for per in spectra], epoch_section(spectra)["epochs"]
    ([3, 3], 3)
    >>> tmp.cleanup()
    """
    from ..windows import windowed_spectra

    spe = int(steps_per_epoch)
    return [[windowed_spectra(reader.read(params=params, runs=list(g.runs), dtype=dtype,
                                          steps=slice(e * spe, (e + 1) * spe)),
                              spe, delays=delays, rank=rank)[0] for e in range(n_epochs)]
            for g in groups]


def epoch_section(spectra: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """``{"epochs", "mean_matrix"}``: the number of epochs and the epoch x epoch W1 distances
    (:func:`conjugacy.compare.distance_matrix`) averaged over the groups of
    :func:`epoch_spectra` (``spectra[group][epoch]``; an example there)."""
    return {"epochs": len(spectra[0]),
            "mean_matrix": np.stack([distance_matrix(per) for per in spectra]).mean(0).tolist()}
