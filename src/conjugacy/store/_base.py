"""What every part of the store shares: format constants, errors, run names, selections."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from typing import Any

FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (2,)
LOCK_NAME = ".conjugacy-write.lock"
_ROOT_KEY = "conjugacy_store"
#: A run name. ``\A...\Z`` (and ``fullmatch`` at every use): ``^...$`` let "a\n" through, as
#: ``$`` also matches before a final newline.
_RUN_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.+=,\-]*\Z")
_PROBE_PREFIX = ".write-probe-"


class StoreError(OSError, ValueError):
    """A trajectory store cannot be opened, written or read as asked.

    Subclasses both :class:`OSError` (disk, permission and lock problems) and :class:`ValueError`
    (unknown runs, parameters or scalars; incompatible formats), so either ``except`` catches it.

    Examples
    --------
    >>> from conjugacy.store import select_names
    >>> try:
    ...     select_names(["fc.weight", "fc.bias"], "conv*")
    ... except ValueError as e:  # a StoreError
    ...     print(type(e).__name__, e)
    StoreError parameter selection 'conv*' matches nothing; available parameters: fc.weight, fc.bias
    """

    def __str__(self) -> str:  # OSError would format (errno, strerror) pairs; keep the message
        return str(self.args[0]) if self.args else ""


class DamagedStoreError(StoreError):
    """The store's files are damaged: a chunk is missing or fails its checksum, or a run's
    attributes disagree with its arrays. The message names the store, run, array and records;
    ``problem`` holds the description without the store's name.

    Examples
    --------
    Reading a store whose only chunk of ``w`` was deleted:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from conjugacy.store import TrajectoryStore
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with TrajectoryStore.open(f"{tmp}/runs.zarr", "w") as store:
    ...         store.create_run("seed0", {"w": ((3,), "float32")})
    ...         _ = store.append("seed0", [0, 1], {"w": np.ones((2, 3), "float32")})
    ...     os.remove(f"{tmp}/runs.zarr/runs/seed0/params/w/c/0/0")
    ...     with TrajectoryStore.open(f"{tmp}/runs.zarr", "r") as store:
    ...         try:
    ...             store.read()
    ...         except DamagedStoreError as e:
    ...             print(e)
    store '...runs.zarr' is damaged: run 'seed0', array 'params/w', chunk c/0/0, records 0..1
    (training steps 0..1): chunk file missing (deleted?): its records would read as fill values;
    `conjugacy store verify ...runs.zarr` lists all damage
    """

    problem: str = ""


def _package_version() -> str:
    try:
        from .. import __version__

        return str(__version__)
    except Exception:  # pragma: no cover - partial installs
        return "unknown"


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def select_names(available: Sequence[str], patterns: str | Iterable[str] | None) -> list[str]:
    """Names from ``available`` matching any of ``patterns`` (exact names or fnmatch globs).

    A pattern equal to an available name selects that name only, literally: ``"a[0].weight"``
    (a parameter of a ``ModuleList``) is that parameter, not the glob matching ``a0.weight``.
    Any other pattern is an fnmatch glob (``"blocks.*"``, ``"fc[12].weight"``).

    Parameters
    ----------
    available : sequence of str
        Candidate names, in the order the result keeps.
    patterns : str, iterable of str or None
        ``None`` or ``"*"`` selects everything. Each pattern must match at least one name.

    Returns
    -------
    list of str
        The matching names in the order of ``available`` (not of ``patterns``).

    Raises
    ------
    StoreError
        If a pattern matches nothing; the message lists the available names.

    Examples
    --------
    >>> names = ["fc1.weight", "fc1.bias", "fc2.weight", "a[0].weight"]
    >>> select_names(names, "*.weight")
    ['fc1.weight', 'fc2.weight', 'a[0].weight']
    >>> select_names(names, ["fc2.weight", "fc1.bias"])  # in the order of ``names``
    ['fc1.bias', 'fc2.weight']
    >>> select_names(names, "a[0].weight")  # an exact name, not a glob
    ['a[0].weight']
    """
    available = list(available)
    if patterns is None:
        return available
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    if not patterns:
        raise StoreError("params is an empty list; give at least one name or glob, or None")
    for p in patterns:
        if not isinstance(p, str):
            raise StoreError(f"params must be names or glob strings, got {p!r}")
    chosen = set()
    for p in patterns:
        hits = ([p] if p in available
                else [n for n in available if fnmatch.fnmatchcase(n, p)])
        if not hits:
            raise StoreError(
                f"parameter selection {p!r} matches nothing; available parameters: "
                + ", ".join(available)
            )
        chosen.update(hits)
    return [n for n in available if n in chosen]
