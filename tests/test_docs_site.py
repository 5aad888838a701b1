"""The documentation site's contracts: every public name has an API page, the README's first
example runs and says what it claims, and the site checker (docs/check_site.py) sees what a reader
would: script errors, images that do not load, a gallery page without its figure."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import io
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# every module whose __all__ is public API (conjugacy.__all__ included)
PUBLIC_MODULES = [
    "conjugacy", "conjugacy.spectrum", "conjugacy.compare", "conjugacy.stats", "conjugacy.windows",
    "conjugacy.uncertainty", "conjugacy.spectral_dynamics", "conjugacy.store", "conjugacy.torch",
    "conjugacy.torch.lightning", "conjugacy.torch.hf", "conjugacy.torch.models",
    "conjugacy.torch.snapshots", "conjugacy.analysis", "conjugacy.analysis.checkpoints",
    "conjugacy.analysis.own_runs", "conjugacy.data", "conjugacy.study", "conjugacy.plots",
    "conjugacy.report", "conjugacy.results", "conjugacy.delays", "conjugacy.residuals",
    "conjugacy.monitor", "conjugacy.comparison_filter", "conjugacy.data.mnist",
    "conjugacy.torch.recorder", "conjugacy.plots.study", "conjugacy.analysis.groups",
    "conjugacy.analysis.neighbours", "conjugacy.analysis.results", "conjugacy.analysis.comparison",
    # the reproductions and their figures (docs/api/experiments.rst)
    "conjugacy.experiments.optimizers", "conjugacy.experiments.fcn",
    "conjugacy.experiments.grokking", "conjugacy.experiments.cnn",
    "conjugacy.experiments.spectral_dynamics", "conjugacy.plots.optimizers", "conjugacy.plots.fcn",
    "conjugacy.plots.grokking", "conjugacy.plots.cnn", "conjugacy.plots.spectral_dynamics",
]


def _documented() -> list[object]:
    """The objects listed in the autosummary tables of docs/api/*.rst."""
    found = []
    for page in sorted((DOCS / "api").glob("*.rst")):
        module, in_table = None, False
        for line in page.read_text(encoding="utf-8").splitlines():
            if m := re.match(r"\.\. currentmodule:: (\S+)", line):
                module = importlib.import_module(m.group(1))
            in_table = line.startswith(".. autosummary::") or (in_table and (
                not line.strip() or line.startswith("   ")))
            if in_table and module is not None and re.match(r"   [A-Za-z_]\w*$", line):
                found.append(getattr(module, line.strip()))  # AttributeError: a stale entry
    return found


def _public_functions_and_classes() -> list[tuple[str, object]]:
    """(``module.name``, object) of every function and class in ``__all__`` of PUBLIC_MODULES
    (skips without an extra: they import torch, zarr, Lightning, Transformers, Matplotlib)."""
    for extra in ("zarr", "torch", "lightning", "transformers", "matplotlib"):
        pytest.importorskip(extra)
    found = []
    for name in PUBLIC_MODULES:
        module = importlib.import_module(name)
        found += [(f"{name}.{attr}", getattr(module, attr)) for attr in module.__all__
                  if inspect.isclass(getattr(module, attr)) or
                  inspect.isfunction(getattr(module, attr))]
    return found


def test_every_public_function_and_class_has_an_api_page():
    documented = _documented()
    missing = [name for name, obj in _public_functions_and_classes()
               if not any(obj is d for d in documented)]
    assert not missing, f"add these to an autosummary table in docs/api/*.rst: {missing}"


def _aliases() -> list[tuple[str, str]]:
    """(``module``, ``name``) of every public name that is another name's object (e.g.
    ``AnalysisResults``, which is ``Results``): autosummary would render only "alias of"."""
    return [(name.rsplit(".", 1)[0], name.rsplit(".", 1)[1])
            for name, obj in _public_functions_and_classes()
            if getattr(obj, "__name__", name.rsplit(".", 1)[1]) != name.rsplit(".", 1)[1]]


def test_every_alias_has_its_own_entry_with_a_passing_example():
    import doctest

    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted((DOCS / "api").glob("*.rst")))
    aliases = _aliases()
    assert ("conjugacy", "AnalysisResults") in aliases  # the check below sees real aliases
    for _, name in aliases:
        block = re.search(rf"^\.\. py:(?:class|function|data):: {name}\n((?:\n|   .*\n)+)",
                          text, re.M)
        assert block is not None, f"document the alias {name} (.. py:class:: {name}) in docs/api"
        body = block.group(1)
        assert ">>>" in body, f"the entry of {name} has no example"
        test = doctest.DocTestParser().get_doctest(textwrap.dedent(body), {}, name, None, 0)
        runner = doctest.DocTestRunner()
        runner.run(test)
        assert runner.failures == 0 and runner.tries > 0, name


def test_every_public_function_and_class_has_a_runnable_example():
    """An Examples section with doctest lines (``>>>``), not only a pointer ("See func")."""
    missing = [name for name, obj in _public_functions_and_classes()
               if ">>>" not in (inspect.getdoc(obj) or "")]
    assert not missing, f"give these a doctested Examples section: {missing}"


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## A first example", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_first_example_runs_and_prints_its_verdict():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(_readme_example(), "README.md", "exec"), {})  # noqa: S102 - our own README
    printed = out.getvalue().splitlines()
    # each print line's comment is what it prints (up to NumPy's spacing inside brackets)
    said = [line.split("#", 1)[1] for line in _readme_example().splitlines()
            if line.startswith("print(")]

    def words(text: str) -> list[str]:
        return text.replace("[", " [ ").replace("]", " ] ").split()

    assert [words(p) for p in printed] == [words(c) for c in said], (printed, said)
    assert printed[1].startswith("not conjugate")


def test_readme_is_a_landing_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 120
    assert "make test" in text and "make docs" in text and "docs/_build/html/index.html" in text
    assert "`docs/reproducing.md`" in text and "`CITATION.cff`" in text
    # in-repository paths are code spans (links would break on PyPI: tests/test_packaging.py)
    paths = re.findall(r"`((?:docs/)?[\w./-]+\.(?:md|png|cff)|LICENSE)`", text)
    assert len(paths) >= 10, paths
    for path in paths:
        assert (ROOT / path).is_file(), path


# ----- the generated command-line page (docs/_ext/typer_cli.py) ----------------------------------
def _cli_page_sections() -> dict[str, str]:
    """``{command path: its section text}`` of the lines the ``typer-cli`` directive renders for
    docs/cli.rst (a title is a line followed by its underline of the same length)."""
    pytest.importorskip("typer")
    spec = importlib.util.spec_from_file_location("typer_cli", DOCS / "_ext" / "typer_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines = module._command_lines(module._load("conjugacy.cli:app"), ["conjugacy"], "-~^\"'")
    titles = [i for i in range(len(lines) - 1) if lines[i].startswith("conjugacy")
              and lines[i + 1] and set(lines[i + 1]) <= set("-~^\"'")
              and len(lines[i + 1]) == len(lines[i])]
    ends = [*titles[1:], len(lines)]
    return {lines[a]: "\n".join(lines[a:b]) for a, b in zip(titles, ends, strict=True)}


def test_cli_page_documents_every_reproduce_option():
    """``conjugacy reproduce`` builds its commands lazily (placeholders until run); the page must
    show the real commands' options, e.g. --scale, --widths, --n-train, not only --help."""
    from conjugacy.cli.reproduce import EXPERIMENTS

    sections = _cli_page_sections()
    missing = []
    for name, exp in EXPERIMENTS.items():
        section = sections[f"conjugacy reproduce {name}"]
        for opt in exp.options:
            missing += [f"{name} {flag}" for flag in re.findall(r"--[\w-]+", opt.decls)
                        if f"``{flag}" not in section and f"/ {flag}" not in section]
    assert not missing, f"options missing from the generated CLI page: {missing}"
    assert "``--widths <str>``" in sections["conjugacy reproduce fcn"]
    assert "``--scale <quick|paper>``" in sections["conjugacy reproduce fcn"]
    assert any("--n-train" in text for text in sections.values())


# ----- the site checker in a real browser --------------------------------------------------------
def _check_site():
    spec = importlib.util.spec_from_file_location("check_site", DOCS / "check_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_site = _check_site()


@pytest.mark.skipif(check_site.chromium() is None,
                    reason="no chromium installed (CI installs Debian's chromium: apt-get install "
                           "chromium); the headless-browser check of the site is skipped")
def test_site_checker_sees_script_errors_and_missing_images(tmp_path):
    from matplotlib.image import imsave

    imsave(tmp_path / "fig.png", np.linspace(0, 1, 64).reshape(8, 8))
    page = tmp_path / "index.html"
    good = "<html><head><title>t</title></head><body><img src='fig.png'></body></html>"
    page.write_text(good, encoding="utf-8")
    exe = check_site.chromium()
    assert check_site.check_page(page, exe, min_images=1) == []
    assert not list(tmp_path.glob(".*.check.html"))  # the probe copy is removed
    # a second image that does not exist, a script error, and too few images for a gallery page
    page.write_text(good.replace("</body>", "<img src='gone.png'><script>undefinedFn();</script>"
                                            "</body>"), encoding="utf-8")
    problems = check_site.check_page(page, exe, min_images=3)
    text = "\n".join(problems)
    assert len(problems) == 4, problems
    assert "failed to load" in text and "gone.png" in text
    assert "undefinedFn" in text
    assert "images that did not load: gone.png (1/2)" in text
    assert "1 images loaded, expected at least 3" in text


def test_site_checker_refuses_a_missing_site(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        check_site.main([str(tmp_path)])
    assert exc.value.code == 2
    assert "has no index.html: build it first (make docs)" in capsys.readouterr().err


def test_citation_version_is_the_package_version():
    """CITATION.cff states the version of the one source (conjugacy/_version.py)."""
    import conjugacy

    text = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert re.search(r"^version: (\S+)$", text, re.M).group(1) == conjugacy.__version__
