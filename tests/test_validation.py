"""Bad input gives clear errors naming the argument, the value and what is required."""

import numpy as np
import pytest

from conjugacy import delay_embed, koopman_spectrum


def good(shape=(2, 10, 3)):
    return np.cumsum(np.random.default_rng(0).standard_normal(shape), axis=1)


@pytest.mark.parametrize(
    "value, kind, pattern",
    [
        (np.nan, "NaN", r"trajectories\[1\] contains NaN at index \(4, 2\)"),
        (np.inf, "Inf", r"trajectories\[1\] contains Inf at index \(4, 2\)"),
    ],
)
def test_non_finite_values(value, kind, pattern):
    data = good()
    data[1, 4, 2] = value
    with pytest.raises(ValueError, match=pattern):
        koopman_spectrum(data)


@pytest.mark.parametrize(
    "kwargs", [dict(rank=3), dict(rank=3, pca=4), dict(rank=3, pca=4, path="dense"), dict()]
)
@pytest.mark.parametrize("value", [np.nan, -np.inf])
def test_non_finite_values_on_every_route(kwargs, value):
    # wide data: the Gram routes read NaN/Inf off the snapshot Gram's diagonal and then locate
    # it; the dense routes check first. Every route names the trajectory and the index.
    data = good((3, 12, 200))
    data[2, 7, 150] = value
    kind = "NaN" if np.isnan(value) else "Inf"
    with pytest.raises(ValueError, match=rf"trajectories\[2\] contains {kind} at index \(7, 150\)"):
        koopman_spectrum(data, delays=2, **kwargs)
    single = data[2]
    with pytest.raises(ValueError, match=rf"^trajectories contains {kind} at index \(7, 150\)"):
        koopman_spectrum(single, delays=2, **kwargs)


@pytest.mark.parametrize(
    "kwargs", [dict(rank=3), dict(rank=3, pca=4), dict(rank=3, path="dense"), dict()]
)
@pytest.mark.parametrize("scale, word", [(1e200, "overflow"), (1e-200, "underflow")])
def test_data_whose_squares_overflow_or_underflow_are_named_on_every_route(kwargs, scale, word):
    # new-user trial: 1e200 gave NaN residuals in memory (a clear error from memory maps), and
    # 1e-200 was called "zero"; every route squares the data somewhere, so all of them say so
    data = good((2, 12, 200)) * scale
    with pytest.raises(ValueError, match=f"squared norms? of .*{word}s? float64.*rescale"):
        koopman_spectrum(data, delays=2, **kwargs)


@pytest.mark.parametrize("shape", [(10,), (1, 2, 3, 4)])
def test_wrong_number_of_dimensions(shape):
    with pytest.raises(ValueError, match=r"trajectories must be 2-D or 3-D, got a \d-D array"):
        koopman_spectrum(np.ones(shape))


def test_mismatched_feature_counts():
    pattern = r"trajectories\[1\] has 4 features but trajectories\[0\] has 3"
    with pytest.raises(ValueError, match=pattern):
        koopman_spectrum([good((10, 3)), good((10, 4))])


def test_trajectory_too_short_for_delays():
    with pytest.raises(ValueError, match=r"trajectories\[1\] has 5 steps, too few for delays=4.*at least"
                                         r" delays \+ 2 = 6"):
        koopman_spectrum([good((10, 3)), good((5, 3))], delays=4)
    with pytest.raises(ValueError, match="too few for delays=3"):
        delay_embed(good((4, 2)), 3)


def test_rank_larger_than_the_data_allow():
    with pytest.raises(ValueError, match=r"rank=40 exceeds what the data allow: min\(n_observables=6,"):
        koopman_spectrum(good(), delays=1, rank=40)


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        ({"rank": 0}, ValueError, "rank must be >= 1, got 0"),
        ({"rank": 2.5}, TypeError, "rank must be an integer, got 2.5"),
        ({"delays": -1}, ValueError, "delays must be >= 0, got -1"),
        ({"method": "svd"}, ValueError, "method must be one of 'standard', 'exact', 'rrr', got 'svd'"),
        ({"tol": -1.0}, ValueError, "tol must be finite and > 0"),
        ({"pca": 0}, ValueError, "pca must be >= 1"),
        ({"path": "fast"}, ValueError, "path must be one of"),
        ({"scale": "yes"}, TypeError, "scale must be True or False"),
    ],
)
def test_bad_settings(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        koopman_spectrum(good(), **kwargs)


def test_non_numeric_dtype():
    with pytest.raises(TypeError, match=r"trajectories must hold numbers .* dtype <U1"):
        koopman_spectrum(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(TypeError, match=r"trajectories\[0\] must hold numbers"):
        koopman_spectrum([np.array([[None, 1.0], [2.0, 3.0]], dtype=object)])


def test_empty_inputs():
    with pytest.raises(ValueError, match="trajectories is empty"):
        koopman_spectrum([])
    with pytest.raises(ValueError, match="no trajectories"):
        koopman_spectrum(np.ones((0, 5, 2)))
    with pytest.raises(ValueError, match="zero features"):
        koopman_spectrum(np.ones((5, 0)))


def test_tol_of_one_or_more_is_refused():
    with pytest.raises(ValueError, match="tol must be below 1"):
        koopman_spectrum(good(), tol=2.0)


def test_gram_path_on_tall_data_keeps_at_most_the_observables():
    # new-user trial: path="gram", rank=None on 5 x 200 x 30 kept ~508 > 90 observables (the
    # Gram's noise eigenvalues) and then asked for GiBs
    x = good((5, 200, 30))
    spec = koopman_spectrum(x, delays=2, path="gram", method="standard")
    ref = koopman_spectrum(x, delays=2, path="dense", method="standard")
    assert spec.rank <= 90 and spec.rank == ref.rank
