"""``conjugacy spectral-dynamics`` and ``conjugacy reproduce spectral-dynamics``.

The first reads the checkpoint runs of any store (or study output folder), computes every
spectral-dynamics measure and draws the companion paper's figures; the second trains the quick
reproduction and reports which findings hold. Both call one library function and print a summary.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from . import app, fail, reproduce_app


def _fail(message: str) -> NoReturn:
    """Stop with ``message`` as a one-line user error (exit status 2, via the app's handler)."""
    fail(message)


def _print_report(results: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    groups = results.get("groups", {})
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
    lmc = results.get("lmc")
    if lmc:
        s = lmc["by_split"]
        console.print("barrier (loss) by split step: " + ", ".join(
            f"{st}: {m:.3g}" for st, m in zip(s["split_steps"], s["barrier_loss"]["mean"])))
    for name, f in results.get("findings", {}).items():
        verdict = {True: "[green]holds[/]", False: "[red]does not hold[/]",
                   None: "[yellow]not tested[/]"}[f.get("holds")]
        console.print(f"finding {name}: {verdict}")
    t = results.get("timing", {})
    console.print(f"{len(results.get('runs', {}))} checkpoint run(s); SVDs "
                  f"{t.get('svd_seconds', 0):.2f} s; results and figures in {out}")


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
    from ..experiments.spectral_dynamics import spectral_dynamics_report

    if not source.exists():
        _fail(f"{str(source)!r} does not exist")
    if out is None:
        out = (source / "spectral_dynamics" if (source / "trajectories").is_dir()
               else source.with_name(source.name + ".spectral_dynamics"))
    try:
        results = spectral_dynamics_report(source, out, max_rank=max_rank, draw=figures)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    _print_report(results, out)


class Scale(str, Enum):
    quick = "quick"
    tiny = "tiny"


@reproduce_app.command("spectral-dynamics")
def reproduce_spectral_dynamics(
    scale: Annotated[Scale, typer.Option(
        "--scale", help="quick (MNIST 5k sample, ~10 min on 2 cores) or tiny (digits, seconds).")
    ] = Scale.quick,
    out: Annotated[Path, typer.Option("--out", help="Output folder (a rerun resumes).")] = Path(
        "results/spectral_dynamics"),
    seeds: Annotated[int | None, typer.Option("--seeds", min=1, help="Seeds per condition.")
                     ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Epochs per run.")] = None,
    figures: Annotated[bool, typer.Option("--figures/--no-figures", help="Draw figures.")] = True,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars.")
                        ] = True,
) -> None:
    """Spectral dynamics of a 4-layer MLP (companion paper): true vs random labels, weight decay,
    settling of singular vectors, barrier vs split step. Writes results.json and figures."""
    from ..experiments.spectral_dynamics import SCALES, run

    overrides: dict[str, Any] = {}
    if seeds is not None:
        overrides["n_seeds"] = seeds
    if epochs is not None:
        overrides["epochs"] = epochs
    try:
        config = SCALES[scale.value].with_overrides(**overrides)
    except (TypeError, ValueError) as exc:
        _fail(str(exc))
    try:
        results = run(config, out, progress=progress, draw=figures)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    _print_report(results, out)
