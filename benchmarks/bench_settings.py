"""Which spectrum settings separate different dynamics from seed-to-seed variation?

Usage:  python benchmarks/bench_settings.py [--reps N] [--first-rep R] [--real-seeds S]
                                            [--first-seed F] [--skip-real] [--rule NAME ...]
                                            [--analyze-delays D] [--first-hour STORE]
                                            [--first-hour-seeds K]
                                            [--save FILE.npz] [--out FILE.md]

**Held out**: the default was chosen on synthetic repetitions 0-11 and digits seeds 0-5 (and
the first-hour store's seeds 0-3); ``--first-rep 12`` and ``--first-seed 6`` evaluate on draws
disjoint from those. ``--rule`` runs a subset (the default always runs, last); ``--save`` keeps
the real cases' distance matrices for re-analysis.

AUROC of "W1(different) > W1(same)" (1 = perfect separation, 0.5 = chance) for each rule of
``RULES`` (a dict: a rule maps the recordings of one comparison to their spectra, or None where it
does not apply; add a rule by adding an entry). The last rule is ``conjugacy analyze``'s default.

* **Synthetic** (issue 20): linear latent systems with 2, 4 or 6 known eigenvalues (real ones and
  conjugate pairs, ``bench_separation.random_eigenvalues``) seen through 3 random channels,
  10 trajectories x 100 steps, process noise ``sigma`` (0.02, 0.1, 0.4) on the latent state and
  measurement noise (2 %, 10 % of the data's standard deviation). Each repetition draws a system
  A, a system B whose eigenvalues are A's moved by 0.1 in random directions (conjugate pairs kept
  conjugate), and records A twice and B once; same = W1(A, A'), different = W1(A, B).
* **Real 1**: an MLP 64-32-10 on scikit-learn's digits (:func:`conjugacy.data.load_digits`),
  trained by :func:`conjugacy.torch.train_replicas` (SGD, batch 32, 200 steps; 4 replicas per
  seed, perturbation 1 %, pooled into one spectrum per seed), the output layer recorded (330
  weights and biases, float32) with its second branch (one extra SGD step from every recorded
  state on an independently drawn batch, for the two-branch filter). Conditions: learning rates
  0.03, 0.1, 0.3; ``--real-seeds`` seeds each (default 6).
* **Real 2** (``--first-hour STORE``): issue 25's first study (``bench_first_hour.py``, recorded
  into STORE first if missing, ~63 s CPU): a small CNN on the MNIST sample, SGD+momentum / Adam /
  SGD+momentum with a warm-up, 4 seeds x 5 replicas x 300 steps, all 1,418 parameters; another
  architecture, other optimizers, every layer; no second branch (the two-branch rule is skipped).
  Held out: a store of seeds 4 on (``bench_first_hour.py --first-seed 4 --seeds K --record-only
  --store STORE``); the seeds are read from the store (``--first-hour-seeds K``: its K smallest).

Seed ``s`` has the same initial weights and batch order under every condition, so a pair of one
seed is never used: same = W1 between two different seeds of one condition, different = W1
between different seeds of two different conditions. The real AUROCs come with a 95 % interval
from a bootstrap over seeds (a drawn seed brings all its conditions; pairs of one seed are
skipped) and "default minus rule" (:func:`paired_difference`) with the interval of a paired
bootstrap (the same seed resamples for both) and of a leave-one-seed-out jackknife. With 4 seeds
there are only 35 distinct seed resamples, so those intervals are coarse: held-out runs use 12-24
seeds.

A pair whose filter kept no eigenpair of one spectrum has no distance (NaN): the AUROC counts it as
a miss, and the table says how many there were. Measured: only the two-branch filter loses pairs
(synthetic: 961 of 1,728 pairs at repetitions 12-59, 222 of 432 at 0-11: its projection test
rejects nearly every eigenpair of 3 channels with delays under process noise); every other rule
kept at least one eigenpair of every spectrum (0 of 1,728 synthetic pairs; 0 of 2,484 digits
pairs at seeds 6-29 for the rules run there).

Delay rules pick one number of delays per comparison: the largest over its conditions' pilot
recordings (the first three seeds of each condition, each scored alone, their held-out errors'
geometric mean), as ``conjugacy analyze`` does.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_separation import auroc, perturb, random_eigenvalues, real_block_matrix  # noqa: E402

from conjugacy import koopman_spectrum, wasserstein  # noqa: E402
from conjugacy.analysis.own_runs import PILOT_SEEDS, RANK_CAP, pilot_delays, pilot_rank  # noqa: E402
from conjugacy.comparison_filter import filter_for_comparison  # noqa: E402
from conjugacy.delays import choose_delays  # noqa: E402

DIMS = (2, 4, 6)
MEASUREMENT = (0.02, 0.10)
PROCESS = (0.02, 0.1, 0.4)
SHIFT = 0.1
REAL_LRS = (0.03, 0.1, 0.3)
REAL_STEPS = 200


@dataclass(frozen=True)
class Recording:
    """One recording: ``x`` (n_trajectories, n_steps, n_features) and, where the generator has
    it, ``next_x``: the second branch (one more step from every state, independent noise)."""

    x: np.ndarray
    next_x: np.ndarray | None = None


#: The fits of the current comparison by (delays, rank): a rule and its "+ filter" variant fit
#: once (the filter is applied to the same spectra).
_FITS: dict[str, Any] = {"recs": None, "fits": {}, "delays": {}}


def _spectra(recs: Sequence[Recording], pilots: Sequence[Sequence[int]], *,
             delays: int | str,
             rank: int | str | None, filt: bool | str, branch: bool = False) -> list:
    """The spectra of a rule: fitted once per (delays, rank, branch) and comparison; ``filt``
    False (all eigenvalues), True (each spectrum's own default filter: the two-branch rule
    :data:`conjugacy.residuals.BRANCH_FILTER` when ``branch``, the single-sample rule
    otherwise) or ``"shared-count"`` (one count for the comparison,
    :func:`conjugacy.comparison_filter.filter_for_comparison`)."""
    if branch and any(r.next_x is None for r in recs):
        return None  # no second branch recorded: the rule does not apply
    if _FITS["recs"] is not recs:
        _FITS.update(recs=recs, fits={}, delays={})
    if delays == "auto" and "auto" not in _FITS["delays"]:
        _FITS["delays"]["auto"] = max(choose_delays(recs[p[0]].x).delays for p in pilots)
    d = _FITS["delays"]["auto"] if delays == "auto" else delays
    key = (d, rank, branch)
    if key not in _FITS["fits"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS["fits"][key] = [koopman_spectrum(
                r.x, delays=d, rank=rank, method="standard",
                next_states=r.next_x if branch else None) for r in recs]
    fits = _FITS["fits"][key]
    if filt == "shared-count":
        return filter_for_comparison({"all": fits}, "shared-count")["all"]
    return [sp.filtered() if filt else sp for sp in fits]


def _rule(**kw) -> Callable[[Sequence[Recording], Sequence[Sequence[int]]], list]:
    return lambda recs, pilots: _spectra(recs, pilots, **kw)


def _analyze_settings(recs: Sequence[Recording], pilots: Sequence[Sequence[int]]
                      ) -> tuple[int, int]:
    """Delays and rank as ``conjugacy analyze`` chooses them by default
    (:func:`conjugacy.analysis.own_runs.choose_settings`: :func:`~conjugacy.analysis.own_runs.
    pilot_delays` on the pilots at the capped SVHT rank, then one rank for the comparison,
    :func:`~conjugacy.analysis.own_runs.pilot_rank`, from the delay folds where they reach the
    cap), cached per comparison. ``--analyze-delays D`` (``_FITS["fixed_delays"]``) replaces the
    delay rule's choice by ``D`` (the rank is then chosen at ``D``)."""
    if _FITS["recs"] is not recs:
        _FITS.update(recs=recs, fits={}, delays={})
    if "analyze" not in _FITS["delays"]:
        pil, folds = {str(p[0]): [recs[i].x for i in p] for p in pilots}, {}
        d = _FITS.get("fixed_delays") or pilot_delays(pil, fold_ranks=folds)[0]
        most = min(recs[0].x.shape[2] * (d + 1),
                   min(r.x.shape[0] * (r.x.shape[1] - d - 1) for r in recs))
        _FITS["delays"]["analyze"] = (d, pilot_rank(pil, d, max_rank=most, known=folds)[0])
    return _FITS["delays"]["analyze"]


def _analyze(filt: bool | str) -> Callable[[Sequence[Recording], Sequence[Sequence[int]]], list]:
    """``conjugacy analyze``'s delays and rank (:func:`_analyze_settings`) with a filter:
    False (all eigenvalues: ``filter="none"``, the default), True (each spectrum's own) or
    ``"shared-count"``."""
    def rule(recs: Sequence[Recording], pilots: Sequence[Sequence[int]]) -> list:
        d, k = _analyze_settings(recs, pilots)
        return _spectra(recs, pilots, delays=d, rank=k, filt=filt)
    return rule


def _capped_svht(recs: Sequence[Recording], pilots: Sequence[Sequence[int]]) -> list:
    """At analyze's delays, each spectrum at its own SVHT rank, at most ``RANK_CAP`` (refitted
    at the cap where its SVHT rank is above); all eigenvalues."""
    d, _ = _analyze_settings(recs, pilots)
    own = _spectra(recs, pilots, delays=d, rank="svht", filt=False)
    if all(sp.rank <= RANK_CAP for sp in own):
        return own
    capped = _spectra(recs, pilots, delays=d, rank=RANK_CAP, filt=False)
    return [sp if sp.rank <= RANK_CAP else c for sp, c in zip(own, capped)]


#: name -> rule(recordings, per condition the indices of its pilot seeds) -> spectra (the hook
#: for further rules); a rule that needs what a case lacks (the second branch) is skipped there.
RULES: dict[str, Callable[[Sequence[Recording], Sequence[Sequence[int]]], list]] = {
    "paper (8, 10)": _rule(delays=8, rank=10, filt=False),
    "paper + filter": _rule(delays=8, rank=10, filt=True),
    "rank=None": _rule(delays=8, rank=None, filt=False),
    "SVHT": _rule(delays=8, rank="svht", filt=False),
    "SVHT + filter": _rule(delays=8, rank="svht", filt=True),
    "auto delays + SVHT": _rule(delays="auto", rank="svht", filt=False),
    "auto delays + SVHT + filter": _rule(delays="auto", rank="svht", filt=True),
    "auto delays + SVHT + shared-count": _rule(delays="auto", rank="svht", filt="shared-count"),
    "auto delays + SVHT + two-branch filter": _rule(delays="auto", rank="svht", filt=True,
                                                    branch=True),
    "analyze delays, per-spectrum SVHT capped at 70": _capped_svht,
    "analyze, capped rank + filter (previous default)": _analyze(True),
    "analyze, capped rank + shared-count": _analyze("shared-count"),
    "analyze default (capped rank, all eigenvalues)": _analyze(False),
}


def _w1(a: Any, b: Any) -> float:
    """W1 between two spectra; NaN where a filter kept no eigenpair of one of them (no distance,
    as in the verdicts): :func:`bench_separation.auroc` then counts the pair as a miss."""
    return float("nan") if len(a) == 0 or len(b) == 0 else wasserstein(a, b)


# ----- synthetic ----------------------------------------------------------------------------------
def record_latent(A: np.ndarray, C: np.ndarray, measurement: float, sigma: float,
                  rng: np.random.Generator, n_traj: int = 10, n_steps: int = 100) -> Recording:
    """Trajectories of ``z' = A z + sigma xi`` seen as ``C z`` plus measurement noise (a fraction
    of the data's standard deviation), and the second branch (one more step from every state)."""
    d = A.shape[0]
    z = np.empty((n_traj, n_steps, d))
    z[:, 0] = rng.standard_normal((n_traj, d))
    for t in range(n_steps - 1):
        z[:, t + 1] = z[:, t] @ A.T + sigma * rng.standard_normal((n_traj, d))
    branch = z @ A.T + sigma * rng.standard_normal(z.shape)
    x, nx = z @ C.T, branch @ C.T
    scale = measurement * x.std()
    return Recording(x + scale * rng.standard_normal(x.shape),
                     nx + scale * rng.standard_normal(nx.shape))


def draw_case(dim: int, meas: float, sigma: float, rep: int
              ) -> tuple[list[Recording], np.ndarray, np.ndarray]:
    """Repetition ``rep`` of one synthetic row: the recordings (A, A', B) and the true eigenvalues
    of A and of B (deterministic: the generator is seeded by the row and ``rep``)."""
    rng = np.random.default_rng([dim, int(meas * 100), int(sigma * 100), rep])
    lam_a = random_eigenvalues(dim, rng)
    lam_b = perturb(lam_a, SHIFT, rng)
    C = rng.standard_normal((3, dim))
    A, B = real_block_matrix(lam_a, rng), real_block_matrix(lam_b, rng)
    return [record_latent(M, C, meas, sigma, rng) for M in (A, A, B)], lam_a, lam_b


def synthetic(reps: int, rules: dict, first_rep: int = 0) -> tuple[list, dict]:
    rows, ranks = [], {r: [] for r in rules}
    for dim in DIMS:
        for meas in MEASUREMENT:
            for sigma in PROCESS:
                same = {r: [] for r in rules}
                diff = {r: [] for r in rules}
                for rep in range(first_rep, first_rep + reps):
                    recs = draw_case(dim, meas, sigma, rep)[0]
                    for name, rule in rules.items():
                        a, a2, b = rule(recs, ((0, 1), (2,)))
                        same[name].append(_w1(a, a2))
                        diff[name].append(_w1(a, b))
                        ranks[name].append(len(a))
                scores = {r: auroc(same[r], diff[r]) for r in rules}
                for r in rules:
                    ranks[r + " no distance"] = ranks.get(r + " no distance", 0) + int(
                        np.isnan(same[r] + diff[r]).sum())
                rows.append((dim, meas, sigma, scores))
                print(f"dim {dim} meas {meas:.2f} sigma {sigma:.2f} " + " ".join(
                    f"{r}={s:.2f}" for r, s in scores.items()), file=sys.stderr, flush=True)
    return rows, ranks


# ----- real ---------------------------------------------------------------------------------------
def train_digits(folder: Path, n_seeds: int, n_replicas: int = 4, n_steps: int = REAL_STEPS,
                 first_seed: int = 0) -> dict[float, list[Recording]]:
    """Output-layer trajectories of MLPs 64-32-10 on the digits: {lr: [Recording per seed]}, seeds
    ``first_seed .. first_seed + n_seeds - 1`` (0-5 chose the default; 6 on are held out)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    from conjugacy.data import load_digits
    from conjugacy.store import TrajectoryStore
    from conjugacy.torch import train_replicas

    data = load_digits()
    x_all = torch.from_numpy(data.train_images.reshape(-1, 64))
    y_all = torch.from_numpy(data.train_labels)
    out: dict[float, list[Recording]] = {}
    for lr in REAL_LRS:
        for seed in range(first_seed, first_seed + n_seeds):
            torch.manual_seed(1000 + seed)
            base = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
            g = np.random.default_rng([seed, 7])
            order = [g.permutation(len(y_all))[:32] for _ in range(n_steps)]
            batches = [(x_all[i], y_all[i]) for i in order]
            path = folder / f"lr{lr}_s{seed}.zarr"

            def branch(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
                i = torch.randint(len(y_all), (32,), generator=gen)
                return x_all[i], y_all[i]

            runs = train_replicas(base, n_replicas=n_replicas, eps=0.01, seed=seed,
                                  batches=batches, loss_fn=F.cross_entropy,
                                  make_optimizer=lambda p, lr=lr: torch.optim.SGD(p, lr=lr),
                                  n_steps=n_steps, store=path, params="2.*",
                                  branch_batches=branch)
            with TrajectoryStore.open(path, "r") as st:
                x = st.read(params="2.*", runs=runs)
                nx = st.read(params="2.*", runs=runs, branch="next")
            out.setdefault(lr, []).append(Recording(x, nx))
    return out


def first_hour(path: Path, n_seeds: int | None = None
               ) -> tuple[list[Recording], list[str], list[int]]:
    """Issue 25's first-hour study (``bench_first_hour.py``: a small CNN on the MNIST sample,
    SGD+momentum / Adam / SGD+momentum with warm-up, 4 seeds x 5 replicas x 300 steps, all 1,418
    parameters), recorded into ``path`` first if it does not exist: one Recording per (condition,
    seed), its replicas pooled; only the store's ``n_seeds`` smallest seeds if given (a costly
    rule on a subset of a held-out store)."""
    from conjugacy.store import TrajectoryStore

    if not path.exists():
        import bench_first_hour

        bench_first_hour.record_study(path)
    with TrajectoryStore.open(path, "r") as st:
        meta = {r: st.run_info(r)["metadata"] for r in st.runs()}
        keys = sorted({(m["condition"], m["seed"]) for m in meta.values()})
        kept = sorted({sd for _, sd in keys})[:n_seeds]
        keys = [k for k in keys if k[1] in kept]
        recs = [Recording(st.read(runs=sorted(r for r, m in meta.items()
                                              if (m["condition"], m["seed"]) == key)))
                for key in keys]
    return recs, [c for c, _ in keys], [int(sd) for _, sd in keys]


def seed_bootstrap(D: np.ndarray, cond: Sequence[Any], seed: Sequence[int], n_boot: int = 2000,
                   rng: int = 0) -> np.ndarray:
    """AUROCs of the pairs of seed resamples: seeds drawn with replacement (a seed brings all
    its conditions, since the pairs of a seed share it), pairs of one original seed skipped, so a
    drawn twice seed weighs twice; ``D`` the (n, n) distance matrix of the recordings."""
    g, seeds, out = np.random.default_rng(rng), sorted(set(seed)), []
    where = {(c, s): i for i, (c, s) in enumerate(zip(cond, seed))}
    conds = list(dict.fromkeys(cond))
    for _ in range(n_boot):
        drawn = g.choice(seeds, len(seeds))
        if len(set(drawn)) < 2:
            continue
        out.append(_pair_auroc(D, cond, seed, [where[(c, s)] for s in drawn for c in conds]))
    return np.asarray(out)


def _pair_auroc(D: np.ndarray, cond: Sequence[Any], seed: Sequence[int],
                pick: Sequence[int]) -> float:
    same, diff = [], []
    for a in range(len(pick)):
        for b in range(a + 1, len(pick)):
            i, j = pick[a], pick[b]
            if seed[i] != seed[j]:  # one seed: same start and batches (see the module doc)
                (same if cond[i] == cond[j] else diff).append(D[i, j])
    return auroc(same, diff)


def real_case(recs: list[Recording], cond: list[Any], seed: list[int], rules: dict,
              label: str) -> tuple[dict, dict]:
    """Per rule: AUROC, its seed-bootstrap interval, the difference to the last rule (the
    default) on the same resamples, kept eigenvalues, delays and CPU."""
    pilots = [sorted((i for i, ci in enumerate(cond) if ci == c), key=lambda i: seed[i])
              [:PILOT_SEEDS] for c in dict.fromkeys(cond)]  # as analyze: its first seeds
    scores, info, dists = {}, {}, {}
    for name, rule in rules.items():
        t1 = time.process_time()
        specs = rule(recs, pilots)
        if specs is None:
            scores[name], info[name] = float("nan"), None
            continue
        D = np.array([[_w1(a, b) if a is not b else 0.0 for b in specs] for a in specs])
        dists[name] = D
        scores[name] = _pair_auroc(D, cond, seed, range(len(recs)))
        boots = seed_bootstrap(D, cond, seed)
        info[name] = {"rank": float(np.mean([len(sp) for sp in specs])),
                      "delays": specs[0].settings["delays"], "cpu_s": time.process_time() - t1,
                      "boot": boots, "no_distance": int(np.isnan(D).sum() // 2)}
        print(f"{label} {name}: AUROC {scores[name]:.2f} [{np.percentile(boots, 2.5):.2f}, "
              f"{np.percentile(boots, 97.5):.2f}] kept {info[name]['rank']:.0f} delays "
              f"{info[name]['delays']} cpu {info[name]['cpu_s']:.1f}", file=sys.stderr, flush=True)
    default = list(rules)[-1]
    for name in rules:
        if info[name] is not None:
            info[name]["diff"] = info[default]["boot"] - info[name]["boot"]
            info[name]["paired"] = paired_difference(dists[default], dists[name], cond, seed)
    n = len(recs)
    info["pairs"] = sum(1 for i in range(n) for j in range(i + 1, n) if seed[i] != seed[j])
    info["data"] = {"dists": dists, "cond": list(cond), "seed": list(seed)}
    return scores, info


def paired_difference(D_a: np.ndarray, D_b: np.ndarray, cond: Sequence[Any],
                      seed: Sequence[int], n_boot: int = 2000, rng: int = 1) -> dict[str, float]:
    """AUROC(rule a) - AUROC(rule b) on the same seeds, from their (n, n) distance matrices.

    ``boot_lo`` / ``boot_hi``: 95 % percentile interval of a paired bootstrap over seeds (the same
    seed resample for both rules, as :func:`seed_bootstrap`); ``p_boot``: the fraction of those
    resamples with a difference <= 0 (one-sided); ``jack_se``, ``jack_lo`` / ``jack_hi``: the
    leave-one-seed-out jackknife standard error and its normal 95 % interval (a second estimate
    that does not rest on the percentile bootstrap); ``n_seeds``.

    >>> D = np.where(np.equal.outer([0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1]), 1.0, 3.0)
    >>> r = paired_difference(D, 2 * D, list("aaabbb"), [0, 1, 2] * 2, n_boot=10)
    >>> r["diff"], r["n_seeds"]
    (0.0, 3)
    """
    seeds, n = sorted(set(seed)), len(cond)
    both = [seed_bootstrap(D, cond, seed, n_boot, rng) for D in (D_a, D_b)]
    boot = both[0] - both[1]
    full = [_pair_auroc(D, cond, seed, range(n)) for D in (D_a, D_b)]
    jack = np.array([_pair_auroc(D_a, cond, seed, keep) - _pair_auroc(D_b, cond, seed, keep)
                     for s_out in seeds
                     for keep in [[i for i in range(n) if seed[i] != s_out]]])
    k = len(seeds)
    se = float(np.sqrt((k - 1) / k * np.sum((jack - jack.mean()) ** 2)))
    diff = full[0] - full[1]
    return {"diff": diff, "boot_lo": float(np.percentile(boot, 2.5)),
            "boot_hi": float(np.percentile(boot, 97.5)), "p_boot": float(np.mean(boot <= 0)),
            "jack_se": se, "jack_lo": diff - 1.96 * se, "jack_hi": diff + 1.96 * se,
            "n_seeds": k}


def _select_rules(names: list[str] | None, parser: argparse.ArgumentParser) -> dict:
    """The rules of ``--rule`` (all without it), the default (the last of ``RULES``) always last;
    an unknown name exits with status 2 naming the choices."""
    if not names:
        return dict(RULES)
    unknown = [n for n in names if n not in RULES]
    if unknown:
        parser.error(f"--rule {unknown[0]!r} is not a rule; choose from: "
                     + "; ".join(RULES))
    default = list(RULES)[-1]
    return {n: RULES[n] for n in RULES if n in names or n == default}


def _save(path: Path, real: dict) -> None:
    """The real cases' distance matrices (key ``case|rule``), conditions and seeds, as ``.npz``."""
    out: dict[str, np.ndarray] = {}
    for label, (_, info) in real.items():
        data = info["data"]
        out[f"{label}|cond"] = np.asarray(data["cond"], dtype=str)
        out[f"{label}|seed"] = np.asarray(data["seed"])
        for name, D in data["dists"].items():
            out[f"{label}|{name}"] = D
    np.savez_compressed(path, **out)


def _interval(values: np.ndarray, fmt: str) -> str:
    """The 2.5 and 97.5 percentiles of ``values`` in ``fmt``."""
    return fmt.format(*np.percentile(values, [2.5, 97.5]))


def _table(rows: list, ranks: dict, real: dict | None, rules: dict) -> str:
    names = list(rules)
    lines = ["| eigenvalues | meas. noise | process noise | " + " | ".join(names) + " |",
             "|---|---|---|" + "---|" * len(names)]
    for dim, meas, sigma, scores in rows:
        best = max(scores.values())
        cells = [(f"**{scores[r]:.2f}**" if scores[r] >= best - 1e-12 else f"{scores[r]:.2f}")
                 for r in names]
        lines.append(f"| {dim} | {meas:.0%} | {sigma:g} | " + " | ".join(cells) + " |")
    if rows:
        for label, agg in (("synthetic mean", np.mean), ("synthetic min", np.min)):
            lines.append(f"| {label} | | | " + " | ".join(
                f"{agg([row[3][r] for row in rows]):.2f}" for r in names) + " |")
        lines.append("| eigenvalues kept (mean) | | | " + " | ".join(
            f"{np.mean(ranks[r]):.1f}" for r in names) + " |")
        lines.append(f"| pairs without a distance (of {2 * len(ranks[names[0]])}) | | | "
                     + " | ".join(str(ranks[r + ' no distance']) for r in names) + " |")
    for label, (scores, info) in (real or {}).items():
        valid = [v for v in scores.values() if np.isfinite(v)]
        best = max(valid)

        def cell(r: str, fmt: Callable[[dict], str], info: dict = info) -> str:
            return "-" if info[r] is None else fmt(info[r])

        lines.append(f"| **real: {label}** | | | " + " | ".join(
            "-" if not np.isfinite(scores[r]) else
            f"**{scores[r]:.2f}**" if scores[r] >= best - 1e-12 else f"{scores[r]:.2f}"
            for r in names) + " |")
        lines.append("| real: 95 % interval (seed bootstrap) | | | " + " | ".join(
            cell(r, lambda i: _interval(i["boot"], "{:.2f}-{:.2f}")) for r in names) + " |")
        lines.append("| real: default minus rule (paired seed bootstrap 95 %) | | | " + " | ".join(
            cell(r, lambda i: "{diff:+.2f} ({boot_lo:+.2f} to {boot_hi:+.2f})".format(
                **i["paired"])) for r in names) + " |")
        lines.append("| real: same, jackknife over seeds 95 %; bootstrap P(diff <= 0) | | | "
                     + " | ".join(cell(r, lambda i: "{jack_lo:+.2f} to {jack_hi:+.2f}; "
                                       "{p_boot:.3f}".format(**i["paired"])) for r in names)
                     + " |")
        lines.append("| real: eigenvalues kept / delays | | | " + " | ".join(
            cell(r, lambda i: f"{i['rank']:.0f} / {i['delays']}") for r in names) + " |")
        lines.append("| real: CPU s of the rule (its fits) | | | " + " | ".join(
            cell(r, lambda i: f"{i['cpu_s']:.1f}") for r in names) + " |")
        lines.append(f"| real: pairs without a distance (of {info['pairs']}) | | | " + " | ".join(
            cell(r, lambda i: str(i["no_distance"])) for r in names) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=12)
    parser.add_argument("--first-rep", type=int, default=0,
                        help="first synthetic repetition (0-11 chose the default)")
    parser.add_argument("--real-seeds", type=int, default=6)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="first digits seed (0-5 chose the default; 6 on are held out)")
    parser.add_argument("--rule", action="append", default=None, metavar="NAME",
                        help="run only this rule of RULES (repeatable; the default always runs)")
    parser.add_argument("--analyze-delays", type=int, default=None, metavar="D",
                        help="the analyze rules at D delays instead of the delay rule's choice")
    parser.add_argument("--save", type=Path, default=None, metavar="FILE.npz",
                        help="save the real cases' distance matrices, conditions and seeds here")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--first-hour", type=Path, default=None, metavar="STORE",
                        help="issue 25's first-hour study (recorded there first if missing)")
    parser.add_argument("--first-hour-seeds", type=int, default=None, metavar="K",
                        help="only the first-hour store's K smallest seeds (at least 2)")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    args = parser.parse_args(argv)
    rules = _select_rules(args.rule, parser)
    if args.analyze_delays is not None:
        if args.analyze_delays < 1:
            parser.error(f"--analyze-delays must be at least 1, got {args.analyze_delays}")
        _FITS["fixed_delays"] = args.analyze_delays
    if args.first_hour_seeds is not None and args.first_hour_seeds < 2:
        parser.error(f"--first-hour-seeds must be at least 2 (two seeds make a same-condition "
                     f"pair), got {args.first_hour_seeds}")
    t0 = time.process_time()
    rows, ranks = synthetic(args.reps, rules, args.first_rep) if args.reps > 0 else ([], {})
    t_syn = time.process_time() - t0
    real, cpu = {}, []
    if not args.skip_real:
        t1 = time.process_time()
        with tempfile.TemporaryDirectory() as tmp:
            data = train_digits(Path(tmp), args.real_seeds, first_seed=args.first_seed)
        cpu.append(f"digits training {time.process_time() - t1:.0f} s")
        recs = [r for lr in REAL_LRS for r in data[lr]]
        seeds = range(args.first_seed, args.first_seed + args.real_seeds)
        real["digits MLP, output layer"] = real_case(
            recs, [lr for lr in REAL_LRS for _ in data[lr]],
            [s for lr in REAL_LRS for s in seeds], rules, "digits")
    if args.first_hour is not None:
        t1 = time.process_time()
        recs, cond, seed = first_hour(args.first_hour, args.first_hour_seeds)
        cpu.append(f"first-hour reading {time.process_time() - t1:.0f} s (seeds "
                   f"{min(seed)}-{max(seed)}: 0-3 chose the default)")
        real["first-hour CNN, all parameters"] = real_case(recs, cond, seed, rules, "first hour")
    given = sys.argv[1:] if argv is None else list(argv)  # the command as run, stores as STORE
    shown = ["STORE" if a == str(args.first_hour) else a for a in given]
    text = ("`python benchmarks/bench_settings.py " + shlex.join(shown)
            + "`: AUROC of W1(different) > W1(same); bold: best in the row. "
            f"CPU: synthetic {t_syn:.0f} s" + "".join(f", {c}" for c in cpu) + ".\n\n"
            + _table(rows, ranks, real, rules))
    print(text)
    if args.save is not None:
        _save(args.save, real)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
