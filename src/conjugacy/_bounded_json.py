"""Bounded reads of untrusted JSON files: store metadata (``zarr.json``) and ``results.json``.

One reader for every JSON file that comes from outside (a shared store, a downloaded results
file): a FIFO, device or (where asked) a symbolic link is refused without blocking, and a file
larger than its byte limit, holding more JSON values than :data:`MAX_JSON_VALUES` or nested deeper
than its depth limit is refused in one line before anything larger than the limit is allocated.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path
from typing import Any

__all__ = ["MAX_JSON_VALUES", "UnsafeFile", "depth", "kind", "read_bytes", "read_json"]

#: JSON values (numbers, strings, arrays, objects) one file may hold: counted from its separators
#: before parsing, so that no file makes the parser allocate much more than its size (a 16 MiB
#: file of ``{},{},...`` parsed into 5.6 million dicts, ~0.4 GB). Real ``zarr.json`` files hold
#: tens of values, a paper-scale ``results.json`` ~10^5.
MAX_JSON_VALUES = 1_000_000
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


class UnsafeFile(Exception):
    """A file that is refused: its ``problem`` says why (without the file's name)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _open(path: Path, follow_links: bool) -> int | None:
    flags = os.O_RDONLY | _NONBLOCK | _CLOEXEC | (0 if follow_links else _NOFOLLOW)
    try:
        return os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        with contextlib.suppress(OSError):
            st = os.stat(path) if follow_links else os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeFile(f"is {kind(st.st_mode)}, not a regular file; refused") from None
        raise UnsafeFile(f"cannot be opened ({exc.strerror or exc})") from None


def _read_bytes(fd: int, limit: int, what: str) -> bytes:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFile(f"is {kind(st.st_mode)}, not a regular file; refused")
    if st.st_size > limit:
        raise UnsafeFile(f"has {st.st_size} bytes, over the limit of {limit} bytes for {what}; "
                         "refused")
    chunks, total = [], 0
    while True:
        b = os.read(fd, min(1 << 20, limit + 1 - total))
        if not b:
            return b"".join(chunks)
        chunks.append(b)
        total += len(b)
        if total > limit:  # grew while being read
            raise UnsafeFile(f"has more than {limit} bytes, the limit for {what}; refused")


def read_bytes(path: str | os.PathLike[str], *, limit: int, follow_links: bool = True,
               what: str = "this file") -> bytes | None:
    """The bytes of a regular file of at most ``limit`` bytes, or None if it is missing.

    A FIFO, device or folder (or, unless ``follow_links``, a symbolic link) is refused without
    blocking; nothing over ``limit`` is allocated.

    Raises
    ------
    UnsafeFile
        The problem in words (without the name).
    """
    fd = _open(Path(path), follow_links)
    if fd is None:
        return None
    try:
        return _read_bytes(fd, limit, what)
    except OSError as exc:
        raise UnsafeFile(f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def read_json(path: str | os.PathLike[str], *, limit: int, max_depth: int = 64,
              max_values: int = MAX_JSON_VALUES, follow_links: bool = False,
              what: str = "metadata") -> Any | None:
    """The JSON in ``path``, read within bounds, or None if it is missing.

    Parameters
    ----------
    path : path
        The file.
    limit : int
        Most bytes read (the file's size is checked first; a file growing meanwhile is cut off).
    max_depth : int
        Deepest nesting of arrays and objects.
    max_values : int
        Most JSON values, counted from the separators (``,``, ``[``, ``{``; commas inside
        strings count too, so the count is an upper bound) before parsing.
    follow_links : bool
        Whether a symbolic link at ``path`` is followed (a file the user named) or refused (a
        file inside a store).
    what : str
        What the file is, for the messages (``"metadata"``, ``"a results file"``).

    Raises
    ------
    UnsafeFile
        For a link (unless ``follow_links``), a non-regular file (FIFO, device, folder: never
        waited on), a file over a limit, invalid JSON; the problem in words, without the name.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.json"
    >>> _ = p.write_text(json.dumps({"x": [1, 2]}))
    >>> read_json(p, limit=1024)
    {'x': [1, 2]}
    """
    raw = read_bytes(path, limit=limit, follow_links=follow_links, what=what)
    if raw is None:
        return None
    n_values = raw.count(b",") + raw.count(b"[") + raw.count(b"{") + 1
    if n_values > max_values:
        raise UnsafeFile(f"holds up to {n_values} JSON values, over the limit of {max_values} "
                         f"for {what}; refused")
    try:
        obj = json.loads(raw)
    except RecursionError:
        raise UnsafeFile(f"is nested deeper than {max_depth} levels; refused") from None
    except (ValueError, UnicodeError) as exc:
        raise UnsafeFile(f"is not a JSON file ({type(exc).__name__}: {str(exc)[:100]})") from None
    if depth(obj, max_depth) > max_depth:
        raise UnsafeFile(f"is nested deeper than {max_depth} levels; refused")
    return obj


def depth(obj: Any, max_depth: int = 64) -> int:
    """Nesting depth of a parsed JSON value, exact up to ``max_depth + 1`` (iterative: no
    recursion limit)."""
    best, stack = 0, [(obj, 1)]
    while stack:
        x, d = stack.pop()
        if isinstance(x, dict | list):
            best = max(best, d)
            if d <= max_depth:
                stack.extend((v, d + 1) for v in (x.values() if isinstance(x, dict) else x))
    return best
