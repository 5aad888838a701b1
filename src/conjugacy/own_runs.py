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

   - ``delays``: the paper scales delays inversely with the observed width (64 / 32 / 8 delays
     for 50 / 100 / 400 output weights, fig. 3), i.e. about 3,200 delay-embedded observables;
     ``delays = round(3200 / n_features)``, at least 1, at most 64 (the paper's largest) and at
     most ``(T - 2) // 4`` (each run keeps three quarters of its records as snapshot pairs).
   - ``rank``: from the singular values of the delay-embedded snapshots of the first seed of
     each condition: the number above ``1e-3 s_1`` (the largest over conditions, so that no
     condition is under-resolved), between 4 and 20. The residual filter of the comparison
     (:meth:`Spectrum.filtered`, data residuals) then keeps only the eigenpairs the data support,
     so an over-generous rank costs time, not correctness.
4. **Comparison**: :func:`conjugacy.analysis.compare_conditions` (distances per seed, between-seed
   noise floor, permutation test with effect size and smallest attainable p, the paper's shuffle
   control and KS tests, classes of conditions, verdicts on the filtered spectra), plus a 95%
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
import math
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["AnalysisResults", "analyze", "choose_delays", "choose_rank"]

#: Delay-embedded observables the default delays aim at (the paper's FCN rule, see the module).
TARGET_OBSERVABLES = 3200
MAX_DELAYS = 64
RANK_RELATIVE_SV = 1e-3
RANK_BOUNDS = (4, 20)


# ----- settings -----------------------------------------------------------------------------------
def choose_delays(n_features: int, n_records: int) -> tuple[int, str]:
    """Default delays for ``n_features`` observables and runs of ``n_records`` records, and why.

    ``round(3200 / n_features)`` clipped to ``[1, min(64, (n_records - 2) // 4)]`` (see the
    module docstring). Raises ValueError if the runs are too short for 1 delay (< 6 records).
    """
    cap = min(MAX_DELAYS, (n_records - 2) // 4)
    if cap < 1:
        raise ValueError(
            f"the runs hold {n_records} records; at least 6 are needed for one delay "
            "(record more steps, or pass delays=0)")
    raw = max(1, round(TARGET_OBSERVABLES / n_features))
    d = int(min(raw, cap))
    why = (f"{d} delays: about {TARGET_OBSERVABLES} delay-embedded observables for "
           f"{n_features} features (the paper's FCN rule: delays x width fixed; "
           f"round({TARGET_OBSERVABLES}/{n_features}) = {raw})")
    if d < raw:
        why += (f", capped at {cap} (at most 64, and (T - 2) // 4 with T = {n_records} records so "
                "that each run keeps three quarters of its records as snapshot pairs)")
    return d, why


def choose_rank(pilots: Mapping[str, np.ndarray], delays: int) -> tuple[int, str]:
    """Default rank from pilot trajectories (condition -> (n_runs, n_steps, n_features)), and why.

    For each condition the delay-embedded snapshots' singular values are computed; the rank is the
    largest count of values above ``1e-3 s_1`` over conditions, clipped to [4, 20] and to what the
    data can hold (observables and snapshot pairs).
    """
    from .observables import delay_embed

    counts: dict[str, int] = {}
    limit = math.inf
    for c, traj in pilots.items():
        x, _ = delay_embed(traj, delays)
        s = np.linalg.svd(x, compute_uv=False)
        counts[c] = int(np.count_nonzero(s > RANK_RELATIVE_SV * s[0])) if s.size and s[0] > 0 else 0
        limit = min(limit, x.shape[0], x.shape[1])
    lo, hi = RANK_BOUNDS
    k = int(min(max(max(counts.values(), default=lo), lo), hi, limit))
    why = (f"rank {k}: singular values of the delay-embedded snapshots above "
           f"{RANK_RELATIVE_SV:g} s_1 on the first seed of each condition "
           f"({', '.join(f'{c}: {n}' for c, n in counts.items())}); the largest count, kept within "
           f"[{lo}, {hi}] and the data's size; the residual filter then keeps the eigenpairs the "
           "data support")
    return k, why


# ----- reading the runs ---------------------------------------------------------------------------
def _reader(store: Any) -> tuple[Any, str]:
    """A :class:`~conjugacy.study.StudyReader` over ``store`` (path, store or reader), and its name."""
    from .store import TrajectoryStore
    from .study import STORES_DIR, StudyReader

    if isinstance(store, StudyReader):
        return store, "study"
    if isinstance(store, TrajectoryStore):
        return StudyReader({r: store.path for r in store.runs()}), str(store.path)
    if not isinstance(store, str | os.PathLike):
        raise TypeError(f"store must be a path, a TrajectoryStore or a StudyReader, got "
                        f"{type(store).__name__}")
    path = Path(store)
    if not path.exists():
        raise FileNotFoundError(f"store {str(path)!r} does not exist")
    if (path / STORES_DIR).is_dir():
        return StudyReader.open(path), str(path)
    with TrajectoryStore.open(path, "r") as st:
        runs = st.runs()
    return StudyReader({r: path for r in runs}), str(path)


_MISSING = object()


def _lookup(meta: Mapping[str, Any], key: str) -> Any:
    """``meta[key]``, or through nested dicts for a dotted key (``"optimizer.class"``)."""
    if key in meta:
        return meta[key]
    value: Any = meta
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _label(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _sort_key(value: Any) -> tuple:
    return (0, float(value), "") if isinstance(value, int | float) and not isinstance(
        value, bool) else (1, 0.0, _label(value))


# ----- results object -----------------------------------------------------------------------------
class AnalysisResults:
    """What :func:`analyze` found: the results dict (as written to ``results.json``) and the spectra.

    Attributes
    ----------
    results : dict
        JSON types; schema in :mod:`conjugacy.report`.
    spectra : dict condition -> list of Spectrum
        One per seed (replicas pooled), in the results' seed order.
    out_dir : Path or None
        Where ``results.json`` (and the report) were written.
    report : (Path, Path) or None
        ``report.html`` and ``report.md``.
    """

    def __init__(self, results: dict[str, Any], spectra: dict[str, list[Any]],
                 out_dir: Path | None = None, report: tuple[Path, Path] | None = None) -> None:
        self.results = results
        self.spectra = spectra
        self.out_dir = out_dir
        self.report = report

    @property
    def verdicts(self) -> dict[str, str | None]:
        """Pair name -> ``"conjugate"``, ``"not conjugate"`` or None (not tested)."""
        cmp = self.results.get("comparison") or {}
        return {k: v.get("verdict") for k, v in (cmp.get("verdicts") or {}).items()}

    def verdict_lines(self) -> list[str]:
        """One plain-words sentence per pair of conditions, with its numbers."""
        from .report import verdicts

        return [r["sentence"] for r in verdicts(self.results)]

    def write(self, out_dir: str | os.PathLike[str], report: bool = True) -> Path:
        """Write ``results.json`` (and the report) to ``out_dir``; returns the JSON path."""
        from .results import write_json

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = write_json(out / "results.json", self.results)
        self.out_dir = out
        if report:
            from .report import write_report

            self.report = write_report(self.results, out, source_dir=out)
        return path

    def __repr__(self) -> str:
        cmp = self.results.get("comparison") or {}
        conds = list(self.spectra)
        head = (f"AnalysisResults({len(conds)} conditions {conds}, "
                f"{len(next(iter(self.spectra.values()), []))} seeds each, "
                f"{len(self.results.get('runs', []))} runs)")
        lines = [head]
        if cmp:
            lines += [f"  {s}" for s in self.verdict_lines()]
        warns = self.results.get("warnings") or []
        lines += [f"  warning: {w}" for w in warns[:5]]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        from .report import comparison_rows, verdicts

        e = html.escape
        parts = [f"<p><b>{e(self.__repr__().splitlines()[0])}</b></p>"]
        if self.results.get("comparison"):
            parts.append("<ul>" + "".join(
                f"<li><b>{e(r['a'])} vs {e(r['b'])}: {e(r['verdict'] or 'not tested')}.</b> "
                f"{e(r['explanation'])}</li>" for r in verdicts(self.results)) + "</ul>")
            rows = comparison_rows(self.results)
            parts.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in rows[0]) + "</tr>"
                         + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>"
                                   for r in rows[1:]) + "</table>")
        head = "".join(f"<th>{e(c)}</th>" for c in ("condition", "seed", "eigenvalues (|λ| desc.)"))
        body = ""
        for c, specs in self.spectra.items():
            for s, sp in enumerate(specs):
                eig = ", ".join(f"{z.real:.4f}{z.imag:+.4f}j" for z in sp.eigenvalues[:8])
                more = " ..." if len(sp.eigenvalues) > 8 else ""
                body += f"<tr><td>{e(c)}</td><td>{s}</td><td>{e(eig + more)}</td></tr>"
        parts.append(f"<table><tr>{head}</tr>{body}</table>")
        warns = self.results.get("warnings") or []
        if warns:
            parts.append("<ul>" + "".join(f"<li>warning: {e(w)}</li>" for w in warns) + "</ul>")
        return "\n".join(parts)


# ----- the analysis -------------------------------------------------------------------------------
def analyze(
    store: Any,
    *,
    group_by: str = "condition",
    seed_key: str = "seed",
    params: str | Sequence[str] | None = None,
    window: int | None = None,
    delays: int | None = None,
    rank: int | None = None,
    alpha: float = 0.05,
    seed: int = 0,
    n_permutations: int = 999,
    n_boot: int = 0,
    out: str | os.PathLike[str] | None = None,
    report: bool = True,
) -> AnalysisResults:
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
    delays, rank : int, optional
        Spectrum settings; default: chosen from the data (module docstring), reasoning in
        ``results["settings_reasoning"]``.
    alpha : float
        Level of the permutation test behind the verdicts.
    seed : int
        Seed of every random stream (permutations, shuffles, bootstrap).
    n_permutations : int
        Random relabelings when exact enumeration is too large.
    n_boot : int
        Bootstrap draws over replicas for ``bootstrap_interval`` of each distance (0: none; it
        costs ``2 n_boot`` spectrum fits per pair and seed). The ``interval`` of each distance,
        always given with 2 or more seeds, is the t-interval over independent seeds.
    out : path, optional
        Write ``results.json`` (and, with ``report``, ``report.html`` / ``report.md``) there.
    report : bool
        Write the report when ``out`` is given.

    Returns
    -------
    AnalysisResults

    Raises
    ------
    FileNotFoundError
        If the store does not exist.
    ValueError
        If no run has the ``group_by`` key (the message lists the keys runs have), a run lacks
        ``seed_key``, the runs are too short, or a setting is out of range.
    """
    from .analysis import compare_conditions, spectra_to_json
    from .results import to_jsonable
    from .spectrum import koopman_spectrum

    for name, value, low in (("window", window, 4), ("delays", delays, 0), ("rank", rank, 1),
                             ("n_boot", n_boot, 0), ("n_permutations", n_permutations, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < low):
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not (isinstance(alpha, float | int) and 0 < alpha < 1):
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    t0 = time.perf_counter()
    reader, source = _reader(store)
    notes: list[str] = []
    try:
        runs = reader.runs()
        if not runs:
            raise ValueError(f"store {source!r} holds no runs")
        metas = {r: reader.metadata(r) for r in runs}
        snapshots = [r for r in runs if metas[r].get("kind") == "checkpoints"
                     or "checkpoints_of" in metas[r]]
        if snapshots:  # weight snapshots of conjugacy.torch.snapshots, not trajectories
            notes.append(f"{len(snapshots)} checkpoint run(s) (e.g. {snapshots[0]!r}) are not "
                         "trajectories: left out of the spectra"
                         + ("; their spectral dynamics are in spectral_dynamics/" if out is not None
                            else "; `conjugacy spectral-dynamics` analyses them"))
        used = [r for r in runs if r not in snapshots
                and _lookup(metas[r], group_by) is not _MISSING]
        if not used:
            keys = sorted({k for m in metas.values() for k in m})
            raise ValueError(
                f"no run of {source!r} has the metadata key {group_by!r} (group_by); the runs have "
                f"{keys}. Record it with Recorder(..., metadata={{{group_by!r}: ...}}) or choose "
                "another key (dotted keys reach into nested metadata, e.g. optimizer.class)")
        left_out = [r for r in runs if r not in used and r not in snapshots]
        if left_out:
            notes.append(f"{len(left_out)} run(s) without metadata {group_by!r} left out: "
                         + ", ".join(left_out[:6]) + (" ..." if len(left_out) > 6 else ""))
        groups: dict[str, dict[Any, list[str]]] = {}
        for r in used:
            s = _lookup(metas[r], seed_key)
            if s is _MISSING:
                raise ValueError(
                    f"run {r!r} has no metadata {seed_key!r} (seed_key); it has {sorted(metas[r])}")
            groups.setdefault(_label(_lookup(metas[r], group_by)), {}).setdefault(s, []).append(r)
        conditions = sorted(groups, key=lambda c: _sort_key(c))
        seed_lists = {c: sorted(groups[c], key=_sort_key) for c in conditions}
        n_seeds = min(len(v) for v in seed_lists.values())
        if len({len(v) for v in seed_lists.values()}) > 1:
            notes.append("conditions have different numbers of seeds ("
                         + ", ".join(f"{c}: {len(v)}" for c, v in seed_lists.items())
                         + f"); the first {n_seeds} of each are compared")
        seed_lists = {c: v[:n_seeds] for c, v in seed_lists.items()}
        members = [r for c in conditions for s in seed_lists[c] for r in groups[c][s]]
        info = {r: reader.run_info(r) for r in members}
        n_records = min(info[r]["n_complete"] for r in members)
        longest = max(info[r]["n_complete"] for r in members)
        if n_records < 6:
            short = [r for r in members if info[r]["n_complete"] == n_records]
            raise ValueError(f"run {short[0]!r} holds {n_records} records; at least 6 are needed")
        if longest > n_records:
            notes.append(f"runs hold {n_records} to {longest} records; every spectrum uses the "
                         f"first {n_records} records of each run")
        ref_steps = reader.steps(members[0])[:n_records]
        odd = [r for r in members if not np.array_equal(reader.steps(r)[:n_records], ref_steps)]
        if odd:
            notes.append(f"{len(odd)} run(s) recorded other steps than {members[0]!r} (e.g. "
                         f"{odd[0]!r}); their records are compared position by position")
        unfinished = [r for r in members if not info[r]["finished"]]
        if unfinished:
            notes.append(f"{len(unfinished)} run(s) are not marked finished (training stopped or "
                         "still running): " + ", ".join(unfinished[:6])
                         + (" ..." if len(unfinished) > 6 else ""))
        if params is None:
            params = list(info[members[0]]["parameters"])
        steps = slice(0, n_records)

        def read(run_names: Sequence[str]) -> np.ndarray:
            return reader.read(params=params, runs=list(run_names), steps=steps, dtype=np.float64)

        pilots = {c: read(groups[c][seed_lists[c][0]]) for c in conditions}
        n_features = next(iter(pilots.values())).shape[2]
        reasoning = {}
        if delays is None:
            delays, reasoning["delays"] = choose_delays(n_features, n_records)
        else:
            reasoning["delays"] = f"{delays} delays: given"
        if rank is None:
            rank, reasoning["rank"] = choose_rank(pilots, delays)
        else:
            reasoning["rank"] = f"rank {rank}: given"
        settings = {"delays": delays, "rank": rank}
        t1 = time.perf_counter()
        spectra: dict[str, list[Any]] = {}
        trajs: dict[tuple[str, int], np.ndarray] = {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for c in conditions:
                spectra[c] = []
                for i, s in enumerate(seed_lists[c]):
                    x = pilots[c] if i == 0 else read(groups[c][s])
                    trajs[(c, i)] = x
                    spectra[c].append(koopman_spectrum(x, modes=False, **settings))
        t2 = time.perf_counter()
        results: dict[str, Any] = {
            "title": f"conjugacy analyze: {Path(source).name}",
            "question": f"are the training dynamics of the conditions ({group_by}) equivalent?",
            "store": source,
            "group_by": group_by,
            "seed_key": seed_key,
            "observables": [params] if isinstance(params, str) else list(params),
            "n_features": int(n_features),
            "n_records": int(n_records),
            "settings": {**settings, "method": "rrr", "alpha": alpha,
                         "n_permutations": n_permutations, "n_boot": n_boot, "seed": seed},
            "settings_reasoning": reasoning,
            "seeds": {c: [to_jsonable(s) for s in seed_lists[c]] for c in conditions},
            "runs": [
                {"run": r, "condition": c, "seed": to_jsonable(s),
                 "n_complete": int(info[r]["n_complete"]),
                 "first_step": int(reader.steps(r)[0]), "last_step": int(reader.steps(r)[-1]),
                 "finished": bool(info[r]["finished"])}
                for c in conditions for s in seed_lists[c] for r in groups[c][s]],
            "spectra": spectra_to_json(spectra),
        }
        if len(conditions) >= 2:
            cmp = compare_conditions(spectra, alpha=alpha, seed=seed,
                                     n_permutations=n_permutations)
            _seed_intervals(cmp)
            if n_boot:
                _add_bootstrap(cmp, trajs, n_seeds, settings, n_boot, seed)
            results["comparison"] = cmp
        else:
            notes.append(f"only one condition ({conditions[0]!r}): nothing to compare; the "
                         "report shows its spectra")
        t3 = time.perf_counter()
        results["loss"] = _losses(reader, groups, seed_lists, conditions, n_records)
        if window is not None:
            results["windows"] = _windows(trajs, conditions, n_seeds, window, settings, notes)
        t4 = time.perf_counter()
        notes.extend(dict.fromkeys(str(w.message) for w in caught))
        results["warnings"] = notes
        results["timing_seconds"] = {"reading_and_settings": t1 - t0, "spectra": t2 - t1,
                                     "statistics": t3 - t2, "windows_and_losses": t4 - t3}
        from .results import package_info

        results["provenance"] = {"package": package_info()}
    finally:
        reader.close()
    res = AnalysisResults(results, spectra)
    if out is not None and snapshots:
        _spectral_dynamics(store, Path(out), results)
    if out is not None:
        res.write(out, report=report)
        results["timing_seconds"]["total"] = time.perf_counter() - t0
        res.write(out, report=False)  # the total, once the report is written
    else:
        results["timing_seconds"]["total"] = time.perf_counter() - t0
    return res


def _spectral_dynamics(store: Any, out: Path, results: dict[str, Any]) -> None:
    """Spectral dynamics of the checkpoint runs (:mod:`conjugacy.experiments.spectral_dynamics`:
    singular values, effective rank, alignment, singular vector agreement) into
    ``OUT/spectral_dynamics/``; its PNG figures are listed in ``results["figures"]`` so the report
    embeds them."""
    from .experiments.spectral_dynamics import spectral_dynamics_report

    target = out / "spectral_dynamics"
    try:
        sd = spectral_dynamics_report(store, target)
    except ValueError as exc:  # e.g. checkpoint runs without 2-D weights
        results["warnings"].append(f"spectral dynamics of the checkpoint runs failed: {exc}")
        return
    pngs = [Path(f) for f in sd.get("figures") or [] if str(f).lower().endswith(".png")]
    results["spectral_dynamics"] = {"results": "spectral_dynamics/results.json",
                                    "n_checkpoint_runs": len(sd.get("runs") or {})}
    results["figures"] = [*(results.get("figures") or []),
                          *[p.resolve().relative_to(out.resolve()).as_posix() for p in pngs]]


def _seed_intervals(cmp: dict[str, Any]) -> None:
    """95% t-interval of the mean per-seed distance of each pair, from the spread over independent
    seeds (``mean +- t_{n-1, 0.975} std / sqrt(n)``, ``std`` with ``n - 1``), into both comparisons.
    Seeds are independent, so this is the interval of the distance a new seed would average to;
    it needs 2 or more seeds."""
    from scipy.stats import t as student

    for uses in ("all", "filtered"):
        block = cmp.get(uses)
        if not block:
            continue
        for entry in block["distances"].values():
            d = np.asarray(entry["per_seed"], float)
            if "interval" in entry or d.size < 2 or not np.isfinite(d).all():
                continue
            half = float(student.ppf(0.975, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size))
            entry["interval"] = [max(0.0, float(d.mean()) - half), float(d.mean()) + half]
            entry["interval_rule"] = (f"95% t-interval of the mean over {d.size} independent seeds "
                                      "(lower end clipped at 0)")


def _add_bootstrap(cmp: dict[str, Any], trajs: Mapping[tuple[str, int], np.ndarray],
                   n_seeds: int, settings: Mapping[str, Any], n_boot: int, seed: int) -> None:
    """Bootstrap intervals of the mean per-seed distance of each pair over *replicas* (into
    ``bootstrap_interval`` of the distances the verdicts use): per seed, :func:`bootstrap_distance`
    resamples the replicas of both conditions; draw ``b`` of the mean is the mean over seeds of
    draw ``b`` of each seed. It shows the sampling noise of the fits at fixed seeds (costly:
    ``2 n_boot`` spectrum fits per pair and seed)."""
    from .uncertainty import bootstrap_distance

    uses = cmp.get("verdict_uses", "all")
    filt = "default" if uses == "filtered" else None
    for i, (name, (a, b)) in enumerate(cmp["pairs"].items()):
        entry = cmp[uses]["distances"][name]
        if any(trajs[(c, s)].shape[0] < 2 for c in (a, b) for s in range(n_seeds)):
            entry["bootstrap_note"] = "no bootstrap: it needs at least 2 replicas per seed"
            continue
        draws = []
        for s in range(n_seeds):
            iv = bootstrap_distance(trajs[(a, s)], trajs[(b, s)], n_boot=n_boot,
                                    seed=seed * 1_000_003 + 1009 * i + s, filter=filt,
                                    **settings)
            draws.append(np.asarray(iv.samples, float))
        mean = np.nanmean(np.vstack(draws), axis=0)
        finite = mean[np.isfinite(mean)]
        if finite.size:
            lo, hi = np.quantile(finite, [0.025, 0.975])
            entry["bootstrap_interval"] = [float(lo), float(hi)]
            entry["bootstrap_rule"] = (f"95% percentile bootstrap of the mean over seeds "
                                       f"({n_boot} draws; replicas resampled within each seed)")


def _losses(reader: Any, groups: Mapping[str, Mapping[Any, list[str]]],
            seed_lists: Mapping[str, Sequence[Any]], conditions: Sequence[str],
            n_records: int) -> dict[str, Any]:
    """Mean and std over runs of the scalar ``loss`` per condition (records 1..T-1)."""
    out = {}
    for c in conditions:
        curves, steps = [], None
        for s in seed_lists[c]:
            for r in groups[c][s]:
                try:
                    y = reader.scalars(r, "loss")[:n_records]
                except Exception:  # noqa: BLE001 - a run without a loss: no curve, not an error
                    continue
                curves.append(y[1:])
                steps = reader.steps(r)[1:n_records]
        if curves and steps is not None and len(steps):
            y = np.vstack(curves)
            if np.isfinite(y).any():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    out[c] = {"steps": [int(t) for t in steps],
                              "mean": [float(v) for v in np.nanmean(y, axis=0)],
                              "std": [float(v) for v in np.nanstd(y, axis=0)],
                              "n_runs": int(y.shape[0])}
    return out


def _windows(trajs: Mapping[tuple[str, int], np.ndarray], conditions: Sequence[str], n_seeds: int,
             window: int, settings: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    """Per condition: spectra of consecutive windows (all runs pooled), distances, transitions."""
    from .compare import distance_matrix
    from .windows import find_transitions, windowed_spectra

    d = min(int(settings["delays"]), max(0, (window - 2) // 4))
    if d < settings["delays"]:
        notes.append(f"windows of {window} records use {d} delays (at most (window - 2) // 4)")
    out: dict[str, Any] = {"window": window, "stride": window, "delays": d, "conditions": {}}
    for c in conditions:
        x = np.concatenate([trajs[(c, s)] for s in range(n_seeds)], axis=0)
        if x.shape[1] < 2 * window:
            notes.append(f"windows: {c} has {x.shape[1]} records, fewer than two windows of "
                         f"{window}; no windowed analysis")
            continue
        specs = windowed_spectra(x, window, delays=d, rank=min(int(settings["rank"]),
                                                                (d + 1) * x.shape[2]))
        dm = distance_matrix(specs)
        tr = find_transitions(dm)
        starts = [int(sp.settings.get("window", {}).get("start", i * window))
                  if isinstance(sp.settings.get("window"), Mapping) else i * window
                  for i, sp in enumerate(specs)]
        out["conditions"][c] = {
            "labels": [f"{a}-{a + window - 1}" for a in starts],
            "starts": starts,
            "distance_matrix": dm.tolist(),
            "transitions": tr.as_dict(),
            "eigenvalues": [[[float(z.real), float(z.imag)] for z in sp.eigenvalues]
                            for sp in specs],
        }
    return out
