"""The writer lock and the directory-level housekeeping of a writer (free space, temporaries).

One writer at a time: an exclusive ``fcntl.flock`` on ``LOCK_NAME``, held until the store is
closed; the kernel drops it when the writer dies, so there is no stale lock to take over.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import stat
import time
import uuid
from pathlib import Path
from typing import Any

from . import _safe
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
    """Whether ``path`` still names the file open as ``fd`` (a link planted there does not)."""
    try:
        st = os.lstat(path)
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
        try:  # never through a link planted as the lock file; a FIFO does not block
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | _safe._NOFOLLOW
                         | _safe._NONBLOCK, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StoreError(
                    f"the write lock {str(lock)!r} is a symbolic link; refused (nothing written "
                    "through it): remove the link"
                ) from None
            raise StoreError(
                f"cannot create the write lock {str(lock)!r}: {exc.strerror or exc}"
            ) from exc
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            what = (_safe.kind(st.st_mode) if not stat.S_ISREG(st.st_mode)
                    else f"a file with {st.st_nlink} hard links")
            raise StoreError(
                f"the write lock {str(lock)!r} is {what}; refused (nothing written to it): "
                "remove it"
            )
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
    """Remove temporaries of interrupted writes (call only while holding the writer lock), then
    refuse the store if it holds a symbolic link, FIFO, socket or device anywhere.

    The walk never follows a link (folders are opened with ``O_NOFOLLOW`` relative to their
    parent) and unlinks only regular files, by name relative to their folder's descriptor: a
    ``*.partial`` file behind a link planted in the store is never reached.
    """
    removed: list[Path] = []

    def drop(dir_fd: int, name: str, rel: str, st: os.stat_result) -> None:
        if name.endswith(".partial") or ("/" not in rel and name.startswith(_PROBE_PREFIX)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=dir_fd)
                removed.append(p / rel)

    _safe.refuse_unsafe(p, _safe.walk(p, drop))
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
    try:  # a new file (O_EXCL), never through a link
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _safe._NOFOLLOW
                     | _safe._CLOEXEC, 0o644)
        with open(fd, "wb") as f:
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
