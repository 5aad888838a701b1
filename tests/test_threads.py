"""BLAS threads (issue 19): one threadpoolctl controller reused by every ``blas_threads`` call,
built again when a shared library is loaded, thread-safe, and respecting limits set later."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from conjugacy import threads
from conjugacy.threads import blas_threads, libraries_key


def _blas() -> list[int]:
    from threadpoolctl import threadpool_info

    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


@pytest.fixture
def fresh_cache(monkeypatch):
    monkeypatch.setattr(threads, "_CONTROLLER", None)


def test_limits_set_after_the_controller_was_cached_are_seen_and_restored(fresh_cache):
    from threadpoolctl import threadpool_limits

    if not _blas():
        pytest.skip("no BLAS threadpool visible to threadpoolctl")
    with blas_threads(1) as n:  # builds and caches the controller
        assert n == 1 and set(_blas()) == {1}
    cached = threads._controller()
    with threadpool_limits(limits=1):  # the caller changes the limits after the cache
        with blas_threads(2) as n:
            assert n == 2 and set(_blas()) == {2}
        assert set(_blas()) == {1}  # restored to the caller's limit, not the cached one
        with threadpool_limits(limits=2):
            with blas_threads(1):
                assert set(_blas()) == {1}
            assert set(_blas()) == {2}
        assert set(_blas()) == {1}
    assert threads._controller() is cached  # no library loaded meanwhile: the same controller


def test_the_controller_is_built_once_per_set_of_loaded_libraries(fresh_cache, monkeypatch):
    key = [100]
    monkeypatch.setattr(threads, "libraries_key", lambda: key[0])
    first = threads._controller()
    assert threads._controller() is first
    key[0] = 101  # a shared library was loaded (e.g. import torch brings its OpenMP)
    second = threads._controller()
    assert second is not first and threads._controller() is second


def test_one_controller_when_threads_ask_for_it_at_once(fresh_cache, monkeypatch):
    import threadpoolctl

    built = []

    class Slow(threadpoolctl.ThreadpoolController):
        def __init__(self) -> None:
            time.sleep(0.05)  # a wide window for a second thread to build its own
            built.append(self)
            super().__init__()

    monkeypatch.setattr(threadpoolctl, "ThreadpoolController", Slow)
    got: list[object] = []
    workers = [threading.Thread(target=lambda: got.append(threads._controller()))
               for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(built) == 1 and len(got) == 8 and all(g is built[0] for g in got)


def test_libraries_key_changes_when_a_shared_library_is_loaded():
    import importlib

    candidates = [m for m in ("_sqlite3", "_lzma", "_bz2", "_curses", "_dbm", "_tkinter")
                  if m not in sys.modules]
    for name in candidates:
        before = libraries_key()
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        assert libraries_key() != before
        return
    pytest.skip("every candidate extension module is already loaded or missing")


def test_auto_never_raises_a_limit_already_in_force(monkeypatch):
    """A session's or OMP_NUM_THREADS's one thread: 'auto' on an idle machine (2 free cores)
    took 2, so an experiment's fits depended on the load to the last bit (FCN's eigenvalues
    differed by 5e-12 between two runs of one seed). An explicit count still sets it."""
    from threadpoolctl import threadpool_limits

    if not _blas():
        pytest.skip("no BLAS threadpool visible to threadpoolctl")
    monkeypatch.setattr(threads, "auto_threads", lambda load=None: 2)
    with threadpool_limits(limits=1):
        with blas_threads("auto") as n:
            assert n == 1 and set(_blas()) == {1}
        with blas_threads(2) as n:
            assert n == 2 and set(_blas()) == {2}
    with threadpool_limits(limits=2), blas_threads("auto") as n:
        assert n == 2
