"""Hostile results files through the report (issue 26 review, items 2 and 4): what a results file
may ask the report to draw or print is bounded (a 300,000-character label took 131 s CPU to draw,
16,000 eigenvalues per spectrum 11.5 s and 231 MB: now names are cut, eigenvalues drawn are
capped, and the report says so), and no Markdown syntax from a user field (a link, an image, an
autolink, emphasis, code, raw HTML) reaches report.md as syntax."""

from __future__ import annotations

import copy
import json
import re
import signal
import time
import tracemalloc
from collections.abc import Callable

import pytest

pytest.importorskip("matplotlib")
markdown_it = pytest.importorskip("markdown_it")

from test_report import make_results  # noqa: E402

from conjugacy.report import render_markdown, write_report  # noqa: E402
from conjugacy.report._content import MAX_DRAWN, MAX_NAME, drawn, short_names  # noqa: E402

SECONDS, BYTES = 5.0, 200 * 2**20


def bounded(name: str, fn: Callable[[], object]) -> None:
    """Fail if ``fn()`` takes over 5 s of CPU or allocates over 200 MB (Python allocations
    traced). Run twice: timed, then traced (tracing makes Matplotlib ~4x slower: the report of
    ``make_results`` takes 1.2 s untraced, 5.0 s traced); an alarm after 12x 5 s of wall time
    breaks a hang."""
    def alarm(*_: object) -> None:
        raise TimeoutError(f"{name}: still running after {12 * SECONDS} s (a hang)")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, 12 * SECONDS)
    try:
        t0 = time.process_time()
        fn()
        dt = time.process_time() - t0
        assert dt < SECONDS, f"{name}: {dt:.1f} s"
        tracemalloc.start()
        try:
            fn()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert peak < BYTES, f"{name}: {peak / 2**20:.0f} MB"


@pytest.fixture(scope="module")
def base() -> dict:
    """Real results (three conditions, four seeds) as results.json holds them (plain JSON)."""
    return json.loads(json.dumps(make_results(), default=lambda o: o.to_dict()))


def relabelled(results: dict, new: dict[str, str]) -> dict:
    """``results`` with condition labels replaced everywhere (keys and values)."""
    text = json.dumps(results)
    for old, label in new.items():
        text = text.replace(json.dumps(old), json.dumps(label))
    return json.loads(text)


# ----- item 2: bounded drawing and printing ------------------------------------------------------
def test_a_300000_character_label_is_shown_cut_and_the_report_says_so(base, tmp_path) -> None:
    long = "s" * 150_000 + "g" * 150_000
    r = relabelled(base, {"sgd": long})
    bounded("300,000-character label", lambda: write_report(r, tmp_path))
    html_path, md_path = tmp_path / "report.html", tmp_path / "report.md"
    name = "s" * 53 + "…" + "g" * 26  # MAX_NAME characters, two thirds from the start
    assert short_names(r)[long] == name and len(name) == MAX_NAME
    md = md_path.read_text(encoding="utf-8")
    html = html_path.read_text(encoding="utf-8")
    for text in (md, html):
        assert "s" * (MAX_NAME + 1) not in text and name in text
        assert ("1 condition label(s) are longer than 80 characters: the report shows them cut "
                "in the middle (…); results.json holds them whole.") in text
    assert f"- **{name} vs sgd\\_again:" in md


def test_long_labels_cut_alike_stay_apart(base) -> None:
    """Two labels that differ only in their middle would be cut to one name: they are numbered."""
    a, b = "x" * 500 + "A" + "y" * 500, "x" * 500 + "B" + "y" * 500
    names = short_names(relabelled(base, {"sgd": a, "sgd_again": b}))
    assert names[a] == "x" * 48 + "…" + "y" * 24 + " [1]"
    assert names[b] == "x" * 48 + "…" + "y" * 24 + " [2]"
    assert names["adam"] == "adam" and max(map(len, names.values())) <= MAX_NAME


def test_eigenvalues_drawn_are_capped_and_the_report_says_so(base, tmp_path) -> None:
    r = copy.deepcopy(base)
    pairs = [[0.5 + 0.4 * (k % 100) / 100, 0.001 * k] for k in range(16_000)]
    for per_seed in r["spectra"].values():
        for sp in per_seed:
            sp["eigenvalues"] = pairs
    n = sum(len(v) for v in r["spectra"].values())  # 12 spectra, 192,000 eigenvalues
    k = MAX_DRAWN // n
    sizes = {len(sp["eigenvalues"]) for v in drawn(r)["spectra"].values() for sp in v}
    assert sizes == {k} and r["spectra"]["sgd"][0]["eigenvalues"] is pairs  # not changed
    bounded("16,000 eigenvalues per spectrum", lambda: write_report(r, tmp_path))
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert (f"The figure of all eigenvalues draws the first {k} eigenvalues of each of its {n} "
            f"spectra ({k * n} of {16_000 * n}, at most {MAX_DRAWN} drawn); the tables use all."
            ) in md
    assert "12 of 16000 eigenvalues shown" in md  # the tables read results.json itself
    assert "The figure of" not in render_markdown(base, figures=[])  # small results: all drawn


# ----- item 4: Markdown syntax in every user field -----------------------------------------------
MD = ("[x](http://evil.example/a) ![i](http://evil.example/i.png) <http://evil.example/b> "
      "*em* _em_ `code` ~~gone~~ <b>raw</b> &amp; $x$ a|b")


def _with(x: object, payload: str) -> object:
    """Every string value with ``payload`` appended (numbers and structure kept)."""
    if isinstance(x, str):
        return x + " " + payload
    if isinstance(x, list):
        return [_with(v, payload) for v in x]
    if isinstance(x, dict):
        return {k: _with(v, payload) for k, v in x.items()}
    return x


def _fields(base: dict, payload: str) -> dict:
    """``base`` with ``payload`` appended to every user field the report shows: condition
    labels, run names, condition settings (metadata), title, experiment, paper, question,
    store, observables, data, warnings, reasons, the notes of a spectrum fit."""
    labels = {c: c + " " + payload for c in ("sgd", "sgd_again", "adam")}
    r = relabelled(base, labels)
    r["conditions"] = {lab: {"optimizer": c + " " + payload, "lr": 0.1}
                       for c, lab in labels.items()}
    r["runs"][0]["finished"] = False  # its name is listed in the warnings
    r["runs"] = _with(r["runs"], payload)
    r.update(_with({"title": "t", "experiment": "e", "paper": "p", "question": "q", "store": "s",
                    "observables": ["fc.weight"], "data": {"name": "d"}, "warnings": ["w"],
                    "settings_reasoning": {"delays": "why"}}, payload))
    for sp in r["spectra"][labels["sgd"]]:
        sp["settings"] = {**sp["settings"], "notes": ["note " + payload]}
    return r


def _html_tags(md: str) -> dict[str, int]:
    """How often each HTML tag occurs in ``md`` rendered by CommonMark (+ GFM tables and
    strikethrough), and the link and image targets."""
    page = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(md)
    tags = {}
    for tag in re.findall(r"<([a-z0-9]+)[\s>/]", page):
        tags[tag] = tags.get(tag, 0) + 1
    tags["targets"] = sorted(re.findall(r'(?:href|src)="([^"]*)"', page))
    return tags


def test_markdown_syntax_in_every_user_field_is_shown_as_text(base) -> None:
    """A payload of Markdown syntax in every user field renders as its characters: the page
    has exactly the tags and link targets of the same report with plain text of the same length
    in its place (before: links, an image, an autolink, emphasis, code and raw HTML)."""
    md = render_markdown(_fields(base, MD), figures=[])
    assert md.count("http://evil.example/a") >= 20  # the payload is there, as text
    assert _html_tags(md) == _html_tags(render_markdown(_fields(base, "P" * len(MD)), figures=[]))
    assert "\\[x\\](http://evil.example/a) !\\[i\\](http://evil.example/i.png) " \
           "&lt;http://evil.example/b&gt; \\*em\\* \\_em\\_ \\`code\\` \\~\\~gone\\~\\~ " \
           "&lt;b&gt;raw&lt;/b&gt; &amp;amp; \\$x\\$ a\\|b" in md


def test_every_shown_string_is_cut_to_max_text(base) -> None:
    """Review 3, item 2: a field of 1,000,000 '<' in every user field (title, warnings,
    settings, ...) is shown as at most MAX_TEXT characters in report.html and report.md (a
    60,000,000-character title made a 480 MB report.html before), cut in the middle."""
    from conjugacy.report import render_html
    from conjugacy.report._content import MAX_TEXT

    r = _fields(base, "<" * 1_000_000)
    pages = {}

    def render() -> None:
        pages["html"] = render_html(r, figures=[])
        pages["md"] = render_markdown(r, figures=[])

    bounded("1e6-character fields", render)
    for page in pages.values():
        longest = max(len(m) for m in re.findall(r"(?:&lt;)+", page)) // 4
        assert longest == MAX_TEXT - 1 - (MAX_TEXT - 1) // 3 - 2, longest  # "t " + the head
        assert len(page) < 200 * MAX_TEXT * 4
    assert f"<title>t {'&lt;' * (MAX_TEXT - 3 - (MAX_TEXT - 1) // 3)}…" in pages["html"]


def test_the_notebook_summary_cuts_every_string_like_the_report(base) -> None:
    """Issue 26 leftover: ``results_html`` (the notebook view of Results) escaped but did not cut:
    1,000,000 "<" in every user field and a claim made a page of 40 MB (83 kB now). It uses the
    report's one rule (MAX_TEXT characters, then escaped): the longest run of the payload is
    the report's, 1,331 characters, and the page stays small."""
    from types import SimpleNamespace

    import numpy as np

    from conjugacy.report import results_html
    from conjugacy.report._content import MAX_TEXT

    r = _fields(base, "<" * 1_000_000)
    r["claims"] = [{"claim": "c " + "<" * 1_000_000, "holds": True,
                    "evidence": "e " + "<" * 1_000_000}]
    spectra = {c: [SimpleNamespace(eigenvalues=np.array([0.9 + 0.1j]))] * 2 for c in r["spectra"]}
    page = results_html(r, spectra)
    longest = max(len(m) for m in re.findall(r"(?:&lt;)+", page)) // 4
    assert longest == MAX_TEXT - 1 - (MAX_TEXT - 1) // 3 - 2 == 1331, longest
    assert f"<p>claim: c {'&lt;' * 1331}…{'&lt;' * 666} -- <b>holds</b>" in page
    assert len(page) < 100 * MAX_TEXT * 4, len(page)


BLOCKS = ["# HACKED", "1. numbered", "---", "+ plus", "= eq", "2) paren", "> quote", "- - -",
          "===", "  indented", "#tag #", "-0.5", "12.5 x"]


def test_block_syntax_at_the_start_of_a_field_is_shown_as_text(base) -> None:
    """Review 3, item 6: warnings "# HACKED", "1. numbered", "---" rendered as <h1>, a list and a
    rule in report.md. Each field starting with block syntax renders as its characters: the same
    tags as plain text, and each warning's list item holds exactly its text."""
    other = [chr(65 + i) * len(b) for i, b in enumerate(BLOCKS)]  # distinct: warnings dedupe
    plain = render_markdown({**base, "warnings": other,
                             "title": "P t",
                             "question": "P. q"}, figures=[])
    md = render_markdown({**base, "warnings": BLOCKS, "title": "# t", "question": "1. q"},
                         figures=[])
    assert _html_tags(md) == _html_tags(plain)
    page = markdown_it.MarkdownIt("commonmark").render(md)
    items = re.findall(r"<li>(.*?)</li>", page)
    import html as _html

    assert [_html.unescape(i) for i in items[-len(BLOCKS):]] == [
        " ".join(b.split()) for b in BLOCKS]
    assert "<h1># t</h1>" in page


def test_a_label_starting_with_an_underscore_stays_in_the_legend() -> None:
    """Review 3, item 7: Matplotlib leaves a label starting with "_" out of legends (its
    ``_nolegend_`` rule): a condition "_hidden" vanished from the report's figures. The figure
    label helper puts a space before it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from conjugacy.report._figures import _label

    fig, ax = plt.subplots()
    try:
        for c in ("_hidden", "shown", "__x$"):
            ax.plot([0, 1], [0, 1], label=_label(c))
        texts = [t.get_text() for t in ax.legend().get_texts()]
    finally:
        plt.close(fig)
    assert texts == [" _hidden", "shown", r" __x\$"]


def test_long_labels_named_by_their_settings_are_not_said_cut(base) -> None:
    """Issue 25 leftover: labels over MAX_NAME characters that the report shows by the short
    settings telling them apart (``lr=0.1``) are not 'cut in the middle': no such note."""
    from conjugacy.report._content import _bound_notes

    a = "optimizer=sgd,lr=0.1," + "x" * 90
    b = "optimizer=adam,lr=0.001," + "x" * 90
    r = relabelled(base, {"sgd": a, "sgd_again": b})
    r["conditions"] = {a: {"lr": 0.1}, b: {"lr": 0.001}, "adam": {"lr": 0.5}}
    names = short_names(r)
    assert (names[a], names[b]) == ("lr=0.1", "lr=0.001")
    assert not [n for n in _bound_notes(r) if "longer than" in n]
    r["conditions"] = {}  # nothing tells them apart: shown cut, and said
    assert "…" in short_names(r)[a]
    assert [n for n in _bound_notes(r) if n.startswith("2 condition label(s) are longer")]


CONTROLS = "a\x1b[31mb\x07\r\x0b\x7f\x9b\u202e z"


def test_control_characters_in_every_user_field_are_escaped_in_report_html(base, tmp_path) -> None:
    """Fresh-user review: a label with ESC and BEL put the raw characters into report.html (8
    times) while report.md showed ``\\x1b``. Both files show user text by the one rule
    (:func:`conjugacy._text.one_line`): no control character but newline and tab is written,
    and each field reads as in report.md."""
    import unicodedata

    r = _fields(base, CONTROLS)
    html_path, md_path = write_report(r, tmp_path)
    shown = r"a\x1b[31mb\x07 \x7f\x9b\u202e z"  # \r and \x0b are whitespace: one space
    for path in (html_path, md_path):
        data = path.read_bytes()
        assert not [b for b in data if b < 0x20 and b not in b"\n\t"], path.name
        text = data.decode("utf-8")
        assert not [c for c in set(text) if unicodedata.category(c) in ("Cc", "Cf")
                    and c not in "\n\t"], path.name
    html = html_path.read_text(encoding="utf-8")
    assert f"<title>t {shown}</title>" in html and f"<h1>t {shown}</h1>" in html
    assert f"<td>sgd {shown}</td>" in html
    assert r"sgd a\\x1b\[31mb\\x07 \\x7f\\x9b\\u202e z" in md_path.read_text(encoding="utf-8")
