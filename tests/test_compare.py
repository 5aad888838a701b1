"""Tests of conjugacy.compare: Wasserstein distances, semi-conjugacy, distance matrices, classes."""

from __future__ import annotations

import itertools
import re
from types import SimpleNamespace

import numpy as np
import ot
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from conjugacy.compare import (
    distance_matrix,
    equivalence_classes,
    optimal_matching,
    semiconjugacy_distance,
    wasserstein,
    wasserstein_plan,
)
from conjugacy.spectrum import Spectrum
from conjugacy.stats import conjugacy_test


def _cloud(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(size=n) + 1j * rng.normal(size=n)


def _pot(a, b, p, wa=None, wb=None):
    wa = np.full(a.size, 1 / a.size) if wa is None else wa / wa.sum()
    wb = np.full(b.size, 1 / b.size) if wb is None else wb / wb.sum()
    cost = np.abs(a[:, None] - b[None, :]) ** p
    return ot.emd2(wa, wb, cost) ** (1 / p), ot.emd(wa, wb, cost)


# ----- exact values ---------------------------------------------------------------------------
@pytest.mark.parametrize("p", [1, 2, 3.5])
def test_single_points_distance_is_their_modulus_difference(p):
    assert wasserstein([0.0], [3 + 4j], p=p) == pytest.approx(5.0, rel=1e-15)


def test_equal_sizes_hand_computed_and_matching():
    a = [0.0, 1j, 2.0]
    b = [2.0 + 1.0, 0.0 + 0.5, 1j]  # 0 -> 0.5 (0.5), 1j -> 1j (0), 2 -> 3 (1)
    res = wasserstein_plan(a, b)
    assert res.distance == pytest.approx(0.5, rel=1e-15)
    np.testing.assert_array_equal(res.matching, [1, 2, 0])
    np.testing.assert_allclose(res.plan, np.eye(3)[[1, 2, 0]] / 3)
    assert wasserstein(a, b, p=2) == pytest.approx(np.sqrt((0.25 + 0 + 1) / 3), rel=1e-15)
    with pytest.raises(ValueError):
        res.plan[0, 0] = 1.0  # frozen arrays


def test_unequal_sizes_split_mass_exactly():
    # a has 1/3 on each of 0, 1, 2; b has 1/2 on 0 and 2: the middle point splits 1/6 + 1/6.
    res = wasserstein_plan([0.0, 1.0, 2.0], [0.0, 2.0])
    assert res.distance == pytest.approx(1 / 3, rel=1e-12)
    np.testing.assert_allclose(res.plan, [[1 / 3, 0], [1 / 6, 1 / 6], [0, 1 / 3]], atol=1e-12)
    assert res.matching is None
    assert wasserstein([0.0], [0.0, 2.0], p=1) == pytest.approx(1.0, rel=1e-12)
    assert wasserstein([0.0], [0.0, 2.0], p=2) == pytest.approx(np.sqrt(2.0), rel=1e-12)


def test_no_point_is_dropped_when_sizes_differ():
    # The reference code matched 1 point and dropped the far one (distance 0); W_1 is 50.
    assert wasserstein([0.0], [0.0, 100.0]) == pytest.approx(50.0, rel=1e-12)


def test_weights_are_normalised_per_side():
    # a: 3/4 at 0 and 1/4 at 1; b: everything at 1 -> W_1 = 3/4.
    assert wasserstein([0.0, 1.0], [1.0], weights=([3, 1], [7])) == pytest.approx(0.75, rel=1e-12)
    # Uniform weights given explicitly equal the default (LP path vs assignment path).
    rng = np.random.default_rng(1)
    a, b = _cloud(rng, 6), _cloud(rng, 6)
    assert wasserstein(a, b, weights=(np.ones(6), np.full(6, 2.0))) == pytest.approx(
        wasserstein(a, b), rel=1e-10
    )
    # A zero weight removes a point.
    assert wasserstein([0.0, 9.0], [0.0], weights=([1, 0], [1])) == pytest.approx(0, abs=1e-12)


def test_accepts_spectrum_objects_and_real_arrays():
    eig = np.array([0.9, 0.5 + 0.2j, 0.5 - 0.2j])
    spec = Spectrum(
        eigenvalues=eig,
        residuals=np.zeros(3),
        plain_residuals=np.zeros(3),
        modes=None,
        singular_values=np.ones(3),
        rank=3,
        method="rrr",
        residuals_informative=True,
    )
    other = SimpleNamespace(eigenvalues=eig + 0.1)
    assert wasserstein(spec, other) == pytest.approx(0.1, rel=1e-12)
    assert wasserstein(spec, eig) == 0.0
    assert wasserstein([1, 2], np.array([1.5, 2.5])) == pytest.approx(0.5)


# ----- differential tests against POT and SciPy -------------------------------------------------
@pytest.mark.parametrize(("n_a", "n_b"), [(4, 4), (3, 7), (9, 5), (20, 13)])
@pytest.mark.parametrize("p", [1, 2, 3])
def test_matches_pot_for_any_sizes(n_a, n_b, p):
    rng = np.random.default_rng(100 * n_a + n_b + p)
    a, b = _cloud(rng, n_a), _cloud(rng, n_b)
    ref_distance, ref_plan = _pot(a, b, p)
    res = wasserstein_plan(a, b, p=p)
    assert res.distance == pytest.approx(ref_distance, rel=1e-10)
    np.testing.assert_allclose(res.plan, ref_plan, atol=1e-9)  # generic points: unique plan


@pytest.mark.parametrize(("n_a", "n_b"), [(5, 5), (4, 9)])
def test_matches_pot_with_weights(n_a, n_b):
    rng = np.random.default_rng(n_a * n_b)
    a, b = _cloud(rng, n_a), _cloud(rng, n_b)
    wa, wb = rng.uniform(0.1, 2.0, n_a), rng.uniform(0.1, 2.0, n_b)
    for p in (1, 2):
        ref_distance, ref_plan = _pot(a, b, p, wa, wb)
        res = wasserstein_plan(a, b, p=p, weights=(wa, wb))
        assert res.distance == pytest.approx(ref_distance, rel=1e-10)
        np.testing.assert_allclose(res.plan, ref_plan, atol=1e-9)
        np.testing.assert_allclose(res.plan.sum(axis=1), wa / wa.sum(), atol=1e-10)
        np.testing.assert_allclose(res.plan.sum(axis=0), wb / wb.sum(), atol=1e-10)


@pytest.mark.parametrize(("n_a", "n_b"), [(6, 6), (5, 11), (12, 3)])
def test_matches_scipy_on_real_eigenvalues(n_a, n_b):
    rng = np.random.default_rng(n_a + 17 * n_b)
    a, b = rng.normal(size=n_a), rng.normal(1.0, 2.0, size=n_b)
    assert wasserstein(a, b) == pytest.approx(scipy.stats.wasserstein_distance(a, b), rel=1e-10)
    wa, wb = rng.uniform(0.1, 1, n_a), rng.uniform(0.1, 1, n_b)
    assert wasserstein(a, b, weights=(wa, wb)) == pytest.approx(
        scipy.stats.wasserstein_distance(a, b, wa, wb), rel=1e-10
    )


# ----- metric properties (hypothesis) -----------------------------------------------------------
_coord = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False)
_spectra = st.lists(st.builds(complex, _coord, _coord), min_size=1, max_size=6)
_p = st.sampled_from([1, 2, 1.5])


@settings(max_examples=60, deadline=None)
@given(a=_spectra, b=_spectra, p=_p)
def test_symmetry_and_identity(a, b, p):
    d_ab = wasserstein(a, b, p=p)
    assert d_ab >= 0
    assert d_ab == pytest.approx(wasserstein(b, a, p=p), rel=1e-9, abs=1e-12)
    assert wasserstein(a, a, p=p) == pytest.approx(0.0, abs=1e-12)
    assert wasserstein(a, list(reversed(a)), p=p) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(a=_spectra, b=_spectra, c=_spectra, p=_p)
def test_triangle_inequality(a, b, c, p):
    assert wasserstein(a, c, p=p) <= wasserstein(a, b, p=p) + wasserstein(b, c, p=p) + 1e-9


@settings(max_examples=40, deadline=None)
@given(a=_spectra, p=_p)
def test_duplicating_every_point_changes_nothing(a, p):
    # Uniform measures: repeating each eigenvalue twice is the same distribution.
    rng = np.random.default_rng(len(a))
    b = _cloud(rng, 3)
    assert wasserstein(a + a, b, p=p) == pytest.approx(wasserstein(a, b, p=p), rel=1e-8, abs=1e-10)


# ----- semi-conjugacy -------------------------------------------------------------------------
def test_semiconjugacy_zero_on_subsets_and_hand_values():
    large = [0.9, 0.5 + 0.2j, 0.5 - 0.2j, -0.3]
    assert semiconjugacy_distance([0.5 - 0.2j, 0.9], large) == 0.0
    assert semiconjugacy_distance(large, large) == 0.0
    assert semiconjugacy_distance([1.0], [0.0, 3.0]) == pytest.approx(1.0)
    # 0 -> 0.5 and 1 -> 3 (costs 0.25 + 4) beats 0 -> 3 and 1 -> 0.5 (9 + 0.25).
    assert semiconjugacy_distance([0.0, 1.0], [0.5, 3.0], p=2) == pytest.approx(np.sqrt(4.25 / 2))
    # Each small eigenvalue needs a distinct partner: two copies of 0 cannot both use 0.
    assert semiconjugacy_distance([0.0, 0.0], [0.0, 2.0, 5.0]) == pytest.approx(1.0)


def test_semiconjugacy_equals_wasserstein_for_equal_sizes():
    rng = np.random.default_rng(3)
    a, b = _cloud(rng, 7), _cloud(rng, 7)
    for p in (1, 2):
        assert semiconjugacy_distance(a, b, p=p) == pytest.approx(wasserstein(a, b, p=p))


def test_semiconjugacy_rejects_small_larger_than_large():
    with pytest.raises(ValueError, match="small has 3 eigenvalues but large has only 2"):
        semiconjugacy_distance([1, 2, 3], [1, 2])


# ----- distance matrix and classes ---------------------------------------------------------------
def test_distance_matrix_is_symmetric_with_zero_diagonal():
    rng = np.random.default_rng(4)
    spectra = [_cloud(rng, 5), _cloud(rng, 5), _cloud(rng, 3), SimpleNamespace(eigenvalues=[0j])]
    d = distance_matrix(spectra, p=2)
    assert d.shape == (4, 4)
    np.testing.assert_array_equal(d, d.T)
    np.testing.assert_array_equal(np.diag(d), 0.0)
    assert d[0, 2] == pytest.approx(wasserstein(spectra[0], spectra[2], p=2))
    assert d[1, 3] == pytest.approx(wasserstein(spectra[1], [0j], p=2))


def _three_families(rng):
    bases = [
        np.array([0.95, 0.7, 0.4]),
        np.array([0.9 + 0.3j, 0.9 - 0.3j, 0.2]),
        np.array([-0.5, 0.1 + 0.8j, 0.1 - 0.8j]),
    ]
    order = [1, 0, 0, 2, 1, 2, 0, 1]
    spectra = [bases[k] + 0.01 * _cloud(rng, 3) for k in order]
    return spectra, order


def test_equivalence_classes_recover_families():
    spectra, order = _three_families(np.random.default_rng(5))
    expected = [0, 1, 1, 2, 0, 2, 1, 0]  # families renumbered by first appearance
    for linkage in ("average", "single", "complete", "weighted"):
        by_count = equivalence_classes(spectra, n_classes=3, linkage=linkage)
        np.testing.assert_array_equal(by_count.labels, expected)
        assert by_count.n_classes == 3
        assert by_count.linkage_matrix.shape == (7, 4)
        by_threshold = equivalence_classes(spectra, threshold=0.2, linkage=linkage)
        np.testing.assert_array_equal(by_threshold.labels, expected)
    matrix = distance_matrix(spectra)
    from_matrix = equivalence_classes(matrix, n_classes=3)
    np.testing.assert_array_equal(from_matrix.labels, expected)
    np.testing.assert_allclose(from_matrix.distance_matrix, matrix)
    assert equivalence_classes(spectra, threshold=100.0).n_classes == 1
    assert equivalence_classes(spectra, threshold=0.0).n_classes == 8  # distinct spectra
    np.testing.assert_array_equal(equivalence_classes(spectra, n_classes=8).labels, range(8))


def test_equivalence_classes_single_spectrum():
    res = equivalence_classes([[0.5, 0.2]], n_classes=1)
    np.testing.assert_array_equal(res.labels, [0])
    assert res.n_classes == 1 and res.linkage_matrix.shape == (0, 4)


# ----- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b", "kwargs", "message"),
    [
        ([], [1.0], {}, "a is empty"),
        ([1.0], np.array([], complex), {}, "b is empty"),
        ([1.0, np.nan], [1.0], {}, re.escape("a contains NaN at index (1,)")),
        ([1.0], [complex(1, np.inf)], {}, re.escape("b contains Inf at index (0,)")),
        ([[1.0, 2.0]], [1.0], {}, re.escape("a must be 1-D, got a 2-D array of shape (1, 2); "
                                            "one eigenvalue per entry, or a Spectrum")),
        ([1.0], [1.0], {"p": 0.5}, "p must be finite and >= 1.*got 0.5"),
        ([1.0], [1.0], {"p": np.inf}, "p must be finite and >= 1"),
        ([1.0], [1.0], {"weights": [1.0]}, "weights must be None or a pair"),
        ([1.0, 2.0], [1.0], {"weights": ([1, -1], [1])}, r"weights\[0\].*>= 0, got -1.0 at"),
        ([1.0, 2.0], [1.0], {"weights": ([1], [1])}, r"weights\[0\].*one weight per.*\(2\)"),
        ([1.0, 2.0], [1.0], {"weights": ([1, 1], [0])}, r"weights\[1\].*positive sum"),
        ([1.0, 2.0], [1.0], {"weights": ([1, np.nan], [1])}, r"weights\[0\].*NaN"),
    ],
)
def test_bad_input_is_named(a, b, kwargs, message):
    with pytest.raises(ValueError, match=message):
        wasserstein(a, b, **kwargs)


def test_bad_types():
    with pytest.raises(TypeError, match="a must hold numbers"):
        wasserstein(["x"], [1.0])
    with pytest.raises(TypeError, match="p must be a real number"):
        wasserstein([1.0], [1.0], p="2")
    with pytest.raises(ValueError, match="small is empty"):
        semiconjugacy_distance([], [1.0])
    with pytest.raises(ValueError, match="p must be finite and >= 1"):
        semiconjugacy_distance([1.0], [1.0], p=0)


def test_bad_distance_matrix_and_class_arguments():
    spectra, _ = _three_families(np.random.default_rng(6))
    with pytest.raises(ValueError, match="exactly one of threshold and n_classes"):
        equivalence_classes(spectra)
    with pytest.raises(ValueError, match="exactly one of threshold and n_classes"):
        equivalence_classes(spectra, threshold=1.0, n_classes=2)
    with pytest.raises(ValueError, match="linkage must be one of.*got 'ward'"):
        equivalence_classes(spectra, n_classes=2, linkage="ward")
    with pytest.raises(ValueError, match=r"n_classes must be <= the number of spectra \(8\)"):
        equivalence_classes(spectra, n_classes=9)
    with pytest.raises(ValueError, match="n_classes must be >= 1"):
        equivalence_classes(spectra, n_classes=0)
    with pytest.raises(ValueError, match="threshold must be finite and >= 0"):
        equivalence_classes(spectra, threshold=-1.0)
    with pytest.raises(ValueError, match=re.escape("spectra_or_matrix[2] contains NaN")):
        equivalence_classes([[1.0], [2.0], [np.nan]], n_classes=1)
    with pytest.raises(ValueError, match="spectra_or_matrix must be symmetric"):
        equivalence_classes(np.array([[0.0, 1.0], [2.0, 0.0]]), n_classes=1)
    with pytest.raises(ValueError, match="spectra_or_matrix must have a zero diagonal"):
        equivalence_classes(np.array([[1.0, 1.0], [1.0, 0.0]]), n_classes=1)
    with pytest.raises(ValueError, match=r"must be non-negative, got -1.0 at index \(0, 1\)"):
        equivalence_classes(np.array([[0.0, -1.0], [-1.0, 0.0]]), n_classes=1)
    with pytest.raises(ValueError, match="spectra is empty"):
        distance_matrix([])
    with pytest.raises(ValueError, match="spectra must be a sequence of spectra.*wrap it"):
        distance_matrix(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=re.escape("spectra[1] is empty")):
        distance_matrix([[1.0], []])


# ----- exact at every scale (issue 13, section 1) ----------------------------------------------
SPREADS = [1e-12, 1e-9, 1e-6, 1e-3, 1.0, 1e3]
ORDERS = [1, 2, 3, 50]


def _pnorm(terms: np.ndarray, masses: np.ndarray, p: float) -> float:
    """``(sum masses * terms**p) ** (1/p)`` without overflow or underflow."""
    m = float(terms.max())
    return 0.0 if m == 0 else m * float(np.sum(masses * (terms / m) ** p)) ** (1 / p)


def _closed_form_1d(a: np.ndarray, b: np.ndarray, p: float) -> float:
    """W_p between uniform measures on real points: the monotone (quantile) coupling is optimal.

    ``W_p^p = integral_0^1 |F_a^-1(t) - F_b^-1(t)|^p dt``, a sum over the merged breakpoints
    ``k / n_a`` and ``l / n_b`` (exact fractions).
    """
    from fractions import Fraction

    a, b = np.sort(a), np.sort(b)
    cuts = sorted(
        {Fraction(k, a.size) for k in range(a.size + 1)}
        | {Fraction(k, b.size) for k in range(b.size + 1)}
    )
    terms, masses = [], []
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        mid = (lo + hi) / 2
        i, j = int(mid * a.size), int(mid * b.size)
        terms.append(abs(a[i] - b[j]))
        masses.append(float(hi - lo))
    return _pnorm(np.array(terms), np.array(masses), p)


def test_issue_example_near_coincident_unequal_sizes():
    # Was 1.26e-6: the LP got raw costs with absolute tolerances.
    assert wasserstein([0, 1e-6, 2e-6], [0.5e-6, 1.5e-6], p=2) == pytest.approx(5e-7, rel=1e-12)
    # Every quantile pairing is at distance h/2, so W_p = h/2 for every p and every spread h.
    for h in SPREADS + [1e-300, 1e-150, 1e150, 1e300]:
        for p in ORDERS:
            got = wasserstein(np.array([0.0, 1.0, 2.0]) * h, np.array([0.5, 1.5]) * h, p=p)
            assert got == pytest.approx(h / 2, rel=1e-12), (h, p)


@pytest.mark.parametrize("spread", SPREADS)
@pytest.mark.parametrize("offset", [0.0, 0.9])
def test_real_spectra_match_the_closed_form_at_every_spread(spread, offset):
    rng = np.random.default_rng(int(-np.log10(spread)) + 100 + int(10 * offset))
    base = rng.normal(size=5)
    a = offset + spread * base
    for n_b, noise in ((5, 0.01), (7, 0.01), (3, 1.0)):  # near-coincident and generic
        b = offset + spread * (np.tile(base, 2)[:n_b] + noise * rng.normal(size=n_b))
        for p in ORDERS:
            assert wasserstein(a, b, p=p) == pytest.approx(_closed_form_1d(a, b, p), rel=1e-9)


def _pot_rescaled(x, y, p, scale, wa=None, wb=None):
    """POT's W_p on costs normalised by ``scale`` (an estimate of the answer) and capped at
    ``4 n_a n_b`` times the answer, which never binds for uniform masses; returns (W, true cost of
    POT's plan)."""
    wa = np.full(x.size, 1 / x.size) if wa is None else wa / wa.sum()
    wb = np.full(y.size, 1 / y.size) if wb is None else wb / wb.sum()
    d = np.abs(x[:, None] - y[None, :]) / scale
    cost = np.minimum(d, (4.0 * x.size * y.size) ** (1 / p)) ** p
    plan = ot.emd(wa, wb, cost, numItermax=10**7)
    return scale * float(np.sum(plan * cost)) ** (1 / p), scale * _pnorm(d[plan > 0], plan[plan > 0], p)


@pytest.mark.parametrize("spread", SPREADS)
@pytest.mark.parametrize(("n_a", "n_b"), [(6, 6), (4, 9), (10, 7)])
def test_complex_spectra_match_pot_on_the_rescaled_problem(spread, n_a, n_b):
    rng = np.random.default_rng(n_a * n_b + int(-np.log10(spread)) + 12)
    offset = 0.6 + 0.3j
    x = _cloud(rng, n_a)
    y = np.tile(x, 3)[:n_b] + 1e-3 * _cloud(rng, n_b)  # near-coincident, unequal multiplicities
    a, b = offset + spread * x, offset + spread * y
    # The exact problem is the rounded points: their offsets from `offset` are exact (Sterbenz)
    # for spreads below ~0.3, and within 1e-16 absolute above.
    xs, ys = (a - offset) / spread, (b - offset) / spread
    for p in ORDERS:
        got = wasserstein(a, b, p=p)
        if p < 50:
            cost = np.abs(xs[:, None] - ys[None, :]) ** p
            ref = ot.emd2(np.full(n_a, 1 / n_a), np.full(n_b, 1 / n_b), cost)
            assert got == pytest.approx(spread * ref ** (1 / p), rel=1e-9), p
        # p = 50: raw costs span 1e+-50 and POT's network simplex itself is inexact (it returned a
        # plan 7 % too expensive on a 3 x 5 problem); it is exact on the normalised, capped costs.
        ref, ref_plan_cost = _pot_rescaled(xs, ys, p, got / spread)
        assert got == pytest.approx(spread * ref, rel=1e-9), p
        assert got <= spread * ref_plan_cost * (1 + 1e-12)


@pytest.mark.parametrize("magnitude", [1e-300, 1e-200, 1e-150, 1e150, 1e200, 1e300])
@pytest.mark.parametrize("p", [1, 2, 50])
def test_extreme_magnitudes_are_scale_free(magnitude, p):
    rng = np.random.default_rng(3)
    x, y = _cloud(rng, 4), _cloud(rng, 6)
    w = wasserstein(x, y, p=p)
    assert wasserstein(magnitude * x, magnitude * y, p=p) == pytest.approx(magnitude * w, rel=1e-12)
    assert wasserstein(magnitude * x[:3], magnitude * y[:3], p=p) == pytest.approx(
        magnitude * wasserstein(x[:3], y[:3], p=p), rel=1e-12
    )
    assert semiconjugacy_distance(magnitude * x, magnitude * y, p=p) == pytest.approx(
        magnitude * semiconjugacy_distance(x, y, p=p), rel=1e-12
    )


def test_largest_finite_inputs_give_a_result_or_a_clear_error():
    big = np.finfo(float).max
    assert wasserstein([big], [big / 2], p=50) == pytest.approx(big / 2, rel=1e-15)
    assert wasserstein([big, -big / 4], [big / 2], p=3) == pytest.approx(
        big * (0.5 * 0.5**3 + 0.5 * 0.75**3) ** (1 / 3), rel=1e-12
    )
    with pytest.raises(ValueError, match=r"distance \(~1e308\.\d\) exceeds the float64 range"):
        wasserstein([-big], [big])
    tiny = 5e-324  # the smallest subnormal
    assert wasserstein([0.0, 2 * tiny], [tiny], p=2) == tiny


def test_weighted_near_coincident_and_large_problems_match_pot():
    rng = np.random.default_rng(21)
    # Weights (linear program) at spread 1e-10 around 0.9.
    x, y = _cloud(rng, 5), _cloud(rng, 8)
    wa, wb = rng.uniform(0.1, 2, 5), rng.uniform(0.1, 2, 8)
    a, b = 0.9 + 1e-10 * x, 0.9 + 1e-10 * y
    xs, ys = (a - 0.9) / 1e-10, (b - 0.9) / 1e-10
    for p in (1, 2, 3):
        ref = ot.emd2(wa / wa.sum(), wb / wb.sum(), np.abs(xs[:, None] - ys[None, :]) ** p)
        got = wasserstein(a, b, p=p, weights=(wa, wb))
        assert got == pytest.approx(1e-10 * ref ** (1 / p), rel=1e-9)
    # lcm(33, 35) = 1155 > 1024: the linear program, at a large and at a tiny scale.
    x, y = _cloud(rng, 33), _cloud(rng, 35)
    for scale, p in ((1e3, 2), (1e-9, 1), (1e3, 50)):
        got = wasserstein(scale * x, scale * y, p=p)
        ref, plan_cost = _pot_rescaled(x, y, p, got / scale)
        assert got == pytest.approx(scale * ref, rel=1e-9)
        assert got <= scale * plan_cost * (1 + 1e-9)


def test_replicated_assignment_plan_is_exact_in_multiples_of_one_over_lcm():
    rng = np.random.default_rng(8)
    res = wasserstein_plan(_cloud(rng, 4), _cloud(rng, 6))  # lcm 12
    np.testing.assert_array_equal(res.plan * 12, np.round(res.plan * 12))
    np.testing.assert_allclose(res.plan.sum(axis=1), 1 / 4, rtol=1e-15)
    np.testing.assert_allclose(res.plan.sum(axis=0), 1 / 6, rtol=1e-15)


def _brute_semiconjugacy(small, large, p):
    best = np.inf
    for perm in itertools.permutations(range(large.size), small.size):
        masses = np.full(small.size, 1 / small.size)
        best = min(best, _pnorm(np.abs(small - large[list(perm)]), masses, p))
    return best


@pytest.mark.parametrize("spread", [1e-12, 1e-6, 1.0, 1e3])
def test_semiconjugacy_is_exact_at_every_scale(spread):
    rng = np.random.default_rng(int(-np.log10(spread)) + 40)
    large = 0.5 - 0.2j + spread * _cloud(rng, 6)
    small = large[[4, 1, 2]] + spread * 1e-2 * _cloud(rng, 3)
    for p in ORDERS:
        assert semiconjugacy_distance(small, large, p=p) == pytest.approx(
            _brute_semiconjugacy(small, large, p), rel=1e-9
        )


def test_optimal_matching_is_scale_free_and_oriented():
    rng = np.random.default_rng(12)
    a, b = _cloud(rng, 3), _cloud(rng, 5)
    rows, cols = optimal_matching(a, b, p=2)
    np.testing.assert_array_equal(rows, [0, 1, 2])
    for shifted_a, shifted_b in ((0.9 + 1e-12 * a, 0.9 + 1e-12 * b), (1e12 * a, 1e12 * b)):
        np.testing.assert_array_equal(optimal_matching(shifted_a, shifted_b, p=2)[1], cols)
    rows_t, cols_t = optimal_matching(b, a, p=2)  # larger first: rows index b, increasing
    np.testing.assert_array_equal(np.sort(rows_t), rows_t)
    np.testing.assert_array_equal(rows_t, np.sort(cols))
    np.testing.assert_array_equal(cols_t, rows[np.argsort(cols)])


def test_distance_matrix_and_classes_at_a_tiny_scale():
    rng = np.random.default_rng(5)
    spectra, _ = _three_families(rng)
    scale, offset = 1e-9, 0.3 + 0.1j
    tiny = [offset + scale * s for s in spectra]
    exact = [(t - offset) / scale for t in tiny]  # the rounded problem, rescaled
    np.testing.assert_allclose(
        distance_matrix(tiny, p=2), scale * distance_matrix(exact, p=2), rtol=1e-9
    )
    expected = [0, 1, 1, 2, 0, 2, 1, 0]
    np.testing.assert_array_equal(equivalence_classes(tiny, n_classes=3).labels, expected)
    np.testing.assert_array_equal(equivalence_classes(tiny, threshold=0.2 * scale).labels, expected)
    # Distances near the float64 limit: averages in the linkage must not overflow.
    big = np.array([[0.0, 1.7e308, 1.6e308], [1.7e308, 0.0, 1e307], [1.6e308, 1e307, 0.0]])
    for linkage in ("average", "weighted", "single", "complete"):
        classes = equivalence_classes(big, n_classes=2, linkage=linkage)
        np.testing.assert_array_equal(classes.labels, [0, 1, 1])
        assert np.isfinite(classes.linkage_matrix).all()
        assert classes.linkage_matrix[0, 2] == pytest.approx(1e307, rel=1e-15)
        np.testing.assert_array_equal(
            equivalence_classes(big, threshold=1.1e307, linkage=linkage).labels, [0, 1, 1]
        )
    assert equivalence_classes(big, n_classes=3).distance_matrix[0, 1] == 1.7e308


def test_result_reprs_are_short():
    rng = np.random.default_rng(0)
    res = wasserstein_plan(_cloud(rng, 40), _cloud(rng, 30))
    assert repr(res) == (
        f"WassersteinResult(distance={res.distance:.6g}, p=1, sizes=(40, 30), "
        "matching=no (mass is split))"
    )
    classes = equivalence_classes([_cloud(rng, 3) for _ in range(50)], n_classes=4)
    assert len(repr(classes)) < 300 and "n_classes=4" in repr(classes)


# ----- Spectrum objects (plain and filtered) -------------------------------------------------------
def _runs(eigenvalues, seed, n_runs=4, n_steps=30, n_features=6, noise=0.01):
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(n_features, n_features)))[0]
    lift = basis[:, : len(eigenvalues)]
    out = np.empty((n_runs, n_steps, n_features))
    for k in range(n_runs):
        x = rng.normal(size=len(eigenvalues))
        for t in range(n_steps):
            out[k, t] = lift @ x + noise * rng.normal(size=n_features)
            x = np.asarray(eigenvalues) * x
    return out


def test_functions_take_koopman_spectra_plain_and_filtered():
    from conjugacy import koopman_spectrum

    plain = [koopman_spectrum(_runs([0.9, 0.5, -0.3], seed), delays=1, rank=5) for seed in range(3)]
    filtered = [s.filtered() for s in plain]
    assert all(len(f) < len(s) for f, s in zip(filtered, plain)) and "filter" in filtered[0].settings
    for group in (plain, filtered, [plain[0], filtered[1], plain[2]]):
        arrays = [np.array(s.eigenvalues) for s in group]
        assert wasserstein(group[0], group[1], p=2) == wasserstein(arrays[0], arrays[1], p=2)
        np.testing.assert_array_equal(distance_matrix(group), distance_matrix(arrays))
        np.testing.assert_array_equal(
            equivalence_classes(group, n_classes=2).labels,
            equivalence_classes(arrays, n_classes=2).labels,
        )
    assert semiconjugacy_distance(filtered[0], plain[0]) == 0.0  # a filtered spectrum is a subset
    rows, cols = optimal_matching(filtered[0], plain[1])
    assert rows.size == len(filtered[0])
    empty = filtered[0].filtered(max_residual=1e-12)  # residuals are ~1e-2: nothing is left
    assert len(empty) == 0
    with pytest.raises(ValueError, match="a is empty.*filter dropped every eigenvalue"):
        wasserstein(empty, plain[0])
    with pytest.raises(ValueError, match=r"group_b\[1\] is empty.*filter dropped"):
        conjugacy_test(plain[:2], [plain[2], empty])
