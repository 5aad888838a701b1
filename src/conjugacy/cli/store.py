"""``conjugacy store ls PATH`` and ``conjugacy store show PATH RUN``: what a trajectory store holds."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from . import app

store_app = typer.Typer(help="Inspect trajectory stores (runs, parameters, steps complete).",
                        no_args_is_help=True)
app.add_typer(store_app, name="store")


def _open(path: Path):  # noqa: ANN202
    from ..store import StoreError, TrajectoryStore

    try:
        return TrajectoryStore.open(path, "r")
    except StoreError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(code=2) from None


@store_app.command("ls")
def ls(path: Annotated[Path, typer.Argument(help="Directory of the trajectory store.")]) -> None:
    """List the runs of a store: steps complete, parameters, features, scalars."""
    st = _open(path)
    with st:
        table = Table(title=f"runs in {path}")
        for col in ("run", "steps complete", "steps", "parameters", "features", "dtype",
                    "scalars", "finished"):
            table.add_column(col, justify="right" if col in ("steps complete", "parameters",
                                                             "features") else "left")
        for run in st.runs():
            info = st.run_info(run)
            dtypes = sorted({v["dtype"] for v in info["parameters"].values()})
            span = (f"{info['first_step']}..{info['last_step']}" if info["n_complete"] else "-")
            table.add_row(run, str(info["n_complete"]), span, str(len(info["parameters"])),
                          str(info["n_features"]), ",".join(dtypes),
                          ", ".join(info["scalars"]) or "-", "yes" if info["finished"] else "no")
        Console().print(table)
        if not st.runs():
            Console().print("(no runs)")


@store_app.command("show")
def show(
    path: Annotated[Path, typer.Argument(help="Directory of the trajectory store.")],
    run: Annotated[str, typer.Argument(help="Run name (see `conjugacy store ls`).")],
) -> None:
    """Show one run: parameters and shapes, scalars, steps complete, metadata."""
    from ..store import StoreError

    st = _open(path)
    with st:
        try:
            info = st.run_info(run)
        except StoreError as exc:
            Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(code=2) from None
        con = Console()
        span = f"steps {info['first_step']}..{info['last_step']}" if info["n_complete"] else ""
        con.print(f"[bold]{run}[/bold]: {info['n_complete']} steps complete {span}, "
                  f"{info['n_features']} features, finished: {info['finished']}", highlight=False)
        pt = Table(title="parameters (feature order)")
        for col in ("parameter", "shape", "dtype", "size", "features"):
            pt.add_column(col)
        off = 0
        for name, v in info["parameters"].items():
            pt.add_row(name, "x".join(map(str, v["shape"])) or "()", v["dtype"], str(v["size"]),
                       f"{off}:{off + v['size']}")
            off += v["size"]
        con.print(pt)
        if info["scalars"]:
            stt = Table(title="scalars")
            for col in ("scalar", "first", "last", "recorded"):
                stt.add_column(col)
            for name in info["scalars"]:
                x = st.scalars(run, name)
                ok = x[~(x != x)] if x.size else x
                stt.add_row(name, _fmt(ok[0]) if ok.size else "-", _fmt(ok[-1]) if ok.size else "-",
                            f"{ok.size}/{x.size}")
            con.print(stt)
        mt = Table(title="metadata")
        mt.add_column("key")
        mt.add_column("value")
        for k, v in info["metadata"].items():
            text = v if isinstance(v, str) else json.dumps(v)
            mt.add_row(k, text if len(text) <= 300 else text[:297] + "...")
        con.print(mt)


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.6g}"
