"""Command-line interface, installed as the ``conjugacy`` command (Typer + Rich).

Each submodule registers its commands on :data:`app` or :data:`reproduce_app`; the commands parse
arguments, call one library function, and print with Rich. No math lives here.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="conjugacy",
    help="Identify equivalent training dynamics from Koopman spectra of weight trajectories.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
reproduce_app = typer.Typer(
    help="Reproduce the experiments of Redman et al. (NeurIPS 2024).", no_args_is_help=True
)
app.add_typer(reproduce_app, name="reproduce")

from . import analysis, deep, optimizers, store  # noqa: E402,F401  (they register commands)


def main() -> None:
    """Entry point of the ``conjugacy`` console script."""
    app()
