"""Sphinx configuration of the conjugacy documentation site (``make docs``).

The user guide is the Markdown pages of this folder (MyST-Parser), the API reference is generated
from the docstrings (autosummary + napoleon, NumPy style), the gallery executes ``examples/``
(sphinx-gallery) and the CLI page is generated from the Typer app (``_ext/typer_cli.py``).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # the gallery shares CI's two cores with nothing else
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

import conjugacy  # noqa: E402

project = "conjugacy"
author = "the conjugacy developers"
copyright = "2026, the conjugacy developers"
release = conjugacy.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "typer_cli",  # docs/_ext: the CLI reference from the Typer app
    "sphinxcontrib.bibtex",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
smartquotes = False  # "--rank" in help texts stays two hyphens, not a dash
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip", "auto_examples/*.md5",
                    "auto_examples/*.json"]
templates_path = ["_templates"]

# --- API reference ---------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_member_order = "bysource"
autodoc_mock_imports: list[str] = []
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
napoleon_preprocess_types = False
napoleon_use_param = True
napoleon_use_ivar = True  # Attributes as a field list: no second entry beside autodoc's members

# --- user guide (the Markdown pages) -------------------------------------------------------------
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]  # no dollarmath: "$" in the pages is text, no MathJax
# reproducing.md opens with a level-2 heading (it was cut out of the README); that is its layout.
# sphinx-gallery's configuration holds functions (the scraper below), which Sphinx cannot cache.
suppress_warnings = ["myst.header", "config.cache"]

# --- bibliography ------------------------------------------------------------------------------
bibtex_bibfiles = ["references.bib"]
bibtex_default_style = "plain"
bibtex_reference_style = "author_year"


# --- gallery -----------------------------------------------------------------------------------
def _scrape_written_figures(block, block_vars, gallery_conf):  # noqa: ANN001 - sphinx-gallery API
    """Show the PNG figures an example wrote into its ``out`` folder (a study writes its figures
    to files and closes them, so the matplotlib scraper sees none)."""
    from sphinx_gallery.scrapers import figure_rst

    out = block_vars["example_globals"].get("out")
    if not isinstance(out, Path) or not out.is_dir():
        return ""
    seen = block_vars.setdefault("_conjugacy_seen_pngs", set())
    paths = []
    for png in sorted(out.glob("*.png")):
        if png in seen:
            continue
        seen.add(png)
        target = next(block_vars["image_path_iterator"])
        shutil.copyfile(png, target)
        paths.append(target)
    return figure_rst(paths, gallery_conf["src_dir"])


sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r".*\.py$",  # execute every example (each takes seconds)
    "image_scrapers": ("matplotlib", _scrape_written_figures),
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "min_reported_time": 1,
    "show_memory": False,
    "within_subsection_order": "FileNameSortKey",
}

# --- docstrings ---------------------------------------------------------------------------------
# a shape star: "(n, *rest)", "*rest," or "*rest" at the end of a line; never "*Title words*"
_STAR = re.compile(r"(?<=[(,] )\*(?=\w+(?:[,)]|$))|(?<=\()\*(?=\w+(?:[,)]|$))")


def _escape_shape_stars(app, what, name, obj, options, lines):  # noqa: ANN001 - autodoc event
    """``shape (n, *rest)`` in a docstring is a shape, not the start of emphasis: escape the star
    (outside inline literals), so the docstrings stay plain text in ``help()``."""
    for i, line in enumerate(lines):
        parts = line.split("``")
        parts[::2] = [_STAR.sub(r"\\*", p) for p in parts[::2]]  # even parts: outside literals
        lines[i] = "``".join(parts)


def setup(app):  # noqa: ANN001, ANN201 - Sphinx API
    app.connect("autodoc-process-docstring", _escape_shape_stars, priority=400)


# --- HTML --------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"conjugacy {release}"
html_theme_options = {"navigation_with_keys": True}
nitpicky = False
