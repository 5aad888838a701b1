"""Windowed spectra of a study, compared: the window x window distances of each seed and what
they show (the noise floor between seeds, transitions, the most distinct window, where the dynamics
settle), and two conditions compared window by window with the one verdict rule. Used by the CNN
early-phase study (fig. 4); nothing here is specific to it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..compare import distance_matrix
from ..windows import find_transitions
from .comparison import compare_conditions


def window_distances(spectra: Sequence[Sequence[Any]], windows: Sequence[tuple[int, int]],
                     labels: Sequence[str]) -> dict[str, Any]:
    """The window x window distances of every seed (``spectra[seed][window]``) and their mean;
    with >= 2 seeds the noise floor (mean distance between seeds within a window); with >= 2
    windows the transitions (:func:`conjugacy.find_transitions`, also above the noise floor), the
    mean distance of each window to the others and the ``findings`` (most distinct window, where
    the dynamics settle, by label and by first record ``windows[i][0]``)."""
    labels = list(labels)
    d = np.stack([distance_matrix(specs) for specs in spectra])  # (seeds, windows, windows)
    mean, n_w, n_s = d.mean(axis=0), len(windows), len(spectra)
    out: dict[str, Any] = {"windows": [list(w) for w in windows], "labels": labels,
                           "mean_matrix": mean.tolist(), "per_seed_matrices": d.tolist(),
                           "noise_floor": None}
    if n_s >= 2:
        per_window = [float(np.mean(distance_matrix([spectra[s][w] for s in range(n_s)])
                                    [np.triu_indices(n_s, 1)])) for w in range(n_w)]
        out["between_seeds_per_window"] = per_window
        out["noise_floor"] = float(np.mean(per_window))
    if n_w >= 2:
        tr = find_transitions(mean)
        out["transitions"] = tr.as_dict()
        if out["noise_floor"] is not None:
            out["transitions_noise_floor"] = find_transitions(
                mean, noise_floor=out["noise_floor"]).as_dict()
        others = mean.sum(axis=1) / (n_w - 1)
        out["mean_distance_to_other_windows"] = others.tolist()
        settled, distinct = tr.settled_from, n_w >= 3  # with two windows, each is the other's
        out["findings"] = {
            "first_window_most_distinct": bool(int(np.argmax(others)) == 0) if distinct else None,
            "most_distinct_window": labels[int(np.argmax(others))] if distinct else None,
            "consecutive_distances": tr.steps.tolist(),
            "settled_from_window": labels[settled] if settled < n_w else None,
            "settled_from_iteration": int(windows[settled][0]) if settled < n_w else None,
        }
    return out


def compare_windows(spectra: Mapping[str, Sequence[Sequence[Any]]], labels: Sequence[str], *,
                    seed: int, n_permutations: int, n_shuffles: int, what: str = "condition"
                    ) -> dict[str, Any]:
    """Two conditions (``spectra[condition][seed][window]``) compared window by window
    (:func:`conjugacy.analysis.compare_conditions`, random stream ``seed + window``): per window
    the distances, shuffle control, permutation test and verdict with its reason; ``what`` names
    a condition in the note (e.g. "architecture")."""
    if len(spectra) != 2:
        raise ValueError(f"compare_windows compares two conditions, got {list(spectra)}")
    a, b = spectra
    n_seeds = min(len(spectra[a]), len(spectra[b]))
    n_w = min(len(spectra[a][0]), len(spectra[b][0]))
    per_window = []
    for w in range(n_w):
        comp = compare_conditions(
            {c: [spectra[c][s][w] for s in range(n_seeds)] for c in (a, b)},
            seed=seed + w, n_permutations=n_permutations, n_shuffles=n_shuffles,
            ks=False)
        key = next(iter(comp["pairs"]))
        v = comp["verdicts"][key]
        entry = {"window": labels[w], "verdict_uses": comp["verdict_uses"],
                 "verdict": v["verdict"], "pvalue": v["pvalue"], "reason": v["reason"]}
        for which in ("all", "filtered"):
            c = comp[which]
            if c is not None:
                entry[which] = {
                    "distance_per_seed": c["distances"][key]["per_seed"],
                    "distance_mean": c["distances"][key]["mean"],
                    "distance_std": c["distances"][key]["std"],
                    "shuffle_fraction_per_seed": c["shuffle_control"][key]["fraction_per_seed"],
                    "shuffle_mean_fraction": c["shuffle_control"][key]["mean_fraction"],
                    "permutation_test": c["permutation_tests"][key],
                    "between_seeds_mean": {k: x["mean"] for k, x in c["between_seeds"].items()},
                }
        per_window.append(entry)
    first = per_window[0][per_window[0]["verdict_uses"]] if per_window else None
    min_p = None if first is None or first["permutation_test"] is None else \
        first["permutation_test"]["min_pvalue"]
    note = (f"{n_seeds} seeds per {what}: the permutation test (exact enumeration) cannot "
            f"give p below {min_p:.3g}") if min_p is not None else \
        f"one seed per {what}: no permutation test"
    return {"n_seeds": n_seeds, "n_windows": n_w, "per_window": per_window,
            "smallest_possible_pvalue": min_p, "note": note}
