"""Input validation and its error messages, in one place.

Every public entry point validates its arguments here once, so that bad input fails early with a
message that names the argument, the offending value or index, and what is required.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np


def is_numeric(dtype: Any) -> bool:
    """Whether ``dtype`` holds numbers or booleans (not objects, strings or dates)."""
    return bool(np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_))


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
    if not is_numeric(arr.dtype):
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
    value = _as_int(value, name, "an integer")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_seed(seed: Any, *, generator: bool = False) -> Any:
    """``seed`` as an int: ``TypeError`` unless it is an integer (not a bool), ``ValueError`` if
    it is negative. With ``generator`` (what :func:`numpy.random.default_rng` takes), None and a
    numpy Generator are returned as they are, and the TypeError names them too.

    >>> check_seed(np.int64(3)), check_seed(None, generator=True)
    (3, None)
    """
    if generator and (seed is None or isinstance(seed, np.random.Generator)):
        return seed
    words = ("None, a non-negative integer or a numpy Generator" if generator
             else "a non-negative integer")
    value = _as_int(seed, "seed", words)
    if value < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return value


def check_unit_interval(value: Any, name: str) -> float:
    """``value`` as a float in the open interval (0, 1) (a level, an alpha): the rule of a
    ``Float(0, 1, open_minimum=True, open_maximum=True)`` field, ``TypeError`` for a non-number
    or a bool, ``ValueError`` for a bound or a value outside, naming ``name``
    (:data:`UNIT_INTERVAL`, also the domain of the command line's ``--alpha``)."""
    return UNIT_INTERVAL.check(value, name)


def check_positive_float(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (>= 0 with ``allow_zero``): :class:`Param` ``float``'s
    rule, ``TypeError`` / ``ValueError`` naming ``name``."""
    return Float(0, open_minimum=not allow_zero).check(value, name)


def check_rank(value: Any, name: str = "rank", *, allow_none: bool = True) -> int | str | None:
    """A ``rank=`` argument in its canonical form: a positive int, a statistical rank rule of
    :data:`conjugacy.dmd.RANK_RULES` in lowercase (the rule's name in any case, e.g.
    ``"SVHT"``, surrounding spaces ignored), or None (``allow_none``: the tolerance rule). The
    one parser of a rank every public entry point uses.

    Raises
    ------
    ValueError
        A str that names no rule, or an int below 1 (the message names ``name``, the value and
        the accepted forms).
    TypeError
        Anything else (a float, a bool, None where not allowed).

    Examples
    --------
    >>> check_rank("SVHT"), check_rank(10), check_rank(None)
    ('svht', 10, None)
    """
    from .dmd import RANK_RULES

    if isinstance(value, str):
        rule = value.strip().lower()
        if rule not in RANK_RULES:
            raise ValueError(
                f"{name} must be a positive int{', None' if allow_none else ''} or one of "
                f"{list(RANK_RULES)} (a statistical rank rule, any case), got {value!r}")
        return rule
    if value is None and allow_none:
        return None
    return check_int(value, name, minimum=1)


def check_choice(value: Any, name: str, choices: tuple[Any, ...]) -> Any:
    """``value`` if it is one of ``choices``, else ``ValueError`` naming ``name``, the value and
    the choices (None too: one more value outside them). The rule of :func:`Choice` fields.

    >>> check_choice("std", "spread", ("std", "minmax"))
    'std'
    """
    if value not in choices:
        raise ValueError(f"{name} must be {Choice(*choices).requirement()}, got {value!r}")
    return value


# ----- declared parameter domains ----------------------------------------------------------------
# A config declares the domain of each of its fields once, as a mapping ``{field: Param}`` (in the
# spirit of kooplearn's ``_parameter_constraints``); :func:`validate` checks a config or a mapping
# against it, and the command line builds its options (bounds, choices) from the same mapping.

_KINDS = ("int", "float", "bool", "str", "path", "choice", "tuple", "rank")
#: A value of each kind (but "choice" and "rank": :meth:`Param.requirement`), in words.
_WORDS = {"int": "an integer", "float": "a real number", "bool": "a bool", "str": "a str",
          "path": "a path (str)", "tuple": "a sequence"}


@dataclass(frozen=True)
class Param:
    """The domain of one setting.

    Parameters
    ----------
    kind : {"int", "float", "bool", "str", "path", "choice", "tuple", "rank"}
        ``int``: an integer (not a bool); ``float``: a finite real number (an int is accepted and
        stored as a float); ``path``: a str or path-like, stored as a str; ``choice``: one of
        ``choices``; ``tuple``: a sequence (not a str), stored as a tuple, each item in ``item``;
        ``rank``: what ``rank=`` of :func:`conjugacy.koopman_spectrum` takes (:func:`check_rank`:
        a positive int or a rank rule such as ``"svht"``, any case; None with ``allow_none``).
    minimum, maximum : number, optional
        Bounds of an ``int`` or ``float``, included unless ``open_minimum`` / ``open_maximum``.
    choices : tuple
        The allowed values of a ``choice``.
    allow_none : bool
        Whether ``None`` is allowed (e.g. "use the default rule").
    item : Param, optional
        The domain of each item of a ``tuple``.
    length : int, optional
        The exact number of items of a ``tuple``.
    nonempty, distinct : bool
        A ``tuple`` needs at least one item / no repeated items.
    name : str, optional
        How the messages name the value (default: the field name; items: ``field[i]``).
    help : str
        What the setting means (for documentation and generated command-line help).
    """

    kind: str
    minimum: float | None = None
    maximum: float | None = None
    open_minimum: bool = False
    open_maximum: bool = False
    choices: tuple[Any, ...] = ()
    allow_none: bool = False
    item: Param | None = None
    length: int | None = None
    nonempty: bool = False
    distinct: bool = False
    name: str | None = None
    help: str = ""

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {self.kind!r}")
        if self.kind == "choice" and not self.choices:
            raise ValueError("a choice needs choices")

    def requirement(self) -> str:
        """What a valid value is, in words (``"an integer >= 1"``, ``"finite and > 0"``, ...)."""
        lo = "(" if self.open_minimum else "["
        hi = ")" if self.open_maximum else "]"
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "rank":
            from .dmd import RANK_RULES

            return "a positive integer or one of " + ", ".join(repr(r) for r in RANK_RULES)
        if self.kind not in ("int", "float"):
            return _WORDS[self.kind]
        if self.minimum is not None and self.maximum is not None:
            bound = f"in {lo}{self.minimum:g}, {self.maximum:g}{hi}"
        elif self.minimum is not None:
            bound = f"{'>' if self.open_minimum else '>='} {self.minimum:g}"
        elif self.maximum is not None:
            bound = f"{'<' if self.open_maximum else '<='} {self.maximum:g}"
        else:
            bound = ""
        if self.kind == "int":
            return f"an integer {bound}".rstrip() if not self.allow_none else (bound or "an integer")
        return f"finite and {bound}" if bound.startswith(("<", ">")) else (bound or "finite")

    def check(self, value: Any, name: str) -> Any:
        """Return ``value`` in its canonical form, or raise ``TypeError`` (wrong type) or
        ``ValueError`` (outside the domain) naming ``name``, the value and what is required."""
        name = self.name or name
        if value is None and self.allow_none:
            return None
        if self.kind == "choice":  # any value outside the choices, None too, is a ValueError
            return check_choice(value, name, self.choices)
        if value is None:
            raise TypeError(f"{name} must be {self._type_words()}, got None")
        if self.kind == "int":
            return self._in_bounds(_as_int(value, name, self._type_words()), value, name)
        if self.kind == "float":
            return self._in_bounds(_as_float(value, name, self._type_words()), value, name)
        if self.kind == "tuple":
            return self._check_tuple(value, name)
        if self.kind == "rank":
            return check_rank(value, name, allow_none=self.allow_none)
        return _as_scalar(self.kind, value, name, self._type_words())

    def _type_words(self) -> str:
        words = _WORDS.get(self.kind) or self.requirement()  # rank: the domain
        return words + (" or None" if self.allow_none else "")

    def _in_bounds(self, value: float, given: Any, name: str) -> Any:
        lo, hi = self.minimum, self.maximum
        bad = (
            (self.kind == "float" and not math.isfinite(value))
            or (lo is not None and (value <= lo if self.open_minimum else value < lo))
            or (hi is not None and (value >= hi if self.open_maximum else value > hi))
        )
        if bad:
            none = " or None" if self.allow_none else ""
            raise ValueError(f"{name} must be {self.requirement()}{none}, got {given!r}")
        return value

    def _check_tuple(self, value: Any, name: str) -> tuple[Any, ...]:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise TypeError(f"{name} must be a sequence (tuple or list), got {value!r}")
        items = tuple(value)
        if self.nonempty and not items:
            raise ValueError(f"{name} must be a non-empty sequence, got {value!r}")
        if self.length is not None and len(items) != self.length:
            raise ValueError(f"{name} must hold {self.length} items, got {value!r}")
        if self.item is not None:
            items = tuple(self.item.check(v, f"{name}[{i}]") for i, v in enumerate(items))
        if self.distinct and len(set(items)) != len(items):
            raise ValueError(f"{name} must be distinct, got {items!r}")
        return items


def _as_int(value: Any, name: str, words: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {words}, got {value!r} of type {type(value).__name__}")
    return int(value)


def _as_float(value: Any, name: str, words: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {words}, got {value!r}")
    return float(value)


def _as_scalar(kind: str, value: Any, name: str, words: str) -> Any:
    if kind == "bool" and isinstance(value, (bool, np.bool_)):
        return bool(value)
    if kind == "str" and isinstance(value, str):
        return value
    if kind == "path" and isinstance(value, (str, os.PathLike)):
        return str(value)
    raise TypeError(f"{name} must be {words}, got {value!r} of type {type(value).__name__}")


def Int(minimum: int | None = None, maximum: int | None = None, **kw: Any) -> Param:  # noqa: N802
    """An integer field, e.g. ``Int(1)``: an integer >= 1."""
    return Param("int", minimum=minimum, maximum=maximum, **kw)


def Float(minimum: float | None = None, maximum: float | None = None, **kw: Any) -> Param:  # noqa: N802
    """A finite real field, e.g. ``Float(0, open_minimum=True)``: finite and > 0."""
    return Param("float", minimum=minimum, maximum=maximum, **kw)


#: The open interval (0, 1) of a level or an alpha (:func:`check_unit_interval`).
UNIT_INTERVAL = Float(0, 1, open_minimum=True, open_maximum=True)


def Rank(allow_none: bool = True, **kw: Any) -> Param:  # noqa: N802
    """A rank field taking what ``rank=`` of :func:`conjugacy.koopman_spectrum` and ``conjugacy
    analyze --rank`` take: a positive int, a rank rule (``"svht"``, any case, stored lowercase)
    or None (the tolerance rule; ``allow_none=False`` refuses it), by :func:`check_rank`.

    >>> Rank().check("SVHT", "rank"), Rank().check(10, "rank"), Rank().check(None, "rank")
    ('svht', 10, None)
    """
    return Param("rank", allow_none=allow_none, **kw)


def Choice(*choices: Any, **kw: Any) -> Param:  # noqa: N802
    """One of ``choices``, e.g. ``Choice("cpu", "cuda")``."""
    return Param("choice", choices=tuple(choices), **kw)


def validate(obj: Any, constraints: Mapping[str, Param]) -> dict[str, Any]:
    """Check every field of ``obj`` (a config or a mapping) named in ``constraints``.

    Returns the canonical values (ints as ``int``, reals as ``float``, sequences as tuples,
    paths as ``str``) by field name. When ``obj`` is not a mapping (a dataclass config), they are
    also set on it (``object.__setattr__``, so frozen dataclasses hold the canonical form).

    Raises
    ------
    TypeError
        A value of the wrong type, naming the field, the value and the type required.
    ValueError
        A value outside its domain, naming the field, the value and the domain.
    """
    get = obj.get if isinstance(obj, Mapping) else functools.partial(getattr, obj)
    values = {field: param.check(get(field), field) for field, param in constraints.items()}
    if not isinstance(obj, Mapping):
        for field, value in values.items():
            if getattr(obj, field) is not value:
                object.__setattr__(obj, field, value)
    return values


def setting(default: Any, param: Param, help: str = "") -> Any:  # noqa: A002
    """A config field declared once: its default, its domain and what it means.

    Returns a :func:`dataclasses.field` whose metadata carries ``param`` (with ``help`` as its
    :attr:`Param.help` when given; a shared :class:`Param` brings its own). A
    :class:`DeclaredConfig` collects its ``constraints`` and the "Attributes" section of its
    docstring from these fields.

    Raises
    ------
    ValueError
        When neither ``help`` nor ``param.help`` says what the field means.

    Examples
    --------
    >>> f = setting(4, Int(2), "Independent seeds.")
    >>> f.default, f.metadata["param"].minimum, f.metadata["param"].help
    (4, 2, 'Independent seeds.')
    """
    if help:
        param = dataclasses.replace(param, help=help)
    if not param.help:
        raise ValueError("a setting needs help: what the field means, for the docs and --help")
    return dataclasses.field(default=default, metadata={"param": param})


def _attributes_section(cls: type, fields: list[tuple[str, Param]]) -> None:
    """Insert the numpydoc "Attributes" section of ``fields`` into ``cls.__doc__``, before its
    Raises / Examples section (else at the end), in the docstring's own indentation."""
    doc = cls.__doc__ or ""
    lines = doc.splitlines()
    indents = [len(x) - len(x.lstrip()) for x in lines[1:] if x.strip()]
    pad = " " * (min(indents) if indents else 0)
    notes = cls.__annotations__
    section = ["", f"{pad}Attributes", f"{pad}----------"]
    for name, param in fields:
        section.append(f"{pad}{name} : {notes.get(name, 'Any')}, default "
                       f"{cls.__dict__[name].default!r}")
        section += textwrap.wrap(param.help, 96, initial_indent=pad + "    ",
                                 subsequent_indent=pad + "    ", break_on_hyphens=False)
    heads = {f"{pad}{h}" for h in ("Raises", "Examples", "Notes", "See Also")}
    at = next((i for i in range(1, len(lines) - 1)
               if lines[i] in heads and set(lines[i + 1].strip()) == {"-"}), None)
    if at is None:
        lines.extend(section)
    else:
        lines[at - 1:at - 1] = section
    cls.__doc__ = "\n".join(lines)


class DeclaredConfig:
    """Base of the experiments' configs (frozen dataclasses), written once.

    A subclass declares each field once with :func:`setting` (default, domain, help);
    ``constraints`` (the domain of every field, checked by :func:`validate` on construction;
    ``conjugacy reproduce`` builds its options from them) and the "Attributes" section of the
    class docstring are collected from those fields when the class is created. It also declares
    ``scales`` (each preset as the fields it overrides, a table of data) and its rules between
    fields in :meth:`check`.
    """

    constraints: ClassVar[Mapping[str, Param]] = MappingProxyType({})
    scales: ClassVar[Mapping[str, Mapping[str, Any]]] = MappingProxyType({})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = [(name, value.metadata["param"]) for name in cls.__dict__.get("__annotations__", {})
                    if isinstance(value := cls.__dict__.get(name), dataclasses.Field)
                    and "param" in value.metadata]
        if declared:
            cls.constraints = MappingProxyType({**cls.constraints, **dict(declared)})
            _attributes_section(cls, declared)

    def __post_init__(self) -> None:
        validate(self, self.constraints)
        self.check()

    def check(self) -> None:
        """The rules between fields (raise ``ValueError``); none by default."""

    @classmethod
    def preset(cls, scale: str, **overrides: Any) -> Any:
        """The preset ``scale`` (one of ``scales``) with ``overrides`` applied; a ``scale`` field,
        if the config has one, records the preset's name."""
        if scale not in cls.scales:
            raise ValueError(f"scale must be one of {tuple(cls.scales)}, got {scale!r}")
        settings = {**cls.scales[scale], **overrides}
        if "scale" in {f.name for f in dataclasses.fields(cls)}:  # type: ignore[arg-type]
            settings["scale"] = scale
        return cls(**settings)

    from_scale = preset

    @classmethod
    def quick(cls, **overrides: Any) -> Any:
        """``preset("quick", **overrides)``."""
        return cls.preset("quick", **overrides)

    @classmethod
    def paper(cls, **overrides: Any) -> Any:
        """``preset("paper", **overrides)``."""
        return cls.preset("paper", **overrides)

    def with_overrides(self, **overrides: Any) -> Any:
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **overrides)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]


def check_out_dir(out: Any, name: str = "--out") -> Path:
    """Return ``out`` as a :class:`~pathlib.Path` of a folder that can be created or written
    into, or raise ``NotADirectoryError`` naming ``name`` when ``out`` (or a parent) exists and is
    not a folder. The one output-folder check of the command line (exit status 2 there)."""
    out = Path(out)
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            what = "it" if parent == out else repr(str(parent))
            raise NotADirectoryError(
                f"{name} {str(out)!r} cannot be an output folder: {what} exists and is not a folder"
            )
    return out
