"""benchmarks/spectral_labels.py warns when the random-label run did not fit (issue 24)."""

import json

import pytest


@pytest.fixture(scope="module")
def labels(load_benchmark):
    return load_benchmark("spectral_labels")


def test_warning_names_the_unfitted_seeds(labels):
    rows = [{"seed": 0, "random_fitted": True, "epochs": 40},
            {"seed": 2, "random_fitted": False, "epochs": 600},
            {"seed": 5, "random_fitted": False, "epochs": 600}]
    assert labels.not_fitted_warning(rows, 600) == (
        "random labels not fitted in 2 of 3 seeds (seed 2: 600 epochs, seed 5: 600 epochs) "
        "within --max-epochs 600: their rows compare unfitted random labels; raise --max-epochs")
    assert labels.not_fitted_warning(rows[:1], 600) is None


def test_unfitted_run_warns_on_stderr_and_in_the_summary(labels, tmp_path, capsys):
    # 250 images, 2 epochs: far from memorising random labels (~7 s of CPU)
    labels.main([str(tmp_path), "--seeds", "0", "--n-train", "250", "--max-epochs", "2",
                 "--per-epoch", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    expected = ("random labels not fitted in 1 of 1 seeds (seed 0: 2 epochs) within "
                "--max-epochs 2: their rows compare unfitted random labels; raise --max-epochs")
    assert err[-1] == f"warning: {expected}"
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["warnings"] == [expected]
    assert doc["rows"][0]["random_fitted"] is False and doc["rows"][0]["epochs"] == 2
