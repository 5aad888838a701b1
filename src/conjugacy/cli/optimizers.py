"""``conjugacy reproduce optimizers``: the optimizer conjugacy of the paper (fig. 2 and S1)."""

from __future__ import annotations

import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from . import reproduce_app


class Loss(str, Enum):
    tan = "tan"
    quartic = "quartic"


class Method(str, Enum):
    rrr = "rrr"
    standard = "standard"
    exact = "exact"


def check_out_dir(out: Path) -> Path:
    """Reject an ``--out`` that exists as a file (or has a file among its parents)."""
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            raise typer.BadParameter(
                f"{str(out)!r} cannot be an output folder: {str(parent)!r} exists and is not a folder",
                param_hint="'--out'",
            )
    return out


@reproduce_app.command("optimizers")
def optimizers(
    loss: Annotated[
        Loss,
        typer.Option(
            "--loss", help="tan: sum tan(x), fig. 2 (OMD, OGD, BM); quartic: sum x^4, fig. S1."
        ),
    ] = Loss.tan,
    method: Annotated[Method, typer.Option("--method", help="DMD variant.")] = Method.rrr,
    out: Annotated[Path, typer.Option("--out", help="Output folder (created if missing).")] = Path(
        "results/optimizers"
    ),
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Seed of the shuffle control and tests.")
    ] = 0,
) -> None:
    """OMD vs OGD (conjugate) vs bisection (not): Koopman spectra, distances, tests, figures.

    Writes results.json, trajectories.npz and figures (PNG, SVG) to --out; prints a summary.

    Verdict: "not conjugate" when the permutation test on 5 group spectra gives p < 0.05.
    """
    from ..experiments.optimizers import VERDICT_RULE, OptimizerConfig, run, save_results

    console = Console()
    err = Console(stderr=True, soft_wrap=True)
    out = check_out_dir(out)
    config = OptimizerConfig(loss=loss.value, method=method.value, seed=seed)
    console.print(
        f"[bold]Optimizer conjugacy[/bold] (loss={config.loss}, method={config.method}, "
        f"delays={config.delays}, rank={config.rank}, eta={config.eta}, T={config.n_steps}, "
        f"25 initial conditions per optimizer)"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            results = run(config)
            written = save_results(results, out)
        except (OSError, ValueError) as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(code=1) from None

    spectra = Table(title="Koopman spectra (all 25 runs)", title_justify="left")
    for col in ("optimizer", "eigenvalues", "complex", "max |lambda|", "min |lambda|"):
        spectra.add_column(col, justify="left" if col == "optimizer" else "right")
    for m in results.methods:
        eig = results.spectra[m].eigenvalues
        n_complex = int((abs(eig.imag) > 1e-12).sum())
        spectra.add_row(
            m.upper(), str(eig.size), str(n_complex), f"{abs(eig).max():.4f}", f"{abs(eig).min():.4f}"
        )
    console.print(spectra)

    table = Table(title="Pairwise comparison", title_justify="left")
    table.add_column("pair")
    table.add_column(f"W_{config.p:g} all", justify="right")
    filtered = results.comparison.get("filtered")
    if filtered is not None:
        table.add_column(f"W_{config.p:g} filtered", justify="right")
    table.add_column("shuffles >= true\n(paper's control)", justify="right")
    table.add_column("permutation p", justify="right")
    table.add_column("verdict")
    for key in results.pair_keys:
        ok = results.conjugate[key]
        cells = [key.upper(), f"{results.wasserstein[key]:.4f}"]
        if filtered is not None:
            cells.append(f"{filtered['pooled_distances'][key]:.4f}")
        table.add_row(
            *cells,
            f"{100 * results.shuffle_fractions[key]:.0f} %",
            f"{results.pvalues[key]:.3f}",
            "[green]conjugate[/green]" if ok else "[red]not conjugate[/red]",
        )
    console.print(table)
    for line in optimizer_claims(results):
        console.print(line, highlight=False)
    console.print(f"Verdict rule: {VERDICT_RULE} (alpha = {config.alpha}); verdicts use the "
                  f"{results.comparison['verdict_uses']} spectra.")
    console.print(
        "The paper's shuffle control counts only ties (a shuffle can never exceed the true "
        "distance); it is shown for comparison with the paper, not used for the verdict."
    )
    if results.exact_root_steps is not None:
        hits = results.exact_root_steps[results.exact_root_steps >= 0]
        if hits.size:
            console.print(
                f"BM: {hits.size} of 25 runs reach an exact root (f(z) == 0) at steps "
                f"{hits.min()}-{hits.max()}; the iterate is then held at the root."
            )
    notes = list(results.notes) + sorted({str(w.message) for w in caught})
    for note in notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    figures = sorted({p.with_suffix("") for p in written["figures"]})
    console.print(f"Results: {written['results'][0]}")
    console.print(f"Trajectories: {written['trajectories'][0]}")
    console.print("Figures (.png and .svg): " + ", ".join(str(p) for p in figures))


def optimizer_claims(results: Any) -> list[str]:
    """The paper's claims about fig. 2 / S1, one line each: holds or does not hold, with numbers
    (the same permutation-test verdicts as the table)."""
    def word(ok: bool) -> str:
        return "[green]holds[/green]" if ok else "[red]does not hold[/red]"

    out = []
    if "omd-ogd" in results.conjugate:
        ok = bool(results.conjugate["omd-ogd"])
        out.append(f"claim: OMD and OGD are conjugate -- {word(ok)} (W1 "
                   f"{results.wasserstein['omd-ogd']:.4f}, p = {results.pvalues['omd-ogd']:.3f})")
    bm = [k for k in results.conjugate if "bm" in k]
    if bm:
        ok = all(not results.conjugate[k] for k in bm)
        nums = ", ".join(f"{k.upper()} W1 {results.wasserstein[k]:.3f} p = {results.pvalues[k]:.3f}"
                         for k in bm)
        out.append(f"claim: bisection is not conjugate to OMD or OGD -- {word(ok)} ({nums})")
    return out

