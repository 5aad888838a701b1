"""Trajectories larger than memory: one streamed pass over feature blocks.

Everything the Gram path of :func:`conjugacy.koopman_spectrum` needs is a sum over features: the
snapshot Gram ``G = Z Z^*`` (Z stacks every snapshot of every trajectory as a row), and from it the
delay Grams, the PCA projections and the ResDMD residuals (SPEC section 8). A *feature-block source*
hands the data over in blocks of columns (all snapshots, a slice of features), so ``G`` is
accumulated in **one pass** with memory ``O(n_snapshots^2 + one block)`` whatever the number of
features, each block cast to float64 on its own (a float32 file is never copied whole) into buffers
that are reused from block to block (a fresh 128 MiB array per block cost more in page faults than
its arithmetic). NaN/Inf are caught from the Gram's diagonal (a non-finite value makes its
snapshot's squared norm non-finite) and only then located by a second pass. Modes, when asked for,
take one more pass.

Sources:

* :class:`ArraySource` -- NumPy arrays and memory-mapped ``.npy`` files (3-D, or lists of 2-D);
* :class:`DaskSource` -- ``dask.array`` inputs (e.g. ``dask.array.from_zarr`` on a store): the Gram
  is a blockwise tree reduction on whatever scheduler the user's client points to;
* a :class:`conjugacy.TrajectoryStore` selection (``store.source(params, runs)``) reads Zarr chunks
  in storage order.

The torch backend (``device="cuda"`` or torch tensors) computes the block products on a torch
device in float64; the small eigenproblems stay on the host. The numerics of DMD stay in
:mod:`conjugacy.dmd`: a source only changes how ``G`` and the products with the data are formed.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ._checks import check_ndim, is_numeric
from .threads import one_core_for_reading

#: default size of one feature block, all snapshots together (bytes, float64)
BLOCK_BYTES = 128 * 2**20


def _check_block(
    z: np.ndarray, name: str, offsets: np.ndarray, features: slice, labels: Any = None
) -> None:
    if not np.isfinite(z).all():
        row, col = (int(v) for v in np.argwhere(~np.isfinite(z))[0])
        traj = int(np.searchsorted(offsets, row, side="right") - 1)
        where = f"{name}[{traj}]" if labels is None else f"{name} ({labels[traj]})"
        kind = "NaN" if np.isnan(z[row, col]) else "Inf"
        raise ValueError(
            f"{where} holds {kind} at step {row - offsets[traj]}, "
            f"feature {features.start + col}; clean or drop that trajectory"
        )


class BlockPool:
    """Rotating float64 (or complex128) buffers for the blocks of a source.

    A block handed out may still be in use while the next one is produced: the consumer holds
    one while :func:`_prefetched`'s thread fills the next. Three buffers therefore suffice (one
    spare), and reusing them avoids faulting in fresh memory for every block (measured: a fresh
    128 MiB block took 0.4 s to fill, a reused one 0.02 s).
    """

    COUNT = 3

    def __init__(self, n_rows: int, max_width: int, dtype: Any) -> None:
        self.n_rows, self.dtype = n_rows, np.dtype(dtype)
        self._flat = [np.empty(n_rows * max_width, dtype=self.dtype) for _ in range(self.COUNT)]
        self._next = 0

    def take(self, width: int) -> np.ndarray:
        """The next buffer as a C-contiguous (n_rows, width) array (contents undefined)."""
        flat = self._flat[self._next]
        self._next = (self._next + 1) % self.COUNT
        return flat[: self.n_rows * width].reshape(self.n_rows, width)


def _width(n_snapshots: int, n_features: int, block_bytes: int) -> int:
    # at most block_bytes, and at most 1/64 of the data (but >= 256 KiB), so that the blocks (the
    # BlockPool's three float64 buffers) stay a small fraction of what is streamed whatever its size
    total = 8 * n_snapshots * n_features
    block_bytes = min(block_bytes, max(2**18, total // 64))
    return max(1, min(n_features, block_bytes // max(1, 8 * n_snapshots)))


class ArraySource:
    """A NumPy array (n_trajectories, n_steps, n_features), possibly memory-mapped, or a list of
    (n_steps_i, n_features) arrays, read in feature blocks (each block cast to float64 alone).

    Raises ``TypeError``/``ValueError`` naming ``name`` for non-numeric data, wrong dimensions or
    mismatched features; NaN/Inf are found while streaming (:func:`streamed_gram`).
    """

    def __init__(self, trajectories: Any, name: str = "trajectories") -> None:
        self.name = name
        if isinstance(trajectories, (list, tuple)):
            items = list(trajectories)
            if not items:
                raise ValueError(f"{name} is empty; at least one trajectory is required")
            for i, a in enumerate(items):
                if not isinstance(a, np.ndarray):
                    raise TypeError(f"{name}[{i}] must be a NumPy array, got {type(a).__name__}")
                check_ndim(a, f"{name}[{i}]", (2,), "each trajectory must be (n_steps, n_features)")
        else:
            arr = trajectories
            check_ndim(arr, name, (2, 3), "pass (n_trajectories, n_steps, n_features)")
            items = [arr] if arr.ndim == 2 else [arr[i] for i in range(arr.shape[0])]
        for i, a in enumerate(items):
            if not is_numeric(a.dtype):
                raise TypeError(f"{name} must hold numbers, got dtype {a.dtype}")
            if a.shape[1] != items[0].shape[1]:
                raise ValueError(
                    f"{name}[{i}] has {a.shape[1]} features but {name}[0] has "
                    f"{items[0].shape[1]}; all trajectories must have the same number of features"
                )
        if not items[0].shape[1]:
            raise ValueError(f"{name} has zero features (n_features == 0)")
        self._items = items
        self._files = [_file_position(a) for a in items]
        self.lengths = [int(a.shape[0]) for a in items]
        self.n_features = int(items[0].shape[1])
        self.dtype = np.result_type(*[a.dtype for a in items])
        self.complex = bool(np.iscomplexobj(np.empty(0, self.dtype)))

    def blocks(self, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[slice, np.ndarray]]:
        n_snap = sum(self.lengths)
        width = _width(n_snap, self.n_features, block_bytes)
        offsets = np.cumsum([0] + self.lengths)
        dtype = np.complex128 if self.complex else np.float64
        readers = [_RowReader(f, a) if f else None for f, a in zip(self._files, self._items)]
        pool = BlockPool(n_snap, width, dtype)
        spans = [slice(f0, min(f0 + width, self.n_features))
                 for f0 in range(0, self.n_features, width)]
        try:
            for i, features in enumerate(spans):
                for r in filter(None, readers):  # this block (the first time) and the next
                    for ahead in spans[:2] if i == 0 else spans[i + 1 : i + 2]:
                        r.advise(ahead)
                z = pool.take(features.stop - features.start)
                for a, r, lo, hi in zip(self._items, readers, offsets[:-1], offsets[1:]):
                    # a file: one pread per row, then cast; else one block of one trajectory
                    z[lo:hi] = r.read(features) if r is not None else a[:, features]
                yield features, z
        finally:
            for r in filter(None, readers):
                r.close()


class DaskSource:
    """A ``dask.array`` (n_trajectories, n_steps, n_features): the Gram is computed by dask as a
    blockwise tree reduction over feature chunks, on the scheduler in use."""

    def __init__(self, arr: Any, name: str = "trajectories") -> None:
        check_ndim(arr, name, (3,), "pass a dask array (n_trajectories, n_steps, n_features)")
        if not is_numeric(arr.dtype):
            raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
        self.name = name
        self._arr = arr
        self.lengths = [int(arr.shape[1])] * int(arr.shape[0])
        self.n_features = int(arr.shape[2])
        self.dtype = np.dtype(arr.dtype)
        self.complex = bool(np.iscomplexobj(np.empty(0, self.dtype)))

    def gram(self) -> np.ndarray:
        import dask.array as da

        n_snap = sum(self.lengths)
        z = self._arr.reshape(n_snap, self.n_features)
        z = z.astype(np.complex128 if self.complex else np.float64)
        z = z.rechunk({0: -1})  # all snapshots in a block, features chunked as stored
        finite = da.isfinite(z).all()
        gram, ok = da.compute(da.dot(z.conj(), z.T), finite)
        if not ok:
            raise ValueError(f"{self.name} holds a non-finite value (NaN or Inf)")
        return np.asarray(gram)

    def blocks(self, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[slice, np.ndarray]]:
        n_snap = sum(self.lengths)
        width = _width(n_snap, self.n_features, block_bytes)
        out_dtype = np.complex128 if self.complex else np.float64
        for f0 in range(0, self.n_features, width):
            features = slice(f0, min(f0 + width, self.n_features))
            block = np.asarray(self._arr[:, :, features].compute(), dtype=out_dtype)
            yield features, block.reshape(n_snap, -1)


def _file_position(a: np.ndarray) -> tuple[str, int] | None:
    """(file name, byte offset of the first element) of a C-contiguous file-backed memmap."""
    mm = getattr(a, "_mmap", None)
    name = getattr(a, "filename", None)
    if mm is None or name is None or not a.flags.c_contiguous or a.ndim != 2:
        return None
    try:
        base = np.frombuffer(mm, dtype=np.uint8).__array_interface__["data"][0]
    except (TypeError, ValueError):
        return None
    import mmap as _mmap

    start = int(a.offset) - int(a.offset) % _mmap.ALLOCATIONGRANULARITY
    return str(name), start + (a.__array_interface__["data"][0] - base)


class _RowReader:
    """Reads a block of features of every row of a C-contiguous (n_steps, n_features) file region
    with one ``pread`` per row: exactly the requested bytes, no read-around of a memory map
    (which inflated the bytes read several times when the file did not fit in the page cache)."""

    def __init__(self, position: tuple[str, int], a: np.ndarray) -> None:
        self.fd = os.open(position[0], os.O_RDONLY)
        self.start = position[1]
        self.row_bytes = a.shape[1] * a.itemsize
        self.dtype = a.dtype
        self.n_rows = a.shape[0]
        self._raw = np.empty(0, dtype=self.dtype)  # reused: consumed before the next read
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_RANDOM)

    def advise(self, features: slice) -> None:
        """Ask the kernel to start reading ``features`` of every row now (``POSIX_FADV_WILLNEED``,
        asynchronous): the reads of the next block are in flight while this one is used. One
        ``pread`` at a time waited on the disk's latency for every row (286 MB/s on the benchmark's
        disk); with the next block advised, 960 MB/s, above a sequential read, bytes read 1.00x."""
        if not hasattr(os, "posix_fadvise"):
            return
        nbytes = (features.stop - features.start) * self.dtype.itemsize
        pos = self.start + features.start * self.dtype.itemsize
        for r in range(self.n_rows):
            os.posix_fadvise(self.fd, pos + r * self.row_bytes, nbytes,
                                   os.POSIX_FADV_WILLNEED)

    def read(self, features: slice) -> np.ndarray:
        b = features.stop - features.start
        if self._raw.size < self.n_rows * b:
            self._raw = np.empty(self.n_rows * b, dtype=self.dtype)
        raw = self._raw[: self.n_rows * b].reshape(self.n_rows, b)  # one trajectory's block
        nbytes = b * self.dtype.itemsize
        pos = self.start + features.start * self.dtype.itemsize
        for r in range(raw.shape[0]):
            row = raw[r]
            got = os.preadv(self.fd, [row], pos + r * self.row_bytes)
            if got != nbytes:
                raise OSError(f"short read from the trajectory file at byte {pos + r * self.row_bytes}")
        return raw

    def close(self) -> None:
        os.close(self.fd)


def streamed_gram(
    source: Any, *, block_bytes: int = BLOCK_BYTES, device: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Snapshot Gram ``G[s, t] = x_s^* x_t`` of all snapshots in one pass over ``source``.

    Parameters
    ----------
    source : a feature-block source (:class:`ArraySource`, :class:`DaskSource`, a store source)
    block_bytes : int
        Memory of one block of all snapshots (float64); peak memory is about
        ``8 n_snapshots^2 + 2 block_bytes``.
    device : str or None
        A torch device (``"cuda"``, ``"cpu"``) for the block products, accumulated in float64 on
        that device; None: NumPy.

    Returns
    -------
    G : ndarray (n_snapshots, n_snapshots)
    offsets : ndarray (n_trajectories + 1,), each trajectory's first row in G

    Raises
    ------
    ValueError
        A NaN or Inf in the data, naming the trajectory, step and feature.
    """
    offsets = np.cumsum([0] + list(source.lengths))
    if device is None and hasattr(source, "gram"):
        return source.gram(), offsets
    n_snap = int(offsets[-1])
    dtype = np.complex128 if source.complex else np.float64
    if device is not None:
        import torch

        acc = torch.zeros((n_snap, n_snap), dtype=torch.complex128 if source.complex
                          else torch.float64, device=device)
        product = None
    else:
        acc = np.zeros((n_snap, n_snap), dtype=dtype)
        # one product buffer for every block; NumPy's matmul (syrk for z @ z.T) releases the GIL,
        # which the read-ahead thread needs (SciPy's f2py dsyrk holds it: 3x slower overall)
        product = np.empty_like(acc)
    blocks = source.blocks(block_bytes)
    reading = contextlib.nullcontext()
    if source_nbytes(source) >= PREFETCH_BYTES:
        blocks = _prefetched(blocks)
        reading = one_core_for_reading() if device is None else reading
    # NaN/Inf/overflow are checked on the result's diagonal below (no warnings per block)
    with reading, np.errstate(over="ignore", invalid="ignore"):
        _accumulate(acc, product if device is None else None, blocks, source.complex, device)
    if device is not None:
        acc = acc.cpu().numpy()
    if not np.isfinite(np.diagonal(acc)).all():
        _raise_non_finite(source, offsets, block_bytes)
    return acc, offsets


def _accumulate(acc: Any, product: Any, blocks: Iterator[Any], complex_: bool, device: Any) -> None:
    if device is not None:
        import torch
    for _, z in blocks:
        if device is not None:
            zt = torch.from_numpy(z).to(device)
            acc += (zt.conj() if complex_ else zt) @ zt.T
            del zt
        else:
            np.matmul(z.conj() if complex_ else z, z.T, out=product)
            acc += product
        del z  # the block's buffer is reused by the source


def _raise_non_finite(source: Any, offsets: np.ndarray, block_bytes: int) -> None:
    """Locate the NaN/Inf behind a non-finite Gram diagonal (a second pass, on failure only)."""
    labels = getattr(source, "labels", None)
    for features, z in source.blocks(block_bytes):
        _check_block(z, source.name, offsets, features, labels)
    raise ValueError(
        f"{source.name}: the squared norm of a snapshot overflows float64 (values near 1e154 or "
        "larger); rescale the data"
    )


#: data at least this large are read one block ahead, in a thread, while the previous block's
#: product is computed (reads and BLAS both release the GIL): wall time ~ max(read, compute)
PREFETCH_BYTES = 256 * 2**20


def _prefetched(blocks: Iterator[Any]) -> Iterator[Any]:
    """Iterate ``blocks`` with the next item produced in a background thread (one ahead); an
    error raised by ``blocks`` is raised here, and ``blocks`` is closed when the iteration ends
    (once the item being produced is done)."""
    from concurrent.futures import ThreadPoolExecutor

    done = object()
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="conjugacy-prefetch") as ex:
            ahead = ex.submit(next, blocks, done)
            while (item := ahead.result()) is not done:
                ahead = ex.submit(next, blocks, done)
                yield item
    finally:
        close = getattr(blocks, "close", None)
        if close is not None:
            close()


class StreamedDelayOperator:
    """``X @ V`` and ``Y @ V`` of the delay matrices, one pass over the source per product
    (the form of :class:`conjugacy.observables.DelayOperator` for data that do not fit)."""

    def __init__(self, source: Any, delays: int, block_bytes: int = BLOCK_BYTES) -> None:
        self.source = source
        self.delays = delays
        self.block_bytes = block_bytes
        self.n = source.n_features
        self.pairs = [n - delays - 1 for n in source.lengths]
        self.offsets = np.cumsum([0] + self.pairs)

    def _times(self, V: np.ndarray, shift: int) -> np.ndarray:
        d1, k = self.delays + 1, V.shape[1]
        out = np.zeros((d1, self.n, k), dtype=np.result_type(V.dtype, np.float64))
        starts = np.cumsum([0] + list(self.source.lengths))
        for features, z in self.source.blocks(self.block_bytes):
            for s0, m, o in zip(starts[:-1], self.pairs, self.offsets):
                for j in range(d1):
                    rows = z[s0 + j + shift : s0 + j + shift + m]
                    out[j, features] += rows.T @ V[o : o + m]
        return out.reshape(d1 * self.n, k)

    x_times = functools.partialmethod(_times, shift=0)
    y_times = functools.partialmethod(_times, shift=1)


def source_nbytes(source: Any) -> int:
    return int(sum(source.lengths) * source.n_features * 8)


def as_source(trajectories: Any, name: str = "trajectories") -> Any | None:
    """The streaming source for ``trajectories`` when they should be streamed, else None.

    Streamed: dask arrays, memory-mapped arrays (or lists of them), sources already (anything with
    ``blocks`` and ``lengths``, e.g. ``TrajectoryStore.source``). In-memory arrays are not: their
    Gram is one BLAS product over a view of them.
    """
    if hasattr(trajectories, "blocks") and hasattr(trajectories, "lengths"):
        return trajectories
    dask_array = sys.modules.get("dask.array")
    if dask_array is not None and isinstance(trajectories, dask_array.Array):
        return DaskSource(trajectories, name)
    items: Sequence[Any]
    items = trajectories if isinstance(trajectories, (list, tuple)) else [trajectories]
    if items and all(_is_mapped(a) for a in items):
        return ArraySource(trajectories, name)
    return None


def _is_mapped(a: Any) -> bool:
    if isinstance(a, np.memmap):
        return True
    base = getattr(a, "base", None)
    while base is not None:
        if isinstance(base, (np.memmap, memoryview)) or type(base).__name__ == "mmap":
            return True
        base = getattr(base, "base", None)
    return False


# ----- the memory a streamed read may use -------------------------------------------------------
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_memory(value: Any, name: str = "max_memory") -> int:
    """Bytes from ``value``: a positive integer (bytes) or a size such as ``"1G"``, ``"1.5GiB"``,
    ``"800M"``, ``"512MB"`` (K/M/G/T are powers of 1024, with or without ``i``/``B``).

    Raises ``ValueError`` naming ``name`` for anything else.

    >>> parse_memory("1G"), parse_memory("512MiB"), parse_memory(4096)
    (1073741824, 536870912, 4096)
    """
    import re

    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0:
        return int(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kmgt]?)(?:i?b)?\s*", value, re.I) if isinstance(
        value, str) else None
    size = float(match.group(1)) * _UNITS[match.group(2).lower()] if match else 0.0
    if not size >= 1:
        raise ValueError(
            f"{name} must be a positive number of bytes or a size such as '1G' or '512M', "
            f"got {value!r}"
        )
    return int(size)


def _read_text(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def _stat_field(text: str | None, key: str) -> int | None:
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].rstrip(":") == key:
            return int(parts[1]) * (1024 if parts[-1] == "kB" else 1)
    return None


def process_rss() -> int:
    """Resident memory of this process now (bytes; ``VmRSS``), 0 where it cannot be read."""
    return _stat_field(_read_text("/proc/self/status"), "VmRSS") or 0


def _cgroup_headroom(proc_cgroup: str | None = None, root: str = "/sys/fs/cgroup"
                     ) -> tuple[int, str] | None:
    """The tightest ``limit - anonymous memory in use`` over this process's memory cgroup and
    its ancestors (cgroup v2 ``memory.max``/``anon``, v1 ``memory.limit_in_bytes``/
    ``total_rss``), with the limit's description; None without a limit."""
    text = _read_text("/proc/self/cgroup") if proc_cgroup is None else proc_cgroup
    best: tuple[int, str] | None = None
    for line in (text or "").splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2
            base, limit_file, used_key = root, "memory.max", "anon"
        elif "memory" in controllers.split(","):
            base, limit_file, used_key = f"{root}/memory", "memory.limit_in_bytes", "total_rss"
        else:
            continue
        parts = [p for p in path.split("/") if p]
        for depth in range(len(parts), -1, -1):
            folder = "/".join([base, *parts[:depth]])
            raw = (_read_text(f"{folder}/{limit_file}") or "").strip()
            if not raw.isdigit() or int(raw) >= 2**60:  # "max", absent, or v1's "unlimited"
                continue
            used = _stat_field(_read_text(f"{folder}/memory.stat"), used_key) or 0
            headroom = int(raw) - used
            if best is None or headroom < best[0]:
                best = (headroom, f"the memory cgroup's {limit_file} of {format_size(int(raw))}")
    return best


def available_memory(max_memory: Any = None) -> tuple[int, str]:
    """Bytes this process may still allocate, and what sets that figure.

    The least of: ``max_memory`` (the whole process's allowance, :func:`parse_memory`) less its
    resident memory now; the headroom under its memory cgroup's limit (v2 ``memory.max``, v1
    ``memory.limit_in_bytes``, less the anonymous memory in use there); the headroom under its
    address-space limit (``ulimit -v``, ``RLIMIT_AS``, less its virtual size ``VmSize``);
    ``MemAvailable``. Never below 0.

    >>> free, why = available_memory("64G")
    """
    options = []
    if max_memory is not None:
        cap = parse_memory(max_memory)
        options.append((cap - process_rss(), f"max_memory={format_size(cap)}"))
    options += [o for o in (_cgroup_headroom(), _address_space_headroom()) if o is not None]
    free = _stat_field(_read_text("/proc/meminfo"), "MemAvailable")
    if free is not None:
        options.append((free, "the system's available memory (MemAvailable)"))
    if not options:
        return 2**62, "no known limit"
    free, why = min(options, key=lambda o: o[0])
    return max(free, 0), why


def _address_space_headroom(limit: int | None = None, vm_size: int | None = None
                            ) -> tuple[int, str] | None:
    """``RLIMIT_AS`` (``ulimit -v``) less this process's virtual size (``VmSize``), with the
    limit's description; None without a limit (or where it cannot be read)."""
    if limit is None:
        try:
            import resource
        except ImportError:  # not on Windows
            return None
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit == resource.RLIM_INFINITY:
            return None
    if vm_size is None:
        vm_size = _stat_field(_read_text("/proc/self/status"), "VmSize") or 0
    return limit - vm_size, f"the address-space limit (ulimit -v) of {format_size(limit)}"


def format_size(nbytes: float, down: bool = False) -> str:
    """``nbytes`` for a message: GiB (2 decimals) from 1 GiB, MiB from 1 MiB, KiB from 1 KiB,
    else bytes; rounded to the nearest unit, or towards zero with ``down`` (what is left, never
    shown as more than it is).

    >>> format_size(3 * 2**30), format_size(1_000_000), format_size(1024), format_size(200)
    ('3.00 GiB', '977 KiB', '1 KiB', '200 bytes')
    >>> format_size(54_091_999), format_size(54_091_999, down=True)
    ('52 MiB', '51 MiB')
    """
    for unit, scale, digits in (("GiB", 2**30, 2), ("MiB", 2**20, 0), ("KiB", 2**10, 0)):
        if abs(nbytes) >= scale:
            value = nbytes / scale
            if down:
                value = math.floor(value * 10**digits) / 10**digits
            return f"{value:.{digits}f} {unit}"
    return f"{math.floor(nbytes) if down else round(nbytes)} bytes"


_MMAP_THRESHOLD_FIXED = False


def fix_mmap_threshold(nbytes: int = 2**20) -> bool:
    """Have glibc's ``malloc`` map every allocation of ``nbytes`` or more on its own and unmap it
    when freed (``mallopt(M_MMAP_THRESHOLD)``, once per process; True where it was applied).

    By default glibc raises that threshold to the size of the largest freed block (up to 32 MiB),
    after which the decode buffers of Zarr's codec threads (25 MB chunks) stay in per-thread
    arenas once freed: measured on a 10-run store read within 1 GiB, a peak of 1,016 MiB against
    897 MiB with the threshold fixed. Used by a store's streamed reader only when the memory it may
    use constrains it (:meth:`conjugacy.store.StoreSource.read_plan`); the setting is
    process-wide and permanent (large allocations then always fault in fresh pages).
    """
    global _MMAP_THRESHOLD_FIXED
    if _MMAP_THRESHOLD_FIXED:
        return True
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        _MMAP_THRESHOLD_FIXED = bool(libc.mallopt(-3, int(nbytes)))  # -3: M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False
    return _MMAP_THRESHOLD_FIXED
