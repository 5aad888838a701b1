"""Transformer grokking: Koopman spectra of constrained vs unconstrained training (fig. 5, S6).

Reproduces section 4.4 and appendix E of Redman et al. (NeurIPS 2024). A one-layer transformer
(:class:`~conjugacy.torch.models.OneLayerTransformer`, the model of Nanda et al. 2023 as modified
in the Omnigrok code of Liu et al. 2023) learns ``a + b mod 113`` from 30 % of the pairs, full
batch, in float64, with AdamW in two regimes: ``unconstrained`` (weight decay 1.0; the model
*groks*: train accuracy reaches ~1 within a few hundred steps, test accuracy only thousands of
steps later) and ``constrained`` (every parameter scaled by ``alpha = 0.8`` once, weight decay 0,
the global L2 norm of all parameters held at its initial value after every step:
:class:`~conjugacy.torch.protocols.FullBatchProtocol`; no grokking gap).

Per seed and regime, a base initialization and perturbed copies of it are trained, recording the
MLP output weights ``mlp.W_out`` (128 x 512) after every step; one Koopman spectrum per (regime,
seed) is fitted on the pooled replicas (PCA to 10 components as the reference code, 32 delays, 10
modes). Fig. S6 refits the constrained runs over a longer window (condition ``constrained_s6``).
The second half (spectra, the pairs ``fig5`` and ``s6``, verdicts, ``results.json``) is
:func:`conjugacy.analysis.run_pipeline`; this module adds the unit-circle counts
(:func:`conjugacy.analysis.unit_circle.unit_circle_section`: the paper's contrast is on the scale
of 0.01, the reference's unconstrained oscillatory pair at ``|lambda|`` 1.0036-1.0106, the
constrained one at 0.9984-1.0003), the paper's claims and the figures. What the quick scale shows,
and how it depends on the runs per seed: docs/results_grokking.md. Unlike the reference's analysis
script (which fits the constrained spectrum with ``X`` from the unconstrained run), each regime's
spectrum comes from its own snapshots, as the reference's saved spectra were.
"""

from __future__ import annotations

# ruff: noqa: E402 - the check below must run before the imports that need the extra
from .._launch import require

require("torch", "import conjugacy.experiments.grokking")

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import torch

from .._checks import Choice, DeclaredConfig, Float, Int, Param, check_choice, setting
from ..analysis import Claim, Results, SpectrumGroup, loss_curves
from ..analysis.fit_plan import check_planned_rank, planned_fit
from ..analysis.pipeline import run_scalars
from ..analysis.results import verdict_claim
from ..analysis.unit_circle import unit_circle_section
from ..data.modular import ModularData, modular_addition
from ..study import ExperimentRun, Job, JobContext, Study, check_config, run_experiment
from ..torch.models import OneLayerTransformer
from ..torch.protocols import FullBatchProtocol
from ..torch.training import train_job_replicas
from . import _settings as shared

__all__ = ["GrokkingConfig", "TrainingProtocol", "fit_shape", "make_study", "run"]

#: Name of the observed parameter: the MLP output weights, shape (d_model, d_mlp).
OBSERVED_PARAMETER = "mlp.W_out"
REGIMES = ("unconstrained", "constrained")
_SCALES = ("quick", "paper", "custom")
#: The compared pairs of conditions: fig. 5 and the fig. S6 control.
PAIRS = {"fig5": ("unconstrained", "constrained"), "s6": ("unconstrained", "constrained_s6")}
_SCALARS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "weight_norm")


@dataclass(frozen=True)
class GrokkingConfig(DeclaredConfig):
    """Settings of the grokking experiment (defaults: the quick scale; see :meth:`paper`).

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

    scale: str = setting("quick", Choice(*_SCALES), "Label of the preset the settings came from "
                                                    "(informational; the fields decide).")
    n_seeds: int = setting(4, Int(2), (
        "Independent seeds (``seed, seed + 1, ...``), each with its own data split, base "
        "initialization and spectrum per regime. The permutation test can only reach p < 0.05 "
        "with >= 4."))
    n_replicas: int = setting(10, Int(1), (
        "Runs per seed and regime: the base initialization and ``n_replicas - 1`` perturbed "
        "copies of it (the paper's 10 initializations per seed are ``n_replicas = 10``)."))
    steps: int = setting(100, Int(1), "Optimizer steps of the fig. 5 window; each run records "
                                      "``steps + 1`` snapshots, all used.")
    s6: bool = setting(False, Param("bool"), (
        "Also the fig. S6 control: the constrained runs are trained for ``s6_steps`` and a second "
        "constrained spectrum is fitted on that longer window (its first ``steps`` steps are the "
        "fig. 5 constrained runs: training is deterministic)."))
    s6_steps: int = setting(200, Int(1), "Steps of the fig. S6 window (the paper's 200).")
    long_steps: int | None = setting(None, Int(1, allow_none=True), (
        "If set, also train the base initialization of the first seed once per regime this long "
        "(fig. 5A/B)."))
    long_eval_points: int = setting(60, Int(2), "Evaluations of the long runs, at about this many "
                                                "log-spaced steps.")
    eval_every: int = setting(5, Int(1, 64), (  # at most the store's chunk of 64 records
        "Evaluate train/test loss and accuracy every this many steps in the short runs (the "
        "test-set forward pass costs as much as a training step on a CPU)."))
    device: str = setting("cpu", Param("str"), "Torch device of the training.")
    seed: int = setting(0, shared.SEED, "First seed.")
    modulus: int = setting(113, Int(2), "The task: ``a + b mod modulus``.")
    train_fraction: float = setting(0.3, Float(0, 1, open_minimum=True, open_maximum=True),
                                    "Fraction of the ``(a, b)`` pairs used for training.")
    eps: float = setting(1e-3, shared.EPS)
    noise: str = setting("uniform", shared.NOISE)
    alpha: float = setting(0.8, Float(0, open_minimum=True),
                           "Scaling of the initial weights in the constrained regime.")
    lr: float = setting(1e-3, Float(0, open_minimum=True), "Learning rate of AdamW.")
    betas: tuple[float, float] = setting((0.9, 0.98), Param(
        "tuple", item=Float(0, 1, open_maximum=True), length=2), "AdamW's betas.")
    weight_decay: float = setting(1.0, Float(0), "AdamW's weight decay in the unconstrained "
                                                 "regime (the constrained regime uses 0).")
    d_model: int = setting(128, Int(1), "Transformer: residual stream width.")
    n_heads: int = setting(4, Int(1), "Transformer: attention heads.")
    d_head: int = setting(32, Int(1), "Transformer: width of each head.")
    d_mlp: int = setting(512, Int(1), "Transformer: MLP hidden width.")
    delays: int = setting(32, shared.DELAYS)
    rank: int | str | None = setting(10, shared.RANK_RULE)
    pca: int = setting(10, Int(1), "PCA components the Koopman fit observes.")
    unit_circle_tol: float = setting(0.002, Float(0), (
        "``tol`` of :func:`~conjugacy.analysis.unit_circle.unit_circle_counts`: \"on\" the "
        "circle within this distance of ``|lambda| = 1``."))
    unit_circle_angle: float = setting(0.01, Float(0, 1.5), (
        "``min_angle`` of :func:`~conjugacy.analysis.unit_circle.unit_circle_counts`: the claim "
        "is read on the oscillatory eigenvalues, ``|arg lambda|`` above this many rad (the "
        "reference's saved spectra have their oscillatory pair at 0.015-0.069 rad and their "
        "near-real clusters below 0.0065 rad)."))
    n_permutations: int = setting(999, shared.N_PERMUTATIONS)

    #: The presets: ``quick`` (the defaults: 4 seeds x the paper's 10 initializations x 100
    #: steps per regime, 680 snapshot pairs for 330 observables per spectrum; 80 runs of 100
    #: full-batch steps, about half an hour of one CPU core) and ``paper`` (20 seeds x 10
    #: initializations, fig. S6, evaluation every step).
    scales: ClassVar[Mapping[str, Mapping[str, Any]]] = MappingProxyType({
        "quick": {}, "paper": {"n_seeds": 20, "n_replicas": 10, "s6": True, "eval_every": 1}})

    def check(self) -> None:
        for steps in self.windows().values():
            if steps + 1 < self.delays + 2:
                raise ValueError(
                    f"steps={steps} gives {steps + 1} snapshots per run, fewer than delays + 2 = "
                    f"{self.delays + 2}; lower delays or train longer"
                )
        if self.s6 and self.s6_steps < self.steps:
            raise ValueError(
                f"s6_steps must be >= steps (the S6 window extends the fig. 5 window), got "
                f"s6_steps={self.s6_steps} < steps={self.steps}"
            )
        if self.pca > self.d_model * self.d_mlp:
            raise ValueError(f"pca={self.pca} exceeds the {self.d_model * self.d_mlp} observables")
        # before any training, a rank the fit of a window cannot give
        check_planned_rank(self.rank, self.pca, self.delays, self.n_replicas, self.windows(),
                           names=("pca", "n_replicas"),
                           more_pairs="give more --replicas or --steps (or, in Python, a lower "
                                      "rank or delays)",
                           more_observables="raise pca or delays, or lower rank")

    def windows(self) -> dict[str, int]:
        """Optimizer steps of each fitted window: ``fig5`` and, with ``s6``, ``s6``."""
        return {"fig5": self.steps} | ({"s6": self.s6_steps} if self.s6 else {})

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds of the experiment, ``seed, ..., seed + n_seeds - 1``."""
        return tuple(range(self.seed, self.seed + self.n_seeds))

    def constrained_steps(self) -> int:
        """Optimizer steps of the constrained runs (``s6_steps`` when ``s6``)."""
        return self.s6_steps if self.s6 else self.steps


# ----------------------------------------------------------------------------- training
class TrainingProtocol(FullBatchProtocol):
    """One regime's protocol for ``train_replicas``: AdamW (weight decay 0 in the constrained
    regime), in the constrained regime the global norm held at its initial value after every
    step, train/test loss and accuracy at the steps where ``eval_steps(t)`` is true
    (:class:`~conjugacy.torch.protocols.FullBatchProtocol`).

    Parameters
    ----------
    config : GrokkingConfig
    regime : {"unconstrained", "constrained"}
    data : ModularData
        The split, moved to ``config.device``.
    eval_steps : callable int -> bool

    Examples
    --------
    >>> from conjugacy.data.modular import modular_addition
    >>> cfg = GrokkingConfig(scale="custom", modulus=11, d_model=16, n_heads=2, d_head=8,
    ...                      d_mlp=32, delays=2, rank=3, pca=3)
    >>> protocol = TrainingProtocol(cfg, "constrained", modular_addition(11, 0.3, 0), lambda t: True)
    >>> opt = protocol.make_optimizer(make_base_model(cfg, 0, "constrained").parameters())
    >>> protocol.fixed_norm, opt.param_groups[0]["weight_decay"]
    (True, 0.0)
    """

    def __init__(self, config: GrokkingConfig, regime: str, data: ModularData,
                 eval_steps: Callable[[int], bool]) -> None:
        self.config = config
        self.regime = check_choice(regime, "regime", REGIMES)
        wd = 0.0 if regime == "constrained" else config.weight_decay
        device = torch.device(config.device)
        super().__init__(
            (torch.tensor(data.train_inputs, device=device),
             torch.tensor(data.train_labels, device=device)),
            (torch.tensor(data.test_inputs, device=device),
             torch.tensor(data.test_labels, device=device)),
            lambda params: torch.optim.AdamW(params, lr=config.lr, betas=config.betas,
                                             weight_decay=wd),
            fixed_norm=regime == "constrained", eval_steps=eval_steps)


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


def _log_steps(n_steps: int, n_points: int) -> np.ndarray:
    """About ``n_points`` distinct log-spaced steps in [1, n_steps], plus 0."""
    pts = np.unique(np.round(np.geomspace(1, n_steps, n_points)).astype(int))
    return np.concatenate([[0], pts])


def train_job(job: Job, ctx: JobContext) -> None:
    """Train one job (the study's training step): the replicas of one (regime, seed), or the
    long run of one regime (``job.params["long"]``), resuming from ``ctx.checkpoint_dir``.

    Short runs record ``mlp.W_out`` at every step, with the weight norm at every step and the
    train/test loss and accuracy every ``eval_every`` steps and at the end of each window
    (``steps``, and ``s6_steps`` for the constrained runs with ``s6``: a finished quick run is
    extended to the S6 window from its checkpoint); the long run (fig. 5A/B) records
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
        # also at the fig. 5 window's end: a constrained run extended to the S6 window later
        # (a quick run, then --s6 into the same folder) equals one trained to it at once
        every, ends = config.eval_every, {config.steps, n_steps}
        protocol = TrainingProtocol(config, regime, data,
                                    lambda t: t % every == 0 or t in ends)
        params, chunk = OBSERVED_PARAMETER, 64
        meta = {"experiment": "grokking", "modulus": config.modulus,
                "train_fraction": config.train_fraction}
    train_job_replicas(
        job, ctx, make_base_model(config, seed, regime), noise=config.noise, seed=seed,
        batches=protocol.batches(), loss_fn=protocol.loss_fn,
        make_optimizer=protocol.make_optimizer, params=params, every=1,
        after_step=protocol.after_step, evaluate=protocol.evaluate, vectorize=False,
        checkpoint_dir=ctx.checkpoint_dir, chunk_steps=chunk, metadata={**meta, "regime": regime})


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
    check_config(config, GrokkingConfig)
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
        n_records=lambda cond, params: 1 + (config.constrained_steps()
                                            if params["regime"] == "constrained" else config.steps),
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


def fit_shape(config: GrokkingConfig) -> dict[str, Any]:
    """:func:`conjugacy.analysis.fit_plan.planned_fit` of the experiment's spectra: ``pca``
    features, ``n_replicas`` runs, the fig. 5 window (``steps``) and the S6 window (``s6_steps``).

    Examples
    --------
    >>> cfg = GrokkingConfig(scale="custom", n_seeds=2, n_replicas=2, steps=10, s6=False,
    ...                      long_steps=None, eval_every=3, modulus=11, d_model=16, n_heads=2,
    ...                      d_head=8, d_mlp=32, delays=2, rank=3, pca=3, n_permutations=99)
    >>> fit_shape(cfg)
    {'observables': 9, 'snapshot_pairs': {'fig5': 16}, 'determined': {'fig5': True}}
    """
    return planned_fit(config.pca, config.delays, config.n_replicas, config.windows())


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


def _figures(reader: Any, groups: Sequence[SpectrumGroup]) -> Callable[[Results, Path], list[Path]]:
    from ..plots.grokking import study_figures  # matplotlib only when figures are drawn

    return study_figures(reader, groups, _SCALARS)


# ----------------------------------------------------------------------------- entry point
def run(config: GrokkingConfig, out_dir: str | os.PathLike[str], *, progress: bool = False,
        figures: bool = True, workers: int | None = None, scheduler: str | None = None,
        processes: bool = True) -> Results:
    """Train, fit and compare; write ``results.json``, figures and the trajectory stores.

    Parameters
    ----------
    config : GrokkingConfig
    out_dir, progress, figures, workers, scheduler, processes
        As :func:`conjugacy.study.run_experiment` (resume, Dask, determinism): ``out_dir``
        receives ``trajectories/<regime>-seed<s>.zarr`` (one store per job: the recorded
        ``mlp.W_out`` of every run, with train/test loss, accuracy and weight norm as scalars),
        ``checkpoints/`` (interrupted runs continue from them) and the figures of
        :func:`conjugacy.plots.grokking.draw_all`.

    Returns
    -------
    Results
        Conditions ``unconstrained``, ``constrained`` (and ``constrained_s6``); pairs ``fig5``
        and ``s6``; ``sections["unit_circle"]``; the paper's ``claims``; extra fields ``config``,
        ``fit_shape``, ``curves`` (per recorded scalar and condition: mean and sd over runs),
        ``long_curves`` and ``training`` (trained and resumed jobs).

    Examples
    --------
    Ten steps of a tiny transformer, 2 seeds of 2 replicas per regime (seconds):

    >>> import tempfile
    >>> cfg = GrokkingConfig(scale="custom", n_seeds=2, n_replicas=2, steps=10, s6=False,
    ...                      long_steps=None, eval_every=3, modulus=11, d_model=16, n_heads=2,
    ...                      d_head=8, d_mlp=32, delays=2, rank=3, pca=3, n_permutations=99)
    >>> with tempfile.TemporaryDirectory() as out:
    ...     res = run(cfg, out, figures=False)
    >>> {c: len(v) for c, v in res.spectra.items()}, list(res["comparison"]["verdicts"])
    ({'unconstrained': 2, 'constrained': 2}, ['fig5'])
    """
    study = make_study(config)
    groups = spectrum_groups(config, study)
    conds = {g.condition for g in groups}

    def analyse(trained: ExperimentRun) -> Results:
        reader = trained.reader
        long = None if config.long_steps is None else {r: {
            k: v if k == "step" else v[0] for k, v in run_scalars(
                reader, [f"long-{r}-seed{config.seed:03d}_0"], _SCALARS,
                finite="test_accuracy").items()} for r in REGIMES}
        return trained.pipeline(
            groups, {"delays": config.delays, "rank": config.rank, "pca": config.pca,
                     "pca_center": True}, params=OBSERVED_PARAMETER, loss="train_loss",
            title="Transformer grokking: constrained vs unconstrained training (fig. 5, S6)",
            question="Are the early training dynamics of a transformer that groks and of one "
                     "whose weight norm is held fixed conjugate?",
            conditions=_conditions(config),
            stats={"pairs": {k: v for k, v in PAIRS.items() if v[1] in conds}},
            fields={"fit_shape": fit_shape(config), "long_curves": long,
                    "curves": {k: loss_curves(reader, groups, k) for k in _SCALARS}},
            sections=lambda spectra: {
                "unit_circle": unit_circle_section(spectra, config.unit_circle_tol,
                                                   config.unit_circle_angle)},
            claims=paper_claims, figures=_figures(reader, groups) if trained.figures else None,
            data={"name": f"a + b mod {config.modulus}", "train_fraction": config.train_fraction,
                  "source": "generated (conjugacy.data.modular_addition), split seeded per seed"})

    return run_experiment(study, out_dir, analyse, progress=progress, figures=figures,
                          workers=workers, scheduler=scheduler, processes=processes)


def _conditions(cfg: GrokkingConfig) -> dict[str, str]:
    what = {"unconstrained": f"AdamW weight decay {cfg.weight_decay}",
            "constrained": f"weights x {cfg.alpha} once, global norm held fixed, no weight decay"}
    return {"unconstrained": f"{what['unconstrained']}; {cfg.steps} steps",
            "constrained": f"{what['constrained']}; {cfg.steps} steps",
            "constrained_s6": f"{what['constrained']}; {cfg.s6_steps} steps (fig. S6)"}
