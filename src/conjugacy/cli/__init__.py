"""Command-line interface, installed as the ``conjugacy`` command (Typer + Rich).

Each submodule registers its commands on :data:`app`; the ``reproduce`` commands are one table in
:mod:`conjugacy.cli.reproduce` whose options take their domains from the experiments' configs.
The commands parse arguments, call one library function, and print with Rich. No math lives here.
User errors (raise :class:`UserError` via :func:`fail`, or let a ``SpectrumFileError`` /
``OSError`` through) become one line and exit status 2, Ctrl-C exit status 130, in one place:
:mod:`conjugacy.cli._errors`; every command that writes checks its output folder with
:func:`conjugacy._checks.check_out_dir`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ._errors import ErrorHandlingGroup, UserError, fail  # noqa: F401  (for the command modules)
from .reproduce import ReproduceGroup

app = typer.Typer(
    cls=ErrorHandlingGroup,
    name="conjugacy",
    help="Identify equivalent training dynamics from Koopman spectra of weight trajectories.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
reproduce_app = typer.Typer(
    cls=ReproduceGroup,
    help="Reproduce the experiments of Redman et al. (NeurIPS 2024).", no_args_is_help=True
)
app.add_typer(reproduce_app, name="reproduce")


def _show_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"conjugacy {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True,
                     help="Print the version of conjugacy and exit."),
    ] = False,
) -> None:
    """Identify equivalent training dynamics from Koopman spectra of weight trajectories."""


# the command modules register their commands on app when imported; the reproduce commands are
# built from the table in conjugacy.cli.reproduce when they run (ReproduceGroup)
from . import analysis, analyze, spectral, store  # noqa: E402,F401


def main() -> None:
    """Entry point of the ``conjugacy`` console script."""
    app()
