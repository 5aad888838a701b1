"""The shared analysis layer: groups, spectra per group, comparisons and verdicts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conjugacy import koopman_spectrum
from conjugacy.analysis import (
    SpectrumGroup,
    chosen,
    compare_conditions,
    fit_spectra,
    spectra_to_json,
)
from conjugacy.store import TrajectoryStore
from conjugacy.study import StudyReader

# One eigenvalue per spectrum: W1 between two spectra is the distance between the two points.
A = [np.array([0.5]), np.array([0.6]), np.array([0.7]), np.array([0.8])]
B = [a + 1.0 for a in A]
C = [a + 0.01 for a in A]


def test_distances_tests_and_classes_have_exact_values():
    res = compare_conditions({"a": A, "b": B, "c": C}, n_shuffles=10, seed=1)
    assert res["conditions"] == ["a", "b", "c"] and res["n_seeds"] == 4
    assert res["pairs"] == {"a-b": ["a", "b"], "a-c": ["a", "c"], "b-c": ["b", "c"]}
    # plain eigenvalue arrays have no residuals: nothing to filter, the verdict uses all of them
    assert res["filtered"] is None and res["verdict_uses"] == "all"
    cmp = chosen(res)
    assert cmp is res["all"]
    np.testing.assert_allclose(cmp["distances"]["a-b"]["per_seed"], [1.0] * 4, rtol=1e-12)
    np.testing.assert_allclose(cmp["distances"]["a-c"]["per_seed"], [0.01] * 4, rtol=1e-9)
    assert cmp["distances"]["a-b"]["std"] == pytest.approx(0.0, abs=1e-12)
    between = cmp["between_seeds"]["a"]
    np.testing.assert_allclose(between["values"], [0.1, 0.2, 0.3, 0.1, 0.2, 0.1], atol=1e-12)
    assert between["pairs"][0] == [0, 1] and between["mean"] == pytest.approx(1.0 / 6)
    # a vs b: the observed labeling and its mirror image are the two most extreme of C(8,4) = 70
    t = cmp["permutation_tests"]["a-b"]
    assert t["exact"] and t["n_permutations"] == 70 and t["pvalue"] == pytest.approx(2 / 70)
    assert t["statistic"] == pytest.approx(1.0 - 1.0 / 6)
    assert res["verdicts"]["a-b"] == {"verdict": "not conjugate", "pvalue": pytest.approx(2 / 70),
                                      "uses": "all", "min_pvalue": pytest.approx(2 / 70),
                                      "alpha": 0.05, "reason": "p = 0.0286 < alpha = 0.05"}
    assert res["verdicts"]["a-c"]["verdict"] == "conjugate"
    classes = cmp["equivalence_classes"]
    assert classes["noise_floor"] == pytest.approx(1.0 / 6)
    assert classes["classes"] == [["a", "c"], ["b"]]
    assert classes["labels"] == {"a": 0, "b": 1, "c": 0}
    # KS between distributions of per-seed distances: a-b (all 1.0) vs a-c (all 0.01)
    assert cmp["ks_tests"]["a-b vs a-c"]["statistic"] == pytest.approx(1.0)
    assert "a seeds vs a-b" in cmp["ks_between_seeds_vs_pairs"]
    assert cmp["shuffle_control"]["a-b"]["n_shuffles"] == 10
    json.dumps(res.to_dict(), allow_nan=False)  # JSON types only


def test_named_pairs_pooled_spectra_and_seeded_streams():
    pooled = {"a": np.array([0.5, 0.6]), "b": np.array([0.5, 0.9])}
    kw = dict(pairs={"main": ("a", "b")}, pooled=pooled, shuffle="pooled", n_shuffles=20,
              n_permutations=9, seed=3)
    res = compare_conditions({"a": A, "b": B}, **kw)
    assert list(res["pairs"]) == ["main"]
    assert res["all"]["pooled_distances"]["main"] == pytest.approx(0.15)
    sh = res["all"]["shuffle_control"]["main"]
    assert sh["n_shuffles"] == 20 and sh["true_distance"] == pytest.approx(0.15)
    t = res["all"]["permutation_tests"]["main"]
    assert not t["exact"] and t["n_permutations"] == 9  # 9 < 70: random relabelings
    assert compare_conditions({"a": A, "b": B}, **kw) == res  # same seed, same numbers


def test_too_few_seeds_give_no_verdict():
    # 3 seeds per condition: C(6, 3) = 20 relabelings, the mirror image ties: p >= 2/20 = 0.1
    res = compare_conditions({"a": A[:3], "b": B[:3]})
    assert res["verdicts"]["a-b"]["pvalue"] == pytest.approx(0.1)
    assert res["verdicts"]["a-b"]["verdict"] == "undecided"
    assert compare_conditions({"a": A[:3], "b": B[:3]}, alpha=0.2)["verdicts"]["a-b"]["verdict"] == (
        "not conjugate")


def test_one_seed_gives_distances_but_no_test():
    res = compare_conditions({"a": A[:1], "b": B[:1]})
    assert res["all"]["permutation_tests"]["a-b"] is None
    assert res["verdicts"]["a-b"] == {
        "verdict": "undecided", "pvalue": None, "min_pvalue": None, "uses": "all", "alpha": 0.05,
        "reason": "no test: it needs at least 2 independent seeds per condition"}
    assert res["all"]["between_seeds"] == {}


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (({"a": A},), {}, "at least two conditions"),
        (({"a": A, "b": B[:2]},), {}, "same number"),
        (({"a": A, "b": B},), {"pairs": [("a", "z")]}, "names the condition 'z'"),
        (({"a": A, "b": B},), {"shuffle": "pooled"}, "needs the pooled spectra"),
        (({"a": A, "b": B},), {"shuffle": "all"}, "shuffle must be"),
        (({"a": A, "b": B},), {"alpha": 1.5}, r"alpha must be in \(0, 1\), got 1.5"),
    ],
)
def test_bad_input_is_refused(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        compare_conditions(*args, **kwargs)


def _noisy_system(rng, eigenvalues, n_runs=4, n_steps=60, n_features=12, noise=0.02):
    """Trajectories of a linear system with the given (real) eigenvalues seen in n_features."""
    k = len(eigenvalues)
    mix = rng.standard_normal((k, n_features))
    out = []
    for _ in range(n_runs):
        z = rng.standard_normal(k) * np.power.outer(eigenvalues, np.arange(n_steps)).T
        out.append(z @ mix + noise * rng.standard_normal((n_steps, n_features)))
    return np.stack(out)


def test_verdicts_use_the_filtered_spectra_when_the_engine_filters():
    rng = np.random.default_rng(0)
    spectra = {
        "slow": [koopman_spectrum(_noisy_system(rng, [0.95, 0.8, 0.6]), delays=2, rank=8)
                 for _ in range(4)],
        "fast": [koopman_spectrum(_noisy_system(rng, [0.7, 0.5, 0.3]), delays=2, rank=8)
                 for _ in range(4)],
    }
    res = compare_conditions(spectra, n_shuffles=5)
    assert res["verdict_uses"] == "filtered" and res["filter"]["available"]
    kept, of = res["filter"]["kept"], res["filter"]["of"]
    assert all(k <= n for c in kept for k, n in zip(kept[c], of[c]))
    assert all(len(e) == k for c in kept for e, k in zip(res["filtered"]["eigenvalues"][c], kept[c]))
    assert res["verdicts"]["slow-fast"]["pvalue"] == (
        res["filtered"]["permutation_tests"]["slow-fast"]["pvalue"])
    assert res["verdicts"]["slow-fast"]["verdict"] == "not conjugate"
    assert compare_conditions(spectra, n_shuffles=5, use_filter=False)["verdict_uses"] == "all"
    doc = spectra_to_json(spectra)
    assert len(doc["fast"]) == 4 and len(doc["fast"][0]["eigenvalues"]) == spectra["fast"][0].rank


def test_fit_spectra_reads_each_group_and_its_window(tmp_path):
    rng = np.random.default_rng(1)
    data = _noisy_system(rng, [0.9, 0.5], n_runs=3, n_steps=30, n_features=6)
    (tmp_path / "trajectories").mkdir()
    with TrajectoryStore.open(tmp_path / "trajectories" / "s.zarr", "w") as st:
        for i, traj in enumerate(data):
            name = f"run_{i}"
            st.create_run(name, {"w": ((6,), "float64")}, metadata={"condition": "x", "seed": 0})
            st.append(name, np.arange(30), {"w": traj})
            st.set_finished(name)
    with StudyReader.open(tmp_path) as reader:
        groups = [SpectrumGroup("x", 0, ("run_0", "run_2")),
                  SpectrumGroup("x", 0, ("run_1",), steps=(5, 25), window="late")]
        got = fit_spectra(reader, groups, {"delays": 1, "rank": 3}, params="w")
    assert list(got) == [("x", 0, None), ("x", 0, "late")]
    want = koopman_spectrum(data[[0, 2]], delays=1, rank=3)
    np.testing.assert_array_equal(got[("x", 0, None)].eigenvalues, want.eigenvalues)
    want = koopman_spectrum(data[1:2, 5:25], delays=1, rank=3)
    np.testing.assert_array_equal(got[("x", 0, "late")].eigenvalues, want.eigenvalues)
    with pytest.raises(ValueError, match="distinct"):
        fit_spectra(reader, [groups[0], groups[0]], {"rank": 2})
    with pytest.raises(ValueError, match="no runs"):
        SpectrumGroup("x", 0, ())
    with pytest.raises(ValueError, match="start < stop"):
        SpectrumGroup("x", 0, ("r",), steps=(4, 4))


def test_default_pair_names_never_collide():
    """Conditions "x", "y-z", "x-y", "z": "x"-"y-z" and "x-y"-"z" would both be "x-y-z"."""
    from conjugacy.analysis.comparison import _pairs

    got = _pairs(["x", "y-z", "x-y", "z"], None)
    assert len(got) == 6 and got["x vs y-z"] == ("x", "y-z") and got["x-y vs z"] == ("x-y", "z")
    assert list(_pairs(["a", "b", "c"], None)) == ["a-b", "a-c", "b-c"]
    both = _pairs(["x", "y-z", "x-y", "z", "u", "v vs w", "u vs v", "w"], None)
    assert len(both) == 28 and both["1: x vs x-y"] == ("x", "x-y")  # both spellings collide


def test_fit_spectra_takes_the_recorded_branch(tmp_path):
    """Runs that keep the two-branch record (issue 20): the pipeline's fits read it and carry
    the calibrated residuals, equal to koopman_spectrum(next_states=) on the same arrays, in
    every window."""
    rng = np.random.default_rng(3)
    a = np.diag([0.9, 0.6, 0.3])
    x = np.empty((2, 40, 3))
    nxt = np.empty_like(x)
    for r in range(2):
        x[r, 0] = rng.standard_normal(3)
        for t in range(40):
            nxt[r, t] = a @ x[r, t] + 0.05 * rng.standard_normal(3)
            if t + 1 < 40:
                x[r, t + 1] = a @ x[r, t] + 0.05 * rng.standard_normal(3)
    (tmp_path / "trajectories").mkdir()
    with TrajectoryStore.open(tmp_path / "trajectories" / "s.zarr", "w") as st:
        for r in range(2):
            st.create_run(f"b{r}", {"w": ((3,), "float64")}, next_states=True,
                          metadata={"condition": "x", "seed": 0})
            st.append(f"b{r}", np.arange(40), {"w": x[r]}, next_states={"w": nxt[r]})
        st.create_run("plain", {"w": ((3,), "float64")}, metadata={"condition": "x", "seed": 1})
        st.append("plain", np.arange(40), {"w": x[0]})
    with StudyReader.open(tmp_path) as reader:
        groups = [SpectrumGroup("x", 0, ("b0", "b1")),
                  SpectrumGroup("x", 0, ("b0", "b1"), steps=(10, 40), window="late"),
                  SpectrumGroup("x", 1, ("plain",)),
                  SpectrumGroup("x", 2, ("b0", "plain"))]
        got = fit_spectra(reader, groups, {"rank": 3}, params="w")
    want = koopman_spectrum(x, rank=3, next_states=nxt)
    np.testing.assert_allclose(got[("x", 0, None)].projection_residuals,
                               want.projection_residuals, rtol=1e-12, atol=1e-15)
    late = koopman_spectrum(x[:, 10:], rank=3, next_states=nxt[:, 10:])
    np.testing.assert_allclose(got[("x", 0, "late")].noise_fractions, late.noise_fractions,
                               rtol=1e-12, atol=1e-15)
    assert got[("x", 1, None)].projection_residuals is None  # no branch recorded
    assert got[("x", 2, None)].projection_residuals is None  # not every run keeps one
