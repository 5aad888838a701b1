"""Time-aware comparison (issue 23, item 1): spectra recorded at different intervals compared as
continuous-time exponents log(lambda) / dt on every entry point, the treatment of lambda near 0
and of negative real eigenvalues, and the aliasing guard. Analytic linear systems: the fitted
eigenvalues are exp(mu k) to ~1e-12, so the same system recorded every k = 1, 2, 5 steps must
agree to 1e-8 once converted, and differ by > 0.1 if it were not converted."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conjugacy import koopman_spectrum
from conjugacy.analysis import compare_conditions
from conjugacy.analysis.groups import with_record_interval
from conjugacy.compare import (
    ALIAS_BOUND,
    AliasingError,
    aliasing,
    comparison_time,
    distance_matrix,
    recording_interval,
    semiconjugacy_distance,
    wasserstein,
    wasserstein_plan,
)
from conjugacy.spectrum import continuous_time_eigenvalues
from conjugacy.stats import conjugacy_test, settings_mismatch, shuffle_control

# continuous-time exponents per step: a decaying rotation and a decaying real mode
SYS_A = (-0.03 + 0.4j, -0.1)
SYS_B = (-0.05 + 0.3j, -0.16)
N_REC = 30


def _latent(mu, k: int, n_rec: int, rng) -> np.ndarray:
    """(n_rec, 3) real latent states of the modes ``mu`` recorded every ``k`` steps."""
    t = k * np.arange(n_rec) + rng.integers(0, 7)
    cols = []
    for m in mu:
        amp, phase = rng.uniform(0.5, 2.0), rng.uniform(0, 2 * np.pi)
        z = amp * np.exp(m * t + 1j * phase * (np.imag(m) != 0))
        cols += [z.real, z.imag] if np.imag(m) != 0 else [z.real]
    return np.stack(cols, axis=1)


def _spectrum(mu, k: int, seed: int, n_runs: int = 3):
    """Spectrum of ``n_runs`` runs of the system ``mu`` seen through 8 random channels, recorded
    every ``k`` steps (so its eigenvalues are exp(mu k)), carrying its recording interval."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((8, 3))
    x = np.stack([_latent(mu, k, N_REC, rng) @ c.T for _ in range(n_runs)])
    return with_record_interval(koopman_spectrum(x, rank=3), k * np.arange(N_REC))


def _spectra(mu, k: int, seeds=(0, 1, 2)):
    return [_spectrum(mu, k, s) for s in seeds]


# ----- the one conversion ---------------------------------------------------------------------
def test_fitted_eigenvalues_are_exp_mu_k():
    for k in (1, 2, 5):
        got = np.sort_complex(_spectrum(SYS_A, k, 0).eigenvalues)
        want = np.sort_complex(np.exp(np.array([SYS_A[0], np.conj(SYS_A[0]), SYS_A[1]]) * k))
        np.testing.assert_allclose(got, want, atol=1e-10)
        ct = np.sort_complex(_spectrum(SYS_A, k, 0).continuous_time(k))
        np.testing.assert_allclose(ct, np.sort_complex([SYS_A[0], np.conj(SYS_A[0]), SYS_A[1]]),
                                   atol=1e-10)


def test_conversion_of_zero_and_negative_real_eigenvalues():
    floor = np.log(1e-6)
    got = continuous_time_eigenvalues([0.0, complex(-0.25, 0.0), complex(-0.25, -0.0)], 2.0)
    np.testing.assert_allclose(got, [floor, np.log(0.25) / 2 + 1j * np.pi / 2,
                                     np.log(0.25) / 2 + 1j * np.pi / 2], rtol=1e-15)
    # the floor is per unit time: lambda = 0 and a fast decay agree at every interval
    for dt in (1.0, 5.0):
        assert continuous_time_eigenvalues([0.0], dt)[0] == floor
        assert continuous_time_eigenvalues([1e-40 ** dt], dt)[0] == floor
    assert continuous_time_eigenvalues([np.exp(-3.0 * 5)], 5.0)[0] == pytest.approx(-3.0)
    np.testing.assert_allclose(continuous_time_eigenvalues([0.0], 1.0, min_modulus=1e-3),
                               [np.log(1e-3)])
    with pytest.raises(ValueError, match="min_modulus must lie in"):
        continuous_time_eigenvalues([0.5], 1.0, min_modulus=1.0)
    with pytest.raises(ValueError, match="dt must be finite and > 0"):
        continuous_time_eigenvalues([0.5], 0.0)


# ----- every entry point, k = 1, 2, 5 ---------------------------------------------------------
@pytest.mark.parametrize("k", [2, 5])
def test_wasserstein_agrees_across_intervals(k):
    a1, ak = _spectrum(SYS_A, 1, 0), _spectrum(SYS_A, k, 1)
    b1, bk = _spectrum(SYS_B, 1, 2), _spectrum(SYS_B, k, 3)
    assert wasserstein(a1, ak) < 1e-8
    assert wasserstein_plan(a1, ak, p=2).distance < 1e-8
    assert wasserstein(a1, ak, time="discrete") > 0.1  # what the comparison was before
    reference = wasserstein(a1, b1)  # equal intervals: discrete
    assert reference == wasserstein(a1, b1, time="discrete")
    assert abs(wasserstein(a1, bk) - wasserstein(a1, b1, time="continuous")) < 1e-8
    assert abs(wasserstein(ak, b1) - wasserstein(a1, b1, time="continuous")) < 1e-8


@pytest.mark.parametrize("k", [2, 5])
def test_semiconjugacy_and_shuffle_control_agree_across_intervals(k):
    a1, ak, b1 = _spectrum(SYS_A, 1, 0), _spectrum(SYS_A, k, 1), _spectrum(SYS_B, 1, 2)
    assert semiconjugacy_distance(a1, ak) < 1e-8
    assert semiconjugacy_distance(a1, ak, time="discrete") > 0.1
    sh = shuffle_control(ak, b1, n_shuffles=20, seed=0)
    ref = shuffle_control(a1, b1, n_shuffles=20, seed=0, time="continuous")
    assert abs(sh.true_distance - ref.true_distance) < 1e-8 and sh.fraction == ref.fraction


def test_distance_matrix_agrees_across_intervals():
    specs = [_spectrum(SYS_A, k, k) for k in (1, 2, 5)] + [_spectrum(SYS_B, k, k) for k in (1, 2, 5)]
    d = distance_matrix(specs)
    ab = wasserstein(specs[0], specs[3], time="continuous")
    want = np.kron(np.array([[0.0, ab], [ab, 0.0]]), np.ones((3, 3)))
    np.testing.assert_allclose(d, want, atol=1e-8)
    assert ab > 0.05
    assert distance_matrix(specs, time="discrete")[0, 1] > 0.1


def test_conjugacy_test_agrees_across_intervals():
    ref = conjugacy_test(_spectra(SYS_A, 1), _spectra(SYS_B, 1), time="continuous", seed=0)
    for ka, kb in ((5, 2), (2, 5), (1, 5)):
        got = conjugacy_test(_spectra(SYS_A, ka), _spectra(SYS_B, kb), seed=0)
        for name in ("statistic", "mean_between", "mean_within"):
            assert abs(getattr(got, name) - getattr(ref, name)) < 1e-8, name
        np.testing.assert_allclose(got.distance_matrix, ref.distance_matrix, atol=1e-8)
        assert got.pvalue == ref.pvalue


def test_compare_conditions_agrees_across_intervals_and_decides():
    ref = compare_conditions({"a": _spectra(SYS_A, 1), "b": _spectra(SYS_B, 1)},
                             n_permutations=9, n_shuffles=5, time="continuous")
    got = compare_conditions({"a": _spectra(SYS_A, 5), "b": _spectra(SYS_B, 2)},
                             n_permutations=9, n_shuffles=5)
    assert got.time == "continuous" and got.settings_mismatch == []
    for block in ("all", "filtered"):
        np.testing.assert_allclose(got[block]["distances"]["a-b"]["per_seed"],
                                   ref[block]["distances"]["a-b"]["per_seed"], atol=1e-8)
        np.testing.assert_allclose(got[block]["between_seeds"]["a"]["values"], 0, atol=1e-8)
    assert got.verdicts["a-b"] == ref.verdicts["a-b"]
    assert "differ" not in got.verdicts["a-b"]["reason"]
    # asked to compare discrete eigenvalues, differing intervals are a settings mismatch
    disc = compare_conditions({"a": _spectra(SYS_A, 5), "b": _spectra(SYS_B, 2)},
                              n_permutations=9, n_shuffles=5, time="discrete")
    assert disc.time == "discrete" and disc.verdicts["a-b"]["verdict"] == "undecided"
    assert "record_interval differs" in disc.verdicts["a-b"]["reason"]


def test_equal_intervals_keep_every_result_bit_identical():
    a, b = _spectra(SYS_A, 2), _spectra(SYS_B, 2)
    assert comparison_time(a + b) == "discrete"
    assert wasserstein(a[0], b[0]) == wasserstein(a[0].eigenvalues, b[0].eigenvalues)
    np.testing.assert_array_equal(distance_matrix(a + b),
                                  distance_matrix([s.eigenvalues for s in a + b]))
    auto = compare_conditions({"a": a, "b": b}, n_permutations=9, n_shuffles=5).to_dict()
    disc = compare_conditions({"a": a, "b": b}, n_permutations=9, n_shuffles=5,
                              time="discrete").to_dict()
    assert json.dumps(auto, sort_keys=True) == json.dumps(disc, sort_keys=True)
    assert auto["time"] == "discrete"


def test_settings_mismatch_drops_the_interval_only_in_continuous_time():
    specs = [_spectrum(SYS_A, 1, 0), _spectrum(SYS_A, 5, 1)]
    assert settings_mismatch(specs) == []
    assert settings_mismatch(specs, time="discrete") == [
        "record_interval differs (#0: 1, #1: 5)"]


def test_continuous_time_needs_recording_intervals():
    with pytest.raises(ValueError, match=r"time='continuous' needs each spectrum's recording "
                                         r"interval; spectra \[1\] carry none"):
        wasserstein(_spectrum(SYS_A, 1, 0), [0.5, 0.2], time="continuous")
    with pytest.raises(ValueError, match="time must be one of 'auto', 'discrete', 'continuous'"):
        distance_matrix([[0.5], [0.2]], time="seconds")
    # an interval missing on one side: "auto" stays discrete
    assert wasserstein(_spectrum(SYS_A, 5, 0), _spectrum(SYS_A, 1, 0).eigenvalues) > 0.1


# ----- the aliasing guard ---------------------------------------------------------------------
def test_aliasing_is_caught_with_the_eigenvalues_and_the_interval_needed():
    fast = (-0.02 + 0.5j, -0.1)  # 0.5 rad/step: 5 rad at k = 10 (> pi), 2.5 rad at k = 5
    fine, k5, k10 = _spectrum(fast, 1, 0), _spectrum(fast, 5, 1), _spectrum(fast, 10, 2)
    assert wasserstein(fine, k5) < 1e-8  # 2.5 rad < 0.9 pi: fine
    # unguarded, the conversion is silently wrong at k = 10
    wrong = np.abs(np.sort(k10.continuous_time(10).imag) - np.sort(fine.continuous_time(1).imag))
    assert wrong.max() > 0.1
    bound = ALIAS_BOUND / 0.5  # the largest interval that resolves 0.5 rad/step: 5.65
    msg = (r"spectra\[0\]: 2 eigenvalues turn by up to 5 rad at the coarser interval 10 "
           rf"\(bound 2.83 rad\) and alias \(.*\); resolving them needs a recording interval "
           rf"<= {bound:.3g}")
    for call in (lambda: wasserstein(fine, k10), lambda: distance_matrix([fine, k5, k10]),
                 lambda: conjugacy_test([fine, fine], [k10, k10])):
        with pytest.raises(AliasingError, match=msg):
            call()
    assert aliasing([fine, k5]) == [] and aliasing([k10, k10]) == []
    # the pipeline flags the pair instead of refusing: its verdict is undecided, naming them
    cmp = compare_conditions({"a": [fine, fine, fine], "b": [k10, k10, k10], "c": [k5, k5, k5]},
                             n_permutations=9, n_shuffles=5)
    assert cmp.verdicts["a-b"]["verdict"] == "undecided"
    assert "a seed 0: 2 eigenvalues turn by up to 5 rad" in cmp.verdicts["a-b"]["reason"]
    assert "alias" not in cmp.verdicts["a-c"]["reason"]
    assert any("alias" in m for m in cmp.settings_mismatch)


def test_negative_real_eigenvalues_are_flagged_when_intervals_differ():
    period2 = with_record_interval(_spectrum(SYS_A, 1, 0), [0, 1])
    neg = type(period2)(**{**period2.__dict__, "eigenvalues": np.array([-0.5, 0.9, 0.8])})
    coarse = _spectrum(SYS_A, 2, 1)
    assert "1 eigenvalue turn" in aliasing([neg, coarse])[0]
    assert aliasing([neg, neg]) == []


def test_conjugacy_analyze_agrees_across_intervals(tmp_path):
    """`conjugacy analyze` on a store of one system recorded every 1, 2 and 5 steps."""
    pytest.importorskip("zarr")
    pytest.importorskip("typer")
    from typer.testing import CliRunner

    from conjugacy.cli import app
    from conjugacy.store import TrajectoryStore

    rng = np.random.default_rng(0)
    c = rng.standard_normal((8, 3))
    path = tmp_path / "s.zarr"
    with TrajectoryStore.open(path, "w") as st:
        for cond, k in (("a", 1), ("b", 2), ("c", 5)):
            for seed in range(3):
                for rep in range(2):
                    name = f"{cond}{seed}{rep}"
                    st.create_run(name, {"w": ((8,), "float64")},
                                  metadata={"condition": cond, "seed": seed})
                    st.append(name, k * np.arange(N_REC), {"w": _latent(SYS_A, k, N_REC, rng) @ c.T})
                    st.set_finished(name)
    out = tmp_path / "out"
    got = CliRunner().invoke(app, ["analyze", str(path), "--out", str(out), "--delays", "1",
                                   "--rank", "3", "--no-report"])
    assert got.exit_code == 0, got.output
    comp = json.loads((out / "results.json").read_text())["comparison"]
    assert comp["time"] == "continuous" and comp["settings_mismatch"] == []
    for pair in ("a-b", "a-c", "b-c"):
        np.testing.assert_allclose(comp["all"]["distances"][pair]["per_seed"], 0, atol=1e-8)
        assert "differ" not in comp["verdicts"][pair]["reason"]


def test_cli_refuses_an_aliased_comparison_in_one_line(tmp_path):
    pytest.importorskip("typer")
    from typer.testing import CliRunner

    from conjugacy.cli import app

    fast = (-0.02 + 0.5j, -0.1)
    paths = []
    for name, k, seed in (("a1", 1, 0), ("a2", 1, 1), ("b1", 10, 2), ("b2", 10, 3)):
        paths.append(str(_spectrum(fast, k, seed).save(tmp_path / f"{name}.npz")))
    runner = CliRunner()
    for args in (["test", paths[0], paths[1], "--vs", paths[2], "--vs", paths[3], "--all"],
                 ["compare", paths[0], paths[2], "--all"]):
        got = runner.invoke(app, args)
        assert got.exit_code == 2, got.output
        said = " ".join(got.output.split())
        assert said.startswith("error: continuous-time comparison refused, the spectra alias: ")
        assert "resolving them needs a recording interval <= 5.65" in said
        assert "Traceback" not in got.output


# ----- review fixes (issue 23) -----------------------------------------------------------------
def _store(path, layout, seed: int = 0):
    """A store of SYS_A runs: ``layout`` maps (condition, seed) to the intervals of its replicas."""
    from conjugacy.store import TrajectoryStore

    rng = np.random.default_rng(seed)
    c = rng.standard_normal((8, 3))
    with TrajectoryStore.open(path, "w") as st:
        for (cond, s), ks in layout.items():
            for rep, k in enumerate(ks):
                name = f"{cond}{s}{rep}"
                st.create_run(name, {"w": ((8,), "float64")}, metadata={"condition": cond, "seed": s})
                st.append(name, k * np.arange(N_REC), {"w": _latent(SYS_A, k, N_REC, rng) @ c.T})
                st.set_finished(name)
    return path


def test_replicas_of_one_seed_at_different_intervals_are_refused(tmp_path):
    pytest.importorskip("zarr")
    pytest.importorskip("typer")
    from typer.testing import CliRunner

    from conjugacy.cli import app

    path = _store(tmp_path / "mix.zarr", {(c, s): (1, 5) for c in "ab" for s in range(3)})
    got = CliRunner().invoke(app, ["analyze", str(path), "--out", str(tmp_path / "o"),
                                   "--delays", "1", "--rank", "3", "--no-report"])
    assert got.exit_code == 2, got.output
    said = " ".join(got.output.split())
    assert "group ('a', seed 0): its runs were recorded at different intervals ('a00' every 1 " \
           "steps, 'a01' every 5 steps) and cannot be pooled" in said
    assert "Traceback" not in got.output and len(got.output.strip().splitlines()) == 1


def test_step_notes_say_continuous_time_only_when_the_spectra_intervals_differ():
    from conjugacy.analysis.own_runs import _step_notes

    steps = {"a0": np.arange(10), "a1": 5 * np.arange(10), "b0": np.arange(10),
             "b1": 5 * np.arange(10)}
    mixed = {"a": {0: ["a0", "a1"]}, "b": {0: ["b0", "b1"]}}  # within seeds: refused when fitted
    assert not any("continuous time" in n for n in _step_notes(steps, mixed))
    across = {"a": {0: ["a0", "b0"]}, "b": {0: ["a1", "b1"]}}  # conditions at 1 and 5 steps
    assert any("every 1, 5 steps): their spectra are compared in continuous time" in n
               for n in _step_notes(steps, across))


def test_continuous_time_defaults_to_the_recording_interval():
    k5 = _spectrum(SYS_A, 5, 0)
    np.testing.assert_allclose(np.sort_complex(k5.continuous_time()),
                               np.sort_complex(np.array([SYS_A[0], np.conj(SYS_A[0]), SYS_A[1]])),
                               atol=1e-8)
    np.testing.assert_allclose(k5.continuous_time(1), np.log(k5.eigenvalues), rtol=1e-14)
    bare = koopman_spectrum(np.exp(-0.1 * np.arange(20))[None, :, None], rank=1)
    np.testing.assert_allclose(bare.continuous_time(), [-0.1], atol=1e-10)  # no interval: 1


def _eigs(values, interval):
    from types import SimpleNamespace

    return SimpleNamespace(eigenvalues=np.asarray(values, complex),
                           settings={"record_interval": interval})


def test_aliasing_ignores_modes_negligible_at_the_coarse_interval():
    coarse = _eigs(np.exp([0.5j, -0.5j]) * 0.9, 5)
    # |lambda|^5: 0.044^5 = 1.6e-7 and 0.009^5 = 6e-11 < 1e-6, gone between coarse records
    noise = _eigs([np.exp(0.1j) * 0.97, -0.011 + 0.043j, -0.011 - 0.043j, -0.009], 1)
    assert aliasing([noise, coarse]) == []
    # 0.07^5 = 1.7e-6 >= 1e-6: still seen at the coarse interval, still flagged
    assert "1 eigenvalue turn" in aliasing([_eigs([np.exp(0.1j), -0.07], 1), coarse])[0]
    assert aliasing([noise, coarse], min_modulus=1e-12)[0].startswith("#0: 3 eigenvalues")
    # refused even where the intervals are equal (no guard needed)
    for bad, error, said in ((1.0, ValueError, r"in \(0, 1\), got 1.0"),
                             (0, ValueError, r"in \(0, 1\), got 0"),
                             (True, TypeError, "a real number, got True")):
        with pytest.raises(error, match=f"^min_modulus must be {said}$"):
            aliasing([coarse, coarse], min_modulus=bad)


def test_a_recording_interval_is_a_finite_number_above_zero():
    assert recording_interval(_eigs([0.5], 4)) == 4.0
    for bad, error, said in ((0, ValueError, "finite and > 0, got 0"),
                             (float("nan"), ValueError, "finite and > 0, got nan"),
                             ("4", TypeError, "a real number, got '4'"),
                             (True, TypeError, "a real number, got True")):
        spectrum = _eigs([0.5], 1)
        spectrum.settings["record_interval"] = bad
        with pytest.raises(error) as err:
            recording_interval(spectrum)
        assert str(err.value) == f"settings['record_interval'] must be {said}"


def test_aliasing_sentences_are_capped_and_never_advise_less_than_one_step():
    # 2.9 rad per step turns by 5.8 rad at interval 2: resolving it needs <= 0.975 steps
    fast = _eigs(0.9 * np.exp(1j * np.array([2.0, -2.0, 2.2, -2.2, 2.9, -2.9])), 1)
    coarse = _eigs([0.5], 2)
    (said,) = aliasing([fast, coarse])
    assert said.startswith("#0: 6 eigenvalues turn by up to 5.8 rad at the coarser interval 2")
    assert said.count("j") == 3 and "and 3 more)" in said
    assert said.endswith("these recordings cannot resolve them (even every step is too coarse) "
                         "(or equal intervals and time='discrete')")
    assert "<=" not in said
    many = [fast] * 5 + [coarse]
    with pytest.raises(AliasingError, match=r"; and 2 more$"):
        distance_matrix(many)


def test_compare_conditions_guards_the_spectra_each_block_compares():
    fast = (-0.02 + 0.5j, -0.1)
    fine, k10 = _spectra(fast, 1, seeds=(0, 1, 2, 9)), _spectra(fast, 10, seeds=(3, 4, 5, 10))
    cmp = compare_conditions({"a": fine, "b": k10}, n_permutations=9, n_shuffles=5,
                             use_filter=False)
    assert cmp.verdict_uses == "all"
    flags = cmp["all"]["aliasing"]["a-b"]  # the 4 fine seeds alias at interval 10
    assert [f[:9] for f in flags] == ["a seed 0:", "a seed 1:", "a seed 2:", "and 1 mor"]
    assert flags[-1] == "and 1 more spectra alias"
    assert cmp.verdicts["a-b"]["reason"].endswith("; and 1 more spectra alias")
    same = compare_conditions({"a": fine, "b": _spectra(fast, 1, seeds=(6, 7, 8, 11))},
                              n_permutations=9, n_shuffles=5)
    assert same["all"]["aliasing"] == {"a-b": []} == same["filtered"]["aliasing"]


def test_bootstrap_distance_agrees_across_intervals():
    from conjugacy import bootstrap_distance

    rng = np.random.default_rng(3)
    c = rng.standard_normal((8, 3))
    runs = {k: np.stack([_latent(SYS_A, k, N_REC, rng) @ c.T for _ in range(3)]) for k in (1, 5)}
    opts = dict(n_boot=8, rank=3, filter=None)
    cont = bootstrap_distance(runs[1], runs[5], record_intervals=(1, 5), **opts)
    assert cont.distance < 1e-8 and max(cont.samples) < 1e-8
    disc = bootstrap_distance(runs[1], runs[5], record_intervals=(1, 5), time="discrete", **opts)
    assert disc.distance > 0.1  # eigenvalues lambda vs lambda^5
    assert bootstrap_distance(runs[1], runs[5], **opts).distance == disc.distance
    with pytest.raises(ValueError, match=r"time='continuous' needs record_intervals="):
        bootstrap_distance(runs[1], runs[5], time="continuous", **opts)
    with pytest.raises(ValueError, match=r"^record_intervals\[1\] must be finite and > 0, got 0$"):
        bootstrap_distance(runs[1], runs[5], record_intervals=(1, 0), **opts)
    with pytest.raises(ValueError, match=r"^record_intervals must hold 2 items, got \(1,\)$"):
        bootstrap_distance(runs[1], runs[5], record_intervals=(1,), **opts)


def test_analyze_bootstraps_in_continuous_time(tmp_path):
    pytest.importorskip("zarr")
    from conjugacy import analyze

    path = _store(tmp_path / "s.zarr", {(c, s): (k, k) for c, k in (("a", 1), ("b", 5))
                                        for s in range(3)})
    res = analyze(path, delays=1, rank=3, n_boot=5, report=False)
    comp = res.results["comparison"]
    entry = comp[comp["verdict_uses"]]["distances"]["a-b"]
    assert comp["time"] == "continuous"
    assert entry["bootstrap_interval"][1] < 1e-6, entry  # discrete: lambda vs lambda^5, ~0.3
