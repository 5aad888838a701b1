"""Conjugate optimizers: online mirror descent, online gradient descent and bisection.

Reproduces Redman et al. (NeurIPS 2024), sec. 4.1, fig. 2 (``f(x) = sum tan x_i``) and fig. S1
(``f(x) = sum x_i^4``), appendix A, as published (SPEC section 5A): ``d = 2``, ``eta = 0.01``,
``T = 100`` iterates (the initial condition and 99 updates), 25 initial conditions per optimizer
(5 x 5 grids, run ``n`` at grid position ``(n % 5, n // 5)`` as in the reference code), float64.

The optimizers (:mod:`conjugacy.data.optimizers`: their updates, feasible boxes and the published
grids): OMD with the log barrier (its Bregman projection onto ``K = [0.01, 1]^2`` is a clip), OGD
on ``f(exp(u))`` clipped to ``log K`` (conjugate to OMD by ``q(u) = exp(u)``), and bisection on
the segment from ``a(0)`` to ``b(0)`` (``tan`` only), whose bracket collapses at an exact root.

The Koopman step: the iterates (for OGD ``u``, not ``exp(u)``), 4 delays (10 observables),
DMD-RRR, all 10 eigenvalues (their residuals are ~0 whatever the eigenvalues, so they carry no
information here). The 25 runs of each optimizer are split into 5 groups of 5 by the diagonals of
the grid (:func:`initial_condition_groups`), one spectrum per group; the analysis pipeline
(:func:`conjugacy.analysis.summarize`) compares the group spectra of each pair by the permutation
test (252 relabelings: the smallest p is 1/126) with the one verdict rule
(:func:`conjugacy.stats.verdict`: "undecided" when no p below alpha is attainable, e.g. with 3
groups), beside ``W_p`` between the spectra of all 25 runs and the paper's shuffle control.
Loss curves: ``f(x)`` (OMD), ``f(exp(u))`` (OGD: one loss seen through the conjugacy) and
``|f(z)|`` (BM: the residual of the root search, as the reference code plots in fig. 2B).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_open
from .._checks import (
    Choice,
    DeclaredConfig,
    Float,
    Int,
    Rank,
    check_int,
    setting,
)
from ..analysis import Claim, Results, summarize
from ..analysis.results import curve_summary, verdict_claim
from ..data.optimizers import BM_BOX as BM_BOX  # noqa: F401 - moved there, kept importable
from ..data.optimizers import (
    LOSSES,
    bisection_initial_conditions,
    bisection_trajectory,
    exact_root_step,
    loss_value,
    ogd_initial_conditions,
    ogd_trajectory,
    omd_initial_conditions,
    omd_trajectory,
)
from ..data.optimizers import OGD_BOX as OGD_BOX  # noqa: F401
from ..data.optimizers import OMD_BOX as OMD_BOX  # noqa: F401
from ..data.optimizers import loss_gradient as loss_gradient  # noqa: F401
from ..spectrum import RankWarning, Spectrum, koopman_spectrum
from ._settings import DELAYS, N_PERMUTATIONS, N_SHUFFLES, SEED

__all__ = ["Iterates", "OptimizerConfig", "claims", "fit_spectra", "initial_condition_groups",
           "run", "simulate"]

#: The optimizers, in the order of the comparison, and what each iterates.
CONDITIONS = {"omd": "online mirror descent (log barrier), iterates x",
              "ogd": "online gradient descent on f(exp(u)), iterates u",
              "bm": "bisection on the segment a(0)-b(0), iterates z"}
METHODS = tuple(CONDITIONS)
#: The run of the example-trajectory panel: x(0) = (0.5, 0.7), as in the reference code.
EXAMPLE_RUN = 17

def initial_condition_groups(n_groups: int = 5) -> tuple[tuple[int, ...], ...]:
    """The 25 runs in ``n_groups`` (2 to 12) disjoint groups: run ``n`` goes to group
    ``(n % 5 + n // 5) % n_groups`` (diagonals of the grid: with 5 groups each holds every value
    of each coordinate once). ValueError outside 2..12.

    >>> initial_condition_groups(5)[0]
    (0, 9, 13, 17, 21)
    """
    n_groups = check_int(n_groups, "n_groups", minimum=2)
    if n_groups > 12:
        raise ValueError(
            f"n_groups must be <= 12 so that every group holds at least 2 of the 25 runs, got {n_groups}"
        )
    labels = [(n % 5 + n // 5) % n_groups for n in range(25)]
    return tuple(tuple(n for n in range(25) if labels[n] == k) for k in range(n_groups))


@dataclass(frozen=True)
class OptimizerConfig(DeclaredConfig):
    """Settings of the optimizer experiment; the defaults are the paper's (SPEC section 5A).

    The optimizers themselves are deterministic; the seed drives the statistics.

    Raises
    ------
    ValueError
        A field outside its domain, or ``n_steps < delays + 2``, naming it.

    Examples
    --------
    >>> OptimizerConfig(loss="quartic").pairs
    (('omd', 'ogd'),)
    """

    loss: str = setting("tan", Choice(*LOSSES), "``tan``: sum tan(x), fig. 2 (OMD, OGD, BM); "
                                                "``quartic``: sum x^4, fig. S1 (OMD, OGD).")
    method: str = setting("rrr", Choice("rrr", "standard", "exact"),
                          "DMD variant (the paper: DMD-RRR).")
    delays: int = setting(4, DELAYS, "Time delays of the 2-D iterates (the paper: 4).")
    rank: int | str | None = setting(10, Rank(), "Koopman modes kept (the paper: all 10 "
                                                 "eigenvalues; 'svht': the Gavish-Donoho "
                                                 "threshold; None: the tolerance rule).")
    eta: float = setting(0.01, Float(0, open_minimum=True), "Learning rate of OMD and OGD.")
    n_steps: int = setting(100, Int(1), "Iterates per run, the initial condition included.")
    n_groups: int = setting(5, Int(2, 12), "Groups of initial conditions compared by the "
                                           "permutation test.")
    n_shuffles: int = setting(100, N_SHUFFLES)
    n_permutations: int = setting(999, N_PERMUTATIONS, (
        "Random relabelings of the permutation test (:func:`conjugacy.analysis."
        "compare_conditions`; with 5 + 5 spectra the 252 relabelings are enumerated when "
        "``n_permutations >= 252``)."))
    p: float = setting(1.0, Float(1), "Order of the Wasserstein distance.")
    alpha: float = setting(0.05, Float(0, 1, open_minimum=True, open_maximum=True),
                           "Level of the permutation test: a pair is *not conjugate* when "
                           "``p < alpha``.")
    seed: int = setting(0, SEED, "Seed of the shuffle control and the tests.")

    def check(self) -> None:
        if self.n_steps < self.delays + 2:
            raise ValueError(f"n_steps must be >= delays + 2 = {self.delays + 2} (one snapshot "
                             f"pair per run), got {self.n_steps}")

    @property
    def methods(self) -> tuple[str, ...]:
        """The optimizers run for this loss: BM only for ``"tan"``."""
        return METHODS if self.loss == "tan" else METHODS[:2]

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """The compared pairs, e.g. ``(("omd", "ogd"), ("omd", "bm"), ("ogd", "bm"))``."""
        m = self.methods
        return tuple((m[i], m[j]) for i in range(len(m)) for j in range(i + 1, len(m)))


@dataclass(frozen=True, eq=False)
class Iterates:
    """What the optimizers did from their 25 initial conditions, by optimizer name (read-only).

    ``initial_conditions``: x(0), u(0) (25, 2) and for BM (25, 2, 2), axis 1 ``(a(0), b(0))``;
    ``trajectories``: the iterates x, u, z (25, n_steps, 2), the observables of the Koopman step;
    ``losses``: ``f(x)``, ``f(exp(u))``, ``|f(z)|`` (25, n_steps); ``exact_root_steps`` (BM only,
    else None): the first step with ``f(z) == 0`` exactly per run, -1 if never.

    >>> it = simulate(OptimizerConfig(loss="quartic", n_steps=10))
    >>> it.trajectories["omd"].shape, it.losses["ogd"].shape, it.exact_root_steps is None
    ((25, 10, 2), (25, 10), True)
    """

    initial_conditions: dict[str, np.ndarray]
    trajectories: dict[str, np.ndarray]
    losses: dict[str, np.ndarray]
    exact_root_steps: np.ndarray | None = None

    def __post_init__(self) -> None:
        for mapping in (self.initial_conditions, self.trajectories, self.losses):
            for arr in mapping.values():
                arr.setflags(write=False)
        if self.exact_root_steps is not None:
            self.exact_root_steps.setflags(write=False)


def simulate(config: OptimizerConfig) -> Iterates:
    """The optimizers of ``config`` from the published grids, ``config.n_steps`` iterates each.

    >>> it = simulate(OptimizerConfig(loss="quartic", n_steps=30))
    >>> sorted(it.trajectories), it.trajectories["omd"].shape, it.exact_root_steps is None
    (['ogd', 'omd'], (25, 30, 2), True)
    """
    c = config
    x0, u0 = omd_initial_conditions(), ogd_initial_conditions()
    x = omd_trajectory(x0, loss=c.loss, eta=c.eta, n_steps=c.n_steps)
    u = ogd_trajectory(u0, loss=c.loss, eta=c.eta, n_steps=c.n_steps)
    ics, trajs = {"omd": x0, "ogd": u0}, {"omd": x, "ogd": u}
    losses = {"omd": loss_value(c.loss, x), "ogd": loss_value(c.loss, np.exp(u))}
    if "bm" not in c.methods:
        return Iterates(ics, trajs, losses)
    a0, b0 = bisection_initial_conditions()
    ics["bm"], trajs["bm"] = np.stack([a0, b0], axis=1), bisection_trajectory(
        a0, b0, loss=c.loss, n_steps=c.n_steps)
    losses["bm"] = np.abs(loss_value(c.loss, trajs["bm"]))
    roots = np.array([exact_root_step(z, c.loss) for z in trajs["bm"]], dtype=np.int64)
    return Iterates(ics, trajs, losses, roots)


def fit_spectra(config: OptimizerConfig, iterates: Iterates
                ) -> tuple[dict[str, Spectrum], dict[str, list[Spectrum]], list[str]]:
    """Per optimizer, the spectrum of all 25 runs (``pooled``), one per group of
    :func:`initial_condition_groups` (``per_group``), and a note per optimizer whose ``rank`` was
    reduced to the data's numerical rank (the RankWarnings of :func:`conjugacy.koopman_spectrum`,
    reported once).

    >>> cfg = OptimizerConfig(n_steps=30)
    >>> pooled, per_group, notes = fit_spectra(cfg, simulate(cfg))
    >>> pooled["omd"].eigenvalues.shape, len(per_group["bm"]), notes[0][:47]
    ((10,), 5, 'BM: the delay-embedded data have numerical rank')
    """
    c, groups = config, initial_condition_groups(config.n_groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankWarning)
        fits = {m: [koopman_spectrum(runs, delays=c.delays, rank=c.rank, method=c.method)
                    for runs in (iterates.trajectories[m], *(iterates.trajectories[m][list(g)]
                                                              for g in groups))]
                for m in c.methods}
    pooled, per_group = {m: f[0] for m, f in fits.items()}, {m: f[1:] for m, f in fits.items()}
    notes = [
        f"{m.upper()}: the delay-embedded data have numerical rank {pooled[m].rank} < "
        f"rank={c.rank}, so {pooled[m].rank} eigenvalues are kept (group spectra: "
        f"{', '.join(map(str, sorted({s.rank for s in per_group[m]})))}); the others would come "
        "from singular values below the tolerance, i.e. rounding noise"
        for m in c.methods if isinstance(c.rank, int) and pooled[m].rank < c.rank]
    return pooled, per_group, notes


def _claim(content: Mapping[str, Any], claim: str, pairs: list[str], expect: str) -> Claim:
    cmp = content["comparison"]
    evidence = "; ".join(
        f"{k.upper()}: {cmp['verdicts'][k]['verdict']}, W1 (all runs) "
        f"{cmp['all']['pooled_distances'][k]:.4f}, p = {cmp['verdicts'][k]['pvalue']:.3g} "
        f"({cmp['n_seeds']} groups per optimizer, {cmp['verdict_uses']} spectra)" for k in pairs)
    return verdict_claim(claim, [cmp["verdicts"][k] for k in pairs], expect, evidence)


def claims(content: Mapping[str, Any]) -> list[Claim]:
    """The paper's claims about fig. 2 / S1, decided on a ``results.json`` of :func:`run`
    (its ``comparison`` and ``pooled_spectra``): OMD and OGD conjugate, their spectra real and
    positive, bisection not conjugate to either (only for ``loss="tan"``).

    >>> res = run(OptimizerConfig(loss="quartic", n_steps=20, n_permutations=99, n_shuffles=10))
    >>> [(c.claim, c.holds) for c in claims(res.content)][0]
    ('OMD and OGD are conjugate', True)
    """
    out = []
    if "omd-ogd" in content["comparison"]["verdicts"]:
        out.append(_claim(content, "OMD and OGD are conjugate", ["omd-ogd"], "conjugate"))
        eig = {m: np.array(content["pooled_spectra"][m][0]["eigenvalues"], float).reshape(-1, 2)
               for m in ("omd", "ogd")}
        real = all(np.abs(e[:, 1]).max() < 1e-10 and e[:, 0].min() > 0 for e in eig.values())
        out.append(Claim(
            "the OMD and OGD spectra consist only of real, positive eigenvalues", bool(real),
            "; ".join(f"{m.upper()}: max |Im| {np.abs(e[:, 1]).max():.2g}, min Re "
                      f"{e[:, 0].min():.3f}" for m, e in eig.items())))
    bm = [k for k in content["comparison"]["verdicts"] if "bm" in k.split("-")]
    if bm:
        out.append(_claim(content, "bisection is not conjugate to OMD or OGD", bm, "not conjugate"))
    return out


def _sections(config: OptimizerConfig, iterates: Iterates) -> dict[str, Any]:
    out: dict[str, Any] = {"figure": "fig. 2" if config.loss == "tan" else "fig. S1",
                           "groups": [list(g) for g in initial_condition_groups(config.n_groups)]}
    if iterates.exact_root_steps is not None:
        steps = iterates.exact_root_steps
        out["bisection"] = {
            "exact_root_steps": steps.tolist(), "runs_with_exact_root": int((steps >= 0).sum()),
            "after_exact_root": "the bracket collapses to z (a = b = z); z is held fixed"}
    return out


def _save_trajectories(out: Path, iterates: Iterates) -> str:
    arrays = {f"{m}{suffix}": getattr(iterates, field)[m] for m in iterates.trajectories
              for suffix, field in (("", "trajectories"), ("_loss", "losses"),
                                    ("_initial", "initial_conditions"))}
    with atomic_open(out / "trajectories.npz", "wb") as fh:
        np.savez(fh, **arrays)
    return "trajectories.npz"


def run(config: OptimizerConfig | None = None, out: Any = None) -> Results:
    """The optimizer experiment (Redman et al. 2024, sec. 4.1, fig. 2 / S1, appendix A):
    :func:`simulate`, :func:`fit_spectra`, the comparison, :func:`claims` and, with ``out``, the
    files.

    ``config`` default ``OptimizerConfig()`` (fig. 2; TypeError if not an OptimizerConfig).
    ``out`` (optional; NotADirectoryError if it or a parent is a file): a folder for
    ``results.json`` (schema ``"conjugacy.results/2"``), ``trajectories.npz`` (per optimizer
    ``m``: ``m`` (25, n_steps, 2), ``m_loss``, ``m_initial``; ``allow_pickle=False`` reads it, and
    ``conjugacy spectrum trajectories.npz --key m`` fits it) and the figures
    (:mod:`conjugacy.plots.optimizers`). The :class:`~conjugacy.analysis.Results` holds the group
    spectra (``spectra``), those of all 25 runs (``content["pooled_spectra"]``) and the verdicts
    (``content["comparison"]["verdicts"]``).

    >>> res = run(OptimizerConfig(n_steps=30, n_shuffles=10, n_permutations=252))
    >>> res.verdicts
    {'omd-ogd': 'conjugate', 'omd-bm': 'not conjugate', 'ogd-bm': 'not conjugate'}
    """
    from ..study import experiment_session, provenance

    c = OptimizerConfig() if config is None else config
    with experiment_session(c, OptimizerConfig, out, experiment="optimizers") as (out, _):
        iterates = simulate(c)
        pooled, per_group, notes = fit_spectra(c, iterates)
        files = {} if out is None else {"trajectories": _save_trajectories(out, iterates)}

        def figures(results: Results, folder: Path) -> list[Path]:
            from ..plots.optimizers import draw_all

            return draw_all(folder, iterates.trajectories, iterates.losses, pooled, c.loss,
                            EXAMPLE_RUN)

        figure = "fig. 2" if c.loss == "tan" else "fig. S1"
        return summarize(
            per_group, experiment="optimizers", title=f"Conjugate optimizers ({figure})",
            question="are OMD, OGD and bisection conjugate (equivalent training dynamics)?",
            conditions={m: CONDITIONS[m] for m in c.methods},
            seeds={m: [f"group {k}" for k in range(c.n_groups)] for m in c.methods},
            observables="iterates", settings={
                "delays": c.delays, "rank": c.rank, "method": c.method,
                "reasoning": "as published: 4 delays of the 2-D iterates (10 observables), all 10 "
                             "eigenvalues"},
            stats={**{k: getattr(c, k) for k in ("alpha", "seed", "n_permutations", "n_shuffles",
                                                 "p", "pairs")}, "shuffle": "pooled", "ks": False},
            pooled=pooled, fields={"config": c.to_dict(), "files": files, "loss": {
                m: curve_summary(v, range(v.shape[1])) for m, v in iterates.losses.items()}},
            sections=lambda spectra: _sections(c, iterates), claims=claims,
            figures=figures, notes=notes, out=out,
            provenance=provenance(data={"name": "closed-form optimizer iterates",
                                        "source": "generated (25 initial conditions per optimizer)"}))
