"""The shape of a Koopman fit planned before training: how many observables and snapshot pairs
each spectrum of a study will have, and a fixed ``rank`` checked against them, so that a study
refuses a rank its fits cannot give before anything is trained (the bound
:func:`conjugacy.koopman_spectrum` applies: ``rank <= min(observables, snapshot pairs)``).
Used by the grokking study's configuration; nothing here is specific to it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["check_planned_rank", "planned_fit"]


def planned_fit(n_features: int, delays: int, n_runs: int, windows: Mapping[str, int]
                ) -> dict[str, Any]:
    """Observables and snapshot pairs of each planned spectrum, and whether the fit is determined.

    Observables: ``n_features * (delays + 1)``; snapshot pairs of a window of ``steps`` steps
    (``steps + 1`` records per run): ``n_runs * (steps - delays)``.

    Parameters
    ----------
    n_features : int
        Features per record after any PCA (e.g. the PCA components).
    delays : int
    n_runs : int
        Runs pooled in one spectrum (e.g. the replicas of a seed).
    windows : mapping name -> int
        Steps of each fitted window.

    Returns
    -------
    dict
        ``observables`` (int), ``snapshot_pairs`` and ``determined`` (pairs > observables), per
        window.

    Examples
    --------
    >>> planned_fit(3, 2, 2, {"fig5": 10})
    {'observables': 9, 'snapshot_pairs': {'fig5': 16}, 'determined': {'fig5': True}}
    """
    n_obs = n_features * (delays + 1)
    pairs = {k: n_runs * (w - delays) for k, w in windows.items()}
    return {"observables": n_obs, "snapshot_pairs": pairs,
            "determined": {k: v > n_obs for k, v in pairs.items()}}


def check_planned_rank(rank: Any, n_features: int, delays: int, n_runs: int,
                       windows: Mapping[str, int], *, names: tuple[str, str] = ("pca", "n_runs"),
                       more_pairs: str = "more runs or steps, or a lower rank or delays",
                       more_observables: str = "raise the features or delays, or lower rank",
                       ) -> None:
    """Refuse an int ``rank`` that a planned fit (:func:`planned_fit`) cannot give; a rank rule
    (``"svht"``, None) chooses within the bounds and passes.

    Parameters
    ----------
    rank : int, str or None
    n_features, delays, n_runs, windows
        As in :func:`planned_fit`.
    names : (str, str)
        How the messages name ``n_features`` and ``n_runs`` (the caller's setting names).
    more_pairs, more_observables : str
        The fix each message ends with.

    Raises
    ------
    ValueError
        ``rank`` above a window's snapshot pairs (naming the window and its count) or above the
        observables.

    Examples
    --------
    >>> check_planned_rank(3, 3, 2, 2, {"fig5": 10})
    >>> check_planned_rank(17, 3, 2, 2, {"fig5": 10}, more_pairs="give more runs")
    Traceback (most recent call last):
    ...
    ValueError: rank=17 needs at least 17 snapshot pairs per spectrum, but the fig5 window ...
    """
    if not isinstance(rank, int):
        return
    shape = planned_fit(n_features, delays, n_runs, windows)
    features, runs = names
    for window, steps in windows.items():
        if rank > shape["snapshot_pairs"][window]:
            raise ValueError(
                f"rank={rank} needs at least {rank} snapshot pairs per spectrum, but the {window} "
                f"window has {runs}={n_runs} x (steps={steps} - delays={delays}) = "
                f"{shape['snapshot_pairs'][window]}; {more_pairs}")
    if rank > shape["observables"]:
        raise ValueError(
            f"rank={rank} exceeds the {shape['observables']} observables "
            f"({features}={n_features} x (delays={delays} + 1)); {more_observables}")
