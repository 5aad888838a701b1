"""Eigenvalues against the unit circle: how many lie outside, on and inside it, in all and in the
oscillatory eigenvalues only (a rule on a spectrum's eigenvalues, used as an extra section of a
study's ``results.json``; the transformer grokking study's fig. 5D claim is read on it).

A Koopman eigenvalue ``lambda`` of a training run decays (``|lambda| < 1``), persists (on the
circle) or grows (``|lambda| > 1``). Whether it is "on" the circle is decided within a tolerance,
``| |lambda| - 1 | <= tol``; the "oscillatory" ones rotate, ``min_angle < |arg lambda| < pi -
min_angle``. NumPy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import check_positive_float
from ..compare import as_eigenvalues
from .comparison import filter_spectrum

__all__ = ["UnitCircleCounts", "count_summary", "unit_circle_counts", "unit_circle_section"]

#: The classification, as written into ``sections["unit_circle"]["rule"]``.
RULE = ("on: ||lambda| - 1| <= tol; outside: |lambda| > 1 + tol; inside: |lambda| < 1 - tol;"
        " oscillatory_*: only eigenvalues with min_angle < |arg lambda| < pi - min_angle")
_COUNTS = ("outside", "on", "inside", "oscillatory_outside", "oscillatory_on", "oscillatory_inside")


@dataclass(frozen=True)
class UnitCircleCounts:
    """How many eigenvalues lie outside, on and inside the unit circle.

    ``on`` means ``| |lambda| - 1 | <= tol``. The ``oscillatory_*`` counts only consider the
    eigenvalues that rotate: ``min_angle < |arg lambda| < pi - min_angle`` (radians), i.e. members
    of conjugate pairs at least ``min_angle`` away from the real axis, which is what the grokking
    paper's claim is about (its oscillatory pair sits at ``|arg|`` 0.015-0.07 rad). A plain
    ``Im != 0`` test would also count the near-real clusters DMD returns around a real eigenvalue
    (e.g. 1.0268 at 0.001 rad) and call a real, growing direction a "complex pair outside".
    ``max_modulus`` is the largest ``|lambda|`` and ``max_oscillatory_modulus`` the largest among
    the oscillatory ones (None if there are none: no eigenvalue has no largest modulus).

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
    max_modulus: float | None
    max_oscillatory_modulus: float | None


def unit_circle_counts(eigenvalues: Any, tol: float, min_angle: float = 0.01) -> UnitCircleCounts:
    """Classify eigenvalues against the unit circle (see :class:`UnitCircleCounts`).

    Parameters
    ----------
    eigenvalues : array_like of complex, shape (n,), or a Spectrum
        Read by :func:`conjugacy.compare.as_eigenvalues`; ``n = 0`` (a filter that kept no
        eigenpair) gives every count 0 and both largest moduli None.
    tol : float
        Half-width of the "on the circle" band of ``|lambda|``, >= 0.
    min_angle : float
        Radians; eigenvalues with ``min_angle < |arg lambda| < pi - min_angle`` are oscillatory.

    Returns
    -------
    UnitCircleCounts

    Raises
    ------
    ValueError
        If an eigenvalue is not finite, ``eigenvalues`` is not 1-D, or ``tol`` / ``min_angle``
        is out of range.
    TypeError
        If ``eigenvalues`` is None or does not hold numbers.

    Examples
    --------
    >>> c = unit_circle_counts([1.03 + 0.001j, 1.03 - 0.001j, 0.999 + 0.04j, 0.999 - 0.04j], 0.002)
    >>> (c.outside, c.oscillatory_outside, c.oscillatory_on)
    (2, 0, 2)
    """
    tol = check_positive_float(tol, "tol", allow_zero=True)
    if not (0 <= min_angle < np.pi / 2):
        raise ValueError(f"min_angle must be in [0, pi/2) radians, got {min_angle!r}")
    # a diverged fit (NaN, Inf) must not read as "on the circle"; none (a filter kept no
    # eigenpair) is counted: every count 0, no largest modulus
    eig = as_eigenvalues(eigenvalues, "eigenvalues", allow_empty=True)
    mod, angle = np.abs(eig), np.abs(np.angle(eig))
    outside, inside = mod > 1 + tol, mod < 1 - tol
    on = ~outside & ~inside
    osc = (angle > min_angle) & (angle < np.pi - min_angle)
    return UnitCircleCounts(
        int(outside.sum()), int(on.sum()), int(inside.sum()),
        int((outside & osc).sum()), int((on & osc).sum()), int((inside & osc).sum()),
        float(tol), float(min_angle), float(mod.max()) if mod.size else None,
        float(mod[osc].max()) if osc.any() else None,
    )


def count_summary(counts: Sequence[UnitCircleCounts]) -> dict[str, Any]:
    """The counts of several spectra (one per seed) summarized.

    Parameters
    ----------
    counts : sequence of UnitCircleCounts
        One per seed, all at the same ``tol`` and ``min_angle``.

    Returns
    -------
    dict
        ``total`` (each count summed), ``n_seeds_with`` (how many spectra have an oscillatory
        pair, >= 2 eigenvalues, outside / on the circle), ``per_seed`` (every field but the
        rule's), ``tol`` and ``min_angle`` (None for no counts).

    Examples
    --------
    >>> s = count_summary([unit_circle_counts([1.02 + 0.05j, 1.02 - 0.05j], 0.002),
    ...                    unit_circle_counts([1.0 + 0.05j, 1.0 - 0.05j, 0.5], 0.002)])
    >>> s["total"]["oscillatory_outside"], s["n_seeds_with"], s["per_seed"][1]["inside"]
    (2, {'oscillatory_pair_outside': 1, 'oscillatory_pair_on': 1}, 1)
    """
    total = {k: int(sum(getattr(c, k) for c in counts)) for k in _COUNTS}
    keys = _COUNTS + ("max_modulus", "max_oscillatory_modulus")
    seeds_with = {
        "oscillatory_pair_outside": int(sum(c.oscillatory_outside >= 2 for c in counts)),
        "oscillatory_pair_on": int(sum(c.oscillatory_on >= 2 for c in counts)),
    }
    return {"total": total, "n_seeds_with": seeds_with,
            "per_seed": [{k: getattr(c, k) for k in keys} for c in counts],
            "tol": counts[0].tol if counts else None,
            "min_angle": counts[0].min_angle if counts else None}


def unit_circle_section(spectra: Mapping[str, Sequence[Any]], tol: float,
                        min_angle: float = 0.01) -> dict[str, Any]:
    """A study's ``sections["unit_circle"]``: :func:`count_summary` per condition of all
    eigenvalues and, when every spectrum can be filtered
    (:func:`conjugacy.analysis.filter_spectrum`), of the residual-filtered ones.

    Parameters
    ----------
    spectra : mapping condition -> sequence of Spectrum
        One spectrum per seed (plain eigenvalue arrays give the ``all`` part only).
    tol, min_angle : float
        As in :func:`unit_circle_counts`.

    Returns
    -------
    dict
        ``rule`` (the classification in words), ``all`` and, when filtered, ``filtered``:
        condition -> :func:`count_summary`.

    Examples
    --------
    >>> sec = unit_circle_section({"a": [[1.02 + 0.05j, 1.02 - 0.05j]], "b": [[0.5]]}, 0.002)
    >>> sorted(sec), sec["all"]["a"]["total"]["oscillatory_outside"], sec["all"]["b"]["total"]["inside"]
    (['all', 'rule'], 2, 1)
    """
    which = {"all": spectra}
    filtered = {c: [filter_spectrum(s) for s in v] for c, v in spectra.items()}
    if all(f is not None for v in filtered.values() for f in v):
        which["filtered"] = filtered
    return {"rule": RULE, **{
        w: {c: count_summary([unit_circle_counts(s, tol, min_angle) for s in v])
            for c, v in per.items()}
        for w, per in which.items()}}
