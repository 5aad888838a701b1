"""Saving and loading :class:`conjugacy.Spectrum` as a NumPy ``.npz`` archive, validated.

The archive (written by :func:`save_spectrum`, read by :func:`load_spectrum`) is a zip file of
``.npy`` members, one per array field of the dataclass that is not None (``eigenvalues``,
``residuals``, ...), and ``meta.npy``: a 0-d unicode array holding a JSON object with ``format``
(``"conjugacy.Spectrum"``), ``format_version`` and every other field (``rank``, ``method``,
``residuals_informative``, ``settings``, ...). Both functions are generic over
``dataclasses.fields(Spectrum)``: a field whose annotation is an ``ndarray`` is a member, any other
field is a ``meta`` key; fields with a default may be absent (older files).

Loading treats the file as untrusted. A FIFO, device or socket is refused without blocking. Before
any array data is read it checks, in order: the zip structure (central directory, member sizes
against the file size, compression method, encryption), the ``meta`` member (dtype, size, JSON
object, format name and version, types of the fields), the required members, and each member's npy
header (version, dtype: numeric, never object; shape: non-negative, consistent with ``rank``;
declared data size equal to the member size; deflated members together at most 32 MiB + 8x the file
size, so a small file cannot declare gigabytes of zeros). Only then are the needed members read,
with ``allow_pickle`` never involved (the bytes are viewed with ``numpy.frombuffer``); the zip CRC
is checked. Members the dataclass does not know are never opened. Every failure raises
:class:`SpectrumFileError` (a ``ValueError``) whose message names the file, what is wrong and how
to get a good file; no ``BadZipFile``, ``EOFError``, ``KeyError``, ``JSONDecodeError``,
``MemoryError`` or ``zlib.error`` escapes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import stat
import struct
import types
import typing
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_open

__all__ = ["SpectrumFileError", "SpectrumFileNotFoundError", "load_spectrum", "save_spectrum"]

META = "meta"
_MAX_META_BYTES = 64 * 2**20  # 16 M characters of JSON: far above any real settings
_MAX_DEFLATE_RATIO = 1100  # deflate cannot expand more than ~1032:1; a larger claim is forged
_MAX_INFLATED_BYTES = 32 * 2**20  # deflated members expand to at most this + 8x the file size
_MAX_INFLATION = 8  # (Spectrum.save stores members uncompressed: a stored member is its bytes)
_FIX = "re-create it with Spectrum.save or `conjugacy spectrum ... --out FILE`"
_GIVE = "give a file written by Spectrum.save or `conjugacy spectrum`"  # for a foreign file

# Known array fields: allowed dtype kinds and shape, "rank" for the number of eigenvalues, None for
# any length. Array fields added to the dataclass later are accepted with any numeric dtype and
# shape and left to the dataclass's own validation.
_REAL, _NUMERIC = "iuf", "iufc"
_ARRAY_RULES: dict[str, tuple[str, tuple[str | None, ...]]] = {
    "eigenvalues": (_NUMERIC, ("rank",)),
    "residuals": (_REAL, ("rank",)),
    "plain_residuals": (_REAL, ("rank",)),
    "modes": (_NUMERIC, (None, "rank")),
    "singular_values": (_REAL, (None,)),
    "rayleigh_quotients": (_NUMERIC, ("rank",)),
    "data_residuals": (_REAL, ("rank",)),
}


class SpectrumFileError(ValueError):
    """A file is not a readable saved :class:`~conjugacy.Spectrum` (damaged, truncated, foreign,
    or written by a newer format version). The message names the file, the problem and the fix.

    Examples
    --------
    >>> import tempfile
    >>> from conjugacy import Spectrum
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with open(f"{tmp}/spectrum.npz", "wb") as f:
    ...         _ = f.write(b"not a zip")
    ...     try:
    ...         Spectrum.load(f"{tmp}/spectrum.npz")
    ...     except SpectrumFileError as e:  # a ValueError
    ...         print(str(e).split(": ", 1)[1])
    it is not a zip (.npz) archive (wrong signature); give a file written by Spectrum.save or
    `conjugacy spectrum`
    """


class SpectrumFileNotFoundError(SpectrumFileError, FileNotFoundError):
    """The spectrum file does not exist (both a ``ValueError`` and a ``FileNotFoundError``)."""

    def __str__(self) -> str:  # OSError would format (errno, strerror) pairs; keep the message
        return str(self.args[0]) if self.args else ""


# ----- the fields ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    required: bool  # no default value
    optional: bool  # the annotation admits None (an absent member or meta key reads as None)
    array: bool  # stored as a member (an ndarray annotation), else in meta
    kind: type | None  # int, str, bool, float, dict or list for meta fields when known


def _fields(cls: type) -> list[_Field]:
    """Classify the dataclass fields of ``cls``: arrays (members) and meta values, required or not."""
    hints = typing.get_type_hints(cls)  # Spectrum's annotations all resolve
    out = []
    for f in dataclasses.fields(cls):
        union = typing.get_origin(hints[f.name]) in (typing.Union, types.UnionType)
        members = typing.get_args(hints[f.name]) if union else (hints[f.name],)
        optional = type(None) in members
        base = [m for m in members if m is not type(None)]
        array = any(m is np.ndarray or typing.get_origin(m) is np.ndarray for m in base)
        kind = (typing.get_origin(base[0]) or base[0]) if len(base) == 1 else None
        if kind not in (int, str, bool, float, dict, list):
            kind = None
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append(_Field(f.name, required, optional, array, None if array else kind))
    return out


# ----- saving -------------------------------------------------------------------------------------
def to_json_value(value: Any, where: str) -> Any:
    """Return ``value`` as plain JSON types: NumPy scalars and arrays, tuples, paths converted.

    Raises
    ------
    TypeError
        Naming the position (``where``, e.g. ``settings['notes'][2]``) of a value that has no JSON
        form.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        return to_json_value(value.item(), where)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufU":
            raise TypeError(f"{where} is an array of dtype {value.dtype}, which has no JSON form")
        return to_json_value(value.tolist(), where)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = k.item() if isinstance(k, np.generic) else k
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise TypeError(f"{where} has key {k!r} of type {type(k).__name__}; JSON keys "
                                "must be strings or numbers")
            out[key if isinstance(key, str) else json.dumps(key)] = to_json_value(
                v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [to_json_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, numbers.Complex):
        raise TypeError(f"{where} is the complex number {value!r}, which has no JSON form; "
                        "store [real, imag]")
    raise TypeError(f"{where} is of type {type(value).__name__}, which has no JSON form; use "
                    "numbers, strings, lists or dicts")


def save_spectrum(spec: Any, path: str | os.PathLike, format_name: str, format_version: int) -> Path:
    """Write ``spec`` (a Spectrum) to ``path`` (``.npz`` appended if missing), atomically.

    Array fields that are not None become ``.npy`` members, every other field goes into the JSON
    ``meta`` member after :func:`to_json_value` (NumPy scalars in ``settings`` are fine). The file
    is written to a temporary name, fsynced and renamed, so an interruption never leaves a partial
    file. Returns the path written.

    Raises
    ------
    TypeError
        A meta field (e.g. a value in ``settings``) has no JSON form; the message names it.
    ValueError
        ``rank`` differs from the number of eigenvalues (such a file could not be loaded).
    OSError
        The file cannot be written.
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    n_eig = int(np.shape(spec.eigenvalues)[0]) if np.ndim(spec.eigenvalues) else -1
    if isinstance(spec.rank, bool) or not isinstance(spec.rank, numbers.Integral) or (
            int(spec.rank) != n_eig):
        raise ValueError(f"cannot save: rank={spec.rank!r} but the spectrum has {n_eig} "
                         "eigenvalues; rank must equal their number")
    meta: dict[str, Any] = {"format": format_name, "format_version": int(format_version)}
    arrays: dict[str, np.ndarray] = {}
    for f in _fields(type(spec)):
        value = getattr(spec, f.name)
        if f.array:
            if value is not None:
                arrays[f.name] = np.asarray(value)
        else:
            meta[f.name] = to_json_value(value, f.name)
    arrays[META] = np.array(json.dumps(meta))
    if path.is_dir():  # else the error would name the temporary file
        raise IsADirectoryError(f"cannot save the spectrum to {str(path)!r}: it is a directory")
    with atomic_open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


# ----- loading ------------------------------------------------------------------------------------
def load_spectrum(cls: type, path: str | os.PathLike, format_name: str, format_version: int,
                  max_eigenvalues: tuple[int, str] | None = None) -> Any:
    """Read a spectrum written by :func:`save_spectrum`, validating everything first.

    Parameters
    ----------
    cls : the Spectrum dataclass
    path : str or path-like
    format_name, format_version : the format this code writes; versions 1..format_version are read.
    max_eigenvalues : (int, str), optional
        ``(limit, why)``: a file holding more eigenvalues than ``limit`` is refused, from its
        headers, before any array is read; ``why`` (e.g. what the caller does with them and the
        fix) ends the message.

    Raises
    ------
    SpectrumFileNotFoundError
        ``path`` does not exist.
    SpectrumFileError
        Anything else wrong with the file (see the module docstring); the message names the file.
    """
    path = Path(path)
    shown = repr(str(path))
    if not path.exists():
        raise SpectrumFileNotFoundError(f"path {shown}: no such spectrum file")
    if path.is_dir():
        raise SpectrumFileError(f"path {shown} is a folder, not a saved Spectrum (.npz) file")

    def fail(problem: str, fix: str = _FIX) -> SpectrumFileError:
        return SpectrumFileError(f"{shown} is not a saved Spectrum that can be read: {problem}; {fix}")

    def too_many(n_eig: int) -> SpectrumFileError:
        limit, why = max_eigenvalues or (0, "")
        return SpectrumFileError(f"{shown} holds {n_eig} eigenvalues, more than the {limit} {why}")

    try:
        # non-blocking: a FIFO (or a device) is refused below instead of blocking the open
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise fail("it is not a regular file (a FIFO, device or socket); refused, not read",
                       _GIVE)
        size = st.st_size
        with os.fdopen(fd, "rb") as raw:
            head = raw.read(4)
            if size == 0:
                raise fail("the file is empty")
            if head == b"\x93NUM":
                raise fail("it is a single-array .npy file, not a Spectrum archive (.npz)", _GIVE)
            if head not in (b"PK\x03\x04", b"PK\x05\x06"):  # a member first, or empty
                raise fail("it is not a zip (.npz) archive (wrong signature)", _GIVE)
            raw.seek(0)
            with zipfile.ZipFile(raw) as zf:
                limit = None if max_eigenvalues is None else (max_eigenvalues[0], too_many)
                return _load(cls, zf, size, fail, format_name, format_version, limit)
    except SpectrumFileError:
        raise
    except PermissionError as exc:
        raise SpectrumFileError(f"cannot read {shown}: permission denied ({exc.strerror})") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, struct.error,
            OverflowError, NotImplementedError, RuntimeError, UnicodeError, KeyError, IndexError,
            OSError, ValueError, TypeError, MemoryError, RecursionError) as exc:
        # The checks in _load leave only low-level damage of the zip structure for this net.
        raise fail(f"the file is truncated or damaged ({type(exc).__name__}: {exc})") from None


def _load(cls, zf: zipfile.ZipFile, size: int, fail, format_name: str, format_version: int,
          limit: tuple[int, Any] | None = None):
    # the last of duplicate names wins, as in zipfile
    infos = {info.filename: info for info in zf.infolist()}
    if f"{META}.npy" not in infos:
        names = ", ".join(sorted(n.removesuffix(".npy") for n in infos)[:10]) or "no arrays"
        raise fail(f"it is an .npz file but not a saved Spectrum (no '{META}' member; it holds "
                   f"{names})", "load it with numpy.load, or " + _GIVE)
    check_member_info(infos[f"{META}.npy"], size, fail)
    meta = _read_meta(zf, infos[f"{META}.npy"], fail)
    if meta.get("format") != format_name:
        raise fail(f"its meta names format {meta.get('format')!r}, not {format_name!r}", _GIVE)
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise fail(f"its meta has format_version {version!r}; expected an integer >= 1")
    if version > format_version:
        raise fail(f"it was written in Spectrum format version {version}; this conjugacy reads "
                   f"versions up to {format_version}", "upgrade conjugacy to read it")

    kwargs: dict[str, Any] = {}
    fields = _fields(cls)
    for f in fields:
        if f.array:
            continue
        if f.name not in meta:
            if f.required and not f.optional:
                raise fail(f"its meta lacks the required field {f.name!r}")
            if f.required:
                kwargs[f.name] = None
            continue
        value = meta[f.name]
        if not ((value is None and f.optional) or f.kind is None or _is_kind(value, f.kind)):
            raise fail(f"its meta field {f.name!r} is {value!r} ({type(value).__name__}); "
                       f"expected {f.kind.__name__}")
        kwargs[f.name] = value
    rank = kwargs.get("rank")
    if rank is not None and (not isinstance(rank, int) or isinstance(rank, bool) or rank < 0):
        raise fail(f"its meta field 'rank' is {rank!r}; expected an integer >= 0")

    # Headers of every needed member first, then the data.
    headers = {}
    for f in fields:
        if not f.array:
            continue
        info = infos.get(f"{f.name}.npy")
        if info is None:
            if f.required and not f.optional:
                raise fail(f"the required array {f.name!r} is missing")
            if f.required:
                kwargs[f.name] = None
            continue
        check_member_info(info, size, fail)
        headers[f.name] = (info, *_read_header(zf, info, f.name, fail))
    if "eigenvalues" in headers:
        n_eig = headers["eigenvalues"][2]
        n_eig = n_eig[0] if len(n_eig) == 1 else None
        if rank is None:
            rank = n_eig
        elif n_eig is not None and n_eig != rank:
            raise fail(f"its meta says rank {rank} but it holds {n_eig} eigenvalues")
    for name, (_, _, shape, _, dtype) in headers.items():
        _check_array(name, shape, dtype, rank, fail)
    if limit is not None and rank is not None and rank > limit[0]:
        raise limit[1](rank)  # before any array is read
    # What deflated members may expand to, all together: a stored member's data are its bytes
    # in the file, but a deflated one can claim ~1,000x its stored size (a bomb of zeros).
    inflated = sum(info.file_size for info, *_ in headers.values()
                   if info.compress_type == zipfile.ZIP_DEFLATED)
    if inflated > _MAX_INFLATED_BYTES + _MAX_INFLATION * size:
        raise fail(f"its compressed members declare {inflated} bytes from a {size}-byte file "
                   f"(more than {_MAX_INFLATED_BYTES} bytes + {_MAX_INFLATION}x the file); "
                   "refused before reading", "re-save it uncompressed with Spectrum.save")
    for name, (info, offset, shape, fortran, dtype) in headers.items():
        kwargs[name] = read_member_data(zf, info, offset, shape, fortran, dtype)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise fail(f"its contents are inconsistent ({exc})") from None


def _is_kind(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def check_member_info(info: zipfile.ZipInfo, size: int, fail: Any) -> None:
    """Refuse an encrypted member, an unknown compression method, a member extending past the end
    of the ``size``-byte file, or a declared size its stored bytes cannot hold (no data is read)."""
    name = info.filename
    if info.flag_bits & 0x1:
        raise fail(f"member {name!r} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise fail(f"member {name!r} uses zip compression method {info.compress_type}; "
                   "only stored or deflated members are read")
    if info.header_offset < 0 or info.compress_size < 0 or (
            info.header_offset + info.compress_size > size):
        raise fail(f"member {name!r} extends past the end of the file ({size} bytes); the file "
                   "is truncated")
    limit = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED
                                  else _MAX_DEFLATE_RATIO) + 64
    if info.file_size > limit:
        raise fail(f"member {name!r} declares {info.file_size} bytes from {info.compress_size} "
                   "stored bytes, which is impossible; the zip directory is damaged")


def _read_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, fail):
    """Return (data offset, shape, fortran_order, dtype) of a member, reading only its header."""
    with zf.open(info) as fh:
        return read_npy_header(fh, info.file_size, name, fail)


def read_npy_header(fh: Any, total: int, name: str, fail: Any):
    """Read and validate the header of an ``.npy`` stream of ``total`` bytes (file or member).

    Returns ``(data offset, shape, fortran_order, dtype)`` once the declared data size (shape x
    itemsize, computed without overflow) is exactly ``total - offset`` bytes; never reads data.
    ``fail(problem)`` builds the exception raised for a bad header (its message names the file).
    """
    magic = fh.read(8)
    if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
        raise fail(f"array {name!r} is not in .npy format (bad magic bytes)")
    version = (magic[6], magic[7])
    if version not in ((1, 0), (2, 0)):
        raise fail(f"array {name!r} has npy format version {version[0]}.{version[1]}; "
                   "versions 1.0 and 2.0 are read")
    fh_len = fh.read(2 if version == (1, 0) else 4)
    if len(fh_len) < (2 if version == (1, 0) else 4):
        raise fail(f"array {name!r} has a truncated npy header")
    hlen = struct.unpack("<H" if version == (1, 0) else "<I", fh_len)[0]
    offset = 8 + len(fh_len) + hlen
    if hlen > 65536 or offset > total:
        raise fail(f"array {name!r} declares an npy header of {hlen} bytes, longer than the "
                   f"{total} bytes there are")
    header = fh.read(hlen)
    if len(header) < hlen:
        raise fail(f"array {name!r} has a truncated npy header")
    shape, fortran, dtype = parse_npy_header(header, name, fail)
    if dtype.hasobject:
        raise fail(f"array {name!r} holds Python objects (pickled data), which are never loaded")
    if any(d < 0 for d in shape):
        raise fail(f"array {name!r} declares a negative dimension in shape {shape}")
    nbytes = math.prod(shape) * dtype.itemsize
    if offset + nbytes != total:
        raise fail(f"array {name!r} declares shape {shape} of {dtype} ({nbytes} bytes) but "
                   f"{total - offset} data bytes follow its header")
    return offset, shape, fortran, dtype


def parse_npy_header(header: bytes, name: str, fail) -> tuple[tuple[int, ...], bool, np.dtype]:
    import ast

    try:
        text = header.decode("latin1")
        d = ast.literal_eval(text)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        raise fail(f"array {name!r} has an unparsable npy header {header[:60]!r}") from None
    if not isinstance(d, dict) or set(d) != {"descr", "shape", "fortran_order"}:
        raise fail(f"array {name!r} has an npy header without exactly the keys descr, shape, "
                   "fortran_order")
    shape, fortran, descr = d["shape"], d["fortran_order"], d["descr"]
    if not isinstance(shape, tuple) or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in shape) or len(shape) > 32:
        raise fail(f"array {name!r} has an invalid shape {shape!r} in its npy header")
    if not isinstance(fortran, bool):
        raise fail(f"array {name!r} has fortran_order {fortran!r}; expected True or False")
    if not isinstance(descr, str):
        raise fail(f"array {name!r} has dtype {descr!r}; expected a numeric dtype")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError, SyntaxError):
        raise fail(f"array {name!r} has an unknown dtype {descr!r}") from None
    return shape, fortran, dtype


def _read_meta(zf: zipfile.ZipFile, info: zipfile.ZipInfo, fail) -> dict[str, Any]:
    if info.file_size > _MAX_META_BYTES:
        raise fail(f"its meta member has {info.file_size} bytes; expected a short JSON string")
    offset, shape, fortran, dtype = _read_header(zf, info, META, fail)
    if dtype.kind != "U" or shape != () or dtype.itemsize == 0:
        raise fail(f"its meta member is a {dtype} array of shape {shape}; expected a JSON string")
    arr = read_member_data(zf, info, offset, shape, fortran, dtype)
    try:
        text = str(arr[()])
    except (ValueError, UnicodeError):
        raise fail("its meta member is not valid unicode") from None
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise fail(f"its meta member is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise fail(f"its meta JSON is a {type(meta).__name__}, not an object")
    return meta


def _check_array(name: str, shape: tuple[int, ...], dtype: np.dtype, rank: int | None, fail):
    kinds, dims = _ARRAY_RULES.get(name, (_NUMERIC, None))
    if dtype.hasobject or dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype:
        want = "real numbers" if kinds == _REAL else "numbers"
        raise fail(f"array {name!r} has dtype {dtype}; expected {want}")
    if dims is None:
        return
    if len(shape) != len(dims):
        raise fail(f"array {name!r} has shape {shape}; expected {len(dims)} dimension(s)")
    for got, want in zip(shape, dims):
        if want == "rank" and rank is not None and got != rank:
            raise fail(f"array {name!r} has shape {shape}, inconsistent with rank {rank}")


def read_member_data(zf: zipfile.ZipFile, info: zipfile.ZipInfo, offset: int, shape, fortran, dtype):
    """The array of a member whose header :func:`read_npy_header` accepted; the bytes are viewed
    (``numpy.frombuffer``, read-only, never unpickled) and the zip CRC is checked (a
    ``BadZipFile`` if it fails or the length is wrong)."""
    nbytes = math.prod(shape) * dtype.itemsize
    with zf.open(info) as fh:
        fh.read(offset)
        data = fh.read(nbytes)
        # reading to the end makes zipfile check the CRC (a BadZipFile otherwise; see the caller)
        if len(data) != nbytes or fh.read(1):
            raise zipfile.BadZipFile(f"member {info.filename!r} has the wrong length")
    arr = np.frombuffer(data, dtype=dtype)
    return arr.reshape(shape, order="F" if fortran else "C")
