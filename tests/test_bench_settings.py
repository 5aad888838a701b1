"""benchmarks/bench_settings.py's paired comparison of rules over seeds and
bench_settings_mechanism.py's matching of fitted to true eigenvalues."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
bench = pytest.importorskip("bench_settings")
mechanism = pytest.importorskip("bench_settings_mechanism")

# 3 conditions x 4 seeds, one recording each, in the benchmark's order (condition-major).
COND = [c for c in "abc" for _ in range(4)]
SEED = [s for _ in "abc" for s in range(4)]


def _separating(scale: float = 1.0) -> np.ndarray:
    """W1 1 between recordings of one condition, 3 between conditions, 0 on the diagonal."""
    same = np.equal.outer(COND, COND)
    return np.where(same, 1.0, 3.0) * scale * (1 - np.eye(len(COND)))


def test_pair_auroc_skips_pairs_of_one_seed():
    D = _separating()
    # a pair of one seed across conditions made "closer" than every same-condition pair: were it
    # counted as a different pair, the AUROC would drop below 1.
    D[0, 4] = D[4, 0] = 0.5
    assert bench._pair_auroc(D, COND, SEED, range(len(COND))) == 1.0


def test_paired_difference_exact_values():
    good, inverted = _separating(), _separating()
    same = np.equal.outer(COND, COND)
    inverted[~same & ~np.eye(len(COND), dtype=bool)] = 0.5  # different pairs below same pairs
    r = bench.paired_difference(good, inverted, COND, SEED, n_boot=200)
    assert r["diff"] == 1.0  # 1 - 0
    assert (r["boot_lo"], r["boot_hi"], r["p_boot"]) == (1.0, 1.0, 0.0)
    assert r["jack_se"] == 0.0 and r["n_seeds"] == 4


def test_paired_difference_uses_the_same_resamples_for_both_rules():
    # a rule against a rescaled copy of itself (same ranking, same AUROC on any resample): only
    # identical seed resamples for both give a difference of exactly 0 on every resample.
    rng = np.random.default_rng(3)
    noisy = _separating() + rng.uniform(0, 2.5, (12, 12))
    noisy = np.triu(noisy, 1) + np.triu(noisy, 1).T
    r = bench.paired_difference(noisy, 2 * noisy, COND, SEED, n_boot=200)
    assert 0.5 < bench._pair_auroc(noisy, COND, SEED, range(12)) < 1.0
    assert (r["diff"], r["boot_lo"], r["boot_hi"], r["jack_se"]) == (0.0, 0.0, 0.0, 0.0)
    assert r["p_boot"] == 1.0


def test_select_rules_keeps_the_default_last_and_refuses_unknown_names():
    import argparse

    parser = argparse.ArgumentParser()
    chosen = bench._select_rules(["paper (8, 10)"], parser)
    assert list(chosen) == ["paper (8, 10)", list(bench.RULES)[-1]]
    with pytest.raises(SystemExit) as err:
        bench._select_rules(["no such rule"], parser)
    assert err.value.code == 2


def test_matched_pairs_each_true_eigenvalue_with_its_nearest_fit():
    fitted = np.array([0.52, 0.0 + 0.1j, 0.91, -0.3])
    truth = np.array([0.9, 0.5])
    got, partners, rest = mechanism._matched(fitted, truth)
    order = np.argsort(partners.real)
    np.testing.assert_array_equal(partners[order], [0.5, 0.9])
    np.testing.assert_array_equal(got[order], [0.52, 0.91])
    assert sorted(rest.tolist(), key=abs) == [0.1j, -0.3]
    assert mechanism._error(fitted, truth) == pytest.approx(0.015, abs=1e-12)  # (0.02 + 0.01) / 2


# ----- bench_first_hour.py: the seed offset (held-out first-hour seeds) ---------------------------
first_hour = pytest.importorskip("bench_first_hour")


def test_warmup_factor_is_linear_over_the_warmup_then_one():
    assert first_hour.WARMUP == 50
    assert [first_hour.warmup_factor(s) for s in (0, 24, 48, 49, 300)] == [0.02, 0.5, 0.98, 1.0,
                                                                           1.0]


@pytest.mark.parametrize("first_seed, n_seeds", [(-1, 4), (4, 1)])
def test_record_study_refuses_bad_seed_ranges(tmp_path, first_seed, n_seeds):
    with pytest.raises(ValueError, match="n_seeds >= 2"):
        first_hour.record_study(tmp_path / "s.zarr", first_seed, n_seeds)
    assert not (tmp_path / "s.zarr").exists()


def test_record_study_seed_offset_records_the_same_seed_identically(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from conjugacy.store import TrajectoryStore

    monkeypatch.setattr(first_hour, "N_STEPS", 3)
    monkeypatch.setattr(first_hour, "N_REPLICAS", 2)
    first_hour.record_study(tmp_path / "a.zarr", first_seed=3, n_seeds=2)
    first_hour.record_study(tmp_path / "b.zarr", first_seed=4, n_seeds=2)
    with TrajectoryStore.open(tmp_path / "a.zarr", "r") as a, \
            TrajectoryStore.open(tmp_path / "b.zarr", "r") as b:
        assert sorted({a.run_info(r)["metadata"]["seed"] for r in a.runs()}) == [3, 4]
        assert sorted({b.run_info(r)["metadata"]["seed"] for r in b.runs()}) == [4, 5]
        run = "sgd_momentum_warmup_s4_r1"
        np.testing.assert_array_equal(a.read(runs=[run]), b.read(runs=[run]))
        assert a.read(runs=[run]).shape == (1, 4, 1418)  # steps 0-3, every parameter
        assert not np.array_equal(b.read(runs=[run]), b.read(runs=["sgd_momentum_warmup_s5_r1"]))
        sched = b.run_info(run)["metadata"]["scheduler"]
        assert (sched["class"], sched["lr_lambdas"]) == ("LambdaLR", ["warmup_factor"])
        assert "scheduler" not in b.run_info("adam_s4_r0")["metadata"]
    recs, cond, seed = bench.first_hour(tmp_path / "b.zarr", n_seeds=1)
    assert (cond, seed) == (["adam", "sgd_momentum", "sgd_momentum_warmup"], [4, 4, 4])
    assert recs[2].x.shape == (2, 4, 1418)  # the two replicas of one (condition, seed) pooled
    with TrajectoryStore.open(tmp_path / "b.zarr", "r") as b:
        np.testing.assert_array_equal(recs[2].x[1], b.read(runs=[run])[0])
    assert bench.first_hour(tmp_path / "b.zarr")[2] == [4, 5] * 3
