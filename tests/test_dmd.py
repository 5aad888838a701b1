"""DMD variants against PyDMD, and the fast paths against the stable dense path."""

import numpy as np
import pytest
from pydmd import DMD
from systems import match_error

from conjugacy import delay_embed, koopman_spectrum
from conjugacy.dmd import dmd, dmd_from_gram, select_rank
from conjugacy.spectrum_paths import auto_path


def _random_walk(shape, seed=0):
    return np.cumsum(np.random.default_rng(seed).standard_normal(shape), axis=-2)


@pytest.mark.parametrize("rank", [3, 7])
@pytest.mark.parametrize("exact", [False, True])
def test_standard_and_exact_eigenvalues_equal_pydmd(rank, exact):
    walk = _random_walk((3, 40, 15))
    X, Y = delay_embed(walk, 1)
    ref = DMD(svd_rank=rank, exact=exact).fit(X, Y)
    ours = dmd(X, Y, method="exact" if exact else "standard", rank=rank, scale=False)
    assert match_error(ours.eigenvalues, ref.eigs) < 1e-10
    # modes agree up to a complex scale per mode
    ref_modes = ref.modes
    for lam, z in zip(ours.eigenvalues, ours.modes.T):
        j = np.argmin(np.abs(ref.eigs - lam))
        zr = ref_modes[:, j]
        c = np.vdot(zr, z) / np.vdot(zr, zr)
        assert np.linalg.norm(z - c * zr) < 1e-8 * np.linalg.norm(z)


def test_full_rank_scaling_does_not_change_eigenvalues_of_consistent_pairs():
    # Tall data (more observables than pairs): Y = A X holds exactly for A = Y X^+, and the
    # column scaling leaves the operator, hence the eigenvalues, unchanged.
    walk = _random_walk((2, 10, 6), seed=3)
    X, Y = delay_embed(walk, 2)
    assert X.shape[0] > X.shape[1]
    a = dmd(X, Y, method="rrr", scale=True)
    b = dmd(X, Y, method="rrr", scale=False)
    assert a.rank == b.rank == X.shape[1]
    assert match_error(a.eigenvalues, b.eigenvalues) < 1e-8


def test_scaling_is_a_weighted_least_squares_fit_for_wide_data():
    # With more pairs than observables the pairs are not consistent; scaling weights each pair
    # equally: the operator is (Y D)(X D)^+ with D = diag(1 / ||x_j||).
    walk = _random_walk((2, 30, 6), seed=3)
    X, Y = delay_embed(walk, 2)
    D = 1 / np.linalg.norm(X, axis=0)
    expected = np.linalg.eigvals((Y * D) @ np.linalg.pinv(X * D))
    assert match_error(dmd(X, Y, scale=True).eigenvalues, expected) < 1e-8
    plain = np.linalg.eigvals(Y @ np.linalg.pinv(X))
    assert match_error(dmd(X, Y, scale=False).eigenvalues, plain) < 1e-8


def test_rrr_residuals_equal_direct_computation():
    walk = _random_walk((2, 50, 20), seed=4)
    X, Y = delay_embed(walk, 1)
    res = dmd(X, Y, method="rrr", rank=6, scale=False)
    A = Y @ np.linalg.pinv(X)  # the operator that maps X to Y (X has full column rank here? no:
    # X is 40 x 96, so A is the minimum-norm solution; on range(X) it reproduces Y exactly)
    for lam, z, r in zip(res.eigenvalues, res.modes.T, res.residuals):
        assert abs(np.linalg.norm(A @ z - lam * z) - r) < 1e-8 * max(1.0, r)


@pytest.mark.parametrize("method", ["standard", "exact", "rrr"])
@pytest.mark.parametrize("delays", [0, 4])
def test_gram_path_equals_dense_path(method, delays):
    walk = _random_walk((4, 30, 200), seed=1)  # features dominate: 200 > 120 snapshots
    dense = koopman_spectrum(walk, delays=delays, rank=10, method=method, path="dense", modes=True)
    gram = koopman_spectrum(walk, delays=delays, rank=10, method=method, path="gram", modes=True)
    assert gram.settings["path"] == "gram"
    assert match_error(gram.eigenvalues, dense.eigenvalues) < 1e-7
    np.testing.assert_allclose(gram.singular_values[:10], dense.singular_values[:10], rtol=1e-9)
    for a, b in zip(gram.modes.T, dense.modes.T):
        c = np.vdot(b, a) / np.vdot(b, b)
        assert np.linalg.norm(a - c * b) < 1e-6 * np.linalg.norm(a)


@pytest.mark.parametrize("method", ["standard", "rrr"])
def test_subspace_path_equals_dense_path(method):
    walk = _random_walk((3, 400, 30), seed=2)
    dense = koopman_spectrum(walk, delays=8, rank=6, method=method, path="dense")
    sub = koopman_spectrum(walk, delays=8, rank=6, method=method, path="subspace")
    assert sub.settings["path"] == "subspace"
    assert match_error(sub.eigenvalues, dense.eigenvalues) < 1e-8
    np.testing.assert_allclose(sub.residuals, np.sort(sub.residuals)[np.argsort(np.argsort(
        sub.residuals))])  # sanity: finite
    assert match_error(sub.residuals.astype(complex), dense.residuals.astype(complex)) < 1e-8


def test_auto_path_choices():
    assert koopman_spectrum(_random_walk((2, 20, 100)), rank=4).settings["path"] == "gram"
    assert koopman_spectrum(_random_walk((2, 20, 100))).settings["path"] == "dense"
    big = _random_walk((2, 600, 40), seed=5)
    assert koopman_spectrum(big, delays=30, rank=5).settings["path"] == "subspace"


def _auto(n_traj, n_steps, n_features, delays, rank):
    n_pairs = n_traj * (n_steps - delays - 1)
    return auto_path(
        n_features, n_features * (delays + 1), n_pairs, n_traj * n_steps, rank
    )


def test_cost_rule_picks_the_cheapest_path_on_the_measured_shapes():
    # Issue 21: features fewer than snapshots used to mean the subspace path, 3-5x slower than
    # the Gram path here (0.25-0.5 s against 0.09 s; 28 s against 5.3 s for the plain pipeline)
    assert _auto(4, 240, 400, 8, 21) == "gram"
    assert _auto(10, 500, 4000, 32, 10) == "gram"
    assert _auto(10, 500, 4000, 8, 10) == "gram"
    assert _auto(10, 1000, 4000, 32, 10) == "gram"
    # long, narrow runs: the subspace path stays cheapest (FCN shapes; the all-pairs workload)
    assert _auto(10, 1000, 400, 8, 10) == "subspace"
    assert _auto(10, 1000, 50, 64, 10) == "subspace"
    # the all-pairs workload's 50-feature systems: tall enough for the covariance path
    # (measured 50 ms against the subspace path's 63-66 ms per system, one thread)
    assert _auto(20, 200, 50, 8, 10) == "covariance"
    assert _auto(10, 200, 200, 8, 10) == "subspace"
    assert _auto(10, 100, 1000, 8, 10) == "gram"  # features >= snapshots
    assert _auto(2, 20, 100, 0, None) == "dense"  # the tolerance rule
    # memory-mapped data keep the low-memory route, whatever the arithmetic says
    assert auto_path(600, 4200, 5979, 6000, 5, mapped=True) == "subspace"
    # the Gram route's arrays would exceed AUTO_MEMORY_BYTES: not taken
    assert _auto(10, 4000, 4000, 8, 10) == "subspace"
    data = _random_walk((4, 240, 400), seed=3).astype(np.float32)
    spec = koopman_spectrum(data, delays=8, rank=21)
    assert spec.settings["path"] == "gram"
    dense = koopman_spectrum(data, delays=8, rank=21, path="dense")
    assert match_error(spec.eigenvalues, dense.eigenvalues) < 1e-10 * np.abs(dense.eigenvalues).max()


def test_lanczos_top_eigenpairs_equal_the_full_eigh_route(monkeypatch):
    # a delay Gram with m = 2,056 > LANCZOS_MIN_SIZE pairs: the top eigenpairs by Lanczos
    import conjugacy.dmd as dmd_module

    data = _random_walk((2, 1032, 300), seed=4)
    calls = []
    lanczos = dmd_module._lanczos_top
    monkeypatch.setattr(dmd_module, "_lanczos_top", lambda g, k: calls.append(k) or lanczos(g, k))
    fast = koopman_spectrum(data, delays=3, rank=10, path="gram")
    assert calls == [10] and fast.settings["path"] == "gram"
    monkeypatch.setattr(dmd_module, "LANCZOS_MIN_SIZE", 10**9)  # the full eigh(subset_by_index)
    full = koopman_spectrum(data, delays=3, rank=10, path="gram")
    assert calls == [10]
    scale = np.abs(full.eigenvalues).max()
    assert match_error(fast.eigenvalues, full.eigenvalues) < 1e-10 * scale
    np.testing.assert_allclose(fast.singular_values, full.singular_values, rtol=1e-10)
    np.testing.assert_allclose(fast.data_residuals, full.data_residuals, rtol=1e-8, atol=1e-12)


def test_lanczos_falls_back_to_the_dense_eigh_when_its_check_fails(monkeypatch):
    import conjugacy.dmd as dmd_module

    rng = np.random.default_rng(2)
    z = np.cumsum(rng.standard_normal((2100, 60)), axis=0)
    g = z @ z.T
    ref_vals, ref_vecs = dmd_module.top_eigh(g, 5)
    monkeypatch.setattr(dmd_module, "LANCZOS_RTOL", 0.0)  # no residual passes: dense driver
    vals, vecs = dmd_module.top_eigh(g, 5)
    np.testing.assert_allclose(vals, ref_vals, rtol=1e-12)
    np.testing.assert_allclose(np.abs(np.sum(vecs * ref_vecs, axis=0)), 1.0, atol=1e-10)


def test_gram_path_falls_back_when_it_cannot_resolve_the_rank():
    # Singular values spanning 12 orders of magnitude: the Gram path must hand over to dense.
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.standard_normal((300, 6)))[0]
    coef = rng.standard_normal((2, 20, 6)) * np.logspace(0, -12, 6)
    data = coef @ basis.T
    spec = koopman_spectrum(data, rank=6, path="gram")
    assert spec.settings["path"] == "dense"
    assert any("gram path" in note for note in spec.settings["notes"])


def test_select_rank_rule():
    s = np.array([1.0, 1e-3, 1e-16])
    assert select_rank(s, None, None, (3, 3)) == 2
    assert select_rank(s, None, 1e-2, (3, 3)) == 1
    assert select_rank(s, 1, None, (3, 3)) == 1
    assert select_rank(s, 3, None, (3, 3)) == 2
    assert select_rank(np.zeros(3), None, None, (3, 3)) == 0


def test_gram_dmd_directly_equals_dense_dmd():
    walk = _random_walk((1, 60, 8), seed=9)
    X, Y = delay_embed(walk, 1)
    dense = dmd(X, Y, method="rrr", rank=5)
    gram, resolution = dmd_from_gram(X.T @ X, X.T @ Y, Y.T @ Y, method="rrr", rank=5,
                                     shape=X.shape)
    assert resolution > 1e-7
    assert match_error(gram.eigenvalues, dense.eigenvalues) < 1e-8


def test_refinement_memory_grows_like_rank_squared_not_cubed():
    # new-user trial: rank=None on (4, 301, 320) with 2 delays asked for a (960, 960, 960)
    # complex array (13 GiB); residuals and refined vectors are now formed in bounded batches
    import tracemalloc

    from conjugacy import koopman_spectrum

    x = np.random.default_rng(0).standard_normal((4, 121, 120)).cumsum(1)
    tracemalloc.start()
    try:
        spec = koopman_spectrum(x, delays=1, method="rrr")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    k = spec.rank
    assert k == 240
    assert peak < 16 * 2 * k**3 / 3  # the old stacked array alone was 16 * 2k * k * k bytes
    assert np.all(np.isfinite(spec.residuals)) and np.all(np.isfinite(spec.data_residuals))


# ----- the rank argument: one parser (conjugacy._checks.check_rank) --------------------------------
def test_check_rank_canonical_forms_and_errors():
    from conjugacy._checks import check_rank

    assert check_rank("SVHT") == "svht" and check_rank(" Svht ") == "svht"
    assert check_rank(7) == 7 and check_rank(np.int64(3)) == 3 and check_rank(None) is None
    with pytest.raises(ValueError, match=r"rank must be a positive int, None or one of "
                                         r"\['svht'\] \(a statistical rank rule, any case\), "
                                         r"got 'svd'"):
        check_rank("svd")
    with pytest.raises(ValueError, match="rank must be >= 1, got 0"):
        check_rank(0)
    with pytest.raises(TypeError, match="rank must be an integer, got 2.5"):
        check_rank(2.5)
    with pytest.raises(TypeError, match="rank must be an integer, got None"):
        check_rank(None, allow_none=False)


def test_rank_rule_is_accepted_in_any_case_on_every_entry_point(tmp_path):
    """``rank="SVHT"`` is ``rank="svht"`` (it was a ValueError): the same rank, threshold and
    eigenvalues, recorded as "svht"; analyze accepts it too (it reaches the store lookup)."""
    import conjugacy
    from conjugacy.spectrum import spectrum_from_gram

    x = np.random.default_rng(1).standard_normal((4, 40, 6))
    x[..., :2] += np.cumsum(x[..., :2], axis=1)
    ref = koopman_spectrum(x, delays=2, rank="svht", method="standard")
    z = x.reshape(-1, 6)
    for spec in (koopman_spectrum(x, delays=2, rank="SVHT", method="standard"),
                 koopman_spectrum(x, delays=2, rank=" Svht ", method="standard", path="gram"),
                 spectrum_from_gram(x, z @ z.T, delays=2, rank="sVhT", method="standard")):
        assert spec.rank == ref.rank and spec.settings["rank_requested"] == "svht"
        assert spec.settings["rank_rule"]["threshold"] == pytest.approx(
            ref.settings["rank_rule"]["threshold"], rel=1e-10)
        assert np.allclose(np.sort_complex(spec.eigenvalues), np.sort_complex(ref.eigenvalues),
                           atol=1e-8)
    with pytest.raises(FileNotFoundError):  # the rank passed; the missing store is the error
        conjugacy.analyze(tmp_path / "missing.zarr", rank="SVHT")
    with pytest.raises(ValueError, match=r"rank must be a positive int, None or one of"):
        conjugacy.analyze(tmp_path / "missing.zarr", rank="svd")
