"""JSON helpers shared by every experiment: turning results into JSON and writing them safely.

Complex numbers are written as ``[re, im]`` pairs (JSON has no complex type); NumPy scalars and
arrays become Python numbers and (nested) lists; non-finite floats (NaN, +-Inf), which strict JSON
does not allow, become ``null``. Files are written to a temporary file in the same folder, flushed
to disk and renamed over the target, so an interruption never leaves a half-written file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import sys
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_open
from ._checks import as_numeric_array, is_numeric

__all__ = [
    "complex_to_pairs",
    "package_info",
    "spectrum_to_dict",
    "to_jsonable",
    "write_json",
]

#: Distributions whose versions :func:`package_info` reports when installed (looked up in the
#: package metadata: nothing is imported, so asking never pulls in torch).
_REPORTED_PACKAGES = ("numpy", "scipy", "matplotlib", "zarr", "torch", "typer", "rich")
#: The fields of a Spectrum :func:`spectrum_to_dict` writes after its eigenvalues, in this order.
_SPECTRUM_FIELDS = ("magnitude", "data_residuals", "residuals", "plain_residuals", "rank", "method",
                    "residuals_informative", "singular_values", "settings")


def complex_to_pairs(values: Any) -> list[list[float]]:
    """Complex values as a JSON-friendly list of ``[re, im]`` pairs.

    Parameters
    ----------
    values : array-like of complex or real numbers, any shape (flattened in C order)

    Returns
    -------
    list of [float, float]
        One pair per value; real input gives ``im == 0.0``.

    Raises
    ------
    TypeError
        If ``values`` does not hold numbers.

    Examples
    --------
    >>> from conjugacy.results import complex_to_pairs
    >>> complex_to_pairs([1 + 2j, 0.5])
    [[1.0, 2.0], [0.5, 0.0]]
    >>> complex_to_pairs([complex(float("nan"), 1.0)])
    [[None, 1.0]]
    """
    arr = as_numeric_array(values, "values").astype(np.complex128).ravel()
    return [[_float(v.real), _float(v.imag)] for v in arr]


def spectrum_to_dict(spectrum: Any) -> dict[str, Any]:
    """A :class:`conjugacy.Spectrum` as a JSON-serialisable dict (modes are left out).

    Returns
    -------
    dict
        ``eigenvalues`` ([re, im] pairs, in the spectrum's order: decreasing modulus),
        ``magnitude``, ``data_residuals`` (ResDMD; None for spectra made before they existed),
        ``residuals``, ``plain_residuals``, ``rank``, ``method``, ``residuals_informative``,
        ``singular_values`` and ``settings``; when a second branch of next states was recorded
        (``koopman_spectrum(next_states=...)``, :mod:`conjugacy.residuals`) also the
        two-branch residuals of each eigenpair, in the order of ``eigenvalues``:
        ``projection_residuals``, ``variance_residuals`` and ``noise_fractions`` (all
        dimensionless), with ``settings["branch"]`` describing the estimator.

    Raises
    ------
    TypeError
        If ``spectrum`` is not a :class:`conjugacy.Spectrum`.

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> from conjugacy.results import spectrum_to_dict
    >>> x = np.array([[0.9 ** t, 0.5 ** t] for t in range(20)])
    >>> d = spectrum_to_dict(koopman_spectrum([x], rank=2))
    >>> d["rank"], d["eigenvalues"]
    (2, [[0.9, 0.0], [0.5, 0.0]])
    """
    from .spectrum import BRANCH_FIELDS, Spectrum

    if not isinstance(spectrum, Spectrum):
        raise TypeError(
            f"spectrum must be a conjugacy.Spectrum, got {type(spectrum).__name__}; "
            "use complex_to_pairs for plain arrays of eigenvalues"
        )
    branch = [name for name in BRANCH_FIELDS if getattr(spectrum, name) is not None]
    return {
        "eigenvalues": complex_to_pairs(spectrum.eigenvalues),
        **{name: to_jsonable(getattr(spectrum, name)) for name in (*_SPECTRUM_FIELDS, *branch)},
    }


def _float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def to_jsonable(obj: Any, _where: str = "obj") -> Any:
    """Convert ``obj`` recursively into plain JSON types.

    Handles dicts (keys must be strings), lists, tuples, NumPy scalars and arrays, complex numbers
    (as ``[re, im]``), :class:`pathlib.Path` (as a string), frozen dataclasses (as dicts of their
    fields) and :class:`conjugacy.Spectrum` (via :func:`spectrum_to_dict`). Non-finite floats
    become ``None``.

    Raises
    ------
    TypeError
        Naming where in ``obj`` an object of an unsupported type sits.

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy.results import to_jsonable
    >>> to_jsonable({"x": np.arange(3), "z": 1j, "bad": float("inf"), "n": np.int64(4)})
    {'x': [0, 1, 2], 'z': [0.0, 1.0], 'bad': None, 'n': 4}
    >>> to_jsonable({"f": {1, 2}})
    Traceback (most recent call last):
    ...
    TypeError: obj['f'] is of type set, which cannot be written as JSON
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        return _float(obj)
    if isinstance(obj, (complex, np.complexfloating)):
        return [_float(obj.real), _float(obj.imag)]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.ndarray):
        if np.iscomplexobj(obj):
            return np.stack([obj.real, obj.imag], axis=-1).tolist() if obj.size else []
        if not is_numeric(obj.dtype):
            raise TypeError(f"{_where} is an array of dtype {obj.dtype}, which JSON cannot hold")
        return to_jsonable(obj.tolist(), _where)
    if isinstance(obj, Mapping):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{_where} has a key {key!r} of type {type(key).__name__}; "
                    "JSON object keys must be strings"
                )
            out[key] = to_jsonable(value, f"{_where}[{key!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, f"{_where}[{i}]") for i, v in enumerate(obj)]
    from .spectrum import Spectrum

    if isinstance(obj, Spectrum):
        return spectrum_to_dict(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return to_jsonable(fields, _where)
    raise TypeError(f"{_where} is of type {type(obj).__name__}, which cannot be written as JSON")


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (temporary file + ``os.replace``).

    ``obj`` is passed through :func:`to_jsonable` first, so NumPy values and complex numbers are
    accepted. The parent folder must exist. Returns the path written.

    Raises
    ------
    TypeError
        If ``obj`` holds something JSON cannot represent (the message says where).
    FileNotFoundError
        If the parent folder does not exist.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from conjugacy.results import write_json
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_json(Path(tmp) / "result.json", {"eigenvalue": 0.5 + 0.25j})
    ...     print(path.read_text(), end="")
    {
      "eigenvalue": [
        0.5,
        0.25
      ]
    }
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"path {str(path)!r}: folder {str(path.parent)!r} does not exist")
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n"
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return path


def package_info() -> dict[str, Any]:
    """Versions of conjugacy, Python and the main dependencies, and the platform.

    Returns
    -------
    dict
        ``{"conjugacy": str, "python": str, "platform": str, "packages": {name: version}}``;
        packages that are not installed are left out.

    Examples
    --------
    >>> from conjugacy.results import package_info
    >>> info = package_info()
    >>> sorted(info)
    ['conjugacy', 'packages', 'platform', 'python']
    >>> "numpy" in info["packages"]
    True
    """
    from . import __version__

    packages = {}
    for name in _REPORTED_PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            continue
    return {
        "conjugacy": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": packages,
    }
