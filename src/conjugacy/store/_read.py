"""Reading: run queries, ``read`` into memory and ``source`` streamed in chunk-aligned spans."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..streaming import (
    BLOCK_BYTES,
    BlockPool,
    available_memory,
    fix_mmap_threshold,
    format_size,
    parse_memory,
    process_rss,
)
from ._base import _RUN_NAME, StoreError, select_names
from ._write import BRANCH

if TYPE_CHECKING:
    from . import TrajectoryStore


class _Reading:
    """The reading half of :class:`TrajectoryStore`."""

    def runs(self) -> list[str]:
        """Names of the runs in the store, sorted."""
        self._check_open()
        d = self._path / "runs"
        if not (d / "zarr.json").is_file():
            raise self._damaged(None, "its 'runs' group (runs/zarr.json) is missing")
        return sorted(e.name for e in d.iterdir() if _RUN_NAME.fullmatch(e.name) and e.is_dir()
                      and self._run_attrs(e.name) is not None)

    def __contains__(self, run: object) -> bool:
        return isinstance(run, str) and run in self.runs()

    def n_complete(self, run: str) -> int:
        """Number of complete (readable) steps of ``run``."""
        return int(self._run(run).attrs["n_complete"])

    def metadata(self, run: str) -> dict[str, Any]:
        """The run's metadata (what ``create_run(metadata=...)`` and :meth:`update_metadata`
        stored), read from its attributes alone: no array is opened or read.

        Raises
        ------
        StoreError
            Unknown run.

        Example: ``store.metadata("sgd_s0")`` -> ``{"condition": "sgd", "seed": 0}``.
        """
        return dict(self._attrs(run).get("metadata", {}))

    def run_info(self, run: str, *, steps: np.ndarray | None = None) -> dict[str, Any]:
        """Description of a run.

        Parameters
        ----------
        run : str
        steps : ndarray, optional
            The run's steps as :meth:`steps` returned them, when the caller holds them: the first
            and last step are taken from them instead of read (two chunk reads less).

        Raises
        ------
        StoreError
            Unknown run.
        ValueError
            ``steps`` does not hold ``n_complete`` entries.

        Returns
        -------
        dict
            ``name``, ``n_complete``, ``chunk_steps``, ``finished``, ``parameters`` (name ->
            ``{"shape": [...], "dtype": str, "size": int}``, in feature order), ``n_features``,
            ``scalars`` (sorted names), ``first_step``/``last_step`` (recorded step indices or
            None), ``metadata`` (dict), ``branches`` (``["next"]`` for a run that keeps the
            branch of every record, else ``[]``).
        """
        a = self._attrs(run)
        n = int(a["n_complete"])
        params = {
            name: {"shape": list(shape), "dtype": dtype, "size": int(math.prod(shape))}
            for name, shape, dtype in a["parameters"]
        }
        if steps is not None and len(steps) != n:
            raise ValueError(f"steps holds {len(steps)} entries; run {run!r} has {n} complete "
                             "steps (pass what steps(run) returns)")
        if steps is None and n:
            g = self._view(run)[1]
            first = int(self._read(run, g, "steps", slice(0, 1), n)[0])
            last = int(self._read(run, g, "steps", slice(n - 1, n), n)[0])
        else:
            first, last = (int(steps[0]), int(steps[-1])) if n else (None, None)
        return {
            "name": run,
            "n_complete": n,
            "chunk_steps": int(a["chunk_steps"]),
            "finished": bool(a.get("finished", False)),
            "parameters": params,
            "n_features": int(sum(v["size"] for v in params.values())),
            "scalars": self._scalar_names(run),
            "first_step": first,
            "last_step": last,
            "metadata": dict(a.get("metadata", {})),
            "branches": list(a.get("branches", [])),
        }

    def parameters(self, run: str) -> list[str]:
        """Recorded parameter names of ``run`` in feature order."""
        return [name for name, _, _ in self._run(run).attrs["parameters"]]

    def steps(self, run: str) -> np.ndarray:
        """Training-step index of each complete record of ``run``, int64 ``(n_complete,)``."""
        a, g = self._view(run)
        n = int(a["n_complete"])
        return np.asarray(self._read(run, g, "steps", slice(0, n), n), dtype=np.int64)

    def scalars(self, run: str, name: str) -> np.ndarray:
        """Scalar series ``name`` of ``run``, float64 ``(n_complete,)``; NaN where not recorded."""
        a, g = self._view(run)
        n = int(a["n_complete"])
        names = self._scalar_names(run)
        if name not in names:
            raise StoreError(
                f"run {run!r} of store {str(self._path)!r} has no scalar {name!r}; scalars: "
                + (", ".join(names) if names else "(none)")
            )
        return np.asarray(self._read(run, g, f"scalars/{name}", slice(0, n), n),
                          dtype=np.float64)

    def source(
        self, params: str | Sequence[str] | None = None, runs: str | Sequence[str] | None = None,
        *, max_memory: int | str | None = None,
    ) -> StoreSource:
        """The selected parameters of the selected runs as a *streaming source* for
        :func:`conjugacy.koopman_spectrum`: the spectrum then reads the store in one pass of
        feature blocks aligned with the Zarr chunks (each chunk read and checksum-checked once),
        never loading the selection whole (:mod:`conjugacy.streaming`). Runs may have different
        numbers of complete steps (ragged trajectories).

        Parameters
        ----------
        params, runs : as in :meth:`read`
        max_memory : int, str or None
            Memory the whole process may use while streaming (bytes, or ``"1G"``, ``"800M"``);
            None: what its memory cgroup (``memory.max``, ``memory.limit_in_bytes``) or the
            system (``MemAvailable``) has left. The read spans, read-ahead and reader threads are
            sized to fit (:meth:`StoreSource.read_plan`); below the floor (one chunk column of
            every run, one chunk being decoded, 1 MiB float64 blocks, the snapshot Gram),
            streaming raises a ``StoreError`` naming the minimum.

        Raises
        ------
        StoreError
            Unknown runs or parameters, runs with different parameter layouts, missing chunks.

        Example: ``koopman_spectrum(store.source("w", max_memory="1G"), delays=32, rank=10)``.
        """
        self._check_open()
        run_names = self._select_runs(runs)
        layout = _common_layout(run_names, [self._attrs(r) for r in run_names], params)
        if max_memory is not None:
            parse_memory(max_memory)  # refused here, not at the first block
        return StoreSource(self, run_names, layout, max_memory)

    def _select_runs(self, runs: str | Sequence[str] | None) -> list[str]:
        if runs is None:
            names = self.runs()
            if not names:
                raise StoreError(f"store {str(self._path)!r} holds no runs")
            return names
        patterns = [runs] if isinstance(runs, str) else list(runs)
        if not patterns:
            raise StoreError("runs is an empty list; give run names or None for all runs")
        names: list[str] = []
        available = None
        for pat in patterns:
            if isinstance(pat, str) and any(c in pat for c in "*?["):
                available = self.runs() if available is None else available
                hits = [r for r in available if fnmatch.fnmatchcase(r, pat)]
                if not hits:
                    raise StoreError(
                        f"run selection {pat!r} matches no run of store {str(self._path)!r}; "
                        f"runs: {', '.join(available[:20])}{' ...' if len(available) > 20 else ''}"
                    )
                names += [r for r in hits if r not in names]
            elif pat not in names:
                names.append(pat)
        return names

    def read(
        self,
        params: str | Sequence[str] | None = None,
        runs: str | Sequence[str] | None = None,
        steps: slice | None = None,
        *,
        dtype: Any = None,
        branch: str | None = None,
    ) -> np.ndarray:
        """Read trajectories shaped for :func:`conjugacy.koopman_spectrum`.

        Parameters
        ----------
        params : str, list of str or None
            Parameter names or fnmatch globs (``"fc2.weight"``, ``"blocks.0.mlp.*"``); None = all.
            Features are the selected parameters in recorded order, each flattened (C order).
        runs : str, list of str or None
            Runs to read, in this order (names or fnmatch globs, each run once); None = all
            runs, sorted by name.
        steps : slice or None
            Positions along the recorded axis (not training-step indices; see :meth:`steps`),
            applied to the complete steps of every run.
        dtype : numpy dtype, optional
            Output dtype; default: the common dtype of the selected parameters (float64 stays
            float64).
        branch : None or "next"
            None: the recorded trajectories. ``"next"``: the runs' branch instead, record ``t``
            the state one more stride of training from record ``t`` on independently drawn
            batches (runs created with ``next_states=True``), for
            ``koopman_spectrum(..., next_states=...)``.

        Returns
        -------
        ndarray, shape (n_runs, n_steps, n_features)

        Raises
        ------
        StoreError
            Unknown runs or parameters, runs with different selected shapes or step counts.
        """
        self._check_open()
        run_names = self._select_runs(runs)
        if steps is not None and not isinstance(steps, slice):
            raise StoreError(f"steps must be a slice or None, got {steps!r}")
        if branch not in (None, BRANCH):
            raise StoreError(f"branch must be None or {BRANCH!r}, got {branch!r}")
        prefix = "params" if branch is None else branch
        attrs, groups = zip(*[self._view(r) for r in run_names])
        if branch is not None:
            lacking = [r for r, a in zip(run_names, attrs) if branch not in a.get(
                "branches", [])]
            if lacking:
                raise StoreError(
                    f"run {lacking[0]!r} keeps no branch {branch!r} (record it with "
                    "Recorder(branch=...) or train_replicas(branch_batches=...))"
                )
        layout = _common_layout(run_names, attrs, params)
        lengths = [range(int(a["n_complete"]))[steps or slice(None)] for a in attrs]
        if len({len(x) for x in lengths}) > 1:
            counts = {r: int(a["n_complete"]) for r, a in zip(run_names, attrs)}
            selected = dict(zip(run_names, map(len, lengths)))
            raise StoreError(
                f"runs have different numbers of selected steps {selected} (complete steps: "
                f"{counts}); pass steps=slice(0, n) with a common n"
            )
        out_dtype = (
            np.dtype(dtype) if dtype is not None else np.result_type(*[d for _, (_, d) in layout])
        )
        n_feat = sum(math.prod(s) for _, (s, _) in layout)
        n_steps = len(lengths[0])
        if n_steps == 0:
            return np.empty((len(run_names), 0, n_feat), dtype=out_dtype)
        # zarr takes positive steps only: a negative one reads the records in increasing order
        # and reverses them
        order = -1 if lengths[0].step < 0 else 1
        forward = [rng[::order] for rng in lengths]
        arrays = []  # [run][parameter]: every chunk file needed is there (one lstat each)
        for r, g, a, rng in zip(run_names, groups, attrs, forward):  # before allocating
            arrays.append([self._checked_array(r, g, f"{prefix}/{name}", rng.start, rng[-1] + 1,
                                               int(a["n_complete"])) for name, _ in layout])
        out = np.empty((len(run_names), n_steps, n_feat), dtype=out_dtype)
        for i, (r, g, rng, arrs) in enumerate(zip(run_names, groups, forward, arrays)):
            off = 0
            for (name, (shape, _)), arr in zip(layout, arrs):
                size = math.prod(shape)
                block = self._decode(r, g, f"{prefix}/{name}", arr,
                                     slice(rng.start, rng.stop, rng.step))
                out[i, :, off : off + size] = block[::order].reshape(n_steps, size)
                off += size
        return out

    def _open_array(self, run: str, g: Any, key: str) -> Any:
        try:
            return g[key]
        except Exception as exc:
            raise self._damaged(
                run, f"array {key!r} cannot be opened ({type(exc).__name__}: {exc})"
            ) from exc

    def _checked_array(self, run: str, g: Any, key: str, start: int, stop: int, n: int) -> Any:
        """Array ``key`` of ``run``, refused unless it holds records ``[start, stop)`` (``stop``
        <= ``n``, its ``n_complete``) and each of their chunk files is there (one lstat each)."""
        arr = self._open_array(run, g, key)
        if arr.shape[0] < stop:
            raise self._damaged(run, f"n_complete is {n} but array {key!r} holds {arr.shape[0]}")
        missing, _ = self._chunk_problems(run, g, key, arr, start, stop, False)
        if missing:
            raise self._damage_error(missing)
        return arr

    def _read(self, run: str, g: Any, key: str, sel: slice, n: int) -> np.ndarray:
        """Records ``sel`` (a slice with a positive step, within ``[0, n)``) of array ``key``,
        checking that its chunks exist and decode."""
        start, stop, _ = sel.indices(n)
        if stop <= start:
            return np.asarray(self._open_array(run, g, key)[0:0])
        return self._decode(run, g, key, self._checked_array(run, g, key, start, stop, n), sel)

    def _decode(self, run: str, g: Any, key: str, arr: Any, sel: slice) -> np.ndarray:
        """Records ``sel`` of ``arr`` (array ``key`` of ``run``, its chunk files checked by
        :meth:`_checked_array`); a chunk that fails to decode is reported as damage."""
        start, stop, _ = sel.indices(arr.shape[0])
        try:
            return np.asarray(arr[sel])
        except MemoryError:
            raise
        except Exception as exc:
            raise self._read_failed(run, g, key, arr, start, stop, exc) from exc


def _selected_layout(attrs: dict[str, Any], params: str | Sequence[str] | None) -> list[Any]:
    """``[(name, (shape, dtype)), ...]`` of the parameters ``params`` selects from a run's
    attributes, in recorded order."""
    declared = {name: (tuple(shape), dt) for name, shape, dt in attrs["parameters"]}
    return [(n, declared[n]) for n in select_names(list(declared), params)]


def _common_layout(runs: list[str], attrs: Sequence[dict[str, Any]],
                   params: str | Sequence[str] | None) -> list[Any]:
    """The selected layout (:func:`_selected_layout`) of every run (``attrs``: their attributes),
    refusing a run whose selection differs from the first run's."""
    layouts = [_selected_layout(a, params) for a in attrs]
    for run, this in zip(runs, layouts):
        if this != layouts[0]:
            raise StoreError(
                f"run {run!r} has a different selected parameter layout than run "
                f"{runs[0]!r}: {this} vs {layouts[0]}"
            )
    return layouts[0]


#: copies of one chunk alive while a reader thread reads it: the compressed bytes and the decoded
#: chunk (copied by Zarr straight into the span buffer: measured 1.93 chunks with tracemalloc)
_DECODE_COPIES = 2
#: float64 block sizes: the smallest before the read-ahead and reader threads are given up, and
#: the floor
_GOOD_BLOCK, _MIN_BLOCK = 16 * 2**20, 2**20
#: left for the interpreter, Zarr's metadata and the allocator's slack while streaming
_SLACK = 48 * 2**20


class StreamMemoryError(StoreError):
    """A store's streamed read does not fit in the memory it may use even at its floor
    (:meth:`StoreSource.read_plan`). The message names the option as the API spells it
    (``max_memory='176M'``); :meth:`with_option` names it as a caller spells it (the command
    line's ``--max-memory 176M``).

    ``parts``: the message's text before the limit's description ``why``, between it and the
    suggested value ``least`` (e.g. ``"176M"``), and after it.
    """

    def __init__(self, parts: tuple[str, str, str], why: str, least: str) -> None:
        self._parts, self._why, self.least = parts, why, least
        super().__init__(self.with_option("max_memory"))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:  # pickled with its parts
        return type(self), (self._parts, self._why, self.least)

    def with_option(self, name: str) -> str:
        """The message naming the memory option ``name``: a keyword (``max_memory``:
        ``max_memory='176M'``) or a command-line option (``--max-memory``: ``--max-memory
        176M``), also where the option set the limit (``max_memory=1 KiB``).

        >>> err = StreamMemoryError(("needs more, but ", " leaves 0 bytes; use ", ""),
        ...                         "max_memory=1 KiB", "176M")
        >>> str(err)
        "needs more, but max_memory=1 KiB leaves 0 bytes; use max_memory='176M'"
        >>> err.with_option("--max-memory")
        'needs more, but --max-memory 1 KiB leaves 0 bytes; use --max-memory 176M'
        """
        flag = name.startswith("-")
        why = self._why
        if why.startswith("max_memory="):  # set by the option (streaming.available_memory)
            why = f"{name} {why[11:]}" if flag else f"{name}={why[11:]}"
        fix = f"{name} {self.least}" if flag else f"{name}={self.least!r}"
        return f"{self._parts[0]}{why}{self._parts[1]}{fix}{self._parts[2]}"


@dataclass(frozen=True)
class ReadPlan:
    """How :meth:`StoreSource.blocks` streams within the memory it may use (bytes throughout).

    ``width``: features of one float64 block (three are kept, :class:`conjugacy.streaming.
    BlockPool`); ``limited``: the memory available ruled out the widest setting (the reader
    then fixes glibc's mmap threshold, :func:`conjugacy.streaming.fix_mmap_threshold`);
    ``span_bytes``: one buffer of raw chunks (every run's chunks over a range of features,
    stored dtype); ``read_ahead``: the next span is read while this one is used (two
    span buffers); ``threads``: chunks decoded at once; ``need``: the stream's allocations with
    the snapshot Gram's two n_snapshots^2 buffers and ``_SLACK``; ``available``/``limited_by``:
    what :func:`conjugacy.streaming.available_memory` found.
    """

    width: int
    limited: bool
    span_bytes: int
    read_ahead: bool
    threads: int
    need: int
    available: int
    limited_by: str


class StoreSource:
    """Selected runs x parameters of a :class:`TrajectoryStore`, streamed in feature blocks.

    ``blocks(block_bytes)`` yields ``(features, z)`` with ``z`` (n_snapshots, b) float64: for each
    parameter, ranges along its first axis that are whole Zarr chunks ("spans", so every chunk is
    read and decoded, its CRC-32C checked, exactly once), all runs' complete steps stacked in run
    order. The spans, the blocks, the read-ahead and the reader threads are sized by
    :meth:`read_plan` to the memory the process may use (``max_memory``, else its cgroup's limit
    or ``MemAvailable``). Used by :func:`conjugacy.koopman_spectrum`; see
    :meth:`TrajectoryStore.source`.
    """

    def __init__(self, store: TrajectoryStore, runs: list[str], layout: list[Any],
                 max_memory: int | str | None = None) -> None:
        self._store = store
        self.runs = runs
        self._layout = layout
        self.max_memory = max_memory
        self.name = f"store {str(store.path)!r}"
        self.labels = [f"run {r!r}" for r in runs]  # named in NaN errors
        self._groups = [store._run(r) for r in runs]
        self.lengths = [int(g.attrs["n_complete"]) for g in self._groups]
        self.n_features = int(sum(math.prod(shape) for _, (shape, _) in layout))
        self.dtype = np.result_type(*[np.dtype(dt) for _, (_, dt) in layout])
        self.complex = bool(np.issubdtype(self.dtype, np.complexfloating))
        # [run][parameter], opened once, each holding its n_complete records in chunk files
        self._arrays = [[store._checked_array(r, g, f"params/{name}", 0, n, n) for name, _ in layout]
                        for r, g, n in zip(runs, self._groups, self.lengths)]

    def steps(self, run: str) -> np.ndarray:
        """Recorded step indices of ``run`` (one of :attr:`runs`), int64 (n_complete,)."""
        return self._store.steps(run)

    def _spans(self, width: int) -> list[tuple]:
        """``(parameter index, has_shape, rest, a0, a1, feature offset)``: rows ``a0:a1`` of a
        parameter's first axis, whole chunks of the first run, about ``width`` features."""
        spans, off = [], 0
        for p, (_, (shape, _)) in enumerate(self._layout):
            rest = math.prod(shape[1:]) if len(shape) > 1 else 1
            first = shape[0] if shape else 1
            chunk_rows = self._arrays[0][p].chunks[1] if shape else 1
            want = max(1, width // rest)
            rows = max(chunk_rows, (want // chunk_rows) * chunk_rows)
            spans += [(p, bool(shape), rest, a0, min(a0 + rows, first), off)
                      for a0 in range(0, first, rows)]
            off += first * rest
        return spans

    def _need(self, width: int, read_ahead: bool, threads: int) -> tuple[int, int, int]:
        """(bytes in all, one span buffer, decoding) of streaming with these settings."""
        n_snap = sum(self.lengths)
        item = 16 if self.complex else 8
        span = max((a1 - a0) * rest * np.dtype(self._layout[p][1][1]).itemsize
                   for p, _, rest, a0, a1, _ in self._spans(width)) * n_snap
        chunk = max(math.prod(a.chunks[:2]) * (math.prod(a.shape[2:]) if a.ndim > 2 else 1)
                    * a.dtype.itemsize for arrays in self._arrays for a in arrays)
        decode = threads * _DECODE_COPIES * chunk
        total = (BlockPool.COUNT * item * n_snap * width + (1 + read_ahead) * span + decode
                 + 2 * item * n_snap**2 + _SLACK)
        return total, span, decode

    def read_plan(self, block_bytes: int = BLOCK_BYTES) -> ReadPlan:
        """The widest blocks, read-ahead and reader threads that fit the memory available now
        (:func:`conjugacy.streaming.available_memory` of ``max_memory``), in this order of
        preference: blocks of ``block_bytes`` (down to 16 MiB) with the next span read ahead by
        up to 8 threads, then 2 and 1 thread(s), then without read-ahead; then the same down to
        1 MiB blocks.

        Raises
        ------
        StoreError
            Even the floor does not fit: one line naming ``max_memory`` and the minimum.

        Example: 10 runs x 100 steps x 1e6 float32 features (chunks of 100 x 62,500) with
        ``max_memory="1G"``: ``ReadPlan(width=8388, limited=True, span_bytes=250000000,
        read_ahead=True, threads=2, ...)`` (64 MiB blocks; measured peak 0.90 GiB).
        """
        n_snap = sum(self.lengths)
        available, why = available_memory(self.max_memory)
        w0 = max(1, min(self.n_features, block_bytes // (8 * n_snap)))
        t0 = min(8, len(self.runs))
        settings = [(True, t0), (True, min(2, t0)), (True, 1), (False, min(2, t0)), (False, 1)]
        for low in (_GOOD_BLOCK, _MIN_BLOCK):
            low_w = max(1, min(w0, low // (8 * n_snap)))
            for ahead, threads in settings:
                width = w0
                while True:
                    need, span, _ = self._need(width, ahead, threads)
                    if need <= available:
                        limited = (width, ahead, threads) != (w0, True, t0)
                        return ReadPlan(width, limited, span, ahead, threads, need, available,
                                        why)
                    if width <= low_w:
                        break
                    width = max(low_w, width // 2)
        raise self._refusal(available, why, max(1, min(w0, _MIN_BLOCK // (8 * n_snap))))

    def _refusal(self, available: int, why: str, width: int) -> StreamMemoryError:
        """The error of a stream whose floor (blocks ``width`` wide) does not fit."""
        need, span, decode = self._need(width, False, 1)
        held = process_rss()
        least = -(-(held + need) // 2**20)
        return StreamMemoryError((
            f"{self.name}: streaming {len(self.runs)} run{'s' * (len(self.runs) != 1)} x "
            f"{sum(self.lengths)} snapshots needs {least} MiB in all ({format_size(held)} in "
            f"use + one chunk column of every run {format_size(span)} + decoding one chunk "
            f"{format_size(decode)} + Gram and 1 MiB blocks), but ",
            f" leaves {format_size(max(0, available), down=True)}; stream with ",
            " or more (and a memory limit that allows it), fewer runs, or a store recorded "
            "with a smaller chunk_steps"), why, f"{least}M")


    def blocks(self, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[slice, np.ndarray]]:
        """Yield ``(features, z)``, ``z`` (n_snapshots, <= plan width) float64 (or complex128),
        reused by later blocks; spans of raw chunks read one chunk per task (see
        :meth:`read_plan`)."""
        from concurrent.futures import ThreadPoolExecutor

        plan = self.read_plan(block_bytes)
        if plan.limited:
            fix_mmap_threshold()  # freed decode buffers go back to the system at once
        offsets = np.cumsum([0] + self.lengths)
        pool = BlockPool(int(offsets[-1]), plan.width,
                         np.complex128 if self.complex else np.float64)
        spans = self._spans(plan.width)
        buffers = [np.empty(plan.span_bytes, np.uint8) for _ in range(1 + plan.read_ahead)]
        with ThreadPoolExecutor(max_workers=plan.threads,
                                thread_name_prefix="conjugacy-store-read") as ex:
            pending = self._submit(ex, spans[0], buffers[0], offsets) if spans else None
            for i, (_, _, rest, a0, a1, off) in enumerate(spans):
                assert pending is not None
                raw = pending[0]
                for f in pending[1]:
                    f.result()
                more = i + 1 < len(spans)
                if more and plan.read_ahead:
                    pending = self._submit(ex, spans[i + 1], buffers[(i + 1) % 2], offsets)
                width = (a1 - a0) * rest
                for s0 in range(0, width, plan.width):
                    s1 = min(s0 + plan.width, width)
                    z = pool.take(s1 - s0)
                    z[...] = raw[:, s0:s1]
                    yield slice(off + a0 * rest + s0, off + a0 * rest + s1), z
                if more and not plan.read_ahead:
                    pending = self._submit(ex, spans[i + 1], buffers[0], offsets)

    def _submit(self, ex: Any, span: tuple, buffer: np.ndarray, offsets: np.ndarray) -> tuple:
        """Read ``span`` of every run into ``buffer`` (viewed as (n_snapshots, span features) of
        the stored dtype), one task per chunk: ``(view, futures)``."""
        p, has_shape, rest, a0, a1, _ = span
        dtype = np.dtype(self._layout[p][1][1])
        cols = (a1 - a0) * rest
        raw = buffer[: int(offsets[-1]) * cols * dtype.itemsize].view(dtype)
        raw = raw.reshape(int(offsets[-1]), cols)
        futures = []
        for r, arrays, n, lo in zip(self.runs, self._arrays, self.lengths, offsets):
            arr = arrays[p]
            step_chunk = arr.chunks[0]
            row_chunk = arr.chunks[1] if has_shape else 1
            for s0 in range(0, n, step_chunk):
                s1 = min(s0 + step_chunk, n)
                c0 = a0
                while c0 < a1:
                    c1 = min(a1, (c0 // row_chunk + 1) * row_chunk)
                    out = raw[lo + s0 : lo + s1, (c0 - a0) * rest : (c1 - a0) * rest]
                    sel = (slice(s0, s1), slice(c0, c1)) if has_shape else slice(s0, s1)
                    futures.append(ex.submit(self._read_chunk, r, p, arr, sel, out))
                    c0 = c1
        return raw, futures

    def _read_chunk(self, run: str, p: int, arr: Any, sel: Any, out: np.ndarray) -> None:
        """``arr[sel]`` (one chunk, or part of one) into ``out``, (steps, features); unreadable
        chunks raise the store's damage error naming run, array and steps."""
        steps = sel[0] if isinstance(sel, tuple) else sel
        target = out.reshape(-1) if not isinstance(sel, tuple) else out.reshape(
            (out.shape[0], sel[1].stop - sel[1].start, *arr.shape[2:]))
        try:
            if np.shares_memory(target, out):  # decoded straight into the span buffer
                from zarr.core.buffer.cpu import NDBuffer

                arr.get_basic_selection(sel, out=NDBuffer.from_numpy_array(target))
                return
            part = arr[sel]
        except MemoryError:
            raise
        except Exception as exc:
            raise self._store._read_failed(run, self._groups[self.runs.index(run)],
                                           f"params/{self._layout[p][0]}", arr, steps.start,
                                           steps.stop, exc) from exc
        out[...] = np.asarray(part).reshape(out.shape)

    def materialize(self) -> list[np.ndarray]:
        """The selection in memory, one (n_steps_i, n_features) float64 array per run."""
        names = [n for n, _ in self._layout]
        dtype = np.complex128 if self.complex else np.float64
        return [np.asarray(self._store.read(names, runs=r)[0], dtype=dtype) for r in self.runs]
