"""Tests of conjugacy.experiments.optimizers (paper sec. 4.1, fig. 2 / S1) and conjugacy.results."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conjugacy import koopman_spectrum
from conjugacy.analysis import Results, validate
from conjugacy.compare import wasserstein
from conjugacy.experiments import optimizers as opt
from conjugacy.experiments.optimizers import (
    OptimizerConfig,
    bisection_initial_conditions,
    bisection_trajectory,
    exact_root_step,
    initial_condition_groups,
    loss_value,
    ogd_initial_conditions,
    ogd_trajectory,
    omd_initial_conditions,
    omd_trajectory,
    run,
    simulate,
)
from conjugacy.report import verdicts as report_verdicts
from conjugacy.results import (
    complex_to_pairs,
    package_info,
    spectrum_to_dict,
    to_jsonable,
    write_json,
)


@pytest.fixture(scope="module")
def tan() -> Results:
    return run(OptimizerConfig(loss="tan"))


@pytest.fixture(scope="module")
def iterates() -> opt.Iterates:
    return simulate(OptimizerConfig(loss="tan"))


@pytest.fixture(scope="module")
def quartic() -> Results:
    return run(OptimizerConfig(loss="quartic"))


def _pooled(results: Results, m: str) -> np.ndarray:
    """The eigenvalues of the spectrum of all 25 runs of ``m``, from the results' JSON content."""
    pairs = np.array(results.content["pooled_spectra"][m][0]["eigenvalues"], float)
    return pairs[:, 0] + 1j * pairs[:, 1]


def _verdicts(results: Results) -> dict[str, str]:
    return {k: v["verdict"] for k, v in results.content["comparison"]["verdicts"].items()}


def _pvalues(results: Results) -> dict[str, float]:
    return {k: v["pvalue"] for k, v in results.content["comparison"]["verdicts"].items()}


# ----- initial conditions ------------------------------------------------------------------------
def test_initial_condition_grids_as_published():
    x0, u0 = omd_initial_conditions(), ogd_initial_conditions()
    a0, b0 = bisection_initial_conditions()
    for arr in (x0, u0, a0, b0):
        assert arr.shape == (25, 2) and arr.dtype == np.float64
    assert sorted(set(x0[:, 0])) == [0.1, 0.3, 0.5, 0.7, 0.9]
    assert sorted(set(u0[:, 1])) == [-2.30, -1.75, -1.20, -0.65, -0.10]
    np.testing.assert_allclose(sorted(set(a0[:, 0])), np.array([-16, -13, -10, -7, -4]) / 12)
    # The paper prints b0 rounded to 3 digits: 1/7, 0.393, 0.643, 0.893, 8/7.
    np.testing.assert_allclose(sorted(set(b0[:, 0])), [1 / 7, 0.393, 0.643, 0.893, 8 / 7], atol=5e-4)
    # Reference order: row n = (g[n % 5], g[n // 5]); run 17 is x0 = (0.5, 0.7) (fig. 2A).
    np.testing.assert_array_equal(x0[17], [0.5, 0.7])
    np.testing.assert_array_equal(x0[opt.EXAMPLE_RUN], [0.5, 0.7])
    # Each a0 and each b0 used once, paired by grid position: a bracket for sum tan.
    assert len({tuple(r) for r in a0}) == 25 and len({tuple(r) for r in b0}) == 25
    assert (loss_value("tan", a0) < 0).all() and (loss_value("tan", b0) > 0).all()
    assert ((a0 >= opt.BM_BOX[0]) & (b0 <= opt.BM_BOX[1])).all()


def test_groups_partition_the_grid_and_are_balanced():
    groups = initial_condition_groups(5)
    assert sorted(n for g in groups for n in g) == list(range(25))
    for g in groups:
        assert len(g) == 5
        # every value of each coordinate exactly once (Latin square diagonals)
        assert sorted(n % 5 for n in g) == list(range(5))
        assert sorted(n // 5 for n in g) == list(range(5))
    assert len(initial_condition_groups(2)) == 2
    with pytest.raises(ValueError, match="n_groups must be <= 12"):
        initial_condition_groups(13)
    with pytest.raises(ValueError, match="n_groups must be >= 2"):
        initial_condition_groups(1)


# ----- the optimizers ----------------------------------------------------------------------------
def test_omd_first_step_by_hand_and_projection():
    x0 = np.array([0.5, 0.7])
    traj = omd_trajectory(x0, loss="tan")
    assert traj.shape == (100, 2) and traj.dtype == np.float64
    np.testing.assert_array_equal(traj[0], x0)
    expected = 1.0 / (1.0 / x0 + 0.01 / np.cos(x0) ** 2)
    np.testing.assert_allclose(traj[1], expected, rtol=1e-15)
    q = omd_trajectory(x0, loss="quartic", n_steps=2)
    np.testing.assert_allclose(q[1], 1.0 / (1.0 / x0 + 0.01 * 4 * x0**3), rtol=1e-15)
    # A huge step leaves the box and is clipped to its lower face exactly (Bregman = clip).
    big = omd_trajectory(x0, eta=1e4, n_steps=3)
    np.testing.assert_array_equal(big[1:], 0.01)
    assert np.all(np.diff(traj, axis=0) < 0)  # f' > 0: x decreases monotonically


def test_ogd_first_step_by_hand_and_projection():
    u0 = np.array([-1.2, -0.65])
    traj = ogd_trajectory(u0, loss="tan")
    x = np.exp(u0)
    np.testing.assert_allclose(traj[1], u0 - 0.01 * x / np.cos(x) ** 2, rtol=1e-15)
    big = ogd_trajectory(u0, eta=1e4, n_steps=2)
    np.testing.assert_array_equal(big[1], math.log(0.01))


@pytest.mark.parametrize("loss", ["tan", "quartic"])
def test_omd_and_ogd_are_conjugate_through_exp_to_second_order(loss):
    # q(u) = exp(u) conjugates the two flows in continuous time; the discrete maps agree to
    # O(eta^2) per step, so from x0 = exp(u0) the gap shrinks ~eta^2 (measured: 2.8e-4 at
    # eta = 1e-2, 1.0e-5 at 1e-3 for tan).
    u0 = np.array([-1.2, -0.65])
    gaps = []
    for eta in (1e-2, 1e-3):
        x = omd_trajectory(np.exp(u0), loss=loss, eta=eta)
        u = ogd_trajectory(u0, loss=loss, eta=eta)
        gaps.append(np.abs(np.exp(u) - x).max())
    assert gaps[1] < 3e-5
    assert gaps[1] / gaps[0] < 0.1


def test_bisection_steps_by_hand():
    a0, b0 = np.array([-1.0, -0.5]), np.array([0.5, 1.0])
    traj = bisection_trajectory(a0, b0, n_steps=4)
    z0 = (a0 + b0) / 2  # (-0.25, 0.25): tan sums to exactly 0 -> exact root at step 0
    np.testing.assert_array_equal(traj, np.tile(z0, (4, 1)))
    assert exact_root_step(traj) == 0
    a0, b0 = np.array([-1.0, -1.0]), np.array([0.5, 0.25])
    traj = bisection_trajectory(a0, b0, n_steps=3)
    z0 = (a0 + b0) / 2  # f(z0) < 0 -> a = z0
    assert loss_value("tan", z0) < 0
    np.testing.assert_array_equal(traj[1], (z0 + b0) / 2)


def test_bisection_published_runs_hit_exact_roots_and_stay():
    a0, b0 = bisection_initial_conditions()
    steps = []
    for a, b in zip(a0, b0):
        z = bisection_trajectory(a, b)
        # z stays on the segment from a0 to b0 (the whole vector is bisected)
        d = b - a
        cross = (z[:, 0] - a[0]) * d[1] - (z[:, 1] - a[1]) * d[0]
        assert np.abs(cross).max() < 1e-12
        assert abs(loss_value("tan", z[-1])) < 1e-12
        k = exact_root_step(z)
        steps.append(k)
        if k >= 0:  # after an exact root the iterate is the fixed point, never zeros
            np.testing.assert_array_equal(z[k:], np.tile(z[k], (100 - k, 1)))
            assert np.abs(z[k]).max() > 0.01 or np.all(z[k] == 0)
    steps = np.array(steps)
    # Measured: 20 of 25 runs at steps 51-56 (the 5 symmetric brackets a0 = (c, c) converge to
    # (0, 0) without ever hitting it exactly). Margins allow another libm's tan.
    assert (steps >= 0).sum() >= 15
    assert steps[steps >= 0].min() >= 40 and steps.max() <= 70


def test_bisection_rejects_quartic_and_bad_brackets():
    with pytest.raises(ValueError, match="never negative"):
        bisection_trajectory([-0.5, -0.5], [0.5, 0.5], loss="quartic")
    with pytest.raises(ValueError, match=r"f\(a0\) < 0 < f\(b0\)"):
        bisection_trajectory([0.5, 0.5], [-0.5, -0.5])
    with pytest.raises(ValueError, match=r"a0\[0\] = -2.0 lies outside"):
        bisection_trajectory([-2.0, -0.5], [0.5, 0.5])


def test_a_batch_of_initial_conditions_equals_the_runs_one_by_one():
    # The maps take (d,) or (n_runs, d); simulate runs the 25 initial conditions as one batch,
    # which must give the runs one by one to the last bit (the paper's eigenvalues depend on it).
    x0, u0 = omd_initial_conditions(), ogd_initial_conditions()
    a0, b0 = bisection_initial_conditions()
    for batch, rows in [
        (omd_trajectory(x0, loss="quartic"), [omd_trajectory(x, loss="quartic") for x in x0]),
        (ogd_trajectory(u0), [ogd_trajectory(u) for u in u0]),
        (bisection_trajectory(a0, b0), [bisection_trajectory(a, b) for a, b in zip(a0, b0)]),
    ]:
        assert batch.shape == (25, 100, 2)
        np.testing.assert_array_equal(batch, np.stack(rows))
    # an exact root in one run of the batch collapses that run's bracket only
    a0, b0 = np.array([[-1.0, -0.5], [-1.0, -1.0]]), np.array([[0.5, 1.0], [0.5, 0.25]])
    traj = bisection_trajectory(a0, b0, n_steps=3)
    np.testing.assert_array_equal(traj[0], np.tile([-0.25, 0.25], (3, 1)))
    np.testing.assert_array_equal(traj[1], bisection_trajectory(a0[1], b0[1], n_steps=3))
    with pytest.raises(ValueError, match=r"x0\[1, 0\] = 2.0 lies outside"):
        omd_trajectory([[0.5, 0.5], [2.0, 0.5]])
    with pytest.raises(ValueError, match=r"f\(a0\) < 0 < f\(b0\).* \(run 1\)"):
        bisection_trajectory(a0, b0[::-1] * [[1, 1], [-1, -1]])


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: omd_trajectory([0.0, 0.5]), ValueError, r"x0\[0\] = 0.0 lies outside"),
        (lambda: omd_trajectory([0.5, np.nan]), ValueError, "NaN"),
        (lambda: omd_trajectory([[[0.5, 0.5]]]), ValueError, "1-D array"),
        (lambda: omd_trajectory([0.5], loss="cubic"), ValueError, "loss must be one of"),
        (lambda: omd_trajectory([0.5], eta=-1.0), ValueError, "eta must be finite and > 0"),
        (lambda: omd_trajectory([0.5], n_steps=0), ValueError, "n_steps must be >= 1"),
        (lambda: omd_trajectory([0.5], box=(-1.0, 1.0)), ValueError, "x > 0"),
        (lambda: ogd_trajectory(["a"]), TypeError, "u0 must hold numbers"),
        (lambda: ogd_trajectory([-1.0], box=(0.0, -1.0)), ValueError, "low < high"),
    ],
)
def test_optimizer_input_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ----- the experiment ----------------------------------------------------------------------------
def test_config_validation():
    assert OptimizerConfig().methods == ("omd", "ogd", "bm")
    assert OptimizerConfig(loss="quartic").pairs == (("omd", "ogd"),)
    with pytest.raises(ValueError, match="loss must be one of"):
        OptimizerConfig(loss="sin")
    with pytest.raises(ValueError, match="method must be one of"):
        OptimizerConfig(method="fast")
    with pytest.raises(ValueError, match="rank must be >= 1"):
        OptimizerConfig(rank=0)
    with pytest.raises(ValueError, match="n_steps must be >= delays \\+ 2"):
        OptimizerConfig(n_steps=5, delays=4)
    with pytest.raises(ValueError, match="alpha must be in"):
        OptimizerConfig(alpha=1.5)
    with pytest.raises(TypeError, match="seed must be an integer"):
        OptimizerConfig(seed=1.5)
    with pytest.raises(TypeError, match="config must be an OptimizerConfig"):
        run({"loss": "tan"})


def test_reproduction_trajectories_and_losses(iterates, tan):
    for m in ("omd", "ogd", "bm"):
        assert iterates.trajectories[m].shape == (25, 100, 2)
        assert iterates.losses[m].shape == (25, 100)
        assert not iterates.trajectories[m].flags.writeable
    traj, losses = iterates.trajectories, iterates.losses
    np.testing.assert_array_equal(traj["omd"][:, 0], omd_initial_conditions())
    np.testing.assert_array_equal(traj["ogd"][:, 0], ogd_initial_conditions())
    np.testing.assert_allclose(losses["ogd"], loss_value("tan", np.exp(traj["ogd"])), rtol=0)
    np.testing.assert_array_equal(losses["bm"], np.abs(loss_value("tan", traj["bm"])))
    assert iterates.initial_conditions["bm"].shape == (25, 2, 2)
    # OMD/OGD decrease the loss monotonically; BM drives |f| to 0.
    assert np.all(np.diff(losses["omd"], axis=1) <= 0)
    assert losses["bm"][:, -1].max() < 1e-12
    # The loss curves in results.json are those of the iterates.
    curve = tan.content["loss"]["ogd"]
    np.testing.assert_allclose(curve["mean"], losses["ogd"].mean(0), rtol=0, atol=0)
    np.testing.assert_allclose(curve["max"], losses["ogd"].max(0), rtol=0, atol=0)
    # final_mean: the mean of the last tenth of the mean curve, as every loss entry (docs/results.md)
    tenth = max(1, losses["ogd"].shape[1] // 10)
    assert curve["final_mean"] == pytest.approx(float(losses["ogd"].mean(0)[-tenth:].mean()), rel=1e-12)
    assert curve["n_runs"] == 25
    assert curve["final_mean"] != float(losses["ogd"][:, -1].mean())


def test_reproduction_spectra_match_the_published_outcome(tan, iterates):
    omd, ogd, bm = (_pooled(tan, m) for m in ("omd", "ogd", "bm"))
    for eig in (omd, ogd):
        # Paper: "they consist only of real, positive eigenvalues". Measured: 10 real values in
        # [0.546, 1.0007] for both.
        assert len(eig) == 10
        assert np.abs(eig.imag).max() < 1e-10
        assert eig.real.min() > 0.4
        assert np.abs(eig).max() < 1.01
    # Paper: BM's spectrum has complex pairs. Measured: 2 pairs, |Im| 0.24 and 0.39.
    assert (np.abs(bm.imag) > 0.1).sum() >= 2
    d = tan.content["comparison"]["all"]["pooled_distances"]
    # Measured W_1: OMD-OGD 0.0081, OMD-BM 0.675, OGD-BM 0.681. Margins: 3x on the small one,
    # 30 % on the large ones, and the qualitative claim (BM ~70x farther) as a ratio > 20.
    assert d["omd-ogd"] < 0.03
    assert d["omd-bm"] > 0.5 and d["ogd-bm"] > 0.5
    assert min(d["omd-bm"], d["ogd-bm"]) > 20 * d["omd-ogd"]
    assert d["omd-ogd"] == pytest.approx(wasserstein(omd, ogd))
    # The spectra are the ones koopman_spectrum gives on the stacked runs (no extra math here):
    # all 25 runs, and each group of initial conditions (the spectra the test compares).
    direct = koopman_spectrum(iterates.trajectories["ogd"], delays=4, rank=10, method="rrr")
    np.testing.assert_allclose(direct.eigenvalues, ogd, atol=1e-12)
    groups = initial_condition_groups(5)
    assert len(tan.spectra["bm"]) == 5 and tan.content["sections"]["groups"] == [list(g) for g in groups]
    for g, spec in zip(groups, tan.spectra["omd"]):
        direct = koopman_spectrum(iterates.trajectories["omd"][list(g)], delays=4, rank=10)
        np.testing.assert_allclose(direct.eigenvalues, spec.eigenvalues, atol=1e-12)


def test_reproduction_tests_and_verdicts(tan):
    p = _pvalues(tan)
    cmp = tan.content["comparison"]
    # 5 vs 5 group spectra: all 252 relabelings enumerated, smallest p = 2/252. Measured:
    # OMD-OGD 0.452, both BM pairs 0.0079 (the smallest attainable).
    assert p["omd-ogd"] > 0.2
    assert p["omd-bm"] == pytest.approx(2 / 252) and p["ogd-bm"] == pytest.approx(2 / 252)
    tests = cmp[cmp["verdict_uses"]]["permutation_tests"]
    assert all(tests[k]["exact"] and tests[k]["pvalue"] == p[k] for k in p)
    assert _verdicts(tan) == {"omd-ogd": "conjugate", "omd-bm": "not conjugate",
                              "ogd-bm": "not conjugate"}
    # Paper's shuffle control: 25 % (OMD-OGD) vs 0 % (BM pairs); measured 15 %, 2 %, 3 %.
    f = {k: v["fraction"] for k, v in cmp["all"]["shuffle_control"].items()}
    assert f["omd-ogd"] > 0.1
    assert max(f["omd-bm"], f["ogd-bm"]) < 0.1
    assert tan.content["sections"]["bisection"]["runs_with_exact_root"] >= 15
    assert [(c.claim, c.holds) for c in tan.claims] == [
        ("OMD and OGD are conjugate", True),
        ("the OMD and OGD spectra consist only of real, positive eigenvalues", True),
        ("bisection is not conjugate to OMD or OGD", True)]


def test_quartic_has_no_bisection(quartic):
    assert list(quartic.spectra) == ["omd", "ogd"]
    assert "bisection" not in quartic.content["sections"]
    d = quartic.content["comparison"]["all"]["pooled_distances"]
    assert list(d) == ["omd-ogd"]
    # Measured W_1 0.0066, p 0.452 (fig. S1: overlapping real spectra).
    assert d["omd-ogd"] < 0.03
    assert _verdicts(quartic) == {"omd-ogd": "conjugate"}
    assert _pvalues(quartic)["omd-ogd"] > 0.2
    for m in ("omd", "ogd"):
        assert np.abs(_pooled(quartic, m).imag).max() < 1e-10
    assert [c.holds for c in quartic.claims] == [True, True]
    assert quartic.content["sections"]["figure"] == "fig. S1"
    validate(quartic.content)


def test_run_is_deterministic_given_a_seed():
    # Small settings: 50 < 252 permutations makes the test a Monte Carlo one, so the seed matters.
    cfg = OptimizerConfig(n_steps=20, n_shuffles=20, n_permutations=50, seed=3)
    r1, r2 = run(cfg), run(cfg)
    c1, c2 = r1.content["comparison"], r2.content["comparison"]
    assert c1["all"]["shuffle_control"] == c2["all"]["shuffle_control"]
    assert c1["verdicts"] == c2["verdicts"]
    assert not c1["all"]["permutation_tests"]["omd-ogd"]["exact"]
    for m in r1.spectra:
        np.testing.assert_array_equal(_pooled(r1, m), _pooled(r2, m))


def test_results_json_validates_against_the_schema(tmp_path):
    res = run(OptimizerConfig(), out=tmp_path)
    back = json.loads((tmp_path / "results.json").read_text())
    validate(back)
    assert back["schema"] == "conjugacy.results/2" and back["experiment"] == "optimizers"
    assert set(back["pooled_spectra"]) == set(back["spectra"]) == {"omd", "ogd", "bm"}
    assert back["settings"]["delays"] == 4 and back["settings"]["rank"] == 10
    assert back["config"] == OptimizerConfig().to_dict()
    np.testing.assert_array_equal(_pooled(res, "bm"), np.array(
        [complex(*p) for p in back["pooled_spectra"]["bm"][0]["eigenvalues"]]))
    assert back["comparison"] == json.loads(json.dumps(res.content["comparison"]))
    assert back["provenance"]["package"]["conjugacy"]
    assert sorted(back["figures"]) == sorted(f"{n}.{e}" for n in
                                             ("trajectories", "losses", "eigenvalues", "overview")
                                             for e in ("png", "svg"))
    with np.load(tmp_path / back["files"]["trajectories"], allow_pickle=False) as z:
        assert z["bm"].shape == (25, 100, 2) and z["bm_initial"].shape == (25, 2, 2)


def test_run_rejects_a_file_as_folder(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match="exists and is not a folder"):
        run(OptimizerConfig(), out=f)
    with pytest.raises(NotADirectoryError):
        run(OptimizerConfig(), out=f / "sub")


@pytest.mark.parametrize("n_groups, expected", [
    (3, {"omd-ogd": "undecided", "omd-bm": "undecided", "ogd-bm": "undecided"}),
    (5, {"omd-ogd": "conjugate", "omd-bm": "not conjugate", "ogd-bm": "not conjugate"}),
])
def test_one_verdict_per_pair_everywhere(n_groups, expected, tmp_path, capsys, monkeypatch):
    # Issue 19, item 1: with 3 groups (smallest p = 2/20 = 0.1 > alpha) results.json said
    # "conjugate" at the top level and "undecided" in comparison.verdicts, and the CLI printed
    # "conjugate" for bisection. Now: comparison.verdicts, Results, the claims, the report and the
    # CLI all say the same, and nothing else in results.json holds a verdict.
    from conjugacy.cli.summaries import print_results

    res = run(OptimizerConfig(n_groups=n_groups), out=tmp_path)
    content = json.loads((tmp_path / "results.json").read_text())
    validate(content)
    assert {k: v["verdict"] for k, v in content["comparison"]["verdicts"].items()} == expected
    if n_groups == 3:
        assert all(v["min_pvalue"] == pytest.approx(0.1) for v in
                   content["comparison"]["verdicts"].values())

    def verdict_keys(obj, path=()):
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k in ("verdict", "verdicts") and path[:1] != ("comparison",):
                    yield (*path, k)
                yield from verdict_keys(v, (*path, k))
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                yield from verdict_keys(v, (*path, i))

    assert list(verdict_keys(content)) == []
    assert res.verdicts == expected
    assert {r["pair"]: r["verdict"] for r in report_verdicts(content)} == expected
    holds = {"conjugate": True, "not conjugate": True, "undecided": None}
    claims = {c["claim"]: c["holds"] for c in content["claims"]}
    assert claims["OMD and OGD are conjugate"] is holds[expected["omd-ogd"]]
    assert claims["bisection is not conjugate to OMD or OGD"] is holds[expected["omd-bm"]]
    monkeypatch.setenv("COLUMNS", "250")
    print_results(res.content, tmp_path)
    printed = capsys.readouterr().out
    rows = {ln.split("│")[1].strip(): ln.split("│")[-2].strip()
            for ln in printed.splitlines() if ln.startswith(("│ omd-", "│ ogd-"))}
    assert rows == expected
    for key, v in content["comparison"]["verdicts"].items():  # each verdict with its reason
        assert f"verdict {key}: {v['verdict']} ({v['reason']}; {v['uses']} spectra)" in printed
    word = {True: "holds", None: "undecided"}
    assert f"claim: bisection is not conjugate to OMD or OGD -- {word[holds[expected['omd-bm']]]}" \
        in printed


# ----- conjugacy.results -------------------------------------------------------------------------
def test_complex_to_pairs():
    assert complex_to_pairs([1 + 2j, 3.0]) == [[1.0, 2.0], [3.0, 0.0]]
    assert complex_to_pairs(np.array([[1j]])) == [[0.0, 1.0]]
    assert complex_to_pairs([complex(np.nan, 1)]) == [[None, 1.0]]
    with pytest.raises(TypeError, match="values must hold numbers"):
        complex_to_pairs(["a"])


def test_to_jsonable_and_errors():
    obj = {
        "a": np.float32(1.5),
        "b": np.arange(3),
        "c": np.array([1 + 1j]),
        "d": (np.bool_(True), np.inf),
        "e": OptimizerConfig(),
    }
    out = to_jsonable(obj)
    assert out["a"] == 1.5 and out["b"] == [0, 1, 2] and out["c"] == [[1.0, 1.0]]
    assert out["d"] == [True, None] and out["e"]["loss"] == "tan"
    with pytest.raises(TypeError, match=r"obj\['x'\]\[1\] is of type object"):
        to_jsonable({"x": [1, object()]})
    with pytest.raises(TypeError, match="keys must be strings"):
        to_jsonable({1: 2})


def test_write_json_is_atomic_and_strict(tmp_path):
    path = write_json(tmp_path / "r.json", {"x": np.nan, "y": [1j]})
    assert json.loads(path.read_text()) == {"x": None, "y": [[0.0, 1.0]]}
    before = path.read_text()
    with pytest.raises(TypeError):
        write_json(path, {"bad": object()})
    assert path.read_text() == before  # a failed write leaves the old file intact
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_json(tmp_path / "missing" / "r.json", {})


def test_spectrum_to_dict_and_package_info(tan):
    d = spectrum_to_dict(tan.spectra["omd"][0])  # the spectrum of group 0
    assert d["rank"] == 10 and d["method"] == "rrr" and len(d["eigenvalues"]) == 10
    assert d["residuals_informative"] is False
    assert len(d["data_residuals"]) == 10  # the ResDMD residuals the filter and reports use
    json.dumps(d, allow_nan=False)
    with pytest.raises(TypeError, match="conjugacy.Spectrum"):
        spectrum_to_dict(np.ones(3))
    info = package_info()
    assert set(info) == {"conjugacy", "python", "platform", "packages"}
    assert "numpy" in info["packages"]


def test_configs_take_the_rank_values_koopman_spectrum_takes(tmp_path):
    """Issue 20 review (defect 3): the pipeline-driven configs take an int, 'svht' (any case)
    or None, as rank= and analyze --rank do; the optimizer study then fits at the SVHT rank."""
    from conjugacy.experiments.fcn import FCNConfig
    from conjugacy.experiments.grokking import GrokkingConfig

    assert FCNConfig(rank="SVHT").rank == "svht" and GrokkingConfig(rank=None).rank is None
    assert OptimizerConfig(rank=" Svht ").rank == "svht"
    for cls in (FCNConfig, GrokkingConfig, OptimizerConfig):
        with pytest.raises(ValueError, match="rank must be a positive int"):
            cls(rank="svd")
    out = run(OptimizerConfig(rank="svht"), out=tmp_path).to_dict()
    assert out["settings"]["rank"] == "svht"
    for spectra in out["spectra"].values():
        assert {s["settings"]["rank_rule"]["rule"] for s in spectra} == {"svht"}
