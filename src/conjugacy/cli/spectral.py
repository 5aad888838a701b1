"""``conjugacy spectral-dynamics``: the spectral-dynamics measures of the checkpoint runs in any
store (or study output folder), and the companion paper's figures; :func:`print_report` is also the
summary of ``conjugacy reproduce spectral-dynamics`` (:mod:`conjugacy.cli.reproduce`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .._checks import check_out_dir
from . import app, fail


def print_report(results: Any, out: Path) -> None:
    """Print the measures, the claims and the timing of a spectral-dynamics ``Results``."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    content = results.content
    sections = content["sections"]
    groups = sections.get("groups", {})
    if groups:
        table = Table(title="Final effective rank (mean over runs) and top-10 scores")
        table.add_column("condition")
        table.add_column("runs", justify="right")
        table.add_column("effective rank per layer", justify="left")
        table.add_column("alignment score per pair", justify="left")
        for c, g in groups.items():
            er = " ".join(f"{v['mean'][-1]:.3f}" for v in g["effective_rank"].values())
            al = " ".join(f"{v['mean'][-1]:.2f}" for v in g["alignment_score"].values()) or "-"
            table.add_row(c, str(len(g["runs"])), er, al)
        console.print(table)
        skipped = {(s["first"], s["next"], s["reason"]) for g in groups.values()
                   for s in g["chain"]["skipped"]}
        for a, b, why in sorted(skipped):
            console.print(f"[yellow]skipped pair[/] {a} -> {b}: {why}", highlight=False)
    lmc = sections.get("lmc")
    if lmc:
        s = lmc["by_split"]
        console.print("barrier (loss) by split step: " + ", ".join(
            f"{st}: {m:.3g}" for st, m in zip(s["split_steps"], s["barrier_loss"]["mean"])))
    for c in content["claims"]:
        word = {True: "[green]holds[/]", False: "[red]does not hold[/]",
                None: "[yellow]undecided[/]"}[c["holds"]]
        console.print(f"claim: {escape(c['claim'])}: {word} ({escape(c['evidence'])})",
                      highlight=False)
    console.print(f"{len(sections['runs'])} checkpoint run(s); SVDs "
                  f"{content['timing_seconds']['svd']:.2f} s; results and figures in {out}")


@app.command("spectral-dynamics")
def spectral_dynamics(
    source: Annotated[Path, typer.Argument(
        help="A trajectory store with checkpoint runs, or a study output folder.")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Output folder (default: SOURCE/spectral_dynamics for a study folder, "
                      "else SOURCE.spectral_dynamics).")] = None,
    max_rank: Annotated[int, typer.Option("--max-rank", min=1,
                                          help="Directions kept in the diagonals.")] = 100,
    figures: Annotated[bool, typer.Option("--figures/--no-figures", help="Draw figures.")] = True,
) -> None:
    """Effective rank, singular value agreement, alignment and barriers of the checkpoint runs in
    a store; writes results.json and the companion paper's figures (PNG + SVG)."""
    from ..analysis.checkpoints import spectral_dynamics_report

    if not source.exists():
        fail(f"{str(source)!r} does not exist")
    if out is None:
        out = (source / "spectral_dynamics" if (source / "trajectories").is_dir()
               else source.with_name(source.name + ".spectral_dynamics"))
    out = check_out_dir(out)
    try:
        results = spectral_dynamics_report(source, out, max_rank=max_rank, draw=figures)
    except (OSError, ValueError) as exc:
        fail(str(exc))
    print_report(results, out)
