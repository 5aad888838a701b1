"""What ``conjugacy reproduce <name>`` prints: a Rich summary of each experiment's results and
the paper's claims, one line each (printing only; the experiments compute everything)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def print_fcn(summary: dict[str, Any], out: Path) -> None:
    console = Console()
    comparison = summary["comparison"]
    uses = comparison["verdict_uses"]
    for which in ("all", "filtered"):
        cmp = comparison.get(which)
        if cmp is None:
            continue
        title = (f"Wasserstein distance between widths, {which} eigenvalues (per-seed mean +- std)"
                 + ("  [verdicts]" if which == uses else ""))
        table = Table(title=title)
        for col in ("widths", "mean", "std", "shuffle control", "permutation p"):
            table.add_column(col, justify="right")
        for key, d in cmp["distances"].items():
            perm = cmp["permutation_tests"].get(key)
            table.add_row(
                key.replace("-", " vs "),
                f"{d['mean']:.4g}",
                f"{d['std']:.2g}",
                f"{100 * cmp['shuffle_control'][key]['mean_fraction']:.0f} %",
                "-" if perm is None else f"{perm['pvalue']:.3g}",
            )
        console.print(table)
    cmp = comparison[uses]
    for cond, between in cmp["between_seeds"].items():
        console.print(
            f"between seeds, {cond}: mean {between['mean']:.4g}, "
            f"min {between['min']:.4g} (seeds {between['closest_pair']})"
        )
    for key, ks in cmp.get("ks_tests", {}).items():
        console.print(f"KS {key}: D = {ks['statistic']:.3f}, p = {ks['pvalue']:.3g}")
    for key, v in comparison["verdicts"].items():
        console.print(f"verdict {key}: {v['verdict']} (p = {v['pvalue']}, {v['uses']} spectra)")
    print_claims(summary)
    t = summary["timing_seconds"]
    console.print(
        f"training {t['training']:.1f} s, analysis {t['total_analysis']:.1f} s "
        f"({len(summary['training']['skipped'])} (width, seed) jobs resumed from the store); "
        f"results in {out}"
    )


def print_claims(content: dict[str, Any]) -> None:
    """The paper's claims as ``results.json`` holds them (decided by the experiment)."""
    words = {True: "[green]holds[/green]", False: "[red]does not hold[/red]"}
    for c in content.get("claims", []):
        Console().print(f"claim: {c['claim']} -- {words.get(c['holds'], '[yellow]undecided[/yellow]')}"
                        f" ({c['evidence']})", highlight=False)


def print_grokking(result: Any, out: Path) -> None:
    """The comparison, verdicts and claims as the grokking results hold them."""
    console = Console()
    content = getattr(result, "content", None) or {}
    comparison = content.get("comparison") or {}
    for which in ("all", "filtered"):
        cmp = comparison.get(which)
        if not cmp:
            continue
        for name, test in cmp["permutation_tests"].items():
            d = cmp["distances"][name]
            console.print(
                f"{name} ({which} eigenvalues): mean W1 {d['mean']:.4g}, permutation test "
                f"statistic {test['statistic']:.4g}, p = {test['pvalue']:.3g}"
            )
    for name, v in comparison.get("verdicts", {}).items():
        console.print(f"verdict {name}: {v['verdict']} ({v['reason']}; {v['uses']} spectra)",
                      highlight=False)
    print_claims(content)
    console.print(f"results in {out}")


def print_cnn(summary: dict[str, Any], out: Path) -> None:
    console = Console()
    for note in summary.get("warnings", []):
        console.print(f"[yellow]Note:[/] {note}")
    for arch, w in summary["windows"].items():
        info = summary["archs"][arch]
        console.print(
            f"[bold]{info['model']}[/] on {info['data']['name']}: {info['n_seeds']} seeds x "
            f"{info['n_replicas']} replicas, {len(w['labels'])} windows; batch accuracy in the "
            f"last window {w['batch_accuracy_last_window']:.3f}")
        claims = w.get("findings")
        if claims:
            tr = w["transitions"]
            console.print(
                f"  most distinct window {claims['most_distinct_window'] or '- (needs 3 windows)'}; "
                f"change points after "
                f"windows {[w['labels'][i] for i in tr['change_points']]} (threshold "
                f"{tr['threshold']:.3g}: {tr['rule']}); settled from iteration "
                f"{claims['settled_from_iteration']}")
    comp = summary["sections"].get("architecture_comparison")
    if comp:
        table = Table(title="LeNet vs ResNet-20 per window (" + comp["per_window"][0]["verdict_uses"]
                      + " eigenvalues)")
        for col in ("window", "W1 mean", "W1 std", "shuffle control", "permutation p", "verdict"):
            table.add_column(col, justify="right")
        for row in comp["per_window"]:
            c = row[row["verdict_uses"]]
            table.add_row(row["window"], f"{c['distance_mean']:.4g}", f"{c['distance_std']:.2g}",
                          f"{100 * c['shuffle_mean_fraction']:.0f} %",
                          "-" if row["pvalue"] is None else f"{row['pvalue']:.3g}",
                          str(row["verdict"]))
        console.print(table)
        console.print(comp["note"])
    print_claims(summary)
    t = summary["timing_seconds"]
    console.print(f"training {t['training']:.1f} s, analysis {t['total_analysis']:.1f} s; "
                  f"results in {out}")


def print_optimizers(results: Any, out: Path) -> None:
    """The spectra and pairwise-comparison tables, the verdicts and claims the results hold, the
    warnings and the files written (everything read from ``results.content``)."""
    console = Console()
    c = results.content
    cmp = c["comparison"]
    spectra = Table(title="Koopman spectra (all 25 runs)", title_justify="left")
    for col in ("optimizer", "eigenvalues", "complex", "max |lambda|", "min |lambda|"):
        spectra.add_column(col, justify="left" if col == "optimizer" else "right")
    for m, (s,) in c["pooled_spectra"].items():
        mods = [abs(complex(re, im)) for re, im in s["eigenvalues"]]
        n_complex = sum(abs(im) > 1e-12 for _, im in s["eigenvalues"])
        spectra.add_row(m.upper(), str(len(mods)), str(n_complex), f"{max(mods):.4f}",
                        f"{min(mods):.4f}")
    console.print(spectra)
    p = c["statistics"]["p"]
    table = Table(title="Pairwise comparison", title_justify="left")
    table.add_column("pair")
    table.add_column(f"W_{p:g} all", justify="right")
    if cmp["filtered"] is not None:
        table.add_column(f"W_{p:g} filtered", justify="right")
    for col in ("shuffles >= true\n(paper's control)", "permutation p"):
        table.add_column(col, justify="right")
    table.add_column("verdict")
    colour = {"conjugate": "green", "not conjugate": "red", "undecided": "yellow"}
    for key, v in cmp["verdicts"].items():
        cells = [key.upper(), f"{cmp['all']['pooled_distances'][key]:.4f}"]
        if cmp["filtered"] is not None:
            cells.append(f"{cmp['filtered']['pooled_distances'][key]:.4f}")
        cells += [f"{100 * cmp['all']['shuffle_control'][key]['fraction']:.0f} %",
                  "-" if v["pvalue"] is None else f"{v['pvalue']:.3f}",
                  f"[{colour[v['verdict']]}]{v['verdict']}[/]"]
        table.add_row(*cells)
    console.print(table)
    print_claims(c)
    console.print(f"Verdict rule: {cmp['verdict_rule']} (alpha = {cmp['alpha']}).")
    console.print(
        "The paper's shuffle control counts only ties (a shuffle can never exceed the true "
        "distance); it is shown for comparison with the paper, not used for the verdict."
    )
    hits = [s for s in c["sections"].get("bisection", {}).get("exact_root_steps", []) if s >= 0]
    if hits:
        console.print(f"BM: {len(hits)} of 25 runs reach an exact root (f(z) == 0) at steps "
                      f"{min(hits)}-{max(hits)}; the iterate is then held at the root.")
    for note in c["warnings"]:
        console.print(f"[yellow]note:[/yellow] {note}")
    figures = sorted({str(out / Path(f).with_suffix("")) for f in c["figures"]})
    console.print(f"Results: {out / 'results.json'}")
    console.print(f"Trajectories: {out / c['files']['trajectories']}")
    console.print("Figures (.png and .svg): " + ", ".join(figures))
