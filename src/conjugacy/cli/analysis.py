"""``conjugacy spectrum`` and ``conjugacy compare``: the pipeline on your own trajectories."""

from __future__ import annotations

import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from . import app


class Method(str, Enum):
    rrr = "rrr"
    standard = "standard"
    exact = "exact"


def _fail(message: str) -> typer.Exit:
    # soft_wrap: long paths in error messages are not broken across lines
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code=1)


def load_trajectories(
    path: Path,
    *,
    key: str | None = None,
    params: list[str] | None = None,
    runs: list[str] | None = None,
) -> tuple[Any, str]:
    """Read trajectories from a ``.npy`` / ``.npz`` file or a trajectory store folder.

    Files are read with ``allow_pickle=False``: a file holding Python objects is refused rather
    than unpickled. Returns the data and a short description of where they came from.

    Raises
    ------
    ValueError
        With a message naming the file and what is wrong (unknown suffix, missing key, object
        array, unreadable file, options that do not apply).
    """
    if not path.exists():
        raise ValueError(f"{str(path)!r} does not exist")
    if path.is_dir():
        if key is not None:
            raise ValueError("--key applies to .npz files, not to a trajectory store folder")
        try:
            from ..store import TrajectoryStore
        except ImportError as exc:
            raise ValueError(
                f"{str(path)!r} is a folder; reading a trajectory store needs conjugacy.store "
                f"(and zarr): {exc}"
            ) from None
        try:
            with TrajectoryStore.open(path, mode="r") as store:
                data = store.read(params=params or None, runs=runs or None)
        except (KeyError, IndexError, TypeError, ValueError, OSError) as exc:
            raise ValueError(f"cannot read the trajectory store {str(path)!r}: {exc}") from None
        return data, f"store {path}"
    if params or runs:
        raise ValueError("--params and --runs apply to a trajectory store folder, not to a file")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise ValueError(
            f"{str(path)!r}: unsupported file type {suffix or '(none)'!r}; give a .npy file, a "
            ".npz file (with --key NAME if it holds several arrays) or a trajectory store folder"
        )
    if suffix == ".npy" and key is not None:
        raise ValueError("--key applies to .npz files; a .npy file holds a single array")
    magic = {".npy": b"\x93NUMPY", ".npz": b"PK\x03\x04"}[suffix]
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(magic))
    except OSError as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc}") from None
    if head != magic:
        # np.load would otherwise take any other content for a pickle and say so
        raise ValueError(
            f"{str(path)!r} is not a readable {suffix} file (it does not start with the "
            f"{'NumPy' if suffix == '.npy' else 'zip'} signature)"
        )
    try:
        # .npy: memory-mapped, so trajectories larger than memory stream through the Gram path
        loaded = np.load(path, allow_pickle=False, mmap_mode="r" if suffix == ".npy" else None)
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "python objects" in str(exc).lower():
            raise ValueError(
                f"{str(path)!r} holds Python objects (pickled data), which are never loaded; "
                "save a numeric array (n_trajectories, n_steps, n_features) instead"
            ) from None
        raise ValueError(f"{str(path)!r} is not a readable {suffix} file: {exc}") from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"{str(path)!r} is not a readable {suffix} file: {exc}") from None
    if suffix == ".npy":
        return loaded, str(path)
    with loaded as archive:
        names = list(archive.files)
        if not names:
            raise ValueError(f"{str(path)!r} holds no arrays")
        if key is None:
            if len(names) > 1:
                raise ValueError(
                    f"{str(path)!r} holds {len(names)} arrays ({', '.join(names)}); choose one "
                    "with --key NAME"
                )
            key = names[0]
        if key not in names:
            raise ValueError(f"{str(path)!r} has no array {key!r}; it holds: {', '.join(names)}")
        try:
            data = archive[key]
        except ValueError as exc:
            raise ValueError(
                f"array {key!r} of {str(path)!r} cannot be read without unpickling "
                f"(object data are never loaded): {exc}"
            ) from None
    return data, f"{path} [{key}]"


def _check_spectrum_out(out: Path) -> Path:
    if out.is_dir():
        raise typer.BadParameter(f"{str(out)!r} is a folder; give a file name", param_hint="'--out'")
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")
        if out.is_dir():
            raise typer.BadParameter(f"{str(out)!r} is a folder; give a file name", param_hint="'--out'")
    if not out.parent.is_dir():
        raise typer.BadParameter(
            f"folder {str(out.parent)!r} of {str(out)!r} does not exist", param_hint="'--out'"
        )
    return out


def _eigen_table(title: str, spec: Any) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("#", "Re", "Im", "|lambda|", "residual"):
        table.add_column(col, justify="right")
    for i, (lam, res) in enumerate(zip(spec.eigenvalues, spec.residuals)):
        table.add_row(str(i), f"{lam.real:+.6f}", f"{lam.imag:+.6f}", f"{abs(lam):.6f}", f"{res:.2e}")
    return table


@app.command("spectrum")
def spectrum(
    file: Annotated[
        Path,
        typer.Argument(
            help="Trajectories (n_traj, n_steps, n_features) or (n_steps, n_features): a .npy "
            "file, a .npz file (pick the array with --key) or a trajectory store folder.",
        ),
    ],
    delays: Annotated[int, typer.Option("--delays", min=0, help="Number of time delays.")] = 0,
    rank: Annotated[
        int | None,
        typer.Option("--rank", min=1, help="Modes kept (default: singular value tolerance rule)."),
    ] = None,
    method: Annotated[Method, typer.Option("--method", help="DMD variant.")] = Method.rrr,
    pca: Annotated[
        int | None, typer.Option("--pca", min=1, help="Project on the top PCA components first.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Where to save the spectrum (.npz).")] = Path(
        "spectrum.npz"
    ),
    key: Annotated[str | None, typer.Option("--key", help="Name of the array in a .npz file.")] = None,
    params: Annotated[
        list[str] | None,
        typer.Option(
            "--params",
            help="Store only: parameter name or glob to read (repeat for several; default all).",
        ),
    ] = None,
    runs: Annotated[
        list[str] | None,
        typer.Option("--runs", help="Store only: run name to read (repeat for several; default all)."),
    ] = None,
) -> None:
    """Koopman spectrum of trajectories from a file or a trajectory store; saves it as .npz."""
    from ..spectrum import koopman_spectrum

    console = Console()
    out = _check_spectrum_out(out)
    try:
        data, source = load_trajectories(file, key=key, params=params, runs=runs)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            spec = koopman_spectrum(data, delays=delays, rank=rank, method=method.value, pca=pca)
    except (TypeError, ValueError) as exc:
        raise _fail(f"{source}: {exc}") from None
    try:
        path = spec.save(out)
    except OSError as exc:
        raise _fail(f"cannot write {str(out)!r}: {exc}") from None
    shape = getattr(data, "shape", None)
    console.print(
        f"{source}: {'shape ' + str(tuple(shape)) if shape is not None else 'trajectories'}, "
        f"delays={delays}, method={spec.method}, rank={spec.rank}",
        highlight=False,
    )
    console.print(_eigen_table("Koopman eigenvalues", spec))
    if not spec.residuals_informative:
        console.print(
            "note: rank equals the number of observables, so the residuals are ~0 whatever the "
            "eigenvalues and carry no information."
        )
    for note in sorted({str(w.message) for w in caught}):
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    console.print(f"Saved: {path}", highlight=False, soft_wrap=True)


@app.command("compare")
def compare(
    a: Annotated[Path, typer.Argument(help="A spectrum saved by `conjugacy spectrum` (.npz).")],
    b: Annotated[Path, typer.Argument(help="Another saved spectrum.")],
    p: Annotated[float, typer.Option("--p", min=1.0, help="Order of the Wasserstein distance.")] = 1.0,
) -> None:
    """Wasserstein distance between two saved spectra (and the semi-conjugacy distance when
    their sizes differ)."""
    from ..compare import semiconjugacy_distance, wasserstein
    from ..spectrum import Spectrum

    console = Console()
    spectra = []
    for path in (a, b):
        try:
            spectra.append(Spectrum.load(path))
        except (OSError, ValueError, KeyError) as exc:
            raise _fail(f"cannot load a spectrum from {str(path)!r}: {exc}") from None
    sa, sb = spectra
    dist = wasserstein(sa, sb, p=p)
    table = Table(title="Spectrum comparison", title_justify="left")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("A", f"{a} ({len(sa)} eigenvalues)")
    table.add_row("B", f"{b} ({len(sb)} eigenvalues)")
    table.add_row(f"Wasserstein W_{p:g}", f"{dist:.6g}")
    if len(sa) != len(sb):
        small, large = (sa, sb) if len(sa) < len(sb) else (sb, sa)
        label = "A in B" if small is sa else "B in A"
        table.add_row(f"semi-conjugacy ({label})", f"{semiconjugacy_distance(small, large, p=p):.6g}")
    console.print(table)
