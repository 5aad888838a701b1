"""``conjugacy.analyze``: are the training dynamics of my runs equivalent, and when do they change?

From a trajectory store of a researcher's own runs (recorded with :class:`conjugacy.torch.Recorder`,
the Lightning or Hugging Face callbacks, :func:`conjugacy.torch.train_replicas`, or a study output
folder of :mod:`conjugacy.study`) to the results of :mod:`conjugacy.analysis` and a report:

1. **Grouping** by run metadata: ``group_by`` names the condition (e.g. ``"condition"``,
   ``"optimizer.class"``: dotted keys reach into nested metadata), ``seed_key`` the independent
   seed. The runs of one (condition, seed), the perturbed replicas, are pooled into one spectrum, as
   in the paper (Redman et al., NeurIPS 2024, sec. 4). Runs without the ``group_by`` key are left
   out (and listed).
2. **Steps**: every spectrum uses the same records, the first ``T`` of every run, ``T`` the
   shortest run (so unfinished runs can be analysed; a warning lists them).
3. **Settings** (overridable; the reasoning is written into the results):

   - ``delays``: from the data (:func:`pilot_delays`): on the first three seeds of each
     condition (at most ``PILOT_SNAPSHOTS`` snapshots each), the fewest delays whose held-out
     one-step prediction at the SVHT rank (at most :data:`RANK_CAP`), geometric mean over the
     seeds, is within 2 % of the best (:func:`conjugacy.delays.choose_delays`; where none beats
     persistence, the fewest, with a warning), the largest over conditions; at most 64 (the
     paper's largest) and ``(T - 2) // 4`` (each run keeps three quarters of its records as
     snapshot pairs).
   - ``rank``: one rank for every spectrum of the comparison (:func:`pilot_rank`): the largest
     over conditions of the SVHT rank (the Gavish-Donoho optimal hard threshold,
     :func:`conjugacy.dmd.svht_rank`) of the pilot's delay matrix, capped at :data:`RANK_CAP`
     (70), recorded in ``settings["rank_rule"]`` with the reason. The cap was chosen on real
     training runs (different conditions against different seeds of one condition:
     ``benchmarks/bench_settings.py``'s digits MLPs, AUROC 0.97-0.98 at 70, 0.88 at 100, 0.70
     with each spectrum's own SVHT rank of ~290) and bounds the cost: DMD-RRR's refinement
     grows as ``k^4`` (uncapped SVHT ranks of 100-660 on SGD weights took minutes per
     spectrum). ``rank="svht"`` keeps the per-spectrum rule without a cap. Both replace the
     rules of thumb ``round(3200 / n_features)`` delays and "singular values above 1e-3 s_1,
     within [4, 20]". Where a delay fold's SVHT rank (half a pilot's snapshots) already reaches
     the cap, the rank is the cap without factoring the pilots: under SGD noise the SVHT rank
     grows with the snapshots (docs/comparing.md).
   - ``filter``: the verdicts compare **all eigenvalues** of the spectra (``filter="none"``,
     :data:`DEFAULT_FILTER`); ``"per-spectrum"`` or ``"shared-count"`` base them on the
     residual-filtered spectra instead (:func:`comparison_options`). Chosen on two real cases
     (BENCHMARKS.md "Settings from data"): at the capped rank the per-spectrum filter kept ~23 of
     70 eigenvalues on the digits MLPs, different ones per seed, and separated learning rates
     worse than all eigenvalues did.
   - **Neighbours** (``neighbours=True``): every comparison is refitted at delays x1/2 and x2,
     rank x0.8 and x1.25 and, when the verdicts use a filter, compared on all eigenvalues;
     ``comparison["neighbourhood"]`` says per pair how many give the same verdict and marks a
     verdict that flips as fragile
     (:mod:`conjugacy.analysis.neighbours`; up to 2 more fits per spectrum, the delay neighbours).
4. **Comparison**: :func:`conjugacy.analysis.compare_conditions` (distances per seed, between-seed
   noise floor, permutation test with effect size and smallest attainable p, the paper's shuffle
   control and KS tests, classes of conditions, verdicts on all eigenvalues or, with a
   ``filter``, on the filtered spectra), plus a 95%
   interval of the mean distance of each pair over independent seeds (t-interval), and optionally
   (``n_boot``) a bootstrap interval over replicas (:func:`conjugacy.bootstrap_distance`).
5. **Windows** (``window=N``): per condition, one spectrum per window of ``N`` records (all runs
   of the condition pooled) by :func:`conjugacy.windowed_spectra`, their distance matrix and
   transitions (:func:`conjugacy.find_transitions`, default rule).
   **Checkpoints**: runs of weight snapshots (:class:`conjugacy.torch.snapshots.CheckpointRecorder`)
   are not trajectories; with ``out`` their spectral dynamics (singular values, effective rank,
   alignment, agreement: :mod:`conjugacy.experiments.spectral_dynamics`) go to
   ``OUT/spectral_dynamics/`` and the report embeds its figures.
6. **Report**: ``results.json`` and, with ``report=True``, ``report.html`` and ``report.md``
   (:func:`conjugacy.report.write_report`).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np

from .._checks import check_choice, check_rank, check_unit_interval
from .._text import cut_list, shown
from ..compare import TIMES
from ..results import to_jsonable
from .groups import MISSING, SpectrumGroup, canonical, group_runs, metadata_value, record_interval
from .results import AnalysisResults, Results

__all__ = ["AnalysisResults", "Results", "analyze", "comparison_options", "default_settings",
           "pilot_delays", "pilot_groups", "read_pilots", "work_estimate"]

#: The default rank's cap (module docstring, :func:`pilot_rank`): chosen by measurement
#: (BENCHMARKS.md "conjugacy analyze").
RANK_CAP = 70
#: The default delays' largest candidate (:func:`pilot_delays`).
DELAY_CAP = 64
#: :func:`pilot_delays` reads at most this many snapshots per seed of a condition (the first runs
#: of the seed, then the first records): choose_delays costs O(n^2) memory and O(n^3 / 4) per
#: candidate.
PILOT_SNAPSHOTS = 2400
#: :func:`pilot_delays` scores the pilots of the first this many seeds of each condition and
#: takes the geometric mean of their errors: one seed's choice moves with the seed (BENCHMARKS.md
#: "The delay rule on three seeds").
PILOT_SEEDS = 3


#: The filters ``analyze`` can base its verdicts on: ``"none"`` (all eigenvalues of the spectra,
#: the default), each spectrum's own residual filter, or one count for the comparison
#: (:mod:`conjugacy.comparison_filter`).
FILTERS = ("none", "per-spectrum", "shared-count")
#: The default filter: chosen on real training runs (``benchmarks/bench_settings.py``; at the
#: capped rank, AUROC of different conditions against seeds of one condition, digits MLPs 6 seeds:
#: all eigenvalues 0.96, per-spectrum filter 0.62, shared-count 0.68; first-hour CNNs: 0.88,
#: 0.79, 0.88; BENCHMARKS.md "Settings from data").
DEFAULT_FILTER = "none"


def comparison_options(filter: str = DEFAULT_FILTER) -> dict[str, Any]:
    """The options of :func:`conjugacy.analysis.compare_conditions` for a filter of
    :data:`FILTERS`: ``"none"`` compares all eigenvalues (``use_filter=False``), the others
    base the verdicts on the filtered spectra with that ``filter_rule``.

    Raises
    ------
    ValueError
        For a name not in :data:`FILTERS`.

    Examples
    --------
    >>> comparison_options(), comparison_options("shared-count")
    ({'use_filter': False}, {'use_filter': True, 'filter_rule': 'shared-count'})
    """
    check_choice(filter, "filter", FILTERS)
    return {"use_filter": False} if filter == "none" else {"use_filter": True,
                                                           "filter_rule": filter}


# ----- settings -----------------------------------------------------------------------------------
def _pilot_shape(n_runs: int, n_steps: int) -> tuple[int, int]:
    """Runs and records of a condition's pilot: at most ``PILOT_SNAPSHOTS`` snapshots, its first
    runs (at least 2) and then its first records (at least 6)."""
    runs = min(n_runs, max(2, PILOT_SNAPSHOTS // max(n_steps, 1)))
    return runs, min(n_steps, max(6, PILOT_SNAPSHOTS // max(runs, 1)))


def pilot_delays(pilots: Mapping[str, np.ndarray | Sequence[np.ndarray]],
                 max_delays: int | None = None,
                 notes: list[str] | None = None, max_rank: int | None = None,
                 fold_ranks: dict[str, int] | None = None,
                 progress: Callable[[str], None] | None = None) -> tuple[int, str]:
    """Default delays from pilot trajectories, and why: :func:`conjugacy.delays.choose_delays`
    on each condition's pilots (of each seed at most ``PILOT_SNAPSHOTS`` snapshots: its first
    runs, at least 2, then its first records; with several seeds, each scored on its own and
    the errors' geometric mean taken), the largest over conditions, so that no condition is
    under-embedded.

    Parameters
    ----------
    pilots : mapping condition -> array (n_runs, n_steps, n_features), or a list of them
        One array per seed (``conjugacy analyze`` passes the first :data:`PILOT_SEEDS`): a
        single seed's choice moves with the seed (on issue 25's first-hour CNNs 64, 0, 1, 2,
        1, 1, 64 and 1 delays for seeds 4-11 alone; 1 or 2 for every three consecutive of them).
    max_delays : int, optional
        Largest candidate (default :data:`DELAY_CAP`).
    notes : list of str, optional
        Receives :attr:`conjugacy.delays.DelayChoice.notes` of each condition (no candidate
        beats persistence; the choice is the largest candidate), prefixed with the condition.
    max_rank : int, optional
        The folds are fitted at ``min(SVHT rank, max_rank)`` (default :data:`RANK_CAP`, the
        rank the comparison will use at most).
    fold_ranks : dict, optional
        Receives condition -> the SVHT rank of its held-out folds (the larger of the two, at
        most ``max_rank``) at the chosen delays: a lower bound of the pilot's own SVHT rank
        there (each fold holds half of the pilot's snapshots; :func:`pilot_rank`'s ``known``).
    progress : callable, optional
        ``progress(condition)``: called after each condition's pilot is scored.

    Returns
    -------
    delays : int
    reason : str
        The rule and each condition's choice with its held-out error.

    Raises
    ------
    ValueError
        If the runs are too short for one delay (fewer than 6 records).

    Examples
    --------
    A noisy rotation, seen fully (``b``) and through its first coordinate only (``a``, which
    needs delays to show its two eigenvalues):

    >>> rng = np.random.default_rng(0)
    >>> z = np.zeros((4, 60, 2))
    >>> z[:, 0] = rng.standard_normal((4, 2))
    >>> rot = np.array([[np.cos(0.4), -np.sin(0.4)], [np.sin(0.4), np.cos(0.4)]]) * 0.98
    >>> for t in range(59):
    ...     z[:, t + 1] = z[:, t] @ rot.T + 0.05 * rng.standard_normal((4, 2))
    >>> delays, reason = pilot_delays({"a": z[:, :, :1], "b": z})
    >>> delays, reason.split("condition; ")[1][:47]
    (3, 'a: 3 (error 0.172 relative to persistence, SVHT')
    """
    from ..delays import choose_delays

    cap = DELAY_CAP if max_delays is None else max_delays
    top = RANK_CAP if max_rank is None else max_rank
    chosen, n_seeds = {}, {}
    for c, per_seed in pilots.items():
        runs = [t[:r, :n] for t in _seed_list(per_seed) for r, n in [_pilot_shape(*t.shape[:2])]]
        n_seeds[c] = len(runs)
        chosen[c] = choose_delays([x for t in runs for x in t], max_delays=cap, max_rank=top,
                                  seeds=[i for i, t in enumerate(runs) for _ in t])
        if progress is not None:
            progress(c)
    d = max(ch.delays for ch in chosen.values())
    shown = "; ".join(f"{c}: {ch.delays} (error {ch.errors[ch.candidates.index(ch.delays)]:.3g}"
                      f" relative to persistence, SVHT rank {ch.ranks[ch.candidates.index(ch.delays)]})"
                      for c, ch in chosen.items())
    why = (f"{d} delays: the largest over conditions of the fewest delays whose held-out "
           f"one-step prediction at the SVHT rank (at most {top}) is within 2 % of the best of "
           f"{list(next(iter(chosen.values())).candidates)} ({_seeds_used(n_seeds)}; {shown})")
    if notes is not None:
        notes.extend(f"delays of {c}: {n}" for c, ch in chosen.items() for n in ch.notes)
    if fold_ranks is not None:
        fold_ranks.update({c: int(ch.ranks[ch.candidates.index(d)]) if d in ch.candidates
                           else 0 for c, ch in chosen.items()})
    return d, why


def pilot_rank(pilots: Mapping[str, np.ndarray | Sequence[np.ndarray]], delays: int,
               cap: int | None = None, max_rank: int | None = None,
               known: Mapping[str, int] | None = None,
               progress: Callable[[str], None] | None = None
               ) -> tuple[int, dict[str, Any], list[str]]:
    """The default rank of a comparison: the SVHT rank (:func:`conjugacy.dmd.svht_rank`, through
    :func:`conjugacy.koopman_spectrum`) of each condition's pilot delay matrix at ``delays``, the
    largest over conditions, at most ``cap`` (default :data:`RANK_CAP`; module docstring) and
    ``max_rank`` (what every spectrum's data allow). One rank for every spectrum of the
    comparison, so their eigenvalue sets have one size.

    Parameters
    ----------
    pilots : mapping condition -> array (n_runs, n_steps, n_features), or a list of them
        The first seed of each condition (at most ``PILOT_SNAPSHOTS`` snapshots are used); of
        a list (one array per seed, as for :func:`pilot_delays`), the first.
    delays : int
        The delays of the comparison.
    cap, max_rank : int, optional
    known : mapping condition -> int, optional
        Lower bounds of the pilots' SVHT ranks at ``delays`` (:func:`pilot_delays`'
        ``fold_ranks``: its held-out folds, half of each pilot's snapshots). Where one reaches
        the cap, the rank is the cap and no pilot is factored: under SGD noise the SVHT rank
        grows with the snapshots (digits MLPs, 8 delays: 70, 160, 311, 586 at 192, 384, 768,
        1,536 snapshots; docs/comparing.md), so the whole pilot's is larger still. This skips
        the pilots' SVDs (19.7 s of CPU on issue 25's first-hour study).
    progress : callable, optional
        ``progress(condition)``: called after each condition's pilot is factored (not at all
        when ``known`` settles the rank).

    Returns
    -------
    rank : int
    rule : dict
        ``rule`` ("svht pilot, capped"), ``pilot_ranks`` (condition -> SVHT rank), ``cap``,
        ``capped`` (bool) and ``reason`` (one sentence).
    notes : list of str
        A note when SVHT keeps a single mode (then the spectra say nothing beyond the slowest
        rate: conditions that differ elsewhere look alike).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((3, 50, 2)) @ np.diag([1.0, 0.5])  # two directions of noise
    >>> x += np.cumsum(rng.standard_normal((3, 50, 1)), axis=1) * [1.0, 1.0]  # and a walk
    >>> k, rule, notes = pilot_rank({"a": x}, delays=0, cap=10)
    >>> k, rule["pilot_ranks"], rule["capped"], len(notes)
    (1, {'a': 1}, False, 1)
    """
    from ..spectrum import koopman_spectrum

    cap = RANK_CAP if cap is None else cap
    if known and max(known.values()) >= cap:
        return _rank_from_folds(known, delays, cap, max_rank)
    found: dict[str, int] = {}
    notes: list[str] = []  # SVHT's note on zero singular values, per pilot
    for c, per_seed in pilots.items():
        traj = _seed_list(per_seed)[0]
        runs, steps = _pilot_shape(*traj.shape[:2])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a pure-noise pilot keeps one direction: noted below
            fit = koopman_spectrum(traj[:runs, :steps], delays=delays, rank="svht",
                                   method="standard", modes=False)
        found[c] = int(fit.rank)
        if "note" in (fit.settings["rank_rule"] or {}):
            notes.append(f"the SVHT rank of {c}'s pilot: {fit.settings['rank_rule']['note']}")
        if progress is not None:
            progress(c)
    top = max(found.values())
    k = max(1, min(top, cap, max_rank or top))
    each = ", ".join(f"{c}: {r}" for c, r in found.items())
    reason = (f"rank {k}: the largest SVHT rank of the conditions' pilot delay matrices ({each}; "
              f"first seed, at most {PILOT_SNAPSHOTS} snapshots, {delays} delays)"
              + (f", capped at {cap}: {_CAP_WHY}" if top > cap else "")
              + (f", at most {k}, what every spectrum's data allow" if k < min(top, cap) else "")
              + "; one rank for every spectrum of the comparison")
    if top <= 1:
        notes.append(f"the SVHT rank of every pilot is {top} ({each}): each spectrum keeps one "
                     "eigenvalue, so conditions that differ in any other mode look alike (a "
                     "'conjugate' verdict says little); with few recorded features give more "
                     "delays (--delays) or a fixed rank (--rank)")
    rule = {"rule": "svht pilot, capped", "pilot_ranks": found, "cap": cap, "capped": top > cap,
            "reason": reason}
    return k, rule, notes


def _seeds_used(n_seeds: Mapping[str, int]) -> str:
    """How many seeds each condition's delay choice rests on, in words."""
    counts = set(n_seeds.values())
    if counts == {1}:
        return "first seed of each condition"
    if len(counts) == 1:
        return f"geometric mean over the first {counts.pop()} seeds of each condition"
    return ("geometric mean over each condition's first seeds: "
            + ", ".join(f"{c} {k}" for c, k in n_seeds.items()))


def _seed_list(pilot: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """A condition's pilots as one (n_runs, n_steps, n_features) array per seed."""
    return [pilot] if isinstance(pilot, np.ndarray) and pilot.ndim == 3 else list(pilot)


def _rank_from_folds(known: Mapping[str, int], delays: int, cap: int, max_rank: int | None
                     ) -> tuple[int, dict[str, Any], list[str]]:
    """:func:`pilot_rank` where a delay fold's SVHT rank already reaches the cap."""
    k = max(1, min(cap, max_rank or cap))
    each = ", ".join(f"{c}: {r}" for c, r in known.items())
    reason = (f"rank {k}: the SVHT rank of the delay choice's held-out folds at {delays} "
              f"delays (half of each pilot's snapshots; {each}, at most {cap}) already reaches "
              f"the cap, and the SVHT rank grows with the snapshots, so the pilots' own is "
              f"larger; capped at {cap}: {_CAP_WHY}"
              + (f"; at most {k}, what every spectrum's data allow" if k < cap else "")
              + "; one rank for every spectrum of the comparison")
    rule = {"rule": "svht pilot, capped", "pilot_ranks": dict(known), "cap": cap,
            "capped": True, "source": "delay folds (lower bounds)", "reason": reason}
    return k, rule, []


# ----- rank warnings, said once with where they come from -----------------------------------------
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
#: At most this many spectra are named in one attributed warning (then "...").
NAMED_SPECTRA = 6


def attributed_warnings(sources: Sequence[tuple[str, Any]], raised: Sequence[str],
                        what: str = "spectra") -> tuple[list[str], set[str]]:
    """The warnings ``raised`` during the fits of ``sources`` (``(label, Spectrum)``: each
    spectrum's ``settings["notes"]`` holds the :class:`conjugacy.RankWarning` messages its fit
    raised), each said once with the spectra it comes from: prefixed by the label where one
    spectrum raised it, else aggregated over the spectra whose messages differ only in their
    numbers (each number that differs shown as its range) with how many of ``sources`` raised it.

    Parameters
    ----------
    sources : sequence of (str, Spectrum)
        Label (e.g. ``"sgd seed 2 (window 100-149)"``) and spectrum.
    raised : sequence of str
        The messages raised (e.g. results.json's warnings); others in the notes are not warnings.
    what : str
        What the sources are, plural (``"in 3 of 6 spectra"``).

    Returns
    -------
    lines : list of str
    used : set of str
        The messages of ``raised`` the lines replace.

    Examples
    --------
    >>> from types import SimpleNamespace as S
    >>> msg = "rank=3 requested but the data have numerical rank {}; kept {} modes"
    >>> sp = [S(settings={"notes": [msg.format(k, k)] if k else []}) for k in (2, 1, 0, 0)]
    >>> lines, used = attributed_warnings(
    ...     [(f"sgd seed {i}", s) for i, s in enumerate(sp)], [msg.format(2, 2), msg.format(1, 1)])
    >>> text, where = lines[0].split(": in ")
    >>> text
    'rank=3 requested but the data have numerical rank 1-2; kept 1-2 modes'
    >>> where
    '2 of 4 spectra (sgd seed 0, sgd seed 1)'
    >>> attributed_warnings(sources=[("adam seed 0", sp[0])], raised=[msg.format(2, 2)])[0]
    ['adam seed 0: rank=3 requested but the data have numerical rank 2; kept 2 modes']
    """
    wanted = set(raised)
    kinds: dict[str, list[tuple[str, str]]] = {}
    for label, sp in sources:
        for note in dict.fromkeys((getattr(sp, "settings", None) or {}).get("notes") or []):
            if note in wanted:
                kinds.setdefault(_NUMBER.sub("#", note), []).append((label, note))
    lines = []
    for hits in kinds.values():
        labels = list(dict.fromkeys(label for label, _ in hits))
        text = _number_ranges([note for _, note in hits])
        if len(labels) == 1:
            lines.append(f"{labels[0]}: {text}")
            continue
        named = ", ".join(labels[:NAMED_SPECTRA]) + (", ..." if len(labels) > NAMED_SPECTRA
                                                      else "")
        lines.append(f"{text}: in {len(labels)} of {len(sources)} {what} ({named})")
    return lines, {note for hits in kinds.values() for _, note in hits}


def _number_ranges(messages: Sequence[str]) -> str:
    """Messages that differ only in their numbers as one: each number that differs as
    ``min-max``."""
    parts = _NUMBER.split(messages[0])
    numbers = [_NUMBER.findall(m) for m in messages]
    out = [parts[0]]
    for i, tail in enumerate(parts[1:]):
        slot = sorted({n[i] for n in numbers}, key=float)
        out.append(slot[0] if len(slot) == 1 else f"{slot[0]}-{slot[-1]}")
        out.append(tail)
    return "".join(out)


@contextmanager
def _rank_warnings_held() -> Iterator[list[str]]:
    """Hold the :class:`conjugacy.RankWarning` messages raised inside (yielded list, for
    :func:`attributed_warnings`); other warnings are raised again on the way out."""
    from ..spectrum import RankWarning

    held: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield held
    for w in caught:
        if issubclass(w.category, RankWarning):
            held.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _attribute_fit_warnings(content: dict[str, Any], spectra: Mapping[str, Sequence[Any]]
                            ) -> None:
    """Replace results.json's rank warnings of the comparison's fits by
    :func:`attributed_warnings` (where the first of them stood)."""
    seeds = content.get("seeds") or {}
    sources = [(f"{c} seed {s}", sp) for c, sps in spectra.items()
               for s, sp in zip(seeds.get(c) or range(len(sps)), sps)]
    raw = list(content.get("warnings") or [])
    lines, used = attributed_warnings(sources, raw)
    if not used:
        return
    first = next(i for i, w in enumerate(raw) if w in used)
    kept = [w for w in raw if w not in used and w not in lines]
    content["warnings"] = kept[:first] + lines + kept[first:]


# ----- reading the runs ---------------------------------------------------------------------------
def _reader(store: Any) -> tuple[Any, str]:
    """A :class:`~conjugacy.study.StudyReader` over ``store`` (path, store or reader), and its name."""
    from ..store import TrajectoryStore
    from ..study import STORES_DIR, StudyReader

    if isinstance(store, StudyReader):
        return store, "study"
    if isinstance(store, TrajectoryStore):  # read through the caller's handle, left open
        return StudyReader.of_store(store), str(store.path)
    if not isinstance(store, str | os.PathLike):
        raise TypeError(f"store must be a path, a TrajectoryStore or a StudyReader, got "
                        f"{type(store).__name__}")
    path = Path(store)
    if not path.exists():
        raise FileNotFoundError(f"store {str(path)!r} does not exist")
    if (path / STORES_DIR).is_dir():
        return StudyReader.open(path), str(path)
    # opened and validated once: the reader reads through this handle and closes it
    return StudyReader.of_store(TrajectoryStore.open(path, "r"), close=True), str(path)


def _label(value: Any) -> str:
    """A metadata value as a label: its :func:`~conjugacy.analysis.groups.canonical` JSON
    spelling (``True`` is ``"true"``, a dict its JSON with sorted keys), but a float or text as
    written (``1.0`` is ``"1.0"``, ``"1.0"`` stays ``"1.0"``)."""
    return str(value) if isinstance(value, str | float) else canonical(value)


def _valid_text(run: str, meta: Mapping[str, Any]) -> None:
    """Refuse a run whose metadata (keys or values, which label conditions and seeds and are
    written to results.json and the report) cannot be written as UTF-8: a lone surrogate
    (``"sgd\\udc9b"``, e.g. an undecodable byte of a file name) made the analysis fail at the
    end, naming no label (issue 26 review)."""
    for key, value in _flat(meta).items():
        try:
            json.dumps([key, value], ensure_ascii=False, default=str).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"run {shown(run, markup=False)}: metadata {shown(key, markup=False)} = "
                f"{shown(_label(value), markup=False)} is not valid Unicode text (a lone "
                "surrogate, e.g. an undecodable byte) and cannot be written to results.json or "
                "the report: record it as valid text") from None


#: Longest condition or seed label (a ``group_by`` or ``seed_key`` value as text) ``analyze``
#: accepts: the report's table shows labels up to this whole (``--group-by optimizer`` JSON is
#: ~300 characters). A label is written many times to results.json: a 7 MB one (within the
#: store's 16 MiB metadata bound) made a 245 MB results.json the report then refused.
MAX_GROUP_LABEL = 1000


def _check_label(run: str, key: str, value: Any) -> None:
    """Refuse ``value`` in one line (naming the run, the key, the length and the limit) when
    its label (:func:`_label`) is longer than :data:`MAX_GROUP_LABEL` characters."""
    label = _label(value)
    if len(label) > MAX_GROUP_LABEL:
        raise ValueError(
            f"run {shown(run, markup=False)}: metadata {shown(key, markup=False)} is "
            f"{len(label)} characters as a label, over the limit of {MAX_GROUP_LABEL}; group by a "
            "shorter key (dotted keys reach into nested metadata) or record a shorter value")


def _sort_key(value: Any) -> tuple:
    """Seeds in order: numbers by value, then the others by label (a value of
    :func:`group_runs`'s keys: a boolean is its text there)."""
    return (0, value, "") if isinstance(value, int | float) else (1, 0.0, _label(value))


# ----- grouping -----------------------------------------------------------------------------------
def _group(reader: Any, source: str, group_by: str, seed_key: str, notes: list[str],
           out: Any, every: dict[str, list[str]] | None = None
           ) -> tuple[dict[str, dict[Any, list[str]]], list[str]]:
    """``{condition: {seed: [runs]}}`` from the run metadata (checkpoint runs and runs without
    ``group_by`` left out, with a note; equal numbers of seeds per condition), and the
    checkpoint runs; ``every`` (if given) is filled with all runs of each condition, before
    the seeds are cut to the smallest count (the window alarms monitor each condition alone).
    Which runs share a (condition, seed) and how values compare is :func:`group_runs`'s rule;
    the conditions are its values as labels (:func:`_label`)."""
    from .checkpoints import is_checkpoint_run

    runs = reader.runs()
    if not runs:
        raise ValueError(f"store {source!r} holds no runs")
    metas = {r: reader.metadata(r) for r in runs}
    snapshots = [r for r, m in metas.items() if is_checkpoint_run(m)]  # weight snapshots
    if snapshots:
        notes.append(f"{len(snapshots)} checkpoint run(s) (e.g. {snapshots[0]!r}) are not "
                     "trajectories: left out of the spectra"
                     + ("; their spectral dynamics are in spectral_dynamics/" if out is not None
                        else "; `conjugacy spectral-dynamics` analyses them"))
    used = [r for r in runs if r not in snapshots and metadata_value(metas[r], group_by) is not MISSING]
    if len(snapshots) == len(runs):
        raise ValueError(f"{source!r} holds only checkpoint runs (weight snapshots), no "
                         "trajectories: analyse them with `conjugacy spectral-dynamics` "
                         "(conjugacy.analysis.checkpoints.spectral_dynamics_report)")
    if not used:
        keys = sorted({k for m in metas.values() for k in m})
        raise ValueError(
            f"no run of {source!r} has the metadata key {group_by!r} (group_by); the runs have "
            f"{keys}. Record it with Recorder(..., metadata={{{group_by!r}: ...}}) or choose "
            "another key (dotted keys reach into nested metadata, e.g. optimizer.class)")
    left_out = [r for r in runs if r not in used and r not in snapshots]
    if left_out:
        notes.append(f"{len(left_out)} run(s) without metadata {group_by!r} left out: "
                     + ", ".join(cut_list(left_out, 6)))
    for r in used:  # analyze's checks, run by run in the store's order
        s = metadata_value(metas[r], seed_key)
        if s is MISSING:
            raise ValueError(
                f"run {r!r} has no metadata {seed_key!r} (seed_key); it has {sorted(metas[r])}")
        _valid_text(r, metas[r])
        _check_label(r, seed_key, s)
        _check_label(r, group_by, metadata_value(metas[r], group_by))
    # 1 and "1": one seed; the mixed-types sentences go to the notes
    keyed = group_runs(reader, by=(group_by, seed_key), runs=used, notes=notes)
    groups: dict[str, dict[Any, list[str]]] = {}  # conditions by label, seeds in order
    for cond, seed in sorted(keyed, key=lambda k: (_label(k[0]), _sort_key(k[1]))):
        groups.setdefault(_label(cond), {})[seed] = keyed[(cond, seed)]
    if every is not None:
        every.update({c: [r for rs in v.values() for r in rs] for c, v in groups.items()})
    n_seeds = min(len(v) for v in groups.values())
    if len({len(v) for v in groups.values()}) > 1:
        notes.append("conditions have different numbers of seeds ("
                     + ", ".join(f"{c}: {len(v)}" for c, v in groups.items())
                     + f"); the first {n_seeds} of each are compared")
    return {c: dict(list(v.items())[:n_seeds]) for c, v in groups.items()}, snapshots


def _records(reader: Any, by_cond: Mapping[str, Mapping[Any, Sequence[str]]], notes: list[str],
             time: str = "auto") -> tuple[int, dict]:
    """The records every spectrum uses (the shortest run's), with notes on ragged, unaligned
    and unfinished runs. Reads each run's info and steps once."""
    members = [r for seeds in by_cond.values() for runs in seeds.values() for r in runs]
    info = {r: reader.run_info(r) for r in members}
    n_records = min(info[r]["n_complete"] for r in members)
    longest = max(info[r]["n_complete"] for r in members)
    if n_records < 6:
        short = [r for r in members if info[r]["n_complete"] == n_records]
        raise ValueError(f"run {short[0]!r} holds {n_records} records; at least 6 are needed")
    if longest > n_records:
        notes.append(f"runs hold {n_records} to {longest} records; every spectrum uses the "
                     f"first {n_records} records of each run")
    steps = {r: reader.steps(r)[:n_records] for r in members}
    notes.extend(_step_notes(steps, by_cond, time))
    late = [r for r in members if isinstance(info[r].get("first_step"), int | np.integer)
            and info[r]["first_step"] > 0]
    if late:  # e.g. a training loop without rec.record(0)
        notes.append(f"{len(late)} run(s) lack step 0 (e.g. {late[0]!r} starts at step "
                     f"{info[late[0]]['first_step']}): the initial weights were not recorded "
                     "(call rec.record(0) before the first optimizer step); the spectra start "
                     "at the first recorded step")
    unfinished = [r for r in members if not info[r]["finished"]]
    if unfinished:
        notes.append(f"{len(unfinished)} run(s) are not marked finished (training stopped or "
                     "still running): " + ", ".join(cut_list(unfinished, 6)))
    return n_records, info


def _step_notes(steps: Mapping[str, np.ndarray], by_cond: Mapping[str, Mapping[Any, Sequence[str]]],
                time: str = "auto") -> list[str]:
    """Notes on recorded steps that differ between runs or are unevenly spaced. Spectra (one per
    condition and seed) recorded at different (even) intervals are compared in continuous time,
    ``log(lambda) / interval`` (:func:`conjugacy.compare.comparison_time`, the rule results.json's
    ``comparison.time`` follows); runs of one seed at different intervals are refused when fitted
    (:func:`conjugacy.analysis.groups.fit_spectra`); uneven spacing breaks DMD's equal-step model."""
    notes = []
    members = [r for seeds in by_cond.values() for runs in seeds.values() for r in runs]
    ref = steps[members[0]]
    odd = [r for r in members[1:] if not np.array_equal(steps[r], ref)]
    uneven = [r for r in members if steps[r].size > 2 and np.ptp(np.diff(steps[r])) > 0]
    per_group = [{record_interval(steps[r]) for r in runs}
                 for seeds in by_cond.values() for runs in seeds.values()]
    intervals = sorted({v for g in per_group if len(g) == 1 for v in g} - {None})
    if odd and len(intervals) > 1 and all(len(g) == 1 for g in per_group):
        notes.append(f"runs were recorded at different intervals (every {', '.join(map(str, intervals))}"
                     " steps): " + ("time='discrete' compares their eigenvalues as they are, so "
                                    "the differing interval makes the verdicts undecided"
                                    if time == "discrete" else "their spectra are compared in "
                                    "continuous time, log(lambda) / interval"))
    elif odd:
        notes.append(f"{len(odd)} run(s) recorded other steps than {members[0]!r} (e.g. "
                     f"{odd[0]!r}); their records are compared position by position")
    if uneven:
        d = np.diff(steps[uneven[0]])
        notes.append(f"{len(uneven)} run(s) were recorded at uneven intervals (e.g. {uneven[0]!r}: "
                     f"{int(d.min())} to {int(d.max())} steps apart); DMD assumes equal spacing, "
                     "and the spectra take the median interval as their time step")
    return notes


def pilot_groups(groups: Sequence[SpectrumGroup], n_seeds: int = PILOT_SEEDS
                 ) -> list[SpectrumGroup]:
    """The groups the pilots come from (:func:`read_pilots`, :func:`work_estimate`): the first
    ``n_seeds`` of each condition, conditions in their first-seen order.

    Parameters
    ----------
    groups : sequence of SpectrumGroup
        The (condition, seed) groups of the comparison, seeds of a condition in their order.
    n_seeds : int
        Seeds per condition: :data:`PILOT_SEEDS` for the delays' pilots, 1 for the rank's alone.

    Returns
    -------
    list of SpectrumGroup

    Examples
    --------
    >>> groups = [SpectrumGroup(c, s, (f"{c}{s}",)) for c in "ab" for s in range(4)]
    >>> [(g.condition, g.seed) for g in pilot_groups(groups, 2)]
    [('a', 0), ('a', 1), ('b', 0), ('b', 1)]
    """
    return [g for c in dict.fromkeys(h.condition for h in groups)
            for g in [h for h in groups if h.condition == c][:n_seeds]]


def read_pilots(reader: Any, groups: Sequence[SpectrumGroup], params: Any,
                n_seeds: int = PILOT_SEEDS) -> dict[str, list[np.ndarray]]:
    """The pilots of :func:`pilot_delays` and :func:`pilot_rank`: the first ``n_seeds`` seeds of
    each condition (:func:`pilot_groups`), of each at most ``PILOT_SNAPSHOTS`` snapshots (its
    first runs, at least 2 where it has them, then its first records, at least 6), read in the
    stored dtype (only the pilots are read).

    Parameters
    ----------
    reader : TrajectoryStore or StudyReader
    groups : sequence of SpectrumGroup
        The (condition, seed) groups of the comparison; a group's ``steps`` bound its records.
    params : str or list of str
        The recorded parameters that are the observables.
    n_seeds : int
        Seeds per condition (:data:`PILOT_SEEDS`; 1 when only the rank is chosen).

    Returns
    -------
    dict
        Condition -> one array (n_runs, n_steps, n_features) per seed.

    Raises
    ------
    ValueError
        Naming the run, condition and seed, if a pilot holds NaN or Inf.

    Examples
    --------
    >>> import tempfile
    >>> from conjugacy.store import TrajectoryStore
    >>> from conjugacy.analysis import group_runs
    >>> from conjugacy.analysis.demo import decay_store
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = decay_store(f"{tmp.name}/runs.zarr")  # 2 conditions x 4 seeds x 1 run
    >>> with TrajectoryStore.open(path, "r") as store:
    ...     groups = [SpectrumGroup(c, s, runs) for (c, s), runs in group_runs(store).items()]
    ...     pilots = read_pilots(store, groups, "w")
    >>> [a.shape for a in pilots["fast"]]  # 3 seeds: 1 run x 30 records x 3 features each
    [(1, 30, 3), (1, 30, 3), (1, 30, 3)]
    >>> tmp.cleanup()
    """
    out: dict[str, list[np.ndarray]] = {}
    for g in pilot_groups(groups, n_seeds):
        n = (g.steps[1] - g.steps[0] if g.steps is not None
             else int(reader.run_info(g.runs[0])["n_complete"]))
        runs, steps = _pilot_shape(len(g.runs), n)
        x = reader.read(params=params, runs=list(g.runs[:runs]), steps=g.slice)[:, :steps]
        bad = [r for r, xr in zip(g.runs, x) if not np.isfinite(xr).all()]
        if bad:
            raise ValueError(f"run {bad[0]!r} (condition {g.condition!r}, seed {g.seed!r}) holds "
                             f"NaN or Inf in its first {steps} records: its trajectory cannot be "
                             "fitted; check or leave out that run")
        out.setdefault(g.condition, []).append(x)
    return out


def choose_settings(reader: Any, groups: Sequence[SpectrumGroup], params: Any,
                    delays: int | None = None, rank: int | str | None = None,
                    notes: list[str] | None = None,
                    progress: Callable[[int, int], None] | None = None
                    ) -> tuple[dict[str, Any], dict[str, str], dict[str, Any] | None]:
    """The spectrum settings of a comparison: ``delays`` and ``rank`` as given, or from the
    pilots (:func:`pilot_delays`, then :func:`pilot_rank` at those delays), with the reasoning,
    the default rank's rule (None when the rank is given) and notes appended to ``notes``;
    ``progress(done, total)`` before the pilots are read (``done = 0``) and after each pilot
    (``total``: the pilots to score, one per condition for the delays and one for the rank;
    ``done = total`` at the end, also when the delay folds settled the rank).
    ValueError if the runs are too short for the delays (module docstring)."""
    n_records = min((g.steps[1] - g.steps[0]) if g.steps is not None
                    else int(reader.run_info(g.runs[0])["n_complete"]) for g in groups)
    if delays is not None and n_records < delays + 3:
        raise ValueError(f"delays={delays} needs runs of at least {delays + 3} records (two "
                         f"snapshot pairs per run); the runs hold {n_records}: use delays <= "
                         f"{max(0, n_records - 3)}")
    if delays is None and n_records < 6:
        raise ValueError(f"the runs hold {n_records} records; at least 6 are needed for one "
                         "delay (record more steps, or give the delays, e.g. delays=0)")
    total = len({g.condition for g in groups}) * ((delays is None) + (rank is None))
    count = iter(range(1, total + 1))
    tick = None if progress is None else (lambda _c: progress(next(count), total))
    if progress is not None and total:
        progress(0, total)
    pilots = read_pilots(reader, groups, params, PILOT_SEEDS if delays is None else 1
                          ) if total else {}
    reasoning, rule, folds = {}, None, {}
    if delays is None:
        delays, reasoning["delays"] = pilot_delays(pilots, notes=notes, fold_ranks=folds,
                                                   progress=tick)
    else:
        reasoning["delays"] = f"{delays} delays: given"
    if rank is None:
        n_feat = next(iter(pilots.values()))[0].shape[2]
        most = min(n_feat * (delays + 1),
                   min(len(g.runs) for g in groups) * (n_records - delays - 1))
        rank, rule, found = pilot_rank(pilots, delays, max_rank=most, known=folds,
                                       progress=tick)
        reasoning["rank"] = rule["reason"]
        if notes is not None:
            notes.extend(found)
    else:
        reasoning["rank"] = f"rank {rank}: given"
    if progress is not None and total:
        progress(total, total)
    return {"delays": int(delays), "rank": rank}, reasoning, rule


def work_estimate(groups: Sequence[SpectrumGroup], n_records: int, n_features: int,
                  dtype: Any, pilots: bool = True, neighbours: bool = True,
                  pilot_seeds: int = PILOT_SEEDS) -> str:
    """The size of an analysis before it starts (``conjugacy analyze``'s first progress line):
    spectra, runs, records, features and the bytes to read (``n_records`` per run as stored,
    ``dtype``), the pilots' share when the settings are chosen from them (at most
    ``PILOT_SNAPSHOTS`` snapshots of each of the first :data:`PILOT_SEEDS` seeds of each
    condition), and the neighbour refits.

    Parameters
    ----------
    groups : sequence of SpectrumGroup
        The (condition, seed) groups, one spectrum each.
    n_records : int
        Records read per run.
    n_features : int
        Recorded numbers per record (the observables).
    dtype : numpy dtype or its name
        As stored (what is read).
    pilots, neighbours : bool
        Whether the settings are chosen from pilots; whether the neighbour check runs.
    pilot_seeds : int
        Seeds of each condition the pilots read (:data:`PILOT_SEEDS` when the delays are
        chosen; the rank alone reads the first seed).

    Returns
    -------
    str
        One line (sizes by :func:`conjugacy.streaming.format_size`: KiB, MiB, GiB of 2**10,
        2**20, 2**30 bytes).

    Examples
    --------
    >>> groups = [SpectrumGroup(c, s, (f"{c}{s}a", f"{c}{s}b")) for c in "ab" for s in range(3)]
    >>> for part in work_estimate(groups, 300, 1418, "float32").split("; "):
    ...     print(part)
    6 spectra (2 conditions x 3 seeds) of 12 runs x 300 records x 1,418 features
    to read: 19 MiB (float32) for the fits and 19 MiB for the pilots
    then the neighbour check: up to 2 more fits of each spectrum
    """
    from ..streaming import format_size

    item = np.dtype(dtype).itemsize
    n_runs = sum(len(g.runs) for g in groups)
    n_conds = len({g.condition for g in groups})
    pilot = sum(np.prod(_pilot_shape(len(g.runs), n_records))
                for g in pilot_groups(groups, pilot_seeds))
    text = (f"{len(groups)} spectra ({n_conds} conditions x {len(groups) // n_conds} "
            f"seeds) of {n_runs} runs x {n_records} records x {n_features:,} features; to read: "
            f"{format_size(n_runs * n_records * n_features * item)} ({np.dtype(dtype).name}) "
            "for the fits")
    if pilots:
        text += f" and {format_size(pilot * n_features * item)} for the pilots"
    if neighbours:
        text += "; then the neighbour check: up to 2 more fits of each spectrum"
    return text


def default_settings(reader: Any, groups: Sequence[SpectrumGroup], params: Any
                     ) -> tuple[dict[str, Any], dict[str, str]]:
    """The default spectrum settings of a comparison (``conjugacy analyze``'s and
    :func:`conjugacy.analysis.analyse_study`'s without ``spectrum``): delays from the data
    (:func:`pilot_delays` on the first seeds of each condition) and one rank for every spectrum,
    the pilots' SVHT rank at those delays capped at :data:`RANK_CAP` (:func:`pilot_rank`), with
    the reasoning. Raises ValueError if the runs are too short for one delay.

    Parameters
    ----------
    reader : TrajectoryStore or StudyReader
    groups : sequence of SpectrumGroup
    params : str or list of str
        The recorded parameters that are the observables.

    Returns
    -------
    settings : dict
        ``{"delays": int, "rank": int}`` (keyword arguments of
        :func:`conjugacy.koopman_spectrum`).
    reasoning : dict
        Setting -> why it was chosen. (The default comparison, all eigenvalues, is
        :func:`comparison_options`.)

    Examples
    --------
    >>> import tempfile
    >>> from conjugacy.store import TrajectoryStore
    >>> from conjugacy.analysis.demo import decay_store
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = decay_store(f"{tmp.name}/runs.zarr")  # 2 conditions x 4 seeds, 30 records
    >>> from conjugacy.analysis import SpectrumGroup, group_runs
    >>> with TrajectoryStore.open(path, "r") as store:
    ...     groups = [SpectrumGroup(c, s, runs) for (c, s), runs in group_runs(store).items()]
    ...     settings, reasoning = default_settings(store, groups, "w")
    >>> settings, sorted(reasoning)
    ({'delays': 1, 'rank': 1}, ['delays', 'rank'])
    >>> tmp.cleanup()
    """
    settings, reasoning, _ = choose_settings(reader, groups, params)
    return settings, reasoning


def _filter_reason(filter: str) -> str:
    """Why the verdicts compare what they compare (``settings_reasoning["filter"]``)."""
    return (f"{filter}: given" if filter != DEFAULT_FILTER else
            f"all eigenvalues (no residual filter): {_FILTER_WHY}")


_FILTER_WHY = ("at the capped rank, comparing all eigenvalues separated conditions better than "
               "either residual filter on real training runs (AUROC of different conditions "
               "against seeds of one: digits MLPs 0.96 against 0.62 per spectrum and 0.68 with "
               "one count; first-hour CNNs 0.88 against 0.79 and 0.88; BENCHMARKS.md, "
               "'Settings from data'); filter='per-spectrum' or 'shared-count' to filter")
_CAP_WHY = ("larger ranks separated conditions less well on real training runs (MLPs on the "
            "digits, 3 learning rates x 6 seeds: AUROC 0.97-0.98 at 70, 0.88 at 100, 0.70 at "
            "each spectrum's own SVHT rank, 286 modes; BENCHMARKS.md, 'conjugacy analyze') and "
            "the refined (rrr) fits cost ~k^4")


def _windows(reader: Any, groups: Sequence[SpectrumGroup], params: Any, window: int,
             settings: Mapping[str, Any], notes: list[str],
             stats: Mapping[str, Any], every: Mapping[str, list[str]] | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Per condition: spectra of consecutive windows (all runs pooled), distances, transitions;
    with two or more conditions, every pair compared window by window over the seeds
    (``between_conditions``: :func:`conjugacy.analysis.windowed.conditions_by_window`); the
    alarms monitor ``every`` run of each condition (default: those of ``groups``). The records
    no window holds are noted (:func:`left_out_note`); ``progress(what, done,
    total)`` after each condition's windows, each (condition, seed) group's windows and each
    window's comparison of the pairs."""
    say = progress or (lambda _what, _done, _total: None)
    d = min(int(settings["delays"]), max(0, (window - 2) // 4))
    if d < settings["delays"]:
        notes.append(f"windows of {window} records use {d} delays (at most (window - 2) // 4)")
    out: dict[str, Any] = {"window": window, "stride": window, "delays": d, "conditions": {}}
    sources: list[tuple[str, Any]] = []  # (label, spectrum) of the windows: rank warnings
    raised: list[str] = []
    pooled = {c: [r for g in groups if g.condition == c for r in g.runs]
              for c in dict.fromkeys(g.condition for g in groups)}
    what = f"windows of {window} records: each of {len(pooled)} conditions, all its runs pooled"
    say(what, 0, len(pooled))
    for i, (c, runs) in enumerate(pooled.items(), 1):
        x = reader.read(params=params, runs=runs, steps=groups[0].slice)
        if x.shape[1] < 2 * window:
            notes.append(f"windows: {c} has {x.shape[1]} records, fewer than two windows of "
                         f"{window}; no windowed analysis")
        else:
            st = np.asarray(reader.steps(runs[0]))[groups[0].slice]  # labels in training steps
            note = left_out_note(x.shape[1], window, st)
            if note is not None and note not in notes:
                notes.append(note)
            with _rank_warnings_held() as held:
                out["conditions"][c] = _pooled_windows(x, st, window, d, int(settings["rank"]),
                                                       sources, c)
            raised.extend(held)
        say(what, i, len(pooled))
    notes.extend(attributed_warnings(sources, raised, "window spectra (seeds pooled)")[0])
    from ..monitor import window_alarms  # alarm step and lead time of runs with an onset

    alarms = window_alarms(reader, dict(every or pooled), params, window,
                           {"delays": d, "rank": int(settings["rank"])})
    if alarms is not None:
        out["alarms"] = alarms
        notes.extend(f"windows, alarms: {n}" for n in alarms.get("notes", []))
    if len(out["conditions"]) >= 2:  # every pair, window by window, against the seed floor
        _window_pairs(reader, groups, params, window, d, int(settings["rank"]), out, notes,
                      stats, say)
    return out


def _window_pairs(reader: Any, groups: Sequence[SpectrumGroup], params: Any, window: int,
                  delays: int, rank: int, out: dict[str, Any], notes: list[str],
                  stats: Mapping[str, Any], say: Callable[[str, int, int], None]) -> None:
    """``_windows``' pairs of conditions window by window (``out["between_conditions"]``):
    each seed's windows (a progress tick per group), then each window's comparison (a tick per
    window); their rank warnings attributed; a note where the steps cannot pair the windows."""
    from .windowed import conditions_by_window, seed_window_spectra

    n = len(out["conditions"])
    fits = (f"windows of {window} records, seed by seed: fitting the windows of each of "
            f"{len(groups)} (condition, seed) groups")
    say(fits, 0, len(groups))
    try:  # a window the conditions' steps cannot pair skips this section only
        with _rank_warnings_held() as held:
            per_seed, steps = seed_window_spectra(reader, groups, params, window, delays, rank,
                                                  progress=lambda i, total: say(fits, i, total))
    except ValueError as exc:
        notes.append(f"windows: conditions not compared window by window: {exc}")
        say(fits, len(groups), len(groups))
        return
    n_pairs = n * (n - 1) // 2
    pairs = (f"windows of {window} records: {n_pairs} pair{'' if n_pairs == 1 else 's'} of "
             f"conditions compared in each of {len(steps)} windows")
    say(pairs, 0, len(steps))
    out["between_conditions"] = conditions_by_window(
        per_seed, steps, window, **stats, progress=lambda i, total: say(pairs, i, total))
    notes.extend(_seed_window_warnings(groups, per_seed, out["between_conditions"], held))


def left_out_note(n_records: int, window: int, steps: Sequence[int] | np.ndarray
                  ) -> str | None:
    """The note naming the records no window of ``window`` records holds
    (:func:`conjugacy.windows.left_out` decides which), in records as ``window`` counts them and
    in the training ``steps`` the window labels use; None when every record is in a window or
    there is no window at all.

    Parameters
    ----------
    n_records : int
        Records of each run used.
    window : int
        Records per window (``analyze``'s ``window``, ``--window``).
    steps : sequence of int, length >= n_records
        The training step of each record.

    Examples
    --------
    >>> which, rest = left_out_note(53, 20, range(0, 530, 10)).split(" in no window ")
    >>> which
    'records 40-52 of 53 (steps 400-520) are'
    >>> rest
    'of 20 records (the windows cover records 0-39, steps 0-390): not analysed'
    >>> left_out_note(40, 20, range(40)) is None
    True
    """
    from ..windows import left_out, plan_windows

    if left_out(n_records, window) is None:
        return None
    last = plan_windows([n_records], window)[-1].stop
    st = [int(v) for v in steps]
    rest = (f"record {last} of {n_records} (step {st[last]}) is" if n_records - last == 1 else
            f"records {last}-{n_records - 1} of {n_records} (steps {st[last]}-"
            f"{st[n_records - 1]}) are")
    return (f"{rest} in no window of {window} records (the windows cover records 0-{last - 1}, "
            f"steps {st[0]}-{st[last - 1]}): not analysed")


def _seed_window_warnings(groups: Sequence[SpectrumGroup], per_seed: Mapping[str, Any],
                          section: Mapping[str, Any], raised: Sequence[str]) -> list[str]:
    """:func:`attributed_warnings` of the seeds' window spectra (``seed_window_spectra``),
    each labelled by condition, seed and window (``section["labels"]``, in training steps)."""
    labels = list(section.get("labels") or [])
    seeds = {c: [g.seed for g in groups if g.condition == c] for c in per_seed}
    sources = [(f"{c} seed {s} (window {labels[w] if w < len(labels) else w})", sp)
               for c, by_seed in per_seed.items() for s, specs in zip(seeds[c], by_seed)
               for w, sp in enumerate(specs)]
    return attributed_warnings(sources, raised, "window spectra")[0]


def _pooled_windows(x: np.ndarray, steps: np.ndarray, window: int, delays: int, rank: int,
                    sources: list[tuple[str, Any]] | None = None, condition: str = ""
                    ) -> dict[str, Any]:
    """One condition's windows (``_windows``): spectra of consecutive windows of its pooled runs
    ``x``, labelled by training ``steps``, their distance matrix and transitions; ``sources``
    receives ``("<condition> (window <label>, seeds pooled)", spectrum)`` of each window."""
    from ..compare import distance_matrix
    from ..windows import find_transitions, windowed_spectra

    specs = windowed_spectra(x, window, delays=delays, rank=min(rank, (delays + 1) * x.shape[2]))
    dm = distance_matrix(specs)
    starts = [int((sp.settings.get("window") or {}).get("start", i * window))
              for i, sp in enumerate(specs)]
    labels = [f"{steps[a]}-{steps[min(a + window, steps.size) - 1]}" for a in starts]
    if sources is not None:
        sources.extend((f"{condition} (window {w}, seeds pooled)", sp)
                       for w, sp in zip(labels, specs))
    return {
        "labels": labels,
        "starts": starts,
        "distance_matrix": dm.tolist(),
        "transitions": find_transitions(dm).as_dict(),
        "eigenvalues": [to_jsonable(sp.eigenvalues) for sp in specs],  # [re, im] pairs
    }


def _flat(meta: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metadata as dotted keys (``{"optimizer": {"lr": 0.1}}`` -> ``optimizer.lr``)."""
    out: dict[str, Any] = {}
    for k, v in meta.items():
        if isinstance(v, Mapping) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def recorded_settings(reader: Any, by_cond: Mapping[str, Mapping[Any, Sequence[str]]],
                      seed_key: str) -> dict[str, dict[str, Any]]:
    """Each condition's recorded settings: the run metadata (dotted keys) whose value is the
    same in every run of the condition, the seed key left out (``results["conditions"]``, shown
    by the report, which also names conditions by the keys that differ between them)."""
    out: dict[str, dict[str, Any]] = {}
    for c, seeds in by_cond.items():
        first, *rest = [_flat(reader.metadata(r)) for runs in seeds.values() for r in runs]
        out[c] = {k: v for k, v in first.items()
                  if k != seed_key and all(k in m and m[k] == v for m in rest)}
    return out


# ----- the analysis -------------------------------------------------------------------------------
def _window_rank(settings: Mapping[str, Any], fitted: Mapping[tuple, Any], notes: list[str],
                 groups: Sequence[SpectrumGroup], window: int) -> int:
    """The fixed rank of the windows: the comparison's rank, or for a rank rule the median of
    the ranks it chose on the whole runs (windows are compared with each other, so they share
    one), at most what a window of one seed allows (its snapshot pairs), with a note when cut."""
    d = min(int(settings["delays"]), max(0, (window - 2) // 4))
    cap = min(len(g.runs) for g in groups) * max(1, window - d - 1)
    if not isinstance(settings["rank"], str):
        k = max(1, min(int(settings["rank"]), cap))
        if k < int(settings["rank"]):
            notes.append(f"windows use rank {k}: the comparison's rank {settings['rank']} is more "
                         f"than the {cap} snapshot pairs of one seed's window")
        return k
    ranks = [sp.rank for sp in fitted.values()]
    k = max(1, min(int(np.median(ranks)), cap))
    notes.append(f"windows use rank {k}: the median of the ranks {settings['rank']} chose on the "
                 f"whole runs ({min(ranks)}-{max(ranks)}), at most the {cap} snapshot pairs of "
                 "one seed's window")
    return k


def _refuse_before_work(reader: Any, groups: Sequence[SpectrumGroup],
                       alarmed: Mapping[str, Sequence[str]]) -> None:
    """Bad input refused before the work estimate and any work (it was found after the fits,
    two lines after the estimate): replicas of a group recorded at different intervals (the
    fits' rule, ``groups._group_steps``) and, for the window alarms, a metadata ``"onset"`` of
    the ``alarmed`` runs that is not a step (:func:`conjugacy.monitor.run_onset`'s rule).
    ValueError naming the group or run."""
    from ..monitor import run_onset
    from .groups import _group_steps

    for g in groups:
        _group_steps(reader, g)
    for r in (r for runs in alarmed.values() for r in runs):
        if reader.metadata(r).get("onset") is not None:
            run_onset(reader, r)


def _check_options(**values: Any) -> None:
    from .._checks import check_int

    lows = {"window": 4, "delays": 0, "n_boot": 0, "n_permutations": 1}
    for name, value in values.items():
        if value is not None:
            check_int(value, name, minimum=lows[name])


def analyze(
    store: Any,
    *,
    group_by: str = "condition",
    seed_key: str = "seed",
    params: str | Sequence[str] | None = None,
    window: int | None = None,
    delays: int | None = None,
    rank: int | str | None = None,
    filter: str = DEFAULT_FILTER,
    alpha: float = 0.05,
    seed: int = 0,
    n_permutations: int = 999,
    time: str = "auto",
    n_boot: int = 0,
    neighbours: bool = True,
    client: Any = None,
    out: str | os.PathLike[str] | None = None,
    report: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> Results:
    """Group the runs of a store into conditions and seeds, compare the conditions, report.

    Parameters
    ----------
    store : path, TrajectoryStore or StudyReader
        A trajectory store (``runs.zarr``), or a study output folder (with ``trajectories/``).
    group_by : str
        Run metadata key of the condition; dotted keys reach into nested metadata.
    seed_key : str
        Run metadata key of the independent seed; runs sharing (condition, seed) are replicas and
        are pooled into one spectrum.
    params : str or list of str, optional
        Recorded parameters (names or globs) that are the observables; default: every recorded
        parameter of the first run.
    window : int, optional
        Also compute spectra of windows of ``window`` records and their transitions.
    delays : int, optional
        Time delays; default: chosen from the data (:func:`pilot_delays`), reasoning in
        ``results["settings_reasoning"]``.
    rank : int or "svht", optional
        Modes kept; default: one rank for every spectrum, the pilots' SVHT rank capped at
        :data:`RANK_CAP` (:func:`pilot_rank`, module docstring); ``"svht"``: per spectrum, uncapped.
    filter : {"none", "per-spectrum", "shared-count"}, default "none"
        What the verdicts compare (:func:`comparison_options`): all eigenvalues, or the
        residual-filtered spectra, each by its own rule or one count for the comparison.
        ``"none"`` separated conditions best on real training runs (:data:`DEFAULT_FILTER`).
    alpha : float
        Level of the permutation test behind the verdicts.
    seed : int
        Seed of every random stream (permutations, shuffles, bootstrap).
    n_permutations : int
        Random relabelings when exact enumeration is too large.
    time : {"auto", "discrete", "continuous"}
        How spectra are compared (:data:`conjugacy.compare.TIMES`): ``"auto"`` compares
        continuous-time exponents ``log(lambda) / interval`` exactly when the spectra were
        recorded at different intervals; ``"discrete"`` the eigenvalues themselves (then differing
        intervals make verdicts undecided, but nothing aliases).
    n_boot : int
        Bootstrap draws over replicas for ``bootstrap_interval`` of each distance (0: none; it
        costs ``2 n_boot`` spectrum fits per pair and seed).
    neighbours : bool, default True
        Refit every comparison at neighbouring settings and report how robust each verdict is
        (``comparison["neighbourhood"]``; up to 2 more fits per spectrum, the delay
        neighbours). The ``interval`` of each distance, always given with 2 or more seeds, is the
        t-interval over independent seeds.
    client : dask.distributed.Client, optional
        Fit the spectra as Dask tasks.
    progress : callable, optional
        ``progress(what, done, total)``: the first call, ``total = 0`` (a message, not a
        stage), estimates the whole work before any pilot is read (:func:`work_estimate`:
        spectra, runs, records, features, bytes to read); then each stage, ``done`` from 0 to
        ``total``: the pilots (the delays' and the rank's, one per condition), the spectra's
        fits, each group's neighbour refits, each condition's windows, each group's windows
        seed by seed, each window's comparison of the pairs, and writing the results
        (``conjugacy analyze`` draws it as progress bars, or plain lines).
    out : path, optional
        Write ``results.json`` (and, with ``report``, ``report.html`` / ``report.md``) there.
    report : bool
        Write the report when ``out`` is given.

    Returns
    -------
    Results
        ``results.json``'s content (schema ``"conjugacy.results/2"``) and the spectra.

    Raises
    ------
    FileNotFoundError
        If the store does not exist.
    ValueError
        If no run has the ``group_by`` key (the message lists the keys runs have), a run lacks
        ``seed_key``, the runs are too short, or a setting is out of range.

    Examples
    --------
    >>> import tempfile
    >>> from conjugacy.analysis.demo import decay_store
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = decay_store(f"{tmp.name}/runs.zarr")  # 2 conditions x 4 seeds, 30 records
    >>> from conjugacy import analyze
    >>> results = analyze(path, delays=0, rank=1, neighbours=False)  # out=FOLDER: also write
    >>> print(results)
    Results('analyze': 2 conditions ['fast', 'slow'], 4 seeds each, 8 runs)
      fast vs slow: not conjugate. Spectra of different conditions lie farther apart than ...
    >>> tmp.cleanup()
    """
    from .pipeline import run_pipeline

    _check_options(window=window, delays=delays, n_boot=n_boot, n_permutations=n_permutations)
    rank = check_rank(rank)
    compare_with = comparison_options(filter)
    check_unit_interval(alpha, "alpha")
    check_choice(time, "time", TIMES)
    t0 = perf_counter()
    reader, source = _reader(store)
    notes: list[str] = []
    try:
        every: dict[str, list[str]] = {}  # all runs of each condition (the window alarms)
        by_cond, snapshots = _group(reader, source, group_by, seed_key, notes, out, every)
        members = [r for seeds in by_cond.values() for runs in seeds.values() for r in runs]
        n_records, info = _records(reader, by_cond, notes, time)
        if params is None:
            params = list(info[members[0]]["parameters"])
        groups = [SpectrumGroup(c, s, tuple(runs), steps=(0, n_records))
                  for c, seeds in by_cond.items() for s, runs in seeds.items()]
        _refuse_before_work(reader, groups, every if window is not None else {})
        say = progress or (lambda _what, _done, _total: None)
        sample = reader.read(params=params, runs=[members[0]], steps=slice(0, 2))
        n_features, choosing = sample.shape[2], delays is None or rank is None
        estimate = work_estimate(groups, n_records, n_features, sample.dtype, choosing,
                                 neighbours, PILOT_SEEDS if delays is None else 1)
        say(estimate, 0, 0)  # a message, once, before any work (total 0)
        pilots = ("choosing the " + " and ".join(
            ([f"delays from the first {PILOT_SEEDS} seeds"] if delays is None else [])
            + (["rank from the first seed"] if rank is None else []))
            + f" of each of {len(by_cond)} conditions, pilot by pilot")
        settings, reasoning, rank_rule = choose_settings(
            reader, groups, params, delays, rank, notes,
            progress=lambda done, total: say(pilots, done, total))
        reasoning["filter"] = _filter_reason(filter)
        what = (f"fitting {len(groups)} spectra "
                f"({len(members)} runs x {n_records} records x {n_features} features; delays "
                f"{settings['delays']}, rank {settings['rank']})")
        say(what, 0, len(groups))
        done = iter(range(1, len(groups) + 1))
        fit = {**settings, "modes": False}
        stats = {"alpha": alpha, "seed": seed, "n_permutations": n_permutations, "time": time}
        res = run_pipeline(
            reader, groups, fit, params=params, client=client, n_boot=n_boot,
            progress=lambda _g: say(what, next(done), len(groups)), neighbours=neighbours,
            neighbour_progress=lambda i, n: say(
                f"checking the verdicts: refitting {n} spectra at their neighbouring settings "
                "(delays x1/2, x2 where the delays allow; rank x0.8, x1.25; the other filter "
                "without a refit)", i, n),
            window=None if window is None else (
                lambda f: _windows(reader, groups, params, window,
                                   {**settings,
                                    "rank": _window_rank(settings, f, notes, groups, window)},
                                   notes, stats, every, say)),
            experiment="analyze", title=f"conjugacy analyze: {Path(source).name}",
            question=f"are the training dynamics of the conditions ({group_by}) equivalent?",
            settings={**settings, "method": "rrr",
                      **({} if rank_rule is None else {"rank_rule": rank_rule})},
            stats={**stats, **compare_with},
            fields={"store": source, "group_by": group_by, "seed_key": seed_key,
                    "settings_reasoning": reasoning,
                    "n_features": n_features, "n_records": n_records, "n_boot": n_boot},
            conditions=recorded_settings(reader, by_cond, seed_key),
            notes=notes, timing={"reading_and_settings": perf_counter() - t0})
    finally:
        reader.close()
    _attribute_fit_warnings(res.content, res.spectra)
    if out is not None and snapshots:
        _spectral_dynamics(store, Path(out), res.content)
    res.content["timing_seconds"]["total"] = perf_counter() - t0
    if out is not None:
        writing = f"writing results.json{' and the report' if report else ''} to {out}"
        say(writing, 0, 1)
        res.write(out, report=report)
        say(writing, 1, 1)
    return res


def _spectral_dynamics(store: Any, out: Path, results: dict[str, Any]) -> None:
    """Spectral dynamics of the checkpoint runs (:mod:`conjugacy.analysis.checkpoints`: singular
    values, effective rank, alignment, singular vector agreement) into
    ``OUT/spectral_dynamics/``; its PNG figures are listed in ``results["figures"]`` so the report
    embeds them."""
    from .checkpoints import spectral_dynamics_report

    try:
        sd = spectral_dynamics_report(store, out / "spectral_dynamics")
    except ValueError as exc:  # e.g. checkpoint runs without 2-D weights
        results["warnings"].append(f"spectral dynamics of the checkpoint runs failed: {exc}")
        return
    results["sections"]["spectral_dynamics"] = {
        "results": "spectral_dynamics/results.json",
        "n_checkpoint_runs": len(sd.content["sections"]["runs"])}
    results["figures"] = [*(results.get("figures") or []),
                          *[f"spectral_dynamics/{f}" for f in sd.content["figures"]
                            if f.lower().endswith(".png")]]
