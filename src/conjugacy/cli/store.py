"""``conjugacy store ls|show|verify``: what a trajectory store holds, and whether it is intact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .._text import shown
from . import app
from ._errors import ErrorHandlingGroup, rich_console

store_app = typer.Typer(cls=ErrorHandlingGroup, no_args_is_help=True,
                        help="Inspect and verify trajectory stores (runs, parameters, steps).")
app.add_typer(store_app, name="store")


@store_app.command("ls")
def ls(path: Annotated[Path, typer.Argument(help="Directory of the trajectory store.")]) -> None:
    """List the runs of a store: steps complete, parameters, features, scalars.

    One plain line per run (never cut, whatever the terminal width).
    """
    from ..store import TrajectoryStore

    # a StoreError (an OSError: a missing or foreign folder, damage) is one line, exit 2 (_errors)
    with TrajectoryStore.open(path, "r") as st:
        header = ("run", "steps complete", "steps", "parameters", "features", "dtype",
                  "scalars", "finished")
        rows = []
        for run in st.runs():
            info = st.run_info(run)
            dtypes = sorted({v["dtype"] for v in info["parameters"].values()})
            span = f"{info['first_step']}..{info['last_step']}" if info["n_complete"] else "-"
            rows.append((shown(run, markup=False), str(info["n_complete"]), span,
                         str(len(info["parameters"])), str(info["n_features"]),
                         shown(",".join(dtypes), markup=False),
                         shown(",".join(info["scalars"]), markup=False) or "-",
                         "yes" if info["finished"] else "no"))
        typer.echo(f"runs in {shown(path, markup=False)} (format version "
                   f"{shown(st.format_version, markup=False)}):")
        if not rows:
            typer.echo("(no runs)")
            return
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
        right = {1, 3, 4}
        for r in (header, *rows):
            cells = [c.rjust(w) if i in right else c.ljust(w)
                     for i, (c, w) in enumerate(zip(r, widths))]
            typer.echo("  ".join(cells).rstrip())


@store_app.command("verify")
def verify(
    path: Annotated[Path, typer.Argument(help="Directory of the trajectory store.")],
) -> None:
    """Read and check every chunk of every run: checksums, missing chunks, n_complete.

    Exit code 0: no damage found; 1: damage found (each damaged place listed: run, array, chunk,
    records and training steps); 2: not a trajectory store (missing path, foreign folder).
    """
    from ..store import TrajectoryStore

    with TrajectoryStore.open(path, "r", check=False) as st:  # a StoreError: exit 2 (_errors)
        report = st.verify()
    typer.echo("\n".join(shown(line, markup=False) for line in str(report).splitlines()))
    if not report.ok:
        raise typer.Exit(code=1)


@store_app.command("show")
def show(
    path: Annotated[Path, typer.Argument(help="Directory of the trajectory store.")],
    run: Annotated[str, typer.Argument(help="Run name (see `conjugacy store ls`).")],
) -> None:
    """Show one run: parameters and shapes, scalars, steps complete, metadata."""
    from ..store import TrajectoryStore

    with TrajectoryStore.open(path, "r") as st:  # a StoreError (unknown run): exit 2 (_errors)
        info = st.run_info(run)
        scalars = {name: st.scalars(run, name) for name in info["scalars"]}  # read before printing
        con = rich_console()
        span = f"steps {info['first_step']}..{info['last_step']}" if info["n_complete"] else ""
        con.print(f"[bold]{shown(run)}[/bold]: {info['n_complete']} steps complete {span}, "
                  f"{info['n_features']} features, finished: {info['finished']}")
        pt = Table("parameter", "shape", "dtype", "size", "features",
                   title="parameters (feature order)")
        off = 0
        for name, v in info["parameters"].items():
            pt.add_row(shown(name), "x".join(map(str, v["shape"])) or "()", shown(v["dtype"]),
                       str(v["size"]), f"{off}:{off + v['size']}")
            off += v["size"]
        con.print(pt)
        if info["scalars"]:
            stt = Table("scalar", "first", "last", "recorded", title="scalars")
            for name, x in scalars.items():
                ok = x[x == x]  # the values recorded (NaN != NaN marks a step without one)
                stt.add_row(shown(name), f"{ok[0]:.6g}" if ok.size else "-",
                            f"{ok[-1]:.6g}" if ok.size else "-", f"{ok.size}/{x.size}")
            con.print(stt)
        mt = Table("key", "value", title="metadata")
        for k, v in info["metadata"].items():
            text = v if isinstance(v, str) else json.dumps(v)
            mt.add_row(shown(k), shown(text if len(text) <= 300 else text[:297] + "..."))
        con.print(mt)
