"""What a user of the installed package meets: importing a subpackage without its extra says which
extra to install (one line, the table of ``conjugacy._launch.EXTRAS``), and the README works where
PyPI shows it (no link into the repository, which PyPI cannot resolve)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent

# subpackage -> (the optional module it needs, the extra that installs it)
SUBPACKAGES = {
    "conjugacy.plots": ("matplotlib", "plots"),
    "conjugacy.torch": ("torch", "torch"),
    "conjugacy.torch.lightning": ("lightning", "lightning"),
    "conjugacy.torch.hf": ("transformers", "hf"),
    "conjugacy.experiments.fcn": ("torch", "torch"),
    "conjugacy.experiments.grokking": ("torch", "torch"),
}
# the other reproductions import torch only inside their training functions: they import without it
WITHOUT_TORCH = ["conjugacy.experiments.cnn", "conjugacy.experiments.optimizers",
                 "conjugacy.experiments.spectral_dynamics"]


# a meta-path finder that refuses ``module`` and its submodules, installed before anything is
# imported: ``import module`` fails as if it were not installed (a None entry in sys.modules
# would trip SciPy's array-API check, which looks for 'torch' there)
_BLOCKER = """import sys
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == {module!r}:
            raise ModuleNotFoundError(f'No module named {{name!r}}', name=name)
        return None
sys.meta_path.insert(0, _Blocker())
"""


def _import_without(package: str, module: str) -> subprocess.CompletedProcess[str]:
    code = (_BLOCKER.format(module=module) +
            f"try:\n    import {package}\n"
            "except ImportError as exc:\n"
            "    print(type(exc).__name__, exc.name, sep='|'); print(exc)\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.parametrize("package", sorted(SUBPACKAGES))
def test_importing_a_subpackage_without_its_extra_names_the_extra(package):
    module, extra = SUBPACKAGES[package]
    done = _import_without(package, module)
    assert done.returncode == 0, done.stderr
    kind, message = done.stdout.splitlines()
    assert kind == f"ModuleNotFoundError|{module}"  # an ImportError; the CLI reads .name
    assert message == (f"import {package} needs the optional dependency {module!r}: "
                       f"pip install 'conjugacy[{extra}]' (or 'conjugacy[all]')")


@pytest.mark.parametrize("package", WITHOUT_TORCH)
def test_reproductions_that_import_torch_lazily_import_without_it(package):
    done = _import_without(package, "torch")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # imported: nothing was caught
    assert "torch" not in done.stderr


def test_opening_a_store_without_zarr_names_the_store_extra(tmp_path):
    """conjugacy.store imports without zarr (its errors and names are usable in the core
    install); the first thing that needs zarr, opening a store, says which extra to install."""
    code = ("import sys, conjugacy; sys.modules['zarr'] = None\n"
            "from conjugacy.store import StoreError, TrajectoryStore\n"
            "try:\n    TrajectoryStore.open(sys.argv[1], 'w')\n"
            "except ImportError as exc:\n    print(type(exc).__name__, exc.name, sep='|'); print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.zarr")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "ModuleNotFoundError|zarr",
        "TrajectoryStore.open needs the optional dependency 'zarr': pip install "
        "'conjugacy[store]' (or 'conjugacy[all]')"]
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.parametrize(("module", "extra"), [*SUBPACKAGES.values(), ("zarr", "store")])
def test_the_named_extra_installs_the_missing_module(module, extra):
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"]["optional-dependencies"]
    names = [re.match(r"[A-Za-z0-9_.-]+", req).group(0) for req in extras[extra]]
    assert module in names, (extra, names)
    assert module in [re.match(r"[A-Za-z0-9_.-]+", r).group(0) for r in extras["all"]]


def test_a_subpackage_with_its_extra_imports():
    for package, (module, _) in SUBPACKAGES.items():
        pytest.importorskip(module)
        __import__(package)


# ----- what the pages say about installing ---------------------------------------------------------
_CORE_NAMES = {"numpy": "NumPy", "scipy": "SciPy", "threadpoolctl": "threadpoolctl", "pot": "POT"}


@pytest.mark.parametrize("page", ["README.md", "docs/install.md", "CHANGELOG.md"])
def test_pages_name_every_core_dependency(page):
    """The core's dependencies as pyproject.toml declares them, each named where the core is
    described (the pages said "only NumPy, SciPy and threadpoolctl" while POT was core)."""
    core = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"]["dependencies"]
    names = [re.match(r"[A-Za-z0-9_.-]+", req).group(0).lower() for req in core]
    text = (ROOT / page).read_text(encoding="utf-8")
    paragraph = next(p for p in re.split(r"\n\s*\n", text)
                     if "The core" in p or "### Engine" in p)
    missing = [name for name in names if _CORE_NAMES.get(name, name) not in paragraph]
    assert not missing, f"{page}: the core's paragraph does not name {missing}:\n{paragraph}"


def test_install_page_names_the_extras_make_installs():
    """docs/install.md says what the Makefile installs into .venv."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    installed = re.search(r'pip install[^\n]*-e "(\.\[[\w,]+\])"', makefile).group(1)
    page = (ROOT / "docs" / "install.md").read_text(encoding="utf-8")
    assert f'pip install -e "{installed}"' in page, installed


def test_tracked_text_files_end_with_one_newline():
    """What pre-commit's end-of-file-fixer enforces: a text file ends with exactly one newline
    (``pre-commit run --all-files`` would otherwise rewrite it)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                                check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    bad = []
    for name in listed.decode().split("\0"):
        path = ROOT / name
        if not name or not path.is_file():
            continue
        data = path.read_bytes()
        if data and b"\0" not in data[:8192] and (not data.endswith(b"\n") or
                                                  data.endswith(b"\n\n")):
            bad.append(name)
    assert not bad, f"end these with exactly one newline: {bad}"


# ----- the README on PyPI -------------------------------------------------------------------------
def _readme_targets() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    markdown = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)", text)
    html = re.findall(r"""(?:src|href)=["']([^"']+)["']""", text)
    return markdown + html


def test_readme_has_no_link_that_breaks_on_pypi():
    """PyPI renders the README without the repository, so a relative link or image is a 404
    there; in-repository paths are written as code spans instead."""
    targets = _readme_targets()
    relative = [t for t in targets if not re.match(r"(https?://|mailto:|#)", t)]
    assert relative == [], f"relative links break on PyPI (use a code span): {relative}"
    # no project URL exists yet, so no absolute link may point to an invented one either
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"].get(
        "urls", {})
    own = [t for t in targets if re.search(r"github\.com|readthedocs|conjugacy", t)
           and not any(t.startswith(u) for u in urls.values())]
    assert own == [], f"links to a project site that pyproject.toml does not declare: {own}"


def test_readme_link_check_sees_a_relative_link(tmp_path, monkeypatch):
    """The check above fails on the kinds of link it exists for."""
    for bad in ("[guide](docs/reproducing.md)", "![fig](docs/grokking_fig5.png)",
                "<img src='docs/a.png'>"):
        (tmp_path / "README.md").write_text(f"# t\n{bad}\n", encoding="utf-8")
        (tmp_path / "pyproject.toml").write_text("[project]\nname = 't'\n", encoding="utf-8")
        monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
        with pytest.raises(AssertionError, match="relative links break on PyPI"):
            test_readme_has_no_link_that_breaks_on_pypi()
