"""The one results record of every analysis, and its versioned JSON schema.

Every route from runs to verdict (:func:`conjugacy.analysis.pipeline.run_pipeline`,
:func:`conjugacy.analyze`, ``conjugacy analyze``, the reproductions) returns a :class:`Results`
and writes ``results.json`` in the schema ``"conjugacy.results/2"``: the JSON Schema shipped as
``conjugacy/analysis/results.schema.json`` (see :func:`schema`), documented field by field in
``docs/results.md``. A user's script can rely on the required fields; experiments add their own
findings under ``sections`` and their decided claims under ``claims``.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["MAX_RESULTS_BYTES", "SCHEMA", "Claim", "Results", "ResultsFileError", "check_sizes",
           "curve_summary", "read_results", "schema", "spectra_to_json", "validate", "verdict_claim"]

#: The schema identifier written into every ``results.json``.
SCHEMA = "conjugacy.results/2"


@dataclass(frozen=True)
class Claim:
    """A claim of a paper, decided on this run's numbers.

    Attributes
    ----------
    claim : str
        The claim, in the paper's words where possible.
    holds : bool or None
        True: the numbers support it; False: they contradict it; None: undecided (e.g. too few
        seeds for the test to reject).
    evidence : str
        The numbers behind the decision (verdicts, p-values, distances, counts).

    Examples
    --------
    >>> c = Claim("SGD and Adam train differently", None, "3 seeds: smallest p = 0.1")
    >>> c.word, c.to_dict()["holds"]
    ('undecided', None)
    """

    claim: str
    holds: bool | None
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def word(self) -> str:
        """``"holds"``, ``"does not hold"`` or ``"undecided"``."""
        return {True: "holds", False: "does not hold"}.get(self.holds, "undecided")


def curve_summary(values: Any, steps: Sequence[int]) -> dict[str, Any] | None:
    """One condition's entry of ``results["loss"]``: a recorded curve summarized over runs.

    Parameters
    ----------
    values : array-like (n_runs, n_steps)
        One curve per run (e.g. the loss); NaN where a run has no value.
    steps : sequence of int (n_steps,)
        The step of each column.

    Returns
    -------
    dict or None
        ``steps``; ``mean``, ``std``, ``min``, ``max`` over runs per step (NaN ignored);
        ``final_mean``, the mean of the last tenth (at least one step) of the mean curve;
        ``n_runs``. None when no value is finite.

    Raises
    ------
    ValueError
        If ``values`` is not 2-D or ``steps`` does not have one entry per column.

    Examples
    --------
    >>> c = curve_summary([[1.0, 0.5, 0.25], [1.0, 0.7, 0.35]], [0, 1, 2])
    >>> c["mean"], c["max"], c["final_mean"], c["n_runs"]
    ([1.0, 0.6, 0.3], [1.0, 0.7, 0.35], 0.3, 2)
    """
    import warnings

    import numpy as np

    y = np.asarray(values, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != len(steps):
        raise ValueError(f"values must be (n_runs, n_steps) with n_steps = len(steps) = "
                         f"{len(steps)}, got shape {y.shape}")
    if not np.isfinite(y).any():
        return None
    with warnings.catch_warnings():  # a step no run recorded: NaN, no warning
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(y, axis=0)
        out = {"steps": [int(t) for t in steps], "mean": mean.tolist(),
               "std": np.nanstd(y, axis=0).tolist(), "min": np.nanmin(y, axis=0).tolist(),
               "max": np.nanmax(y, axis=0).tolist(),
               "final_mean": float(np.nanmean(mean[-max(1, y.shape[1] // 10):])),
               "n_runs": int(y.shape[0])}
    return out


def verdict_claim(claim: str, verdicts: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
                  expect: str = "not conjugate", evidence: str | None = None) -> Claim:
    """A claim that the compared pairs have the verdict ``expect``, decided on their verdicts.

    Parameters
    ----------
    claim : str
        The claim's words.
    verdicts : mapping, sequence of mappings or None
        Entries of ``results["comparison"]["verdicts"]`` (``verdict``, ``reason``, ...): one pair
        or several; None when the pair was not compared.
    expect : {"not conjugate", "conjugate"}
        The verdict the claim predicts.
    evidence : str, optional
        Default: ``"<verdict>: <reason>"`` per pair, joined by ``"; "``.

    Returns
    -------
    Claim
        ``holds`` True when every verdict is ``expect``, False when one is the other verdict,
        None otherwise (a pair undecided, or nothing compared: evidence ``"not compared"``).

    Examples
    --------
    >>> v = {"verdict": "not conjugate", "reason": "p = 0.01 < 0.05"}
    >>> verdict_claim("A and B differ", v)
    Claim(claim='A and B differ', holds=True, evidence='not conjugate: p = 0.01 < 0.05')
    >>> verdict_claim("A and B are conjugate", [v, {"verdict": "undecided", "reason": "p"}],
    ...               "conjugate").holds
    False
    """
    if verdicts is None:
        return Claim(claim, None, "not compared")
    rows = [verdicts] if isinstance(verdicts, Mapping) else list(verdicts)
    words = [v["verdict"] for v in rows]
    holds = (False if any(w not in (expect, "undecided") for w in words)
             else True if all(w == expect for w in words) else None)
    if evidence is None:
        evidence = "; ".join(f"{v['verdict']}: {v['reason']}" for v in rows)
    return Claim(claim, holds, evidence)


def spectra_to_json(spectra: Mapping[str, Sequence[Any]]) -> dict[str, list[dict[str, Any]]]:
    """``{condition: [spectrum_to_dict(s) for s in per-seed spectra]}`` (eigenvalues as [re, im]
    pairs, residuals, data residuals, rank, settings).

    Parameters
    ----------
    spectra : mapping condition -> sequence of Spectrum

    Returns
    -------
    dict condition -> list of dict
        JSON types (the ``spectra`` entry of ``results.json``).

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> x = 0.9 ** np.arange(20)[None, :, None] * np.ones((1, 1, 2))
    >>> d = spectra_to_json({"sgd": [koopman_spectrum(x, rank=1)]})["sgd"][0]
    >>> d["eigenvalues"], d["rank"]
    ([[0.9, 0.0]], 1)
    """
    from ..results import spectrum_to_dict

    return {str(c): [spectrum_to_dict(s) for s in specs] for c, specs in spectra.items()}


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``results.json``, as shipped with the package.

    Returns
    -------
    dict

    Examples
    --------
    >>> s = schema()
    >>> s["$schema"], "comparison" in s["required"]
    ('https://json-schema.org/draft/2020-12/schema', True)
    """
    text = resources.files("conjugacy.analysis").joinpath("results.schema.json").read_text("utf-8")
    return json.loads(text)


def validate(content: Mapping[str, Any]) -> None:
    """Check ``content`` against :func:`schema` (needs the ``jsonschema`` package).

    Raises
    ------
    ImportError
        If ``jsonschema`` is not installed.
    jsonschema.ValidationError
        Naming the first field that does not fit.

    Examples
    --------
    >>> import jsonschema
    >>> try:
    ...     validate({"schema": SCHEMA})
    ... except jsonschema.ValidationError as e:
    ...     print(e.message)
    'experiment' is a required property
    """
    import jsonschema

    jsonschema.validate(dict(content), schema())


#: Largest ``results.json`` :func:`read_results` reads: 24 MiB, twice the largest real file
#: measured (12 MB; paper-scale files are a few MB), so that parsing stays under ~200 MB of memory
#: (a 60 MB file took 295 MB, a 30 MB one 207 MB).
MAX_RESULTS_BYTES = 24 * 2**20
#: Deepest nesting of a ``results.json`` (the schema's deepest field is ~8 levels down).
MAX_RESULTS_DEPTH = 64
#: Most conditions, seeds per condition, windows per condition and eigenvalues per spectrum a
#: read ``results.json`` may declare: every figure and table of the report is drawn within these
#: (one panel per condition, one row per seed, a window x window heatmap).
MAX_CONDITIONS, MAX_SEEDS, MAX_WINDOWS, MAX_EIGENVALUES = 64, 1024, 2048, 16384


class ResultsFileError(ValueError):
    """A ``results.json`` that cannot be read: the message names the file, the problem and the
    fix.

    A :class:`ValueError`, raised by :func:`read_results`.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     try:
    ...         read_results(Path(tmp, "results.json"))
    ...     except ResultsFileError as exc:
    ...         print(isinstance(exc, ValueError), str(exc).replace(tmp, "TMP"))
    True 'TMP/results.json' is not a file (it does not exist): give the results.json of
    `conjugacy analyze` or of a `conjugacy reproduce` run
    """


def read_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The content of a ``results.json``, read within bounds and checked before any use.

    The file (a link the user named is followed) must be a regular file of at most
    :data:`MAX_RESULTS_BYTES` bytes, hold at most :data:`conjugacy._bounded_json.MAX_JSON_VALUES`
    values nested at most :data:`MAX_RESULTS_DEPTH` deep, be a JSON object of schema
    :data:`SCHEMA` (validated with :func:`validate` when ``jsonschema`` is installed), and
    declare at most :data:`MAX_CONDITIONS` conditions, :data:`MAX_SEEDS` seeds per condition,
    :data:`MAX_WINDOWS` windows and :data:`MAX_EIGENVALUES` eigenvalues per spectrum, with
    matrices of the sizes their labels declare (:func:`check_sizes`). A FIFO or device is refused
    without waiting on it.

    Raises
    ------
    ResultsFileError
        One line naming ``path``: missing, not a regular file, over a limit, not JSON, another
        schema, a field of the wrong shape.

    Examples
    --------
    >>> read_results("results/fcn/results.json")["comparison"]["verdicts"]  # doctest: +SKIP

    A file of another schema is refused in one line that names it:

    >>> import json, tempfile
    >>> from pathlib import Path
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = Path(tmp.name) / "results.json"
    >>> _ = path.write_text(json.dumps({"schema": "other/1"}))
    >>> read_results(path)
    Traceback (most recent call last):
    ...
    conjugacy.analysis.results.ResultsFileError: '...' is not a results.json ...'other/1'...
    >>> tmp.cleanup()
    """
    from .._bounded_json import UnsafeFile, read_json

    name = repr(str(path))
    try:
        content = read_json(path, limit=MAX_RESULTS_BYTES, max_depth=MAX_RESULTS_DEPTH,
                            follow_links=True, what="a results file")
    except UnsafeFile as exc:
        raise ResultsFileError(f"{name} {exc.problem}") from None
    if content is None:
        raise ResultsFileError(f"{name} is not a file (it does not exist): give the results.json "
                               "of `conjugacy analyze` or of a `conjugacy reproduce` run")
    found = content.get("schema") if isinstance(content, dict) else type(content).__name__
    if found != SCHEMA:
        raise ResultsFileError(
            f"{name} is not a results.json of schema {SCHEMA} (its schema: {str(found)[:80]!r}); "
            "write one with `conjugacy analyze` or `conjugacy reproduce`, or rerun the analysis "
            "that wrote it with this version")
    try:
        check_sizes(content)
        _validate_if_possible(content)
    except ValueError as exc:
        raise ResultsFileError(f"{name}: {exc}") from None
    return content


def _count(value: Any, limit: int, where: str, what: str) -> int:
    if value is None:
        return 0
    if not isinstance(value, dict | list):
        raise ValueError(f"{where} must be a list or an object, got {type(value).__name__}")
    if len(value) > limit:
        raise ValueError(f"{where} declares {len(value)} {what}, over the limit of {limit}")
    return len(value)


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _items(obj: Any) -> list[tuple[Any, Any]]:
    return list(obj.items()) if isinstance(obj, dict) else []


def _square(matrix: Any, n: int | None, where: str) -> int:
    """The side of a square matrix given as nested lists (``n`` rows when given)."""
    rows = matrix if isinstance(matrix, list) else None
    if rows is None or not all(isinstance(r, list) and len(r) == len(rows) for r in rows):
        raise ValueError(f"{where} must be a square matrix (a list of equally long rows)")
    if n is not None and len(rows) != n:
        raise ValueError(f"{where} is {len(rows)} x {len(rows)}; its labels declare {n}")
    return len(rows)


def _spectra_sizes(spectra: Any, where: str) -> None:
    _count(spectra, MAX_CONDITIONS, where, "conditions")
    for c, per_seed in _items(spectra):
        _count(per_seed, MAX_SEEDS, f"{where}[{c!r}]", "seeds")
        for s, sp in enumerate(per_seed if isinstance(per_seed, list) else []):
            pairs = sp.get("eigenvalues") if isinstance(sp, dict) else sp
            _count(pairs, MAX_EIGENVALUES, f"{where}[{c!r}][{s}]", "eigenvalues")


def check_sizes(content: Mapping[str, Any]) -> None:
    """Check the sizes a ``results.json`` declares against the data it holds and the limits
    (:data:`MAX_CONDITIONS`, :data:`MAX_SEEDS`, :data:`MAX_WINDOWS`, :data:`MAX_EIGENVALUES`):
    the report's work (panels, rows, heatmaps) is bounded by them.

    Raises
    ------
    ValueError
        Naming the field (``comparison['all']['between_seeds']['a']['matrix'] is 3 x 3; its
        labels declare 4``).

    Examples
    --------
    A mean-distance matrix of 2 x 2 for 3 declared conditions is refused; one of 2 is fine:

    >>> matrix = [[0.0, 0.3], [0.3, 0.0]]
    >>> def content(conditions):
    ...     return {"comparison": {"conditions": conditions,
    ...             "all": {"equivalence_classes": {"mean_distance_matrix": matrix}}}}
    >>> check_sizes(content(["sgd", "adam"]))
    >>> check_sizes(content(["sgd", "adam", "rmsprop"]))
    Traceback (most recent call last):
    ...
    ValueError: comparison['all']['equivalence_classes']['mean_distance_matrix'] is 2 x 2; its
    labels declare 3
    """
    for key in ("conditions", "seeds", "loss"):
        _count(content.get(key), MAX_CONDITIONS, key, "conditions")
    for c, labels in _items(content.get("seeds")):
        _count(labels, MAX_SEEDS, f"seeds[{c!r}]", "seeds")
    for key in ("spectra", "pooled_spectra"):
        _spectra_sizes(content.get(key), key)
    cmp = content.get("comparison")
    n = _count(_get(cmp, "conditions"), MAX_CONDITIONS, "comparison['conditions']", "conditions")
    for uses in ("all", "filtered"):
        rec, where = _get(cmp, uses), f"comparison[{uses!r}]"
        matrix = _get(_get(rec, "equivalence_classes"), "mean_distance_matrix")
        if matrix is not None:
            _square(matrix, n, f"{where}['equivalence_classes']['mean_distance_matrix']")
        between = _get(rec, "between_seeds")
        _count(between, MAX_CONDITIONS, f"{where}['between_seeds']", "conditions")
        for c, b in _items(between):
            side = _square(_get(b, "matrix"), None, f"{where}['between_seeds'][{c!r}]['matrix']")
            if side > MAX_SEEDS:
                raise ValueError(f"{where}['between_seeds'][{c!r}] declares {side} seeds, over "
                                 f"the limit of {MAX_SEEDS}")
        _spectra_sizes(_get(rec, "eigenvalues"), f"{where}['eigenvalues']")
    _window_sizes(content.get("windows"))


def _window_sizes(windows: Any) -> None:
    conds = _get(windows, "conditions")
    _count(conds, MAX_CONDITIONS, "windows['conditions']", "conditions")
    for c, w in _items(conds):
        where = f"windows['conditions'][{c!r}]"
        n = _count(_get(w, "labels"), MAX_WINDOWS, f"{where}['labels']", "windows")
        side = _square(_get(w, "distance_matrix"), n or None, f"{where}['distance_matrix']")
        if side > MAX_WINDOWS:
            raise ValueError(f"{where} declares {side} windows, over the limit of {MAX_WINDOWS}")
        points = _get(_get(w, "transitions"), "change_points") or []
        if not isinstance(points, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < side for i in points):
            raise ValueError(f"{where}['transitions']['change_points'] must be window indices "
                             f"0..{side - 1}")


#: A spectrum's per-eigenpair arrays and the schema's type of their items: ``2`` a pair of
#: numbers or nulls, ``None`` a number or null, ``...`` anything.
_PER_EIGENPAIR: dict[str, Any] = {
    "eigenvalues": 2, "projection_residuals": None, "variance_residuals": None,
    "noise_fractions": None, "magnitude": ..., "residuals": ..., "data_residuals": ...}
_NUMBER_TYPES = frozenset({int, float, type(None)})


def _fits(value: Any, item: Any) -> bool:
    """Whether the array ``value`` fits the schema's items ``item`` (see :data:`_PER_EIGENPAIR`),
    checked by element types at C speed (``set(map(type, ...))``): bool is not a number, as in
    JSON Schema."""
    if type(value) is not list:
        return False
    if item is ...:
        return True
    if item == 2:
        if not all(type(p) is list and len(p) == 2 for p in value):
            return False
        value = list(itertools.chain.from_iterable(value))
    return set(map(type, value)) <= _NUMBER_TYPES


def _numbers_checked(content: Mapping[str, Any]) -> dict[str, Any]:
    """``content`` for jsonschema with each spectrum's per-eigenpair arrays that fit the schema
    emptied (checked here by element type; jsonschema took ~7 s for two spectra of 65,536
    eigenvalues): an array that does not fit is kept, so jsonschema names it as before."""
    def light(sp: Any) -> Any:
        if not isinstance(sp, dict):
            return sp
        return {k: [] if k in _PER_EIGENPAIR and _fits(v, _PER_EIGENPAIR[k]) else v
                for k, v in sp.items()}

    out = dict(content)
    for key in ("spectra", "pooled_spectra"):
        if isinstance(out.get(key), dict):
            out[key] = {c: [light(sp) for sp in v] if isinstance(v, list) else v
                        for c, v in out[key].items()}
    return out


def _validate_if_possible(content: Mapping[str, Any]) -> None:
    try:
        import jsonschema
    except ImportError:  # it comes with the cli extra; without it, trust the schema tag
        return
    try:
        validate(_numbers_checked(content))
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ValueError(f"does not follow schema {SCHEMA} at {where}: {exc.message[:200]}") \
            from None


class Results:
    """What an analysis found: the content of ``results.json`` and the fitted spectra.

    Attributes
    ----------
    content : dict
        JSON types, in the schema ``"conjugacy.results/2"`` (:func:`schema`).
    spectra : dict condition -> list of Spectrum
        One per seed (replicas pooled), in the order of ``content["seeds"]``.
    out_dir : Path or None
        Where ``results.json`` (and the report) were written.
    report : (Path, Path) or None
        ``report.html`` and ``report.md``.

    Examples
    --------
    What :func:`conjugacy.analyze` returns for a store of two conditions:

    >>> import tempfile
    >>> from conjugacy.analysis.demo import decay_store
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = decay_store(f"{tmp.name}/runs.zarr")  # 2 conditions x 4 seeds, 30 records
    >>> from conjugacy import analyze
    >>> results = analyze(path, delays=0, rank=1, neighbours=False)
    >>> results.verdicts, results["schema"], [len(v) for v in results.spectra.values()]
    ({'fast-slow': 'not conjugate'}, 'conjugacy.results/2', [4, 4])
    >>> validate(results.to_dict())  # the schema of results.json
    >>> json_path = results.write(f"{tmp.name}/analysis", report=False)  # True: report.html too
    >>> json_path.name, results.out_dir.name
    ('results.json', 'analysis')
    >>> tmp.cleanup()
    """

    def __init__(self, content: dict[str, Any], spectra: dict[str, list[Any]],
                 out_dir: Path | None = None, report: tuple[Path, Path] | None = None) -> None:
        self.content = content
        self.spectra = spectra
        self.out_dir = out_dir
        self.report = report

    @property
    def results(self) -> dict[str, Any]:
        """The content of ``results.json`` (the name of releases before the schema 2)."""
        return self.content

    def to_dict(self) -> dict[str, Any]:
        """The content of ``results.json``."""
        return self.content

    def __getitem__(self, key: str) -> Any:
        return self.content[key]

    @property
    def comparison(self) -> dict[str, Any] | None:
        return self.content.get("comparison")

    @property
    def verdicts(self) -> dict[str, str | None]:
        """Pair name -> ``"conjugate"``, ``"not conjugate"``, ``"undecided"``."""
        cmp = self.comparison or {}
        return {k: v.get("verdict") for k, v in (cmp.get("verdicts") or {}).items()}

    @property
    def claims(self) -> list[Claim]:
        return [Claim(c["claim"], c["holds"], c["evidence"]) for c in self.content.get("claims", [])]

    def verdict_lines(self) -> list[str]:
        """One plain-words sentence per pair of conditions, with its numbers."""
        from ..report import verdicts

        return [r["sentence"] for r in verdicts(self.content)]

    def write(self, out_dir: str | os.PathLike[str], report: bool = True) -> Path:
        """Write ``results.json`` (and, with ``report``, the report) to ``out_dir``; returns the
        JSON path.

        The files are one set (:mod:`conjugacy.report._atomic_set`): the previous analysis's
        ``report.html``, ``report.md`` and ``results.json`` are removed first (also without
        ``report``), the report is written next and ``results.json`` last, so a killed write
        never leaves files of two analyses side by side."""
        from ..report._atomic_set import remove_previous_set
        from ..results import write_json

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.out_dir = out
        if report:  # a figures folder that is a link is refused before anything is removed
            from ..report._figures import figures_folder

            figures_folder(out)
        remove_previous_set(out)
        if report:
            from ..report import write_report

            self.report = write_report(self.content, out, source_dir=out)
        return write_json(out / "results.json", self.content)

    def __repr__(self) -> str:
        conds = list(self.spectra)
        n_seeds = len(next(iter(self.spectra.values()), []))
        lines = [f"Results({self.content.get('experiment')!r}: {len(conds)} conditions {conds}, "
                 f"{n_seeds} seeds each, {len(self.content.get('runs', []))} runs)"]
        if self.comparison:
            lines += [f"  {s}" for s in self.verdict_lines()]
        lines += [f"  claim: {c.claim} -- {c.word} ({c.evidence})" for c in self.claims]
        lines += [f"  warning: {w}" for w in (self.content.get("warnings") or [])[:5]]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from ..report import results_html

        return results_html(self.content, self.spectra)


#: The name of releases before the schema 2; kept for one release.
AnalysisResults = Results
