"""Tests of the fully connected width study (conjugacy.experiments.fcn) and its CLI command.

A test-only configuration keeps the real runs small: 2 widths, 2 seeds, 3 replicas, 120 steps on
the bundled digits, a delay product of 80 (16 delays for h = 5, 2 for h = 40).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conjugacy.analysis import Results, validate
from conjugacy.cli import app
from conjugacy.data import batch_order
from conjugacy.experiments.fcn import (
    FCN,
    OBSERVED_PARAMETER,
    FCNConfig,
    claims,
    condition_label,
    make_study,
    run,
)
from conjugacy.store import TrajectoryStore
from conjugacy.study import StudyReader, check_stamp

#: Tolerance of a ratio of two float32 weights: each carries a relative rounding error <= 2**-24.
F32 = 4 * float(np.finfo(np.float32).eps)

SMALL = {
    "widths": (5, 40),
    "n_seeds": 2,
    "n_replicas": 3,
    "n_steps": 120,
    "delay_product": 80,
    "n_shuffles": 20,
    "n_permutations": 99,
    "seed": 7,
}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fcn_a")
    return run(FCNConfig(**SMALL), out, figures=True)


# ----------------------------------------------------------------------------- config and model
def test_presets_hold_the_published_numbers():
    paper = FCNConfig.preset("paper")
    assert (paper.n_seeds, paper.n_replicas, paper.n_steps) == (25, 10, 1000)
    assert (paper.batch_size, paper.lr, paper.eps, paper.rank) == (60, 0.1, 1e-3, 10)
    assert [paper.delays_for(h) for h in (5, 10, 40)] == [64, 32, 8]
    quick = FCNConfig.preset("quick", activation="gelu")
    assert quick.scale == "quick" and quick.activation == "gelu" and quick.data == "mnist-sample"
    assert quick.widths == (5, 10, 40) and (quick.n_replicas, quick.n_steps) == (10, 1000)
    with pytest.raises(ValueError, match="scale must be one of"):
        FCNConfig.preset("huge")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"activation": "tanh"}, "activation must be one of"),
        ({"widths": ()}, "widths must be a non-empty"),
        ({"widths": (5, 5)}, "widths must be distinct"),
        ({"widths": (0, 5)}, "each width must be an integer >= 1"),
        ({"data": "mnist"}, "needs data_dir"),
        ({"data": "imagenet"}, "data must be one of"),
        ({"n_replicas": 1}, "n_replicas must be an integer >= 2"),
        ({"noise": "laplace"}, "noise must be one of"),
        ({"lr": -0.1}, "lr must be finite and > 0"),
        ({"n_steps": 50}, r"too short for width 5: its 64 delays need .* at least 66"),
        ({"device": "tpu"}, "device must be one of"),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FCNConfig(**kwargs)


def test_widths_are_sorted_and_delays_follow_the_ratio():
    cfg = FCNConfig(widths=(40, 5, 10))
    assert cfg.widths == (5, 10, 40)
    assert cfg.to_dict()["delays"] == {"5": 64, "10": 32, "40": 8}
    assert FCNConfig(widths=(3,), delay_product=10).delays_for(3) == 3  # round(10 / 3)


def test_model_has_no_biases_and_pytorch_default_init():
    gen = torch.Generator().manual_seed(0)
    model = FCN(784, 40, 10, generator=gen)
    names = dict(model.named_parameters())
    assert set(names) == {"fc1.weight", OBSERVED_PARAMETER}
    assert names["fc1.weight"].shape == (40, 784) and names[OBSERVED_PARAMETER].shape == (10, 40)
    assert sum(p.numel() for p in model.parameters()) == 784 * 40 + 40 * 10
    # U(-1/sqrt(fan_in), 1/sqrt(fan_in)), filled (the extremes are approached)
    w1 = names["fc1.weight"].detach()
    assert w1.abs().max() <= 1 / np.sqrt(784) and w1.abs().max() > 0.99 / np.sqrt(784)
    w2 = names[OBSERVED_PARAMETER].detach()
    assert w2.abs().max() <= 1 / np.sqrt(40)
    same = FCN(784, 40, 10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(same.fc1.weight, model.fc1.weight)
    x = torch.randn(3, 784)
    relu = FCN(784, 40, generator=torch.Generator().manual_seed(1))
    gelu = FCN(784, 40, activation="gelu", generator=torch.Generator().manual_seed(1))
    expected = torch.relu(x @ relu.fc1.weight.T) @ relu.fc2.weight.T
    assert torch.allclose(relu(x), expected)
    assert not torch.allclose(gelu(x), expected)


def test_batch_order_is_seeded_epochwise_permutation():
    order = batch_order(100, 30, 7, seed=3)
    assert order.shape == (7, 30) and order.dtype == np.int64
    # 3 full batches per epoch (the last 10 examples of each permutation are dropped)
    for epoch in range(2):
        chunk = order[3 * epoch : 3 * epoch + 3].ravel()
        assert len(np.unique(chunk)) == 90
    assert not np.array_equal(order[:3], order[3:6])
    np.testing.assert_array_equal(order, batch_order(100, 30, 7, seed=3))
    assert not np.array_equal(order, batch_order(100, 30, 7, seed=4))
    with pytest.raises(ValueError, match="larger than the 10 training examples"):
        batch_order(10, 60, 5, seed=0)


# ---------------------------------------------------------------------------- the real run
def test_results_structure(small_run):
    res = small_run
    assert isinstance(res, Results)
    out = res.out_dir
    summary = json.loads((out / "results.json").read_text())
    validate(summary)  # the one results schema, conjugacy.results/2
    assert summary == json.loads(json.dumps(res.content))
    assert summary["schema"] == "conjugacy.results/2" and summary["experiment"] == "fcn"
    assert summary["conditions"] == {"h5": {"width": 5}, "h40": {"width": 40}}
    assert summary["seeds"] == {"h5": [0, 1], "h40": [0, 1]}
    assert summary["observables"] == [OBSERVED_PARAMETER]
    assert summary["settings"]["delays"] == {"h5": 16, "h40": 2}
    assert summary["config"]["widths"] == [5, 40]
    assert summary["config"]["delays"] == {"5": 16, "40": 2}
    for h in ("5", "40"):
        assert len(summary["spectra"][f"h{h}"]) == 2
        for sp in summary["spectra"][f"h{h}"]:
            assert len(sp["eigenvalues"]) == 10 and sp["rank"] == 10 and sp["method"] == "rrr"
            assert sp["settings"]["delays"] == summary["config"]["delays"][h]
    comparison = summary["comparison"]
    assert comparison["conditions"] == ["h5", "h40"] and comparison["n_seeds"] == 2
    assert comparison["verdict_uses"] in ("all", "filtered")
    assert (comparison["filtered"] is None) == (comparison["verdict_uses"] == "all")
    verdict = comparison["verdicts"]["h5-h40"]
    cmp = comparison[comparison["verdict_uses"]]
    assert verdict["pvalue"] == cmp["permutation_tests"]["h5-h40"]["pvalue"]
    # 2 seeds per width: the smallest attainable p is 2 / C(4, 2) = 1/3, so no verdict
    assert verdict["min_pvalue"] == pytest.approx(1 / 3) and verdict["verdict"] == "undecided"
    assert "add seeds" in verdict["reason"]
    # the delays differ between widths on purpose (fig. 3: delays x width fixed): allowed, with
    # the reason recorded, so the undecided verdict is the seeds', not the settings'
    assert comparison["settings_mismatch"] == []
    assert "delays x width" in comparison["allowed_differences"]["delays"]
    assert res.verdicts == {"h5-h40": "undecided"}
    assert summary["claims"][0] == {
        "claim": "h = 5 and h = 40 are not conjugate", "holds": None,
        "evidence": f"undecided: {verdict['reason']}"}
    between = comparison[comparison["verdict_uses"]]["between_seeds"]["h40"]["values"]
    assert summary["claims"][1]["holds"] == bool(np.median(between)
                                                 < cmp["distances"]["h5-h40"]["mean"])
    assert len(summary["claims"]) == 3 and summary["claims"][2]["claim"].startswith("fig. S2")
    d = comparison["all"]["distances"]["h5-h40"]
    assert len(d["per_seed"]) == 2 and d["mean"] > 0 and d["std"] >= 0
    assert d["mean"] == pytest.approx(np.mean(d["per_seed"]))
    shuffle = comparison["all"]["shuffle_control"]["h5-h40"]
    assert set(shuffle) == {"fraction_per_seed", "mean_fraction", "n_shuffles"}
    perm = comparison["all"]["permutation_tests"]["h5-h40"]
    assert perm["exact"] and perm["n_permutations"] == 6 and 0 < perm["pvalue"] <= 1
    assert comparison["all"]["ks_tests"] == {}  # a single pair of widths: nothing to compare
    between = comparison["all"]["between_seeds"]["h40"]
    assert len(between["values"]) == 1 and between["pairs"] == [[0, 1]]
    assert set(comparison["all"]["ks_between_seeds_vs_pairs"]) == {
        "h5 seeds vs h5-h40", "h40 seeds vs h5-h40"}
    assert len(summary["loss"]["h5"]["mean"]) == 120 and summary["loss"]["h5"]["n_runs"] == 6
    assert [r["run"] for r in summary["runs"] if r["condition"] == "h40"] == [
        f"h40_seed{s}_{i}" for s in range(2) for i in range(3)]
    assert all(r["n_complete"] == 121 and r["finished"] for r in summary["runs"])
    assert summary["provenance"]["training_settings"] == FCNConfig(**SMALL).training_fields()
    assert summary["provenance"]["data"]["name"] == "digits"
    assert summary["data"]["name"] == "digits" and summary["data"]["n_features"] == 64
    assert summary["figures"] == sorted(f"{n}.{e}" for n in (
        "fig3a_loss", "fig3bc_weights", "fig3d_eigenvalues", "fig3e_zoom", "fig3f_distances",
        "figS2_relative_test_loss", "figS4b_between_seeds") for e in ("png", "svg"))
    for name in (
        "fig3a_loss",
        "fig3bc_weights",
        "fig3d_eigenvalues",
        "fig3e_zoom",
        "fig3f_distances",
        "figS2_relative_test_loss",
        "figS4b_between_seeds",
    ):
        assert (out / f"{name}.png").stat().st_size > 1000
        assert (out / f"{name}.svg").exists()
    assert sorted(p.name for p in (out / "trajectories").iterdir()) == [
        "h40_seed0.zarr", "h40_seed1.zarr", "h5_seed0.zarr", "h5_seed1.zarr"]  # one store per job
    with StudyReader.open(out) as store:
        assert len(store.runs()) == 2 * 2 * 3
        traj = store.read(params=OBSERVED_PARAMETER, runs=["h40_seed1_0", "h40_seed1_2"])
        assert traj.shape == (2, 121, 400)
        meta = store.metadata("h40_seed1_2")
        assert (meta["condition"], meta["seed"], meta["job"]) == ("h40", 1, "h40_seed1")
    # the spectra of results.json are those of the returned spectra
    eig = np.array(summary["spectra"]["h40"][1]["eigenvalues"])
    np.testing.assert_allclose(eig[:, 0] + 1j * eig[:, 1], res.spectra["h40"][1].eigenvalues)
    # the spectra were fitted on the float32 store in its stored dtype: rank 10 as asked
    assert all(s.rank == 10 for v in res.spectra.values() for s in v)


def test_fig_s2_relative_test_loss_is_read_from_the_last_record(small_run):
    rel = small_run["sections"]["relative_test_loss"]
    assert set(rel) == {"h5", "h40"}
    with StudyReader.open(small_run.out_dir) as store:
        for cond in ("h5", "h40"):
            for seed in range(2):
                loss = [store.scalars(f"{cond}_seed{seed}_{i}", "test_loss") for i in range(3)]
                # recorded once, after the last step
                assert all(np.isnan(x[:-1]).all() and np.isfinite(x[-1]) for x in loss)
                assert rel[cond]["base"][seed] == loss[0][-1]
                assert rel[cond]["ratios"][seed] == [loss[1][-1] / loss[0][-1],
                                                     loss[2][-1] / loss[0][-1]]
            flat = np.concatenate(rel[cond]["ratios"])
            assert rel[cond]["n"] == 4 and rel[cond]["median"] == np.median(flat)
            assert rel[cond]["min"] <= rel[cond]["median"] <= rel[cond]["max"]


def test_replicas_start_at_the_configured_perturbation(small_run):
    eps = FCNConfig(**SMALL).eps
    with StudyReader.open(small_run.out_dir) as store:
        for h in (5, 40):
            w0 = store.read(
                params="*",
                runs=[f"h{h}_seed0_{i}" for i in range(3)],
                steps=slice(0, 1),
                dtype=np.float64,
            )[:, 0]
            rel = np.abs(w0[1:] / w0[0] - 1)
            assert rel.max() <= eps + F32  # uniform noise in [-1, 1], weights stored in float32
            assert rel.max() > 0.5 * eps  # and the perturbation is there
            # replicas of one seed then share the batch order: after training they stay close
            last = store.read(
                params="*",
                runs=[f"h{h}_seed0_{i}" for i in range(3)],
                steps=slice(-1, None),
                dtype=np.float64,
            )[:, 0]
            other = store.read(
                params="*",
                runs=[f"h{h}_seed1_{i}" for i in range(3)],
                steps=slice(-1, None),
                dtype=np.float64,
            )[:, 0]
            spread = np.abs(last[1:] - last[0]).max()
            assert spread < 0.1 * np.abs(other[0] - last[0]).max()
    reported = small_run.content["sections"]["max_relative_perturbation"]
    assert set(reported) == {"h5", "h40"}
    assert all(0.5 * eps < v <= eps + F32 for v in reported.values())


def test_training_lowers_the_loss(small_run):
    for h in (5, 40):
        loss = small_run.content["loss"][condition_label(h)]
        mean = np.array(loss["mean"])
        assert mean[-20:].mean() < 0.5 * mean[:5].mean()
        assert loss["final_mean"] == pytest.approx(mean[-12:].mean())  # the last 10 % of steps


def test_deterministic_under_a_seed(small_run, tmp_path):
    again = run(FCNConfig(**SMALL), tmp_path / "b", figures=False)
    for h in ("h5", "h40"):
        for a, b in zip(small_run.spectra[h], again.spectra[h]):
            np.testing.assert_array_equal(a.eigenvalues, b.eigenvalues)
    assert again.content["comparison"] == small_run.content["comparison"]
    assert again.content["claims"] == small_run.content["claims"]


def test_resume_skips_complete_seeds_and_redoes_an_interrupted_one(small_run, tmp_path):
    copy = tmp_path / "c"
    shutil.copytree(small_run.out_dir, copy)
    (copy / "results.json").unlink()
    with TrajectoryStore.open(copy / "trajectories" / "h5_seed1.zarr", "a") as store:
        store.delete_run("h5_seed1_2")  # as if killed before the last replica of this seed
    with TrajectoryStore.open(copy / "trajectories" / "h40_seed0.zarr", "a") as store:
        store.set_finished("h40_seed0_1", False)  # as if killed before closing this run
    resumed = run(FCNConfig(**SMALL), copy, figures=False)
    training = resumed.content["training"]
    assert training["trained"] == ["h40_seed0", "h5_seed1"]
    assert training["skipped"] == ["h5_seed0", "h40_seed1"]
    validate(resumed.content)
    for h in ("h5", "h40"):
        for a, b in zip(small_run.spectra[h], resumed.spectra[h]):
            np.testing.assert_array_equal(a.eigenvalues, b.eigenvalues)


def test_resume_refuses_other_training_settings(small_run):
    other = FCNConfig(**{**SMALL, "lr": 0.05})
    with pytest.raises(ValueError, match=r"other settings \(lr: 0.1 there, 0.05 now\)"):
        check_stamp(make_study(other), small_run.out_dir)


def _content(d5, d10, closest, verdict="not conjugate", p=0.002, between=None):
    return {
        "conditions": {"h5": {"width": 5}, "h10": {"width": 10}, "h40": {"width": 40}},
        "comparison": {
            "pairs": {"h5-h40": ["h5", "h40"], "h10-h40": ["h10", "h40"]},
            "verdict_uses": "filtered",
            "filtered": {"distances": {"h5-h40": {"mean": d5}, "h10-h40": {"mean": d10}},
                         "between_seeds": {"h40": {
                             "min": closest, "closest_pair": [0, 3],
                             "values": [closest] if between is None else between}}},
            "verdicts": {"h5-h40": {"verdict": verdict, "pvalue": p, "reason": "r"}},
        },
    }


def test_claims_are_decided_on_the_numbers():
    found = claims(_content(0.014, 0.013, 0.01))
    assert [c.claim for c in found] == [
        "h = 5 and h = 40 are not conjugate",
        "h = 10 is closer to h = 40 than h = 5 is",
        "seeds of h = 40 can be conjugate (median W1 between its seeds below h = 10 vs h = 40)"]
    assert [c.holds for c in found] == [True, True, True]
    assert found[1].evidence == "W1 0.013 vs 0.014" and found[0].evidence == "not conjugate: r"
    found = claims(_content(0.014, 0.02, 0.025, verdict="conjugate", p=0.4))
    assert [c.holds for c in found] == [False, False, False]
    assert claims(_content(0.014, 0.013, 0.01, verdict="undecided", p=0.33))[0].holds is None
    assert claims({"conditions": {"h5": {"width": 5}}, "comparison": None}) == []
    # fig. S2: decided on the median relative test loss of every width
    s2 = {"h5": {"median": 1.004, "n": 9, "percentiles": {"5": 0.99, "95": 1.02}},
          "h40": {"median": 0.985, "n": 9, "percentiles": {"5": 0.97, "95": 1.0}}}
    content = {**_content(0.014, 0.013, 0.01), "sections": {"relative_test_loss": s2}}
    assert claims(content)[-1].claim.startswith("fig. S2") and claims(content)[-1].holds is False
    s2["h40"]["median"] = 0.995
    assert claims(content)[-1].holds is True and "h40: median 0.9950" in claims(content)[-1].evidence


def test_seeds_claim_is_decided_on_the_median_between_seed_distance():
    """Fig. S4 'seeds of h = 40 can be conjugate': the median W1 between its seeds below
    h = 10 vs h = 40. The 300-step numbers (between seeds 0.0134, h10-h40 0.0133) fail it, though
    the closest pair of seeds (0.002) is below every width distance."""
    values = [0.002, 0.0130, 0.0134, 0.0140, 0.0150]
    found = claims(_content(0.0139, 0.0133, 0.002, between=values))[2]
    assert found.holds is False
    assert found.evidence == ("median W1 between seeds 0.0134 over 5 pairs, 2 of them below "
                              "(closest [0, 3]: 0.002); h = 10 vs h = 40: mean W1 0.0133")
    assert claims(_content(0.0139, 0.0135, 0.002, between=values))[2].holds is True
    # the 1,000-step quick and paper scale: 0.0035 / 0.0038 vs 0.0066 / 0.0054
    assert claims(_content(0.0120, 0.0066, 0.0019, between=[0.0019, 0.0035, 0.006]))[2].holds
    # two widths: the next width to h = 40 is h = 5
    two = {"conditions": {"h5": {"width": 5}, "h40": {"width": 40}},
           "comparison": {"pairs": {"h5-h40": ["h5", "h40"]}, "verdict_uses": "all",
                          "all": {"distances": {"h5-h40": {"mean": 0.01}},
                                  "between_seeds": {"h40": {"min": 0.001, "closest_pair": [0, 1],
                                                            "values": [0.001, 0.02, 0.03]}}},
                          "verdicts": {"h5-h40": {"verdict": "not conjugate", "reason": "r"}}}}
    assert claims(two)[1].holds is False and "h = 5 vs h = 40" in claims(two)[1].claim
    two["comparison"]["all"]["between_seeds"]["h40"]["values"] = [None]
    assert claims(two)[1].holds is None and "no finite distance between seeds" in \
        claims(two)[1].evidence


def test_claims_are_undecided_where_a_filter_kept_nothing():
    """A pair whose filter kept no eigenpair has no distance (compare_conditions leaves it out):
    the claims that need it are undecided and say why, instead of a KeyError."""
    content = _content(0.014, 0.013, 0.01, verdict="undecided", p=None)
    block = content["comparison"]["filtered"]
    del block["distances"]["h5-h40"]
    block["kept_nothing"] = {"h5-h40": ["h5 seed 2"]}
    found = claims(content)
    assert [c.holds for c in found] == [None, None, True]
    assert found[1].evidence == ("undecided, no distance (h5-h40: the filter kept no eigenpair of "
                                 "h5 seed 2)")
    assert found[2].holds is True  # it needs h10-h40 only, which is there
    del block["distances"]["h10-h40"]
    assert claims(content)[2].holds is None
    assert claims(content)[2].evidence == (
        "median W1 between seeds 0.01 over 1 pairs (closest [0, 3]: 0.01); h = 10 vs h = 40: "
        "undecided, no distance (h10-h40: no finite distance)")
    block["distances"]["h10-h40"] = {"mean": 0.013}
    del block["distances"]["h10-h40"]  # and one with no finite distance (NaN becomes null)
    block["distances"]["h5-h40"] = {"mean": None}
    block["kept_nothing"] = {}
    assert claims(content)[1].evidence == ("undecided, no distance (h10-h40: no finite distance; "
                                           "h5-h40: no finite distance)")
    assert claims(_content(0.014, 0.013, 0.01))[1].holds is True  # the same content with both


def test_claims_on_a_real_comparison_whose_filter_keeps_nothing_for_one_width():
    """Through compare_conditions: the h5 spectra keep no eigenpair under the default filter
    (two-branch residuals that fail its projection test; the other widths' pass it), so h5-h40
    and h5-h10 have no filtered distance."""
    from dataclasses import replace

    from conjugacy import koopman_spectrum
    from conjugacy.analysis.comparison import compare_conditions, pair_distance

    rng = np.random.default_rng(0)
    spectra = {}
    for cond, lam in (("h5", 0.6), ("h10", 0.8), ("h40", 0.9)):
        spectra[cond] = []
        for _ in range(3):
            x = lam ** np.arange(30)[None, :, None] * rng.standard_normal((2, 1, 3))
            sp = koopman_spectrum(x + 1e-3 * rng.standard_normal(x.shape), rank=3)
            # every spectrum carries two-branch residuals (one residual rule per comparison):
            # h5's fail the projection test, the others' pass it
            ones = np.ones(sp.rank)
            bad = 1.0 if cond == "h5" else 0.0
            sp = replace(sp, projection_residuals=bad * ones, variance_residuals=ones,
                         noise_fractions=0 * ones)
            spectra[cond].append(sp)
    cmp = compare_conditions(spectra, n_shuffles=5, n_permutations=9).to_dict()
    assert cmp["verdict_uses"] == "filtered" and pair_distance(cmp, "h5-h40") is None
    assert pair_distance(cmp, "h10-h40") == cmp["filtered"]["distances"]["h10-h40"]["mean"]
    content = {"conditions": {c: {"width": int(c[1:])} for c in spectra}, "comparison": cmp}
    found = claims(content)
    assert found[0].holds is None and found[1].holds is None
    assert "h5-h40: the filter kept no eigenpair of h5 seed 0, h5 seed 1, h5 seed 2" in \
        found[1].evidence


# ----------------------------------------------------------------------------------------- CLI
@pytest.fixture()
def runner():
    from typer.testing import CliRunner

    return CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--activation", "tanh"], "tanh"),
        (["--scale", "huge"], "huge"),
        (["--widths", "5,x"], "--widths must be a comma-separated list"),
        (["--widths", "5,5"], "--widths must be distinct"),
        (["--data", "mnist"], "--data mnist needs --data-dir"),
        (["--data-dir", "."], "--data-dir is only used with --data mnist"),
        (["--data", "mnist", "--data-dir", "/nonexistent/mnist"], "is not a folder"),
        (["--seed", "-1"], "--seed"),
        (["--steps", "10"], "too short for width 5"),
    ],
)
def test_cli_fcn_bad_options(runner, args, message, tmp_path):
    result = runner.invoke(app, ["reproduce", "fcn", "--out", str(tmp_path / "o"), *args])
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "o" / "results.json").exists()


def test_cli_fcn_missing_mnist_file_names_it(runner, tmp_path):
    (tmp_path / "mnist").mkdir()
    result = runner.invoke(
        app,
        [
            "reproduce",
            "fcn",
            "--data",
            "mnist",
            "--data-dir",
            str(tmp_path / "mnist"),
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ],
    )
    assert result.exit_code == 2
    assert "train-images-idx3-ubyte" in result.output


def test_cli_fcn_out_must_be_a_folder(runner, tmp_path):
    target = tmp_path / "a_file"
    target.write_text("not a folder")
    result = runner.invoke(app, ["reproduce", "fcn", "--out", str(target), "--no-progress"])
    assert result.exit_code == 2
    assert "exists and is not a folder" in result.output


def test_cli_fcn_runs_and_writes_results(runner, tmp_path):
    out = tmp_path / "cli"
    result = runner.invoke(
        app,
        [
            "reproduce",
            "fcn",
            "--widths",
            "10,40",
            "--seeds",
            "2",
            "--replicas",
            "2",
            "--steps",
            "40",
            "--out",
            str(out),
            "--no-progress",
            "--activation",
            "gelu",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "results.json").read_text())
    assert summary["config"]["activation"] == "gelu"
    assert summary["config"]["delays"] == {"10": 32, "40": 8}
    # the default data: the MNIST 5k sample, 784-h-10 networks on its 4,000 training digits
    assert summary["data"]["name"] == "mnist-sample" and summary["data"]["n_features"] == 784
    assert summary["data"]["n_train"] == 4000
    assert "h10-h40" in result.output
    validate(summary)
    printed = " ".join(result.output.split())
    assert summary["claims"]
    for c in summary["claims"]:  # the CLI prints the claims the results hold
        assert f"claim: {c['claim']}" in printed
    assert Path(out / "fig3f_distances.png").exists()


def test_cli_grokking_wiring(runner, tmp_path, monkeypatch):
    import conjugacy.experiments.grokking as grokking

    seen = {}

    class Fake:
        content: dict = {}

    def fake_run(config, out_dir, *, progress=False, workers=None, scheduler=None):
        seen.update(config=config, out=Path(out_dir), progress=progress, workers=workers,
                    scheduler=scheduler)
        return Fake()

    monkeypatch.setattr(grokking, "run", fake_run)
    result = runner.invoke(
        app,
        [
            "reproduce",
            "grokking",
            "--steps",
            "50",
            "--long-steps",
            "400",
            "--scale",
            "quick",
            "--out",
            str(tmp_path / "g"),
            "--seed",
            "3",
            "--no-progress",
            "--s6",
        ],
    )
    assert result.exit_code == 0, result.output
    cfg = seen["config"]
    assert (cfg.steps, cfg.long_steps, cfg.seed, cfg.s6, cfg.scale) == (50, 400, 3, True, "quick")
    assert seen["out"] == tmp_path / "g" and seen["progress"] is False
    bad = runner.invoke(app, ["reproduce", "grokking", "--steps", "0"])
    assert bad.exit_code != 0 and "--steps" in bad.output


def test_standardized_data_uses_the_training_set_mean_and_std():
    from conjugacy.data import load_digits
    from conjugacy.experiments._sample import standardized

    ds, d = load_digits(), standardized("digits")
    x = ds.features("train")
    assert d.mean == float(x.mean(dtype=np.float64)) and d.std == float(x.std(dtype=np.float64))
    np.testing.assert_array_equal(d.x_test, ((ds.features("test") - d.mean) / d.std).astype(np.float32))
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64 and d.n_features == 64
    assert abs(float(d.x_train.mean(dtype=np.float64))) < 1e-6
    assert standardized("digits") is d  # loaded once per process


def test_make_study_refuses_another_config_naming_the_type():
    with pytest.raises(TypeError, match="^config must be an FCNConfig, got dict$"):
        make_study({"widths": (5,)})
