"""What ``conjugacy reproduce <name>`` prints: one printer of a ``results.json`` (schema
``conjugacy.results/2``): the verdicts with their reasons, the claims, the warnings and where the
files are, plus a few lines per experiment for what only it has. Printing only: the experiments
decide everything."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rich.table import Table

from .._text import shown
from ..report._content import _refits, filter_note
from ._errors import rich_console

_COLOUR = {"conjugate": "green", "not conjugate": "red", "undecided": "yellow"}
_HOLDS = {True: "[green]holds[/]", False: "[red]does not hold[/]", None: "[yellow]undecided[/]"}


def _num(x: Any, fmt: str = ".4g") -> str:
    return "-" if x is None else format(x, fmt)


def print_results(content: Mapping[str, Any], out: Path) -> None:
    """Print ``content`` (a ``results.json``): the verdict table, each verdict's reason, the
    experiment's own lines, the claims, the warnings, the timing and the files in ``out``."""
    console = rich_console()
    if content.get("title"):
        console.print(f"[bold]{shown(content['title'])}[/]")
    cmp = content.get("comparison") or {}
    if cmp.get("verdicts"):
        uses = cmp["verdict_uses"]
        p = (content.get("statistics") or {}).get("p") or 1
        table = Table(title=f"Verdicts ({uses} eigenvalues; W_{p:g} between conditions, over "
                            "seeds)", title_justify="left")
        for col in ("pair", "W mean", "W std", "permutation p", "verdict"):
            table.add_column(col, justify="left" if col == "pair" else "right")
        for key, v in cmp["verdicts"].items():
            d = (cmp.get(uses) or {}).get("distances", {}).get(key, {})
            table.add_row(shown(key), _num(d.get("mean")), _num(d.get("std"), ".2g"),
                          _num(v["pvalue"], ".3g"),
                          f"[{_COLOUR.get(v['verdict'], 'yellow')}]{shown(v['verdict'])}[/]")
        console.print(table)
        for key, v in cmp["verdicts"].items():
            console.print(f"verdict {shown(key)}: {shown(v['verdict'])} ({shown(v['reason'])}; "
                          f"{v['uses']} spectra)")
        if cmp.get("verdict_rule"):
            console.print(f"Verdict rule: {shown(cmp['verdict_rule'])} (alpha = {cmp['alpha']}).")
        if filter_note(cmp):
            console.print(f"[yellow]filter:[/] {shown(filter_note(cmp))}")
        for line in neighbour_lines(content):
            console.print(line)
    for line in _SPECIFIC.get(content.get("experiment", ""), lambda _c: [])(content):
        console.print(line)
    for c in content.get("claims", []):
        console.print(f"claim: {shown(c['claim'])} -- {_HOLDS[c['holds']]} "
                      f"({shown(c['evidence'])})")
    for note in content.get("warnings", []):
        console.print(f"[yellow]note:[/] {shown(note)}")
    t = content.get("timing_seconds") or {}
    skipped = (content.get("training") or {}).get("skipped")
    console.print("time: " + ", ".join(f"{k.removeprefix('total_')} {t[k]:.1f} s"
                                       for k in ("training", "total_analysis") if k in t)
                  + (f" ({len(skipped)} jobs resumed from the store)" if skipped else ""))
    console.print(f"Results: {shown(out / 'results.json')}")
    for name, path in (content.get("files") or {}).items():
        console.print(f"{shown(name.capitalize())}: {shown(out / path)}")
    figures = sorted({str(out / Path(f).with_suffix("")) for f in content.get("figures") or []})
    if figures:
        console.print("Figures (.png and .svg): " + ", ".join(map(shown, figures)))


def _range(r: Any, fmt: str) -> str:
    return "-" if not r else f"{format(r[0], fmt)}-{format(r[1], fmt)}"


def neighbour_lines(content: Mapping[str, Any]) -> list[str]:
    """Rich lines of the neighbour check (``comparison["neighbourhood"]``): per pair, fragile or
    stable, how many neighbouring settings give the same verdict, the p and distance ranges, and
    the neighbours that differ; then what the check cost. Empty without one."""
    nb = (content.get("comparison") or {}).get("neighbourhood")
    if not nb:
        return []
    lines = []
    for pair, r in nb["pairs"].items():
        flag = "[red]fragile[/]" if r["fragile"] else "[green]stable[/]"
        differ = [k for k, v in r["neighbours"].items() if v["verdict"] != r["verdict"]]
        lines.append(
            f"neighbours {shown(pair)}: {flag}, {r['same']} of {r['of']} neighbouring settings "
            f"give {shown(r['verdict'])}; p {_range(r['pvalue_range'], '.3g')}, "
            f"W {_range(r['distance_range'], '.3g')}"
            + (f"; differs at {shown(', '.join(differ))}" if differ else ""))
    names = ", ".join(s["name"] for s in nb["settings"])
    lines.append(f"neighbourhood: {shown(names)}; {_refits(nb)}, {nb['cpu_seconds']:.1f} s CPU")
    from ..analysis.neighbours import not_tried_text

    return lines + ([shown(not_tried_text(nb))] if nb.get("not_tried") else [])


# ----- what only one experiment has ---------------------------------------------------------------
def _optimizers(c: Mapping[str, Any]) -> list[str]:
    lines = ["The paper's shuffle control counts only ties (a shuffle can never exceed the true "
             "distance); it is in results.json for comparison with the paper, not used for the "
             "verdict."]
    steps = c["sections"].get("bisection", {}).get("exact_root_steps", [])  # one per run
    hits = [s for s in steps if s >= 0]
    if hits:
        lines.append(f"BM: {len(hits)} of {len(steps)} runs reach an exact root (f(z) == 0) at steps "
                     f"{min(hits)}-{max(hits)}; the iterate is then held at the root.")
    return lines


def _cnn(c: Mapping[str, Any]) -> list[str]:
    lines = []
    for arch, w in c["windows"].items():
        info, tr = c["archs"][arch], w.get("transitions")
        lines.append(f"[bold]{shown(info['model'])}[/] on {shown(info['data']['name'])}: "
                     f"{info['n_seeds']} seeds x {info['n_replicas']} replicas, "
                     f"{len(w['labels'])} windows" + ("" if tr is None else
                     "; change points after windows "
                     f"{shown([w['labels'][i] for i in tr['change_points']])}"
                     f", settled from iteration {w['findings']['settled_from_iteration']}"))
    for row in (c["sections"].get("architecture_comparison") or {}).get("per_window", []):
        lines.append(f"LeNet vs ResNet-20, window {shown(row['window'])}: {shown(row['verdict'])} "
                     f"({shown(row['reason'])})")
    return lines


def _spectral_dynamics(c: Mapping[str, Any]) -> list[str]:
    sections = c["sections"]
    lines = [f"{shown(cond)}: final effective rank per layer (mean over {len(g['runs'])} runs) "
             + " ".join(f"{v['mean'][-1]:.3f}" for v in g["effective_rank"].values())
             + "; alignment score per pair "
             + (" ".join(f"{v['mean'][-1]:.2f}" for v in g["alignment_score"].values()) or "-")
             for cond, g in sections.get("groups", {}).items()]
    lines += sorted({f"[yellow]skipped pair[/] {shown(s['first'])} -> {shown(s['next'])}: "
                     f"{shown(s['reason'])}"
                     for g in sections.get("groups", {}).values() for s in g["chain"]["skipped"]})
    if sections.get("lmc"):
        s = sections["lmc"]["by_split"]
        lines.append("barrier (loss) by split step: " + ", ".join(
            f"{st}: {m:.3g}" for st, m in zip(s["split_steps"], s["barrier_loss"]["mean"])))
    lines.append(f"{len(sections['runs'])} checkpoint run(s); SVDs "
                 f"{c['timing_seconds']['svd']:.2f} s")
    return lines


_SPECIFIC: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "optimizers": _optimizers, "cnn": _cnn, "spectral-dynamics": _spectral_dynamics}
