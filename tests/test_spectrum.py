"""koopman_spectrum on systems with exactly known Koopman eigenvalues, invariances, persistence."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from systems import (
    damped_oscillations,
    h_forward,
    linear_system,
    match_error,
    quadratic_system,
)

from conjugacy import Spectrum, koopman_spectrum
from conjugacy.spectrum import RankWarning

METHODS = ["standard", "exact", "rrr"]
TOL = 1e-10


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("delays", [0, 3])
@pytest.mark.parametrize("n_traj", [1, 5])
def test_linear_system_exact_eigenvalues(method, delays, n_traj):
    trajs, true = linear_system(n_traj=n_traj, n_steps=60 if n_traj == 1 else 30)
    data = trajs[0] if n_traj == 1 else trajs
    spec = koopman_spectrum(data, delays=delays, method=method)
    assert spec.rank == 6
    assert match_error(spec.eigenvalues, true) < TOL
    assert spec.residuals.max() < 1e-10
    assert spec.residuals_informative


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("delays", [0, 2])
def test_quadratic_system_eigenvalues(method, delays):
    trajs, true = quadratic_system()
    spec = koopman_spectrum(trajs, delays=delays, method=method)
    assert spec.rank == 3
    assert match_error(spec.eigenvalues, true) < TOL
    assert np.all(spec.eigenvalues.imag == 0)


@pytest.mark.parametrize("method", METHODS)
def test_conjugate_system_has_same_eigenvalues(method):
    plain, true = quadratic_system(seed=3)
    conj, _ = quadratic_system(seed=3, h=h_forward)
    a = koopman_spectrum(plain, delays=1, method=method)
    b = koopman_spectrum(conj, delays=1, method=method)
    assert match_error(b.eigenvalues, true) < 1e-9
    assert match_error(a.eigenvalues, b.eigenvalues) < 1e-9


@pytest.mark.parametrize("method", METHODS)
def test_hankel_dmd_recovers_damped_oscillations(method):
    x, true = damped_oscillations()
    spec = koopman_spectrum(x, delays=12, method=method)
    assert spec.rank == 5
    assert match_error(spec.eigenvalues, true) < TOL


def test_ragged_trajectories_equal_the_padded_free_result():
    trajs, true = linear_system(n_traj=4, n_steps=40)
    ragged = [trajs[0][:25], trajs[1], trajs[2][:31], trajs[3][:12]]
    spec = koopman_spectrum(ragged, delays=2)
    assert match_error(spec.eigenvalues, true) < TOL
    assert spec.settings["n_pairs"] == sum(len(t) - 3 for t in ragged)


def test_conjugate_pairs_are_exactly_conjugate_and_sorted():
    trajs, _ = linear_system()
    spec = koopman_spectrum(trajs, delays=1, modes=True)
    lam = spec.eigenvalues
    assert np.all(np.diff(np.abs(lam)) <= 1e-12)
    complex_ = lam[lam.imag != 0]
    assert sorted(complex_.tolist(), key=lambda z: (z.real, z.imag)) == sorted(
        np.conj(complex_).tolist(), key=lambda z: (z.real, z.imag)
    )
    pos = np.flatnonzero(lam.imag > 0)
    for i in pos:
        assert lam[i + 1] == np.conj(lam[i])
        np.testing.assert_array_equal(spec.modes[:, i + 1], np.conj(spec.modes[:, i]))


def test_rrr_refined_residuals_no_larger_than_plain():
    rng = np.random.default_rng(5)
    walk = np.cumsum(rng.standard_normal((3, 80, 30)), axis=1)
    spec = koopman_spectrum(walk, delays=2, rank=8)
    assert np.all(spec.residuals <= spec.plain_residuals * (1 + 1e-10) + 1e-14)
    assert spec.rayleigh_quotients.shape == (8,)


def test_residuals_detect_wrong_eigenvalues_in_the_tall_regime():
    # Nonlinear data seen through few observables: truncated Ritz pairs have real residuals.
    rng = np.random.default_rng(2)
    walk = np.cumsum(rng.standard_normal((2, 60, 40)), axis=1)
    spec = koopman_spectrum(walk, rank=5)
    assert spec.residuals_informative
    assert spec.residuals.max() > 1e-3


def test_residuals_flagged_uninformative_when_rank_is_full():
    rng = np.random.default_rng(0)
    data = np.cumsum(rng.standard_normal((2, 200, 3)), axis=1)
    spec = koopman_spectrum(data)
    assert spec.rank == 3
    assert not spec.residuals_informative
    assert any("residuals" in note for note in spec.settings["notes"])


@pytest.mark.parametrize("method", METHODS)
def test_modes_are_eigenvectors_of_the_linear_operator(method):
    # For an exactly linear system, A z = lambda z holds for the modes of every method.
    trajs, _ = linear_system(n_traj=4, n_steps=30, n_obs=8)
    from conjugacy import delay_embed

    X, Y = delay_embed(trajs, 0)
    A = Y @ np.linalg.pinv(X, rcond=1e-12)
    spec = koopman_spectrum(trajs, method=method, modes=True)
    for lam, z in zip(spec.eigenvalues, spec.modes.T):
        assert np.linalg.norm(A @ z - lam * z) < 1e-8 * np.linalg.norm(z)


def test_feature_permutation_and_orthogonal_transform_invariance():
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.standard_normal((4, 50, 12)), axis=1)
    ref = koopman_spectrum(walk, delays=2, rank=6)
    perm = rng.permutation(12)
    Q, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    for variant in (walk[:, :, perm], walk @ Q):
        other = koopman_spectrum(variant, delays=2, rank=6)
        assert match_error(other.eigenvalues, ref.eigenvalues) < 1e-9


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), delays=st.integers(0, 3))
def test_trajectory_order_and_feature_order_do_not_matter(seed, delays):
    rng = np.random.default_rng(seed)
    n_traj, n_feat = int(rng.integers(2, 5)), int(rng.integers(2, 7))
    data = [np.cumsum(rng.standard_normal((int(rng.integers(delays + 6, 30)), n_feat)), axis=0)
            for _ in range(n_traj)]
    rank = int(min(4, n_feat * (delays + 1)))
    ref = koopman_spectrum(data, delays=delays, rank=rank)
    order = rng.permutation(n_traj)
    perm = rng.permutation(n_feat)
    other = koopman_spectrum([data[i][:, perm] for i in order], delays=delays, rank=rank)
    assert other.rank == ref.rank
    scale = max(1.0, np.abs(ref.eigenvalues).max())
    assert match_error(other.eigenvalues, ref.eigenvalues) < 1e-8 * scale


def test_constant_trajectory_has_eigenvalue_one():
    data = np.ones((3, 20, 4)) * np.array([1.0, 2.0, -1.0, 0.5])
    spec = koopman_spectrum(data, delays=2)
    assert spec.rank == 1
    np.testing.assert_allclose(spec.eigenvalues, [1.0], atol=1e-14)


def test_zero_trajectory_gives_an_empty_spectrum():
    spec = koopman_spectrum(np.zeros((2, 10, 3)), delays=1)
    assert spec.rank == 0 and len(spec) == 0
    assert spec.eigenvalues.shape == (0,)


def test_rank_above_numerical_rank_is_reduced_with_a_warning():
    trajs, true = linear_system(n_traj=3, n_steps=30, n_obs=20)
    with pytest.warns(RankWarning, match="numerical rank 6"):
        spec = koopman_spectrum(trajs, rank=10, path="dense")
    assert spec.rank == 6 and spec.settings["rank_reduced"]
    assert match_error(spec.eigenvalues, true) < TOL


def test_pca_then_dmd_keeps_the_linear_eigenvalues():
    trajs, true = linear_system(n_traj=5, n_steps=30, n_obs=300)
    spec = koopman_spectrum(trajs, pca=6, delays=2)
    assert match_error(spec.eigenvalues, true) < 1e-9


def test_spectrum_is_immutable_and_round_trips(tmp_path):
    trajs, _ = linear_system()
    spec = koopman_spectrum(trajs, delays=1)
    with pytest.raises(ValueError):
        spec.eigenvalues[0] = 0
    with pytest.raises(AttributeError):
        spec.rank = 3
    path = spec.save(tmp_path / "s")
    assert path.suffix == ".npz"
    back = Spectrum.load(path)
    np.testing.assert_array_equal(back.eigenvalues, spec.eigenvalues)
    np.testing.assert_array_equal(back.modes, spec.modes)
    np.testing.assert_array_equal(back.residuals, spec.residuals)
    assert back.settings == spec.settings and back.method == spec.method
    assert back.residuals_informative == spec.residuals_informative
    assert not list(tmp_path.glob("*.tmp"))


def test_load_rejects_files_that_are_not_spectra(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    with pytest.raises(ValueError, match="not a saved Spectrum"):
        Spectrum.load(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a saved Spectrum"):
        Spectrum.load(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError, match="no such spectrum"):
        Spectrum.load(tmp_path / "missing.npz")


def test_derived_quantities():
    spec = Spectrum(
        eigenvalues=np.array([np.exp(0.1 + 0.5j), 0.5]),
        residuals=np.zeros(2),
        plain_residuals=np.zeros(2),
        modes=None,
        singular_values=np.ones(2),
        rank=2,
        method="rrr",
        residuals_informative=True,
    )
    np.testing.assert_allclose(spec.magnitude, [np.exp(0.1), 0.5])
    np.testing.assert_allclose(spec.growth_rate(dt=2.0), [0.05, np.log(0.5) / 2])
    np.testing.assert_allclose(spec.frequency(), [0.5 / (2 * np.pi), 0.0])
    np.testing.assert_allclose(spec.continuous_time()[0], 0.1 + 0.5j)


# ----------------------------------------------------------------------------- spectrum_from_gram
def _gram_of(data):
    """The snapshot Gram G[s, t] = x_s^* x_t, computed here (not by the package)."""
    z = np.concatenate([np.asarray(t, dtype=np.result_type(t, float)) for t in data])
    return z.conj() @ z.T


def _gram_cases():
    trajs, _ = linear_system(n_traj=3, n_steps=12, n_obs=50)  # 50 features >= 36 snapshots
    rng = np.random.default_rng(7)
    ragged = [trajs[0], trajs[1, :9], trajs[2, :7]]
    cplx = trajs * np.exp(1j * rng.uniform(0, 2 * np.pi, 50))
    return [
        (trajs, dict(delays=0, rank=6, method="rrr")),
        (trajs, dict(delays=2, rank=6, method="exact")),
        (trajs, dict(delays=1, rank=6, method="standard", scale=True, modes=False)),
        (trajs, dict(delays=1, rank=None)),
        (ragged, dict(delays=1, rank=6)),
        (trajs.astype(np.float32), dict(delays=1, rank=6)),
        (cplx, dict(delays=1, rank=6)),
    ]


@pytest.mark.parametrize("case", range(7))
def test_spectrum_from_gram_is_the_gram_path_of_koopman_spectrum(case):
    from conjugacy.observables import snapshot_gram
    from conjugacy.spectrum import spectrum_from_gram
    from conjugacy.trajectories import as_trajectory_list

    data, kw = _gram_cases()[case]
    ref = koopman_spectrum(data, path="gram", threads=1, **kw)
    # the Gram the Gram path forms itself: the same code runs, so the same bits come out
    gram = snapshot_gram(as_trajectory_list(data))[0]
    kept = gram.copy()
    same = spectrum_from_gram(data, gram, threads=1, **kw)
    np.testing.assert_array_equal(gram, kept)  # the caller's Gram is not modified
    assert same.settings == ref.settings and same.rank == ref.rank
    for field in ("eigenvalues", "residuals", "plain_residuals", "data_residuals", "modes",
                  "singular_values"):
        np.testing.assert_array_equal(getattr(same, field), getattr(ref, field), err_msg=field)
    # a Gram formed independently (another summation order) gives the same spectrum to rounding
    other = spectrum_from_gram(data, _gram_of(data), **kw)
    assert other.rank == ref.rank
    if kw["rank"] is not None:  # (with the tolerance rule s_k/s_1 is noise: dense may take over)
        assert other.settings["path"] == ref.settings["path"] == "gram"
    np.testing.assert_allclose(other.eigenvalues, ref.eigenvalues, rtol=0, atol=1e-10)
    np.testing.assert_allclose(other.data_residuals, ref.data_residuals, rtol=1e-6, atol=1e-9)
    dense = koopman_spectrum(data, path="dense", **kw)
    assert match_error(other.eigenvalues, dense.eigenvalues) < 1e-9


def test_spectrum_from_gram_falls_back_to_dense_as_the_gram_path_does():
    from conjugacy.spectrum import spectrum_from_gram

    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.standard_normal((300, 6)))[0]
    data = (rng.standard_normal((2, 20, 6)) * np.logspace(0, -12, 6)) @ basis.T
    ref = koopman_spectrum(data, rank=6, path="gram")
    spec = spectrum_from_gram(data, _gram_of(data), rank=6)
    assert spec.settings["path"] == ref.settings["path"] == "dense"
    assert any(note.startswith("gram path: s_k/s_1") for note in spec.settings["notes"])
    np.testing.assert_array_equal(spec.eigenvalues, ref.eigenvalues)


def test_spectrum_from_gram_refuses_a_gram_that_is_not_the_datas():
    from conjugacy.spectrum import spectrum_from_gram

    trajs, _ = linear_system(n_traj=3, n_steps=12, n_obs=50)
    gram = _gram_of(trajs)
    with pytest.raises(ValueError, match=r"\(36, 36\) snapshot Gram.*got shape \(35, 35\)"):
        spectrum_from_gram(trajs, gram[:35, :35], rank=4)
    with pytest.raises(TypeError, match="numeric NumPy array"):
        spectrum_from_gram(trajs, gram.tolist(), rank=4)
    with pytest.raises(TypeError, match="complex"):
        spectrum_from_gram(trajs, gram + 0j, rank=4)
    with pytest.raises(ValueError, match="not the snapshot Gram of these trajectories"):
        spectrum_from_gram(trajs[::-1], gram, rank=4)  # another order of the trajectories
    with pytest.raises(ValueError, match="not the snapshot Gram"):
        spectrum_from_gram(trajs, 2 * gram, rank=4)
    bad = trajs.copy()
    bad[1, 3, 7] = np.nan
    with pytest.raises(ValueError, match=r"NaN.*trajectories\[1\]|trajectories\[1\].*NaN"):
        spectrum_from_gram(bad, gram, rank=4)
    with pytest.raises(ValueError, match="rank=40 exceeds"):
        spectrum_from_gram(trajs, gram, rank=40)
    with pytest.raises(TypeError, match="pca"):
        spectrum_from_gram(trajs, gram, rank=4, pca=3)
    with pytest.warns(RankWarning, match="empty spectrum"):
        empty = spectrum_from_gram(np.zeros((2, 10, 50)), np.zeros((20, 20)), rank=2)
    assert empty.rank == 0 and empty.settings["path"] == "gram"


def test_no_module_imports_private_names_of_the_spectrum_machinery():
    import ast
    from pathlib import Path

    import conjugacy

    root = Path(conjugacy.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "spectrum_paths.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] in (
                "spectrum", "spectrum_paths"
            ):
                found += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert found == []


def test_modes_only_when_asked():
    # Issue 21: the default computes no modes (they cost as much as the Gram on the Gram path);
    # modes=True computes them on every path; "auto" only where they are cheap.
    rng = np.random.default_rng(7)
    wide = np.cumsum(rng.standard_normal((3, 20, 300)), axis=1)  # the Gram path
    spec = koopman_spectrum(wide, delays=2, rank=4)
    assert spec.settings["path"] == "gram" and spec.modes is None
    assert not any("modes" in note for note in spec.settings["notes"])
    with_modes = koopman_spectrum(wide, delays=2, rank=4, modes=True)
    assert with_modes.modes.shape == (900, 4)
    np.testing.assert_array_equal(with_modes.eigenvalues, spec.eigenvalues)
    auto = koopman_spectrum(wide, delays=2, rank=4, modes="auto")
    assert auto.modes is None and any("modes not computed" in n for n in auto.settings["notes"])
    long = np.cumsum(rng.standard_normal((2, 600, 40)), axis=1)  # the subspace path
    auto = koopman_spectrum(long, delays=30, rank=5, modes="auto")
    assert auto.settings["path"] == "subspace" and auto.modes.shape == (1240, 5)
    small = np.cumsum(rng.standard_normal((2, 200, 3)), axis=1)  # dense: U_k W is cheap
    assert koopman_spectrum(small, delays=1, modes="auto").modes.shape == (6, 6)
    square = np.cumsum(rng.standard_normal((1, 60, 50)), axis=1)  # k = 50 of 59 pairs:
    assert koopman_spectrum(square, modes="auto").modes is None  # U_k W ~ the SVD's cost


def test_spectrum_checks_every_per_eigenvalue_field_and_a_filter_cuts_each():
    def make(**change):
        fields = dict(eigenvalues=[0.9, 0.5, 0.1], residuals=[0.01, 0.3, 0.02],
                      plain_residuals=[0.1, 0.2, 0.3], modes=None, singular_values=[3.0, 2.0],
                      rank=3, method="rrr", residuals_informative=True,
                      rayleigh_quotients=[0.91, 0.51, 0.11], data_residuals=[0.01, 0.3, 0.02],
                      noise_fractions=[0.1, 0.2, 0.3])
        return Spectrum(**{**fields, **change})

    for name in ("residuals", "plain_residuals", "data_residuals", "noise_fractions"):
        with pytest.raises(ValueError, match=f"^{name} must have one entry per eigenvalue$"):
            make(**{name: [0.1, 0.2]})
    with pytest.raises(ValueError, match="^residuals must have one entry"):
        make(residuals=None)
    sp = make()
    assert not sp.plain_residuals.flags.writeable and not sp.noise_fractions.flags.writeable
    kept = sp.filtered(max_residual=0.05)
    assert kept.rank == 2 and kept.singular_values.tolist() == [3.0, 2.0]
    assert kept.eigenvalues.tolist() == [0.9, 0.1] and kept.residuals.tolist() == [0.01, 0.02]
    assert kept.plain_residuals.tolist() == [0.1, 0.3]
    assert kept.rayleigh_quotients.tolist() == [0.91, 0.11]
    assert kept.noise_fractions.tolist() == [0.1, 0.3] and kept.projection_residuals is None
