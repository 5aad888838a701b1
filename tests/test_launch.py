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
