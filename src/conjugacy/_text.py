"""User text made safe to show: the one function every printer of user strings goes through.

Labels, run and parameter names, metadata, paths and the error messages that quote them come from
files users share (stores, spectra, results.json): a terminal must never receive their control
characters (an ``ESC[2K`` erases a line, an OSC ``ESC]0;...BEL`` retitles the window, a U+202E
reverses what follows), and Rich must never read them as markup (``[link=...]`` hides text,
``sgd[/lr]`` raises after half the output was written). :func:`shown` makes both harmless:
the CLI (:mod:`conjugacy.cli`) and the Markdown report use it.
"""

from __future__ import annotations

import unicodedata

__all__ = ["shown"]

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
