"""Command-line interface, installed as the ``conjugacy`` command (Typer + Rich).

Each submodule registers its commands on :data:`app` or :data:`reproduce_app`; the commands parse
arguments, call one library function, and print with Rich. No math lives here. User errors (raise
:class:`UserError` via :func:`fail`, or let a ``SpectrumFileError`` / ``OSError`` through) become one
line and exit status 2, Ctrl-C exit status 130, in one place: :mod:`conjugacy.cli._errors`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ._errors import ErrorHandlingGroup, UserError, fail  # noqa: F401  (for the command modules)

app = typer.Typer(
    cls=ErrorHandlingGroup,
    name="conjugacy",
    help="Identify equivalent training dynamics from Koopman spectra of weight trajectories.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
reproduce_app = typer.Typer(
    cls=ErrorHandlingGroup,
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


# the command modules register their commands on app / reproduce_app when imported
from . import analysis, analyze, cnn, deep, optimizers, spectral, store  # noqa: E402,F401


def main() -> None:
    """Entry point of the ``conjugacy`` console script."""
    app()
