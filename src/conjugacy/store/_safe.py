"""Hostile-input guards of the store: bounded metadata reads and a walk that never follows links.

A store is a folder users copy, share and download: its contents are untrusted. Everything here
works without following symbolic links (``O_NOFOLLOW``, ``dir_fd=``, ``lstat``) and refuses
non-regular files (FIFOs, devices, sockets) before reading them, so nothing outside the store is
read as metadata, written, truncated or deleted, and no read blocks or allocates without bound.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._bounded_json import UnsafeFile, kind  # noqa: F401  (UnsafeFile: used by the store)
from .._bounded_json import read_json as _read_json
from .._text import cut_list
from ._base import StoreError

MAX_METADATA_BYTES = 16 * 2**20  # one zarr.json; real ones are a few kB (user metadata included)
MAX_JSON_DEPTH = 64  # nesting of a zarr.json; real ones are at most ~6 deep
MAX_TREE_DEPTH = 64  # folders below the store's root; real stores are at most ~40 deep
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def read_json(path: Path, limit: int = MAX_METADATA_BYTES) -> Any | None:
    """The JSON in ``path``, read without following a symbolic link, or None if it is missing.

    Raises :class:`UnsafeFile` for a link, a non-regular file, a file over ``limit`` bytes or
    :data:`~conjugacy._bounded_json.MAX_JSON_VALUES` values, JSON nested deeper than
    :data:`MAX_JSON_DEPTH` and invalid JSON; nothing larger than ``limit`` is allocated and a FIFO
    never blocks (it is opened non-blocking and refused). The one bounded reader:
    :func:`conjugacy._bounded_json.read_json`.
    """
    return _read_json(path, limit=limit, max_depth=MAX_JSON_DEPTH)


def walk(
    root: Path,
    on_file: Callable[[int, str, str, os.stat_result], None] | None = None,
) -> list[str]:
    """Walk the store at ``root`` without following links; return the unsafe entries found.

    An unsafe entry (described as ``'<relative path>' is a symbolic link`` etc.) is a symbolic
    link, a FIFO, socket or device anywhere below ``root``, or a folder deeper than
    :data:`MAX_TREE_DEPTH`. Each folder is opened with ``O_NOFOLLOW`` relative to its parent's
    descriptor, so a link swapped in meanwhile is not descended either. ``on_file(dir_fd, name,
    relative path, lstat)`` is called for each regular file (it may unlink it with ``dir_fd``).
    """
    bad: list[str] = []
    top = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    stack: list[tuple[int, str, int]] = [(top, "", 0)]
    try:
        while stack:
            fd, rel, level = stack.pop()
            try:
                with os.scandir(fd) as it:
                    entries = list(it)
                for e in entries:
                    sub = f"{rel}{e.name}"
                    try:
                        st = os.lstat(e.name, dir_fd=fd)
                    except FileNotFoundError:
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        if level + 1 > MAX_TREE_DEPTH:
                            bad.append(f"{sub!r} is nested deeper than {MAX_TREE_DEPTH} folders")
                            continue
                        try:
                            cfd = os.open(e.name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC,
                                          dir_fd=fd)
                        except OSError as exc:
                            bad.append(f"{sub!r} cannot be opened as a folder "
                                       f"({exc.strerror or exc})")
                            continue
                        stack.append((cfd, sub + "/", level + 1))
                    elif stat.S_ISREG(st.st_mode):
                        if on_file is not None:
                            on_file(fd, e.name, sub, st)
                    elif stat.S_ISLNK(st.st_mode):
                        bad.append(f"{sub!r} is a symbolic link{_target(fd, e.name)}")
                    else:
                        bad.append(f"{sub!r} is {kind(st.st_mode)}")
            finally:
                os.close(fd)
    finally:
        for fd, _, _ in stack:
            os.close(fd)
    return bad


def _target(dir_fd: int, name: str) -> str:
    """`` to '<target>'`` of the link ``name`` in folder ``dir_fd`` (read, never followed)."""
    try:
        return f" to {os.readlink(name, dir_fd=dir_fd)!r}"
    except OSError:  # removed meanwhile
        return ""


def refuse_unsafe(root: Path, bad: list[str]) -> None:
    """Raise one StoreError naming the first unsafe entries of a store opened for writing."""
    if bad:
        raise StoreError(
            f"store {str(root)!r} holds {', '.join(cut_list(bad, 1))}: a store opened for "
            "writing may hold only folders and regular files (nothing is written, truncated or "
            "deleted through a link); remove it, or copy the store with links resolved (cp -rL)"
        )


#: Most a chunk may decode to, as a multiple of its file's size (plus :data:`COMPRESSION_SLACK`
#: bytes): recorded weights compress ~1.04-1.08x with zstd (float64 and float32 random walks),
#: a chunk of zeros ~14,000x (a 472 KB store decoded to 1.18 GB). With this bound a read
#: allocates at most ~256x the chunk bytes it reads. Data legitimately this compressible
#: (frozen or constant parameters) are read with the environment variable
#: ``CONJUGACY_MAX_COMPRESSION=0`` (no bound) or a larger ratio.
MAX_COMPRESSION = 256
COMPRESSION_SLACK = 4096
COMPRESSION_ENV = "CONJUGACY_MAX_COMPRESSION"


def max_compression() -> float:
    """The ratio in force: ``CONJUGACY_MAX_COMPRESSION`` if set (0: unbounded), else
    :data:`MAX_COMPRESSION`.

    Raises
    ------
    StoreError
        If the variable is set to something other than a number >= 0.
    """
    text = os.environ.get(COMPRESSION_ENV)
    if text is None:
        return float(MAX_COMPRESSION)
    try:
        ratio = float(text)
    except ValueError:
        ratio = -1.0
    if not ratio >= 0:  # NaN too
        raise StoreError(f"environment variable {COMPRESSION_ENV}={text!r} must be a number >= 0 "
                         f"(0: no bound on how far a chunk may decompress; default "
                         f"{MAX_COMPRESSION})")
    return ratio if ratio > 0 else math.inf


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def zstd_content_size(head: bytes) -> int | None:
    """The Frame_Content_Size in the header of the zstd frame starting ``head`` (its first 18
    bytes suffice), or None when ``head`` is not a zstd frame or its header omits the size.

    Source: RFC 8878 section 3.1.1.1 (magic ``FD2FB528`` little-endian, Frame_Header_Descriptor,
    optional Window_Descriptor and Dictionary_ID, then a 0/1/2/4/8-byte size; a 2-byte size is
    stored minus 256). numcodecs' ``Zstd.encode`` (the writer's codec) always records it.

    >>> import numcodecs
    >>> zstd_content_size(numcodecs.Zstd().encode(bytes(8000)))
    8000
    """
    if len(head) < 5 or head[:4] != _ZSTD_MAGIC:
        return None
    end = _zstd_header_size(head)
    size = (1 if (head[4] >> 5) & 1 else 0, 2, 4, 8)[head[4] >> 6]
    if size == 0 or len(head) < end:
        return None
    value = int.from_bytes(head[end - size:end], "little")
    return value + 256 if size == 2 else value


def _zstd_header_size(head: bytes) -> int:
    """The length of the zstd frame header starting ``head`` (its first 5 bytes suffice): magic,
    descriptor, optional Window_Descriptor, Dictionary_ID and Frame_Content_Size (RFC 8878
    section 3.1.1.1)."""
    desc = head[4]
    single = (desc >> 5) & 1
    return (5 + (0 if single else 1) + (0, 1, 2, 4)[desc & 3]
            + (1 if single else 0, 2, 4, 8)[desc >> 6])


def _zstd_frame_end(fd: int, head: bytes, max_blocks: int) -> int | None:
    """The offset just past the zstd frame at the start of file ``fd`` (header, blocks, optional
    content checksum; RFC 8878 sections 3.1.1 and 3.1.1.2), walking the 3-byte block headers with
    ``pread`` (never decoding); beyond the file's end when the file ends inside the frame; None
    for a reserved block type or more than ``max_blocks`` blocks. The writer's frames have one
    block per <= 128 KiB."""
    checksum = (head[4] >> 2) & 1
    pos = _zstd_header_size(head)
    for _ in range(max_blocks):
        block = os.pread(fd, 3, pos)
        if len(block) < 3:
            return pos + 3  # the file ends inside this block header
        h = int.from_bytes(block, "little")
        last, btype, bsize = h & 1, (h >> 1) & 3, h >> 3
        if btype == 3:
            return None
        pos += 3 + (1 if btype == 1 else bsize)
        if last:
            return pos + 4 * checksum
    return None


def _cut_short(fd: int, head: bytes, size: int, max_blocks: int) -> str | None:
    """Why the chunk file ``fd`` (``size`` bytes, starting with ``head``) is truncated: it ends
    before its zstd frame's header, blocks and the writer's 4-byte CRC-32C do; None if it does
    not (or is not a zstd frame at all). Never reads the checksum bytes as part of the header."""
    if head[:4] != _ZSTD_MAGIC[:min(len(head), 4)]:
        need = None
    elif size < 5 + 3 + 4:  # the header's descriptor, one block header and the CRC-32C
        need = 5 + 3 + 4
    else:
        need = _zstd_header_size(head) + 3 + 4
        if size >= need:
            end = _zstd_frame_end(fd, head, max_blocks)
            need = end + 4 if end is not None and end + 4 > size else None
    if need is None:
        return None
    return (f"chunk file is truncated: it has {size} bytes, its zstd frame and checksum need at "
            f"least {need} (an interrupted copy or a full disk?); refused, not decoded")


def _frame_problem(path: Path, chunk_bytes: int, max_bytes: int, bomb: str | None) -> str | None:
    """Why the chunk file ``path`` (at most ``max_bytes``) is not one zstd frame declaring
    exactly ``chunk_bytes`` decoded bytes followed by its CRC-32C (truncated, data after the
    frame, another size), or None. A file cut short is named as such; otherwise ``bomb`` (why
    its size alone is refused) when given. Reads 18 bytes and the block headers, never decodes;
    only when the header is wrong is the whole file read, to name an altered file (its CRC-32C,
    the writer's last 4 bytes, does not match) as such."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC)
    except OSError as exc:
        return f"chunk file cannot be opened ({exc.strerror or exc})"
    try:
        head, file_size = os.read(fd, 18), os.fstat(fd).st_size
        cut = _cut_short(fd, head, file_size, chunk_bytes // 1024 + 64)
        if cut is not None or bomb is not None:
            return cut or bomb
        size = zstd_content_size(head)
        if size == chunk_bytes:
            # numcodecs decodes every frame of the file: anything after the first frame but the
            # CRC-32C (the writer's last 4 bytes) is refused, a second frame of zeros included
            end = _zstd_frame_end(fd, head, chunk_bytes // 1024 + 64)
            if end is not None and end + 4 == file_size:
                return None
            return ("chunk file is not one zstd frame and its checksum (data after the frame: "
                    "a second frame would be decoded too; a compression bomb?); refused, not "
                    "decoded")
        import google_crc32c  # zarr's CRC-32C codec's own dependency

        data = head + os.read(fd, max_bytes)
    finally:
        os.close(fd)
    if len(data) < 4 or google_crc32c.value(data[:-4]) != int.from_bytes(data[-4:], "little"):
        return "checksum mismatch (CRC-32C): the chunk file was altered"
    what = ("is not a zstd frame with its decoded size in the header" if size is None
            else f"declares {size} decoded bytes")
    return (f"chunk file {what}, not the {chunk_bytes} bytes of a chunk of this array (the "
            f"writer's frames always record it; a compression bomb?); refused, not decoded")


def chunk_problem(path: Path, max_bytes: int, raw_bytes: int, chunk_bytes: int) -> str | None:
    """Why the chunk file ``path`` cannot be read (missing, a link, not a regular file, larger
    than ``max_bytes``, smaller than a chunk decoding to ``raw_bytes`` can be: more than
    :func:`max_compression` times its size plus :data:`COMPRESSION_SLACK`, truncated: ending
    before its zstd frame and CRC-32C do, or, given ``chunk_bytes``, a zstd frame whose header
    does not declare exactly ``chunk_bytes`` decoded bytes: see :func:`zstd_content_size`), or None
    if it is a plausible chunk file. One ``lstat``, a read of 18 bytes and of the frame's
    3-byte block headers, never a decode."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "chunk file missing (deleted?): its records would read as fill values"
    except OSError as exc:
        return f"chunk file cannot be examined ({exc.strerror or exc})"
    if not stat.S_ISREG(st.st_mode):
        return f"chunk file is {kind(st.st_mode)}, not a regular file (refused, not read)"
    if st.st_size > max_bytes:
        return (f"chunk file has {st.st_size} bytes, more than an encoded chunk of this array "
                f"can take ({max_bytes}); refused, not read")
    ratio = max_compression()
    bomb = None
    if raw_bytes > ratio * st.st_size + COMPRESSION_SLACK:
        # a file cut short is named as such, not as a bomb (_frame_problem reads its header)
        bomb = (f"chunk file has {st.st_size} bytes but decodes to {raw_bytes}, more than "
                f"{ratio:g}x (recorded weights compress ~1.1x; a compression bomb?); refused, not "
                f"read; if the data are this compressible (frozen or constant parameters), read "
                f"with the environment variable {COMPRESSION_ENV}=0")
    return _frame_problem(path, chunk_bytes, max_bytes, bomb)
