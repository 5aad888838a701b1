"""Statistical settings of a spectrum (issue 20): the SVHT rank on every path, delays from data."""

import numpy as np
import pytest

from conjugacy import koopman_spectrum
from conjugacy.dmd import marchenko_pastur_median, svht_omega, svht_rank
from conjugacy.spectrum import spectrum_from_gram


def _latent(n_features: int, n_runs: int, n_steps: int, seed: int = 0, noise: float = 0.05):
    """A 3-dimensional linear latent system (eigenvalues 0.95, 0.8, -0.6, process noise 0.1)
    seen through ``n_features`` random channels with measurement noise."""
    rng = np.random.default_rng(seed)
    a = np.diag([0.95, 0.8, -0.6])
    c = rng.standard_normal((n_features, 3))
    runs = []
    for _ in range(n_runs):
        z, out = rng.standard_normal(3), []
        for _ in range(n_steps):
            out.append(c @ z)
            z = a @ z + 0.1 * rng.standard_normal(3)
        runs.append(np.array(out) + noise * rng.standard_normal((n_steps, n_features)))
    return np.array(runs)


def _mp_median_by_grid(beta: float) -> float:
    """The Marchenko-Pastur median by a plain midpoint rule (independent of the engine's SciPy
    route), substituting t = lo + (hi - lo) sin^2(u) to remove the square-root endpoints."""
    lo, hi = (1 - np.sqrt(beta)) ** 2, (1 + np.sqrt(beta)) ** 2
    u = (np.arange(400_000) + 0.5) * (np.pi / 2) / 400_000
    t = lo + (hi - lo) * np.sin(u) ** 2
    dt = (hi - lo) * 2 * np.sin(u) * np.cos(u) * (np.pi / 2) / 400_000
    mass = np.sqrt((hi - t) * (t - lo)) / (2 * np.pi * beta * t) * dt
    cdf = np.cumsum(mass) - mass / 2  # the CDF at the cells' midpoints t
    return float(np.interp(0.5, cdf, t))


@pytest.mark.parametrize("beta", [0.01, 0.1, 0.3, 0.7, 1.0])
def test_svht_omega_is_the_exact_coefficient(beta):
    # omega = lambda*(beta) / sqrt(MP median); the paper's cubic fit is off by up to 0.011 (at
    # beta = 0.01: 1.4481 against 1.4371), far outside this tolerance
    lam = np.sqrt(2 * (beta + 1) + 8 * beta / (beta + 1 + np.sqrt(beta**2 + 14 * beta + 1)))
    assert marchenko_pastur_median(beta) == pytest.approx(_mp_median_by_grid(beta), rel=1e-6)
    assert svht_omega(beta) == pytest.approx(lam / np.sqrt(_mp_median_by_grid(beta)), rel=1e-6)


def test_svht_omega_values_of_the_paper():
    # Gavish & Donoho 2014: omega(1) = 2.858 (square matrices), the cubic fit's 2.86
    assert svht_omega(1.0) == pytest.approx(2.858362, abs=1e-6)
    assert svht_omega(0.5) == pytest.approx(2.171185, abs=1e-6)
    cubic = 0.56 * 0.01**3 - 0.95 * 0.01**2 + 1.82 * 0.01 + 1.43
    assert abs(svht_omega(0.01) - cubic) > 0.01


def test_svht_rank_threshold_and_count():
    s = np.array([10.0, 5.0, 1.0, 1.0, 0.9])
    k, rec = svht_rank(s, (5, 5))
    assert k == 2
    assert rec["threshold"] == pytest.approx(svht_omega(1.0) * 1.0, rel=1e-14)
    assert rec["beta"] == 1.0 and rec["median_singular_value"] == 1.0
    # a Gram of m > n columns has m - n extra ~0 values: only the first min(n, m) count
    k2, rec2 = svht_rank(np.concatenate([s, [1e-9, 0.0]]), (5, 7))
    assert rec2["n_singular_values"] == 5 and rec2["beta"] == pytest.approx(5 / 7)
    assert k2 == int(np.count_nonzero(s > svht_omega(5 / 7) * 1.0))
    with pytest.raises(ValueError, match="all min"):
        svht_rank(s[:3], (5, 5))


@pytest.mark.parametrize("true_rank", [1, 4, 9])
def test_svht_recovers_the_rank_of_low_rank_plus_noise(true_rank):
    rng = np.random.default_rng(true_rank)
    n, m = 200, 120
    u, _ = np.linalg.qr(rng.standard_normal((n, true_rank)))
    v, _ = np.linalg.qr(rng.standard_normal((m, true_rank)))
    signal = (u * np.linspace(40, 25, true_rank)) @ v.T
    x = signal + rng.standard_normal((n, m)) / np.sqrt(m)  # noise singular values ~ 1 + sqrt(beta)
    s = np.linalg.svd(x, compute_uv=False)
    assert svht_rank(s, x.shape)[0] == true_rank
    # the same through koopman_spectrum (delays 0: the snapshot matrix is x without its last row)
    spec = koopman_spectrum(x, rank="svht", method="standard")
    assert spec.rank == true_rank
    assert spec.settings["rank_rule"]["rule"] == "svht"
    # the numerical-rank rule keeps the noise
    assert koopman_spectrum(x, method="standard").rank == min(n - 1, m)


def test_svht_threshold_equal_on_every_path(tmp_path):
    few = _latent(40, 4, 120)  # features < snapshots: dense, gram, subspace, covariance
    many = _latent(300, 3, 30, seed=1)  # features > snapshots: also streamed and a given Gram
    np.save(tmp_path / "many.npy", many)
    mapped = np.load(tmp_path / "many.npy", mmap_mode="r")
    z = many.reshape(-1, many.shape[2])
    for data, extra in ((few, {}), (many, {"streamed": mapped})):
        found = {}
        for path in ("dense", "gram", "subspace") + ("covariance",) * (data is few):
            found[path] = koopman_spectrum(data, delays=2, rank="svht", path=path,
                                           method="standard")
        for name, item in extra.items():
            found[name] = koopman_spectrum(item, delays=2, rank="svht", method="standard")
        if data is many:
            found["from_gram"] = spectrum_from_gram(data, z @ z.T, delays=2, rank="svht",
                                                    method="standard")
        paths = {k: sp.settings["path"] for k, sp in found.items()}
        assert paths["gram"] == "gram" and paths["subspace"] == "subspace"
        if data is few:
            assert paths["covariance"] == "covariance"
        if "streamed" in found:
            assert paths["streamed"] == "gram (streamed)"
        ref = found["dense"].settings["rank_rule"]
        assert ref["n_above"] == 9 and found["dense"].rank == 9
        for sp in found.values():
            rule = sp.settings["rank_rule"]
            assert rule["threshold"] == pytest.approx(ref["threshold"], rel=1e-10, abs=0)
            assert rule["beta"] == ref["beta"] and rule["n_singular_values"] == 120 * (
                data is few) + 81 * (data is many)
            assert sp.rank == 9 and sp.settings["rank_requested"] == "svht"
            assert np.allclose(np.sort_complex(sp.eigenvalues),
                               np.sort_complex(found["dense"].eigenvalues), atol=1e-8)


def test_svht_with_pca_equal_on_both_routes():
    x = _latent(300, 3, 30, seed=2)
    a = koopman_spectrum(x, delays=1, rank="svht", pca=20, path="dense", method="standard")
    b = koopman_spectrum(x, delays=1, rank="svht", pca=20, path="gram", method="standard")
    assert a.settings["rank_rule"]["threshold"] == pytest.approx(
        b.settings["rank_rule"]["threshold"], rel=1e-10)
    # beta of the projected delay matrix: 40 observables, 84 pairs
    assert a.settings["rank_rule"]["beta"] == pytest.approx(40 / 84)


def test_rank_none_keeps_the_tolerance_rule_and_records_it():
    x = _latent(40, 4, 60)
    spec = koopman_spectrum(x, delays=1, method="standard")
    assert spec.settings["rank_rule"] == {"rule": "tolerance", "tol": None}
    assert spec.rank == 80  # every delay-space direction is numerically present
    fixed = koopman_spectrum(x, delays=1, rank=5, method="standard")
    assert fixed.settings["rank_rule"] == {"rule": "fixed", "rank": 5}


def test_svht_on_pure_noise_keeps_one_direction_with_a_note():
    x = np.random.default_rng(0).standard_normal((200, 100))
    spec = koopman_spectrum(x, rank="svht", method="standard")
    assert spec.settings["rank_rule"]["n_above"] == 0 and spec.rank == 1
    assert any("no singular value above the threshold" in n for n in spec.settings["notes"])


@pytest.mark.parametrize("bad", ["SVD", "auto", ""])
def test_unknown_rank_rule_is_one_clear_error(bad):
    with pytest.raises(ValueError, match=r"rank must be a positive int, None or one of \['svht'\]"):
        koopman_spectrum(np.ones((10, 3)), rank=bad)


# ----- delays from data ---------------------------------------------------------------------------
def _direct_prediction_error(trajs, d):
    """The held-out error of choose_delays computed the plain way: explicit delay matrices, SVD,
    reduced-rank regression at the SVHT rank, alternate trajectories as the two folds."""
    from conjugacy.observables import delay_embed

    n, num, den = trajs[0].shape[1], 0.0, 0.0
    for f in (0, 1):
        train = [t for i, t in enumerate(trajs) if i % 2 != f]
        test = [t for i, t in enumerate(trajs) if i % 2 == f]
        x, y = delay_embed(train, d)
        xt, yt = delay_embed(test, d)
        u, s, vh = np.linalg.svd(x, full_matrices=False)
        k = max(1, svht_rank(s, x.shape)[0])
        pred = ((y[-n:] @ vh[:k].T) / s[:k]) @ (u[:, :k].T @ xt)
        num += np.sum((yt[-n:] - pred) ** 2)
        den += np.sum((yt[-n:] - xt[-n:]) ** 2)
    return num / den


def test_choose_delays_errors_are_the_held_out_prediction_errors():
    from conjugacy.delays import choose_delays

    # 3 features: explicit delay matrices; 40 features: the snapshot Gram from 2 delays on
    for x in (_latent(3, 6, 50, seed=4, noise=0.1), _latent(40, 6, 50, seed=4, noise=0.1)):
        choice = choose_delays(x)
        assert choice.candidates == (0, 1, 2, 3, 4, 6, 8, 12)
        for d, err in zip(choice.candidates, choice.errors):
            assert err == pytest.approx(_direct_prediction_error(list(x), d), rel=1e-9)
        best = min(choice.errors)
        first = next(d for d, e in zip(choice.candidates, choice.errors)
                     if e <= 1.02 * best + 1e-12)
        assert choice.delays == first


def test_choose_delays_finds_the_delays_a_hidden_coordinate_needs():
    from test_delays import _noisy_rotation

    from conjugacy.delays import choose_delays

    z = _noisy_rotation()
    seen = choose_delays(z[:, :, :1])  # one coordinate of a rotation: no delay predicts badly
    assert seen.delays == 3 and seen.errors[0] > 0.9 and seen.errors[3] < 0.15
    # fully observed, yet 1 delay: SVHT on 2 rows keeps at most 1 direction (its threshold is
    # omega > 1 times the median, here the mean of the 2 values), so d = 0 predicts badly
    full = choose_delays(z)
    assert full.delays == 1 and full.ranks[:2] == (1, 2) and full.errors[0] > 1
    spec = koopman_spectrum(z[:, :, :1], delays="auto", rank="svht", method="standard")
    assert spec.settings["delays"] == 3
    assert spec.settings["delays_rule"]["rule"] == "prediction"
    assert spec.settings["delays_rule"]["errors"] == list(seen.errors)


def test_delays_auto_errors_name_the_argument():
    from conjugacy.delays import choose_delays

    with pytest.raises(ValueError, match="delays must be a non-negative int or 'auto'"):
        koopman_spectrum(np.ones((20, 2)), delays="many")
    with pytest.raises(ValueError, match="at least 6 per trajectory"):
        choose_delays(np.ones((2, 5, 2)))


def test_delays_auto_chooses_at_the_fits_thread_setting(monkeypatch):
    """koopman_spectrum(delays="auto", threads=1) scores the delays at one BLAS thread too (it
    scored them at "auto" threads)."""
    import conjugacy.delays as delays_module

    seen = []
    real = delays_module.choose_delays
    monkeypatch.setattr(delays_module, "choose_delays",
                        lambda x, **kw: seen.append(kw.get("threads")) or real(x, **kw))
    from test_delays import _noisy_rotation

    z = _noisy_rotation()
    koopman_spectrum(z[:, :, :1], delays="auto", rank=2, threads=1)
    koopman_spectrum(z[:, :, :1], delays="auto", rank=2)
    assert seen == [1, "auto"]


# ----- the neighbour check ------------------------------------------------------------------------
def test_neighbour_settings():
    from conjugacy.analysis.neighbours import neighbour_settings

    # ranks x0.8 and x1.25, rounded half up: 8 and 12.5 -> 13 around 10
    got = [(s["name"], s["delays"], s["rank"]) for s in neighbour_settings(8, 10, [10], 20)]
    assert got == [("delays x1/2", 4, 10), ("delays x2", 16, 10), ("rank -2", 8, 8),
                   ("rank +3", 8, 13)]
    # 2 x 3 = 6 exceeds what the runs allow (5); a rule: around the median (7 -> 6 and 9)
    got = [(s["name"], s["delays"], s["rank"]) for s in neighbour_settings(3, "svht", [4, 7, 9], 5)]
    assert got == [("delays x1/2", 1, "svht"), ("rank -1", 3, 6), ("rank +2", 3, 9)]
    # small ranks: relative, at least one step (3 -> 2 and 4, not 1 and 5); never below 2
    got = [(s["name"], s["delays"], s["rank"]) for s in neighbour_settings(0, 3, [3], 5)]
    assert got == [("rank -1", 0, 2), ("rank +1", 0, 4)]
    got = [(s["name"], s["delays"], s["rank"]) for s in neighbour_settings(0, 2, [2], 5)]
    assert got == [("rank +1", 0, 3)]
    got = [(s["name"], s["delays"], s["rank"]) for s in neighbour_settings(0, 40, [40], 5)]
    assert got == [("rank -8", 0, 32), ("rank +10", 0, 50)]


def test_neighbours_not_tried_say_why():
    from conjugacy.analysis.neighbours import neighbours_not_tried

    got = neighbours_not_tried(0, 2, [2], 5)
    assert got == [
        {"name": "delays x1/2", "reason": "not possible at 0 delays (a multiple of 0 is 0)"},
        {"name": "delays x2", "reason": "not possible at 0 delays (a multiple of 0 is 0)"},
        {"name": "rank -1", "reason": "rank 1: below 2 (one real eigenvalue, no complex pair)"}]
    assert neighbours_not_tried(3, 6, [6], 5, lambda d: 3 * (d + 1)) == [
        {"name": "delays x2", "reason": "6 delays: beyond the 5 the runs allow"}]
    assert neighbours_not_tried(3, 7, [7], 3, lambda d: 3 * (d + 1)) == [
        {"name": "delays x1/2", "reason": "rank 7 is beyond the 6 the data allow at 1 delays"},
        {"name": "delays x2", "reason": "6 delays: beyond the 3 the runs allow"}]
    assert neighbours_not_tried(0, 3, [3], 5, lambda d: 3)[-1] == {
        "name": "rank +1", "reason": "rank 4: beyond the 3 the data allow at 0 delays"}


def test_neighbour_settings_stay_within_the_data_and_never_repeat_the_base():
    from conjugacy.analysis.neighbours import neighbour_settings

    def names(*args):
        return [(s["name"], s["delays"], s["rank"]) for s in neighbour_settings(*args)]

    # 3 observables at 0 delays: rank 4 is clipped to 3, the base: no neighbour
    assert names(0, 3, [3], 5, lambda d: 3 * (d + 1)) == [("rank -1", 0, 2)]
    # a rule whose median rank is 1: no rank below 2
    assert names(0, "svht", [1, 1, 2], 5) == [("rank +1", 0, 2)]
    # rank 9 does not fit at 1 delay (6 observables): that delay neighbour is dropped
    assert names(2, 9, [9], 5, lambda d: 3 * (d + 1)) == [("delays x2", 4, 9), ("rank -2", 2, 7)]
    # clipped at the top: rank 5 (x1.25 = 6.25 -> 6) of at most 5... around 4: 3 and 5
    assert names(0, 4, [4], 5, lambda d: 5) == [("rank -1", 0, 3), ("rank +1", 0, 5)]
    assert names(0, 8, [8], 5, lambda d: 9) == [("rank -2", 0, 6), ("rank +1", 0, 9)]


def test_neighbour_summary_marks_a_flipped_verdict_fragile():
    from conjugacy.analysis.neighbours import _summary

    base = {"verdict": "not conjugate", "pvalue": 0.01, "distance": 0.3}
    found = {"delays x1/2": {"verdict": "not conjugate", "pvalue": 0.02, "distance": 0.25},
             "rank -2": {"verdict": "conjugate", "pvalue": 0.4, "distance": 0.1},
             "rank +2": {"verdict": "not conjugate", "pvalue": 0.005, "distance": float("nan")}}
    got = _summary(base, found)
    assert (got["same"], got["of"], got["fragile"]) == (2, 3, True)
    assert got["pvalue_range"] == [0.005, 0.4] and got["distance_range"] == [0.1, 0.3]
    found["rank -2"]["verdict"] = "not conjugate"
    assert _summary(base, found)["fragile"] is False


def _systems_store(path, noise=1e-3):
    """Conditions a and b: one 3-mode system; c: another; 4 seeds each (2 runs per seed)."""
    from conjugacy.store import TrajectoryStore

    rng = np.random.default_rng(5)
    c_mat = rng.standard_normal((40, 3))
    eigs = {"a": [0.95, 0.8, 0.6], "b": [0.95, 0.8, 0.6], "c": [0.9, 0.4, -0.7]}
    with TrajectoryStore.open(path, "w") as st:
        for cond, lam in eigs.items():
            for seed in range(4):
                for rep in range(2):
                    z0 = rng.standard_normal(3)
                    z = z0[None, :] * np.array(lam)[None, :] ** np.arange(40)[:, None]
                    x = z @ c_mat.T + noise * rng.standard_normal((40, 40))
                    name = f"{cond}{seed}_{rep}"
                    st.create_run(name, {"w": ((40,), "float64")},
                                  metadata={"condition": cond, "seed": seed})
                    st.append(name, np.arange(40), {"w": x})
                    st.set_finished(name)


def test_pipeline_neighbour_check_reports_every_pair(tmp_path):
    pytest.importorskip("zarr")
    from conjugacy.analysis import SpectrumGroup, run_pipeline, validate
    from conjugacy.study import StudyReader

    _systems_store(tmp_path / "runs.zarr")
    reader = StudyReader({f"{c}{s}_{r}": tmp_path / "runs.zarr" for c in "abc" for s in range(4)
                          for r in range(2)})
    groups = [SpectrumGroup(c, s, (f"{c}{s}_0", f"{c}{s}_1")) for c in "abc" for s in range(4)]
    with reader:
        # rank 4 of the 3-mode systems: its neighbours 3 and 5 both hold every mode (at rank 3
        # the neighbour 2 drops one and a-c is "conjugate" there, p 0.057: fragile, rightly)
        res = run_pipeline(reader, groups, {"delays": 2, "rank": 4}, params="w",
                           neighbours=True, experiment="t",
                           stats={"alpha": 0.05, "seed": 0, "n_permutations": 99})
    nb = res.results["comparison"]["neighbourhood"]
    validate(res.results)
    assert [s["name"] for s in nb["settings"]] == [
        "delays x1/2", "delays x2", "rank -1", "rank +1", "other filter (all eigenvalues)"]
    assert nb["not_tried"] == []
    assert nb["n_fits"] == 4 * 12
    verdicts = res.results["comparison"]["verdicts"]
    for pair in ("a-c", "b-c"):  # different systems: every neighbour agrees
        got = nb["pairs"][pair]
        assert got["verdict"] == verdicts[pair]["verdict"] == "not conjugate"
        assert (got["same"], got["of"], got["fragile"]) == (5, 5, False)
        assert got["pvalue_range"][1] < 0.05
    same = nb["pairs"]["a-b"]  # one system: conjugate at every neighbour (p 0.17-1.0)
    assert same["verdict"] == "conjugate" and (same["same"], same["fragile"]) == (5, False)
    assert same["pvalue_range"][0] > 0.05
    assert set(same["neighbours"]) == {s["name"] for s in nb["settings"]}
    # all eigenvalues hold the 4th, noise one: far apart, yet within the seeds' spread
    assert same["neighbours"]["other filter (all eigenvalues)"]["distance"] > 10 * same[
        "distance_range"][0]
    from conjugacy.report._render import render_html, render_markdown

    md = render_markdown(res.results)
    assert nb["n_reused"] == 2 * 12  # the rank neighbours: from the base fits' factorization
    assert "### At neighbouring settings" in md
    assert "(24 refits and 24 spectra from the base fits' factorization, " in md
    assert "| a vs c | not conjugate | 5 of 5 | stable |" in md
    assert "At neighbouring settings" in render_html(res.results)


def test_pilot_delays_take_the_largest_choice_over_conditions():
    from conjugacy.analysis.own_runs import pilot_delays
    from conjugacy.delays import choose_delays

    rng = np.random.default_rng(0)
    z = np.zeros((6, 80, 2))
    z[:, 0] = rng.standard_normal((6, 2))
    rot = np.array([[np.cos(0.4), -np.sin(0.4)], [np.sin(0.4), np.cos(0.4)]]) * 0.98
    for t in range(79):
        z[:, t + 1] = z[:, t] @ rot.T + 0.05 * rng.standard_normal((6, 2))
    hidden, seen = z[:, :, :1], _latent(12, 6, 80, seed=3, noise=0.01)
    d, why = pilot_delays({"hidden": hidden, "seen": seen})
    assert d == 3 == choose_delays(hidden).delays > choose_delays(seen).delays
    assert why.startswith("3 delays: the largest over conditions") and "hidden: 3 (" in why
    # at most PILOT_SNAPSHOTS (2400) snapshots: 10 runs x 400 records -> the first 6 runs
    long = np.repeat(hidden[:, :, :], 5, axis=1)[:, :400]
    long = np.concatenate([long, long[:4]])
    assert pilot_delays({"x": long})[0] == choose_delays(long[:6]).delays


def test_cli_spectrum_takes_rank_svht(tmp_path):
    pytest.importorskip("typer")
    from typer.testing import CliRunner

    from conjugacy import Spectrum
    from conjugacy.cli import app

    x = _latent(40, 4, 120)
    np.save(tmp_path / "x.npy", x)
    got = CliRunner().invoke(app, ["spectrum", str(tmp_path / "x.npy"), "--delays", "2",
                                   "--rank", "svht", "--out", str(tmp_path / "s.npz")])
    assert got.exit_code == 0, got.output
    spec = Spectrum.load(tmp_path / "s.npz")
    assert spec.rank == 9 and spec.settings["rank_rule"]["rule"] == "svht"
    bad = CliRunner().invoke(app, ["spectrum", str(tmp_path / "x.npy"), "--rank", "svd",
                                   "--out", str(tmp_path / "t.npz")])
    assert bad.exit_code == 2 and "'all' or 'svht'" in bad.output


_STUDY_EIGS = {"a": [0.9, 0.7, 0.5], "b": [0.6, -0.5, 0.3]}


def _linear_job(job, ctx):
    """A study job without torch: each replica a 3-mode linear system in 12 channels."""
    rng = np.random.default_rng([job.seed, len(job.condition)])
    c_mat = np.random.default_rng(7).standard_normal((12, 3))
    lam = np.array(_STUDY_EIGS[job.condition])
    for name in job.run_names:
        x = (rng.standard_normal(3) * lam ** np.arange(job.n_records)[:, None]) @ c_mat.T
        ctx.store.create_run(name, {"w": ((12,), "float64")}, metadata=dict(ctx.metadata))
        ctx.store.append(name, np.arange(job.n_records), {"w": x + 1e-3 * rng.standard_normal(
            x.shape)})
        ctx.store.set_finished(name)


def test_analyse_study_defaults_to_the_settings_of_analyze(tmp_path):
    pytest.importorskip("zarr")
    from conjugacy.analysis import analyse_study
    from conjugacy.study import Study, run_study

    study = Study(name="lin", conditions={"a": {}, "b": {}}, seeds=(0, 1, 2, 3), n_replicas=2,
                  n_records=40, train=_linear_job, settings={"system": "linear"})
    run_study(study, tmp_path / "out", progress=False)
    res = analyse_study(study, tmp_path / "out", params="w", n_permutations=99, neighbours=True)
    r = res.results
    # fully observed: no delay needed; one rank for every spectrum, the pilots' SVHT rank
    assert r["settings"] == {"delays": 0, "rank": 3}
    assert r["settings_reasoning"]["delays"].startswith("0 delays: the largest over conditions")
    assert [sp.rank for v in res.spectra.values() for sp in v] == [3] * 8
    assert r["comparison"]["verdicts"]["a-b"]["verdict"] == "not conjugate"
    # analyze's default comparison: all eigenvalues; the other filter is the per-spectrum one,
    # compared on the base fits (ranks 2 and 4 around 3 and the other filter)
    assert r["comparison"]["verdict_uses"] == "all" and r["comparison"]["filtered"] is None
    nb = r["comparison"]["neighbourhood"]
    assert [s["name"] for s in nb["settings"]] == ["rank -1", "rank +1",
                                                   "other filter (per-spectrum)"]
    assert nb["pairs"]["a-b"]["of"] == 3 and nb["n_fits"] == 2 * 8
    other = nb["pairs"]["a-b"]["neighbours"]["other filter (per-spectrum)"]
    assert other["verdict"] == "not conjugate" and other["pvalue"] < 0.05


@pytest.mark.parametrize("n_features", [30, 4])  # Gram route (features >= snapshots), dense
def test_neighbour_refits_carry_the_recorded_branch(n_features):
    from conjugacy.analysis.neighbours import _group_fits

    rng = np.random.default_rng(3)
    x = np.cumsum(rng.standard_normal((2, 10, n_features)), axis=1)
    nxt = x + rng.standard_normal(x.shape)
    variants = [{"delays": 1, "rank": 3}, {"delays": 0, "rank": 2}]
    fits = _group_fits(x, {"delays": 1, "rank": 3}, variants, nxt)
    for v, sp in zip(variants, fits):
        want = koopman_spectrum(x, delays=v["delays"], rank=v["rank"], next_states=nxt)
        np.testing.assert_allclose(sp.eigenvalues, want.eigenvalues, atol=1e-8)
        np.testing.assert_allclose(sp.projection_residuals, want.projection_residuals, atol=1e-6)
        assert sp.filtered().settings["filter"]["rule"] == "two-branch"
    assert _group_fits(x, {"delays": 1, "rank": 3}, variants[:1])[0].projection_residuals is None
