"""conjugacy.analysis.windowed: window x window distances of windowed spectra, and two conditions
compared window by window."""

import numpy as np
import pytest

from conjugacy.analysis.windowed import compare_windows, window_distances


def _spectra(centres, n_seeds, rng):
    # one "spectrum" (4 eigenvalues near a centre) per window, per seed
    return [[c + 0.01 * rng.standard_normal(4) + 0j for c in centres] for _ in range(n_seeds)]


def test_window_distances_find_the_first_window_and_where_the_dynamics_settle():
    rng = np.random.default_rng(0)
    spectra = _spectra([0.0, 1.0, 1.0, 1.0], 3, rng)
    out = window_distances(spectra, [(0, 10), (10, 20), (20, 30), (30, 40)], "abcd")
    mean = np.array(out["mean_matrix"])
    assert mean.shape == (4, 4) and np.allclose(mean, mean.T) and np.allclose(np.diag(mean), 0)
    assert mean[0, 1] == pytest.approx(1.0, abs=0.05) and mean[1, 2] < 0.05
    assert out["noise_floor"] < 0.05 and len(out["between_seeds_per_window"]) == 4
    f = out["findings"]
    assert f["first_window_most_distinct"] is True and f["most_distinct_window"] == "a"
    assert (f["settled_from_window"], f["settled_from_iteration"]) == ("b", 10)
    # one seed: no noise floor; two windows: no "most distinct" (each is the other's)
    two = window_distances(spectra[:1], [(0, 10), (10, 20)], ["a", "b"])
    assert two["noise_floor"] is None and two["findings"]["most_distinct_window"] is None


def test_compare_windows_gives_one_verdict_per_window():
    rng = np.random.default_rng(1)
    same, shifted = _spectra([0.0, 0.5], 5, rng), _spectra([0.0, 0.9], 5, rng)
    out = compare_windows({"x": same, "y": shifted}, ["w0", "w1"], seed=0, n_permutations=999,
                          n_shuffles=10, what="network")
    assert [r["window"] for r in out["per_window"]] == ["w0", "w1"]
    assert out["per_window"][0]["verdict"] == "conjugate"
    assert out["per_window"][1]["verdict"] == "not conjugate"
    assert out["smallest_possible_pvalue"] == pytest.approx(1 / 126)
    assert out["note"].startswith("5 seeds per network")
    with pytest.raises(ValueError, match="two conditions"):
        compare_windows({"x": same}, ["w0", "w1"], seed=0, n_permutations=9, n_shuffles=1)
