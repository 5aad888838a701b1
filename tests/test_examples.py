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


def test_own_study_example(tmp_path, capsys):
    import json

    mod = runpy.run_path(str(EXAMPLES / "own_study.py"))
    summary = mod["main"](tmp_path, progress=False, n_steps=12, seeds=(0, 1), n_replicas=3)
    out = capsys.readouterr().out
    assert "sgd-adam: undecided" in out  # 2 seeds cannot reach p < 0.05, and it says so
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc == json.loads(json.dumps(summary))
    assert doc["experiment"] == "sgd-vs-adam" and doc["seeds"] == {"adam": [0, 1], "sgd": [0, 1]}
    assert doc["schema"] == "conjugacy.results/2" and "distances.png" in doc["figures"]
    from conjugacy.analysis import validate

    validate(doc)
    assert doc["training"]["executor"]
    assert [len(v) for v in doc["spectra"].values()] == [2, 2]
    assert doc["comparison"]["verdicts"]["sgd-adam"]["min_pvalue"] == 1 / 3
    assert len(doc["loss"]["adam"]["mean"]) == 12
    assert doc["provenance"]["training_settings"]["n_steps"] == 12
    for name in ("eigenvalues", "distances", "between_seeds", "loss"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    assert sorted(p.name for p in (tmp_path / "trajectories").iterdir()) == [
        "adam-seed0.zarr", "adam-seed1.zarr", "sgd-seed0.zarr", "sgd-seed1.zarr"]
