"""Lay out a results dict as one self-contained HTML page and as Markdown (no computation)."""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .._atomic import atomic_open
from .._checks import check_out_dir
from .._text import cut, markdown, one_line
from ._content import (
    MAX_NAME,
    MAX_TEXT,
    UNITS_LEGEND,
    ReportError,
    comparison_rows,
    complex_values,
    condition_rows,
    drawn,
    fmt,
    name_of,
    neighbourhood_rows,
    overview,
    short_names,
    verdicts,
    warnings_of,
    window_comparisons,
)
from ._figures import ReportFigure, figures_folder, report_figures, study_figures

__all__ = ["render_html", "render_markdown", "write_report"]

#: Marker attributes the inline script sets on <html> once the page has loaded; the browser test
#: reads them back (``data-report-images="loaded/total"``, ``data-report-status="ok"|"broken"``,
#: ``data-report-error`` when a script error happened).
CHECK_SCRIPT = """
(function () {
  var root = document.documentElement;
  window.addEventListener("error", function (e) {
    root.setAttribute("data-report-error", String(e.message || "error"));
  });
  window.addEventListener("load", function () {
    var imgs = document.images, ok = 0;
    for (var i = 0; i < imgs.length; i++) {
      if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; }
    }
    root.setAttribute("data-report-images", ok + "/" + imgs.length);
    root.setAttribute("data-report-status", ok === imgs.length ? "ok" : "broken");
  });
})();
"""

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1000px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; background: #fff; }
h1 { margin-bottom: 0.1em; } .sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.verdict { padding: 0.5em 0.8em; margin: 0.4em 0; border-left: 5px solid #999; background: #fafafa; }
.v-not-conjugate { border-color: #d55e00; } .v-conjugate { border-color: #009e73; }
.v-undecided { border-color: #e69f00; }
.badge { font-weight: bold; }
.warn { background: #fff6e0; border-left: 5px solid #e69f00; padding: 0.4em 0.8em; margin: 0.3em 0; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.92em; }
code, pre { background: #f6f6f6; font-size: 0.88em; } pre { padding: 0.6em; overflow-x: auto; }
"""


def _check(results: Any) -> Mapping[str, Any]:
    if not isinstance(results, Mapping):
        raise TypeError(f"results must be a dict (a results.json), got {type(results).__name__}")
    if not results.get("comparison") and not results.get("spectra"):
        raise ReportError(
            "results hold neither 'comparison' nor 'spectra': nothing to report (expected the "
            "results.json of `conjugacy analyze` or of a study)")
    return results


def _title(results: Mapping[str, Any]) -> tuple[str, str]:
    title = str(results.get("title") or ("conjugacy report: " + str(results["experiment"])
                                         if results.get("experiment") else "conjugacy report"))
    sub = " · ".join(str(results[k]) for k in ("experiment", "paper", "question") if results.get(k))
    return title, sub


def _eigen_rows(results: Mapping[str, Any],
                limit: int = 12) -> dict[str, tuple[list[list[str]], str]]:
    """Per condition (its shown name): the first seed's eigenvalues (|λ|, Re, Im, data
    residual), at most ``limit`` of them, and the caption that says how many are shown."""
    out = {}
    names = short_names(results)
    for c, specs in (results.get("spectra") or {}).items():
        if not specs:
            continue
        sp = specs[0]
        where = f"results['spectra'][{cut(c, MAX_NAME)!r}][0]['eigenvalues']"
        z = complex_values(sp.get("eigenvalues"), where)
        res = sp.get("data_residuals") or sp.get("residuals") or [None] * z.size
        rows = [["|λ|", "Re λ", "Im λ", "residual"]]
        for k in range(min(z.size, limit)):
            rows.append([fmt(abs(z[k]), 4), fmt(z[k].real, 4), fmt(z[k].imag, 4),
                         fmt(res[k] if k < len(res) else None)])
        caption = (f"{limit} of {z.size} eigenvalues shown (in the fit's order); results.json "
                   "holds all" if z.size > limit else f"all {z.size} eigenvalues")
        out[name_of(names, c)] = (rows, caption)
    return out


def _timing(results: Mapping[str, Any]) -> list[tuple[str, str]]:
    t = results.get("timing_seconds") or {}
    return [(k, f"{v:.1f} s") for k, v in t.items() if isinstance(v, int | float)
            and not isinstance(v, bool)]


def _blocks(results: Mapping[str, Any], figs: Sequence[ReportFigure]) -> list[tuple[str, Any]]:
    """The report's sections in order, as ``(kind, content)`` blocks that :func:`render_html` and
    :func:`render_markdown` each lay out in their format: ``"h1"``-``"h3"`` headings, ``"p"``
    text, ``"note"`` (a subtitle or legend), ``"strong"``, ``"table"`` (rows, the first a
    header), ``"verdicts"`` (:func:`verdicts`), ``"warnings"`` (strings) and ``"figure"``."""
    title, sub = _title(results)
    out: list[tuple[str, Any]] = [("h1", title)] + ([("note", sub)] if sub else [])
    rows = verdicts(results)
    if rows:
        out += [("h2", "Verdicts"), ("verdicts", rows), ("h3", "The numbers behind the verdicts"),
                ("table", comparison_rows(results)), ("note", UNITS_LEGEND)]
        nb = neighbourhood_rows(results)
        if nb:
            out += [("h3", "At neighbouring settings"), ("p", nb[1]), ("table", nb[0])]
    out += [("h2", "Warnings"), ("warnings", warnings_of(results))]
    windows = window_comparisons(results)
    if windows:
        out += [("h2", "When do the conditions differ? (window by window)"),
                ("note", UNITS_LEGEND)]
        for wc in windows:
            out += [("h3", wc["title"]), ("strong", wc["summary"]), ("table", wc["rows"])]
    out += [("h2", "What was compared"), ("table", [("item", "value"), *overview(results)])]
    conds = condition_rows(results)
    if conds:
        out += [("h3", "Conditions and their recorded settings"), ("table", conds)]
    out += [("h2", "Figures")] * bool(figs) + [("figure", f) for f in figs]
    eig = _eigen_rows(results)
    if eig:
        out.append(("h2", "Eigenvalues (first seed of each condition)"))
        for c, (rows_c, caption) in eig.items():
            out += [("h3", c), ("p", caption), ("table", rows_c)]
    timing = _timing(results)
    if timing:
        out += [("h2", "Wall time"), ("table", [("stage", "seconds"), *timing])]
    return out


# ----- HTML ---------------------------------------------------------------------------------------
def _html_text(text: Any) -> str:
    """Text for HTML, the one way every string of ``report.html`` is made: ``str(text)`` cut to
    :data:`MAX_TEXT` characters (:func:`conjugacy._text.cut`), on one line with control
    characters shown as escapes as in ``report.md`` (:func:`conjugacy._text.one_line`: ESC
    reads ``\\x1b``), then HTML-escaped."""
    return html.escape(one_line(cut(text, MAX_TEXT)))


def _table(rows: Sequence[Sequence[str]]) -> str:
    """An HTML table of ``rows``, the first the header; every cell escaped (:func:`_html_text`)."""
    out = ["<table>"]
    for i, row in enumerate(rows):
        tag = "td" if i else "th"
        out.append("<tr>" + "".join(f"<{tag}>{_html_text(c)}</{tag}>" for c in row) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


#: How ``report.html`` and ``report.md`` show the text blocks of :func:`_blocks`.
_HTML = {"h1": "<h1>{}</h1>", "h2": "<h2>{}</h2>", "h3": "<h3>{}</h3>", "p": "<p>{}</p>",
         "note": '<p class="sub">{}</p>', "strong": "<p><b>{}</b></p>"}
_MARKDOWN = {"h1": "# {}", "h2": "## {}", "h3": "### {}", "p": "{}", "note": "*{}*",
             "strong": "**{}**"}


def _html_block(kind: str, x: Any) -> list[str]:
    """The lines of ``report.html`` that show block ``(kind, x)`` of :func:`_blocks`."""
    e = _html_text
    if kind == "table":
        return [_table(x)]
    if kind == "verdicts":
        return [f'<div class="verdict v-{(r["verdict"] or "untested").replace(" ", "-")}">'
                f'<span class="badge">{e(r["a"])} vs {e(r["b"])}: '
                f'{e(r["verdict"] or "not tested")}.</span> {e(r["explanation"])}</div>'
                for r in x]
    if kind == "warnings":
        return [f'<div class="warn">{e(w)}</div>' for w in x] or ["<p>None.</p>"]
    if kind == "figure":
        data = base64.b64encode(x.png).decode("ascii")
        return [f'<figure id="fig-{e(x.name)}"><img alt="{e(x.caption)}" '
                f'src="data:image/png;base64,{data}"><figcaption>{e(x.caption)}'
                "</figcaption></figure>"]
    return [_HTML[kind].format(e(x))]


def render_html(results: Mapping[str, Any], figures: Sequence[ReportFigure] | None = None) -> str:
    """The report as one self-contained HTML page (figures as base64 PNG ``data:`` URIs).

    Parameters
    ----------
    results : dict
        See the schema in :mod:`conjugacy.report`.
    figures : sequence of ReportFigure, optional
        Default: :func:`report_figures` of ``results``.

    Returns
    -------
    str
        The page; every user string is escaped.

    Raises
    ------
    TypeError
        If ``results`` is not a dict.
    ReportError (ValueError)
        If it holds nothing to report, or a section has the wrong shape.

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> from conjugacy.analysis import compare_conditions, spectra_to_json
    >>> rng = np.random.default_rng(0)
    >>> fit = lambda: koopman_spectrum(np.cumsum(rng.standard_normal((2, 30, 3)), 1), rank=3)
    >>> spectra = {"sgd": [fit() for _ in range(3)], "adam": [fit() for _ in range(3)]}
    >>> results = {"title": "SGD <vs> Adam", "spectra": spectra_to_json(spectra),
    ...            "comparison": compare_conditions(spectra, n_shuffles=10)}
    >>> page = render_html(results, figures=[])  # no figures: quicker
    >>> page.splitlines()[0], "<title>SGD &lt;vs&gt; Adam</title>" in page
    ('<!DOCTYPE html>', True)
    """
    results = _check(results)
    figs = report_figures(drawn(results)) if figures is None else list(figures)
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{_html_text(_title(results)[0])}</title>", f"<style>{STYLE}</style>", "</head>",
             "<body>"]
    for kind, x in _blocks(results, figs):
        parts += _html_block(kind, x)
    prov = results.get("provenance")
    if prov:
        parts.append("<details><summary>Provenance</summary><pre>"
                     + html.escape(json.dumps(prov, indent=1, default=str)[:20000])
                     + "</pre></details>")
    parts.append(f"<script>{CHECK_SCRIPT}</script>")
    parts.extend(["</body>", "</html>"])
    return "\n".join(parts) + "\n"


# ----- Markdown -----------------------------------------------------------------------------------
def _md_text(text: Any) -> str:
    """Text for Markdown, the one way every line of ``report.md`` is made
    (:func:`conjugacy._text.markdown`): on one line, control characters shown as escapes
    (``cat report.md`` must not drive the terminal), Markdown syntax escaped (a label
    ``[x](http://evil)``, ``<script>`` or ``*x*`` is shown as written, never a link, raw HTML or
    emphasis; ``|`` cannot end a table cell), cut to :data:`MAX_TEXT` characters first."""
    return markdown(cut(text, MAX_TEXT))


def _md_table(rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(_md_text(c) for c in row) + " |" for row in rows]
    lines.insert(1, "|" + "---|" * len(rows[0]))  # under the header
    return "\n".join(lines)


def _md_block(kind: str, x: Any, figure_dir: str) -> str:
    """The text of ``report.md`` that shows block ``(kind, x)`` of :func:`_blocks` (list items
    on consecutive lines; the blocks are separated by blank lines)."""
    if kind == "table":
        return _md_table(x)
    if kind == "verdicts":
        return "\n".join(f"- **{_md_text(r['a'])} vs {_md_text(r['b'])}: "
                         f"{_md_text(r['verdict'] or 'not tested')}.** {_md_text(r['explanation'])}"
                         for r in x)
    if kind == "warnings":
        return "\n".join(f"- {_md_text(w)}" for w in x) or "None."
    if kind == "figure":
        link = quote(f"{figure_dir}/{x.name}.png")  # a study figure's name is a user file name
        return f"![{_md_text(x.caption)}]({link})\n\n*{_md_text(x.caption)}*"
    return _MARKDOWN[kind].format(_md_text(x))


def render_markdown(results: Mapping[str, Any], figures: Sequence[ReportFigure] | None = None,
                    figure_dir: str = "figures") -> str:
    """The report as Markdown; figures are linked as ``{figure_dir}/{name}.png`` (relative).

    Parameters
    ----------
    results : dict
        See the schema in :mod:`conjugacy.report`.
    figures : sequence of ReportFigure, optional
        Default: :func:`report_figures` of ``results`` (linked by name, with their captions).
    figure_dir : str
        Folder of the PNG files, relative to the Markdown file.

    Returns
    -------
    str

    Raises
    ------
    TypeError, ReportError
        As :func:`render_html`.

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> from conjugacy.analysis import compare_conditions, spectra_to_json
    >>> rng = np.random.default_rng(0)
    >>> fit = lambda: koopman_spectrum(np.cumsum(rng.standard_normal((2, 30, 3)), 1), rank=3)
    >>> spectra = {"sgd": [fit() for _ in range(3)], "adam": [fit() for _ in range(3)]}
    >>> results = {"title": "SGD <vs> Adam", "spectra": spectra_to_json(spectra),
    ...            "comparison": compare_conditions(spectra, n_shuffles=10)}
    >>> text = render_markdown(results, figures=[])
    >>> print(text[:80])
    # SGD &lt;vs&gt; Adam
    <BLANKLINE>
    ## Verdicts
    <BLANKLINE>
    - **sgd vs adam: undecided.** Too few seeds
    """
    results = _check(results)
    figs = report_figures(drawn(results)) if figures is None else list(figures)
    parts = [_md_block(kind, x, figure_dir) for kind, x in _blocks(results, figs)]
    return "\n\n".join(parts) + "\n"


# ----- files --------------------------------------------------------------------------------------
def write_report(results: Mapping[str, Any], out_dir: str | os.PathLike[str], *,
                 source_dir: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained) and ``report.md`` (+ ``figures/*.png``) to ``out_dir``.

    Parameters
    ----------
    results : dict
        A results dict (schema in :mod:`conjugacy.report`), e.g. ``json.load`` of a
        ``results.json``.
    out_dir : path
        Created if needed. Files are written atomically.
    source_dir : path, optional
        The folder of ``results.json``: the PNG files its ``figures`` entry lists (figures the
        study drew, e.g. the paper's) are embedded too, after the report's own.

    Returns
    -------
    (Path, Path)
        ``report.html`` and ``report.md``.

    Raises
    ------
    TypeError
        If ``results`` is not a dict.
    ReportError (ValueError)
        If the results hold nothing to report or a section has the wrong shape (the message names
        the key).
    NotADirectoryError
        If ``out_dir`` (or a parent) exists and is not a folder.

    Examples
    --------
    >>> import numpy as np
    >>> from conjugacy import koopman_spectrum
    >>> from conjugacy.analysis import compare_conditions, spectra_to_json
    >>> rng = np.random.default_rng(0)
    >>> fit = lambda: koopman_spectrum(np.cumsum(rng.standard_normal((2, 30, 3)), 1), rank=3)
    >>> spectra = {"sgd": [fit() for _ in range(3)], "adam": [fit() for _ in range(3)]}
    >>> results = {"title": "SGD <vs> Adam", "spectra": spectra_to_json(spectra),
    ...            "comparison": compare_conditions(spectra, n_shuffles=10)}
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     html, md = write_report(results, tmp)
    ...     print(html.name, md.name, sorted(p.name for p in (md.parent / "figures").iterdir()))
    report.html report.md ['distances.png', 'eigenvalues_all.png', 'eigenvalues_filtered.png']
    """
    results = _check(results)
    out = check_out_dir(out_dir, "out_dir")
    folder = figures_folder(out)  # never through a link planted at out/figures (issue 26)
    figs = report_figures(drawn(results))  # at most MAX_DRAWN eigenvalues per figure
    if source_dir is not None:
        extra, notes = study_figures(results, source_dir)
        figs += extra
        if notes:
            results = {**results, "warnings": [*(results.get("warnings") or []), *notes]}
    for f in figs:
        with atomic_open(folder / f"{f.name}.png", "wb") as fh:
            fh.write(f.png)
    html_path, md_path = out / "report.html", out / "report.md"
    with atomic_open(html_path, "w") as fh:
        fh.write(render_html(results, figs))
    with atomic_open(md_path, "w") as fh:
        fh.write(render_markdown(results, figs))
    return html_path, md_path
