"""A residual filter that is consistent within a comparison (issue 20, item 4).

:meth:`conjugacy.Spectrum.filtered` decides spectrum by spectrum which eigenpairs the data support,
so two spectra of one comparison may keep different numbers of eigenpairs (2 to 6 of 6 across
clips of one system), and a Wasserstein distance between them then mixes "which modes survived"
with "where they are". The *shared-count* rule decides the number once for the whole comparison:

1. each spectrum's own filter (its default rule: the two-branch rule when it carries two-branch
   residuals, else the single-sample rule) gives the number of eigenpairs it supports;
2. the shared count ``k`` is the median of those numbers over every spectrum of the comparison
   (all conditions, all seeds), rounded up: what the comparison's spectra typically support;
3. every spectrum keeps its ``k`` best-supported eigenpairs (``Spectrum.filtered(n=k)``), ranked
   by the residual its own filter uses: the projection residual when it carries two-branch
   residuals, else the data residual; a conjugate pair is never split, so one fewer may be kept
   (or the pair, one more, when ``k = 1`` and the best-ranked is a pair).

Chosen by measurement (``docs/comparing.md``, "Residuals under SGD noise"): AUROC of "different
system" against "second realisation of the same system" on linear latent systems with 2/4/6
eigenvalues seen through 3 channels (8 delays, rank 10), 40 repetitions per setting: with
measurement noise 2-10 % the median count gave 0.94-1.00 against 0.92-0.99 spectrum by spectrum
(at least as high in 12 of 12 settings, process noise 0-0.3 included); the smallest of the two
counts 0.78-1.00 (below the per-spectrum rule in 1 of 12).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["COMPARISON_FILTERS", "filter_for_comparison", "shared_count"]

#: the filters a comparison can use: each spectrum by its own rule, or one count for all
COMPARISON_FILTERS = ("per-spectrum", "shared-count")


def _own_filtered(spectrum: Any) -> Any:
    """The spectrum filtered by its own default rule (kept as is if filtered already)."""
    if not callable(getattr(spectrum, "filtered", None)):
        raise TypeError(
            f"groups must hold conjugacy.Spectrum objects (with residuals), got "
            f"{type(spectrum).__name__}: a filter needs the residuals"
        )
    return spectrum if "filter" in (spectrum.settings or {}) else spectrum.filtered()


def shared_count(groups: Mapping[str, Sequence[Any]]) -> tuple[int, dict[str, list[int]]]:
    """The shared count of a comparison and the count each spectrum supports on its own (see
    the module docstring).

    Parameters
    ----------
    groups : mapping condition -> sequence of Spectrum
        The spectra of each compared condition (at least one each).

    Returns
    -------
    k : int
        The median count over all spectra, rounded up, at least 1.
    counts : dict condition -> list of int
        The number of eigenpairs each spectrum supports on its own.

    Raises
    ------
    ValueError
        ``groups`` empty or a condition without spectra.
    TypeError
        A member that is not a :class:`conjugacy.Spectrum`.

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> rng = np.random.default_rng(0)
    >>> fit = lambda: koopman_spectrum(np.cumsum(rng.standard_normal((2, 40, 4)), 1), rank=4)
    >>> shared_count({"a": [fit(), fit()], "b": [fit()]})  # the median of 2, 4, 2
    (2, {'a': [2, 4], 'b': [2]})
    """
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError("groups must map at least one condition to its spectra")
    counts = {}
    for name, spectra in groups.items():
        if len(spectra) == 0:
            raise ValueError(f"groups[{name!r}] holds no spectra")
        counts[name] = [len(_own_filtered(s)) for s in spectra]
    median = float(np.median([c for v in counts.values() for c in v]))
    return max(1, int(np.ceil(median))), counts


def filter_for_comparison(
    groups: Mapping[str, Sequence[Any]], rule: str = "shared-count"
) -> dict[str, list[Any]]:
    """Filter every spectrum of a comparison by one rule for the whole comparison.

    Parameters
    ----------
    groups : mapping condition -> sequence of Spectrum
        The spectra compared (e.g. one per seed and condition).
    rule : {"shared-count", "per-spectrum"}, default "shared-count"
        ``"shared-count"``: every spectrum keeps its ``k`` best-supported eigenpairs, ``k`` from
        :func:`shared_count`; ``settings["filter"]["comparison"]`` records the rule, ``k`` and
        every spectrum's own count. ``"per-spectrum"``: each spectrum's own filter
        (:meth:`conjugacy.Spectrum.filtered`).

    Returns
    -------
    dict condition -> list of Spectrum

    Raises
    ------
    ValueError
        An unknown ``rule``; and the errors of :func:`shared_count`.

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> rng = np.random.default_rng(0)
    >>> fit = lambda: koopman_spectrum(np.cumsum(rng.standard_normal((2, 40, 4)), 1), rank=4)
    >>> out = filter_for_comparison({"a": [fit(), fit()], "b": [fit(), fit()]})
    >>> sizes = {len(s) for v in out.values() for s in v}
    >>> max(sizes) - min(sizes) <= 1  # one count for all (a conjugate pair is never split)
    True
    """
    if rule not in COMPARISON_FILTERS:
        raise ValueError(f"rule must be one of {COMPARISON_FILTERS}, got {rule!r}")
    if rule == "per-spectrum":
        return {name: [_own_filtered(s) for s in spectra] for name, spectra in groups.items()}
    k, counts = shared_count(groups)
    info = {"rule": "shared-count", "k": k, "own_counts": counts}
    out: dict[str, list[Any]] = {}
    for name, spectra in groups.items():
        kept = []
        for s in spectra:
            f = s.filtered(n=k)
            settings = dict(f.settings)
            settings["filter"] = {**settings["filter"], "comparison": info}
            kept.append(dataclasses.replace(f, settings=settings))
        out[name] = kept
    return out
