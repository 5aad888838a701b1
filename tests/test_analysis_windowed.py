"""conjugacy.analysis.windowed: window x window distances of windowed spectra, and two conditions
compared window by window."""

import numpy as np
import pytest

from conjugacy.analysis.windowed import compare_windows, conditions_by_window, window_distances


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


def test_conditions_by_window_says_from_which_step_on_the_conditions_differ():
    rng = np.random.default_rng(2)
    # x and y agree in windows 0-1 and differ from window 2 on; z never differs from x
    x, y = _spectra([0.0, 0.5, 0.5, 0.5], 5, rng), _spectra([0.0, 0.5, 0.9, 0.9], 5, rng)
    z = _spectra([0.0, 0.5, 0.5, 0.5], 5, rng)
    out = conditions_by_window({"x": x, "y": y, "z": z}, [0, 10, 20, 30], 10)
    assert out["labels"] == ["0-9", "10-19", "20-29", "30-39"] and out["n_seeds"] == 5
    xy = out["pairs"]["x-y"]
    assert [w["verdict"] for w in xy["per_window"]] == ["conjugate", "conjugate",
                                                       "not conjugate", "not conjugate"]
    assert (xy["differ_from_step"], xy["differ_from_window"]) == (20, "20-29")
    assert xy["summary"].startswith("x vs y differ from step 20 on: windows 20-29 to 30-39")
    late = xy["per_window"][2]
    assert late["distance"] == pytest.approx(0.4, abs=0.02)
    assert late["interval"][0] < late["distance"] < late["interval"][1]
    assert late["noise_floor"] < 0.03  # seed-to-seed, in W1 like the distance
    assert late["effect_size"] == pytest.approx(
        (late["distance"] - late["noise_floor"]) / late["noise_floor"], rel=0.2)
    assert late["pvalue"] == pytest.approx(1 / 126) == late["min_pvalue"]
    xz = out["pairs"]["x-z"]
    assert xz["differ_from_step"] is None and "0 of 4 windows differ" in xz["summary"]
    with pytest.raises(ValueError, match="two or more conditions"):
        conditions_by_window({"x": x}, [0, 10], 10)


def _store(path, n_seeds=4, n_rep=2, n_rec=80, switch=40):
    """Two conditions of one 3-mode linear system; from record ``switch`` on, condition "late"
    follows other eigenvalues. Metadata: condition, seed, and the optimizer settings."""
    from conjugacy.store import TrajectoryStore

    rng = np.random.default_rng(0)
    c_mat = rng.standard_normal((12, 3))
    eigs = {"same": ([0.9, 0.7, 0.5], [0.9, 0.7, 0.5]), "late": ([0.9, 0.7, 0.5], [0.6, 0.3, 0.95])}
    with TrajectoryStore.open(path, "w") as st:
        for cond, (before, after) in eigs.items():
            for s in range(n_seeds):
                for r in range(n_rep):
                    z = np.empty((n_rec, 3))
                    z[0] = rng.standard_normal(3)
                    for t in range(1, n_rec):
                        z[t] = z[t - 1] * (before if t < switch else after)
                        if t == switch:
                            z[t] = rng.standard_normal(3)  # a kick: the late modes are visible
                    x = z @ c_mat.T + 1e-4 * rng.standard_normal((n_rec, 12))
                    name = f"{cond}_{s}_{r}"
                    meta = {"condition": cond, "seed": s, "replica": r,
                            "optimizer": {"class": "SGD", "lr": 0.1 if cond == "same" else 0.5}}
                    st.create_run(name, {"w": ((12,), "float64")}, metadata=meta)
                    st.append(name, np.arange(n_rec), {"w": x})
                    st.set_finished(name)
    return path


def test_analyze_compares_the_conditions_window_by_window_and_records_their_settings(tmp_path):
    pytest.importorskip("zarr")
    import conjugacy

    res = conjugacy.analyze(_store(tmp_path / "runs.zarr"), window=20, delays=1, rank=3,
                            n_permutations=99)
    from conjugacy.analysis import validate

    validate(res.results)  # the schema knows the new fields
    between = res.results["windows"]["between_conditions"]
    assert between["labels"] == ["0-19", "20-39", "40-59", "60-79"]
    pair = next(iter(between["pairs"].values()))
    assert [w["verdict"] for w in pair["per_window"]] == ["conjugate", "conjugate",
                                                         "not conjugate", "not conjugate"]
    assert pair["differ_from_step"] == 40
    assert res.results["conditions"] == {
        "late": {"condition": "late", "optimizer.class": "SGD", "optimizer.lr": 0.5},
        "same": {"condition": "same", "optimizer.class": "SGD", "optimizer.lr": 0.1}}


def test_window_section_fits_the_first_n_records_in_windows_and_summarizes_the_curves(tmp_path):
    from conjugacy import koopman_spectrum
    from conjugacy.analysis import SpectrumGroup
    from conjugacy.analysis.windowed import window_section
    from conjugacy.store import TrajectoryStore

    rng = np.random.default_rng(1)
    loss = {r: rng.uniform(1, 2, 35) for r in "abcd"}
    with TrajectoryStore.open(tmp_path / "s.zarr", "w") as store:
        for r in "abcd":
            store.create_run(r, {"w": ((3,), "float64")})
            store.append(r, np.arange(35), {"w": np.cumsum(rng.normal(size=(35, 3)), axis=0)},
                         scalars={"loss": loss[r], "acc": np.arange(35) / 100})
            store.set_finished(r)
    groups = [SpectrumGroup("c", 0, ("a", "b")), SpectrumGroup("c", 1, ("c", "d"))]
    with TrajectoryStore.open(tmp_path / "s.zarr", "r") as store:
        spectra, out = window_section(store, groups, "w", n_records=25, window=12, delays=1,
                                      rank=3, batch_metric="acc")
        x = store.read(params="w", runs=["c", "d"])
    # 25 records: two windows of 12 (records 0-11, 12-23), the 25th in none
    assert out["labels"] == ["0-11", "12-23"] and out["windows"] == [[0, 12], [12, 24]]
    second = koopman_spectrum(x[:, 12:24], delays=1, rank=3)
    np.testing.assert_array_equal(np.sort_complex(spectra[1][1].eigenvalues),
                                  np.sort_complex(second.eigenvalues))
    # the curves: every run's records after the first (the runs' 35, not the 25 fitted)
    runs = np.stack([loss[r] for r in "abcd"])[:, 1:]
    np.testing.assert_allclose(out["loss"]["mean"], runs.mean(axis=0))
    np.testing.assert_allclose(out["loss"]["std"], runs.std(axis=0))
    assert out["batch_acc_last_window"] == pytest.approx(np.arange(23, 35).mean() / 100)
    assert np.array(out["mean_matrix"]).shape == (2, 2)
