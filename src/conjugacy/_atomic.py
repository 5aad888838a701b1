"""Atomic file writes: a file is either the old one or the complete new one, never half-written."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success fsync it and rename it over
    ``path`` (``os.replace`` is atomic on POSIX); on any error remove it and leave ``path`` alone.

    ``mode`` is ``"wb"`` or ``"w"`` (text, UTF-8).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write {str(path)!r}: the folder {str(path.parent)!r} does not exist "
            "(create it first)"
        )
    # A new file (O_EXCL: never an existing file, never through a link planted at the name; a
    # random part so a leftover of a killed writer with the same pid is no obstacle). The
    # rename replaces a link at ``path`` itself, never the file it points to.
    flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
             | getattr(os, "O_CLOEXEC", 0))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, flags, 0o644)
    try:
        with open(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)  # the name this call created (a link is removed, not followed)
        raise
