"""Two-branch (stochastic ResDMD) residuals: values, the filter, the notes, the errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from conjugacy import koopman_spectrum
from conjugacy.compare import wasserstein
from conjugacy.observables import delay_embed
from conjugacy.residuals import BRANCH_FILTER, two_branch_residuals
from conjugacy.spectrum import Spectrum

TRUE = np.array([0.95 * np.exp(0.3j), 0.95 * np.exp(-0.3j), 0.85 * np.exp(0.9j),
                 0.85 * np.exp(-0.9j), 0.7, 0.5])


def noisy_system(sigma: float, seed: int = 0, n_traj: int = 10, steps: int = 100,
                 n_obs: int = 30, meas: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """A 6-eigenvalue linear system (TRUE) with process noise ``sigma``, seen through ``n_obs``
    random channels with ``meas`` relative measurement noise, and a second independent next state
    of every step (the branch)."""
    rng = np.random.default_rng(seed)

    def rot(lam: complex) -> np.ndarray:
        c, s = np.cos(np.angle(lam)), np.sin(np.angle(lam))
        return abs(lam) * np.array([[c, -s], [s, c]])

    a = scipy.linalg.block_diag(rot(TRUE[0]), rot(TRUE[2]), [[0.7]], [[0.5]])
    c = rng.standard_normal((n_obs, 6))
    z = np.zeros((n_traj, steps, 6))
    zb = np.zeros_like(z)
    z[:, 0] = rng.standard_normal((n_traj, 6))
    for t in range(steps):
        zb[:, t] = z[:, t] @ a.T + sigma * rng.standard_normal((n_traj, 6))
        if t + 1 < steps:
            z[:, t + 1] = z[:, t] @ a.T + sigma * rng.standard_normal((n_traj, 6))
    x, xb = z @ c.T, zb @ c.T
    scale = np.std(x)
    return (x + meas * scale * rng.standard_normal(x.shape),
            xb + meas * scale * rng.standard_normal(xb.shape))


def _true_mask(eigenvalues: np.ndarray) -> np.ndarray:
    """The 6 eigenvalues nearest to TRUE (one each)."""
    d = np.abs(eigenvalues[:, None] - TRUE[None, :])
    rows, _ = scipy.optimize.linear_sum_assignment(d)
    mask = np.zeros(eigenvalues.size, bool)
    mask[rows] = True
    return mask


@pytest.mark.parametrize("sigma", [0.02, 0.4])
def test_calibrated_residuals_on_a_system_with_process_noise(sigma: float) -> None:
    x, xb = noisy_system(sigma)
    s = koopman_spectrum(x, rank=10, method="standard", next_states=xb)
    true = _true_mask(s.eigenvalues)
    assert np.abs(s.eigenvalues[true] - TRUE[:, None]).min(axis=1).max() < 0.03
    # the projection residual of a true mode is ~0 at every noise level; its single-sample
    # residual grows with the noise (towards sqrt(1 - |lambda|^2))
    assert s.projection_residuals[true].max() < 0.12
    # noise directions: noise fraction ~1; true modes: 1 - |lambda|^2 at most (0.75 for 0.5)
    assert s.noise_fractions[~true].min() > 0.95
    assert s.noise_fractions[true].max() < 0.8
    # the variance residual estimates the single-sample data residual
    np.testing.assert_allclose(s.variance_residuals, s.data_residuals, atol=0.07)
    if sigma == 0.4:  # the single-sample residual no longer separates (the reason for this)
        assert s.data_residuals[true].max() > 0.8
    kept = s.filtered()
    assert kept.settings["filter"]["rule"] == "two-branch"
    assert len(kept) == 6
    # the reference: W1 0.003 at sigma 0.02 (measured here 0.003-0.005 over 5 seeds,
    # 0.009-0.019 at sigma 0.4); all eigenvalues 0.31-0.33
    assert wasserstein(kept.eigenvalues, TRUE) < (0.01 if sigma == 0.02 else 0.03)
    assert wasserstein(s.eigenvalues, TRUE) > 0.3


def test_exact_values_on_a_hand_computed_case() -> None:
    # x_t = 0.5^t, 3 steps, rank 1: lambda = 0.5 exactly, phi = x; branch next states off by
    # (0.1, -0.2): a = 0, b = delta -> projection 0, variance sqrt(|delta|^2 / 2 / |x|^2),
    # noise fraction (|delta|^2 / 2) / ((|y1|^2 + |y2|^2) / 2)
    x = np.array([[1.0], [0.5], [0.25]])
    nxt = np.array([[0.6], [0.05], [9.0]])  # the last step's branch is not used
    s = koopman_spectrum(x[None], rank=1, next_states=nxt[None])
    assert s.eigenvalues[0] == pytest.approx(0.5, abs=1e-15)
    assert s.projection_residuals[0] == pytest.approx(0.0, abs=1e-7)  # sqrt of rounding
    assert s.variance_residuals[0] == pytest.approx(np.sqrt(0.02), rel=1e-12)
    assert s.noise_fractions[0] == pytest.approx(0.025 / 0.3375, rel=1e-12)


def test_matches_the_papers_gram_formula() -> None:
    # G, A, L, H as in Colbrook, Li, Raut & Townsend (arXiv 2308.10697), on the dictionary
    # psi = U_k^* x, for every eigenpair, with delays
    x, xb = noisy_system(0.1, seed=3, n_traj=3, steps=40, n_obs=8)
    d, k = 2, 5
    s = koopman_spectrum(x, rank=k, delays=d, method="standard", next_states=xb)
    X, Y1 = delay_embed(x, d)
    Y2 = Y1.copy()
    Y2[d * 8 :] = np.concatenate([b[d:-1] for b in xb]).T
    u = np.linalg.svd(X, full_matrices=False)[0][:, :k]
    px, py1, py2 = (u.T @ m_ for m_ in (X, Y1, Y2))
    m = X.shape[1]
    G = px @ px.T / m
    A = px @ (py1 + py2).T / (2 * m)
    L = (py1 @ py1.T + py2 @ py2.T) / (2 * m)
    H = (py1 @ py2.T + py2 @ py1.T) / (2 * m)
    K = np.linalg.lstsq(px.T, py1.T, rcond=None)[0]  # psi(y) ~ K^T psi(x): EDMD matrix
    lam, vecs = np.linalg.eig(K)
    for i, z in enumerate(s.eigenvalues):
        j = int(np.argmin(np.abs(lam - z)))
        g = vecs[:, j]  # phi = g^T psi with g a right eigenvector of K
        gc = g.conj()

        def form(M: np.ndarray, g=g, gc=gc, z=z) -> float:
            Mx = M - z * A.T.conj() - np.conj(z) * A + abs(z) ** 2 * G
            return float(np.real(gc @ Mx @ g)) / float(np.real(gc @ G @ g))

        assert s.projection_residuals[i] == pytest.approx(np.sqrt(abs(form(H))), rel=1e-8)
        assert s.variance_residuals[i] == pytest.approx(np.sqrt(form(L)), rel=1e-8)


def test_filter_keeps_conjugate_pairs_and_subsets_the_arrays() -> None:
    x, xb = noisy_system(0.1, seed=1)
    s = koopman_spectrum(x, rank=10, method="standard", next_states=xb)
    kept = s.filtered()
    keep = [np.any(np.isclose(z, kept.eigenvalues)) for z in s.eigenvalues]
    np.testing.assert_array_equal(kept.noise_fractions, s.noise_fractions[keep])
    np.testing.assert_array_equal(kept.projection_residuals, s.projection_residuals[keep])
    for z in kept.eigenvalues:
        assert np.any(np.isclose(np.conj(z), kept.eigenvalues))
    # the single-sample rule is still there (explicit arguments)
    assert kept.settings["filter"]["max_noise_fraction"] == BRANCH_FILTER["max_noise_fraction"]
    assert s.filtered(n=4).settings["filter"]["rule"] == "explicit"
    # without a branch the default filter is the single-sample one
    assert koopman_spectrum(x, rank=10).filtered().settings["filter"]["rule"] == "default"


def test_save_and_load_keep_the_branch_residuals(tmp_path) -> None:
    x, xb = noisy_system(0.1, seed=2, n_traj=2, steps=30, n_obs=6)
    s = koopman_spectrum(x, rank=4, next_states=xb)
    back = Spectrum.load(s.save(tmp_path / "s.npz"))
    np.testing.assert_array_equal(back.noise_fractions, s.noise_fractions)
    np.testing.assert_array_equal(back.projection_residuals, s.projection_residuals)
    assert back.filtered().settings["filter"]["rule"] == "two-branch"


def test_delays_on_noisy_data_are_noted() -> None:
    x, xb = noisy_system(0.2, seed=4, n_traj=4, steps=50, n_obs=3)
    with_delays = koopman_spectrum(x, rank=6, delays=3, next_states=xb)
    assert any("may be biased: W1 0.19-0.62" in n for n in with_delays.settings["notes"])
    plain = koopman_spectrum(x, rank=3, next_states=xb)
    assert not any("may be biased" in n for n in plain.settings["notes"])
    assert with_delays.settings["branch"]["eigenvalue_mismatch"] < 1e-8
    # 3 channels of a 6-dimensional state, the paper's 8 delays: every eigenpair fails the
    # projection test (smallest 0.258 here) and the note says so
    x, xb = noisy_system(0.3, seed=1, n_obs=3)
    s = koopman_spectrum(x, rank=10, delays=8, method="standard", next_states=xb)
    assert s.projection_residuals.min() > BRANCH_FILTER["max_projection"]
    assert len(s.filtered()) == 0
    assert any("not Markov under this noise" in n for n in s.settings["notes"])


def test_bad_next_states_are_one_clear_error() -> None:
    x, xb = noisy_system(0.1, n_traj=2, steps=20, n_obs=4)
    with pytest.raises(ValueError, match="next_states must have the shape of the trajectories"):
        koopman_spectrum(x, rank=2, next_states=xb[:, :-1])
    bad = xb.copy()
    bad[0, 3, 1] = np.nan
    with pytest.raises(ValueError, match=r"next_states\[0\]"):
        koopman_spectrum(x, rank=2, next_states=bad)
    with pytest.raises(ValueError, match="scale=True"):
        koopman_spectrum(x, rank=2, scale=True, next_states=xb)
    class Source:  # a streamed store source has blocks()
        def blocks(self):
            return iter(())

    with pytest.raises(TypeError, match="need in-memory trajectories"):
        koopman_spectrum(x, rank=2, next_states=Source())
    r = two_branch_residuals(x, xb, np.zeros(0))
    assert r.projection.shape == (0,)
    with pytest.raises(ValueError, match=r"^eigenvalues contains NaN at index \(1,\)"):
        two_branch_residuals(x, xb, np.array([0.5, np.nan]))  # was residuals of NaN
    with pytest.raises(ValueError, match=r"^eigenvalues must be 1-D, got a 2-D array"):
        two_branch_residuals(x, xb, np.full((1, 2), 0.5))  # was flattened


def _spectrum_keeping(n_supported: int, n_total: int = 6) -> Spectrum:
    """A spectrum of real eigenvalues whose default filter keeps exactly ``n_supported``
    (data residuals 0.01.. below 0.1, the rest 0.5)."""
    lam = np.linspace(0.9, 0.1, n_total)
    res = np.where(np.arange(n_total) < n_supported, 0.01 * (1 + np.arange(n_total)), 0.5)
    return Spectrum(eigenvalues=lam, residuals=np.zeros(n_total), plain_residuals=np.zeros(n_total),
                    modes=None, singular_values=np.ones(n_total), rank=n_total,
                    method="standard", residuals_informative=True, data_residuals=res)


def test_shared_count_is_the_median_over_the_comparison() -> None:
    from conjugacy.comparison_filter import filter_for_comparison, shared_count

    groups = {"a": [_spectrum_keeping(1), _spectrum_keeping(2), _spectrum_keeping(4)],
              "b": [_spectrum_keeping(4), _spectrum_keeping(4)]}
    k, counts = shared_count(groups)
    assert counts == {"a": [1, 2, 4], "b": [4, 4]}
    assert k == 4  # median of 1, 2, 4, 4, 4 (the smallest would be 1, the mean 3)
    out = filter_for_comparison(groups)
    assert [len(s) for s in out["a"] + out["b"]] == [4] * 5
    # each keeps its 4 smallest data residuals, the rule recorded
    np.testing.assert_allclose(out["a"][0].eigenvalues, np.linspace(0.9, 0.1, 6)[:4])
    assert out["b"][1].settings["filter"]["comparison"] == {
        "rule": "shared-count", "residuals": "single-sample", "k": 4,
        "own_counts": {"a": [1, 2, 4], "b": [4, 4]}}
    own = filter_for_comparison(groups, "per-spectrum")
    assert [len(s) for s in own["a"] + own["b"]] == [1, 2, 4, 4, 4]
    assert shared_count({"a": [_spectrum_keeping(1), _spectrum_keeping(2)]})[0] == 2  # 1.5 up
    with pytest.raises(ValueError, match="rule must be one of"):
        filter_for_comparison(groups, "per-seed")
    with pytest.raises(ValueError, match=r"groups\['a'\] holds no spectra"):
        shared_count({"a": []})
    with pytest.raises(TypeError, match="conjugacy.Spectrum"):
        shared_count({"a": [np.array([0.5])]})


def test_compare_conditions_takes_the_shared_count_filter() -> None:
    from conjugacy.analysis import compare_conditions

    spectra = {"a": [_spectrum_keeping(1), _spectrum_keeping(2), _spectrum_keeping(4)],
               "b": [_spectrum_keeping(4), _spectrum_keeping(3), _spectrum_keeping(4)]}
    shared = compare_conditions(spectra, filter_rule="shared-count", shuffle=None, ks=False)
    assert shared.filter["kept"] == {"a": [4, 4, 4], "b": [4, 4, 4]}  # median of 1,2,4,4,3,4
    assert shared.filter["rule"]["comparison"]["k"] == 4
    own = compare_conditions(spectra, shuffle=None, ks=False)
    assert own.filter["kept"] == {"a": [1, 2, 4], "b": [4, 3, 4]}
    with pytest.raises(ValueError, match="filter_rule must be one of"):
        compare_conditions(spectra, filter_rule="shared")


def test_every_path_and_pca_give_the_same_branch_residuals() -> None:
    x, xb = noisy_system(0.1, seed=0)
    ref = koopman_spectrum(x, rank=6, path="dense", next_states=xb)
    for kw in (dict(path="gram"), dict(path="subspace")):
        s = koopman_spectrum(x, rank=6, next_states=xb, **kw)
        np.testing.assert_allclose(s.projection_residuals, ref.projection_residuals, atol=1e-8)
        np.testing.assert_allclose(s.noise_fractions, ref.noise_fractions, atol=1e-8)
    # pca keeps the span of the 30 channels' 6 directions: the same eigenpairs and residuals
    p = koopman_spectrum(x, rank=6, pca=8, next_states=xb)
    np.testing.assert_allclose(p.projection_residuals, ref.projection_residuals, atol=0.02)
    ragged = koopman_spectrum([x[0], x[1, :60]], rank=4, delays=1,
                              next_states=[xb[0], xb[1, :60]])
    assert ragged.settings["branch"]["n_pairs"] == 98 + 58


def test_the_pipeline_passes_the_comparison_filter_on() -> None:
    from conjugacy.analysis.pipeline import summarize

    spectra = {"a": [_spectrum_keeping(1), _spectrum_keeping(2), _spectrum_keeping(4)],
               "b": [_spectrum_keeping(4), _spectrum_keeping(3), _spectrum_keeping(4)]}
    out = summarize(spectra, experiment="t",
                    stats={"filter_rule": "shared-count", "shuffle": None, "ks": False})
    assert out.content["comparison"]["filter"]["kept"] == {"a": [4, 4, 4], "b": [4, 4, 4]}


def test_gram_route_equals_the_dense_route(monkeypatch) -> None:
    # many features, few snapshots: the residuals come from the snapshot Grams
    import conjugacy.residuals as residuals

    x, xb = noisy_system(0.1, seed=6, n_traj=2, steps=30, n_obs=200)
    for d in (0, 2):
        gram = koopman_spectrum(x, rank=5, delays=d, next_states=xb)
        assert gram.settings["branch"]["path"] == "gram"
        with monkeypatch.context() as mp:
            mp.setattr(residuals, "_gram_projections", lambda *a: None)
            dense = koopman_spectrum(x, rank=5, delays=d, next_states=xb)
        assert dense.settings["branch"]["path"] == "dense"
        for name in ("projection_residuals", "variance_residuals", "noise_fractions"):
            np.testing.assert_allclose(getattr(gram, name), getattr(dense, name), atol=1e-8)
        assert gram.settings["branch"]["eigenvalue_mismatch"] < 1e-8


def test_an_unresolvable_gram_falls_back_to_the_dense_route() -> None:
    # 4 strong directions and a 5th at 1e-6 of them: the Gram's implied error (eps / 1e-12)
    # misses the engine's target, so the dictionary is recomputed by the dense SVD
    rng = np.random.default_rng(8)
    basis = np.linalg.qr(rng.standard_normal((300, 5)))[0].T * np.array([1, 1, 1, 1, 1e-6])[:, None]
    z = rng.standard_normal((2, 25, 5))
    zb = z + 0.1 * rng.standard_normal(z.shape)
    x, xb = z @ basis, zb @ basis
    s = two_branch_residuals(x, xb, koopman_spectrum(x, rank=5, path="dense").eigenvalues)
    assert s.settings["path"] == "dense"
    assert any("recomputed on the dense path" in n for n in s.settings["notes"])


def _hand_spectrum(eigenvalues: list[complex], data: list[float],
                   projection: list[float] | None = None) -> Spectrum:
    """A spectrum with the given eigenvalues and residuals (two-branch when ``projection``)."""
    lam = np.array(eigenvalues, complex)
    res = np.array(data, float)
    branch = {} if projection is None else {
        "projection_residuals": np.array(projection, float),
        "variance_residuals": res.copy(), "noise_fractions": np.zeros(lam.size)}
    return Spectrum(eigenvalues=lam, residuals=res, plain_residuals=res, modes=None,
                    singular_values=np.ones(lam.size), rank=lam.size, method="standard",
                    residuals_informative=True, data_residuals=res, **branch)


def test_filtered_n_never_takes_a_worse_eigenvalue_for_a_pair_that_does_not_fit() -> None:
    # residual order: the pair (0.05), then 0.17 (0.3), then -0.4 (0.5)
    s = _hand_spectrum([0.9 + 0.3j, 0.9 - 0.3j, 0.17, -0.4], [0.05, 0.05, 0.3, 0.5])
    one = s.filtered(n=1)  # the pair does not fit in 1: kept whole (one more), not 0.17
    np.testing.assert_array_equal(one.eigenvalues, [0.9 + 0.3j, 0.9 - 0.3j])
    assert one.settings["filter"]["kept_pair_for_n"] is True
    np.testing.assert_array_equal(s.filtered(n=3).eigenvalues, [0.9 + 0.3j, 0.9 - 0.3j, 0.17])
    # 0.17 first, then the pair: n = 2 keeps 0.17 alone (one fewer), never 0.17 and -0.4
    t = _hand_spectrum([0.9 + 0.3j, 0.9 - 0.3j, 0.17, -0.4], [0.2, 0.2, 0.05, 0.3])
    two = t.filtered(n=2)
    np.testing.assert_array_equal(two.eigenvalues, [0.17])
    assert two.settings["filter"]["ranked_by"] == "data residual"


def test_filtered_n_ranks_by_the_projection_residual_when_two_branch() -> None:
    # data residuals favour 0.17, the projection residuals the pair: the default rule's order
    s = _hand_spectrum([0.9 + 0.3j, 0.9 - 0.3j, 0.17], [0.6, 0.6, 0.1], [0.02, 0.03, 0.5])
    kept = s.filtered(n=2)
    np.testing.assert_array_equal(kept.eigenvalues, [0.9 + 0.3j, 0.9 - 0.3j])
    assert kept.settings["filter"]["ranked_by"] == "projection residual"
    from conjugacy.comparison_filter import filter_for_comparison

    out = filter_for_comparison({"a": [s, s], "b": [s]})  # own filter keeps the pair: k = 2
    assert [list(f.eigenvalues) for f in out["a"] + out["b"]] == [[0.9 + 0.3j, 0.9 - 0.3j]] * 3


def test_a_mixed_store_is_filtered_by_one_rule() -> None:
    # issue 20 review, defect 4: spectra with a recorded branch were filtered by the two-branch
    # rule, those without by the single-sample rule, under one name; now one rule per comparison
    from conjugacy.analysis import compare_conditions
    from conjugacy.comparison_filter import comparison_residuals, filter_for_comparison

    lam, data = [0.9 + 0.3j, 0.9 - 0.3j, 0.17], [0.6, 0.6, 0.01]

    def two():
        return _hand_spectrum(lam, data, [0.02, 0.03, 0.5])  # two-branch keeps the pair

    def one():
        return _hand_spectrum(lam, data)  # single-sample keeps 0.17

    both = {"a": [two(), two()], "b": [two(), two()]}
    assert comparison_residuals(both) == ("two-branch", None)
    for rule in ("per-spectrum", "shared-count"):
        out = filter_for_comparison(both, rule)
        assert [list(f.eigenvalues) for f in out["a"] + out["b"]] == [lam[:2]] * 4
        assert out["b"][1].settings["filter"]["comparison"]["residuals"] == "two-branch"
    mixed = {"a": [two(), two()], "b": [two(), one()]}
    note = ("single-sample residuals for every spectrum: 1 of 4 spectra carry no recorded "
            "branch (b 1 of 2); the two-branch rule needs one in every spectrum of the comparison")
    assert comparison_residuals(mixed) == ("single-sample", note)
    for rule in ("per-spectrum", "shared-count"):
        out = filter_for_comparison(mixed, rule)
        assert [list(f.eigenvalues) for f in out["a"] + out["b"]] == [[0.17]] * 4
        info = out["a"][0].settings["filter"]["comparison"]
        assert (info["rule"], info["residuals"], info["note"]) == (rule, "single-sample", note)
    cmp = compare_conditions(mixed, shuffle=None, ks=False, use_filter=True)
    assert cmp.filter["rule"]["rule"] == "default"  # the single-sample rule, for every spectrum
    assert cmp.filter["rule"]["comparison"]["note"] == note
    from conjugacy.cli.summaries import filter_note  # the console says it too (second review)

    assert filter_note(cmp.to_dict()) == note and filter_note({"filter": None}) is None
    from conjugacy.report._content import warnings_of  # and the report

    said = [w for w in warnings_of({"comparison": cmp.to_dict()}) if "Residual filter:" in w]
    assert said == [f"Residual filter: {note}."]
    assert cmp.filter["kept"] == {"a": [1, 1], "b": [1, 1]}
