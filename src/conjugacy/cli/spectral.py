"""``conjugacy spectral-dynamics``: the spectral-dynamics measures of the checkpoint runs in any
store (or study output folder), and the companion paper's figures (printed by
:func:`conjugacy.cli.summaries.print_results`, as every ``conjugacy reproduce`` command).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .._checks import Int
from . import app, fail
from ._errors import number_option, source_and_out


@app.command("spectral-dynamics")
def spectral_dynamics(
    source: Annotated[Path, typer.Argument(
        help="A trajectory store with checkpoint runs, or a study output folder.")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Output folder (default: SOURCE/spectral_dynamics for a study folder, "
                      "else SOURCE.spectral_dynamics).")] = None,
    max_rank: Annotated[int, number_option("--max-rank", domain=Int(1),
                                           help="Directions kept in the diagonals.")] = 100,
    figures: Annotated[bool, typer.Option("--figures/--no-figures", help="Draw figures.")] = True,
) -> None:
    """Effective rank, singular value agreement, alignment and barriers of the checkpoint runs in
    a store; writes results.json and the companion paper's figures (PNG + SVG)."""
    from ..analysis.checkpoints import spectral_dynamics_report
    from .summaries import print_results

    out = source_and_out(source, out, "spectral_dynamics", source.name + ".spectral_dynamics")
    try:
        results = spectral_dynamics_report(source, out, max_rank=max_rank, draw=figures)
    except (OSError, ValueError) as exc:
        fail(str(exc))
    print_results(results.content, out)
