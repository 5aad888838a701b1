"""Integrity: runs' attributes validated against their arrays, chunks checked, ``verify``."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._text import cut_list
from . import _safe
from ._base import _RUN_NAME, FORMAT_VERSION, DamagedStoreError, _is_int
from ._write import _MAX_CHUNK_BYTES, BRANCH

#: Most a declared chunk may decode to: the writer's bound (32 MiB; its chunks are smaller unless
#: ``chunk_steps`` alone exceeds it, over 4 million float64 records). A hostile 128 MiB chunk of
#: zeros read from a last, mostly-fill chunk took 260 MB peak RSS; 32 MiB keeps reads within ~200.
MAX_CHUNK_RAW_BYTES = _MAX_CHUNK_BYTES
MAX_CHUNKS_PER_RECORD = 2**20  # chunks across one record of an array (the writer: a few)
DAMAGED_RUNS = ("damaged run", "damaged runs")  # "and N more ..." of a damage message
DAMAGED_CHUNKS = ("damaged chunk", "damaged chunks")


def _encoded_bound(arr: Any) -> int:
    """The largest an encoded chunk file of ``arr`` can be (zstd's worst case plus CRC)."""
    raw = math.prod(arr.chunks) * arr.dtype.itemsize
    return raw + raw // 64 + 4096


def _encoding_problem(meta: Mapping[str, Any], dtype: np.dtype) -> str | None:
    """What in an array's ``zarr.json`` differs from the encoding the writer writes (codecs
    ``bytes`` little-endian, ``zstd``, ``crc32c``; no storage transformer; chunk keys ``c/i/j``
    separated by ``/``), or None. An edited ``transpose`` codec or ``endian: big`` made reads
    return permuted or byte-swapped values that ``verify`` called undamaged."""
    codecs = meta.get("codecs")
    names = ([c.get("name") if isinstance(c, dict) else None for c in codecs]
             if isinstance(codecs, list) else None)
    if names != ["bytes", "zstd", "crc32c"]:
        return (f"has codecs {str(names if names is not None else codecs)[:200]}, not the "
                "writer's ['bytes', 'zstd', 'crc32c']")
    endian = (codecs[0].get("configuration") or {}).get("endian")
    if endian != "little" and not (endian is None and dtype.itemsize == 1):
        return f"has byte order {str(endian)[:40]!r}, not the writer's 'little'"
    if meta.get("storage_transformers") not in (None, []):
        return "has storage transformers (the writer writes none)"
    keys = meta.get("chunk_key_encoding")
    if keys != {"name": "default", "configuration": {"separator": "/"}}:
        return f"has chunk key encoding {str(keys)[:120]}, not the writer's default with '/'"
    return None


@dataclass(frozen=True)
class Damage:
    """One damaged place found by :meth:`TrajectoryStore.verify`.

    Attributes
    ----------
    run : str or None
        The run, or None for the store itself.
    array : str or None
        Path of the array inside the run (``"params/fc.weight"``, ``"steps"``), or None.
    records : (int, int) or None
        Affected records ``[start, stop)``: positions along the step axis (clipped to
        ``n_complete``), or None when the whole run is affected.
    steps : (int, int) or None
        First and last training-step index of those records, when the ``steps`` array is
        readable there.
    chunk : str or None
        Chunk key inside the array (``"c/3/0/0"``).
    problem : str
        What is wrong ("missing", "checksum mismatch", "undecodable: ...", layout problems).

    Examples
    --------
    A store whose only chunk of ``w`` was deleted:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from conjugacy.store import TrajectoryStore
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with TrajectoryStore.open(f"{tmp}/runs.zarr", "w") as store:
    ...         store.create_run("seed0", {"w": ((3,), "float32")})
    ...         _ = store.append("seed0", [0, 1], {"w": np.ones((2, 3), "float32")})
    ...     os.remove(f"{tmp}/runs.zarr/runs/seed0/params/w/c/0/0")
    ...     with TrajectoryStore.open(f"{tmp}/runs.zarr", "r") as store:
    ...         damage = store.verify().damage
    >>> d = damage[0]
    >>> d.run, d.array, d.records, d.steps, d.chunk
    ('seed0', 'params/w', (0, 2), (0, 1), 'c/0/0')
    >>> print(d)
    run 'seed0', array 'params/w', chunk c/0/0, records 0..1 (training steps 0..1):
    chunk file missing (deleted?): its records would read as fill values
    """

    run: str | None
    array: str | None
    records: tuple[int, int] | None
    steps: tuple[int, int] | None
    chunk: str | None
    problem: str

    def __str__(self) -> str:
        parts = []
        if self.run is not None:
            parts.append(f"run {self.run!r}")
        if self.array is not None:
            parts.append(f"array {self.array!r}")
        if self.chunk is not None:
            parts.append(f"chunk {self.chunk}")
        if self.records is not None:
            a, b = self.records
            rec = f"records {a}..{b - 1}"
            if self.steps is not None:
                rec += f" (training steps {self.steps[0]}..{self.steps[1]})"
            parts.append(rec)
        return f"{', '.join(parts)}: {self.problem}" if parts else self.problem  # no ": " alone


@dataclass
class VerifyReport:
    """Result of :meth:`TrajectoryStore.verify`.

    Attributes
    ----------
    path : Path
        The store.
    format_version : int
        The store's format version (2: checksums, every chunk written).
    runs : list of str
        Runs checked.
    chunks_checked : int
        Chunks below ``n_complete`` read and decoded.
    chunks_checksummed : int
        Of those, chunks protected by a CRC-32C: all of them (an array encoded without the
        writer's ``crc32c`` codec is reported as damage, never read).
    damage : list of Damage
        Everything found wrong; empty for an intact store.
    notes : list of str
        Leftovers that are not damage (temporary files of interrupted writes, half-created
        runs, folders that are not runs).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from conjugacy.store import TrajectoryStore
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with TrajectoryStore.open(f"{tmp}/runs.zarr", "w") as store:
    ...         store.create_run("seed0", {"w": ((3,), "float32")})
    ...         _ = store.append("seed0", [0, 1], {"w": np.ones((2, 3), "float32")})
    ...         report = store.verify()
    >>> report.ok, report.runs, report.chunks_checked, report.chunks_checksummed
    (True, ['seed0'], 2, 2)
    >>> print(report)
    store '...runs.zarr' (format version 2): 1 runs, 2 chunks checked (2 with checksums): no damage found
    """

    path: Path
    format_version: int
    runs: list[str] = field(default_factory=list)
    chunks_checked: int = 0
    chunks_checksummed: int = 0
    damage: list[Damage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no damage was found."""
        return not self.damage

    def __str__(self) -> str:
        head = (
            f"store {str(self.path)!r} (format version {self.format_version}): "
            f"{len(self.runs)} runs, {self.chunks_checked} chunks checked "
            f"({self.chunks_checksummed} with checksums): "
            + ("no damage found" if self.ok else f"{len(self.damage)} damaged places")
        )
        lines = [head]
        lines += [f"  damage: {d}" for d in self.damage]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


class _Integrity:
    """Validation of runs, chunk checks and :meth:`verify` of :class:`TrajectoryStore`."""

    def _validate(self, run: str, a: Mapping[str, Any]) -> None:
        """Check a run's attributes ``a`` against its arrays' metadata; raise DamagedStoreError
        naming the problem."""
        n = a.get("n_complete")
        if not _is_int(n) or n < 0:
            raise self._damaged(run, f"n_complete is {n!r}, not a non-negative integer")
        fv = a.get("format_version")
        if not _is_int(fv) or fv != FORMAT_VERSION:
            raise self._damaged(
                run, f"format_version is {fv!r}, not {FORMAT_VERSION} (every run of a format-"
                f"{FORMAT_VERSION} store carries it)"
            )
        cs = a.get("chunk_steps")
        if not _is_int(cs) or cs < 1:
            raise self._damaged(run, f"chunk_steps is {cs!r}, not a positive integer")
        decl = a.get("parameters")
        if not isinstance(decl, list) or not decl:
            raise self._damaged(run, f"'parameters' is {decl!r}, not a non-empty list")
        for item in decl:
            ok = (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)
                  and item[0] and "/" not in item[0] and isinstance(item[1], list)
                  and all(_is_int(s) and s >= 0 for s in item[1]) and isinstance(item[2], str))
            if ok:
                try:
                    ok = np.dtype(item[2]).kind in "fciub"
                except TypeError:
                    ok = False
            if not ok:
                raise self._damaged(run, f"'parameters' entry {item!r} is not [name, shape, dtype]")
        if not isinstance(a.get("metadata", {}), dict):
            raise self._damaged(run, "'metadata' is not a JSON object")
        branches = a.get("branches", [])
        if branches not in ([], [BRANCH]):
            raise self._damaged(run, f"'branches' is {branches!r}, not [] or [{BRANCH!r}]")
        for group in ("params", "scalars", *branches):  # read by Zarr later: bounded first
            self._json(run, group)

        shape, dtype = self._array_meta(run, "steps", n)
        if len(shape) != 1 or dtype != np.int64:
            raise self._damaged(run, f"array 'steps' is {dtype} {shape}, not int64 1-D")
        for group in ("params", *branches):
            for name, pshape, dt in decl:
                shape, dtype = self._array_meta(run, f"{group}/{name}", n)
                if shape[1:] != tuple(pshape) or dtype != np.dtype(dt):
                    raise self._damaged(
                        run, f"array '{group}/{name}' is {dtype} with step shape "
                        f"{shape[1:]} but the run declares {dt} {tuple(pshape)}"
                    )
        for name in self._scalar_names(run):
            shape, _ = self._array_meta(run, f"scalars/{name}", n)
            if len(shape) != 1:
                raise self._damaged(run, f"array 'scalars/{name}' is not 1-D")

    def _array_meta(self, run: str, key: str, n: int) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and dtype of the run's array ``key`` from its metadata, checked to describe an
        array of at least ``n`` records."""
        meta = self._json(run, key)
        if meta is None:
            raise self._damaged(run, f"array {key!r} is missing (no {key}/zarr.json)")
        shape, dt = meta.get("shape"), meta.get("data_type")
        if (meta.get("node_type") != "array" or not isinstance(shape, list)
                or not all(_is_int(x) and x >= 0 for x in shape) or not isinstance(dt, str)):
            raise self._damaged(run, f"{key}/zarr.json does not describe an array")
        try:
            dtype = np.dtype(dt)
        except TypeError:
            raise self._damaged(run, f"array {key!r} has unknown data type {dt!r}") from None
        encoding = _encoding_problem(meta, dtype)
        if encoding:
            raise self._damaged(run, f"array {key!r} {encoding}; refused (its data would read "
                                "scrambled or not at all)")
        grid = meta.get("chunk_grid")
        chunks = (grid.get("configuration", {}).get("chunk_shape")
                  if isinstance(grid, dict) and isinstance(grid.get("configuration"), dict)
                  else None)
        if (not isinstance(chunks, list) or len(chunks) != len(shape)
                or not all(_is_int(c) and c >= 1 for c in chunks)):
            raise self._damaged(
                run, f"array {key!r} has chunk shape {chunks!r}: not {len(shape)} positive "
                "integers"
            )
        if math.prod(chunks) * dtype.itemsize > MAX_CHUNK_RAW_BYTES:
            raise self._damaged(
                run, f"array {key!r} has chunks {chunks} of {dtype} "
                f"({math.prod(chunks) * dtype.itemsize} bytes), over the "
                f"{MAX_CHUNK_RAW_BYTES} bytes a chunk may hold; refused"
            )
        per_record = math.prod(-(-s // c) for s, c in zip(shape[1:], chunks[1:]))
        if per_record > MAX_CHUNKS_PER_RECORD:
            raise self._damaged(
                run, f"array {key!r} declares {per_record} chunks per record (shape {shape}, "
                f"chunks {chunks}), over the limit of {MAX_CHUNKS_PER_RECORD}; refused"
            )
        if key == "steps" and n:
            self._check_tail(run, key, n, chunks[0])
        if not shape or shape[0] < n:
            raise self._damaged(
                run, f"n_complete is {n} but array {key!r} holds "
                f"{shape[0] if shape else 0} steps"
            )
        return tuple(shape), dtype

    def _check_tail(self, run: str, key: str, n: int, c0: int) -> None:
        """Refuse an ``n_complete`` far beyond the chunk files of the 1-D array ``key``: a
        forged length would make every read and ``verify`` walk millions of absent chunks.
        A gap of up to 1,024 chunks is left to the chunk checks (each reported as missing)."""
        need = -(-n // c0)
        d = self._path / "runs" / run / key / "c"
        try:
            with os.scandir(d) as it:
                idx = [int(e.name) for e in it if e.name.isdigit() and len(e.name) < 19]
        except OSError:
            idx = []
        have = max(idx, default=-1) + 1
        if need > have + 1024:
            raise self._damaged(
                run, f"n_complete is {n} but array {key!r} has chunk files for at most "
                f"{have * c0} records (the chunk files of the rest are missing, or n_complete "
                "is wrong)"
            )

    def _check_all_runs(self) -> None:
        """Validate every run not validated yet; raise one DamagedStoreError naming the first
        damaged run, how many more there are, where all damage is listed and how to read the
        intact runs."""
        problems: list[tuple[str, DamagedStoreError]] = []
        for r in self.runs():
            try:
                if r not in self._valid:
                    self._validate(r, self._run_attrs(r) or {})
                    self._valid.add(r)
            except DamagedStoreError as exc:
                problems.append((r, exc))
        if problems:
            (run, first), *_ = problems
            said = "; ".join(cut_list([p.problem for _, p in problems], 1, DAMAGED_RUNS))
            exc = DamagedStoreError(
                f"{self._damaged(run, said)}; from Python, TrajectoryStore.open(..., "
                "check=False) reads the intact runs"
            )
            exc.problem = first.problem
            raise exc

    def _chunks(self, arr: Any, start: int, stop: int) -> list[tuple[str, tuple[int, int], tuple]]:
        """Chunks of ``arr`` holding records ``[start, stop)``: (key, records, selection)."""
        c0 = arr.chunks[0]
        rest = [range(math.ceil(s / c)) for s, c in zip(arr.shape[1:], arr.chunks[1:])]
        out = []
        for i in range(start // c0, (stop - 1) // c0 + 1):
            rows = (max(i * c0, start), min((i + 1) * c0, stop))
            for j in itertools.product(*rest):
                sel = (slice(rows[0], rows[1]),) + tuple(
                    slice(k * c, (k + 1) * c) for k, c in zip(j, arr.chunks[1:]))
                out.append((arr.metadata.encode_chunk_key((i, *j)), rows, sel))
        return out

    def _step_span(self, g: Any, rows: tuple[int, int]) -> tuple[int, int] | None:
        """Training steps of records ``rows`` (best effort: None if unreadable)."""
        try:
            s = g["steps"]
            if not all((self._path / s.path / k).is_file()
                       for k, _, _ in self._chunks(s, rows[0], rows[1])):
                return None  # a missing steps chunk would read as zeros
            return int(s[rows[0]]), int(s[rows[1] - 1])
        except Exception:
            return None

    def _chunk_problems(
        self, run: str, g: Any, key: str, arr: Any, start: int, stop: int, decode: bool,
    ) -> tuple[list[Damage], int]:
        """Damage in the chunks of ``arr`` below ``stop`` from ``start``: missing chunk files
        (every chunk is written) and, with ``decode``, chunks that fail to decode. Returns
        (damage, chunks decoded)."""
        damage, checked = [], 0
        base = self._path / arr.path
        limit = _encoded_bound(arr)
        # every frame must decode to exactly one chunk: checked from its header before decoding
        chunk_bytes = math.prod(arr.chunks) * arr.dtype.itemsize
        for ckey, rows, sel in self._chunks(arr, start, stop):
            # the records read from it (a last chunk is partly fill, which compresses away)
            raw = math.prod(min(s.stop, d) - s.start for s, d in zip(sel, arr.shape))
            # one lstat: a missing file, a link, a FIFO, an oversized file or one whose records
            # decode to more than MAX_COMPRESSION x its size is never read
            problem = _safe.chunk_problem(base / ckey, limit, raw * arr.dtype.itemsize,
                                          chunk_bytes)
            if problem is None and decode:
                checked += 1
                try:
                    arr[sel]
                except MemoryError:
                    raise
                except Exception as exc:
                    text = str(exc)
                    problem = ("checksum mismatch (CRC-32C): the chunk file was altered"
                               if "checksum" in text.lower()
                               else f"undecodable ({type(exc).__name__}: {text[:200]})")
            if problem is not None:
                span = None if key == "steps" else self._step_span(g, rows)
                damage.append(Damage(run, key, rows, span, ckey, problem))
        return damage, checked

    def _read_failed(self, run: str, g: Any, key: str, arr: Any, start: int, stop: int,
                     exc: Exception) -> DamagedStoreError:
        """The error of a failed read of records ``[start, stop)`` of ``arr`` (array ``key`` of
        ``run``): the damage of its chunks, else (not reproducible chunk by chunk) the whole
        range as unreadable."""
        bad, _ = self._chunk_problems(run, g, key, arr, start, stop, True)
        return self._damage_error(bad or [Damage(run, key, (start, stop), None, None,
                                                 f"unreadable ({type(exc).__name__}: {exc})")])

    def _damage_error(self, damage: list[Damage]) -> DamagedStoreError:
        return DamagedStoreError(
            f"store {str(self._path)!r} is damaged: {'; '.join(cut_list(damage, 1, DAMAGED_CHUNKS))}; "
            f"`conjugacy store verify {self._path}` lists all damage"
        )

    def verify(self) -> VerifyReport:
        """Check every chunk below ``n_complete`` of every array of every run.

        Reads and decodes each chunk (which checks its CRC-32C), checks that every chunk file
        exists, validates each run's attributes against its arrays, and checks that the recorded
        step indices increase. Does not stop at the first problem.

        Returns
        -------
        VerifyReport
            ``ok`` is True when nothing is damaged; ``damage`` lists each damaged place (run,
            array, chunk, records, training steps); ``notes`` lists leftovers that are not damage.

        Raises
        ------
        StoreError
            Only if the store is closed.
        """
        self._check_open()
        rep = VerifyReport(self._path, self._format)
        runs_dir = self._path / "runs"
        temps: list[str] = []
        data: dict[str, list[str]] = {}  # run -> its files other than metadata and temporaries

        def seen(dir_fd: int, name: str, rel: str, st: os.stat_result) -> None:
            if name.endswith(".partial"):
                temps.append(rel)
            elif name != "zarr.json" and rel.startswith("runs/") and rel.count("/") >= 2:
                data.setdefault(rel.split("/")[1], []).append(rel)

        for problem in _safe.walk(self._path, seen):  # never follows a link
            rep.damage.append(Damage(None, None, None, None, None, problem + " (refused: "
                                     "a store holds only folders and regular files)"))
        names = []
        for e in sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []:
            if e.is_symlink() or not e.is_dir():  # a link: the walk's line names it, once
                continue
            if _RUN_NAME.fullmatch(e.name):
                names.append(e.name)
            else:
                rep.notes.append(f"folder runs/{e.name!r} is not a run (not a run name): ignored")
        for run in names:
            self._verify_run(rep, run, data.get(run, []))
        if temps:
            rep.notes.append(
                f"{len(temps)} temporary files of interrupted writes (*.partial): not data; the "
                "next writer removes them"
            )
        return rep

    def _verify_run(self, rep: VerifyReport, run: str, files: list[str] | None = None) -> None:
        """Add the damage of ``run`` (and its chunk counts) to ``rep``. ``files``: the run's data
        files (not metadata). Every chunk checked carries a CRC-32C: :meth:`_validate` refuses an
        array encoded without the writer's ``crc32c`` codec."""
        try:
            a = self._run_attrs(run)
            if a is None and files:
                lost = (f"its metadata runs/{run}/zarr.json is missing"
                        if self._json(run, ".") is None
                        else "its attributes (n_complete, parameters) are missing")
                rep.runs.append(run)
                rep.damage.append(Damage(
                    run, None, None, None, None,
                    f"{lost} but it holds {len(files)} data files (e.g. {files[0]}): the run "
                    "cannot be read; its files are kept (a writer never deletes them)"))
                return
            if a is None:
                rep.notes.append(f"run {run!r} is half-created (no n_complete): ignored; a "
                                 "writer creating it again replaces it")
                return
            rep.runs.append(run)
            self._validate(run, a)  # again, even if validated before: files may change
            self._valid.add(run)
            g = self._run(run)
        except DamagedStoreError as exc:
            rep.damage.append(Damage(run, None, None, None, None, exc.problem or str(exc)))
            return
        n = int(a["n_complete"])
        keys = (["steps"] + [f"{group}/{name}" for group in ("params", *a.get("branches", []))
                             for name, _, _ in a["parameters"]]
                + [f"scalars/{s}" for s in self._scalar_names(run)])
        for key in keys:
            try:
                arr = g[key]
            except Exception as exc:
                rep.damage.append(Damage(run, key, None, None, None,
                                         f"unreadable metadata ({type(exc).__name__}: {exc})"))
                continue
            if n == 0:
                continue
            dmg, checked = self._chunk_problems(run, g, key, arr, 0, n, True)
            rep.damage += dmg
            rep.chunks_checked += checked
            rep.chunks_checksummed += checked
        if n and not any(d.run == run and d.array == "steps" for d in rep.damage):
            s = np.asarray(g["steps"][:n])
            if s[0] < 0 or np.any(np.diff(s) <= 0):
                i = int(np.argmax(np.diff(s) <= 0)) if s[0] >= 0 else 0
                rep.damage.append(Damage(run, "steps", (i, i + 2 if s[0] >= 0 else 1), None,
                                         None, "training-step indices do not increase"))
