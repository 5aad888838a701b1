"""On-disk trajectory store (Zarr v3): many runs of recorded weights, read back for DMD.

A store is a directory holding one Zarr v3 group. It contains many *runs* (one training run each,
e.g. one replica); each run holds one array per recorded parameter, shaped
``(n_steps, *param_shape)`` and appended in chunks along the step axis, scalar series (loss,
accuracy, ...), the recorded training-step indices, and JSON metadata.

Layout (format version 2)
-------------------------
::

    PATH/                               Zarr v3 group (the root)
      zarr.json                         attributes {"conjugacy_store": {"format_version": 2,
                                                    "created_with": "<conjugacy version>"}}
      .conjugacy-write.lock             exists while a writer holds the store (flock-ed by it):
                                        JSON {pid, host, since, lock: "flock"}
      runs/                             group
        <run>/                          group, attributes:
                                          n_complete   int: the first n_complete steps are complete
                                          parameters   [[name, shape, dtype], ...] in feature order
                                          chunk_steps  int: chunk length along the step axis
                                          metadata     JSON object (model, optimizer, seed, ...)
                                          finished     bool: the writer closed the run normally
                                          format_version  2: every chunk is written (none elided)
          steps                         int64 (n_steps,): training-step index of each record
          params/<name>                 (n_steps, *shape), the parameter's own dtype (float32,
                                        float64, ...); chunks (chunk_steps, *shape)
          scalars/<name>                float64 (n_steps,), NaN where a value was not given

Every array is encoded ``bytes -> zstd -> crc32c``: each chunk carries a CRC-32C of its stored
bytes (the Zarr v3 ``crc32c`` codec), so a flipped bit fails the read instead of returning wrong
numbers. Every chunk is written even when it equals the fill value (Zarr's ``write_empty_chunks``),
so a chunk file that is missing below ``n_complete`` is damage (a deleted file), never zeros.

Format version 1 (conjugacy 0.1 before this change) is the same layout without the checksum codec
and without ``write_empty_chunks``: such stores (and runs without ``format_version``) stay
readable and appendable, but bit flips in them cannot be detected and a missing chunk cannot be
told from an all-fill-value chunk; :meth:`TrajectoryStore.verify` says so.

Only the first ``n_complete`` entries along the step axis of any array are valid: arrays may be
longer (a writer grows them 16 chunks at a time and cuts them to ``n_complete`` when the run is
finished or the store closed; after an interruption they stay longer), and readers must ignore
the rest. ``n_complete`` is written after
the data of a flush (each Zarr write is atomic: temp file + ``os.replace``), so a process killed at
any point leaves the flushed steps intact and the store consistent. Zarr does not ``fsync``: a
power loss (as opposed to a killed process) may lose recent writes on some file systems.

Integrity checks
----------------
* At open (``check=True``, the default) every run's attributes are validated and ``n_complete`` is
  checked against the lengths, shapes and dtypes of its arrays.
* Every read checks that each chunk below ``n_complete`` it needs exists (format-2 runs) and
  decodes (checksum); damage raises :class:`DamagedStoreError` naming the store, run, array,
  chunk and the range of records (positions) and training steps affected.
* :meth:`TrajectoryStore.verify` (``conjugacy store verify PATH``) reads every chunk below
  ``n_complete`` of every array and reports all damage instead of stopping at the first.

Reading
-------
:meth:`TrajectoryStore.read` returns ``(n_runs, n_steps, n_features)`` arrays ready for
:func:`conjugacy.koopman_spectrum`. The features of a selection are the selected parameters in
*recorded order* (the order of ``parameters``, which the recorder takes from
``model.named_parameters()``), each flattened in C order, concatenated. Unselected parameters are
never read. Any Zarr v3 reader (zarr-python, zarr.js, tensorstore) can read the store directly.

Concurrency
-----------
One writer at a time: opening with mode ``"a"`` or ``"w"`` takes an exclusive ``fcntl.flock`` on
the lock file and holds the file open until :meth:`TrajectoryStore.close`. The kernel drops the
lock when the writer dies (even by SIGKILL), so a stale lock cannot exist and no takeover is ever
needed: the next writer simply gets the lock. The pid and host in the file only serve the error
message. ``close`` unlinks the lock file only if it is still the file this handle locked. Once a
writer holds the lock every other writer is dead, so the temporary files of interrupted writes
(``*.partial``) it finds belong to dead writers and are removed. ``flock`` is local to one host:
do not share a store between machines over a network file system. Readers (mode ``"r"``) take no
lock and see only complete steps.
"""

from __future__ import annotations

import contextlib
import fnmatch
import itertools
import json
import math
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..streaming import BlockPool

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: stores can be read, not written
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "FORMAT_VERSION",
    "LOCK_NAME",
    "READABLE_FORMAT_VERSIONS",
    "Damage",
    "DamagedStoreError",
    "StoreError",
    "TrajectoryStore",
    "VerifyReport",
    "select_names",
]

FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, 2)
LOCK_NAME = ".conjugacy-write.lock"
_ROOT_KEY = "conjugacy_store"
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=,\-]*$")
_MAX_CHUNK_BYTES = 32 * 2**20
_PROBE_PREFIX = ".write-probe-"


class StoreError(OSError, ValueError):
    """A trajectory store cannot be opened, written or read as asked.

    Subclasses both :class:`OSError` (disk, permission and lock problems) and :class:`ValueError`
    (unknown runs, parameters or scalars; incompatible formats), so either ``except`` catches it.
    """

    def __str__(self) -> str:  # OSError would format (errno, strerror) pairs; keep the message
        return str(self.args[0]) if self.args else ""


class DamagedStoreError(StoreError):
    """The store's files are damaged: a chunk is missing or fails its checksum, or a run's
    attributes disagree with its arrays. The message names the store, run, array and records;
    ``problem`` holds the description without the store's name."""

    problem: str = ""


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
        return ", ".join(parts) + f": {self.problem}"


@dataclass
class VerifyReport:
    """Result of :meth:`TrajectoryStore.verify`.

    Attributes
    ----------
    path : Path
        The store.
    format_version : int
        The store's format version (1: no checksums; 2: checksums, every chunk written).
    runs : list of str
        Runs checked.
    chunks_checked : int
        Chunks below ``n_complete`` read and decoded.
    chunks_checksummed : int
        Of those, chunks protected by a CRC-32C (a bit flip in the others may go unnoticed).
    damage : list of Damage
        Everything found wrong; empty for an intact store.
    notes : list of str
        What could not be checked (format-1 runs) and leftovers that are not damage (temporary
        files of interrupted writes, half-created runs).
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


def _package_version() -> str:
    try:
        from .. import __version__

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


def _codecs() -> dict[str, Any]:
    """Encoding of every new array: zstd, then a CRC-32C of the compressed bytes (Zarr v3)."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return {"compressors": [ZstdCodec(), Crc32cCodec()], "config": {"write_empty_chunks": True}}


def _writable(arr: Any) -> Any:
    """The array with ``write_empty_chunks`` on (a runtime setting Zarr does not persist)."""
    return arr.with_config({"write_empty_chunks": True})


def _has_checksum(arr: Any) -> bool:
    from zarr.codecs import Crc32cCodec

    return any(isinstance(c, Crc32cCodec) for c in arr.metadata.codecs)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _lock_info(fd: int) -> dict[str, Any] | None:
    """The JSON in an open lock file, or None if it is empty or unreadable."""
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


class TrajectoryStore:
    """A directory of recorded weight trajectories (see the module docstring for the layout).

    Create with :meth:`open`. Use as a context manager, or call :meth:`close` (which releases the
    writer lock).
    """

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

    # ------------------------------------------------------------------ opening
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
        """
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
        if mode == "w" and cls._nonempty(p):
            raise StoreError(
                f"store path {str(p)!r} exists and is not empty; mode='w' only creates new "
                "stores (use mode='a' to append)"
            )
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create store directory {str(p)!r}: {exc}") from exc
        if not os.access(p, os.W_OK | os.X_OK):
            raise StoreError(f"store directory {str(p)!r} is not writable (permission denied)")
        fd = cls._acquire_lock(p)
        st = None
        try:
            nonempty = cls._nonempty(p)  # again, under the lock: another writer may have created
            if mode == "w" and nonempty:
                raise StoreError(
                    f"store path {str(p)!r} exists and is not empty; mode='w' only creates new "
                    "stores (use mode='a' to append)"
                )
            cls._check_space(p, min_free_bytes)
            if nonempty:
                root, version = cls._open_root(zarr, p, "r+", repair=True)
            else:
                root = zarr.create_group(
                    str(p),
                    zarr_format=3,
                    attributes={_ROOT_KEY: {"format_version": FORMAT_VERSION,
                                            "created_with": _package_version()}},
                )
                root.create_group("runs")
                version = FORMAT_VERSION
            # A conjugacy store (checked above, so nothing of a foreign folder is touched), and
            # every other writer is dead now: what it left half-written is garbage.
            cls._remove_dead_temporaries(p)
            st = cls(p, mode, root, fd, version)
            if check:
                st._check_all_runs()
        except BaseException:
            cls._release_lock(p, fd)
            raise
        return st

    @staticmethod
    def _nonempty(p: Path) -> bool:
        """Whether ``p`` holds anything but a lock file and write probes (or a dead writer's
        ``zarr.json`` temporary)."""
        if not p.is_dir():
            return False
        return any(
            e.name != LOCK_NAME and not e.name.startswith(_PROBE_PREFIX)
            and not (e.name.startswith("zarr.") and e.name.endswith(".partial"))
            for e in p.iterdir()
        )

    @staticmethod
    def _open_root(zarr: Any, p: Path, mode: str, repair: bool = False) -> tuple[Any, int]:
        if not (p / "zarr.json").is_file():
            raise StoreError(
                f"{str(p)!r} is not a conjugacy trajectory store (no zarr.json); "
                + ("give the folder a Recorder or TrajectoryStore.open(..., 'w') wrote"
                   if mode == "r" else "pass an empty or new directory to create one")
            )
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
        if not _is_int(version) or version not in READABLE_FORMAT_VERSIONS:
            raise StoreError(
                f"store {str(p)!r} has format version {version!r} (written by conjugacy "
                f"{info.get('created_with', '?')}); this conjugacy ({_package_version()}) reads "
                f"format versions {', '.join(map(str, READABLE_FORMAT_VERSIONS))} only"
            )
        if not (p / "runs" / "zarr.json").is_file():
            if repair and not (p / "runs").exists():
                # created by a writer killed between the root and its 'runs' group
                root.create_group("runs")
            else:
                raise DamagedStoreError(
                    f"store {str(p)!r} is damaged: its 'runs' group (runs/zarr.json) is missing"
                )
        return root, int(version)

    @staticmethod
    def _check_space(p: Path, min_free_bytes: int) -> None:
        probe = p / f"{_PROBE_PREFIX}{uuid.uuid4().hex}"
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
    def _acquire_lock(p: Path) -> int:
        """Take the writer lock: an exclusive flock on ``p/LOCK_NAME``; return its descriptor.

        The kernel releases a flock when its holder dies, so there is no stale lock to take over.
        A process that opened the lock file just before its holder unlinked it (``close``) would
        lock a file no longer in the directory: the inode check catches that, and it retries.
        """
        lock = p / LOCK_NAME
        host = socket.gethostname()
        if fcntl is None:  # pragma: no cover - not POSIX
            raise StoreError(
                f"cannot open {str(p)!r} for writing: the writer lock needs fcntl.flock (a POSIX "
                "system); stores can be read here (mode='r')"
            )
        for _ in range(100):
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the write lock {str(lock)!r}: {exc.strerror or exc}"
                ) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                info = _lock_info(fd) or {}
                os.close(fd)
                since = info.get("since")
                when = (
                    f" since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))}"
                    if isinstance(since, int | float) else ""
                )
                raise StoreError(
                    f"store {str(p)!r} is already open for writing by process "
                    f"{info.get('pid', '?')} on {info.get('host', '?')!r}{when} (or by a process "
                    "it forked); close it first: only one writer at a time"
                ) from None
            except OSError as exc:
                os.close(fd)
                raise StoreError(
                    f"cannot lock {str(lock)!r} ({exc.strerror or exc}): the file system does not "
                    "support flock; keep the store on a local file system"
                ) from exc
            if not _same_file(fd, lock):  # unlinked by its previous holder meanwhile
                os.close(fd)
                continue
            info = _lock_info(fd)
            if info is not None and info.get("lock") != "flock":
                # written by conjugacy <= 0.1 (O_EXCL lock files, no flock): respect a live one
                pid, lock_host = info.get("pid"), info.get("host")
                if lock_host != host or (_is_int(pid) and pid != os.getpid()
                                         and _pid_alive(pid)):
                    os.close(fd)
                    raise StoreError(
                        f"store {str(p)!r} is already open for writing by process {pid} on "
                        f"{lock_host!r} (an older conjugacy's lock file); close it first, or "
                        f"delete {str(lock)!r} if that process is gone"
                    )
            data = json.dumps({"pid": os.getpid(), "host": host, "since": time.time(),
                               "lock": "flock"}).encode()
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, data, 0)
            except OSError as exc:
                TrajectoryStore._release_lock(p, fd)
                raise StoreError(
                    f"cannot write the lock file {str(lock)!r}: {exc.strerror or exc}"
                ) from exc
            return fd
        raise StoreError(f"could not acquire the write lock {str(lock)!r}")  # pragma: no cover

    @staticmethod
    def _release_lock(p: Path, fd: int) -> None:
        """Unlink the lock file if it is still the one locked as ``fd``, then drop the lock."""
        try:
            if _same_file(fd, p / LOCK_NAME):
                (p / LOCK_NAME).unlink(missing_ok=True)
        finally:
            os.close(fd)

    @staticmethod
    def _remove_dead_temporaries(p: Path) -> list[Path]:
        """Remove temporaries of interrupted writes (call only while holding the writer lock)."""
        removed = []
        for f in itertools.chain(p.glob(f"{_PROBE_PREFIX}*"), p.rglob("*.partial")):
            with contextlib.suppress(FileNotFoundError):
                if f.is_file():
                    f.unlink()
                    removed.append(f)
        return removed

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
                    self._release_lock(self._path, fd)
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
        try:
            meta = json.loads(f.read_bytes())
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError) as exc:
            raise self._damaged(
                run, f"its metadata {f.relative_to(self._path).as_posix()} is unreadable "
                f"({type(exc).__name__}: {exc})"
            ) from exc
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

    def _run(self, run: str) -> Any:
        """The run's Zarr group, validated (once per handle) against its arrays."""
        self._check_open()
        if not isinstance(run, str):
            raise StoreError(f"run must be a string, got {run!r}")
        a = self._run_attrs(run) if _RUN_NAME.match(run) else None
        if a is None:
            names = self.runs()
            raise StoreError(
                f"unknown run {run!r} in store {str(self._path)!r}; runs: "
                + (", ".join(names) if names else "(none)")
            )
        if run not in self._valid:
            self._validate(run, a)
            self._valid.add(run)
        try:
            return self._runs_group()[run]
        except Exception as exc:
            raise self._damaged(
                run, f"its group cannot be opened ({type(exc).__name__}: {exc})"
            ) from exc

    def _validate(self, run: str, a: Mapping[str, Any]) -> None:
        """Check a run's attributes ``a`` against its arrays' metadata; raise DamagedStoreError
        naming the problem."""
        n = a.get("n_complete")
        if not _is_int(n) or n < 0:
            raise self._damaged(run, f"n_complete is {n!r}, not a non-negative integer")
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

        def array(key: str) -> tuple[tuple[int, ...], np.dtype]:
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
            if not shape or shape[0] < n:
                raise self._damaged(
                    run, f"n_complete is {n} but array {key!r} holds "
                    f"{shape[0] if shape else 0} steps"
                )
            return tuple(shape), dtype

        shape, dtype = array("steps")
        if len(shape) != 1 or dtype != np.int64:
            raise self._damaged(run, f"array 'steps' is {dtype} {shape}, not int64 1-D")
        for name, pshape, dt in decl:
            shape, dtype = array(f"params/{name}")
            if shape[1:] != tuple(pshape) or dtype != np.dtype(dt):
                raise self._damaged(
                    run, f"array 'params/{name}' is {dtype} with step shape "
                    f"{shape[1:]} but the run declares {dt} {tuple(pshape)}"
                )
        for name in self._scalar_names(run):
            shape, _ = array(f"scalars/{name}")
            if len(shape) != 1:
                raise self._damaged(run, f"array 'scalars/{name}' is not 1-D")

    def _scalar_names(self, run: str) -> list[str]:
        d = self._path / "runs" / run / "scalars"
        if not (d / "zarr.json").is_file():
            raise self._damaged(run, "its 'scalars' group (scalars/zarr.json) is missing")
        # a folder with chunks but no zarr.json is a damaged array (validation reports it); an
        # empty one is what a writer killed while creating the array leaves: ignored
        return sorted(e.name for e in d.iterdir()
                      if e.is_dir() and ((e / "zarr.json").is_file() or (e / "c").exists()))

    def _check_all_runs(self) -> None:
        problems = []
        names = self.runs()
        for r in names:
            try:
                if r not in self._valid:
                    self._validate(r, self._run_attrs(r) or {})
                    self._valid.add(r)
            except DamagedStoreError as exc:
                problems.append(str(exc))
        if problems:
            more = f" (and {len(problems) - 1} more damaged runs)" if len(problems) > 1 else ""
            raise DamagedStoreError(
                problems[0] + more + "; open with check=False to read the intact runs"
            )

    # ------------------------------------------------------------------ checked reads
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
        self, run: str, g: Any, key: str, arr: Any, start: int, stop: int, strict: bool,
        decode: bool,
    ) -> tuple[list[Damage], int, int]:
        """Damage in the chunks of ``arr`` below ``stop`` from ``start``: missing chunk files
        (``strict``: format-2 runs write every chunk) and, with ``decode``, chunks that fail to
        decode. Returns (damage, chunks checked, chunks absent but allowed)."""
        damage, checked, absent = [], 0, 0
        base = self._path / arr.path
        for ckey, rows, sel in self._chunks(arr, start, stop):
            problem = None
            if not (base / ckey).is_file():
                if strict:
                    problem = "chunk file missing (deleted?): its records would read as fill values"
                else:
                    absent += 1
            elif decode:
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
        return damage, checked, absent

    def _read(self, run: str, g: Any, key: str, sel: slice, n: int) -> np.ndarray:
        """Records ``sel`` (a slice with a positive step, within ``[0, n)``) of array ``key``,
        checking that its chunks exist (format-2 runs) and decode."""
        try:
            arr = g[key]
        except Exception as exc:
            raise self._damaged(
                run, f"array {key!r} cannot be opened ({type(exc).__name__}: {exc})"
            ) from exc
        start, stop, _ = sel.indices(n)
        if stop <= start:
            return np.asarray(arr[0:0])
        if arr.shape[0] < stop:
            raise self._damaged(run, f"n_complete is {n} but array {key!r} holds {arr.shape[0]}")
        strict = _is_int(g.attrs.get("format_version")) and g.attrs["format_version"] >= 2
        if strict:
            missing, _, _ = self._chunk_problems(run, g, key, arr, start, stop, True, False)
            if missing:
                raise self._damage_error(missing)
        try:
            return np.asarray(arr[sel])
        except MemoryError:
            raise
        except Exception as exc:
            bad, _, _ = self._chunk_problems(run, g, key, arr, start, stop, strict, True)
            if not bad:  # not reproducible chunk by chunk: report the whole range
                bad = [Damage(run, key, (start, stop), None, None,
                              f"unreadable ({type(exc).__name__}: {exc})")]
            raise self._damage_error(bad) from exc

    def _damage_error(self, damage: list[Damage]) -> DamagedStoreError:
        more = f" (and {len(damage) - 1} more damaged chunks)" if len(damage) > 1 else ""
        return DamagedStoreError(
            f"store {str(self._path)!r} is damaged: {damage[0]}{more}; "
            f"`conjugacy store verify {self._path}` lists all damage"
        )

    def verify(self) -> VerifyReport:
        """Check every chunk below ``n_complete`` of every array of every run.

        Reads and decodes each chunk (which checks its CRC-32C in format-2 arrays), checks that
        format-2 runs have every chunk file, validates each run's attributes against its arrays,
        and checks that the recorded step indices increase. Does not stop at the first problem.

        Returns
        -------
        VerifyReport
            ``ok`` is True when nothing is damaged; ``damage`` lists each damaged place (run,
            array, chunk, records, training steps); ``notes`` says what format 1 cannot check.

        Raises
        ------
        StoreError
            Only if the store is closed.
        """
        self._check_open()
        rep = VerifyReport(self._path, self._format)
        runs_dir = self._path / "runs"
        names = sorted(e.name for e in runs_dir.iterdir()
                       if e.is_dir() and _RUN_NAME.match(e.name)) if runs_dir.is_dir() else []
        unchecked, absent_total = 0, 0
        for run in names:
            try:
                a = self._run_attrs(run)
                if a is None:
                    rep.notes.append(f"run {run!r} is half-created (no n_complete): ignored; a "
                                     "writer creating it again replaces it")
                    continue
                rep.runs.append(run)
                self._validate(run, a)  # again, even if validated before: files may change
                self._valid.add(run)
                g = self._run(run)
            except DamagedStoreError as exc:
                rep.damage.append(Damage(run, None, None, None, None, exc.problem or str(exc)))
                continue
            n = int(a["n_complete"])
            strict = _is_int(a.get("format_version")) and a["format_version"] >= 2
            keys = (["steps"] + [f"params/{name}" for name, _, _ in a["parameters"]]
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
                dmg, checked, absent = self._chunk_problems(run, g, key, arr, 0, n, strict, True)
                rep.damage += dmg
                rep.chunks_checked += checked
                absent_total += absent
                if _has_checksum(arr):
                    rep.chunks_checksummed += checked
                else:
                    unchecked += checked
            if n and not any(d.run == run and d.array == "steps" for d in rep.damage):
                s = np.asarray(g["steps"][:n])
                if s[0] < 0 or np.any(np.diff(s) <= 0):
                    i = int(np.argmax(np.diff(s) <= 0)) if s[0] >= 0 else 0
                    rep.damage.append(Damage(run, "steps", (i, i + 2 if s[0] >= 0 else 1), None,
                                             None, "training-step indices do not increase"))
        if unchecked:
            rep.notes.append(
                f"{unchecked} chunks have no checksum (written in format 1): a flipped bit in "
                "them cannot be detected"
            )
        if absent_total:
            rep.notes.append(
                f"{absent_total} chunks below n_complete have no file in format-1 runs: format 1 "
                "did not write chunks equal to the fill value (0 or NaN), so these read as fill "
                "values and a deleted chunk cannot be told from one never written"
            )
        temps = list(self._path.rglob("*.partial"))
        if temps:
            rep.notes.append(
                f"{len(temps)} temporary files of interrupted writes (*.partial): not data; the "
                "next writer removes them"
            )
        return rep

    # ------------------------------------------------------------------ queries
    def runs(self) -> list[str]:
        """Names of the runs in the store, sorted."""
        self._check_open()
        d = self._path / "runs"
        if not (d / "zarr.json").is_file():
            raise self._damaged(None, "its 'runs' group (runs/zarr.json) is missing")
        return sorted(e.name for e in d.iterdir() if _RUN_NAME.match(e.name) and e.is_dir()
                      and self._run_attrs(e.name) is not None)

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
        first = int(self._read(run, g, "steps", slice(0, 1), n)[0]) if n else None
        last = int(self._read(run, g, "steps", slice(n - 1, n), n)[0]) if n else None
        return {
            "name": run,
            "n_complete": n,
            "chunk_steps": int(a["chunk_steps"]),
            "finished": bool(a.get("finished", False)),
            "parameters": params,
            "n_features": int(sum(v["size"] for v in params.values())),
            "scalars": self._scalar_names(run),
            "first_step": first,
            "last_step": last,
            "metadata": dict(a.get("metadata", {})),
        }

    def parameters(self, run: str) -> list[str]:
        """Recorded parameter names of ``run`` in feature order."""
        return [name for name, _, _ in self._run(run).attrs["parameters"]]

    def steps(self, run: str) -> np.ndarray:
        """Training-step index of each complete record of ``run``, int64 ``(n_complete,)``."""
        g = self._run(run)
        n = int(g.attrs["n_complete"])
        return np.asarray(self._read(run, g, "steps", slice(0, n), n), dtype=np.int64)

    def scalars(self, run: str, name: str) -> np.ndarray:
        """Scalar series ``name`` of ``run``, float64 ``(n_complete,)``; NaN where not recorded."""
        g = self._run(run)
        n = int(g.attrs["n_complete"])
        names = self._scalar_names(run)
        if name not in names:
            raise StoreError(
                f"run {run!r} of store {str(self._path)!r} has no scalar {name!r}; scalars: "
                + (", ".join(names) if names else "(none)")
            )
        return np.asarray(self._read(run, g, f"scalars/{name}", slice(0, n), n),
                          dtype=np.float64)

    def source(
        self, params: str | Sequence[str] | None = None, runs: str | Sequence[str] | None = None
    ) -> StoreSource:
        """The selected parameters of the selected runs as a *streaming source* for
        :func:`conjugacy.koopman_spectrum`: the spectrum then reads the store in one pass of
        feature blocks aligned with the Zarr chunks (each chunk read and checksum-checked once),
        never loading the selection whole (:mod:`conjugacy.streaming`). Runs may have different
        numbers of complete steps (ragged trajectories).

        Parameters
        ----------
        params, runs : as in :meth:`read`

        Raises
        ------
        StoreError
            Unknown runs or parameters, runs with different parameter layouts, missing chunks.
        """
        self._check_open()
        run_names = self._select_runs(runs)
        layout = None
        for r in run_names:
            a = self._run(r).attrs.asdict()
            declared = {name: (tuple(shape), dt) for name, shape, dt in a["parameters"]}
            this = [(n, declared[n]) for n in select_names(list(declared), params)]
            if layout is None:
                layout = this
            elif this != layout:
                raise StoreError(
                    f"run {r!r} has a different selected parameter layout than run "
                    f"{run_names[0]!r}: {this} vs {layout}"
                )
        assert layout is not None
        return StoreSource(self, run_names, layout)

    def _select_runs(self, runs: str | Sequence[str] | None) -> list[str]:
        if runs is None:
            names = self.runs()
            if not names:
                raise StoreError(f"store {str(self._path)!r} holds no runs")
            return names
        patterns = [runs] if isinstance(runs, str) else list(runs)
        if not patterns:
            raise StoreError("runs is an empty list; give run names or None for all runs")
        names: list[str] = []
        available = None
        for pat in patterns:
            if isinstance(pat, str) and any(c in pat for c in "*?["):
                available = self.runs() if available is None else available
                hits = [r for r in available if fnmatch.fnmatchcase(r, pat)]
                if not hits:
                    raise StoreError(
                        f"run selection {pat!r} matches no run of store {str(self._path)!r}; "
                        f"runs: {', '.join(available[:20])}{' ...' if len(available) > 20 else ''}"
                    )
                names += [r for r in hits if r not in names]
            elif pat not in names:
                names.append(pat)
        return names

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
        for i, (r, g, rng) in enumerate(zip(run_names, groups, lengths)):
            n = int(g.attrs["n_complete"])
            off = 0
            for name, (shape, _) in layout:
                size = math.prod(shape)
                key = f"params/{name}"
                if rng.step > 0:
                    block = self._read(r, g, key, slice(rng.start, rng.stop, rng.step), n)
                else:  # zarr takes positive steps only
                    idx = np.asarray(rng)
                    lo = int(idx.min())
                    block = self._read(r, g, key, slice(lo, int(idx.max()) + 1), n)[idx - lo]
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
        if (self._path / "runs" / run).exists():
            if self._run_attrs(run) is not None:
                raise StoreError(f"run {run!r} already exists in store {str(self._path)!r}")
            # half-created by a writer that was interrupted: start it again
            shutil.rmtree(self._path / "runs" / run)
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
        g.create_array("steps", shape=(0,), dtype="int64",
                       chunks=(_series_chunk(int(chunk_steps)),), **_codecs())
        pg = g.create_group("params")
        g.create_group("scalars")
        for name, shape, dt in decl:
            pg.create_array(
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
            }
        )

    def update_metadata(self, run: str, metadata: Mapping[str, Any]) -> None:
        """Merge ``metadata`` (JSON-serialisable) into the run's metadata."""
        self._check_open(write=True)
        new = _check_json(dict(metadata), "metadata")
        w = self._writers.get(run)
        if w is not None:
            meta = dict(w.group.metadata.attributes.get("metadata", {}))
            meta.update(new)
            self._write_attributes(w, {"metadata": meta})
            return
        g = self._run(run)
        meta = dict(g.attrs.get("metadata", {}))
        meta.update(new)
        g.update_attributes({"metadata": meta})

    def set_finished(self, run: str, finished: bool = True) -> None:
        """Mark ``run`` as closed normally (or not)."""
        self._check_open(write=True)
        w = self._writers.get(run)
        if w is not None:
            self._trim(w)
            self._write_attributes(w, {"finished": bool(finished)})
        else:
            self._run(run).update_attributes({"finished": bool(finished)})

    def _trim(self, w: _RunWriter) -> None:
        """Cut the arrays of ``w``'s run, grown in blocks by :meth:`append_many`, to its
        ``n_complete`` records."""
        from zarr.core.sync import sync

        try:
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
        the old or the new ``n_complete`` with all its steps intact. The first append to a run
        opens its arrays and keeps them (with the run's attributes, ``n_complete`` and last step)
        for the next ones, so later appends read no metadata; see :meth:`append_many` to write
        several runs at once.
        """
        return self.append_many({run: (steps, params, scalars)})[run]

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
        records : mapping run -> (steps, params, scalars)
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
            if not isinstance(item, tuple | list) or len(item) != 3:
                raise StoreError(
                    f"records[{run!r}] must be a tuple (steps, params, scalars), got {item!r}"
                )
            w = self._writer(run)
            jobs.append((w, *self._check_records(w, *item)))
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

    def _write_attributes(self, w: _RunWriter, attrs: dict[str, Any]) -> None:
        from zarr.core.sync import sync

        try:
            sync(w.group.update_attributes(attrs))
        except BaseException:
            self._writers.pop(w.run, None)
            raise

    def _check_records(
        self, w: _RunWriter, steps: Any, params: Any, scalars: Any
    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Validated ``(steps, params, scalars)`` of one append to ``w``'s run."""
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
        if not isinstance(params, Mapping):
            raise StoreError(f"params must be a mapping name -> array, got {type(params).__name__}")
        extra = set(params) - set(w.declared)
        missing = set(w.declared) - set(params)
        if extra or missing:
            raise StoreError(
                f"append to run {run!r} needs exactly its parameters {list(w.declared)}; "
                f"missing {sorted(missing)}, unknown {sorted(extra)}"
            )
        arrays = {}
        for name, (shape, dt) in w.declared.items():
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
        return st.astype(np.int64), arrays, svals

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


_GROWTH_CHUNKS = 16
_SERIES_CHUNK = 64


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


async def _trim(w: _RunWriter) -> None:
    """Cut every array of ``w``'s run to its ``n_complete`` records (deleting the chunk files
    wholly beyond them)."""
    import asyncio

    arrays = [*w.params.values(), *w.scalars.values(), w.steps]
    await asyncio.gather(*(a.resize((w.n, *a.shape[1:])) for a in arrays if a.shape[0] != w.n))


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


class StoreSource:
    """Selected runs x parameters of a :class:`TrajectoryStore`, streamed in feature blocks.

    ``blocks(block_bytes)`` yields ``(features, z)`` with ``z`` (n_snapshots, b) float64: for each
    parameter, ranges along its first axis that are whole Zarr chunks (so every chunk is read and
    decoded, its CRC-32C checked, exactly once), all runs' complete steps stacked in run order.
    Used by :func:`conjugacy.koopman_spectrum`; see :meth:`TrajectoryStore.source`.
    """

    def __init__(self, store: TrajectoryStore, runs: list[str], layout: list[Any]) -> None:
        self._store = store
        self.runs = runs
        self._layout = layout
        self.name = f"store {str(store.path)!r}"
        self.labels = [f"run {r!r}" for r in runs]  # named in NaN errors
        self._groups = [store._run(r) for r in runs]
        self.lengths = [int(g.attrs["n_complete"]) for g in self._groups]
        self.n_features = int(sum(math.prod(shape) for _, (shape, _) in layout))
        self.dtype = np.result_type(*[np.dtype(dt) for _, (_, dt) in layout])
        self.complex = bool(np.issubdtype(self.dtype, np.complexfloating))
        for r, g, n in zip(runs, self._groups, self.lengths):
            strict = _is_int(g.attrs.get("format_version")) and g.attrs["format_version"] >= 2
            for name, _ in layout:
                key = f"params/{name}"
                arr = g[key]
                if arr.shape[0] < n:
                    raise store._damaged(r, f"n_complete is {n} but array {key!r} holds {arr.shape[0]}")
                if strict:
                    missing, _, _ = store._chunk_problems(r, g, key, arr, 0, n, True, False)
                    if missing:
                        raise store._damage_error(missing)

    def blocks(self, block_bytes: int = 128 * 2**20):
        from concurrent.futures import ThreadPoolExecutor

        n_snap = sum(self.lengths)
        offsets = np.cumsum([0] + self.lengths)
        out_dtype = np.complex128 if self.complex else np.float64
        width_cap = max(1, block_bytes // (8 * n_snap))  # features of one yielded block
        pool = BlockPool(n_snap, min(width_cap, self.n_features), out_dtype)
        # Whole Zarr chunks along each parameter's first axis ("spans") are read, for all runs at
        # once (a thread per run: one chunk at a time waited on the disk's latency and on one
        # decompressor), the next span while this one is handed out in float64 blocks of at most
        # block_bytes.
        spans = []
        off = 0
        for name, (shape, _) in self._layout:
            rest = math.prod(shape[1:]) if len(shape) > 1 else 1
            first = shape[0] if shape else 1
            chunk_rows = self._groups[0][f"params/{name}"].chunks[1] if shape else 1
            want = max(1, block_bytes // max(1, 8 * n_snap * rest))
            rows = max(chunk_rows, (want // chunk_rows) * chunk_rows)
            spans += [(name, bool(shape), rest, a0, min(a0 + rows, first), off)
                      for a0 in range(0, first, rows)]
            off += first * rest
        with ThreadPoolExecutor(max_workers=min(8, len(self.runs)),
                                thread_name_prefix="conjugacy-store-read") as ex:

            def submit(span):
                return [ex.submit(self._read_span, r, g, n, span)
                        for r, g, n in zip(self.runs, self._groups, self.lengths)]

            pending = submit(spans[0]) if spans else []
            for i, (_, _, rest, a0, a1, off) in enumerate(spans):
                parts = [f.result() for f in pending]
                pending = submit(spans[i + 1]) if i + 1 < len(spans) else []
                width = (a1 - a0) * rest
                for s0 in range(0, width, width_cap):
                    s1 = min(s0 + width_cap, width)
                    z = pool.take(s1 - s0)
                    for part, n, lo in zip(parts, self.lengths, offsets[:-1]):
                        z[lo : lo + n] = part[:, s0:s1]
                    yield slice(off + a0 * rest + s0, off + a0 * rest + s1), z
                del parts

    def _read_span(self, run: str, group: Any, n: int, span: tuple) -> np.ndarray:
        """Steps ``0:n`` of one run's parameter over ``span`` as (n, features), stored dtype;
        unreadable chunks raise the store's damage error naming run, array and steps."""
        name, has_shape, _, a0, a1, _ = span
        key = f"params/{name}"
        arr = group[key]
        try:
            part = arr[0:n, a0:a1] if has_shape else arr[0:n]
        except MemoryError:
            raise
        except Exception as exc:
            bad, _, _ = self._store._chunk_problems(run, group, key, arr, 0, n, True, True)
            if not bad:
                bad = [Damage(run, key, (0, n), None, None,
                              f"unreadable ({type(exc).__name__}: {exc})")]
            raise self._store._damage_error(bad) from exc
        return np.asarray(part).reshape(n, -1)

    def materialize(self) -> list[np.ndarray]:
        """The selection in memory, one (n_steps_i, n_features) float64 array per run."""
        names = [n for n, _ in self._layout]
        dtype = np.complex128 if self.complex else np.float64
        return [np.asarray(self._store.read(names, runs=r)[0], dtype=dtype) for r in self.runs]
