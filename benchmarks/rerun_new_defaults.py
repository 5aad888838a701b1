"""Rerun a reproduction's comparison with the pipeline's new defaults (issue 20, item 8).

The five reproductions (``conjugacy reproduce ...``) decide their claims at the paper's settings
(e.g. 8 delays, rank 10). ``conjugacy analyze`` and :func:`conjugacy.analysis.analyse_study`
now default to delays chosen from the data (:func:`conjugacy.analysis.own_runs.default_settings`:
:func:`~conjugacy.analysis.own_runs.pilot_delays` on the first ``own_runs.PILOT_SEEDS`` seeds of
each condition, each seed scored on its own, a candidate's held-out error the geometric mean over
them) and one rank for
every spectrum (the pilots' SVHT rank capped at ``own_runs.RANK_CAP``), with the neighbour
check (:mod:`conjugacy.analysis.neighbours`). This script
refits an existing reproduction's output folder with those defaults, WITHOUT retraining and
without writing into the folder, and prints, pair by pair and claim by claim, the paper settings
(the folder's ``results.json``) next to the new defaults.

How each experiment is refitted (the same pipeline functions the experiment calls):

* store-backed experiments (``fcn``, ``cnn``, ``grokking``): the compared groups (one per
  condition and seed, no window) are rebuilt from ``results.json["runs"]``, read through a
  :class:`conjugacy.study.StudyReader` over ``FOLDER/trajectories`` (read only), and passed to
  :func:`conjugacy.analysis.run_pipeline` with the default settings and ``neighbours=True``; the
  claims are those of the experiment's own ``claims`` function (claims that need sections the
  rerun does not recompute, e.g. windows or test losses, are reported as not rerun).
  Grokking's groups fit the experiment's windows (the first ``steps + 1`` records, ``s6_steps +
  1`` for ``constrained_s6``) and its named pairs (``fig5``, ``s6``); the defaults fit the raw
  recorded weights (no PCA: the experiment's ``pca`` is a paper setting, like its rank).
* ``optimizers`` (no store): the iterates of ``FOLDER/trajectories.npz``, grouped as the
  experiment groups them (:func:`conjugacy.experiments.optimizers.initial_condition_groups`),
  fitted with the default settings (:func:`~conjugacy.analysis.own_runs.pilot_delays` on the
  first ``PILOT_SEEDS`` groups of each optimizer, one array per group, as ``conjugacy analyze``
  reads its seeds; then :func:`~conjugacy.analysis.own_runs.pilot_rank`'s capped SVHT rank, one
  for every group) and compared with :func:`conjugacy.analysis.summarize`, the
  neighbour check as its comparison hook.

Usage (from the repository root; ``nice -n 10`` and ``OMP_NUM_THREADS=1`` on a shared machine)::

    .venv/bin/python benchmarks/rerun_new_defaults.py fcn /tmp/h24_fcn --json /tmp/fcn_new.json
    .venv/bin/python benchmarks/rerun_new_defaults.py optimizers /tmp/h24_opt
    .venv/bin/python benchmarks/rerun_new_defaults.py fcn /tmp/h24_fcn --seeds 6  # 6 per width

Output: a Markdown table per pair (W1 mean of the spectra the verdict uses, p, verdict; delays
and SVHT ranks chosen; neighbour agreement) and per claim (paper settings vs new defaults), and
with ``--json`` the rerun's full ``results.json`` content plus the CPU seconds of each stage.
Results are deterministic given the folder (the permutation seed is the experiment's).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from conjugacy.analysis import SpectrumGroup, chosen, run_pipeline, summarize
from conjugacy.analysis.neighbours import neighbour_check
from conjugacy.analysis.own_runs import (
    default_settings,
    pilot_delays,
    pilot_groups,
    pilot_rank,
    read_pilots,
)

EXPERIMENTS = ("optimizers", "fcn", "cnn", "grokking", "spectral-dynamics")
STORE_BACKED = ("fcn", "cnn", "grokking")


def _stats(paper: Mapping[str, Any]) -> dict[str, Any]:
    """The experiment's comparison options and its pairs, as recorded in its results.json."""
    st = dict(paper.get("statistics") or {})
    out = {k: st[k] for k in ("seed", "n_permutations", "n_shuffles", "alpha") if k in st}
    return {**out, "pairs": {k: tuple(v) for k, v in paper["comparison"]["pairs"].items()}}


def _steps(name: str, paper: Mapping[str, Any], condition: str) -> tuple[int, int] | None:
    """The records a group's spectrum uses: grokking fits the first ``steps + 1`` records
    (``s6_steps + 1`` for ``constrained_s6``, as ``grokking.spectrum_groups``); others all."""
    if name != "grokking":
        return None
    cfg = paper["config"]
    return (0, int(cfg["s6_steps" if condition == "constrained_s6" else "steps"]) + 1)


def _store_groups(name: str, paper: Mapping[str, Any], seeds: int | None = None
                  ) -> list[SpectrumGroup]:
    """One group per (condition, seed) of the compared (window-free) runs of results.json,
    the first ``seeds`` seeds of each condition (in results.json's order) when given."""
    runs: dict[tuple[str, Any], list[str]] = {}
    for row in paper["runs"]:
        if row.get("window") is None:
            runs.setdefault((row["condition"], row["seed"]), []).append(row["run"])
    kept: dict[str, int] = {}
    groups = []
    for (c, s), r in runs.items():
        kept[c] = kept.get(c, 0) + 1
        if seeds is None or kept[c] <= seeds:
            groups.append(SpectrumGroup(c, s, tuple(r), steps=_steps(name, paper, c)))
    return groups


def rerun_store(name: str, folder: Path, paper: Mapping[str, Any], seeds: int | None = None
                ) -> tuple[dict, dict]:
    """Refit a store-backed reproduction with the default settings (the first ``seeds`` seeds
    of each condition when given); (content, cpu seconds)."""
    from conjugacy.study import StudyReader

    module = importlib.import_module(f"conjugacy.experiments.{name.replace('-', '_')}")
    groups = _store_groups(name, paper, seeds)
    sections, claims = None, getattr(module, "claims", None)
    if name == "grokking":  # fig. 5D's claims read the unit-circle section of the spectra
        cfg = paper["config"]
        claims = module.paper_claims
        sections = lambda spectra: {"unit_circle": module.unit_circle_section(  # noqa: E731
            spectra, cfg["unit_circle_tol"],  # older folders predate the angle: its default
            cfg.get("unit_circle_angle", module.GrokkingConfig.unit_circle_angle))}
    params = paper["observables"]
    cpu: dict[str, float] = {}
    with StudyReader.open(folder) as reader:
        t0 = time.process_time()
        settings, reasoning = default_settings(reader, groups, params)
        cpu["settings"] = time.process_time() - t0
        res = run_pipeline(
            reader, groups, {**settings, "modes": False}, params=params, neighbours=True,
            experiment=name, title=paper.get("title"), question=paper.get("question"),
            conditions=paper.get("conditions"), stats=_stats(paper),
            settings={**settings, "method": "rrr"}, claims=claims, sections=sections,
            fields={"settings_reasoning": reasoning})
        cpu["spectra_comparison_neighbours"] = time.process_time() - t0 - cpu["settings"]
    return res.content, cpu


def rerun_cnn(folder: Path, paper: Mapping[str, Any]) -> tuple[dict, dict]:
    """Refit the CNN reproduction's windows (``FOLDER/lenet``, ``FOLDER/resnet20`` stores) with
    the default settings: delays and one rank from the first window of each architecture's
    first ``PILOT_SEEDS`` seeds (read as ``conjugacy analyze`` reads its pilots, one array per
    seed; :func:`pilot_delays`, :func:`pilot_rank`), then the experiment's own windowed fits,
    window distances, architecture comparison and claims. No neighbour check: the experiment
    compares windows with ``compare_windows``, not through the pipeline."""
    from dataclasses import replace

    from conjugacy.analysis.groups import study_groups
    from conjugacy.analysis.windowed import compare_windows
    from conjugacy.experiments import cnn
    from conjugacy.study import StudyReader
    from conjugacy.torch.models import OBSERVED_LAYERS

    cfg = cnn.CNNConfig(**paper["config"])
    cpu: dict[str, float] = {}
    t0 = time.process_time()
    readers = {a: StudyReader.open(folder / a) for a in cfg.archs}
    try:
        studies = {a: cnn.make_study(cfg, a) for a in cfg.archs}
        pilots = {}  # architecture -> one (runs, first window, features) array per pilot seed
        for a in cfg.archs:
            first = [replace(g, steps=(0, cfg.window)) for g in study_groups(studies[a])]
            pilots.update(read_pilots(readers[a], first, OBSERVED_LAYERS[cfg.model_name(a)]))
        folds: dict[str, int] = {}
        delays, why = pilot_delays(pilots, max_delays=cfg.window - 3, fold_ranks=folds)
        seeds = [t for per_seed in pilots.values() for t in per_seed]
        most = min(min(t.shape[0] for t in seeds) * (cfg.window - delays - 1),
                   min(t.shape[2] for t in seeds) * (delays + 1))
        rank, rule, _ = pilot_rank(pilots, delays, max_rank=most, known=folds)
        new = replace(cfg, delays=delays, rank=rank)
        cpu["settings"] = time.process_time() - t0
        spectra, windows = {}, {}
        for a in cfg.archs:
            spectra[a], windows[a] = cnn.arch_windows(new, a, readers[a], studies[a])
    finally:
        for r in readers.values():
            r.close()
    sections = {} if len(cfg.archs) < 2 else {
        "architecture_comparison": compare_windows(
            spectra, windows["lenet"]["labels"], seed=new.seed, n_permutations=new.n_permutations,
            n_shuffles=new.n_shuffles, what="architecture")}
    content = {"experiment": "cnn", "settings": {"delays": delays, "rank": rank},
               "settings_reasoning": {"delays": why, "rank": rule["reason"]},
               "windows": windows, "sections": sections}
    content["claims"] = [c.to_dict() for c in cnn.claims(content)]
    cpu["windowed_spectra_comparison"] = time.process_time() - t0 - cpu["settings"]
    return content, cpu


def rerun_optimizers(folder: Path, paper: Mapping[str, Any]) -> tuple[dict, dict]:
    """Refit the optimizer reproduction's iterates (trajectories.npz) with the defaults."""
    from conjugacy import koopman_spectrum
    from conjugacy.experiments import optimizers as opt

    cfg = paper["config"]
    methods = list(paper["conditions"])
    t0 = time.process_time()
    with np.load(folder / "trajectories.npz", allow_pickle=False) as npz:
        traj = {m: np.asarray(npz[m], float) for m in methods}
    idx = opt.initial_condition_groups(cfg["n_groups"])
    groups = [SpectrumGroup(m, f"group {k}", tuple(map(str, g))) for m in methods
              for k, g in enumerate(idx)]
    read = {g.key: traj[g.condition][[int(r) for r in g.runs]] for g in groups}
    pilots: dict[str, list[np.ndarray]] = {}  # the first PILOT_SEEDS groups, one array each
    for g in pilot_groups(groups):
        pilots.setdefault(g.condition, []).append(read[g.key])
    folds: dict[str, int] = {}
    delays, why = pilot_delays(pilots, fold_ranks=folds)
    # the rank every group's data allow, as own_runs.choose_settings bounds it
    most = min(traj[methods[0]].shape[2] * (delays + 1),
               min(map(len, idx)) * (min(t.shape[1] for t in traj.values()) - delays - 1))
    rank, rule, _ = pilot_rank(pilots, delays, max_rank=most, known=folds)
    settings = {"delays": delays, "rank": rank, "method": cfg["method"]}
    fitted = {g.key: koopman_spectrum(read[g.key], **settings) for g in groups}
    per_group = {m: [fitted[g.key] for g in groups if g.condition == m] for m in methods}
    pooled = {m: koopman_spectrum(traj[m], **settings) for m in methods}
    stats = {"alpha": cfg["alpha"], "seed": cfg["seed"], "n_permutations": cfg["n_permutations"],
             "n_shuffles": cfg["n_shuffles"], "shuffle": "pooled", "ks": False, "p": cfg["p"],
             "pairs": [tuple(p) for p in paper["comparison"]["pairs"].values()]}
    max_delays = (min(t.shape[1] for t in traj.values()) - 2) // 4

    def hook(cmp: dict[str, Any]) -> None:
        neighbour_check(cmp, lambda g: read[g.key], groups, settings, fitted, stats,
                        max_delays=max_delays)

    res = summarize(per_group, experiment="optimizers", conditions=paper["conditions"],
                    seeds={m: [f"group {k}" for k in range(len(idx))] for m in methods},
                    observables="iterates", settings=settings, stats=stats, pooled=pooled,
                    comparison_hook=hook, claims=opt.claims,
                    fields={"settings_reasoning": {"delays": why, "rank": rule["reason"]}})
    return res.content, {"total": time.process_time() - t0}


def _ranks(content: Mapping[str, Any], cond: str) -> str:
    r = [int(s["rank"]) for s in content["spectra"][cond]]
    return f"{min(r)}" if min(r) == max(r) else f"{min(r)}-{max(r)}"


def _pair_rows(paper: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Markdown rows: pair | paper W1, p, verdict | new W1, p, verdict | ranks | neighbours."""
    rows = ["| pair | paper: W1, p, verdict | new: W1, p, verdict | new ranks | neighbours "
            "(same/of, p range) | |", "|---|---|---|---|---|---|"]
    cp, cn = paper["comparison"], new["comparison"]
    hood = cn.get("neighbourhood", {}).get("pairs", {})
    for key, (a, b) in cn["pairs"].items():
        vp, vn = cp["verdicts"][key], cn["verdicts"][key]
        dp, dn = (chosen(c)["distances"][key]["mean"] for c in (cp, cn))
        h = hood.get(key, {})
        pr = h.get("pvalue_range")
        nb = (f"{h.get('same')}/{h.get('of')}" + (f", p {pr[0]:.3g}-{pr[1]:.3g}" if pr else "")
              + (" **fragile**" if h.get("fragile") else ""))
        flip = "same" if vp["verdict"] == vn["verdict"] else "**flips**"
        rows.append(f"| {key} | {dp:.4g}, {vp['pvalue']:.3g}, {vp['verdict']} | {dn:.4g}, "
                    f"{vn['pvalue']:.3g}, {vn['verdict']} | {a}: {_ranks(new, a)}, "
                    f"{b}: {_ranks(new, b)} | {nb} | {flip} |")
    return rows


def _window_rows(paper: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """CNN's Markdown rows: per architecture its windows' mean W1 to the others, and per
    window LeNet vs ResNet-20 (mean W1, p, verdict), paper settings and new defaults."""
    rows = ["| what | paper settings | new defaults |", "|---|---|---|"]
    for arch, w in new["windows"].items():
        old = paper["windows"][arch]["mean_distance_to_other_windows"]
        fmt = ", ".join
        rows.append(f"| {arch}: mean W1 to the other windows ({fmt(w['labels'])}) | "
                    f"{fmt(f'{v:.3g}' for v in old)} | "
                    f"{fmt(f'{v:.3g}' for v in w['mean_distance_to_other_windows'])} |")
    cmp_new = new["sections"].get("architecture_comparison", {}).get("per_window", [])
    cmp_old = paper["sections"].get("architecture_comparison", {}).get("per_window", [])
    for o, n in zip(cmp_old, cmp_new, strict=False):
        u, v = o["verdict_uses"], n["verdict_uses"]
        rows.append(f"| lenet-resnet20, window {n['window']}: W1, p, verdict | "
                    f"{o[u]['distance_mean']:.4g}, {o['pvalue']:.3g}, {o['verdict']} | "
                    f"{n[v]['distance_mean']:.4g}, {n['pvalue']:.3g}, {n['verdict']} |")
    return rows


def _cell(text: Any) -> str:
    """A Markdown table cell: ``|`` escaped (claims' evidence holds ``|arg|``)."""
    return str(text).replace("|", "\\|")


def _claim_rows(paper: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Markdown rows: claim | paper holds | new holds | new evidence; then the rerun's claims
    that match none of the folder's (reworded since the folder was made), paper column empty."""
    rows = ["| claim | paper settings | new defaults | new evidence |", "|---|---|---|---|"]
    listed, old = list(new.get("claims", [])), list(paper.get("claims", []))
    fresh = {c["claim"]: c for c in listed}
    used = set()
    for i, c in enumerate(old):
        n, note = fresh.get(c["claim"]), ""
        if n is None and len(listed) == len(old):  # reworded since the folder was made
            n, note = listed[i], f" (now worded: {listed[i]['claim']})"
        if n is not None:
            used.add(n["claim"])
        rows.append(f"| {_cell(c['claim'])} | {c['holds']} | "
                    + ("not rerun (needs sections the rerun does not recompute) | |" if n is None
                       else f"{n['holds']} | {_cell(n['evidence'] + note)} |"))
    rows += [f"| {_cell(n['claim'])} | (not in the folder's claims) | {n['holds']} | "
             f"{_cell(n['evidence'])} |" for n in listed if n["claim"] not in used]
    return rows


def report(paper: Mapping[str, Any], new: Mapping[str, Any], cpu: Mapping[str, float],
           seeds: int | None = None) -> str:
    """The Markdown tables and the settings of one rerun."""
    s = new["settings"]
    used = ("all seeds" if seeds is None else f"new defaults on the first {seeds} seeds of each "
            "condition; paper settings on all the folder's seeds")
    lines = [f"## {new['experiment']} ({used})", "",
             f"paper settings: delays {paper['settings'].get('delays')}, rank "
             f"{paper['settings'].get('rank')}; new defaults: delays {s['delays']}, rank "
             f"{s['rank']}; CPU s: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()), "",
             f"delays: {new.get('settings_reasoning', {}).get('delays')}", "",
             f"rank: {new.get('settings_reasoning', {}).get('rank')}", "",
             *(_window_rows(paper, new) if "windows" in new else _pair_rows(paper, new)), "",
             *_claim_rows(paper, new), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("experiment", choices=EXPERIMENTS)
    ap.add_argument("folder", type=Path, help="the reproduction's output folder (read only)")
    ap.add_argument("--json", type=Path, help="write the rerun's content and CPU times here")
    ap.add_argument("--seeds", type=int, metavar="N",
                    help="fcn, grokking: refit the first N seeds of each condition (the "
                         "paper column stays the folder's results.json, on all its seeds)")
    a = ap.parse_args(argv)
    if a.seeds is not None and (a.seeds < 2 or a.experiment not in ("fcn", "grokking")):
        print(f"error: --seeds: give N >= 2 with fcn or grokking (got "
              f"{a.seeds} with {a.experiment})", file=sys.stderr)
        return 2
    paper_file = a.folder / "results.json"
    if not paper_file.is_file():
        print(f"error: folder: {paper_file} does not exist; give the output folder of "
              f"'conjugacy reproduce {a.experiment}'", file=sys.stderr)
        return 2
    paper = json.loads(paper_file.read_text())
    if a.experiment == "optimizers":
        new, cpu = rerun_optimizers(a.folder, paper)
    elif a.experiment == "cnn":
        new, cpu = rerun_cnn(a.folder, paper)
    elif a.experiment in STORE_BACKED:
        new, cpu = rerun_store(a.experiment, a.folder, paper, a.seeds)
    else:
        print(f"error: experiment: {a.experiment} keeps no comparison of conditions to rerun; "
              f"choose one of {', '.join(STORE_BACKED + ('optimizers',))}", file=sys.stderr)
        return 2
    if a.json is not None:
        from conjugacy.results import to_jsonable

        a.json.write_text(json.dumps(to_jsonable({"content": new, "cpu_seconds": cpu,
                                                  "seeds": a.seeds}), indent=1))
    print(report(paper, new, cpu, a.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
