"""Verdicts checked against their neighbours: the comparison refitted at neighbouring settings.

A verdict is only as good as the settings it was fitted with. :func:`neighbour_check` refits every
spectrum of a comparison at the neighbouring settings :func:`neighbour_settings` lists -- delays
halved and doubled, the rank times 0.8 and 1.25 (rounded half up, at least one step: 8 and 13
around 10, 2 and 4 around 3; a rank rule such as ``"svht"`` is replaced by the fixed median of
the ranks it chose; clipped to what the data allow and named by the step taken, never below
rank 2, dropped when that is the base rank), and the other filter (all eigenvalues when
the verdicts use the filtered spectra; the per-spectrum filter, :meth:`Spectrum.filtered`, when
they use all eigenvalues, e.g. ``conjugacy analyze``'s default; none where the spectra carry no
residuals to filter by) -- repeats the comparison
(:func:`conjugacy.analysis.compare_conditions`, the one verdict rule, permutation tests with the
same seed) and reports per pair how many neighbours give the same verdict, the range of p-values
and distances over the base and its neighbours, and ``fragile`` when any verdict differs.
A neighbour that is not possible (the delay neighbours at 0 delays, a rank below 2 or beyond
the data, the other filter without residuals) is listed in ``neighbourhood["not_tried"]`` with
its reason, not dropped silently.

Cost (bounded): 4 refits of every spectrum of the comparison, no more (the filter neighbour reuses
the base fits: one more comparison, its permutation tests included), in one
:func:`conjugacy.spectrum.koopman_spectra` call per group: each group's runs are read once, one
snapshot Gram serves every refit that takes the Gram path (weight trajectories), and the two rank
neighbours are truncations of one factorization of the base delays' matrix (3 factorizations per
group, not 4). Where the base fits already computed the rank neighbours from their own
factorization (``prefit=``: :func:`conjugacy.analysis.run_pipeline` with a fixed rank, serially,
through :func:`conjugacy.analysis.fit_spectra`'s ``neighbour_fits``), those are reused, not
refitted (``neighbourhood["n_reused"]``): 2 factorizations per group beyond the base fit, none
at 0 delays. The CPU time is recorded in ``neighbourhood["cpu_seconds"]``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["DELAY_FACTORS", "MIN_NEIGHBOUR_RANK", "RANK_FACTORS", "neighbour_check",
           "neighbour_settings", "neighbours_not_tried", "not_tried_text"]

#: Neighbouring delays: the base delays times these factors (rounded down, at least 0).
DELAY_FACTORS = (0.5, 2.0)
#: Neighbouring ranks: the base rank times these factors, rounded half up, at least one step
#: from the base (log-symmetric: -20 % and +25 %; at rank 10: 8 and 13, at rank 3: 2 and 4,
#: where a fixed step of 2 cut rank 3 to 1, a 67 % cut that flagged stable verdicts fragile).
RANK_FACTORS = (0.8, 1.25)
#: No rank neighbour below this: rank 1 holds one real eigenvalue, no complex pair.
MIN_NEIGHBOUR_RANK = 2


def neighbour_settings(delays: int, rank: int | str | None, fitted_ranks: Sequence[int],
                       max_delays: int, max_rank: Callable[[int], int] | None = None
                       ) -> list[dict[str, Any]]:
    """The neighbouring spectrum settings of ``(delays, rank)``: ``name``, ``delays``, ``rank``.

    Delays ``x 1/2`` and ``x 2`` (dropped when equal to the base, e.g. 0 delays, above
    ``max_delays``, the most the runs allow, or when a fixed rank exceeds ``max_rank`` at those
    delays); ranks ``round(0.8 r)`` and ``round(1.25 r)`` (:data:`RANK_FACTORS`, half up, at
    least one step from ``r``) around the base rank ``r``, or around the median of
    ``fitted_ranks`` when the base is a rule (``"svht"``, ``None``), the upper one clipped to
    ``max_rank(delays)``, named by the step taken (``"rank -1"``); a rank neighbour below
    :data:`MIN_NEIGHBOUR_RANK` or equal to the base is dropped. :func:`neighbours_not_tried`
    says which were dropped and why.

    Parameters
    ----------
    delays : int
        The base delays.
    rank : int, str or None
        The base rank or rank rule.
    fitted_ranks : sequence of int
        The ranks the base fits kept (their median stands for a rule).
    max_delays : int
        The most delays the runs allow.
    max_rank : callable, optional
        ``max_rank(d)``: the largest rank the data allow at ``d`` delays
        (``min(n_observables, n_pairs)``); unbounded when omitted.

    Returns
    -------
    list of dict

    Examples
    --------
    >>> [(s["name"], s["delays"], s["rank"]) for s in neighbour_settings(8, 10, [10], 20)]
    [('delays x1/2', 4, 10), ('delays x2', 16, 10), ('rank -2', 8, 8), ('rank +3', 8, 13)]
    >>> [(s["name"], s["rank"]) for s in neighbour_settings(0, 3, [3], 0, lambda d: 3)]
    [('rank -1', 2)]
    """
    return _neighbours(delays, rank, fitted_ranks, max_delays, max_rank)[0]


def neighbours_not_tried(delays: int, rank: int | str | None, fitted_ranks: Sequence[int],
                         max_delays: int, max_rank: Callable[[int], int] | None = None
                         ) -> list[dict[str, str]]:
    """The neighbours :func:`neighbour_settings` leaves out, each ``{"name", "reason"}``: the
    delay neighbours at 0 delays or beyond what the runs allow, a rank neighbour below
    :data:`MIN_NEIGHBOUR_RANK` or beyond what the data allow. Same parameters.

    Examples
    --------
    >>> [v["name"] for v in neighbours_not_tried(0, 2, [2], 0, lambda d: 2)]
    ['delays x1/2', 'delays x2', 'rank -1', 'rank +1']
    >>> neighbours_not_tried(0, 2, [2], 0, lambda d: 2)[0]["reason"]
    'not possible at 0 delays (a multiple of 0 is 0)'
    """
    return _neighbours(delays, rank, fitted_ranks, max_delays, max_rank)[1]


def not_tried_text(neighbourhood: Mapping[str, Any]) -> str:
    """The sentence a console or report shows for ``neighbourhood["not_tried"]`` (the
    neighbours that were not possible, grouped by reason); empty when every one was tried.

    Examples
    --------
    >>> not_tried_text({"not_tried": neighbours_not_tried(0, 3, [3], 5)})
    'Not tried: delays x1/2, delays x2 (not possible at 0 delays (a multiple of 0 is 0)).'
    """
    by_reason: dict[str, list[str]] = {}
    for v in neighbourhood.get("not_tried") or []:
        by_reason.setdefault(str(v.get("reason")), []).append(str(v.get("name")))
    if not by_reason:
        return ""
    return "Not tried: " + "; ".join(f"{', '.join(names)} ({why})"
                                     for why, names in by_reason.items()) + "."


def _neighbours(delays: int, rank: int | str | None, fitted_ranks: Sequence[int],
                max_delays: int, max_rank: Callable[[int], int] | None
                ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """:func:`neighbour_settings` and :func:`neighbours_not_tried`, from one rule."""
    cap = max_rank or (lambda d: np.iinfo(np.int64).max)
    out, skipped = [], []
    for factor in DELAY_FACTORS:
        name = f"delays x{'1/2' if factor < 1 else int(factor)}"
        d = int(delays * factor)
        if delays == 0:
            why = "not possible at 0 delays (a multiple of 0 is 0)"
        elif d > max_delays:
            why = f"{d} delays: beyond the {max_delays} the runs allow"
        elif isinstance(rank, int) and rank > cap(d):
            why = f"rank {rank} is beyond the {cap(d)} the data allow at {d} delays"
        else:
            out.append({"name": name, "delays": d, "rank": rank})
            continue
        skipped.append({"name": name, "reason": why})
    base = rank if isinstance(rank, int) else int(np.median(fitted_ranks)) if len(
        fitted_ranks) else 1
    lower = min(base - 1, int(np.floor(RANK_FACTORS[0] * base + 0.5)))
    upper = max(base + 1, int(np.floor(RANK_FACTORS[1] * base + 0.5)))
    taken = {base}
    for want in (lower, upper):
        r = min(want, cap(delays))
        if r in taken or r < MIN_NEIGHBOUR_RANK:
            why = (f"rank {want}: below {MIN_NEIGHBOUR_RANK} (one real eigenvalue, no complex "
                   "pair)" if want < MIN_NEIGHBOUR_RANK else f"rank {want}: beyond the "
                   f"{cap(delays)} the data allow at {delays} delays")
            skipped.append({"name": f"rank {want - base:+d}", "reason": why})
            continue
        taken.add(r)
        out.append({"name": f"rank {r - base:+d}", "delays": delays, "rank": r})
    return out, skipped


def _group_fits(x: np.ndarray, kwargs: Mapping[str, Any], variants: Sequence[Mapping[str, Any]],
                next_states: np.ndarray | None = None) -> list[Any]:
    """The spectra of one group's trajectories ``x`` at each variant of ``kwargs``, in one
    :func:`conjugacy.spectrum.koopman_spectra` call (one snapshot Gram for all of them where they
    take the Gram path; the rank neighbours truncations of one factorization), with the
    two-branch residuals of the recorded branch ``next_states`` when given, as the base fits."""
    from ..spectrum import koopman_spectra, koopman_spectrum

    shared = {k: v for k, v in kwargs.items() if k not in ("delays", "rank")}
    grid = [{"delays": v["delays"], "rank": v["rank"]} for v in variants]
    if shared.get("device") is not None:  # koopman_spectra is NumPy only: one fit each there
        return [koopman_spectrum(x, **g, **shared, next_states=next_states) for g in grid]
    shared.pop("device", None)
    return koopman_spectra(x, grid, next_states=next_states, **shared)


def _reuse_or_fit(group: Any, own: Sequence[Mapping[str, Any]], kw: Mapping[str, Any],
                  ready: Mapping[tuple[int, Any], Any], read: Callable[[Any], np.ndarray],
                  read_next: Callable[[Any], np.ndarray | None] | None) -> tuple[list[Any], int]:
    """A group's spectra at its neighbour settings ``own``: those in ``ready`` (by ``(delays,
    rank)``) as they are, the others in one :func:`_group_fits` call (the group read only then);
    and how many were taken from ``ready``."""
    out = [ready.get((int(v["delays"]), v["rank"])) for v in own]
    todo = [v for v, sp in zip(own, out) if sp is None]
    if todo:
        fits = iter(_group_fits(read(group), kw, todo,
                                None if read_next is None else read_next(group)))
        out = [next(fits) if sp is None else sp for sp in out]
    return out, len(own) - len(todo)


def _summary(base: Mapping[str, Any], found: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Per pair: the base verdict, how many neighbours agree, p and distance ranges, fragile."""
    verdicts = [v["verdict"] for v in found.values()]
    same = sum(v == base["verdict"] for v in verdicts)
    ps = [p for p in [base["pvalue"], *(v["pvalue"] for v in found.values())] if p is not None]
    ds = [d for d in [base["distance"], *(v["distance"] for v in found.values())]
          if d is not None and np.isfinite(d)]
    return {"verdict": base["verdict"], "same": int(same), "of": len(verdicts),
            "fragile": same < len(verdicts),
            "pvalue_range": [min(ps), max(ps)] if ps else None,
            "distance_range": [min(ds), max(ds)] if ds else None,
            "neighbours": {k: dict(v) for k, v in found.items()}}


def _outcome(cmp: Mapping[str, Any], name: str, block: str | None = None) -> dict[str, Any]:
    """Verdict, p-value and mean per-seed distance of pair ``name`` in a comparison dict (the
    block the verdicts use, or ``block``: then the verdict is recomputed from its test)."""
    from ..stats import verdict

    use = block or cmp["verdict_uses"]
    test = (cmp[use]["permutation_tests"] or {}).get(name) or {}
    dist = cmp[use]["distances"].get(name, {}).get("mean")  # none where a filter kept nothing
    if block is None:
        word = cmp["verdicts"][name]["verdict"]
    else:
        word = verdict(test.get("pvalue"), test.get("min_pvalue"), cmp["alpha"],
                       mismatch=cmp["settings_mismatch"]).verdict
    return {"verdict": word, "pvalue": test.get("pvalue"), "distance": dist}


def neighbour_check(
    comparison: dict[str, Any],
    read: Callable[[Any], np.ndarray],
    groups: Sequence[Any],
    settings: Mapping[str, Any] | Callable[[Any], Mapping[str, Any]],
    fitted: Mapping[tuple, Any],
    stats: Mapping[str, Any],
    *,
    max_delays: int,
    steps: Callable[[Any], Any] | None = None,
    read_next: Callable[[Any], np.ndarray | None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    prefit: Mapping[tuple, Mapping[tuple[int, Any], Any]] | None = None,
) -> dict[str, Any]:
    """Refit a comparison at its neighbouring settings; the result goes to
    ``comparison["neighbourhood"]`` (and is returned).

    Parameters
    ----------
    comparison : dict
        The comparison's JSON form (:meth:`Comparison.to_dict`), updated in place.
    read : callable
        ``read(group) -> (n_runs, n_steps, n_features)`` trajectories of a group.
    groups : sequence of SpectrumGroup
        The compared groups (those without a window are used).
    settings : dict or callable
        The base :func:`conjugacy.koopman_spectrum` keyword arguments (or per group).
    fitted : mapping key -> Spectrum
        The base spectra (their ranks give the rank neighbours of a rank rule).
    stats : mapping
        Options of :func:`compare_conditions` used for the base (``alpha``, ``seed``,
        ``n_permutations``, ...); shuffles and KS tests are skipped for the neighbours.
    max_delays : int
        The most delays the runs allow (neighbours above it are dropped).
    steps : callable, optional
        ``steps(group)``: the recorded steps of its runs, for ``settings["record_interval"]``.
    read_next : callable, optional
        ``read_next(group)``: its runs' recorded branch (or None), passed to every refit as the
        base fits get it (:func:`conjugacy.analysis.groups._branch_states`).
    progress : callable, optional
        ``progress(done, total)``: called before the refits (``done = 0``) and after each
        group's, ``total`` the number of groups.
    prefit : mapping, optional
        ``{group key: {(delays, rank): Spectrum}}``: neighbour spectra already fitted with the
        same settings (e.g. the rank neighbours from the base fit's factorization,
        :func:`conjugacy.analysis.fit_spectra`'s ``neighbour_fits``); a neighbour found there
        is not refitted, and a group whose neighbours are all there is not read.

    Returns
    -------
    dict
        ``rule`` (words), ``settings`` (the neighbours), ``not_tried`` (each ``{"name",
        "reason"}``: :func:`neighbours_not_tried`, and the other filter where the spectra carry
        no residuals), ``n_fits`` (neighbour spectra),
        ``n_reused`` (of them taken from ``prefit``, not refitted), ``cpu_seconds`` and ``pairs``:
        pair -> ``verdict``, ``same``, ``of``, ``fragile``, ``pvalue_range``, ``distance_range``,
        ``neighbours`` (name -> ``verdict``, ``pvalue``, ``distance``).

    Examples
    --------
    Two conditions of 4 seeds (2 runs of 30 steps each) whose linear dynamics differ; the verdict
    holds at every neighbouring setting:

    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> from conjugacy.analysis.comparison import compare_conditions
    >>> from conjugacy.analysis.groups import SpectrumGroup
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(30)[:, None]
    >>> rates = {"slow": [0.95, 0.9, 0.6], "fast": [0.7, 0.5, 0.3]}
    >>> groups = [SpectrumGroup(c, s, [f"{c}_s{s}"]) for c in rates for s in range(4)]
    >>> data = {g.key: rng.normal(size=(2, 1, 3)) * np.power(rates[g.condition], t)
    ...         for g in groups}
    >>> settings, stats = {"delays": 2, "rank": 3}, {"seed": 0, "n_permutations": 99}
    >>> fitted = {k: koopman_spectrum(x, **settings) for k, x in data.items()}
    >>> spectra = {c: [fitted[g.key] for g in groups if g.condition == c] for c in rates}
    >>> comparison = compare_conditions(spectra, shuffle=None, ks=False, **stats).to_dict()
    >>> result = neighbour_check(comparison, lambda g: data[g.key], groups, settings, fitted,
    ...                          stats, max_delays=8)
    >>> [v["name"] for v in result["settings"]]
    ['delays x1/2', 'delays x2', 'rank -1', 'other filter (all eigenvalues)']
    >>> result["not_tried"][0]["name"]  # noiseless rank 3: rank 4 would be the base fit again
    'rank +1'

    With the verdicts on all eigenvalues (``use_filter=False``), the other filter is the
    per-spectrum one, compared on the same base fits:

    >>> plain = compare_conditions(spectra, shuffle=None, ks=False, use_filter=False,
    ...                            **stats).to_dict()
    >>> other = neighbour_check(plain, lambda g: data[g.key], groups, settings, fitted,
    ...                         {**stats, "use_filter": False}, max_delays=8)
    >>> other["settings"][-1], other["pairs"]["slow-fast"]["of"]
    ({'name': 'other filter (per-spectrum)'}, 4)
    >>> pair = result["pairs"]["slow-fast"]
    >>> result["n_fits"], pair["verdict"], pair["same"], pair["of"], pair["fragile"]
    (32, 'not conjugate', 4, 4, False)
    """
    from .comparison import compare_conditions
    from .groups import with_record_interval
    from .pipeline import by_condition

    t0 = time.process_time()
    used = [g for g in groups if g.window is None]
    base_kw = {g.key: dict(settings(g) if callable(settings) else settings) for g in used}
    first = base_kw[used[0].key]
    variants, not_tried = _neighbours(int(first["delays"]), first.get("rank"),
                                      [fitted[g.key].rank for g in used], max_delays,
                                      lambda d: _max_rank(d, used, base_kw, fitted, first))
    spectra: list[dict[str, list[Any]]] = [{} for _ in variants]
    tick = progress or (lambda _done, _total: None)
    tick(0, len(used))
    reused = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reduced ranks etc.: the base run reported them
        for done, g in enumerate(used, 1):
            kw = base_kw[g.key]
            own = [{**v, "delays": _scaled(v, kw, first)} for v in variants]
            fits, n = _reuse_or_fit(g, own, kw, (prefit or {}).get(g.key, {}), read, read_next)
            reused += n
            for i, sp in enumerate(fits):
                if steps is not None:
                    sp = with_record_interval(sp, steps(g))
                spectra[i].setdefault(g.condition, []).append(sp)
            tick(done, len(used))
        n_fits = len(variants) * len(used)
        variants, spectra = _drop_base_copies(variants, spectra, used, fitted, first, not_tried)
        opts = {k: v for k, v in stats.items()
                if k not in ("shuffle", "ks", "n_shuffles", "pairs")}
        found = {name: {} for name in comparison["pairs"]}
        for v, spec in zip(variants, spectra):
            cmp = compare_conditions(spec, pairs={k: tuple(p) for k, p in
                                                  comparison["pairs"].items()},
                                     allow_differing=comparison.get("allowed_differences"),
                                     shuffle=None, ks=False, **opts).to_dict()
            for name in found:
                found[name][v["name"]] = _outcome(cmp, name)
        other = _other_filter(comparison, by_condition(used, fitted), opts)
    if other is not None:
        for name in found:
            found[name][other[0]] = _outcome(other[1], name, other[2])
    else:
        not_tried.append({"name": "other filter", "reason": "the spectra carry no residuals "
                          "to filter by"})
    pairs = {name: _summary(_outcome(comparison, name), found[name]) for name in found}
    result = {
        "rule": ("each pair refitted with delays x1/2 and x2, rank x0.8 and x1.25 (rounded half "
                 "up, at least one step; a rank rule: around the median rank it chose; clipped "
                 "to what the data allow, named by the step taken, never below rank 2) and "
                 "compared with the other filter; fragile when any neighbour's verdict "
                 "differs; not_tried: the neighbours that were not possible, and why"),
        "settings": variants + ([{"name": other[0]}] if other else []),
        "not_tried": not_tried,
        "n_fits": n_fits,
        "n_reused": reused,
        "cpu_seconds": time.process_time() - t0,
        "pairs": pairs,
    }
    comparison["neighbourhood"] = result
    return result


def _other_filter(comparison: Mapping[str, Any], spectra: Mapping[str, Sequence[Any]],
                  opts: Mapping[str, Any]) -> tuple[str, Mapping[str, Any], str | None] | None:
    """The other filter's neighbour from the base fits ``spectra`` (no refit): ``(name,
    comparison, block)`` for :func:`_outcome`. Verdicts on the filtered spectra: the base
    comparison's block of all eigenvalues. Verdicts on all eigenvalues: the base spectra compared
    again with the per-spectrum filter (the same statistics options); None where that filter
    cannot be applied (spectra without residuals)."""
    from .comparison import compare_conditions

    if comparison["verdict_uses"] == "filtered":
        return "other filter (all eigenvalues)", comparison, "all"
    opts = {**opts, "use_filter": True, "filter_rule": "per-spectrum"}
    cmp = compare_conditions(spectra, pairs={k: tuple(p) for k, p in comparison["pairs"].items()},
                             allow_differing=comparison.get("allowed_differences"),
                             shuffle=None, ks=False, **opts).to_dict()
    if cmp["verdict_uses"] != "filtered":
        return None
    return "other filter (per-spectrum)", cmp, None


def _drop_base_copies(variants: list[dict[str, Any]], spectra: list[dict[str, list[Any]]],
                      used: Sequence[Any], fitted: Mapping[tuple, Any], first: Mapping[str, Any],
                      not_tried: list[dict[str, str]]
                      ) -> tuple[list[dict[str, Any]], list[dict[str, list[Any]]]]:
    """The variants without the rank neighbours that every group's data reduced to the base's
    own rank (a rank above the numerical rank: the fit is the base fit again, which would count
    as a neighbour that agrees), each listed in ``not_tried`` with why."""
    from .pipeline import by_condition

    keep_v, keep_s = [], []
    base_delays = int(first["delays"])
    ranks = {c: [sp.rank for sp in per] for c, per in by_condition(used, fitted).items()}
    for v, spec in zip(variants, spectra):  # a variant's spectra: appended in the order of used
        if (v["delays"] == base_delays and v["rank"] != first.get("rank")
                and {c: [sp.rank for sp in per] for c, per in spec.items()} == ranks):
            not_tried.append({"name": v["name"], "reason": (
                f"rank {v['rank']}: every spectrum's data have numerical rank at most the "
                "base's, so the fit would be the base fit again")})
            continue
        keep_v.append(v)
        keep_s.append(spec)
    return keep_v, keep_s


def _scaled(variant: Mapping[str, Any], kw: Mapping[str, Any], first: Mapping[str, Any]) -> int:
    """A delay neighbour of a group whose own base delays differ from the first group's (e.g.
    delays scaled with the width): the same factor applied to its own delays."""
    base, own = int(first["delays"]), int(kw["delays"])
    if own == base or variant["delays"] == base:
        return int(variant["delays"]) if own == base else own
    return max(0, int(own * variant["delays"] / max(base, 1)))


def _max_rank(delays: int, used: Sequence[Any], base_kw: Mapping[tuple, Mapping[str, Any]],
              fitted: Mapping[tuple, Any], first: Mapping[str, Any]) -> int:
    """The largest rank every group's data allow at the neighbour's ``delays`` (each group at its
    own scaled delays): ``min(n_observables, n_pairs)`` from its base fit's recorded sizes."""
    out = []
    for g in used:
        st, kw = fitted[g.key].settings, base_kw[g.key]
        own = _scaled({"delays": delays}, kw, first)
        n_feat = int(st["n_observables"]) // (int(st["delays"]) + 1)
        n_pairs = int(st["n_pairs"]) + int(st["n_trajectories"]) * (int(st["delays"]) - own)
        out.append(min(n_feat * (own + 1), n_pairs))
    return max(1, min(out))
