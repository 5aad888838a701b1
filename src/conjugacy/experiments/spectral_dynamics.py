"""Spectral dynamics of weights: the report over any store, and a quick reproduction.

Two parts (companion paper, ``SPEC.md`` section 6):

1. :func:`spectral_dynamics_report` reads every checkpoint run (``<run>.checkpoints``, written by
   :class:`conjugacy.torch.snapshots.CheckpointRecorder`) of a store or of a study's output
   folder, computes every measure with :func:`conjugacy.spectral_dynamics.checkpoint_dynamics`
   (singular values, effective rank, agreement with the final checkpoint, alignment of the layer
   pairs that chain; skipped pairs are listed with their reason), aggregates runs of one condition
   (mean +- std over seeds), reads linear-mode-connectivity branches (runs with ``lmc`` metadata),
   draws the figures and writes ``results.json``. NumPy, Zarr and Matplotlib only: no torch.
2. :func:`run` (``conjugacy reproduce spectral-dynamics``) trains a 4-layer MLP on the MNIST 5k
   sample through the shared study protocol (:mod:`conjugacy.study`): true labels, random labels
   and true labels with weight decay, several seeds, checkpoints on the companion schedule; and
   trunks with branches split at several steps for the barrier. It then runs the report and tests
   the paper's four findings (:func:`evaluate_findings`), saying which hold.

Torch is imported only inside the training functions.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from .._checks import Choice, Float, Int, Param, validate
from ..spectral_dynamics import (
    TOP_K,
    checkpoint_dynamics,
    singular_vector_agreement,
)

__all__ = [
    "SCALES",
    "SpectralConfig",
    "checkpoint_runs",
    "evaluate_findings",
    "open_source",
    "read_checkpoints",
    "run",
    "spectral_dynamics_report",
    "write_report",
]

CHECKPOINT_SUFFIX = ".checkpoints"  # = conjugacy.torch.snapshots.CHECKPOINT_SUFFIX (no torch here)


# ============================================================================ reading
def open_source(source: Any) -> Any:
    """A reader over ``source``: a store path, a study output folder (``OUT/trajectories``), or
    an open :class:`~conjugacy.store.TrajectoryStore` / :class:`~conjugacy.study.StudyReader`.

    Raises
    ------
    FileNotFoundError
        If the path does not exist or is neither a store nor a study folder.
    """
    if hasattr(source, "runs") and hasattr(source, "read") and hasattr(source, "run_info"):
        return source
    if not isinstance(source, str | os.PathLike):
        raise TypeError(f"source must be a path, a TrajectoryStore or a StudyReader, got {source!r}")
    p = Path(source)
    if not p.exists():
        raise FileNotFoundError(f"{str(p)!r} does not exist")
    if (p / "trajectories").is_dir():
        from ..study import StudyReader

        return StudyReader.open(p)
    if (p / "zarr.json").is_file():
        from ..store import TrajectoryStore

        return TrajectoryStore.open(p, "r")
    raise FileNotFoundError(
        f"{str(p)!r} is neither a trajectory store (no zarr.json) nor a study output folder (no "
        "trajectories/ folder)"
    )


def checkpoint_runs(reader: Any) -> dict[str, str]:
    """Checkpoint runs of a reader: ``{checkpoint_run: the run it belongs to}``, sorted."""
    out = {}
    for r in reader.runs():
        meta = reader.run_info(r)["metadata"]
        if meta.get("kind") == "checkpoints":
            out[r] = str(meta.get("checkpoints_of", r.removesuffix(CHECKPOINT_SUFFIX)))
    return out


def read_checkpoints(reader: Any, run: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Steps ``(n_ckpt,)`` and ``{name: (n_ckpt, *shape)}`` of a checkpoint run, in recorded order."""
    info = reader.run_info(run)
    steps = np.asarray(reader.steps(run))
    weights = {}
    for name, p in info["parameters"].items():
        flat = reader.read(params=_glob_escape(name), runs=run)[0]
        weights[name] = flat.reshape(len(steps), *p["shape"])
    return steps, weights


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _group_key(meta: Mapping[str, Any]) -> tuple[str, Any]:
    return str(meta.get("condition", "all")), meta.get("seed")


# ============================================================================ the report
def _stats(arrays: Sequence[np.ndarray]) -> dict[str, list[float]]:
    a = np.stack(arrays)
    return {"mean": a.mean(axis=0).tolist(), "std": a.std(axis=0).tolist()}


def _lmc_section(reader: Any, max_rank: int, k: int) -> dict[str, Any] | None:
    """Barrier (from run metadata) and endpoint agreement of branch pairs (``lmc`` metadata)."""
    pairs: dict[str, list[str]] = {}
    metas = {}
    for r in reader.runs():
        meta = reader.run_info(r)["metadata"]
        if isinstance(meta.get("lmc"), Mapping):
            pairs.setdefault(str(meta["lmc"]["pair"]), []).append(r)
            metas[r] = meta
    if not pairs:
        return None
    rows = []
    for pair, runs in sorted(pairs.items()):
        if len(runs) != 2:
            continue
        a, b = sorted(runs)
        lm = metas[a]["lmc"]
        info = reader.run_info(a)
        agreement, diag = {}, {}
        for name, p in info["parameters"].items():
            if len(p["shape"]) < 2:
                continue
            wa = reader.read(params=_glob_escape(name), runs=a)[0, -1].reshape(p["shape"])
            wb = reader.read(params=_glob_escape(name), runs=b)[0, -1].reshape(p["shape"])
            res = singular_vector_agreement(wa, wb, k=k)
            d = np.diagonal(res.matrix)[:max_rank]
            agreement[name], diag[name] = float(res.score), d.tolist()
        rows.append({
            "pair": pair, "runs": [a, b], "seed": metas[a].get("seed"),
            "split_step": int(lm["split_step"]), "final_step": int(lm["final_step"]),
            "barrier_loss": float(lm["barrier_loss"]), "barrier_error": float(lm["barrier_error"]),
            "losses": lm.get("losses"), "errors": lm.get("errors"),
            "sva_score": agreement, "sva_diagonal": diag,
            "mean_sva_score": float(np.mean(list(agreement.values()))) if agreement else None,
        })
    rows.sort(key=lambda r: (r["split_step"], str(r["seed"])))
    by_split: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        by_split.setdefault(r["split_step"], []).append(r)
    summary: dict[str, Any] = {"split_steps": sorted(by_split)}
    for key in ("barrier_loss", "barrier_error", "mean_sva_score"):
        summary[key] = {
            "mean": [float(np.mean([r[key] for r in by_split[s]])) for s in sorted(by_split)],
            "std": [float(np.std([r[key] for r in by_split[s]])) for s in sorted(by_split)],
        }
    return {"pairs": rows, "by_split": summary}


def spectral_dynamics_report(
    source: Any,
    out: str | os.PathLike[str] | None = None,
    *,
    max_rank: int = 100,
    k: int = TOP_K,
    draw: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every spectral-dynamics measure of the checkpoint runs of ``source``, figures, results.json.

    Parameters
    ----------
    source : path, TrajectoryStore or StudyReader
        A store, or a study output folder (its ``trajectories/*.zarr`` are read as one).
    out : path, optional
        Folder for ``results.json`` and ``figures/`` (created); nothing is written when None.
    max_rank : int
        Diagonals (agreement, alignment) and singular values kept for the first ``max_rank``
        directions (paper: 100).
    k : int
        Diagonal entries averaged into the scores (paper: 10).
    draw : bool
        Draw the figures (needs Matplotlib) when ``out`` is given.
    extra : mapping, optional
        Added to the results (e.g. the experiment's findings and settings).

    Returns
    -------
    dict
        ``runs`` (per checkpoint run: steps, measures, layer chain with skipped pairs, condition
        and seed), ``groups`` (per condition: mean and std over runs with the same steps),
        ``lmc`` (barrier and endpoint agreement per split step, when the source has branches),
        ``timing``, ``figures`` (paths written).

    Raises
    ------
    ValueError
        If the source holds neither checkpoint runs nor branch pairs.
    """
    from ..results import package_info

    t0 = time.perf_counter()
    owns = not (hasattr(source, "runs") and hasattr(source, "read"))
    reader = open_source(source)
    try:
        ck_runs = checkpoint_runs(reader)
        runs: dict[str, Any] = {}
        svd_seconds = 0.0
        raw: dict[str, Any] = {}
        for ck, of in ck_runs.items():
            meta = reader.run_info(ck)["metadata"]
            steps, weights = read_checkpoints(reader, ck)
            if len(steps) == 0:
                continue
            dyn = checkpoint_dynamics(weights, steps, max_rank=max_rank, k=k)
            svd_seconds += dyn.svd_seconds
            d = dyn.to_dict()
            d["singular_values"] = {n: v[:, :max_rank].tolist()
                                    for n, v in dyn.singular_values.items()}
            condition, seed = _group_key(meta)
            scal = {}
            info = reader.run_info(ck)
            for s in info["scalars"]:
                scal[s] = reader.scalars(ck, s).tolist()
            runs[ck] = {"of": of, "condition": condition, "seed": seed, "scalars": scal, **d}
            raw[ck] = dyn
        lmc = _lmc_section(reader, max_rank, k)
    finally:
        if owns:
            reader.close()
    if not runs and lmc is None:
        raise ValueError(
            f"{source!s} holds no checkpoint runs (record them with "
            "conjugacy.torch.snapshots.CheckpointRecorder) and no branch pairs"
        )
    groups: dict[str, Any] = {}
    by_cond: dict[str, list[str]] = {}
    for ck, r in runs.items():
        by_cond.setdefault(r["condition"], []).append(ck)
    for cond, members in sorted(by_cond.items()):
        first = raw[members[0]]
        same = [m for m in members if np.array_equal(raw[m].steps, first.steps)
                and list(raw[m].effective_rank) == list(first.effective_rank)]
        g: dict[str, Any] = {"runs": members, "aggregated_runs": same,
                             "steps": first.steps.tolist()}
        if len(same) < len(members):
            g["note"] = ("runs with other checkpoint steps or layers are left out of the mean: "
                         + ", ".join(sorted(set(members) - set(same))))
        for field_ in ("effective_rank", "sva_score", "alignment_score"):
            g[field_] = {name: _stats([getattr(raw[m], field_)[name] for m in same])
                         for name in getattr(first, field_)}
        g["sva_diagonal"] = {name: np.mean([raw[m].sva_diagonal[name] for m in same],
                                           axis=0).tolist() for name in first.sva_diagonal}
        g["alignment_diagonal"] = {name: np.mean([raw[m].alignment_diagonal[name] for m in same],
                                                 axis=0).tolist()
                                   for name in first.alignment_diagonal}
        g["chain"] = first.chain.to_dict()
        groups[cond] = g
    results: dict[str, Any] = {
        "kind": "spectral_dynamics",
        "source": str(getattr(source, "path", source)),
        "settings": {"max_rank": max_rank, "k": k},
        "definitions": {
            "effective_rank": "exp(entropy of s / sum(s)) / min(m, n) (Roy & Vetterli 2007)",
            "sva": "|<u_j(t), u_j(T)> <v_j(t), v_j(T)>|, T = last checkpoint; score = mean of "
                   f"the first {k} (companion paper eq. 5)",
            "alignment": "|V_next^T U_i| diagonal, centre kernel position for convolutions; "
                         f"score = mean of the first {k} (eq. 3, 4)",
            "barrier": "max over interior points of loss - straight line between the endpoint "
                       "losses, 11 points, not clipped (eq. 6)",
        },
        "runs": runs,
        "groups": groups,
        "lmc": lmc,
        "package": package_info(),
    }
    if extra:
        results.update(dict(extra))
    results["timing"] = {"report_seconds": time.perf_counter() - t0, "svd_seconds": svd_seconds}
    if out is not None:
        write_report(results, out, draw=draw)
    return results


def write_report(results: dict[str, Any], out: str | os.PathLike[str], *, draw: bool = True,
                 ) -> Path:
    """Draw the figures of a report into ``OUT/figures/`` (PNG + SVG) and write
    ``OUT/results.json`` (atomically); ``results["figures"]`` lists the files. Returns the JSON
    path."""
    from ..results import write_json

    out = Path(out)
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            raise NotADirectoryError(f"output folder {str(out)!r}: {str(parent)!r} is a file")
    out.mkdir(parents=True, exist_ok=True)
    figures: list[str] = []
    if draw:
        from ..plots.spectral_dynamics import draw_all

        (out / "figures").mkdir(exist_ok=True)
        figures = [str(p) for p in draw_all(results, out / "figures")]
    results["figures"] = figures
    return write_json(out / "results.json", results)


# ============================================================================ the reproduction
@dataclass(frozen=True)
class SpectralConfig:
    """Settings of the quick reproduction (``conjugacy reproduce spectral-dynamics``).

    A 4-layer MLP ``784 - width - width - width - 10`` (ReLU, biases; the companion paper's random
    label MLP, appendix D.8) trained by SGD with momentum at a constant learning rate on the MNIST
    5k sample (4,000 train / 1,000 test; or the 8x8 digits with ``data="digits"``).

    Attributes
    ----------
    conditions : tuple of str
        Among ``"true"`` (true labels), ``"random"`` (labels drawn uniformly, fixed per seed) and
        ``"true-wd"`` (true labels, ``weight_decay``).
    n_seeds, first_seed : int
    width, batch_size, lr, momentum, weight_decay, epochs
        Training; ``steps_per_epoch = n_train // batch_size`` (the remainder is dropped).
    split_steps : tuple of int
        Steps at which branches leave the trunk (LMC experiment); empty: no branches.
    lmc_seeds : int
        Trunks (seeds) of the LMC experiment, each with 2 branches per split step.
    lmc_epochs : int
        Length of trunk + branch, in epochs.
    lmc_lr : float
        Learning rate of trunks and branches (momentum as above). In a probe (seed 0, two
        branches from the initialization, 10 epochs) they were already linearly connected at
        ``lr = 0.05`` (barrier -0.007 on the MNIST sample), leaving nothing to test, and not at 0.2
        (barrier 0.73); the companion paper's VGG uses 0.1.
    data : {"mnist-sample", "digits"}
    threads : int
    """

    conditions: tuple[str, ...] = ("true", "random", "true-wd")
    n_seeds: int = 3
    first_seed: int = 0
    width: int = 256
    batch_size: int = 125
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-3
    epochs: int = 40
    split_steps: tuple[int, ...] = (0, 6, 32, 96, 320)
    lmc_seeds: int = 2
    lmc_epochs: int = 20
    lmc_lr: float = 0.2
    data: str = "mnist-sample"
    threads: int = 1

    #: The domain of every field, declared once (:func:`conjugacy._checks.validate`; the options
    #: of ``conjugacy reproduce spectral-dynamics`` take their bounds from it).
    constraints: ClassVar[Mapping[str, Param]] = MappingProxyType({
        "conditions": Param("tuple", item=Choice("true", "random", "true-wd"), nonempty=True,
                            distinct=True),
        "n_seeds": Int(1),
        "first_seed": Int(0),
        "width": Int(1),
        "batch_size": Int(1),
        "lr": Float(0, open_minimum=True),
        "momentum": Float(0),
        "weight_decay": Float(0),
        "epochs": Int(1),
        "split_steps": Param("tuple", item=Int(0), distinct=True),
        "lmc_seeds": Int(1),
        "lmc_epochs": Int(1),
        "lmc_lr": Float(0, open_minimum=True),
        "data": Choice("mnist-sample", "digits"),
        "threads": Int(1),
    })

    def __post_init__(self) -> None:
        validate(self, self.constraints)
        object.__setattr__(self, "split_steps", tuple(sorted(self.split_steps)))

    def with_overrides(self, **kw: Any) -> SpectralConfig:
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **kw)


#: Presets: ``quick`` (about 10 minutes on 2 cores) and ``tiny`` (seconds, for tests).
SCALES: dict[str, SpectralConfig] = {
    "quick": SpectralConfig(),
    "tiny": SpectralConfig(n_seeds=2, width=16, batch_size=100, epochs=2, split_steps=(0, 8),
                           lmc_seeds=1, lmc_epochs=2, data="digits"),
}


_DATA_CACHE: dict[str, Any] = {}


def _load(config: SpectralConfig) -> Any:
    if config.data not in _DATA_CACHE:
        from ..data import load_digits, load_mnist_sample

        _DATA_CACHE[config.data] = (load_mnist_sample(test_fraction=0.2, seed=0)
                                    if config.data == "mnist-sample" else load_digits())
    return _DATA_CACHE[config.data]


def _steps_per_epoch(config: SpectralConfig, n_train: int) -> int:
    spe = n_train // config.batch_size
    if spe < 1:
        raise ValueError(
            f"batch_size {config.batch_size} is larger than the training set ({n_train} images)"
        )
    return spe


def _tensors(config: SpectralConfig, condition: str, seed: int) -> dict[str, Any]:
    import torch

    ds = _load(config)
    x = torch.tensor(np.array(ds.features("train"), dtype=np.float32))
    y = torch.tensor(np.array(ds.labels("train"), dtype=np.int64))
    if condition == "random":
        rng = np.random.default_rng([seed, 7919])
        y = torch.tensor(rng.integers(0, ds.n_classes, size=len(y)), dtype=torch.int64)
    xt = torch.tensor(np.array(ds.features("test"), dtype=np.float32))
    yt = torch.tensor(np.array(ds.labels("test"), dtype=np.int64))
    return {"x": x, "y": y, "xt": xt, "yt": yt, "n_in": x.shape[1], "n_out": ds.n_classes}


def _mlp(n_in: int, width: int, n_out: int, seed: int) -> Any:
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(n_in, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                             nn.Linear(width, width), nn.ReLU(), nn.Linear(width, n_out))


class _Batches:
    """Seeded batch order: a new permutation every epoch, remainder dropped."""

    def __init__(self, n: int, batch_size: int, seed: Sequence[int]) -> None:
        import torch

        self.n, self.bs = n, batch_size
        self.g = torch.Generator().manual_seed(int(np.random.SeedSequence(list(seed))
                                                   .generate_state(1)[0]))
        self.perm = None
        self.pos = n

    def next(self) -> Any:
        import torch

        if self.pos + self.bs > self.n:
            self.perm = torch.randperm(self.n, generator=self.g)
            self.pos = 0
        idx = self.perm[self.pos : self.pos + self.bs]
        self.pos += self.bs
        return idx


def _evaluate(model: Any, x: Any, y: Any) -> tuple[float, float]:
    import torch
    from torch.nn import functional as F

    with torch.no_grad():
        out = model(x)
        return float(F.cross_entropy(out, y)), float((out.argmax(1) == y).float().mean())


def _train_job(job: Any, ctx: Any) -> dict[str, Any]:
    """Study training function: a condition run with checkpoints, or a pair of LMC branches."""
    if job.params.get("kind") == "lmc":
        return _train_lmc(job, ctx)
    import torch
    from torch.nn import functional as F

    from ..torch import Recorder
    from ..torch.snapshots import CheckpointRecorder, checkpoint_run_name

    config: SpectralConfig = ctx.config
    cond, seed = job.condition, int(job.seed)
    t = _tensors(config, cond, seed)
    spe = _steps_per_epoch(config, len(t["y"]))
    n_steps = spe * config.epochs
    model = _mlp(t["n_in"], config.width, t["n_out"], seed)
    wd = config.weight_decay if cond == "true-wd" else 0.0
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=wd)
    run = job.run_names[0]
    if checkpoint_run_name(run) in ctx.store.runs():  # left by an interrupted attempt
        ctx.store.delete_run(checkpoint_run_name(run))
    meta = {**dict(ctx.metadata), "labels": "random" if cond == "random" else "true",
            "weight_decay": wd}
    batches = _Batches(len(t["y"]), config.batch_size, [seed, 1])
    last = list(model.named_parameters())[-2][0]  # the output layer's weight
    t0 = time.perf_counter()
    with Recorder(ctx.store, run, model, last, optimizer=opt, metadata=meta) as rec, \
            CheckpointRecorder.beside(rec, "companion", steps_per_epoch=spe,
                                      n_epochs=config.epochs, metadata=meta) as ck:
        loss = float("nan")
        for step in range(n_steps + 1):
            if step:
                idx = batches.next()
                opt.zero_grad()
                out = F.cross_entropy(model(t["x"][idx]), t["y"][idx])
                out.backward()
                opt.step()
                loss = float(out.detach())
            rec.record(step, loss=loss)
            if ck.due(step):
                tr_loss, tr_acc = _evaluate(model, t["x"], t["y"])
                te_loss, te_acc = _evaluate(model, t["xt"], t["yt"])
                ck.record(step, train_loss=tr_loss, train_accuracy=tr_acc, test_loss=te_loss,
                          test_accuracy=te_acc)
    return {"seconds": time.perf_counter() - t0, "final_train_accuracy": tr_acc,
            "final_test_accuracy": te_acc, "n_steps": n_steps}


def _train_lmc(job: Any, ctx: Any) -> dict[str, Any]:
    """A trunk trained to ``split_step``, then two branches (other batch orders) to the end."""
    import copy

    import torch
    from torch.nn import functional as F

    from ..spectral_dynamics import barrier
    from ..torch import Recorder
    from ..torch.snapshots import interpolation_losses

    config: SpectralConfig = ctx.config
    seed, split = int(job.seed), int(job.params["split_step"])
    t = _tensors(config, "true", seed)
    spe = _steps_per_epoch(config, len(t["y"]))
    final = spe * config.lmc_epochs
    model = _mlp(t["n_in"], config.width, t["n_out"], seed)
    opt = torch.optim.SGD(model.parameters(), lr=config.lmc_lr, momentum=config.momentum)
    trunk = _Batches(len(t["y"]), config.batch_size, [seed, 1])  # the same order for every split
    for _ in range(split):
        idx = trunk.next()
        opt.zero_grad()
        F.cross_entropy(model(t["x"][idx]), t["y"][idx]).backward()
        opt.step()
    ends = []
    t0 = time.perf_counter()
    for b, run in enumerate(job.run_names):
        m = copy.deepcopy(model)
        o = torch.optim.SGD(m.parameters(), lr=config.lmc_lr, momentum=config.momentum)
        o.load_state_dict(opt.state_dict())
        order = _Batches(len(t["y"]), config.batch_size, [seed, 2, split, b])
        with Recorder(ctx.store, run, m, "*", optimizer=o, metadata=dict(ctx.metadata)) as rec:
            rec.record(split)
            for _ in range(split, final):
                idx = order.next()
                o.zero_grad()
                F.cross_entropy(m(t["x"][idx]), t["y"][idx]).backward()
                o.step()
            rec.record(final)
        ends.append(m)
    data = [(t["x"][i : i + 1000], t["y"][i : i + 1000]) for i in range(0, len(t["y"]), 1000)]
    res = interpolation_losses(ends[0], ends[1], F.cross_entropy, data, n_points=11)
    assert res.errors is not None
    lmc = {"pair": job.key, "split_step": split, "final_step": final,
           "barrier_loss": barrier(res.losses), "barrier_error": barrier(res.errors),
           "losses": res.losses.tolist(), "errors": res.errors.tolist(),
           "alphas": res.alphas.tolist(), "bn_refit": "no batch norm in the MLP"}
    for run in job.run_names:
        ctx.store.update_metadata(run, {"lmc": lmc})
    return {"seconds": time.perf_counter() - t0, **{k: lmc[k] for k in
                                                    ("split_step", "barrier_loss", "barrier_error")}}


def _study(config: SpectralConfig) -> Any:
    from ..study import Job, Study

    ds = _load(config)
    spe = _steps_per_epoch(config, len(ds.labels("train")))
    conditions = {c: {"kind": "condition", "labels": "random" if c == "random" else "true",
                      "weight_decay": config.weight_decay if c == "true-wd" else 0.0}
                  for c in config.conditions}
    seeds = list(range(config.first_seed, config.first_seed + config.n_seeds))
    extra = []
    final = spe * config.lmc_epochs
    for s in range(config.first_seed, config.first_seed + config.lmc_seeds):
        for split in config.split_steps:
            if split >= final:
                raise ValueError(
                    f"split step {split} is not before the end of the LMC runs ({final} steps = "
                    f"{config.lmc_epochs} epochs x {spe})"
                )
            extra.append(Job(f"split{split}", s, {"kind": "lmc", "split_step": split},
                             f"lmc-split{split}-seed{s}", 2, 2))
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k != "threads"}
    return Study(name="spectral-dynamics", conditions=conditions, seeds=seeds, n_replicas=1,
                 n_records=spe * config.epochs + 1, train=_train_job, settings=settings,
                 config=config, extra_jobs=extra, threads=config.threads)


def _settle_step(diag: np.ndarray, steps: np.ndarray, threshold: float) -> np.ndarray:
    """First checkpoint step after which each direction's agreement stays >= threshold."""
    ok = diag >= threshold  # (n_ckpt, r)
    stays = np.flip(np.logical_and.accumulate(np.flip(ok, 0), axis=0), 0)
    first = np.argmax(stays, axis=0)
    return steps[first].astype(float)


def evaluate_findings(results: Mapping[str, Any], *, settle_threshold: float = 0.9,
                      min_barrier_error: float = 0.005, min_barrier_loss: float = 0.01,
                      ) -> dict[str, Any]:
    """Test the companion paper's four findings on a report of the reproduction.

    1. ``true_vs_random``: final effective rank of the middle layers (all but the first and last
       weight) is lower with true labels than with random labels (mean over seeds);
       ``alignment_persists`` (reported beside it): the alignment score of the pairs between middle
       layers keeps a larger fraction of its maximum at the end with true labels.
    2. ``weight_decay``: final effective rank of every layer is lower with weight decay.
    3. ``top_settle_first``: with true labels, top singular directions settle earlier: the step
       after which each direction's agreement with the final checkpoint stays above
       ``settle_threshold``, averaged over the top 10 vs the bottom 10 of the first 100, middle
       layers, mean over seeds.
    4. ``lmc``: later splits give a smaller loss barrier and higher endpoint top-10 agreement
       (Spearman correlation with the split step < 0 and > 0 respectively). A barrier only counts
       as present when some split's mean error barrier exceeds ``min_barrier_error`` or its mean
       loss barrier exceeds ``min_barrier_loss``; without one (every split already linearly
       connected) the barrier half cannot be tested and ``holds`` is None, with the agreement half
       reported on its own (``agreement_rises``).

    Returns
    -------
    dict
        Per finding: the numbers, and ``holds`` (bool) or ``None`` when its conditions are
        missing.
    """
    from scipy.stats import spearmanr

    groups = results.get("groups", {})
    out: dict[str, Any] = {}

    def final_erank(cond: str) -> dict[str, float]:
        g = groups[cond]
        return {n: float(v["mean"][-1]) for n, v in g["effective_rank"].items()}

    layers = list(groups[next(iter(groups))]["effective_rank"]) if groups else []
    middle = layers[1:-1]
    if "true" in groups and "random" in groups and middle:
        a, b = final_erank("true"), final_erank("random")
        out["true_vs_random"] = {
            "middle_layers": middle,
            "true": {n: a[n] for n in middle}, "random": {n: b[n] for n in middle},
            "holds": bool(all(a[n] < b[n] for n in middle)),
        }
        inner = [p for p in groups["true"]["alignment_score"]
                 if all(x in middle for x in p.split("->"))]
        if inner and all(p in groups["random"]["alignment_score"] for p in inner):
            kept = {}
            for cond in ("true", "random"):
                kept[cond] = {}
                for p in inner:
                    m = np.asarray(groups[cond]["alignment_score"][p]["mean"])
                    kept[cond][p] = {"max": float(m.max()), "final": float(m[-1]),
                                     "final_over_max": float(m[-1] / m.max())}
            out["true_vs_random"]["alignment_persists"] = {
                **kept,
                "holds": bool(all(kept["true"][p]["final_over_max"]
                                  > kept["random"][p]["final_over_max"] for p in inner)),
            }
    else:
        out["true_vs_random"] = {"holds": None, "note": "needs conditions 'true' and 'random'"}
    if "true" in groups and "true-wd" in groups:
        a, b = final_erank("true"), final_erank("true-wd")
        out["weight_decay"] = {"true": a, "true-wd": b,
                               "holds": bool(all(b[n] < a[n] for n in layers))}
    else:
        out["weight_decay"] = {"holds": None, "note": "needs conditions 'true' and 'true-wd'"}
    true_runs = [r for r in results.get("runs", {}).values() if r["condition"] == "true"]
    if true_runs and middle:
        top, bottom = [], []
        for r in true_runs:
            steps = np.asarray(r["steps"], dtype=float)
            for n in middle:
                d = np.asarray(r["sva_diagonal"][n])
                settle = _settle_step(d, steps, settle_threshold)
                top.append(settle[:10].mean())
                bottom.append(settle[-10:].mean())
        out["top_settle_first"] = {
            "threshold": settle_threshold, "top10_mean_step": float(np.mean(top)),
            "bottom10_mean_step": float(np.mean(bottom)),
            "holds": bool(np.mean(top) < np.mean(bottom)),
        }
    else:
        out["top_settle_first"] = {"holds": None, "note": "needs condition 'true'"}
    lmc = results.get("lmc")
    if lmc and len(lmc["by_split"]["split_steps"]) >= 3:
        rows = lmc["pairs"]
        splits = [r["split_step"] for r in rows]
        rb = float(spearmanr(splits, [r["barrier_loss"] for r in rows]).statistic)
        ra = float(spearmanr(splits, [r["mean_sva_score"] for r in rows]).statistic)
        bs = lmc["by_split"]
        present = bool(max(bs["barrier_error"]["mean"]) > min_barrier_error
                       or max(bs["barrier_loss"]["mean"]) > min_barrier_loss)
        entry = {"spearman_split_vs_barrier": rb, "spearman_split_vs_top10_agreement": ra,
                 "barrier_present": present, "min_barrier_error": min_barrier_error,
                 "min_barrier_loss": min_barrier_loss, "agreement_rises": bool(ra > 0),
                 "by_split": bs, "holds": bool(rb < 0 and ra > 0) if present else None}
        if not present:
            entry["note"] = ("no barrier at any split step: every pair of branches is already "
                             "linearly connected, so 'later splits have smaller barriers' cannot "
                             "be tested; only the agreement half is")
        out["lmc"] = entry
    else:
        out["lmc"] = {"holds": None, "note": "needs branch pairs at 3 or more split steps"}
    return out


def run(
    config: SpectralConfig,
    out: str | os.PathLike[str],
    *,
    progress: bool = False,
    draw: bool = True,
) -> dict[str, Any]:
    """Train the study (resuming complete jobs), run the report, test the findings.

    Writes into ``out``: ``study.json``, ``trajectories/<job>.zarr``, ``results.json`` (the
    report, the findings, the config, timing) and ``figures/``.

    Returns
    -------
    dict
        The results written to ``results.json``.
    """
    from ..study import provenance, run_study

    if not isinstance(config, SpectralConfig):
        raise TypeError(f"config must be a SpectralConfig, got {type(config).__name__}")
    t0 = time.perf_counter()
    study = _study(config)
    done = run_study(study, out, progress=progress)
    t1 = time.perf_counter()
    results = spectral_dynamics_report(out, None, draw=False)
    findings = evaluate_findings(results)
    ds = _load(config)
    extra = {
        "experiment": "spectral-dynamics",
        "config": dataclasses.asdict(config),
        "data": {"name": ds.name, "source": ds.source, "n_train": int(len(ds.labels("train"))),
                 "n_test": int(len(ds.labels("test")))},
        "provenance": provenance(study, data={"name": ds.name, "source": ds.source}),
        "findings": findings,
        "training": {"seconds": done.seconds, "trained": list(done.trained),
                     "skipped": list(done.skipped), "per_job": done.job_seconds,
                     "info": done.info},
    }
    results.update(extra)
    results["timing"]["total_seconds"] = time.perf_counter() - t0
    results["timing"]["training_seconds"] = t1 - t0
    write_report(results, out, draw=draw)
    results["timing"]["total_seconds"] = time.perf_counter() - t0
    return results
