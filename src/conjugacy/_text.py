"""User text made safe to show: the one function every printer of user strings goes through.

Labels, run and parameter names, metadata, paths and the error messages that quote them come from
files users share (stores, spectra, results.json): a terminal must never receive their control
characters (an ``ESC[2K`` erases a line, an OSC ``ESC]0;...BEL`` retitles the window, a U+202E
reverses what follows), and Rich must never read them as markup (``[link=...]`` hides text,
``sgd[/lr]`` raises after half the output was written). :func:`shown` makes both harmless:
the CLI (:mod:`conjugacy.cli`) and the Markdown report use it; :func:`markdown` adds what
Markdown would read as syntax (links, images, emphasis, code, raw HTML), for ``report.md``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = ["cut", "cut_list", "markdown", "one_line", "shown"]

#: Unicode categories whose characters are escaped: controls (C0, DEL, C1), format characters
#: (bidi embeddings, overrides and isolates U+202A-U+202E, U+2066-U+2069, zero-width characters),
#: line and paragraph separators, surrogates (undecodable bytes of a file name) and unassigned
#: code points.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"})


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


class _Escapes(dict):
    """A ``str.translate`` table built on demand: each code point's category is looked up once."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        value = _escape_char(ch) if unicodedata.category(ch) in _ESCAPED_CATEGORIES else ch
        self[code] = value
        return value


_ESCAPES = _Escapes()


def shown(text: object, *, markup: bool = True) -> str:
    """``str(text)`` with every control character shown as an escape, ready to print.

    Control and format characters (C0 such as ESC, DEL, C1 such as CSI U+009B, bidi overrides and
    isolates such as U+202E, zero-width characters, line separators, lone surrogates of
    undecodable file names) become the text ``\\x1b``, ``\\u202e``, ...; newline and tab too, so
    user text stays on its line. With ``markup`` (the default, for Rich) square brackets that Rich
    would read as markup are escaped as well (:func:`rich.markup.escape`); ``markup=False`` for
    plain output (``typer.echo``, Markdown).

    Parameters
    ----------
    text : object
        Anything; ``str(text)`` is shown.
    markup : bool
        Also escape Rich markup.

    Returns
    -------
    str
        Printable text; ``shown(x, markup=False)`` equals ``str(x)`` for text without control
        or format characters.

    Examples
    --------
    >>> shown("adam\\x1b[31mRED\\u202e [bold]x")
    'adam\\\\x1b[31mRED\\\\u202e \\\\[bold]x'
    >>> shown("run\\x1b]0;T\\x07", markup=False)
    'run\\\\x1b]0;T\\\\x07'
    """
    out = str(text).translate(_ESCAPES)
    if markup:
        from rich.markup import escape

        out = escape(out)
    return out


def one_line(text: object) -> str:
    """``str(text)`` as printable text on one line: runs of whitespace (newlines and tabs too)
    become one space, every other control or format character is shown as an escape
    (:func:`shown`, no Rich markup). The one rule of the reports: ``report.md``
    (:func:`markdown`) and ``report.html`` show user text with it, then escape their syntax.

    Parameters
    ----------
    text : object
        Anything; ``str(text)`` is shown.

    Returns
    -------
    str
        Text without any character below U+0020 (nor DEL, C1, bidi or zero-width characters).

    Examples
    --------
    >>> one_line("a\\x1b[31mb\\x07\\n\\tc")
    'a\\\\x1b[31mb\\\\x07 c'
    """
    return shown(" ".join(str(text).split()), markup=False)


#: What Markdown reads as syntax inside a line, made literal. CommonMark backslash escapes for
#: ``\\`` (escapes), backtick (code spans), ``*`` and ``_`` (emphasis), ``[`` and ``]`` (links
#: and images: ``![i](...)`` and ``[x](http://...)`` need a bracket), ``|`` (table cells), ``~``
#: (GFM strikethrough) and ``$`` (math on GitHub); HTML character references for ``<`` ``>``
#: ``&`` (raw HTML, ``<http://...>`` autolinks and entity references; every Markdown dialect
#: reads references, not all read ``\\<``).
_MARKDOWN = str.maketrans({**{c: "\\" + c for c in "\\`*_[]|~$#"},
                           "<": "&lt;", ">": "&gt;", "&": "&amp;"})


#: Block syntax at the start of a line (or of a list item, a heading, a table cell), made
#: literal by a backslash: a bullet ``-`` or ``+`` followed by a space (or alone), a rule or setext
#: underline (``---``, ``- - -``, ``===``: any leading ``=``) and an ordered-list marker (up to
#: 9 digits, then ``.`` or ``)`` and a space, or alone); numbers such as ``-0.5`` or ``1.5`` stay
#: as they are. ``#`` (ATX headings and their closing sequence), ``*``, ``_``, ``>`` (block quotes,
#: as ``&gt;``), ``|``, backtick and ``~`` fences are escaped everywhere (:data:`_MARKDOWN`);
#: leading spaces and tabs (indented code) never remain (whitespace is collapsed). Source:
#: CommonMark 0.31, sections 4.1-4.5 and 5.2-5.3.
_BLOCK_START = re.compile(r"[-+](?= |$)|-[- ]*$|=")
_ORDERED = re.compile(r"\d{1,9}(?=[.)](?: |$))")


def markdown(text: object) -> str:
    """``str(text)`` as literal Markdown text on one line: runs of whitespace (newlines too)
    become one space, control characters are shown as escapes (:func:`one_line`), and Markdown
    syntax is escaped (CommonMark backslash escapes; ``<``, ``>``, ``&`` as ``&lt;``, ``&gt;``,
    ``&amp;``), so a viewer renders exactly the characters of ``text``: no link, image, code,
    emphasis or HTML from it. ``report.md`` makes every line of text with it.

    Parameters
    ----------
    text : object
        Anything; ``str(text)`` is shown.

    Returns
    -------
    str
        Markdown source; CommonMark renders it as the text itself (control characters as their
        escapes).

    Examples
    --------
    >>> print(markdown("[x](http://evil) ![i](a.png) <http://e> *b* _i_ `c` a|b $x$ 1 < 2"))
    \\[x\\](http://evil) !\\[i\\](a.png) &lt;http://e&gt; \\*b\\* \\_i\\_ \\`c\\` a\\|b \\$x\\$ 1 &lt; 2
    >>> print(markdown("sgd\\x1b[31m\\nred"))
    sgd\\\\x1b\\[31m red
    >>> print(markdown("# HACKED #"), markdown("1. numbered"), markdown("---"), markdown("-0.5"))
    \\# HACKED \\# 1\\. numbered \\--- -0.5
    """
    out = one_line(text).translate(_MARKDOWN)
    number = _ORDERED.match(out)
    if number:  # "1. x" / "2) x" would start an ordered list
        return out[:number.end()] + "\\" + out[number.end():]
    return "\\" + out if _BLOCK_START.match(out) else out


def cut(text: object, limit: int) -> str:
    """``str(text)`` if it has at most ``limit`` characters, else its start and end joined by
    "…", ``limit`` characters in all (two thirds from the start: labels that differ at their end
    stay apart).

    Parameters
    ----------
    text : object
        Anything; ``str(text)`` is cut.
    limit : int
        Most characters returned (>= 3).

    Returns
    -------
    str
        At most ``limit`` characters.

    Raises
    ------
    ValueError
        If ``limit`` is below 3.

    Examples
    --------
    >>> cut("optimizer=sgd,lr=0.1,momentum=0.9", 20)
    'optimizer=sgd…um=0.9'
    >>> cut("sgd", 20)
    'sgd'
    """
    if limit < 3:
        raise ValueError(f"limit must be at least 3, got {limit}")
    s = str(text)
    if len(s) <= limit:
        return s
    tail = (limit - 1) // 3
    return s[:limit - 1 - tail] + "…" + s[len(s) - tail:]


def cut_list(items: Iterable[object], limit: int,
             what: str | tuple[str, str] = "") -> list[str]:
    """The first ``limit`` of ``items`` as text and, when ``N > 0`` were left out, "and N more"
    (then ``what``): a list of names or sentences cut so that a message stays one readable
    line. The caller joins it (``", "`` for names, ``"; "`` for sentences).

    Parameters
    ----------
    items : iterable
        Anything; ``str`` of each item is kept.
    limit : int
        Most items kept (>= 1).
    what : str or (str, str)
        Words after "and N more": one form for any N, or ``(singular, plural)``
        (``("damaged run", "damaged runs")``: "and 1 more damaged run", "and 2 more damaged
        runs").

    Returns
    -------
    list of str
        At most ``limit + 1`` strings.

    Raises
    ------
    ValueError
        If ``limit`` is below 1.

    Examples
    --------
    >>> ", ".join(cut_list(["a", "b", "c", "d"], 2))
    'a, b, and 2 more'
    >>> "; ".join(cut_list(["run 0 is cut", "run 3 is cut"], 1, ("damaged run", "damaged runs")))
    'run 0 is cut; and 1 more damaged run'
    >>> cut_list(["a"], 3)
    ['a']
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    texts = [str(x) for x in items]
    more = len(texts) - limit
    words = what if isinstance(what, str) else what[more != 1]
    return texts[:limit] + ([f"and {more} more {words}".rstrip()] if more > 0 else [])
