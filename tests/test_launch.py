"""The console script without its optional dependencies: one line naming the extra, exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCK = "import sys; sys.modules[{mod!r}] = None; "  # `import mod` then raises ModuleNotFoundError


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_core_install_without_typer_names_the_cli_extra():
    got = _run(BLOCK.format(mod="typer") + "sys.argv = ['conjugacy', '--help']; "
               "from conjugacy._launch import main; main()")
    assert got.returncode == 2, got.stderr
    assert got.stderr.strip() == ("error: conjugacy's command line: this needs the optional "
                                  "dependency 'typer': pip install 'conjugacy[cli]' (or "
                                  "'conjugacy[all]')")


def test_a_command_without_its_extra_names_it(tmp_path):
    pytest.importorskip("typer")
    got = _run(BLOCK.format(mod="zarr") + f"sys.argv = ['conjugacy', 'store', 'ls', "
               f"{str(tmp_path)!r}]; from conjugacy._launch import main; main()")
    assert got.returncode == 2, got.stderr
    assert "pip install 'conjugacy[store]'" in got.stderr and "Traceback" not in got.stderr


def test_an_unknown_missing_module_is_a_bug_with_its_traceback():
    from conjugacy._launch import missing_extra

    assert missing_extra(ModuleNotFoundError("x", name="numpy")) is None
    assert "conjugacy[plots]" in missing_extra(ModuleNotFoundError("x", name="matplotlib.pyplot"))


def _cli(block: str, *argv: str) -> subprocess.CompletedProcess:
    return _run(BLOCK.format(mod=block) + f"sys.argv = ['conjugacy', *{list(argv)!r}]; "
                "from conjugacy._launch import main; main()")


def test_reproduce_optimizers_without_matplotlib_stops_before_computing(tmp_path):
    pytest.importorskip("typer")
    out = tmp_path / "opt"
    got = _cli("matplotlib", "reproduce", "optimizers", "--out", str(out))
    assert got.returncode == 2, got.stderr
    assert got.stderr == ("error: `conjugacy reproduce optimizers` needs the optional dependency "
                          "'matplotlib': pip install 'conjugacy[plots]' (or 'conjugacy[all]')\n")
    assert not out.exists()  # nothing computed, nothing written
    helped = _cli("matplotlib", "reproduce", "optimizers", "--help")
    assert helped.returncode == 0 and "--loss" in helped.stdout


def test_analyze_without_matplotlib_names_the_extra_and_the_option_that_does_without(tmp_path):
    pytest.importorskip("typer")
    missing = tmp_path / "missing.zarr"
    got = _cli("matplotlib", "analyze", str(missing))
    assert got.returncode == 2 and got.stderr.count("\n") == 1, got.stderr
    assert got.stderr.endswith("pip install 'conjugacy[plots]' (or 'conjugacy[all]'), or pass "
                               "--no-report\n")
    # with --no-report matplotlib is not needed: the command goes on to its own checks
    got = _cli("matplotlib", "analyze", str(missing), "--no-report")
    assert got.returncode == 2 and "does not exist" in got.stderr, got.stderr


def test_every_command_with_needs_exists_and_names_installed_modules_only():
    pytest.importorskip("typer")
    from typer.main import get_command

    from conjugacy._launch import EXTRAS
    from conjugacy.cli import app
    from conjugacy.cli._errors import NEEDS
    from conjugacy.cli.reproduce import EXPERIMENTS

    top = get_command(app)
    for words, needs in NEEDS.items():
        assert words[0] in top.commands, words
        if words[0] == "reproduce":
            assert words[1] in EXPERIMENTS, words
        for module, unless in needs:
            assert module in EXTRAS, (words, module)
            assert unless is None or all(u.startswith("--") for u in unless), (words, unless)


def test_spectrum_on_a_store_folder_without_zarr_names_the_store_extra(tmp_path):
    pytest.importorskip("typer")
    got = _cli("zarr", "spectrum", str(tmp_path), "--out", str(tmp_path / "s.npz"))
    assert got.returncode == 2 and got.stderr.count("\n") == 1, got.stderr
    assert got.stderr == ("error: this needs the optional dependency 'zarr': pip install "
                          "'conjugacy[store]' (or 'conjugacy[all]')\n")
