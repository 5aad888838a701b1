"""Tests of conjugacy.stats: the paper's shuffle control, the permutation test, the KS test."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import scipy.stats

from conjugacy.compare import distance_matrix, wasserstein
from conjugacy.stats import conjugacy_test, ks_test, min_pvalue, shuffle_control

BASE = np.array([0.95, 0.8, 0.6 + 0.3j, 0.6 - 0.3j, 0.3, -0.2])


def _noisy_copies(rng, base, m, sigma=0.05):
    return [
        base + sigma * (rng.normal(size=base.size) + 1j * rng.normal(size=base.size)) for _ in range(m)
    ]


# ----- shuffle control ----------------------------------------------------------------------
def test_shuffle_control_hand_case():
    # Pairs (0, 1) and (0.1j, 1 + 0.1j), optimal matching cost 1 each (W_1 = 1). Swapping exactly
    # one pair gives {1, 0.1j} vs {0, 1 + 0.1j}: W_1 = 0.1. Swapping none or both: W_1 = 1.
    a, b = [0.0, 0.1j], [1.0, 1 + 0.1j]
    res = shuffle_control(a, b, n_shuffles=200, seed=0)
    assert res.true_distance == pytest.approx(1.0)
    assert res.n_shuffles == 200 and res.shuffled_distances.shape == (200,)
    one = np.isclose(res.shuffled_distances, 1.0, rtol=1e-12)
    tenth = np.isclose(res.shuffled_distances, 0.1, rtol=1e-12)
    assert np.all(one | tenth)
    assert res.fraction == pytest.approx(one.mean())
    assert 0.35 < res.fraction < 0.65  # each shuffle ties with probability 1/2


def test_shuffle_control_never_exceeds_true_distance_for_equal_sizes():
    # The caveat documented in the docstring, checked on random spectra of different processes.
    rng = np.random.default_rng(1)
    for _ in range(5):
        a = _noisy_copies(rng, BASE, 1)[0]
        b = _noisy_copies(rng, BASE * 0.5 + 0.3j, 1)[0]
        for p in (1, 2):
            res = shuffle_control(a, b, n_shuffles=50, seed=2, p=p)
            assert res.true_distance == pytest.approx(wasserstein(a, b, p=p))
            assert np.all(res.shuffled_distances <= res.true_distance * (1 + 1e-12))
            # The fraction counts ties only.
            ties = res.shuffled_distances >= res.true_distance * (1 - 1e-9)
            assert res.fraction == pytest.approx(ties.mean())


def test_shuffle_control_identical_sets_and_determinism():
    res = shuffle_control(BASE, BASE[::-1], n_shuffles=20, seed=3)
    assert res.true_distance == 0.0 and res.fraction == 1.0
    a, b = [0.0, 0.1j, 0.5], [1.0, 1 + 0.1j, 0.6]
    r1 = shuffle_control(a, b, n_shuffles=30, seed=5)
    r2 = shuffle_control(a, b, n_shuffles=30, seed=5)
    np.testing.assert_array_equal(r1.shuffled_distances, r2.shuffled_distances)
    r3 = shuffle_control(a, b, n_shuffles=30, seed=6)
    assert not np.array_equal(r1.shuffled_distances, r3.shuffled_distances)


def test_shuffle_control_unequal_sizes_swaps_matched_pairs_only():
    # a = {0}, b = {1, -10}: 0 is matched to 1; the far point -10 never moves.
    res = shuffle_control([0.0], [1.0, -10.0], n_shuffles=50, seed=0)
    assert res.true_distance == pytest.approx(0.5 * 1 + 0.5 * 10)
    swapped = wasserstein([1.0], [0.0, -10.0])  # = 0.5 * 1 + 0.5 * 11: can exceed the truth
    assert np.all(
        np.isclose(res.shuffled_distances, res.true_distance)
        | np.isclose(res.shuffled_distances, swapped)
    )
    assert swapped > res.true_distance


# ----- permutation test ------------------------------------------------------------------------
def test_exact_enumeration_hand_case():
    group_a, group_b = [[0.0], [0.1]], [[10.0], [10.1]]
    res = conjugacy_test(group_a, group_b)
    # between: mean(10, 10.1, 9.9, 10) = 10; within: 0.1 and 0.1.
    assert res.statistic == pytest.approx(9.9)
    assert res.exact and res.n_permutations == 6
    # The other two partitions (each counted twice) have T = 5.05 - 10 = -4.95.
    np.testing.assert_allclose(np.sort(res.null_distribution), [-4.95] * 4 + [9.9] * 2)
    assert res.pvalue == pytest.approx(2 / 6)
    np.testing.assert_allclose(res.distance_matrix, distance_matrix(group_a + group_b))


def _brute_force_statistic(d, members_a):
    members_b = [i for i in range(d.shape[0]) if i not in members_a]
    between = np.mean([d[i, j] for i in members_a for j in members_b])
    within_a = np.mean([d[i, j] for i in members_a for j in members_a if i != j])
    within_b = np.mean([d[i, j] for i in members_b for j in members_b if i != j])
    return between - 0.5 * (within_a + within_b)


def test_exact_null_distribution_equals_brute_force():
    rng = np.random.default_rng(7)
    group_a, group_b = _noisy_copies(rng, BASE, 3, 0.2), _noisy_copies(rng, BASE, 4, 0.2)
    res = conjugacy_test(group_a, group_b, p=2)
    d = res.distance_matrix
    expected = [_brute_force_statistic(d, list(c)) for c in itertools.combinations(range(7), 3)]
    assert res.exact and res.n_permutations == 35
    np.testing.assert_allclose(res.null_distribution, expected, rtol=1e-12)
    assert res.statistic == pytest.approx(_brute_force_statistic(d, [0, 1, 2]), rel=1e-12)
    assert res.pvalue == pytest.approx(np.mean(np.array(expected) >= res.statistic - 1e-12))


def test_random_relabelings_pvalue_formula_and_determinism():
    rng = np.random.default_rng(8)
    group_a, group_b = _noisy_copies(rng, BASE, 6), _noisy_copies(rng, BASE, 6)  # C(12, 6) = 924
    res = conjugacy_test(group_a, group_b, n_permutations=199, seed=11)
    assert not res.exact and res.n_permutations == 199 and res.null_distribution.shape == (199,)
    count = np.count_nonzero(res.null_distribution >= res.statistic - 1e-12)
    assert res.pvalue == pytest.approx((1 + count) / 200)
    again = conjugacy_test(group_a, group_b, n_permutations=199, seed=11)
    np.testing.assert_array_equal(res.null_distribution, again.null_distribution)
    assert res.pvalue == again.pvalue
    other = conjugacy_test(group_a, group_b, n_permutations=199, seed=12)
    assert not np.array_equal(res.null_distribution, other.null_distribution)


def _rejection_rate(rng, shift, n_experiments, m_a, m_b, n_permutations):
    rejections = 0
    for k in range(n_experiments):
        group_a = _noisy_copies(rng, BASE, m_a)
        group_b = _noisy_copies(rng, shift(BASE), m_b)
        res = conjugacy_test(group_a, group_b, n_permutations=n_permutations, seed=k)
        rejections += res.pvalue <= 0.05
    return rejections / n_experiments


@pytest.mark.parametrize(
    ("m_a", "m_b", "n_permutations"),
    [(5, 5, 999), (4, 6, 99)],  # exact enumeration (252 relabelings); random relabelings
)
def test_false_positive_rate_under_the_null(m_a, m_b, n_permutations):
    """Both groups are noisy copies of the same eigenvalue set: reject at most 5 % of the time."""
    n = 400
    rate = _rejection_rate(np.random.default_rng(2024), lambda x: x, n, m_a, m_b, n_permutations)
    bound = 0.05 + 3 * np.sqrt(0.05 * 0.95 / n)
    assert rate <= bound, f"false-positive rate {rate:.3f} > {bound:.3f}"
    assert rate > 0.0  # a test that never rejects is not calibrated, just useless


def test_power_against_a_different_process():
    """Group b is a rotated, contracted spectrum (different dynamics): reject nearly always."""
    rate = _rejection_rate(np.random.default_rng(99), lambda x: 0.95 * x * np.exp(0.15j), 100, 5, 5, 999)
    assert rate >= 0.9, f"power {rate:.2f} < 0.9"


# ----- KS test ---------------------------------------------------------------------------------
def test_ks_test_matches_scipy():
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=25), rng.normal(0.8, 1.0, size=30)
    ref = scipy.stats.ks_2samp(a, b)
    res = ks_test(a, b)
    assert res.statistic == pytest.approx(ref.statistic) and res.pvalue == pytest.approx(ref.pvalue)
    less = ks_test(a, b, alternative="less")
    assert less.pvalue == pytest.approx(scipy.stats.ks_2samp(a, b, alternative="less").pvalue)
    same = ks_test([1.0, 2.0, 3.0], [3.0, 1.0, 2.0])
    assert same.statistic == 0.0 and same.pvalue == 1.0
    apart = ks_test(np.arange(10.0), np.arange(10.0) + 100)
    assert apart.statistic == 1.0 and apart.pvalue < 1e-4


# ----- bad input -------------------------------------------------------------------------------
def test_bad_input_shuffle_control():
    with pytest.raises(ValueError, match="a is empty"):
        shuffle_control([], [1.0])
    with pytest.raises(ValueError, match=re.escape("b contains NaN at index (0,)")):
        shuffle_control([1.0], [np.nan])
    with pytest.raises(ValueError, match="n_shuffles must be >= 1, got 0"):
        shuffle_control([1.0], [1.0], n_shuffles=0)
    with pytest.raises(ValueError, match="p must be finite and >= 1"):
        shuffle_control([1.0], [1.0], p=0.9)
    with pytest.raises(ValueError, match="^seed must be a non-negative integer, got -1$"):
        shuffle_control([1.0], [1.0], seed=-1)
    with pytest.raises(TypeError, match="seed must be None"):
        shuffle_control([1.0], [1.0], seed=1.5)


def test_bad_input_conjugacy_test():
    good = [[0.5, 0.2], [0.4, 0.1]]
    with pytest.raises(ValueError, match="group_a has 1 spectrum.*at least 2 per group"):
        conjugacy_test([[0.5]], good)
    with pytest.raises(ValueError, match="group_b has 1 spectrum"):
        conjugacy_test(good, [[0.5]])
    with pytest.raises(ValueError, match="group_b is empty"):
        conjugacy_test(good, [])
    with pytest.raises(ValueError, match=re.escape("group_b[1] contains NaN at index (1,)")):
        conjugacy_test(good, [[0.5, 0.2], [0.4, np.nan]])
    with pytest.raises(ValueError, match=re.escape("group_a[0] is empty")):
        conjugacy_test([[], [1.0]], good)
    with pytest.raises(ValueError, match="group_a must be a sequence of spectra.*single 1-D array"):
        conjugacy_test(np.array([0.5, 0.2]), good)
    with pytest.raises(ValueError, match="group_a must be a sequence of spectra.*wrap it in a list"):
        conjugacy_test([0.5, 0.2, 0.1], good)
    with pytest.raises(ValueError, match="n_permutations must be >= 1, got 0"):
        conjugacy_test(good, good, n_permutations=0)
    with pytest.raises(ValueError, match="p must be finite and >= 1"):
        conjugacy_test(good, good, p=0)


def test_bad_input_ks_test():
    with pytest.raises(ValueError, match="distances_a is empty"):
        ks_test([], [1.0])
    with pytest.raises(ValueError, match=re.escape("distances_b contains NaN at index (1,)")):
        ks_test([1.0], [1.0, np.nan])
    with pytest.raises(ValueError, match=re.escape("distances_a must be 1-D, got a 2-D array of "
                                                   "shape (1, 2); one distance per entry")):
        ks_test([[1.0, 2.0]], [1.0])
    with pytest.raises(TypeError, match="distances_b must be real-valued"):
        ks_test([1.0], [1j])
    with pytest.raises(ValueError, match="alternative must be one of"):
        ks_test([1.0], [2.0], alternative="both")


# ----- effect size, attainable p-values, readable results ------------------------------------
def test_effect_size_in_units_of_the_within_group_distance():
    group_a, group_b = [[0.0], [0.1]], [[10.0], [10.1]]
    res = conjugacy_test(group_a, group_b)
    assert res.mean_between == pytest.approx(10.0)
    assert res.mean_within == pytest.approx(0.1)
    assert res.effect_size == pytest.approx(9.9 / 0.1)
    assert (res.n_a, res.n_b) == (2, 2)
    # Unequal within-group spreads: the noise floor is the mean of the two group means.
    res = conjugacy_test([[0.0], [0.2], [0.4]], [[5.0], [5.1]])
    within = 0.5 * np.mean([0.2, 0.4, 0.2]) + 0.5 * 0.1
    assert res.mean_within == pytest.approx(within)
    assert res.effect_size == pytest.approx(res.statistic / within)
    assert res.statistic == pytest.approx(res.mean_between - within)
    # Seeds that agree exactly: infinite effect if the conditions differ, 0 if they do not.
    assert conjugacy_test([[0.0], [0.0]], [[1.0], [1.0]]).effect_size == np.inf
    same = conjugacy_test([[0.5], [0.5]], [[0.5], [0.5]])
    assert same.effect_size == 0.0 and same.pvalue == 1.0


@pytest.mark.parametrize(
    ("n_a", "n_b", "expected"),
    [(2, 2, 1 / 3), (3, 3, 0.1), (3, 4, 1 / 35), (4, 4, 1 / 35), (5, 5, 1 / 126), (2, 5, 1 / 21)],
)
def test_smallest_pvalue_is_attained_and_respects_the_label_swap_symmetry(n_a, n_b, expected):
    # Two well separated conditions: the observed split is the most extreme one.
    rng = np.random.default_rng(n_a * 10 + n_b)
    group_a = _noisy_copies(rng, BASE, n_a, 0.01)
    group_b = _noisy_copies(rng, 0.5 * BASE, n_b, 0.01)
    res = conjugacy_test(group_a, group_b)
    assert res.exact
    assert res.min_pvalue == pytest.approx(expected, rel=1e-12)
    assert min_pvalue(n_a, n_b) == pytest.approx(expected, rel=1e-12)
    assert res.pvalue == pytest.approx(expected, rel=1e-12)
    if n_a == n_b:
        # Every split appears twice (its mirror image has the same T): multiples of 2 / C.
        counts = np.unique(np.round(res.null_distribution, 12), return_counts=True)[1]
        assert np.all(counts % 2 == 0)


def test_three_seeds_per_group_cannot_reach_005():
    rng = np.random.default_rng(1)
    res = conjugacy_test(_noisy_copies(rng, BASE, 3, 0.001), _noisy_copies(rng, -BASE, 3, 0.001))
    assert res.pvalue == pytest.approx(0.1) and res.min_pvalue == pytest.approx(0.1)
    assert res.effect_size > 100  # a huge effect, and still p = 0.1
    random = conjugacy_test(
        _noisy_copies(rng, BASE, 8, 0.001),
        _noisy_copies(rng, -BASE, 8, 0.001),
        n_permutations=99,
        seed=0,
    )
    assert not random.exact and random.min_pvalue == pytest.approx(1 / 100)
    assert random.pvalue == pytest.approx(1 / 100)


def test_min_pvalue_bad_input():
    with pytest.raises(ValueError, match="n_a must be >= 2, got 1"):
        min_pvalue(1, 3)
    with pytest.raises(ValueError, match="n_permutations must be >= 1"):
        min_pvalue(3, 3, 0)


def test_result_reprs_are_short_and_informative():
    rng = np.random.default_rng(2)
    res = conjugacy_test(_noisy_copies(rng, BASE, 10), _noisy_copies(rng, BASE, 10), seed=0)
    text = repr(res)
    assert len(text) < 250, text
    for key in ("statistic=", "pvalue=", "effect_size=", "min_pvalue=", "n_a=10", "n_b=10"):
        assert key in text
    assert text.endswith("random over 999 relabelings)")
    shuffle = shuffle_control(BASE, BASE + 0.01, n_shuffles=500, seed=0)
    assert repr(shuffle) == (
        f"ShuffleControlResult(fraction={shuffle.fraction:.3g}, "
        f"true_distance={shuffle.true_distance:.6g}, n_shuffles=500)"
    )


def test_shuffle_control_at_a_tiny_scale_equals_the_rescaled_one():
    rng = np.random.default_rng(4)
    a, b = _noisy_copies(rng, BASE, 2, 0.05)
    offset, scale = 0.2 + 0.1j, 1e-10
    a_t, b_t = offset + scale * a, offset + scale * b
    ref = shuffle_control((a_t - offset) / scale, (b_t - offset) / scale, n_shuffles=50, seed=3)
    res = shuffle_control(a_t, b_t, n_shuffles=50, seed=3)
    assert res.true_distance == pytest.approx(scale * ref.true_distance, rel=1e-9)
    np.testing.assert_allclose(res.shuffled_distances, scale * ref.shuffled_distances, rtol=1e-9)
    assert res.fraction == ref.fraction


def test_tests_take_koopman_spectra_plain_and_filtered():
    from conjugacy import koopman_spectrum

    def runs(eigenvalues, seed):
        rng = np.random.default_rng(seed)
        lift = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))[0][:, :3]
        out = np.empty((3, 25, 6))
        for k in range(3):
            x = rng.normal(size=3)
            for t in range(25):
                out[k, t] = lift @ x + 0.01 * rng.normal(size=6)
                x = np.asarray(eigenvalues) * x
        return out

    group_a = [koopman_spectrum(runs([0.9, 0.5, -0.3], s), delays=1, rank=5) for s in range(3)]
    group_b = [koopman_spectrum(runs([0.7, 0.2, -0.6], s), delays=1, rank=5) for s in range(3, 6)]
    filtered = ([s.filtered() for s in group_a], [s.filtered() for s in group_b])
    for ga, gb in ((group_a, group_b), filtered):
        res = conjugacy_test(ga, gb)
        arrays = conjugacy_test(
            [np.array(s.eigenvalues) for s in ga], [np.array(s.eigenvalues) for s in gb]
        )
        assert res.pvalue == arrays.pvalue == pytest.approx(0.1)  # 3 vs 3: the best possible
        np.testing.assert_array_equal(res.distance_matrix, arrays.distance_matrix)
        shuffle = shuffle_control(ga[0], gb[0], n_shuffles=20, seed=0)
        assert shuffle.true_distance == wasserstein(ga[0], gb[0])


# ----- KS test with ties -----------------------------------------------------------------------
TIED_A = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 2.0])
TIED_B = np.array([1.0, 1.0, 2.0, 2.0, 3.0, 3.0])


def _brute_force_ks_pvalue(a, b, alternative):
    pooled = np.concatenate([a, b])
    observed = scipy.stats.ks_2samp(a, b, alternative=alternative).statistic
    stats = []
    for members in itertools.combinations(range(pooled.size), a.size):
        mask = np.zeros(pooled.size, bool)
        mask[list(members)] = True
        split = scipy.stats.ks_2samp(pooled[mask], pooled[~mask], alternative=alternative)
        stats.append(split.statistic)
    return observed, np.mean(np.array(stats) >= observed - 1e-12)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_ks_test_with_ties_is_an_exact_permutation_test(alternative):
    res = ks_test(TIED_A, TIED_B, alternative=alternative)
    statistic, pvalue = _brute_force_ks_pvalue(TIED_A, TIED_B, alternative)
    assert res.ties and res.method == "exact permutation" and res.n_permutations == 924
    assert res.statistic == pytest.approx(statistic, abs=1e-15)
    assert res.pvalue == pytest.approx(pvalue, rel=1e-12)
    if alternative != "less":
        # SciPy's null distribution assumes no ties and is off here (0.474 vs 0.351 two-sided).
        naive = scipy.stats.ks_2samp(TIED_A, TIED_B, alternative=alternative).pvalue
        assert abs(naive - res.pvalue) > 0.05


def test_ks_test_with_ties_random_splits():
    rng = np.random.default_rng(6)
    a, b = rng.integers(0, 5, 30) / 4, rng.integers(1, 6, 25) / 4  # C(55, 30) splits: sampled
    res = ks_test(a, b, n_permutations=2000, seed=1)
    assert res.ties and res.method == "permutation" and res.n_permutations == 2000
    assert res.statistic == pytest.approx(scipy.stats.ks_2samp(a, b).statistic, abs=1e-15)
    again = ks_test(a, b, n_permutations=2000, seed=1)
    assert again == res
    k = round(res.pvalue * 2001 - 1)
    assert res.pvalue == pytest.approx((1 + k) / 2001)
    # Agrees with a long run of random splits of the brute-force statistic, within Monte Carlo error.
    pooled = np.concatenate([a, b])
    draws = np.random.default_rng(2)
    null = []
    for _ in range(1000):
        perm = draws.permutation(pooled)
        null.append(scipy.stats.ks_2samp(perm[:30], perm[30:]).statistic)
    reference = np.mean(np.array(null) >= res.statistic - 1e-12)
    assert abs(res.pvalue - reference) < 4 * np.sqrt(reference * (1 - reference) / 1000) + 0.01


def test_ks_test_without_ties_reports_scipy_method():
    res = ks_test([0.1, 0.5, 0.9], [0.2, 0.3, 0.4, 0.6])
    assert not res.ties and res.method == "exact" and res.n_permutations == 0


@pytest.mark.parametrize("magnitude", [1e-300, 1e-9, 1e300, 4e307])
def test_conjugacy_test_is_scale_free(magnitude):
    rng = np.random.default_rng(11)
    group_a, group_b = _noisy_copies(rng, BASE, 4, 0.05), _noisy_copies(rng, -BASE, 4, 0.05)
    ref = conjugacy_test(group_a, group_b, p=2)
    res = conjugacy_test([magnitude * s for s in group_a], [magnitude * s for s in group_b], p=2)
    assert res.pvalue == ref.pvalue and res.min_pvalue == ref.min_pvalue
    assert res.statistic == pytest.approx(magnitude * ref.statistic, rel=1e-12)
    assert res.effect_size == pytest.approx(ref.effect_size, rel=1e-12)
    assert res.mean_within == pytest.approx(magnitude * ref.mean_within, rel=1e-12)
    np.testing.assert_allclose(res.null_distribution, magnitude * ref.null_distribution, rtol=1e-9)


# ----- the one verdict rule -----------------------------------------------------------------------
def test_verdict_rule_in_order():
    from conjugacy.stats import verdict

    assert verdict(0.01, 0.001).verdict == "not conjugate"
    assert verdict(0.049, 0.01, 0.05).verdict == "not conjugate"
    assert verdict(0.05, 0.01, 0.05).verdict == "conjugate"  # p < alpha rejects, p == alpha not
    # 3 vs 3 seeds: the smallest attainable p is 0.1, so p = 0.1 is no evidence either way
    v = verdict(0.1, 0.1, 0.05)
    assert v.verdict == "undecided" and "add seeds" in v.reason
    assert verdict(0.3, 0.1, 0.2).verdict == "conjugate"
    assert verdict(None, None).verdict == "undecided"
    assert verdict(float("nan"), 0.01).verdict == "undecided"  # not "conjugate" by p >= alpha
    # differing settings win over any p-value
    v = verdict(0.001, 0.001, mismatch=["delays differs (a: 2, b: 8)"])
    assert v.verdict == "undecided" and "delays differs" in v.reason
    assert v.to_dict() == {"verdict": "undecided", "reason": v.reason, "pvalue": 0.001,
                           "min_pvalue": 0.001, "alpha": 0.05}
    for bad in (0, 1, 1.5):
        with pytest.raises(ValueError, match=rf"^alpha must be in \(0, 1\), got {bad}$"):
            verdict(0.1, 0.1, bad)
    for bad in (True, "0.05"):  # not a number: a TypeError, as every declared Float field's
        with pytest.raises(TypeError, match=f"^alpha must be a real number, got {bad!r}$"):
            verdict(0.1, 0.1, bad)


def test_settings_mismatch_names_each_differing_setting():
    from conjugacy import koopman_spectrum
    from conjugacy.stats import settings_mismatch

    x = np.random.default_rng(0).standard_normal((3, 40, 4))
    base = koopman_spectrum(x, delays=2, rank=4)
    assert settings_mismatch([base, koopman_spectrum(x, delays=2, rank=4)]) == []
    got = settings_mismatch([base, koopman_spectrum(x, delays=2, rank=4, method="exact")],
                            ["A", "B"])
    assert got == ["method differs (A: rrr, B: exact)"]
    got = settings_mismatch([base, koopman_spectrum(x, delays=3, rank=5)])
    assert got == ["delays differs (#0: 2, #1: 3)", "rank_requested differs (#0: 4, #1: 5)"]
    assert settings_mismatch([base, koopman_spectrum(x, delays=3, rank=4)], allow=["delays"]) == []
    with pytest.raises(ValueError, match="unknown settings"):
        settings_mismatch([base], allow=["delay"])
