"""The neighbour check's refits through koopman_spectra give the neighbourhood of separate fits."""

import warnings

import numpy as np
import pytest

from conjugacy import koopman_spectrum
from conjugacy import spectrum as spectrum_module
from conjugacy.analysis.comparison import compare_conditions
from conjugacy.analysis.groups import SpectrumGroup
from conjugacy.analysis.neighbours import neighbour_check, not_tried_text
from conjugacy.cli.summaries import neighbour_lines
from conjugacy.report._content import neighbourhood_rows


def _separate(x, settings, next_states=None, **kw):
    return [koopman_spectrum(x, **s, **kw, next_states=next_states) for s in settings]


@pytest.mark.parametrize("n_features", [6, 200])  # covariance/dense, and the Gram path
def test_neighbourhood_equals_that_of_separate_fits(n_features, monkeypatch):
    rng = np.random.default_rng(0)
    t = np.arange(40)[:, None]
    rates = {"slow": [0.95, 0.9, 0.6], "fast": [0.7, 0.5, 0.3]}
    groups = [SpectrumGroup(c, s, [f"{c}_s{s}"]) for c in rates for s in range(4)]
    mix = rng.standard_normal((3, n_features))
    data = {g.key: (rng.normal(size=(2, 1, 3)) * np.power(rates[g.condition], t)) @ mix
            + 1e-3 * rng.standard_normal((2, 40, n_features)) for g in groups}
    settings, stats = {"delays": 2, "rank": 5}, {"seed": 0, "n_permutations": 99}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = {k: koopman_spectrum(x, **settings) for k, x in data.items()}
        spectra = {c: [fitted[g.key] for g in groups if g.condition == c] for c in rates}
        base = compare_conditions(spectra, shuffle=None, ks=False, **stats).to_dict()

        def check():
            return neighbour_check(dict(base), lambda g: data[g.key], groups, settings, fitted,
                                   stats, max_delays=8)

        shared = check()
        calls = []
        monkeypatch.setattr(spectrum_module, "koopman_spectra",
                            lambda *a, **k: calls.append(1) or _separate(*a, **k))
        alone = check()
    assert len(calls) == 8  # one call per group
    assert shared["n_fits"] == alone["n_fits"] == 32
    for name, pair in shared["pairs"].items():
        other = alone["pairs"][name]
        assert pair["same"] == other["same"] and pair["verdict"] == other["verdict"]
        for k, v in pair["neighbours"].items():
            w = other["neighbours"][k]
            assert v["verdict"] == w["verdict"] and v["pvalue"] == w["pvalue"]
            assert v["distance"] == pytest.approx(w["distance"], rel=1e-9, abs=1e-12)


def test_verdicts_on_all_eigenvalues_get_the_per_spectrum_filter_as_the_other_filter():
    # random walks at rank 3: the per-spectrum filter drops eigenpairs, so its distances differ
    rng = np.random.default_rng(0)
    groups = [SpectrumGroup(c, s, [f"{c}_s{s}"]) for c in ("a", "b") for s in range(4)]
    scale = {"a": 1.0, "b": 3.0}
    data = {g.key: np.cumsum(rng.standard_normal((2, 30, 3)), axis=1) * scale[g.condition]
            for g in groups}
    settings, stats = {"delays": 0, "rank": 3}, {"seed": 0, "n_permutations": 99}
    fitted = {k: koopman_spectrum(x, **settings) for k, x in data.items()}
    spectra = {c: [fitted[g.key] for g in groups if g.condition == c] for c in scale}
    plain = compare_conditions(spectra, shuffle=None, ks=False, use_filter=False, **stats)
    filt = compare_conditions(spectra, shuffle=None, ks=False, **stats).to_dict()
    assert plain.verdict_uses == "all" and filt["verdict_uses"] == "filtered"
    result = neighbour_check(plain.to_dict(), lambda g: data[g.key], groups, settings, fitted,
                             {**stats, "use_filter": False}, max_delays=7)
    # 0 delays: no delay neighbours (said in not_tried); rank 4 is clipped to the 3
    # observables, the base: dropped
    assert [s["name"] for s in result["settings"]] == ["rank -1", "other filter (per-spectrum)"]
    assert [(v["name"], v["reason"]) for v in result["not_tried"]] == [
        ("delays x1/2", "not possible at 0 delays (a multiple of 0 is 0)"),
        ("delays x2", "not possible at 0 delays (a multiple of 0 is 0)"),
        ("rank +1", "rank 4: beyond the 3 the data allow at 0 delays")]
    said = ("Not tried: delays x1/2, delays x2 (not possible at 0 delays (a multiple of 0 is 0)); "
            "rank +1 (rank 4: beyond the 3 the data allow at 0 delays).")
    assert not_tried_text(result) == said
    cmp = {**plain.to_dict(), "neighbourhood": result}
    assert neighbour_lines({"comparison": cmp})[-1] == said  # the console
    assert neighbourhood_rows({"comparison": cmp})[1].endswith(" fragile. " + said)  # the report
    assert result["n_fits"] == 8 and result["pairs"]["a-b"]["of"] == 2  # no refit for the filter
    got = result["pairs"]["a-b"]["neighbours"]["other filter (per-spectrum)"]
    want = filt["filtered"]["distances"]["a-b"]["mean"]
    assert got["distance"] == pytest.approx(want, rel=1e-12)
    assert got["distance"] != pytest.approx(plain.to_dict()["all"]["distances"]["a-b"]["mean"])
    assert got["pvalue"] == filt["filtered"]["permutation_tests"]["a-b"]["pvalue"]
    assert got["verdict"] == filt["verdicts"]["a-b"]["verdict"]
    # and the reverse: verdicts on the filtered spectra get all eigenvalues, from the base block
    back = neighbour_check(filt, lambda g: data[g.key], groups, settings, fitted, stats,
                           max_delays=7)
    assert back["settings"][-1] == {"name": "other filter (all eigenvalues)"}
    assert back["pairs"]["a-b"]["neighbours"]["other filter (all eigenvalues)"]["distance"] == \
        pytest.approx(plain.to_dict()["all"]["distances"]["a-b"]["mean"], rel=1e-12)


def test_a_rank_neighbour_the_data_reduce_to_the_base_rank_is_not_counted(recwarn):
    """Issue 20 review, defect 2: at rank 3 = the data's numerical rank (noiseless rank-3
    trajectories), 'rank +1' asks 4, is reduced to 3 and is the base fit again: it was counted
    as a neighbour that agrees (distance = the base's); now it is listed as not tried."""
    rng = np.random.default_rng(1)
    t = np.arange(40)[:, None]
    rates = {"a": [0.95, 0.9, 0.6], "b": [0.7, 0.5, 0.3]}
    groups = [SpectrumGroup(c, s, [f"{c}_s{s}"]) for c in rates for s in range(3)]
    mix = rng.standard_normal((3, 6))
    data = {g.key: (rng.normal(size=(2, 1, 3)) * np.power(rates[g.condition], t)) @ mix
            for g in groups}
    settings, stats = {"delays": 0, "rank": 3}, {"seed": 0, "n_permutations": 99}
    fitted = {k: koopman_spectrum(x, **settings) for k, x in data.items()}
    assert {sp.rank for sp in fitted.values()} == {3}
    spectra = {c: [fitted[g.key] for g in groups if g.condition == c] for c in rates}
    base = compare_conditions(spectra, shuffle=None, ks=False, **stats).to_dict()
    result = neighbour_check(base, lambda g: data[g.key], groups, settings, fitted, stats,
                             max_delays=8)
    assert [v["name"] for v in result["settings"]] == ["rank -1", "other filter (all eigenvalues)"]
    assert {"name": "rank +1", "reason": "rank 4: every spectrum's data have numerical rank at "
            "most the base's, so the fit would be the base fit again"} in result["not_tried"]
    assert "rank +1" not in result["pairs"]["a-b"]["neighbours"]
    assert result["n_fits"] == 12  # both rank neighbours were fitted; one is not a neighbour
