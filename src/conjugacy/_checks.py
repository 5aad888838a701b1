"""Input validation and its error messages, in one place.

Every public entry point validates its arguments here once, so that bad input fails early with a
message that names the argument, the offending value or index, and what is required.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np


def as_numeric_array(value: Any, name: str, *, allow_complex: bool = True) -> np.ndarray:
    """Return ``value`` as a float64 (or complex128) array, or raise a clear error.

    Raises
    ------
    TypeError
        If the values are not numbers (strings, objects, booleans mixed with text, ...).
    """
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise TypeError(f"{name} must be a numeric array; could not convert it: {exc}") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(
            f"{name} must hold numbers (float or int), got an array of dtype {arr.dtype}"
        )
    if np.iscomplexobj(arr):
        if not allow_complex:
            raise TypeError(f"{name} must be real-valued, got complex dtype {arr.dtype}")
        return arr.astype(np.complex128, copy=False)
    return arr.astype(np.float64, copy=False)


def check_finite(arr: np.ndarray, name: str, *, block_bytes: int = 1 << 26) -> None:
    """Raise ``ValueError`` naming the first non-finite entry of ``arr``.

    Large arrays are checked in blocks along the first axis, so the check never allocates more
    than ~``block_bytes / 8`` bytes of mask (memory-mapped inputs stay out of core).
    """
    if arr.size == 0:
        return
    rows = max(1, block_bytes // max(1, arr[:1].nbytes)) if arr.ndim else 1
    for start in range(0, max(1, arr.shape[0] if arr.ndim else 1), rows):
        block = arr[start : start + rows] if arr.ndim else arr
        if np.isfinite(block.sum()):  # NaN and Inf propagate into a sum: no mask needed (4x faster)
            continue
        finite = np.isfinite(block)
        if finite.all():
            continue
        local = tuple(int(i) for i in np.argwhere(~finite)[0])
        idx = (local[0] + start,) + local[1:] if arr.ndim else local
        bad = arr[idx]
        kind = "NaN" if np.isnan(bad) else "Inf"
        total = sum(
            int((~np.isfinite(arr[i : i + rows])).sum()) for i in range(start, arr.shape[0], rows)
        ) if arr.ndim else 1
        raise ValueError(
            f"{name} contains {kind} at index {idx}; all values must be finite "
            f"({total} non-finite value(s) in {name})"
        )


def check_ndim(arr: np.ndarray, name: str, allowed: tuple[int, ...], hint: str = "") -> None:
    if arr.ndim not in allowed:
        want = " or ".join(f"{d}-D" for d in allowed)
        msg = f"{name} must be {want}, got a {arr.ndim}-D array of shape {arr.shape}"
        raise ValueError(msg + (f"; {hint}" if hint else ""))


def check_int(value: Any, name: str, *, minimum: int | None = None) -> int:
    """Return ``value`` as an int; ``TypeError`` if it is not integral, ``ValueError`` if too small."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_positive_float(value: Any, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return value


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        opts = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {opts}, got {value!r}")
    return value
