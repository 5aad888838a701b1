"""The analysis pipeline (conjugacy.analysis.pipeline, groups, results): one route from runs to
verdict. Exact expected values on linear systems with known Koopman eigenvalues."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("zarr")

import conjugacy  # noqa: E402
from conjugacy import koopman_spectrum  # noqa: E402
from conjugacy.analysis import (  # noqa: E402
    SpectrumGroup,
    fit_spectra,
    run_pipeline,
    summarize,
    validate,
)
from conjugacy.store import TrajectoryStore  # noqa: E402
from conjugacy.study import StudyReader  # noqa: E402

EIGS = np.array([0.95, 0.8, 0.6])


def _three_mode_runs(n_runs=6, n_steps=60, n_features=40, seed=0) -> np.ndarray:
    """Runs of an exactly 3-mode linear system seen through 40 random channels (float64)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((n_features, 3))
    z0 = rng.standard_normal((n_runs, 3))
    z = z0[:, None, :] * EIGS[None, None, :] ** np.arange(n_steps)[None, :, None]
    return z @ c.T


@pytest.fixture
def float32_store(tmp_path):
    data = _three_mode_runs().astype(np.float32)
    path = tmp_path / "runs.zarr"
    with TrajectoryStore.open(path, "w") as st:
        for i, traj in enumerate(data):
            name = f"{'ab'[i % 2]}{i}"
            st.create_run(name, {"w": ((40,), "float32")},
                          metadata={"condition": "ab"[i % 2], "seed": i // 2})
            st.append(name, np.arange(60), {"w": traj})
            st.set_finished(name)
    return path, data


def _check_exact(spectrum) -> None:
    assert spectrum.rank == 3
    np.testing.assert_allclose(np.sort(spectrum.eigenvalues.real)[::-1], EIGS, atol=1e-3)
    np.testing.assert_allclose(spectrum.eigenvalues.imag, 0, atol=1e-3)


def test_float32_store_gives_the_exact_modes_through_every_route(float32_store):
    """Issue 19: read as float64, the rank rule kept float32 rounding as signal (rank 160)."""
    path, data = float32_store
    with TrajectoryStore.open(path, "r") as st:
        _check_exact(koopman_spectrum(st.read(params="w"), delays=3))
        _check_exact(koopman_spectrum(st.source(params="w"), delays=3))
    with StudyReader({r: path for r in ["a0", "a2", "a4", "b1", "b3", "b5"]}) as reader:
        groups = [SpectrumGroup("all", 0, ("a0", "a2", "a4", "b1", "b3", "b5"))]
        fitted = fit_spectra(reader, groups, {"delays": 3}, params="w")
    _check_exact(fitted[("all", 0, None)])
    assert fitted[("all", 0, None)].settings["record_interval"] == 1
    res = conjugacy.analyze(path, delays=3, n_permutations=9)
    for specs in res.spectra.values():
        for sp in specs:
            _check_exact(sp)


def test_float32_read_as_float64_keeps_rounding_noise(float32_store):
    """The failure the default dtype prevents (so the test above can fail)."""
    path, _ = float32_store
    with TrajectoryStore.open(path, "r") as st:
        x = st.read(params="w", dtype=np.float64)
    sp = koopman_spectrum(x, delays=3)
    assert sp.rank > 3


def test_run_pipeline_results_validate_and_are_written_once(float32_store, tmp_path):
    path, _ = float32_store
    runs = {"a": ["a0", "a2", "a4"], "b": ["b1", "b3", "b5"]}
    groups = [SpectrumGroup(c, s, (r,)) for c, rs in runs.items() for s, r in enumerate(rs)]
    with StudyReader({r: path for rs in runs.values() for r in rs}) as reader:
        res = run_pipeline(reader, groups, {"delays": 3, "rank": 3}, params="w",
                           experiment="test", stats={"n_permutations": 9, "n_shuffles": 5},
                           out=tmp_path / "out", report=False)
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    validate(doc)
    assert doc == json.loads(json.dumps(res.to_dict()))
    assert doc["schema"] == "conjugacy.results/2" and doc["seeds"] == {"a": [0, 1, 2],
                                                                      "b": [0, 1, 2]}
    assert [r["run"] for r in doc["runs"]] == ["a0", "a2", "a4", "b1", "b3", "b5"]
    # one system seen from two sets of initial conditions, 3 seeds each: p >= 0.1 > alpha
    v = doc["comparison"]["verdicts"]["a-b"]
    assert v["verdict"] == "undecided" and v["min_pvalue"] == pytest.approx(0.1)
    doc["comparison"]["verdicts"]["a-b"]["verdict"] = "maybe"
    with pytest.raises(Exception, match="maybe"):
        validate(doc)


def test_summarize_refuses_a_verdict_on_differing_settings():
    data = _three_mode_runs(n_runs=8)
    a = [koopman_spectrum(data[i:i + 2], delays=2, rank=3) for i in (0, 2)]
    b = [koopman_spectrum(data[i:i + 2], delays=3, rank=3) for i in (4, 6)]
    res = summarize({"a": a, "b": b}, experiment="t", stats={"n_permutations": 9})
    v = res["comparison"]["verdicts"]["a-b"]
    assert v["verdict"] == "undecided" and "delays differs" in v["reason"]
    allowed = summarize({"a": a, "b": b}, experiment="t", stats={"n_permutations": 9},
                        allow_differing={"delays": "scaled with the width on purpose"})
    assert allowed["comparison"]["settings_mismatch"] == []
    assert allowed["comparison"]["verdicts"]["a-b"]["reason"].startswith("p = ")
    validate(json.loads(json.dumps(res.to_dict())))


def test_summarize_rejects_unknown_statistics_options():
    data = _three_mode_runs(n_runs=4)
    s = [koopman_spectrum(data[i:i + 1], rank=3) for i in range(4)]
    with pytest.raises(ValueError, match="unknown options"):
        summarize({"a": s[:2], "b": s[2:]}, experiment="t", stats={"permutations": 9})


def test_docs_describe_every_field_of_the_schema():
    from pathlib import Path

    from conjugacy.analysis import schema

    doc = (Path(__file__).parents[1] / "docs" / "results.md").read_text()
    s = schema()
    for name in s["required"] + s["$defs"]["comparison"]["required"]:
        assert f"`{name}`" in doc, name


@pytest.mark.parametrize("budget, reads", [(None, 6), (0, 12)])
def test_neighbour_check_reuses_the_base_fits_reads_within_the_budget(float32_store, budget,
                                                                      reads, monkeypatch):
    """Each group is read once for its base fit and its neighbour refits while the kept
    trajectories fit pipeline.KEEP_BYTES; over the budget it is read again (and the same
    neighbourhood comes out)."""
    from conjugacy.analysis import pipeline

    if budget is not None:
        monkeypatch.setattr(pipeline, "KEEP_BYTES", budget)
    path, _ = float32_store
    runs = {"a": ["a0", "a2", "a4"], "b": ["b1", "b3", "b5"]}
    groups = [SpectrumGroup(c, s, (r,)) for c, rs in runs.items() for s, r in enumerate(rs)]
    with StudyReader({r: path for rs in runs.values() for r in rs}) as reader:
        calls = []
        read = reader.read
        monkeypatch.setattr(reader, "read", lambda *a, **k: calls.append(k) or read(*a, **k))
        res = run_pipeline(reader, groups, {"delays": 3, "rank": 3}, params="w",
                           experiment="test", stats={"n_permutations": 9, "n_shuffles": 5},
                           neighbours=True)
    assert len([k for k in calls if k.get("branch") is None]) == reads
    nb = res.to_dict()["comparison"]["neighbourhood"]
    # exact rank 3: 'rank +1' is the base fit again (not tried, not counted)
    assert nb["n_fits"] == 4 * 6 and nb["pairs"]["a-b"]["of"] == 4


def test_bootstrap_skips_a_pair_whose_filter_kept_nothing():
    # the verdicts' comparison has no distance for a-c (a filter kept no eigenpair of c): the
    # bootstrap leaves it alone instead of failing with a KeyError (it never reads the store)
    from conjugacy.analysis.pipeline import _bootstrap

    comparison = {"verdict_uses": "filtered", "conditions": ["a", "c"],
                  "pairs": {"a-c": ["a", "c"]}, "time": "discrete",
                  "filtered": {"distances": {}, "kept_nothing": {"a-c": ["c seed 0"]}}}
    _bootstrap(comparison, reader=None, groups=[], params=None, settings={}, n_boot=10, seed=0)
    assert comparison["filtered"]["distances"] == {}


def test_mixed_type_notes_cut_their_lists_after_three_values():
    from conjugacy.analysis.groups import CanonicalValues

    values = CanonicalValues("seed")
    for v in [1, "1", 2, "2", 3, "3", 4, "4", 5, "5", True, 7]:
        values(v)
    mixed, booleans = values.notes()
    assert mixed == ("metadata 'seed' has values of mixed types ('1' as int, str; '2' as int, "
                     "str; '3' as int, str; and 2 more): compared as one value each")
    assert booleans.startswith("metadata 'seed' has values of mixed types ('true' as bool; '1' "
                               "as int, str; '2' as int, str; '3' as int, str; and 3 more): a")


@pytest.mark.parametrize("delays, kept", [(0, []), (3, ["a0", "a2", "b1", "b3"])])
def test_base_fits_keep_trajectories_only_for_a_neighbour_check_that_refits(float32_store,
                                                                           delays, kept):
    """At 0 delays the rank neighbours come from the base fits and the check refits nothing:
    no trajectories are kept for it (with delays, the delay neighbours read them)."""
    path, _ = float32_store
    groups = [SpectrumGroup(c, s, (f"{c}{2 * s + (c == 'b')}",)) for c in "ab" for s in range(2)]
    keep, prefit = {"budget": 2**30}, {}
    with TrajectoryStore.open(path, "r") as store:
        fit_spectra(store, groups, {"delays": delays, "rank": 3}, params="w", keep=keep,
                    neighbour_fits=prefit)
    assert sorted(g.runs[0] for g in groups if g.key in keep) == kept
    assert sorted(prefit) == sorted(g.key for g in groups)
