"""Transformer grokking: Koopman spectra of constrained vs unconstrained training (fig. 5, S6).

Reproduces section 4.4 and appendix E of Redman et al. (NeurIPS 2024). A one-layer transformer
(:class:`~conjugacy.torch.models.OneLayerTransformer`, the model of Nanda et al. 2023 as modified
in the Omnigrok code of Liu et al. 2023) learns ``a + b mod 113`` from 30 % of the pairs, full
batch, in float64, with AdamW (lr 1e-3, betas (0.9, 0.98)) in two regimes:

``unconstrained``
    weight decay 1.0; the model *groks*: train accuracy reaches ~1 within a few hundred steps,
    test accuracy only thousands of steps later.
``constrained``
    every parameter is scaled by ``alpha = 0.8`` once, weight decay 0, and after every optimizer
    step all parameters are rescaled together so that their global L2 norm returns to its
    initial value (after the 0.8 scaling). No grokking gap.

Per seed, one base initialization and ``n_replicas`` multiplicatively perturbed copies
(``W0 * (1 + eps * noise)``) are trained in each regime; the MLP output weights
``mlp.W_out`` (128 x 512 = 65,536 values) are recorded after every step. The Koopman spectrum of
each (regime, seed) is fitted on the pooled replicas: PCA to 10 components as the reference code
(components of the centred snapshots, raw snapshots projected on them), 32 delays, top 10 modes.
Fig. S6 (``s6``): the constrained runs are trained ``s6_steps`` and fitted again over that longer
window, as the condition ``constrained_s6``. The second half (spectra, the pairs ``fig5`` and
``s6``, verdicts, ``results.json``) is :func:`conjugacy.analysis.run_pipeline`; this module adds
the unit-circle counts (``sections["unit_circle"]``), the paper's claims and the figures.

Each spectrum has ``pca * (delays + 1)`` observables (330) and ``n_replicas * (steps - delays)``
snapshot pairs; the quick scale uses the paper's 10 runs per seed (680 pairs): on seed 0, with 4
runs both regimes put their oscillatory pair outside the circle, with 6 both on it, from 8 on the
grokking regime's is outside and the constrained one's on it (docs/results_grokking.md).
The unit-circle contrast of the paper is on the scale of 0.01 (the reference's saved
eigenvalues: the unconstrained oscillatory pair at ``|lambda|`` 1.0036-1.0106, the constrained one
(fitted on the fig. S6 window of 200 snapshots) at 0.9984-1.0003), so eigenvalues are "on" the
circle within ``unit_circle_tol = 0.002``, and the claim is read on the oscillatory eigenvalues,
``|arg lambda| > unit_circle_angle = 0.01`` rad (:class:`UnitCircleCounts`).
The reference's analysis script fits the constrained spectrum with ``X`` from the unconstrained
run (``dmd(Z.T, Z_prime_constrained.T)``); here each regime's spectrum comes from its own
snapshots, as the reference's saved spectra were.
"""

from __future__ import annotations

# ruff: noqa: E402 - the check below must run before the imports that need the extra
from .._launch import require

# without the extra: one line naming it (pip install 'conjugacy[...]'), not a bare
# ModuleNotFoundError; the imports below need it
require("torch", "import conjugacy.experiments.grokking")

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._checks import Choice, DeclaredConfig, Float, Int, Param, check_choice
from ..analysis import Claim, Results, SpectrumGroup, filter_spectrum, loss_curves, run_pipeline
from ..analysis.results import verdict_claim
from ..data.modular import ModularData, modular_addition
from ..study import Job, JobContext, Study, experiment_session, provenance, run_study
from ..torch.models import OneLayerTransformer
from ..torch.replicas import train_replicas

__all__ = [
    "GrokkingConfig",
    "UnitCircleCounts",
    "fit_shape",
    "make_study",
    "run",
    "unit_circle_counts",
]

#: Name of the observed parameter: the MLP output weights, shape (d_model, d_mlp).
OBSERVED_PARAMETER = "mlp.W_out"
REGIMES = ("unconstrained", "constrained")
_SCALES = ("quick", "paper", "custom")
#: The compared pairs of conditions: fig. 5 and the fig. S6 control.
PAIRS = {"fig5": ("unconstrained", "constrained"), "s6": ("unconstrained", "constrained_s6")}
_SCALARS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "weight_norm")


def global_norm(model: nn.Module) -> torch.Tensor:
    """Global L2 norm of all parameters of ``model`` (a 0-d tensor)."""
    return torch.sqrt(sum(p.detach().pow(2).sum() for p in model.parameters()))


@dataclass(frozen=True)
class GrokkingConfig(DeclaredConfig):
    """Settings of the grokking experiment (defaults: the quick scale; see :meth:`paper`).

    Attributes
    ----------
    scale
        Label of the preset the settings came from (informational; the fields decide).
    n_seeds
        Independent seeds (``seed, seed + 1, ...``), each with its own data split, base
        initialization and spectrum per regime. The permutation test can only reach p < 0.05
        with >= 4.
    n_replicas
        Runs per seed and regime: the base initialization and ``n_replicas - 1`` perturbed
        copies of it (the paper's 10 initializations per seed are ``n_replicas = 10``).
    steps
        Optimizer steps of the fig. 5 window; each run records ``steps + 1`` snapshots, all used.
    s6, s6_steps
        Also the fig. S6 control: the constrained runs are trained for ``s6_steps`` (200 in the
        paper) and a second constrained spectrum is fitted on that longer window (its first
        ``steps`` steps are the fig. 5 constrained runs: training is deterministic).
    long_steps, long_eval_points
        If set, also train the base initialization of the first seed once per regime this long,
        evaluated at about ``long_eval_points`` log-spaced steps (fig. 5A/B).
    eval_every
        Evaluate train/test loss and accuracy every this many steps in the short runs (the
        test-set forward pass costs as much as a training step on a CPU).
    device, seed
        Torch device of the training; first seed.
    modulus, train_fraction
        The task: ``a + b mod modulus``, this fraction of the pairs for training.
    eps, noise
        The perturbation ``W0 * (1 + eps * noise)`` (the reference code draws uniform [-1, 1]).
    alpha
        Scaling of the initial weights in the constrained regime (0.8).
    lr, betas, weight_decay
        AdamW; the weight decay is the unconstrained regime's (the constrained regime uses 0).
    d_model, n_heads, d_head, d_mlp
        Transformer sizes (128, 4, 32, 512).
    delays, rank, pca
        Koopman fit: time delays, modes kept, PCA components (32, 10, 10).
    unit_circle_tol
        An eigenvalue is "on" the unit circle when ``| |lambda| - 1 | <= unit_circle_tol``,
        "outside" above, "inside" below.
    unit_circle_angle
        Radians: the paper's claim is about the oscillatory pair, the eigenvalues with
        ``unit_circle_angle < |arg lambda| < pi - unit_circle_angle`` (0.01: the reference's saved
        spectra have their oscillatory pair at 0.015-0.069 rad and their near-real clusters below
        0.0065 rad).
    n_permutations
        Random relabelings of the permutation test (exact enumeration when fewer suffice).

    Raises
    ------
    ValueError
        A setting outside its range, naming it; fewer snapshots per run than
        ``delays + 2``.

    Examples
    --------
    A transformer small enough to train in seconds (``scale="custom"``: every size given):

    >>> cfg = GrokkingConfig(scale="custom", n_seeds=2, n_replicas=2, steps=10, s6=False,
    ...                      long_steps=None, eval_every=3, modulus=11, d_model=16, n_heads=2,
    ...                      d_head=8, d_mlp=32, delays=2, rank=3, pca=3, n_permutations=99)
    >>> cfg.seeds, GrokkingConfig().scale
    ((0, 1), 'quick')
    """

    scale: str = "quick"
    n_seeds: int = 4
    n_replicas: int = 10
    steps: int = 100
    s6: bool = False
    s6_steps: int = 200
    long_steps: int | None = None
    long_eval_points: int = 60
    eval_every: int = 5
    device: str = "cpu"
    seed: int = 0
    modulus: int = 113
    train_fraction: float = 0.3
    eps: float = 1e-3
    noise: str = "uniform"
    alpha: float = 0.8
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 1.0
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    delays: int = 32
    rank: int = 10
    pca: int = 10
    unit_circle_tol: float = 0.002
    unit_circle_angle: float = 0.01
    n_permutations: int = 999

    #: The presets: ``quick`` (the defaults: 4 seeds x the paper's 10 initializations x 100
    #: steps per regime, 680 snapshot pairs for 330 observables per spectrum; 80 runs of 100
    #: full-batch steps, about half an hour of one CPU core) and ``paper`` (20 seeds x 10
    #: initializations, fig. S6, evaluation every step).
    scales: ClassVar[Mapping[str, Mapping[str, Any]]] = MappingProxyType({
        "quick": {}, "paper": {"n_seeds": 20, "n_replicas": 10, "s6": True, "eval_every": 1}})

    constraints: ClassVar[Mapping[str, Param]] = MappingProxyType({
        "scale": Choice(*_SCALES),
        "n_seeds": Int(2),
        "n_replicas": Int(1),
        "steps": Int(1),
        "s6": Param("bool"),
        "s6_steps": Int(1),
        "long_steps": Int(1, allow_none=True),
        "long_eval_points": Int(2),
        "eval_every": Int(1, 64),  # at most the store's chunk of 64 records
        "device": Param("str"),
        "seed": Int(0),
        "modulus": Int(2),
        "train_fraction": Float(0, 1, open_minimum=True, open_maximum=True),
        "eps": Float(0, open_minimum=True),
        "noise": Choice("uniform", "gaussian"),
        "alpha": Float(0, open_minimum=True),
        "lr": Float(0, open_minimum=True),
        "betas": Param("tuple", item=Float(0, 1, open_maximum=True), length=2),
        "weight_decay": Float(0),
        "d_model": Int(1),
        "n_heads": Int(1),
        "d_head": Int(1),
        "d_mlp": Int(1),
        "delays": Int(0),
        "rank": Int(1),
        "pca": Int(1),
        "unit_circle_tol": Float(0),
        "unit_circle_angle": Float(0, 1.5),
        "n_permutations": Int(1),
    })

    def check(self) -> None:
        windows = [self.steps] + ([self.s6_steps] if self.s6 else [])
        for window in windows:
            if window + 1 < self.delays + 2:
                raise ValueError(
                    f"steps={window} gives {window + 1} snapshots per run, fewer than delays + 2 = "
                    f"{self.delays + 2}; lower delays or train longer"
                )
        if self.s6 and self.s6_steps < self.steps:
            raise ValueError(
                f"s6_steps must be >= steps (the S6 window extends the fig. 5 window), got "
                f"s6_steps={self.s6_steps} < steps={self.steps}"
            )
        if self.pca > self.d_model * self.d_mlp:
            raise ValueError(f"pca={self.pca} exceeds the {self.d_model * self.d_mlp} observables")
        self._check_fit_shape()

    def _check_fit_shape(self) -> None:
        """Refuse, before any training, a ``rank`` the fit of a window cannot give (the same
        bound as ``koopman_spectrum``'s: rank <= min(observables, snapshot pairs))."""
        shape = fit_shape(self)
        for window, pairs in shape["snapshot_pairs"].items():
            steps = self.s6_steps if window == "s6" else self.steps
            if self.rank > pairs:
                raise ValueError(
                    f"rank={self.rank} needs at least {self.rank} snapshot pairs per spectrum, but "
                    f"the {window} window has n_replicas={self.n_replicas} x (steps={steps} - "
                    f"delays={self.delays}) = {pairs}; give more --replicas or --steps (or, in "
                    f"Python, a lower rank or delays)")
        if self.rank > shape["observables"]:
            raise ValueError(
                f"rank={self.rank} exceeds the {shape['observables']} observables "
                f"(pca={self.pca} x (delays={self.delays} + 1)); raise pca or delays, or lower rank")

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds of the experiment, ``seed, ..., seed + n_seeds - 1``."""
        return tuple(range(self.seed, self.seed + self.n_seeds))

    def constrained_steps(self) -> int:
        """Optimizer steps of the constrained runs (``s6_steps`` when ``s6``)."""
        return self.s6_steps if self.s6 else self.steps


# ----------------------------------------------------------------------------- training
class TrainingProtocol:
    """Optimizer factory, norm projection and evaluation of one regime (for ``train_replicas``).

    Parameters
    ----------
    config : GrokkingConfig
    regime : {"unconstrained", "constrained"}
    data : ModularData
        The split; evaluated in full (train and test sets) at the evaluation steps.
    eval_steps : callable int -> bool
        Whether step ``t`` (optimizer steps taken) is an evaluation step.

    Notes
    -----
    ``make_optimizer`` remembers, for each model it is given (keyed by its first parameter), the
    optimizer and the global L2 norm of the parameters at that moment: ``train_replicas`` calls it
    right after creating a replica (and before restoring a checkpoint when resuming), so this is
    the replica's initial norm, after the ``alpha`` scaling and the perturbation. In the
    constrained regime ``after_step`` rescales all parameters of the model by one factor so their
    global norm equals it again. ``evaluate`` reads the step count from the optimizer state (so
    it stays right after a resume) and returns the weight norm at every step and the train/test
    loss and accuracy at evaluation steps.
    """

    def __init__(self, config: GrokkingConfig, regime: str, data: ModularData,
                 eval_steps: Callable[[int], bool]) -> None:
        self.config = config
        self.regime = check_choice(regime, "regime", REGIMES)
        self.constrained = regime == "constrained"
        device = torch.device(config.device)
        self.train = (torch.tensor(data.train_inputs, device=device),
                      torch.tensor(data.train_labels, device=device))
        self.test = (torch.tensor(data.test_inputs, device=device),
                     torch.tensor(data.test_labels, device=device))
        self.eval_steps = eval_steps
        self._state: dict[int, tuple[torch.optim.Optimizer, torch.Tensor]] = {}

    def batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Full batch: the whole training set at every step."""
        return [self.train]

    @staticmethod
    def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over all ``d_vocab`` logits at the last position (as the reference)."""
        return F.cross_entropy(logits, labels)

    def make_optimizer(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        """AdamW (weight decay 0 in the constrained regime); remembers the initial norm."""
        params = list(params)
        wd = 0.0 if self.constrained else self.config.weight_decay
        opt = torch.optim.AdamW(params, lr=self.config.lr, betas=self.config.betas,
                                weight_decay=wd)
        with torch.no_grad():
            norm = torch.sqrt(sum(p.detach().pow(2).sum() for p in params))
        self._state[id(params[0])] = (opt, norm)
        return opt

    def _lookup(self, model: nn.Module) -> tuple[torch.optim.Optimizer, torch.Tensor]:
        first = next(model.parameters())
        try:
            return self._state[id(first)]
        except KeyError:
            raise RuntimeError("model was not created through make_optimizer") from None

    def initial_norm(self, model: nn.Module) -> float:
        """The norm remembered for ``model`` by :meth:`make_optimizer`."""
        return float(self._lookup(model)[1])

    def after_step(self, model: nn.Module) -> None:
        """Constrained regime: rescale all parameters to the initial global norm."""
        if not self.constrained:
            return
        _, target = self._lookup(model)
        factor = target / global_norm(model)
        for p in model.parameters():
            p.mul_(factor)

    def _step(self, model: nn.Module) -> int:
        opt, _ = self._lookup(model)
        first = next(model.parameters())
        state = opt.state.get(first, {})
        return int(state["step"]) if "step" in state else 0

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """``weight_norm`` always; train/test loss and accuracy at evaluation steps."""
        out = {"weight_norm": float(global_norm(model))}
        if self.eval_steps(self._step(model)):
            for split, (x, y) in (("train", self.train), ("test", self.test)):
                logits = model(x)
                out[f"{split}_loss"] = float(F.cross_entropy(logits, y))
                out[f"{split}_accuracy"] = float((logits.argmax(-1) == y).double().mean())
        return out


def make_base_model(config: GrokkingConfig, seed: int, regime: str) -> OneLayerTransformer:
    """The base initialization of ``seed`` (float64); scaled by ``alpha`` if constrained.

    Both regimes start from the same draw of the same generator, so they differ only by the
    ``alpha`` scaling.
    """
    regime = check_choice(regime, "regime", REGIMES)
    model = OneLayerTransformer(
        d_vocab=config.modulus + 1, d_model=config.d_model, n_heads=config.n_heads,
        d_head=config.d_head, d_mlp=config.d_mlp, n_ctx=3,
        generator=torch.Generator().manual_seed(int(seed)), device=config.device,
    )
    if regime == "constrained":
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(config.alpha)
    return model


def _regime_steps(config: GrokkingConfig, regime: str) -> int:
    return config.constrained_steps() if regime == "constrained" else config.steps


def _log_steps(n_steps: int, n_points: int) -> np.ndarray:
    """About ``n_points`` distinct log-spaced steps in [1, n_steps], plus 0."""
    pts = np.unique(np.round(np.geomspace(1, n_steps, n_points)).astype(int))
    return np.concatenate([[0], pts])


def train_job(job: Job, ctx: JobContext) -> None:
    """Train one job (the study's training step): the replicas of one (regime, seed), or the
    long run of one regime (``job.params["long"]``), resuming from ``ctx.checkpoint_dir``.

    Short runs record ``mlp.W_out`` at every step, with the weight norm at every step and the
    train/test loss and accuracy every ``eval_every`` steps; the long run (fig. 5A/B) records
    only the tiny ``mlp.b_out`` and evaluates at ~``long_eval_points`` log-spaced steps.
    """
    config: GrokkingConfig = ctx.config
    regime, seed = job.params["regime"], job.seed
    n_steps = job.n_records - 1
    data = modular_addition(config.modulus, config.train_fraction, seed)
    if job.params.get("long"):
        marks = set(_log_steps(n_steps, config.long_eval_points).tolist())
        protocol = TrainingProtocol(config, regime, data, lambda t: t in marks)
        params, chunk, meta = "mlp.b_out", 256, {"experiment": "grokking-long"}
    else:
        every = config.eval_every
        protocol = TrainingProtocol(config, regime, data,
                                    lambda t: t % every == 0 or t == n_steps)
        params, chunk = OBSERVED_PARAMETER, 64
        meta = {"experiment": "grokking", "modulus": config.modulus,
                "train_fraction": config.train_fraction}
    train_replicas(
        make_base_model(config, seed, regime),
        n_replicas=job.n_replicas, eps=config.eps, noise=config.noise, seed=seed,
        batches=protocol.batches(), loss_fn=protocol.loss_fn,
        make_optimizer=protocol.make_optimizer, n_steps=n_steps, store=ctx.store,
        run_prefix=job.key, params=params, every=1, after_step=protocol.after_step,
        evaluate=protocol.evaluate, vectorize=False, device=config.device,
        progress=ctx.progress, checkpoint_dir=ctx.checkpoint_dir, chunk_steps=chunk,
        metadata={**ctx.metadata, **meta, "regime": regime},
    )


def _training_fields(config: GrokkingConfig) -> dict[str, Any]:
    # Fields that change what is trained (not the analysis settings): a resumed out_dir must
    # agree on them.
    skip = {"scale", "n_seeds", "long_steps", "long_eval_points", "delays", "rank", "pca",
            "unit_circle_tol", "unit_circle_angle", "n_permutations", "s6", "device"}
    return {f.name: getattr(config, f.name) for f in fields(config) if f.name not in skip}


def _job_key(condition: str, seed: int) -> str:
    return f"{condition}-seed{seed:03d}"


def make_study(config: GrokkingConfig) -> Study:
    """The experiment as a :class:`~conjugacy.study.Study`: one job per (regime, seed), plus one
    long run per regime when ``long_steps`` is set. Resumable from checkpoints.

    Raises
    ------
    TypeError
        ``config`` is anything but a :class:`GrokkingConfig` (a dict, another experiment's).

    Examples
    --------
    >>> cfg = GrokkingConfig(scale="custom", n_seeds=2, n_replicas=2, steps=10, s6=False,
    ...                      long_steps=None, eval_every=3, modulus=11, d_model=16, n_heads=2,
    ...                      d_head=8, d_mlp=32, delays=2, rank=3, pca=3, n_permutations=99)
    >>> [(job.condition, job.seed) for job in make_study(cfg).jobs()]
    [('unconstrained', 0), ('constrained', 0), ('unconstrained', 1), ('constrained', 1)]
    """
    if not isinstance(config, GrokkingConfig):
        raise TypeError(f"config must be a GrokkingConfig, got {type(config).__name__}")
    extra = []
    if config.long_steps is not None:
        extra = [Job(f"long-{r}", config.seed, {"regime": r, "long": True},
                     f"long-{r}-seed{config.seed:03d}", 1, config.long_steps + 1)
                 for r in REGIMES]
    return Study(
        name="grokking",
        conditions={r: {"regime": r} for r in REGIMES},
        seeds=config.seeds,
        n_replicas=config.n_replicas,
        n_records=lambda cond, params: _regime_steps(config, params["regime"]) + 1,
        train=train_job,
        settings=_training_fields(config),
        config=config,
        job_key=_job_key,
        extra_jobs=extra,
        resumable=True,
        seed_major=True,  # both regimes of a seed first: a partial run has whole seeds
    )


# ----------------------------------------------------------------------------- analysis
def spectrum_groups(config: GrokkingConfig, study: Study) -> list[SpectrumGroup]:
    """The spectra of the experiment: one per (condition, seed); ``constrained_s6`` is the
    constrained runs over the longer fig. S6 window."""
    jobs = {(j.condition, j.seed): j for j in study.jobs()}
    windows = {"unconstrained": ("unconstrained", config.steps + 1),
               "constrained": ("constrained", config.steps + 1)}
    if config.s6:
        windows["constrained_s6"] = ("constrained", config.s6_steps + 1)
    return [SpectrumGroup(cond, s, jobs[(regime, s)].run_names, steps=(0, n_snap))
            for cond, (regime, n_snap) in windows.items() for s in config.seeds]


def _spectrum_settings(config: GrokkingConfig) -> dict[str, Any]:
    """Keyword arguments of :func:`conjugacy.koopman_spectrum` for every group."""
    return {"delays": config.delays, "rank": config.rank, "pca": config.pca, "pca_center": True}


def fit_shape(config: GrokkingConfig) -> dict[str, Any]:
    """Observables and snapshot pairs of each spectrum, and whether the fit is determined.

    Observables: ``pca * (delays + 1)``; pairs: ``n_replicas * (window - delays)`` for the fig. 5
    window (``steps``) and the S6 window (``s6_steps``).

    Returns
    -------
    dict
        ``observables``, ``snapshot_pairs`` and ``determined`` (pairs > observables) per window.

    Examples
    --------
    >>> cfg = GrokkingConfig(scale="custom", n_seeds=2, n_replicas=2, steps=10, s6=False,
    ...                      long_steps=None, eval_every=3, modulus=11, d_model=16, n_heads=2,
    ...                      d_head=8, d_mlp=32, delays=2, rank=3, pca=3, n_permutations=99)
    >>> fit_shape(cfg)
    {'observables': 9, 'snapshot_pairs': {'fig5': 16}, 'determined': {'fig5': True}}
    """
    n_obs = config.pca * (config.delays + 1)
    windows = {"fig5": config.steps} | ({"s6": config.s6_steps} if config.s6 else {})
    pairs = {k: config.n_replicas * (w - config.delays) for k, w in windows.items()}
    return {"observables": n_obs, "snapshot_pairs": pairs,
            "determined": {k: v > n_obs for k, v in pairs.items()}}


@dataclass(frozen=True)
class UnitCircleCounts:
    """How many eigenvalues lie outside, on and inside the unit circle.

    ``on`` means ``| |lambda| - 1 | <= tol``. The ``oscillatory_*`` counts only consider the
    eigenvalues that rotate: ``min_angle < |arg lambda| < pi - min_angle`` (radians), i.e. members
    of conjugate pairs at least ``min_angle`` away from the real axis, which is what the paper's
    claim is about (its oscillatory pair sits at ``|arg|`` 0.015-0.07 rad). A plain ``Im != 0``
    test would also count the near-real clusters DMD returns around a real eigenvalue (e.g.
    1.0268 at 0.001 rad) and call a real, growing direction a "complex pair outside".
    ``max_modulus`` is the largest ``|lambda|`` and ``max_oscillatory_modulus`` the largest among
    the oscillatory ones (None if there are none).

    Examples
    --------
    Made by :func:`unit_circle_counts`: a growing oscillatory pair and a decaying real mode:

    >>> c = unit_circle_counts([1.02 + 0.05j, 1.02 - 0.05j, 0.5], tol=0.002)
    >>> c.outside, c.oscillatory_outside, c.inside, round(c.max_oscillatory_modulus, 4)
    (2, 2, 1, 1.0212)
    """

    outside: int
    on: int
    inside: int
    oscillatory_outside: int
    oscillatory_on: int
    oscillatory_inside: int
    tol: float
    min_angle: float
    max_modulus: float
    max_oscillatory_modulus: float | None


def unit_circle_counts(eigenvalues: Any, tol: float, min_angle: float = 0.01) -> UnitCircleCounts:
    """Classify eigenvalues against the unit circle (see :class:`UnitCircleCounts`).

    Parameters
    ----------
    eigenvalues : array_like of complex, shape (n,), or a Spectrum
    tol : float
        Half-width of the "on the circle" band of ``|lambda|``, >= 0.
    min_angle : float
        Radians; eigenvalues with ``min_angle < |arg lambda| < pi - min_angle`` are oscillatory.

    Raises
    ------
    ValueError
        If an eigenvalue is not finite, or ``tol`` / ``min_angle`` is out of range.

    Examples
    --------
    >>> c = unit_circle_counts([1.03 + 0.001j, 1.03 - 0.001j, 0.999 + 0.04j, 0.999 - 0.04j], 0.002)
    >>> (c.outside, c.oscillatory_outside, c.oscillatory_on)
    (2, 0, 2)
    """
    if not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    if not (0 <= min_angle < np.pi / 2):
        raise ValueError(f"min_angle must be in [0, pi/2) radians, got {min_angle!r}")
    eig = np.asarray(getattr(eigenvalues, "eigenvalues", eigenvalues), dtype=complex).ravel()
    if not np.isfinite(eig).all():  # a diverged fit must not read as "on the circle"
        raise ValueError(f"eigenvalues: {int((~np.isfinite(eig)).sum())} of {eig.size} are not "
                         "finite (a diverged fit?); classify a finite spectrum")
    mod, angle = np.abs(eig), np.abs(np.angle(eig))
    outside, inside = mod > 1 + tol, mod < 1 - tol
    on = ~outside & ~inside
    osc = (angle > min_angle) & (angle < np.pi - min_angle)
    return UnitCircleCounts(
        int(outside.sum()), int(on.sum()), int(inside.sum()),
        int((outside & osc).sum()), int((on & osc).sum()), int((inside & osc).sum()),
        float(tol), float(min_angle), float(mod.max()) if mod.size else 0.0,
        float(mod[osc].max()) if osc.any() else None,
    )


def count_summary(counts: Sequence[UnitCircleCounts]) -> dict[str, Any]:
    """Totals, per-seed counts, and how many seeds have an oscillatory pair outside / on the
    circle."""
    keys = ("outside", "on", "inside", "oscillatory_outside", "oscillatory_on",
            "oscillatory_inside")
    total = {k: int(sum(getattr(c, k) for c in counts)) for k in keys}
    keys = keys + ("max_modulus", "max_oscillatory_modulus")
    seeds_with = {
        "oscillatory_pair_outside": int(sum(c.oscillatory_outside >= 2 for c in counts)),
        "oscillatory_pair_on": int(sum(c.oscillatory_on >= 2 for c in counts)),
    }
    return {"total": total, "n_seeds_with": seeds_with,
            "per_seed": [{k: getattr(c, k) for k in keys} for c in counts],
            "tol": counts[0].tol if counts else None,
            "min_angle": counts[0].min_angle if counts else None}


def _curves(store: Any, runs: list[str], n_snapshots: int) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"step": store.steps(runs[0])[:n_snapshots]}
    for name in _SCALARS:
        out[name] = np.stack([store.scalars(r, name)[:n_snapshots] for r in runs])
    return out


def _long_curve(store: Any, run: str) -> dict[str, np.ndarray]:
    step = store.steps(run)
    acc = store.scalars(run, "test_accuracy")
    keep = np.isfinite(acc)
    curve = {"step": step[keep]}
    for name in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "weight_norm"):
        curve[name] = store.scalars(run, name)[keep]
    return curve


_CIRCLE_RULE = ("on: ||lambda| - 1| <= tol; outside: |lambda| > 1 + tol; inside: |lambda| < 1 - tol;"
                " oscillatory_*: only eigenvalues with min_angle < |arg lambda| < pi - min_angle")


def unit_circle_section(spectra: Mapping[str, Sequence[Any]], tol: float,
                        min_angle: float = 0.01) -> dict[str, Any]:
    """``sections["unit_circle"]``: :func:`count_summary` per condition of all eigenvalues and,
    when every spectrum can be filtered, of the residual-filtered ones."""
    which = {"all": spectra}
    filtered = {c: [filter_spectrum(s) for s in v] for c, v in spectra.items()}
    if all(f is not None for v in filtered.values() for f in v):
        which["filtered"] = filtered
    return {"rule": _CIRCLE_RULE, **{
        w: {c: count_summary([unit_circle_counts(s, tol, min_angle) for s in v])
            for c, v in per.items()}
        for w, per in which.items()}}


def _verdict_claim(claim: str, v: Mapping[str, Any] | None) -> Claim:
    """:func:`conjugacy.analysis.results.verdict_claim`, the evidence naming the spectra used."""
    evidence = None if v is None else f"{v['verdict']}: {v['reason']} ({v['uses']} spectra)"
    return verdict_claim(claim, v, evidence=evidence)


def paper_claims(content: Mapping[str, Any]) -> list[Claim]:
    """The paper's claims about fig. 5 (and S6), decided on the results: the regimes are not
    conjugate (undecided while the test cannot reject); on the spectra the verdicts use, every
    seed's unconstrained spectrum has an oscillatory pair outside the unit circle and every
    constrained one an oscillatory pair on it and none outside (at the study's tolerance and
    angle, :class:`UnitCircleCounts`)."""
    cmp = content.get("comparison") or {}
    verdicts = cmp.get("verdicts", {})
    out = [_verdict_claim("fig. 5: the unconstrained (grokking) and constrained regimes are not "
                          "conjugate", verdicts.get("fig5"))]
    if "s6" in verdicts:
        out.append(_verdict_claim("fig. S6: with the constrained window doubled, the regimes are "
                                  "still not conjugate", verdicts["s6"]))
    circle = (content.get("sections", {}).get("unit_circle") or {}).get(
        cmp.get("verdict_uses", "filtered"))
    if circle and "unconstrained" in circle and "constrained" in circle:
        unc, con = circle["unconstrained"]["per_seed"], circle["constrained"]["per_seed"]
        n_out = sum(c["oscillatory_outside"] > 0 for c in unc)
        n_on = sum(c["oscillatory_on"] > 0 and c["oscillatory_outside"] == 0 for c in con)
        rule = (f"tolerance {circle['unconstrained']['tol']:g}, "
                f"|arg| > {circle['unconstrained']['min_angle']:g} rad")
        out.append(Claim("fig. 5D: unconstrained has an oscillatory pair outside the unit circle",
                         n_out == len(unc), f"{n_out} of {len(unc)} seeds, {rule}"))
        out.append(Claim("fig. 5D: constrained has an oscillatory pair on the unit circle (none "
                         "outside)", n_on == len(con), f"{n_on} of {len(con)} seeds, {rule}"))
    return out


def _figures(config: GrokkingConfig, reader: Any, runs: Mapping[str, list[str]]
             ) -> Callable[[Results, Path], list[Path]]:
    """The figure hook: fig. 5C/D, S6 (with ``s6``) and 5A/B (with ``long_steps``)."""
    def figures(res: Results, out: Path) -> list[Path]:
        from ..plots import save_figure
        from ..plots.grokking import figure_fig5, figure_grokking_curves, figure_s6

        pvalue = {k: v["pvalue"] for k, v in res.comparison["verdicts"].items()}
        curves = {r: _curves(reader, runs[r], config.steps + 1) for r in REGIMES}
        fig = figure_fig5(curves, {k: res.spectra[k] for k in REGIMES}, pvalue=pvalue["fig5"])
        paths = save_figure(fig, out / "fig5")
        if config.s6:
            curves["constrained"] = _curves(reader, runs["constrained"], config.s6_steps + 1)
            spectra = {k: res.spectra[k] for k in ("unconstrained", "constrained_s6")}
            windows = {"unconstrained": config.steps, "constrained": config.s6_steps}
            paths += save_figure(figure_s6(curves, spectra, windows, pvalue=pvalue["s6"]),
                                 out / "figS6")
        if res["long_curves"] is not None:
            paths += save_figure(figure_grokking_curves(res["long_curves"]), out / "fig5AB")
        return paths
    return figures


# ----------------------------------------------------------------------------- entry point
def run(config: GrokkingConfig, out_dir: str | os.PathLike[str], *, progress: bool = False,
        workers: int | None = None, scheduler: str | None = None, processes: bool = True,
        ) -> Results:
    """Train, fit and compare; write ``results.json``, figures and the trajectory stores.

    Parameters
    ----------
    config : GrokkingConfig
    out_dir : path
        Created if needed. Holds ``study.json``, ``trajectories/<regime>-seed<s>.zarr`` (one
        store per job: the recorded ``mlp.W_out`` of every run, with train/test loss, accuracy
        and weight norm as scalars), ``checkpoints/``, ``results.json`` (schema
        ``conjugacy.results/2``), ``fig5.png/.svg``, ``figS6.png/.svg`` (with ``s6``) and
        ``fig5AB.png/.svg`` (with ``long_steps``). Calling again with the same configuration
        resumes: finished jobs are skipped, interrupted runs continue from their checkpoint.
    progress : bool
        Rich progress bars while training.
    workers, scheduler, processes
        Run the jobs and the spectra on Dask (see :func:`conjugacy.study.run_study`).

    Returns
    -------
    Results
        Conditions ``unconstrained``, ``constrained`` (and ``constrained_s6``); pairs ``fig5``
        and ``s6``; ``sections["unit_circle"]``; the paper's ``claims``; extra fields ``config``,
        ``fit_shape``, ``curves`` (per recorded scalar and condition: mean and sd over runs),
        ``long_curves`` and ``training`` (trained and resumed jobs).

    References
    ----------
    Redman et al. (2024), sec. 4.4, fig. 5 and S6, appendix E.

    Examples
    --------
    Ten steps of a tiny transformer, 2 seeds of 2 replicas per regime (seconds):

    >>> import tempfile
    >>> cfg = GrokkingConfig(scale="custom", n_seeds=2, n_replicas=2, steps=10, s6=False,
    ...                      long_steps=None, eval_every=3, modulus=11, d_model=16, n_heads=2,
    ...                      d_head=8, d_mlp=32, delays=2, rank=3, pca=3, n_permutations=99)
    >>> with tempfile.TemporaryDirectory() as out:
    ...     res = run(cfg, out)
    >>> {c: len(v) for c, v in res.spectra.items()}, list(res["comparison"]["verdicts"])
    ({'unconstrained': 2, 'constrained': 2}, ['fig5'])
    """
    study = make_study(config)
    jobs = {(j.condition, j.seed): j for j in study.jobs()}
    runs = {r: [n for s in config.seeds for n in jobs[(r, s)].run_names] for r in REGIMES}
    groups = spectrum_groups(config, study)
    conds = {g.condition for g in groups}
    with experiment_session(config, GrokkingConfig, out_dir, threads=study.threads,
                            workers=workers, scheduler=scheduler, processes=processes
                            ) as (out, client):
        trained = run_study(study, out, client=client, progress=progress)
        timing = trained.timing()
        with trained.reader() as reader:
            long = None if config.long_steps is None else {
                r: _long_curve(reader, f"long-{r}-seed{config.seed:03d}_0") for r in REGIMES}
            return run_pipeline(
                reader, groups, _spectrum_settings(config), params=OBSERVED_PARAMETER, client=client,
                loss="train_loss", experiment="grokking",
                title="Transformer grokking: constrained vs unconstrained training (fig. 5, S6)",
                question="Are the early training dynamics of a transformer that groks and of one "
                         "whose weight norm is held fixed conjugate?",
                conditions=_conditions(config), stats={
                    "pairs": {k: v for k, v in PAIRS.items() if v[1] in conds},
                    "seed": config.seed, "n_permutations": config.n_permutations},
                fields={"config": config, "fit_shape": fit_shape(config), "long_curves": long,
                        "curves": {k: loss_curves(reader, groups, k) for k in _SCALARS},
                        "training": {k: timing[k] for k in ("trained", "skipped", "per_job")}},
                sections=lambda spectra: {
                    "unit_circle": unit_circle_section(spectra, config.unit_circle_tol,
                                                       config.unit_circle_angle)},
                claims=paper_claims, figures=_figures(config, reader, runs),
                provenance=provenance(study, data={
                    "name": f"a + b mod {config.modulus}", "train_fraction": config.train_fraction,
                    "source": "generated (conjugacy.data.modular_addition), split seeded per seed"}),
                timing={"training": timing["training"]}, out=out)


def _conditions(cfg: GrokkingConfig) -> dict[str, str]:
    what = {"unconstrained": f"AdamW weight decay {cfg.weight_decay}",
            "constrained": f"weights x {cfg.alpha} once, global norm held fixed, no weight decay"}
    return {"unconstrained": f"{what['unconstrained']}; {cfg.steps} steps",
            "constrained": f"{what['constrained']}; {cfg.steps} steps",
            "constrained_s6": f"{what['constrained']}; {cfg.s6_steps} steps (fig. S6)"}
