"""Fuzzing the file readers: every damaged or foreign file gets a clean error naming it.

Seeded byte mutations (deterministic, a few hundred cases per reader, a few seconds in all) of

* saved spectra given to :meth:`conjugacy.Spectrum.load`: raw mutations of the archive (truncation,
  bit flips, overwritten, deleted and inserted spans), mutations of one member re-zipped with a
  valid CRC (so the npy headers and the JSON ``meta`` themselves are attacked), and hand-crafted
  files (huge or negative declared shapes, object and structured dtypes, wrong meta types, deep
  JSON, encrypted or unknown zip compression, unknown members);
* trajectory stores given to ``TrajectoryStore.open(path, "r").read()``: one chunk or metadata file
  truncated, flipped, overwritten, emptied, deleted or replaced by other JSON;
* the CLI's file arguments: ``conjugacy spectrum`` on mutated ``.npy`` / ``.npz`` trajectories and
  ``conjugacy compare`` on mutated spectra;
* ``results.json`` files given to :func:`conjugacy.analysis.results.read_results` and the report's
  text (byte mutations; one field replaced by a hostile value: wrong types, huge numbers, NaN,
  control characters, long lists, large or ragged matrices, many conditions or windows, deep
  nesting), a sample of the accepted ones and hand-crafted files (a FIFO, ``/dev/zero``, over the
  size, value and depth limits) through ``conjugacy report``, each within a time and memory bound.

An outcome is *ok* (read, or for the CLI exit 0), *clean* (``ValueError`` -- a ``StoreError`` is one
-- whose message names the file; for the CLI exit 2 with one line naming the file) or a *leak*
(any other exception, a message not naming the file, a traceback, another exit code). The tests
require zero leaks. ``python tests/test_fuzz.py`` prints the counts.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import sys
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conjugacy import Spectrum

N_RAW = 200  # raw byte mutations of a saved spectrum
N_MEMBER = 150  # one member mutated, re-zipped with a valid CRC
N_STORE = 200  # store files mutated
N_CLI = 60  # per CLI file kind
N_CLI_STORE = 40  # `conjugacy store ls` / `conjugacy spectrum STORE` on a mutated store
N_RESULTS_BYTES = 150  # byte mutations of a results.json
N_RESULTS_TREE = 250  # one field of a results.json replaced by a hostile value
N_RESULTS_CLI = 5  # of the accepted mutations, through `conjugacy report` (figures: ~1 s each)


# ----- mutations ---------------------------------------------------------------------------------
def mutate(data: bytes, rng: np.random.Generator, focus: int | None = None) -> bytes:
    """One random byte-level mutation of ``data`` (positions within ``focus`` bytes when given)."""
    buf = bytearray(data)
    n = len(buf)
    span = max(1, min(n, focus or n))
    op = int(rng.integers(7))
    if op == 0 or n == 0:  # truncate
        return bytes(buf[: int(rng.integers(0, max(1, n)))])
    pos = int(rng.integers(0, span))
    if op == 1:  # flip 1..8 bits
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(0, span))
            buf[i] ^= 1 << int(rng.integers(8))
    elif op == 2:  # overwrite a span with random bytes
        k = int(rng.integers(1, 17))
        buf[pos : pos + k] = rng.integers(0, 256, size=min(k, n - pos), dtype=np.uint8).tobytes()
    elif op == 3:  # delete a span
        del buf[pos : pos + int(rng.integers(1, 33))]
    elif op == 4:  # insert random bytes
        buf[pos:pos] = rng.integers(0, 256, size=int(rng.integers(1, 17)), dtype=np.uint8).tobytes()
    elif op == 5:  # overwrite with an extreme 4-byte integer (sizes, offsets, dimensions)
        value = [0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000][int(rng.integers(5))]
        buf[pos : pos + 4] = struct.pack("<I", value)[: n - pos]
    else:  # zero a span
        k = int(rng.integers(1, 65))
        buf[pos : pos + k] = bytes(min(k, n - pos))
    return bytes(buf)


def npy_bytes(arr: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, arr, allow_pickle=False)
    return out.getvalue()


def npy_with_header(header: dict, payload: bytes = b"") -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue() + payload


def zip_members(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


# ----- the reference files -----------------------------------------------------------------------
def reference_spectrum() -> Spectrum:
    rng = np.random.default_rng(7)
    eig = np.array([0.9 + 0.1j, 0.9 - 0.1j, 0.5])
    return Spectrum(
        eigenvalues=eig,
        residuals=np.array([1e-3, 1e-3, 2e-3]),
        plain_residuals=np.array([2e-3, 2e-3, 3e-3]),
        modes=rng.normal(size=(6, 3)) + 1j * rng.normal(size=(6, 3)),
        singular_values=np.array([3.0, 2.0, 1.0, 0.5]),
        rank=3,
        method="rrr",
        residuals_informative=True,
        rayleigh_quotients=eig,
        settings={"delays": 1, "notes": ["a note"], "path": "dense"},
    )


def reference_trajectories() -> np.ndarray:
    rng = np.random.default_rng(3)
    a = np.array([[0.9, 0.1], [0.0, 0.6]])
    x = np.empty((2, 12, 2))
    x[:, 0] = rng.normal(size=(2, 2))
    for t in range(1, 12):
        x[:, t] = x[:, t - 1] @ a.T
    return x


def crafted_spectrum_files(good: bytes) -> list[tuple[str, bytes]]:
    """Hand-made foreign or hostile files, each with a name saying what it is."""
    members = unzip(good)
    meta = json.loads(str(np.load(io.BytesIO(members["meta.npy"]), allow_pickle=False)))

    def with_member(name: str, data: bytes | None) -> bytes:
        new = dict(members)
        if data is None:
            new.pop(name)
        else:
            new[name] = data
        return zip_members(new)

    def with_meta(**changes) -> bytes:
        m = dict(meta)
        for k, v in changes.items():
            if v is _DROP:
                m.pop(k, None)
            else:
                m[k] = v
        return with_member("meta.npy", npy_bytes(np.array(json.dumps(m))))

    cases = [
        ("empty file", b""),
        ("text file", b"eigenvalues: 0.5\n"),
        ("npy instead of npz", npy_bytes(np.ones(3))),
        ("zip signature only", b"PK\x03\x04"),
        ("empty zip", zip_members({})),
        ("plain npz", zip_members({"x.npy": npy_bytes(np.ones(3))})),
        ("no meta", with_member("meta.npy", None)),
        ("no eigenvalues", with_member("eigenvalues.npy", None)),
        ("no residuals", with_member("residuals.npy", None)),
        ("huge declared shape", with_member(
            "eigenvalues.npy",
            npy_with_header({"descr": "<c16", "fortran_order": False, "shape": (1 << 40,)}))),
        ("negative dimension", with_member(
            "modes.npy",
            npy_with_header({"descr": "<c16", "fortran_order": False, "shape": (-6, 3)}))),
        ("object dtype", with_member(
            "residuals.npy",
            npy_with_header({"descr": "|O", "fortran_order": False, "shape": (3,)}, bytes(24)))),
        ("structured dtype", with_member(
            "residuals.npy", npy_bytes(np.zeros(3, dtype=[("a", "<f8")])))),
        ("string dtype", with_member("residuals.npy", npy_bytes(np.array(["a", "b", "c"])))),
        ("complex residuals", with_member("residuals.npy", npy_bytes(np.ones(3) * 1j))),
        ("wrong rank length", with_member("residuals.npy", npy_bytes(np.ones(4)))),
        ("2-D eigenvalues", with_member("eigenvalues.npy", npy_bytes(np.ones((3, 1), complex)))),
        ("modes of wrong width", with_member("modes.npy", npy_bytes(np.ones((6, 2), complex)))),
        ("short payload", with_member("residuals.npy", npy_bytes(np.ones(3))[:-8])),
        ("long payload", with_member("residuals.npy", npy_bytes(np.ones(3)) + bytes(8))),
        ("npy version 9", with_member("residuals.npy", b"\x93NUMPY\x09\x00" + bytes(20))),
        ("meta not JSON", with_member("meta.npy", npy_bytes(np.array("{not json")))),
        ("meta a number array", with_member("meta.npy", npy_bytes(np.ones(2)))),
        ("meta JSON list", with_member("meta.npy", npy_bytes(np.array("[1, 2]")))),
        ("meta deeply nested", with_member("meta.npy", npy_bytes(np.array("[" * 100_000)))),
        ("meta other format", with_meta(format="something.else")),
        ("meta future version", with_meta(format_version=99)),
        ("meta version true", with_meta(format_version=True)),
        ("meta rank string", with_meta(rank="3")),
        ("meta rank bool", with_meta(rank=True)),
        ("meta rank mismatch", with_meta(rank=2)),
        ("meta negative rank", with_meta(rank=-1)),
        ("meta method number", with_meta(method=3)),
        ("meta settings list", with_meta(settings=[1, 2])),
        ("meta informative string", with_meta(residuals_informative="yes")),
        ("meta no rank", with_meta(rank=_DROP)),
        ("meta no method", with_meta(method=_DROP)),
        ("meta no format", with_meta(format=_DROP)),
    ]
    # encrypted flag set / unknown compression method on the first member (local and central)
    enc = bytearray(good)
    enc[6] |= 1
    central = good.rfind(b"PK\x01\x02")
    while central >= 0:
        enc[central + 8] |= 1
        central = good.rfind(b"PK\x01\x02", 0, central)
    cases.append(("encrypted member", bytes(enc)))
    meth = bytearray(good)
    meth[8:10] = struct.pack("<H", 99)
    central = good.find(b"PK\x01\x02")
    meth[central + 10 : central + 12] = struct.pack("<H", 99)
    cases.append(("unknown compression", bytes(meth)))
    return cases


class _Drop:
    pass


_DROP = _Drop()

# Files that are valid spectra and must load (unknown members are ignored without being read).
def valid_variants(good: bytes) -> list[tuple[str, bytes]]:
    members = unzip(good)
    hostile = npy_with_header({"descr": "<f8", "fortran_order": False, "shape": (1 << 40,)})
    return [
        ("compressed archive", zip_members(members, zipfile.ZIP_DEFLATED)),
        ("unknown hostile member", zip_members({**members, "extra.npy": hostile})),
        ("unknown object member", zip_members({**members, "junk.npy": npy_with_header(
            {"descr": "|O", "fortran_order": False, "shape": (1,)}, b"\x80\x04N.")})),
        ("no optional members", zip_members(
            {k: v for k, v in members.items() if k not in ("modes.npy", "rayleigh_quotients.npy")})),
        ("big-endian arrays", zip_members({**members, "residuals.npy": npy_bytes(
            np.array([1e-3, 1e-3, 2e-3], dtype=">f8"))})),
        ("fortran-order modes", zip_members({**members, "modes.npy": npy_bytes(
            np.asfortranarray(np.ones((6, 3), complex)))})),
    ]


# ----- outcome classification --------------------------------------------------------------------
def classify_call(fn: Callable[[], object], path: Path) -> str:
    """'ok', 'clean' (ValueError naming ``path``) or 'leak:<ExceptionType>'."""
    try:
        fn()
    except ValueError as exc:
        return "clean" if str(path) in str(exc) else f"leak:{type(exc).__name__}(unnamed)"
    except Exception as exc:  # noqa: BLE001 - the point is to see every kind
        return f"leak:{type(exc).__name__}"
    return "ok"


def spectrum_load_cases(tmp: Path) -> Counter:
    """Run every Spectrum.load case; returns counts of outcomes."""
    good_path = reference_spectrum().save(tmp / "good.npz")
    good = good_path.read_bytes()
    counts: Counter = Counter()
    path = tmp / "case.npz"

    def run(data: bytes) -> str:
        path.write_bytes(data)
        return classify_call(lambda: Spectrum.load(path), path)

    rng = np.random.default_rng(20261130)
    for _ in range(N_RAW):
        counts[run(mutate(good, rng))] += 1
    members = unzip(good)
    names = sorted(members)
    for _ in range(N_MEMBER):
        name = names[int(rng.integers(len(names)))]
        new = dict(members)
        new[name] = mutate(members[name], rng, focus=128 if rng.random() < 0.7 else None)
        counts[run(zip_members(new))] += 1
    for _, data in crafted_spectrum_files(good):
        counts[run(data)] += 1
    counts[classify_call(lambda: Spectrum.load(tmp), tmp)] += 1  # a folder
    return counts


# ----- the store -------------------------------------------------------------------------------
def make_store(path: Path) -> np.ndarray:
    from conjugacy.store import TrajectoryStore

    rng = np.random.default_rng(5)
    w = rng.normal(size=(20, 3))
    with TrajectoryStore.open(path, mode="w") as st:
        st.create_run("r0", {"w": ((3,), np.float64), "b": ((2,), np.float32)}, chunk_steps=8)
        st.append("r0", np.arange(20), {"w": w, "b": np.ones((20, 2), np.float32)},
                  scalars={"loss": rng.normal(size=20)})
    return w


def store_cases(tmp: Path) -> Counter:
    """Mutate one file of a small store per case; open it read-only and read everything."""
    from conjugacy.store import TrajectoryStore

    base = tmp / "base.zarr"
    make_store(base)
    with TrajectoryStore.open(base, "r") as st:
        expected = st.read()
    files = sorted(p.relative_to(base) for p in base.rglob("*") if p.is_file())
    counts: Counter = Counter()
    rng = np.random.default_rng(11)
    for i in range(N_STORE):
        case = tmp / f"s{i}.zarr"
        shutil.copytree(base, case)
        target = case / files[int(rng.integers(len(files)))]
        op = rng.random()
        if op < 0.1:
            target.unlink()
        elif op < 0.2:
            target.write_bytes(b"")
        elif op < 0.3 and target.name == "zarr.json":
            other = ["[]", "null", '{"zarr_format": 3}', '{"zarr_format": 3, "node_type": "x"}',
                     "1e999", '"' + "a" * 100 + '"'][int(rng.integers(6))]
            target.write_text(other)
        else:
            target.write_bytes(mutate(target.read_bytes(), rng))

        def read(case: Path = case):
            with TrajectoryStore.open(case, "r") as st:
                got = st.read()
                for run in st.runs():
                    st.run_info(run)
                    st.scalars(run, "loss")
            return got

        result: list = []
        outcome = classify_call(lambda read=read, result=result: result.append(read()), case)
        if outcome == "ok" and not (result[0].shape == expected.shape
                                    and np.array_equal(result[0], expected)):
            outcome = "ok-but-different"
        counts[outcome] += 1
        shutil.rmtree(case)
    return counts


# ----- the CLI ---------------------------------------------------------------------------------
def cli_cases(tmp: Path) -> Counter:
    """``conjugacy spectrum`` on mutated .npy/.npz trajectories, ``compare`` on mutated spectra."""
    import typer
    from click.testing import CliRunner

    from conjugacy.cli import app

    runner = CliRunner()
    command = typer.main.get_command(app)  # built once, as the console script does
    counts: Counter = Counter()
    out = tmp / "out.npz"

    def run(args: list[str], path: Path) -> str:
        result = runner.invoke(command, args)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            return f"leak:{type(result.exception).__name__}"
        if result.exit_code == 0:
            return "ok"
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        if result.exit_code != 2:
            return f"leak:exit{result.exit_code}"
        if len(lines) != 1 or str(path) not in lines[0] or "Traceback" in result.output:
            return "leak:message"
        return "clean"

    rng = np.random.default_rng(99)
    traj = reference_trajectories()
    npy = npy_bytes(traj)
    npz = zip_members({"x.npy": npy})
    spec = reference_spectrum().save(tmp / "ref.npz")
    good = spec.read_bytes()
    p_npy, p_npz, p_spec = tmp / "t.npy", tmp / "t.npz", tmp / "s.npz"
    for _ in range(N_CLI):
        p_npy.write_bytes(mutate(npy, rng, focus=128 if rng.random() < 0.7 else None))
        counts[run(["spectrum", str(p_npy), "--out", str(out)], p_npy)] += 1
        p_npz.write_bytes(mutate(npz, rng))
        counts[run(["spectrum", str(p_npz), "--out", str(out)], p_npz)] += 1
        p_spec.write_bytes(mutate(good, rng))
        counts[run(["compare", str(spec), str(p_spec)], p_spec)] += 1
    crafted = [
        ("empty npy", "npy", b""),
        ("negative dimension", "npy", npy_with_header(
            {"descr": "<f8", "fortran_order": False, "shape": (-2, 12, 2)}, npy[128:])),
        ("huge dimension", "npy", npy_with_header(
            {"descr": "<f8", "fortran_order": False, "shape": (1 << 40, 12, 2)}, npy[128:])),
        ("bad header", "npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': <f8}   \n"),
        ("object npy", "npy", npy_with_header(
            {"descr": "|O", "fortran_order": False, "shape": (2,)}, b"\x80\x04N.")),
        ("truncated npz", "npz", npz[: len(npz) // 2]),
        ("empty npz", "npz", b""),
        ("truncated spectrum", "spec", good[: len(good) // 2]),
        ("npy as spectrum", "spec", npy),
        ("empty spectrum", "spec", b""),
    ]
    for _, kind, data in crafted:
        if kind == "spec":
            p_spec.write_bytes(data)
            counts[run(["compare", str(p_spec), str(spec)], p_spec)] += 1
        else:
            p = p_npy if kind == "npy" else p_npz
            p.write_bytes(data)
            counts[run(["spectrum", str(p), "--out", str(out)], p)] += 1
    try:
        import zarr  # noqa: F401
    except ImportError:
        return counts
    base = tmp / "base.zarr"
    make_store(base)
    files = sorted(p.relative_to(base) for p in base.rglob("*") if p.is_file())
    for i in range(N_CLI_STORE):
        case = tmp / f"c{i}.zarr"
        shutil.copytree(base, case)
        target = case / files[int(rng.integers(len(files)))]
        target.write_bytes(mutate(target.read_bytes(), rng))
        args = (["store", "ls", str(case)] if i % 2 else
                ["spectrum", str(case), "--params", "w", "--out", str(out)])
        counts[run(args, case)] += 1
        shutil.rmtree(case)
    return counts


# ----- results files ---------------------------------------------------------------------------
def reference_results(tmp: Path) -> dict:
    """The results.json of ``conjugacy.analyze`` on 2 conditions x 3 seeds, windows of 8."""
    from conjugacy import analyze
    from conjugacy.store import TrajectoryStore

    rng = np.random.default_rng(0)
    c_mat, eigs = rng.standard_normal((6, 3)), np.array([0.9, 0.7, 0.5])
    with TrajectoryStore.open(tmp / "ref.zarr", "w") as st:
        for cond in ("a", "b"):
            for s in range(3):
                name = f"r{len(st.runs()):02d}"
                x = (rng.standard_normal(3) * eigs ** np.arange(24)[:, None]) @ c_mat.T
                st.create_run(name, {"w": ((6,), "float64")}, metadata={"condition": cond,
                                                                           "seed": s})
                st.append(name, np.arange(24), {"w": x + 1e-3 * rng.standard_normal(x.shape)})
                st.set_finished(name)
    analyze(tmp / "ref.zarr", window=8, delays=1, rank=3, filter="per-spectrum",
            out=tmp / "ref_out", report=False)
    return json.loads((tmp / "ref_out" / "results.json").read_text(encoding="utf-8"))


def _slots(doc: object) -> list[tuple[object, object]]:
    """Every (container, key) of a parsed JSON document."""
    out, stack = [], [doc]
    while stack:
        x = stack.pop()
        pairs = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else ()
        for k, v in pairs:
            out.append((x, k))
            stack.append(v)
    return out


def hostile_value(rng: np.random.Generator, doc: dict) -> object:
    """A hostile JSON value: wrong type, extreme number, control characters, long or deep."""
    n = int(rng.integers(1, 4000))
    side = int(rng.integers(2, 400))
    choices = [
        None, True, -1, 0, 10**15, 1e308, -1e-308, float("nan"), float("inf"), "", "x" * n,
        "\x1b]0;T\x07\x1b[2K\u202e<script>alert(1)</script>[link=x]$\\frac{$", [], {},
        [[0.5, 0.5]] * n, [[1.0] * side] * side, [[1.0] * side] * (side + 1),
        {f"c{i}": {"matrix": [[0.0]]} for i in range(int(rng.integers(1, 200)))},
        [f"w{i}" for i in range(n)], list(range(-5, n)), [[[[[[[[1]]]]]]]] * 3,
        {"labels": ["a"], "distance_matrix": [[1, 2]], "transitions": {"change_points": [7]}},
    ]
    if rng.random() < 0.15:  # a copy of another part of the document
        slots = _slots(doc)
        container, key = slots[int(rng.integers(len(slots)))]
        return json.loads(json.dumps(container[key]))
    return choices[int(rng.integers(len(choices)))]


def mutate_results(doc: dict, rng: np.random.Generator) -> dict:
    """``doc`` with one field replaced by :func:`hostile_value` (or deleted)."""
    new = json.loads(json.dumps(doc))
    slots = _slots(new)
    container, key = slots[int(rng.integers(len(slots)))]
    if rng.random() < 0.1 and isinstance(container, dict):
        del container[key]
    else:
        container[key] = hostile_value(rng, new)
    return new


class _Alarm:
    """Raise TimeoutError in a block that uses over ``seconds`` of CPU (unbounded work: measured
    in CPU time, so a loaded CI machine does not fail it) or of wall time x ``wall_factor`` (a
    hang, which uses no CPU)."""

    def __init__(self, seconds: float, wall_factor: float = 12) -> None:
        self.seconds, self.wall = seconds, seconds * wall_factor

    def __enter__(self) -> None:
        import signal

        def ring(*_: object) -> None:
            raise TimeoutError(f"still running after {self.seconds} s CPU or {self.wall} s")

        self._old = {sig: signal.signal(sig, ring) for sig in (signal.SIGPROF, signal.SIGALRM)}
        signal.setitimer(signal.ITIMER_PROF, self.seconds)
        signal.setitimer(signal.ITIMER_REAL, self.wall)

    def __exit__(self, *exc: object) -> None:
        import signal

        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, old in self._old.items():
            signal.signal(sig, old)


def report_text(content: dict) -> None:
    """The report's text (HTML and Markdown) without figures: what every accepted file gets."""
    from conjugacy.report import render_html, render_markdown

    render_html(content, [])
    render_markdown(content, [])


def results_cases(tmp: Path) -> tuple[Counter, list[Path]]:
    """Byte and field mutations of a results.json through ``read_results`` and the report's
    text; returns the outcome counts and the accepted files (for the CLI)."""
    from conjugacy.analysis.results import ResultsFileError, read_results
    from conjugacy.report import ReportError

    good = reference_results(tmp)
    raw = json.dumps(good).encode()
    rng = np.random.default_rng(2026_12_05)
    counts: Counter = Counter()
    accepted: list[Path] = []
    for i in range(N_RESULTS_BYTES + N_RESULTS_TREE):
        path = tmp / f"results{i}.json"
        if i < N_RESULTS_BYTES:
            path.write_bytes(mutate(raw, rng))
        else:
            path.write_text(json.dumps(mutate_results(good, rng)), encoding="utf-8")
        try:
            with _Alarm(5):
                content = read_results(path)
                try:
                    report_text(content)
                except (ReportError, TypeError, ValueError) as exc:
                    raise ResultsFileError(f"{path}: {exc}") from None
        except ResultsFileError as exc:
            counts["clean" if str(path) in str(exc) else "leak:unnamed"] += 1
            path.unlink()
            continue
        except Exception as exc:  # noqa: BLE001 - the point is to see every kind
            counts[f"leak:{type(exc).__name__}:{str(exc)[:80]}"] += 1
            continue
        counts["ok"] += 1
        accepted.append(path)
    return counts, accepted


def report_cli(path: Path, seconds: float = 5) -> str:
    """``conjugacy report PATH``: 'ok', 'clean' (exit 2, one line naming the file) or a leak."""
    import typer
    from click.testing import CliRunner

    from conjugacy.cli import app

    try:
        with _Alarm(seconds):
            result = CliRunner().invoke(typer.main.get_command(app),
                                        ["report", str(path), "--out", str(path.parent / "rep")])
    except TimeoutError:
        return "leak:timeout"
    if isinstance(result.exception, TimeoutError):
        return "leak:timeout"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return f"leak:{type(result.exception).__name__}"
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    if result.exit_code == 0:
        return "ok"
    if "still running after" in result.output:
        return "leak:timeout"
    if result.exit_code != 2 or len(lines) != 1 or str(path) not in " ".join(lines):
        return f"leak:exit{result.exit_code}:{result.output[:200]}"
    return "clean"


def crafted_results(tmp: Path, good: dict) -> list[tuple[str, Path]]:
    """Hand-crafted hostile results files (each must be refused in one line)."""
    import os

    cases: list[tuple[str, Path]] = []

    def put(name: str, data: bytes | str) -> None:
        path = tmp / f"crafted_{name}.json"
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        cases.append((name, path))

    fifo = tmp / "crafted_fifo.json"
    os.mkfifo(fifo)
    cases.append(("fifo", fifo))
    (tmp / "crafted_dev_zero.json").symlink_to("/dev/zero")
    cases.append(("/dev/zero", tmp / "crafted_dev_zero.json"))
    cases.append(("folder", tmp))
    with open(tmp / "crafted_huge.json", "wb") as fh:  # sparse: 65 MiB of zeros
        fh.truncate(65 * 2**20)
    cases.append(("over 24 MiB", tmp / "crafted_huge.json"))
    put("values", "[" + "{}," * 1_200_000 + "{}]")
    put("deep", "[" * 100_000 + "]" * 100_000)
    nested: object = 1
    for _ in range(70):  # over the depth limit, within what the JSON parser can take
        nested = [nested]
    put("deep70", json.dumps({**good, "sections": {"x": nested}}))
    put("not_utf8", b"\xff\xfe{\x00")
    put("list", "[]")
    put("other_schema", json.dumps({**good, "schema": "conjugacy.results/1"}))
    many = {f"c{i}": [] for i in range(500)}
    put("conditions", json.dumps({**good, "spectra": many}))
    w = good["windows"]["conditions"]["a"]
    put("windows", json.dumps({**good, "windows": {**good["windows"], "conditions": {"a": {
        **w, "labels": [str(i) for i in range(5000)],
        "distance_matrix": [[0.0]] * 5000}}}}))
    put("ragged", json.dumps({**good, "windows": {**good["windows"], "conditions": {"a": {
        **w, "distance_matrix": [[0.0, 1.0]] + w["distance_matrix"][1:]}}}}))
    put("change_point", json.dumps({**good, "windows": {**good["windows"], "conditions": {"a": {
        **w, "transitions": {**(w.get("transitions") or {}), "change_points": [10**9]}}}}}))
    eig = good["spectra"]["a"][0]
    put("eigenvalues", json.dumps({**good, "spectra": {**good["spectra"], "a": [
        {**eig, "eigenvalues": [[0.5, 0.0]] * 70_000}]}}))
    filtered = good["comparison"]["filtered"]
    pair = next(iter(filtered["permutation_tests"]))
    tests = {**filtered["permutation_tests"],
             pair: {**filtered["permutation_tests"][pair], "min_pvalue": "x"}}
    put("min_pvalue_text", json.dumps({**good, "comparison": {**good["comparison"], "filtered": {
        **filtered, "permutation_tests": tests}}}))  # passed the schema, then a TypeError
    return cases


def leaks(counts: Counter) -> dict[str, int]:
    return {k: v for k, v in counts.items() if k.startswith("leak")}


# ----- tests -----------------------------------------------------------------------------------
def test_spectrum_load_fuzz_raises_only_clean_errors(tmp_path):
    counts = spectrum_load_cases(tmp_path)
    assert sum(counts.values()) == N_RAW + N_MEMBER + 40 + 1
    assert not leaks(counts), counts
    assert counts["clean"] >= 350  # the few others are mutations of bytes nothing depends on


def test_every_crafted_spectrum_file_is_refused_naming_file_and_problem(tmp_path):
    good = reference_spectrum().save(tmp_path / "good.npz").read_bytes()
    path = tmp_path / "crafted.npz"
    for name, data in crafted_spectrum_files(good):
        path.write_bytes(data)
        with pytest.raises(ValueError) as info:
            Spectrum.load(path)
        assert str(path) in str(info.value), (name, info.value)


def test_valid_variants_load_and_unknown_members_are_never_read(tmp_path):
    ref = reference_spectrum()
    good = ref.save(tmp_path / "good.npz").read_bytes()
    path = tmp_path / "variant.npz"
    for name, data in valid_variants(good):
        path.write_bytes(data)
        spec = Spectrum.load(path)
        np.testing.assert_array_equal(spec.eigenvalues, ref.eigenvalues, err_msg=name)
        assert spec.rank == 3 and spec.settings == ref.settings, name


def test_store_fuzz_raises_only_store_or_value_errors(tmp_path):
    pytest.importorskip("zarr")
    counts = store_cases(tmp_path)
    assert sum(counts.values()) == N_STORE
    assert not leaks(counts), counts


def test_cli_file_arguments_fuzz_exit_2_with_one_line(tmp_path):
    pytest.importorskip("typer")
    counts = cli_cases(tmp_path)
    assert sum(counts.values()) >= 3 * N_CLI + 10
    assert not leaks(counts), counts


def test_results_fuzz_reads_or_refuses_naming_the_file(tmp_path):
    pytest.importorskip("zarr")
    counts, accepted = results_cases(tmp_path)
    assert sum(counts.values()) == N_RESULTS_BYTES + N_RESULTS_TREE
    assert not leaks(counts), counts
    assert counts["clean"] >= 150 and counts["ok"] >= N_RESULTS_CLI, counts
    pytest.importorskip("typer")
    pytest.importorskip("matplotlib")
    cli = Counter(report_cli(p) for p in accepted[:: max(1, len(accepted) // N_RESULTS_CLI)]
                  [:N_RESULTS_CLI])
    assert not leaks(cli), cli


def test_every_crafted_results_file_is_refused_in_one_line_within_bounds(tmp_path):
    import time
    import tracemalloc

    pytest.importorskip("zarr")
    pytest.importorskip("typer")
    good = reference_results(tmp_path)
    for name, path in crafted_results(tmp_path, good):
        tracemalloc.start()
        t0 = time.process_time()  # CPU: a loaded CI machine must not fail it (a hang: the alarm)
        try:
            outcome = report_cli(path)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert outcome == "clean", (name, outcome)
        assert time.process_time() - t0 < 5, name  # a bound of the issue, not a speed claim
        assert peak < 200 * 2**20, (name, peak)


def test_figures_a_results_file_lists_are_read_within_bounds(tmp_path):
    """A listed figure that is a FIFO blocked the report forever; a huge one was read whole;
    one figure listed 5,000 times was embedded 5,000 times."""
    import os

    pytest.importorskip("zarr")
    pytest.importorskip("typer")
    pytest.importorskip("matplotlib")
    good = reference_results(tmp_path)
    os.mkfifo(tmp_path / "fifo.png")
    (tmp_path / "f.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with open(tmp_path / "huge.png", "wb") as fh:
        fh.truncate(40 * 2**20)
    (tmp_path / "g\x1b[31m (x).png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    listed = ["fifo.png", "huge.png", *["f.png"] * 5000, "g\x1b[31m (x).png"]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({**good, "figures": listed}), encoding="utf-8")
    assert report_cli(path, seconds=20) == "ok"
    md = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert "figure 'fifo.png' is a FIFO (named pipe), not a regular file" in md
    assert "figure 'huge.png' has 41943040 bytes, over the limit of 33554432" in md
    assert md.count("study_f.png") == 1
    assert "(figures/study_g%1B%5B31m%20%28x%29.png)" in md and "\x1b" not in md


def test_report_figures_draw_at_most_max_panels(tmp_path):
    """64 conditions drew 64 between-seeds panels and 64 window panels (25 s CPU, issue 26):
    the figures draw the first MAX_PANELS and their captions say so."""
    pytest.importorskip("zarr")
    pytest.importorskip("matplotlib")
    from conjugacy.report._figures import MAX_PANELS, _first, distance_panels

    good = reference_results(tmp_path)
    conds = [f"c{i}" for i in range(MAX_PANELS + 3)]
    cmp = json.loads(json.dumps(good["comparison"]))
    cmp["conditions"] = conds
    for uses in ("all", "filtered"):
        if cmp.get(uses):
            rec = cmp[uses]
            rec["between_seeds"] = {c: rec["between_seeds"]["a"] for c in conds}
            rec["equivalence_classes"]["mean_distance_matrix"] = [
                [float(i != j) for j in range(len(conds))] for i in range(len(conds))]
    panels = distance_panels(cmp, {})
    assert len(panels) == 1 + MAX_PANELS  # the conditions' matrix + the first seeds' panels
    assert panels[1][2].endswith("c0") and panels[-1][2].endswith(f"c{MAX_PANELS - 1}")
    assert _first(conds) == (conds[:MAX_PANELS], f" Only the first {MAX_PANELS} of "
                             f"{len(conds)} panels are drawn (the tables list all).")
    assert _first(conds[:MAX_PANELS]) == (conds[:MAX_PANELS], "")


if __name__ == "__main__":  # print the counts (cases, clean errors, leaks)
    import tempfile

    which = sys.argv[1:] or ["spectrum", "store", "cli", "results"]
    for label, fn in (("Spectrum.load", spectrum_load_cases), ("store", store_cases),
                      ("cli", cli_cases), ("results", lambda t: results_cases(t)[0])):
        if not any(label.lower().startswith(w) for w in which):
            continue
        with tempfile.TemporaryDirectory() as d:
            c = fn(Path(d))
        print(f"{label}: {sum(c.values())} cases, {c['clean']} clean errors, "
              f"{sum(leaks(c).values())} leaks {dict(sorted(leaks(c).items()))}, other {dict(c)}")


@pytest.mark.parametrize("field, bad, where", [
    ("eigenvalues", [[0.5, "x"]], "eigenvalues/0/1: 'x' is not of type 'number', 'null'"),
    ("eigenvalues", [[0.5, 0.1, 0.2]], "eigenvalues/0: [0.5, 0.1, 0.2] is too long"),
    ("eigenvalues", [[True, 0.1]], "eigenvalues/0/0: True is not of type 'number', 'null'"),
    ("noise_fractions", [0.1, "y"], "noise_fractions/1: 'y' is not of type 'number', 'null'"),
    ("eigenvalues", {"a": 1}, "eigenvalues: {'a': 1} is not of type 'array'"),
])
def test_numeric_arrays_are_checked_before_jsonschema_with_its_errors(
        tmp_path, monkeypatch, field, bad, where) -> None:
    """Review 3, item 8: jsonschema took ~7 s for two spectra of 65,536 eigenvalues (3.4 s CPU
    of an 11 MB file's 3.5 s read); the per-eigenpair arrays are checked by element type first
    and reach jsonschema empty (0.05 s), while a wrong one reaches it whole: the same error."""
    from conjugacy.analysis import results as res

    good = reference_results(tmp_path)
    seen = []
    real = res.validate
    monkeypatch.setattr(res, "validate", lambda c: (seen.append(c), real(c))[1])
    (tmp_path / "ok.json").write_text(json.dumps(good), encoding="utf-8")
    assert res.read_results(tmp_path / "ok.json") == good
    sp = next(iter(seen[0]["spectra"].values()))[0]
    assert sp["eigenvalues"] == [] and sp["residuals"] == []  # not walked by jsonschema
    doc = json.loads(json.dumps(good))
    c = next(iter(doc["spectra"]))
    doc["spectra"][c][0][field] = bad
    if field == "noise_fractions":
        n = len(doc["spectra"][c][0]["eigenvalues"])
        doc["spectra"][c][0].update(projection_residuals=[0.0] * n, variance_residuals=[0.0] * n)
    (tmp_path / "bad.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(res.ResultsFileError) as err:
        res.read_results(tmp_path / "bad.json")
    assert f"at spectra/{c}/0/{where}" in str(err.value), str(err.value)
