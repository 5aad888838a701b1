"""BLAS threads: one setting for every heavy call, through threadpoolctl.

On a shared, loaded machine a multi-threaded BLAS oversubscribes the cores: one
``koopman_spectrum`` call took 530 s of wall time for 67 s of CPU with the default threads and
17-27 s with one thread (issue 15). ``threads="auto"`` (the default of the heavy functions) uses
the cores that the 1-minute load average (less one unit: the caller) leaves free, at least one,
and never more than the BLAS limit already in force (``OMP_NUM_THREADS``, an experiment's
``threads=``: results then do not depend on the machine's load, to the last bit);
an int sets the count exactly; None leaves the process's BLAS setting alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import numbers
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any


def auto_threads(load: float | None = None) -> int:
    """Cores not busy by the 1-minute load average, at least 1 (all cores when unknown).

    One unit of the load is taken to be the caller itself: a thread that has been computing
    counts in the load average, and without this a loop of calls on an idle 2-core machine
    got one thread (0.50 s per call instead of 0.37 s with two, measured)."""
    n = os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # pragma: no cover - platforms without getloadavg
            return n
    others = max(0.0, load - 1.0)
    return max(1, min(n, int(n - others + 0.5)))


# ----- one threadpoolctl controller per set of loaded libraries -----------------------------------
# Building a ThreadpoolController scans every loaded shared library (0.7-2.4 ms measured, each
# blas_threads call); its limit() reads the libraries' thread counts when entered and restores
# them on exit, so one controller serves every call (limits set later by the caller are seen and
# restored). It only knows the libraries loaded when it was built: it is rebuilt when the number
# of loaded shared objects (or, where that cannot be counted, of imported modules) changes, e.g.
# after ``import torch`` loads another OpenMP.
_CONTROLLER_LOCK = threading.Lock()
_CONTROLLER: tuple[int, Any] | None = None  # (libraries_key(), controller)


def _count_shared_objects() -> int | None:
    """Number of shared objects loaded in the process (Linux, glibc/musl: ``dl_iterate_phdr``;
    macOS: ``_dyld_image_count``), or None where neither exists. About 0.04 ms."""
    libc = _libc()
    if libc is None:  # pragma: no cover - e.g. Windows
        return None
    if hasattr(libc, "_dyld_image_count"):  # pragma: no cover - macOS
        return int(libc._dyld_image_count())
    if not hasattr(libc, "dl_iterate_phdr"):  # pragma: no cover
        return None
    count = 0

    def one(_info: Any, _size: Any, _data: Any) -> int:
        nonlocal count
        count += 1
        return 0

    libc.dl_iterate_phdr(_PHDR_CALLBACK(one), None)
    return count


_PHDR_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t,
                                  ctypes.c_void_p)


@functools.cache
def _libc() -> Any:
    """The process's own symbols (the C library), loaded once; None where they cannot be."""
    try:
        return ctypes.CDLL(None)
    except OSError:  # pragma: no cover - e.g. Windows
        return None


def libraries_key() -> int:
    """A number that changes when a shared library is loaded: the count of loaded shared objects,
    or (where it cannot be counted) a negative count of imported modules."""
    n = _count_shared_objects()
    return n if n is not None else -len(sys.modules)


def _controller() -> Any:
    """The process's ThreadpoolController, built again only when :func:`libraries_key` changed
    since it was built (thread-safe). threadpoolctl is a core dependency."""
    global _CONTROLLER
    from threadpoolctl import ThreadpoolController

    key = libraries_key()
    with _CONTROLLER_LOCK:
        if _CONTROLLER is None or _CONTROLLER[0] != key:
            _CONTROLLER = (key, ThreadpoolController())
        return _CONTROLLER[1]


@contextlib.contextmanager
def blas_threads(threads: Any = "auto") -> Iterator[int | None]:
    """Limit BLAS/OpenMP threads inside the block (threadpoolctl); yields the count used.

    Raises
    ------
    ValueError
        ``threads`` is not "auto", None or a positive integer.
    """
    if threads is None:
        yield None
        return
    if threads == "auto":
        count = auto_threads()
    elif isinstance(threads, numbers.Integral) and not isinstance(threads, bool) and threads >= 1:
        count = int(threads)
    else:
        raise ValueError(f"threads must be 'auto', None or a positive integer, got {threads!r}")
    controller = _controller()
    if threads == "auto":  # never above a limit already set (OMP_NUM_THREADS, a session's)
        current = [p["num_threads"] for p in controller.info() if p.get("user_api") == "blas"]
        count = min([count, *current])
    with controller.limit(limits=count):
        yield count


@contextlib.contextmanager
def one_core_for_reading() -> Iterator[None]:
    """Inside the block, BLAS uses one thread fewer than it would (at least one), leaving a core
    to a read-ahead thread. Measured on 2 cores streaming 8 GB: 2 BLAS threads plus the reader
    took 43 s (the BLAS threads wait on each other whenever the reader takes a core), 1 BLAS
    thread plus the reader 33 s (benchmarks/bench_out_of_core.py)."""
    controller = _controller()
    current = [p["num_threads"] for p in controller.info() if p.get("user_api") == "blas"]
    if not current or max(current) <= 1:
        yield
        return
    with controller.limit(limits=max(current) - 1, user_api="blas"):
        yield
