"""``conjugacy spectrum`` and ``conjugacy compare``: the pipeline on your own trajectories."""

from __future__ import annotations

import contextlib
import math
import struct
import threading
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, BinaryIO, TypeVar

import numpy as np
import typer
from rich.table import Column, Table

from .._checks import UNIT_INTERVAL, Float, Int, check_out_dir
from .._spectrum_io import check_member_info, read_member_data, read_npy_header
from .._text import shown
from ..dmd import METHODS
from . import app
from ._errors import (
    ABANDONED,
    fail,
    number_option,
    parse_delays,
    parse_max_memory,
    parse_rank,
    rich_console,
)

T = TypeVar("T")


#: ``--method``'s choices: the engine's DMD variants (:data:`conjugacy.dmd.METHODS`).
Method = Enum("Method", [(m, m) for m in METHODS], type=str)


def load_trajectories(
    path: Path,
    *,
    key: str | None = None,
    params: list[str] | None = None,
    runs: list[str] | None = None,
    max_memory: int | None = None,
) -> tuple[Any, str]:
    """Read trajectories from a ``.npy`` / ``.npz`` file or a trajectory store folder.

    Files are read with ``allow_pickle=False``: a file holding Python objects is refused rather
    than unpickled. A store is streamed within ``max_memory`` bytes (the whole process; None:
    what the memory cgroup or the system leaves; :meth:`TrajectoryStore.source`). Returns the
    data and a short description of where they came from.

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
        # without zarr: the ModuleNotFoundError becomes one line naming the extra (_errors)
        from ..store import TrajectoryStore

        try:
            # a streaming source: the spectrum reads the store chunk by chunk in one pass
            # (the store stays open, read-only, as long as the source is used)
            store = TrajectoryStore.open(path, mode="r")
            data = store.source(params=params or None, runs=runs or None, max_memory=max_memory)
        except (KeyError, IndexError, TypeError, ValueError, OSError) as exc:
            raise ValueError(f"cannot read the trajectory store {str(path)!r}: {exc}") from None
        return data, f"store {path}"
    if params or runs:
        raise ValueError("--params and --runs apply to a trajectory store folder, not to a file")
    if max_memory is not None:
        raise ValueError("--max-memory applies to a trajectory store folder (streamed within it), "
                         "not to a file (a .npy file is memory-mapped, an .npz member read whole)")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise ValueError(
            f"{str(path)!r}: unsupported file type {suffix or '(none)'!r}; give a .npy file, a "
            ".npz file (with --key NAME if it holds several arrays) or a trajectory store folder"
        )
    if suffix == ".npy" and key is not None:
        raise ValueError("--key applies to .npz files; a .npy file holds a single array")
    if suffix == ".npy":
        return _load_npy(path), str(path)
    data, key = _load_npz_member(path, key)
    return data, f"{path} [{key}]"


def _file_error(path: Path, suffix: str) -> Any:
    hint = ("save a numeric array (n_trajectories, n_steps, n_features) with numpy.save"
            if suffix == ".npy" else "write it again with numpy.savez")

    def fail(problem: str) -> ValueError:
        return ValueError(f"{str(path)!r} is not a readable {suffix} file: {problem}; {hint}")

    return fail


@contextlib.contextmanager
def _opened(path: Path, fail: Callable[[str], ValueError]) -> Iterator[tuple[BinaryIO, int]]:
    """``path`` open for reading, with its size in bytes; an empty file is ``fail``'s error (the
    one prologue of the .npy and .npz readers)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        if size == 0:
            raise fail("the file is empty")
        yield fh, size


def _check_dtype(path: Path, dtype: np.dtype, what: str) -> None:
    if dtype.hasobject:
        raise ValueError(
            f"{what} of {str(path)!r} holds Python objects (pickled data), which are never "
            "loaded; save a numeric array (n_trajectories, n_steps, n_features) instead"
        )
    if dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(
            f"{what} of {str(path)!r} has dtype {dtype}; trajectories must be numbers (float "
            "or int); save a numeric array (n_trajectories, n_steps, n_features)"
        )


def _load_npy(path: Path) -> np.ndarray:
    """A ``.npy`` file, header validated first (magic, version, dtype, non-negative shape whose
    size is exactly the bytes in the file), then memory-mapped so larger-than-memory trajectories
    stream through the Gram path."""
    fail = _file_error(path, ".npy")
    try:
        with _opened(path, fail) as (fh, size):
            offset, shape, fortran, dtype = read_npy_header(fh, size, path.name, fail)
    except OSError as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    _check_dtype(path, dtype, "the array")
    try:
        if math.prod(shape) == 0:  # nothing to map; the shape check in koopman_spectrum says why
            return np.zeros(shape, dtype=dtype)
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                         order="F" if fortran else "C")
    except (OSError, ValueError, OverflowError) as exc:
        raise fail(f"it cannot be memory-mapped ({exc})") from None


def _load_npz_member(path: Path, key: str | None) -> tuple[np.ndarray, str]:
    """One array of a ``.npz`` archive; the zip structure and the member's npy header are
    validated before its data are read, other members are never read."""
    fail = _file_error(path, ".npz")
    try:
        with _opened(path, fail) as (fh, size):
            if fh.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):
                raise fail("it does not start with the zip signature")
            fh.seek(0)
            with zipfile.ZipFile(fh) as zf:
                infos = {i.filename: i for i in zf.infolist()}
                names = [n.removesuffix(".npy") for n in infos if n.endswith(".npy")]
                if not names:
                    raise ValueError(f"{str(path)!r} holds no arrays")
                if {"eigenvalues", "meta"} <= set(names) and key is None:
                    raise ValueError(
                        f"{str(path)!r} is a saved spectrum (conjugacy.Spectrum), not "
                        "trajectories: `conjugacy spectrum` fits one from trajectories (.npy, "
                        ".npz or a store). Compare saved spectra with `conjugacy compare A.npz "
                        "B.npz`, or test them over seeds with `conjugacy test A1.npz A2.npz "
                        "--vs B1.npz --vs B2.npz`")
                if key is None:
                    if len(names) > 1:
                        raise ValueError(
                            f"{str(path)!r} holds {len(names)} arrays ({', '.join(names)}); "
                            "choose one with --key NAME"
                        )
                    key = names[0]
                if key not in names:
                    raise ValueError(
                        f"{str(path)!r} has no array {key!r}; it holds: {', '.join(names)}"
                    )
                info = infos[f"{key}.npy"]
                check_member_info(info, size, fail)
                with zf.open(info) as member:
                    header = read_npy_header(member, info.file_size, key, fail)
                _check_dtype(path, header[3], f"array {key!r}")
                return read_member_data(zf, info, *header), key
    except ValueError:
        raise
    except OSError as exc:
        if exc.strerror:
            raise ValueError(f"cannot read {str(path)!r}: {exc.strerror}") from None
        raise fail(f"it is truncated or damaged ({type(exc).__name__}: {exc})") from None
    except (zipfile.BadZipFile, EOFError, zlib.error, struct.error, OverflowError,
            NotImplementedError, RuntimeError, UnicodeError, KeyError, IndexError, TypeError,
            MemoryError) as exc:
        raise fail(f"it is truncated or damaged ({type(exc).__name__}: {exc})") from None


def _check_spectrum_out(out: Path) -> Path:
    """The .npz file ``--out`` names: not a folder, in a folder that exists."""
    if out.suffix != ".npz" and not out.is_dir():
        out = out.with_name(out.name + ".npz")
    if out.is_dir():
        fail(f"--out {str(out)!r} is a folder; give a file name")
    check_out_dir(out.parent, "the folder of --out")
    if not out.parent.is_dir():
        fail(f"--out {str(out)!r}: folder {str(out.parent)!r} does not exist")
    return out


#: Modes ``conjugacy spectrum`` keeps without ``--rank`` (the tolerance rule over every singular
#: value of a large input took 9 min for 489 eigenvalues in float32 and > 35 min in float64; the
#: top 100 are a top-k solve of the engine). ``--rank all`` asks for the rule without the cap.
DEFAULT_MAX_RANK = 100


def _possible_rank(data: Any, delays: int | str, pca: int | None) -> int | None:
    """``min(observables, snapshot pairs)``: the most modes ``data`` (an array of 2 or 3
    dimensions, or a streamed store selection) allow with ``delays`` (``"auto"``: the most over
    the candidates of :data:`conjugacy.delays.DELAY_LADDER`); None if its shape cannot say."""
    if delays == "auto":
        from ..delays import DELAY_LADDER

        found = [_possible_rank(data, d, pca) for d in DELAY_LADDER]
        return None if None in found else max(int(k) for k in found if k is not None)
    shape = getattr(data, "shape", None)
    if shape is not None and len(shape) in (2, 3):
        lengths = [shape[-2]] * (shape[0] if len(shape) == 3 else 1)
        n_features = shape[-1]
    elif hasattr(data, "lengths") and hasattr(data, "n_features"):
        lengths, n_features = list(data.lengths), data.n_features
    else:
        return None
    n_obs = (pca if pca is not None else n_features) * (delays + 1)
    n_pairs = sum(max(0, int(t) - delays - 1) for t in lengths)
    return int(min(n_obs, n_pairs))


def _default_rank(data: Any, asked: int | str | None, delays: int | str,
                  pca: int | None) -> tuple[int | str | None, str | None]:
    """The rank to fit (None: the tolerance rule) and, when the default cap applies, the note
    that says so and how to ask for more (``delays="auto"``: the cap applies when some candidate
    number of delays allows more modes than it)."""
    if asked is not None:  # "all": the tolerance rule without the cap
        return (None if asked == "all" else asked), None
    possible = _possible_rank(data, delays, pca)
    if possible is None or possible <= DEFAULT_MAX_RANK:
        return None, None
    return DEFAULT_MAX_RANK, (
        f"no --rank given: these data allow up to {possible} modes; kept the leading "
        f"{DEFAULT_MAX_RANK} (a top-k solve, seconds; the tolerance rule over all {possible} "
        "singular values can take many minutes on large inputs). Pass --rank N for N modes, "
        "or --rank all for every mode above the tolerance.")


def interruptible(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a worker thread while the main thread waits, so that Ctrl-C
    stops the command at once (within 0.2 s) even inside one long LAPACK call, which would hold
    off Python's signal handling until it returns (minutes on large inputs). Exceptions of
    ``fn`` are re-raised here. On Ctrl-C the worker is abandoned (a daemon, registered in
    :data:`conjugacy.cli._errors.ABANDONED`): the command then exits through
    :func:`conjugacy.cli._errors.exit_process`, without the teardown that crashed around it."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="conjugacy-compute", daemon=True).start()
    # An event, not Thread.join: a join that Ctrl-C interrupts marks the still-running thread
    # as stopped (CPython 3.11 threading, bpo-45274), so is_alive() would lie afterwards.
    try:
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        ABANDONED.append(done)
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]


def _eigen_table(title: str, spec: Any) -> Table:
    table = Table(*(Column(c, justify="right") for c in ("#", "Re", "Im", "|lambda|", "residual")),
                  title=title, title_justify="left")
    for i, (lam, res) in enumerate(zip(spec.eigenvalues, spec.residuals)):
        table.add_row(str(i), f"{lam.real:+.6f}", f"{lam.imag:+.6f}", f"{abs(lam):.6f}", f"{res:.2e}")
    return table


def _print_spectrum(console: Any, spec: Any, source: str, data: Any, notes: list[str]) -> None:
    """What ``conjugacy spectrum`` prints: the data and settings (with how ``--delays auto``
    chose), the eigenvalue table and the notes."""
    shape = getattr(data, "shape", None)
    what = "shape " + str(tuple(shape)) if shape is not None else "trajectories"
    if shape is None and hasattr(data, "lengths"):  # a streamed store selection
        steps = sorted(set(data.lengths))
        steps_text = str(steps[0]) if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"
        what = (f"{len(data.lengths)} runs x {steps_text} steps x {data.n_features} features")
    console.print(
        f"{shown(source)}: "  # escaped: "file.npz [key]" is not Rich markup
        f"{what}, "
        f"delays={spec.settings['delays']}, method={spec.method}, rank={spec.rank}",
    )
    rule = spec.settings.get("delays_rule")
    if rule is not None:  # --delays auto: the choice and its evidence (also in the saved file)
        console.print(f"delays chosen from the data: {shown(rule['reason'])}")
        for note in rule.get("notes", []):
            console.print(f"[yellow]note:[/yellow] {shown(note)}")
    console.print(_eigen_table("Koopman eigenvalues", spec))
    if not spec.residuals_informative:
        notes = ["rank equals the number of observables, so the residuals are ~0 whatever the "
                 "eigenvalues and carry no information.", *notes]
    for note in notes:
        console.print(f"[yellow]note:[/yellow] {shown(note)}")


def _fit(data: Any, source: str, **kwargs: Any) -> tuple[Any, list[str]]:
    """:func:`conjugacy.koopman_spectrum` of ``data`` with ``kwargs`` (interruptible; a store's
    recording interval recorded, a setting the verdict compares) and the warnings it raised,
    once each, sorted; a ``TypeError``/``ValueError`` exits 2 in one line naming ``source``."""
    from ..spectrum import koopman_spectrum

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            spec = interruptible(koopman_spectrum, data, **kwargs)
    except (TypeError, ValueError) as exc:
        # a store's error names the store already; below its streaming floor, --max-memory
        # (conjugacy.store StreamMemoryError.with_option) rather than the API's max_memory=
        text = exc.with_option("--max-memory") if hasattr(exc, "with_option") else str(exc)
        fail(text if isinstance(exc, OSError) else f"{source}: {text}")
    if hasattr(data, "steps") and hasattr(data, "runs"):  # a store
        from ..analysis.groups import with_record_interval

        spec = with_record_interval(spec, data.steps(data.runs[0]))
    return spec, sorted({str(w.message) for w in caught})


def _capped_delays(data: Any, source: str, delays: int | str,
                   cap: int | None) -> tuple[int | str, Any]:
    """``(delays to fit, DelayChoice or None)``: with ``--delays auto`` and the default rank cap
    applying (``cap``), :func:`conjugacy.delays.choose_delays` at ``max_rank=cap`` here (its
    folds then solve for the top ``cap`` vectors only; the uncapped SVHT over every singular
    value of a (4, 1000, 1500) array ran over 120 s); otherwise ``delays`` as given, for
    :func:`conjugacy.koopman_spectrum` to choose."""
    if delays != "auto" or cap is None:
        return delays, None
    from ..delays import choose_delays

    try:
        choice = interruptible(choose_delays, data, max_rank=cap)
    except (TypeError, ValueError) as exc:
        fail(f"{source}: {exc}")
    return choice.delays, choice


def _with_one_trajectory_note(data: Any, caught: list[str]) -> list[str]:
    """``caught`` with the note that a 2-D array was taken as one trajectory
    (:func:`conjugacy.trajectories.one_trajectory_note`) first, when ``data`` is 2-D and the
    fit did not say it (the streamed route of a wide array, (20, 30), does not warn)."""
    from ..trajectories import one_trajectory_note

    if getattr(data, "ndim", None) != 2:
        return caught
    note = one_trajectory_note(tuple(data.shape))
    return caught if note in caught else [note, *caught]


@app.command("spectrum")
def spectrum(
    file: Annotated[
        Path,
        typer.Argument(
            help="Trajectories (n_traj, n_steps, n_features) or (n_steps, n_features): a .npy "
            "file, a .npz file (pick the array with --key) or a trajectory store folder.",
        ),
    ],
    delays: Annotated[str, typer.Option(
        "--delays", callback=parse_delays, metavar="N|auto",
        help="Number of time delays, or 'auto': the fewest whose held-out one-step prediction "
        "at the SVHT rank is within 2 % of the best (conjugacy.delays.choose_delays; .npy/.npz "
        "input), recorded in the spectrum and printed.")] = "0",
    rank: Annotated[
        str | None,
        typer.Option("--rank", help="Modes kept: a positive integer, 'all' for every "
                     "singular value above the tolerance, or 'svht' for the Gavish-Donoho optimal "
                     "hard threshold (noise level unknown). Default: the tolerance rule, at most "
                     f"{DEFAULT_MAX_RANK} modes (a note says when the cap applies)."),
    ] = None,
    method: Annotated[Method, typer.Option("--method", help="DMD variant.")] = Method.rrr,
    pca: Annotated[
        int | None, number_option("--pca", domain=Int(1),
                                  help="Project on the top PCA components first.")
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
        typer.Option("--runs", help="Store only: run name or glob (repeat; default all)."),
    ] = None,
    max_memory: Annotated[str | None, typer.Option(
        "--max-memory", callback=parse_max_memory, metavar="SIZE",
        help="Store only: memory the whole process may use while streaming, e.g. 800M or 2G "
        "(K/M/G/T: powers of 1024). The read spans and read-ahead are sized to fit; below the "
        "floor one line names the minimum. Default: what the memory cgroup's limit or the "
        "system leaves. A store is streamed when --rank or --pca is given and features "
        "outnumber snapshots; otherwise it is read whole and a note says so.")] = None,
    modes: Annotated[
        bool | None,
        typer.Option(
            "--modes/--no-modes",
            help="Compute and save the DMD modes (default: only where they cost at most 5 % of the "
            "fit; never for "
            "streamed data).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Koopman spectrum of trajectories from a file or a trajectory store; saves it as .npz.

    .npy files and stores are streamed in one pass when a --rank or --pca is given and features
    outnumber snapshots (weight trajectories), so data larger than memory work."""
    console = rich_console()
    asked = parse_rank(rank, ("all",))
    delays_asked: int | str = delays  # parsed by the option's callback
    out = _check_spectrum_out(out)
    try:
        data, source = load_trajectories(file, key=key, params=params, runs=runs,
                                         max_memory=max_memory)  # bytes (the callback)
    except ValueError as exc:
        fail(str(exc))
    if delays_asked == "auto" and not isinstance(data, np.ndarray):
        fail(f"--delays auto reads the trajectories several times and needs them in a .npy or "
             f".npz file; {source} is streamed: give --delays N, or run `conjugacy analyze` on "
             "the store (it chooses the delays from the first seeds of each condition)")
    fit_rank, cap_note = _default_rank(data, asked, delays_asked, pca)
    fit_delays, choice = _capped_delays(data, source, delays_asked, fit_rank if cap_note else None)
    spec, caught = _fit(data, source, delays=fit_delays, rank=fit_rank, method=method.value,
                        pca=pca, modes="auto" if modes is None else modes)
    if choice is not None:  # recorded as koopman_spectrum records its own choice
        spec.settings["delays_rule"] = choice.as_dict()
    caught = _with_one_trajectory_note(data, caught)
    try:
        path = spec.save(out)
    except OSError as exc:
        fail(f"cannot write {str(out)!r}: {exc}")
    if delays_asked == "auto" and cap_note:  # the note for the delays chosen (None: no cap)
        cap_note = _default_rank(data, asked, int(spec.settings["delays"]), pca)[1]
        cap_note = (f"{cap_note} --delays auto scored its candidates at the same cap "
                    f"(min(SVHT rank, {DEFAULT_MAX_RANK}))." if cap_note else None)
    notes = ([cap_note] if cap_note else []) + caught
    if max_memory is not None and "streamed" not in str(spec.settings.get("path")):
        notes.append(f"--max-memory bounds a streamed read only; these data were read whole "
                     f"(path {spec.settings.get('path')}): give --rank or --pca to stream them")
    _print_spectrum(console, spec, source, data, notes)
    console.print(f"Saved: {shown(str(path))}", soft_wrap=True)


@app.command("compare")
def compare(
    a: Annotated[Path, typer.Argument(help="A spectrum saved by `conjugacy spectrum` (.npz).")],
    b: Annotated[Path, typer.Argument(help="Another saved spectrum.")],
    p: Annotated[float, number_option("--p", domain=Float(1),
                                      help="Order of the Wasserstein distance.")] = 1.0,
    filtered: Annotated[
        bool,
        typer.Option("--filtered/--all", help="Compare the eigenpairs the data support "
                     "(Spectrum.filtered(), the default) or all eigenvalues."),
    ] = True,
) -> None:
    """Wasserstein distance between two saved spectra (and the semi-conjugacy distance when
    their sizes differ), with the caveats that decide how to read it.

    One spectrum per condition cannot say whether a distance exceeds run-to-run noise: for a
    verdict, fit one spectrum per independent seed and use `conjugacy test` (or `conjugacy
    analyze` on a store)."""
    from ..compare import load_compared, semiconjugacy_distance, wasserstein

    console = rich_console()
    # a SpectrumFileError names the file, what is wrong (or too many eigenvalues) and the fix:
    # exit 2 (see _errors)
    sa, sb = load_compared(a), load_compared(b)
    all_dist = wasserstein(sa, sb, p=p)
    caveats = _settings_caveats([sa, sb], ["A", "B"])
    if filtered:
        sa, sb = _filtered(sa, a, caveats), _filtered(sb, b, caveats)
    dist = wasserstein(sa, sb, p=p) if filtered else all_dist
    table = Table("quantity", Column("value", justify="right"), title="Spectrum comparison",
                  title_justify="left")
    table.add_row("A", f"{shown(str(a))} ({len(sa)} eigenvalues)")
    table.add_row("B", f"{shown(str(b))} ({len(sb)} eigenvalues)")
    table.add_row(f"Wasserstein W_{p:g} ({'filtered' if filtered else 'all eigenvalues'})",
                  f"{dist:.6g}")
    if filtered:
        table.add_row(f"Wasserstein W_{p:g} (all eigenvalues)", f"{all_dist:.6g}")
    if len(sa) != len(sb):
        small, large = (sa, sb) if len(sa) < len(sb) else (sb, sa)
        label = "A in B" if small is sa else "B in A"
        table.add_row(f"semi-conjugacy ({label})", f"{semiconjugacy_distance(small, large, p=p):.6g}")
        caveats.append(
            f"the spectra have {len(sa)} and {len(sb)} eigenvalues: part of the distance may come "
            "from that (compare spectra fitted alike; the semi-conjugacy distance asks whether "
            "one is a subset of the other)"
        )
    console.print(table)
    console = rich_console(soft_wrap=True)
    console.print(
        f"W_{p:g} = {dist:.4g} between A and B. No verdict from one spectrum each: whether this "
        "exceeds run-to-run noise needs spectra of independent seeds (`conjugacy test a1.npz "
        "a2.npz a3.npz --vs b1.npz --vs b2.npz --vs b3.npz`, or `conjugacy analyze STORE`).",
    )
    for c in caveats:
        console.print(f"[yellow]caveat:[/yellow] {shown(c)}")


def _settings_caveats(spectra: list[Any], labels: list[str]) -> list[str]:
    """Settings that differ between spectra (:func:`conjugacy.stats.settings_mismatch`: then the
    distance partly measures the settings), the number of features, and reduced ranks."""
    from ..stats import settings_mismatch

    out = [f"{m}: the distance partly measures the settings"
           for m in settings_mismatch(spectra, labels)]
    n_features = [sp.settings.get("n_features") for sp in spectra]
    if len(set(map(repr, n_features))) > 1:
        out.append("n_features differs (" + ", ".join(
            f"{lab}: {v}" for lab, v in zip(labels, n_features)) + ")")
    for sp, lab in zip(spectra, labels):
        if sp.settings.get("rank_reduced"):
            out.append(f"{lab}: the rank was reduced to the data's numerical rank ({sp.rank})")
    return out


def _filtered(spec: Any, path: Path, caveats: list[str]) -> Any:
    """``spec`` filtered by its residuals (:func:`conjugacy.analysis.filter_spectrum`: as it is
    when filtered already, by its maker's rule), or as it is, with a caveat, without them."""
    from ..analysis.comparison import filter_spectrum

    if spec.data_residuals is None:
        caveats.append(f"{path} has no data residuals (an older file): compared unfiltered")
        return spec
    return filter_spectrum(spec)


@app.command()
def test(
    a: Annotated[list[Path], typer.Argument(help="Spectra of condition A, one per independent "
                                            "seed (.npz files saved by `conjugacy spectrum`).")],
    vs: Annotated[list[Path], typer.Option("--vs", help="A spectrum of condition B (repeat the "
                                           "option for each seed).")],
    alpha: Annotated[float, number_option("--alpha", domain=UNIT_INTERVAL,
                                          help="Significance level of the verdict.")] = 0.05,
    filtered: Annotated[bool, typer.Option("--filtered/--all", help="Test the filtered "
                                           "spectra (default) or all eigenvalues.")] = True,
    permutations: Annotated[int, number_option("--permutations", domain=Int(1),
                                               help="Random relabelings when the exact "
                                               "enumeration is larger.")] = 999,
    seed: Annotated[int, number_option("--seed", domain=Int(0),
                                       help="Seed of the relabelings.")] = 0,
) -> None:
    """Are conditions A and B conjugate? Permutation test on spectra of independent seeds
    (`conjugacy.conjugacy_test`), with its verdict, effect size and the smallest p-value the
    numbers of seeds allow."""
    from ..compare import load_compared
    from ..stats import conjugacy_test, settings_mismatch, verdict

    if len(a) < 2 or len(vs) < 2:
        fail(f"conjugacy test needs at least 2 spectra per condition (got {len(a)} and "
             f"{len(vs)}): one per independent seed, e.g. `conjugacy test a1.npz a2.npz a3.npz "
             "--vs b1.npz --vs b2.npz --vs b3.npz`")
    group_a = [load_compared(x) for x in a]  # at most MAX_COMPARED_EIGENVALUES each
    group_b = [load_compared(x) for x in vs]
    labels = [f"A{i + 1}" for i in range(len(a))] + [f"B{i + 1}" for i in range(len(vs))]
    mismatch = settings_mismatch(group_a + group_b, labels)
    caveats = _settings_caveats(group_a + group_b, labels)[len(mismatch):]
    if filtered:
        group_a = [_filtered(sp, x, caveats) for sp, x in zip(group_a, a)]
        group_b = [_filtered(sp, x, caveats) for sp, x in zip(group_b, vs)]
    res = conjugacy_test(group_a, group_b, n_permutations=permutations, seed=seed)
    v = verdict(res.pvalue, res.min_pvalue, alpha, mismatch=mismatch)
    console = rich_console(soft_wrap=True)  # the verdict stays one line, whatever the terminal
    console.print(
        f"verdict: {v.verdict} ({shown(v.reason)}). p = {res.pvalue:.3g} (smallest attainable "
        f"{res.min_pvalue:.3g}, alpha {alpha:g}), effect size {res.effect_size:.3g} "
        "(between-condition minus within-condition W1, in units of the within-condition "
        f"distance), {len(a)} vs {len(vs)} seeds, {'filtered' if filtered else 'all eigenvalues'}.",
    )
    for c in caveats:
        console.print(f"[yellow]caveat:[/yellow] {shown(c)}")
