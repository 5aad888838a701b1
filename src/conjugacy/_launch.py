"""The ``conjugacy`` console script: the command line, or one line saying which extra it needs.

The core install (``pip install conjugacy``) has the command but not Typer and Rich; without this
launcher it died with a traceback. Nothing here imports more than the standard library until the
command line can be loaded.
"""

from __future__ import annotations

import sys

#: Optional dependency (top-level module) -> the extra that installs it.
EXTRAS = {
    "typer": "cli", "rich": "cli", "click": "cli", "jsonschema": "cli",
    "zarr": "store", "matplotlib": "plots", "torch": "torch", "lightning": "lightning",
    "transformers": "hf", "accelerate": "hf", "sklearn": "data", "mlxtend": "data",
    "dask": "dask", "distributed": "dask",
}


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """One line naming the extra to install for a missing optional dependency (None if the
    missing module is not one of them)."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    return (f"this needs the optional dependency {top!r}: pip install 'conjugacy[{extra}]' "
            "(or 'conjugacy[all]')")


def main() -> None:
    """Run the command line (:func:`conjugacy.cli.main`)."""
    try:
        from .cli import main as cli_main
    except ModuleNotFoundError as exc:
        line = missing_extra(exc)
        if line is None:
            raise
        print(f"error: conjugacy's command line: {line}", file=sys.stderr)
        sys.exit(2)
    cli_main()
