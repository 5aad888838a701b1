"""The writer lock and the directory-level housekeeping of a writer (free space, temporaries).

One writer at a time: an exclusive ``fcntl.flock`` on ``LOCK_NAME``, held until the store is
closed; the kernel drops it when the writer dies, so there is no stale lock to take over.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from ._base import _PROBE_PREFIX, LOCK_NAME, StoreError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: stores can be read, not written
    fcntl = None  # type: ignore[assignment]


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


def acquire_lock(p: Path) -> int:
    """Take the writer lock: an exclusive flock on ``p/LOCK_NAME``; return its descriptor.

    The kernel releases a flock when its holder dies, so there is no stale lock to take over: a
    lock file nobody holds a flock on (its writer died) is simply taken.
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
        data = json.dumps({"pid": os.getpid(), "host": host, "since": time.time(),
                           "lock": "flock"}).encode()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError as exc:
            release_lock(p, fd)
            raise StoreError(
                f"cannot write the lock file {str(lock)!r}: {exc.strerror or exc}"
            ) from exc
        return fd
    raise StoreError(f"could not acquire the write lock {str(lock)!r}")  # pragma: no cover


def release_lock(p: Path, fd: int) -> None:
    """Unlink the lock file if it is still the one locked as ``fd``, then drop the lock."""
    try:
        if _same_file(fd, p / LOCK_NAME):
            (p / LOCK_NAME).unlink(missing_ok=True)
    finally:
        os.close(fd)


def remove_dead_temporaries(p: Path) -> list[Path]:
    """Remove temporaries of interrupted writes (call only while holding the writer lock)."""
    removed = []
    for f in itertools.chain(p.glob(f"{_PROBE_PREFIX}*"), p.rglob("*.partial")):
        with contextlib.suppress(FileNotFoundError):
            if f.is_file():
                f.unlink()
                removed.append(f)
    return removed


def nonempty(p: Path) -> bool:
    """Whether ``p`` holds anything but a lock file and write probes (or a dead writer's
    ``zarr.json`` temporary)."""
    if not p.is_dir():
        return False
    return any(
        e.name != LOCK_NAME and not e.name.startswith(_PROBE_PREFIX)
        and not (e.name.startswith("zarr.") and e.name.endswith(".partial"))
        for e in p.iterdir()
    )


def check_space(p: Path, min_free_bytes: int) -> None:
    """Refuse a directory that cannot be written (a probe file) or has under ``min_free_bytes``
    free."""
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
