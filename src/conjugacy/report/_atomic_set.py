"""The files of one analysis (``results.json``, ``report.html``, ``report.md``) as one set.

Each file is written atomically (:func:`conjugacy._atomic.atomic_open`), but several renames are
not one: an analysis killed between them left its new ``results.json`` beside the previous
``report.html`` (9 of 20 kills, issue 26). :func:`replacing_set` removes the previous set before
anything new is written, the report first and ``results.json`` last, and the new set is written
in the opposite order (report first, ``results.json`` last). Whenever the process dies, the
folder holds files of one analysis only: the old ``results.json`` alone, or the new report
(complete or in part) with or without the new ``results.json`` -- never files of two analyses.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["SET_FILES", "remove_previous_set"]

#: The files of one analysis, in the order they are removed (results.json last).
SET_FILES = ("report.html", "report.md", "results.json")


def remove_previous_set(out: str | os.PathLike[str]) -> list[str]:
    """Remove the previous analysis's files from ``out`` (:data:`SET_FILES`, in that order;
    a link is removed, never followed), before a new set is written there.

    The writer then writes the report first and ``results.json`` last (as
    :meth:`conjugacy.analysis.Results.write` does). Figures (``figures/*.png``) are replaced one by
    one by the new report; only ``report.md`` links them.

    Returns
    -------
    list of str
        The names removed.

    Raises
    ------
    IsADirectoryError
        If one of the names is a folder (nothing of the set is removed then).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (out / "results.json").write_text("{}")
    >>> remove_previous_set(out)
    ['results.json']
    """
    out = Path(out)
    for name in SET_FILES:
        if (out / name).is_dir() and not (out / name).is_symlink():
            raise IsADirectoryError(f"{str(out / name)!r} is a folder; an analysis writes a file "
                                    "there: move the folder or choose another output folder")
    removed = []
    for name in SET_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(out / name)
            removed.append(name)
    if removed and hasattr(os, "O_DIRECTORY"):  # the removals reach the disk before new files
        fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return removed
