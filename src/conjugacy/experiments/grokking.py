"""Transformer grokking: Koopman spectra of constrained vs unconstrained training (fig. 5, S6).

Reproduces section 4.4 and appendix E of Redman et al. (NeurIPS 2024). A one-layer transformer
(the model of Nanda et al. 2023 as modified in the Omnigrok code of Liu et al. 2023) learns
``a + b mod 113`` from 30 % of the pairs, full batch, in float64, with AdamW (lr 1e-3,
betas (0.9, 0.98)) in two regimes:

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
(components of the centred snapshots, raw snapshots projected on them), 32 delays, top 10 modes
(DMD-RRR, plain DMD eigenvalues). Spectra are compared with the Wasserstein distance, on all
eigenvalues and on the residual-filtered spectra, and with a permutation test whose groups are
the per-seed spectra of each regime (:mod:`conjugacy.analysis`).

The fit must not be under-determined: each spectrum has ``pca * (delays + 1)`` observables
(330) and ``n_replicas * (steps - delays)`` snapshot pairs, so the quick scale uses 6 runs per
seed (408 pairs; 2 runs gave 136, fewer pairs than observables, and an operator that fits any
data). The unit-circle contrast of the paper is on the scale of 0.01 (its saved eigenvalues: the
unconstrained pair at ``|lambda|`` 1.004-1.011, the constrained one at 0.998-1.000), so
eigenvalues are called "on" the circle within ``unit_circle_tol = 0.002``.

The reference code fits the constrained spectrum with ``X`` from the unconstrained run
(``dmd(Z.T, Z_prime_constrained.T)``); here each regime's spectrum comes from its own snapshots.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_choice, check_int, check_positive_float
from ..analysis import (
    SpectrumGroup,
    compare_conditions,
    filter_spectrum,
    fit_spectra,
    spectra_to_json,
)
from ..data.modular import ModularData, modular_addition
from ..spectrum import Spectrum
from ..study import (
    Job,
    JobContext,
    Study,
    dask_client,
    limit_threads,
    provenance,
    run_study,
    write_results,
)
from ..torch.replicas import train_replicas

__all__ = [
    "OBSERVED_PARAMETER",
    "REGIMES",
    "GrokkingConfig",
    "GrokkingResults",
    "OneLayerTransformer",
    "TrainingProtocol",
    "UnitCircleCounts",
    "PAIRS",
    "fit_shape",
    "global_norm",
    "make_base_model",
    "make_study",
    "run",
    "spectrum_groups",
    "train_job",
    "unit_circle_counts",
]

#: Name of the observed parameter: the MLP output weights, shape (d_model, d_mlp).
OBSERVED_PARAMETER = "mlp.W_out"


class _Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_head: int) -> None:
        super().__init__()
        self.W_K = nn.Parameter(torch.empty(n_heads, d_head, d_model))
        self.W_Q = nn.Parameter(torch.empty(n_heads, d_head, d_model))
        self.W_V = nn.Parameter(torch.empty(n_heads, d_head, d_model))
        self.W_O = nn.Parameter(torch.empty(d_model, n_heads * d_head))
        self.d_head = d_head


class _MLP(nn.Module):
    def __init__(self, d_model: int, d_mlp: int) -> None:
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(d_mlp, d_model))
        self.b_in = nn.Parameter(torch.empty(d_mlp))
        self.W_out = nn.Parameter(torch.empty(d_model, d_mlp))
        self.b_out = nn.Parameter(torch.empty(d_model))


class OneLayerTransformer(nn.Module):
    """The one-layer, LayerNorm-free transformer of Nanda et al. (2023) used in the paper.

    Token embedding ``embed.W_E`` (d_model, d_vocab), learned position embedding
    ``pos_embed.W_pos`` (n_ctx, d_model), one block of causal multi-head attention
    (``attn.W_Q``, ``attn.W_K``, ``attn.W_V``: (n_heads, d_head, d_model); ``attn.W_O``:
    (d_model, n_heads * d_head); scores scaled by 1/sqrt(d_head)) and a ReLU MLP
    (``mlp.W_in`` (d_mlp, d_model), ``mlp.b_in``, ``mlp.W_out`` (d_model, d_mlp), ``mlp.b_out``),
    both added to the residual stream, and an unembedding ``unembed.W_U`` (d_model, d_vocab).
    No LayerNorm, no bias in attention.

    Initialization (as in the reference): every weight matrix ~ N(0, 1) / sqrt(d_model), the
    unembedding ~ N(0, 1) / sqrt(d_vocab), biases zero. With the paper's sizes (d_vocab 114,
    d_model 128, 4 heads of 32, d_mlp 512, n_ctx 3) the model has 226,816 parameters.

    Parameters
    ----------
    d_vocab, d_model, n_heads, d_head, d_mlp, n_ctx : int
        Sizes.
    generator : torch.Generator, optional
        Source of the initial weights (a CPU generator; the weights are drawn on the CPU in
        float64 and then moved, so the same seed gives the same model on any device).
    dtype, device
        Of the parameters (float64 in the paper).

    Notes
    -----
    :meth:`forward` returns the logits at the **last** position only, which is where the label is
    read. Positions 0 and 1 influence the last position only through the attention keys and
    values, which are computed from the residual stream *before* the MLP, so skipping the MLP and
    unembedding at earlier positions gives the same logits and gradients as the reference model
    at a third of the MLP cost; the causal mask is then a no-op (the last query sees every
    position). Keys, values and queries are linear in the (token, position) embedding, so they
    are computed once per (position, token) pair and gathered. Both are exact rewrites of the
    reference computation (a test compares against the all-positions masked forward).
    """

    def __init__(
        self,
        d_vocab: int = 114,
        d_model: int = 128,
        n_heads: int = 4,
        d_head: int = 32,
        d_mlp: int = 512,
        n_ctx: int = 3,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        for name, value in [("d_vocab", d_vocab), ("d_model", d_model), ("n_heads", n_heads),
                            ("d_head", d_head), ("d_mlp", d_mlp), ("n_ctx", n_ctx)]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.embed = nn.Module()
        self.embed.W_E = nn.Parameter(torch.empty(d_model, d_vocab))
        self.pos_embed = nn.Module()
        self.pos_embed.W_pos = nn.Parameter(torch.empty(n_ctx, d_model))
        self.attn = _Attention(d_model, n_heads, d_head)
        self.mlp = _MLP(d_model, d_mlp)
        self.unembed = nn.Module()
        self.unembed.W_U = nn.Parameter(torch.empty(d_model, d_vocab))
        self.d_vocab, self.d_model, self.n_ctx = d_vocab, d_model, n_ctx
        self.reset_parameters(generator)
        self.to(device=device, dtype=dtype)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw the reference initialization (in a fixed parameter order) from ``generator``."""
        for name, param in self.named_parameters():
            if name.endswith(("b_in", "b_out")):
                param.zero_()
                continue
            scale = self.d_vocab if name == "unembed.W_U" else self.d_model
            draw = torch.randn(param.shape, generator=generator, dtype=torch.float64)
            param.copy_(draw / math.sqrt(scale))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits at the last position.

        Parameters
        ----------
        tokens : LongTensor (batch, n_ctx)
            Token ids in ``[0, d_vocab)``.

        Returns
        -------
        Tensor (batch, d_vocab)
        """
        if tokens.ndim != 2 or tokens.shape[1] > self.n_ctx:
            raise ValueError(
                f"tokens must have shape (batch, n_ctx <= {self.n_ctx}), got {tuple(tokens.shape)}"
            )
        attn, mlp = self.attn, self.mlp
        n_pos = tokens.shape[1]
        # Attention inputs depend on (position, token) only: compute keys, values and queries
        # for the whole (n_pos, d_vocab) table and gather, instead of once per example.
        table = self.embed.W_E.T[None] + self.pos_embed.W_pos[:n_pos, None]  # p v d
        key_tab = torch.einsum("ihd,pvd->pvih", attn.W_K, table)
        value_tab = torch.einsum("ihd,pvd->pvih", attn.W_V, table)
        query_tab = torch.einsum("ihd,vd->vih", attn.W_Q, table[-1])
        pos = torch.arange(n_pos, device=tokens.device)
        keys, values = key_tab[pos, tokens], value_tab[pos, tokens]  # b p i h
        query = query_tab[tokens[:, -1]]  # b i h
        scores = torch.einsum("bpih,bih->bip", keys, query) / math.sqrt(attn.d_head)
        z = torch.einsum("bpih,bip->bih", values, F.softmax(scores, dim=-1))
        last = table[-1][tokens[:, -1]] + z.flatten(1) @ attn.W_O.T
        hidden = F.relu(last @ mlp.W_in.T + mlp.b_in)
        last = last + hidden @ mlp.W_out.T + mlp.b_out
        return last @ self.unembed.W_U


def global_norm(model: nn.Module) -> torch.Tensor:
    """Global L2 norm of all parameters of ``model`` (a 0-d tensor)."""
    return torch.sqrt(sum(p.detach().pow(2).sum() for p in model.parameters()))


# ----------------------------------------------------------------------------- configuration
REGIMES = ("unconstrained", "constrained")
_SCALES = ("quick", "paper", "custom")


@dataclass(frozen=True)
class GrokkingConfig:
    """Settings of the grokking experiment (defaults: the quick scale; see :meth:`paper`).

    Attributes
    ----------
    scale : {"quick", "paper", "custom"}
        Label of the preset the settings came from (informational; the fields decide).
    n_seeds : int
        Independent seeds (``seed, seed + 1, ...``); each gives its own data split, base
        initialization and spectrum per regime. The permutation test needs >= 2 per regime and
        can only reach p < 0.05 with >= 4.
    n_replicas : int
        Runs per seed and regime: the base initialization and ``n_replicas - 1`` perturbed
        copies of it (the paper's 10 initializations per seed are ``n_replicas = 10``).
    steps : int
        Optimizer steps of the fig. 5 window; each run records ``steps + 1`` snapshots (the
        initial weights and the weights after every step) and the spectrum uses all of them.
    s6 : bool
        Also the fig. S6 control: the constrained runs are trained for ``s6_steps`` and a second
        constrained spectrum is fitted on that longer window. (The first ``steps`` steps of those
        runs are the fig. 5 constrained runs: training is deterministic.)
    s6_steps : int
        Length of the fig. S6 constrained window (200 in the paper).
    long_steps : int or None
        If set, also train the base initialization of the first seed once per regime for this
        many steps (fig. 5A/B: grokking curves on a log-step axis).
    long_eval_points : int
        About how many log-spaced steps the long runs are evaluated at.
    eval_every : int
        Evaluate train/test loss and accuracy every this many steps in the short runs (the
        test-set forward pass costs as much as a training step on a CPU).
    device : str
        Torch device of the training ("cpu", "cuda", ...).
    seed : int
        First seed.
    modulus, train_fraction : int, float
        The task: ``a + b mod modulus``, this fraction of the pairs for training.
    eps : float
        Relative size of the multiplicative perturbation ``W0 * (1 + eps * noise)``.
    noise : {"uniform", "gaussian"}
        Distribution of ``noise`` (the reference code of this experiment draws uniform [-1, 1]).
    alpha : float
        Scaling of the initial weights in the constrained regime (0.8).
    lr, betas : float, (float, float)
        AdamW learning rate and betas.
    weight_decay : float
        AdamW weight decay of the unconstrained regime (the constrained regime uses 0).
    d_model, n_heads, d_head, d_mlp : int
        Transformer sizes (128, 4, 32, 512).
    delays, rank, pca : int
        Koopman fit: time delays, modes kept, PCA components (32, 10, 10).
    unit_circle_tol : float
        An eigenvalue is "on" the unit circle when ``| |lambda| - 1 | <= unit_circle_tol``,
        "outside" above, "inside" below.
    n_permutations : int
        Random relabelings of the permutation test (exact enumeration when fewer suffice).
    """

    scale: str = "quick"
    n_seeds: int = 4
    n_replicas: int = 6
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
    n_permutations: int = 999

    @classmethod
    def quick(cls, **overrides: Any) -> GrokkingConfig:
        """4 seeds x (base + 5 replicas) x 100 steps per regime: 408 snapshot pairs for 330
        observables per spectrum (about 15 minutes on 2 CPU cores)."""
        return cls(**{"scale": "quick", **overrides})

    @classmethod
    def paper(cls, **overrides: Any) -> GrokkingConfig:
        """The published scale: 20 seeds x 10 initializations, fig. S6, evaluation every step."""
        settings = dict(scale="paper", n_seeds=20, n_replicas=10, s6=True, eval_every=1)
        return cls(**{**settings, **overrides})

    @classmethod
    def from_scale(cls, scale: str, **overrides: Any) -> GrokkingConfig:
        """``quick()`` or ``paper()`` by name, with field overrides."""
        if scale == "quick":
            return cls.quick(**overrides)
        if scale == "paper":
            return cls.paper(**overrides)
        raise ValueError(f"scale must be 'quick' or 'paper', got {scale!r}")

    def __post_init__(self) -> None:
        check_choice(self.scale, "scale", _SCALES)
        check_choice(self.noise, "noise", ("uniform", "gaussian"))
        check_int(self.n_seeds, "n_seeds", minimum=2)
        check_int(self.n_replicas, "n_replicas", minimum=1)
        check_int(self.steps, "steps", minimum=1)
        check_int(self.s6_steps, "s6_steps", minimum=1)
        check_int(self.long_eval_points, "long_eval_points", minimum=2)
        check_int(self.eval_every, "eval_every", minimum=1)
        if self.eval_every > 64:
            raise ValueError(f"eval_every must be <= 64 (the store's chunk), got {self.eval_every}")
        check_int(self.seed, "seed", minimum=0)
        check_int(self.modulus, "modulus", minimum=2)
        for name in ("d_model", "n_heads", "d_head", "d_mlp", "rank", "pca", "n_permutations"):
            check_int(getattr(self, name), name, minimum=1)
        check_int(self.delays, "delays", minimum=0)
        if self.long_steps is not None:
            check_int(self.long_steps, "long_steps", minimum=1)
        if not isinstance(self.s6, bool):
            raise TypeError(f"s6 must be a bool, got {self.s6!r}")
        for name in ("eps", "alpha", "lr"):
            check_positive_float(getattr(self, name), name)
        check_positive_float(self.weight_decay, "weight_decay", allow_zero=True)
        check_positive_float(self.unit_circle_tol, "unit_circle_tol", allow_zero=True)
        if not (isinstance(self.train_fraction, (int, float)) and 0 < self.train_fraction < 1):
            raise ValueError(f"train_fraction must lie in (0, 1), got {self.train_fraction!r}")
        if (
            not isinstance(self.betas, tuple)
            or len(self.betas) != 2
            or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas)
        ):
            raise ValueError(f"betas must be a tuple of two numbers in [0, 1), got {self.betas!r}")
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

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds of the experiment, ``seed, ..., seed + n_seeds - 1``."""
        return tuple(range(self.seed, self.seed + self.n_seeds))

    def constrained_steps(self) -> int:
        """Optimizer steps of the constrained runs (``s6_steps`` when ``s6``)."""
        return self.s6_steps if self.s6 else self.steps


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class UnitCircleCounts:
    """How many eigenvalues lie outside, on and inside the unit circle.

    ``on`` means ``| |lambda| - 1 | <= tol``. The ``complex_*`` counts only consider eigenvalues
    with a non-zero imaginary part (``|Im lambda| > 1e-9 |lambda|``), i.e. members of conjugate
    pairs, which is what the paper's claim is about. ``max_modulus`` is the largest ``|lambda|``
    and ``max_complex_modulus`` the largest among the non-real ones (None if there are none).
    """

    outside: int
    on: int
    inside: int
    complex_outside: int
    complex_on: int
    complex_inside: int
    tol: float
    max_modulus: float
    max_complex_modulus: float | None


def unit_circle_counts(eigenvalues: Any, tol: float) -> UnitCircleCounts:
    """Classify eigenvalues against the unit circle with tolerance ``tol`` (see the class)."""
    eig = np.asarray(getattr(eigenvalues, "eigenvalues", eigenvalues), dtype=complex).ravel()
    mod = np.abs(eig)
    outside, inside = mod > 1 + tol, mod < 1 - tol
    on = ~outside & ~inside
    cplx = np.abs(eig.imag) > 1e-9 * np.maximum(mod, np.finfo(float).tiny)
    return UnitCircleCounts(
        int(outside.sum()), int(on.sum()), int(inside.sum()),
        int((outside & cplx).sum()), int((on & cplx).sum()), int((inside & cplx).sum()),
        float(tol), float(mod.max()) if mod.size else 0.0,
        float(mod[cplx].max()) if cplx.any() else None,
    )


@dataclass(frozen=True)
class GrokkingResults:
    """Everything :func:`run` computed (also written to ``out_dir/results.json``).

    Attributes
    ----------
    config : GrokkingConfig
    seeds : tuple of int
    spectra : dict of str -> tuple of Spectrum
        One spectrum per seed for each condition: ``"unconstrained"`` and ``"constrained"``
        (the fig. 5 window of ``steps``), and ``"constrained_s6"`` (``s6_steps``) when ``s6``.
    comparison : dict
        :func:`conjugacy.analysis.compare_conditions` of the spectra: the pairs ``"fig5"``
        (unconstrained vs constrained) and ``"s6"`` (unconstrained vs constrained_s6), on all
        eigenvalues (``"all"``) and on the residual-filtered spectra (``"filtered"``, the one
        the verdicts use when the engine filters): per-seed distances, distances between seeds,
        permutation tests, shuffle control, KS tests, verdicts.
    unit_circle : dict of str -> dict of str -> list of UnitCircleCounts
        ``unit_circle["all" | "filtered"][condition]``: one entry per seed.
    curves : dict of str -> dict of str -> ndarray
        Per regime: ``"step"`` (n_records,) and ``"train_loss"``, ``"train_accuracy"``,
        ``"test_loss"``, ``"test_accuracy"``, ``"weight_norm"`` arrays (n_runs, n_records), NaN
        where a quantity was not evaluated.
    long_curves : dict or None
        Per regime: ``"step"``, the four loss/accuracy series and ``"weight_norm"`` (n_points,)
        of the long run.
    wall_time_s : float
        Wall-clock time of :func:`run`, including any training skipped because it was resumed.
    out_dir : Path
    figures : dict of str -> Path
    timing : dict
        Training (per job), spectra and statistics wall times.
    """

    config: GrokkingConfig
    seeds: tuple[int, ...]
    spectra: dict[str, tuple[Spectrum, ...]]
    comparison: dict[str, Any]
    unit_circle: dict[str, dict[str, list[UnitCircleCounts]]]
    curves: dict[str, dict[str, np.ndarray]]
    long_curves: dict[str, dict[str, np.ndarray]] | None
    wall_time_s: float
    out_dir: Path
    figures: dict[str, Path] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)

    @property
    def pvalues(self) -> dict[str, float | None]:
        """Permutation-test p-value of each pair (``"fig5"``, ``"s6"``) on the verdict's spectra."""
        return {k: v["pvalue"] for k, v in self.comparison["verdicts"].items()}


# ----------------------------------------------------------------------------- analysis
_SCALARS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "weight_norm")
#: The compared pairs of conditions: fig. 5 and the fig. S6 control.
PAIRS = {"fig5": ("unconstrained", "constrained"), "s6": ("unconstrained", "constrained_s6")}


def _curves(store: Any, runs: list[str], n_snapshots: int) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"step": store.steps(runs[0])[:n_snapshots]}
    for name in _SCALARS:
        out[name] = np.stack([store.scalars(r, name)[:n_snapshots] for r in runs])
    return out


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


def _summary_counts(counts: list[UnitCircleCounts]) -> dict[str, Any]:
    keys = ("outside", "on", "inside", "complex_outside", "complex_on", "complex_inside")
    total = {k: int(sum(getattr(c, k) for c in counts)) for k in keys}
    keys = keys + ("max_modulus", "max_complex_modulus")
    seeds_with = {
        "complex_pair_outside": int(sum(c.complex_outside >= 2 for c in counts)),
        "complex_pair_on": int(sum(c.complex_on >= 2 for c in counts)),
    }
    return {"total": total, "n_seeds_with": seeds_with,
            "per_seed": [{k: getattr(c, k) for k in keys} for c in counts],
            "tol": counts[0].tol if counts else None}


def _results_dict(res: GrokkingResults, study: Study) -> dict[str, Any]:
    cfg = res.config
    return {
        "experiment": "grokking",
        "description": (
            f"Koopman spectra of the MLP output weights ({OBSERVED_PARAMETER}, "
            f"{cfg.d_model} x {cfg.d_mlp}) of a one-layer transformer on a + b mod "
            f"{cfg.modulus}, unconstrained (AdamW weight decay {cfg.weight_decay}) "
            f"vs constrained (weights x {cfg.alpha} once, constant global norm, no weight "
            "decay). Redman et al. 2024, fig. 5 and S6."
        ),
        "config": cfg,
        "seeds": list(res.seeds),
        "observed_parameter": OBSERVED_PARAMETER,
        "fit_shape": fit_shape(cfg),
        "spectra": spectra_to_json(res.spectra),
        "comparison": res.comparison,
        "unit_circle": {
            "rule": "on: ||lambda| - 1| <= tol; outside: |lambda| > 1 + tol; inside: "
                    "|lambda| < 1 - tol; complex_*: only eigenvalues with Im != 0",
            **{which: {cond: _summary_counts(c) for cond, c in per.items()}
               for which, per in res.unit_circle.items()},
        },
        "curves": {
            regime: {
                "step": c["step"],
                **{f"{k}_mean": _nan_mean(c[k]) for k in _SCALARS},
                **{f"{k}_std": _nan_std(c[k]) for k in _SCALARS},
            }
            for regime, c in res.curves.items()
        },
        "long_curves": res.long_curves,
        "figures": {k: v.name for k, v in res.figures.items()},
        "wall_time_s": res.wall_time_s,
        "timing_seconds": res.timing,
        "provenance": provenance(study, data={
            "name": f"a + b mod {cfg.modulus}", "train_fraction": cfg.train_fraction,
            "source": "generated (conjugacy.data.modular_addition), split seeded per seed"}),
    }


def _nan_mean(x: np.ndarray) -> np.ndarray:
    finite = np.isfinite(x)
    count = finite.sum(axis=0)
    total = np.where(finite, x, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _nan_std(x: np.ndarray) -> np.ndarray:
    mean = _nan_mean(x)
    finite = np.isfinite(x)
    count = finite.sum(axis=0)
    sq = np.where(finite, (x - mean) ** 2, 0.0).sum(axis=0)
    return np.where(count > 0, np.sqrt(sq / np.maximum(count, 1)), np.nan)


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


def _long_curve(store: Any, run: str) -> dict[str, np.ndarray]:
    step = store.steps(run)
    acc = store.scalars(run, "test_accuracy")
    keep = np.isfinite(acc)
    curve = {"step": step[keep]}
    for name in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "weight_norm"):
        curve[name] = store.scalars(run, name)[keep]
    return curve


# ----------------------------------------------------------------------------- entry point
def _training_fields(config: GrokkingConfig) -> dict[str, Any]:
    # Fields that change what is trained (not the analysis settings): a resumed out_dir must
    # agree on them.
    skip = {"scale", "n_seeds", "long_steps", "long_eval_points", "delays", "rank", "pca",
            "unit_circle_tol", "n_permutations", "s6", "device"}
    return {f.name: getattr(config, f.name) for f in fields(config) if f.name not in skip}


def _job_key(condition: str, seed: int) -> str:
    return f"{condition}-seed{seed:03d}"


def make_study(config: GrokkingConfig) -> Study:
    """The experiment as a :class:`~conjugacy.study.Study`: one job per (regime, seed), plus one
    long run per regime when ``long_steps`` is set. Resumable from checkpoints."""
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
        seed_major=False,
    )


def run(config: GrokkingConfig, out_dir: str | os.PathLike[str], *, progress: bool = False,
        workers: int | None = None, scheduler: str | None = None, processes: bool = True,
        ) -> GrokkingResults:
    """Train, fit and compare; write ``results.json``, figures and the trajectory stores.

    Parameters
    ----------
    config : GrokkingConfig
    out_dir : path
        Created if needed. Holds ``study.json``, ``trajectories/<regime>-seed<s>.zarr`` (one
        store per job: the recorded ``mlp.W_out`` of every run, with train/test loss, accuracy
        and weight norm as scalars), ``checkpoints/``, ``results.json``, ``fig5.png/.svg``,
        ``figS6.png/.svg`` (with ``s6``) and ``fig5AB.png/.svg`` (with ``long_steps``). Calling
        again with the same configuration resumes: finished jobs are skipped, interrupted runs
        continue from their checkpoint.
    progress : bool
        Rich progress bars while training.
    workers, scheduler, processes
        Run the jobs and the spectra on Dask (see :func:`conjugacy.study.run_study`).

    Returns
    -------
    GrokkingResults
    """
    study = make_study(config)
    if workers is not None or scheduler is not None:
        with dask_client(scheduler, workers, processes=processes) as client:
            return _run(config, study, Path(out_dir), progress, client)
    return _run(config, study, Path(out_dir), progress, None)


def _run(config: GrokkingConfig, study: Study, out: Path, progress: bool, client: Any
         ) -> GrokkingResults:
    start = time.perf_counter()
    trained = run_study(study, out, client=client, progress=progress)
    t1 = time.perf_counter()
    jobs = {(j.condition, j.seed): j for j in study.jobs()}
    with limit_threads(study.threads), trained.reader() as reader:
        fitted = fit_spectra(reader, spectrum_groups(config, study), _spectrum_settings(config),
                             params=OBSERVED_PARAMETER, client=client)
        t2 = time.perf_counter()
        conds = ["unconstrained", "constrained"] + (["constrained_s6"] if config.s6 else [])
        spectra = {c: tuple(fitted[(c, s, None)] for s in config.seeds) for c in conds}
        comparison = compare_conditions(
            spectra, pairs={k: v for k, v in PAIRS.items() if v[1] in spectra},
            seed=config.seed, n_permutations=config.n_permutations)
        circle = {"all": {c: [unit_circle_counts(s, config.unit_circle_tol) for s in spectra[c]]
                          for c in conds}}
        filtered = {c: [filter_spectrum(s) for s in spectra[c]] for c in conds}
        if all(f is not None for v in filtered.values() for f in v):
            circle["filtered"] = {c: [unit_circle_counts(f, config.unit_circle_tol) for f in v]
                                  for c, v in filtered.items()}
        curves = {}
        for regime in REGIMES:
            runs = [r for s in config.seeds for r in jobs[(regime, s)].run_names]
            curves[regime] = _curves(reader, runs, _regime_steps(config, regime) + 1)
        long_curves = None
        if config.long_steps is not None:
            long_curves = {r: _long_curve(reader, f"long-{r}-seed{config.seed:03d}_0")
                           for r in REGIMES}
    t3 = time.perf_counter()
    results = GrokkingResults(
        config=config, seeds=config.seeds, spectra=spectra, comparison=comparison,
        unit_circle=circle, curves=curves, long_curves=long_curves, wall_time_s=0.0, out_dir=out,
    )
    figures = _figures(results)
    timing = {**trained.timing(), "spectra": t2 - t1, "statistics": t3 - t2}
    results = replace(results, figures=figures, wall_time_s=time.perf_counter() - start,
                      timing=timing)
    write_results(out, _results_dict(results, study))
    return results


def _spectrum_settings(config: GrokkingConfig) -> dict[str, Any]:
    """Keyword arguments of :func:`conjugacy.koopman_spectrum` for every group."""
    return {"delays": config.delays, "rank": config.rank, "pca": config.pca, "pca_center": True}


def fit_shape(config: GrokkingConfig) -> dict[str, Any]:
    """Observables and snapshot pairs of each spectrum, and whether the fit is determined.

    Observables: ``pca * (delays + 1)``; pairs: ``n_replicas * (window - delays)`` for the fig. 5
    window (``steps``) and the S6 window (``s6_steps``).
    """
    n_obs = config.pca * (config.delays + 1)
    windows = {"fig5": config.steps} | ({"s6": config.s6_steps} if config.s6 else {})
    pairs = {k: config.n_replicas * (w - config.delays) for k, w in windows.items()}
    return {"observables": n_obs, "snapshot_pairs": pairs,
            "determined": {k: v > n_obs for k, v in pairs.items()}}


def _cut(curve: Mapping[str, np.ndarray], n_records: int) -> dict[str, np.ndarray]:
    return {k: (v[:n_records] if k == "step" else v[:, :n_records]) for k, v in curve.items()}


def _figures(res: GrokkingResults) -> dict[str, Path]:
    from ..plots import save_figure
    from ..plots.grokking import figure_fig5, figure_grokking_curves, figure_s6

    cfg, out = res.config, res.out_dir
    figs: dict[str, Path] = {}
    n5 = cfg.steps + 1
    curves5 = {regime: _cut(c, n5) for regime, c in res.curves.items()}
    fig = figure_fig5(curves5, {k: res.spectra[k] for k in REGIMES},
                      pvalue=res.pvalues["fig5"])
    figs["fig5"] = save_figure(fig, out / "fig5")[0]
    if cfg.s6:
        fig = figure_s6(
            res.curves,
            {"unconstrained": res.spectra["unconstrained"],
             "constrained_s6": res.spectra["constrained_s6"]},
            {"unconstrained": cfg.steps, "constrained": cfg.s6_steps},
            pvalue=res.pvalues["s6"],
        )
        figs["figS6"] = save_figure(fig, out / "figS6")[0]
    if res.long_curves is not None:
        figs["fig5AB"] = save_figure(figure_grokking_curves(res.long_curves), out / "fig5AB")[0]
    return figs
