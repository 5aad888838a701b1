"""koopman_spectra: spectra at several (delays, rank) settings sharing one factorization per
delays and one snapshot Gram (issue 25 / issue 19: the neighbour check's refits)."""

import warnings

import numpy as np
import pytest

from conjugacy import dmd as dmd_module
from conjugacy import spectrum_paths as paths
from conjugacy.spectrum import koopman_spectra, koopman_spectrum


def _walk(shape, seed=0, dtype=np.float64):
    x = np.cumsum(np.random.default_rng(seed).standard_normal(shape), axis=-2)
    return x.astype(dtype)


GRID = [{"delays": 1, "rank": 4}, {"delays": 1, "rank": 8}, {"delays": 2, "rank": 6},
        {"delays": 0, "rank": "svht"}, {"delays": 1, "rank": 2}]
DATA = {"wide": ((3, 40, 300), np.float64), "tall": ((4, 200, 6), np.float64),
        "float32": ((3, 60, 50), np.float32)}


def _alone(x, grid, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [koopman_spectrum(x, **g, **kw) for g in grid]


@pytest.mark.parametrize("data", sorted(DATA))
@pytest.mark.parametrize("path", ["dense", "gram", "covariance", "subspace", "auto"])
def test_shared_route_equals_separate_fits(data, path):
    x = _walk(DATA[data][0], dtype=DATA[data][1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shared = koopman_spectra(x, GRID, path=path)
    alone = _alone(x, GRID, path=path)
    for a, b in zip(shared, alone, strict=True):
        assert a.rank == b.rank and a.settings["delays"] == b.settings["delays"]
        top = np.abs(b.eigenvalues).max()
        assert np.abs(a.eigenvalues - b.eigenvalues).max() <= 1e-10 * top
        assert np.abs(a.data_residuals - b.data_residuals).max() <= 1e-9
        assert a.settings["input_eps"] == b.settings["input_eps"]
        assert a.settings["rank_rule"] == b.settings["rank_rule"]
        if path != "auto":  # auto: each delays' ranks take the path of the largest
            assert a.settings["path"] == b.settings["path"] == path
            assert a.settings["notes"] == b.settings["notes"]
    assert [sp.rank for sp in shared] == [4, 8, 6, shared[3].rank, 2]


def test_float32_data_keep_the_float32_precision_rule():
    # exactly 3 modes in float32 (issue 19's store): the tolerance rule at float32's eps keeps 3
    rng = np.random.default_rng(0)
    t = np.arange(60)[:, None]
    modes = rng.standard_normal((3, 40))
    x = np.stack([(rng.standard_normal(3) * np.power([0.95, 0.8, 0.6], t)) @ modes
                  for _ in range(6)]).astype(np.float32)
    grid = [{"delays": 3, "rank": None}, {"delays": 3, "rank": 2}, {"delays": 1, "rank": None}]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shared = koopman_spectra(x, grid)
        as64 = koopman_spectrum(x.astype(np.float64), delays=3)
    assert [sp.rank for sp in shared] == [3, 2, 3]
    assert shared[0].settings["input_eps"] == 2.0**-23
    assert np.allclose(np.sort(shared[0].eigenvalues.real), [0.6, 0.8, 0.95], atol=1e-4)
    assert as64.rank > 3  # read as float64 data the rule keeps float32's rounding


def test_one_snapshot_gram_and_one_factorization_per_delays(monkeypatch):
    # the neighbour check's four refits: delays 1/2 and x2 at the base rank, rank -2 and +2 at
    # the base delays; features outnumber snapshots, so every one takes the Gram path
    x = _walk((2, 30, 400))
    grams, eighs = [], []
    real_gram, real_eigh = paths.snapshot_gram, dmd_module.top_eigh
    monkeypatch.setattr(paths, "snapshot_gram", lambda t: grams.append(1) or real_gram(t))
    monkeypatch.setattr(dmd_module, "top_eigh", lambda g, k: eighs.append(k) or real_eigh(g, k))
    grid = [{"delays": 1, "rank": 6}, {"delays": 4, "rank": 6}, {"delays": 2, "rank": 4},
            {"delays": 2, "rank": 8}]
    shared = koopman_spectra(x, grid)
    assert [sp.settings["path"] for sp in shared] == ["gram"] * 4
    assert len(grams) == 1
    assert sorted(eighs) == [6, 6, 8]  # ranks 4 and 8 at delays 2 share the top 8
    grams.clear()
    _alone(x, grid)
    assert len(grams) == 4


def test_next_states_give_the_two_branch_residuals_of_each_fit():
    rng = np.random.default_rng(1)
    x = _walk((3, 40, 5), seed=2)
    nxt = x + 0.01 * rng.standard_normal(x.shape)
    grid = [{"delays": 1, "rank": 3}, {"delays": 1, "rank": 5}]
    shared = koopman_spectra(x, grid, next_states=nxt)
    alone = _alone(x, grid, next_states=nxt)
    for a, b in zip(shared, alone, strict=True):
        assert np.allclose(a.projection_residuals, b.projection_residuals, rtol=1e-9, atol=1e-12)
        assert np.allclose(a.noise_fractions, b.noise_fractions, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("settings, error, words", [
    ({"delays": 1, "rank": 2}, TypeError, "settings must be a list"),
    ([{"delays": 1}], ValueError, "settings[0] must have exactly the keys"),
    ([{"delays": 1, "rank": 2, "pca": 3}], ValueError, "the other arguments are shared"),
    ([{"delays": "auto", "rank": 2}], TypeError, "settings[0]['delays'] must be an integer"),
    ([{"delays": 1, "rank": 0}], ValueError, "rank"),
    ([{"delays": 1, "rank": 99}], ValueError, "rank=99 exceeds what the data allow"),
])
def test_bad_settings_name_the_argument(settings, error, words):
    with pytest.raises(error) as err:
        koopman_spectra(_walk((2, 20, 3)), settings)
    assert words in str(err.value)


def _three_modes_float32():
    rng = np.random.default_rng(0)
    t = np.arange(60)[:, None]
    modes = rng.standard_normal((3, 40))
    return np.stack([(rng.standard_normal(3) * np.power([0.95, 0.8, 0.6], t)) @ modes
                     for _ in range(6)]).astype(np.float32)


@pytest.mark.parametrize("name, x, delays", [
    ("wide walks", _walk((4, 60, 300)), 1),
    ("wide noise", np.random.default_rng(3).standard_normal((3, 50, 200)), 2),
    ("tall walks", _walk((4, 200, 6)), 3),
    ("float32 modes", _three_modes_float32(), 3),
])
@pytest.mark.parametrize("cap", [2, 10, 70])
def test_capped_svht_rank_equals_the_capped_rank_of_the_spectrum(name, x, delays, cap):
    from conjugacy.spectrum import capped_svht_rank

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = min(koopman_spectrum(x, delays=delays, rank="svht").rank, cap)
    assert capped_svht_rank(x, cap=cap, delays=delays) == want


def test_capped_svht_decides_from_the_top_eigenvalues_when_the_bound_allows(monkeypatch):
    from conjugacy.dmd import capped_svht, svht_rank

    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 40)) @ rng.standard_normal((40, 400)) * 10
    x += rng.standard_normal((300, 400))  # 40 strong directions in noise: SVHT keeps 40
    full = []
    real = np.linalg.eigvalsh
    monkeypatch.setattr(np.linalg, "eigvalsh", lambda g: full.append(1) or real(g))
    s = np.linalg.svd(x, compute_uv=False)
    assert svht_rank(s, x.shape)[0] == 40
    k, evals, vectors = capped_svht(x.T @ x, x.shape, 30)
    assert (k, len(evals), full) == (30, 30, [])  # the bound settles it: no eigvalsh
    assert np.allclose(np.sqrt(evals), s[:30], rtol=1e-10)
    k, evals, _ = capped_svht(x.T @ x, x.shape, 45)  # 40 < 45: the bound cannot, every value
    assert (k, len(full)) == (40, 1)
    assert capped_svht(np.zeros((50, 50)), (50, 60), 5)[0] == 0


@pytest.mark.parametrize("rank", [3, "svht", None])
def test_dmd_from_gram_is_the_ranks_route_at_one_rank_bit_for_bit(rank):
    # dmd_from_gram is dmd_from_gram_at_ranks with ranks=(rank,) (issue 19: one signature):
    # the same eigenvalues, residuals, modes and resolution to the last bit, and the keywords
    # (scale, method, shape, x_times/y_times) reach the one implementation.
    from conjugacy.observables import DelayOperator, delay_grams, snapshot_gram

    runs = _walk((3, 40, 6), seed=4)
    op = DelayOperator(list(runs), 1)
    kw = {"method": "rrr", "scale": True, "shape": op.shape, "x_times": op.x_times,
          "y_times": op.y_times}
    one, res1 = dmd_module.dmd_from_gram(*delay_grams(*snapshot_gram(list(runs)), delays=1),
                                         rank=rank, **kw)
    (two, res2), = dmd_module.dmd_from_gram_at_ranks(
        *delay_grams(*snapshot_gram(list(runs)), delays=1), (rank,), **kw)
    assert res1 == res2 and one.rank == two.rank > 0
    for field in ("eigenvalues", "residuals", "data_residuals", "modes", "singular_values"):
        np.testing.assert_array_equal(getattr(one, field), getattr(two, field), err_msg=field)
    unscaled, _ = dmd_module.dmd_from_gram(*delay_grams(*snapshot_gram(list(runs)), delays=1),
                                           rank=rank, **{**kw, "scale": False})
    assert not np.array_equal(unscaled.eigenvalues, one.eigenvalues)  # scale reached the fit
    with pytest.raises(TypeError, match="unexpected keyword argument 'rnak'"):
        dmd_module.dmd_from_gram(*delay_grams(*snapshot_gram(list(runs)), delays=1), rnak=3)


def test_one_options_check_for_every_front_door_call():
    # koopman_spectrum, koopman_spectra and spectrum_from_gram check their shared keywords in one
    # place (spectrum.fit_options) and share their defaults: the same error from each, and the
    # keywords of koopman_spectra default to koopman_spectrum's.
    import inspect

    from conjugacy.spectrum import spectrum_from_gram

    x = _walk((2, 30, 5))
    z = x.reshape(-1, 5)
    calls = [lambda **kw: koopman_spectrum(x, rank=2, **kw),
             lambda **kw: koopman_spectra(x, [{"delays": 0, "rank": 2}], **kw),
             lambda **kw: spectrum_from_gram(x, z @ z.T, rank=2, **kw)]
    for call in calls:
        with pytest.raises(ValueError, match="method must be one of"):
            call(method="fast")
        with pytest.raises(ValueError, match="tol must be below 1"):
            call(tol=1.5)
        with pytest.raises(TypeError, match="scale must be True or False"):
            call(scale=1)
    for call in calls[:2]:
        with pytest.raises(ValueError, match="pca must be >= 1"):
            call(pca=0)
        with pytest.raises(ValueError, match="next_states with scale=True"):
            call(scale=True, next_states=x)
    with pytest.raises(ValueError, match="path='subspace' computes the top"):
        koopman_spectrum(x, rank=None, path="subspace")
    with pytest.raises(ValueError, match="path='subspace' computes the top"):
        koopman_spectra(x, [{"delays": 0, "rank": 2}, {"delays": 0, "rank": None}],
                        path="subspace")
    with pytest.raises(TypeError, match="device must be a torch device name"):
        koopman_spectrum(x, device=0)
    one = inspect.signature(koopman_spectrum).parameters
    many = inspect.signature(koopman_spectra).parameters
    shared = set(one) & set(many) - {"trajectories"}
    assert shared == {"tol", "method", "pca", "pca_center", "scale", "modes", "path", "threads",
                      "next_states"}
    assert {k: many[k].default for k in shared} == {k: one[k].default for k in shared}
