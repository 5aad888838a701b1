"""On-disk trajectory store (Zarr v3): many runs of recorded weights, read back for DMD.

A store is a directory holding one Zarr v3 group. It contains many *runs* (one training run each,
e.g. one replica); each run holds one array per recorded parameter, shaped
``(n_steps, *param_shape)`` and appended in chunks along the step axis, scalar series (loss,
accuracy, ...), the recorded training-step indices, and JSON metadata.

Layout (format version 1)
-------------------------
::

    PATH/                               Zarr v3 group (the root)
      zarr.json                         attributes {"conjugacy_store": {"format_version": 1,
                                                    "created_with": "<conjugacy version>"}}
      .conjugacy-write.lock             exists while a writer holds the store: JSON {pid, host, since}
      runs/                             group
        <run>/                          group, attributes:
                                          n_complete   int: the first n_complete steps are complete
                                          parameters   [[name, shape, dtype], ...] in feature order
                                          chunk_steps  int: chunk length along the step axis
                                          metadata     JSON object (model, optimizer, seed, ...)
                                          finished     bool: the writer closed the run normally
          steps                         int64 (n_steps,): training-step index of each record
          params/<name>                 (n_steps, *shape), the parameter's own dtype (float32,
                                        float64, ...); chunks (chunk_steps, *shape)
          scalars/<name>                float64 (n_steps,), NaN where a value was not given

Only the first ``n_complete`` entries along the step axis of any array are valid: arrays may be
longer after an interruption, and readers must ignore the rest. ``n_complete`` is written after
the data of a flush (each Zarr write is atomic: temp file + ``os.replace``), so a process killed at
any point leaves the flushed steps intact and the store consistent. Zarr does not ``fsync``: a
power loss (as opposed to a killed process) may lose recent writes on some file systems.

Reading
-------
:meth:`TrajectoryStore.read` returns ``(n_runs, n_steps, n_features)`` arrays ready for
:func:`conjugacy.koopman_spectrum`. The features of a selection are the selected parameters in
*recorded order* (the order of ``parameters``, which the recorder takes from
``model.named_parameters()``), each flattened in C order, concatenated. Unselected parameters are
never read. Any Zarr v3 reader (zarr-python, zarr.js, tensorstore) can read the store directly.

Concurrency
-----------
One writer at a time: opening with mode ``"a"`` or ``"w"`` creates the lock file with
``O_CREAT | O_EXCL`` and refuses if it exists, unless the lock is stale (same host, its process is
dead), in which case it is taken over. Readers (mode ``"r"``) take no lock and see only complete
steps.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import math
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FORMAT_VERSION",
    "LOCK_NAME",
    "StoreError",
    "TrajectoryStore",
    "select_names",
]

FORMAT_VERSION = 1
LOCK_NAME = ".conjugacy-write.lock"
_ROOT_KEY = "conjugacy_store"
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=,\-]*$")
_MAX_CHUNK_BYTES = 32 * 2**20


class StoreError(OSError, ValueError):
    """A trajectory store cannot be opened, written or read as asked.

    Subclasses both :class:`OSError` (disk, permission and lock problems) and :class:`ValueError`
    (unknown runs, parameters or scalars; incompatible formats), so either ``except`` catches it.
    """

    def __str__(self) -> str:  # OSError would format (errno, strerror) pairs; keep the message
        return str(self.args[0]) if self.args else ""


def _package_version() -> str:
    try:
        from . import __version__

        return str(__version__)
    except Exception:  # pragma: no cover - partial installs
        return "unknown"


def select_names(available: Sequence[str], patterns: str | Iterable[str] | None) -> list[str]:
    """Names from ``available`` matching any of ``patterns`` (exact names or fnmatch globs).

    Parameters
    ----------
    available : sequence of str
        Candidate names, in the order the result keeps.
    patterns : str, iterable of str or None
        ``None`` or ``"*"`` selects everything. Each pattern must match at least one name.

    Returns
    -------
    list of str
        The matching names in the order of ``available`` (not of ``patterns``).

    Raises
    ------
    StoreError
        If a pattern matches nothing; the message lists the available names.
    """
    available = list(available)
    if patterns is None:
        return available
    if isinstance(patterns, str):
        patterns = [patterns]
    patterns = list(patterns)
    if not patterns:
        raise StoreError("params is an empty list; give at least one name or glob, or None")
    for p in patterns:
        if not isinstance(p, str):
            raise StoreError(f"params must be names or glob strings, got {p!r}")
    chosen = set()
    for p in patterns:
        hits = [n for n in available if fnmatch.fnmatchcase(n, p)]
        if not hits:
            raise StoreError(
                f"parameter selection {p!r} matches nothing; available parameters: "
                + ", ".join(available)
            )
        chosen.update(hits)
    return [n for n in available if n in chosen]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _chunk_shape(chunk_steps: int, shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """(chunk_steps, *shape), with leading parameter axes halved until a chunk is <= 32 MiB."""
    dims = list(shape)
    for ax in range(len(dims)):
        while dims[ax] > 1 and chunk_steps * math.prod(dims) * itemsize > _MAX_CHUNK_BYTES:
            dims[ax] = (dims[ax] + 1) // 2
    return (chunk_steps, *dims)


def _check_json(obj: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(obj, allow_nan=True))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} must be JSON-serialisable: {exc}") from None


class TrajectoryStore:
    """A directory of recorded weight trajectories (see the module docstring for the layout).

    Create with :meth:`open`. Use as a context manager, or call :meth:`close` (which releases the
    writer lock).
    """

    def __init__(self, path: Path, mode: str, root: Any, lock: Path | None) -> None:
        self._path = path
        self._mode = mode
        self._root = root
        self._lock = lock
        self._closed = False

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls, path: str | os.PathLike[str], mode: str = "a", *, min_free_bytes: int = 16 * 2**20
    ) -> TrajectoryStore:
        """Open a trajectory store.

        Parameters
        ----------
        path : str or path-like
            Directory of the store.
        mode : {"r", "a", "w"}
            ``"r"`` read-only (must exist); ``"a"`` create or append; ``"w"`` create, refusing a
            path that exists and is not empty.
        min_free_bytes : int
            Writers refuse to open when the file system has less free space than this.

        Raises
        ------
        StoreError
            Missing store (``"r"``), not a conjugacy store, incompatible format version, store
            locked by another writer, destination not writable or full.
        """
        import zarr

        if mode not in ("r", "a", "w"):
            raise StoreError(f"mode must be 'r', 'a' or 'w', got {mode!r}")
        p = Path(path).expanduser()
        exists = p.exists()
        if exists and not p.is_dir():
            raise StoreError(f"store path {str(p)!r} exists and is not a directory")
        nonempty = exists and any(e.name != LOCK_NAME for e in p.iterdir())
        if mode == "r":
            if not exists:
                raise StoreError(f"no trajectory store at {str(p)!r} (path does not exist)")
            root = cls._open_root(zarr, p, "r")
            return cls(p, "r", root, None)
        if mode == "w" and nonempty:
            raise StoreError(
                f"store path {str(p)!r} exists and is not empty; mode='w' only creates new "
                "stores (use mode='a' to append)"
            )
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create store directory {str(p)!r}: {exc}") from exc
        cls._check_writable(p, min_free_bytes)
        lock = cls._acquire_lock(p)
        try:
            if nonempty:
                root = cls._open_root(zarr, p, "r+")
            else:
                root = zarr.open_group(str(p), mode="a", zarr_format=3, use_consolidated=False)
                root.update_attributes(
                    {_ROOT_KEY: {"format_version": FORMAT_VERSION,
                                 "created_with": _package_version()}}
                )
                root.create_group("runs")
            for stale in p.rglob("*.partial"):  # temp files of writes killed half-way
                stale.unlink(missing_ok=True)
        except BaseException:
            lock.unlink(missing_ok=True)
            raise
        return cls(p, mode, root, lock)

    @staticmethod
    def _open_root(zarr: Any, p: Path, mode: str) -> Any:
        if not (p / "zarr.json").is_file():
            raise StoreError(
                f"{str(p)!r} is not a conjugacy trajectory store (no zarr.json); "
                "pass an empty or new directory to create one"
            )
        try:
            root = zarr.open_group(str(p), mode=mode, zarr_format=3, use_consolidated=False)
        except Exception as exc:
            raise StoreError(f"{str(p)!r} is not a readable Zarr v3 group: {exc}") from exc
        info = root.attrs.get(_ROOT_KEY)
        if not isinstance(info, dict) or "format_version" not in info:
            raise StoreError(
                f"{str(p)!r} is a Zarr group but not a conjugacy trajectory store "
                f"(no '{_ROOT_KEY}' attribute)"
            )
        version = info["format_version"]
        if version != FORMAT_VERSION:
            raise StoreError(
                f"store {str(p)!r} has format version {version!r} (written by conjugacy "
                f"{info.get('created_with', '?')}); this conjugacy ({_package_version()}) reads "
                f"format version {FORMAT_VERSION} only"
            )
        if "runs" not in root:
            raise StoreError(f"store {str(p)!r} is damaged: its 'runs' group is missing")
        return root

    @staticmethod
    def _check_writable(p: Path, min_free_bytes: int) -> None:
        if not os.access(p, os.W_OK | os.X_OK):
            raise StoreError(f"store directory {str(p)!r} is not writable (permission denied)")
        probe = p / f".write-probe-{uuid.uuid4().hex}"
        try:
            with open(probe, "wb") as f:
                f.write(b"\0" * 4096)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise StoreError(
                f"cannot write to store directory {str(p)!r}: {exc.strerror or exc}"
            ) from exc
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()
        free = shutil.disk_usage(p).free
        if free < min_free_bytes:
            raise StoreError(
                f"not enough free space for store {str(p)!r}: {free} bytes free, "
                f"min_free_bytes={min_free_bytes} required"
            )

    @staticmethod
    def _acquire_lock(p: Path) -> Path:
        lock = p / LOCK_NAME
        host = socket.gethostname()
        for _ in range(3):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    info = json.loads(lock.read_text())
                    pid, lock_host = int(info["pid"]), str(info["host"])
                except (OSError, ValueError, KeyError, TypeError):
                    raise StoreError(
                        f"store {str(p)!r} is locked by another writer (unreadable lock file "
                        f"{str(lock)!r}; delete it if no process is writing)"
                    ) from None
                if lock_host == host and not _pid_alive(pid):
                    lock.unlink(missing_ok=True)  # stale: its writer died without closing
                    continue
                raise StoreError(  # noqa: B904 (not chained: the lock is simply held)
                    f"store {str(p)!r} is already open for writing by process {pid} on "
                    f"{lock_host!r}; close it first (only one writer at a time), or delete "
                    f"{str(lock)!r} if that process is gone"
                )
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "host": host, "since": time.time()}, f)
            return lock
        raise StoreError(f"could not acquire the write lock {str(lock)!r}")  # pragma: no cover

    # ------------------------------------------------------------------ basics
    @property
    def path(self) -> Path:
        """Directory of the store."""
        return self._path

    @property
    def mode(self) -> str:
        """``"r"``, ``"a"`` or ``"w"``."""
        return self._mode

    @property
    def writable(self) -> bool:
        """Whether this handle may write."""
        return self._mode != "r" and not self._closed

    def close(self) -> None:
        """Release the writer lock. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._lock is not None:
            self._lock.unlink(missing_ok=True)
            self._lock = None

    def __enter__(self) -> TrajectoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TrajectoryStore({str(self._path)!r}, mode={self._mode!r})"

    def _check_open(self, write: bool = False) -> None:
        if self._closed:
            raise StoreError(f"store {str(self._path)!r} is closed")
        if write and self._mode == "r":
            raise StoreError(f"store {str(self._path)!r} was opened read-only (mode='r')")

    def _runs_group(self) -> Any:
        return self._root["runs"]

    def _run(self, run: str) -> Any:
        self._check_open()
        if not isinstance(run, str):
            raise StoreError(f"run must be a string, got {run!r}")
        runs = self._runs_group()
        if run not in runs or "n_complete" not in runs[run].attrs:
            names = self.runs()
            raise StoreError(
                f"unknown run {run!r} in store {str(self._path)!r}; runs: "
                + (", ".join(names) if names else "(none)")
            )
        return runs[run]

    # ------------------------------------------------------------------ queries
    def runs(self) -> list[str]:
        """Names of the runs in the store, sorted."""
        self._check_open()
        runs = self._runs_group()
        return sorted(n for n, g in runs.groups() if "n_complete" in g.attrs)

    def __contains__(self, run: object) -> bool:
        return isinstance(run, str) and run in self.runs()

    def n_complete(self, run: str) -> int:
        """Number of complete (readable) steps of ``run``."""
        return int(self._run(run).attrs["n_complete"])

    def run_info(self, run: str) -> dict[str, Any]:
        """Description of a run.

        Returns
        -------
        dict
            ``name``, ``n_complete``, ``chunk_steps``, ``finished``, ``parameters`` (name ->
            ``{"shape": [...], "dtype": str, "size": int}``, in feature order), ``n_features``,
            ``scalars`` (sorted names), ``first_step``/``last_step`` (recorded step indices or
            None), ``metadata`` (dict).
        """
        g = self._run(run)
        a = g.attrs.asdict()
        n = int(a["n_complete"])
        params = {
            name: {"shape": list(shape), "dtype": dtype, "size": int(math.prod(shape))}
            for name, shape, dtype in a["parameters"]
        }
        steps = g["steps"][:n] if n else np.zeros(0, np.int64)
        return {
            "name": run,
            "n_complete": n,
            "chunk_steps": int(a["chunk_steps"]),
            "finished": bool(a.get("finished", False)),
            "parameters": params,
            "n_features": int(sum(v["size"] for v in params.values())),
            "scalars": sorted(g["scalars"].array_keys()),
            "first_step": int(steps[0]) if n else None,
            "last_step": int(steps[-1]) if n else None,
            "metadata": dict(a.get("metadata", {})),
        }

    def parameters(self, run: str) -> list[str]:
        """Recorded parameter names of ``run`` in feature order."""
        return [name for name, _, _ in self._run(run).attrs["parameters"]]

    def steps(self, run: str) -> np.ndarray:
        """Training-step index of each complete record of ``run``, int64 ``(n_complete,)``."""
        g = self._run(run)
        n = int(g.attrs["n_complete"])
        return np.asarray(g["steps"][:n], dtype=np.int64)

    def scalars(self, run: str, name: str) -> np.ndarray:
        """Scalar series ``name`` of ``run``, float64 ``(n_complete,)``; NaN where not recorded."""
        g = self._run(run)
        n = int(g.attrs["n_complete"])
        sg = g["scalars"]
        if name not in sg:
            names = sorted(sg.array_keys())
            raise StoreError(
                f"run {run!r} has no scalar {name!r}; scalars: "
                + (", ".join(names) if names else "(none)")
            )
        return np.asarray(sg[name][:n], dtype=np.float64)

    def read(
        self,
        params: str | Sequence[str] | None = None,
        runs: str | Sequence[str] | None = None,
        steps: slice | None = None,
        *,
        dtype: Any = None,
    ) -> np.ndarray:
        """Read trajectories shaped for :func:`conjugacy.koopman_spectrum`.

        Parameters
        ----------
        params : str, list of str or None
            Parameter names or fnmatch globs (``"fc2.weight"``, ``"blocks.0.mlp.*"``); None = all.
            Features are the selected parameters in recorded order, each flattened (C order).
        runs : str, list of str or None
            Runs to read, in this order; None = all runs, sorted by name.
        steps : slice or None
            Positions along the recorded axis (not training-step indices; see :meth:`steps`),
            applied to the complete steps of every run.
        dtype : numpy dtype, optional
            Output dtype; default: the common dtype of the selected parameters (float64 stays
            float64).

        Returns
        -------
        ndarray, shape (n_runs, n_steps, n_features)

        Raises
        ------
        StoreError
            Unknown runs or parameters, runs with different selected shapes or step counts.
        """
        self._check_open()
        if runs is None:
            run_names = self.runs()
            if not run_names:
                raise StoreError(f"store {str(self._path)!r} holds no runs")
        elif isinstance(runs, str):
            run_names = [runs]
        else:
            run_names = list(runs)
            if not run_names:
                raise StoreError("runs is an empty list; give run names or None for all runs")
        if steps is not None and not isinstance(steps, slice):
            raise StoreError(f"steps must be a slice or None, got {steps!r}")
        groups = [self._run(r) for r in run_names]
        layout = None
        lengths = []
        for r, g in zip(run_names, groups):
            a = g.attrs.asdict()
            declared = {name: (tuple(shape), dt) for name, shape, dt in a["parameters"]}
            names = select_names(list(declared), params)
            this = [(n, declared[n]) for n in names]
            if layout is None:
                layout = this
            elif this != layout:
                raise StoreError(
                    f"run {r!r} has a different selected parameter layout than run "
                    f"{run_names[0]!r}: {this} vs {layout}"
                )
            rng = range(int(a["n_complete"]))
            lengths.append(rng[steps] if steps is not None else rng)
        sizes = {len(x) for x in lengths}
        if len(sizes) > 1:
            counts = {r: int(self._run(r).attrs["n_complete"]) for r in run_names}
            selected = dict(zip(run_names, map(len, lengths)))
            raise StoreError(
                f"runs have different numbers of selected steps {selected} (complete steps: "
                f"{counts}); pass steps=slice(0, n) with a common n"
            )
        assert layout is not None
        out_dtype = (
            np.dtype(dtype) if dtype is not None else np.result_type(*[d for _, (_, d) in layout])
        )
        n_feat = sum(math.prod(s) for _, (s, _) in layout)
        n_steps = len(lengths[0])
        out = np.empty((len(run_names), n_steps, n_feat), dtype=out_dtype)
        if n_steps == 0:
            return out
        for i, (g, rng) in enumerate(zip(groups, lengths)):
            sl = slice(rng.start, rng.stop if rng.stop >= 0 else None, rng.step)
            pg = g["params"]
            off = 0
            for name, (shape, _) in layout:
                size = math.prod(shape)
                if rng.step > 0:
                    block = np.asarray(pg[name][sl])
                else:  # zarr takes positive steps only
                    idx = np.asarray(rng)
                    block = np.asarray(pg[name][int(idx.min()) : int(idx.max()) + 1])[
                        idx - int(idx.min())
                    ]
                out[i, :, off : off + size] = block.reshape(n_steps, size)
                off += size
        return out

    # ------------------------------------------------------------------ writing
    def create_run(
        self,
        run: str,
        parameters: Mapping[str, tuple[Sequence[int], Any]],
        *,
        chunk_steps: int = 64,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Create an empty run.

        Parameters
        ----------
        run : str
            Run name: letters, digits and ``_ . + = , -``, not starting with a punctuation mark.
        parameters : mapping name -> (shape, dtype)
            Parameters to record, in feature order.
        chunk_steps : int
            Chunk length along the step axis (a recorder flushes this many steps at a time).
        metadata : mapping, optional
            JSON-serialisable description (model, optimizer, seed, replica, perturbation, ...).
        """
        self._check_open(write=True)
        if not isinstance(run, str) or not _RUN_NAME.match(run):
            raise StoreError(
                f"run name {run!r} is invalid: use letters, digits and _ . + = , - "
                "starting with a letter or digit"
            )
        runs = self._runs_group()
        if run in runs:
            if "n_complete" in runs[run].attrs:
                raise StoreError(f"run {run!r} already exists in store {str(self._path)!r}")
            del runs[run]  # half-created by a writer that was interrupted: start it again
        if not isinstance(chunk_steps, int | np.integer) or chunk_steps < 1:
            raise StoreError(f"chunk_steps must be a positive integer, got {chunk_steps!r}")
        if not parameters:
            raise StoreError("parameters is empty: a run records at least one parameter")
        meta = _check_json(dict(metadata or {}), "metadata")
        decl = []
        for name, (shape, dt) in parameters.items():
            if not isinstance(name, str) or not name or "/" in name or name.startswith("__"):
                raise StoreError(f"parameter name {name!r} is invalid (no '/', not '__'-prefixed)")
            shape = tuple(int(s) for s in shape)
            dt = np.dtype(dt)
            if dt.kind not in "fciub":
                raise StoreError(f"parameter {name!r} has unsupported dtype {dt}")
            decl.append((name, shape, dt))
        g = runs.create_group(run)
        g.create_array("steps", shape=(0,), dtype="int64", chunks=(max(chunk_steps, 1024),))
        pg = g.create_group("params")
        g.create_group("scalars")
        for name, shape, dt in decl:
            pg.create_array(
                name,
                shape=(0, *shape),
                dtype=dt,
                chunks=_chunk_shape(int(chunk_steps), shape, dt.itemsize),
                fill_value=0,
            )
        # attributes last: a run without them is half-created and is recreated by a writer
        g.update_attributes(
            {
                "n_complete": 0,
                "chunk_steps": int(chunk_steps),
                "parameters": [[n, list(s), str(d)] for n, s, d in decl],
                "metadata": meta,
                "finished": False,
            }
        )

    def update_metadata(self, run: str, metadata: Mapping[str, Any]) -> None:
        """Merge ``metadata`` (JSON-serialisable) into the run's metadata."""
        self._check_open(write=True)
        g = self._run(run)
        meta = dict(g.attrs.get("metadata", {}))
        meta.update(_check_json(dict(metadata), "metadata"))
        g.update_attributes({"metadata": meta})

    def set_finished(self, run: str, finished: bool = True) -> None:
        """Mark ``run`` as closed normally (or not)."""
        self._check_open(write=True)
        self._run(run).update_attributes({"finished": bool(finished)})

    def append(
        self,
        run: str,
        steps: Sequence[int] | np.ndarray,
        params: Mapping[str, np.ndarray],
        scalars: Mapping[str, Sequence[float] | np.ndarray] | None = None,
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

        Notes
        -----
        All data is written before ``n_complete`` is advanced, so an interruption leaves either
        the old or the new ``n_complete`` with all its steps intact.
        """
        self._check_open(write=True)
        g = self._run(run)
        a = g.attrs.asdict()
        n = int(a["n_complete"])
        st = np.asarray(steps)
        if st.ndim != 1 or st.size == 0 or st.dtype.kind not in "iu":
            raise StoreError(f"steps must be a non-empty 1-D integer array, got {steps!r}")
        k = st.size
        if np.any(np.diff(st) <= 0) or st[0] < 0:
            raise StoreError(f"steps must be non-negative and strictly increasing, got {st}")
        if n and st[0] <= int(g["steps"][n - 1]):
            raise StoreError(
                f"steps must come after the last complete step {int(g['steps'][n - 1])} of run "
                f"{run!r}, got {int(st[0])}"
            )
        declared = {name: (tuple(shape), np.dtype(dt)) for name, shape, dt in a["parameters"]}
        extra = set(params) - set(declared)
        missing = set(declared) - set(params)
        if extra or missing:
            raise StoreError(
                f"append to run {run!r} needs exactly its parameters {list(declared)}; "
                f"missing {sorted(missing)}, unknown {sorted(extra)}"
            )
        arrays = {}
        for name, (shape, dt) in declared.items():
            x = np.asarray(params[name])
            if x.shape != (k, *shape):
                raise StoreError(
                    f"parameter {name!r}: expected shape {(k, *shape)}, got {x.shape}"
                )
            if x.dtype != dt:
                raise StoreError(f"parameter {name!r}: expected dtype {dt}, got {x.dtype}")
            arrays[name] = x
        svals = {}
        for name, v in (scalars or {}).items():
            if not isinstance(name, str) or not name or "/" in name or name.startswith("__"):
                raise StoreError(f"scalar name {name!r} is invalid (no '/', not '__'-prefixed)")
            x = np.asarray(v, dtype=np.float64)
            if x.shape != (k,):
                raise StoreError(f"scalar {name!r}: expected shape ({k},), got {x.shape}")
            svals[name] = x
        try:
            pg, sg = g["params"], g["scalars"]
            for name, x in arrays.items():
                arr = pg[name]
                arr.resize((n + k, *x.shape[1:]))
                arr[n : n + k] = x
            existing = set(sg.array_keys())
            for name in svals:
                if name not in existing:
                    sg.create_array(
                        name, shape=(n,), dtype="float64", chunks=(1024,), fill_value=np.nan
                    )
                    if n:
                        sg[name][:n] = np.full(n, np.nan)
            for name in set(svals) | existing:
                arr = sg[name]
                arr.resize((n + k,))
                arr[n : n + k] = svals.get(name, np.full(k, np.nan))
            sarr = g["steps"]
            sarr.resize((n + k,))
            sarr[n : n + k] = st.astype(np.int64)
            g.update_attributes({"n_complete": n + k})
        except OSError as exc:
            raise StoreError(
                f"writing steps {int(st[0])}..{int(st[-1])} of run {run!r} to "
                f"{str(self._path)!r} failed ({exc}); the store still holds {n} complete steps"
            ) from exc
        return n + k

    def truncate(self, run: str, n_complete: int) -> None:
        """Declare only the first ``n_complete`` steps of ``run`` complete (used to resume)."""
        self._check_open(write=True)
        g = self._run(run)
        n = int(g.attrs["n_complete"])
        if not 0 <= int(n_complete) <= n:
            raise StoreError(f"n_complete must be in [0, {n}] for run {run!r}, got {n_complete}")
        g.update_attributes({"n_complete": int(n_complete), "finished": False})

    def delete_run(self, run: str) -> None:
        """Remove ``run`` and its data."""
        self._check_open(write=True)
        self._run(run)
        del self._runs_group()[run]
