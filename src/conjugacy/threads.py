"""BLAS threads: one setting for every heavy call, through threadpoolctl.

On a shared, loaded machine a multi-threaded BLAS oversubscribes the cores: one
``koopman_spectrum`` call took 530 s of wall time for 67 s of CPU with the default threads and
17-27 s with one thread (issue 15). ``threads="auto"`` (the default of the heavy functions) uses
the cores that the 1-minute load average (less one unit: the caller) leaves free, at least one;
an int sets the count exactly; None leaves the process's BLAS setting alone.
"""

from __future__ import annotations

import contextlib
import numbers
import os
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
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a core dependency
        yield None
        return
    with threadpool_limits(limits=count):
        yield count


@contextlib.contextmanager
def one_core_for_reading() -> Iterator[None]:
    """Inside the block, BLAS uses one thread fewer than it would (at least one), leaving a core
    to a read-ahead thread. Measured on 2 cores streaming 8 GB: 2 BLAS threads plus the reader
    took 43 s (the BLAS threads wait on each other whenever the reader takes a core), 1 BLAS
    thread plus the reader 33 s (benchmarks/bench_out_of_core.py)."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a core dependency
        yield
        return
    current = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    if not current or max(current) <= 1:
        yield
        return
    with threadpool_limits(limits=max(current) - 1, user_api="blas"):
        yield
