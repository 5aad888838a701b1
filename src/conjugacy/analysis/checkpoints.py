"""The spectral-dynamics report over any store: checkpoints to singular values, effective rank,
alignment and agreement (companion paper, ``SPEC.md`` section 6).

:func:`spectral_dynamics_report` reads every checkpoint run (``<run>.checkpoints``, written by
:class:`conjugacy.torch.snapshots.CheckpointRecorder`) of a store or of a study's output folder,
computes every measure with :func:`conjugacy.spectral_dynamics.checkpoint_dynamics` (singular
values, effective rank, agreement with the final checkpoint, alignment of the layer pairs that
chain; skipped pairs are listed with their reason), aggregates runs of one condition (mean +- std
over seeds), reads linear-mode-connectivity branches (runs with ``lmc`` metadata), draws the
figures and writes ``results.json``; :func:`evaluate_findings` tests the companion paper's four
findings on these measures. NumPy, Zarr and Matplotlib only: no torch. Used by
``conjugacy analyze`` (checkpoint runs of a store), ``conjugacy spectral-dynamics`` and the
reproduction :mod:`conjugacy.experiments.spectral_dynamics`.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..spectral_dynamics import (
    TOP_K,
    checkpoint_dynamics,
    singular_vector_agreement,
)
from .pipeline import summarize_sections
from .results import Results

__all__ = [
    "checkpoint_runs",
    "checkpoint_sections",
    "evaluate_findings",
    "open_source",
    "read_checkpoints",
    "spectral_dynamics_report",
]

CHECKPOINT_SUFFIX = ".checkpoints"  # = conjugacy.torch.snapshots.CHECKPOINT_SUFFIX (no torch here)


# ============================================================================ reading
def open_source(source: Any) -> Any:
    """A reader over ``source``: a store path, a study output folder (``OUT/trajectories``), or
    an open :class:`~conjugacy.store.TrajectoryStore` / :class:`~conjugacy.study.StudyReader`.

    Raises
    ------
    FileNotFoundError
        If the path does not exist or is neither a store nor a study folder.

    Examples
    --------
    >>> import tempfile
    >>> from conjugacy.analysis.demo import checkpoint_store
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = checkpoint_store(f"{tmp.name}/runs.zarr")  # 2 seeds of a 3-layer MLP, 3 checkpoints
    >>> with open_source(path) as reader:
    ...     print(type(reader).__name__, checkpoint_runs(reader))
    TrajectoryStore {'s0.checkpoints': 's0', 's1.checkpoints': 's1'}
    >>> tmp.cleanup()
    """
    if hasattr(source, "runs") and hasattr(source, "read") and hasattr(source, "run_info"):
        return source
    if not isinstance(source, str | os.PathLike):
        raise TypeError(f"source must be a path, a TrajectoryStore or a StudyReader, got {source!r}")
    p = Path(source)
    if not p.exists():
        raise FileNotFoundError(f"{str(p)!r} does not exist")
    if (p / "trajectories").is_dir():
        from ..study import StudyReader

        return StudyReader.open(p)
    if (p / "zarr.json").is_file():
        from ..store import TrajectoryStore

        return TrajectoryStore.open(p, "r")
    raise FileNotFoundError(
        f"{str(p)!r} is neither a trajectory store (no zarr.json) nor a study output folder (no "
        "trajectories/ folder)"
    )


def is_checkpoint_run(metadata: Mapping[str, Any]) -> bool:
    """Whether a run's ``metadata`` marks it as weight checkpoints
    (:mod:`conjugacy.torch.snapshots`: ``kind="checkpoints"`` or ``checkpoints_of``), not a
    trajectory: the one rule of :func:`checkpoint_runs` and ``conjugacy analyze``'s grouping."""
    return metadata.get("kind") == "checkpoints" or "checkpoints_of" in metadata


def checkpoint_runs(reader: Any) -> dict[str, str]:
    """Checkpoint runs of a reader: ``{checkpoint_run: the run it belongs to}``, sorted.

    Examples
    --------
    >>> import tempfile
    >>> from conjugacy.analysis.demo import checkpoint_store
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = checkpoint_store(f"{tmp.name}/runs.zarr")  # 2 seeds of a 3-layer MLP, 3 checkpoints
    >>> with open_source(path) as reader:
    ...     checkpoint_runs(reader)
    {'s0.checkpoints': 's0', 's1.checkpoints': 's1'}
    >>> tmp.cleanup()
    """
    out = {}
    for r in reader.runs():
        meta = reader.run_info(r)["metadata"]
        if is_checkpoint_run(meta):
            out[r] = str(meta.get("checkpoints_of", r.removesuffix(CHECKPOINT_SUFFIX)))
    return out


def read_checkpoints(reader: Any, run: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Steps ``(n_ckpt,)`` and ``{name: (n_ckpt, *shape)}`` of a checkpoint run, in recorded order.

    Examples
    --------
    >>> import tempfile
    >>> from conjugacy.analysis.demo import checkpoint_store
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = checkpoint_store(f"{tmp.name}/runs.zarr")  # 2 seeds of a 3-layer MLP, 3 checkpoints
    >>> with open_source(path) as reader:
    ...     steps, arrays = read_checkpoints(reader, "s0.checkpoints")
    >>> steps, {name: a.shape for name, a in arrays.items()}
    (array([ 0,  5, 10]), {'0.weight': (3, 8, 4), '2.weight': (3, 8, 8), '4.weight': (3, 2, 8)})
    >>> tmp.cleanup()
    """
    info = reader.run_info(run)
    steps = np.asarray(reader.steps(run))
    return steps, {name: reader.read(params=glob.escape(name), runs=run)[0].reshape(
        len(steps), *p["shape"]) for name, p in info["parameters"].items()}


def _group_key(meta: Mapping[str, Any]) -> tuple[str, Any]:
    return str(meta.get("condition", "all")), meta.get("seed")


# ============================================================================ the report
def _stats(arrays: Sequence[np.ndarray]) -> dict[str, list[float]]:
    a = np.stack(arrays)
    return {"mean": a.mean(axis=0).tolist(), "std": a.std(axis=0).tolist()}


def _lmc_section(reader: Any, max_rank: int, k: int) -> dict[str, Any] | None:
    """Barrier (from run metadata) and endpoint agreement of branch pairs (``lmc`` metadata)."""
    pairs: dict[str, list[str]] = {}
    metas = {}
    for r in reader.runs():
        meta = reader.run_info(r)["metadata"]
        if isinstance(meta.get("lmc"), Mapping):
            pairs.setdefault(str(meta["lmc"]["pair"]), []).append(r)
            metas[r] = meta
    if not pairs:
        return None
    rows = []
    for pair, runs in sorted(pairs.items()):
        if len(runs) != 2:
            continue
        a, b = sorted(runs)
        lm = metas[a]["lmc"]
        info = reader.run_info(a)
        agreement, diag = {}, {}
        for name, p in info["parameters"].items():
            if len(p["shape"]) < 2:
                continue
            wa = reader.read(params=glob.escape(name), runs=a)[0, -1].reshape(p["shape"])
            wb = reader.read(params=glob.escape(name), runs=b)[0, -1].reshape(p["shape"])
            res = singular_vector_agreement(wa, wb, k=k)
            d = np.diagonal(res.matrix)[:max_rank]
            agreement[name], diag[name] = float(res.score), d.tolist()
        rows.append({
            "pair": pair, "runs": [a, b], "seed": metas[a].get("seed"),
            "split_step": int(lm["split_step"]), "final_step": int(lm["final_step"]),
            "barrier_loss": float(lm["barrier_loss"]), "barrier_error": float(lm["barrier_error"]),
            "losses": lm.get("losses"), "errors": lm.get("errors"),
            "sva_score": agreement, "sva_diagonal": diag,
            "mean_sva_score": float(np.mean(list(agreement.values()))) if agreement else None,
        })
    rows.sort(key=lambda r: (r["split_step"], str(r["seed"])))
    by_split = [list(g) for _, g in itertools.groupby(rows, key=lambda r: r["split_step"])]
    summary: dict[str, Any] = {"split_steps": [g[0]["split_step"] for g in by_split]}
    for key in ("barrier_loss", "barrier_error", "mean_sva_score"):
        summary[key] = {name: [float(f([r[key] for r in g])) for g in by_split]
                        for name, f in (("mean", np.mean), ("std", np.std))}
    return {"pairs": rows, "by_split": summary}


def checkpoint_sections(source: Any, *, max_rank: int = 100, k: int = TOP_K) -> dict[str, Any]:
    """Every spectral-dynamics measure of the checkpoint runs of ``source`` (nothing written).

    Parameters
    ----------
    source : path, TrajectoryStore or StudyReader
        A store, or a study output folder (its ``trajectories/*.zarr`` are read as one).
    max_rank : int
        Diagonals (agreement, alignment) and singular values kept for the first ``max_rank``
        directions (paper: 100).
    k : int
        Diagonal entries averaged into the scores (paper: 10).

    Returns
    -------
    dict
        ``source``, ``definitions``, ``runs`` (per checkpoint run: steps, measures, layer chain
        with skipped pairs, condition and seed), ``groups`` (per condition: mean and std over runs
        with the same steps), ``lmc`` (barrier and endpoint agreement per split step, or None when
        the source has no branches), ``svd_seconds``.

    Raises
    ------
    ValueError
        If the source holds neither checkpoint runs nor branch pairs.

    Examples
    --------
    >>> import tempfile
    >>> from conjugacy.analysis.demo import checkpoint_store
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = checkpoint_store(f"{tmp.name}/runs.zarr")  # 2 seeds of a 3-layer MLP, 3 checkpoints
    >>> sections = checkpoint_sections(path, max_rank=4, k=2)
    >>> sorted(sections["runs"]), sections["runs"]["s0.checkpoints"]["steps"], sections["lmc"]
    (['s0.checkpoints', 's1.checkpoints'], [0, 5, 10], None)
    >>> sections["groups"]["mlp"]["runs"]
    ['s0.checkpoints', 's1.checkpoints']
    >>> tmp.cleanup()
    """
    reader = open_source(source)  # closed here when opened here
    with contextlib.closing(reader) if reader is not source else contextlib.nullcontext():
        runs: dict[str, Any] = {}
        raw: dict[str, Any] = {}
        for ck, of in checkpoint_runs(reader).items():
            info = reader.run_info(ck)
            steps, weights = read_checkpoints(reader, ck)
            if len(steps) == 0:
                continue
            dyn = checkpoint_dynamics(weights, steps, max_rank=max_rank, k=k)
            d = dyn.to_dict()
            d["singular_values"] = {n: v[:, :max_rank].tolist()
                                    for n, v in dyn.singular_values.items()}
            condition, seed = _group_key(info["metadata"])
            scal = {s: reader.scalars(ck, s).tolist() for s in info["scalars"]}
            runs[ck] = {"of": of, "condition": condition, "seed": seed, "scalars": scal, **d}
            raw[ck] = dyn
        lmc = _lmc_section(reader, max_rank, k)
    if not runs and lmc is None:
        raise ValueError(
            f"{source!s} holds no checkpoint runs (record them with "
            "conjugacy.torch.snapshots.CheckpointRecorder) and no branch pairs"
        )
    return {"source": str(getattr(source, "path", source)), "definitions": _definitions(k),
            "runs": runs, "groups": _groups(runs, raw), "lmc": lmc,
            "svd_seconds": float(sum(dyn.svd_seconds for dyn in raw.values()))}


def _definitions(k: int) -> dict[str, str]:
    return {
        "effective_rank": "exp(entropy of s / sum(s)) / min(m, n) (Roy & Vetterli 2007)",
        "sva": "|<u_j(t), u_j(T)> <v_j(t), v_j(T)>|, T = last checkpoint; score = mean of "
               f"the first {k} (companion paper eq. 5)",
        "alignment": "|V_next^T U_i| diagonal, centre kernel position for convolutions; "
                     f"score = mean of the first {k} (eq. 3, 4)",
        "barrier": "max over interior points of loss - straight line between the endpoint "
                   "losses, 11 points, not clipped (eq. 6)",
    }


def _groups(runs: Mapping[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
    """Per condition: mean and std over the runs with the first run's steps and layers."""
    groups: dict[str, Any] = {}
    by_cond: dict[str, list[str]] = {}
    for ck, r in runs.items():
        by_cond.setdefault(r["condition"], []).append(ck)
    for cond, members in sorted(by_cond.items()):
        first = raw[members[0]]
        same = [m for m in members if np.array_equal(raw[m].steps, first.steps)
                and list(raw[m].effective_rank) == list(first.effective_rank)]
        g: dict[str, Any] = {"runs": members, "aggregated_runs": same,
                             "steps": first.steps.tolist()}
        if len(same) < len(members):
            g["note"] = ("runs with other checkpoint steps or layers are left out of the mean: "
                         + ", ".join(sorted(set(members) - set(same))))
        for field_ in ("effective_rank", "sva_score", "alignment_score"):
            g[field_] = {name: _stats([getattr(raw[m], field_)[name] for m in same])
                         for name in getattr(first, field_)}
        for field_ in ("sva_diagonal", "alignment_diagonal"):
            g[field_] = {name: np.mean([getattr(raw[m], field_)[name] for m in same],
                                       axis=0).tolist() for name in getattr(first, field_)}
        g["chain"] = first.chain.to_dict()
        groups[cond] = g
    return groups


def spectral_dynamics_report(
    source: Any,
    out: str | os.PathLike[str] | None = None,
    *,
    max_rank: int = 100,
    k: int = TOP_K,
    draw: bool = True,
    extra: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    fields: Mapping[str, Any] | None = None,
    timing: Mapping[str, float] | None = None,
    **kwargs: Any,
) -> Results:
    """Every spectral-dynamics measure of the checkpoint runs of ``source``, figures and
    ``results.json`` (schema ``"conjugacy.results/2"``: the measures under ``sections``,
    ``spectra`` {} and ``comparison`` null), through :func:`summarize_sections`.

    Parameters
    ----------
    source : path, TrajectoryStore or StudyReader
        A store, or a study output folder (its ``trajectories/*.zarr`` are read as one).
    out : path, optional
        Folder for ``results.json`` and ``figures/`` (created); nothing is written when None.
    max_rank, k : int
        As in :func:`checkpoint_sections`.
    draw : bool
        Draw the figures (needs Matplotlib) when ``out`` is given.
    extra : callable, optional
        ``extra(sections) -> dict`` merged into the sections (e.g. an experiment's findings).
    fields, timing : mapping, optional
        Extra top-level fields and timings.
    **kwargs
        Passed on to :func:`summarize_sections` (``experiment``, ``title``, ``conditions``,
        ``claims``, ``settings``, ``provenance``, ``figures`` (a hook replacing the default
        figures of :mod:`conjugacy.plots.spectral_dynamics`), ...).

    Returns
    -------
    Results
        ``content["sections"]`` as in :func:`checkpoint_sections`; ``figures`` (paths relative
        to ``out``).

    Raises
    ------
    ValueError
        If the source holds neither checkpoint runs nor branch pairs.

    Examples
    --------
    The report of two seeds of a 3-layer MLP (:func:`conjugacy.analysis.demo.checkpoint_store`),
    nothing written (``out=None``):

    >>> from tempfile import TemporaryDirectory
    >>> from conjugacy.analysis import demo
    >>> with TemporaryDirectory() as tmp:
    ...     store = demo.checkpoint_store(f"{tmp}/runs.zarr")
    ...     results = spectral_dynamics_report(store, max_rank=4, k=2, experiment="toy")
    >>> results["comparison"], results["spectra"], sorted(results["sections"]["runs"])
    (None, {}, ['s0.checkpoints', 's1.checkpoints'])
    """
    t0 = time.perf_counter()
    sections = checkpoint_sections(source, max_rank=max_rank, k=k)
    if extra is not None:
        sections.update(extra(sections))
    runs = sections["runs"]
    seeds: dict[str, list[Any]] = {}
    for r in runs.values():
        seeds.setdefault(r["condition"], []).append(r["seed"])
    table = [{"run": ck, "condition": r["condition"], "seed": r["seed"], "of": r["of"],
              "n_checkpoints": len(r["steps"])} for ck, r in runs.items()]
    kwargs.setdefault("experiment", "spectral-dynamics")
    kwargs.setdefault("title", f"spectral dynamics of the checkpoints in {sections['source']}")
    kwargs.setdefault("question", "how do the singular values and vectors of the weights evolve?")
    kwargs.setdefault("conditions", {c: None for c in seeds})
    kwargs["settings"] = {"max_rank": max_rank, "k": k, **dict(kwargs.get("settings") or {})}
    figures = kwargs.pop("figures", _draw)
    return summarize_sections(
        sections, seeds=seeds, fields={"runs": table, **dict(fields or {})},
        figures=figures if draw and out is not None else None, out=out,
        timing={**dict(timing or {}), "measures": time.perf_counter() - t0,
                "svd": sections["svd_seconds"]}, **kwargs)


def _draw(results: Results, out: Path) -> list[Path]:
    """The report's figures into ``OUT/figures/`` (PNG + SVG)."""
    from ..plots.spectral_dynamics import draw_all
    from ..report._figures import figures_folder

    return draw_all(results.content, figures_folder(out))  # never through a planted link


# ======================================================================= the companion paper's findings
def _settle_step(diag: np.ndarray, steps: np.ndarray, threshold: float) -> np.ndarray:
    """First checkpoint step after which each direction's agreement stays >= threshold."""
    ok = diag >= threshold  # (n_ckpt, r)
    stays = np.flip(np.logical_and.accumulate(np.flip(ok, 0), axis=0), 0)
    return steps[np.argmax(stays, axis=0)].astype(float)


def _alignment_kept(groups: Mapping[str, Any], middle: Sequence[str]) -> dict[str, Any] | None:
    """Fraction of its maximum the alignment score of each middle pair keeps at the end."""
    inner = [p for p in groups["true"]["alignment_score"] if all(x in middle for x in p.split("->"))]
    if not inner or any(p not in groups["random"]["alignment_score"] for p in inner):
        return None
    kept: dict[str, Any] = {}
    for cond in ("true", "random"):
        ms = {p: np.asarray(groups[cond]["alignment_score"][p]["mean"]) for p in inner}
        kept[cond] = {p: {"max": float(m.max()), "final": float(m[-1]),
                          "final_over_max": float(m[-1] / m.max())} for p, m in ms.items()}
    return {**kept, "holds": bool(all(kept["true"][p]["final_over_max"]
                                      > kept["random"][p]["final_over_max"] for p in inner))}


def _lmc_finding(lmc: Mapping[str, Any], min_barrier_error: float, min_barrier_loss: float
                 ) -> dict[str, Any]:
    from scipy.stats import spearmanr

    rows, bs = lmc["pairs"], lmc["by_split"]
    splits = [r["split_step"] for r in rows]
    rb = float(spearmanr(splits, [r["barrier_loss"] for r in rows]).statistic)
    ra = float(spearmanr(splits, [r["mean_sva_score"] for r in rows]).statistic)
    present = bool(max(bs["barrier_error"]["mean"]) > min_barrier_error
                   or max(bs["barrier_loss"]["mean"]) > min_barrier_loss)
    entry = {"spearman_split_vs_barrier": rb, "spearman_split_vs_top10_agreement": ra,
             "barrier_present": present, "min_barrier_error": min_barrier_error,
             "min_barrier_loss": min_barrier_loss, "agreement_rises": bool(ra > 0),
             "by_split": bs, "holds": bool(rb < 0 and ra > 0) if present else None}
    if not present:
        entry["note"] = ("no barrier at any split step: every pair of branches is already "
                         "linearly connected, so 'later splits have smaller barriers' cannot be "
                         "tested; only the agreement half is")
    return entry


def evaluate_findings(results: Mapping[str, Any], *, settle_threshold: float = 0.9,
                      min_barrier_error: float = 0.005, min_barrier_loss: float = 0.01,
                      ) -> dict[str, Any]:
    """Test the companion paper's four findings on the measures of a spectral-dynamics report
    (:func:`checkpoint_sections`, or results holding them under ``sections``) whose conditions
    are ``true`` (true labels), ``random`` (random labels) and ``true-wd`` (weight decay).

    1. ``true_vs_random``: final effective rank of the middle layers (all but the first and last
       weight) is lower with true labels than with random labels (mean over seeds);
       ``alignment_persists`` (reported beside it): the alignment score of the pairs between middle
       layers keeps a larger fraction of its maximum at the end with true labels.
    2. ``weight_decay``: final effective rank of every layer is lower with weight decay.
    3. ``top_settle_first``: with true labels, top singular directions settle earlier: the step
       after which each direction's agreement with the final checkpoint stays above
       ``settle_threshold``, averaged over the top 10 vs the bottom 10 of the first 100, middle
       layers, mean over seeds.
    4. ``lmc``: later splits give a smaller loss barrier and higher endpoint top-10 agreement
       (Spearman correlation with the split step < 0 and > 0 respectively). A barrier only counts
       as present when some split's mean error barrier exceeds ``min_barrier_error`` or its mean
       loss barrier exceeds ``min_barrier_loss``; without one the barrier half cannot be tested and
       ``holds`` is None, with the agreement half reported on its own (``agreement_rises``).

    Returns
    -------
    dict
        Per finding: the numbers, and ``holds`` (bool) or ``None`` when its conditions are
        missing (then a ``note`` says which).

    References
    ----------
    Yunis et al. (2024), *Approaching Deep Learning through the Spectral Dynamics of Weights*
    (arXiv:2408.11804).

    Examples
    --------
    Results without the conditions a finding needs leave it undecided, saying why:

    >>> found = evaluate_findings({"groups": {}})
    >>> {name: f["holds"] for name, f in found.items()}
    {'true_vs_random': None, 'weight_decay': None, 'top_settle_first': None, 'lmc': None}
    >>> found["true_vs_random"]["note"]
    "needs conditions 'true' and 'random'"

    On a reproduction's results (:func:`conjugacy.experiments.spectral_dynamics.run`),
    ``evaluate_findings(results.content, settle_threshold=0.8)`` decides them again with other
    thresholds.
    """
    sec = results.get("sections", results)
    groups = sec.get("groups", {})
    out: dict[str, Any] = {}

    def final_erank(cond: str) -> dict[str, float]:
        return {n: float(v["mean"][-1]) for n, v in groups[cond]["effective_rank"].items()}

    layers = list(groups[next(iter(groups))]["effective_rank"]) if groups else []
    middle = layers[1:-1]
    out["true_vs_random"] = {"holds": None, "note": "needs conditions 'true' and 'random'"}
    if "true" in groups and "random" in groups and middle:
        a, b = final_erank("true"), final_erank("random")
        out["true_vs_random"] = {"middle_layers": middle, "true": {n: a[n] for n in middle},
                                 "random": {n: b[n] for n in middle},
                                 "holds": bool(all(a[n] < b[n] for n in middle))}
        kept = _alignment_kept(groups, middle)
        if kept is not None:
            out["true_vs_random"]["alignment_persists"] = kept
    out["weight_decay"] = {"holds": None, "note": "needs conditions 'true' and 'true-wd'"}
    if "true" in groups and "true-wd" in groups:
        a, b = final_erank("true"), final_erank("true-wd")
        out["weight_decay"] = {"true": a, "true-wd": b,
                               "holds": bool(all(b[n] < a[n] for n in layers))}
    out["top_settle_first"] = {"holds": None, "note": "needs condition 'true'"}
    true_runs = [r for r in sec.get("runs", {}).values() if r["condition"] == "true"]
    if true_runs and middle:
        settle = [_settle_step(np.asarray(r["sva_diagonal"][n]),
                               np.asarray(r["steps"], dtype=float), settle_threshold)
                  for r in true_runs for n in middle]
        top = np.mean([s[:10].mean() for s in settle])
        bottom = np.mean([s[-10:].mean() for s in settle])
        out["top_settle_first"] = {"threshold": settle_threshold,
                                   "top10_mean_step": float(top), "bottom10_mean_step": float(bottom),
                                   "holds": bool(top < bottom)}
    lmc = sec.get("lmc")
    out["lmc"] = (_lmc_finding(lmc, min_barrier_error, min_barrier_loss)
                  if lmc and len(lmc["by_split"]["split_steps"]) >= 3
                  else {"holds": None, "note": "needs branch pairs at 3 or more split steps"})
    return out
