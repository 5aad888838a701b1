"""On-disk trajectory store (Zarr v3): many runs of recorded weights, read back for DMD.

A store is a directory holding one Zarr v3 group. It contains many *runs* (one training run each,
e.g. one replica); each run holds one array per recorded parameter, shaped
``(n_steps, *param_shape)`` and appended in chunks along the step axis, scalar series (loss,
accuracy, ...), the recorded training-step indices, and JSON metadata.

Layout (format version 2)
-------------------------
::

    PATH/                               Zarr v3 group (the root)
      zarr.json                         attributes {"conjugacy_store": {"format_version": 2,
                                                    "created_with": "<conjugacy version>"}}
      .conjugacy-write.lock             exists while a writer holds the store (flock-ed by it):
                                        JSON {pid, host, since, lock: "flock"}
      runs/                             group
        <run>/                          group, attributes:
                                          n_complete   int: the first n_complete steps are complete
                                          parameters   [[name, shape, dtype], ...] in feature order
                                          chunk_steps  int: chunk length along the step axis
                                          metadata     JSON object (model, optimizer, seed, ...)
                                          finished     bool: the writer closed the run normally
                                          format_version  2: every chunk is written (none elided)
          steps                         int64 (n_steps,): training-step index of each record
          params/<name>                 (n_steps, *shape), the parameter's own dtype (float32,
                                        float64, ...); chunks (chunk_steps, *shape)
          scalars/<name>                float64 (n_steps,), NaN where a value was not given

Every array is encoded ``bytes -> zstd -> crc32c``: each chunk carries a CRC-32C of its stored
bytes (the Zarr v3 ``crc32c`` codec), so a flipped bit fails the read instead of returning wrong
numbers. Every chunk is written even when it equals the fill value (Zarr's ``write_empty_chunks``),
so a chunk file that is missing below ``n_complete`` is damage (a deleted file), never zeros.

Format version 1 was written only by pre-release versions of conjugacy (no checksums, chunks equal
to the fill value not written); opening such a store raises one :class:`StoreError` that names
it and says so. A run of a format-2 store must carry ``format_version`` 2: one without it is
reported as damaged.

Only the first ``n_complete`` entries along the step axis of any array are valid: arrays may be
longer (a writer grows them 16 chunks at a time and cuts them to ``n_complete`` when the run is
finished or the store closed; after an interruption they stay longer), and readers must ignore
the rest. ``n_complete`` is written after
the data of a flush (each Zarr write is atomic: temp file + ``os.replace``), so a process killed at
any point leaves the flushed steps intact and the store consistent. Zarr does not ``fsync``: a
power loss (as opposed to a killed process) may lose recent writes on some file systems.

Integrity checks
----------------
* At open (``check=True``, the default) every run's attributes are validated and ``n_complete`` is
  checked against the lengths, shapes and dtypes of its arrays.
* Every read checks that each chunk below ``n_complete`` it needs exists and
  decodes (checksum); damage raises :class:`DamagedStoreError` naming the store, run, array,
  chunk and the range of records (positions) and training steps affected.
* :meth:`TrajectoryStore.verify` (``conjugacy store verify PATH``) reads every chunk below
  ``n_complete`` of every array and reports all damage instead of stopping at the first.

Reading
-------
:meth:`TrajectoryStore.read` returns ``(n_runs, n_steps, n_features)`` arrays ready for
:func:`conjugacy.koopman_spectrum`. The features of a selection are the selected parameters in
*recorded order* (the order of ``parameters``, which the recorder takes from
``model.named_parameters()``), each flattened in C order, concatenated. Unselected parameters are
never read. Any Zarr v3 reader (zarr-python, zarr.js, tensorstore) can read the store directly.

Concurrency
-----------
One writer at a time: opening with mode ``"a"`` or ``"w"`` takes an exclusive ``fcntl.flock`` on
the lock file and holds the file open until :meth:`TrajectoryStore.close`. The kernel drops the
lock when the writer dies (even by SIGKILL), so a stale lock cannot exist and no takeover is ever
needed: the next writer simply gets the lock. The pid and host in the file only serve the error
message. ``close`` unlinks the lock file only if it is still the file this handle locked. Once a
writer holds the lock every other writer is dead, so the temporary files of interrupted writes
(``*.partial``) it finds belong to dead writers and are removed (by a walk that never follows a
link; a link, FIFO, socket or device anywhere in the store makes a writer's open fail, naming
it). ``flock`` is local to one host:
do not share a store between machines over a network file system. Readers (mode ``"r"``) take no
lock and see only complete steps.

Hostile stores
--------------
A store is untrusted input (docs/store.md, "Security"): every ``zarr.json`` is read by the store
first, bounded (16 MiB, 64 levels), never through a link and never from a FIFO; chunk files are
``lstat``-ed before Zarr reads them; declared chunk shapes and ``n_complete`` are checked against
the files there are; nothing outside the store is written, truncated or deleted.

Modules
-------
``_base`` (format constants, errors, :func:`select_names`), ``_safe`` (bounded metadata
reads, the walk that never follows links), ``_lock`` (the writer lock, free
space, temporaries), ``_layout`` (open, close, the root's and runs' metadata), ``_integrity``
(validation, chunk checks, :meth:`TrajectoryStore.verify`), ``_read`` (queries, ``read``,
``source``) and ``_write`` (``create_run``, ``append_many``, ``set_finished``, ...).
:class:`TrajectoryStore` is composed of one part from each of the last four.
"""

from __future__ import annotations

from ._base import (
    FORMAT_VERSION,
    LOCK_NAME,
    READABLE_FORMAT_VERSIONS,
    DamagedStoreError,
    StoreError,
    select_names,
)
from ._base import _package_version as _package_version  # used by conjugacy.torch.recorder
from ._integrity import Damage, VerifyReport, _Integrity
from ._layout import _Layout
from ._read import StoreSource as StoreSource  # the type source() returns
from ._read import _Reading
from ._write import _Writing

__all__ = [
    "FORMAT_VERSION",
    "LOCK_NAME",
    "READABLE_FORMAT_VERSIONS",
    "Damage",
    "DamagedStoreError",
    "StoreError",
    "TrajectoryStore",
    "VerifyReport",
    "select_names",
]


for _public in (DamagedStoreError, StoreError, Damage, VerifyReport, select_names):
    _public.__module__ = __name__  # documented (and shown in tracebacks) as conjugacy.store.X
del _public


class TrajectoryStore(_Layout, _Integrity, _Reading, _Writing):
    """A directory of recorded weight trajectories (see the module docstring for the layout).

    Create with :meth:`open`. Use as a context manager, or call :meth:`close` (which releases the
    writer lock).

    The class is composed of one part per concern: opening, closing and the runs' metadata
    (``_layout``), validation, chunk checks and :meth:`verify` (``_integrity``), reading
    (``_read``) and writing (``_write``).

    Raises
    ------
    StoreError
        From :meth:`open` (a missing or foreign folder, a second writer, an unreadable format)
        and from every method given an unknown run, parameter or scalar.
    DamagedStoreError
        From a read that meets a missing or corrupt chunk.

    Examples
    --------
    Record three steps of a two-parameter model, then read them back as one trajectory:

    >>> import tempfile
    >>> import numpy as np
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = f"{tmp.name}/runs.zarr"
    >>> shapes = {"fc.weight": ((2, 3), "float32"), "fc.bias": ((2,), "float32")}
    >>> with TrajectoryStore.open(path, "w") as store:
    ...     store.create_run("seed0", shapes, metadata={"seed": 0})
    ...     params = {"fc.weight": np.ones((3, 2, 3), "float32"),
    ...               "fc.bias": np.zeros((3, 2), "float32")}
    ...     store.append("seed0", [0, 10, 20], params, scalars={"loss": [1.0, 0.5, 0.25]})
    ...     store.set_finished("seed0")
    3
    >>> with TrajectoryStore.open(path, "r") as store:
    ...     x = store.read(params="fc.weight")  # (n_runs, n_steps, n_features)
    ...     print(store.runs(), x.shape, store.steps("seed0"), store.scalars("seed0", "loss"))
    ['seed0'] (1, 3, 6) [ 0 10 20] [1.   0.5  0.25]
    >>> tmp.cleanup()
    """
