"""One protocol for every study: conditions x seeds x replicas, trained serially or on Dask.

Every study of the paper has the same shape: *conditions* (optimizer, width, regime, ...) x
independent *seeds* x perturbed *replicas* trained on one batch order, recorded into a store, then
spectra per (condition, seed [, window]), distances, tests and figures. This module owns the
first half, once for all studies:

- :class:`Study` declares the conditions, seeds, replicas, the training settings that decide the
  trajectories (stamped into ``study.json`` and checked when an output folder is resumed) and a
  per-job training function;
- :meth:`Study.jobs` enumerates the (condition, seed) jobs (plus any ``extra_jobs``);
- :func:`run_study` runs them, serially (default) or on a ``dask.distributed`` cluster
  (``scheduler=ADDRESS`` or ``workers=N`` for a ``LocalCluster``), skips complete jobs, restarts
  interrupted ones, limits threads, times every job and shows Rich progress (one bar over jobs,
  one per job when serial);
- :class:`StudyReader` reads the recorded runs of all jobs back as one store;
- :func:`provenance` and :func:`write_results` give every ``results.json`` its package versions,
  data source, settings and timing, written atomically.

The second half (spectra per group, distances, tests, verdicts) is :mod:`conjugacy.analysis`.

Several writers: one store per job
----------------------------------
A :class:`~conjugacy.store.TrajectoryStore` admits one writer at a time (a lock file). Jobs that
run at the same time on different workers therefore never share a store: job ``key`` writes its
replicas into ``OUT/trajectories/<key>.zarr`` and nothing else, so any number of jobs may run in
parallel, a crashed worker leaves only its own job incomplete, and the serial and parallel runs
leave the same files. :class:`StudyReader` joins the per-job stores by reference (run name ->
store; nothing is copied). The stores live on a file system every worker can reach (the local
disk for a ``LocalCluster``, a shared file system on a cluster).

Resuming
--------
``study.json`` in the output folder holds the study name and its training settings. A second run
with other training settings is refused (the message lists the differences); with the same
settings, complete jobs (every replica run present, finished, with ``n_records`` records) are
skipped. An incomplete job is trained again from the start (its runs are deleted first), unless
the study declares ``resumable=True``: then its training function is handed the job's checkpoint
folder and continues interrupted runs from their last checkpoint (e.g. through
:func:`conjugacy.torch.train_replicas`'s ``checkpoint_dir``). A finished run of a resumable study
that the job now asks to be longer (more ``n_records`` under the same settings, e.g. grokking's
constrained runs when ``--s6`` is added to a quick run) is reopened as interrupted and so extended
from its checkpoint; its first records stay as they are.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._checks import check_int, check_out_dir

__all__ = [
    "ExperimentRun",
    "Job",
    "JobContext",
    "Study",
    "StudyRun",
    "StudyReader",
    "check_config",
    "check_scheduler",
    "dask_client",
    "check_experiment_folder",
    "experiment_session",
    "limit_threads",
    "prepare_out_dir",
    "provenance",
    "run_experiment",
    "run_study",
    "seed_streams",
    "write_results",
]

#: Version of the output-folder layout written by :func:`run_study`.
LAYOUT_VERSION = 1
STAMP_NAME = "study.json"
STORES_DIR = "trajectories"
CHECKPOINTS_DIR = "checkpoints"


# ----- declaration ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One unit of training: the replicas of one condition and seed.

    Attributes
    ----------
    condition : str
        Label of the condition (``"h40"``, ``"constrained"``, ``"adam"``).
    seed : int
        The seed (index or value, as the study defines it).
    params : dict
        The condition's parameters (JSON types), as declared in :attr:`Study.conditions`.
    key : str
        Unique name of the job: its store is ``trajectories/<key>.zarr`` and its runs are
        ``<key>_<replica>`` (zero-padded, the names :func:`conjugacy.torch.train_replicas` gives
        for ``run_prefix=key``).
    n_replicas : int
        Runs of the job.
    n_records : int
        Records per run when complete (``n_steps + 1`` with the initial state).

    Examples
    --------
    The jobs of a study (:meth:`Study.jobs`):

    >>> study = Study("demo", {"sgd": {"lr": 0.1}}, seeds=[0], n_replicas=3, n_records=11,
    ...               train=lambda job, context: None, settings={})
    >>> job = study.jobs()[0]
    >>> job.key, job.params, job.n_records, job.run_names
    ('sgd-seed0', {'lr': 0.1}, 11, ('sgd-seed0_0', 'sgd-seed0_1', 'sgd-seed0_2'))
    """

    condition: str
    seed: int
    params: Mapping[str, Any]
    key: str
    n_replicas: int
    n_records: int

    @property
    def run_names(self) -> tuple[str, ...]:
        """The job's run names, replica order: ``f"{key}_{i:0{w}d}"``."""
        width = len(str(self.n_replicas - 1))
        return tuple(f"{self.key}_{i:0{width}d}" for i in range(self.n_replicas))


@dataclass(frozen=True)
class JobContext:
    """What a training function receives besides its :class:`Job`.

    Attributes
    ----------
    store : TrajectoryStore
        The job's own store, open for writing; record exactly ``job.run_names`` into it.
    config : object
        :attr:`Study.config` (the experiment's frozen configuration).
    checkpoint_dir : Path
        A folder of the job's own for checkpoints (used when the study is ``resumable``).
    progress : bool
        Whether to show a per-job progress bar (False on Dask workers).
    metadata : dict
        ``{"study", "condition", "seed", "job"}``: pass it on as run metadata (the protocol also
        merges it into every run after training, so grouping by metadata always works).

    Examples
    --------
    What one job's training function is handed:

    >>> import tempfile
    >>> def train(job, context):
    ...     print(dict(context.metadata), context.checkpoint_dir.name, context.progress)
    ...     context.store.create_run(job.run_names[0], {"w": ((1,), "float64")})
    ...     _ = context.store.append(job.run_names[0], [0], {"w": np.zeros((1, 1))})
    ...     context.store.set_finished(job.run_names[0])
    >>> study = Study("demo", {"sgd": {}}, seeds=[0], n_replicas=1, n_records=1, train=train,
    ...               settings={})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = run_study(study, tmp)
    {'study': 'demo', 'condition': 'sgd', 'seed': 0, 'job': 'sgd-seed0'} sgd-seed0 False
    """

    store: Any
    config: Any
    checkpoint_dir: Path
    progress: bool
    metadata: Mapping[str, Any]


TrainFunction = Callable[[Job, JobContext], "Mapping[str, Any] | None"]


def _check_name(value: Any, what: str) -> None:
    """Refuse ``value`` (ValueError naming ``what``) unless it can name stores and runs: the
    store's rule for run names (:meth:`conjugacy.store.TrajectoryStore.create_run`)."""
    from .store._base import _RUN_NAME

    if not isinstance(value, str) or not _RUN_NAME.fullmatch(value):
        raise ValueError(f"{what} must be a string of letters, digits and _.+=,- not starting "
                         f"with a punctuation mark (it names runs and stores), got {value!r}")


def _default_key(condition: str, seed: int) -> str:
    return f"{condition}-seed{seed}"


def underscore_key(condition: str, seed: int) -> str:
    """The ``job_key`` of the FCN and CNN studies: ``"<condition>_seed<seed>"``, the prefix of
    their runs' names in the store (kept: stores written before resume under it).

    >>> underscore_key("h40", 3)
    'h40_seed3'
    """
    return f"{condition}_seed{seed}"


@dataclass(frozen=True, eq=False)
class Study:
    """A declared study: conditions x seeds x replicas and how one job is trained.

    Parameters
    ----------
    name : str
        Name of the study (``"fcn"``, ``"grokking"``, ``"my-study"``); stamped into ``study.json``.
    conditions : mapping str -> mapping
        Condition label -> its parameters (JSON types), e.g. ``{"sgd": {"lr": 0.1}, "adam":
        {"lr": 1e-3}}``. Labels must be valid store names (letters, digits, ``_.+=,-``).
    seeds : sequence of int
        Independent seeds; every condition is trained once per seed.
    n_replicas : int
        Runs per job (the base initialization and its perturbed copies).
    n_records : int or callable
        Records per complete run, or ``n_records(condition, params) -> int``.
    train : callable
        ``train(job, context) -> dict or None``: trains the job's replicas into
        ``context.store`` as runs ``job.run_names`` (e.g. one call of
        :func:`conjugacy.torch.train_replicas` with ``run_prefix=job.key``). It must be
        deterministic given the job: seed every random stream from ``job.seed`` through
        generators of its own (``torch.Generator``), not the global RNG, which jobs running as
        threads of one process share. A returned dict
        (JSON types) is kept in the run report. It must be importable or picklable when the study
        runs on Dask (a module-level function is both).
    settings : mapping
        The training settings that decide the trajectories (JSON types). Stamped into
        ``study.json``; resuming under other settings is refused. Leave analysis settings out.
    config : object, optional
        Handed to ``train`` as ``context.config`` (e.g. the experiment's frozen config).
    job_key : callable, optional
        ``job_key(condition, seed) -> str``, default ``f"{condition}-seed{seed}"``.
    extra_jobs : sequence of Job
        Jobs outside the conditions x seeds grid (e.g. one long run per regime).
    resumable : bool
        ``train`` continues interrupted runs from ``context.checkpoint_dir``, and finished runs
        shorter than the job's ``n_records`` are reopened for it to extend (else an incomplete
        job is deleted and trained again from the start).
    threads : int
        Threads torch and the BLAS library may use inside a job (1 is fastest for small models
        on a shared machine).
    seed_major : bool
        Enumerate jobs seed by seed (all conditions of seed 0 first), else condition by condition.

    Raises
    ------
    ValueError, TypeError
        Naming the offending field.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> def train(job, context):  # random walks instead of a network: 2 replicas per job
    ...     rng = np.random.default_rng(job.seed)
    ...     for run in job.run_names:
    ...         context.store.create_run(run, {"w": ((2,), "float64")}, metadata=context.metadata)
    ...         w = np.cumsum(rng.normal(job.params["drift"], 1, (job.n_records, 2)), axis=0)
    ...         _ = context.store.append(run, np.arange(job.n_records), {"w": w})
    ...         context.store.set_finished(run)
    >>> study = Study("demo", {"flat": {"drift": 0.0}, "up": {"drift": 1.0}}, seeds=[0, 1],
    ...               n_replicas=2, n_records=5, train=train, settings={"n_steps": 4})
    >>> [job.key for job in study.jobs()]  # seed-major
    ['flat-seed0', 'up-seed0', 'flat-seed1', 'up-seed1']
    >>> study.stamp()  # written to study.json
    {'layout': 1, 'study': 'demo', 'settings': {'n_steps': 4}}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     print(run_study(study, tmp).trained)
    ('flat-seed0', 'up-seed0', 'flat-seed1', 'up-seed1')
    """

    name: str
    conditions: Mapping[str, Mapping[str, Any]]
    seeds: Sequence[int]
    n_replicas: int
    n_records: int | Callable[[str, Mapping[str, Any]], int]
    train: TrainFunction
    settings: Mapping[str, Any]
    config: Any = None
    job_key: Callable[[str, int], str] = _default_key
    extra_jobs: Sequence[Job] = ()
    resumable: bool = False
    threads: int = 1
    seed_major: bool = True

    def __post_init__(self) -> None:
        from .results import to_jsonable

        _check_name(self.name, "name")
        if not isinstance(self.conditions, Mapping) or not self.conditions:
            raise ValueError(f"conditions must be a non-empty mapping, got {self.conditions!r}")
        conditions = {}
        for label, params in self.conditions.items():
            _check_name(label, "each condition label")
            if not isinstance(params, Mapping):
                raise TypeError(f"conditions[{label!r}] must be a mapping of parameters, got {params!r}")
            conditions[label] = dict(to_jsonable(dict(params), f"conditions[{label!r}]"))
        object.__setattr__(self, "conditions", conditions)
        seeds = tuple(check_int(s, "each seed", minimum=0) for s in self.seeds)
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(
                f"seeds must be a non-empty sequence of distinct integers, got {self.seeds!r}")
        object.__setattr__(self, "seeds", seeds)
        check_int(self.n_replicas, "n_replicas", minimum=1)
        check_int(self.threads, "threads", minimum=1)
        if not callable(self.train):
            raise TypeError(f"train must be callable train(job, context), got {self.train!r}")
        if not (callable(self.n_records) or isinstance(self.n_records, int)):
            raise TypeError(f"n_records must be an int or callable, got {self.n_records!r}")
        object.__setattr__(self, "settings", to_jsonable(dict(self.settings), "settings"))
        object.__setattr__(self, "extra_jobs", tuple(self.extra_jobs))
        keys = [j.key for j in self.jobs()]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ValueError(f"job keys must be unique, these repeat: {dup}")
        for k in keys:
            _check_name(k, "each job key")

    def _records(self, condition: str, params: Mapping[str, Any]) -> int:
        n = self.n_records(condition, params) if callable(self.n_records) else self.n_records
        return check_int(n, f"n_records of condition {condition!r}", minimum=1)

    def jobs(self) -> tuple[Job, ...]:
        """All jobs: the conditions x seeds grid (seed-major by default), then ``extra_jobs``."""
        grid = (
            [(c, s) for s in self.seeds for c in self.conditions]
            if self.seed_major
            else [(c, s) for c in self.conditions for s in self.seeds]
        )
        jobs = [
            Job(c, s, self.conditions[c], self.job_key(c, s), self.n_replicas,
                self._records(c, self.conditions[c]))
            for c, s in grid
        ]
        return tuple(jobs) + tuple(self.extra_jobs)

    def stamp(self) -> dict[str, Any]:
        """The content of ``study.json``: layout version, study name and training settings."""
        return {"layout": LAYOUT_VERSION, "study": self.name, "settings": dict(self.settings)}


# ----- threads, provenance, results -------------------------------------------------------------
@contextlib.contextmanager
def limit_threads(n: int) -> Iterator[None]:
    """Let torch (when imported) and the BLAS library (through threadpoolctl, when installed) use
    ``n`` threads inside the ``with`` block; restore the previous settings after.

    The networks and DMD problems of the paper are small: one thread is fastest, and on a machine
    whose 2 cores were shared with other processes, 2 threads made training 5-20 times slower.

    Parameters
    ----------
    n : int
        Threads, >= 1.

    Raises
    ------
    ValueError
        If ``n`` is not a positive integer.

    Examples
    --------
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with limit_threads(1):
    ...     print(torch.get_num_threads())
    1
    >>> torch.get_num_threads() == before
    True
    """
    n = check_int(n, "threads", minimum=1)
    from .threads import blas_threads

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(n)
    try:
        with blas_threads(n):
            yield
    finally:
        if before is not None:
            torch.set_num_threads(before)


def seed_streams(master: int, index: int, inits: Mapping[Any, int]) -> dict[str, Any]:
    """Independent integer seeds of seed ``index`` of a study, derived from the ``master`` seed:
    ``order`` (the batch order, shared by the conditions of one seed), ``noise`` (the replicas'
    perturbations) and ``init[name]`` per ``name: key`` of ``inits`` (an initialization each,
    from ``SeedSequence(master, spawn_key=(index, key))``).

    Parameters
    ----------
    master : int
        The study's master seed.
    index : int
        The seed's index in the study.
    inits : mapping name -> int
        One initialization stream per name, keyed by an integer.

    Returns
    -------
    dict
        ``{"order": int, "noise": int, "init": {name: int}}``, each in [0, 2**32).

    Examples
    --------
    >>> seed_streams(0, 1, {"base": 7})
    {'order': 673228719, 'noise': 1136656250, 'init': {'base': 2337425422}}
    """
    order, noise = (int(v) for v in
                    np.random.SeedSequence(master, spawn_key=(index,)).generate_state(2))
    return {"order": order, "noise": noise, "init": {
        name: int(np.random.SeedSequence(master, spawn_key=(index, key)).generate_state(1)[0])
        for name, key in inits.items()}}


def provenance(study: Study | None = None, *, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Where a result came from: package versions, the study's training settings, the data source.

    Parameters
    ----------
    study : Study, optional
    data : mapping, optional
        Description of the data (name, source, split), JSON types.

    Returns
    -------
    dict
        ``{"package": package_info(), "study": name or None, "training_settings": {...},
        "data": {...}}`` (JSON types).

    Examples
    --------
    >>> p = provenance(data={"name": "digits", "test_fraction": 0.2})
    >>> sorted(p), p["study"], p["data"]
    (['data', 'package', 'study', 'training_settings'], None, {'name': 'digits', 'test_fraction': 0.2})
    """
    from .results import package_info, to_jsonable

    return {
        "package": package_info(),
        "study": None if study is None else study.name,
        "training_settings": None if study is None else dict(study.settings),
        "data": to_jsonable(dict(data or {}), "data"),
    }


def write_results(out: str | os.PathLike[str], content: Mapping[str, Any]) -> Path:
    """Write ``content`` to ``OUT/results.json`` atomically (temporary file + rename); returns it.

    Parameters
    ----------
    out : str or path-like
        The output folder (must exist).
    content : mapping
        JSON-serialisable results (NumPy scalars and arrays are converted).

    Returns
    -------
    Path
        ``OUT/results.json``.

    Examples
    --------
    >>> import json, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_results(tmp, {"verdict": "equivalent", "distance": np.float64(0.25)})
    ...     print(path.name, json.loads(path.read_text()))
    results.json {'verdict': 'equivalent', 'distance': 0.25}
    """
    from .results import write_json

    return write_json(Path(out) / "results.json", dict(content))


# ----- stamp and completeness -------------------------------------------------------------------
#: The files of an output folder that say which experiment wrote it: file, key, what it holds.
_OWNER_FILES = (("results.json", "experiment", "the results of"),
                (STAMP_NAME, "study", "the training of"))


def check_experiment_folder(out: str | os.PathLike[str], experiment: str,
                            name: str = "output folder") -> None:
    """Refuse an output folder that another experiment wrote, before anything is written there.

    ``out`` may be missing or empty, or hold ``experiment``'s own files (a rerun resumes). A
    ``results.json`` whose ``experiment`` or a ``study.json`` whose ``study`` is another name
    (``conjugacy reproduce fcn --out`` the folder of ``reproduce optimizers``) would be
    overwritten or mixed: refused. Each file is read within bounds (no link, FIFO or huge file).

    Parameters
    ----------
    out : path
        The output folder.
    experiment : str
        The name the experiment writes into both files (``"fcn"``, ``"optimizers"``).
    name : str
        How the messages name the folder (``"--out"`` on the command line).

    Raises
    ------
    ValueError
        ``<name> '<out>' holds the results of 'optimizers', not of 'fcn': give another <name>,
        or delete that folder``; or the file cannot be read as a JSON object.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = (Path(tmp) / "results.json").write_text(json.dumps({"experiment": "optimizers"}))
    ...     check_experiment_folder(tmp, "optimizers")  # its own folder: resumed
    ...     check_experiment_folder(tmp, "fcn", "--out")
    Traceback (most recent call last):
    ...
    ValueError: --out '...' holds the results of 'optimizers', not of 'fcn': give another --out...
    """
    from ._bounded_json import UnsafeFile, read_json
    from .analysis.results import MAX_RESULTS_BYTES, MAX_RESULTS_DEPTH

    for file, key, what in _OWNER_FILES:
        try:
            content = read_json(Path(out) / file, limit=MAX_RESULTS_BYTES,
                                max_depth=MAX_RESULTS_DEPTH, what=file)
        except UnsafeFile as exc:
            raise ValueError(f"{name} {str(out)!r} holds a {file} that {exc.problem}: give "
                             f"another {name}, or delete that folder") from None
        owner = content.get(key) if isinstance(content, dict) else None
        if content is not None and owner != experiment:
            shown = repr(owner[:80]) if isinstance(owner, str) else "another program"
            raise ValueError(f"{name} {str(out)!r} holds {what} {shown}, not of {experiment!r}: "
                             f"give another {name}, or delete that folder")


def prepare_out_dir(out: str | os.PathLike[str], experiment: str | None = None,
                    name: str = "output folder") -> Path:
    """The output folder of an experiment, checked and created: :func:`check_out_dir`, then
    :func:`check_experiment_folder` (when ``experiment`` is given), then ``mkdir``.

    Returns ``out`` as a :class:`~pathlib.Path`. Raises ``NotADirectoryError`` (it or a parent
    is a file), ``ValueError`` (another experiment's folder) or the ``OSError`` of ``mkdir``
    (``/proc/x``, no permission), each naming ``name`` and the fix. What every experiment's
    ``run`` (:func:`experiment_session`) and ``conjugacy reproduce`` (``name="--out"``, before
    any work) do.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     prepare_out_dir(f"{tmp}/a/b", "fcn").is_dir()
    True
    """
    out = check_out_dir(out, name)
    if experiment is not None:
        check_experiment_folder(out, experiment, name)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise type(exc)(f"{name} {str(out)!r} cannot be created ({exc.strerror or exc}): give "
                        f"another {name}") from None
    return out


def check_stamp(study: Study, out: str | os.PathLike[str]) -> None:
    """Stamp a new output folder with ``study.json``, or check an existing stamp.

    Raises
    ------
    ValueError
        If ``out`` was written by another study or under other training settings; the message
        lists the differences.
    """
    from .results import write_json

    out = check_out_dir(out, "output folder")
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / STAMP_NAME
    wanted = study.stamp()
    if not stamp.exists():
        write_json(stamp, wanted)
        return
    from ._bounded_json import UnsafeFile, read_json

    try:  # bounded: a folder shared with a paper is untrusted (no link, FIFO, huge or deep file)
        have = read_json(stamp, limit=2**20, what="a study stamp")
    except UnsafeFile as exc:
        raise ValueError(f"{str(stamp)!r} {exc.problem}: delete it, or use another output "
                         "folder") from None
    if not isinstance(have, dict):
        raise ValueError(f"{str(stamp)!r} is not a study stamp (a JSON object): delete it, or "
                         "use another output folder")
    if have.get("study") != wanted["study"]:
        raise ValueError(
            f"{str(out)!r} holds the study {have.get('study')!r}, not {wanted['study']!r}; use "
            "another output folder"
        )
    h, w = have.get("settings"), wanted["settings"]
    h = h if isinstance(h, dict) else {}
    diff = sorted(k for k in set(h) | set(w) if h.get(k) != w.get(k))
    if diff or have.get("layout") != LAYOUT_VERSION:
        details = ", ".join(f"{k}: {h.get(k)!r} there, {w.get(k)!r} now" for k in diff)
        raise ValueError(
            f"{str(out)!r} was trained with other settings ({details or 'layout version'}); "
            "resuming would mix them. Choose another output folder, or delete that one to start "
            "again"
        )


def _held_runs(store: Any, job: Job) -> list[str]:
    """The runs of ``job`` that ``store`` holds, in replica order."""
    have = set(store.runs())
    return [name for name in job.run_names if name in have]


def _job_complete(store: Any, job: Job) -> bool:
    held = _held_runs(store, job)
    return len(held) == len(job.run_names) and all(
        info["finished"] and info["n_complete"] == job.n_records
        for info in map(store.run_info, held))


def _reopen_shorter_runs(store: Any, job: Job) -> None:
    """Mark the finished runs of ``job`` with fewer than ``job.n_records`` records unfinished, so
    that a resumable training function extends them from their checkpoint."""
    for name in _held_runs(store, job):
        info = store.run_info(name)
        if info["finished"] and info["n_complete"] < job.n_records:
            store.set_finished(name, False)


def store_path(out: str | os.PathLike[str], job: Job | str) -> Path:
    """``OUT/trajectories/<key>.zarr``: the store of one job."""
    key = job.key if isinstance(job, Job) else str(job)
    return Path(out) / STORES_DIR / f"{key}.zarr"


def _run_job(study: Study, job: Job, out: str, progress: bool, limit: bool = True) -> dict[str, Any]:
    """Train one job into its own store unless it is complete; returns its report (JSON types).

    Runs in the calling process (serial) or on a Dask worker. With ``limit`` the thread limit is
    set for the job and restored after; otherwise it is set and left (a Dask worker's setting).
    """
    from .store import TrajectoryStore

    t0 = time.perf_counter()
    path = store_path(out, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"study": study.name, "condition": job.condition, "seed": job.seed, "job": job.key}
    torch = sys.modules.get("torch")
    if not limit and torch is not None:  # left as the job's: limit_threads restores this
        torch.set_num_threads(study.threads)
    with limit_threads(study.threads), TrajectoryStore.open(path, "a") as store:
        if _job_complete(store, job):
            return {"key": job.key, "status": "skipped", "seconds": 0.0, "info": None}
        if study.resumable:
            _reopen_shorter_runs(store, job)
        else:
            for name in _held_runs(store, job):
                store.delete_run(name)
        ckdir = Path(out) / CHECKPOINTS_DIR / job.key
        ctx = JobContext(store=store, config=study.config, checkpoint_dir=ckdir,
                         progress=progress, metadata=meta)
        info = study.train(job, ctx)
        if not _job_complete(store, job):
            have = sorted(store.runs())
            raise RuntimeError(
                f"job {job.key!r}: the training function of study {study.name!r} did not record "
                f"the runs {list(job.run_names)} with {job.n_records} records each (the store "
                f"holds {have})"
            )
        for name in job.run_names:
            store.update_metadata(name, meta)
    from .results import to_jsonable

    return {"key": job.key, "status": "trained", "seconds": time.perf_counter() - t0,
            "info": to_jsonable(info) if info is not None else None}


# ----- the runner ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class StudyRun:
    """What :func:`run_study` did.

    Attributes
    ----------
    out : Path
    jobs : tuple of Job
    trained, skipped : tuple of str
        Job keys trained now / found complete.
    job_seconds : dict str -> float
        Wall time of each trained job (0 for skipped ones).
    info : dict str -> dict or None
        What each training function returned.
    seconds : float
        Wall time of the whole run.
    executor : dict
        ``{"kind": "serial"}`` or ``{"kind": "dask", "scheduler": address, "workers": n}``.

    Examples
    --------
    >>> import tempfile
    >>> from conjugacy.analysis.demo import random_walk_study
    >>> study = random_walk_study()  # random walks instead of networks: 2 x 2 jobs of 2 replicas
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     first, again = run_study(study, tmp), run_study(study, tmp)
    ...     with first.reader() as reader:
    ...         n_runs = len(reader.runs())
    >>> first.trained, again.skipped == first.trained, again.trained, n_runs
    (('flat-seed0', 'up-seed0', 'flat-seed1', 'up-seed1'), True, (), 8)
    >>> first.executor
    {'kind': 'serial', 'threads_per_job': 1}
    """

    out: Path
    jobs: tuple[Job, ...]
    trained: tuple[str, ...]
    skipped: tuple[str, ...]
    job_seconds: dict[str, float]
    info: dict[str, Any]
    seconds: float
    executor: dict[str, Any] = field(default_factory=dict)

    def reader(self) -> StudyReader:
        """A :class:`StudyReader` over the stores of this run's jobs."""
        return StudyReader.open(self.out, jobs=self.jobs)

    def timing(self) -> dict[str, Any]:
        """Timing for ``results.json``: total, per job, trained and skipped job keys."""
        return {"training": self.seconds, "per_job": dict(self.job_seconds),
                "trained": list(self.trained), "skipped": list(self.skipped),
                "executor": dict(self.executor)}


def check_scheduler(address: Any, name: str = "scheduler") -> str:
    """``address`` if it is the address of a Dask scheduler as Dask parses it
    (``distributed.comm.addressing``): ``tcp://host:8786``, ``tls://host:8786`` or ``host:8786``
    (a host and a port in 1..65535), or another protocol's (``ucx://...``).

    Raises ValueError naming ``name`` (``--scheduler`` on the command line) and the accepted
    forms; ImportError without dask.distributed.

    >>> check_scheduler("tcp://10.0.0.5:8786")
    'tcp://10.0.0.5:8786'
    >>> check_scheduler("bogus", "--scheduler")
    Traceback (most recent call last):
    ...
    ValueError: --scheduler must be a Dask scheduler address such as 'tcp://host:8786', ...
    """
    from distributed.comm.addressing import get_address_host_port, parse_address

    try:
        scheme, _ = parse_address(address)
        host, port = get_address_host_port(address) if scheme in ("tcp", "tls") else ("-", 1)
        if not host or not 0 < port < 65536:
            raise ValueError(address)
    except (ValueError, TypeError):
        raise ValueError(f"{name} must be a Dask scheduler address such as 'tcp://host:8786', "
                         f"'tls://host:8786' or 'host:8786', got {address!r}") from None
    return address


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None, *,
                processes: bool = True) -> Iterator[Any]:
    """A ``dask.distributed.Client``: connected to ``scheduler`` or to a new ``LocalCluster``.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``), e.g. one started by
        ``dask-jobqueue`` on SLURM. Exclusive with ``workers``.
    workers : int, optional
        Start a ``LocalCluster`` of this many single-threaded workers (closed on exit).
    processes : bool
        LocalCluster workers as processes (default) or as threads of this process (faster to
        start; fine for tests and for torch, which releases the GIL in its kernels). Threads
        share torch's and NumPy's global random state: training functions must then draw from
        generators of their own (they should anyway).

    Raises
    ------
    ValueError
        If both or neither of ``scheduler`` and ``workers`` are given.
    ImportError
        If dask.distributed is not installed (``pip install "conjugacy[dask]"``).

    Examples
    --------
    >>> with dask_client(workers=1, processes=False) as client:
    ...     print(client.submit(sum, [1, 2, 3]).result())
    6
    """
    if (scheduler is None) == (workers is None):
        raise ValueError("give exactly one of scheduler (an address) and workers (a number)")
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "running on Dask needs dask.distributed: pip install 'conjugacy[dask]'"
        ) from exc
    if scheduler is not None:
        with Client(check_scheduler(scheduler)) as client:
            yield client
        return
    workers = check_int(workers, "workers", minimum=1)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def check_config(config: Any, config_type: type) -> None:
    """The check every experiment's ``make_study`` and ``run`` start with: ``config`` must be a
    ``config_type`` (a dict or another experiment's config is refused before any work).

    Raises
    ------
    TypeError
        ``config must be a(n) <type>, got <its type>``.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class FCNConfig:
    ...     n_steps: int = 10
    >>> check_config(FCNConfig(), FCNConfig)
    >>> check_config({"n_steps": 10}, FCNConfig)
    Traceback (most recent call last):
    ...
    TypeError: config must be an FCNConfig, got dict
    """
    if not isinstance(config, config_type):
        name = config_type.__name__
        raise TypeError(f"config must be {'an' if name[0] in 'AEFHILMNORSX' else 'a'} {name}, "
                        f"got {type(config).__name__}")


@contextlib.contextmanager
def experiment_session(config: Any, config_type: type, out: Any, *, threads: int | None = None,
                       workers: int | None = None, scheduler: str | None = None,
                       processes: bool = True, experiment: str | None = None
                       ) -> Iterator[tuple[Path | None, Any]]:
    """What every experiment's ``run`` does around its own work, written once.

    Checks that ``config`` is a ``config_type`` and that ``out`` can be the output folder of
    ``experiment`` (:func:`prepare_out_dir`: created, and refused when another experiment wrote
    it; None: nothing is written), opens a Dask client when ``workers`` or ``scheduler`` is
    given (:func:`dask_client`, closed on exit) and lets torch and BLAS use ``threads`` threads
    (:func:`limit_threads`; None: left as they are). Yields ``(out, client)``, ``out`` a
    :class:`~pathlib.Path` or None and ``client`` None when serial.

    Raises
    ------
    TypeError
        If ``config`` is not a ``config_type``.
    NotADirectoryError
        If ``out`` (or a parent) exists and is not a folder.
    OSError
        If ``out`` cannot be created.
    ValueError
        If ``out`` holds another experiment's files (:func:`check_experiment_folder`); as
        :func:`dask_client`.

    Examples
    --------
    >>> import tempfile
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Config:
    ...     n_steps: int = 10
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with experiment_session(Config(), Config, f"{tmp}/out", threads=1) as (out, client):
    ...         print(out.name, out.is_dir(), client)
    out True None
    >>> with experiment_session({"n_steps": 10}, Config, None):
    ...     pass
    Traceback (most recent call last):
    ...
    TypeError: config must be a Config, got dict
    """
    check_config(config, config_type)
    if out is not None:
        out = prepare_out_dir(out, experiment)
    with contextlib.ExitStack() as stack:
        client = None
        if workers is not None or scheduler is not None:
            client = stack.enter_context(dask_client(scheduler, workers, processes=processes))
        if threads is not None:
            stack.enter_context(limit_threads(threads))
        yield out, client


def run_study(
    study: Study,
    out: str | os.PathLike[str],
    *,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    processes: bool = True,
    progress: bool = False,
) -> StudyRun:
    """Train every job of ``study`` into ``OUT/trajectories/<key>.zarr``; skip complete ones.

    Parameters
    ----------
    study : Study
    out : path
        Output folder (created). Receives ``study.json``, ``trajectories/`` and ``checkpoints/``.
    client : dask.distributed.Client, optional
        Run the jobs as tasks of this client (one task per job). Exclusive with ``scheduler``
        and ``workers``, which create a client for the call (see :func:`dask_client`).
    scheduler, workers, processes
        See :func:`dask_client`. With none of ``client``, ``scheduler`` and ``workers`` the jobs
        run one after another in this process.
    progress : bool
        Rich progress: one bar over the jobs and, when serial, one per job.

    Returns
    -------
    StudyRun

    Raises
    ------
    ValueError
        If ``out`` holds another study or other training settings (see :func:`check_stamp`).
    Exception
        Whatever a job raised (on Dask, after the other jobs were cancelled).

    Examples
    --------
    Random walks instead of networks (:func:`conjugacy.analysis.demo.random_walk_study`), one
    store per job:

    >>> from tempfile import TemporaryDirectory
    >>> from conjugacy.analysis import demo
    >>> with TemporaryDirectory() as tmp:
    ...     done = run_study(demo.random_walk_study(), tmp)
    ...     stores = sorted(p.name for p in (done.out / STORES_DIR).iterdir())
    >>> done.trained, stores[:2]
    (('flat-seed0', 'up-seed0', 'flat-seed1', 'up-seed1'), ['flat-seed0.zarr', 'flat-seed1.zarr'])

    Notes
    -----
    Results do not depend on how the jobs are run: every job is seeded from its own (condition,
    seed) and runs with ``study.threads`` threads, so a run on a cluster gives the same
    trajectories, bit for bit, as the serial run (tested with a LocalCluster of 2 workers).
    """
    if not isinstance(study, Study):
        raise TypeError(f"study must be a Study, got {type(study).__name__}")
    if client is not None and (scheduler is not None or workers is not None):
        raise ValueError("give client, or scheduler/workers, not both")
    out = Path(out)
    check_stamp(study, out)
    if client is None and (scheduler is not None or workers is not None):
        with dask_client(scheduler, workers, processes=processes) as c:
            return run_study(study, out, client=c, progress=progress)
    t0 = time.perf_counter()
    jobs = study.jobs()
    reports: dict[str, dict[str, Any]] = {}
    bar = _JobsBar(progress, len(jobs), study.name)
    try:
        if client is None:
            inner = bool(progress) and _nested_progress_ok()
            for job in jobs:
                bar.describe(job.key)
                reports[job.key] = _run_job(study, job, str(out), inner)
                bar.advance()
            executor: dict[str, Any] = {"kind": "serial", "threads_per_job": study.threads}
        else:
            reports = _run_on_dask(study, jobs, out, client, bar)
            executor = {"kind": "dask", "scheduler": str(client.scheduler.address),
                        "workers": len(client.scheduler_info().get("workers", {})),
                        "threads_per_job": study.threads}
    finally:
        bar.close()
    ordered = [reports[j.key] for j in jobs]
    return StudyRun(
        out=out,
        jobs=jobs,
        trained=tuple(r["key"] for r in ordered if r["status"] == "trained"),
        skipped=tuple(r["key"] for r in ordered if r["status"] == "skipped"),
        job_seconds={r["key"]: float(r["seconds"]) for r in ordered},
        info={r["key"]: r["info"] for r in ordered},
        seconds=time.perf_counter() - t0,
        executor=executor,
    )


def _run_on_dask(study: Study, jobs: Sequence[Job], out: Path, client: Any, bar: _JobsBar
                 ) -> dict[str, dict[str, Any]]:
    from dask.distributed import as_completed

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    futures = [client.submit(_run_job, study, job, str(out.resolve()), False, False, pure=False,
                             key=f"train-{study.name}-{job.key}-{os.getpid()}-{time.time_ns()}")
               for job in jobs]
    reports: dict[str, dict[str, Any]] = {}
    try:
        for fut in as_completed(futures):
            rep = fut.result()  # re-raises a job's exception here
            reports[rep["key"]] = rep
            bar.describe(rep["key"])
            bar.advance()
    except BaseException:
        for f in futures:
            f.cancel()
        raise
    finally:
        if torch is not None and before is not None:
            torch.set_num_threads(before)  # in-process workers share this process's setting
    return reports


def _nested_progress_ok() -> bool:
    """Rich allows a progress bar inside another live display from version 14 on."""
    try:
        from importlib.metadata import version

        return int(version("rich").split(".")[0]) >= 14
    except Exception:  # pragma: no cover - rich missing or odd version string
        return False


class _JobsBar:
    def __init__(self, enabled: bool, total: int, name: str) -> None:
        self._p = None
        if enabled:
            from rich.progress import Progress

            self._p = Progress(transient=False)
            self._p.start()
            self._task = self._p.add_task(f"{name}: jobs", total=total)
            self._name = name

    def describe(self, key: str) -> None:
        if self._p is not None:
            self._p.update(self._task, description=f"{self._name}: {key}")

    def advance(self) -> None:
        if self._p is not None:
            self._p.advance(self._task)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()


# ----- reading the runs of all jobs ----------------------------------------------------------------
class StudyReader:
    """The runs of a study's per-job stores, read as one store (read-only, nothing copied).

    Offers the reading half of :class:`~conjugacy.store.TrajectoryStore`: :meth:`runs`,
    :meth:`run_info`, :meth:`steps`, :meth:`scalars` and :meth:`read` (runs from several stores
    are read store by store and stacked in the order asked). Use as a context manager.

    Examples
    --------
    >>> import tempfile
    >>> from conjugacy.analysis.demo import random_walk_study
    >>> study = random_walk_study()  # random walks instead of networks: 2 x 2 jobs of 2 replicas
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = run_study(study, tmp)
    ...     with StudyReader.open(tmp) as reader:
    ...         runs, meta = reader.runs(), reader.metadata("up-seed1_0")
    ...         x = reader.read(runs=["flat-seed0_0", "up-seed1_1"])
    >>> runs[:3], len(runs), x.shape
    (['flat-seed0_0', 'flat-seed0_1', 'flat-seed1_0'], 8, (2, 5, 2))
    >>> meta
    {'study': 'demo', 'condition': 'up', 'seed': 1, 'job': 'up-seed1'}
    """

    def __init__(self, paths: Mapping[str, Path]) -> None:
        self._paths = {str(k): Path(v) for k, v in paths.items()}  # run -> store path
        self._open: dict[Path, Any] = {}
        self._borrowed: set[Path] = set()  # stores the caller opened (and closes)
        self._info: dict[str, dict[str, Any]] = {}  # run_info read once per run while open
        self._meta: dict[str, dict[str, Any]] = {}  # metadata likewise
        self._steps: dict[str, np.ndarray] = {}  # steps likewise (read-only arrays)

    @classmethod
    def of_store(cls, store: Any, *, close: bool = False) -> StudyReader:
        """A reader over the runs of one open :class:`~conjugacy.store.TrajectoryStore`, read
        through that handle (the store is not opened and validated again).

        Parameters
        ----------
        store : TrajectoryStore
            Open (any mode).
        close : bool
            Close ``store`` with the reader (False: the caller closes it).

        Example: ``with TrajectoryStore.open(path, "r") as st: reader = StudyReader.of_store(st)``.
        """
        reader = cls({r: store.path for r in store.runs()})
        reader._open[Path(store.path)] = store
        if not close:
            reader._borrowed.add(Path(store.path))
        return reader

    @classmethod
    def open(cls, out: str | os.PathLike[str], jobs: Sequence[Job] | None = None) -> StudyReader:
        """Index the stores under ``OUT/trajectories`` (those of ``jobs`` only, if given).

        Raises
        ------
        FileNotFoundError
            If ``OUT/trajectories`` (or a job's store) does not exist.
        """
        from .store import TrajectoryStore

        root = Path(out) / STORES_DIR
        if not root.is_dir():
            raise FileNotFoundError(f"{str(root)!r} does not exist: no study was run into {str(out)!r}")
        paths = [store_path(out, j) for j in jobs] if jobs is not None else sorted(root.glob("*.zarr"))
        index: dict[str, Path] = {}
        opened: dict[Path, Any] = {}  # kept open for the reader: each store opened once
        try:
            for p in paths:
                if not p.is_dir():
                    raise FileNotFoundError(f"store {str(p)!r} does not exist")
                st = opened[p] = TrajectoryStore.open(p, "r")
                for run in st.runs():
                    if run in index:
                        raise ValueError(f"run {run!r} is in two stores: {index[run]} and {p}")
                    index[run] = p
        except BaseException:
            for st in opened.values():
                st.close()
            raise
        reader = cls(index)
        reader._open.update(opened)
        return reader

    def _store(self, run: str) -> Any:
        from .store import StoreError, TrajectoryStore

        try:
            path = self._paths[run]
        except KeyError:
            raise StoreError(f"no run {run!r} in this study; runs: {len(self._paths)}") from None
        if path not in self._open:
            self._open[path] = TrajectoryStore.open(path, "r")
        return self._open[path]

    def runs(self) -> list[str]:
        """All run names, sorted."""
        return sorted(self._paths)

    def store_of(self, run: str) -> Path:
        """The store holding ``run``."""
        self._store(run)
        return self._paths[run]

    def run_info(self, run: str) -> dict[str, Any]:
        """See :meth:`conjugacy.store.TrajectoryStore.run_info` (read once per run while the
        reader is open: one analysis sees one state of each run; its first and last step from
        :meth:`steps`, read once)."""
        if run not in self._info:
            self._info[run] = self._store(run).run_info(run, steps=self.steps(run))
        return self._info[run]

    def metadata(self, run: str) -> dict[str, Any]:
        """The run's metadata (condition, seed, job and what the training recorded), from its
        attributes alone (no array read), once per run while the reader is open."""
        if run not in self._meta:
            self._meta[run] = (self._info[run]["metadata"] if run in self._info
                               else self._store(run).metadata(run))
        return self._meta[run]

    def steps(self, run: str) -> np.ndarray:
        """Recorded step indices of ``run``, int64 (n_complete,), read once per run while the
        reader is open (a read-only array)."""
        if run not in self._steps:
            steps = np.asarray(self._store(run).steps(run))
            steps.flags.writeable = False
            self._steps[run] = steps
        return self._steps[run]

    def scalars(self, run: str, name: str) -> np.ndarray:
        """Scalar series ``name`` of ``run``, float64 (n_complete,)."""
        return self._store(run).scalars(run, name)

    def read(self, params: Any = None, runs: Sequence[str] | str | None = None,
             steps: slice | None = None, *, dtype: Any = None,
             branch: str | None = None) -> np.ndarray:
        """Trajectories ``(n_runs, n_steps, n_features)`` of ``runs`` (all runs when None), in the
        order given, or their ``branch``; see :meth:`conjugacy.store.TrajectoryStore.read`."""
        names = self.runs() if runs is None else ([runs] if isinstance(runs, str) else list(runs))
        if not names:
            raise ValueError("runs must name at least one run")
        blocks = []
        for _, same_store in itertools.groupby(names, key=self._paths.get):
            runs = list(same_store)
            blocks.append(self._store(runs[0]).read(params=params, runs=runs, steps=steps,
                                                    dtype=dtype, branch=branch))
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=0)

    def close(self) -> None:
        """Close the stores this reader opened (not one given to :meth:`of_store` with
        ``close=False``)."""
        for path, st in self._open.items():
            if path not in self._borrowed:
                st.close()
        self._open.clear()
        self._borrowed.clear()
        self._info.clear()
        self._meta.clear()
        self._steps.clear()

    def __enter__(self) -> StudyReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def paths(self) -> dict[str, str]:
        """Run name -> store path (strings): enough to reopen the reader elsewhere (a Dask task)."""
        return {k: str(v) for k, v in self._paths.items()}


# ----- an experiment's run: train its studies, hand them read back to its analysis ---------------
#: The statistics options (:func:`conjugacy.analysis.summarize`'s ``stats``) that an
#: experiment's config gives :class:`ExperimentRun` by field name.
CONFIG_STATS = ("seed", "n_permutations", "n_shuffles")


@dataclass(frozen=True)
class ExperimentRun:
    """The trained studies of one :func:`run_experiment` (or the study of
    :func:`conjugacy.analysis.analyse_study`), read back, for the analysis; :meth:`pipeline` and
    :meth:`summarize` add what every study's analysis passes alike.

    Attributes
    ----------
    out : Path
        The output folder.
    client : dask.distributed.Client or None
        The session's client (None: serial).
    studies, runs, readers : dict name -> Study, StudyRun, StudyReader
        Per study (name ``""`` for an experiment of one study); the readers are open until the
        analysis returns. ``runs`` is empty when the studies were trained before (no report).
    figures : bool
        Whether the experiment draws its figures.
    trained_at : float
        ``time.perf_counter()`` when the training ended (or the analysis began).
    config : object, optional
        The experiment's config (a ``DeclaredConfig``): its :data:`CONFIG_STATS` fields are
        statistics options and ``config.to_dict()`` the field ``config``; None: neither.

    Examples
    --------
    What an experiment's ``analyse`` receives from :func:`run_experiment` (random walks instead
    of networks, :mod:`conjugacy.analysis.demo`):

    >>> import tempfile
    >>> from conjugacy.analysis.demo import random_walk_study
    >>> seen = {}
    >>> def analyse(run):
    ...     seen.update(studies=list(run.studies), n_runs=len(run.reader.runs()),
    ...                 trained=len(run.training()["trained"]))
    ...     return run.figures
    >>> with tempfile.TemporaryDirectory() as out:
    ...     run_experiment(random_walk_study(seeds=range(2), n_records=8), out, analyse)
    True
    >>> seen
    {'studies': [''], 'n_runs': 8, 'trained': 4}
    """

    out: Path
    client: Any
    studies: dict[str, Study]
    runs: dict[str, StudyRun]
    readers: dict[str, StudyReader]
    figures: bool
    trained_at: float
    config: Any = None

    @property
    def reader(self) -> StudyReader:
        """The reader of an experiment of one study."""
        return self.readers[""]

    def training(self) -> dict[str, Any]:
        """``results.json``'s ``training``: :meth:`StudyRun.timing` without the total (that is
        ``timing_seconds["training"]``), per study name when there are several; None without
        a training report."""
        per = {name: {k: v for k, v in run.timing().items() if k != "training"}
               for name, run in self.runs.items()}
        return per[""] if "" in per else (per or None)

    def summarize(self, spectra: Mapping[str, Sequence[Any]], **kwargs: Any) -> Any:
        """:func:`conjugacy.analysis.summarize` of spectra the experiment fitted, with what
        every experiment passes alike (:meth:`common`)."""
        from .analysis import summarize

        return summarize(spectra, **self.common(kwargs))

    def pipeline(self, groups: Sequence[Any], spectrum: Any, *,
                 data: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """:func:`conjugacy.analysis.run_pipeline` of the lone study's runs on the session's
        client, with :meth:`common`, ``experiment`` (the study's name), ``provenance``
        (:func:`provenance` of the study and ``data``) and the time since the training as
        ``timing["reading_and_settings"]``, unless given."""
        from .analysis import run_pipeline

        study = self.studies[""]
        kwargs.setdefault("experiment", study.name)
        kwargs.setdefault("provenance", provenance(study, data=data))
        kwargs["timing"] = {"reading_and_settings": time.perf_counter() - self.trained_at,
                            **(kwargs.get("timing") or {})}
        return run_pipeline(self.reader, groups, spectrum, client=self.client,
                            **self.common(kwargs))

    def common(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """``kwargs`` of :func:`conjugacy.analysis.summarize` with ``out``; under ``stats`` the
        config's :data:`CONFIG_STATS` fields; ``config`` (``config.to_dict()``, when there is a
        config) and ``training`` (:meth:`training`) added to ``fields``; the training's wall time
        (when reported) under ``timing``. What ``kwargs`` gives wins, but for the two fields."""
        config = self.config
        stats = {k: getattr(config, k) for k in CONFIG_STATS if hasattr(config, k)}
        timing = {"training": sum(run.seconds for run in self.runs.values())} if self.runs else {}
        return {**kwargs, "out": self.out,
                "stats": {**stats, **(kwargs.get("stats") or {})},
                "fields": {**({} if config is None else {"config": config.to_dict()}),
                           **(kwargs.get("fields") or {}), "training": self.training()},
                "timing": {**timing, **(kwargs.get("timing") or {})}}


def run_experiment(studies: Study | Mapping[str, Study], out_dir: str | os.PathLike[str],
                   analyse: Callable[[ExperimentRun], Any], *, progress: bool = False,
                   figures: bool = True, workers: int | None = None, scheduler: str | None = None,
                   processes: bool = True, experiment: str | None = None) -> Any:
    """Train an experiment's studies, then hand them, read back, to its analysis: the ``run``
    of every trained experiment (:mod:`conjugacy.experiments`), whose parameters of the same
    names mean what they mean here.

    Parameters
    ----------
    studies : Study or mapping name -> Study
        One study, trained into ``out_dir``, or several, each into ``out_dir/<name>`` (the CNN
        study: one per architecture). The session runs with the first study's ``threads``.
    out_dir : str or Path
        The output folder, created if needed. Receives per study ``study.json``, one store per
        job under ``trajectories/`` (weights and scalars) and, for a resumable study,
        ``checkpoints/``; then ``results.json`` (schema ``"conjugacy.results/2"``) and the
        figures (PNG and SVG). Calling again resumes: complete jobs are not trained again,
        interrupted ones are retrained or continued from their checkpoint (:func:`run_study`),
        other training settings are refused; the spectra and statistics are always recomputed
        from the stores.
    analyse : callable ExperimentRun -> Results
        The experiment's second half, typically through :meth:`ExperimentRun.pipeline`.
    progress : bool
        Rich progress bars: one over the jobs and, when serial, one per job.
    figures : bool
        Whether ``analyse`` draws the experiment's figures (:attr:`ExperimentRun.figures`;
        they need matplotlib).
    workers, scheduler, processes
        Run the jobs, and the spectra of :meth:`ExperimentRun.pipeline`, on Dask: a new
        ``LocalCluster`` of ``workers`` single-threaded workers (threads of this process with
        ``processes=False``) or the running scheduler at ``scheduler`` (:func:`dask_client`).
        The results are the same as serially: every job is seeded from its own (condition,
        seed), so a run is deterministic given the config on one machine and device.
    experiment : str, optional
        The experiment's name, the ``experiment`` of its ``results.json``: an ``out_dir`` that
        another experiment wrote is refused before any training (:func:`prepare_out_dir`).
        Default: the name of the one study; required with several studies.

    Returns
    -------
    What ``analyse`` returns.

    Raises
    ------
    TypeError
        ``out_dir`` is None.
    NotADirectoryError
        ``out_dir`` or a parent is a file.
    ValueError
        ``out_dir`` holds another experiment's results (:func:`check_experiment_folder`),
        another study or other training settings (:func:`check_stamp`); both or a bad one of
        ``workers`` and ``scheduler`` (:func:`dask_client`).

    Examples
    --------
    Random walks instead of networks, 2 conditions x 4 seeds (:mod:`conjugacy.analysis.demo`):

    >>> import tempfile
    >>> from conjugacy.analysis.demo import random_walk_study
    >>> from conjugacy.analysis.groups import study_groups
    >>> study = random_walk_study(seeds=range(4), n_records=12)
    >>> def analyse(run):
    ...     return run.pipeline(study_groups(study), {"delays": 1, "rank": 2}, params="w",
    ...                         loss=None, stats={"seed": 0, "n_permutations": 99})
    >>> with tempfile.TemporaryDirectory() as out:
    ...     res = run_experiment(study, out, analyse)
    >>> res["experiment"], res["training"]["trained"][:2], res.verdicts
    ('demo', ['flat-seed0', 'up-seed0'], {'flat-up': 'not conjugate'})
    """
    if out_dir is None:
        raise TypeError("out_dir must be a folder to train the studies into, got None")
    named = {"": studies} if isinstance(studies, Study) else dict(studies)
    first = next(iter(named.values()))  # the experiment's make_study checked its config
    if experiment is None and len(named) > 1:
        raise TypeError("run_experiment of several studies needs experiment=, the name its "
                        "results.json gives (e.g. 'cnn')")
    with experiment_session(first.config, type(first.config), out_dir, threads=first.threads,
                            workers=workers, scheduler=scheduler, processes=processes,
                            experiment=experiment or first.name) as (out, client):
        runs = {name: run_study(study, out / name, client=client, progress=progress)
                for name, study in named.items()}
        trained_at = time.perf_counter()
        with contextlib.ExitStack() as stack:
            readers = {name: stack.enter_context(run.reader()) for name, run in runs.items()}
            return analyse(ExperimentRun(out, client, named, runs, readers, figures, trained_at,
                                         first.config))
