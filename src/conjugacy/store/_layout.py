"""Opening and closing a store, its root and runs' metadata, and the handle's basic state."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._launch import require
from . import _lock, _safe
from ._base import (
    _ROOT_KEY,
    _RUN_NAME,
    FORMAT_VERSION,
    READABLE_FORMAT_VERSIONS,
    DamagedStoreError,
    StoreError,
    _is_int,
    _package_version,
)

if TYPE_CHECKING:
    from . import TrajectoryStore
    from ._write import _RunWriter


class _Layout:
    """Opening, closing, the root and the runs' metadata of :class:`TrajectoryStore`."""

    def __init__(
        self, path: Path, mode: str, root: Any, lock_fd: int | None, format_version: int
    ) -> None:
        self._path = path
        self._mode = mode
        self._root = root
        self._lock_fd = lock_fd
        self._lock_pid = os.getpid()
        self._format = format_version
        self._closed = False
        self._valid: set[str] = set()  # runs whose layout has been validated
        self._writers: dict[str, _RunWriter] = {}  # open handles of runs being appended to

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        mode: str = "a",
        *,
        min_free_bytes: int = 16 * 2**20,
        check: bool = True,
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
        check : bool
            Validate every run's attributes against its arrays now (``n_complete`` within the
            arrays' lengths, declared shapes and dtypes). With False, each run is validated when
            first used (:meth:`verify` opens this way to report rather than refuse).

        Raises
        ------
        StoreError
            Missing store (``"r"``), not a conjugacy store, incompatible format version, store
            locked by another writer, destination not writable or full.
        DamagedStoreError
            A run's attributes disagree with its arrays (``check=True``).
        ModuleNotFoundError
            zarr is not installed: one line naming the extra (``pip install 'conjugacy[store]'``).
        """
        require("zarr", "TrajectoryStore.open")  # every read and write of a store starts here
        import zarr

        if mode not in ("r", "a", "w"):
            raise StoreError(f"mode must be 'r', 'a' or 'w', got {mode!r}")
        p = Path(path).expanduser()
        if p.exists() and not p.is_dir():
            raise StoreError(f"store path {str(p)!r} exists and is not a directory")
        if mode == "r":
            if not p.exists():
                raise StoreError(f"no trajectory store at {str(p)!r} (path does not exist)")
            root, version = cls._open_root(zarr, p, "r")
            st = cls(p, "r", root, None, version)
            if check:
                st._check_all_runs()
            return st
        if mode == "w":
            _refuse_nonempty(p, _lock.nonempty(p))
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create store directory {str(p)!r}: {exc}") from exc
        if not os.access(p, os.W_OK | os.X_OK):
            raise StoreError(f"store directory {str(p)!r} is not writable (permission denied)")
        fd = _lock.acquire_lock(p)
        try:
            return cls._open_locked(zarr, p, mode, fd, min_free_bytes, check)
        except BaseException:
            _lock.release_lock(p, fd)
            raise

    @classmethod
    def _open_locked(
        cls, zarr: Any, p: Path, mode: str, fd: int, min_free_bytes: int, check: bool
    ) -> TrajectoryStore:
        """The writer's half of :meth:`open`, run while holding the lock ``fd`` (which the
        caller releases if this raises): open or create the root, remove dead temporaries."""
        nonempty = _lock.nonempty(p)  # again, under the lock: another writer may have created
        if mode == "w":
            _refuse_nonempty(p, nonempty)
        _lock.check_space(p, min_free_bytes)
        if nonempty:
            cls._root_info(p, mode)  # a conjugacy store (read only, bounded) before any change
            # every other writer is dead now: what it left half-written is garbage; a link,
            # FIFO or device anywhere in the store is refused before Zarr writes anything
            _lock.remove_dead_temporaries(p)
            root, version = cls._open_root(zarr, p, "r+", repair=True)
        else:  # a new store: only this writer's files and a dead writer's probes are there
            _lock.remove_dead_temporaries(p)
            root = zarr.create_group(
                str(p),
                zarr_format=3,
                attributes={_ROOT_KEY: {"format_version": FORMAT_VERSION,
                                        "created_with": _package_version()}},
            )
            root.create_group("runs")
            version = FORMAT_VERSION
        st = cls(p, mode, root, fd, version)
        if check:
            st._check_all_runs()
        return st

    @staticmethod
    def _root_info(p: Path, mode: str) -> Any:
        """The root's zarr.json, read bounded and without following a link; refuses a folder
        without one in one line."""
        try:
            meta = _safe.read_json(p / "zarr.json")
        except _safe.UnsafeFile as exc:
            raise StoreError(
                f"{str(p)!r} is not a readable conjugacy trajectory store: its zarr.json "
                f"{exc.problem}"
            ) from None
        if meta is None:
            raise StoreError(
                f"{str(p)!r} is not a conjugacy trajectory store (no zarr.json); "
                + ("give the folder a Recorder or TrajectoryStore.open(..., 'w') wrote"
                   if mode == "r" else "pass an empty or new directory to create one")
            )
        attrs = meta.get("attributes") if isinstance(meta, dict) else None
        if not isinstance(attrs, dict) or not isinstance(attrs.get(_ROOT_KEY), dict):
            raise StoreError(
                f"{str(p)!r} is not a conjugacy trajectory store (its zarr.json has no "
                f"'{_ROOT_KEY}' attribute)"
            )
        return meta

    @classmethod
    def _open_root(cls, zarr: Any, p: Path, mode: str, repair: bool = False) -> tuple[Any, int]:
        """The root group of the store at ``p`` and its format version; refuses a folder that is
        not a conjugacy store and a format this version cannot read."""
        cls._root_info(p, mode)  # bounded, never through a link, before Zarr reads it
        try:
            root = zarr.open_group(str(p), mode=mode, zarr_format=3, use_consolidated=False)
            info = root.attrs.get(_ROOT_KEY)
        except Exception as exc:
            raise StoreError(
                f"{str(p)!r} is not a readable Zarr v3 group ({type(exc).__name__}: {exc}); "
                "is it a conjugacy trajectory store? `conjugacy store verify` checks one"
            ) from exc
        if not isinstance(info, dict) or "format_version" not in info:
            raise StoreError(
                f"{str(p)!r} is a Zarr group but not a conjugacy trajectory store "
                f"(no '{_ROOT_KEY}' attribute)"
            )
        version = info["format_version"]
        if _is_int(version) and 0 < version < min(READABLE_FORMAT_VERSIONS):
            raise StoreError(
                f"store {str(p)!r} has format version {version}: it was written by a pre-release "
                f"version of conjugacy (created with {info.get('created_with', '?')}) and cannot "
                f"be read by this conjugacy ({_package_version()}); there is no migration: record "
                "the runs again"
            )
        if not _is_int(version) or version not in READABLE_FORMAT_VERSIONS:
            raise StoreError(
                f"store {str(p)!r} has format version {version!r} (written by conjugacy "
                f"{info.get('created_with', '?')}); this conjugacy ({_package_version()}) reads "
                f"format version {', '.join(map(str, READABLE_FORMAT_VERSIONS))} only"
            )
        try:
            runs_meta = _safe.read_json(p / "runs" / "zarr.json")
        except _safe.UnsafeFile as exc:
            raise DamagedStoreError(
                f"store {str(p)!r} is damaged: its metadata runs/zarr.json {exc.problem}"
            ) from None
        if runs_meta is None:
            if repair and not (p / "runs").exists():
                # created by a writer killed between the root and its 'runs' group
                root.create_group("runs")
            else:
                raise DamagedStoreError(
                    f"store {str(p)!r} is damaged: its 'runs' group (runs/zarr.json) is missing"
                )
        return root, int(version)

    @property
    def path(self) -> Path:
        """Directory of the store."""
        return self._path

    @property
    def mode(self) -> str:
        """``"r"``, ``"a"`` or ``"w"``."""
        return self._mode

    @property
    def format_version(self) -> int:
        """Format version of the store (see the module docstring)."""
        return self._format

    @property
    def writable(self) -> bool:
        """Whether this handle may write."""
        return self._mode != "r" and not self._closed

    def close(self) -> None:
        """Release the writer lock (only the lock this handle took). Idempotent.

        In a process forked from the writer, only the inherited descriptor is closed: the lock
        stays with the writer.
        """
        if self._closed:
            return
        self._closed = True
        fd, self._lock_fd = self._lock_fd, None
        writers, self._writers = self._writers, {}
        if fd is not None:
            if os.getpid() == self._lock_pid:
                try:  # arrays of runs appended to and not finished: cut to n_complete
                    for w in writers.values():
                        with contextlib.suppress(Exception):
                            self._trim(w)
                finally:
                    _lock.release_lock(self._path, fd)
            else:
                os.close(fd)

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
        try:
            return self._root["runs"]
        except Exception as exc:
            raise DamagedStoreError(
                f"store {str(self._path)!r} is damaged: its 'runs' group is unreadable "
                f"({type(exc).__name__}: {exc})"
            ) from exc

    def _damaged(self, run: str | None, what: str) -> DamagedStoreError:
        where = f"store {str(self._path)!r}" + (f", run {run!r}" if run is not None else "")
        exc = DamagedStoreError(
            f"{where} is damaged: {what}; `conjugacy store verify {self._path}` lists all damage"
        )
        exc.problem = what
        return exc

    def _json(self, run: str, rel: str) -> dict[str, Any] | None:
        """The Zarr metadata ``runs/<run>/<rel>/zarr.json`` as a dict (read directly: much
        cheaper than opening the node through Zarr), or None if the file does not exist."""
        f = self._path / "runs" / run / rel / "zarr.json"
        try:  # bounded, never through a link at the file, never blocking on a FIFO
            meta = _safe.read_json(f)
        except _safe.UnsafeFile as exc:
            raise self._damaged(
                run, f"its metadata {f.relative_to(self._path).as_posix()} is unreadable: "
                f"it {exc.problem}"
            ) from None
        if meta is None:
            return None
        if not isinstance(meta, dict) or not isinstance(meta.get("attributes", {}), dict):
            raise self._damaged(
                run, f"its metadata {f.relative_to(self._path).as_posix()} is not a Zarr "
                "metadata object"
            )
        return meta

    def _run_attrs(self, run: str) -> dict[str, Any] | None:
        """The run's attributes, or None if there is no such (completely created) run."""
        meta = self._json(run, ".")
        if meta is None:
            return None
        if meta.get("node_type") != "group":
            raise self._damaged(run, f"runs/{run}/zarr.json does not describe a group")
        attrs = meta.get("attributes", {})
        return attrs if "n_complete" in attrs else None

    def _attrs(self, run: str) -> dict[str, Any]:
        """The run's attributes (read from its zarr.json, no Zarr node opened), the run validated
        (once per handle) against its arrays; refuses an unknown run."""
        self._check_open()
        if not isinstance(run, str):
            raise StoreError(f"run must be a string, got {run!r}")
        a = self._run_attrs(run) if _RUN_NAME.fullmatch(run) else None
        if a is None:
            names = self.runs()
            raise StoreError(
                f"unknown run {run!r} in store {str(self._path)!r}; runs: "
                + (", ".join(names) if names else "(none)")
            )
        if run not in self._valid:
            self._validate(run, a)
            self._valid.add(run)
        return a

    def _view(self, run: str) -> tuple[dict[str, Any], _RunArrays]:
        """The run's attributes (:meth:`_attrs`) and its arrays by key, opened straight from the
        root (``arrays["steps"]``): what reading needs, without opening the run's Zarr group
        (two metadata reads of :meth:`_run`, ~0.5 ms a call)."""
        return self._attrs(run), _RunArrays(self._root, run)

    def _run(self, run: str) -> Any:
        """The run's Zarr group, validated (once per handle) against its arrays."""
        self._attrs(run)
        try:
            return self._runs_group()[run]
        except Exception as exc:
            raise self._damaged(
                run, f"its group cannot be opened ({type(exc).__name__}: {exc})"
            ) from exc

    def _scalar_names(self, run: str) -> list[str]:
        d = self._path / "runs" / run / "scalars"
        if not (d / "zarr.json").is_file():
            raise self._damaged(run, "its 'scalars' group (scalars/zarr.json) is missing")
        # a folder with chunks but no zarr.json is a damaged array (validation reports it); an
        # empty one is what a writer killed while creating the array leaves: ignored
        return sorted(e.name for e in d.iterdir()
                      if e.is_dir() and ((e / "zarr.json").is_file() or (e / "c").exists()))


def _refuse_nonempty(p: Path, nonempty: bool) -> None:
    """Refuse mode ``"w"`` on a store path that is not empty."""
    if nonempty:
        raise StoreError(
            f"store path {str(p)!r} exists and is not empty; mode='w' only creates new "
            "stores (use mode='a' to append)"
        )


class _RunArrays:
    """The arrays of one run by key (``"steps"``, ``"params/w"``), each opened from the store's
    root when asked for; stands in for the run's Zarr group where only arrays are read."""

    __slots__ = ("_root", "_run")

    def __init__(self, root: Any, run: str) -> None:
        self._root = root
        self._run = run

    def __getitem__(self, key: str) -> Any:
        return self._root[f"runs/{self._run}/{key}"]
