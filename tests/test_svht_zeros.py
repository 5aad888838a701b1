"""SVHT on rank-deficient data (constant and duplicated channels): the threshold is read from
the numerically nonzero singular values, the same on every path (issue 20 review, defect 1)."""

from __future__ import annotations

import numpy as np
import pytest

from conjugacy import koopman_spectrum
from conjugacy.dmd import capped_svht, svht_rank
from conjugacy.spectrum import capped_svht_rank

PATHS = ("dense", "gram", "covariance", "subspace")


def _latent(seed: int, channels: int = 10, runs: int = 5, steps: int = 100) -> list[np.ndarray]:
    """A rank-4 linear latent system (two rotating pairs) seen through ``channels`` random
    channels with 5 % measurement noise."""
    rng = np.random.default_rng(seed)
    A = np.zeros((4, 4))
    for i, lam in enumerate((0.97 * np.exp(0.3j), 0.9 * np.exp(0.9j))):
        A[2 * i:2 * i + 2, 2 * i:2 * i + 2] = [[lam.real, -lam.imag], [lam.imag, lam.real]]
    C = rng.standard_normal((channels, 4))
    out = []
    for _ in range(runs):
        z = np.zeros((steps, 4))
        z[0] = rng.standard_normal(4)
        for t in range(1, steps):
            z[t] = A @ z[t - 1] + 0.05 * rng.standard_normal(4)
        y = z @ C.T
        out.append(y + 0.05 * y.std() * rng.standard_normal(y.shape))
    return out


def _rule_on_paths(runs: list[np.ndarray], delays: int) -> dict[str, tuple[int, dict]]:
    out = {}
    for path in PATHS:
        sp = koopman_spectrum(runs, delays=delays, rank="svht", path=path)
        assert sp.settings["path"] == path  # no silent fall-back to the dense path
        out[path] = (sp.rank, sp.settings["rank_rule"])
    return out


@pytest.mark.parametrize("delays", [0, 2])
def test_duplicated_channels_keep_the_rank_of_the_channels_once(delays):
    runs = _latent(0)
    once = _rule_on_paths(runs, delays)
    four = _rule_on_paths([np.concatenate([y] * 4, axis=1) for y in runs], delays)
    expected = {0: 4, 2: 10}[delays]
    for path in PATHS:
        assert once[path][0] == four[path][0] == expected
        # the same nonzero singular values times 2: the same rule, twice the threshold
        assert four[path][1]["threshold"] == pytest.approx(2 * once["dense"][1]["threshold"],
                                                           rel=1e-10)
        assert four[path][1]["n_nonzero"] == once[path][1]["n_nonzero"] == 10 * (delays + 1)
    assert "note" in four["dense"][1] and "note" not in once["dense"][1]


@pytest.mark.parametrize("delays", [0, 2])
def test_constant_channels_equal_one_constant_channel_of_their_norm(delays):
    runs = _latent(1)
    c = np.random.default_rng(2).standard_normal(30) * 10
    many = [np.concatenate([y, np.ones((len(y), 30)) * c], axis=1) for y in runs]
    one = [np.concatenate([y, np.full((len(y), 1), np.linalg.norm(c))], axis=1) for y in runs]
    a, b = _rule_on_paths(many, delays), _rule_on_paths(one, delays)
    tau = a["dense"][1]["threshold"]
    for path in PATHS:  # the same nonzero singular values: the same rank and threshold
        assert a[path][0] == b[path][0] == {0: 5, 2: 13}[delays]
        assert a[path][1]["threshold"] == pytest.approx(tau, rel=1e-10)
        assert b[path][1]["threshold"] == pytest.approx(tau, rel=1e-10)
        assert a[path][1]["n_nonzero"] == 10 * (delays + 1) + 1
    assert a["dense"][1]["n_singular_values"] == 40 * (delays + 1)
    # one constant channel: zero singular values only from its delay copies
    assert b["dense"][1]["n_singular_values"] - b["dense"][1]["n_nonzero"] == delays
    assert a["dense"][1]["note"].startswith(f"{30 * (delays + 1) - 1} of {40 * (delays + 1)} ")
    assert capped_svht_rank(many, cap=70, delays=delays) == a["dense"][0]


def test_svht_rank_record_of_exact_zeros():
    k, rec = svht_rank(np.array([10.0, 5.0, 1.0, 1.0, 0.9, 0.0, 0.0]), (7, 9))
    assert (k, rec["n_nonzero"], rec["median_singular_value"]) == (2, 5, 1.0)
    assert rec["beta"] == 5 / 9
    assert rec["note"].startswith("2 of 7 singular values are zero")
    k, rec = svht_rank(np.array([3.0, 1e-9, 0.0, 0.0]), (4, 6))  # one nonzero value: kept
    assert (k, rec["n_nonzero"], rec["noise_bulk"]) == (1, 1, False)
    k, rec = svht_rank(np.array([10.0, 5.0, 1.2, 1.1, 1.0, 0.8, 0.7]), (7, 9))
    assert (k, rec["n_nonzero"], rec["median_singular_value"], rec["beta"]) == (2, 7, 1.1, 7 / 9)
    assert "note" not in rec


@pytest.mark.parametrize("cap", [1, 2, 3, 5, 8, 12])
def test_capped_svht_with_zero_singular_values_equals_the_exact_rule(cap):
    # 12 noisy channels of which 3 carry a strong signal, 288 exact zero rows: the old bound
    # (the median over all 300 values) settled every cap from the top eigenvalues alone
    rng = np.random.default_rng(3)
    X = np.zeros((300, 600))
    X[:12] = rng.standard_normal((12, 600))
    X[:3] *= 20
    exact = svht_rank(np.linalg.svd(X, compute_uv=False), X.shape)[0]
    assert exact == 3
    assert capped_svht(X @ X.T, X.shape, cap)[0] == min(exact, cap)
    assert capped_svht(X.T @ X, X.shape, cap)[0] == min(exact, cap)


def test_count_above_is_the_inertia():
    from conjugacy.dmd import _count_above

    rng = np.random.default_rng(4)
    Q = np.linalg.qr(rng.standard_normal((40, 40)))[0]
    lam = np.concatenate([np.geomspace(1e3, 1e-3, 25), np.zeros(15)])  # 25 above, 15 zeros
    g = (Q * lam) @ Q.T
    assert _count_above(g, 1e-6, 40) == 25  # LDL^* inertia (g - shift I is indefinite)
    assert _count_above(g, 1e-6, 30) == 25 and _count_above(g, 1e-6, 20) == 20  # at most p
    assert _count_above(g, 2e-3, 40) == 23  # 1e3 ... 1e-3 in 25 steps: 23 above 2e-3
    full = (Q * np.geomspace(1e3, 1e-3, 40)) @ Q.T
    assert _count_above(full, 1e-6, 40) == 40  # Cholesky: every one above
    assert _count_above(full, 1e-2, 40) == 33  # 1e3 ... 1e-3 in 40 steps: 33 above 1e-2


def test_streamed_data_with_constant_channels_give_the_dense_threshold(tmp_path):
    runs = _latent(5, runs=3, steps=60)
    c = np.random.default_rng(6).standard_normal(1_990)
    x = np.stack([np.concatenate([y, np.ones((len(y), 1_990)) * c], axis=1) for y in runs])
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    for delays in (0, 2):
        streamed = koopman_spectrum(mapped, delays=delays, rank="svht")
        dense = koopman_spectrum(x, delays=delays, rank="svht", path="dense")
        assert streamed.settings["path"] == "gram (streamed)"
        rule, ref = streamed.settings["rank_rule"], dense.settings["rank_rule"]
        assert streamed.rank == dense.rank and rule["n_nonzero"] == ref["n_nonzero"]
        assert rule["threshold"] == pytest.approx(ref["threshold"], rel=1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_noiseless_low_rank_data_keep_every_mode_on_every_path(dtype):
    # exact rank 3 (no noise bulk among the nonzero singular values): the median of the 3
    # signal values would cut 2 of them; every nonzero one is kept, the same on every path
    rng = np.random.default_rng(7)
    z = rng.standard_normal((6, 1, 3)) * np.array([0.95, 0.8, 0.6]) ** np.arange(60)[:, None]
    x = (z @ rng.standard_normal((3, 40))).astype(dtype)
    for delays in (0, 3):
        got = {p: koopman_spectrum(x, delays=delays, rank="svht", path=p)
               for p in ("dense", "gram", "covariance")}
        rules = [sp.settings["rank_rule"] for sp in got.values()]
        assert [sp.rank for sp in got.values()] == [3, 3, 3]
        assert [(r["n_nonzero"], r["noise_bulk"]) for r in rules] == [(3, False)] * 3
        assert rules[0]["note"].endswith("no noise bulk among the 3 nonzero ones (fewer than "
                                         "half of them within the Marchenko-Pastur support "
                                         "around their median), so every one was kept")


def test_noise_bulk_on_hand_values():
    from conjugacy.dmd import _noise_bulk, marchenko_pastur_median

    scale = np.sqrt(marchenko_pastur_median(0.01))  # noise of median 1 at beta 0.01
    bulk = np.array([5.0, 1.08, 1.02, 1.0, 0.97, 0.93]) * scale
    assert _noise_bulk(bulk, 0.01)  # 5 of 6 within (1 -/+ 0.1) x (1 -/+ 0.1): noise
    assert not _noise_bulk(np.array([1.0, 0.8, 0.6]), 0.01)  # only the median itself
    assert not _noise_bulk(np.array([5.0, 3.0, 1.08, 1.0, 0.5]) * scale, 0.01)  # 2 of 5


def test_zero_singular_values_are_said_in_the_spectrum_notes():
    runs = _latent(3)
    padded = [np.concatenate([y, np.ones((len(y), 5))], axis=1) for y in runs]
    sp = koopman_spectrum(padded, delays=0, rank="svht")
    said = [n for n in sp.settings["notes"] if n.startswith("svht: ")]
    assert said == ["svht: " + sp.settings["rank_rule"]["note"]]
    assert not [n for n in koopman_spectrum(runs, delays=0, rank="svht").settings["notes"]
                if n.startswith("svht: ")]


def test_mostly_nonzero_values_are_thresholded_even_without_a_white_noise_bulk():
    """Issue 20 review, defect 1: one exact zero direction (a constant channel; softmax output
    layers conserve each hidden unit's column sum) switched SVHT to 'keep every nonzero value'
    on AR-like noise, which fails the bulk test: 37 of 37 kept. With most values nonzero the
    rule thresholds them as without the zero: the rank of the data alone plus the constant."""
    rng = np.random.default_rng(0)
    A = np.diag([0.95, 0.9, 0.8, 0.7])
    runs = []
    for _ in range(5):
        z = np.zeros((200, 4))
        z[0] = rng.standard_normal(4)
        for t in range(199):
            z[t + 1] = A @ z[t] + 0.1 * rng.standard_normal(4)
        runs.append(z)
    alone = koopman_spectrum(runs, delays=8, rank="svht")
    padded = [np.hstack([r, np.ones((200, 1))]) for r in runs]
    for path in PATHS:
        sp = koopman_spectrum(padded, delays=8, rank="svht", path=path)
        rule = sp.settings["rank_rule"]
        assert rule["n_nonzero"] == 37 and rule["noise_bulk"] is True
        assert sp.rank == alone.rank + 1 < 37
