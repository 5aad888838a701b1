"""benchmarks/hypotheses_spectral.py (issue 24): one run against the same run written by hand, and
the script end to end at its smallest setting (it once failed on an import the experiments'
refactor had removed)."""

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def hyp(load_benchmark):
    return load_benchmark("hypotheses_spectral")


def test_a_run_equals_the_same_training_by_hand(hyp):
    import torch

    from conjugacy.experiments.spectral_dynamics import SpectralConfig, _tensors
    from conjugacy.spectral_dynamics import effective_rank
    from conjugacy.torch.training import endless_batches, seeded_mlp, sgd_step

    cfg = SpectralConfig(width=8, batch_size=100, data="digits", conditions=("true", "random"))
    run = hyp.train(cfg, "true", 0, epochs=2, max_epochs=5, eval_every=1, init_scale=0.5)
    # 1,438 training digits in batches of 100: 14 full batches per epoch
    assert (run["epochs"], run["steps"]) == (2, 28)
    assert [h["epoch"] for h in run["history"]] == [0, 1, 2]
    assert run["history"][0]["update_effective_rank"] == {
        "0.weight": None, "2.weight": None, "4.weight": None, "6.weight": None}

    t = _tensors(cfg, "true", 0)
    model = seeded_mlp(t["n_in"], 8, t["n_out"], 0)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.mul_(0.5)
    w0 = {n: p.detach().numpy().copy() for n, p in model.named_parameters() if p.ndim >= 2}
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    batches = endless_batches(len(t["y"]), 100, [0, 1])
    for _ in range(28):
        idx = next(batches)
        sgd_step(model, opt, t["x"][idx], t["y"][idx])
    final = run["final"]
    for n, p in model.named_parameters():
        if p.ndim < 2:
            continue
        w = p.detach().numpy()
        assert final["effective_rank"][n] == pytest.approx(float(effective_rank(w)), abs=1e-12)
        assert final["update_effective_rank"][n] == pytest.approx(
            float(effective_rank(w - w0[n])), abs=1e-12)
        assert final["relative_change"][n] == pytest.approx(
            float(np.linalg.norm(w - w0[n]) / np.linalg.norm(w0[n])), rel=1e-9)


def test_the_script_runs_at_its_smallest_setting(hyp, tmp_path, capsys):
    hyp.main([str(tmp_path), "--lr", "0.05", "--n-train", "130", "--seeds", "0",
              "--max-epochs", "1", "--eval-every", "1"])
    rows = json.loads((tmp_path / "summary.json").read_text())["rows"]
    assert len(rows) == 1
    row = rows[0]
    assert (row["lr"], row["n_train"], row["seed"], row["epochs"]) == (0.05, 130, 0, 1)
    # 130 images in batches of 125: one step per epoch; 1 epoch cannot fit random labels
    assert [r["steps"] for r in row["runs"]] == [1, 1] and row["random_fitted"] is False
    assert row["middle_layers"] == ["2.weight", "4.weight"]
    assert "lr 0.05 n_train 130: middle-layer effective rank of W" in capsys.readouterr().out
