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
    return extra_line((exc.name or "").split(".")[0])


def extra_line(module: str, who: str = "this") -> str | None:
    """``"<who> needs the optional dependency 'zarr': pip install 'conjugacy[store]' (or
    'conjugacy[all]')"`` for a top-level module of :data:`EXTRAS` (None for any other)."""
    extra = EXTRAS.get(module)
    if extra is None:
        return None
    return (f"{who} needs the optional dependency {module!r}: pip install "
            f"'conjugacy[{extra}]' (or 'conjugacy[all]')")


def installed(module: str) -> bool:
    """Whether the top-level ``module`` can be imported, without importing it (a module set to
    ``None`` in ``sys.modules``, as tests do to simulate a missing one, counts as missing)."""
    import importlib.util

    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, who: str) -> None:
    """Stop ``who`` (e.g. ``"import conjugacy.plots"``) with one line naming the extra when the
    optional ``module`` is not installed.

    Raises
    ------
    ModuleNotFoundError
        (an :class:`ImportError`) with ``name=module`` and the line of :func:`extra_line`, e.g.
        ``import conjugacy.plots needs the optional dependency 'matplotlib': pip install
        'conjugacy[plots]' (or 'conjugacy[all]')``; the command line shows the same line.
    """
    if not installed(module):
        raise ModuleNotFoundError(extra_line(module, who), name=module)


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
