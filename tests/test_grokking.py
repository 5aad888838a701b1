"""Tests of the transformer grokking experiment (conjugacy.experiments.grokking, plots.grokking).

The end-to-end tests use a tiny configuration (modulus 11, d_model 16, 10 steps, 2 seeds x 2
runs) with the real model class and training protocol, so the whole file runs in well under a
minute on one core.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conjugacy.analysis import Results, validate
from conjugacy.analysis.unit_circle import count_summary, unit_circle_counts
from conjugacy.data.modular import modular_addition
from conjugacy.experiments.grokking import (
    OBSERVED_PARAMETER,
    REGIMES,
    GrokkingConfig,
    OneLayerTransformer,
    TrainingProtocol,
    fit_shape,
    make_base_model,
    paper_claims,
    run,
)
from conjugacy.spectrum import Spectrum
from conjugacy.study import StudyReader
from conjugacy.torch import load_checkpoint
from conjugacy.torch.protocols import global_norm

TINY = dict(
    scale="custom", n_seeds=2, n_replicas=2, steps=10, s6=True, s6_steps=14, long_steps=20,
    long_eval_points=6, eval_every=3, modulus=11, d_model=16, n_heads=2, d_head=8, d_mlp=32,
    delays=2, rank=3, pca=3, n_permutations=99,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny tensors: thread hand-offs cost more than they save, on 2 shared cores by far.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Results, Path]:
    out = tmp_path_factory.mktemp("grokking")
    return run(GrokkingConfig(**TINY), out), out


# ----------------------------------------------------------------------------- the model
def test_paper_model_has_226816_parameters() -> None:
    model = OneLayerTransformer()
    # W_E 128x114 + W_pos 3x128 + W_Q/K/V 3x4x32x128 + W_O 128x128 + W_in 512x128 + b_in 512
    # + W_out 128x512 + b_out 128 + W_U 128x114
    assert sum(p.numel() for p in model.parameters()) == 226_816
    assert dict(model.named_parameters())[OBSERVED_PARAMETER].shape == (128, 512)
    assert all(p.dtype == torch.float64 for p in model.parameters())


def test_initialization_scales() -> None:
    model = OneLayerTransformer(generator=torch.Generator().manual_seed(0))
    params = dict(model.named_parameters())
    assert float(params["mlp.b_in"].detach().abs().max()) == 0.0
    assert float(params["mlp.b_out"].detach().abs().max()) == 0.0
    # Gaussian / sqrt(128); unembedding / sqrt(114): sample std within a few percent.
    assert float(params["mlp.W_out"].detach().std()) == pytest.approx(1 / math.sqrt(128), rel=0.02)
    assert float(params["attn.W_Q"].detach().std()) == pytest.approx(1 / math.sqrt(128), rel=0.03)
    assert float(params["unembed.W_U"].detach().std()) == pytest.approx(1 / math.sqrt(114), rel=0.03)
    again = OneLayerTransformer(generator=torch.Generator().manual_seed(0))
    for (_, a), (_, b) in zip(model.named_parameters(), again.named_parameters()):
        assert torch.equal(a, b)


def _reference_logits(model: OneLayerTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """The reference (Nanda / Omnigrok) forward: all positions, causal mask, then the last."""
    p = dict(model.named_parameters())
    x = torch.einsum("dbp -> bpd", p["embed.W_E"][:, tokens]) + p["pos_embed.W_pos"][:3]
    k = torch.einsum("ihd,bpd->biph", p["attn.W_K"], x)
    q = torch.einsum("ihd,bpd->biph", p["attn.W_Q"], x)
    v = torch.einsum("ihd,bpd->biph", p["attn.W_V"], x)
    scores = torch.einsum("biph,biqh->biqp", k, q)
    mask = torch.tril(torch.ones(3, 3, dtype=x.dtype))
    scores = torch.tril(scores) - 1e10 * (1 - mask)
    attn = F.softmax(scores / math.sqrt(p["attn.W_K"].shape[1]), dim=-1)
    z = torch.einsum("biph,biqp->biqh", v, attn)
    z = z.permute(0, 2, 1, 3).reshape(x.shape[0], 3, -1)
    x = x + torch.einsum("df,bqf->bqd", p["attn.W_O"], z)
    h = F.relu(torch.einsum("md,bpd->bpm", p["mlp.W_in"], x) + p["mlp.b_in"])
    x = x + torch.einsum("dm,bpm->bpd", p["mlp.W_out"], h) + p["mlp.b_out"]
    return (x @ p["unembed.W_U"])[:, -1]


def test_forward_and_gradients_match_the_reference_computation() -> None:
    data = modular_addition(modulus=13, seed=0)
    model = OneLayerTransformer(14, 24, 3, 8, 40, generator=torch.Generator().manual_seed(1))
    x, y = torch.tensor(data.train_inputs), torch.tensor(data.train_labels)
    ours, ref = model(x), _reference_logits(model, x)
    np.testing.assert_allclose(ours.detach().numpy(), ref.detach().numpy(), rtol=1e-12,
                               atol=1e-12)
    g_ours = torch.autograd.grad(F.cross_entropy(ours, y), list(model.parameters()))
    g_ref = torch.autograd.grad(F.cross_entropy(ref, y), list(model.parameters()))
    for a, b in zip(g_ours, g_ref):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-13)


def test_model_rejects_bad_sizes_and_tokens() -> None:
    with pytest.raises(ValueError, match="d_model"):
        OneLayerTransformer(d_model=0)
    with pytest.raises(ValueError, match="tokens"):
        OneLayerTransformer(12, 8, 1, 8, 8)(torch.zeros(4, 5, dtype=torch.long))


def test_constrained_base_is_alpha_times_unconstrained_base() -> None:
    cfg = GrokkingConfig(**TINY)
    a = make_base_model(cfg, 3, "unconstrained")
    b = make_base_model(cfg, 3, "constrained")
    for (_, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        torch.testing.assert_close(pb, cfg.alpha * pa, rtol=0, atol=0)


def test_norm_projection_restores_the_initial_norm() -> None:
    cfg = GrokkingConfig(**TINY)
    data = modular_addition(cfg.modulus, cfg.train_fraction, 0)
    model = make_base_model(cfg, 0, "constrained")
    protocol = TrainingProtocol(cfg, "constrained", data, lambda t: True)
    opt = protocol.make_optimizer(model.parameters())
    initial = float(global_norm(model))
    assert protocol.initial_norm(model) == initial
    x, y = protocol.batches()[0]
    for _ in range(3):
        opt.zero_grad()
        protocol.loss_fn(model(x), y).backward()
        opt.step()
        with torch.no_grad():
            protocol.after_step(model)
        assert abs(float(global_norm(model)) - initial) <= 1e-12 * initial
    assert opt.param_groups[0]["weight_decay"] == 0.0
    unc = TrainingProtocol(cfg, "unconstrained", data, lambda t: True)
    assert unc.make_optimizer(make_base_model(cfg, 0, "unconstrained").parameters()
                              ).param_groups[0]["weight_decay"] == 1.0


def test_protocol_evaluates_at_the_optimizer_step_it_reads() -> None:
    # the step comes from AdamW's state (so a resumed run keeps its schedule); accuracy and loss
    # are those of conjugacy.torch.training.evaluate on the full train and test sets
    from conjugacy.torch.training import evaluate

    cfg = GrokkingConfig(**TINY)
    data = modular_addition(cfg.modulus, cfg.train_fraction, 0)
    model = make_base_model(cfg, 0, "unconstrained")
    protocol = TrainingProtocol(cfg, "unconstrained", data, lambda t: t % 2 == 0)
    opt = protocol.make_optimizer(model.parameters())
    x, y = protocol.batches()[0]
    seen = []
    for step in range(4):
        out = protocol.evaluate(model)
        seen.append(sorted(out))
        assert protocol.step(model) == step
        assert out["weight_norm"] == float(global_norm(model))
        if step % 2 == 0:
            assert (out["train_loss"], out["train_accuracy"]) == evaluate(model, x, y)
            assert (out["test_loss"], out["test_accuracy"]) == evaluate(model, *protocol.test)
        opt.zero_grad()
        protocol.loss_fn(model(x), y).backward()
        opt.step()
    full = ["test_accuracy", "test_loss", "train_accuracy", "train_loss", "weight_norm"]
    assert seen == [full, ["weight_norm"], full, ["weight_norm"]]
    assert protocol.test[0].shape[0] == len(data.test_labels)
    with pytest.raises(RuntimeError, match="make_optimizer"):
        protocol.evaluate(make_base_model(cfg, 1, "unconstrained"))


# ----------------------------------------------------------------------------- configuration
def test_presets() -> None:
    quick, paper = GrokkingConfig.quick(), GrokkingConfig.paper()
    assert (quick.n_seeds, quick.n_replicas, quick.steps) == (4, 10, 100)
    # the paper's 10 runs per seed: 10 x (100 - 32) = 680 snapshot pairs > 10 x 33 = 330
    assert fit_shape(quick) == {"observables": 330, "snapshot_pairs": {"fig5": 680},
                                "determined": {"fig5": True}}
    assert fit_shape(paper)["snapshot_pairs"] == {"fig5": 680, "s6": 1680}
    assert fit_shape(GrokkingConfig.quick(n_replicas=2))["determined"] == {"fig5": False}
    assert quick.unit_circle_tol == 0.002  # resolves the paper's 1.004-1.011 vs 0.998-1.000
    assert quick.unit_circle_angle == 0.01  # the oscillatory pair, not the near-real clusters
    assert (paper.n_seeds, paper.n_replicas, paper.steps, paper.s6_steps) == (20, 10, 100, 200)
    assert paper.s6 and paper.eval_every == 1
    assert (paper.modulus, paper.train_fraction, paper.eps, paper.alpha) == (113, 0.3, 1e-3, 0.8)
    assert (paper.delays, paper.rank, paper.pca, paper.weight_decay) == (32, 10, 10, 1.0)
    assert GrokkingConfig.from_scale("paper", n_seeds=3).n_seeds == 3
    with pytest.raises(ValueError, match="scale"):
        GrokkingConfig.from_scale("huge")


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"n_seeds": 1}, ValueError, "n_seeds"),
        ({"n_replicas": 0}, ValueError, "n_replicas"),
        ({"steps": 20, "delays": 32}, ValueError, "delays"),
        ({"noise": "cauchy"}, ValueError, "noise"),
        ({"eps": -1.0}, ValueError, "eps"),
        ({"train_fraction": 1.5}, ValueError, "train_fraction"),
        ({"s6": True, "s6_steps": 50}, ValueError, "s6_steps"),
        ({"steps": 2.5}, TypeError, "steps"),
        ({"betas": (0.9,)}, ValueError, "betas"),
    ],
)
def test_bad_config_is_rejected(overrides: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        GrokkingConfig(**overrides)


def test_fit_shape_is_checked_before_training(tmp_path: Path) -> None:
    """rank > snapshot pairs (n_replicas x (steps - delays)) is refused by the config, naming the
    options to change, so the CLI stops with exit 2 before any job is trained."""
    from typer.testing import CliRunner

    from conjugacy.cli import app

    with pytest.raises(ValueError) as err:
        GrokkingConfig(n_seeds=2, n_replicas=1, steps=40)
    assert str(err.value) == (
        "rank=10 needs at least 10 snapshot pairs per spectrum, but the fig5 window has "
        "n_replicas=1 x (steps=40 - delays=32) = 8; give more --replicas or --steps (or, in "
        "Python, a lower rank or delays)")
    assert fit_shape(GrokkingConfig(n_seeds=2, n_replicas=1, steps=42))["snapshot_pairs"] == {
        "fig5": 10}  # exactly rank pairs: allowed
    with pytest.raises(ValueError, match=r"rank=10 exceeds the 9 observables \(pca=3 x"):
        GrokkingConfig(n_seeds=2, pca=3, delays=2)
    out = tmp_path / "g"
    result = CliRunner().invoke(app, ["reproduce", "grokking", "--steps", "40", "--seeds", "2",
                                      "--replicas", "1", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "give more --replicas or --steps" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_unit_circle_counts() -> None:
    # a near-real cluster (1.03 at 0.001 rad) and a negative real eigenvalue are not oscillatory
    near_real = 1.03 * np.exp(0.001j)
    eig = np.array([1.05 + 0.2j, 1.05 - 0.2j, 0.999, 0.6 + 0.8j, 0.6 - 0.8j, 0.3, -0.2j,
                    near_real, near_real.conjugate(), -0.5 + 1e-4j])
    c = unit_circle_counts(eig, 0.01)
    assert (c.outside, c.on, c.inside) == (4, 3, 3)
    assert (c.oscillatory_outside, c.oscillatory_on, c.oscillatory_inside) == (2, 2, 1)
    assert c.max_modulus == pytest.approx(abs(1.05 + 0.2j), rel=1e-15)
    assert c.max_oscillatory_modulus == pytest.approx(abs(1.05 + 0.2j), rel=1e-15)
    assert c.min_angle == 0.01
    # the angle threshold decides: 0.001 rad counts once min_angle is below it
    assert unit_circle_counts(eig, 0.01, min_angle=0.0005).oscillatory_outside == 4
    assert unit_circle_counts(np.array([0.5, 1.2]), 0.01).max_oscillatory_modulus is None
    with pytest.raises(ValueError, match="min_angle"):
        unit_circle_counts(eig, 0.01, min_angle=2.0)
    with pytest.raises(ValueError, match="tol"):
        unit_circle_counts(eig, -0.1)
    with pytest.raises(ValueError, match=r"^eigenvalues contains NaN at index \(0,\); all "
                                         r"values must be finite \(4 non-finite"):
        unit_circle_counts([np.nan] * 4, 0.002)  # was counted 4 times "on" the circle
    # no eigenvalue (a filter kept no eigenpair) is counted: all 0, no largest modulus
    none = unit_circle_counts(np.array([], dtype=complex), 0.002)
    assert (none.outside, none.on, none.inside, none.oscillatory_outside, none.oscillatory_on,
            none.oscillatory_inside, none.max_modulus, none.max_oscillatory_modulus) == (
        0, 0, 0, 0, 0, 0, None, None)
    with pytest.raises(ValueError, match=r"^eigenvalues must be 1-D, got a 2-D array"):
        unit_circle_counts(eig.reshape(2, 5), 0.01)  # was flattened and counted


REFERENCE = Path(__file__).parent / "data" / "reference_grokking"


def _reference_eigs(regime: str) -> np.ndarray:
    name = {"unconstrained": "grokking_mod_addition_eigs.npy",
            "constrained": "grokking_mod_addition_constrained_alpha_0.8_eigs.npy"}[regime]
    return np.load(REFERENCE / name, allow_pickle=False)


def test_unit_circle_rule_on_the_references_saved_eigenvalues() -> None:
    # The paper's own 20 + 20 spectra (tests/data/reference_grokking/README.md): with the angle
    # rule, every unconstrained seed has its oscillatory pair outside the circle and every
    # constrained seed has it on the circle, none outside.
    unc = [unit_circle_counts(row, 0.002) for row in _reference_eigs("unconstrained")]
    con = [unit_circle_counts(row, 0.002) for row in _reference_eigs("constrained")]
    assert len(unc) == len(con) == 20
    assert sum(c.oscillatory_outside == 2 for c in unc) == 20
    assert sum(c.oscillatory_on >= 2 and c.oscillatory_outside == 0 for c in con) == 20
    top_unc = [c.max_oscillatory_modulus for c in unc]
    top_con = [c.max_oscillatory_modulus for c in con]
    assert (min(top_unc), max(top_unc)) == (pytest.approx(1.003599, abs=1e-6),
                                            pytest.approx(1.010601, abs=1e-6))
    assert (min(top_con), max(top_con)) == (pytest.approx(0.998781, abs=1e-6),
                                            pytest.approx(1.000313, abs=1e-6))
    # Im != 0 alone (min_angle 0) calls the near-real clusters of every constrained seed
    # (|lambda| ~1.009 at <= 0.0004 rad) a complex pair outside: the rule this replaces.
    naive = [unit_circle_counts(row, 0.002, min_angle=0.0) for row in _reference_eigs("constrained")]
    assert sum(c.oscillatory_outside > 0 for c in naive) == 20
    summary = {"unit_circle": {"filtered": {"unconstrained": count_summary(unc),
                                            "constrained": count_summary(con)}}}
    claims = paper_claims({"sections": summary})
    assert [c.holds for c in claims[1:]] == [True, True]
    assert "20 of 20 seeds" in claims[1].evidence and "20 of 20 seeds" in claims[2].evidence


# ----------------------------------------------------------------------------- end to end
def test_results_structure_and_files(tiny_run: tuple[Results, Path]) -> None:
    res, out = tiny_run
    cfg = GrokkingConfig(**TINY)
    assert isinstance(res, Results)
    assert res["seeds"] == {c: [0, 1] for c in ("unconstrained", "constrained", "constrained_s6")}
    assert set(res.spectra) == {"unconstrained", "constrained", "constrained_s6"}
    for specs in res.spectra.values():
        assert len(specs) == 2 and all(isinstance(s, Spectrum) for s in specs)
        assert all(len(s.eigenvalues) == cfg.rank for s in specs)
    cmp = res.comparison
    assert cmp["pairs"] == {"fig5": ["unconstrained", "constrained"],
                            "s6": ["unconstrained", "constrained_s6"]}
    for which in ("all", "filtered"):
        if cmp[which] is None:
            assert which == "filtered" and cmp["verdict_uses"] == "all"
            continue
        assert set(cmp[which]["permutation_tests"]) == {"fig5", "s6"}
        for t in cmp[which]["permutation_tests"].values():
            assert 0 < t["pvalue"] <= 1 and t["exact"] and t["n_permutations"] == 6
    # 2 seeds per regime: the exact test's smallest p is 1/3, so no verdict can reject
    assert set(res.verdicts) == {"fig5", "s6"}
    for v in cmp["verdicts"].values():
        assert v["min_pvalue"] == pytest.approx(1 / 3) and v["verdict"] != "not conjugate"
    between = np.array(cmp["all"]["distances"]["fig5"]["per_seed"])
    assert between.shape == (2,) and np.all(between >= 0)
    assert np.array(cmp["all"]["between_seeds"]["unconstrained"]["matrix"]).shape == (2, 2)
    assert set(res["figures"]) == {f"{k}.{e}" for k in ("fig5", "figS6", "fig5AB")
                                   for e in ("png", "svg")}
    for name in res["figures"]:
        assert (out / name).stat().st_size > 1000
    doc = json.loads((out / "results.json").read_text())
    validate(doc)
    assert doc["schema"] == "conjugacy.results/2" and doc["experiment"] == "grokking"
    assert doc["observables"] == ["mlp.W_out"]
    assert doc["settings"] == {"delays": cfg.delays, "rank": cfg.rank, "pca": cfg.pca,
                               "pca_center": True}
    assert doc["statistics"] == {"seed": cfg.seed, "n_permutations": cfg.n_permutations}
    assert doc["fit_shape"] == fit_shape(cfg)
    assert len(doc["spectra"]["constrained"]) == 2
    assert len(doc["spectra"]["unconstrained"][0]["eigenvalues"]) == cfg.rank
    circle = doc["sections"]["unit_circle"]
    assert set(circle["all"]["constrained"]["total"]) >= {"outside", "on", "inside"}
    total = circle["all"]["unconstrained"]["total"]
    assert total["outside"] + total["on"] + total["inside"] == 2 * cfg.rank
    for s, counts in zip(res.spectra["constrained_s6"], circle["all"]["constrained_s6"]["per_seed"]):
        assert counts["max_modulus"] == pytest.approx(float(np.abs(s.eigenvalues).max()))
    assert doc["comparison"] == json.loads(json.dumps(cmp))
    assert doc["comparison"]["all"]["distances"]["fig5"]["per_seed"] == (
        pytest.approx(between.tolist()))
    assert doc["claims"] == [c.to_dict() for c in paper_claims(doc)]
    assert [c["holds"] for c in doc["claims"][:2]] == [None, None]  # undecided with 2 seeds
    assert doc["provenance"]["study"] == "grokking"
    assert {r["condition"] for r in doc["runs"]} == set(res.spectra) and len(doc["runs"]) == 12
    # curves: mean over runs per record (the first record left out), NaN off eval steps
    loss = doc["curves"]["test_accuracy"]["constrained_s6"]
    assert loss["n_runs"] == 4 and loss["steps"] == list(range(1, cfg.s6_steps + 1))
    evaluated = [m is not None for m in loss["mean"]]
    assert [i + 1 for i, e in enumerate(evaluated) if e] == [3, 6, 9, 10, 12, 14]  # 10: fig. 5's end
    assert doc["loss"] == doc["curves"]["train_loss"]
    assert len(doc["curves"]["weight_norm"]["constrained"]["mean"]) == cfg.steps
    long = doc["long_curves"]["unconstrained"]
    assert long["step"][0] == 0 and long["step"][-1] == cfg.long_steps
    assert np.all((np.array(long["test_accuracy"]) >= 0) & (np.array(long["test_accuracy"]) <= 1))
    with StudyReader.open(out) as store:
        acc = store.scalars("constrained-seed000_0", "test_accuracy")
    assert acc.shape == (cfg.s6_steps + 1,)
    assert np.isfinite(acc)[[0, 3, 6, 9, 10, 12, 14]].all()
    assert not np.isfinite(acc)[[1, 2, 4, 11, 13]].any()


def test_claims_are_decided_on_the_numbers() -> None:
    tol = 0.002
    content = {
        "comparison": {"verdict_uses": "filtered", "verdicts": {"fig5": {
            "verdict": "not conjugate", "reason": "p = 0.03 < alpha = 0.05", "pvalue": 0.03,
            "uses": "filtered"}}},
        "sections": {"unit_circle": {"filtered": {
            "unconstrained": count_summary([unit_circle_counts([1.01 + 0.1j, 1.01 - 0.1j, 0.5], tol)]),
            "constrained": count_summary([unit_circle_counts([0.995 + 0.1j, 0.995 - 0.1j, 0.5], tol)]),
        }}},
    }
    claims = paper_claims(content)
    assert [c.holds for c in claims] == [True, True, True]
    assert "p = 0.03" in claims[0].evidence and "1 of 1 seeds" in claims[1].evidence
    content["comparison"]["verdicts"]["fig5"]["verdict"] = "conjugate"
    content["comparison"]["verdicts"]["s6"] = {"verdict": "undecided", "reason": "add seeds",
                                               "pvalue": 0.1, "uses": "filtered"}
    # the constrained pair moves outside the circle: the unit-circle contrast fails
    content["sections"]["unit_circle"]["filtered"]["constrained"] = count_summary(
        [unit_circle_counts([1.01 + 0.1j, 1.01 - 0.1j], tol)])
    assert [c.holds for c in paper_claims(content)] == [False, None, True, False]
    assert paper_claims({})[0].holds is None


def test_one_layer_transformer_import_paths() -> None:
    from conjugacy.torch.models import OneLayerTransformer as FromModels

    assert FromModels is OneLayerTransformer


def test_spectra_are_fitted_on_each_regimes_own_snapshots(
    tiny_run: tuple[Results, Path],
) -> None:
    # The reference code fitted the constrained spectrum with X of the unconstrained run.
    from conjugacy import koopman_spectrum

    res, out = tiny_run
    cfg = GrokkingConfig(**TINY)
    with StudyReader.open(out) as store:
        traj = store.read(OBSERVED_PARAMETER, runs=["constrained-seed001_0", "constrained-seed001_1"],
                          steps=slice(0, cfg.steps + 1))
    spec = koopman_spectrum(traj, delays=cfg.delays, rank=cfg.rank, pca=cfg.pca)
    np.testing.assert_allclose(spec.eigenvalues, res.spectra["constrained"][1].eigenvalues,
                               atol=1e-12)


def test_constrained_norm_is_constant_after_every_step(
    tiny_run: tuple[Results, Path],
) -> None:
    res, out = tiny_run
    with StudyReader.open(out) as store:
        for run_name in [r for r in store.runs() if r.startswith("constrained")]:
            norms = store.scalars(run_name, "weight_norm")
            assert len(norms) == TINY["s6_steps"] + 1
            np.testing.assert_allclose(norms, norms[0], rtol=1e-9, atol=0)
        free = store.scalars("unconstrained-seed000_0", "weight_norm")
        assert abs(free[-1] - free[0]) > 1e-6 * free[0]  # weight decay changes it


def test_replicas_differ_from_the_base_by_the_perturbation(
    tiny_run: tuple[Results, Path],
) -> None:
    res, out = tiny_run
    eps = GrokkingConfig(**TINY).eps
    with StudyReader.open(out) as store:
        for regime in ("unconstrained", "constrained"):
            w0 = store.read(OBSERVED_PARAMETER, runs=[f"{regime}-seed000_0",
                                                     f"{regime}-seed000_1"], steps=slice(0, 1))
            ratio = w0[1, 0] / w0[0, 0] - 1
            assert np.all(np.abs(ratio) <= eps * (1 + 1e-9))
            assert np.abs(ratio).max() > 0.5 * eps  # uniform noise reaches near eps
            assert abs(ratio.mean()) < 0.2 * eps
    base = make_base_model(GrokkingConfig(**TINY), 0, "constrained")
    with StudyReader.open(out) as store:
        stored = store.read(OBSERVED_PARAMETER, runs="constrained-seed000_0", steps=slice(0, 1))
    np.testing.assert_array_equal(
        stored[0, 0], dict(base.named_parameters())[OBSERVED_PARAMETER].detach().numpy().ravel())


def test_deterministic_under_a_seed(tiny_run: tuple[Results, Path],
                                    tmp_path: Path) -> None:
    res, out = tiny_run
    cfg = GrokkingConfig(**{**TINY, "s6": False, "long_steps": None})
    again = run(cfg, tmp_path)
    for regime in ("unconstrained", "constrained"):
        for a, b in zip(res.spectra[regime], again.spectra[regime]):
            np.testing.assert_array_equal(a.eigenvalues, b.eigenvalues)
    with StudyReader.open(out) as s1, StudyReader.open(tmp_path) as s2:
        name = "unconstrained-seed001_1"
        np.testing.assert_array_equal(s1.read(OBSERVED_PARAMETER, runs=name),
                                      s2.read(OBSERVED_PARAMETER, runs=name))
        np.testing.assert_array_equal(s1.scalars(name, "test_loss"),
                                      s2.scalars(name, "test_loss"))


def test_resume_skips_finished_runs_and_refuses_other_settings(
    tiny_run: tuple[Results, Path],
) -> None:
    res, out = tiny_run
    again = run(GrokkingConfig(**TINY), out)  # everything is in the store: analysis only
    assert again.comparison["verdicts"] == res.comparison["verdicts"]
    assert again.comparison["all"] == res.comparison["all"]
    assert again["claims"] == res["claims"]
    assert again["training"]["trained"] == [] and len(again["training"]["skipped"]) == 6
    with pytest.raises(ValueError, match="other settings"):
        run(GrokkingConfig(**{**TINY, "lr": 2e-3}), out)


def test_s6_extends_a_finished_quick_run_in_the_same_folder(
    tiny_run: tuple[Results, Path], tmp_path: Path,
) -> None:
    """A quick run, then --s6 into the same folder: the constrained runs are extended from the
    checkpoint of their last step (not skipped, not refused, nothing repeated) and equal the runs
    of an --s6 run from scratch (``tiny_run``) bit for bit, weights and scalars; another S6
    window is still refused."""
    res, scratch = tiny_run
    quick = {**TINY, "s6": False, "long_steps": None}
    run(GrokkingConfig(**quick), tmp_path)
    ck = tmp_path / "checkpoints" / "constrained-seed000" / "constrained-seed000_1.pt"
    assert load_checkpoint(ck)["step"] == TINY["steps"]  # written when the run closed
    with pytest.raises(ValueError, match=r"other settings \(s6_steps: 14 there, 16 now\)"):
        run(GrokkingConfig(**{**quick, "s6": True, "s6_steps": 16}), tmp_path)
    again = run(GrokkingConfig(**{**quick, "s6": True}), tmp_path)
    assert again["training"]["trained"] == ["constrained-seed000", "constrained-seed001"]
    with StudyReader.open(tmp_path) as a, StudyReader.open(scratch) as b:
        for name in [f"{r}-seed00{s}_{i}" for r in REGIMES for s in (0, 1) for i in (0, 1)]:
            np.testing.assert_array_equal(a.steps(name), b.steps(name))
            np.testing.assert_array_equal(a.read(OBSERVED_PARAMETER, runs=name),
                                          b.read(OBSERVED_PARAMETER, runs=name))
            scalars = a.run_info(name)["scalars"]
            assert scalars == b.run_info(name)["scalars"] and "test_loss" in scalars
            for scalar in scalars:
                np.testing.assert_array_equal(a.scalars(name, scalar), b.scalars(name, scalar))
            assert a.run_info(name)["finished"]
            assert a.metadata(name) == b.metadata(name)  # n_steps: the S6 window's
    for s6_a, s6_b in zip(again.spectra["constrained_s6"], res.spectra["constrained_s6"]):
        np.testing.assert_array_equal(s6_a.eigenvalues, s6_b.eigenvalues)


def test_run_rejects_a_non_config(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="GrokkingConfig"):
        run({"n_seeds": 2}, tmp_path)  # type: ignore[arg-type]


@pytest.mark.slow
def test_quick_scale_runs(tmp_path: Path) -> None:
    res = run(GrokkingConfig.quick(), tmp_path)
    assert len(res.spectra["unconstrained"]) == 4
    validate(json.loads((tmp_path / "results.json").read_text()))


@pytest.mark.parametrize(("args", "message"), [
    (["--eval-every", "0"], "argument --eval-every: must be >= 1, got 0"),
    (["--train-fraction", "1.5"], "argument --train-fraction: train_fraction must be in (0, 1)"),
    (["--max-steps", "-3"], "argument --max-steps: must be >= 1, got -3"),
])
def test_onset_benchmark_refuses_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture,
                                             args: list[str], message: str) -> None:
    """benchmarks/grokking_onset.py: a usage error (exit 2) before any training, no traceback."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "grokking_onset.py"
    spec = importlib.util.spec_from_file_location("grokking_onset", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exit_:
        module.main([str(tmp_path / "o"), *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
