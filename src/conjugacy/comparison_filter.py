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

One residual rule per comparison, whichever filter: the two-branch rule only when every spectrum
of the comparison (all conditions, all seeds) carries two-branch residuals; in a mixed store
(some runs recorded with a second branch, some without) every spectrum is filtered and ranked by
the single-sample rule, and ``settings["filter"]["comparison"]["note"]`` says how many spectra
lacked the branch (:func:`comparison_residuals`). Two rules under one name would compare
eigenpairs kept by different criteria.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["COMPARISON_FILTERS", "comparison_residuals", "filter_for_comparison",
           "shared_count"]

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


def comparison_residuals(groups: Mapping[str, Sequence[Any]]) -> tuple[str, str | None]:
    """The residual rule of a whole comparison: ``"two-branch"`` when every spectrum carries
    two-branch residuals (``projection_residuals``), else ``"single-sample"``; with a note when
    only some do (a mixed store).

    Parameters
    ----------
    groups : mapping condition -> sequence of Spectrum

    Returns
    -------
    rule : {"two-branch", "single-sample"}
    note : str or None

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> rng = np.random.default_rng(0)
    >>> x = np.cumsum(rng.standard_normal((2, 31, 4)), 1)
    >>> two = koopman_spectrum(x[:, :-1], rank=4, next_states=x[:, 1:] + 0.1)
    >>> one = koopman_spectrum(x[:, :-1], rank=4)
    >>> comparison_residuals({"a": [two, two], "b": [two, one]})[0]
    'single-sample'
    """
    lacking = {name: sum(getattr(s, "projection_residuals", None) is None for s in spectra)
               for name, spectra in groups.items()}
    n_all = sum(len(spectra) for spectra in groups.values())
    n_lacking = sum(lacking.values())
    if n_lacking == 0:
        return "two-branch", None
    if n_lacking == n_all:
        return "single-sample", None
    where = ", ".join(f"{name} {n} of {len(groups[name])}" for name, n in lacking.items() if n)
    return "single-sample", (
        f"single-sample residuals for every spectrum: {n_lacking} of {n_all} spectra carry no "
        f"recorded branch ({where}); the two-branch rule needs one in every spectrum of the "
        "comparison")


def _with_rule(groups: Mapping[str, Sequence[Any]], rule: str) -> dict[str, list[Any]]:
    """The spectra as the comparison's residual ``rule`` sees them: without their two-branch
    residuals under the single-sample rule (so :meth:`Spectrum.filtered` uses the data
    residuals), as they are otherwise."""
    from .spectrum import BRANCH_FIELDS

    strip = dict.fromkeys(BRANCH_FIELDS)
    return {name: [dataclasses.replace(s, **strip) if rule == "single-sample" and getattr(
        s, "projection_residuals", None) is not None else s for s in spectra]
        for name, spectra in groups.items()}


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
        The number of eigenpairs each spectrum supports on its own, by the comparison's one
        residual rule (:func:`comparison_residuals`).

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
    for name, spectra in groups.items():
        if len(spectra) == 0:
            raise ValueError(f"groups[{name!r}] holds no spectra")
    groups = _with_rule(groups, comparison_residuals(groups)[0])  # one rule for all
    counts = {name: [len(_own_filtered(s)) for s in spectra] for name, spectra in groups.items()}
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
        :func:`shared_count`. ``"per-spectrum"``: each spectrum's own filter
        (:meth:`conjugacy.Spectrum.filtered`). Either way by one residual rule for the whole
        comparison (:func:`comparison_residuals`); ``settings["filter"]["comparison"]`` records
        the rule, the residuals (``"two-branch"`` or ``"single-sample"``), ``k`` and every
        spectrum's own count (shared count), and a ``note`` for a mixed store.

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
    residuals, note = comparison_residuals(groups)
    groups = _with_rule(groups, residuals)
    info: dict[str, Any] = {"rule": rule, "residuals": residuals}
    if rule == "shared-count":
        info["k"], info["own_counts"] = shared_count(groups)
    if note:
        info["note"] = note
    out: dict[str, list[Any]] = {}
    for name, spectra in groups.items():
        kept = []
        for s in spectra:
            f = _own_filtered(s) if rule == "per-spectrum" else s.filtered(n=info["k"])
            settings = dict(f.settings)
            settings["filter"] = {**settings["filter"], "comparison": info}
            kept.append(dataclasses.replace(f, settings=settings))
        out[name] = kept
    return out
