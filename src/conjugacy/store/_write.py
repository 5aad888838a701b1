"""Writing: runs created, records appended (several runs in one write), runs finished."""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _safe
from ._base import _RUN_NAME, FORMAT_VERSION, StoreError

_MAX_CHUNK_BYTES = 32 * 2**20
_GROWTH_CHUNKS = 16
_SERIES_CHUNK = 64
#: the group of a run's branch arrays (``next/<name>``) and its entry in the attribute ``branches``
BRANCH = "next"
#: Longest run name, in UTF-8 bytes: the run's folder name (file systems allow 255 bytes per
#: name; 300 characters raised a raw ``OSError`` [Errno 36] before, issue 26 review).
MAX_RUN_NAME_BYTES = 200


def _chunk_shape(chunk_steps: int, shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """(chunk_steps, *shape), with leading parameter axes halved until a chunk is <= 32 MiB."""
    dims = list(shape)
    for ax in range(len(dims)):
        while dims[ax] > 1 and chunk_steps * math.prod(dims) * itemsize > _MAX_CHUNK_BYTES:
            dims[ax] = (dims[ax] + 1) // 2
    return (chunk_steps, *dims)


def _check_name(name: Any, what: str) -> None:
    """Refuse a parameter or scalar name that is not a non-empty str, holds '/' or starts '__'."""
    if not isinstance(name, str) or not name or "/" in name or name.startswith("__"):
        raise StoreError(f"{what} name {name!r} is invalid (no '/', not '__'-prefixed)")


def _check_json(obj: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(obj, allow_nan=True))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} must be JSON-serialisable: {exc}") from None


def _codecs() -> dict[str, Any]:
    """Encoding of every new array: zstd, then a CRC-32C of the compressed bytes (Zarr v3)."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return {"compressors": [ZstdCodec(), Crc32cCodec()], "config": {"write_empty_chunks": True}}


def _writable(arr: Any) -> Any:
    """The array with ``write_empty_chunks`` on (a runtime setting Zarr does not persist)."""
    return arr.with_config({"write_empty_chunks": True})


class _Writing:
    """The writing half of :class:`TrajectoryStore`."""

    def create_run(
        self,
        run: str,
        parameters: Mapping[str, tuple[Sequence[int], Any]],
        *,
        chunk_steps: int = 64,
        metadata: Mapping[str, Any] | None = None,
        next_states: bool = False,
    ) -> None:
        """Create an empty run.

        Parameters
        ----------
        run : str
            Run name: letters, digits and ``_ . + = , -``, not starting with a punctuation mark,
            at most :data:`MAX_RUN_NAME_BYTES` (200) bytes (a file system allows 255 per name).
        parameters : mapping name -> (shape, dtype)
            Parameters to record, in feature order.
        chunk_steps : int
            Chunk length along the step axis (a recorder flushes this many steps at a time).
        metadata : mapping, optional
            JSON-serialisable description (model, optimizer, seed, replica, perturbation, ...).
        next_states : bool, default False
            Also keep a *branch*: for every record, the parameters after one more stride of
            training from the recorded ones on independently drawn batches (arrays
            ``next/<name>``, same shapes, dtypes and chunks as ``params/<name>``; run attribute
            ``branches: ["next"]``). Every append then gives them (``next_states=``); read them
            with ``read(..., branch="next")``. For the two-branch residuals
            (:mod:`conjugacy.residuals`).
        """
        self._check_open(write=True)
        if not isinstance(run, str) or not _RUN_NAME.fullmatch(run):  # match: "r\n" passed
            raise StoreError(
                f"run name {run!r} is invalid: use letters, digits and _ . + = , - "
                "starting with a letter or digit"
            )
        if len(run.encode("utf-8")) > MAX_RUN_NAME_BYTES:  # a folder name: 255 bytes at most
            raise StoreError(
                f"run name {run[:40]!r}... is {len(run.encode('utf-8'))} bytes long; run names are "
                f"at most {MAX_RUN_NAME_BYTES} bytes (the run's folder name): choose a shorter name"
            )
        runs = self._runs_group()
        folder = self._path / "runs" / run
        if os.path.lexists(folder):
            if self._run_attrs(run) is not None:
                raise StoreError(f"run {run!r} already exists in store {str(self._path)!r}")
            # half-created by a writer that was interrupted (metadata only): start it again;
            # anything holding data is damage, never deleted here
            self._check_half_created(run, folder)
            shutil.rmtree(folder)
        if not isinstance(chunk_steps, int | np.integer) or chunk_steps < 1:
            raise StoreError(f"chunk_steps must be a positive integer, got {chunk_steps!r}")
        if not parameters:
            raise StoreError("parameters is empty: a run records at least one parameter")
        meta = _check_json(dict(metadata or {}), "metadata")
        decl = []
        for name, (shape, dt) in parameters.items():
            _check_name(name, "parameter")
            shape = tuple(int(s) for s in shape)
            dt = np.dtype(dt)
            if dt.kind not in "fciub":
                raise StoreError(f"parameter {name!r} has unsupported dtype {dt}")
            decl.append((name, shape, dt))
        g = runs.create_group(run)
        g.create_array("steps", shape=(0,), dtype="int64",
                       chunks=(_series_chunk(int(chunk_steps)),), **_codecs())
        pg = g.create_group("params")
        g.create_group("scalars")
        groups = [pg, g.create_group(BRANCH)] if next_states else [pg]
        for group in groups:
            for name, shape, dt in decl:
                group.create_array(
                    name,
                    shape=(0, *shape),
                    dtype=dt,
                    chunks=_chunk_shape(int(chunk_steps), shape, dt.itemsize),
                    fill_value=0,
                    **_codecs(),
                )
        # attributes last: a run without them is half-created and is recreated by a writer
        g.update_attributes(
            {
                "n_complete": 0,
                "chunk_steps": int(chunk_steps),
                "parameters": [[n, list(s), str(d)] for n, s, d in decl],
                "metadata": meta,
                "finished": False,
                "format_version": FORMAT_VERSION,
                **({"branches": [BRANCH]} if next_states else {}),
            }
        )

    def _check_half_created(self, run: str, folder: Any) -> None:
        """Refuse (one line) to replace the run folder ``folder`` unless it holds only what an
        interrupted ``create_run`` leaves: folders, ``zarr.json`` files and temporaries."""
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            raise StoreError(
                f"cannot create run {run!r} in store {str(self._path)!r}: runs/{run} exists and "
                "is not a folder (refused, not deleted)"
            )
        data: list[str] = []

        def seen(dir_fd: int, name: str, rel: str, st: os.stat_result) -> None:
            if name != "zarr.json" and not name.endswith(".partial"):
                data.append(rel)

        bad = _safe.walk(folder, seen)
        if data or bad:
            what = f"{len(data)} data files (e.g. {data[0]})" if data else bad[0]
            raise StoreError(
                f"cannot create run {run!r} in store {str(self._path)!r}: runs/{run} exists "
                f"without complete attributes but holds {what}; refusing to delete what this "
                f"writer did not write: `conjugacy store verify {self._path}`, then move or "
                "delete the folder yourself"
            )

    def update_metadata(self, run: str, metadata: Mapping[str, Any]) -> None:
        """Merge ``metadata`` (JSON-serialisable) into the run's metadata."""
        self._check_open(write=True)
        new = _check_json(dict(metadata), "metadata")
        w = self._writers.get(run)
        attrs = w.group.metadata.attributes if w is not None else self._run(run).attrs
        self._write_attributes(run, {"metadata": {**attrs.get("metadata", {}), **new}})

    def set_finished(self, run: str, finished: bool = True) -> None:
        """Mark ``run`` as closed normally (or not)."""
        self._check_open(write=True)
        if run in self._writers:
            self._trim(self._writers[run])
        self._write_attributes(run, {"finished": bool(finished)})

    def append(
        self,
        run: str,
        steps: Sequence[int] | np.ndarray,
        params: Mapping[str, np.ndarray],
        scalars: Mapping[str, Sequence[float] | np.ndarray] | None = None,
        next_states: Mapping[str, np.ndarray] | None = None,
    ) -> int:
        """Append ``k`` records to ``run``; return the new ``n_complete``.

        Parameters
        ----------
        steps : int array (k,)
            Training-step indices, strictly increasing and after the last complete one.
        params : mapping name -> array (k, *shape)
            One entry per recorded parameter, in its recorded dtype (no silent casts).
        scalars : mapping name -> float array (k,), optional
            New names are created (NaN for earlier steps); absent names get NaN.
        next_states : mapping name -> array (k, *shape), optional
            The branch of each record (as ``params``): required for a run created with
            ``next_states=True``, refused for any other.

        Notes
        -----
        All data is written before ``n_complete`` is advanced, so an interruption leaves either
        the old or the new ``n_complete`` with all its steps intact. The first append to a run
        opens its arrays and keeps them (with the run's attributes, ``n_complete`` and last step)
        for the next ones, so later appends read no metadata; see :meth:`append_many` to write
        several runs at once.
        """
        item = (steps, params, scalars) if next_states is None else (
            steps, params, scalars, next_states)
        return self.append_many({run: item})[run]

    def append_many(
        self,
        records: Mapping[
            str,
            tuple[
                Sequence[int] | np.ndarray,
                Mapping[str, np.ndarray],
                Mapping[str, Sequence[float] | np.ndarray] | None,
            ],
        ],
    ) -> dict[str, int]:
        """Append records to several runs in one write; return each run's new ``n_complete``.

        Parameters
        ----------
        records : mapping run -> (steps, params, scalars) or (steps, params, scalars, next_states)
            For each run, the arguments of :meth:`append` (``scalars`` may be None). Every run is
            checked before anything is written.

        Returns
        -------
        dict
            run -> new ``n_complete``.

        Notes
        -----
        One round trip to Zarr's I/O loop writes the data of every run concurrently (each array
        resized once, its chunks encoded and written), waits for all of it, and only then
        advances the ``n_complete`` of every run (one attribute write per run). A process killed at
        any point leaves each run at its old or its new ``n_complete`` with all those steps intact.

        Raises
        ------
        StoreError
            Bad steps, a missing or unknown parameter, a wrong shape or dtype (nothing written),
            or a failed write (naming the runs and how many steps each still holds complete).
        """
        from zarr.core.sync import sync

        self._check_open(write=True)
        if not isinstance(records, Mapping):
            raise StoreError(
                f"records must be a mapping run -> (steps, params, scalars), got "
                f"{type(records).__name__}"
            )
        jobs = []
        for run, item in records.items():
            if not isinstance(item, tuple | list) or len(item) not in (3, 4):
                raise StoreError(
                    f"records[{run!r}] must be a tuple (steps, params, scalars[, next_states]), "
                    f"got {item!r}"
                )
            w = self._writer(run)
            jobs.append((w, *_check_records(w, *item)))
        if not jobs:
            return {}
        for w, _, _, svals in jobs:
            self._create_scalars(w, svals)
        try:
            done, advanced = sync(_write_records(jobs))
        except BaseException:
            for w, *_ in jobs:  # their in-memory state may be ahead of the files: reopen
                self._writers.pop(w.run, None)
            raise
        errors = [(w, exc) for (w, st, _, _), exc in zip(jobs, done) if exc is not None]
        if errors:
            for w, *_ in jobs:
                self._writers.pop(w.run, None)
            w, exc = errors[0]
            if len(jobs) == 1 and isinstance(exc, OSError):
                st = jobs[0][1]
                raise StoreError(
                    f"writing steps {int(st[0])}..{int(st[-1])} of run {w.run!r} to "
                    f"{str(self._path)!r} failed ({exc}); the store still holds {w.n} complete "
                    "steps"
                ) from exc
            if not isinstance(exc, OSError):
                raise exc
            raise StoreError(
                f"writing {len(jobs)} runs to {str(self._path)!r} failed (run {w.run!r}: {exc}); "
                "the store still holds "
                + ", ".join(f"{v.run!r}: {v.n + len(s) if a else v.n}"
                            for (v, s, _, _), a in zip(jobs, advanced))
                + " complete steps"
            ) from exc
        out = {}
        for w, st, _, _ in jobs:
            w.n += len(st)
            w.last = int(st[-1])
            out[w.run] = w.n
        return out

    def truncate(self, run: str, n_complete: int) -> None:
        """Declare only the first ``n_complete`` steps of ``run`` complete (used to resume)."""
        self._check_open(write=True)
        self._writers.pop(run, None)  # reopened (n_complete, last step) by the next append
        g = self._run(run)
        n = int(g.attrs["n_complete"])
        if not 0 <= int(n_complete) <= n:
            raise StoreError(f"n_complete must be in [0, {n}] for run {run!r}, got {n_complete}")
        g.update_attributes({"n_complete": int(n_complete), "finished": False})

    def delete_run(self, run: str) -> None:
        """Remove ``run`` and its data."""
        self._check_open(write=True)
        self._run(run)
        self._writers.pop(run, None)
        del self._runs_group()[run]
        self._valid.discard(run)

    def _writer(self, run: str) -> _RunWriter:
        """The open handles of ``run`` for appending (opened, validated and cached on first use).

        Kept until the store is closed or the run truncated or deleted; every attribute write of
        this handle goes through them (their in-memory attributes are the run's).
        """
        w = self._writers.get(run)
        if w is not None:
            return w
        g = self._run(run)
        a = g.attrs.asdict()
        n = int(a["n_complete"])
        last = int(self._read(run, g, "steps", slice(n - 1, n), n)[0]) if n else None
        declared = {name: (tuple(shape), np.dtype(dt)) for name, shape, dt in a["parameters"]}
        try:
            pg, sg = g["params"], g["scalars"]
            params = {name: _writable(pg[name]).async_array for name in declared}
            if a.get("branches"):  # the branch's arrays are written like the parameters
                bg = g[BRANCH]
                params.update({f"{BRANCH}/{name}": _writable(bg[name]).async_array
                               for name in declared})
            scalars = {name: _writable(sg[name]).async_array for name in self._scalar_names(run)}
            steps = _writable(g["steps"]).async_array
        except Exception as exc:
            raise self._damaged(
                run, f"its arrays cannot be opened ({type(exc).__name__}: {exc})"
            ) from exc
        import zarr

        group = zarr.AsyncGroup(metadata=g.metadata, store_path=g.store_path)
        w = _RunWriter(run, group, sg, n, last, declared, params, scalars, steps)
        self._writers[run] = w
        return w

    def _write_attributes(self, run: str, attrs: dict[str, Any]) -> None:
        """Merge ``attrs`` into the attributes of ``run``: through its open writer (whose
        in-memory attributes are the run's) if it has one, else through its group."""
        from zarr.core.sync import sync

        w = self._writers.get(run)
        if w is None:
            self._run(run).update_attributes(attrs)
            return
        try:
            sync(w.group.update_attributes(attrs))
        except BaseException:
            self._writers.pop(w.run, None)
            raise

    def _create_scalars(self, w: _RunWriter, svals: Mapping[str, np.ndarray]) -> None:
        """Create the scalar arrays of ``w``'s run named in ``svals`` that it lacks (NaN for its
        ``n_complete`` earlier steps)."""
        for name in svals:
            if name in w.scalars:
                continue
            try:
                arr = w.scalars_group.create_array(
                    name, shape=(w.n,), dtype="float64", chunks=(w.steps.chunks[0],),
                    fill_value=np.nan,
                    **_codecs(),
                )
                if w.n:
                    arr[: w.n] = np.full(w.n, np.nan)
            except OSError as exc:
                self._writers.pop(w.run, None)
                raise StoreError(
                    f"creating scalar {name!r} of run {w.run!r} in {str(self._path)!r} failed "
                    f"({exc}); the store still holds {w.n} complete steps"
                ) from exc
            w.scalars[name] = _writable(arr).async_array

    def _trim(self, w: _RunWriter) -> None:
        """Cut the arrays of ``w``'s run, grown in blocks by :meth:`append_many`, to its
        ``n_complete`` records."""
        from zarr.core.sync import sync

        try:
            for arr in [*w.params.values(), *w.scalars.values(), w.steps]:
                if arr.shape[0] > w.n:
                    _drop_chunks_beyond(self._path / arr.store_path.path, w.n, arr.chunks[0])
            sync(_trim(w))
        except OSError as exc:
            self._writers.pop(w.run, None)
            raise StoreError(
                f"trimming the arrays of run {w.run!r} in {str(self._path)!r} to its {w.n} "
                f"complete steps failed ({exc}); those steps are intact"
            ) from exc
        except BaseException:
            self._writers.pop(w.run, None)
            raise


@dataclass
class _RunWriter:
    """What a writer keeps open for one run between appends (:meth:`TrajectoryStore._writer`).

    ``group`` is the run's Zarr group; its in-memory attributes are the run's (every attribute
    write of the handle goes through it). ``n`` and ``last`` are ``n_complete`` and the training
    step of record ``n - 1`` (None when ``n == 0``).
    """

    run: str
    group: Any  # zarr.AsyncGroup
    scalars_group: Any  # zarr.Group (to create new scalar arrays)
    n: int
    last: int | None
    declared: dict[str, tuple[tuple[int, ...], np.dtype]]
    params: dict[str, Any]  # name -> zarr.AsyncArray (write_empty_chunks on)
    scalars: dict[str, Any]
    steps: Any


def _check_records(
    w: _RunWriter, steps: Any, params: Any, scalars: Any, next_states: Any = None
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Validated ``(steps, params, scalars)`` of one append to ``w``'s run, the branch's
    arrays (``next_states``) among the parameters as ``next/<name>``."""
    run = w.run
    st = np.asarray(steps)
    if st.ndim != 1 or st.size == 0 or st.dtype.kind not in "iu":
        raise StoreError(f"steps must be a non-empty 1-D integer array, got {steps!r}")
    k = st.size
    if np.any(np.diff(st) <= 0) or st[0] < 0:
        raise StoreError(f"steps must be non-negative and strictly increasing, got {st}")
    if w.last is not None and st[0] <= w.last:
        raise StoreError(
            f"steps must come after the last complete step {w.last} of run "
            f"{run!r}, got {int(st[0])}"
        )
    branched = f"{BRANCH}/" + next(iter(w.declared)) in w.params
    if branched != (next_states is not None):
        raise StoreError(
            f"append to run {run!r}: " + ("the run keeps a branch: give next_states= (the "
            "parameters after one more stride from each record)" if branched else
            "next_states given but the run keeps no branch (create it with "
            "next_states=True)")
        )
    arrays = _checked_arrays(run, k, w.declared, params, "params", "")
    if next_states is not None:
        arrays.update(_checked_arrays(run, k, w.declared, next_states, "next_states",
                                           f"{BRANCH}/"))
    svals = {}
    for name, v in (scalars or {}).items():
        _check_name(name, "scalar")
        x = np.asarray(v, dtype=np.float64)
        if x.shape != (k,):
            raise StoreError(f"scalar {name!r}: expected shape ({k},), got {x.shape}")
        svals[name] = x
    return st.astype(np.int64), arrays, svals

def _checked_arrays(run: str, k: int, declared: dict[str, Any], params: Any, what: str,
                    prefix: str) -> dict[str, np.ndarray]:
    """``params`` (name -> array (k, *shape)) checked against the run's parameters, keyed
    ``prefix + name``."""
    if not isinstance(params, Mapping):
        raise StoreError(f"{what} must be a mapping name -> array, got {type(params).__name__}")
    extra = set(params) - set(declared)
    missing = set(declared) - set(params)
    if extra or missing:
        raise StoreError(
            f"append to run {run!r}: {what} needs exactly its parameters {list(declared)}; "
            f"missing {sorted(missing)}, unknown {sorted(extra)}"
        )
    arrays = {}
    for name, (shape, dt) in declared.items():
        x = np.asarray(params[name])
        label = "parameter" if what == "params" else f"{what}"
        if x.shape != (k, *shape):
            raise StoreError(f"{label} {name!r}: expected shape {(k, *shape)}, got {x.shape}")
        if x.dtype != dt:
            raise StoreError(f"{label} {name!r}: expected dtype {dt}, got {x.dtype}")
        arrays[prefix + name] = x
    return arrays


def _series_chunk(chunk_steps: int) -> int:
    """Chunk length of the ``steps`` and scalar arrays: the smallest multiple of ``chunk_steps``
    that is at least 64, so a recorder's flush of ``chunk_steps`` records writes whole chunks
    (no read-modify-write) when ``chunk_steps >= 64``, and small flushes share a file."""
    return chunk_steps * -(-_SERIES_CHUNK // chunk_steps)


def _capacity(need: int, chunk: int) -> int:
    """Length an array is grown to when ``need`` records do not fit: the next multiple of
    ``_GROWTH_CHUNKS`` chunks (its metadata is rewritten once per that many chunks, not once per
    append; the length beyond ``n_complete`` holds no chunk files and is trimmed by
    :meth:`TrajectoryStore.set_finished`)."""
    block = _GROWTH_CHUNKS * max(int(chunk), 1)
    return -(-need // block) * block


def _drop_chunks_beyond(array_dir: Any, n: int, c0: int) -> None:
    """Delete the chunk files of the array in ``array_dir`` wholly beyond its first ``n``
    records, by listing the chunk files there are (``c/<i>``, a file or a folder): never by
    enumerating the declared shape, which a damaged ``zarr.json`` may make 1e9 steps long.
    Nothing is followed through a link; only regular files and real folders are removed."""
    first = -(-n // c0)  # the first chunk index wholly beyond n
    try:
        fd = os.open(array_dir / "c", os.O_RDONLY | _safe._DIRECTORY | _safe._NOFOLLOW
                     | _safe._CLOEXEC)
    except FileNotFoundError:
        return
    try:
        with os.scandir(fd) as it:
            names = [e.name for e in it if e.name.isdigit() and int(e.name) >= first]
        for name in names:
            st = os.lstat(name, dir_fd=fd)
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(name, dir_fd=fd)  # fd-based: does not follow links
            elif stat.S_ISREG(st.st_mode):
                os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)


async def _trim(w: _RunWriter) -> None:
    """Cut every array of ``w``'s run to its ``n_complete`` records (their chunk files wholly
    beyond them are deleted first, by :func:`_drop_chunks_beyond`)."""
    import asyncio

    arrays = [*w.params.values(), *w.scalars.values(), w.steps]
    await asyncio.gather(*(a.resize((w.n, *a.shape[1:]), delete_outside_chunks=False)
                           for a in arrays if a.shape[0] != w.n))


async def _write_records(
    jobs: list[tuple[Any, ...]],
) -> tuple[list[BaseException | None], list[bool]]:
    """Write the records of several runs: all data concurrently, then, once every write has
    finished, each run's ``n_complete``. Returns, per job, the exception that stopped it and
    whether its ``n_complete`` was advanced."""
    import asyncio

    async def put(arr: Any, n: int, x: np.ndarray) -> None:
        if arr.shape[0] < n + len(x):  # grown in blocks: most appends write no metadata
            await arr.resize((_capacity(n + len(x), arr.chunks[0]), *x.shape[1:]))
        await arr.setitem(slice(n, n + len(x)), x)

    async def data(w: _RunWriter, st: np.ndarray, arrays: dict[str, np.ndarray],
                   svals: dict[str, np.ndarray]) -> None:
        k = len(st)
        writes = [put(w.params[name], w.n, x) for name, x in arrays.items()]
        writes += [put(arr, w.n, svals.get(name, np.full(k, np.nan)))
                   for name, arr in w.scalars.items()]
        writes.append(put(w.steps, w.n, st))
        for exc in await asyncio.gather(*writes, return_exceptions=True):
            if exc is not None:
                raise exc

    done = await asyncio.gather(*(data(*job) for job in jobs), return_exceptions=True)
    if any(e is not None for e in done):
        return list(done), [False] * len(jobs)  # n_complete of no run is advanced
    done = await asyncio.gather(
        *(w.group.update_attributes({"n_complete": w.n + len(st)}) for w, st, _, _ in jobs),
        return_exceptions=True,
    )
    errors = [e if isinstance(e, BaseException) else None for e in done]
    return errors, [e is None for e in errors]
