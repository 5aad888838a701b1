"""The one results record of every analysis, and its versioned JSON schema.

Every route from runs to verdict (:func:`conjugacy.analysis.pipeline.run_pipeline`,
:func:`conjugacy.analyze`, ``conjugacy analyze``, the reproductions) returns a :class:`Results`
and writes ``results.json`` in the schema ``"conjugacy.results/2"``: the JSON Schema shipped as
``conjugacy/analysis/results.schema.json`` (see :func:`schema`), documented field by field in
``docs/results.md``. A user's script can rely on the required fields; experiments add their own
findings under ``sections`` and their decided claims under ``claims``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA", "Claim", "Results", "schema", "spectra_to_json", "validate"]

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
    """

    claim: str
    holds: bool | None
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return {"claim": self.claim, "holds": self.holds, "evidence": self.evidence}

    @property
    def word(self) -> str:
        """``"holds"``, ``"does not hold"`` or ``"undecided"``."""
        return {True: "holds", False: "does not hold"}.get(self.holds, "undecided")


def spectra_to_json(spectra: Mapping[str, Sequence[Any]]) -> dict[str, list[dict[str, Any]]]:
    """``{condition: [spectrum_to_dict(s) for s in per-seed spectra]}`` (eigenvalues as [re, im]
    pairs, residuals, data residuals, rank, settings)."""
    from ..results import spectrum_to_dict

    return {str(c): [spectrum_to_dict(s) for s in specs] for c, specs in spectra.items()}


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``results.json``, as shipped with the package."""
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
    """
    import jsonschema

    jsonschema.validate(dict(content), schema())


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
        JSON path."""
        from ..results import write_json

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.out_dir = out
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
