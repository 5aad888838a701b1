"""The example scripts run and print what they promise."""

import runpy
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_linear_system_example(capsys):
    runpy.run_path(str(EXAMPLES / "linear_system.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "rank=3" in out and "0.81" in out


def test_linear_system_example_simulation_has_exact_spectrum():
    mod = runpy.run_path(str(EXAMPLES / "linear_system.py"))
    from conjugacy import koopman_spectrum

    spec = koopman_spectrum(mod["simulate"](), delays=1)
    np.testing.assert_allclose(np.sort(spec.eigenvalues.real), [0.5, 0.81, 0.9], atol=1e-12)


def test_record_digits_example(tmp_path, capsys):
    mod = runpy.run_path(str(EXAMPLES / "record_digits.py"))
    mod["main"](tmp_path)
    out = capsys.readouterr().out
    assert "recorded (5, 21, 160)" in out and "rank=10" in out
    assert (tmp_path / "runs.zarr").is_dir()
