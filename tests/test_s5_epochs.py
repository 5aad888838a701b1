"""benchmarks/s5_epochs.py's per-seed reading of fig. S5 on hand-made epoch matrices (issue 24)."""

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def s5(load_benchmark):
    return load_benchmark("s5_epochs")


def _matrix(upper):
    """A symmetric 4 x 4 matrix from its 6 upper entries, row by row."""
    m = np.zeros((4, 4))
    m[np.triu_indices(4, 1)] = upper
    return (m + m.T).tolist()


def test_per_seed_consecutive_over_floor_and_late_block(s5):
    # seed 0 settles from epoch 2 within 1 floor (0.01); seed 1 only its last two epochs are
    # within 1 floor, epochs 2-4 within 1.5 floors (0.015 >= 0.012, 0.014, 0.008)
    seed0 = _matrix([0.05, 0.06, 0.07, 0.009, 0.01, 0.004])
    seed1 = _matrix([0.05, 0.06, 0.07, 0.012, 0.014, 0.008])
    w = {"noise_floor": 0.01, "labels": ["e1", "e2", "e3", "e4"],
         "per_seed_matrices": [seed0, seed1]}
    out = s5.per_seed_settling(w)
    np.testing.assert_allclose(out[0]["consecutive_over_floor"], [5.0, 0.9, 0.4])
    np.testing.assert_allclose(out[1]["consecutive_over_floor"], [5.0, 1.2, 0.8])
    assert out[0]["late_block_start"] == {"1.0": "e2", "1.5": "e2", "2.0": "e2"}
    assert out[1]["late_block_start"] == {"1.0": "e3", "1.5": "e2", "2.0": "e2"}


def test_round_keeps_significant_digits_in_nested_values(s5):
    assert s5._round({"a": [0.0123456789, 3], "b": 12345.678}) == {"a": [0.012346, 3],
                                                                    "b": 12346.0}


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory):
    """A CNN run of ResNet-20 alone with fig. S5 at a tiny size (2 seeds x 2 replicas, 40 images,
    batch 4: 10 iterations per epoch, 3 epochs; ~10 s of CPU)."""
    from conjugacy.experiments.cnn import CNNConfig, run

    out = tmp_path_factory.mktemp("cnn_resnet20")
    cfg = CNNConfig(archs=("resnet20",), resnet_seeds=2, resnet_replicas=2, resnet_steps=30,
                    window=10, batch_size=4, n_train=40, s5_epochs=3, delays=2, rank=4,
                    n_permutations=9, n_shuffles=2, threads=1)
    with pytest.warns(UserWarning, match="too few for the median rule"):
        run(cfg, out, progress=False, figures=False)
    return out


def test_resnet20_epochs_refitted_from_its_store(s5, resnet_run):
    with pytest.warns(UserWarning, match="too few for the median rule"):
        result = s5.read_s5(resnet_run, "resnet20")
    content = json.loads((resnet_run / "results.json").read_text())
    saved = content["sections"]["s5"]["resnet20"]["mean_matrix"]
    assert result["arch"] == "resnet20" and result["steps_per_epoch"] == 10
    assert result["mean_matrix_equals_run"] is True
    np.testing.assert_allclose(result["mean_matrix"], saved, rtol=1e-9, atol=1e-12)
    assert result["criteria"]["labels"] == ["epoch 1", "epoch 2", "epoch 3"]
    assert len(result["per_seed"]) == 2 and len(result["epoch_loss"]) == 3


@pytest.mark.parametrize(("edit", "argv_arch", "words"), [
    ({"s5_epochs": 0}, "resnet20", "has no fig. S5"),    # a quick-scale run: no S5
    ({}, "lenet", "has no lenet (it has resnet20)"),
])
def test_run_without_s5_or_arch_is_one_error_line(s5, resnet_run, tmp_path, capsys, edit,
                                                  argv_arch, words):
    content = json.loads((resnet_run / "results.json").read_text())
    content["config"].update(edit)
    run_dir = tmp_path / "run"
    (run_dir / "resnet20").mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps(content))
    with pytest.raises(SystemExit) as e:
        s5.main([str(run_dir), str(tmp_path / "out.json"), "--arch", argv_arch])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: RUN ") and words in err[0]
    assert not (tmp_path / "out.json").exists()


def test_missing_results_json_is_one_error_line(s5, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        s5.main([str(tmp_path), str(tmp_path / "out.json")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read" in err[0] and "results.json" in err[0]


def test_help_describes_the_script_in_full(s5, capsys):
    with pytest.raises(SystemExit) as e:
        s5.main(["--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "refit the per-epoch spectra of one architecture" in text
    assert "(docs/results_cnn.md)." in text and "--arch {lenet,resnet20}" in text
